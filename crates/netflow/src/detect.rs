//! Network threat detectors, each with MITRE ATT&CK ids, over the flow table, the DNS
//! answers and the first payload of flows the kernel read:
//!
//! | rule | MITRE | fires on |
//! |---|---|---|
//! | Port scan (vertical / horizontal) | T1046 | one source trying many ports of one host, or one port of many hosts, in a window |
//! | Connection flood / SYN flood | T1498, T1499 | many new connections to (or from) one endpoint in a window; many left unanswered |
//! | DNS tunnelling | T1071.004, T1048 | long or high-entropy labels, TXT/NULL bursts, many unique names under one domain |
//! | Algorithmically generated domains | T1568.002 | several random-looking names queried in a window |
//! | Cloud metadata access | T1552.005 | a workload reaching 169.254.169.254 that did not while it was learned |
//! | TLS fingerprint denied / TLS to a bare IP | T1071.001, T1573 | a JA4 on the deny list; no SNI from a workload that always sent one |
//! | Plaintext protocol on an unusual port | T1571, T1496 | SSH, HTTP or the stratum miner protocol on a port that another protocol owns |
//!
//! Thresholds are configuration; each rule fires once per source and target per
//! suppression window, with a count of what it folded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use rampart_event::{Alert, Container, Event, L4Proto, Payload, Priority, SockAddr, Workload};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::directory::Directory;
use crate::dns::{DnsMessage, TYPE_NULL, TYPE_TXT};
use crate::flow::{Direction, Flow, Proto};
use crate::table::FlowTable;
use crate::tls::ClientHello;

const NS: u64 = 1_000_000_000;

/// The detectors' thresholds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    pub scan_window_secs: u64,
    /// Distinct ports of one host (vertical scan).
    pub scan_ports: usize,
    /// Distinct hosts on one port (horizontal scan).
    pub scan_hosts: usize,
    pub flood_window_secs: u64,
    /// New connections between one source and one endpoint.
    pub flood_connections: usize,
    /// Of them, unanswered SYNs.
    pub syn_flood_unanswered: usize,
    pub dns_window_secs: u64,
    /// A label this long is suspicious.
    pub dns_long_label: usize,
    /// A label of at least 16 characters with this Shannon entropy (bits/char) is.
    pub dns_label_entropy: f64,
    /// Suspicious names under one domain in the window before an alert.
    pub dns_suspicious_names: usize,
    /// TXT/NULL queries to one domain in the window.
    pub dns_txt_burst: usize,
    /// Unique names under one domain in the window.
    pub dns_unique_names: usize,
    /// Random-looking names in the window before a DGA alert.
    pub dga_names: usize,
    /// Workloads allowed to reach the cloud metadata service.
    pub metadata_allowed: Vec<String>,
    /// JA4 fingerprints that alert.
    pub ja4_deny: Vec<String>,
    /// TLS flows with a name a workload needs before TLS to a bare IP alerts.
    pub tls_names_before_bare_ip: usize,
    pub suppress_secs: u64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            scan_window_secs: 10,
            scan_ports: 25,
            scan_hosts: 25,
            flood_window_secs: 5,
            flood_connections: 1000,
            syn_flood_unanswered: 300,
            dns_window_secs: 60,
            dns_long_label: 40,
            dns_label_entropy: 3.9,
            dns_suspicious_names: 10,
            dns_txt_burst: 30,
            dns_unique_names: 150,
            dga_names: 5,
            metadata_allowed: Vec::new(),
            ja4_deny: Vec::new(),
            tls_names_before_bare_ip: 5,
            suppress_secs: 60,
        }
    }
}

/// What a detector found.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub rule: &'static str,
    pub priority: Priority,
    pub mitre: Vec<&'static str>,
    pub message: String,
    pub fields: BTreeMap<String, serde_json::Value>,
    pub cgroup_id: u64,
    /// The connection it is about, when one.
    pub flow: Option<FlowRef>,
    pub ts_ns: u64,
}

/// The connection an alert names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRef {
    pub proto: Proto,
    pub local: (IpAddr, u16),
    pub remote: (IpAddr, u16),
    pub pid: u32,
    pub comm: String,
}

impl FlowRef {
    pub fn of(f: &Flow) -> Self {
        Self {
            proto: f.proto,
            local: (f.local_ip, f.local_port),
            remote: (f.remote_ip, f.remote_port),
            pid: f.process.as_ref().map(|p| p.pid).unwrap_or(0),
            comm: f
                .process
                .as_ref()
                .map(|p| p.comm.clone())
                .unwrap_or_default(),
        }
    }
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    if n == 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

/// The registered domain of a name, approximated as its last two labels (three when
/// the second-level one is a short public suffix such as `co.uk`).
pub fn registered_domain(name: &str) -> &str {
    let name = name.trim_end_matches('.');
    let dots: Vec<usize> = name.match_indices('.').map(|(i, _)| i).collect();
    let n = dots.len();
    if n < 2 {
        return name;
    }
    let sld = &name[dots[n - 2] + 1..dots[n - 1]];
    let keep = if n >= 3 && matches!(sld, "co" | "com" | "net" | "org" | "ac" | "gov" | "edu") {
        3
    } else {
        2
    };
    if n >= keep {
        &name[dots[n - keep] + 1..]
    } else {
        name
    }
}

/// A name label looks machine-made: long and random (few vowels, long consonant
/// runs, digits mixed with letters, high entropy).
pub fn looks_generated(label: &str) -> bool {
    let l = label.to_ascii_lowercase();
    if l.len() < 10 || !l.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let vowels = l.bytes().filter(|b| b"aeiouy".contains(b)).count();
    let digits = l.bytes().filter(u8::is_ascii_digit).count();
    let letters = l.len() - digits;
    let mut run = 0;
    let mut max_run = 0;
    for b in l.bytes() {
        if b.is_ascii_alphabetic() && !b"aeiouy".contains(&b) {
            run += 1;
            max_run = max_run.max(run);
        } else {
            run = 0;
        }
    }
    let vowel_ratio = vowels as f64 / letters.max(1) as f64;
    let e = entropy(&l);
    e >= 3.0
        && (vowel_ratio < 0.22
            || max_run >= 5
            || (digits >= 3 && letters >= 3 && digits * 5 >= l.len()))
}

fn is_metadata(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.octets() == [169, 254, 169, 254],
        IpAddr::V6(a) => a.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254],
    }
}

/// The protocol a flow's first bytes speak, if one of those checked.
pub fn plaintext_protocol(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(b"SSH-") {
        return Some("ssh");
    }
    const METHODS: [&[u8]; 7] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"CONNECT ",
    ];
    if METHODS.iter().any(|m| data.starts_with(m)) && data.windows(6).any(|w| w == b"HTTP/1") {
        return Some("http");
    }
    let text = String::from_utf8_lossy(data);
    if text.trim_start().starts_with('{') && text.contains("\"mining.") {
        return Some("stratum");
    }
    None
}

/// True when `proto` on `port` is out of place: SSH off 22/2222, HTTP on a port
/// another protocol owns, the miner protocol anywhere.
fn unusual_port(proto: &str, port: u16) -> bool {
    const OTHERS_PORTS: [u16; 12] = [21, 22, 23, 25, 53, 110, 143, 443, 465, 993, 995, 5432];
    match proto {
        "ssh" => !matches!(port, 22 | 2222),
        "http" => OTHERS_PORTS.contains(&port),
        _ => true,
    }
}

#[derive(Default, Debug)]
struct DnsDomainState {
    suspicious: HashSet<String>,
    txt: usize,
    names: HashSet<String>,
    since_ns: u64,
}

/// The detectors and what they remember.
#[derive(Debug, Default)]
pub struct Detectors {
    pub config: DetectorConfig,
    /// (source cgroup, host) → ports, window start.
    vertical: HashMap<(u64, IpAddr), (HashSet<u16>, u64)>,
    /// (source cgroup, port) → hosts, window start.
    horizontal: HashMap<(u64, u16), (HashSet<IpAddr>, u64)>,
    /// (cgroup, registered domain) → state.
    dns: HashMap<(u64, String), DnsDomainState>,
    /// cgroup → (generated names, window start).
    dga: HashMap<u64, (HashSet<String>, u64)>,
    /// Workloads seen using the metadata service while learning.
    metadata_users: HashSet<String>,
    /// workload → (TLS flows with a name, without).
    tls_names: HashMap<String, (usize, usize)>,
    /// (rule, subject) → last fired.
    fired: HashMap<(&'static str, String), u64>,
}

impl Detectors {
    pub fn new(config: DetectorConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    fn once(&mut self, rule: &'static str, subject: String, now: u64) -> bool {
        let window = self.config.suppress_secs * NS;
        match self.fired.get(&(rule, subject.clone())) {
            Some(t) if now < t + window => false,
            _ => {
                self.fired.insert((rule, subject), now);
                true
            }
        }
    }

    /// A new flow. `learning`: its workload's baseline is still being discovered
    /// (what it does now is its normal).
    pub fn on_flow(&mut self, f: &Flow, learning: bool, now: u64) -> Vec<Detection> {
        let mut out = Vec::new();
        let c = self.config.clone();
        if f.direction == Direction::Outbound && matches!(f.proto, Proto::Tcp | Proto::Udp) {
            let w = c.scan_window_secs * NS;
            let (ports, start) = self
                .vertical
                .entry((f.cgroup_id, f.remote_ip))
                .or_insert_with(|| (HashSet::new(), now));
            if now > *start + w {
                ports.clear();
                *start = now;
            }
            ports.insert(f.remote_port);
            let n = ports.len();
            if n >= c.scan_ports
                && self.once(
                    "Port scan (vertical)",
                    format!("{}|{}", f.cgroup_id, f.remote_ip),
                    now,
                )
            {
                out.push(detection(
                    "Port scan (vertical)",
                    Priority::Warning,
                    &["T1046", "TA0007"],
                    format!(
                        "{} tried {n} ports of {} within {}s (last {}/{}, process {})",
                        who(f),
                        f.remote_ip,
                        c.scan_window_secs,
                        f.proto.name(),
                        f.remote_port,
                        proc_name(f)
                    ),
                    f,
                    [("net.ports_tried", json!(n))],
                    now,
                ));
            }
            let (hosts, start) = self
                .horizontal
                .entry((f.cgroup_id, f.remote_port))
                .or_insert_with(|| (HashSet::new(), now));
            if now > *start + w {
                hosts.clear();
                *start = now;
            }
            hosts.insert(f.remote_ip);
            let n = hosts.len();
            if n >= c.scan_hosts
                && self.once(
                    "Port scan (horizontal)",
                    format!("{}|{}", f.cgroup_id, f.remote_port),
                    now,
                )
            {
                out.push(detection(
                    "Port scan (horizontal)",
                    Priority::Warning,
                    &["T1046", "TA0007"],
                    format!(
                        "{} tried port {}/{} on {n} hosts within {}s (process {})",
                        who(f),
                        f.proto.name(),
                        f.remote_port,
                        c.scan_window_secs,
                        proc_name(f)
                    ),
                    f,
                    [("net.hosts_tried", json!(n))],
                    now,
                ));
            }
        }
        if f.direction == Direction::Outbound && is_metadata(&f.remote_ip) {
            if learning {
                self.metadata_users.insert(f.workload.clone());
            } else if !self.metadata_users.contains(&f.workload)
                && !c.metadata_allowed.contains(&f.workload)
                && self.once("Cloud metadata access", f.workload.clone(), now)
            {
                out.push(detection(
                    "Cloud metadata access",
                    Priority::Warning,
                    &["T1552.005", "TA0006"],
                    format!(
                        "{} connected to the cloud metadata service {}:{} (process {}); it never did while learned",
                        who(f),
                        f.remote_ip,
                        f.remote_port,
                        proc_name(f)
                    ),
                    f,
                    [],
                    now,
                ));
            }
        }
        out
    }

    /// A listener of `f`'s container on `port` with `half_open` handshakes begun and
    /// not finished, from `sources` addresses when known (the packet path counts them;
    /// a listener's queue does not say), `warned` once the kernel found its queue full
    /// (it answers with SYN cookies since, which it keeps no count of): a SYN flood
    /// against it at `syn_flood_unanswered` or when warned.
    pub fn on_half_open(
        &mut self,
        f: &Flow,
        port: u16,
        half_open: u64,
        sources: Option<usize>,
        warned: bool,
        now: u64,
    ) -> Vec<Detection> {
        const RULE: &str = "SYN flood";
        if half_open < self.config.syn_flood_unanswered as u64 && !warned {
            return Vec::new();
        }
        if !self.once(RULE, format!("{}|true|*|{port}", f.cgroup_id), now) {
            return Vec::new();
        }
        let from = match sources {
            Some(n) => format!(" from {n} addresses"),
            None => String::new(),
        };
        let cookies = if warned {
            "; its queue is full and the kernel answers with SYN cookies"
        } else {
            ""
        };
        vec![detection(
            RULE,
            Priority::Warning,
            &["T1498", "T1499", "TA0040"],
            format!(
                "{RULE}: {half_open} half-open connections{from} → {} port {port}{cookies}",
                who(f)
            ),
            f,
            [
                ("net.half_open", json!(half_open)),
                ("net.sources", json!(sources)),
                ("net.syn_cookies", json!(warned)),
                ("net.inbound", json!(true)),
            ],
            now,
        )]
    }

    /// Looks at the flows that began in the flood window (call once per poll).
    pub fn on_poll(&mut self, table: &FlowTable, now: u64) -> Vec<Detection> {
        let c = self.config.clone();
        let since = now.saturating_sub(c.flood_window_secs * NS);
        // (cgroup, inbound, remote ip, service port) → (flows, unanswered, a flow).
        type Groups<'a> = HashMap<(u64, bool, IpAddr, u16), (usize, usize, &'a Flow)>;
        let mut groups: Groups = HashMap::new();
        // (cgroup, service port) → (half-open inbound handshakes, their sources, one):
        // a SYN flood from forged addresses spreads over them.
        let mut half_open: HashMap<(u64, u16), (u64, HashSet<IpAddr>, &Flow)> = HashMap::new();
        for f in table.recent_flows(since) {
            if f.first_ns < since || f.proto != Proto::Tcp || f.direction == Direction::Unknown {
                continue;
            }
            let inbound = f.direction == Direction::Inbound;
            let key = (f.cgroup_id, inbound, f.remote_ip, f.service_port());
            let g = groups.entry(key).or_insert((0, 0, f));
            g.0 += 1;
            if f.tcp_unanswered() || (inbound && f.tcp_flags_out & 16 == 0) {
                g.1 += 1;
            }
            // Their SYN and nothing after it.
            if inbound && f.tcp_flags_in & 2 != 0 && f.tcp_flags_in & 16 == 0 {
                let h = half_open.entry((f.cgroup_id, f.service_port())).or_insert((
                    0,
                    HashSet::new(),
                    f,
                ));
                h.0 += 1;
                h.1.insert(f.remote_ip);
            }
        }
        let mut out = Vec::new();
        for ((_, port), (n, sources, f)) in half_open {
            out.extend(self.on_half_open(f, port, n, Some(sources.len()), false, now));
        }
        for ((cgid, inbound, ip, port), (n, unanswered, f)) in groups {
            let (rule, hit) = if unanswered >= c.syn_flood_unanswered {
                ("SYN flood", true)
            } else {
                ("Connection flood", n >= c.flood_connections)
            };
            if !hit || !self.once(rule, format!("{cgid}|{inbound}|{ip}|{port}"), now) {
                continue;
            }
            let what = if inbound {
                format!("{ip} → {} port {port}", who(f))
            } else {
                format!("{} → {ip}:{port}", who(f))
            };
            out.push(detection(
                rule,
                Priority::Warning,
                &["T1498", "T1499", "TA0040"],
                format!(
                    "{rule}: {n} new connections ({unanswered} unanswered) {what} within {}s",
                    c.flood_window_secs
                ),
                f,
                [
                    ("net.connections", json!(n)),
                    ("net.unanswered", json!(unanswered)),
                    ("net.inbound", json!(inbound)),
                ],
                now,
            ));
        }
        let window = c.scan_window_secs * NS;
        self.vertical.retain(|_, (_, s)| now <= *s + window);
        self.horizontal.retain(|_, (_, s)| now <= *s + window);
        let dns_window = c.dns_window_secs * NS;
        self.dns.retain(|_, s| now <= s.since_ns + dns_window);
        self.dga.retain(|_, (_, s)| now <= *s + dns_window);
        let suppress = c.suppress_secs * NS;
        self.fired.retain(|_, t| now <= *t + suppress);
        out
    }

    /// A DNS answer container `cgroup_id` (workload `workload`) received.
    pub fn on_dns(
        &mut self,
        cgroup_id: u64,
        workload: &str,
        msg: &DnsMessage,
        server: Option<(IpAddr, u16)>,
        now: u64,
    ) -> Vec<Detection> {
        let c = self.config.clone();
        let mut out = Vec::new();
        for (name, qtype) in &msg.questions {
            let domain = registered_domain(name).to_string();
            let sub = name.strip_suffix(domain.as_str()).unwrap_or("");
            let labels: Vec<&str> = sub.split('.').filter(|l| !l.is_empty()).collect();
            let suspicious = labels.iter().any(|l| {
                l.len() >= c.dns_long_label || (l.len() >= 16 && entropy(l) >= c.dns_label_entropy)
            });
            let st = self.dns.entry((cgroup_id, domain.clone())).or_default();
            if st.since_ns == 0 || now > st.since_ns + c.dns_window_secs * NS {
                *st = DnsDomainState {
                    since_ns: now,
                    ..Default::default()
                };
            }
            if suspicious {
                st.suspicious.insert(name.clone());
            }
            if matches!(*qtype, TYPE_TXT | TYPE_NULL) {
                st.txt += 1;
            }
            if st.names.len() <= c.dns_unique_names {
                st.names.insert(name.clone());
            }
            let (ns, txt, uniq) = (st.suspicious.len(), st.txt, st.names.len());
            let why = if ns >= c.dns_suspicious_names {
                Some(format!("{ns} long or high-entropy names"))
            } else if txt >= c.dns_txt_burst {
                Some(format!("{txt} TXT/NULL queries"))
            } else if uniq > c.dns_unique_names {
                Some(format!("more than {} unique names", c.dns_unique_names))
            } else {
                None
            };
            if let Some(why) = why {
                if self.once("DNS tunnelling", format!("{cgroup_id}|{domain}"), now) {
                    let mut d = Detection {
                        rule: "DNS tunnelling",
                        priority: Priority::Warning,
                        mitre: vec!["T1071.004", "T1048", "TA0010"],
                        message: format!(
                            "{workload} queried {why} under {domain} within {}s (e.g. {name})",
                            c.dns_window_secs
                        ),
                        fields: BTreeMap::new(),
                        cgroup_id,
                        flow: server.map(|(ip, port)| FlowRef {
                            proto: Proto::Udp,
                            local: (IpAddr::from([0, 0, 0, 0]), 0),
                            remote: (ip, port),
                            pid: 0,
                            comm: String::new(),
                        }),
                        ts_ns: now,
                    };
                    d.fields.insert("dns.domain".into(), json!(domain));
                    d.fields.insert("dns.query".into(), json!(name));
                    out.push(d);
                }
            }
            let first = name.split('.').next().unwrap_or("");
            let sld = domain.split('.').next().unwrap_or("");
            if looks_generated(sld) || (labels.len() == 1 && looks_generated(first)) {
                let (names, start) = self
                    .dga
                    .entry(cgroup_id)
                    .or_insert_with(|| (HashSet::new(), now));
                if now > *start + c.dns_window_secs * NS {
                    names.clear();
                    *start = now;
                }
                names.insert(domain.clone());
                let n = names.len();
                if n >= c.dga_names
                    && self.once(
                        "Algorithmically generated domains",
                        cgroup_id.to_string(),
                        now,
                    )
                {
                    let mut d = Detection {
                        rule: "Algorithmically generated domains",
                        priority: Priority::Warning,
                        mitre: vec!["T1568.002", "TA0011"],
                        message: format!(
                            "{workload} queried {n} random-looking domains within {}s (e.g. {domain})",
                            c.dns_window_secs
                        ),
                        fields: BTreeMap::new(),
                        cgroup_id,
                        flow: None,
                        ts_ns: now,
                    };
                    d.fields.insert("dns.domain".into(), json!(domain));
                    out.push(d);
                }
            }
        }
        out
    }

    /// A flow's ClientHello.
    pub fn on_tls(&mut self, f: &Flow, hello: &ClientHello, now: u64) -> Vec<Detection> {
        let mut out = Vec::new();
        if self.config.ja4_deny.contains(&hello.ja4)
            && self.once(
                "TLS fingerprint denied",
                format!("{}|{}", f.cgroup_id, hello.ja4),
                now,
            )
        {
            out.push(detection(
                "TLS fingerprint denied",
                Priority::Error,
                &["T1071.001", "T1573", "TA0011"],
                format!(
                    "{} sent a TLS ClientHello with the denied JA4 {} to {}:{} (SNI {}, process {})",
                    who(f),
                    hello.ja4,
                    f.remote_ip,
                    f.remote_port,
                    hello.sni.as_deref().unwrap_or("none"),
                    proc_name(f)
                ),
                f,
                [("tls.ja4", json!(hello.ja4))],
                now,
            ));
        }
        let counts = self.tls_names.entry(f.workload.clone()).or_default();
        if hello.sni.is_some() {
            counts.0 += 1;
        } else {
            let named = counts.0;
            counts.1 += 1;
            if counts.1 == 1
                && named >= self.config.tls_names_before_bare_ip
                && self.once(
                    "TLS to a bare IP",
                    format!("{}|{}", f.workload, f.remote_ip),
                    now,
                )
            {
                out.push(detection(
                    "TLS to a bare IP",
                    Priority::Notice,
                    &["T1573", "TA0011"],
                    format!(
                        "{} opened TLS to the bare address {}:{} without a server name, after {named} connections that named theirs (process {})",
                        who(f),
                        f.remote_ip,
                        f.remote_port,
                        proc_name(f)
                    ),
                    f,
                    [("tls.ja4", json!(hello.ja4))],
                    now,
                ));
            }
        }
        out
    }

    /// A flow's first egress bytes (not TLS).
    pub fn on_first_data(&mut self, f: &Flow, data: &[u8], now: u64) -> Vec<Detection> {
        let Some(proto) = plaintext_protocol(data) else {
            return Vec::new();
        };
        let port = f.remote_port;
        if !unusual_port(proto, port)
            || !self.once(
                "Plaintext protocol on an unusual port",
                format!("{}|{proto}|{port}", f.cgroup_id),
                now,
            )
        {
            return Vec::new();
        }
        let mitre: &[&'static str] = if proto == "stratum" {
            &["T1496", "T1571", "TA0040"]
        } else {
            &["T1571", "TA0011"]
        };
        vec![detection(
            "Plaintext protocol on an unusual port",
            if proto == "stratum" {
                Priority::Error
            } else {
                Priority::Warning
            },
            mitre,
            format!(
                "{} spoke {proto} to {}:{port}, a port {proto} does not own (process {})",
                who(f),
                f.remote_ip,
                proc_name(f)
            ),
            f,
            [("net.l7_protocol", json!(proto))],
            now,
        )]
    }
}

fn who(f: &Flow) -> String {
    if f.workload.is_empty() {
        format!("cgroup {}", f.cgroup_id)
    } else {
        f.workload.clone()
    }
}

fn proc_name(f: &Flow) -> String {
    f.process
        .as_ref()
        .map(|p| format!("{}[{}]", p.comm, p.pid))
        .unwrap_or_else(|| "unknown".into())
}

fn detection<const N: usize>(
    rule: &'static str,
    priority: Priority,
    mitre: &[&'static str],
    message: String,
    f: &Flow,
    extra: [(&str, serde_json::Value); N],
    now: u64,
) -> Detection {
    let mut fields = BTreeMap::new();
    fields.insert("net.proto".into(), json!(f.proto.name()));
    fields.insert(
        "net.remote".into(),
        json!(format!("{}:{}", f.remote_ip, f.remote_port)),
    );
    fields.insert(
        "net.local".into(),
        json!(format!("{}:{}", f.local_ip, f.local_port)),
    );
    fields.insert("net.workload".into(), json!(f.workload));
    for (k, v) in extra {
        fields.insert(k.into(), v);
    }
    Detection {
        rule,
        priority,
        mitre: mitre.to_vec(),
        message,
        fields,
        cgroup_id: f.cgroup_id,
        flow: Some(FlowRef::of(f)),
        ts_ns: now,
    }
}

fn sock(ip: IpAddr, port: u16) -> SockAddr {
    if ip.is_ipv4() {
        SockAddr::Inet { ip, port }
    } else {
        SockAddr::Inet6 { ip, port }
    }
}

/// An alert id unique enough across a node's life: time and a counter.
fn alert_id(ts_ns: u64) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{ts_ns:016x}{:08x}{n:08x}", std::process::id())
}

/// The alert of a detection, with the container from the directory and the
/// connection as a `net_connect` event.
pub fn to_alert(d: &Detection, dir: &Directory, host: &str) -> Alert {
    let container = match dir.container(d.cgroup_id) {
        Some(c) => Workload::Container(Container {
            id: c.id.clone(),
            cgroup_id: c.cgroup_id,
            runtime: "docker".into(),
            name: c.name.clone(),
            image: c.image.clone(),
            labels: c.labels.clone(),
            metadata_complete: true,
            ..Default::default()
        }),
        None => Workload::Host {
            cgroup_id: d.cgroup_id,
        },
    };
    let (payload, process) = match &d.flow {
        Some(f) => (
            Payload::NetConnect {
                proto: match f.proto {
                    Proto::Tcp => L4Proto::Tcp,
                    Proto::Udp => L4Proto::Udp,
                    Proto::Other(_) => L4Proto::Other,
                },
                local: Some(sock(f.local.0, f.local.1)),
                remote: sock(f.remote.0, f.remote.1),
                ret: 0,
            },
            (f.pid != 0).then(|| {
                Arc::new(rampart_event::Process {
                    pid: f.pid,
                    tid: f.pid,
                    comm: f.comm.clone(),
                    ..Default::default()
                })
            }),
        ),
        None => (
            Payload::NetConnect {
                proto: L4Proto::Other,
                local: None,
                remote: SockAddr::Other { number: 0 },
                ret: 0,
            },
            None,
        ),
    };
    let event = Event {
        schema: rampart_event::SCHEMA_VERSION,
        ts_ns: d.ts_ns,
        host: Arc::from(host),
        seq: 0,
        process,
        container: Arc::new(container),
        compat_syscall: false,
        payload,
    };
    Alert {
        id: alert_id(d.ts_ns),
        ts_ns: d.ts_ns,
        first_ts_ns: d.ts_ns,
        count: 1,
        rule: d.rule.to_string(),
        priority: d.priority,
        mitre: d.mitre.iter().map(|m| m.to_string()).collect(),
        tags: vec!["network".into()],
        message: d.message.clone(),
        output_fields: d.fields.clone(),
        source: "netflow".into(),
        event,
        retro: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_differ_from_real_ones() {
        for benign in [
            "google",
            "facebook",
            "wikipedia",
            "stackoverflow",
            "microsoftonline",
            "cloudflare",
            "amazonaws",
            "githubusercontent",
            "debian",
            "kubernetes",
        ] {
            assert!(!looks_generated(benign), "{benign}");
        }
        for dga in [
            "xjwqkzpfhtbv",
            "qzxkvbnmtrpl",
            "a8f7d9s6k2l3",
            "kq3zx9w7v2nt",
        ] {
            assert!(looks_generated(dga), "{dga}");
        }
    }

    #[test]
    fn registered_domains_and_entropy() {
        assert_eq!(registered_domain("a.b.example.com"), "example.com");
        assert_eq!(registered_domain("x.bbc.co.uk"), "bbc.co.uk");
        assert_eq!(registered_domain("localhost"), "localhost");
        assert!(entropy("aaaaaaaa") < 0.1);
        assert!(entropy("q8z1x7w2v9k3m4n5") > 3.9);
    }

    #[test]
    fn plaintext_protocols_are_told_apart() {
        assert_eq!(plaintext_protocol(b"SSH-2.0-OpenSSH_9.2\r\n"), Some("ssh"));
        assert_eq!(
            plaintext_protocol(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Some("http")
        );
        assert_eq!(
            plaintext_protocol(br#"{"id":1,"method":"mining.subscribe","params":[]}"#),
            Some("stratum")
        );
        assert_eq!(plaintext_protocol(b"\x16\x03\x01"), None);
        assert!(unusual_port("ssh", 443) && !unusual_port("ssh", 22));
        assert!(unusual_port("http", 443) && !unusual_port("http", 8080));
    }

    #[test]
    fn dns_tunnelling_fires_on_long_txt_bursts_not_on_ordinary_lookups() {
        let mut d = Detectors::new(DetectorConfig::default());
        let mut fired = Vec::new();
        for i in 0..40 {
            let msg = DnsMessage {
                questions: vec![(format!("www{i}.example.com"), crate::dns::TYPE_A)],
                ..Default::default()
            };
            fired.extend(d.on_dns(1, "web", &msg, None, i * NS));
        }
        assert!(fired.is_empty(), "{fired:?}");
        for i in 0..12u64 {
            let label = format!(
                "{:x}{:x}",
                (i + 1).wrapping_mul(0x9e3779b97f4a7c15),
                (i + 7).wrapping_mul(0xc2b2ae3d27d4eb4f)
            );
            let msg = DnsMessage {
                questions: vec![(format!("{label}{label}.t.exfil.test"), TYPE_TXT)],
                ..Default::default()
            };
            fired.extend(d.on_dns(2, "job", &msg, None, i * NS));
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].rule, "DNS tunnelling");
        assert!(
            fired[0].message.contains("exfil.test"),
            "{}",
            fired[0].message
        );
    }
}
