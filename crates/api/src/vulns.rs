//! What `ListVulnerabilities` adds to the store's fleet-wide findings
//! (`rampart_store::reports::vulnerabilities`) from the same scan reports: the image
//! layer that introduced each package (diff id, position, Dockerfile command when the
//! node knew it), when a node first found it, the newest vulnerability database
//! update the nodes reported, and whether the finding is new since that update.

use std::collections::HashMap;

use rampart_event::fleet::NodeReport;
use rampart_proto::v1 as pb;
use rampart_store::reports::{StoredReport, VulnQuery};

/// A finding's key across the fleet: id, package, version.
type Key = (String, String, String);

/// What the scan reports say of one finding beyond the store's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra {
    pub layer: Option<String>,
    pub layer_index: Option<u32>,
    pub layer_command: Option<String>,
    /// The earliest a node found it (0: unknown).
    pub first_seen_ns: u64,
}

/// Per finding, and the newest database update any node reported (ns).
pub struct Extras {
    pub by_key: HashMap<Key, Extra>,
    pub db_updated_ns: u64,
}

impl Extras {
    /// From the scan reports, with `q`'s image, severity and fix filters.
    pub fn of(reports: &[StoredReport], q: &VulnQuery) -> Self {
        let mut by_key: HashMap<Key, Extra> = HashMap::new();
        let mut db_updated_ns = 0;
        for r in reports {
            let NodeReport::Scan(s) = &r.report else {
                continue;
            };
            db_updated_ns = db_updated_ns.max(s.db_updated_ns);
            if !q.takes_scan(s) {
                continue;
            }
            for v in s.vulnerabilities.iter().filter(|v| q.takes_finding(v)) {
                let e = by_key
                    .entry((v.id.clone(), v.package.clone(), v.version.clone()))
                    .or_default();
                if e.layer.is_none() {
                    e.layer = v.layer.clone();
                    e.layer_index = v.layer_index;
                    e.layer_command = v.layer_command.clone();
                }
                if v.first_seen_ns > 0
                    && (e.first_seen_ns == 0 || v.first_seen_ns < e.first_seen_ns)
                {
                    e.first_seen_ns = v.first_seen_ns;
                }
            }
        }
        Self {
            by_key,
            db_updated_ns,
        }
    }

    /// First found after the last database update: the update (or a new image since
    /// it) brought it.
    pub fn is_new(&self, e: &Extra) -> bool {
        self.db_updated_ns > 0 && e.first_seen_ns >= self.db_updated_ns
    }

    /// How many findings (every one, not a page) are new since the update.
    pub fn new_count(&self) -> u64 {
        self.by_key.values().filter(|e| self.is_new(e)).count() as u64
    }

    /// Fills `v`'s layer and novelty fields.
    pub fn fill(&self, v: &mut pb::Vulnerability) {
        let key = (v.id.clone(), v.package.clone(), v.version.clone());
        let e = self.by_key.get(&key).cloned().unwrap_or_default();
        v.layer_digest = e.layer.clone().unwrap_or_default();
        v.layer_index = e
            .layer_index
            .and_then(|i| i32::try_from(i).ok())
            .unwrap_or(-1);
        v.layer_command = e.layer_command.clone().unwrap_or_default();
        v.first_seen_ns = e.first_seen_ns;
        v.new_since_db_update = self.is_new(&e);
    }
}
