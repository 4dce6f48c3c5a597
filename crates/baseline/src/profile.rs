//! The YAML form of a baseline (`rampart baseline export|import`): items sorted by kind
//! and key so a profile diffs cleanly in git; the fitted normal ranges kept, the raw
//! per-minute samples left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::anomaly::{FeatureModel, Range, FEATURES};
use crate::model::{Baseline, Item, ItemKind, Mode, Origin};

/// A baseline as it is written to a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub workload: String,
    pub mode: Mode,
    #[serde(default)]
    pub locked: bool,
    #[serde(default)]
    pub started_ns: u64,
    #[serde(default)]
    pub locked_ns: u64,
    #[serde(default)]
    pub observations: u64,
    #[serde(default)]
    pub replicas: BTreeSet<String>,
    #[serde(default)]
    pub items: BTreeMap<ItemKind, BTreeMap<String, Item>>,
    /// Feature name → normal range, when fitted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub normal_ranges: BTreeMap<String, Range>,
}

impl From<&Baseline> for Profile {
    fn from(b: &Baseline) -> Self {
        Self {
            workload: b.workload.clone(),
            mode: b.mode,
            locked: b.locked,
            started_ns: b.started_ns,
            locked_ns: b.locked_ns,
            observations: b.observations,
            replicas: b.replicas.clone(),
            items: b
                .items
                .iter()
                .map(|(k, m)| (*k, m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
                .collect(),
            normal_ranges: b
                .features
                .fitted
                .iter()
                .flatten()
                .zip(FEATURES)
                .map(|(r, f)| (f.to_string(), *r))
                .collect(),
        }
    }
}

/// Why a profile file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message} (expected a baseline profile as `rampart baseline export` writes it: workload, mode, locked, items by kind)")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: normal range for unknown feature {feature:?} (known: {known})")]
    Feature {
        file: String,
        feature: String,
        known: String,
    },
}

impl Profile {
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).unwrap_or_default()
    }

    /// Parses a profile; `file` names it in errors (with line and column).
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, ProfileError> {
        let p: Profile = yaml_serde::from_str(text).map_err(|e| {
            let loc = e.location();
            ProfileError::Parse {
                file: file.to_string(),
                line: loc.as_ref().map_or(0, |l| l.line()),
                column: loc.as_ref().map_or(0, |l| l.column()),
                message: e.to_string(),
            }
        })?;
        for f in p.normal_ranges.keys() {
            if !FEATURES.contains(&f.as_str()) {
                return Err(ProfileError::Feature {
                    file: file.to_string(),
                    feature: f.clone(),
                    known: FEATURES.join(", "),
                });
            }
        }
        Ok(p)
    }

    pub fn read(path: &Path) -> Result<Self, ProfileError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            file: file.clone(),
            source,
        })?;
        Self::from_yaml(&text, &file)
    }

    pub fn into_baseline(self) -> Baseline {
        let fitted = (!self.normal_ranges.is_empty()).then(|| {
            FEATURES
                .iter()
                .map(|f| {
                    self.normal_ranges.get(*f).copied().unwrap_or(Range {
                        median: 0.0,
                        spread: 1.0,
                    })
                })
                .collect()
        });
        let last_new = self
            .items
            .values()
            .flat_map(|m| m.values())
            .map(|i| i.first_ns)
            .max()
            .unwrap_or(self.started_ns);
        Baseline {
            workload: self.workload,
            mode: self.mode,
            locked: self.locked,
            started_ns: self.started_ns,
            last_new_ns: last_new,
            locked_ns: self.locked_ns,
            observations: self.observations,
            replicas: self.replicas,
            items: self
                .items
                .into_iter()
                .map(|(k, m)| (k, m.into_iter().collect::<crate::model::FastMap<_, _>>()))
                .collect(),
            deviations: 0,
            features: FeatureModel {
                samples: Vec::new(),
                fitted,
            },
        }
    }
}

/// Adds an operator's item (`allow`) or marks one never normal (`forbid`).
pub fn set_origin(b: &mut Baseline, kind: ItemKind, key: &str, origin: Origin, now_ns: u64) {
    let item = b
        .items
        .entry(kind)
        .or_default()
        .entry(key.to_string())
        .or_insert_with(|| Item::new(now_ns, origin));
    item.origin = origin;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_round_trips_and_bad_files_name_line_and_column() {
        let mut b = Baseline::new("compose:shop/web", 10);
        b.locked = true;
        b.mode = Mode::Protect;
        set_origin(
            &mut b,
            ItemKind::Process,
            "/usr/bin/python3.11 <- ? : python3 -m http.server N",
            Origin::Learned,
            11,
        );
        set_origin(
            &mut b,
            ItemKind::Process,
            "/usr/bin/curl",
            Origin::Forbidden,
            12,
        );
        b.features.samples = vec![[1.0; 8]; crate::anomaly::MIN_SAMPLES];
        b.features.fit();
        let yaml = Profile::from(&b).to_yaml();
        assert!(yaml.contains("workload: compose:shop/web"), "{yaml}");
        assert!(yaml.contains("forbidden"), "{yaml}");
        let back = Profile::from_yaml(&yaml, "p.yaml").unwrap().into_baseline();
        assert_eq!(back.items, b.items);
        assert_eq!(back.features.fitted, b.features.fitted);
        assert!(back.locked && back.mode == Mode::Protect);

        let bad = "workload: w\nmode: sometimes\n";
        let e = Profile::from_yaml(bad, "bad.yaml").unwrap_err().to_string();
        assert!(e.starts_with("bad.yaml:2:"), "{e}");
        assert!(e.contains("expected"), "{e}");
    }
}
