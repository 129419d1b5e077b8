//! Crash test that really kills: a child process (this test binary re-executed in the child
//! role, the `#[ignore]`d `pipeline_crash_child_role`, with `PC_CRASH_DIR` set) runs a windowed,
//! stateful pipeline over a file channel with file outputs, and the parent SIGKILLs it at random
//! moments, 20+ rounds, restarting it on the same directories each time, until the channel is
//! drained. The outputs and the final state must then equal those of an uninterrupted run of the
//! same child over the same input in another directory (run concurrently with the killed one),
//! byte for byte, and its outputs must equal a naive reference computed here from the input.
//! Two jobs run this way (`PC_CRASH_JOB` tells the child which): the Rust-API pipeline below,
//! and a windowed SQL query ([`Job::Sql`]).
//!
//! The pipeline (logical clock: batch `N` = the next 10 events at time `START + N s`, so batch
//! boundaries do not depend on timing):
//!
//! * words → `reduce_by_key_and_window_inv` (+/−, 5 s window sliding 2 s, zero counts dropped)
//!   → `save_as_text_files("out/win", "txt")`;
//! * words → `reduce_by_key` → `update_state_by_key` running totals that drop a key once it
//!   reaches [`RESET`] → `to_jsonl("out/totals")`.
//!
//! The SQL job ([`SQL`]): per word, `count(*)`, `count(DISTINCT header('host'))` and
//! `max(length(word))` per `HOP(event_time, 2 s, 4 s)` window, emit mode `final`, watermark
//! [`LATENESS_MS`], over events whose `timestamp` headers run up to 2.5 s out of order (some
//! miss their first window) and one in twenty 4–8 s behind (late: dropped) →
//! `to_jsonl("out/sql")`. Its state (panes of accumulator
//! vectors with distinct sets, watermark) goes through the same snapshots.
//!
//! The whole input is put into the file channel before the first start, so what the pipeline
//! sees does not depend on kill timing. The child works in its directory with relative paths, so
//! both runs have the same definition and their checkpoint directories (definition, plan, the
//! newest two state snapshots) are compared byte for byte too: that is the final state (window
//! rings and partials, keyed totals, batch id, seqs).
//!
//! Kill points: most rounds wait (bounded, 60 s) until the child reports a completed batch, then
//! kill after a random delay of up to two batch durations (an average measured as it runs);
//! every fourth round kills within 1.5 batch durations of the child being ready, i.e. often
//! during the replay of an interrupted batch. The delays come from a seeded RNG (`PC_CRASH_SEED` overrides the seed); they
//! choose the kill point and synchronise nothing. After each kill the parent reads the checkpoint
//! (documented format: `plan` holds the batch id at bytes 16..24) to tell whether the kill landed
//! mid-batch (a plan newer than the newest snapshot); the next child reports whether it replayed
//! a batch or committed a completed batch's take without reprocessing it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluicegate::channel::file::{FileChannel, FileChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::pipeline::sql::{EmitMode, SqlOptions, SqlQuery};
use sluicegate::pipeline::{ClockMode, ManualClock, PipelineConfig, StreamingContext, Text};
use sluicegate::Event;

/// Kills that must land (a round whose child finished before the kill does not count).
const MIN_KILLS: usize = 24;
const EVENTS_PER_BATCH: usize = 10;
const BATCHES: usize = 160;
const START_MS: i64 = 1_700_000_000_000;
const INTERVAL_MS: i64 = 1_000;
const WINDOW_BATCHES: usize = 5;
const SLIDE_BATCHES: usize = 2;
/// A running total reaching this drops its key (`update_state_by_key` returning `None`).
const RESET: u64 = 40;
const DEFAULT_SEED: u64 = 0x09c4_a511;
/// The SQL job's query (see the module docs).
const SQL: &str = "SELECT window_start, window_end, word, count(*) AS n, \
     count(DISTINCT header('host')) AS hosts, max(length(word)) AS longest \
     FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) WHERE word <> '' \
     GROUP BY HOP(event_time, INTERVAL '2' SECOND, INTERVAL '4' SECOND), word";
const HOP_SLIDE_MS: i64 = 2_000;
const HOP_SIZE_MS: i64 = 4_000;
/// The SQL job's watermark delay.
const LATENESS_MS: i64 = 1_000;

/// Which pipeline the child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// The Rust-API word counts (window + running totals).
    Rust,
    /// The windowed SQL query [`SQL`].
    Sql,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Rust => "rust",
            Job::Sql => "sql",
        }
    }
    /// The input events.
    fn events(self) -> Vec<Event> {
        let lines = input();
        match self {
            Job::Rust => lines.iter().map(Event::from_body).collect(),
            Job::Sql => sql_events(&lines),
        }
    }
    /// The output file a batch writes whenever it has rows (to tell whether an interrupted
    /// batch's outputs had landed).
    fn batch_file(self, t: i64, n: u64) -> String {
        match self {
            Job::Rust => format!("out/totals/batch-{t}-{n:010}.jsonl"),
            Job::Sql => format!("out/sql/batch-{t}-{n:010}.jsonl"),
        }
    }
}
const WAIT: Duration = Duration::from_secs(60);

const VOCAB: [&str; 16] = [
    "flume", "spark", "rust", "stream", "batch", "window", "state", "kill", "sigkill", "replay",
    "exactly", "once", "channel", "take", "commit", "état",
];

fn channel_cfg(dir: &Path) -> FileChannelConfig {
    FileChannelConfig {
        capacity: 100_000,
        transaction_capacity: 1_000,
        segment_size: 1 << 20,
        minimum_required_space: 1 << 20,
        keep_alive: Duration::from_millis(50),
        ..FileChannelConfig::in_dir(dir)
    }
}

/// The input: `BATCHES × EVENTS_PER_BATCH` lines of 1–6 words, skewed towards the vocabulary's
/// head, from a fixed seed (independent of the kill seed).
fn input() -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..BATCHES * EVENTS_PER_BATCH)
        .map(|_| {
            let n = rng.gen_range(1..=6);
            let words: Vec<&str> = (0..n)
                .map(|_| {
                    let a = rng.gen_range(0..VOCAB.len());
                    VOCAB[rng.gen_range(0..=a)]
                })
                .collect();
            words.join(if rng.gen_bool(0.2) { "  " } else { " " })
        })
        .collect()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The child role: runs the pipeline in `PC_CRASH_DIR` until the channel is drained (or it is
/// killed). `#[ignore]`d: the parent test re-executes this binary with
/// `--exact pipeline_crash_child_role --ignored`; run by hand without `PC_CRASH_DIR` it fails
/// instead of passing having tested nothing.
#[test]
#[ignore = "child-process role, run by sigkill_at_random_moments_gives_the_files_and_state_of_an_uninterrupted_run"]
fn pipeline_crash_child_role() {
    let Ok(dir) = std::env::var("PC_CRASH_DIR") else {
        panic!(
            "pipeline_crash_child_role is the child process of \
             sigkill_at_random_moments_gives_the_files_and_state_of_an_uninterrupted_run (which \
             sets PC_CRASH_DIR); it tests nothing on its own"
        );
    };
    let job = match std::env::var("PC_CRASH_JOB").as_deref() {
        Ok("sql") => Job::Sql,
        _ => Job::Rust,
    };
    // Relative paths from here on: both runs then share one pipeline definition.
    std::env::set_current_dir(&dir).unwrap();
    let ch = Arc::new(FileChannel::open("ch", channel_cfg(Path::new("ch"))).unwrap());
    let ctx = StreamingContext::new(
        "crash",
        ch.clone() as Arc<dyn Channel>,
        PipelineConfig {
            batch_interval: Duration::from_millis(INTERVAL_MS as u64),
            checkpoint_dir: Some(PathBuf::from("ck")),
            // The clock never moves: a partial batch is never cut (the input is whole batches).
            clock: Arc::new(ManualClock::new(0)),
            mode: ClockMode::Logical {
                start_ms: START_MS,
                events_per_batch: EVENTS_PER_BATCH,
                flush_after_ms: i64::MAX,
            },
            workers: 2,
            ..Default::default()
        },
    );
    if job == Job::Sql {
        let opts = SqlOptions {
            emit: EmitMode::Final,
            watermark: Duration::from_millis(LATENESS_MS as u64),
            ..SqlOptions::default()
        };
        SqlQuery::compile(SQL, opts)
            .unwrap()
            .attach(&ctx)
            .to_jsonl("out/sql");
    } else {
        rust_job(&ctx);
    }
    let mut p = ctx.build().unwrap();
    let counter = p.counter();
    say(&format!("READY {}", p.last_batch_id()));
    let mut idle = 0;
    loop {
        match p.step().unwrap() {
            Some(r) => {
                idle = 0;
                say(&format!(
                    "B {} {} {}",
                    r.batch_id,
                    r.replayed,
                    counter.skipped_on_recovery.load(Ordering::Relaxed)
                ));
            }
            None if ch.size() == 0 => break,
            None => {
                idle += 1;
                assert!(
                    idle < 200,
                    "{} events left in the channel but no batch is cut",
                    ch.size()
                );
            }
        }
    }
    say(&format!("DONE {}", p.last_batch_id()));
    drop(p);
    ch.close().unwrap();
}

/// The Rust-API job's pipeline (see the module docs).
fn rust_job(ctx: &StreamingContext) {
    let pairs = ctx.events().words().map(|w| (w, 1u64));
    pairs
        .reduce_by_key_and_window_inv(
            |a, b| a + b,
            |a, b| a - b,
            Duration::from_millis(INTERVAL_MS as u64 * WINDOW_BATCHES as u64),
            Duration::from_millis(INTERVAL_MS as u64 * SLIDE_BATCHES as u64),
            |_, c| *c != 0,
        )
        .save_as_text_files("out/win", "txt");
    pairs
        .reduce_by_key(|a, b| a + b)
        .update_state_by_key(|_: &Text, vs: &[&u64], old: Option<u64>| {
            let t = old.unwrap_or(0) + vs.iter().map(|v| **v).sum::<u64>();
            (t < RESET).then_some(t)
        })
        .to_jsonl("out/totals");
}

/// Puts the whole input into the file channel in `dir/ch`.
fn preload(dir: &Path, evs: &[Event]) {
    std::fs::create_dir_all(dir).unwrap();
    let ch = FileChannel::open("ch", channel_cfg(&dir.join("ch"))).unwrap();
    for chunk in evs.chunks(1_000) {
        ch.put_batch(chunk).unwrap();
    }
    assert_eq!(ch.size() as usize, evs.len());
    ch.close().unwrap();
}

/// The SQL job's events: the lines, with a `timestamp` header up to 2.5 s behind or 0.3 s
/// ahead of their batch's time (one in twenty 4–8 s behind), and a `host` header of five
/// (fixed seed).
fn sql_events(lines: &[String]) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(11);
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let n = (i / EVENTS_PER_BATCH + 1) as i64;
            // Mostly within the watermark's reach; one in twenty far behind (late).
            let behind = if rng.gen_bool(0.05) {
                rng.gen_range(4_000..8_000)
            } else {
                rng.gen_range(-300..=2_500)
            };
            let ts = START_MS + n * INTERVAL_MS - behind;
            let host = format!("h{}", rng.gen_range(0..5));
            Event::new(
                [
                    ("timestamp", ts.to_string().as_str()),
                    ("host", host.as_str()),
                ],
                l.as_str(),
            )
        })
        .collect()
}

struct Running {
    child: Child,
    lines: Receiver<String>,
    reader: std::thread::JoinHandle<()>,
    stderr: PathBuf,
}

fn spawn(job: Job, dir: &Path, tag: &str) -> Running {
    let stderr = dir.with_file_name(format!("{tag}.stderr"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "pipeline_crash_child_role",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PC_CRASH_DIR", dir)
        .env("PC_CRASH_JOB", job.name())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = String::new();
        while let Ok(n) = r.read_line(&mut buf) {
            if n == 0 || !buf.ends_with('\n') {
                break; // EOF, or a line cut by the kill
            }
            // libtest prints `test pipeline_crash_child_role ... ` before the role's first line.
            let line = buf.trim_end();
            let line = line.rsplit_once("... ").map(|(_, l)| l).unwrap_or(line);
            if tx.send(line.to_string()).is_err() {
                break;
            }
            buf.clear();
        }
    });
    Running {
        child,
        lines: rx,
        reader,
        stderr,
    }
}

/// What a child reported (parsed `B` lines).
#[derive(Default, Debug)]
struct Seen {
    ready: bool,
    /// (batch id, replayed, skipped-on-recovery total so far, when it arrived)
    batches: Vec<(u64, bool, u64, Instant)>,
    done: Option<u64>,
}

impl Seen {
    fn take(&mut self, line: &str) {
        let mut it = line.split(' ');
        match it.next() {
            Some("READY") => self.ready = true,
            Some("B") => {
                let id = it.next().unwrap().parse().unwrap();
                let replayed = it.next().unwrap() == "true";
                let skipped = it.next().unwrap().parse().unwrap();
                self.batches.push((id, replayed, skipped, Instant::now()));
            }
            Some("DONE") => self.done = Some(it.next().unwrap().parse().unwrap()),
            _ => {}
        }
    }
}

impl Running {
    /// Reads lines until `until(seen)` holds, the child finishes, or `WAIT` passes.
    fn read_until(&mut self, seen: &mut Seen, until: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !until(seen) && seen.done.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => seen.take(&l),
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "the child made no progress within {WAIT:?}: {seen:?}\n{}",
                        std::fs::read_to_string(&self.stderr).unwrap_or_default()
                    );
                }
            }
        }
    }

    /// Waits for the exit, drains the remaining lines; returns whether it was killed.
    fn finish(mut self, seen: &mut Seen) -> bool {
        let status = self.child.wait().unwrap();
        self.reader.join().unwrap();
        while let Ok(l) = self.lines.try_recv() {
            seen.take(&l);
        }
        use std::os::unix::process::ExitStatusExt;
        if status.signal() == Some(libc::SIGKILL) {
            return true;
        }
        assert!(
            status.success() && seen.done.is_some(),
            "the child failed ({status}): {seen:?}\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
        false
    }
}

/// Runs the child in `dir` to the end, uninterrupted.
fn run_to_end(job: Job, dir: &Path, tag: &str) -> Seen {
    let mut r = spawn(job, dir, tag);
    let mut seen = Seen::default();
    r.read_until(&mut seen, |_| false);
    assert!(!r.finish(&mut seen), "not killed");
    seen
}

/// Every file under `dir` (hidden ones included) by relative path, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, m: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                m.insert(format!("{rel}/"), Vec::new());
                walk(base, &p, m);
            } else {
                m.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(dir, dir, &mut m);
    m
}

/// The checkpoint directory without its lock file.
fn checkpoint(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = tree(&dir.join("ck"));
    m.remove("in_use.lock");
    m
}

/// (batch id of `ck/plan`, newest snapshot's batch id), from the documented file formats.
fn plan_and_snapshot(dir: &Path) -> (u64, u64) {
    let ck = dir.join("ck");
    let plan = std::fs::read(ck.join("plan"))
        .map(|b| u64::from_le_bytes(b[16..24].try_into().unwrap()))
        .unwrap_or(0);
    let snap = std::fs::read_dir(&ck)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix("state-")?
                        .strip_suffix(".snap")?
                        .parse::<u64>()
                        .ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    (plan, snap)
}

/// The naive reference: the windowed files and the totals files the pipeline must write.
fn naive(lines: &[String]) -> BTreeMap<String, Vec<u8>> {
    let batches: Vec<BTreeMap<&str, u64>> = lines
        .chunks(EVENTS_PER_BATCH)
        .map(|c| {
            let mut m = BTreeMap::new();
            for w in c
                .iter()
                .flat_map(|l| l.split(' '))
                .filter(|w| !w.is_empty())
            {
                *m.entry(w).or_insert(0) += 1;
            }
            m
        })
        .collect();
    let mut files = BTreeMap::new();
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, b) in batches.iter().enumerate() {
        let n = i + 1; // batch id
        let t = START_MS + n as i64 * INTERVAL_MS;
        for (w, c) in b {
            *totals.entry(w).or_insert(0) += c;
        }
        totals.retain(|_, v| *v < RESET);
        let mut s = String::new();
        for (w, v) in &totals {
            s.push_str(&format!(
                "{{\"batch_time\":{t},\"key\":{},\"value\":{v}}}\n",
                serde_json::to_string(w).unwrap()
            ));
        }
        if !s.is_empty() {
            // `to_jsonl` writes no file for an empty batch.
            files.insert(format!("totals/batch-{t}-{n:010}.jsonl"), s.into_bytes());
        }
        // The window stream is computed at slide times only; between them it is an empty
        // batch, which `save_as_text_files` writes as an empty part file.
        let mut win: BTreeMap<&str, u64> = BTreeMap::new();
        if n % SLIDE_BATCHES == 0 {
            for b in &batches[n.saturating_sub(WINDOW_BATCHES)..n] {
                for (w, c) in b {
                    *win.entry(w).or_insert(0) += c;
                }
            }
        }
        let s: String = win.iter().map(|(w, c)| format!("({w},{c})\n")).collect();
        files.insert(format!("win-{t}.txt/"), Vec::new());
        files.insert(format!("win-{t}.txt/part-00000"), s.into_bytes());
        files.insert(format!("win-{t}.txt/_SUCCESS"), Vec::new());
    }
    files.insert("totals/".into(), Vec::new());
    files
}

/// The SQL job's naive reference: for each batch, the windows the watermark closes, with the
/// per-word aggregates of the events that were not late when they arrived.
fn naive_sql(events: &[Event]) -> BTreeMap<String, Vec<u8>> {
    #[derive(Default)]
    struct Agg {
        n: u64,
        hosts: BTreeSet<String>,
        longest: i64,
    }
    let mut state: BTreeMap<(i64, String), Agg> = BTreeMap::new();
    let (mut wm, mut max_ts) = (None::<i64>, None::<i64>);
    let mut files = BTreeMap::new();
    // (late events, rows of windows that an event reached only partly late)
    let (mut late, mut partly_late) = (0usize, 0usize);
    for (i, batch) in events.chunks(EVENTS_PER_BATCH).enumerate() {
        let n = i + 1;
        let t = START_MS + n as i64 * INTERVAL_MS;
        for e in batch {
            let ts: i64 = e.header("timestamp").unwrap().parse().unwrap();
            max_ts = Some(max_ts.map_or(ts, |m| m.max(ts)));
            let pane = ts.div_euclid(HOP_SLIDE_MS) * HOP_SLIDE_MS;
            if wm.is_some_and(|w| pane + HOP_SIZE_MS <= w) {
                late += 1;
                continue; // late: every window holding it has closed
            }
            let host = e.header("host").unwrap().to_string();
            let body = std::str::from_utf8(e.body()).unwrap();
            for w in body.split(' ').filter(|w| !w.is_empty()) {
                let mut ws = pane - HOP_SIZE_MS + HOP_SLIDE_MS;
                while ws <= pane {
                    // A window that has already closed does not take it.
                    if wm.is_some_and(|x| ws + HOP_SIZE_MS <= x) {
                        partly_late += 1;
                    } else {
                        let a = state.entry((ws, w.to_string())).or_default();
                        a.n += 1;
                        a.hosts.insert(host.clone());
                        a.longest = a.longest.max(w.chars().count() as i64);
                    }
                    ws += HOP_SLIDE_MS;
                }
            }
        }
        let w0 = wm;
        if let Some(m) = max_ts {
            let w = m - LATENESS_MS;
            wm = Some(wm.map_or(w, |x| x.max(w)));
        }
        let (lo, hi) = (w0.unwrap_or(i64::MIN), wm.unwrap_or(i64::MIN));
        let fire: Vec<(i64, String)> = state
            .keys()
            .filter(|(ws, _)| ws + HOP_SIZE_MS > lo && ws + HOP_SIZE_MS <= hi)
            .cloned()
            .collect();
        let mut s = String::new();
        for k in fire {
            let a = state.remove(&k).unwrap();
            s.push_str(&format!(
                "{{\"batch_time\":{t},\"window_start\":{},\"window_end\":{},\"word\":{},\"n\":{},\"hosts\":{},\"longest\":{}}}\n",
                k.0,
                k.0 + HOP_SIZE_MS,
                serde_json::to_string(&k.1).unwrap(),
                a.n,
                a.hosts.len(),
                a.longest
            ));
        }
        if !s.is_empty() {
            files.insert(format!("sql/batch-{t}-{n:010}.jsonl"), s.into_bytes());
        }
    }
    // The input exercises what it should: late events, partly late ones, many firing batches.
    assert!(
        late > 0 && partly_late > 0 && files.len() > BATCHES / 4,
        "late {late}, partly late {partly_late}, {} files",
        files.len()
    );
    files.insert("sql/".into(), Vec::new());
    files
}

#[test]
fn sigkill_at_random_moments_gives_the_files_and_state_of_an_uninterrupted_run() {
    crash_and_compare(Job::Rust);
}

#[test]
fn windowed_sql_sigkill_at_random_moments_gives_the_files_and_state_of_an_uninterrupted_run() {
    crash_and_compare(Job::Sql);
}

fn crash_and_compare(job: Job) {
    let t0 = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let events = job.events();
    let (reference, crashed) = (root.path().join("reference"), root.path().join("crashed"));
    preload(&reference, &events);
    preload(&crashed, &events);

    // The uninterrupted run, concurrently with the killed one (halves the wall time).
    let mut uninterrupted = spawn(job, &reference, "reference");

    let seed = std::env::var("PC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let mut rng = StdRng::seed_from_u64(seed);
    // Wall time per batch, learned from every round (EWMA).
    let mut batch_us = 30_000.0;
    let (mut kills, mut mid_batch, mut in_recovery) = (0usize, 0usize, 0usize);
    let (mut outputs_before_snapshot, mut temps_left) = (0usize, 0usize);
    let (mut replays, mut skips) = (0usize, 0usize);
    let mut round = 0;
    let mut done = None;
    let mut kill_points = BTreeSet::new();
    while kills < MIN_KILLS {
        round += 1;
        assert!(
            round <= MIN_KILLS * 3,
            "the input ran out after {kills} kills in {round} rounds (seed {seed})"
        );
        let mut r = spawn(job, &crashed, &format!("round-{round}"));
        let mut seen = Seen::default();
        let early = round % 4 == 0;
        let delay_us = if early {
            r.read_until(&mut seen, |s| s.ready);
            rng.gen_range(0.0..1.5) * batch_us
        } else {
            r.read_until(&mut seen, |s| !s.batches.is_empty());
            rng.gen_range(0.0..2.0) * batch_us
        };
        // The random delay picks the kill point; it synchronises nothing.
        std::thread::sleep(Duration::from_micros(delay_us as u64));
        let _ = r.child.kill(); // SIGKILL
        let killed = r.finish(&mut seen);
        for w in seen.batches.windows(2) {
            let us = w[1].3.duration_since(w[0].3).as_micros() as f64;
            batch_us = 0.8 * batch_us + 0.2 * us.max(200.0);
        }
        if let Some((_, replayed, skipped, _)) = seen.batches.first() {
            replays += *replayed as usize;
            skips += (*skipped > 0) as usize;
        }
        if !killed {
            done = seen.done;
            break;
        }
        kills += 1;
        let (plan, snap) = plan_and_snapshot(&crashed);
        let last = seen.batches.last().map(|b| b.0).unwrap_or(0);
        if plan > snap {
            mid_batch += 1;
            // Did the interrupted batch's outputs already land (the replay must rewrite them
            // identically)?
            let t = START_MS + plan as i64 * INTERVAL_MS;
            if crashed.join(job.batch_file(t, plan)).exists() {
                outputs_before_snapshot += 1;
            }
        }
        if tree(&crashed.join("out"))
            .keys()
            .chain(checkpoint(&crashed).keys())
            .any(|k| {
                k.split('/')
                    .any(|c| c.starts_with('.') && c.ends_with(".tmp"))
            })
        {
            temps_left += 1;
        }
        if seen.batches.is_empty() {
            in_recovery += 1;
        }
        kill_points.insert((snap, plan));
        eprintln!(
            "round {round}: killed after {:.1} ms{}, {} batches reported (last {last}), plan {plan}, snapshot {snap}{}",
            delay_us / 1000.0,
            if early { " from ready" } else { " from a batch" },
            seen.batches.len(),
            if plan > snap { " (mid-batch)" } else { "" }
        );
    }
    if done.is_none() {
        let seen = run_to_end(job, &crashed, "final");
        if let Some((_, replayed, skipped, _)) = seen.batches.first() {
            replays += *replayed as usize;
            skips += (*skipped > 0) as usize;
        }
        done = seen.done;
    }
    assert_eq!(
        done,
        Some(BATCHES as u64),
        "the restarted run completed every batch"
    );

    let mut seen = Seen::default();
    uninterrupted.read_until(&mut seen, |_| false);
    assert!(!uninterrupted.finish(&mut seen), "not killed");
    assert_eq!(seen.done, Some(BATCHES as u64));
    assert!(seen.batches.iter().all(|b| !b.1), "nothing replayed");
    let want = tree(&reference.join("out"));
    let expected = match job {
        Job::Rust => naive(&input()),
        Job::Sql => naive_sql(&events),
    };
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the uninterrupted run writes the files of the naive reference"
    );
    for (k, v) in &expected {
        assert_eq!(
            String::from_utf8_lossy(&want[k]),
            String::from_utf8_lossy(v),
            "{k}: the uninterrupted run differs from the naive reference"
        );
    }

    let got = tree(&crashed.join("out"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the crashed run's output files (names) differ from the uninterrupted run's"
    );
    for (k, v) in &want {
        assert_eq!(
            String::from_utf8_lossy(&got[k]),
            String::from_utf8_lossy(v),
            "{k}: bytes differ from the uninterrupted run"
        );
    }
    let (ck_want, ck_got) = (checkpoint(&reference), checkpoint(&crashed));
    assert_eq!(
        ck_got.keys().collect::<Vec<_>>(),
        ck_want.keys().collect::<Vec<_>>(),
        "checkpoint files differ"
    );
    for (k, v) in &ck_want {
        assert!(
            &ck_got[k] == v,
            "checkpoint {k}: the final state differs from the uninterrupted run's"
        );
    }
    eprintln!(
        "{job:?} job, seed {seed}: {kills} kills in {round} rounds: {mid_batch} mid-batch (plan newer than the \
         snapshot; in {outputs_before_snapshot} of them the batch's outputs were already in \
         place), {in_recovery} before the restarted child completed a batch, {temps_left} left \
         temp files; restarts that replayed an interrupted batch: {replays}, that committed a \
         completed batch's take without reprocessing it: {skips}; {} distinct (snapshot, plan) \
         kill points; total {:?}",
        kill_points.len(),
        t0.elapsed()
    );
    assert!(kills >= MIN_KILLS);
    assert!(
        mid_batch >= 1 && replays >= 1,
        "no kill landed mid-batch: the test did not test the replay"
    );
}
