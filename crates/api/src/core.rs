//! The one core every adapter (gRPC, HTTP/JSON, server-sent events) calls: each
//! method checks the caller's permission, answers from the store (or the local
//! recorder), and audits writes. Adapters only translate requests and errors.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use rampart_bus::rpc::{EventQuery, RulesText};
use rampart_proto::v1 as pb;
use rampart_store::{AlertChange, AlertQuery, AuditQuery, ContainerQuery, Store, StoreError};

use crate::auth::{AuthError, Permission, Principal, TokenStore};
use crate::convert;
use crate::live::AlertFeed;
use crate::nodes::{DeployKind, NodeCallError, NodeGateway};

/// Why a call failed; each adapter maps it to its status (HTTP code, gRPC code).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// Part of the contract this build cannot answer yet; the text names what is missing.
    #[error("not implemented: {0}")]
    Unimplemented(String),
    /// A bounded resource is used up or a node did not answer; trying later may work.
    #[error("{0}")]
    Unavailable(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The canonical gRPC code name, also used in JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Auth(AuthError::Unauthenticated) => "UNAUTHENTICATED",
            ApiError::Auth(AuthError::Forbidden { .. }) => "PERMISSION_DENIED",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Invalid(_) | ApiError::Store(StoreError::Invalid(_)) => "INVALID_ARGUMENT",
            ApiError::Unimplemented(_) => "UNIMPLEMENTED",
            ApiError::Store(StoreError::Connect(_)) | ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Store(_) | ApiError::Internal(_) => "INTERNAL",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self.code() {
            "UNAUTHENTICATED" => 401,
            "PERMISSION_DENIED" => 403,
            "NOT_FOUND" => 404,
            "INVALID_ARGUMENT" => 400,
            "UNIMPLEMENTED" => 501,
            "UNAVAILABLE" => 503,
            _ => 500,
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = ApiResult<T>> + Send + 'static>>;

/// What the core answers from.
pub struct ApiCore {
    store: Arc<dyn Store>,
    tokens: Arc<TokenStore>,
    feed: AlertFeed,
    /// The local node's flight recorder (`rampart up`); event queries need it.
    pub(crate) recorder_dir: Option<PathBuf>,
    /// The rules files the local node runs (ListRules).
    rule_paths: Vec<PathBuf>,
    /// The local node's name: event queries naming it (or no node) go to `recorder_dir`.
    pub(crate) local_node: Option<String>,
    /// Live event streams each hold a blocking thread following the recorder: bounded.
    live_streams: Arc<tokio::sync::Semaphore>,
    /// Request/reply to the fleet's nodes (`rampart central`): event queries and
    /// retro-hunts naming another node go there.
    pub(crate) nodes: Option<Arc<dyn NodeGateway>>,
    /// The local node's sensor detail (kernel, hooks, drops), read when asked.
    local_health: Option<LocalHealth>,
    /// The local node's baselines and what risk is ranked from (`crate::baselines`).
    pub(crate) baselines: Option<crate::baselines::BaselineSource>,
}

/// Reads the local node's sensor health: kernel, hooks per family, drops per source.
/// `None` until the sensor has started.
#[derive(Clone)]
pub struct LocalHealth(pub Arc<dyn Fn() -> Option<pb::NodeHealth> + Send + Sync>);

impl std::fmt::Debug for LocalHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalHealth")
    }
}

/// Live event streams open at once, at most.
pub const MAX_EVENT_STREAMS: usize = 32;

/// Events a query returns at most.
pub const MAX_EVENTS: u32 = 10_000;
const DEFAULT_EVENTS: u32 = 1000;

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("a blocking task failed: {e}")))?
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

fn require_id(id: &str) -> ApiResult<()> {
    if id.is_empty() {
        return Err(ApiError::Invalid("id: required".into()));
    }
    Ok(())
}

impl ApiCore {
    pub fn new(store: Arc<dyn Store>, tokens: Arc<TokenStore>, feed: AlertFeed) -> Self {
        Self {
            store,
            tokens,
            feed,
            recorder_dir: None,
            rule_paths: Vec::new(),
            local_node: None,
            live_streams: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_STREAMS)),
            nodes: None,
            local_health: None,
            baselines: None,
        }
    }

    /// The local node's health detail comes from `health` (`rampart up`).
    pub fn with_local_health(mut self, health: LocalHealth) -> Self {
        self.local_health = Some(health);
        self
    }

    /// Event queries and retro-hunts for other nodes go through `gateway`.
    pub fn with_nodes(mut self, gateway: Arc<dyn NodeGateway>) -> Self {
        self.nodes = Some(gateway);
        self
    }

    /// The name the local node publishes under (its events are the local recorder's).
    pub fn with_local_node(mut self, name: impl Into<String>) -> Self {
        self.local_node = Some(name.into());
        self
    }

    /// Event queries and retro-hunts read this recorder (the local node's).
    pub fn with_recorder(mut self, dir: impl Into<PathBuf>) -> Self {
        self.recorder_dir = Some(dir.into());
        self
    }

    pub fn with_rules(mut self, paths: Vec<PathBuf>) -> Self {
        self.rule_paths = paths;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Who an `Authorization` header names (401 when nobody).
    pub fn authenticate(&self, authorization: Option<&str>) -> ApiResult<Principal> {
        Ok(self.tokens.authenticate(authorization)?)
    }

    pub(crate) fn require(&self, p: &Principal, needed: Permission) -> ApiResult<()> {
        if p.role.allows(needed) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                name: p.name.clone(),
                role: p.role,
                needed,
            }
            .into())
        }
    }

    /// Checks the permission of a write and audits the attempt when it is refused, so
    /// denied writes leave a trace as well.
    async fn require_write(
        &self,
        p: &Principal,
        needed: Permission,
        action: &str,
        target: &str,
    ) -> ApiResult<()> {
        if let Err(e) = self.require(p, needed) {
            self.audit(p, &format!("{action}.denied"), target, &e.to_string())
                .await?;
            return Err(e);
        }
        Ok(())
    }

    pub(crate) async fn audit(
        &self,
        p: &Principal,
        action: &str,
        target: &str,
        detail: &str,
    ) -> ApiResult<String> {
        let now = rampart_event::wall_ns();
        let id = rampart_event::audit_id(now);
        let rec = rampart_store::AuditRecord {
            id: id.clone(),
            ts_ns: now,
            origin: "central".into(),
            actor: p.name.clone(),
            action: action.into(),
            target: target.into(),
            detail: detail.into(),
        };
        let store = self.store.clone();
        blocking(move || Ok(store.append_audit(&[rec])?)).await?;
        Ok(id)
    }

    // ---- alerts ----

    pub fn alert_query(r: &pb::ListAlertsRequest) -> ApiResult<AlertQuery> {
        let sev: pb::Severity = convert::enum_field("severity", r.severity)?;
        let pri: pb::Priority = convert::enum_field("priority", r.priority)?;
        let status: pb::AlertStatus = convert::enum_field("status", r.status)?;
        Ok(AlertQuery {
            since_ns: nonzero(r.since_ns),
            until_ns: nonzero(r.until_ns),
            min_severity: convert::severity_from(sev),
            min_priority: convert::priority_from(pri),
            rule: nonempty(&r.rule),
            container_id: nonempty(&r.container_id),
            node: nonempty(&r.node),
            status: convert::status_from(status),
            after: if r.page_token.is_empty() {
                None
            } else {
                Some(convert::cursor(&r.page_token)?)
            },
            limit: r.limit,
        })
    }

    pub async fn list_alerts(
        &self,
        p: &Principal,
        r: pb::ListAlertsRequest,
    ) -> ApiResult<pb::ListAlertsResponse> {
        self.require(p, Permission::Read)?;
        let q = Self::alert_query(&r)?;
        let store = self.store.clone();
        let page = blocking(move || Ok(store.query_alerts(&q)?)).await?;
        Ok(pb::ListAlertsResponse {
            alerts: page.alerts.iter().map(convert::stored_alert).collect(),
            next_page_token: page
                .next
                .as_ref()
                .map(convert::page_token)
                .unwrap_or_default(),
        })
    }

    pub async fn get_alert(&self, p: &Principal, r: pb::GetAlertRequest) -> ApiResult<pb::Alert> {
        self.require(p, Permission::Read)?;
        require_id(&r.id)?;
        let store = self.store.clone();
        let id = r.id.clone();
        let a = blocking(move || Ok(store.get_alert(&id)?)).await?;
        a.map(|a| convert::stored_alert(&a))
            .ok_or_else(|| ApiError::NotFound(format!("no alert {:?}", r.id)))
    }

    /// New alerts as central stores them, filtered; a subscriber that falls more than
    /// [`crate::live::FEED_CAPACITY`] alerts behind gets an error naming how many it lost.
    pub fn stream_alerts(
        &self,
        p: &Principal,
        r: pb::StreamAlertsRequest,
    ) -> ApiResult<BoxStream<pb::Alert>> {
        self.require(p, Permission::Read)?;
        let sev: pb::Severity = convert::enum_field("severity", r.severity)?;
        let min = convert::severity_from(sev);
        let rx = self.feed.subscribe();
        let s = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |item| {
            let out = match item {
                Ok(a) => {
                    let keep = min.is_none_or(|m| a.alert.priority.severity() >= m)
                        && (r.rule.is_empty() || a.alert.rule == r.rule)
                        && (r.node.is_empty() || a.node == r.node);
                    keep.then(|| Ok(convert::stored_alert(&a)))
                }
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    Some(Err(ApiError::Internal(format!(
                        "this stream fell behind and lost {n} alerts; list them with ListAlerts"
                    ))))
                }
            };
            std::future::ready(out)
        });
        Ok(Box::pin(s))
    }

    async fn triage(&self, p: &Principal, id: String, change: AlertChange) -> ApiResult<pb::Alert> {
        require_id(&id)?;
        self.require_write(p, Permission::Triage, change.action(), &id)
            .await?;
        let store = self.store.clone();
        let actor = p.name.clone();
        let target = id.clone();
        // The store audits the change in the same transaction.
        let a = blocking(move || {
            Ok(store.update_alert(&target, &change, &actor, rampart_event::wall_ns())?)
        })
        .await?;
        a.map(|a| convert::stored_alert(&a))
            .ok_or_else(|| ApiError::NotFound(format!("no alert {id:?}")))
    }

    pub async fn acknowledge_alert(
        &self,
        p: &Principal,
        r: pb::AcknowledgeAlertRequest,
    ) -> ApiResult<pb::Alert> {
        self.triage(p, r.id, AlertChange::Acknowledge).await
    }

    pub async fn resolve_alert(
        &self,
        p: &Principal,
        r: pb::ResolveAlertRequest,
    ) -> ApiResult<pb::Alert> {
        self.triage(p, r.id, AlertChange::Resolve).await
    }

    pub async fn reopen_alert(
        &self,
        p: &Principal,
        r: pb::ReopenAlertRequest,
    ) -> ApiResult<pb::Alert> {
        self.triage(p, r.id, AlertChange::Reopen).await
    }

    pub async fn comment_alert(
        &self,
        p: &Principal,
        r: pb::CommentAlertRequest,
    ) -> ApiResult<pb::Alert> {
        if r.text.trim().is_empty() {
            return Err(ApiError::Invalid("text: a comment cannot be empty".into()));
        }
        if r.text.len() > 16 * 1024 {
            return Err(ApiError::Invalid(format!(
                "text: {} bytes; a comment holds at most 16384",
                r.text.len()
            )));
        }
        self.triage(p, r.id, AlertChange::Comment { text: r.text })
            .await
    }

    // ---- inventory ----

    pub async fn list_nodes(
        &self,
        p: &Principal,
        _r: pb::ListNodesRequest,
    ) -> ApiResult<pb::ListNodesResponse> {
        self.require(p, Permission::Read)?;
        let store = self.store.clone();
        let nodes = blocking(move || Ok(store.nodes()?)).await?;
        Ok(pb::ListNodesResponse {
            nodes: nodes
                .into_iter()
                .map(|n| pb::Node {
                    name: n.name,
                    version: n.version,
                    first_seen_ns: n.first_seen_ns,
                    last_seen_ns: n.last_seen_ns,
                })
                .collect(),
        })
    }

    pub async fn list_containers(
        &self,
        p: &Principal,
        r: pb::ListContainersRequest,
    ) -> ApiResult<pb::ListContainersResponse> {
        self.require(p, Permission::Read)?;
        let q = ContainerQuery {
            node: nonempty(&r.node),
            image: nonempty(&r.image),
            include_gone: r.include_removed,
            limit: r.limit,
        };
        let store = self.store.clone();
        let cs = blocking(move || Ok(store.containers(&q)?)).await?;
        Ok(pb::ListContainersResponse {
            containers: cs.iter().map(convert::container).collect(),
        })
    }

    pub async fn get_container_history(
        &self,
        p: &Principal,
        r: pb::GetContainerHistoryRequest,
    ) -> ApiResult<pb::GetContainerHistoryResponse> {
        self.require(p, Permission::Read)?;
        require_id(&r.id)?;
        let store = self.store.clone();
        let h = blocking(move || Ok(store.container_history(&r.id)?)).await?;
        Ok(pb::GetContainerHistoryResponse {
            changes: h
                .iter()
                .map(|c| {
                    let (action, code) = rampart_store::action_parts(&c.action);
                    pb::ContainerLifecycle {
                        ts_ns: c.ts_ns,
                        action: action.into(),
                        exit_code: code.unwrap_or_default(),
                    }
                })
                .collect(),
        })
    }

    pub async fn list_images(
        &self,
        p: &Principal,
        _r: pb::ListImagesRequest,
    ) -> ApiResult<pb::ListImagesResponse> {
        self.require(p, Permission::Read)?;
        let store = self.store.clone();
        let images = blocking(move || Ok(store.images()?)).await?;
        Ok(pb::ListImagesResponse {
            images: images
                .into_iter()
                .map(|i| pb::Image {
                    image: i.image,
                    digest: i.digest,
                    first_seen_ns: i.first_seen_ns,
                    last_seen_ns: i.last_seen_ns,
                    containers: i.containers,
                })
                .collect(),
        })
    }

    pub async fn list_workloads(
        &self,
        p: &Principal,
        r: pb::ListWorkloadsRequest,
    ) -> ApiResult<pb::ListWorkloadsResponse> {
        self.require(p, Permission::Read)?;
        let q = rampart_store::WorkloadQuery {
            namespace: nonempty(&r.namespace),
            kind: nonempty(&r.kind),
            include_gone: r.include_removed,
            limit: r.limit,
        };
        let store = self.store.clone();
        let ws = blocking(move || Ok(store.workloads(&q)?)).await?;
        Ok(pb::ListWorkloadsResponse {
            workloads: ws
                .into_iter()
                .map(|w| pb::Workload {
                    namespace: w.key.namespace,
                    kind: w.key.kind,
                    name: w.key.name,
                    container_ids: w.container_ids,
                    running: w.running,
                    nodes: w.nodes,
                    images: w.images,
                    first_seen_ns: w.first_seen_ns,
                    last_seen_ns: w.last_seen_ns,
                })
                .collect(),
        })
    }

    // ---- parts whose data the store does not hold yet ----

    pub async fn get_network_graph(
        &self,
        p: &Principal,
        r: pb::GetNetworkGraphRequest,
    ) -> ApiResult<pb::GetNetworkGraphResponse> {
        self.require(p, Permission::Read)?;
        let store = self.store.clone();
        // Central (no local node): the fleet's graph from the flow summaries the nodes
        // publish, kept in the store.
        let fleet = self.local_node.is_none() && self.recorder_dir.is_none();
        let graph = blocking(move || {
            let mut g = match crate::network::graph(&r).map_err(ApiError::Internal)? {
                Some(g) => g,
                None if fleet => crate::fleet_flows::graph(&store.flows(r.since_ns)?, &r),
                None => return Ok(None),
            };
            let blocked = crate::network_blocked::blocked_edges(&store, r.since_ns)?;
            crate::network_blocked::merge(&mut g, blocked, &r.namespace);
            Ok(Some(g))
        });
        match graph.await? {
            Some(g) => Ok(g),
            None => Err(ApiError::Unimplemented(
                "network graph: this server has no flow table (run `rampart up` with a network: section)".into(),
            )),
        }
    }

    pub async fn get_baseline(
        &self,
        p: &Principal,
        r: pb::GetBaselineRequest,
    ) -> ApiResult<pb::Baseline> {
        self.require(p, Permission::Read)?;
        let source = self.baselines.clone();
        blocking(move || crate::baselines::get_baseline(source.as_ref(), &r.workload)).await
    }

    pub async fn lock_baseline(
        &self,
        p: &Principal,
        r: pb::LockBaselineRequest,
    ) -> ApiResult<pb::Baseline> {
        let action = if r.locked {
            "baseline.lock"
        } else {
            "baseline.unlock"
        };
        self.require_write(p, Permission::Respond, action, &r.workload)
            .await?;
        let source = self.baselines.clone();
        let workload = r.workload.clone();
        let (b, rev) =
            blocking(move || crate::baselines::lock_baseline(source.as_ref(), &r)).await?;
        self.audit(p, action, &workload, &crate::baselines::describe(&b, rev))
            .await?;
        Ok(b)
    }

    pub async fn set_baseline_mode(
        &self,
        p: &Principal,
        r: pb::SetBaselineModeRequest,
    ) -> ApiResult<pb::Baseline> {
        self.require_write(p, Permission::Respond, "baseline.mode", &r.workload)
            .await?;
        let source = self.baselines.clone();
        let workload = r.workload.clone();
        let (b, rev) =
            blocking(move || crate::baselines::set_baseline_mode(source.as_ref(), &r)).await?;
        self.audit(
            p,
            "baseline.mode",
            &workload,
            &crate::baselines::describe(&b, rev),
        )
        .await?;
        Ok(b)
    }

    pub async fn list_risks(
        &self,
        p: &Principal,
        r: pb::ListRisksRequest,
    ) -> ApiResult<pb::ListRisksResponse> {
        self.require(p, Permission::Read)?;
        let source = self.baselines.clone();
        blocking(move || crate::baselines::list_risks(source.as_ref(), r.limit)).await
    }

    /// The nodes' image-scan results (per running container), newest first.
    pub async fn list_scan_results(
        &self,
        p: &Principal,
        r: pb::ListScanResultsRequest,
    ) -> ApiResult<pb::ListScanResultsResponse> {
        self.require(p, Permission::Read)?;
        crate::fleet::list_scan_results(&self.store, r).await
    }

    pub async fn get_sbom(&self, p: &Principal, r: pb::GetSbomRequest) -> ApiResult<pb::Sbom> {
        self.require(p, Permission::Read)?;
        require_id(&r.id)?;
        crate::fleet::get_sbom(&self.store, r).await
    }

    /// Findings across the fleet's scan results, one per id and package version, with
    /// the images they are in and whether a container loaded the package.
    pub async fn list_vulnerabilities(
        &self,
        p: &Principal,
        r: pb::ListVulnerabilitiesRequest,
    ) -> ApiResult<pb::ListVulnerabilitiesResponse> {
        self.require(p, Permission::Read)?;
        crate::fleet::list_vulnerabilities(&self.store, r).await
    }

    // ---- rules and response policies ----

    /// The rules each node reported (at start and after every reload); under `rampart
    /// up`, before the local node's first report, its rules files.
    pub async fn list_rules(
        &self,
        p: &Principal,
        r: pb::ListRulesRequest,
    ) -> ApiResult<pb::ListRulesResponse> {
        self.require(p, Permission::Read)?;
        let reported = crate::fleet::list_rules(&self.store, &r.node).await?;
        let local = self.local_node.clone().unwrap_or_default();
        let local_asked = r.node.is_empty() || r.node == local;
        if !reported.rules.is_empty() || self.rule_paths.is_empty() || !local_asked {
            return Ok(reported);
        }
        let paths = self.rule_paths.clone();
        let listing = blocking(move || Ok(rampart_detect::tools::list_rules(&paths))).await?;
        Ok(pb::ListRulesResponse {
            rules: listing
                .rules
                .into_iter()
                .map(|r| pb::RuleSummary {
                    name: r.name,
                    priority: format!("{:?}", r.priority).to_uppercase(),
                    mitre: r.mitre,
                    enabled: r.enabled,
                    node: local.clone(),
                    ..Default::default()
                })
                .collect(),
        })
    }

    pub async fn validate_rules(
        &self,
        p: &Principal,
        r: pb::ValidateRulesRequest,
    ) -> ApiResult<pb::ValidateResponse> {
        self.require(p, Permission::Read)?;
        let name = file_name(&r.file_name, "rules.yaml")?;
        blocking(move || {
            // The loader reads files (includes, line numbers): give it one.
            let dir = tempfile::tempdir()
                .map_err(|e| ApiError::Internal(format!("a temporary directory: {e}")))?;
            let path = dir.path().join(&name);
            std::fs::write(&path, r.yaml.as_bytes())
                .map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
            let v = rampart_detect::tools::validate_files(std::slice::from_ref(&path));
            let prefix = format!("{}/", dir.path().display());
            Ok(pb::ValidateResponse {
                valid: v.errors.is_empty(),
                count: u32::try_from(v.rules).unwrap_or(u32::MAX),
                diagnostics: v
                    .errors
                    .iter()
                    .map(|e| pb::Diagnostic {
                        file: e.file.strip_prefix(&prefix).unwrap_or(&e.file).to_string(),
                        line: e.line,
                        column: e.col,
                        message: e.message.clone(),
                    })
                    .collect(),
            })
        })
        .await
    }

    /// Sends a rules file to nodes (admin only, audited); each checks it with its own
    /// rules and reloads, or refuses it with located diagnostics and keeps its rules.
    pub async fn deploy_rules(
        &self,
        p: &Principal,
        r: pb::DeployRulesRequest,
    ) -> ApiResult<pb::DeployResponse> {
        let name = file_name(&r.file_name, "deployed.yaml")?;
        self.deploy(p, DeployKind::Rules, "rules.deploy", name, r.yaml, &r.nodes)
            .await
    }

    async fn deploy(
        &self,
        p: &Principal,
        kind: DeployKind,
        action: &str,
        name: String,
        text: String,
        nodes: &[String],
    ) -> ApiResult<pb::DeployResponse> {
        self.require_write(p, Permission::Admin, action, &name)
            .await?;
        let doc = rampart_bus::rpc::DeployText {
            name: name.clone(),
            text,
            operator: p.name.clone(),
        };
        let result = crate::fleet::deploy(&self.store, self.nodes.as_ref(), kind, doc, nodes).await;
        let detail = match &result {
            Ok(r) => serde_json::json!({
                "nodes": r.nodes,
                "failed": r.failed,
                "diagnostics": r.diagnostics.iter().map(|d| format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message)).collect::<Vec<_>>(),
            }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        self.audit(p, action, &name, &detail.to_string()).await?;
        let r = result?;
        match crate::fleet::refused_everywhere(&r) {
            Some(e) => Err(e),
            None => Ok(r),
        }
    }

    /// The response policy each node reported.
    pub async fn list_response_policies(
        &self,
        p: &Principal,
        r: pb::ListResponsePoliciesRequest,
    ) -> ApiResult<pb::ListResponsePoliciesResponse> {
        self.require(p, Permission::Read)?;
        crate::fleet::list_response_policies(&self.store, &r.node).await
    }

    pub async fn validate_response_policy(
        &self,
        p: &Principal,
        r: pb::ValidateResponsePolicyRequest,
    ) -> ApiResult<pb::ValidateResponse> {
        self.require(p, Permission::Read)?;
        let name = file_name(&r.file_name, "policy.yaml")?;
        Ok(
            match rampart_respond::Policy::parse(&r.yaml, std::path::Path::new(&name)) {
                Ok(_) => pb::ValidateResponse {
                    valid: true,
                    diagnostics: Vec::new(),
                    count: 1,
                },
                Err(rampart_respond::RespondError::Policy {
                    file,
                    line,
                    column,
                    message,
                }) => pb::ValidateResponse {
                    valid: false,
                    count: 0,
                    diagnostics: vec![pb::Diagnostic {
                        file: file.display().to_string(),
                        line: u32::try_from(line).unwrap_or(u32::MAX),
                        column: u32::try_from(column).unwrap_or(u32::MAX),
                        message,
                    }],
                },
                Err(e) => pb::ValidateResponse {
                    valid: false,
                    count: 0,
                    diagnostics: vec![pb::Diagnostic {
                        file: name,
                        message: e.to_string(),
                        ..Default::default()
                    }],
                },
            },
        )
    }

    /// Sends a response policy to nodes (admin only, audited); each parses it and
    /// replaces its policy file and reloads, or refuses it with where it is wrong.
    pub async fn deploy_response_policy(
        &self,
        p: &Principal,
        r: pb::DeployResponsePolicyRequest,
    ) -> ApiResult<pb::DeployResponse> {
        let name = file_name(&r.file_name, "policy.yaml")?;
        self.deploy(
            p,
            DeployKind::ResponsePolicy,
            "policy.deploy",
            name,
            r.yaml,
            &r.nodes,
        )
        .await
    }

    // ---- response ----

    pub async fn request_action(
        &self,
        p: &Principal,
        r: pb::RequestActionRequest,
    ) -> ApiResult<pb::RequestActionResponse> {
        let action: pb::ResponseAction = convert::enum_field("action", r.action)?;
        let audit_action = format!("response.{}", action.as_str_name().to_lowercase());
        let target = if r.container_id.is_empty() {
            format!("pid:{}", r.pid)
        } else {
            r.container_id.clone()
        };
        self.require_write(p, Permission::Respond, &audit_action, &target)
            .await?;
        let command = crate::fleet::respond_command(action, &r, &p.name)?;
        let node = if r.node.is_empty() {
            self.local_node.clone().ok_or_else(|| {
                ApiError::Invalid("node: required (this server runs no node of its own)".into())
            })?
        } else {
            r.node.clone()
        };
        let known = {
            let store = self.store.clone();
            blocking(move || Ok(store.nodes()?)).await?
        };
        let gateway = match self.nodes.clone() {
            Some(g) if known.iter().any(|n| n.name == node) => g,
            reach => {
                let e = if reach.is_none() {
                    ApiError::Invalid(format!(
                        "node {node}: this server reaches no node to act on (it is neither rampart up nor rampart central)"
                    ))
                } else {
                    ApiError::NotFound(format!("no node {node:?}"))
                };
                self.audit(
                    p,
                    &format!("{audit_action}.refused"),
                    &target,
                    &e.to_string(),
                )
                .await?;
                return Err(e);
            }
        };
        let answer = gateway.respond(&node, command).await;
        let (audit_id, done, detail) = match answer {
            Ok(v) => crate::fleet::respond_outcome(&v),
            Err(e) => {
                let err = node_error(e);
                self.audit(
                    p,
                    &format!("{audit_action}.failed"),
                    &target,
                    &err.to_string(),
                )
                .await?;
                return Err(err);
            }
        };
        let ours = self
            .audit(
                p,
                &audit_action,
                &target,
                &format!("node={node} done={done} node_audit={audit_id} {detail}"),
            )
            .await?;
        Ok(pb::RequestActionResponse {
            audit_id: ours,
            done,
            detail,
        })
    }

    pub async fn list_audit(
        &self,
        p: &Principal,
        r: pb::ListAuditRequest,
    ) -> ApiResult<pb::ListAuditResponse> {
        self.require(p, Permission::Read)?;
        let q = AuditQuery {
            since_ns: nonzero(r.since_ns),
            until_ns: nonzero(r.until_ns),
            actor: nonempty(&r.actor),
            action: nonempty(&r.action),
            target: nonempty(&r.target),
            limit: r.limit,
        };
        let store = self.store.clone();
        let recs = blocking(move || Ok(store.query_audit(&q)?)).await?;
        Ok(pb::ListAuditResponse {
            records: recs.iter().map(convert::audit).collect(),
        })
    }

    // ---- health ----

    pub async fn get_sensor_health(
        &self,
        p: &Principal,
        r: pb::GetSensorHealthRequest,
    ) -> ApiResult<pb::GetSensorHealthResponse> {
        self.require(p, Permission::Read)?;
        let store = self.store.clone();
        let nodes = blocking(move || Ok(store.nodes()?)).await?;
        let now = rampart_event::wall_ns();
        let local = self
            .local_health
            .as_ref()
            .and_then(|h| (h.0)())
            .filter(|_| self.local_node.is_some());
        // What remote nodes (and the local one, through the bus) reported.
        let reported = crate::fleet::health_reports(&self.store, &r.node).await?;
        Ok(pb::GetSensorHealthResponse {
            nodes: nodes
                .into_iter()
                .filter(|n| r.node.is_empty() || n.name == r.node)
                .map(|n| {
                    let base = pb::NodeHealth {
                        alive: now.saturating_sub(n.last_seen_ns) < 60_000_000_000,
                        last_seen_ns: n.last_seen_ns,
                        detail_reported: false,
                        ..Default::default()
                    };
                    let detail = local
                        .as_ref()
                        .filter(|_| self.local_node.as_deref() == Some(n.name.as_str()));
                    let mut h = match detail {
                        // The local sensor answers in this process: it is alive.
                        Some(d) => pb::NodeHealth {
                            alive: true,
                            detail_reported: true,
                            kernel: d.kernel.clone(),
                            hooks: d.hooks.clone(),
                            drops: d.drops.clone(),
                            ..base
                        },
                        None => match reported.get(&n.name) {
                            Some(h) => pb::NodeHealth {
                                alive: base.alive,
                                last_seen_ns: base.last_seen_ns,
                                ..crate::fleet::health_detail(h)
                            },
                            None => base,
                        },
                    };
                    h.node = n.name;
                    h.version = n.version;
                    h
                })
                .collect(),
        })
    }

    // ---- events (the local recorder) ----

    /// Which recorder answers for `filter.node`: the local one, or a remote node's
    /// through the gateway.
    async fn source(&self, filter: &pb::EventFilter) -> ApiResult<Source> {
        let local = filter.node.is_empty() || self.local_node.as_deref() == Some(&filter.node);
        if local {
            return self.recorder_dir.clone().map(Source::Local).ok_or_else(|| {
                ApiError::Unimplemented(
                    "events: this server runs no node, so name the node whose recorder to ask (filter.node)".into(),
                )
            });
        }
        let store = self.store.clone();
        let nodes = blocking(move || Ok(store.nodes()?)).await?;
        if !nodes.iter().any(|n| n.name == filter.node) {
            return Err(ApiError::NotFound(format!("no node {:?}", filter.node)));
        }
        match &self.nodes {
            Some(g) => Ok(Source::Remote(g.clone(), filter.node.clone())),
            None => Err(ApiError::Unimplemented(format!(
                "events of node {:?}: this server reaches no other node (rampart central does); only the local recorder answers",
                filter.node
            ))),
        }
    }

    /// The filter as a node's recorder query; kinds are checked here so a typo is
    /// this server's 400, not a node's.
    fn remote_query(filter: &pb::EventFilter, limit: usize) -> ApiResult<EventQuery> {
        for k in &filter.kinds {
            if rampart_event::EventKind::parse_filter(k.trim()).is_none() {
                return Err(ApiError::Invalid(format!(
                    "kinds: {k:?} is not an event kind or family"
                )));
            }
        }
        Ok(EventQuery {
            since_ns: nonzero(filter.since_ns),
            until_ns: nonzero(filter.until_ns),
            container: nonempty(&filter.container),
            image: nonempty(&filter.image),
            kinds: filter.kinds.iter().map(|k| k.trim().to_string()).collect(),
            condition: nonempty(&filter.r#where),
            limit: limit as u64,
            ..Default::default()
        })
    }

    fn recorder_query(filter: &pb::EventFilter) -> ApiResult<rampart_recorder::Query> {
        let mut q = rampart_recorder::Query::new();
        if filter.since_ns != 0 {
            q = q.since(filter.since_ns);
        }
        if filter.until_ns != 0 {
            q = q.until(filter.until_ns);
        }
        if !filter.container.is_empty() {
            q = q.container(filter.container.clone());
        }
        if !filter.image.is_empty() {
            q = q.image(filter.image.clone());
        }
        if !filter.kinds.is_empty() {
            let mut kinds = Vec::new();
            for k in &filter.kinds {
                kinds.extend(rampart_event::EventKind::parse_filter(k.trim()).ok_or_else(
                    || ApiError::Invalid(format!("kinds: {k:?} is not an event kind or family")),
                )?);
            }
            q = q.kinds(kinds);
        }
        if !filter.r#where.is_empty() {
            let c = rampart_recorder::compile_where::<&std::path::Path>(&filter.r#where, &[])
                .map_err(|e| ApiError::Invalid(format!("where: {e}")))?;
            q = q.condition(Arc::new(c));
        }
        Ok(q.records(rampart_recorder::RecordTypes::EVENTS))
    }

    pub async fn query_events(
        &self,
        p: &Principal,
        r: pb::QueryEventsRequest,
    ) -> ApiResult<pb::QueryEventsResponse> {
        self.require(p, Permission::Read)?;
        let filter = r.filter.unwrap_or_default();
        let limit = match r.limit {
            0 => DEFAULT_EVENTS,
            n => n.min(MAX_EVENTS),
        } as usize;
        let dir = match self.source(&filter).await? {
            Source::Local(dir) => dir,
            Source::Remote(gateway, node) => {
                // One more than asked tells a truncated answer from an exact one.
                let q = Self::remote_query(&filter, limit + 1)?;
                let answer = gateway.query(&node, q).await.map_err(node_error)?;
                let mut events = Vec::with_capacity(answer.lines.len().min(limit));
                for line in answer.lines.iter().take(limit) {
                    let e: rampart_event::Event = serde_json::from_str(line).map_err(|e| {
                        ApiError::Internal(format!(
                            "node {node:?} sent an event that does not decode: {e}"
                        ))
                    })?;
                    events.push(convert::event(&e));
                }
                return Ok(pb::QueryEventsResponse {
                    events,
                    truncated: answer.lines.len() > limit,
                });
            }
        };
        let q = Self::recorder_query(&filter)?;
        blocking(move || {
            let rec = rampart_recorder::Recorder::open_read_only(dir)
                .map_err(|e| ApiError::Internal(format!("recorder: {e}")))?;
            let it = rec
                .query(&q)
                .map_err(|e| ApiError::Internal(format!("recorder: {e}")))?;
            let mut events = Vec::new();
            let mut truncated = false;
            for record in it {
                if let rampart_recorder::Record::Event(e) = record {
                    if events.len() == limit {
                        truncated = true;
                        break;
                    }
                    events.push(convert::event(&e));
                }
            }
            Ok(pb::QueryEventsResponse { events, truncated })
        })
        .await
    }

    /// Events as the local recorder seals them (blocks are sealed at least every
    /// `recorder.max_block_age`, 5 s by default), filtered like QueryEvents.
    pub async fn stream_events(
        &self,
        p: &Principal,
        r: pb::StreamEventsRequest,
    ) -> ApiResult<BoxStream<pb::Event>> {
        self.require(p, Permission::Read)?;
        let filter = r.filter.unwrap_or_default();
        // The recorder resolves container and image names when a follow starts, so a
        // container that starts later would never match: those two are matched here,
        // event by event, instead.
        let wanted = {
            let filter = filter.clone();
            move |e: &rampart_event::Event| {
                let c = e.container.container();
                let container_ok = filter.container.is_empty()
                    || c.is_some_and(|c| {
                        c.id.starts_with(&filter.container) || c.name == filter.container
                    })
                    || (filter.container == "host" && c.is_none());
                let image_ok = filter.image.is_empty()
                    || c.is_some_and(|c| {
                        c.image == filter.image || c.image_repository == filter.image
                    });
                container_ok && image_ok
            }
        };
        let unfiltered = pb::EventFilter {
            container: String::new(),
            image: String::new(),
            ..filter.clone()
        };
        if !filter.node.is_empty() && self.local_node.as_deref() != Some(&filter.node) {
            let store = self.store.clone();
            let nodes = blocking(move || Ok(store.nodes()?)).await?;
            if !nodes.iter().any(|n| n.name == filter.node) {
                return Err(ApiError::NotFound(format!("no node {:?}", filter.node)));
            }
            let Some(gateway) = self.nodes.clone() else {
                return Err(ApiError::Unimplemented(format!(
                    "live events of node {:?}: this server reaches no other node (rampart central does)",
                    filter.node
                )));
            };
            let permit = self.live_streams.clone().try_acquire_owned().map_err(|_| {
                ApiError::Unavailable(format!(
                    "live events: {MAX_EVENT_STREAMS} streams are open already; close one or use QueryEvents"
                ))
            })?;
            let q = Self::remote_query(&unfiltered, 0)?;
            let mut batches = gateway
                .stream_events(&filter.node, q)
                .await
                .map_err(node_error)?;
            let node = filter.node.clone();
            let (tx, rx) = tokio::sync::mpsc::channel::<ApiResult<pb::Event>>(1024);
            // Ends when the client goes (the channel closes) or the node ends the
            // stream; dropping `batches` cancels it on the node.
            tokio::spawn(async move {
                let _permit = permit;
                loop {
                    let batch = tokio::select! {
                        _ = tx.closed() => return,
                        b = batches.next() => b,
                    };
                    let lines = match batch {
                        None => return,
                        Some(Ok(lines)) => lines,
                        Some(Err(e)) => {
                            let _ = tx.send(Err(node_error(e))).await;
                            return;
                        }
                    };
                    for line in lines {
                        let e = match serde_json::from_str::<rampart_event::Event>(&line) {
                            Ok(e) => e,
                            Err(e) => {
                                let _ = tx
                                    .send(Err(ApiError::Internal(format!(
                                        "node {node:?} sent an event that does not decode: {e}"
                                    ))))
                                    .await;
                                return;
                            }
                        };
                        if wanted(&e) && tx.send(Ok(convert::event(&e))).await.is_err() {
                            return;
                        }
                    }
                }
            });
            return Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)));
        }
        let dir = self.recorder_dir.clone().ok_or_else(|| {
            ApiError::Unimplemented(
                "live events: this server runs no node, so it has no recorder to follow".into(),
            )
        })?;
        let q = Self::recorder_query(&unfiltered)?;
        let permit = self.live_streams.clone().try_acquire_owned().map_err(|_| {
            ApiError::Unavailable(format!(
                "live events: {MAX_EVENT_STREAMS} streams are open already; close one or use QueryEvents"
            ))
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel::<ApiResult<pb::Event>>(1024);
        // The recorder is read on a blocking thread: follow mode waits on the writer's
        // seals. It ends when the client goes away (the channel closes).
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let fail = |e: String| {
                let _ = tx.blocking_send(Err(ApiError::Internal(format!("recorder: {e}"))));
            };
            let mut follow = match rampart_recorder::Recorder::open_read_only(dir)
                .and_then(|rec| rec.follow(&q))
            {
                Ok(f) => f,
                Err(e) => return fail(e.to_string()),
            };
            while !tx.is_closed() {
                match follow.next_timeout(std::time::Duration::from_millis(500)) {
                    Ok(Some(rampart_recorder::Record::Event(e))) if wanted(&e) => {
                        if tx.blocking_send(Ok(convert::event(&e))).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return fail(e.to_string()),
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    pub async fn retro_hunt(
        &self,
        p: &Principal,
        r: pb::RetroHuntRequest,
    ) -> ApiResult<pb::RetroHuntResponse> {
        self.require(p, Permission::Read)?;
        let filter = r.filter.unwrap_or_default();
        if r.rules_yaml.trim().is_empty() {
            return Err(ApiError::Invalid("rules_yaml: required".into()));
        }
        let limit = match r.limit {
            0 => DEFAULT_EVENTS,
            n => n.min(MAX_EVENTS),
        } as usize;
        let source = self.source(&filter).await?;
        // The rules are checked here first, so their errors carry line and column
        // whichever recorder runs them.
        let yaml = r.rules_yaml.clone();
        let tmp = blocking(move || {
            let tmp = tempfile::tempdir()
                .map_err(|e| ApiError::Internal(format!("a temporary directory: {e}")))?;
            let path = tmp.path().join("hunt.yaml");
            std::fs::write(&path, yaml.as_bytes())
                .map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
            let v = rampart_detect::tools::validate_files(std::slice::from_ref(&path));
            if let Some(e) = v.errors.first() {
                return Err(ApiError::Invalid(format!(
                    "rules_yaml:{}:{}: {}",
                    e.line, e.col, e.message
                )));
            }
            Ok(tmp)
        })
        .await?;
        let dir = match source {
            Source::Local(dir) => dir,
            Source::Remote(gateway, node) => {
                let mut rq = Self::remote_query(&filter, 0)?;
                rq.limit = limit as u64;
                let answer = gateway
                    .retro_hunt(
                        &node,
                        rq,
                        vec![RulesText {
                            name: "hunt.yaml".into(),
                            text: r.rules_yaml,
                        }],
                    )
                    .await
                    .map_err(node_error)?;
                let mut alerts = Vec::with_capacity(answer.lines.len());
                for line in &answer.lines {
                    let a: rampart_event::Alert = serde_json::from_str(line).map_err(|e| {
                        ApiError::Internal(format!(
                            "node {node:?} sent an alert that does not decode: {e}"
                        ))
                    })?;
                    alerts.push(convert::alert(&a));
                }
                return Ok(pb::RetroHuntResponse {
                    alerts,
                    events_scanned: answer.summary["events"].as_u64().unwrap_or_default(),
                });
            }
        };
        let q = Self::recorder_query(&filter)?;
        blocking(move || {
            let path = tmp.path().join("hunt.yaml");
            let rec = rampart_recorder::Recorder::open_read_only(dir)
                .map_err(|e| ApiError::Internal(format!("recorder: {e}")))?;
            let report = rec
                .retro_hunt(&[&path], &q)
                .map_err(|e| ApiError::Internal(format!("retro-hunt: {e}")))?;
            Ok(pb::RetroHuntResponse {
                alerts: report
                    .alerts
                    .iter()
                    .take(limit)
                    .map(convert::alert)
                    .collect(),
                events_scanned: report.events,
            })
        })
        .await
    }
}

/// Where an event query is answered.
enum Source {
    Local(PathBuf),
    Remote(Arc<dyn NodeGateway>, String),
}

fn node_error(e: NodeCallError) -> ApiError {
    match e {
        NodeCallError::Unreachable(m) => ApiError::Unavailable(m),
        NodeCallError::Refused(m) => ApiError::Invalid(m),
    }
}

/// A submitted document's name: a plain file name, so diagnostics can name it.
fn file_name(given: &str, default: &str) -> ApiResult<String> {
    if given.is_empty() {
        return Ok(default.into());
    }
    if given.contains('/')
        || given.contains('\0')
        || given == "."
        || given == ".."
        || given.len() > 255
    {
        return Err(ApiError::Invalid(format!(
            "file_name: {given:?} must be a plain file name (no '/')"
        )));
    }
    Ok(given.into())
}

use futures_util::StreamExt as _;
