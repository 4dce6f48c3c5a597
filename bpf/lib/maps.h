// SPDX-License-Identifier: GPL-2.0
// The maps the program families share: the events ring, the loss counters, the
// per-CPU scratch buffer an event is built in, and the sys_exit tail-call table.
#ifndef RAMPART_LIB_MAPS_H
#define RAMPART_LIB_MAPS_H

#include "lib/common.h"

// Tail-call handler slots (the HANDLERS table in crates/bpf/src/lib.rs).
#define H_OPEN 0
#define H_PATH1 1
#define H_FDOP 2
#define H_PATH2 3
#define H_SOCK 4
#define H_DNS 5
#define H_MISC 6
#define H_MAX 8
#define H_NONE 0xff // not a watched syscall

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

// Per-CPU counters: [0] ring full, [1] shed to keep room for lifecycle events (both
// losses), [2] read-only opens folded into a later event's repeat count (not a loss).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, u32);
	__type(value, u64);
} drops SEC(".maps");

// Processes whose events are not wanted (the sensor itself).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u8);
} ignored_tgids SEC(".maps");

// A task's cgroups as the header names them: the v2 cgroup and the cpuset cgroup
// (containers on v1 hosts differ only in the latter). kernfs ids are never reused.
struct cgroup_pair {
	u64 cgid;
	u64 cpuset_cgid;
};

struct scratch {
	union {
		u8 ev[EV_BUF]; // the event as it goes out
		// Never accessed: puts the wire types in the object's BTF (see rampart.h).
		struct rampart_wire wire;
	};
	char path[PATH_BUF + NAME_MAX_LEN + 1];
	// Set by fill_hdr when the event carries the cgroup names: submit records the pair
	// as named once the event is in the ring.
	struct cgroup_pair names_sent;
	u8 names_pending;
};

// Cgroup pairs whose leaf names went out in an event that reached the ring: later
// events of the pair leave them empty. Reading the two names was a third of an open
// event's kernel time (byte-by-byte string reads). An entry the LRU evicts only makes
// the next event carry the names again.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct cgroup_pair);
	__type(value, u8);
} cgroup_named SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

// When an event last woke the reader (boot ns).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} last_wakeup SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, H_MAX);
	__type(key, u32);
	__type(value, u32);
} handlers SEC(".maps");

// Processes that connected a socket to port 53, or descend from one: only their write()s
// can be DNS queries on a connected UDP socket (Go, busybox). A write from any other
// process skips the fd -> file -> inode reads that tell a socket (about 80 ns, on every
// write on the host). Sockets connected before the sensor started are not in it.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, u8);
} dns_writers SEC(".maps");

static __always_inline struct scratch *get_scratch(void)
{
	u32 zero = 0;
	return bpf_map_lookup_elem(&scratch_map, &zero);
}

#endif // RAMPART_LIB_MAPS_H
