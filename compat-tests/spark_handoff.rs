//! Hand-off to Spark: a real Apache Spark Structured Streaming query (pyspark from PyPI, `local[2]`)
//! reads the JSON Lines directory a sluicegate pipeline writes **while the pipeline is writing**,
//! and must see every record exactly once, including across a `kill -9` and restart of the
//! pipeline on the same channel and checkpoint directories.
//!
//! ```sh
//! cargo test --release --test compat_spark_handoff -- --nocapture
//! ```
//!
//! Needs `python3` (venv), network access to PyPI on first use and a Java runtime:
//! `compat-tests/setup_spark.sh` installs `pyspark==3.5.9` into `compat-tests/.venv-spark` (and
//! `openjdk-17-jre-headless` with apt-get when `java` is missing and it runs as root). When that
//! fails the tests **fail** with the reason; they never pass without Spark.
//!
//! ## The contract under test (the pipeline's JSON Lines output)
//!
//! Per micro-batch one file `<dir>/batch-<batch_time_ms>-<batch_id, 10 digits>.jsonl`, first
//! written as `<dir>/.batch-….jsonl.tmp` (Spark's file listing skips names starting with `.` or
//! `_`), fsynced, then renamed. One JSON object per line; for pair streams
//! `{"batch_time":<ms>,"key":<key>,"value":<value>}`. After a crash the pipeline re-runs an
//! unfinished batch under the **same** name, so Spark, which never re-reads a path it has listed,
//! sees its records once.
//!
//! ## The Spark side (`spark/handoff.py`)
//!
//! `readStream.format("json")` with an explicit schema, `maxFilesPerTrigger = 4`, `FAILFAST`,
//! a 500 ms processing-time trigger, `input_file_name()` on every row; `foreachBatch` appends
//! each micro-batch's rows, tagged with Spark's batch id and the file they came from, plus a
//! closing `done` line, to one output file (one write + fsync per micro-batch). When the test
//! creates the stop file, the query is stopped once idle and the same checkpoint is drained with
//! an `availableNow` query that ends by itself. Every phase is bounded.
//!
//! ## What is checked (`check_*` below, unit-tested on synthetic inputs without Spark)
//!
//! * the directory: only `batch-<ms>-<id>.jsonl` names besides hidden ones, each line a complete
//!   `{"batch_time","key","value"}` object whose `batch_time` is the name's, batch ids unique;
//! * Spark's output: per Spark batch id one complete attempt (a re-executed batch must carry the
//!   same rows), and the multiset of `(file, batch_time, key, value)` Spark saw equals the
//!   directory's: nothing missing, nothing twice, nothing foreign;
//! * Spark saw records before the pipeline was killed and records of files written after the
//!   restart before the pipeline stopped (it really read while the pipeline was writing);
//! * for the word count: the values summed per key over all files equal the words of the lines
//!   pushed, counted by the test (the pipeline itself was exactly once across the kill).
//!
//! Two end-to-end tests: `stand_in_writer_…` drives Spark with an in-test writer that follows the
//! contract (and simulates both crash points: before and after the rename) — a check of the
//! Spark side and of the checker; `word_count_pipeline_…` drives the real pipeline
//! (`examples/word_count.rs` with `--jsonl`, fed by `sluicegate avro-client`, killed with
//! SIGKILL three times).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Bound on Spark's start-up (launcher JVM, driver, first trigger): ~10-20 s on a quiet 2-core
/// machine, far more under a parallel build.
const SPARK_START: Duration = Duration::from_secs(180);
/// Bound on every other wait.
const WAIT: Duration = Duration::from_secs(180);
/// Bound handed to the Python side for its whole run.
const SPARK_RUN_SECS: u64 = 600;

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests")
}

// ---------------------------------------------------------------------------------------------
// Installing and running Spark
// ---------------------------------------------------------------------------------------------

/// Runs `setup_spark.sh` (idempotent, locked) and returns the venv's python. Panics with the
/// installer's reason when pyspark or Java cannot be had: the test must not pass without Spark.
fn ensure_spark() -> PathBuf {
    let dir = compat_dir();
    let out = Command::new("bash")
        .arg(dir.join("setup_spark.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("running compat-tests/setup_spark.sh (needs bash and python3)");
    assert!(
        out.status.success(),
        "Spark is not available, so the hand-off cannot be tested: compat-tests/setup_spark.sh \
         failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let python = dir.join(".venv-spark/bin/python");
    assert!(python.is_file(), "{} missing after setup", python.display());
    python
}

/// The files of one hand-off run.
struct Layout {
    _tmp: tempfile::TempDir,
    /// The pipeline's JSON Lines directory (Spark's input).
    jsonl: PathBuf,
    /// The pipeline's channel/checkpoint directory (`--dir`).
    state: PathBuf,
    /// Spark's output (rows it saw).
    spark_out: PathBuf,
    spark_checkpoint: PathBuf,
    stop_file: PathBuf,
    spark_log: PathBuf,
}

impl Layout {
    fn new() -> Layout {
        let tmp = tempfile::tempdir().expect("tempdir");
        let p = tmp.path().to_path_buf();
        let jsonl = p.join("jsonl");
        let state = p.join("pipeline");
        std::fs::create_dir_all(&jsonl).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        Layout {
            jsonl,
            state,
            spark_out: p.join("spark-rows.jsonl"),
            spark_checkpoint: p.join("spark-checkpoint"),
            stop_file: p.join("stop"),
            spark_log: p.join("spark.log"),
            _tmp: tmp,
        }
    }
}

/// The running `handoff.py` (and its JVM), in its own process group, killed on drop.
struct SparkQuery {
    child: Child,
    events: Receiver<String>,
    log: PathBuf,
}

impl SparkQuery {
    fn start(python: &Path, l: &Layout) -> SparkQuery {
        let log = File::create(&l.spark_log).expect("spark log");
        let mut cmd = Command::new(python);
        cmd.arg(compat_dir().join("spark/handoff.py"))
            .arg("--input-dir")
            .arg(&l.jsonl)
            .arg("--out")
            .arg(&l.spark_out)
            .arg("--checkpoint")
            .arg(&l.spark_checkpoint)
            .arg("--stop-file")
            .arg(&l.stop_file)
            .args(["--timeout", &SPARK_RUN_SECS.to_string()])
            .args(["--max-files-per-trigger", "4", "--trigger-ms", "500"])
            .env("SPARK_LOCAL_IP", "127.0.0.1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn handoff.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        SparkQuery {
            child,
            events: rx,
            log: l.spark_log.clone(),
        }
    }

    /// Waits for `{"event": <name>}` on stdout; panics with Spark's log when it does not come.
    fn wait_event(&self, name: &str, bound: Duration) {
        let end = Instant::now() + bound;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(line) => {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                    if v["event"] == name {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "Spark did not report {name:?} within {bound:?}\n{}",
                        self.log_tail()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "Spark exited before reporting {name:?}\n{}",
                    self.log_tail()
                ),
            }
        }
    }

    /// Asks the query to finish (drain what is left, then stop) and waits for it.
    fn finish(mut self, l: &Layout) {
        File::create(&l.stop_file).expect("stop file");
        self.wait_event("finished", WAIT);
        let end = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait spark") {
                assert!(st.success(), "handoff.py failed: {st}\n{}", self.log_tail());
                return;
            }
            assert!(
                Instant::now() < end,
                "handoff.py did not exit\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(60);
        format!(
            "--- spark log (last lines) ---\n{}",
            lines[from..].join("\n")
        )
    }
}

impl Drop for SparkQuery {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signals the process group this test created for the query.
            unsafe {
                libc::kill(-(self.child.id() as i32), libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The checker
// ---------------------------------------------------------------------------------------------

/// One record: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    file: String,
    batch_time: i64,
    key: String,
    value: i64,
}

/// `batch-<ms>-<id 10 digits>.jsonl` → (ms, id).
fn parse_batch_name(name: &str) -> Option<(i64, u64)> {
    let rest = name.strip_prefix("batch-")?.strip_suffix(".jsonl")?;
    let (ms, id) = rest.split_once('-')?;
    if id.len() != 10 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((ms.parse().ok()?, id.parse().ok()?))
}

/// Every record of the visible batch files, checking the contract. Hidden names (`.`/`_`) are
/// skipped as Spark skips them.
fn check_dir(dir: &Path) -> Result<Vec<Rec>, String> {
    let mut recs = Vec::new();
    let mut ids: BTreeMap<u64, String> = BTreeMap::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading {}: {e}", dir.display()))?;
    names.sort();
    for name in names {
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let (ms, id) = parse_batch_name(&name)
            .ok_or_else(|| format!("{name}: not a batch-<ms>-<10-digit id>.jsonl name"))?;
        if let Some(other) = ids.insert(id, name.clone()) {
            return Err(format!("batch id {id} is in two files: {other} and {name}"));
        }
        let text =
            std::fs::read_to_string(dir.join(&name)).map_err(|e| format!("reading {name}: {e}"))?;
        if !text.is_empty() && !text.ends_with('\n') {
            return Err(format!("{name}: last line is not terminated (a torn file)"));
        }
        for (i, line) in text.lines().enumerate() {
            let at = || format!("{name}:{}", i + 1);
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| format!("{}: not JSON: {e}", at()))?;
            let obj = v
                .as_object()
                .ok_or_else(|| format!("{}: not an object", at()))?;
            if obj.len() != 3 {
                return Err(format!(
                    "{}: expected exactly batch_time, key, value: {line}",
                    at()
                ));
            }
            let batch_time = obj
                .get("batch_time")
                .and_then(|v| v.as_i64())
                .ok_or_else(|| format!("{}: batch_time is not an integer", at()))?;
            if batch_time != ms {
                return Err(format!(
                    "{}: batch_time {batch_time} differs from the name's {ms}",
                    at()
                ));
            }
            let key = obj
                .get("key")
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("{}: key is not a string", at()))?;
            let value = obj
                .get("value")
                .and_then(|v| v.as_i64())
                .ok_or_else(|| format!("{}: value is not an integer", at()))?;
            recs.push(Rec {
                file: name.clone(),
                batch_time,
                key: key.to_string(),
                value,
            });
        }
    }
    Ok(recs)
}

/// What Spark's output says.
#[derive(Debug, Default)]
struct SparkSeen {
    /// One copy of every row of every completed Spark batch.
    rows: Vec<Rec>,
    /// Completed Spark batches (distinct ids).
    batches: usize,
    /// Spark batch ids that were executed (completely) more than once, with equal rows.
    replayed: usize,
}

/// Reads `handoff.py`'s output: rows grouped by (run, Spark batch id), each group closed by a
/// `done` line carrying its row count. Groups without one (a run stopped mid-write) and a torn
/// last line are ignored; a batch id completed twice must carry the same rows both times.
fn read_spark_output(path: &Path) -> Result<SparkSeen, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    type Group = (String, i64);
    let mut open: BTreeMap<Group, Vec<Rec>> = BTreeMap::new();
    let mut done: BTreeMap<i64, Vec<Rec>> = BTreeMap::new();
    let mut replayed = 0;
    for (i, line) in complete.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("spark output line {}: {e}: {line}", i + 1))?;
        let run = v["run"].as_str().unwrap_or_default().to_string();
        let batch = v["spark_batch"]
            .as_i64()
            .ok_or_else(|| format!("spark output line {}: no spark_batch: {line}", i + 1))?;
        let group = open.entry((run.clone(), batch)).or_default();
        if let Some(n) = v.get("done") {
            let rows = open.remove(&(run, batch)).unwrap_or_default();
            if n.as_u64() != Some(rows.len() as u64) {
                return Err(format!(
                    "spark batch {batch}: done says {n} rows, {} were written",
                    rows.len()
                ));
            }
            let mut sorted = rows;
            sorted.sort();
            match done.get(&batch) {
                Some(prev) if *prev != sorted => {
                    return Err(format!(
                        "spark batch {batch} was executed twice with different rows"
                    ))
                }
                Some(_) => replayed += 1,
                None => {
                    done.insert(batch, sorted);
                }
            }
            continue;
        }
        group.push(Rec {
            file: v["file"].as_str().unwrap_or_default().to_string(),
            batch_time: v["batch_time"].as_i64().unwrap_or(i64::MIN),
            key: v["key"].as_str().unwrap_or_default().to_string(),
            value: v["value"].as_i64().unwrap_or(i64::MIN),
        });
    }
    Ok(SparkSeen {
        batches: done.len(),
        replayed,
        rows: done.into_values().flatten().collect(),
    })
}

fn multiset(recs: &[Rec]) -> BTreeMap<&Rec, usize> {
    let mut m = BTreeMap::new();
    for r in recs {
        *m.entry(r).or_insert(0) += 1;
    }
    m
}

/// Spark saw exactly the directory's records: none missing, none twice, none foreign.
fn check_exactly_once(dir: &[Rec], spark: &[Rec]) -> Result<(), String> {
    let (want, got) = (multiset(dir), multiset(spark));
    let mut problems = Vec::new();
    for (r, &n) in &want {
        let g = got.get(r).copied().unwrap_or(0);
        if g < n {
            problems.push(format!("missing in Spark ({g} of {n}): {r:?}"));
        } else if g > n {
            problems.push(format!(
                "seen {g} times by Spark, {n} in the directory: {r:?}"
            ));
        }
    }
    for (r, &g) in &got {
        if !want.contains_key(r) {
            problems.push(format!(
                "seen {g} times by Spark, not in the directory: {r:?}"
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let n = problems.len();
    problems.truncate(20);
    Err(format!(
        "{n} record(s) not seen exactly once by Spark ({} in the directory, {} seen):\n{}",
        dir.len(),
        spark.len(),
        problems.join("\n")
    ))
}

/// Values summed per key.
fn totals(recs: &[Rec]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for r in recs {
        *m.entry(r.key.clone()).or_insert(0) += r.value;
    }
    m
}

/// Polls Spark's output until `pred` holds (bounded).
fn wait_spark(l: &Layout, q: &SparkQuery, what: &str, pred: impl Fn(&SparkSeen) -> bool) {
    let end = Instant::now() + WAIT;
    loop {
        let seen = read_spark_output(&l.spark_out).expect("spark output");
        if pred(&seen) {
            return;
        }
        assert!(
            Instant::now() < end,
            "Spark did not {what} within {WAIT:?} (it has {} rows in {} batches)\n{}",
            seen.rows.len(),
            seen.batches,
            q.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The final verdict for one run; returns what Spark saw.
fn verify(l: &Layout) -> (Vec<Rec>, SparkSeen) {
    let dir = check_dir(&l.jsonl).unwrap_or_else(|e| panic!("the JSON Lines directory: {e}"));
    let seen = read_spark_output(&l.spark_out).unwrap_or_else(|e| panic!("{e}"));
    check_exactly_once(&dir, &seen.rows).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "spark saw {} records of {} files in {} micro-batches ({} re-executed)",
        seen.rows.len(),
        dir.iter()
            .map(|r| &r.file)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        seen.batches,
        seen.replayed
    );
    (dir, seen)
}

// ---------------------------------------------------------------------------------------------
// Input and word counting
// ---------------------------------------------------------------------------------------------

/// `n` deterministic lines of 1–12 words from a 300-word vocabulary (skewed).
fn lines(seed: u64, n: usize) -> Vec<String> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let words = 1 + next() % 12;
            (0..words)
                .map(|_| {
                    let r = next() % 300;
                    format!("w{}", r * r / 300)
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn word_counts<'a>(lines: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for l in lines {
        for w in l.split(' ').filter(|w| !w.is_empty()) {
            *m.entry(w.to_string()).or_insert(0) += 1;
        }
    }
    m
}

// ---------------------------------------------------------------------------------------------
// The stand-in writer (contract only; no channel, no Avro)
// ---------------------------------------------------------------------------------------------

/// Writes batch files as the contract says and records the last finished batch id in
/// `state/last_batch` after the rename, so a "restart" continues where the last one left off.
struct StandIn {
    dir: PathBuf,
    state: PathBuf,
    next_id: u64,
}

/// Where the stand-in "crashes" inside a batch.
#[derive(Clone, Copy, PartialEq)]
enum Crash {
    None,
    /// The temp file is written and synced but never renamed.
    BeforeRename,
    /// The file is renamed in but the batch id is not recorded.
    AfterRename,
}

impl StandIn {
    fn open(dir: &Path, state: &Path) -> StandIn {
        let next_id = std::fs::read_to_string(state.join("last_batch"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map_or(0, |id| id + 1);
        StandIn {
            dir: dir.to_path_buf(),
            state: state.to_path_buf(),
            next_id,
        }
    }

    /// The batch's time: deterministic per id, as a pipeline that re-runs a batch reproduces it.
    fn batch_time(id: u64) -> i64 {
        1_700_000_000_000 + id as i64 * 200
    }

    fn write(&mut self, counts: &BTreeMap<String, i64>, crash: Crash) {
        let id = self.next_id;
        let t = Self::batch_time(id);
        let name = format!("batch-{t}-{id:010}.jsonl");
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = File::create(&tmp).unwrap();
        for (k, v) in counts {
            let line = serde_json::json!({"batch_time": t, "key": k, "value": v});
            writeln!(f, "{line}").unwrap();
        }
        f.sync_all().unwrap();
        drop(f);
        if crash == Crash::BeforeRename {
            return;
        }
        std::fs::rename(&tmp, self.dir.join(&name)).unwrap();
        File::open(&self.dir).unwrap().sync_all().unwrap();
        if crash == Crash::AfterRename {
            return;
        }
        let st = self.state.join("last_batch");
        std::fs::write(self.state.join("last_batch.tmp"), id.to_string()).unwrap();
        std::fs::rename(self.state.join("last_batch.tmp"), st).unwrap();
        self.next_id += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Spark against the stand-in writer: Spark reads while it writes; the writer "crashes" once
/// after a rename (the re-run renames the same name again, which Spark must not read twice) and
/// once before one (a stale hidden temp file stays behind).
#[test]
fn stand_in_writer_spark_sees_every_record_once_across_restarts() {
    let python = ensure_spark();
    let l = Layout::new();
    let q = SparkQuery::start(&python, &l);
    q.wait_event("started", SPARK_START);

    let input = lines(7, 2_000);
    let chunks: Vec<&[String]> = input.chunks(50).collect();
    let mut w = StandIn::open(&l.jsonl, &l.state);
    let mut chunk = chunks.iter();
    for _ in 0..10 {
        w.write(&word_counts(*chunk.next().unwrap()), Crash::None);
    }
    wait_spark(&l, &q, "read a record while the writer runs", |s| {
        !s.rows.is_empty()
    });
    // Crash after the rename, and Spark reads the file; the restart re-runs the batch and
    // renames the same name in again, which Spark must not read a second time.
    let c = chunk.next().unwrap();
    let renamed = format!(
        "batch-{}-{:010}.jsonl",
        StandIn::batch_time(w.next_id),
        w.next_id
    );
    w.write(&word_counts(*c), Crash::AfterRename);
    wait_spark(&l, &q, "read the file renamed in before the crash", |s| {
        s.rows.iter().any(|r| r.file == renamed)
    });
    let mut w = StandIn::open(&l.jsonl, &l.state);
    w.write(&word_counts(*c), Crash::None);
    // Crash before the rename.
    let c = chunk.next().unwrap();
    w.write(&word_counts(*c), Crash::BeforeRename);
    let mut w = StandIn::open(&l.jsonl, &l.state);
    w.write(&word_counts(*c), Crash::None);
    let restarted_from = w.next_id;
    for c in chunk {
        w.write(&word_counts(*c), Crash::None);
    }
    wait_spark(&l, &q, "read a file written after the restart", |s| {
        s.rows
            .iter()
            .any(|r| parse_batch_name(&r.file).is_some_and(|(_, id)| id >= restarted_from))
    });
    q.finish(&l);

    let (dir, _) = verify(&l);
    assert_eq!(totals(&dir), word_counts(&input), "stand-in totals");
}

/// The real pipeline: `examples/word_count` (Avro source → file channel → flatMap/reduceByKey
/// per batch → JSON Lines), fed by `sluicegate avro-client`, killed with SIGKILL three times
/// (each as soon as a new batch file appears after a push) and restarted on the same
/// directories; Spark reads throughout.
#[test]
fn word_count_pipeline_spark_sees_every_record_once_across_kills() {
    let python = ensure_spark();
    let pipeline = word_count_binary();
    let l = Layout::new();
    let q = SparkQuery::start(&python, &l);

    // Part 0, then one part per kill round, then a last part after the final restart.
    const KILLS: usize = 3;
    let input = lines(11, 30_000);
    let parts: Vec<&[String]> = {
        let (first, rest) = input.split_at(2_000);
        let mut v = vec![first];
        v.extend(rest.chunks(rest.len().div_ceil(KILLS + 1)));
        v
    };
    let files: Vec<PathBuf> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let p = l.state.parent().unwrap().join(format!("part{i}.txt"));
            std::fs::write(&p, part.join("\n") + "\n").unwrap();
            p
        })
        .collect();

    let mut p = Pipeline::start(&pipeline, &l);
    q.wait_event("started", SPARK_START);
    push(p.port, &files[0]);
    wait_spark(&l, &q, "read a record while the pipeline runs", |s| {
        !s.rows.is_empty()
    });
    // Each round: push a part, kill -9 as soon as a new non-empty batch file is renamed in (the
    // batch is then between its outputs and its take commit, or just past it; if the file was
    // already there when the push returned, the kill lands wherever the pipeline is), restart.
    let mut killed_at = 0;
    for file in &files[1..=KILLS] {
        let before = non_empty_batch_files(&l.jsonl);
        push(p.port, file);
        let end = Instant::now() + WAIT;
        while non_empty_batch_files(&l.jsonl).len() == before.len() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        p.kill();
        killed_at = non_empty_batch_files(&l.jsonl)
            .iter()
            .filter_map(|n| parse_batch_name(n).map(|(_, id)| id))
            .max()
            .unwrap_or(0);
        p = Pipeline::start(&pipeline, &l);
    }
    push(p.port, &files[KILLS + 1]);
    let want = word_counts(&input);
    let end = Instant::now() + WAIT;
    loop {
        let dir = check_dir(&l.jsonl).unwrap_or_else(|e| panic!("the JSON Lines directory: {e}"));
        let got = totals(&dir);
        if got == want {
            break;
        }
        assert!(
            got.values().sum::<i64>() <= want.values().sum::<i64>(),
            "the pipeline counted more words than were sent (not exactly once across the kills)"
        );
        assert!(
            Instant::now() < end,
            "the pipeline did not count every word within {WAIT:?}: {} of {} words\n{}",
            got.values().sum::<i64>(),
            want.values().sum::<i64>(),
            p.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_spark(&l, &q, "read a file written after the last restart", |s| {
        s.rows
            .iter()
            .any(|r| parse_batch_name(&r.file).is_some_and(|(_, id)| id > killed_at))
    });
    p.stop();
    q.finish(&l);
    // What the restart found (the kill may land between batches or inside one).
    for line in std::fs::read_to_string(&p.log).unwrap_or_default().lines() {
        if line.contains("replaying the planned batch") || line.contains("before the restart") {
            eprintln!("pipeline: {line}");
        }
    }
    let (dir, _) = verify(&l);
    assert_eq!(totals(&dir), want, "word counts in the JSON Lines files");
}

// ---------------------------------------------------------------------------------------------
// Driving the real pipeline
// ---------------------------------------------------------------------------------------------

/// `target/<profile>/examples/word_count`, next to this test's `deps/` directory (`cargo test`
/// builds every example before it runs the tests; `--test` alone does not).
fn word_count_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps");
    let bin = profile_dir.join("examples/word_count");
    assert!(
        bin.is_file(),
        "{} is not built: run `cargo test --release` (builds the examples) or \
         `cargo build --release --example word_count` first",
        bin.display()
    );
    bin
}

/// The command line of the pipeline under test — the one line to change to drive another one.
/// It must print `listening on <addr>` on stdout once its Avro source is ready.
fn pipeline_command(bin: &Path, l: &Layout) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--port", "0", "--batch-interval-ms", "500"])
        .arg("--dir")
        .arg(&l.state)
        .arg("--jsonl")
        .arg(&l.jsonl);
    cmd
}

struct Pipeline {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Pipeline {
    /// Starts the pipeline and waits until it says its Avro source listens (stdout, which a
    /// thread keeps draining: the pipeline also prints every batch there).
    fn start(bin: &Path, l: &Layout) -> Pipeline {
        let log = l.state.parent().unwrap().join("pipeline.log");
        let f = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = pipeline_command(bin, l)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(f))
            .spawn()
            .expect("spawn the pipeline");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    if let Ok(a) = addr.trim().parse::<std::net::SocketAddr>() {
                        let _ = tx.send(a.port());
                    }
                }
            }
        });
        let mut p = Pipeline {
            child,
            log,
            port: 0,
        };
        let end = Instant::now() + WAIT;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(port) => {
                    p.port = port;
                    return p;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let st = p.child.wait().ok();
                    panic!(
                        "the pipeline exited without listening ({st:?})\n{}",
                        p.log_tail()
                    );
                }
            }
            if let Some(st) = p.child.try_wait().unwrap() {
                panic!("the pipeline exited at start: {st}\n{}", p.log_tail());
            }
            assert!(
                Instant::now() < end,
                "the pipeline did not report `listening on` within {WAIT:?}\n{}",
                p.log_tail()
            );
        }
    }

    /// SIGKILL.
    fn kill(&mut self) {
        self.child.kill().expect("kill -9 the pipeline");
        self.child.wait().expect("reap the pipeline");
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    fn stop(&mut self) {
        // SAFETY: signals the child this test started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let end = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(
                    st.success(),
                    "the pipeline exited with {st}\n{}",
                    self.log_tail()
                );
                return;
            }
            assert!(Instant::now() < end, "the pipeline ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- pipeline log (last lines) ---\n{}",
            lines[from..].join("\n")
        )
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Names of the visible batch files with content.
fn non_empty_batch_files(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.metadata().is_ok_and(|m| m.len() > 0))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("batch-"))
                .collect()
        })
        .unwrap_or_default()
}

/// `sluicegate avro-client` pushes a file of lines (one event each); every event acknowledged.
fn push(port: u16, file: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluicegate"))
        .args(["avro-client", "-H", "127.0.0.1", "-p", &port.to_string()])
        .arg("-F")
        .arg(file)
        .args(["--batch", "100"])
        .stdin(Stdio::null())
        .output()
        .expect("run sluicegate avro-client");
    assert!(
        out.status.success(),
        "avro-client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Unit checks of the checker (no Spark)
// ---------------------------------------------------------------------------------------------

fn rec(file: &str, t: i64, k: &str, v: i64) -> Rec {
    Rec {
        file: file.into(),
        batch_time: t,
        key: k.into(),
        value: v,
    }
}

fn spark_line(run: &str, batch: i64, r: &Rec) -> String {
    serde_json::json!({"run": run, "spark_batch": batch, "file": r.file,
        "batch_time": r.batch_time, "key": r.key, "value": r.value})
    .to_string()
}

fn done_line(run: &str, batch: i64, n: usize) -> String {
    serde_json::json!({"run": run, "spark_batch": batch, "done": n, "wall_ms": 0}).to_string()
}

#[test]
fn checker_accepts_exactly_once_and_rejects_missing_duplicate_and_foreign_records() {
    let a = rec("batch-1000-0000000000.jsonl", 1000, "x", 2);
    let b = rec("batch-1000-0000000000.jsonl", 1000, "y", 1);
    let c = rec("batch-1200-0000000001.jsonl", 1200, "x", 5);
    let dir = vec![a.clone(), b.clone(), c.clone()];
    assert!(check_exactly_once(&dir, &[c.clone(), a.clone(), b.clone()]).is_ok());
    let e = check_exactly_once(&dir, &[a.clone(), b.clone()]).unwrap_err();
    assert!(e.contains("missing in Spark"), "{e}");
    let e = check_exactly_once(&dir, &[a.clone(), b.clone(), c.clone(), c.clone()]).unwrap_err();
    assert!(e.contains("seen 2 times"), "{e}");
    let foreign = rec("batch-1400-0000000002.jsonl", 1400, "x", 5);
    let e = check_exactly_once(&dir, &[a.clone(), b.clone(), c.clone(), foreign]).unwrap_err();
    assert!(e.contains("not in the directory"), "{e}");
    // The same record in two files is two records.
    let c2 = rec("batch-1400-0000000002.jsonl", 1200, "x", 5);
    assert!(check_exactly_once(&dir, &[a, b, c2]).is_err());
}

#[test]
fn spark_output_reader_keeps_one_copy_of_replayed_batches_and_drops_unfinished_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("out.jsonl");
    let a = rec("batch-1000-0000000000.jsonl", 1000, "x", 2);
    let b = rec("batch-1200-0000000001.jsonl", 1200, "y", 1);
    let text = [
        spark_line("r1", 0, &a),
        done_line("r1", 0, 1),
        spark_line("r1", 1, &b), // run r1 stopped mid-batch: no done line
        spark_line("r2", 1, &b),
        done_line("r2", 1, 1),
        spark_line("r3", 1, &b), // the same batch id executed again, same rows
        done_line("r3", 1, 1),
        r#"{"run": "r3", "spark_batch": 2, "fi"#.to_string(), // torn last line
    ]
    .join("\n");
    std::fs::write(&path, text).unwrap();
    let seen = read_spark_output(&path).unwrap();
    assert_eq!(seen.batches, 2);
    assert_eq!(seen.replayed, 1);
    assert_eq!(seen.rows, vec![a.clone(), b.clone()]);

    // A replay with other rows is an error, and so is a done count that does not match.
    let c = rec("batch-1200-0000000001.jsonl", 1200, "z", 1);
    let bad = [
        spark_line("r1", 0, &a),
        done_line("r1", 0, 1),
        spark_line("r2", 0, &c),
        done_line("r2", 0, 1),
    ]
    .join("\n")
        + "\n";
    std::fs::write(&path, bad).unwrap();
    let e = read_spark_output(&path).unwrap_err();
    assert!(e.contains("different rows"), "{e}");
    std::fs::write(
        &path,
        [spark_line("r1", 0, &a), done_line("r1", 0, 2)].join("\n") + "\n",
    )
    .unwrap();
    assert!(read_spark_output(&path).unwrap_err().contains("done says"));
    // A missing output file is "nothing seen yet".
    assert_eq!(
        read_spark_output(&tmp.path().join("none")).unwrap().batches,
        0
    );
}

#[test]
fn directory_check_enforces_the_jsonl_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ok = "{\"batch_time\":1000,\"key\":\"x\",\"value\":2}\n";
    std::fs::write(d.join("batch-1000-0000000000.jsonl"), ok).unwrap();
    std::fs::write(d.join(".batch-1200-0000000001.jsonl.tmp"), "{torn").unwrap();
    std::fs::write(d.join("_SUCCESS"), "").unwrap();
    assert_eq!(
        check_dir(d).unwrap(),
        vec![rec("batch-1000-0000000000.jsonl", 1000, "x", 2)]
    );
    assert_eq!(parse_batch_name("batch-5-0000000042.jsonl"), Some((5, 42)));
    for bad in [
        "batch-5-42.jsonl",
        "batch--0000000042.jsonl",
        "batch-5-0000000042.json",
    ] {
        assert_eq!(parse_batch_name(bad), None, "{bad}");
    }

    let cases: [(&str, &str, &str); 6] = [
        ("batch-1-0000000001.jsonl", ok, "differs from the name"),
        ("batch-1000-0000000000.json", ok, "not a batch-"),
        (
            "batch-1000-0000000001.jsonl",
            "{\"batch_time\":1000,\"key\":\"x\"",
            "not terminated",
        ),
        (
            "batch-1000-0000000001.jsonl",
            "{\"batch_time\":1000,\"key\":\"x\",\"value\":\"2\"}\n",
            "value is not",
        ),
        (
            "batch-1000-0000000001.jsonl",
            "{\"batch_time\":1000,\"key\":\"x\",\"value\":2,\"w\":1}\n",
            "exactly",
        ),
        ("batch-1300-0000000000.jsonl", "", "two files"),
    ];
    for (name, body, want) in cases {
        std::fs::write(d.join(name), body).unwrap();
        let e = check_dir(d).unwrap_err();
        assert!(e.contains(want), "{name}: {e}");
        std::fs::remove_file(d.join(name)).unwrap();
    }
    assert!(check_dir(d).is_ok());
}

#[test]
fn test_input_word_counts_are_what_the_lines_say() {
    let l = lines(3, 500);
    assert_eq!(l, lines(3, 500), "deterministic");
    let total: usize = l.iter().map(|s| s.split(' ').count()).sum();
    let counts = word_counts(&l);
    assert_eq!(counts.values().sum::<i64>() as usize, total);
    assert!(counts.len() > 50, "a real vocabulary: {}", counts.len());
    assert!(l.iter().all(|s| !s.is_empty() && !s.contains("  ")));
}
