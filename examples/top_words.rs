//! The trending-topics example: the top 10 words of the last 10 s, every 1 s, on **event time**.
//!
//! ```text
//! cargo run --release --example top_words -- --port 41414 [--dir D] [--lateness-ms 2000] [--idle-timeout-ms 2000]
//! ```
//!
//! An Avro source on `127.0.0.1:<port>` (any Flume `avro` sink or `sluicegate avro-client`
//! can push to it) stores events in a durable file channel in `D` (default: a temporary
//! directory). Its Flume `timestamp` interceptor (`preserveExisting = true`) stamps events that
//! arrive without a `timestamp` header with their arrival time, and keeps the header of those
//! that carry one (e.g. set by an upstream agent's interceptor), so the event time is the
//! event's own when it has one.
//!
//! The pipeline (1-second batches) counts the words of the bodies in sliding event-time windows
//! of 10 s every 1 s, closed by a watermark trailing the newest timestamp by `--lateness-ms`
//! (default 2000; an idle stream closes its windows after `--idle-timeout-ms` of batch time,
//! default 2000). Each batch in which windows close prints, in Spark's `DStream.print()`
//! format, the 10 most frequent words (ties by word) of the newest closed window, as
//! `(word,count)`. Late events are counted in the metrics (`LateEvents`). Runs until SIGTERM
//! or Ctrl-C; `listening on 127.0.0.1:<port>` appears on stdout once the source is ready.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluicegate::channel::file::{FileChannel, FileChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::config::Context;
use sluicegate::pipeline::event_time::{EventTime, Timed, WindowResult, Windows};
use sluicegate::pipeline::{PipelineConfig, StreamingContext, Text};
use sluicegate::source::avro::AvroSource;
use sluicegate::source::{ChannelProcessor, Source};
use sluicegate::Event;

struct Args {
    port: u16,
    dir: Option<PathBuf>,
    lateness_ms: u64,
    idle_ms: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        port: 0,
        dir: None,
        lateness_ms: 2000,
        idle_ms: 2000,
    };
    let mut it = std::env::args().skip(1);
    let mut port = None;
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--port" => port = Some(v()?.parse().map_err(|e| format!("--port: {e}"))?),
            "--dir" => a.dir = Some(v()?.into()),
            "--lateness-ms" => {
                a.lateness_ms = v()?.parse().map_err(|e| format!("--lateness-ms: {e}"))?
            }
            "--idle-timeout-ms" => {
                a.idle_ms = v()?
                    .parse()
                    .map_err(|e| format!("--idle-timeout-ms: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    a.port = port.ok_or("--port N is required")?;
    Ok(a)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "top_words: {e}\nusage: top_words --port N [--dir D] [--lateness-ms L] [--idle-timeout-ms I]"
            );
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
        eprintln!("top_words: {e}");
        std::process::exit(1);
    }
}

/// The 10 most frequent words (count descending, then word) of the newest window in `results`.
fn top10(results: &[WindowResult<Text, u64>]) -> Vec<(Text, u64)> {
    let Some(newest) = results.iter().map(|r| (r.start_ms, r.end_ms)).max() else {
        return Vec::new();
    };
    let mut top: Vec<(Text, u64)> = results
        .iter()
        .filter(|r| (r.start_ms, r.end_ms) == newest)
        .map(|r| (r.key.clone(), r.value))
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(10);
    top
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
        "top_words",
        channel.clone() as Arc<dyn Channel>,
        PipelineConfig {
            batch_interval: Duration::from_secs(1),
            checkpoint_dir: Some(dir.join("pipeline")),
            ..Default::default()
        },
    );
    let time = EventTime::header("timestamp")
        .lateness(Duration::from_millis(args.lateness_ms))
        .idle_timeout(Duration::from_millis(args.idle_ms));
    let windows = ctx
        .events()
        .stream()
        .event_time_window(
            time,
            Windows::sliding(Duration::from_secs(10), Duration::from_secs(1)),
            |e: &Event, emit: &mut dyn FnMut(Text, u64)| {
                if let Ok(s) = std::str::from_utf8(e.body()) {
                    for w in s.split_ascii_whitespace() {
                        emit(Text::new(w), 1);
                    }
                }
            },
            |a, b| a + b,
        )
        .filter_map(Timed::window);
    let top = windows
        .transform(|results: &[WindowResult<Text, u64>], _| top10(results))
        .named("top10(newest window, count desc, word asc)");
    top.print(10);
    let pipeline = ctx.build()?.start();

    let props = sluicegate::agent::cli::parse_defines(std::iter::empty());
    let sctx = Context::from_pairs(
        "top_words.sources.r1",
        [
            ("bind", "127.0.0.1"),
            ("port", &args.port.to_string()),
            ("interceptors", "ts"),
            ("interceptors.ts.type", "timestamp"),
            ("interceptors.ts.preserveExisting", "true"),
        ],
    );
    let processor =
        ChannelProcessor::from_context(&sctx, vec![channel.clone() as Arc<dyn Channel>])?;
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
