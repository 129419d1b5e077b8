//! `bench`: a load generator for Avro sources (sluicegate's or Flume's).
//!
//! Pushes `events` events with `body_size`-byte bodies and `headers` headers, in `appendBatch`
//! calls of `batch_size`, over `connections` parallel connections (each waits for its Status
//! before the next call, as a Flume sink does) to `target`, and reports events/s, MB/s (body
//! bytes, 10^6) and call latency percentiles.
//!
//! Hot path: the events are encoded **once** before the clock starts (one template batch shared by
//! every connection); each call only copies the pre-encoded bytes into one request buffer. Latencies
//! go into a pre-sized vector per connection. The clock covers connecting too (reported
//! separately as `connect_time`).
//!
//! **Closed loop** (the default): each connection sends its next call as soon as the previous
//! one is answered, so the figure is the throughput the target sustains.
//!
//! **Open loop** (`rate` set, events/s): call `k` of the run is *scheduled* at
//! `start + k × batch_size / rate`, whether or not earlier calls have returned; calls are dealt
//! to the connections round-robin. A call's latency is measured from its scheduled time, not
//! from when a free connection finally sent it, so a stall shows as the latency every call
//! queued behind it experienced (no coordinated omission, as in wrk2 or HdrHistogram's
//! corrected mode). Use it to measure ack latency at a given load.
//!
//! **Progress**: with `progress` set, an `indicatif` bar on stderr shows delivered events and
//! the live rate (it draws nothing when stderr is not a terminal).
//!
//! The in-process mode ([`run_in_process_matching`]) starts an Avro source itself; the client
//! settings the source must agree with (`compression-type`) are applied to it, settings it
//! cannot honour (`ssl`) are refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{Context, SystemProps};
use crate::event::Event;
use crate::rpc::client::{NettyAvroClient, RpcClientConfig, RpcClientError};

/// What to send.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The Avro source.
    pub target: SocketAddr,
    /// Total events.
    pub events: u64,
    /// Body size in bytes.
    pub body_size: usize,
    /// Headers per event (`h0=v0`, `h1=v1`, ...).
    pub headers: usize,
    /// Events per `appendBatch`.
    pub batch_size: usize,
    /// Parallel connections.
    pub connections: usize,
    /// Extra RPC client settings (`compression-type`, `ssl`, `trust-all-certs`, `request-timeout`, ...).
    pub client_settings: Vec<(String, String)>,
    /// Open loop: the offered load in events/s (`None`: closed loop, as fast as acknowledged).
    pub rate: Option<f64>,
    /// Draw a progress bar with the live rate on stderr (when it is a terminal).
    pub progress: bool,
}

impl BenchOptions {
    /// 100,000 events of 256 bytes, 2 headers, batches of 100, 1 connection.
    pub fn new(target: SocketAddr) -> BenchOptions {
        BenchOptions {
            target,
            events: 100_000,
            body_size: 256,
            headers: 2,
            batch_size: 100,
            connections: 1,
            client_settings: Vec::new(),
            rate: None,
            progress: false,
        }
    }
}

/// Call latency percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Slowest call.
    pub max: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Events delivered (Status OK).
    pub events: u64,
    /// Calls made.
    pub calls: u64,
    /// Body bytes delivered.
    pub body_bytes: u64,
    /// Encoded event bytes delivered (what crosses the wire before framing/compression).
    pub encoded_bytes: u64,
    /// Time to open all connections.
    pub connect_time: Duration,
    /// Wall time from the first connect to the last reply.
    pub elapsed: Duration,
    /// Events per second.
    pub events_per_sec: f64,
    /// Body megabytes (10^6) per second.
    pub mb_per_sec: f64,
    /// Per-call latency (open loop: from each call's scheduled time).
    pub latency: Latency,
    /// Calls that failed (a run stops at the first failure, so a finished run has 0).
    pub errors: u64,
    /// The offered load of an open-loop run, events/s.
    pub rate: Option<f64>,
}

impl BenchReport {
    /// The summary table `sluicegate bench` prints.
    pub fn table(&self) -> String {
        let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
        let mut rows: Vec<(&str, String)> = vec![
            ("events", self.events.to_string()),
            ("calls", self.calls.to_string()),
            ("elapsed", format!("{:.3} s", self.elapsed.as_secs_f64())),
            ("events/s", format!("{:.0}", self.events_per_sec)),
            ("MB/s (body)", format!("{:.2}", self.mb_per_sec)),
        ];
        if let Some(r) = self.rate {
            rows.push(("offered events/s", format!("{r:.0}")));
        }
        rows.extend([
            ("latency p50", ms(self.latency.p50)),
            ("latency p90", ms(self.latency.p90)),
            ("latency p99", ms(self.latency.p99)),
            ("latency p99.9", ms(self.latency.p999)),
            ("latency max", ms(self.latency.max)),
            ("errors", self.errors.to_string()),
        ]);
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let v = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, val)| format!("{k:<w$}  {val:>v$}\n"))
            .collect()
    }

    /// The report as one JSON object (`sluicegate bench --json`); durations in microseconds.
    pub fn to_json(&self) -> serde_json::Value {
        let us = |d: Duration| d.as_micros() as u64;
        serde_json::json!({
            "events": self.events,
            "calls": self.calls,
            "body_bytes": self.body_bytes,
            "encoded_bytes": self.encoded_bytes,
            "connect_time_us": us(self.connect_time),
            "elapsed_us": us(self.elapsed),
            "events_per_sec": self.events_per_sec,
            "mb_per_sec": self.mb_per_sec,
            "offered_events_per_sec": self.rate,
            "latency_us": {
                "p50": us(self.latency.p50),
                "p90": us(self.latency.p90),
                "p99": us(self.latency.p99),
                "p99.9": us(self.latency.p999),
                "max": us(self.latency.max),
            },
            "errors": self.errors,
        })
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events in {} calls, {:.3} s: {:.0} events/s, {:.2} MB/s; latency p50 {:?} p90 {:?} \
             p99 {:?} p99.9 {:?} max {:?}",
            self.events,
            self.calls,
            self.elapsed.as_secs_f64(),
            self.events_per_sec,
            self.mb_per_sec,
            self.latency.p50,
            self.latency.p90,
            self.latency.p99,
            self.latency.p999,
            self.latency.max
        )
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad options.
    #[error("invalid bench option: {0}")]
    Config(String),
    /// A connection or call failed (the run stops at the first failure).
    #[error("bench failed after {delivered} events: {source}")]
    Rpc {
        /// Events delivered by all connections before the failure.
        delivered: u64,
        /// Cause.
        source: RpcClientError,
    },
}

/// The template batch: `n` events, each with `headers` headers and a `body_size` body.
pub fn template_events(n: usize, body_size: usize, headers: usize) -> Vec<Event> {
    let body = vec![b'x'; body_size];
    let hs: Vec<(String, String)> = (0..headers)
        .map(|i| (format!("h{i}"), format!("v{i}")))
        .collect();
    (0..n)
        .map(|_| Event::new(hs.iter().map(|(k, v)| (k.as_str(), v.as_str())), &body))
        .collect()
}

fn percentile(sorted: &[u32], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    Duration::from_micros(u64::from(sorted[i]))
}

/// Refuses options that cannot run: zero batch size, connections or events, a rate that is not
/// a positive number.
pub fn validate(opts: &BenchOptions) -> Result<(), BenchError> {
    if opts.batch_size == 0 {
        return Err(BenchError::Config("--batch-size must be at least 1".into()));
    }
    if opts.connections == 0 {
        return Err(BenchError::Config(
            "--connections must be at least 1".into(),
        ));
    }
    if opts.events == 0 {
        return Err(BenchError::Config("--events must be at least 1".into()));
    }
    if let Some(r) = opts.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err(BenchError::Config(format!(
                "--rate must be a positive number of events/s, got {r}"
            )));
        }
    }
    Ok(())
}

/// Runs the benchmark inside the current tokio runtime.
pub async fn run(opts: &BenchOptions, props: &SystemProps) -> Result<BenchReport, BenchError> {
    validate(opts)?;
    let hp = opts.target.to_string();
    let bs = opts.batch_size.to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("hosts", "h1"),
        ("hosts.h1", hp.as_str()),
        ("batch-size", bs.as_str()),
    ];
    pairs.extend(
        opts.client_settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let cfg = RpcClientConfig::from_context(&Context::from_pairs("bench", pairs), props)
        .map_err(|e| BenchError::Config(e.to_string()))?;
    let template = Arc::new(template_events(
        opts.batch_size.min(opts.events.max(1) as usize),
        opts.body_size,
        opts.headers,
    ));
    let remaining = Arc::new(AtomicU64::new(opts.events));
    let delivered = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut clients = Vec::with_capacity(opts.connections);
    for _ in 0..opts.connections {
        let c = NettyAvroClient::connect(&cfg)
            .await
            .map_err(|source| BenchError::Rpc {
                delivered: 0,
                source,
            })?;
        clients.push(c);
    }
    let connect_time = start.elapsed();
    let per_conn_calls =
        (opts.events / opts.batch_size as u64 / opts.connections as u64 + 2) as usize;
    let bar = opts.progress.then(|| progress_bar(opts.events));
    let ticker = bar.clone().map(|bar| {
        let delivered = delivered.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(delivered.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    // Open loop: call k (counted over the whole run) is due at `sched_start + k × period`.
    let period = opts
        .rate
        .map(|r| Duration::from_secs_f64(opts.batch_size as f64 / r));
    let sched_start = tokio::time::Instant::now();
    let call_no = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let (template, remaining, delivered, call_no) = (
            template.clone(),
            remaining.clone(),
            delivered.clone(),
            call_no.clone(),
        );
        let batch = opts.batch_size as u64;
        tasks.spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(per_conn_calls);
            while let Ok(prev) = remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                (r > 0).then(|| r.saturating_sub(batch))
            }) {
                let k = prev.min(batch) as usize;
                let t = match period {
                    Some(p) => {
                        let n = call_no.fetch_add(1, Ordering::SeqCst);
                        let due = sched_start + p.saturating_mul(n.min(u64::from(u32::MAX)) as u32);
                        tokio::time::sleep_until(due).await;
                        due.into_std()
                    }
                    None => Instant::now(),
                };
                if let Err(e) = client.append_batch(&template[..k]).await {
                    client.close().await;
                    return Err(e);
                }
                lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                delivered.fetch_add(k as u64, Ordering::SeqCst);
            }
            client.close().await;
            Ok(lat)
        });
    }
    let mut all: Vec<u32> = Vec::new();
    let mut failure = None;
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(lat)) => all.extend(lat),
            Ok(Err(e)) => {
                failure.get_or_insert(e);
                // Stop the other connections: nothing more to claim.
                remaining.store(0, Ordering::SeqCst);
            }
            Err(join) => {
                return Err(BenchError::Config(format!("bench task failed: {join}")));
            }
        }
    }
    let elapsed = start.elapsed();
    let events = delivered.load(Ordering::SeqCst);
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = bar {
        bar.set_position(events);
        bar.finish_and_clear();
    }
    if let Some(source) = failure {
        return Err(BenchError::Rpc {
            delivered: events,
            source,
        });
    }
    all.sort_unstable();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let body_bytes = events * opts.body_size as u64;
    let per_event = template.first().map_or(0, |e| e.encoded_len() as u64);
    Ok(BenchReport {
        events,
        calls: all.len() as u64,
        body_bytes,
        encoded_bytes: events * per_event,
        connect_time,
        elapsed,
        events_per_sec: events as f64 / secs,
        mb_per_sec: body_bytes as f64 / 1e6 / secs,
        latency: Latency {
            p50: percentile(&all, 0.50),
            p90: percentile(&all, 0.90),
            p99: percentile(&all, 0.99),
            p999: percentile(&all, 0.999),
            max: all
                .last()
                .map_or(Duration::ZERO, |&m| Duration::from_micros(u64::from(m))),
        },
        errors: 0,
        rate: opts.rate,
    })
}

fn progress_bar(events: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(events),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {human_pos}/{human_len} events  {rate}  eta {eta}",
    ) {
        bar.set_style(style.with_key(
            "rate",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} events/s", s.per_sec());
            },
        ));
    }
    bar
}

/// Runs the benchmark on a private multi-threaded runtime.
pub fn run_blocking(opts: &BenchOptions, props: &SystemProps) -> Result<BenchReport, BenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Config(format!("cannot start the I/O runtime: {e}")))?;
    rt.block_on(run(opts, props))
}

/// The settings the in-process source needs so that a client configured with
/// `client_settings` can talk to it; settings it cannot honour are refused with the reason.
pub fn source_settings(
    client_settings: &[(String, String)],
) -> Result<Vec<(String, String)>, BenchError> {
    let mut out = Vec::new();
    for (k, v) in client_settings {
        match k.as_str() {
            "compression-type" | "compression-layer-order" => out.push((k.clone(), v.clone())),
            "ssl" if v.trim().eq_ignore_ascii_case("true") => {
                return Err(BenchError::Config(
                    "--set ssl=true needs a TLS source, which the in-process one is not; \
                     point --target at a source with ssl = true"
                        .into(),
                ))
            }
            "hosts" | "hostname" | "port" => {
                return Err(BenchError::Config(format!(
                    "--set {k}: the target is chosen with --target"
                )))
            }
            "batch-size" => {
                return Err(BenchError::Config(
                    "--set batch-size: use --batch-size".into(),
                ))
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Runs `opts` against an Avro source started in this process (its `target` is replaced),
/// configured to match the client settings (see [`source_settings`]).
pub fn run_in_process_matching(
    opts: &BenchOptions,
    props: &SystemProps,
) -> Result<BenchReport, BenchError> {
    validate(opts)?;
    let settings = source_settings(&opts.client_settings)?;
    run_in_process_with(
        &settings,
        |addr| BenchOptions {
            target: addr,
            ..opts.clone()
        },
        props,
    )
}

/// Runs the benchmark against an Avro source started in this process: `127.0.0.1:0`, a memory
/// channel sized for the load, and a thread that drains it (take + commit), so the figure
/// covers framing, decoding, the channel put/commit and the `OK` round trip.
pub fn run_in_process(
    options: impl FnOnce(SocketAddr) -> BenchOptions,
    props: &SystemProps,
) -> Result<BenchReport, BenchError> {
    run_in_process_with(&[], options, props)
}

fn run_in_process_with(
    source_settings: &[(String, String)],
    options: impl FnOnce(SocketAddr) -> BenchOptions,
    props: &SystemProps,
) -> Result<BenchReport, BenchError> {
    use crate::channel::memory::{MemoryChannel, MemoryChannelConfig};
    use crate::channel::Channel;
    use crate::source::{ChannelProcessor, Source};
    use std::sync::atomic::AtomicBool;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Config(format!("cannot start the I/O runtime: {e}")))?;
    let channel = Arc::new(MemoryChannel::new(
        "bench",
        MemoryChannelConfig {
            capacity: 1_000_000,
            transaction_capacity: 100_000,
            ..Default::default()
        },
    ));
    let mut pairs: Vec<(&str, &str)> = vec![("bind", "127.0.0.1"), ("port", "0")];
    pairs.extend(
        source_settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let ctx = Context::from_pairs("bench.sources.r1", pairs);
    let processor = ChannelProcessor::replicating(vec![channel.clone() as Arc<dyn Channel>]);
    let mut source = crate::source::avro::AvroSource::from_context(
        "r1",
        &ctx,
        props,
        processor,
        rt.handle().clone(),
    )
    .map_err(|e| BenchError::Config(e.to_string()))?;
    source
        .start()
        .map_err(|e| BenchError::Config(e.to_string()))?;
    let addr = source
        .local_addr()
        .ok_or_else(|| BenchError::Config("the in-process source did not bind".into()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let drain = {
        let (channel, stop) = (channel.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(batch) = channel.take_batch(100_000, Duration::from_millis(50)) {
                    let _ = batch.commit();
                }
            }
        })
    };
    let opts = options(addr);
    let report = rt.block_on(run(&opts, props));
    source.stop();
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_micros(500));
        assert_eq!(percentile(&v, 0.99), Duration::from_micros(990));
        assert_eq!(percentile(&v, 0.999), Duration::from_micros(999));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
        assert_eq!(percentile(&[7], 0.999), Duration::from_micros(7));
    }

    #[test]
    fn in_process_source_matches_or_refuses_client_settings() {
        let kv = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(
            source_settings(&kv("compression-type", "deflate")).unwrap(),
            kv("compression-type", "deflate")
        );
        assert!(source_settings(&kv("request-timeout", "5000"))
            .unwrap()
            .is_empty());
        let e = source_settings(&kv("ssl", "true")).unwrap_err().to_string();
        assert!(e.contains("--target"), "{e}");
        let e = source_settings(&kv("batch-size", "5"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--batch-size"), "{e}");
    }

    #[test]
    fn table_and_json_carry_every_figure() {
        let r = BenchReport {
            events: 1000,
            calls: 10,
            body_bytes: 256_000,
            encoded_bytes: 300_000,
            connect_time: Duration::from_millis(1),
            elapsed: Duration::from_millis(500),
            events_per_sec: 2000.0,
            mb_per_sec: 0.512,
            latency: Latency {
                p50: Duration::from_micros(100),
                p90: Duration::from_micros(200),
                p99: Duration::from_micros(300),
                p999: Duration::from_micros(400),
                max: Duration::from_micros(500),
            },
            errors: 0,
            rate: Some(2000.0),
        };
        let t = r.table();
        for row in [
            "events  ",
            "events/s",
            "MB/s (body)",
            "latency p99.9",
            "0.400 ms",
            "errors",
            "offered events/s",
        ] {
            assert!(t.contains(row), "{row} missing in\n{t}");
        }
        assert!(t.ends_with('\n'));
        let j = r.to_json();
        assert_eq!(j["latency_us"]["p99.9"], 400);
        assert_eq!(j["events"], 1000);
        assert_eq!(j["errors"], 0);
    }

    #[test]
    fn template_shape() {
        let t = template_events(3, 10, 2);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].body(), &[b'x'; 10]);
        assert_eq!(t[0].header("h1").as_deref(), Some("v1"));
    }
}
