//! The `rampart` command: wires the parts together. Each subcommand lives in its own
//! module; the parts' internals stay in their crates.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod admission_cmd;
mod baseline_cmd;
mod bench_cmd;
mod central_cmd;
mod choice;
mod db_cmd;
mod fleet_bench;
mod net_cmd;
mod node_cmd;
mod output;
mod outputs_cmd;
mod query_cmd;
mod respond_cmd;
mod risk_cmd;
mod rules_cmd;
mod scan_cmd;
mod sensor_cmd;
mod up;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: the recorder's queries and hunts decode events
/// in reader threads and free them in the consumer, and glibc's per-thread arenas made
/// that about a third of a container query's time (`rampart-recorder`'s
/// `query_profile` example: 172-229 ms against 117-157 ms for the busiest
/// container's hour).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "Container runtime security: see, detect, respond, scan"
)]
struct Cli {
    /// Log level filter (also RUST_LOG), e.g. `info`, `rampart=debug`.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run sensor, detection and alert outputs on this host.
    Up(up::UpArgs),
    /// Run a fleet node: `rampart up`'s pipeline publishing to central over NATS (mTLS).
    Node(node_cmd::NodeArgs),
    /// Run central: the fleet's batches from NATS into PostgreSQL; CA and enrollment.
    Central(central_cmd::CentralArgs),
    /// Stream kernel events, attributed to containers, as JSON lines.
    Sensor(sensor_cmd::SensorArgs),
    /// List the containers the sensor can attribute events to.
    Containers(sensor_cmd::ContainersArgs),
    /// Report what the kernel offers and whether the sensor can run here.
    Probe {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The flight recorder's history: filter, follow, show process trees, retro-hunt.
    Query(query_cmd::QueryArgs),
    /// Write an incident bundle (tar.gz) for a recorded alert.
    Incident(query_cmd::IncidentArgs),
    /// Measure the sensor: overhead, throughput, memory.
    Bench(bench_cmd::BenchArgs),
    /// Scan an image, a directory or a running container: SBOM, vulnerabilities, secrets.
    Scan(scan_cmd::ScanArgs),
    /// The local vulnerability database (OSV records).
    Db(db_cmd::DbArgs),
    /// Validate, list and test detection rules (Falco-compatible).
    Rules {
        #[command(subcommand)]
        command: rules_cmd::RulesCommand,
    },
    /// Alert outputs: validate a configuration, print the example.
    Outputs(outputs_cmd::OutputsArgs),
    /// Act on a container by hand (audited): kill, freeze, stop, quarantine, deny exec, release.
    Respond(respond_cmd::RespondArgs),
    /// Docker's authorization plugin: refuse exec into production, --privileged, host namespaces, sensitive mounts.
    Authz(respond_cmd::AuthzArgs),
    /// The network: graph, learned baselines, NetworkPolicy generation and simulation.
    Net(net_cmd::NetArgs),
    /// Behaviour baselines per workload: list, show, lock, unlock, mode, allow, forbid, export, import.
    Baseline(baseline_cmd::BaselineArgs),
    /// Workloads ranked by risk (alerts, vulnerabilities in use, exposure, privileges, deviations).
    Risk(risk_cmd::RiskArgs),
    /// Kubernetes admission policy: check manifests in CI, print the default policy.
    Admission {
        #[command(subcommand)]
        command: admission_cmd::AdmissionCommand,
    },
    /// Load generator used by `rampart bench throughput` (runs in a child process).
    #[command(hide = true)]
    BenchGenOpens,
    /// One overhead storm, run in a child process by `rampart bench overhead`.
    #[command(hide = true)]
    BenchStorm { kind: String, n: u64 },
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let code = match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rampart: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn run(cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Up(a) => up::run(a),
        Command::Node(a) => node_cmd::run(a),
        Command::Central(a) => central_cmd::run(a),
        Command::Sensor(a) => sensor_cmd::run_sensor(a),
        Command::Containers(a) => sensor_cmd::run_containers(a),
        Command::Probe { json } => {
            let f = rampart_bpf::probe();
            if json {
                println!("{}", serde_json::to_string_pretty(&f)?);
            } else {
                for line in f.report() {
                    println!("{line}");
                }
            }
            match f.check_required() {
                Ok(()) => Ok(0),
                Err(e) => {
                    eprintln!("rampart: the sensor cannot run here: {e}");
                    Ok(1)
                }
            }
        }
        Command::Query(a) => query_cmd::run_query(a),
        Command::Incident(a) => query_cmd::run_incident(a),
        Command::Bench(a) => bench_cmd::run(a),
        Command::Scan(a) => scan_cmd::run(a),
        Command::Db(a) => db_cmd::run(a),
        Command::Rules { command } => rules_cmd::run(command),
        Command::Admission { command } => admission_cmd::run(command),
        Command::Outputs(a) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(outputs_cmd::run(a)),
        Command::Respond(a) => respond_cmd::run_respond(a),
        Command::Authz(a) => respond_cmd::run_authz(a),
        Command::Net(a) => net_cmd::run(a),
        Command::Baseline(a) => baseline_cmd::run(a),
        Command::Risk(a) => risk_cmd::run(a),
        Command::BenchStorm { kind, n } => {
            bench_cmd::storm(&kind, n)?;
            Ok(0)
        }
        Command::BenchGenOpens => {
            bench_cmd::gen_opens();
            Ok(0)
        }
    }
}
