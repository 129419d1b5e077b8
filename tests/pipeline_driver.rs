//! The micro-batch driver: rollback and retry on output failure, exact replay after crashes at
//! every point of a batch (file channel + checkpoint), refusal of a changed definition,
//! scheduling delay, side output of bad input.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluicegate::channel::file::{FileChannel, FileChannelConfig};
use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::pipeline::{
    ClockMode, CrashPoint, ManualClock, Persist, PipelineConfig, PipelineError, SnapshotError,
    SnapshotReader, StageContext, StatefulStage, StreamingContext, Text,
};
use sluicegate::Event;

/// Running word totals across batches: emits (word, total so far) for the words of each batch.
#[derive(Default)]
struct RunningTotals {
    totals: BTreeMap<Text, u64>,
}

impl StatefulStage for RunningTotals {
    type In = (Text, u64);
    type Out = (Text, u64);
    fn describe(&self) -> String {
        "running_totals".into()
    }
    fn process(&mut self, input: &[(Text, u64)], out: &mut Vec<(Text, u64)>, _: &StageContext<'_>) {
        for (w, n) in input {
            let t = self.totals.entry(w.clone()).or_insert(0);
            *t += n;
            out.push((w.clone(), *t));
        }
    }
    fn snapshot(&self, out: &mut Vec<u8>) {
        self.totals.persist(out);
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.totals = if bytes.is_empty() {
            BTreeMap::new()
        } else {
            SnapshotReader::new(bytes).read()?
        };
        Ok(())
    }
    fn state_keys(&self) -> u64 {
        self.totals.len() as u64
    }
}

fn file_channel(dir: &Path) -> Arc<FileChannel> {
    Arc::new(
        FileChannel::open(
            "fc",
            FileChannelConfig {
                capacity: 10_000,
                transaction_capacity: 1_000,
                segment_size: 1 << 20,
                minimum_required_space: 1 << 20,
                keep_alive: Duration::from_millis(20),
                ..FileChannelConfig::in_dir(dir)
            },
        )
        .unwrap(),
    )
}

fn line(i: usize) -> Event {
    let words = ["alpha", "beta", "gamma", "delta", "eps"];
    let body: Vec<&str> = (0..1 + i % 4).map(|j| words[(i * 7 + j * 3) % 5]).collect();
    Event::from_body(body.join(" "))
}

/// A windowless stateful word-count pipeline over `ch`, logical clock, 10 events per batch,
/// JSON Lines of the running totals into `out`.
fn build(ch: Arc<dyn Channel>, ckpt: &Path, out: &Path) -> sluicegate::pipeline::Pipeline {
    let ctx = StreamingContext::new(
        "wc",
        ch,
        PipelineConfig {
            checkpoint_dir: Some(ckpt.to_path_buf()),
            clock: Arc::new(ManualClock::new(0)),
            mode: ClockMode::Logical {
                start_ms: 1_000_000,
                events_per_batch: 10,
                flush_after_ms: 0,
            },
            workers: 2,
            ..Default::default()
        },
    );
    ctx.events()
        .words()
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .stateful(RunningTotals::default())
        .to_jsonl(out);
    ctx.build().unwrap()
}

fn dir_contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        m.insert(
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path()).unwrap(),
        );
    }
    m
}

fn run_to_end(p: &mut sluicegate::pipeline::Pipeline, batches: u64) {
    let mut guard = 0;
    while p.last_batch_id() < batches {
        p.step().unwrap();
        guard += 1;
        assert!(guard < 1000, "pipeline made no progress");
    }
}

const EVENTS: usize = 50;

fn reference_run(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let ch = file_channel(&root.join("ref-ch"));
    let evs: Vec<Event> = (0..EVENTS).map(line).collect();
    ch.put_batch(&evs).unwrap();
    let out = root.join("ref-out");
    let mut p = build(ch.clone(), &root.join("ref-ck"), &out);
    run_to_end(&mut p, 5);
    assert_eq!(ch.size(), 0);
    dir_contents(&out)
}

#[test]
fn a_crash_at_any_point_replays_to_byte_identical_outputs() {
    let root = tempfile::tempdir().unwrap();
    let want = reference_run(root.path());
    assert_eq!(want.len(), 5);
    let first = String::from_utf8(want.values().next().unwrap().clone()).unwrap();
    assert!(
        first.starts_with("{\"batch_time\":1001000,\"key\":\""),
        "{first}"
    );

    for (n, point) in [
        CrashPoint::BeforeOutputs,
        CrashPoint::AfterOutputs,
        CrashPoint::AfterSnapshot,
    ]
    .into_iter()
    .enumerate()
    {
        for crash_batch in [1u64, 3, 5] {
            let base = root.path().join(format!("run-{n}-{crash_batch}"));
            let (chd, ck, out) = (base.join("ch"), base.join("ck"), base.join("out"));
            {
                let ch = file_channel(&chd);
                let evs: Vec<Event> = (0..EVENTS).map(line).collect();
                ch.put_batch(&evs).unwrap();
                let mut p = build(ch.clone(), &ck, &out);
                run_to_end(&mut p, crash_batch - 1);
                p.inject_crash(point);
                let e = loop {
                    match p.step() {
                        Ok(_) => continue,
                        Err(e) => break e,
                    }
                };
                assert!(matches!(e, PipelineError::InjectedCrash(_)), "{e}");
                drop(p);
                ch.close().unwrap();
            }
            // Restart: reopen the channel from disk and the pipeline from its checkpoint.
            let ch = file_channel(&chd);
            let mut p = build(ch.clone(), &ck, &out);
            let counter = p.counter();
            run_to_end(&mut p, 5);
            // One more step: a completed batch whose commit was lost is committed at the start
            // of the next step; with no input left it then finds no batch.
            assert_eq!(p.step().unwrap(), None);
            assert_eq!(
                ch.size(),
                0,
                "{point:?} at batch {crash_batch}: all consumed"
            );
            assert_eq!(
                dir_contents(&out),
                want,
                "{point:?} at batch {crash_batch}: outputs differ from the uninterrupted run"
            );
            let skipped = counter.skipped_on_recovery.load(Ordering::Relaxed);
            if point == CrashPoint::AfterSnapshot {
                assert_eq!(
                    skipped, 10,
                    "the completed batch's events were not re-processed"
                );
            } else {
                assert_eq!(skipped, 0);
            }
        }
    }
}

#[test]
fn an_output_failure_rolls_back_and_the_same_batch_is_retried() {
    let ch = Arc::new(MemoryChannel::new(
        "m",
        MemoryChannelConfig {
            capacity: 1000,
            transaction_capacity: 100,
            ..Default::default()
        },
    ));
    let clock = Arc::new(ManualClock::new(0));
    let ckpt = tempfile::tempdir().unwrap();
    let ctx = StreamingContext::new(
        "r",
        ch.clone() as Arc<dyn Channel>,
        PipelineConfig {
            clock: clock.clone(),
            checkpoint_dir: Some(ckpt.path().to_path_buf()),
            ..Default::default()
        },
    );
    let fails = Arc::new(AtomicUsize::new(2));
    type Seen = Vec<(i64, Vec<(Text, u64)>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let (f, s) = (fails.clone(), seen.clone());
    ctx.events()
        .words()
        .map(|w| (w, 1u64))
        .reduce_by_key(|a, b| a + b)
        .stateful(RunningTotals::default())
        .foreach_batch(move |items: &[(Text, u64)], cx: &StageContext<'_>| {
            s.lock().unwrap().push((cx.batch_time_ms(), items.to_vec()));
            if f.load(Ordering::SeqCst) > 0 {
                f.fetch_sub(1, Ordering::SeqCst);
                return Err("disk on fire");
            }
            Ok(())
        });
    let counter = ctx.counter();
    let mut p = ctx.build().unwrap();
    ch.put_batch(&[Event::from_body("a b a"), Event::from_body("b")])
        .unwrap();
    clock.advance(1000);
    for i in 0..2 {
        let e = p.step().unwrap_err();
        assert!(e.to_string().contains("disk on fire"), "{e}");
        assert!(e.to_string().contains("retried"), "says what happens: {e}");
        assert_eq!(ch.size(), 2 + i, "rolled back into the channel");
        // More input arriving meanwhile must not join the retried batch.
        ch.put_batch(&[Event::from_body("late")]).unwrap();
    }
    let r = p.step().unwrap().unwrap();
    assert!(r.replayed);
    assert_eq!((r.batch_id, r.batch_time_ms, r.events), (1, 1000, 2));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    let want = vec![(Text::new("a"), 2), (Text::new("b"), 2)];
    for (t, items) in &seen {
        assert_eq!(*t, 1000);
        assert_eq!(items, &want, "state restored before each retry");
    }
    assert_eq!(counter.batches_retried.load(Ordering::Relaxed), 2);
    assert_eq!(counter.errors(sluicegate::pipeline::ErrorReason::Output), 2);
    // The next batch picks up the later input.
    clock.advance(1000);
    let r = p.step().unwrap().unwrap();
    assert_eq!((r.batch_id, r.batch_time_ms, r.events), (2, 2000, 2));
}

#[test]
fn a_changed_definition_is_refused_unless_state_is_discarded() {
    let d = tempfile::tempdir().unwrap();
    let ch: Arc<dyn Channel> = Arc::new(MemoryChannel::new("m", MemoryChannelConfig::default()));
    let cfg = |discard| PipelineConfig {
        checkpoint_dir: Some(d.path().to_path_buf()),
        clock: Arc::new(ManualClock::new(5_000)),
        discard_state_on_change: discard,
        ..Default::default()
    };
    {
        let ctx = StreamingContext::new("p", ch.clone(), cfg(false));
        ctx.events()
            .words()
            .count_by_value()
            .to_jsonl(d.path().join("o1"));
        let mut p = ctx.build().unwrap();
        assert!(p.step().unwrap().is_some());
    }
    let changed = |discard| {
        let ctx = StreamingContext::new("p", ch.clone(), cfg(discard));
        ctx.events()
            .split_body(b',')
            .count_by_value()
            .to_jsonl(d.path().join("o1"));
        ctx.build()
    };
    let e = changed(false).unwrap_err();
    assert!(matches!(e, PipelineError::DefinitionChanged { .. }), "{e}");
    assert!(e.to_string().contains("split_body"), "{e}");
    let p = changed(true).unwrap();
    assert_eq!(p.last_batch_id(), 0, "old state discarded");
}

#[test]
fn falling_behind_shows_as_scheduling_delay_and_batches_start_at_once() {
    let ch = Arc::new(MemoryChannel::new("m", MemoryChannelConfig::default()));
    let clock = Arc::new(ManualClock::new(0));
    let ctx = StreamingContext::new(
        "d",
        ch.clone() as Arc<dyn Channel>,
        PipelineConfig {
            clock: clock.clone(),
            ..Default::default()
        },
    );
    ctx.events()
        .count()
        .foreach_batch(|_: &[u64], _: &StageContext<'_>| Ok::<(), String>(()));
    let counter = ctx.counter();
    let mut p = ctx.build().unwrap();
    clock.advance(1000);
    assert_eq!(p.step().unwrap().unwrap().scheduling_delay_ms, 0);
    // Processing "took" 3.5 s: the next batches (2000, 3000, 4000) are due at once.
    clock.advance(3500);
    let delays: Vec<i64> = (0..3)
        .map(|_| p.step().unwrap().unwrap().scheduling_delay_ms)
        .collect();
    assert_eq!(delays, vec![2500, 1500, 500]);
    assert_eq!(counter.scheduling_delay_ms.load(Ordering::Relaxed), 500);
}

#[test]
fn bad_bodies_are_counted_and_go_to_the_side_output() {
    let ch = Arc::new(MemoryChannel::new("m", MemoryChannelConfig::default()));
    let side = Arc::new(MemoryChannel::new("side", MemoryChannelConfig::default()));
    let clock = Arc::new(ManualClock::new(0));
    let ctx = StreamingContext::new(
        "b",
        ch.clone() as Arc<dyn Channel>,
        PipelineConfig {
            clock: clock.clone(),
            side_output: Some(side.clone()),
            ..Default::default()
        },
    );
    let got: Arc<Mutex<Vec<(Text, u64)>>> = Arc::default();
    let g = got.clone();
    ctx.events().words().count_by_value().foreach_batch(
        move |items: &[(Text, u64)], _: &StageContext<'_>| {
            g.lock().unwrap().extend_from_slice(items);
            Ok::<(), String>(())
        },
    );
    let counter = ctx.counter();
    let mut p = ctx.build().unwrap();
    ch.put_batch(&[
        Event::from_body("ok fine"),
        Event::new([("h", "1")], [0xffu8, 0xfe, b' ', b'x']),
        Event::from_body("ok"),
    ])
    .unwrap();
    clock.advance(1000);
    p.step().unwrap().unwrap();
    assert_eq!(
        *got.lock().unwrap(),
        vec![(Text::new("fine"), 1), (Text::new("ok"), 2)]
    );
    assert_eq!(
        counter.errors(sluicegate::pipeline::ErrorReason::NonUtf8),
        1
    );
    let t = side.take_batch(10, Duration::ZERO).unwrap();
    assert_eq!(t.len(), 1);
    let e = &t.events()[0];
    assert_eq!(e.body(), &[0xffu8, 0xfe, b' ', b'x']);
    assert_eq!(e.header("h").as_deref(), Some("1"));
    assert_eq!(e.header("sluicegate.error").as_deref(), Some("non_utf8"));
    assert_eq!(e.header("sluicegate.batch").as_deref(), Some("b-1"));
    t.commit().unwrap();
}

#[test]
fn text_files_and_channel_outputs_use_spark_names_and_batch_headers() {
    let d = tempfile::tempdir().unwrap();
    let ch = Arc::new(MemoryChannel::new("m", MemoryChannelConfig::default()));
    let next = Arc::new(MemoryChannel::new("next", MemoryChannelConfig::default()));
    let clock = Arc::new(ManualClock::new(0));
    let ctx = StreamingContext::new(
        "wc",
        ch.clone() as Arc<dyn Channel>,
        PipelineConfig {
            clock: clock.clone(),
            ..Default::default()
        },
    );
    let printed = Arc::new(Mutex::new(Vec::<u8>::new()));
    let counts = ctx.events().words().count_by_value();
    counts
        .save_as_text_files(d.path().join("wc"), "txt")
        .to_channel(next.clone())
        .print_to(1, printed.clone());
    let mut p = ctx.build().unwrap();
    ch.put_batch(&[Event::from_body("b a b")]).unwrap();
    clock.advance(1000);
    p.step().unwrap().unwrap();
    let dir = d.path().join("wc-1000.txt");
    assert_eq!(
        std::fs::read_to_string(dir.join("part-00000")).unwrap(),
        "(a,1)\n(b,2)\n"
    );
    assert!(dir.join("_SUCCESS").exists());
    let t = next.take_batch(10, Duration::ZERO).unwrap();
    let bodies: Vec<String> = t
        .events()
        .iter()
        .map(|e| String::from_utf8(e.body().to_vec()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec![
            r#"{"batch_time":1000,"key":"a","value":1}"#,
            r#"{"batch_time":1000,"key":"b","value":2}"#
        ]
    );
    assert_eq!(
        t.events()[0].header("sluicegate.batch").as_deref(),
        Some("wc-1")
    );
    t.commit().unwrap();
    assert_eq!(
        String::from_utf8(printed.lock().unwrap().clone()).unwrap(),
        "-------------------------------------------\nTime: 1000 ms\n-------------------------------------------\n(a,1)\n...\n\n"
    );
}

/// Processing time: a step after the clock was advanced past a boundary runs that batch at
/// once (it used to wait for the next boundary, forever with a manual clock); a pipeline built
/// between two boundaries waits for the next one.
#[test]
fn a_step_after_the_clock_passed_a_boundary_runs_at_once() {
    let build = |clock: Arc<ManualClock>| {
        let ch = Arc::new(MemoryChannel::new("m", MemoryChannelConfig::default()));
        let ctx = StreamingContext::new(
            "due",
            ch.clone() as Arc<dyn Channel>,
            PipelineConfig {
                clock,
                ..Default::default()
            },
        );
        ctx.events()
            .count()
            .foreach_batch(|_: &[u64], _: &StageContext<'_>| Ok::<(), String>(()));
        (ch, ctx.build().unwrap())
    };
    // Runs one step on a thread; a step still waiting after 30 s is stopped and reported.
    let step = |mut p: sluicegate::pipeline::Pipeline, before: &dyn Fn()| {
        let stop = p.stop_signal();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let r = p.step().unwrap();
            let _ = tx.send(());
            (p, r)
        });
        before();
        let waited = rx.recv_timeout(Duration::from_secs(30));
        if waited.is_err() {
            stop.stop();
        }
        let (p, r) = t.join().unwrap();
        assert!(waited.is_ok(), "the step did not run when due");
        (p, r.expect("a batch ran"))
    };

    let clock = Arc::new(ManualClock::new(0));
    let (ch, p) = build(clock.clone());
    ch.put_batch(&[Event::from_body("x")]).unwrap();
    clock.advance(1500);
    let (p, r) = step(p, &|| {});
    assert_eq!((r.batch_id, r.batch_time_ms, r.events), (1, 1000, 1));
    assert_eq!(r.scheduling_delay_ms, 500);
    clock.advance(1000); // 2500: batch 2000 is due
    let (_p, r) = step(p, &|| {});
    assert_eq!((r.batch_id, r.batch_time_ms), (2, 2000));
    assert_eq!(r.scheduling_delay_ms, 500);

    // Built at 1500: no boundary passed since, so the first batch is 2000, when it comes.
    let clock = Arc::new(ManualClock::new(1500));
    let (_ch, p) = build(clock.clone());
    let c = clock.clone();
    let (_p, r) = step(p, &move || c.advance(500));
    assert_eq!((r.batch_id, r.batch_time_ms), (1, 2000));
    assert_eq!(r.scheduling_delay_ms, 0);
}

/// Resident kB of this process's mappings of files under `dir` (from `/proc/self/smaps`).
fn mapped_rss_kb(dir: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let dir = dir.to_string_lossy();
    let (mut total, mut inside) = (0, false);
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            inside = line
                .split_whitespace()
                .nth(5)
                .is_some_and(|p| p.starts_with(&*dir));
        } else if inside && first == "Rss:" {
            total += line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    total
}

#[test]
fn a_large_batch_is_not_resident_at_once_and_every_output_reads_the_same_bytes() {
    let root = tempfile::tempdir().unwrap();
    let chd = root.path().join("ch");
    let ch = Arc::new(
        FileChannel::open(
            "fc",
            FileChannelConfig {
                capacity: 100_000,
                transaction_capacity: 50_000,
                segment_size: 64 << 20,
                minimum_required_space: 1 << 20,
                keep_alive: Duration::from_millis(20),
                ..FileChannelConfig::in_dir(&chd)
            },
        )
        .unwrap(),
    );
    // 40,000 lines of 40 words (~300 bytes): ~12 MB, several release steps per worker.
    let n = 40_000usize;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            (0..40)
                .map(|j| format!("w{}", (i * 31 + j * 17) % 211))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    for chunk in lines.chunks(5_000) {
        let evs: Vec<Event> = chunk.iter().map(Event::from_body).collect();
        ch.put_batch(&evs).unwrap();
    }
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lines {
        for w in l.split(' ') {
            *want.entry(w.to_string()).or_default() += 1;
        }
    }

    let ctx = StreamingContext::new(
        "big",
        ch.clone(),
        PipelineConfig {
            clock: Arc::new(ManualClock::new(0)),
            mode: ClockMode::Logical {
                start_ms: 0,
                events_per_batch: n,
                flush_after_ms: 0,
            },
            workers: 2,
            ..Default::default()
        },
    );
    type Counts = Arc<Mutex<BTreeMap<String, u64>>>;
    let (by_value, by_key): (Counts, Counts) = Default::default();
    let resident = Arc::new(AtomicUsize::new(usize::MAX));
    let bodies = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let by_value = by_value.clone();
        ctx.events()
            .words()
            .count_by_value()
            .foreach_batch(move |items: &[(Text, u64)], _| {
                let mut m = by_value.lock().unwrap();
                for (w, c) in items {
                    *m.entry(w.to_string()).or_default() += c;
                }
                Ok::<_, String>(())
            });
    }
    {
        // Runs after the word count's scan has passed (and released) every event.
        let (resident, chd) = (resident.clone(), chd.clone());
        ctx.events().count().foreach_batch(move |_: &[u64], _| {
            resident.store(mapped_rss_kb(&chd) as usize, Ordering::SeqCst);
            Ok::<_, String>(())
        });
    }
    {
        let by_key = by_key.clone();
        ctx.events()
            .words()
            .map(|w| (w, 1u64))
            .reduce_by_key(|a, b| a + b)
            .foreach_batch(move |items: &[(Text, u64)], _| {
                let mut m = by_key.lock().unwrap();
                for (w, c) in items {
                    *m.entry(w.to_string()).or_default() += c;
                }
                Ok::<_, String>(())
            });
    }
    {
        let bodies = bodies.clone();
        ctx.events()
            .stream()
            .foreach_batch(move |evs: &[Event], _| {
                let mut b = bodies.lock().unwrap();
                b.extend(
                    evs.iter()
                        .map(|e| String::from_utf8(e.body().to_vec()).unwrap()),
                );
                Ok::<_, String>(())
            });
    }
    let mut p = ctx.build().unwrap();
    let r = p.step().unwrap().expect("one batch of every event");
    assert_eq!(r.events, n as u64);
    assert_eq!(ch.size(), 0);
    assert_eq!(*by_value.lock().unwrap(), want);
    assert_eq!(*by_key.lock().unwrap(), want);
    assert_eq!(*bodies.lock().unwrap(), lines);
    let kb = resident.load(Ordering::SeqCst);
    assert!(
        kb * 1024 < bytes / 4,
        "{kb} kB of the channel's map resident after the first scan of a {bytes}-byte batch"
    );
}
