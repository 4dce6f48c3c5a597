// The kernel matrix's event check (scripts/kernel-matrix): one call or a few for each
// event kind busybox cannot make, run under `rampart sensor` in the qemu guest. Static,
// no library beyond libc; every failure is ignored (attempts are events too), since
// the sensor's JSON, not this program, is what the matrix checks.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static void net(void) {
	// bind, listen, connect, accept on loopback.
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(18080)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	bind(l, (struct sockaddr *)&a, sizeof a);
	listen(l, 4);
	int c = socket(AF_INET, SOCK_STREAM, 0);
	connect(c, (struct sockaddr *)&a, sizeof a);
	int s = accept(l, 0, 0);
	close(s);
	close(c);
	close(l);
	// A DNS query for example.com sent to port 53 (nobody listens; sent all the same).
	static const unsigned char q[] = {0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
					  7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
					  0, 1, 0, 1};
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(53)};
	d.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sendto(u, q, sizeof q, 0, (struct sockaddr *)&d, sizeof d);
	close(u);
	// A packet socket (sniffing).
	close(socket(AF_PACKET, SOCK_RAW, 0));
	// A socket dup'ed onto stdin, in a child (a reverse shell's wiring).
	pid_t p = fork();
	if (p == 0) {
		int t = socket(AF_INET, SOCK_STREAM, 0);
		dup2(t, 0);
		_exit(0);
	}
	waitpid(p, 0, 0);
}

static void privilege(void) {
	setgid(0);
	setuid(0);
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct caps[2];
	syscall(SYS_capget, &h, caps);
	syscall(SYS_capset, &h, caps);
}

static void kernel(void) {
	// ptrace, process_vm_readv and a write-mode open of /proc/<pid>/mem on a child.
	pid_t p = fork();
	if (p == 0) {
		pause();
		_exit(0);
	}
	char buf[8];
	if (ptrace(PTRACE_ATTACH, p, 0, 0) == 0) {
		waitpid(p, 0, 0);
		ptrace(PTRACE_DETACH, p, 0, 0);
	}
	struct iovec local = {buf, sizeof buf}, remote = {buf, sizeof buf};
	process_vm_readv(p, &local, 1, &remote, 1, 0);
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/mem", p);
	int m = open(path, O_WRONLY);
	if (m >= 0)
		close(m);
	kill(p, SIGKILL);
	waitpid(p, 0, 0);
	// A module load attempt: finit_module of a file that is no module (refused).
	int mod = open("/proc/self/exe", O_RDONLY);
	if (mod >= 0) {
		syscall(SYS_finit_module, mod, "", 0);
		close(mod);
	}
	// memfd_create, and a BPF program loaded (r0 = 0; exit).
	close(memfd_create("rampart-km", 0));
	struct bpf_insn insns[2] = {{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0},
				    {.code = BPF_JMP | BPF_EXIT}};
	union bpf_attr attr;
	memset(&attr, 0, sizeof attr);
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (uintptr_t)insns;
	attr.insn_cnt = 2;
	attr.license = (uintptr_t) "GPL";
	int fd = syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr);
	if (fd >= 0)
		close(fd);
}

static void files(void) {
	// open_by_handle_at of a file on /tmp (tmpfs exports handles).
	struct {
		struct file_handle h;
		unsigned char bytes[128];
	} fh;
	fh.h.handle_bytes = sizeof fh.bytes;
	int mount_id;
	int f = open("/tmp/km-handle", O_CREAT | O_WRONLY, 0644);
	if (f >= 0)
		close(f);
	if (name_to_handle_at(AT_FDCWD, "/tmp/km-handle", &fh.h, &mount_id, 0) == 0) {
		int mfd = open("/tmp", O_RDONLY | O_DIRECTORY);
		int o = open_by_handle_at(mfd, &fh.h, O_RDONLY);
		if (o >= 0)
			close(o);
		close(mfd);
	}
	// io_uring: one openat submitted through the ring.
	struct io_uring_params params;
	memset(&params, 0, sizeof params);
	int ring = syscall(SYS_io_uring_setup, 4, &params);
	if (ring < 0)
		return;
	size_t sq_len = params.sq_off.array + params.sq_entries * sizeof(unsigned);
	char *sq = mmap(0, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
			IORING_OFF_SQ_RING);
	struct io_uring_sqe *sqes =
		mmap(0, params.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || sqes == MAP_FAILED)
		return;
	unsigned *tail = (unsigned *)(sq + params.sq_off.tail);
	unsigned *mask = (unsigned *)(sq + params.sq_off.ring_mask);
	unsigned *array = (unsigned *)(sq + params.sq_off.array);
	memset(&sqes[0], 0, sizeof sqes[0]);
	sqes[0].opcode = IORING_OP_OPENAT;
	sqes[0].fd = AT_FDCWD;
	sqes[0].addr = (uintptr_t) "/tmp/km-handle";
	sqes[0].open_flags = O_RDONLY;
	array[*tail & *mask] = 0;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	syscall(SYS_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, 0, 0);
	close(ring);
}

int main(void) {
	// Renamed from the main thread: process_rename.
	prctl(PR_SET_NAME, "km-renamed", 0, 0, 0);
	net();
	privilege();
	kernel();
	files();
	return 0;
}
