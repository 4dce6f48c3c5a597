// SPDX-License-Identifier: GPL-2.0
// Appending length-prefixed strings and byte blocks to an event (the wire format's
// strings).
#ifndef RAMPART_LIB_STR_H
#define RAMPART_LIB_STR_H

#include "lib/common.h"

// Appends a length-prefixed string read from user or kernel memory. Returns the new
// offset. `user` is a constant at every call site, so only one helper is emitted.
static __always_inline u32 push_str(u8 *buf, u32 off, const void *src, bool user)
{
	off &= OFF_MASK;
	long n = 0;
	if (src)
		n = user ? bpf_probe_read_user_str(&buf[off + 2], MAX_STR, src)
			 : bpf_probe_read_kernel_str(&buf[off + 2], MAX_STR, src);
	if (n < 0)
		n = 0;
	else if (n > 0)
		n -= 1; // drop the NUL from the length
	n &= (MAX_STR - 1);
	*(u16 *)&buf[off] = (u16)n;
	return off + 2 + (u32)n;
}

// Keeps clang from dropping a bound the verifier needs to see.
#define BOUND(v, mask) asm volatile("%0 &= " #mask : "+r"(v))

// Appends `len` bytes (bounded by MAX_STR) read from user or kernel memory.
static __always_inline u32 push_bytes(u8 *buf, u32 off, const void *src, u32 len, bool user)
{
	off &= OFF_MASK;
	u64 n = len;
	BOUND(n, 4095);
	len = n;
	long r = -1;
	if (src)
		r = user ? bpf_probe_read_user(&buf[off + 2], len, src)
			 : bpf_probe_read_kernel(&buf[off + 2], len, src);
	if (r < 0)
		len = 0;
	*(u16 *)&buf[off] = (u16)len;
	return off + 2 + len;
}

static __always_inline u32 push_empty(u8 *buf, u32 off)
{
	off &= OFF_MASK;
	*(u16 *)&buf[off] = 0;
	return off + 2;
}

#endif // RAMPART_LIB_STR_H
