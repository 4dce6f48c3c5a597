//! The previews `rampart outputs render` prints (the command itself is tested in the
//! `rampart` crate's `outputs_cli.rs`).

use rampart_notify::encode::EncodeContext;
use rampart_notify::{render, sample_alert, RenderFormat};

#[test]
fn render_produces_each_format() {
    let alert = sample_alert();
    let ctx = EncodeContext::default();
    let check = |f: RenderFormat, prefix: &str| {
        let out = render(f, &alert, &ctx);
        assert!(out.starts_with(prefix), "{f:?}: {out}");
    };
    check(RenderFormat::Json, "{\"id\":");
    check(RenderFormat::Falco, "{\"hostname\":");
    check(RenderFormat::Ocsf, "{");
    check(RenderFormat::Cef, "CEF:0|Rampart|Rampart|");
    check(RenderFormat::Syslog, "<133>1 "); // local0 × 8 + notice (5)
    check(RenderFormat::Slack, "{");
    check(RenderFormat::Splunk, "{\"time\":");
    let text = render(RenderFormat::Text, &alert, &ctx);
    assert!(text.contains(": Notice Test alert"), "{text}");
}

#[test]
fn the_sample_alert_round_trips_through_json() {
    let alert = sample_alert();
    let text = serde_json::to_string(&alert).unwrap();
    let back: rampart_event::Alert = serde_json::from_str(&text).unwrap();
    assert_eq!(back, alert);
}
