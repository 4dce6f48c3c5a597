//! `rampart node`: the node pipeline (sensor, detection, recorder, response) publishing
//! to central over NATS JetStream with mutual TLS, and answering central's requests;
//! `rampart node enroll` gets the node's certificate. Arguments only: the pipeline is
//! `rampart-agent`, enrollment `rampart-central`, the transport `rampart-bus-nats`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use rampart_agent::config::{CentralSection, DEFAULT_NODE_TLS_DIR};
use rampart_agent::fleet::{serve_requests, DeployTargets, NodeService};
use rampart_agent::stages::BusPublisherConfig;
use rampart_agent::{NodeConfig, NodeOptions, Publisher, DEFAULT_CONFIG};
use rampart_bus_nats::{NatsBackplane, NatsConfig, NatsTls};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub command: Option<NodeCommand>,
    /// YAML configuration (`rampart up`'s, with a `central:` section).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Rules files or directories (repeatable); replaces `rules:` from the config.
    #[arg(long = "rules")]
    pub rules: Vec<PathBuf>,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<u64>,
    /// The node's name in the fleet (default: `central.node_name`, the enrolled name,
    /// or the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Feed a recorded JSON-lines file of events and container lifecycle changes
    /// through the pipeline instead of the sensor, then stop.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// Print the default configuration and exit.
    #[arg(long)]
    pub print_default_config: bool,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Get this node's certificate from central with a one-time token.
    Enroll {
        /// Central's enrollment address, `host:port` (the host must be one of the
        /// names `rampart central init --server-name` gave).
        central: String,
        /// The token from `rampart central enroll-token`.
        token: String,
        /// Where to keep the CA, the certificate and its key (0600).
        #[arg(long, default_value = DEFAULT_NODE_TLS_DIR)]
        dir: PathBuf,
    },
    /// Renew this node's certificate with central (mutual TLS with the current one),
    /// before it expires.
    Renew {
        /// Central's enrollment address, `host:port`.
        central: String,
        #[arg(long, default_value = DEFAULT_NODE_TLS_DIR)]
        dir: PathBuf,
        /// Only when the certificate expires within this (e.g. 30d); default: now.
        #[arg(long)]
        if_expires_within: Option<String>,
    },
    /// Connect to NATS once with the node's configuration and report whether it is let in.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn nats_config(c: &CentralSection, node: &str) -> NatsConfig {
    // The node's own reply inbox: the fleet's NATS permissions allow it no other.
    let mut n = NatsConfig::for_node(&c.nats_url, node);
    n.allow_plain_remote = c.allow_plain_remote;
    n.max_bytes = rampart_central::config::stream_max_bytes(c.stream_max_mb);
    n.tls = c.tls_files().map(|t| NatsTls {
        ca: t.ca,
        cert: t.cert,
        key: t.key,
    });
    n
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("rampart-bus")
        .enable_all()
        .build()?)
}

pub fn run(a: NodeArgs) -> anyhow::Result<i32> {
    match a.command {
        Some(NodeCommand::Enroll {
            central,
            token,
            dir,
        }) => {
            let creds =
                runtime()?.block_on(rampart_central::enroll::enroll(&central, &token, &dir))?;
            println!(
                "enrolled as {}: certificate {}, key {} (0600), CA {}",
                creds.node,
                creds.cert.display(),
                creds.key.display(),
                creds.ca.display()
            );
            return Ok(0);
        }
        Some(NodeCommand::Renew {
            central,
            dir,
            if_expires_within,
        }) => {
            let left = rampart_central::enroll::cert_remaining(&dir)?;
            if let Some(w) = if_expires_within {
                let within: Duration = humantime::parse_duration(&w)
                    .map_err(|e| anyhow::anyhow!("--if-expires-within {w:?}: {e} (e.g. 30d)"))?;
                if left > within {
                    println!(
                        "the certificate is valid for {} more: not renewed",
                        humantime::format_duration(Duration::from_secs(left.as_secs()))
                    );
                    return Ok(0);
                }
            }
            let creds = runtime()?.block_on(rampart_central::enroll::renew(&central, &dir))?;
            let left = rampart_central::enroll::cert_remaining(&dir)?;
            println!(
                "renewed {}: certificate {} valid for {}",
                creds.node,
                creds.cert.display(),
                humantime::format_duration(Duration::from_secs(left.as_secs()))
            );
            return Ok(0);
        }
        Some(NodeCommand::Check { config }) => {
            let cfg = NodeConfig::load(config.as_deref())?;
            let central = cfg.central.unwrap_or_default();
            let n = nats_config(&central, &central.node_name());
            runtime()?.block_on(NatsBackplane::probe(&n))?;
            println!(
                "NATS at {} lets this node in ({})",
                n.url,
                if n.tls.is_some() {
                    "mutual TLS"
                } else {
                    "plain, loopback"
                }
            );
            return Ok(0);
        }
        None => {}
    }
    if a.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return Ok(0);
    }
    let config = NodeConfig::load(a.config.as_deref())?;
    let central = config.central.clone().unwrap_or_default();
    let node = a.node_name.clone().unwrap_or_else(|| central.node_name());
    rampart_central::enroll::check_node_name(&node)?;
    let nats = nats_config(&central, &node);
    nats.check_security()?;
    let rt = runtime()?;
    let backplane = Arc::new(rt.block_on(NatsBackplane::connect(nats))?);
    let mut bus = BusPublisherConfig::new(&node, central.spool_dir.join(&node));
    bus.spool.max_bytes = central.spool_max_mb << 20;
    bus.max_records = central.batch_records.max(1);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The certificate is renewed in place before it expires; a reconnect presents the
    // new one.
    let (renew_stop, renew_stopped) = tokio::sync::oneshot::channel::<()>();
    if let (Some(addr), None) = (&central.renew_with, &central.tls) {
        rt.spawn(rampart_central::enroll::renew_when_due(
            addr.clone(),
            central.tls_dir.clone(),
            central.renew_at,
            Duration::from_secs(central.renew_check_secs.max(1)),
            async move {
                let _ = renew_stopped.await;
            },
        ));
    }
    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(addr) = &central.metrics_listen {
        let handle = rampart_metrics::install()?;
        let listener = rt.block_on(rampart_metrics::bind(addr))?;
        tracing::info!(%addr, "metrics on /metrics (loopback)");
        rt.spawn(rampart_metrics::serve(listener, handle, async move {
            let _ = metrics_stopped.await;
        }));
    }
    // Held here too, so the service (whose responder owns a Docker client with a
    // runtime of its own) is dropped on this thread after the bus runtime stops, not
    // on a bus thread, where dropping a runtime panics.
    let mut request_service = None;
    // Central's deploys land in the deployed rules directory (or over the policy file)
    // and raise the node's reload, as SIGHUP does.
    let reload = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if central.serve_requests && config.recorder.enabled {
        let mut rules = config.rule_paths(&a.rules).unwrap_or_default();
        rules.push(central.deployed_rules_dir.clone());
        let mut service = NodeService::new(&node, &config.recorder.dir, rules);
        // Incident bundles carry the alert's packets when the node captures them.
        service.captures = config.network.as_ref().map(|n| n.capture.dir.clone());
        service.deploy = Some(DeployTargets {
            rules_dir: central.deployed_rules_dir.clone(),
            policy: config.response.policy.clone(),
            reload: reload.clone(),
        });
        let service = Arc::new(service);
        request_service = Some(service.clone());
        let plane = backplane.clone();
        rt.spawn(async move {
            let stop = async move {
                let _ = stop_rx.await;
            };
            if let Err(e) = serve_requests(plane, service, stop).await {
                tracing::error!(error = %e, "central's requests cannot be served");
            }
        });
    }
    let source: Option<Box<dyn rampart_agent::EventSource>> = match &a.replay {
        Some(p) => {
            let s = rampart_agent::replay::ReplaySource::open(p)?;
            tracing::info!(file = %p.display(), records = s.len(), %node, "replaying");
            Some(Box::new(s))
        }
        None => None,
    };
    tracing::info!(%node, url = %central.nats_url, "rampart node: publishing to central");
    let report = rampart_agent::run_node_from(
        NodeOptions {
            config,
            rules: a.rules,
            duration: a.duration.map(Duration::from_secs),
            publisher: Some(Publisher {
                config: bus,
                backplane,
                runtime: rt.handle().clone(),
            }),
            sensor_stats: None,
            deployed_rules: Some(central.deployed_rules_dir.clone()),
            reload: Some(reload),
            health_every: Some(Duration::from_secs(central.health_secs.max(1))),
        },
        source,
    )?;
    let _ = stop_tx.send(());
    let _ = renew_stop.send(());
    let _ = metrics_stop.send(());
    if let Some(b) = &report.bus {
        eprintln!("rampart: bus spool: {}", serde_json::to_string(b)?);
    }
    for s in &report.pipeline.stages {
        tracing::info!(stage = ?s, "pipeline");
    }
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(request_service);
    Ok(0)
}
