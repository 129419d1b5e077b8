//! The Avro sink (with a memory channel and a sink runner) against a downstream that misbehaves:
//! not listening at start, killed and restarted mid-stream, answering FAILED, stalling past
//! `request-timeout`, sending garbage. In every case, after recovery the downstream holds every
//! event at least once and in order, the channel held the rest meanwhile, and the counters say
//! what happened.

mod rpc_client_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rpc_client_common::{dead_port, numbered, runtime, server_transport, Mode, TestServer};
use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::clock::ManualClock;
use sluicegate::config::{Context, SystemProps};
use sluicegate::metrics::SinkCounter;
use sluicegate::sink::avro::AvroSink;
use sluicegate::sink::processor::DefaultSinkProcessor;
use sluicegate::sink::runner::SinkRunner;
use sluicegate::sink::Sink;

struct Rig {
    channel: Arc<MemoryChannel>,
    counter: Arc<SinkCounter>,
    runner: SinkRunner,
}

fn rig(rt: &tokio::runtime::Runtime, port: u16, batch: usize) -> Rig {
    let channel = Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: 10_000,
            transaction_capacity: 1000,
            ..MemoryChannelConfig::default()
        },
    ));
    let port = port.to_string();
    let batch = batch.to_string();
    let ctx = Context::from_pairs(
        "a1.sinks.k1",
        [
            ("hostname", "127.0.0.1"),
            ("port", port.as_str()),
            ("batch-size", batch.as_str()),
            ("connect-timeout", "1000"),
            ("request-timeout", "1000"),
            ("reconnect-backoff-initial", "20"),
            ("reconnect-backoff-max", "200"),
        ],
    );
    let sink = AvroSink::from_context(
        "k1",
        &ctx,
        &SystemProps::new(),
        channel.clone(),
        rt.handle().clone(),
    )
    .unwrap();
    let counter = sink.counter();
    let runner = SinkRunner::new("k1", Box::new(DefaultSinkProcessor::new(Box::new(sink))))
        .with_backoff(Duration::from_millis(10), Duration::from_millis(50));
    Rig {
        channel,
        counter,
        runner,
    }
}

fn c(counter: &std::sync::atomic::AtomicU64) -> u64 {
    SinkCounter::get(counter)
}

fn wait(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cond(), "timed out after {within:?} waiting for: {what}");
}

/// Every body `prefix-0..n` appears, and their first occurrences are in order.
fn assert_at_least_once_in_order(bodies: &[String], prefix: &str, n: usize) {
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<&String> = bodies.iter().filter(|b| seen.insert(b.as_str())).collect();
    let want: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let got: Vec<String> = firsts.into_iter().cloned().collect();
    assert_eq!(got, want, "first deliveries must be every event, in order");
}

#[test]
fn downstream_not_listening_at_start() {
    let rt = runtime();
    // Reserved and refusing until the server below listens on it (the socket is held all along).
    let (_held, port) = dead_port();
    let mut r = rig(&rt, port, 10);
    r.channel.put_batch(&numbered("e", 35)).unwrap();
    r.runner.start().unwrap();
    wait("connection failures", Duration::from_secs(10), || {
        c(&r.counter.connection_failed) >= 3
    });
    assert_eq!(
        r.channel.size(),
        35,
        "nothing leaves the channel while unreachable"
    );
    assert_eq!(c(&r.counter.event_drain_attempt), 0);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = rt.block_on(TestServer::start_with(
        addr,
        Mode::Ok,
        server_transport(false, false, "zlib-outside"),
    ));
    wait("all events delivered", Duration::from_secs(15), || {
        server.event_count() >= 35 && r.channel.size() == 0
    });
    r.runner.stop();
    assert_eq!(
        server.bodies(),
        (0..35).map(|i| format!("e-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(c(&r.counter.connection_created), 1);
    assert_eq!(c(&r.counter.event_drain_success), 35);
    assert_eq!(c(&r.counter.batch_complete), 3);
    assert_eq!(c(&r.counter.batch_underflow), 1);
    assert_eq!(c(&r.counter.event_write_fail), 0);
    assert_eq!(c(&r.counter.connection_closed), 1, "closed once at stop");
    rt.block_on(server.stop());
}

#[test]
fn downstream_killed_and_restarted_mid_stream() {
    let rt = runtime();
    let first = rt.block_on(TestServer::start(Mode::Ok));
    let addr = first.addr();
    let mut r = rig(&rt, addr.port(), 10);
    let events = numbered("e", 60);
    r.channel.put_batch(&events[..20]).unwrap();
    r.runner.start().unwrap();
    wait("first 20 delivered", Duration::from_secs(10), || {
        first.event_count() >= 20 && r.channel.size() == 0
    });
    let got_first = first.bodies();
    rt.block_on(first.stop());
    r.channel.put_batch(&events[20..]).unwrap();
    wait(
        "the sink notices the dead downstream",
        Duration::from_secs(10),
        || c(&r.counter.event_write_fail) + c(&r.counter.connection_failed) >= 2,
    );
    assert_eq!(
        r.channel.size(),
        40,
        "undelivered events stay in the channel"
    );
    let second = rt.block_on(TestServer::start_with(
        addr,
        Mode::Ok,
        server_transport(false, false, "zlib-outside"),
    ));
    wait("the rest delivered", Duration::from_secs(15), || {
        r.channel.size() == 0 && second.event_count() >= 40
    });
    r.runner.stop();
    let mut all = got_first;
    all.extend(second.bodies());
    assert_at_least_once_in_order(&all, "e", 60);
    assert_eq!(c(&r.counter.event_drain_success), 60);
    assert!(c(&r.counter.connection_created) >= 2);
    assert!(c(&r.counter.connection_closed) >= 2);
    rt.block_on(second.stop());
}

#[test]
fn downstream_answering_failed() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Mode::FailFirst(3)));
    let mut r = rig(&rt, server.port(), 10);
    r.channel.put_batch(&numbered("e", 30)).unwrap();
    r.runner.start().unwrap();
    wait("all delivered", Duration::from_secs(15), || {
        server.event_count() >= 30 && r.channel.size() == 0
    });
    r.runner.stop();
    // FAILED stores nothing, so the downstream holds each event exactly once, in order.
    assert_eq!(
        server.bodies(),
        (0..30).map(|i| format!("e-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(server.state.lock().unwrap().failed_calls, 3);
    assert_eq!(c(&r.counter.event_write_fail), 3);
    assert_eq!(
        c(&r.counter.connection_created),
        4,
        "a new connection after each FAILED"
    );
    assert_eq!(
        c(&r.counter.connection_closed),
        4,
        "3 after FAILED + 1 at stop"
    );
    assert_eq!(
        c(&r.counter.event_drain_attempt),
        60,
        "3 failed attempts of 10 + 30"
    );
    assert_eq!(c(&r.counter.event_drain_success), 30);
    assert_eq!(server.connection_count(), 4);
    rt.block_on(server.stop());
}

#[test]
fn downstream_stalling_past_request_timeout() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Mode::Stall));
    let mut r = rig(&rt, server.port(), 10);
    r.channel.put_batch(&numbered("e", 25)).unwrap();
    r.runner.start().unwrap();
    wait("a timed-out batch", Duration::from_secs(10), || {
        c(&r.counter.event_write_fail) >= 1
    });
    assert_eq!(r.channel.size(), 25, "the timed-out batch was rolled back");
    assert_eq!(c(&r.counter.event_drain_success), 0);
    server.set_mode(Mode::Ok);
    wait("all delivered", Duration::from_secs(15), || {
        server.event_count() >= 25 && r.channel.size() == 0
    });
    r.runner.stop();
    assert_eq!(
        server.bodies(),
        (0..25).map(|i| format!("e-{i}")).collect::<Vec<_>>()
    );
    let fails = c(&r.counter.event_write_fail);
    assert!(fails >= 1);
    assert_eq!(c(&r.counter.connection_created), fails + 1);
    assert_eq!(c(&r.counter.event_drain_success), 25);
    rt.block_on(server.stop());
}

#[test]
fn downstream_sending_garbage() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Mode::Garbage));
    let mut r = rig(&rt, server.port(), 10);
    r.channel.put_batch(&numbered("e", 15)).unwrap();
    r.runner.start().unwrap();
    wait("two garbage replies", Duration::from_secs(10), || {
        c(&r.counter.event_write_fail) >= 2
    });
    assert_eq!(r.channel.size(), 15);
    server.set_mode(Mode::Ok);
    wait("all delivered", Duration::from_secs(15), || {
        server.event_count() >= 15 && r.channel.size() == 0
    });
    r.runner.stop();
    assert_eq!(
        server.bodies(),
        (0..15).map(|i| format!("e-{i}")).collect::<Vec<_>>()
    );
    assert!(c(&r.counter.connection_closed) >= 3);
    assert_eq!(c(&r.counter.event_drain_success), 15);
    rt.block_on(server.stop());
}

#[test]
fn empty_channel_backs_off_without_rpc() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Mode::Ok));
    let r = rig(&rt, server.port(), 10);
    let ctx = Context::from_pairs(
        "a1.sinks.k2",
        [
            ("hostname", "127.0.0.1"),
            ("port", &*server.port().to_string()),
            ("reset-connection-interval", "1"),
        ],
    );
    let time = ManualClock::new();
    let mut sink = AvroSink::from_context(
        "k2",
        &ctx,
        &SystemProps::new(),
        r.channel.clone(),
        rt.handle().clone(),
    )
    .unwrap()
    .with_clock(time.clock());
    assert_eq!(sink.config().batch_size, 100);
    sink.start().unwrap();
    assert_eq!(
        sink.process().unwrap(),
        sluicegate::sink::SinkStatus::Backoff
    );
    let k = sink.counter();
    assert_eq!(c(&k.batch_empty), 1);
    assert_eq!(server.calls(), 0);
    r.channel.put_batch(&numbered("e", 3)).unwrap();
    assert_eq!(sink.process().unwrap(), sluicegate::sink::SinkStatus::Ready);
    assert_eq!(c(&k.batch_underflow), 1);
    // reset-connection-interval = 1 s: not yet reached just before it ...
    time.advance(Duration::from_millis(999));
    r.channel.put_batch(&numbered("f", 1)).unwrap();
    sink.process().unwrap();
    assert_eq!(c(&k.connection_created), 1);
    assert_eq!(c(&k.connection_closed), 0);
    // ... and the next process after it reconnects.
    time.advance(Duration::from_millis(1));
    r.channel.put_batch(&numbered("g", 1)).unwrap();
    sink.process().unwrap();
    assert_eq!(c(&k.connection_created), 2);
    assert_eq!(c(&k.connection_closed), 1);
    assert_eq!(server.connection_count(), 2);
    sink.stop();
    assert_eq!(server.bodies(), vec!["e-0", "e-1", "e-2", "f-0", "g-0"]);
    rt.block_on(server.stop());
}

#[test]
fn config_errors_name_the_key() {
    let rt = runtime();
    let ch: Arc<dyn Channel> = Arc::new(MemoryChannel::new("c", MemoryChannelConfig::default()));
    for (pairs, key) in [
        (vec![("port", "4141")], "a1.sinks.k1.hostname"),
        (vec![("hostname", "h")], "a1.sinks.k1.port"),
        (vec![("hostname", "h"), ("port", "x")], "a1.sinks.k1.port"),
    ] {
        let e = AvroSink::from_context(
            "k1",
            &Context::from_pairs("a1.sinks.k1", pairs.clone()),
            &SystemProps::new(),
            ch.clone(),
            rt.handle().clone(),
        )
        .unwrap_err();
        assert_eq!(e.key, key, "{pairs:?}");
    }
    // hosts given: hostname/port are not needed (AbstractRpcSink copies every key).
    let s = AvroSink::from_context(
        "k1",
        &Context::from_pairs(
            "a1.sinks.k1",
            [
                ("hosts", "a"),
                ("hosts.a", "127.0.0.1:1"),
                ("batch-size", "7"),
            ],
        ),
        &SystemProps::new(),
        ch,
        rt.handle().clone(),
    )
    .unwrap();
    assert_eq!(s.config().batch_size, 7);
    assert_eq!(s.config().client.hosts[0].port, 1);
}
