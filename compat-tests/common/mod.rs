//! Shared plumbing for the compatibility tests: installing the independent peers once, finding
//! the transcripts, and running peer processes with hard time limits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `compat-tests/` in the source tree.
pub fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests")
}

/// The Flume protocol text file (Java's exact text) the peers load.
pub fn protocol_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("avro-schemas/AvroSourceProtocol.avpr")
}

/// A transcript fixture parsed as JSON.
pub fn transcript(name: &str) -> serde_json::Value {
    let p = compat_dir().join("fixtures").join(format!("{name}.json"));
    let text =
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", p.display()))
}

/// Decodes a hex string from a transcript.
pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("transcript hex")
}

/// Installs npm `avsc@5.7.9` and PyPI `avro` into `compat-tests/` once per test process
/// (`setup.sh` is idempotent and takes a lock, so parallel test binaries are safe).
pub fn ensure_peers() -> &'static PeerPaths {
    static PEERS: OnceLock<PeerPaths> = OnceLock::new();
    PEERS.get_or_init(|| {
        let dir = compat_dir();
        let status = Command::new("bash")
            .arg(dir.join("setup.sh"))
            .status()
            .expect("running compat-tests/setup.sh (needs bash, node, npm, python3)");
        assert!(
            status.success(),
            "compat-tests/setup.sh failed: the peers could not be installed"
        );
        PeerPaths {
            node: PathBuf::from("node"),
            python: dir.join(".venv/bin/python"),
            peers: dir.join("peers"),
        }
    })
}

/// Where the peer interpreters and scripts are.
pub struct PeerPaths {
    pub node: PathBuf,
    pub python: PathBuf,
    pub peers: PathBuf,
}

/// Runs a command to completion with a hard deadline; returns (exit ok, stdout lines, stderr).
pub fn run_with_deadline(cmd: &mut Command, deadline: Duration) -> (bool, Vec<String>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn peer");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait peer") {
            let out = child.wait_with_output().expect("peer output");
            let lines = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            return (
                status.success(),
                lines,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("peer output");
            let lines = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            return (
                false,
                lines,
                format!(
                    "killed after {deadline:?}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A long-running peer (e.g. the avsc server) whose stdout is read line by line.
/// Killed on drop.
pub struct PeerProcess {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl PeerProcess {
    /// Spawns `cmd` with piped stdin (closing it tells the peer to exit) and stdout.
    pub fn spawn(cmd: &mut Command) -> PeerProcess {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn peer");
        let stdout = child.stdout.take().expect("peer stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PeerProcess { child, lines: rx }
    }

    /// The next stdout line, waiting at most `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Reads JSON lines until `pred` accepts one or `timeout` passes.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let end = Instant::now() + timeout;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let line = self.next_line(left)?;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if pred(&v) {
                    return Some(v);
                }
            }
        }
        None
    }

    /// Every line received so far without waiting.
    pub fn drain(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
