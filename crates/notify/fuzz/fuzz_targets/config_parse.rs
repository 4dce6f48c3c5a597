//! Any text given as an outputs configuration is either accepted (and then valid) or
//! rejected with an error; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_notify::OutputsConfig;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = OutputsConfig::from_yaml_str(text) {
            assert!(config.queue_capacity >= 1);
        }
    }
});
