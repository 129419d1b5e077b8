//! The `sluicegate` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sluicegate::agent::cli::{log_filter, parse_defines};
use sluicegate::agent::lifecycle::check_report;
use sluicegate::agent::run::{run, RunOptions};
use sluicegate::agent::summary;

/// The built-in demo `sluicegate agent` runs without `-f`.
const DEMO_CONF: &str = include_str!("../examples/hop.conf");

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
    /// Without -f it runs the built-in demo (examples/hop.conf). Starts channels, then
    /// sources, then sinks; SIGTERM or Ctrl-C stops sources first,
    /// drains sinks and closes channels. The file is re-read every 30 s and only changed
    /// components are restarted. Monitoring: -Dflume.monitoring.type=http
    /// -Dflume.monitoring.port=34545 serves Flume's /metrics JSON (and /metrics/prometheus).
    Agent(AgentArgs),
    /// Validate a flume.conf without starting anything: every problem, with file and line.
    ///
    /// Prints each error, then each warning, as `file:line: key: message` on standard error
    /// (keys no component reads are warnings, with the nearest known key; errors with
    /// --strict); exits 1 when there are errors.
    Check(CheckArgs),
    /// Send lines of a file (or stdin) as events to an Avro source, as `flume-ng avro-client` does.
    AvroClient(AvroClientArgs),
    /// Load generator: push events over Avro RPC and report events/s, MB/s and latency.
    ///
    /// Without --target it starts an in-process Avro source (memory channel, drained) on
    /// 127.0.0.1 and measures the whole path over loopback. With --pipeline it measures the
    /// streaming word count: Avro → durable file channel → micro-batches (--rate or --fixed-batch).
    Bench(BenchArgs),
    /// Live view of a running agent: per source, channel, sink and pipeline the rates, totals,
    /// channel fill, errors, connections and batch timings, polled from its /metrics.
    ///
    /// The agent must serve metrics: run it with -Dflume.monitoring.type=http
    /// -Dflume.monitoring.port=N and give --url http://HOST:N. q, Esc or Ctrl-C quits.
    Top(TopArgs),
    /// Inspect a durable file channel: segments, positions, sizes, and a CRC check of every record.
    Channel {
        #[command(subcommand)]
        command: ChannelCommand,
    },
}

#[derive(Args, Debug)]
struct TopArgs {
    /// The agent's metrics server (its -Dflume.monitoring.port): http://HOST:PORT, HOST:PORT
    /// or PORT.
    #[arg(long = "url", default_value = sluicegate::tools::top::DEFAULT_URL)]
    url: String,
    /// Time between polls, and with --once between the two polls the rates come from
    /// (500ms, 1s, 2m).
    #[arg(long = "interval", default_value = "1s", value_parser = sluicegate::tools::top::parse_interval)]
    interval: Duration,
    /// Print one frame as plain text and exit (two polls --interval apart): for scripts.
    #[arg(long = "once")]
    once: bool,
}

#[derive(Args, Debug)]
struct AvroClientArgs {
    /// Host of the Avro source.
    #[arg(short = 'H', long = "host")]
    host: String,
    /// Port of the Avro source.
    #[arg(short = 'p', long = "port")]
    port: u16,
    /// File to send, one event per line (default: standard input).
    #[arg(short = 'F', long = "filename")]
    file: Option<PathBuf>,
    /// File of `key=value` lines: headers added to every event.
    #[arg(short = 'R', long = "headerFile")]
    header_file: Option<PathBuf>,
    /// Events per appendBatch call.
    #[arg(long = "batch", default_value_t = sluicegate::tools::avro_client::DEFAULT_BATCH_SIZE)]
    batch: usize,
    /// Compress with deflate (the source needs compression-type = deflate).
    #[arg(long = "deflate")]
    deflate: bool,
    /// Use TLS (the source needs ssl = true).
    #[arg(long = "ssl")]
    ssl: bool,
    /// With --ssl: accept any server certificate.
    #[arg(long = "trust-all-certs")]
    trust_all_certs: bool,
    /// With --ssl: PEM or PKCS#12 file of trusted certificates.
    #[arg(long = "truststore")]
    truststore: Option<PathBuf>,
    /// Password of a PKCS#12 truststore.
    #[arg(long = "truststore-password")]
    truststore_password: Option<String>,
    /// With --ssl and --deflate: which layer wraps the other. Flume 1.10+ sources expect
    /// zlib-outside (the default); Flume 1.9 and older expect tls-outside.
    #[arg(long = "compression-layer-order", value_parser = ["zlib-outside", "tls-outside"])]
    compression_layer_order: Option<String>,
    /// Java-style system properties (-Dkey=value).
    #[arg(short = 'D', value_name = "KEY=VALUE", action = clap::ArgAction::Append)]
    defines: Vec<String>,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Address of an Avro source to push to (default: an in-process source on 127.0.0.1).
    #[arg(long = "target")]
    target: Option<std::net::SocketAddr>,
    /// Number of events.
    #[arg(long = "events", default_value_t = 2_000_000, value_parser = at_least_one_u64)]
    events: u64,
    /// Body size in bytes.
    #[arg(long = "body-size", default_value_t = 256)]
    body_size: usize,
    /// Headers per event.
    #[arg(long = "headers", default_value_t = 3)]
    headers: usize,
    /// Events per appendBatch call.
    #[arg(long = "batch-size", default_value_t = 1000, value_parser = at_least_one)]
    batch_size: usize,
    /// Concurrent connections.
    #[arg(long = "connections", default_value_t = 4, value_parser = at_least_one)]
    connections: usize,
    /// Open loop: offer this many events/s (calls are scheduled on time whether or not earlier
    /// ones returned; latency counts from the scheduled time). Default: as fast as acknowledged.
    /// With --pipeline: open-loop lines/s for warm-up + measurement; prints per-batch timings
    /// and whether it kept up (the anchor's rule).
    #[arg(
        long = "rate",
        value_name = "PER_SEC",
        value_parser = positive_rate,
        conflicts_with = "fixed_batch"
    )]
    rate: Option<f64>,
    /// The result as JSON: `--json` prints one JSON object instead of the table (no progress
    /// bar); `--json FILE` writes it to FILE as well as printing the table (with --pipeline:
    /// the report's options, every batch and the summary).
    #[arg(long = "json", value_name = "FILE", num_args = 0..=1)]
    json: Option<Option<PathBuf>>,
    /// Measure two sluicegate hops end to end instead: clients -> hop A (Avro source, durable
    /// file channel in --dir, Avro sink) -> hop B (Avro source, memory channel), verified.
    #[arg(long = "relay")]
    relay: bool,
    /// With --relay: Avro sinks draining hop A's channel (order is checked only with 1).
    #[arg(long = "sinks", default_value_t = 1, value_parser = at_least_one)]
    sinks: usize,
    /// With --relay or --hdfs: where the file channel (and --hdfs output) lives (default: a fresh
    /// temporary directory, removed afterwards).
    #[arg(long = "dir")]
    dir: Option<PathBuf>,
    /// Client settings as Avro-sink keys (e.g. compression-type=deflate).
    #[arg(long = "set", value_name = "KEY=VALUE", action = clap::ArgAction::Append)]
    set: Vec<String>,
    /// Measure the streaming pipeline instead: the lines of --input pushed over Avro
    /// (--connections, --batch-size per call) into a durable file channel (in --dir) and counted
    /// per batch (words → reduce by key), with --rate or --fixed-batch.
    #[arg(long = "pipeline", requires = "input")]
    pipeline: bool,
    /// With --pipeline: the lines to send, one event each (e.g. the Spark anchor's
    /// data/lines_1000000.txt).
    #[arg(long = "input", value_name = "FILE")]
    input: Option<PathBuf>,
    /// With --pipeline: push N lines into the channel, then time one batch of all N.
    #[arg(long = "fixed-batch", value_name = "N")]
    fixed_batch: Option<u64>,
    /// With --fixed-batch: how many batches (each preceded by its push).
    #[arg(long = "repeat", default_value_t = 3)]
    repeat: usize,
    /// With --pipeline: the windowed word count (10 s window, 1 s slide, incremental).
    #[arg(long = "window")]
    window: bool,
    /// With --pipeline: the batch interval.
    #[arg(long = "batch-interval-ms", default_value_t = 1000)]
    batch_interval_ms: u64,
    /// With --rate: seconds after the first non-empty batch before the window.
    #[arg(long = "warmup", default_value_t = 10.0)]
    warmup: f64,
    /// With --rate: seconds of the measurement window.
    #[arg(long = "measure", default_value_t = 30.0)]
    measure: f64,
    /// With --pipeline: worker threads for keyed work (0 = one per core).
    #[arg(long = "workers", default_value_t = 0)]
    workers: usize,
    /// Measure the HDFS sink end to end instead: clients -> Avro source -> durable file channel
    /// (in --dir) -> HDFS sink writing file:// files under --dir/out; every event is read back
    /// from the files and verified.
    #[arg(long = "hdfs")]
    hdfs: bool,
    /// With --hdfs: hdfs.fileType (DataStream, SequenceFile, CompressedStream).
    #[arg(long = "file-type", default_value = "DataStream")]
    file_type: String,
    /// With --hdfs: hdfs.codeC (gzip); with --file-type DataStream it switches to
    /// CompressedStream.
    #[arg(long = "codec")]
    codec: Option<String>,
    /// With --hdfs: hdfs.batchSize (Flume's default is 100).
    #[arg(long = "hdfs-batch-size", default_value_t = 100, value_parser = at_least_one)]
    hdfs_batch_size: usize,
    /// With --hdfs: hdfs.rollSize in bytes (0: never; the bench's default 128 MiB).
    #[arg(long = "roll-size", default_value_t = 134_217_728)]
    roll_size: u64,
    /// With --hdfs: hdfs.rollCount (0: never).
    #[arg(long = "roll-count", default_value_t = 0)]
    roll_count: u64,
    /// With --hdfs: fill the channel first, then start the sink (its drain rate alone).
    #[arg(long = "staged")]
    staged: bool,
    /// With --hdfs: any other sink key, e.g. --hdfs-set hdfs.writeFormat=Text or
    /// --hdfs-set 'hdfs.path=%Y-%m-%d/%H' (relative to --dir/out).
    #[arg(long = "hdfs-set", value_name = "KEY=VALUE", action = clap::ArgAction::Append)]
    hdfs_set: Vec<String>,
}

fn at_least_one(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

fn at_least_one_u64(v: &str) -> Result<u64, String> {
    at_least_one(v).map(|n| n as u64)
}

fn positive_rate(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        Ok(_) => Err("must be a positive number of events/s".into()),
        Err(e) => Err(format!("not a number: {e}")),
    }
}

/// The options `flume-ng agent` and `sluicegate check` share.
#[derive(Args, Debug)]
struct ConfArgs {
    /// The agent name: which `<name>.*` keys of the file to run (`a1` for the built-in demo).
    #[arg(short = 'n', long = "name")]
    name: Option<String>,
    /// The configuration file (Java properties, Flume naming). `sluicegate agent` without it
    /// runs the built-in demo, examples/hop.conf.
    #[arg(short = 'f', long = "conf-file")]
    conf_file: Option<PathBuf>,
    /// The configuration directory (accepted for compatibility with flume-ng; a relative
    /// --conf-file that is not found as given is looked up in it).
    #[arg(short = 'c', long = "conf")]
    conf_dir: Option<PathBuf>,
    /// Java-style system properties: -Dflume.root.logger=DEBUG,console,
    /// -Dflume.monitoring.type=http, -Dflume.monitoring.port=N, -Djavax.net.ssl.keyStore=...
    #[arg(short = 'D', value_name = "KEY=VALUE", action = clap::ArgAction::Append)]
    defines: Vec<String>,
}

impl ConfArgs {
    fn props(&self) -> sluicegate::config::SystemProps {
        parse_defines(self.defines.iter().map(String::as_str))
    }

    /// The file and agent name to use; without `-f`, the built-in demo (written to a
    /// temporary file) when `demo` allows it.
    fn resolve(&self, demo: bool) -> Result<(PathBuf, String), String> {
        match (&self.conf_file, &self.name) {
            (Some(file), Some(name)) => {
                let path = match &self.conf_dir {
                    Some(dir) if file.is_relative() && !file.exists() => dir.join(file),
                    _ => file.clone(),
                };
                Ok((path, name.clone()))
            }
            (Some(_), None) => Err("-n/--name is required with -f (the agent to run)".into()),
            (None, name) if demo => {
                if name.as_deref().is_some_and(|n| n != "a1") {
                    return Err(
                        "the built-in demo's agent is a1; pass -f to run another file".into(),
                    );
                }
                let dir =
                    std::env::temp_dir().join(format!("sluicegate-demo-{}", std::process::id()));
                let path = dir.join("hop.conf");
                std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(&path, DEMO_CONF))
                    .map_err(|e| format!("writing the built-in demo to {}: {e}", path.display()))?;
                eprintln!(
                    "sluicegate: no -f given: running the built-in demo (examples/hop.conf, agent a1); \
                     its output goes to ./target/hop/out"
                );
                Ok((path, "a1".into()))
            }
            (None, _) => Err("-f/--conf-file and -n/--name are required".into()),
        }
    }
}

#[derive(Args, Debug)]
struct AgentArgs {
    #[command(flatten)]
    conf: ConfArgs,
    /// Do not re-read the configuration file when it changes.
    #[arg(long = "no-reload-conf")]
    no_reload_conf: bool,
    /// Seconds between checks of the configuration file for changes.
    #[arg(long = "reload-interval", default_value_t = 30, value_name = "SECONDS")]
    reload_interval: u64,
    /// Do not log the periodic one-line summary per flow (default every 10 s; change with
    /// -Dsluicegate.summary.interval=5s).
    #[arg(long = "no-summary")]
    no_summary: bool,
}

#[derive(Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    conf: ConfArgs,
    /// Treat keys no component reads (typos such as `batchSize` for `batch-size`) as errors,
    /// as -Dsluicegate.config.strict=true does for the agent.
    #[arg(long = "strict")]
    strict: bool,
}

#[derive(Subcommand, Debug)]
enum ChannelCommand {
    /// Print segments, positions and sizes, and verify every record's CRC.
    Inspect {
        /// The channel's data directory (its `dataDirs`), or a directory holding
        /// `checkpoint/` and `data/`.
        dir: PathBuf,
        /// The channel's `checkpointDir`, where its ledger lives (when it is not `DIR` itself
        /// or `DIR/checkpoint`).
        #[arg(long = "checkpoint-dir")]
        checkpoint_dir: Option<PathBuf>,
    },
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

fn bench(b: &BenchArgs) -> Result<sluicegate::tools::bench::BenchReport, String> {
    use std::io::IsTerminal;
    let props = sluicegate::config::SystemProps::new();
    let placeholder = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut o = sluicegate::tools::bench::BenchOptions::new(b.target.unwrap_or(placeholder));
    o.events = b.events;
    o.body_size = b.body_size;
    o.headers = b.headers;
    o.batch_size = b.batch_size;
    o.connections = b.connections;
    o.rate = b.rate;
    o.progress = b.json.is_none() && std::io::stderr().is_terminal();
    for kv in &b.set {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(format!("--set {kv}: expected KEY=VALUE"));
        };
        o.client_settings
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    match b.target {
        Some(_) => sluicegate::tools::bench::run_blocking(&o, &props),
        None => sluicegate::tools::bench::run_in_process_matching(&o, &props),
    }
    .map_err(|e| e.to_string())
}

fn hdfs_bench(b: &BenchArgs) -> Result<bool, String> {
    use sluicegate::tools::hdfs_bench as hb;
    let dir = b.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sluicegate-hdfs-bench-{}", std::process::id()))
    });
    if dir.exists() && std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_some()) {
        return Err(format!(
            "{} is not empty: give an empty or new --dir (the bench reads back every file)",
            dir.display()
        ));
    }
    let mut o = hb::HdfsBenchOptions::new(dir.clone());
    o.events = b.events;
    o.body_size = b.body_size;
    o.call_size = b.batch_size;
    o.connections = b.connections;
    o.staged = b.staged;
    let mut file_type = b.file_type.clone();
    if let Some(c) = &b.codec {
        if file_type.eq_ignore_ascii_case("datastream") {
            file_type = "CompressedStream".into();
        }
        o.sink_settings.push(("hdfs.codeC".into(), c.clone()));
    }
    o.sink_settings.extend([
        ("hdfs.fileType".to_string(), file_type),
        ("hdfs.batchSize".to_string(), b.hdfs_batch_size.to_string()),
        ("hdfs.rollSize".to_string(), b.roll_size.to_string()),
        ("hdfs.rollCount".to_string(), b.roll_count.to_string()),
    ]);
    for kv in &b.hdfs_set {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(format!("--hdfs-set {kv}: expected KEY=VALUE"));
        };
        o.sink_settings
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    let result = hb::run(&o);
    if b.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = result?;
    match &b.json {
        Some(None) => println!("{}", report.to_json()),
        Some(Some(path)) => {
            println!("{report}");
            std::fs::write(path, format!("{:#}\n", report.to_json()))
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        None => println!("{report}"),
    }
    Ok(report.verified())
}

fn pipeline_bench(b: &BenchArgs) -> Result<(), String> {
    use sluicegate::tools::pipeline_bench as pb;
    let load = match (b.rate, b.fixed_batch) {
        (Some(r), None) => pb::Load::Rate { lines_per_sec: r },
        (None, Some(n)) => pb::Load::FixedBatch {
            lines: n,
            repeat: b.repeat,
        },
        _ => return Err("give --rate LINES_PER_SEC or --fixed-batch N".into()),
    };
    let secs = |v: f64, what: &str| {
        Duration::try_from_secs_f64(v)
            .map_err(|_| format!("{what} must be a number of seconds >= 0"))
    };
    let input = b.input.clone().ok_or("--input FILE is required")?;
    let dir = b.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sluicegate-pipeline-bench-{}", std::process::id()))
    });
    if dir.exists() && std::fs::read_dir(&dir).map_or(true, |mut d| d.next().is_some()) {
        return Err(format!(
            "{} is not empty: give an empty or new --dir (the bench starts from an empty channel)",
            dir.display()
        ));
    }
    let mut o = pb::PipelineBenchOptions::new(input, load, dir.clone());
    o.variant = if b.window {
        pb::Variant::Window
    } else {
        pb::Variant::WordCount
    };
    o.batch_interval = Duration::from_millis(b.batch_interval_ms);
    o.warmup = secs(b.warmup, "--warmup")?;
    o.measure = secs(b.measure, "--measure")?;
    o.call_size = b.batch_size;
    o.connections = b.connections;
    o.workers = b.workers;
    let result = pb::run(&o);
    if b.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let report = result.map_err(|e| e.to_string())?;
    println!("{report}");
    match &b.json {
        Some(Some(path)) => {
            let text =
                serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
            std::fs::write(path, text + "\n")
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        Some(None) => println!("{}", report.to_json()),
        None => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Agent(a) => {
            let props = a.conf.props();
            init_logging(&log_filter(&props));
            let (conf_file, name) = match a.conf.resolve(true) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sluicegate agent: {e}");
                    return ExitCode::from(2);
                }
            };
            let summary_interval = if a.no_summary {
                None
            } else {
                match props.get(summary::INTERVAL_PROPERTY) {
                    None => Some(summary::DEFAULT_INTERVAL),
                    Some(v) => match summary::parse_interval(v) {
                        Ok(i) => i,
                        Err(e) => {
                            eprintln!("sluicegate agent: {e}");
                            return ExitCode::from(2);
                        }
                    },
                }
            };
            let opts = RunOptions {
                conf_file,
                name,
                props,
                reload_interval: (!a.no_reload_conf)
                    .then(|| Duration::from_secs(a.reload_interval.max(1))),
                summary_interval,
            };
            match run(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluicegate: the agent did not start:\n{e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check(CheckArgs { conf, strict }) => {
            init_logging("warn");
            let (path, name) = match conf.resolve(false) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sluicegate check: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut props = conf.props();
            if strict {
                props.set(sluicegate::agent::conf::STRICT_PROPERTY, "true");
            }
            let report = check_report(&path, &name, &props);
            for e in &report.errors {
                eprintln!("{e}");
            }
            for w in &report.warnings {
                eprintln!("{w}");
            }
            let counts = format!(
                "{} error(s), {} warning(s)",
                report.errors.len(),
                report.warnings.len()
            );
            match &report.config {
                Some(cfg) if report.errors.is_empty() => {
                    println!(
                        "{}: agent {} is valid: {} source(s), {} channel(s), {} sink(s), {} sink group(s), {} pipeline(s); {counts}",
                        path.display(),
                        cfg.name,
                        cfg.sources.len(),
                        cfg.channels.len(),
                        cfg.sinks.len(),
                        cfg.sinkgroups.len(),
                        cfg.pipelines.len()
                    );
                    ExitCode::SUCCESS
                }
                _ => {
                    eprintln!("{}: agent {} is not valid: {counts}", path.display(), name);
                    ExitCode::from(1)
                }
            }
        }
        Command::AvroClient(a) => {
            init_logging("warn");
            let props = parse_defines(a.defines.iter().map(String::as_str));
            let mut opts = sluicegate::tools::avro_client::AvroClientOptions::new(a.host, a.port);
            opts.file = a.file;
            opts.header_file = a.header_file;
            opts.batch_size = a.batch.max(1);
            opts.deflate = a.deflate;
            opts.ssl = a.ssl;
            opts.trust_all_certs = a.trust_all_certs;
            opts.truststore = a.truststore;
            opts.truststore_password = a.truststore_password;
            opts.layer_order = a.compression_layer_order;
            match sluicegate::tools::avro_client::run(&opts, &props) {
                Ok(report) => {
                    eprintln!(
                        "sent {} event(s) in {} batch(es)",
                        report.events, report.batches
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sluicegate avro-client: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Bench(b) if b.pipeline => {
            init_logging("warn");
            match pipeline_bench(&b) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluicegate bench --pipeline: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Bench(b) if b.hdfs => {
            init_logging("warn");
            match hdfs_bench(&b) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => {
                    eprintln!(
                        "sluicegate bench --hdfs: the files do not hold every event exactly once"
                    );
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("sluicegate bench --hdfs: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Bench(b) if b.relay => {
            init_logging("warn");
            let dir = b.dir.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("sluicegate-relay-{}", std::process::id()))
            });
            let opts = sluicegate::tools::relay::RelayOptions {
                events: b.events,
                body_size: b.body_size,
                batch_size: b.batch_size,
                connections: b.connections,
                sinks: b.sinks,
                dir: dir.clone(),
                deadline: Duration::from_secs(600),
            };
            let result = sluicegate::tools::relay::run_relay(&opts);
            if b.dir.is_none() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            match result {
                Ok(r) => {
                    println!("{r}");
                    if r.received == r.sent
                        && r.out_of_order == 0
                        && r.sent_checksum == r.received_checksum
                    {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(2)
                    }
                }
                Err(e) => {
                    eprintln!("sluicegate bench --relay: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Bench(b) => {
            init_logging("warn");
            match bench(&b) {
                Ok(report) => match &b.json {
                    None => {
                        print!("{}", report.table());
                        ExitCode::SUCCESS
                    }
                    Some(None) => {
                        println!("{}", report.to_json());
                        ExitCode::SUCCESS
                    }
                    Some(Some(path)) => {
                        print!("{}", report.table());
                        match std::fs::write(path, format!("{:#}\n", report.to_json())) {
                            Ok(()) => ExitCode::SUCCESS,
                            Err(e) => {
                                eprintln!("sluicegate bench: writing {}: {e}", path.display());
                                ExitCode::from(1)
                            }
                        }
                    }
                },
                Err(e) => {
                    eprintln!("sluicegate bench: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Top(t) => {
            init_logging("warn");
            use sluicegate::tools::top;
            let result = top::Endpoint::parse(&t.url).and_then(|ep| {
                if t.once {
                    top::once(&ep, t.interval).map(|view| print!("{view}"))
                } else {
                    top::run_live(&ep, t.interval)
                }
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluicegate top: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Channel {
            command:
                ChannelCommand::Inspect {
                    dir,
                    checkpoint_dir,
                },
        } => {
            init_logging("warn");
            let report = match &checkpoint_dir {
                Some(ck) => sluicegate::channel::file::inspect_dirs(ck, &dir),
                None => sluicegate::channel::file::inspect(&dir),
            };
            match report {
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
