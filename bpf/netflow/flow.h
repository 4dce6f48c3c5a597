// SPDX-License-Identifier: GPL-2.0
// The flow table: per-flow counters updated on cgroup_skb egress and ingress, one map
// entry per cgroup and 5-tuple (local/remote, so both directions share it), and what
// user space cannot count itself without seeing every packet: DNS answers, the first
// TLS ClientHello of a flow, and captured packets of the cgroups being captured.
//
// A TCP flow is counted per socket, not per packet: its packets without SYN or RST
// (all of a bulk transfer's, the ACKs of a connect, a FIN received first) return at
// once (nf_tcp_quick), and the socket's own counters (bytes sent and received,
// segments each way) are copied into the flow on the packets that do run in full:
// SYN, RST, a FIN sent, a FIN received after ours, the first payload, and one packet
// in 64 segments or per MiB each way, so a long connection's counters keep moving.
// UDP, and packets without a connection's full socket, are counted per packet.
#ifndef RAMPART_NETFLOW_FLOW_H
#define RAMPART_NETFLOW_FLOW_H

#include "netflow/maps.h"

#define NF_TCP_FIN 0x01
#define NF_TCP_SYN 0x02
#define NF_TCP_RST 0x04
#define NF_TCP_ACK 0x10

struct nf_pkt {
	struct flow_key key;
	__u32 l4; // offset of the L4 header
	__u32 payload; // offset of the L4 payload (0: none or unknown)
	__u8 tcp_flags;
};

static __always_inline void v4_mapped(__u8 *dst, __u32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

// Whether an address is an IPv4 one as v4_mapped writes it (::ffff:a.b.c.d): sent with
// an IPv4 header.
static __always_inline bool nf_is_v4_mapped(const __u8 *a)
{
	__u64 hi, lo;
	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&lo, a + 8, 8);
	return hi == 0 && (lo & 0xffffffffULL) == 0xffff0000ULL;
}

// The address and port a socket address holds (a call's source or destination, read
// by the caller), as a flow key keeps them; false when it is neither IPv4 nor IPv6.
static __always_inline bool nf_sockaddr_end(const struct sockaddr_in6 *sa, __u8 *addr,
					    __u16 *port)
{
	if (sa->sin6_family == 2 /* AF_INET */)
		v4_mapped(addr, ((const struct sockaddr_in *)sa)->sin_addr.s_addr);
	else if (sa->sin6_family == 10 /* AF_INET6 */)
		__builtin_memcpy(addr, &sa->sin6_addr, 16);
	else
		return false;
	*port = bpf_ntohs(sa->sin6_port);
	return true;
}

// Fills the flow key (local/remote as seen from the cgroup) and the offsets. False
// when the packet is neither IPv4 nor IPv6. The headers are read in place when the
// skb's linear part holds them (it nearly always does), else copied.
static __always_inline bool nf_parse(struct __sk_buff *skb, bool egress, struct nf_pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 proto;
	__u32 l4;
	bool later_fragment = false;
	if (skb->protocol == bpf_htons(NF_ETH_P_IP)) {
		struct iphdr copy;
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > end) {
			if (bpf_skb_load_bytes(skb, 0, &copy, sizeof(copy)))
				return false;
			ip = &copy;
		}
		v4_mapped(p->key.local, egress ? ip->saddr : ip->daddr);
		v4_mapped(p->key.remote, egress ? ip->daddr : ip->saddr);
		proto = ip->protocol;
		l4 = (ip->ihl & 0xf) * 4;
		later_fragment = ip->frag_off & bpf_htons(0x1fff);
	} else if (skb->protocol == bpf_htons(NF_ETH_P_IPV6)) {
		struct ipv6hdr copy;
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > end) {
			if (bpf_skb_load_bytes(skb, 0, &copy, sizeof(copy)))
				return false;
			ip6 = &copy;
		}
		__builtin_memcpy(p->key.local, egress ? &ip6->saddr : &ip6->daddr, 16);
		__builtin_memcpy(p->key.remote, egress ? &ip6->daddr : &ip6->saddr, 16);
		proto = ip6->nexthdr;
		l4 = sizeof(*ip6);
	} else {
		return false;
	}
	p->key.proto = proto;
	p->l4 = l4;
	if (later_fragment)
		return true;
	if (proto == NF_TCP) {
		struct tcphdr copy;
		struct tcphdr *th = data + (l4 & 0xff);
		if ((void *)(th + 1) > end) {
			if (bpf_skb_load_bytes(skb, l4, &copy, sizeof(copy)))
				return true;
			th = &copy;
		}
		__u16 sport = bpf_ntohs(th->source), dport = bpf_ntohs(th->dest);
		p->key.lport = egress ? sport : dport;
		p->key.rport = egress ? dport : sport;
		__u8 flags = 0;
		if (th->fin)
			flags |= NF_TCP_FIN;
		if (th->syn)
			flags |= NF_TCP_SYN;
		if (th->rst)
			flags |= NF_TCP_RST;
		if (th->ack)
			flags |= NF_TCP_ACK;
		p->tcp_flags = flags;
		p->payload = l4 + th->doff * 4;
	} else if (proto == NF_UDP) {
		__u16 copy[2];
		__u16 *ports = data + (l4 & 0xff);
		if ((void *)(ports + 2) > end) {
			if (bpf_skb_load_bytes(skb, l4, copy, sizeof(copy)))
				return true;
			ports = copy;
		}
		__u16 sport = bpf_ntohs(ports[0]), dport = bpf_ntohs(ports[1]);
		p->key.lport = egress ? sport : dport;
		p->key.rport = egress ? dport : sport;
		p->payload = l4 + 8;
	}
	return true;
}

// Copies the payload at `off` (at most `max` bytes, max <= NF_PAYLOAD) into a new record.
static __always_inline void nf_emit_payload(struct __sk_buff *skb, __u32 kind,
					     const struct nf_pkt *p, __u32 off, __u32 max)
{
	if (off >= skb->len)
		return;
	// 64-bit, clamped, and pinned in its register so the bound checked is the bound
	// passed (clang otherwise checks a 32-bit copy).
	__u64 avail = skb->len - off;
	if (avail > max)
		avail = max;
	if (avail > NF_PAYLOAD)
		avail = NF_PAYLOAD;
	asm volatile("" : "+r"(avail));
	struct nf_record *r = nf_record_reserve();
	if (!r)
		return;
	r->h.kind = kind;
	r->h.ts_ns = bpf_ktime_get_ns();
	r->h.flow = p->key;
	r->h.wire_len = skb->len;
	// As in nf_capture_packet: a length 6.1's verifier can bound to [1, NF_PAYLOAD].
	__u64 len = avail - 1;
	asm volatile("" : "+r"(len));
	len = (len & (NF_PAYLOAD - 1)) + 1;
	if (avail == 0 || avail > NF_PAYLOAD ||
	    bpf_skb_load_bytes(skb, off, r->data, len)) {
		bpf_ringbuf_discard(r, 0);
		return;
	}
	r->h.len = avail;
	bpf_ringbuf_submit(r, 0);
}

static __always_inline void nf_capture_packet(struct __sk_buff *skb, const struct nf_pkt *p,
					      const struct nf_config *cfg, bool egress)
{
	if (!(cfg->flags & NF_CFG_CAPTURE) || !bpf_map_lookup_elem(&nf_capture, &p->key.cgid))
		return;
	__u32 snap = cfg->snaplen;
	if (snap == 0 || snap > NF_SNAP_MAX)
		snap = NF_SNAP_MAX;
	__u64 caplen = skb->len < snap ? skb->len : snap;
	asm volatile("" : "+r"(caplen));
	struct nf_stats *st = nf_stat();
	struct nf_packet *r = bpf_ringbuf_reserve(&nf_packets, sizeof(*r), 0);
	if (!r) {
		if (st)
			__sync_fetch_and_add(&st->records_lost, 1);
		return;
	}
	__builtin_memset(&r->h, 0, sizeof(r->h));
	r->h.kind = NF_REC_PACKET;
	r->h.ts_ns = bpf_ktime_get_ns();
	r->h.flow = p->key;
	r->h.wire_len = skb->len;
	// Direction rides in pid's place: 1 egress, 2 ingress.
	r->h.pid = egress ? 1 : 2;
	// 6.1's verifier learns no lower bound from `caplen == 0` being false, and a
	// length that may be 0 is refused: the length goes as 1 + (caplen - 1) % 256,
	// which it can bound to [1, 256] (the same value for caplen in 1..256).
	__u64 len = caplen - 1;
	asm volatile("" : "+r"(len));
	len = (len & (NF_SNAP_MAX - 1)) + 1;
	if (caplen == 0 || caplen > NF_SNAP_MAX || bpf_skb_load_bytes(skb, 0, r->data, len)) {
		bpf_ringbuf_discard(r, 0);
		return;
	}
	r->h.len = caplen;
	bpf_ringbuf_submit(r, 0);
	if (st)
		__sync_fetch_and_add(&st->packets_captured, 1);
}

// Reports a flow in nf_changes, once per user-space read (generation).
static __always_inline void nf_report_change(const struct nf_pkt *p, struct flow_val *v, __u32 gen)
{
	v->gen = gen;
	struct nf_change *c = bpf_ringbuf_reserve(&nf_changes, sizeof(*c), 0);
	if (!c) {
		// Not reported: user space reads the whole table once instead.
		struct nf_stats *st = nf_stat();
		if (st)
			__sync_fetch_and_add(&st->changes_lost, 1);
		return;
	}
	c->key = p->key;
	c->gen = gen;
	c->pad = 0;
	bpf_ringbuf_submit(c, BPF_RB_NO_WAKEUP);
}

// The socket of the connection a packet belongs to: none for a listener (a
// handshake's packets reach it, its counters are every connection's), a request or
// time-wait socket, or a packet without a socket.
static __always_inline struct bpf_sock *nf_conn_sock(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return NULL;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->state == BPF_TCP_LISTEN)
		return NULL;
	return sk;
}

// A FIN that closes the connection's second direction: sent after the peer's
// (egress, the socket in LAST_ACK or CLOSING), or the peer's after ours (ingress, in
// FIN_WAIT1/2 or CLOSING). Every FIN sent runs in full (the peer's FIN may reach a
// time-wait socket, which runs no program), a FIN received only when it is the last.
static __always_inline bool nf_last_fin(const struct bpf_sock *sk, bool egress)
{
	__u32 state = sk->state;
	if (state == BPF_TCP_CLOSING)
		return true;
	if (egress)
		return state == BPF_TCP_LAST_ACK;
	return state == BPF_TCP_FIN_WAIT1 || state == BPF_TCP_FIN_WAIT2;
}

static __always_inline void nf_raise(__u64 *counter, __u64 value)
{
	// Racing CPUs may each raise it: the larger value wins or is close to it, and
	// the counter never goes back.
	if (*counter < value)
		*counter = value;
}

// Copies the socket's counters into the flow: segments each way, and bytes as payload
// plus this packet's headers per segment (what went on the wire, near enough). The
// kernel has not yet counted this packet's payload (egress: snd_nxt moves after the
// send; ingress: before the receive), so it is added.
static __always_inline void nf_fold_socket(struct __sk_buff *skb, const struct nf_pkt *p,
					   struct flow_val *v, struct bpf_tcp_sock *tp, bool egress)
{
	__u64 hdr = p->payload ? p->payload : p->l4 + 20;
	__u64 payload = p->payload && skb->len > p->payload ? skb->len - p->payload : 0;
	__u64 sent = tp->bytes_acked + (__u32)(tp->snd_nxt - tp->snd_una);
	__u64 received = tp->bytes_received;
	if (egress)
		sent += payload;
	else
		received += payload;
	nf_raise(&v->pkts_out, tp->segs_out);
	nf_raise(&v->bytes_out, sent + tp->segs_out * hdr);
	nf_raise(&v->pkts_in, tp->segs_in);
	nf_raise(&v->bytes_in, received + tp->segs_in * hdr);
}

// Fold a socket's counters into its flow once per this many segments, or bytes, each
// way (powers of two: the crossing of a multiple is the test).
#define NF_FOLD_SEGS_SHIFT 6
#define NF_FOLD_BYTES_SHIFT 20

// 1: a TCP packet user space learns nothing from, passed at once (its bytes are in
// the socket's counters, copied on a later packet of the flow); -1: run in full.
static __always_inline int nf_tcp_quick(struct __sk_buff *skb, const struct nf_config *cfg,
					bool egress)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 l4;
	if (skb->protocol == bpf_htons(NF_ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > end || ip->protocol != NF_TCP ||
		    (ip->frag_off & bpf_htons(0x1fff)))
			return -1;
		l4 = (ip->ihl & 0xf) * 4;
	} else if (skb->protocol == bpf_htons(NF_ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != NF_TCP)
			return -1;
		l4 = sizeof(*ip6);
	} else {
		return -1;
	}
	if (l4 < 20 || l4 > 60)
		return -1;
	struct tcphdr *th = data + l4;
	if ((void *)(th + 1) > end)
		return -1;
	if (th->syn || th->rst)
		return -1;
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return -1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return -1;
	// A handshake's last ACK reaches the listener: nothing to count there (the
	// connection's socket counts it).
	if (sk->state == BPF_TCP_LISTEN)
		return th->fin ? -1 : 1;
	if (th->fin)
		return egress || nf_last_fin(sk, egress) ? -1 : 1;
	struct bpf_tcp_sock *tp = bpf_tcp_sock(sk);
	if (!tp)
		return -1;
	__u32 hdr = l4 + th->doff * 4;
	__u32 payload = skb->len > hdr ? skb->len - hdr : 0;
	__u32 segs = skb->gso_segs ? skb->gso_segs : 1;
	if (egress) {
		// The flow's first payload (a ClientHello, the protocol it speaks).
		if (payload && (cfg->flags & NF_CFG_TLS) && tp->data_segs_out <= segs)
			return -1;
		// segs_out counts this packet already; the bytes sent do not.
		__u64 sent = tp->bytes_acked + (__u32)(tp->snd_nxt - tp->snd_una);
		if (((tp->segs_out - segs) >> NF_FOLD_SEGS_SHIFT) !=
			    (tp->segs_out >> NF_FOLD_SEGS_SHIFT) ||
		    (sent >> NF_FOLD_BYTES_SHIFT) != ((sent + payload) >> NF_FOLD_BYTES_SHIFT))
			return -1;
	} else {
		__u64 received = tp->bytes_received;
		if ((tp->segs_in >> NF_FOLD_SEGS_SHIFT) !=
			    ((tp->segs_in + segs) >> NF_FOLD_SEGS_SHIFT) ||
		    (received >> NF_FOLD_BYTES_SHIFT) !=
			    ((received + payload) >> NF_FOLD_BYTES_SHIFT))
			return -1;
	}
	return 1;
}

// The flow entry of a packet's key, made if new (counted: in flows_created for the
// packet programs, else socket_flows_created), its last-seen set to `now`, or NULL (the
// table refused it). `*created`: this call made it.
static __always_inline struct flow_val *nf_flow_entry(const struct nf_pkt *p,
						      const struct nf_config *cfg, bool egress,
						      bool socket_prog, __u64 now, bool *created)
{
	bool syn_only = p->key.proto == NF_TCP &&
			(p->tcp_flags & (NF_TCP_SYN | NF_TCP_ACK)) == NF_TCP_SYN;
	// A connection's first SYN makes a new flow: its lookup is skipped (the insert
	// below finds a retransmitted SYN's flow), one hash of the key fewer.
	struct flow_val *v = syn_only ? NULL : bpf_map_lookup_elem(&nf_flows, &p->key);
	*created = false;
	if (!v) {
		struct flow_val init = {.first_ns = now, .last_ns = now};
		if (p->key.proto == NF_TCP)
			init.initiator = syn_only ? (egress ? NF_INIT_LOCAL : NF_INIT_REMOTE)
						  : NF_INIT_UNKNOWN;
		else
			init.initiator = egress ? NF_INIT_LOCAL : NF_INIT_REMOTE;
		// Not yet reported: the first packet reports it below.
		init.gen = cfg->gen - 1;
		struct nf_stats *st = nf_stat();
		// NOEXIST: a racing CPU's entry is kept, and both update it below.
		long err = bpf_map_update_elem(&nf_flows, &p->key, &init, BPF_NOEXIST);
		*created = !err;
		if (st) {
			if (!err && socket_prog)
				__sync_fetch_and_add(&st->socket_flows_created, 1);
			else if (!err)
				__sync_fetch_and_add(&st->flows_created, 1);
			else if (err != -17 /* EEXIST */)
				__sync_fetch_and_add(&st->flow_update_failed, 1);
		}
		v = bpf_map_lookup_elem(&nf_flows, &p->key);
		if (!v)
			return NULL;
	}
	v->last_ns = now;
	return v;
}

// Adds `new_flags` (TCP flags, NF_FLAG_*_SHIFT placed) to a flow and reports it once
// per read: user space bumps the generation before it drains the ring and reads
// again the flows reported in the new one, so no change goes unread.
static __always_inline void nf_flow_touched(const struct nf_pkt *p, struct flow_val *v,
					    const struct nf_config *cfg, __u64 new_flags)
{
	if (new_flags && (v->flags & new_flags) != new_flags)
		__sync_fetch_and_or(&v->flags, new_flags);
	if (v->gen != cfg->gen)
		nf_report_change(p, v, cfg->gen);
}

static __always_inline struct flow_val *nf_account(struct __sk_buff *skb, struct nf_pkt *p,
						   const struct nf_config *cfg, bool egress)
{
	bool created;
	struct flow_val *v = nf_flow_entry(p, cfg, egress, false, bpf_ktime_get_ns(), &created);
	if (!v)
		return NULL;
	__u64 new_flags = egress ? (__u64)p->tcp_flags << NF_FLAG_OUT_SHIFT
				 : (__u64)p->tcp_flags << NF_FLAG_IN_SHIFT;
	struct bpf_sock *sk = p->key.proto == NF_TCP ? nf_conn_sock(skb) : NULL;
	struct bpf_tcp_sock *tp = sk ? bpf_tcp_sock(sk) : NULL;
	if (sk && tp) {
		nf_fold_socket(skb, p, v, tp, egress);
		// Past the handshake both ends have ACKed (its last ACK passed unseen).
		if (sk->state != BPF_TCP_SYN_SENT && sk->state != BPF_TCP_SYN_RECV)
			new_flags |= ((__u64)NF_TCP_ACK << NF_FLAG_OUT_SHIFT) |
				     ((__u64)NF_TCP_ACK << NF_FLAG_IN_SHIFT);
		// The other direction's FIN passed nf_tcp_quick unseen.
		if ((p->tcp_flags & NF_TCP_FIN) && nf_last_fin(sk, egress))
			new_flags |= ((__u64)NF_TCP_FIN << NF_FLAG_OUT_SHIFT) |
				     ((__u64)NF_TCP_FIN << NF_FLAG_IN_SHIFT);
	} else if (egress) {
		__sync_fetch_and_add(&v->bytes_out, skb->len);
		__sync_fetch_and_add(&v->pkts_out, 1);
	} else {
		__sync_fetch_and_add(&v->bytes_in, skb->len);
		__sync_fetch_and_add(&v->pkts_in, 1);
	}
	nf_flow_touched(p, v, cfg, new_flags);
	return v;
}

static __always_inline void nf_inspect(struct __sk_buff *skb, struct nf_pkt *p,
				       const struct nf_config *cfg, struct flow_val *v, bool egress)
{
	if (!p->payload || p->payload >= skb->len)
		return;
	if (!egress && p->key.proto == NF_UDP && p->key.rport == 53 && (cfg->flags & NF_CFG_DNS)) {
		nf_emit_payload(skb, NF_REC_DNS, p, p->payload, NF_PAYLOAD);
		return;
	}
	if (egress && p->key.proto == NF_TCP && v && !(v->flags & NF_FLAG_FIRST_DATA) &&
	    (cfg->flags & NF_CFG_TLS)) {
		// Only a flow's first data packet is looked at: a ClientHello (TLS record
		// header: handshake 0x16, version 3.x, handshake type 1) goes whole, anything
		// else as its first bytes (the protocol it speaks).
		__u8 hdr[6] = {};
		bpf_skb_load_bytes(skb, p->payload, hdr, sizeof(hdr));
		__sync_fetch_and_or(&v->flags, NF_FLAG_FIRST_DATA);
		if (hdr[0] == 0x16 && hdr[1] == 3 && hdr[5] == 1)
			nf_emit_payload(skb, NF_REC_TLS, p, p->payload, NF_PAYLOAD);
		else
			nf_emit_payload(skb, NF_REC_FIRST_DATA, p, p->payload, NF_FIRST_DATA);
	}
}

#include "netflow/segment.h"

static __always_inline int nf_skb(struct __sk_buff *skb, bool egress)
{
	__u32 zero = 0;
	// An array lookup: inlined by the verifier, one load.
	struct nf_config *cfg = bpf_map_lookup_elem(&nf_cfg, &zero);
	if (!cfg)
		return 1;
	// Captured cgroups keep every packet: all run in full while any is captured.
	if (!(cfg->flags & NF_CFG_CAPTURE) && nf_tcp_quick(skb, cfg, egress) > 0)
		return 1;
	struct nf_pkt p = {};
	if (!nf_parse(skb, egress, &p))
		return 1;
	p.key.cgid = bpf_skb_cgroup_id(skb);
	if (!egress && (cfg->flags & NF_CFG_PROTECT) && !nf_inbound_allowed(&p))
		return 0;
	struct flow_val *v = nf_account(skb, &p, cfg, egress);
	nf_inspect(skb, &p, cfg, v, egress);
	nf_capture_packet(skb, &p, cfg, egress);
	return 1;
}

SEC("cgroup_skb/egress")
int nf_egress(struct __sk_buff *skb)
{
	return nf_skb(skb, true);
}

SEC("cgroup_skb/ingress")
int nf_ingress(struct __sk_buff *skb)
{
	return nf_skb(skb, false);
}

#endif // RAMPART_NETFLOW_FLOW_H
