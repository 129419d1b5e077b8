//! Sink direction against an independent implementation: sluicegate's Avro sink (with a memory
//! channel and a sink runner) pushing to npm `avsc@5.7.9` acting as a Netty-framed Avro server
//! (`peers/avsc_server.js`): plain, deflate, TLS, and deflate+TLS in both layer orders, plus a
//! server answering FAILED for its first calls. Every event must arrive once, in order.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ensure_peers, protocol_file, PeerProcess};
use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::config::{Context, SystemProps};
use sluicegate::metrics::SinkCounter;
use sluicegate::sink::avro::AvroSink;
use sluicegate::sink::processor::DefaultSinkProcessor;
use sluicegate::sink::runner::SinkRunner;
use sluicegate::sink::Sink;
use sluicegate::Event;

fn tls_file(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

struct Variant {
    deflate: bool,
    tls: bool,
    order: &'static str,
    fail_first: usize,
}

fn run(v: Variant) {
    let peers = ensure_peers();
    let mut cmd = Command::new(&peers.node);
    cmd.arg(peers.peers.join("avsc_server.js"))
        .arg("--protocol")
        .arg(protocol_file())
        .args(["--order", v.order]);
    if v.deflate {
        cmd.arg("--deflate");
    }
    if v.tls {
        cmd.args([
            "--tls",
            "--cert",
            &tls_file("server-chain.pem"),
            "--key",
            &tls_file("server.key"),
        ]);
    }
    if v.fail_first > 0 {
        cmd.args(["--fail-first", &v.fail_first.to_string()]);
    }
    let server = PeerProcess::spawn(&mut cmd);
    let port = server
        .wait_for(Duration::from_secs(30), |j| j.get("listening").is_some())
        .expect("avsc server did not start")["listening"]
        .as_u64()
        .expect("port");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let channel = Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: 1000,
            transaction_capacity: 100,
            ..MemoryChannelConfig::default()
        },
    ));
    const N: usize = 120;
    let events: Vec<Event> = (0..N)
        .map(|i| {
            Event::new(
                [("seq", i.to_string()), ("host", "h1".to_string())],
                format!("body-{i}"),
            )
        })
        .collect();
    channel.put_batch(&events[..100]).expect("put");
    channel.put_batch(&events[100..]).expect("put");
    let port = port.to_string();
    let ts = tls_file("truststore.p12");
    let mut pairs = vec![
        ("hostname", "127.0.0.1"),
        ("port", port.as_str()),
        ("batch-size", "25"),
        ("compression-layer-order", v.order),
        ("connect-timeout", "5000"),
        ("request-timeout", "5000"),
        ("reconnect-backoff-initial", "20"),
        ("reconnect-backoff-max", "200"),
    ];
    if v.deflate {
        pairs.push(("compression-type", "deflate"));
    }
    if v.tls {
        pairs.extend([
            ("ssl", "true"),
            ("truststore", ts.as_str()),
            ("truststore-password", "changeit"),
            ("truststore-type", "PKCS12"),
        ]);
    }
    let sink = AvroSink::from_context(
        "k1",
        &Context::from_pairs("a1.sinks.k1", pairs),
        &SystemProps::new(),
        channel.clone(),
        rt.handle().clone(),
    )
    .expect("sink");
    let counter = sink.counter();
    let mut runner = SinkRunner::new("k1", Box::new(DefaultSinkProcessor::new(Box::new(sink))))
        .with_backoff(Duration::from_millis(10), Duration::from_millis(50));
    runner.start().expect("runner");

    let mut seqs = Vec::new();
    let mut answers = Vec::new();
    let end = Instant::now() + Duration::from_secs(60);
    while seqs.len() < N && Instant::now() < end {
        let Some(line) = server.next_line(Duration::from_millis(200)) else {
            continue;
        };
        let j: serde_json::Value = serde_json::from_str(&line).expect("JSON line from the peer");
        if let Some(s) = j.get("seq").and_then(|s| s.as_str()) {
            assert_eq!(j["headers"]["host"], "h1");
            let body = base64_decode(j["body"].as_str().expect("body"));
            assert_eq!(body, format!("body-{s}").into_bytes());
            seqs.push(s.parse::<usize>().expect("seq"));
        } else if let Some(a) = j.get("answer").and_then(|a| a.as_str()) {
            answers.push(a.to_string());
        }
    }
    // Wait for the sink to commit the last batch.
    let end = Instant::now() + Duration::from_secs(10);
    while channel.size() > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    runner.stop();
    assert_eq!(
        seqs,
        (0..N).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert_eq!(channel.size(), 0);
    assert_eq!(SinkCounter::get(&counter.event_drain_success), N as u64);
    assert_eq!(
        SinkCounter::get(&counter.event_write_fail),
        v.fail_first as u64
    );
    assert_eq!(
        SinkCounter::get(&counter.connection_created),
        1 + v.fail_first as u64,
        "one new connection after each FAILED"
    );
    rt.shutdown_timeout(Duration::from_secs(2));
}

fn base64_decode(s: &str) -> Vec<u8> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = T.iter().position(|&t| t == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn avsc_plain() {
    run(Variant {
        deflate: false,
        tls: false,
        order: "zlib-outside",
        fail_first: 0,
    });
}

#[test]
fn avsc_deflate() {
    run(Variant {
        deflate: true,
        tls: false,
        order: "zlib-outside",
        fail_first: 0,
    });
}

#[test]
fn avsc_tls() {
    run(Variant {
        deflate: false,
        tls: true,
        order: "zlib-outside",
        fail_first: 0,
    });
}

#[test]
fn avsc_deflate_tls_zlib_outside() {
    run(Variant {
        deflate: true,
        tls: true,
        order: "zlib-outside",
        fail_first: 0,
    });
}

#[test]
fn avsc_deflate_tls_tls_outside() {
    run(Variant {
        deflate: true,
        tls: true,
        order: "tls-outside",
        fail_first: 0,
    });
}

#[test]
fn avsc_failed_then_ok() {
    run(Variant {
        deflate: false,
        tls: false,
        order: "zlib-outside",
        fail_first: 2,
    });
}
