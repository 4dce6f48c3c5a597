//! ArcSight Common Event Format (CEF:0).
//!
//! `CEF:0|Rampart|Rampart|<version>|<rule>|<rule>|<severity>|<extension>`. Header fields
//! escape `\` and `|`; extension values escape `\`, `=` and line breaks (`\n`, `\r`);
//! extension keys are the standard CEF dictionary names (`rt`, `msg`, `dvchost`, `cnt`,
//! `start`, `end`, `spid`, `sproc`, `suid`, `filePath`, `externalId`, `cat`) plus the
//! `csN`/`csNLabel` custom string pairs for container and MITRE data.
//! Severity 0–10 from the Falco priority: Emergency 10, Alert 9, Critical 8, Error 7,
//! Warning 5, Notice 3, Informational 1, Debug 0.

use std::fmt::Write;

use rampart_event::{Alert, Payload, Priority};

use super::{millis, EncodeContext};

/// CEF severity (0–10) for a Falco priority.
pub fn severity(priority: Priority) -> u8 {
    match priority {
        Priority::Emergency => 10,
        Priority::Alert => 9,
        Priority::Critical => 8,
        Priority::Error => 7,
        Priority::Warning => 5,
        Priority::Notice => 3,
        Priority::Informational => 1,
        Priority::Debug => 0,
    }
}

/// Escapes a CEF header field (`\` and `|`); line breaks become spaces (not allowed).
pub fn escape_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a CEF extension value (`\`, `=`, and line breaks as `\n` / `\r`).
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape_value`] (used by tests and by anyone reading CEF back).
pub fn unescape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn payload_path(p: &Payload) -> Option<&str> {
    match p {
        Payload::FileOpen { path, .. }
        | Payload::FileUnlink { path, .. }
        | Payload::FileChmod { path, .. }
        | Payload::FileChown { path, .. }
        | Payload::FileTruncate { path, .. }
        | Payload::ProcMemWrite { path, .. } => Some(path),
        Payload::FileRename { new_path, .. } | Payload::FileLink { new_path, .. } => Some(new_path),
        Payload::Exec { filename, .. } => Some(filename),
        _ => None,
    }
}

/// Encodes one alert as a CEF record.
pub fn encode(alert: &Alert, ctx: &EncodeContext) -> String {
    let mut out = format!(
        "CEF:0|Rampart|Rampart|{}|{}|{}|{}|",
        escape_header(&ctx.product_version),
        escape_header(&alert.rule),
        escape_header(&alert.rule),
        severity(alert.priority)
    );
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", millis(alert.ts_ns).to_string()),
        ("start", millis(alert.first_ts_ns).to_string()),
        ("end", millis(alert.ts_ns).to_string()),
        ("cnt", alert.count.to_string()),
        ("externalId", alert.id.clone()),
        ("cat", alert.source.clone()),
        ("dvchost", ctx.hostname(alert).to_string()),
        ("msg", alert.message.clone()),
    ];
    if let Some(p) = alert.event.process.as_deref() {
        ext.push(("spid", p.pid.to_string()));
        ext.push(("sproc", p.exe.clone()));
        ext.push(("suid", p.uid.to_string()));
    }
    if let Some(path) = payload_path(&alert.event.payload) {
        ext.push(("filePath", path.to_string()));
    }
    if let Some(c) = alert.event.container.container() {
        ext.push(("cs1Label", "containerId".into()));
        ext.push(("cs1", c.id.clone()));
        ext.push(("cs2Label", "containerName".into()));
        ext.push(("cs2", c.name.clone()));
        ext.push(("cs3Label", "containerImage".into()));
        ext.push(("cs3", c.image.clone()));
    }
    if !alert.mitre.is_empty() {
        ext.push(("cs4Label", "mitreAttack".into()));
        ext.push(("cs4", alert.mitre.join(",")));
    }
    for (i, (key, value)) in ext.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{key}={}", escape_value(value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::sample;

    /// Expected record written from the CEF specification (header layout, escaping,
    /// dictionary keys), not from this encoder's output.
    #[test]
    fn encodes_header_and_extension_per_spec() {
        let ctx = EncodeContext {
            hostname_override: None,
            local_hostname: "unused".into(),
            product_version: "0.1.0".into(),
            falco_uuid: false,
        };
        let got = encode(&sample::alert(), &ctx);
        let expected = concat!(
            "CEF:0|Rampart|Rampart|0.1.0|Read sensitive file untrusted|Read sensitive file untrusted|5|",
            "rt=1700000000123 start=1700000000123 end=1700000000123 cnt=1 ",
            "externalId=6f1c2a9e4b7d4e0f8a3b5c6d7e8f9012 cat=syscall dvchost=node-1 ",
            "msg=Sensitive file opened for reading by non-trusted program (file\\=/etc/shadow user\\=root command\\=cat /etc/shadow) ",
            "spid=4242 sproc=/usr/bin/cat suid=0 filePath=/etc/shadow ",
            "cs1Label=containerId cs1=3ad7b26ded6d8e7b23da7d48fe889434573036c27ae5a74837233de441c3601e ",
            "cs2Label=containerName cs2=web cs3Label=containerImage cs3=debian:12 ",
            "cs4Label=mitreAttack cs4=T1555,TA0006"
        );
        assert_eq!(got, expected);
    }

    #[test]
    fn header_escapes_pipes_and_backslashes() {
        assert_eq!(escape_header(r"a|b\c"), r"a\|b\\c");
        assert_eq!(escape_value("a=b\\c\nd\re"), r"a\=b\\c\nd\re");
        assert_eq!(unescape_value(r"a\=b\\c\nd\re"), "a=b\\c\nd\re");
    }

    #[test]
    fn escaping_round_trips_on_random_strings() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet: Vec<char> = "ab=\\|\n\r \"]é".chars().collect();
        for _ in 0..2000 {
            let len = rng.usize(0..24);
            let s: String = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let escaped = escape_value(&s);
            assert!(!escaped.contains('\n') && !escaped.contains('\r'));
            assert_eq!(unescape_value(&escaped), s, "{s:?}");
        }
    }
}
