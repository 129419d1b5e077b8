//! Opening a channel: take the directory locks, trust the ledger, and validate only the log
//! written after its checkpoint (at most about one segment), truncating a torn tail.
//!
//! # What recovery may delete, and what stops it
//!
//! Recovery removes files in exactly three cases, each decided from what the files provably
//! hold, never from an operation failing:
//!
//! 1. segments wholly before the checkpoint's positions (every event in them was taken and the
//!    checkpoint saying so is durable: invariant 5 of the [module essay](super));
//! 2. segments after the recovered end of the log, which hold only the records of a put
//!    transaction that never completed (its records are contiguous, invariant 1);
//! 3. the newest segment, when it lies beyond everything the checkpoint refers to and **every
//!    byte of it is zero**: a segment creation cut short by a crash.
//!
//! Case 3 follows from the writer's creation sequence. [`Segment::create`] does
//! `open(O_CREAT|O_EXCL)` → `fallocate` (or a sparse `set_len`) → `pwrite` of the 64-byte
//! header → `fsync` of the file → `fsync` of the directory, and nothing is appended before it
//! returns. A crash inside it therefore leaves an empty file, or the preallocated length reading
//! as zeros, or a complete segment (the header lies in one sector, and nothing else was written).
//! [`Segment::from_spare`] writes and syncs the header into an already-zeroed spare *before*
//! renaming it to `log-*`, so it never leaves a header-less `log-*` file at all. A file whose
//! header is zero but which holds data elsewhere was not produced by either, and is refused.
//!
//! Every other failure to open a segment — `open` refused (EMFILE, EACCES, EPERM on an immutable
//! file), a read error on the header, `mmap` failing with ENOMEM, a bad or foreign header, a
//! blank segment the checkpoint still refers to — stops recovery with
//! [`ChannelError::Io`] (the operation, the file and the OS error) or [`ChannelError::Corrupt`]
//! (the file and what is wrong), and leaves every byte on disk: the operator fixes the cause and
//! restarts. Tests inject those failures through [`Faults`].

use std::collections::BTreeMap;
use std::sync::Arc;

use super::acks::AckSet;
use super::config::FileChannelConfig;
use super::disk::DirLock;
use super::fault::Faults;
use super::format::{
    ack_ranges, record_span, Pos, Probe, RecordHeader, FLAG_END_OF_TXN, KIND_ACK, RECORD_ALIGN,
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use super::ledger::{Checkpoint, Ledger};
use super::reader::find_next_valid;
use super::segment::{list_segments, segment_path, sync_dir, Segment, SegmentError};
use crate::channel::ChannelError;

/// What open found and rebuilt.
pub struct Recovered {
    /// Locks on the checkpoint and data directories, held for the channel's life.
    pub locks: Vec<DirLock>,
    /// The mapped ledger.
    pub ledger: Ledger,
    /// Generation of the checkpoint recovery started from (0 without one).
    pub generation: u64,
    /// Open segments by id.
    pub segs: BTreeMap<u64, Arc<Segment>>,
    /// Segment appends continue in.
    pub cur: Arc<Segment>,
    /// End of the recovered log in `cur`.
    pub off: u64,
    /// Seq the next put gets.
    pub next_seq: u64,
    /// Committed takes.
    pub acks: AckSet,
    /// Where the reader starts.
    pub ack_pos: Pos,
    /// Log bytes between `ack_pos` and the end (byte-capacity estimate).
    pub held_bytes: u64,
}

fn io_err(name: &str, what: String, source: std::io::Error) -> ChannelError {
    ChannelError::Io {
        channel: name.to_string(),
        what,
        source,
    }
}

fn corrupt(name: &str, file: &std::path::Path, offset: u64, reason: String) -> ChannelError {
    ChannelError::Corrupt {
        channel: name.to_string(),
        file: file.display().to_string(),
        offset,
        reason,
    }
}

/// Why recovery could not open a segment, as a channel error naming the file and the cause.
/// Nothing was removed: the operator fixes the cause (file limits, permissions, memory, the
/// disk) and restarts, or moves a damaged file aside deliberately.
fn open_failed(name: &str, e: SegmentError) -> ChannelError {
    let file = e.path().to_path_buf();
    match e {
        SegmentError::Io { op, path, source } => io_err(
            name,
            format!(
                "recovery stopped, nothing was removed: {op} segment {} failed \
                 (fix the cause and restart)",
                path.display()
            ),
            source,
        ),
        other => corrupt(
            name,
            &file,
            0,
            format!("recovery stopped, nothing was removed: {other}"),
        ),
    }
}

/// Opens (or creates) the channel's directories and rebuilds its state. `faults` injects
/// file-operation failures (tests only; `None` in production).
pub fn recover(
    cfg: &FileChannelConfig,
    name: &str,
    faults: Option<&Faults>,
) -> Result<Recovered, ChannelError> {
    let data_dir = cfg.data_dir().to_path_buf();
    let mut locks = Vec::new();
    for dir in [&cfg.checkpoint_dir, &data_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| io_err(name, format!("creating directory {}", dir.display()), e))?;
        let lock = DirLock::acquire(dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                io_err(
                    name,
                    format!(
                        "directory {} is in use by another file channel (lock {} is held); \
                         give each file channel its own checkpointDir and dataDirs",
                        dir.display(),
                        dir.join(super::disk::LOCK_FILE).display()
                    ),
                    e,
                )
            } else {
                io_err(name, format!("locking {}", dir.display()), e)
            }
        })?;
        locks.push(lock);
    }
    let (ledger, state) = Ledger::open(&cfg.checkpoint_dir).map_err(|e| {
        io_err(
            name,
            format!("opening the ledger in {}", cfg.checkpoint_dir.display()),
            e,
        )
    })?;
    for p in &state.problems {
        tracing::warn!(channel = name, ledger = %ledger.path().display(), "ledger {p}");
    }
    let ids = list_segments(&data_dir)
        .map_err(|e| io_err(name, format!("listing {}", data_dir.display()), e))?;

    let mut ck: Option<Checkpoint> = state.newest.map(|(_, c)| c);
    if ck.is_none() && !ids.is_empty() {
        tracing::warn!(
            channel = name,
            ledger = %ledger.path().display(),
            segments = ids.len(),
            "no valid checkpoint in the ledger: replaying every segment (this reads the whole backlog once)"
        );
    }
    if ids.is_empty() {
        return start_empty(cfg, name, locks, ledger, ck);
    }

    // Where the log we need starts.
    let start_id = match &ck {
        Some(c) => c.ack_pos.seg.min(c.write.seg),
        None => ids[0],
    };
    let last_id = *ids.last().unwrap_or(&start_id);
    let mut segs = BTreeMap::new();
    for &id in &ids {
        let path = segment_path(&data_dir, id);
        if id < start_id {
            tracing::info!(channel = name, file = %path.display(), "removing a fully consumed segment");
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(channel = name, file = %path.display(), error = %e, "could not remove");
            }
            continue;
        }
        match Segment::open(&path, true, faults) {
            Ok(s) if s.header.id == id => {
                segs.insert(id, Arc::new(s));
            }
            Ok(s) => {
                return Err(corrupt(
                    name,
                    &path,
                    16,
                    format!("header names segment {}", s.header.id),
                ));
            }
            // Only a file that provably holds nothing (every byte zero: see the module docs for
            // what a cut-short creation leaves), and only the newest one, beyond everything the
            // checkpoint refers to. Any other failure says nothing about the contents: stop.
            Err(SegmentError::Unwritten { len, .. })
                if id == last_id && ck.as_ref().is_none_or(|c| id > c.write.seg) =>
            {
                tracing::warn!(channel = name, file = %path.display(), len,
                    "removing a segment whose creation was cut short (no header, every byte zero)");
                std::fs::remove_file(&path)
                    .map_err(|e| io_err(name, format!("removing {}", path.display()), e))?;
            }
            Err(e) => return Err(open_failed(name, e)),
        }
    }
    let _ = sync_dir(&data_dir);
    if segs.is_empty() {
        // The one segment there was had never been written.
        return start_empty(cfg, name, locks, ledger, ck);
    }
    for id in start_id..=segs.keys().next_back().copied().unwrap_or(start_id) {
        if !segs.contains_key(&id) {
            return Err(corrupt(
                name,
                &segment_path(&data_dir, id),
                0,
                "segment is missing (the log must be contiguous from the ledger's positions)"
                    .into(),
            ));
        }
    }

    let ck = ck.take().unwrap_or_else(|| {
        let first = &segs[&start_id];
        let p = Pos::new(start_id, SEGMENT_HEADER_LEN);
        Checkpoint {
            generation: 0,
            write: p,
            next_seq: first.header.first_seq,
            ack_lo: first.header.first_seq,
            ack_pos: p,
            ranges: Vec::new(),
        }
    });

    // Replay what lies after the checkpoint.
    let mut expected = ck.next_seq;
    let mut acks = AckSet::new(ck.ack_lo, &ck.ranges);
    let mut txn: Option<(Pos, u64)> = None;
    let mut end = ck.write;
    let replay_ids: Vec<u64> = segs.range(ck.write.seg..).map(|(id, _)| *id).collect();
    for (i, &id) in replay_ids.iter().enumerate() {
        let seg = segs[&id].clone();
        let is_last = i + 1 == replay_ids.len();
        let mut off = if id == ck.write.seg {
            ck.write.off
        } else {
            SEGMENT_HEADER_LEN
        };
        let limit = seg.len();
        loop {
            let probe = match RecordHeader::probe(&seg.data, off as usize, limit as usize) {
                Probe::Valid(h) if h.kind != KIND_ACK && h.seq < expected => {
                    Probe::Invalid("stale record (sequence already used)")
                }
                p => p,
            };
            match probe {
                Probe::Empty => break,
                Probe::Valid(h) if h.kind == KIND_ACK => {
                    let p = off as usize + RECORD_HEADER_LEN;
                    for (a, b) in ack_ranges(&seg.data[p..p + h.payload_len as usize], h.count) {
                        acks.insert(a, b);
                    }
                    off += record_span(h.payload_len as usize);
                }
                Probe::Valid(h) => {
                    if h.seq > expected {
                        tracing::error!(channel = name, file = %seg.path.display(), offset = off,
                            lost_from = expected, lost_to = h.seq,
                            "{} events were lost to corruption", h.seq - expected);
                        acks.insert(expected, h.seq);
                        txn = None;
                    }
                    if h.flags & FLAG_END_OF_TXN != 0 {
                        txn = None;
                    } else if txn.is_none() {
                        txn = Some((Pos::new(id, off), h.seq));
                    }
                    expected = h.seq + h.count as u64;
                    off += record_span(h.payload_len as usize);
                }
                Probe::Invalid(reason) => {
                    if let Some(next) =
                        find_next_valid(&seg.data, off + RECORD_ALIGN, limit, expected)
                    {
                        tracing::error!(channel = name, file = %seg.path.display(), offset = off, reason,
                            skipped_bytes = next - off,
                            "corrupt record in the middle of the log; keeping every intact record after it");
                        txn = None;
                        off = next;
                        continue;
                    }
                    if !is_last {
                        tracing::error!(channel = name, file = %seg.path.display(), offset = off, reason,
                            "corrupt record; the rest of this segment is unreadable");
                        txn = None;
                    } else {
                        tracing::warn!(channel = name, file = %seg.path.display(), offset = off, reason,
                            "torn write at the end of the log (crash during a write); truncating it");
                    }
                    break;
                }
            }
        }
        end = Pos::new(id, off);
    }
    if let Some((p, seq)) = txn {
        tracing::warn!(channel = name, position = %p, first_seq = seq, lost_events = expected - seq,
            "discarding a put transaction that never completed (its commit had not returned)");
        expected = seq;
        end = p;
    }
    // Segments after the end hold nothing committed.
    let dead: Vec<u64> = segs.range(end.seg + 1..).map(|(id, _)| *id).collect();
    for id in dead {
        if let Some(s) = segs.remove(&id) {
            tracing::warn!(channel = name, file = %s.path.display(), "removing a segment past the end of the log");
            std::fs::remove_file(&s.path)
                .map_err(|e| io_err(name, format!("removing {}", s.path.display()), e))?;
        }
    }
    let cur = segs[&end.seg].clone();
    // Whatever follows the end is unsynced debris: zero it so no stale record can ever be
    // mistaken for a live one later.
    cur.zero_from(end.off)
        .map_err(|e| io_err(name, format!("truncating {}", cur.path.display()), e))?;
    for (_, s) in segs.range(ck.write.seg..) {
        s.file
            .sync_data()
            .map_err(|e| io_err(name, format!("syncing {}", s.path.display()), e))?;
    }
    let _ = sync_dir(&data_dir);

    let held_bytes = segs
        .range(ck.ack_pos.seg..=end.seg)
        .map(|(id, s)| {
            let from = if *id == ck.ack_pos.seg {
                ck.ack_pos.off
            } else {
                SEGMENT_HEADER_LEN
            };
            let to = if *id == end.seg { end.off } else { s.len() };
            to.saturating_sub(from)
        })
        .sum();
    tracing::info!(
        channel = name,
        checkpoint_generation = ck.generation,
        replayed_from = %ck.write,
        end = %end,
        events = expected - acks.lo() - acks.above(),
        "file channel recovered"
    );
    Ok(Recovered {
        locks,
        ledger,
        generation: ck.generation,
        segs,
        cur,
        off: end.off,
        next_seq: expected,
        acks,
        ack_pos: ck.ack_pos,
        held_bytes,
    })
}

/// A data directory without segments: checks the ledger agrees it held nothing, then creates
/// the first segment.
fn start_empty(
    cfg: &FileChannelConfig,
    name: &str,
    locks: Vec<DirLock>,
    ledger: Ledger,
    ck: Option<Checkpoint>,
) -> Result<Recovered, ChannelError> {
    let data_dir = cfg.data_dir();
    if let Some(c) = &ck {
        let held = c.next_seq - c.ack_lo - c.ranges.iter().map(|(a, b)| b - a).sum::<u64>();
        if held > 0 {
            return Err(corrupt(
                name,
                data_dir,
                0,
                format!(
                    "the ledger says {held} events are held but the data directory has no \
                     segments (wrong dataDirs, or files were deleted)"
                ),
            ));
        }
    }
    let first_seq = ck.as_ref().map_or(0, |c| c.next_seq);
    let id = ck.as_ref().map_or(1, |c| c.write.seg + 1);
    let seg = Arc::new(
        Segment::create(data_dir, id, first_seq, cfg.segment_size).map_err(|e| {
            io_err(
                name,
                format!("creating {}", segment_path(data_dir, id).display()),
                e,
            )
        })?,
    );
    let mut segs = BTreeMap::new();
    segs.insert(id, seg.clone());
    let start = Pos::new(id, SEGMENT_HEADER_LEN);
    Ok(Recovered {
        locks,
        ledger,
        generation: ck.map_or(0, |c| c.generation),
        segs,
        cur: seg,
        off: SEGMENT_HEADER_LEN,
        next_seq: first_seq,
        acks: AckSet::new(first_seq, &[]),
        ack_pos: start,
        held_bytes: 0,
    })
}
