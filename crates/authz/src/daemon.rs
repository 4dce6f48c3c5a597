//! dockerd's side of the plugin: its `authorization-plugins` list in daemon.json,
//! and the SIGHUP that makes dockerd re-read it without a restart.
//!
//! What dockerd does (verified against dockerd 20.10 by tests/dockerd.rs): with a
//! plugin in its list that does not answer, it refuses every API call (fail closed,
//! after retrying the plugin for a while), and a reload or a start that names an
//! unreachable plugin fails. A plugin named in the file (not with the
//! `--authorization-plugin` flag, which a reload cannot undo) can be taken out again
//! while dockerd runs: [`set_registered`] then [`reload_dockerd`]. That is both the
//! break-glass procedure (`rampart authz break-glass`) and what `fail_mode: open`
//! does when rampart stops.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Map, Value};

use crate::AuthzError;

const KEY: &str = "authorization-plugins";

/// Adds (`on`) or removes `name` in daemon.json's `authorization-plugins`, keeping the
/// rest of the file; written atomically with its mode kept. True when it changed.
pub fn set_registered(config: &Path, name: &str, on: bool) -> Result<bool, AuthzError> {
    let text = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(AuthzError::io(format!("reading {}", config.display()))(e)),
    };
    let mut doc: Map<String, Value> = if text.trim().is_empty() {
        Map::new()
    } else {
        serde_json::from_str(&text).map_err(|e| AuthzError::Policy {
            file: config.to_path_buf(),
            line: e.line(),
            column: e.column(),
            message: format!("expected dockerd's JSON configuration: {e}"),
        })?
    };
    let mut list: Vec<String> = match doc.get(KEY) {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| AuthzError::Policy {
            file: config.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("{KEY}: expected a list of plugin names: {e}"),
        })?,
    };
    let had = list.iter().any(|n| n == name);
    if had == on {
        return Ok(false);
    }
    if on {
        list.push(name.to_string());
    } else {
        list.retain(|n| n != name);
    }
    if list.is_empty() {
        doc.remove(KEY);
    } else {
        doc.insert(KEY.into(), Value::from(list));
    }
    let mode = std::fs::metadata(config).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let tmp = config.with_extension("json.rampart-tmp");
    let mut body = serde_json::to_vec_pretty(&Value::Object(doc))
        .map_err(|e| AuthzError::Other(format!("encoding {}: {e}", config.display())))?;
    body.push(b'\n');
    std::fs::write(&tmp, body).map_err(AuthzError::io(format!("writing {}", tmp.display())))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(AuthzError::io(format!("chmod {}", tmp.display())))?;
    std::fs::rename(&tmp, config)
        .map_err(AuthzError::io(format!("replacing {}", config.display())))?;
    Ok(true)
}

/// Sends SIGHUP to the dockerd whose pid file this is: it re-reads daemon.json.
pub fn reload_dockerd(pidfile: &Path) -> Result<u32, AuthzError> {
    let text = std::fs::read_to_string(pidfile)
        .map_err(AuthzError::io(format!("reading {}", pidfile.display())))?;
    let pid: i32 = text.trim().parse().map_err(|_| AuthzError::Policy {
        file: pidfile.to_path_buf(),
        line: 1,
        column: 1,
        message: format!("expected a process id, found {:?}", text.trim()),
    })?;
    if pid <= 1 {
        return Err(AuthzError::Other(format!(
            "{}: refusing to signal pid {pid}",
            pidfile.display()
        )));
    }
    // SAFETY: kill(2) with a checked positive pid and a valid signal has no memory effects.
    let r = unsafe { libc::kill(pid, libc::SIGHUP) };
    if r != 0 {
        return Err(AuthzError::io(format!("signalling dockerd (pid {pid})"))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(pid as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_edits_only_its_own_entry() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("daemon.json");
        std::fs::write(&f, r#"{"debug": true, "authorization-plugins": ["other"]}"#).unwrap();
        assert!(set_registered(&f, "rampart", true).unwrap());
        assert!(!set_registered(&f, "rampart", true).unwrap());
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        assert_eq!(
            v["authorization-plugins"],
            serde_json::json!(["other", "rampart"])
        );
        assert_eq!(v["debug"], Value::Bool(true));
        assert!(set_registered(&f, "rampart", false).unwrap());
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        assert_eq!(v["authorization-plugins"], serde_json::json!(["other"]));
        // A missing file is an empty configuration; a broken one is refused with its place.
        let g = dir.path().join("new.json");
        assert!(set_registered(&g, "rampart", true).unwrap());
        std::fs::write(&f, "{\n  \"debug\": tru\n}").unwrap();
        let e = set_registered(&f, "rampart", true).unwrap_err().to_string();
        assert!(
            e.contains("daemon.json:3:") && e.contains("expected"),
            "{e}"
        );
    }
}
