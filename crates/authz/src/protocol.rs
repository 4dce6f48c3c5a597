//! Docker's authorization-plugin protocol (moby `pkg/authorization`): JSON over HTTP
//! POSTs on the plugin's unix socket. dockerd activates the plugin once
//! (`/Plugin.Activate`, answered with the interfaces it implements), then asks before
//! each API call (`/AuthZPlugin.AuthZReq`) and before returning its response
//! (`/AuthZPlugin.AuthZRes`). Bodies are `[]byte` on the Go side, so base64 in JSON;
//! dockerd only includes a request body that is JSON and under 1 MiB.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The media type dockerd sends and expects.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

pub const ACTIVATE: &str = "/Plugin.Activate";
pub const AUTHZ_REQ: &str = "/AuthZPlugin.AuthZReq";
pub const AUTHZ_RES: &str = "/AuthZPlugin.AuthZRes";

/// `/Plugin.Activate`'s answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "Implements")]
    pub implements: Vec<String>,
}

impl Manifest {
    pub fn authz() -> Self {
        Self {
            implements: vec!["authz".into()],
        }
    }
}

/// One API call as dockerd describes it (`authorization.Request`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Request {
    /// The authenticated user (TLS client certificate), empty on a unix socket.
    #[serde(rename = "User", default)]
    pub user: String,
    #[serde(rename = "UserAuthNMethod", default)]
    pub user_authn_method: String,
    #[serde(rename = "RequestMethod", default)]
    pub method: String,
    /// Path and query, with the API version prefix (`/v1.41/containers/create?name=x`).
    #[serde(rename = "RequestUri", default)]
    pub uri: String,
    #[serde(rename = "RequestBody", default, with = "b64")]
    pub body: Vec<u8>,
    #[serde(rename = "RequestHeaders", default)]
    pub headers: BTreeMap<String, String>,
    #[serde(rename = "ResponseStatusCode", default)]
    pub response_status: i64,
}

/// The plugin's verdict (`authorization.Response`). `Err` is for the plugin's own
/// failures; dockerd refuses the call either way when `Allow` is false.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    #[serde(rename = "Allow")]
    pub allow: bool,
    #[serde(rename = "Msg", default, skip_serializing_if = "String::is_empty")]
    pub msg: String,
    #[serde(rename = "Err", default, skip_serializing_if = "String::is_empty")]
    pub err: String,
}

impl Response {
    pub fn allow() -> Self {
        Self {
            allow: true,
            msg: String::new(),
            err: String::new(),
        }
    }

    pub fn deny(msg: impl Into<String>) -> Self {
        Self {
            allow: false,
            msg: msg.into(),
            err: String::new(),
        }
    }
}

/// Go's `[]byte` in JSON: base64 (standard alphabet, padded) or null.
mod b64 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        match text {
            None => Ok(Vec::new()),
            Some(t) => base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .map_err(serde::de::Error::custom),
        }
    }
}

/// The API call without its version prefix and query: `POST /containers/create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call<'a> {
    pub method: &'a str,
    /// Path segments after the version, e.g. `["containers", "web", "exec"]`.
    pub segments: Vec<&'a str>,
}

impl Request {
    pub fn call(&self) -> Call<'_> {
        let path = self.uri.split(['?', '#']).next().unwrap_or("");
        let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        // `/v1.41/...`: the version is optional in the API.
        if segments
            .first()
            .is_some_and(|s| s.len() > 1 && s.starts_with('v') && s[1..].contains('.'))
        {
            segments.remove(0);
        }
        Call {
            method: &self.method,
            segments,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_from_dockerd_decodes_with_its_base64_body() {
        let json = r#"{"User":"","UserAuthNMethod":"","RequestMethod":"POST",
            "RequestUri":"/v1.41/containers/web/exec?x=1",
            "RequestBody":"eyJDbWQiOlsic2giXX0=",
            "RequestHeaders":{"Content-Type":"application/json"}}"#;
        let r: Request = serde_json::from_str(json).unwrap();
        assert_eq!(r.body, br#"{"Cmd":["sh"]}"#);
        let c = r.call();
        assert_eq!(c.method, "POST");
        assert_eq!(c.segments, ["containers", "web", "exec"]);
        let r: Request = serde_json::from_str(
            r#"{"RequestMethod":"GET","RequestUri":"/_ping","RequestBody":null}"#,
        )
        .unwrap();
        assert!(r.body.is_empty());
        assert_eq!(r.call().segments, ["_ping"]);
    }

    #[test]
    fn verdicts_encode_as_dockerd_expects() {
        assert_eq!(
            serde_json::to_string(&Response::allow()).unwrap(),
            r#"{"Allow":true}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::deny("no")).unwrap(),
            r#"{"Allow":false,"Msg":"no"}"#
        );
        assert_eq!(
            serde_json::to_string(&Manifest::authz()).unwrap(),
            r#"{"Implements":["authz"]}"#
        );
    }
}
