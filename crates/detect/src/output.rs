//! Falco output templates: `%field`, `%proc.aname[2]`, `%(field)`, `%container.info`.

use std::collections::BTreeMap;

use crate::ast::FieldRef;
use crate::fields::{self, Availability, EvalCtx, FieldError, Getter};

enum Part {
    Text(String),
    Field {
        name: String,
        getter: Option<Getter>,
    },
}

/// A compiled output template.
pub struct OutputTemplate {
    parts: Vec<Part>,
}

/// Rendered output: the message and the named fields as typed JSON values.
pub struct RenderedOutput {
    pub message: String,
    pub fields: BTreeMap<String, serde_json::Value>,
}

fn is_field_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

impl OutputTemplate {
    /// Parses a template. Unknown fields are errors (as in Falco); fields Rampart
    /// cannot fill yet render `<NA>` and come back as notes.
    pub fn parse(template: &str) -> Result<(Self, Vec<String>), String> {
        let expanded = template.replace(
            "%container.info",
            "container_id=%container.id container_name=%container.name",
        );
        let s = expanded.as_bytes();
        let mut parts = Vec::new();
        let mut notes = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        let mut seg = 0;
        while i < s.len() {
            if s[i] != b'%' {
                i += 1;
                continue;
            }
            text.push_str(&expanded[seg..i]);
            let (name_start, paren) = if s.get(i + 1) == Some(&b'(') {
                (i + 2, true)
            } else {
                (i + 1, false)
            };
            let mut j = name_start;
            while j < s.len() && is_field_char(s[j]) {
                j += 1;
            }
            // A trailing dot is punctuation, not part of the name.
            while j > name_start && s[j - 1] == b'.' {
                j -= 1;
            }
            let mut arg = None;
            let mut end = j;
            if s.get(j) == Some(&b'[') {
                if let Some(close) = expanded[j..].find(']') {
                    arg = Some(expanded[j + 1..j + close].to_string());
                    end = j + close + 1;
                }
            }
            if paren {
                if s.get(end) != Some(&b')') {
                    return Err(format!("unclosed `%(` at offset {i}"));
                }
                end += 1;
            }
            let name = &expanded[name_start..j];
            if name.is_empty() || !name.contains('.') {
                // A lone `%` (e.g. "100%") is text.
                text.push('%');
                i += 1;
                seg = i;
                continue;
            }
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            let fr = FieldRef {
                name: name.to_string(),
                arg: arg.clone(),
                transformer: None,
                pos: 0,
            };
            let shown = fr.to_string();
            let getter = match fields::resolve(&fr) {
                Ok(r) => {
                    if let Availability::NotProvided(why) = r.availability {
                        notes.push(format!("`{shown}` renders <NA>: {why}"));
                    }
                    Some(r.getter)
                }
                Err(FieldError::Unsupported(n, why)) => {
                    notes.push(format!("`{n}` is not supported and renders <NA>: {why}"));
                    None
                }
                Err(e) => return Err(e.to_string()),
            };
            parts.push(Part::Field {
                name: shown,
                getter,
            });
            i = end;
            seg = i;
        }
        text.push_str(&expanded[seg.min(expanded.len())..]);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok((Self { parts }, notes))
    }

    pub fn render(&self, ctx: &EvalCtx<'_>) -> RenderedOutput {
        let mut message = String::new();
        let mut fields = BTreeMap::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => message.push_str(t),
                Part::Field { name, getter } => {
                    let v = getter.as_ref().and_then(|g| g.render(ctx));
                    match &v {
                        Some(serde_json::Value::String(s)) => message.push_str(s),
                        Some(other) => message.push_str(&other.to_string()),
                        None => message.push_str("<NA>"),
                    }
                    fields.insert(name.clone(), v.unwrap_or(serde_json::Value::Null));
                }
            }
        }
        RenderedOutput { message, fields }
    }
}
