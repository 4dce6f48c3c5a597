// SPDX-License-Identifier: GPL-2.0
// Paths: a struct path walked to the absolute path the task sees, a descriptor's
// file, and the base directory a relative path is resolved against.
#ifndef RAMPART_LIB_PATH_H
#define RAMPART_LIB_PATH_H

#include "lib/fd.h"
#include "lib/maps.h"
#include "lib/str.h"

// The head of struct mount (fs/mount.h), unchanged since Linux 3.x. Read by plain
// offsets: aya 0.14's CO-RE matcher poisons relocations against struct mount.
struct mount_head {
	struct hlist_node mnt_hash;
	void *mnt_parent;
	void *mnt_mountpoint;
	struct vfsmount mnt;
};

static __always_inline void *read_ptr(void *base, u32 off)
{
	void *v = NULL;
	bpf_probe_read_kernel(&v, sizeof(v), base + off);
	return v;
}

struct walk_ctx {
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount_head *mnt;
	struct mount_head *mnt_parent;
	u32 pos;
	// Field offsets, relocated by CO-RE in the calling program: aya 0.14 does not
	// relocate CO-RE accesses inside .text subprograms such as this callback.
	u32 off_mnt_root, off_d_parent, off_d_name;
};

// One path component per call; bpf_loop verifies it once instead of per iteration.
static long walk_step(u64 index, void *data)
{
	struct walk_ctx *w = data;
	struct scratch *s = get_scratch();
	if (!s)
		return 1;
	if (w->dentry == w->root_dentry && w->vfsmnt == w->root_mnt)
		return 1;
	struct dentry *mnt_root = read_ptr(w->vfsmnt, w->off_mnt_root);
	struct dentry *d_parent = read_ptr(w->dentry, w->off_d_parent);
	if (w->dentry == mnt_root || w->dentry == d_parent) {
		if (w->dentry != mnt_root || w->mnt == w->mnt_parent)
			return 1;
		// Cross to the mount this one is mounted on.
		w->dentry = read_ptr(w->mnt, offsetof(struct mount_head, mnt_mountpoint));
		w->mnt = w->mnt_parent;
		w->mnt_parent = read_ptr(w->mnt, offsetof(struct mount_head, mnt_parent));
		w->vfsmnt = (void *)w->mnt + offsetof(struct mount_head, mnt);
		return 0;
	}
	struct {
		u32 hash;
		u32 len;
		const unsigned char *name;
	} name = {};
	bpf_probe_read_kernel(&name, sizeof(name), (void *)w->dentry + w->off_d_name);
	u32 len = name.len & NAME_MAX_LEN;
	u32 pos = w->pos;
	if (pos < len + 1 || pos > PATH_BUF)
		return 1;
	pos -= len;
	bpf_probe_read_kernel(&s->path[pos & (PATH_BUF - 1)], len, name.name);
	pos -= 1;
	s->path[pos & (PATH_BUF - 1)] = '/';
	w->pos = pos;
	w->dentry = d_parent;
	return 0;
}

// Resolves a struct path to an absolute path as the task sees it (stops at the task's
// root, so paths inside a container are container paths) and appends it to the event.
// Components beyond MAX_COMPONENTS are cut (the prefix is lost).
static __always_inline u32 push_path(struct scratch *s, u32 off, struct path *path)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct walk_ctx w = {};
	w.root_dentry = task->fs->root.dentry;
	w.root_mnt = task->fs->root.mnt;
	w.dentry = path->dentry; // `path` is a copy on the stack
	w.vfsmnt = path->mnt;
	w.mnt = (void *)w.vfsmnt - offsetof(struct mount_head, mnt);
	w.mnt_parent = read_ptr(w.mnt, offsetof(struct mount_head, mnt_parent));
	w.pos = PATH_BUF;
	w.off_mnt_root = bpf_core_field_offset(struct vfsmount, mnt_root);
	w.off_d_parent = bpf_core_field_offset(struct dentry, d_parent);
	w.off_d_name = bpf_core_field_offset(struct dentry, d_name);
	bpf_loop(MAX_COMPONENTS, walk_step, &w, 0);
	u32 pos = w.pos;
	if (pos >= PATH_BUF) {
		pos = PATH_BUF - 1;
		s->path[pos] = '/';
	}
	u32 len = PATH_BUF - pos;
	return push_bytes(s->ev, off, &s->path[pos & (PATH_BUF - 1)], len, false);
}

// The current task's open file `fd`, or NULL.
static __always_inline struct file *fd_file(long fd)
{
	return task_fd_file(bpf_get_current_task_btf(), fd);
}

// Appends the directory a relative path is resolved against (cwd or dirfd), or an
// empty string when the path is absolute. `str_off` is where push_str put the path:
// its first byte, already in the event, says whether it is absolute.
static __always_inline u32 push_base(struct scratch *s, u32 off, long dirfd, const char *upath,
				     u32 str_off)
{
	str_off &= OFF_MASK;
	u16 len = *(u16 *)&s->ev[str_off];
	if (!upath || (len > 0 && s->ev[(str_off + 2) & OFF_MASK] == '/'))
		return push_empty(s->ev, off);
	if ((int)dirfd == AT_FDCWD_VAL) {
		struct task_struct *task = bpf_get_current_task_btf();
		struct path pwd = task->fs->pwd;
		return push_path(s, off, &pwd);
	}
	struct file *f = fd_file(dirfd);
	if (!f)
		return push_empty(s->ev, off);
	struct path p = BPF_CORE_READ(f, f_path);
	return push_path(s, off, &p);
}

static __always_inline u32 push_fd_path(struct scratch *s, u32 off, long fd)
{
	struct file *f = fd_file(fd);
	if (!f)
		return push_empty(s->ev, off);
	struct path p = BPF_CORE_READ(f, f_path);
	return push_path(s, off, &p);
}

#endif // RAMPART_LIB_PATH_H
