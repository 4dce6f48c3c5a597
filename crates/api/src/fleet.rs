//! What the API answers from the nodes' own reports (`rampart_store::reports`): the
//! rules and response policy each node runs, its sensor's health detail, its scan
//! results, SBOMs and vulnerabilities; and deploys of rules and policies, which go to
//! the nodes over request/reply ([`NodeGateway::deploy`]) and are checked there.
//!
//! The core's methods (`core.rs`) check permissions and audit; these functions only
//! read the store, ask the nodes and translate.

use std::collections::BTreeMap;
use std::sync::Arc;

use rampart_bus::rpc::{DeployAnswer, DeployText};
use rampart_event::fleet::{HealthReport, NodeReport};
use rampart_proto::v1 as pb;
use rampart_store::reports::{scan_key, scan_summaries, ScanQuery, VulnQuery};
use rampart_store::Store;

use crate::convert;
use crate::core::{ApiError, ApiResult};
use crate::nodes::{DeployKind, NodeCallError, NodeGateway};

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("a blocking task failed: {e}")))?
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

async fn reports(
    store: &Arc<dyn Store>,
    kind: &'static str,
    node: &str,
) -> ApiResult<Vec<rampart_store::StoredReport>> {
    let store = store.clone();
    let node = nonempty(node);
    blocking(move || Ok(store.reports(kind, node.as_deref())?)).await
}

/// The rules each node reported (at start and after each reload), by node.
pub async fn list_rules(store: &Arc<dyn Store>, node: &str) -> ApiResult<pb::ListRulesResponse> {
    let mut rules = Vec::new();
    for r in reports(store, "rules", node).await? {
        if let NodeReport::Rules(x) = r.report {
            rules.extend(x.rules.into_iter().map(|i| pb::RuleSummary {
                name: i.name,
                priority: i.priority,
                mitre: i.mitre,
                tags: i.tags,
                enabled: i.enabled,
                source_file: i.source_file,
                node: r.node.clone(),
            }));
        }
    }
    Ok(pb::ListRulesResponse { rules })
}

/// The response policy each node reported, by node (nodes without one are left out).
pub async fn list_response_policies(
    store: &Arc<dyn Store>,
    node: &str,
) -> ApiResult<pb::ListResponsePoliciesResponse> {
    let mut policies = Vec::new();
    for r in reports(store, "rules", node).await? {
        if let NodeReport::Rules(x) = r.report {
            if let Some(p) = x.policy {
                policies.push(pb::ResponsePolicy {
                    name: p.name,
                    yaml: p.yaml,
                    node: r.node,
                    reported_ns: x.ts_ns,
                });
            }
        }
    }
    Ok(pb::ListResponsePoliciesResponse { policies })
}

/// Each node's latest health report, by node.
pub async fn health_reports(
    store: &Arc<dyn Store>,
    node: &str,
) -> ApiResult<BTreeMap<String, HealthReport>> {
    Ok(reports(store, "health", node)
        .await?
        .into_iter()
        .filter_map(|r| match r.report {
            NodeReport::Health(h) => Some((r.node, h)),
            _ => None,
        })
        .collect())
}

/// A node's health report as the API shows it (node, version, liveness are the
/// caller's).
pub fn health_detail(h: &HealthReport) -> pb::NodeHealth {
    pb::NodeHealth {
        kernel: h.kernel.clone(),
        hooks: h
            .hooks
            .iter()
            .map(|k| pb::HookStatus {
                name: k.name.clone(),
                kind: k.kind.clone(),
                attached: k.attached,
            })
            .collect(),
        drops: h
            .drops
            .iter()
            .map(|d| pb::DropCounter {
                source: d.source.clone(),
                count: d.count,
            })
            .collect(),
        detail_reported: true,
        bus_queued: h.bus_queued,
        bus_lag_ns: h.bus_lag_ns,
        recorder_lag_ns: h.recorder_lag_ns,
        reported_ns: h.ts_ns,
        version: h.version.clone(),
        ..Default::default()
    }
}

/// Sends a document to `nodes` (empty: every node central knows), one at a time,
/// and gathers who took it and why others did not.
pub async fn deploy(
    store: &Arc<dyn Store>,
    gateway: Option<&Arc<dyn NodeGateway>>,
    kind: DeployKind,
    doc: DeployText,
    nodes: &[String],
) -> ApiResult<pb::DeployResponse> {
    if doc.text.trim().is_empty() {
        return Err(ApiError::Invalid("yaml: required".into()));
    }
    let known: Vec<String> = {
        let store = store.clone();
        blocking(move || Ok(store.nodes()?))
            .await?
            .into_iter()
            .map(|n| n.name)
            .collect()
    };
    let targets: Vec<String> = if nodes.is_empty() {
        known.clone()
    } else {
        for n in nodes {
            if !known.contains(n) {
                return Err(ApiError::NotFound(format!("no node {n:?}")));
            }
        }
        nodes.to_vec()
    };
    if targets.is_empty() {
        return Err(ApiError::Invalid(
            "nodes: no node has reported to this server yet, so there is none to deploy to".into(),
        ));
    }
    let mut out = pb::DeployResponse::default();
    for node in targets {
        let answer = match gateway {
            Some(g) => g.deploy(&node, kind, doc.clone()).await,
            None => Err(NodeCallError::Unreachable(format!(
                "node {node}: this server reaches no node to deploy to"
            ))),
        };
        match answer {
            Ok(DeployAnswer { applied: true, .. }) => out.nodes.push(node),
            Ok(a) => {
                out.diagnostics
                    .extend(a.diagnostics.into_iter().map(|d| pb::Diagnostic {
                        file: d.file,
                        line: d.line,
                        column: d.column,
                        message: format!("node {node}: {}", d.message),
                    }));
                out.failed.push(node);
            }
            Err(e) => {
                out.diagnostics.push(pb::Diagnostic {
                    file: doc.name.clone(),
                    message: e.to_string(),
                    ..Default::default()
                });
                out.failed.push(node);
            }
        }
    }
    Ok(out)
}

/// The document is wrong (every node that answered refused it with a located
/// problem, and none took it): the caller's error, with where and what.
pub fn refused_everywhere(r: &pb::DeployResponse) -> Option<ApiError> {
    let located: Vec<&pb::Diagnostic> = r.diagnostics.iter().filter(|d| d.line > 0).collect();
    if !r.nodes.is_empty() || located.is_empty() {
        return None;
    }
    Some(ApiError::Invalid(
        located
            .iter()
            .map(|d| format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message))
            .collect::<Vec<_>>()
            .join("; "),
    ))
}

pub async fn list_scan_results(
    store: &Arc<dyn Store>,
    r: pb::ListScanResultsRequest,
) -> ApiResult<pb::ListScanResultsResponse> {
    let all = reports(store, "scan", &r.node).await?;
    let q = ScanQuery {
        target: nonempty(&r.target),
        node: nonempty(&r.node),
        limit: r.limit,
    };
    Ok(pb::ListScanResultsResponse {
        results: scan_summaries(&all, &q)
            .into_iter()
            .map(|s| pb::ScanResult {
                id: s.id,
                target: s.target,
                ts_ns: s.ts_ns,
                packages: s.packages,
                vulnerabilities: s.vulnerabilities,
                secrets: s.secrets,
                malware: s.malware,
                node: s.node,
                image: s.image,
            })
            .collect(),
    })
}

pub async fn get_sbom(store: &Arc<dyn Store>, r: pb::GetSbomRequest) -> ApiResult<pb::Sbom> {
    let format = match r.format.as_str() {
        "" | "cyclonedx" => "cyclonedx",
        "spdx" => "spdx",
        other => {
            return Err(ApiError::Invalid(format!(
                "format: {other:?} is not `cyclonedx` or `spdx`"
            )))
        }
    };
    let (node, key) = scan_key(&r.id).ok_or_else(|| {
        ApiError::Invalid(format!(
            "id: {:?} is not a scan result id (`<node>/<target>`, as ListScanResults gives)",
            r.id
        ))
    })?;
    let (node, key) = (node.to_string(), key);
    let store = store.clone();
    let sboms = blocking(move || Ok(store.sboms(&node, &key)?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no scan result {:?}", r.id)))?;
    let document = match format {
        "spdx" => sboms.spdx,
        _ => sboms.cyclonedx,
    }
    .ok_or_else(|| {
        ApiError::NotFound(format!(
            "scan result {:?} has no {format} SBOM (it was over the size a node sends)",
            r.id
        ))
    })?;
    Ok(pb::Sbom {
        id: r.id,
        format: format.into(),
        document,
    })
}

pub async fn list_vulnerabilities(
    store: &Arc<dyn Store>,
    r: pb::ListVulnerabilitiesRequest,
) -> ApiResult<pb::ListVulnerabilitiesResponse> {
    let sev: pb::Severity = convert::enum_field("severity", r.severity)?;
    let q = VulnQuery {
        image: nonempty(&r.image),
        min_severity: convert::severity_from(sev),
        fixable_only: r.fixable_only,
        limit: r.limit,
    };
    // Filtered, grouped, bounded and counted by the store, from the findings' rows.
    let store = store.clone();
    let page = blocking(move || Ok(store.vulnerabilities(&q)?)).await?;
    Ok(crate::vulns::response(page))
}

/// How the local node takes a deploy (`rampart up`: in this process, no bus).
pub type LocalDeployFn =
    dyn Fn(DeployKind, &DeployText) -> Result<DeployAnswer, String> + Send + Sync;

/// How the local node takes a response action (`rampart up`: its control socket).
pub type LocalRespondFn =
    dyn Fn(&rampart_bus::rpc::RespondCommand) -> Result<serde_json::Value, String> + Send + Sync;

/// The gateway of `rampart up`: the one node is in this process, so deploys and
/// response actions call it directly; its recorder is read directly, so event requests
/// never come here.
pub struct LocalNode {
    pub name: String,
    pub deploy: Arc<LocalDeployFn>,
    pub respond: Arc<LocalRespondFn>,
}

#[async_trait::async_trait]
impl NodeGateway for LocalNode {
    async fn query(
        &self,
        node: &str,
        _query: rampart_bus::rpc::EventQuery,
    ) -> Result<crate::nodes::NodeAnswer, NodeCallError> {
        Err(NodeCallError::Unreachable(format!(
            "node {node}: this server reaches only its own node ({}), whose recorder it reads directly",
            self.name
        )))
    }

    async fn retro_hunt(
        &self,
        node: &str,
        query: rampart_bus::rpc::EventQuery,
        _rules: Vec<rampart_bus::rpc::RulesText>,
    ) -> Result<crate::nodes::NodeAnswer, NodeCallError> {
        self.query(node, query).await
    }

    async fn deploy(
        &self,
        node: &str,
        kind: DeployKind,
        doc: DeployText,
    ) -> Result<DeployAnswer, NodeCallError> {
        if node != self.name {
            return Err(NodeCallError::Unreachable(format!(
                "node {node}: this server reaches only its own node ({})",
                self.name
            )));
        }
        let deploy = self.deploy.clone();
        tokio::task::spawn_blocking(move || deploy(kind, &doc))
            .await
            .map_err(|e| NodeCallError::Unreachable(format!("the local deploy failed: {e}")))?
            .map_err(NodeCallError::Refused)
    }

    async fn respond(
        &self,
        node: &str,
        command: rampart_bus::rpc::RespondCommand,
    ) -> Result<serde_json::Value, NodeCallError> {
        if node != self.name {
            return Err(NodeCallError::Unreachable(format!(
                "node {node}: this server reaches only its own node ({})",
                self.name
            )));
        }
        let respond = self.respond.clone();
        tokio::task::spawn_blocking(move || respond(&command))
            .await
            .map_err(|e| NodeCallError::Unreachable(format!("the local response failed: {e}")))?
            .map_err(NodeCallError::Refused)
    }
}

/// The node-side command for an API response request. Blocking the network is the
/// node's quarantine (all traffic but what the policy lets through).
pub fn respond_command(
    action: pb::ResponseAction,
    r: &pb::RequestActionRequest,
    operator: &str,
) -> ApiResult<rampart_bus::rpc::RespondCommand> {
    let name = match action {
        pb::ResponseAction::Unspecified => {
            return Err(ApiError::Invalid(
                "action: required (kill process, freeze, stop, restart, quarantine, block network)"
                    .into(),
            ))
        }
        pb::ResponseAction::KillProcess => "kill",
        pb::ResponseAction::FreezeContainer => "freeze",
        pb::ResponseAction::StopContainer => "stop",
        pb::ResponseAction::RestartContainer => "restart",
        pb::ResponseAction::QuarantineContainer | pb::ResponseAction::BlockNetwork => "quarantine",
    };
    if r.container_id.is_empty() {
        return Err(ApiError::Invalid("container_id: required".into()));
    }
    if action == pb::ResponseAction::KillProcess && r.pid == 0 {
        return Err(ApiError::Invalid("pid: required to kill a process".into()));
    }
    let mut reason = r.reason.clone();
    if !r.alert_id.is_empty() {
        reason = format!("{reason} (alert {})", r.alert_id)
            .trim()
            .to_string();
    }
    Ok(rampart_bus::rpc::RespondCommand {
        action: name.into(),
        params: serde_json::Value::Null,
        container: r.container_id.clone(),
        pid: (r.pid != 0).then_some(r.pid),
        undo: false,
        dry_run: r.dry_run,
        operator: operator.into(),
        reason,
    })
}

/// The node's answer to a response command: its audit record's id, whether the
/// action was done, and what the responder said.
pub fn respond_outcome(answer: &serde_json::Value) -> (String, bool, String) {
    let audit_id = answer
        .pointer("/audit/id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let result = answer
        .pointer("/response/result")
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    let detail = answer
        .pointer("/response/detail")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let done = result.eq_ignore_ascii_case("done");
    (
        audit_id,
        done,
        format!("{result}: {detail}")
            .trim_matches([' ', ':'])
            .to_string(),
    )
}
