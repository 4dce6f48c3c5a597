//! Stacking layer evidence (whiteouts and opaque directories applied) into the final
//! view, and attributing every package to the layer that introduced it.

use std::collections::BTreeMap;

use crate::model::{FileEvidence, LayerEvidence};
use crate::model::{Finding, OsInfo, Package, ScanWarning};

/// The merged content of an image or directory.
#[derive(Debug, Default)]
pub struct Merged {
    pub os: Option<OsInfo>,
    pub packages: Vec<Package>,
    pub findings: Vec<Finding>,
    pub warnings: Vec<ScanWarning>,
}

fn remove_subtree(
    state: &mut BTreeMap<String, Vec<(usize, FileEvidence)>>,
    dir: &str,
    include_self: bool,
) {
    if dir.is_empty() {
        state.clear();
        return;
    }
    if include_self {
        state.remove(dir);
    }
    let prefix = format!("{dir}/");
    let doomed: Vec<String> = state
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for key in doomed {
        state.remove(&key);
    }
}

fn same_package(a: &Package, b: &Package) -> bool {
    a.kind == b.kind
        && a.name == b.name
        && a.version == b.version
        && a.arch == b.arch
        && a.epoch == b.epoch
}

/// Merge layers bottom to top. `layers[i].0` is the layer's diff id.
pub fn merge(layers: &[(Option<String>, &LayerEvidence)]) -> Merged {
    // path → history of (layer index, evidence) since the path was last deleted
    let mut state: BTreeMap<String, Vec<(usize, FileEvidence)>> = BTreeMap::new();
    let mut merged = Merged::default();
    for (index, (diff_id, layer)) in layers.iter().enumerate() {
        for dir in &layer.opaque_dirs {
            remove_subtree(&mut state, dir, false);
        }
        for path in &layer.whiteouts {
            remove_subtree(&mut state, path, true);
        }
        for (path, evidence) in &layer.files {
            // A file replacing a directory hides everything below it.
            remove_subtree(&mut state, path, false);
            state
                .entry(path.clone())
                .or_default()
                .push((index, evidence.clone()));
        }
        for warning in &layer.warnings {
            let mut warning = warning.clone();
            warning.layer = diff_id.clone();
            merged.warnings.push(warning);
        }
    }
    let layer_id = |index: usize| layers.get(index).and_then(|(id, _)| id.clone());
    let mut os_candidates: Vec<(&str, OsInfo)> = Vec::new();
    for (path, history) in &state {
        let Some((top_index, top)) = history.last() else {
            continue;
        };
        if let Some(os) = &top.os {
            os_candidates.push((path.as_str(), os.clone()));
        }
        for message in &top.warnings {
            merged.warnings.push(ScanWarning {
                path: path.clone(),
                message: message.clone(),
                layer: layer_id(*top_index),
            });
        }
        for package in &top.packages {
            // The introducing layer: walk down while older versions of the file already had it.
            let mut introduced = *top_index;
            for (older_index, older) in history.iter().rev().skip(1) {
                if older.packages.iter().any(|p| same_package(p, package)) {
                    introduced = *older_index;
                } else {
                    break;
                }
            }
            let mut package = package.clone();
            package.layer = layer_id(introduced);
            merged.packages.push(package);
        }
        for finding in &top.findings {
            let mut finding = finding.clone();
            finding.layer = layer_id(*top_index);
            merged.findings.push(finding);
        }
    }
    // etc/os-release wins over usr/lib/os-release.
    merged.os = os_candidates
        .iter()
        .find(|(p, _)| *p == "etc/os-release")
        .or_else(|| os_candidates.first())
        .map(|(_, os)| os.clone());
    merged
}
