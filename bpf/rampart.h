// SPDX-License-Identifier: GPL-2.0
// Wire format between the kernel programs and crates/sensor (decode.rs mirrors it).
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

// Kinds. args[] meaning and strings in order.
#define K_EXEC 1          // a0 flags (EXEC_F_*), a1 argc | filename, interp, exe path, argv block, cwd
#define K_FORK 2          // a0 child tgid, a1 child start_boottime
#define K_EXIT 3          // a0 exit_code (wait status)
#define K_OPEN 4          // a0 ret, a1 flags, a2 mode, a3 syscall nr, a4 repeats folded before it | path, base dir
#define K_UNLINK 5        // a0 ret, a1 flags | path, base
#define K_RENAME 6        // a0 ret, a1 flags | old, old base, new, new base
#define K_LINK 7          // a0 ret, a1 flags, a2 symbolic | old, old base, new, new base
#define K_CHMOD 9         // a0 ret, a1 mode | path, base
#define K_CHOWN 10        // a0 ret, a1 uid, a2 gid | path, base
#define K_TRUNCATE 11     // a0 ret, a1 length | path, base
#define K_CONNECT 12      // a0 ret, a1 proto, a2 type | local wire addr, user sockaddr
#define K_ACCEPT 13       // a0 ret, a1 proto, a2 type | local wire addr, remote wire addr
#define K_BIND 14         // a0 ret, a1 proto, a2 type | local wire addr, user sockaddr
#define K_LISTEN 15       // a0 ret, a1 proto, a2 type, a3 backlog | local wire addr, empty
#define K_DNS 16          // a0 ret, a1 proto | server (user sockaddr or wire addr), payload
#define K_SETID 17        // a0 ret, a1 nr, a2..a4 args
#define K_CAPSET 18       // a0 ret, a1 nr, a2 eff, a3 perm, a4 inh
#define K_PTRACE 19       // a0 ret, a1 nr, a2 request, a3 pid
#define K_MOUNT 20        // a0 ret, a1 nr, a2 flags | source, target, fstype (new mount API: + base of the path)
#define K_UMOUNT 21       // a0 ret, a1 nr, a2 target ptr, a3 flags | target
#define K_UNSHARE 22      // a0 ret, a1 nr, a2 flags
#define K_SETNS 23        // a0 ret, a1 nr, a2 fd, a3 nstype
#define K_INIT_MODULE 24  // a0 ret, a1 nr
#define K_FINIT_MODULE 25 // a0 ret, a1 nr, a2 fd | path of fd
#define K_BPF 26          // a0 ret, a1 nr, a2 cmd
#define K_MEMFD 27        // a0 ret, a1 nr, a2 name ptr, a3 flags | name
#define K_CHDIR 28        // a0 ret | new cwd (internal: updates the process tree)
#define K_SOCKET 29       // a0 ret, a1 domain, a2 type, a3 protocol (unusual domains and raw only)
#define K_DUP 30          // a0 ret (new fd 0-2), a1 nr, a2 old fd, a3 proto, a4 type | local, remote wire addr
#define K_PROCESS_VM 31   // a0 ret, a1 nr, a2 pid
#define K_IO_URING 32     // a0 opcode, a1 open flags, a2 dirfd | path (open-like ops), base dir, sockaddr (bind, connect)
#define K_OPEN_BY_HANDLE 34 // a0 ret, a1 nr, a2 mount fd, a3 flags | path of the opened file, path of the mount fd
#define K_RENAME_PROC 35  // a0 ret, a1 nr | new name (prctl PR_SET_NAME by a process's main thread)
#define K_CHROOT 36       // a0 ret, a1 nr | path, base dir
#define K_EXEC_FAILED 33  // a0 ret, a1 nr, a2 execveat flags, a3 args read, a4 more args | path, base dir, arg 0..3

// Syscall events' args[5].
#define EVF_COMPAT 1 // made through the 32-bit (ia32) entry

#define EXEC_F_MEMFD 1
#define EXEC_F_DELETED 2
#define EXEC_F_ARGS_TRUNC 4
#define EXEC_F_UPPER_LAYER 8 // executable lives in an overlayfs upper layer (not from the image)

// Tail-call handler slots.
#define H_OPEN 0
#define H_PATH1 1
#define H_FDOP 2
#define H_PATH2 3
#define H_SOCK 4
#define H_DNS 5
#define H_MISC 6
#define H_MAX 8
#define H_NONE 0xff // not a watched syscall

// x86_64 syscall numbers.
#define NR_open 2
#define NR_openat 257
#define NR_openat2 437
#define NR_creat 85
#define NR_unlink 87
#define NR_unlinkat 263
#define NR_rmdir 84
#define NR_chmod 90
#define NR_fchmod 91
#define NR_open_by_handle_at 304
#define NR_fchmodat 268
#define NR_fchmodat2 452
#define NR_chown 92
#define NR_fchown 93
#define NR_lchown 94
#define NR_fchownat 260
#define NR_truncate 76
#define NR_ftruncate 77
#define NR_rename 82
#define NR_renameat 264
#define NR_renameat2 316
#define NR_link 86
#define NR_linkat 265
#define NR_symlink 88
#define NR_symlinkat 266
#define NR_connect 42
#define NR_accept 43
#define NR_accept4 288
#define NR_bind 49
#define NR_listen 50
#define NR_sendto 44
#define NR_sendmsg 46
#define NR_sendmmsg 307
#define NR_write 1
#define NR_setuid 105
#define NR_setgid 106
#define NR_setreuid 113
#define NR_setregid 114
#define NR_setresuid 117
#define NR_setresgid 119
#define NR_setfsuid 122
#define NR_setfsgid 123
#define NR_capset 126
#define NR_ptrace 101
#define NR_unshare 272
#define NR_setns 308
#define NR_bpf 321
#define NR_init_module 175
#define NR_finit_module 313
#define NR_umount2 166
#define NR_mount 165
#define NR_open_tree 428
#define NR_move_mount 429
#define NR_fsmount 432
#define NR_fspick 433
#define NR_mount_setattr 442
#define NR_process_vm_readv 310
#define NR_process_vm_writev 311
#define NR_memfd_create 319
#define NR_prctl 157
#define NR_chdir 80
#define NR_chroot 161
#define NR_execve 59
#define NR_execveat 322
#define NR_fchdir 81
#define NR_socket 41
#define NR_dup 32
#define NR_dup2 33
#define NR_dup3 292

// ia32 numbers of the watched syscalls (arch/x86/entry/syscalls/syscall_32.tbl): the
// 32-bit entry (a 32-bit program, or int 0x80 from 64-bit code) numbers them apart.
// The handlers see them translated to the x86_64 numbers above. The *16 calls take
// 16-bit ids; i386 has no accept(2) of its own (socketcall's SYS_ACCEPT only).
#define NR32_write 4
#define NR32_open 5
#define NR32_creat 8
#define NR32_link 9
#define NR32_unlink 10
#define NR32_chdir 12
#define NR32_chroot 61
#define NR32_execve 11
#define NR32_execveat 358
#define NR32_chmod 15
#define NR32_lchown16 16
#define NR32_mount 21
#define NR32_umount 22 // oldumount: umount2 without flags
#define NR32_setuid16 23
#define NR32_ptrace 26
#define NR32_rename 38
#define NR32_rmdir 40
#define NR32_dup 41
#define NR32_setgid16 46
#define NR32_umount2 52
#define NR32_dup2 63
#define NR32_setreuid16 70
#define NR32_setregid16 71
#define NR32_symlink 83
#define NR32_truncate 92
#define NR32_ftruncate 93
#define NR32_fchmod 94
#define NR32_open_by_handle_at 342
#define NR32_fchown16 95
#define NR32_socketcall 102
#define NR32_init_module 128
#define NR32_fchdir 133
#define NR32_setfsuid16 138
#define NR32_setfsgid16 139
#define NR32_setresuid16 164
#define NR32_setresgid16 170
#define NR32_chown16 182
#define NR32_capset 185
#define NR32_truncate64 193
#define NR32_ftruncate64 194
#define NR32_lchown 198
#define NR32_setreuid 203
#define NR32_setregid 204
#define NR32_fchown 207
#define NR32_setresuid 208
#define NR32_setresgid 210
#define NR32_chown 212
#define NR32_setuid 213
#define NR32_setgid 214
#define NR32_setfsuid 215
#define NR32_setfsgid 216
#define NR32_openat 295
#define NR32_fchownat 298
#define NR32_unlinkat 301
#define NR32_renameat 302
#define NR32_linkat 303
#define NR32_symlinkat 304
#define NR32_fchmodat 306
#define NR32_unshare 310
#define NR32_dup3 330
#define NR32_sendmmsg 345
#define NR32_setns 346
#define NR32_finit_module 350
#define NR32_renameat2 353
#define NR32_memfd_create 356
#define NR32_prctl 172
#define NR32_bpf 357
#define NR32_socket 359
#define NR32_bind 361
#define NR32_connect 362
#define NR32_listen 363
#define NR32_accept4 364
#define NR32_sendto 369
#define NR32_sendmsg 370
#define NR32_open_tree 428
#define NR32_move_mount 429
#define NR32_fsmount 432
#define NR32_fspick 433
#define NR32_mount_setattr 442
#define NR32_process_vm_readv 347
#define NR32_process_vm_writev 348
#define NR32_openat2 437
#define NR32_fchmodat2 452

// socketcall(2)'s calls (include/uapi/linux/net.h) the sensor watches.
#define SYS_SOCKET 1
#define SYS_BIND 2
#define SYS_CONNECT 3
#define SYS_LISTEN 4
#define SYS_ACCEPT 5
#define SYS_SEND 9
#define SYS_SENDTO 11
#define SYS_SENDMSG 16
#define SYS_ACCEPT4 18
#define SYS_SENDMMSG 20

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

#endif
