//! `docker:NAME` and `container:ID` against a real Docker engine, on an image made by
//! `docker import` of a busybox-static root filesystem plus a dpkg status file.
//! If no engine answers, the test starts a private `dockerd` (own socket, data root,
//! no networking) and stops it afterwards; without one it skips, and fails under CI.
#![cfg(feature = "docker")]

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::*;
use rampart_scan::model::PackageKind;
use rampart_scan::scanner::{scan, ScanOptions, Target};

struct PrivateDaemon {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        // Only the daemon this test started, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn docker(host: &Option<String>, args: &[&str]) -> std::io::Result<std::process::Output> {
    let mut command = Command::new("docker");
    if let Some(host) = host {
        command.env("DOCKER_HOST", host);
    }
    command.args(args).output()
}

fn engine() -> Result<(Option<String>, Option<PrivateDaemon>), String> {
    if docker(&None, &["info"]).is_ok_and(|o| o.status.success()) {
        return Ok((std::env::var("DOCKER_HOST").ok(), None));
    }
    if which("dockerd").is_none() {
        return Err("no Docker engine running and no dockerd to start".into());
    }
    let dir = tempfile::Builder::new()
        .prefix("rampart-dockerd")
        .tempdir_in("/tmp")
        .map_err(|e| e.to_string())?;
    let socket = dir.path().join("docker.sock");
    let log = std::fs::File::create(dir.path().join("dockerd.log")).map_err(|e| e.to_string())?;
    let child = Command::new("dockerd")
        .arg("--host")
        .arg(format!("unix://{}", socket.display()))
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .arg("--pidfile")
        .arg(dir.path().join("dockerd.pid"))
        .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting dockerd: {e}"))?;
    let host = format!("unix://{}", socket.display());
    let daemon = PrivateDaemon { child, _dir: dir };
    for _ in 0..60 {
        if docker(&Some(host.clone()), &["info"]).is_ok_and(|o| o.status.success()) {
            return Ok((Some(host), Some(daemon)));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(daemon._dir.path().join("dockerd.log")).unwrap_or_default();
    Err(format!(
        "dockerd did not come up: {}",
        log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
    ))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

fn busybox_stanza() -> Option<(String, String)> {
    let status = std::fs::read_to_string("/var/lib/dpkg/status").ok()?;
    let stanza = status
        .split("\n\n")
        .find(|s| s.starts_with("Package: busybox-static\n"))?;
    let version = stanza
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))?
        .to_string();
    Some((format!("{stanza}\n"), version))
}

#[test]
fn docker_image_and_running_container() {
    let Some((stanza, version)) = busybox_stanza() else {
        rampart_testbed::skip_or_fail(
            "busybox-static is not installed (apt-get install -y busybox-static)",
        );
        return;
    };
    let (host, _daemon) = match engine() {
        Ok(engine) => engine,
        Err(reason) => {
            rampart_testbed::skip_or_fail(&reason);
            return;
        }
    };
    if let Some(host) = &host {
        // bollard reads DOCKER_HOST; this test binary runs only this test.
        std::env::set_var("DOCKER_HOST", host);
    }
    let rootfs = layer(&[
        (
            "bin/busybox",
            Item::File(std::fs::read("/bin/busybox").unwrap(), 0o755),
        ),
        (
            "etc/os-release",
            file(std::fs::read("/etc/os-release").unwrap()),
        ),
        ("var/lib/dpkg/status", file(&stanza)),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("rootfs.tar");
    std::fs::write(&tar_path, &rootfs).unwrap();
    let image = "rampart-scan-e2e:busybox";
    let imported = docker(&host, &["import", tar_path.to_str().unwrap(), image]).unwrap();
    assert!(
        imported.status.success(),
        "docker import: {}",
        String::from_utf8_lossy(&imported.stderr)
    );

    let report = scan(
        &Target::parse(&format!("docker:{image}")),
        image,
        &ScanOptions::default(),
    )
    .unwrap();
    let deb = report
        .packages
        .iter()
        .find(|p| p.kind == PackageKind::Deb)
        .expect("dpkg package found in the image");
    assert_eq!(
        (deb.name.as_str(), deb.version.as_str()),
        ("busybox-static", version.as_str())
    );
    assert_eq!(
        deb.layer.as_deref(),
        Some(report.target.layers[0].diff_id.as_str())
    );
    assert!(report.target.image_id.is_some());
    // The export is bounded: a limit below the image's size stops it.
    let small = ScanOptions {
        limits: rampart_scan::Limits {
            max_layer_bytes: 64 << 10,
            ..Default::default()
        },
        ..ScanOptions::default()
    };
    let error = scan(&Target::parse(&format!("docker:{image}")), image, &small).unwrap_err();
    assert!(
        matches!(
            error,
            rampart_scan::ScanError::LimitExceeded {
                what: "image export size",
                ..
            }
        ),
        "{error}"
    );

    let run = docker(
        &host,
        &[
            "run",
            "-d",
            "--network",
            "none",
            image,
            "/bin/busybox",
            "sleep",
            "120",
        ],
    )
    .unwrap();
    assert!(
        run.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let id = String::from_utf8(run.stdout).unwrap().trim().to_string();
    let result = scan(
        &Target::parse(&format!("container:{id}")),
        &id,
        &ScanOptions::default(),
    );
    let _ = docker(&host, &["rm", "-f", &id]);
    let _ = docker(&host, &["rmi", "-f", image]);
    let report = result.unwrap();
    assert_eq!(report.target.kind, "container");
    let names: Vec<(&str, &str)> = report
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(names, vec![("busybox-static", version.as_str())]);
}
