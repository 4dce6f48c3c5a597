// Loads floor.bpf.o (embedded) and attaches what its mode names, then waits to be
// killed. Invoked the way scripts/vm-overhead starts an arm, `up --config FILE`: the
// file's first word is the mode: `nop` (cgroup_skb both ways on the cgroup v2 root),
// `sockops` (an empty sock_ops program there), `socket_end` (one entry per socket at
// its end), `edge_end` (one entry per edge, added to at each socket's end) or `ring_end` (a
// ring buffer record per socket end).
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "floor.skel.h"

int main(int argc, char **argv)
{
	char mode[32] = {0};
	FILE *f = argc > 1 ? fopen(argv[argc - 1], "r") : NULL;
	if (!f || fscanf(f, "%31s", mode) != 1) {
		fprintf(stderr, "floor: no mode file\n");
		return 2;
	}
	struct bpf_object *obj = bpf_object__open_mem(floor_bpf_o, floor_bpf_o_len, NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "floor: load failed\n");
		return 1;
	}
	const char *progs[2] = {0};
	if (!strcmp(mode, "nop")) {
		progs[0] = "nop_egress";
		progs[1] = "nop_ingress";
	} else if (!strcmp(mode, "socket_end")) {
		progs[0] = "socket_end";
	} else if (!strcmp(mode, "edge_end")) {
		progs[0] = "edge_end";
	} else if (!strcmp(mode, "ring_end")) {
		progs[0] = "ring_end";
	} else if (!strcmp(mode, "sockops")) {
		progs[0] = "sockops_nop";
	} else {
		fprintf(stderr, "floor: unknown mode %s\n", mode);
		return 2;
	}
	int cgroup = open("/sys/fs/cgroup", O_RDONLY);
	for (int i = 0; i < 2 && progs[i]; i++) {
		struct bpf_program *p = bpf_object__find_program_by_name(obj, progs[i]);
		// The tracepoints attach by their section; the rest to the cgroup.
		bool traced = !strcmp(progs[i], "socket_end") || !strcmp(progs[i], "edge_end") ||
			      !strcmp(progs[i], "ring_end");
		struct bpf_link *l = !p ? NULL
				   : traced ? bpf_program__attach(p) : bpf_program__attach_cgroup(p, cgroup);
		if (!l) {
			fprintf(stderr, "floor: attaching %s failed\n", progs[i]);
			return 1;
		}
	}
	// The line scripts/vm-overhead waits for.
	fprintf(stderr, "floor %s: outputs running\n", mode);
	for (;;)
		pause();
}
