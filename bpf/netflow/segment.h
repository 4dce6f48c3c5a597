// SPDX-License-Identifier: GPL-2.0
// Learned segmentation in protect mode: a protected cgroup (nf_protect) may open only
// the connections its baseline lists (nf_allow), and accept only the inbound
// connections it lists; anything else is refused (connect, and UDP sent without
// connect: EPERM) or dropped (an inbound SYN), and reported through nf_records. An
// edge names an address, any address, or a network (nf_allow_cidr). Loopback is never
// blocked. Every connect also records its process in nf_owners, so a flow names who
// opened it.
#ifndef RAMPART_NETFLOW_SEGMENT_H
#define RAMPART_NETFLOW_SEGMENT_H

#include "netflow/maps.h"

static __always_inline bool nf_loopback(const __u8 *a)
{
	__u64 hi, lo;
	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&lo, a + 8, 8);
	if (hi != 0)
		return false;
	if (lo == bpf_cpu_to_be64(1ULL))
		return true;
	return a[8] == 0 && a[9] == 0 && a[10] == 0xff && a[11] == 0xff && a[12] == 127;
}

// The exact edge, then any port of the address, then the port from any address, then
// a network holding the address (with the port, then with any port).
static __always_inline bool nf_allowed(__u64 cgid, const __u8 *addr, __u16 port, __u8 proto,
				       __u8 dir)
{
	struct seg_key k = {.cgid = cgid, .port = port, .proto = proto, .dir = dir};
	__builtin_memcpy(k.addr, addr, 16);
	if (bpf_map_lookup_elem(&nf_allow, &k))
		return true;
	k.port = 0;
	if (bpf_map_lookup_elem(&nf_allow, &k))
		return true;
	k.port = port;
	__builtin_memset(k.addr, 0, 16);
	if (bpf_map_lookup_elem(&nf_allow, &k))
		return true;
	struct seg_cidr_key c = {.prefixlen = SEG_CIDR_EXACT_BITS + 128,
				 .cgid_lo = (__u32)cgid,
				 .cgid_hi = (__u32)(cgid >> 32),
				 .port = port,
				 .proto = proto,
				 .dir = dir};
	__builtin_memcpy(c.addr, addr, 16);
	if (bpf_map_lookup_elem(&nf_allow_cidr, &c))
		return true;
	c.port = 0;
	return bpf_map_lookup_elem(&nf_allow_cidr, &c) != NULL;
}

static __always_inline bool nf_inbound_allowed(const struct nf_pkt *p)
{
	// Only a connection's first packet is judged: replies and established
	// connections pass (they were judged when they began).
	if (p->key.proto != NF_TCP || (p->tcp_flags & (NF_TCP_SYN | NF_TCP_ACK)) != NF_TCP_SYN)
		return true;
	if (!bpf_map_lookup_elem(&nf_protect, &p->key.cgid) || nf_loopback(p->key.remote))
		return true;
	if (nf_allowed(p->key.cgid, p->key.remote, p->key.lport, NF_TCP, 2))
		return true;
	struct nf_stats *st = nf_stat();
	if (st)
		__sync_fetch_and_add(&st->inbound_denied, 1);
	struct nf_record_hdr *r = bpf_ringbuf_reserve(&nf_records, sizeof(*r), 0);
	if (!r) {
		if (st)
			__sync_fetch_and_add(&st->records_lost, 1);
		return false;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->kind = NF_REC_DENY_INBOUND;
	r->ts_ns = bpf_ktime_get_ns();
	r->flow = p->key;
	bpf_ringbuf_submit(r, 0);
	return false;
}

// 1 lets the connect (or datagram) through, 0 refuses it. A connect records its
// process as the flow's owner; a datagram sent without connect() (sendto) is judged
// only, as unconnected UDP may send one per packet.
static __always_inline int nf_connect(struct bpf_sock_addr *ctx, const __u8 *addr,
				      bool record_owner)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 proto = ctx->protocol;
	struct owner_key ok = {.cgid = cgid, .rport = port, .proto = proto};
	__builtin_memcpy(ok.remote, addr, 16);
	struct owner_val ov = {.pid = bpf_get_current_pid_tgid() >> 32};
	// A resolver: its answers are read at its receives (dns.h).
	if (proto == NF_UDP && port == 53) {
		__u8 yes = 1;
		bpf_map_update_elem(&nf_dns_askers, &ov.pid, &yes, BPF_ANY);
	}
	if (record_owner) {
		// The same process connecting to the same end again (a connect storm, a
		// pool) leaves the entry as it is: a lookup, not an update of the LRU.
		struct owner_val *known = bpf_map_lookup_elem(&nf_owners, &ok);
		if (!known || known->pid != ov.pid) {
			ov.ts_ns = bpf_ktime_get_ns();
			bpf_get_current_comm(ov.comm, sizeof(ov.comm));
			bpf_map_update_elem(&nf_owners, &ok, &ov, BPF_ANY);
		}
	}
	__u32 zero = 0;
	struct nf_config *cfg = bpf_map_lookup_elem(&nf_cfg, &zero);
	if (!cfg || !(cfg->flags & NF_CFG_PROTECT))
		return 1;
	if (!bpf_map_lookup_elem(&nf_protect, &cgid) || nf_loopback(addr))
		return 1;
	bpf_get_current_comm(ov.comm, sizeof(ov.comm));
	if (nf_allowed(cgid, addr, port, proto, 1))
		return 1;
	struct nf_stats *st = nf_stat();
	if (st)
		__sync_fetch_and_add(&st->connects_denied, 1);
	struct nf_record_hdr *r = bpf_ringbuf_reserve(&nf_records, sizeof(*r), 0);
	if (r) {
		__builtin_memset(r, 0, sizeof(*r));
		r->kind = NF_REC_DENY_CONNECT;
		r->ts_ns = bpf_ktime_get_ns();
		r->flow.cgid = cgid;
		__builtin_memcpy(r->flow.remote, addr, 16);
		r->flow.rport = port;
		r->flow.proto = proto;
		r->pid = ov.pid;
		__builtin_memcpy(r->comm, ov.comm, 16);
		bpf_ringbuf_submit(r, 0);
	} else if (st) {
		__sync_fetch_and_add(&st->records_lost, 1);
	}
	return 0;
}

static __always_inline void nf_addr6(struct bpf_sock_addr *ctx, __u8 *addr)
{
	__u32 a[4];
	// The context's words must be read one at a time.
	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	__builtin_memcpy(addr, a, 16);
}

SEC("cgroup/connect4")
int nf_connect4(struct bpf_sock_addr *ctx)
{
	__u8 addr[16];
	v4_mapped(addr, ctx->user_ip4);
	return nf_connect(ctx, addr, true);
}

SEC("cgroup/connect6")
int nf_connect6(struct bpf_sock_addr *ctx)
{
	__u8 addr[16];
	nf_addr6(ctx, addr);
	return nf_connect(ctx, addr, true);
}

// UDP datagrams sent with an address (sendto/sendmsg on an unconnected socket): the
// connect hooks never see them.
SEC("cgroup/sendmsg4")
int nf_sendmsg4(struct bpf_sock_addr *ctx)
{
	__u8 addr[16];
	v4_mapped(addr, ctx->user_ip4);
	return nf_connect(ctx, addr, false);
}

SEC("cgroup/sendmsg6")
int nf_sendmsg6(struct bpf_sock_addr *ctx)
{
	__u8 addr[16];
	nf_addr6(ctx, addr);
	return nf_connect(ctx, addr, false);
}

#endif // RAMPART_NETFLOW_SEGMENT_H
