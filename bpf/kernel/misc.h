// SPDX-License-Identifier: GPL-2.0
// The rest of the watched syscalls, one handler: ids and capabilities, ptrace,
// namespaces, modules, bpf(2), memfd, mounts, process_vm, and the process events
// that come from syscalls (chdir, chroot, failed execs, prctl renames).
#ifndef RAMPART_KERNEL_MISC_H
#define RAMPART_KERNEL_MISC_H

#include "lib/event.h"
#include "lib/path.h"
#include "lib/syscall.h"
#include "kernel/mount.h"

static __always_inline int do_misc(struct pt_regs *regs, long ret, long nr, bool maybe_compat)
{
	struct syscall_ctx c;
	read_regs(regs, ret, nr, &c, maybe_compat);
	u16 kind;
	switch (c.nr) {
	case NR_capset: kind = K_CAPSET; break;
	case NR_ptrace: kind = K_PTRACE; break;
	case NR_unshare: kind = K_UNSHARE; break;
	case NR_setns: kind = K_SETNS; break;
	case NR_bpf: kind = K_BPF; break;
	case NR_init_module: kind = K_INIT_MODULE; break;
	case NR_finit_module: kind = K_FINIT_MODULE; break;
	case NR_umount2: kind = K_UMOUNT; break;
	case NR_mount: case NR_move_mount: case NR_fsmount: case NR_open_tree: case NR_fspick:
	case NR_mount_setattr:
		kind = K_MOUNT;
		break;
	case NR_memfd_create: kind = K_MEMFD; break;
	case NR_process_vm_readv: case NR_process_vm_writev: kind = K_PROCESS_VM; break;
	case NR_chdir: case NR_fchdir: kind = K_CHDIR; break;
	case NR_execve: case NR_execveat: kind = K_EXEC_FAILED; break;
	case NR_prctl: kind = K_RENAME_PROC; break;
	case NR_chroot: kind = K_CHROOT; break;
	default: kind = K_SETID;
	}
	if (!kind_enabled(kind))
		return 0;
	if (kind == K_CHDIR && c.ret != 0)
		return 0;
	// A successful exec is the sched_process_exec event. Of the failures, ENOENT and
	// ENOTDIR are execvp's walk along PATH; the rest (EACCES from a noexec mount or a
	// missing x bit, EPERM from an LSM, ENOEXEC, ETXTBSY) are attempts worth seeing.
	if (kind == K_EXEC_FAILED && (c.ret >= 0 || c.ret == -2 || c.ret == -20))
		return 0;
	// prctl: only PR_SET_NAME (15) by a process's main thread, the name ps and top
	// show; threads naming themselves (every runtime does) are left out.
	if (kind == K_RENAME_PROC) {
		u64 pid_tgid = bpf_get_current_pid_tgid();
		if (ARG0(c.regs) != 15 || (u32)pid_tgid != pid_tgid >> 32)
			return 0;
	}
	u32 off;
	struct scratch *s = begin_current(kind, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c.ret;
	h->args[1] = c.nr;
	h->args[2] = ARG0(c.regs);
	h->args[3] = ARG1(c.regs);
	h->args[4] = ARG2(c.regs);
	switch (kind) {
	case K_CAPSET: {
		u32 data[6] = {}; // two __user_cap_data_struct {effective, permitted, inheritable}
		bpf_probe_read_user(data, sizeof(data), (void *)ARG1(c.regs));
		h->args[2] = ((u64)data[3] << 32) | data[0];
		h->args[3] = ((u64)data[4] << 32) | data[1];
		h->args[4] = ((u64)data[5] << 32) | data[2];
		break;
	}
	case K_MOUNT:
		if (c.nr != NR_mount) {
			off = push_new_mount_api(s, off, &c);
			break;
		}
		h->args[2] = ARG3(c.regs);
		off = push_str(s->ev, off, (void *)ARG0(c.regs), true);
		off = push_str(s->ev, off, (void *)ARG1(c.regs), true);
		off = push_str(s->ev, off, (void *)ARG2(c.regs), true);
		break;
	case K_UMOUNT:
		off = push_str(s->ev, off, (void *)ARG0(c.regs), true);
		break;
	case K_MEMFD:
		off = push_str(s->ev, off, (void *)ARG0(c.regs), true);
		break;
	case K_FINIT_MODULE:
		off = push_fd_path(s, off, ARG0(c.regs));
		break;
	case K_CHDIR: {
		struct path pwd = bpf_get_current_task_btf()->fs->pwd;
		off = push_path(s, off, &pwd);
		break;
	}
	case K_RENAME_PROC:
		off = push_str(s->ev, off, (void *)ARG1(c.regs), true);
		break;
	case K_CHROOT: {
		// The new root as the caller named it, and its cwd: after the call the task's
		// root is that directory, so a walk of it would give "/" (and a cwd inside it
		// is walked from it: user space resolves with the cwd it tracks instead).
		const char *path = (const char *)ARG0(c.regs);
		u32 path_off = off;
		off = push_str(s->ev, off, path, true);
		off = push_base(s, off, AT_FDCWD_VAL, path, path_off);
		break;
	}
	case K_EXEC_FAILED: {
		// execve(path, argv, envp); execveat(dirfd, path, argv, envp, flags).
		bool at = c.nr == NR_execveat;
		const char *path = (const char *)(at ? ARG1(c.regs) : ARG0(c.regs));
		const void *argv = (const void *)(at ? ARG2(c.regs) : ARG1(c.regs));
		h->args[2] = at ? ARG4(c.regs) : 0;
		u32 path_off = off;
		off = push_str(s->ev, off, path, true);
		off = push_base(s, off, at ? (long)(int)ARG0(c.regs) : AT_FDCWD_VAL, path, path_off);
		// The first four arguments (a 32-bit caller's argv holds 32-bit pointers), and
		// whether there were more.
		u64 ptrs[5] = {};
		if (c.compat) {
			u32 p32[5] = {};
			bpf_probe_read_user(p32, sizeof(p32), argv);
			for (int i = 0; i < 5; i++)
				ptrs[i] = p32[i];
		} else {
			bpf_probe_read_user(ptrs, sizeof(ptrs), argv);
		}
		u64 n = 0;
		for (int i = 0; i < 4 && ptrs[i]; i++) {
			off = push_str(s->ev, off, (const void *)ptrs[i], true);
			n++;
		}
		for (u64 i = n; i < 4; i++)
			off = push_empty(s->ev, off);
		h->args[3] = n;
		h->args[4] = n == 4 && ptrs[4];
		break;
	}
	default:
		break;
	}
	return submit(s, off);
}

#endif // RAMPART_KERNEL_MISC_H
