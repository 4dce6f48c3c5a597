//! The process tree: seeded from /proc at start, kept from fork/exec/exit records, with
//! exited entries evicted after a grace period so memory stays bounded under churn.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

use rampart_event::{Ancestor, Process, MAX_ANCESTRY, MAX_ARGS};

pub use rampart_event::exec_id;
use rampart_event::EXEC_ID_NS_PER_TICK as NS_PER_TICK;

/// Most argv bytes kept per process.
const MAX_ARGV_BYTES: usize = 4096;

/// Splits a NUL-separated argv block into at most [`MAX_ARGS`] entries.
pub fn split_argv(block: &[u8]) -> (Vec<String>, bool) {
    let block = block.strip_suffix(&[0]).unwrap_or(block);
    if block.is_empty() {
        return (Vec::new(), false);
    }
    let mut truncated = false;
    let mut out = Vec::new();
    for (i, a) in block.split(|b| *b == 0).enumerate() {
        if i >= MAX_ARGS {
            truncated = true;
            break;
        }
        out.push(String::from_utf8_lossy(a).into_owned());
    }
    (out, truncated)
}

#[derive(Debug)]
struct Entry {
    /// The process as it currently is, ancestry included; shared by its events.
    process: Arc<Process>,
    /// The process as its descendants' ancestry shows it, built once.
    as_ancestor: Arc<Ancestor>,
    /// Boot-time ns of the exit, when it has exited.
    exited_at: Option<u64>,
}

/// Tree of live (and recently exited) processes keyed by tgid.
pub struct ProcessTree {
    boot: String,
    boot_wall_ns: u64,
    entries: HashMap<u32, Entry>,
    grace_ns: u64,
    /// Exited entries, in exit order, awaiting eviction.
    exited: std::collections::VecDeque<(u64, u32, u64)>,
}

impl Entry {
    fn new(process: Arc<Process>) -> Self {
        let as_ancestor = Arc::new(Ancestor {
            pid: process.pid,
            exec_id: process.exec_id.clone(),
            exe: process.exe.clone(),
            argv: process.argv.clone(),
            comm: process.comm.clone(),
            exe_upper_layer: process.exe_upper_layer,
        });
        Self {
            process,
            as_ancestor,
            exited_at: None,
        }
    }
}

impl ProcessTree {
    /// `boot` is the boot id prefix for exec ids; `boot_wall_ns` converts boot-time
    /// nanoseconds to wall clock; exited processes stay `grace_ns` for late events.
    pub fn new(boot: String, boot_wall_ns: u64, grace_ns: u64) -> Self {
        Self {
            boot,
            boot_wall_ns,
            entries: HashMap::new(),
            grace_ns,
            exited: Default::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, tgid: u32) -> Option<&Arc<Process>> {
        self.entries.get(&tgid).map(|e| &e.process)
    }

    /// Seeds every process from /proc (those that exist before the sensor starts).
    pub fn seed_from_proc(&mut self) -> usize {
        let Ok(dir) = fs::read_dir("/proc") else {
            return 0;
        };
        let mut raw = Vec::new();
        for ent in dir.flatten() {
            let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(p) = read_proc(pid, &self.boot, self.boot_wall_ns) {
                raw.push(p);
            }
        }
        let n = raw.len();
        for p in raw {
            self.entries.insert(p.pid, Entry::new(Arc::new(p)));
        }
        // Ancestry needs every entry in place first.
        let pids: Vec<u32> = self.entries.keys().copied().collect();
        for pid in pids {
            let ancestry = self.ancestry_of_parent(self.entries[&pid].process.ppid);
            let parent_exec_id = ancestry.first().map(|a| a.exec_id.clone());
            if let Some(e) = self.entries.get_mut(&pid) {
                let p = Arc::make_mut(&mut e.process);
                p.ancestry = ancestry;
                p.parent_exec_id = parent_exec_id;
            }
        }
        n
    }

    /// Ancestry starting at `ppid` (parent first), bounded by [`MAX_ANCESTRY`].
    fn ancestry_of_parent(&self, ppid: u32) -> Vec<Arc<Ancestor>> {
        let mut out = Vec::new();
        let mut cur = ppid;
        while out.len() < MAX_ANCESTRY && cur != 0 {
            let Some(e) = self.entries.get(&cur) else {
                break;
            };
            let p = &e.process;
            out.push(e.as_ancestor.clone());
            if p.ppid == cur {
                break;
            }
            cur = p.ppid;
        }
        out
    }

    /// Looks up a process, or builds it from /proc (or from what the record says) when
    /// the tree missed it.
    pub fn lookup_or_insert(
        &mut self,
        tgid: u32,
        fallback: impl FnOnce() -> Process,
    ) -> Arc<Process> {
        if let Some(e) = self.entries.get(&tgid) {
            return e.process.clone();
        }
        let mut p = read_proc(tgid, &self.boot, self.boot_wall_ns).unwrap_or_else(fallback);
        p.ancestry = self.ancestry_of_parent(p.ppid);
        p.parent_exec_id = p.ancestry.first().map(|a| a.exec_id.clone());
        let p = Arc::new(p);
        self.entries.insert(tgid, Entry::new(p.clone()));
        p
    }

    /// A new process: it starts as a copy of its parent.
    pub fn on_fork(
        &mut self,
        parent: &Arc<Process>,
        child_pid: u32,
        child_start_boot_ns: u64,
    ) -> Arc<Process> {
        let mut child = Process::clone(parent);
        child.pid = child_pid;
        child.tid = child_pid;
        child.ppid = parent.pid;
        child.start_ns = self.boot_wall_ns + child_start_boot_ns;
        child.exec_id = exec_id(&self.boot, child_pid, child_start_boot_ns);
        child.parent_exec_id = Some(parent.exec_id.clone());
        child.ancestry = self.ancestry_of_parent(parent.pid);
        let child = Arc::new(child);
        self.entries.insert(child_pid, Entry::new(child.clone()));
        child
    }

    /// A new program image in an existing process.
    pub fn on_exec(&mut self, mut p: Process) -> Arc<Process> {
        p.ancestry = self.ancestry_of_parent(p.ppid);
        p.parent_exec_id = p.ancestry.first().map(|a| a.exec_id.clone());
        let p = Arc::new(p);
        self.entries.insert(p.pid, Entry::new(p.clone()));
        p
    }

    pub fn on_chdir(&mut self, tgid: u32, cwd: String) {
        if let Some(e) = self.entries.get_mut(&tgid) {
            Arc::make_mut(&mut e.process).cwd = cwd;
        }
    }

    /// A process renamed itself (prctl PR_SET_NAME): later events carry the new name.
    pub fn on_rename(&mut self, tgid: u32, comm: String) {
        if let Some(e) = self.entries.get_mut(&tgid) {
            Arc::make_mut(&mut e.process).comm = comm;
        }
    }

    /// Marks a process exited; it is evicted after the grace period.
    pub fn on_exit(&mut self, tgid: u32, now_boot_ns: u64) {
        if let Some(e) = self.entries.get_mut(&tgid) {
            if e.exited_at.is_none() {
                e.exited_at = Some(now_boot_ns);
                let start = e.process.start_ns;
                self.exited.push_back((now_boot_ns, tgid, start));
            }
        }
    }

    /// Drops exited entries older than the grace period. Returns how many went.
    pub fn evict(&mut self, now_boot_ns: u64) -> usize {
        let mut n = 0;
        while let Some(&(at, tgid, start)) = self.exited.front() {
            if now_boot_ns.saturating_sub(at) < self.grace_ns {
                break;
            }
            self.exited.pop_front();
            // The pid may have been reused by a live process since: keep that one.
            if let Some(e) = self.entries.get(&tgid) {
                if e.exited_at.is_some() && e.process.start_ns == start {
                    self.entries.remove(&tgid);
                    n += 1;
                }
            }
        }
        n
    }
}

/// Reads one process from /proc. `None` when it is gone or unreadable.
pub fn read_proc(pid: u32, boot: &str, boot_wall_ns: u64) -> Option<Process> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: the fields after it start at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // rest[0] is state (field 3); ppid is field 4, tty_nr 7, starttime 22.
    let ppid: u32 = rest.get(1)?.parse().ok()?;
    let tty: u32 = rest.get(4)?.parse::<i64>().ok()? as u32;
    let start_ticks: u64 = rest.get(19)?.parse().ok()?;
    let start_boot_ns = start_ticks * NS_PER_TICK;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| {
                l[key.len()..]
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let uids = ids("Uid:");
    let gids = ids("Gid:");
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let (mut argv, mut argv_truncated) = split_argv(&cmdline[..cmdline.len().min(MAX_ARGV_BYTES)]);
    if cmdline.len() > MAX_ARGV_BYTES {
        argv_truncated = true;
    }
    if argv.is_empty() {
        argv.push(comm.clone());
        argv_truncated = false;
    }
    let link = |what: &str| {
        fs::read_link(format!("/proc/{pid}/{what}"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let auid = fs::read_to_string(format!("/proc/{pid}/loginuid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|v| *v != u32::MAX);
    let env = crate::environ::read_hook_env(std::path::Path::new("/proc"), pid, &comm);
    Some(Process {
        pid,
        tid: pid,
        ppid,
        exec_id: exec_id(boot, pid, start_boot_ns),
        parent_exec_id: None,
        uid: uids.first().copied().unwrap_or(0),
        euid: uids.get(1).copied().unwrap_or(0),
        gid: gids.first().copied().unwrap_or(0),
        egid: gids.get(1).copied().unwrap_or(0),
        auid,
        exe: link("exe"),
        argv,
        argv_truncated,
        cwd: link("cwd"),
        comm,
        start_ns: boot_wall_ns + start_boot_ns,
        tty,
        ancestry: Vec::new(),
        // Unknown for processes found at start; only exec events carry it.
        exe_upper_layer: false,
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_split_and_truncation() {
        assert_eq!(
            split_argv(b"cat\0/etc/shadow\0").0,
            vec!["cat", "/etc/shadow"]
        );
        let many: Vec<u8> = (0..100).flat_map(|_| b"a\0".to_vec()).collect();
        let (v, t) = split_argv(&many);
        assert_eq!(v.len(), MAX_ARGS);
        assert!(t);
    }

    #[test]
    fn seeds_from_proc_with_ancestry() {
        let mut tree = ProcessTree::new("t".into(), 0, 1);
        assert!(tree.seed_from_proc() > 0);
        let me = tree.get(std::process::id()).expect("own process seeded");
        assert!(me.exe.contains("sensor") || !me.exe.is_empty());
        assert_eq!(me.ancestry.first().map(|a| a.pid), Some(me.ppid));
    }

    #[test]
    fn fork_exec_exit_and_eviction() {
        let mut tree = ProcessTree::new("b".into(), 1_000, 100);
        let parent = tree.lookup_or_insert(4_000_001, || Process {
            pid: 4_000_001,
            tid: 4_000_001,
            ppid: 0,
            exe: "/bin/sh".into(),
            argv: vec!["sh".into()],
            ..Default::default()
        });
        let child = tree.on_fork(&parent, 4_000_002, 50);
        assert_eq!(child.ancestry[0].exe, "/bin/sh");
        assert_eq!(
            child.parent_exec_id.as_deref(),
            Some(parent.exec_id.as_str())
        );
        let mut img = Process::clone(&child);
        img.exe = "/bin/cat".into();
        let after = tree.on_exec(img);
        assert_eq!(after.ancestry[0].pid, 4_000_001);
        tree.on_exit(4_000_002, 1_000);
        assert_eq!(tree.evict(1_050), 0, "inside the grace period");
        assert_eq!(tree.evict(1_200), 1);
        assert!(tree.get(4_000_002).is_none());
        // Churn leaves nothing behind once the grace period passes.
        for i in 0..10_000u32 {
            let c = tree.on_fork(&parent, 5_000_000 + i, i as u64);
            tree.on_exit(c.pid, 2_000 + i as u64);
        }
        tree.evict(1_000_000);
        assert_eq!(tree.len(), 1);
    }
}
