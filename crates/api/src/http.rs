//! The HTTP/JSON adapter: a table of routes ([`routes`]), each naming the RPC it
//! serves; the request message is built from the path parameters, the query string
//! (typed by the message's descriptor) and the JSON body, decoded by pbjson (the
//! canonical proto3 JSON mapping, unknown fields refused), and handed to the same
//! [`ApiCore`] method the gRPC adapter calls. Streaming RPCs are served as
//! server-sent events, and a file route (an alert's incident bundle) answers with the
//! file itself (`application/gzip`, `Content-Disposition: attachment`). Errors are JSON:
//! `{"code", "message", "status"}`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use prost_types::field_descriptor_proto::{Label, Type};
use rampart_proto::v1 as pb;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::core::{ApiCore, ApiError, ApiResult, BoxStream};
use crate::descriptors::Descriptors;

type UnaryFn = dyn Fn(Arc<ApiCore>, Principal, Value) -> Pin<Box<dyn Future<Output = ApiResult<Vec<u8>>> + Send>>
    + Send
    + Sync;
type StreamFn = dyn Fn(
        Arc<ApiCore>,
        Principal,
        Value,
    ) -> Pin<Box<dyn Future<Output = ApiResult<BoxStream<Vec<u8>>>> + Send>>
    + Send
    + Sync;

/// A file download: the content type, the file name and the bytes.
pub type FileAnswer = (&'static str, String, Vec<u8>);
type FileFn = dyn Fn(
        Arc<ApiCore>,
        Principal,
        Value,
    ) -> Pin<Box<dyn Future<Output = ApiResult<FileAnswer>> + Send>>
    + Send
    + Sync;

pub enum Handler {
    Unary(Box<UnaryFn>),
    Stream(Box<StreamFn>),
    /// The response is a file, not JSON (an incident bundle's tar.gz).
    File(Box<FileFn>),
}

impl Handler {
    /// What a successful answer's body is (the OpenAPI document says it).
    pub fn file_type(&self) -> Option<&'static str> {
        match self {
            Handler::File(_) => Some(FILE_TYPE_GZIP),
            _ => None,
        }
    }
}

const FILE_TYPE_GZIP: &str = "application/gzip";

/// One HTTP route and the RPC behind it.
pub struct Route {
    pub method: Method,
    /// `/v1/alerts/{id}:acknowledge`: `{name}` is a path parameter (a request field),
    /// optionally followed by a `:verb`.
    pub path: &'static str,
    pub service: &'static str,
    pub rpc: &'static str,
    /// The core answers UNIMPLEMENTED: the data it needs is not in central yet.
    pub unimplemented: bool,
    pub handler: Handler,
}

/// Decodes a request message; the error names the field that did not fit.
fn decode<Req: DeserializeOwned>(v: Value) -> ApiResult<Req> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::Invalid(format!("request: {inner}"))
        } else {
            ApiError::Invalid(format!("request: {path}: {inner}"))
        }
    })
}

/// The response's JSON, written once (no intermediate `Value`).
fn encode<T: Serialize>(v: &T) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| ApiError::Internal(format!("encoding the response: {e}")))
}

fn unary<Req, Resp, F, Fut>(f: F) -> Handler
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + 'static,
    F: Fn(Arc<ApiCore>, Principal, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ApiResult<Resp>> + Send + 'static,
{
    Handler::Unary(Box::new(move |core, p, v| match decode::<Req>(v) {
        Err(e) => Box::pin(std::future::ready(Err(e))),
        Ok(req) => {
            let fut = f(core, p, req);
            Box::pin(async move { encode(&fut.await?) })
        }
    }))
}

fn stream<Req, Item, F, Fut>(f: F) -> Handler
where
    Req: DeserializeOwned + Send + 'static,
    Item: Serialize + Send + 'static,
    F: Fn(Arc<ApiCore>, Principal, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ApiResult<BoxStream<Item>>> + Send + 'static,
{
    Handler::Stream(Box::new(move |core, p, v| match decode::<Req>(v) {
        Err(e) => Box::pin(std::future::ready(Err(e))),
        Ok(req) => {
            let fut = f(core, p, req);
            Box::pin(async move {
                let s = fut.await?;
                Ok(Box::pin(s.map(|item| item.and_then(|i| encode(&i)))) as BoxStream<Vec<u8>>)
            })
        }
    }))
}

macro_rules! route {
    ($method:ident $path:literal, $service:literal . $rpc:literal, $call:ident($req:ty) $(, $unimpl:ident)?) => {
        Route {
            method: Method::$method,
            path: $path,
            service: $service,
            rpc: $rpc,
            unimplemented: route!(@unimpl $($unimpl)?),
            handler: unary(|c: Arc<ApiCore>, p: Principal, r: $req| async move {
                c.$call(&p, r).await
            }),
        }
    };
    (@unimpl unimplemented) => { true };
    (@unimpl) => { false };
}

/// Every HTTP route. The OpenAPI document is made from this table and the
/// descriptors, so the two cannot disagree.
pub fn routes() -> Vec<Route> {
    vec![
        route!(GET "/v1/alerts", "AlertService"."ListAlerts", list_alerts(pb::ListAlertsRequest)),
        Route {
            method: Method::GET,
            path: "/v1/alerts:stream",
            service: "AlertService",
            rpc: "StreamAlerts",
            unimplemented: false,
            handler: stream(
                |c: Arc<ApiCore>, p: Principal, r: pb::StreamAlertsRequest| async move {
                    c.stream_alerts(&p, r)
                },
            ),
        },
        route!(GET "/v1/alerts/{id}", "AlertService"."GetAlert", get_alert(pb::GetAlertRequest)),
        route!(POST "/v1/alerts/{id}:acknowledge", "AlertService"."AcknowledgeAlert", acknowledge_alert(pb::AcknowledgeAlertRequest)),
        route!(POST "/v1/alerts/{id}:resolve", "AlertService"."ResolveAlert", resolve_alert(pb::ResolveAlertRequest)),
        route!(POST "/v1/alerts/{id}:reopen", "AlertService"."ReopenAlert", reopen_alert(pb::ReopenAlertRequest)),
        route!(POST "/v1/alerts/{id}:comment", "AlertService"."CommentAlert", comment_alert(pb::CommentAlertRequest)),
        route!(POST "/v1/events:query", "EventService"."QueryEvents", query_events(pb::QueryEventsRequest)),
        Route {
            // GET, so a browser's EventSource can open it.
            method: Method::GET,
            path: "/v1/events:stream",
            service: "EventService",
            rpc: "StreamEvents",
            unimplemented: false,
            handler: stream(
                |c: Arc<ApiCore>, p: Principal, r: pb::StreamEventsRequest| async move {
                    c.stream_events(&p, r).await
                },
            ),
        },
        route!(POST "/v1/events:retroHunt", "EventService"."RetroHunt", retro_hunt(pb::RetroHuntRequest)),
        route!(GET "/v1/nodes", "InventoryService"."ListNodes", list_nodes(pb::ListNodesRequest)),
        route!(GET "/v1/containers", "InventoryService"."ListContainers", list_containers(pb::ListContainersRequest)),
        route!(GET "/v1/containers/{id}/history", "InventoryService"."GetContainerHistory", get_container_history(pb::GetContainerHistoryRequest)),
        route!(GET "/v1/images", "InventoryService"."ListImages", list_images(pb::ListImagesRequest)),
        route!(GET "/v1/workloads", "InventoryService"."ListWorkloads", list_workloads(pb::ListWorkloadsRequest)),
        route!(GET "/v1/network/graph", "NetworkService"."GetNetworkGraph", get_network_graph(pb::GetNetworkGraphRequest), unimplemented),
        route!(GET "/v1/baselines/{workload}", "BaselineService"."GetBaseline", get_baseline(pb::GetBaselineRequest), unimplemented),
        route!(POST "/v1/baselines/{workload}:lock", "BaselineService"."LockBaseline", lock_baseline(pb::LockBaselineRequest), unimplemented),
        route!(POST "/v1/baselines/{workload}:setMode", "BaselineService"."SetBaselineMode", set_baseline_mode(pb::SetBaselineModeRequest), unimplemented),
        route!(GET "/v1/risks", "RiskService"."ListRisks", list_risks(pb::ListRisksRequest), unimplemented),
        route!(GET "/v1/scans", "ScanService"."ListScanResults", list_scan_results(pb::ListScanResultsRequest)),
        route!(GET "/v1/scans/{id}/sbom", "ScanService"."GetSbom", get_sbom(pb::GetSbomRequest)),
        route!(GET "/v1/vulnerabilities", "VulnerabilityService"."ListVulnerabilities", list_vulnerabilities(pb::ListVulnerabilitiesRequest)),
        route!(GET "/v1/rules", "PolicyService"."ListRules", list_rules(pb::ListRulesRequest)),
        route!(POST "/v1/rules:validate", "PolicyService"."ValidateRules", validate_rules(pb::ValidateRulesRequest)),
        route!(POST "/v1/rules:deploy", "PolicyService"."DeployRules", deploy_rules(pb::DeployRulesRequest)),
        route!(GET "/v1/response-policies", "PolicyService"."ListResponsePolicies", list_response_policies(pb::ListResponsePoliciesRequest)),
        route!(POST "/v1/response-policies:validate", "PolicyService"."ValidateResponsePolicy", validate_response_policy(pb::ValidateResponsePolicyRequest)),
        route!(POST "/v1/response-policies:deploy", "PolicyService"."DeployResponsePolicy", deploy_response_policy(pb::DeployResponsePolicyRequest)),
        route!(POST "/v1/responses", "ResponseService"."RequestAction", request_action(pb::RequestActionRequest)),
        route!(GET "/v1/audit", "ResponseService"."ListAudit", list_audit(pb::ListAuditRequest)),
        route!(GET "/v1/health/sensors", "HealthService"."GetSensorHealth", get_sensor_health(pb::GetSensorHealthRequest)),
        Route {
            method: Method::GET,
            path: "/v1/alerts/{id}/incident",
            service: "IncidentService",
            rpc: "GetIncidentBundle",
            unimplemented: false,
            handler: Handler::File(Box::new(|c, p, v| {
                match decode::<pb::GetIncidentBundleRequest>(v) {
                    Err(e) => Box::pin(std::future::ready(Err(e))),
                    Ok(r) => Box::pin(async move {
                        let b = c.get_incident_bundle(&p, r).await?;
                        Ok((FILE_TYPE_GZIP, b.filename, b.data))
                    }),
                }
            })),
        },
    ]
}

/// The JSON error body every HTTP failure carries.
pub fn error_response(status: u16, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message, "status": status });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"rampart\""),
        );
    }
    r
}

fn api_error(e: &ApiError) -> Response {
    error_response(e.http_status(), e.code(), &e.to_string())
}

/// Percent-decodes a path segment; `None` when it is not valid UTF-8 after decoding.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Matches `path` against a route template; the path parameters when it fits.
pub fn match_path(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut params = Vec::new();
    for (ts, ps) in t.iter().zip(&p) {
        if let Some(rest) = ts.strip_prefix('{') {
            let (name, suffix) = rest.split_once('}')?;
            let raw = ps.strip_suffix(suffix)?;
            let value = percent_decode(raw)?;
            if value.is_empty() {
                return None;
            }
            params.push((name.to_string(), value));
        } else if ts != ps {
            return None;
        }
    }
    Some(params)
}

fn field_named<'a>(
    msg: &'a prost_types::DescriptorProto,
    key: &str,
) -> Option<&'a prost_types::FieldDescriptorProto> {
    msg.field
        .iter()
        .find(|f| f.json_name() == key || f.name() == key)
}

/// Query parameters into the request message's JSON, typed by its descriptor;
/// `filter.kinds=exec` reaches a nested message's field.
fn query_into(input: &str, query: &str, obj: &mut Map<String, Value>) -> ApiResult<()> {
    let d = Descriptors::get();
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(&k.replace('+', " ")).ok_or_else(|| {
            ApiError::Invalid(format!("query parameter {k:?} is not valid UTF-8"))
        })?;
        let v = percent_decode(&v.replace('+', " ")).ok_or_else(|| {
            ApiError::Invalid(format!("query parameter {k}: the value is not valid UTF-8"))
        })?;
        let mut msg_name = input.to_string();
        let mut target: &mut Map<String, Value> = obj;
        let parts: Vec<&str> = k.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let msg = d
                .messages
                .get(&msg_name)
                .ok_or_else(|| ApiError::Internal(format!("no descriptor for {msg_name}")))?;
            let f = field_named(msg, part).ok_or_else(|| {
                let known: Vec<String> = msg
                    .field
                    .iter()
                    .map(|f| f.json_name().to_string())
                    .collect();
                ApiError::Invalid(format!(
                    "unknown query parameter {k:?}; expected one of: {}",
                    known.join(", ")
                ))
            })?;
            let json_name = f.json_name().to_string();
            let last = i + 1 == parts.len();
            if f.r#type() == Type::Message {
                if last {
                    return Err(ApiError::Invalid(format!(
                        "query parameter {k:?} is a message; name one of its fields ({k}.<field>)"
                    )));
                }
                msg_name = f.type_name().trim_start_matches('.').to_string();
                let entry = target
                    .entry(json_name)
                    .or_insert_with(|| Value::Object(Map::new()));
                target = match entry {
                    Value::Object(o) => o,
                    _ => {
                        return Err(ApiError::Invalid(format!(
                            "query parameter {k:?} given twice"
                        )))
                    }
                };
                continue;
            }
            if !last {
                return Err(ApiError::Invalid(format!(
                    "query parameter {k:?}: {part} has no fields"
                )));
            }
            let value = match f.r#type() {
                Type::Bool => match v.as_str() {
                    "true" | "1" => Value::Bool(true),
                    "false" | "0" => Value::Bool(false),
                    _ => {
                        return Err(ApiError::Invalid(format!(
                            "query parameter {k}: expected true or false, got {v:?}"
                        )))
                    }
                },
                Type::Enum => {
                    let e = d.enums.get(f.type_name().trim_start_matches('.'));
                    let known: Vec<&str> = e
                        .map(|e| e.value.iter().map(|v| v.name()).collect())
                        .unwrap_or_default();
                    if !known.contains(&v.as_str()) && v.parse::<i32>().is_err() {
                        return Err(ApiError::Invalid(format!(
                            "query parameter {k}: {v:?} is not one of {}",
                            known.join(", ")
                        )));
                    }
                    Value::String(v.clone())
                }
                _ => Value::String(v.clone()),
            };
            if f.label() == Label::Repeated {
                match target
                    .entry(json_name)
                    .or_insert_with(|| Value::Array(Vec::new()))
                {
                    Value::Array(a) => a.push(value),
                    _ => {
                        return Err(ApiError::Invalid(format!(
                            "query parameter {k:?} given twice"
                        )))
                    }
                }
            } else if target.insert(json_name, value).is_some() {
                return Err(ApiError::Invalid(format!(
                    "query parameter {k:?} given twice; it takes one value"
                )));
            }
        }
    }
    Ok(())
}

/// The largest request body accepted (HTTP and gRPC).
pub use crate::server::MAX_BODY_BYTES;

/// How much of a body over [`MAX_BODY_BYTES`] is read and thrown away before the 413:
/// a client still sending it then reads the answer instead of a broken pipe. Beyond
/// this the connection is closed on it.
const DRAIN_BYTES: usize = 8 << 20;

/// The request body, at most [`MAX_BODY_BYTES`]; a larger one is a 413.
async fn read_body_bounded(mut body: Body) -> Result<axum::body::Bytes, Response> {
    use http_body_util::BodyExt;
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            error_response(
                400,
                "INVALID_ARGUMENT",
                &format!("reading the request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.len());
        if total <= MAX_BODY_BYTES {
            kept.extend_from_slice(&data);
        } else if total > DRAIN_BYTES {
            break;
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(error_response(
            413,
            "PAYLOAD_TOO_LARGE",
            &format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    Ok(kept.into())
}

/// The shared state of the HTTP adapter.
pub struct HttpApi {
    pub core: Arc<ApiCore>,
    pub routes: Vec<Route>,
    pub openapi: Value,
}

impl HttpApi {
    pub fn new(core: Arc<ApiCore>) -> Self {
        let routes = routes();
        let openapi = crate::openapi::document(&routes);
        Self {
            core,
            routes,
            openapi,
        }
    }

    /// Serves one HTTP/JSON request.
    pub async fn handle(
        self: Arc<Self>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Body,
    ) -> Response {
        // The body is read before anything may refuse the request: a refusal (404,
        // 405, 401) that left it unread made hyper close the connection after the
        // answer, cutting a client still sending the body, or the next request it had
        // already put on that connection (a POST, which clients do not send again).
        let body = match read_body_bounded(body).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        let path = uri.path();
        let matched: Vec<(&Route, Vec<(String, String)>)> = self
            .routes
            .iter()
            .filter_map(|r| match_path(r.path, path).map(|p| (r, p)))
            .collect();
        let Some((route, params)) = matched.iter().find(|(r, _)| r.method == method) else {
            if matched.is_empty() {
                return error_response(404, "NOT_FOUND", &format!("no route {path}"));
            }
            let allow: Vec<&str> = matched.iter().map(|(r, _)| r.method.as_str()).collect();
            let mut r = error_response(
                405,
                "METHOD_NOT_ALLOWED",
                &format!("{path} takes {}", allow.join(", ")),
            );
            if let Ok(v) = header::HeaderValue::from_str(&allow.join(", ")) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            return r;
        };
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let principal = match self.core.authenticate(auth) {
            Ok(p) => p,
            Err(e) => return api_error(&e),
        };
        let request = match self
            .request_json(route, params, uri.query(), &headers, body)
            .await
        {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        match &route.handler {
            Handler::Unary(f) => match f(self.core.clone(), principal, request).await {
                Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
                Err(e) => api_error(&e),
            },
            Handler::Stream(f) => match f(self.core.clone(), principal, request).await {
                Ok(s) => {
                    let events = s.map(|item| -> Result<SseEvent, Infallible> {
                        Ok(match item {
                            Ok(v) => SseEvent::default().data(String::from_utf8_lossy(&v)),
                            Err(e) => SseEvent::default().event("error").data(
                                serde_json::json!({"code": e.code(), "message": e.to_string()})
                                    .to_string(),
                            ),
                        })
                    });
                    Sse::new(events)
                        .keep_alive(KeepAlive::default())
                        .into_response()
                }
                Err(e) => api_error(&e),
            },
            Handler::File(f) => match f(self.core.clone(), principal, request).await {
                Ok((content_type, name, body)) => {
                    // The name is ours (a sanitised id), but keep the header well formed.
                    let name: String = name
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
                        .collect();
                    (
                        [
                            (header::CONTENT_TYPE, content_type.to_string()),
                            (
                                header::CONTENT_DISPOSITION,
                                format!("attachment; filename=\"{name}\""),
                            ),
                        ],
                        body,
                    )
                        .into_response()
                }
                Err(e) => api_error(&e),
            },
        }
    }

    async fn request_json(
        &self,
        route: &Route,
        params: &[(String, String)],
        query: Option<&str>,
        headers: &HeaderMap,
        bytes: axum::body::Bytes,
    ) -> Result<Value, Response> {
        let invalid = |m: String| api_error(&ApiError::Invalid(m));
        let mut obj = if bytes.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            if let Some(ct) = headers.get(header::CONTENT_TYPE) {
                let ct = ct.to_str().unwrap_or_default();
                if !ct.starts_with("application/json") {
                    return Err(error_response(
                        415,
                        "UNSUPPORTED_MEDIA_TYPE",
                        &format!("the body must be application/json, not {ct:?}"),
                    ));
                }
            }
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(o)) => o,
                Ok(_) => return Err(invalid("the body must be a JSON object".into())),
                Err(e) => return Err(invalid(format!("the body is not valid JSON: {e}"))),
            }
        };
        let d = Descriptors::get();
        let key = format!("{}.{}", route.service, route.rpc);
        let input =
            d.rpcs.get(&key).map(|(i, _, _)| i.clone()).ok_or_else(|| {
                api_error(&ApiError::Internal(format!("no descriptor for {key}")))
            })?;
        if let Some(q) = query {
            query_into(&input, q, &mut obj).map_err(|e| api_error(&e))?;
        }
        for (name, value) in params {
            obj.insert(name.clone(), Value::String(value.clone()));
        }
        Ok(Value::Object(obj))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_with_verbs_and_escapes() {
        assert_eq!(
            match_path(
                "/v1/alerts/{id}:acknowledge",
                "/v1/alerts/a%2Fb:acknowledge"
            ),
            Some(vec![("id".into(), "a/b".into())])
        );
        assert_eq!(match_path("/v1/alerts/{id}", "/v1/alerts/"), None);
        assert_eq!(
            match_path("/v1/alerts/{id}:resolve", "/v1/alerts/x:acknowledge"),
            None
        );
        assert_eq!(
            match_path("/v1/alerts:stream", "/v1/alerts:stream"),
            Some(vec![])
        );
        assert_eq!(match_path("/v1/alerts/{id}", "/v1/alerts/%zz"), None);
    }

    #[test]
    fn query_parameters_are_typed_by_the_descriptor() {
        let mut o = Map::new();
        query_into(
            "rampart.v1.ListAlertsRequest",
            "severity=SEVERITY_HIGH&sinceNs=5&limit=3",
            &mut o,
        )
        .unwrap();
        let r: pb::ListAlertsRequest = decode(Value::Object(o)).unwrap();
        assert_eq!(r.severity, pb::Severity::High as i32);
        assert_eq!((r.since_ns, r.limit), (5, 3));
        let mut o = Map::new();
        query_into(
            "rampart.v1.ListContainersRequest",
            "include_removed=true",
            &mut o,
        )
        .unwrap();
        let r: pb::ListContainersRequest = decode(Value::Object(o)).unwrap();
        assert!(r.include_removed);
        let e = query_into("rampart.v1.ListAlertsRequest", "bogus=1", &mut Map::new()).unwrap_err();
        assert!(e.to_string().contains("unknown query parameter"), "{e}");
        let mut o = Map::new();
        query_into("rampart.v1.ListAlertsRequest", "limit=-4", &mut o).unwrap();
        assert!(decode::<pb::ListAlertsRequest>(Value::Object(o)).is_err());
    }
}
