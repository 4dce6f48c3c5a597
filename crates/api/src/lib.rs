//! Rampart's API: one contract (`rampart-proto`), one core, three ways in.
//!
//! - [`core`]: [`ApiCore`], every service over `Arc<dyn rampart_store::Store>`, the
//!   live alert feed ([`live`]) and the local node's recorder; it checks permissions
//!   and audits writes, so the adapters cannot differ on either. Event queries for
//!   other nodes go to them through a [`nodes::NodeGateway`] (request/reply).
//! - [`grpc`]: the tonic services; [`http`]: HTTP/JSON routes (canonical proto3 JSON
//!   through pbjson) and server-sent events; [`openapi`]: the OpenAPI document made
//!   from the descriptors and the route table, served at `/openapi.json`.
//! - [`server`]: one TLS listener for all of it (ALPN h2 and http/1.1), body and
//!   message size limits.
//! - Security by default: [`auth`] (bearer tokens with roles admin, analyst, viewer;
//!   401 without a valid token, 403 without the permission), [`listen`] (no listening
//!   beyond loopback without TLS and auth), [`tls`] (the self-signed certificate),
//!   [`secret::write_secret`] (tokens and keys written 0600).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod baselines;
pub mod bench;
pub mod client;
pub mod convert;
pub mod core;
mod descriptors;
pub mod fleet;
pub mod fleet_flows;
pub mod grpc;
pub mod http;
pub mod incident;
pub mod listen;
pub mod live;
pub mod local;
pub mod network;
pub mod network_blocked;
pub mod nodes;
pub mod openapi;
pub mod secret;
pub mod server;
pub mod tls;
pub mod vulns;

pub use auth::{
    ensure_admin_token, AuthError, Permission, Principal, Role, TokenError, TokenStore,
};
pub use core::{ApiCore, ApiError, LocalHealth};
pub use listen::{check_listen, ListenError, ListenSecurity};
pub use live::{AlertFeed, LiveStore};
pub use local::{start_local, start_local_with, LocalApi, LocalApiConfig, LocalApiError};
pub use nodes::{DeployKind, NodeAnswer, NodeCallError, NodeGateway};
pub use secret::write_secret;
pub use server::{serve, RunningServer, ServerConfig, ServerError, MAX_BODY_BYTES};
pub use tls::{ensure_self_signed, TlsError, TlsFiles};
