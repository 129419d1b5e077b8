//! End to end, per example config: start the binary on it, push events with
//! `sluicegate avro-client`, read them back from the sink's output, stop with SIGTERM, and
//! check nothing was lost. The examples are rewritten only where a test must: ports and
//! directories (a temporary one).
//!
//! Ports are never guessed: every Avro source binds port 0 and the test reads the bound port
//! back from the agent's `Avro source started ... addr=127.0.0.1:<port>` log line. A port that
//! must refuse connections is reserved by a socket bound but never listening, held for the
//! whole test. Where an example's sink points at its own agent's source (`hop.conf`), the sink
//! goes through a relay listening on a port the test holds, which forwards to the port read
//! back.

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;
use support::{lines_in, BIN};

/// How long the test waits for anything an agent does (start, log, deliver, stop).
const LIMIT: Duration = Duration::from_secs(60);

fn example(rel: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(rel),
    )
    .unwrap()
}

/// A port on 127.0.0.1 that refuses connections for as long as the returned socket lives: it is
/// bound (so nobody else can take the port) but never listens.
fn dead_port() -> (socket2::Socket, u16) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    s.bind(&any.into()).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

/// Forwards every connection accepted on `listener` to 127.0.0.1:`to`, both ways, until either
/// side closes.
fn relay(listener: TcpListener, to: u16) {
    std::thread::spawn(move || {
        for down in listener.incoming() {
            let Ok(down) = down else { return };
            let Ok(up) = TcpStream::connect(("127.0.0.1", to)) else {
                continue; // the caller sees a closed connection and retries
            };
            for (mut from, mut into) in [
                (down.try_clone().unwrap(), up.try_clone().unwrap()),
                (up, down),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut into);
                    let _ = into.shutdown(Shutdown::Write);
                });
            }
        }
    });
}

struct Agent {
    child: Child,
    /// Every stderr (log) line so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn start(conf: &Path, name: &str) -> Agent {
        let mut child = Command::new(BIN)
            .args(["agent", "--no-reload-conf", "-n", name, "-f"])
            .arg(conf)
            .env("SLUICEGATE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        // Drains the pipe for the agent's whole life (a full pipe would block its logging).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Agent { child, log }
    }

    /// The port the Avro source `source` bound (its config says port 0), from its start log line.
    fn bound_port(&mut self, source: &str) -> u16 {
        let end = Instant::now() + LIMIT;
        let tag = format!("source={source} ");
        loop {
            let found = self.log.lock().unwrap().iter().find_map(|l| {
                if !l.contains("Avro source started") || !l.contains(&tag) {
                    return None;
                }
                let addr = l.split("addr=").nth(1)?.split_whitespace().next()?;
                addr.parse::<SocketAddr>().ok().map(|a| a.port())
            });
            if let Some(port) = found {
                return port;
            }
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < end,
                "no 'Avro source started' line for {source} (agent exit: {exited:?}); log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn sigterm_and_wait(mut self) -> bool {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        );
        let end = Instant::now() + LIMIT;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_lines(dir: &Path, n: usize, limit: Duration) -> Vec<String> {
    let end = Instant::now() + limit;
    loop {
        let l = lines_in(dir);
        if l.len() >= n || Instant::now() > end {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn avro_client(port: u16, input: &Path, extra: &[&str]) {
    let out = Command::new(BIN)
        .args([
            "avro-client",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-F",
        ])
        .arg(input)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "avro-client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_embedded_default_hop_delivers_generated_and_pushed_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The embedded hop's sink talks to its own agent's source: through a relay on a port this
    // test holds, since the source's port is only known once it has bound port 0.
    let relay_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_port = relay_listener.local_addr().unwrap().port();
    let conf = example("hop.conf")
        .replace("./target/hop", &d.display().to_string())
        .replace(
            "a1.sinks.fwd.port = 4141",
            &format!("a1.sinks.fwd.port = {relay_port}"),
        )
        .replace("a1.sources.r1.port = 4141", "a1.sources.r1.port = 0")
        .replace("totalEvents = 100000", "totalEvents = 3000");
    assert!(
        !conf.contains("port = 4141"),
        "every port of hop.conf rewritten"
    );
    std::fs::create_dir_all(d.join("out")).unwrap();
    let path = d.join("hop.conf");
    std::fs::write(&path, conf).unwrap();
    let mut agent = Agent::start(&path, "a1");
    let port = agent.bound_port("r1");
    relay(relay_listener, port);
    let input = d.join("lines.txt");
    std::fs::write(
        &input,
        (0..500)
            .map(|i| format!("client-{i}\n"))
            .collect::<String>(),
    )
    .unwrap();
    avro_client(port, &input, &["--batch", "50"]);
    wait_lines(&d.join("out"), 3500, LIMIT);
    assert!(
        agent.sigterm_and_wait(),
        "the agent must stop cleanly on SIGTERM"
    );
    let got = lines_in(&d.join("out"));
    let mut seq: Vec<u64> = got.iter().filter_map(|l| l.parse().ok()).collect();
    let client: Vec<&String> = got.iter().filter(|l| l.starts_with("client-")).collect();
    seq.sort_unstable();
    assert_eq!(
        seq,
        (0..3000).collect::<Vec<_>>(),
        "every generated event exactly once"
    );
    let expected: Vec<String> = (0..500).map(|i| format!("client-{i}")).collect();
    assert_eq!(
        client.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        expected,
        "pushed lines in order"
    );
}

#[test]
fn the_migration_collector_runs_unchanged_behind_deflating_upstreams_and_fails_over() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Store A is down for the whole test: its port refuses connections.
    let (_store_a_socket, store_a) = dead_port();
    // Only store B runs: the failover group must route around the dead, higher-priority A.
    std::fs::create_dir_all(d.join("storeb/out")).unwrap();
    let store_conf = d.join("store.conf");
    std::fs::write(
        &store_conf,
        format!(
            "s.sources = r\ns.channels = c\ns.sinks = k\n\
             s.sources.r.type = avro\ns.sources.r.bind = 127.0.0.1\ns.sources.r.port = 0\ns.sources.r.channels = c\n\
             s.channels.c.type = memory\ns.channels.c.capacity = 100000\ns.channels.c.transactionCapacity = 10000\n\
             s.sinks.k.type = file_roll\ns.sinks.k.sink.directory = {}\ns.sinks.k.sink.rollInterval = 0\ns.sinks.k.channel = c\n",
            d.join("storeb/out").display()
        ),
    )
    .unwrap();
    let mut store = Agent::start(&store_conf, "s");
    let store_b = store.bound_port("r");
    // The collector file, only re-pointed at this machine.
    let conf = example("migration/collector-sluicegate.conf")
        .replace("/var/lib/sluicegate", &d.display().to_string())
        .replace("0.0.0.0", "127.0.0.1")
        .replace(
            "collector.sources.in.port = 4141",
            "collector.sources.in.port = 0",
        )
        .replace("store-a.example.internal", "127.0.0.1")
        .replace("store-b.example.internal", "127.0.0.1")
        .replace(
            "collector.sinks.out1.port = 4545",
            &format!("collector.sinks.out1.port = {store_a}"),
        )
        .replace(
            "collector.sinks.out2.port = 4545",
            &format!("collector.sinks.out2.port = {store_b}"),
        );
    assert!(
        !conf.contains("port = 4141") && !conf.contains("port = 4545"),
        "every port of the collector rewritten"
    );
    let collector_conf = d.join("collector.conf");
    std::fs::write(&collector_conf, &conf).unwrap();
    let mut collector = Agent::start(&collector_conf, "collector");
    let in_port = collector.bound_port("in");
    let input = d.join("access.log");
    std::fs::write(
        &input,
        (0..2000)
            .map(|i| format!("GET /page/{i}\n"))
            .collect::<String>(),
    )
    .unwrap();
    avro_client(in_port, &input, &["--batch", "100", "--deflate"]);
    let got = wait_lines(&d.join("storeb/out"), 2000, LIMIT);
    assert!(collector.sigterm_and_wait());
    assert!(store.sigterm_and_wait());
    let expected: Vec<String> = (0..2000).map(|i| format!("GET /page/{i}")).collect();
    let mut got_sorted = got.clone();
    got_sorted.dedup();
    assert_eq!(
        got_sorted, expected,
        "every access-log line reached store B once, in order"
    );
}
