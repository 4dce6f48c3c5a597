//! Any alert that deserializes is encoded by every encoder without panicking, and the
//! JSON encoders always produce valid JSON; RFC 5424 messages always start with a PRI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_event::Alert;
use rampart_notify::config::{Encoding, Facility};
use rampart_notify::encode::{self, slack, splunk, syslog, EncodeContext};

fuzz_target!(|data: &[u8]| {
    let Ok(alert) = serde_json::from_slice::<Alert>(data) else {
        return;
    };
    let ctx = EncodeContext::default();
    for enc in [Encoding::Json, Encoding::Falco, Encoding::Ocsf] {
        let out = encode::encode(enc, &alert, &ctx);
        serde_json::from_str::<serde_json::Value>(&out).expect("valid JSON");
    }
    let _ = encode::encode(Encoding::Text, &alert, &ctx);
    let cef = encode::encode(Encoding::Cef, &alert, &ctx);
    assert!(!cef.contains('\n'));
    let header = syslog::SyslogHeader {
        facility: Facility::Local0,
        app_name: "rampart".into(),
        proc_id: 1,
        message: Encoding::Cef,
    };
    let msg = syslog::format_rfc5424(&alert, &header, &ctx);
    assert!(msg.starts_with('<'));
    let _ = slack::to_value(&alert, &ctx, &slack::SlackOverrides::default());
    let meta = splunk::HecMetadata {
        source: "s".into(),
        sourcetype: "t".into(),
        index: None,
        format: Encoding::Falco,
    };
    serde_json::from_str::<serde_json::Value>(&splunk::encode(&alert, &ctx, &meta)).expect("valid JSON");
});
