//! The store conformance suite on PostgreSQL (scripts/setup starts it; CI must run it),
//! each check in a schema of its own, dropped afterwards.

use std::sync::atomic::{AtomicU32, Ordering};

use rampart_store::{conformance, AlertQuery, Store};
use rampart_store_pg::{IngestPath, PgConfig, PgStore};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn fresh(url: &str) -> (PgStore, String) {
    let schema = format!(
        "conf_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let s = PgStore::open(PgConfig {
        url: url.into(),
        schema: Some(schema.clone()),
    })
    .expect("PostgreSQL store opens");
    s.execute_batch(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .unwrap();
    // Reopen so the migrations run in the fresh schema.
    drop(s);
    let s = PgStore::open(PgConfig {
        url: url.into(),
        schema: Some(schema.clone()),
    })
    .unwrap();
    (s, schema)
}

struct Dropper(String, Vec<String>);

impl Drop for Dropper {
    fn drop(&mut self) {
        // Connected through one of its own schemas, not `public`: a store opening there
        // migrates it, and `public` may hold a newer schema than this build knows.
        let Some(own) = self.1.first() else { return };
        if let Ok(s) = PgStore::open(PgConfig {
            url: self.0.clone(),
            schema: Some(own.clone()),
        }) {
            for schema in &self.1 {
                let _ = s.execute_batch(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

#[test]
fn conformance_on_postgres() {
    let Some(url) = rampart_testbed::postgres_ready() else {
        return;
    };
    let mut dropper = Dropper(url.clone(), Vec::new());
    conformance::run_all(&mut || {
        let (s, schema) = fresh(&url);
        dropper.1.push(schema);
        Box::new(s) as Box<dyn Store>
    });
}

/// The earlier ingest paths (plain INSERT first; ON CONFLICT on every insert), which
/// the benchmark keeps as baselines, store the same as COPY: the suite passes on each.
#[test]
fn conformance_on_postgres_with_the_earlier_ingest_paths() {
    let Some(url) = rampart_testbed::postgres_ready() else {
        return;
    };
    let mut dropper = Dropper(url.clone(), Vec::new());
    for path in [IngestPath::Insert, IngestPath::Careful] {
        conformance::run_all(&mut || {
            let (s, schema) = fresh(&url);
            s.set_ingest_path(path);
            assert_eq!(s.ingest_path(), path);
            dropper.1.push(schema);
            Box::new(s) as Box<dyn Store>
        });
    }
}

#[test]
fn reconnects_after_the_server_drops_the_connection() {
    let Some(url) = rampart_testbed::postgres_ready() else {
        return;
    };
    let (s, schema) = fresh(&url);
    let _dropper = Dropper(url.clone(), vec![schema.clone(), format!("{schema}_admin")]);
    drop(s);
    // Named, so the admin session below can find this store's backend.
    let s = PgStore::open(PgConfig {
        url: format!("{url} application_name={schema}"),
        schema: Some(schema.clone()),
    })
    .unwrap();
    conformance::alerts_insert_is_idempotent(&s);
    // What a PostgreSQL restart does to this client, without restarting the server
    // others use: another session terminates this store's backend.
    let admin = PgStore::open(PgConfig {
        url: url.clone(),
        schema: Some(format!("{schema}_admin")),
    })
    .unwrap();
    admin
        .execute_batch(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{schema}'"
        ))
        .unwrap();
    // The call in flight may fail; the store reconnects on the next one.
    let mut answers = Vec::new();
    for _ in 0..3 {
        match s.query_alerts(&AlertQuery::default()) {
            Ok(page) => {
                answers.push(page.alerts.len());
                break;
            }
            Err(e) => eprintln!("after termination: {e}"),
        }
    }
    assert_eq!(answers, [2], "the store reconnected and answers");
}

/// Central commits several groups at once, each on its own connection: four threads
/// ingest the same alerts (a redelivery racing its original) and lifecycle changes of
/// the same containers. Nothing deadlocks or fails, each alert counts as new exactly
/// once, and each container ends in the state of its newest change.
#[test]
fn parallel_ingest_counts_once_and_keeps_the_newest_state() {
    use rampart_event::{ContainerLifecycle, LifecycleAction, Priority};
    use rampart_store::{ContainerQuery, ContainerState, Ingest};
    let Some(url) = rampart_testbed::postgres_ready() else {
        return;
    };
    let (s, schema) = fresh(&url);
    let _dropper = Dropper(url.clone(), vec![schema]);
    const T0: u64 = 1_700_000_000_000_000_000;
    let containers: Vec<String> = (0..20).map(|c| format!("c{c:02}")).collect();
    let alerts: Vec<_> = (0..400u64)
        .map(|i| {
            let c = &containers[(i % 20) as usize];
            conformance::alert(&format!("a{i}"), T0 + i, "R", Priority::Warning, Some(c))
        })
        .collect();
    // Thread t sends the changes at times t, t+4, t+8, …: start, stop, start, …
    let changes = |t: u64| -> Vec<ContainerLifecycle> {
        (0..10u64)
            .flat_map(|k| {
                let ts = T0 + 1000 + t + 4 * k;
                containers.iter().map(move |c| ContainerLifecycle {
                    ts_ns: ts,
                    action: if (t + 4 * k).is_multiple_of(2) {
                        LifecycleAction::Start
                    } else {
                        LifecycleAction::Stop
                    },
                    container_id: c.clone(),
                    name: format!("name-{c}"),
                    image: "img:1".into(),
                    labels: Default::default(),
                })
            })
            .collect()
    };
    let new_alerts = std::sync::atomic::AtomicU64::new(0);
    let new_changes = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let (s, alerts, new_alerts, new_changes) = (&s, &alerts, &new_alerts, &new_changes);
            let lifecycle = changes(t);
            scope.spawn(move || {
                for round in 0..10 {
                    let a = &alerts[round * 40..(round + 1) * 40];
                    let l = &lifecycle[round * 20..(round + 1) * 20];
                    let batches = [
                        Ingest {
                            node: "n1",
                            node_version: "1",
                            seen_ns: T0,
                            alerts: a,
                            ..Ingest::default()
                        },
                        Ingest {
                            node: "n1",
                            node_version: "1",
                            seen_ns: T0,
                            lifecycle: l,
                            ..Ingest::default()
                        },
                    ];
                    let r = s.ingest_many(&batches).expect("parallel ingest commits");
                    let sum =
                        |f: fn(&rampart_store::IngestReport) -> u64| r.iter().map(f).sum::<u64>();
                    new_alerts.fetch_add(sum(|r| r.alerts), std::sync::atomic::Ordering::Relaxed);
                    new_changes
                        .fetch_add(sum(|r| r.lifecycle), std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(new_alerts.into_inner(), 400, "each alert new exactly once");
    assert_eq!(
        new_changes.into_inner(),
        4 * 10 * 20,
        "every change is history"
    );
    let all = s
        .containers(&ContainerQuery {
            include_gone: true,
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 20);
    // The newest change of every container is at T0+1000+3+36, odd: a stop.
    for c in &all {
        assert_ne!(c.state, ContainerState::Running, "{c:?}");
        assert_eq!(c.last_seen_ns, T0 + 1000 + 39, "{c:?}");
        assert_eq!(s.container_history(&c.id).unwrap().len(), 40, "{}", c.id);
    }
}

/// ListVulnerabilities' cost with 2,000 stored scans on PostgreSQL, the reports walk
/// it replaced against its SQL, in one run (a measurement, so ignored by default):
/// `cargo test --release -p rampart-store-pg --test conformance -- --ignored --nocapture`
#[test]
#[ignore = "a measurement: run it by name with --ignored --nocapture"]
fn vulnerability_list_with_2000_scans_on_postgres() {
    let Some(url) = rampart_testbed::postgres_ready() else {
        return;
    };
    let (s, schema) = fresh(&url);
    let _dropper = Dropper(url.clone(), vec![schema]);
    // It checks that both paths give the same answer before timing them.
    conformance::vulnerability_list_figures(&s, 2000, &|| {
        s.execute_batch("ANALYZE scan_findings; ANALYZE node_reports")
            .unwrap()
    });
}

/// Scan reports stored before migration 6 get their findings' layers, first-seen
/// times and database update times when it runs.
#[test]
fn migration_6_backfills_the_findings_of_stored_scans() {
    use rampart_event::fleet::{NodeReport, ScanReport, VulnFinding};
    use rampart_store::VulnQuery;
    let Some(url) = rampart_testbed::postgres_ready() else {
        return;
    };
    let (s, schema) = fresh(&url);
    let _dropper = Dropper(url.clone(), vec![schema.clone()]);
    let scan = NodeReport::Scan(ScanReport {
        ts_ns: 5,
        target: "container:c1".into(),
        image: "web:1".into(),
        db_updated_ns: 100,
        vulnerabilities: vec![VulnFinding {
            id: "CVE-7".into(),
            package: "zlib".into(),
            version: "1.2".into(),
            severity: rampart_event::Severity::High,
            layer: Some("sha256:aa".into()),
            layer_index: Some(2),
            layer_command: Some("RUN make".into()),
            first_seen_ns: 150,
            ..Default::default()
        }],
        ..Default::default()
    });
    s.put_reports("n1", std::slice::from_ref(&scan)).unwrap();
    // The schema as version 5 left it: findings' rows without the new columns (and
    // the full status index of before 7).
    s.execute_batch(
        "DROP INDEX alerts_handled_ts; CREATE INDEX alerts_status_ts ON alerts (status, ts_ns);
         DROP INDEX scan_findings_layer; DROP INDEX node_reports_db_updated;
         ALTER TABLE scan_findings DROP COLUMN layer, DROP COLUMN layer_index,
             DROP COLUMN layer_command, DROP COLUMN first_seen_ns;
         ALTER TABLE node_reports DROP COLUMN db_updated_ns;
         DELETE FROM scan_findings; DELETE FROM schema_migrations WHERE version >= 6",
    )
    .unwrap();
    drop(s);
    let s = PgStore::open(PgConfig {
        url: url.clone(),
        schema: Some(schema),
    })
    .unwrap();
    let page = s.vulnerabilities(&VulnQuery::default()).unwrap();
    assert_eq!((page.db_updated_ns, page.new_since_db_update), (100, 1));
    let v = &page.vulnerabilities;
    assert_eq!(v.len(), 1);
    assert_eq!(
        (
            v[0].id.as_str(),
            v[0].layer.as_deref(),
            v[0].layer_index,
            v[0].layer_command.as_deref(),
            v[0].first_seen_ns
        ),
        ("CVE-7", Some("sha256:aa"), Some(2), Some("RUN make"), 150)
    );
}

/// Migration 7: the status index holds handled alerts only, so ingesting open alerts
/// does not write it, and the store's status filter (a literal) lets the planner pick
/// it for handled alerts.
#[test]
fn status_index_holds_handled_alerts_only_and_serves_their_filter() {
    use rampart_event::Priority;
    use rampart_store::{AlertChange, AlertStatus, Ingest};
    let Some(url) = rampart_testbed::postgres_ready() else {
        return;
    };
    let (s, schema) = fresh(&url);
    let _dropper = Dropper(url.clone(), vec![schema.clone()]);
    let t0 = 1_700_000_000_000_000_000u64;
    let alerts: Vec<_> = (0..5000u64)
        .map(|i| {
            conformance::alert(
                &format!("a{i:05}"),
                t0 + i * 1_000_000,
                "Shadow file read",
                Priority::Warning,
                Some("c1"),
            )
        })
        .collect();
    s.ingest(&Ingest {
        node: "node-a",
        node_version: "test",
        seen_ns: t0,
        alerts: &alerts,
        lifecycle: &[],
        audit: &[],
    })
    .unwrap();
    for id in ["a00010", "a02000", "a04000"] {
        s.update_alert(id, &AlertChange::Resolve, "analyst", t0)
            .unwrap();
    }
    s.execute_batch("VACUUM ANALYZE alerts").unwrap();

    let resolved = s
        .query_alerts(&AlertQuery {
            status: Some(AlertStatus::Resolved),
            ..Default::default()
        })
        .unwrap();
    let ids: Vec<_> = resolved
        .alerts
        .iter()
        .map(|a| a.alert.id.as_str())
        .collect();
    assert_eq!(ids, ["a04000", "a02000", "a00010"]);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // A plain connection to read the catalog and the plan.
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let defs: Vec<(String, String)> = client
            .query(
                "SELECT indexname, indexdef FROM pg_indexes \
                 WHERE schemaname = $1 AND tablename = 'alerts' AND indexname LIKE 'alerts_%'",
                &[&schema],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert!(
            !defs.iter().any(|(n, _)| n == "alerts_status_ts"),
            "the full status index is gone: {defs:?}"
        );
        let handled = defs
            .iter()
            .find(|(n, _)| n == "alerts_handled_ts")
            .map(|(_, d)| d.as_str())
            .unwrap_or_default();
        assert!(
            handled.contains("WHERE (status <> 'open'::text)"),
            "{handled}"
        );
        // Three entries, not 5000: open alerts are not in it.
        let entries: i64 = client
            .query_one(
                &format!("SELECT reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{schema}' AND c.relname = 'alerts_handled_ts'"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(entries, 3);
        let plan: Vec<String> = client
            .query(
                &format!(
                    "EXPLAIN SELECT id FROM {schema}.alerts WHERE TRUE{} \
                     ORDER BY ts_ns DESC, id DESC LIMIT 101",
                    AlertStatus::Resolved.sql_condition()
                ),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            plan.iter().any(|l| l.contains("alerts_handled_ts")),
            "resolved alerts are found through the handled index: {plan:?}"
        );
    });
}
