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
//! | `sink.serializer` | `TEXT` | `TEXT` (body + `\n`) or `avro_event` (Avro container file) |
//! | `sink.serializer.appendNewline` | true | TEXT: newline after each body |
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
//! (no namespace — Flume's schema has none), written with apache-avro's `Writer`.
//!
//! Durability: every batch is written, flushed and `fdatasync`ed **before** the take commits, so
//! a committed take is on disk. A write failure rolls the take back and abandons the current file
//! (the retry goes to a fresh file, so a half-written batch is never appended to).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use apache_avro::{Codec, DeflateSettings, Schema, Writer};

use super::batch::{commit_counted, take_counted};
use super::{Sink, SinkError, SinkStatus};
use crate::channel::Channel;
use crate::clock::now_millis;
use crate::clock::Clock;
use crate::config::{ConfigError, Context};
use crate::event::Event;
use crate::metrics::SinkCounter;

/// Flume's `FlumeEventAvroEventSerializer` schema, as its JSON text.
pub const FLUME_EVENT_SCHEMA: &str = r#"{"type":"record","name":"Event","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}"#;

static EVENT_SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    Schema::parse_str(FLUME_EVENT_SCHEMA).expect("the built-in Flume Event schema parses")
});

/// How events are written to the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSerializer {
    /// `TEXT`: the body, then `\n` when `append_newline`.
    Text {
        /// `sink.serializer.appendNewline`.
        append_newline: bool,
    },
    /// `avro_event`: an Avro object container file of Flume `Event` records.
    AvroEvent {
        /// `sink.serializer.compressionCodec` is `deflate`.
        deflate: bool,
        /// `sink.serializer.syncIntervalBytes`.
        sync_interval: usize,
    },
}

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
        let ser = ctx.get_or("sink.serializer", "TEXT").trim().to_string();
        let serializer = match ser.to_ascii_lowercase().as_str() {
            "text" | "org.apache.flume.serialization.bodytexteventserializer$builder" => {
                FileSerializer::Text {
                    append_newline: ctx.get_bool("sink.serializer.appendNewline", true),
                }
            }
            "avro_event"
            | "org.apache.flume.serialization.flumeeventavroeventserializer$builder" => {
                let codec = ctx
                    .get_or("sink.serializer.compressionCodec", "null")
                    .trim()
                    .to_ascii_lowercase();
                let deflate = match codec.as_str() {
                    "null" => false,
                    "deflate" => true,
                    other => {
                        return Err(ctx.error(
                            "sink.serializer.compressionCodec",
                            &format!("unsupported Avro codec '{other}' (use null or deflate)"),
                        ))
                    }
                };
                FileSerializer::AvroEvent {
                    deflate,
                    sync_interval: ctx
                        .get_positive_int("sink.serializer.syncIntervalBytes", 2_048_000)?,
                }
            }
            _ => {
                return Err(ctx.error(
                    "sink.serializer",
                    &format!("unsupported serializer '{ser}' (use TEXT or avro_event)"),
                ))
            }
        };
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

enum Output {
    Text(BufWriter<File>),
    Avro(Box<Writer<'static, BufWriter<File>>>),
}

impl Output {
    fn write(&mut self, ev: &Event, append_newline: bool) -> io::Result<()> {
        match self {
            Output::Text(w) => {
                w.write_all(ev.body())?;
                if append_newline {
                    w.write_all(b"\n")?;
                }
                Ok(())
            }
            Output::Avro(w) => {
                let headers: std::collections::HashMap<String, Value> = ev
                    .header_map()
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                let record = Value::Record(vec![
                    ("headers".to_string(), Value::Map(headers)),
                    ("body".to_string(), Value::Bytes(ev.body().to_vec())),
                ]);
                w.append(record).map(|_| ()).map_err(io::Error::other)
            }
        }
    }

    /// Flushes everything to the file and `fdatasync`s it.
    fn sync(&mut self) -> io::Result<()> {
        match self {
            Output::Text(w) => {
                w.flush()?;
                w.get_ref().sync_data()
            }
            Output::Avro(w) => {
                w.flush().map_err(io::Error::other)?;
                w.get_mut().flush()?;
                w.get_ref().get_ref().sync_data()
            }
        }
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
    out: Option<Output>,
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
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        let path = self.current.take().unwrap_or_default();
        match out.sync() {
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
        let opened = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .and_then(|f| {
                let w = BufWriter::with_capacity(64 * 1024, f);
                let mut out = match &self.cfg.serializer {
                    FileSerializer::Text { .. } => Output::Text(w),
                    FileSerializer::AvroEvent {
                        deflate,
                        sync_interval,
                    } => {
                        let codec = if *deflate {
                            Codec::Deflate(DeflateSettings::default())
                        } else {
                            Codec::Null
                        };
                        Output::Avro(Box::new(
                            Writer::builder()
                                .schema(&EVENT_SCHEMA)
                                .writer(w)
                                .codec(codec)
                                .block_size(*sync_interval)
                                .build(),
                        ))
                    }
                };
                // Like Flume's afterCreate: the Avro header goes out at once.
                out.sync()?;
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
        let append_newline = matches!(
            self.cfg.serializer,
            FileSerializer::Text {
                append_newline: true
            }
        );
        let written = match self.out.as_mut() {
            Some(out) => take
                .events()
                .iter()
                .try_for_each(|ev| out.write(ev, append_newline))
                .and_then(|()| out.sync()),
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
