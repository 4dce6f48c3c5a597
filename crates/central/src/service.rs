//! `rampart central` as one call: the store, the NATS consumer into it, retention and
//! the enrollment listener, from [`CentralFile`]. The CLI parses arguments and calls
//! [`run_service`]. The API (crates/api, `api:` in the file) serves the store and
//! forwards event queries and retro-hunts to the nodes through [`NodeClient`].

use std::future::Future;
use std::sync::Arc;

use rampart_bus_nats::NatsBackplane;

use crate::config::CentralFile;
use crate::enroll::EnrollServer;
use crate::nodes::NodeClient;
use crate::pki::PkiFiles;
use crate::{
    open_store, run_central_with, BusConfig, CentralConfig, CentralError, CentralReport,
    IngestStats,
};

/// What a running central offers the rest of the process (the API).
#[derive(Clone)]
pub struct CentralHandle {
    pub store: Arc<dyn rampart_store::Store>,
    pub nodes: NodeClient,
    pub stats: Arc<IngestStats>,
    /// Where the API listens, when it runs.
    pub api_addr: Option<std::net::SocketAddr>,
    /// Where the admission webhook listens, when it runs.
    pub admission_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Central(#[from] CentralError),
    #[error(transparent)]
    Nats(#[from] rampart_bus_nats::NatsError),
    #[error(transparent)]
    Metrics(#[from] rampart_metrics::MetricsError),
    #[error("API on {addr}: {reason}")]
    Api { addr: String, reason: String },
    #[error("enrollment listener on {addr}: {reason}")]
    Enroll { addr: String, reason: String },
    #[error(transparent)]
    Admission(#[from] rampart_admission::server::ServerError),
}

/// Serves the admission webhook when `admission.listen` is set: TLS with central's
/// server certificate unless another is given; every decision is audited in the store
/// and a denial or warning is stored as an alert (the live feed shows it).
async fn start_admission(
    file: &CentralFile,
    store: Arc<dyn rampart_store::Store>,
) -> Result<Option<rampart_admission::server::RunningWebhook>, ServiceError> {
    use rampart_admission::server;
    let cfg = &file.admission;
    let Some(listen) = &cfg.listen else {
        return Ok(None);
    };
    let pki = PkiFiles::in_dir(&file.pki_dir.0);
    let cert = cfg.cert.clone().unwrap_or(pki.server_cert);
    let key = cfg.key.clone().unwrap_or(pki.server_key);
    let tls = server::tls_config(&cert, &key, cfg.client_ca.as_deref())?;
    let scans: Arc<dyn rampart_admission::ScanFacts> = match &cfg.scan_reports {
        Some(dir) => Arc::new(rampart_admission::ScanReportDir::new(dir)),
        // The fleet's own scan results, as the nodes reported them.
        None => Arc::new(crate::admission_scans::StoreScans::new(store.clone())),
    };
    let host = "central".to_string();
    let on_decision: server::OnDecision = Arc::new(move |d, req| {
        let now = rampart_event::wall_ns();
        let audit = rampart_admission::audit_record(d, &req.user_info.username, "central", now);
        let by = rampart_admission::Requester {
            user: &req.user_info.username,
            operation: &req.operation,
        };
        let alerts: Vec<_> = rampart_admission::alert(d, by, &host, now)
            .into_iter()
            .collect();
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            // No node: central's own records (as `append_audit` stores them).
            let batch = rampart_store::Ingest {
                alerts: &alerts,
                audit: std::slice::from_ref(&audit),
                ..Default::default()
            };
            if let Err(e) = store.ingest(&batch) {
                tracing::error!(error = %e, "admission decision not stored");
            }
        });
    });
    let webhook = Arc::new(server::Webhook {
        policy: cfg.policy.clone(),
        scans,
        on_decision,
    });
    let running = server::serve(
        listen,
        tls,
        cfg.client_ca.is_some(),
        cfg.unauthenticated_reviews,
        webhook,
    )
    .await?;
    tracing::info!(addr = %running.local_addr, "admission webhook (https: /validate, /mutate)");
    Ok(Some(running))
}

/// Runs central until `shutdown` resolves. `ready` gets the handle once the store is
/// open and the bus connected.
pub async fn run_service(
    file: CentralFile,
    ready: impl FnOnce(CentralHandle),
    shutdown: impl Future<Output = ()>,
) -> Result<CentralReport, ServiceError> {
    let nats = file.nats_config();
    nats.check_security()?;
    let store_config = file.store_config();
    let store = tokio::task::spawn_blocking(move || open_store(&store_config))
        .await
        .map_err(|e| CentralError::Join(e.to_string()))??;
    // The API's live alert feed sees what ingest stores.
    let feed = rampart_api::AlertFeed::new();
    let store: Arc<dyn rampart_store::Store> =
        Arc::new(rampart_api::LiveStore::new(store, feed.clone()));
    let plane = Arc::new(NatsBackplane::connect(nats.clone()).await?);
    let stats = Arc::new(IngestStats::default());
    let nodes = NodeClient::new(plane.clone(), Some(store.clone()));
    let api = match &file.api.listen {
        Some(listen) => {
            let err = |reason: String| ServiceError::Api {
                addr: listen.clone(),
                reason,
            };
            let config = rampart_api::LocalApiConfig {
                state_dir: file.api.state_dir.clone(),
                listen: listen.parse().map_err(|e| err(format!("{e}")))?,
                recorder_dir: None,
                rules: Vec::new(),
                node: String::new(),
                health: None,
                baselines: None,
            };
            let api = rampart_api::start_local_with(
                &config,
                store.clone(),
                feed,
                Some(Arc::new(nodes.clone())),
            )
            .await
            .map_err(|e| err(e.to_string()))?;
            tracing::info!(
                addr = %api.server.local_addr,
                cert = %api.cert.display(),
                admin_token = %api.admin_token_file.display(),
                "API (gRPC, HTTP/JSON, /openapi.json)"
            );
            Some(api)
        }
        None => None,
    };
    let admission = start_admission(&file, store.clone()).await?;
    let handle = CentralHandle {
        admission_addr: admission.as_ref().map(|a| a.local_addr),
        store: store.clone(),
        nodes,
        stats: stats.clone(),
        api_addr: api.as_ref().map(|a| a.server.local_addr),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let pki = PkiFiles::in_dir(&file.pki_dir.0);
    let mut enroll_task = None;
    if let Some(addr) = &file.enroll.listen {
        if pki.ca_cert.is_file() {
            let err = |reason: String| ServiceError::Enroll {
                addr: addr.clone(),
                reason,
            };
            let mut server = EnrollServer::new(pki.clone()).map_err(|e| err(e.to_string()))?;
            if let Some(h) = file.enroll.node_cert_hours {
                server = server.with_node_validity(std::time::Duration::from_secs(h.max(1) * 3600));
            }
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| err(e.to_string()))?;
            tracing::info!(%addr, "enrollment listener (TLS, one-time tokens)");
            enroll_task = Some(tokio::spawn(server.serve(listener, wait(stop_rx.clone()))));
        } else {
            tracing::warn!(dir = %pki.dir.display(), "no CA yet (rampart central init): enrollment is off");
        }
    }
    let mut metrics_task = None;
    if let Some(addr) = &file.metrics.listen {
        let h = rampart_metrics::install()?;
        let listener = rampart_metrics::bind(addr).await?;
        tracing::info!(%addr, "metrics on /metrics (loopback)");
        metrics_task = Some(tokio::spawn(rampart_metrics::serve(
            listener,
            h,
            wait(stop_rx.clone()),
        )));
    }
    ready(handle);
    let config = CentralConfig {
        store: file.store_config(),
        bus: BusConfig::Nats(Box::new(nats)),
        consumer: file.nats.consumer.clone(),
        retention: file.retention(),
        outputs: file.outputs.clone(),
        ingest: Default::default(),
    };
    let report = run_central_with(config, store, stats, shutdown).await;
    if let Some(api) = api {
        api.server.stop().await;
    }
    if let Some(webhook) = admission {
        webhook.stop().await;
    }
    let _ = stop_tx.send(true);
    for t in [enroll_task, metrics_task].into_iter().flatten() {
        let _ = t.await;
    }
    Ok(report?)
}
