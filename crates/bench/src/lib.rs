//! Rampart's benchmarks: the sensor measured against a baseline taken in the same run.
//!
//! - [`overhead`]: exec, open, loopback-connect and unwatched-syscall storms without
//!   the sensor and with it in several configurations ("arms"), in alternating rounds;
//!   the time in the sensor's kernel programs per operation; then each sensor arm
//!   against itself detached, in alternating pairs of pieces (the steadiest figure on a
//!   shared machine).
//! - [`throughput`]: events/s from the kernel to JSON on one consumer thread, with
//!   drops; plus the user-space ceiling (decode + enrich + JSON of replayed records).
//! - [`memory`]: sensor RSS before and after starting and stopping N containers.
//! - [`latency`]: kernel event to alert written, with a rule library plus one marker
//!   rule loaded; the baseline is kernel event to event received, same run; then
//!   events after quiet spells, which must wake the sleeping reader.
//! - [`recorder`]: the flight recorder's append rate, bytes per event and query
//!   times over a replayed history (100M events by default), with SQLite in the same
//!   run.
//!
//! - [`baseline`]: behaviour baselines learning a replayed hour of 50 workloads at 200
//!   process starts/s (ns per event, memory growth), then scoring (ns per event)
//!   against the bare replay loop.
//!
//! Every run returns a plain, serializable report; printing is the caller's job (the
//! `rampart bench` command). Progress goes to `tracing`. Storms and load generators
//! run in child processes the caller names ([`Child`]): the sensor ignores its own
//! process, so an in-process storm would measure only its early-exit path.

pub mod baseline;
mod consumer;
pub mod latency;
pub mod memory;
pub mod netflow;
pub mod overhead;
pub mod per_event;
pub mod recorder;
pub mod response;
pub mod stats;
pub mod storms;
pub mod throughput;

use std::collections::HashSet;
use std::time::Duration;

use rampart_bpf::SyscallHook;
use rampart_event::EventKind;
use rampart_sensor::{RunningSensor, SensorConfig};

pub use baseline::{baseline, BaselineBenchOptions, BaselineBenchReport};
pub use latency::{latency, LatencyOptions, LatencyReport};
pub use memory::{memory, MemoryOptions, MemoryReport};
pub use overhead::{overhead, ArmResult, OverheadOptions, OverheadReport, StormReport};
pub use per_event::{per_event, PerEventOptions, PerEventReport};
pub use recorder::{recorder, RecorderOptions, RecorderReport};
pub use response::{response, ResponseOptions, ResponseReport};
pub use stats::Percentiles;
pub use storms::{Child, StormKind};
pub use throughput::{throughput, ThroughputOptions, ThroughputReport};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("unknown arm {arm} (choose from {choices})")]
    UnknownArm { arm: String, choices: String },
    #[error("unknown storm {0} (exec, open, connect, connect-fin, syscall, udp, mixed)")]
    UnknownStorm(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sensor(#[from] rampart_sensor::SensorError),
    #[error(transparent)]
    Bpf(#[from] rampart_bpf::BpfError),
    /// Re-attaching a detached sensor's programs (aya's error, as text: aya stays
    /// behind rampart-bpf).
    #[error("attaching the sensor's programs: {0}")]
    Attach(String),
    #[error("loading rules: {0}")]
    Rules(#[from] rampart_detect::EngineError),
    #[error("writing alerts: {0}")]
    Json(#[from] serde_json::Error),
}

impl BenchError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// The file the open storms and the throughput generators open, written first.
fn bench_file() -> Result<std::path::PathBuf, BenchError> {
    let file = std::env::temp_dir().join("rampart-bench-open");
    std::fs::write(&file, b"x").map_err(BenchError::io(format!("writing {}", file.display())))?;
    Ok(file)
}

use rampart_event::wall_ns;

/// Starts a sensor for a bench run, Docker off. `open_repeat_window` is zero where
/// every open must make an event: the throughput and latency runs open one file over
/// and over.
fn sensor(
    kinds: Option<HashSet<EventKind>>,
    object: Option<&[u8]>,
    open_repeat_window: Duration,
    syscall_hook: SyscallHook,
    compat_syscalls: bool,
) -> Result<RunningSensor, BenchError> {
    Ok(rampart_sensor::start(SensorConfig {
        kinds,
        docker: false,
        queue_capacity: 1 << 20,
        bpf_object: object.map(<[u8]>::to_vec),
        open_repeat_window,
        syscall_hook,
        compat_syscalls,
        ..Default::default()
    })?)
}
