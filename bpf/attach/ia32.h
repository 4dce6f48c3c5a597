// SPDX-License-Identifier: GPL-2.0
// 32-bit syscalls (32-bit programs, int 0x80) on kernels with BPF trampolines: one
// fexit program on each watched syscall's ia32 entry point (__ia32_sys_* or
// __ia32_compat_sys_*), so that only those calls pay, where a program on sys_exit
// made every syscall on the host pay for a flag test (getppid +39% under -icount).
// Each entry's program is a tail call into its family's handler, verified once per
// family rather than once per entry point.
#ifndef RAMPART_ATTACH_IA32_H
#define RAMPART_ATTACH_IA32_H

#include "file/open.h"
#include "file/path_ops.h"
#include "net/sock.h"
#include "net/dns.h"
#include "kernel/misc.h"
#include "attach/dispatch.h"

// Family handlers for the ia32 entry points, by H_* slot. A program array takes the
// type and attach target of its first program: these are fexit programs on an ia32
// entry point (the loader loads them against the first the kernel has), apart from the
// sys_exit dispatcher's tp_btf handlers.
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, H_MAX);
	__type(key, u32);
	__type(value, u32);
} ia32_handlers SEC(".maps");

// A second array and handler set for entry points whose BTF has another prototype:
// 6.12 lets a program tail-call only into programs loaded against the same one, and
// the entry points of COND_SYSCALL syscalls carry kernel/sys_ni.c's (`__unused`).
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, H_MAX);
	__type(key, u32);
	__type(value, u32);
} ia32_handlers_b SEC(".maps");

// The fexit context of an entry point: ctx[0] its pt_regs, ctx[1] the result. The
// 32-bit syscall's number is orig_ax; the handler translates it and the arguments.
// One set per program array: i32h_<family> (ia32_handlers), i32hb_<family>
// (ia32_handlers_b).
#define IA32_HANDLER(set, family)                                                           \
	SEC("fexit/__ia32_sys_write")                                                        \
	int set##_##family(u64 *ctx)                                                         \
	{                                                                                    \
		struct pt_regs *regs = (struct pt_regs *)ctx[0];                            \
		return do_##family(regs, (long)ctx[1], regs->orig_ax, true);                       \
	}
#define IA32_HANDLER_SET(set)                                                               \
	IA32_HANDLER(set, open)                                                              \
	IA32_HANDLER(set, path1)                                                             \
	IA32_HANDLER(set, fdop)                                                              \
	IA32_HANDLER(set, path2)                                                             \
	IA32_HANDLER(set, sock)                                                              \
	IA32_HANDLER(set, dns)                                                               \
	IA32_HANDLER(set, misc)
IA32_HANDLER_SET(i32h)
IA32_HANDLER_SET(i32hb)

// The ia32 entry points of the watched syscalls (arch/x86/entry/syscalls/syscall_32.tbl:
// the compat entry where there is one, 16-bit id variants, socketcall, the 64-bit
// truncates), with their family slot. Some exist only on some kernels (the loader
// skips what the kernel lacks); an entry point the table does not use costs nothing.
// Keep in step with IA32_ENTRIES in crates/bpf/src/lib.rs (checked by a test).
#define IA32_ENTRY_POINTS(X)                                                                \
	X(sys_write, H_DNS)                                                                  \
	X(compat_sys_open, H_OPEN)                                                           \
	X(sys_open, H_OPEN)                                                                  \
	X(compat_sys_openat, H_OPEN)                                                         \
	X(sys_openat, H_OPEN)                                                                \
	X(sys_openat2, H_OPEN)                                                               \
	X(sys_creat, H_OPEN)                                                                 \
	X(sys_unlink, H_PATH1)                                                               \
	X(sys_unlinkat, H_PATH1)                                                             \
	X(sys_rmdir, H_PATH1)                                                                \
	X(sys_chmod, H_PATH1)                                                                \
	X(sys_fchmodat, H_PATH1)                                                             \
	X(sys_fchmodat2, H_PATH1)                                                            \
	X(sys_chown16, H_PATH1)                                                              \
	X(sys_chown, H_PATH1)                                                                \
	X(sys_lchown16, H_PATH1)                                                             \
	X(sys_lchown, H_PATH1)                                                               \
	X(sys_fchownat, H_PATH1)                                                             \
	X(compat_sys_truncate, H_PATH1)                                                      \
	X(sys_ia32_truncate64, H_PATH1)                                                      \
	X(sys_fchmod, H_FDOP)                                                                \
	X(sys_fchown16, H_FDOP)                                                              \
	X(sys_fchown, H_FDOP)                                                                \
	X(compat_sys_ftruncate, H_FDOP)                                                      \
	X(sys_ia32_ftruncate64, H_FDOP)                                                      \
	X(compat_sys_open_by_handle_at, H_FDOP)                                              \
	X(sys_rename, H_PATH2)                                                               \
	X(sys_renameat, H_PATH2)                                                             \
	X(sys_renameat2, H_PATH2)                                                            \
	X(sys_link, H_PATH2)                                                                 \
	X(sys_linkat, H_PATH2)                                                               \
	X(sys_symlink, H_PATH2)                                                              \
	X(sys_symlinkat, H_PATH2)                                                            \
	X(sys_socket, H_SOCK)                                                                \
	X(sys_bind, H_SOCK)                                                                  \
	X(sys_connect, H_SOCK)                                                               \
	X(sys_listen, H_SOCK)                                                                \
	X(sys_accept4, H_SOCK)                                                               \
	X(sys_dup, H_SOCK)                                                                   \
	X(sys_dup2, H_SOCK)                                                                  \
	X(sys_dup3, H_SOCK)                                                                  \
	X(sys_sendto, H_DNS)                                                                 \
	X(compat_sys_sendmsg, H_DNS)                                                         \
	X(compat_sys_sendmmsg, H_DNS)                                                        \
	X(sys_setuid16, H_MISC)                                                              \
	X(sys_setuid, H_MISC)                                                                \
	X(sys_setgid16, H_MISC)                                                              \
	X(sys_setgid, H_MISC)                                                                \
	X(sys_setreuid16, H_MISC)                                                            \
	X(sys_setreuid, H_MISC)                                                              \
	X(sys_setregid16, H_MISC)                                                            \
	X(sys_setregid, H_MISC)                                                              \
	X(sys_setresuid16, H_MISC)                                                           \
	X(sys_setresuid, H_MISC)                                                             \
	X(sys_setresgid16, H_MISC)                                                           \
	X(sys_setresgid, H_MISC)                                                             \
	X(sys_setfsuid16, H_MISC)                                                            \
	X(sys_setfsuid, H_MISC)                                                              \
	X(sys_setfsgid16, H_MISC)                                                            \
	X(sys_setfsgid, H_MISC)                                                              \
	X(sys_capset, H_MISC)                                                                \
	X(compat_sys_ptrace, H_MISC)                                                         \
	X(sys_unshare, H_MISC)                                                               \
	X(sys_setns, H_MISC)                                                                 \
	X(sys_bpf, H_MISC)                                                                   \
	X(sys_init_module, H_MISC)                                                           \
	X(sys_finit_module, H_MISC)                                                          \
	X(sys_memfd_create, H_MISC)                                                          \
	X(sys_mount, H_MISC)                                                                 \
	X(sys_move_mount, H_MISC)                                                            \
	X(sys_fsmount, H_MISC)                                                               \
	X(sys_open_tree, H_MISC)                                                             \
	X(sys_fspick, H_MISC)                                                                \
	X(sys_mount_setattr, H_MISC)                                                         \
	X(sys_process_vm_readv, H_MISC)                                                      \
	X(compat_sys_process_vm_readv, H_MISC)                                               \
	X(sys_process_vm_writev, H_MISC)                                                     \
	X(compat_sys_process_vm_writev, H_MISC)                                              \
	X(sys_oldumount, H_MISC)                                                             \
	X(sys_umount, H_MISC)                                                                \
	X(sys_chdir, H_MISC)                                                                 \
	X(sys_fchdir, H_MISC)                                                                \
	X(compat_sys_execve, H_MISC)                                                         \
	X(compat_sys_execveat, H_MISC)                                                       \
	X(sys_prctl, H_MISC)                                                                 \
	X(sys_chroot, H_MISC)

// The loader maps i32_<entry> (and i32b_<entry>, on the second array) to the kernel
// function __ia32_<entry>.
#define IA32_STUB_ON(prefix, handlers, entry, slot)                                         \
	SEC("fexit/__ia32_" #entry)                                                          \
	int prefix##_##entry(u64 *ctx)                                                       \
	{                                                                                    \
		bpf_tail_call(ctx, &handlers, slot);                                         \
		return 0;                                                                    \
	}
#define IA32_STUB(entry, slot) IA32_STUB_ON(i32, ia32_handlers, entry, slot)
#define IA32_STUB_B(entry, slot) IA32_STUB_ON(i32b, ia32_handlers_b, entry, slot)
IA32_ENTRY_POINTS(IA32_STUB)
IA32_ENTRY_POINTS(IA32_STUB_B)

// socketcall(2) multiplexes the socket calls: its family is its call's (ebx).
#define IA32_SOCKETCALL(prefix, handlers)                                                   \
	SEC("fexit/__ia32_compat_sys_socketcall")                                            \
	int prefix##_compat_sys_socketcall(u64 *ctx)                                         \
	{                                                                                    \
		struct pt_regs *regs = (struct pt_regs *)ctx[0];                            \
		u32 h = handler_of(native_nr(NR32_socketcall, (u32)regs->bx));              \
		if (h != H_NONE)                                                             \
			bpf_tail_call(ctx, &handlers, h);                                    \
		return 0;                                                                    \
	}
IA32_SOCKETCALL(i32, ia32_handlers)
IA32_SOCKETCALL(i32b, ia32_handlers_b)

#endif // RAMPART_ATTACH_IA32_H
