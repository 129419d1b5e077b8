//! The classic streaming word count, Flume-and-Spark style, in one process:
//!
//! ```text
//! cargo run --release --example word_count -- --port 41414 [--batch-interval-ms 1000] [--dir D] [--jsonl DIR]
//! ```
//!
//! An Avro source on `127.0.0.1:<port>` (any Flume `avro` sink or `sluicegate avro-client`
//! can push to it) stores events in a durable file channel in `D` (default: a temporary
//! directory), and a pipeline counts the words of the event bodies per batch and prints them
//! in Spark's `DStream.print()` format (`--jsonl DIR` also writes JSON Lines per batch for
//! Spark Structured Streaming). Runs until SIGTERM or Ctrl-C. On stdout the line
//! `listening on 127.0.0.1:<port>` appears once the source is ready.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluicegate::channel::file::{FileChannel, FileChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::config::Context;
use sluicegate::pipeline::{PipelineConfig, StreamingContext};
use sluicegate::source::avro::AvroSource;
use sluicegate::source::{ChannelProcessor, Source};

struct Args {
    port: u16,
    interval_ms: u64,
    dir: Option<PathBuf>,
    jsonl: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        port: 0,
        interval_ms: 1000,
        dir: None,
        jsonl: None,
    };
    let mut it = std::env::args().skip(1);
    let mut port = None;
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--port" => port = Some(v()?.parse().map_err(|e| format!("--port: {e}"))?),
            "--batch-interval-ms" => {
                a.interval_ms = v()?
                    .parse()
                    .map_err(|e| format!("--batch-interval-ms: {e}"))?
            }
            "--dir" => a.dir = Some(v()?.into()),
            "--jsonl" => a.jsonl = Some(v()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    a.port = port.ok_or("--port N is required")?;
    if a.interval_ms == 0 {
        return Err("--batch-interval-ms must be at least 1".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("word_count: {e}\nusage: word_count --port N [--batch-interval-ms M] [--dir D] [--jsonl DIR]");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Err(e) = run(args) {
        eprintln!("word_count: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let _tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            _tmp = tempfile::tempdir()?;
            _tmp.path().to_path_buf()
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let channel = Arc::new(FileChannel::open(
        "c1",
        FileChannelConfig {
            capacity: 5_000_000,
            transaction_capacity: 1_000_000,
            ..FileChannelConfig::in_dir(&dir.join("channel"))
        },
    )?);
    let ctx = StreamingContext::new(
        "word_count",
        channel.clone() as Arc<dyn Channel>,
        PipelineConfig {
            batch_interval: Duration::from_millis(args.interval_ms),
            checkpoint_dir: Some(dir.join("pipeline")),
            ..Default::default()
        },
    );
    let counts = ctx.events().words().count_by_value();
    counts.print(10);
    if let Some(j) = &args.jsonl {
        counts.to_jsonl(j);
    }
    let pipeline = ctx.build()?.start();

    let props = sluicegate::agent::cli::parse_defines(std::iter::empty());
    let sctx = Context::from_pairs(
        "word_count.sources.r1",
        [("bind", "127.0.0.1"), ("port", &args.port.to_string())],
    );
    let processor = ChannelProcessor::replicating(vec![channel.clone() as Arc<dyn Channel>]);
    let mut source = AvroSource::from_context("r1", &sctx, &props, processor, rt.handle().clone())?;
    source.start()?;
    let addr = source.local_addr().ok_or("the Avro source did not bind")?;
    println!("listening on {addr}");
    std::io::stdout().flush()?;

    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<(), std::io::Error>(())
    })?;
    source.stop();
    pipeline.stop();
    channel.close()?;
    Ok(())
}
