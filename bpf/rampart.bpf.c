// SPDX-License-Identifier: GPL-2.0
// Rampart node sensor: kernel side. Kept small and close to the hooks; meaning is
// given in user space (crates/sensor). Wire format: see rampart.h.
//
// Hooks: tp_btf sched_process_{exec,fork,exit} for the process lifecycle; one fexit
// program per watched syscall (arguments read from the syscall's saved pt_regs, so one
// invocation per syscall and the result is known). Where the kernel has no BPF
// trampolines, one tp_btf on sys_exit tail-calls the same handlers instead.
#include "lib/common.h"

char LICENSE[] SEC("license") = "GPL";

// One translation unit, so one object: one events ring, one set of loss counters and
// one scratch buffer for every family. The order is the object's section order; the
// dispatcher needs no family (it tail-calls by slot), the stubs need all of them.
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/str.h"
#include "lib/path.h"
#include "lib/event.h"
#include "process/lifecycle.h"
#include "lib/syscall.h"
#include "attach/dispatch.h"
#include "file/open.h"
#include "file/path_ops.h"
#include "net/sock.h"
#include "net/dns.h"
#include "kernel/mount.h"
#include "kernel/misc.h"
#include "io_uring/io_uring.h"
#include "attach/stubs.h"
#include "attach/ia32.h"
