//! The decision for one API call: what the policy says about a container create
//! (privileged, host namespaces, bind mounts) and an exec (the target's labels, a
//! privileged exec). Pure functions over the request; the exec target's labels are
//! looked up by the caller.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::policy::{OnError, Policy};
use crate::protocol::{Request, Response};

/// What the plugin needs to know before it can decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Nothing: here is the verdict.
    Verdict(Verdict),
    /// The labels of this container (an exec into it), then [`decide_exec`].
    Labels(String),
}

/// A verdict and the policy entry behind a denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub response: Response,
    /// `privileged`, `host_namespaces`, `bind_mounts`, `exec_labels`, `on_error`.
    pub rule: Option<&'static str>,
}

impl Verdict {
    pub fn allow() -> Self {
        Self {
            response: Response::allow(),
            rule: None,
        }
    }

    fn deny(rule: &'static str, msg: String) -> Self {
        Self {
            response: Response::deny(format!("rampart: {msg}")),
            rule: Some(rule),
        }
    }

    /// The plugin could not decide: as `on_error` says.
    pub fn on_error(policy: &Policy, why: String) -> Self {
        match policy.on_error {
            OnError::Allow => Self::allow(),
            OnError::Deny => Self::deny("on_error", format!("cannot decide ({why}); denied")),
        }
    }
}

/// First step for a request.
pub fn decide(policy: &Policy, req: &Request) -> Need {
    let call = req.call();
    match (call.method, call.segments.as_slice()) {
        ("POST", ["containers", "create"]) => Need::Verdict(decide_create(policy, &req.body)),
        ("POST", ["containers", name, "exec"]) => {
            if let Some(v) = privileged_exec(policy, &req.body) {
                return Need::Verdict(v);
            }
            if policy.deny.exec_labels.is_empty() {
                Need::Verdict(Verdict::allow())
            } else {
                Need::Labels((*name).to_string())
            }
        }
        _ => Need::Verdict(Verdict::allow()),
    }
}

fn body_json(body: &[u8]) -> Result<Value, String> {
    if body.is_empty() {
        return Err("the request body was not passed to the plugin".into());
    }
    serde_json::from_slice(body).map_err(|e| format!("the request body is not JSON: {e}"))
}

fn privileged_exec(policy: &Policy, body: &[u8]) -> Option<Verdict> {
    if !policy.deny.privileged {
        return None;
    }
    match body_json(body) {
        Ok(v) if v.get("Privileged").and_then(Value::as_bool) == Some(true) => Some(Verdict::deny(
            "privileged",
            "privileged exec is denied by policy".into(),
        )),
        Ok(_) => None,
        Err(why) => Some(Verdict::on_error(policy, why)),
    }
}

/// An exec into a container with these labels.
pub fn decide_exec(policy: &Policy, container: &str, labels: &BTreeMap<String, String>) -> Verdict {
    for (k, v) in &policy.deny.exec_labels {
        if labels.get(k) == Some(v) {
            return Verdict::deny(
                "exec_labels",
                format!("exec into {container} (labelled {k}={v}) is denied by policy"),
            );
        }
    }
    Verdict::allow()
}

/// `POST /containers/create`: the HostConfig's privileges, namespaces and mounts.
pub fn decide_create(policy: &Policy, body: &[u8]) -> Verdict {
    let deny = &policy.deny;
    if !deny.privileged && deny.host_namespaces.is_empty() && deny.bind_mounts.is_empty() {
        return Verdict::allow();
    }
    let v = match body_json(body) {
        Ok(v) => v,
        Err(why) => return Verdict::on_error(policy, why),
    };
    let Some(hc) = v.get("HostConfig") else {
        return Verdict::allow();
    };
    if deny.privileged && hc.get("Privileged").and_then(Value::as_bool) == Some(true) {
        return Verdict::deny("privileged", "--privileged is denied by policy".into());
    }
    for ns in &deny.host_namespaces {
        if hc.get(ns.field()).and_then(Value::as_str) == Some("host") {
            return Verdict::deny(
                "host_namespaces",
                format!("the host's {} namespace is denied by policy", ns.as_str()),
            );
        }
    }
    if !deny.bind_mounts.is_empty() {
        for src in bind_sources(hc) {
            if let Some(listed) = policy.denied_mount(Path::new(&src)) {
                return Verdict::deny(
                    "bind_mounts",
                    format!(
                        "bind mount of {src} is denied by policy (it exposes {})",
                        listed.display()
                    ),
                );
            }
        }
    }
    Verdict::allow()
}

/// Host paths bind-mounted by `Binds` (`SRC:DST[:OPTS]`, SRC absolute; a name is a
/// volume) and by `Mounts` of type bind.
fn bind_sources(hc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(binds) = hc.get("Binds").and_then(Value::as_array) {
        for b in binds.iter().filter_map(Value::as_str) {
            let src = b.split(':').next().unwrap_or(b);
            if src.starts_with('/') {
                out.push(src.to_string());
            }
        }
    }
    if let Some(mounts) = hc.get("Mounts").and_then(Value::as_array) {
        for m in mounts {
            if m.get("Type").and_then(Value::as_str) == Some("bind") {
                if let Some(s) = m.get("Source").and_then(Value::as_str) {
                    out.push(s.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DEFAULT_POLICY;

    fn policy() -> Policy {
        Policy::parse(DEFAULT_POLICY, Path::new("p.yaml")).unwrap()
    }

    fn req(method: &str, uri: &str, body: &str) -> Request {
        Request {
            method: method.into(),
            uri: uri.into(),
            body: body.as_bytes().to_vec(),
            ..Request::default()
        }
    }

    fn create(hc: &str) -> Verdict {
        match decide(
            &policy(),
            &req(
                "POST",
                "/v1.41/containers/create?name=x",
                &format!(r#"{{"Image":"busybox","HostConfig":{hc}}}"#),
            ),
        ) {
            Need::Verdict(v) => v,
            n => panic!("{n:?}"),
        }
    }

    #[test]
    fn creates_are_judged_on_their_host_config() {
        assert_eq!(create(r#"{"Privileged":true}"#).rule, Some("privileged"));
        assert_eq!(
            create(r#"{"PidMode":"host"}"#).rule,
            Some("host_namespaces")
        );
        assert_eq!(
            create(r#"{"NetworkMode":"host"}"#).rule,
            Some("host_namespaces")
        );
        assert_eq!(
            create(r#"{"IpcMode":"host"}"#).rule,
            Some("host_namespaces")
        );
        assert_eq!(
            create(r#"{"Binds":["/:/host:ro"]}"#).rule,
            Some("bind_mounts")
        );
        assert_eq!(
            create(r#"{"Mounts":[{"Type":"bind","Source":"/var/run/docker.sock","Target":"/s"}]}"#)
                .rule,
            Some("bind_mounts")
        );
        assert_eq!(
            create(r#"{"Binds":["/etc/passwd:/p"]}"#).rule,
            Some("bind_mounts")
        );
        // Allowed: ordinary settings, named volumes, other host paths.
        assert_eq!(
            create(r#"{"NetworkMode":"bridge","PidMode":"","Binds":["data:/data","/tmp/x:/x"]}"#),
            Verdict::allow()
        );
        assert_eq!(create(r#"{"Privileged":false}"#), Verdict::allow());
        let v = create(r#"{"Privileged":true}"#);
        assert!(
            !v.response.allow && v.response.msg.contains("privileged"),
            "{v:?}"
        );
    }

    #[test]
    fn an_exec_needs_its_targets_labels_and_a_privileged_exec_is_denied_outright() {
        let p = policy();
        assert_eq!(
            decide(
                &p,
                &req("POST", "/v1.41/containers/web/exec", r#"{"Cmd":["sh"]}"#)
            ),
            Need::Labels("web".into())
        );
        match decide(
            &p,
            &req(
                "POST",
                "/containers/web/exec",
                r#"{"Cmd":["sh"],"Privileged":true}"#,
            ),
        ) {
            Need::Verdict(v) => assert_eq!(v.rule, Some("privileged")),
            n => panic!("{n:?}"),
        }
        let prod: BTreeMap<String, String> =
            [("rampart.io/production".to_string(), "true".to_string())].into();
        assert_eq!(decide_exec(&p, "web", &prod).rule, Some("exec_labels"));
        let dev: BTreeMap<String, String> =
            [("rampart.io/production".to_string(), "false".to_string())].into();
        assert_eq!(decide_exec(&p, "web", &dev), Verdict::allow());
        // Everything else is allowed, and a create whose body is missing follows on_error.
        assert_eq!(
            decide(&p, &req("GET", "/v1.41/containers/json", "")),
            Need::Verdict(Verdict::allow())
        );
        match decide(&p, &req("POST", "/containers/create", "")) {
            Need::Verdict(v) => assert_eq!(v.rule, Some("on_error")),
            n => panic!("{n:?}"),
        }
    }
}
