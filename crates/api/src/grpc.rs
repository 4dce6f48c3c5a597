//! The gRPC adapter: every generated tonic service trait implemented by handing the
//! request to [`ApiCore`] with the caller's bearer token (the `authorization`
//! metadata). Messages larger than [`crate::server::MAX_BODY_BYTES`] are refused by
//! tonic's decoder before they reach the core.

use std::sync::Arc;

use rampart_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::core::{ApiCore, ApiError};

/// The tonic services over one core.
#[derive(Clone)]
pub struct Grpc {
    core: Arc<ApiCore>,
}

pub fn status(e: ApiError) -> Status {
    let msg = e.to_string();
    match e.code() {
        "UNAUTHENTICATED" => Status::unauthenticated(msg),
        "PERMISSION_DENIED" => Status::permission_denied(msg),
        "NOT_FOUND" => Status::not_found(msg),
        "INVALID_ARGUMENT" => Status::invalid_argument(msg),
        "UNIMPLEMENTED" => Status::unimplemented(msg),
        "UNAVAILABLE" => Status::unavailable(msg),
        _ => Status::internal(msg),
    }
}

impl Grpc {
    pub fn new(core: Arc<ApiCore>) -> Self {
        Self { core }
    }

    fn principal<T>(&self, r: &Request<T>) -> Result<crate::auth::Principal, Status> {
        let h = r
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.core.authenticate(h).map_err(status)
    }

    /// Every service, as axum routes (`/rampart.v1.AlertService/ListAlerts`, …).
    pub fn routes(self, max_message_bytes: usize) -> axum::Router {
        use pb::*;
        macro_rules! svc {
            ($server:ty) => {
                <$server>::new(self.clone())
                    .max_decoding_message_size(max_message_bytes)
                    .max_encoding_message_size(64 << 20)
            };
        }
        tonic::service::Routes::new(svc!(alert_service_server::AlertServiceServer<Grpc>))
            .add_service(svc!(event_service_server::EventServiceServer<Grpc>))
            .add_service(svc!(inventory_service_server::InventoryServiceServer<Grpc>))
            .add_service(svc!(network_service_server::NetworkServiceServer<Grpc>))
            .add_service(svc!(baseline_service_server::BaselineServiceServer<Grpc>))
            .add_service(svc!(risk_service_server::RiskServiceServer<Grpc>))
            .add_service(svc!(scan_service_server::ScanServiceServer<Grpc>))
            .add_service(svc!(
                vulnerability_service_server::VulnerabilityServiceServer<Grpc>
            ))
            .add_service(svc!(policy_service_server::PolicyServiceServer<Grpc>))
            .add_service(svc!(response_service_server::ResponseServiceServer<Grpc>))
            .add_service(svc!(health_service_server::HealthServiceServer<Grpc>))
            .add_service(svc!(incident_service_server::IncidentServiceServer<Grpc>))
            .into_axum_router()
    }
}

macro_rules! service {
    ($trait:path { $($name:ident($req:ty) -> $resp:ty;)* } $($extra:tt)*) => {
        #[tonic::async_trait]
        impl $trait for Grpc {
            $(
                async fn $name(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let p = self.principal(&request)?;
                    self.core
                        .$name(&p, request.into_inner())
                        .await
                        .map(Response::new)
                        .map_err(status)
                }
            )*
            $($extra)*
        }
    };
}

type GrpcStream<T> =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send + 'static>>;

service! {
    pb::alert_service_server::AlertService {
            list_alerts(pb::ListAlertsRequest) -> pb::ListAlertsResponse;
            get_alert(pb::GetAlertRequest) -> pb::Alert;
            acknowledge_alert(pb::AcknowledgeAlertRequest) -> pb::Alert;
            resolve_alert(pb::ResolveAlertRequest) -> pb::Alert;
            reopen_alert(pb::ReopenAlertRequest) -> pb::Alert;
            comment_alert(pb::CommentAlertRequest) -> pb::Alert;
    }
    type StreamAlertsStream = GrpcStream<pb::Alert>;

    async fn stream_alerts(
        &self,
        request: Request<pb::StreamAlertsRequest>,
    ) -> Result<Response<Self::StreamAlertsStream>, Status> {
        use futures_util::StreamExt;
        let p = self.principal(&request)?;
        let s = self
            .core
            .stream_alerts(&p, request.into_inner())
            .map_err(status)?;
        Ok(Response::new(Box::pin(s.map(|r| r.map_err(status)))))
    }
}

service! {
    pb::event_service_server::EventService {
            query_events(pb::QueryEventsRequest) -> pb::QueryEventsResponse;
            retro_hunt(pb::RetroHuntRequest) -> pb::RetroHuntResponse;
    }
    type StreamEventsStream = GrpcStream<pb::Event>;

    async fn stream_events(
        &self,
        request: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        use futures_util::StreamExt;
        let p = self.principal(&request)?;
        let s = self
            .core
            .stream_events(&p, request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(Box::pin(s.map(|r| r.map_err(status)))))
    }
}

service! {
    pb::inventory_service_server::InventoryService {
            list_nodes(pb::ListNodesRequest) -> pb::ListNodesResponse;
            list_containers(pb::ListContainersRequest) -> pb::ListContainersResponse;
            get_container_history(pb::GetContainerHistoryRequest) -> pb::GetContainerHistoryResponse;
            list_images(pb::ListImagesRequest) -> pb::ListImagesResponse;
            list_workloads(pb::ListWorkloadsRequest) -> pb::ListWorkloadsResponse;
    }
}

service! {
    pb::network_service_server::NetworkService {
            get_network_graph(pb::GetNetworkGraphRequest) -> pb::GetNetworkGraphResponse;
    }
}

service! {
    pb::baseline_service_server::BaselineService {
            get_baseline(pb::GetBaselineRequest) -> pb::Baseline;
            lock_baseline(pb::LockBaselineRequest) -> pb::Baseline;
            set_baseline_mode(pb::SetBaselineModeRequest) -> pb::Baseline;
    }
}

service! {
    pb::risk_service_server::RiskService {
            list_risks(pb::ListRisksRequest) -> pb::ListRisksResponse;
    }
}

service! {
    pb::scan_service_server::ScanService {
            list_scan_results(pb::ListScanResultsRequest) -> pb::ListScanResultsResponse;
            get_sbom(pb::GetSbomRequest) -> pb::Sbom;
    }
}

service! {
    pb::vulnerability_service_server::VulnerabilityService {
            list_vulnerabilities(pb::ListVulnerabilitiesRequest) -> pb::ListVulnerabilitiesResponse;
    }
}

service! {
    pb::policy_service_server::PolicyService {
            list_rules(pb::ListRulesRequest) -> pb::ListRulesResponse;
            validate_rules(pb::ValidateRulesRequest) -> pb::ValidateResponse;
            deploy_rules(pb::DeployRulesRequest) -> pb::DeployResponse;
            list_response_policies(pb::ListResponsePoliciesRequest) -> pb::ListResponsePoliciesResponse;
            validate_response_policy(pb::ValidateResponsePolicyRequest) -> pb::ValidateResponse;
            deploy_response_policy(pb::DeployResponsePolicyRequest) -> pb::DeployResponse;
    }
}

service! {
    pb::response_service_server::ResponseService {
            request_action(pb::RequestActionRequest) -> pb::RequestActionResponse;
            list_audit(pb::ListAuditRequest) -> pb::ListAuditResponse;
    }
}

service! {
    pb::health_service_server::HealthService {
            get_sensor_health(pb::GetSensorHealthRequest) -> pb::GetSensorHealthResponse;
    }
}

service! {
    pb::incident_service_server::IncidentService {
            get_incident_bundle(pb::GetIncidentBundleRequest) -> pb::IncidentBundle;
    }
}
