//! Helpers the integration tests share; a test crate takes them with `mod support;`.
//!
//! Waits poll a condition every 5 ms for at most [`PATIENCE`] (never a sleep standing in for
//! synchronisation); ports are bound on 127.0.0.1.

// Each test crate uses some of the helpers.
#![allow(dead_code)]

pub mod echo;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The `sluicegate` binary cargo built for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_sluicegate");

/// The bound on every wait for a condition: generous, as the tests share a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A port of 127.0.0.1 that was free just now, for a process that must be told its port
/// before it starts (where a component can bind port 0 and say which it got, prefer that).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 5 ms until it gives `Some`, for at most [`PATIENCE`]; then panics naming
/// `what`.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `f` every 5 ms until it holds, for at most [`PATIENCE`]; then panics naming `what`.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    wait_for(what, || f().then_some(()))
}

/// The lines of every file in `dir`, the files in name order (none when `dir` is missing).
pub fn lines_in(dir: &Path) -> Vec<String> {
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

/// A memory channel named `c1` holding up to `capacity` events, `transaction_capacity` per
/// transaction, no byte limit, a 10 ms keep-alive (a full channel refuses quickly).
pub fn memory_channel(
    capacity: u64,
    transaction_capacity: usize,
) -> std::sync::Arc<sluicegate::channel::memory::MemoryChannel> {
    use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
    std::sync::Arc::new(MemoryChannel::new(
        "c1",
        MemoryChannelConfig {
            capacity,
            transaction_capacity,
            byte_capacity: None,
            keep_alive: Duration::from_millis(10),
        },
    ))
}
