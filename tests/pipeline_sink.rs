//! The `pipeline` sink examples (issue 10) end to end, through the binary: each test copies an
//! example from `examples/` into a temporary directory (its relative `./target/...` paths land
//! there), changes only its ports to free ones (and, where a minute-long batch would make the
//! test slow, the batch interval), starts `sluicegate agent`, pushes events with `sluicegate
//! avro-client`, and checks the pipeline's output against a reference computed here from the
//! same input. Waits are bounded polls (every 20 ms, up to 60 s), never fixed sleeps.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluicegate");
const LIMIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Replaces the value of `key` (and its continuation lines) in a properties text.
fn set_key(conf: &str, key: &str, value: &str) -> String {
    let mut out = Vec::new();
    let mut skipping = false;
    let mut found = false;
    for line in conf.lines() {
        if skipping {
            skipping = line.ends_with('\\');
            continue;
        }
        let t = line.trim_start();
        if t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
            out.push(format!("{key} = {value}"));
            skipping = line.ends_with('\\');
            found = true;
        } else {
            out.push(line.to_string());
        }
    }
    assert!(found, "{key} is not in the example");
    out.join("\n") + "\n"
}

/// A running agent whose stdout and stderr lines are collected.
struct Agent {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(dir: &Path, conf: &str, extra: &[String]) -> Agent {
        std::fs::create_dir_all(dir.join("examples")).unwrap();
        std::fs::write(dir.join("examples/test.conf"), conf).unwrap();
        let mut child = Command::new(BIN)
            .current_dir(dir)
            .args([
                "agent",
                "-n",
                "a1",
                "-f",
                "examples/test.conf",
                "--no-summary",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let collect = |r: Box<dyn Read + Send>| {
            let lines = Arc::new(Mutex::new(Vec::new()));
            let l = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    l.lock().unwrap().push(line);
                }
            });
            lines
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Agent {
            child,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until the Avro source (configured on port 0) is up and returns its bound port,
    /// read back from the agent's `Avro source started ... addr=127.0.0.1:<port>` line.
    fn source_port(&mut self) -> u16 {
        let end = Instant::now() + LIMIT;
        loop {
            let found = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains("Avro source started"))
                .find_map(|l| l.split("addr=127.0.0.1:").nth(1))
                .map(|p| p.trim().parse::<u16>().unwrap());
            if let Some(port) = found {
                return port;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the agent exited ({status}):\n{}", self.stderr());
            }
            assert!(
                Instant::now() < end,
                "the source never started:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status must be success.
    fn stop(mut self) -> String {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let end = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit {status}:\n{}", self.stderr());
                break;
            }
            assert!(Instant::now() < end, "the agent did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The reader threads end with the pipes; give them the same bound.
        let end = Instant::now() + LIMIT;
        while !self.stderr().contains("agent stopped") && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stderr()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sluicegate avro-client` with `lines` as the file (and `headers` as its header file), all
/// in one `appendBatch`.
fn push(dir: &Path, port: u16, name: &str, lines: &[String], headers: &[(&str, &str)]) {
    let file = dir.join(format!("{name}.txt"));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["avro-client", "-H", "127.0.0.1", "-p", &port.to_string()])
        .arg("-F")
        .arg(&file)
        .args(["--batch", "100000"]);
    if !headers.is_empty() {
        let hf = dir.join(format!("{name}.headers"));
        let text: String = headers.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&hf, text).unwrap();
        cmd.arg("-R").arg(&hf);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "avro-client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// `PIPELINE.<name>`'s counter `key` in the agent's `/metrics`, when present.
fn pipeline_metric(metrics_port: u16, name: &str, key: &str) -> Option<u64> {
    let resp = http_get(metrics_port, "/metrics");
    let body = resp.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get(format!("PIPELINE.{name}"))?
        .get(key)?
        .as_str()?
        .parse()
        .ok()
}

fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name),
    )
    .unwrap()
}

/// Parses `print` output: the rows of every `Time: <ms> ms` batch.
fn printed_batches(lines: &[String]) -> Vec<(i64, Vec<String>)> {
    let mut out: Vec<(i64, Vec<String>)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(t) = lines[i]
            .strip_prefix("Time: ")
            .and_then(|r| r.strip_suffix(" ms"))
        {
            assert!(i > 0 && lines[i - 1].starts_with("-----"), "{lines:?}");
            assert!(lines.get(i + 1).is_some_and(|l| l.starts_with("-----")));
            let mut rows = Vec::new();
            let mut j = i + 2;
            while j < lines.len() && !lines[j].is_empty() && !lines[j].starts_with("-----") {
                rows.push(lines[j].clone());
                j += 1;
            }
            out.push((t.parse().unwrap(), rows));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Deterministic pseudo-random numbers (xorshift), so a failure is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn word_count_example_prints_the_counts_of_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The metrics server logs its configured port, not a bound one: reserve a free port.
    let metrics_port = free_port();
    let conf = example("word_count.conf");
    assert!(conf.contains("output.type = print") && conf.contains("batchInterval = 1 s"));
    // All rows of every batch, so the counts can be compared (the example shows 10).
    let conf = set_key(&conf, "a1.sinks.wc.output.limit", "100000").replace("41414", "0");
    let mut agent = Agent::start(
        d,
        &conf,
        &[
            "-Dflume.monitoring.type=http".into(),
            format!("-Dflume.monitoring.port={metrics_port}"),
        ],
    );
    let port = agent.source_port();

    let vocab = [
        "to",
        "be",
        "or",
        "not",
        "that",
        "is",
        "the",
        "question",
        "whether",
        "tis",
        "nobler",
        "in",
        "mind",
        "suffer",
        "slings",
        "arrows",
        "outrageous",
        "fortune",
        "données",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut sent = 0u64;
    for round in 0..3 {
        let lines: Vec<String> = (0..700)
            .map(|_| {
                let n = 1 + rng.next(8);
                let words: Vec<&str> = (0..n).map(|_| vocab[rng.next(vocab.len())]).collect();
                for w in &words {
                    *expected.entry(w.to_string()).or_default() += 1;
                }
                words.join(" ")
            })
            .collect();
        sent += lines.len() as u64;
        push(d, port, &format!("round{round}"), &lines, &[]);
    }
    let total: u64 = expected.values().sum();

    let end = Instant::now() + LIMIT;
    let counts = loop {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for (_, rows) in printed_batches(&agent.stdout()) {
            for r in rows {
                let inner = r
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .unwrap();
                let (w, n) = inner.rsplit_once(',').unwrap();
                *counts.entry(w.to_string()).or_default() += n.parse::<u64>().unwrap();
            }
        }
        if counts.values().sum::<u64>() >= total || Instant::now() > end {
            break counts;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(counts, expected, "stderr:\n{}", agent.stderr());
    let batches = printed_batches(&agent.stdout());
    for (t, rows) in &batches {
        assert_eq!(t % 1000, 0, "batch times are multiples of the 1 s interval");
        let mut sorted = rows.clone();
        sorted.sort_by(|a, b| {
            let key = |r: &String| r[1..r.rfind(',').unwrap()].to_string();
            key(a).cmp(&key(b))
        });
        assert_eq!(rows, &sorted, "rows of a batch are sorted by word");
    }

    // The pipeline's counters are in the agent's /metrics.
    let end = Instant::now() + LIMIT;
    while pipeline_metric(metrics_port, "wc", "InputEventsTotal") != Some(sent) {
        assert!(
            Instant::now() < end,
            "PIPELINE.wc InputEventsTotal never reached {sent}: {}",
            http_get(metrics_port, "/metrics")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(pipeline_metric(metrics_port, "wc", "BatchesCompleted").unwrap() >= 1);
    let log = agent.stop();
    assert!(
        !log.contains(" WARN ") && !log.contains(" ERROR "),
        "a healthy run logs no WARN or ERROR:\n{log}"
    );
    assert!(log.contains("pipeline sink wc reads channel c1"), "{log}");
}

/// An event the next hop received: its headers and its body.
type Received = (Vec<(String, String)>, String);

/// The PostgreSQL server of the postgres output's tests (see `tests/pipeline_postgres.rs`):
/// without `SLUICEGATE_TEST_PG` the test fails with that reason, CI must provide the server.
fn pg_url() -> String {
    match std::env::var("SLUICEGATE_TEST_PG") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "SLUICEGATE_TEST_PG is not set, so the postgres output cannot be tested: start a \
             server with `export SLUICEGATE_TEST_PG=$(bash compat-tests/setup_postgres.sh start \
             | tail -n 1)` (.ci/run does this; it installs Debian's postgresql when missing)"
        ),
    }
}

fn pg() -> postgres::Client {
    postgres::Client::connect(&pg_url(), postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to SLUICEGATE_TEST_PG ({}): {e:?}", pg_url()))
}

/// `word -> n` of `table` (empty when the table does not exist yet).
fn pg_counts(table: &str) -> BTreeMap<String, u64> {
    let mut c = pg();
    let Ok(rows) = c.query(&format!("SELECT word, n FROM {table}"), &[]) else {
        return BTreeMap::new();
    };
    rows.iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect()
}

/// The word count example with `output.type = postgres` (running totals: `output.accumulate`),
/// through the binary: two rounds of lines pushed with `sluicegate avro-client`, the agent
/// SIGKILLed right after the second push (its events are in the file channel, the pipeline may
/// be anywhere in a batch) and started again. The table equals the counts computed here: no
/// batch lost, none counted twice.
#[test]
fn word_count_into_postgres_keeps_running_totals_exactly_once_across_a_kill() {
    let url = pg_url();
    let table = format!("wc_sink_{}", std::process::id());
    pg().batch_execute(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE IF NOT EXISTS sluicegate_batches (pipeline text NOT NULL, \
         target text NOT NULL, batch_id bigint NOT NULL, batch_time_ms bigint NOT NULL, \
         updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (pipeline, target)); \
         DELETE FROM sluicegate_batches WHERE target = '{table}'"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = example("word_count.conf");
    let conf = set_key(&conf, "a1.sinks.wc.output.type", "postgres")
        .replace("41414", "0")
        .replace(
            "a1.sinks.wc.output.limit = 10\n",
            &format!(
                "a1.sinks.wc.output.url = {url}\n\
                 a1.sinks.wc.output.table = {table}\n\
                 a1.sinks.wc.output.keys = word\n\
                 a1.sinks.wc.output.accumulate = n\n\
                 a1.sinks.wc.output.createTable = true\n"
            ),
        );
    assert!(conf.contains("output.table"), "{conf}");

    let vocab = [
        "to",
        "be",
        "or",
        "not",
        "it's",
        "back\\slash",
        "données",
        "Be",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut round = |expected: &mut BTreeMap<String, u64>| -> Vec<String> {
        (0..500)
            .map(|_| {
                let n = 1 + rng.next(6);
                let words: Vec<&str> = (0..n).map(|_| vocab[rng.next(vocab.len())]).collect();
                for w in &words {
                    *expected.entry(w.to_string()).or_default() += 1;
                }
                words.join(" ")
            })
            .collect()
    };
    let wait_for = |expected: &BTreeMap<String, u64>, agent: &Agent| {
        let total: u64 = expected.values().sum();
        let end = Instant::now() + LIMIT;
        loop {
            let got = pg_counts(&table);
            if got.values().sum::<u64>() >= total || Instant::now() > end {
                assert_eq!(&got, expected, "stderr:\n{}", agent.stderr());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // Round 1: counted, then a clean stop with a healthy log.
    let mut agent = Agent::start(d, &conf, &[]);
    let port = agent.source_port();
    let lines = round(&mut expected);
    push(d, port, "round0", &lines, &[]);
    wait_for(&expected, &agent);
    let log = agent.stop();
    assert!(
        !log.contains(" WARN ") && !log.contains(" ERROR "),
        "a healthy run logs no WARN or ERROR:\n{log}"
    );
    assert!(
        log.contains("pipeline sink wc reads channel c1")
            && log.contains(&format!("into PostgreSQL table {table}")),
        "{log}"
    );

    // Round 2: SIGKILL right after the push (the events are durable in the file channel).
    let mut agent = Agent::start(d, &conf, &[]);
    let port = agent.source_port();
    let lines = round(&mut expected);
    push(d, port, "round1", &lines, &[]);
    agent.child.kill().unwrap();
    agent.child.wait().unwrap();
    drop(agent);

    // Round 3 after the restart: every word counted exactly once.
    let mut agent = Agent::start(d, &conf, &[]);
    let port = agent.source_port();
    let lines = round(&mut expected);
    push(d, port, "round2", &lines, &[]);
    wait_for(&expected, &agent);
    agent.stop();
    // Nothing lands after the totals were reached.
    assert_eq!(pg_counts(&table), expected);
    let batch: i64 = pg()
        .query_one(
            "SELECT batch_id FROM sluicegate_batches WHERE pipeline = 'wc' AND target = $1",
            &[&table],
        )
        .unwrap()
        .get(0);
    assert!(
        batch >= 2,
        "the progress table records the last batch: {batch}"
    );
    pg().batch_execute(&format!(
        "DROP TABLE IF EXISTS {table}; DELETE FROM sluicegate_batches WHERE target = '{table}'"
    ))
    .unwrap();
}

#[test]
fn alerts_example_forwards_alert_events_to_the_next_hop() {
    use sluicegate::metrics::SourceCounter;
    use sluicegate::rpc::server::{Outcome, Request, RpcServer, ServerConfig};
    use sluicegate::rpc::{ServerTransport, TransportSettings};
    use sluicegate::wire::Status;

    // The next hop: an Avro RPC listener that keeps what it receives.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let g = got.clone();
    let handler = move |r: Request| {
        let g = g.clone();
        async move {
            let mut g = g.lock().unwrap();
            for e in &r.events {
                g.push((
                    e.header_map(),
                    String::from_utf8_lossy(e.body()).into_owned(),
                ));
            }
            Outcome::Status(Status::Ok)
        }
    };
    let server = rt.block_on(async {
        RpcServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            ServerTransport::new(TransportSettings::plain(), None, None),
            ServerConfig::default(),
            Arc::new(handler),
            Arc::new(SourceCounter::new("next-hop")),
        )
        .unwrap()
    });

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = example("alerts.conf");
    assert!(conf.contains("HAVING count(*) > 5") && conf.contains("batchInterval = 1 min"));
    // A 3 s batch instead of a minute keeps the test short; each host's lines go in one
    // appendBatch, so they land in one batch whatever its length.
    let conf = set_key(&conf, "a1.sinks.errors.batchInterval", "3 s")
        .replace("41415", "0")
        .replace("41416", &server.local_addr().port().to_string());
    let mut agent = Agent::start(d, &conf, &[]);
    let port = agent.source_port();

    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (host, errors, infos) in [("web1", 8, 20), ("web2", 5, 40), ("web3", 6, 0)] {
        let mut lines: Vec<String> = (0..errors)
            .map(|i| format!("2026-11-30 05:00:{i:02} ERROR request {i} failed"))
            .collect();
        lines.extend((0..infos).map(|i| format!("2026-11-30 05:01:{:02} INFO ok {i}", i % 60)));
        if errors > 5 {
            expected.insert(host.to_string(), errors);
        }
        push(d, port, host, &lines, &[("host", host)]);
    }
    // Pushed in order web1, web2, web3: when web3's alert has arrived, web2's batch is done.
    let end = Instant::now() + LIMIT;
    while !got
        .lock()
        .unwrap()
        .iter()
        .any(|(h, _)| h.contains(&("host".into(), "web3".into())))
    {
        assert!(
            Instant::now() < end,
            "no alert for web3:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let alerts = got.lock().unwrap().clone();
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for (headers, body) in &alerts {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let host = v["host"].as_str().unwrap().to_string();
        assert_eq!(
            headers
                .iter()
                .find(|(k, _)| k == "host")
                .map(|(_, v)| v.as_str()),
            Some(host.as_str()),
            "the group key is a header: {headers:?}"
        );
        let ts: i64 = headers
            .iter()
            .find(|(k, _)| k == "timestamp")
            .unwrap()
            .1
            .parse()
            .unwrap();
        assert_eq!(v["batch_time"].as_i64(), Some(ts));
        assert_eq!(ts % 3000, 0);
        assert!(headers
            .iter()
            .any(|(k, v)| k == "sluicegate.batch" && v.starts_with("errors-")));
        assert!(
            seen.insert(host, v["errors"].as_u64().unwrap()).is_none(),
            "{alerts:?}"
        );
    }
    assert_eq!(seen, expected);
    agent.stop();
    rt.block_on(server.shutdown());
}

#[test]
fn access_log_example_writes_requests_and_5xx_per_status_and_path_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = example("access_log.conf");
    assert!(conf.contains("output.type = jsonl") && conf.contains("batchInterval = 1 min"));
    let conf = set_key(&conf, "a1.sinks.stats.batchInterval", "1 s").replace("41417", "0");
    let mut agent = Agent::start(d, &conf, &[]);
    let port = agent.source_port();

    let paths = [
        "/",
        "/index.html",
        "/api/items",
        "/api/users",
        "/static/app.js",
    ];
    let statuses = [200u16, 200, 200, 304, 404, 500, 502, 503];
    let methods = ["GET", "GET", "POST", "HEAD"];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // (status, path) -> (requests, 5xx)
    let mut expected: BTreeMap<(u16, String), (u64, u64)> = BTreeMap::new();
    let mut lines = Vec::new();
    for i in 0..1500 {
        if i % 50 == 7 {
            lines.push(format!("garbage line {i} without the combined format"));
            continue;
        }
        let path = paths[rng.next(paths.len())];
        let status = statuses[rng.next(statuses.len())];
        let query = if rng.next(3) == 0 {
            "?id=3&sort=desc"
        } else {
            ""
        };
        lines.push(format!(
            "203.0.113.{} - frank [30/Nov/2026:05:{:02}:{:02} +0000] \"{} {path}{query} HTTP/1.1\" {status} {} \"https://example.com/start.html\" \"Mozilla/5.0 (X11; Linux x86_64)\"",
            rng.next(255),
            rng.next(60),
            rng.next(60),
            methods[rng.next(methods.len())],
            rng.next(5000),
        ));
        let e = expected.entry((status, path.to_string())).or_default();
        e.0 += 1;
        e.1 += u64::from(status >= 500);
    }
    for (k, chunk) in lines.chunks(500).enumerate() {
        push(d, port, &format!("access{k}"), chunk, &[]);
    }
    let valid: u64 = expected.values().map(|v| v.0).sum();

    let out = d.join("target/access_log/out");
    let read = |out: &PathBuf| {
        let mut got: BTreeMap<(u16, String), (u64, u64)> = BTreeMap::new();
        let mut files = 0;
        for e in std::fs::read_dir(out).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".jsonl") || name.starts_with('.') {
                continue;
            }
            files += 1;
            let batch_ms: i64 = name.split('-').nth(1).unwrap().parse().unwrap();
            for line in std::fs::read_to_string(e.path()).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["batch_time"].as_i64(), Some(batch_ms), "{line}");
                let key = (
                    v["status"].as_u64().unwrap() as u16,
                    v["path"].as_str().unwrap().to_string(),
                );
                let g = got.entry(key).or_default();
                g.0 += v["requests"].as_u64().unwrap();
                g.1 += v["server_errors"].as_u64().unwrap();
            }
        }
        (got, files)
    };
    let end = Instant::now() + LIMIT;
    let (got, files) = loop {
        let (got, files) = read(&out);
        if got.values().map(|v| v.0).sum::<u64>() >= valid || Instant::now() > end {
            break (got, files);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(files >= 1);
    assert_eq!(got, expected, "stderr:\n{}", agent.stderr());
    agent.stop();
}

#[test]
fn two_pipelines_in_one_agent_and_a_text_output() {
    // Two pipeline sinks, each over its own channel filled by one replicating source: the
    // word count printed, and the same counts as Spark's saveAsTextFiles layout.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = 0;
    let conf = format!(
        "\
a1.sources = r1
a1.channels = c1 c2
a1.sinks = wc files
a1.sources.r1.type = avro
a1.sources.r1.bind = 127.0.0.1
a1.sources.r1.port = {port}
a1.sources.r1.channels = c1 c2
a1.channels.c1.type = memory
a1.channels.c1.transactionCapacity = 10000
a1.channels.c1.capacity = 100000
a1.channels.c2.type = memory
a1.channels.c2.transactionCapacity = 10000
a1.channels.c2.capacity = 100000
a1.sinks.wc.type = pipeline
a1.sinks.wc.channel = c1
a1.sinks.wc.batchInterval = 500 ms
a1.sinks.wc.query = SELECT lower(word) AS w, count(*) AS n FROM events \\
    CROSS JOIN UNNEST(split(body, ' ')) AS t(word) GROUP BY lower(word)
a1.sinks.wc.output.type = print
a1.sinks.wc.output.limit = 1000
a1.sinks.wc.checkpointDir = ./state/wc
a1.sinks.files.type = pipeline
a1.sinks.files.channel = c2
a1.sinks.files.batchInterval = 500 ms
a1.sinks.files.workers = 2
a1.sinks.files.query = SELECT lower(word) AS w, count(*) AS n FROM events \\
    CROSS JOIN UNNEST(split(body, ' ')) AS t(word) GROUP BY lower(word)
a1.sinks.files.output.type = text
a1.sinks.files.output.dir = ./out
a1.sinks.files.output.prefix = counts
a1.sinks.files.output.suffix = txt
a1.sinks.files.checkpointDir = ./state/files
"
    );
    let mut agent = Agent::start(d, &conf, &[]);
    let port = agent.source_port();
    let lines: Vec<String> = (0..300).map(|i| format!("A a b{} C", i % 3)).collect();
    push(d, port, "lines", &lines, &[]);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lines {
        for w in l.split(' ') {
            *expected.entry(w.to_lowercase()).or_default() += 1;
        }
    }
    let total: u64 = expected.values().sum();
    let parse = |rows: Vec<String>| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for r in rows {
            let inner = r
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .unwrap();
            let (w, n) = inner.rsplit_once(',').unwrap();
            *m.entry(w.to_string()).or_default() += n.parse::<u64>().unwrap();
        }
        m
    };
    let text_rows = |d: &Path| {
        let mut rows = Vec::new();
        for e in std::fs::read_dir(d.join("out"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("counts-") && e.path().join("_SUCCESS").exists() {
                assert!(name.ends_with(".txt"), "{name}");
                let text = std::fs::read_to_string(e.path().join("part-00000")).unwrap();
                rows.extend(text.lines().map(str::to_string));
            }
        }
        rows
    };
    let end = Instant::now() + LIMIT;
    loop {
        let printed = parse(
            printed_batches(&agent.stdout())
                .into_iter()
                .flat_map(|(_, r)| r)
                .collect(),
        );
        let written = parse(text_rows(d));
        let done = |m: &BTreeMap<String, u64>| m.values().sum::<u64>() >= total;
        if (done(&printed) && done(&written)) || Instant::now() > end {
            assert_eq!(printed, expected, "print:\n{}", agent.stderr());
            assert_eq!(written, expected, "text:\n{}", agent.stderr());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(d.join("state/wc/plan").exists() && d.join("state/files/plan").exists());
    agent.stop();
}

#[test]
fn the_agent_refuses_to_start_on_a_query_error_and_names_its_line_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The word count example with a window the dialect does not take (yet).
    let conf = set_key(
        &example("word_count.conf"),
        "a1.sinks.wc.query",
        "SELECT word, count(*) AS n \\\n    FROM events CROSS JOIN UNNEST(split(body, ' ')) AS t(word) \\\n    WHERE word LIKE 'a%' AND wrd <> ''",
    )
    .replace("41414", "0");
    std::fs::create_dir_all(d.join("examples")).unwrap();
    std::fs::write(d.join("examples/test.conf"), &conf).unwrap();
    let line = conf
        .lines()
        .position(|l| l.starts_with("a1.sinks.wc.query"))
        .unwrap()
        + 1;
    let out = Command::new(BIN)
        .current_dir(d)
        .args([
            "agent",
            "-n",
            "a1",
            "-f",
            "examples/test.conf",
            "--no-summary",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = format!("examples/test.conf:{line}: a1.sinks.wc.query: query 1:112: found `wrd`:");
    assert!(stderr.contains(&want), "want {want} in:\n{stderr}");
    // Nothing was started: no channel directories were created.
    assert!(!d.join("target/word_count").exists());
}

#[test]
fn a_reload_restarts_a_changed_pipeline_and_removes_a_deleted_one() {
    use sluicegate::agent::lifecycle::Agent;
    use sluicegate::config::SystemProps;
    use sluicegate::metrics::MetricsRegistry;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = |out: &str, with_pipeline: bool| {
        let mut c = format!(
            "\
a1.sources = gen
a1.channels = c1
a1.sinks = {sinks}
a1.sources.gen.type = seq
a1.sources.gen.totalEvents = 100
a1.sources.gen.channels = c1
a1.channels.c1.type = memory
a1.sinks.k.type = null
a1.sinks.k.channel = c1
",
            sinks = if with_pipeline { "p" } else { "k" }
        );
        if with_pipeline {
            c = c.replace("a1.sinks.k.", "#");
            c.push_str(&format!(
                "\
a1.sinks.p.type = pipeline
a1.sinks.p.channel = c1
a1.sinks.p.batchInterval = 100 ms
a1.sinks.p.query = SELECT count(*) AS n FROM events
a1.sinks.p.output.type = jsonl
a1.sinks.p.output.dir = {out}
a1.sinks.p.checkpointDir = {ck}
a1.sinks.p.discardStateOnChange = true
",
                out = d.join(out).display(),
                ck = d.join("state").display()
            ));
        }
        c
    };
    let rows = |out: &str| -> Vec<u64> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(d.join(out))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().ends_with(".jsonl") {
                for l in std::fs::read_to_string(e.path()).unwrap().lines() {
                    let j: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.push(j["n"].as_u64().unwrap());
                }
            }
        }
        v
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let end = Instant::now() + LIMIT;
        while !f() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let path = d.join("flume.conf");
    std::fs::write(&path, conf("out1", true)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let registry = MetricsRegistry::new();
    let mut agent = Agent::start(
        &path,
        "a1",
        SystemProps::new(),
        rt.handle().clone(),
        registry.clone(),
    )
    .unwrap();
    assert!(agent.running().contains(&"pipeline p".to_string()));
    // Every generated event is counted once (batches without events say 0).
    wait("100 events counted", &|| {
        rows("out1").iter().sum::<u64>() == 100
    });
    let has_group = |r: &MetricsRegistry| {
        r.groups()
            .iter()
            .any(|g| g.kind() == "PIPELINE" && g.name() == "p")
    };
    assert!(has_group(&registry));

    // A changed output: the pipeline (only) restarts and writes to the new place.
    std::fs::write(&path, conf("out2", true)).unwrap();
    let summary = agent.reload().unwrap();
    assert_eq!(summary.stopped, vec!["pipeline p".to_string()]);
    assert_eq!(summary.started, vec!["pipeline p".to_string()]);
    wait("a batch in out2", &|| !rows("out2").is_empty());
    assert_eq!(
        rows("out2").iter().sum::<u64>(),
        0,
        "no event counted twice"
    );

    // Removed: stopped, and its metrics leave the registry.
    std::fs::write(&path, conf("out2", false)).unwrap();
    let summary = agent.reload().unwrap();
    assert!(
        summary.stopped.contains(&"pipeline p".to_string()),
        "{summary}"
    );
    assert!(!agent.running().iter().any(|r| r.starts_with("pipeline")));
    assert!(!has_group(&registry));
    agent.stop();
}

#[test]
fn trending_example_prints_the_top_10_of_every_closed_10s_window() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let conf = example("trending.conf");
    assert!(conf.contains("HOP(event_time, INTERVAL '1' SECOND, INTERVAL '10' SECOND)"));
    // Every row of every closed window (the example prints at most 100 per batch).
    let conf = set_key(&conf, "a1.sinks.trending.output.limit", "100000").replace("41417", "0");
    let mut agent = Agent::start(d, &conf, &[]);
    let port = agent.source_port();

    // 14 s of event time, one push per second of it, every event stamped by its sender; word
    // frequencies drift so each window has its own top 10, with ties.
    const T0: i64 = 1_700_000_000_000;
    let vocab: Vec<String> = (0..30).map(|i| format!("w{i:02}")).collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut per_second: Vec<BTreeMap<String, u64>> = Vec::new();
    for s in 0..14i64 {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let lines: Vec<String> = (0..60)
            .map(|_| {
                let n = 1 + rng.next(5);
                let words: Vec<&str> = (0..n)
                    .map(|_| vocab[(rng.next(12) + s as usize) % vocab.len()].as_str())
                    .collect();
                for w in &words {
                    *counts.entry(w.to_string()).or_default() += 1;
                }
                words.join(" ")
            })
            .collect();
        let ts = (T0 + s * 1000 + 500).to_string();
        push(d, port, &format!("s{s}"), &lines, &[("timestamp", &ts)]);
        per_second.push(counts);
    }

    // The reference: every 10 s window sliding by 1 s that holds an event, its top 10 by count
    // descending, then word.
    let mut expected: BTreeMap<(i64, i64), Vec<(String, u64)>> = BTreeMap::new();
    for start_s in -9..14i64 {
        let mut w: BTreeMap<String, u64> = BTreeMap::new();
        for s in start_s.max(0)..(start_s + 10).min(14) {
            for (word, c) in &per_second[s as usize] {
                *w.entry(word.clone()).or_default() += c;
            }
        }
        let mut top: Vec<(String, u64)> = w.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(10);
        let start = T0 + start_s * 1000;
        expected.insert((start, start + 10_000), top);
    }

    // The watermark (2 s behind the newest event) closes the early windows; the idle timeout
    // (2 s) closes the rest once the pushes stop.
    let end = Instant::now() + LIMIT;
    let got = loop {
        let mut got: BTreeMap<(i64, i64), Vec<(String, u64)>> = BTreeMap::new();
        for (_, rows) in printed_batches(&agent.stdout()) {
            for r in rows {
                let inner = r.strip_prefix('(').and_then(|r| r.strip_suffix(')'));
                let f: Vec<&str> = inner.unwrap().split(',').collect();
                assert_eq!(f.len(), 4, "row {r}");
                got.entry((f[0].parse().unwrap(), f[1].parse().unwrap()))
                    .or_default()
                    .push((f[2].to_string(), f[3].parse().unwrap()));
            }
        }
        if got.len() >= expected.len() || Instant::now() > end {
            break got;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(got, expected, "stderr:\n{}", agent.stderr());
    let log = agent.stop();
    assert!(
        !log.contains(" WARN ") && !log.contains(" ERROR "),
        "a healthy run logs no WARN or ERROR:\n{log}"
    );
}
