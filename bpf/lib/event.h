// SPDX-License-Identifier: GPL-2.0
// An event's life: the header filled from the current task, the kind mask, the
// ring output with its lifecycle reserve and reader wakeups, and the loss counts.
#ifndef RAMPART_LIB_EVENT_H
#define RAMPART_LIB_EVENT_H

#include "lib/config.h"
#include "lib/maps.h"
#include "lib/str.h"

#define TS_COMPAT 0x0002 // arch/x86/include/asm/thread_info.h

// True while the current task is in a syscall made through the 32-bit entry: a 32-bit
// program, or int 0x80 from 64-bit code (a way around tools that watch only the
// x86_64 table). The x86_64 syscall tracepoints and fexit on __x64_sys_* never run
// for these; the kernel clears the flag only on the way back to user space.
static __always_inline bool in_compat_syscall(void)
{
	return bpf_get_current_task_btf()->thread_info.status & TS_COMPAT;
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

#endif // RAMPART_LIB_EVENT_H
