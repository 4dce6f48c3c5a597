//! Rules marked `action: kill` (a key Falco does not know and Rampart's loader
//! ignores, so the same files still load in Falco when it is removed or tolerated):
//! each one whose condition the kernel can check is compiled to map entries of the
//! response object, which kills on the syscall's own hook; the others are reported
//! and killed from user space by the response stage when their alert arrives.
//!
//! What compiles: a conjunction of an exec check (`evt.type in (execve, execveat)`,
//! `spawned_process`) with `proc.exe = PATH` / `proc.exe in (…)`, or of a connect
//! check (`evt.type = connect`) with `fd.sip` and/or `fd.sport`/`fd.rport` (`=` or
//! `in`); `evt.res = SUCCESS`, `container.id != host` and the `container` macros may
//! be among the conjuncts (the kernel kills in containers only anyway). Anything else
//! (an `or`, a `not`, another field or operator, a user macro) is user space.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rampart_bpf::response::{KernelKills, KillConnect};
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
        Err(why) => out
            .user_space
            .push((name.to_string(), format!("{}: {why}", file.display()))),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Compiled {
    Exec(Vec<String>),
    Connect(Vec<IpAddr>, Vec<u16>),
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

    #[test]
    fn rules_files_are_sorted_into_kernel_and_user_space() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("r.yaml"),
            "- rule: Miner exec\n  desc: d\n  condition: spawned_process and proc.exe = /tmp/xmrig\n  output: o\n  priority: CRITICAL\n  action: kill\n\
             - rule: Pool connect\n  desc: d\n  condition: evt.type = connect and fd.sport = 3333\n  output: o\n  priority: CRITICAL\n  action: kill\n\
             - rule: Shell\n  desc: d\n  condition: spawned_process and proc.name = sh\n  output: o\n  priority: CRITICAL\n  action: kill\n\
             - rule: Alert only\n  desc: d\n  condition: spawned_process and proc.exe = /bin/ls\n  output: o\n  priority: NOTICE\n",
        )
        .unwrap();
        let k = kill_rules(&[dir.path().to_path_buf()]);
        assert_eq!(
            k.in_kernel,
            [
                ("Miner exec".to_string(), 1),
                ("Pool connect".to_string(), 2)
            ]
        );
        assert_eq!(k.kernel.exec_paths, [("/tmp/xmrig".to_string(), 1)]);
        assert_eq!(
            k.kernel.connects,
            [KillConnect {
                addr: None,
                port: 3333,
                rule: 2
            }]
        );
        assert_eq!(k.user_space.len(), 1);
        assert_eq!(k.user_space[0].0, "Shell");
        assert!(
            k.user_space[0].1.contains("proc.name"),
            "{:?}",
            k.user_space
        );
    }
}
