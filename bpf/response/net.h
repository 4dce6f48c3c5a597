// SPDX-License-Identifier: GPL-2.0
// Network quarantine and blocked destinations, on the container's cgroup v2
// directory: cgroup_skb egress and ingress drop packets, cgroup/connect4|6 refuse a
// connect() at once (EPERM) instead of letting it time out. What a container may
// reach is in the maps (maps.h), keyed by its cgroup id; the programs are attached
// only to guarded containers' cgroups, so other traffic never runs them.
#ifndef RAMPART_RESPONSE_NET_H
#define RAMPART_RESPONSE_NET_H

#include "response/maps.h"

#define GUARD_ETH_P_IP 0x0800
#define GUARD_ETH_P_IPV6 0x86DD
#define GUARD_IPPROTO_TCP 6
#define GUARD_IPPROTO_UDP 17

static __always_inline void count(__u64 cgid, int which)
{
	struct guard_stats *st = bpf_map_lookup_elem(&guard_stats, &cgid);
	if (!st)
		return;
	switch (which) {
	case 0:
		__sync_fetch_and_add(&st->egress_dropped, 1);
		break;
	case 1:
		__sync_fetch_and_add(&st->ingress_dropped, 1);
		break;
	case 2:
		__sync_fetch_and_add(&st->connect_refused, 1);
		break;
	case 3:
		__sync_fetch_and_add(&st->exec_killed, 1);
		break;
	default:
		__sync_fetch_and_add(&st->exec_denied, 1);
		break;
	}
}

static __always_inline bool ports_match(const struct net_ports *p, __u16 port)
{
	if (p->nports == 0)
		return true;
	for (int i = 0; i < GUARD_PORTS; i++) {
		if (i >= p->nports)
			break;
		if (p->ports[i] == port)
			return true;
	}
	return false;
}

static __always_inline bool listed(void *map, __u64 cgid, const __u8 *addr, __u16 port)
{
	struct lpm_key k = {.prefixlen = 64 + 128};
	__builtin_memcpy(k.data, &cgid, 8);
	__builtin_memcpy(k.data + 8, addr, 16);
	struct net_ports *p = bpf_map_lookup_elem(map, &k);
	return p && ports_match(p, port);
}

static __always_inline bool is_loopback(const __u8 *a)
{
	__u64 hi, lo;
	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&lo, a + 8, 8);
	if (hi != 0)
		return false;
	// ::1, or ::ffff:127.x.y.z (little-endian loads: bytes 8..11 read low first).
	if (lo == bpf_cpu_to_be64(1ULL))
		return true;
	return a[8] == 0 && a[9] == 0 && a[10] == 0xff && a[11] == 0xff && a[12] == 127;
}

// 1 lets the packet or connect through, 0 drops or refuses it.
static __always_inline int verdict(const struct net_cfg *c, __u64 cgid, const __u8 *addr,
				   __u16 port, bool egress)
{
	if (c->flags & NET_QUARANTINE) {
		if ((c->flags & NET_ALLOW_LOOPBACK) && is_loopback(addr))
			return 1;
		return listed(&net_allow, cgid, addr, port) ? 1 : 0;
	}
	if (egress && (c->flags & NET_DENY)) {
		if (listed(&net_deny, cgid, addr, port))
			return 0;
		struct port_key pk = {.cgid = cgid, .port = port};
		if (port && bpf_map_lookup_elem(&net_deny_port, &pk))
			return 0;
	}
	return 1;
}

// The guarded cgroup a socket belongs to: its own, or the nearest guarded ancestor.
static __always_inline struct net_cfg *skb_cfg(struct __sk_buff *skb, __u64 *cgid)
{
	__u64 id = bpf_skb_cgroup_id(skb);
	struct net_cfg *c = bpf_map_lookup_elem(&net_cfg, &id);
	for (int level = GUARD_ANCESTOR_LEVELS; !c && level >= 1; level--) {
		id = bpf_skb_ancestor_cgroup_id(skb, level);
		if (id)
			c = bpf_map_lookup_elem(&net_cfg, &id);
	}
	*cgid = id;
	return c;
}

static __always_inline struct net_cfg *task_net_cfg(__u64 *cgid)
{
	__u64 id = bpf_get_current_cgroup_id();
	struct net_cfg *c = bpf_map_lookup_elem(&net_cfg, &id);
	for (int level = GUARD_ANCESTOR_LEVELS; !c && level >= 1; level--) {
		id = bpf_get_current_ancestor_cgroup_id(level);
		if (id)
			c = bpf_map_lookup_elem(&net_cfg, &id);
	}
	*cgid = id;
	return c;
}

// The packet's remote address (IPv6, IPv4 mapped) and port. False when it is neither
// IPv4 nor IPv6.
static __always_inline bool skb_remote(struct __sk_buff *skb, bool egress, __u8 *addr,
				       __u16 *port)
{
	__u16 ports[2] = {};
	__u8 proto;
	__u32 l4;
	if (skb->protocol == bpf_htons(GUARD_ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return false;
		__builtin_memset(addr, 0, 10);
		addr[10] = 0xff;
		addr[11] = 0xff;
		__u32 a = egress ? ip.daddr : ip.saddr;
		__builtin_memcpy(addr + 12, &a, 4);
		proto = ip.protocol;
		l4 = (ip.ihl & 0xf) * 4;
		// Later fragments carry no ports.
		if (ip.frag_off & bpf_htons(0x1fff))
			proto = 0;
	} else if (skb->protocol == bpf_htons(GUARD_ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return false;
		__builtin_memcpy(addr, egress ? &ip6.daddr : &ip6.saddr, 16);
		proto = ip6.nexthdr;
		l4 = sizeof(ip6);
	} else {
		return false;
	}
	*port = 0;
	if (proto == GUARD_IPPROTO_TCP || proto == GUARD_IPPROTO_UDP) {
		if (!bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)))
			*port = bpf_ntohs(egress ? ports[1] : ports[0]);
	}
	return true;
}

static __always_inline int guard_skb(struct __sk_buff *skb, bool egress)
{
	__u64 cgid = 0;
	struct net_cfg *c = skb_cfg(skb, &cgid);
	if (!c)
		return 1;
	__u8 addr[16];
	__u16 port = 0;
	if (!skb_remote(skb, egress, addr, &port)) {
		// Neither IPv4 nor IPv6: quarantine lets nothing out.
		if (c->flags & NET_QUARANTINE) {
			count(cgid, egress ? 0 : 1);
			return 0;
		}
		return 1;
	}
	int v = verdict(c, cgid, addr, port, egress);
	if (!v)
		count(cgid, egress ? 0 : 1);
	return v;
}

SEC("cgroup_skb/egress")
int guard_egress(struct __sk_buff *skb)
{
	return guard_skb(skb, true);
}

SEC("cgroup_skb/ingress")
int guard_ingress(struct __sk_buff *skb)
{
	return guard_skb(skb, false);
}

SEC("cgroup/connect4")
int guard_connect4(struct bpf_sock_addr *ctx)
{
	__u64 cgid = 0;
	struct net_cfg *c = task_net_cfg(&cgid);
	if (!c)
		return 1;
	__u8 addr[16] = {};
	addr[10] = 0xff;
	addr[11] = 0xff;
	__u32 a = ctx->user_ip4;
	__builtin_memcpy(addr + 12, &a, 4);
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	int v = verdict(c, cgid, addr, port, true);
	if (!v)
		count(cgid, 2);
	return v;
}

SEC("cgroup/connect6")
int guard_connect6(struct bpf_sock_addr *ctx)
{
	__u64 cgid = 0;
	struct net_cfg *c = task_net_cfg(&cgid);
	if (!c)
		return 1;
	__u32 a[4];
	// The context's words must be read one at a time.
	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	__u8 addr[16];
	__builtin_memcpy(addr, a, 16);
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	int v = verdict(c, cgid, addr, port, true);
	if (!v)
		count(cgid, 2);
	return v;
}

#endif // RAMPART_RESPONSE_NET_H
