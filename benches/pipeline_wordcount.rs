//! One 1,000,000-line word-count batch (`words → count_by_value`) on spark-anchor-shaped input
//! (40 Zipf words per line from a 10,000-word vocabulary, ~258 bytes per line), the batch the
//! issue asks to finish in at most 270 ms on the 2-core machine (Spark: 2.7–7.8 s).
//!
//! ```text
//! cargo bench --bench pipeline_wordcount            # 1,000,000 lines, workers = cores
//! PIPELINE_LINES=200000 PIPELINE_WORKERS=1 cargo bench --bench pipeline_wordcount
//! ```
//!
//! Prints the processing time (take → commit, as the pipeline's metrics measure it) of each of
//! several repetitions, and the minimum and median.

use sluicegate::pipeline::bench::{word_count_batch, zipf_lines};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system, all threads) used by this process so far.
fn cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let lines = env("PIPELINE_LINES", 1_000_000);
    let workers = env("PIPELINE_WORKERS", 0);
    let reps = env("PIPELINE_REPS", 7);
    let events = zipf_lines(lines, 42);
    let bytes: usize = events.iter().map(|e| e.body().len() + 1).sum();
    println!(
        "pipeline word count: {lines} lines, {:.1} MB, workers {}",
        bytes as f64 / 1e6,
        if workers == 0 {
            "= cores".to_string()
        } else {
            workers.to_string()
        }
    );
    let mut times = Vec::new();
    for i in 0..reps {
        let c0 = cpu_s();
        let (r, counts) = word_count_batch(&events, workers).expect("batch");
        let cpu = cpu_s() - c0;
        let total: u64 = counts.iter().map(|c| c.1).sum();
        assert_eq!(total, lines as u64 * 40);
        println!(
            "  rep {i}: {} ms processing (wall), {:.0} ms CPU (all threads, incl. set-up), {} distinct words, {:.0} lines/s",
            r.processing_ms,
            cpu * 1000.0,
            counts.len(),
            lines as f64 / (r.processing_ms.max(1) as f64 / 1000.0)
        );
        times.push(r.processing_ms);
    }
    times.sort_unstable();
    println!(
        "batch processing time: min {} ms, median {} ms (target <= 270 ms)",
        times[0],
        times[times.len() / 2]
    );
}
