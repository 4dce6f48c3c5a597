//! `rampart outputs …`: check an outputs configuration, preview what each encoder writes,
//! and send a test alert through the configured outputs. The configuration, encoders and
//! dispatcher are `rampart-notify`'s; this module parses the arguments and prints.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use rampart_event::Alert;
use rampart_notify::encode::EncodeContext;
use rampart_notify::{
    render, sample_alert, Dispatcher, OutputsConfig, RenderFormat, EXAMPLE_CONFIG,
};

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
        #[arg(long, value_parser = crate::choice::choice(RenderFormat::NAMES), default_value = "falco")]
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
