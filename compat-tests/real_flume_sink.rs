//! Sink direction against a **real Apache Flume agent**: with `FLUME_HOME` pointing at a Flume
//! binary distribution (e.g. apache-flume-1.11.0-bin), starts an agent `avro source → memory
//! channel → file_roll sink` in a temp dir, pushes events with sluicegate's Avro sink, and checks
//! that every event landed in the rolled files — plain, `compression-type = deflate`, and TLS
//! (keystore `tests/fixtures/tls/server.p12`, `keystore-type = PKCS12`; the sink trusts
//! `truststore.p12`). The tests are `#[ignore]`d (the runner's summary counts them as ignored)
//! because they need `FLUME_HOME`; run them with `--ignored`, and they fail when it is not set.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::config::{Context, SystemProps};
use sluicegate::metrics::SinkCounter;
use sluicegate::sink::avro::AvroSink;
use sluicegate::sink::processor::DefaultSinkProcessor;
use sluicegate::sink::runner::SinkRunner;
use sluicegate::sink::Sink;
use sluicegate::Event;

const N: usize = 500;

/// `$FLUME_HOME`, checked; panics (a failing test, never a silent pass) when it is unset or wrong.
fn flume_home() -> PathBuf {
    let Some(h) = std::env::var_os("FLUME_HOME").filter(|h| !h.is_empty()) else {
        panic!(
            "FLUME_HOME is not set: point it at an Apache Flume binary distribution (e.g. \
             apache-flume-1.11.0-bin) to run the real-Flume sink tests; see compat-tests/README.md"
        );
    };
    let h = PathBuf::from(h);
    assert!(
        h.join("bin/flume-ng").exists(),
        "FLUME_HOME={} has no bin/flume-ng (point it at a Flume binary distribution)",
        h.display()
    );
    h
}

fn tls_file(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn lines_in(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        if let Ok(file) = std::fs::File::open(&f) {
            out.extend(BufReader::new(file).lines().map_while(Result::ok));
        }
    }
    out
}

fn run(variant: &str, source_keys: &[(&str, String)], sink_keys: &[(&str, String)]) {
    let home = flume_home();
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    let port = free_port();
    let mut conf = format!(
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
         a1.sources.r1.type = avro\na1.sources.r1.bind = 127.0.0.1\na1.sources.r1.port = {port}\n\
         a1.sources.r1.channels = c1\n\
         a1.channels.c1.type = memory\na1.channels.c1.capacity = 10000\n\
         a1.channels.c1.transactionCapacity = 1000\n\
         a1.sinks.k1.type = file_roll\na1.sinks.k1.channel = c1\n\
         a1.sinks.k1.sink.directory = {}\na1.sinks.k1.sink.rollInterval = 0\n\
         a1.sinks.k1.sink.batchSize = 10\n",
        out.display()
    );
    for (k, v) in source_keys {
        conf.push_str(&format!("a1.sources.r1.{k} = {v}\n"));
    }
    let conf_file = work.path().join("flume.conf");
    std::fs::write(&conf_file, conf).expect("write conf");
    let log = std::fs::File::create(work.path().join("agent.log")).expect("log");
    let agent = Agent(
        Command::new(home.join("bin/flume-ng"))
            .args(["agent", "-n", "a1", "-c"])
            .arg(home.join("conf"))
            .arg("-f")
            .arg(&conf_file)
            .arg("-Dflume.root.logger=INFO,console")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start flume-ng"),
    );
    // Wait (bounded) for the source to listen.
    let end = Instant::now() + Duration::from_secs(90);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < end,
            "{variant}: the Flume agent did not open port {port} within 90 s; see {}",
            work.path().join("agent.log").display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let channel = Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: 10_000,
            transaction_capacity: 1000,
            ..MemoryChannelConfig::default()
        },
    ));
    let events: Vec<Event> = (0..N)
        .map(|i| Event::new([("seq", i.to_string())], format!("{variant} event {i}")))
        .collect();
    channel.put_batch(&events).expect("put");
    let port_s = port.to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("hostname", "127.0.0.1"),
        ("port", port_s.as_str()),
        ("batch-size", "50"),
        ("reconnect-backoff-initial", "100"),
        ("reconnect-backoff-max", "1000"),
    ];
    pairs.extend(sink_keys.iter().map(|(k, v)| (*k, v.as_str())));
    let sink = AvroSink::from_context(
        "k1",
        &Context::from_pairs("sg.sinks.k1", pairs),
        &SystemProps::new(),
        channel.clone(),
        rt.handle().clone(),
    )
    .expect("sink");
    let counter = sink.counter();
    let mut runner = SinkRunner::new("k1", Box::new(DefaultSinkProcessor::new(Box::new(sink))))
        .with_backoff(Duration::from_millis(50), Duration::from_millis(500));
    runner.start().expect("runner");
    let end = Instant::now() + Duration::from_secs(60);
    let mut landed = Vec::new();
    while Instant::now() < end {
        landed = lines_in(&out);
        if landed.len() >= N && channel.size() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    runner.stop();
    drop(agent);
    let want: Vec<String> = (0..N).map(|i| format!("{variant} event {i}")).collect();
    assert_eq!(channel.size(), 0, "{variant}: events left in the channel");
    // At least once: Flume may have stored a batch whose reply was lost; compare first sightings.
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<String> = landed
        .into_iter()
        .filter(|l| seen.insert(l.clone()))
        .collect();
    assert_eq!(firsts, want, "{variant}: every event landed, in order");
    assert_eq!(SinkCounter::get(&counter.event_drain_success), N as u64);
    rt.shutdown_timeout(Duration::from_secs(2));
}

#[test]
#[ignore = "needs FLUME_HOME: see compat-tests/README.md"]
fn real_flume_plain() {
    run("plain", &[], &[]);
}

#[test]
#[ignore = "needs FLUME_HOME: see compat-tests/README.md"]
fn real_flume_deflate() {
    run(
        "deflate",
        &[("compression-type", "deflate".into())],
        &[("compression-type", "deflate".into())],
    );
}

#[test]
#[ignore = "needs FLUME_HOME: see compat-tests/README.md"]
fn real_flume_tls() {
    run(
        "tls",
        &[
            ("ssl", "true".into()),
            ("keystore", tls_file("server.p12")),
            ("keystore-password", "changeit".into()),
            ("keystore-type", "PKCS12".into()),
        ],
        &[
            ("ssl", "true".into()),
            ("truststore", tls_file("truststore.p12")),
            ("truststore-password", "changeit".into()),
            ("truststore-type", "PKCS12".into()),
        ],
    );
}
