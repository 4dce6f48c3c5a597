// SPDX-License-Identifier: GPL-2.0
// Exec denial for guarded containers: by path (the executable's path as the container
// sees it, hashed) or by "not in the image" (the file sits in the overlay upper layer).
// Two hooks decide the same way:
// - lsm/bprm_check_security returns -EPERM before the exec happens, where the kernel
//   allows BPF LSM;
// - tp_btf/sched_process_exec, elsewhere, sends SIGKILL to the task: the exec has
//   passed its point of no return, and the signal is taken on the way back to user
//   space, before the new image runs a single instruction.
#ifndef RAMPART_RESPONSE_EXEC_H
#define RAMPART_RESPONSE_EXEC_H

#include "response/maps.h"
#include "response/net.h"

#define GUARD_OVERLAYFS_MAGIC 0x794c7630
#define GUARD_MAX_COMPONENTS 32
#define GUARD_NAME_BYTES 64
#define GUARD_SIGKILL 9
#define GUARD_EPERM 1
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

// The head of struct mount (fs/mount.h), as in lib/path.h: read by plain offsets,
// because aya 0.14's CO-RE matcher poisons relocations against struct mount.
struct guard_mount_head {
	struct hlist_node mnt_hash;
	void *mnt_parent;
	void *mnt_mountpoint;
	struct vfsmount mnt;
};

static __always_inline void *guard_read_ptr(void *base, __u32 off)
{
	void *v = NULL;
	bpf_probe_read_kernel(&v, sizeof(v), base + off);
	return v;
}

struct hash_walk {
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct guard_mount_head *mnt;
	struct guard_mount_head *mnt_parent;
	__u64 hash;
	// CO-RE offsets from the calling program (aya 0.14 relocates none in callbacks).
	__u32 off_mnt_root, off_d_parent, off_d_name;
	char name[GUARD_NAME_BYTES];
};

// One component per call, leaf first: FNV-1a over its first 63 bytes, then '/'.
// crates/bpf's exec_path_hash computes the same over the components in reverse.
static long hash_step(__u64 index, void *data)
{
	struct hash_walk *w = data;
	if (w->dentry == w->root_dentry && w->vfsmnt == w->root_mnt)
		return 1;
	struct dentry *mnt_root = guard_read_ptr(w->vfsmnt, w->off_mnt_root);
	struct dentry *d_parent = guard_read_ptr(w->dentry, w->off_d_parent);
	if (w->dentry == mnt_root || w->dentry == d_parent) {
		if (w->dentry != mnt_root || w->mnt == w->mnt_parent)
			return 1;
		// Cross to the mount this one is mounted on.
		w->dentry = guard_read_ptr(w->mnt, offsetof(struct guard_mount_head, mnt_mountpoint));
		w->mnt = w->mnt_parent;
		w->mnt_parent = guard_read_ptr(w->mnt, offsetof(struct guard_mount_head, mnt_parent));
		w->vfsmnt = (void *)w->mnt + offsetof(struct guard_mount_head, mnt);
		return 0;
	}
	struct {
		__u32 hash;
		__u32 len;
		const unsigned char *name;
	} q = {};
	bpf_probe_read_kernel(&q, sizeof(q), (void *)w->dentry + w->off_d_name);
	__u32 len = q.len > GUARD_NAME_BYTES - 1 ? GUARD_NAME_BYTES - 1 : q.len;
	bpf_probe_read_kernel(w->name, len & (GUARD_NAME_BYTES - 1), q.name);
	__u64 h = w->hash;
	for (__u32 i = 0; i < GUARD_NAME_BYTES - 1; i++) {
		if (i >= len)
			break;
		h ^= (__u8)w->name[i];
		h *= FNV_PRIME;
	}
	h ^= '/';
	h *= FNV_PRIME;
	w->hash = h;
	w->dentry = d_parent;
	return 0;
}

static __always_inline __u64 path_hash(struct path *path)
{
	// On the stack: bpf_loop takes its context from there only.
	struct hash_walk walk = {};
	struct hash_walk *w = &walk;
	struct task_struct *task = bpf_get_current_task_btf();
	w->root_dentry = task->fs->root.dentry;
	w->root_mnt = task->fs->root.mnt;
	w->dentry = path->dentry;
	w->vfsmnt = path->mnt;
	w->mnt = (void *)w->vfsmnt - offsetof(struct guard_mount_head, mnt);
	w->mnt_parent = guard_read_ptr(w->mnt, offsetof(struct guard_mount_head, mnt_parent));
	w->hash = FNV_OFFSET;
	w->off_mnt_root = bpf_core_field_offset(struct vfsmount, mnt_root);
	w->off_d_parent = bpf_core_field_offset(struct dentry, d_parent);
	w->off_d_name = bpf_core_field_offset(struct dentry, d_name);
	bpf_loop(GUARD_MAX_COMPONENTS, hash_step, w, 0);
	return w->hash;
}

// As lib's exe_in_upper_layer: struct ovl_inode keeps `__upperdentry` right after
// its embedded struct inode.
static __always_inline bool in_upper_layer(struct inode *inode)
{
	if (!inode || inode->i_sb->s_magic != GUARD_OVERLAYFS_MAGIC)
		return false;
	__u32 inode_size = bpf_core_type_size(struct inode);
	struct dentry *upper = guard_read_ptr(inode, inode_size);
	if (!upper)
		return false;
	return BPF_CORE_READ(upper, d_inode, i_ino) != 0;
}

static __always_inline struct exec_cfg *task_exec_cfg(__u64 *cgid)
{
	__u64 id = bpf_get_current_cgroup_id();
	struct exec_cfg *c = bpf_map_lookup_elem(&exec_cfg, &id);
	for (int level = GUARD_ANCESTOR_LEVELS; !c && level >= 1; level--) {
		id = bpf_get_current_ancestor_cgroup_id(level);
		if (id)
			c = bpf_map_lookup_elem(&exec_cfg, &id);
	}
	*cgid = id;
	return c;
}

static __always_inline bool exec_denied(const struct exec_cfg *c, __u64 cgid, struct file *f)
{
	if (!f)
		return false;
	if ((c->flags & EXEC_DENY_UPPER) && in_upper_layer(f->f_inode))
		return true;
	if (c->flags & EXEC_DENY_PATHS) {
		struct path p = f->f_path;
		struct exec_path_key k = {.cgid = cgid, .hash = path_hash(&p)};
		if (bpf_map_lookup_elem(&exec_paths, &k))
			return true;
	}
	return false;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(guard_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 cgid = 0;
	struct exec_cfg *c = task_exec_cfg(&cgid);
	if (!c)
		return 0;
	// A script runs as its interpreter (bprm->file); bprm->executable is the script.
	struct file *script = NULL;
	if (bpf_core_field_exists(bprm->executable))
		script = bprm->executable;
	if (exec_denied(c, cgid, bprm->file) || exec_denied(c, cgid, script)) {
		bpf_send_signal(GUARD_SIGKILL);
		count(cgid, 3);
	}
	return 0;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(guard_bprm, struct linux_binprm *bprm, int ret)
{
	if (ret)
		return ret;
	__u64 cgid = 0;
	struct exec_cfg *c = task_exec_cfg(&cgid);
	if (!c)
		return 0;
	// Called for the script and again for each interpreter it names.
	if (exec_denied(c, cgid, bprm->file)) {
		count(cgid, 4);
		return -GUARD_EPERM;
	}
	return 0;
}

#endif // RAMPART_RESPONSE_EXEC_H
