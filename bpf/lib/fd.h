// SPDX-License-Identifier: GPL-2.0
// A task's open file by descriptor. No maps: the netflow object includes it too.
#ifndef RAMPART_LIB_FD_H
#define RAMPART_LIB_FD_H

#include "lib/common.h"

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

#endif // RAMPART_LIB_FD_H
