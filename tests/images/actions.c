// Test helper baked into the test image: performs one security-relevant action per
// invocation so end-to-end tests can check the sensor saw it. Statically linked.
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static int capset_drop(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d))
		return 1;
	d[0].effective &= ~(1u << CAP_NET_RAW);
	return syscall(SYS_capset, &h, d) ? 1 : 0;
}

static int memfd_exec(void)
{
	int fd = memfd_create("rampart-fileless", MFD_CLOEXEC);
	int src = open("/bin/busybox", O_RDONLY);
	if (fd < 0 || src < 0)
		return 1;
	char buf[65536];
	ssize_t n;
	while ((n = read(src, buf, sizeof(buf))) > 0)
		if (write(fd, buf, n) != n)
			return 1;
	char *argv[] = {"true", NULL};
	char *envp[] = {NULL};
	fexecve(fd, argv, envp);
	return 1;
}

static int ptrace_child(void)
{
	pid_t c = fork();
	if (c == 0) {
		pause();
		_exit(0);
	}
	long r = ptrace(PTRACE_ATTACH, c, 0, 0);
	if (r == 0) {
		waitpid(c, NULL, 0);
		ptrace(PTRACE_DETACH, c, 0, 0);
	}
	kill(c, 9);
	waitpid(c, NULL, 0);
	return 0;
}

static int proc_mem(void)
{
	int fd = open("/proc/self/mem", O_RDWR);
	if (fd >= 0)
		close(fd);
	return 0;
}

// socket(AF_PACKET, SOCK_RAW, ETH_P_ALL): link-layer sniffing/spoofing.
static int packet_socket(void)
{
	int fd = socket(17 /* AF_PACKET */, SOCK_RAW, htons(3 /* ETH_P_ALL */));
	if (fd >= 0)
		close(fd);
	return fd >= 0 ? 0 : 1;
}

// The wiring of a reverse shell: a TCP connection dup2'ed onto stdin/stdout/stderr.
// Also does the benign look-alikes the sensor must not report: an ordinary UDP socket
// and a pipe dup2'ed onto stderr (shell `2>&1`).
static int dup_socket(void)
{
	int udp = socket(AF_INET, SOCK_DGRAM, 0);
	int pfd[2];
	if (pipe(pfd) == 0)
		dup2(pfd[1], 2);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &alen))
		return 1;
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)))
		return 1;
	int rc = dup2(c, 0) == 0 && dup2(c, 1) == 1 ? 0 : 1;
	close(udp);
	return rc;
}

/* The new mount API: fsopen + fsconfig + fsmount make a detached tmpfs, move_mount
 * attaches it at /mnt, named relative to a descriptor of /. Raw numbers: older libc
 * headers lack them. */
static int move_mount_tmpfs(void)
{
	int fs = syscall(430 /* fsopen */, "tmpfs", 0);
	if (fs < 0)
		return 1;
	if (syscall(431 /* fsconfig */, fs, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0))
		return 1;
	int mnt = syscall(432 /* fsmount */, fs, 1 /* FSMOUNT_CLOEXEC */, 0);
	int root = open("/", O_PATH | O_DIRECTORY);
	if (mnt < 0 || root < 0)
		return 1;
	int rc = syscall(429 /* move_mount */, mnt, "", root, "mnt",
			 4 /* MOVE_MOUNT_F_EMPTY_PATH */);
	umount2("/mnt", 0);
	/* A detached copy of /etc, named relative to /. */
	int tree = syscall(428 /* open_tree */, root, "etc", 1 /* OPEN_TREE_CLONE */);
	return rc || tree < 0 ? 1 : 0;
}

/* Mounts a read-only tmpfs on /mnt, then makes it writable with mount_setattr
 * (clearing MOUNT_ATTR_RDONLY), named relative to a descriptor of /. The struct is
 * spelled out: <linux/mount.h> clashes with <sys/mount.h> in older libcs. */
static int mount_setattr_writable(void)
{
	struct {
		unsigned long long attr_set, attr_clr, propagation, userns_fd;
	} attr = {0, 1 /* MOUNT_ATTR_RDONLY */, 0, 0};
	if (mount("tmpfs", "/mnt", "tmpfs", MS_RDONLY, "size=1m"))
		return 1;
	int root = open("/", O_PATH | O_DIRECTORY);
	int rc = syscall(442 /* mount_setattr */, root, "mnt", 0, &attr, sizeof(attr));
	umount2("/mnt", 0);
	return rc ? 1 : 0;
}

/* Mounts a read-only tmpfs on /mnt, then remounts it read-write through the new
 * mount API: fspick of mnt relative to a descriptor of /, then fsconfig setting "rw"
 * and reconfiguring. */
static int fspick_remount(void)
{
	if (mount("tmpfs", "/mnt", "tmpfs", MS_RDONLY, "size=1m"))
		return 1;
	int root = open("/", O_PATH | O_DIRECTORY);
	int fc = syscall(433 /* fspick */, root, "mnt", 0);
	int rc = fc < 0 || syscall(431 /* fsconfig */, fc, 0 /* FSCONFIG_SET_FLAG */, "rw", NULL, 0) ||
		 syscall(431, fc, 7 /* FSCONFIG_CMD_RECONFIGURE */, NULL, NULL, 0);
	umount2("/mnt", 0);
	return rc ? 1 : 0;
}

/* Opens files of the host by handle, as the "shocker" escape does: Docker bind-mounts
 * /etc/hostname from the host's filesystem, so its descriptor is a mount descriptor on
 * that filesystem (overlayfs, the container's root, gives no handles). First
 * /etc/hostname by its own handle, where name_to_handle_at is allowed (Docker's default
 * seccomp profile refuses it); then shocker's first step, the host filesystem's root
 * directory (ext4: inode 2, generation 0). Needs CAP_DAC_READ_SEARCH. */
static int open_by_handle(void)
{
	struct {
		unsigned int handle_bytes;
		int handle_type;
		unsigned char f_handle[128];
	} h = {.handle_bytes = 128};
	int mount_id;
	int host_fs = open("/etc/hostname", O_RDONLY);
	if (syscall(303 /* name_to_handle_at */, AT_FDCWD, "/etc/hostname", &h, &mount_id, 0) == 0)
		syscall(304 /* open_by_handle_at */, host_fs, &h, O_RDONLY);
	memset(&h, 0, sizeof(h));
	h.handle_bytes = 8;
	h.handle_type = 1; /* FILEID_INO32_GEN */
	h.f_handle[0] = 2;
	int root = syscall(304 /* open_by_handle_at */, host_fs, &h, O_RDONLY);
	return root >= 0 ? 0 : 1;
}

/* A thread names itself, as runtimes do (not reported); then the process renames
 * itself to a kernel thread's name, as miners do to hide in ps (reported). */
static void *name_thread(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "rampart-thread");
	return NULL;
}

static int rename_self(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, name_thread, NULL) || pthread_join(t, NULL))
		return 1;
	return prctl(PR_SET_NAME, "kworker/0:1") ? 1 : 0;
}

/* A raw io_uring (no liburing) that runs one operation at a time. */
struct ring {
	int fd;
	char *sq, *cq;
	struct io_uring_sqe *sqes;
	struct io_uring_params p;
};

static int ring_setup(struct ring *r)
{
	memset(r, 0, sizeof(*r));
	r->fd = syscall(425 /* io_uring_setup */, 4, &r->p);
	if (r->fd < 0)
		return -1;
	struct io_uring_params *p = &r->p;
	size_t sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
	size_t cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
	if (cq_len > sq_len)
		sq_len = cq_len; /* one mapping serves both (IORING_FEAT_SINGLE_MMAP) */
	r->sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		     IORING_OFF_SQ_RING);
	r->cq = r->sq;
	if (!(p->features & IORING_FEAT_SINGLE_MMAP))
		r->cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
			     IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, p->sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (r->sq == MAP_FAILED || r->cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -1;
	return 0;
}

/* Submits `sqe` and waits for its completion; returns its result. */
static int ring_run(struct ring *r, const struct io_uring_sqe *sqe)
{
	unsigned *tail = (unsigned *)(r->sq + r->p.sq_off.tail);
	unsigned idx = *tail & *(unsigned *)(r->sq + r->p.sq_off.ring_mask);
	r->sqes[idx] = *sqe;
	((unsigned *)(r->sq + r->p.sq_off.array))[idx] = idx;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	if (syscall(426 /* io_uring_enter */, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return -1;
	unsigned *head = (unsigned *)(r->cq + r->p.cq_off.head);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(r->cq + r->p.cq_off.cqes);
	int res = cqes[*head & *(unsigned *)(r->cq + r->p.cq_off.ring_mask)].res;
	__atomic_store_n(head, *head + 1, __ATOMIC_RELEASE);
	return res;
}

/* Through io_uring, with none of their syscalls: opens etc/hostname relative to /,
 * creates a TCP socket, binds it to 127.0.0.1:47123 and listens (backlog 7), then
 * connects a second socket to it. Bind and listen need Linux 6.11: before it they
 * fail, and the connect is refused (each is reported at submission all the same). */
static int io_uring_ops(void)
{
	if (chdir("/"))
		return 1;
	struct ring r;
	if (ring_setup(&r))
		return 1;
	struct io_uring_sqe e;
	memset(&e, 0, sizeof(e));
	e.opcode = IORING_OP_OPENAT;
	e.fd = AT_FDCWD;
	e.addr = (unsigned long)"etc/hostname";
	e.open_flags = O_RDONLY;
	if (ring_run(&r, &e) < 0)
		return 1;
	int fds[2];
	for (int i = 0; i < 2; i++) {
		memset(&e, 0, sizeof(e));
		e.opcode = IORING_OP_SOCKET;
		e.fd = AF_INET;
		e.off = SOCK_STREAM;
		fds[i] = ring_run(&r, &e);
		if (fds[i] < 0)
			return 2;
	}
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(47123)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(&e, 0, sizeof(e));
	e.opcode = 56; /* IORING_OP_BIND */
	e.fd = fds[0];
	e.addr = (unsigned long)&sin;
	e.addr2 = sizeof(sin);
	ring_run(&r, &e);
	memset(&e, 0, sizeof(e));
	e.opcode = 57; /* IORING_OP_LISTEN */
	e.fd = fds[0];
	e.len = 7;
	ring_run(&r, &e);
	memset(&e, 0, sizeof(e));
	e.opcode = IORING_OP_CONNECT;
	e.fd = fds[1];
	e.addr = (unsigned long)&sin;
	e.off = sizeof(sin); /* addr2: the address length */
	ring_run(&r, &e);
	return 0;
}

/* Reads then writes a forked child's memory with process_vm_readv/writev (the child
 * is a descendant, so Yama's default ptrace scope allows it). */
static char vm_secret[16] = "rampart-secret";
static int process_vm(void)
{
	pid_t child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	char buf[16];
	struct iovec local = {buf, sizeof(buf)}, remote = {vm_secret, sizeof(vm_secret)};
	long r = syscall(SYS_process_vm_readv, child, &local, 1, &remote, 1, 0);
	memcpy(buf, "rampart-patched", 16);
	long w = syscall(SYS_process_vm_writev, child, &local, 1, &remote, 1, 0);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return r == 16 && w == 16 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: actions setuid|setgid|setresuid|capset|ptrace|mount|move-mount|process-vm|io-uring|mount-setattr|fspick-remount|open-by-handle|rename|umount|unshare|setns|memfd-exec|bpf|init-module|proc-mem|packet-socket|dup-socket\n");
		return 2;
	}
	const char *a = argv[1];
	if (!strcmp(a, "setuid"))
		return setuid(65534) ? 1 : 0;
	if (!strcmp(a, "setgid"))
		return setgid(65534) ? 1 : 0;
	if (!strcmp(a, "setresuid"))
		return setresuid(-1, 65534, -1) ? 1 : 0;
	if (!strcmp(a, "capset"))
		return capset_drop();
	if (!strcmp(a, "ptrace"))
		return ptrace_child();
	if (!strcmp(a, "mount"))
		return mount("tmpfs", "/mnt", "tmpfs", 0, "size=1m") ? 1 : 0;
	if (!strcmp(a, "mount-setattr"))
		return mount_setattr_writable();
	if (!strcmp(a, "fspick-remount"))
		return fspick_remount();
	if (!strcmp(a, "open-by-handle"))
		return open_by_handle();
	if (!strcmp(a, "rename"))
		return rename_self();
	if (!strcmp(a, "io-uring"))
		return io_uring_ops();
	if (!strcmp(a, "process-vm"))
		return process_vm();
	if (!strcmp(a, "move-mount"))
		return move_mount_tmpfs();
	if (!strcmp(a, "umount")) {
		mount("tmpfs", "/mnt", "tmpfs", 0, "size=1m");
		return umount2("/mnt", 0) ? 1 : 0;
	}
	if (!strcmp(a, "unshare"))
		return unshare(CLONE_NEWUTS) ? 1 : 0;
	if (!strcmp(a, "setns")) {
		int fd = open("/proc/1/ns/uts", O_RDONLY);
		return setns(fd, CLONE_NEWUTS) ? 1 : 0;
	}
	if (!strcmp(a, "memfd-exec"))
		return memfd_exec();
	if (!strcmp(a, "bpf"))
		return syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, NULL, 0) ? 0 : 0;
	if (!strcmp(a, "init-module"))
		return syscall(SYS_init_module, NULL, 0, "") ? 0 : 0;
	if (!strcmp(a, "proc-mem"))
		return proc_mem();
	if (!strcmp(a, "packet-socket"))
		return packet_socket();
	if (!strcmp(a, "dup-socket"))
		return dup_socket();
	fprintf(stderr, "unknown action %s\n", a);
	return 2;
}
