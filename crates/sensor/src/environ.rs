//! The startup-hook variables of a process's environment
//! ([`rampart_event::HOOK_ENVIRONMENT`]: `LD_PRELOAD`, `NODE_OPTIONS`, `RUBYOPT`, …).
//!
//! The exec record carries the environment block as the kernel saw it at exec (read
//! there because a process that runs for a millisecond is gone before user space
//! could read /proc), cut to the room left in the record. Only the hook variables are
//! kept, each cut at [`rampart_event::MAX_HOOK_VALUE`]. A cut block (an attacker could
//! put a hook variable behind padding), an object without the block, and processes
//! found at start read `/proc/<pid>/environ` instead: the environment a process shows
//! there is the one its current image started with, scanned whole up to
//! [`MAX_ENVIRON_BYTES`], more than the kernel lets an exec pass under the default
//! stack limit. A process that exited (or exec'd another program) before that read
//! has none: `None`, never a stranger's environment.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use rampart_event::{HOOK_ENVIRONMENT, MAX_HOOK_VALUE};

/// Most bytes of one environment read (argv and envp together get a quarter of the
/// stack limit, 2 MiB under the default 8 MiB).
pub const MAX_ENVIRON_BYTES: u64 = 4 << 20;

/// Whether `name` is one of the hook variables.
fn is_hook(name: &[u8]) -> bool {
    HOOK_ENVIRONMENT.iter().any(|h| h.as_bytes() == name)
}

/// Keeps `entry` (`NAME=value`, no NUL) when it is a hook variable.
fn keep_hook(entry: &[u8], found: &mut Vec<String>) {
    let Some(eq) = entry.iter().position(|b| *b == b'=') else {
        return;
    };
    if !is_hook(&entry[..eq]) {
        return;
    }
    let mut kv = String::from_utf8_lossy(entry).into_owned();
    let limit = eq + 1 + MAX_HOOK_VALUE;
    if kv.len() > limit {
        let mut cut = limit;
        while !kv.is_char_boundary(cut) {
            cut -= 1;
        }
        kv.truncate(cut);
    }
    found.push(kv);
}

/// The hook variables of an environment block (`NAME=value` strings, NUL-separated)
/// as an exec record carries it.
pub fn hook_env_of_block(block: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in block.split(|b| *b == 0) {
        keep_hook(entry, &mut found);
    }
    found
}

/// The hook variables (`NAME=value`, in the environment's order) of `pid` under the
/// proc filesystem at `proc_root`, when `/proc/<pid>/comm` still names `comm` after
/// the read (the pid did not exit, get reused or exec another program meanwhile).
pub fn read_hook_env(proc_root: &Path, pid: u32, comm: &str) -> Option<Vec<String>> {
    let dir = proc_root.join(pid.to_string());
    let file = std::fs::File::open(dir.join("environ")).ok()?;
    let mut reader = BufReader::with_capacity(16 * 1024, file.take(MAX_ENVIRON_BYTES));
    let mut found = Vec::new();
    let mut entry = Vec::new();
    loop {
        entry.clear();
        match reader.read_until(0, &mut entry) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => return None,
        }
        if entry.last() == Some(&0) {
            entry.pop();
        }
        keep_hook(&entry, &mut found);
    }
    let now = std::fs::read_to_string(dir.join("comm")).ok()?;
    (now.trim_end_matches('\n') == comm).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn comm_of(pid: u32) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim_end()
            .to_string()
    }

    #[test]
    fn keeps_only_hook_variables_in_order_and_cuts_long_values() {
        // Benign values: this process runs on the host beside a node watching it, and
        // a preloaded library or a --require from /tmp would (rightly) raise alerts.
        let long = "x".repeat(MAX_HOOK_VALUE + 100);
        let mut child = Command::new("sleep")
            .arg("30")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            // Padding in front (one string may not pass 128 KiB).
            .envs((0..3).map(|i| (format!("PAD{i}"), "p".repeat(100_000))))
            .env("NODE_OPTIONS", "--max-old-space-size=64")
            .env("HOME", "/root")
            .env("RUBYOPT", &long)
            .env("NODE_OPTIONSX", "not a hook")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let env = read_hook_env(Path::new("/proc"), pid, &comm_of(pid));
        child.kill().unwrap();
        child.wait().unwrap();
        let env = env.expect("a live process's environment");
        assert_eq!(
            env.len(),
            2,
            "{:?}",
            env.iter().map(|v| &v[..20]).collect::<Vec<_>>()
        );
        assert!(env.contains(&"NODE_OPTIONS=--max-old-space-size=64".to_string()));
        let cut = env.iter().find(|v| v.starts_with("RUBYOPT=")).unwrap();
        assert_eq!(cut.len(), "RUBYOPT=".len() + MAX_HOOK_VALUE);
    }

    #[test]
    fn a_block_keeps_its_hook_variables() {
        let block = b"PATH=/bin\0NODE_OPTIONS=--require /tmp/h.js\0LD_PRELOAD=/tmp/x.so\0LD_PRELOADX=1\0=\0\0RUBYOPT";
        assert_eq!(
            hook_env_of_block(block),
            ["NODE_OPTIONS=--require /tmp/h.js", "LD_PRELOAD=/tmp/x.so"]
        );
        assert!(hook_env_of_block(b"").is_empty());
    }

    #[test]
    fn a_process_with_another_name_or_gone_has_none() {
        let me = std::process::id();
        assert!(read_hook_env(Path::new("/proc"), me, &comm_of(me)).is_some());
        assert!(read_hook_env(Path::new("/proc"), me, "not-this-one").is_none());
        assert!(read_hook_env(Path::new("/nonexistent"), me, &comm_of(me)).is_none());
    }
}
