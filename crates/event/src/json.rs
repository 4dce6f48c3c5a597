//! Fast JSON lines for events. Most of an event's bytes are its process (argv and the
//! ancestry's argv) and its container (labels), and both are shared, behind an `Arc`,
//! by every event of that process or container. [`EventJsonWriter`] serializes each
//! shared part once and copies it into later events, instead of re-encoding kilobytes
//! of strings per event. The output is byte-for-byte what `serde_json` gives for
//! [`Event`] (a test holds that).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::{Ancestor, Event, Payload, Process, Workload};

/// Shared parts kept before unused ones are dropped (bounds memory under churn).
const CACHE_CAP: usize = 1024;

/// The shape of [`Event`]'s JSON, with the shared parts pre-encoded. Must list the
/// same fields, in the same order, with the same attributes as [`Event`].
#[derive(Serialize)]
struct EventJson<'a> {
    schema: u32,
    ts_ns: u64,
    host: &'a str,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<&'a RawValue>,
    container: &'a RawValue,
    #[serde(skip_serializing_if = "crate::is_false")]
    compat_syscall: bool,
    #[serde(flatten)]
    payload: &'a Payload,
}

/// The shape of [`Process`]'s JSON with its ancestors pre-encoded: a new process
/// (every fork and exec) shares its parent's ancestors, whose command lines are most
/// of its bytes. Must list the same fields, in the same order, with the same
/// attributes as [`Process`].
#[derive(Serialize)]
struct ProcessJson<'a> {
    pid: u32,
    tid: u32,
    ppid: u32,
    exec_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_exec_id: &'a Option<String>,
    uid: u32,
    gid: u32,
    euid: u32,
    egid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    auid: &'a Option<u32>,
    exe: &'a str,
    argv: &'a [String],
    #[serde(skip_serializing_if = "crate::is_false")]
    argv_truncated: bool,
    cwd: &'a str,
    comm: &'a str,
    start_ns: u64,
    #[serde(skip_serializing_if = "crate::is_zero")]
    tty: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ancestry: Vec<&'a RawValue>,
    #[serde(skip_serializing_if = "crate::is_false")]
    exe_upper_layer: bool,
    #[serde(skip_serializing_if = "crate::no_env")]
    env: &'a Option<Vec<String>>,
}

fn encode_process(
    ancestors: &mut SharedJson<Ancestor>,
    p: &Process,
) -> serde_json::Result<Box<RawValue>> {
    // Destructured, so a field added to Process cannot be left out here unnoticed.
    let Process {
        pid,
        tid,
        ppid,
        exec_id,
        parent_exec_id,
        uid,
        gid,
        euid,
        egid,
        auid,
        exe,
        argv,
        argv_truncated,
        cwd,
        comm,
        start_ns,
        tty,
        ancestry,
        exe_upper_layer,
        env,
    } = p;
    // Encoded first: the raw values borrow the cache, which must not change while
    // they are in use.
    for a in ancestry {
        ancestors.get(a)?;
    }
    let ancestry = ancestry
        .iter()
        .map(|a| ancestors.peek(a))
        .collect::<Option<Vec<_>>>();
    let Some(ancestry) = ancestry else {
        // The cache was cleared while this process's ancestry was being added (more
        // than its capacity in use): encode it whole.
        return serde_json::value::to_raw_value(p);
    };
    serde_json::value::to_raw_value(&ProcessJson {
        pid: *pid,
        tid: *tid,
        ppid: *ppid,
        exec_id,
        parent_exec_id,
        uid: *uid,
        gid: *gid,
        euid: *euid,
        egid: *egid,
        auid,
        exe,
        argv,
        argv_truncated: *argv_truncated,
        cwd,
        comm,
        start_ns: *start_ns,
        tty: *tty,
        ancestry,
        exe_upper_layer: *exe_upper_layer,
        env,
    })
}

/// Pre-encoded JSON per shared value. Holding the `Arc` keeps the address from being
/// reused while cached, and makes `Arc::make_mut` elsewhere copy instead of changing
/// a cached value in place, so an entry can never go stale.
struct SharedJson<T> {
    entries: HashMap<usize, (Arc<T>, Box<RawValue>)>,
}

impl<T: Serialize> SharedJson<T> {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }

    fn get(&mut self, v: &Arc<T>) -> serde_json::Result<&RawValue> {
        self.get_or_encode(v, |v| serde_json::value::to_raw_value(v))
    }

    /// The encoding of `v` if cached.
    fn peek(&self, v: &Arc<T>) -> Option<&RawValue> {
        self.entries
            .get(&(Arc::as_ptr(v) as usize))
            .map(|(_, raw)| &**raw)
    }

    fn get_or_encode(
        &mut self,
        v: &Arc<T>,
        encode: impl FnOnce(&T) -> serde_json::Result<Box<RawValue>>,
    ) -> serde_json::Result<&RawValue> {
        let key = Arc::as_ptr(v) as usize;
        if !self.entries.contains_key(&key) {
            if self.entries.len() >= CACHE_CAP {
                // Drop what only the cache still holds (exited processes, gone
                // containers); clear all if everything is still in use.
                self.entries.retain(|_, (v, _)| Arc::strong_count(v) > 1);
                if self.entries.len() >= CACHE_CAP {
                    self.entries.clear();
                }
            }
            let raw = encode(v)?;
            self.entries.insert(key, (v.clone(), raw));
        }
        Ok(&self.entries[&key].1)
    }
}

/// Writes events as JSON, reusing the encoding of processes, their ancestors and
/// containers.
pub struct EventJsonWriter {
    processes: SharedJson<Process>,
    ancestors: SharedJson<Ancestor>,
    containers: SharedJson<Workload>,
}

impl Default for EventJsonWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl EventJsonWriter {
    pub fn new() -> Self {
        Self {
            processes: SharedJson::new(),
            ancestors: SharedJson::new(),
            containers: SharedJson::new(),
        }
    }

    /// Appends `ev` as one JSON object (no newline) to `out`.
    pub fn write(&mut self, ev: &Event, out: &mut Vec<u8>) -> serde_json::Result<()> {
        // Destructured, so a field added to Event cannot be left out here unnoticed.
        let Event {
            schema,
            ts_ns,
            host,
            seq,
            process,
            container,
            compat_syscall,
            payload,
        } = ev;
        let process = match process {
            Some(p) => Some(
                self.processes
                    .get_or_encode(p, |p| encode_process(&mut self.ancestors, p))?,
            ),
            None => None,
        };
        let container = self.containers.get(container)?;
        serde_json::to_writer(
            out,
            &EventJson {
                schema: *schema,
                ts_ns: *ts_ns,
                host,
                seq: *seq,
                process,
                container,
                compat_syscall: *compat_syscall,
                payload,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ancestor, Container, OpenAccess};

    fn event(seq: u64, process: &Arc<Process>, container: &Arc<Workload>) -> Event {
        Event {
            compat_syscall: false,
            schema: crate::SCHEMA_VERSION,
            ts_ns: 1_700_000_000_000_000_000 + seq,
            host: Arc::from("node-1"),
            seq,
            process: Some(process.clone()),
            container: container.clone(),
            payload: Payload::FileOpen {
                path: format!("/etc/\"quoted\"\n{seq}"),
                path_raw: Some(format!("../etc/\"quoted\"\n{seq}")),
                flags: 0,
                mode: 0,
                access: OpenAccess::default(),
                ret: 3,
                repeats: seq,
            },
        }
    }

    #[test]
    fn same_bytes_as_serde_json_and_no_stale_entries() {
        let mut p = Arc::new(Process {
            pid: 7,
            exe: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), "echo ünïcode \u{1}".into()],
            ancestry: vec![Arc::new(Ancestor {
                pid: 1,
                exe: "/sbin/init".into(),
                ..Default::default()
            })],
            ..Default::default()
        });
        let c = Arc::new(Workload::Container(Container {
            id: "a".repeat(64),
            name: "web".into(),
            ..Default::default()
        }));
        let mut w = EventJsonWriter::new();
        for seq in 0..3 {
            let mut ev = event(seq, &p, &c);
            ev.compat_syscall = seq == 1;
            let mut fast = Vec::new();
            w.write(&ev, &mut fast).unwrap();
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                serde_json::to_string(&ev).unwrap()
            );
            // A change made the way the process tree makes it must show next time.
            Arc::make_mut(&mut p).cwd = format!("/dir{seq}");
        }
        // A sibling shares the ancestry, whose encoding is reused.
        let sibling = Arc::new(Process {
            pid: 8,
            argv: vec!["sibling".into()],
            tty: 34816,
            auid: Some(1000),
            ..(*p).clone()
        });
        let mut fast = Vec::new();
        w.write(&event(5, &sibling, &c), &mut fast).unwrap();
        assert_eq!(fast, serde_json::to_vec(&event(5, &sibling, &c)).unwrap());
        let lost = Event {
            process: None,
            payload: Payload::Lost {
                source: crate::LossSource::Queue,
                count: 3,
                cpu: None,
            },
            ..event(9, &p, &Arc::new(Workload::Host { cgroup_id: 1 }))
        };
        let mut fast = Vec::new();
        w.write(&lost, &mut fast).unwrap();
        assert_eq!(fast, serde_json::to_vec(&lost).unwrap());
    }

    /// Past the cache's capacity, with lineages still in use, entries are dropped and
    /// re-encoded, and the output stays exact.
    #[test]
    fn exact_under_cache_churn() {
        let c = Arc::new(Workload::Host { cgroup_id: 0 });
        let mut w = EventJsonWriter::new();
        let mut kept = Vec::new();
        for i in 0..(CACHE_CAP as u32 * 2) {
            let ancestry = (0..3)
                .map(|depth| {
                    Arc::new(Ancestor {
                        pid: i * 10 + depth,
                        exe: format!("/bin/\"{i}\""),
                        argv: vec![format!("arg\t{depth}")],
                        ..Default::default()
                    })
                })
                .collect();
            let p = Arc::new(Process {
                pid: i,
                ancestry,
                ..Default::default()
            });
            let ev = event(i.into(), &p, &c);
            let mut fast = Vec::new();
            w.write(&ev, &mut fast).unwrap();
            assert_eq!(fast, serde_json::to_vec(&ev).unwrap(), "event {i}");
            kept.push(p);
        }
    }
}
