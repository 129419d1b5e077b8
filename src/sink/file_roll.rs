//! The rolling file sink (`type = file_roll`, Flume's `RollingFileSink`): writes events to files
//! in a directory, starting a new file every `sink.rollInterval` seconds.
//!
//! Settings (Flume's names and defaults):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `sink.directory` | required | where files go (created if missing) |
//! | `sink.rollInterval` | 30 | seconds between rolls; 0 = never roll |
//! | `sink.batchSize` | 100 | events per take transaction |
//! | `sink.serializer` | `TEXT` | `TEXT` (body + `\n`), `header_and_text` (`{k=v, ...} body\n`) or `avro_event` (Avro container file) |
//! | `sink.serializer.appendNewline` | true | TEXT, header_and_text: newline after each event |
//! | `sink.serializer.compressionCodec` | `null` | avro_event: `null` or `deflate` |
//! | `sink.serializer.syncIntervalBytes` | 2048000 | avro_event: block size |
//! | `sink.pathManager` | `DEFAULT` | only `DEFAULT` |
//! | `sink.pathManager.prefix` / `.extension` | empty | file name parts |
//!
//! File names are Flume's: `<prefix><startMillis>-<n>[.<extension>]`, `startMillis` fixed when
//! the sink is built and `n` counting from 1. As in Flume, a roll is due every interval from
//! start (whether or not events arrived) and happens at the next `process` call, which closes the
//! current file; the next file is opened before the next take, so an idle sink leaves empty
//! (TEXT) or header-only (avro_event) files behind, exactly like Flume.
//!
//! `avro_event` files use Flume's `FlumeEventAvroEventSerializer` schema, verbatim:
//! `{"type":"record","name":"Event","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}`
//! (no namespace — Flume's schema has none).
//!
//! The serializers are the HDFS sink's DataStream writers ([`super::hdfs::format`]), so a
//! `file_roll` file holds the bytes Flume's `file_roll` writes with the same serializer: headers
//! in the order a Flume agent's `HashMap` prints them, one Avro block per batch (Flume flushes
//! the serializer after every batch), metadata `avro.schema` then `avro.codec`, a random sync
//! marker per file.
//!
//! Durability: every batch is written, flushed and `fdatasync`ed **before** the take commits, so
//! a committed take is on disk. A write failure rolls the take back and abandons the current file
//! (the retry goes to a fresh file, so a half-written batch is never appended to).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::{commit_counted, take_counted};
use super::hdfs::config::serializer;
use super::hdfs::format::{self, FileFormat, FormatWriter};
use super::hdfs::fs::{HdfsFileSystem, LocalFs};
use super::{Sink, SinkError, SinkStatus};
use crate::channel::Channel;
use crate::clock::now_millis;
use crate::clock::Clock;
use crate::config::{ConfigError, Context};
use crate::metrics::SinkCounter;

pub use super::hdfs::format::Serializer as FileSerializer;
/// Flume's `FlumeEventAvroEventSerializer` schema, as its JSON text.
pub use super::hdfs::format::FLUME_EVENT_SCHEMA;

/// Settings of a `file_roll` sink.
#[derive(Debug, Clone)]
pub struct FileRollSinkConfig {
    /// `sink.directory`.
    pub directory: PathBuf,
    /// `sink.rollInterval`; `None` = never roll.
    pub roll_interval: Option<Duration>,
    /// `sink.batchSize`.
    pub batch_size: usize,
    /// `sink.serializer` and its settings.
    pub serializer: FileSerializer,
    /// `sink.pathManager.prefix`.
    pub prefix: String,
    /// `sink.pathManager.extension`.
    pub extension: String,
}

impl FileRollSinkConfig {
    /// Reads the settings with Flume's defaults.
    pub fn from_context(ctx: &Context) -> Result<Self, ConfigError> {
        let directory = PathBuf::from(ctx.require("sink.directory")?.trim());
        let roll = ctx.get_secs("sink.rollInterval", 30)?;
        let batch_size = ctx.get_positive_int("sink.batchSize", 100)?;
        let pm = ctx.get_or("sink.pathManager", "DEFAULT").trim().to_string();
        if !pm.eq_ignore_ascii_case("default")
            && pm != "org.apache.flume.formatter.output.DefaultPathManager$Builder"
        {
            return Err(ctx.error(
                "sink.pathManager",
                &format!("unsupported path manager '{pm}' (only DEFAULT)"),
            ));
        }
        let serializer = serializer(&ctx.sub("sink"))?;
        Ok(FileRollSinkConfig {
            directory,
            roll_interval: (!roll.is_zero()).then_some(roll),
            batch_size,
            serializer,
            prefix: ctx.get_or("sink.pathManager.prefix", "").to_string(),
            extension: ctx.get_or("sink.pathManager.extension", "").to_string(),
        })
    }
}

/// The rolling file sink.
pub struct FileRollSink {
    name: String,
    channel: Arc<dyn Channel>,
    cfg: FileRollSinkConfig,
    counter: Arc<SinkCounter>,
    series: u64,
    index: u64,
    current: Option<PathBuf>,
    out: Option<Box<dyn FormatWriter>>,
    next_roll: Option<Instant>,
    should_rotate: bool,
    /// What the roll interval is timed with.
    clock: Clock,
}

impl FileRollSink {
    /// Builds the sink from its context; it drains `channel`.
    pub fn from_context(
        name: &str,
        ctx: &Context,
        channel: Arc<dyn Channel>,
    ) -> Result<FileRollSink, ConfigError> {
        Ok(FileRollSink::new(
            name,
            FileRollSinkConfig::from_context(ctx)?,
            channel,
        ))
    }

    /// Builds the sink from explicit settings.
    pub fn new(name: &str, cfg: FileRollSinkConfig, channel: Arc<dyn Channel>) -> FileRollSink {
        FileRollSink {
            name: name.to_string(),
            channel,
            cfg,
            counter: Arc::new(SinkCounter::new(name)),
            series: now_millis(),
            index: 0,
            current: None,
            out: None,
            next_roll: None,
            should_rotate: false,
            clock: Clock::system(),
        }
    }

    /// Times the roll interval with `clock` instead of the system clock (tests step it).
    pub fn with_clock(mut self, clock: Clock) -> FileRollSink {
        self.clock = clock;
        self
    }

    /// The file currently being written, if one is open.
    pub fn current_file(&self) -> Option<&std::path::Path> {
        self.out.as_ref().and(self.current.as_deref())
    }

    fn io_err(&self, what: String, error: io::Error) -> SinkError {
        SinkError::Io {
            sink: self.name.clone(),
            what,
            error,
        }
    }

    fn close_current(&mut self) -> Result<(), SinkError> {
        let Some(out) = self.out.take() else {
            return Ok(());
        };
        let path = self.current.take().unwrap_or_default();
        match out.close() {
            Ok(()) => {
                SinkCounter::add(&self.counter.connection_closed, 1);
                tracing::debug!(sink = %self.name, file = %path.display(), "closed file");
                Ok(())
            }
            Err(e) => {
                SinkCounter::add(&self.counter.connection_failed, 1);
                Err(self.io_err(format!("closing {}", path.display()), e))
            }
        }
    }

    fn open_next(&mut self) -> Result<(), SinkError> {
        self.index += 1;
        let mut file_name = format!("{}{}-{}", self.cfg.prefix, self.series, self.index);
        if !self.cfg.extension.is_empty() {
            file_name.push('.');
            file_name.push_str(&self.cfg.extension);
        }
        let path = self.cfg.directory.join(file_name);
        let format = FileFormat::DataStream(self.cfg.serializer.clone());
        let opened = LocalFs.create(&path).and_then(|f| {
            let mut out = format::open(&format, f)?;
            // Like Flume's afterCreate: the Avro header goes out at once.
            out.flush()?;
            Ok(out)
        });
        match opened {
            Ok(out) => {
                SinkCounter::add(&self.counter.connection_created, 1);
                tracing::debug!(sink = %self.name, file = %path.display(), "opened file");
                self.out = Some(out);
                self.current = Some(path);
                Ok(())
            }
            Err(e) => {
                SinkCounter::add(&self.counter.connection_failed, 1);
                Err(self.io_err(format!("opening {}", path.display()), e))
            }
        }
    }
}

impl Sink for FileRollSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&mut self) -> Result<(), SinkError> {
        std::fs::create_dir_all(&self.cfg.directory).map_err(|e| {
            self.io_err(
                format!("creating directory {}", self.cfg.directory.display()),
                e,
            )
        })?;
        self.counter.start();
        self.next_roll = self.cfg.roll_interval.map(|d| self.clock.now() + d);
        tracing::info!(sink = %self.name, dir = %self.cfg.directory.display(), "rolling file sink started");
        Ok(())
    }

    fn process(&mut self) -> Result<SinkStatus, SinkError> {
        if let (Some(next), Some(every)) = (self.next_roll, self.cfg.roll_interval) {
            let now = self.clock.now();
            if now >= next {
                self.should_rotate = true;
                let mut n = next;
                while n <= now {
                    n += every;
                }
                self.next_roll = Some(n);
            }
        }
        if self.should_rotate && self.out.is_some() {
            self.should_rotate = false;
            self.close_current()?;
        }
        if self.out.is_none() {
            self.open_next()?;
        }
        let take = take_counted(&*self.channel, &self.counter, self.cfg.batch_size)?;
        if take.is_empty() {
            return Ok(SinkStatus::Backoff);
        }
        let now = now_millis() as i64;
        let written = match self.out.as_mut() {
            Some(out) => take
                .events()
                .iter()
                .try_for_each(|ev| out.append(ev, now).map_err(io::Error::other))
                .and_then(|()| out.flush()),
            None => Err(io::Error::other("no open file")),
        };
        if let Err(e) = written {
            SinkCounter::add(&self.counter.event_write_fail, 1);
            take.rollback();
            let path = self.current.take().unwrap_or_default();
            // The file may hold part of the batch: abandon it, the retry starts a new one.
            self.out = None;
            SinkCounter::add(&self.counter.connection_failed, 1);
            return Err(self.io_err(format!("writing {}", path.display()), e));
        }
        commit_counted(take, &self.counter)?;
        Ok(SinkStatus::Ready)
    }

    fn stop(&mut self) {
        if let Err(e) = self.close_current() {
            tracing::error!(sink = %self.name, error = %e, "unable to close output file");
        }
        self.counter.stop();
        tracing::info!(sink = %self.name, "rolling file sink stopped");
    }

    fn counter(&self) -> Arc<SinkCounter> {
        self.counter.clone()
    }
}
