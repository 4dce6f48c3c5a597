//! The store conformance suite on PostgreSQL (scripts/setup starts it; CI must run it),
//! each check in a schema of its own, dropped afterwards.

use std::sync::atomic::{AtomicU32, Ordering};

use rampart_store::{conformance, AlertQuery, Store};
use rampart_store_pg::{PgConfig, PgStore};

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
