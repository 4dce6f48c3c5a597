// SPDX-License-Identifier: GPL-2.0
// The first payload each TCP socket sends, with socket accounting (the packet path
// reads it from a flow's first data packet): fentry on tcp_sendmsg, where the kernel
// has BPF trampolines. A socket that has sent before returns at once, on one load;
// one whose process sent the same peer and service a first payload within the minute
// is not read (nf_first_sends).
// A TLS ClientHello goes whole (NF_REC_TLS), anything else as its first bytes
// (NF_REC_FIRST_DATA), the records the packet path writes.
#ifndef RAMPART_NETFLOW_FIRST_SEND_H
#define RAMPART_NETFLOW_FIRST_SEND_H

#include "netflow/maps.h"
#include "netflow/msg.h"
#include "netflow/sockets.h"

SEC("fentry/tcp_sendmsg")
int BPF_PROG(nf_first_send, struct sock *sk, struct msghdr *msg, size_t size)
{
	if (!size)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp || tp->bytes_sent)
		return 0;
	__u8 state = sk->__sk_common.skc_state;
	if (state == BPF_TCP_LISTEN || state == BPF_TCP_CLOSE)
		return 0;
	__u32 zero = 0;
	struct nf_config *cfg = bpf_map_lookup_elem(&nf_cfg, &zero);
	if (!cfg || (cfg->flags & (NF_CFG_SOCKETS | NF_CFG_TLS)) != (NF_CFG_SOCKETS | NF_CFG_TLS))
		return 0;
	__u64 cgid = nf_watched_cgroup(sk, cfg);
	if (!cgid)
		return 0;
	// Read once a minute per process, peer, service port and end: a client's hundredth
	// connection to one service says nothing its first did, and a reconnecting
	// client would otherwise pay a ring record each time. Kept per CPU in a
	// direct-mapped cache, before anything is read from the process: a lookup in a
	// hash map, and the bytes read for a key, cost as much as the record.
	struct flow_key fk = {};
	__u32 ip_hdr;
	if (!nf_sock_key(&fk, sk, cgid, &ip_hdr))
		return 0;
	fk.lport = sk->__sk_common.skc_num;
	// An accepted socket carries its listener's backlog (see nf_tcp_counters).
	bool accepted = sk->sk_max_ack_backlog != 0;
	struct nf_first_send_key seen = {
		.cgid = cgid,
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.port = accepted ? fk.lport : fk.rport,
		.accepted = accepted,
	};
	__builtin_memcpy(seen.peer, fk.remote, sizeof(seen.peer));
	struct nf_first_send_cache *cache = bpf_map_lookup_elem(&nf_first_sends, &zero);
	if (!cache)
		return 0;
	__u32 peer_low;
	__builtin_memcpy(&peer_low, seen.peer + 12, 4);
	// Each end has half the slots: a process at both ends of one connection (over
	// loopback) keeps both.
	__u32 h = (__u32)cgid ^ peer_low ^ (seen.tgid * 0x9e3779b1U) ^ (seen.port * 0x85ebca6bU);
	__u32 index = ((h ^ (h >> 16)) & (NF_FIRST_SEND_SLOTS / 2 - 1)) |
		      (accepted ? NF_FIRST_SEND_SLOTS / 2 : 0);
	struct nf_first_send_slot *slot = &cache->slot[index & (NF_FIRST_SEND_SLOTS - 1)];
	__u64 now = nf_clock();
	// The key compared a word at a time (clang would call memcmp, which BPF has not).
	const __u64 *a = (const __u64 *)&slot->key, *b = (const __u64 *)&seen;
	if (slot->at && now - slot->at < nf_seconds(60) && a[0] == b[0] && a[1] == b[1] &&
	    a[2] == b[2] && a[3] == b[3]) {
		struct nf_stats *st = nf_stat();
		if (st)
			__sync_fetch_and_add(&st->first_payloads_repeated, 1);
		return 0;
	}
	__u64 avail;
	const __u8 *base = nf_send_data(msg, size, &avail);
	if (!base)
		return 0;
	struct nf_record *r = nf_record_reserve();
	if (!r)
		return 0;
	r->h.flow = fk;
	// The first bytes, in one read; a ClientHello's rest in a second.
	__u64 first = avail < NF_FIRST_DATA ? avail : NF_FIRST_DATA;
	// Bounded to [1, NF_FIRST_DATA] in a way 6.1's verifier follows.
	__u64 n = first - 1;
	asm volatile("" : "+r"(n));
	n = (n & (NF_FIRST_DATA - 1)) + 1;
	if (first == 0 || bpf_probe_read_user(r->data, n, base)) {
		bpf_ringbuf_discard(r, 0);
		return 0;
	}
	bool hello = n >= 6 && r->data[0] == 0x16 && r->data[1] == 3 && r->data[5] == 1;
	if (hello && avail > NF_FIRST_DATA) {
		__u64 rest = avail - NF_FIRST_DATA;
		if (rest > NF_PAYLOAD - NF_FIRST_DATA)
			rest = NF_PAYLOAD - NF_FIRST_DATA;
		// Checked again in the register passed (clang may otherwise check a copy).
		asm volatile("" : "+r"(rest));
		if (rest > 0 && rest <= NF_PAYLOAD - NF_FIRST_DATA &&
		    !bpf_probe_read_user(r->data + NF_FIRST_DATA, rest, base + NF_FIRST_DATA))
			n = NF_FIRST_DATA + rest;
	}
	r->h.kind = hello ? NF_REC_TLS : NF_REC_FIRST_DATA;
	r->h.ts_ns = bpf_ktime_get_ns();
	r->h.pid = seen.tgid;
	r->h.wire_len = size;
	r->h.len = n;
	// Another run on this CPU (a preempted sender) may write the slot too: at worst
	// a payload is read once more.
	slot->key = seen;
	slot->at = now;
	// User space reads the ring on its own clock: no wakeup.
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

#endif // RAMPART_NETFLOW_FIRST_SEND_H
