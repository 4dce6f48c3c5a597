//! A real API server for the tests: a SQLite store in a temporary directory behind
//! the live feed, tokens of each role, the self-signed certificate, https on a free
//! loopback port.

#![allow(dead_code)]

use std::sync::Arc;

use rampart_api::client::ApiClient;
use rampart_api::{AlertFeed, ApiCore, LiveStore, Role, ServerConfig, TokenStore};
use rampart_event::{Alert, Priority};
use rampart_store::{Ingest, SqliteStore, Store};

pub struct Server {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub server: rampart_api::RunningServer,
    pub admin: String,
    pub analyst: String,
    pub viewer: String,
    pub cert: std::path::PathBuf,
}

impl Server {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let feed = AlertFeed::new();
        let sqlite: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("central.sqlite")).unwrap());
        let store: Arc<dyn Store> = Arc::new(LiveStore::new(sqlite, feed.clone()));
        let mut tokens = TokenStore::load(&dir.path().join("tokens")).unwrap();
        let admin = tokens.issue("root", Role::Admin).unwrap();
        let analyst = tokens.issue("ana", Role::Analyst).unwrap();
        let viewer = tokens.issue("vic", Role::Viewer).unwrap();
        let tls = rampart_api::ensure_self_signed(dir.path()).unwrap();
        // An empty recording (as a node leaves before it saw anything) and the shipped
        // rules, so the event and rule calls have something real to answer from.
        let recording = dir.path().join("recording");
        drop(
            rampart_recorder::Recorder::open(rampart_recorder::RecorderConfig::with_dir(
                &recording,
            ))
            .unwrap(),
        );
        let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        let core = ApiCore::new(store.clone(), Arc::new(tokens), feed)
            .with_recorder(recording)
            .with_rules(vec![rules])
            .with_local_node("node-a");
        let server = rampart_api::serve(
            ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                tls: Some((tls.cert.clone(), tls.key.clone())),
            },
            Arc::new(core),
        )
        .await
        .unwrap();
        Self {
            dir,
            store,
            server,
            admin,
            analyst,
            viewer,
            cert: tls.cert,
        }
    }

    pub fn client(&self, token: Option<&str>) -> ApiClient {
        ApiClient::new(
            &self.server.local_addr.to_string(),
            &self.cert,
            token.map(str::to_string),
        )
        .unwrap()
    }

    /// Stores alerts as central does (through the live store).
    pub fn ingest(&self, node: &str, alerts: &[Alert]) {
        let store = self.store.clone();
        store
            .ingest(&Ingest {
                node,
                node_version: "0.1.0",
                seen_ns: rampart_event::wall_ns(),
                alerts,
                ..Ingest::default()
            })
            .unwrap();
    }
}

pub const T0: u64 = 1_700_000_000_000_000_000;
pub const SEC: u64 = 1_000_000_000;

pub fn alert(id: &str, ts_ns: u64, rule: &str, p: Priority, container: Option<&str>) -> Alert {
    rampart_store::conformance::alert(id, ts_ns, rule, p, container)
}
