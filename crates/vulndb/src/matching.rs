//! Evaluating OSV `affected` entries against one installed version.

use std::cmp::Ordering;
use std::collections::HashSet;

use crate::osv::{OsvEvent, OsvRange};
use crate::version::{self, golang, pep440, VersionScheme};

/// The key an advisory's package name is stored and looked up under: PyPI names are
/// normalised (PEP 503), every other ecosystem's names are case-sensitive as written.
pub fn name_key(ecosystem: &str, name: &str) -> String {
    match version::ecosystem_base(ecosystem) {
        "PyPI" => pep440::normalize_name(name),
        _ => name.trim().to_string(),
    }
}

/// What an affected entry says about one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub affected: bool,
    /// The lowest `fixed` version above the installed one in an affecting range.
    pub fixed_version: Option<String>,
}

fn comparator(
    scheme: Option<VersionScheme>,
    range_kind: &str,
) -> Option<fn(&str, &str) -> Ordering> {
    match (range_kind, scheme) {
        // Go's SEMVER ranges also have to accept toolchain spellings (go1.21.3).
        ("SEMVER", Some(VersionScheme::Go)) => Some(golang::compare),
        ("SEMVER", _) => Some(version::semver::compare),
        ("ECOSYSTEM", Some(scheme)) => Some(match scheme {
            VersionScheme::Dpkg => version::dpkg::compare,
            VersionScheme::Rpm => version::rpm::compare,
            VersionScheme::Apk => version::apk::compare,
            VersionScheme::Pep440 => version::pep440::compare,
            VersionScheme::Go => version::golang::compare,
            VersionScheme::Semver => version::semver::compare,
            VersionScheme::Maven => version::maven::compare,
            VersionScheme::RubyGems => version::rubygems::compare,
            VersionScheme::Packagist => version::packagist::compare,
            VersionScheme::NuGet => version::nuget::compare,
            VersionScheme::Cran => version::cran::compare,
            VersionScheme::Hackage => version::hackage::compare,
            VersionScheme::Pub => version::pubdev::compare,
        }),
        _ => None,
    }
}

fn event_version(event: &OsvEvent) -> Option<&str> {
    event
        .introduced
        .as_deref()
        .or(event.fixed.as_deref())
        .or(event.last_affected.as_deref())
        .or(event.limit.as_deref())
}

/// One range ready for evaluation: its comparator chosen and its events sorted once
/// (`introduced: "0"` first, then by version).
#[derive(Debug, Clone)]
pub struct PreparedRange {
    cmp: fn(&str, &str) -> Ordering,
    events: Vec<OsvEvent>,
    /// For PyPI, each event's version parsed once: PEP 440 parsing dominates matching
    /// time otherwise (PyPI packages carry hundreds of advisories).
    pep440_events: Option<Vec<pep440::PyPiVersion>>,
}

impl PreparedRange {
    fn new(cmp: fn(&str, &str) -> Ordering, events: &[OsvEvent], is_pep440: bool) -> PreparedRange {
        let mut events: Vec<OsvEvent> = events
            .iter()
            .filter(|e| event_version(e).is_some())
            .cloned()
            .collect();
        let is_zero = |e: &OsvEvent| e.introduced.as_deref() == Some("0");
        events.sort_by(|a, b| match (is_zero(a), is_zero(b)) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            _ => cmp(
                event_version(a).unwrap_or_default(),
                event_version(b).unwrap_or_default(),
            ),
        });
        let pep440_events = is_pep440.then(|| {
            events
                .iter()
                .map(|e| pep440::parse(event_version(e).unwrap_or_default()))
                .collect()
        });
        PreparedRange {
            cmp,
            events,
            pep440_events,
        }
    }

    /// Compares `version` with event `index`'s version.
    fn cmp_event(
        &self,
        version: &str,
        parsed: Option<&pep440::PyPiVersion>,
        index: usize,
        other: &str,
    ) -> Ordering {
        match (
            parsed,
            self.pep440_events.as_ref().and_then(|p| p.get(index)),
        ) {
            (Some(v), Some(e)) => pep440::compare_parsed(v, e),
            _ => (self.cmp)(version, other),
        }
    }

    /// Evaluates the range as the OSV schema specifies: walking the sorted events,
    /// `introduced` turns affected on at or above it, `fixed` off at or above it,
    /// `last_affected` off above it; `limit`s cap the range (`v < limit`).
    pub fn verdict(&self, query: &Query<'_>) -> Verdict {
        let version = query.version();
        let parsed = query.pep440.as_ref();
        let mut affected = false;
        let mut limited = false;
        let mut below_a_limit = false;
        for (index, event) in self.events.iter().enumerate() {
            let cmp = |other: &str| self.cmp_event(version, parsed, index, other);
            if let Some(introduced) = &event.introduced {
                if introduced == "0" || cmp(introduced) != Ordering::Less {
                    affected = true;
                }
            } else if let Some(fixed) = &event.fixed {
                if cmp(fixed) != Ordering::Less {
                    affected = false;
                }
            } else if let Some(last) = &event.last_affected {
                if cmp(last) == Ordering::Greater {
                    affected = false;
                }
            } else if let Some(limit) = &event.limit {
                limited = true;
                if limit == "*" || cmp(limit) == Ordering::Less {
                    below_a_limit = true;
                }
            }
        }
        if limited && !below_a_limit {
            affected = false;
        }
        let fixed_version = if affected { self.next_fix(query) } else { None };
        Verdict {
            affected,
            fixed_version,
        }
    }

    /// The lowest `fixed` above `version` (events are sorted, so the first one).
    fn next_fix(&self, query: &Query<'_>) -> Option<String> {
        let parsed = query.pep440.as_ref();
        self.events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.fixed.as_deref()?)))
            .find(|(i, f)| self.cmp_event(query.version(), parsed, *i, f) == Ordering::Less)
            .map(|(_, f)| f.to_string())
    }
}

/// Canonical spelling for "is this version listed": equal versions in the ecosystem's
/// order get the same key where that is cheap to compute (PyPI `1.0` = `1.0.0`, Go
/// `v1.2.3` = `1.2.3` = `go1.2.3`); elsewhere the text itself.
pub fn listed_key(scheme: Option<VersionScheme>, version: &str) -> String {
    match scheme {
        Some(VersionScheme::Pep440) => pep440::canonical(version),
        Some(VersionScheme::Go) => golang::normalize(version),
        Some(VersionScheme::Semver) => version.trim().trim_start_matches('v').to_string(),
        _ => version.trim().to_string(),
    }
}

/// An installed version prepared for evaluation against many entries of one scheme.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub installed: &'a str,
    listed: String,
    pep440: Option<pep440::PyPiVersion>,
    /// Go versions in OSV's spelling (`go1.21.3` → `1.21.3`), computed once.
    go: Option<String>,
}

impl<'a> Query<'a> {
    pub fn new(scheme: Option<VersionScheme>, installed: &'a str) -> Query<'a> {
        Query {
            installed,
            listed: listed_key(scheme, installed),
            pep440: (scheme == Some(VersionScheme::Pep440)).then(|| pep440::parse(installed)),
            go: (scheme == Some(VersionScheme::Go)).then(|| golang::normalize(installed)),
        }
    }

    /// The version the range comparators see.
    fn version(&self) -> &str {
        self.go.as_deref().unwrap_or(self.installed)
    }
}

fn normalize_go_event(event: &OsvEvent) -> OsvEvent {
    let norm = |v: &Option<String>| {
        v.as_deref().map(|v| {
            if v == "0" || v == "*" {
                v.to_string()
            } else {
                golang::normalize(v)
            }
        })
    };
    OsvEvent {
        introduced: norm(&event.introduced),
        fixed: norm(&event.fixed),
        last_affected: norm(&event.last_affected),
        limit: norm(&event.limit),
    }
}

/// An OSV `affected` entry ready for repeated evaluation.
#[derive(Debug, Clone)]
pub struct PreparedAffected {
    scheme: Option<VersionScheme>,
    listed: HashSet<String>,
    ranges: Vec<PreparedRange>,
}

impl PreparedAffected {
    /// Prepares an entry of `ecosystem`. Ranges other than ECOSYSTEM and SEMVER, and
    /// ECOSYSTEM ranges of ecosystems without a known order, are left out.
    pub fn new(ecosystem: &str, ranges: &[OsvRange], versions: &[String]) -> PreparedAffected {
        let scheme = VersionScheme::for_ecosystem(ecosystem);
        PreparedAffected {
            scheme,
            listed: versions.iter().map(|v| listed_key(scheme, v)).collect(),
            ranges: ranges
                .iter()
                .filter_map(|r| {
                    let is_pep440 = scheme == Some(VersionScheme::Pep440) && r.kind == "ECOSYSTEM";
                    if scheme == Some(VersionScheme::Go)
                        && (r.kind == "SEMVER" || r.kind == "ECOSYSTEM")
                    {
                        // Normalised once here and in the query, then plain semver.
                        let events: Vec<OsvEvent> =
                            r.events.iter().map(normalize_go_event).collect();
                        return Some(PreparedRange::new(version::semver::compare, &events, false));
                    }
                    Some(PreparedRange::new(
                        comparator(scheme, &r.kind)?,
                        &r.events,
                        is_pep440,
                    ))
                })
                .collect(),
        }
    }

    /// Whether `version` is affected: listed explicitly, or inside any range.
    pub fn verdict(&self, version: &str) -> Verdict {
        self.verdict_for(&Query::new(self.scheme, version))
    }

    /// The scheme this entry orders by (what [`listed_key`] needs).
    pub fn scheme(&self) -> Option<VersionScheme> {
        self.scheme
    }

    /// [`PreparedAffected::verdict`] with the query prepared by the caller, once per
    /// package rather than once per advisory (`query` must be for [`Self::scheme`]).
    pub fn verdict_for(&self, query: &Query<'_>) -> Verdict {
        if self.listed.is_empty() && self.ranges.is_empty() {
            return Verdict {
                affected: false,
                fixed_version: None,
            };
        }
        let mut verdict = Verdict {
            affected: self.listed.contains(&query.listed),
            fixed_version: None,
        };
        for range in &self.ranges {
            let v = range.verdict(query);
            if v.affected {
                verdict.affected = true;
                if verdict.fixed_version.is_none() {
                    verdict.fixed_version = v.fixed_version;
                }
            }
        }
        if verdict.affected && verdict.fixed_version.is_none() {
            // A listed version can still have a fix named by a range.
            verdict.fixed_version = self.ranges.iter().find_map(|r| r.next_fix(query));
        }
        verdict
    }
}

/// Evaluates one affected entry once (prepare and evaluate).
pub fn affected_verdict(
    ecosystem: &str,
    version: &str,
    ranges: &[OsvRange],
    versions: &[String],
) -> Verdict {
    PreparedAffected::new(ecosystem, ranges, versions).verdict(version)
}
