//! Slack incoming-webhook payload: `text` (the notification fallback) plus one
//! attachment whose `color` bar shows the priority and whose Block Kit `blocks` hold the
//! message, the key facts as section fields, and a context line.
//!
//! Slack's mrkdwn needs `&`, `<` and `>` escaped as HTML entities; a section's text is
//! limited to 3000 characters and a field's to 2000, so longer values are cut.

use rampart_event::{Alert, Priority};
use serde_json::{json, Value};

use super::{rfc3339_nanos, EncodeContext};

/// Attachment bar colour for a priority: dark red for the most severe, through orange
/// and yellow, to green, blue and grey for informational ones.
pub fn color(priority: Priority) -> &'static str {
    match priority {
        Priority::Emergency => "#7b0000",
        Priority::Alert => "#b71c1c",
        Priority::Critical => "#e53935",
        Priority::Error => "#fb8c00",
        Priority::Warning => "#fdd835",
        Priority::Notice => "#43a047",
        Priority::Informational => "#1e88e5",
        Priority::Debug => "#9e9e9e",
    }
}

/// Escapes the three characters Slack's mrkdwn treats as control sequences.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn cut(s: String, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s;
    }
    let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn field(label: &str, value: &str) -> Value {
    json!({ "type": "mrkdwn", "text": cut(format!("*{}*\n{}", escape(label), escape(value)), 2000) })
}

/// Optional overrides Slack honours on legacy incoming webhooks.
#[derive(Debug, Clone, Default)]
pub struct SlackOverrides {
    pub channel: Option<String>,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
}

/// Builds the webhook payload.
pub fn to_value(alert: &Alert, ctx: &EncodeContext, overrides: &SlackOverrides) -> Value {
    let priority = alert.priority.falco_name();
    let fallback = format!("[{priority}] {}: {}", alert.rule, alert.message);
    let mut fields = vec![
        field("Priority", priority),
        field("Host", ctx.hostname(alert)),
    ];
    if let Some(c) = alert.event.container.container() {
        let short_id: String = c.id.chars().take(12).collect();
        fields.push(field("Container", &format!("{} ({short_id})", c.name)));
        fields.push(field("Image", &c.image));
    }
    if let Some(p) = alert.event.process.as_deref() {
        fields.push(field(
            "Process",
            &format!("{} (pid {})", p.argv.join(" "), p.pid),
        ));
    }
    if !alert.mitre.is_empty() {
        fields.push(field("MITRE ATT&CK", &alert.mitre.join(", ")));
    }
    if alert.count > 1 {
        fields.push(field("Count", &alert.count.to_string()));
    }
    let blocks = json!([
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": cut(format!("*{}*\n{}", escape(&alert.rule), escape(&alert.message)), 3000),
            }
        },
        { "type": "section", "fields": fields },
        {
            "type": "context",
            "elements": [{
                "type": "mrkdwn",
                "text": escape(&format!("{} · alert {} · {}", rfc3339_nanos(alert.ts_ns), alert.id, alert.source)),
            }]
        }
    ]);
    let mut payload = json!({
        "text": escape(&fallback),
        "attachments": [{
            "color": color(alert.priority),
            "fallback": escape(&fallback),
            "blocks": blocks,
        }],
    });
    if let Some(c) = &overrides.channel {
        payload["channel"] = json!(c);
    }
    if let Some(u) = &overrides.username {
        payload["username"] = json!(u);
    }
    if let Some(i) = &overrides.icon_emoji {
        payload["icon_emoji"] = json!(i);
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::sample;

    fn ctx() -> EncodeContext {
        EncodeContext {
            hostname_override: None,
            local_hostname: "unused".into(),
            product_version: "0.1.0".into(),
            falco_uuid: false,
        }
    }

    /// Expected payload derived from Slack's incoming-webhook and Block Kit reference:
    /// top-level `text`, attachment `color` + `blocks`, mrkdwn sections and context.
    #[test]
    fn payload_matches_block_kit_shape() {
        let v = to_value(&sample::alert(), &ctx(), &SlackOverrides::default());
        let expected = json!({
            "text": "[Warning] Read sensitive file untrusted: Sensitive file opened for reading by non-trusted program (file=/etc/shadow user=root command=cat /etc/shadow)",
            "attachments": [{
                "color": "#fdd835",
                "fallback": "[Warning] Read sensitive file untrusted: Sensitive file opened for reading by non-trusted program (file=/etc/shadow user=root command=cat /etc/shadow)",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": "*Read sensitive file untrusted*\nSensitive file opened for reading by non-trusted program (file=/etc/shadow user=root command=cat /etc/shadow)"}},
                    {"type": "section", "fields": [
                        {"type": "mrkdwn", "text": "*Priority*\nWarning"},
                        {"type": "mrkdwn", "text": "*Host*\nnode-1"},
                        {"type": "mrkdwn", "text": "*Container*\nweb (3ad7b26ded6d)"},
                        {"type": "mrkdwn", "text": "*Image*\ndebian:12"},
                        {"type": "mrkdwn", "text": "*Process*\ncat /etc/shadow (pid 4242)"},
                        {"type": "mrkdwn", "text": "*MITRE ATT&amp;CK*\nT1555, TA0006"}
                    ]},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": "2023-11-14T22:13:20.123456789Z · alert 6f1c2a9e4b7d4e0f8a3b5c6d7e8f9012 · syscall"}]}
                ]
            }]
        });
        assert_eq!(v, expected);
    }

    #[test]
    fn control_characters_are_escaped_and_overrides_applied() {
        let mut alert = sample::alert();
        alert.message = "a <b> & c".into();
        let v = to_value(
            &alert,
            &ctx(),
            &SlackOverrides {
                channel: Some("#sec".into()),
                username: Some("rampart".into()),
                icon_emoji: None,
            },
        );
        assert!(v["text"].as_str().unwrap().ends_with("a &lt;b&gt; &amp; c"));
        assert_eq!(v["channel"], "#sec");
        assert_eq!(v["username"], "rampart");
        assert!(v.get("icon_emoji").is_none());
    }

    #[test]
    fn long_messages_are_cut_to_slack_limits() {
        let mut alert = sample::alert();
        alert.message = "x".repeat(5000);
        let v = to_value(&alert, &ctx(), &SlackOverrides::default());
        let text = v["attachments"][0]["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap();
        assert_eq!(text.chars().count(), 3000);
        assert!(text.ends_with('…'));
    }
}
