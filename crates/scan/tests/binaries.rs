//! Binaries and archives found on this machine: Go build info in Debian's Go
//! programs (oracle: the package's `Built-Using: golang-1.N (= VERSION)`), a
//! cargo-auditable section added to a real ELF with objcopy, and Maven jars from
//! Debian's /usr/share/maven-repo (oracle: the repository layout of their path).

use std::io::Write;
use std::path::Path;

use rampart_scan::catalog::{binary, java};
use rampart_scan::model::PackageKind;
use rampart_scan::walk::Limits;

/// (binary path, Go version the package was built with) for installed Go programs.
fn go_programs() -> Vec<(String, String)> {
    let status = std::fs::read_to_string("/var/lib/dpkg/status").unwrap();
    let mut out = Vec::new();
    for (package, binary) in [
        ("containerd", "/usr/bin/containerd"),
        ("docker.io", "/usr/bin/docker"),
        ("runc", "/usr/sbin/runc"),
    ] {
        let Some(stanza) = status
            .split("\n\n")
            .find(|s| s.starts_with(&format!("Package: {package}\n")))
        else {
            continue;
        };
        let Some(built_using) = stanza.lines().find_map(|l| l.strip_prefix("Built-Using: ")) else {
            continue;
        };
        // "golang-1.19 (= 1.19.8-2), ..." → "1.19.8"
        let Some(go) = built_using.split(", ").find(|s| s.starts_with("golang-1.")) else {
            continue;
        };
        let Some(version) = go.split("(= ").nth(1).map(|v| {
            v.trim_end_matches(')')
                .split('-')
                .next()
                .unwrap()
                .to_string()
        }) else {
            continue;
        };
        if Path::new(binary).is_file() {
            out.push((binary.to_string(), version));
        }
    }
    out
}

#[test]
fn go_build_info_names_the_go_version_debian_built_with() {
    let programs = go_programs();
    if programs.is_empty() {
        rampart_testbed::skip_or_fail(
            "no Go programs from Debian packages (containerd, docker.io, runc) are installed",
        );
        return;
    }
    for (path, go_version) in programs {
        let data = std::fs::read(&path).unwrap();
        let packages = binary::parse(&path, &data, &Limits::default()).unwrap();
        let stdlib = packages
            .iter()
            .find(|p| p.name == "stdlib")
            .unwrap_or_else(|| panic!("{path}: no Go build info found"));
        assert_eq!(stdlib.version, format!("v{go_version}"), "{path}");
        assert!(
            packages
                .iter()
                .all(|p| p.kind == PackageKind::Go && p.version.starts_with('v')),
            "{path}: {packages:?}"
        );
    }
}

#[test]
fn cargo_auditable_section_added_by_objcopy() {
    let json = br#"{"packages":[{"name":"tool","version":"0.1.0","source":"local","root":true,"dependencies":[1,2]},{"name":"smallvec","version":"1.6.0","source":"crates.io","kind":"runtime"},{"name":"cc","version":"1.0.0","source":"crates.io","kind":"build"},{"name":"private","version":"0.1.0","source":"git"}]}"#;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(json).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let section = dir.path().join("dep-v0");
    std::fs::write(&section, encoder.finish().unwrap()).unwrap();
    let output = dir.path().join("tool");
    let status = std::process::Command::new("objcopy")
        .arg("--add-section")
        .arg(format!(".dep-v0={}", section.display()))
        .arg("/bin/true")
        .arg(&output)
        .status();
    match status {
        Ok(s) if s.success() => {}
        _ => {
            rampart_testbed::skip_or_fail("objcopy (binutils) is needed to build the test binary");
            return;
        }
    }
    let packages = binary::parse(
        "usr/bin/tool",
        &std::fs::read(&output).unwrap(),
        &Limits::default(),
    )
    .unwrap();
    let names: Vec<(&str, &str)> = packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(names, vec![("smallvec", "1.6.0"), ("cc", "1.0.0")]);
    assert!(packages.iter().all(|p| p.kind == PackageKind::Cargo));
    // A plain ELF without the section has no packages.
    assert!(binary::parse(
        "bin/true",
        &std::fs::read("/bin/true").unwrap(),
        &Limits::default()
    )
    .unwrap()
    .is_empty());
}

#[test]
fn debian_maven_repository_jars() {
    let root = Path::new("/usr/share/maven-repo");
    if !root.is_dir() {
        rampart_testbed::skip_or_fail(
            "/usr/share/maven-repo is absent (any Debian Java library package provides it)",
        );
        return;
    }
    let mut checked = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // Layout: GROUP/PATH/ARTIFACT/VERSION/ARTIFACT-VERSION.jar (links into /usr/share/java),
            // skipping Debian's "debian" alias versions.
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let parts: Vec<&str> = relative.split('/').collect();
            if !name.ends_with(".jar") || parts.len() < 4 {
                continue;
            }
            let version = parts[parts.len() - 2];
            let artifact = parts[parts.len() - 3];
            if version == "debian"
                || version.ends_with(".x")
                || name != format!("{artifact}-{version}.jar")
            {
                continue;
            }
            let group = parts[..parts.len() - 3].join(".");
            let packages = java::parse_archive(
                &relative,
                &std::fs::read(&path).unwrap(),
                &Limits::default(),
            )
            .unwrap();
            let has_pom = packages
                .iter()
                .any(|p| p.name.contains(':') && p.name.ends_with(&format!(":{artifact}")));
            if has_pom {
                let package = packages
                    .iter()
                    .find(|p| p.name == format!("{group}:{artifact}"))
                    .unwrap_or_else(|| panic!("{relative}: {packages:?}"));
                assert_eq!(package.version, version, "{relative}");
                checked += 1;
            }
        }
    }
    assert!(
        checked > 0,
        "no jar with Maven metadata under /usr/share/maven-repo"
    );
}
