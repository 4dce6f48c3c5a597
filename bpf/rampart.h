// SPDX-License-Identifier: GPL-2.0
// Wire format between the kernel programs and user space: crates/bpf/src/wire.rs
// mirrors it (tests/wire_btf.rs checks the two agree, through the object's BTF) and
// crates/sensor's decode.rs reads the kinds' arguments and strings.
//
// Every record: struct ev_hdr, then length-prefixed byte strings (u16 length, bytes,
// no NUL): first the cgroup v2 leaf name and the v1 cpuset leaf name, then the
// kind-specific strings listed beside each kind below. Where the loader asks for it
// (cgroup_names_once), both names are empty once an event carrying them for the same
// (cgid, cpuset_cgid) has reached the ring: user space keeps them by those ids.
#ifndef RAMPART_H
#define RAMPART_H

#define EV_BUF 16384
#define OFF_MASK 8191
#define MAX_STR 4096
#define PATH_BUF 4096
#define NAME_MAX_LEN 255
#define MAX_COMPONENTS 32
#define AT_FDCWD_VAL -100
#define WAKEUP_BYTES (256 * 1024)
// An event wakes the reader when none did for this long: the reader sleeps long once
// the stream has been quiet for longer (QUIET_AFTER in crates/sensor).
#define WAKEUP_IDLE_NS (10 * 1000 * 1000ULL)

// Kinds (ev_hdr.kind). args[] meaning and strings in order. Enums rather than
// #defines here and below so the values are in the object's BTF, where crates/bpf's
// wire test compares them with wire.rs.
enum rampart_kind {
	K_EXEC = 1, // a0 flags (EXEC_F_*), a1 argc | filename, interp, exe path, argv block, cwd, env block
	K_FORK = 2, // a0 child tgid, a1 child start_boottime
	K_EXIT = 3, // a0 exit_code (wait status)
	K_OPEN = 4, // a0 ret, a1 flags, a2 mode, a3 syscall nr, a4 repeats folded before it | path, base dir
	K_UNLINK = 5, // a0 ret, a1 flags | path, base
	K_RENAME = 6, // a0 ret, a1 flags | old, old base, new, new base
	K_LINK = 7, // a0 ret, a1 flags, a2 symbolic | old, old base, new, new base
	K_CHMOD = 9, // a0 ret, a1 mode | path, base
	K_CHOWN = 10, // a0 ret, a1 uid, a2 gid | path, base
	K_TRUNCATE = 11, // a0 ret, a1 length | path, base
	K_CONNECT = 12, // a0 ret, a1 proto, a2 type | local wire addr, user sockaddr
	K_ACCEPT = 13, // a0 ret, a1 proto, a2 type | local wire addr, remote wire addr
	K_BIND = 14, // a0 ret, a1 proto, a2 type | local wire addr, user sockaddr
	K_LISTEN = 15, // a0 ret, a1 proto, a2 type, a3 backlog | local wire addr, empty
	K_DNS = 16, // a0 ret, a1 proto | server (user sockaddr or wire addr), payload
	K_SETID = 17, // a0 ret, a1 nr, a2..a4 args
	K_CAPSET = 18, // a0 ret, a1 nr, a2 eff, a3 perm, a4 inh
	K_PTRACE = 19, // a0 ret, a1 nr, a2 request, a3 pid
	K_MOUNT = 20, // a0 ret, a1 nr, a2 flags | source, target, fstype (new mount API: + base of the path)
	K_UMOUNT = 21, // a0 ret, a1 nr, a2 target ptr, a3 flags | target
	K_UNSHARE = 22, // a0 ret, a1 nr, a2 flags
	K_SETNS = 23, // a0 ret, a1 nr, a2 fd, a3 nstype
	K_INIT_MODULE = 24, // a0 ret, a1 nr
	K_FINIT_MODULE = 25, // a0 ret, a1 nr, a2 fd | path of fd
	K_BPF = 26, // a0 ret, a1 nr, a2 cmd
	K_MEMFD = 27, // a0 ret, a1 nr, a2 name ptr, a3 flags | name
	K_CHDIR = 28, // a0 ret | new cwd (internal: updates the process tree)
	K_SOCKET = 29, // a0 ret, a1 domain, a2 type, a3 protocol (unusual domains and raw only)
	K_DUP = 30, // a0 ret (new fd 0-2), a1 nr, a2 old fd, a3 proto, a4 type | local, remote wire addr
	K_PROCESS_VM = 31, // a0 ret, a1 nr, a2 pid
	K_IO_URING = 32, // a0 opcode, a1 open flags, a2 dirfd | path (open-like ops), base dir, sockaddr (bind, connect)
	K_OPEN_BY_HANDLE = 34, // a0 ret, a1 nr, a2 mount fd, a3 flags | path of the opened file, path of the mount fd
	K_RENAME_PROC = 35, // a0 ret, a1 nr | new name (prctl PR_SET_NAME by a process's main thread)
	K_CHROOT = 36, // a0 ret, a1 nr | path, base dir
	K_EXEC_FAILED = 33, // a0 ret, a1 nr, a2 execveat flags, a3 args read, a4 more args | path, base dir, arg 0..3
};

// Syscall events' args[5].
enum rampart_event_flags {
	EVF_COMPAT = 1, // made through the 32-bit (ia32) entry
};

// Exec events' args[0].
enum rampart_exec_flags {
	EXEC_F_MEMFD = 1,
	EXEC_F_DELETED = 2,
	EXEC_F_ARGS_TRUNC = 4,
	EXEC_F_UPPER_LAYER = 8, // executable lives in an overlayfs upper layer (not from the image)
	EXEC_F_ENV = 16, // the record ends with the environment block
	EXEC_F_ENV_TRUNC = 32, // ... cut to the room left in the record
};

struct ev_hdr {
	u16 kind;
	u16 size;
	u32 tgid;
	u32 tid;
	u32 ppid;
	u64 ts;     // bpf_ktime_get_boot_ns
	u64 start;  // group leader start_boottime
	u64 pstart; // parent's start_boottime
	u64 cgid;   // cgroup v2 id
	u32 uid, gid, euid, egid;
	u32 auid;
	u32 tty;
	char comm[16];
	u64 args[6]; // args[5] of syscall kinds: EVF_* flags
	u64 cpuset_cgid; // the cpuset controller's cgroup id (v1 hierarchy, or v2 where it is bound there)
};

struct sock_addr_wire {
	u16 family;
	u16 port; // host order
	u8 addr[16];
};

// The wire's types together, so that one reference (struct scratch) puts all of them in
// the object's BTF: BTF keeps only types that maps, globals or programs use.
struct rampart_wire {
	struct ev_hdr hdr;
	struct sock_addr_wire addr;
	enum rampart_kind kind;
	enum rampart_event_flags event_flags;
	enum rampart_exec_flags exec_flags;
};

#endif
