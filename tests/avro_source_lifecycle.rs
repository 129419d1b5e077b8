//! Avro source life cycle: bind errors name the address, graceful stop answers the batch in
//! flight before closing, a stopped source refuses connections and can start again, settings
//! are validated, and the server can be used directly with a closure handler.

#[path = "../compat-tests/source_util.rs"]
mod source_util;

use std::sync::Arc;
use std::time::Duration;

use sluicegate::channel::memory::MemoryChannelConfig;
use sluicegate::channel::Channel;
use sluicegate::config::{Context, SystemProps};
use sluicegate::metrics::SourceCounter;
use sluicegate::rpc::server::{Outcome, Request, RpcServer, ServerConfig};
use sluicegate::rpc::{ServerTransport, TransportSettings};
use sluicegate::source::avro::AvroSource;
use sluicegate::source::{ChannelProcessor, Source, SourceError};
use sluicegate::wire::Status;
use source_util::*;

#[test]
fn bind_error_names_the_address() {
    let h = Harness::start(&[], channel_config(10));
    let port = h.addr().port().to_string();
    let ctx = Context::from_pairs("a1.sources.r2", [("bind", "127.0.0.1"), ("port", &port)]);
    let ch = Arc::new(sluicegate::channel::memory::MemoryChannel::new(
        "c2",
        channel_config(10),
    ));
    let mut second = AvroSource::from_context(
        "r2",
        &ctx,
        &SystemProps::new(),
        ChannelProcessor::replicating(vec![ch as Arc<dyn Channel>]),
        h.rt.handle().clone(),
    )
    .unwrap();
    match second.start() {
        Err(e @ SourceError::Io { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
            assert!(text.contains("r2"), "{text}");
        }
        other => panic!("expected a bind error, got {other:?}"),
    }
}

#[test]
fn settings_are_validated() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let build = |pairs: &[(&str, &str)]| {
        let ctx = Context::from_pairs("a1.sources.r1", pairs.iter().copied());
        let ch = Arc::new(sluicegate::channel::memory::MemoryChannel::new(
            "c1",
            MemoryChannelConfig::default(),
        ));
        AvroSource::from_context(
            "r1",
            &ctx,
            &SystemProps::new(),
            ChannelProcessor::replicating(vec![ch as Arc<dyn Channel>]),
            rt.handle().clone(),
        )
    };
    let ok = build(&[
        ("bind", "0.0.0.0"),
        ("port", "4141"),
        ("threads", "8"),
        ("compression-type", "DEFLATE"),
        ("max-connections", "10"),
        ("idle-timeout", "60000"),
        ("max-frame-bytes", "1048576"),
        ("max-batch-events", "500"),
    ])
    .unwrap();
    let cfg = ok.config();
    assert_eq!(cfg.port, 4141);
    assert_eq!(cfg.threads, Some(8));
    assert_eq!(cfg.server.max_connections, 10);
    assert_eq!(cfg.server.idle_timeout, Some(Duration::from_secs(60)));
    assert_eq!(cfg.server.frame_limits.max_frame_bytes, 1 << 20);
    assert_eq!(cfg.server.session_limits.max_batch_events, 500);
    for (pairs, key) in [
        (&[("port", "4141")][..], "bind"),
        (&[("bind", "0.0.0.0")][..], "port"),
        (&[("bind", "0.0.0.0"), ("port", "70000")][..], "port"),
        (
            &[
                ("bind", "0.0.0.0"),
                ("port", "1"),
                ("compression-type", "gzip"),
            ][..],
            "compression-type",
        ),
        (
            &[
                ("bind", "0.0.0.0"),
                ("port", "1"),
                ("max-frame-bytes", "10"),
            ][..],
            "max-frame-bytes",
        ),
        (
            &[("bind", "0.0.0.0"), ("port", "1"), ("ssl", "true")][..],
            "keystore",
        ),
        (
            &[("bind", "0.0.0.0"), ("port", "1"), ("ipFilter", "true")][..],
            "ipFilterRules",
        ),
    ] {
        let e = build(pairs).expect_err(key);
        assert_eq!(e.key, format!("a1.sources.r1.{key}"), "{e}");
    }
}

#[test]
fn stop_answers_the_batch_in_flight_then_closes() {
    // A full channel that waits up to 10 s for room: the batch is in flight while stop() runs.
    let cfg = MemoryChannelConfig {
        capacity: 4,
        transaction_capacity: 100,
        byte_capacity: None,
        keep_alive: Duration::from_secs(10),
    };
    let mut h = Harness::start(&[], cfg);
    let mut filler = RawClient::connect(h.addr());
    let mut fs = session();
    let first = events("first", 0..4);
    assert_eq!(
        append_batch(&mut filler, &mut fs, 1, &first).unwrap(),
        Ok(Status::Ok)
    );

    let mut c = RawClient::connect(h.addr());
    let mut s = session();
    let waiting = events("waiting", 0..2);
    let req = s.encode_append_batch(&waiting);
    c.send_frame(1, &req.buffers);
    // Wait until the batch is inside the channel's put (it counts the attempt first).
    let ch = h.channel.clone();
    let end = std::time::Instant::now() + IO_TIMEOUT;
    while SourceCounter::get(&h.counter().events_received) < 6 {
        assert!(std::time::Instant::now() < end);
        std::thread::sleep(Duration::from_millis(5));
    }
    let addr = h.addr();
    let mut source = std::mem::replace(
        &mut h.source,
        AvroSource::from_context(
            "unused",
            &Context::from_pairs("x", [("bind", "127.0.0.1"), ("port", "0")]),
            &SystemProps::new(),
            ChannelProcessor::replicating(vec![]),
            h.rt.handle().clone(),
        )
        .unwrap(),
    );
    let stopper = std::thread::spawn(move || {
        source.stop();
        source
    });
    // Wait until stop() has closed the listener, so the batch is in flight during shutdown.
    let end = std::time::Instant::now() + IO_TIMEOUT;
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        assert!(
            std::time::Instant::now() < end,
            "stop() did not close the listener"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !stopper.is_finished(),
        "stop() waits for the batch in flight"
    );
    // Make room: the put in flight completes, is answered OK, then the connection closes.
    let taken = ch.take_batch(4, Duration::from_millis(10)).unwrap();
    assert_same_events(taken.events(), &first, "filler");
    taken.commit().unwrap();
    assert_eq!(
        read_answer(&mut c, &mut s, 1, req.sent).unwrap(),
        Ok(Status::Ok)
    );
    assert!(c.closed_within(IO_TIMEOUT), "closed after the answer");
    assert!(
        filler.closed_within(IO_TIMEOUT),
        "idle connection closed by stop"
    );
    let mut source = stopper.join().unwrap();
    assert_same_events(&h.drain(), &waiting, "the in-flight batch was stored");
    assert!(source.local_addr().is_none());
    assert_eq!(SourceCounter::get(&source.counter().open_connections), 0);
    // And it can start again.
    source.start().unwrap();
    let mut c = RawClient::connect(source.local_addr().unwrap());
    let mut s = session();
    let again = events("again", 0..1);
    assert_eq!(
        append_batch(&mut c, &mut s, 1, &again).unwrap(),
        Ok(Status::Ok)
    );
    source.stop();
    assert_same_events(&h.drain(), &again, "after restart");
}

#[test]
fn server_with_a_closure_handler() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let counter = Arc::new(SourceCounter::new("direct"));
    let handler = |r: Request| async move {
        // Refuse batches with an odd number of events, as a stand-in for any policy.
        if r.events.len() % 2 == 1 {
            Outcome::SystemError("java.lang.IllegalStateException: odd batch".into())
        } else {
            Outcome::Status(Status::Ok)
        }
    };
    let server = rt.block_on(async {
        RpcServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            ServerTransport::new(TransportSettings::plain(), None, None),
            ServerConfig::default(),
            Arc::new(handler),
            counter.clone(),
        )
        .unwrap()
    });
    let mut c = RawClient::connect(server.local_addr());
    let mut s = session();
    assert_eq!(
        append_batch(&mut c, &mut s, 1, &events("x", 0..2)).unwrap(),
        Ok(Status::Ok)
    );
    assert_eq!(
        append_batch(&mut c, &mut s, 2, &events("x", 0..3)).unwrap(),
        Err("java.lang.IllegalStateException: odd batch".into())
    );
    assert_eq!(server.open_connections(), 1);
    rt.block_on(server.shutdown());
    assert!(c.closed_within(IO_TIMEOUT));
    assert_eq!(SourceCounter::get(&counter.open_connections), 0);
}
