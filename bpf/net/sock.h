// SPDX-License-Identifier: GPL-2.0
// Sockets: connect, accept, bind, listen, unusual socket(2)s, and dups of a socket
// onto stdio.
#ifndef RAMPART_NET_SOCK_H
#define RAMPART_NET_SOCK_H

#include "lib/event.h"
#include "lib/path.h"
#include "lib/syscall.h"

// Appends a synthesized address (family, port, 16 address bytes) from a socket's
// common part: local when `remote` is false.
static __always_inline u32 push_sock_addr(u8 *buf, u32 off, struct sock *sk, bool remote)
{
	off &= OFF_MASK;
	struct sock_addr_wire *w = (struct sock_addr_wire *)&buf[off + 2];
	__builtin_memset(w, 0, sizeof(*w));
	u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	w->family = family;
	if (remote)
		w->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	else
		w->port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (family == 2) {
		u32 a = remote ? BPF_CORE_READ(sk, __sk_common.skc_daddr)
			       : BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(w->addr, &a, 4);
	} else if (family == 10) {
		if (remote)
			BPF_CORE_READ_INTO(&w->addr, sk, __sk_common.skc_v6_daddr);
		else
			BPF_CORE_READ_INTO(&w->addr, sk, __sk_common.skc_v6_rcv_saddr);
	}
	*(u16 *)&buf[off] = sizeof(*w);
	return off + 2 + sizeof(*w);
}

// By inode mode, before any read that assumes the file is a socket.
static __always_inline bool fd_is_socket(long fd)
{
	struct file *f = fd_file(fd);
	if (!f)
		return false;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	return (mode & 0170000) == 0140000 /* S_IFSOCK */;
}

static __always_inline struct sock *fd_sock(long fd, u16 *proto, u16 *type)
{
	struct file *f = fd_file(fd);
	if (!f)
		return NULL;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return NULL;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	*proto = BPF_CORE_READ(sk, sk_protocol);
	*type = BPF_CORE_READ(sk, sk_type);
	return sk;
}

// socket(2): only what ordinary programs never create, so the volume stays tiny:
// domains other than unix/inet/inet6/netlink (AF_PACKET sniffing and spoofing) and
// raw sockets of any domain. Failed attempts count too.
static __always_inline int on_socket(struct syscall_ctx *c)
{
	if (!kind_enabled(K_SOCKET))
		return 0;
	u64 domain = ARG0(c->regs), type = ARG1(c->regs);
	bool usual_domain = domain == 1 || domain == 2 || domain == 10 || domain == 16;
	if (usual_domain && (type & 0xf) != 3 /* SOCK_RAW */)
		return 0;
	u32 off;
	struct scratch *s = begin_current(K_SOCKET, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c->ret;
	h->args[1] = domain;
	h->args[2] = type;
	h->args[3] = ARG2(c->regs);
	return submit(s, off);
}

// dup/dup2/dup3 that put an IPv4/IPv6 socket on stdin, stdout or stderr: the core of
// a reverse shell. Shell redirections (2>&1 on pipes and files) are not sockets and
// stay in the kernel.
static __always_inline int on_dup(struct syscall_ctx *c)
{
	if (!kind_enabled(K_DUP) || c->ret < 0 || c->ret > 2)
		return 0;
	long oldfd = ARG0(c->regs);
	if (!fd_is_socket(oldfd))
		return 0;
	u16 proto = 0, type = 0;
	struct sock *sk = fd_sock(oldfd, &proto, &type);
	if (!sk)
		return 0;
	u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != 2 && family != 10)
		return 0;
	u32 off;
	struct scratch *s = begin_current(K_DUP, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c->ret;
	h->args[1] = c->nr;
	h->args[2] = oldfd;
	h->args[3] = proto;
	h->args[4] = type;
	off = push_sock_addr(s->ev, off, sk, false);
	off = push_sock_addr(s->ev, off, sk, true);
	return submit(s, off);
}

static __always_inline int do_sock(struct pt_regs *regs, long ret, long nr, bool maybe_compat)
{
	struct syscall_ctx c;
	read_regs(regs, ret, nr, &c, maybe_compat);
	if (c.nr == NR_socket)
		return on_socket(&c);
	if (c.nr == NR_dup || c.nr == NR_dup2 || c.nr == NR_dup3)
		return on_dup(&c);
	if (c.nr == NR_connect && c.ret == 0 && kind_enabled(K_DNS)) {
		// sockaddr_in and sockaddr_in6 both start with the family and the port.
		u16 head[2] = {};
		bpf_probe_read_user(head, sizeof(head), (void *)ARG1(c.regs));
		if ((head[0] == 2 || head[0] == 10) && bpf_ntohs(head[1]) == 53) {
			u32 tgid = bpf_get_current_pid_tgid() >> 32;
			u8 one = 1;
			bpf_map_update_elem(&dns_writers, &tgid, &one, BPF_ANY);
		}
	}
	u16 kind;
	switch (c.nr) {
	case NR_connect: kind = K_CONNECT; break;
	case NR_bind: kind = K_BIND; break;
	case NR_listen: kind = K_LISTEN; break;
	default: kind = K_ACCEPT;
	}
	if (!kind_enabled(kind))
		return 0;
	if (kind == K_ACCEPT && c.ret < 0)
		return 0; // EAGAIN storms on non-blocking listeners carry nothing
	long fd = kind == K_ACCEPT ? c.ret : (long)ARG0(c.regs);
	u16 proto = 0, type = 0;
	struct sock *sk = fd_sock(fd, &proto, &type);
	if (!sk)
		return 0;
	u32 off;
	struct scratch *s = begin_current(kind, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c.ret;
	h->args[1] = proto;
	h->args[2] = type;
	if (kind == K_LISTEN)
		h->args[3] = ARG1(c.regs);
	// [local synthesized] [remote: user sockaddr for connect/bind, synthesized for accept]
	off = push_sock_addr(s->ev, off, sk, false);
	if (kind == K_CONNECT || kind == K_BIND) {
		u32 len = ARG2(c.regs);
		if (len > 128)
			len = 128;
		off = push_bytes(s->ev, off, (void *)ARG1(c.regs), len, true);
	} else if (kind == K_ACCEPT) {
		off = push_sock_addr(s->ev, off, sk, true);
	} else {
		off = push_empty(s->ev, off);
	}
	return submit(s, off);
}

#endif // RAMPART_NET_SOCK_H
