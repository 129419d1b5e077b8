//! Benchmark (ignored by default; speed targets live in benchmarks, not in timed tests): the
//! windowed word count — 10 s window sliding every 1 s, incremental (inverse function, zero
//! counts filtered) — over 1-second batches of spark-anchor-shaped lines (40 Zipf words per line
//! from a 10,000-word vocabulary). Prints the processing time (take → commit) of every batch.
//!
//! ```text
//! cargo test --release --test pipeline_windows_bench -- --ignored --nocapture
//! PIPELINE_LINES=400000 PIPELINE_BATCHES=15 PIPELINE_WORKERS=0 cargo test --release --test pipeline_windows_bench -- --ignored --nocapture
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::pipeline::bench::{zipf_lines, WORDS_PER_LINE};
use sluicegate::pipeline::{ManualClock, PipelineConfig, StageContext, StreamingContext, Text};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn windowed_word_count_batch_processing_time() {
    let lines = env("PIPELINE_LINES", 400_000);
    let batches = env("PIPELINE_BATCHES", 15);
    let workers = env("PIPELINE_WORKERS", 0);
    // Two different inputs alternate, so words really enter and leave the window.
    let inputs = [zipf_lines(lines, 42), zipf_lines(lines, 43)];
    let ch = Arc::new(MemoryChannel::new(
        "bench",
        MemoryChannelConfig {
            capacity: (2 * lines) as u64,
            transaction_capacity: lines,
            ..Default::default()
        },
    ));
    let clock = Arc::new(ManualClock::new(0));
    let ctx = StreamingContext::new(
        "bench",
        ch.clone() as Arc<dyn Channel>,
        PipelineConfig {
            batch_interval: Duration::from_secs(1),
            workers,
            clock: clock.clone(),
            ..Default::default()
        },
    );
    let last: Arc<Mutex<Vec<(Text, u64)>>> = Arc::default();
    let o = last.clone();
    ctx.events()
        .words()
        .map(|w| (w, 1u64))
        .reduce_by_key_and_window_inv(
            |a, b| a + b,
            |a, b| a - b,
            Duration::from_secs(10),
            Duration::from_secs(1),
            |_, c| *c != 0,
        )
        .foreach_batch(move |items: &[(Text, u64)], _: &StageContext<'_>| {
            *o.lock().unwrap() = items.to_vec();
            Ok::<(), String>(())
        });
    let mut p = ctx.build().unwrap();
    // The same batches through the plain per-batch word count, interleaved, as the baseline
    // for what the window itself costs under the same (noisy) load.
    let ch2 = Arc::new(MemoryChannel::new(
        "plain",
        MemoryChannelConfig {
            capacity: (2 * lines) as u64,
            transaction_capacity: lines,
            ..Default::default()
        },
    ));
    let clock2 = Arc::new(ManualClock::new(0));
    let ctx2 = StreamingContext::new(
        "plain",
        ch2.clone() as Arc<dyn Channel>,
        PipelineConfig {
            batch_interval: Duration::from_secs(1),
            workers,
            clock: clock2.clone(),
            ..Default::default()
        },
    );
    ctx2.events()
        .words()
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .foreach_batch(|_: &[(Text, u64)], _: &StageContext<'_>| Ok::<(), String>(()));
    let mut p2 = ctx2.build().unwrap();
    let mut plain = Vec::new();
    println!("windowed word count (10 s / 1 s, inverse): {lines} lines per batch, workers {workers} (0 = cores)");
    let mut steady = Vec::new();
    for i in 0..batches {
        ch.put_batch(&inputs[i % 2]).unwrap();
        clock.advance(1000);
        let r = p.step().unwrap().expect("a batch");
        assert_eq!(r.events, lines as u64);
        let total: u64 = last.lock().unwrap().iter().map(|c| c.1).sum();
        let in_window = (i + 1).min(10) as u64 * (lines * WORDS_PER_LINE) as u64;
        assert_eq!(
            total, in_window,
            "the window holds every word of its batches"
        );
        println!(
            "  batch {:2}: {} ms processing, {} distinct words in the window",
            i + 1,
            r.processing_ms,
            last.lock().unwrap().len()
        );
        ch2.put_batch(&inputs[i % 2]).unwrap();
        clock2.advance(1000);
        let r2 = p2.step().unwrap().expect("a batch");
        println!(
            "            {} ms for the plain per-batch word count of the same batch",
            r2.processing_ms
        );
        if i >= 10 {
            steady.push(r.processing_ms);
            plain.push(r2.processing_ms);
        }
    }
    steady.sort_unstable();
    if !steady.is_empty() {
        println!(
            "steady state (window full, batches 11..{batches}): min {} ms, median {} ms per {lines}-line batch",
            steady[0],
            steady[steady.len() / 2]
        );
        plain.sort_unstable();
        println!(
            "plain per-batch word count, same batches: min {} ms, median {} ms",
            plain[0],
            plain[plain.len() / 2]
        );
    }
}
