// Watched syscalls made through the 32-bit entry (int 0x80, ia32 numbering), for the
// sensor's tests. Built twice by scripts/build-test-images: as a 32-bit program
// (/bin/compat32) and as a 64-bit one (/bin/int80: the way past tools that watch only
// the x86_64 syscall table). Freestanding (no libc, no headers): a 32-bit libc need
// not be installed. Every pointer passed is to static data, which sits below 4 GiB in
// both builds (the 64-bit build is not position independent); the stack does not.
//
// Run in a writable directory: it creates, changes and removes compat32-file there.

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

static long sys(long nr, long a, long b, long c, long d, long e)
{
	long ret;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
			 : "memory");
	return ret;
}

// ia32 syscall numbers (arch/x86/entry/syscalls/syscall_32.tbl).
#define NR_exit 1
#define NR_write 4
#define NR_open 5
#define NR_unlink 10
#define NR_ptrace 26
#define NR_rename 38
#define NR_fchmod 94
#define NR_socketcall 102
#define NR_setresuid16 164
#define NR_chown16 182
#define NR_ftruncate64 194
#define NR_openat 295
#define NR_memfd_create 356
#define NR_socket 359
#define NR_connect 362

#define SYS_SOCKET 1
#define SYS_CONNECT 3
#define SYS_SENDTO 11

struct sockaddr_in4 {
	u16 family;
	u16 port; // network order
	u32 addr; // network order
	u8 zero[8];
};

#define LOOPBACK 0x0100007f // 127.0.0.1 in network order
#define PORT(p) ((u16)((((p) & 0xff) << 8) | ((p) >> 8)))

static struct sockaddr_in4 discard = {2, PORT(9), LOOPBACK, {0}};
static struct sockaddr_in4 discard2 = {2, PORT(10), LOOPBACK, {0}};
static struct sockaddr_in4 resolver = {2, PORT(53), LOOPBACK, {0}};
// A query for compat32.example, type A.
static const u8 query[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
			   8, 'c', 'o', 'm', 'p', 'a', 't', '3', '2',
			   7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0,
			   0, 1, 0, 1};
static u32 words[6];

// socketcall(call, words): the 32-bit ABI's multiplexed socket calls.
static long socketcall(int call, u32 a, u32 b, u32 c, u32 d, u32 e, u32 f)
{
	words[0] = a;
	words[1] = b;
	words[2] = c;
	words[3] = d;
	words[4] = e;
	words[5] = f;
	return sys(NR_socketcall, call, (long)words, 0, 0, 0);
}

void _start(void)
{
	// openat(AT_FDCWD, relative path, O_WRONLY|O_CREAT|O_TRUNC|O_LARGEFILE, 0600):
	// the directory fd only means AT_FDCWD once narrowed to 32 bits.
	long fd = sys(NR_openat, (u32)-100, (long)"compat32-file",
		       01 | 0100 | 01000 | 0100000 /* O_LARGEFILE */, 0600, 0);
	sys(NR_write, fd, (long)"x", 1, 0, 0);
	sys(NR_fchmod, fd, 0640, 0, 0, 0);
	// The length 2^32 + 7 in two registers.
	sys(NR_ftruncate64, fd, 7, 1, 0, 0);
	// 16-bit ids: 0xffff is "unchanged", -1.
	sys(NR_chown16, (long)"compat32-file", 0xffff, 0xffff, 0, 0);
	sys(NR_rename, (long)"compat32-file", (long)"compat32-moved", 0, 0, 0);
	sys(NR_unlink, (long)"compat32-moved", 0, 0, 0, 0);
	sys(NR_open, (long)"/etc/hostname", 0, 0, 0, 0);

	long s = socketcall(SYS_SOCKET, 2, 1, 0, 0, 0, 0); // TCP
	socketcall(SYS_CONNECT, s, (u32)(long)&discard, sizeof(discard), 0, 0, 0);
	long s2 = sys(NR_socket, 2, 1, 0, 0, 0);
	sys(NR_connect, s2, (long)&discard2, sizeof(discard2), 0, 0);
	long u = socketcall(SYS_SOCKET, 2, 2, 0, 0, 0, 0); // UDP
	socketcall(SYS_SENDTO, u, (u32)(long)query, sizeof(query), 0, (u32)(long)&resolver,
		   sizeof(resolver));

	sys(NR_setresuid16, 0xffff, 0xffff, 0xffff, 0, 0);
	sys(NR_ptrace, 16 /* PTRACE_ATTACH */, 0x3ffffff0, 0, 0, 0); // no such process
	sys(NR_memfd_create, (long)"compat32-memfd", 0, 0, 0, 0);
	sys(NR_exit, 0, 0, 0, 0, 0);
	for (;;)
		;
}
