// SPDX-License-Identifier: GPL-2.0
// UDP flows with socket accounting. UDP sockets keep no counters, so the datagrams are
// counted as they are sent and received: fexit on udp_sendmsg and udpv6_sendmsg, and on
// the receives dns.h hooks, where the kernel has BPF trampolines. Per socket (socket
// storage: no hash on the way), to and from its current peer; added to the flow table
// (the packet path's, which user space reads through nf_changes) when the peer changes,
// at most once a second while it talks, and at the socket's end (udp_destroy_sock).
#ifndef RAMPART_NETFLOW_UDP_H
#define RAMPART_NETFLOW_UDP_H

#include "netflow/dns.h"
#include "netflow/flow.h"
#include "netflow/sockets.h"

// Adds what a socket counted since the last time to its flow, and starts again.
static __always_inline void nf_udp_add(struct nf_udp_sock *u, const struct nf_config *cfg,
				       __u64 now)
{
	u->added_at = now;
	__u64 pkts_out = u->pkts_out, pkts_in = u->pkts_in;
	if (!pkts_out && !pkts_in)
		return;
	__u64 bytes_out = u->bytes_out, bytes_in = u->bytes_in;
	// Subtracted, not zeroed: a datagram counted meanwhile on another CPU stays.
	__sync_fetch_and_add(&u->pkts_out, -pkts_out);
	__sync_fetch_and_add(&u->pkts_in, -pkts_in);
	__sync_fetch_and_add(&u->bytes_out, -bytes_out);
	__sync_fetch_and_add(&u->bytes_in, -bytes_in);
	struct nf_pkt p = {.key = u->key};
	bool created;
	struct flow_val *v = nf_flow_entry(&p, cfg, u->initiator == NF_INIT_LOCAL, true,
					   bpf_ktime_get_ns(), &created);
	if (!v)
		return;
	__sync_fetch_and_add(&v->bytes_out, bytes_out);
	__sync_fetch_and_add(&v->pkts_out, pkts_out);
	__sync_fetch_and_add(&v->bytes_in, bytes_in);
	__sync_fetch_and_add(&v->pkts_in, pkts_in);
	nf_flow_touched(&p, v, cfg, 0);
}

// A datagram of `len` bytes sent (`out`) or received on `sk`, a socket of watched
// cgroup `cgid`, to or from `remote`:`rport`.
static __always_inline void nf_udp_count(struct sock *sk, const struct nf_config *cfg, __u64 cgid,
					 const __u8 remote[16], __u16 rport, __u64 len, bool out)
{
	struct nf_udp_sock *u =
		bpf_sk_storage_get(&nf_udp_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!u)
		return;
	__u64 now = nf_clock();
	__u64 hi, lo;
	__builtin_memcpy(&hi, remote, 8);
	__builtin_memcpy(&lo, remote + 8, 8);
	const __u64 *known = (const __u64 *)u->key.remote;
	bool same = u->key.proto && u->key.rport == rport && known[0] == hi && known[1] == lo;
	if (!same || now - u->added_at >= nf_seconds(1))
		nf_udp_add(u, cfg, now);
	if (!same) {
		struct flow_key *k = &u->key;
		k->cgid = cgid;
		k->proto = NF_UDP;
		k->lport = sk->__sk_common.skc_num;
		k->rport = rport;
		__builtin_memcpy(k->remote, remote, 16);
		if (sk->__sk_common.skc_family == NF_AF_INET)
			v4_mapped(k->local, sk->__sk_common.skc_rcv_saddr);
		else
			__builtin_memcpy(k->local, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		u->initiator = out ? NF_INIT_LOCAL : NF_INIT_REMOTE;
	}
	// On the wire: an IP header (IPv4 for a v4-mapped peer) and UDP's 8 bytes.
	__u64 wire = len + 8 + (nf_is_v4_mapped(remote) ? 20 : 40);
	if (out) {
		__sync_fetch_and_add(&u->bytes_out, wire);
		__sync_fetch_and_add(&u->pkts_out, 1);
	} else {
		__sync_fetch_and_add(&u->bytes_in, wire);
		__sync_fetch_and_add(&u->pkts_in, 1);
	}
}

// The configuration when UDP is counted here (socket accounting with all of this
// file's programs attached, the packet programs not: they count it then), else NULL.
static __always_inline struct nf_config *nf_udp_config(void)
{
	__u32 zero = 0;
	struct nf_config *cfg = bpf_map_lookup_elem(&nf_cfg, &zero);
	__u32 want = NF_CFG_SOCKETS | NF_CFG_UDP;
	return cfg && (cfg->flags & (want | NF_CFG_PACKETS)) == want ? cfg : NULL;
}

// The peer a send or receive names (the address it filled in or was given, kernel
// memory), else the socket's own; false when neither is an IP end.
static __always_inline bool nf_udp_peer(struct sock *sk, struct msghdr *msg, __u8 remote[16],
					__u16 *port)
{
	struct sockaddr_in6 sa = {};
	if (msg->msg_name)
		bpf_probe_read_kernel(&sa, sizeof(sa), msg->msg_name);
	if (nf_sockaddr_end(&sa, remote, port))
		return true;
	*port = bpf_ntohs(sk->__sk_common.skc_dport);
	if (sk->__sk_common.skc_family == NF_AF_INET)
		v4_mapped(remote, sk->__sk_common.skc_daddr);
	else
		__builtin_memcpy(remote, &sk->__sk_common.skc_v6_daddr, 16);
	return *port != 0;
}

static __always_inline int nf_udp_sent(struct sock *sk, struct msghdr *msg, int ret)
{
	if (ret < 0)
		return 0;
	struct nf_config *cfg = nf_udp_config();
	if (!cfg)
		return 0;
	__u64 cgid = nf_watched_cgroup(sk, cfg);
	if (!cgid)
		return 0;
	__u8 remote[16] = {};
	__u16 port;
	if (nf_udp_peer(sk, msg, remote, &port))
		nf_udp_count(sk, cfg, cgid, remote, port, ret, true);
	return 0;
}

// An IPv6 socket's datagram to an IPv4 (v4-mapped) peer goes on through udp_sendmsg:
// counted there by udpv6_sendmsg's program only.
SEC("fexit/udp_sendmsg")
int BPF_PROG(nf_udp_send4, struct sock *sk, struct msghdr *msg, size_t len, int ret)
{
	if (sk->__sk_common.skc_family != NF_AF_INET)
		return 0;
	return nf_udp_sent(sk, msg, ret);
}

SEC("fexit/udpv6_sendmsg")
int BPF_PROG(nf_udp_send6, struct sock *sk, struct msghdr *msg, size_t len, int ret)
{
	return nf_udp_sent(sk, msg, ret);
}

// The end of a receive: the datagram counted, and read if it is a DNS answer (dns.h).
// A peek is neither: the receive after it takes the same datagram.
static __always_inline int nf_udp_received(struct sock *sk, struct msghdr *msg, int flags,
					   int ret)
{
	if (ret < 0 || (flags & 0x2 /* MSG_PEEK */))
		return 0;
	__u8 remote[16] = {};
	__u16 port;
	if (!nf_udp_peer(sk, msg, remote, &port))
		return 0;
	struct nf_config *cfg = nf_udp_config();
	if (cfg) {
		__u64 cgid = nf_watched_cgroup(sk, cfg);
		if (cgid)
			nf_udp_count(sk, cfg, cgid, remote, port, ret, false);
	}
	return nf_dns_udp_recv(sk, msg, flags, ret, remote, port);
}

SEC("fexit/udp_recvmsg")
int BPF_PROG(nf_udp_recv4, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	return nf_udp_received(sk, msg, flags, ret);
}

SEC("fexit/udpv6_recvmsg")
int BPF_PROG(nf_udp_recv6, struct sock *sk, struct msghdr *msg, size_t len, int flags,
	     int *addr_len, int ret)
{
	return nf_udp_received(sk, msg, flags, ret);
}

// The socket's end: what it counted since the last time goes to its flow.
static __always_inline int nf_udp_end(struct sock *sk)
{
	struct nf_config *cfg = nf_udp_config();
	if (!cfg)
		return 0;
	struct nf_udp_sock *u = bpf_sk_storage_get(&nf_udp_socks, sk, 0, 0);
	if (u)
		nf_udp_add(u, cfg, nf_clock());
	return 0;
}

SEC("fentry/udp_destroy_sock")
int BPF_PROG(nf_udp_end4, struct sock *sk)
{
	return nf_udp_end(sk);
}

SEC("fentry/udpv6_destroy_sock")
int BPF_PROG(nf_udp_end6, struct sock *sk)
{
	return nf_udp_end(sk);
}

#endif // RAMPART_NETFLOW_UDP_H
