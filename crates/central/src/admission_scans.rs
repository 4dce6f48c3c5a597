//! The admission policy's scan facts from central's own store: the scan results the
//! nodes report (`node_reports`, kind `scan`), so the webhook knows what the fleet's
//! scans know without a directory of report files.
//!
//! An image counts as scanned when any node's newest scan of a container of it is
//! stored. Its critical vulnerabilities are those of every such report; a package
//! counts as in use when any container loaded it. The store keeps only the newest
//! report per node and target, so when a vulnerability was first known is the oldest
//! of the stored reports that have it, and no later than the first time this central
//! saw it (remembered here, so a node's rescan does not restart a grace period while
//! central runs). One reading of the store answers reviews for ten seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_admission::scans::{names_of, CriticalVuln, ImageScan, ScanFacts};
use rampart_event::fleet::NodeReport;
use rampart_event::Severity;
use rampart_store::reports::StoredReport;

pub struct StoreScans {
    store: Arc<dyn rampart_store::Store>,
    /// How long one reading of the store's scan results answers reviews: a burst of
    /// pods (a rollout) reads the store once.
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<Vec<StoredReport>>)>>,
    /// (image, vulnerability id, package) → the earliest time it was known.
    first_seen: Mutex<HashMap<(String, String, String), u64>>,
}

impl StoreScans {
    pub fn new(store: Arc<dyn rampart_store::Store>) -> Self {
        Self {
            store,
            ttl: Duration::from_secs(10),
            cached: Mutex::new(None),
            first_seen: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the store at most once per `ttl` (zero: at every review).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn reports(&self) -> Option<Arc<Vec<StoredReport>>> {
        let mut cached = self.cached.lock().ok()?;
        if let Some((at, r)) = cached.as_ref() {
            if at.elapsed() < self.ttl {
                return Some(r.clone());
            }
        }
        match self.store.reports("scan", None) {
            Ok(r) => {
                let r = Arc::new(r);
                *cached = Some((Instant::now(), r.clone()));
                Some(r)
            }
            Err(e) => {
                // Unknown is not "unscanned", but the policy can only treat the image
                // as never scanned (a `deny` on unscanned images then denies): say why.
                tracing::warn!(error = %e, "admission: scan results not read from the store");
                None
            }
        }
    }
}

impl ScanFacts for StoreScans {
    fn scan(&self, image: &str) -> Option<ImageScan> {
        let reports = self.reports()?;
        let wanted = names_of(image);
        let mut found: Option<ImageScan> = None;
        // (id, package) → (first seen, in use: any true / all false / unknown).
        let mut vulns: HashMap<(String, String), (u64, Option<bool>)> = HashMap::new();
        for r in reports.iter() {
            let NodeReport::Scan(s) = &r.report else {
                continue;
            };
            let same = s.image_id == image
                || (!s.image.is_empty() && names_of(&s.image).iter().any(|n| wanted.contains(n)));
            if !same {
                continue;
            }
            let scan = found.get_or_insert_with(ImageScan::default);
            scan.scanned_at_ns = scan.scanned_at_ns.max(s.ts_ns);
            for v in s
                .vulnerabilities
                .iter()
                .filter(|v| v.severity == Severity::Critical)
            {
                let e = vulns
                    .entry((v.id.clone(), v.package.clone()))
                    .or_insert((s.ts_ns, v.in_use));
                e.0 = e.0.min(s.ts_ns);
                e.1 = match (e.1, v.in_use) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                };
            }
        }
        let mut scan = found?;
        let mut memory = self.first_seen.lock().ok();
        let mut critical: Vec<CriticalVuln> = vulns
            .into_iter()
            .map(|((id, package), (seen, in_use))| {
                let first_seen_ns = match memory.as_mut() {
                    Some(m) => {
                        let e = m
                            .entry((image.to_string(), id.clone(), package.clone()))
                            .or_insert(seen);
                        *e = (*e).min(seen);
                        *e
                    }
                    None => seen,
                };
                CriticalVuln {
                    id,
                    package,
                    in_use,
                    first_seen_ns,
                }
            })
            .collect();
        critical.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.package.cmp(&b.package)));
        scan.critical = critical;
        Some(scan)
    }
}
