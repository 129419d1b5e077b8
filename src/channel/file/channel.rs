//! `FileChannel`: the [`Channel`] implementation tying writer, reader, group commit, ledger
//! checkpoints and the background maintenance thread together.
//!
//! Lock order (never taken the other way round): `log` → `queue`; `segs` and `ledger` are leaves.
//!
//! # Panics while a lock is held
//!
//! A thread that panics while holding `log`, `queue`, `ledger` or `segs` may leave the state
//! that lock guards half-updated (a write position advanced without its sequence number, a
//! reader moved past events it never handed out). Serving from such state risks handing out or
//! acknowledging the wrong events, so a poisoned lock is treated like a failed fsync: the channel
//! records why, turns Unhealthy, and every later call fails with [`ChannelError::Unhealthy`]
//! telling the operator to restart; recovery then rebuilds the state from what is on disk. A
//! panic of the maintenance thread does the same (otherwise checkpoints and, without
//! `fsyncPerTransaction`, the periodic sync would silently stop). The remaining locks guard
//! state a panic cannot leave inconsistent (two wake-up flags, the directory locks, the
//! maintenance thread's handle) and are used through [`lock_plain`].

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::channel::{Channel, ChannelError, TakeBatch, TakeCompletion};
use crate::event::Event;
use crate::metrics::{ChannelCounter, ChannelHealth};

use super::config::FileChannelConfig;
use super::disk::{self, DirLock};
use super::fault::Faults;
use super::format::{Pos, EVENT_FRAME_LEN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::ledger::{Checkpoint, Ledger, MAX_RANGES};
use super::reader::{ReadState, DROP_STEP};
use super::recovery::recover;
use super::segment::{drop_event_pages, MapRange};
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
    /// Why the channel is unhealthy (set once: a failed fsync or ledger write, a poisoned lock,
    /// a panicked maintenance thread). Mirrored by `health.unhealthy`.
    fault: OnceLock<String>,
    /// Test hook: make the next fdatasync fail as if the disk returned EIO.
    fail_next_sync: AtomicBool,
    /// Puts parked in [`FileChannel::reserve`] waiting for room (changed under `queue`).
    puts_waiting: AtomicUsize,
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

/// Takes a lock whose state a panic cannot leave half-updated (see the module docs), so a
/// poisoned one is simply used.
fn lock_plain<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poison: only for `bg` (two flags), `locks` (cleared at close) and the thread handle.
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
        Self::open_inner(name.into(), cfg, None)
    }

    /// Test hook: opens like [`FileChannel::open`], with file-operation failures injected into
    /// recovery (see [`Faults`]).
    #[doc(hidden)]
    pub fn open_with_faults(
        name: impl Into<String>,
        cfg: FileChannelConfig,
        faults: &Faults,
    ) -> Result<FileChannel, ChannelError> {
        Self::open_inner(name.into(), cfg, Some(faults))
    }

    fn open_inner(
        name: String,
        cfg: FileChannelConfig,
        faults: Option<&Faults>,
    ) -> Result<FileChannel, ChannelError> {
        let r = recover(&cfg, &name, faults)?;
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
            fault: OnceLock::new(),
            fail_next_sync: AtomicBool::new(false),
            puts_waiting: AtomicUsize::new(0),
            cfg,
        });
        shared.health.open.store(1, Ordering::Relaxed);
        shared.counter.start();
        // Record the recovered state at once, so the next restart starts from here.
        shared.checkpoint()?;
        let bg_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("filechan-{}", shared.name))
            .spawn(move || {
                let sh = bg_shared.clone();
                let run = std::panic::AssertUnwindSafe(move || bg_shared.maintenance());
                if std::panic::catch_unwind(run).is_err() {
                    sh.poison(
                        "the maintenance thread panicked, so checkpoints (and periodic syncs) \
                         stopped; restart to recover from what is on disk"
                            .into(),
                    );
                }
            })
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
        match self.shared.segs.read() {
            Ok(m) => m.len(),
            // Poison: the channel turns Unhealthy; a count is still a count.
            Err(e) => {
                self.shared.lock_poisoned("segment map");
                e.into_inner().len()
            }
        }
    }

    /// Log position up to which everything is durable (`(segment, offset)`; for tests/tools).
    #[doc(hidden)]
    pub fn durable_position(&self) -> (u64, u64) {
        // Poison: a read-out for tests and tools; the channel is Unhealthy by then anyway.
        let p = self
            .shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .durable
            .0;
        (p.seg, p.off)
    }

    /// How many puts are parked waiting for room (up to `keep-alive`). The count rises under
    /// the queue lock just before a put waits, so once a caller sees it, any take that commits
    /// afterwards wakes that put.
    pub fn puts_waiting(&self) -> usize {
        self.shared.puts_waiting.load(Ordering::SeqCst)
    }

    /// Test hook: the next fdatasync fails with EIO.
    #[doc(hidden)]
    pub fn inject_sync_failure(&self) {
        self.shared.fail_next_sync.store(true, Ordering::SeqCst);
    }

    /// Test hook: a thread takes the named lock (`"log"`, `"queue"`, `"ledger"` or
    /// `"segments"`) and panics while holding it, as a bug inside the channel would.
    #[doc(hidden)]
    pub fn inject_panic_holding(&self, which: &str) {
        let sh = self.shared.clone();
        let which = which.to_string();
        let t = std::thread::spawn(move || match which.as_str() {
            "log" => {
                let _g = sh.log.lock();
                panic!("injected panic while holding the log lock");
            }
            "queue" => {
                let _g = sh.queue.lock();
                panic!("injected panic while holding the queue lock");
            }
            "ledger" => {
                let _g = sh.ledger.lock();
                panic!("injected panic while holding the ledger lock");
            }
            "segments" => {
                let _g = sh.segs.write();
                panic!("injected panic while holding the segment map lock");
            }
            other => panic!("no lock named {other}"),
        });
        assert!(t.join().is_err(), "the injected panic happened");
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
            // Poison: a crash simulation for tests; nothing is kept running afterwards.
            let log = sh.log.lock().unwrap_or_else(|e| e.into_inner());
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
        lock_plain(&sh.locks).clear();
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

    /// The error every call returns once the channel is unhealthy.
    fn refusal(&self) -> ChannelError {
        ChannelError::Unhealthy {
            channel: self.name.clone(),
            reason: self
                .fault
                .get()
                .cloned()
                .unwrap_or_else(|| "an earlier failure".into()),
        }
    }

    /// `Err(refusal)` once the channel is unhealthy.
    fn check_fault(&self) -> Result<(), ChannelError> {
        match self.fault.get() {
            Some(_) => Err(self.refusal()),
            None => Ok(()),
        }
    }

    fn check_usable(&self) -> Result<(), ChannelError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(ChannelError::Closed {
                channel: self.name.clone(),
            });
        }
        // A panic under any state lock refuses every call at once, not only those that happen
        // to take that lock (four atomic loads).
        for (poisoned, what) in [
            (self.log.is_poisoned(), "log"),
            (self.queue.is_poisoned(), "queue"),
            (self.ledger.is_poisoned(), "ledger"),
            (self.segs.is_poisoned(), "segment map"),
        ] {
            if poisoned {
                return Err(self.lock_poisoned(what));
            }
        }
        self.check_fault()
    }

    /// Takes one of the state locks (`log`, `queue`, `ledger`); a poisoned one turns the
    /// channel Unhealthy (see the module docs).
    fn lock<'a, T>(&self, m: &'a Mutex<T>, what: &str) -> Result<MutexGuard<'a, T>, ChannelError> {
        m.lock().map_err(|_| self.lock_poisoned(what))
    }

    /// Waits on `cv` with a state lock; a lock poisoned meanwhile turns the channel Unhealthy.
    fn wait_timeout<'a, T>(
        &self,
        cv: &Condvar,
        g: MutexGuard<'a, T>,
        dur: Duration,
        what: &str,
    ) -> Result<MutexGuard<'a, T>, ChannelError> {
        cv.wait_timeout(g, dur)
            .map(|(g, _)| g)
            .map_err(|_| self.lock_poisoned(what))
    }

    /// Turns the channel Unhealthy because the `what` lock was poisoned; returns the refusal.
    fn lock_poisoned(&self, what: &str) -> ChannelError {
        self.poison(format!(
            "a thread panicked while holding the channel's {what} lock, so its in-memory state \
             may be half-updated; restart to recover from what is on disk"
        ));
        self.refusal()
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
            AppendError::Poisoned => self.lock_poisoned("segment map"),
        }
    }

    /// Turns the channel Unhealthy for good (until a restart); the first reason is kept.
    fn poison(&self, reason: String) {
        if self.fault.set(reason.clone()).is_ok() {
            tracing::error!(channel = %self.name, %reason,
                "the channel can no longer promise correct, durable data and refuses work until restarted");
        }
        self.health.unhealthy.store(1, Ordering::Release);
    }

    /// Makes everything up to `target` durable, sharing one fdatasync among every committer
    /// waiting at the same time (group commit).
    fn sync_to(&self, target: Pos) -> Result<(), ChannelError> {
        let mut log = self.lock(&self.log, "log")?;
        loop {
            self.check_fault()?;
            if log.durable.0 >= target {
                return Ok(());
            }
            if log.syncing {
                log = self
                    .synced
                    .wait(log)
                    .map_err(|_| self.lock_poisoned("log"))?;
                continue;
            }
            // Become the leader: sync everything written so far, for everyone.
            let _wake = WakeOnUnwind(self);
            log.syncing = true;
            let goal = (log.written(), log.next_seq);
            let mut files = std::mem::take(&mut log.unsynced);
            files.push(log.cur.clone());
            drop(log);
            let res = if self.fail_next_sync.swap(false, Ordering::SeqCst) {
                Err(std::io::Error::from(rustix::io::Errno::IO))
            } else {
                files.iter().try_for_each(|s| s.file.sync_data())
            };
            log = match self.lock(&self.log, "log") {
                Ok(l) => l,
                Err(e) => {
                    self.synced.notify_all();
                    return Err(e);
                }
            };
            log.syncing = false;
            match res {
                Ok(()) => {
                    if goal.0 > log.durable.0 {
                        log.durable = goal;
                    }
                    if self.cfg.fsync_per_transaction {
                        // On failure the channel is unhealthy: the loop returns the refusal.
                        let _ = self.publish(goal.0, goal.1);
                    }
                }
                Err(e) => {
                    let reason =
                        format!("fdatasync of {} failed: {e}", self.cfg.data_dir().display());
                    self.poison(reason);
                }
            }
            self.synced.notify_all();
        }
    }

    /// Lets readers see the log up to `end` (called with the log lock held).
    fn publish(&self, end: Pos, seq: u64) -> Result<(), ChannelError> {
        let mut q = self.lock(&self.queue, "queue")?;
        if end > q.visible {
            q.visible = end;
        }
        if seq > q.visible_seq {
            q.visible_seq = seq;
        }
        self.counter.channel_size.store(q.size(), Ordering::Relaxed);
        drop(q);
        self.changed.notify_all();
        Ok(())
    }

    fn kick(&self) {
        lock_plain(&self.bg).kick = true;
        self.bg_cv.notify_all();
    }

    fn maybe_kick(&self, since: u64) {
        if since >= self.cfg.segment_size.min(256 << 20) {
            self.kick();
        }
    }

    fn checkpoint(&self) -> Result<(), ChannelError> {
        let mut led = self.lock(&self.ledger, "ledger")?;
        let (mut ck, write) = {
            let mut log = self.lock(&self.log, "log")?;
            self.check_fault()?;
            log.since_checkpoint = 0;
            let mut q = self.lock(&self.queue, "queue")?;
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
            self.poison(format!(
                "writing the ledger {}: {e}",
                led.ledger.path().display()
            ));
            return Err(self.refusal());
        }
        led.generation = ck.generation;
        led.last = Instant::now();
        drop(led);
        // Delete segments everything has moved past.
        let keep_from = ck.ack_pos.seg.min(ck.write.seg);
        let dead: Vec<_> = {
            let mut segs = self
                .segs
                .write()
                .map_err(|_| self.lock_poisoned("segment map"))?;
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
                let mut bg = lock_plain(&self.bg);
                if !bg.shutdown && !bg.kick {
                    // Poison: `bg` is two flags (see `lock_plain`).
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
            // A lock error has already made the channel unhealthy (and said so).
            let _ = self.maintenance_step(&mut last_sync);
        }
    }

    fn maintenance_step(&self, last_sync: &mut Instant) -> Result<(), ChannelError> {
        if !self.cfg.fsync_per_transaction && last_sync.elapsed() >= self.cfg.fsync_interval {
            *last_sync = Instant::now();
            let w = self.lock(&self.log, "log")?.written();
            if let Err(e) = self.sync_to(w) {
                tracing::error!(channel = %self.name, error = %e, "periodic sync failed");
            }
        }
        let due = {
            let led = self.lock(&self.ledger, "ledger")?;
            led.last.elapsed() >= self.cfg.checkpoint_interval
        } || self.lock(&self.log, "log")?.since_checkpoint
            >= self.cfg.segment_size.min(256 << 20)
            || self.has_dead_segments();
        if due {
            if let Err(e) = self.checkpoint() {
                tracing::error!(channel = %self.name, error = %e, "checkpoint failed");
            }
        } else if self.spares.has_waiting() {
            self.spares.tick();
        }
        Ok(())
    }

    /// True when a checkpoint could release segments. False (and the channel unhealthy) when a
    /// lock is poisoned.
    fn has_dead_segments(&self) -> bool {
        let oldest = match self.segs.read() {
            Ok(m) => match m.keys().next() {
                Some(id) => *id,
                None => return false,
            },
            Err(_) => {
                self.lock_poisoned("segment map");
                return false;
            }
        };
        match self.lock(&self.queue, "queue") {
            Ok(mut q) => q.ack_pos().seg > oldest,
            Err(_) => false,
        }
    }

    fn stop_background(&self, handle: &Mutex<Option<JoinHandle<()>>>) {
        lock_plain(&self.bg).shutdown = true;
        self.bg_cv.notify_all();
        if let Some(h) = lock_plain(handle).take() {
            let _ = h.join();
        }
    }

    /// Returns a put's reservation (all of it; the bytes too when the put failed).
    fn release(&self, n: usize, bytes: u64) {
        // A poisoned queue has made the channel unhealthy: nothing left to release into.
        if let Ok(mut q) = self.lock(&self.queue, "queue") {
            q.reserved -= n as u64;
            q.bytes = q.bytes.saturating_sub(bytes);
        }
        self.changed.notify_all();
    }
}

/// Held by a group-commit leader: if it unwinds, the followers waiting for its sync would wait
/// forever, so the channel turns Unhealthy and they are woken to see that.
struct WakeOnUnwind<'a>(&'a Shared);

impl Drop for WakeOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poison(
                "a thread panicked while leading a group commit; restart to recover from what \
                 is on disk"
                    .into(),
            );
            self.0.synced.notify_all();
        }
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
        let mut q = sh.lock(&sh.queue, "queue")?;
        loop {
            if q.closed {
                return Err(ChannelError::Closed {
                    channel: sh.name.clone(),
                });
            }
            sh.check_fault()?;
            if q.has_ready() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                ChannelCounter::add(&sh.counter.take_attempt, 1);
                return Ok(TakeBatch::empty());
            }
            q = sh.wait_timeout(&sh.changed, q, deadline - now, "queue")?;
        }
        let mut events: Vec<Event> = Vec::with_capacity(max.min(1024));
        let mut seqs = Vec::with_capacity(max.min(1024));
        // The mappings holding the taken events (for `release`), and the pages behind the scan
        // dropped every `DROP_STEP` bytes so a large take is not resident all at once (see the
        // module docs, "Read pages leave the resident set").
        let mut maps: Vec<MapRange> = Vec::new();
        let (mut scanned, mut dropped_to) = (0u64, 0usize);
        while events.len() < max {
            match q.next_event(&sh.segs) {
                Some((seq, e)) => {
                    let at = e.encoded().as_ptr() as usize;
                    if !maps.iter().any(|m| m.contains(at)) {
                        if let Some(m) = q.map_of(&sh.segs, at) {
                            maps.push(m);
                        }
                    }
                    scanned += e.encoded_len() as u64;
                    seqs.push(seq);
                    events.push(e);
                    if scanned >= DROP_STEP {
                        drop_event_pages(&maps, &events[dropped_to..]);
                        dropped_to = events.len();
                        scanned = 0;
                    }
                }
                None => break,
            }
        }
        sh.counter.channel_size.store(q.size(), Ordering::Relaxed);
        drop(q);
        if sh.segs.is_poisoned() {
            // The reader may have stopped short; what it took stays on disk for the restart.
            return Err(sh.lock_poisoned("segment map"));
        }
        ChannelCounter::add(&sh.counter.take_attempt, events.len().max(1) as u64);
        if events.is_empty() {
            return Ok(TakeBatch::empty());
        }
        Ok(TakeBatch::new(
            events,
            Box::new(FileTake {
                shared: sh.clone(),
                seqs,
                maps,
            }),
        ))
    }

    fn size(&self) -> u64 {
        match self.shared.lock(&self.shared.queue, "queue") {
            Ok(q) => q.size(),
            // Unhealthy now: report the last size published.
            Err(_) => self.shared.counter.channel_size.load(Ordering::Relaxed),
        }
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
        // Poison: only sets the flag that wakes and stops waiters; nothing is read.
        sh.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        sh.changed.notify_all();
        sh.health.open.store(0, Ordering::Relaxed);
        sh.counter.stop();
        lock_plain(&sh.locks).clear();
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
            // The put is committed even if the queue lock is poisoned now (the channel then
            // refuses the next call).
            if let Ok(q) = sh.lock(&sh.queue, "queue") {
                sh.counter.channel_size.store(q.size(), Ordering::Relaxed);
            }
        }
        res
    }

    /// Waits up to keep-alive for room for `n` events / `bytes`, then reserves it.
    fn reserve(&self, n: usize, bytes: u64) -> Result<(), ChannelError> {
        let sh = &self.shared;
        let deadline = Instant::now() + sh.cfg.keep_alive;
        let mut q = sh.lock(&sh.queue, "queue")?;
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
            sh.puts_waiting.fetch_add(1, Ordering::SeqCst);
            let waited = sh.wait_timeout(&sh.changed, q, deadline - now, "queue");
            sh.puts_waiting.fetch_sub(1, Ordering::SeqCst);
            q = waited?;
            sh.check_fault()?;
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
            let mut log = sh.lock(&sh.log, "log")?;
            sh.check_fault()?;
            let end = log
                .append_put(&sh.segs, events, &mut buf, payload_len, crc)
                .map_err(|e| sh.append_error(e))?;
            if !sh.cfg.fsync_per_transaction {
                let seq = log.next_seq;
                sh.publish(end, seq)?;
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
    /// The segment mappings holding at least one taken event (so they stay mapped while the
    /// take lives): the only memory `release` may `madvise`.
    maps: Vec<MapRange>,
}

fn ranges_of_sorted(seqs: &[u64]) -> Vec<(u64, u64)> {
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
        // Taken seqs are normally ascending already; sort a copy only when they are not.
        let ranges = if self.seqs.is_sorted() {
            ranges_of_sorted(&self.seqs)
        } else {
            let mut sorted = self.seqs.clone();
            sorted.sort_unstable();
            ranges_of_sorted(&sorted)
        };
        let (end, since) = {
            let mut log = match sh.lock(&sh.log, "log") {
                Ok(log) => log,
                Err(e) => return fail(self, e),
            };
            let end = match log.append_ack(&sh.segs, &ranges) {
                Ok(end) => end,
                Err(e) => {
                    drop(log);
                    let e = sh.append_error(e);
                    return fail(self, e);
                }
            };
            let mut q = match sh.lock(&sh.queue, "queue") {
                Ok(q) => q,
                Err(e) => {
                    // Unhealthy now; whether this acknowledgement survives is up to the disk,
                    // and a restart replays whatever it holds.
                    ChannelCounter::add(&sh.counter.take_error, n);
                    return Err(e);
                }
            };
            for (a, b) in &ranges {
                q.ack(*a, *b);
            }
            q.drop_acked_pages();
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

    fn release(&self, events: &[Event]) {
        drop_event_pages(&self.maps, events);
    }

    fn rollback(self: Box<Self>, events: Vec<Event>) {
        let sh = &self.shared;
        // With the queue poisoned the channel is unhealthy: the events stay unacknowledged on
        // disk and come back after the restart.
        let Ok(mut q) = sh.lock(&sh.queue, "queue") else {
            return;
        };
        for (seq, e) in self.seqs.iter().copied().zip(events).rev() {
            q.requeued.push_front((seq, e));
        }
        sh.counter.channel_size.store(q.size(), Ordering::Relaxed);
        drop(q);
        sh.changed.notify_all();
    }
}
