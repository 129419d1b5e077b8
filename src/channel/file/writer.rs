//! The append side: serializing put transactions and take acknowledgements into records,
//! positioned writes into the current segment, and rollover to a new segment.
//!
//! Everything here runs under the log lock; fsync lives in the group-commit code of
//! [`super::channel`], never here.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::event::Event;

use super::format::{
    encode_ack, record_span, Pos, RecordHeader, EVENT_FRAME_LEN, FLAG_END_OF_TXN, KIND_PUT,
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use super::segment::Segment;
use super::spare::Spares;

/// The segments currently open, by id (shared with readers).
pub type SegmentMap = RwLock<BTreeMap<u64, Arc<Segment>>>;

/// Why an append failed.
#[derive(Debug)]
pub enum AppendError {
    /// A new segment could not get its space (or free space is under the floor).
    NoSpace { available: u64, required: u64 },
    /// A write or a segment creation failed.
    Io(&'static str, io::Error),
    /// A thread panicked while holding the segment map's lock (the channel turns Unhealthy).
    Poisoned,
}

/// Writer state, guarded by the log lock.
#[derive(Debug)]
pub struct LogState {
    /// Segment appends go to.
    pub cur: Arc<Segment>,
    /// Next write offset in `cur`.
    pub off: u64,
    /// Sequence number of the next put event.
    pub next_seq: u64,
    /// Earlier segments holding bytes not yet fdatasync'ed.
    pub unsynced: Vec<Arc<Segment>>,
    /// Log position (and next seq) every byte before which is durable.
    pub durable: (Pos, u64),
    /// A group-commit leader is inside fdatasync.
    pub syncing: bool,
    /// Bytes appended since the last checkpoint snapshot.
    pub since_checkpoint: u64,
    /// Scratch for ACK records.
    pub ack_buf: Vec<u8>,
    /// Directory segments are created in.
    pub dir: PathBuf,
    /// Size new segments are preallocated to.
    pub segment_size: u64,
    /// Free space a new segment for puts must leave behind.
    pub min_free: u64,
    /// Consumed segment files kept for reuse (see [`super::spare`]).
    pub spares: Arc<Spares>,
}

impl LogState {
    /// The current end of the log.
    #[inline]
    pub fn written(&self) -> Pos {
        Pos::new(self.cur.id(), self.off)
    }

    fn room(&self) -> u64 {
        self.cur.len().saturating_sub(self.off)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), AppendError> {
        self.cur
            .file
            .write_all_at(bytes, self.off)
            .map_err(|e| AppendError::Io("writing a record", e))?;
        self.off += bytes.len() as u64;
        self.since_checkpoint += bytes.len() as u64;
        Ok(())
    }

    /// Starts segment `cur + 1`, from a spare file when one is ready (its space is already
    /// reserved, so only a fresh file is checked against the free-space floor). `for_puts`
    /// enforces that floor; ACK records may dip into it so consumers can always drain a full
    /// disk.
    fn roll(&mut self, segs: &SegmentMap, for_puts: bool) -> Result<(), AppendError> {
        let id = self.cur.id() + 1;
        if let Some(spare) = self.spares.take() {
            match spare.into_segment(&self.dir, id, self.next_seq, self.segment_size) {
                Ok(seg) => return self.install(segs, Arc::new(seg)),
                Err((e, back)) => {
                    tracing::warn!(segment = id, error = %e, "could not reuse a spare segment file; creating a new one");
                    if let Some(spare) = back {
                        self.spares.give_back(spare);
                    }
                }
            }
        }
        if for_puts {
            let available = super::disk::available_bytes(&self.dir)
                .map_err(|e| AppendError::Io("checking free space", e))?;
            let required = self.segment_size + self.min_free;
            if available < required {
                return Err(AppendError::NoSpace {
                    available,
                    required,
                });
            }
        }
        let seg = match Segment::create(&self.dir, id, self.next_seq, self.segment_size) {
            Ok(s) => Arc::new(s),
            Err(e) if super::disk::is_no_space(&e) => {
                let available = super::disk::available_bytes(&self.dir).unwrap_or(0);
                return Err(AppendError::NoSpace {
                    available,
                    required: self.segment_size,
                });
            }
            Err(e) => return Err(AppendError::Io("creating a segment", e)),
        };
        self.install(segs, seg)
    }

    /// Makes `seg` the segment appends go to.
    fn install(&mut self, segs: &SegmentMap, seg: Arc<Segment>) -> Result<(), AppendError> {
        tracing::debug!(
            segment = seg.id(),
            first_seq = self.next_seq,
            "rolled to a new segment"
        );
        segs.write()
            .map_err(|_| AppendError::Poisoned)?
            .insert(seg.id(), seg.clone());
        let old = std::mem::replace(&mut self.cur, seg);
        self.unsynced.push(old);
        self.off = SEGMENT_HEADER_LEN;
        Ok(())
    }

    /// Appends one put transaction. `buf` holds a record pre-serialized by [`serialize_put`]
    /// (24 header bytes left blank, payload, padding) with the payload's CRC32C; it is used
    /// as-is when it fits the current segment, otherwise the events are re-split across segments.
    /// On error nothing of the transaction remains visible and the position is unchanged.
    pub fn append_put(
        &mut self,
        segs: &SegmentMap,
        events: &[Event],
        buf: &mut [u8],
        payload_len: usize,
        payload_crc: u32,
    ) -> Result<Pos, AppendError> {
        let span = buf.len() as u64;
        if span > self.room() && self.off > SEGMENT_HEADER_LEN && span <= self.max_record() {
            // The whole transaction fits an empty segment: roll instead of splitting.
            self.roll(segs, true)?;
        }
        if span <= self.room() {
            let mut h = RecordHeader {
                payload_len: payload_len as u32,
                crc: 0,
                kind: KIND_PUT,
                flags: FLAG_END_OF_TXN,
                count: events.len() as u32,
                seq: self.next_seq,
            };
            h.seal(payload_crc);
            buf[..RECORD_HEADER_LEN].copy_from_slice(&h.encode());
            self.write(buf)?;
            self.next_seq += events.len() as u64;
            return Ok(self.written());
        }
        self.append_split(segs, events)
    }

    /// Largest record a segment can hold.
    pub fn max_record(&self) -> u64 {
        self.segment_size - SEGMENT_HEADER_LEN
    }

    fn append_split(&mut self, segs: &SegmentMap, events: &[Event]) -> Result<Pos, AppendError> {
        let (seg, off, seq, since) = (
            self.cur.clone(),
            self.off,
            self.next_seq,
            self.since_checkpoint,
        );
        let unsynced = self.unsynced.len();
        let mut res = self.append_split_inner(segs, events);
        if res.is_err() {
            let old_end = if self.cur.id() == seg.id() {
                self.off
            } else {
                seg.len()
            };
            // Undo: drop segments created on the way (nothing in them is visible yet), zero what
            // was written so no stale record outlives the failed transaction, rewind.
            while self.cur.id() != seg.id() {
                let dead = std::mem::replace(&mut self.cur, seg.clone());
                match segs.write() {
                    Ok(mut m) => {
                        m.remove(&dead.id());
                    }
                    // Poison: finish the undo (one removal cannot be half done), but report
                    // it so the channel turns Unhealthy.
                    Err(e) => {
                        e.into_inner().remove(&dead.id());
                        res = Err(AppendError::Poisoned);
                    }
                }
                if let Err(e) = std::fs::remove_file(&dead.path) {
                    tracing::warn!(file = %dead.path.display(), error = %e,
                        "could not remove the segment of a failed transaction");
                }
            }
            self.unsynced.truncate(unsynced);
            zero_range(&seg, off, old_end);
            self.off = off;
            self.next_seq = seq;
            self.since_checkpoint = since;
        }
        res
    }

    fn append_split_inner(
        &mut self,
        segs: &SegmentMap,
        events: &[Event],
    ) -> Result<Pos, AppendError> {
        let mut rest = events;
        let mut scratch = Vec::new();
        while !rest.is_empty() {
            // How many events fit the room left?
            let room = self.room();
            let mut payload = 0usize;
            let mut k = 0;
            for e in rest {
                let next = payload + EVENT_FRAME_LEN + e.encoded_len();
                if record_span(next) > room {
                    break;
                }
                payload = next;
                k += 1;
            }
            if k == 0 {
                self.roll(segs, true)?;
                continue;
            }
            let (chunk, tail) = rest.split_at(k);
            let last = tail.is_empty();
            scratch.clear();
            let crc = serialize_put(&mut scratch, chunk);
            let mut h = RecordHeader {
                payload_len: payload as u32,
                crc: 0,
                kind: KIND_PUT,
                flags: if last { FLAG_END_OF_TXN } else { 0 },
                count: k as u32,
                seq: self.next_seq,
            };
            h.seal(crc);
            scratch[..RECORD_HEADER_LEN].copy_from_slice(&h.encode());
            self.write(&scratch)?;
            self.next_seq += k as u64;
            rest = tail;
        }
        Ok(self.written())
    }

    /// Appends one ACK record for `ranges`.
    pub fn append_ack(
        &mut self,
        segs: &SegmentMap,
        ranges: &[(u64, u64)],
    ) -> Result<Pos, AppendError> {
        let mut buf = std::mem::take(&mut self.ack_buf);
        buf.clear();
        encode_ack(&mut buf, ranges);
        let res = (|| {
            if buf.len() as u64 > self.room() {
                if buf.len() as u64 > self.max_record() {
                    return Err(AppendError::Io(
                        "writing an acknowledgement",
                        io::Error::other("acknowledgement larger than a segment"),
                    ));
                }
                self.roll(segs, false)?;
            }
            self.write(&buf)?;
            Ok(self.written())
        })();
        self.ack_buf = buf;
        res
    }
}

/// Serializes `events` as one PUT record into `out` (header bytes left zero for the caller to
/// fill), padded to the record alignment. Returns the payload's CRC32C.
pub fn serialize_put(out: &mut Vec<u8>, events: &[Event]) -> u32 {
    let start = out.len();
    out.resize(start + RECORD_HEADER_LEN, 0);
    for e in events {
        let raw = e.encoded();
        out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        out.extend_from_slice(raw);
    }
    let crc = crc32c::crc32c(&out[start + RECORD_HEADER_LEN..]);
    let payload_len = out.len() - start - RECORD_HEADER_LEN;
    out.resize(start + record_span(payload_len) as usize, 0);
    crc
}

fn zero_range(seg: &Segment, from: u64, to: u64) {
    if to <= from {
        return;
    }
    let zeros = vec![0u8; (to - from).min(1 << 16) as usize];
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(zeros.len());
        if let Err(e) = seg.file.write_all_at(&zeros[..n], at) {
            tracing::warn!(file = %seg.path.display(), offset = at, error = %e,
                "could not clear the bytes of a failed transaction");
            return;
        }
        at += n as u64;
    }
}
