//! Independent Avro implementations push events into a running sluicegate [`AvroSource`]:
//!
//! * npm `avsc@5.7.9` (`peers/avsc_client.js`, a stateful Netty-framed client: handshake ping,
//!   then calls without handshakes) — `append` and `appendBatch`, plain, deflate, TLS, and
//!   deflate+TLS in both layer orders (Flume ≥ 1.10 `zlib-outside`, Flume ≤ 1.9 `tls-outside`),
//!   each against a source pinned to that order and both against one source left on the default
//!   `auto` (which also closes a connection whose first byte is neither TLS nor zlib);
//! * PyPI `avro` (`peers/py_client.py`, Apache's Python `Requestor`, a fresh connection per
//!   call): its protocol hash differs from Java's, so the first call gets `NONE` and is re-sent
//!   with the protocol text; later connections are answered `BOTH` straight from the server's
//!   cache of learned client protocols (one extra connection in total proves it).
//!
//! Each run checks every call was answered OK and the channel holds every event, with its
//! headers and body, in order. Peers are installed once by `compat-tests/setup.sh`; every peer
//! process has a hard deadline.
//!
//! End to end with the stream processor: avsc pushes text lines (`--lines`, `appendBatch` and
//! `append`) into an agent running a real `flume.conf` topology (Avro source → file channel)
//! with a word-count pipeline on its channel (`Agent::run_pipeline`); the counts the pipeline
//! prints in Spark's `print()` format add up to a reference computed in the test.

mod common;
#[path = "source_util.rs"]
mod source_util;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use source_util::*;

const PEER_DEADLINE: Duration = Duration::from_secs(60);

fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

fn tls_settings() -> Vec<(&'static str, String)> {
    vec![
        ("ssl", "true".into()),
        (
            "keystore",
            tls_dir().join("server.p12").to_string_lossy().into_owned(),
        ),
        ("keystore-password", "changeit".into()),
        ("keystore-type", "PKCS12".into()),
    ]
}

/// Runs the avsc client against `h` with extra arguments; returns its JSON lines.
fn run_avsc(h: &Harness, args: &[&str]) -> Vec<Value> {
    let peers = common::ensure_peers();
    let port = h.addr().port().to_string();
    let protocol = common::protocol_file();
    let mut cmd = Command::new(&peers.node);
    cmd.arg(peers.peers.join("avsc_client.js"))
        .args(["--port", &port, "--protocol"])
        .arg(&protocol)
        .args(args)
        .current_dir(common::compat_dir());
    let (ok, lines, stderr) = common::run_with_deadline(&mut cmd, PEER_DEADLINE);
    assert!(ok, "avsc client failed: {lines:?}\n{stderr}");
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Runs the Python requestor; returns its JSON lines.
fn run_python(h: &Harness, calls: usize, batch: usize) -> Vec<Value> {
    let peers = common::ensure_peers();
    let mut cmd = Command::new(&peers.python);
    cmd.arg(peers.peers.join("py_client.py"))
        .arg(h.addr().port().to_string())
        .arg(common::protocol_file())
        .arg(calls.to_string())
        .arg(batch.to_string());
    let (ok, lines, stderr) = common::run_with_deadline(&mut cmd, PEER_DEADLINE);
    assert!(ok, "python client failed: {lines:?}\n{stderr}");
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Every call line says OK; returns the summary line.
fn all_ok(lines: &[Value], calls: usize) -> &Value {
    let results: Vec<&Value> = lines.iter().filter(|v| v.get("call").is_some()).collect();
    assert_eq!(results.len(), calls, "one line per call: {lines:?}");
    for r in &results {
        assert_eq!(r["status"], "OK", "call answered OK: {r}");
    }
    lines
        .iter()
        .find(|v| v["summary"] == true)
        .unwrap_or_else(|| panic!("no summary: {lines:?}"))
}

/// The channel holds exactly `n` events `<prefix>-<i>` with `seq = i` and `peer`, in order.
fn check_events(h: &Harness, n: usize, prefix: &str, peer: &str, body_size: usize) {
    let got = h.drain();
    assert_eq!(got.len(), n, "events stored");
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.header("seq").as_deref(), Some(i.to_string().as_str()));
        assert_eq!(e.header("peer").as_deref(), Some(peer));
        let base = format!("{prefix}-{i}");
        let mut body = base.clone().into_bytes();
        if body_size > base.len() {
            body.resize(body_size, b'x');
        }
        assert_eq!(e.body(), &body[..], "event {i} body");
    }
}

fn avsc_case(settings: &[(&str, String)], args: &[&str], calls: usize, batch: usize) {
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let h = Harness::start(&pairs, channel_config(10_000));
    let calls_s = calls.to_string();
    let batch_s = batch.to_string();
    let mut all = vec!["--calls", &calls_s, "--batch", &batch_s];
    all.extend_from_slice(args);
    let lines = run_avsc(&h, &all);
    let summary = all_ok(&lines, calls);
    assert_eq!(summary["events"], calls * batch);
    let body_size = args
        .iter()
        .position(|a| *a == "--body-size")
        .map(|i| args[i + 1].parse().unwrap())
        .unwrap_or(0);
    check_events(&h, calls * batch, "avsc", "avsc", body_size);
    let (appends, batches) = if batch == 1 { (calls, 0) } else { (0, calls) };
    assert_eq!(h.count(|c| &c.append_accepted), appends as u64);
    assert_eq!(h.count(|c| &c.append_batch_accepted), batches as u64);
    assert_eq!(h.count(|c| &c.events_accepted), (calls * batch) as u64);
    assert_eq!(h.count(|c| &c.event_read_fail), 0);
}

#[test]
fn avsc_append_plain() {
    avsc_case(&[], &[], 4, 1);
}

#[test]
fn avsc_append_batch_plain() {
    avsc_case(&[], &[], 3, 5);
}

#[test]
fn avsc_append_batch_large_bodies() {
    avsc_case(&[], &["--body-size", "20000"], 2, 4);
}

#[test]
fn avsc_append_batch_deflate() {
    avsc_case(
        &[("compression-type", "Deflate".into())],
        &["--deflate"],
        3,
        5,
    );
}

#[test]
fn avsc_append_deflate() {
    avsc_case(
        &[("compression-type", "deflate".into())],
        &["--deflate"],
        3,
        1,
    );
}

#[test]
fn avsc_tls() {
    let ca = tls_dir().join("ca.pem").to_string_lossy().into_owned();
    avsc_case(&tls_settings(), &["--tls", "--ca", &ca], 3, 5);
}

#[test]
fn avsc_tls_deflate_zlib_outside() {
    let ca = tls_dir().join("ca.pem").to_string_lossy().into_owned();
    let mut s = tls_settings();
    s.push(("compression-type", "deflate".into()));
    s.push(("compression-layer-order", "zlib-outside".into()));
    avsc_case(
        &s,
        &["--tls", "--deflate", "--order", "zlib-outside", "--ca", &ca],
        3,
        5,
    );
}

#[test]
fn avsc_tls_deflate_tls_outside() {
    let ca = tls_dir().join("ca.pem").to_string_lossy().into_owned();
    let mut s = tls_settings();
    s.push(("compression-type", "deflate".into()));
    s.push(("compression-layer-order", "tls-outside".into()));
    avsc_case(
        &s,
        &["--tls", "--deflate", "--order", "tls-outside", "--ca", &ca],
        3,
        1,
    );
}

/// Flume ≤ 1.9 and ≥ 1.10 senders (TLS outside / zlib outside) on one port: the source has no
/// `compression-layer-order`, i.e. `auto`, and decides per connection. A sender with neither
/// layer in front (a plain Netty frame: its first byte is `00`) is closed at once, and the port
/// keeps serving.
#[test]
fn avsc_tls_deflate_both_orders_on_one_auto_source() {
    let ca = tls_dir().join("ca.pem").to_string_lossy().into_owned();
    let mut s = tls_settings();
    s.push(("compression-type", "deflate".into()));
    let pairs: Vec<(&str, &str)> = s.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let h = Harness::start(&pairs, channel_config(10_000));
    let mut total = 0;
    for (i, order) in ["tls-outside", "zlib-outside", "tls-outside", "zlib-outside"]
        .into_iter()
        .enumerate()
    {
        if i == 2 {
            garbage_is_closed(&h);
        }
        let lines = run_avsc(
            &h,
            &[
                "--calls",
                "2",
                "--batch",
                "3",
                "--tls",
                "--deflate",
                "--order",
                order,
                "--ca",
                &ca,
            ],
        );
        let summary = all_ok(&lines, 2);
        assert_eq!(summary["events"], 6, "{order}");
        check_events(&h, 6, "avsc", "avsc", 0);
        total += 6;
    }
    assert_eq!(h.count(|c| &c.events_accepted), total);
    assert_eq!(h.count(|c| &c.append_batch_accepted), 8);
    assert_eq!(h.count(|c| &c.event_read_fail), 0);
}

/// Sends the start of a plain Netty frame and expects the server to close the connection well
/// before its 10 s TLS handshake deadline (the first byte decides), and to release it.
fn garbage_is_closed(h: &Harness) {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(h.addr()).expect("connect");
    tcp.write_all(&[0x00, 0x00, 0x00, 0x01]).expect("write");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    match tcp.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close the connection, got {other:?}"),
    }
    // The connection slot is released (poll every 5 ms, up to 30 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while h.source.open_connections() != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "connection still open after 30 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn python_case(calls: usize, batch: usize) {
    let h = Harness::start(&[], channel_config(10_000));
    let lines = run_python(&h, calls, batch);
    let summary = all_ok(&lines, calls);
    assert_eq!(summary["events"], calls * batch);
    // One extra connection: the NONE answer on the first call, then the learned protocol is
    // answered BOTH from the cache on every later connection.
    assert_eq!(summary["connections"], calls + 1, "{summary}");
    let got = h.drain();
    assert_eq!(got.len(), calls * batch);
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.header("seq").as_deref(), Some(i.to_string().as_str()));
        assert_eq!(e.header("peer").as_deref(), Some("python"));
        if batch > 1 {
            assert_eq!(e.header("ü").as_deref(), Some("ß"));
        }
        assert_eq!(e.body(), format!("py-{i}").as_bytes());
    }
    assert_eq!(h.count(|c| &c.events_accepted), (calls * batch) as u64);
    assert_eq!(h.count(|c| &c.event_read_fail), 0);
}

#[test]
fn python_append_batch() {
    python_case(3, 4);
}

#[test]
fn python_append() {
    python_case(3, 1);
}

/// Runs the avsc client with `--lines` against `port`; returns its JSON lines.
fn run_avsc_lines(port: u16, lines: &std::path::Path, batch: usize) -> Vec<Value> {
    let peers = common::ensure_peers();
    let mut cmd = Command::new(&peers.node);
    cmd.arg(peers.peers.join("avsc_client.js"))
        .args(["--port", &port.to_string(), "--protocol"])
        .arg(common::protocol_file())
        .args(["--batch", &batch.to_string(), "--lines"])
        .arg(lines)
        .current_dir(common::compat_dir());
    let (ok, out, stderr) = common::run_with_deadline(&mut cmd, PEER_DEADLINE);
    assert!(ok, "avsc client failed: {out:?}\n{stderr}");
    out.iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Sums the `(word,count)` lines of every block of Spark-`print()` output.
fn printed_counts(out: &str) -> BTreeMap<String, u64> {
    let banner = "-------------------------------------------\n";
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for block in out.split(&format!("{banner}Time: ")).skip(1) {
        let (head, rest) = block.split_once('\n').expect("a Time line");
        let ms = head.strip_suffix(" ms").expect("`Time: <ms> ms`");
        assert!(ms.parse::<i64>().is_ok(), "{head}");
        let rest = rest.strip_prefix(banner).expect("the closing banner");
        assert!(
            rest.ends_with('\n'),
            "a block ends with an empty line: {rest:?}"
        );
        for l in rest.lines().filter(|l| !l.is_empty()) {
            assert_ne!(l, "...", "print(n) cut a batch: raise n");
            let (w, c) = l
                .strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .and_then(|l| l.rsplit_once(','))
                .unwrap_or_else(|| panic!("not a (word,count) line: {l:?}"));
            *counts.entry(w.to_string()).or_insert(0) += c.parse::<u64>().unwrap();
        }
    }
    counts
}

#[test]
fn avsc_lines_are_counted_by_a_word_count_pipeline_in_a_running_agent() {
    use sluicegate::agent::lifecycle::Agent;
    use sluicegate::metrics::MetricsRegistry;
    use sluicegate::pipeline::PipelineConfig;

    let d = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = d.path().join("flume.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\n\
             a1.sources.r1.type = avro\na1.sources.r1.bind = 127.0.0.1\n\
             a1.sources.r1.port = {port}\na1.sources.r1.channels = c1\n\
             a1.channels.c1.type = file\na1.channels.c1.checkpointDir = {0}/ck\n\
             a1.channels.c1.dataDirs = {0}/data\na1.channels.c1.transactionCapacity = 10000\n",
            d.path().display()
        ),
    )
    .unwrap();

    // Two inputs: 1,210 lines by `appendBatch` (50 per call, the last call 10) and 30 lines by
    // one `append` each. Words repeat, spacing is uneven, two words are not ASCII.
    let vocab = [
        "flume", "avsc", "node", "pipeline", "word", "count", "état", "µs",
    ];
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    let mut inputs = Vec::new();
    for (name, n, seed) in [("batch.txt", 1_210usize, 3usize), ("single.txt", 30, 11)] {
        let mut text = String::new();
        for i in 0..n {
            let k = 1 + (i * seed) % 7;
            let words: Vec<&str> = (0..k)
                .map(|j| vocab[(i * 13 + j * seed) % vocab.len()])
                .collect();
            for w in &words {
                *want.entry(w.to_string()).or_insert(0) += 1;
            }
            text.push_str(&words.join(if i % 4 == 0 { "   " } else { " " }));
            text.push('\n');
        }
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        inputs.push((p, n));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut agent = Agent::start(
        &conf,
        "a1",
        sluicegate::agent::cli::parse_defines(std::iter::empty()),
        rt.handle().clone(),
        MetricsRegistry::new(),
    )
    .unwrap();
    let printed: Arc<Mutex<Vec<u8>>> = Arc::default();
    let pr = printed.clone();
    agent
        .run_pipeline(
            "c1",
            "wc",
            PipelineConfig {
                batch_interval: Duration::from_millis(100),
                checkpoint_dir: Some(d.path().join("pipeline")),
                ..Default::default()
            },
            move |ctx| {
                ctx.events().words().count_by_value().print_to(1_000, pr);
            },
        )
        .unwrap();

    for ((path, n), batch) in inputs.iter().zip([50usize, 1]) {
        let out = run_avsc_lines(port, path, batch);
        let calls = n.div_ceil(batch);
        let summary = all_ok(&out, calls);
        assert_eq!(summary["events"], *n as u64, "{}", path.display());
    }

    // Wait (poll every 5 ms, up to 30 s) until the printed counts cover every word pushed.
    let total: u64 = want.values().sum();
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let out = String::from_utf8(printed.lock().unwrap().clone()).unwrap();
        let got = printed_counts(&out);
        if got.values().sum::<u64>() >= total || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    agent.stop();
    assert_eq!(got, want, "printed word counts");
    // Nothing more arrives after the totals matched (no batch counted twice).
    let out = String::from_utf8(printed.lock().unwrap().clone()).unwrap();
    assert_eq!(printed_counts(&out), want);
}
