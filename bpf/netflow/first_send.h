// SPDX-License-Identifier: GPL-2.0
// The first payload each TCP socket sends, with socket accounting (the packet path
// reads it from a flow's first data packet): fentry on tcp_sendmsg, where the kernel
// has BPF trampolines. A socket that has sent before returns at once, on one load;
// a payload like one its process sent the same peer and service within the minute
// is not read again (nf_first_sends).
// A TLS ClientHello goes whole (NF_REC_TLS), anything else as its first bytes
// (NF_REC_FIRST_DATA), the records the packet path writes.
#ifndef RAMPART_NETFLOW_FIRST_SEND_H
#define RAMPART_NETFLOW_FIRST_SEND_H

#include "netflow/maps.h"
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
	// The data, from user space: one buffer (send, write) or the first of an iovec
	// array (sendmsg; the array itself was copied into the kernel). The two share
	// the iterator's pointer, read as `ubuf` (6.1 calls the array `iov`, later
	// kernels `__iov`). The message is a trusted argument, read directly, but for
	// that pointer: 6.1 types it as the iovec array's, which cannot be added to.
	__u8 type = msg->msg_iter.iter_type;
	const __u8 *base = NULL;
	bpf_core_read(&base, sizeof(base), &msg->msg_iter.ubuf);
	__u64 off = msg->msg_iter.iov_offset;
	__u64 avail = size;
	if (type == bpf_core_enum_value(enum iter_type, ITER_IOVEC)) {
		struct iovec iov = {};
		if (bpf_probe_read_kernel(&iov, sizeof(iov), base) || iov.iov_len <= off)
			return 0;
		base = iov.iov_base;
		avail = iov.iov_len - off;
	} else if (type != bpf_core_enum_value(enum iter_type, ITER_UBUF)) {
		return 0; // the kernel's own senders (kvec, pages)
	}
	base += off;
	if (avail > size)
		avail = size;
	// Read once a minute per process, peer, service port and kind of payload (its
	// first two bytes): a client's hundredth connection to one service says nothing
	// its first did, and a reconnecting client would otherwise pay a ring record each
	// time. A process that starts speaking something else there is read at once.
	struct flow_key fk = {};
	__u32 ip_hdr;
	if (!nf_sock_key(&fk, sk, cgid, &ip_hdr))
		return 0;
	fk.lport = sk->__sk_common.skc_num;
	struct nf_first_send_key seen = {
		.cgid = cgid,
		.tgid = bpf_get_current_pid_tgid() >> 32,
		// An accepted socket carries its listener's backlog (see nf_tcp_counters).
		.port = sk->sk_max_ack_backlog ? fk.lport : fk.rport,
	};
	__builtin_memcpy(seen.peer, fk.remote, sizeof(seen.peer));
	if (bpf_probe_read_user(seen.lead, avail >= 2 ? 2 : 1, base))
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 *last = bpf_map_lookup_elem(&nf_first_sends, &seen);
	if (last && now - *last < NF_FIRST_SEND_EVERY_NS) {
		struct nf_stats *st = nf_stat();
		if (st)
			__sync_fetch_and_add(&st->first_payloads_repeated, 1);
		return 0;
	}
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
	r->h.ts_ns = now;
	r->h.pid = seen.tgid;
	r->h.wire_len = size;
	r->h.len = n;
	bpf_map_update_elem(&nf_first_sends, &seen, &now, BPF_ANY);
	// User space reads the ring on its own clock: no wakeup.
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

#endif // RAMPART_NETFLOW_FIRST_SEND_H
