//! Event-kind sets and the compiled-predicate type: what the compiler and the planner
//! share, kept here so neither depends on the other for them.

use rampart_event::EventKind;

use crate::fields::EvalCtx;

/// A compiled condition.
pub type Predicate = Box<dyn Fn(&EvalCtx<'_>) -> bool + Send + Sync>;

/// A set of event kinds, one bit per [`EventKind::ALL`] entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSet(pub u64);

impl KindSet {
    pub const ALL: KindSet = KindSet((1 << EventKind::ALL.len()) - 1);
    pub const NONE: KindSet = KindSet(0);
    pub fn bit(k: EventKind) -> u64 {
        1 << (k as u64)
    }
    pub fn contains(self, k: EventKind) -> bool {
        self.0 & Self::bit(k) != 0
    }
    pub fn kinds(self) -> impl Iterator<Item = EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

/// Kinds whose events always carry one fixed set of syscall names.
pub(crate) fn static_aliases(k: EventKind) -> Option<&'static [&'static str]> {
    use EventKind::*;
    Some(match k {
        Exec => &["execve", "execveat"],
        Fork => &["clone", "clone3", "fork", "vfork"],
        Exit => &["procexit"],
        FileOpen | ProcMemWrite => &["open", "openat", "openat2", "creat"],
        FileUnlink => &["unlink", "unlinkat"],
        FileRename => &["rename", "renameat", "renameat2"],
        FileChmod => &["chmod", "fchmod", "fchmodat"],
        FileChown => &["chown", "lchown", "fchown", "fchownat"],
        FileTruncate => &["truncate", "ftruncate"],
        FileOpenByHandle => &["open_by_handle_at"],
        ProcessRename => &["prctl"],
        Chroot => &["chroot"],
        NetConnect => &["connect"],
        NetAccept => &["accept", "accept4"],
        NetBind => &["bind"],
        NetListen => &["listen"],
        DnsQuery => &["sendto", "sendmsg"],
        Capset => &["capset"],
        Ptrace => &["ptrace"],
        Umount => &["umount", "umount2"],
        Bpf => &["bpf"],
        MemfdCreate => &["memfd_create"],
        Socket => &["socket"],
        IoUring => &["io_uring_enter"],
        Lost => &["drop"],
        Admission => &["admission"],
        // Mount: mount, or the new mount API's fsmount, open_tree, fspick, move_mount,
        // mount_setattr.
        FileLink | SetId | Namespace | ModuleLoad | FdDup | Mount | ProcessVm | ExecFailed => {
            return None
        }
    })
}

/// Kinds whose events all report the same `evt.type`.
pub(crate) fn evt_type_static_kinds() -> KindSet {
    let mut m = 0;
    for k in EventKind::ALL {
        if static_aliases(k).is_some() {
            m |= KindSet::bit(k);
        }
    }
    KindSet(m)
}
