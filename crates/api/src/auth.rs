//! Bearer tokens with roles. A token is 32 random bytes (hex, `rmp_` prefix); the token
//! file keeps only each token's SHA-256 with its name and role, one JSON object a line,
//! mode 0600. A stolen token file does not give tokens away.
//!
//! The roles nest: a viewer reads; an analyst also triages alerts (acknowledge,
//! resolve, comment) and asks for responses; an admin also manages tokens, rules and
//! policies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};

use crate::secret::write_secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Analyst,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Role::Viewer, Role::Analyst, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    pub fn allows(self, p: Permission) -> bool {
        match p {
            Permission::Read => true,
            Permission::Triage | Permission::Respond => self >= Role::Analyst,
            Permission::Admin => self == Role::Admin,
        }
    }
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Queries, streams.
    Read,
    /// Acknowledge, resolve, comment.
    Triage,
    /// Ask a node for a response action.
    Respond,
    /// Tokens, rules, policies.
    Admin,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// HTTP 401 / gRPC UNAUTHENTICATED.
    #[error("a valid bearer token is required")]
    Unauthenticated,
    /// HTTP 403 / gRPC PERMISSION_DENIED.
    #[error("{name} ({role:?}) may not do this: it needs {needed:?}")]
    Forbidden {
        name: String,
        role: Role,
        needed: Permission,
    },
}

impl AuthError {
    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::Unauthenticated => 401,
            AuthError::Forbidden { .. } => 403,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("no randomness from the system")]
    Random,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    role: Role,
    sha256: String,
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The tokens the API accepts.
#[derive(Debug, Default)]
pub struct TokenStore {
    path: Option<PathBuf>,
    // Looked up by digest: comparing digests leaks nothing useful about a token.
    by_digest: HashMap<[u8; 32], Principal>,
}

impl TokenStore {
    /// Tokens kept in memory only (tests, dry runs).
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Reads the token file; a missing file is an empty store that will be created.
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        let mut store = Self {
            path: Some(path.to_path_buf()),
            by_digest: HashMap::new(),
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(source) => {
                return Err(TokenError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let parse = |reason: String| TokenError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            };
            let e: Entry = serde_json::from_str(line).map_err(|e| parse(e.to_string()))?;
            let d = unhex(&e.sha256).ok_or_else(|| parse("sha256 is not 64 hex digits".into()))?;
            store.by_digest.insert(
                d,
                Principal {
                    name: e.name,
                    role: e.role,
                },
            );
        }
        Ok(store)
    }

    fn save(&self) -> Result<(), TokenError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut entries: Vec<Entry> = self
            .by_digest
            .iter()
            .map(|(d, p)| Entry {
                name: p.name.clone(),
                role: p.role,
                sha256: hex(d),
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name).then(a.sha256.cmp(&b.sha256)));
        let mut text = String::new();
        for e in entries {
            text.push_str(&serde_json::to_string(&e).unwrap_or_default());
            text.push('\n');
        }
        write_secret(path, text.as_bytes()).map_err(|source| TokenError::Io {
            path: path.clone(),
            source,
        })
    }

    /// Makes a token for `name` with `role`, keeps its digest, and returns the token:
    /// the only time it exists in clear.
    pub fn issue(&mut self, name: &str, role: Role) -> Result<String, TokenError> {
        let mut raw = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| TokenError::Random)?;
        let token = format!("rmp_{}", hex(&raw));
        self.by_digest.insert(
            digest(&token),
            Principal {
                name: name.into(),
                role,
            },
        );
        self.save()?;
        Ok(token)
    }

    /// Removes every token of `name`; how many there were.
    pub fn revoke(&mut self, name: &str) -> Result<usize, TokenError> {
        let before = self.by_digest.len();
        self.by_digest.retain(|_, p| p.name != name);
        let n = before - self.by_digest.len();
        if n > 0 {
            self.save()?;
        }
        Ok(n)
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.by_digest.values().any(|p| p.role == role)
    }

    /// Who an `Authorization` header value (`Bearer <token>`) names.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let token = authorization
            .and_then(|h| {
                let (scheme, token) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(AuthError::Unauthenticated)?;
        self.by_digest
            .get(&digest(token))
            .cloned()
            .ok_or(AuthError::Unauthenticated)
    }

    /// [`TokenStore::authenticate`], then the role check.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        needed: Permission,
    ) -> Result<Principal, AuthError> {
        let p = self.authenticate(authorization)?;
        if p.role.allows(needed) {
            Ok(p)
        } else {
            Err(AuthError::Forbidden {
                name: p.name,
                role: p.role,
                needed,
            })
        }
    }
}

/// `rampart up`'s first start: when the store has no admin token, issues one and writes
/// it in clear to `token_file` (mode 0600) for the local user. `None` when one exists.
pub fn ensure_admin_token(
    store: &mut TokenStore,
    token_file: &Path,
) -> Result<Option<String>, TokenError> {
    if store.has_role(Role::Admin) && token_file.is_file() {
        return Ok(None);
    }
    let token = store.issue("admin", Role::Admin)?;
    write_secret(token_file, format!("{token}\n").as_bytes()).map_err(|source| TokenError::Io {
        path: token_file.to_path_buf(),
        source,
    })?;
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_token_401_viewer_triaging_403() {
        let mut s = TokenStore::in_memory();
        let viewer = s.issue("vic", Role::Viewer).unwrap();
        let analyst = s.issue("ana", Role::Analyst).unwrap();
        assert_eq!(
            s.authorize(None, Permission::Read),
            Err(AuthError::Unauthenticated)
        );
        assert_eq!(
            s.authorize(Some("Bearer rmp_wrong"), Permission::Read)
                .unwrap_err()
                .http_status(),
            401
        );
        assert_eq!(
            s.authorize(Some(&format!("Basic {viewer}")), Permission::Read),
            Err(AuthError::Unauthenticated)
        );
        let v = s
            .authorize(Some(&format!("Bearer {viewer}")), Permission::Read)
            .unwrap();
        assert_eq!(v.role, Role::Viewer);
        let e = s
            .authorize(Some(&format!("bearer {viewer}")), Permission::Triage)
            .unwrap_err();
        assert_eq!(e.http_status(), 403);
        assert!(s
            .authorize(Some(&format!("Bearer {analyst}")), Permission::Triage)
            .is_ok());
        assert!(s
            .authorize(Some(&format!("Bearer {analyst}")), Permission::Admin)
            .is_err());
    }

    #[test]
    fn the_file_keeps_digests_only_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        let admin_file = dir.path().join("admin-token");
        let mut s = TokenStore::load(&tokens).unwrap();
        let admin = ensure_admin_token(&mut s, &admin_file).unwrap().unwrap();
        assert_eq!(ensure_admin_token(&mut s, &admin_file).unwrap(), None);
        let ana = s.issue("ana", Role::Analyst).unwrap();
        let text = std::fs::read_to_string(&tokens).unwrap();
        assert!(!text.contains(&admin) && !text.contains(&ana), "{text}");
        assert_eq!(crate::secret::mode(&tokens).unwrap(), 0o600);
        assert_eq!(crate::secret::mode(&admin_file).unwrap(), 0o600);
        assert_eq!(std::fs::read_to_string(&admin_file).unwrap().trim(), admin);
        let mut again = TokenStore::load(&tokens).unwrap();
        let p = again
            .authorize(Some(&format!("Bearer {admin}")), Permission::Admin)
            .unwrap();
        assert_eq!((p.name.as_str(), p.role), ("admin", Role::Admin));
        assert_eq!(again.revoke("ana").unwrap(), 1);
        let reloaded = TokenStore::load(&tokens).unwrap();
        assert_eq!(
            reloaded.authenticate(Some(&format!("Bearer {ana}"))),
            Err(AuthError::Unauthenticated)
        );
    }
}
