//! Rules marked `action: kill` (a key Falco does not know and Rampart's loader
//! ignores, so the same files still load in Falco when it is removed or tolerated):
//! each one whose condition the kernel can check is compiled to map entries of the
//! response object, which kills on the syscall's own hook; the others are reported
//! and killed from user space by the response stage when their alert arrives.
//!
//! What compiles: a conjunction of an exec check (`evt.type in (execve, execveat)`,
//! `spawned_process`) with `proc.exe = PATH` / `proc.exe in (…)`, or of a connect
//! check (`evt.type = connect`) with `fd.sip` and/or `fd.sport`/`fd.rport` (`=` or
//! `in`), or of an open check (`evt.type in (open, openat, openat2, creat)`,
//! `open_read`/`open_write` and their `rampart_` macros, `evt.is_open_read`/`_write =
//! true`, `fd.typechar = f`, `fd.num >= 0`) with one path check: `fd.name startswith
//! PATH`, `fd.name = PATH` / `in (…)`, `fd.name pmatch (…)` or `fd.directory = DIR` /
//! `in (…)`; `evt.res = SUCCESS`, `container.id != host` and the `container` macros may
//! be among the conjuncts (the kernel kills in containers only anyway). Anything else
//! (an `or`, a `not`, another field or operator, a user macro) is user space. An open
//! kill acts on the file's path resolved by the kernel (symlinks followed), at the
//! open's return, and only when the open succeeded.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rampart_bpf::response::{KernelKills, KillConnect, KillOpen, OpenMatch, OpenSyscall};
use rampart_detect::ast::{Check, Expr, Op, Operand};

/// Where each `action: kill` rule is enforced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KillRules {
    pub kernel: KernelKills,
    /// Rules compiled to the kernel, with the id their entries carry.
    pub in_kernel: Vec<(String, u32)>,
    /// Rules left to user space, with why.
    pub user_space: Vec<(String, String)>,
}

fn rule_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            files.retain(|f| f.extension().is_some_and(|e| e == "yaml" || e == "yml"));
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    out
}

/// Finds the `action: kill` rules in these rules files (errors in them are the rule
/// engine's to report) and compiles what the kernel can check.
pub fn kill_rules(paths: &[PathBuf]) -> KillRules {
    let mut out = KillRules::default();
    for file in rule_files(paths) {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(items) = yaml_serde::from_str::<Vec<serde_json::Value>>(&text) else {
            continue;
        };
        for item in items {
            if item["action"].as_str() != Some("kill") {
                continue;
            }
            let (Some(name), Some(cond)) = (item["rule"].as_str(), item["condition"].as_str())
            else {
                continue;
            };
            add_rule(&mut out, name, cond, &file);
        }
    }
    out
}

fn add_rule(out: &mut KillRules, name: &str, cond: &str, file: &Path) {
    let id = out.in_kernel.len() as u32 + 1;
    match compile(cond) {
        Ok(Compiled::Exec(paths)) => {
            out.kernel
                .exec_paths
                .extend(paths.into_iter().map(|p| (p, id)));
            out.in_kernel.push((name.to_string(), id));
        }
        Ok(Compiled::Connect(addrs, ports)) => {
            let addrs: Vec<Option<IpAddr>> = if addrs.is_empty() {
                vec![None]
            } else {
                addrs.into_iter().map(Some).collect()
            };
            let ports = if ports.is_empty() { vec![0] } else { ports };
            for a in &addrs {
                for p in &ports {
                    out.kernel.connects.push(KillConnect {
                        addr: *a,
                        port: *p,
                        rule: id,
                    });
                }
            }
            out.in_kernel.push((name.to_string(), id));
        }
        Ok(Compiled::Open(opens)) => {
            // One kernel entry per path and match: a rule whose entry another rule
            // holds with other conditions stays in user space.
            for o in &opens {
                let clash = out.kernel.opens.iter().find(|k| {
                    k.matches == o.matches
                        && k.entry_path() == o.entry_path()
                        && KillOpen {
                            rule: k.rule,
                            ..o.clone()
                        } != **k
                });
                if let Some(k) = clash {
                    let other = out
                        .in_kernel
                        .iter()
                        .find(|(_, id)| *id == k.rule)
                        .map_or("another rule", |(n, _)| n.as_str());
                    out.user_space.push((
                        name.to_string(),
                        format!(
                            "{}: the kernel entry for {:?} is {other:?}'s, with other conditions",
                            file.display(),
                            o.path
                        ),
                    ));
                    return;
                }
            }
            out.kernel
                .opens
                .extend(opens.into_iter().map(|o| KillOpen { rule: id, ..o }));
            out.in_kernel.push((name.to_string(), id));
        }
        Err(why) => out
            .user_space
            .push((name.to_string(), format!("{}: {why}", file.display()))),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Compiled {
    Exec(Vec<String>),
    Connect(Vec<IpAddr>, Vec<u16>),
    /// Rule ids still 0.
    Open(Vec<KillOpen>),
}

/// What an open rule's conjuncts asked of the open itself.
#[derive(Default)]
struct OpenGate {
    seen: bool,
    syscalls: Option<Vec<OpenSyscall>>,
    read: bool,
    write: bool,
    regular_only: bool,
}

impl OpenGate {
    /// `evt.type` names: all must be open syscalls; repeated gates intersect.
    fn syscalls(&mut self, names: &[String]) -> bool {
        let mut these = Vec::new();
        for n in names {
            match n.as_str() {
                "open" => these.push(OpenSyscall::Open),
                "openat" => these.push(OpenSyscall::Openat),
                "openat2" => these.push(OpenSyscall::Openat2),
                "creat" => these.push(OpenSyscall::Creat),
                _ => return false,
            }
        }
        self.seen = true;
        self.syscalls = Some(match self.syscalls.take() {
            None => these,
            Some(before) => before.into_iter().filter(|s| these.contains(s)).collect(),
        });
        true
    }
}

/// The kernel entries of one path check (`fd.name` / `fd.directory`).
fn open_paths(field: &str, op: Op, vals: &[String]) -> Result<Vec<(String, OpenMatch)>, String> {
    let known = matches!(
        (field, op),
        ("fd.name", Op::StartsWith | Op::Eq | Op::In | Op::Pmatch)
            | ("fd.directory", Op::Eq | Op::In)
    );
    if !known {
        return Err(format!("the kernel cannot check `{field} {}`", op.as_str()));
    }
    if let Some(p) = vals.iter().find(|p| !p.starts_with('/')) {
        return Err(format!("{field} {p:?} is not an absolute path"));
    }
    Ok(match (field, op) {
        ("fd.name", Op::StartsWith) => vals
            .iter()
            .map(|p| (p.clone(), OpenMatch::Prefix))
            .collect(),
        ("fd.name", Op::Eq | Op::In) => {
            vals.iter().map(|p| (p.clone(), OpenMatch::Exact)).collect()
        }
        // The path itself or anything under it.
        ("fd.name", Op::Pmatch) => vals
            .iter()
            .flat_map(|p| {
                let p = p.trim_end_matches('/');
                if p.is_empty() {
                    vec![("/".to_string(), OpenMatch::Prefix)]
                } else {
                    vec![
                        (p.to_string(), OpenMatch::Exact),
                        (format!("{p}/"), OpenMatch::Prefix),
                    ]
                }
            })
            .collect(),
        ("fd.directory", Op::Eq | Op::In) => vals
            .iter()
            .map(|p| (p.clone(), OpenMatch::Directory))
            .collect(),
        _ => return Err(format!("the kernel cannot check `{field} {}`", op.as_str())),
    })
}

fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::And(v) => v.into_iter().for_each(|x| conjuncts(x, out)),
        other => out.push(other),
    }
}

fn values(c: &Check) -> Option<Vec<String>> {
    match (&c.op, &c.value) {
        (Op::Eq, Some(Operand::Value(l))) => Some(vec![l.text.clone()]),
        (Op::In, Some(Operand::List(l))) => Some(l.iter().map(|x| x.text.clone()).collect()),
        _ => None,
    }
}

fn compile(cond: &str) -> Result<Compiled, String> {
    let expr = rampart_detect::parse_condition(cond)
        .map_err(|e| format!("at offset {}: {}", e.offset, e.message))?;
    let mut parts = Vec::new();
    conjuncts(expr, &mut parts);
    let (mut exec, mut connect) = (false, false);
    let (mut exes, mut addrs, mut ports) = (Vec::new(), Vec::new(), Vec::new());
    let mut open = OpenGate::default();
    let mut paths: Option<Vec<(String, OpenMatch)>> = None;
    for p in parts {
        let c = match p {
            Expr::Macro { name, .. }
                if matches!(name.as_str(), "spawned_process" | "rampart_spawned_process") =>
            {
                exec = true;
                continue;
            }
            Expr::Macro { name, .. }
                if matches!(name.as_str(), "container" | "rampart_container") =>
            {
                continue;
            }
            // (evt.type in (open, openat, openat2) and evt.is_open_X=true and
            // fd.typechar='f' and fd.num>=0)
            Expr::Macro { name, .. }
                if matches!(
                    name.as_str(),
                    "open_read" | "rampart_open_read" | "open_write" | "rampart_open_write"
                ) =>
            {
                open.syscalls(&["open".into(), "openat".into(), "openat2".into()]);
                if name.ends_with("read") {
                    open.read = true;
                } else {
                    open.write = true;
                }
                open.regular_only = true;
                continue;
            }
            Expr::Check(c) => c,
            other => {
                return Err(format!(
                    "the kernel cannot check {}",
                    match other {
                        Expr::Or(_) => "an `or`".to_string(),
                        Expr::Not(_) => "a `not`".to_string(),
                        Expr::Macro { name, .. } => format!("the macro `{name}`"),
                        _ => "this condition".to_string(),
                    }
                ))
            }
        };
        let field = c.field.to_string();
        let vals = values(&c);
        match (field.as_str(), vals) {
            ("evt.type", Some(v)) if v.iter().all(|t| t == "execve" || t == "execveat") => {
                exec = true
            }
            ("evt.type", Some(v)) if v.iter().all(|t| t == "connect") => connect = true,
            ("evt.type", Some(v)) if open.syscalls(&v) => {}
            ("evt.is_open_read", Some(v)) if v == ["true"] => open.read = true,
            ("evt.is_open_write", Some(v)) if v == ["true"] => open.write = true,
            ("fd.typechar", Some(v)) if v == ["f"] => open.regular_only = true,
            ("fd.num", _)
                if c.op == Op::Ge
                    && matches!(&c.value, Some(Operand::Value(l)) if l.text == "0") => {}
            ("fd.name" | "fd.directory", _) => {
                let vals = match (&c.op, &c.value) {
                    (_, Some(Operand::Value(l))) => vec![l.text.clone()],
                    (_, Some(Operand::List(l))) => l.iter().map(|x| x.text.clone()).collect(),
                    _ => Vec::new(),
                };
                if paths.is_some() {
                    return Err("the kernel checks one fd.name or fd.directory test".into());
                }
                paths = Some(open_paths(&field, c.op, &vals)?);
            }
            ("evt.res", Some(v)) if v == ["SUCCESS"] => {}
            ("container.id", _) if c.op == Op::Ne => {}
            ("proc.exe", Some(v)) => {
                if let Some(p) = v.iter().find(|p| !p.starts_with('/')) {
                    return Err(format!("proc.exe {p:?} is not an absolute path"));
                }
                exes.extend(v);
            }
            ("fd.sip", Some(v)) => {
                for a in v {
                    addrs.push(
                        a.parse::<IpAddr>()
                            .map_err(|_| format!("fd.sip {a:?} is not an address"))?,
                    );
                }
            }
            ("fd.sport" | "fd.rport", Some(v)) => {
                for p in v {
                    ports.push(
                        p.parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or_else(|| format!("{field} {p:?} is not a port"))?,
                    );
                }
            }
            _ => {
                return Err(format!(
                    "the kernel cannot check `{field} {}`",
                    c.op.as_str()
                ))
            }
        }
    }
    if open.seen {
        if exec || connect || !exes.is_empty() || !addrs.is_empty() || !ports.is_empty() {
            return Err("not an exec, a connect or an open of its own (evt.type)".into());
        }
        if open.syscalls.as_ref().is_some_and(Vec::is_empty) {
            return Err("evt.type tests that no open syscall passes".into());
        }
        if open.read && open.write {
            return Err("the kernel checks opens for reading or writing, not both".into());
        }
        let Some(paths) = paths.filter(|p| !p.is_empty()) else {
            return Err("an open rule compiles with an fd.name or fd.directory test only".into());
        };
        let mut syscalls = open.syscalls.unwrap_or_default();
        if syscalls.len() == OpenSyscall::ALL.len() {
            syscalls.clear();
        }
        let mut opens = Vec::new();
        for (path, matches) in paths {
            let o = KillOpen {
                path,
                matches,
                syscalls: syscalls.clone(),
                read: open.read,
                write: open.write,
                regular_only: open.regular_only,
                rule: 0,
            };
            o.entry_path()?;
            opens.push(o);
        }
        return Ok(Compiled::Open(opens));
    }
    if paths.is_some() {
        return Err("fd.name or fd.directory without an open (evt.type)".into());
    }
    match (exec, connect) {
        (true, false) if !exes.is_empty() && addrs.is_empty() && ports.is_empty() => {
            Ok(Compiled::Exec(exes))
        }
        (false, true) if exes.is_empty() && (!addrs.is_empty() || !ports.is_empty()) => {
            Ok(Compiled::Connect(addrs, ports))
        }
        (true, false) => Err("an exec rule compiles with proc.exe only".into()),
        (false, true) => Err("a connect rule compiles with fd.sip and/or fd.sport only".into()),
        _ => Err("not an exec or a connect of its own (evt.type)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_the_kernel_can_check_compile_and_the_rest_say_why_not() {
        assert_eq!(
            compile(
                "evt.type in (execve, execveat) and evt.res = SUCCESS and proc.exe = /tmp/x/nc"
            ),
            Ok(Compiled::Exec(vec!["/tmp/x/nc".into()]))
        );
        assert_eq!(
            compile("spawned_process and container and proc.exe in (/usr/bin/nc, /bin/nc)"),
            Ok(Compiled::Exec(vec!["/usr/bin/nc".into(), "/bin/nc".into()]))
        );
        assert_eq!(
            compile("evt.type = connect and fd.sip = 10.0.0.1 and fd.sport in (4444, 1337)"),
            Ok(Compiled::Connect(
                vec!["10.0.0.1".parse().unwrap()],
                vec![4444, 1337]
            ))
        );
        assert_eq!(
            compile("evt.type = connect and container.id != host and fd.sport = 3333"),
            Ok(Compiled::Connect(vec![], vec![3333]))
        );
        for (cond, why) in [
            ("evt.type = execve and proc.name = nc", "proc.name"),
            (
                "evt.type = execve and (proc.exe = /a or proc.exe = /b)",
                "`or`",
            ),
            (
                "evt.type = execve and proc.exe startswith /tmp",
                "proc.exe startswith",
            ),
            ("evt.type = connect", "fd.sip"),
            ("evt.type = open and proc.exe = /x", "evt.type"),
            ("shell_procs and proc.exe = /x", "macro `shell_procs`"),
        ] {
            let e = compile(cond).unwrap_err();
            assert!(e.contains(why), "{cond}: {e}");
        }
    }

    fn open(path: &str, matches: OpenMatch) -> KillOpen {
        KillOpen {
            path: path.into(),
            matches,
            syscalls: vec![],
            read: false,
            write: false,
            regular_only: false,
            rule: 0,
        }
    }

    #[test]
    fn open_conditions_compile_to_path_entries() {
        assert_eq!(
            compile("evt.type in (open, openat, openat2, creat) and fd.name startswith /etc/ssh/"),
            Ok(Compiled::Open(vec![open("/etc/ssh/", OpenMatch::Prefix)]))
        );
        assert_eq!(
            compile("rampart_open_read and container and fd.name in (/etc/shadow, /etc/gshadow)"),
            Ok(Compiled::Open(
                ["/etc/shadow", "/etc/gshadow"]
                    .map(|p| KillOpen {
                        syscalls: vec![
                            OpenSyscall::Open,
                            OpenSyscall::Openat,
                            OpenSyscall::Openat2
                        ],
                        read: true,
                        regular_only: true,
                        ..open(p, OpenMatch::Exact)
                    })
                    .to_vec()
            ))
        );
        assert_eq!(
            compile(
                "evt.type = openat and evt.is_open_write = true and fd.directory = /etc/cron.d"
            ),
            Ok(Compiled::Open(vec![KillOpen {
                syscalls: vec![OpenSyscall::Openat],
                write: true,
                ..open("/etc/cron.d", OpenMatch::Directory)
            }]))
        );
        assert_eq!(
            compile(
                "evt.type in (open, openat) and evt.res = SUCCESS and fd.name pmatch (/root/.ssh)"
            ),
            Ok(Compiled::Open(
                [
                    open("/root/.ssh", OpenMatch::Exact),
                    open("/root/.ssh/", OpenMatch::Prefix)
                ]
                .map(|o| KillOpen {
                    syscalls: vec![OpenSyscall::Open, OpenSyscall::Openat],
                    ..o
                })
                .to_vec()
            ))
        );
        for (cond, why) in [
            (
                "evt.type = openat and fd.name endswith .pem",
                "fd.name endswith",
            ),
            ("evt.type = openat and fd.name startswith etc/", "absolute"),
            (
                "evt.type = openat and fd.name startswith /a and fd.directory = /b",
                "one fd.name",
            ),
            (
                "evt.type = openat and proc.name = cat and fd.name = /x",
                "proc.name",
            ),
            ("evt.type = openat", "fd.name or fd.directory"),
            ("fd.name startswith /etc", "without an open"),
            (
                "rampart_open_read and evt.type = creat and fd.name = /x",
                "no open syscall",
            ),
            ("open_read and open_write and fd.name = /x", "not both"),
            ("evt.type in (openat, execve) and fd.name = /x", "evt.type"),
        ] {
            let e = compile(cond).unwrap_err();
            assert!(e.contains(why), "{cond}: {e}");
        }
        let long = format!(
            "evt.type = openat and fd.name startswith /{}",
            "a".repeat(300)
        );
        assert!(compile(&long).unwrap_err().contains("longer than"));
    }

    #[test]
    fn rules_files_are_sorted_into_kernel_and_user_space() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("r.yaml"),
            "- rule: Miner exec\n  desc: d\n  condition: spawned_process and proc.exe = /tmp/xmrig\n  output: o\n  priority: CRITICAL\n  action: kill\n\
             - rule: Pool connect\n  desc: d\n  condition: evt.type = connect and fd.sport = 3333\n  output: o\n  priority: CRITICAL\n  action: kill\n\
             - rule: Shell\n  desc: d\n  condition: spawned_process and proc.name = sh\n  output: o\n  priority: CRITICAL\n  action: kill\n\
             - rule: Alert only\n  desc: d\n  condition: spawned_process and proc.exe = /bin/ls\n  output: o\n  priority: NOTICE\n\
             - rule: Shadow read\n  desc: d\n  condition: open_read and fd.name = /etc/shadow\n  output: o\n  priority: CRITICAL\n  action: kill\n\
             - rule: Shadow any\n  desc: d\n  condition: evt.type = openat and fd.name = /etc/shadow\n  output: o\n  priority: CRITICAL\n  action: kill\n",
        )
        .unwrap();
        let k = kill_rules(&[dir.path().to_path_buf()]);
        assert_eq!(
            k.in_kernel,
            [
                ("Miner exec".to_string(), 1),
                ("Pool connect".to_string(), 2),
                ("Shadow read".to_string(), 3)
            ]
        );
        assert_eq!(k.kernel.opens.len(), 1);
        assert_eq!((k.kernel.opens[0].rule, k.kernel.opens[0].read), (3, true));
        assert_eq!(k.kernel.exec_paths, [("/tmp/xmrig".to_string(), 1)]);
        assert_eq!(
            k.kernel.connects,
            [KillConnect {
                addr: None,
                port: 3333,
                rule: 2
            }]
        );
        assert_eq!(k.user_space.len(), 2);
        assert_eq!(k.user_space[0].0, "Shell");
        assert!(
            k.user_space[0].1.contains("proc.name"),
            "{:?}",
            k.user_space
        );
        // The same file under other conditions: the entry is taken, user space acts.
        assert_eq!(k.user_space[1].0, "Shadow any");
        assert!(
            k.user_space[1].1.contains("Shadow read"),
            "{:?}",
            k.user_space
        );
    }
}
