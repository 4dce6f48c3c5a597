// SPDX-License-Identifier: GPL-2.0
// Rampart response: kernel side of the actions that must act in the kernel (network
// quarantine, blocked destinations, exec denial, synchronous kill from rules on exec,
// connect and open). A separate object from the sensor's so it loads, pins and
// outlives the sensor on its own; user space is crates/bpf/src/response.rs.
// Everything is keyed by the guarded container's cgroup v2 id; a cgroup in no map is
// never touched.
#include "lib/common.h"

char LICENSE[] SEC("license") = "GPL";

#include "response/maps.h"
#include "response/net.h"
#include "response/exec.h"
#include "response/kill.h"
#include "response/open.h"
