//! `bench --pipeline`: the streaming word count measured the way the Spark anchor measures Spark
//! (`../shared/spark-anchor/`), on the same input lines, with ingest and durability included.
//!
//! # What runs (one process)
//!
//! ```text
//! C Avro clients ──appendBatch──▶ Avro source (127.0.0.1:0) ──put (fsync per transaction)──▶
//!     file channel (<dir>/channel) ──one take per batch──▶ pipeline (checkpoint in <dir>/pipeline):
//!     words() → (w, 1) → reduce_by_key(+) → foreach_batch (counts keys and words)
//!     (--window: → reduce_by_key_and_window_inv(+, −, 10 s, 1 s), keys kept as in Spark)
//! ```
//!
//! Every input line (the anchor's `data/lines_1000000.txt`: 40 words, ~258 bytes) is one event.
//! The input file is split into `connections` line-aligned byte ranges; each client cycles
//! through its range, reading lines as it sends (no copy of the input is held in memory, so the
//! peak RSS is the pipeline's, the channel's and the runtime's, plus one call's events per
//! client). The checkpoint is on: each batch persists its plan and snapshot with fsync, as a real
//! deployment would.
//!
//! # Modes
//!
//! * **`Load::Rate`** — open loop: the clients send `R` lines/s (call `k` is due at
//!   `start + k·call_size/R`; a client that falls behind sends at once) for the warm-up, the
//!   measurement window and a margin. The driver thread runs [`Pipeline::step`] in a loop and
//!   records per batch: events, **processing time** (from the later of the batch time and the
//!   moment the driver was ready for it, to the take commit: take + run + outputs + snapshot +
//!   commit), the pipeline's own take→commit time, and the **scheduling delay** (how late the
//!   driver started the batch). The anchor's window and rule decide whether it **kept up**: the
//!   window is `[first non-empty batch + warmup, + measure)` in batch time; kept up = at least
//!   90 % of the expected batches completed in it, median processing time ≤ the interval, events/s
//!   in the window (events / (span of batch times + one interval)) ≥ 95 % of the target, and the
//!   scheduling delay bounded (mean of the last third of the window minus the first third ≤ one
//!   interval). The run stops a few intervals after the window; a batch of the window not done by
//!   then is missing. If the channel fills (10 s of backlog), the source answers `FAILED`, the
//!   client retries after 20 ms and the sent rate drops: that is back-pressure, reported. A call
//!   still refused when the send phase ends is abandoned and counted (`cut_off_calls`). Falling
//!   behind is a result, not an error: the summary says "did not keep up" and why, and the
//!   command exits 0; it exits 1 only when the run cannot be made (setup, a pipeline error, a
//!   client failing for another reason) or, in fixed-batch mode, a count check fails.
//! * **`Load::FixedBatch`** — `repeat` times: push `N` lines into the channel (timed separately as
//!   ingest), then run one batch that takes all `N` and report its processing time; the word
//!   total the pipeline counted is checked against the words the clients sent (word count; the
//!   windowed count sums the whole window).
//!
//! Peak memory is the process's `VmHWM` from `/proc/self/status` (kernel peak RSS); CPU is
//! `getrusage(RUSAGE_SELF)` user + system over the run.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::channel::file::{FileChannel, FileChannelConfig};
use crate::channel::Channel;
use crate::config::Context;
use crate::config::SystemProps;
use crate::event::Event;
use crate::pipeline::{Pipeline, PipelineConfig, PipelineError, StreamingContext};
use crate::rpc::client::{NettyAvroClient, RpcClientConfig};
use crate::source::avro::AvroSource;
use crate::source::{ChannelProcessor, Source};

/// Which job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `flatMap(split) → map((w,1)) → reduceByKey(+)` per batch.
    WordCount,
    /// `reduceByKeyAndWindow(+, −, 10 s, 1 s)`: the same pairs, counted over the last 10 s
    /// every 1 s, incrementally (add the entering batch, subtract the leaving one).
    Window,
}

/// The windowed variant's window length (the anchor's).
pub const WINDOW_LEN: Duration = Duration::from_secs(10);
/// The windowed variant's slide (the anchor's).
pub const WINDOW_SLIDE: Duration = Duration::from_secs(1);

/// How the input is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Open loop at `lines_per_sec` for warm-up + measurement.
    Rate {
        /// Target lines (events) per second.
        lines_per_sec: f64,
    },
    /// Preload `lines` into the channel, then one batch; `repeat` times.
    FixedBatch {
        /// Lines per batch.
        lines: u64,
        /// How many such batches.
        repeat: usize,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct PipelineBenchOptions {
    /// Lines to send, one event each (e.g. the anchor's `data/lines_1000000.txt`).
    pub input: PathBuf,
    /// Rate or fixed batch.
    pub load: Load,
    /// Word count or windowed word count.
    pub variant: Variant,
    /// The batch interval (1 s as in the anchor).
    pub batch_interval: Duration,
    /// Rate mode: warm-up after the first non-empty batch (anchor default 10 s).
    pub warmup: Duration,
    /// Rate mode: measurement window (anchor default 30 s).
    pub measure: Duration,
    /// Events per `appendBatch` call.
    pub call_size: usize,
    /// Client connections.
    pub connections: usize,
    /// Where the channel and the pipeline checkpoint live (must be empty or absent).
    pub dir: PathBuf,
    /// Pipeline worker threads (0 = one per core).
    pub workers: usize,
}

impl PipelineBenchOptions {
    /// The anchor's defaults: 1 s batches, 10 s warm-up, 30 s window; 1,000-event calls over 4
    /// connections.
    pub fn new(input: impl Into<PathBuf>, load: Load, dir: impl Into<PathBuf>) -> Self {
        PipelineBenchOptions {
            input: input.into(),
            load,
            variant: Variant::WordCount,
            batch_interval: Duration::from_secs(1),
            warmup: Duration::from_secs(10),
            measure: Duration::from_secs(30),
            call_size: 1000,
            connections: 4,
            dir: dir.into(),
            workers: 0,
        }
    }
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PipelineBenchError {
    /// The input file cannot be read.
    #[error("cannot read the input file {path}: {source} (pass --input, e.g. the spark anchor's data/lines_1000000.txt)")]
    Input {
        /// The file.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The input file has no lines.
    #[error("the input file {0} has no lines")]
    EmptyInput(String),
    /// The windowed job's 10 s / 1 s are not multiples of the batch interval.
    #[error("--window uses a 10 s window sliding every 1 s, which must be multiples of the batch interval ({0} ms does not divide them); use e.g. --batch-interval-ms 1000")]
    WindowInterval(u64),
    /// Bad options.
    #[error("invalid option: {0}")]
    Config(String),
    /// The channel, source or runtime could not be set up.
    #[error("cannot set up the {what}: {reason}")]
    Setup {
        /// Which part.
        what: &'static str,
        /// Cause.
        reason: String,
    },
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Sending failed for good.
    #[error("ingest failed after {delivered} events: {reason}")]
    Ingest {
        /// Events acknowledged before the failure.
        delivered: u64,
        /// Cause.
        reason: String,
    },
    /// The fixed batch did not contain what was pushed.
    #[error("the batch took {got} events, {want} were pushed (transactionCapacity or a leftover in the channel?)")]
    BatchSize {
        /// Events taken.
        got: u64,
        /// Events pushed.
        want: u64,
    },
    /// The pipeline's word total differs from the words sent.
    #[error("the pipeline counted {got} words, the clients sent {want}")]
    WrongCount {
        /// Counted.
        got: u64,
        /// Sent.
        want: u64,
    },
}

/// One completed batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    /// Batch id.
    pub batch_id: u64,
    /// Batch time, ms since the epoch.
    pub batch_time_ms: i64,
    /// Events taken.
    pub events: u64,
    /// From the later of batch time and driver-ready to the take commit, ms.
    pub proc_ms: u64,
    /// The pipeline's own take→commit time (without the take itself), ms.
    pub pipeline_ms: u64,
    /// How late the driver started the batch, ms.
    pub sched_ms: i64,
    /// Distinct words of the batch.
    pub keys: u64,
    /// Words counted in the batch.
    pub words: u64,
    /// Wall time the batch finished, ms since the epoch.
    pub done_ms: i64,
}

/// The anchor's summary of a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Batches in the window (rate) or measured batches (fixed).
    pub batches: usize,
    /// Expected batches in the window (rate) or requested (fixed).
    pub expected_batches: usize,
    /// min/median/max events per batch.
    pub events: (u64, f64, u64),
    /// min/median/max processing time, ms.
    pub proc_ms: (u64, f64, u64),
    /// min/median/max scheduling delay, ms.
    pub sched_ms: (i64, f64, i64),
    /// Mean scheduling delay of the last third minus the first third, ms.
    pub sched_growth_ms: f64,
    /// Events / (span of batch times + one interval) (rate mode).
    pub events_per_sec_window: Option<f64>,
    /// Events / summed processing time.
    pub events_per_sec_processing: Option<f64>,
    /// The anchor's verdict (rate mode): (enough batches, sched bounded, median proc ≤ interval,
    /// rate ≥ 95 % of target).
    pub keeps_up: Option<(bool, bool, bool, bool)>,
}

impl Summary {
    /// All four conditions hold.
    pub fn kept_up(&self) -> Option<bool> {
        self.keeps_up.map(|(a, b, c, d)| a && b && c && d)
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct PipelineBenchReport {
    /// The options.
    pub options: PipelineBenchOptions,
    /// Every completed batch (rate: all of them; fixed: the measured ones).
    pub rows: Vec<BatchRow>,
    /// Rate mode: the window `[lo, hi)` in batch time.
    pub window: Option<(i64, i64)>,
    /// The summary over the window / the measured batches.
    pub summary: Summary,
    /// Events the clients got `OK` for.
    pub sent: u64,
    /// Seconds the clients spent sending (rate: the whole send phase; fixed: summed pushes).
    pub send_secs: f64,
    /// `appendBatch` calls refused (channel full) and retried.
    pub refused_calls: u64,
    /// Rate mode: calls abandoned because the channel still refused them (back-pressure) when
    /// the send phase ended.
    pub cut_off_calls: u64,
    /// Seconds from the start to the first non-empty batch done.
    pub startup_secs: Option<f64>,
    /// Peak resident memory of the process (VmHWM), KiB.
    pub peak_rss_kib: Option<u64>,
    /// CPU seconds (user + system) of the process during the run.
    pub cpu_secs: f64,
    /// Wall seconds of the run.
    pub wall_secs: f64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn median_f(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The anchor's measurement window for rate runs: batches whose time lies in
/// `[first non-empty + warmup, + measure)`.
pub fn rate_window(rows: &[BatchRow], warmup: Duration, measure: Duration) -> Option<(i64, i64)> {
    let base = rows.iter().find(|r| r.events > 0)?.batch_time_ms;
    let lo = base + warmup.as_millis() as i64;
    Some((lo, lo + measure.as_millis() as i64))
}

/// Summarises `win` as the anchor's `run_bench.py` does. `target` = lines/s for rate runs
/// (then the keeps-up verdict is computed), `None` for fixed batches.
pub fn summarize(
    win: &[BatchRow],
    expected: usize,
    interval: Duration,
    target: Option<f64>,
) -> Summary {
    let mut s = Summary {
        batches: win.len(),
        expected_batches: expected,
        ..Default::default()
    };
    if win.is_empty() {
        if target.is_some() {
            s.keeps_up = Some((false, false, false, false));
        }
        return s;
    }
    let ev: Vec<u64> = win.iter().map(|r| r.events).collect();
    let pr: Vec<u64> = win.iter().map(|r| r.proc_ms).collect();
    let sc: Vec<i64> = win.iter().map(|r| r.sched_ms).collect();
    let mm = |v: &[u64]| {
        (
            *v.iter().min().unwrap_or(&0),
            median_f(v.iter().map(|&x| x as f64).collect()),
            *v.iter().max().unwrap_or(&0),
        )
    };
    s.events = mm(&ev);
    s.proc_ms = mm(&pr);
    s.sched_ms = (
        *sc.iter().min().unwrap_or(&0),
        median_f(sc.iter().map(|&x| x as f64).collect()),
        *sc.iter().max().unwrap_or(&0),
    );
    let k = (win.len() / 3).max(1);
    let mean = |v: &[i64]| v.iter().sum::<i64>() as f64 / v.len().max(1) as f64;
    s.sched_growth_ms = mean(&sc[sc.len() - k..]) - mean(&sc[..k]);
    let total: u64 = ev.iter().sum();
    let busy: u64 = pr.iter().sum();
    s.events_per_sec_processing = (busy > 0).then(|| total as f64 / (busy as f64 / 1000.0));
    let interval_ms = interval.as_millis() as f64;
    if let Some(target) = target {
        let span_s = (win[win.len() - 1].batch_time_ms - win[0].batch_time_ms) as f64 / 1000.0
            + interval_ms / 1000.0;
        let rate = total as f64 / span_s;
        s.events_per_sec_window = Some(rate);
        s.keeps_up = Some((
            win.len() as f64 >= 0.9 * expected as f64,
            s.sched_growth_ms <= interval_ms,
            s.proc_ms.1 <= interval_ms,
            rate >= 0.95 * target,
        ));
    }
    s
}

/// Peak resident set size of this process (`VmHWM`), KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn cpu_secs() -> f64 {
    // SAFETY: `rusage` is plain data, valid when zeroed; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a live `rusage` for the call's duration.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// `n` line-aligned byte ranges covering the file (fewer when the file has fewer lines).
fn line_ranges(path: &Path, n: usize) -> Result<Vec<(u64, u64)>, PipelineBenchError> {
    let input_err = |source| PipelineBenchError::Input {
        path: path.display().to_string(),
        source,
    };
    let len = std::fs::metadata(path).map_err(input_err)?.len();
    let mut f = BufReader::new(File::open(path).map_err(input_err)?);
    let mut cuts = vec![0u64];
    let mut scratch = Vec::new();
    for i in 1..n.max(1) as u64 {
        let at = len * i / n as u64;
        if at <= *cuts.last().unwrap_or(&0) {
            continue;
        }
        f.seek(SeekFrom::Start(at)).map_err(input_err)?;
        scratch.clear();
        let skipped = f.read_until(b'\n', &mut scratch).map_err(input_err)? as u64;
        let cut = at + skipped;
        if cut < len && cut > *cuts.last().unwrap_or(&0) {
            cuts.push(cut);
        }
    }
    cuts.push(len);
    let ranges: Vec<(u64, u64)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
    if len == 0 {
        return Err(PipelineBenchError::EmptyInput(path.display().to_string()));
    }
    Ok(ranges)
}

/// Cycles through the lines of one byte range of the input.
struct LineCursor {
    file: BufReader<File>,
    range: (u64, u64),
    pos: u64,
    line: Vec<u8>,
    /// Lines read since the last wrap (a range of blank lines would loop forever).
    since_wrap: u64,
}

impl LineCursor {
    fn open(path: &Path, range: (u64, u64)) -> std::io::Result<LineCursor> {
        let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
        file.seek(SeekFrom::Start(range.0))?;
        Ok(LineCursor {
            file,
            range,
            pos: range.0,
            line: Vec::with_capacity(512),
            since_wrap: 0,
        })
    }

    /// Fills `out` with the next `n` lines as events (wrapping around); returns their words.
    fn next_events(&mut self, n: usize, out: &mut Vec<Event>) -> std::io::Result<u64> {
        out.clear();
        let mut words = 0u64;
        while out.len() < n {
            if self.pos >= self.range.1 {
                if self.since_wrap == 0 {
                    return Err(std::io::Error::other("the input range has no lines"));
                }
                self.file.seek(SeekFrom::Start(self.range.0))?;
                self.pos = self.range.0;
                self.since_wrap = 0;
            }
            self.line.clear();
            let k = self.file.read_until(b'\n', &mut self.line)? as u64;
            if k == 0 {
                self.pos = self.range.1;
                continue;
            }
            self.pos += k;
            let mut body: &[u8] = &self.line;
            while let [rest @ .., b'\n' | b'\r'] = body {
                body = rest;
            }
            self.since_wrap += 1;
            words += body
                .split(|b| b.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
                .count() as u64;
            out.push(Event::new(std::iter::empty::<(&str, &str)>(), body));
        }
        Ok(words)
    }
}

/// The clients' shared progress.
#[derive(Default)]
struct SendState {
    delivered: AtomicU64,
    words: AtomicU64,
    refused: AtomicU64,
    claimed: AtomicU64,
    /// Calls still being refused (channel full) when the send phase ended: abandoned, not sent.
    cut_off: AtomicU64,
}

/// One client: claims calls until `limit` events are claimed or `stop` is set; in rate mode a
/// call is due at `start + claimed / rate`.
struct ClientJob {
    cfg: RpcClientConfig,
    path: PathBuf,
    range: (u64, u64),
    call_size: usize,
    limit: u64,
    pace: Option<(Instant, f64)>,
}

async fn client_task(
    job: ClientJob,
    st: Arc<SendState>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let ClientJob {
        cfg,
        path,
        range,
        call_size,
        limit,
        pace,
    } = job;
    let mut cursor = LineCursor::open(&path, range).map_err(|e| e.to_string())?;
    let mut client = NettyAvroClient::connect(&cfg)
        .await
        .map_err(|e| e.to_string())?;
    let mut events = Vec::with_capacity(call_size);
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let k = st.claimed.fetch_add(call_size as u64, Ordering::SeqCst);
        if k >= limit {
            break;
        }
        let n = (limit - k).min(call_size as u64) as usize;
        if let Some((start, rate)) = pace {
            let due = start + Duration::from_secs_f64(k as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let words = cursor
            .next_events(n, &mut events)
            .map_err(|e| e.to_string())?;
        let mut tries = 0u32;
        loop {
            match client.append_batch(&events).await {
                Ok(()) => break,
                Err(e) => {
                    // Channel full (FAILED) or a dropped connection: back off, reconnect, retry.
                    tries += 1;
                    st.refused.fetch_add(1, Ordering::Relaxed);
                    if stop.load(Ordering::Relaxed) {
                        // The send phase is over while the channel still refuses (the pipeline
                        // fell behind and back-pressure holds the sender): a result of the run,
                        // reported in its summary, not a failure. The call was never acked.
                        st.cut_off.fetch_add(1, Ordering::Relaxed);
                        client.close().await;
                        return Ok(());
                    }
                    if tries > 3000 {
                        client.close().await;
                        return Err(format!("appendBatch failed {tries} times: {e}"));
                    }
                    client.close().await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    client = NettyAvroClient::connect(&cfg)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        st.delivered.fetch_add(n as u64, Ordering::SeqCst);
        st.words.fetch_add(words, Ordering::SeqCst);
    }
    client.close().await;
    Ok(())
}

/// Pipeline + channel + source, ready to be fed.
struct Rig {
    rt: tokio::runtime::Runtime,
    source: AvroSource,
    channel: Arc<FileChannel>,
    port: u16,
    keys: Arc<AtomicU64>,
    words: Arc<AtomicU64>,
}

fn setup(
    opts: &PipelineBenchOptions,
    transaction_capacity: usize,
    capacity: u64,
) -> Result<(Rig, Pipeline), PipelineBenchError> {
    if opts.variant == Variant::Window {
        let iv = opts.batch_interval.as_millis();
        if iv == 0
            || !WINDOW_LEN.as_millis().is_multiple_of(iv)
            || !WINDOW_SLIDE.as_millis().is_multiple_of(iv)
        {
            return Err(PipelineBenchError::WindowInterval(iv as u64));
        }
    }
    let setup_err =
        |what: &'static str| move |e: String| PipelineBenchError::Setup { what, reason: e };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| setup_err("I/O runtime")(e.to_string()))?;
    let mut fc = FileChannelConfig::in_dir(&opts.dir.join("channel"));
    fc.transaction_capacity = transaction_capacity.max(opts.call_size);
    fc.capacity = capacity.max(fc.transaction_capacity as u64);
    fc.minimum_required_space = 1 << 20;
    let channel = Arc::new(
        FileChannel::open("bench", fc).map_err(|e| setup_err("file channel")(e.to_string()))?,
    );
    let ctx = StreamingContext::new(
        "bench",
        channel.clone() as Arc<dyn Channel>,
        PipelineConfig {
            batch_interval: opts.batch_interval,
            workers: opts.workers,
            checkpoint_dir: Some(opts.dir.join("pipeline")),
            ..Default::default()
        },
    );
    let keys = Arc::new(AtomicU64::new(0));
    let words = Arc::new(AtomicU64::new(0));
    {
        let (keys, words) = (keys.clone(), words.clone());
        let pairs = ctx.events().words().map(|w| (w, 1u64));
        let counts = match opts.variant {
            Variant::WordCount => pairs.reduce_by_key(|a, b| a + b),
            // Spark's reduceByKeyAndWindow(+, -, 10 s, 1 s) without a filter function: keys
            // stay in the state (and the output) with count 0, as in Spark.
            Variant::Window => pairs.reduce_by_key_and_window_inv(
                |a, b| a + b,
                |a, b| a - b,
                WINDOW_LEN,
                WINDOW_SLIDE,
                |_, _| true,
            ),
        };
        counts.foreach_batch(move |items, _cx| {
            keys.store(items.len() as u64, Ordering::SeqCst);
            words.store(items.iter().map(|(_, n)| *n).sum(), Ordering::SeqCst);
            Ok::<(), String>(())
        });
    }
    let pipeline = ctx.build()?;
    let sctx = Context::from_pairs("bench.sources.avro", [("bind", "127.0.0.1"), ("port", "0")]);
    let mut source = AvroSource::from_context(
        "avro",
        &sctx,
        &SystemProps::new(),
        ChannelProcessor::replicating(vec![channel.clone() as Arc<dyn Channel>]),
        rt.handle().clone(),
    )
    .map_err(|e| setup_err("Avro source")(e.to_string()))?;
    source
        .start()
        .map_err(|e| setup_err("Avro source")(e.to_string()))?;
    let port = source
        .local_addr()
        .ok_or_else(|| setup_err("Avro source")("it did not bind".into()))?
        .port();
    Ok((
        Rig {
            rt,
            source,
            channel,
            port,
            keys,
            words,
        },
        pipeline,
    ))
}

impl Rig {
    fn client_config(&self, call_size: usize) -> RpcClientConfig {
        let mut c = RpcClientConfig::single("127.0.0.1", self.port);
        c.batch_size = call_size.max(1);
        c
    }

    /// Starts the clients; returns their join handles.
    fn spawn_clients(
        &self,
        opts: &PipelineBenchOptions,
        ranges: &[(u64, u64)],
        limit: u64,
        pace: Option<(Instant, f64)>,
        st: &Arc<SendState>,
        stop: &Arc<AtomicBool>,
    ) -> Vec<tokio::task::JoinHandle<Result<(), String>>> {
        ranges
            .iter()
            .map(|&range| {
                self.rt.spawn(client_task(
                    ClientJob {
                        cfg: self.client_config(opts.call_size),
                        path: opts.input.clone(),
                        range,
                        call_size: opts.call_size,
                        limit,
                        pace,
                    },
                    st.clone(),
                    stop.clone(),
                ))
            })
            .collect()
    }

    fn join_clients(
        &self,
        handles: Vec<tokio::task::JoinHandle<Result<(), String>>>,
        st: &SendState,
    ) -> Result<(), PipelineBenchError> {
        let mut first_err = None;
        for h in handles {
            let r = self
                .rt
                .block_on(h)
                .map_err(|e| e.to_string())
                .and_then(|r| r);
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            None => Ok(()),
            Some(reason) => Err(PipelineBenchError::Ingest {
                delivered: st.delivered.load(Ordering::SeqCst),
                reason,
            }),
        }
    }

    fn shutdown(mut self) {
        self.source.stop();
        let _ = self.channel.close();
        self.rt.shutdown_timeout(Duration::from_secs(5));
    }
}

/// Runs one benchmark.
pub fn run(opts: &PipelineBenchOptions) -> Result<PipelineBenchReport, PipelineBenchError> {
    if opts.call_size == 0 || opts.connections == 0 {
        return Err(PipelineBenchError::Config(
            "--batch-size and --connections must be at least 1".into(),
        ));
    }
    if opts.batch_interval.is_zero() {
        return Err(PipelineBenchError::Config(
            "the batch interval must be positive".into(),
        ));
    }
    let ranges = line_ranges(&opts.input, opts.connections)?;
    match opts.load {
        Load::Rate { lines_per_sec } if lines_per_sec > 0.0 => {
            run_rate(opts, &ranges, lines_per_sec)
        }
        Load::Rate { .. } => Err(PipelineBenchError::Config("--rate must be positive".into())),
        Load::FixedBatch { lines, repeat } if lines > 0 && repeat > 0 => {
            run_fixed(opts, &ranges, lines, repeat)
        }
        Load::FixedBatch { .. } => Err(PipelineBenchError::Config(
            "--fixed-batch and --repeat must be at least 1".into(),
        )),
    }
}

fn row(
    r: &crate::pipeline::BatchReport,
    ready_ms: i64,
    done_ms: i64,
    keys: u64,
    words: u64,
) -> BatchRow {
    let from = ready_ms.max(r.batch_time_ms);
    BatchRow {
        batch_id: r.batch_id,
        batch_time_ms: r.batch_time_ms,
        events: r.events,
        proc_ms: (done_ms - from).max(0) as u64,
        pipeline_ms: r.processing_ms,
        sched_ms: (ready_ms - r.batch_time_ms).max(0),
        keys,
        words,
        done_ms,
    }
}

fn run_rate(
    opts: &PipelineBenchOptions,
    ranges: &[(u64, u64)],
    rate: f64,
) -> Result<PipelineBenchReport, PipelineBenchError> {
    let interval_s = opts.batch_interval.as_secs_f64();
    // Room for two batches of the target per take, and ten seconds of backlog in the channel.
    let tx_cap = ((rate * interval_s * 2.0) as usize).max(10_000);
    let capacity = ((rate * 10.0) as u64).max(tx_cap as u64 * 2);
    let (rig, mut pipeline) = setup(opts, tx_cap, capacity)?;
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let start_ms = now_ms();

    // The driver: batches until the window is complete or it is told to stop.
    let stop_sig = pipeline.stop_signal();
    let rows = Arc::new(Mutex::new(Vec::<BatchRow>::new()));
    let window_done = Arc::new(AtomicBool::new(false));
    let driver = {
        let (rows, window_done, keys, words) = (
            rows.clone(),
            window_done.clone(),
            rig.keys.clone(),
            rig.words.clone(),
        );
        let (warmup, measure) = (opts.warmup, opts.measure);
        std::thread::Builder::new()
            .name("bench-driver".into())
            .spawn(move || -> Result<(), PipelineError> {
                loop {
                    let ready = now_ms();
                    let Some(r) = pipeline.step()? else {
                        return Ok(());
                    };
                    let done = now_ms();
                    let mut rows = rows.lock().unwrap_or_else(|e| e.into_inner());
                    rows.push(row(
                        &r,
                        ready,
                        done,
                        keys.load(Ordering::SeqCst),
                        words.load(Ordering::SeqCst),
                    ));
                    if let Some((_, hi)) = rate_window(&rows, warmup, measure) {
                        if r.batch_time_ms >= hi {
                            window_done.store(true, Ordering::SeqCst);
                            return Ok(());
                        }
                    }
                }
            })
            .map_err(|e| PipelineBenchError::Setup {
                what: "driver thread",
                reason: e.to_string(),
            })?
    };

    // The clients: open loop for warm-up + window + a margin.
    let send_for = opts.warmup + opts.measure + opts.batch_interval * 3 + Duration::from_secs(2);
    let limit = (rate * send_for.as_secs_f64()) as u64;
    let st = Arc::new(SendState::default());
    let stop = Arc::new(AtomicBool::new(false));
    let send_start = Instant::now();
    let handles = rig.spawn_clients(opts, ranges, limit, Some((send_start, rate)), &st, &stop);
    // Bound the send phase: a client far behind its schedule is cut off at 2x the planned time.
    let send_deadline = send_start + send_for * 2;
    while !handles.iter().all(|h| h.is_finished()) && Instant::now() < send_deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let client_result = rig.join_clients(handles, &st);
    let send_secs = send_start.elapsed().as_secs_f64();

    // Give the driver a few intervals after the window to finish its batches.
    let grace_end = Instant::now() + opts.batch_interval * 3 + Duration::from_secs(1);
    while !window_done.load(Ordering::SeqCst) && !driver.is_finished() && Instant::now() < grace_end
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop_sig.stop();
    let driver_result = driver.join().map_err(|_| PipelineBenchError::Setup {
        what: "driver thread",
        reason: "it panicked".into(),
    })?;
    let wall_secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    rig.shutdown();
    driver_result?;
    client_result?;

    let rows = std::mem::take(&mut *rows.lock().unwrap_or_else(|e| e.into_inner()));
    let window = rate_window(&rows, opts.warmup, opts.measure);
    let win: Vec<BatchRow> = match window {
        Some((lo, hi)) => rows
            .iter()
            .filter(|r| r.batch_time_ms >= lo && r.batch_time_ms < hi)
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let expected = (opts.measure.as_secs_f64() / interval_s).round() as usize;
    let summary = summarize(&win, expected, opts.batch_interval, Some(rate));
    let startup_secs = rows
        .iter()
        .find(|r| r.events > 0)
        .map(|r| (r.done_ms - start_ms) as f64 / 1000.0);
    Ok(PipelineBenchReport {
        options: opts.clone(),
        rows,
        window,
        summary,
        sent: st.delivered.load(Ordering::SeqCst),
        send_secs,
        refused_calls: st.refused.load(Ordering::SeqCst),
        cut_off_calls: st.cut_off.load(Ordering::SeqCst),
        startup_secs,
        peak_rss_kib: peak_rss_kib(),
        cpu_secs: cpu,
        wall_secs,
    })
}

fn run_fixed(
    opts: &PipelineBenchOptions,
    ranges: &[(u64, u64)],
    lines: u64,
    repeat: usize,
) -> Result<PipelineBenchReport, PipelineBenchError> {
    let tx = usize::try_from(lines).unwrap_or(usize::MAX);
    let (rig, mut pipeline) = setup(opts, tx, lines + opts.call_size as u64)?;
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let mut send_secs = 0.0;
    let st = Arc::new(SendState::default());
    let result = fixed_rounds(
        opts,
        ranges,
        lines,
        repeat,
        &rig,
        &mut pipeline,
        &st,
        &mut rows,
        &mut send_secs,
    );
    let wall_secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    drop(pipeline);
    rig.shutdown();
    result?;
    let summary = summarize(&rows, repeat, opts.batch_interval, None);
    Ok(PipelineBenchReport {
        options: opts.clone(),
        rows,
        window: None,
        summary,
        sent: st.delivered.load(Ordering::SeqCst),
        send_secs,
        refused_calls: st.refused.load(Ordering::SeqCst),
        cut_off_calls: st.cut_off.load(Ordering::SeqCst),
        startup_secs: None,
        peak_rss_kib: peak_rss_kib(),
        cpu_secs: cpu,
        wall_secs,
    })
}

/// The rounds of a fixed-batch run: push `lines`, run one batch, check it.
#[allow(clippy::too_many_arguments)]
fn fixed_rounds(
    opts: &PipelineBenchOptions,
    ranges: &[(u64, u64)],
    lines: u64,
    repeat: usize,
    rig: &Rig,
    pipeline: &mut Pipeline,
    st: &Arc<SendState>,
    rows: &mut Vec<BatchRow>,
    send_secs: &mut f64,
) -> Result<(), PipelineBenchError> {
    let stop = Arc::new(AtomicBool::new(false));
    for i in 0..repeat {
        let before = st.delivered.load(Ordering::SeqCst);
        let words_before = st.words.load(Ordering::SeqCst);
        // Claims count from zero per round.
        st.claimed.store(0, Ordering::SeqCst);
        let s = Instant::now();
        let handles = rig.spawn_clients(opts, ranges, lines, None, st, &stop);
        rig.join_clients(handles, st)?;
        *send_secs += s.elapsed().as_secs_f64();
        let pushed = st.delivered.load(Ordering::SeqCst) - before;
        let words = st.words.load(Ordering::SeqCst) - words_before;
        let ready = now_ms();
        let Some(r) = pipeline.step()? else {
            return Err(PipelineBenchError::Config(
                "the pipeline stopped unexpectedly".into(),
            ));
        };
        let done = now_ms();
        let b = row(
            &r,
            ready,
            done,
            rig.keys.load(Ordering::SeqCst),
            rig.words.load(Ordering::SeqCst),
        );
        if b.events != pushed {
            return Err(PipelineBenchError::BatchSize {
                got: b.events,
                want: pushed,
            });
        }
        // The windowed count sums the whole window, not this batch.
        if opts.variant == Variant::WordCount && b.words != words {
            return Err(PipelineBenchError::WrongCount {
                got: b.words,
                want: words,
            });
        }
        tracing::debug!(
            round = i,
            events = b.events,
            proc_ms = b.proc_ms,
            "fixed batch"
        );
        rows.push(b);
    }
    Ok(())
}

impl PipelineBenchReport {
    /// The report as JSON (options, per-batch rows, summary), for result files.
    pub fn to_json(&self) -> serde_json::Value {
        let o = &self.options;
        let s = &self.summary;
        let (mode, target, lines, repeat) = match o.load {
            Load::Rate { lines_per_sec } => ("rate", Some(lines_per_sec), None, None),
            Load::FixedBatch { lines, repeat } => ("fixed-batch", None, Some(lines), Some(repeat)),
        };
        serde_json::json!({
            "variant": match o.variant { Variant::WordCount => "wordcount", Variant::Window => "window" },
            "mode": mode,
            "target_lines_per_s": target,
            "fixed_batch_lines": lines,
            "repeat": repeat,
            "input": o.input.display().to_string(),
            "batch_interval_ms": o.batch_interval.as_millis() as u64,
            "warmup_s": o.warmup.as_secs_f64(),
            "measure_s": o.measure.as_secs_f64(),
            "call_size": o.call_size,
            "connections": o.connections,
            "workers": o.workers,
            "window": self.window.map(|(lo, hi)| serde_json::json!({"lo": lo, "hi": hi})),
            "batches": self.rows.iter().map(|r| serde_json::json!({
                "batch_id": r.batch_id, "batch_time_ms": r.batch_time_ms, "events": r.events,
                "proc_ms": r.proc_ms, "pipeline_ms": r.pipeline_ms, "sched_ms": r.sched_ms,
                "keys": r.keys, "words": r.words, "done_ms": r.done_ms,
            })).collect::<Vec<_>>(),
            "summary": {
                "batches": s.batches, "expected_batches": s.expected_batches,
                "events": [s.events.0, s.events.1, s.events.2],
                "proc_ms": [s.proc_ms.0, s.proc_ms.1, s.proc_ms.2],
                "sched_ms": [s.sched_ms.0, s.sched_ms.1, s.sched_ms.2],
                "sched_growth_ms": s.sched_growth_ms,
                "events_per_s_window": s.events_per_sec_window,
                "events_per_s_processing": s.events_per_sec_processing,
                "keeps_up": s.kept_up(),
                "keeps_up_detail": s.keeps_up.map(|(a, b, c, d)| serde_json::json!({
                    "enough_batches": a, "sched_bounded": b, "median_proc_le_interval": c,
                    "rate_ge_95pct_target": d})),
            },
            "sent": self.sent,
            "cut_off_calls": self.cut_off_calls,
            "send_s": self.send_secs,
            "refused_calls": self.refused_calls,
            "startup_s": self.startup_secs,
            "peak_rss_mib": self.peak_rss_kib.map(|k| k as f64 / 1024.0),
            "cpu_s": self.cpu_secs,
            "wall_s": self.wall_secs,
        })
    }
}

impl std::fmt::Display for PipelineBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.options;
        let s = &self.summary;
        let base = self.rows.first().map_or(0, |r| r.batch_time_ms);
        writeln!(
            f,
            "batch  time(s)   events  proc_ms  pipeline_ms  sched_ms   keys      words  window"
        )?;
        for r in &self.rows {
            let inside = self
                .window
                .is_some_and(|(lo, hi)| r.batch_time_ms >= lo && r.batch_time_ms < hi);
            writeln!(
                f,
                "{:>5} {:>8.1} {:>8} {:>8} {:>12} {:>9} {:>6} {:>10}  {}",
                r.batch_id,
                (r.batch_time_ms - base) as f64 / 1000.0,
                r.events,
                r.proc_ms,
                r.pipeline_ms,
                r.sched_ms,
                r.keys,
                r.words,
                if inside { "*" } else { "" }
            )?;
        }
        let (mode, target) = match o.load {
            Load::Rate { lines_per_sec } => ("rate", format!("{lines_per_sec:.0}")),
            Load::FixedBatch { lines, .. } => ("fixed-batch", format!("{lines} lines")),
        };
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        writeln!(f)?;
        writeln!(
            f,
            "| variant | mode | target | batches (expected) | events/batch min/med/max | proc ms min/med/max | sched ms min/med/max | sched growth ms | events/s in window | events/s processing | sent (events/s) | refused calls | keeps up | peak RSS MiB | CPU s / wall s |"
        )?;
        writeln!(
            f,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        )?;
        let keeps = match s.keeps_up {
            None => "-".to_string(),
            Some((a, b, c, d)) => format!(
                "{} (batches {a}, sched bounded {b}, median proc {c}, rate {d})",
                s.kept_up().unwrap_or(false)
            ),
        };
        writeln!(
            f,
            "| {} | {mode} | {target} | {} ({}) | {}/{:.0}/{} | {}/{:.0}/{} | {}/{:.0}/{} | {:.0} | {} | {} | {} ({:.0}) | {} | {keeps} | {} | {:.1} / {:.1} |",
            match o.variant {
                Variant::WordCount => "wordcount",
                Variant::Window => "window",
            },
            s.batches,
            s.expected_batches,
            s.events.0,
            s.events.1,
            s.events.2,
            s.proc_ms.0,
            s.proc_ms.1,
            s.proc_ms.2,
            s.sched_ms.0,
            s.sched_ms.1,
            s.sched_ms.2,
            s.sched_growth_ms,
            opt(s.events_per_sec_window),
            opt(s.events_per_sec_processing),
            self.sent,
            self.sent as f64 / self.send_secs.max(1e-9),
            self.refused_calls,
            self.peak_rss_kib
                .map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0)),
            self.cpu_secs,
            self.wall_secs,
        )?;
        if let Some(st) = self.startup_secs {
            writeln!(f, "first non-empty batch done {st:.2} s after the start")?;
        }
        if let Some((a, b, c, d)) = s.keeps_up {
            if !(a && b && c && d) {
                let mut why = Vec::new();
                if !a {
                    why.push(format!(
                        "{} of {} batches completed in the window",
                        s.batches, s.expected_batches
                    ));
                }
                if !b {
                    why.push(format!(
                        "scheduling delay grew by {:.0} ms",
                        s.sched_growth_ms
                    ));
                }
                if !c {
                    why.push(format!(
                        "median processing {:.0} ms > interval {} ms",
                        s.proc_ms.1,
                        o.batch_interval.as_millis()
                    ));
                }
                if !d {
                    why.push(format!(
                        "{} events/s in the window < 95 % of the target",
                        opt(s.events_per_sec_window)
                    ));
                }
                writeln!(f, "did not keep up: {}", why.join("; "))?;
            }
        }
        if self.cut_off_calls > 0 {
            writeln!(
                f,
                "{} calls were still refused (channel full: back-pressure) when the send phase ended and were not sent",
                self.cut_off_calls
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(t: i64, events: u64, proc_ms: u64, sched_ms: i64) -> BatchRow {
        BatchRow {
            batch_id: 0,
            batch_time_ms: t,
            events,
            proc_ms,
            pipeline_ms: proc_ms,
            sched_ms,
            keys: 0,
            words: 0,
            done_ms: t + proc_ms as i64,
        }
    }

    #[test]
    fn window_starts_at_the_first_non_empty_batch() {
        let rows = vec![r(1000, 0, 1, 0), r(2000, 5, 1, 0), r(3000, 5, 1, 0)];
        let w = rate_window(&rows, Duration::from_secs(10), Duration::from_secs(30));
        assert_eq!(w, Some((12_000, 42_000)));
        assert_eq!(
            rate_window(&[r(1000, 0, 1, 0)], Duration::ZERO, Duration::ZERO),
            None
        );
    }

    #[test]
    fn keeps_up_follows_the_anchor_rule() {
        let sec = Duration::from_secs(1);
        // 30 batches of 1,000 events, fast, no delay: kept up at 1,000/s.
        let good: Vec<BatchRow> = (0..30).map(|i| r(i * 1000, 1000, 200, 5)).collect();
        let s = summarize(&good, 30, sec, Some(1000.0));
        assert_eq!(s.kept_up(), Some(true), "{s:?}");
        assert_eq!(s.events_per_sec_window, Some(1000.0));
        assert_eq!(s.events_per_sec_processing, Some(5000.0));
        assert_eq!(s.proc_ms, (200, 200.0, 200));
        // The same at a 1,100/s target: below 95 %.
        assert_eq!(
            summarize(&good, 30, sec, Some(1100.0)).keeps_up,
            Some((true, true, true, false))
        );
        // Too few batches.
        assert_eq!(
            summarize(&good[..26], 30, sec, Some(1000.0))
                .keeps_up
                .map(|k| k.0),
            Some(false)
        );
        // Slow batches: median over the interval, and the delay grows.
        let slow: Vec<BatchRow> = (0..30).map(|i| r(i * 1000, 1000, 1100, i * 100)).collect();
        let s = summarize(&slow, 30, sec, Some(1000.0));
        assert_eq!(s.keeps_up, Some((true, false, false, true)), "{s:?}");
        assert_eq!(s.sched_growth_ms, 2000.0);
        // Nothing in the window: not kept up.
        assert_eq!(summarize(&[], 30, sec, Some(1.0)).kept_up(), Some(false));
        // Fixed batches: no verdict.
        assert_eq!(summarize(&good, 30, sec, None).keeps_up, None);
    }

    #[test]
    fn a_run_that_fell_behind_is_reported_not_failed() {
        let sec = Duration::from_secs(1);
        let slow: Vec<BatchRow> = (0..30).map(|i| r(i * 1000, 1000, 1100, i * 100)).collect();
        let report = PipelineBenchReport {
            options: PipelineBenchOptions::new(
                "in.txt",
                Load::Rate {
                    lines_per_sec: 1000.0,
                },
                "dir",
            ),
            summary: summarize(&slow, 30, sec, Some(1000.0)),
            rows: slow,
            window: Some((0, 30_000)),
            sent: 30_000,
            send_secs: 30.0,
            refused_calls: 40,
            cut_off_calls: 3,
            startup_secs: Some(1.0),
            peak_rss_kib: None,
            cpu_secs: 1.0,
            wall_secs: 35.0,
        };
        let text = report.to_string();
        assert!(
            text.contains("did not keep up: scheduling delay grew by 2000 ms; median processing 1100 ms > interval 1000 ms\n"),
            "{text}"
        );
        assert!(text.contains("\n3 calls were still refused"), "{text}");
        assert_eq!(report.to_json()["cut_off_calls"], 3);
        assert_eq!(report.to_json()["summary"]["keeps_up"], false);
    }

    #[test]
    fn peak_rss_is_read() {
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }

    #[test]
    fn cursors_cover_every_line_once_per_pass_and_wrap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.txt");
        let lines: Vec<String> = (0..101).map(|i| format!("w{i} x y")).collect();
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        let ranges = line_ranges(&p, 4).unwrap();
        assert_eq!(ranges.len(), 4);
        let mut seen = Vec::new();
        let mut words = 0;
        for &range in &ranges {
            let mut c = LineCursor::open(&p, range).unwrap();
            let mut out = Vec::new();
            let mut n = 0;
            // Count the range's lines: read until the first one comes back.
            let first = {
                words += c.next_events(1, &mut out).unwrap();
                out[0].body().to_vec()
            };
            seen.push(first.clone());
            loop {
                words += c.next_events(1, &mut out).unwrap();
                if out[0].body() == first.as_slice() {
                    break;
                }
                seen.push(out[0].body().to_vec());
                n += 1;
                assert!(n < 200);
            }
        }
        let mut want: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
        want.sort();
        seen.sort();
        assert_eq!(seen, want);
        assert_eq!(words, 3 * 101 + 3 * ranges.len() as u64);
        // More ranges than lines: fewer ranges.
        let q = dir.path().join("two.txt");
        std::fs::write(&q, "a\nb").unwrap();
        assert!(line_ranges(&q, 8).unwrap().len() <= 2);
        let e = dir.path().join("empty.txt");
        std::fs::write(&e, "").unwrap();
        assert!(matches!(
            line_ranges(&e, 2),
            Err(PipelineBenchError::EmptyInput(_))
        ));
    }

    #[test]
    fn window_variant_counts_over_the_window_and_refuses_odd_intervals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.txt");
        std::fs::write(&p, "a b\n").unwrap();
        let mut o = PipelineBenchOptions::new(
            &p,
            Load::FixedBatch {
                lines: 10,
                repeat: 3,
            },
            dir.path().join("run"),
        );
        o.variant = Variant::Window;
        o.batch_interval = Duration::from_millis(300);
        let e = run(&o).unwrap_err();
        assert!(matches!(e, PipelineBenchError::WindowInterval(300)), "{e}");
        assert!(e.to_string().contains("300 ms"));
        // 1 s batches: the 1 s slide outputs after every batch.
        o.batch_interval = Duration::from_secs(1);
        o.connections = 1;
        o.call_size = 10;
        let rep = run(&o).unwrap();
        // Three batches within 10 s: the window holds 1, 2, 3 batches of 10 lines x 2 words.
        let words: Vec<u64> = rep.rows.iter().map(|r| r.words).collect();
        assert_eq!(words, vec![20, 40, 60]);
        assert!(rep.rows.iter().all(|r| r.keys == 2));
    }

    #[test]
    fn fixed_batch_counts_every_word_of_the_pushed_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.txt");
        let lines: Vec<String> = (0..500)
            .map(|i| format!("a{} b{} c", i % 7, i % 13))
            .collect();
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        let mut o = PipelineBenchOptions::new(
            &p,
            Load::FixedBatch {
                lines: 2000,
                repeat: 2,
            },
            dir.path().join("run"),
        );
        o.batch_interval = Duration::from_millis(50);
        o.call_size = 100;
        o.connections = 3;
        let rep = run(&o).unwrap();
        assert_eq!(rep.rows.len(), 2);
        for b in &rep.rows {
            assert_eq!(b.events, 2000);
            assert_eq!(b.words, 6000);
            assert_eq!(b.keys, 7 + 13 + 1);
        }
        assert_eq!(rep.sent, 4000);
        assert!(rep.to_string().contains("fixed-batch"));
        assert_eq!(rep.to_json()["summary"]["batches"], 2);
    }

    #[test]
    fn a_short_rate_run_completes_its_window() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.txt");
        let lines: Vec<String> = (0..300).map(|i| format!("x{} y", i % 11)).collect();
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        let mut o = PipelineBenchOptions::new(
            &p,
            Load::Rate {
                lines_per_sec: 2000.0,
            },
            dir.path().join("run"),
        );
        o.batch_interval = Duration::from_millis(100);
        o.warmup = Duration::from_millis(200);
        o.measure = Duration::from_millis(1000);
        o.call_size = 50;
        o.connections = 2;
        let rep = run(&o).unwrap();
        let (lo, hi) = rep.window.expect("a window");
        assert_eq!(hi - lo, 1000);
        // Every event sent was counted by some batch (two words per line).
        let events: u64 = rep.rows.iter().map(|r| r.events).sum();
        let words: u64 = rep.rows.iter().map(|r| r.words).sum();
        assert!(events <= rep.sent);
        assert_eq!(words, 2 * events);
        assert!(rep.summary.batches > 0);
        assert!(rep.summary.keeps_up.is_some());
    }
}
