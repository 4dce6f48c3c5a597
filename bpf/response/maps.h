// SPDX-License-Identifier: GPL-2.0
// Response state, keyed by the cgroup v2 id of the container the rule is for. User
// space (crates/bpf/src/response.rs) pins every map under /sys/fs/bpf/rampart/response/
// so what is in place survives a restart of rampart; the layouts below are mirrored
// there (#[repr(C)]).
#ifndef RAMPART_RESPONSE_MAPS_H
#define RAMPART_RESPONSE_MAPS_H

#define GUARD_MAX_CGROUPS 4096
#define GUARD_MAX_RULES 16384
#define GUARD_PORTS 8
// Levels above a socket's or task's own cgroup looked at for a guarded container (a
// container that made sub-cgroups is still guarded).
#define GUARD_ANCESTOR_LEVELS 8

enum guard_net_flags {
	NET_QUARANTINE = 1, // drop everything but the allow list
	NET_DENY = 2, // drop what the deny lists name
	NET_ALLOW_LOOPBACK = 4, // quarantine keeps loopback traffic
};

enum guard_exec_flags {
	EXEC_DENY_UPPER = 1, // deny executables from the overlay upper layer (not in the image)
	EXEC_DENY_PATHS = 2, // deny the paths in exec_paths
};

struct net_cfg {
	__u32 flags;
	__u32 pad;
};

// LPM key: the cgroup id (8 bytes, native order) then the address as IPv6 (IPv4
// mapped to ::ffff:a.b.c.d). prefixlen counts the cgroup id's 64 bits too, so one
// trie holds every container's prefixes.
struct lpm_key {
	__u32 prefixlen;
	__u8 data[24];
};

// Ports a prefix applies to (host order); none means every port.
struct net_ports {
	__u16 ports[GUARD_PORTS];
	__u32 nports;
};

struct port_key {
	__u64 cgid;
	__u32 port;
	__u32 pad;
};

struct exec_cfg {
	__u32 flags;
	__u32 pad;
};

// An executable's path as the container sees it, hashed (see path_hash in exec.h).
struct exec_path_key {
	__u64 cgid;
	__u64 hash;
};

struct guard_stats {
	__u64 egress_dropped;
	__u64 ingress_dropped;
	__u64 connect_refused;
	__u64 exec_killed;
	__u64 exec_denied;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GUARD_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct net_cfg);
} net_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GUARD_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, struct net_ports);
} net_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, GUARD_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_key);
	__type(value, struct net_ports);
} net_deny SEC(".maps");

// Ports denied to any address.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GUARD_MAX_RULES);
	__type(key, struct port_key);
	__type(value, __u8);
} net_deny_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GUARD_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct exec_cfg);
} exec_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GUARD_MAX_RULES);
	__type(key, struct exec_path_key);
	__type(value, __u8);
} exec_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, GUARD_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct guard_stats);
} guard_stats SEC(".maps");

#endif // RAMPART_RESPONSE_MAPS_H
