#![no_main]
use libfuzzer_sys::fuzz_target;
use rampart_scan::catalog::lang;

fuzz_target!(|data: &[u8]| {
    let _ = lang::parse_python_metadata("x.dist-info/METADATA", data);
    let _ = lang::parse_package_json("node_modules/x/package.json", data);
    let _ = lang::parse_gemspec("specifications/x.gemspec", data);
    let _ = lang::parse_composer_installed("vendor/composer/installed.json", data);
});
