//! `rampart up`: arguments only. The node pipeline (sensor, detection, outputs, its
//! configuration and reload) lives in `rampart-agent`; central's ingest in
//! `rampart-central`; the API in `rampart-api`. Here they are wired in one process:
//! the node's publisher stage -> in-process bus -> central -> SQLite store (with the
//! API's live alert feed) -> the API on https://127.0.0.1:8443.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rampart_agent::stages::BusPublisherConfig;
use rampart_agent::{NodeConfig, NodeOptions, Publisher, DEFAULT_CONFIG};
use rampart_api::{AlertFeed, LiveStore, LocalApiConfig};

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
    /// Central's state: the SQLite store, the bus spool, the API's tokens, admin token
    /// and certificate.
    #[arg(long, default_value = rampart_api::local::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Where the API (gRPC, HTTP/JSON, server-sent events; https) listens. Beyond
    /// loopback it needs TLS and tokens, which it always has.
    #[arg(long, default_value = rampart_api::local::DEFAULT_LISTEN)]
    pub api_listen: SocketAddr,
    /// Run the node only: no central store, no API.
    #[arg(long)]
    pub no_api: bool,
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rampart-central")
        .enable_all()
        .build()?;
    let sensor_stats = Arc::new(std::sync::OnceLock::new());
    // Deploys from the API land here and raise the node's reload, as SIGHUP does.
    let reload = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deploy = rampart_agent::fleet::DeployTargets {
        rules_dir: a.state_dir.join("deployed-rules"),
        policy: config.response.policy.clone(),
        reload: reload.clone(),
    };
    let central = if a.no_api {
        None
    } else {
        Some(runtime.block_on(start_central(
            &a,
            &config,
            sensor_stats.clone(),
            deploy.clone(),
        ))?)
    };
    let publisher = central.as_ref().map(|c| Publisher {
        config: BusPublisherConfig::new(&rampart_sensor::hostname(), a.state_dir.join("spool")),
        backplane: c.bus.clone(),
        runtime: runtime.handle().clone(),
    });
    let report = rampart_agent::run_node(NodeOptions {
        config,
        rules: a.rules,
        duration: a.duration.map(Duration::from_secs),
        publisher,
        sensor_stats: Some(sensor_stats),
        deployed_rules: Some(deploy.rules_dir.clone()),
        reload: Some(reload),
        health_every: None,
    });
    if let Some(c) = central {
        // The node has drained its spool into the bus; let central store the rest.
        let report = runtime.block_on(c.stop());
        match report {
            Ok(r) => tracing::info!(central = ?r, "central"),
            Err(e) => eprintln!("rampart: central: {e:#}"),
        }
    }
    let report = report?;
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

struct Central {
    bus: Arc<dyn rampart_bus::Backplane>,
    api: rampart_api::LocalApi,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<
        Result<rampart_central::CentralReport, rampart_central::CentralError>,
    >,
}

impl Central {
    async fn stop(self) -> anyhow::Result<rampart_central::CentralReport> {
        self.api.server.stop().await;
        // Give the bus a moment to hand central the node's last batches.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = self.stop.send(());
        Ok(self.task.await??)
    }
}

/// The local sensor's health as the API reports it: the kernel, where each hook family
/// attached, and what was lost where (as the node reports it to central).
fn sensor_health(stats: &rampart_sensor::Stats) -> rampart_proto::v1::NodeHealth {
    rampart_api::fleet::health_detail(&rampart_agent::stages::health_report(Some(stats), None))
}

type SensorSlot = Arc<std::sync::OnceLock<Arc<rampart_sensor::Stats>>>;

async fn start_central(
    a: &UpArgs,
    config: &NodeConfig,
    sensor_stats: SensorSlot,
    deploy: rampart_agent::fleet::DeployTargets,
) -> anyhow::Result<Central> {
    let bus: Arc<dyn rampart_bus::Backplane> = Arc::new(rampart_bus::InProcessBus::new(1024));
    let store_config = rampart_central::StoreConfig::Sqlite {
        path: a.state_dir.join("central.sqlite"),
    };
    let sc = store_config.clone();
    let store = tokio::task::spawn_blocking(move || rampart_central::open_store(&sc))
        .await?
        .context("opening central's store")?;
    let feed = AlertFeed::new();
    let store: Arc<dyn rampart_store::Store> = Arc::new(LiveStore::new(store, feed.clone()));
    let mut rules = config.rule_paths(&a.rules).unwrap_or_default();
    rules.push(deploy.rules_dir.clone());
    let node = rampart_sensor::hostname();
    let control_socket = config.response.control_socket.clone();
    let local_node = rampart_api::fleet::LocalNode {
        name: node.clone(),
        respond: Arc::new(move |c| local_respond(control_socket.as_deref(), c)),
        deploy: Arc::new(move |kind, doc| match kind {
            rampart_api::DeployKind::Rules => {
                rampart_agent::fleet::deploy_rules(&node, &rules, &deploy, doc)
            }
            rampart_api::DeployKind::ResponsePolicy => {
                rampart_agent::fleet::deploy_policy(&node, &deploy, doc)
            }
        }),
    };
    let api_config = LocalApiConfig {
        state_dir: a.state_dir.clone(),
        listen: a.api_listen,
        recorder_dir: config.recorder.enabled.then(|| config.recorder.dir.clone()),
        rules: config.rule_paths(&a.rules).unwrap_or_default(),
        node: rampart_sensor::hostname(),
        health: Some(rampart_api::LocalHealth(Arc::new(move || {
            sensor_stats.get().map(|s| sensor_health(s))
        }))),
        baselines: crate::risk_cmd::api_source(config)?,
    };
    if let Some(dir) = config
        .network
        .as_ref()
        .filter(|n| n.enabled)
        .and_then(|n| n.state_dir.clone())
    {
        rampart_api::network::register_state_dir(dir);
    }
    let api =
        rampart_api::start_local_with(&api_config, store.clone(), feed, Some(Arc::new(local_node)))
            .await
            .context("starting the API")?;
    eprintln!(
        "rampart: API on https://{} (gRPC, HTTP/JSON, /openapi.json; certificate {}, admin token in {})",
        api.server.local_addr,
        api.cert.display(),
        api.admin_token_file.display()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rampart_central::run_central_with(
        rampart_central::CentralConfig {
            store: store_config,
            bus: rampart_central::BusConfig::InProcess(bus.clone()),
            consumer: "central".into(),
            retention: rampart_central::RetentionConfig::default(),
            // The node's own outputs already send every alert on this host.
            outputs: None,
            ingest: Default::default(),
        },
        store,
        Arc::new(rampart_central::IngestStats::default()),
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(Central {
        bus,
        api,
        stop,
        task,
    })
}

/// A response action the API asked of this node: through the node's own control
/// socket, so it is taken by the responder `rampart respond` uses and audited the same
/// way (alert outputs, flight recorder).
fn local_respond(
    socket: Option<&std::path::Path>,
    c: &rampart_bus::rpc::RespondCommand,
) -> Result<serde_json::Value, String> {
    use rampart_respond::control::{self, Command, Verb};
    let socket = socket.ok_or(
        "this node's control socket is off (response.control_socket): it takes no response actions from the API",
    )?;
    let verb = match (c.action.as_str(), c.undo) {
        ("kill", _) => Verb::Kill,
        ("freeze", false) => Verb::Freeze,
        ("freeze", true) => Verb::Unfreeze,
        ("stop", _) => Verb::Stop,
        ("restart", _) => Verb::Restart,
        ("quarantine", false) => Verb::Quarantine,
        ("quarantine", true) => Verb::Release,
        (other, _) => {
            return Err(format!(
                "action {other:?} is not taken from the API on this node"
            ))
        }
    };
    let cmd = Command {
        verb,
        target: Some(c.container.clone()),
        all: false,
        pid: c.pid,
        reason: if c.reason.is_empty() {
            "asked through the API".into()
        } else {
            c.reason.clone()
        },
        operator: format!("api:{}", c.operator),
        deny_paths: Vec::new(),
        not_in_image: false,
        allow_dns: false,
        grace_s: None,
        dry_run: c.dry_run,
    };
    cmd.validate().map_err(|e| e.to_string())?;
    let reply = control::send(socket, &cmd)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no node listens on {}", socket.display()))?;
    if let Some(e) = reply.error {
        return Err(e);
    }
    let response = reply.records.into_iter().next().unwrap_or_default();
    let ts_ns = response
        .get("ts_ns")
        .and_then(|v| v.as_u64())
        .unwrap_or_default();
    Ok(serde_json::json!({
        "node": rampart_sensor::hostname(),
        "audit": { "id": if ts_ns == 0 { String::new() } else { rampart_event::audit_id(ts_ns) } },
        "response": response,
    }))
}
