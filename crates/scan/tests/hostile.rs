//! Hostile and broken input: path traversal, absolute paths, escaping symlinks,
//! decompression bombs, oversized files, malformed package databases.

mod common;

use common::*;
use rampart_scan::catalog::Collector;
use rampart_scan::model::PackageKind;
use rampart_scan::scanner::{scan, ScanOptions, Target};
use rampart_scan::walk::{walk_tar, Limits};
use rampart_scan::ScanError;

const STATUS: &str =
    "Package: good\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n";
const EVIL_STATUS: &str = "Package: evil\nStatus: install ok installed\nVersion: 6.6.6\n\n";

fn walk(layer: &[u8], limits: &Limits) -> rampart_scan::Result<rampart_scan::walk::LayerEvidence> {
    let collector = Collector::new(false, limits.clone());
    walk_tar(layer, "test layer", &collector, limits)
}

#[test]
fn parent_components_are_refused_and_absolute_paths_stay_inside() {
    let outside = tempfile::tempdir().unwrap();
    let canary = outside.path().join("written-by-scan");
    let traversal = format!("../../../../../..{}", canary.display());
    let layer = layer(&[
        (traversal.as_str(), file(EVIL_STATUS)),
        ("var/lib/dpkg/../dpkg/status", file(EVIL_STATUS)),
        ("/var/lib/dpkg/status", file(STATUS)),
    ]);
    let evidence = walk(&layer, &Limits::default()).unwrap();
    // The absolute entry is read as the image's own var/lib/dpkg/status.
    let status = &evidence.files["var/lib/dpkg/status"];
    assert_eq!(status.packages.len(), 1);
    assert_eq!(status.packages[0].name, "good");
    // Both `..` entries were refused with a warning naming them.
    assert_eq!(evidence.warnings.len(), 2, "{:?}", evidence.warnings);
    assert!(evidence
        .warnings
        .iter()
        .any(|w| w.path == traversal && w.message.contains("'..'")));
    assert!(!evidence.files.keys().any(|k| k.contains("..")));
    assert!(!canary.exists(), "the scan must never write outside");
}

#[test]
fn symlinks_are_never_followed() {
    // An image whose package database is a link to the host's: the host's packages
    // must not appear, and a warning names the link.
    let built = vec![layer(&[
        ("etc/os-release", file("ID=debian\nVERSION_ID=12\n")),
        (
            "var/lib/dpkg/status",
            Item::Symlink("/var/lib/dpkg/status".into()),
        ),
        (
            "lib/apk/db/installed",
            Item::Symlink("../../../../../../../../var/lib/dpkg/status".into()),
        ),
        (
            "usr/lib/python3/dist-packages/x.dist-info/METADATA",
            Item::HardLink("/etc/passwd".into()),
        ),
    ])];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    std::fs::write(&path, docker_save(&built, Compression::None, "x:1")).unwrap();
    let report = scan(&Target::ImageArchive(path), "x", &ScanOptions::default()).unwrap();
    assert!(report.packages.is_empty(), "{:?}", report.packages);
    assert!(report
        .warnings
        .iter()
        .any(|w| w.path == "var/lib/dpkg/status" && w.message.contains("not followed")));

    // The same on a directory: a symlinked database is not read.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("var/lib/dpkg")).unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    std::fs::write(root.path().join("etc/os-release"), "ID=debian\n").unwrap();
    std::os::unix::fs::symlink(
        "/var/lib/dpkg/status",
        root.path().join("var/lib/dpkg/status"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/usr", root.path().join("usr")).unwrap();
    let report = scan(
        &Target::Directory(root.path().to_path_buf()),
        "d",
        &ScanOptions::default(),
    )
    .unwrap();
    assert!(report.packages.is_empty(), "{:?}", report.packages.len());
}

#[test]
fn decompression_bomb_is_stopped_with_the_entry_named() {
    let big = vec![0u8; 8 << 20];
    let layer_bytes = layer(&[
        ("var/lib/dpkg/status", file(STATUS)),
        ("zeros.bin", file(&big)),
    ]);
    let bomb = compress(&layer_bytes, Compression::Gzip);
    assert!(
        bomb.len() < 100_000,
        "the bomb compresses well: {}",
        bomb.len()
    );
    let limits = Limits {
        max_layer_bytes: 1 << 20,
        ..Limits::default()
    };
    let decompressed = rampart_scan::walk::decompress(bomb.as_slice()).unwrap();
    let collector = Collector::new(false, limits.clone());
    let error = walk_tar(decompressed, "layer sha256:bomb", &collector, &limits).unwrap_err();
    match &error {
        ScanError::LimitExceeded { entry, limit, .. } => {
            assert_eq!(entry, "zeros.bin");
            assert_eq!(*limit, 1 << 20);
        }
        other => panic!("expected LimitExceeded, got {other}"),
    }
    assert!(error.to_string().contains("zeros.bin"));
}

#[test]
fn oversized_files_are_skipped_with_a_warning() {
    let status = format!("{STATUS}{}", "X-Padding: y\n".repeat(1000));
    let layer = layer(&[
        ("var/lib/dpkg/status", file(&status)),
        ("lib/apk/db/installed", file("P:musl\nV:1\n")),
    ]);
    let limits = Limits {
        max_file_bytes: 4096,
        ..Limits::default()
    };
    let evidence = walk(&layer, &limits).unwrap();
    let skipped = &evidence.files["var/lib/dpkg/status"];
    assert!(skipped.packages.is_empty());
    assert!(
        skipped.warnings[0].contains("over the file size limit"),
        "{:?}",
        skipped.warnings
    );
    assert_eq!(evidence.files["lib/apk/db/installed"].packages.len(), 1);
}

#[test]
fn malformed_databases_are_reported_and_the_scan_continues() {
    let layers = vec![layer(&[
        ("etc/os-release", file("ID=alpine\nVERSION_ID=3.19.1\n")),
        (
            "var/lib/rpm/Packages",
            file(b"\x00\x01garbage that is not berkeley db".repeat(20)),
        ),
        (
            "var/lib/rpm/rpmdb.sqlite",
            file("SQLite format 3\0 but truncated"),
        ),
        (
            "usr/lib/python3/site-packages/bad.dist-info/METADATA",
            file("no headers here"),
        ),
        ("app/node_modules/broken/package.json", file("{\"name\": ")),
        (
            "lib/apk/db/installed",
            file("P:musl\nV:1.2.4-r2\nA:x86_64\n\n"),
        ),
    ])];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    std::fs::write(&path, docker_save(&layers, Compression::Gzip, "x:1")).unwrap();
    let report = scan(&Target::ImageArchive(path), "x", &ScanOptions::default()).unwrap();
    let apk: Vec<&str> = report
        .packages
        .iter()
        .filter(|p| p.kind == PackageKind::Apk)
        .map(|p| p.purl.as_str())
        .collect();
    assert_eq!(
        apk,
        vec!["pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1"]
    );
    let warned: Vec<&str> = report.warnings.iter().map(|w| w.path.as_str()).collect();
    for path in [
        "var/lib/rpm/Packages",
        "var/lib/rpm/rpmdb.sqlite",
        "usr/lib/python3/site-packages/bad.dist-info/METADATA",
        "app/node_modules/broken/package.json",
    ] {
        assert!(warned.contains(&path), "no warning for {path}: {warned:?}");
    }
    assert!(report.warnings.iter().all(|w| w.layer.is_some()));
}

#[test]
fn hostile_image_manifests_are_refused() {
    // A manifest pointing outside the archive, and a digest trying to climb out of blobs/.
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        serde_json::json!([{"Config": "../../etc/passwd", "RepoTags": [], "Layers": []}]);
    let archive = pack_tar(&[(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    )]);
    let path = dir.path().join("a.tar");
    std::fs::write(&path, archive).unwrap();
    let error = scan(&Target::ImageArchive(path), "x", &ScanOptions::default()).unwrap_err();
    assert!(error.to_string().contains(".."), "{error}");

    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:../../../etc/passwd", "size": 1}]});
    let layout = dir.path().join("layout");
    write_tree(
        &layout,
        &[
            ("index.json".into(), serde_json::to_vec(&index).unwrap()),
            ("oci-layout".into(), b"{}".to_vec()),
        ],
    );
    let error = scan(&Target::OciLayout(layout), "x", &ScanOptions::default()).unwrap_err();
    assert!(error.to_string().contains("not a digest"), "{error}");
}
