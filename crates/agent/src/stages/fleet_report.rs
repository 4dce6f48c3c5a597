//! Tells central what this node runs and how its sensor is doing: the rules it loaded
//! (name, priority, tags, MITRE ids, source file) and its response policy, at start and
//! after every reload (SIGHUP, or a deploy from central), and the sensor's health (kernel,
//! hooks per family, drops per source, the bus spool's backlog) every `health_every`.
//!
//! The reports go through the bus publisher ([`ReportSender`]), so they reach central
//! the way alerts do (spooled while the bus is away). The stage receives no records.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rampart_bus::Spool;
use rampart_event::fleet::{
    DropInfo, HealthReport, HookInfo, NodeReport, PolicyInfo, RuleInfo, RulesReport,
};

use super::ReportSender;
use crate::stage::{Batch, Stage, StageContext, StageError, Subscription};

/// What the stage reports from.
pub struct FleetReportConfig {
    /// The rules files and directories the node loads (deployed ones included).
    pub rules: Vec<PathBuf>,
    /// The response policy file, if the node runs one.
    pub policy: Option<PathBuf>,
    pub health_every: Duration,
    /// The sensor's counters, once it has started.
    pub sensor_stats: Arc<OnceLock<Arc<rampart_sensor::Stats>>>,
    /// The bus spool (its backlog and drops).
    pub spool: Option<Arc<Spool>>,
    /// The flight recorder's writer (how far it is behind), when the node records.
    pub recorder_lag: Option<rampart_recorder::LagProbe>,
}

pub struct FleetReportStage {
    config: FleetReportConfig,
    reports: ReportSender,
    last_health_ns: u64,
}

impl FleetReportStage {
    pub fn new(config: FleetReportConfig, reports: ReportSender) -> Self {
        Self {
            config,
            reports,
            last_health_ns: 0,
        }
    }

    fn send_rules(&self) {
        self.reports.send(NodeReport::Rules(rules_report(
            &self.config.rules,
            self.config.policy.as_ref(),
        )));
    }
}

/// The rules `paths` define (loaded offline, as `rampart rules list` does) and the
/// policy file's text.
pub fn rules_report(paths: &[PathBuf], policy: Option<&PathBuf>) -> RulesReport {
    let (set, errors) = rampart_detect::tools::load_offline(paths);
    RulesReport {
        ts_ns: rampart_event::wall_ns(),
        rules: set
            .rules()
            .iter()
            .map(|r| RuleInfo {
                name: r.name.clone(),
                priority: format!("{:?}", r.priority).to_uppercase(),
                mitre: r.mitre.clone(),
                tags: r.tags.clone(),
                enabled: r.enabled,
                source_file: r.file.clone(),
            })
            .collect(),
        load_errors: errors.iter().map(|e| e.to_string()).collect(),
        policy: policy.and_then(|p| {
            let yaml = std::fs::read_to_string(p)
                .map_err(|e| tracing::warn!(path = %p.display(), error = %e, "response policy unreadable for the report"))
                .ok()?;
            Some(PolicyInfo {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                yaml,
            })
        }),
    }
}

/// The sensor's health: the kernel, where each hook family attached, what was lost
/// where (with the spool's drops and backlog when the node publishes).
pub fn health_report(stats: Option<&rampart_sensor::Stats>, spool: Option<&Spool>) -> HealthReport {
    let hook = |name: &str, kind: &str, attached: bool| HookInfo {
        name: name.into(),
        kind: kind.into(),
        attached,
    };
    let drop = |source: &str, count: u64| DropInfo {
        source: source.into(),
        count,
    };
    let mut report = HealthReport {
        ts_ns: rampart_event::wall_ns(),
        version: env!("CARGO_PKG_VERSION").into(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_string())
            .unwrap_or_default(),
        ..Default::default()
    };
    if let Some(stats) = stats {
        let s = stats.snapshot();
        let syscall_kind = match s.syscall_hook {
            Some(rampart_bpf::ActiveSyscallHook::Fexit) => "fexit",
            Some(rampart_bpf::ActiveSyscallHook::SyscallTracepoints) => "tracepoint",
            Some(rampart_bpf::ActiveSyscallHook::SysExit) => "raw_tracepoint",
            Some(rampart_bpf::ActiveSyscallHook::None) | None => "",
        };
        report.hooks = vec![
            hook("process", "tracepoint", true),
            hook("syscalls", syscall_kind, !syscall_kind.is_empty()),
            hook(
                "syscalls_32bit",
                syscall_kind,
                s.compat_syscalls.unwrap_or(false),
            ),
        ];
        report.hooks.extend(
            s.unhooked_syscalls
                .iter()
                .map(|n| hook(&format!("syscall:{n}"), syscall_kind, false)),
        );
        report.drops = vec![
            drop("kernel_ring_full", s.kernel_ring_full),
            drop("kernel_shed", s.kernel_shed),
            drop("queue", s.queue_drops),
            drop("output", s.output_drops),
            drop("decode", s.decode_errors),
        ];
    }
    if let Some(spool) = spool {
        let st = spool.stats();
        report.drops.push(drop("spool", st.dropped_records));
        report.bus_queued = st.queued_messages;
        report.bus_lag_ns = spool
            .oldest_age()
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }
    report
}

/// Adds how far the recorder's writer is behind: how long the oldest record waiting
/// for it has waited.
pub fn with_recorder_lag(
    mut report: HealthReport,
    probe: Option<&rampart_recorder::LagProbe>,
) -> HealthReport {
    if let Some(p) = probe {
        report.recorder_lag_ns = u64::try_from(p.lag().behind.as_nanos()).unwrap_or(u64::MAX);
    }
    report
}

impl Stage for FleetReportStage {
    fn name(&self) -> &str {
        "fleet-report"
    }

    fn subscription(&self) -> Subscription {
        Subscription {
            events: false,
            alerts: false,
            lifecycle: false,
        }
    }

    fn start(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        self.send_rules();
        Ok(())
    }

    fn handle(&mut self, _batch: &Batch, _ctx: &StageContext) -> Result<(), StageError> {
        Ok(())
    }

    fn flush(&mut self, now_ns: u64, _ctx: &StageContext) -> Result<(), StageError> {
        if now_ns.saturating_sub(self.last_health_ns) >= self.config.health_every.as_nanos() as u64
        {
            self.last_health_ns = now_ns;
            let stats = self.config.sensor_stats.get().map(Arc::as_ref);
            self.reports.send(NodeReport::Health(with_recorder_lag(
                health_report(stats, self.config.spool.as_deref()),
                self.config.recorder_lag.as_ref(),
            )));
        }
        Ok(())
    }

    /// After the other stages reloaded (it runs after them): what is in force now.
    fn reload(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        self.send_rules();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The health report's recorder lag is the writer's: zero while it keeps up, the
    /// oldest waiting record's age while it stalls.
    #[test]
    fn recorder_lag_follows_a_stalled_writer() {
        let dir = tempfile::tempdir().unwrap();
        let rec = rampart_recorder::Recorder::open(rampart_recorder::RecorderConfig::with_dir(
            dir.path(),
        ))
        .unwrap();
        let w = rampart_recorder::Writer::start(rec).unwrap();
        let probe = w.lag_probe();
        let ev = Arc::new(rampart_event::Event {
            schema: rampart_event::SCHEMA_VERSION,
            ts_ns: rampart_event::wall_ns(),
            host: "node".into(),
            seq: 0,
            process: None,
            container: Arc::new(rampart_event::Workload::Host { cgroup_id: 0 }),
            compat_syscall: false,
            payload: rampart_event::Payload::Lost {
                source: rampart_event::LossSource::Queue,
                count: 1,
                cpu: None,
            },
        });
        assert!(w.try_append_event(ev.clone()));
        w.flush().unwrap();
        let report = with_recorder_lag(health_report(None, None), Some(&probe));
        assert_eq!(report.recorder_lag_ns, 0);

        assert!(w.stall(Duration::from_millis(800)));
        assert!(w.try_append_event(ev));
        std::thread::sleep(Duration::from_millis(300));
        let stalled = with_recorder_lag(health_report(None, None), Some(&probe));
        assert!(
            stalled.recorder_lag_ns >= 250_000_000,
            "{}",
            stalled.recorder_lag_ns
        );
        w.flush().unwrap();
        let caught_up = with_recorder_lag(health_report(None, None), Some(&probe));
        assert_eq!(caught_up.recorder_lag_ns, 0);
        assert_eq!(
            with_recorder_lag(health_report(None, None), None).recorder_lag_ns,
            0
        );
    }
}
