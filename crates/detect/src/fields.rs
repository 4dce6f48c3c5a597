//! Falco's syscall fields, mapped onto Rampart's [`Event`].
//!
//! A field name resolves once, at load time, to a typed getter; evaluation then calls
//! the getter with an [`EvalCtx`] that caches the few values that cost a string build
//! (command lines, normalised paths) so several rules reading them pay once per event.
//!
//! Three kinds of Falco field exist here:
//! - provided: derived from the event;
//! - not provided ([`Availability::NotProvided`]): a real Falco field whose data our
//!   event model does not carry yet. It loads (so Falco's files load unmodified), has
//!   no value (comparisons are false, outputs print `<NA>`) and the load reports a
//!   warning naming it;
//! - unsupported: refused at load time with the reason (e.g. `proc.aenv`).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rampart_event::{Ancestor, Container, Event, L4Proto, Payload, Process, SockAddr, Workload};

use crate::ast::FieldRef;
use crate::users::{user_name, NoUsers, UserDirectory, UserEntry};

/// Per-event evaluation state: the event, where user names come from, and lazily
/// built derived strings.
pub struct EvalCtx<'e> {
    pub ev: &'e Event,
    users: &'e dyn UserDirectory,
    /// The passwd entry of the process's effective uid (looked up once per event).
    user: OnceCell<Option<Arc<UserEntry>>>,
    cmdline: OnceCell<String>,
    pcmdline: OnceCell<String>,
    fd_name: OnceCell<Option<Cow<'e, str>>>,
    cwd: OnceCell<String>,
    /// The process's environment, read from /proc once per event (`proc.env`).
    environ: OnceCell<Option<Vec<String>>>,
    /// Whether fields may read the live system (`/proc/<pid>/environ`, and the files
    /// `proc.is_exe_in_venv` and `fd.has_fresh_copy` look at): not for recorded history.
    live: bool,
}

impl<'e> EvalCtx<'e> {
    /// A context without a user directory: uid 0 is `root`, other uids have no name.
    pub fn new(ev: &'e Event) -> Self {
        Self::with_users(ev, &NoUsers)
    }

    /// A context whose `user.*` names come from `users`.
    pub fn with_users(ev: &'e Event, users: &'e dyn UserDirectory) -> Self {
        Self {
            ev,
            users,
            user: OnceCell::new(),
            cmdline: OnceCell::new(),
            pcmdline: OnceCell::new(),
            fd_name: OnceCell::new(),
            cwd: OnceCell::new(),
            environ: OnceCell::new(),
            live: true,
        }
    }

    /// A context for a recorded event (a retro-hunt over history): as
    /// [`EvalCtx::with_users`], except that nothing is read from the live system:
    /// `proc.env` beyond what the sensor kept on the process is absent rather than
    /// read from `/proc/<pid>/environ`, and the filesystem probes
    /// (`proc.is_exe_in_venv`, `fd.has_fresh_copy`) are unknown. The recorded
    /// process has exited (what its pid names now is another process, or nothing,
    /// and the files beside its paths are today's); the live path gives the same
    /// answers for a process that exited.
    pub fn recorded(ev: &'e Event, users: &'e dyn UserDirectory) -> Self {
        Self {
            live: false,
            ..Self::with_users(ev, users)
        }
    }

    /// The process's environment (see [`crate::environ`]), read once per event.
    fn environ(&self) -> Option<&[String]> {
        self.environ
            .get_or_init(|| {
                let p = self.process().filter(|_| self.live)?;
                crate::environ::read_environ(std::path::Path::new("/proc"), p.pid, &p.comm)
            })
            .as_deref()
    }

    /// The passwd entry of the process's effective uid, from the user directory.
    fn user(&self) -> Option<&UserEntry> {
        let p = self.process()?;
        self.user
            .get_or_init(|| self.users.user(self.ev, p.euid))
            .as_deref()
    }

    /// The name of `uid` (the login uid, which may differ from the effective one).
    fn name_of(&self, uid: u32) -> Option<Cow<'_, str>> {
        if self.process().is_some_and(|p| p.euid == uid) {
            return user_name(self.user(), uid).map(Cow::Borrowed);
        }
        let entry = self.users.user(self.ev, uid);
        user_name(entry.as_deref(), uid).map(|n| Cow::Owned(n.to_string()))
    }

    fn process(&self) -> Option<&'e Process> {
        self.ev.process.as_deref()
    }

    fn container(&self) -> Option<&'e Container> {
        self.ev.container.container()
    }

    /// `proc.cmdline` (built once per event).
    pub fn cmdline(&self) -> Option<&str> {
        let p = self.process()?;
        Some(
            self.cmdline
                .get_or_init(|| cmdline_of(ProcView::Own(p)))
                .as_str(),
        )
    }

    /// `proc.args`: the arguments joined by spaces, which is `proc.cmdline` after the
    /// name and a space (borrowed from it, not built again).
    fn args_of(&self, p: &Process) -> &str {
        if p.argv.len() <= 1 {
            return "";
        }
        let cmdline = self.cmdline().unwrap_or("");
        cmdline.get(p.comm.len() + 1..).unwrap_or("")
    }

    /// `fd.nameraw`: the path as the process passed it, else `fd.name`.
    pub fn fd_nameraw(&self) -> Option<&str> {
        if let Payload::FileOpen {
            path_raw: Some(raw),
            ..
        } = &self.ev.payload
        {
            return Some(raw);
        }
        file_path(&self.ev.payload).or_else(|| self.fd_name())
    }

    /// The normalised absolute path of the file the event is about, if any.
    pub fn fd_name(&self) -> Option<&str> {
        self.fd_name
            .get_or_init(|| {
                if let Some(raw) = file_path(&self.ev.payload) {
                    // Most paths are already absolute and clean: no copy.
                    if is_clean_absolute(raw) {
                        return Some(Cow::Borrowed(raw));
                    }
                    let cwd = self.process().map(|p| p.cwd.as_str()).unwrap_or("/");
                    return Some(Cow::Owned(normalize_path(raw, cwd)));
                }
                socket_fd_name(&self.ev.payload).map(Cow::Owned)
            })
            .as_deref()
    }
}

/// Absolute, without empty, `.` or `..` components and without a trailing `/` (one
/// pass over the bytes: this runs for every file event).
fn is_clean_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    if b.len() == 1 {
        return true;
    }
    // Each component (the bytes after a `/`) must be non-empty and not `.`/`..`.
    let mut start = 1;
    loop {
        let end = match b[start..].iter().position(|&c| c == b'/') {
            Some(i) => start + i,
            None => b.len(),
        };
        match &b[start..end] {
            b"" | b"." | b".." => return false,
            _ => {}
        }
        if end == b.len() {
            return true;
        }
        start = end + 1;
    }
}

/// Value type of a field, deciding which operators and literals are legal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Str,
    Int,
    Bool,
    /// IP address (`fd.sip`) or network (`fd.snet`); literals are addresses or CIDRs.
    Ip,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Str => "string",
            FieldType::Int => "number",
            FieldType::Bool => "boolean",
            FieldType::Ip => "IP address",
        }
    }
}

pub type StrFn = Arc<dyn for<'c, 'e> Fn(&'c EvalCtx<'e>) -> Option<Cow<'c, str>> + Send + Sync>;
/// Calls the visitor with each value until it returns true; returns whether one did.
pub type StrAnyFn = Arc<dyn Fn(&EvalCtx<'_>, &mut dyn FnMut(&str) -> bool) -> bool + Send + Sync>;
pub type IntFn = Arc<dyn Fn(&EvalCtx<'_>) -> Option<i64> + Send + Sync>;
pub type BoolFn = Arc<dyn Fn(&EvalCtx<'_>) -> Option<bool> + Send + Sync>;
/// Up to two addresses (`fd.ip` matches either end of a connection).
pub type IpFn = Arc<dyn Fn(&EvalCtx<'_>) -> [Option<IpAddr>; 2] + Send + Sync>;

/// A resolved field.
#[derive(Clone)]
pub enum Getter {
    Str(StrFn),
    /// A field with several values (`proc.aname` without index: any ancestor).
    StrAny(StrAnyFn),
    Int(IntFn),
    Bool(BoolFn),
    Ip(IpFn),
    /// `evt.type`: compiled specially (kind test), rendered through this getter.
    EvtType(StrFn),
}

impl Getter {
    pub fn field_type(&self) -> FieldType {
        match self {
            Getter::Str(_) | Getter::StrAny(_) | Getter::EvtType(_) => FieldType::Str,
            Getter::Int(_) => FieldType::Int,
            Getter::Bool(_) => FieldType::Bool,
            Getter::Ip(_) => FieldType::Ip,
        }
    }

    /// Renders the value for outputs; `None` when the event has none.
    pub fn render(&self, ctx: &EvalCtx<'_>) -> Option<serde_json::Value> {
        match self {
            Getter::Str(f) | Getter::EvtType(f) => {
                f(ctx).map(|s| serde_json::Value::String(s.into_owned()))
            }
            Getter::StrAny(f) => {
                let mut first = None;
                f(ctx, &mut |s| {
                    first = Some(s.to_string());
                    true
                });
                first.map(serde_json::Value::String)
            }
            Getter::Int(f) => f(ctx).map(serde_json::Value::from),
            Getter::Bool(f) => f(ctx).map(serde_json::Value::Bool),
            Getter::Ip(f) => f(ctx)[0].map(|ip| serde_json::Value::String(ip.to_string())),
        }
    }
}

/// Whether a known field has data in Rampart's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Provided,
    /// Known Falco field without data yet; the reason says what the event lacks.
    NotProvided(&'static str),
    /// Provided, but derived approximately (the reason says how).
    Approximate(&'static str),
    /// A field of Rampart's own (no Falco field of that name) whose definition is a
    /// look at the live system when the event is evaluated (the reason says what it
    /// looks at): nothing is approximated, so loading it warns of nothing; the reason
    /// stays in the rule's field notes.
    Probe(&'static str),
}

pub struct ResolvedField {
    pub getter: Getter,
    pub availability: Availability,
}

/// Why a field could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("unknown field `{0}`")]
    Unknown(String),
    #[error("field `{0}` is not supported: {1}")]
    Unsupported(String, &'static str),
    #[error("field `{field}` {problem}")]
    BadArgument { field: String, problem: String },
}

fn s<F>(f: F) -> Getter
where
    F: for<'c, 'e> Fn(&'c EvalCtx<'e>) -> Option<Cow<'c, str>> + Send + Sync + 'static,
{
    Getter::Str(Arc::new(f))
}
fn int<F>(f: F) -> Getter
where
    F: Fn(&EvalCtx<'_>) -> Option<i64> + Send + Sync + 'static,
{
    Getter::Int(Arc::new(f))
}
fn boolean<F>(f: F) -> Getter
where
    F: Fn(&EvalCtx<'_>) -> Option<bool> + Send + Sync + 'static,
{
    Getter::Bool(Arc::new(f))
}
fn ip<F>(f: F) -> Getter
where
    F: Fn(&EvalCtx<'_>) -> [Option<IpAddr>; 2] + Send + Sync + 'static,
{
    Getter::Ip(Arc::new(f))
}

fn provided(getter: Getter) -> ResolvedField {
    ResolvedField {
        getter,
        availability: Availability::Provided,
    }
}

fn not_provided(ty: FieldType, why: &'static str) -> ResolvedField {
    let getter = match ty {
        FieldType::Str => s(|_| None),
        FieldType::Int => int(|_| None),
        FieldType::Bool => boolean(|_| None),
        FieldType::Ip => ip(|_| [None, None]),
    };
    ResolvedField {
        getter,
        availability: Availability::NotProvided(why),
    }
}

fn b(v: &str) -> Option<Cow<'_, str>> {
    Some(Cow::Borrowed(v))
}

/// A process or one of its ancestors, seen the same way.
#[derive(Clone, Copy)]
enum ProcView<'e> {
    Own(&'e Process),
    Ancestor(&'e Ancestor),
}

impl<'e> ProcView<'e> {
    fn comm(self) -> &'e str {
        match self {
            ProcView::Own(p) => &p.comm,
            ProcView::Ancestor(a) => &a.comm,
        }
    }
    fn exe(self) -> &'e str {
        match self {
            ProcView::Own(p) => &p.exe,
            ProcView::Ancestor(a) => &a.exe,
        }
    }
    fn argv(self) -> &'e [String] {
        match self {
            ProcView::Own(p) => &p.argv,
            ProcView::Ancestor(a) => &a.argv,
        }
    }
    fn exe_upper_layer(self) -> bool {
        match self {
            ProcView::Own(p) => p.exe_upper_layer,
            ProcView::Ancestor(a) => a.exe_upper_layer,
        }
    }
    fn pid(self) -> u32 {
        match self {
            ProcView::Own(p) => p.pid,
            ProcView::Ancestor(a) => a.pid,
        }
    }
    /// Falco's `proc.exe`: argv[0] as invoked, falling back to the path.
    fn argv0(self) -> &'e str {
        self.argv()
            .first()
            .map(String::as_str)
            .unwrap_or_else(|| self.exe())
    }
}

fn ancestor<'e>(ctx: &EvalCtx<'e>, n: usize) -> Option<ProcView<'e>> {
    let p = ctx.process()?;
    if n == 0 {
        Some(ProcView::Own(p))
    } else {
        p.ancestry.get(n - 1).map(|a| ProcView::Ancestor(a))
    }
}

fn cmdline_of(v: ProcView<'_>) -> String {
    let mut out = v.comm().to_string();
    for a in v.argv().iter().skip(1) {
        out.push(' ');
        out.push_str(a);
    }
    out
}

fn parse_index(f: &FieldRef) -> Result<Option<usize>, FieldError> {
    match &f.arg {
        None => Ok(None),
        Some(a) => a
            .parse::<usize>()
            .map(Some)
            .map_err(|_| FieldError::BadArgument {
                field: f.name.clone(),
                problem: format!("needs a numeric index, got `[{a}]`"),
            }),
    }
}

fn no_arg(f: &FieldRef) -> Result<(), FieldError> {
    match &f.arg {
        None => Ok(()),
        Some(a) => Err(FieldError::BadArgument {
            field: f.name.clone(),
            problem: format!("takes no argument, got `[{a}]`"),
        }),
    }
}

/// Resolves a field reference (with its argument) to a typed getter.
pub fn resolve(f: &FieldRef) -> Result<ResolvedField, FieldError> {
    let name = f.name.as_str();
    // Families with a free-form argument after a dot.
    if let Some(arg) = name.strip_prefix("evt.arg.") {
        no_arg(f)?;
        let key = arg_key(arg);
        return Ok(provided(s(move |ctx| event_arg(ctx, key))));
    }
    if let Some(arg) = name.strip_prefix("evt.rawarg.") {
        no_arg(f)?;
        let key = arg_key(arg);
        return Ok(provided(int(move |ctx| event_rawarg(ctx.ev, key))));
    }
    if name == "evt.arg" || name == "evt.rawarg" {
        let Some(a) = &f.arg else {
            return Err(FieldError::BadArgument {
                field: name.into(),
                problem: "needs an argument: `evt.arg.NAME` or `evt.arg[N]`".into(),
            });
        };
        // A numeric argument is resolved per event kind by position.
        let key = arg_key(a);
        if name == "evt.rawarg" {
            return Ok(provided(int(move |ctx| event_rawarg(ctx.ev, key))));
        }
        return Ok(provided(s(move |ctx| event_arg(ctx, key))));
    }
    if name == "proc.env" {
        // A hook variable (rampart_event::HOOK_ENVIRONMENT) comes with the process:
        // the sensor read it at exec. Any other name, and the whole environment, are
        // read from /proc when evaluated (see environ.rs): only approximately what the
        // exec saw, and nothing once the process exited.
        let key = f.arg.clone();
        let captured = key
            .as_deref()
            .is_some_and(|k| rampart_event::HOOK_ENVIRONMENT.contains(&k));
        let getter = s(move |ctx| match &key {
            Some(k) => {
                if captured {
                    if let Some(env) = ctx.process().and_then(|p| p.env.as_deref()) {
                        return crate::environ::lookup(env, k).map(Cow::Borrowed);
                    }
                }
                crate::environ::lookup(ctx.environ()?, k).map(Cow::Borrowed)
            }
            None => Some(Cow::Owned(ctx.environ()?.join(" "))),
        });
        return Ok(ResolvedField {
            getter,
            availability: if captured {
                Availability::Provided
            } else {
                Availability::Approximate(
                    "read from /proc/<pid>/environ when the event is evaluated (the sensor reads only the hook variables at exec); empty once the process exited",
                )
            },
        });
    }
    if name == "container.label" || name == "k8s.pod.label" {
        let Some(key) = f.arg.clone() else {
            return Err(FieldError::BadArgument {
                field: name.into(),
                problem: "needs a label name: `container.label[NAME]`".into(),
            });
        };
        let k8s = name == "k8s.pod.label";
        return Ok(provided(s(move |ctx| {
            let c = ctx.container()?;
            if k8s {
                // The pod's own labels first (containerd gives them through the
                // sandbox), else the container's CRI labels.
                let k = c.k8s.as_ref()?;
                if let Some(v) = k.labels.get(&key) {
                    return Some(Cow::Borrowed(v.as_str()));
                }
            }
            c.labels.get(&key).map(|v| Cow::Borrowed(v.as_str()))
        })));
    }

    // The executable of an ancestor was written in its container (the dropped binary
    // whose children are the system's own programs): `[N]` as proc.aname's (0 is the
    // process itself, 1 its parent); without an index, any ancestor, not the process.
    if name == "proc.is_aexe_upper_layer" {
        return Ok(provided(match parse_index(f)? {
            Some(n) => boolean(move |ctx| ancestor(ctx, n).map(|v| v.exe_upper_layer())),
            None => boolean(|ctx| {
                ctx.process()
                    .map(|p| p.ancestry.iter().any(|a| a.exe_upper_layer))
            }),
        }));
    }

    // Indexed ancestry fields.
    match name {
        "proc.aname" | "proc.aexe" | "proc.aexepath" | "proc.apid" | "proc.acmdline" => {
            let idx = parse_index(f)?;
            return Ok(provided(ancestry_field(name, idx)));
        }
        _ => {}
    }
    if name == "fd.types" {
        // Falco lists the types of all fds; we know the one the event is about.
        let _ = parse_index(f)?;
        return Ok(provided(s(|ctx| fd_type(ctx).map(Cow::Borrowed))));
    }

    if name.starts_with("container.mount") {
        // Under `not` (as Falco's rules use it) a missing value would fire on every
        // container, so refuse rather than guess.
        return Err(FieldError::Unsupported(
            name.into(),
            "needs the container's mounts: add `mounts: Vec<Mount{source,dest,mode,propagation}>` to Container",
        ));
    }
    no_arg(f)?;
    use FieldType as T;
    let r = match name {
        // --- event ---
        "evt.type" | "syscall.type" => ResolvedField {
            getter: Getter::EvtType(Arc::new(|ctx| b(primary_syscall(ctx.ev)))),
            availability: Availability::Provided,
        },
        "evt.dir" => provided(s(|_| b("<"))),
        "evt.num" => provided(int(|ctx| Some(ctx.ev.seq as i64))),
        "evt.rawtime" | "evt.rawtime.s" | "evt.rawtime.ns" => {
            let div = match name {
                "evt.rawtime.s" => 1_000_000_000,
                _ => 1,
            };
            provided(int(move |ctx| Some((ctx.ev.ts_ns / div) as i64)))
        }
        "evt.time" => provided(s(|ctx| Some(Cow::Owned(format_time(ctx.ev.ts_ns, false))))),
        "evt.time.iso8601" | "evt.datetime" => {
            provided(s(|ctx| Some(Cow::Owned(format_time(ctx.ev.ts_ns, true)))))
        }
        "evt.time.s" => provided(s(|ctx| Some(Cow::Owned((ctx.ev.ts_ns / 1_000_000_000).to_string())))),
        "evt.hostname" => provided(s(|ctx| b(&ctx.ev.host))),
        "evt.source" => provided(s(|_| b("syscall"))),
        "evt.res" => provided(s(|ctx| {
            let r = event_ret(&ctx.ev.payload)?;
            if r >= 0 {
                b("SUCCESS")
            } else {
                Some(Cow::Owned(errno_name(-r)))
            }
        })),
        "evt.rawres" => provided(int(|ctx| event_ret(&ctx.ev.payload))),
        "evt.failed" => provided(boolean(|ctx| event_ret(&ctx.ev.payload).map(|r| r < 0))),
        // Rampart extension: the syscall came through the 32-bit (ia32) entry.
        "evt.is_compat" => provided(boolean(|ctx| Some(ctx.ev.compat_syscall))),
        "evt.is_open_read" | "evt.is_open_write" | "evt.is_open_create" => {
            let which = match name {
                "evt.is_open_read" => 0,
                "evt.is_open_write" => 1,
                _ => 2,
            };
            provided(boolean(move |ctx| match &ctx.ev.payload {
                Payload::FileOpen { access, .. } => Some(match which {
                    0 => access.read,
                    1 => access.write,
                    _ => access.create,
                }),
                Payload::ProcMemWrite { .. } => Some(which == 1),
                _ => Some(false),
            }))
        }
        "evt.is_open_exec" => ResolvedField {
            getter: boolean(|ctx| matches!(&ctx.ev.payload, Payload::FileOpen { .. }).then_some(false)),
            availability: Availability::Approximate(
                "open events do not carry the kernel's exec-open mode; always false",
            ),
        },
        "evt.args" => provided(s(|ctx| Some(Cow::Owned(event_args_text(ctx))))),
        "evt.category" => provided(s(|ctx| b(event_category(&ctx.ev.payload)))),
        "evt.buffer" | "evt.rawarg.data" => not_provided(T::Str, "the sensor does not capture I/O buffers"),
        "evt.count" => provided(int(|_| Some(1))),

        // --- process ---
        "proc.name" => provided(s(|ctx| ctx.process().map(|p| Cow::Borrowed(p.comm.as_str())))),
        "proc.exe" => provided(s(|ctx| ancestor(ctx, 0).map(|v| Cow::Borrowed(v.argv0())))),
        "proc.exepath" => provided(s(|ctx| ctx.process().map(|p| Cow::Borrowed(p.exe.as_str())))),
        "proc.cmdline" => provided(s(|ctx| ctx.cmdline().map(Cow::Borrowed))),
        "proc.args" => provided(s(|ctx| {
            let p = ctx.process()?;
            Some(Cow::Borrowed(ctx.args_of(p)))
        })),
        "proc.pid" => provided(int(|ctx| ctx.process().map(|p| p.pid as i64))),
        "proc.ppid" => provided(int(|ctx| ctx.process().map(|p| p.ppid as i64))),
        "thread.tid" => provided(int(|ctx| ctx.process().map(|p| p.tid as i64))),
        "proc.tty" => provided(int(|ctx| ctx.process().map(|p| p.tty as i64))),
        "proc.cwd" => provided(s(|ctx| {
            let p = ctx.process()?;
            Some(Cow::Borrowed(
                ctx.cwd
                    .get_or_init(|| {
                        // Falco's proc.cwd ends with a slash.
                        if p.cwd.ends_with('/') {
                            p.cwd.clone()
                        } else {
                            format!("{}/", p.cwd)
                        }
                    })
                    .as_str(),
            ))
        })),
        "proc.pname" => provided(s(|ctx| ancestor(ctx, 1).map(|v| Cow::Borrowed(v.comm())))),
        "proc.pexe" => provided(s(|ctx| ancestor(ctx, 1).map(|v| Cow::Borrowed(v.argv0())))),
        "proc.pexepath" => provided(s(|ctx| ancestor(ctx, 1).map(|v| Cow::Borrowed(v.exe())))),
        "proc.pcmdline" => provided(s(|ctx| {
            let a = ancestor(ctx, 1)?;
            Some(Cow::Borrowed(ctx.pcmdline.get_or_init(|| cmdline_of(a)).as_str()))
        })),
        "proc.duration" => provided(int(|ctx| {
            let p = ctx.process()?;
            (p.start_ns > 0).then(|| ctx.ev.ts_ns.saturating_sub(p.start_ns) as i64)
        })),
        "proc.start_ts" | "proc.pid.ts" => provided(int(|ctx| ctx.process().map(|p| p.start_ns as i64))),
        "proc.is_exe_in_venv" => ResolvedField {
            getter: boolean(|ctx| {
                let p = ctx.process().filter(|_| ctx.live)?;
                let exe = crate::fsprobe::seen_path(std::path::Path::new("/proc"), ctx.ev, &p.exe)?;
                Some(crate::fsprobe::is_in_venv(&exe))
            }),
            availability: Availability::Probe(
                "looks for pyvenv.cfg beside the executable's bin/ when the event is evaluated",
            ),
        },
        "fd.has_fresh_copy" => ResolvedField {
            getter: boolean(|ctx| {
                let path = ctx.fd_name().filter(|_| ctx.live)?;
                let seen = crate::fsprobe::seen_path(std::path::Path::new("/proc"), ctx.ev, path)?;
                Some(crate::fsprobe::has_fresh_copy(
                    &seen,
                    std::time::SystemTime::now(),
                    crate::fsprobe::FRESH_COPY,
                ))
            }),
            availability: Availability::Probe(
                "looks for a non-empty NAME.*, NAME-* or NAME_* written in the last five minutes beside the file when the event is evaluated",
            ),
        },
        "proc.is_exe_from_memfd" => provided(boolean(|ctx| {
            if let Payload::Exec { from_memfd, .. } = &ctx.ev.payload {
                return Some(*from_memfd);
            }
            ctx.process().map(|p| p.exe.starts_with("memfd:") || p.exe.starts_with("/memfd:"))
        })),
        "proc.is_exe_upper_layer" => provided(boolean(|ctx| ctx.process().map(|p| p.exe_upper_layer))),
        "proc.is_pexe_upper_layer" => provided(boolean(|ctx| ancestor(ctx, 1).map(|v| v.exe_upper_layer()))),
        "proc.is_exe_writable" => not_provided(
            T::Bool,
            "needs the executable's writability: add `exe_writable: bool` to Payload::Exec",
        ),
        "proc.sname" | "proc.vpgid.name" | "proc.vpgid.exe" | "proc.vpgid.exepath" => not_provided(
            T::Str,
            "needs session / process-group leaders: add `sid`, `pgid` and their names to Process",
        ),
        "proc.sid" | "proc.vpgid" | "proc.pgid" => not_provided(T::Int, "needs session / process-group ids in Process"),
        "proc.is_vpgid_leader" | "proc.is_sid_leader" => {
            not_provided(T::Bool, "needs session / process-group ids in Process")
        }
        "proc.vpid" | "proc.pvpid" | "thread.vtid" => {
            not_provided(T::Int, "needs the pid inside the container's pid namespace: add `vpid` to Process")
        }
        "proc.ppid.duration" | "proc.pid.duration" => {
            not_provided(T::Int, "needs the parent's start time: add `start_ns` to Ancestor")
        }
        "proc.loginshellid" => not_provided(T::Int, "needs login-shell tracking in the sensor"),
        "proc.is_container_healthcheck" | "proc.is_container_liveness_probe" | "proc.is_container_readiness_probe" => {
            not_provided(T::Bool, "needs the container's health-check command in Container")
        }
        "proc.exe_ino" | "proc.exe_ino.ctime" | "proc.exe_ino.mtime" | "proc.exe_ino.ctime_duration_proc_start"
        | "proc.exe_ino.ctime_duration_pidns_start" => {
            return Err(FieldError::Unsupported(
                name.into(),
                "the sensor does not report the executable's inode (add `exe_ino`, `exe_ctime_ns`, `exe_mtime_ns` to Process)",
            ))
        }
        "proc.aenv" => {
            return Err(FieldError::Unsupported(
                name.into(),
                "the sensor does not capture environment variables (proc.env reads the process's own)",
            ))
        }
        "thread.cap_effective" | "thread.cap_permitted" | "thread.cap_inheritable" => ResolvedField {
            getter: s(|ctx| effective_caps(ctx.ev).map(Cow::Owned)),
            availability: Availability::Approximate(
                "derived from uid, container privileged flag and cap_add (Docker's default set for root); exact only on capset events",
            ),
        },

        // --- user / group ---
        "user.uid" => provided(int(|ctx| ctx.process().map(|p| p.euid as i64))),
        "user.name" => provided(s(|ctx| ctx.process().and_then(|p| ctx.name_of(p.euid)))),
        "user.loginuid" => provided(int(|ctx| ctx.process().map(|p| p.auid.map_or(-1, |a| a as i64)))),
        // Rampart extensions: the real ids (user.uid/group.gid are the effective ones, as
        // in Falco). A setuid-root program run by nobody has uid 0 but ruid 65534.
        "user.ruid" => provided(int(|ctx| ctx.process().map(|p| p.uid as i64))),
        "group.rgid" => provided(int(|ctx| ctx.process().map(|p| p.gid as i64))),
        "user.loginname" => provided(s(|ctx| {
            let p = ctx.process()?;
            match p.auid {
                Some(a) => ctx.name_of(a),
                None => b("<NA>"),
            }
        })),
        "user.homedir" => provided(s(|ctx| ctx.user().map(|e| Cow::Borrowed(e.home.as_str())))),
        "user.shell" => provided(s(|ctx| ctx.user().map(|e| Cow::Borrowed(e.shell.as_str())))),
        "group.gid" => provided(int(|ctx| ctx.process().map(|p| p.egid as i64))),
        "group.name" => provided(s(|ctx| ctx.process().and_then(|p| group_name(p.egid)).map(Cow::Borrowed))),

        // --- file descriptors ---
        "fd.name" => provided(s(|ctx| ctx.fd_name().map(Cow::Borrowed))),
        "fd.nameraw" => provided(s(|ctx| ctx.fd_nameraw().map(Cow::Borrowed))),
        "fd.directory" => provided(s(|ctx| {
            file_path(&ctx.ev.payload)?;
            ctx.fd_name().map(|n| Cow::Borrowed(dirname(n)))
        })),
        "fd.filename" => provided(s(|ctx| {
            file_path(&ctx.ev.payload)?;
            ctx.fd_name().map(|n| Cow::Borrowed(basename(n)))
        })),
        "fs.path.name" => provided(s(|ctx| ctx.fd_name().map(Cow::Borrowed))),
        "fs.path.nameraw" => provided(s(|ctx| file_path(&ctx.ev.payload).map(Cow::Borrowed))),
        "fs.path.source" | "fs.path.sourceraw" => provided(s(|ctx| match &ctx.ev.payload {
            Payload::FileRename { old_path, .. } | Payload::FileLink { old_path, .. } => b(old_path),
            _ => None,
        })),
        "fs.path.target" | "fs.path.targetraw" => provided(s(|ctx| match &ctx.ev.payload {
            Payload::FileRename { new_path, .. } | Payload::FileLink { new_path, .. } => b(new_path),
            _ => None,
        })),
        "fd.type" => provided(s(|ctx| fd_type(ctx).map(Cow::Borrowed))),
        "fd.typechar" => provided(s(|ctx| {
            fd_type(ctx).map(|t| {
                Cow::Borrowed(match t {
                    "file" => "f",
                    "directory" => "d",
                    "ipv4" => "4",
                    "ipv6" => "6",
                    "unix" => "u",
                    _ => "o",
                })
            })
        })),
        "fd.num" => provided(int(|ctx| match &ctx.ev.payload {
            Payload::FileOpen { ret, .. } | Payload::NetAccept { ret, .. } | Payload::MemfdCreate { ret, .. } => {
                Some(if *ret < 0 { -1 } else { *ret })
            }
            _ => None,
        })),
        "fd.l4proto" => provided(s(|ctx| {
            socket_proto(&ctx.ev.payload).map(|p| {
                Cow::Borrowed(match p {
                    L4Proto::Tcp => "tcp",
                    L4Proto::Udp => "udp",
                    L4Proto::Unix => "unix",
                    L4Proto::Other => "raw",
                })
            })
        })),
        "fd.sockfamily" => provided(s(|ctx| {
            let ep = endpoints(&ctx.ev.payload)?;
            let a = ep.server.or(ep.client)?;
            b(if matches!(a, SockAddr::Unix { .. }) { "unix" } else { "ip" })
        })),
        "fd.connected" => provided(boolean(|ctx| match &ctx.ev.payload {
            Payload::NetConnect { ret, .. } => Some(*ret == 0 || *ret == -115),
            Payload::NetAccept { ret, .. } => Some(*ret >= 0),
            Payload::DnsQuery { .. } | Payload::NetBind { .. } | Payload::NetListen { .. } => Some(false),
            _ => None,
        })),
        "fd.name_changed" => provided(boolean(|ctx| endpoints(&ctx.ev.payload).map(|_| false))),
        "fd.sip" | "fd.snet" => provided(ip(|ctx| [endpoints(&ctx.ev.payload).and_then(|e| e.server.and_then(SockAddr::ip)), None])),
        "fd.cip" | "fd.cnet" => provided(ip(|ctx| [endpoints(&ctx.ev.payload).and_then(|e| e.client.and_then(SockAddr::ip)), None])),
        "fd.lip" | "fd.lnet" => provided(ip(|ctx| [endpoints(&ctx.ev.payload).and_then(|e| e.local.and_then(SockAddr::ip)), None])),
        "fd.rip" | "fd.rnet" => provided(ip(|ctx| [endpoints(&ctx.ev.payload).and_then(|e| e.remote.and_then(SockAddr::ip)), None])),
        "fd.ip" | "fd.net" => provided(ip(|ctx| match endpoints(&ctx.ev.payload) {
            Some(e) => [e.client.and_then(SockAddr::ip), e.server.and_then(SockAddr::ip)],
            None => [None, None],
        })),
        "fd.sport" => provided(int(|ctx| endpoints(&ctx.ev.payload).and_then(|e| e.server?.port()).map(i64::from))),
        "fd.cport" => provided(int(|ctx| endpoints(&ctx.ev.payload).and_then(|e| e.client?.port()).map(i64::from))),
        "fd.lport" => provided(int(|ctx| endpoints(&ctx.ev.payload).and_then(|e| e.local?.port()).map(i64::from))),
        "fd.rport" => provided(int(|ctx| endpoints(&ctx.ev.payload).and_then(|e| e.remote?.port()).map(i64::from))),
        "fd.port" => provided(int(|ctx| {
            let e = endpoints(&ctx.ev.payload)?;
            e.server.and_then(SockAddr::port).or_else(|| e.client.and_then(SockAddr::port)).map(i64::from)
        })),
        // Conditions compare the address with what the name resolves to (compile.rs,
        // hostnames.rs); outputs have no name for an address.
        "fd.sip.name" | "fd.cip.name" | "fd.lip.name" | "fd.rip.name" => ResolvedField {
            getter: s(|_| None),
            availability: Availability::Approximate(
                "compared with the addresses the rule's host names resolve to (at load and every 60 s); outputs show no name",
            ),
        },
        "fd.ino" | "fd.dev" | "fd.dev.major" | "fd.dev.minor" => not_provided(T::Int, "open events carry no inode/device"),
        "fd.is_upper_layer" | "fd.is_lower_layer" => not_provided(T::Bool, "open events carry no overlayfs layer"),

        // --- container / kubernetes ---
        "container.id" => provided(s(|ctx| {
            Some(match ctx.container() {
                Some(c) => Cow::Borrowed(c.id.get(..12).unwrap_or(c.id.as_str())),
                None => Cow::Borrowed("host"),
            })
        })),
        "container.full_id" => provided(s(|ctx| {
            Some(match ctx.container() {
                Some(c) => Cow::Borrowed(c.id.as_str()),
                None => Cow::Borrowed("host"),
            })
        })),
        "container.name" => provided(s(|ctx| {
            Some(match ctx.container() {
                Some(c) if !c.name.is_empty() => Cow::Borrowed(c.name.as_str()),
                Some(_) => return None,
                None => Cow::Borrowed("host"),
            })
        })),
        "container.image" => provided(s(|ctx| nonempty(ctx.container().map(|c| c.image.as_str())))),
        "container.image.repository" => provided(s(|ctx| nonempty(ctx.container().map(|c| c.image_repository.as_str())))),
        "container.image.tag" => provided(s(|ctx| nonempty(ctx.container().map(|c| c.image_tag.as_str())))),
        "container.image.id" | "container.image.digest" => {
            provided(s(|ctx| nonempty(ctx.container().map(|c| c.image_digest.as_str()))))
        }
        "container.type" => provided(s(|ctx| match ctx.container() {
            Some(c) => nonempty(Some(c.runtime.as_str())),
            None => b("host"),
        })),
        "container.privileged" => provided(boolean(|ctx| ctx.container().map(|c| c.privileged))),
        "container.start_ts" | "container.duration" => {
            not_provided(T::Int, "needs the container's start time: add `started_ns: u64` to Container")
        }
        "container.healthcheck" | "container.liveness_probe" | "container.readiness_probe" => {
            not_provided(T::Str, "needs the container's health-check command in Container")
        }
        // An admission request's namespace too: the namespace the pod is to run in.
        "k8s.ns.name" => provided(s(|ctx| match (ctx.container(), &ctx.ev.payload) {
            (None, Payload::Admission(a)) => Some(Cow::Borrowed(a.namespace.as_str())),
            (c, _) => c?.k8s.as_ref().map(|k| Cow::Borrowed(k.namespace.as_str())),
        })),
        // Admission requests, with the names of Falco's k8saudit fields where it has
        // one (`ka.*`).
        "ka.user.name" => provided(s(|ctx| admission(ctx).map(|a| Cow::Borrowed(a.user.as_str())))),
        "ka.verb" => provided(s(|ctx| admission(ctx).map(|a| Cow::Owned(a.operation.to_lowercase())))),
        "ka.target.name" => provided(s(|ctx| admission(ctx).map(|a| Cow::Borrowed(a.name.as_str())))),
        "ka.target.namespace" => provided(s(|ctx| admission(ctx).map(|a| Cow::Borrowed(a.namespace.as_str())))),
        // The API's resource name: `Deployment` is `deployments`.
        "ka.target.resource" => {
            provided(s(|ctx| admission(ctx).map(|a| Cow::Owned(format!("{}s", a.kind.to_lowercase())))))
        }
        "ka.req.pod.containers.image" | "admission.images" => {
            provided(s(|ctx| admission(ctx).map(|a| Cow::Owned(a.images.join(", ")))))
        }
        "admission.kind" => provided(s(|ctx| admission(ctx).map(|a| Cow::Borrowed(a.kind.as_str())))),
        "admission.decision" => provided(s(|ctx| admission(ctx).map(|a| Cow::Borrowed(a.decision.as_str())))),
        // The clauses that denied, then those that warned.
        "admission.clauses" => provided(s(|ctx| {
            admission(ctx).map(|a| {
                let all: Vec<&str> = a.denied_by.iter().chain(&a.warned_by).map(String::as_str).collect();
                Cow::Owned(all.join(", "))
            })
        })),
        "k8s.pod.name" => provided(s(|ctx| ctx.container()?.k8s.as_ref().map(|k| Cow::Borrowed(k.pod.as_str())))),
        "k8s.pod.uid" | "k8s.pod.id" => {
            provided(s(|ctx| ctx.container()?.k8s.as_ref().map(|k| Cow::Borrowed(k.pod_uid.as_str()))))
        }
        "k8s.container.name" => {
            provided(s(|ctx| ctx.container()?.k8s.as_ref().map(|k| Cow::Borrowed(k.container.as_str()))))
        }
        // The pod's own labels (its sandbox's), as `key:value` pairs.
        "k8s.pod.labels" => provided(s(|ctx| {
            let k = ctx.container()?.k8s.as_ref()?;
            let pairs: Vec<String> = k.labels.iter().map(|(a, b)| format!("{a}:{b}")).collect();
            Some(Cow::Owned(pairs.join(", ")))
        })),
        "k8s.workload.kind" => {
            provided(s(|ctx| ctx.container()?.k8s.as_ref().and_then(|k| nonempty(Some(k.workload_kind.as_str())))))
        }
        "k8s.workload.name" => {
            provided(s(|ctx| ctx.container()?.k8s.as_ref().and_then(|k| nonempty(Some(k.workload_name.as_str())))))
        }
        // Not a Falco field (Falco's syscall source has no service account): named
        // after k8saudit's `ka.*.serviceaccount` style, under k8s.
        "k8s.sa.name" => {
            provided(s(|ctx| ctx.container()?.k8s.as_ref().and_then(|k| nonempty(Some(k.service_account.as_str())))))
        }
        "k8s.node.name" => {
            provided(s(|ctx| ctx.container()?.k8s.as_ref().and_then(|k| nonempty(Some(k.node.as_str())))))
        }
        // Falco's per-owner names: the workload's name when it is of that kind.
        "k8s.deployment.name" | "k8s.statefulset.name" | "k8s.daemonset.name" | "k8s.job.name" => {
            let kind = match name {
                "k8s.deployment.name" => "Deployment",
                "k8s.statefulset.name" => "StatefulSet",
                "k8s.daemonset.name" => "DaemonSet",
                _ => "Job",
            };
            provided(s(move |ctx| {
                let k = ctx.container()?.k8s.as_ref()?;
                (k.workload_kind == kind).then_some(Cow::Borrowed(k.workload_name.as_str()))
            }))
        }
        _ => return Err(FieldError::Unknown(name.into())),
    };
    Ok(r)
}

fn admission<'c>(ctx: &'c EvalCtx<'_>) -> Option<&'c rampart_event::AdmissionRequest> {
    match &ctx.ev.payload {
        Payload::Admission(a) => Some(a),
        _ => None,
    }
}

fn nonempty(v: Option<&str>) -> Option<Cow<'_, str>> {
    v.filter(|s| !s.is_empty()).map(Cow::Borrowed)
}

fn ancestry_field(name: &str, idx: Option<usize>) -> Getter {
    fn pick(name: &str) -> fn(ProcView<'_>) -> Cow<'_, str> {
        match name {
            "proc.aname" => |v| Cow::Borrowed(v.comm()),
            "proc.aexe" => |v| Cow::Borrowed(v.argv0()),
            "proc.aexepath" => |v| Cow::Borrowed(v.exe()),
            "proc.apid" => |v| Cow::Owned(v.pid().to_string()),
            _ => |v| Cow::Owned(cmdline_of(v)),
        }
    }
    let get = pick(name);
    if name == "proc.apid" {
        return match idx {
            Some(n) => int(move |ctx| ancestor(ctx, n).map(|v| v.pid() as i64)),
            None => int(|ctx| ancestor(ctx, 1).map(|v| v.pid() as i64)),
        };
    }
    match idx {
        Some(n) => s(move |ctx| ancestor(ctx, n).map(get)),
        // Without an index: any ancestor (not the process itself), as Falco does.
        None => Getter::StrAny(Arc::new(move |ctx, visit| {
            let Some(p) = ctx.process() else { return false };
            p.ancestry
                .iter()
                .any(|a| visit(&get(ProcView::Ancestor(a))))
        })),
    }
}

/// The syscall name Falco would report for this event.
pub fn primary_syscall(ev: &Event) -> &str {
    match &ev.payload {
        Payload::Exec { .. } => "execve",
        Payload::Fork { .. } => "clone",
        Payload::Exit { .. } => "procexit",
        Payload::FileOpen { .. } | Payload::ProcMemWrite { .. } => "openat",
        Payload::FileUnlink { .. } => "unlinkat",
        Payload::FileRename { .. } => "renameat2",
        Payload::FileLink { symbolic: true, .. } => "symlinkat",
        Payload::FileLink { .. } => "linkat",
        Payload::FileChmod { .. } => "fchmodat",
        Payload::FileChown { .. } => "fchownat",
        Payload::FileTruncate { .. } => "ftruncate",
        Payload::NetConnect { .. } => "connect",
        Payload::NetAccept { .. } => "accept4",
        Payload::NetBind { .. } => "bind",
        Payload::NetListen { .. } => "listen",
        Payload::DnsQuery { .. } => "sendto",
        Payload::SetId { call, .. }
        | Payload::Namespace { call, .. }
        | Payload::ModuleLoad { call, .. }
        | Payload::Mount { call, .. }
        | Payload::ProcessVm { call, .. } => call,
        Payload::Capset { .. } => "capset",
        Payload::Ptrace { .. } => "ptrace",
        Payload::Umount { .. } => "umount2",
        Payload::Bpf { .. } => "bpf",
        Payload::MemfdCreate { .. } => "memfd_create",
        Payload::Socket { .. } => "socket",
        Payload::IoUring { .. } => "io_uring_enter",
        Payload::FileOpenByHandle { .. } => "open_by_handle_at",
        Payload::ProcessRename { .. } => "prctl",
        Payload::Chroot { .. } => "chroot",
        Payload::FdDup { call, .. } | Payload::ExecFailed { call, .. } => call,
        Payload::Lost { .. } => "drop",
        Payload::Admission(_) => "admission",
    }
}

fn event_category(p: &Payload) -> &'static str {
    match p {
        Payload::Exec { .. }
        | Payload::Fork { .. }
        | Payload::Exit { .. }
        | Payload::ExecFailed { .. }
        | Payload::ProcessRename { .. } => "process",
        Payload::NetConnect { .. }
        | Payload::NetAccept { .. }
        | Payload::NetBind { .. }
        | Payload::NetListen { .. }
        | Payload::DnsQuery { .. }
        | Payload::Socket { .. }
        | Payload::FdDup { .. } => "net",
        Payload::Lost { .. } => "internal",
        Payload::Admission(_) => "k8s_admission",
        _ => "file",
    }
}

/// Return value of the syscall, when the event kind has one.
pub fn event_ret(p: &Payload) -> Option<i64> {
    Some(match p {
        Payload::Exec { .. } => 0,
        Payload::Fork { child_pid, .. } => *child_pid as i64,
        Payload::FileOpen { ret, .. }
        | Payload::FileUnlink { ret, .. }
        | Payload::FileRename { ret, .. }
        | Payload::FileLink { ret, .. }
        | Payload::FileChmod { ret, .. }
        | Payload::FileChown { ret, .. }
        | Payload::FileTruncate { ret, .. }
        | Payload::NetConnect { ret, .. }
        | Payload::NetAccept { ret, .. }
        | Payload::NetBind { ret, .. }
        | Payload::NetListen { ret, .. }
        | Payload::SetId { ret, .. }
        | Payload::Capset { ret, .. }
        | Payload::Ptrace { ret, .. }
        | Payload::ProcessVm { ret, .. }
        | Payload::Mount { ret, .. }
        | Payload::Umount { ret, .. }
        | Payload::Namespace { ret, .. }
        | Payload::ModuleLoad { ret, .. }
        | Payload::Bpf { ret, .. }
        | Payload::MemfdCreate { ret, .. }
        | Payload::ProcMemWrite { ret, .. }
        | Payload::Socket { ret, .. }
        | Payload::ExecFailed { ret, .. }
        | Payload::FileOpenByHandle { ret, .. }
        | Payload::ProcessRename { ret, .. }
        | Payload::Chroot { ret, .. } => *ret,
        Payload::FdDup { new_fd, .. } => *new_fd,
        Payload::DnsQuery { .. } => 0,
        Payload::Exit { .. }
        | Payload::Lost { .. }
        | Payload::IoUring { .. }
        | Payload::Admission(_) => return None,
    })
}

/// The path a file event is about, as the process passed it.
pub fn file_path(p: &Payload) -> Option<&str> {
    match p {
        Payload::FileOpen { path, .. }
        | Payload::FileUnlink { path, .. }
        | Payload::FileChmod { path, .. }
        | Payload::FileChown { path, .. }
        | Payload::FileTruncate { path, .. }
        | Payload::ProcMemWrite { path, .. } => Some(path),
        Payload::FileOpenByHandle { path, .. } if !path.is_empty() => Some(path),
        Payload::ModuleLoad { path, .. } if !path.is_empty() => Some(path),
        _ => None,
    }
}

/// Resolves `.`/`..` and makes a path absolute against the working directory.
pub fn normalize_path(raw: &str, cwd: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let joined_cwd;
    let full = if raw.starts_with('/') {
        raw
    } else {
        joined_cwd = format!("{cwd}/{raw}");
        joined_cwd.as_str()
    };
    for seg in full.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(full.len());
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn dirname(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) => "/",
        Some(i) => &p[..i],
        None => p,
    }
}

fn basename(p: &str) -> &str {
    match p.rfind('/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

/// Socket ends of a network event.
pub struct Endpoints<'e> {
    pub local: Option<&'e SockAddr>,
    pub remote: Option<&'e SockAddr>,
    pub client: Option<&'e SockAddr>,
    pub server: Option<&'e SockAddr>,
}

pub fn endpoints(p: &Payload) -> Option<Endpoints<'_>> {
    Some(match p {
        Payload::NetConnect { local, remote, .. } => Endpoints {
            local: local.as_ref(),
            remote: Some(remote),
            client: local.as_ref(),
            server: Some(remote),
        },
        Payload::NetAccept { local, remote, .. } => Endpoints {
            local: local.as_ref(),
            remote: remote.as_ref(),
            client: remote.as_ref(),
            server: local.as_ref(),
        },
        Payload::NetBind { local, .. } => Endpoints {
            local: Some(local),
            remote: None,
            client: None,
            server: Some(local),
        },
        Payload::NetListen { local, .. } => Endpoints {
            local: local.as_ref(),
            remote: None,
            client: None,
            server: local.as_ref(),
        },
        Payload::DnsQuery { server, .. } => Endpoints {
            local: None,
            remote: Some(server),
            client: None,
            server: Some(server),
        },
        Payload::IoUring {
            op,
            addr: Some(addr),
            ..
        } if op == "connect" => Endpoints {
            local: None,
            remote: Some(addr),
            client: None,
            server: Some(addr),
        },
        Payload::IoUring {
            op,
            addr: Some(addr),
            ..
        } if op == "bind" => Endpoints {
            local: Some(addr),
            remote: None,
            client: None,
            server: Some(addr),
        },
        // Direction is unknown for a dup'ed socket; a reverse shell's is outbound.
        Payload::FdDup { local, remote, .. } => Endpoints {
            local: local.as_ref(),
            remote: remote.as_ref(),
            client: local.as_ref(),
            server: remote.as_ref(),
        },
        _ => return None,
    })
}

fn socket_proto(p: &Payload) -> Option<L4Proto> {
    match p {
        Payload::NetConnect { proto, .. }
        | Payload::NetAccept { proto, .. }
        | Payload::NetBind { proto, .. }
        | Payload::NetListen { proto, .. }
        | Payload::FdDup { proto, .. } => Some(*proto),
        Payload::DnsQuery { .. } => Some(L4Proto::Udp),
        _ => None,
    }
}

fn fmt_addr(a: &SockAddr) -> String {
    match a {
        SockAddr::Inet { ip, port } => format!("{ip}:{port}"),
        SockAddr::Inet6 { ip, port } => format!("[{ip}]:{port}"),
        SockAddr::Unix { path } => path.clone(),
        SockAddr::Other { number } => format!("family {number}"),
    }
}

fn socket_fd_name(p: &Payload) -> Option<String> {
    let e = endpoints(p)?;
    match (e.client, e.server) {
        (Some(c), Some(s)) => Some(format!("{}->{}", fmt_addr(c), fmt_addr(s))),
        (None, Some(s)) if matches!(p, Payload::NetConnect { .. } | Payload::DnsQuery { .. }) => {
            Some(format!("->{}", fmt_addr(s)))
        }
        (None, Some(s)) => Some(fmt_addr(s)),
        (Some(c), None) => Some(fmt_addr(c)),
        (None, None) => None,
    }
}

fn fd_type(ctx: &EvalCtx<'_>) -> Option<&'static str> {
    match &ctx.ev.payload {
        Payload::FileOpen { flags, .. } => Some(if flags & 0o200000 != 0 {
            "directory"
        } else {
            "file"
        }),
        Payload::FileUnlink { .. }
        | Payload::FileChmod { .. }
        | Payload::FileChown { .. }
        | Payload::FileTruncate { .. }
        | Payload::ProcMemWrite { .. } => Some("file"),
        Payload::MemfdCreate { .. } => Some("memfd"),
        p => {
            let e = endpoints(p)?;
            Some(match e.server.or(e.client)? {
                SockAddr::Inet { .. } => "ipv4",
                SockAddr::Inet6 { ip, .. } if ip.is_ipv4() => "ipv4",
                SockAddr::Inet6 { .. } => "ipv6",
                SockAddr::Unix { .. } => "unix",
                SockAddr::Other { .. } => "socket",
            })
        }
    }
}

/// Argument names per kind, in Falco's order (for `evt.arg[N]`).
/// An event argument name, resolved once at load time (Falco's `evt.arg.NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKey {
    Addr,
    Args,
    Backlog,
    CapEffective,
    CapInheritable,
    CapPermitted,
    Cmd,
    Domain,
    Dev,
    Dir,
    Egid,
    Euid,
    Exe,
    Fd,
    Filename,
    Flags,
    Fstype,
    Gid,
    Length,
    Linkpath,
    Mode,
    Name,
    Newfd,
    Newpath,
    Nstype,
    Oldfd,
    Oldpath,
    Path,
    Pathname,
    Pid,
    Proto,
    Query,
    Request,
    Res,
    Rgid,
    Ruid,
    Sgid,
    Source,
    Suid,
    Target,
    Tuple,
    Type,
    Uid,
    /// io_uring's operation.
    Op,
    /// `evt.arg[N]`: the Nth argument of whatever kind the event is.
    Index(u8),
    /// A name no event kind has: never has a value.
    Unknown,
}

impl ArgKey {
    pub fn as_str(self) -> &'static str {
        match self {
            ArgKey::Addr => "addr",
            ArgKey::Args => "args",
            ArgKey::Backlog => "backlog",
            ArgKey::CapEffective => "cap_effective",
            ArgKey::CapInheritable => "cap_inheritable",
            ArgKey::CapPermitted => "cap_permitted",
            ArgKey::Cmd => "cmd",
            ArgKey::Domain => "domain",
            ArgKey::Newfd => "newfd",
            ArgKey::Oldfd => "oldfd",
            ArgKey::Proto => "proto",
            ArgKey::Query => "query",
            ArgKey::Dev => "dev",
            ArgKey::Dir => "dir",
            ArgKey::Egid => "egid",
            ArgKey::Euid => "euid",
            ArgKey::Exe => "exe",
            ArgKey::Fd => "fd",
            ArgKey::Filename => "filename",
            ArgKey::Flags => "flags",
            ArgKey::Fstype => "fstype",
            ArgKey::Gid => "gid",
            ArgKey::Length => "length",
            ArgKey::Linkpath => "linkpath",
            ArgKey::Mode => "mode",
            ArgKey::Name => "name",
            ArgKey::Newpath => "newpath",
            ArgKey::Nstype => "nstype",
            ArgKey::Oldpath => "oldpath",
            ArgKey::Path => "path",
            ArgKey::Pathname => "pathname",
            ArgKey::Pid => "pid",
            ArgKey::Request => "request",
            ArgKey::Op => "op",
            ArgKey::Res => "res",
            ArgKey::Rgid => "rgid",
            ArgKey::Ruid => "ruid",
            ArgKey::Sgid => "sgid",
            ArgKey::Source => "source",
            ArgKey::Suid => "suid",
            ArgKey::Target => "target",
            ArgKey::Tuple => "tuple",
            ArgKey::Type => "type",
            ArgKey::Uid => "uid",
            ArgKey::Index(_) | ArgKey::Unknown => "?",
        }
    }
}

fn arg_key(name: &str) -> ArgKey {
    if let Ok(n) = name.parse::<u8>() {
        return ArgKey::Index(n);
    }
    match name {
        "addr" => ArgKey::Addr,
        "args" => ArgKey::Args,
        "backlog" => ArgKey::Backlog,
        "cap_effective" => ArgKey::CapEffective,
        "cap_inheritable" => ArgKey::CapInheritable,
        "cap_permitted" => ArgKey::CapPermitted,
        "cmd" => ArgKey::Cmd,
        "domain" => ArgKey::Domain,
        "newfd" => ArgKey::Newfd,
        "oldfd" => ArgKey::Oldfd,
        "proto" => ArgKey::Proto,
        "query" => ArgKey::Query,
        "dev" => ArgKey::Dev,
        "dir" => ArgKey::Dir,
        "egid" => ArgKey::Egid,
        "euid" => ArgKey::Euid,
        "exe" => ArgKey::Exe,
        "fd" => ArgKey::Fd,
        "filename" => ArgKey::Filename,
        "flags" => ArgKey::Flags,
        "fstype" => ArgKey::Fstype,
        "gid" => ArgKey::Gid,
        "length" => ArgKey::Length,
        "linkpath" => ArgKey::Linkpath,
        "mode" => ArgKey::Mode,
        "name" => ArgKey::Name,
        "newpath" => ArgKey::Newpath,
        "nstype" => ArgKey::Nstype,
        "oldpath" => ArgKey::Oldpath,
        "path" => ArgKey::Path,
        "pathname" => ArgKey::Pathname,
        "pid" => ArgKey::Pid,
        "request" => ArgKey::Request,
        "op" => ArgKey::Op,
        "res" => ArgKey::Res,
        "rgid" => ArgKey::Rgid,
        "ruid" => ArgKey::Ruid,
        "sgid" => ArgKey::Sgid,
        "source" => ArgKey::Source,
        "suid" => ArgKey::Suid,
        "target" => ArgKey::Target,
        "tuple" => ArgKey::Tuple,
        "type" => ArgKey::Type,
        "uid" => ArgKey::Uid,
        _ => ArgKey::Unknown,
    }
}

fn arg_names(p: &Payload) -> &'static [ArgKey] {
    match p {
        Payload::Exec { .. } => &[ArgKey::Res, ArgKey::Exe, ArgKey::Args, ArgKey::Flags],
        Payload::ExecFailed { .. } => &[ArgKey::Res, ArgKey::Exe, ArgKey::Args],
        Payload::FileOpenByHandle { .. } => &[ArgKey::Fd, ArgKey::Flags, ArgKey::Path],
        Payload::ProcessRename { .. } => &[ArgKey::Res, ArgKey::Name],
        Payload::Chroot { .. } => &[ArgKey::Res, ArgKey::Path],
        Payload::FileOpen { .. } => &[ArgKey::Fd, ArgKey::Name, ArgKey::Flags, ArgKey::Mode],
        Payload::FileUnlink { .. } => &[ArgKey::Res, ArgKey::Name],
        Payload::FileRename { .. } => &[ArgKey::Res, ArgKey::Oldpath, ArgKey::Newpath],
        Payload::FileLink { symbolic: true, .. } => {
            &[ArgKey::Res, ArgKey::Target, ArgKey::Linkpath]
        }
        Payload::FileLink { .. } => &[ArgKey::Res, ArgKey::Oldpath, ArgKey::Newpath],
        Payload::FileChmod { .. } => &[ArgKey::Res, ArgKey::Filename, ArgKey::Mode],
        Payload::FileChown { .. } => &[ArgKey::Res, ArgKey::Path, ArgKey::Uid, ArgKey::Gid],
        Payload::FileTruncate { .. } => &[ArgKey::Res, ArgKey::Name, ArgKey::Length],
        Payload::NetConnect { .. } => &[ArgKey::Res, ArgKey::Tuple],
        Payload::NetAccept { .. } => &[ArgKey::Fd, ArgKey::Tuple],
        Payload::NetBind { .. } => &[ArgKey::Res, ArgKey::Addr],
        Payload::NetListen { .. } => &[ArgKey::Res, ArgKey::Backlog],
        Payload::Ptrace { .. } => &[ArgKey::Res, ArgKey::Request, ArgKey::Pid],
        Payload::ProcessVm { .. } => &[ArgKey::Res, ArgKey::Pid],
        Payload::IoUring { op, .. } => match op.as_str() {
            "connect" | "bind" => &[ArgKey::Op, ArgKey::Addr],
            "socket" => &[ArgKey::Op, ArgKey::Domain, ArgKey::Type, ArgKey::Proto],
            "listen" => &[ArgKey::Op, ArgKey::Backlog],
            _ => &[ArgKey::Op, ArgKey::Path, ArgKey::Flags],
        },
        Payload::Mount { .. } => &[
            ArgKey::Res,
            ArgKey::Dev,
            ArgKey::Dir,
            ArgKey::Type,
            ArgKey::Flags,
        ],
        Payload::Umount { .. } => &[ArgKey::Res, ArgKey::Name, ArgKey::Flags],
        Payload::MemfdCreate { .. } => &[ArgKey::Fd, ArgKey::Name, ArgKey::Flags],
        Payload::SetId { .. } => &[ArgKey::Res, ArgKey::Uid],
        Payload::Namespace { .. } => &[ArgKey::Res, ArgKey::Flags],
        Payload::ModuleLoad { .. } => &[ArgKey::Res, ArgKey::Name],
        Payload::Bpf { .. } => &[ArgKey::Res, ArgKey::Cmd],
        Payload::Socket { .. } => &[ArgKey::Fd, ArgKey::Domain, ArgKey::Type, ArgKey::Proto],
        Payload::FdDup { .. } => &[ArgKey::Res, ArgKey::Oldfd, ArgKey::Newfd],
        Payload::DnsQuery { .. } => &[ArgKey::Res, ArgKey::Query],
        _ => &[ArgKey::Res],
    }
}

/// `SOCK_*` name of a socket(2) type argument, with its flags.
fn socket_type_text(t: u32) -> String {
    let base = match t & 0xf {
        1 => "SOCK_STREAM",
        2 => "SOCK_DGRAM",
        3 => "SOCK_RAW",
        4 => "SOCK_RDM",
        5 => "SOCK_SEQPACKET",
        10 => "SOCK_PACKET",
        _ => return t.to_string(),
    };
    let mut s = base.to_string();
    if t & 0o4000 != 0 {
        s.push_str("|SOCK_NONBLOCK");
    }
    if t & 0o2000000 != 0 {
        s.push_str("|SOCK_CLOEXEC");
    }
    s
}

fn event_arg<'c>(ctx: &'c EvalCtx<'_>, name: ArgKey) -> Option<Cow<'c, str>> {
    let p = &ctx.ev.payload;
    let name = match name {
        ArgKey::Index(n) => *arg_names(p).get(n as usize)?,
        other => other,
    };
    let o = |v: String| Some(Cow::Owned(v));
    if name == ArgKey::Res {
        return event_ret(p).map(|r| Cow::Owned(r.to_string()));
    }
    match (p, name) {
        (
            Payload::Exec { filename, .. },
            ArgKey::Exe | ArgKey::Filename | ArgKey::Path | ArgKey::Name,
        ) => b(filename),
        (Payload::Exec { .. }, ArgKey::Args) => {
            ctx.process().map(|p| Cow::Borrowed(ctx.args_of(p)))
        }
        (
            Payload::ExecFailed { filename, .. },
            ArgKey::Exe | ArgKey::Filename | ArgKey::Path | ArgKey::Name,
        ) => b(filename),
        (Payload::ExecFailed { argv, .. }, ArgKey::Args) => o(argv.join(" ")),
        (Payload::FileOpenByHandle { path, .. }, ArgKey::Path | ArgKey::Name) => b(path),
        (Payload::ProcessRename { name, .. }, ArgKey::Name) => b(name),
        (Payload::Chroot { path, .. }, ArgKey::Path | ArgKey::Name) => b(path),
        (Payload::FileOpenByHandle { ret, .. }, ArgKey::Fd) => o(ret.to_string()),
        (Payload::FileOpenByHandle { flags, .. }, ArgKey::Flags) => {
            o(open_flags_text(*flags as u32))
        }
        (Payload::Exec { from_memfd, .. }, ArgKey::Flags) => {
            b(if *from_memfd { "EXE_FROM_MEMFD" } else { "0" })
        }
        (
            Payload::FileOpen { path, .. }
            | Payload::FileUnlink { path, .. }
            | Payload::FileChmod { path, .. }
            | Payload::FileChown { path, .. }
            | Payload::FileTruncate { path, .. }
            | Payload::ProcMemWrite { path, .. },
            ArgKey::Name | ArgKey::Path | ArgKey::Filename | ArgKey::Pathname,
        ) => b(path),
        (Payload::FileOpen { flags, .. }, ArgKey::Flags) => o(open_flags_text(*flags)),
        (Payload::FileOpen { mode, .. } | Payload::FileChmod { mode, .. }, ArgKey::Mode) => {
            o(format!("0{mode:o}"))
        }
        (Payload::FileOpen { ret, .. }, ArgKey::Fd) => o(ret.to_string()),
        (Payload::FileRename { old_path, .. }, ArgKey::Oldpath | ArgKey::Source) => b(old_path),
        (Payload::FileRename { new_path, .. }, ArgKey::Newpath | ArgKey::Target) => b(new_path),
        (
            Payload::FileLink {
                old_path, symbolic, ..
            },
            n,
        ) if n == ArgKey::Oldpath || (*symbolic && n == ArgKey::Target) => b(old_path),
        (
            Payload::FileLink {
                new_path, symbolic, ..
            },
            n,
        ) if n == ArgKey::Newpath || (*symbolic && n == ArgKey::Linkpath) => b(new_path),
        (Payload::FileChown { uid, .. }, ArgKey::Uid) => o(uid.to_string()),
        (Payload::FileChown { gid, .. }, ArgKey::Gid) => o(gid.to_string()),
        (Payload::FileTruncate { length, .. }, ArgKey::Length) => o(length.to_string()),
        (Payload::NetConnect { .. } | Payload::NetAccept { .. }, ArgKey::Tuple | ArgKey::Addr) => {
            socket_fd_name(p).map(Cow::Owned)
        }
        (Payload::NetBind { local, .. }, ArgKey::Addr) => o(fmt_addr(local)),
        (Payload::NetListen { backlog, .. }, ArgKey::Backlog) => o(backlog.to_string()),
        (Payload::NetAccept { ret, .. }, ArgKey::Fd) => o(ret.to_string()),
        (Payload::Ptrace { request, .. }, ArgKey::Request) => o(ptrace_request_name(*request)),
        (
            Payload::Ptrace { target_pid, .. } | Payload::ProcessVm { target_pid, .. },
            ArgKey::Pid,
        ) => o(target_pid.to_string()),
        (Payload::IoUring { op, .. }, ArgKey::Op) => b(op),
        (Payload::IoUring { path, .. }, ArgKey::Path | ArgKey::Name) if !path.is_empty() => b(path),
        (Payload::IoUring { flags, op, .. }, ArgKey::Flags) if op.starts_with("open") => {
            o(open_flags_text(*flags as u32))
        }
        (Payload::IoUring { addr: Some(a), .. }, ArgKey::Addr) => o(fmt_addr(a)),
        (
            Payload::IoUring {
                domain: Some(d), ..
            },
            ArgKey::Domain,
        ) => b(d),
        (
            Payload::IoUring {
                sock_type: Some(t), ..
            },
            ArgKey::Type,
        ) => o(socket_type_text(*t)),
        (
            Payload::IoUring {
                protocol: Some(p), ..
            },
            ArgKey::Proto,
        ) => o(p.to_string()),
        (
            Payload::IoUring {
                backlog: Some(n), ..
            },
            ArgKey::Backlog,
        ) => o(n.to_string()),
        (Payload::Mount { source, .. }, ArgKey::Dev | ArgKey::Source) => b(source),
        (Payload::Mount { target, .. }, ArgKey::Dir | ArgKey::Target) => b(target),
        (Payload::Mount { fstype, .. }, ArgKey::Type | ArgKey::Fstype) => b(fstype),
        (Payload::Mount { flags, .. } | Payload::Umount { flags, .. }, ArgKey::Flags) => {
            o(flags.to_string())
        }
        (Payload::Umount { target, .. }, ArgKey::Name | ArgKey::Target | ArgKey::Dir) => b(target),
        (Payload::MemfdCreate { name: n, .. }, ArgKey::Name) => b(n),
        (Payload::MemfdCreate { flags, .. }, ArgKey::Flags) => o(memfd_flags_text(*flags)),
        (Payload::MemfdCreate { ret, .. }, ArgKey::Fd) => o(ret.to_string()),
        (Payload::SetId { call, args, .. }, n) => {
            let names: &[ArgKey] = match call.as_str() {
                "setuid" | "setfsuid" => &[ArgKey::Uid],
                "setgid" | "setfsgid" => &[ArgKey::Gid],
                "setreuid" => &[ArgKey::Ruid, ArgKey::Euid],
                "setregid" => &[ArgKey::Rgid, ArgKey::Egid],
                "setresuid" => &[ArgKey::Ruid, ArgKey::Euid, ArgKey::Suid],
                "setresgid" => &[ArgKey::Rgid, ArgKey::Egid, ArgKey::Sgid],
                _ => &[],
            };
            let i = names.iter().position(|x| *x == n)?;
            args.get(i).map(|v| Cow::Owned(v.to_string()))
        }
        (Payload::Namespace { flags, .. }, ArgKey::Flags | ArgKey::Nstype) => {
            o(clone_ns_flags_text(*flags))
        }
        (Payload::Namespace { fd, .. }, ArgKey::Fd) => fd.map(|f| Cow::Owned(f.to_string())),
        (Payload::ModuleLoad { path, .. }, ArgKey::Name | ArgKey::Path) if !path.is_empty() => {
            b(path)
        }
        (Payload::Bpf { cmd, .. }, ArgKey::Cmd) => o(bpf_cmd_name(*cmd)),
        (Payload::Socket { domain, .. }, ArgKey::Domain) => b(domain),
        (Payload::Socket { sock_type, .. }, ArgKey::Type) => o(socket_type_text(*sock_type)),
        (Payload::Socket { protocol, .. }, ArgKey::Proto) => o(protocol.to_string()),
        (Payload::Socket { ret, .. }, ArgKey::Fd) => o(ret.to_string()),
        (Payload::FdDup { old_fd, .. }, ArgKey::Oldfd | ArgKey::Fd) => o(old_fd.to_string()),
        (Payload::FdDup { new_fd, .. }, ArgKey::Newfd) => o(new_fd.to_string()),
        (Payload::DnsQuery { query, .. }, ArgKey::Query | ArgKey::Name) => b(query),
        (Payload::Capset { effective, .. }, ArgKey::CapEffective) => o(cap_names(*effective)),
        (Payload::Capset { permitted, .. }, ArgKey::CapPermitted) => o(cap_names(*permitted)),
        (Payload::Capset { inheritable, .. }, ArgKey::CapInheritable) => o(cap_names(*inheritable)),
        _ => None,
    }
}

fn event_rawarg(ev: &Event, name: ArgKey) -> Option<i64> {
    let p = &ev.payload;
    let name = match name {
        ArgKey::Index(n) => *arg_names(p).get(n as usize)?,
        other => other,
    };
    if name == ArgKey::Res
        || name == ArgKey::Fd
            && matches!(
                p,
                Payload::FileOpen { .. } | Payload::MemfdCreate { .. } | Payload::NetAccept { .. }
            )
    {
        return event_ret(p);
    }
    match (p, name) {
        (Payload::FileOpen { flags, .. } | Payload::MemfdCreate { flags, .. }, ArgKey::Flags) => {
            Some(*flags as i64)
        }
        (Payload::FileOpen { mode, .. } | Payload::FileChmod { mode, .. }, ArgKey::Mode) => {
            Some(*mode as i64)
        }
        (Payload::FileChown { uid, .. }, ArgKey::Uid) => Some(*uid),
        (Payload::FileChown { gid, .. }, ArgKey::Gid) => Some(*gid),
        (Payload::FileTruncate { length, .. }, ArgKey::Length) => Some(*length),
        (Payload::Ptrace { request, .. }, ArgKey::Request) => Some(*request),
        (
            Payload::Ptrace { target_pid, .. } | Payload::ProcessVm { target_pid, .. },
            ArgKey::Pid,
        ) => Some(*target_pid),
        (
            Payload::Mount { flags, .. }
            | Payload::Umount { flags, .. }
            | Payload::Namespace { flags, .. },
            ArgKey::Flags,
        ) => Some(*flags as i64),
        (Payload::NetListen { backlog, .. }, ArgKey::Backlog) => Some(*backlog as i64),
        (Payload::Bpf { cmd, .. }, ArgKey::Cmd) => Some(*cmd),
        (Payload::Socket { ret, .. }, ArgKey::Fd) => Some(*ret),
        (Payload::Socket { sock_type, .. }, ArgKey::Type) => Some(*sock_type as i64),
        (Payload::Socket { protocol, .. }, ArgKey::Proto) => Some(*protocol as i64),
        (
            Payload::IoUring {
                sock_type: Some(t), ..
            },
            ArgKey::Type,
        ) => Some(*t as i64),
        (
            Payload::IoUring {
                protocol: Some(p), ..
            },
            ArgKey::Proto,
        ) => Some(*p as i64),
        (
            Payload::IoUring {
                backlog: Some(n), ..
            },
            ArgKey::Backlog,
        ) => Some(*n as i64),
        (Payload::FdDup { old_fd, .. }, ArgKey::Oldfd | ArgKey::Fd) => Some(*old_fd),
        (Payload::FdDup { new_fd, .. }, ArgKey::Newfd) => Some(*new_fd),
        (Payload::SetId { args, .. }, ArgKey::Uid | ArgKey::Gid | ArgKey::Ruid | ArgKey::Rgid) => {
            args.first().copied()
        }
        (Payload::SetId { args, .. }, ArgKey::Euid | ArgKey::Egid) => args.get(1).copied(),
        (Payload::SetId { args, .. }, ArgKey::Suid | ArgKey::Sgid) => args.get(2).copied(),
        (Payload::Capset { effective, .. }, ArgKey::CapEffective) => Some(*effective as i64),
        _ => None,
    }
}

fn event_args_text(ctx: &EvalCtx<'_>) -> String {
    let mut out = String::new();
    for name in arg_names(&ctx.ev.payload) {
        if let Some(v) = event_arg(ctx, *name) {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(name.as_str());
            out.push('=');
            out.push_str(&v);
        }
    }
    out
}

fn flag_text(bits: u64, table: &[(u64, &str)]) -> String {
    let names: Vec<&str> = table
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "0".into()
    } else {
        names.join("|")
    }
}

fn open_flags_text(flags: u32) -> String {
    let acc = match flags & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        _ => "O_RDWR",
    };
    let rest = flag_text(
        flags as u64,
        &[
            (0o100, "O_CREAT"),
            (0o200, "O_EXCL"),
            (0o1000, "O_TRUNC"),
            (0o2000, "O_APPEND"),
            (0o4000, "O_NONBLOCK"),
            (0o200000, "O_DIRECTORY"),
            (0o400000, "O_NOFOLLOW"),
            (0o2000000, "O_CLOEXEC"),
            (0o20000000, "O_TMPFILE"),
        ],
    );
    if rest == "0" {
        acc.into()
    } else {
        format!("{acc}|{rest}")
    }
}

fn memfd_flags_text(flags: u32) -> String {
    flag_text(
        flags as u64,
        &[
            (1, "MFD_CLOEXEC"),
            (2, "MFD_ALLOW_SEALING"),
            (4, "MFD_HUGETLB"),
        ],
    )
}

fn clone_ns_flags_text(flags: u64) -> String {
    flag_text(
        flags,
        &[
            (0x0002_0000, "CLONE_NEWNS"),
            (0x0200_0000, "CLONE_NEWCGROUP"),
            (0x0400_0000, "CLONE_NEWUTS"),
            (0x0800_0000, "CLONE_NEWIPC"),
            (0x1000_0000, "CLONE_NEWUSER"),
            (0x2000_0000, "CLONE_NEWPID"),
            (0x4000_0000, "CLONE_NEWNET"),
            (0x80, "CLONE_NEWTIME"),
        ],
    )
}

fn ptrace_request_name(r: i64) -> String {
    let n = match r {
        0 => "PTRACE_TRACEME",
        1 => "PTRACE_PEEKTEXT",
        2 => "PTRACE_PEEKDATA",
        3 => "PTRACE_PEEKUSR",
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSR",
        7 => "PTRACE_CONT",
        8 => "PTRACE_KILL",
        9 => "PTRACE_SINGLESTEP",
        12 => "PTRACE_GETREGS",
        13 => "PTRACE_SETREGS",
        14 => "PTRACE_GETFPREGS",
        15 => "PTRACE_SETFPREGS",
        16 => "PTRACE_ATTACH",
        17 => "PTRACE_DETACH",
        24 => "PTRACE_SYSCALL",
        0x4200 => "PTRACE_SETOPTIONS",
        0x4204 => "PTRACE_SETREGSET",
        0x4206 => "PTRACE_SEIZE",
        0x4207 => "PTRACE_INTERRUPT",
        _ => return r.to_string(),
    };
    n.into()
}

fn bpf_cmd_name(c: i64) -> String {
    let n = match c {
        0 => "BPF_MAP_CREATE",
        1 => "BPF_MAP_LOOKUP_ELEM",
        2 => "BPF_MAP_UPDATE_ELEM",
        3 => "BPF_MAP_DELETE_ELEM",
        4 => "BPF_MAP_GET_NEXT_KEY",
        5 => "BPF_PROG_LOAD",
        8 => "BPF_PROG_ATTACH",
        9 => "BPF_PROG_DETACH",
        17 => "BPF_RAW_TRACEPOINT_OPEN",
        28 => "BPF_LINK_CREATE",
        _ => return c.to_string(),
    };
    n.into()
}

const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn cap_names(bits: u64) -> String {
    CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1u64 << i) != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Docker's default capability set for a container's root.
const DOCKER_DEFAULT_CAPS: [usize; 14] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

/// Approximate effective capabilities, Falco's `thread.cap_effective` form.
fn effective_caps(ev: &Event) -> Option<String> {
    if let Payload::Capset { effective, .. } = &ev.payload {
        return Some(cap_names(*effective));
    }
    let p = ev.process.as_deref()?;
    let all = (1u64 << CAP_NAMES.len()) - 1;
    let bits = match ev.container.as_ref() {
        Workload::Host { .. } => {
            if p.euid == 0 {
                all
            } else {
                0
            }
        }
        Workload::Container(c) => {
            if p.euid != 0 {
                0
            } else if c.privileged {
                all
            } else {
                let mut bits = DOCKER_DEFAULT_CAPS
                    .iter()
                    .fold(0u64, |acc, i| acc | (1 << i));
                for cap in &c.cap_add {
                    let up = cap.to_ascii_uppercase();
                    if up == "ALL" {
                        bits = all;
                        continue;
                    }
                    let full = if up.starts_with("CAP_") {
                        up
                    } else {
                        format!("CAP_{up}")
                    };
                    if let Some(i) = CAP_NAMES.iter().position(|n| *n == full) {
                        bits |= 1 << i;
                    }
                }
                bits
            }
        }
    };
    Some(cap_names(bits))
}

/// Linux errno names, Falco's `evt.res` form for failed calls.
pub fn errno_name(e: i64) -> String {
    const NAMES: [&str; 134] = [
        "SUCCESS",
        "EPERM",
        "ENOENT",
        "ESRCH",
        "EINTR",
        "EIO",
        "ENXIO",
        "E2BIG",
        "ENOEXEC",
        "EBADF",
        "ECHILD",
        "EAGAIN",
        "ENOMEM",
        "EACCES",
        "EFAULT",
        "ENOTBLK",
        "EBUSY",
        "EEXIST",
        "EXDEV",
        "ENODEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ENFILE",
        "EMFILE",
        "ENOTTY",
        "ETXTBSY",
        "EFBIG",
        "ENOSPC",
        "ESPIPE",
        "EROFS",
        "EMLINK",
        "EPIPE",
        "EDOM",
        "ERANGE",
        "EDEADLK",
        "ENAMETOOLONG",
        "ENOLCK",
        "ENOSYS",
        "ENOTEMPTY",
        "ELOOP",
        "E41",
        "ENOMSG",
        "EIDRM",
        "ECHRNG",
        "EL2NSYNC",
        "EL3HLT",
        "EL3RST",
        "ELNRNG",
        "EUNATCH",
        "ENOCSI",
        "EL2HLT",
        "EBADE",
        "EBADR",
        "EXFULL",
        "ENOANO",
        "EBADRQC",
        "EBADSLT",
        "E58",
        "EBFONT",
        "ENOSTR",
        "ENODATA",
        "ETIME",
        "ENOSR",
        "ENONET",
        "ENOPKG",
        "EREMOTE",
        "ENOLINK",
        "EADV",
        "ESRMNT",
        "ECOMM",
        "EPROTO",
        "EMULTIHOP",
        "EDOTDOT",
        "EBADMSG",
        "EOVERFLOW",
        "ENOTUNIQ",
        "EBADFD",
        "EREMCHG",
        "ELIBACC",
        "ELIBBAD",
        "ELIBSCN",
        "ELIBMAX",
        "ELIBEXEC",
        "EILSEQ",
        "ERESTART",
        "ESTRPIPE",
        "EUSERS",
        "ENOTSOCK",
        "EDESTADDRREQ",
        "EMSGSIZE",
        "EPROTOTYPE",
        "ENOPROTOOPT",
        "EPROTONOSUPPORT",
        "ESOCKTNOSUPPORT",
        "EOPNOTSUPP",
        "EPFNOSUPPORT",
        "EAFNOSUPPORT",
        "EADDRINUSE",
        "EADDRNOTAVAIL",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "ECONNABORTED",
        "ECONNRESET",
        "ENOBUFS",
        "EISCONN",
        "ENOTCONN",
        "ESHUTDOWN",
        "ETOOMANYREFS",
        "ETIMEDOUT",
        "ECONNREFUSED",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "EALREADY",
        "EINPROGRESS",
        "ESTALE",
        "EUCLEAN",
        "ENOTNAM",
        "ENAVAIL",
        "EISNAM",
        "EREMOTEIO",
        "EDQUOT",
        "ENOMEDIUM",
        "EMEDIUMTYPE",
        "ECANCELED",
        "ENOKEY",
        "EKEYEXPIRED",
        "EKEYREVOKED",
        "EKEYREJECTED",
        "EOWNERDEAD",
        "ENOTRECOVERABLE",
        "ERFKILL",
        "EHWPOISON",
    ];
    usize::try_from(e)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("E{e}"))
}

/// `HH:MM:SS.nnnnnnnnn` (Falco's evt.time) or an ISO 8601 UTC timestamp.
pub fn format_time(ts_ns: u64, iso: bool) -> String {
    let secs = ts_ns / 1_000_000_000;
    let nanos = ts_ns % 1_000_000_000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    if !iso {
        return format!("{h:02}:{m:02}:{s:02}.{nanos:09}");
    }
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{nanos:09}Z")
}

fn group_name(gid: u32) -> Option<&'static str> {
    static GROUPS: OnceLock<HashMap<u32, String>> = OnceLock::new();
    if gid == 0 {
        return Some("root");
    }
    GROUPS
        .get_or_init(|| {
            let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
            text.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
                })
                .collect()
        })
        .get(&gid)
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths_are_exactly_those_normalising_to_themselves() {
        for p in [
            "/", "/etc", "/etc/", "//etc", "/etc//x", "/./x", "/x/.", "/x/..", "/x/../y", "/x/.y",
            "/x/..y", "/x/y.", "etc", "", ".", "/a/b/c", "/a/b/c/", "/.", "/..",
        ] {
            assert_eq!(is_clean_absolute(p), normalize_path(p, "/") == p, "{p:?}");
        }
    }

    #[test]
    fn paths_normalise_against_cwd() {
        assert_eq!(
            normalize_path("../../etc/shadow", "/var/www/html"),
            "/var/etc/shadow"
        );
        assert_eq!(normalize_path("/a/./b//c/..", "/"), "/a/b");
        assert_eq!(normalize_path("x", "/"), "/x");
        assert_eq!(dirname("/etc/shadow"), "/etc");
        assert_eq!(dirname("/x"), "/");
        assert_eq!(basename("/etc/shadow"), "shadow");
    }

    #[test]
    fn time_formats() {
        assert_eq!(
            format_time(1_700_000_000_123_456_789, true),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            format_time(1_700_000_000_123_456_789, false),
            "22:13:20.123456789"
        );
    }

    #[test]
    fn errno_and_flags_render_like_falco() {
        assert_eq!(errno_name(2), "ENOENT");
        assert_eq!(errno_name(115), "EINPROGRESS");
        assert_eq!(
            open_flags_text(0o1 | 0o100 | 0o2000000),
            "O_WRONLY|O_CREAT|O_CLOEXEC"
        );
        assert_eq!(ptrace_request_name(16), "PTRACE_ATTACH");
        assert!(cap_names(1 << 21).contains("CAP_SYS_ADMIN"));
    }

    #[test]
    fn unknown_and_unsupported_fields_are_errors() {
        let f = |n: &str| FieldRef {
            name: n.into(),
            arg: None,
            transformer: None,
            pos: 0,
        };
        assert!(matches!(
            resolve(&f("proc.nope")),
            Err(FieldError::Unknown(_))
        ));
        assert!(matches!(
            resolve(&f("proc.aenv")),
            Err(FieldError::Unsupported(..))
        ));
        assert!(resolve(&f("proc.name")).is_ok());
        let bad = FieldRef {
            name: "proc.aname".into(),
            arg: Some("x".into()),
            transformer: None,
            pos: 0,
        };
        assert!(matches!(resolve(&bad), Err(FieldError::BadArgument { .. })));
    }
}
