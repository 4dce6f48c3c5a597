//! The admission policy: which pod properties are denied, warned about or ignored,
//! and the evaluation of one pod (or a workload's pod template) against it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scans::{ImageScan, ScanFacts};

/// What a clause does when a pod fails it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Deny,
    Warn,
    Off,
}

/// The policy's clauses, each `deny`, `warn` or `off`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Clauses {
    /// `securityContext.privileged: true` on any container.
    pub privileged: Action,
    /// `hostNetwork`, `hostPID` or `hostIPC`.
    pub host_namespaces: Action,
    /// A `hostPath` volume outside `allowed_host_paths`.
    pub host_paths: Action,
    /// `capabilities.add` beyond `allowed_capabilities`.
    pub added_capabilities: Action,
    /// `runAsUser: 0`, or neither `runAsNonRoot: true` nor a non-zero `runAsUser`.
    pub run_as_root: Action,
    /// An image Rampart has no scan of.
    pub unscanned_images: Action,
    /// An image with critical vulnerabilities known for longer than the grace period.
    pub critical_vulnerabilities: Action,
    /// An image from a registry outside `allowed_registries` (when that list is set).
    pub registries: Action,
    /// A container without CPU and memory limits.
    pub missing_limits: Action,
}

impl Default for Clauses {
    fn default() -> Self {
        Self {
            privileged: Action::Deny,
            host_namespaces: Action::Deny,
            host_paths: Action::Deny,
            added_capabilities: Action::Deny,
            run_as_root: Action::Warn,
            unscanned_images: Action::Warn,
            critical_vulnerabilities: Action::Deny,
            registries: Action::Deny,
            missing_limits: Action::Warn,
        }
    }
}

/// `admission.policy` in central's file, or the file `rampart admission check
/// --policy` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionPolicy {
    pub clauses: Clauses,
    /// Deny failures of `deny` clauses (`enforce`), or only warn about them (`warn`:
    /// a dry run of the policy on a live cluster).
    pub mode: Mode,
    /// Namespaces the policy does not look at (the cluster's own, Rampart's).
    pub exempt_namespaces: Vec<String>,
    /// hostPath prefixes a pod may mount.
    pub allowed_host_paths: Vec<String>,
    /// Capabilities a container may add (`NET_BIND_SERVICE`, without `CAP_`).
    pub allowed_capabilities: Vec<String>,
    /// Registries images may come from (`registry.example.com`, `docker.io`); empty:
    /// any.
    pub allowed_registries: Vec<String>,
    /// How long a critical vulnerability may stay in an image after Rampart first
    /// knew of it.
    pub grace_period_hours: u64,
    /// The same for critical vulnerabilities in packages a running container loaded:
    /// those come first, and get less time.
    pub in_use_grace_period_hours: u64,
    /// Limits the mutating endpoint adds to containers without them
    /// (`{cpu: 500m, memory: 256Mi}`); none: it patches nothing.
    pub default_limits: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Warn,
}

impl Default for AdmissionPolicy {
    fn default() -> Self {
        Self {
            clauses: Clauses::default(),
            mode: Mode::Enforce,
            exempt_namespaces: vec!["kube-system".into(), "rampart".into()],
            allowed_host_paths: Vec::new(),
            allowed_capabilities: vec!["NET_BIND_SERVICE".into()],
            allowed_registries: Vec::new(),
            grace_period_hours: 7 * 24,
            in_use_grace_period_hours: 0,
            default_limits: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{origin}{}: {message}", at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct PolicyError {
    pub origin: String,
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl AdmissionPolicy {
    /// Parses a policy file's text; errors name the file, line and column.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PolicyError> {
        yaml_serde::from_str(text).map_err(|e| PolicyError {
            origin: origin.to_string(),
            at: e.location().map(|l| (l.line(), l.column())),
            message: e.to_string(),
        })
    }
}

/// One clause a pod failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The clause's name in [`Clauses`].
    pub clause: String,
    /// The container concerned, if one is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
    pub message: String,
    pub action: Action,
}

/// What the policy says of one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// The `deny` failures (empty when allowed).
    pub denials: Vec<Violation>,
    /// The `warn` failures, and in `warn` mode the `deny` ones too.
    pub warnings: Vec<Violation>,
    /// JSON Patch operations the mutating endpoint would apply.
    pub patch: Vec<Value>,
    /// `Pod`, `Deployment`, …
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The images of its containers.
    pub images: Vec<String>,
    /// Why nothing was checked (an exempt namespace, a kind without pods), if so.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub skipped: String,
}

impl Decision {
    fn skipped(kind: &str, namespace: &str, name: &str, why: String) -> Self {
        Self {
            allowed: true,
            denials: Vec::new(),
            warnings: Vec::new(),
            patch: Vec::new(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
            images: Vec::new(),
            skipped: why,
        }
    }

    /// The denial message the API server shows the user.
    pub fn denial_message(&self) -> String {
        let reasons: Vec<String> = self.denials.iter().map(render).collect();
        format!(
            "rampart denied {} {}/{}: {}",
            self.kind,
            self.namespace,
            self.name,
            reasons.join("; ")
        )
    }

    /// The warnings as the API server relays them to the client.
    pub fn warning_texts(&self) -> Vec<String> {
        self.warnings
            .iter()
            .map(|v| format!("rampart: {}", render(v)))
            .collect()
    }
}

fn render(v: &Violation) -> String {
    if v.container.is_empty() {
        format!("{} ({})", v.message, v.clause)
    } else {
        format!("container {}: {} ({})", v.container, v.message, v.clause)
    }
}

/// Where a kind keeps its pod spec, as a JSON pointer (and as JSON Patch paths).
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// The registry an image reference pulls from (`docker.io` for short names).
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

impl AdmissionPolicy {
    /// Evaluates `object` (a Pod or a workload with a pod template) of `kind` in
    /// `namespace`; `now_ns` decides grace periods.
    pub fn evaluate(
        &self,
        kind: &str,
        namespace: &str,
        object: &Value,
        scans: &dyn ScanFacts,
        now_ns: u64,
    ) -> Decision {
        let name = object["metadata"]["name"]
            .as_str()
            .or_else(|| object["metadata"]["generateName"].as_str())
            .unwrap_or("")
            .to_string();
        let namespace = if namespace.is_empty() {
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
        } else {
            namespace
        };
        if self.exempt_namespaces.iter().any(|n| n == namespace) {
            return Decision::skipped(
                kind,
                namespace,
                &name,
                format!("namespace {namespace} is exempt"),
            );
        }
        let Some(pointer) = pod_spec_pointer(kind) else {
            return Decision::skipped(
                kind,
                namespace,
                &name,
                format!("{kind} has no pod template"),
            );
        };
        let empty = Value::Null;
        let spec = object.pointer(pointer).unwrap_or(&empty);
        let mut found = Vec::new();
        let mut add = |clause: &str, action: Action, container: &str, message: String| {
            if action != Action::Off {
                found.push(Violation {
                    clause: clause.into(),
                    container: container.into(),
                    message,
                    action,
                });
            }
        };
        let c = &self.clauses;
        for ns in ["hostNetwork", "hostPID", "hostIPC"] {
            if spec[ns].as_bool() == Some(true) {
                add(
                    "host_namespaces",
                    c.host_namespaces,
                    "",
                    format!("{ns} is set"),
                );
            }
        }
        for v in spec["volumes"].as_array().into_iter().flatten() {
            if let Some(path) = v["hostPath"]["path"].as_str() {
                let allowed = self.allowed_host_paths.iter().any(|p| {
                    path == p || path.starts_with(&format!("{}/", p.trim_end_matches('/')))
                });
                if !allowed {
                    add(
                        "host_paths",
                        c.host_paths,
                        "",
                        format!(
                            "volume {} mounts host path {path}",
                            v["name"].as_str().unwrap_or("?")
                        ),
                    );
                }
            }
        }
        let pod_sc = &spec["securityContext"];
        let mut images = Vec::new();
        let mut patch = Vec::new();
        for list in CONTAINER_LISTS {
            for (i, ctr) in spec[list].as_array().into_iter().flatten().enumerate() {
                let cname = ctr["name"].as_str().unwrap_or("?");
                let sc = &ctr["securityContext"];
                if sc["privileged"].as_bool() == Some(true) {
                    add("privileged", c.privileged, cname, "runs privileged".into());
                }
                let added: Vec<String> = sc["capabilities"]["add"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|s| s.trim_start_matches("CAP_").to_ascii_uppercase())
                    .filter(|s| {
                        !self
                            .allowed_capabilities
                            .iter()
                            .any(|a| a.trim_start_matches("CAP_").eq_ignore_ascii_case(s))
                    })
                    .collect();
                if !added.is_empty() {
                    add(
                        "added_capabilities",
                        c.added_capabilities,
                        cname,
                        format!("adds capabilities {}", added.join(", ")),
                    );
                }
                // The container's setting wins over the pod's.
                let pick = |k: &str| {
                    let v = &sc[k];
                    if v.is_null() {
                        pod_sc[k].clone()
                    } else {
                        v.clone()
                    }
                };
                match (pick("runAsUser").as_u64(), pick("runAsNonRoot").as_bool()) {
                    (Some(0), _) => add(
                        "run_as_root",
                        c.run_as_root,
                        cname,
                        "runs as root (runAsUser: 0)".into(),
                    ),
                    (Some(_), _) | (None, Some(true)) => {}
                    (None, _) => add(
                        "run_as_root",
                        c.run_as_root,
                        cname,
                        "may run as root (neither runAsNonRoot: true nor a non-zero runAsUser)"
                            .into(),
                    ),
                }
                if list != "ephemeralContainers" {
                    let limits = &ctr["resources"]["limits"];
                    let missing: Vec<&str> = ["cpu", "memory"]
                        .into_iter()
                        .filter(|k| limits[*k].is_null())
                        .collect();
                    if !missing.is_empty() {
                        let to_add: BTreeMap<&str, &String> = missing
                            .iter()
                            .filter_map(|k| self.default_limits.get(*k).map(|v| (*k, v)))
                            .collect();
                        if to_add.len() == missing.len() {
                            patch.extend(limits_patch(pointer, list, i, ctr, &to_add));
                        }
                        add(
                            "missing_limits",
                            c.missing_limits,
                            cname,
                            format!("has no {} limit", missing.join(" or ")),
                        );
                    }
                }
                let Some(image) = ctr["image"].as_str() else {
                    continue;
                };
                images.push(image.to_string());
                if !self.allowed_registries.is_empty() {
                    let registry = registry_of(image);
                    if !self.allowed_registries.iter().any(|r| r == registry) {
                        add(
                            "registries",
                            c.registries,
                            cname,
                            format!("image {image} comes from {registry}, not an allowed registry"),
                        );
                    }
                }
                match scans.scan(image) {
                    None => add(
                        "unscanned_images",
                        c.unscanned_images,
                        cname,
                        format!("image {image} has not been scanned by Rampart"),
                    ),
                    Some(scan) => {
                        for (clause_action, message) in
                            self.vulnerability_findings(image, &scan, now_ns)
                        {
                            let action = if clause_action {
                                c.critical_vulnerabilities
                            } else {
                                Action::Warn
                            };
                            let action = if c.critical_vulnerabilities == Action::Off {
                                Action::Off
                            } else {
                                action
                            };
                            add("critical_vulnerabilities", action, cname, message);
                        }
                    }
                }
            }
        }
        let (mut denials, mut warnings): (Vec<_>, Vec<_>) =
            found.into_iter().partition(|v| v.action == Action::Deny);
        if self.mode == Mode::Warn {
            warnings.append(&mut denials);
        }
        Decision {
            allowed: denials.is_empty(),
            denials,
            warnings,
            patch,
            kind: kind.into(),
            namespace: namespace.into(),
            name,
            images,
            skipped: String::new(),
        }
    }

    /// Critical vulnerabilities of one image, in-use ones first: (past its grace
    /// period, message). Within the grace period they are warnings.
    fn vulnerability_findings(
        &self,
        image: &str,
        scan: &ImageScan,
        now_ns: u64,
    ) -> Vec<(bool, String)> {
        let mut critical: Vec<_> = scan.critical.iter().collect();
        critical.sort_by_key(|v| (v.in_use != Some(true), v.id.clone()));
        let hour = 3_600_000_000_000u64;
        critical
            .into_iter()
            .map(|v| {
                let in_use = v.in_use == Some(true);
                let grace = if in_use {
                    self.in_use_grace_period_hours
                } else {
                    self.grace_period_hours
                };
                let deadline = v.first_seen_ns.saturating_add(grace.saturating_mul(hour));
                let what = format!(
                    "image {image} has critical {} in {}{}",
                    v.id,
                    v.package,
                    if in_use { " (in use)" } else { "" }
                );
                if now_ns >= deadline {
                    (
                        true,
                        format!("{what}, known for longer than the {grace} h grace period"),
                    )
                } else {
                    let left = (deadline - now_ns).div_ceil(hour);
                    (false, format!("{what}; {left} h of its grace period left"))
                }
            })
            .collect()
    }
}

/// JSON Patch operations adding `limits` to one container.
fn limits_patch(
    pointer: &str,
    list: &str,
    index: usize,
    container: &Value,
    limits: &BTreeMap<&str, &String>,
) -> Vec<Value> {
    let base = format!("{pointer}/{list}/{index}/resources");
    let values: serde_json::Map<String, Value> = limits
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String((*v).clone())))
        .collect();
    if container["resources"].is_null() {
        vec![serde_json::json!({"op": "add", "path": base, "value": {"limits": values}})]
    } else if container["resources"]["limits"].is_null() {
        vec![serde_json::json!({"op": "add", "path": format!("{base}/limits"), "value": values})]
    } else {
        values
            .into_iter()
            .map(|(k, v)| serde_json::json!({"op": "add", "path": format!("{base}/limits/{k}"), "value": v}))
            .collect()
    }
}
