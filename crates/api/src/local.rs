//! The API as `rampart up` runs it on one host: the token file and the admin token,
//! the self-signed certificate, and the server, all under one state directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_store::Store;

use crate::auth::{ensure_admin_token, TokenError, TokenStore};
use crate::core::ApiCore;
use crate::live::AlertFeed;
use crate::server::{serve, RunningServer, ServerConfig, ServerError};
use crate::tls::{ensure_self_signed, TlsError};

/// `rampart up`'s API settings.
#[derive(Debug, Clone)]
pub struct LocalApiConfig {
    /// Where the token file, the admin token and the certificate live
    /// (`/var/lib/rampart`).
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    /// The node's recorder, for event queries and retro-hunts.
    pub recorder_dir: Option<PathBuf>,
    /// The rules the node runs (ListRules).
    pub rules: Vec<PathBuf>,
    /// The name the local node publishes under (empty: no local node, as in
    /// `rampart central`).
    pub node: String,
    /// The local node's sensor health (kernel, hooks, drops).
    pub health: Option<crate::core::LocalHealth>,
    /// The local node's baselines (GetBaseline, ListRisks).
    pub baselines: Option<crate::baselines::BaselineSource>,
}

pub const DEFAULT_STATE_DIR: &str = "/var/lib/rampart";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

impl LocalApiConfig {
    pub fn token_file(&self) -> PathBuf {
        self.state_dir.join("api-tokens")
    }

    pub fn admin_token_file(&self) -> PathBuf {
        self.state_dir.join("admin-token")
    }

    pub fn cert_file(&self) -> PathBuf {
        self.state_dir.join("api-cert.pem")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalApiError {
    #[error("tokens: {0}")]
    Tokens(#[from] TokenError),
    #[error("certificate: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// The running API and where its client needs to look.
pub struct LocalApi {
    pub server: RunningServer,
    pub cert: PathBuf,
    pub admin_token_file: PathBuf,
    /// True when this start wrote a new admin token.
    pub admin_token_created: bool,
}

/// Prepares the state directory and serves https on `config.listen`.
pub async fn start_local(
    config: &LocalApiConfig,
    store: Arc<dyn Store>,
    feed: AlertFeed,
) -> Result<LocalApi, LocalApiError> {
    start_local_with(config, store, feed, None).await
}

/// As [`start_local`], with a way to the fleet's nodes (`rampart central`): event
/// queries naming another node go through `nodes`.
pub async fn start_local_with(
    config: &LocalApiConfig,
    store: Arc<dyn Store>,
    feed: AlertFeed,
    nodes: Option<Arc<dyn crate::nodes::NodeGateway>>,
) -> Result<LocalApi, LocalApiError> {
    let dir = config.state_dir.clone();
    let token_file = config.token_file();
    let admin_file = config.admin_token_file();
    let (tokens, created, tls) =
        tokio::task::spawn_blocking(move || prepare(&dir, &token_file, &admin_file))
            .await
            .map_err(|e| {
                LocalApiError::Tls(TlsError::Io {
                    path: config.state_dir.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            })??;
    let mut core = ApiCore::new(store, Arc::new(tokens), feed).with_rules(config.rules.clone());
    if !config.node.is_empty() {
        core = core.with_local_node(config.node.clone());
    }
    if let Some(r) = &config.recorder_dir {
        core = core.with_recorder(r.clone());
    }
    if let Some(g) = nodes {
        core = core.with_nodes(g);
    }
    if let Some(h) = &config.health {
        core = core.with_local_health(h.clone());
    }
    if let Some(b) = &config.baselines {
        core = core.with_baselines(b.clone());
    }
    let server = serve(
        ServerConfig {
            listen: config.listen,
            tls: Some((tls.cert.clone(), tls.key.clone())),
        },
        Arc::new(core),
    )
    .await?;
    Ok(LocalApi {
        server,
        cert: tls.cert,
        admin_token_file: config.admin_token_file(),
        admin_token_created: created,
    })
}

fn prepare(
    dir: &Path,
    token_file: &Path,
    admin_file: &Path,
) -> Result<(TokenStore, bool, crate::tls::TlsFiles), LocalApiError> {
    let mut tokens = TokenStore::load(token_file)?;
    let created = ensure_admin_token(&mut tokens, admin_file)?.is_some();
    let tls = ensure_self_signed(dir)?;
    Ok((tokens, created, tls))
}
