// SPDX-License-Identifier: GPL-2.0
// DNS answers with socket accounting, where no program sees the packets: read from
// the receiver's buffer once the answer is copied there, for processes that sent to
// UDP port 53 (nf_connect marks them in nf_dns_askers), from a UDP socket whose peer,
// or the datagram's source, is port 53. Where the kernel has BPF trampolines, fexit
// on udp_recvmsg and udpv6_recvmsg: every receive of a UDP socket, whatever call made
// it (read() too: Go's and busybox's resolvers), and no other socket's (the programs
// are udp.h's, which count the datagrams too). Elsewhere the
// exit tracepoints of recvfrom, recvmsg and recvmmsg, which glibc and musl use; a
// program on read would run for every read on the host. The record is the packet
// path's NF_REC_DNS, so user space reads both alike.
#ifndef RAMPART_NETFLOW_DNS_H
#define RAMPART_NETFLOW_DNS_H

#include "lib/fd.h"
#include "netflow/maps.h"
#include "netflow/msg.h"
#include "netflow/sockets.h"

// A syscall exit tracepoint's record: the syscall's number and result.
struct nf_sys_exit {
	__u64 common;
	int nr;
	int pad;
	long ret;
};

// x86-64 syscall numbers.
#define NF_NR_recvfrom 45
#define NF_NR_recvmsg 47
#define NF_NR_recvmmsg 299

// The current process's socket on `fd`, or NULL.
static __always_inline struct sock *nf_fd_sock(struct task_struct *task, long fd)
{
	struct file *f = task_fd_file(task, fd);
	if (!f || (BPF_CORE_READ(f, f_inode, i_mode) & 0170000) != 0140000 /* S_IFSOCK */)
		return NULL;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

// The configuration when DNS answers are read and process `tgid` asked for some,
// else NULL: most receives end on this lookup.
static __always_inline struct nf_config *nf_dns_asker_config(__u32 tgid)
{
	if (!bpf_map_lookup_elem(&nf_dns_askers, &tgid))
		return NULL;
	__u32 zero = 0;
	struct nf_config *cfg = bpf_map_lookup_elem(&nf_cfg, &zero);
	return cfg && (cfg->flags & NF_CFG_DNS) ? cfg : NULL;
}

// The answer `buf` (`len` bytes, in user memory) from `remote` port 53, received on
// `sk` by the current task (`tgid`), as a record, if its cgroup is watched.
static __always_inline int nf_dns_emit(struct nf_config *cfg, struct task_struct *task,
				       struct sock *sk, __u16 sk_family, const __u8 remote[16],
				       const void *buf, __u64 len, __u32 tgid)
{
	// The receiving process's cgroup (a typed pointer, as nf_cgroup_watched reads
	// it), which is its socket's unless the socket was handed over.
	struct cgroup *cg = task->cgroups->dfl_cgrp;
	if (!cg)
		return 0;
	__u64 cgid = cg->kn->id;
	if (!nf_cgroup_watched(cg, cgid, cfg->watched))
		return 0;
	struct nf_record *r = nf_record_reserve();
	if (!r)
		return 0;
	r->h.kind = NF_REC_DNS;
	r->h.ts_ns = bpf_ktime_get_ns();
	r->h.flow.cgid = cgid;
	r->h.flow.proto = NF_UDP;
	__builtin_memcpy(r->h.flow.remote, remote, 16);
	r->h.flow.rport = 53;
	r->h.flow.lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (sk_family == NF_AF_INET)
		v4_mapped(r->h.flow.local, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
	else
		BPF_CORE_READ_INTO(&r->h.flow.local, sk, __sk_common.skc_v6_rcv_saddr);
	r->h.pid = tgid;
	r->h.wire_len = len;
	// A length 6.1's verifier can bound to [1, NF_PAYLOAD], as in nf_emit_payload.
	if (len > NF_PAYLOAD)
		len = NF_PAYLOAD;
	__u64 n = len - 1;
	asm volatile("" : "+r"(n));
	n = (n & (NF_PAYLOAD - 1)) + 1;
	if (bpf_probe_read_user(r->data, n, buf)) {
		bpf_ringbuf_discard(r, 0);
		return 0;
	}
	r->h.len = n;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

// The handler: the syscall's number, result and saved registers (its arguments).
static __always_inline int nf_dns_answer(struct pt_regs *regs, long nr, long ret)
{
	// A DNS header alone is 12 bytes; recvmmsg returns a count of messages. An
	// answer over UDP is at most the 4096 bytes resolvers offer in EDNS: a longer
	// read (a bulk transfer's) returns before any lookup.
	if (nr == NF_NR_recvmmsg ? ret < 1 : ret <= 12 || ret > 4096)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct nf_config *cfg = nf_dns_asker_config(tgid);
	if (!cfg)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	long fd = regs->di;
	const void *buf = NULL;
	const void *uaddr = NULL;
	__u64 len = ret;
	if (nr == NF_NR_recvfrom) {
		buf = (const void *)regs->si;
		uaddr = (const void *)regs->r8;
	} else {
		// recvmsg(fd, msghdr *) / recvmmsg(fd, mmsghdr *): first message, first iovec
		// (recvmmsg's length is the message's own, msg_len after its header).
		struct mmsghdr m = {};
		bpf_probe_read_user(&m, nr == NF_NR_recvmmsg ? sizeof(m) : sizeof(m.msg_hdr),
				    (void *)regs->si);
		if (nr == NF_NR_recvmmsg)
			len = m.msg_len;
		uaddr = m.msg_hdr.msg_name;
		struct iovec iov = {};
		bpf_probe_read_user(&iov, sizeof(iov), m.msg_hdr.msg_iov);
		buf = iov.iov_base;
		if (len > iov.iov_len)
			len = iov.iov_len;
	}
	struct sock *sk = nf_fd_sock(task, fd);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != NF_UDP)
		return 0;
	__u16 sk_family = BPF_CORE_READ(sk, __sk_common.skc_family);
	// The answer's source: the address the call filled in, else the socket's peer.
	__u8 remote[16] = {};
	__u16 port = 0;
	struct sockaddr_in6 sa = {};
	if (uaddr)
		bpf_probe_read_user(&sa, sizeof(sa), uaddr);
	if (!nf_sockaddr_end(&sa, remote, &port)) {
		port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		if (sk_family == NF_AF_INET)
			v4_mapped(remote, BPF_CORE_READ(sk, __sk_common.skc_daddr));
		else
			BPF_CORE_READ_INTO(&remote, sk, __sk_common.skc_v6_daddr);
	}
	if (port != 53 || !buf || len <= 12)
		return 0;
	return nf_dns_emit(cfg, task, sk, sk_family, remote, buf, len, tgid);
}

// Where the kernel has BPF trampolines: at the end of each UDP receive (udp.h), from
// `remote`:`port`. The answer starts where the copy began: the iterator's segment (one
// buffer, or the iovec the copy ended in) plus its offset there, less what was copied;
// a copy that crossed segments, or a receive with MSG_TRUNC (whose result is the
// datagram's length, not the copy's), is left alone.
static __always_inline int nf_dns_udp_recv(struct sock *sk, struct msghdr *msg, int flags,
					   int ret, const __u8 remote[16], __u16 port)
{
	if (port != 53 || ret <= 12 || ret > 4096 || (flags & 0x20 /* MSG_TRUNC */))
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct nf_config *cfg = nf_dns_asker_config(tgid);
	if (!cfg)
		return 0;
	__u16 sk_family = sk->__sk_common.skc_family;
	__u64 len;
	const __u8 *base = nf_msg_segment(msg, &len);
	__u64 off = msg->msg_iter.iov_offset;
	if (!base || off < (__u64)ret)
		return 0;
	return nf_dns_emit(cfg, bpf_get_current_task_btf(), sk, sk_family, remote,
			   base + off - ret, ret, tgid);
}

// Elsewhere: the three calls' exit tracepoints, one program (the kernel's syscall
// tracepoint path costs some 250 guest ns a call more than a trampoline).
SEC("tracepoint/syscalls/sys_exit_recvfrom")
int nf_dns_answer_tp(struct nf_sys_exit *rec)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	return nf_dns_answer(regs, rec->nr, rec->ret);
}

#endif // RAMPART_NETFLOW_DNS_H
