//! `rampart risk`: workloads ranked by risk, with the breakdown of each score. What is
//! known comes from the baseline database (alerts counted per workload, exposure and
//! deviations from the baselines, the containers of each workload), Docker's inspect of
//! those containers that still run (privileges, published ports) and the image
//! scanner's per-container reports (vulnerabilities and whether their package is in
//! use). The scoring is `rampart_baseline::risk`'s.

use std::path::PathBuf;

use anyhow::Context;
use rampart_baseline::risk;
use rampart_baseline::SqliteBaselines;

/// Arguments of `rampart risk`.
#[derive(Debug, clap::Args)]
pub struct RiskArgs {
    /// Baseline database. Default: the node configuration's `baseline.db`.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Node configuration file (for `baseline.db` and `scanner.state_dir`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The scanner's state directory. Default: the configuration's `scanner.state_dir`.
    #[arg(long, value_name = "DIR")]
    pub scanner_state: Option<PathBuf>,
    /// Show at most this many workloads.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Include workloads with no running container.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: RiskArgs) -> anyhow::Result<i32> {
    let cfg = rampart_agent::NodeConfig::load(a.config.as_deref())?;
    let db = a.db.clone().unwrap_or_else(|| cfg.baseline.db.clone());
    let scanner_state = a
        .scanner_state
        .clone()
        .unwrap_or_else(|| cfg.scanner.state_dir.clone());
    let store = SqliteBaselines::open(&db)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let docker = bollard::Docker::connect_with_local_defaults()
        .context("cannot reach Docker for the containers' privileges")?;
    let mut running = std::collections::BTreeSet::new();
    let mut inspect = |id: &str| -> Option<serde_json::Value> {
        let c = rt
            .block_on(docker.inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            ))
            .ok()?;
        if c.state.as_ref().and_then(|s| s.running) != Some(true) {
            return None;
        }
        running.insert(id.to_string());
        serde_json::to_value(&c).ok()
    };
    let inputs = risk::gather(&store, &mut inspect, Some(&scanner_state))?;
    let inputs: Vec<_> = inputs
        .into_iter()
        .filter(|i| a.all || !i.privileges.is_empty())
        .collect();
    let mut ranked = risk::rank(&inputs, rampart_event::wall_ns());
    ranked.truncate(a.limit);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&ranked)?);
        return Ok(0);
    }
    if ranked.is_empty() {
        println!(
            "no workloads known yet (a node with `baseline.enabled: true` records them in {})",
            db.display()
        );
        return Ok(0);
    }
    println!("{:>4} {:>7}  {:<40} WHY", "RANK", "SCORE", "WORKLOAD");
    for (n, r) in ranked.iter().enumerate() {
        let mut factors = r.factors.clone();
        factors.sort_by(|a, b| b.points.total_cmp(&a.points));
        let why = factors
            .iter()
            .map(|f| format!("{} +{:.0} ({})", f.name, f.points, f.detail))
            .collect::<Vec<_>>();
        println!(
            "{:>4} {:>7.1}  {:<40} {}",
            n + 1,
            r.score,
            r.workload,
            why.first()
                .map_or("nothing known against it", String::as_str)
        );
        for w in why.iter().skip(1) {
            println!("{:>4} {:>7}  {:<40} {w}", "", "", "");
        }
    }
    Ok(0)
}

/// What `rampart up`'s API reads baselines and risk from, when baselines are on: the
/// node's baseline database, Docker's inspect, the scanner's reports.
pub fn api_source(
    cfg: &rampart_agent::NodeConfig,
) -> anyhow::Result<Option<rampart_api::baselines::BaselineSource>> {
    if !cfg.baseline.enabled {
        return Ok(None);
    }
    let store = SqliteBaselines::open(&cfg.baseline.db)?;
    let docker = std::sync::Mutex::new(None::<(tokio::runtime::Runtime, bollard::Docker)>);
    // Called on the API's blocking threads: a small runtime of its own for Docker.
    let inspect = move |id: &str| -> Option<serde_json::Value> {
        let mut d = docker.lock().ok()?;
        if d.is_none() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            *d = Some((rt, bollard::Docker::connect_with_local_defaults().ok()?));
        }
        let (rt, docker) = d.as_ref()?;
        let c = rt
            .block_on(docker.inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            ))
            .ok()?;
        if c.state.as_ref().and_then(|s| s.running) != Some(true) {
            return None;
        }
        serde_json::to_value(&c).ok()
    };
    Ok(Some(rampart_api::baselines::BaselineSource {
        store: std::sync::Arc::new(store),
        inspect: Some(std::sync::Arc::new(inspect)),
        scanner_state: Some(cfg.scanner.state_dir.clone()),
    }))
}
