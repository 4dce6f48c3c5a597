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
    let exe = link("exe");
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
        argv,
        argv_truncated,
        cwd: link("cwd"),
        comm,
        start_ns: boot_wall_ns + start_boot_ns,
        tty,
        ancestry: Vec::new(),
        exe_upper_layer: exe_in_upper_layer(pid, &exe),
        exe,
        env,
    })
}

/// Whether a running process's executable has a copy in an overlayfs upper layer
/// (written after its container started), as the kernel tells at exec: for the
/// processes the sensor finds running, so that a dropped program started before it
/// (and its children's ancestry) still carries the flag. Reads the process's mount
/// table for the mount holding the path; false when that is not overlayfs or the
/// table is unreadable.
pub fn exe_in_upper_layer(pid: u32, exe: &str) -> bool {
    if !exe.starts_with('/') {
        return false;
    }
    let Ok(table) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
        return false;
    };
    exe_in_upper_layer_of(&table, exe, |p| {
        fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
    })
}

/// [`exe_in_upper_layer`] on a mount table's text, `is_file` telling whether a
/// regular file exists at a host path (a whiteout is a character device).
fn exe_in_upper_layer_of(
    mountinfo: &str,
    exe: &str,
    is_file: impl Fn(&std::path::Path) -> bool,
) -> bool {
    // The mount holding exe: the longest mount point that is a prefix of it, the
    // later one of equal length (mounted over the earlier).
    let mut holder: Option<(String, &str, &str, &str)> = None;
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut fields = pre.split(' ').skip(3);
        let (Some(root), Some(point)) = (fields.next(), fields.next()) else {
            continue;
        };
        let point = unescape_mount_field(point);
        let under = point == "/"
            || exe
                .strip_prefix(point.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if !under || holder.as_ref().is_some_and(|h| h.0.len() > point.len()) {
            continue;
        }
        let mut post = post.split(' ');
        let (Some(fstype), Some(_source), Some(options)) = (post.next(), post.next(), post.next())
        else {
            continue;
        };
        holder = Some((point, root, fstype, options));
    }
    let Some((point, root, fstype, options)) = holder else {
        return false;
    };
    if fstype != "overlay" {
        return false;
    }
    let Some(upper) = options.split(',').find_map(|o| o.strip_prefix("upperdir=")) else {
        return false;
    };
    let rest = exe[point.len().min(exe.len())..].trim_start_matches('/');
    let path = std::path::Path::new(&unescape_mount_field(upper))
        .join(unescape_mount_field(root).trim_start_matches('/'))
        .join(rest);
    is_file(&path)
}

/// Mount table fields escape space, tab, newline and backslash as `\ooo` (octal).
fn unescape_mount_field(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        if let (b'\\', Some(byte)) = (b[i], octal) {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_layer_of_a_running_exe_is_read_from_its_mount_table() {
        let table = "\
81 54 0:41 / / rw,relatime master:2 - overlay overlay rw,lowerdir=/d/l/A:/d/l/B,upperdir=/d/c1/diff,workdir=/d/c1/work
82 81 0:45 / /proc rw - proc proc rw
90 81 8:1 /vols/data /srv/data rw - ext4 /dev/vda rw
91 81 0:41 /opt/app /my\\040app rw - overlay overlay rw,upperdir=/d/c2/diff,workdir=/d/c2/work
";
        let upper = ["/d/c1/diff/tmp/dropped", "/d/c2/diff/opt/app/bin/x"];
        let is_file = |p: &std::path::Path| upper.iter().any(|u| p == std::path::Path::new(u));
        assert!(exe_in_upper_layer_of(table, "/tmp/dropped", is_file));
        assert!(!exe_in_upper_layer_of(table, "/bin/busybox", is_file));
        // On a volume, not the overlay: whatever the upper dir holds at that path.
        assert!(!exe_in_upper_layer_of(table, "/srv/data/dropped", |_| true));
        // A bind mount of an overlay's subdirectory, its mount point escaped.
        assert!(exe_in_upper_layer_of(table, "/my app/bin/x", is_file));
        // The host's root is no overlay.
        let host = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n";
        assert!(!exe_in_upper_layer_of(host, "/tmp/dropped", |_| true));
        assert_eq!(unescape_mount_field("a\\040b\\134c\\9"), "a b\\c\\9");
    }

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
