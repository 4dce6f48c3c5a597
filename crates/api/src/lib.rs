//! Rampart's API, secure by default. This first part holds what every adapter (gRPC,
//! HTTP/JSON, SSE) checks the same way:
//!
//! - [`auth`]: bearer tokens with roles (admin, analyst, viewer); only SHA-256 digests
//!   of tokens are kept; a missing or unknown token is 401, a known one without the
//!   permission 403.
//! - [`listen`]: the server refuses to listen beyond loopback without TLS and auth.
//! - [`tls`]: the self-signed certificate `rampart up` serves https://127.0.0.1:8443
//!   with (rcgen, ring), and [`secret::write_secret`], which writes tokens and keys
//!   with mode 0600.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod listen;
pub mod secret;
pub mod tls;

pub use auth::{
    ensure_admin_token, AuthError, Permission, Principal, Role, TokenError, TokenStore,
};
pub use listen::{check_listen, ListenError, ListenSecurity};
pub use secret::write_secret;
pub use tls::{ensure_self_signed, TlsError, TlsFiles};
