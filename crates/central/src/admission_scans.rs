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
//! central runs).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rampart_admission::scans::{names_of, CriticalVuln, ImageScan, ScanFacts};
use rampart_event::fleet::NodeReport;
use rampart_event::Severity;

pub struct StoreScans {
    store: Arc<dyn rampart_store::Store>,
    /// (image, vulnerability id, package) → the earliest time it was known.
    first_seen: Mutex<HashMap<(String, String, String), u64>>,
}

impl StoreScans {
    pub fn new(store: Arc<dyn rampart_store::Store>) -> Self {
        Self {
            store,
            first_seen: Mutex::new(HashMap::new()),
        }
    }
}

impl ScanFacts for StoreScans {
    fn scan(&self, image: &str) -> Option<ImageScan> {
        let reports = match self.store.reports("scan", None) {
            Ok(r) => r,
            Err(e) => {
                // Unknown is not "unscanned": the policy then treats the image as
                // never scanned, which a `deny` on unscanned images turns into a
                // denial; say why in the log.
                tracing::warn!(error = %e, "admission: scan results not read from the store");
                return None;
            }
        };
        let wanted = names_of(image);
        let mut found: Option<ImageScan> = None;
        // (id, package) → (first seen, in use: any true / all false / unknown).
        let mut vulns: HashMap<(String, String), (u64, Option<bool>)> = HashMap::new();
        for r in &reports {
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
