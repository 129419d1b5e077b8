//! Benchmark helpers (used by `benches/pipeline_wordcount.rs`, ready for
//! `sluicegate bench --pipeline`): the spark-anchor input shape and a one-batch word count.
//!
//! [`zipf_lines`] generates lines like `../shared/spark-anchor/gen_data.py`: a vocabulary of
//! 10,000 distinct lowercase words of 3–8 letters, Zipf(s = 1.0) word frequencies, 40 words per
//! line separated by single spaces (about 258 bytes per line). It uses its own seeded generator,
//! so the bytes differ from the Python file but the shape and distribution are the same.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use crate::channel::Channel;
use crate::event::Event;

use super::{BatchReport, ManualClock, PipelineConfig, PipelineError, StreamingContext, Text};

/// Words per line in the spark-anchor data.
pub const WORDS_PER_LINE: usize = 40;
/// Distinct words in the spark-anchor vocabulary.
pub const VOCABULARY: usize = 10_000;

/// `n` spark-anchor-shaped lines (see the module docs), deterministic for `seed`.
pub fn zipf_lines(n: usize, seed: u64) -> Vec<Event> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut vocab: Vec<String> = Vec::with_capacity(VOCABULARY);
    let mut seen = std::collections::HashSet::new();
    while vocab.len() < VOCABULARY {
        let len = rng.gen_range(3..=8);
        let w: String = (0..len)
            .map(|_| (b'a' + rng.gen_range(0..26u8)) as char)
            .collect();
        if seen.insert(w.clone()) {
            vocab.push(w);
        }
    }
    let mut cum = Vec::with_capacity(VOCABULARY);
    let mut total = 0.0f64;
    for k in 1..=VOCABULARY {
        total += 1.0 / k as f64;
        cum.push(total);
    }
    let mut line = String::with_capacity(320);
    (0..n)
        .map(|_| {
            line.clear();
            for i in 0..WORDS_PER_LINE {
                if i > 0 {
                    line.push(' ');
                }
                let u = rng.gen::<f64>() * total;
                let k = cum.partition_point(|&c| c < u).min(VOCABULARY - 1);
                line.push_str(&vocab[k]);
            }
            Event::from_body(line.as_bytes())
        })
        .collect()
}

/// Runs one word-count batch (`words → count_by_value`, the DStream word count) over
/// `events` in a fresh pipeline on a memory channel with `workers` workers; returns the batch
/// report and the word counts.
pub fn word_count_batch(
    events: &[Event],
    workers: usize,
) -> Result<(BatchReport, Vec<(Text, u64)>), PipelineError> {
    let ch = Arc::new(MemoryChannel::new(
        "bench",
        MemoryChannelConfig {
            capacity: events.len().max(1) as u64,
            transaction_capacity: events.len().max(1),
            ..Default::default()
        },
    ));
    if !events.is_empty() {
        ch.put_batch(events).map_err(|e| PipelineError::Channel {
            pipeline: "bench".into(),
            source: e,
        })?;
    }
    let clock = Arc::new(ManualClock::new(0));
    let ctx = StreamingContext::new(
        "bench",
        ch as Arc<dyn Channel>,
        PipelineConfig {
            batch_interval: Duration::from_secs(1),
            workers,
            clock: clock.clone(),
            ..Default::default()
        },
    );
    let out: Arc<Mutex<Vec<(Text, u64)>>> = Arc::default();
    let o = out.clone();
    ctx.events().words().count_by_value().foreach_batch(
        move |items: &[(Text, u64)], _: &super::StageContext<'_>| {
            *o.lock().unwrap_or_else(|e| e.into_inner()) = items.to_vec();
            Ok::<(), String>(())
        },
    );
    let mut p = ctx.build()?;
    clock.advance(1000);
    let report = p.step()?.unwrap_or(BatchReport {
        batch_id: 0,
        batch_time_ms: 0,
        events: 0,
        processing_ms: 0,
        scheduling_delay_ms: 0,
        output_records: 0,
        replayed: false,
    });
    let counts = std::mem::take(&mut *out.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((report, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_anchor_shape_and_the_batch_counts_every_word() {
        let lines = zipf_lines(2_000, 42);
        let bytes: usize = lines.iter().map(|e| e.body().len() + 1).sum();
        let mean = bytes as f64 / lines.len() as f64;
        assert!((200.0..320.0).contains(&mean), "mean line {mean}");
        let (r, counts) = word_count_batch(&lines, 2).unwrap();
        assert_eq!(r.events, 2_000);
        assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), 2_000 * 40);
        // Zipf: the most frequent word is far more frequent than the median one.
        let mut c: Vec<u64> = counts.iter().map(|c| c.1).collect();
        c.sort_unstable();
        assert!(c[c.len() - 1] > 20 * c[c.len() / 2]);
    }
}
