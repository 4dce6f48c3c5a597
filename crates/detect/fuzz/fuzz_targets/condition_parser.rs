//! Parses arbitrary condition text, then compiles whatever parses as a rule: no input
//! may panic, and every error must carry a position inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match rampart_detect::parse_condition(text) {
        Ok(_) => {
            let file = format!(
                "- rule: fuzz\n  desc: d\n  condition: '{}'\n  output: o\n  priority: INFO\n",
                text.replace('\'', "''")
            );
            let _ = rampart_detect::load_texts(&[("fuzz.yaml".into(), file)]);
        }
        Err(e) => assert!(e.offset <= text.len()),
    }
});
