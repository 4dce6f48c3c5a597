//! The sensor's attachments: which program is attached where, the links that hold
//! them, and a switch that detaches and re-attaches them all without reloading (the
//! bench compares the same loaded sensor attached and detached in alternating
//! pieces, which reloading, seconds each, would not allow).

use std::sync::{Mutex, Weak};

use aya::programs::links::FdLink;
use aya::programs::trace_point::TracePointLink;
use aya::programs::{Program, ProgramError};
use aya::Ebpf;

/// Where one program is attached.
#[derive(Clone, Debug)]
pub(crate) enum AttachPoint {
    /// The BTF tracepoint the program was loaded against.
    BtfTracePoint,
    RawTracePoint(&'static str),
    /// The function the program was loaded against.
    FExit,
    /// A tracepoint of the `syscalls` category.
    SyscallTracePoint(String),
}

#[derive(Clone, Debug)]
struct Hook {
    program: String,
    at: AttachPoint,
}

/// A link: dropping it detaches the program.
enum HookLink {
    Fd(#[allow(dead_code)] FdLink),
    TracePoint(#[allow(dead_code)] TracePointLink),
}

/// Attaches a loaded program and takes its link (so that the link's lifetime, not the
/// program's, decides when it is detached).
fn attach(ebpf: &mut Ebpf, hook: &Hook) -> Result<HookLink, ProgramError> {
    let prog = ebpf
        .program_mut(&hook.program)
        .ok_or(ProgramError::NotLoaded)?;
    Ok(match (prog, &hook.at) {
        (Program::BtfTracePoint(p), AttachPoint::BtfTracePoint) => {
            let id = p.attach()?;
            HookLink::Fd(p.take_link(id)?.into())
        }
        (Program::RawTracePoint(p), AttachPoint::RawTracePoint(tp)) => {
            let id = p.attach(tp)?;
            HookLink::Fd(p.take_link(id)?.into())
        }
        (Program::FExit(p), AttachPoint::FExit) => {
            let id = p.attach()?;
            HookLink::Fd(p.take_link(id)?.into())
        }
        (Program::TracePoint(p), AttachPoint::SyscallTracePoint(event)) => {
            let id = p.attach("syscalls", event)?;
            HookLink::TracePoint(p.take_link(id)?)
        }
        _ => return Err(ProgramError::NotLoaded),
    })
}

/// What has been attached so far while loading.
#[derive(Default)]
pub(crate) struct Attached {
    hooks: Vec<Hook>,
    links: Vec<HookLink>,
}

impl Attached {
    pub(crate) fn attach(
        &mut self,
        ebpf: &mut Ebpf,
        program: &str,
        at: AttachPoint,
    ) -> Result<(), ProgramError> {
        let hook = Hook {
            program: program.to_string(),
            at,
        };
        let link = attach(ebpf, &hook)?;
        self.hooks.push(hook);
        self.links.push(link);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.hooks.len()
    }

    /// Detaches what was attached after the first `n` (a refused hook's partial work).
    pub(crate) fn truncate(&mut self, n: usize) {
        self.hooks.truncate(n);
        detach_in_parallel(self.links.split_off(n.min(self.links.len())));
    }
}

/// Drops the links on a few threads at once, so that their grace periods overlap
/// (one after the other, the syscall tracepoints' links took 4.2 s to detach here).
/// Where a thread cannot be started, its links are dropped on this one.
fn detach_in_parallel(links: Vec<HookLink>) {
    const THREADS: usize = 16;
    let mut groups: Vec<Vec<HookLink>> = (0..THREADS).map(|_| Vec::new()).collect();
    for (i, link) in links.into_iter().enumerate() {
        groups[i % THREADS].push(link);
    }
    std::thread::scope(|scope| {
        for group in groups.into_iter().filter(|g| !g.is_empty()) {
            let _ = std::thread::Builder::new()
                .name("rampart-detach".into())
                .spawn_scoped(scope, move || drop(group));
        }
    });
}

/// The loaded object with what is attached.
pub(crate) struct Attachments {
    // Declared before `ebpf`, though the links would hold their programs either way.
    links: Vec<HookLink>,
    hooks: Vec<Hook>,
    ebpf: Ebpf,
}

impl Attachments {
    pub(crate) fn new(ebpf: Ebpf, attached: Attached) -> Self {
        Self {
            links: attached.links,
            hooks: attached.hooks,
            ebpf,
        }
    }
}

impl Drop for Attachments {
    fn drop(&mut self) {
        detach_in_parallel(std::mem::take(&mut self.links));
    }
}

/// Detaches and re-attaches the loaded sensor's programs. While detached the sensor
/// sees nothing: this is for measuring, not for normal running. It does not keep the
/// sensor loaded: once the [`crate::Sensor`] is dropped, its programs are unloaded and
/// the switch does nothing.
#[derive(Clone)]
pub struct HookSwitch(pub(crate) Weak<Mutex<Attachments>>);

impl HookSwitch {
    /// Detaches every program. Idempotent.
    pub fn detach(&self) {
        let Some(attachments) = self.0.upgrade() else {
            return;
        };
        let links = match attachments.lock() {
            Ok(mut a) => std::mem::take(&mut a.links),
            Err(poisoned) => std::mem::take(&mut poisoned.into_inner().links),
        };
        detach_in_parallel(links);
    }

    /// Attaches every program again (after [`HookSwitch::detach`]; when attached,
    /// nothing changes). On an error, what this call attached is detached again, so
    /// the sensor is either whole or detached and a retry attaches everything.
    /// Err(NotLoaded) once the sensor is gone.
    pub fn attach(&self) -> Result<(), ProgramError> {
        let attachments = self.0.upgrade().ok_or(ProgramError::NotLoaded)?;
        let mut guard = match attachments.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !guard.links.is_empty() {
            return Ok(());
        }
        let a = &mut *guard;
        let mut links = Vec::with_capacity(a.hooks.len());
        for hook in &a.hooks {
            match attach(&mut a.ebpf, hook) {
                Ok(link) => links.push(link),
                Err(e) => {
                    detach_in_parallel(links);
                    return Err(e);
                }
            }
        }
        a.links = links;
        Ok(())
    }
}
