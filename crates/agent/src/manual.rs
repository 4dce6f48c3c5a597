//! The node's response front doors: the response stage with the responder it shares
//! with the control socket (`rampart respond` through a running `rampart up`), the
//! Docker authorization plugin when configured, and the direct path for when no node
//! runs (the action is taken by the CLI and its audit alerts still reach the flight
//! recorder and the alert outputs, through a pipeline of just those stages).

use std::sync::mpsc;
use std::sync::Arc;

use rampart_authz::{ManagedPlugin, Policy as AuthzPolicy};
use rampart_event::{Alert, Event};
use rampart_respond::control::{audit_event, hostname, ControlServer};
use rampart_respond::{AuditRecord, PolicyStore, Responder, Toolbox};

use crate::config::{NodeConfig, ResponseSection};
use crate::kernel_kill::KillRules;
use crate::node::NodeError;
use crate::pipeline::{Controls, PipelineBuilder};
use crate::stage::{Batch, Stage, StageContext, StageError, Subscription};
use crate::stages::{OutputsStage, RecorderStage, ResponseStage};

/// The response stage (with the policy, or none to act on alerts but a responder for
/// manual commands) and the control socket feeding it. A control socket that cannot
/// be bound (another node holds it) is logged, not fatal.
pub fn response_stage(
    sec: &ResponseSection,
    kills: &KillRules,
) -> Result<(Option<ResponseStage>, Option<ControlServer>, bool), NodeError> {
    let any_kills = !kills.in_kernel.is_empty() || !kills.user_space.is_empty();
    if sec.policy.is_none() && sec.control_socket.is_none() && !any_kills {
        return Ok((None, None, false));
    }
    let policy = match &sec.policy {
        Some(path) => {
            let p = PolicyStore::open(path).map_err(NodeError::Response)?;
            tracing::info!(policy = %path.display(), "response policy loaded");
            p
        }
        None => PolicyStore::empty(),
    };
    let toolbox = Toolbox::new();
    let responder = Arc::new(Responder::new(Arc::new(policy), toolbox.clone()));
    // Rules marked `action: kill`: in the kernel where they compiled, else here.
    let mut user_space: Vec<String> = kills.user_space.iter().map(|(r, _)| r.clone()).collect();
    let mut kernel_set = false;
    if !kills.in_kernel.is_empty() {
        match toolbox
            .guard()
            .and_then(|mut g| Ok(g.set_kernel_kills(&kills.kernel)?))
        {
            Ok(()) => {
                kernel_set = true;
                for (rule, _) in &kills.in_kernel {
                    tracing::info!(rule = %rule, "action: kill enforced in the kernel (on the syscall's own hook)");
                }
            }
            Err(e) => {
                tracing::warn!("kernel kills unavailable ({e}); those rules kill from user space");
                user_space.extend(kills.in_kernel.iter().map(|(r, _)| r.clone()));
            }
        }
    }
    for (rule, why) in &kills.user_space {
        tracing::info!(rule = %rule, "action: kill from user space (not compiled to the kernel: {why})");
    }
    responder.set_rule_kills(user_space);
    if kernel_set {
        responder.set_kernel_kills(kills.in_kernel.iter().map(|(r, _)| r.clone()));
    }
    let stage = ResponseStage::with_responder(responder.clone());
    let mut control = None;
    if let Some(path) = &sec.control_socket {
        let tx = stage.audit_sender();
        let host = hostname();
        let on_audit = Box::new(move |rec: AuditRecord| {
            let ev = audit_event(&rec, &host);
            let _ = tx.send((rec, ev));
        });
        match ControlServer::start(path, responder, on_audit) {
            Ok(c) => {
                tracing::info!(socket = %path.display(), "manual response: control socket (root only)");
                control = Some(c);
            }
            Err(e) => tracing::warn!("manual response: no control socket: {e}"),
        }
    }
    Ok((Some(stage), control, kernel_set))
}

/// Lifts the kernel kills a node put in place from its rules.
pub fn release_kernel_kills() {
    match rampart_bpf::response::ResponseGuard::open().and_then(|mut g| g.release_kernel_kills()) {
        Ok(()) => tracing::info!("kernel kills of the rules lifted"),
        Err(e) => tracing::warn!("lifting the kernel kills of the rules: {e}"),
    }
}

/// The Docker authorization plugin, when `response.docker_authz` is set.
pub fn docker_authz(sec: &ResponseSection) -> Result<Option<ManagedPlugin>, NodeError> {
    let Some(a) = &sec.docker_authz else {
        return Ok(None);
    };
    let policy = match &a.policy {
        Some(p) => AuthzPolicy::load(p),
        None => AuthzPolicy::default_policy(),
    }
    .map_err(NodeError::Authz)?;
    let plugin = ManagedPlugin::start(&a.socket_dir, &a.name, policy).map_err(NodeError::Authz)?;
    tracing::info!(
        socket = %a.socket_dir.join(format!("{}.sock", a.name)).display(),
        "docker authorization plugin serving"
    );
    Ok(Some(plugin))
}

/// Raises the given alerts once, from `start`.
struct Emit(Vec<Alert>);

impl Stage for Emit {
    fn name(&self) -> &str {
        "manual-response"
    }
    fn subscription(&self) -> Subscription {
        Subscription {
            events: false,
            alerts: false,
            lifecycle: false,
        }
    }
    fn start(&mut self, ctx: &StageContext) -> Result<(), StageError> {
        for a in self.0.drain(..) {
            ctx.emit_alert(a);
        }
        Ok(())
    }
    fn handle(&mut self, _batch: &Batch, _ctx: &StageContext) -> Result<(), StageError> {
        Ok(())
    }
}

/// The direct path's audit: the records, as audit alerts, into the flight recorder
/// and the alert outputs the node's configuration names.
pub fn record_audits(cfg: &NodeConfig, records: &[AuditRecord]) -> Result<(), NodeError> {
    let host = hostname();
    let alerts: Vec<Alert> = records
        .iter()
        .map(|r| r.to_alert(audit_event(r, &host)))
        .collect();
    let mut builder = PipelineBuilder::new();
    if cfg.recorder.enabled {
        let (stage, _) =
            RecorderStage::open(cfg.recorder.recorder_config()).map_err(NodeError::Recorder)?;
        builder = builder.stage(stage);
    }
    let (outputs, _) =
        OutputsStage::new(&cfg.outputs.clone().unwrap_or_default()).map_err(NodeError::Outputs)?;
    let pipeline = builder.stage(Emit(alerts)).stage(outputs).start()?;
    // No events: the router stops at once and delivers what the stages raised.
    let (tx, mut rx) = mpsc::channel::<Event>();
    drop(tx);
    pipeline.run(&mut rx, &Controls::default());
    Ok(())
}
