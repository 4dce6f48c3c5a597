//! The bus ingest path: many batches in one transaction with a fixed handful of
//! statements, whatever the record count. Each kind of record goes in as one
//! `INSERT … SELECT FROM UNNEST($1::text[], …)` of column arrays (one round trip for
//! thousands of rows), `ON CONFLICT` keeping it idempotent; `RETURNING` tells which
//! rows were new, so the per-batch counts equal those of one-at-a-time ingest.
//! Alerts and container history first go in by binary `COPY` under a savepoint:
//! every row is new unless a message came again, and then PostgreSQL does neither
//! the speculative insertion of `ON CONFLICT` nor the `RETURNING` rows, nor the SQL
//! projection of column arrays, and inserts heap rows several at a time. A duplicate
//! (a unique violation) rolls back to the savepoint and takes the careful statement.
//! (`INSERT … FROM UNNEST` of a dozen arrays is a `ROWS FROM` that PostgreSQL
//! materialises: with thousands of alert bodies it spills past `work_mem` to temporary
//! files, and PostgreSQL spent ~45 µs of CPU per record against ~26 µs with COPY,
//! measured. [`IngestPath`] keeps the earlier paths for benchmarks.)
//!
//! Containers are the one place with read-modify-write: a lifecycle change's effect
//! depends on the row's state (a late change is history only). Their rows are locked
//! and read at once (`FOR UPDATE`), the changes folded in order in Rust with the same
//! [`lifecycle_effect`] the SQLite store uses, and written back in one upsert.
//! Within a commit, containers named by alerts are merged before lifecycle changes
//! apply, as within one batch.
//!
//! Several of these transactions may run at once (central commits groups of bus
//! messages in parallel, each on its own connection). The alerts' insert, most of the
//! work, comes first and runs in parallel: rows in id order, so two transactions that
//! carry the same ids (a redelivery) wait for each other rather than deadlock. Then
//! an advisory lock (per schema) serialises the rest, which updates rows every batch
//! shares (nodes, containers, images): without it, two transactions could each read a
//! container as missing and the later upsert would overwrite the other's state.

use std::collections::{HashMap, HashSet};

use rampart_event::{Alert, Workload};
use rampart_store::*;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Transaction};

use crate::{pg, IngestPath};

/// Nodes seen: the last non-empty version wins, seen times widen.
struct NodeSeen<'a> {
    version: &'a str,
    first: i64,
    last: i64,
}

/// A container row as it will be written.
#[derive(Clone)]
struct ContainerRow {
    node: String,
    name: String,
    image: String,
    digest: String,
    state: ContainerState,
    state_ts: i64,
    first: i64,
    last: i64,
    started: Option<i64>,
    finished: Option<i64>,
    exit_code: Option<i64>,
}

/// Images seen: the first non-empty digest, seen times widen.
struct ImageSeen {
    digest: String,
    first: i64,
    last: i64,
}

fn widen_image(images: &mut HashMap<String, ImageSeen>, image: &str, digest: &str, ts: i64) {
    if image.is_empty() {
        return;
    }
    let e = images.entry(image.to_string()).or_insert(ImageSeen {
        digest: String::new(),
        first: ts,
        last: ts,
    });
    if e.digest.is_empty() {
        e.digest = digest.to_string();
    }
    e.first = e.first.min(ts);
    e.last = e.last.max(ts);
}

fn keep_first(field: &mut String, v: &str) {
    if field.is_empty() {
        field.push_str(v);
    }
}

/// Applies `batches` in one transaction and returns what each changed, writing new
/// rows the way `path` says.
pub(crate) async fn ingest_many(
    c: &mut Client,
    batches: &[Ingest<'_>],
    path: IngestPath,
) -> Result<Vec<IngestReport>> {
    let mut tx = c.transaction().await.map_err(pg)?;
    let mut reports = vec![IngestReport::default(); batches.len()];
    let now = ns_to_db(rampart_event::wall_ns());
    insert_alerts(&mut tx, batches, &mut reports, now, path).await?;
    // Held to the commit: what follows reads and rewrites shared rows.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
        &[&INGEST_LOCK],
    )
    .await
    .map_err(pg)?;

    // Nodes.
    let mut nodes: Vec<(&str, NodeSeen)> = Vec::new();
    for b in batches.iter().filter(|b| !b.node.is_empty()) {
        let ts = ns_to_db(b.seen_ns);
        match nodes.iter_mut().find(|(n, _)| *n == b.node) {
            Some((_, s)) => {
                if !b.node_version.is_empty() {
                    s.version = b.node_version;
                }
                s.first = s.first.min(ts);
                s.last = s.last.max(ts);
            }
            None => nodes.push((
                b.node,
                NodeSeen {
                    version: b.node_version,
                    first: ts,
                    last: ts,
                },
            )),
        }
    }
    if !nodes.is_empty() {
        let names: Vec<&str> = nodes.iter().map(|(n, _)| *n).collect();
        let versions: Vec<&str> = nodes.iter().map(|(_, s)| s.version).collect();
        let firsts: Vec<i64> = nodes.iter().map(|(_, s)| s.first).collect();
        let lasts: Vec<i64> = nodes.iter().map(|(_, s)| s.last).collect();
        tx.execute(
            "INSERT INTO nodes (name, version, first_seen_ns, last_seen_ns)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[])
             ON CONFLICT (name) DO UPDATE SET
               version = CASE WHEN excluded.version = '' THEN nodes.version ELSE excluded.version END,
               first_seen_ns = LEAST(nodes.first_seen_ns, excluded.first_seen_ns),
               last_seen_ns = GREATEST(nodes.last_seen_ns, excluded.last_seen_ns)",
            &[&names, &versions, &firsts, &lasts],
        )
        .await
        .map_err(pg)?;
    }

    let mut images: HashMap<String, ImageSeen> = HashMap::new();
    merge_alert_containers(&tx, batches, &mut images).await?;
    apply_lifecycle(&mut tx, batches, &mut reports, &mut images, path).await?;
    insert_audit(&tx, batches, &mut reports).await?;

    if !images.is_empty() {
        let mut names = Vec::with_capacity(images.len());
        let (mut digests, mut firsts, mut lasts) = (Vec::new(), Vec::new(), Vec::new());
        for (name, i) in &images {
            names.push(name.as_str());
            digests.push(i.digest.as_str());
            firsts.push(i.first);
            lasts.push(i.last);
        }
        tx.execute(
            "INSERT INTO images (image, digest, first_seen_ns, last_seen_ns)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[])
             ON CONFLICT (image) DO UPDATE SET
               digest = CASE WHEN images.digest = '' THEN excluded.digest ELSE images.digest END,
               first_seen_ns = LEAST(images.first_seen_ns, excluded.first_seen_ns),
               last_seen_ns = GREATEST(images.last_seen_ns, excluded.last_seen_ns)",
            &[&names, &digests, &firsts, &lasts],
        )
        .await
        .map_err(pg)?;
    }
    // Container labels (a container's labels never change: a stored set is kept).
    let mut label_ids: Vec<String> = Vec::new();
    let mut label_sets: Vec<String> = Vec::new();
    let mut labelled: HashSet<String> = HashSet::new();
    for b in batches {
        for (id, labels) in rampart_store::batch_labels(b)? {
            if labelled.insert(id.clone()) {
                label_ids.push(id);
                label_sets.push(labels);
            }
        }
    }
    if !label_ids.is_empty() {
        tx.execute(
            "UPDATE containers SET labels = v.labels
             FROM UNNEST($1::text[], $2::text[]) AS v(id, labels)
             WHERE containers.id = v.id AND containers.labels = '{}'",
            &[&label_ids, &label_sets],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(reports)
}

/// The first key of the ingest transactions' advisory lock ("ramp"); the second is
/// the schema's hash, so stores in different schemas do not wait for each other.
const INGEST_LOCK: i32 = 0x7261_6d70;

/// Rows streamed by binary `COPY` (`sql` names the table and columns, `types` their
/// types in order); the count copied.
async fn copy_rows<'a, const N: usize>(
    tx: &Transaction<'_>,
    sql: &str,
    types: &[Type; N],
    rows: impl Iterator<Item = [&'a (dyn ToSql + Sync); N]>,
) -> std::result::Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in(sql).await?;
    let writer = BinaryCopyInWriter::new(sink, types);
    let mut writer = std::pin::pin!(writer);
    for row in rows {
        writer.as_mut().write(&row).await?;
    }
    writer.as_mut().finish().await
}

/// Ends the savepoint `fast` after a write of new rows only (no `ON CONFLICT`): true
/// when it committed, false when a row was already there (a redelivery: rolled back,
/// so the caller takes the careful statement).
async fn settle(
    fast: Transaction<'_>,
    written: std::result::Result<u64, tokio_postgres::Error>,
) -> Result<bool> {
    match written {
        Ok(_) => {
            fast.commit().await.map_err(pg)?;
            Ok(true)
        }
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            fast.rollback().await.map_err(pg)?;
            Ok(false)
        }
        Err(e) => Err(pg(e)),
    }
}

const ALERT_COLUMNS: &str = "id, ts_ns, first_ts_ns, count, rule, priority, severity, node,
                             container_id, status, updated_ns, body";

/// The alerts' rows from the column arrays ($10 is the update time of all).
const ALERT_ROWS: &str = "SELECT id, ts, fts, cnt, rule, pri, sev, node, cid, 'open', $10, body
     FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::text[],
                 $6::int8[], $7::int8[], $8::text[], $9::text[], $11::text[])
          AS t(id, ts, fts, cnt, rule, pri, sev, node, cid, body)";

/// Alerts, new ids only.
async fn insert_alerts(
    tx: &mut Transaction<'_>,
    batches: &[Ingest<'_>],
    reports: &mut [IngestReport],
    now: i64,
    path: IngestPath,
) -> Result<()> {
    // First occurrence of each id, with the batch it came in.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut rows: Vec<(usize, &str, &Alert)> = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        for a in b.alerts {
            if seen.insert(a.id.as_str()) {
                rows.push((i, b.node, a));
            }
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_unstable_by(|a, b| a.2.id.cmp(&b.2.id));
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let (mut ts, mut first_ts, mut count) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut rule, mut priority, mut severity) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut node, mut container, mut body) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (_, nd, a) in &rows {
        ids.push(a.id.as_str());
        ts.push(ns_to_db(a.ts_ns));
        first_ts.push(ns_to_db(a.first_ts_ns));
        count.push(ns_to_db(a.count));
        rule.push(a.rule.as_str());
        priority.push(priority_rank(a.priority));
        severity.push(severity_rank(a.priority.severity()));
        node.push(*nd);
        container.push(a.event.container.container().map(|c| c.id.as_str()));
        body.push(serde_json::to_string(a).map_err(|e| StoreError::Invalid(e.to_string()))?);
    }
    let params: [&(dyn ToSql + Sync); 11] = [
        &ids, &ts, &first_ts, &count, &rule, &priority, &severity, &node, &container, &now, &body,
    ];
    // Nearly always every id is new (a redelivery is the exception): new rows only
    // skips ON CONFLICT's speculative insertion and the RETURNING rows (a quarter of
    // PostgreSQL's work on these rows, measured). Under a savepoint, so a duplicate
    // id only sends the batch the careful way.
    if path != IngestPath::Careful {
        let fast = tx.savepoint("alerts_new").await.map_err(pg)?;
        let written = if path == IngestPath::Copy {
            const TYPES: [Type; 12] = [
                Type::TEXT,
                Type::INT8,
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::INT8,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::INT8,
                Type::TEXT,
            ];
            let sql = format!("COPY alerts ({ALERT_COLUMNS}) FROM STDIN (FORMAT binary)");
            let rows = (0..n).map(|i| -> [&(dyn ToSql + Sync); 12] {
                [
                    &ids[i],
                    &ts[i],
                    &first_ts[i],
                    &count[i],
                    &rule[i],
                    &priority[i],
                    &severity[i],
                    &node[i],
                    &container[i],
                    &"open",
                    &now,
                    &body[i],
                ]
            });
            copy_rows(&fast, &sql, &TYPES, rows).await
        } else {
            let plain = format!("INSERT INTO alerts ({ALERT_COLUMNS}) {ALERT_ROWS}");
            fast.execute(&plain, &params).await
        };
        if settle(fast, written).await? {
            for (i, _, _) in &rows {
                reports[*i].alerts += 1;
            }
            return Ok(());
        }
    }
    let new = tx
        .query(
            &format!(
                "INSERT INTO alerts ({ALERT_COLUMNS}) {ALERT_ROWS}
                 ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            &params,
        )
        .await
        .map_err(pg)?;
    let new: HashSet<String> = new
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<_, _>>()
        .map_err(pg)?;
    for (i, _, a) in &rows {
        if new.contains(&a.id) {
            reports[*i].alerts += 1;
        }
    }
    Ok(())
}

/// The containers the alerts' events name, merged per id in arrival order.
async fn merge_alert_containers(
    tx: &Transaction<'_>,
    batches: &[Ingest<'_>],
    images: &mut HashMap<String, ImageSeen>,
) -> Result<()> {
    let mut order: Vec<&str> = Vec::new();
    let mut merged: HashMap<&str, ContainerRow> = HashMap::new();
    for b in batches {
        for a in b.alerts {
            let Workload::Container(c) = &*a.event.container else {
                continue;
            };
            let t = ns_to_db(a.event.ts_ns);
            widen_image(images, &c.image, &c.image_digest, t);
            match merged.get_mut(c.id.as_str()) {
                Some(r) => {
                    keep_first(&mut r.name, &c.name);
                    keep_first(&mut r.image, &c.image);
                    keep_first(&mut r.digest, &c.image_digest);
                    r.first = r.first.min(t);
                    r.last = r.last.max(t);
                }
                None => {
                    order.push(c.id.as_str());
                    merged.insert(
                        c.id.as_str(),
                        ContainerRow {
                            node: b.node.to_string(),
                            name: c.name.clone(),
                            image: c.image.clone(),
                            digest: c.image_digest.clone(),
                            state: ContainerState::Running,
                            state_ts: 0,
                            first: t,
                            last: t,
                            started: None,
                            finished: None,
                            exit_code: None,
                        },
                    );
                }
            }
        }
    }
    if order.is_empty() {
        return Ok(());
    }
    let rows: Vec<&ContainerRow> = order.iter().filter_map(|id| merged.get(id)).collect();
    let nodes: Vec<&str> = rows.iter().map(|r| r.node.as_str()).collect();
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let imgs: Vec<&str> = rows.iter().map(|r| r.image.as_str()).collect();
    let digests: Vec<&str> = rows.iter().map(|r| r.digest.as_str()).collect();
    let firsts: Vec<i64> = rows.iter().map(|r| r.first).collect();
    let lasts: Vec<i64> = rows.iter().map(|r| r.last).collect();
    tx.execute(
        "INSERT INTO containers (id, node, name, image, image_digest, state, state_ts_ns,
                                 first_seen_ns, last_seen_ns)
         SELECT id, node, name, image, digest, 'running', 0, f, l
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::int8[], $7::int8[]) AS t(id, node, name, image, digest, f, l)
         ON CONFLICT (id) DO UPDATE SET
           name = CASE WHEN containers.name = '' THEN excluded.name ELSE containers.name END,
           image = CASE WHEN containers.image = '' THEN excluded.image ELSE containers.image END,
           image_digest = CASE WHEN containers.image_digest = '' THEN excluded.image_digest
                               ELSE containers.image_digest END,
           first_seen_ns = LEAST(containers.first_seen_ns, excluded.first_seen_ns),
           last_seen_ns = GREATEST(containers.last_seen_ns, excluded.last_seen_ns)",
        &[&order, &nodes, &names, &imgs, &digests, &firsts, &lasts],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Lifecycle changes: the history (new ones only) and the containers' state.
async fn apply_lifecycle(
    tx: &mut Transaction<'_>,
    batches: &[Ingest<'_>],
    reports: &mut [IngestReport],
    images: &mut HashMap<String, ImageSeen>,
    path: IngestPath,
) -> Result<()> {
    type Key<'a> = (&'a str, i64, &'static str);
    let mut seen: HashSet<Key<'_>> = HashSet::new();
    let mut changes = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        for ch in b.lifecycle {
            let (action, code) = action_parts(&ch.action);
            let key = (ch.container_id.as_str(), ns_to_db(ch.ts_ns), action);
            if seen.insert(key) {
                changes.push((i, b.node, ch, action, code));
            }
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    let cids: Vec<&str> = changes.iter().map(|c| c.2.container_id.as_str()).collect();
    let ts: Vec<i64> = changes.iter().map(|c| ns_to_db(c.2.ts_ns)).collect();
    let actions: Vec<&str> = changes.iter().map(|c| c.3).collect();
    let codes: Vec<Option<i64>> = changes.iter().map(|c| c.4).collect();
    let nodes: Vec<&str> = changes.iter().map(|c| c.1).collect();
    let names: Vec<&str> = changes.iter().map(|c| c.2.name.as_str()).collect();
    let imgs: Vec<&str> = changes.iter().map(|c| c.2.image.as_str()).collect();
    let params: [&(dyn ToSql + Sync); 7] = [&cids, &ts, &actions, &codes, &nodes, &names, &imgs];
    const EVENTS: &str = "INSERT INTO container_events (container_id, ts_ns, action, exit_code,
                                                          node, name, image)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[],
                              $6::text[], $7::text[])";
    // As with alerts: all new but for a redelivery, so new rows only first.
    let all_new = path != IngestPath::Careful && {
        let fast = tx.savepoint("container_events_new").await.map_err(pg)?;
        let written = if path == IngestPath::Copy {
            const TYPES: [Type; 7] = [
                Type::TEXT,
                Type::INT8,
                Type::TEXT,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
            ];
            let rows = (0..changes.len()).map(|i| -> [&(dyn ToSql + Sync); 7] {
                [
                    &cids[i],
                    &ts[i],
                    &actions[i],
                    &codes[i],
                    &nodes[i],
                    &names[i],
                    &imgs[i],
                ]
            });
            copy_rows(
                &fast,
                "COPY container_events (container_id, ts_ns, action, exit_code, node, name,
                                        image) FROM STDIN (FORMAT binary)",
                &TYPES,
                rows,
            )
            .await
        } else {
            fast.execute(EVENTS, &params).await
        };
        settle(fast, written).await?
    };
    let changes: Vec<_> = if all_new {
        changes
    } else {
        let new_rows = tx
            .query(
                &format!("{EVENTS} ON CONFLICT DO NOTHING RETURNING container_id, ts_ns, action"),
                &params,
            )
            .await
            .map_err(pg)?;
        let mut new: HashSet<(String, i64, String)> = HashSet::with_capacity(new_rows.len());
        for r in &new_rows {
            new.insert((
                r.try_get(0).map_err(pg)?,
                r.try_get(1).map_err(pg)?,
                r.try_get(2).map_err(pg)?,
            ));
        }
        changes
            .into_iter()
            .filter(|c| {
                new.contains(&(
                    c.2.container_id.clone(),
                    ns_to_db(c.2.ts_ns),
                    c.3.to_string(),
                ))
            })
            .collect()
    };
    if changes.is_empty() {
        return Ok(());
    }

    // The rows these changes move, locked, then folded in arrival order.
    let mut ids: Vec<&str> = changes.iter().map(|c| c.2.container_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut rows: HashMap<String, ContainerRow> = HashMap::with_capacity(ids.len());
    for r in tx
        .query(
            "SELECT id, node, name, image, image_digest, state, state_ts_ns, first_seen_ns,
                    last_seen_ns, started_ns, finished_ns, exit_code
             FROM containers WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&ids],
        )
        .await
        .map_err(pg)?
    {
        let state: &str = r.try_get(5).map_err(pg)?;
        let state = ContainerState::parse(state)
            .ok_or_else(|| StoreError::Decode(format!("container state {state:?}")))?;
        rows.insert(
            r.try_get(0).map_err(pg)?,
            ContainerRow {
                node: r.try_get(1).map_err(pg)?,
                name: r.try_get(2).map_err(pg)?,
                image: r.try_get(3).map_err(pg)?,
                digest: r.try_get(4).map_err(pg)?,
                state,
                state_ts: r.try_get(6).map_err(pg)?,
                first: r.try_get(7).map_err(pg)?,
                last: r.try_get(8).map_err(pg)?,
                started: r.try_get(9).map_err(pg)?,
                finished: r.try_get(10).map_err(pg)?,
                exit_code: r.try_get(11).map_err(pg)?,
            },
        );
    }
    for (i, node, ch, _, _) in &changes {
        reports[*i].lifecycle += 1;
        let t = ns_to_db(ch.ts_ns);
        widen_image(images, &ch.image, "", t);
        match rows.get_mut(ch.container_id.as_str()) {
            None => {
                let e = lifecycle_effect(ch, None, None, None);
                rows.insert(
                    ch.container_id.clone(),
                    ContainerRow {
                        node: node.to_string(),
                        name: ch.name.clone(),
                        image: ch.image.clone(),
                        digest: String::new(),
                        state: e.state,
                        state_ts: t,
                        first: t,
                        last: t,
                        started: e.started_ns.map(ns_to_db),
                        finished: e.finished_ns.map(ns_to_db),
                        exit_code: e.exit_code,
                    },
                );
            }
            Some(r) => {
                keep_first(&mut r.name, &ch.name);
                keep_first(&mut r.image, &ch.image);
                r.first = r.first.min(t);
                r.last = r.last.max(t);
                // A change older than the one the state shows arrived late: history only.
                if t >= r.state_ts {
                    let e = lifecycle_effect(
                        ch,
                        r.started.map(ns_from_db),
                        r.finished.map(ns_from_db),
                        r.exit_code,
                    );
                    r.state = e.state;
                    r.state_ts = t;
                    r.started = e.started_ns.map(ns_to_db);
                    r.finished = e.finished_ns.map(ns_to_db);
                    r.exit_code = e.exit_code;
                }
            }
        }
    }
    let rows: Vec<(&String, &ContainerRow)> = rows.iter().collect();
    let ids: Vec<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    let nodes: Vec<&str> = rows.iter().map(|(_, r)| r.node.as_str()).collect();
    let names: Vec<&str> = rows.iter().map(|(_, r)| r.name.as_str()).collect();
    let imgs: Vec<&str> = rows.iter().map(|(_, r)| r.image.as_str()).collect();
    let digests: Vec<&str> = rows.iter().map(|(_, r)| r.digest.as_str()).collect();
    let states: Vec<&str> = rows.iter().map(|(_, r)| r.state.as_str()).collect();
    let state_ts: Vec<i64> = rows.iter().map(|(_, r)| r.state_ts).collect();
    let firsts: Vec<i64> = rows.iter().map(|(_, r)| r.first).collect();
    let lasts: Vec<i64> = rows.iter().map(|(_, r)| r.last).collect();
    let started: Vec<Option<i64>> = rows.iter().map(|(_, r)| r.started).collect();
    let finished: Vec<Option<i64>> = rows.iter().map(|(_, r)| r.finished).collect();
    let exits: Vec<Option<i64>> = rows.iter().map(|(_, r)| r.exit_code).collect();
    tx.execute(
        "INSERT INTO containers (id, node, name, image, image_digest, state, state_ts_ns,
                                 first_seen_ns, last_seen_ns, started_ns, finished_ns, exit_code)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::int8[], $8::int8[], $9::int8[], $10::int8[],
                              $11::int8[], $12::int8[])
         ON CONFLICT (id) DO UPDATE SET
           name = excluded.name, image = excluded.image, image_digest = excluded.image_digest,
           state = excluded.state, state_ts_ns = excluded.state_ts_ns,
           first_seen_ns = excluded.first_seen_ns, last_seen_ns = excluded.last_seen_ns,
           started_ns = excluded.started_ns, finished_ns = excluded.finished_ns,
           exit_code = excluded.exit_code",
        &[
            &ids, &nodes, &names, &imgs, &digests, &states, &state_ts, &firsts, &lasts, &started,
            &finished, &exits,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// Audit records, new ids only.
async fn insert_audit(
    tx: &Transaction<'_>,
    batches: &[Ingest<'_>],
    reports: &mut [IngestReport],
) -> Result<()> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut rows: Vec<(usize, &AuditRecord)> = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        for r in b.audit {
            if seen.insert(r.id.as_str()) {
                rows.push((i, r));
            }
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = rows.iter().map(|(_, r)| r.id.as_str()).collect();
    let ts: Vec<i64> = rows.iter().map(|(_, r)| ns_to_db(r.ts_ns)).collect();
    let origin: Vec<&str> = rows.iter().map(|(_, r)| r.origin.as_str()).collect();
    let actor: Vec<&str> = rows.iter().map(|(_, r)| r.actor.as_str()).collect();
    let action: Vec<&str> = rows.iter().map(|(_, r)| r.action.as_str()).collect();
    let target: Vec<&str> = rows.iter().map(|(_, r)| r.target.as_str()).collect();
    let detail: Vec<&str> = rows.iter().map(|(_, r)| r.detail.as_str()).collect();
    let new = tx
        .query(
            "INSERT INTO audit (id, ts_ns, origin, actor, action, target, detail)
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[])
             ON CONFLICT (id) DO NOTHING RETURNING id",
            &[&ids, &ts, &origin, &actor, &action, &target, &detail],
        )
        .await
        .map_err(pg)?;
    let new: HashSet<String> = new
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<_, _>>()
        .map_err(pg)?;
    for (i, r) in &rows {
        if new.contains(&r.id) {
            reports[*i].audit += 1;
        }
    }
    Ok(())
}
