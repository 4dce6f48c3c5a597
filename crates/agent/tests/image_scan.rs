//! The image-scanning stage end to end, with the real sensor and a real container of
//! rampart-test/pyapp:1 (scripts/build-python-app-image): a Python app that imports
//! urllib3 1.24.1 and never bottle 0.12.18, both installed and both with advisories in
//! the fixtures. The stage scans the image when the container starts, reports bottle
//! `in_use: false`; importing urllib3's advisory afterwards (another connection, as
//! `rampart db import` in another process) raises an alert naming the container within
//! seconds, with urllib3 `in_use: true` and evidence. A package pip installs after the
//! start and a binary dropped in and run show as drift.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod scan_common;

use rampart_agent::stages::{AlertLog, ImageScanConfig, ImageScanStage};
use rampart_agent::{Controls, PipelineBuilder};
use scan_common::{finding, report, wait_for};

const IMAGE: &str = "rampart-test/pyapp:1";

/// Removes the container on drop.
struct Running(String);
impl Drop for Running {
    fn drop(&mut self) {
        rampart_testbed::remove_container(&self.0);
    }
}

fn advisory(package: &str, id: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/advisories/pypi/vulns")
        .join(package)
        .join(format!("{id}.yaml"))
}

#[test]
fn a_running_workload_is_scanned_and_a_new_advisory_names_it_with_in_use_evidence() {
    if !rampart_testbed::ready(IMAGE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("vuln.db");
    // bottle's advisory is known from the start; urllib3's arrives while it runs.
    {
        let mut db = rampart_vulndb::VulnDb::open(&db_path).unwrap();
        db.import(advisory("bottle", "PYSEC-2022-227")).unwrap();
        db.import(advisory("sqlparse", "PYSEC-2021-333")).unwrap();
    }
    let name = format!("scan-pyapp-{}", std::process::id());
    rampart_testbed::remove_container(&name);

    let sensor = rampart_sensor::start(rampart_sensor::SensorConfig {
        container: Some(name.clone()),
        bpf_object: rampart_testbed::bpf_object(),
        ..rampart_sensor::SensorConfig::default()
    })
    .unwrap();
    let mut config = ImageScanConfig::new(db_path.clone(), dir.path().join("state"));
    config.cache_dir = Some(dir.path().join("cache"));
    config.db_poll = Duration::from_millis(200);
    config.report_every = Duration::from_millis(250);
    let alerts = AlertLog::new();
    // The node's bus publisher (an in-process bus here): scan results go to central.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bus = Arc::new(rampart_bus::InProcessBus::new(1024));
    let publisher = rampart_agent::stages::BusPublisherStage::new(
        rampart_agent::stages::BusPublisherConfig::new("scan-node", dir.path().join("spool")),
        bus.clone(),
        rt.handle().clone(),
    )
    .unwrap();
    let pipeline = PipelineBuilder::new()
        .stage(ImageScanStage::new(config).with_reports(publisher.reports()))
        .stage(alerts.stage())
        .stage(publisher)
        .start()
        .unwrap();
    let controls = Controls {
        deadline: Some(Instant::now() + Duration::from_secs(120)),
        ..Controls::default()
    };
    let stop = controls.stop.clone();
    let runner = std::thread::spawn(move || {
        let mut sensor = sensor;
        pipeline.run(&mut sensor, &controls)
    });

    let container = Running(name.clone());
    let id = rampart_testbed::docker(&["run", "-d", "--name", &name, IMAGE]);
    let report_path = dir
        .path()
        .join("state/containers")
        .join(format!("{id}.json"));

    // Scanned, bottle's finding reported and judged unused once urllib3 was imported
    // (its app prints after the import; the in-use map needs the opens first).
    let logs_ready = wait_for(Duration::from_secs(30), || {
        rampart_testbed::docker(&["logs", &name])
            .contains("pyapp up")
            .then_some(())
    });
    assert!(logs_ready.is_some(), "the app did not start");
    let before = wait_for(Duration::from_secs(60), || {
        let r = report(&report_path)?;
        finding(&r, "bottle")?;
        Some(r)
    })
    .unwrap_or_else(|| panic!("no report for the container at {}", report_path.display()));
    let bottle = finding(&before, "bottle").unwrap();
    assert_eq!(bottle["id"], "PYSEC-2022-227");
    assert_eq!(bottle["in_use"]["state"], "false", "{before:#}");
    assert!(finding(&before, "urllib3").is_none());
    assert!(alerts.is_empty(), "nothing high was known yet");
    // The same result reached the bus for central: bottle unused, the image's SBOMs.
    let mut consumer = rt
        .block_on(rampart_bus::Backplane::consumer(bus.as_ref(), "central"))
        .unwrap();
    let published = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    let d = consumer.next().await.unwrap().unwrap();
                    let mut b = rampart_bus::NodeBatch::decode(&d.payload).unwrap();
                    for r in b.take_reports() {
                        if let rampart_event::fleet::NodeReport::Scan(s) = r {
                            if s.target == format!("container:{id}")
                                && s.vulnerabilities.iter().any(|v| v.package == "bottle")
                            {
                                return s;
                            }
                        }
                    }
                }
            })
            .await
        })
        .expect("the scan result on the bus");
    let v = published
        .vulnerabilities
        .iter()
        .find(|v| v.package == "bottle")
        .unwrap();
    assert_eq!((v.id.as_str(), v.in_use), ("PYSEC-2022-227", Some(false)));
    // The layer that introduced it: the image's second (scripts/build-python-app-image
    // commits the installed packages over the base), with the history's command; when
    // the node first found it, and its database's last update (the import above).
    assert!(
        v.layer.as_deref().is_some_and(|l| l.starts_with("sha256:")),
        "{v:?}"
    );
    assert_eq!(v.layer_index, Some(1), "{v:?}");
    assert!(
        v.layer_command.as_deref().is_some_and(|c| !c.is_empty()),
        "{v:?}"
    );
    assert!(v.first_seen_ns > 0, "{v:?}");
    assert!(published.db_updated_ns > 0, "{published:?}");
    assert!(
        published.db_updated_ns <= v.first_seen_ns,
        "scanned after the database's import: {} > {}",
        published.db_updated_ns,
        v.first_seen_ns
    );
    assert_eq!(published.image_id, before["image_id"].as_str().unwrap());
    assert!(published.packages > 0);
    assert!(
        published
            .sbom_cyclonedx
            .as_deref()
            .is_some_and(|d| d.contains("bottle")),
        "the CycloneDX SBOM names the packages"
    );
    assert!(published
        .sbom_spdx
        .as_deref()
        .is_some_and(|d| d.contains("SPDX-2.3")));
    drop(consumer);

    // The advisory for urllib3 (CVSS 8.1, high) arrives: the alert names the container.
    let imported_at = Instant::now();
    {
        let mut db = rampart_vulndb::VulnDb::open(&db_path).unwrap();
        rampart_vulndb::import_and_rematch(&mut db, &advisory("urllib3", "PYSEC-2023-192"))
            .unwrap();
    }
    let alert = wait_for(Duration::from_secs(10), || {
        alerts
            .alerts()
            .iter()
            .find(|a| a.source == "scanner")
            .cloned()
    })
    .expect("an alert within seconds of the import");
    let latency = imported_at.elapsed();
    eprintln!("alert {latency:?} after the import: {}", alert.message);
    assert_eq!(alert.output_fields["vuln.id"], "PYSEC-2023-192");
    assert_eq!(alert.output_fields["vuln.package"], "urllib3");
    assert_eq!(alert.output_fields["vuln.severity"], "high");
    assert_eq!(alert.output_fields["container.id"], id.as_str());
    assert_eq!(alert.output_fields["container.name"], name.as_str());
    assert_eq!(alert.output_fields["vuln.in_use"], "true");
    assert!(alert.output_fields["vuln.in_use.file"]
        .as_str()
        .unwrap()
        .contains("/urllib3/"));
    assert_eq!(alert.priority, rampart_event::Priority::Error);

    // The report now ranks urllib3 (in use) before bottle (unused), with evidence.
    let after = wait_for(Duration::from_secs(5), || {
        let r = report(&report_path)?;
        finding(&r, "urllib3")?;
        Some(r)
    })
    .expect("the report shows urllib3");
    let ranked: Vec<(&str, &str)> = after["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["package_name"].as_str().unwrap(),
                v["in_use"]["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ranked,
        [("urllib3", "true"), ("bottle", "false")],
        "{after:#}"
    );
    let urllib3 = finding(&after, "urllib3").unwrap();
    assert!(urllib3["in_use"]["first_seen_ns"].as_u64().unwrap() > 0);

    // Drift: a package pip installs after the start, and a binary dropped in and run.
    rampart_testbed::docker(&[
        "exec",
        &name,
        "python3",
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        "--break-system-packages",
        "/opt/wheels/sqlparse-0.4.1-py3-none-any.whl",
    ]);
    rampart_testbed::docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        "cp /bin/true /tmp/dropped && /tmp/dropped",
    ]);
    let drifted = wait_for(Duration::from_secs(20), || {
        let r = report(&report_path)?;
        let drift = &r["drift"];
        let has_package = drift["packages"]
            .as_array()?
            .iter()
            .any(|p| p["name"] == "sqlparse" && p["version"] == "0.4.1");
        let has_binary = drift["binaries"]
            .as_array()?
            .iter()
            .any(|b| b["path"] == "/tmp/dropped");
        (has_package && has_binary).then_some(r)
    })
    .unwrap_or_else(|| panic!("no drift in {:#}", report(&report_path).unwrap_or_default()));
    let drift = &drifted["drift"];
    let names: Vec<&str> = drift["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["sqlparse"],
        "only what pip added is drift: {drift:#}"
    );
    assert_eq!(
        drift["vulnerabilities"][0]["id"], "PYSEC-2021-333",
        "{drift:#}"
    );
    // The image's own packages are not drift, and the base findings are unchanged.
    assert!(finding(&drifted, "sqlparse").is_none());

    stop.store(true, Ordering::Relaxed);
    runner.join().unwrap();
    drop(container);
}
