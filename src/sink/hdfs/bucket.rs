//! One bucket writer: the open file of one (directory, file prefix) key, as Flume's
//! `BucketWriter`.
//!
//! Names: the counter starts at the wall clock's milliseconds when the writer is created and is
//! incremented before each file is opened, so the first file is `created + 1`, the next
//! `created + 2`, ... While open the file is `<dir>/<inUsePrefix><prefix>.<counter><suffix><inUseSuffix>`;
//! on close it is renamed to `<dir>/<prefix>.<counter><suffix>` (nothing to do when both names
//! are equal). `<suffix>` is `hdfs.fileSuffix`, or the codec's extension (`.gz`) when that is
//! empty. One deliberate difference: if either name already exists (a writer re-created in the
//! same millisecond after a failure, a clock set back), the counter moves on until both are
//! free, where Flume would truncate or replace a file holding committed events.
//!
//! Rolls, checked before each append (`shouldRotate`): `rollCount` events or `rollSize` body
//! bytes in the current file close it and open the next (same writer, next counter). A file is
//! opened only when an event is about to be written into it. Timers are deadlines on the
//! injected [`Clock`], checked by the sink at each `process` call (the sink's `wake_in` makes the
//! runner call it by the soonest deadline on an idle channel): `rollInterval` is armed when a
//! file opens, `idleTimeout` at every flush that wrote data and disarmed by an append; either one
//! firing closes the writer for good (the sink drops it; the next event for the key makes a new
//! writer with a fresh counter base).
//!
//! Flushes: after every `hdfs.batchSize` appends, and when the sink ends a transaction
//! ([`BucketWriter::flush`] does nothing if nothing was appended since the last one).
//!
//! Invariant: `open` is `Some` exactly while a file exists under its in-use name and belongs to
//! this writer; after any I/O error the sink abandons the writer ([`BucketWriter::abandon`]),
//! which renames what was written (at-least-once: the rolled-back events are written again).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::format::{self, FileFormat, FormatError, FormatWriter};
use super::fs::HdfsFileSystem;
use crate::clock::Clock;
use crate::event::Event;
use crate::metrics::SinkCounter;

/// The per-sink settings every bucket writer shares.
#[derive(Debug, Clone)]
pub struct BucketSettings {
    /// `hdfs.fileSuffix`.
    pub file_suffix: String,
    /// `hdfs.inUsePrefix`.
    pub in_use_prefix: String,
    /// `hdfs.inUseSuffix`.
    pub in_use_suffix: String,
    /// `hdfs.rollInterval`.
    pub roll_interval: Option<Duration>,
    /// `hdfs.rollSize`.
    pub roll_size: u64,
    /// `hdfs.rollCount`.
    pub roll_count: u64,
    /// `hdfs.idleTimeout`.
    pub idle_timeout: Option<Duration>,
    /// `hdfs.batchSize`.
    pub batch_size: u64,
    /// The file format.
    pub format: FileFormat,
}

/// What a bucket writer works with.
pub struct Env<'a> {
    /// Settings.
    pub settings: &'a BucketSettings,
    /// The filesystem.
    pub fs: &'a dyn HdfsFileSystem,
    /// The sink's counters (`ConnectionCreated/Closed/FailedCount`).
    pub counter: &'a SinkCounter,
    /// Timers.
    pub clock: &'a Clock,
    /// Wall clock, epoch ms.
    pub wall: &'a (dyn Fn() -> i64 + Send + Sync),
    /// The sink's name, for logs.
    pub sink: &'a str,
}

/// A bucket failure: what was being done, on which file.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {error}", path.display())]
pub struct BucketError {
    /// `creating`, `writing`, `flushing`, `closing`, `renaming ... to`.
    pub what: String,
    /// The file.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub error: FormatError,
}

struct OpenFile {
    writer: Box<dyn FormatWriter>,
    in_use: PathBuf,
    target: PathBuf,
}

/// One bucket's writer.
pub struct BucketWriter {
    dir: PathBuf,
    prefix: String,
    counter: u64,
    open: Option<OpenFile>,
    event_count: u64,
    process_size: u64,
    batch_count: u64,
    idle_deadline: Option<Instant>,
    roll_deadline: Option<Instant>,
    /// The sink's access tick (least recently used writers are closed first).
    pub last_used: u64,
}

fn err(what: &str, path: &Path, e: impl Into<FormatError>) -> BucketError {
    BucketError {
        what: what.to_string(),
        path: path.to_path_buf(),
        error: e.into(),
    }
}

impl BucketWriter {
    /// A writer for files `<dir>/<prefix>.<counter>...`, created at wall time `created_ms`.
    pub fn new(dir: PathBuf, prefix: String, created_ms: i64) -> BucketWriter {
        BucketWriter {
            dir,
            prefix,
            counter: created_ms.max(0) as u64,
            open: None,
            event_count: 0,
            process_size: 0,
            batch_count: 0,
            idle_deadline: None,
            roll_deadline: None,
            last_used: 0,
        }
    }

    /// The in-use path of the open file, if one is open.
    pub fn open_path(&self) -> Option<&Path> {
        self.open.as_ref().map(|o| o.in_use.as_path())
    }

    /// The sooner of the idle and roll-interval deadlines, if either is armed.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.idle_deadline, self.roll_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when the idle or roll-interval deadline has passed.
    pub fn timed_out(&self, now: Instant) -> bool {
        self.idle_deadline.is_some_and(|d| now >= d) || self.roll_deadline.is_some_and(|d| now >= d)
    }

    fn open_next(&mut self, env: &Env<'_>) -> Result<(), BucketError> {
        let s = env.settings;
        // Flume's name; a counter whose names are taken (a writer re-created within the same
        // millisecond, a clock set back) moves on instead of overwriting committed data.
        let (in_use, target) = loop {
            self.counter += 1;
            let mut name = format!("{}.{}", self.prefix, self.counter);
            if !s.file_suffix.is_empty() {
                name.push_str(&s.file_suffix);
            } else {
                name.push_str(s.format.codec_extension());
            }
            let in_use = self
                .dir
                .join(format!("{}{}{}", s.in_use_prefix, name, s.in_use_suffix));
            let target = self.dir.join(&name);
            if !env.fs.exists(&in_use) && !env.fs.exists(&target) {
                break (in_use, target);
            }
        };
        tracing::info!(sink = env.sink, "Creating {}", in_use.display());
        let opened = env
            .fs
            .create(&in_use)
            .and_then(|out| format::open(&s.format, out));
        match opened {
            Ok(writer) => {
                SinkCounter::add(&env.counter.connection_created, 1);
                self.open = Some(OpenFile {
                    writer,
                    in_use,
                    target,
                });
                self.event_count = 0;
                self.process_size = 0;
                self.batch_count = 0;
                self.roll_deadline = s.roll_interval.map(|d| env.clock.now() + d);
                Ok(())
            }
            Err(e) => {
                SinkCounter::add(&env.counter.connection_failed, 1);
                Err(err("creating", &in_use, e))
            }
        }
    }

    fn should_rotate(&self, s: &BucketSettings) -> bool {
        (s.roll_count > 0 && s.roll_count <= self.event_count)
            || (s.roll_size > 0 && s.roll_size <= self.process_size)
    }

    /// Writes one event (opening or rolling the file first as needed).
    pub fn append(&mut self, ev: &Event, env: &Env<'_>) -> Result<(), BucketError> {
        self.idle_deadline = None;
        if self.open.is_some() && self.should_rotate(env.settings) {
            self.close(env)?;
        }
        if self.open.is_none() {
            self.open_next(env)?;
        }
        let now_ms = (env.wall)();
        if let Some(o) = self.open.as_mut() {
            o.writer
                .append(ev, now_ms)
                .map_err(|e| err("writing", &o.in_use, e))?;
        }
        self.process_size += ev.body().len() as u64;
        self.event_count += 1;
        self.batch_count += 1;
        if self.batch_count >= env.settings.batch_size {
            self.flush(env)?;
        }
        Ok(())
    }

    /// Flushes if anything was appended since the last flush, and arms the idle timer.
    pub fn flush(&mut self, env: &Env<'_>) -> Result<(), BucketError> {
        if self.batch_count == 0 {
            return Ok(());
        }
        if let Some(o) = self.open.as_mut() {
            o.writer
                .flush()
                .map_err(|e| err("flushing", &o.in_use, e))?;
        }
        self.batch_count = 0;
        self.idle_deadline = env.settings.idle_timeout.map(|d| env.clock.now() + d);
        Ok(())
    }

    /// Flushes, closes and renames the open file (if any) to its final name.
    pub fn close(&mut self, env: &Env<'_>) -> Result<(), BucketError> {
        self.idle_deadline = None;
        self.roll_deadline = None;
        self.batch_count = 0;
        let Some(o) = self.open.take() else {
            return Ok(());
        };
        tracing::info!(sink = env.sink, "Closing {}", o.in_use.display());
        let closed = o.writer.close();
        match &closed {
            Ok(()) => SinkCounter::add(&env.counter.connection_closed, 1),
            Err(_) => SinkCounter::add(&env.counter.connection_failed, 1),
        }
        // Rename even after a failed close: what was flushed before is committed data.
        let renamed = rename(env, &o.in_use, &o.target);
        closed.map_err(|e| err("closing", &o.in_use, e))?;
        renamed
    }

    /// After a failure: closes what can be closed and renames the file, ignoring errors (the
    /// failed transaction is rolled back and written again).
    pub fn abandon(&mut self, env: &Env<'_>) {
        if let Err(e) = self.close(env) {
            tracing::warn!(sink = env.sink, error = %e, "could not close a failed bucket file");
        }
    }
}

fn rename(env: &Env<'_>, from: &Path, to: &Path) -> Result<(), BucketError> {
    if from == to || !env.fs.exists(from) {
        return Ok(());
    }
    tracing::info!(
        sink = env.sink,
        "Renaming {} to {}",
        from.display(),
        to.display()
    );
    env.fs.rename(from, to).map_err(|e| BucketError {
        what: format!("renaming {} to", from.display()),
        path: to.to_path_buf(),
        error: FormatError::Io(e),
    })
}

/// For recovery: renames `in_use` (a leftover of a crashed run) to its final name.
pub fn recover(fs: &dyn HdfsFileSystem, in_use: &Path, target: &Path) -> io::Result<()> {
    if fs.exists(target) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists", target.display()),
        ));
    }
    fs.rename(in_use, target)
}
