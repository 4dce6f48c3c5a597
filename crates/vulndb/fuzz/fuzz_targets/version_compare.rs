//! Every version comparator must be total and antisymmetric on arbitrary input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_vulndb::version::{compare, VersionScheme};

const SCHEMES: [VersionScheme; 13] = [
    VersionScheme::Dpkg,
    VersionScheme::Rpm,
    VersionScheme::Apk,
    VersionScheme::Pep440,
    VersionScheme::Go,
    VersionScheme::Semver,
    VersionScheme::Maven,
    VersionScheme::RubyGems,
    VersionScheme::Packagist,
    VersionScheme::NuGet,
    VersionScheme::Cran,
    VersionScheme::Hackage,
    VersionScheme::Pub,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = text.split_once('\n').unwrap_or((text, ""));
    for scheme in SCHEMES {
        let forward = compare(scheme, a, b);
        assert_eq!(forward.reverse(), compare(scheme, b, a), "{scheme:?} {a:?} {b:?}");
        assert_eq!(compare(scheme, a, a), std::cmp::Ordering::Equal, "{scheme:?} {a:?}");
    }
});
