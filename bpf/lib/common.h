// SPDX-License-Identifier: GPL-2.0
// What every part of the kernel side includes: the kernel's types (vmlinux.h, for
// CO-RE), libbpf's helpers and the wire format.
#ifndef RAMPART_LIB_COMMON_H
#define RAMPART_LIB_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "rampart.h"

#endif // RAMPART_LIB_COMMON_H
