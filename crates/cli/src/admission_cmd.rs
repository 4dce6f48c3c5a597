//! `rampart admission …`: the admission policy over manifest files, for CI pipelines
//! (the same answers `rampart central`'s webhook gives), and the default policy. The
//! policy and its evaluation are `rampart-admission`'s.

use std::path::PathBuf;

use rampart_admission::{AdmissionPolicy, NoScans, ScanFacts, ScanReportDir};

#[derive(Debug, clap::Subcommand)]
pub enum AdmissionCommand {
    /// Check Kubernetes manifests (Pods and workloads, multi-document YAML) against
    /// the admission policy: exit 1 when any would be denied, warnings printed.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The policy file (default: the built-in policy, as `rampart admission policy`).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// A directory of scan reports (`rampart scan IMAGE --format json -o DIR/x.json`);
        /// without it every image counts as unscanned.
        #[arg(long)]
        scan_reports: Option<PathBuf>,
        /// Print each decision as a JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Print the default policy (YAML), to start a policy file from.
    Policy,
}

pub fn run(cmd: AdmissionCommand) -> anyhow::Result<i32> {
    match cmd {
        AdmissionCommand::Policy => {
            print!("{}", yaml_serde::to_string(&AdmissionPolicy::default())?);
            Ok(0)
        }
        AdmissionCommand::Check {
            files,
            policy,
            scan_reports,
            json,
        } => {
            let policy = match &policy {
                Some(p) => {
                    let text = std::fs::read_to_string(p)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?;
                    AdmissionPolicy::parse(&text, &p.display().to_string())?
                }
                None => AdmissionPolicy::default(),
            };
            let scans: Box<dyn ScanFacts> = match &scan_reports {
                Some(dir) => Box::new(ScanReportDir::new(dir)),
                None => Box::new(NoScans),
            };
            let now = rampart_event::wall_ns();
            let mut denied = 0;
            for file in &files {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
                let origin = file.display().to_string();
                for d in rampart_admission::check_manifests(
                    &policy,
                    scans.as_ref(),
                    &text,
                    &origin,
                    now,
                )? {
                    if !d.allowed {
                        denied += 1;
                    }
                    if json {
                        println!("{}", serde_json::to_string(&d)?);
                        continue;
                    }
                    let verdict = if !d.skipped.is_empty() {
                        format!("skipped ({})", d.skipped)
                    } else if d.allowed {
                        "allowed".to_string()
                    } else {
                        "DENIED".to_string()
                    };
                    println!("{origin}: {} {}/{}: {verdict}", d.kind, d.namespace, d.name);
                    for v in &d.denials {
                        println!("  deny: {}", describe(v));
                    }
                    for v in &d.warnings {
                        println!("  warn: {}", describe(v));
                    }
                }
            }
            Ok(if denied > 0 { 1 } else { 0 })
        }
    }
}

fn describe(v: &rampart_admission::Violation) -> String {
    if v.container.is_empty() {
        format!("{} [{}]", v.message, v.clause)
    } else {
        format!("container {}: {} [{}]", v.container, v.message, v.clause)
    }
}
