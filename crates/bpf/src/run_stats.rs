//! What the kernel programs cost: the kernel's own per-program run counters
//! (`BPF_ENABLE_STATS`), read for every loaded program. The kernel keeps them only
//! while a stats handle is open, and pays two clock reads per program run for it, so
//! only benches open one. In the `-icount` qemu guest a nanosecond of guest time is
//! one instruction, which makes these the kernel side's instruction counts.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

use aya::programs::loaded_programs;
use aya::sys::{enable_stats, Stats};

use crate::BpfError;

/// Keeps the kernel's run-time accounting on while it lives.
pub struct RunStatsGuard {
    _fd: OwnedFd,
}

/// Turns on the kernel's run-time accounting for every BPF program.
pub fn enable_run_stats() -> Result<RunStatsGuard, BpfError> {
    let fd = enable_stats(Stats::RunTime).map_err(|e| BpfError::Map {
        name: "BPF_ENABLE_STATS".into(),
        reason: e.to_string(),
    })?;
    Ok(RunStatsGuard { _fd: fd })
}

/// One program's counters: runs and ns spent, since it was loaded (while accounting
/// was on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramRuns {
    pub runs: u64,
    pub run_ns: u64,
}

/// Every loaded program's counters, by (name, id). Programs whose info cannot be read
/// (gone between listing and reading) are left out.
pub fn program_runs() -> BTreeMap<(String, u32), ProgramRuns> {
    loaded_programs()
        .filter_map(Result::ok)
        .map(|p| {
            let name = p.name_as_str().unwrap_or("?").to_string();
            (
                (name, p.id()),
                ProgramRuns {
                    runs: p.run_count(),
                    run_ns: p.run_time().as_nanos() as u64,
                },
            )
        })
        .collect()
}

/// What each program ran between two snapshots, busiest first; programs that did not
/// run are left out.
pub fn runs_between(
    before: &BTreeMap<(String, u32), ProgramRuns>,
    after: &BTreeMap<(String, u32), ProgramRuns>,
) -> Vec<(String, ProgramRuns)> {
    let mut out: Vec<(String, ProgramRuns)> = after
        .iter()
        .filter_map(|(key, a)| {
            let b = before.get(key).copied().unwrap_or_default();
            let d = ProgramRuns {
                runs: a.runs.saturating_sub(b.runs),
                run_ns: a.run_ns.saturating_sub(b.run_ns),
            };
            (d.runs > 0).then(|| (key.0.clone(), d))
        })
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.1.run_ns));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_between_keeps_programs_that_ran_busiest_first() {
        let before = BTreeMap::from([
            (
                ("a".to_string(), 1),
                ProgramRuns {
                    runs: 5,
                    run_ns: 50,
                },
            ),
            (
                ("b".to_string(), 2),
                ProgramRuns {
                    runs: 1,
                    run_ns: 10,
                },
            ),
        ]);
        let after = BTreeMap::from([
            (
                ("a".to_string(), 1),
                ProgramRuns {
                    runs: 7,
                    run_ns: 70,
                },
            ),
            (
                ("b".to_string(), 2),
                ProgramRuns {
                    runs: 1,
                    run_ns: 10,
                },
            ),
            (
                ("c".to_string(), 3),
                ProgramRuns {
                    runs: 2,
                    run_ns: 300,
                },
            ),
        ]);
        let d = runs_between(&before, &after);
        assert_eq!(
            d,
            vec![
                (
                    "c".to_string(),
                    ProgramRuns {
                        runs: 2,
                        run_ns: 300
                    }
                ),
                (
                    "a".to_string(),
                    ProgramRuns {
                        runs: 2,
                        run_ns: 20
                    }
                ),
            ]
        );
    }
}
