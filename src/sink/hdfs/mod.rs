//! The HDFS sink (`type = hdfs`, Flume's `org.apache.flume.sink.hdfs.HDFSEventSink`): events
//! into bucketed, rolled files with Flume's paths, names and formats, on `file://` paths and
//! (with the default `hdfs` cargo feature) on `hdfs://` through the native client `hdfs-native`.
//!
//! # Files and folders
//!
//! | module | job |
//! |---|---|
//! | [`config`] | Flume's keys and defaults; `hdfs.path`'s filesystem; refusals (Kerberos, LZO and zstd) |
//! | [`escape`] | `BucketPath` escapes in `hdfs.path` / `hdfs.filePrefix` |
//! | [`zone`] | calendar fields, zones (fixed, local, IANA names) and rounding for the time escapes |
//! | [`bucket`] | one bucket's writer: names, counters, rolls, timers, in-use -> final rename |
//! | [`commit`] | `hdfs.commitBehind`: the take's commit overlapped with the next batch |
//! | [`format`](mod@format) | DataStream (TEXT, header_and_text, avro_event), CompressedStream, SequenceFile (plain or block-compressed) |
//! | [`codec`] | `hdfs.codeC`: gzip, bzip2, snappy, lz4, deflate as Hadoop's codecs write them |
//! | [`javamap`] | the header order of Flume's Java `HashMap`, for serializers that print headers |
//! | [`fs`] | the filesystem trait and the local filesystem |
//! | `hdfs_fs` | `hdfs://` through `hdfs-native` (feature `hdfs`): sync bridge, `hsync`, timeouts, lease recovery |
//!
//! # One transaction ([`HdfsSink::process`])
//!
//! 1. Writers whose `idleTimeout` or `rollInterval` deadline passed are closed and dropped. On an
//!    idle channel the runner would sleep up to its backoff (5 s) between calls; the sink's
//!    [`Sink::wake_in`] (time to the soonest writer deadline, on the injected clock) ends that
//!    sleep by the deadline, so timed closes happen on time, as Flume's timer pool does them.
//! 2. Up to `hdfs.batchSize` events are taken from the channel.
//! 3. Each event's bucket is `escape(hdfs.path) + "/" + escape(hdfs.filePrefix)`; one writer
//!    (one open file, one counter) per bucket, least recently used first out when more than
//!    `hdfs.maxOpenFiles` are open. The directory is the path with empty components dropped (a
//!    missing `%{header}` gives `a//b`, written to `a/b` but a bucket of its own, as in Flume).
//! 4. The event is appended (the writer flushes by itself every `batchSize` appends). Runs of
//!    consecutive events of one bucket are appended with one writer lookup; a static path and
//!    prefix are never expanded, and a dynamic one is looked up in the map only when it differs
//!    from the previous event's.
//! 5. Every writer touched is flushed — format group ended, bytes `fdatasync`ed locally, or
//!    `hsync`ed on HDFS (acknowledged and synced by every DataNode of the pipeline, length
//!    recorded at the NameNode) — and only then the take commits: a committed event is durable
//!    (Flume's at-least-once with `hflush`, and stronger).
//!    With `hdfs.commitBehind = true` (a sluicegate extension, off by default) that commit runs
//!    on a helper thread while the next call writes the next batch ([`commit`]).
//!
//! # Faults: nothing lost, other buckets keep flowing
//!
//! An event whose bucket cannot be named (a time escape without a `timestamp` header, a bad
//! number) or whose bucket fails to create/write/flush (unwritable directory, full disk, a
//! NameNode that is down or refuses permission, a call past `hdfs.callTimeout`) is not
//! dropped and does not block the others: its writer is closed and renamed (what it flushed
//! before is committed data), the bucket is parked with an exponential backoff (1 s doubling to
//! 60 s, on the injected clock), and the events of failed or parked buckets are put back into the
//! channel (same order per bucket) in the same `process` call, before the take commits. Every
//! put-back is logged as an ERROR naming the file or escape and the reason. If the put-back
//! itself fails, the whole take rolls back (duplicates possible for the buckets that were
//! written: at-least-once). When nothing could be written the call returns an error, so the
//! runner backs off. (Flume instead rolls the whole transaction back and retries it forever, so
//! one bad bucket stops every bucket.)
//!
//! # Start and stop
//!
//! `start` recovers files left under their in-use names by a crash: under the path's literal
//! prefix (the part before its first escape), files whose names are
//! `<inUsePrefix><filePrefix>.<digits><suffix><inUseSuffix>` are renamed to their final names
//! (skipped, with a warning, when the final name exists). Their contents are whatever reached the
//! disk: every committed event, maybe a partial tail of an uncommitted batch (written again by the
//! retry). `stop` closes and renames every open file, least recently used first, as Flume's
//! `stop()` does.
//!
//! # Metrics (Flume's `SinkCounter` names)
//!
//! `ConnectionCreatedCount` per file opened, `ConnectionClosedCount` per file closed,
//! `ConnectionFailedCount` per failed open/close, `BatchEmptyCount` / `BatchUnderflowCount` /
//! `BatchCompleteCount` per take, `EventDrainAttemptCount` per event taken,
//! `EventDrainSuccessCount` per event written and committed, `EventWriteFail` per failed event,
//! `ChannelReadFail`.
//!
//! # Not in this build
//!
//! `hdfs://` in a build without the `hdfs` feature (refused by the config, naming the feature),
//! Kerberos and proxy users (on HDFS the sink writes as `HADOOP_USER_NAME` or the login name),
//! `viewfs://`/`webhdfs://`, `hdfs.minBlockReplicas` (validated, no effect), the LZO codec (the
//! GPL hadoop-lzo add-on; no Rust encoder) and zstd (Hadoop's `ZStandardCodec` needs native
//! libraries on every reader), `RECORD`-compressed SequenceFiles (Flume never writes them: it
//! passes `BLOCK` with every codec), Hadoop's `.crc` sidecars.

pub mod bucket;
pub mod codec;
pub mod commit;
pub mod config;
pub mod escape;
pub mod format;
pub mod fs;
#[cfg(feature = "hdfs")]
pub mod hdfs_fs;
pub mod javamap;
pub mod zone;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::bucket::{BucketSettings, BucketWriter, Env};
use self::commit::Committer;
use self::config::{FsTarget, HdfsSinkConfig};
use self::fs::{local_path, HdfsFileSystem, LocalFs};
use super::batch::take_counted;
use super::{Sink, SinkError, SinkStatus};
use crate::channel::Channel;
use crate::clock::{now_millis, Clock};
use crate::config::{ConfigError, Context};
use crate::event::Event;
use crate::metrics::SinkCounter;

/// A wall clock in epoch milliseconds (file-name counters, `useLocalTimeStamp`).
pub type WallClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// First and longest wait before a failed bucket is tried again.
const PARK_FIRST: Duration = Duration::from_secs(1);
const PARK_MAX: Duration = Duration::from_secs(60);

struct Parked {
    until: Instant,
    wait: Duration,
}

/// What every bucket writer works with (kept apart from the writers so both can be borrowed).
struct Shared {
    name: String,
    settings: BucketSettings,
    fs: Arc<dyn HdfsFileSystem>,
    counter: Arc<SinkCounter>,
    clock: Clock,
    wall: WallClock,
}

impl Shared {
    fn env(&self) -> Env<'_> {
        Env {
            settings: &self.settings,
            fs: &*self.fs,
            counter: &self.counter,
            clock: &self.clock,
            wall: &*self.wall,
            sink: &self.name,
        }
    }
}

/// The HDFS sink.
pub struct HdfsSink {
    channel: Arc<dyn Channel>,
    cfg: HdfsSinkConfig,
    sh: Shared,
    counter: Arc<SinkCounter>,
    writers: HashMap<String, BucketWriter>,
    parked: HashMap<String, Parked>,
    tick: u64,
    /// The one bucket when neither `hdfs.path` nor `hdfs.filePrefix` has escapes.
    static_bucket: Option<(String, String, String)>,
    /// `hdfs.commitBehind`: commit on a helper thread (started by `start`).
    commit_behind: bool,
    committer: Option<Committer>,
}

/// Parks bucket `key`: its next try waits 1 s, doubling per failure up to 60 s.
fn park(parked: &mut HashMap<String, Parked>, clock: &Clock, key: &str) {
    let now = clock.now();
    let wait = match parked.get(key) {
        Some(p) => (p.wait * 2).min(PARK_MAX),
        None => PARK_FIRST,
    };
    parked.insert(
        key.to_string(),
        Parked {
            until: now + wait,
            wait,
        },
    );
}

/// One bucket of a transaction: its key, directory and file prefix, whether an event was
/// appended to it, and whether it failed (or is parked): then its events go back.
struct TxBucket {
    key: String,
    path: String,
    name: String,
    touched: bool,
    bad: bool,
}

impl TxBucket {
    fn new(key: String, path: String, name: String) -> TxBucket {
        TxBucket {
            key,
            path,
            name,
            touched: false,
            bad: false,
        }
    }
}

/// Why one event could not be written in this transaction.
struct Failure {
    bucket: String,
    reason: String,
}

impl HdfsSink {
    /// Builds the sink from its context; it drains `channel`.
    pub fn from_context(
        name: &str,
        ctx: &Context,
        channel: Arc<dyn Channel>,
    ) -> Result<HdfsSink, ConfigError> {
        let cfg = HdfsSinkConfig::from_context(ctx)?;
        let commit_behind = ctx.get_bool("hdfs.commitBehind", false);
        Ok(HdfsSink::new(name, cfg, channel).with_commit_behind(commit_behind))
    }

    /// Builds the sink from explicit settings, on the filesystem `hdfs.path` names (an
    /// `hdfs://` client connects on first use).
    pub fn new(name: &str, cfg: HdfsSinkConfig, channel: Arc<dyn Channel>) -> HdfsSink {
        let settings = BucketSettings {
            file_suffix: cfg.file_suffix.clone(),
            in_use_prefix: cfg.in_use_prefix.clone(),
            in_use_suffix: cfg.in_use_suffix.clone(),
            roll_interval: cfg.roll_interval,
            roll_size: cfg.roll_size,
            roll_count: cfg.roll_count,
            idle_timeout: cfg.idle_timeout,
            batch_size: cfg.batch_size as u64,
            format: cfg.format.clone(),
        };
        let counter = Arc::new(SinkCounter::new(name));
        let static_bucket = (cfg.path.is_static() && cfg.file_prefix.is_static()).then(|| {
            let (path, name) = (cfg.path.source(), cfg.file_prefix.source());
            (format!("{path}/{name}"), path.to_string(), name.to_string())
        });
        let fs = filesystem(&cfg, name);
        HdfsSink {
            channel,
            cfg,
            sh: Shared {
                name: name.to_string(),
                settings,
                fs,
                counter: counter.clone(),
                clock: Clock::system(),
                wall: Arc::new(|| now_millis() as i64),
            },
            counter,
            writers: HashMap::new(),
            parked: HashMap::new(),
            tick: 0,
            static_bucket,
            commit_behind: false,
            committer: None,
        }
    }

    /// Commits each take on a helper thread while the next batch is written
    /// (`hdfs.commitBehind`, see [`commit`]); takes effect at `start`.
    pub fn with_commit_behind(mut self, on: bool) -> HdfsSink {
        self.commit_behind = on;
        self
    }

    /// `hdfs.path` as configured (scheme and authority included), for logs.
    fn shown_path(&self) -> String {
        match &self.cfg.fs {
            FsTarget::Local => self.cfg.path.source().to_string(),
            FsTarget::Hdfs(a) => format!("{}{}", a.url(), self.cfg.path.source()),
        }
    }

    /// Times rolls, idle closes and bucket backoffs with `clock` (tests step it).
    pub fn with_clock(mut self, clock: Clock) -> HdfsSink {
        self.sh.clock = clock;
        self
    }

    /// Reads wall time (file-name counters, `useLocalTimeStamp`) from `wall`.
    pub fn with_wall_clock(mut self, wall: WallClock) -> HdfsSink {
        self.sh.wall = wall;
        self
    }

    /// Writes through `fs` instead of the local filesystem (tests inject faults).
    pub fn with_fs(mut self, fs: Arc<dyn HdfsFileSystem>) -> HdfsSink {
        self.sh.fs = fs;
        self
    }

    /// The in-use paths of the files open now, sorted.
    pub fn open_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self
            .writers
            .values()
            .filter_map(|w| w.open_path().map(Path::to_path_buf))
            .collect();
        v.sort();
        v
    }

    /// Closes writers whose idle or roll-interval deadline has passed.
    fn close_timed_out(&mut self) {
        let now = self.sh.clock.now();
        let mut due: Vec<(u64, String)> = self
            .writers
            .iter()
            .filter(|(_, w)| w.timed_out(now))
            .map(|(k, w)| (w.last_used, k.clone()))
            .collect();
        due.sort();
        for (_, key) in due {
            if let Some(mut w) = self.writers.remove(&key) {
                if let Err(e) = w.close(&self.sh.env()) {
                    tracing::error!(sink = %self.sh.name, error = %e, "closing a timed-out bucket failed");
                }
            }
        }
    }

    /// The index in `buckets` of `ev`'s bucket, adding it on first sight (the static bucket
    /// without expanding anything; `prev`, the previous event's bucket, without a map lookup).
    fn slot_of(
        &self,
        ev: &Event,
        prev: Option<u32>,
        buckets: &mut Vec<TxBucket>,
        index: &mut HashMap<String, u32>,
    ) -> Result<u32, String> {
        if let Some((key, path, name)) = &self.static_bucket {
            if buckets.is_empty() {
                buckets.push(TxBucket::new(key.clone(), path.clone(), name.clone()));
            }
            return Ok(0);
        }
        let wall = || (self.sh.wall)();
        let path = self
            .cfg
            .path
            .expand(ev, &self.cfg.time, &wall)
            .map_err(|e| format!("hdfs.path: {e}"))?;
        let name = self
            .cfg
            .file_prefix
            .expand(ev, &self.cfg.time, &wall)
            .map_err(|e| format!("hdfs.filePrefix: {e}"))?;
        if let Some(p) = prev {
            let b = &buckets[p as usize];
            if b.path == path && b.name == name {
                return Ok(p);
            }
        }
        let key = format!("{path}/{name}");
        if let Some(&s) = index.get(&key) {
            return Ok(s);
        }
        let s = buckets.len() as u32;
        index.insert(key.clone(), s);
        buckets.push(TxBucket::new(key, path, name));
        Ok(s)
    }

    fn writer_for<'w>(
        writers: &'w mut HashMap<String, BucketWriter>,
        tick: &mut u64,
        max_open: usize,
        env: &Env<'_>,
        key: &str,
        path: &str,
        name: &str,
    ) -> &'w mut BucketWriter {
        *tick += 1;
        if !writers.contains_key(key) {
            if writers.len() >= max_open {
                let eldest = writers
                    .iter()
                    .min_by_key(|(_, w)| w.last_used)
                    .map(|(k, _)| k.clone());
                if let Some(mut w) = eldest.and_then(|k| writers.remove(&k)) {
                    if let Err(e) = w.close(env) {
                        tracing::error!(sink = env.sink, error = %e, "closing the eldest bucket (maxOpenFiles) failed");
                    }
                }
            }
            let w = BucketWriter::new(local_path(path), name.to_string(), (env.wall)());
            writers.insert(key.to_string(), w);
        }
        let w = writers.get_mut(key).expect("inserted above");
        w.last_used = *tick;
        w
    }

    fn fail_bucket(&mut self, key: &str) {
        if let Some(mut w) = self.writers.remove(key) {
            w.abandon(&self.sh.env());
        }
        park(&mut self.parked, &self.sh.clock, key);
    }

    /// Recovers in-use files left by a crash (see the module docs).
    fn recover(&self) {
        let s = &self.sh.settings;
        if s.in_use_prefix.is_empty() && s.in_use_suffix.is_empty() {
            return;
        }
        let path_src = self.cfg.path.source();
        let (root, depth) = if self.cfg.path.is_static() {
            (local_path(path_src), 0usize)
        } else {
            let lit = self.cfg.path.static_prefix();
            let root = match lit.rfind('/') {
                Some(i) => &lit[..i],
                None => "",
            };
            let rest = &path_src[root.len()..];
            (local_path(root), rest.matches('/').count())
        };
        if root.as_os_str().is_empty() || root == Path::new("/") {
            return;
        }
        let ext = if s.file_suffix.is_empty() {
            s.format.codec_extension().to_string()
        } else {
            s.file_suffix.clone()
        };
        let pattern = format!(
            "^{}({}\\.[0-9]+{}){}$",
            regex::escape(&s.in_use_prefix),
            self.cfg.file_prefix.to_regex_source(),
            regex::escape(&ext),
            regex::escape(&s.in_use_suffix)
        );
        let Ok(re) = regex::Regex::new(&pattern) else {
            return;
        };
        let mut stack = vec![(root, 0usize)];
        while let Some((dir, d)) = stack.pop() {
            let Ok(entries) = self.sh.fs.list(&dir) else {
                continue;
            };
            for (p, is_dir) in entries {
                if is_dir {
                    if d < depth {
                        stack.push((p, d + 1));
                    }
                    continue;
                }
                let Some(fname) = p.file_name().and_then(|f| f.to_str()) else {
                    continue;
                };
                let Some(final_name) = re.captures(fname).and_then(|c| c.get(1)) else {
                    continue;
                };
                let target = dir.join(final_name.as_str());
                match bucket::recover(&*self.sh.fs, &p, &target) {
                    Ok(()) => tracing::info!(
                        sink = %self.sh.name,
                        "recovered {} left in use by an earlier run: renamed to {}",
                        p.display(),
                        target.display()
                    ),
                    Err(e) => tracing::warn!(
                        sink = %self.sh.name,
                        "could not recover {} (left in use by an earlier run): {e}",
                        p.display()
                    ),
                }
            }
        }
    }
}

/// The filesystem of `cfg.fs` (`sink` names it in logs); the pipeline's `hdfs` output uses it too.
pub fn filesystem(cfg: &HdfsSinkConfig, sink: &str) -> Arc<dyn HdfsFileSystem> {
    match &cfg.fs {
        FsTarget::Local => Arc::new(LocalFs),
        #[cfg(feature = "hdfs")]
        FsTarget::Hdfs(a) => Arc::new(hdfs_fs::HdfsFs::new(a.clone(), cfg.calls.clone(), sink)),
        #[cfg(not(feature = "hdfs"))]
        FsTarget::Hdfs(_) => {
            let _ = sink;
            Arc::new(fs::Unavailable)
        }
    }
}

impl Sink for HdfsSink {
    fn name(&self) -> &str {
        &self.sh.name
    }

    fn start(&mut self) -> Result<(), SinkError> {
        if self.commit_behind && self.committer.is_none() {
            self.committer = Some(Committer::spawn(&self.sh.name, self.counter.clone())?);
        }
        self.counter.start();
        self.recover();
        tracing::info!(sink = %self.sh.name, path = %self.shown_path(), "HDFS sink started");
        Ok(())
    }

    fn process(&mut self) -> Result<SinkStatus, SinkError> {
        self.close_timed_out();
        let take = take_counted(&*self.channel, &self.counter, self.cfg.batch_size)?;
        if take.is_empty() {
            if let Some(c) = self.committer.as_mut() {
                c.wait()?;
            }
            return Ok(SinkStatus::Backoff);
        }
        let now = self.sh.clock.now();
        self.parked.retain(|_, p| p.until > now);

        // The distinct buckets of this transaction, and each event's index into them (None: it
        // could not be named). Events are appended in runs of consecutive events of one
        // bucket, so the writer is looked up once per run, not per event.
        let events = take.events();
        let mut buckets: Vec<TxBucket> = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut slots: Vec<Option<u32>> = Vec::with_capacity(events.len());
        let mut failures: Vec<Failure> = Vec::new();
        for ev in events {
            let prev = slots.last().copied().flatten();
            match self.slot_of(ev, prev, &mut buckets, &mut index) {
                Ok(s) => slots.push(Some(s)),
                Err(reason) => {
                    slots.push(None);
                    failures.push(Failure {
                        bucket: "(unnamed)".into(),
                        reason,
                    });
                }
            }
        }
        let mut i = 0;
        while i < events.len() {
            let Some(s) = slots[i] else {
                i += 1;
                continue;
            };
            let mut end = i + 1;
            while end < events.len() && slots[end] == Some(s) {
                end += 1;
            }
            let b = &mut buckets[s as usize];
            if b.bad || self.parked.contains_key(&b.key) {
                b.bad = true;
                i = end;
                continue;
            }
            let env = self.sh.env();
            let w = Self::writer_for(
                &mut self.writers,
                &mut self.tick,
                self.cfg.max_open_files,
                &env,
                &b.key,
                &b.path,
                &b.name,
            );
            let mut failed = None;
            for ev in &events[i..end] {
                if let Err(e) = w.append(ev, &env) {
                    failed = Some(e.to_string());
                    break;
                }
            }
            match failed {
                None => b.touched = true,
                Some(reason) => {
                    SinkCounter::add(&self.counter.event_write_fail, 1);
                    failures.push(Failure {
                        bucket: b.key.clone(),
                        reason,
                    });
                    b.bad = true;
                    self.fail_bucket(&b.key);
                }
            }
            i = end;
        }
        // Flush every bucket written; a failed flush sends that bucket's events back.
        for b in buckets.iter_mut().filter(|b| b.touched && !b.bad) {
            let r = match self.writers.get_mut(&b.key) {
                Some(w) => w.flush(&self.sh.env()),
                None => Ok(()),
            };
            if let Err(e) = r {
                failures.push(Failure {
                    bucket: b.key.clone(),
                    reason: e.to_string(),
                });
                b.bad = true;
                self.fail_bucket(&b.key);
            }
        }
        let put_back: Vec<Event> = events
            .iter()
            .zip(&slots)
            .filter(|(_, s)| s.is_none_or(|s| buckets[s as usize].bad))
            .map(|(ev, _)| ev.clone())
            .collect();
        for f in &failures {
            tracing::error!(
                sink = %self.sh.name,
                bucket = %f.bucket,
                "could not write an event: {}; it goes back to the channel and is retried",
                f.reason
            );
        }
        let n = take.len();
        let back = put_back.len();
        if back > 0 {
            if let Err(e) = self.channel.put_batch(&put_back) {
                SinkCounter::add(&self.counter.channel_read_fail, 1);
                take.rollback();
                return Err(SinkError::Delivery {
                    sink: self.sh.name.clone(),
                    message: format!(
                        "{back} event(s) could not be written and could not be put back ({e}); \
                         the whole batch was rolled back and will be retried"
                    ),
                });
            }
        }
        match self.committer.as_mut() {
            // Commit-behind: the previous take's commit must be done (in order, one in
            // flight); a failure there rolls this take back too (it is dropped on return).
            Some(c) => {
                c.wait()?;
                c.submit(take, (n - back) as u64)?;
            }
            None => {
                if let Err(e) = take.commit() {
                    SinkCounter::add(&self.counter.channel_read_fail, 1);
                    return Err(e.into());
                }
                SinkCounter::add(&self.counter.event_drain_success, (n - back) as u64);
            }
        }
        if back == n {
            let why = failures
                .first()
                .map(|f| format!("{}: {}", f.bucket, f.reason))
                .unwrap_or_else(|| "its bucket is waiting after a failure".into());
            return Err(SinkError::Delivery {
                sink: self.sh.name.clone(),
                message: format!(
                    "no event of the batch could be written ({why}); all were put back"
                ),
            });
        }
        Ok(SinkStatus::Ready)
    }

    fn stop(&mut self) {
        // The commit in flight first (its events are in the files already).
        if let Some(mut c) = self.committer.take() {
            if let Err(e) = c.wait() {
                tracing::error!(sink = %self.sh.name, error = %e, "the last commit failed; its events stay in the channel");
            }
        }
        let mut all: Vec<(u64, String)> = self
            .writers
            .iter()
            .map(|(k, w)| (w.last_used, k.clone()))
            .collect();
        all.sort();
        for (_, key) in all {
            if let Some(mut w) = self.writers.remove(&key) {
                if let Err(e) = w.close(&self.sh.env()) {
                    tracing::error!(sink = %self.sh.name, error = %e, "closing a bucket at stop failed");
                }
            }
        }
        self.counter.stop();
        tracing::info!(sink = %self.sh.name, "HDFS sink stopped");
    }

    fn counter(&self) -> Arc<SinkCounter> {
        self.counter.clone()
    }

    fn wake_in(&self) -> Option<Duration> {
        let now = self.sh.clock.now();
        self.writers
            .values()
            .filter_map(BucketWriter::deadline)
            .min()
            .map(|d| d.saturating_duration_since(now))
    }
}
