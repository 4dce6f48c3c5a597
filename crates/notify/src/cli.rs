//! `rampart outputs …`: check an outputs configuration, preview what each encoder writes,
//! and send a test alert through the configured outputs.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use rampart_event::Alert;

use crate::config::OutputsConfig;
use crate::encode::{self, slack, splunk, syslog, EncodeContext};
use crate::{Dispatcher, Encoding};

/// The commented example configuration, with every output and its defaults.
pub const EXAMPLE_CONFIG: &str = include_str!("../outputs.example.yaml");

#[derive(Debug, Args)]
pub struct OutputsArgs {
    #[command(subcommand)]
    pub command: OutputsCommand,
}

#[derive(Debug, Subcommand)]
pub enum OutputsCommand {
    /// Parse an outputs configuration and report errors with line and column.
    Validate {
        /// YAML file holding the outputs configuration.
        file: PathBuf,
    },
    /// Print the commented example configuration (every output, every default).
    Example,
    /// Print how an alert looks in one format.
    Render {
        #[arg(long, value_enum, default_value = "falco")]
        format: RenderFormat,
        /// JSON file holding one Rampart alert; default: a built-in sample alert.
        #[arg(long)]
        alert: Option<PathBuf>,
    },
    /// Send one sample alert through every configured output and print the counts.
    Test {
        /// YAML file holding the outputs configuration; default: stdout JSON.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RenderFormat {
    Json,
    Falco,
    Ocsf,
    Text,
    Cef,
    Syslog,
    Slack,
    Splunk,
}

/// Runs a subcommand; returns the process exit code (0 ok, 1 failure, 2 bad input).
pub async fn run(args: OutputsArgs) -> anyhow::Result<i32> {
    match args.command {
        OutputsCommand::Validate { file } => match OutputsConfig::from_path(&file) {
            Ok(config) => {
                println!("{}: {} output(s) OK", file.display(), config.sinks.len());
                for (i, s) in config.sinks.iter().enumerate() {
                    println!("  {} ({})", s.display_name(i), s.kind.type_name());
                }
                Ok(0)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(2)
            }
        },
        OutputsCommand::Example => {
            print!("{EXAMPLE_CONFIG}");
            Ok(0)
        }
        OutputsCommand::Render { format, alert } => {
            let alert = match alert {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                    match serde_json::from_str::<Alert>(&text) {
                        Ok(a) => a,
                        Err(e) => {
                            eprintln!("{}: not a Rampart alert: {e}", path.display());
                            return Ok(2);
                        }
                    }
                }
                None => sample_alert(),
            };
            println!("{}", render(format, &alert, &EncodeContext::default()));
            Ok(0)
        }
        OutputsCommand::Test { file } => {
            let config = match file {
                Some(path) => match OutputsConfig::from_path(&path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("{e}");
                        return Ok(2);
                    }
                },
                None => OutputsConfig::default(),
            };
            let dispatcher = Dispatcher::from_config(&config)?;
            dispatcher.dispatch(Arc::new(sample_alert()));
            let stats = dispatcher.shutdown().await;
            let mut lost = 0;
            for s in &stats {
                eprintln!(
                    "{}: sent {} dropped(queue) {} failed {} filtered {}",
                    s.name, s.sent, s.dropped_queue_full, s.failed, s.filtered
                );
                lost += s.dropped();
            }
            Ok(if lost == 0 { 0 } else { 1 })
        }
    }
}

/// Renders `alert` in `format` as one string (what the output would send).
pub fn render(format: RenderFormat, alert: &Alert, ctx: &EncodeContext) -> String {
    match format {
        RenderFormat::Json => encode::encode(Encoding::Json, alert, ctx),
        RenderFormat::Falco => encode::encode(Encoding::Falco, alert, ctx),
        RenderFormat::Ocsf => encode::encode(Encoding::Ocsf, alert, ctx),
        RenderFormat::Text => encode::encode(Encoding::Text, alert, ctx),
        RenderFormat::Cef => encode::encode(Encoding::Cef, alert, ctx),
        RenderFormat::Syslog => syslog::format_rfc5424(
            alert,
            &syslog::SyslogHeader {
                facility: crate::config::Facility::Local0,
                app_name: "rampart".into(),
                proc_id: std::process::id(),
                message: Encoding::Text,
            },
            ctx,
        ),
        RenderFormat::Slack => {
            slack::to_value(alert, ctx, &slack::SlackOverrides::default()).to_string()
        }
        RenderFormat::Splunk => splunk::encode(
            alert,
            ctx,
            &splunk::HecMetadata {
                source: "rampart".into(),
                sourcetype: "rampart:alert".into(),
                index: None,
                format: Encoding::Json,
            },
        ),
    }
}

/// A sample alert for `render` and `test`: a shell reading /etc/shadow in a container.
pub fn sample_alert() -> Alert {
    use rampart_event::*;
    use std::collections::BTreeMap;
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let host = encode::local_hostname();
    let mut output_fields = BTreeMap::new();
    output_fields.insert("fd.name".to_string(), serde_json::json!("/etc/shadow"));
    output_fields.insert(
        "proc.cmdline".to_string(),
        serde_json::json!("cat /etc/shadow"),
    );
    output_fields.insert("user.name".to_string(), serde_json::json!("root"));
    Alert {
        id: format!("{:032x}", fastrand::u128(..)),
        ts_ns: now_ns,
        first_ts_ns: now_ns,
        count: 1,
        rule: "Rampart test alert".into(),
        priority: Priority::Notice,
        mitre: vec!["T1003.008".into(), "TA0006".into()],
        tags: vec!["test".into()],
        message: "Test alert from `rampart outputs` (file=/etc/shadow command=cat /etc/shadow)"
            .into(),
        output_fields,
        source: "syscall".into(),
        event: Event {
            compat_syscall: false,
            schema: SCHEMA_VERSION,
            ts_ns: now_ns,
            host: host.into(),
            seq: 0,
            process: Some(Arc::new(Process {
                pid: std::process::id(),
                tid: std::process::id(),
                exe: "/usr/bin/cat".into(),
                argv: vec!["cat".into(), "/etc/shadow".into()],
                comm: "cat".into(),
                ..Default::default()
            })),
            container: Arc::new(Workload::Host { cgroup_id: 0 }),
            payload: Payload::FileOpen {
                path: "/etc/shadow".into(),
                path_raw: None,
                flags: 0,
                mode: 0,
                access: OpenAccess::from_flags(0),
                ret: 3,
                repeats: 0,
            },
        },
        retro: false,
    }
}
