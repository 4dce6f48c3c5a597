//! Rampart's Docker authorization plugin. This crate owns Docker's AuthZ plugin
//! protocol ([`protocol`]), the YAML [`policy`] that decides per API call (deny
//! `docker exec` into labelled containers, `--privileged`, host namespaces, bind
//! mounts of sensitive host paths; allow everything else), the decision itself
//! ([`decide`]), the server on the plugin socket ([`server`]) and dockerd's side of
//! the registration ([`daemon`]: daemon.json and SIGHUP).
//!
//! Hosting: `rampart up` (an `authz:` section in its configuration) and
//! `rampart authz` standalone both call [`server::start`].
//!
//! Fail open or closed: dockerd refuses every API call while a registered plugin is
//! down; the policy's `fail_mode` says whether rampart leaves it so (`closed`, the
//! default) or registers itself in daemon.json only while it runs (`open`); and
//! `rampart authz break-glass` takes it out by hand. See [`daemon`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod daemon;
pub mod decide;
mod error;
pub mod policy;
pub mod protocol;
pub mod server;

pub use error::AuthzError;
pub use policy::{FailMode, Policy};
pub use server::{start, ManagedPlugin, PluginHandle, PLUGIN_SOCKET_DIR};
