// SPDX-License-Identifier: GPL-2.0
// Where a send's data starts in user memory, for the fentry programs that read it
// (first_send.h, raw_send.h).
#ifndef RAMPART_NETFLOW_MSG_H
#define RAMPART_NETFLOW_MSG_H

#include "lib/common.h"

// The start of a send's data and, in `*avail`, how many of its `size` bytes are there;
// NULL when the data is the kernel's own (kvec, pages). One buffer (send, write) or the
// first of an iovec array (sendmsg; the array itself was copied into the kernel). The
// two share the iterator's pointer, read as `ubuf` (6.1 calls the array `iov`, later
// kernels `__iov`). The message is a trusted argument, read directly, but for that
// pointer: 6.1 types it as the iovec array's, which cannot be added to.
static __always_inline const __u8 *nf_send_data(struct msghdr *msg, __u64 size, __u64 *avail)
{
	__u8 type = msg->msg_iter.iter_type;
	const __u8 *base = NULL;
	bpf_core_read(&base, sizeof(base), &msg->msg_iter.ubuf);
	__u64 off = msg->msg_iter.iov_offset;
	*avail = size;
	if (type == bpf_core_enum_value(enum iter_type, ITER_IOVEC)) {
		struct iovec iov = {};
		if (bpf_probe_read_kernel(&iov, sizeof(iov), base) || iov.iov_len <= off)
			return NULL;
		base = iov.iov_base;
		*avail = iov.iov_len - off;
	} else if (type != bpf_core_enum_value(enum iter_type, ITER_UBUF)) {
		return NULL;
	}
	if (*avail > size)
		*avail = size;
	return base + off;
}

#endif // RAMPART_NETFLOW_MSG_H
