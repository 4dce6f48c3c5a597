//! The image-scanning stage's runtime verdicts beyond Python, and its database kept
//! current on a schedule, with the real sensor and real containers.
//!
//! - `in_use` for every kind of package a container loads: rampart-test/langapp:1
//!   (scripts/build-lang-app-image) runs node requiring one npm package and not another,
//!   ruby requiring one gem and not another, a process opening one jar (a fat jar with
//!   log4j-core nested) and not another, and python3 importing ssl, whose extension
//!   makes ld.so map libssl3's libraries while libsqlite3-0 stays installed and unused.
//!   The advisories are hand-made OSV records (test ids) for exactly those packages.
//! - The scheduled `rampart db update` of the node's `scanner:` section, against a local
//!   HTTP server serving OSV exports: a rampart-test/pyapp:1 container runs, a package is
//!   pip-installed in it (drift), then the served export changes; the next scheduled
//!   update (no restart, no manual import) raises the alerts for the running image
//!   package (urllib3, in use) and for the drift package (sqlparse).
//!
//! - `in_use` for Java with a real JVM: rampart-test/java:17 (scripts/build-java-image,
//!   Debian's openjdk-17-jre-headless) runs a class-path app whose main class uses a
//!   class of commons-text-1.9.jar, while snakeyaml-1.33.jar sits on the same class path
//!   unused (the JVM opens class-path jars lazily, in order). The advisories are OSV
//!   records for the two coordinates, written here with the real ids and ranges.
//!
//! - Drift packages' `in_use`: sqlparse pip-installed into a running rampart-test/pyapp:1
//!   container is `false` while only pip has read it (pip byte-compiles every module it
//!   installs), and `true` once a process imports it.
//!
//! The tests share the host's pinned BPF state, so they run one at a time.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod scan_common;

use rampart_agent::stages::{AlertLog, ImageScanConfig, ImageScanStage};
use rampart_agent::{Controls, PipelineBuilder};
use rampart_event::Alert;
use scan_common::{finding, report, wait_for};

const LANG_IMAGE: &str = "rampart-test/langapp:1";
const PY_IMAGE: &str = "rampart-test/pyapp:1";
const JAVA_IMAGE: &str = "rampart-test/java:17";

/// One sensor at a time in this binary.
static SERIAL: Mutex<()> = Mutex::new(());

/// Removes the container on drop.
struct Running(String);
impl Drop for Running {
    fn drop(&mut self) {
        rampart_testbed::remove_container(&self.0);
    }
}

/// A hand-made OSV record: every version of `name` below 999 is affected.
fn advisory(id: &str, ecosystem: &str, name: &str, severity: &str) -> String {
    serde_json::json!({
        "id": id,
        "modified": "2026-12-01T00:00:00Z",
        "summary": format!("test advisory for {name}"),
        "affected": [{
            "package": {"ecosystem": ecosystem, "name": name},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999"}]}],
        }],
        "database_specific": {"severity": severity},
    })
    .to_string()
}

/// An OSV record for a Maven package with one affected range.
fn maven_advisory(id: &str, name: &str, introduced: &str, fixed: &str, severity: &str) -> String {
    serde_json::json!({
        "id": id,
        "modified": "2026-12-01T00:00:00Z",
        "summary": format!("{name} before {fixed}"),
        "affected": [{
            "package": {"ecosystem": "Maven", "name": name},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": introduced}, {"fixed": fixed}]}],
        }],
        "database_specific": {"severity": severity},
    })
    .to_string()
}

fn pypi_fixture(package: &str, id: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/advisories/pypi/vulns")
        .join(package)
        .join(format!("{id}.yaml"))
}

/// A running pipeline: the sensor watching one container, the stage, an alert sink.
struct Node {
    alerts: AlertLog,
    stop: Arc<std::sync::atomic::AtomicBool>,
    runner: Option<std::thread::JoinHandle<rampart_agent::PipelineStats>>,
}

impl Node {
    fn start(container: &str, libraries_visible: bool, config: ImageScanConfig) -> Node {
        let sensor = rampart_sensor::start(rampart_sensor::SensorConfig {
            container: Some(container.to_string()),
            bpf_object: rampart_testbed::bpf_object(),
            filter_ro_libs: !libraries_visible,
            ..rampart_sensor::SensorConfig::default()
        })
        .unwrap();
        let alerts = AlertLog::new();
        let pipeline = PipelineBuilder::new()
            .stage(ImageScanStage::new(config))
            .stage(alerts.stage())
            .start()
            .unwrap();
        let controls = Controls {
            deadline: Some(Instant::now() + Duration::from_secs(240)),
            ..Controls::default()
        };
        let stop = controls.stop.clone();
        let runner = std::thread::spawn(move || {
            let mut sensor = sensor;
            pipeline.run(&mut sensor, &controls)
        });
        Node {
            alerts,
            stop,
            runner: Some(runner),
        }
    }

    fn alert_for(&self, id: &str) -> Option<Arc<Alert>> {
        self.alerts
            .alerts()
            .into_iter()
            .find(|a| a.source == "scanner" && a.output_fields["vuln.id"] == id)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(runner) = self.runner.take() {
            let _ = runner.join();
        }
    }
}

fn wait_for_logs(name: &str, markers: &[&str]) {
    let up = wait_for(Duration::from_secs(60), || {
        let logs = rampart_testbed::docker(&["logs", name]);
        markers.iter().all(|m| logs.contains(m)).then_some(())
    });
    assert!(
        up.is_some(),
        "the container did not start: {}",
        rampart_testbed::docker(&["logs", name])
    );
}

#[test]
fn in_use_for_npm_gems_jars_and_shared_libraries_of_a_running_container() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !rampart_testbed::ready(LANG_IMAGE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("vuln.db");
    let advisories = dir.path().join("advisories");
    std::fs::create_dir_all(&advisories).unwrap();
    // (id, ecosystem, advisory's package name, the installed package the finding is on,
    // expected in_use).
    let cases = [
        ("RAMPART-TEST-NPM-1", "npm", "used-pkg", "used-pkg", "true"),
        (
            "RAMPART-TEST-NPM-2",
            "npm",
            "@scope/unused-pkg",
            "@scope/unused-pkg",
            "false",
        ),
        (
            "RAMPART-TEST-GEM-1",
            "RubyGems",
            "used-gem",
            "used-gem",
            "true",
        ),
        (
            "RAMPART-TEST-GEM-2",
            "RubyGems",
            "unused-gem",
            "unused-gem",
            "false",
        ),
        (
            "RAMPART-TEST-MVN-1",
            "Maven",
            "org.apache.logging.log4j:log4j-core",
            "org.apache.logging.log4j:log4j-core",
            "true",
        ),
        (
            "RAMPART-TEST-MVN-2",
            "Maven",
            "org.example:unused-lib",
            "org.example:unused-lib",
            "false",
        ),
        // Debian advisories name the source package; the findings land on its binaries.
        (
            "RAMPART-TEST-DEB-1",
            "Debian:12",
            "openssl",
            "libssl3",
            "true",
        ),
        (
            "RAMPART-TEST-DEB-2",
            "Debian:12",
            "sqlite3",
            "libsqlite3-0",
            "false",
        ),
    ];
    for (id, ecosystem, name, _, _) in &cases {
        std::fs::write(
            advisories.join(format!("{id}.json")),
            advisory(id, ecosystem, name, "HIGH"),
        )
        .unwrap();
    }
    rampart_vulndb::VulnDb::open(&db_path)
        .unwrap()
        .import(&advisories)
        .unwrap();

    let name = format!("scan-langapp-{}", std::process::id());
    rampart_testbed::remove_container(&name);
    let mut config = ImageScanConfig::new(db_path, dir.path().join("state"));
    config.cache_dir = Some(dir.path().join("cache"));
    config.db_poll = Duration::from_millis(200);
    config.report_every = Duration::from_millis(250);
    // The sensor reports read-only library opens (all_opens): ld.so's are seen.
    config.libraries_visible = true;
    let node = Node::start(&name, true, config);
    let container = Running(name.clone());
    let id = rampart_testbed::docker(&["run", "-d", "--name", &name, LANG_IMAGE]);
    let report_path = dir
        .path()
        .join("state/containers")
        .join(format!("{id}.json"));
    wait_for_logs(&name, &["node up", "ruby up", "jar up", "ssl up"]);

    let verdicts = |r: &serde_json::Value| -> Vec<(String, String)> {
        cases
            .iter()
            .map(|(_, _, _, package, _)| {
                let state = finding(r, package)
                    .map(|f| f["in_use"]["state"].as_str().unwrap_or("none").to_string())
                    .unwrap_or_else(|| "no finding".into());
                (package.to_string(), state)
            })
            .collect()
    };
    let expected: Vec<(String, String)> = cases
        .iter()
        .map(|(_, _, _, package, state)| (package.to_string(), state.to_string()))
        .collect();
    let started = Instant::now();
    let settled = wait_for(Duration::from_secs(120), || {
        let r = report(&report_path)?;
        (verdicts(&r) == expected).then_some(r)
    });
    let last = report(&report_path).unwrap_or_default();
    let settled = settled.unwrap_or_else(|| {
        panic!(
            "verdicts {:?}, expected {expected:?}; report {last:#}",
            verdicts(&last)
        )
    });
    eprintln!("verdicts settled {:?} after the start", started.elapsed());

    // Evidence: the file that showed each package loaded, and when.
    let evidence = |package: &str| {
        let f = finding(&settled, package).unwrap();
        assert!(f["in_use"]["first_seen_ns"].as_u64().unwrap() > 0, "{f:#}");
        f["in_use"]["file"].as_str().unwrap().to_string()
    };
    assert_eq!(
        evidence("used-pkg"),
        "/app/node_modules/used-pkg/lib/index.js"
    );
    let gem = evidence("used-gem");
    assert!(
        gem.starts_with("/usr/local/lib/ruby/gems/3.1.0/gems/used-gem-1.0.0/"),
        "{gem}"
    );
    assert_eq!(
        evidence("org.apache.logging.log4j:log4j-core"),
        "/app/lib/app.jar"
    );
    let lib = evidence("libssl3");
    assert!(
        lib.contains("/x86_64-linux-gnu/libssl.so.3")
            || lib.contains("/x86_64-linux-gnu/libcrypto.so.3"),
        "{lib}"
    );
    // Ranked: in use first.
    let states: Vec<&str> = settled["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["in_use"]["state"].as_str().unwrap())
        .collect();
    let first_false = states.iter().position(|s| *s == "false").unwrap();
    assert!(
        states[..first_false].iter().all(|s| *s != "false")
            && states[first_false..].iter().all(|s| *s != "true"),
        "{states:?}"
    );
    // Bounded: only package files are kept, not every file the container opened.
    assert!(
        settled["loaded_files"].as_u64().unwrap() < 2_000,
        "{}",
        settled["loaded_files"]
    );
    drop(node);
    drop(container);
}

#[test]
fn the_scheduled_update_of_rampart_up_raises_alerts_for_image_and_drift_packages() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !rampart_testbed::ready(PY_IMAGE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("vuln.db");
    let (base, served, seen) = rampart_testbed::http::serve();
    let member = |package: &str, id: &str| {
        (
            format!("{id}.yaml"),
            std::fs::read(pypi_fixture(package, id)).unwrap(),
        )
    };
    // What osv.dev serves at first: bottle's advisory only.
    served.lock().unwrap().insert(
        "/PyPI/all.zip".into(),
        (
            "\"v1\"".into(),
            rampart_testbed::http::zip_of(&[member("bottle", "PYSEC-2022-227")]),
        ),
    );
    // The node's own configuration, as `rampart up` reads it: an update every 2 s from
    // the local mirror; every finding alerts (sqlparse's advisory carries no severity).
    let yaml = format!(
        "scanner:\n  db: {db}\n  state_dir: {state}\n  alert_severity: unknown\n  update_every_secs: 2\n  update_base_url: {base}\n  update_ecosystems: [PyPI]\n",
        db = db_path.display(),
        state = dir.path().join("state").display(),
    );
    let node_config = rampart_agent::NodeConfig::parse(&yaml).unwrap();
    let mut config = node_config
        .scanner
        .stage_config(node_config.sensor.all_opens);
    let (options, every) = config.update.clone().expect("an update schedule");
    assert_eq!(
        (options.base_url.as_str(), every),
        (base.as_str(), Duration::from_secs(2))
    );
    assert_eq!(options.ecosystems, ["PyPI"]);
    config.cache_dir = Some(dir.path().join("cache"));
    config.report_every = Duration::from_millis(250);

    let name = format!("scan-pyapp-sched-{}", std::process::id());
    rampart_testbed::remove_container(&name);
    let node = Node::start(&name, false, config);
    // The first scheduled run creates the database (there was none).
    assert!(
        wait_for(Duration::from_secs(20), || db_path.is_file().then_some(())).is_some(),
        "the scheduled update did not create the database"
    );
    let container = Running(name.clone());
    let id = rampart_testbed::docker(&["run", "-d", "--name", &name, PY_IMAGE]);
    let report_path = dir
        .path()
        .join("state/containers")
        .join(format!("{id}.json"));
    wait_for_logs(&name, &["pyapp up"]);
    let before = wait_for(Duration::from_secs(60), || {
        let r = report(&report_path)?;
        finding(&r, "bottle")?;
        Some(r)
    })
    .unwrap_or_else(|| panic!("no report at {}", report_path.display()));
    assert!(finding(&before, "urllib3").is_none(), "{before:#}");

    // Drift: sqlparse pip-installed after the start, with no advisory known yet.
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
    wait_for(Duration::from_secs(30), || {
        let r = report(&report_path)?;
        r["drift"]["packages"]
            .as_array()?
            .iter()
            .any(|p| p["name"] == "sqlparse")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no drift in {:#}", report(&report_path).unwrap_or_default()));
    assert!(node.alert_for("PYSEC-2021-333").is_none());
    assert!(node.alerts.is_empty(), "nothing new was known yet");
    // The scheduled runs so far asked conditionally and were told nothing changed.
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|(path, etag)| path == "/PyPI/all.zip" && etag.as_deref() == Some("\"v1\"")),
        "{:?}",
        seen.lock().unwrap()
    );

    // osv.dev publishes urllib3's and sqlparse's advisories.
    served.lock().unwrap().insert(
        "/PyPI/all.zip".into(),
        (
            "\"v2\"".into(),
            rampart_testbed::http::zip_of(&[
                member("bottle", "PYSEC-2022-227"),
                member("urllib3", "PYSEC-2023-192"),
                member("sqlparse", "PYSEC-2021-333"),
            ]),
        ),
    );
    let published = Instant::now();
    let image_alert = wait_for(Duration::from_secs(20), || node.alert_for("PYSEC-2023-192"))
        .expect("an alert for urllib3 after the scheduled update");
    let drift_alert = wait_for(Duration::from_secs(20), || node.alert_for("PYSEC-2021-333"))
        .expect("an alert for the drift package after the scheduled update");
    eprintln!(
        "alerts {:?} after the export changed (update every 2 s)",
        published.elapsed()
    );
    assert_eq!(image_alert.output_fields["container.id"], id.as_str());
    assert_eq!(image_alert.output_fields["vuln.in_use"], "true");
    assert_eq!(drift_alert.output_fields["vuln.package"], "sqlparse");
    assert_eq!(drift_alert.output_fields["container.id"], id.as_str());
    assert!(
        drift_alert.message.contains("sqlparse"),
        "{}",
        drift_alert.message
    );
    // The report shows the drift package's finding too.
    let after = wait_for(Duration::from_secs(10), || {
        let r = report(&report_path)?;
        (r["drift"]["vulnerabilities"][0]["id"] == "PYSEC-2021-333").then_some(r)
    })
    .unwrap_or_else(|| panic!("{:#}", report(&report_path).unwrap_or_default()));
    assert!(finding(&after, "urllib3").is_some());
    // Once each: a later run is a 304 and raises nothing again.
    std::thread::sleep(Duration::from_secs(5));
    let alerts = node.alerts.alerts();
    assert_eq!(
        alerts.iter().filter(|a| a.source == "scanner").count(),
        2,
        "{:?}",
        alerts.iter().map(|a| &a.message).collect::<Vec<_>>()
    );
    drop(node);
    drop(container);
}

#[test]
fn in_use_for_jars_on_the_class_path_of_a_real_jvm() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !rampart_testbed::ready(JAVA_IMAGE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("vuln.db");
    let advisories = dir.path().join("advisories");
    std::fs::create_dir_all(&advisories).unwrap();
    // Text4Shell (CVE-2022-42889) and SnakeYAML's constructor RCE (CVE-2022-1471), with
    // osv.dev's ranges: 1.9 is inside the first ([1.5, 1.10.0) in Maven's order, not as
    // text), 1.33 inside the second.
    let text4shell = "GHSA-599f-7c49-w659";
    let snakeyaml = "GHSA-mjmj-j48q-9wg2";
    std::fs::write(
        advisories.join(format!("{text4shell}.json")),
        maven_advisory(
            text4shell,
            "org.apache.commons:commons-text",
            "1.5",
            "1.10.0",
            "CRITICAL",
        ),
    )
    .unwrap();
    std::fs::write(
        advisories.join(format!("{snakeyaml}.json")),
        maven_advisory(snakeyaml, "org.yaml:snakeyaml", "0", "2.0", "HIGH"),
    )
    .unwrap();
    rampart_vulndb::VulnDb::open(&db_path)
        .unwrap()
        .import(&advisories)
        .unwrap();

    let name = format!("jv-scan-java-{}", std::process::id());
    rampart_testbed::remove_container(&name);
    let mut config = ImageScanConfig::new(db_path, dir.path().join("state"));
    config.cache_dir = Some(dir.path().join("cache"));
    config.db_poll = Duration::from_millis(200);
    config.report_every = Duration::from_millis(250);
    // As `rampart up` runs by default: read-only opens under /lib and /usr/lib filtered
    // (the JRE's own files), the app's jars under /app seen.
    let node = Node::start(&name, false, config);
    let container = Running(name.clone());
    let id = rampart_testbed::docker(&["run", "-d", "--name", &name, JAVA_IMAGE]);
    let report_path = dir
        .path()
        .join("state/containers")
        .join(format!("{id}.json"));
    wait_for_logs(&name, &["java up"]);

    let state = |r: &serde_json::Value, package: &str| {
        finding(r, package).map(|f| f["in_use"]["state"].as_str().unwrap_or("none").to_string())
    };
    let used = "org.apache.commons:commons-text";
    let unused = "org.yaml:snakeyaml";
    let settled = wait_for(Duration::from_secs(120), || {
        let r = report(&report_path)?;
        (state(&r, used)?.as_str() == "true" && state(&r, unused)?.as_str() == "false").then_some(r)
    })
    .unwrap_or_else(|| panic!("{:#}", report(&report_path).unwrap_or_default()));
    let used_finding = finding(&settled, used).unwrap();
    assert_eq!(used_finding["id"], text4shell, "{used_finding:#}");
    assert_eq!(used_finding["package_version"], "1.9");
    assert_eq!(
        used_finding["in_use"]["file"], "/app/lib/commons-text-1.9.jar",
        "{used_finding:#}"
    );
    assert!(used_finding["in_use"]["first_seen_ns"].as_u64().unwrap() > 0);
    assert_eq!(finding(&settled, unused).unwrap()["id"], snakeyaml);
    // Ranked: the in-use finding first.
    assert_eq!(settled["vulnerabilities"][0]["package_name"], used);
    // Still unused a while later: nothing (a late class-path scan) opened snakeyaml.
    std::thread::sleep(Duration::from_secs(2));
    let later = report(&report_path).unwrap();
    assert_eq!(state(&later, unused).as_deref(), Some("false"), "{later:#}");
    drop(node);
    drop(container);
}

#[test]
fn drift_packages_get_in_use_verdicts_like_image_packages() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !rampart_testbed::ready(PY_IMAGE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("vuln.db");
    let advisories = dir.path().join("advisories");
    std::fs::create_dir_all(&advisories).unwrap();
    let id = "PYSEC-2021-333";
    std::fs::copy(
        pypi_fixture("sqlparse", id),
        advisories.join(format!("{id}.yaml")),
    )
    .unwrap();
    rampart_vulndb::VulnDb::open(&db_path)
        .unwrap()
        .import(&advisories)
        .unwrap();
    let mut config = ImageScanConfig::new(db_path, dir.path().join("state"));
    config.cache_dir = Some(dir.path().join("cache"));
    config.db_poll = Duration::from_millis(200);
    config.report_every = Duration::from_millis(250);

    let name = format!("jv-scan-drift-{}", std::process::id());
    rampart_testbed::remove_container(&name);
    let node = Node::start(&name, false, config);
    let container = Running(name.clone());
    let container_id = rampart_testbed::docker(&["run", "-d", "--name", &name, PY_IMAGE]);
    let report_path = dir
        .path()
        .join("state/containers")
        .join(format!("{container_id}.json"));
    wait_for_logs(&name, &["pyapp up"]);
    wait_for(Duration::from_secs(60), || report(&report_path))
        .unwrap_or_else(|| panic!("no report at {}", report_path.display()));

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
    let drift_in_use = |r: &serde_json::Value| -> Option<serde_json::Value> {
        let v = r["drift"]["vulnerabilities"]
            .as_array()?
            .iter()
            .find(|v| v["id"] == id)?;
        Some(v["in_use"].clone())
    };
    // Installed, byte-compiled by pip, imported by no one.
    let installed = wait_for(Duration::from_secs(30), || {
        drift_in_use(&report(&report_path)?).filter(|u| !u.is_null())
    })
    .unwrap_or_else(|| panic!("{:#}", report(&report_path).unwrap_or_default()));
    assert_eq!(installed["state"], "false", "{installed:#}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        drift_in_use(&report(&report_path).unwrap()).unwrap()["state"],
        "false"
    );

    let before_import = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let out = rampart_testbed::docker(&[
        "exec",
        &name,
        "python3",
        "-c",
        "import sqlparse; print(sqlparse.__version__)",
    ]);
    assert_eq!(out.trim(), "0.4.1");
    let imported = wait_for(Duration::from_secs(20), || {
        drift_in_use(&report(&report_path)?).filter(|u| u["state"] == "true")
    })
    .unwrap_or_else(|| panic!("{:#}", report(&report_path).unwrap_or_default()));
    let file = imported["file"].as_str().unwrap();
    assert!(
        file.starts_with("/usr/local/lib/python3.11/dist-packages/sqlparse/"),
        "{imported:#}"
    );
    // The import's read, not pip's.
    assert!(
        imported["first_seen_ns"].as_u64().unwrap() >= before_import,
        "{imported:#}"
    );
    drop(node);
    drop(container);
}
