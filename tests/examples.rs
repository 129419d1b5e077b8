//! End to end, per example config: start the binary on it, push events with
//! `sluicegate avro-client`, read them back from the sink's output, stop with SIGTERM, and
//! check nothing was lost. The examples are rewritten only where a test must: ports (free ones)
//! and directories (a temporary one).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluicegate");

fn example(rel: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(rel),
    )
    .unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Agent(Child);

impl Agent {
    fn start(conf: &Path, name: &str) -> Agent {
        Agent(
            Command::new(BIN)
                .args(["agent", "--no-reload-conf", "-n", name, "-f"])
                .arg(conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn sigterm_and_wait(mut self) -> bool {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.0),
            rustix::process::Signal::TERM,
        );
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn wait_lines(dir: &Path, n: usize, limit: Duration) -> Vec<String> {
    let end = Instant::now() + limit;
    loop {
        let l = lines(dir);
        if l.len() >= n || Instant::now() > end {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_port(port: u16) {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {port}");
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
    let port = free_port();
    let conf = example("hop.conf")
        .replace("./target/hop", &d.display().to_string())
        .replace("4141", &port.to_string())
        .replace("totalEvents = 100000", "totalEvents = 3000");
    std::fs::create_dir_all(d.join("out")).unwrap();
    let path = d.join("hop.conf");
    std::fs::write(&path, conf).unwrap();
    let agent = Agent::start(&path, "a1");
    wait_port(port);
    let input = d.join("lines.txt");
    std::fs::write(
        &input,
        (0..500)
            .map(|i| format!("client-{i}\n"))
            .collect::<String>(),
    )
    .unwrap();
    avro_client(port, &input, &["--batch", "50"]);
    wait_lines(&d.join("out"), 3500, Duration::from_secs(60));
    assert!(
        agent.sigterm_and_wait(),
        "the agent must stop cleanly on SIGTERM"
    );
    let got = lines(&d.join("out"));
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
    let (in_port, store_a, store_b) = (free_port(), free_port(), free_port());
    // The collector file, only re-pointed at this machine.
    let conf = example("migration/collector-sluicegate.conf")
        .replace("/var/lib/sluicegate", &d.display().to_string())
        .replace("0.0.0.0", "127.0.0.1")
        .replace(
            "collector.sources.in.port = 4141",
            &format!("collector.sources.in.port = {in_port}"),
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
    let collector_conf = d.join("collector.conf");
    std::fs::write(&collector_conf, &conf).unwrap();
    // Only store B runs: the failover group must route around the dead, higher-priority A.
    std::fs::create_dir_all(d.join("storeb/out")).unwrap();
    let store_conf = d.join("store.conf");
    std::fs::write(
        &store_conf,
        format!(
            "s.sources = r\ns.channels = c\ns.sinks = k\n\
             s.sources.r.type = avro\ns.sources.r.bind = 127.0.0.1\ns.sources.r.port = {store_b}\ns.sources.r.channels = c\n\
             s.channels.c.type = memory\ns.channels.c.capacity = 100000\ns.channels.c.transactionCapacity = 10000\n\
             s.sinks.k.type = file_roll\ns.sinks.k.sink.directory = {}\ns.sinks.k.sink.rollInterval = 0\ns.sinks.k.channel = c\n",
            d.join("storeb/out").display()
        ),
    )
    .unwrap();
    let store = Agent::start(&store_conf, "s");
    wait_port(store_b);
    let collector = Agent::start(&collector_conf, "collector");
    wait_port(in_port);
    let input = d.join("access.log");
    std::fs::write(
        &input,
        (0..2000)
            .map(|i| format!("GET /page/{i}\n"))
            .collect::<String>(),
    )
    .unwrap();
    avro_client(in_port, &input, &["--batch", "100", "--deflate"]);
    let got = wait_lines(&d.join("storeb/out"), 2000, Duration::from_secs(60));
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
