// SPDX-License-Identifier: GPL-2.0
// File opens (open, openat, openat2, creat), with the fold of repeated read-only opens.
#ifndef RAMPART_FILE_OPEN_H
#define RAMPART_FILE_OPEN_H

#include "lib/event.h"
#include "lib/path.h"
#include "lib/syscall.h"

static __always_inline bool is_lib_path(const char *p)
{
	// "/lib/", "/lib64/", "/usr/lib", "/etc/ld.so.cache"
	if (p[0] != '/')
		return false;
	if (p[1] == 'l' && p[2] == 'i' && p[3] == 'b')
		return true;
	if (p[1] == 'u' && p[2] == 's' && p[3] == 'r' && p[4] == '/' && p[5] == 'l' && p[6] == 'i' &&
	    p[7] == 'b')
		return true;
	if (p[1] == 'e' && p[2] == 't' && p[3] == 'c' && p[4] == '/' && p[5] == 'l' && p[6] == 'd' &&
	    p[7] == '.')
		return true;
	return false;
}

// A process re-opening the same file read-only, with the same flags and credentials:
// one event per window says all a rule or an investigator needs, and the rest are
// counted into the next event of the same key instead of each costing an event.
struct open_repeat_key {
	u32 tgid;
	u32 flags;
	u64 ino;
	// The inode's address: with the inode number it names the file (a file deleted and
	// its inode reused within the window may be taken for the old one; the device, an
	// extra read per open, would not tell that apart either).
	u64 inode;
	u32 euid;
	u32 pad;
};

struct open_repeat_val {
	u64 since; // when the window's reported open happened (jiffies or monotonic ns)
	u64 folded;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct open_repeat_key);
	__type(value, struct open_repeat_val);
} open_repeats SEC(".maps");

struct open_repeat {
	struct open_repeat_key k;
	struct open_repeat_val *v;
	u64 now;
	bool keyed;
};

// The fold window's clock: jiffies where user space gave the window in jiffies.
// (Tracing programs may not use the coarse clock.)
static __always_inline u64 fold_clock(void)
{
	return open_repeat_window_jiffies ? bpf_jiffies64() : bpf_ktime_get_ns();
}

// For a successful read-only open: true when it repeats one reported within the
// window; it is counted and makes no event. Otherwise leaves the key in `r` for
// start_window, once the open is known to be reported. This is the path a process
// re-reading a file takes on every open, so it holds to two probe reads after the
// descriptor's and reads the task and pid once.
static __always_inline bool repeat_within_window(struct task_struct *task, u32 tgid, long fd,
						 u64 flags, struct open_repeat *r)
{
	struct file *f = task_fd_file(task, fd);
	if (!f)
		return false;
	// `f` came from a probe read (an untyped scalar to the verifier): CO-RE reads.
	struct inode *inode = BPF_CORE_READ(f, f_inode);
	r->k.tgid = tgid;
	r->k.flags = (u32)flags;
	r->k.inode = (u64)inode;
	r->k.ino = BPF_CORE_READ(inode, i_ino);
	r->k.euid = task->cred->euid.val;
	r->now = fold_clock();
	r->keyed = true;
	r->v = bpf_map_lookup_elem(&open_repeats, &r->k);
	u64 window = open_repeat_window_jiffies ? open_repeat_window_jiffies : open_repeat_window_ns;
	if (!r->v || r->now - r->v->since >= window)
		return false;
	__sync_fetch_and_add(&r->v->folded, 1);
	u32 idx = 2;
	u64 *c = bpf_map_lookup_elem(&drops, &idx);
	if (c)
		*c += 1; // a per-CPU slot: no other writer
	return true;
}

// Starts a new window for the key of an open that is being reported. Returns the
// repeats folded since the previous report of the same key.
static __always_inline u64 start_window(struct open_repeat *r)
{
	if (!r->keyed)
		return 0;
	u64 folded = r->v ? r->v->folded : 0;
	struct open_repeat_val fresh = {.since = r->now, .folded = 0};
	bpf_map_update_elem(&open_repeats, &r->k, &fresh, BPF_ANY);
	return folded;
}

static __always_inline int do_open(struct pt_regs *regs, long ret, long nr, bool maybe_compat)
{
	if (!kind_enabled(K_OPEN))
		return 0;
	// One task lookup for the whole path a folded open takes (helper calls are most
	// of its cost).
	struct task_struct *task = bpf_get_current_task_btf();
	struct syscall_ctx c;
	read_task_regs(task, regs, ret, nr, &c, maybe_compat);
	long dirfd = AT_FDCWD_VAL;
	const char *upath;
	u64 flags = 0, mode = 0;
	switch (c.nr) {
	case NR_open:
		upath = (const char *)ARG0(c.regs);
		flags = ARG1(c.regs);
		mode = ARG2(c.regs);
		break;
	case NR_creat:
		upath = (const char *)ARG0(c.regs);
		flags = 01 | 0100 | 01000;
		mode = ARG1(c.regs);
		break;
	case NR_openat:
		dirfd = ARG0(c.regs);
		upath = (const char *)ARG1(c.regs);
		flags = ARG2(c.regs);
		mode = ARG3(c.regs);
		break;
	default: { // openat2
		dirfd = ARG0(c.regs);
		upath = (const char *)ARG1(c.regs);
		struct open_how how = {};
		bpf_probe_read_user(&how, sizeof(how), (void *)ARG2(c.regs));
		flags = how.flags;
		mode = how.mode;
	}
	}
	// The sensor's own opens make no event: they must not take fold entries or count as
	// folded either (a compare, where the ignored-process lookup waits for begin_current).
	u32 tgid = task->tgid;
	if (sensor_tgid && tgid == sensor_tgid)
		return 0;
	// Shared libraries before repeats: a new process's library opens would each pay
	// the repeat check's lookup of a key not in the map yet, a cold hash bucket (about
	// 750 ns per open on a nested VM, against 70 ns for the path's 8-byte read; with
	// repeats first, an exec storm's sys_exit time rose 2.2 us per exec here while a
	// folded open saved 70 ns).
	if (filter_ro_libs && (flags & 03) == 0 && !(flags & 0100)) {
		char p[8] = {};
		bpf_probe_read_user(p, sizeof(p), upath);
		if (is_lib_path(p))
			return 0;
	}
	// O_RDONLY, none of O_CREAT, O_TRUNC: nothing about the file changes.
	struct open_repeat repeat = {};
	if ((open_repeat_window_jiffies || open_repeat_window_ns) && c.ret >= 0 &&
	    (flags & 03) == 0 && !(flags & (0100 | 01000)) &&
	    repeat_within_window(task, tgid, c.ret, flags, &repeat))
		return 0;
	u64 folded = start_window(&repeat);
	u32 off;
	struct scratch *s = begin_current(K_OPEN, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c.ret;
	h->args[1] = flags;
	h->args[2] = mode;
	h->args[3] = c.nr;
	h->args[4] = folded;
	u32 path_off = off;
	off = push_str(s->ev, off, upath, true);
	off = push_base(s, off, dirfd, upath, path_off);
	return submit(s, off);
}

#endif // RAMPART_FILE_OPEN_H
