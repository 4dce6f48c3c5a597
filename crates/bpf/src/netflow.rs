//! The netflow object (`bpf/netflow.bpf.c`): the flow table aggregated in the kernel,
//! DNS answers and TLS ClientHellos read on the container's cgroup, captured packets,
//! and learned segmentation enforced there (protect mode).
//!
//! TCP flows are counted one of two ways ([`Accounting`]): per packet on `cgroup_skb`,
//! or from the sockets (their counters read when they end, and by an iterator while
//! they live), which puts no program on the packet path.
//!
//! The programs are attached to cgroup v2 directories above the containers (Docker's
//! `docker/` directory covers them all) through BPF links (multi-attach), so they sit beside the
//! response guard's and anyone else's. Nothing is pinned: the programs come off when
//! the [`NetflowProbe`] is dropped, and a protected container is unprotected with it
//! (segmentation is re-applied from the baselines user space keeps on start).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::links::CgroupAttachMode;
use aya::programs::{
    BtfTracePoint, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, FEntry, FExit, Iter, TracePoint,
};
use aya::{Btf, Ebpf, EbpfLoader};

use crate::BpfError;

/// The compiled netflow programs (see `bpf/netflow.bpf.c`).
pub static NETFLOW_OBJECT: &[u8] = aya::include_bytes_aligned!("../obj/netflow.bpf.o");

/// Payload bytes a DNS or TLS record carries at most (`NF_PAYLOAD`).
pub const RECORD_PAYLOAD: usize = 1024;
/// Bytes of a captured packet kept at most, IP header on (`NF_SNAP_MAX`).
pub const SNAP_MAX: usize = 256;

const CFG_DNS: u32 = 1;
const CFG_TLS: u32 = 2;
const CFG_CAPTURE: u32 = 4;
const CFG_PROTECT: u32 = 8;
const CFG_SOCKETS: u32 = 16;
const CFG_PACKETS: u32 = 32;
const CFG_UDP: u32 = 64;
const CFG_RAW: u32 = 128;

// `enum nf_sock_end`: where a socket record comes from.
const END_LIVE: u8 = 0;
const END_RESET: u8 = 2;
const END_LISTENING: u8 = 3;
const END_RESET_IN: u8 = 4;
const END_REFUSED: u8 = 5;
const END_RESET_IN_CLOSED: u8 = 6;

/// Cgroup directories a probe with socket accounting can watch (`NF_MAX_WATCH`).
pub const MAX_WATCHED_DIRS: usize = 8;

const REC_DNS: u32 = 1;
const REC_TLS: u32 = 2;
const REC_DENY_CONNECT: u32 = 3;
const REC_DENY_INBOUND: u32 = 4;
const REC_PACKET: u32 = 5;
const REC_FIRST_DATA: u32 = 6;

// Mirrors of the C structs in bpf/netflow/maps.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct FlowKey {
    cgid: u64,
    local: [u8; 16],
    remote: [u8; 16],
    lport: u16,
    rport: u16,
    proto: u8,
    pad: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct FlowVal {
    first_ns: u64,
    last_ns: u64,
    bytes_out: u64,
    pkts_out: u64,
    bytes_in: u64,
    pkts_in: u64,
    flags: u64,
    initiator: u8,
    pad: [u8; 3],
    gen: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct OwnerKey {
    cgid: u64,
    remote: [u8; 16],
    rport: u16,
    proto: u8,
    pad: [u8; 5],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct OwnerVal {
    ts_ns: u64,
    pid: u32,
    pad: u32,
    comm: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct NfConfig {
    flags: u32,
    snaplen: u32,
    gen: u32,
    watched: u32,
}

/// `struct nf_watch`: a cgroup directory whose sockets are accounted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct NfWatch {
    id: u64,
    level: u32,
    pad: u32,
}

/// `struct nf_sock_rec`: one TCP socket's counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct NfSockRec {
    key: FlowKey,
    bytes_out: u64,
    segs_out: u64,
    bytes_in: u64,
    segs_in: u64,
    ts_ns: u64,
    srtt_us: u32,
    initiator: u8,
    state: u8,
    end: u8,
    pad: u8,
}

/// `struct nf_change`: a flow that changed since the last read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct NfChange {
    key: FlowKey,
    gen: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SegKey {
    cgid: u64,
    addr: [u8; 16],
    port: u16,
    proto: u8,
    dir: u8,
    pad: u32,
}

/// `seg_cidr_key` without its prefix length (aya's LPM key adds it): the exact part
/// (cgroup, port, protocol, direction: [`SEG_CIDR_EXACT_BITS`]) then the address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SegCidrData {
    cgid_lo: u32,
    cgid_hi: u32,
    port: u16,
    proto: u8,
    dir: u8,
    addr: [u8; 16],
}

/// Bits of [`SegCidrData`] before the address, always matched whole.
const SEG_CIDR_EXACT_BITS: u32 = 96;

/// What the netflow programs counted, summed over CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetflowStats {
    pub flows_created: u64,
    /// The flow table refused an entry (full of entries being created at once).
    pub flow_update_failed: u64,
    /// Records lost because a ring buffer was full.
    pub records_lost: u64,
    pub connects_denied: u64,
    pub inbound_denied: u64,
    pub packets_captured: u64,
    /// Flow changes the kernel could not report (its change ring was full): the
    /// next read takes the whole table instead.
    pub changes_lost: u64,
    /// Socket ends the kernel could not report (its ring was full): those
    /// connections' last counters are lost.
    pub socket_ends_lost: u64,
    /// First payloads not read because their process sent one to the same peer and
    /// service within the minute (socket accounting).
    pub first_payloads_repeated: u64,
    /// Flows made by the socket programs (packets written through raw sockets, UDP
    /// datagrams: socket accounting); `flows_created` counts the packet programs' only.
    pub socket_flows_created: u64,
}

/// `struct nf_record_hdr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RecordHdr {
    kind: u32,
    len: u32,
    ts_ns: u64,
    flow: FlowKey,
    pid: u32,
    wire_len: u32,
    comm: [u8; 16],
}

// SAFETY: plain #[repr(C)] structs of integers, every gap an explicit field, valid for
// any bit pattern.
unsafe impl aya::Pod for FlowKey {}
// SAFETY: as above.
unsafe impl aya::Pod for FlowVal {}
// SAFETY: as above.
unsafe impl aya::Pod for OwnerKey {}
// SAFETY: as above.
unsafe impl aya::Pod for OwnerVal {}
// SAFETY: as above.
unsafe impl aya::Pod for NfConfig {}
// SAFETY: as above.
unsafe impl aya::Pod for SegKey {}
// SAFETY: as above.
unsafe impl aya::Pod for SegCidrData {}
// SAFETY: as above.
unsafe impl aya::Pod for NetflowStats {}
// SAFETY: as above.
unsafe impl aya::Pod for RecordHdr {}
// SAFETY: as above.
unsafe impl aya::Pod for NfChange {}
// SAFETY: as above.
unsafe impl aya::Pod for NfWatch {}
// SAFETY: as above.
unsafe impl aya::Pod for NfSockRec {}

/// The C structs of `bpf/netflow/maps.h` this module mirrors, with the size of the
/// Rust mirror (tests/netflow_btf.rs checks them against the object's BTF). The ring
/// records (`nf_record_hdr`) are not listed: clang puts in BTF only the types maps,
/// globals and program signatures reach, and ring records are none of those.
pub const MIRRORS: [(&str, usize); 9] = [
    ("flow_key", std::mem::size_of::<FlowKey>()),
    ("flow_val", std::mem::size_of::<FlowVal>()),
    ("owner_key", std::mem::size_of::<OwnerKey>()),
    ("owner_val", std::mem::size_of::<OwnerVal>()),
    ("nf_config", std::mem::size_of::<NfConfig>()),
    ("seg_key", std::mem::size_of::<SegKey>()),
    // The C key leads with its u32 prefix length, which aya's LPM key adds.
    ("seg_cidr_key", 4 + std::mem::size_of::<SegCidrData>()),
    ("nf_stats", std::mem::size_of::<NetflowStats>()),
    ("nf_watch", std::mem::size_of::<NfWatch>()),
];

/// Who opened a flow, from its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// First seen mid-stream.
    Unknown,
    /// The container connected (or sent the first UDP datagram).
    Local,
    /// The peer did.
    Remote,
}

/// An IP protocol number with a name for the two the table keys by ports.
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// One flow as the kernel counted it, from the container's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFlow {
    pub cgroup_id: u64,
    /// IP protocol number (6 TCP, 17 UDP, …).
    pub proto: u8,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub bytes_out: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub packets_in: u64,
    /// Wall clock, ns since the epoch.
    pub first_ns: u64,
    pub last_ns: u64,
    pub initiator: Initiator,
    /// TCP flags seen egress and ingress (FIN 1, SYN 2, RST 4, ACK 16).
    pub tcp_flags_out: u8,
    pub tcp_flags_in: u8,
}

/// The process that connected to a remote end, from `cgroup/connect4|6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOwner {
    pub cgroup_id: u64,
    pub proto: u8,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub pid: u32,
    pub comm: String,
    pub ts_ns: u64,
}

/// What the netflow programs report besides counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetRecord {
    /// A DNS answer received (UDP from port 53): the DNS message from its header on,
    /// at most [`RECORD_PAYLOAD`] bytes.
    DnsAnswer {
        flow: FlowEnds,
        ts_ns: u64,
        message: Vec<u8>,
    },
    /// The first TLS ClientHello of a flow: the TLS record from its header on.
    TlsClientHello {
        flow: FlowEnds,
        ts_ns: u64,
        record: Vec<u8>,
    },
    /// The first egress payload of a TCP flow that is not a ClientHello: its first
    /// 64 bytes (which protocol it speaks).
    FirstData {
        flow: FlowEnds,
        ts_ns: u64,
        data: Vec<u8>,
    },
    /// A connect refused by segmentation (protect mode).
    ConnectDenied {
        flow: FlowEnds,
        ts_ns: u64,
        pid: u32,
        comm: String,
    },
    /// An inbound connection dropped by segmentation (protect mode).
    InboundDenied { flow: FlowEnds, ts_ns: u64 },
}

/// A packet captured for a container: its bytes from the IP header on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedPacket {
    pub flow: FlowEnds,
    pub ts_ns: u64,
    pub egress: bool,
    /// The packet's full length.
    pub wire_len: u32,
    pub data: Vec<u8>,
}

/// The ends of a flow as a record names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowEnds {
    pub cgroup_id: u64,
    pub proto: u8,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
}

/// Which way a segmentation rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegDirection {
    /// Connections the container opens: to `addr` on `port`.
    Outbound,
    /// Connections to the container: from `addr` to its `port`.
    Inbound,
}

/// One allowed edge of a protected container. `addr` `None`: any address; `port` 0:
/// any port. `prefix_len` below the address's length (32 for IPv4, 128 for IPv6)
/// makes the rule a network's: every address sharing the first `prefix_len` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegRule {
    pub direction: SegDirection,
    pub proto: u8,
    pub addr: Option<IpAddr>,
    pub port: u16,
    pub prefix_len: u8,
}

impl SegRule {
    /// A rule for one address (or any, with `addr` `None`).
    pub fn exact(direction: SegDirection, proto: u8, addr: Option<IpAddr>, port: u16) -> Self {
        Self {
            direction,
            proto,
            addr,
            port,
            prefix_len: addr.map_or(0, full_prefix),
        }
    }

    /// The prefix of the rule's address as the kernel matches it (IPv4 as v4-mapped
    /// IPv6), when the rule is a network's.
    fn network_bits(&self) -> Option<u32> {
        let addr = self.addr?;
        let len = u32::from(self.prefix_len).min(u32::from(full_prefix(addr)));
        if len == u32::from(full_prefix(addr)) {
            return None;
        }
        Some(match addr {
            IpAddr::V4(_) => 96 + len,
            IpAddr::V6(_) => len,
        })
    }
}

fn full_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Where TCP flows are counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accounting {
    /// `cgroup_skb` on every packet of the watched cgroups: UDP counted too, DNS
    /// answers and first payloads read, live counters within a poll.
    #[default]
    Packets,
    /// From the sockets: their counters when they end (`tcp_destroy_sock`, or the
    /// reset of an abortive close) and, for open connections, by an iterator at each
    /// read. No program on the packet path until a capture or protect mode needs
    /// one (then `cgroup_skb` is attached as with packets). DNS answers come from
    /// the resolvers' receive calls (recvfrom, recvmsg, recvmmsg) instead, and each
    /// socket's first payload from tcp_sendmsg (fentry: only where the kernel has
    /// BPF trampolines). No UDP flows.
    Sockets,
}

/// What the kernel side reads beyond counters.
#[derive(Debug, Clone, Copy)]
pub struct NetflowOptions {
    /// Fixed at load: which programs are loaded and attached.
    pub accounting: Accounting,
    pub dns: bool,
    /// The first egress payload of each TCP flow (ClientHellos whole).
    pub tls: bool,
    /// Bytes kept of a captured packet, IP header on; at most [`SNAP_MAX`].
    pub snaplen: u32,
}

impl Default for NetflowOptions {
    fn default() -> Self {
        Self {
            accounting: Accounting::Packets,
            dns: true,
            tls: true,
            // Headers (IPv4 + TCP with options) and the first 128 payload bytes.
            snaplen: 60 + 128,
        }
    }
}

fn map_err(name: &str) -> impl Fn(aya::maps::MapError) -> BpfError + '_ {
    move |e| BpfError::Map {
        name: name.into(),
        reason: e.to_string(),
    }
}

fn prog_err(name: &str) -> impl Fn(aya::programs::ProgramError) -> BpfError + '_ {
    move |source| BpfError::Program {
        name: name.into(),
        source,
    }
}

fn ip_of(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

fn comm_of(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Whether a socket record's connection was opened from this side: its socket did not
/// inherit a listener's backlog (accepted sockets do), and its local port is not one
/// its cgroup listens on (a listener made with backlog 0 passes none on).
fn initiated_here(r: &NfSockRec, listeners: &HashSet<(u64, u16)>) -> bool {
    r.initiator == 1 && !listeners.contains(&(r.key.cgid, r.key.lport))
}

fn ends_of(k: &FlowKey) -> FlowEnds {
    FlowEnds {
        cgroup_id: k.cgid,
        proto: k.proto,
        local: ip_of(k.local),
        local_port: k.lport,
        remote: ip_of(k.remote),
        remote_port: k.rport,
    }
}

fn key_of(e: &FlowEnds) -> FlowKey {
    FlowKey {
        cgid: e.cgroup_id,
        local: ip_bytes(e.local),
        remote: ip_bytes(e.remote),
        lport: e.local_port,
        rport: e.remote_port,
        proto: e.proto,
        pad: [0; 3],
    }
}

/// What one [`NetflowProbe::read_changes`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChangeRead {
    /// Flows the kernel reported changed (each looked up once).
    pub changed: usize,
    /// Reported flows gone from the table before they were read (evicted by the
    /// LRU when full, or expired): their last counters are lost.
    pub gone: usize,
    /// The kernel lost change reports (its ring was full), so the whole table was
    /// read instead.
    pub full_read: bool,
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Reads a `#[repr(C)]` record from the front of a ring buffer item.
fn read_pod<T: aya::Pod + Default>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    let mut out = T::default();
    // SAFETY: T is Pod (any bit pattern valid) and `bytes` holds at least its size.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            (&mut out as *mut T).cast::<u8>(),
            std::mem::size_of::<T>(),
        );
    }
    Some(out)
}

/// The socket accounting tracepoints: program, tracepoint.
const SOCKET_TRACEPOINTS: [(&str, &str); 3] = [
    ("nf_sock_end", "tcp_destroy_sock"),
    ("nf_sock_reset", "tcp_send_reset"),
    ("nf_sock_reset_in", "tcp_receive_reset"),
];
const SOCKET_ITERATOR: &str = "nf_file_iter";
/// Socket accounting's UDP receives, where the kernel has BPF trampolines: fexit on
/// each (program, kernel function), whatever call made them, counting the datagrams
/// (bpf/netflow/udp.h) and reading DNS answers (dns.h). Elsewhere one program on the
/// exit tracepoints of the receive calls glibc and musl use reads the DNS answers.
const UDP_RECEIVE_FEXITS: [(&str, &str); 2] = [
    ("nf_udp_recv4", "udp_recvmsg"),
    ("nf_udp_recv6", "udpv6_recvmsg"),
];
/// The rest of socket accounting's UDP flows: the sends (fexit) and the sockets' ends
/// (fentry), where the kernel has BPF trampolines.
const UDP_SEND_FEXITS: [(&str, &str); 2] = [
    ("nf_udp_send4", "udp_sendmsg"),
    ("nf_udp_send6", "udpv6_sendmsg"),
];
const UDP_END_FENTRIES: [(&str, &str); 2] = [
    ("nf_udp_end4", "udp_destroy_sock"),
    ("nf_udp_end6", "udpv6_destroy_sock"),
];
const DNS_ANSWER_TRACEPOINT_PROGRAM: &str = "nf_dns_answer_tp";
const DNS_ANSWER_TRACEPOINTS: [&str; 3] =
    ["sys_exit_recvfrom", "sys_exit_recvmsg", "sys_exit_recvmmsg"];
/// Socket accounting's first payloads: fentry on tcp_sendmsg (bpf/netflow/first_send.h).
const FIRST_SEND_PROGRAM: &str = "nf_first_send";
/// Socket accounting's packets written whole through raw sockets (a SYN scan's):
/// fentry on the raw sends (program, kernel function; bpf/netflow/raw_send.h).
const RAW_SEND_FENTRIES: [(&str, &str); 2] = [
    ("nf_raw_send4", "raw_sendmsg"),
    ("nf_raw_send6", "rawv6_sendmsg"),
];

/// Which end of a kernel function a tracing program runs at.
#[derive(Clone, Copy)]
enum Traced {
    Entry,
    Exit,
}

/// Loads and attaches a tracing program on a kernel function.
fn attach_traced(
    ebpf: &mut Ebpf,
    btf: &Btf,
    name: &str,
    function: &str,
    at: Traced,
) -> Result<(), BpfError> {
    match at {
        Traced::Entry => {
            let p: &mut FEntry = program_as(ebpf, name)?;
            p.load(function, btf).map_err(prog_err(name))?;
            p.attach().map_err(prog_err(name))?;
        }
        Traced::Exit => {
            let p: &mut FExit = program_as(ebpf, name)?;
            p.load(function, btf).map_err(prog_err(name))?;
            p.attach().map_err(prog_err(name))?;
        }
    }
    Ok(())
}

/// Attaches the programs of one optional reading; each the kernel refuses is logged.
/// True when all were attached.
fn attach_reading<'a>(
    ebpf: &mut Ebpf,
    btf: &Btf,
    reading: &str,
    programs: impl Iterator<Item = (&'a str, &'a str, Traced)>,
) -> bool {
    let mut all = true;
    for (name, function, at) in programs {
        if let Err(e) = attach_traced(ebpf, btf, name, function, at) {
            tracing::warn!(program = name, function, error = %e,
                "socket accounting: {reading} are not read on this kernel");
            all = false;
        }
    }
    all
}

/// The cgroup id of a cgroup v2 directory (its inode number) and its depth below the
/// hierarchy's root (id 1).
fn cgroup_id_and_level(dir: &Path) -> Result<(u64, u32), BpfError> {
    use std::os::unix::fs::MetadataExt;
    let err = |reason: String| BpfError::Map {
        name: "nf_watch".into(),
        reason: format!("{}: {reason}", dir.display()),
    };
    let dir = fs::canonicalize(dir).map_err(|e| err(e.to_string()))?;
    let id = fs::metadata(&dir).map_err(|e| err(e.to_string()))?.ino();
    let mut level = 0u32;
    let mut at = dir.as_path();
    loop {
        if fs::metadata(at).map_err(|e| err(e.to_string()))?.ino() == 1 {
            return Ok((id, level));
        }
        at = at
            .parent()
            .ok_or_else(|| err("not inside a cgroup v2 hierarchy".into()))?;
        level += 1;
    }
}

/// Program `name` of the object, as the kind `T` it must be.
fn program_as<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, BpfError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(aya::programs::ProgramError::NotLoaded)
        .and_then(<&mut T>::try_from)
        .map_err(prog_err(name))
}

fn open_cgroup(dir: &Path) -> Result<fs::File, BpfError> {
    fs::File::open(dir).map_err(|e| BpfError::Map {
        name: "cgroup".into(),
        reason: format!("{}: {e}", dir.display()),
    })
}

/// The `cgroup_skb` programs and the way each attaches.
const PACKET_PROGRAMS: [(&str, CgroupSkbAttachType); 2] = [
    ("nf_egress", CgroupSkbAttachType::Egress),
    ("nf_ingress", CgroupSkbAttachType::Ingress),
];

/// The `cgroup/connect4|6` and `sendmsg4|6` programs: who connected, and protect
/// mode's refusals.
const SOCKADDR_PROGRAMS: [&str; 4] = ["nf_connect4", "nf_connect6", "nf_sendmsg4", "nf_sendmsg6"];

/// A TCP listener's queues, as socket accounting's iterator read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerQueues {
    pub cgroup_id: u64,
    pub port: u16,
    /// Handshakes begun (a SYN in, a SYN-ACK out) and not finished.
    pub half_open: u64,
    /// Connections established and waiting for accept().
    pub waiting: u64,
    /// The kernel warned of a SYN flood on it: its half-open queue filled, and it
    /// answers with SYN cookies (which keep no state to count) since.
    pub syn_flood_warned: bool,
}

/// The loaded netflow programs and their maps.
pub struct NetflowProbe {
    ebpf: Ebpf,
    records: RingBuf<MapData>,
    packets: RingBuf<MapData>,
    changes: RingBuf<MapData>,
    accounting: Accounting,
    /// Socket ends (socket accounting only).
    ends: Option<RingBuf<MapData>>,
    /// Whether first payloads can be read: always per packet; with sockets, where
    /// the kernel has BPF trampolines (fentry on tcp_sendmsg).
    first_payload: bool,
    /// Whether packets written through raw sockets are counted (see
    /// [`NetflowProbe::reads_raw_sends`]).
    raw_sends: bool,
    /// Whether UDP datagrams make flows (see [`NetflowProbe::counts_udp`]).
    udp_flows: bool,
    /// Live connections' counters at the last iteration: only those that moved
    /// since are reported.
    live: HashMap<FlowKey, (u64, u64)>,
    /// Listening TCP sockets and their queues at the last iteration.
    listener_queues: Vec<ListenerQueues>,
    /// Sockets that sent (1) or received (2) a reset, until their end is read: it
    /// ended by that reset, not by a close.
    resets: HashMap<FlowKey, u8>,
    /// The cgroup_skb programs are attached to every directory in `attached`
    /// (always with packet accounting; with sockets, once a capture or protect
    /// mode needs them).
    skb_attached: bool,
    /// What `nf_cfg` holds (the generation, the flags).
    cfg: NfConfig,
    /// Flows reported in the current generation: read again at the next read, as
    /// their later packets in this generation report nothing.
    carry: HashSet<FlowKey>,
    /// `changes_lost` when last read: more means a report went missing.
    changes_lost_seen: u64,
    captured: HashSet<u64>,
    protected: HashSet<u64>,
    attached: Vec<PathBuf>,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC when loaded: the kernel stamps are
    /// monotonic.
    wall_offset_ns: u64,
}

impl NetflowProbe {
    /// Loads the object (from `object`, else the embedded one) and sets what it reads.
    pub fn load(object: Option<&[u8]>, options: NetflowOptions) -> Result<Self, BpfError> {
        crate::check_requirements()?;
        let btf = Btf::from_sys_fs().map_err(|e| BpfError::NoBtf(e.to_string()))?;
        // The socket programs' clock runs on jiffies where the tick rate is known
        // (bpf_jiffies64 costs a load; zero keeps the nanosecond clock).
        let hz = crate::kernel_hz().unwrap_or(0);
        let mut loader = EbpfLoader::new();
        loader.btf(Some(&btf)).override_global("nf_hz", &hz, false);
        let mut ebpf = loader.load(object.unwrap_or(NETFLOW_OBJECT))?;
        let mut ends = None;
        let mut first_payload = options.accounting == Accounting::Packets;
        // The packet programs see raw sockets' packets and UDP as any other.
        let mut raw_sends = options.accounting == Accounting::Packets;
        let mut udp_flows = options.accounting == Accounting::Packets;
        if options.accounting == Accounting::Sockets {
            for (name, tracepoint) in SOCKET_TRACEPOINTS {
                let prog: &mut BtfTracePoint = program_as(&mut ebpf, name)?;
                prog.load(tracepoint, &btf).map_err(prog_err(name))?;
                prog.attach().map_err(prog_err(name))?;
            }
            let iter: &mut Iter = program_as(&mut ebpf, SOCKET_ITERATOR)?;
            iter.load("task_file", &btf)
                .map_err(prog_err(SOCKET_ITERATOR))?;
            // Attached whether or not DNS is read now (a flag in nf_cfg says so).
            // Without trampolines, first payloads are not read (TLS, the protocol a
            // flow speaks) and DNS answers come through the costlier tracepoints.
            let features = crate::probe();
            if features.fentry {
                for (name, function) in UDP_RECEIVE_FEXITS {
                    attach_traced(&mut ebpf, &btf, name, function, Traced::Exit)?;
                }
                attach_traced(
                    &mut ebpf,
                    &btf,
                    FIRST_SEND_PROGRAM,
                    "tcp_sendmsg",
                    Traced::Entry,
                )?;
                first_payload = true;
                // Each of these readings whole or not at all (a flag in nf_cfg turns it
                // on): a kernel that lacks one of its functions, or refuses one of its
                // programs, loses that reading, not the others.
                let udp_programs = UDP_SEND_FEXITS
                    .iter()
                    .map(|(n, f)| (*n, *f, Traced::Exit))
                    .chain(
                        UDP_END_FENTRIES
                            .iter()
                            .map(|(n, f)| (*n, *f, Traced::Entry)),
                    );
                udp_flows = attach_reading(&mut ebpf, &btf, "UDP flows", udp_programs);
                let raw_programs = RAW_SEND_FENTRIES
                    .iter()
                    .map(|(n, f)| (*n, *f, Traced::Entry));
                raw_sends = attach_reading(&mut ebpf, &btf, "raw sockets' packets", raw_programs);
            } else {
                let name = DNS_ANSWER_TRACEPOINT_PROGRAM;
                let dns: &mut TracePoint = program_as(&mut ebpf, name)?;
                dns.load().map_err(prog_err(name))?;
                for tracepoint in DNS_ANSWER_TRACEPOINTS {
                    dns.attach("syscalls", tracepoint).map_err(prog_err(name))?;
                }
                tracing::warn!(
                    reason = features.trampoline_refusal.as_deref().unwrap_or("unknown"),
                    "socket accounting: this kernel refuses BPF trampolines, so no first \
                     payloads (TLS ClientHellos, plaintext protocols) are read, nor DNS \
                     answers a resolver read()s, nor packets written through raw sockets \
                     (a SYN scan), and UDP makes no flows"
                );
            }
        }
        for (name, _) in PACKET_PROGRAMS {
            let p: &mut CgroupSkb = program_as(&mut ebpf, name)?;
            p.load().map_err(prog_err(name))?;
        }
        for name in SOCKADDR_PROGRAMS {
            let p: &mut CgroupSockAddr = program_as(&mut ebpf, name)?;
            p.load().map_err(prog_err(name))?;
        }
        let take_ring = |ebpf: &mut Ebpf, name: &str| -> Result<RingBuf<MapData>, BpfError> {
            let map = ebpf.take_map(name).ok_or_else(|| BpfError::Map {
                name: name.into(),
                reason: "missing from object".into(),
            })?;
            RingBuf::try_from(map).map_err(map_err(name))
        };
        let records = take_ring(&mut ebpf, "nf_records")?;
        let packets = take_ring(&mut ebpf, "nf_packets")?;
        let changes = take_ring(&mut ebpf, "nf_changes")?;
        if options.accounting == Accounting::Sockets {
            ends = Some(take_ring(&mut ebpf, "nf_ends")?);
        }
        let mut probe = Self {
            ebpf,
            records,
            packets,
            changes,
            accounting: options.accounting,
            ends,
            first_payload,
            raw_sends,
            udp_flows,
            live: Default::default(),
            listener_queues: Vec::new(),
            resets: Default::default(),
            skb_attached: options.accounting == Accounting::Packets,
            cfg: NfConfig::default(),
            carry: Default::default(),
            changes_lost_seen: 0,
            captured: Default::default(),
            protected: Default::default(),
            attached: Vec::new(),
            wall_offset_ns: clock_ns(libc::CLOCK_REALTIME)
                .saturating_sub(clock_ns(libc::CLOCK_MONOTONIC)),
        };
        probe.set_options(options)?;
        Ok(probe)
    }

    /// Changes what the kernel side reads (takes effect at once).
    /// The accounting fixed at load stays.
    pub fn set_options(&mut self, options: NetflowOptions) -> Result<(), BpfError> {
        let mut flags = self.cfg.flags & (CFG_CAPTURE | CFG_PROTECT | CFG_PACKETS);
        if self.accounting == Accounting::Sockets && self.udp_flows {
            flags |= CFG_UDP;
        }
        if self.accounting == Accounting::Sockets && self.raw_sends {
            flags |= CFG_RAW;
        }
        if self.accounting == Accounting::Sockets {
            flags |= CFG_SOCKETS;
        }
        if options.dns {
            flags |= CFG_DNS;
        }
        if options.tls {
            flags |= CFG_TLS;
        }
        self.cfg.flags = flags;
        self.cfg.snaplen = options.snaplen.clamp(20, SNAP_MAX as u32);
        self.write_cfg()
    }

    fn write_cfg(&mut self) -> Result<(), BpfError> {
        let value = self.cfg;
        let mut cfg: Array<&mut MapData, NfConfig> = self.array_mut("nf_cfg")?;
        cfg.set(0, value, 0).map_err(map_err("nf_cfg"))
    }

    /// Sets or clears a flag that lets the programs skip a map lookup per packet.
    fn set_flag(&mut self, flag: u32, on: bool) -> Result<(), BpfError> {
        let flags = if on {
            self.cfg.flags | flag
        } else {
            self.cfg.flags & !flag
        };
        if flags != self.cfg.flags {
            self.cfg.flags = flags;
            self.write_cfg()?;
        }
        Ok(())
    }

    /// Attaches the programs to a cgroup v2 directory: every socket of a cgroup at or
    /// below it is counted. Attaching the same directory twice does nothing. With
    /// socket accounting the directory is watched by the socket programs instead of
    /// getting `cgroup_skb` ones (at most [`MAX_WATCHED_DIRS`] directories).
    pub fn attach(&mut self, cgroup_dir: &Path) -> Result<(), BpfError> {
        if self.attached.iter().any(|d| d == cgroup_dir) {
            return Ok(());
        }
        if self.accounting == Accounting::Sockets {
            let slot = self.cfg.watched;
            if slot as usize >= MAX_WATCHED_DIRS {
                return Err(BpfError::Map {
                    name: "nf_watch".into(),
                    reason: format!(
                        "{}: socket accounting watches at most {MAX_WATCHED_DIRS} cgroup directories",
                        cgroup_dir.display()
                    ),
                });
            }
            let (id, level) = cgroup_id_and_level(cgroup_dir)?;
            let mut watch: Array<&mut MapData, NfWatch> = self.array_mut("nf_watch")?;
            watch
                .set(slot, NfWatch { id, level, pad: 0 }, 0)
                .map_err(map_err("nf_watch"))?;
            self.cfg.watched = slot + 1;
            self.write_cfg()?;
        }
        self.attach_programs(cgroup_dir, self.skb_attached)?;
        self.attached.push(cgroup_dir.to_path_buf());
        Ok(())
    }

    /// The `cgroup/connect` and `sendmsg` programs, then the `cgroup_skb` ones if `skb`.
    fn attach_programs(&mut self, cgroup_dir: &Path, skb: bool) -> Result<(), BpfError> {
        let cgroup = open_cgroup(cgroup_dir)?;
        // aya attaches through BPF links, which the kernel always runs beside other
        // programs (multi-attach) and which refuse attach flags: hence `Single`.
        for name in SOCKADDR_PROGRAMS {
            let p: &mut CgroupSockAddr = program_as(&mut self.ebpf, name)?;
            p.attach(&cgroup, CgroupAttachMode::Single)
                .map_err(prog_err(name))?;
        }
        if skb {
            self.attach_packet_programs(cgroup_dir)?;
        }
        Ok(())
    }

    /// With socket accounting, a capture or protect mode needs the packet programs:
    /// attached to every watched directory the first time.
    fn need_packet_programs(&mut self) -> Result<(), BpfError> {
        if self.skb_attached {
            return Ok(());
        }
        for dir in self.attached.clone() {
            self.attach_packet_programs(&dir)?;
        }
        self.skb_attached = true;
        // They count raw sockets' packets from now on, not raw_send.h.
        self.set_flag(CFG_PACKETS, true)
    }

    fn attach_packet_programs(&mut self, cgroup_dir: &Path) -> Result<(), BpfError> {
        let cgroup = open_cgroup(cgroup_dir)?;
        for (name, kind) in PACKET_PROGRAMS {
            let p: &mut CgroupSkb = program_as(&mut self.ebpf, name)?;
            p.attach(&cgroup, kind, CgroupAttachMode::Single)
                .map_err(prog_err(name))?;
        }
        Ok(())
    }

    /// The cgroup directories the programs are attached to.
    pub fn attached(&self) -> &[PathBuf] {
        &self.attached
    }

    /// Kernel monotonic ns to wall-clock ns since the epoch.
    pub fn wall_ns(&self, mono_ns: u64) -> u64 {
        mono_ns.saturating_add(self.wall_offset_ns)
    }

    fn kernel_flow(&self, k: &FlowKey, v: &FlowVal) -> KernelFlow {
        let e = ends_of(k);
        KernelFlow {
            cgroup_id: k.cgid,
            proto: k.proto,
            local: e.local,
            local_port: k.lport,
            remote: e.remote,
            remote_port: k.rport,
            bytes_out: v.bytes_out,
            packets_out: v.pkts_out,
            bytes_in: v.bytes_in,
            packets_in: v.pkts_in,
            first_ns: self.wall_ns(v.first_ns),
            last_ns: self.wall_ns(v.last_ns),
            initiator: match v.initiator {
                1 => Initiator::Local,
                2 => Initiator::Remote,
                _ => Initiator::Unknown,
            },
            tcp_flags_out: (v.flags & 0xff) as u8,
            tcp_flags_in: ((v.flags >> 8) & 0xff) as u8,
        }
    }

    /// Every flow in the kernel's table: two system calls per entry, so for
    /// one-off reads (`rampart net --live`, tests); a node reads
    /// [`Self::read_changes`].
    pub fn flows(&self) -> Result<Vec<KernelFlow>, BpfError> {
        let map: BpfHashMap<&MapData, FlowKey, FlowVal> = self.hash("nf_flows")?;
        let mut out = Vec::new();
        for entry in map.iter() {
            // An entry evicted while iterating ends that entry, not the walk.
            let Ok((k, v)) = entry else { continue };
            out.push(self.kernel_flow(&k, &v));
        }
        Ok(out)
    }

    /// The flows that changed since the last call (their current counters, into
    /// `out`): the programs report each flow once per call in a ring, so this costs
    /// one lookup per changed flow, whatever the table's size and however many of
    /// its flows are idle. Should the ring have overflowed, the whole table is read.
    pub fn read_changes(&mut self, out: &mut Vec<KernelFlow>) -> Result<ChangeRead, BpfError> {
        // A new generation first: a packet from now on reports its flow again, so
        // nothing after the drain below goes unreported.
        self.cfg.gen = self.cfg.gen.wrapping_add(1);
        self.write_cfg()?;
        let gen = self.cfg.gen;
        let mut keys = std::mem::take(&mut self.carry);
        while let Some(item) = self.changes.next() {
            let Some(c) = read_pod::<NfChange>(&item) else {
                continue;
            };
            if c.gen == gen {
                self.carry.insert(c.key);
            }
            keys.insert(c.key);
        }
        let lost = self.stats()?.changes_lost;
        let mut read = ChangeRead::default();
        if self.accounting == Accounting::Sockets {
            read.changed += self.read_sockets(out)?;
        }
        if lost > self.changes_lost_seen {
            self.changes_lost_seen = lost;
            read.full_read = true;
            let all = self.flows()?;
            read.changed += all.len();
            out.extend(all);
            return Ok(read);
        }
        let map: BpfHashMap<&MapData, FlowKey, FlowVal> = self.hash("nf_flows")?;
        for k in &keys {
            match map.get(k, 0) {
                Ok(v) => {
                    read.changed += 1;
                    out.push(self.kernel_flow(k, &v));
                }
                Err(_) => read.gone += 1,
            }
        }
        Ok(read)
    }

    /// Socket accounting: the sockets that ended since the last read, then the open
    /// connections whose counters moved (and the listeners) from the iterator.
    /// Returns how many flows it added to `out`.
    fn read_sockets(&mut self, out: &mut Vec<KernelFlow>) -> Result<usize, BpfError> {
        let before = out.len();
        let mut ended = Vec::new();
        if let Some(ring) = self.ends.as_mut() {
            while let Some(item) = ring.next() {
                if let Some(r) = read_pod::<NfSockRec>(&item) {
                    ended.push(r);
                }
            }
        }
        let iterated = self.iterate_sockets()?;
        // The listeners first: a connection on a listening port was accepted, whatever
        // its listener's backlog said (see `initiated_here`).
        self.listener_queues.clear();
        self.listener_queues
            .extend(
                iterated
                    .iter()
                    .filter(|r| r.end == END_LISTENING)
                    .map(|r| ListenerQueues {
                        cgroup_id: r.key.cgid,
                        port: r.key.lport,
                        half_open: r.segs_in,
                        waiting: r.bytes_in,
                        syn_flood_warned: r.srtt_us != 0,
                    }),
            );
        let listeners: HashSet<(u64, u16)> = self
            .listener_queues
            .iter()
            .map(|q| (q.cgroup_id, q.port))
            .collect();
        for r in &ended {
            self.live.remove(&r.key);
            let reset = match r.end {
                END_RESET | END_RESET_IN => {
                    // Bounded: each entry goes when its socket's end is read.
                    if self.resets.len() >= 65536 {
                        self.resets.clear();
                    }
                    let bits = self.resets.entry(r.key).or_default();
                    *bits |= if r.end == END_RESET { 1 } else { 2 };
                    *bits
                }
                // Its only report: the connect's disconnect zeroes the socket.
                END_REFUSED => 2,
                // An orphan's end, which its received reset closed.
                END_RESET_IN_CLOSED => self.resets.remove(&r.key).unwrap_or(0) | 2,
                _ => self.resets.remove(&r.key).unwrap_or(0),
            };
            if r.end == END_RESET_IN {
                // Names the connection only: its end follows with the counters.
                continue;
            }
            out.push(self.socket_flow(r, reset, &listeners));
        }
        let mut live = HashMap::with_capacity(self.live.len());
        for r in iterated.iter().filter(|r| r.end == END_LIVE) {
            let counters = (r.bytes_out, r.bytes_in);
            if self.live.get(&r.key) != Some(&counters) {
                out.push(self.socket_flow(r, 0, &listeners));
            }
            live.insert(r.key, counters);
        }
        self.live = live;
        Ok(out.len() - before)
    }

    /// One run of the socket iterator: every TCP socket of a watched cgroup that a
    /// process holds, open connections and listeners.
    fn iterate_sockets(&mut self) -> Result<Vec<NfSockRec>, BpfError> {
        let iter: &mut Iter = program_as(&mut self.ebpf, SOCKET_ITERATOR)?;
        let link = iter.attach().map_err(prog_err(SOCKET_ITERATOR))?;
        let link = iter.take_link(link).map_err(prog_err(SOCKET_ITERATOR))?;
        let mut file = link.into_file().map_err(|e| BpfError::Map {
            name: SOCKET_ITERATOR.into(),
            reason: e.to_string(),
        })?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| BpfError::Map {
            name: SOCKET_ITERATOR.into(),
            reason: e.to_string(),
        })?;
        Ok(bytes
            .chunks_exact(std::mem::size_of::<NfSockRec>())
            .filter_map(read_pod::<NfSockRec>)
            .collect())
    }

    /// A socket's record as a flow, with the TCP flags its state implies: a connect
    /// answered (an RTT sample) saw SYN and ACK both ways; one never answered only
    /// its SYN, or a reset back if a segment came (refused); `reset` (1 sent, 2
    /// received) puts RST on the flow, any other end FIN both ways.
    fn socket_flow(&self, r: &NfSockRec, reset: u8, listeners: &HashSet<(u64, u16)>) -> KernelFlow {
        const FIN: u8 = 1;
        const SYN: u8 = 2;
        const RST: u8 = 4;
        const ACK: u8 = 16;
        let local = initiated_here(r, listeners);
        let answered = !local || r.srtt_us > 0;
        let (mut out_flags, mut in_flags) = if local { (SYN, 0) } else { (SYN | ACK, SYN) };
        if answered {
            out_flags |= ACK;
            in_flags |= if local { SYN | ACK } else { ACK };
        } else if r.segs_in > 0 {
            in_flags |= RST;
        }
        if reset & 1 != 0 {
            out_flags |= RST;
        }
        if reset & 2 != 0 {
            in_flags |= RST;
        }
        if reset == 0 && r.end != END_LIVE && answered {
            out_flags |= FIN;
            in_flags |= FIN;
        }
        let e = ends_of(&r.key);
        let ts = self.wall_ns(r.ts_ns);
        KernelFlow {
            cgroup_id: r.key.cgid,
            proto: r.key.proto,
            local: e.local,
            local_port: r.key.lport,
            remote: e.remote,
            remote_port: r.key.rport,
            bytes_out: r.bytes_out,
            packets_out: r.segs_out,
            bytes_in: r.bytes_in,
            packets_in: r.segs_in,
            first_ns: ts,
            last_ns: ts,
            initiator: if local {
                Initiator::Local
            } else {
                Initiator::Remote
            },
            tcp_flags_out: out_flags,
            tcp_flags_in: in_flags,
        }
    }

    /// Whether the kernel side can read each TCP flow's first payload (TLS
    /// ClientHellos, the protocol it speaks): with socket accounting only where the
    /// kernel has BPF trampolines.
    pub fn reads_first_payload(&self) -> bool {
        self.first_payload
    }

    /// Whether packets processes write whole through raw sockets (a SYN scan, forged
    /// sources) are counted as flows: always per packet; with socket accounting only
    /// where the kernel has BPF trampolines (fentry on the raw sends).
    pub fn reads_raw_sends(&self) -> bool {
        self.raw_sends
    }

    /// Whether UDP datagrams make flows: always per packet; with socket accounting
    /// only where the kernel has BPF trampolines (fexit on the UDP sends and
    /// receives, counted per socket and added to the flow table once a second, at a
    /// change of peer and at the socket's end).
    pub fn counts_udp(&self) -> bool {
        self.udp_flows
    }

    /// Socket accounting: the TCP listeners at the last read, by cgroup and port,
    /// with their queues (a SYN flood against one fills its half-open queue).
    pub fn listener_queues(&self) -> &[ListenerQueues] {
        &self.listener_queues
    }

    /// Takes a flow out of the kernel's table (user space expired it).
    pub fn remove_flow(&mut self, ends: &FlowEnds) -> Result<(), BpfError> {
        let key = key_of(ends);
        self.carry.remove(&key);
        let mut map: BpfHashMap<&mut MapData, FlowKey, FlowVal> = self.hash_mut("nf_flows")?;
        // Already gone (evicted) is as good as removed.
        let _ = map.remove(&key);
        Ok(())
    }

    /// The process that last connected from cgroup `cgroup_id` to `remote`:`port`
    /// (one lookup; [`Self::owners`] reads them all).
    pub fn owner(
        &self,
        cgroup_id: u64,
        proto: u8,
        remote: IpAddr,
        remote_port: u16,
    ) -> Result<Option<ConnectOwner>, BpfError> {
        let map: BpfHashMap<&MapData, OwnerKey, OwnerVal> = self.hash("nf_owners")?;
        let key = OwnerKey {
            cgid: cgroup_id,
            remote: ip_bytes(remote),
            rport: remote_port,
            proto,
            pad: [0; 5],
        };
        Ok(map.get(&key, 0).ok().map(|v| ConnectOwner {
            cgroup_id,
            proto,
            remote,
            remote_port,
            pid: v.pid,
            comm: comm_of(&v.comm),
            ts_ns: self.wall_ns(v.ts_ns),
        }))
    }

    /// Removes flows last seen before `mono_cutoff_wall_ns` (wall clock) from the
    /// kernel's table; returns how many.
    pub fn expire_flows(&mut self, before_wall_ns: u64) -> Result<usize, BpfError> {
        let stale: Vec<FlowKey> = {
            let map: BpfHashMap<&MapData, FlowKey, FlowVal> = self.hash("nf_flows")?;
            map.iter()
                .filter_map(Result::ok)
                .filter(|(_, v)| self.wall_ns(v.last_ns) < before_wall_ns)
                .map(|(k, _)| k)
                .collect()
        };
        let mut map: BpfHashMap<&mut MapData, FlowKey, FlowVal> = self.hash_mut("nf_flows")?;
        let mut n = 0;
        for k in stale {
            if map.remove(&k).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The processes that connected, by remote end.
    pub fn owners(&self) -> Result<Vec<ConnectOwner>, BpfError> {
        let map: BpfHashMap<&MapData, OwnerKey, OwnerVal> = self.hash("nf_owners")?;
        Ok(map
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v)| ConnectOwner {
                cgroup_id: k.cgid,
                proto: k.proto,
                remote: ip_of(k.remote),
                remote_port: k.rport,
                pid: v.pid,
                comm: comm_of(&v.comm),
                ts_ns: self.wall_ns(v.ts_ns),
            })
            .collect())
    }

    /// Drains the DNS/TLS/denial records the kernel has queued.
    pub fn read_records(&mut self, out: &mut Vec<NetRecord>) {
        let offset = self.wall_offset_ns;
        while let Some(item) = self.records.next() {
            let Some(h) = read_pod::<RecordHdr>(&item) else {
                continue;
            };
            let flow = ends_of(&h.flow);
            let ts_ns = h.ts_ns.saturating_add(offset);
            let payload = || {
                let start = std::mem::size_of::<RecordHdr>();
                let end = (start + h.len as usize).min(item.len());
                item.get(start..end).unwrap_or_default().to_vec()
            };
            out.push(match h.kind {
                REC_DNS => NetRecord::DnsAnswer {
                    flow,
                    ts_ns,
                    message: payload(),
                },
                REC_TLS => NetRecord::TlsClientHello {
                    flow,
                    ts_ns,
                    record: payload(),
                },
                REC_FIRST_DATA => NetRecord::FirstData {
                    flow,
                    ts_ns,
                    data: payload(),
                },
                REC_DENY_CONNECT => NetRecord::ConnectDenied {
                    flow,
                    ts_ns,
                    pid: h.pid,
                    comm: comm_of(&h.comm),
                },
                REC_DENY_INBOUND => NetRecord::InboundDenied { flow, ts_ns },
                _ => continue,
            });
        }
    }

    /// Drains the packets captured for the cgroups being captured.
    pub fn read_packets(&mut self, out: &mut Vec<CapturedPacket>) {
        let offset = self.wall_offset_ns;
        while let Some(item) = self.packets.next() {
            let Some(h) = read_pod::<RecordHdr>(&item) else {
                continue;
            };
            if h.kind != REC_PACKET {
                continue;
            }
            let start = std::mem::size_of::<RecordHdr>();
            let end = (start + h.len as usize).min(item.len());
            out.push(CapturedPacket {
                flow: ends_of(&h.flow),
                ts_ns: h.ts_ns.saturating_add(offset),
                egress: h.pid == 1,
                wire_len: h.wire_len,
                data: item.get(start..end).unwrap_or_default().to_vec(),
            });
        }
    }

    /// Starts or stops capturing a cgroup's packets.
    pub fn set_capture(&mut self, cgroup_id: u64, on: bool) -> Result<(), BpfError> {
        if on {
            self.need_packet_programs()?;
        }
        {
            let mut map: BpfHashMap<&mut MapData, u64, u32> = self.hash_mut("nf_capture")?;
            if on {
                map.insert(cgroup_id, 1, 0).map_err(map_err("nf_capture"))?;
            } else {
                let _ = map.remove(&cgroup_id);
            }
        }
        if on {
            self.captured.insert(cgroup_id);
        } else {
            self.captured.remove(&cgroup_id);
        }
        self.set_flag(CFG_CAPTURE, !self.captured.is_empty())
    }

    /// Protect mode for a cgroup: only `allowed` edges may begin (connects refused,
    /// inbound SYNs dropped otherwise). Replaces what the cgroup had.
    pub fn protect(&mut self, cgroup_id: u64, allowed: &[SegRule]) -> Result<(), BpfError> {
        // Inbound connections are judged on their SYN.
        self.need_packet_programs()?;
        self.clear_rules(cgroup_id)?;
        let dir_of = |r: &SegRule| match r.direction {
            SegDirection::Outbound => 1,
            SegDirection::Inbound => 2,
        };
        {
            let mut allow: BpfHashMap<&mut MapData, SegKey, u8> = self.hash_mut("nf_allow")?;
            for r in allowed.iter().filter(|r| r.network_bits().is_none()) {
                let key = SegKey {
                    cgid: cgroup_id,
                    addr: r.addr.map(ip_bytes).unwrap_or_default(),
                    port: r.port,
                    proto: r.proto,
                    dir: dir_of(r),
                    pad: 0,
                };
                allow.insert(key, 1, 0).map_err(map_err("nf_allow"))?;
            }
        }
        {
            let mut networks = self.cidr_mut()?;
            for r in allowed {
                let (Some(bits), Some(addr)) = (r.network_bits(), r.addr) else {
                    continue;
                };
                let data = SegCidrData {
                    cgid_lo: cgroup_id as u32,
                    cgid_hi: (cgroup_id >> 32) as u32,
                    port: r.port,
                    proto: r.proto,
                    dir: dir_of(r),
                    addr: ip_bytes(addr),
                };
                networks
                    .insert(&LpmKey::new(SEG_CIDR_EXACT_BITS + bits, data), 1, 0)
                    .map_err(map_err("nf_allow_cidr"))?;
            }
        }
        // Last: the programs act on the cgroup only once its baseline is complete.
        {
            let mut protect: BpfHashMap<&mut MapData, u64, u32> = self.hash_mut("nf_protect")?;
            protect
                .insert(cgroup_id, 1, 0)
                .map_err(map_err("nf_protect"))?;
        }
        self.protected.insert(cgroup_id);
        self.set_flag(CFG_PROTECT, true)
    }

    /// Ends protect mode for a cgroup.
    pub fn unprotect(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        {
            let mut protect: BpfHashMap<&mut MapData, u64, u32> = self.hash_mut("nf_protect")?;
            let _ = protect.remove(&cgroup_id);
        }
        self.protected.remove(&cgroup_id);
        self.set_flag(CFG_PROTECT, !self.protected.is_empty())?;
        self.clear_rules(cgroup_id)
    }

    fn clear_rules(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        let keys: Vec<SegKey> = {
            let allow: BpfHashMap<&MapData, SegKey, u8> = self.hash("nf_allow")?;
            allow
                .keys()
                .filter_map(Result::ok)
                .filter(|k| k.cgid == cgroup_id)
                .collect()
        };
        let mut allow: BpfHashMap<&mut MapData, SegKey, u8> = self.hash_mut("nf_allow")?;
        for k in keys {
            let _ = allow.remove(&k);
        }
        let mut networks = self.cidr_mut()?;
        let (lo, hi) = (cgroup_id as u32, (cgroup_id >> 32) as u32);
        let keys: Vec<LpmKey<SegCidrData>> = networks
            .keys()
            .filter_map(Result::ok)
            .filter(|k| {
                let d = k.data();
                d.cgid_lo == lo && d.cgid_hi == hi
            })
            .collect();
        for k in keys {
            let _ = networks.remove(&k);
        }
        Ok(())
    }

    fn cidr_mut(&mut self) -> Result<LpmTrie<&mut MapData, SegCidrData, u8>, BpfError> {
        let map = self
            .ebpf
            .map_mut("nf_allow_cidr")
            .ok_or_else(|| BpfError::Map {
                name: "nf_allow_cidr".into(),
                reason: "missing from object".into(),
            })?;
        LpmTrie::try_from(map).map_err(map_err("nf_allow_cidr"))
    }

    /// The programs' counters, summed over CPUs.
    pub fn stats(&self) -> Result<NetflowStats, BpfError> {
        let map = self.ebpf.map("nf_stats").ok_or_else(|| BpfError::Map {
            name: "nf_stats".into(),
            reason: "missing from object".into(),
        })?;
        let arr: PerCpuArray<&MapData, NetflowStats> =
            PerCpuArray::try_from(map).map_err(map_err("nf_stats"))?;
        let per_cpu = arr.get(&0, 0).map_err(map_err("nf_stats"))?;
        let mut s = NetflowStats::default();
        for c in per_cpu.iter() {
            s.flows_created += c.flows_created;
            s.flow_update_failed += c.flow_update_failed;
            s.records_lost += c.records_lost;
            s.connects_denied += c.connects_denied;
            s.inbound_denied += c.inbound_denied;
            s.packets_captured += c.packets_captured;
            s.changes_lost += c.changes_lost;
            s.socket_ends_lost += c.socket_ends_lost;
            s.first_payloads_repeated += c.first_payloads_repeated;
            s.socket_flows_created += c.socket_flows_created;
        }
        Ok(s)
    }

    fn hash<K: aya::Pod, V: aya::Pod>(
        &self,
        name: &str,
    ) -> Result<BpfHashMap<&MapData, K, V>, BpfError> {
        let map = self.ebpf.map(name).ok_or_else(|| BpfError::Map {
            name: name.into(),
            reason: "missing from object".into(),
        })?;
        BpfHashMap::try_from(map).map_err(map_err(name))
    }

    fn hash_mut<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &str,
    ) -> Result<BpfHashMap<&mut MapData, K, V>, BpfError> {
        let map = self.ebpf.map_mut(name).ok_or_else(|| BpfError::Map {
            name: name.into(),
            reason: "missing from object".into(),
        })?;
        BpfHashMap::try_from(map).map_err(map_err(name))
    }

    fn array_mut<V: aya::Pod>(&mut self, name: &str) -> Result<Array<&mut MapData, V>, BpfError> {
        let map = self.ebpf.map_mut(name).ok_or_else(|| BpfError::Map {
            name: name.into(),
            reason: "missing from object".into(),
        })?;
        Array::try_from(map).map_err(map_err(name))
    }
}
