// SPDX-License-Identifier: GPL-2.0
// Rampart node sensor: kernel side. Kept small and close to the hooks; meaning is
// given in user space (crates/sensor). Wire format: see rampart.h.
//
// Hooks: tp_btf sched_process_{exec,fork,exit} for the process lifecycle; one fexit
// program per watched syscall (arguments read from the syscall's saved pt_regs, so one
// invocation per syscall and the result is known). Where the kernel has no BPF
// trampolines, one tp_btf on sys_exit tail-calls the same handlers instead.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "rampart.h"

char LICENSE[] SEC("license") = "GPL";

// Set by the loader before load.
const volatile u64 kind_mask = ~0ULL;          // bit (1 << kind) enables a kind
const volatile u8 filter_ro_libs = 1;          // drop read-only opens of shared libraries
const volatile u32 lifecycle_reserve_pct = 25; // ring space kept for exec/fork/exit
const volatile u64 open_repeat_window_ns = 0;  // fold repeated read-only opens (0: off)
// The same window in jiffies, when user space knows the kernel's HZ (0: unknown). The
// fold check then reads jiffies, a plain load, instead of the clock: on a VM reading
// the TSC was a tenth of a folded open's kernel time.
const volatile u64 open_repeat_window_jiffies = 0;
const volatile u32 sensor_tgid = 0;            // the sensor's own process, when it is ignored
const volatile u8 cgroup_names_once = 0;       // send cgroup leaf names once per cgroup pair
// 0 when the sensor's own process is the only one ignored: a compare with sensor_tgid
// then replaces the ignored_tgids lookup every event paid.
const volatile u8 ignored_lookup = 1;
const volatile u64 ring_bytes = 0;             // the events ring's size (0: ask the ring)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

// Per-CPU counters: [0] ring full, [1] shed to keep room for lifecycle events (both
// losses), [2] read-only opens folded into a later event's repeat count (not a loss).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, u32);
	__type(value, u64);
} drops SEC(".maps");

// Processes whose events are not wanted (the sensor itself).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u8);
} ignored_tgids SEC(".maps");

// A task's cgroups as the header names them: the v2 cgroup and the cpuset cgroup
// (containers on v1 hosts differ only in the latter). kernfs ids are never reused.
struct cgroup_pair {
	u64 cgid;
	u64 cpuset_cgid;
};

struct scratch {
	u8 ev[EV_BUF];
	char path[PATH_BUF + NAME_MAX_LEN + 1];
	// Set by fill_hdr when the event carries the cgroup names: submit records the pair
	// as named once the event is in the ring.
	struct cgroup_pair names_sent;
	u8 names_pending;
};

// Cgroup pairs whose leaf names went out in an event that reached the ring: later
// events of the pair leave them empty. Reading the two names was a third of an open
// event's kernel time (byte-by-byte string reads). An entry the LRU evicts only makes
// the next event carry the names again.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct cgroup_pair);
	__type(value, u8);
} cgroup_named SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

// When an event last woke the reader (boot ns).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} last_wakeup SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, H_MAX);
	__type(key, u32);
	__type(value, u32);
} handlers SEC(".maps");

// Processes that connected a socket to port 53, or descend from one: only their write()s
// can be DNS queries on a connected UDP socket (Go, busybox). A write from any other
// process skips the fd -> file -> inode reads that tell a socket (about 80 ns, on every
// write on the host). Sockets connected before the sensor started are not in it.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, u32);
	__type(value, u8);
} dns_writers SEC(".maps");

static __always_inline struct scratch *get_scratch(void)
{
	u32 zero = 0;
	return bpf_map_lookup_elem(&scratch_map, &zero);
}

static __always_inline void count_drop(u32 idx)
{
	u64 *c = bpf_map_lookup_elem(&drops, &idx);
	if (c)
		__sync_fetch_and_add(c, 1);
}

static __always_inline bool ignored(u32 tgid)
{
	if (!ignored_lookup)
		return sensor_tgid && tgid == sensor_tgid;
	return bpf_map_lookup_elem(&ignored_tgids, &tgid) != NULL;
}

// Appends a length-prefixed string read from user or kernel memory. Returns the new
// offset. `user` is a constant at every call site, so only one helper is emitted.
static __always_inline u32 push_str(u8 *buf, u32 off, const void *src, bool user)
{
	off &= OFF_MASK;
	long n = 0;
	if (src)
		n = user ? bpf_probe_read_user_str(&buf[off + 2], MAX_STR, src)
			 : bpf_probe_read_kernel_str(&buf[off + 2], MAX_STR, src);
	if (n < 0)
		n = 0;
	else if (n > 0)
		n -= 1; // drop the NUL from the length
	n &= (MAX_STR - 1);
	*(u16 *)&buf[off] = (u16)n;
	return off + 2 + (u32)n;
}

// Keeps clang from dropping a bound the verifier needs to see.
#define BOUND(v, mask) asm volatile("%0 &= " #mask : "+r"(v))

// Appends `len` bytes (bounded by MAX_STR) read from user or kernel memory.
static __always_inline u32 push_bytes(u8 *buf, u32 off, const void *src, u32 len, bool user)
{
	off &= OFF_MASK;
	u64 n = len;
	BOUND(n, 4095);
	len = n;
	long r = -1;
	if (src)
		r = user ? bpf_probe_read_user(&buf[off + 2], len, src)
			 : bpf_probe_read_kernel(&buf[off + 2], len, src);
	if (r < 0)
		len = 0;
	*(u16 *)&buf[off] = (u16)len;
	return off + 2 + len;
}

static __always_inline u32 push_empty(u8 *buf, u32 off)
{
	off &= OFF_MASK;
	*(u16 *)&buf[off] = 0;
	return off + 2;
}

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

#define TS_COMPAT 0x0002 // arch/x86/include/asm/thread_info.h

// True while the current task is in a syscall made through the 32-bit entry: a 32-bit
// program, or int 0x80 from 64-bit code (a way around tools that watch only the
// x86_64 table). The x86_64 syscall tracepoints and fexit on __x64_sys_* never run
// for these; the kernel clears the flag only on the way back to user space.
static __always_inline bool in_compat_syscall(void)
{
	return bpf_get_current_task_btf()->thread_info.status & TS_COMPAT;
}

// `task`'s open file `fd`, or NULL (`task` is the current one: the table is not locked).
static __always_inline struct file *task_fd_file(struct task_struct *task, long fd)
{
	if (fd < 0)
		return NULL;
	struct fdtable *fdt = task->files->fdt;
	if ((unsigned long)fd >= fdt->max_fds)
		return NULL;
	// An array of pointers is not a typed pointer to the verifier: read the slot.
	struct file **fds = fdt->fd;
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
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

static __always_inline bool is_lifecycle(u16 kind)
{
	return kind == K_EXEC || kind == K_FORK || kind == K_EXIT;
}

// Fills the common header and the two cgroup leaf names. Returns the offset after them.
// Every caller runs in the context of the task the event is about (exec, fork's
// parent, exit and every syscall), so the header is read from the current task through
// its BTF-typed pointer: plain loads the JIT guards against faults, instead of a
// bpf_probe_read_kernel call per field (those calls were most of the per-event cost).
static __always_inline u32 fill_hdr(struct scratch *s, u16 kind)
{
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	struct task_struct *task = bpf_get_current_task_btf();
	h->kind = kind;
	h->size = 0;
	h->tgid = task->tgid;
	h->tid = task->pid;
	struct task_struct *parent = task->real_parent;
	h->ppid = parent->tgid;
	h->ts = bpf_ktime_get_boot_ns();
	h->start = task->group_leader->start_boottime;
	h->pstart = parent->group_leader->start_boottime;
	const struct cred *cred = task->cred;
	h->uid = cred->uid.val;
	h->gid = cred->gid.val;
	h->euid = cred->euid.val;
	h->egid = cred->egid.val;
	h->auid = task->loginuid.val;
	h->tty = 0;
	struct tty_struct *tty = task->signal->tty;
	if (tty) {
		int major = tty->driver->major;
		int minor = tty->driver->minor_start + tty->index;
		// Same encoding as /proc/<pid>/stat tty_nr.
		h->tty = ((u32)major << 8) | ((u32)minor & 0xff) | (((u32)minor & ~0xffu) << 12);
	}
	bpf_get_current_comm(h->comm, sizeof(h->comm));
	__builtin_memset(h->args, 0, sizeof(h->args));
	// A syscall's event says whether it came through the 32-bit entry.
	if (!is_lifecycle(kind) && (task->thread_info.status & TS_COMPAT))
		h->args[5] = EVF_COMPAT;

	// Both cgroups through BTF-typed loads; the ids are what bpf_get_current_cgroup_id
	// returns (kernfs node ids).
	u32 off = sizeof(struct ev_hdr);
	struct css_set *cset = task->cgroups;
	struct cgroup *dfl = cset->dfl_cgrp;
	struct cgroup_pair pair = {.cgid = dfl->kn->id};
	int cpuset_id = bpf_core_enum_value(enum cgroup_subsys_id, cpuset_cgrp_id);
	struct cgroup *cpuset = NULL;
	if (cpuset_id >= 0 && cpuset_id < 12) {
		struct cgroup_subsys_state *css = cset->subsys[cpuset_id];
		if (css) {
			cpuset = css->cgroup;
			pair.cpuset_cgid = cpuset->kn->id;
		}
	}
	h->cgid = pair.cgid;
	h->cpuset_cgid = pair.cpuset_cgid;
	s->names_pending = 0;
	// Hierarchy roots have empty names: no lookup for them (host processes on hosts
	// without systemd's slices).
	bool roots = dfl->level == 0 && (!cpuset || cpuset->level == 0);
	if (cgroup_names_once && (roots || bpf_map_lookup_elem(&cgroup_named, &pair))) {
		off = push_empty(s->ev, off);
		return push_empty(s->ev, off);
	}
	off = push_str(s->ev, off, dfl->kn->name, false);
	off = push_str(s->ev, off, cpuset ? cpuset->kn->name : NULL, false);
	if (cgroup_names_once) {
		s->names_sent = pair;
		s->names_pending = 1;
	}
	return off;
}

// Starts an event of the current task: the scratch buffer with its header filled.
// Returns NULL for the sensor's own processes: handlers run their cheap filters first,
// so the map lookup is paid only by syscalls that would make an event.
static __always_inline struct scratch *begin_current(u16 kind, u32 *off)
{
	if (ignored(bpf_get_current_task_btf()->tgid))
		return NULL;
	struct scratch *s = get_scratch();
	if (!s)
		return NULL;
	*off = fill_hdr(s, kind);
	return s;
}

static __always_inline int submit(struct scratch *s, u32 off)
{
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	u32 size = off & (EV_BUF - 1);
	h->size = size;
	u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	u64 ring = ring_bytes ? ring_bytes : bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	if (!is_lifecycle(h->kind)) {
		// Shed other events first so process lifecycle keeps the tree whole.
		if (ring && avail * 100 > ring * (100 - lifecycle_reserve_pct)) {
			count_drop(1);
			return 0;
		}
	}
	if (size < sizeof(struct ev_hdr))
		return 0;
	// Wake the reader once a batch has built up (a wakeup per event costs the traced
	// process a context switch), or when no event did for WAKEUP_IDLE_NS: the first
	// event after a lull, which the reader, asleep on a long timer, waits for. While
	// events flow it polls on a short timer instead.
	u64 flags = BPF_RB_NO_WAKEUP;
	u32 zero = 0;
	u64 *last = bpf_map_lookup_elem(&last_wakeup, &zero);
	if (avail > WAKEUP_BYTES || (last && (s64)(h->ts - *last) > (s64)WAKEUP_IDLE_NS)) {
		flags = BPF_RB_FORCE_WAKEUP;
		if (last)
			*last = h->ts;
	}
	if (bpf_ringbuf_output(&events, s->ev, size, flags) < 0) {
		count_drop(0);
		return 0;
	}
	if (s->names_pending) {
		u8 one = 1;
		bpf_map_update_elem(&cgroup_named, &s->names_sent, &one, BPF_ANY);
	}
	return 0;
}

static __always_inline bool kind_enabled(u16 kind)
{
	return (kind_mask >> kind) & 1;
}

/* ---------------- process lifecycle ---------------- */

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

/* ---------------- syscalls ---------------- */

// The syscall arguments the handlers use, copied out of struct pt_regs.
struct saved_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax;
};

#define ARG0(r) ((r)->di)
#define ARG1(r) ((r)->si)
#define ARG2(r) ((r)->dx)
#define ARG3(r) ((r)->r10)
#define ARG4(r) ((r)->r8)

struct syscall_ctx {
	struct saved_regs r;
	struct saved_regs *regs;
	long ret;
	long nr;     // x86_64 numbering, also for a 32-bit syscall
	bool compat; // made through the 32-bit entry: its user structs have 32-bit pointers
};

// The x86_64 number of a watched ia32 syscall, or -1. socketcall(2) is its call's
// syscall (`call`: ebx).
static __always_inline long native_nr(long nr32, u32 call)
{
	switch (nr32) {
	case NR32_write: return NR_write;
	case NR32_open: return NR_open;
	case NR32_creat: return NR_creat;
	case NR32_link: return NR_link;
	case NR32_unlink: return NR_unlink;
	case NR32_chdir: return NR_chdir;
	case NR32_chroot: return NR_chroot;
	case NR32_execve: return NR_execve;
	case NR32_open_by_handle_at: return NR_open_by_handle_at;
	case NR32_execveat: return NR_execveat;
	case NR32_chmod: return NR_chmod;
	case NR32_lchown16: case NR32_lchown: return NR_lchown;
	case NR32_mount: return NR_mount;
	case NR32_move_mount: return NR_move_mount;
	case NR32_fsmount: return NR_fsmount;
	case NR32_open_tree: return NR_open_tree;
	case NR32_fspick: return NR_fspick;
	case NR32_mount_setattr: return NR_mount_setattr;
	case NR32_process_vm_readv: return NR_process_vm_readv;
	case NR32_process_vm_writev: return NR_process_vm_writev;
	case NR32_umount: case NR32_umount2: return NR_umount2;
	case NR32_setuid16: case NR32_setuid: return NR_setuid;
	case NR32_ptrace: return NR_ptrace;
	case NR32_rename: return NR_rename;
	case NR32_rmdir: return NR_rmdir;
	case NR32_dup: return NR_dup;
	case NR32_setgid16: case NR32_setgid: return NR_setgid;
	case NR32_dup2: return NR_dup2;
	case NR32_setreuid16: case NR32_setreuid: return NR_setreuid;
	case NR32_setregid16: case NR32_setregid: return NR_setregid;
	case NR32_symlink: return NR_symlink;
	case NR32_truncate: case NR32_truncate64: return NR_truncate;
	case NR32_ftruncate: case NR32_ftruncate64: return NR_ftruncate;
	case NR32_fchmod: return NR_fchmod;
	case NR32_fchown16: case NR32_fchown: return NR_fchown;
	case NR32_init_module: return NR_init_module;
	case NR32_fchdir: return NR_fchdir;
	case NR32_setfsuid16: case NR32_setfsuid: return NR_setfsuid;
	case NR32_setfsgid16: case NR32_setfsgid: return NR_setfsgid;
	case NR32_setresuid16: case NR32_setresuid: return NR_setresuid;
	case NR32_setresgid16: case NR32_setresgid: return NR_setresgid;
	case NR32_chown16: case NR32_chown: return NR_chown;
	case NR32_capset: return NR_capset;
	case NR32_openat: return NR_openat;
	case NR32_fchownat: return NR_fchownat;
	case NR32_unlinkat: return NR_unlinkat;
	case NR32_renameat: return NR_renameat;
	case NR32_linkat: return NR_linkat;
	case NR32_symlinkat: return NR_symlinkat;
	case NR32_fchmodat: return NR_fchmodat;
	case NR32_unshare: return NR_unshare;
	case NR32_dup3: return NR_dup3;
	case NR32_sendmmsg: return NR_sendmmsg;
	case NR32_setns: return NR_setns;
	case NR32_finit_module: return NR_finit_module;
	case NR32_renameat2: return NR_renameat2;
	case NR32_memfd_create: return NR_memfd_create;
	case NR32_prctl: return NR_prctl;
	case NR32_bpf: return NR_bpf;
	case NR32_socket: return NR_socket;
	case NR32_bind: return NR_bind;
	case NR32_connect: return NR_connect;
	case NR32_listen: return NR_listen;
	case NR32_accept4: return NR_accept4;
	case NR32_sendto: return NR_sendto;
	case NR32_sendmsg: return NR_sendmsg;
	case NR32_openat2: return NR_openat2;
	case NR32_fchmodat2: return NR_fchmodat2;
	case NR32_socketcall:
		switch (call) {
		case SYS_SOCKET: return NR_socket;
		case SYS_BIND: return NR_bind;
		case SYS_CONNECT: return NR_connect;
		case SYS_LISTEN: return NR_listen;
		case SYS_ACCEPT: return NR_accept;
		case SYS_SEND: case SYS_SENDTO: return NR_sendto;
		case SYS_SENDMSG: return NR_sendmsg;
		case SYS_ACCEPT4: return NR_accept4;
		case SYS_SENDMMSG: return NR_sendmmsg;
		default: return -1;
		}
	default: return -1;
	}
}

// A 16-bit id as the kernel widens it (low2highuid): 0xffff, "unchanged", stays -1.
static __always_inline u64 id16(u32 v)
{
	return (u16)v == 0xffff ? 0xffffffff : (u16)v;
}

// A 32-bit syscall's arguments, laid out as the x86_64 call's: ebx, ecx, edx, esi,
// edi, zero-extended (pointers and unsigned values; handlers narrow fds to int).
static __always_inline void read_compat_args(struct pt_regs *regs, long nr32,
					     struct syscall_ctx *c)
{
	u32 a[6] = {regs->bx, regs->cx, regs->dx, regs->si, regs->di, regs->bp};
	c->compat = true;
	c->nr = native_nr(nr32, a[0]);
	u64 a1 = a[1], a2 = a[2];
	switch (nr32) {
	case NR32_socketcall: {
		// socketcall(call, args): the call's arguments are an array of 32-bit words.
		u32 call = a[0];
		u32 words[6] = {};
		if (bpf_probe_read_user(words, sizeof(words), (void *)(u64)a[1]) < 0)
			bpf_probe_read_user(words, 3 * sizeof(u32), (void *)(u64)a[1]);
		if (call == SYS_SEND)
			words[4] = words[5] = 0; // send(): sendto() without an address
		__builtin_memcpy(a, words, sizeof(a));
		a1 = a[1];
		a2 = a[2];
		break;
	}
	case NR32_truncate: case NR32_ftruncate:
		a1 = (u64)(s64)(s32)a[1]; // compat_off_t
		break;
	case NR32_truncate64: case NR32_ftruncate64:
		a1 = a[1] | ((u64)a[2] << 32); // the 64-bit length in two registers
		break;
	case NR32_umount:
		a1 = 0;
		break;
	case NR32_setuid16: case NR32_setgid16: case NR32_setfsuid16: case NR32_setfsgid16:
		a[0] = id16(a[0]);
		break;
	case NR32_setreuid16: case NR32_setregid16: case NR32_setresuid16: case NR32_setresgid16:
		a[0] = id16(a[0]);
		a1 = id16(a[1]);
		a2 = id16(a[2]);
		break;
	case NR32_chown16: case NR32_lchown16: case NR32_fchown16:
		a1 = id16(a[1]);
		a2 = id16(a[2]);
		break;
	}
	c->r.di = a[0];
	c->r.si = a1;
	c->r.dx = a2;
	c->r.r10 = a[3];
	c->r.r8 = a[4];
}

// `regs` is BTF-typed on every hook (fexit and tp_btf: the syscall's pt_regs argument;
// a syscall tracepoint: bpf_task_pt_regs), so registers are plain loads, not probe reads.
// `maybe_compat`: the hook also runs for 32-bit syscalls (sys_exit only), whose
// numbers and registers are translated.
static __always_inline void read_task_regs(struct task_struct *task, struct pt_regs *regs,
					   long ret, long nr, struct syscall_ctx *c, bool maybe_compat)
{
	c->regs = &c->r;
	c->ret = ret;
	c->compat = false;
	if (maybe_compat && (task->thread_info.status & TS_COMPAT)) {
		read_compat_args(regs, nr, c);
		return;
	}
	c->r.di = regs->di;
	c->r.si = regs->si;
	c->r.dx = regs->dx;
	c->r.r10 = regs->r10;
	c->r.r8 = regs->r8;
	c->nr = nr;
}

static __always_inline void read_regs(struct pt_regs *regs, long ret, long nr,
				      struct syscall_ctx *c, bool maybe_compat)
{
	read_task_regs(bpf_get_current_task_btf(), regs, ret, nr, c, maybe_compat);
}

// Fallback for kernels without BPF trampolines or syscall tracepoints (see the
// attachment section at the end): on the kernel's sys_exit tracepoint; the h_*
// handlers are loaded against the same tracepoint (so the kernel accepts them as
// tail-call targets). Every syscall on the host then pays for the tracepoint.
// `compat_only`: the other hooks' complement, for the 32-bit syscalls they never see.
// The family handler of a watched x86_64 syscall, or H_NONE.
static __always_inline u32 handler_of(long nr)
{
	switch (nr) {
	case NR_open: case NR_openat: case NR_openat2: case NR_creat:
		return H_OPEN;
	case NR_unlink: case NR_unlinkat: case NR_rmdir: case NR_chmod: case NR_fchmodat:
	case NR_fchmodat2: case NR_chown: case NR_lchown: case NR_fchownat: case NR_truncate:
		return H_PATH1;
	case NR_fchmod: case NR_fchown: case NR_ftruncate: case NR_open_by_handle_at:
		return H_FDOP;
	case NR_rename: case NR_renameat: case NR_renameat2: case NR_link: case NR_linkat:
	case NR_symlink: case NR_symlinkat:
		return H_PATH2;
	case NR_connect: case NR_accept: case NR_accept4: case NR_bind: case NR_listen:
	case NR_socket: case NR_dup: case NR_dup2: case NR_dup3:
		return H_SOCK;
	case NR_sendto: case NR_sendmsg: case NR_sendmmsg: case NR_write:
		return H_DNS;
	case NR_setuid: case NR_setgid: case NR_setreuid: case NR_setregid: case NR_setresuid:
	case NR_setresgid: case NR_setfsuid: case NR_setfsgid: case NR_capset: case NR_ptrace:
	case NR_unshare: case NR_setns: case NR_bpf: case NR_init_module: case NR_umount2:
	case NR_finit_module: case NR_memfd_create: case NR_mount: case NR_move_mount:
	case NR_fsmount: case NR_open_tree: case NR_fspick: case NR_process_vm_readv:
	case NR_process_vm_writev:
	case NR_mount_setattr: case NR_chdir: case NR_fchdir: case NR_execve: case NR_execveat:
	case NR_prctl: case NR_chroot:
		return H_MISC;
	default:
		return H_NONE;
	}
}

static __always_inline int dispatch_sys_exit(u64 *ctx, bool compat_only)
{
	// Runs for every syscall on the host: read only the syscall number and the
	// task's compat flag here. (Testing the number against both ABIs' watched sets
	// before the flag's helper call saved nothing measurable on getppid and added
	// compares for the many numbers watched under the 32-bit ABI.)
	bool compat = in_compat_syscall();
	if (compat_only && !compat)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	long nr = regs->orig_ax;
	if (compat)
		nr = native_nr(nr, (u32)regs->bx);
	u32 h = handler_of(nr);
	if (h == H_NONE)
		return 0;
	bpf_tail_call(ctx, &handlers, h);
	return 0;
}

SEC("tp_btf/sys_exit")
int on_sys_exit(u64 *ctx)
{
	return dispatch_sys_exit(ctx, false);
}

// Beside fexit or the syscall tracepoints: every syscall on the host pays for this
// program (a flag test for the 64-bit ones), the price of seeing 32-bit syscalls.
SEC("tp_btf/sys_exit")
int on_compat_sys_exit(u64 *ctx)
{
	return dispatch_sys_exit(ctx, true);
}

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

// Appends a synthesized address (family, port, 16 address bytes) from a socket's
// common part: local when `remote` is false.
static __always_inline u32 push_sock_addr(u8 *buf, u32 off, struct sock *sk, bool remote)
{
	off &= OFF_MASK;
	struct sock_addr_wire *w = (struct sock_addr_wire *)&buf[off + 2];
	__builtin_memset(w, 0, sizeof(*w));
	u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	w->family = family;
	if (remote)
		w->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	else
		w->port = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (family == 2) {
		u32 a = remote ? BPF_CORE_READ(sk, __sk_common.skc_daddr)
			       : BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(w->addr, &a, 4);
	} else if (family == 10) {
		if (remote)
			BPF_CORE_READ_INTO(&w->addr, sk, __sk_common.skc_v6_daddr);
		else
			BPF_CORE_READ_INTO(&w->addr, sk, __sk_common.skc_v6_rcv_saddr);
	}
	*(u16 *)&buf[off] = sizeof(*w);
	return off + 2 + sizeof(*w);
}

// By inode mode, before any read that assumes the file is a socket.
static __always_inline bool fd_is_socket(long fd)
{
	struct file *f = fd_file(fd);
	if (!f)
		return false;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	return (mode & 0170000) == 0140000 /* S_IFSOCK */;
}

static __always_inline struct sock *fd_sock(long fd, u16 *proto, u16 *type)
{
	struct file *f = fd_file(fd);
	if (!f)
		return NULL;
	struct socket *sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return NULL;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	*proto = BPF_CORE_READ(sk, sk_protocol);
	*type = BPF_CORE_READ(sk, sk_type);
	return sk;
}

// socket(2): only what ordinary programs never create, so the volume stays tiny:
// domains other than unix/inet/inet6/netlink (AF_PACKET sniffing and spoofing) and
// raw sockets of any domain. Failed attempts count too.
static __always_inline int on_socket(struct syscall_ctx *c)
{
	if (!kind_enabled(K_SOCKET))
		return 0;
	u64 domain = ARG0(c->regs), type = ARG1(c->regs);
	bool usual_domain = domain == 1 || domain == 2 || domain == 10 || domain == 16;
	if (usual_domain && (type & 0xf) != 3 /* SOCK_RAW */)
		return 0;
	u32 off;
	struct scratch *s = begin_current(K_SOCKET, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c->ret;
	h->args[1] = domain;
	h->args[2] = type;
	h->args[3] = ARG2(c->regs);
	return submit(s, off);
}

// dup/dup2/dup3 that put an IPv4/IPv6 socket on stdin, stdout or stderr: the core of
// a reverse shell. Shell redirections (2>&1 on pipes and files) are not sockets and
// stay in the kernel.
static __always_inline int on_dup(struct syscall_ctx *c)
{
	if (!kind_enabled(K_DUP) || c->ret < 0 || c->ret > 2)
		return 0;
	long oldfd = ARG0(c->regs);
	if (!fd_is_socket(oldfd))
		return 0;
	u16 proto = 0, type = 0;
	struct sock *sk = fd_sock(oldfd, &proto, &type);
	if (!sk)
		return 0;
	u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != 2 && family != 10)
		return 0;
	u32 off;
	struct scratch *s = begin_current(K_DUP, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c->ret;
	h->args[1] = c->nr;
	h->args[2] = oldfd;
	h->args[3] = proto;
	h->args[4] = type;
	off = push_sock_addr(s->ev, off, sk, false);
	off = push_sock_addr(s->ev, off, sk, true);
	return submit(s, off);
}

static __always_inline int do_sock(struct pt_regs *regs, long ret, long nr, bool maybe_compat)
{
	struct syscall_ctx c;
	read_regs(regs, ret, nr, &c, maybe_compat);
	if (c.nr == NR_socket)
		return on_socket(&c);
	if (c.nr == NR_dup || c.nr == NR_dup2 || c.nr == NR_dup3)
		return on_dup(&c);
	if (c.nr == NR_connect && c.ret == 0 && kind_enabled(K_DNS)) {
		// sockaddr_in and sockaddr_in6 both start with the family and the port.
		u16 head[2] = {};
		bpf_probe_read_user(head, sizeof(head), (void *)ARG1(c.regs));
		if ((head[0] == 2 || head[0] == 10) && bpf_ntohs(head[1]) == 53) {
			u32 tgid = bpf_get_current_pid_tgid() >> 32;
			u8 one = 1;
			bpf_map_update_elem(&dns_writers, &tgid, &one, BPF_ANY);
		}
	}
	u16 kind;
	switch (c.nr) {
	case NR_connect: kind = K_CONNECT; break;
	case NR_bind: kind = K_BIND; break;
	case NR_listen: kind = K_LISTEN; break;
	default: kind = K_ACCEPT;
	}
	if (!kind_enabled(kind))
		return 0;
	if (kind == K_ACCEPT && c.ret < 0)
		return 0; // EAGAIN storms on non-blocking listeners carry nothing
	long fd = kind == K_ACCEPT ? c.ret : (long)ARG0(c.regs);
	u16 proto = 0, type = 0;
	struct sock *sk = fd_sock(fd, &proto, &type);
	if (!sk)
		return 0;
	u32 off;
	struct scratch *s = begin_current(kind, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c.ret;
	h->args[1] = proto;
	h->args[2] = type;
	if (kind == K_LISTEN)
		h->args[3] = ARG1(c.regs);
	// [local synthesized] [remote: user sockaddr for connect/bind, synthesized for accept]
	off = push_sock_addr(s->ev, off, sk, false);
	if (kind == K_CONNECT || kind == K_BIND) {
		u32 len = ARG2(c.regs);
		if (len > 128)
			len = 128;
		off = push_bytes(s->ev, off, (void *)ARG1(c.regs), len, true);
	} else if (kind == K_ACCEPT) {
		off = push_sock_addr(s->ev, off, sk, true);
	} else {
		off = push_empty(s->ev, off);
	}
	return submit(s, off);
}

static __always_inline int do_dns(struct pt_regs *regs, long ret, long nr, bool maybe_compat)
{
	if (!kind_enabled(K_DNS))
		return 0;
	struct syscall_ctx c;
	read_regs(regs, ret, nr, &c, maybe_compat);
	if (c.ret <= 12)
		return 0;
	long fd = ARG0(c.regs);
	// Resolvers that connect() then write() (Go, busybox): only sockets qualify, of
	// processes that connected one to port 53 (see dns_writers).
	if (c.nr == NR_write) {
		u32 tgid = bpf_get_current_pid_tgid() >> 32;
		if (!bpf_map_lookup_elem(&dns_writers, &tgid) || !fd_is_socket(fd))
			return 0;
	}
	u16 proto = 0, type = 0;
	struct sock *sk = fd_sock(fd, &proto, &type);
	if (!sk || proto != 17 /* UDP */)
		return 0;
	const void *buf = NULL;
	const void *uaddr = NULL;
	u32 buflen = 0;
	if (c.nr == NR_sendto) {
		buf = (const void *)ARG1(c.regs);
		buflen = ARG2(c.regs);
		uaddr = (const void *)ARG4(c.regs);
	} else if (c.nr == NR_write) {
		buf = (const void *)ARG1(c.regs);
		buflen = ARG2(c.regs);
	} else if (c.compat) {
		// struct compat_msghdr and compat_iovec: 32-bit pointers and lengths.
		u32 m[4] = {}; // msg_name, msg_namelen, msg_iov, msg_iovlen
		bpf_probe_read_user(m, sizeof(m), (void *)ARG1(c.regs));
		uaddr = (const void *)(u64)m[0];
		u32 iov[2] = {};
		bpf_probe_read_user(iov, sizeof(iov), (void *)(u64)m[2]);
		buf = (const void *)(u64)iov[0];
		buflen = iov[1];
	} else {
		// sendmsg(fd, msghdr*) / sendmmsg(fd, mmsghdr*): first message, first iovec.
		struct user_msghdr m = {};
		bpf_probe_read_user(&m, sizeof(m), (void *)ARG1(c.regs));
		uaddr = m.msg_name;
		struct iovec iov = {};
		bpf_probe_read_user(&iov, sizeof(iov), m.msg_iov);
		buf = iov.iov_base;
		buflen = iov.iov_len;
	}
	u16 port = 0;
	if (uaddr) {
		struct sockaddr_in sin = {};
		bpf_probe_read_user(&sin, sizeof(sin), uaddr);
		port = bpf_ntohs(sin.sin_port);
	} else {
		port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	}
	if (port != 53)
		return 0;
	u32 off;
	struct scratch *s = begin_current(K_DNS, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = c.ret;
	h->args[1] = proto;
	if (uaddr)
		off = push_bytes(s->ev, off, uaddr, 28, true);
	else
		off = push_sock_addr(s->ev, off, sk, true);
	if (buflen > 512)
		buflen = 512;
	off = push_bytes(s->ev, off, buf, buflen, true);
	return submit(s, off);
}

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

/* ---------------- io_uring ---------------- */

// io_uring runs file and network operations without their syscalls, so no syscall
// hook sees them (the "curing" rootkit proof of concept hides that way). Each
// submitted operation that opens, creates, renames, links or removes a file, or opens,
// binds, listens on, connects or accepts a socket, makes a record; reads and writes,
// the bulk, do not. Open-like operations carry their path (the kernel has copied it by
// submission time), socket its domain, type and protocol, bind and connect the
// address, listen the backlog.
static __always_inline bool io_uring_op_watched(u8 op)
{
	switch (op) {
	case 13: // IORING_OP_ACCEPT
	case 16: // IORING_OP_CONNECT
	case 18: // IORING_OP_OPENAT
	case 28: // IORING_OP_OPENAT2
	case 35: // IORING_OP_RENAMEAT
	case 36: // IORING_OP_UNLINKAT
	case 37: // IORING_OP_MKDIRAT
	case 38: // IORING_OP_SYMLINKAT
	case 39: // IORING_OP_LINKAT
	case 45: // IORING_OP_SOCKET
	case 56: // IORING_OP_BIND
	case 57: // IORING_OP_LISTEN
		return true;
	default:
		return false;
	}
}

SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(on_io_uring_submit, struct io_kiocb *req)
{
	if (!kind_enabled(K_IO_URING))
		return 0;
	u8 op = req->opcode;
	if (!io_uring_op_watched(op))
		return 0;
	u32 off;
	struct scratch *s = begin_current(K_IO_URING, &off);
	if (!s)
		return 0;
	struct ev_hdr *h = (struct ev_hdr *)s->ev;
	h->args[0] = op;
	if (op == 18 || op == 28) {
		// The operation's data overlays the start of the request (io_kiocb_to_cmd).
		struct io_open *open = (struct io_open *)req;
		const char *name = BPF_CORE_READ(open, filename, name);
		int dfd = BPF_CORE_READ(open, dfd);
		h->args[1] = BPF_CORE_READ(open, how.flags);
		h->args[2] = (u64)(s64)dfd;
		u32 path_off = off;
		off = push_str(s->ev, off, name, false);
		off = push_base(s, off, dfd, name, path_off);
		return submit(s, push_empty(s->ev, off));
	}
	off = push_empty(s->ev, off);
	off = push_empty(s->ev, off);
	if (op == 16) {
		// connect: the caller's sockaddr, which preparing the request has just copied
		// (as the syscall hooks read a connect's address at its exit).
		struct io_connect *conn = (struct io_connect *)req;
		u32 len = BPF_CORE_READ(conn, addr_len);
		return submit(s, push_bytes(s->ev, off, BPF_CORE_READ(conn, addr), len > 128 ? 128 : len,
					    true));
	}
	if (op == 56 && bpf_core_field_exists(struct io_bind, addr_len)) {
		// bind keeps no pointer to the caller's sockaddr, only the kernel's copy in
		// the request's async data: the `addr` of a struct io_async_msghdr in older
		// kernels, a bare sockaddr_storage in newer ones (the test machine's 6.18),
		// and BTF cannot tell which. The bare one starts with the family; the other
		// with a kernel pointer (8-aligned or NULL: its low bits are never AF_UNIX,
		// AF_INET, AF_INET6 or AF_PACKET), or in some older layouts with a recycled
		// iovec's user address, which can collide, rarely.
		void *async = req->async_data;
		u32 len = BPF_CORE_READ((struct io_bind *)req, addr_len);
		if (async && len > 0) {
			u16 family = 0;
			bpf_probe_read_kernel(&family, sizeof(family), async);
			u32 addr_off = 0;
			if (family != 1 && family != 2 && family != 10 && family != 17)
				addr_off = bpf_core_field_exists(struct io_async_msghdr, addr)
						   ? bpf_core_field_offset(struct io_async_msghdr, addr)
						   : 0;
			return submit(s, push_bytes(s->ev, off, async + addr_off, len > 128 ? 128 : len,
						    false));
		}
	} else if (op == 45) {
		struct io_socket *sock = (struct io_socket *)req;
		h->args[1] = BPF_CORE_READ(sock, domain);
		h->args[2] = BPF_CORE_READ(sock, type);
		h->args[3] = BPF_CORE_READ(sock, protocol);
	} else if (op == 57 && bpf_core_field_exists(struct io_listen, backlog)) {
		h->args[1] = BPF_CORE_READ((struct io_listen *)req, backlog);
	}
	return submit(s, push_empty(s->ev, off));
}

/* ---------------- attachment ---------------- */

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
