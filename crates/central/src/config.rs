//! `rampart central`'s configuration: one YAML file, every key optional, unknown keys
//! refused, errors with file, line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where `rampart central init` writes the CA and certificates by default.
pub const DEFAULT_PKI_DIR: &str = "/var/lib/rampart/central/pki";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CentralFile {
    pub nats: NatsSection,
    pub store: StoreSection,
    /// The fleet's CA and certificates (`rampart central init --dir`).
    pub pki_dir: PkiDir,
    pub enroll: EnrollSection,
    pub retention: RetentionSection,
    /// Alert outputs for the whole fleet (as a node's `outputs:`).
    pub outputs: Option<rampart_notify::OutputsConfig>,
    /// Prometheus metrics (`/metrics`), on loopback only.
    pub metrics: MetricsSection,
    /// The API (gRPC, HTTP/JSON, server-sent events) over the fleet's store.
    pub api: ApiSection,
    /// The Kubernetes admission webhook (crates/admission), off unless `listen` is set.
    pub admission: rampart_admission::server::WebhookConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// https (a self-signed certificate) with bearer tokens; beyond loopback too,
    /// since it always has both. Null: no API.
    pub listen: Option<String>,
    /// The token file, the admin token (0600) and the certificate.
    pub state_dir: PathBuf,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            // Not 8443: `rampart up` serves its API there, and both may run on one host
            // (8444 is central's enrollment listener).
            listen: Some("127.0.0.1:8445".into()),
            state_dir: PathBuf::from("/var/lib/rampart/central/api"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct PkiDir(pub PathBuf);

impl Default for PkiDir {
    fn default() -> Self {
        Self(PathBuf::from(DEFAULT_PKI_DIR))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSection {
    pub url: String,
    /// {ca, cert, key}; default: `pki_dir`'s ca.pem, central.pem, central-key.pem when
    /// they exist.
    pub tls: Option<TlsFiles>,
    /// Accept a plain, unauthenticated connection beyond localhost (off: refused).
    pub allow_plain_remote: bool,
    /// The durable consumer's name.
    pub consumer: String,
    /// The bound of the JetStream stream in MiB (oldest batches leave first). JetStream
    /// reserves it on disk when the stream is created, so the server must have it free.
    pub stream_max_mb: u64,
}

impl Default for NatsSection {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            tls: None,
            allow_plain_remote: false,
            consumer: "central".into(),
            stream_max_mb: DEFAULT_STREAM_MAX_MB,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// A libpq connection string (`host=… user=… password=… dbname=…`); when given,
    /// PostgreSQL is the store. There is no default password.
    pub postgres: Option<String>,
    /// A PostgreSQL schema of central's own (default: the role's search path).
    pub schema: Option<String>,
    /// The SQLite file used when `postgres` is not given.
    pub sqlite: PathBuf,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            postgres: None,
            schema: None,
            sqlite: PathBuf::from("/var/lib/rampart/central/central.sqlite"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrollSection {
    /// Where nodes enroll (TLS with the server certificate, one-time tokens). Null:
    /// no enrollment listener.
    pub listen: Option<String>,
    /// Node certificates are valid this many hours (null: 825 days); nodes with
    /// `central.renew_with` renew theirs before they end.
    pub node_cert_hours: Option<u64>,
}

impl Default for EnrollSection {
    fn default() -> Self {
        Self {
            listen: Some("127.0.0.1:8444".into()),
            node_cert_hours: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    pub alerts_days: f64,
    pub audit_days: f64,
}

impl Default for RetentionSection {
    fn default() -> Self {
        Self {
            alerts_days: 30.0,
            audit_days: 365.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `127.0.0.1:9464`; null: off. Only loopback addresses are accepted.
    pub listen: Option<String>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            listen: Some("127.0.0.1:9465".into()),
        }
    }
}

/// The stream bound when none is configured: a week of a busy fleet's batches.
pub const DEFAULT_STREAM_MAX_MB: u64 = 8192;

/// `mb` MiB as JetStream's signed byte bound (saturating: a huge value means no bound
/// in practice, never a negative one).
pub fn stream_max_bytes(mb: u64) -> i64 {
    i64::try_from(mb.saturating_mul(1 << 20)).unwrap_or(i64::MAX)
}

pub const DEFAULT_CENTRAL_CONFIG: &str = r#"# rampart central: every key is optional; these are the defaults.
nats:
  url: nats://127.0.0.1:4222
  tls: null                 # {ca, cert, key}; default: pki_dir's ca.pem, central.pem, central-key.pem
  allow_plain_remote: false # a plain connection beyond localhost is refused
  consumer: central         # the durable consumer (one per central deployment)
  stream_max_mb: 8192       # the stream's bound; JetStream reserves it on disk at creation
store:
  postgres: null            # "host=… user=rampart password=… dbname=rampart": PostgreSQL; null: SQLite
  schema: null
  sqlite: /var/lib/rampart/central/central.sqlite
pki_dir: /var/lib/rampart/central/pki   # rampart central init writes the CA here
enroll:
  listen: 127.0.0.1:8444    # nodes enroll here (TLS + one-time tokens); any address is allowed
  node_cert_hours: null     # node certificates' lifetime (null: 825 days); nodes renew_with this listener
retention:
  alerts_days: 30
  audit_days: 365
outputs: null               # alert outputs for the whole fleet, as a node's (see `rampart outputs example`)
metrics:
  listen: 127.0.0.1:9465    # Prometheus /metrics, loopback only; null: off
api:
  listen: 127.0.0.1:8445    # gRPC + HTTP/JSON + SSE over https with bearer tokens; null: off (not 8443: rampart up's)
  state_dir: /var/lib/rampart/central/api   # tokens, admin-token (0600), api-cert.pem
admission:
  listen: null              # the Kubernetes admission webhook (https), e.g. 0.0.0.0:8446; null: off
  cert: null                # default: pki_dir's server.pem / server-key.pem (caBundle: ca.pem)
  key: null
  client_ca: null           # required beyond loopback: the API server's client certificate CA
  unauthenticated_reviews: false
  scan_reports: null        # a directory of `rampart scan --format json` reports; null: the nodes' scan results in the store
  policy: {}                # see `rampart admission policy`
"#;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {message}", path.display(), at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        at: Option<(usize, usize)>,
        message: String,
    },
}

impl CentralFile {
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        yaml_serde::from_str(text).map_err(|e| {
            let at = e.location().map(|l| (l.line(), l.column()));
            let mut message = e.to_string();
            if let Some((line, column)) = at {
                let suffix = format!(" at line {line} column {column}");
                if message.ends_with(&suffix) {
                    message.truncate(message.len() - suffix.len());
                }
            }
            ConfigError::Parse {
                path: origin.to_path_buf(),
                at,
                message,
            }
        })
    }

    /// The NATS client configuration: TLS as configured, else the PKI directory's
    /// central certificate when present.
    pub fn nats_config(&self) -> rampart_bus_nats::NatsConfig {
        let mut c = rampart_bus_nats::NatsConfig::new(&self.nats.url);
        c.allow_plain_remote = self.nats.allow_plain_remote;
        c.max_bytes = stream_max_bytes(self.nats.stream_max_mb);
        c.tls = match &self.nats.tls {
            Some(t) => Some(rampart_bus_nats::NatsTls {
                ca: t.ca.clone(),
                cert: t.cert.clone(),
                key: t.key.clone(),
            }),
            None => {
                let f = crate::pki::PkiFiles::in_dir(&self.pki_dir.0);
                (f.ca_cert.is_file() && f.central_cert.is_file() && f.central_key.is_file())
                    .then_some(rampart_bus_nats::NatsTls {
                        ca: f.ca_cert,
                        cert: f.central_cert,
                        key: f.central_key,
                    })
            }
        };
        c
    }

    pub fn store_config(&self) -> crate::StoreConfig {
        match &self.store.postgres {
            Some(url) => crate::StoreConfig::Postgres {
                url: url.clone(),
                schema: self.store.schema.clone(),
            },
            None => crate::StoreConfig::Sqlite {
                path: self.store.sqlite.clone(),
            },
        }
    }

    pub fn retention(&self) -> crate::RetentionConfig {
        let days = |d: f64| Duration::from_secs_f64((d.max(0.0)) * 86_400.0);
        crate::RetentionConfig {
            alerts: days(self.retention.alerts_days),
            audit: days(self.retention.audit_days),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_default_does_not_clash_with_rampart_up_or_enrollment() {
        let c = CentralFile::parse(DEFAULT_CENTRAL_CONFIG, Path::new("c.yaml")).unwrap();
        let listen = c.api.listen.clone().unwrap();
        assert_eq!(Some(listen.clone()), ApiSection::default().listen);
        assert_ne!(listen, rampart_api::local::DEFAULT_LISTEN);
        assert_ne!(Some(listen.clone()), c.enroll.listen);
        assert_ne!(Some(listen), c.metrics.listen);
    }

    #[test]
    fn defaults_parse_and_errors_name_the_place() {
        let c = CentralFile::parse(DEFAULT_CENTRAL_CONFIG, Path::new("c.yaml")).unwrap();
        assert_eq!(c.nats.url, "nats://127.0.0.1:4222");
        assert_eq!(c.nats_config().max_bytes, 8 << 30);
        let small = CentralFile::parse("nats: {stream_max_mb: 64}\n", Path::new("c.yaml")).unwrap();
        assert_eq!(small.nats_config().max_bytes, 64 << 20);
        assert_eq!(stream_max_bytes(u64::MAX), i64::MAX);
        assert_eq!(c.enroll.listen.as_deref(), Some("127.0.0.1:8444"));
        assert!(matches!(
            c.store_config(),
            crate::StoreConfig::Sqlite { .. }
        ));
        let e = CentralFile::parse("nats:\n  ulr: x\n", Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.yaml:2:") && e.contains("unknown field `ulr`"),
            "{e}"
        );
        let e = CentralFile::parse("retention:\n  alerts_days: soon\n", Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.yaml:2:"), "{e}");
        let c = CentralFile::parse("store:\n  postgres: host=db\n", Path::new("c.yaml")).unwrap();
        assert!(matches!(
            c.store_config(),
            crate::StoreConfig::Postgres { .. }
        ));
    }
}
