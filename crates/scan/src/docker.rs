//! Local Docker images and running containers, through the Docker API (`bollard`,
//! the crate the sensor already uses, so the binary carries no second client).

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use futures_util::StreamExt;

use crate::error::{Result, ScanError};

/// Run an async Docker call on a private current-thread runtime in its own thread, so
/// this works whether or not the caller is inside a tokio runtime.
fn block_on<T: Send>(future: impl std::future::Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| ScanError::Docker(format!("runtime: {e}")))?;
                runtime.block_on(future)
            })
            .join()
            .unwrap_or_else(|_| Err(ScanError::Docker("docker client thread panicked".into())))
    })
}

fn connect() -> Result<bollard::Docker> {
    bollard::Docker::connect_with_local_defaults()
        .map_err(|e| ScanError::Docker(format!("cannot connect to the Docker daemon: {e}")))
}

/// Export an image (`docker save`) into an anonymous temporary file of at most `limit`
/// bytes, positioned at its start.
///
/// Why a file and not a stream into the reader: the export is a tar whose
/// `manifest.json` (and, from Docker 25, `index.json`) come after the layers, so which
/// entries are layers, in what order and with which diff ids is only known at the end;
/// and layers are read on several threads at once. The file is unlinked from the start
/// (`O_TMPFILE` or create-then-unlink), so it disappears with its last descriptor on
/// every path out, errors, panics and kills included.
pub fn export_image(name: &str, limit: u64) -> Result<std::fs::File> {
    block_on(async {
        let docker = connect()?;
        docker
            .inspect_image(name)
            .await
            .map_err(|e| ScanError::Docker(format!("image {name:?}: {e}")))?;
        let mut file = tempfile::tempfile().map_err(|e| ScanError::io("temporary file", e))?;
        let mut written = 0u64;
        let mut stream = docker.export_image(name);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ScanError::Docker(format!("exporting {name:?}: {e}")))?;
            written += chunk.len() as u64;
            if written > limit {
                return Err(ScanError::LimitExceeded {
                    what: "image export size",
                    limit,
                    context: format!("docker:{name}"),
                    entry: "<whole archive>".into(),
                });
            }
            file.write_all(&chunk)
                .map_err(|e| ScanError::io("temporary file", e))?;
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ScanError::io("temporary file", e))?;
        Ok(file)
    })
}

/// A running container's root filesystem as seen through its init process
/// (`/proc/PID/root`), which needs the host PID namespace and root.
pub fn container_root(id: &str) -> Result<PathBuf> {
    let pid = block_on(async {
        let docker = connect()?;
        let info = docker
            .inspect_container(
                id,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
            .map_err(|e| ScanError::Docker(format!("container {id:?}: {e}")))?;
        let state = info.state.unwrap_or_default();
        match (state.running, state.pid) {
            (Some(true), Some(pid)) if pid > 0 => Ok(pid),
            _ => Err(ScanError::Docker(format!(
                "container {id:?} is not running"
            ))),
        }
    })?;
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    std::fs::read_dir(&root).map_err(|e| {
        ScanError::Docker(format!(
            "cannot read {} for container {id:?} (needs root in the host PID namespace): {e}",
            root.display()
        ))
    })?;
    Ok(root)
}
