//! Baselines and risk in the API: `GetBaseline` and `ListRisks` read the baseline
//! database the local node learns into (`rampart up` with `baseline.enabled`), through
//! `rampart-baseline`'s store and risk ranking; `LockBaseline` and `SetBaselineMode`
//! change it as `rampart baseline lock|unlock|mode` do (one transaction on the stored
//! baseline, its revision bumped), and the node's baseline stage picks the change up at
//! its next poll (`baseline.poll_secs`): protect then denies exec in the kernel. Privileges come from a caller-given
//! inspect of the containers (Docker's inspect object), so this crate needs no Docker
//! client of its own.

use std::path::PathBuf;
use std::sync::Arc;

use rampart_baseline::{Baseline, BaselineStore, ItemKind, Mode};
use rampart_proto::v1 as pb;

use crate::core::{ApiCore, ApiError, ApiResult};

/// Docker's inspect object of a running container, `None` when it is gone.
pub type Inspect = Arc<dyn Fn(&str) -> Option<serde_json::Value> + Send + Sync>;

/// What the API reads baselines and risk from.
#[derive(Clone)]
pub struct BaselineSource {
    pub store: Arc<dyn BaselineStore>,
    pub inspect: Option<Inspect>,
    /// The scanner's state directory (per-container vulnerability reports).
    pub scanner_state: Option<PathBuf>,
}

impl std::fmt::Debug for BaselineSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaselineSource")
            .field("scanner_state", &self.scanner_state)
            .finish_non_exhaustive()
    }
}

impl ApiCore {
    /// Baselines and risk are read from `source`.
    pub fn with_baselines(mut self, source: BaselineSource) -> Self {
        self.baselines = Some(source);
        self
    }
}

fn mode(m: Mode) -> pb::BaselineMode {
    match m {
        Mode::Discover => pb::BaselineMode::Learn,
        Mode::Monitor => pb::BaselineMode::Detect,
        Mode::Protect => pb::BaselineMode::Enforce,
    }
}

fn keys(b: &Baseline, kinds: &[ItemKind]) -> Vec<String> {
    let mut out: Vec<String> = kinds
        .iter()
        .filter_map(|k| b.items.get(k))
        .flat_map(|m| m.keys().cloned())
        .collect();
    out.sort();
    out
}

pub(crate) fn to_pb(b: &Baseline) -> pb::Baseline {
    let updated = b
        .items
        .values()
        .flat_map(|m| m.values())
        .map(|i| i.last_ns)
        .chain([b.locked_ns, b.started_ns])
        .max()
        .unwrap_or(0);
    pb::Baseline {
        workload: b.workload.clone(),
        mode: mode(b.mode) as i32,
        locked: b.locked,
        processes: keys(b, &[ItemKind::Process]),
        files: keys(b, &[ItemKind::FileWrite, ItemKind::SensitiveRead]),
        connections: keys(b, &[ItemKind::Network, ItemKind::Dns]),
        updated_ns: updated,
    }
}

fn unavailable() -> ApiError {
    ApiError::Unimplemented(
        "baselines are off on this node (baseline.enabled in the node's configuration)".into(),
    )
}

fn mode_from(m: i32) -> ApiResult<Mode> {
    match pb::BaselineMode::try_from(m) {
        Ok(pb::BaselineMode::Learn) => Ok(Mode::Discover),
        Ok(pb::BaselineMode::Detect) => Ok(Mode::Monitor),
        Ok(pb::BaselineMode::Enforce) => Ok(Mode::Protect),
        Ok(pb::BaselineMode::Unspecified) | Err(_) => Err(ApiError::Invalid(format!(
            "mode: {m} is not a baseline mode (expected BASELINE_MODE_LEARN, BASELINE_MODE_DETECT or BASELINE_MODE_ENFORCE)"
        ))),
    }
}

/// What changed, for the audit record: `mode protect (locked), rev 7`.
pub(crate) fn describe(b: &pb::Baseline, rev: u64) -> String {
    let m = match pb::BaselineMode::try_from(b.mode) {
        Ok(pb::BaselineMode::Learn) => "discover",
        Ok(pb::BaselineMode::Detect) => "monitor",
        Ok(pb::BaselineMode::Enforce) => "protect",
        _ => "unspecified",
    };
    let locked = if b.locked { " (locked)" } else { "" };
    format!("mode {m}{locked}, rev {rev}")
}

/// Applies an operator's change to the stored baseline of `workload`; the new
/// baseline and its revision.
fn edit(
    source: Option<&BaselineSource>,
    workload: &str,
    f: &mut dyn FnMut(&mut Baseline),
) -> ApiResult<(pb::Baseline, u64)> {
    let source = source.ok_or_else(unavailable)?;
    if workload.is_empty() {
        return Err(ApiError::Invalid("workload: required".into()));
    }
    match source.store.update(workload, f) {
        Ok((b, rev)) => Ok((to_pb(&b), rev)),
        Err(rampart_baseline::StoreError::NotFound(_)) => Err(ApiError::NotFound(format!(
            "no baseline for workload {workload:?}"
        ))),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// `LockBaseline`: locks in monitor (a baseline already locked keeps its mode), or
/// with `locked: false` unlocks (back to discover).
pub(crate) fn lock_baseline(
    source: Option<&BaselineSource>,
    r: &pb::LockBaselineRequest,
) -> ApiResult<(pb::Baseline, u64)> {
    let now = rampart_event::wall_ns();
    edit(source, &r.workload, &mut |b| {
        if !r.locked {
            rampart_baseline::unlock(b, now);
        } else if !b.locked {
            rampart_baseline::lock(b, now, Mode::Monitor);
        }
    })
}

/// `SetBaselineMode`: learn unlocks; detect and enforce lock (see
/// [`rampart_baseline::set_mode`]).
pub(crate) fn set_baseline_mode(
    source: Option<&BaselineSource>,
    r: &pb::SetBaselineModeRequest,
) -> ApiResult<(pb::Baseline, u64)> {
    let m = mode_from(r.mode)?;
    let now = rampart_event::wall_ns();
    edit(source, &r.workload, &mut |b| {
        rampart_baseline::set_mode(b, now, m)
    })
}

pub(crate) fn get_baseline(
    source: Option<&BaselineSource>,
    workload: &str,
) -> ApiResult<pb::Baseline> {
    let source = source.ok_or_else(unavailable)?;
    if workload.is_empty() {
        return Err(ApiError::Invalid("workload: required".into()));
    }
    let found = source
        .store
        .get(workload)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    found
        .map(|(b, _)| to_pb(&b))
        .ok_or_else(|| ApiError::NotFound(format!("no baseline for workload {workload:?}")))
}

pub(crate) fn list_risks(
    source: Option<&BaselineSource>,
    limit: u32,
) -> ApiResult<pb::ListRisksResponse> {
    let source = source.ok_or_else(unavailable)?;
    let inspect = source.inspect.clone();
    let mut f = |id: &str| inspect.as_ref().and_then(|i| i(id));
    let inputs = rampart_baseline::risk::gather(
        source.store.as_ref(),
        &mut f,
        source.scanner_state.as_deref(),
    )
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut ranked = rampart_baseline::risk::rank(&inputs, rampart_event::wall_ns());
    let limit = if limit == 0 { 100 } else { limit as usize };
    ranked.truncate(limit);
    Ok(pb::ListRisksResponse {
        risks: ranked
            .into_iter()
            .map(|r| pb::WorkloadRisk {
                workload: r.workload,
                score: r.score,
                factors: r
                    .factors
                    .into_iter()
                    .map(|f| pb::RiskFactor {
                        name: f.name.to_string(),
                        detail: f.detail,
                        weight: f.points,
                    })
                    .collect(),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_baseline::SqliteBaselines;

    #[test]
    fn baselines_and_risks_come_from_the_baseline_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteBaselines::open(&dir.path().join("b.db")).unwrap());
        let mut b = Baseline::new("compose:shop/web", 5);
        rampart_baseline::profile::set_origin(
            &mut b,
            ItemKind::Process,
            "/usr/bin/python3.11 <- <runtime> : python3 -m http.server N",
            rampart_baseline::Origin::Learned,
            7,
        );
        rampart_baseline::lock(&mut b, 9, Mode::Protect);
        store.put(&b).unwrap();
        store
            .note_container("c1", "web-1", "compose:shop/web", 9)
            .unwrap();
        let source = BaselineSource {
            store: store.clone(),
            inspect: Some(Arc::new(|_: &str| {
                Some(
                    serde_json::json!({"HostConfig": {"CapAdd": ["SYS_ADMIN"]}, "Config": {"User": "1000"}}),
                )
            })),
            scanner_state: None,
        };
        let got = get_baseline(Some(&source), "compose:shop/web").unwrap();
        assert_eq!(got.mode, pb::BaselineMode::Enforce as i32);
        assert!(got.locked);
        assert_eq!(got.processes.len(), 1);
        assert!(matches!(
            get_baseline(Some(&source), "nope"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            get_baseline(None, "x"),
            Err(ApiError::Unimplemented(_))
        ));
        // Unlock, then enforce: stored, with the revision bumped each time.
        let (got, rev1) = lock_baseline(
            Some(&source),
            &pb::LockBaselineRequest {
                workload: "compose:shop/web".into(),
                locked: false,
            },
        )
        .unwrap();
        assert_eq!(
            (got.locked, got.mode),
            (false, pb::BaselineMode::Learn as i32)
        );
        let (got, rev2) = set_baseline_mode(
            Some(&source),
            &pb::SetBaselineModeRequest {
                workload: "compose:shop/web".into(),
                mode: pb::BaselineMode::Enforce as i32,
            },
        )
        .unwrap();
        assert_eq!(
            (got.locked, got.mode),
            (true, pb::BaselineMode::Enforce as i32)
        );
        assert!(rev2 > rev1);
        assert_eq!(
            describe(&got, rev2),
            format!("mode protect (locked), rev {rev2}")
        );
        let (stored, _) = store.get("compose:shop/web").unwrap().unwrap();
        assert_eq!((stored.locked, stored.mode), (true, Mode::Protect));
        assert!(matches!(
            set_baseline_mode(
                Some(&source),
                &pb::SetBaselineModeRequest {
                    workload: "compose:shop/web".into(),
                    mode: 0,
                },
            ),
            Err(ApiError::Invalid(_))
        ));
        assert!(matches!(
            lock_baseline(
                Some(&source),
                &pb::LockBaselineRequest {
                    workload: "nope".into(),
                    locked: true,
                },
            ),
            Err(ApiError::NotFound(_))
        ));
        let risks = list_risks(Some(&source), 0).unwrap();
        assert_eq!(risks.risks.len(), 1);
        assert_eq!(risks.risks[0].factors[0].name, "privileges");
        assert!(risks.risks[0].factors[0].detail.contains("SYS_ADMIN"));
    }
}
