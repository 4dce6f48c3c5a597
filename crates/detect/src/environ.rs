//! `proc.env` beyond the hook variables: a process's environment, read from
//! `/proc/<pid>/environ` when the event is evaluated. The sensor reads the startup-hook
//! variables (`rampart_event::HOOK_ENVIRONMENT`: `NODE_OPTIONS`, `RUBYOPT`,
//! `PERL5OPT`, `JAVA_TOOL_OPTIONS`, `LD_PRELOAD`, …) at exec and puts them on the
//! process; a rule naming another variable, or the whole environment, reads it here.
//! The environment read is the one the process's current image started with (the
//! kernel keeps it where exec put it), so reading it after the exec event is what the
//! exec saw; a process that already exited, or whose pid now names another program,
//! has none.

use std::path::Path;

/// Largest environment read (the kernel's own limit on argv + envp is larger, but a
/// hook variable sits among the first few hundred bytes in practice).
const MAX_ENVIRON: u64 = 256 * 1024;

/// The environment of `pid` under the proc filesystem at `proc_root`, as `NAME=value`
/// strings, when `/proc/<pid>/comm` still names `comm` (the pid was not reused).
pub fn read_environ(proc_root: &Path, pid: u32, comm: &str) -> Option<Vec<String>> {
    use std::io::Read;
    let dir = proc_root.join(pid.to_string());
    let now = std::fs::read_to_string(dir.join("comm")).ok()?;
    if now.trim_end_matches('\n') != comm {
        return None;
    }
    let mut raw = Vec::new();
    std::fs::File::open(dir.join("environ"))
        .ok()?
        .take(MAX_ENVIRON)
        .read_to_end(&mut raw)
        .ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect(),
    )
}

/// The value of `name` in an environment of `NAME=value` strings.
pub fn lookup<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter().find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_environment_and_refuses_a_reused_pid() {
        let me = std::process::id();
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
        let env = read_environ(Path::new("/proc"), me, comm.trim_end()).unwrap();
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(lookup(&env, "PATH"), Some(path.as_str()));
        assert!(read_environ(Path::new("/proc"), me, "not-this-program").is_none());
        assert!(read_environ(Path::new("/nonexistent"), me, comm.trim_end()).is_none());
    }

    #[test]
    fn lookup_takes_the_value_after_the_first_equals_sign() {
        let env = vec![
            "A=1".to_string(),
            "NODE_OPTIONS=--require=/tmp/x.js".to_string(),
        ];
        assert_eq!(lookup(&env, "NODE_OPTIONS"), Some("--require=/tmp/x.js"));
        assert_eq!(lookup(&env, "B"), None);
    }
}
