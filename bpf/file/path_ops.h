// SPDX-License-Identifier: GPL-2.0
// File changes by path (unlink, chmod, chown, truncate), by descriptor (fchmod,
// fchown, ftruncate, open_by_handle_at), and with two paths (rename, link, symlink).
#ifndef RAMPART_FILE_PATH_OPS_H
#define RAMPART_FILE_PATH_OPS_H

#include "lib/event.h"
#include "lib/path.h"
#include "lib/syscall.h"

static __always_inline int do_path1(struct pt_regs *regs, long ret, long nr, bool maybe_compat)
{
	struct syscall_ctx c;
	read_regs(regs, ret, nr, &c, maybe_compat);
	long dirfd = AT_FDCWD_VAL;
	const char *upath;
	u16 kind;
	u64 a1 = 0, a2 = 0;
	switch (c.nr) {
	case NR_unlink: case NR_rmdir:
		kind = K_UNLINK;
		upath = (const char *)ARG0(c.regs);
		a1 = c.nr == NR_rmdir ? 0x200 /* AT_REMOVEDIR */ : 0;
		break;
	case NR_unlinkat:
		kind = K_UNLINK;
		dirfd = ARG0(c.regs);
		upath = (const char *)ARG1(c.regs);
		a1 = ARG2(c.regs);
		break;
	case NR_chmod:
		kind = K_CHMOD;
		upath = (const char *)ARG0(c.regs);
		a1 = ARG1(c.regs);
		break;
	case NR_fchmodat: case NR_fchmodat2:
		kind = K_CHMOD;
		dirfd = ARG0(c.regs);
		upath = (const char *)ARG1(c.regs);
		a1 = ARG2(c.regs);
		break;
	case NR_chown: case NR_lchown:
		kind = K_CHOWN;
		upath = (const char *)ARG0(c.regs);
		a1 = ARG1(c.regs);
		a2 = ARG2(c.regs);
		break;
	case NR_fchownat:
		kind = K_CHOWN;
		dirfd = ARG0(c.regs);
		upath = (const char *)ARG1(c.regs);
		a1 = ARG2(c.regs);
		a2 = ARG3(c.regs);
		break;
	default: // truncate
		kind = K_TRUNCATE;
		upath = (const char *)ARG0(c.regs);
		a1 = ARG1(c.regs);
	}
	if (!kind_enabled(kind))
		return 0;
	u32 off;
	struct scratch *s = begin_current(kind, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c.ret;
	h->args[1] = a1;
	h->args[2] = a2;
	u32 path_off = off;
	off = push_str(s->ev, off, upath, true);
	off = push_base(s, off, dirfd, upath, path_off);
	return submit(s, off);
}

static __always_inline int do_fdop(struct pt_regs *regs, long ret, long nr, bool maybe_compat)
{
	struct syscall_ctx c;
	read_regs(regs, ret, nr, &c, maybe_compat);
	u16 kind = c.nr == NR_fchmod ? K_CHMOD
		 : c.nr == NR_fchown ? K_CHOWN
		 : c.nr == NR_open_by_handle_at ? K_OPEN_BY_HANDLE
		 : K_TRUNCATE;
	if (!kind_enabled(kind))
		return 0;
	u32 off;
	struct scratch *s = begin_current(kind, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c.ret;
	if (kind == K_OPEN_BY_HANDLE) {
		// open_by_handle_at(mount_fd, handle, flags): a file named by a handle, not a
		// path, anywhere on the mount_fd's filesystem, outside any chroot or mount
		// namespace (the "shocker" container escape). Its path comes from the new
		// descriptor; the mount descriptor says which filesystem.
		h->args[1] = c.nr;
		h->args[2] = (u64)(s64)(int)ARG0(c.regs);
		h->args[3] = ARG2(c.regs);
		off = c.ret >= 0 ? push_fd_path(s, off, c.ret) : push_empty(s->ev, off);
		off = push_fd_path(s, off, (int)ARG0(c.regs));
		return submit(s, off);
	}
	h->args[1] = ARG1(c.regs);
	h->args[2] = ARG2(c.regs);
	off = push_fd_path(s, off, ARG0(c.regs));
	off = push_empty(s->ev, off);
	return submit(s, off);
}

static __always_inline int do_path2(struct pt_regs *regs, long ret, long nr, bool maybe_compat)
{
	struct syscall_ctx c;
	read_regs(regs, ret, nr, &c, maybe_compat);
	long olddir = AT_FDCWD_VAL, newdir = AT_FDCWD_VAL;
	const char *oldp, *newp;
	u16 kind = K_RENAME;
	u64 flags = 0;
	bool symbolic = false;
	switch (c.nr) {
	case NR_rename:
		oldp = (const char *)ARG0(c.regs);
		newp = (const char *)ARG1(c.regs);
		break;
	case NR_renameat: case NR_renameat2:
		olddir = ARG0(c.regs);
		oldp = (const char *)ARG1(c.regs);
		newdir = ARG2(c.regs);
		newp = (const char *)ARG3(c.regs);
		if (c.nr == NR_renameat2)
			flags = ARG4(c.regs);
		break;
	case NR_link:
		kind = K_LINK;
		oldp = (const char *)ARG0(c.regs);
		newp = (const char *)ARG1(c.regs);
		break;
	case NR_linkat:
		kind = K_LINK;
		olddir = ARG0(c.regs);
		oldp = (const char *)ARG1(c.regs);
		newdir = ARG2(c.regs);
		newp = (const char *)ARG3(c.regs);
		flags = ARG4(c.regs);
		break;
	case NR_symlink:
		kind = K_LINK;
		symbolic = true;
		oldp = (const char *)ARG0(c.regs);
		newp = (const char *)ARG1(c.regs);
		break;
	default: // symlinkat(target, newdirfd, linkpath)
		kind = K_LINK;
		symbolic = true;
		oldp = (const char *)ARG0(c.regs);
		newdir = ARG1(c.regs);
		newp = (const char *)ARG2(c.regs);
	}
	if (!kind_enabled(kind))
		return 0;
	u32 off;
	struct scratch *s = begin_current(kind, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c.ret;
	h->args[1] = flags;
	h->args[2] = symbolic;
	u32 old_off = off;
	off = push_str(s->ev, off, oldp, true);
	if (symbolic) // a symlink's target is stored verbatim
		off = push_empty(s->ev, off);
	else
		off = push_base(s, off, olddir, oldp, old_off);
	u32 new_off = off;
	off = push_str(s->ev, off, newp, true);
	off = push_base(s, off, newdir, newp, new_off);
	return submit(s, off);
}

#endif // RAMPART_FILE_PATH_OPS_H
