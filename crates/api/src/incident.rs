//! Incident bundles served by the API (`GetIncidentBundle`, `GET
//! /v1/alerts/{id}/incident?before=60s&after=60s` as application/gzip): the recorder's
//! own bundle ([`rampart_recorder::Recorder::incident_bundle`], the one `rampart
//! incident` writes) of an alert. A bundle holds forensics (command lines, files,
//! connections), so it takes the triage permission (analyst, admin), and each download
//! is audited.
//!
//! `rampart up` reads its own node's recorder. Central asks the node that raised the
//! alert through its node gateway ([`crate::nodes::NodeGateway::incident_bundle`]): the
//! node builds the bundle from its recorder and packet captures and sends it in
//! checked pieces. A node that is not connected is Unavailable (503) with its name; a
//! bundle over [`rampart_bus::rpc::MAX_BUNDLE_BYTES`] is refused, asking for a narrower
//! window.

use std::time::Duration;

use rampart_proto::v1 as pb;

use crate::auth::{Permission, Principal};
use crate::core::{blocking, ApiCore, ApiError, ApiResult};
use crate::nodes::{NodeCallError, NodeGateway};

/// The default window on each side of the alert.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// The widest window accepted on each side.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// `60s`, `5m`, `2h`, `1d` or plain seconds; empty: [`DEFAULT_WINDOW`].
pub fn parse_window(field: &str, text: &str) -> ApiResult<Duration> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(DEFAULT_WINDOW);
    }
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    let n: u64 = digits.parse().ok().filter(|_| scale > 0).ok_or_else(|| {
        ApiError::Invalid(format!(
            "{field}: {text:?} is not a duration (expected a number with s, m, h or d, like 60s)"
        ))
    })?;
    let d = Duration::from_secs(n.saturating_mul(scale));
    if d > MAX_WINDOW {
        return Err(ApiError::Invalid(format!(
            "{field}: {text:?} is longer than the 24h a bundle may span on each side"
        )));
    }
    Ok(d)
}

impl ApiCore {
    /// The incident bundle of an alert the local node raised, from its recorder.
    pub async fn get_incident_bundle(
        &self,
        p: &Principal,
        r: pb::GetIncidentBundleRequest,
    ) -> ApiResult<pb::IncidentBundle> {
        self.require(p, Permission::Triage)?;
        if r.id.is_empty() {
            return Err(ApiError::Invalid("id: required".into()));
        }
        let before = parse_window("before", &r.before)?;
        let after = parse_window("after", &r.after)?;
        let store = self.store().clone();
        let id = r.id.clone();
        let stored = blocking(move || Ok(store.get_alert(&id)?))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no alert {:?}", r.id)))?;
        let local = self.local_node.as_deref().is_none_or(|n| n == stored.node);
        // Central scopes a node's alert ids as `<node>/<id>`; the node's recorder knows
        // the id it raised (unless that was already scoped: then both agree).
        let full = stored.alert.id.clone();
        let raised = full
            .strip_prefix(&stored.node)
            .and_then(|x| x.strip_prefix('/'))
            .map(str::to_string);
        let dir = match (&self.recorder_dir, local, &self.nodes) {
            (Some(dir), true, _) => dir.clone(),
            (None, _, Some(nodes)) => {
                let bundle = remote_bundle(
                    nodes.as_ref(),
                    &stored.node,
                    &r.id,
                    raised.as_deref().unwrap_or(&full),
                    before,
                    after,
                )
                .await?;
                return self.audited(p, &r.id, bundle, before, after).await;
            }
            (Some(_), false, _) => {
                return Err(ApiError::Unimplemented(format!(
                    "incident bundle: alert {:?} was raised by node {:?}, and this server reads only its own node's recorder",
                    r.id, stored.node
                )))
            }
            (None, _, None) => {
                return Err(ApiError::Unimplemented(format!(
                    "incident bundle: node {:?} holds the recorder, and this server has no way to reach nodes (run `rampart incident {}` on the node)",
                    stored.node, r.id
                )))
            }
        };
        let id = r.id.clone();
        let bundle = blocking(move || {
            let rec = rampart_recorder::Recorder::open_read_only(dir)
                .map_err(|e| ApiError::Internal(format!("recorder: {e}")))?;
            let tmp = tempfile::tempdir()
                .map_err(|e| ApiError::Internal(format!("a temporary directory: {e}")))?;
            let out = tmp.path().join("bundle.tar.gz");
            let mut found = rec.incident_bundle(raised.as_deref().unwrap_or(&full), before, after, &out);
            if matches!(found, Err(rampart_recorder::RecorderError::AlertNotFound(_))) && raised.is_some() {
                found = rec.incident_bundle(&full, before, after, &out);
            }
            let summary = found
                .map_err(|e| match e {
                    rampart_recorder::RecorderError::AlertNotFound(_) => ApiError::NotFound(format!(
                        "alert {id:?} is not in the node's recorder (yet: the recorder seals its blocks every few seconds; or it aged out)"
                    )),
                    e => ApiError::Internal(format!("incident bundle: {e}")),
                })?;
            let data = std::fs::read(&out)
                .map_err(|e| ApiError::Internal(format!("reading the bundle: {e}")))?;
            Ok(pb::IncidentBundle {
                filename: bundle_file_name(&id),
                data,
                events: summary.events as u64,
                processes: summary.processes as u64,
                connections: summary.connections as u64,
                files_written: summary.files_written as u64,
            })
        })
        .await?;
        self.audited(p, &r.id, bundle, before, after).await
    }

    /// Audits a download, then hands the bundle over.
    async fn audited(
        &self,
        p: &Principal,
        id: &str,
        bundle: pb::IncidentBundle,
        before: Duration,
        after: Duration,
    ) -> ApiResult<pb::IncidentBundle> {
        self.audit(
            p,
            "incident.download",
            id,
            &format!(
                "{} bytes, {} events, window -{}s/+{}s",
                bundle.data.len(),
                bundle.events,
                before.as_secs(),
                after.as_secs()
            ),
        )
        .await?;
        Ok(bundle)
    }
}

/// `incident-<id>.tar.gz`, the id kept to letters, digits and dashes.
fn bundle_file_name(id: &str) -> String {
    let short: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect();
    format!("incident-{short}.tar.gz")
}

/// The bundle of alert `id` (central's id), asked of `node`, which raised it as
/// `raised`.
async fn remote_bundle(
    nodes: &dyn NodeGateway,
    node: &str,
    id: &str,
    raised: &str,
    before: Duration,
    after: Duration,
) -> ApiResult<pb::IncidentBundle> {
    use rampart_bus::rpc::{ALERT_NOT_FOUND, BUNDLE_TOO_LARGE};
    let got = nodes
        .incident_bundle(node, raised, before, after)
        .await
        .map_err(|e| match e {
            NodeCallError::Unreachable(m) => ApiError::Unavailable(format!(
                "incident bundle of alert {id:?}: node {node} holds its recorder and did not answer ({m}); the bundle is built on the node, so it must be connected"
            )),
            NodeCallError::Refused(m) if m.contains(ALERT_NOT_FOUND) => ApiError::NotFound(m),
            NodeCallError::Refused(m) if m.contains(BUNDLE_TOO_LARGE) => ApiError::Invalid(m),
            // A node older than bundles over request/reply does not know the request.
            NodeCallError::Refused(m) if m.contains("unknown variant") => {
                ApiError::Unimplemented(format!(
                    "incident bundle of alert {id:?}: node {node} runs a version that does not build bundles for central ({m}); upgrade it, or run `rampart incident` there"
                ))
            }
            NodeCallError::Refused(m) => {
                ApiError::Internal(format!("incident bundle of alert {id:?}: {m}"))
            }
        })?;
    let a = got.answer;
    Ok(pb::IncidentBundle {
        filename: bundle_file_name(id),
        data: got.data,
        events: a.events,
        processes: a.processes,
        connections: a.connections,
        files_written: a.files_written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_with_units_and_refuse_the_rest() {
        assert_eq!(parse_window("before", "").unwrap(), DEFAULT_WINDOW);
        assert_eq!(parse_window("before", "90").unwrap().as_secs(), 90);
        assert_eq!(parse_window("before", "60s").unwrap().as_secs(), 60);
        assert_eq!(parse_window("before", "5m").unwrap().as_secs(), 300);
        assert_eq!(parse_window("before", "2h").unwrap().as_secs(), 7200);
        for bad in ["s", "5x", "-3s", "1.5m", "2d"] {
            let e = parse_window("after", bad).unwrap_err().to_string();
            assert!(e.starts_with("after: "), "{bad}: {e}");
        }
    }
}
