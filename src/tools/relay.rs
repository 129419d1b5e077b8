//! The relay scenario: `C` upstream RPC clients → sluicegate hop A (Avro source → durable file
//! channel → Avro sink) → sluicegate hop B (Avro source → memory channel → a verifying
//! consumer). Used by `sluicegate bench --relay` for the throughput figure and by the relay test
//! for correctness: every event arrives exactly once, in order per upstream connection, and the
//! content checksums of what was sent and what arrived are equal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::channel::file::{FileChannel, FileChannelConfig};
use crate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use crate::channel::Channel;
use crate::config::{Context, SystemProps};
use crate::event::Event;
use crate::rpc::client::{NettyAvroClient, RpcClientConfig};
use crate::sink::avro::AvroSink;
use crate::sink::processor::DefaultSinkProcessor;
use crate::sink::runner::SinkRunner;
use crate::sink::Sink;
use crate::source::avro::AvroSource;
use crate::source::{ChannelProcessor, Source};

/// What to relay.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Total events (split evenly over the connections).
    pub events: u64,
    /// Body size in bytes (at least 16).
    pub body_size: usize,
    /// Events per appendBatch, upstream and for hop A's sink.
    pub batch_size: usize,
    /// Upstream connections.
    pub connections: usize,
    /// Avro sinks draining hop A's channel (competing consumers, as in Flume). Order per
    /// upstream connection is only guaranteed, and only checked, with one sink.
    pub sinks: usize,
    /// Where hop A's file channel lives.
    pub dir: std::path::PathBuf,
    /// How long to wait for the last events to arrive downstream.
    pub deadline: Duration,
}

/// What arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayReport {
    /// Events sent upstream (each answered `OK`).
    pub sent: u64,
    /// Events that reached hop B's consumer.
    pub received: u64,
    /// Events that arrived twice, or (with one sink) out of order for their connection.
    pub out_of_order: u64,
    /// Order-independent checksum of the (connection, seq, body) triples sent.
    pub sent_checksum: u64,
    /// The same checksum over what arrived.
    pub received_checksum: u64,
    /// From the first send to the last arrival.
    pub elapsed: Duration,
    /// From the first send to the last upstream `OK` (hop A's ingest alone).
    pub upstream_elapsed: Duration,
    /// CPU time (user + system) the whole process used from the first send until the last
    /// arrival: both hops, the upstream clients and the verifier.
    pub cpu: Duration,
}

impl RelayReport {
    /// Events per second end to end.
    pub fn events_per_sec(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for RelayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "relay: sent {} received {} out-of-order {} checksums {} in {:.3} s: {:.0} events/s end to end \
             (upstream done after {:.3} s; {:.2} CPU-s, {:.2} cores busy)",
            self.sent,
            self.received,
            self.out_of_order,
            if self.sent_checksum == self.received_checksum { "equal" } else { "DIFFER" },
            self.elapsed.as_secs_f64(),
            self.events_per_sec(),
            self.upstream_elapsed.as_secs_f64(),
            self.cpu.as_secs_f64(),
            self.cpu.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9),
        )
    }
}

fn mix(conn: u64, seq: u64, body: &[u8]) -> u64 {
    let c = crc32c::crc32c(body) as u64;
    // A 64-bit mix of the triple; summed (wrapping) so the total is order independent.
    let mut x = conn.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ seq.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (c << 17);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

fn make_event(conn: u64, seq: u64, body_size: usize) -> Event {
    let mut body = vec![b'x'; body_size.max(16)];
    let tag = format!("{conn}:{seq}:");
    body[..tag.len()].copy_from_slice(tag.as_bytes());
    Event::new(
        [
            ("conn", conn.to_string()),
            ("seq", seq.to_string()),
            ("host", "relay".to_string()),
        ],
        body,
    )
}

fn parse_u64(v: Option<std::borrow::Cow<'_, str>>) -> Option<u64> {
    v.and_then(|s| s.parse().ok())
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// Runs the relay and reports what arrived.
pub fn run_relay(opts: &RelayOptions) -> Result<RelayReport, String> {
    let props = SystemProps::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| err("runtime", e))?;
    let local = |name: &str| {
        Context::from_pairs(
            format!("relay.sources.{name}"),
            [("bind", "127.0.0.1"), ("port", "0")],
        )
    };

    // Hop B: source -> memory channel -> verifying consumer.
    let chan_b = Arc::new(MemoryChannel::new(
        "b",
        MemoryChannelConfig {
            capacity: 200_000,
            transaction_capacity: 20_000,
            ..Default::default()
        },
    ));
    let mut src_b = AvroSource::from_context(
        "hopB",
        &local("hopB"),
        &props,
        ChannelProcessor::replicating(vec![chan_b.clone() as Arc<dyn Channel>]),
        rt.handle().clone(),
    )
    .map_err(|e| err("hop B source", e))?;
    src_b.start().map_err(|e| err("hop B source", e))?;
    let addr_b = src_b.local_addr().ok_or("hop B did not bind")?;

    let connections = opts.connections.max(1) as u64;
    let per_conn = opts.events / connections;
    let total = per_conn * connections;
    let single_sink = opts.sinks <= 1;
    let stop = Arc::new(AtomicBool::new(false));
    let verdict = Arc::new(Mutex::new((0u64, 0u64, 0u64, None::<Instant>))); // received, out_of_order, checksum, last
    let consumer = {
        let (chan, stop, verdict) = (chan_b.clone(), stop.clone(), verdict.clone());
        std::thread::Builder::new()
            .name("relay-verify".into())
            .spawn(move || {
                let mut next = vec![0u64; connections as usize];
                let mut seen: Vec<Vec<bool>> =
                    vec![vec![false; per_conn as usize]; connections as usize];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(batch) = chan.take_batch(20_000, Duration::from_millis(20)) else {
                        continue;
                    };
                    if batch.is_empty() {
                        continue;
                    }
                    // Poison: only this thread writes the verdict (the readers below cannot
                    // panic under the lock), so it can only be poisoned by this thread itself.
                    let mut v = verdict.lock().unwrap_or_else(|e| e.into_inner());
                    for e in batch.events() {
                        let (Some(c), Some(s)) =
                            (parse_u64(e.header("conn")), parse_u64(e.header("seq")))
                        else {
                            v.1 += 1;
                            continue;
                        };
                        let fresh = seen
                            .get_mut(c as usize)
                            .and_then(|v| v.get_mut(s as usize))
                            .map(|slot| !std::mem::replace(slot, true))
                            .unwrap_or(false);
                        let in_order = match next.get_mut(c as usize) {
                            Some(n) if *n == s => {
                                *n += 1;
                                true
                            }
                            _ => false,
                        };
                        if !fresh || (single_sink && !in_order) {
                            v.1 += 1;
                        }
                        v.0 += 1;
                        v.2 = v.2.wrapping_add(mix(c, s, e.body()));
                    }
                    v.3 = Some(Instant::now());
                    drop(v);
                    let _ = batch.commit();
                }
            })
            .map_err(|e| err("verifier thread", e))?
    };

    // Hop A: source -> file channel -> avro sink -> hop B.
    let mut fc = FileChannelConfig::in_dir(&opts.dir);
    fc.transaction_capacity = opts.batch_size.max(1) * 2;
    fc.minimum_required_space = 1 << 20;
    let chan_a: Arc<dyn Channel> =
        Arc::new(FileChannel::open("a", fc).map_err(|e| err("hop A file channel", e))?);
    let mut src_a = AvroSource::from_context(
        "hopA",
        &local("hopA"),
        &props,
        ChannelProcessor::replicating(vec![chan_a.clone()]),
        rt.handle().clone(),
    )
    .map_err(|e| err("hop A source", e))?;
    src_a.start().map_err(|e| err("hop A source", e))?;
    let addr_a = src_a.local_addr().ok_or("hop A did not bind")?;
    let port_b = addr_b.port().to_string();
    let batch = opts.batch_size.to_string();
    let sink_ctx = Context::from_pairs(
        "relay.sinks.k1",
        [
            ("hostname", "127.0.0.1"),
            ("port", port_b.as_str()),
            ("batch-size", batch.as_str()),
        ],
    );
    let mut runners = Vec::new();
    for k in 0..opts.sinks.max(1) {
        let name = format!("k{k}");
        let sink: Box<dyn Sink> = Box::new(
            AvroSink::from_context(
                &name,
                &sink_ctx,
                &props,
                chan_a.clone(),
                rt.handle().clone(),
            )
            .map_err(|e| err("hop A sink", e))?,
        );
        let mut runner = SinkRunner::new(name, Box::new(DefaultSinkProcessor::new(sink)))
            .with_backoff(Duration::from_millis(10), Duration::from_millis(100));
        runner.start().map_err(|e| err("hop A sink", e))?;
        runners.push(runner);
    }

    // Upstream: one client per connection, sequential calls, events pre-built (before the clock
    // starts: building them is the test harness's work, not the relay's).
    let mut sent_checksum = 0u64;
    let mut batches_per_conn = Vec::new();
    for c in 0..connections {
        let mut batches = Vec::new();
        let mut seq = 0;
        while seq < per_conn {
            let n = (opts.batch_size as u64).min(per_conn - seq);
            let b: Vec<Event> = (seq..seq + n)
                .map(|s| make_event(c, s, opts.body_size))
                .collect();
            for (i, e) in b.iter().enumerate() {
                sent_checksum = sent_checksum.wrapping_add(mix(c, seq + i as u64, e.body()));
            }
            batches.push(b);
            seq += n;
        }
        batches_per_conn.push(batches);
    }
    let client_cfg = {
        let mut c = RpcClientConfig::single("127.0.0.1", addr_a.port());
        c.batch_size = opts.batch_size.max(1);
        c
    };
    let cpu0 = cpu_time();
    let start = Instant::now();
    let sent = rt.block_on(async {
        let mut tasks = Vec::new();
        for batches in batches_per_conn {
            let cfg = client_cfg.clone();
            tasks.push(tokio::spawn(async move {
                let client = NettyAvroClient::connect(&cfg)
                    .await
                    .map_err(|e| err("upstream connect", e))?;
                let mut n = 0u64;
                for b in &batches {
                    client
                        .append_batch(b)
                        .await
                        .map_err(|e| err("upstream appendBatch", e))?;
                    n += b.len() as u64;
                }
                client.close().await;
                // Hand the events back: freeing a million of them is the harness's work and
                // must not compete with the relay inside the measured window.
                Ok::<_, String>((n, batches))
            }));
        }
        let mut sent = 0;
        let mut keep = Vec::new();
        for t in tasks {
            let (n, batches) = t.await.map_err(|e| err("upstream task", e))??;
            sent += n;
            keep.push(batches);
        }
        Ok::<_, String>((sent, keep))
    })?;
    let (sent, sent_events) = sent;
    let upstream_done = start.elapsed();

    // Wait until hop B has everything (or the deadline passes).
    let end = Instant::now() + opts.deadline;
    while Instant::now() < end {
        // A poisoned verdict means the consumer panicked: stop waiting, reported below.
        match verdict.lock() {
            Ok(v) if v.0 < total => {}
            _ => break,
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu = cpu_time().saturating_sub(cpu0);
    drop(sent_events);
    for mut r in runners {
        r.stop();
    }
    src_a.stop();
    src_b.stop();
    stop.store(true, Ordering::Relaxed);
    let _ = consumer.join();
    let _ = chan_a.close();
    // The consumer panicked mid-count: its verdict would be a wrong measurement.
    let v = *verdict
        .lock()
        .map_err(|_| "the consumer thread panicked; no verdict".to_string())?;
    Ok(RelayReport {
        sent,
        received: v.0,
        out_of_order: v.1,
        sent_checksum,
        received_checksum: v.2,
        elapsed: v.3.unwrap_or_else(Instant::now).duration_since(start),
        upstream_elapsed: upstream_done,
        cpu,
    })
}

/// User + system CPU time of this process so far, all threads (`CLOCK_PROCESS_CPUTIME_ID`).
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::try_from(t).unwrap_or(Duration::ZERO)
}
