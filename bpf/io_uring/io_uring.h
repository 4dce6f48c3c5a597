// SPDX-License-Identifier: GPL-2.0
// io_uring operations, seen at submission.
#ifndef RAMPART_IO_URING_IO_URING_H
#define RAMPART_IO_URING_IO_URING_H

#include "lib/event.h"
#include "lib/path.h"

// io_uring runs file and network operations without their syscalls, so no syscall
// hook sees them (the "curing" rootkit proof of concept hides that way). Each
// submitted operation that opens, creates, renames, links or removes a file, or opens,
// binds, listens on, connects or accepts a socket, makes a record; reads and writes,
// the bulk, do not. Open-like operations carry their path (the kernel has copied it by
// submission time), socket its domain, type and protocol, bind and connect the
// address, listen the backlog.
static __always_inline bool io_uring_op_watched(u8 op)
{
	switch (op) {
	case 13: // IORING_OP_ACCEPT
	case 16: // IORING_OP_CONNECT
	case 18: // IORING_OP_OPENAT
	case 28: // IORING_OP_OPENAT2
	case 35: // IORING_OP_RENAMEAT
	case 36: // IORING_OP_UNLINKAT
	case 37: // IORING_OP_MKDIRAT
	case 38: // IORING_OP_SYMLINKAT
	case 39: // IORING_OP_LINKAT
	case 45: // IORING_OP_SOCKET
	case 56: // IORING_OP_BIND
	case 57: // IORING_OP_LISTEN
		return true;
	default:
		return false;
	}
}

SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(on_io_uring_submit, struct io_kiocb *req)
{
	if (!kind_enabled(K_IO_URING))
		return 0;
	u8 op = req->opcode;
	if (!io_uring_op_watched(op))
		return 0;
	u32 off;
	struct scratch *s = begin_current(K_IO_URING, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = op;
	if (op == 18 || op == 28) {
		// The operation's data overlays the start of the request (io_kiocb_to_cmd).
		struct io_open *open = (struct io_open *)req;
		const char *name = BPF_CORE_READ(open, filename, name);
		int dfd = BPF_CORE_READ(open, dfd);
		h->args[1] = BPF_CORE_READ(open, how.flags);
		h->args[2] = (u64)(s64)dfd;
		u32 path_off = off;
		off = push_str(s->ev, off, name, false);
		off = push_base(s, off, dfd, name, path_off);
		return submit(s, push_empty(s->ev, off));
	}
	off = push_empty(s->ev, off);
	off = push_empty(s->ev, off);
	if (op == 16) {
		// connect: the caller's sockaddr, which preparing the request has just copied
		// (as the syscall hooks read a connect's address at its exit).
		struct io_connect *conn = (struct io_connect *)req;
		u32 len = BPF_CORE_READ(conn, addr_len);
		return submit(s, push_bytes(s->ev, off, BPF_CORE_READ(conn, addr), len > 128 ? 128 : len,
					    true));
	}
	if (op == 56 && bpf_core_field_exists(struct io_bind, addr_len)) {
		// bind keeps no pointer to the caller's sockaddr, only the kernel's copy in
		// the request's async data: the `addr` of a struct io_async_msghdr in older
		// kernels, a bare sockaddr_storage in newer ones (the test machine's 6.18),
		// and BTF cannot tell which. The bare one starts with the family; the other
		// with a kernel pointer (8-aligned or NULL: its low bits are never AF_UNIX,
		// AF_INET, AF_INET6 or AF_PACKET), or in some older layouts with a recycled
		// iovec's user address, which can collide, rarely.
		void *async = req->async_data;
		u32 len = BPF_CORE_READ((struct io_bind *)req, addr_len);
		if (async && len > 0) {
			u16 family = 0;
			bpf_probe_read_kernel(&family, sizeof(family), async);
			u32 addr_off = 0;
			if (family != 1 && family != 2 && family != 10 && family != 17)
				addr_off = bpf_core_field_exists(struct io_async_msghdr, addr)
						   ? bpf_core_field_offset(struct io_async_msghdr, addr)
						   : 0;
			return submit(s, push_bytes(s->ev, off, async + addr_off, len > 128 ? 128 : len,
						    false));
		}
	} else if (op == 45) {
		struct io_socket *sock = (struct io_socket *)req;
		h->args[1] = BPF_CORE_READ(sock, domain);
		h->args[2] = BPF_CORE_READ(sock, type);
		h->args[3] = BPF_CORE_READ(sock, protocol);
	} else if (op == 57 && bpf_core_field_exists(struct io_listen, backlog)) {
		h->args[1] = BPF_CORE_READ((struct io_listen *)req, backlog);
	}
	return submit(s, push_empty(s->ev, off));
}

#endif // RAMPART_IO_URING_IO_URING_H
