//! Baselines as a stage: every container event through the learner/checker of
//! `rampart-baseline`; its deviation and anomaly alerts raised into the pipeline; the
//! alerts of every stage counted per workload (for the risk ranking); baselines saved
//! to and operators' changes picked up from the baseline database; and, for workloads
//! in protect mode, exec denial in the kernel of every executable of the container that
//! is not in the baseline (the response part's deny-exec: BPF LSM where the kernel
//! allows it, else SIGKILL at `sched_process_exec`, before the new image runs an
//! instruction, however short-lived the process).
//!
//! When the node stops, the denials stay in the kernel (pinned, fail-closed) unless
//! `baseline.protect_on_stop` is `release`; a container's end or its workload leaving
//! protect lifts them while the node runs.
//!
//! Protect's network half ([`super::baseline_net`]): the container may open only the
//! connections its baseline learned, enforced by the network part's segmentation
//! programs; a refused connect is an alert naming the edge and the workload.
//!
//! The kernel's exec denial works on a deny list; protect turns the baseline's allow
//! list into one: every executable file of the container's filesystem (walked through
//! `/proc/PID/root` when protect starts) that the baseline does not hold, plus anything
//! in the overlay's upper layer (not in the image, so never normal).

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex, MutexGuard};

use rampart_baseline::{
    workload_of, BaselineConfig, BaselineStore, Engine, ProtectOnStop, SqliteBaselines,
};
use rampart_bpf::response::ExecPolicy;
use rampart_event::{Alert, LifecycleAction};
use rampart_respond::exec::DenyExec;
use rampart_respond::target::ContainerCgroups;
use rampart_respond::{Action, Mode as RespondMode, ProcessRef, Target, Toolbox};

use super::baseline_net::NetProtect;
use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription, WhenFull};

/// Most executables one container's deny list holds (the kernel map is shared).
const MAX_DENY_PATHS: usize = 6000;
/// Directories not walked for executables.
const SKIP_DIRS: [&str; 4] = ["proc", "sys", "dev", "run"];

/// The learner shared between the stage and detection's noise control.
#[derive(Clone)]
pub struct BaselineHandle(Arc<Mutex<Engine>>);

impl BaselineHandle {
    fn lock(&self) -> MutexGuard<'_, Engine> {
        // A panic elsewhere leaves the data usable: learning goes on.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Noise control on one alert (see `Engine::downgrade`).
    pub fn downgrade(&self, alert: &mut Alert) -> bool {
        self.lock().downgrade(alert)
    }
}

pub struct BaselineStage {
    engine: BaselineHandle,
    store: Arc<dyn BaselineStore>,
    revs: HashMap<String, u64>,
    last_save_ns: u64,
    last_poll_ns: u64,
    toolbox: Arc<Toolbox>,
    /// Containers whose exec denial this stage put in place, with their cgroup ids.
    protected: HashMap<String, u64>,
    /// The workload of each container seen.
    workloads: HashMap<String, String>,
    /// Protect's network edges in the kernel.
    net: NetProtect,
    out: Vec<Alert>,
}

impl BaselineStage {
    /// Opens the baseline database and loads what it holds.
    pub fn open(cfg: BaselineConfig) -> Result<(Self, BaselineHandle), StageError> {
        let store = SqliteBaselines::open(&cfg.db).map_err(StageError::new)?;
        Self::with_store(cfg, Arc::new(store))
    }

    pub fn with_store(
        cfg: BaselineConfig,
        store: Arc<dyn BaselineStore>,
    ) -> Result<(Self, BaselineHandle), StageError> {
        let mut engine = Engine::new(cfg);
        let mut revs = HashMap::new();
        for (b, rev) in store.load_all().map_err(StageError::new)? {
            revs.insert(b.workload.clone(), rev);
            engine.install(b);
        }
        tracing::info!(workloads = revs.len(), "baselines loaded");
        let handle = BaselineHandle(Arc::new(Mutex::new(engine)));
        Ok((
            Self {
                engine: handle.clone(),
                store,
                revs,
                last_save_ns: 0,
                last_poll_ns: 0,
                toolbox: Toolbox::new(),
                protected: HashMap::new(),
                workloads: HashMap::new(),
                net: NetProtect::default(),
                out: Vec::new(),
            },
            handle,
        ))
    }

    fn save(&mut self, engine: &mut Engine) {
        let dirty: Vec<rampart_baseline::Baseline> =
            engine.take_dirty().into_iter().cloned().collect();
        for b in dirty {
            let expected = self.revs.get(&b.workload).copied().unwrap_or(0);
            match self.store.save(&b, expected) {
                Ok(Some(rev)) => {
                    self.revs.insert(b.workload.clone(), rev);
                }
                // An operator changed it meanwhile: theirs wins, ours is reloaded.
                Ok(None) => self.reload_one(engine, &b.workload),
                Err(e) => tracing::warn!(workload = %b.workload, error = %e, "baseline not saved"),
            }
        }
    }

    fn reload_one(&mut self, engine: &mut Engine, workload: &str) {
        match self.store.get(workload) {
            Ok(Some((b, rev))) => {
                tracing::info!(
                    workload,
                    rev,
                    mode = b.mode.as_str(),
                    locked = b.locked,
                    "baseline changed in the database, reloaded"
                );
                self.revs.insert(workload.to_string(), rev);
                engine.install(b);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(workload, error = %e, "baseline not reloaded"),
        }
    }

    fn poll(&mut self, engine: &mut Engine) {
        let revs = match self.store.revisions() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "baseline database not readable");
                return;
            }
        };
        for (w, rev) in revs {
            if self.revs.get(&w).is_none_or(|r| *r < rev) {
                self.reload_one(engine, &w);
            }
        }
    }

    /// Deny-exec for the containers protect mode asks for.
    fn protect(&mut self, engine: &mut Engine) {
        for req in engine.take_protect_requests() {
            let cg = ContainerCgroups::find(&req.container_id, Some(req.pid));
            let pid = cg.pids().first().copied().unwrap_or(req.pid);
            let allowed: BTreeSet<&str> = req.allowed.iter().map(String::as_str).collect();
            let deny = executables(&format!("/proc/{pid}/root"), &allowed);
            let target = Target {
                container_id: req.container_id.clone(),
                container_name: req.container_name.clone(),
                process: Some(ProcessRef {
                    pid,
                    exec_id: None,
                    exe: String::new(),
                }),
                ..Target::default()
            };
            let action = DenyExec {
                policy: ExecPolicy {
                    deny_upper_layer: true,
                    deny_paths: deny.clone(),
                },
                toolbox: self.toolbox.clone(),
            };
            // A changed baseline replaces the earlier list (denials merge otherwise).
            if self.protected.contains_key(&req.container_id) {
                if let Err(e) = action.undo(&target, RespondMode::Enforce) {
                    tracing::warn!(container = %req.container_name, error = %e, "protect: earlier exec denial not lifted");
                }
            }
            let cgid = cg
                .v2
                .as_deref()
                .and_then(|d| rampart_bpf::response::cgroup_id(d).ok());
            match action.apply(&target, RespondMode::Enforce) {
                Ok(outcome) => {
                    if let Some(cgid) = cgid {
                        self.protected.insert(req.container_id.clone(), cgid);
                    }
                    tracing::info!(
                    workload = %req.workload,
                    container = %req.container_name,
                    allowed = req.allowed.len(),
                    denied = deny.len(),
                    method = %outcome.method,
                    "protect: executables outside the baseline denied in the kernel"
                    )
                }
                Err(e) => {
                    tracing::warn!(workload = %req.workload, container = %req.container_name, error = %e, "protect: exec denial failed")
                }
            }
            if let Some(b) = engine.get(&req.workload) {
                let min_observations = engine.config().min_observations;
                self.net
                    .protect(&req, cg.v2.clone(), cgid, b, min_observations);
            }
        }
    }
}

impl BaselineStage {
    /// Lifts the denial of containers whose workload left protect mode.
    fn unprotect(&mut self, engine: &Engine) {
        let left: Vec<String> = self
            .protected
            .keys()
            .filter(|id| {
                let b = self.workloads.get(*id).and_then(|w| engine.get(w));
                !b.is_some_and(|b| b.locked && b.mode == rampart_baseline::Mode::Protect)
            })
            .cloned()
            .collect();
        for id in left {
            if let Some(cgid) = self.protected.remove(&id) {
                self.release(cgid);
            }
        }
        self.net.release_unless(|_, w| {
            engine
                .get(w)
                .is_some_and(|b| b.locked && b.mode == rampart_baseline::Mode::Protect)
        });
    }

    fn release(&self, cgid: u64) {
        match self.toolbox.guard().map(|mut g| g.release_exec(cgid)) {
            Ok(Ok(_)) => tracing::info!(cgid, "protect: exec denial lifted"),
            Ok(Err(e)) => tracing::warn!(cgid, error = %e, "protect: exec denial not lifted"),
            Err(e) => tracing::warn!(cgid, error = %e, "protect: exec denial not lifted"),
        }
    }
}

/// Executable regular files under `root` (as the container sees them: `/usr/bin/x`)
/// that are not in `allowed`, at most [`MAX_DENY_PATHS`].
fn executables(root: &str, allowed: &BTreeSet<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(format!("{root}{rel}/")) else {
            continue;
        };
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = format!("{rel}/{name}");
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                if !(rel.is_empty() && SKIP_DIRS.contains(&name)) {
                    stack.push(path);
                }
            } else if meta.is_file()
                && meta.permissions().mode() & 0o111 != 0
                && !allowed.contains(path.as_str())
            {
                if out.len() >= MAX_DENY_PATHS {
                    tracing::warn!(root, "protect: more executables than the deny list holds; the rest is not denied");
                    return out;
                }
                out.push(path);
            }
        }
    }
    out
}

impl Stage for BaselineStage {
    fn name(&self) -> &str {
        "baseline"
    }

    fn subscription(&self) -> Subscription {
        Subscription::ALL
    }

    /// Learning and protect must see every exec: as detection, a backlog here reaches
    /// the sensor's queue, whose losses show in the stream.
    fn when_full(&self) -> WhenFull {
        WhenFull::Block
    }

    fn handle(&mut self, batch: &Batch, ctx: &StageContext) -> Result<(), StageError> {
        let handle = self.engine.clone();
        let mut engine = handle.lock();
        let mut out = std::mem::take(&mut self.out);
        for record in &batch.records {
            match record {
                Record::Event(ev) => engine.observe(ev, &mut out),
                Record::Alert(a) => {
                    if let Some(c) = a.event.container.container() {
                        if let Err(e) = self.store.record_alert(&workload_of(c), a) {
                            tracing::warn!(error = %e, "alert not counted for risk");
                        }
                    }
                }
                Record::Lifecycle(l) => {
                    if matches!(
                        l.action,
                        LifecycleAction::Die { .. } | LifecycleAction::Stop
                    ) {
                        engine.container_gone(&l.container_id);
                        if let Some(cgid) = self.protected.remove(&l.container_id) {
                            self.release(cgid);
                        }
                        self.net.release_container(&l.container_id);
                    }
                }
            }
        }
        for seen in engine.take_containers_seen() {
            self.workloads
                .insert(seen.container_id.clone(), seen.workload.clone());
            if let Err(e) = self.store.note_container(
                &seen.container_id,
                &seen.name,
                &seen.workload,
                seen.ts_ns,
            ) {
                tracing::warn!(error = %e, "container not noted");
            }
        }
        self.protect(&mut engine);
        drop(engine);
        for a in out.drain(..) {
            ctx.emit_alert(a);
        }
        self.out = out;
        Ok(())
    }

    fn flush(&mut self, now_ns: u64, ctx: &StageContext) -> Result<(), StageError> {
        let handle = self.engine.clone();
        let mut engine = handle.lock();
        let mut out = std::mem::take(&mut self.out);
        engine.tick(now_ns, &mut out);
        let cfg = engine.config().clone();
        if now_ns.saturating_sub(self.last_poll_ns) >= cfg.poll_secs * 1_000_000_000 {
            self.last_poll_ns = now_ns;
            self.poll(&mut engine);
            self.unprotect(&engine);
        }
        if now_ns.saturating_sub(self.last_save_ns) >= cfg.save_secs * 1_000_000_000 {
            self.last_save_ns = now_ns;
            self.save(&mut engine);
        }
        self.protect(&mut engine);
        self.net.poll(
            cfg.repeat_secs,
            cfg.min_observations,
            |w| engine.get(w).cloned(),
            &mut out,
        );
        drop(engine);
        for a in out.drain(..) {
            ctx.emit_alert(a);
        }
        self.out = out;
        Ok(())
    }

    fn stop(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        let handle = self.engine.clone();
        let mut engine = handle.lock();
        self.save(&mut engine);
        let protected = std::mem::take(&mut self.protected);
        match engine.config().protect_on_stop {
            // Fail-closed: the denials are pinned in the kernel and stay in force
            // while no node runs; the next start takes them over (its protect
            // requests replace each container's list).
            ProtectOnStop::Keep if !protected.is_empty() => tracing::info!(
                containers = protected.len(),
                "protect: exec denials stay in the kernel while the node is stopped (baseline.protect_on_stop: keep; `rampart respond release --all` lifts them)"
            ),
            ProtectOnStop::Keep => {}
            ProtectOnStop::Release => {
                for (_, cgid) in protected {
                    self.release(cgid);
                }
            }
        }
        tracing::info!(stats = ?engine.stats, "baselines saved");
        Ok(())
    }
}
