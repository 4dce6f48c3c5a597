//! The running detection engine: the current [`RuleSet`] (swapped atomically on
//! reload), alert noise control, and the background refresh of host names.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rampart_event::{Alert, Event};

use crate::alerts::{NoiseConfig, NoiseControl};
use crate::fields::EvalCtx;
use crate::hostnames::{ResolveOptions, REFRESH_EVERY};
use crate::loader::{load_files_with, LoadError};
use crate::rule::CompiledRule;
use crate::ruleset::RuleSet;
use crate::users::{NoUsers, UserDirectory};

/// Why the engine refused a load.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no rule loaded; {} error(s), first: {}", .0.len(), .0.first().map(|e| e.to_string()).unwrap_or_default())]
    NothingLoaded(Vec<LoadError>),
    #[error("reload refused, the running rules stay in place: {} error(s), first: {}", .0.len(), .0.first().map(|e| e.to_string()).unwrap_or_default())]
    ReloadRefused(Vec<LoadError>),
}

/// The running detection engine: current rules (swapped atomically on reload) and
/// alert noise control.
///
/// Host names the rules compare addresses with are re-resolved every
/// [`REFRESH_EVERY`] on a background thread that follows reloads.
pub struct RuleEngine {
    rules: ArcSwap<RuleSet>,
    noise: Mutex<NoiseControl>,
    paths: Mutex<Vec<PathBuf>>,
    resolve: ResolveOptions,
    /// Where `user.*` names come from; none until [`RuleEngine::with_users`].
    users: Arc<dyn UserDirectory>,
}

impl RuleEngine {
    /// Loads rules files; rules that fail are reported and the others run.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<(RuleEngine, Vec<LoadError>), EngineError> {
        Self::load_with(paths, NoiseConfig::default())
    }

    pub fn load_with<P: AsRef<Path>>(
        paths: &[P],
        noise: NoiseConfig,
    ) -> Result<(RuleEngine, Vec<LoadError>), EngineError> {
        Self::load_with_resolver(paths, noise, ResolveOptions::default())
    }

    /// [`RuleEngine::load_with`] with a given resolver for host names (kept for
    /// reloads and refreshes).
    pub fn load_with_resolver<P: AsRef<Path>>(
        paths: &[P],
        noise: NoiseConfig,
        resolve: ResolveOptions,
    ) -> Result<(RuleEngine, Vec<LoadError>), EngineError> {
        let (set, errors) = load_files_with(paths, &resolve);
        if set.rules().is_empty() && !errors.is_empty() {
            return Err(EngineError::NothingLoaded(errors));
        }
        let mut engine = Self::from_ruleset(set, noise, paths);
        engine.resolve = resolve;
        Ok((engine, errors))
    }

    pub fn from_ruleset<P: AsRef<Path>>(
        set: RuleSet,
        noise: NoiseConfig,
        paths: &[P],
    ) -> RuleEngine {
        set.hostnames().spawn_refresh(REFRESH_EVERY);
        RuleEngine {
            rules: ArcSwap::from_pointee(set),
            noise: Mutex::new(NoiseControl::new(noise)),
            paths: Mutex::new(paths.iter().map(|p| p.as_ref().to_path_buf()).collect()),
            resolve: ResolveOptions::default(),
            users: Arc::new(NoUsers),
        }
    }

    /// Names users from `users`: the node gives its [`HostPasswd`](crate::HostPasswd);
    /// an engine run centrally or on recorded history gives the directory that matches
    /// the events, or keeps the default (no directory: only uid 0 has a name).
    pub fn with_users(mut self, users: Arc<dyn UserDirectory>) -> Self {
        self.users = users;
        self
    }

    /// Replaces the rules atomically. Any load error refuses the reload and keeps the
    /// running set; evaluation in other threads is never blocked.
    pub fn reload<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Arc<RuleSet>, EngineError> {
        let (set, errors) = load_files_with(paths, &self.resolve);
        if !errors.is_empty() {
            return Err(EngineError::ReloadRefused(errors));
        }
        // The replaced set's refresher ends once that set is dropped.
        set.hostnames().spawn_refresh(REFRESH_EVERY);
        let set = Arc::new(set);
        self.rules.store(set.clone());
        if let Ok(mut p) = self.paths.lock() {
            *p = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        }
        Ok(set)
    }

    /// Reloads the files last loaded (SIGHUP).
    pub fn reload_same(&self) -> Result<Arc<RuleSet>, EngineError> {
        let paths = self.paths.lock().map(|p| p.clone()).unwrap_or_default();
        self.reload(&paths)
    }

    pub fn ruleset(&self) -> Arc<RuleSet> {
        self.rules.load_full()
    }

    /// Evaluates one event: alerts to deliver now (first of a burst, and aggregates of
    /// windows that closed before this event's time).
    pub fn evaluate(&self, ev: &Event) -> Vec<Alert> {
        self.evaluate_in(&EvalCtx::with_users(ev, &*self.users))
    }

    /// [`RuleEngine::evaluate`] for a recorded event (a retro-hunt): its context is
    /// [`EvalCtx::recorded`], so no rule reads the live system.
    pub fn evaluate_recorded(&self, ev: &Event) -> Vec<Alert> {
        self.evaluate_in(&EvalCtx::recorded(ev, &*self.users))
    }

    fn evaluate_in(&self, ctx: &EvalCtx<'_>) -> Vec<Alert> {
        let ev = ctx.ev;
        let set = self.rules.load();
        let mut matched: Vec<&CompiledRule> = Vec::new();
        set.for_each_match(ctx, |r| matched.push(r));
        let Ok(mut noise) = self.noise.lock() else {
            return Vec::new();
        };
        let mut out = noise.flush(ev.ts_ns);
        for r in matched {
            noise.offer(r, ctx, &mut out);
        }
        out
    }

    /// The stateless half of [`RuleEngine::evaluate`]: appends to `out` the indexes
    /// (into `set.rules()`, in load order) of the rules matching `ev`. Touches no
    /// noise-control state, so many threads may call it at once (a retro-hunt
    /// evaluates blocks of history in parallel); give the matches to
    /// [`RuleEngine::offer_recorded_matches`] (in a retro-hunt) in time order.
    pub fn match_rules(&self, set: &RuleSet, ev: &Event, out: &mut Vec<usize>) {
        let ctx = EvalCtx::with_users(ev, &*self.users);
        set.for_each_match_index(&ctx, |i| out.push(i));
    }

    /// [`RuleEngine::match_rules`] for a recorded event (a retro-hunt): its context
    /// is [`EvalCtx::recorded`], so no rule reads the live `/proc` of a process that
    /// is history.
    pub fn match_recorded_rules(&self, set: &RuleSet, ev: &Event, out: &mut Vec<usize>) {
        let ctx = EvalCtx::recorded(ev, &*self.users);
        set.for_each_match_index(&ctx, |i| out.push(i));
    }

    /// The stateful half of [`RuleEngine::evaluate_recorded`]: noise control for the
    /// rules [`RuleEngine::match_recorded_rules`] found for `ev` with the same `set`
    /// (the alerts' output fields read the recorded event only). Events that matched
    /// nothing may be left out: windows that ended before them close at the next
    /// offered event (or [`RuleEngine::flush_all`]), before it is offered, so the
    /// alerts are the same as `evaluate_recorded` on every event.
    pub fn offer_recorded_matches(&self, set: &RuleSet, ev: &Event, rules: &[usize]) -> Vec<Alert> {
        let ctx = EvalCtx::recorded(ev, &*self.users);
        let Ok(mut noise) = self.noise.lock() else {
            return Vec::new();
        };
        let mut out = noise.flush(ev.ts_ns);
        for r in rules.iter().filter_map(|&i| set.rules().get(i)) {
            noise.offer(r, &ctx, &mut out);
        }
        out
    }

    /// Closes aggregation windows that ended by `now_ns` (call on a timer).
    pub fn flush(&self, now_ns: u64) -> Vec<Alert> {
        self.noise
            .lock()
            .map(|mut n| n.flush(now_ns))
            .unwrap_or_default()
    }

    /// Closes every window (shutdown).
    pub fn flush_all(&self) -> Vec<Alert> {
        self.flush(u64::MAX)
    }
}
