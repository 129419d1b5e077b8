//! What the runnable pipeline examples share: logging to stderr, a scratch directory, a durable
//! file channel in it, an Avro source on `127.0.0.1:<port>` feeding that channel, and waiting
//! for SIGTERM or Ctrl-C. Each example includes it with `#[path = "support/mod.rs"] mod support;`
//! (Cargo builds only `examples/*.rs` and `examples/*/main.rs` as examples, so this folder is
//! not one).
//!
//! The examples build their pipelines in Rust; `examples/*.conf` declare pipelines in
//! `flume.conf` instead.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluicegate::channel::file::{FileChannel, FileChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::config::Context;
use sluicegate::source::avro::AvroSource;
use sluicegate::source::{ChannelProcessor, Source};

/// Boxed error of the examples' `run` functions.
pub type Error = Box<dyn std::error::Error>;

/// Logs to stderr (stdout carries the results), `RUST_LOG` or `info`.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// The directory the example keeps its channel and checkpoint in: the one given, or a
/// temporary one removed when this value is dropped.
pub struct Scratch {
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Scratch {
    pub fn new(dir: Option<&Path>) -> Result<Scratch, Error> {
        Ok(match dir {
            Some(d) => Scratch {
                dir: d.to_path_buf(),
                _tmp: None,
            },
            None => {
                let tmp = tempfile::tempdir()?;
                Scratch {
                    dir: tmp.path().to_path_buf(),
                    _tmp: Some(tmp),
                }
            }
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// A file channel `c1` in `<dir>/channel`, sized for million-event batches.
pub fn file_channel(dir: &Path) -> Result<Arc<FileChannel>, Error> {
    Ok(Arc::new(FileChannel::open(
        "c1",
        FileChannelConfig {
            capacity: 5_000_000,
            transaction_capacity: 1_000_000,
            ..FileChannelConfig::in_dir(&dir.join("channel"))
        },
    )?))
}

/// A running Avro source `r1` and the runtime it runs on.
pub struct Ingest {
    pub runtime: tokio::runtime::Runtime,
    source: AvroSource,
}

/// Starts an Avro source on `127.0.0.1:<port>` into `channel` with the extra source keys
/// `extra` (e.g. interceptors), and prints `listening on <addr>` once it is bound.
pub fn avro_ingest(
    agent: &str,
    port: u16,
    extra: &[(&str, &str)],
    channel: &Arc<FileChannel>,
) -> Result<Ingest, Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let props = sluicegate::agent::cli::parse_defines(std::iter::empty());
    let port = port.to_string();
    let mut keys = vec![("bind", "127.0.0.1"), ("port", port.as_str())];
    keys.extend_from_slice(extra);
    let sctx = Context::from_pairs(format!("{agent}.sources.r1"), keys);
    let processor =
        ChannelProcessor::from_context(&sctx, vec![channel.clone() as Arc<dyn Channel>])?;
    let mut source =
        AvroSource::from_context("r1", &sctx, &props, processor, runtime.handle().clone())?;
    source.start()?;
    let addr = source.local_addr().ok_or("the Avro source did not bind")?;
    println!("listening on {addr}");
    std::io::stdout().flush()?;
    Ok(Ingest { runtime, source })
}

impl Ingest {
    /// Blocks until SIGTERM or Ctrl-C, then stops the source.
    pub fn wait_for_shutdown(mut self) -> Result<(), Error> {
        self.runtime.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok::<(), std::io::Error>(())
        })?;
        self.source.stop();
        Ok(())
    }
}
