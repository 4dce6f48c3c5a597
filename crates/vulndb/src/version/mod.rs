//! Version ordering per ecosystem.
//!
//! Each submodule implements one ecosystem's own rules; [`compare`] dispatches on a
//! [`VersionScheme`], which [`VersionScheme::for_ecosystem`] derives from an OSV
//! ecosystem name (`"Debian:12"`, `"PyPI"`, …). Every comparator is total: a string that
//! breaks the ecosystem's grammar still gets a deterministic place in the order (the
//! ecosystem's own fallback where it has one), because advisories in the wild carry such
//! strings and matching must not stop on them.

pub mod apk;
pub mod cran;
pub mod dpkg;
pub mod golang;
pub mod hackage;
pub mod maven;
pub mod nuget;
pub mod packagist;
pub mod pep440;
pub mod pubdev;
pub mod rpm;
pub mod rubygems;
pub mod semver;

use std::cmp::Ordering;

/// The version order an ecosystem uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionScheme {
    /// Debian, Ubuntu: `dpkg --compare-versions`.
    Dpkg,
    /// Red Hat and derivatives, SUSE, Mariner: `rpmvercmp`.
    Rpm,
    /// Alpine, Wolfi, Chainguard: `apk version -t`.
    Apk,
    /// PyPI: PEP 440 with the setuptools legacy fallback.
    Pep440,
    /// Go modules and the Go toolchain: semver with `v`, pseudo-versions, `+incompatible`.
    Go,
    /// npm, crates.io, Hex and OSV `SEMVER` ranges: Semantic Versioning 2.0.
    Semver,
    /// Maven: `ComparableVersion`.
    Maven,
    /// RubyGems: `Gem::Version`.
    RubyGems,
    /// Packagist: PHP `version_compare` as Composer normalises it.
    Packagist,
    /// NuGet: semver with a fourth numeric part, case-insensitive labels.
    NuGet,
    /// CRAN: `package_version`.
    Cran,
    /// Hackage: `Data.Version`.
    Hackage,
    /// Pub (Dart): semver where build metadata orders too.
    Pub,
}

impl VersionScheme {
    /// The scheme for an OSV ecosystem name, ignoring any `:release` suffix.
    /// Returns `None` for ecosystems Rampart does not order (their advisories still
    /// match through explicit `versions` lists).
    pub fn for_ecosystem(ecosystem: &str) -> Option<VersionScheme> {
        let base = ecosystem_base(ecosystem);
        let scheme = match base {
            "Debian" | "Ubuntu" => VersionScheme::Dpkg,
            "Red Hat" | "AlmaLinux" | "Rocky Linux" | "SUSE" | "openSUSE" | "Mariner"
            | "Azure Linux" | "Mageia" | "openEuler" | "Photon OS" | "Oracle Linux" | "Fedora"
            | "CentOS" | "Amazon Linux" => VersionScheme::Rpm,
            "Alpine" | "Wolfi" | "Chainguard" | "Alpaquita" | "BellSoft Hardened Containers" => {
                VersionScheme::Apk
            }
            "PyPI" => VersionScheme::Pep440,
            "Go" => VersionScheme::Go,
            "npm" | "crates.io" | "Hex" | "Bitnami" | "SwiftURL" => VersionScheme::Semver,
            "Maven" => VersionScheme::Maven,
            "RubyGems" => VersionScheme::RubyGems,
            "Packagist" => VersionScheme::Packagist,
            "NuGet" => VersionScheme::NuGet,
            "CRAN" => VersionScheme::Cran,
            "Hackage" | "GHC" => VersionScheme::Hackage,
            "Pub" => VersionScheme::Pub,
            _ => return None,
        };
        Some(scheme)
    }

    /// Whether advisories in this scheme name the distribution's source package.
    pub fn is_distro(self) -> bool {
        matches!(
            self,
            VersionScheme::Dpkg | VersionScheme::Rpm | VersionScheme::Apk
        )
    }
}

/// The ecosystem name without its release suffix: `"Debian:12"` → `"Debian"`.
pub fn ecosystem_base(ecosystem: &str) -> &str {
    ecosystem.split(':').next().unwrap_or(ecosystem)
}

/// Orders two versions by the scheme's rules.
pub fn compare(scheme: VersionScheme, a: &str, b: &str) -> Ordering {
    match scheme {
        VersionScheme::Dpkg => dpkg::compare(a, b),
        VersionScheme::Rpm => rpm::compare(a, b),
        VersionScheme::Apk => apk::compare(a, b),
        VersionScheme::Pep440 => pep440::compare(a, b),
        VersionScheme::Go => golang::compare(a, b),
        VersionScheme::Semver => semver::compare(a, b),
        VersionScheme::Maven => maven::compare(a, b),
        VersionScheme::RubyGems => rubygems::compare(a, b),
        VersionScheme::Packagist => packagist::compare(a, b),
        VersionScheme::NuGet => nuget::compare(a, b),
        VersionScheme::Cran => cran::compare(a, b),
        VersionScheme::Hackage => hackage::compare(a, b),
        VersionScheme::Pub => pubdev::compare(a, b),
    }
}

/// Compares two strings of ASCII digits by numeric value, of any length (versions carry
/// dates and hashes that overflow u64).
pub(crate) fn cmp_decimal(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// True when `s` is a non-empty run of ASCII digits.
pub(crate) fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

/// Compares two lists of decimal components, the shorter padded with zeros.
pub(crate) fn cmp_decimal_lists<S: AsRef<str>>(a: &[S], b: &[S]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).map(AsRef::as_ref).unwrap_or("0");
        let y = b.get(i).map(AsRef::as_ref).unwrap_or("0");
        let ord = cmp_decimal(x, y);
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}
