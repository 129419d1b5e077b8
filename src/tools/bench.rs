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
//! The in-process mode ("start a server myself when no target is given") belongs to the caller:
//! start a source, then pass its address here.

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
    /// Per-call latency.
    pub latency: Latency,
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

/// Runs the benchmark inside the current tokio runtime.
pub async fn run(opts: &BenchOptions, props: &SystemProps) -> Result<BenchReport, BenchError> {
    if opts.batch_size == 0 || opts.connections == 0 {
        return Err(BenchError::Config(
            "batch size and connections must be at least 1".into(),
        ));
    }
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
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let (template, remaining, delivered) =
            (template.clone(), remaining.clone(), delivered.clone());
        let batch = opts.batch_size as u64;
        tasks.spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(per_conn_calls);
            while let Ok(prev) = remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                (r > 0).then(|| r.saturating_sub(batch))
            }) {
                let k = prev.min(batch) as usize;
                let t = Instant::now();
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
    })
}

/// Runs the benchmark on a private multi-threaded runtime.
pub fn run_blocking(opts: &BenchOptions, props: &SystemProps) -> Result<BenchReport, BenchError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::Config(format!("cannot start the I/O runtime: {e}")))?;
    rt.block_on(run(opts, props))
}

/// Runs the benchmark against an Avro source started in this process: `127.0.0.1:0`, a memory
/// channel sized for the load, and a thread that drains it (take + commit), so the figure
/// covers framing, decoding, the channel put/commit and the `OK` round trip.
pub fn run_in_process(
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
    let ctx = Context::from_pairs("bench.sources.r1", [("bind", "127.0.0.1"), ("port", "0")]);
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
    fn template_shape() {
        let t = template_events(3, 10, 2);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].body(), &[b'x'; 10]);
        assert_eq!(t[0].header("h1").as_deref(), Some("v1"));
    }
}
