// SPDX-License-Identifier: GPL-2.0
// Read-only globals (.rodata) the loader sets before load (crates/bpf LoadOptions).
#ifndef RAMPART_LIB_CONFIG_H
#define RAMPART_LIB_CONFIG_H

#include "lib/common.h"

// Set by the loader before load.
const volatile u64 kind_mask = ~0ULL;          // bit (1 << kind) enables a kind
const volatile u8 filter_ro_libs = 1;          // drop read-only opens of shared libraries
const volatile u32 lifecycle_reserve_pct = 25; // ring space kept for exec/fork/exit
const volatile u64 open_repeat_window_ns = 0;  // fold repeated read-only opens (0: off)
// The same window in jiffies, when user space knows the kernel's HZ (0: unknown). The
// fold check then reads jiffies, a plain load, instead of the clock: on a VM reading
// the TSC was a tenth of a folded open's kernel time.
const volatile u64 open_repeat_window_jiffies = 0;
const volatile u32 sensor_tgid = 0;            // the sensor's own process, when it is ignored
const volatile u8 cgroup_names_once = 0;       // send cgroup leaf names once per cgroup pair
// 0 when the sensor's own process is the only one ignored: a compare with sensor_tgid
// then replaces the ignored_tgids lookup every event paid.
const volatile u8 ignored_lookup = 1;
const volatile u64 ring_bytes = 0;             // the events ring's size (0: ask the ring)

#endif // RAMPART_LIB_CONFIG_H
