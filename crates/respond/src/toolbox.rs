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

impl Toolbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
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
