// SPDX-License-Identifier: GPL-2.0
// Start-up probe: trivial programs that need BPF trampolines. Whether the kernel
// accepts them says whether fexit syscall hooks and BPF LSM (exec denial) can work;
// a program type being known is not enough (some kernels refuse every trampoline).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("fexit/__x64_sys_openat")
int probe_fexit(u64 *ctx)
{
	return 0;
}

SEC("lsm/file_open")
int probe_lsm(u64 *ctx)
{
	return 0;
}
