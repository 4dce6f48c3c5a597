// SPDX-License-Identifier: GPL-2.0
// A TCP connection's end, read from its socket: the counters of the packets that
// passed nf_tcp_quick since its last fold, and how it ended. This is what lets a
// connection's FINs and RSTs pass at once in cgroup_skb: one tracepoint run per
// socket (and one per reset) instead of a full run per closing packet.
//
// The programs fire for every TCP socket on the host; only a socket whose flow is
// already in nf_flows (a watched cgroup's, created by its SYN) is folded, so an
// unwatched socket costs one lookup.
#ifndef RAMPART_NETFLOW_SOCKEND_H
#define RAMPART_NETFLOW_SOCKEND_H

#include "netflow/maps.h"
#include "netflow/flow.h"

#define NF_AF_INET 2
#define NF_AF_INET6 10

// The socket's flow key, as the packets of its cgroup had it. False for a socket
// that never had a peer. The local port is read from inet_sport: inet_num is cleared
// when the port is released, before the socket is destroyed.
static __always_inline bool nf_sock_key(struct sock *sk, struct tcp_sock *tp, struct flow_key *k)
{
	__u16 family = sk->__sk_common.skc_family;
	if (!sk->__sk_common.skc_dport)
		return false;
	__builtin_memset(k, 0, sizeof(*k));
	if (family == NF_AF_INET) {
		v4_mapped(k->local, sk->__sk_common.skc_rcv_saddr);
		v4_mapped(k->remote, sk->__sk_common.skc_daddr);
	} else if (family == NF_AF_INET6) {
		// A dual-stack socket talking IPv4 holds v4-mapped addresses: the key its
		// packets made.
		BPF_CORE_READ_INTO(&k->local, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&k->remote, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		return false;
	}
	k->lport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	k->rport = bpf_ntohs(sk->__sk_common.skc_dport);
	k->proto = NF_TCP;
	k->cgid = BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
	return true;
}

// Folds a socket's counters into its flow, with `flags` (NF_FLAG_* shifted) added.
// `ended`: the socket is being destroyed, so an answered connection that was not
// reset closed with FINs both ways.
static __always_inline void nf_sock_fold(struct sock *sk, __u64 flags, bool ended)
{
	// tcp_send_reset's socket may be NULL (a reply to a packet without one).
	if (!sk)
		return;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return;
	struct flow_key k;
	if (!nf_sock_key(sk, tp, &k))
		return;
	struct flow_val *v = bpf_map_lookup_elem(&nf_flows, &k);
	if (!v)
		return;
	__u32 zero = 0;
	struct nf_config *cfg = bpf_map_lookup_elem(&nf_cfg, &zero);
	if (!cfg)
		return;
	// Per segment: the IP header (IPv4 also for a dual-stack socket's v4-mapped
	// peer) and the TCP header with the options this connection uses.
	__u64 v4_prefix = 0;
	__builtin_memcpy(&v4_prefix, k.remote + 4, 8);
	bool v4 = sk->__sk_common.skc_family == NF_AF_INET ||
		  v4_prefix == bpf_cpu_to_be64(0xffffULL);
	__u64 hdr = (v4 ? 20 : 40) + tp->tcp_header_len;
	__u64 sent = tp->bytes_acked + (__u32)(tp->snd_nxt - tp->snd_una);
	nf_raise(&v->pkts_out, tp->segs_out);
	nf_raise(&v->bytes_out, sent + tp->segs_out * hdr);
	nf_raise(&v->pkts_in, tp->segs_in);
	nf_raise(&v->bytes_in, tp->bytes_received + tp->segs_in * hdr);
	v->last_ns = bpf_ktime_get_ns();
	if (ended) {
		// Answered: an accepted socket exists only after its handshake; an opened
		// one took an RTT sample from the SYN-ACK, or received past it (a refusal
		// is the one RST segment in).
		bool answered = v->initiator != NF_INIT_LOCAL || tp->srtt_us || tp->segs_in > 1;
		__u64 rst = ((__u64)NF_TCP_RST << NF_FLAG_OUT_SHIFT) | ((__u64)NF_TCP_RST << NF_FLAG_IN_SHIFT);
		if (answered)
			flags |= ((__u64)NF_TCP_ACK << NF_FLAG_OUT_SHIFT) | ((__u64)NF_TCP_ACK << NF_FLAG_IN_SHIFT);
		if (answered && !((v->flags | flags) & rst))
			flags |= ((__u64)NF_TCP_FIN << NF_FLAG_OUT_SHIFT) | ((__u64)NF_TCP_FIN << NF_FLAG_IN_SHIFT);
	}
	if (flags && (v->flags & flags) != flags)
		__sync_fetch_and_or(&v->flags, flags);
	if (v->gen != cfg->gen) {
		struct nf_pkt p = {.key = k};
		nf_report_change(&p, v, cfg->gen);
	}
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(nf_tcp_end, struct sock *sk)
{
	nf_sock_fold(sk, 0, true);
	return 0;
}

// A reset received: the socket is closed next, its counters as they are.
SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(nf_tcp_rst_in, struct sock *sk)
{
	nf_sock_fold(sk, (__u64)NF_TCP_RST << NF_FLAG_IN_SHIFT, false);
	return 0;
}

// A reset sent by a connection's own socket (closed with unread data, aborted). A
// reply to a packet without a connection has no full socket and is not folded: its
// packet runs in full instead.
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(nf_tcp_rst_out, struct sock *sk)
{
	nf_sock_fold(sk, (__u64)NF_TCP_RST << NF_FLAG_OUT_SHIFT, false);
	return 0;
}

#endif // RAMPART_NETFLOW_SOCKEND_H
