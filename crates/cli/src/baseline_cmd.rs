//! `rampart baseline …`: read and edit the behaviour baselines a node learns (the
//! database `baseline.db` of the node's configuration). A running node picks the
//! changes up within `baseline.poll_secs`. The baselines, their store and their YAML
//! form are `rampart-baseline`'s; this module parses the arguments and prints.

use std::path::PathBuf;

use anyhow::Context;
use rampart_baseline::profile::{set_origin, Profile};
use rampart_baseline::{
    Baseline, BaselineStore, Confidence, ItemKind, Mode, Origin, SqliteBaselines,
};

/// Arguments of `rampart baseline`.
#[derive(Debug, clap::Args)]
pub struct BaselineArgs {
    /// Baseline database. Default: the node configuration's `baseline.db`
    /// (/var/lib/rampart/baselines.db).
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Node configuration file to take `baseline.db` and `min_observations` from.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: BaselineCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BaselineCommand {
    /// One line per workload: mode, lock, items, replicas, deviations.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A workload's items with count, replicas and confidence.
    Show {
        workload: String,
        /// Only items of this kind (process, file_write, sensitive_read, network, user,
        /// privilege, dns).
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Lock now: stop learning; anything outside is a deviation.
    Lock {
        workload: String,
        /// The mode it takes: monitor or protect.
        #[arg(long, default_value = "monitor")]
        mode: String,
    },
    /// Unlock: back to discover.
    Unlock { workload: String },
    /// Set the mode: discover, monitor or protect (monitor and protect lock it).
    Mode { workload: String, mode: String },
    /// Hold an item as normal whatever was seen (e.g. `process /usr/bin/curl`).
    Allow {
        workload: String,
        kind: String,
        item: String,
    },
    /// Mark an item never normal.
    Forbid {
        workload: String,
        kind: String,
        item: String,
    },
    /// Write a workload's baseline as YAML (stdout, or --output).
    Export {
        workload: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Read YAML profiles (as export writes them) into the database.
    Import { files: Vec<PathBuf> },
    /// Merge a workload's baselines from several nodes' databases into one profile
    /// (YAML as export writes it, unlocked; stdout or --output), for `import` on every
    /// node: the union of their items with counts and replicas over the nodes; an item
    /// seen on one node of several keeps low confidence, one forbidden anywhere stays
    /// forbidden. What each node saw of each item goes to stderr.
    Merge {
        workload: String,
        /// A node's name and its baseline database, `NODE=FILE` (repeat per node).
        #[arg(long = "from", value_name = "NODE=FILE", required = true)]
        from: Vec<String>,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

fn mode(s: &str) -> anyhow::Result<Mode> {
    Mode::parse(s)
        .with_context(|| format!("unknown mode {s:?} (expected discover, monitor or protect)"))
}

fn kind(s: &str) -> anyhow::Result<ItemKind> {
    ItemKind::parse(s).with_context(|| {
        format!(
            "unknown item kind {s:?} (expected one of: {})",
            ItemKind::ALL.map(|k| k.as_str()).join(", ")
        )
    })
}

/// Lock state and mode as one word: `discover`, `monitor (locked)`.
fn state(b: &Baseline) -> String {
    if b.locked {
        format!("{} (locked)", b.mode.as_str())
    } else {
        b.mode.as_str().to_string()
    }
}

fn age(ns: u64) -> String {
    let now = rampart_event::wall_ns();
    let s = now.saturating_sub(ns) / 1_000_000_000;
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        7200..=172_799 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// `rampart baseline merge`: reads the nodes' databases only (none is created).
fn merge(
    workload: &str,
    from: &[String],
    output: Option<&std::path::Path>,
    min_obs: u64,
) -> anyhow::Result<i32> {
    let mut nodes = Vec::new();
    for f in from {
        let (node, path) = f.split_once('=').with_context(|| {
            format!("--from {f:?}: expected NODE=FILE (a node's name and its baseline database)")
        })?;
        let path = std::path::Path::new(path);
        anyhow::ensure!(
            path.is_file(),
            "--from {f:?}: {} is not a baseline database",
            path.display()
        );
        let store = SqliteBaselines::open(path)?;
        match store.get(workload)? {
            Some((b, _)) => nodes.push((node.to_string(), b)),
            None => eprintln!("{node}: no baseline of {workload}"),
        }
    }
    anyhow::ensure!(
        !nodes.is_empty(),
        "no node has a baseline of workload {workload:?}"
    );
    let fleet = rampart_baseline::fleet::merge(
        workload,
        nodes.iter().map(|(n, b)| (n.as_str(), b)),
        min_obs,
    );
    for (k, items) in &fleet.items {
        for (key, i) in items {
            let seen: Vec<String> = i
                .nodes
                .iter()
                .map(|(n, s)| format!("{n}: {} by {}", s.count, s.replicas))
                .collect();
            eprintln!(
                "{:<15} {key}  {}  [{}]",
                k.as_str(),
                i.confidence.as_str(),
                seen.join(", ")
            );
        }
    }
    let yaml = Profile::from(&fleet.to_baseline(rampart_event::wall_ns())).to_yaml();
    match output {
        Some(path) => std::fs::write(path, yaml)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{yaml}"),
    }
    Ok(0)
}

pub fn run(a: BaselineArgs) -> anyhow::Result<i32> {
    let cfg = rampart_agent::NodeConfig::load(a.config.as_deref())?;
    if let BaselineCommand::Merge {
        workload,
        from,
        output,
    } = &a.command
    {
        return merge(
            workload,
            from,
            output.as_deref(),
            cfg.baseline.min_observations,
        );
    }
    let db = a.db.clone().unwrap_or_else(|| cfg.baseline.db.clone());
    let min_obs = cfg.baseline.min_observations;
    let store = SqliteBaselines::open(&db)?;
    let now = rampart_event::wall_ns();
    let edit = |w: &str, f: &mut dyn FnMut(&mut Baseline)| -> anyhow::Result<Baseline> {
        let (b, _) = store.update(w, f).with_context(|| {
            format!("baseline of {w} (`rampart baseline list` shows the workloads)")
        })?;
        Ok(b)
    };
    match a.command {
        BaselineCommand::List { json } => {
            let all = store.load_all()?;
            if json {
                let rows: Vec<serde_json::Value> = all
                    .iter()
                    .map(|(b, rev)| {
                        serde_json::json!({
                            "workload": b.workload, "mode": b.mode.as_str(), "locked": b.locked,
                            "items": b.len(), "replicas": b.replicas.len(),
                            "observations": b.observations, "deviations": b.deviations,
                            "started_ns": b.started_ns, "locked_ns": b.locked_ns, "rev": rev,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(0);
            }
            println!(
                "{:<40} {:<18} {:>6} {:>8} {:>10} {:>10}  STARTED",
                "WORKLOAD", "MODE", "ITEMS", "REPLICAS", "EVENTS", "DEVIATIONS"
            );
            for (b, _) in &all {
                println!(
                    "{:<40} {:<18} {:>6} {:>8} {:>10} {:>10}  {}",
                    b.workload,
                    state(b),
                    b.len(),
                    b.replicas.len(),
                    b.observations,
                    b.deviations,
                    age(b.started_ns)
                );
            }
        }
        BaselineCommand::Show {
            workload,
            kind: only,
            json,
        } => {
            let only = only.as_deref().map(kind).transpose()?;
            let (b, _) = store
                .get(&workload)?
                .with_context(|| format!("no baseline for workload {workload:?}"))?;
            let mut rows = Vec::new();
            for (k, items) in &b.items {
                if only.is_some_and(|o| o != *k) {
                    continue;
                }
                let mut keys: Vec<&String> = items.keys().collect();
                keys.sort();
                for key in keys {
                    let i = &items[key];
                    rows.push((*k, key.clone(), i.clone(), b.confidence(i, min_obs)));
                }
            }
            if json {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(k, key, i, c)| {
                        serde_json::json!({"kind": k.as_str(), "item": key, "count": i.count,
                            "replicas": i.replicas, "confidence": c.as_str(), "origin": i.origin,
                            "first_ns": i.first_ns, "last_ns": i.last_ns, "not_in_image": i.not_in_image})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            println!(
                "{}  {}  {} items, {} replicas, {} events, {} deviations",
                b.workload,
                state(&b),
                b.len(),
                b.replicas.len(),
                b.observations,
                b.deviations
            );
            println!(
                "{:<15} {:>7} {:>8} {:<10} {:<10} ITEM",
                "KIND", "COUNT", "REPLICAS", "CONFIDENCE", "LAST SEEN"
            );
            for (k, key, i, c) in rows {
                let note = match (i.origin, c) {
                    (Origin::Allowed, _) => " [allowed]",
                    (Origin::Forbidden, _) => " [forbidden]",
                    (_, Confidence::None) if i.not_in_image => " [not in the image]",
                    (_, Confidence::Low) => " [one replica only]",
                    _ => "",
                };
                println!(
                    "{:<15} {:>7} {:>8} {:<10} {:<10} {key}{note}",
                    k.as_str(),
                    i.count,
                    i.replicas.len(),
                    c.as_str(),
                    age(i.last_ns)
                );
            }
        }
        BaselineCommand::Lock { workload, mode: m } => {
            let m = mode(&m)?;
            let b = edit(&workload, &mut |b| rampart_baseline::lock(b, now, m))?;
            println!("{}: {}", b.workload, state(&b));
        }
        BaselineCommand::Unlock { workload } => {
            let b = edit(&workload, &mut |b| rampart_baseline::unlock(b, now))?;
            println!("{}: {}", b.workload, state(&b));
        }
        BaselineCommand::Mode { workload, mode: m } => {
            let m = mode(&m)?;
            let b = edit(&workload, &mut |b| rampart_baseline::set_mode(b, now, m))?;
            println!("{}: {}", b.workload, state(&b));
        }
        BaselineCommand::Allow {
            workload,
            kind: k,
            item,
        } => {
            let k = kind(&k)?;
            edit(&workload, &mut |b| {
                set_origin(b, k, &item, Origin::Allowed, now)
            })?;
            println!("{workload}: {} {item} allowed", k.as_str());
        }
        BaselineCommand::Forbid {
            workload,
            kind: k,
            item,
        } => {
            let k = kind(&k)?;
            edit(&workload, &mut |b| {
                set_origin(b, k, &item, Origin::Forbidden, now)
            })?;
            println!("{workload}: {} {item} forbidden", k.as_str());
        }
        BaselineCommand::Export { workload, output } => {
            let (b, _) = store
                .get(&workload)?
                .with_context(|| format!("no baseline for workload {workload:?}"))?;
            let yaml = Profile::from(&b).to_yaml();
            match output {
                Some(path) => std::fs::write(&path, yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{yaml}"),
            }
        }
        // Handled before the node's database is opened.
        BaselineCommand::Merge { .. } => {}
        BaselineCommand::Import { files } => {
            anyhow::ensure!(!files.is_empty(), "name the profile files to import");
            // All are read before any is written: one bad file changes nothing.
            let profiles = files
                .iter()
                .map(|f| Profile::read(f))
                .collect::<Result<Vec<_>, _>>()?;
            for p in profiles {
                let b = p.into_baseline();
                store.put(&b)?;
                println!("{}: imported, {} items, {}", b.workload, b.len(), state(&b));
            }
        }
    }
    Ok(0)
}
