//! OSV range semantics: introduced/fixed/last_affected/limit, unsorted events,
//! multiple introduced, listed versions, and severity from vectors and labels.

use rampart_vulndb::matching::affected_verdict;
use rampart_vulndb::osv::{OsvEvent, OsvRange};
use rampart_vulndb::severity::cvss_base_score;
use rampart_vulndb::Severity;

fn ev(kind: &str, v: &str) -> OsvEvent {
    let mut e = OsvEvent::default();
    let v = Some(v.to_string());
    match kind {
        "introduced" => e.introduced = v,
        "fixed" => e.fixed = v,
        "last_affected" => e.last_affected = v,
        _ => e.limit = v,
    }
    e
}

fn range(kind: &str, events: Vec<OsvEvent>) -> Vec<OsvRange> {
    vec![OsvRange {
        kind: kind.into(),
        events,
    }]
}

#[test]
fn fixed_excludes_the_fix_and_later() {
    let r = range(
        "ECOSYSTEM",
        vec![ev("introduced", "1.0"), ev("fixed", "1.5")],
    );
    let at = |v: &str| affected_verdict("PyPI", v, &r, &[]).affected;
    assert!(!at("0.9"));
    assert!(at("1.0"));
    assert!(at("1.4.99"));
    assert!(at("1.5rc1"), "a pre-release of the fix is before it");
    assert!(!at("1.5"));
    assert!(!at("2.0"));
    assert_eq!(
        affected_verdict("PyPI", "1.2", &r, &[])
            .fixed_version
            .as_deref(),
        Some("1.5")
    );
}

#[test]
fn last_affected_includes_itself_and_limit_caps() {
    let r = range(
        "SEMVER",
        vec![ev("introduced", "0"), ev("last_affected", "2.3.4")],
    );
    assert!(affected_verdict("npm", "2.3.4", &r, &[]).affected);
    assert!(!affected_verdict("npm", "2.3.5", &r, &[]).affected);
    assert_eq!(
        affected_verdict("npm", "2.0.0", &r, &[]).fixed_version,
        None
    );
    let limited = range(
        "SEMVER",
        vec![ev("introduced", "1.0.0"), ev("limit", "1.8.0")],
    );
    assert!(affected_verdict("npm", "1.7.9", &limited, &[]).affected);
    assert!(!affected_verdict("npm", "1.8.0", &limited, &[]).affected);
}

#[test]
fn unsorted_events_with_several_introductions() {
    // Written out of order on purpose: the evaluation sorts by version.
    let r = range(
        "ECOSYSTEM",
        vec![
            ev("fixed", "2.4.1"),
            ev("introduced", "2.0.0"),
            ev("fixed", "1.9.3"),
            ev("introduced", "0"),
        ],
    );
    let at = |v: &str| affected_verdict("crates.io", v, &r, &[]).affected;
    assert!(at("1.0.0"));
    assert!(!at("1.9.3"));
    assert!(!at("1.9.10"));
    assert!(at("2.0.0"));
    assert!(!at("2.4.1"));
    assert_eq!(
        affected_verdict("crates.io", "2.1.0", &r, &[])
            .fixed_version
            .as_deref(),
        Some("2.4.1")
    );
}

#[test]
fn listed_versions_match_in_the_ecosystems_equality() {
    let listed = vec!["1.0".to_string(), "v2.3.0".to_string()];
    assert!(affected_verdict("PyPI", "1.0.0", &[], &listed).affected);
    assert!(!affected_verdict("PyPI", "1.0.1", &[], &listed).affected);
    assert!(affected_verdict("Go", "2.3.0", &[], &listed).affected);
    // Unknown ecosystems match by listed versions only.
    assert!(affected_verdict("SomethingNew", "1.0", &[], &listed).affected);
    let r = range("ECOSYSTEM", vec![ev("introduced", "0"), ev("fixed", "1.0")]);
    assert!(!affected_verdict("SomethingNew", "0.5", &r, &[]).affected);
}

#[test]
fn git_ranges_are_not_evaluated() {
    let r = range("GIT", vec![ev("introduced", "0"), ev("fixed", "abc123")]);
    assert!(!affected_verdict("Go", "v1.0.0", &r, &[]).affected);
}

#[test]
fn cvss_scores_and_labels() {
    let critical = cvss_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap();
    assert!((critical - 9.8).abs() < 0.01);
    assert_eq!(Severity::from_score(critical), Severity::Critical);
    let medium = cvss_base_score("CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N").unwrap();
    assert_eq!(Severity::from_score(medium), Severity::Medium, "{medium}");
    let v4 =
        cvss_base_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").unwrap();
    assert!((v4 - 9.3).abs() < 0.01, "{v4}");
    assert!(cvss_base_score("CVSS:3.1/AV:X").is_none());
    assert_eq!(Severity::from_label("MODERATE"), Some(Severity::Medium));
    assert_eq!("critical".parse::<Severity>().unwrap(), Severity::Critical);
    assert!("severe".parse::<Severity>().is_err());
    assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Unknown);
    assert_eq!(serde_json::to_string(&Severity::High).unwrap(), "\"high\"");
}

#[test]
fn go_pseudo_versions_and_incompatible() {
    use rampart_vulndb::version::golang::compare;
    use std::cmp::Ordering::*;
    assert_eq!(
        compare(
            "v0.0.0-20191109021931-daa7c04131f5",
            "v0.0.0-20200101000000-aaaaaaaaaaaa"
        ),
        Less
    );
    // A pseudo-version built on top of v1.2.3 sorts after it and before v1.2.4.
    assert_eq!(
        compare("v1.2.3", "v1.2.4-0.20200101000000-abcdefabcdef"),
        Less
    );
    assert_eq!(
        compare("v1.2.4-0.20200101000000-abcdefabcdef", "v1.2.4"),
        Less
    );
    // +incompatible is build metadata.
    assert_eq!(compare("v2.0.0+incompatible", "v2.0.0"), Equal);
    assert_eq!(
        compare("v2.1.0+incompatible", "v2.0.9+incompatible"),
        Greater
    );
    assert_eq!(compare("go1.21rc2", "1.21.0-rc.2"), Equal);
    assert_eq!(compare("go1.21", "1.21.0"), Equal);
    assert_eq!(compare("go1.9beta1", "go1.9"), Less);
}

#[test]
fn rpm_epochs_and_tildes() {
    use rampart_vulndb::version::rpm::compare;
    use std::cmp::Ordering::*;
    assert_eq!(compare("1:3.0.7-27.el9", "3.0.9-1.el9"), Greater);
    assert_eq!(compare("0:3.0.7-27.el9", "3.0.7-27.el9"), Equal);
    assert_eq!(compare("3.0.7~rc1-1", "3.0.7-1"), Less);
    assert_eq!(compare("3.0.7^git1-1", "3.0.7-1"), Greater);
    assert_eq!(compare("2.34-60.el9", "2.34-100.el9"), Less);
}

#[test]
fn the_database_handle_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<rampart_vulndb::VulnDb>();
    let db = rampart_vulndb::VulnDb::open_in_memory().unwrap();
    let stats = std::thread::spawn(move || db.stats().unwrap())
        .join()
        .unwrap();
    assert_eq!(stats.advisories, 0);
}
