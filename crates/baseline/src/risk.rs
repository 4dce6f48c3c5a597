//! Risk ranking: a score per workload and its breakdown, from what is known about it:
//! active alerts (severity, count, age), vulnerabilities (severity, and whether the
//! package is in use at runtime), exposure (listening ports, ingress, external
//! destinations), privileges (privileged, added capabilities, host mounts and
//! namespaces, root, the Docker socket) and baseline deviations.
//!
//! The weights are a plain sum of points so an operator can read why one workload
//! ranks above another; each factor says what it counted.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rampart_event::{Priority, Severity};
use serde::Serialize;

use crate::model::{Baseline, ItemKind};
use crate::store::AlertRow;

/// Capabilities that amount to root on the host or close to it.
const DANGEROUS_CAPS: [&str; 8] = [
    "SYS_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "DAC_READ_SEARCH",
    "NET_ADMIN",
    "SYS_RAWIO",
    "BPF",
    "ALL",
];

/// Host paths whose mount gives a container the host.
const HOST_PATHS: [&str; 8] = [
    "/", "/etc", "/proc", "/sys", "/root", "/var/lib", "/dev", "/boot",
];

/// A container's privileges, read from `docker inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Privileges {
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub docker_socket: bool,
    pub host_mounts: Vec<String>,
    /// `pid`, `net`, `ipc`, `uts` shared with the host.
    pub host_namespaces: Vec<String>,
    pub root: bool,
    /// Ports published on the host.
    pub published_ports: Vec<String>,
}

impl Privileges {
    /// Reads the fields of `docker inspect CONTAINER` (one object, Docker's names).
    pub fn from_inspect(v: &serde_json::Value) -> Self {
        let hc = &v["HostConfig"];
        let mut p = Privileges {
            privileged: hc["Privileged"].as_bool().unwrap_or(false),
            cap_add: hc["CapAdd"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str())
                        .map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase())
                        .collect()
                })
                .unwrap_or_default(),
            ..Self::default()
        };
        let mut sources: Vec<String> = Vec::new();
        if let Some(mounts) = v["Mounts"].as_array() {
            for m in mounts {
                if m["Type"].as_str() == Some("bind") {
                    if let Some(s) = m["Source"].as_str() {
                        sources.push(s.to_string());
                    }
                }
            }
        }
        if let Some(binds) = hc["Binds"].as_array() {
            for b in binds.iter().filter_map(|b| b.as_str()) {
                let src = b.split(':').next().unwrap_or(b);
                if !sources.iter().any(|s| s == src) {
                    sources.push(src.to_string());
                }
            }
        }
        for s in sources {
            if s.ends_with("/docker.sock") || s.ends_with("/containerd.sock") {
                p.docker_socket = true;
            } else if HOST_PATHS.contains(&s.trim_end_matches('/'))
                || HOST_PATHS.contains(&s.as_str())
            {
                p.host_mounts.push(s);
            }
        }
        for (ns, key) in [
            ("pid", "PidMode"),
            ("net", "NetworkMode"),
            ("ipc", "IpcMode"),
            ("uts", "UTSMode"),
        ] {
            if hc[key].as_str() == Some("host") {
                p.host_namespaces.push(ns.to_string());
            }
        }
        let user = v["Config"]["User"].as_str().unwrap_or("");
        p.root = user.is_empty() || user == "0" || user == "root" || user.starts_with("0:");
        if let Some(ports) = v["NetworkSettings"]["Ports"].as_object() {
            for (port, binding) in ports {
                if binding.as_array().is_some_and(|b| !b.is_empty()) {
                    p.published_ports.push(port.clone());
                }
            }
        }
        p
    }
}

/// A vulnerability of a workload's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vuln {
    pub id: String,
    pub severity: Severity,
    /// Whether its package is loaded at runtime; `None` when unknown.
    pub in_use: Option<bool>,
}

/// What is known about one workload.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RiskInput {
    pub workload: String,
    pub alerts: Vec<AlertRow>,
    pub vulnerabilities: Vec<Vuln>,
    /// One per container (the worst is counted).
    pub privileges: Vec<Privileges>,
    /// Ports it listens on (from its baseline's `listen` and `in` edges).
    pub listening: Vec<String>,
    /// External (non-private) destinations it connects to.
    pub external_destinations: Vec<String>,
    pub deviations: u64,
}

impl RiskInput {
    /// Fills exposure and deviations from a workload's baseline.
    pub fn with_baseline(mut self, b: &Baseline) -> Self {
        self.deviations = b.deviations;
        if let Some(net) = b.items.get(&ItemKind::Network) {
            let mut keys: Vec<&String> = net.keys().collect();
            keys.sort();
            for k in keys {
                if let Some(port) = k.strip_prefix("listen ") {
                    self.listening.push(port.to_string());
                } else if let Some(dest) = k.strip_prefix("out ") {
                    if is_external(dest) {
                        self.external_destinations.push(dest.to_string());
                    }
                }
            }
        }
        self
    }
}

fn is_external(dest: &str) -> bool {
    // `tcp 1.2.3.4:443`
    let addr = dest.split_once(' ').map_or(dest, |(_, a)| a);
    let ip = addr.rsplit_once(':').map_or(addr, |(ip, _)| ip);
    match ip.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            !(v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified())
        }
        Ok(IpAddr::V6(v6)) => {
            !(v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00)
        }
        Err(_) => false,
    }
}

/// One part of a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Factor {
    /// `alerts`, `vulnerabilities`, `exposure`, `privileges`, `deviations`.
    pub name: &'static str,
    pub points: f64,
    pub detail: String,
}

/// A workload's score and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadRisk {
    pub workload: String,
    pub score: f64,
    pub factors: Vec<Factor>,
}

fn alert_points(p: Priority) -> f64 {
    match p.severity() {
        Severity::Critical => 25.0,
        Severity::High => 15.0,
        Severity::Medium => 8.0,
        Severity::Low => 3.0,
        Severity::Unknown => 0.5,
    }
}

fn vuln_points(s: Severity) -> f64 {
    match s {
        Severity::Critical => 10.0,
        Severity::High => 6.0,
        Severity::Medium => 2.0,
        Severity::Low => 0.5,
        Severity::Unknown => 0.2,
    }
}

/// Scores one workload at `now_ns`.
pub fn score(input: &RiskInput, now_ns: u64) -> WorkloadRisk {
    let mut factors = Vec::new();
    // Alerts: by severity, more for more (logarithmically), halved per day of age.
    let mut pts = 0.0;
    let mut by_priority: BTreeMap<Priority, u64> = BTreeMap::new();
    for a in &input.alerts {
        let age_days = now_ns.saturating_sub(a.last_ns) as f64 / 86_400e9;
        pts += alert_points(a.priority) * (1.0 + (a.count as f64).log2()) * 0.5f64.powf(age_days);
        *by_priority.entry(a.priority).or_default() += a.count;
    }
    if pts > 0.0 {
        let detail = by_priority
            .iter()
            .map(|(p, n)| format!("{n} {}", p.falco_name()))
            .collect::<Vec<_>>()
            .join(", ");
        factors.push(Factor {
            name: "alerts",
            points: pts.min(60.0),
            detail,
        });
    }
    // Vulnerabilities: packages in use count fully, unknown half, unused a tenth.
    let mut pts = 0.0;
    let (mut used, mut unknown, mut unused) = (0, 0, 0);
    for v in &input.vulnerabilities {
        let (w, n) = match v.in_use {
            Some(true) => (1.0, &mut used),
            None => (0.5, &mut unknown),
            Some(false) => (0.1, &mut unused),
        };
        *n += 1;
        pts += vuln_points(v.severity) * w;
    }
    if !input.vulnerabilities.is_empty() {
        factors.push(Factor {
            name: "vulnerabilities",
            points: pts.min(30.0),
            detail: format!(
                "{} ({used} in use, {unknown} unknown, {unused} not loaded)",
                input.vulnerabilities.len()
            ),
        });
    }
    // Exposure.
    let published: Vec<&String> = input
        .privileges
        .iter()
        .flat_map(|p| &p.published_ports)
        .collect();
    let pts = 2.0 * input.listening.len().min(5) as f64
        + 5.0 * published.len().min(4) as f64
        + 3.0 * input.external_destinations.len().min(5) as f64;
    if pts > 0.0 {
        let mut parts = Vec::new();
        if !input.listening.is_empty() {
            parts.push(format!("listens on {}", input.listening.join(", ")));
        }
        if !published.is_empty() {
            parts.push(format!(
                "published {}",
                published
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !input.external_destinations.is_empty() {
            parts.push(format!(
                "connects out to {}",
                input.external_destinations.join(", ")
            ));
        }
        factors.push(Factor {
            name: "exposure",
            points: pts,
            detail: parts.join("; "),
        });
    }
    // Privileges: the worst container of the workload.
    let mut best: Option<(f64, Vec<String>)> = None;
    for p in &input.privileges {
        let mut pts = 0.0;
        let mut why = Vec::new();
        if p.privileged {
            pts += 30.0;
            why.push("privileged".to_string());
        }
        let dangerous: Vec<&String> = p
            .cap_add
            .iter()
            .filter(|c| DANGEROUS_CAPS.contains(&c.as_str()))
            .collect();
        if !dangerous.is_empty() {
            pts += 12.0 * dangerous.len().min(2) as f64;
            why.push(format!(
                "capabilities {}",
                dangerous
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else if !p.cap_add.is_empty() {
            pts += 3.0;
            why.push(format!("capabilities {}", p.cap_add.join(", ")));
        }
        if p.docker_socket {
            pts += 25.0;
            why.push("Docker socket mounted".into());
        }
        if !p.host_mounts.is_empty() {
            pts += 15.0;
            why.push(format!("host paths {}", p.host_mounts.join(", ")));
        }
        if !p.host_namespaces.is_empty() {
            pts += 8.0 * p.host_namespaces.len() as f64;
            why.push(format!("host namespaces {}", p.host_namespaces.join(", ")));
        }
        if p.root {
            pts += 3.0;
            why.push("runs as root".into());
        }
        if best.as_ref().is_none_or(|(b, _)| pts > *b) {
            best = Some((pts, why));
        }
    }
    if let Some((pts, why)) = best.filter(|(p, _)| *p > 0.0) {
        factors.push(Factor {
            name: "privileges",
            points: pts,
            detail: why.join(", "),
        });
    }
    if input.deviations > 0 {
        factors.push(Factor {
            name: "deviations",
            points: (4.0 * (1.0 + (input.deviations as f64).log2())).min(20.0),
            detail: format!("{} outside the baseline", input.deviations),
        });
    }
    WorkloadRisk {
        workload: input.workload.clone(),
        score: (factors.iter().map(|f| f.points).sum::<f64>() * 10.0).round() / 10.0,
        factors,
    }
}

/// Scores every workload, highest first (ties by name).
pub fn rank(inputs: &[RiskInput], now_ns: u64) -> Vec<WorkloadRisk> {
    let mut out: Vec<WorkloadRisk> = inputs.iter().map(|i| score(i, now_ns)).collect();
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.workload.cmp(&b.workload))
    });
    out
}

/// The vulnerabilities of a scanner report (`<scanner state>/containers/<id>.json`):
/// id, severity and the in-use verdict.
pub fn vulns_from_report(report: &serde_json::Value) -> Vec<Vuln> {
    report["vulnerabilities"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| Vuln {
                    id: v["id"].as_str().unwrap_or_default().to_string(),
                    severity: v["severity"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(Severity::Unknown),
                    in_use: match v["in_use"]["state"].as_str() {
                        Some("true") => Some(true),
                        Some("false") => Some(false),
                        _ => None,
                    },
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Gathers what is known about every workload: its baseline (exposure, deviations),
/// the alerts counted for it, and for each of its containers that still exists
/// (`inspect` returns Docker's inspect object, `None` when it is gone) its privileges
/// and, from the scanner's reports under `scanner_state` when given, its image's
/// vulnerabilities.
pub fn gather(
    store: &dyn crate::BaselineStore,
    inspect: &mut dyn FnMut(&str) -> Option<serde_json::Value>,
    scanner_state: Option<&std::path::Path>,
) -> Result<Vec<RiskInput>, crate::StoreError> {
    let mut inputs: BTreeMap<String, RiskInput> = BTreeMap::new();
    let get = |inputs: &mut BTreeMap<String, RiskInput>, w: &str| {
        if !inputs.contains_key(w) {
            inputs.insert(
                w.to_string(),
                RiskInput {
                    workload: w.to_string(),
                    ..RiskInput::default()
                },
            );
        }
    };
    for (b, _) in store.load_all()? {
        get(&mut inputs, &b.workload);
        if let Some(i) = inputs.remove(&b.workload) {
            inputs.insert(b.workload.clone(), i.with_baseline(&b));
        }
    }
    for a in store.alerts()? {
        get(&mut inputs, &a.workload);
        if let Some(i) = inputs.get_mut(&a.workload) {
            i.alerts.push(a);
        }
    }
    for c in store.containers()? {
        let Some(v) = inspect(&c.container_id) else {
            continue;
        };
        get(&mut inputs, &c.workload);
        let Some(i) = inputs.get_mut(&c.workload) else {
            continue;
        };
        i.privileges.push(Privileges::from_inspect(&v));
        if let Some(dir) = scanner_state {
            let path = dir
                .join("containers")
                .join(format!("{}.json", c.container_id));
            if let Some(report) = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            {
                for v in vulns_from_report(&report) {
                    if !i.vulnerabilities.iter().any(|x| x.id == v.id) {
                        i.vulnerabilities.push(v);
                    }
                }
            }
        }
    }
    Ok(inputs.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_reports_give_vulnerabilities_with_in_use() {
        let r = serde_json::json!({"vulnerabilities": [
            {"id": "CVE-1", "severity": "critical", "in_use": {"state": "true"}},
            {"id": "CVE-2", "severity": "low", "in_use": {"state": "false"}},
            {"id": "CVE-3", "severity": "high"}
        ]});
        let v = vulns_from_report(&r);
        assert_eq!(v.len(), 3);
        assert_eq!(
            (v[0].severity, v[0].in_use),
            (Severity::Critical, Some(true))
        );
        assert_eq!(v[1].in_use, Some(false));
        assert_eq!(v[2].in_use, None);
    }

    #[test]
    fn privileges_are_read_from_docker_inspect() {
        let v = serde_json::json!({
            "HostConfig": {"Privileged": false, "CapAdd": ["CAP_SYS_ADMIN", "chown"],
                "Binds": ["/var/run/docker.sock:/var/run/docker.sock", "/etc:/host/etc:ro"],
                "PidMode": "host", "NetworkMode": "bridge"},
            "Config": {"User": ""},
            "Mounts": [],
            "NetworkSettings": {"Ports": {"80/tcp": [{"HostPort": "8080"}], "81/tcp": null}}
        });
        let p = Privileges::from_inspect(&v);
        assert_eq!(p.cap_add, ["SYS_ADMIN", "CHOWN"]);
        assert!(p.docker_socket && p.root);
        assert_eq!(p.host_mounts, ["/etc"]);
        assert_eq!(p.host_namespaces, ["pid"]);
        assert_eq!(p.published_ports, ["80/tcp"]);
    }

    #[test]
    fn a_privileged_workload_with_an_alert_ranks_above_an_idle_one_and_says_why() {
        let now = 1_000 * 86_400_000_000_000;
        let risky = RiskInput {
            workload: "compose:x/admin".into(),
            alerts: vec![AlertRow {
                workload: "compose:x/admin".into(),
                rule: "Terminal shell in container".into(),
                priority: Priority::Notice,
                count: 1,
                first_ns: now,
                last_ns: now,
            }],
            privileges: vec![Privileges {
                cap_add: vec!["SYS_ADMIN".into()],
                docker_socket: true,
                root: true,
                ..Privileges::default()
            }],
            ..RiskInput::default()
        };
        let idle = RiskInput {
            workload: "compose:x/idle".into(),
            privileges: vec![Privileges::default()],
            ..RiskInput::default()
        };
        let ranked = rank(&[idle, risky], now);
        assert_eq!(ranked[0].workload, "compose:x/admin");
        assert!(ranked[0].score > ranked[1].score);
        let names: Vec<&str> = ranked[0].factors.iter().map(|f| f.name).collect();
        assert_eq!(names, ["alerts", "privileges"]);
        assert!(ranked[0].factors[1].detail.contains("Docker socket"));
        assert_eq!(ranked[1].score, 0.0);
        assert!(is_external("tcp 8.8.8.8:53") && !is_external("tcp 10.1.2.3:80"));
    }
}
