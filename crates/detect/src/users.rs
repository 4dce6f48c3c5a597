//! User names for `user.name`, `user.loginname`, `user.homedir` and `user.shell`: a
//! [`UserDirectory`] the engine is given, not the evaluating host's `/etc/passwd`.
//!
//! Rules evaluated on the node that saw the event get [`HostPasswd`], which reads the
//! passwd file of the process's own root (`/proc/<pid>/root/etc/passwd`, so a container
//! process is named from its image's user database), falling back to the host's. Rules
//! evaluated centrally or on recorded history get whatever directory matches the data
//! (a [`StaticUsers`] snapshot), or none: then only uid 0 has a name (`root`) and other
//! uids have no value (`<NA>` in outputs), as before for uids the host did not know.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rampart_event::{Event, Workload};

/// One passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub name: String,
    pub home: String,
    pub shell: String,
}

/// Where user names come from. `ev` is the event being evaluated: an implementation
/// answers for the user database its process sees (its container's).
pub trait UserDirectory: Send + Sync {
    fn user(&self, ev: &Event, uid: u32) -> Option<Arc<UserEntry>>;
}

/// No user database: every uid is unknown (uid 0 is still `root`, see
/// [`user_name`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUsers;

impl UserDirectory for NoUsers {
    fn user(&self, _: &Event, _: u32) -> Option<Arc<UserEntry>> {
        None
    }
}

/// The name `user.name` shows for `uid`: `root` for 0 whatever the directory says
/// (as Falco does), else the directory's entry.
pub(crate) fn user_name(entry: Option<&UserEntry>, uid: u32) -> Option<&str> {
    if uid == 0 {
        return Some("root");
    }
    entry.map(|e| e.name.as_str())
}

/// Parses passwd text (`name:x:uid:gid:gecos:home:shell`); malformed lines are
/// skipped, and the first entry of a uid wins, as getpwuid does.
pub fn parse_passwd(text: &str) -> HashMap<u32, Arc<UserEntry>> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let (Some(name), Some(uid)) = (f.first(), f.get(2).and_then(|u| u.parse().ok())) else {
            continue;
        };
        out.entry(uid).or_insert_with(|| {
            Arc::new(UserEntry {
                name: name.to_string(),
                home: f.get(5).unwrap_or(&"").to_string(),
                shell: f.get(6).unwrap_or(&"").to_string(),
            })
        });
    }
    out
}

/// A fixed user table, the same for every event (a snapshot taken where the events
/// were recorded, or a test's).
#[derive(Debug, Clone, Default)]
pub struct StaticUsers(HashMap<u32, Arc<UserEntry>>);

impl StaticUsers {
    pub fn from_passwd(text: &str) -> Self {
        StaticUsers(parse_passwd(text))
    }
}

impl UserDirectory for StaticUsers {
    fn user(&self, _: &Event, uid: u32) -> Option<Arc<UserEntry>> {
        self.0.get(&uid).cloned()
    }
}

/// How often a cached passwd file is checked for changes (one `stat`).
const RECHECK_EVERY: Duration = Duration::from_secs(2);
/// Cached passwd files (one per container, plus the host); past this, files not
/// used recently are dropped.
const MAX_CACHED: usize = 1024;
/// What "recently" means for that pruning.
const IDLE: Duration = Duration::from_secs(600);

/// The passwd file the event's process sees: its container's (through
/// `/proc/<pid>/root`), else the host's; cached per container and re-read when the
/// file changes (checked at most every [`RECHECK_EVERY`]).
pub struct HostPasswd {
    proc_root: PathBuf,
    host_passwd: PathBuf,
    recheck: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    path: PathBuf,
    stamp: Option<Stamp>,
    checked: Instant,
    users: Arc<HashMap<u32, Arc<UserEntry>>>,
}

/// Identity and version of a file: a replaced or rewritten passwd file changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        modified: m.modified().ok(),
    })
}

impl Default for HostPasswd {
    fn default() -> Self {
        Self::new("/proc", "/etc/passwd")
    }
}

impl HostPasswd {
    /// `proc_root` is where `<pid>/root` is found (`/proc`); `host_passwd` the host's
    /// passwd file (`/etc/passwd`), used for host processes and as the fallback.
    pub fn new(proc_root: impl Into<PathBuf>, host_passwd: impl Into<PathBuf>) -> Self {
        HostPasswd {
            proc_root: proc_root.into(),
            host_passwd: host_passwd.into(),
            recheck: RECHECK_EVERY,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Checks cached files for changes at most this often (default 2 s).
    pub fn with_recheck(mut self, every: Duration) -> Self {
        self.recheck = every;
        self
    }

    /// The file to read for `ev`'s process.
    fn source(&self, ev: &Event) -> PathBuf {
        if let (Workload::Container(_), Some(p)) = (ev.container.as_ref(), ev.process.as_ref()) {
            let own = self
                .proc_root
                .join(p.pid.to_string())
                .join("root/etc/passwd");
            if own.is_file() {
                return own;
            }
            // The process is gone, or its root is not readable from here: the host's
            // file (what was used for every process before), re-tried on the next check.
        }
        self.host_passwd.clone()
    }

    fn users_for(&self, ev: &Event) -> Arc<HashMap<u32, Arc<UserEntry>>> {
        let now = Instant::now();
        let Ok(mut cache) = self.cache.lock() else {
            return Arc::default();
        };
        let key = cache_key(ev);
        // Fresh enough: no file system access at all.
        if let Some(c) = cache.get(&key) {
            if now.duration_since(c.checked) < self.recheck {
                return c.users.clone();
            }
        }
        let path = self.source(ev);
        let current = stamp(&path);
        if let Some(c) = cache.get_mut(&key) {
            if c.path == path && c.stamp == current && current.is_some() {
                c.checked = now;
                return c.users.clone();
            }
        }
        let users = Arc::new(
            std::fs::read_to_string(&path)
                .map(|t| parse_passwd(&t))
                .unwrap_or_default(),
        );
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, c| now.duration_since(c.checked) < IDLE);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                path,
                stamp: current,
                checked: now,
                users: users.clone(),
            },
        );
        users
    }
}

/// One cached file per container (its processes share a root file system) and one
/// for host processes.
fn cache_key(ev: &Event) -> String {
    match ev.container.as_ref() {
        Workload::Container(c) => format!("container:{}", c.id),
        Workload::Host { .. } => "host".into(),
    }
}

impl UserDirectory for HostPasswd {
    fn user(&self, ev: &Event, uid: u32) -> Option<Arc<UserEntry>> {
        self.users_for(ev).get(&uid).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::tests_format::build_event;

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("rampart-detect-users-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, relative: &str, text: &str) -> PathBuf {
            let path = self.0.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const HOST: &str = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/zsh\n";
    const IMAGE: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv/app:/sbin/nologin\n";

    fn in_container(pid: u32, uid: u32) -> Event {
        build_event(&json!({
            "kind": "exec",
            "process": {"pid": pid, "tid": pid, "euid": uid, "uid": uid},
            "container": {"type": "container", "id": "c0ffee", "image": "app:1"},
        }))
        .unwrap()
    }

    fn on_host(uid: u32) -> Event {
        build_event(&json!({"kind": "exec", "process": {"euid": uid, "uid": uid}})).unwrap()
    }

    fn name(dir: &dyn UserDirectory, ev: &Event, uid: u32) -> Option<String> {
        dir.user(ev, uid).map(|e| e.name.clone())
    }

    #[test]
    fn passwd_text_parses_and_the_first_entry_of_a_uid_wins() {
        let users = parse_passwd(
            "a:x:5:5::/h/a:/bin/a\nbroken line\nb:x:5:5::/h/b:/bin/b\nc:x:nope\nd:x:6\n",
        );
        assert_eq!(users.len(), 2);
        assert_eq!(users[&5].name, "a");
        assert_eq!(users[&5].home, "/h/a");
        assert_eq!(users[&6].shell, "", "missing fields are empty");
    }

    #[test]
    fn container_processes_are_named_from_their_own_root_host_ones_from_the_host() {
        let tmp = Scratch::new("roots");
        tmp.write("proc/4242/root/etc/passwd", IMAGE);
        let host = tmp.write("host/passwd", HOST);
        let dir = HostPasswd::new(tmp.0.join("proc"), host);
        assert_eq!(
            name(&dir, &in_container(4242, 1000), 1000).as_deref(),
            Some("app")
        );
        assert_eq!(name(&dir, &on_host(1000), 1000).as_deref(), Some("alice"));
        let entry = dir.user(&in_container(4242, 1000), 1000).unwrap();
        assert_eq!(
            (entry.home.as_str(), entry.shell.as_str()),
            ("/srv/app", "/sbin/nologin")
        );
        // Unknown uids stay unknown.
        assert_eq!(name(&dir, &in_container(4242, 1000), 4321), None);
    }

    #[test]
    fn a_process_whose_root_is_gone_falls_back_to_the_host_file() {
        let tmp = Scratch::new("fallback");
        let host = tmp.write("host/passwd", HOST);
        std::fs::create_dir_all(tmp.0.join("proc")).unwrap();
        let dir = HostPasswd::new(tmp.0.join("proc"), host).with_recheck(Duration::ZERO);
        assert_eq!(
            name(&dir, &in_container(77, 1000), 1000).as_deref(),
            Some("alice")
        );
        // Once the process's root is readable, its own file is used.
        tmp.write("proc/77/root/etc/passwd", IMAGE);
        assert_eq!(
            name(&dir, &in_container(77, 1000), 1000).as_deref(),
            Some("app")
        );
    }

    #[test]
    fn a_changed_passwd_file_is_read_again() {
        let tmp = Scratch::new("refresh");
        let own = tmp.write("proc/9/root/etc/passwd", IMAGE);
        let host = tmp.write("host/passwd", HOST);
        let dir = HostPasswd::new(tmp.0.join("proc"), host).with_recheck(Duration::ZERO);
        let ev = in_container(9, 1000);
        assert_eq!(name(&dir, &ev, 1000).as_deref(), Some("app"));
        std::fs::write(&own, "deploy:x:1000:1000::/home/deploy:/bin/sh\n").unwrap();
        assert_eq!(name(&dir, &ev, 1000).as_deref(), Some("deploy"));

        // Within the recheck interval the cached table answers without looking.
        let cached = HostPasswd::new(tmp.0.join("proc"), tmp.0.join("host/passwd"));
        assert_eq!(name(&cached, &ev, 1000).as_deref(), Some("deploy"));
        std::fs::write(&own, IMAGE).unwrap();
        assert_eq!(name(&cached, &ev, 1000).as_deref(), Some("deploy"));
    }

    /// Through the engine: `user.name`, `user.homedir` and `user.loginname` in an alert
    /// come from the directory the engine was given; without one, only root is named.
    #[test]
    fn the_engine_names_users_from_its_directory() {
        let rule = "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: u=%user.name h=%user.homedir l=%user.loginname\n  priority: NOTICE\n";
        let engine = |users: Option<Arc<dyn UserDirectory>>| {
            let (set, errors) = crate::load_texts(&[("r.yaml".into(), rule.into())]);
            assert!(errors.is_empty(), "{errors:?}");
            let engine =
                crate::RuleEngine::from_ruleset(set, crate::NoiseConfig::default(), &["r.yaml"]);
            match users {
                Some(u) => engine.with_users(u),
                None => engine,
            }
        };
        let ev = build_event(&json!({
            "kind": "exec",
            "process": {"euid": 1000, "uid": 1000, "auid": 0},
        }))
        .unwrap();
        let message = |e: &crate::RuleEngine| e.evaluate(&ev)[0].message.clone();
        let snapshot: Arc<dyn UserDirectory> = Arc::new(StaticUsers::from_passwd(HOST));
        assert_eq!(
            message(&engine(Some(snapshot))),
            "u=alice h=/home/alice l=root"
        );
        assert_eq!(message(&engine(None)), "u=<NA> h=<NA> l=root");
    }
}
