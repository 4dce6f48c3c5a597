//! One compiled rule: its metadata, condition and output template, and the alert it
//! makes when it matches.

use rampart_event::{Alert, Priority};

use crate::compile::{Compiled, KindSet};
use crate::fields::{Availability, EvalCtx};
use crate::output::{OutputTemplate, RenderedOutput};
use crate::source::Pos;
use crate::tests_format::RuleTests;

/// One rule, ready to evaluate.
pub struct CompiledRule {
    pub name: String,
    pub desc: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    /// MITRE ATT&CK technique / tactic ids found in the tags (`T1059.004`, `TA0003`).
    pub mitre: Vec<String>,
    pub enabled: bool,
    pub kinds: KindSet,
    pub(crate) compiled: Compiled,
    output: OutputTemplate,
    pub file: String,
    pub pos: Pos,
    pub tests: RuleTests,
    /// Fields the condition uses that Rampart lacks or approximates.
    pub field_notes: Vec<(String, Availability)>,
    /// A stateful detector the condition's matches go through (`detector:`); the rule
    /// fires only when it decides.
    pub(crate) detector: Option<crate::rate::Detector>,
    /// The detector's `unless:`: when it matches the deciding event, no alert.
    detector_unless: Option<Compiled>,
}

impl CompiledRule {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        desc: String,
        priority: Priority,
        tags: Vec<String>,
        enabled: bool,
        compiled: Compiled,
        output: OutputTemplate,
        file: String,
        pos: Pos,
        tests: RuleTests,
        field_notes: Vec<(String, Availability)>,
    ) -> Self {
        let mitre = tags.iter().filter(|t| is_mitre_id(t)).cloned().collect();
        Self {
            name,
            desc,
            priority,
            tags,
            mitre,
            enabled,
            kinds: compiled.kinds,
            compiled,
            output,
            file,
            pos,
            tests,
            field_notes,
            detector: None,
            detector_unless: None,
        }
    }

    pub(crate) fn with_detector(
        mut self,
        detector: Option<crate::rate::Detector>,
        unless: Option<Compiled>,
    ) -> Self {
        self.detector = detector;
        self.detector_unless = unless;
        self
    }

    /// Whether matches go through a stateful detector (see [`crate::rate`]): the
    /// condition alone then selects the events it sees, and [`Self::matches`] (what
    /// the in-file tests check) says only that.
    pub fn has_detector(&self) -> bool {
        self.detector.is_some()
    }

    /// The condition, then the detector when there is one: whether the rule fires on
    /// this event (with its kind's compiled program already chosen by the caller).
    pub(crate) fn decide(&self, condition_matched: bool, ctx: &EvalCtx<'_>) -> bool {
        condition_matched
            && self.detector.as_ref().is_none_or(|d| {
                d.observe(ctx.ev)
                    && !self
                        .detector_unless
                        .as_ref()
                        .is_some_and(|u| u.matches(ctx))
            })
    }

    /// Evaluates the condition alone (no kind index, ignores `enabled`).
    pub fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        self.compiled.matches(ctx)
    }

    pub fn render(&self, ctx: &EvalCtx<'_>) -> RenderedOutput {
        self.output.render(ctx)
    }

    /// Builds an un-aggregated alert for this rule, which matched the event in `ctx`.
    pub fn alert(&self, ctx: &EvalCtx<'_>, id: String) -> Alert {
        let rule = self;
        let mut out = rule.render(ctx);
        add_k8s_context(ctx, &mut out.fields);
        Alert {
            id,
            ts_ns: ctx.ev.ts_ns,
            first_ts_ns: ctx.ev.ts_ns,
            count: 1,
            rule: rule.name.clone(),
            priority: rule.priority,
            mitre: rule.mitre.clone(),
            tags: rule.tags.clone(),
            message: out.message,
            output_fields: out.fields,
            source: "syscall".into(),
            event: ctx.ev.clone(),
            retro: false,
        }
    }

    /// MITRE tactic names from `mitre_<tactic>` tags.
    pub fn tactics(&self) -> Vec<String> {
        self.tags
            .iter()
            .filter_map(|t| t.strip_prefix("mitre_"))
            .map(|t| t.replace('_', " "))
            .collect()
    }
}

/// A pod's identity in every alert of its containers' events, whatever the rule's
/// output names (as Falco's `-pk` / `append_output` does): the Falco fields, plus the
/// workload, node and service account. Fields the template named stay as rendered.
fn add_k8s_context(
    ctx: &EvalCtx<'_>,
    fields: &mut std::collections::BTreeMap<String, serde_json::Value>,
) {
    let Some(k) = ctx.ev.container.container().and_then(|c| c.k8s.as_ref()) else {
        return;
    };
    let labels: Vec<String> = k.labels.iter().map(|(a, b)| format!("{a}:{b}")).collect();
    for (name, value) in [
        ("k8s.ns.name", k.namespace.clone()),
        ("k8s.pod.name", k.pod.clone()),
        ("k8s.container.name", k.container.clone()),
        ("k8s.workload.kind", k.workload_kind.clone()),
        ("k8s.workload.name", k.workload_name.clone()),
        ("k8s.node.name", k.node.clone()),
        ("k8s.sa.name", k.service_account.clone()),
        ("k8s.pod.labels", labels.join(", ")),
    ] {
        if !value.is_empty() {
            fields
                .entry(name.to_string())
                .or_insert(serde_json::Value::from(value));
        }
    }
}

/// `T1059`, `T1059.004`, `TA0002`.
pub fn is_mitre_id(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if let Some(rest) = t.strip_prefix("TA") {
        return rest.len() == 4 && digits(rest.as_bytes());
    }
    if b.first() != Some(&b'T') {
        return false;
    }
    match t[1..].split_once('.') {
        None => t.len() == 5 && digits(&b[1..]),
        Some((a, s)) => {
            a.len() == 4 && digits(a.as_bytes()) && s.len() == 3 && digits(s.as_bytes())
        }
    }
}
