//! The `sluicegate` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sluicegate::agent::cli::{log_filter, parse_defines};
use sluicegate::agent::lifecycle::check;
use sluicegate::agent::run::{run, RunOptions};

/// A wire-compatible, crash-safe replacement for an Apache Flume Avro hop.
///
/// Point existing Flume `avro` sinks at `sluicegate agent` and keep your flume.conf.
#[derive(Parser, Debug)]
#[command(name = "sluicegate", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run an agent from a flume.conf, as `flume-ng agent` does.
    ///
    /// Starts channels, then sinks, then sources; SIGTERM or Ctrl-C stops sources first,
    /// drains sinks and closes channels. The file is re-read every 30 s and only changed
    /// components are restarted. Monitoring: -Dflume.monitoring.type=http
    /// -Dflume.monitoring.port=34545 serves Flume's /metrics JSON (and /metrics/prometheus).
    Agent(AgentArgs),
    /// Validate a flume.conf without starting anything: every problem, with file and line.
    Check(CheckArgs),
    /// Inspect a durable file channel: segments, positions, sizes, and a CRC check of every record.
    Channel {
        #[command(subcommand)]
        command: ChannelCommand,
    },
}

#[derive(Args, Debug)]
struct AgentArgs {
    /// The agent name: which `<name>.*` keys of the file to run.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// The configuration file (Java properties, Flume naming).
    #[arg(short = 'f', long = "conf-file")]
    conf_file: PathBuf,
    /// The configuration directory (accepted for compatibility with flume-ng; relative
    /// --conf-file paths are resolved against it when the file is not found as given).
    #[arg(short = 'c', long = "conf")]
    conf_dir: Option<PathBuf>,
    /// Java-style system properties: -Dflume.root.logger=DEBUG,console,
    /// -Dflume.monitoring.type=http, -Dflume.monitoring.port=N, -Djavax.net.ssl.keyStore=...
    #[arg(short = 'D', value_name = "KEY=VALUE", action = clap::ArgAction::Append)]
    defines: Vec<String>,
    /// Do not re-read the configuration file when it changes.
    #[arg(long = "no-reload-conf")]
    no_reload_conf: bool,
    /// Seconds between checks of the configuration file for changes.
    #[arg(long = "reload-interval", default_value_t = 30, value_name = "SECONDS")]
    reload_interval: u64,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The agent name.
    #[arg(short = 'n', long = "name")]
    name: String,
    /// The configuration file.
    #[arg(short = 'f', long = "conf-file")]
    conf_file: PathBuf,
    /// The configuration directory (see `agent --help`).
    #[arg(short = 'c', long = "conf")]
    conf_dir: Option<PathBuf>,
    /// Java-style system properties (-Dkey=value).
    #[arg(short = 'D', value_name = "KEY=VALUE", action = clap::ArgAction::Append)]
    defines: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum ChannelCommand {
    /// Print segments, positions and sizes, and verify every record's CRC.
    Inspect {
        /// The channel's data directory (`dataDirs`) or checkpoint directory.
        dir: PathBuf,
    },
}

fn resolve(conf_file: PathBuf, conf_dir: Option<PathBuf>) -> PathBuf {
    match conf_dir {
        Some(dir) if conf_file.is_relative() && !conf_file.exists() => dir.join(conf_file),
        _ => conf_file,
    }
}

fn init_logging(filter: &str) {
    let env = tracing_subscriber::EnvFilter::try_from_env("SLUICEGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(env)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Agent(a) => {
            let props = parse_defines(a.defines.iter().map(String::as_str));
            init_logging(&log_filter(&props));
            let opts = RunOptions {
                conf_file: resolve(a.conf_file, a.conf_dir),
                name: a.name,
                props,
                reload_interval: (!a.no_reload_conf).then(|| Duration::from_secs(a.reload_interval.max(1))),
            };
            match run(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluicegate: the agent did not start:\n{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check(c) => {
            let props = parse_defines(c.defines.iter().map(String::as_str));
            init_logging("warn");
            let path = resolve(c.conf_file, c.conf_dir);
            match check(&path, &c.name, &props) {
                Ok(cfg) => {
                    println!(
                        "{}: agent {} is valid: {} source(s), {} channel(s), {} sink(s), {} sink group(s)",
                        path.display(),
                        cfg.name,
                        cfg.sources.len(),
                        cfg.channels.len(),
                        cfg.sinks.len(),
                        cfg.sinkgroups.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Channel { command: ChannelCommand::Inspect { dir } } => {
            init_logging("warn");
            match sluicegate::channel::file::inspect(&dir) {
                Ok(report) => {
                    print!("{report}");
                    if report.is_clean() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(3)
                    }
                }
                Err(e) => {
                    eprintln!("sluicegate: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
