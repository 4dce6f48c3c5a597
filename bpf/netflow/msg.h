// SPDX-License-Identifier: GPL-2.0
// A message's data in user memory, for the programs that read it: where a send's
// starts (first_send.h, raw_send.h), where a receive's copy began (dns.h).
#ifndef RAMPART_NETFLOW_MSG_H
#define RAMPART_NETFLOW_MSG_H

#include "lib/common.h"

// The iterator's current segment in user memory, and in `*len` its length (~0 for a
// single buffer: the caller bounds it); NULL when the data is the kernel's own (kvec,
// pages). One buffer (send, write, read) or an iovec of an array (sendmsg, recvmsg; the
// array itself was copied into the kernel). The two share the iterator's pointer,
// read as `ubuf` (6.1 calls the array `iov`, later kernels `__iov`). The message is a
// trusted argument, read directly, but for that pointer: 6.1 types it as the iovec
// array's, which cannot be added to. The iterator's offset into the segment is
// msg_iter.iov_offset.
static __always_inline const __u8 *nf_msg_segment(struct msghdr *msg, __u64 *len)
{
	__u8 type = msg->msg_iter.iter_type;
	const __u8 *base = NULL;
	bpf_core_read(&base, sizeof(base), &msg->msg_iter.ubuf);
	*len = ~0ULL;
	if (type == bpf_core_enum_value(enum iter_type, ITER_IOVEC)) {
		struct iovec iov = {};
		if (bpf_probe_read_kernel(&iov, sizeof(iov), base))
			return NULL;
		*len = iov.iov_len;
		return iov.iov_base;
	}
	return type == bpf_core_enum_value(enum iter_type, ITER_UBUF) ? base : NULL;
}

// The start of a send's data and, in `*avail`, how many of its `size` bytes are there
// (in its first segment); NULL when the data is the kernel's own.
static __always_inline const __u8 *nf_send_data(struct msghdr *msg, __u64 size, __u64 *avail)
{
	__u64 len;
	const __u8 *base = nf_msg_segment(msg, &len);
	__u64 off = msg->msg_iter.iov_offset;
	if (!base || len <= off)
		return NULL;
	*avail = len - off;
	if (*avail > size)
		*avail = size;
	return base + off;
}

#endif // RAMPART_NETFLOW_MSG_H
