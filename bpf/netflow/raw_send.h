// SPDX-License-Identifier: GPL-2.0
// Packets a process writes whole through a raw socket (IPPROTO_RAW: nmap's SYN scan,
// hping3, scapy's send()), with socket accounting: no socket counts them and no
// packet program runs, so each is counted at its send, into the flow table, as the
// packet path counts it (a SYN makes an outbound flow, owned by the process that sent
// it). fentry on raw_sendmsg and rawv6_sendmsg, where the kernel has BPF trampolines:
// they run for raw sockets' sends only. While the packet programs are attached (a
// capture, protect mode) they count these packets instead.
#ifndef RAMPART_NETFLOW_RAW_SEND_H
#define RAMPART_NETFLOW_RAW_SEND_H

#include "netflow/flow.h"
#include "netflow/msg.h"
#include "netflow/sockets.h"

#define NF_IPPROTO_RAW 255

static __always_inline int nf_raw_send(struct sock *sk, struct msghdr *msg, __u64 size)
{
	if (sk->sk_protocol != NF_IPPROTO_RAW || size < 20)
		return 0;
	__u32 zero = 0;
	struct nf_config *cfg = bpf_map_lookup_elem(&nf_cfg, &zero);
	__u32 want = NF_CFG_SOCKETS | NF_CFG_RAW;
	if (!cfg || (cfg->flags & (want | NF_CFG_PACKETS)) != want)
		return 0;
	__u64 cgid = nf_watched_cgroup(sk, cfg);
	if (!cgid)
		return 0;
	__u64 avail;
	const __u8 *base = nf_send_data(msg, size, &avail);
	if (!base || avail < 20)
		return 0;
	// The IP header (IPv6's is 40 bytes; IPv4's first 20 hold what is needed), then the
	// L4 header's first 14 bytes (ports, TCP's flags) in a second read at its offset:
	// a variable offset into the stack is what 6.12's verifier refuses.
	__u8 hdr[40] = {};
	if (bpf_probe_read_user(hdr, avail >= 40 ? 40 : 20, base))
		return 0;
	struct nf_pkt p = {};
	__u32 l4;
	bool later_fragment = false;
	if (hdr[0] >> 4 == 4) {
		__u32 saddr, daddr;
		__builtin_memcpy(&saddr, hdr + 12, 4);
		__builtin_memcpy(&daddr, hdr + 16, 4);
		v4_mapped(p.key.local, saddr);
		v4_mapped(p.key.remote, daddr);
		p.key.proto = hdr[9];
		l4 = (hdr[0] & 0xf) * 4;
		later_fragment = ((hdr[6] & 0x1f) | hdr[7]) != 0;
	} else if (hdr[0] >> 4 == 6 && avail >= 40) {
		__builtin_memcpy(p.key.local, hdr + 8, 16);
		__builtin_memcpy(p.key.remote, hdr + 24, 16);
		p.key.proto = hdr[6];
		l4 = 40;
	} else {
		return 0;
	}
	p.key.cgid = cgid;
	__u8 l4h[14] = {};
	if (!later_fragment && l4 >= 20 && l4 <= 60 && l4 + sizeof(l4h) <= avail &&
	    (p.key.proto == NF_TCP || p.key.proto == NF_UDP) &&
	    !bpf_probe_read_user(l4h, sizeof(l4h), base + l4)) {
		p.key.lport = (l4h[0] << 8) | l4h[1];
		p.key.rport = (l4h[2] << 8) | l4h[3];
		if (p.key.proto == NF_TCP)
			p.tcp_flags = l4h[13] & (NF_TCP_FIN | NF_TCP_SYN | NF_TCP_RST | NF_TCP_ACK);
	}
	__u64 now = bpf_ktime_get_ns();
	bool created;
	struct flow_val *v = nf_flow_entry(&p, cfg, true, true, now, &created);
	if (!v)
		return 0;
	__sync_fetch_and_add(&v->bytes_out, size);
	__sync_fetch_and_add(&v->pkts_out, 1);
	if (created) {
		struct owner_key ok = {.cgid = cgid, .rport = p.key.rport, .proto = p.key.proto};
		__builtin_memcpy(ok.remote, p.key.remote, 16);
		struct owner_val ov = {.ts_ns = now, .pid = bpf_get_current_pid_tgid() >> 32};
		bpf_get_current_comm(ov.comm, sizeof(ov.comm));
		bpf_map_update_elem(&nf_owners, &ok, &ov, BPF_ANY);
	}
	nf_flow_touched(&p, v, cfg, (__u64)p.tcp_flags << NF_FLAG_OUT_SHIFT);
	return 0;
}

SEC("fentry/raw_sendmsg")
int BPF_PROG(nf_raw_send4, struct sock *sk, struct msghdr *msg, size_t size)
{
	return nf_raw_send(sk, msg, size);
}

SEC("fentry/rawv6_sendmsg")
int BPF_PROG(nf_raw_send6, struct sock *sk, struct msghdr *msg, size_t size)
{
	return nf_raw_send(sk, msg, size);
}

#endif // RAMPART_NETFLOW_RAW_SEND_H
