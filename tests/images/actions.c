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
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

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

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: actions setuid|setgid|setresuid|capset|ptrace|mount|umount|unshare|setns|memfd-exec|bpf|init-module|proc-mem\n");
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
	fprintf(stderr, "unknown action %s\n", a);
	return 2;
}
