//! `rampart central`: consumes the fleet's batches from NATS JetStream into the store
//! (PostgreSQL or SQLite), serves enrollment; `init` makes the fleet's CA and
//! certificates, `enroll-token` issues a one-time node token. Arguments only: the
//! logic is `rampart-central`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use rampart_central::config::{CentralFile, DEFAULT_CENTRAL_CONFIG, DEFAULT_PKI_DIR};
use rampart_central::pki::PkiFiles;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CentralArgs {
    #[command(subcommand)]
    pub command: Option<CentralCommand>,
    /// YAML configuration (see `rampart central --print-default-config`).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Print the default configuration and exit.
    #[arg(long)]
    pub print_default_config: bool,
}

#[derive(Subcommand, Debug)]
pub enum CentralCommand {
    /// Create the fleet's CA, the server certificate (nats-server and enrollment) and
    /// central's NATS client certificate; print the nats-server TLS block.
    Init {
        #[arg(long, default_value = DEFAULT_PKI_DIR)]
        dir: PathBuf,
        /// A name or address nodes reach central and NATS by (repeatable);
        /// localhost and 127.0.0.1 are always included.
        #[arg(long = "server-name")]
        server_names: Vec<String>,
        /// Do nothing when the directory already holds a CA (an init container's
        /// second start).
        #[arg(long)]
        if_missing: bool,
    },
    /// Issue a one-time enrollment token for a node.
    EnrollToken {
        /// The node's name (its certificate's CN and its name in the fleet).
        #[arg(long)]
        node: String,
        /// How long the token stays valid, e.g. 30m, 1h.
        #[arg(long, default_value = "1h")]
        ttl: String,
        #[arg(long, default_value = DEFAULT_PKI_DIR)]
        dir: PathBuf,
    },
    /// Revoke a node: NATS refuses its certificate (central makes the nats-server on
    /// this host reload its users; elsewhere run `nats-server --signal reload`), its
    /// renewals are refused, and no token is issued for its name again.
    Revoke {
        #[arg(long)]
        node: String,
        #[arg(long, default_value = DEFAULT_PKI_DIR)]
        dir: PathBuf,
    },
    /// Measure the fleet paths on real servers: alerts and inventory updates through
    /// NATS JetStream into PostgreSQL, and raw events streamed from a node's recorder
    /// on request.
    Bench(crate::fleet_bench::FleetBenchArgs),
}

pub fn run(a: CentralArgs) -> anyhow::Result<i32> {
    match a.command {
        Some(CentralCommand::Init {
            dir,
            server_names,
            if_missing,
        }) => {
            if if_missing
                && rampart_central::pki::PkiFiles::in_dir(&dir)
                    .ca_cert
                    .exists()
            {
                println!("CA exists in {}: kept", dir.display());
                return Ok(0);
            }
            let r = rampart_central::pki::init(&dir, &server_names)?;
            println!(
                "CA: {} (key {}, 0600)",
                r.files.ca_cert.display(),
                r.files.ca_key.display()
            );
            println!("CA SHA-256: {}", r.ca_fingerprint);
            println!(
                "server certificate for {}: {}",
                r.server_names.join(", "),
                r.files.server_cert.display()
            );
            println!(
                "central's NATS client certificate: {}",
                r.files.central_cert.display()
            );
            let fleet = rampart_central::registry::write_nats_conf(&r.files)?;
            println!(
                "nats-server configuration (mutual TLS, each node only its own subjects), also in {}:",
                fleet.display()
            );
            print!("{}", rampart_central::registry::nats_fleet_conf(&r.files));
            return Ok(0);
        }
        Some(CentralCommand::EnrollToken { node, ttl, dir }) => {
            let ttl: Duration = humantime::parse_duration(&ttl)
                .map_err(|e| anyhow::anyhow!("--ttl {ttl:?}: {e} (e.g. 30m, 1h)"))?;
            let token = rampart_central::enroll::issue_token(&PkiFiles::in_dir(&dir), &node, ttl)?;
            println!("{token}");
            eprintln!(
                "rampart: one-time token for node {node}, valid {}: rampart node enroll CENTRAL:8444 TOKEN",
                humantime::format_duration(ttl)
            );
            return Ok(0);
        }
        Some(CentralCommand::Revoke { node, dir }) => {
            let files = PkiFiles::in_dir(&dir);
            let n = rampart_central::registry::revoke(&files, &node)?;
            println!(
                "node {} revoked; {} certificate(s) it held are refused",
                n.name,
                n.certs.len()
            );
            if rampart_central::registry::reload_nats(&files)? {
                println!("nats-server on this host reloads its users");
            } else {
                println!("reload nats-server where it runs (nats-server --signal reload) so it refuses the node");
            }
            return Ok(0);
        }
        Some(CentralCommand::Bench(b)) => return crate::fleet_bench::run(b),
        None => {}
    }
    if a.print_default_config {
        print!("{DEFAULT_CENTRAL_CONFIG}");
        return Ok(0);
    }
    let file = CentralFile::load(a.config.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let duration = a.duration.map(Duration::from_secs);
    let report = rt.block_on(rampart_central::service::run_service(
        file,
        |h| match h.api_addr {
            Some(a) => {
                tracing::info!("rampart central: consuming the fleet's batches; API on https://{a}")
            }
            None => tracing::info!("rampart central: consuming the fleet's batches"),
        },
        async move {
            let stop = async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                }
            };
            match duration {
                Some(d) => {
                    tokio::select! { _ = stop => {}, _ = tokio::time::sleep(d) => {} }
                }
                None => stop.await,
            }
        },
    ))?;
    eprintln!("rampart: central: {}", serde_json::to_string(&report)?);
    Ok(0)
}
