// SPDX-License-Identifier: GPL-2.0
// Rampart netflow: the flow table, aggregated in the kernel, and learned network
// segmentation enforced there. A separate object from the sensor's (whose hot path it
// never touches), attached to a cgroup v2 directory above the containers (Docker's
// `docker/` directory) so every container's sockets run it; user space is
// crates/bpf/src/netflow.rs and crates/netflow.
//
// - cgroup_skb egress/ingress: per-flow counters keyed by cgroup id and 5-tuple
//   (flow.h; TCP's copied from the socket's own counters on a few packets of each
//   connection, the rest passed at once); DNS answers from port 53, the first TLS ClientHello of a flow and, for
//   cgroups being captured, packet headers with the first payload bytes, to user space
//   through ring buffers; new inbound TCP connections outside a protected cgroup's
//   baseline dropped (segment.h).
// - cgroup/connect4|6: the process that opened each outbound flow; connects outside a
//   protected cgroup's baseline refused with EPERM (segment.h).
// - With socket accounting, instead of cgroup_skb: TCP flows from the sockets, at
//   their end (tcp_destroy_sock, tcp_send_reset) and live through an iterator
//   (sockets.h), DNS answers from the resolvers' receive calls (dns.h), and each
//   socket's first payload from tcp_sendmsg where the kernel has trampolines
//   (first_send.h), and there too UDP datagrams, per socket (udp.h), and the
//   packets processes write whole through raw sockets (raw_send.h).
#include "lib/common.h"

char LICENSE[] SEC("license") = "GPL";

#include "netflow/maps.h"
#include "netflow/flow.h"
#include "netflow/sockets.h"
#include "netflow/dns.h"
#include "netflow/first_send.h"
#include "netflow/raw_send.h"
#include "netflow/udp.h"
