//! Rule tests carried inside rules files.
//!
//! A rule mapping may hold a `tests:` key (Falco ignores keys it does not know):
//!
//! ```yaml
//! - rule: Terminal shell in container
//!   ...
//!   tests:
//!     should_fire:
//!       - kind: exec
//!         process: {comm: bash, exe: /bin/bash, argv: [bash], tty: 34816,
//!                   ancestry: [{comm: runc, exe: /usr/bin/runc}]}
//!         container: {type: container, id: 4f1e2d3c4b5a69788796a5b4c3d2e1f0, image: debian:12}
//!     should_not_fire:
//!       - {kind: exec, process: {comm: bash, tty: 0}}
//! ```
//!
//! Each snippet is an [`Event`] in its JSON form with anything left out filled from a
//! default (a root process `/usr/bin/true` on the host, per-kind default `data`), so a
//! test states only what matters. `rampart rules test` runs them.

use rampart_event::Event;
use serde_json::{json, Map, Value as Json};

/// Event snippets that must / must not fire their rule.
#[derive(Debug, Clone, Default)]
pub struct RuleTests {
    pub should_fire: Vec<Json>,
    pub should_not_fire: Vec<Json>,
}

impl RuleTests {
    pub fn is_empty(&self) -> bool {
        self.should_fire.is_empty() && self.should_not_fire.is_empty()
    }
    pub fn extend(&mut self, other: RuleTests) {
        self.should_fire.extend(other.should_fire);
        self.should_not_fire.extend(other.should_not_fire);
    }
}

pub(crate) fn parse_rule_tests(v: &yaml_serde::Value) -> Result<RuleTests, String> {
    let j: Json = serde_json::to_value(v).map_err(|e| e.to_string())?;
    let Json::Object(m) = j else {
        return Err("expected a mapping with should_fire / should_not_fire lists".into());
    };
    let mut t = RuleTests::default();
    for (k, v) in m {
        let list = match v {
            Json::Array(a) => a,
            Json::Null => Vec::new(),
            _ => return Err(format!("`{k}` must be a list of event snippets")),
        };
        for (i, snippet) in list.iter().enumerate() {
            build_event(snippet).map_err(|e| format!("{k}[{i}]: {e}"))?;
        }
        match k.as_str() {
            "should_fire" => t.should_fire = list,
            "should_not_fire" => t.should_not_fire = list,
            other => {
                return Err(format!(
                    "unknown key `{other}` (expected should_fire, should_not_fire)"
                ))
            }
        }
    }
    Ok(t)
}

fn default_data(kind: &str) -> Json {
    match kind {
        "exec" => json!({"filename": "/usr/bin/true"}),
        "fork" => json!({"child_pid": 101, "child_exec_id": "t:101:1"}),
        "exit" => json!({"code": 0}),
        "file_open" => json!({"path": "/tmp/x", "flags": 0, "mode": 0, "ret": 3}),
        "file_unlink" | "file_chmod" | "file_truncate" => {
            json!({"path": "/tmp/x", "mode": 0, "length": 0, "ret": 0})
        }
        "file_rename" => json!({"old_path": "/tmp/a", "new_path": "/tmp/b", "ret": 0}),
        "file_link" => {
            json!({"old_path": "/tmp/a", "new_path": "/tmp/b", "symbolic": true, "ret": 0})
        }
        "file_chown" => json!({"path": "/tmp/x", "uid": 0, "gid": 0, "ret": 0}),
        "net_connect" => {
            json!({"proto": "tcp", "remote": {"family": "inet", "ip": "93.184.216.34", "port": 443}, "ret": 0})
        }
        "net_accept" => json!({"proto": "tcp", "ret": 4}),
        "net_bind" => {
            json!({"proto": "tcp", "local": {"family": "inet", "ip": "0.0.0.0", "port": 8080}, "ret": 0})
        }
        "net_listen" => json!({"proto": "tcp", "backlog": 128, "ret": 0}),
        "dns_query" => {
            json!({"query": "example.com", "qtype": 1, "server": {"family": "inet", "ip": "8.8.8.8", "port": 53}})
        }
        "set_id" => json!({"call": "setuid", "args": [0], "ret": 0}),
        "capset" => json!({"effective": 0, "permitted": 0, "inheritable": 0, "ret": 0}),
        "ptrace" => json!({"request": 16, "target_pid": 1, "ret": 0}),
        "mount" => {
            json!({"source": "none", "target": "/mnt", "fstype": "tmpfs", "flags": 0, "ret": 0})
        }
        "umount" => json!({"target": "/mnt", "flags": 0, "ret": 0}),
        "namespace" => json!({"call": "unshare", "flags": 0, "ret": 0}),
        "module_load" => json!({"call": "finit_module", "ret": 0}),
        "bpf" => json!({"cmd": 5, "ret": 3}),
        "memfd_create" => json!({"name": "x", "flags": 1, "ret": 3}),
        "proc_mem_write" => json!({"path": "/proc/1/mem", "target_pid": 1, "ret": 3}),
        "process_vm" => json!({"call": "process_vm_writev", "target_pid": 1, "ret": 8}),
        "io_uring" => json!({"op": "openat", "path": "/etc/hostname", "flags": 0}),
        "file_open_by_handle" => {
            json!({"path": "/etc/shadow", "mount_path": "/etc/hostname", "flags": 0, "ret": 3})
        }
        "chroot" => json!({"path": "/host", "ret": 0}),
        "process_rename" => json!({"name": "kworker/0:1", "previous": "miner", "ret": 0}),
        "exec_failed" => {
            json!({"call": "execve", "filename": "/dev/shm/x", "argv": ["x"], "ret": -13})
        }
        "socket" => json!({"domain": "AF_PACKET", "sock_type": 3, "protocol": 768, "ret": 3}),
        "fd_dup" => json!({"call": "dup2", "old_fd": 3, "new_fd": 0, "proto": "tcp"}),
        "lost" => json!({"source": "kernel", "count": 1}),
        _ => json!({}),
    }
}

fn merge(base: &mut Json, over: &Json) {
    match (base, over) {
        (Json::Object(b), Json::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Json::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Builds a full event from a snippet.
pub fn build_event(snippet: &Json) -> Result<Event, String> {
    let Json::Object(s) = snippet else {
        return Err("an event snippet must be a mapping".into());
    };
    let kind = s
        .get("kind")
        .and_then(Json::as_str)
        .ok_or("snippet needs `kind` (exec, file_open, net_connect, …)")?;
    let mut ev = json!({
        "schema": 1,
        "ts_ns": 1_700_000_000_000_000_000u64,
        "host": "test-host",
        "seq": 1,
        "process": {
            "pid": 100, "tid": 100, "ppid": 1, "exec_id": "t:100:1",
            "uid": 0, "gid": 0, "euid": 0, "egid": 0,
            "exe": "/usr/bin/true", "argv": ["true"], "cwd": "/", "comm": "true",
            "start_ns": 1_699_999_990_000_000_000u64
        },
        "container": {"type": "host"},
        "kind": kind,
        "data": default_data(kind),
    });
    let mut over = Map::new();
    for (k, v) in s {
        over.insert(k.clone(), v.clone());
    }
    // A container snippet replaces the host default rather than merging into it.
    if let Some(c) = over.remove("container") {
        if let Some(obj) = ev.as_object_mut() {
            obj.insert("container".into(), c);
        }
    }
    merge(&mut ev, &Json::Object(over));
    // open access follows the flags unless given.
    if kind == "file_open" {
        if let Some(data) = ev.get_mut("data").and_then(Json::as_object_mut) {
            if !data.contains_key("access") {
                let flags = data.get("flags").and_then(Json::as_u64).unwrap_or(0) as u32;
                let a = rampart_event::OpenAccess::from_flags(flags);
                data.insert("access".into(), json!({"read": a.read, "write": a.write, "create": a.create, "truncate": a.truncate}));
            }
        }
    }
    if let Some(anc) = ev
        .pointer_mut("/process/ancestry")
        .and_then(Json::as_array_mut)
    {
        for (i, a) in anc.iter_mut().enumerate() {
            if let Some(o) = a.as_object_mut() {
                o.entry("pid").or_insert(json!(99 - i as i64));
                o.entry("exec_id")
                    .or_insert(json!(format!("t:{}:1", 99 - i as i64)));
                let exe = o.get("exe").and_then(Json::as_str).map(str::to_string);
                let comm = o.get("comm").and_then(Json::as_str).map(str::to_string);
                match (exe, comm) {
                    (Some(e), None) => {
                        let c = e
                            .rsplit('/')
                            .next()
                            .unwrap_or("")
                            .chars()
                            .take(15)
                            .collect::<String>();
                        o.insert("comm".into(), json!(c));
                    }
                    (None, Some(c)) => {
                        o.insert("exe".into(), json!(format!("/usr/bin/{c}")));
                    }
                    (None, None) => {
                        o.insert("comm".into(), json!("init"));
                        o.insert("exe".into(), json!("/sbin/init"));
                    }
                    _ => {}
                }
                let comm = o.get("comm").cloned().unwrap_or(json!(""));
                o.entry("argv").or_insert_with(|| json!([comm]));
            }
        }
    }
    serde_json::from_value(ev).map_err(|e| format!("not a valid event: {e}"))
}
