//! Bounded random-input test of the encoders (the `encode_alert` fuzz target explores
//! further): alerts whose strings hold quotes, brackets, backslashes, pipes, equals
//! signs, control characters and non-ASCII text must still give valid JSON, one-line
//! CEF, and RFC 5424 structured data that parses back to the original values.

mod support;

use rampart_notify::config::{Encoding, Facility};
use rampart_notify::encode::{self, cef, slack, splunk, syslog, EncodeContext};

const ALPHABET: &[char] = &[
    'a', 'Z', '0', ' ', '"', '\\', ']', '[', '=', '|', '\n', '\r', '\t', '\u{1}', 'é', '🙂', '<',
    '&', '%', '{', '}',
];

fn random_string(rng: &mut fastrand::Rng, max: usize) -> String {
    (0..rng.usize(0..max))
        .map(|_| ALPHABET[rng.usize(..ALPHABET.len())])
        .collect()
}

/// Parses one RFC 5424 SD-ELEMENT (`[id name="value" …]`) at the start of `s`, undoing
/// the `\"`, `\\`, `\]` escapes; returns the params and the rest after `]`.
fn parse_sd_element(s: &str) -> (Vec<(String, String)>, &str) {
    let s = s.strip_prefix('[').expect("SD starts with [");
    let id_end = s.find([' ', ']']).unwrap();
    let mut rest = &s[id_end..];
    let mut params = Vec::new();
    while let Some(r) = rest.strip_prefix(' ') {
        let eq = r.find('=').unwrap();
        let name = r[..eq].to_string();
        let mut chars = r[eq + 1..]
            .strip_prefix('"')
            .expect("quoted value")
            .char_indices();
        let mut value = String::new();
        let consumed = loop {
            let (i, c) = chars.next().expect("unterminated value");
            match c {
                '\\' => {
                    let (_, next) = chars.next().unwrap();
                    if matches!(next, '"' | '\\' | ']') {
                        value.push(next);
                    } else {
                        value.push('\\');
                        value.push(next);
                    }
                }
                '"' => break i + 1,
                c => value.push(c),
            }
        };
        params.push((name, value));
        rest = &r[eq + 2 + consumed..];
    }
    let rest = rest.strip_prefix(']').expect("SD ends with ]");
    (params, rest)
}

#[test]
fn random_alerts_encode_to_well_formed_output() {
    let mut rng = fastrand::Rng::with_seed(42);
    let ctx = EncodeContext::default();
    for _ in 0..500 {
        let mut alert = support::alert();
        alert.rule = random_string(&mut rng, 30);
        alert.message = random_string(&mut rng, 60);
        alert.id = random_string(&mut rng, 10);
        alert.tags = (0..rng.usize(0..4))
            .map(|_| random_string(&mut rng, 8))
            .collect();
        alert.mitre = (0..rng.usize(0..3))
            .map(|_| random_string(&mut rng, 8))
            .collect();
        alert.event.host = random_string(&mut rng, 12).into();
        alert.output_fields.insert(
            random_string(&mut rng, 6),
            random_string(&mut rng, 12).into(),
        );

        for enc in [Encoding::Json, Encoding::Falco, Encoding::Ocsf] {
            let out = encode::encode(enc, &alert, &ctx);
            assert!(!out.contains('\n'), "one line: {out}");
            serde_json::from_str::<serde_json::Value>(&out).unwrap();
        }
        let falco: serde_json::Value =
            serde_json::from_str(&encode::encode(Encoding::Falco, &alert, &ctx)).unwrap();
        assert_eq!(falco["rule"], alert.rule.as_str());

        let cef_line = encode::encode(Encoding::Cef, &alert, &ctx);
        assert!(!cef_line.contains('\n') && !cef_line.contains('\r'));
        let msg_value = cef_line
            .split(" msg=")
            .nth(1)
            .and_then(|r| r.split(" spid=").next())
            .unwrap();
        assert_eq!(cef::unescape_value(msg_value), alert.message);

        let header = syslog::SyslogHeader {
            facility: Facility::Auth,
            app_name: "rampart".into(),
            proc_id: 9,
            message: Encoding::Text,
        };
        let line = syslog::format_rfc5424(&alert, &header, &ctx);
        // Six header fields, each free of spaces, then the SD element.
        let mut parts = line.splitn(7, ' ');
        let pri = parts.next().unwrap();
        assert_eq!(pri, "<34>1", "auth (4) × 8 + critical (2)");
        for _ in 0..5 {
            let field = parts.next().unwrap();
            assert!(
                !field.is_empty() && field.chars().all(|c| c.is_ascii_graphic()),
                "{line}"
            );
        }
        let (params, rest) = parse_sd_element(parts.next().unwrap());
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("rule"), Some(alert.rule.as_str()));
        assert_eq!(get("id"), Some(alert.id.as_str()));
        assert_eq!(rest, format!(" {}", alert.message));

        let _ = slack::to_value(&alert, &ctx, &slack::SlackOverrides::default());
        let hec = splunk::encode(
            &alert,
            &ctx,
            &splunk::HecMetadata {
                source: "s".into(),
                sourcetype: "t".into(),
                index: None,
                format: Encoding::Ocsf,
            },
        );
        serde_json::from_str::<serde_json::Value>(&hec).unwrap();
    }
}
