// SPDX-License-Identifier: GPL-2.0
// Attachment of the family handlers: tail-call targets for the sys_exit dispatcher,
// fexit stubs, and the syscall tracepoint programs.
#ifndef RAMPART_ATTACH_STUBS_H
#define RAMPART_ATTACH_STUBS_H

#include "file/open.h"
#include "file/path_ops.h"
#include "net/sock.h"
#include "net/dns.h"
#include "kernel/misc.h"

// sys_exit fallback: tail-call targets of on_sys_exit, one per syscall family.
#define TAIL_HANDLER(family)                                                                \
	SEC("tp_btf/h_" #family)                                                             \
	int h_##family(u64 *ctx)                                                             \
	{                                                                                    \
		struct pt_regs *regs = (struct pt_regs *)ctx[0];                            \
		return do_##family(regs, (long)ctx[1], regs->orig_ax, true);                       \
	}
TAIL_HANDLER(open)
TAIL_HANDLER(path1)
TAIL_HANDLER(fdop)
TAIL_HANDLER(path2)
TAIL_HANDLER(sock)
TAIL_HANDLER(dns)
TAIL_HANDLER(misc)

// The watched syscalls: X(name in the kernel, family handler, syscall number).
// umount2(2) is sys_umount in the kernel.
#define WATCHED_SYSCALLS(X)                                                                 \
	X(open, open, NR_open)                                                               \
	X(openat, open, NR_openat)                                                           \
	X(openat2, open, NR_openat2)                                                         \
	X(creat, open, NR_creat)                                                             \
	X(unlink, path1, NR_unlink)                                                          \
	X(unlinkat, path1, NR_unlinkat)                                                      \
	X(rmdir, path1, NR_rmdir)                                                            \
	X(chmod, path1, NR_chmod)                                                            \
	X(fchmodat, path1, NR_fchmodat)                                                      \
	X(fchmodat2, path1, NR_fchmodat2)                                                    \
	X(chown, path1, NR_chown)                                                            \
	X(lchown, path1, NR_lchown)                                                          \
	X(fchownat, path1, NR_fchownat)                                                      \
	X(truncate, path1, NR_truncate)                                                      \
	X(fchmod, fdop, NR_fchmod)                                                           \
	X(fchown, fdop, NR_fchown)                                                           \
	X(ftruncate, fdop, NR_ftruncate)                                                     \
	X(open_by_handle_at, fdop, NR_open_by_handle_at)                                     \
	X(rename, path2, NR_rename)                                                          \
	X(renameat, path2, NR_renameat)                                                      \
	X(renameat2, path2, NR_renameat2)                                                    \
	X(link, path2, NR_link)                                                              \
	X(linkat, path2, NR_linkat)                                                          \
	X(symlink, path2, NR_symlink)                                                        \
	X(symlinkat, path2, NR_symlinkat)                                                    \
	X(connect, sock, NR_connect)                                                         \
	X(accept, sock, NR_accept)                                                           \
	X(accept4, sock, NR_accept4)                                                         \
	X(bind, sock, NR_bind)                                                               \
	X(listen, sock, NR_listen)                                                           \
	X(socket, sock, NR_socket)                                                           \
	X(dup, sock, NR_dup)                                                                 \
	X(dup2, sock, NR_dup2)                                                               \
	X(dup3, sock, NR_dup3)                                                               \
	X(sendto, dns, NR_sendto)                                                            \
	X(sendmsg, dns, NR_sendmsg)                                                          \
	X(sendmmsg, dns, NR_sendmmsg)                                                        \
	X(write, dns, NR_write)                                                              \
	X(setuid, misc, NR_setuid)                                                           \
	X(setgid, misc, NR_setgid)                                                           \
	X(setreuid, misc, NR_setreuid)                                                       \
	X(setregid, misc, NR_setregid)                                                       \
	X(setresuid, misc, NR_setresuid)                                                     \
	X(setresgid, misc, NR_setresgid)                                                     \
	X(setfsuid, misc, NR_setfsuid)                                                       \
	X(setfsgid, misc, NR_setfsgid)                                                       \
	X(capset, misc, NR_capset)                                                           \
	X(ptrace, misc, NR_ptrace)                                                           \
	X(unshare, misc, NR_unshare)                                                         \
	X(setns, misc, NR_setns)                                                             \
	X(bpf, misc, NR_bpf)                                                                 \
	X(init_module, misc, NR_init_module)                                                 \
	X(finit_module, misc, NR_finit_module)                                               \
	X(memfd_create, misc, NR_memfd_create)                                               \
	X(mount, misc, NR_mount)                                                             \
	X(move_mount, misc, NR_move_mount)                                                   \
	X(fsmount, misc, NR_fsmount)                                                         \
	X(open_tree, misc, NR_open_tree)                                                     \
	X(fspick, misc, NR_fspick)                                                           \
	X(mount_setattr, misc, NR_mount_setattr)                                             \
	X(process_vm_readv, misc, NR_process_vm_readv)                                       \
	X(process_vm_writev, misc, NR_process_vm_writev)                                     \
	X(umount, misc, NR_umount2)                                                          \
	X(chdir, misc, NR_chdir)                                                             \
	X(fchdir, misc, NR_fchdir)                                                           \
	X(execve, misc, NR_execve)                                                           \
	X(execveat, misc, NR_execveat)                                                       \
	X(prctl, misc, NR_prctl)                                                             \
	X(chroot, misc, NR_chroot)

// The default: one fexit program per watched syscall, on its __x64_sys_* entry point.
// The context is the same as sys_exit's (ctx[0] the syscall's pt_regs, ctx[1] its
// result), and the syscall number is a constant, so each stub compiles to only its
// syscall's branch of the family handler. Syscalls the sensor does not watch pay
// nothing (an attached sys_exit tracepoint slows every syscall on the host).
// The loader maps stub names to kernel functions: fx_<name> -> __x64_sys_<name>.
// `make -C bpf stubs-as-tp` builds the same stubs in tp_btf/sys_exit sections (the
// same context), so a kernel that refuses trampolines can still verify their code.
#ifndef FEXIT_SEC
#define FEXIT_SEC(name) SEC("fexit/__x64_sys_" #name)
#endif
#define FEXIT(name, family, nr)                                                             \
	FEXIT_SEC(name)                                                                      \
	int fx_##name(u64 *ctx)                                                              \
	{                                                                                    \
		return do_##family((struct pt_regs *)ctx[0], (long)ctx[1], nr, false);              \
	}
WATCHED_SYSCALLS(FEXIT)

// Where the kernel refuses trampolines: the watched syscalls' own exit tracepoints
// (syscalls:sys_exit_<name>). The kernel runs such a program only for its syscall; the
// others pay just the kernel's test of its bitmap of traced syscalls (getppid: +16 ns,
// against +45 ns for a program on every sys_exit). One program per family, attached to
// each of its syscalls' tracepoints, so the verifier sees each family once (one
// program per syscall took 11 s to load, for the path walks verified over again).
// The record has the syscall's number and result; the arguments come from pt_regs.
struct syscall_exit_record {
	u64 common;
	int nr;
	int pad;
	long ret;
};
#define FAMILY_TP(family)                                                                   \
	SEC("tracepoint/syscalls/" #family)                                                  \
	int tp_##family(struct syscall_exit_record *rec)                                     \
	{                                                                                    \
		struct pt_regs *regs =                                                       \
			(struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());      \
		do_##family(regs, rec->ret, rec->nr, false);                                        \
		return 0; /* 0: the kernel skips its own (perf) copy of the record */        \
	}
FAMILY_TP(open)
FAMILY_TP(path1)
FAMILY_TP(fdop)
FAMILY_TP(path2)
FAMILY_TP(sock)
FAMILY_TP(dns)
FAMILY_TP(misc)

#endif // RAMPART_ATTACH_STUBS_H
