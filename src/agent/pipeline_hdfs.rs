//! The `pipeline` sink's `hdfs` output: a query's result rows written through the HDFS sink's
//! file formats ([`crate::sink::hdfs`]), exactly once across crashes.
//!
//! ```text
//! a1.sinks.wc.output.type = hdfs
//! a1.sinks.wc.output.hdfs.path = file:///data/wc/%Y-%m-%d/%{word}
//! a1.sinks.wc.output.hdfs.fileType = DataStream
//! a1.sinks.wc.output.serializer = TEXT
//! ```
//!
//! It lives in `agent` because it joins two layers that must not see each other: the pipeline
//! (which may not import `sink`) and the HDFS sink's writer (which knows nothing of rows).
//!
//! # Keys (relative to `<agent>.sinks.<name>.output.`)
//!
//! The HDFS sink's own keys with their meaning and defaults ([`HdfsSinkConfig`]):
//! `hdfs.path` (required), `hdfs.filePrefix` (default: the **sink name**, not `FlumeData`),
//! `hdfs.fileSuffix`, `hdfs.inUsePrefix`, `hdfs.inUseSuffix` (`.tmp`), `hdfs.emptyInUseSuffix`,
//! `hdfs.fileType` (`SequenceFile`), `hdfs.writeFormat`, `hdfs.codeC`, `serializer` and
//! `serializer.*`, `hdfs.round`, `hdfs.roundValue`, `hdfs.roundUnit`, `hdfs.timeZone`,
//! `hdfs.useLocalTimeStamp`. `hdfs.path` may be `file://`, a local path or `hdfs://` (the sink's
//! native client, cargo feature `hdfs`; `hdfs.callTimeout` bounds each call there, and a flush
//! is the client's `hsync`); the other keys that tune the sink's writer pool (`hdfs.batchSize`,
//! `hdfs.maxOpenFiles`, `hdfs.callTimeout`, ...) are accepted and change nothing here (this
//! output has one file open at a time and flushes once per file). Rolls:
//!
//! * `hdfs.rollCount` / `hdfs.rollSize` (events / body bytes, default `0` = off — **not**
//!   Flume's 10 and 1024, which would shred every batch): a batch's rows of one bucket are cut
//!   into parts of at most that many, in row order. A batch's rows are the same on a replay, so
//!   the parts are too.
//! * `hdfs.rollInterval` and `hdfs.idleTimeout` are refused when set to anything but `0`: a file
//!   is closed when its batch's output ends, and `batchInterval` is how often files appear.
//!   Timed closes would make the files depend on when a batch ran, not on what it holds.
//!
//! # One event per row, and the buckets
//!
//! Every row becomes the event the `channel` output makes: the body is the row as JSON
//! (`{"batch_time":<ms>,"<col>":<value>,...}`), the headers are the group-key columns (the
//! `SELECT` items without an aggregate; a `NULL` key is left out), `sluicegate.batch =
//! <sink>-<batch id>`, and `timestamp` = the row's `window_start` (when the query selects a
//! column of that name and it is not `NULL`) or else the batch time. So `%{word}` in `hdfs.path`
//! is a group key, the time escapes (`%Y %m %d %H ...`, with `hdfs.round`) bucket windowed
//! results by their window and other results by their batch, and a SequenceFile's
//! `LongWritable` key is that same time. A key column named `timestamp` wins over both.
//! `hdfs.useLocalTimeStamp = true` uses the **batch time**, not the wall clock: a replayed batch
//! must name the same files.
//!
//! A row's bucket is `escape(hdfs.path)` + `escape(hdfs.filePrefix)`, as in the sink (empty path
//! components from an absent header are dropped).
//!
//! # Files: one per bucket per batch, named by the batch
//!
//! ```text
//! <path>/<inUsePrefix><prefix>.<batch ms>-<batch id>-<part:05><suffix><inUseSuffix>   while written
//! <path>/<prefix>.<batch ms>-<batch id>-<part:05><suffix>                              when complete
//! ```
//!
//! `<suffix>` is `hdfs.fileSuffix`, or the codec's extension (`.gz`) when that is empty; `<part>`
//! counts from `00000` within one bucket and batch (more than one only with a roll). For each
//! batch with rows the output writes every bucket's file under its in-use name (one at a time:
//! create, append the rows, the format's flush — gzip member end, SequenceFile sync — then
//! `fdatasync`, close), and once **every** file of the batch is written, renames each to its
//! final name (the rename replaces a file of that name and fsyncs the directory). Only then does
//! the output return, and only then does the pipeline persist its state and commit the take
//! ([`crate::pipeline`], "Exactly once, case by case"). An empty batch writes nothing.
//!
//! # Exactly once
//!
//! The names depend only on the batch (its id and time, both fixed by the pipeline's persisted
//! plan) and on the rows (the same on a replay: same events, same state), never on a clock or a
//! counter. A crash anywhere in a batch leaves at most: in-use files (partial or whole) and
//! final files of that batch. The restart replays the batch, which creates the same in-use names
//! (truncating what is there), writes the same rows and renames over the same final names: the
//! final tree is the tree of an uninterrupted run. DataStream files are byte-identical to it;
//! SequenceFiles and `avro_event` files differ only in their random sync markers (as any two
//! Hadoop writers' files do); gzip members are the same bytes (same deflate input and level).
//! A reader may see a final file of a batch being replayed (the previous attempt's complete,
//! identical file) — never a duplicate row. With an empty `inUsePrefix` and `inUseSuffix` the
//! in-use name is the final name, so a reader may see a partial file until the replay rewrites
//! it: keep an in-use prefix of `.` or `_` (hidden from Hive and Spark) when readers list the
//! directory while the pipeline writes.
//!
//! An error — an unwritable directory, a full disk, a bad escape — fails the batch's output: the
//! take is rolled back into the channel, the state restored, and the same batch retried with
//! the pipeline's backoff (100 ms doubling to 30 s); in-use files of the failed attempt are
//! overwritten by the retry. Unlike the HDFS sink (which parks one failed bucket and keeps the
//! others flowing), a failed bucket holds back its whole batch: a batch is one transaction.
//!
//! # How this differs from the HDFS sink's rolling
//!
//! The sink keeps a file open across transactions and closes it on `rollCount`/`rollSize`/
//! `rollInterval`/`idleTimeout`, with a counter from the wall clock in its name: a file holds
//! many transactions, and a crash leaves an in-use file that the next start renames as it is
//! (at-least-once: the retried tail is written again elsewhere). Here a file never spans two
//! batches, so it can be named by its batch and replaced whole by a replay: exactly once, at the
//! price of one file per bucket per batch interval (choose `batchInterval` for the file size you
//! want; compaction downstream, as for Spark's per-batch files). Leftover in-use files of a
//! batch that is never replayed (a checkpoint discarded with `discardStateOnChange`) are left
//! in place, under their in-use names.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{ConfigError, Context};
use crate::event::Event;
use crate::pipeline::sql::{Row, SqlQuery};
use crate::pipeline::DStream;
use crate::sink::hdfs::config::HdfsSinkConfig;
use crate::sink::hdfs::escape::Template;
use crate::sink::hdfs::format::{self, FileFormat, FormatWriter, Serializer, WriteFormat};
use crate::sink::hdfs::fs::{local_path, HdfsFileSystem};

use super::row_events::row_events_at;

/// Keys of the HDFS sink that time file closes: refused (see the module docs).
const TIMED_KEYS: [&str; 2] = ["hdfs.rollInterval", "hdfs.idleTimeout"];

/// A validated `hdfs` output (see the module docs).
#[derive(Debug, Clone)]
pub struct HdfsOutput {
    /// The HDFS sink's settings read from `output.*` (its roll/idle settings unused).
    pub cfg: HdfsSinkConfig,
    /// `output.hdfs.rollCount` (0 = off).
    pub roll_count: u64,
    /// `output.hdfs.rollSize` in body bytes (0 = off).
    pub roll_size: u64,
    /// The query's `window_start` column, when selected (the rows' `timestamp` header).
    pub window_start: Option<usize>,
}

/// One file written under its in-use name, to be renamed when the batch is complete.
struct Written {
    in_use: PathBuf,
    target: PathBuf,
}

impl HdfsOutput {
    /// Reads `output.*` of pipeline sink `name` (its context `ctx`); `query` gives the columns
    /// (`None` when it did not compile: the settings are still checked).
    pub fn from_context(
        name: &str,
        ctx: &Context,
        query: Option<&SqlQuery>,
    ) -> Result<HdfsOutput, ConfigError> {
        let o = ctx.sub("output");
        if !o.contains("hdfs.path") {
            // Named on the line that asked for an HDFS output.
            let mut e = ctx.error(
                "output.hdfs.path",
                "is not set: output.type hdfs writes the result files under this path \
                 (file:///dir, a local directory or hdfs://namenode:8020/dir; escapes such as %{word} or \
                 %Y-%m-%d allowed)",
            );
            let at = o.origin("type");
            e.line = at.line;
            e.file = at.file;
            return Err(e);
        }
        for key in TIMED_KEYS {
            if let Some(v) = o.get(key) {
                if v.trim() != "0" {
                    return Err(o.error(
                        key,
                        "is not supported by the pipeline's hdfs output: it writes one file per \
                         bucket per batch and closes it when the batch is written (exactly once); \
                         batchInterval sets how often files appear (remove the key, or use \
                         hdfs.rollCount / hdfs.rollSize to cut a batch into parts)",
                    ));
                }
            }
        }
        let roll_count = o.get_u64("hdfs.rollCount", 0)?;
        let roll_size = o.get_u64("hdfs.rollSize", 0)?;
        let mut cfg = HdfsSinkConfig::from_context(&o)?;
        if !o.contains("hdfs.filePrefix") {
            cfg.file_prefix =
                Template::parse(name).map_err(|e| o.error("hdfs.filePrefix", &e.to_string()))?;
        }
        let window_start = query.and_then(|q| {
            q.columns()
                .iter()
                .position(|c| c.eq_ignore_ascii_case("window_start"))
        });
        Ok(HdfsOutput {
            cfg,
            roll_count,
            roll_size,
            window_start,
        })
    }

    /// The file extension after the batch part (`hdfs.fileSuffix`, or the codec's).
    fn extension(&self) -> &str {
        if self.cfg.file_suffix.is_empty() {
            self.cfg.format.codec_extension()
        } else {
            &self.cfg.file_suffix
        }
    }

    /// `hdfs.fileType` (with serializer / write format / codec) in words.
    pub fn format_name(&self) -> String {
        let ser = |s: &Serializer| match s {
            Serializer::Text { .. } => "TEXT",
            Serializer::HeaderAndText { .. } => "header_and_text",
            Serializer::AvroEvent { .. } => "avro_event",
        };
        match &self.cfg.format {
            FileFormat::DataStream(s) => format!("DataStream {}", ser(s)),
            FileFormat::CompressedStream(s, c) => {
                format!("CompressedStream {} {}", c.short_name(), ser(s))
            }
            FileFormat::SequenceFile(w, c) => {
                let w = match w {
                    WriteFormat::Writable => "Writable",
                    WriteFormat::Text => "Text",
                };
                match c {
                    Some(c) => format!("SequenceFile {w} (block-compressed, {})", c.short_name()),
                    None => format!("SequenceFile {w}"),
                }
            }
        }
    }

    /// The final name pattern, for the agent's start-up line.
    pub fn describe(&self) -> String {
        format!(
            "writes {} files {}/{}.<batch ms>-<batch id>-<part>{} (one per bucket per batch, \
             renamed into place when the batch is written)",
            self.format_name(),
            self.cfg.path.source(),
            self.cfg.file_prefix.source(),
            self.extension()
        )
    }

    /// The output's name in the pipeline definition: what decides the files' names and bytes.
    fn label(&self) -> String {
        format!(
            "hdfs({}/{}{},{},in_use={}|{},roll={}/{})",
            self.cfg.path.source(),
            self.cfg.file_prefix.source(),
            self.extension(),
            self.format_name(),
            self.cfg.in_use_prefix,
            self.cfg.in_use_suffix,
            self.roll_count,
            self.roll_size
        )
    }

    /// The filesystem `hdfs.path` names (`file://` or, with the `hdfs` feature, `hdfs://`).
    fn filesystem(&self, pipeline: &str) -> Arc<dyn HdfsFileSystem> {
        crate::sink::hdfs::filesystem(&self.cfg, pipeline)
    }

    /// Adds the output to `rows`' pipeline: `key_columns` become headers, `pipeline` names the
    /// `sluicegate.batch` header.
    pub fn attach(&self, rows: &DStream<Row>, key_columns: &[usize], pipeline: &str) {
        self.attach_on(rows, key_columns, pipeline, self.filesystem(pipeline));
    }

    /// [`attach`](Self::attach) writing through `fs` (tests inject faults).
    pub fn attach_on(
        &self,
        rows: &DStream<Row>,
        key_columns: &[usize],
        pipeline: &str,
        fs: Arc<dyn HdfsFileSystem>,
    ) {
        let out = self.clone();
        let keys = key_columns.to_vec();
        let pipeline = pipeline.to_string();
        rows.foreach_batch_named(self.label(), move |batch: &[Row], cx| {
            let events = row_events_at(
                batch,
                &keys,
                &pipeline,
                cx.batch_id(),
                cx.batch_time_ms(),
                out.window_start,
            );
            out.write_batch(&*fs, &events, cx.batch_id(), cx.batch_time_ms())
                .map(|_| ())
        });
    }

    /// Writes one batch's events (see the module docs); returns the number of files.
    pub fn write_batch(
        &self,
        fs: &dyn HdfsFileSystem,
        events: &[Event],
        batch_id: u64,
        batch_time_ms: i64,
    ) -> Result<usize, String> {
        if events.is_empty() {
            return Ok(0);
        }
        let now = || batch_time_ms;
        // Buckets in the order their first row comes.
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        let mut buckets: Vec<(String, String, Vec<&Event>)> = Vec::new();
        for ev in events {
            let path = self
                .cfg
                .path
                .expand(ev, &self.cfg.time, &now)
                .map_err(|e| format!("hdfs.path: {e}"))?;
            let prefix = self
                .cfg
                .file_prefix
                .expand(ev, &self.cfg.time, &now)
                .map_err(|e| format!("hdfs.filePrefix: {e}"))?;
            let key = (path, prefix);
            let i = match index.get(&key) {
                Some(&i) => i,
                None => {
                    buckets.push((key.0.clone(), key.1.clone(), Vec::new()));
                    index.insert(key, buckets.len() - 1);
                    buckets.len() - 1
                }
            };
            buckets[i].2.push(ev);
        }
        let mut written = Vec::new();
        for (path, prefix, evs) in &buckets {
            self.write_bucket(fs, path, prefix, evs, batch_id, batch_time_ms, &mut written)?;
        }
        for w in &written {
            if w.in_use != w.target {
                fs.rename(&w.in_use, &w.target).map_err(|e| {
                    format!(
                        "renaming {} to {}: {e}",
                        w.in_use.display(),
                        w.target.display()
                    )
                })?;
            }
        }
        Ok(written.len())
    }

    #[allow(clippy::too_many_arguments)]
    fn write_bucket(
        &self,
        fs: &dyn HdfsFileSystem,
        path: &str,
        prefix: &str,
        evs: &[&Event],
        batch_id: u64,
        batch_time_ms: i64,
        written: &mut Vec<Written>,
    ) -> Result<(), String> {
        let dir = local_path(path);
        let s = &self.cfg;
        let mut open: Option<(Box<dyn FormatWriter>, Written)> = None;
        let (mut count, mut size, mut part) = (0u64, 0u64, 0u32);
        let finish = |open: &mut Option<(Box<dyn FormatWriter>, Written)>,
                      written: &mut Vec<Written>|
         -> Result<(), String> {
            if let Some((mut w, file)) = open.take() {
                let p = file.in_use.display();
                w.flush().map_err(|e| format!("flushing {p}: {e}"))?;
                w.close().map_err(|e| format!("closing {p}: {e}"))?;
                written.push(file);
            }
            Ok(())
        };
        for ev in evs {
            let full = open.is_some()
                && ((self.roll_count > 0 && count >= self.roll_count)
                    || (self.roll_size > 0 && size >= self.roll_size));
            if full {
                finish(&mut open, written)?;
                part += 1;
            }
            if open.is_none() {
                let name = format!(
                    "{prefix}.{batch_time_ms}-{batch_id}-{part:05}{}",
                    self.extension()
                );
                let in_use = dir.join(format!("{}{name}{}", s.in_use_prefix, s.in_use_suffix));
                let target = dir.join(&name);
                let w = fs
                    .create(&in_use)
                    .and_then(|f| format::open(&s.format, f))
                    .map_err(|e| format!("creating {}: {e}", in_use.display()))?;
                open = Some((w, Written { in_use, target }));
                count = 0;
                size = 0;
            }
            if let Some((w, file)) = open.as_mut() {
                w.append(ev, batch_time_ms)
                    .map_err(|e| format!("writing {}: {e}", file.in_use.display()))?;
            }
            count += 1;
            size += ev.body().len() as u64;
        }
        finish(&mut open, written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::sql::SqlOptions;
    use crate::sink::hdfs::fs::LocalFs;

    fn out(pairs: &[(&str, &str)], sql: &str) -> Result<(HdfsOutput, Context), ConfigError> {
        let ctx = Context::from_pairs("a1.sinks.wc", pairs.iter().copied());
        let q = SqlQuery::compile(sql, SqlOptions::default()).unwrap();
        HdfsOutput::from_context("wc", &ctx, Some(&q)).map(|o| (o, ctx))
    }

    const WC: &str = "SELECT word, count(*) AS n FROM events \
                      CROSS JOIN UNNEST(split(body, ' ')) AS t(word) GROUP BY word";

    #[test]
    fn defaults_differ_from_the_sink_where_a_batch_needs_it() {
        let (o, ctx) = out(
            &[
                ("output.type", "hdfs"),
                ("output.hdfs.path", "file:///data/%{word}"),
                ("output.hdfs.fileType", "CompressedStream"),
                ("output.hdfs.codeC", "gzip"),
                ("output.hdfs.batchSize", "10"),
                ("output.serializer", "header_and_text"),
            ],
            WC,
        )
        .unwrap();
        assert_eq!(
            o.cfg.file_prefix.source(),
            "wc",
            "the sink name, not FlumeData"
        );
        assert_eq!((o.roll_count, o.roll_size), (0, 0), "not Flume's 10 / 1024");
        assert_eq!(o.window_start, None);
        assert_eq!(
            o.describe(),
            "writes CompressedStream gzip header_and_text files file:///data/%{word}/wc.<batch \
             ms>-<batch id>-<part>.gz (one per bucket per batch, renamed into place when the \
             batch is written)"
        );
        // Every key is read (`output.type` is the pipeline sink's).
        assert_eq!(ctx.unused_keys(), ["output.type"]);
        let (o, _) = out(
            &[
                ("output.hdfs.path", "/x"),
                ("output.hdfs.rollCount", "100"),
                ("output.hdfs.rollInterval", "0"),
            ],
            "SELECT window_start, count(*) AS n FROM events \
             GROUP BY TUMBLE(event_time, INTERVAL '1' MINUTE)",
        )
        .unwrap();
        assert_eq!((o.roll_count, o.window_start), (100, Some(0)));
        let e = out(
            &[("output.hdfs.path", "/x"), ("output.hdfs.idleTimeout", "5")],
            WC,
        )
        .unwrap_err();
        assert_eq!(e.key, "a1.sinks.wc.output.hdfs.idleTimeout");
    }

    #[test]
    fn a_batch_is_cut_into_parts_by_rows_and_bytes_in_row_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = format!("{}/%{{k}}", dir.path().display());
        let (o, _) = out(
            &[
                ("output.hdfs.path", &path),
                ("output.hdfs.fileType", "DataStream"),
                ("output.hdfs.rollSize", "4"),
                ("output.hdfs.inUseSuffix", ".w"),
            ],
            WC,
        )
        .unwrap();
        let evs: Vec<Event> = ["aa", "bb", "cc", "dddd", "e"]
            .iter()
            .enumerate()
            .map(|(i, b)| Event::new([("k", if i < 4 { "x" } else { "y" })], b.as_bytes()))
            .collect();
        assert_eq!(o.write_batch(&LocalFs, &evs, 7, 60_000).unwrap(), 3);
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("x/wc.60000-7-00000"), "aa\nbb\n");
        assert_eq!(read("x/wc.60000-7-00001"), "cc\ndddd\n");
        assert_eq!(read("y/wc.60000-7-00000"), "e\n");
        assert_eq!(std::fs::read_dir(dir.path().join("x")).unwrap().count(), 2);
        // A replay replaces the files with the same bytes; an empty batch writes nothing.
        assert_eq!(o.write_batch(&LocalFs, &evs, 7, 60_000).unwrap(), 3);
        assert_eq!(read("x/wc.60000-7-00001"), "cc\ndddd\n");
        assert_eq!(o.write_batch(&LocalFs, &[], 8, 61_000).unwrap(), 0);
        assert_eq!(std::fs::read_dir(dir.path().join("x")).unwrap().count(), 2);
    }
}
