//! `FileChannel`: the [`Channel`] implementation tying writer, reader, group commit, ledger
//! checkpoints and the background maintenance thread together.
//!
//! Lock order (never taken the other way round): `log` → `queue`; `segs` and `ledger` are leaves.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::channel::{Channel, ChannelError, TakeBatch, TakeCompletion};
use crate::event::Event;
use crate::metrics::{ChannelCounter, ChannelHealth};

use super::config::FileChannelConfig;
use super::disk::{self, DirLock};
use super::format::{Pos, EVENT_FRAME_LEN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::ledger::{Checkpoint, Ledger, MAX_RANGES};
use super::reader::ReadState;
use super::recovery::recover;
use super::spare::Spares;
use super::writer::{serialize_put, AppendError, LogState, SegmentMap};

struct Bg {
    kick: bool,
    shutdown: bool,
}

struct Shared {
    name: String,
    cfg: FileChannelConfig,
    counter: Arc<ChannelCounter>,
    health: Arc<ChannelHealth>,
    log: Mutex<LogState>,
    /// Signalled when a sync finishes.
    synced: Condvar,
    queue: Mutex<ReadState>,
    /// Signalled when events become visible or room appears.
    changed: Condvar,
    segs: SegmentMap,
    /// Consumed segment files kept for reuse (shared with the writer).
    spares: Arc<Spares>,
    ledger: Mutex<LedgerState>,
    bg: Mutex<Bg>,
    bg_cv: Condvar,
    locks: Mutex<Vec<DirLock>>,
    closed: AtomicBool,
    /// Test hook: make the next fdatasync fail as if the disk returned EIO.
    fail_next_sync: AtomicBool,
}

struct LedgerState {
    ledger: Ledger,
    generation: u64,
    last: Instant,
}

/// The durable file channel. See the [module essay](super) for the design.
pub struct FileChannel {
    shared: Arc<Shared>,
    bg: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for FileChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileChannel")
            .field("name", &self.shared.name)
            .field("data_dir", &self.shared.cfg.data_dir())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    static PUT_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl FileChannel {
    /// Opens (recovering) or creates the channel in `cfg`'s directories.
    pub fn open(
        name: impl Into<String>,
        cfg: FileChannelConfig,
    ) -> Result<FileChannel, ChannelError> {
        let name = name.into();
        let r = recover(&cfg, &name)?;
        let counter = Arc::new(ChannelCounter::new(name.clone()));
        ChannelCounter::add(&counter.capacity, cfg.capacity);
        let health = Arc::new(ChannelHealth::default());
        counter.attach_health(health.clone());
        let end = Pos::new(r.cur.id(), r.off);
        let reader_seg = r.segs[&r.ack_pos.seg].clone();
        let mut rs = ReadState::new(reader_seg, r.ack_pos, r.acks, end, r.next_seq);
        rs.bytes = r.held_bytes;
        counter.channel_size.store(rs.size(), Ordering::Relaxed);
        let spares = Arc::new(Spares::open(cfg.data_dir(), cfg.segment_size));
        let log = LogState {
            cur: r.cur,
            off: r.off,
            next_seq: r.next_seq,
            unsynced: Vec::new(),
            durable: (end, r.next_seq),
            syncing: false,
            poisoned: None,
            since_checkpoint: 0,
            ack_buf: Vec::new(),
            dir: cfg.data_dir().to_path_buf(),
            segment_size: cfg.segment_size,
            min_free: cfg.minimum_required_space,
            spares: spares.clone(),
        };
        let shared = Arc::new(Shared {
            name,
            counter,
            health,
            log: Mutex::new(log),
            synced: Condvar::new(),
            queue: Mutex::new(rs),
            changed: Condvar::new(),
            segs: std::sync::RwLock::new(r.segs),
            spares,
            ledger: Mutex::new(LedgerState {
                ledger: r.ledger,
                generation: r.generation,
                last: Instant::now(),
            }),
            bg: Mutex::new(Bg {
                kick: false,
                shutdown: false,
            }),
            bg_cv: Condvar::new(),
            locks: Mutex::new(r.locks),
            closed: AtomicBool::new(false),
            fail_next_sync: AtomicBool::new(false),
            cfg,
        });
        shared.health.open.store(1, Ordering::Relaxed);
        shared.counter.start();
        // Record the recovered state at once, so the next restart starts from here.
        shared.checkpoint()?;
        let bg_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("filechan-{}", shared.name))
            .spawn(move || bg_shared.maintenance())
            .map_err(|e| shared.io("starting the maintenance thread", e))?;
        Ok(FileChannel {
            shared,
            bg: Mutex::new(Some(handle)),
        })
    }

    /// `Open` / `Unhealthy` gauges (Flume's FileChannel attributes).
    pub fn health(&self) -> &Arc<ChannelHealth> {
        &self.shared.health
    }

    /// The channel's settings.
    pub fn config(&self) -> &FileChannelConfig {
        &self.shared.cfg
    }

    /// Writes a checkpoint now (the maintenance thread does this on its own) and deletes
    /// segments every consumer has committed past.
    pub fn checkpoint(&self) -> Result<(), ChannelError> {
        self.shared.checkpoint()
    }

    /// Number of segment files currently in use.
    pub fn segment_count(&self) -> usize {
        self.shared
            .segs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Log position up to which everything is durable (`(segment, offset)`; for tests/tools).
    #[doc(hidden)]
    pub fn durable_position(&self) -> (u64, u64) {
        let p = lock(&self.shared.log).durable.0;
        (p.seg, p.off)
    }

    /// Test hook: the next fdatasync fails with EIO.
    #[doc(hidden)]
    pub fn inject_sync_failure(&self) {
        self.shared.fail_next_sync.store(true, Ordering::SeqCst);
    }

    /// Test hook simulating `kill -9` in the middle of a put: appends the first `keep` bytes of
    /// the records `events` would produce, then `garbage`, and stops without any sync, checkpoint
    /// or cleanup (only the directory locks are released so the test can reopen). Returns true
    /// when `keep` covered the whole transaction (then it was written, just never synced).
    #[doc(hidden)]
    pub fn crash_with_torn_put(self, events: &[Event], keep: usize, garbage: &[u8]) -> bool {
        use std::os::unix::fs::FileExt;
        let sh = self.shared.clone();
        let mut complete;
        {
            let log = lock(&sh.log);
            let mut buf = Vec::new();
            let crc = serialize_put(&mut buf, events);
            let payload_len = events
                .iter()
                .map(|e| EVENT_FRAME_LEN + e.encoded_len())
                .sum::<usize>();
            let mut h = super::format::RecordHeader {
                payload_len: payload_len as u32,
                crc: 0,
                kind: super::format::KIND_PUT,
                flags: super::format::FLAG_END_OF_TXN,
                count: events.len() as u32,
                seq: log.next_seq,
            };
            h.seal(crc);
            buf[..RECORD_HEADER_LEN].copy_from_slice(&h.encode());
            let full = buf.len();
            buf.truncate(keep.min(full));
            // Padding is zeros on disk anyway: the record is whole once its payload is.
            complete = buf.len() >= RECORD_HEADER_LEN + payload_len;
            buf.extend_from_slice(garbage);
            let room = log.cur.len().saturating_sub(log.off) as usize;
            if room < full {
                complete = false;
            }
            buf.truncate(room);
            let _ = log.cur.file.write_all_at(&buf, log.off);
        }
        sh.stop_background(&self.bg);
        lock(&sh.locks).clear();
        sh.closed.store(true, Ordering::SeqCst);
        drop(self);
        complete
    }
}

impl Drop for FileChannel {
    fn drop(&mut self) {
        if !self.shared.closed.load(Ordering::SeqCst) {
            if let Err(e) = self.close() {
                tracing::warn!(channel = %self.shared.name, error = %e, "closing the file channel");
            }
        }
    }
}

impl Shared {
    fn io(&self, what: &str, source: std::io::Error) -> ChannelError {
        ChannelError::Io {
            channel: self.name.clone(),
            what: what.to_string(),
            source,
        }
    }

    fn unhealthy(&self, reason: &str) -> ChannelError {
        ChannelError::Unhealthy {
            channel: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    fn check_usable(&self) -> Result<(), ChannelError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ChannelError::Closed {
                channel: self.name.clone(),
            });
        }
        if self.health.unhealthy.load(Ordering::Acquire) != 0 {
            let reason = lock(&self.log)
                .poisoned
                .clone()
                .unwrap_or_else(|| "an earlier failure".into());
            return Err(self.unhealthy(&reason));
        }
        Ok(())
    }

    fn append_error(&self, e: AppendError) -> ChannelError {
        match e {
            AppendError::NoSpace {
                available,
                required,
            } => {
                self.kick();
                ChannelError::DiskSpace {
                    channel: self.name.clone(),
                    dir: self.cfg.data_dir().display().to_string(),
                    available,
                    required,
                }
            }
            AppendError::Io(what, source) if disk::is_no_space(&source) => {
                self.kick();
                ChannelError::DiskSpace {
                    channel: self.name.clone(),
                    dir: self.cfg.data_dir().display().to_string(),
                    available: disk::available_bytes(self.cfg.data_dir()).unwrap_or(0),
                    required: self.cfg.minimum_required_space,
                }
                .tap_log(what)
            }
            AppendError::Io(what, source) => self.io(what, source),
        }
    }

    fn poison(&self, log: &mut LogState, reason: String) {
        tracing::error!(channel = %self.name, %reason,
            "fsync failed: durability can no longer be promised; the channel refuses work until restarted");
        log.poisoned = Some(reason);
        self.health.unhealthy.store(1, Ordering::Release);
    }

    /// Makes everything up to `target` durable, sharing one fdatasync among every committer
    /// waiting at the same time (group commit).
    fn sync_to(&self, target: Pos) -> Result<(), ChannelError> {
        let mut log = lock(&self.log);
        loop {
            if let Some(r) = &log.poisoned {
                return Err(self.unhealthy(r));
            }
            if log.durable.0 >= target {
                return Ok(());
            }
            if log.syncing {
                log = self.synced.wait(log).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Become the leader: sync everything written so far, for everyone.
            log.syncing = true;
            let goal = (log.written(), log.next_seq);
            let mut files = std::mem::take(&mut log.unsynced);
            files.push(log.cur.clone());
            drop(log);
            let res = if self.fail_next_sync.swap(false, Ordering::SeqCst) {
                Err(std::io::Error::from_raw_os_error(libc::EIO))
            } else {
                files.iter().try_for_each(|s| s.file.sync_data())
            };
            log = lock(&self.log);
            log.syncing = false;
            match res {
                Ok(()) => {
                    if goal.0 > log.durable.0 {
                        log.durable = goal;
                    }
                    if self.cfg.fsync_per_transaction {
                        self.publish(goal.0, goal.1);
                    }
                }
                Err(e) => {
                    let reason =
                        format!("fdatasync of {} failed: {e}", self.cfg.data_dir().display());
                    self.poison(&mut log, reason);
                }
            }
            self.synced.notify_all();
        }
    }

    /// Lets readers see the log up to `end` (called with the log lock held).
    fn publish(&self, end: Pos, seq: u64) {
        let mut q = lock(&self.queue);
        if end > q.visible {
            q.visible = end;
        }
        if seq > q.visible_seq {
            q.visible_seq = seq;
        }
        self.counter.channel_size.store(q.size(), Ordering::Relaxed);
        drop(q);
        self.changed.notify_all();
    }

    fn kick(&self) {
        lock(&self.bg).kick = true;
        self.bg_cv.notify_all();
    }

    fn maybe_kick(&self, since: u64) {
        if since >= self.cfg.segment_size.min(256 << 20) {
            self.kick();
        }
    }

    fn checkpoint(&self) -> Result<(), ChannelError> {
        let mut led = lock(&self.ledger);
        let (mut ck, write) = {
            let mut log = lock(&self.log);
            if let Some(r) = &log.poisoned {
                return Err(self.unhealthy(r));
            }
            log.since_checkpoint = 0;
            let mut q = lock(&self.queue);
            let ack_pos = q.ack_pos();
            let ck = Checkpoint {
                generation: 0,
                write: log.written(),
                next_seq: log.next_seq,
                ack_lo: q.acks.lo(),
                ack_pos,
                ranges: q.acks.ranges(),
            };
            (ck, log.written())
        };
        if ck.ranges.len() > MAX_RANGES {
            tracing::warn!(channel = %self.name, ranges = ck.ranges.len(),
                "too many out-of-order committed takes to checkpoint now; will retry");
            return Ok(());
        }
        self.sync_to(write)?;
        ck.generation = led.generation + 1;
        if let Err(e) = led.ledger.write(&ck) {
            ChannelCounter::add(&self.counter.checkpoint_write_error, 1);
            let mut log = lock(&self.log);
            self.poison(
                &mut log,
                format!("writing the ledger {}: {e}", led.ledger.path().display()),
            );
            return Err(self.unhealthy("the ledger could not be written"));
        }
        led.generation = ck.generation;
        led.last = Instant::now();
        drop(led);
        // Delete segments everything has moved past.
        let keep_from = ck.ack_pos.seg.min(ck.write.seg);
        let dead: Vec<_> = {
            let mut segs = self.segs.write().unwrap_or_else(|e| e.into_inner());
            let ids: Vec<u64> = segs.range(..keep_from).map(|(id, _)| *id).collect();
            ids.into_iter().filter_map(|id| segs.remove(&id)).collect()
        };
        self.spares.retire(dead);
        Ok(())
    }

    fn maintenance(self: Arc<Self>) {
        let tick = Duration::from_millis(200);
        let mut last_sync = Instant::now();
        loop {
            {
                let mut bg = lock(&self.bg);
                if !bg.shutdown && !bg.kick {
                    bg = self
                        .bg_cv
                        .wait_timeout(bg, tick)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if bg.shutdown {
                    return;
                }
                bg.kick = false;
            }
            if self.health.unhealthy.load(Ordering::Acquire) != 0 {
                continue;
            }
            if !self.cfg.fsync_per_transaction && last_sync.elapsed() >= self.cfg.fsync_interval {
                last_sync = Instant::now();
                let w = lock(&self.log).written();
                if let Err(e) = self.sync_to(w) {
                    tracing::error!(channel = %self.name, error = %e, "periodic sync failed");
                }
            }
            let due = {
                let led = lock(&self.ledger);
                led.last.elapsed() >= self.cfg.checkpoint_interval
            } || lock(&self.log).since_checkpoint >= self.cfg.segment_size.min(256 << 20)
                || self.has_dead_segments();
            if due {
                if let Err(e) = self.checkpoint() {
                    tracing::error!(channel = %self.name, error = %e, "checkpoint failed");
                }
            } else if self.spares.has_waiting() {
                self.spares.tick();
            }
        }
    }

    fn has_dead_segments(&self) -> bool {
        let oldest = match self
            .segs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .next()
        {
            Some(id) => *id,
            None => return false,
        };
        let mut q = lock(&self.queue);
        q.ack_pos().seg > oldest
    }

    fn stop_background(&self, handle: &Mutex<Option<JoinHandle<()>>>) {
        lock(&self.bg).shutdown = true;
        self.bg_cv.notify_all();
        if let Some(h) = lock(handle).take() {
            let _ = h.join();
        }
    }

    fn release(&self, n: usize, bytes: u64) {
        let mut q = lock(&self.queue);
        q.reserved -= n as u64;
        q.bytes = q.bytes.saturating_sub(bytes);
        drop(q);
        self.changed.notify_all();
    }
}

trait TapLog {
    fn tap_log(self, what: &str) -> Self;
}
impl TapLog for ChannelError {
    fn tap_log(self, what: &str) -> Self {
        tracing::warn!(error = %self, "{what}: disk full");
        self
    }
}

impl Channel for FileChannel {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn put_batch(&self, events: &[Event]) -> Result<(), ChannelError> {
        let sh = &self.shared;
        let n = events.len();
        ChannelCounter::add(&sh.counter.put_attempt, n as u64);
        let res = self.put_inner(events);
        match &res {
            Ok(()) => ChannelCounter::add(&sh.counter.put_success, n as u64),
            Err(_) => ChannelCounter::add(&sh.counter.put_error, n as u64),
        }
        res
    }

    fn take_batch(&self, max: usize, wait: Duration) -> Result<TakeBatch, ChannelError> {
        let sh = &self.shared;
        sh.check_usable()?;
        let max = max.min(sh.cfg.transaction_capacity).max(1);
        let deadline = Instant::now() + wait;
        let mut q = lock(&sh.queue);
        loop {
            if q.closed {
                return Err(ChannelError::Closed {
                    channel: sh.name.clone(),
                });
            }
            if q.has_ready() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                ChannelCounter::add(&sh.counter.take_attempt, 1);
                return Ok(TakeBatch::empty());
            }
            q = sh
                .changed
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let mut events = Vec::with_capacity(max.min(1024));
        let mut seqs = Vec::with_capacity(max.min(1024));
        while events.len() < max {
            match q.next_event(&sh.segs) {
                Some((seq, e)) => {
                    seqs.push(seq);
                    events.push(e);
                }
                None => break,
            }
        }
        sh.counter.channel_size.store(q.size(), Ordering::Relaxed);
        drop(q);
        ChannelCounter::add(&sh.counter.take_attempt, events.len().max(1) as u64);
        if events.is_empty() {
            return Ok(TakeBatch::empty());
        }
        Ok(TakeBatch::new(
            events,
            Box::new(FileTake {
                shared: sh.clone(),
                seqs,
            }),
        ))
    }

    fn size(&self) -> u64 {
        lock(&self.shared.queue).size()
    }

    fn capacity(&self) -> u64 {
        self.shared.cfg.capacity
    }

    fn transaction_capacity(&self) -> usize {
        self.shared.cfg.transaction_capacity
    }

    fn counter(&self) -> &Arc<ChannelCounter> {
        &self.shared.counter
    }

    fn close(&self) -> Result<(), ChannelError> {
        let sh = &self.shared;
        if sh.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        sh.stop_background(&self.bg);
        let res = if sh.health.unhealthy.load(Ordering::Acquire) == 0 {
            sh.checkpoint()
        } else {
            Ok(())
        };
        lock(&sh.queue).closed = true;
        sh.changed.notify_all();
        sh.health.open.store(0, Ordering::Relaxed);
        sh.counter.stop();
        lock(&sh.locks).clear();
        res
    }
}

impl FileChannel {
    fn put_inner(&self, events: &[Event]) -> Result<(), ChannelError> {
        let sh = &self.shared;
        sh.check_usable()?;
        let n = events.len();
        if n == 0 {
            return Ok(());
        }
        if n > sh.cfg.transaction_capacity {
            return Err(ChannelError::TransactionTooLarge {
                channel: sh.name.clone(),
                batch: n,
                capacity: sh.cfg.transaction_capacity,
            });
        }
        let max_event = (sh.cfg.segment_size - SEGMENT_HEADER_LEN) as usize
            - RECORD_HEADER_LEN
            - EVENT_FRAME_LEN
            - 8;
        let mut bytes = 0u64;
        for e in events {
            if e.encoded_len() > max_event {
                return Err(ChannelError::EventTooLarge {
                    channel: sh.name.clone(),
                    size: e.encoded_len(),
                    max: max_event,
                });
            }
            bytes += e.encoded_len() as u64;
        }
        let available = disk::available_bytes(sh.cfg.data_dir())
            .map_err(|e| sh.io("checking free space", e))?;
        if available < sh.cfg.minimum_required_space {
            sh.kick();
            return Err(ChannelError::DiskSpace {
                channel: sh.name.clone(),
                dir: sh.cfg.data_dir().display().to_string(),
                available,
                required: sh.cfg.minimum_required_space,
            });
        }
        self.reserve(n, bytes)?;
        let res = self.append_and_commit(events);
        sh.release(n, if res.is_ok() { 0 } else { bytes });
        if res.is_ok() {
            sh.counter
                .channel_size
                .store(lock(&sh.queue).size(), Ordering::Relaxed);
        }
        res
    }

    /// Waits up to keep-alive for room for `n` events / `bytes`, then reserves it.
    fn reserve(&self, n: usize, bytes: u64) -> Result<(), ChannelError> {
        let sh = &self.shared;
        let deadline = Instant::now() + sh.cfg.keep_alive;
        let mut q = lock(&sh.queue);
        if let Some(cap) = sh.cfg.byte_capacity {
            if bytes > cap {
                return Err(ChannelError::ByteCapacity {
                    channel: sh.name.clone(),
                    used: q.bytes,
                    capacity: cap,
                    wanted: bytes,
                });
            }
        }
        loop {
            if q.closed {
                return Err(ChannelError::Closed {
                    channel: sh.name.clone(),
                });
            }
            let used = q.size() + q.reserved;
            let slots_ok = used + n as u64 <= sh.cfg.capacity;
            let bytes_ok = sh.cfg.byte_capacity.is_none_or(|c| q.bytes + bytes <= c);
            if slots_ok && bytes_ok {
                q.reserved += n as u64;
                q.bytes += bytes;
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                if !slots_ok {
                    return Err(ChannelError::Full {
                        channel: sh.name.clone(),
                        size: used,
                        capacity: sh.cfg.capacity,
                        wanted: n,
                        waited: sh.cfg.keep_alive,
                    });
                }
                return Err(ChannelError::ByteCapacity {
                    channel: sh.name.clone(),
                    used: q.bytes,
                    capacity: sh.cfg.byte_capacity.unwrap_or(0),
                    wanted: bytes,
                });
            }
            q = sh
                .changed
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn append_and_commit(&self, events: &[Event]) -> Result<(), ChannelError> {
        let sh = &self.shared;
        let (end, since) = PUT_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.clear();
            let crc = serialize_put(&mut buf, events);
            let payload_len = events
                .iter()
                .map(|e| EVENT_FRAME_LEN + e.encoded_len())
                .sum::<usize>();
            let mut log = lock(&sh.log);
            if let Some(r) = &log.poisoned {
                return Err(sh.unhealthy(r));
            }
            let end = log
                .append_put(&sh.segs, events, &mut buf, payload_len, crc)
                .map_err(|e| sh.append_error(e))?;
            if !sh.cfg.fsync_per_transaction {
                let seq = log.next_seq;
                sh.publish(end, seq);
            }
            if buf.capacity() > (8 << 20) {
                *buf = Vec::new();
            }
            Ok((end, log.since_checkpoint))
        })?;
        if sh.cfg.fsync_per_transaction {
            sh.sync_to(end)?;
        }
        sh.maybe_kick(since);
        Ok(())
    }
}

/// The completion of a file-channel take: writes an ACK record on commit.
struct FileTake {
    shared: Arc<Shared>,
    seqs: Vec<u64>,
}

fn ranges_of(seqs: &mut [u64]) -> Vec<(u64, u64)> {
    seqs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &s in seqs.iter() {
        match out.last_mut() {
            Some((_, e)) if *e == s => *e += 1,
            _ => out.push((s, s + 1)),
        }
    }
    out
}

impl TakeCompletion for FileTake {
    fn commit(self: Box<Self>, events: &[Event]) -> Result<(), ChannelError> {
        let sh = self.shared.clone();
        let n = events.len() as u64;
        let fail = |this: Box<Self>, e: ChannelError| {
            ChannelCounter::add(&sh.counter.take_error, n);
            this.rollback(events.to_vec());
            Err(e)
        };
        if let Err(e) = sh.check_usable() {
            return fail(self, e);
        }
        let mut sorted = self.seqs.clone();
        let ranges = ranges_of(&mut sorted);
        let (end, since) = {
            let mut log = lock(&sh.log);
            let end = match log.append_ack(&sh.segs, &ranges) {
                Ok(end) => end,
                Err(e) => {
                    drop(log);
                    let e = sh.append_error(e);
                    return fail(self, e);
                }
            };
            let mut q = lock(&sh.queue);
            for (a, b) in &ranges {
                q.ack(*a, *b);
            }
            let freed: u64 = events.iter().map(|e| e.encoded_len() as u64).sum();
            q.bytes = q.bytes.saturating_sub(freed);
            sh.counter.channel_size.store(q.size(), Ordering::Relaxed);
            drop(q);
            sh.changed.notify_all();
            (end, log.since_checkpoint)
        };
        if sh.cfg.fsync_per_transaction {
            if let Err(e) = sh.sync_to(end) {
                ChannelCounter::add(&sh.counter.take_error, n);
                return Err(e);
            }
        }
        ChannelCounter::add(&sh.counter.take_success, n);
        sh.maybe_kick(since);
        if sh.has_dead_segments() {
            sh.kick();
        }
        Ok(())
    }

    fn seqs(&self) -> Option<&[u64]> {
        Some(&self.seqs)
    }

    fn rollback(self: Box<Self>, events: Vec<Event>) {
        let sh = &self.shared;
        let mut q = lock(&sh.queue);
        for (seq, e) in self.seqs.iter().copied().zip(events).rev() {
            q.requeued.push_front((seq, e));
        }
        sh.counter.channel_size.store(q.size(), Ordering::Relaxed);
        drop(q);
        sh.changed.notify_all();
    }
}
