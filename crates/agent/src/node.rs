//! A node: the sensor as the pipeline's source, and the stages `rampart up` runs
//! (recorder, detection, response, the bus publisher, then outputs), built from the
//! node's configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_detect::RuleEngine;
use serde::Serialize;

use crate::config::{ConfigError, NodeConfig};
use crate::pipeline::{Controls, EventSource, PipelineBuilder, PipelineError, PipelineStats};
use crate::stage::StageError;
use crate::stages::{
    BusPublisherConfig, BusPublisherStage, DetectionStage, OutputsReport, OutputsStage,
    RecorderStage,
};
use rampart_bus::{Backplane, SpoolStats};

/// What a node runs with, beyond its configuration file.
#[derive(Debug, Default)]
pub struct NodeOptions {
    pub config: NodeConfig,
    /// Rules files or directories that replace the configuration's `rules:`.
    pub rules: Vec<PathBuf>,
    /// Stop after this long (default: until SIGINT or SIGTERM).
    pub duration: Option<Duration>,
    /// Publish alerts and container lifecycle to central through this backplane
    /// (`rampart up`: the in-process bus; `rampart node`: NATS JetStream).
    pub publisher: Option<Publisher>,
    /// Receives the sensor's counters once it has started (the API's sensor health).
    pub sensor_stats: Option<Arc<std::sync::OnceLock<Arc<rampart_sensor::Stats>>>>,
    /// Rules files deployed from central: loaded after the node's own rules.
    pub deployed_rules: Option<PathBuf>,
    /// Set to reload (as SIGHUP does): a deploy from central raises it.
    pub reload: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// With a publisher: the sensor's health goes to central this often (default 15 s).
    pub health_every: Option<Duration>,
}

/// The bus publisher a node runs with: where to publish and on which runtime the
/// backplane's client lives.
pub struct Publisher {
    pub config: BusPublisherConfig,
    pub backplane: Arc<dyn Backplane>,
    pub runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a node reports once it has stopped.
#[derive(Debug, Serialize)]
pub struct NodeReport {
    pub pipeline: PipelineStats,
    pub outputs: OutputsReport,
    /// The recorder's counters (appended, shed, blocks, bytes…), when it ran.
    pub recorder: Option<rampart_recorder::Stats>,
    /// The bus spool's counters (queued, sent, dropped), when the node published.
    pub bus: Option<SpoolStats>,
}

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("rules: {0}")]
    Rules(#[from] rampart_detect::EngineError),
    #[error("outputs: {0}")]
    Outputs(StageError),
    #[error("{0}")]
    Recorder(StageError),
    #[error("bus: {0}")]
    Bus(StageError),
    #[error("response policy: {0}")]
    Response(rampart_respond::RespondError),
    #[error("baselines: {0}")]
    Baseline(StageError),
    #[error("docker authz: {0}")]
    Authz(rampart_authz::AuthzError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("sensor: {0}")]
    Sensor(#[from] rampart_sensor::SensorError),
    #[error("signals: {0}")]
    Signals(std::io::Error),
}

/// Runs sensor, detection and outputs until SIGINT/SIGTERM (or the duration); SIGHUP
/// reloads the rules.
pub fn run_node(opts: NodeOptions) -> Result<NodeReport, NodeError> {
    run_node_from(opts, None)
}

/// As [`run_node`], with the events from `source` instead of the sensor when given (a
/// recorded file: `rampart node --replay`); the node stops when the source ends.
pub fn run_node_from(
    opts: NodeOptions,
    source: Option<Box<dyn EventSource>>,
) -> Result<NodeReport, NodeError> {
    let cfg = &opts.config;
    let mut rules = cfg.rule_paths(&opts.rules)?;
    if let Some(dir) = &opts.deployed_rules {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "the deployed rules directory cannot be made");
        }
        rules.push(dir.clone());
    }
    let mut sensor_config = cfg.sensor.sensor_config()?;
    let (engine, errors) = RuleEngine::load_with(&rules, cfg.noise())?;
    // User names from the passwd file of each process's own root (its image's).
    let engine = engine.with_users(Arc::new(rampart_detect::HostPasswd::default()));
    for e in &errors {
        eprintln!("rampart: rule not loaded: {e}");
    }
    tracing::info!(
        rules = engine.ruleset().rules().len(),
        failed = errors.len(),
        "rules loaded"
    );
    let outputs_config = cfg.outputs.clone().unwrap_or_default();
    let (outputs, outputs_report) =
        OutputsStage::new(&outputs_config).map_err(NodeError::Outputs)?;
    let mut controls = Controls::from_signals(opts.duration.map(|d| Instant::now() + d))
        .map_err(NodeError::Signals)?;
    if let Some(flag) = &opts.reload {
        signal_hook::flag::register(signal_hook::consts::SIGHUP, flag.clone())
            .map_err(NodeError::Signals)?;
        controls.reload = flag.clone();
    }
    let publishing_node = opts.publisher.as_ref().map(|p| p.config.node.clone());
    // Built first: the scanner and the fleet reports send through it.
    let publisher = match opts.publisher {
        Some(p) => {
            Some(BusPublisherStage::new(p.config, p.backplane, p.runtime).map_err(NodeError::Bus)?)
        }
        None => None,
    };
    let reports = publisher.as_ref().map(BusPublisherStage::reports);
    let mut builder = PipelineBuilder::new();
    // First, so it stops last but for the outputs: everything the others raise while
    // stopping is recorded.
    let mut recorder_report = None;
    let mut recorder_lag = None;
    if cfg.recorder.enabled {
        let (stage, report) =
            RecorderStage::open(cfg.recorder.recorder_config()).map_err(NodeError::Recorder)?;
        let stage = stage.with_stats_every(Some(Duration::from_secs(cfg.recorder.stats_secs)));
        recorder_lag = stage.lag_probe();
        tracing::info!(dir = %cfg.recorder.dir.display(), "recording");
        builder = builder.stage(stage);
        recorder_report = Some(report);
    }
    let mut detection = DetectionStage::new(engine);
    let mut baseline = None;
    if cfg.baseline.enabled {
        let (stage, handle) = crate::stages::BaselineStage::open(cfg.baseline.clone())
            .map_err(NodeError::Baseline)?;
        detection = detection.with_adjust(Box::new(move |a| {
            handle.downgrade(a);
        }));
        baseline = Some(stage);
    }
    builder = builder.stage(detection);
    if let Some(stage) = baseline {
        builder = builder.stage(stage);
    }
    if let Some(net) = cfg.network.as_ref().filter(|n| n.enabled) {
        builder = builder.stage(crate::stages::NetflowStage::new(net.clone()));
    }
    if cfg.scanner.enabled {
        let mut stage =
            crate::stages::ImageScanStage::new(cfg.scanner.stage_config(cfg.sensor.all_opens));
        if let Some(r) = &reports {
            stage = stage.with_reports(r.clone());
        }
        builder = builder.stage(stage);
    }
    // Before the outputs, so the audit alerts of actions reach them, at stop too.
    let kills = crate::kernel_kill::kill_rules(&rules);
    if cfg.response.policy.is_some() || !kills.in_kernel.is_empty() || !kills.user_space.is_empty()
    {
        // Before the stage and sensor threads start: they inherit it.
        boost_priority(cfg.response.priority_boost);
        // Actions wait for their alert, and the ring's drain is most of that wait.
        sensor_config.drain_interval = cfg.sensor.drain_interval(true);
    }
    let (stage, control, kernel_kills) = crate::manual::response_stage(&cfg.response, &kills)?;
    if let Some(stage) = stage {
        builder = builder.stage(stage);
    }
    let _authz = crate::manual::docker_authz(&cfg.response)?;
    let sensor_stats = opts.sensor_stats.clone().unwrap_or_default();
    let mut spool = None;
    if let Some(stage) = publisher {
        spool = Some(stage.spool());
        builder = builder.stage(stage);
    }
    // Central keeps the fleet's network graph from the nodes' flow summaries.
    let flow_state = cfg.network.as_ref().filter(|n| n.enabled);
    if let (Some(node), Some(spool), Some(state_dir)) = (
        publishing_node,
        &spool,
        flow_state.and_then(|n| n.state_dir.clone()),
    ) {
        builder = builder.stage(crate::stages::FlowReportStage::new(
            crate::stages::FlowReportConfig {
                node,
                node_version: env!("CARGO_PKG_VERSION").into(),
                state_dir,
                every: Duration::from_secs(30),
            },
            spool.clone(),
        ));
    }
    if let Some(reports) = reports {
        builder = builder.stage(crate::stages::FleetReportStage::new(
            crate::stages::FleetReportConfig {
                rules: rules.clone(),
                policy: cfg.response.policy.clone(),
                health_every: opts.health_every.unwrap_or(Duration::from_secs(15)),
                sensor_stats: sensor_stats.clone(),
                spool: spool.clone(),
                recorder_lag,
            },
            reports,
        ));
    }
    let pipeline = builder.stage(outputs).start()?;
    let stats = match source {
        Some(mut source) => {
            tracing::info!("replaying recorded events through detection and outputs");
            pipeline.run(source.as_mut(), &controls)
        }
        None => {
            let mut sensor = rampart_sensor::start(sensor_config)?;
            let _ = sensor_stats.set(sensor.stats.clone());
            tracing::info!("rampart up: sensor, detection and outputs running");
            pipeline.run(&mut sensor, &controls)
        }
    };
    drop(control);
    if kernel_kills {
        crate::manual::release_kernel_kills();
    }
    let outputs = outputs_report.lock().map(|r| r.clone()).unwrap_or_default();
    let recorder = recorder_report.and_then(|r| r.lock().ok().and_then(|r| *r));
    Ok(NodeReport {
        pipeline: stats,
        outputs,
        recorder,
        bus: spool.map(|s| s.stats()),
    })
}

/// Sets the calling thread's nice to `-boost`; threads it starts afterwards inherit
/// it (on Linux the nice value is per thread). Measured with `rampart bench response`
/// on a loaded 2-core host (load average 14): kill p99 45 -> 17 ms, freeze p99 356 ->
/// 18 ms at nice -10.
fn boost_priority(boost: u8) {
    if boost == 0 {
        return;
    }
    let nice = -i32::from(boost);
    // SAFETY: setpriority takes plain integers; who = 0 is the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc == 0 {
        tracing::info!(nice, "response: the node runs at raised priority");
    } else {
        tracing::warn!(
            nice,
            error = %std::io::Error::last_os_error(),
            "response: cannot raise the node's priority (needs CAP_SYS_NICE); responses may lag on a busy CPU"
        );
    }
}
