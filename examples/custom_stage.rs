//! Adding your own operators to a pipeline without touching the crate.
//!
//! ```text
//! cargo run --release --example custom_stage
//! ```
//!
//! Two user stages on a word count:
//!
//! * `TopN` — a stateless [`Stage`]: the `n` most frequent words of each batch.
//! * `Trending` — a [`StatefulStage`]: keeps an exponential moving average of every word's
//!   per-batch count and emits the words whose count jumps above `factor ×` their average
//!   (the "trending topics" event detection of the Flume + Spark papers). Its state is written
//!   with [`Persist`] into every checkpoint and restored after a restart or a failed batch.
//!
//! The example feeds three batches through an in-memory channel with a manual clock, so it runs
//! instantly and deterministically, and prints each batch in Spark's `print()` format.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::pipeline::{
    ManualClock, Persist, PipelineConfig, SnapshotError, SnapshotReader, Stage, StageContext,
    StatefulStage, StreamingContext, Text,
};
use sluicegate::Event;

/// The `n` largest counts of a batch, ties broken by word.
struct TopN(usize);

impl Stage for TopN {
    type In = (Text, u64);
    type Out = (Text, u64);

    fn describe(&self) -> String {
        format!("top_n({})", self.0)
    }

    fn process(&self, input: &[(Text, u64)], out: &mut Vec<(Text, u64)>, _: &StageContext<'_>) {
        let mut v = input.to_vec();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(self.0);
        out.extend(v);
    }
}

/// Words whose per-batch count exceeds `factor ×` their moving average.
struct Trending {
    factor: f64,
    alpha: f64,
    /// word → moving average of its per-batch count. A `BTreeMap` keeps snapshots canonical.
    avg: BTreeMap<Text, f64>,
}

impl StatefulStage for Trending {
    type In = (Text, u64);
    type Out = (Text, u64);

    fn describe(&self) -> String {
        format!("trending(factor={},alpha={})", self.factor, self.alpha)
    }

    fn process(&mut self, input: &[(Text, u64)], out: &mut Vec<(Text, u64)>, _: &StageContext<'_>) {
        // Input is sorted by word (count_by_value's order), so the output is too.
        for (w, c) in input {
            let avg = self.avg.get(w).copied().unwrap_or(0.0);
            if *c as f64 > self.factor * avg.max(1.0) {
                out.push((w.clone(), *c));
            }
        }
        // Decay every known word (absent words count 0 this batch), then add the new ones.
        let seen: BTreeMap<&Text, u64> = input.iter().map(|(w, c)| (w, *c)).collect();
        for (w, a) in self.avg.iter_mut() {
            let c = seen.get(w).copied().unwrap_or(0) as f64;
            *a = (1.0 - self.alpha) * *a + self.alpha * c;
        }
        for (w, c) in input {
            self.avg.entry(w.clone()).or_insert(*c as f64);
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        1u8.persist(out); // format version of this stage's state
        self.avg.persist(out);
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        if bytes.is_empty() {
            self.avg.clear();
            return Ok(());
        }
        let mut r = SnapshotReader::new(bytes);
        let version: u8 = r.read()?;
        if version != 1 {
            return Err(r.invalid(format!("unknown trending state version {version}")));
        }
        self.avg = r.read()?;
        Ok(())
    }

    fn state_keys(&self) -> u64 {
        self.avg.len() as u64
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let channel = Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: 10_000,
            transaction_capacity: 10_000,
            ..Default::default()
        },
    ));
    let clock = Arc::new(ManualClock::new(0));
    let checkpoint = tempfile::tempdir()?;
    let ctx = StreamingContext::new(
        "custom",
        channel.clone() as Arc<dyn Channel>,
        PipelineConfig {
            batch_interval: Duration::from_secs(1),
            clock: clock.clone(),
            checkpoint_dir: Some(checkpoint.path().to_path_buf()),
            ..Default::default()
        },
    );
    let counts = ctx.events().words().count_by_value();
    counts.stage(TopN(3)).print(10);
    counts
        .stateful(Trending {
            factor: 2.0,
            alpha: 0.5,
            avg: BTreeMap::new(),
        })
        .print(10);
    let mut pipeline = ctx.build()?;

    let batches = [
        "rust flume spark rust flume rust",
        "rust flume spark flume rust",
        "rust outage outage outage outage outage flume outage",
    ];
    for text in batches {
        let events: Vec<Event> = text
            .split(' ')
            .collect::<Vec<_>>()
            .chunks(2)
            .map(|c| Event::from_body(c.join(" ")))
            .collect();
        channel.put_batch(&events)?;
        clock.advance(1000);
        pipeline.step()?;
    }
    Ok(())
}
