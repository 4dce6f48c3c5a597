//! The Docker API calls response needs (stop, restart, pause, unpause, inspect),
//! blocking: actions run on a stage's own thread, not in an async runtime.

use std::collections::BTreeMap;
use std::future::Future;

use bollard::query_parameters::{RestartContainerOptions, StopContainerOptions};
use bollard::Docker;

use crate::{RespondError, Target};

/// A Docker client with its own small runtime.
pub struct DockerApi {
    docker: Docker,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for DockerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DockerApi")
    }
}

fn err(e: impl std::fmt::Display) -> RespondError {
    RespondError::Docker(e.to_string())
}

/// What inspect says about a container, for targets and checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub pid: Option<u32>,
    pub running: bool,
    pub paused: bool,
}

impl DockerApi {
    /// Connects to the local engine (`DOCKER_HOST` or the default socket).
    pub fn connect() -> Result<Self, RespondError> {
        let docker = Docker::connect_with_local_defaults().map_err(err)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RespondError::io("tokio runtime"))?;
        Ok(Self { docker, rt })
    }

    /// Runs a call to completion; on a thread of its own when the caller is itself
    /// inside a runtime (block_on would panic there).
    fn block<T: Send>(&self, fut: impl Future<Output = T> + Send) -> T {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                let h = s.spawn(|| self.rt.block_on(fut));
                match h.join() {
                    Ok(v) => v,
                    Err(p) => std::panic::resume_unwind(p),
                }
            })
        } else {
            self.rt.block_on(fut)
        }
    }

    pub fn inspect(&self, id_or_name: &str) -> Result<ContainerState, RespondError> {
        let r = self
            .block(self.docker.inspect_container(
                id_or_name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            ))
            .map_err(err)?;
        let state = r.state.unwrap_or_default();
        let config = r.config.unwrap_or_default();
        Ok(ContainerState {
            id: r.id.unwrap_or_default(),
            name: r
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.unwrap_or_default(),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            pid: state
                .pid
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0),
            running: state.running.unwrap_or(false),
            paused: state.paused.unwrap_or(false),
        })
    }

    /// A target for a container named by id or name (no process).
    pub fn target(&self, id_or_name: &str) -> Result<Target, RespondError> {
        let s = self.inspect(id_or_name)?;
        Ok(Target {
            container_id: s.id,
            container_name: s.name,
            image: s.image,
            labels: s.labels,
            process: None,
        })
    }

    /// Stops: SIGTERM, then SIGKILL after `grace_s` seconds.
    pub fn stop(&self, id: &str, grace_s: i32) -> Result<(), RespondError> {
        let opts = StopContainerOptions {
            t: Some(grace_s),
            signal: None,
        };
        self.block(self.docker.stop_container(id, Some(opts)))
            .map_err(err)
    }

    pub fn restart(&self, id: &str, grace_s: i32) -> Result<(), RespondError> {
        let opts = RestartContainerOptions {
            t: Some(grace_s),
            signal: None,
        };
        self.block(self.docker.restart_container(id, Some(opts)))
            .map_err(err)
    }

    pub fn pause(&self, id: &str) -> Result<(), RespondError> {
        self.block(self.docker.pause_container(id)).map_err(err)
    }

    pub fn unpause(&self, id: &str) -> Result<(), RespondError> {
        self.block(self.docker.unpause_container(id)).map_err(err)
    }
}
