//! `sluicegate top` against real agents: `--once` through the binary against a running agent
//! that events are pushed through (every row, non-zero rates, live connection counts), a
//! pipeline's batch timings through the library against a real metrics server, the errors for
//! an agent that is not there, and the live view in a real terminal (tmux: rows appear, figures
//! update, `q` and Ctrl-C quit, SIGTERM, SIGHUP and SIGINT end it, and every way out gives the
//! terminal back).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::metrics::http::MetricsServer;
use sluicegate::metrics::MetricsRegistry;
use sluicegate::pipeline::{PipelineConfig, StreamingContext};
use sluicegate::tools::top;
use sluicegate::Event;

mod support;
use support::{free_port, wait_for, BIN, PATIENCE};

/// A child process killed (and reaped) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An agent (Avro source r1 → memory channel c1 → null sink k1) serving metrics on a port the
/// system picked, with a load generator pushing 2,000 events/s into it over two connections.
struct Agent {
    metrics_url: String,
    _pusher: Running,
    _agent: Running,
    _dir: tempfile::TempDir,
}

fn agent_under_load() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let source_port = free_port();
    let conf = dir.path().join("flume.conf");
    std::fs::write(
        &conf,
        format!(
            "a1.sources = r1\n\
             a1.channels = c1\n\
             a1.sinks = k1\n\
             a1.sources.r1.type = avro\n\
             a1.sources.r1.bind = 127.0.0.1\n\
             a1.sources.r1.port = {source_port}\n\
             a1.sources.r1.channels = c1\n\
             a1.channels.c1.type = memory\n\
             a1.channels.c1.capacity = 10000\n\
             a1.channels.c1.transactionCapacity = 1000\n\
             a1.sinks.k1.type = null\n\
             a1.sinks.k1.channel = c1\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["agent", "-n", "a1", "-f"])
        .arg(&conf)
        .args([
            "--no-reload-conf",
            "-Dflume.monitoring.type=http",
            "-Dflume.monitoring.port=0",
            "-Dflume.monitoring.bind=127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let agent = Running(child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The agent announces the bound metrics address once everything has started.
    let marker = "watch live: sluicegate top --url ";
    let end = Instant::now() + PATIENCE;
    let metrics_url = loop {
        let line = rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .expect("the agent announces its metrics address");
        if let Some(i) = line.find(marker) {
            break line[i + marker.len()..].trim().to_string();
        }
    };
    assert!(
        metrics_url.starts_with("http://127.0.0.1:") && !metrics_url.ends_with(":0"),
        "the bound port, not 0: {metrics_url}"
    );
    let pusher = Running(
        Command::new(BIN)
            .args(["bench", "--target"])
            .arg(format!("127.0.0.1:{source_port}"))
            .args([
                "--events",
                "100000000",
                "--rate",
                "2000",
                "--connections",
                "2",
                "--batch-size",
                "100",
                "--json",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    Agent {
        metrics_url,
        _pusher: pusher,
        _agent: agent,
        _dir: dir,
    }
}

/// `sluicegate top --once`: (exit status, stdout, stderr).
fn top_once(url: &str, interval: &str) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["top", "--once", "--url", url, "--interval", interval])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The rows of the plain-text table of `kind`: column title → cell, by component name.
fn table(text: &str, kind: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let cols = regex::Regex::new(r"\s{2,}").unwrap();
    let block = text
        .split("\n\n")
        .find(|b| b.starts_with(&format!("{kind} ")))
        .unwrap_or_else(|| panic!("no {kind} table in\n{text}"));
    let mut lines = block.lines();
    let header: Vec<&str> = cols.split(lines.next().unwrap().trim()).collect();
    lines
        .map(|l| {
            let cells: Vec<&str> = cols.split(l.trim()).collect();
            assert_eq!(cells.len(), header.len(), "{l}");
            let row: BTreeMap<String, String> = header
                .iter()
                .zip(&cells)
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect();
            (cells[0].to_string(), row)
        })
        .collect()
}

fn num(row: &BTreeMap<String, String>, col: &str) -> f64 {
    row[col]
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("{col} is not a number: {row:?}"))
}

#[test]
fn top_once_against_a_running_agent_shows_every_component_with_rates() {
    let agent = agent_under_load();
    // Poll until the load has been flowing for a whole interval (the source and the sink
    // both moved events between the two polls).
    let text = wait_for("events to flow through r1, c1 and k1", || {
        let (code, out, err) = top_once(&agent.metrics_url, "300ms");
        assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
        assert!(err.is_empty(), "nothing on stderr: {err}");
        let flowing = |kind: &str, name: &str, col: &str| {
            table(&out, kind)
                .get(name)
                .is_some_and(|r| r[col].parse::<f64>().is_ok_and(|v| v > 0.0))
        };
        (flowing("SOURCE", "r1", "accepted/s") && flowing("SINK", "k1", "out/s")).then_some(out)
    });
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "sluicegate top: {}, rates over 0.",
            agent.metrics_url
        )),
        "{first}"
    );

    let sources = table(&text, "SOURCE");
    let r1 = &sources["r1"];
    assert_eq!(sources.len(), 1);
    assert!(
        num(r1, "recv/s") > 0.0 && num(r1, "accepted/s") > 0.0,
        "{r1:?}"
    );
    assert!(num(r1, "accepted") >= num(r1, "accepted/s") * 0.3, "{r1:?}");
    assert_eq!(r1["conns"], "2", "the load generator's two connections");
    assert_eq!(r1["errors"], "0");

    let c1 = &table(&text, "CHANNEL")["c1"];
    assert!(num(c1, "put/s") > 0.0 && num(c1, "take/s") > 0.0, "{c1:?}");
    assert_eq!(c1["capacity"], "10000");
    let fill = num(c1, "fill");
    assert!(
        (fill - num(c1, "size") / 100.0).abs() < 0.051,
        "fill is size / capacity: {c1:?}"
    );
    assert_eq!(c1["errors"], "0");
    assert_eq!(c1["state"], "ok");

    let k1 = &table(&text, "SINK")["k1"];
    assert!(
        num(k1, "out/s") > 0.0 && num(k1, "delivered") > 0.0,
        "{k1:?}"
    );
    assert_eq!(k1["errors"], "0");
    assert_eq!(k1["conn-fail"], "0");
    assert!(!text.contains("PIPELINE"), "no pipeline runs here:\n{text}");
}

#[test]
fn top_once_shows_a_pipelines_batch_timings() {
    let registry = MetricsRegistry::new();
    let ch = Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity: 100_000,
            transaction_capacity: 100_000,
            ..Default::default()
        },
    ));
    registry.register(ch.counter().clone());
    let ctx = StreamingContext::new(
        "wc",
        ch.clone() as Arc<dyn Channel>,
        PipelineConfig::with_interval(Duration::from_millis(50)),
    );
    ctx.events()
        .words()
        .count_by_value()
        .foreach_batch(|_, _| Ok::<(), String>(()));
    let pipeline = ctx.build().unwrap();
    let counter = pipeline.counter();
    registry.register(counter.clone());
    let handle = pipeline.start();

    // Push words into the channel until told to stop, a batch of 50 every 5 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (ch, stop) = (ch.clone(), stop.clone());
        std::thread::spawn(move || {
            let batch: Vec<Event> = (0..50)
                .map(|i| Event::from_body(format!("alpha beta w{}", i % 7)))
                .collect();
            while !stop.load(Ordering::Relaxed) {
                ch.put_batch(&batch).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_registry = registry.clone();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), server_registry)
                .await
                .unwrap();
            addr_tx.send(server.local_addr().unwrap()).unwrap();
            server
                .run(async move {
                    let _ = stop_rx.await;
                })
                .await
        })
    });
    let addr = addr_rx.recv_timeout(PATIENCE).unwrap();
    wait_for("three completed batches", || {
        (counter.batches_completed.load(Ordering::Relaxed) >= 3).then_some(())
    });

    let ep = top::Endpoint::parse(&format!("http://{addr}")).unwrap();
    let view = wait_for("a pipeline rate", || {
        let v = top::once(&ep, Duration::from_millis(300)).unwrap();
        let row = v
            .sections
            .iter()
            .find(|s| s.kind == "PIPELINE")
            .unwrap()
            .rows[0]
            .clone();
        row[1]
            .text
            .parse::<f64>()
            .is_ok_and(|r| r > 0.0)
            .then_some(v)
    });
    let text = view.to_string();
    let wc = &table(&text, "PIPELINE")["wc"];
    assert!(num(wc, "in/s") > 0.0, "{wc:?}");
    assert!(num(wc, "batches") >= 3.0, "{wc:?}");
    let (last, p50, p99) = (num(wc, "last ms"), num(wc, "p50 ms"), num(wc, "p99 ms"));
    assert!(p50 <= p99 && last >= 0.0, "{wc:?}");
    num(wc, "delay ms");
    assert_eq!(wc["errors"], "0");
    assert_eq!(wc["retried"], "0");
    assert!(
        num(wc, "output") > 0.0,
        "count_by_value wrote records: {wc:?}"
    );
    let c1 = &table(&text, "CHANNEL")["c1"];
    assert!(num(c1, "put/s") > 0.0 && num(c1, "take/s") > 0.0, "{c1:?}");

    stop.store(true, Ordering::Relaxed);
    pusher.join().unwrap();
    handle.stop();
    let _ = stop_tx.send(());
    server.join().unwrap().unwrap();
}

#[test]
fn top_explains_an_agent_that_is_not_there_and_a_bad_url() {
    let port = free_port();
    let (code, out, err) = top_once(&format!("http://127.0.0.1:{port}"), "100ms");
    assert_eq!(code, 1, "{out}");
    assert!(out.is_empty());
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [format!(
            "sluicegate top: cannot reach http://127.0.0.1:{port}: Connection refused (os error \
             111); is the agent running with -Dflume.monitoring.type=http \
             -Dflume.monitoring.port=N?"
        )]
    );
    let (code, _, err) = top_once("https://127.0.0.1:1", "1s");
    assert_eq!(code, 1);
    assert!(err.contains("https is not supported"), "{err}");
    let (code, _, err) = top_once("http://127.0.0.1:1", "0s");
    assert_eq!(code, 2, "clap refuses the interval");
    assert!(err.contains("--interval"), "{err}");
}

// ------------------------------------------------------------------------------ tmux

/// A private tmux server (its own socket, no user configuration), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(tag: &str) -> Tmux {
        let version = Command::new("tmux").arg("-V").output().expect(
            "tmux is required for the terminal test (.ci/run installs it: apt-get install -y tmux)",
        );
        assert!(version.status.success(), "tmux -V failed");
        Tmux {
            socket: format!("sluicegate-top-{}-{tag}", std::process::id()),
        }
    }

    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "top"])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The cells of the screen line whose first cell is `name` (box-drawing borders dropped).
fn screen_row(screen: &str, name: &str) -> Option<Vec<String>> {
    screen.lines().find_map(|l| {
        let cells: Vec<String> = l
            .split(|c: char| c.is_whitespace() || "│┌┐└┘─".contains(c))
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        (cells.first().map(String::as_str) == Some(name)).then_some(cells)
    })
}

/// How a live run is ended.
enum Quit {
    /// Keys sent to the pane (`q`, `C-c`).
    Key(&'static str),
    /// A signal sent to the process (`TERM`, `INT`, `HUP`), and the shell's `$?` after it.
    Signal(&'static str, i32),
}

/// The terminal modes `stty` reports: `icanon echo` when cooked, `-icanon -echo` in raw mode.
const TTY_MODES: &str =
    "$(stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo)";

fn live_run_quits_with(agent: &Agent, tag: &str, quit: Quit) {
    let tmux = Tmux::new(tag);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("top.pid");
    // The shell prints a line, runs top (recording its pid), then says how top ended and
    // what the terminal's modes are.
    let shell = format!(
        "echo BEFORE_TOP; sh -c 'echo $$ > \"$1\"; exec \"$0\" top --url \"$2\" --interval 200ms' \
         '{BIN}' '{}' '{}'; echo TOP_EXIT=$?; echo TTY={TTY_MODES}; exec cat",
        pid_file.display(),
        agent.metrics_url
    );
    tmux.cmd(&[
        "new-session",
        "-d",
        "-x",
        "160",
        "-y",
        "48",
        "-s",
        "top",
        &shell,
    ]);
    let alternate_on = || tmux.cmd(&["display-message", "-p", "-t", "top", "#{alternate_on}"]);
    // Every component's row appears.
    let first = wait_for("the rows of r1, c1 and k1", || {
        let s = tmux.screen();
        let ok = s.contains("sources (1)")
            && s.contains("channels (1)")
            && s.contains("sinks (1)")
            && screen_row(&s, "c1").is_some()
            && screen_row(&s, "k1").is_some();
        ok.then(|| screen_row(&s, "r1")).flatten()
    });
    assert_eq!(
        alternate_on().trim(),
        "1",
        "top runs on the alternate screen"
    );
    let expect_exit = match quit {
        Quit::Key(key) => {
            // SOURCE recv/s accepted/s accepted conns refused errors: `accepted` grows on
            // screen.
            let accepted = |row: &[String]| row[3].parse::<u64>().unwrap();
            let was = accepted(&first);
            let later = wait_for("the accepted total to update", || {
                let s = tmux.screen();
                let row = screen_row(&s, "r1")?;
                (accepted(&row) > was && s.contains("rates over")).then_some(row)
            });
            assert!(
                later[1].parse::<f64>().unwrap() > 0.0,
                "a live rate: {later:?}"
            );
            assert_eq!(later[4], "2", "two connections: {later:?}");
            tmux.cmd(&["send-keys", "-t", "top", key]);
            0
        }
        Quit::Signal(sig, status) => {
            let pid = std::fs::read_to_string(&pid_file).unwrap();
            let kill = Command::new("kill")
                .args([&format!("-{sig}"), pid.trim()])
                .status()
                .unwrap();
            assert!(kill.success(), "kill -{sig} {pid}");
            status
        }
    };
    let after = wait_for("top to exit", || {
        let s = tmux.screen();
        s.contains("TTY=").then_some(s)
    });
    assert!(
        after.contains(&format!("TOP_EXIT={expect_exit}\n")),
        "exit status {expect_exit}:\n{after}"
    );
    // The terminal is restored: the normal screen with what was there before top, in cooked
    // mode, the cursor visible.
    assert!(
        !after.contains("sources (1)") && after.starts_with("BEFORE_TOP\n"),
        "the alternate screen is gone, the screen from before top is back:\n{after}"
    );
    assert_eq!(alternate_on().trim(), "0");
    assert!(
        after.contains("TTY=icanon echo\n"),
        "raw mode is off:\n{after}"
    );
    let cursor = tmux.cmd(&["display-message", "-p", "-t", "top", "#{cursor_flag}"]);
    assert_eq!(cursor.trim(), "1", "the cursor is shown");
}

#[test]
fn top_live_in_a_real_terminal_shows_rows_updates_and_quits() {
    let agent = agent_under_load();
    live_run_quits_with(&agent, "q", Quit::Key("q"));
    live_run_quits_with(&agent, "ctrl-c", Quit::Key("C-c"));
}

#[test]
fn top_live_gives_the_terminal_back_when_killed_by_a_signal() {
    let agent = agent_under_load();
    // It dies of the signal (the shell's $? is 128 + its number) after restoring the terminal.
    live_run_quits_with(&agent, "term", Quit::Signal("TERM", 143));
    live_run_quits_with(&agent, "hup", Quit::Signal("HUP", 129));
    live_run_quits_with(&agent, "int", Quit::Signal("INT", 130));
}
