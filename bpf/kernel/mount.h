// SPDX-License-Identifier: GPL-2.0
// The new mount API's calls (fsmount, open_tree, move_mount, fspick, mount_setattr)
// as mount records.
#ifndef RAMPART_KERNEL_MOUNT_H
#define RAMPART_KERNEL_MOUNT_H

#include "lib/event.h"
#include "lib/path.h"
#include "lib/syscall.h"

// The superblock of a mount descriptor (fsmount, open_tree) or of any open file.
static __always_inline struct super_block *fd_super(long fd)
{
	struct file *f = fd_file(fd);
	return f ? BPF_CORE_READ(f, f_path.mnt, mnt_sb) : NULL;
}

static __always_inline u32 push_sb_id(u8 *buf, u32 off, struct super_block *sb)
{
	return push_str(buf, off, (const char *)sb + bpf_core_field_offset(struct super_block, s_id),
			false);
}

// The new mount API, as mount records: strings source, target, fstype, and the base
// directory of the one relative path (open_tree: the source; move_mount, fspick and
// mount_setattr: the target).
// - fsmount(fs_fd, flags, attr_flags) -> mount fd: a new, detached filesystem
//   instance; source is its device name (the superblock's s_id: "tmpfs", "vda1").
// - open_tree(dfd, path, flags) -> fd: with OPEN_TREE_CLONE, a detached copy (a bind
//   mount to be) of the tree at path.
// - move_mount(from_dfd, from_path, to_dfd, to_path, flags): attaches either at
//   to_path. From a descriptor (empty from_path) the source is its device name.
// - fspick(dfd, path, flags) -> fs context fd: picks the superblock mounted at path
//   (the target) for reconfiguration (fsconfig then remounts it: read-write, other
//   options); fstype from the context.
// - mount_setattr(dfd, path, flags, attr, size): changes the attributes of the tree at
//   path (read-only, noexec, ...); flags are attr_set in the low 32 bits and attr_clr
//   in the high 32 (every MOUNT_ATTR_* fits in 32 bits).
// fstype comes from the superblock of the descriptor made or moved.
static __always_inline u32 push_new_mount_api(struct scratch *s, u32 off, struct syscall_ctx *c)
{
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	struct super_block *sb = NULL;
	const char *path = NULL; // the one user path, resolved against `dirfd`
	long dirfd = AT_FDCWD_VAL;
	u32 path_off = 0; // set with `path`; read only when it is
	if (c->nr == NR_fsmount) {
		h->args[2] = ARG2(c->regs);
		sb = c->ret >= 0 ? fd_super(c->ret) : NULL;
		off = sb ? push_sb_id(s->ev, off, sb) : push_empty(s->ev, off);
		off = push_empty(s->ev, off);
	} else if (c->nr == NR_mount_setattr) {
		struct mount_attr attr = {};
		bpf_probe_read_user(&attr, sizeof(attr), (void *)ARG3(c->regs));
		h->args[2] = (attr.attr_set & 0xffffffff) | (attr.attr_clr << 32);
		path = (const char *)ARG1(c->regs);
		dirfd = (int)ARG0(c->regs);
		off = push_empty(s->ev, off);
		path_off = off;
		off = push_str(s->ev, off, path, true);
	} else if (c->nr == NR_open_tree) {
		h->args[2] = ARG2(c->regs);
		sb = c->ret >= 0 ? fd_super(c->ret) : NULL;
		path = (const char *)ARG1(c->regs);
		dirfd = (int)ARG0(c->regs);
		path_off = off;
		off = push_str(s->ev, off, path, true);
		off = push_empty(s->ev, off);
	} else if (c->nr == NR_fspick) {
		h->args[2] = ARG2(c->regs);
		path = (const char *)ARG1(c->regs);
		dirfd = (int)ARG0(c->regs);
		off = push_empty(s->ev, off);
		path_off = off;
		off = push_str(s->ev, off, path, true);
		// The fs context of the picked superblock: its type names the filesystem.
		struct file *f = c->ret >= 0 ? fd_file(c->ret) : NULL;
		struct fs_context *fc = f ? BPF_CORE_READ(f, private_data) : NULL;
		const char *type = fc ? BPF_CORE_READ(fc, fs_type, name) : NULL;
		off = push_str(s->ev, off, type, false);
		return push_base(s, off, dirfd, path, path_off);
	} else { // move_mount
		h->args[2] = ARG4(c->regs);
		const char *from = (const char *)ARG1(c->regs);
		char first = 0;
		bpf_probe_read_user(&first, 1, from);
		sb = first ? NULL : fd_super((int)ARG0(c->regs));
		off = sb ? push_sb_id(s->ev, off, sb) : push_str(s->ev, off, from, true);
		path = (const char *)ARG3(c->regs);
		dirfd = (int)ARG2(c->regs);
		path_off = off;
		off = push_str(s->ev, off, path, true);
	}
	if (sb)
		off = push_str(s->ev, off, BPF_CORE_READ(sb, s_type, name), false);
	else
		off = push_empty(s->ev, off);
	if (!path)
		return push_empty(s->ev, off);
	return push_base(s, off, dirfd, path, path_off);
}

#endif // RAMPART_KERNEL_MOUNT_H
