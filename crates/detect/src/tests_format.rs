//! Rule tests carried inside rules files.
//!
//! A rule mapping may hold a `tests:` key (Falco ignores keys it does not know):
//!
//! ```yaml
//! - rule: Terminal shell in container
//!   ...
//!   tests:
//!     should_fire:
//!       - kind: exec
//!         process: {comm: bash, exe: /bin/bash, argv: [bash], tty: 34816,
//!                   ancestry: [{comm: runc, exe: /usr/bin/runc}]}
//!         container: {type: container, id: 4f1e2d3c4b5a69788796a5b4c3d2e1f0, image: debian:12}
//!     should_not_fire:
//!       - {kind: exec, process: {comm: bash, tty: 0}}
//! ```
//!
//! Each snippet is an [`Event`] in its JSON form with anything left out filled from a
//! default (a root process `/usr/bin/true` on the host, per-kind default `data`; see
//! [`crate::probe`]), so a test states only what matters. `rampart rules test` runs them.

use rampart_event::Event;
use serde_json::{json, Map, Value as Json};

use crate::probe::{base_event, fill_open_access};

/// Event snippets that must / must not fire their rule.
#[derive(Debug, Clone, Default)]
pub struct RuleTests {
    pub should_fire: Vec<Json>,
    pub should_not_fire: Vec<Json>,
}

impl RuleTests {
    pub fn is_empty(&self) -> bool {
        self.should_fire.is_empty() && self.should_not_fire.is_empty()
    }
    pub fn extend(&mut self, other: RuleTests) {
        self.should_fire.extend(other.should_fire);
        self.should_not_fire.extend(other.should_not_fire);
    }
}

pub(crate) fn parse_rule_tests(v: &yaml_serde::Value) -> Result<RuleTests, String> {
    let j: Json = serde_json::to_value(v).map_err(|e| e.to_string())?;
    let Json::Object(m) = j else {
        return Err("expected a mapping with should_fire / should_not_fire lists".into());
    };
    let mut t = RuleTests::default();
    for (k, v) in m {
        let list = match v {
            Json::Array(a) => a,
            Json::Null => Vec::new(),
            _ => return Err(format!("`{k}` must be a list of event snippets")),
        };
        for (i, snippet) in list.iter().enumerate() {
            build_event(snippet).map_err(|e| format!("{k}[{i}]: {e}"))?;
        }
        match k.as_str() {
            "should_fire" => t.should_fire = list,
            "should_not_fire" => t.should_not_fire = list,
            other => {
                return Err(format!(
                    "unknown key `{other}` (expected should_fire, should_not_fire)"
                ))
            }
        }
    }
    Ok(t)
}

fn merge(base: &mut Json, over: &Json) {
    match (base, over) {
        (Json::Object(b), Json::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Json::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Builds a full event from a snippet.
pub fn build_event(snippet: &Json) -> Result<Event, String> {
    let Json::Object(s) = snippet else {
        return Err("an event snippet must be a mapping".into());
    };
    let kind = s
        .get("kind")
        .and_then(Json::as_str)
        .ok_or("snippet needs `kind` (exec, file_open, net_connect, …)")?;
    let mut ev = base_event(kind);
    let mut over = Map::new();
    for (k, v) in s {
        over.insert(k.clone(), v.clone());
    }
    // A container snippet replaces the host default rather than merging into it.
    if let Some(c) = over.remove("container") {
        if let Some(obj) = ev.as_object_mut() {
            obj.insert("container".into(), c);
        }
    }
    merge(&mut ev, &Json::Object(over));
    fill_open_access(&mut ev);
    if let Some(anc) = ev
        .pointer_mut("/process/ancestry")
        .and_then(Json::as_array_mut)
    {
        for (i, a) in anc.iter_mut().enumerate() {
            if let Some(o) = a.as_object_mut() {
                o.entry("pid").or_insert(json!(99 - i as i64));
                o.entry("exec_id")
                    .or_insert(json!(format!("t:{}:1", 99 - i as i64)));
                let exe = o.get("exe").and_then(Json::as_str).map(str::to_string);
                let comm = o.get("comm").and_then(Json::as_str).map(str::to_string);
                match (exe, comm) {
                    (Some(e), None) => {
                        let c = e
                            .rsplit('/')
                            .next()
                            .unwrap_or("")
                            .chars()
                            .take(15)
                            .collect::<String>();
                        o.insert("comm".into(), json!(c));
                    }
                    (None, Some(c)) => {
                        o.insert("exe".into(), json!(format!("/usr/bin/{c}")));
                    }
                    (None, None) => {
                        o.insert("comm".into(), json!("init"));
                        o.insert("exe".into(), json!("/sbin/init"));
                    }
                    _ => {}
                }
                let comm = o.get("comm").cloned().unwrap_or(json!(""));
                o.entry("argv").or_insert_with(|| json!([comm]));
            }
        }
    }
    serde_json::from_value(ev).map_err(|e| format!("not a valid event: {e}"))
}
