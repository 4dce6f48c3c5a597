// SPDX-License-Identifier: GPL-2.0
// DNS queries: UDP datagrams to port 53.
#ifndef RAMPART_NET_DNS_H
#define RAMPART_NET_DNS_H

#include "lib/event.h"
#include "lib/path.h"
#include "lib/syscall.h"
#include "net/sock.h"

static __always_inline int do_dns(struct pt_regs *regs, long ret, long nr, bool maybe_compat)
{
	if (!kind_enabled(K_DNS))
		return 0;
	struct syscall_ctx c;
	read_regs(regs, ret, nr, &c, maybe_compat);
	// sendmmsg returns how many messages went (glibc's resolver sends A and AAAA
	// in one call), the others how many bytes: a DNS header alone is 12.
	if (c.nr == NR_sendmmsg ? c.ret < 1 : c.ret <= 12)
		return 0;
	long fd = ARG0(c.regs);
	// Resolvers that connect() then write() (Go, busybox): only sockets qualify, of
	// processes that connected one to port 53 (see dns_writers).
	if (c.nr == NR_write) {
		u32 tgid = bpf_get_current_pid_tgid() >> 32;
		if (!bpf_map_lookup_elem(&dns_writers, &tgid) || !fd_is_socket(fd))
			return 0;
	}
	u16 proto = 0, type = 0;
	struct sock *sk = fd_sock(fd, &proto, &type);
	if (!sk || proto != 17 /* UDP */)
		return 0;
	const void *buf = NULL;
	const void *uaddr = NULL;
	u32 buflen = 0;
	if (c.nr == NR_sendto) {
		buf = (const void *)ARG1(c.regs);
		buflen = ARG2(c.regs);
		uaddr = (const void *)ARG4(c.regs);
	} else if (c.nr == NR_write) {
		buf = (const void *)ARG1(c.regs);
		buflen = ARG2(c.regs);
	} else if (c.compat) {
		// struct compat_msghdr and compat_iovec: 32-bit pointers and lengths.
		u32 m[4] = {}; // msg_name, msg_namelen, msg_iov, msg_iovlen
		bpf_probe_read_user(m, sizeof(m), (void *)ARG1(c.regs));
		uaddr = (const void *)(u64)m[0];
		u32 iov[2] = {};
		bpf_probe_read_user(iov, sizeof(iov), (void *)(u64)m[2]);
		buf = (const void *)(u64)iov[0];
		buflen = iov[1];
	} else {
		// sendmsg(fd, msghdr*) / sendmmsg(fd, mmsghdr*): first message, first iovec.
		struct user_msghdr m = {};
		bpf_probe_read_user(&m, sizeof(m), (void *)ARG1(c.regs));
		uaddr = m.msg_name;
		struct iovec iov = {};
		bpf_probe_read_user(&iov, sizeof(iov), m.msg_iov);
		buf = iov.iov_base;
		buflen = iov.iov_len;
	}
	u16 port = 0;
	if (uaddr) {
		struct sockaddr_in sin = {};
		bpf_probe_read_user(&sin, sizeof(sin), uaddr);
		port = bpf_ntohs(sin.sin_port);
	} else {
		port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	}
	if (port != 53)
		return 0;
	u32 off;
	struct scratch *s = begin_current(K_DNS, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c.ret;
	h->args[1] = proto;
	if (uaddr)
		off = push_bytes(s->ev, off, uaddr, 28, true);
	else
		off = push_sock_addr(s->ev, off, sk, true);
	if (buflen > 512)
		buflen = 512;
	off = push_bytes(s->ev, off, buf, buflen, true);
	return submit(s, off);
}

#endif // RAMPART_NET_DNS_H
