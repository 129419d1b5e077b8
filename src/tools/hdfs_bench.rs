//! `sluicegate bench --hdfs`: Avro clients → Avro source → durable file channel → HDFS sink
//! (`file://` in a directory of its own), in one process, verified.
//!
//! # What is measured
//!
//! `connections` clients push `events` events of `body_size` bytes (headers `timestamp` and
//! `host`, as Flume's log4j appender sends) in `appendBatch` calls of `call_size` to an Avro
//! source feeding a [`FileChannel`] (fsync per transaction, Flume's default). One HDFS sink,
//! driven by a [`SinkRunner`], drains the channel with the `hdfs.*` keys given (file type,
//! codec, `hdfs.batchSize`, rolls). The clock starts before the first connect and stops when the
//! sink's `EventDrainSuccessCount` reaches `events` — every event written, `fdatasync`ed and its
//! take committed. Then the sink is stopped (files closed and renamed) and the files are read
//! back.
//!
//! Two rates are reported: **end to end** (events / that elapsed time) and the **sink's own
//! drain rate**: events / the wall time spent inside `process` calls that took events (the sink
//! thread's busy time; with `staged` the channel is filled first, so the sink runs alone).
//!
//! # Verification
//!
//! Every body is unique: a 12-digit event number, `:`, then `x` up to `body_size`. After the
//! run every final file under the output directory is decoded — DataStream `TEXT` lines,
//! gzip members (CompressedStream), SequenceFile records (`Writable` or `Text` values, syncs
//! skipped) — and each body must be well formed, and each number in range and seen exactly once.
//! A run that misses an event, has a duplicate or a malformed record, or leaves an in-use file
//! is reported as not verified (the command exits non-zero).
//!
//! # Generation cost
//!
//! Clients do not pre-build all events (a million 256-byte events would hold ~300 MB): each
//! call copies one pre-encoded template event `k` times into one buffer and writes the event
//! numbers into the copies, then slices the buffer into events — a memcpy per call, no
//! per-event encoding inside the measured window.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::channel::file::{FileChannel, FileChannelConfig};
use crate::channel::Channel;
use crate::config::{Context, SystemProps};
use crate::event::Event;
use crate::metrics::SinkCounter;
use crate::rpc::client::{NettyAvroClient, RpcClientConfig};
use crate::sink::hdfs::HdfsSink;
use crate::sink::processor::DefaultSinkProcessor;
use crate::sink::runner::SinkRunner;
use crate::sink::{Sink, SinkError, SinkStatus};
use crate::source::avro::AvroSource;
use crate::source::{ChannelProcessor, Source};

/// Width of the event number at the start of each body.
const ID_DIGITS: usize = 12;

/// What to run.
#[derive(Debug, Clone)]
pub struct HdfsBenchOptions {
    /// Total events (split evenly over the connections; the remainder goes to the first).
    pub events: u64,
    /// Body size in bytes (at least 16).
    pub body_size: usize,
    /// Events per `appendBatch` call.
    pub call_size: usize,
    /// Client connections.
    pub connections: usize,
    /// Working directory: `channel/` (file channel) and `out/` (the sink's files). Must be empty.
    pub dir: PathBuf,
    /// The sink's `hdfs.*` keys (and `serializer.*`), applied over the bench's defaults
    /// (see [`HdfsBenchOptions::sink_pairs`]). `hdfs.path` is relative to `dir/out`.
    pub sink_settings: Vec<(String, String)>,
    /// Fill the channel first, then start the sink (its drain rate alone).
    pub staged: bool,
    /// Give up waiting for the sink after this long.
    pub deadline: Duration,
}

impl HdfsBenchOptions {
    /// 1,000,000 events of 256 bytes, calls of 1000 over 4 connections, DataStream TEXT.
    pub fn new(dir: PathBuf) -> HdfsBenchOptions {
        HdfsBenchOptions {
            events: 1_000_000,
            body_size: 256,
            call_size: 1000,
            connections: 4,
            dir,
            sink_settings: Vec::new(),
            staged: false,
            deadline: Duration::from_secs(600),
        }
    }

    /// The sink's configuration: `hdfs.path = file://<dir>/out[/<hdfs.path>]`, DataStream TEXT,
    /// no count/interval rolls, 128 MiB size rolls, Flume's `hdfs.batchSize` (100) unless
    /// overridden, then every key of `sink_settings`.
    pub fn sink_pairs(&self) -> Vec<(String, String)> {
        let out = self.dir.join("out");
        let mut pairs: Vec<(String, String)> = [
            ("hdfs.fileType", "DataStream"),
            ("hdfs.rollCount", "0"),
            ("hdfs.rollInterval", "0"),
            ("hdfs.rollSize", "134217728"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut sub = None;
        for (k, v) in &self.sink_settings {
            if k == "hdfs.path" {
                sub = Some(v.trim_start_matches('/').to_string());
                continue;
            }
            pairs.retain(|(pk, _)| pk != k);
            pairs.push((k.clone(), v.clone()));
        }
        let path = match sub {
            Some(s) if !s.is_empty() => format!("file://{}/{s}", out.display()),
            _ => format!("file://{}", out.display()),
        };
        pairs.insert(0, ("hdfs.path".into(), path));
        pairs
    }
}

/// What one run measured and found.
#[derive(Debug, Clone, PartialEq)]
pub struct HdfsBenchReport {
    /// Events acknowledged by the source.
    pub sent: u64,
    /// Events the sink committed (`EventDrainSuccessCount`).
    pub drained: u64,
    /// From the first connect to the last commit.
    pub elapsed: Duration,
    /// From the first connect to the last `appendBatch` reply.
    pub ingest_elapsed: Duration,
    /// Wall time inside the sink's `process` calls that took events.
    pub sink_busy: Duration,
    /// Take transactions that took events.
    pub sink_batches: u64,
    /// Final files written.
    pub files: u64,
    /// Bytes in them.
    pub file_bytes: u64,
    /// Records read back.
    pub records: u64,
    /// Distinct event numbers among them.
    pub distinct: u64,
    /// Records whose number was already seen.
    pub duplicates: u64,
    /// Records that are not a bench body.
    pub malformed: u64,
    /// Files still under an in-use name after stop.
    pub in_use_left: u64,
    /// The sink settings used (sorted).
    pub settings: Vec<(String, String)>,
    /// Staged run (channel filled before the sink started).
    pub staged: bool,
    /// CPU time (user + system) of the whole process over `elapsed`.
    pub cpu: Duration,
}

impl HdfsBenchReport {
    /// True when every event sent is in exactly one record and nothing else is.
    pub fn verified(&self) -> bool {
        self.records == self.sent
            && self.distinct == self.sent
            && self.duplicates == 0
            && self.malformed == 0
            && self.in_use_left == 0
            && self.drained == self.sent
    }

    /// End-to-end events/s (`staged`: the fill plus the drain).
    pub fn events_per_sec(&self) -> f64 {
        self.drained as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The sink's drain rate: events / its busy time.
    pub fn sink_events_per_sec(&self) -> f64 {
        self.drained as f64 / self.sink_busy.as_secs_f64().max(1e-9)
    }

    /// Source → channel events/s (until the last reply).
    pub fn ingest_events_per_sec(&self) -> f64 {
        self.sent as f64 / self.ingest_elapsed.as_secs_f64().max(1e-9)
    }

    /// The report as one JSON object; durations in microseconds.
    pub fn to_json(&self) -> serde_json::Value {
        let us = |d: Duration| d.as_micros() as u64;
        let settings: serde_json::Map<String, serde_json::Value> = self
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::json!({
            "mode": "hdfs",
            "staged": self.staged,
            "sent": self.sent,
            "drained": self.drained,
            "elapsed_us": us(self.elapsed),
            "ingest_elapsed_us": us(self.ingest_elapsed),
            "sink_busy_us": us(self.sink_busy),
            "sink_batches": self.sink_batches,
            "events_per_sec": self.events_per_sec(),
            "ingest_events_per_sec": self.ingest_events_per_sec(),
            "sink_events_per_sec": self.sink_events_per_sec(),
            "cpu_us": us(self.cpu),
            "files": self.files,
            "file_bytes": self.file_bytes,
            "records": self.records,
            "distinct": self.distinct,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "in_use_left": self.in_use_left,
            "verified": self.verified(),
            "sink": settings,
        })
    }
}

impl std::fmt::Display for HdfsBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .settings
            .iter()
            .filter(|(k, _)| k != "hdfs.path")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        writeln!(
            f,
            "hdfs bench ({}): {}",
            if self.staged { "staged" } else { "end to end" },
            keys.join(" ")
        )?;
        writeln!(
            f,
            "  {} events sent, {} committed by the sink in {:.3} s: {:.0} events/s end to end",
            self.sent,
            self.drained,
            self.elapsed.as_secs_f64(),
            self.events_per_sec()
        )?;
        writeln!(
            f,
            "  source -> channel: {:.0} events/s ({:.3} s); sink: {:.0} events/s over {:.3} s busy in {} batches",
            self.ingest_events_per_sec(),
            self.ingest_elapsed.as_secs_f64(),
            self.sink_events_per_sec(),
            self.sink_busy.as_secs_f64(),
            self.sink_batches
        )?;
        writeln!(
            f,
            "  CPU {:.2} s ({:.2} cores busy)",
            self.cpu.as_secs_f64(),
            self.cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
        )?;
        write!(
            f,
            "  verify: {} file(s), {} bytes, {} records, {} distinct, {} duplicate(s), {} malformed, {} in-use left: {}",
            self.files,
            self.file_bytes,
            self.records,
            self.distinct,
            self.duplicates,
            self.malformed,
            self.in_use_left,
            if self.verified() { "OK" } else { "FAILED" }
        )
    }
}

/// Wraps the sink to time its `process` calls that took events.
struct TimedSink {
    inner: HdfsSink,
    busy_ns: Arc<AtomicU64>,
    batches: Arc<AtomicU64>,
}

impl Sink for TimedSink {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn start(&mut self) -> Result<(), SinkError> {
        self.inner.start()
    }
    fn process(&mut self) -> Result<SinkStatus, SinkError> {
        let t = Instant::now();
        let r = self.inner.process();
        if matches!(r, Ok(SinkStatus::Ready)) {
            self.busy_ns
                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            self.batches.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
    fn stop(&mut self) {
        self.inner.stop()
    }
    fn counter(&self) -> Arc<SinkCounter> {
        self.inner.counter()
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// The template event: headers `timestamp` (`ts`) and `host`, a body of `body_size` bytes whose
/// first [`ID_DIGITS`] bytes are replaced per copy. Returns the event and its body's offset.
fn template(body_size: usize, ts: i64) -> (Event, usize) {
    let mut body = vec![b'x'; body_size];
    body[..ID_DIGITS].fill(b'0');
    body[ID_DIGITS] = b':';
    let ts = ts.to_string();
    let e = Event::new([("timestamp", ts.as_str()), ("host", "bench")], body);
    let off = e.encoded_len() - body_size;
    (e, off)
}

/// `k` events numbered from `first`, copies of `tpl` in one buffer.
fn numbered(tpl: &Event, body_off: usize, first: u64, k: usize) -> Vec<Event> {
    let raw = tpl.encoded();
    let len = raw.len();
    let mut buf = BytesMut::with_capacity(len * k);
    for i in 0..k {
        buf.extend_from_slice(raw);
        let at = i * len + body_off;
        write_id(&mut buf[at..at + ID_DIGITS], first + i as u64);
    }
    let frozen = buf.freeze();
    (0..k)
        .map(|i| Event::from_scanned(frozen.slice(i * len..(i + 1) * len), body_off))
        .collect()
}

fn write_id(dst: &mut [u8], mut n: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The event number of a bench body, if it is one.
fn parse_body(b: &[u8], body_size: usize) -> Option<u64> {
    if b.len() != body_size || b[ID_DIGITS] != b':' {
        return None;
    }
    let mut n = 0u64;
    for &d in &b[..ID_DIGITS] {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    b[ID_DIGITS + 1..].iter().all(|&c| c == b'x').then_some(n)
}

/// Runs the benchmark (builds its own runtime).
pub fn run(opts: &HdfsBenchOptions) -> Result<HdfsBenchReport, String> {
    if opts.body_size < 16 {
        return Err(
            "--body-size must be at least 16 for --hdfs (each body carries its number)".into(),
        );
    }
    if opts.events == 0 || opts.call_size == 0 || opts.connections == 0 {
        return Err("--events, --batch-size and --connections must be at least 1".into());
    }
    let props = SystemProps::new();
    let out_dir = opts.dir.join("out");
    let pairs = opts.sink_pairs();
    let sink_ctx = Context::from_pairs(
        "bench.sinks.k1",
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    build_and_run(opts, &props, pairs, out_dir, sink_ctx)
}

fn build_and_run(
    opts: &HdfsBenchOptions,
    props: &SystemProps,
    pairs: Vec<(String, String)>,
    out_dir: PathBuf,
    sink_ctx: Context,
) -> Result<HdfsBenchReport, String> {
    let hdfs_batch: usize = pairs
        .iter()
        .find(|(k, _)| k == "hdfs.batchSize")
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| err("runtime", e))?;
    let mut fc = FileChannelConfig::in_dir(&opts.dir.join("channel"));
    fc.transaction_capacity = hdfs_batch.max(opts.call_size).max(1);
    fc.capacity = fc.capacity.max(opts.events);
    fc.minimum_required_space = 1 << 20;
    let chan: Arc<dyn Channel> =
        Arc::new(FileChannel::open("c1", fc).map_err(|e| err("file channel", e))?);
    let sink =
        HdfsSink::from_context("k1", &sink_ctx, chan.clone()).map_err(|e| err("hdfs sink", e))?;
    let drain_counter = sink.counter();
    let busy_ns = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let timed = TimedSink {
        inner: sink,
        busy_ns: busy_ns.clone(),
        batches: batches.clone(),
    };
    let mut runner = SinkRunner::new("k1", Box::new(DefaultSinkProcessor::new(Box::new(timed))))
        .with_backoff(Duration::from_millis(1), Duration::from_millis(10));
    let mut src = AvroSource::from_context(
        "r1",
        &Context::from_pairs("bench.sources.r1", [("bind", "127.0.0.1"), ("port", "0")]),
        props,
        ChannelProcessor::replicating(vec![chan.clone()]),
        rt.handle().clone(),
    )
    .map_err(|e| err("avro source", e))?;
    src.start().map_err(|e| err("avro source", e))?;
    let addr = src.local_addr().ok_or("the avro source did not bind")?;
    if !opts.staged {
        runner.start().map_err(|e| err("hdfs sink", e))?;
    }

    let ts = crate::clock::now_millis() as i64;
    let (tpl, body_off) = template(opts.body_size, ts);
    let tpl = Arc::new(tpl);
    let conns = opts.connections as u64;
    let per = opts.events / conns;
    let mut cfg = RpcClientConfig::single("127.0.0.1", addr.port());
    cfg.batch_size = opts.call_size;
    let cpu0 = cpu_time();
    let start = Instant::now();
    let sent = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..conns {
            let first = c * per + if c == 0 { 0 } else { opts.events % conns };
            let count = per + if c == 0 { opts.events % conns } else { 0 };
            let (cfg, tpl, call) = (cfg.clone(), tpl.clone(), opts.call_size as u64);
            tasks.push(tokio::spawn(async move {
                let client = NettyAvroClient::connect(&cfg)
                    .await
                    .map_err(|e| err("connect", e))?;
                let mut n = 0u64;
                while n < count {
                    let k = call.min(count - n);
                    let batch = numbered(&tpl, body_off, first + n, k as usize);
                    client
                        .append_batch(&batch)
                        .await
                        .map_err(|e| err("appendBatch", e))?;
                    n += k;
                }
                client.close().await;
                Ok::<u64, String>(n)
            }));
        }
        let mut sent = 0;
        for t in tasks {
            sent += t.await.map_err(|e| err("client task", e))??;
        }
        Ok::<u64, String>(sent)
    });
    let ingest_elapsed = start.elapsed();
    let sent = match sent {
        Ok(s) => s,
        Err(e) => {
            runner.stop();
            src.stop();
            let _ = chan.close();
            return Err(e);
        }
    };
    if opts.staged {
        runner.start().map_err(|e| err("hdfs sink", e))?;
    }
    let end = Instant::now() + opts.deadline;
    let done = Arc::new(AtomicBool::new(false));
    while Instant::now() < end {
        if SinkCounter::get(&drain_counter.event_drain_success) >= sent {
            done.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    runner.stop();
    src.stop();
    let _ = chan.close();
    drop(rt);
    let drained = SinkCounter::get(&drain_counter.event_drain_success);
    let mut report = HdfsBenchReport {
        sent,
        drained,
        elapsed,
        ingest_elapsed,
        sink_busy: Duration::from_nanos(busy_ns.load(Ordering::Relaxed)),
        sink_batches: batches.load(Ordering::Relaxed),
        files: 0,
        file_bytes: 0,
        records: 0,
        distinct: 0,
        duplicates: 0,
        malformed: 0,
        in_use_left: 0,
        settings: {
            let mut s = pairs;
            s.sort();
            s
        },
        staged: opts.staged,
        cpu,
    };
    verify(&out_dir, opts, &mut report)?;
    Ok(report)
}

/// How the files are decoded.
enum Layout {
    Lines { gzip: bool },
    Seq,
}

fn layout(settings: &[(String, String)]) -> Result<Layout, String> {
    let get = |k: &str| {
        settings
            .iter()
            .find(|(sk, _)| sk == k)
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    let ser = get("serializer").unwrap_or_else(|| "text".into());
    let lines = |gzip| {
        if ser == "text" && get("serializer.appendNewline").is_none_or(|v| v == "true") {
            Ok(Layout::Lines { gzip })
        } else {
            Err("the bench verifies the TEXT serializer with newlines only".to_string())
        }
    };
    match get("hdfs.fileType").as_deref() {
        Some("datastream") => lines(false),
        Some("compressedstream") => lines(true),
        Some("sequencefile") | None => Ok(Layout::Seq),
        Some(other) => Err(format!("unknown hdfs.fileType '{other}'")),
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            files_under(&e.path(), out)?;
        } else {
            out.push(e.path());
        }
    }
    Ok(())
}

fn verify(out_dir: &Path, opts: &HdfsBenchOptions, r: &mut HdfsBenchReport) -> Result<(), String> {
    let layout = layout(&r.settings)?;
    let in_use_suffix = r
        .settings
        .iter()
        .find(|(k, _)| k == "hdfs.inUseSuffix")
        .map_or(".tmp", |(_, v)| v.as_str())
        .to_string();
    let mut files = Vec::new();
    files_under(out_dir, &mut files).map_err(|e| err("listing the output", e))?;
    files.sort();
    let mut seen = vec![false; opts.events as usize];
    let body_size = opts.body_size;
    let mut on_body = |b: &[u8], r: &mut HdfsBenchReport| {
        r.records += 1;
        match parse_body(b, body_size) {
            Some(n) if (n as usize) < seen.len() => {
                if std::mem::replace(&mut seen[n as usize], true) {
                    r.duplicates += 1;
                } else {
                    r.distinct += 1;
                }
            }
            _ => r.malformed += 1,
        }
    };
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !in_use_suffix.is_empty() && name.ends_with(&in_use_suffix) {
            r.in_use_left += 1;
            continue;
        }
        let raw = std::fs::read(&f).map_err(|e| err(&format!("reading {}", f.display()), e))?;
        r.files += 1;
        r.file_bytes += raw.len() as u64;
        match layout {
            Layout::Lines { gzip } => {
                let data = if gzip {
                    let mut d = Vec::new();
                    flate2::read::MultiGzDecoder::new(&raw[..])
                        .read_to_end(&mut d)
                        .map_err(|e| err(&format!("gunzip {}", f.display()), e))?;
                    d
                } else {
                    raw
                };
                let mut rest = &data[..];
                while !rest.is_empty() {
                    let (line, next) = match rest.iter().position(|&c| c == b'\n') {
                        Some(i) => (&rest[..i], &rest[i + 1..]),
                        None => {
                            r.malformed += 1; // no trailing newline
                            (rest, &rest[rest.len()..])
                        }
                    };
                    on_body(line, r);
                    rest = next;
                }
            }
            Layout::Seq => {
                seq_records(&raw, &mut |b| on_body(b, r))
                    .map_err(|e| format!("{}: {e}", f.display()))?;
            }
        }
    }
    Ok(())
}

fn be_i32(b: &[u8], at: usize) -> Result<i32, String> {
    b.get(at..at + 4)
        .map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("truncated at byte {at}"))
}

/// Hadoop's `WritableUtils.readVLong`: (value, bytes used).
fn read_vlong(b: &[u8], at: usize) -> Result<(i64, usize), String> {
    let first = *b.get(at).ok_or("truncated vint")? as i8;
    if first >= -112 {
        return Ok((i64::from(first), 1));
    }
    let neg = first < -120;
    let n = if neg {
        -(first as i32) - 120
    } else {
        -(first as i32) - 112
    } as usize;
    let mut v: i64 = 0;
    for i in 0..n {
        v = (v << 8) | i64::from(*b.get(at + 1 + i).ok_or("truncated vint")?);
    }
    Ok((if neg { !v } else { v }, n + 1))
}

/// Calls `each` with the value bytes (the body) of every record of an uncompressed SequenceFile.
fn seq_records(b: &[u8], each: &mut dyn FnMut(&[u8])) -> Result<(), String> {
    if b.get(..4) != Some(b"SEQ\x06") {
        return Err("not a SequenceFile (version 6)".into());
    }
    let mut at = 4;
    let mut text_values = false;
    for i in 0..2 {
        let (len, used) = read_vlong(b, at)?;
        at += used;
        let name = b.get(at..at + len as usize).ok_or("truncated class name")?;
        if i == 1 {
            text_values = name == b"org.apache.hadoop.io.Text";
        }
        at += len as usize;
    }
    if b.get(at..at + 2) != Some(&[0, 0]) {
        return Err("compressed SequenceFiles are not verified".into());
    }
    at += 2;
    let meta = be_i32(b, at)?;
    if meta != 0 {
        return Err("SequenceFile metadata is not empty".into());
    }
    at += 4;
    let sync = b.get(at..at + 16).ok_or("truncated sync marker")?;
    at += 16;
    while at < b.len() {
        let rec = be_i32(b, at)?;
        at += 4;
        if rec == -1 {
            if b.get(at..at + 16) != Some(sync) {
                return Err(format!("bad sync marker at byte {at}"));
            }
            at += 16;
            continue;
        }
        let klen = be_i32(b, at)?;
        if rec < klen || klen != 8 {
            return Err(format!("bad record lengths at byte {at}"));
        }
        at += 4;
        let val = b
            .get(at + 8..at + rec as usize)
            .ok_or_else(|| format!("truncated record at byte {at}"))?;
        at += rec as usize;
        let body = if text_values {
            let (len, used) = read_vlong(val, 0)?;
            val.get(used..used + len as usize)
                .ok_or("bad Text length")?
        } else {
            let len = be_i32(val, 0)? as usize;
            val.get(4..4 + len).ok_or("bad BytesWritable length")?
        };
        each(body);
    }
    Ok(())
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::try_from(t).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_bodies_parse_back() {
        let (tpl, off) = template(40, 1);
        let evs = numbered(&tpl, off, 123_456, 3);
        assert_eq!(evs.len(), 3);
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(parse_body(e.body(), 40), Some(123_456 + i as u64));
            assert_eq!(e.header("timestamp").as_deref(), Some("1"));
        }
        assert_eq!(parse_body(b"000000000001:xxxy", 17), None);
        assert_eq!(parse_body(b"000000000001:xxx", 17), None);
    }
}
