//! The fleet's node registry and what NATS lets each node do.
//!
//! - Every certificate central signs (enrollment, renewal) is recorded in
//!   `nodes.json` in the PKI directory: node name, serial, expiry.
//! - `rampart central revoke --node NAME` marks the node revoked: its renewals are
//!   refused, no new token is issued for the name, and it leaves NATS's user list.
//! - [`nats_fleet_conf`] is the nats-server configuration for the fleet: TLS with
//!   `verify_and_map` (a client is the user its certificate's subject names) and an
//!   `authorization` include, [`NATS_USERS_FILE`], generated from the registry. Each
//!   node may publish only on its own subject (`rampart.node.<name>`) and read the
//!   stream's info, subscribe only to its own requests (`rampart.rpc.<name>`) and its
//!   own inbox (`_INBOX_<name>.>`), and answer the requests it received
//!   (`allow_responses`); central's certificate may do everything. A certificate of the
//!   fleet's CA whose subject is not listed (a revoked node, another CA's subject) is
//!   refused at connect.
//! - The users file changes when a node enrolls or is revoked; nats-server reads it
//!   again on a reload, which central sends (SIGHUP) when nats-server runs on its host
//!   and wrote its pid file (`pid_file` in the fleet configuration).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pki::PkiFiles;

/// The users file included by [`nats_fleet_conf`], in the PKI directory.
pub const NATS_USERS_FILE: &str = "nats-users.conf";
/// The fleet configuration for nats-server, in the PKI directory.
pub const NATS_FLEET_FILE: &str = "nats-fleet.conf";
/// Where nats-server writes its pid (so central can make it reload the users).
pub const NATS_PID_FILE: &str = "nats-server.pid";
const REGISTRY_FILE: &str = "nodes.json";

/// The organisational unit every node certificate carries (central's does not).
pub const NODE_OU: &str = "rampart-node";
/// The common name of central's own NATS client certificate.
pub const CENTRAL_CN: &str = "rampart-central";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a node registry: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("no node named {0:?} was ever enrolled")]
    Unknown(String),
    #[error("node {0:?} is revoked")]
    Revoked(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A certificate central signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    /// Hex serial.
    pub serial: String,
    pub issued_ns: u64,
    pub not_after_ns: u64,
}

/// A node as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub name: String,
    pub enrolled_ns: u64,
    #[serde(default)]
    pub certs: Vec<IssuedCert>,
    /// When it was revoked; a revoked node stays revoked (enroll it under a new name).
    #[serde(default)]
    pub revoked_ns: Option<u64>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Registry {
    pub nodes: Vec<NodeEntry>,
}

impl Registry {
    pub fn node(&self, name: &str) -> Option<&NodeEntry> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn is_revoked(&self, name: &str) -> bool {
        self.node(name).is_some_and(|n| n.revoked_ns.is_some())
    }
}

fn registry_path(files: &PkiFiles) -> PathBuf {
    files.dir.join(REGISTRY_FILE)
}

/// Reads the registry (empty when there is none yet).
pub fn load(files: &PkiFiles) -> Result<Registry, RegistryError> {
    let path = registry_path(files);
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().is_empty() => Ok(Registry::default()),
        Ok(t) => parse(&path, &t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
        Err(e) => Err(io(&path)(e)),
    }
}

fn parse(path: &Path, text: &str) -> Result<Registry, RegistryError> {
    serde_json::from_str(text).map_err(|e| RegistryError::Format {
        path: path.to_path_buf(),
        reason: format!("line {} column {}: {e}", e.line(), e.column()),
    })
}

/// Runs `f` on the registry under an exclusive lock, writes back what it leaves, and
/// regenerates the NATS users file from it.
pub fn update<T>(
    files: &PkiFiles,
    f: impl FnOnce(&mut Registry) -> Result<T, RegistryError>,
) -> Result<T, RegistryError> {
    let path = registry_path(files);
    std::fs::create_dir_all(&files.dir).map_err(io(&files.dir))?;
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    let mut text = String::new();
    match std::fs::File::open(&path) {
        Ok(mut f) => {
            f.read_to_string(&mut text).map_err(io(&path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&path)(e)),
    }
    let mut reg = if text.trim().is_empty() {
        Registry::default()
    } else {
        parse(&path, &text)?
    };
    let out = f(&mut reg)?;
    let json = serde_json::to_vec_pretty(&reg).map_err(|e| RegistryError::Format {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    rampart_api::write_secret(&path, &json).map_err(io(&path))?;
    let users = files.dir.join(NATS_USERS_FILE);
    rampart_api::write_secret(
        &users,
        nats_users(&reg, &NatsSubjects::default()).as_bytes(),
    )
    .map_err(io(&users))?;
    drop(lock);
    Ok(out)
}

/// Records a certificate signed for `node` (enrollment or renewal).
pub fn record_issued(files: &PkiFiles, node: &str, cert_pem: &str) -> Result<(), RegistryError> {
    let (serial, not_after_ns) = cert_serial_and_expiry(cert_pem).unwrap_or_default();
    let now = rampart_event::wall_ns();
    update(files, |reg| {
        let cert = IssuedCert {
            serial,
            issued_ns: now,
            not_after_ns,
        };
        match reg.nodes.iter_mut().find(|n| n.name == node) {
            Some(n) => {
                if n.revoked_ns.is_some() {
                    return Err(RegistryError::Revoked(node.into()));
                }
                // Expired certificates are of no further interest.
                n.certs.retain(|c| c.not_after_ns > now);
                n.certs.push(cert);
            }
            None => reg.nodes.push(NodeEntry {
                name: node.into(),
                enrolled_ns: now,
                certs: vec![cert],
                revoked_ns: None,
            }),
        }
        Ok(())
    })
}

/// Revokes `node`: refused by NATS (once it reloads the users) and by renewal.
pub fn revoke(files: &PkiFiles, node: &str) -> Result<NodeEntry, RegistryError> {
    let now = rampart_event::wall_ns();
    update(files, |reg| {
        let n = reg
            .nodes
            .iter_mut()
            .find(|n| n.name == node)
            .ok_or_else(|| RegistryError::Unknown(node.into()))?;
        n.revoked_ns.get_or_insert(now);
        Ok(n.clone())
    })
}

/// A PEM certificate's serial (hex) and expiry (ns since the epoch).
pub fn cert_serial_and_expiry(pem: &str) -> Option<(String, u64)> {
    let der = crate::pki::first_cert_der_of(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    Some((
        crate::pki::hex(cert.raw_serial()),
        u64::try_from(not_after)
            .unwrap_or(0)
            .saturating_mul(1_000_000_000),
    ))
}

/// The subjects the permissions name (the defaults of `rampart_bus_nats`).
#[derive(Debug, Clone)]
pub struct NatsSubjects {
    pub stream: String,
    pub subject_prefix: String,
    pub rpc_prefix: String,
}

impl Default for NatsSubjects {
    fn default() -> Self {
        let n = rampart_bus_nats::NatsConfig::new("nats://127.0.0.1:4222");
        Self {
            stream: n.stream,
            subject_prefix: n.subject_prefix,
            rpc_prefix: rampart_bus_nats::RPC_PREFIX.into(),
        }
    }
}

/// The user a node's certificate maps to (its subject, as nats-server compares it).
pub fn node_user(node: &str) -> String {
    format!("CN={node},OU={NODE_OU}")
}

fn quote(s: &str) -> String {
    // Node names are checked ([A-Za-z0-9._-]); subjects are ours.
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `authorization { users = [...] }` block: central may do everything, each node
/// that is enrolled and not revoked only its own subjects.
pub fn nats_users(reg: &Registry, s: &NatsSubjects) -> String {
    let mut out = String::from(
        "# Generated by rampart central from the node registry (nodes.json): do not edit.\n\
         authorization {\n  users = [\n",
    );
    out.push_str(&format!(
        "    {{ user: {} }}\n",
        quote(&format!("CN={CENTRAL_CN}"))
    ));
    for n in reg.nodes.iter().filter(|n| n.revoked_ns.is_none()) {
        let token = rampart_bus_nats::subject_token(&n.name);
        let publish = [
            format!("{}.{token}", s.subject_prefix),
            format!("$JS.API.STREAM.INFO.{}", s.stream),
        ];
        let subscribe = [
            format!("{}.{token}", s.rpc_prefix),
            format!("{}.>", rampart_bus_nats::node_inbox_prefix(&n.name)),
        ];
        let list = |v: &[String]| v.iter().map(|x| quote(x)).collect::<Vec<_>>().join(", ");
        out.push_str(&format!(
            "    {{ user: {}, permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }}, allow_responses: {{ max: 1000000, expires: \"1h\" }} }} }}\n",
            quote(&node_user(&n.name)),
            list(&publish),
            list(&subscribe),
        ));
    }
    out.push_str("  ]\n}\n");
    out
}

/// nats-server's configuration for the fleet: mutual TLS with the fleet's CA, each
/// certificate mapped to its user, the users file, and the pid file central signals
/// to reload it. Run nats-server with it (`nats-server -js -c <pki>/nats-fleet.conf`)
/// or include it from another configuration: nats-server resolves includes relative
/// to the including file, so the users file is named relative to this one.
pub fn nats_fleet_conf(files: &PkiFiles) -> String {
    format!(
        "# nats-server for the Rampart fleet: `nats-server -js -c {fleet}`, or include\n\
         # this file (by a path relative to the including one). Every client needs a\n\
         # certificate from the fleet CA and is the user its subject names: central may\n\
         # do all, each node only its own subjects ({NATS_USERS_FILE}, generated).\n\
         # Central reloads nats-server when nodes enroll or are revoked: keep JetStream\n\
         # in the file (jetstream {{ store_dir: ... }}), not only as -js, so it survives.\n\
         tls {{\n  cert_file: \"{cert}\"\n  key_file: \"{key}\"\n  ca_file: \"{ca}\"\n  verify_and_map: true\n  timeout: 2\n}}\n\
         pid_file: \"{pid}\"\n\
         include \"{NATS_USERS_FILE}\"\n",
        fleet = files.dir.join(NATS_FLEET_FILE).display(),
        cert = files.server_cert.display(),
        key = files.server_key.display(),
        ca = files.ca_cert.display(),
        pid = files.dir.join(NATS_PID_FILE).display(),
    )
}

/// Writes the fleet configuration and the users file (from the registry).
pub fn write_nats_conf(files: &PkiFiles) -> Result<PathBuf, RegistryError> {
    update(files, |_| Ok(()))?;
    let path = files.dir.join(NATS_FLEET_FILE);
    std::fs::write(&path, nats_fleet_conf(files)).map_err(io(&path))?;
    Ok(path)
}

/// Asks the nats-server on this host to read its users again (SIGHUP to the pid in
/// its pid file). `Ok(false)` when there is no pid file (nats-server runs elsewhere:
/// reload it there, `nats-server --signal reload`).
pub fn reload_nats(files: &PkiFiles) -> Result<bool, RegistryError> {
    let path = files.dir.join(NATS_PID_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(&path)(e)),
    };
    let pid: libc::pid_t = text.trim().parse().map_err(|_| RegistryError::Format {
        path: path.clone(),
        reason: format!("not a pid: {:?}", text.trim()),
    })?;
    // SAFETY: kill(2) with a pid read from nats-server's own pid file and SIGHUP,
    // which nats-server takes as "reload the configuration".
    let r = unsafe { libc::kill(pid, libc::SIGHUP) };
    if r != 0 {
        return Err(io(&path)(std::io::Error::last_os_error()));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_list_enrolled_nodes_with_their_own_subjects_only() {
        let dir = tempfile::tempdir().unwrap();
        let files = PkiFiles::in_dir(dir.path());
        let now = rampart_event::wall_ns();
        update(&files, |r| {
            for name in ["web-1", "db.2", "gone"] {
                r.nodes.push(NodeEntry {
                    name: name.into(),
                    enrolled_ns: now,
                    certs: Vec::new(),
                    revoked_ns: None,
                });
            }
            Ok(())
        })
        .unwrap();
        revoke(&files, "gone").unwrap();
        assert!(matches!(
            revoke(&files, "never"),
            Err(RegistryError::Unknown(_))
        ));
        let users = std::fs::read_to_string(dir.path().join(NATS_USERS_FILE)).unwrap();
        assert!(users.contains("\"CN=rampart-central\""), "{users}");
        assert!(
            users.contains("\"CN=web-1,OU=rampart-node\"")
                && users.contains("\"rampart.node.web-1\"")
                && users.contains("\"rampart.rpc.web-1\"")
                && users.contains("\"_INBOX_web-1.>\""),
            "{users}"
        );
        // A dot in a name is one subject token.
        assert!(users.contains("\"rampart.node.db_2\""), "{users}");
        assert!(
            !users.contains("gone"),
            "a revoked node is not a user: {users}"
        );
        assert!(!users.contains("rampart.node.>"), "{users}");
        assert_eq!(
            rampart_api::secret::mode(&registry_path(&files)).unwrap(),
            0o600
        );
        assert!(load(&files).unwrap().is_revoked("gone"));
        assert!(matches!(
            record_issued(&files, "gone", ""),
            Err(RegistryError::Revoked(_))
        ));
    }
}
