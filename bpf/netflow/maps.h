// SPDX-License-Identifier: GPL-2.0
// Netflow state. The layouts are mirrored in crates/bpf/src/netflow.rs (#[repr(C)]).
// Addresses are IPv6, IPv4 mapped to ::ffff:a.b.c.d; ports are in host order.
#ifndef RAMPART_NETFLOW_MAPS_H
#define RAMPART_NETFLOW_MAPS_H

#define NF_MAX_FLOWS 65536
#define NF_MAX_CGROUPS 4096
#define NF_MAX_ALLOW 65536
// Payload kept of a DNS answer or a TLS ClientHello.
#define NF_PAYLOAD 1024
// Most bytes of a captured packet (IP header on).
#define NF_SNAP_MAX 256

#define NF_ETH_P_IP 0x0800
#define NF_ETH_P_IPV6 0x86DD
#define NF_TCP 6
#define NF_UDP 17

// struct nf_config.flags
enum nf_cfg_flags {
	NF_CFG_DNS = 1, // DNS answers to user space
	NF_CFG_TLS = 2, // the first egress payload of TCP flows (ClientHellos whole) to user space
	NF_CFG_CAPTURE = 4, // some cgroup is in nf_capture (else its lookup is skipped)
	NF_CFG_PROTECT = 8, // some cgroup is in nf_protect (else its lookup is skipped)
	NF_CFG_SOCKETS = 16, // TCP counted from sockets (sockets.h), not packets
	NF_CFG_PACKETS = 32, // the packet programs are attached (they count raw sockets' packets)
	NF_CFG_UDP = 64, // udp.h's programs are all attached: UDP flows counted from the sockets
	NF_CFG_RAW = 128, // raw_send.h's programs are all attached
};

// struct flow_val.flags: TCP flags seen each way, and what was reported.
#define NF_FLAG_OUT_SHIFT 0
#define NF_FLAG_IN_SHIFT 8
#define NF_FLAG_FIRST_DATA (1 << 16) // the first egress payload was looked at

enum nf_initiator {
	NF_INIT_UNKNOWN = 0, // first seen mid-stream
	NF_INIT_LOCAL = 1, // the container opened it (egress SYN, or first UDP egress)
	NF_INIT_REMOTE = 2, // the peer opened it
};

enum nf_record_kind {
	NF_REC_DNS = 1, // a DNS answer (UDP from port 53), payload from the DNS header
	NF_REC_TLS = 2, // a TLS ClientHello (first egress data of a TCP flow)
	NF_REC_DENY_CONNECT = 3, // a connect refused by segmentation
	NF_REC_DENY_INBOUND = 4, // an inbound connection dropped by segmentation
	NF_REC_PACKET = 5, // a captured packet: IP header on, `caplen` bytes
	NF_REC_FIRST_DATA = 6, // the first egress payload of a TCP flow (not TLS)
};

// Bytes of a flow's first payload kept when it is not a ClientHello: enough to tell
// SSH, HTTP or a miner's stratum from the rest.
#define NF_FIRST_DATA 64

struct flow_key {
	__u64 cgid;
	__u8 local[16];
	__u8 remote[16];
	__u16 lport;
	__u16 rport;
	__u8 proto;
	__u8 pad[3];
};

struct flow_val {
	__u64 first_ns; // bpf_ktime_get_ns (monotonic)
	__u64 last_ns;
	__u64 bytes_out;
	__u64 pkts_out;
	__u64 bytes_in;
	__u64 pkts_in;
	__u64 flags;
	__u8 initiator;
	__u8 pad[3];
	// nf_config.gen when the flow was last reported in nf_changes: a flow is reported
	// once per user-space read, whatever its packet rate.
	__u32 gen;
};

// Who opened an outbound flow, from cgroup/connect4|6 (the local port is not bound
// yet there, so the key is the remote end).
struct owner_key {
	__u64 cgid;
	__u8 remote[16];
	__u16 rport;
	__u8 proto;
	__u8 pad[5];
};

struct owner_val {
	__u64 ts_ns;
	__u32 pid;
	__u32 pad;
	char comm[16];
};

struct nf_config {
	__u32 flags;
	__u32 snaplen; // bytes kept of a captured packet, at most NF_SNAP_MAX
	// Bumped by user space before each read of nf_changes.
	__u32 gen;
	// Entries of nf_watch in use.
	__u32 watched;
};

// A flow that changed since user space's last read (nf_changes): user space looks up
// only these, so a read costs what changed, not the table's size or its idle flows.
struct nf_change {
	struct flow_key key;
	__u32 gen; // nf_config.gen when reported
	__u32 pad;
};

// A protected cgroup's baseline edge. dir: 1 outbound (remote address and port), 2
// inbound (remote address, local port). An all-zero address matches any address, port
// 0 any port.
struct seg_key {
	__u64 cgid;
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	__u8 dir;
	__u32 pad;
};

// A protected cgroup's baseline edge to a network (an address prefix), looked up by
// longest prefix: the cgroup, port, protocol and direction are matched whole (the
// first SEG_CIDR_EXACT_BITS of the data), then `prefixlen - SEG_CIDR_EXACT_BITS` bits
// of the address (IPv4 as v4-mapped IPv6). Port 0 matches any port.
#define SEG_CIDR_EXACT_BITS 96
struct seg_cidr_key {
	__u32 prefixlen;
	__u32 cgid_lo;
	__u32 cgid_hi;
	__u16 port;
	__u8 proto;
	__u8 dir;
	__u8 addr[16];
};

struct nf_stats {
	__u64 flows_created;
	__u64 flow_update_failed; // the table refused an entry
	__u64 records_lost; // a ring buffer was full
	__u64 connects_denied;
	__u64 inbound_denied;
	__u64 packets_captured;
	// A flow change not reported (nf_changes full): user space then reads the whole
	// table once.
	__u64 changes_lost;
	// A socket's end not reported (nf_ends full): its last counters are lost.
	__u64 socket_ends_lost;
	// A socket's first payload not read: its process sent one to the same peer and
	// service port less than a minute before (first_send.h).
	__u64 first_payloads_repeated;
	// Flows made by the socket programs (packets written through raw sockets,
	// raw_send.h; UDP datagrams, udp.h), not by the packet programs.
	__u64 socket_flows_created;
};

// Socket accounting (sockets.h): where a socket record comes from.
enum nf_sock_end {
	NF_END_LIVE = 0, // the iterator: a connection still open, its counters so far
	NF_END_CLOSED = 1, // the socket's end
	NF_END_RESET = 2, // an abortive close: the reset it sent (before its counters are zeroed)
	// The iterator: a listener (the local port set; segs_in its half-open
	// handshakes, bytes_in its connections waiting for accept(), srtt_us nonzero
	// once the kernel warned of a SYN flood on it).
	NF_END_LISTENING = 3,
	NF_END_RESET_IN = 4, // a reset received: the key only (the socket's end has the counters)
	NF_END_REFUSED = 5, // a reset received by a connect (SYN_SENT): refused
	// The end of a socket a received reset closed, with its counters: an orphan (no
	// process holds it), whose end follows the reset at once.
	NF_END_RESET_IN_CLOSED = 6,
};

// One TCP socket's counters: bytes on the wire (payload plus headers per segment)
// and segments each way, its smoothed RTT (us << 3; 0: its handshake was never
// answered) and state.
struct nf_sock_rec {
	struct flow_key key;
	__u64 bytes_out;
	__u64 segs_out;
	__u64 bytes_in;
	__u64 segs_in;
	__u64 ts_ns;
	__u32 srtt_us;
	__u8 initiator;
	__u8 state;
	__u8 end;
	__u8 pad;
};

// A cgroup v2 directory whose sockets are accounted: its id and depth below the root.
#define NF_MAX_WATCH 8
struct nf_watch {
	__u64 id;
	__u32 level;
	__u32 pad;
};

struct nf_record_hdr {
	__u32 kind;
	__u32 len; // payload bytes that follow the header's fixed part
	__u64 ts_ns;
	struct flow_key flow;
	__u32 pid;
	__u32 wire_len; // the packet's length on the wire (captures)
	char comm[16];
};

struct nf_record {
	struct nf_record_hdr h;
	__u8 data[NF_PAYLOAD];
};

struct nf_packet {
	struct nf_record_hdr h;
	__u8 data[NF_SNAP_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NF_MAX_FLOWS);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
} nf_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NF_MAX_FLOWS);
	__type(key, struct owner_key);
	__type(value, struct owner_val);
} nf_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nf_config);
} nf_cfg SEC(".maps");

// Cgroups whose packets are captured (value unused).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NF_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, __u32);
} nf_capture SEC(".maps");

// Protected cgroups (value: 1).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NF_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, __u32);
} nf_protect SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NF_MAX_ALLOW);
	__type(key, struct seg_key);
	__type(value, __u8);
} nf_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NF_MAX_ALLOW);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct seg_cidr_key);
	__type(value, __u8);
} nf_allow_cidr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nf_stats);
} nf_stats SEC(".maps");

// DNS answers, ClientHellos, denials.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} nf_records SEC(".maps");

// Flows changed since user space's last read (struct nf_change).
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} nf_changes SEC(".maps");

// Captured packets: their own ring, so a busy capture cannot crowd out the rest.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 23);
} nf_packets SEC(".maps");

// Sockets that ended (struct nf_sock_rec), read by user space on its own clock.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 23);
} nf_ends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NF_MAX_WATCH);
	__type(key, __u32);
	__type(value, struct nf_watch);
} nf_watch SEC(".maps");

// Per cgroup id: whether it is watched (bit 0), and nf_config.watched when that was
// found (the bits above).
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NF_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, __u32);
} nf_watch_verdicts SEC(".maps");

// Processes that sent to UDP port 53 (nf_connect): the only ones whose received
// datagrams dns.h looks at, with socket accounting.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} nf_dns_askers SEC(".maps");

// Per CPU, the last verdict found, in front of nf_watch_verdicts (a socket's events
// come in runs from one cgroup): one word, so a program that interrupts another on
// the CPU (a reset in softirq) cannot leave it torn. The cgroup id, with
// nf_config.watched in bits 56..62 and the verdict in bit 63 (a kernfs id's high
// half is its generation, never that large; an id that is goes to the hash).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nf_watch_last SEC(".maps");

// Per CPU, the orphaned socket a received reset is closing (nf_sock_reset_in): its
// end (nf_sock_end) follows in the same softirq, on this CPU, and takes it.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nf_reset_orphan SEC(".maps");

// First payloads read (first_send.h): per CPU, the last read for each of 256 slots,
// by process, peer, service port and end (a slot taken by another only reads one
// again).
struct nf_first_send_key {
	__u64 cgid;
	__u8 peer[16];
	__u32 tgid;
	__u16 port; // the service's: the peer's on a connection made, ours on one accepted
	__u16 accepted; // 1 on a connection accepted (the server's end)
};
_Static_assert(sizeof(struct nf_first_send_key) == 32, "compared as four words");
struct nf_first_send_slot {
	struct nf_first_send_key key;
	__u64 at; // when read, on first_send_clock()
};
#define NF_FIRST_SEND_SLOTS 256
struct nf_first_send_cache {
	struct nf_first_send_slot slot[NF_FIRST_SEND_SLOTS];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nf_first_send_cache);
} nf_first_sends SEC(".maps");

// Socket accounting's UDP (udp.h): per socket, what it sent to and received from its
// current peer since that was last added to the flow table.
struct nf_udp_sock {
	struct flow_key key; // proto 0 until the first datagram
	__u64 bytes_out;
	__u64 bytes_in;
	__u64 pkts_out;
	__u64 pkts_in;
	__u64 added_at; // nf_clock()
	__u8 initiator;
	__u8 pad[7];
};
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct nf_udp_sock);
} nf_udp_socks SEC(".maps");

// The socket programs' clock: jiffies where user space knows the tick rate (CONFIG_HZ,
// set at load), else nanoseconds. Tracing programs may not use the coarse clock, and
// jiffies cost a load.
volatile const __u64 nf_hz = 0;
static __always_inline __u64 nf_clock(void)
{
	return nf_hz ? bpf_jiffies64() : bpf_ktime_get_ns();
}
#define nf_seconds(n) ((n) * (nf_hz ?: 1000000000ULL))

static __always_inline struct nf_stats *nf_stat(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&nf_stats, &zero);
}

// A record of nf_records with its header zeroed, or NULL (the ring full: counted).
static __always_inline struct nf_record *nf_record_reserve(void)
{
	struct nf_record *r = bpf_ringbuf_reserve(&nf_records, sizeof(*r), 0);
	if (!r) {
		struct nf_stats *st = nf_stat();
		if (st)
			__sync_fetch_and_add(&st->records_lost, 1);
		return NULL;
	}
	__builtin_memset(&r->h, 0, sizeof(r->h));
	return r;
}

#endif // RAMPART_NETFLOW_MAPS_H
