// SPDX-License-Identifier: GPL-2.0
// A syscall's number, result and arguments as the handlers read them, whichever
// hook ran and whichever ABI (x86_64 or the 32-bit entry) the call came through.
#ifndef RAMPART_LIB_SYSCALL_H
#define RAMPART_LIB_SYSCALL_H

#include "lib/event.h"
#include "lib/syscall_nr.h"

// The syscall arguments the handlers use, copied out of struct pt_regs.
struct saved_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax;
};

#define ARG0(r) ((r)->di)
#define ARG1(r) ((r)->si)
#define ARG2(r) ((r)->dx)
#define ARG3(r) ((r)->r10)
#define ARG4(r) ((r)->r8)

struct syscall_ctx {
	struct saved_regs r;
	struct saved_regs *regs;
	long ret;
	long nr;     // x86_64 numbering, also for a 32-bit syscall
	bool compat; // made through the 32-bit entry: its user structs have 32-bit pointers
};

// The x86_64 number of a watched ia32 syscall, or -1. socketcall(2) is its call's
// syscall (`call`: ebx).
static __always_inline long native_nr(long nr32, u32 call)
{
	switch (nr32) {
	case NR32_write: return NR_write;
	case NR32_open: return NR_open;
	case NR32_creat: return NR_creat;
	case NR32_link: return NR_link;
	case NR32_unlink: return NR_unlink;
	case NR32_chdir: return NR_chdir;
	case NR32_chroot: return NR_chroot;
	case NR32_execve: return NR_execve;
	case NR32_open_by_handle_at: return NR_open_by_handle_at;
	case NR32_execveat: return NR_execveat;
	case NR32_chmod: return NR_chmod;
	case NR32_lchown16: case NR32_lchown: return NR_lchown;
	case NR32_mount: return NR_mount;
	case NR32_move_mount: return NR_move_mount;
	case NR32_fsmount: return NR_fsmount;
	case NR32_open_tree: return NR_open_tree;
	case NR32_fspick: return NR_fspick;
	case NR32_mount_setattr: return NR_mount_setattr;
	case NR32_process_vm_readv: return NR_process_vm_readv;
	case NR32_process_vm_writev: return NR_process_vm_writev;
	case NR32_umount: case NR32_umount2: return NR_umount2;
	case NR32_setuid16: case NR32_setuid: return NR_setuid;
	case NR32_ptrace: return NR_ptrace;
	case NR32_rename: return NR_rename;
	case NR32_rmdir: return NR_rmdir;
	case NR32_dup: return NR_dup;
	case NR32_setgid16: case NR32_setgid: return NR_setgid;
	case NR32_dup2: return NR_dup2;
	case NR32_setreuid16: case NR32_setreuid: return NR_setreuid;
	case NR32_setregid16: case NR32_setregid: return NR_setregid;
	case NR32_symlink: return NR_symlink;
	case NR32_truncate: case NR32_truncate64: return NR_truncate;
	case NR32_ftruncate: case NR32_ftruncate64: return NR_ftruncate;
	case NR32_fchmod: return NR_fchmod;
	case NR32_fchown16: case NR32_fchown: return NR_fchown;
	case NR32_init_module: return NR_init_module;
	case NR32_fchdir: return NR_fchdir;
	case NR32_setfsuid16: case NR32_setfsuid: return NR_setfsuid;
	case NR32_setfsgid16: case NR32_setfsgid: return NR_setfsgid;
	case NR32_setresuid16: case NR32_setresuid: return NR_setresuid;
	case NR32_setresgid16: case NR32_setresgid: return NR_setresgid;
	case NR32_chown16: case NR32_chown: return NR_chown;
	case NR32_capset: return NR_capset;
	case NR32_openat: return NR_openat;
	case NR32_fchownat: return NR_fchownat;
	case NR32_unlinkat: return NR_unlinkat;
	case NR32_renameat: return NR_renameat;
	case NR32_linkat: return NR_linkat;
	case NR32_symlinkat: return NR_symlinkat;
	case NR32_fchmodat: return NR_fchmodat;
	case NR32_unshare: return NR_unshare;
	case NR32_dup3: return NR_dup3;
	case NR32_sendmmsg: return NR_sendmmsg;
	case NR32_setns: return NR_setns;
	case NR32_finit_module: return NR_finit_module;
	case NR32_renameat2: return NR_renameat2;
	case NR32_memfd_create: return NR_memfd_create;
	case NR32_prctl: return NR_prctl;
	case NR32_bpf: return NR_bpf;
	case NR32_socket: return NR_socket;
	case NR32_bind: return NR_bind;
	case NR32_connect: return NR_connect;
	case NR32_listen: return NR_listen;
	case NR32_accept4: return NR_accept4;
	case NR32_sendto: return NR_sendto;
	case NR32_sendmsg: return NR_sendmsg;
	case NR32_openat2: return NR_openat2;
	case NR32_fchmodat2: return NR_fchmodat2;
	case NR32_socketcall:
		switch (call) {
		case SYS_SOCKET: return NR_socket;
		case SYS_BIND: return NR_bind;
		case SYS_CONNECT: return NR_connect;
		case SYS_LISTEN: return NR_listen;
		case SYS_ACCEPT: return NR_accept;
		case SYS_SEND: case SYS_SENDTO: return NR_sendto;
		case SYS_SENDMSG: return NR_sendmsg;
		case SYS_ACCEPT4: return NR_accept4;
		case SYS_SENDMMSG: return NR_sendmmsg;
		default: return -1;
		}
	default: return -1;
	}
}

// A 16-bit id as the kernel widens it (low2highuid): 0xffff, "unchanged", stays -1.
static __always_inline u64 id16(u32 v)
{
	return (u16)v == 0xffff ? 0xffffffff : (u16)v;
}

// A 32-bit syscall's arguments, laid out as the x86_64 call's: ebx, ecx, edx, esi,
// edi, zero-extended (pointers and unsigned values; handlers narrow fds to int).
static __always_inline void read_compat_args(struct pt_regs *regs, long nr32,
					     struct syscall_ctx *c)
{
	u32 a[6] = {regs->bx, regs->cx, regs->dx, regs->si, regs->di, regs->bp};
	c->compat = true;
	c->nr = native_nr(nr32, a[0]);
	u64 a1 = a[1], a2 = a[2];
	switch (nr32) {
	case NR32_socketcall: {
		// socketcall(call, args): the call's arguments are an array of 32-bit words.
		u32 call = a[0];
		u32 words[6] = {};
		if (bpf_probe_read_user(words, sizeof(words), (void *)(u64)a[1]) < 0)
			bpf_probe_read_user(words, 3 * sizeof(u32), (void *)(u64)a[1]);
		if (call == SYS_SEND)
			words[4] = words[5] = 0; // send(): sendto() without an address
		__builtin_memcpy(a, words, sizeof(a));
		a1 = a[1];
		a2 = a[2];
		break;
	}
	case NR32_truncate: case NR32_ftruncate:
		a1 = (u64)(s64)(s32)a[1]; // compat_off_t
		break;
	case NR32_truncate64: case NR32_ftruncate64:
		a1 = a[1] | ((u64)a[2] << 32); // the 64-bit length in two registers
		break;
	case NR32_umount:
		a1 = 0;
		break;
	case NR32_setuid16: case NR32_setgid16: case NR32_setfsuid16: case NR32_setfsgid16:
		a[0] = id16(a[0]);
		break;
	case NR32_setreuid16: case NR32_setregid16: case NR32_setresuid16: case NR32_setresgid16:
		a[0] = id16(a[0]);
		a1 = id16(a[1]);
		a2 = id16(a[2]);
		break;
	case NR32_chown16: case NR32_lchown16: case NR32_fchown16:
		a1 = id16(a[1]);
		a2 = id16(a[2]);
		break;
	}
	c->r.di = a[0];
	c->r.si = a1;
	c->r.dx = a2;
	c->r.r10 = a[3];
	c->r.r8 = a[4];
}

// `regs` is BTF-typed on every hook (fexit and tp_btf: the syscall's pt_regs argument;
// a syscall tracepoint: bpf_task_pt_regs), so registers are plain loads, not probe reads.
// `maybe_compat`: the hook also runs for 32-bit syscalls (sys_exit only), whose
// numbers and registers are translated.
static __always_inline void read_task_regs(struct task_struct *task, struct pt_regs *regs,
					   long ret, long nr, struct syscall_ctx *c, bool maybe_compat)
{
	c->regs = &c->r;
	c->ret = ret;
	c->compat = false;
	if (maybe_compat && (task->thread_info.status & TS_COMPAT)) {
		read_compat_args(regs, nr, c);
		return;
	}
	c->r.di = regs->di;
	c->r.si = regs->si;
	c->r.dx = regs->dx;
	c->r.r10 = regs->r10;
	c->r.r8 = regs->r8;
	c->nr = nr;
}

static __always_inline void read_regs(struct pt_regs *regs, long ret, long nr,
				      struct syscall_ctx *c, bool maybe_compat)
{
	read_task_regs(bpf_get_current_task_btf(), regs, ret, nr, c, maybe_compat);
}

#endif // RAMPART_LIB_SYSCALL_H
