//! Loads arbitrary bytes as a rules file: errors are fine, panics are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let (_set, errors) = rampart_detect::load_texts(&[("fuzz.yaml".into(), text)]);
    for e in errors {
        assert!(!e.message.is_empty());
    }
});
