//! Compiles a condition into a tree of closures, once, at load time.
//!
//! Macros are inlined and lists expanded while compiling; literals are parsed into the
//! field's type (a bad literal is a load error); `in` lists become hash sets, `pmatch`
//! a set of path prefixes, and runs of `contains`/`startswith` alternatives on one
//! field inside an `or` become one Aho-Corasick automaton. The event kinds a rule can
//! match are derived from its `evt.type` checks for the per-kind index.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind, StartKind};
use rampart_event::{Event, EventKind, Payload};

use crate::ast::{Check, Expr, FieldRef, Literal, Op, Operand};
use crate::fields::{self, Availability, EvalCtx, FieldType, Getter};
use crate::hostnames::{HostName, HostRegistry};
use crate::kinds::static_aliases;
pub use crate::kinds::{KindSet, Predicate};
use crate::plan::{self, Gate, Leaf, Node, Prog};
use crate::source::{Pos, Source};

/// FxHash-style hasher for the sets built from rule literals: keys are fixed at load
/// time, so hash flooding does not apply, and SipHash cost dominated lookups.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // Byte by byte: a variable-length copy here was a libc memcpy call.
            let mut w = 0u64;
            for (i, &x) in rest.iter().enumerate() {
                w |= u64::from(x) << (8 * i);
            }
            self.add(w ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Final avalanche (murmur3 fmix64): the multiply leaves low bits weak, and
        // hashbrown picks buckets from the low bits.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

pub(crate) type FastSet<T> = HashSet<T, BuildHasherDefault<FastHasher>>;
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A compile error located in a source text.
#[derive(Debug, Clone)]
pub struct CompileError {
    pub file: Arc<str>,
    pub pos: Pos,
    pub message: String,
}

/// A parsed macro with its source, for inlining.
pub struct MacroDef {
    pub ast: Result<Expr, String>,
    pub source: Arc<Source>,
}

/// What compiling needs: lists (already expanded) and macros by name.
pub struct Env<'a> {
    pub lists: &'a HashMap<String, Vec<String>>,
    pub macros: &'a HashMap<String, MacroDef>,
    /// Host names `fd.*ip.name` tests mention (resolved after compiling).
    pub(crate) hosts: &'a HostRegistry,
}

/// Output of a compilation besides the predicate.
#[derive(Default)]
pub struct CompileNotes {
    /// Fields used that have no data (or approximate data), with the reason.
    pub field_notes: Vec<(String, Availability)>,
}

/// A compiled rule condition: one evaluation plan per event kind.
pub struct Compiled {
    /// Indexed by `EventKind as usize`; `None` where the rule cannot match the kind.
    pub(crate) progs: Box<[Option<Prog>]>,
    /// Kinds the rule can match.
    pub kinds: KindSet,
    /// Per kind (as `progs`): `proc.name`/`proc.exe` values the rule needs there,
    /// when its plan implies a set (the rule index's second level).
    pub(crate) gates: Box<[Option<Gate>]>,
}

impl Compiled {
    /// Evaluates the plan for the event's kind.
    pub fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        self.progs
            .get(ctx.ev.kind() as usize)
            .and_then(Option::as_ref)
            .is_some_and(|p| p.eval(ctx))
    }
}

const MAX_MACRO_DEPTH: usize = 64;

/// Tests one condition may expand to (macros inlined): a macro used twice in each of
/// a chain of macros doubles at each level, and must fail fast, not run for ever.
pub const MAX_CONDITION_NODES: usize = 100_000;

struct Compiler<'a> {
    env: &'a Env<'a>,
    stack: Vec<String>,
    notes: CompileNotes,
    nodes: usize,
}

/// Compiles a parsed condition whose offsets refer to `source`.
pub fn compile(
    expr: &Expr,
    source: &Arc<Source>,
    env: &Env<'_>,
) -> Result<(Compiled, CompileNotes), CompileError> {
    let mut c = Compiler {
        env,
        stack: Vec::new(),
        notes: CompileNotes::default(),
        nodes: 0,
    };
    let node = c.expr(expr, source)?;
    let mut kinds = KindSet::NONE;
    let mut progs = Vec::with_capacity(EventKind::ALL.len());
    let mut gates = Vec::with_capacity(EventKind::ALL.len());
    for k in EventKind::ALL {
        match plan::specialize(&node, k) {
            Prog::Const(false) => {
                progs.push(None);
                gates.push(None);
            }
            p => {
                kinds.0 |= KindSet::bit(k);
                gates.push(p.gate());
                progs.push(Some(p));
            }
        }
    }
    Ok((
        Compiled {
            progs: progs.into_boxed_slice(),
            kinds,
            gates: gates.into_boxed_slice(),
        },
        c.notes,
    ))
}

/// Where an expression starts, for errors about it as a whole.
fn expr_pos(e: &Expr) -> usize {
    match e {
        Expr::And(items) | Expr::Or(items) => items.first().map(expr_pos).unwrap_or(0),
        Expr::Not(inner) => expr_pos(inner),
        Expr::Check(c) => c.field.pos,
        Expr::Macro { pos, .. } => *pos,
    }
}

fn err(source: &Source, offset: usize, message: impl Into<String>) -> CompileError {
    CompileError {
        file: source.file.clone(),
        pos: source.position(offset),
        message: message.into(),
    }
}

impl<'a> Compiler<'a> {
    fn expr(&mut self, e: &Expr, src: &Arc<Source>) -> Result<Node, CompileError> {
        self.nodes += 1;
        if self.nodes > MAX_CONDITION_NODES {
            return Err(err(
                src,
                expr_pos(e),
                format!(
                    "condition too large: more than {MAX_CONDITION_NODES} tests once its macros are expanded"
                ),
            ));
        }
        match e {
            Expr::And(items) => Ok(Node::And(
                items
                    .iter()
                    .map(|i| self.expr(i, src))
                    .collect::<Result<_, _>>()?,
            )),
            Expr::Or(items) => self.or(items, src),
            Expr::Not(inner) => Ok(Node::Not(Box::new(self.expr(inner, src)?))),
            Expr::Macro { name, pos } => {
                let Some(m) = self.env.macros.get(name) else {
                    if self.env.lists.contains_key(name) {
                        return Err(err(
                            src,
                            *pos,
                            format!("`{name}` is a list, not a macro: use it after `in`"),
                        ));
                    }
                    return Err(err(src, *pos, format!("undefined macro `{name}`")));
                };
                if self.stack.iter().any(|n| n == name) {
                    return Err(err(
                        src,
                        *pos,
                        format!(
                            "macro `{name}` refers to itself ({} -> {name})",
                            self.stack.join(" -> ")
                        ),
                    ));
                }
                if self.stack.len() >= MAX_MACRO_DEPTH {
                    return Err(err(
                        src,
                        *pos,
                        format!("macros nested deeper than {MAX_MACRO_DEPTH}"),
                    ));
                }
                let ast = match &m.ast {
                    Ok(a) => a,
                    Err(e) => {
                        return Err(err(src, *pos, format!("macro `{name}` does not load: {e}")));
                    }
                };
                self.stack.push(name.clone());
                let r = self.expr(ast, &m.source.clone());
                self.stack.pop();
                // A macro's own errors point into the macro; the size limit is the
                // rule's, reported where the rule uses the macro.
                match r {
                    Err(e) if self.nodes > MAX_CONDITION_NODES && self.stack.is_empty() => {
                        Err(CompileError {
                            message: e.message,
                            ..err(src, *pos, "")
                        })
                    }
                    r => r,
                }
            }
            Expr::Check(c) => self.check(c, src),
        }
    }

    /// `or`, fusing runs of same-field string alternatives into one matcher.
    fn or(&mut self, items: &[Expr], src: &Arc<Source>) -> Result<Node, CompileError> {
        let mut out: Vec<Node> = Vec::new();
        // String checks on one field are fused: the field is read once and one
        // combined matcher (set, automata, list) decides.
        let mut groups: Vec<(FieldRef, Getter, Vec<StrMatcher>)> = Vec::new();
        for i in items {
            if let Expr::Check(c) = i {
                if let Some((getter, m)) = self.string_matcher(c, src)? {
                    let key = c.field.to_string();
                    match groups.iter_mut().find(|g| g.0.to_string() == key) {
                        Some(g) => g.2.push(m),
                        None => groups.push((c.field.clone(), getter, vec![m])),
                    }
                    continue;
                }
            }
            out.push(self.expr(i, src)?);
        }
        for (field, getter, matchers) in groups {
            // Each alternative by its most selective gate: a path key, else a
            // literal the index scans for.
            let path_gate = matchers
                .iter()
                .map(|m| {
                    m.path_gate(&field).or_else(|| {
                        m.op_values()
                            .and_then(|(op, v)| plan::substr_gate(&field, op, &v))
                    })
                })
                .collect::<Option<Vec<Gate>>>()
                .map(|gs| Gate(gs.into_iter().flat_map(|g| g.0).collect()));
            let m = StrMatcher::combine(matchers);
            let cost = plan::field_cost(&field, &getter) + m.cost();
            let gate = plan::gate_field(&field)
                .and_then(|gf| m.set_values().map(|vals| Gate(vec![(gf, vals.into())])));
            let mut leaf = Leaf::new(
                apply_str(getter, m),
                cost,
                0.1,
                plan::field_static_kinds(&field),
            );
            leaf.gate = gate.or(path_gate);
            out.push(Node::Leaf(Arc::new(leaf)));
        }
        if out.len() == 1 {
            if let Some(n) = out.pop() {
                return Ok(n);
            }
        }
        Ok(Node::Or(out))
    }

    /// A plain string check (`field op literal(s)`) as (field key, getter, matcher);
    /// `None` for anything else (other types, `evt.type`, transformers, `val()`).
    fn string_matcher(
        &mut self,
        c: &Check,
        src: &Arc<Source>,
    ) -> Result<Option<(Getter, StrMatcher)>, CompileError> {
        if c.field.transformer.is_some()
            || matches!(c.field.name.as_str(), "evt.type" | "syscall.type")
            || hostname_base(&c.field.name).is_some()
            || matches!(c.op, Op::Exists | Op::Lt | Op::Le | Op::Gt | Op::Ge)
        {
            return Ok(None);
        }
        let values = match &c.value {
            Some(Operand::Value(l)) if c.op.takes_list() => {
                self.list_items(std::slice::from_ref(l))
            }
            Some(Operand::Value(l)) => vec![(l.text.clone(), l.pos)],
            Some(Operand::List(items)) if c.op.takes_list() => self.list_items(items),
            _ => return Ok(None),
        };
        match fields::resolve(&c.field) {
            Ok(r) if matches!(r.getter, Getter::Str(_) | Getter::StrAny(_)) => {}
            _ => return Ok(None),
        }
        // Through the normal path for notes and validation.
        let getter = self.resolve_field(&c.field, src)?;
        let m = build_matcher(c.op, &values, src, &c.field)?;
        Ok(Some((getter, m)))
    }

    fn resolve_field(&mut self, f: &FieldRef, src: &Source) -> Result<Getter, CompileError> {
        let r = fields::resolve(f).map_err(|e| err(src, f.pos, e.to_string()))?;
        if r.availability != Availability::Provided {
            let name = f.to_string();
            if !self.notes.field_notes.iter().any(|(n, _)| *n == name) {
                self.notes.field_notes.push((name, r.availability.clone()));
            }
        }
        let getter = match f.transformer.as_deref() {
            None => r.getter,
            Some(t @ ("tolower" | "toupper")) => {
                let (Getter::Str(inner) | Getter::EvtType(inner)) = r.getter else {
                    return Err(err(
                        src,
                        f.pos,
                        format!("`{t}` applies to string fields, `{}` is not one", f.name),
                    ));
                };
                let upper = t == "toupper";
                Getter::Str(Arc::new(move |ctx| {
                    inner(ctx).map(|v| {
                        std::borrow::Cow::Owned(if upper {
                            v.to_uppercase()
                        } else {
                            v.to_lowercase()
                        })
                    })
                }))
            }
            Some(t) => {
                return Err(err(
                    src,
                    f.pos,
                    format!("field transformer `{t}` is not supported"),
                ))
            }
        };
        Ok(getter)
    }

    /// Literals of a list operand, with list names expanded.
    fn list_items(&self, items: &[Literal]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for l in items {
            match (!l.quoted).then(|| self.env.lists.get(&l.text)).flatten() {
                Some(list) => out.extend(list.iter().map(|i| (i.clone(), l.pos))),
                None => out.push((l.text.clone(), l.pos)),
            }
        }
        out
    }

    /// One comparison as a leaf, with what the planner needs to know about it.
    fn check(&mut self, c: &Check, src: &Arc<Source>) -> Result<Node, CompileError> {
        let (eval, may_match) = self.check_pred(c, src)?;
        let mut static_kinds = plan::field_static_kinds(&c.field);
        let (mut cost, p_true) = match fields::resolve(&c.field) {
            Ok(r) => (
                plan::field_cost(&c.field, &r.getter),
                plan::op_p_true(c.op, r.getter.field_type()),
            ),
            Err(_) => (10, 0.5),
        };
        if let Some(Operand::Field(other)) = &c.value {
            static_kinds.0 &= plan::field_static_kinds(other).0;
            cost += 20;
        }
        let n_values = match &c.value {
            Some(Operand::List(items)) => items.len(),
            _ => 1,
        };
        cost += plan::op_cost(c.op, n_values);
        let mut leaf = Leaf::new(eval, cost, p_true, static_kinds);
        leaf.may_match = may_match;
        if let (Some(gf), Op::Eq | Op::In | Op::Intersects) = (plan::gate_field(&c.field), c.op) {
            let values: Option<Vec<String>> = match &c.value {
                Some(Operand::Value(l)) if c.op == Op::Eq => Some(vec![l.text.clone()]),
                Some(Operand::Value(l)) => Some(
                    self.list_items(std::slice::from_ref(l))
                        .into_iter()
                        .map(|(v, _)| v)
                        .collect(),
                ),
                Some(Operand::List(items)) => {
                    Some(self.list_items(items).into_iter().map(|(v, _)| v).collect())
                }
                _ => None,
            };
            leaf.gate = values.map(|v| Gate(vec![(gf, v.into())]));
        } else if let Some(Operand::Value(_) | Operand::List(_)) = &c.value {
            let values: Vec<String> = match &c.value {
                Some(Operand::Value(l)) if c.op.takes_list() => self
                    .list_items(std::slice::from_ref(l))
                    .into_iter()
                    .map(|(v, _)| v)
                    .collect(),
                Some(Operand::Value(l)) => vec![l.text.clone()],
                Some(Operand::List(items)) => {
                    self.list_items(items).into_iter().map(|(v, _)| v).collect()
                }
                _ => Vec::new(),
            };
            leaf.gate = plan::path_gate(&c.field, c.op, &values)
                .or_else(|| plan::substr_gate(&c.field, c.op, &values));
        }
        Ok(Node::Leaf(Arc::new(leaf)))
    }

    /// The predicate of one comparison and the kinds on which it can hold.
    fn check_pred(
        &mut self,
        c: &Check,
        src: &Arc<Source>,
    ) -> Result<(Predicate, KindSet), CompileError> {
        let getter = self.resolve_field(&c.field, src)?;
        if let Some(base) = hostname_base(&c.field.name) {
            return self.hostname_check(c, base, src);
        }
        let ty = getter.field_type();
        let bad_op = || {
            err(
                src,
                c.op_pos,
                format!(
                    "operator `{}` does not apply to `{}` ({} field)",
                    c.op.as_str(),
                    c.field,
                    ty.name()
                ),
            )
        };
        if c.op == Op::Exists {
            return Ok((exists(getter), KindSet::ALL));
        }
        let operand = c
            .value
            .as_ref()
            .ok_or_else(|| err(src, c.op_pos, "missing value"))?;
        if let Operand::Field(other) = operand {
            let og = self.resolve_field(other, src)?;
            return Ok((
                compare_fields(getter, og, c.op).ok_or_else(bad_op)?,
                KindSet::ALL,
            ));
        }
        let values: Vec<(String, usize)> = match operand {
            Operand::Value(l) => {
                if c.op.takes_list() {
                    self.list_items(std::slice::from_ref(l))
                } else {
                    vec![(l.text.clone(), l.pos)]
                }
            }
            Operand::List(items) => {
                if !c.op.takes_list() {
                    return Err(err(
                        src,
                        c.op_pos,
                        format!("operator `{}` takes one value, not a list", c.op.as_str()),
                    ));
                }
                self.list_items(items)
            }
            Operand::Field(_) => unreachable_field(),
        };

        if let Getter::EvtType(get) = &getter {
            if matches!(c.op, Op::Eq | Op::Ne | Op::In | Op::Intersects) {
                return evt_type_check(c.op, &values, src);
            }
            return Ok((
                string_check(Getter::Str(get.clone()), c.op, &values, src, &c.field)?,
                KindSet::ALL,
            ));
        }
        let op_fits = match ty {
            FieldType::Str => !matches!(c.op, Op::Lt | Op::Le | Op::Gt | Op::Ge),
            FieldType::Int => int_op(c.op).is_some() || matches!(c.op, Op::In | Op::Intersects),
            FieldType::Bool | FieldType::Ip => {
                matches!(c.op, Op::Eq | Op::Ne | Op::In | Op::Intersects)
            }
        };
        if !op_fits {
            return Err(bad_op());
        }
        let pred = match ty {
            FieldType::Str => string_check(getter, c.op, &values, src, &c.field)?,
            FieldType::Int => {
                let nums = values
                    .iter()
                    .map(|(v, pos)| {
                        parse_int(v).ok_or_else(|| {
                            err(
                                src,
                                *pos,
                                format!(
                                    "`{}` is a number field: expected a number, found `{v}`",
                                    c.field
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<i64>, _>>()?;
                let Getter::Int(get) = getter else {
                    return Err(bad_op());
                };
                int_check(get, c.op, nums).ok_or_else(bad_op)?
            }
            FieldType::Bool => {
                let bools = values
                    .iter()
                    .map(|(v, pos)| match v.as_str() {
                        "true" => Ok(true),
                        "false" => Ok(false),
                        _ => Err(err(
                            src,
                            *pos,
                            format!(
                                "`{}` is a boolean field: expected true or false, found `{v}`",
                                c.field
                            ),
                        )),
                    })
                    .collect::<Result<Vec<bool>, _>>()?;
                let Getter::Bool(get) = getter else {
                    return Err(bad_op());
                };
                let p: Predicate = match c.op {
                    Op::Eq | Op::In | Op::Intersects => {
                        Box::new(move |ctx| get(ctx).is_some_and(|v| bools.contains(&v)))
                    }
                    Op::Ne => {
                        let want = bools.first().copied().unwrap_or(false);
                        Box::new(move |ctx| get(ctx).is_some_and(|v| v != want))
                    }
                    _ => return Err(bad_op()),
                };
                p
            }
            FieldType::Ip => {
                let nets = values
                    .iter()
                    .map(|(v, pos)| {
                        parse_net(v).ok_or_else(|| {
                            err(
                                src,
                                *pos,
                                format!(
                                    "`{}` is an IP field: expected an address or CIDR, found `{v}`",
                                    c.field
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<IpNet>, _>>()?;
                let Getter::Ip(get) = getter else {
                    return Err(bad_op());
                };
                let any = move |ctx: &EvalCtx<'_>| {
                    get(ctx)
                        .into_iter()
                        .flatten()
                        .any(|ip| nets.iter().any(|n| n.contains(ip)))
                };
                let p: Predicate = match c.op {
                    Op::Eq | Op::In | Op::Intersects => Box::new(any),
                    // Falco: `!=` is the negation of `=` on an extracted value.
                    Op::Ne => Box::new(move |ctx| !any(ctx)),
                    _ => return Err(bad_op()),
                };
                p
            }
        };
        Ok((pred, KindSet::ALL))
    }
}

impl Compiler<'_> {
    /// `fd.sip.name = NAME` and its kin: the address field against the addresses the
    /// names resolve to (see [`crate::hostnames`]).
    fn hostname_check(
        &mut self,
        c: &Check,
        base: &str,
        src: &Arc<Source>,
    ) -> Result<(Predicate, KindSet), CompileError> {
        let base_ref = FieldRef {
            name: base.to_string(),
            arg: None,
            transformer: None,
            pos: c.field.pos,
        };
        let Getter::Ip(get) = self.resolve_field(&base_ref, src)? else {
            return Err(err(
                src,
                c.field.pos,
                format!("`{base}` is not an address field"),
            ));
        };
        let values = match (c.op, &c.value) {
            (Op::Exists, _) => return Ok((Box::new(move |ctx| get(ctx)[0].is_some()), KindSet::ALL)),
            (Op::Eq | Op::Ne, Some(Operand::Value(l))) => vec![(l.text.clone(), l.pos)],
            (Op::In | Op::Intersects, Some(Operand::Value(l))) => {
                self.list_items(std::slice::from_ref(l))
            }
            (Op::In | Op::Intersects, Some(Operand::List(items))) => self.list_items(items),
            _ => {
                return Err(err(
                    src,
                    c.op_pos,
                    format!(
                        "`{}` is compared by resolving host names: use =, !=, in or exists, not `{}` with this operand",
                        c.field,
                        c.op.as_str()
                    ),
                ))
            }
        };
        let names: Vec<Arc<HostName>> = values
            .iter()
            .map(|(v, _)| self.env.hosts.register(v))
            .collect();
        let any = move |ctx: &EvalCtx<'_>| {
            get(ctx)
                .into_iter()
                .flatten()
                .any(|ip| names.iter().any(|n| n.contains(ip)))
        };
        Ok(match c.op {
            // As for address fields: `!=` is the negation of `=`.
            Op::Ne => (Box::new(move |ctx| !any(ctx)), KindSet::ALL),
            _ => (Box::new(any), KindSet::ALL),
        })
    }
}

/// The address field behind a host-name field (`fd.sip.name` -> `fd.sip`).
fn hostname_base(name: &str) -> Option<&'static str> {
    Some(match name {
        "fd.sip.name" => "fd.sip",
        "fd.cip.name" => "fd.cip",
        "fd.lip.name" => "fd.lip",
        "fd.rip.name" => "fd.rip",
        _ => return None,
    })
}

fn unreachable_field() -> Vec<(String, usize)> {
    Vec::new()
}

fn exists(getter: Getter) -> Predicate {
    match getter {
        Getter::Str(g) | Getter::EvtType(g) => Box::new(move |ctx| g(ctx).is_some()),
        Getter::StrAny(g) => Box::new(move |ctx| g(ctx, &mut |_| true)),
        Getter::Int(g) => Box::new(move |ctx| g(ctx).is_some()),
        Getter::Bool(g) => Box::new(move |ctx| g(ctx).is_some()),
        Getter::Ip(g) => Box::new(move |ctx| g(ctx)[0].is_some()),
    }
}

fn compare_fields(a: Getter, b: Getter, op: Op) -> Option<Predicate> {
    if let (Getter::Int(x), Getter::Int(y)) = (&a, &b) {
        let (x, y) = (x.clone(), y.clone());
        let cmp = int_op(op)?;
        return Some(Box::new(move |ctx| match (x(ctx), y(ctx)) {
            (Some(l), Some(r)) => cmp(l, r),
            _ => false,
        }));
    }
    let render = |g: Getter| {
        move |ctx: &EvalCtx<'_>| {
            g.render(ctx).map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
        }
    };
    let (x, y) = (render(a), render(b));
    let f: fn(&str, &str) -> bool = match op {
        Op::Eq => |l, r| l == r,
        Op::Ne => |l, r| l != r,
        Op::Contains => |l, r| l.contains(r),
        Op::StartsWith => |l, r| l.starts_with(r),
        Op::EndsWith => |l, r| l.ends_with(r),
        _ => return None,
    };
    Some(Box::new(move |ctx| match (x(ctx), y(ctx)) {
        (Some(l), Some(r)) => f(&l, &r),
        _ => false,
    }))
}

pub(crate) fn parse_int(v: &str) -> Option<i64> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        return i64::from_str_radix(h, 16).ok();
    }
    v.parse::<i64>().ok().or_else(|| {
        v.parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0)
            .map(|f| f as i64)
    })
}

fn int_op(op: Op) -> Option<fn(i64, i64) -> bool> {
    Some(match op {
        Op::Eq => |a, b| a == b,
        Op::Ne => |a, b| a != b,
        Op::Lt => |a, b| a < b,
        Op::Le => |a, b| a <= b,
        Op::Gt => |a, b| a > b,
        Op::Ge => |a, b| a >= b,
        _ => return None,
    })
}

fn int_check(get: fields::IntFn, op: Op, nums: Vec<i64>) -> Option<Predicate> {
    if matches!(op, Op::In | Op::Intersects) {
        let set: FastSet<i64> = nums.into_iter().collect();
        return Some(Box::new(move |ctx| {
            get(ctx).is_some_and(|v| set.contains(&v))
        }));
    }
    let cmp = int_op(op)?;
    let want = *nums.first()?;
    Some(Box::new(move |ctx| get(ctx).is_some_and(|v| cmp(v, want))))
}

/// An address or network from a literal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix.min(32))
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                if let Some(a4) = a.to_ipv4_mapped() {
                    return self.prefix >= 96
                        && n.to_ipv4_mapped().is_some_and(|n4| {
                            IpNet {
                                addr: IpAddr::V4(n4),
                                prefix: self.prefix - 96,
                            }
                            .contains(IpAddr::V4(a4))
                        });
                }
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix.min(128))
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|a4| self.contains(IpAddr::V4(a4))),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

pub(crate) fn parse_net(v: &str) -> Option<IpNet> {
    let (a, p) = match v.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (v, None),
    };
    let addr: IpAddr = a.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
        None => max,
    };
    Some(IpNet { addr, prefix })
}

fn string_check(
    getter: Getter,
    op: Op,
    values: &[(String, usize)],
    src: &Source,
    field: &FieldRef,
) -> Result<Predicate, CompileError> {
    Ok(apply_str(getter, build_matcher(op, values, src, field)?))
}

/// A compiled test on one string value.
pub(crate) enum StrMatcher {
    Eq(Box<str>),
    Ne(Box<str>),
    Set(FastSet<String>),
    Pmatch {
        set: FastSet<String>,
        root: bool,
    },
    Contains(Box<str>),
    /// Any of several substrings (or one, case-insensitively / as bytes).
    Automaton(AhoCorasick),
    /// One case-insensitive substring (merged with its siblings by `combine`).
    IContains(Box<str>, AhoCorasick),
    StartsWith(Box<str>),
    /// Any of several prefixes.
    Prefixes(AhoCorasick),
    BStartsWith(Box<[u8]>),
    EndsWith(Box<str>),
    Glob(Box<[u8]>),
    IGlob(Box<[u8]>),
    Regex(regex::Regex),
    Any(Box<[StrMatcher]>),
}

impl StrMatcher {
    #[inline]
    fn is_match(&self, v: &str) -> bool {
        match self {
            StrMatcher::Eq(s) => v == &**s,
            StrMatcher::Ne(s) => v != &**s,
            StrMatcher::Set(set) => set.contains(v),
            StrMatcher::Pmatch { set, root } => {
                *root && v.starts_with('/') || path_prefixes(v).any(|p| set.contains(p))
            }
            StrMatcher::Contains(s) => v.contains(&**s),
            StrMatcher::Automaton(ac) | StrMatcher::IContains(_, ac) => ac.is_match(v),
            StrMatcher::StartsWith(s) => v.starts_with(&**s),
            StrMatcher::Prefixes(ac) => ac
                .find(aho_corasick::Input::new(v).anchored(aho_corasick::Anchored::Yes))
                .is_some(),
            StrMatcher::BStartsWith(b) => v.as_bytes().starts_with(b),
            StrMatcher::EndsWith(s) => v.ends_with(&**s),
            StrMatcher::Glob(p) => glob_match(p, v.as_bytes()),
            StrMatcher::IGlob(p) => glob_match(p, v.to_lowercase().as_bytes()),
            StrMatcher::Regex(re) => re.is_match(v),
            StrMatcher::Any(ms) => ms.iter().any(|m| m.is_match(v)),
        }
    }

    /// Rough evaluation cost, for ordering operands.
    pub(crate) fn cost(&self) -> u32 {
        match self {
            StrMatcher::Eq(_) | StrMatcher::Ne(_) => 1,
            StrMatcher::StartsWith(_) | StrMatcher::EndsWith(_) | StrMatcher::BStartsWith(_) => 2,
            StrMatcher::Set(_) => 4,
            StrMatcher::Contains(_) => 8,
            StrMatcher::Prefixes(_) => 10,
            StrMatcher::Pmatch { .. } | StrMatcher::Glob(_) => 15,
            StrMatcher::Automaton(_) | StrMatcher::IContains(..) => 20,
            StrMatcher::IGlob(_) => 40,
            StrMatcher::Regex(_) => 60,
            StrMatcher::Any(ms) => ms.iter().map(StrMatcher::cost).sum(),
        }
    }

    /// The operator and values of a matcher before `combine`, for gates.
    fn op_values(&self) -> Option<(Op, Vec<String>)> {
        Some(match self {
            StrMatcher::Eq(s) => (Op::Eq, vec![s.to_string()]),
            StrMatcher::Set(set) => (Op::In, set.iter().cloned().collect()),
            StrMatcher::Contains(s) => (Op::Contains, vec![s.to_string()]),
            StrMatcher::IContains(s, _) => (Op::IContains, vec![s.to_string()]),
            StrMatcher::StartsWith(s) => (Op::StartsWith, vec![s.to_string()]),
            StrMatcher::EndsWith(s) => (Op::EndsWith, vec![s.to_string()]),
            StrMatcher::Glob(p) => (Op::Glob, vec![String::from_utf8_lossy(p).into_owned()]),
            StrMatcher::IGlob(p) => (Op::IGlob, vec![String::from_utf8_lossy(p).into_owned()]),
            StrMatcher::Pmatch { root: false, set } => (Op::Pmatch, set.iter().cloned().collect()),
            _ => return None,
        })
    }

    /// The path gate this matcher (before `combine`) implies on `field`.
    fn path_gate(&self, field: &FieldRef) -> Option<Gate> {
        let (op, values): (Op, Vec<String>) = match self {
            StrMatcher::Eq(s) => (Op::Eq, vec![s.to_string()]),
            StrMatcher::Set(set) => (Op::In, set.iter().cloned().collect()),
            StrMatcher::StartsWith(s) => (Op::StartsWith, vec![s.to_string()]),
            StrMatcher::Glob(p) => (Op::Glob, vec![String::from_utf8_lossy(p).into_owned()]),
            StrMatcher::Pmatch { root: false, set } => (Op::Pmatch, set.iter().cloned().collect()),
            _ => return None,
        };
        plan::path_gate(field, op, &values)
    }

    /// The values this matcher accepts, when it is a plain set of them.
    pub(crate) fn set_values(&self) -> Option<Vec<String>> {
        match self {
            StrMatcher::Eq(s) => Some(vec![s.to_string()]),
            StrMatcher::Set(set) => Some(set.iter().cloned().collect()),
            StrMatcher::Any(ms) => {
                let mut all = Vec::new();
                for m in ms.iter() {
                    all.extend(m.set_values()?);
                }
                Some(all)
            }
            _ => None,
        }
    }

    /// Merges alternatives: equalities into one set, substrings and prefixes into
    /// one automaton each, the rest checked in turn.
    fn combine(ms: Vec<StrMatcher>) -> StrMatcher {
        if ms.len() == 1 {
            if let Some(m) = ms.into_iter().next() {
                return m;
            }
            return StrMatcher::Any(Box::new([]));
        }
        let mut set: FastSet<String> = FastSet::default();
        let mut subs: Vec<String> = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        let mut isubs: Vec<(String, AhoCorasick)> = Vec::new();
        let mut rest: Vec<StrMatcher> = Vec::new();
        for m in ms {
            match m {
                StrMatcher::Eq(s) => {
                    set.insert(s.into());
                }
                StrMatcher::Set(s) => set.extend(s),
                StrMatcher::Contains(s) => subs.push(s.into()),
                StrMatcher::StartsWith(s) => prefixes.push(s.into()),
                StrMatcher::IContains(s, ac) => isubs.push((s.into(), ac)),
                other => rest.push(other),
            }
        }
        if !set.is_empty() {
            rest.insert(0, StrMatcher::Set(set));
        }
        match subs.len() {
            0 => {}
            1 => rest.push(StrMatcher::Contains(subs.remove(0).into())),
            _ => match AhoCorasick::new(&subs) {
                Ok(ac) => rest.push(StrMatcher::Automaton(ac)),
                Err(_) => rest.extend(subs.into_iter().map(|s| StrMatcher::Contains(s.into()))),
            },
        }
        if isubs.len() > 1 {
            let pats: Vec<&str> = isubs.iter().map(|(s, _)| s.as_str()).collect();
            match AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .build(&pats)
            {
                Ok(ac) => rest.push(StrMatcher::Automaton(ac)),
                Err(_) => rest.extend(
                    isubs
                        .into_iter()
                        .map(|(s, ac)| StrMatcher::IContains(s.into(), ac)),
                ),
            }
        } else {
            rest.extend(
                isubs
                    .into_iter()
                    .map(|(s, ac)| StrMatcher::IContains(s.into(), ac)),
            );
        }
        match prefixes.len() {
            0 => {}
            1 => rest.push(StrMatcher::StartsWith(prefixes.remove(0).into())),
            _ => match AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostFirst)
                .start_kind(StartKind::Anchored)
                .build(&prefixes)
            {
                Ok(ac) => rest.push(StrMatcher::Prefixes(ac)),
                Err(_) => rest.extend(
                    prefixes
                        .into_iter()
                        .map(|s| StrMatcher::StartsWith(s.into())),
                ),
            },
        }
        if rest.len() == 1 {
            if let Some(m) = rest.pop() {
                return m;
            }
        }
        StrMatcher::Any(rest.into_boxed_slice())
    }
}

fn build_matcher(
    op: Op,
    values: &[(String, usize)],
    src: &Source,
    field: &FieldRef,
) -> Result<StrMatcher, CompileError> {
    let first = values.first().map(|(v, _)| v.clone()).unwrap_or_default();
    let first_pos = values.first().map(|(_, p)| *p).unwrap_or(field.pos);
    Ok(match op {
        Op::Eq => StrMatcher::Eq(first.into()),
        Op::Ne => StrMatcher::Ne(first.into()),
        Op::In | Op::Intersects => StrMatcher::Set(values.iter().map(|(v, _)| v.clone()).collect()),
        Op::Pmatch => StrMatcher::Pmatch {
            set: values
                .iter()
                .map(|(v, _)| v.trim_end_matches('/').to_string())
                .collect(),
            root: values.iter().any(|(v, _)| v == "/"),
        },
        Op::Contains => StrMatcher::Contains(first.into()),
        Op::IContains => {
            let ac = AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .build([first.as_str()])
                .map_err(|e| err(src, first_pos, e.to_string()))?;
            StrMatcher::IContains(first.into(), ac)
        }
        Op::BContains | Op::BStartsWith => {
            let bytes = parse_hex(&first).ok_or_else(|| {
                err(
                    src,
                    first_pos,
                    format!(
                        "`{}` needs hex bytes (e.g. 7f454c46), found `{first}`",
                        op.as_str()
                    ),
                )
            })?;
            if op == Op::BContains {
                StrMatcher::Automaton(
                    AhoCorasick::new([bytes]).map_err(|e| err(src, first_pos, e.to_string()))?,
                )
            } else {
                StrMatcher::BStartsWith(bytes.into())
            }
        }
        Op::StartsWith => StrMatcher::StartsWith(first.into()),
        Op::EndsWith => StrMatcher::EndsWith(first.into()),
        Op::Glob => StrMatcher::Glob(first.into_bytes().into()),
        Op::IGlob => StrMatcher::IGlob(first.to_lowercase().into_bytes().into()),
        Op::Regex => StrMatcher::Regex(
            regex::Regex::new(&first)
                .map_err(|e| err(src, first_pos, format!("bad regex: {e}")))?,
        ),
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Exists => {
            return Err(err(
                src,
                field.pos,
                format!(
                    "operator `{}` does not apply to `{field}` (string field)",
                    op.as_str()
                ),
            ))
        }
    })
}

fn apply_str(getter: Getter, m: StrMatcher) -> Predicate {
    match getter {
        Getter::Str(g) | Getter::EvtType(g) => {
            Box::new(move |ctx| g(ctx).is_some_and(|v| m.is_match(&v)))
        }
        Getter::StrAny(g) => Box::new(move |ctx| g(ctx, &mut |v| m.is_match(v))),
        // Non-string getters never reach here (type-checked by the caller).
        _ => Box::new(|_| false),
    }
}

fn path_prefixes(v: &str) -> impl Iterator<Item = &str> {
    let v = v.trim_end_matches('/');
    let mut end = Some(v.len());
    std::iter::from_fn(move || {
        let e = end?;
        let cur = &v[..e];
        end = cur.rfind('/').filter(|&i| i > 0);
        if cur.is_empty() {
            None
        } else {
            Some(cur)
        }
    })
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// fnmatch-style glob without FNM_PATHNAME: `*`, `?`, `[…]`.
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let (mut star_p, mut star_i) = (usize::MAX, 0usize);
    while i < s.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star_p = p;
                    star_i = i;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(pat, p, s[i]) {
                        if matched {
                            p = next;
                            i += 1;
                            continue;
                        }
                    } else if s[i] == b'[' {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
                c if c == s[i] => {
                    p += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        if star_p != usize::MAX {
            p = star_p + 1;
            star_i += 1;
            i = star_i;
            continue;
        }
        return false;
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

fn class_match(pat: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut p = start + 1;
    let negate = matches!(pat.get(p), Some(b'!') | Some(b'^'));
    if negate {
        p += 1;
    }
    let mut matched = false;
    let mut first = true;
    while p < pat.len() && (first || pat[p] != b']') {
        first = false;
        if p + 2 < pat.len() && pat[p + 1] == b'-' && pat[p + 2] != b']' {
            if pat[p] <= c && c <= pat[p + 2] {
                matched = true;
            }
            p += 3;
        } else {
            if pat[p] == c {
                matched = true;
            }
            p += 1;
        }
    }
    if p >= pat.len() {
        return None;
    }
    Some((matched != negate, p + 1))
}

// ---- evt.type ----

/// Names a dynamic-kind event answers to.
fn dynamic_matches(ev: &Event, name: &str) -> bool {
    match &ev.payload {
        Payload::FileLink { symbolic: true, .. } => name == "symlink" || name == "symlinkat",
        Payload::FileLink { .. } => name == "link" || name == "linkat",
        Payload::SetId { call, .. }
        | Payload::Namespace { call, .. }
        | Payload::ModuleLoad { call, .. }
        | Payload::FdDup { call, .. }
        | Payload::Mount { call, .. }
        | Payload::ProcessVm { call, .. }
        | Payload::ExecFailed { call, .. } => call == name,
        _ => false,
    }
}

fn dynamic_kinds_for(name: &str) -> u64 {
    use EventKind::*;
    let mut m = 0;
    if matches!(name, "symlink" | "symlinkat" | "link" | "linkat") {
        m |= KindSet::bit(FileLink);
    }
    if name.starts_with("set") && (name.ends_with("uid") || name.ends_with("gid")) {
        m |= KindSet::bit(SetId);
    }
    if matches!(name, "unshare" | "setns") {
        m |= KindSet::bit(Namespace);
    }
    if matches!(name, "init_module" | "finit_module") {
        m |= KindSet::bit(ModuleLoad);
    }
    if matches!(name, "dup" | "dup2" | "dup3") {
        m |= KindSet::bit(FdDup);
    }
    if matches!(name, "execve" | "execveat") {
        m |= KindSet::bit(ExecFailed);
    }
    if matches!(name, "process_vm_readv" | "process_vm_writev") {
        m |= KindSet::bit(ProcessVm);
    }
    if matches!(
        name,
        "mount" | "move_mount" | "fsmount" | "open_tree" | "fspick" | "mount_setattr"
    ) {
        m |= KindSet::bit(Mount);
    }
    m
}

/// Every event type name accepted in `evt.type` (Falco's syscall and internal events).
const KNOWN_EVENT_TYPES: &[&str] = &[
    "accept",
    "accept4",
    "access",
    // Not a syscall: an admission request (Payload::Admission).
    "admission",
    "bind",
    "bpf",
    "brk",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chroot",
    "clone",
    "clone3",
    "close",
    "connect",
    "container",
    "copy_file_range",
    "creat",
    "drop",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "finit_module",
    "flock",
    "fork",
    "fsconfig",
    "fsmount",
    "fspick",
    "fstat",
    "ftruncate",
    "futex",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getpeername",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getsockname",
    "getsockopt",
    "getuid",
    "init_module",
    "inotify_init",
    "inotify_init1",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioctl",
    "kill",
    "lchown",
    "link",
    "linkat",
    "listen",
    "llseek",
    "lseek",
    "lstat",
    "memfd_create",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mount",
    "mount_setattr",
    "move_mount",
    "mprotect",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "open_by_handle_at",
    "open_tree",
    "openat",
    "openat2",
    "pidfd_getfd",
    "pidfd_open",
    "pipe",
    "pipe2",
    "pluginevent",
    "poll",
    "ppoll",
    "prctl",
    "pread",
    "pread64",
    "preadv",
    "prlimit",
    "procexit",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "pwrite",
    "pwrite64",
    "pwritev",
    "quotactl",
    "read",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "sched_setaffinity",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setgid",
    "setns",
    "setpgid",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setfsuid",
    "setfsgid",
    "shutdown",
    "signaldeliver",
    "signalfd",
    "signalfd4",
    "socket",
    "socketpair",
    "splice",
    "stat",
    "switch",
    "symlink",
    "symlinkat",
    "syncfs",
    "tgkill",
    "timerfd_create",
    "tkill",
    "truncate",
    "umount",
    "umount2",
    "unlink",
    "unlinkat",
    "unshare",
    "userfaultfd",
    "vfork",
    "write",
    "writev",
    "asyncevent",
    "page_fault",
    "delete_module",
    "chown32",
    "fchown32",
    "lchown32",
    "setuid32",
    "setgid32",
    "k8s",
    "infra",
    "mesos",
    "notification",
    "cpu_hotplug",
    "scapevent",
];

fn evt_type_check(
    op: Op,
    values: &[(String, usize)],
    src: &Source,
) -> Result<(Predicate, KindSet), CompileError> {
    let mut static_mask = 0u64;
    let mut dynamic_mask = 0u64;
    let mut names: Vec<String> = Vec::new();
    for (name, pos) in values {
        if !KNOWN_EVENT_TYPES.contains(&name.as_str()) {
            return Err(err(
                src,
                *pos,
                format!("unknown event type `{name}` in evt.type"),
            ));
        }
        for k in EventKind::ALL {
            if static_aliases(k).is_some_and(|a| a.contains(&name.as_str())) {
                static_mask |= KindSet::bit(k);
            }
        }
        dynamic_mask |= dynamic_kinds_for(name);
        names.push(name.clone());
    }
    let matches = move |ev: &Event| {
        let bit = KindSet::bit(ev.kind());
        static_mask & bit != 0
            || (dynamic_mask & bit != 0 && names.iter().any(|n| dynamic_matches(ev, n)))
    };
    Ok(match op {
        Op::Ne => (Box::new(move |ctx| !matches(ctx.ev)), KindSet::ALL),
        _ => (
            Box::new(move |ctx| matches(ctx.ev)),
            KindSet(static_mask | dynamic_mask),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_alternatives_keep_semantics() {
        let lists = HashMap::new();
        let macros = HashMap::new();
        let hosts = HostRegistry::default();
        let env = Env {
            lists: &lists,
            macros: &macros,
            hosts: &hosts,
        };
        let cond = "proc.cmdline contains foo or proc.cmdline icontains BAR or proc.cmdline icontains baz or proc.cmdline startswith qq or proc.cmdline startswith zz or proc.cmdline = exact or proc.cmdline endswith .sh or proc.name = x";
        let e = crate::parse_condition(cond).unwrap();
        let src = Arc::new(Source::synthetic("t".into(), cond.into(), Pos::default()));
        let (c, _) = compile(&e, &src, &env).unwrap();
        let run = |comm: &str, args: &[&str]| {
            let mut argv = vec![comm.to_string()];
            argv.extend(args.iter().map(|s| s.to_string()));
            let ev = crate::tests_format::build_event(
                &serde_json::json!({"kind": "exec", "process": {"comm": comm, "argv": argv}}),
            )
            .unwrap();
            c.matches(&EvalCtx::new(&ev))
        };
        assert!(run("a", &["xfooy"]));
        assert!(run("a", &["xbAry"]));
        assert!(run("a", &["BAZ"]));
        assert!(run("qq", &[]));
        assert!(run("zz1", &[]));
        assert!(run("exact", &[]));
        assert!(run("a", &["run.sh"]));
        assert!(run("x", &[]));
        assert!(!run("a", &["b", "c"]));
        assert!(!run("aqq", &[]));
    }

    #[test]
    fn fast_hasher_spreads_similar_keys() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<FastHasher>::default();
        let buckets: FastSet<u64> = (0..10_000)
            .map(|i| b.hash_one(format!("bin{i}")) & 0xfff)
            .collect();
        assert!(
            buckets.len() > 3_000,
            "only {} distinct low-bit buckets",
            buckets.len()
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"/home/*/.ssh/*", b"/home/bob/.ssh/id_rsa"));
        assert!(glob_match(b"*../*../*", b"/var/www/../../etc/passwd"));
        assert!(!glob_match(b"*../*../*", b"/var/www/../etc"));
        assert!(glob_match(b"/proc/[0-9]*/mem", b"/proc/12/mem"));
        assert!(!glob_match(b"a?c", b"ac"));
    }

    #[test]
    fn networks() {
        let n = parse_net("172.16.0.0/12").unwrap();
        assert!(n.contains("172.20.1.1".parse().unwrap()));
        assert!(!n.contains("172.32.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:172.16.0.9".parse().unwrap()));
        assert!(parse_net("10.0.0.0/33").is_none());
    }

    #[test]
    fn prefixes() {
        let v: Vec<&str> = path_prefixes("/etc/ssh/sshd_config").collect();
        assert_eq!(v, ["/etc/ssh/sshd_config", "/etc/ssh", "/etc"]);
    }
}
