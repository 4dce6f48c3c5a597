//! Default events, one per kind: the planner's probe events, and the defaults rule-test
//! snippets are filled from. Production code (the planner) builds its probes here, not
//! through the rule-test fixtures.
//!
//! A probe is a root process `/usr/bin/true` on the host with plain per-kind data. The
//! planner evaluates only kind-static leaves on it (fields whose value the kind alone
//! decides), so the payload values themselves do not matter.

use rampart_event::{Event, EventKind};
use serde_json::{json, Value as Json};

/// The default event of `kind` (its serde name) in JSON form.
pub(crate) fn base_event(kind: &str) -> Json {
    json!({
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
    })
}

/// An open's access follows its flags unless given.
pub(crate) fn fill_open_access(ev: &mut Json) {
    if ev.get("kind").and_then(Json::as_str) != Some("file_open") {
        return;
    }
    if let Some(data) = ev.get_mut("data").and_then(Json::as_object_mut) {
        if !data.contains_key("access") {
            let flags = data.get("flags").and_then(Json::as_u64).unwrap_or(0) as u32;
            let a = rampart_event::OpenAccess::from_flags(flags);
            data.insert(
                "access".into(),
                json!({"read": a.read, "write": a.write, "create": a.create, "truncate": a.truncate}),
            );
        }
    }
}

/// The probe event of `kind`; None when the default data does not make an event of
/// that kind (the planner then keeps every leaf dynamic for it).
pub(crate) fn probe_event(kind: EventKind) -> Option<Event> {
    let name = serde_json::to_value(kind).ok()?;
    let mut ev = base_event(name.as_str()?);
    fill_open_access(&mut ev);
    let ev: Event = serde_json::from_value(ev).ok()?;
    (ev.kind() == kind).then_some(ev)
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
        "admission" => {
            json!({"kind": "Pod", "namespace": "default", "name": "p", "decision": "deny"})
        }
        _ => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind has a probe, the same event a rule test's bare `{kind: …}` snippet
    /// makes (so moving the builder out of the fixtures changed no plan).
    #[test]
    fn every_kind_has_a_probe_equal_to_the_bare_test_snippet() {
        for k in EventKind::ALL {
            let probe = probe_event(k).unwrap_or_else(|| panic!("no probe for {k:?}"));
            assert_eq!(probe.kind(), k);
            let name = serde_json::to_value(k).unwrap();
            let snippet = crate::tests_format::build_event(&json!({ "kind": name })).unwrap();
            assert_eq!(probe, snippet, "{k:?}");
        }
    }
}
