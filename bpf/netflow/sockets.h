// SPDX-License-Identifier: GPL-2.0
// Socket accounting (`network.accounting: sockets`): TCP flows counted from the
// sockets themselves, with no program on the packet path. A socket's counters (bytes
// and segments each way, its RTT) go to user space once, when it ends
// (tcp_destroy_sock; an abortive close, which zeroes them, at its reset instead; a
// reset received is reported too, as the end cannot tell it from a close), and
// an iterator over the processes' sockets (iter/task_file) reads the live ones when
// user space asks. A loopback connection then costs two to four tracepoint runs, not fourteen
// cgroup_skb runs (scripts/vm-cgroup-skb-floor).
#ifndef RAMPART_NETFLOW_SOCKETS_H
#define RAMPART_NETFLOW_SOCKETS_H

#include "netflow/maps.h"

#define NF_AF_INET 2
#define NF_AF_INET6 10

// Before 6.1 a cgroup kept its ancestors' ids, not pointers to them.
struct cgroup___ids {
	__u64 ancestor_ids[0];
} __attribute__((preserve_access_index));

// The id of a cgroup's ancestor at `level` (its own at its level), 0 if deeper than it.
static __always_inline __u64 nf_cgroup_ancestor(struct cgroup *cg, __u32 level)
{
	if (level > (__u32)cg->level || level > 255)
		return 0;
	// Addresses as numbers: the verifier allows no variable offset on a kernel
	// pointer, so the entry is read with bpf_probe_read_kernel.
	__u64 base = (__u64)cg;
	if (bpf_core_field_exists(struct cgroup, ancestors)) {
		struct cgroup *a = NULL;
		base += bpf_core_field_offset(struct cgroup, ancestors);
		bpf_probe_read_kernel(&a, sizeof(a), (void *)(base + level * sizeof(a)));
		return a ? BPF_CORE_READ(a, kn, id) : 0;
	}
	__u64 id = 0;
	base += bpf_core_field_offset(struct cgroup___ids, ancestor_ids);
	bpf_probe_read_kernel(&id, sizeof(id), (void *)(base + level * sizeof(id)));
	return id;
}

// Whether a cgroup is at or below a watched directory (nf_watch): three probe reads a
// directory, so the answer is kept per cgroup (nf_watch_verdicts) with the number of
// directories it was reached with, and reached again once user space watches more.
static __always_inline bool nf_cgroup_watched(struct cgroup *cg, __u64 id, __u32 n)
{
	__u32 zero = 0;
	__u64 *last = bpf_map_lookup_elem(&nf_watch_last, &zero);
	bool cacheable = (id >> 56) == 0 && n < 128;
	__u64 tagged = id | ((__u64)n << 56);
	if (last && cacheable && (*last & ~(1ULL << 63)) == tagged)
		return *last >> 63;
	__u32 *verdict = bpf_map_lookup_elem(&nf_watch_verdicts, &id);
	if (verdict && (*verdict >> 1) == n) {
		if (last && cacheable)
			*last = tagged | ((__u64)(*verdict & 1) << 63);
		return *verdict & 1;
	}
	__u32 watched = 0;
	for (__u32 i = 0; i < NF_MAX_WATCH; i++) {
		if (i >= n)
			break;
		__u32 slot = i;
		struct nf_watch *w = bpf_map_lookup_elem(&nf_watch, &slot);
		if (w && nf_cgroup_ancestor(cg, w->level) == w->id) {
			watched = 1;
			break;
		}
	}
	__u32 value = (n << 1) | watched;
	bpf_map_update_elem(&nf_watch_verdicts, &id, &value, BPF_ANY);
	if (last && cacheable)
		*last = tagged | ((__u64)watched << 63);
	return watched;
}

// The socket's cgroup id when it is at or below a watched directory, else 0.
static __always_inline __u64 nf_watched_cgroup(struct sock *sk, const struct nf_config *cfg)
{
	struct cgroup *cg = sk->sk_cgrp_data.cgroup;
	if (!cg)
		return 0;
	__u64 id = cg->kn->id;
	return nf_cgroup_watched(cg, id, cfg->watched) ? id : 0;
}

// Fills a flow key's ends from a TCP socket's common part (the local port is the
// caller's: see nf_tcp_counters.sport), and the bytes of IP header its segments
// carry. Read directly: a tracepoint's socket is trusted, and an iterator's, though
// not, may still be read field by field. False when the socket is neither IPv4 nor
// IPv6.
static __always_inline bool nf_sock_key(struct flow_key *k, struct sock *sk, __u64 cgid,
					__u32 *ip_hdr)
{
	__u16 family = sk->__sk_common.skc_family;
	*ip_hdr = 20;
	if (family == NF_AF_INET) {
		v4_mapped(k->local, sk->__sk_common.skc_rcv_saddr);
		v4_mapped(k->remote, sk->__sk_common.skc_daddr);
	} else if (family == NF_AF_INET6) {
		__builtin_memcpy(k->local, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(k->remote, &sk->__sk_common.skc_v6_daddr, 16);
		// A dual-stack socket's IPv4 peer (v4-mapped) is sent with IPv4 headers.
		if (!nf_is_v4_mapped(k->remote))
			*ip_hdr = 40;
	} else {
		return false;
	}
	k->cgid = cgid;
	k->proto = NF_TCP;
	k->rport = bpf_ntohs(sk->__sk_common.skc_dport);
	return true;
}

// A socket record's ends and state (see nf_sock_key), the rest zeroed.
static __always_inline bool nf_sock_ends(struct nf_sock_rec *r, struct sock *sk, __u64 cgid,
					 __u32 *ip_hdr)
{
	__builtin_memset(r, 0, sizeof(*r));
	r->state = sk->__sk_common.skc_state;
	return nf_sock_key(&r->key, sk, cgid, ip_hdr);
}

// A TCP socket's own counters, as read by the caller.
struct nf_tcp_counters {
	__u64 bytes_acked;
	__u64 bytes_received;
	__u32 segs_out;
	__u32 segs_in;
	__u32 srtt_us;
	__u16 header_len; // TCP header with this connection's options
	__u16 sport; // network order (inet_num is cleared before a socket is destroyed)
	// A listener's backlog, which its accepted sockets inherit (sk_clone_lock copies
	// it); 0 on a socket that connected.
	__u32 listen_backlog;
};

// The counters as bytes on the wire (payload plus headers per segment), when, and who
// opened the connection: an accepted socket carries its listener's backlog (a
// listener made with backlog 0 passes its sockets off as connected ones). False when
// the socket has no peer.
static __always_inline bool nf_sock_counters(struct nf_sock_rec *r, const struct nf_tcp_counters *c,
					     __u32 ip_hdr)
{
	__u64 hdr = ip_hdr + c->header_len;
	r->key.lport = bpf_ntohs(c->sport);
	r->segs_out = c->segs_out;
	r->segs_in = c->segs_in;
	r->bytes_out = c->bytes_acked + c->segs_out * hdr;
	r->bytes_in = c->bytes_received + c->segs_in * hdr;
	r->srtt_us = c->srtt_us;
	r->ts_ns = bpf_ktime_get_ns();
	r->initiator = c->listen_backlog ? NF_INIT_REMOTE : NF_INIT_LOCAL;
	return r->key.rport != 0;
}

// A ring record for a socket of a watched cgroup, its ends and state filled in (see
// nf_sock_ends), or NULL: socket accounting off, the cgroup not watched, not an IP
// socket, or the ring full (counted).
static __always_inline struct nf_sock_rec *nf_sock_reserve(struct sock *sk, __u32 *ip_hdr)
{
	__u32 zero = 0;
	struct nf_config *cfg = bpf_map_lookup_elem(&nf_cfg, &zero);
	if (!cfg || !(cfg->flags & NF_CFG_SOCKETS))
		return NULL;
	__u64 cgid = nf_watched_cgroup(sk, cfg);
	if (!cgid)
		return NULL;
	struct nf_sock_rec *r = bpf_ringbuf_reserve(&nf_ends, sizeof(*r), 0);
	if (!r) {
		struct nf_stats *st = nf_stat();
		if (st)
			__sync_fetch_and_add(&st->socket_ends_lost, 1);
		return NULL;
	}
	if (!nf_sock_ends(r, sk, cgid, ip_hdr)) {
		bpf_ringbuf_discard(r, 0);
		return NULL;
	}
	return r;
}

// A socket's record with its counters, at its end or at a reset.
static __always_inline void nf_sock_emit(struct sock *sk, __u8 end)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return;
	__u32 ip_hdr;
	struct nf_sock_rec *r = nf_sock_reserve(&tp->inet_conn.icsk_inet.sk, &ip_hdr);
	if (!r)
		return;
	struct nf_tcp_counters c = {
		.bytes_acked = tp->bytes_acked,
		.bytes_received = tp->bytes_received,
		.segs_out = tp->segs_out,
		.segs_in = tp->segs_in,
		.srtt_us = tp->srtt_us,
		.header_len = tp->tcp_header_len,
		.sport = tp->inet_conn.icsk_inet.inet_sport,
		.listen_backlog = tp->inet_conn.icsk_inet.sk.sk_max_ack_backlog,
	};
	if (!nf_sock_counters(r, &c, ip_hdr)) {
		bpf_ringbuf_discard(r, 0);
		return;
	}
	r->end = end;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

// The checks that end most runs come first, on the socket's common part, before any
// lookup: a run that reports nothing then costs a few loads.

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(nf_sock_end, struct sock *sk)
{
	// No peer: never connected, or an abortive close (its reset reported it, and
	// tcp_disconnect then zeroed its counters and cleared the peer's port).
	if (!sk || !sk->__sk_common.skc_dport)
		return 0;
	__u8 end = NF_END_CLOSED;
	__u32 zero = 0;
	__u64 *orphan = bpf_map_lookup_elem(&nf_reset_orphan, &zero);
	if (orphan && *orphan) {
		if (*orphan == (__u64)sk)
			end = NF_END_RESET_IN_CLOSED;
		*orphan = 0;
	}
	nf_sock_emit(sk, end);
	return 0;
}

// Sent resets. Only an abortive close (SO_LINGER 0) or a close with unread data
// (their sockets are already CLOSE) is reported: the first zeroes the counters after
// its reset; the second's end reports the same counters again. The socket may be
// absent (a reset for no socket) or not a full one (TIME_WAIT, a request).
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(nf_sock_reset, const struct sock *sk, const struct sk_buff *skb)
{
	if (sk && sk->__sk_common.skc_state == BPF_TCP_CLOSE && sk->__sk_common.skc_dport)
		nf_sock_emit((struct sock *)sk, NF_END_RESET);
	return 0;
}

// Received resets (before tcp_reset acts on them). A connect refused (SYN_SENT) is
// reported whole: connect() then disconnects the socket, zeroing its counters and
// peer, so its end has nothing. An orphan's end follows at once, on this CPU: it is
// marked for that end to report (nf_reset_orphan), with no record of its own. Any
// other names the connection only, as its end, which follows with the counters
// when its process closes it, cannot tell a reset from a close.
SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(nf_sock_reset_in, struct sock *sk)
{
	if (!sk || !sk->__sk_common.skc_dport)
		return 0;
	__u8 state = sk->__sk_common.skc_state;
	if (state == BPF_TCP_SYN_SENT) {
		nf_sock_emit(sk, NF_END_REFUSED);
		return 0;
	}
	if (state == BPF_TCP_CLOSE) // tcp_reset ignores it
		return 0;
	if (sk->__sk_common.skc_flags & (1UL << SOCK_DEAD)) {
		__u32 zero = 0;
		__u64 *orphan = bpf_map_lookup_elem(&nf_reset_orphan, &zero);
		if (orphan)
			*orphan = (__u64)sk;
		return 0;
	}
	__u32 ip_hdr;
	struct nf_sock_rec *r = nf_sock_reserve(sk, &ip_hdr);
	if (!r)
		return 0;
	// The local port from the common part: still bound here (it is cleared only
	// before the socket's end).
	r->key.lport = sk->__sk_common.skc_num;
	r->end = NF_END_RESET_IN;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

// Every TCP socket of a watched cgroup a process holds, live: the connections (their
// counters so far) and the listeners (end NF_END_LISTENING). Walked over every
// process's files, not iter/tcp, whose walk sees only the network namespace of the
// process that reads it (each container has its own). A socket held by several
// processes comes once per holder; user space keeps one.
SEC("iter/task_file")
int nf_file_iter(struct bpf_iter__task_file *ctx)
{
	struct file *file = ctx->file;
	if (!file || (file->f_inode->i_mode & 0170000) != 0140000 /* S_IFSOCK */)
		return 0;
	struct socket *sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	// Not trusted (no helper takes it): read field by field, the TCP part of it
	// through bpf_probe_read_kernel.
	struct sock *sk = sock->sk;
	if (!sk || sk->sk_protocol != NF_TCP || sk->sk_type != 1 /* SOCK_STREAM */)
		return 0;
	__u32 zero = 0;
	struct nf_config *cfg = bpf_map_lookup_elem(&nf_cfg, &zero);
	if (!cfg)
		return 0;
	__u64 cgid = nf_watched_cgroup(sk, cfg);
	if (!cgid)
		return 0;
	struct nf_sock_rec r;
	__u32 ip_hdr;
	if (!nf_sock_ends(&r, sk, cgid, &ip_hdr))
		return 0;
	if (r.state == BPF_TCP_LISTEN) {
		__builtin_memset(&r.key.remote, 0, sizeof(r.key.remote));
		r.key.lport = sk->__sk_common.skc_num;
		r.end = NF_END_LISTENING;
		// Its queues: handshakes begun and not finished (a SYN flood's mark, with
		// no packet program to see the SYNs), connections waiting for accept(), and
		// whether the kernel warned of a SYN flood (its queue full: SYN cookies).
		struct inet_connection_sock *icsk = (struct inet_connection_sock *)sk;
		r.segs_in = BPF_CORE_READ(icsk, icsk_accept_queue.qlen.counter);
		r.bytes_in = sk->sk_ack_backlog;
		r.srtt_us = BPF_CORE_READ(icsk, icsk_accept_queue.synflood_warned);
	} else {
		struct tcp_sock *tp = (struct tcp_sock *)sk;
		struct nf_tcp_counters c = {
			.bytes_acked = BPF_CORE_READ(tp, bytes_acked),
			.bytes_received = BPF_CORE_READ(tp, bytes_received),
			.segs_out = BPF_CORE_READ(tp, segs_out),
			.segs_in = BPF_CORE_READ(tp, segs_in),
			.srtt_us = BPF_CORE_READ(tp, srtt_us),
			.header_len = BPF_CORE_READ(tp, tcp_header_len),
			.sport = BPF_CORE_READ(tp, inet_conn.icsk_inet.inet_sport),
			.listen_backlog = sk->sk_max_ack_backlog,
		};
		if (r.state == BPF_TCP_CLOSE || !nf_sock_counters(&r, &c, ip_hdr))
			return 0;
		r.end = NF_END_LIVE;
	}
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

#endif // RAMPART_NETFLOW_SOCKETS_H
