//! `rampart up`: arguments only; the node pipeline (sensor, detection, outputs, its
//! configuration and reload) lives in `rampart-agent`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rampart_agent::{NodeConfig, NodeOptions, DEFAULT_CONFIG};

#[derive(Args, Debug)]
pub struct UpArgs {
    /// YAML configuration (see `rampart up --print-default-config`).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Rules files or directories (repeatable); replaces `rules:` from the config.
    #[arg(long = "rules")]
    pub rules: Vec<PathBuf>,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Log the flight recorder's counters (appended, shed, dropped for space,
    /// segments, bytes, oldest record) every SECS seconds; sets `recorder.stats_secs`.
    #[arg(long, value_name = "SECS")]
    pub stats: Option<u64>,
    /// Print the default configuration and exit.
    #[arg(long)]
    pub print_default_config: bool,
}

pub fn run(a: UpArgs) -> anyhow::Result<i32> {
    if a.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return Ok(0);
    }
    let mut config = NodeConfig::load(a.config.as_deref())?;
    if let Some(secs) = a.stats {
        config.recorder.stats_secs = secs;
    }
    let report = rampart_agent::run_node(NodeOptions {
        config,
        rules: a.rules,
        duration: a.duration.map(Duration::from_secs),
        publisher: None,
    })?;
    for s in &report.outputs.sinks {
        tracing::info!(sink = ?s, "output");
    }
    if let Some(r) = &report.recorder {
        tracing::info!(recorder = ?r, "recorder");
    }
    for s in &report.pipeline.stages {
        tracing::info!(stage = ?s, "pipeline");
    }
    if let Some(l) = &report.outputs.latency {
        eprintln!(
            "rampart: alert latency kernel->output over {} alerts: p50={}us p99={}us max={}us",
            l.alerts, l.p50_us, l.p99_us, l.max_us
        );
    }
    Ok(0)
}
