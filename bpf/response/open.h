// SPDX-License-Identifier: GPL-2.0
// Synchronous kill on open of a path (`action: kill` rules on `fd.name startswith`,
// `fd.name =`/`in`/`pmatch`, `fd.directory =`/`in`): at the syscall's exit tracepoint
// the new descriptor's file is resolved to its path as the task sees it (symlinks and
// relative paths already resolved by the open itself) and looked up in an LPM trie of
// path prefixes; a match sends SIGKILL, so the task dies on its way back to user space
// and never sees the descriptor. The open itself has happened (as with the signal at
// sys_enter: an open does not wait for signals); nothing of the process runs after it.
// Hooks: syscalls/sys_exit_{open,openat,openat2,creat} (tracepoints: no kprobes or
// fexit on every kernel). Only tasks in a pid namespace below the host's are killed.
#ifndef RAMPART_RESPONSE_OPEN_H
#define RAMPART_RESPONSE_OPEN_H

#include "response/kill.h"

// Bytes of a path the trie compares (LPM keys hold at most 256 bytes of data).
#define KILL_OPEN_KEY_BYTES 256
// The path is built leaf first from the end of a buffer this long; deeper or longer
// paths are not matched (their root end is unknown).
#define KILL_OPEN_BUF 4096
#define KILL_OPEN_COMPONENTS 64
// Entries of the trie one open can look through (a failed directory or exact entry
// retries with the entries shorter than it).
#define KILL_OPEN_TRIES 8

enum kill_open_kind {
	KILL_OPEN_PREFIX = 0, // the path starts with the entry
	KILL_OPEN_DIR = 1, // the file is directly in the entry (a directory ending in '/')
	KILL_OPEN_EXACT = 2, // the path is the entry
};

// The syscall that opened (kill_open_rule.syscalls).
enum kill_open_syscall {
	KILL_SYS_OPEN = 1,
	KILL_SYS_OPENAT = 2,
	KILL_SYS_OPENAT2 = 4,
	KILL_SYS_CREAT = 8,
};

#define KILL_FMODE_READ 0x1
#define KILL_FMODE_WRITE 0x2
#define KILL_S_IFMT 00170000
#define KILL_S_IFREG 0100000

struct kill_open_key {
	__u32 prefixlen; // bits
	__u8 path[KILL_OPEN_KEY_BYTES];
};

struct kill_open_rule {
	__u32 rule;
	__u16 kind; // enum kill_open_kind
	__u16 len; // bytes of the entry's path
	__u8 syscalls; // enum kill_open_syscall bits; 0: any
	__u8 modes; // KILL_FMODE_* bits, any of them (evt.is_open_read/write); 0: any
	__u8 regular; // 1: regular files only (fd.typechar = f)
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, KILL_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct kill_open_key);
	__type(value, struct kill_open_rule);
} kill_open SEC(".maps");

struct kill_open_scratch {
	__u8 buf[KILL_OPEN_BUF + KILL_OPEN_KEY_BYTES];
	struct kill_open_key key;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kill_open_scratch);
} kill_open_scratch SEC(".maps");

struct open_walk {
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct guard_mount_head *mnt;
	struct guard_mount_head *mnt_parent;
	struct kill_open_scratch *s;
	__u32 pos; // the path starts at buf[pos]
	__u32 leaf; // bytes of the last component
	__u32 done; // reached the task's root
	__u32 off_mnt_root, off_d_parent, off_d_name;
};

// One component per call, leaf first, written right to left ending at buf[KILL_OPEN_BUF]
// (as exec.h's hash_step walks: mounts crossed, the task's root ends the walk).
static long open_walk_step(__u64 index, void *data)
{
	struct open_walk *w = data;
	if (w->dentry == w->root_dentry && w->vfsmnt == w->root_mnt) {
		w->done = 1;
		return 1;
	}
	struct dentry *mnt_root = guard_read_ptr(w->vfsmnt, w->off_mnt_root);
	struct dentry *d_parent = guard_read_ptr(w->dentry, w->off_d_parent);
	if (w->dentry == mnt_root || w->dentry == d_parent) {
		if (w->dentry != mnt_root || w->mnt == w->mnt_parent) {
			// The top of the mount tree (a task's root outside it: the walk is whole).
			w->done = 1;
			return 1;
		}
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
	__u32 len = q.len & 255;
	__u32 pos = w->pos;
	if (pos < len + 1 || pos > KILL_OPEN_BUF)
		return 1; // too long: done stays 0
	pos -= len;
	bpf_probe_read_kernel(&w->s->buf[pos & (KILL_OPEN_BUF - 1)], len, q.name);
	pos -= 1;
	w->s->buf[pos & (KILL_OPEN_BUF - 1)] = '/';
	if (w->pos == KILL_OPEN_BUF)
		w->leaf = len; // the first name written (a bind-mounted file crosses first)
	w->pos = pos;
	w->dentry = d_parent;
	return 0;
}

static __always_inline bool open_rule_applies(const struct kill_open_rule *r, __u32 path_len,
					      __u32 leaf, __u8 syscall, struct file *f)
{
	if (r->kind == KILL_OPEN_DIR && r->len != path_len - leaf)
		return false;
	if (r->kind == KILL_OPEN_EXACT && r->len != path_len)
		return false;
	if (r->syscalls && !(r->syscalls & syscall))
		return false;
	if (r->modes && !(BPF_CORE_READ(f, f_mode) & r->modes))
		return false;
	if (r->regular && (BPF_CORE_READ(f, f_inode, i_mode) & KILL_S_IFMT) != KILL_S_IFREG)
		return false;
	return true;
}

static __always_inline int kill_open_exit(long fd, __u8 syscall)
{
	if (fd < 0 || !kill_in_container())
		return 0;
	__u32 zero = 0;
	struct kill_open_scratch *s = bpf_map_lookup_elem(&kill_open_scratch, &zero);
	if (!s)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	if ((unsigned long)fd >= fdt->max_fds)
		return 0;
	struct file **fds = fdt->fd;
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return 0;
	struct path p = BPF_CORE_READ(f, f_path);

	struct open_walk walk = {};
	struct open_walk *w = &walk;
	w->root_dentry = task->fs->root.dentry;
	w->root_mnt = task->fs->root.mnt;
	w->dentry = p.dentry;
	w->vfsmnt = p.mnt;
	w->mnt = (void *)w->vfsmnt - offsetof(struct guard_mount_head, mnt);
	w->mnt_parent = guard_read_ptr(w->mnt, offsetof(struct guard_mount_head, mnt_parent));
	w->s = s;
	w->pos = KILL_OPEN_BUF;
	w->off_mnt_root = bpf_core_field_offset(struct vfsmount, mnt_root);
	w->off_d_parent = bpf_core_field_offset(struct dentry, d_parent);
	w->off_d_name = bpf_core_field_offset(struct dentry, d_name);
	bpf_loop(KILL_OPEN_COMPONENTS, open_walk_step, w, 0);
	if (!w->done)
		return 0;
	__u32 pos = w->pos;
	if (pos >= KILL_OPEN_BUF) {
		// The root itself.
		pos = KILL_OPEN_BUF - 1;
		s->buf[pos] = '/';
	}
	__u32 path_len = KILL_OPEN_BUF - pos;
	__u32 key_len = path_len > KILL_OPEN_KEY_BYTES ? KILL_OPEN_KEY_BYTES : path_len;
	bpf_probe_read_kernel(s->key.path, KILL_OPEN_KEY_BYTES, &s->buf[pos & (KILL_OPEN_BUF - 1)]);
	s->key.prefixlen = key_len * 8;
	for (int i = 0; i < KILL_OPEN_TRIES; i++) {
		struct kill_open_rule *r = bpf_map_lookup_elem(&kill_open, &s->key);
		if (!r)
			return 0;
		if (open_rule_applies(r, path_len, w->leaf, syscall, f)) {
			kill_current(&r->rule);
			return 0;
		}
		if (r->len == 0)
			return 0;
		// The longest entry shorter than this one.
		s->key.prefixlen = (r->len - 1) * 8;
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_open")
int kill_open_open(struct trace_event_raw_sys_exit *ctx)
{
	return kill_open_exit(ctx->ret, KILL_SYS_OPEN);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int kill_open_openat(struct trace_event_raw_sys_exit *ctx)
{
	return kill_open_exit(ctx->ret, KILL_SYS_OPENAT);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int kill_open_openat2(struct trace_event_raw_sys_exit *ctx)
{
	return kill_open_exit(ctx->ret, KILL_SYS_OPENAT2);
}

SEC("tracepoint/syscalls/sys_exit_creat")
int kill_open_creat(struct trace_event_raw_sys_exit *ctx)
{
	return kill_open_exit(ctx->ret, KILL_SYS_CREAT);
}

#endif // RAMPART_RESPONSE_OPEN_H
