// SPDX-License-Identifier: GPL-2.0
// The sys_exit dispatcher: one program on every syscall, tail-calling the watched
// ones' family handler by slot (the handlers are in attach/stubs.h).
#ifndef RAMPART_ATTACH_DISPATCH_H
#define RAMPART_ATTACH_DISPATCH_H

#include "lib/maps.h"
#include "lib/syscall.h"

// Fallback for kernels without BPF trampolines or syscall tracepoints (see
// attach/stubs.h): on the kernel's sys_exit tracepoint; the h_*
// handlers are loaded against the same tracepoint (so the kernel accepts them as
// tail-call targets). Every syscall on the host then pays for the tracepoint.
// `compat_only`: the other hooks' complement, for the 32-bit syscalls they never see.
// The family handler of a watched x86_64 syscall, or H_NONE.
static __always_inline u32 handler_of(long nr)
{
	switch (nr) {
	case NR_open: case NR_openat: case NR_openat2: case NR_creat:
		return H_OPEN;
	case NR_unlink: case NR_unlinkat: case NR_rmdir: case NR_chmod: case NR_fchmodat:
	case NR_fchmodat2: case NR_chown: case NR_lchown: case NR_fchownat: case NR_truncate:
		return H_PATH1;
	case NR_fchmod: case NR_fchown: case NR_ftruncate: case NR_open_by_handle_at:
		return H_FDOP;
	case NR_rename: case NR_renameat: case NR_renameat2: case NR_link: case NR_linkat:
	case NR_symlink: case NR_symlinkat:
		return H_PATH2;
	case NR_connect: case NR_accept: case NR_accept4: case NR_bind: case NR_listen:
	case NR_socket: case NR_dup: case NR_dup2: case NR_dup3:
		return H_SOCK;
	case NR_sendto: case NR_sendmsg: case NR_sendmmsg: case NR_write:
		return H_DNS;
	case NR_setuid: case NR_setgid: case NR_setreuid: case NR_setregid: case NR_setresuid:
	case NR_setresgid: case NR_setfsuid: case NR_setfsgid: case NR_capset: case NR_ptrace:
	case NR_unshare: case NR_setns: case NR_bpf: case NR_init_module: case NR_umount2:
	case NR_finit_module: case NR_memfd_create: case NR_mount: case NR_move_mount:
	case NR_fsmount: case NR_open_tree: case NR_fspick: case NR_process_vm_readv:
	case NR_process_vm_writev:
	case NR_mount_setattr: case NR_chdir: case NR_fchdir: case NR_execve: case NR_execveat:
	case NR_prctl: case NR_chroot:
		return H_MISC;
	default:
		return H_NONE;
	}
}

static __always_inline int dispatch_sys_exit(u64 *ctx, bool compat_only)
{
	// Runs for every syscall on the host: read only the syscall number and the
	// task's compat flag here. (Testing the number against both ABIs' watched sets
	// before the flag's helper call saved nothing measurable on getppid and added
	// compares for the many numbers watched under the 32-bit ABI.)
	bool compat = in_compat_syscall();
	if (compat_only && !compat)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	long nr = regs->orig_ax;
	if (compat)
		nr = native_nr(nr, (u32)regs->bx);
	u32 h = handler_of(nr);
	if (h == H_NONE)
		return 0;
	bpf_tail_call(ctx, &handlers, h);
	return 0;
}

SEC("tp_btf/sys_exit")
int on_sys_exit(u64 *ctx)
{
	return dispatch_sys_exit(ctx, false);
}

// Beside fexit or the syscall tracepoints: every syscall on the host pays for this
// program (a flag test for the 64-bit ones), the price of seeing 32-bit syscalls.
SEC("tp_btf/sys_exit")
int on_compat_sys_exit(u64 *ctx)
{
	return dispatch_sys_exit(ctx, true);
}

#endif // RAMPART_ATTACH_DISPATCH_H
