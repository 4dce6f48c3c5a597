//! `rampart respond` (manual response, through the running node's control socket or
//! directly) and `rampart authz` (Docker's authorization plugin, standalone, and its
//! break-glass deregistration): arguments only; the work is in rampart-respond,
//! rampart-authz and rampart-agent.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use rampart_agent::NodeConfig;
use rampart_authz::{daemon, ManagedPlugin, Policy as AuthzPolicy, PLUGIN_SOCKET_DIR};
use rampart_respond::control::{self, Command, Verb};
use rampart_respond::{PolicyStore, Responder, Toolbox};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum VerbArg {
    Kill,
    Freeze,
    Unfreeze,
    Stop,
    Restart,
    Quarantine,
    Release,
    DenyExec,
}

impl From<VerbArg> for Verb {
    fn from(v: VerbArg) -> Self {
        match v {
            VerbArg::Kill => Verb::Kill,
            VerbArg::Freeze => Verb::Freeze,
            VerbArg::Unfreeze => Verb::Unfreeze,
            VerbArg::Stop => Verb::Stop,
            VerbArg::Restart => Verb::Restart,
            VerbArg::Quarantine => Verb::Quarantine,
            VerbArg::Release => Verb::Release,
            VerbArg::DenyExec => Verb::DenyExec,
        }
    }
}

#[derive(Args, Debug)]
pub struct RespondArgs {
    /// What to do.
    #[arg(value_enum)]
    pub verb: VerbArg,
    /// The container (name or id).
    pub target: Option<String>,
    /// Why: recorded in the audit trail with your name and uid (required).
    #[arg(long)]
    pub reason: String,
    /// release: everything rampart put in place (kernel rules and links, freezes).
    #[arg(long)]
    pub all: bool,
    /// kill: this process of the container and its tree (default: the main process).
    #[arg(long)]
    pub pid: Option<u32>,
    /// deny-exec: a path as the container sees it (repeatable).
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// deny-exec: anything written into the container after it started.
    #[arg(long)]
    pub not_in_image: bool,
    /// quarantine: let DNS to the host's resolvers through.
    #[arg(long)]
    pub allow_dns: bool,
    /// stop, restart: seconds between SIGTERM and SIGKILL.
    #[arg(long)]
    pub grace: Option<i32>,
    /// Check and say what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The running node's control socket.
    #[arg(long, default_value = control::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Act here even if a node is running (its audit still goes to the recorder and
    /// outputs of --config).
    #[arg(long)]
    pub direct: bool,
    /// The node configuration whose recorder and outputs the direct path writes to.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

fn operator() -> String {
    ["SUDO_USER", "LOGNAME", "USER"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

pub fn run_respond(a: RespondArgs) -> anyhow::Result<i32> {
    let cmd = Command {
        verb: a.verb.into(),
        target: a.target,
        all: a.all,
        pid: a.pid,
        reason: a.reason,
        operator: operator(),
        deny_paths: a.paths,
        not_in_image: a.not_in_image,
        allow_dns: a.allow_dns,
        grace_s: a.grace,
        dry_run: a.dry_run,
    };
    cmd.validate()?;
    // SAFETY: getuid/geteuid have no preconditions.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    let records: Vec<serde_json::Value> = match (a.direct, control::send(&a.socket, &cmd)?) {
        (false, Some(reply)) => {
            if let Some(e) = reply.error {
                anyhow::bail!("the running node refused: {e}");
            }
            eprintln!("rampart: done by the running node ({})", a.socket.display());
            reply.records
        }
        _ => {
            anyhow::ensure!(euid == 0, "rampart respond acts as root only");
            let cfg = NodeConfig::load(a.config.as_deref())?;
            let responder = Responder::new(Arc::new(PolicyStore::empty()), Toolbox::new());
            let recs = control::execute(&responder, &cmd, uid)?;
            rampart_agent::manual::record_audits(&cfg, &recs)?;
            eprintln!("rampart: done directly (no node at {})", a.socket.display());
            recs.iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect()
        }
    };
    let mut ok = true;
    for r in &records {
        let result = r["result"].as_str().unwrap_or("");
        ok &= matches!(result, "done" | "simulated");
        eprintln!(
            "rampart: {} {result}: {}",
            r["action"].as_str().unwrap_or(""),
            r["detail"].as_str().unwrap_or("")
        );
    }
    Ok(if ok { 0 } else { 1 })
}

#[derive(Args, Debug)]
pub struct AuthzArgs {
    #[command(subcommand)]
    pub command: Option<AuthzCommand>,
    /// The authz policy (default: the shipped one, see --print-default-policy).
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The plugin's name in dockerd's `authorization-plugins`.
    #[arg(long, default_value = "rampart")]
    pub name: String,
    /// Where the socket NAME.sock goes; dockerd looks in /run/docker/plugins.
    #[arg(long, default_value = PLUGIN_SOCKET_DIR)]
    pub socket_dir: PathBuf,
    /// Print the default policy and exit.
    #[arg(long)]
    pub print_default_policy: bool,
    /// Check the policy and exit.
    #[arg(long)]
    pub check: bool,
}

#[derive(Subcommand, Debug)]
pub enum AuthzCommand {
    /// Take the plugin out of dockerd's daemon.json and make dockerd re-read it
    /// (SIGHUP): Docker answers again while rampart is down.
    BreakGlass {
        #[arg(long, default_value = "/etc/docker/daemon.json")]
        daemon_config: PathBuf,
        #[arg(long, default_value = "/var/run/docker.pid")]
        pidfile: PathBuf,
        #[arg(long, default_value = "rampart")]
        name: String,
    },
}

fn load_authz(p: &Option<PathBuf>) -> anyhow::Result<AuthzPolicy> {
    Ok(match p {
        Some(p) => AuthzPolicy::load(p)?,
        None => AuthzPolicy::default_policy()?,
    })
}

pub fn run_authz(a: AuthzArgs) -> anyhow::Result<i32> {
    if let Some(AuthzCommand::BreakGlass {
        daemon_config,
        pidfile,
        name,
    }) = a.command
    {
        let changed = daemon::set_registered(&daemon_config, &name, false)?;
        if changed {
            let pid = daemon::reload_dockerd(&pidfile)?;
            eprintln!(
                "rampart: {name} removed from {}; dockerd (pid {pid}) told to reload",
                daemon_config.display()
            );
        } else {
            eprintln!(
                "rampart: {name} is not in {}'s authorization-plugins (a --authorization-plugin flag needs a dockerd restart without it)",
                daemon_config.display()
            );
        }
        return Ok(0);
    }
    if a.print_default_policy {
        print!("{}", rampart_authz::policy::DEFAULT_POLICY);
        return Ok(0);
    }
    let policy = load_authz(&a.policy)?;
    if a.check {
        eprintln!("rampart: {}: ok", policy.origin.display());
        return Ok(0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())?;
    let plugin = ManagedPlugin::start(&a.socket_dir, &a.name, policy)
        .context("starting the authorization plugin")?;
    eprintln!(
        "rampart: docker authorization plugin {} serving on {}",
        a.name,
        a.socket_dir.join(format!("{}.sock", a.name)).display()
    );
    while !stop.load(Ordering::Relaxed) {
        if reload.swap(false, Ordering::Relaxed) {
            match load_authz(&a.policy) {
                Ok(p) => match plugin.handle().map(|h| h.reload(p)) {
                    Some(Err(e)) => eprintln!("rampart: reload refused: {e}"),
                    _ => eprintln!("rampart: authz policy reloaded"),
                },
                Err(e) => eprintln!("rampart: reload refused, the policy in force stays: {e:#}"),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    plugin.stop()?;
    Ok(0)
}
