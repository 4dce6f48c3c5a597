// SPDX-License-Identifier: GPL-2.0
// Process lifecycle: exec, fork and exit from the sched tracepoints.
#ifndef RAMPART_PROCESS_LIFECYCLE_H
#define RAMPART_PROCESS_LIFECYCLE_H

#include "lib/event.h"
#include "lib/path.h"

#define OVERLAYFS_SUPER_MAGIC 0x794c7630

// True when an overlayfs inode has an upper dentry: the file was written inside the
// container (created or copied up), not shipped in an image layer. struct ovl_inode
// keeps `__upperdentry` right after its embedded `struct inode vfs_inode`, and is not
// in vmlinux BTF when overlay is a module, hence the read past the inode's size.
static __always_inline bool exe_in_upper_layer(struct inode *inode)
{
	if (!inode || inode->i_sb->s_magic != OVERLAYFS_SUPER_MAGIC)
		return false;
	u32 inode_size = bpf_core_type_size(struct inode);
	struct dentry *upper = read_ptr(inode, inode_size);
	if (!upper)
		return false;
	return BPF_CORE_READ(upper, d_inode, i_ino) != 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	// Arguments of tp_btf programs are typed kernel pointers: fields are plain loads.
	u32 tgid = p->tgid;
	if (ignored(tgid) || !kind_enabled(K_EXEC))
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	u32 off = fill_hdr(s, K_EXEC);
	struct ev_hdr *h = (struct ev_hdr *)s->ev;

	struct file *file = bprm->file;
	struct file *exe_file = file;
	if (bpf_core_field_exists(bprm->executable)) {
		struct file *x = bprm->executable;
		if (x)
			exe_file = x;
	}
	u64 flags = 0;
	struct dentry *d = exe_file->f_path.dentry;
	if (d->d_inode->__i_nlink == 0)
		flags |= EXEC_F_DELETED;
	char prefix[6] = {};
	bpf_probe_read_kernel(prefix, sizeof(prefix), d->d_name.name);
	if (prefix[0] == 'm' && prefix[1] == 'e' && prefix[2] == 'm' && prefix[3] == 'f' &&
	    prefix[4] == 'd' && prefix[5] == ':')
		flags |= EXEC_F_MEMFD;
	if (exe_in_upper_layer(exe_file->f_inode))
		flags |= EXEC_F_UPPER_LAYER;

	struct mm_struct *mm = p->mm;
	unsigned long arg_start = mm->arg_start;
	unsigned long arg_end = mm->arg_end;
	unsigned long arg_len = arg_end - arg_start;
	if (arg_len > MAX_STR - 1) {
		arg_len = MAX_STR - 1;
		flags |= EXEC_F_ARGS_TRUNC;
	}
	h->args[0] = flags;
	h->args[1] = bprm->argc;

	const char *filename = bprm->filename;
	const char *interp = bprm->interp;
	off = push_str(s->ev, off, filename, false);
	if (interp != filename)
		off = push_str(s->ev, off, interp, false);
	else
		off = push_empty(s->ev, off);
	struct path exe_path = exe_file->f_path;
	off = push_path(s, off, &exe_path);
	off = push_bytes(s->ev, off, (const void *)arg_start, (u32)arg_len, true);
	struct path pwd = p->fs->pwd;
	off = push_path(s, off, &pwd);
	// The environment block, read here because a short-lived process is gone by the
	// time user space could read /proc; user space keeps only the startup-hook
	// variables. Cut to the room left below OFF_MASK (user space reads /proc for the
	// rest of a cut one).
	unsigned long env_start = mm->env_start;
	unsigned long env_len = mm->env_end - env_start;
	u32 room = off < OFF_MASK ? OFF_MASK - off : 0;
	if (room > MAX_STR - 1)
		room = MAX_STR - 1;
	flags |= EXEC_F_ENV;
	if (env_len > room) {
		env_len = room;
		flags |= EXEC_F_ENV_TRUNC;
	}
	h->args[0] = flags;
	off = push_bytes(s->ev, off, (const void *)env_start, (u32)env_len, true);
	return submit(s, off);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	u32 ctgid = child->tgid;
	if (ctgid != child->pid) // a new thread, not a process
		return 0;
	u32 ptgid = parent->tgid;
	// The child inherits the parent's sockets, so its writes may be DNS queries too.
	if (kind_enabled(K_DNS) && bpf_map_lookup_elem(&dns_writers, &ptgid)) {
		u8 one = 1;
		bpf_map_update_elem(&dns_writers, &ctgid, &one, BPF_ANY);
	}
	if (ignored(ptgid) || !kind_enabled(K_FORK))
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	u32 off = fill_hdr(s, K_FORK);
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = ctgid;
	h->args[1] = child->start_boottime;
	return submit(s, off);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	// Only when the whole thread group is gone.
	if (p->signal->live.counter != 0)
		return 0;
	u32 tgid = p->tgid;
	if (ignored(tgid) || !kind_enabled(K_EXIT))
		return 0;
	struct scratch *s = get_scratch();
	if (!s)
		return 0;
	u32 off = fill_hdr(s, K_EXIT);
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	long code = p->exit_code;
	unsigned int sflags = p->signal->flags;
	if (sflags & 0x4 /* SIGNAL_GROUP_EXIT */)
		code = p->signal->group_exit_code;
	h->args[0] = code;
	return submit(s, off);
}

#endif // RAMPART_PROCESS_LIFECYCLE_H
