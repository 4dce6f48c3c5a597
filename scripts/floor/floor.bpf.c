// SPDX-License-Identifier: GPL-2.0
// The least a flow table can cost a connection (scripts/vm-cgroup-skb-floor):
// cgroup_skb programs that do nothing, and a socket-end tracepoint that stores one
// entry per socket.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

struct end_key {
	__u64 cgid;
	__u32 daddr;
	__u32 saddr;
	__u16 dport;
	__u16 sport;
	__u32 pad;
};

struct end_val {
	__u64 bytes_in;
	__u64 bytes_out;
	__u64 segs_in;
	__u64 segs_out;
	__u64 ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct end_key);
	__type(value, struct end_val);
} socket_ends SEC(".maps");

SEC("cgroup_skb/egress")
int nop_egress(struct __sk_buff *skb)
{
	return 1;
}

SEC("cgroup_skb/ingress")
int nop_ingress(struct __sk_buff *skb)
{
	return 1;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(socket_end, struct sock *sk)
{
	if (sk->__sk_common.skc_family != 2 || !sk->__sk_common.skc_dport)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	struct end_key k = {
		.cgid = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id),
		.daddr = sk->__sk_common.skc_daddr,
		.saddr = sk->__sk_common.skc_rcv_saddr,
		.dport = sk->__sk_common.skc_dport,
		.sport = tp->inet_conn.icsk_inet.inet_sport,
	};
	struct end_val v = {
		.bytes_in = tp->bytes_received,
		.bytes_out = tp->bytes_acked,
		.segs_in = tp->segs_in,
		.segs_out = tp->segs_out,
		.ts = bpf_ktime_get_ns(),
	};
	bpf_map_update_elem(&socket_ends, &k, &v, BPF_ANY);
	return 0;
}

// sock_ops at the cgroup v2 root that returns at once: what the kernel's per-callback
// dispatch costs a connection (timeout, window, ECN, connect and established
// callbacks on both sides).
SEC("sockops")
int sockops_nop(struct bpf_sock_ops *ops)
{
	return 1;
}

// One entry per edge, not per socket: the container's cgroup, the peer, the service
// port (the listener's), and which side this socket was.
struct edge_key {
	__u64 cgid;
	__u32 peer;
	__u16 service_port;
	__u8 inbound;
	__u8 pad;
};

struct edge_val {
	__u64 connections;
	__u64 bytes_in;
	__u64 bytes_out;
	__u64 segs_in;
	__u64 segs_out;
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct edge_key);
	__type(value, struct edge_val);
} edges SEC(".maps");

// Ports with a listener (user space fills it; here the storm's server port is
// found as the lower of the two, which costs the same one array read).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} listening SEC(".maps");

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(edge_end, struct sock *sk)
{
	if (sk->__sk_common.skc_family != 2 || !sk->__sk_common.skc_dport)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	__u16 sport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	__u16 dport = bpf_ntohs(sk->__sk_common.skc_dport);
	__u32 port_key = sport;
	__u8 *listens = bpf_map_lookup_elem(&listening, &port_key);
	bool inbound = (listens && *listens) || sport < dport;
	struct edge_key k = {
		.cgid = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id),
		.peer = sk->__sk_common.skc_daddr,
		.service_port = inbound ? sport : dport,
		.inbound = inbound,
	};
	struct edge_val *v = bpf_map_lookup_elem(&edges, &k);
	if (!v) {
		struct edge_val zero = {};
		bpf_map_update_elem(&edges, &k, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&edges, &k);
		if (!v)
			return 0;
	}
	__sync_fetch_and_add(&v->connections, 1);
	__sync_fetch_and_add(&v->bytes_in, tp->bytes_received);
	__sync_fetch_and_add(&v->bytes_out, tp->bytes_acked);
	__sync_fetch_and_add(&v->segs_in, tp->segs_in);
	__sync_fetch_and_add(&v->segs_out, tp->segs_out);
	v->last_ns = bpf_ktime_get_ns();
	return 0;
}

// One record per socket end in a ring buffer, no wakeup (user space reads it on its
// own clock and adds the sockets to their flows).
struct end_record {
	struct end_key key;
	struct end_val val;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} ends SEC(".maps");

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(ring_end, struct sock *sk)
{
	if (sk->__sk_common.skc_family != 2 || !sk->__sk_common.skc_dport)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	struct end_record *r = bpf_ringbuf_reserve(&ends, sizeof(*r), 0);
	if (!r)
		return 0;
	r->key.cgid = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
	r->key.daddr = sk->__sk_common.skc_daddr;
	r->key.saddr = sk->__sk_common.skc_rcv_saddr;
	r->key.dport = sk->__sk_common.skc_dport;
	r->key.sport = tp->inet_conn.icsk_inet.inet_sport;
	r->key.pad = 0;
	r->val.bytes_in = tp->bytes_received;
	r->val.bytes_out = tp->bytes_acked;
	r->val.segs_in = tp->segs_in;
	r->val.segs_out = tp->segs_out;
	r->val.ts = bpf_ktime_get_ns();
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}
