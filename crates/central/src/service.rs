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
    let handle = CentralHandle {
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
    let _ = stop_tx.send(true);
    for t in [enroll_task, metrics_task].into_iter().flatten() {
        let _ = t.await;
    }
    Ok(report?)
}
