//! The shipped example configuration parses, shows every output with its defaults, and
//! the parser survives random damage to it (a bounded random-input test; the fuzz target
//! in fuzz/ explores further).

use rampart_notify::config::{Encoding, Facility, RetryConfig, SinkKind, SyslogProtocol};
use rampart_notify::{NotifyError, OutputsConfig};

const EXAMPLE: &str = include_str!("../outputs.example.yaml");

#[test]
fn example_parses_with_every_output_and_its_defaults() {
    let c = OutputsConfig::from_yaml_str(EXAMPLE).unwrap();
    assert_eq!(c.queue_capacity, 1024);
    assert_eq!(c.hostname, None);
    let types: Vec<&str> = c.sinks.iter().map(|s| s.kind.type_name()).collect();
    assert_eq!(
        types,
        ["stdout", "file", "syslog", "webhook", "slack", "splunk_hec"]
    );
    let SinkKind::File(f) = &c.sinks[1].kind else {
        panic!()
    };
    assert_eq!(
        (f.format, f.max_size_mb, f.keep_files),
        (Encoding::Falco, 100, 5)
    );
    assert_eq!(c.sinks[1].display_name(1), "alerts-file");
    let SinkKind::Syslog(s) = &c.sinks[2].kind else {
        panic!()
    };
    assert_eq!(s.protocol, SyslogProtocol::Udp);
    assert_eq!(s.facility, Facility::Local0);
    assert_eq!(
        (s.app_name.as_str(), s.message, s.max_message_bytes),
        ("rampart", Encoding::Text, 8192)
    );
    let SinkKind::Webhook(w) = &c.sinks[3].kind else {
        panic!()
    };
    assert_eq!(w.retry, RetryConfig::default());
    assert_eq!(
        w.headers.get("Authorization").map(String::as_str),
        Some("Bearer change-me")
    );
    assert_eq!(
        c.sinks[3].min_priority,
        Some(rampart_event::Priority::Warning)
    );
    let SinkKind::Slack(sl) = &c.sinks[4].kind else {
        panic!()
    };
    assert_eq!(sl.retry, RetryConfig::default());
    let SinkKind::SplunkHec(h) = &c.sinks[5].kind else {
        panic!()
    };
    assert_eq!(
        (h.source.as_str(), h.sourcetype.as_str(), h.index.as_deref()),
        ("rampart", "rampart:alert", None)
    );
}

#[test]
fn example_values_equal_the_code_defaults() {
    // Every key the example leaves at its default, written out, must match the default
    // the code applies when the key is absent.
    let minimal = OutputsConfig::from_yaml_str(
        "sinks:\n  - type: file\n    path: /var/log/rampart/alerts.jsonl\n    format: falco\n    name: alerts-file\n",
    )
    .unwrap();
    let full = OutputsConfig::from_yaml_str(EXAMPLE).unwrap();
    assert_eq!(minimal.sinks[0], full.sinks[1]);
    assert_eq!(minimal.queue_capacity, full.queue_capacity);
}

#[test]
fn example_file_is_what_the_cli_prints() {
    assert_eq!(rampart_notify::EXAMPLE_CONFIG, EXAMPLE);
}

/// Random edits of the example (bytes deleted, duplicated, replaced by YAML-significant
/// characters) and random byte strings: the parser must return Ok or a located error,
/// never panic. Bounded: 2000 inputs, fixed seed.
#[test]
fn parser_survives_random_damage() {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let specials = b":-[]{}#&*!|>'\"%@`, \n\t0123456789abcxyz";
    let mut errors = 0;
    for i in 0..2000 {
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        if i % 10 == 9 {
            bytes = (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect();
        } else {
            for _ in 0..rng.usize(1..6) {
                if bytes.is_empty() {
                    break;
                }
                let at = rng.usize(..bytes.len());
                match rng.u8(0..3) {
                    0 => {
                        let end = (at + rng.usize(1..20)).min(bytes.len());
                        bytes.drain(at..end);
                    }
                    1 => bytes.insert(at, specials[rng.usize(..specials.len())]),
                    _ => bytes[at] = specials[rng.usize(..specials.len())],
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        match OutputsConfig::from_yaml_str(&text) {
            Ok(c) => assert!(c.queue_capacity >= 1),
            Err(NotifyError::Config { message, .. }) => {
                assert!(!message.is_empty());
                errors += 1;
            }
            Err(other) => panic!("unexpected error kind: {other}"),
        }
    }
    assert!(errors > 300, "damage should usually be detected: {errors}");
}

/// Every sink of the example builds: file opened, https clients constructed with the
/// ring provider, syslog prepared. (The file path is moved to a temp dir.)
#[test]
fn example_sinks_build() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = OutputsConfig::from_yaml_str(EXAMPLE).unwrap();
    let SinkKind::File(f) = &mut c.sinks[1].kind else {
        panic!()
    };
    f.path = dir.path().join("alerts.jsonl");
    let sinks = rampart_notify::build_sinks(&c).unwrap();
    let names: Vec<&str> = sinks.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "stdout-0",
            "alerts-file",
            "syslog-2",
            "webhook-3",
            "slack-4",
            "splunk_hec-5"
        ]
    );
    assert!(dir.path().join("alerts.jsonl").exists());
}
