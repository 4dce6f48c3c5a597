//! The backends actions share, opened on first use: the Docker API and the response
//! BPF object (whose state is pinned, so opening it again after a restart finds what
//! was in place).

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use rampart_bpf::response::ResponseGuard;

use crate::docker::DockerApi;
use crate::RespondError;

#[derive(Default)]
pub struct Toolbox {
    docker: OnceLock<Result<DockerApi, String>>,
    guard: Mutex<Option<ResponseGuard>>,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Toolbox")
    }
}

/// Where rampart notes the containers it froze (one empty file per container id):
/// on tmpfs, like the freeze itself it does not outlive a reboot.
pub const FROZEN_DIR: &str = "/run/rampart/frozen";

impl Toolbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Notes (or forgets) that rampart froze this container. Best effort: a failure
    /// only means `release --all` will not know of it, so it is logged, not raised.
    pub fn note_frozen(&self, container_id: &str, frozen: bool) {
        if container_id.is_empty() || container_id.contains('/') {
            return;
        }
        let dir = std::path::Path::new(FROZEN_DIR);
        let file = dir.join(container_id);
        let r = if frozen {
            std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&file, b""))
        } else {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r,
            }
        };
        if let Err(e) = r {
            tracing::warn!(
                "noting the freeze of {container_id} in {}: {e}",
                file.display()
            );
        }
    }

    /// The containers rampart froze and has not thawed.
    pub fn frozen(&self) -> Vec<String> {
        std::fs::read_dir(FROZEN_DIR)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The Docker API (connected once; a failure is remembered and reported).
    pub fn docker(&self) -> Result<&DockerApi, RespondError> {
        self.docker
            .get_or_init(|| DockerApi::connect().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| RespondError::Docker(e.clone()))
    }

    /// The response BPF object, loaded on first use.
    pub fn guard(&self) -> Result<GuardLock<'_>, RespondError> {
        let mut lock = self
            .guard
            .lock()
            .map_err(|_| RespondError::Refused("response guard poisoned".into()))?;
        if lock.is_none() {
            *lock = Some(ResponseGuard::open()?);
        }
        Ok(GuardLock(lock))
    }
}

/// The loaded guard, held locked.
pub struct GuardLock<'a>(MutexGuard<'a, Option<ResponseGuard>>);

impl std::ops::Deref for GuardLock<'_> {
    type Target = ResponseGuard;
    fn deref(&self) -> &ResponseGuard {
        // Set by Toolbox::guard before the lock is handed out.
        match self.0.as_ref() {
            Some(g) => g,
            None => unreachable!("guard loaded before GuardLock is built"),
        }
    }
}

impl std::ops::DerefMut for GuardLock<'_> {
    fn deref_mut(&mut self) -> &mut ResponseGuard {
        match self.0.as_mut() {
            Some(g) => g,
            None => unreachable!("guard loaded before GuardLock is built"),
        }
    }
}
