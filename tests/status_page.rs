//! The status page at `/` of the monitoring port, in a real headless browser: Debian's
//! `chromium` (installed by `.ci/run` through `compat-tests/setup_chromium.sh`; a missing
//! browser fails the test with that advice), driven over the DevTools protocol by the small
//! client below (a WebSocket over a `TcpStream`, all on 127.0.0.1).
//!
//! * The binary: the page loads with no console message of level error, no exception and
//!   nothing in its `#errors` box; it draws the topology; while `sluicegate bench` pushes
//!   events its counters grow and its charts gain points; when the agent stops it says
//!   "disconnected" and when the agent is back it reconnects by itself.
//! * A pipeline (run in process through `Agent::run_pipeline`, the only way to run one): it
//!   appears in the topology behind its channel, and its latest results appear as a table of
//!   `[word, count]` rows.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_sluicegate");
const CHROMIUM: &str = "/usr/bin/chromium";
/// Generous bound for anything the page must show (a loaded 2-core CI machine).
const PATIENCE: Duration = Duration::from_secs(60);

/// One browser at a time: the tests of this file run one after the other.
static BROWSER: Mutex<()> = Mutex::new(());

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A blocking `GET` (the body read by `Content-Length`, as chromium keeps the connection
/// open); the status and body, or `None` when nothing answers.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if let Some(len) = len {
                if buf.len() >= end + 4 + len {
                    let status = head.split_whitespace().nth(1)?.parse().ok()?;
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    return Some((status, body));
                }
            }
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            let text = String::from_utf8_lossy(&buf).into_owned();
            let (head, body) = text.split_once("\r\n\r\n")?;
            let status = head.split_whitespace().nth(1)?.parse().ok()?;
            return Some((status, body.to_string()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Polls `f` every 20 ms until it returns `Some`, up to [`PATIENCE`]; panics with `what`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------------ DevTools over WebSocket

/// A DevTools protocol session with one page.
struct Cdp {
    stream: TcpStream,
    next_id: u64,
    incoming: mpsc::Receiver<Value>,
    /// Every event received so far (method + params).
    events: Vec<Value>,
}

fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let n = payload.len();
    if n < 126 {
        f.push(0x80 | n as u8);
    } else if n <= u16::MAX as usize {
        f.push(0x80 | 126);
        f.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(n as u64).to_be_bytes());
    }
    // Clients must mask; the key need not be secret here.
    let key: [u8; 4] = rand::random();
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// Reads frames until a whole text message; `None` at close or error. Answers pings.
fn ws_read_message(r: &mut impl Read, w: &mut TcpStream) -> Option<String> {
    let mut message = Vec::new();
    loop {
        let mut h = [0u8; 2];
        r.read_exact(&mut h).ok()?;
        let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0f);
        let mut len = (h[1] & 0x7f) as u64;
        if len == 126 {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).ok()?;
            len = u16::from_be_bytes(b) as u64;
        } else if len == 127 {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).ok()?;
            len = u64::from_be_bytes(b);
        }
        let mut payload = vec![0u8; len as usize];
        r.read_exact(&mut payload).ok()?;
        match opcode {
            0x8 => return None,
            0x9 => {
                let _ = w.write_all(&ws_frame(0xA, &payload));
            }
            0x0..=0x2 => {
                message.extend_from_slice(&payload);
                if fin {
                    return String::from_utf8(message).ok();
                }
            }
            _ => {}
        }
    }
}

impl Cdp {
    /// Connects to `ws://host:port/path`.
    fn connect(url: &str) -> Cdp {
        let rest = url.strip_prefix("ws://").expect("a ws:// URL");
        let (hostport, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = TcpStream::connect(hostport).unwrap();
        stream.set_read_timeout(None).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: c2x1aWNlZ2F0ZSBzdGF0dXM=\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 101 "), "WebSocket handshake: {status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let (tx, rx) = mpsc::channel();
        let mut pong = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            while let Some(text) = ws_read_message(&mut reader, &mut pong) {
                match serde_json::from_str::<Value>(&text) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => continue,
                }
            }
        });
        Cdp {
            stream,
            next_id: 1,
            incoming: rx,
            events: Vec::new(),
        }
    }

    /// Sends a command and waits (bounded) for its answer, keeping the events that arrive.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.stream
            .write_all(&ws_frame(0x1, msg.as_bytes()))
            .unwrap();
        let end = Instant::now() + PATIENCE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let v = self
                .incoming
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no answer to {method}: {e}"));
            if v["id"] == id {
                if let Some(err) = v.get("error") {
                    panic!("{method} failed: {err}");
                }
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Evaluates `expr` in the page; its value (JSON-serialisable), or the exception.
    fn try_eval(&mut self, expr: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        match r.get("exceptionDetails") {
            Some(ex) => Err(ex.to_string()),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    /// [`Cdp::try_eval`], panicking on an exception.
    fn eval(&mut self, expr: &str) -> Value {
        self.try_eval(expr)
            .unwrap_or_else(|e| panic!("evaluating {expr}: {e}"))
    }

    /// Console errors, exceptions and browser log errors seen so far.
    fn errors(&mut self) -> Vec<String> {
        while let Ok(v) = self.incoming.try_recv() {
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
        self.events
            .iter()
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Runtime.exceptionThrown" => {
                        Some(format!("exception: {}", p["exceptionDetails"]))
                    }
                    "Runtime.consoleAPICalled"
                        if matches!(p["type"].as_str(), Some("error") | Some("assert")) =>
                    {
                        Some(format!("console.{}: {}", p["type"], p["args"]))
                    }
                    "Log.entryAdded" if p["entry"]["level"] == "error" => Some(format!(
                        "log: {} ({})",
                        p["entry"]["text"], p["entry"]["url"]
                    )),
                    _ => None,
                }
            })
            .collect()
    }
}

/// A headless chromium, killed on drop.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    devtools: SocketAddr,
}

impl Browser {
    fn launch() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: run compat-tests/setup_chromium.sh (CI's .ci/run does)"
        );
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMIUM}: {e}"));
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/<id>" on stderr; the rest
        // of stderr is drained so the browser never blocks on it.
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(PATIENCE)
            .expect("chromium did not announce its DevTools port");
        let hostport = url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .unwrap();
        Browser {
            child,
            _profile: profile,
            devtools: hostport.parse().unwrap(),
        }
    }

    /// A DevTools session with the browser's page, with Runtime, Log and Page events on,
    /// navigated to `url`.
    fn open(&self, url: &str) -> Cdp {
        let page = wait_for("chromium's page target", || {
            let (_, body) = http_get(self.devtools, "/json/list")?;
            let list: Value = serde_json::from_str(&body).ok()?;
            list.as_array()?
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
        });
        let mut cdp = Cdp::connect(&page);
        cdp.call("Runtime.enable", json!({}));
        cdp.call("Log.enable", json!({}));
        cdp.call("Page.enable", json!({}));
        cdp.call("Page.navigate", json!({ "url": url }));
        cdp
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the page shows, read from its DOM.
const STATE: &str = r##"JSON.stringify({
  polls: Number(document.body.getAttribute("data-polls")),
  status: document.getElementById("status").textContent,
  errors: document.getElementById("errors").textContent,
  agent: document.getElementById("agent").textContent,
  nodes: Array.from(document.querySelectorAll("#topology-svg g.node")).map(g => g.getAttribute("data-id")),
  edges: document.querySelectorAll("#topology-svg path.edge").length,
  rows: Object.fromEntries(Array.from(document.querySelectorAll("#components tbody tr")).map(tr =>
    [tr.getAttribute("data-key"), Object.fromEntries(Array.from(tr.querySelectorAll("td[data-f]")).map(td =>
      [td.getAttribute("data-f"), td.textContent]))])),
  points: Object.fromEntries(Array.from(document.querySelectorAll("#charts .chart")).map(c =>
    [c.getAttribute("data-key"), Number(c.getAttribute("data-points"))])),
  latest: Array.from(document.querySelectorAll("table.latest")).map(t => ({
    output: t.getAttribute("data-output"),
    rows: Array.from(t.querySelectorAll("tbody tr")).map(tr => Array.from(tr.children).map(td => td.textContent))
  }))
})"##;

/// The page's state, or why it cannot be read (the page is still loading: the navigation
/// starts from about:blank, which has none of the elements).
fn state(cdp: &mut Cdp) -> Result<Value, String> {
    let s = cdp.try_eval(STATE)?;
    serde_json::from_str(s.as_str().ok_or("the state is not a string")?).map_err(|e| e.to_string())
}

/// Waits (every 100 ms, up to [`PATIENCE`]) until the page's state satisfies `ok`.
fn wait_state(cdp: &mut Cdp, what: &str, mut ok: impl FnMut(&Value) -> bool) -> Value {
    let end = Instant::now() + PATIENCE;
    loop {
        let s = state(cdp);
        if let Ok(s) = &s {
            if ok(s) {
                return s.clone();
            }
        }
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}; page: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cell(s: &Value, key: &str, field: &str) -> u64 {
    s["rows"][key][field]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// For a look at the page: `SLUICEGATE_STATUS_SCREENSHOT=/tmp/status cargo test --release
/// --test status_page` writes `/tmp/status-<name>.png`.
fn screenshot_if_asked(cdp: &mut Cdp, name: &str) {
    if let Some(prefix) = std::env::var_os("SLUICEGATE_STATUS_SCREENSHOT") {
        let shot = cdp.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = base64_decode(shot["data"].as_str().unwrap());
        let path = format!("{}-{name}.png", prefix.to_string_lossy());
        std::fs::write(path, png).unwrap();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
    bytes
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().fold(0u32, |a, &v| (a << 6) | v as u32) << (6 * (4 - c.len()));
            let b = n.to_be_bytes();
            b[1..c.len()].to_vec()
        })
        .collect()
}

// ------------------------------------------------------------------ the binary

struct Agent {
    child: Child,
}

impl Agent {
    fn start(conf: &Path, metrics_port: u16) -> Agent {
        let child = Command::new(BIN)
            .args(["agent", "-n", "a1", "-f"])
            .arg(conf)
            .args([
                "--no-reload-conf",
                "-Dflume.monitoring.type=http",
                "-Dflume.monitoring.bind=127.0.0.1",
            ])
            .arg(format!("-Dflume.monitoring.port={metrics_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], metrics_port).into();
        wait_for("the agent's /topology", || {
            http_get(addr, "/topology").filter(|(s, b)| *s == 200 && b.contains("\"r1\""))
        });
        Agent { child }
    }

    fn stop(mut self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let end = Instant::now() + PATIENCE;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < end, "the agent did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_status_page_shows_the_binary_at_work_and_survives_its_restart() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("out")).unwrap();
    let (src_port, metrics_port) = (free_port(), free_port());
    let conf = d.path().join("flume.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\na1.sinks = k1\n\
             a1.sources.r1.type = avro\na1.sources.r1.bind = 127.0.0.1\n\
             a1.sources.r1.port = {src_port}\na1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\na1.channels.c1.capacity = 100000\n\
             a1.channels.c1.transactionCapacity = 1000\n\
             a1.sinks.k1.type = file_roll\na1.sinks.k1.channel = c1\n\
             a1.sinks.k1.sink.directory = {}\na1.sinks.k1.sink.rollInterval = 0\n",
            d.path().join("out").display()
        ),
    )
    .unwrap();
    let agent = Agent::start(&conf, metrics_port);
    let browser = Browser::launch();
    let mut cdp = browser.open(&format!("http://127.0.0.1:{metrics_port}/"));

    // Loaded: connected, the topology drawn with its two edges, no error anywhere.
    let s = wait_state(&mut cdp, "the first polls", |s| {
        s["polls"].as_u64() >= Some(2) && s["edges"].as_u64() == Some(2)
    });
    assert_eq!(s["status"], "connected");
    assert_eq!(s["agent"], "· agent a1");
    assert_eq!(s["nodes"], json!(["SOURCE.r1", "CHANNEL.c1", "SINK.k1"]));

    // Events flow: the bench pushes 400 events/s at the source.
    let mut bench = Command::new(BIN)
        .args(["bench", "--target"])
        .arg(format!("127.0.0.1:{src_port}"))
        .args([
            "--rate",
            "400",
            "--events",
            "100000",
            "--connections",
            "1",
            "--batch-size",
            "20",
            "--body-size",
            "64",
            "--json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = wait_state(&mut cdp, "events delivered", |s| {
        cell(s, "SINK.k1", "out") > 0 && s["points"]["SOURCE.r1"].as_u64() > Some(0)
    });
    let polls = first["polls"].as_u64().unwrap();
    let second = wait_state(&mut cdp, "more events and more chart points", |s| {
        s["polls"].as_u64().unwrap() >= polls + 3
            && cell(s, "SINK.k1", "out") > cell(&first, "SINK.k1", "out")
            && cell(s, "SOURCE.r1", "in") > cell(&first, "SOURCE.r1", "in")
            && s["points"]["SOURCE.r1"].as_u64() > first["points"]["SOURCE.r1"].as_u64()
            && s["points"]["CHANNEL.c1"].as_u64() > first["points"]["CHANNEL.c1"].as_u64()
            && s["points"]["SINK.k1"].as_u64() > first["points"]["SINK.k1"].as_u64()
    });
    // The rate columns show the flow (a positive rate on the source while the bench runs).
    assert!(
        second["rows"]["SOURCE.r1"]["rin"]
            .as_str()
            .is_some_and(|r| r.parse::<f64>().is_ok_and(|r| r > 0.0)),
        "{second}"
    );
    // And the polylines carry those points.
    let drawn = cdp.eval(
        r##"Array.from(document.querySelectorAll("#charts polyline")).map(p => p.getAttribute("points").split(" ").filter(Boolean).length).reduce((a, b) => a + b, 0)"##,
    );
    assert!(drawn.as_u64() > Some(0), "no chart point drawn");
    assert_eq!(second["errors"], "", "the page caught errors");
    let errors = cdp.errors();
    assert!(
        errors.is_empty(),
        "console errors while loading and running: {errors:?}"
    );
    screenshot_if_asked(&mut cdp, "agent");
    // The error collector itself works: a console.error in the page is seen.
    cdp.eval(r#"console.error("probe from the test")"#);
    wait_for("the probe console.error", || {
        cdp.errors()
            .iter()
            .any(|e| e.contains("probe from the test"))
            .then_some(())
    });
    let _ = bench.kill();
    let _ = bench.wait();

    // The agent stops: the page says so and keeps polling; back again, it reconnects.
    agent.stop();
    wait_state(&mut cdp, "disconnected", |s| s["status"] == "disconnected");
    let agent = Agent::start(&conf, metrics_port);
    let back = wait_state(&mut cdp, "reconnected", |s| s["status"] == "connected");
    let polls = back["polls"].as_u64().unwrap();
    wait_state(&mut cdp, "polling after the restart", |s| {
        s["polls"].as_u64().unwrap() >= polls + 2 && s["edges"].as_u64() == Some(2)
    });
    agent.stop();
}

#[test]
fn the_status_page_shows_a_pipeline_and_its_latest_results() {
    use sluicegate::metrics::http::MetricsServer;
    use sluicegate::metrics::MetricsRegistry;
    use sluicegate::pipeline::PipelineConfig;

    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = d.path().join("flume.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\na1.channels = c1\n\
             a1.sources.r1.type = avro\na1.sources.r1.bind = 127.0.0.1\n\
             a1.sources.r1.port = {port}\na1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\na1.channels.c1.capacity = 100000\n\
             a1.channels.c1.transactionCapacity = 10000\n"
        ),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let registry = MetricsRegistry::new();
    let server = rt
        .block_on(MetricsServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            registry.clone(),
        ))
        .unwrap();
    let metrics = server.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = rt.spawn(server.run(async {
        let _ = stop_rx.await;
    }));
    let mut agent = sluicegate::agent::lifecycle::Agent::start(
        &conf,
        "a1",
        sluicegate::agent::cli::parse_defines(std::iter::empty()),
        rt.handle().clone(),
        registry.clone(),
    )
    .unwrap();
    agent
        .run_pipeline(
            "c1",
            "wc",
            PipelineConfig {
                batch_interval: Duration::from_millis(200),
                ..Default::default()
            },
            |ctx| {
                ctx.events()
                    .words()
                    .count_by_value()
                    .print_to(10, Arc::new(Mutex::new(std::io::sink())));
            },
        )
        .unwrap();

    // The topology names the pipeline behind its channel.
    let (_, body) = http_get(metrics, "/topology").unwrap();
    let topo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(topo["pipelines"], json!([{"name": "wc", "channel": "c1"}]));

    // One batch of lines: 3 × "alpha", 2 × "beta", 1 × "gamma".
    let input = d.path().join("lines.txt");
    std::fs::write(&input, "alpha beta\nalpha gamma\nbeta alpha\n").unwrap();
    let status = Command::new(BIN)
        .args([
            "avro-client",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-F",
        ])
        .arg(&input)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let browser = Browser::launch();
    let mut cdp = browser.open(&format!("http://{metrics}/"));
    let s = wait_state(&mut cdp, "the pipeline's latest results", |s| {
        s["latest"].as_array().is_some_and(|t| !t.is_empty())
            && s["latest"][0]["rows"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
    });
    assert_eq!(
        s["nodes"],
        json!(["SOURCE.r1", "CHANNEL.c1", "PIPELINE.wc"])
    );
    assert_eq!(s["edges"], 2);
    assert_eq!(s["latest"][0]["output"], "print(10)");
    let counts: BTreeMap<String, String> = s["latest"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()))
        .collect();
    let want: BTreeMap<String, String> = [("alpha", "3"), ("beta", "2"), ("gamma", "1")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    assert_eq!(counts, want);
    screenshot_if_asked(&mut cdp, "pipeline");
    assert_eq!(s["errors"], "");
    let errors = cdp.errors();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    drop(cdp);
    drop(browser);
    agent.stop();
    let _ = stop_tx.send(());
    let _ = rt.block_on(served);
}
