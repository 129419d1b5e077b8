//! A real Apache Flume agent pushes into sluicegate's Avro source — for users who have a Flume
//! binary distribution. `#[ignore]`d (the runner's summary counts it as ignored) because it needs
//! `FLUME_HOME`; run it with `--ignored`, and it fails when `FLUME_HOME` is not set:
//!
//! ```sh
//! FLUME_HOME=/opt/apache-flume-1.11.0-bin cargo test --test compat_real_flume_source -- --ignored --nocapture
//! ```
//!
//! For each variant (plain, `compression-type = deflate`, `ssl = true`) it starts an
//! [`AvroSource`](sluicegate::source::avro::AvroSource) in-process on 127.0.0.1 (memory channel),
//! writes a `flume.conf` for an agent `up` (`seq` source with `totalEvents = N` → memory channel
//! → `avro` sink pointing at sluicegate; TLS: the test CA as a PKCS12 truststore with
//! `truststore-type = PKCS12`), runs `$FLUME_HOME/bin/flume-ng agent -n up -c <dir> -f <conf>`
//! with a deadline, and checks that every event body `0..N-1` arrived (Flume is at-least-once:
//! duplicates after a retry are reported, not failed). Then the agent's whole process group is
//! killed.
//!
//! Environment: `FLUME_HOME` (required to run), `FLUME_EVENTS` (N, default 1000),
//! `FLUME_DEADLINE_SECS` (per variant, default 180), `JAVA_HOME` (passed through; flume-ng
//! needs java on the PATH or `JAVA_HOME`).

#[path = "source_util.rs"]
mod source_util;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use source_util::*;

/// `$FLUME_HOME`, checked; panics (a failing test, never a silent pass) when it is unset.
fn flume_home() -> PathBuf {
    let home = PathBuf::from(std::env::var_os("FLUME_HOME").unwrap_or_default());
    assert!(
        !home.as_os_str().is_empty(),
        "FLUME_HOME is not set: point it at an Apache Flume binary distribution (e.g. \
         FLUME_HOME=/opt/apache-flume-1.11.0-bin) to run a real Flume agent against sluicegate's \
         Avro source; see compat-tests/README.md"
    );
    assert!(
        home.join("bin/flume-ng").is_file() && home.join("lib").is_dir(),
        "FLUME_HOME={} is not a Flume binary distribution (needs bin/flume-ng and lib/)",
        home.display()
    );
    home
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

/// The agent's process group, killed on drop.
struct Agent {
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let pgid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::TERM);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        let _ = self.child.wait();
    }
}

const LOG4J2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="ERROR">
  <Appenders>
    <Console name="Console" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{HH:mm:ss,SSS} %-5level %c{1} - %msg%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="Console"/></Root>
  </Loggers>
</Configuration>
"#;

fn write_conf(dir: &Path, port: u16, events: u64, sink_extra: &[(&str, String)]) -> PathBuf {
    let mut conf = format!(
        "up.sources = s1\n\
         up.channels = c1\n\
         up.sinks = k1\n\
         up.sources.s1.type = seq\n\
         up.sources.s1.totalEvents = {events}\n\
         up.sources.s1.channels = c1\n\
         up.channels.c1.type = memory\n\
         up.channels.c1.capacity = {cap}\n\
         up.channels.c1.transactionCapacity = 1000\n\
         up.sinks.k1.type = avro\n\
         up.sinks.k1.channel = c1\n\
         up.sinks.k1.hostname = 127.0.0.1\n\
         up.sinks.k1.port = {port}\n\
         up.sinks.k1.batch-size = 100\n",
        cap = (events + 1000).max(10_000),
    );
    for (k, v) in sink_extra {
        conf.push_str(&format!("up.sinks.k1.{k} = {v}\n"));
    }
    std::fs::write(dir.join("log4j2.xml"), LOG4J2).unwrap();
    let path = dir.join("flume.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

fn run_variant(home: &Path, name: &str, source: &[(&str, String)], sink: &[(&str, String)]) {
    let events = env_num("FLUME_EVENTS", 1000);
    let deadline = Duration::from_secs(env_num("FLUME_DEADLINE_SECS", 180));
    let pairs: Vec<(&str, &str)> = source.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let h = Harness::start(&pairs, channel_config(events * 2 + 1000));
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), h.addr().port(), events, sink);
    let log_path = dir.path().join("agent.log");
    let log = File::create(&log_path).unwrap();
    let mut cmd = Command::new(home.join("bin/flume-ng"));
    cmd.args(["agent", "-n", "up", "-c"])
        .arg(dir.path())
        .arg("-f")
        .arg(&conf)
        .arg("-Dflume.root.logger=INFO,console")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
    println!("[{name}] starting {:?} (sluicegate on {})", cmd, h.addr());
    let mut agent = Agent {
        child: cmd.spawn().expect("running $FLUME_HOME/bin/flume-ng"),
    };
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    let start = Instant::now();
    let mut exited = None;
    while (seen.len() as u64) < events && start.elapsed() < deadline {
        for e in h.drain() {
            let body = String::from_utf8_lossy(e.body()).into_owned();
            let n: u64 = body
                .parse()
                .unwrap_or_else(|_| panic!("[{name}] unexpected body {body:?}"));
            *seen.entry(n).or_default() += 1;
        }
        if exited.is_none() {
            exited = agent.child.try_wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(agent);
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let tail: Vec<&str> = log_text.lines().rev().take(40).collect();
    let missing: Vec<u64> = (0..events).filter(|n| !seen.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "[{name}] {} of {events} events missing after {:?} (first: {:?}); agent exit: {exited:?}\n\
         agent log tail:\n{}",
        missing.len(),
        start.elapsed(),
        &missing[..missing.len().min(10)],
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    let extra: u32 = seen.values().map(|c| c - 1).sum();
    assert!(
        seen.keys().all(|n| *n < events),
        "[{name}] bodies beyond 0..{events}"
    );
    println!(
        "[{name}] all {events} events arrived in {:?} ({extra} duplicate(s) from retries); \
         source counters: accepted {} in {} batch(es), {} FAILED, {} read failure(s)",
        start.elapsed(),
        h.count(|c| &c.events_accepted),
        h.count(|c| &c.append_batch_accepted),
        h.count(|c| &c.channel_write_fail),
        h.count(|c| &c.event_read_fail),
    );
}

#[test]
#[ignore = "needs FLUME_HOME: see compat-tests/README.md"]
fn real_flume_agent_pushes_into_sluicegate() {
    let home = flume_home();
    run_variant(&home, "plain", &[], &[]);
    run_variant(
        &home,
        "deflate",
        &[("compression-type", "deflate".into())],
        &[
            ("compression-type", "deflate".into()),
            ("compression-level", "6".into()),
        ],
    );
    let tls = tls_dir();
    run_variant(
        &home,
        "tls",
        &[
            ("ssl", "true".into()),
            (
                "keystore",
                tls.join("server.p12").to_string_lossy().into_owned(),
            ),
            ("keystore-password", "changeit".into()),
            ("keystore-type", "PKCS12".into()),
        ],
        &[
            ("ssl", "true".into()),
            (
                "truststore",
                tls.join("truststore.p12").to_string_lossy().into_owned(),
            ),
            ("truststore-password", "changeit".into()),
            ("truststore-type", "PKCS12".into()),
        ],
    );
}
