// SPDX-License-Identifier: GPL-2.0
// The least a flow table can cost a connection (scripts/vm-cgroup-skb-floor):
// cgroup_skb programs that do nothing, and a socket-end tracepoint that stores one
// entry per socket.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

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
