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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[path = "support/mod.rs"]
mod support;

use sluicegate::channel::Channel;
use sluicegate::pipeline::{PipelineConfig, StreamingContext};

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
    support::init_tracing();
    if let Err(e) = run(args) {
        eprintln!("word_count: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), support::Error> {
    let scratch = support::Scratch::new(args.dir.as_deref())?;
    let dir = scratch.path();
    let channel = support::file_channel(dir)?;
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

    support::avro_ingest("word_count", args.port, &[], &channel)?.wait_for_shutdown()?;
    pipeline.stop();
    channel.close()?;
    Ok(())
}
