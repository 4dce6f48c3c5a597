// SPDX-License-Identifier: GPL-2.0
// Synchronous kill from rules (`action: kill` on a rule the kernel can check): the
// rule is compiled by user space into map entries, and the syscall's own hook sends
// SIGKILL to the calling task with no round trip to user space.
// - exec of a path: tp_btf/sched_process_exec, the executable's path as the
//   container sees it (hashed as exec.h does); the new image never runs.
// - connect to an address and/or port: tracepoint syscalls/sys_enter_connect; the
//   signal is pending before the connect starts, so the task dies on its way back to
//   user space and never sees the syscall return.
// Only tasks in a pid namespace below the host's (containers) are ever killed.
#ifndef RAMPART_RESPONSE_KILL_H
#define RAMPART_RESPONSE_KILL_H

#include "response/maps.h"
#include "response/exec.h"

#define KILL_MAX_RULES 4096
#define KILL_AF_INET 2
#define KILL_AF_INET6 10

// An address (IPv6, IPv4 mapped to ::ffff:a.b.c.d; all zero: any address) and a
// port (host order; 0: any port).
struct kill_net_key {
	__u8 addr[16];
	__u16 port;
	__u16 pad;
	__u32 pad2;
};

// Executable path hash -> the rule id user space gave it.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KILL_MAX_RULES);
	__type(key, __u64);
	__type(value, __u32);
} kill_exec SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KILL_MAX_RULES);
	__type(key, struct kill_net_key);
	__type(value, __u32);
} kill_connect SEC(".maps");

// Rule id -> processes killed.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KILL_MAX_RULES);
	__type(key, __u32);
	__type(value, __u64);
} kill_stats SEC(".maps");

static __always_inline bool kill_in_container(void)
{
	struct task_struct *t = bpf_get_current_task_btf();
	return BPF_CORE_READ(t, thread_pid, level) > 0;
}

static __always_inline void kill_current(__u32 *rule)
{
	bpf_send_signal(GUARD_SIGKILL);
	__u32 id = *rule;
	__u64 *n = bpf_map_lookup_elem(&kill_stats, &id);
	if (n) {
		__sync_fetch_and_add(n, 1);
	} else {
		__u64 one = 1;
		bpf_map_update_elem(&kill_stats, &id, &one, BPF_NOEXIST);
	}
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(kill_exec_path, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (!kill_in_container())
		return 0;
	struct file *f = bprm->file;
	if (!f)
		return 0;
	struct path pth = f->f_path;
	__u64 h = path_hash(&pth);
	__u32 *rule = bpf_map_lookup_elem(&kill_exec, &h);
	if (rule)
		kill_current(rule);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int kill_connect_addr(struct trace_event_raw_sys_enter *ctx)
{
	if (!kill_in_container())
		return 0;
	const void *uaddr = (const void *)ctx->args[1];
	__u16 family = 0;
	if (bpf_probe_read_user(&family, sizeof(family), uaddr))
		return 0;
	struct kill_net_key k = {};
	if (family == KILL_AF_INET) {
		struct sockaddr_in sin = {};
		if (bpf_probe_read_user(&sin, sizeof(sin), uaddr))
			return 0;
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		__builtin_memcpy(&k.addr[12], &sin.sin_addr.s_addr, 4);
		k.port = bpf_ntohs(sin.sin_port);
	} else if (family == KILL_AF_INET6) {
		struct sockaddr_in6 sin6 = {};
		if (bpf_probe_read_user(&sin6, sizeof(sin6), uaddr))
			return 0;
		__builtin_memcpy(k.addr, &sin6.sin6_addr, 16);
		k.port = bpf_ntohs(sin6.sin6_port);
	} else {
		return 0;
	}
	// Address and port, then the address on any port, then the port anywhere.
	__u32 *rule = bpf_map_lookup_elem(&kill_connect, &k);
	if (!rule) {
		__u16 port = k.port;
		k.port = 0;
		rule = bpf_map_lookup_elem(&kill_connect, &k);
		if (!rule) {
			__builtin_memset(k.addr, 0, sizeof(k.addr));
			k.port = port;
			rule = bpf_map_lookup_elem(&kill_connect, &k);
		}
	}
	if (rule)
		kill_current(rule);
	return 0;
}

#endif // RAMPART_RESPONSE_KILL_H
