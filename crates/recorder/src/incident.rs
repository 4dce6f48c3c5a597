//! Incident bundles: everything recorded about an alert's container around the
//! alert, in one tar.gz a person can read (`summary.md`) and tools can parse (JSON).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rampart_event::{Alert, Event, Payload};

use crate::error::RecorderError;
use crate::query::{fmt_ts, ProcessTree, Query, RecordTypes};
use crate::record::{LifecycleAction, LifecycleRecord, Record};
use crate::store::Recorder;

/// What went into a bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleSummary {
    pub path: PathBuf,
    pub alert_id: String,
    /// Container id (empty for the host).
    pub container: String,
    pub events: usize,
    pub processes: usize,
    pub connections: usize,
    pub files_written: usize,
    pub lifecycle: usize,
    /// Steps named in `summary.md`'s timeline.
    pub timeline_steps: usize,
    /// Packet captures taken around the window's alerts, under `packets/`.
    pub captures: usize,
}

/// Files read by attackers after credentials and keys.
const SENSITIVE: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/root/.ssh/",
    "/.ssh/",
    "/.aws/",
    "/.kube/config",
    "/var/run/secrets/kubernetes.io/",
    "/run/secrets/",
    "/.docker/config.json",
    "/.bash_history",
    "/environ",
];

/// Directories where dropped payloads are written and run from.
const STAGING: &[&str] = &["/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/"];

fn is_sensitive(path: &str) -> bool {
    SENSITIVE.iter().any(|s| path.contains(s))
}

fn proc_label(ev: &Event) -> String {
    match &ev.process {
        Some(p) => {
            let cmd = if p.argv.is_empty() {
                p.exe.clone()
            } else {
                p.argv.join(" ")
            };
            format!("pid {} `{}`", p.pid, cmd.replace('`', "'"))
        }
        None => "(no process)".into(),
    }
}

fn written(p: &Payload) -> Option<(&str, &'static str)> {
    match p {
        Payload::FileOpen {
            path, access, ret, ..
        } if *ret >= 0 && (access.write || access.create || access.truncate) => {
            Some((path, "opened for writing"))
        }
        Payload::FileRename { new_path, ret, .. } if *ret >= 0 => Some((new_path, "renamed to")),
        Payload::FileLink { new_path, ret, .. } if *ret >= 0 => Some((new_path, "linked")),
        Payload::FileChmod { path, ret, .. } if *ret >= 0 => Some((path, "chmod")),
        Payload::FileTruncate { path, ret, .. } if *ret >= 0 => Some((path, "truncated")),
        Payload::FileUnlink { path, ret, .. } if *ret >= 0 => Some((path, "deleted")),
        _ => None,
    }
}

fn connection(ev: &Event) -> Option<String> {
    let s = match &ev.payload {
        Payload::NetConnect {
            proto, remote, ret, ..
        } => {
            format!("connect {proto:?} to {} (ret {ret})", addr(remote))
        }
        Payload::NetAccept { proto, remote, .. } => format!(
            "accept {proto:?} from {}",
            remote.as_ref().map(addr).unwrap_or_else(|| "?".into())
        ),
        Payload::NetBind { proto, local, .. } => format!("bind {proto:?} {}", addr(local)),
        Payload::NetListen { proto, local, .. } => format!(
            "listen {proto:?} {}",
            local.as_ref().map(addr).unwrap_or_else(|| "?".into())
        ),
        Payload::DnsQuery { query, server, .. } => {
            format!("dns query {query} to {}", addr(server))
        }
        _ => return None,
    };
    Some(s)
}

fn addr(a: &rampart_event::SockAddr) -> String {
    use rampart_event::SockAddr;
    match a {
        SockAddr::Inet { ip, port } => format!("{ip}:{port}"),
        SockAddr::Inet6 { ip, port } => format!("[{ip}]:{port}"),
        SockAddr::Unix { path } => format!("unix:{path}"),
        SockAddr::Other { number } => format!("family {number}"),
    }
}

impl Recorder {
    /// Finds a recorded alert by id.
    pub fn find_alert(self: &Arc<Self>, id: &str) -> Result<Alert, RecorderError> {
        let block = {
            let cat = self.catalog();
            match cat.alert_block(id)? {
                Some(b) => cat.block(b)?,
                None => None,
            }
        }
        .ok_or_else(|| RecorderError::AlertNotFound(id.to_owned()))?;
        let recs = self
            .read_block(&block)
            .map_err(|e| RecorderError::Bundle(format!("the alert's block: {e}")))?;
        recs.into_iter()
            .find_map(|r| match r {
                Record::Alert(a) if a.id == id => Some(*a),
                _ => None,
            })
            .ok_or_else(|| RecorderError::AlertNotFound(id.to_owned()))
    }

    /// Writes the incident bundle of a recorded alert to `out` (a `.tar.gz`): the
    /// alert, its container's events from `before` the alert's first event to
    /// `after` its last, the process tree, network connections, files written, the
    /// container's lifecycle and a `summary.md` timeline. Safe to call from several
    /// threads at once, next to a running writer.
    pub fn incident_bundle(
        self: &Arc<Self>,
        alert_id: &str,
        before: Duration,
        after: Duration,
        out: &Path,
    ) -> Result<BundleSummary, RecorderError> {
        self.incident_bundle_with_captures(alert_id, before, after, out, None)
    }

    /// [`Recorder::incident_bundle`], plus the packet captures the network stage wrote
    /// into `captures` for the alert and for the other alerts of its container in the
    /// window (`<dir>/<alert id>.pcapng`, see [`rampart_event::capture_file_name`]),
    /// under `packets/` in the bundle and listed in `summary.md`.
    pub fn incident_bundle_with_captures(
        self: &Arc<Self>,
        alert_id: &str,
        before: Duration,
        after: Duration,
        out: &Path,
        captures: Option<&Path>,
    ) -> Result<BundleSummary, RecorderError> {
        let alert = self.find_alert(alert_id)?;
        let container = alert
            .event
            .container
            .container()
            .map(|c| c.id.clone())
            .unwrap_or_default();
        let key = if container.is_empty() {
            "host".to_owned()
        } else {
            container.clone()
        };
        let since = alert.first_ts_ns.saturating_sub(before.as_nanos() as u64);
        let until = alert.ts_ns.saturating_add(after.as_nanos() as u64);
        let mut events = Vec::new();
        let mut alerts = Vec::new();
        for r in self.query(&Query::new().container(&key).since(since).until(until))? {
            match r {
                Record::Event(e) => events.push(e),
                Record::Alert(a) => alerts.push(*a),
                Record::Lifecycle(_) => {}
            }
        }
        let lifecycle: Vec<LifecycleRecord> = self
            .query(&Query::new().container(&key).records(RecordTypes {
                events: false,
                alerts: false,
                lifecycle: true,
            }))?
            .filter_map(|r| match r {
                Record::Lifecycle(l) => Some(l),
                _ => None,
            })
            .collect();

        // Process trees: one per process whose parent the window does not show.
        let execs: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| e.process.as_ref().map(|p| p.exec_id.as_str()))
            .collect();
        let mut roots: Vec<(u64, String)> = Vec::new();
        let mut seen_root = BTreeSet::new();
        for e in &events {
            let Some(p) = &e.process else { continue };
            let parent = p
                .parent_exec_id
                .as_deref()
                .or_else(|| p.ancestry.first().map(|a| a.exec_id.as_str()));
            let is_root = parent.is_none_or(|x| !execs.contains(x));
            if is_root && seen_root.insert(p.exec_id.clone()) {
                roots.push((e.ts_ns, p.exec_id.clone()));
            }
        }
        roots.sort();
        let mut tree_text = String::new();
        let mut processes = 0;
        for (_, root) in &roots {
            let t = ProcessTree::build(root, events.iter());
            processes += t.nodes.len().max(1);
            tree_text.push_str(&t.render());
        }

        let mut net = String::new();
        let mut connections = 0;
        let mut files = String::new();
        let mut files_written = 0;
        for e in &events {
            if let Some(c) = connection(e) {
                connections += 1;
                let _ = writeln!(net, "{} {} {}", fmt_ts(e.ts_ns), proc_label(e), c);
            }
            if let Some((path, how)) = written(&e.payload) {
                files_written += 1;
                let _ = writeln!(files, "{} {} {how} {path}", fmt_ts(e.ts_ns), proc_label(e));
            }
        }
        let (mut summary_md, steps) = summary(&alert, &alerts, &events, &lifecycle, since, until);
        let packets = match captures {
            Some(dir) => captures_of(dir, &alert, &alerts)?,
            None => Vec::new(),
        };
        if !packets.is_empty() {
            let _ = writeln!(summary_md, "\n## Packet captures\n");
            for (name, data) in &packets {
                let _ = writeln!(
                    summary_md,
                    "- `packets/{name}` ({} bytes, pcapng: `tshark -r`)",
                    data.len()
                );
            }
        }

        let mut events_jsonl = Vec::new();
        for e in &events {
            serde_json::to_writer(&mut events_jsonl, e)
                .map_err(|e| RecorderError::Bundle(e.to_string()))?;
            events_jsonl.push(b'\n');
        }
        let mut lifecycle_jsonl = Vec::new();
        for l in &lifecycle {
            serde_json::to_writer(&mut lifecycle_jsonl, l)
                .map_err(|e| RecorderError::Bundle(e.to_string()))?;
            lifecycle_jsonl.push(b'\n');
        }
        let alert_json =
            serde_json::to_vec_pretty(&alert).map_err(|e| RecorderError::Bundle(e.to_string()))?;

        // Ids come from recorded data: keep the directory name to safe characters.
        let short_id: String = alert
            .id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(12)
            .collect();
        let dir = format!("incident-{short_id}");
        let mtime = alert.ts_ns / 1_000_000_000;
        // Written to a temporary name and renamed, so a reader never sees half a bundle.
        let tmp = out.with_extension("partial");
        let file = std::fs::File::create(&tmp)?;
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let documents = [
            ("summary.md", summary_md.as_bytes()),
            ("alert.json", &alert_json[..]),
            ("events.jsonl", &events_jsonl[..]),
            ("process-tree.txt", tree_text.as_bytes()),
            ("network.txt", net.as_bytes()),
            ("files-written.txt", files.as_bytes()),
            ("lifecycle.jsonl", &lifecycle_jsonl[..]),
        ]
        .map(|(name, data)| (name.to_string(), data));
        let captures = packets
            .iter()
            .map(|(name, data)| (format!("packets/{name}"), &data[..]));
        for (name, data) in documents.into_iter().chain(captures) {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(mtime);
            h.set_cksum();
            tar.append_data(&mut h, format!("{dir}/{name}"), data)?;
        }
        let gz = tar.into_inner()?;
        gz.finish()?.sync_all()?;
        std::fs::rename(&tmp, out)?;
        Ok(BundleSummary {
            path: out.to_path_buf(),
            alert_id: alert.id.clone(),
            container,
            events: events.len(),
            processes,
            connections,
            files_written,
            lifecycle: lifecycle.len(),
            timeline_steps: steps,
            captures: packets.len(),
        })
    }
}

/// Captures larger than this are left out of a bundle (named in the log instead):
/// the rolling buffer holds 30 s of headers, far less.
const MAX_CAPTURE_BYTES: u64 = 256 << 20;

/// The captures in `dir` of `alert` and of `others`, each once: (file name, bytes).
fn captures_of(
    dir: &Path,
    alert: &Alert,
    others: &[Alert],
) -> Result<Vec<(String, Vec<u8>)>, RecorderError> {
    let mut names = BTreeSet::new();
    for id in std::iter::once(&alert.id).chain(others.iter().map(|a| &a.id)) {
        names.insert(rampart_event::capture_file_name(id));
    }
    let mut out = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if meta.len() > MAX_CAPTURE_BYTES {
            tracing::warn!(path = %path.display(), bytes = meta.len(), "capture too large for the bundle");
            continue;
        }
        out.push((name, std::fs::read(&path)?));
    }
    Ok(out)
}

/// A pod's identity in one line: `pod shop/web-1, container app, Deployment web,
/// node n1, service account web-sa, labels app=web`.
fn k8s_line(k: &rampart_event::KubernetesIdentity) -> String {
    let mut parts = vec![format!("pod {}/{}", k.namespace, k.pod)];
    if !k.container.is_empty() {
        parts.push(format!("container {}", k.container));
    }
    if !k.workload_kind.is_empty() {
        parts.push(format!("{} {}", k.workload_kind, k.workload_name));
    }
    if !k.node.is_empty() {
        parts.push(format!("node {}", k.node));
    }
    if !k.service_account.is_empty() {
        parts.push(format!("service account {}", k.service_account));
    }
    if !k.labels.is_empty() {
        let labels: Vec<String> = k.labels.iter().map(|(a, b)| format!("{a}={b}")).collect();
        parts.push(format!("labels {}", labels.join(",")));
    }
    parts.join(", ")
}

/// The human-readable timeline: the steps an analyst looks for, in order.
fn summary(
    alert: &Alert,
    alerts: &[Alert],
    events: &[Event],
    lifecycle: &[LifecycleRecord],
    since: u64,
    until: u64,
) -> (String, usize) {
    let mut s = String::new();
    let c = alert.event.container.container();
    let _ = writeln!(s, "# Incident: {}\n", alert.rule);
    let _ = writeln!(s, "- Alert id: `{}`", alert.id);
    let _ = writeln!(s, "- Priority: {}", alert.priority.falco_name());
    if !alert.mitre.is_empty() {
        let _ = writeln!(s, "- MITRE ATT&CK: {}", alert.mitre.join(", "));
    }
    let _ = writeln!(s, "- Message: {}", alert.message);
    match c {
        Some(c) => {
            let _ = writeln!(
                s,
                "- Container: {} (`{}`), image {}",
                if c.name.is_empty() { "?" } else { &c.name },
                c.id.chars().take(12).collect::<String>(),
                if c.image.is_empty() { "?" } else { &c.image }
            );
            if let Some(k) = &c.k8s {
                let _ = writeln!(s, "- Kubernetes: {}", k8s_line(k));
            }
        }
        None => {
            let _ = writeln!(s, "- Workload: the host");
        }
    }
    let _ = writeln!(s, "- Host: {}", alert.event.host);
    let _ = writeln!(
        s,
        "- Window: {} to {} ({} events)\n",
        fmt_ts(since),
        fmt_ts(until),
        events.len()
    );
    let _ = writeln!(s, "## Timeline\n");

    // Each step: (time, order, text).
    let mut steps: Vec<(u64, usize, String)> = Vec::new();
    for l in lifecycle {
        if l.ts_ns < since || l.ts_ns > until {
            continue;
        }
        let what = match l.action {
            LifecycleAction::Start => "container started".to_owned(),
            LifecycleAction::Stop => "container stopped".to_owned(),
            LifecycleAction::Die { exit_code } => format!("container died, exit code {exit_code}"),
        };
        steps.push((l.ts_ns, steps.len(), format!("**lifecycle**: {what}")));
    }
    let mut written_paths: BTreeSet<String> = BTreeSet::new();
    let mut seen_conn: BTreeSet<String> = BTreeSet::new();
    for e in events {
        let who = proc_label(e);
        let text = match &e.payload {
            Payload::Exec { filename, .. } => {
                let staged = STAGING.iter().any(|d| filename.starts_with(d));
                let dropped = written_paths.contains(filename.as_str());
                let tag = match (dropped, staged) {
                    (true, _) => "**exec of a file written in this window**",
                    (false, true) => "**exec from a staging directory**",
                    _ => "**exec**",
                };
                let parent = e
                    .process
                    .as_ref()
                    .and_then(|p| p.ancestry.first())
                    .map(|a| format!(" (parent pid {} {})", a.pid, a.comm))
                    .unwrap_or_default();
                Some(format!("{tag}: {who}{parent}"))
            }
            Payload::NetConnect { .. } | Payload::NetListen { .. } | Payload::DnsQuery { .. } => {
                // A connection repeated by the same process is named once.
                let c = connection(e).unwrap_or_default();
                let key = format!("{who} {c}");
                seen_conn
                    .insert(key)
                    .then(|| format!("**network**: {who} {c}"))
            }
            Payload::FileOpen {
                path, access, ret, ..
            } if *ret >= 0 && access.read && !access.write && is_sensitive(path) => {
                Some(format!("**sensitive read**: {who} read {path}"))
            }
            p => written(p).and_then(|(path, how)| {
                let first = written_paths.insert(path.to_owned());
                let staged = STAGING.iter().any(|d| path.starts_with(d));
                (first && (staged || is_sensitive(path) || how != "opened for writing"))
                    .then(|| format!("**file write**: {who} {how} {path}"))
            }),
        };
        if let Some(t) = text {
            steps.push((e.ts_ns, steps.len(), t));
        }
    }
    for a in alerts {
        let marker = if a.id == alert.id {
            " (this alert)"
        } else {
            ""
        };
        steps.push((
            a.ts_ns,
            steps.len(),
            format!("**ALERT** {}{marker}: {}", a.rule, a.message),
        ));
    }
    if !alerts.iter().any(|a| a.id == alert.id) {
        steps.push((
            alert.ts_ns,
            steps.len(),
            format!("**ALERT** {} (this alert): {}", alert.rule, alert.message),
        ));
    }
    steps.sort();
    for (ts, _, t) in &steps {
        let _ = writeln!(s, "1. `{}` {t}", fmt_ts(*ts));
    }
    let _ = writeln!(
        s,
        "\nFiles: `alert.json`, `events.jsonl` (every event of the window), `process-tree.txt`, `network.txt`, `files-written.txt`, `lifecycle.jsonl`."
    );
    (s, steps.len())
}
