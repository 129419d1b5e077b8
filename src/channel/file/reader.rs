//! The read side: a cursor walking records through the segment maps, the queue of rolled-back
//! events, the set of committed takes, and the accounting that goes with them.
//!
//! Guarded by the queue lock. Events handed out are `Bytes` slices of a segment's map: no copy.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::event::Event;

use super::acks::AckSet;
use super::format::{
    le32, record_span, Pos, Probe, RecordHeader, EVENT_FRAME_LEN, KIND_ACK, KIND_PUT, RECORD_ALIGN,
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN,
};
use super::segment::{MapRange, Segment};
use super::writer::SegmentMap;

/// Smallest span of acknowledged bytes [`ReadState::drop_acked_pages`] hands to `madvise`.
pub const DROP_STEP: u64 = 4 << 20;

/// A PUT record being handed out event by event.
#[derive(Debug, Clone, Copy)]
struct OpenRecord {
    /// Offset of the next event frame in the segment.
    next: usize,
    /// End of the record's payload.
    end: usize,
    /// Events left.
    left: u32,
    /// Seq of the next event.
    seq: u64,
}

/// Reader state, guarded by the queue lock.
#[derive(Debug)]
pub struct ReadState {
    /// Segment the cursor is in.
    seg: Arc<Segment>,
    /// Offset of the next record to open.
    off: u64,
    /// Offset in `seg` below which the mapped pages were dropped ([`ReadState::drop_acked_pages`]).
    dropped: u64,
    rec: Option<OpenRecord>,
    /// Seq the next PUT record should start at (gaps mean lost events).
    expected: u64,
    /// `(seq_end, record position)` of records read whose events are not all acknowledged.
    index: VecDeque<(u64, Pos)>,
    /// Rolled-back events, served before the cursor.
    pub requeued: VecDeque<(u64, Event)>,
    /// Committed takes.
    pub acks: AckSet,
    /// End of the log readers may look at (durable, or written in relaxed mode).
    pub visible: Pos,
    /// Seq of the first event not yet visible.
    pub visible_seq: u64,
    /// Events reserved by puts in flight.
    pub reserved: u64,
    /// Encoded bytes held (approximate after a restart: the log span) plus reserved.
    pub bytes: u64,
    /// Set by close.
    pub closed: bool,
}

impl ReadState {
    /// A reader starting at `start` with acknowledgements `acks`.
    pub fn new(
        seg: Arc<Segment>,
        start: Pos,
        acks: AckSet,
        visible: Pos,
        visible_seq: u64,
    ) -> Self {
        let expected = acks.lo();
        ReadState {
            seg,
            off: start.off,
            dropped: 0,
            rec: None,
            expected,
            index: VecDeque::new(),
            requeued: VecDeque::new(),
            acks,
            visible,
            visible_seq,
            reserved: 0,
            bytes: 0,
            closed: false,
        }
    }

    /// Events held: visible puts minus committed takes.
    #[inline]
    pub fn size(&self) -> u64 {
        self.visible_seq
            .saturating_sub(self.acks.lo())
            .saturating_sub(self.acks.above())
    }

    /// True when a take would find an event now.
    pub fn has_ready(&self) -> bool {
        !self.requeued.is_empty()
            || self.rec.is_some()
            || Pos::new(self.seg.id(), self.off) < self.visible
    }

    /// A position at or before the first record holding an unacknowledged event.
    pub fn ack_pos(&mut self) -> Pos {
        let lo = self.acks.lo();
        while self.index.front().is_some_and(|(end, _)| *end <= lo) {
            self.index.pop_front();
        }
        match self.index.front() {
            Some((_, p)) => *p,
            None => Pos::new(self.seg.id(), self.off),
        }
    }

    /// Drops from the resident set the mapped pages of the reader's segment that lie wholly
    /// before the first unacknowledged record (see [`Segment::drop_pages`]): a committed take's
    /// bytes are never read again by the channel, and a consumed segment stays mapped until it
    /// is retired, so without this a 128 MiB segment's read pages stay resident long after their
    /// events are gone. Works in steps of at least [`DROP_STEP`] bytes to keep `madvise` calls
    /// rare. Changes no state a reader or recovery looks at.
    pub fn drop_acked_pages(&mut self) {
        let p = self.ack_pos();
        if p.seg != self.seg.id() || p.off < self.dropped + DROP_STEP {
            return;
        }
        self.dropped = self.seg.drop_pages(self.dropped, p.off);
    }

    /// The mapping holding the byte at `addr`: the cursor's segment, else (a rolled-back event
    /// read earlier) another live segment of `segs`. `None` if no live segment maps it.
    pub fn map_of(&self, segs: &SegmentMap, addr: usize) -> Option<MapRange> {
        let here = self.seg.map_range();
        if here.contains(addr) {
            return Some(here);
        }
        let map = segs.read().ok()?;
        map.values()
            .map(|s| s.map_range())
            .find(|m| m.contains(addr))
    }

    /// Records a committed take.
    pub fn ack(&mut self, a: u64, b: u64) {
        self.acks.insert(a, b);
    }

    /// The next event to hand out, with its seq; `None` when nothing visible is left.
    pub fn next_event(&mut self, segs: &SegmentMap) -> Option<(u64, Event)> {
        if let Some(x) = self.requeued.pop_front() {
            return Some(x);
        }
        loop {
            if let Some(r) = &mut self.rec {
                if r.left > 0 {
                    let data = &self.seg.data;
                    let at = r.next;
                    let seq = r.seq;
                    r.left -= 1;
                    r.seq += 1;
                    if at + EVENT_FRAME_LEN > r.end {
                        self.rec = None;
                        self.lost(seq, "event frame runs past its record");
                        continue;
                    }
                    let len = le32(data, at) as usize;
                    let start = at + EVENT_FRAME_LEN;
                    r.next = start + len;
                    if r.next > r.end {
                        self.rec = None;
                        self.lost(seq, "event runs past its record");
                        continue;
                    }
                    if self.acks.contains(seq) {
                        continue;
                    }
                    let raw = data.slice(start..start + len);
                    let mut pos = 0;
                    match Event::scan(&raw, &mut pos) {
                        Ok(body) if pos == len => {
                            return Some((seq, Event::from_scanned(raw, body)))
                        }
                        _ => {
                            tracing::error!(file = %self.seg.path.display(), offset = at, seq,
                                "stored event is not a valid AvroFlumeEvent; skipping it");
                            self.acks.insert(seq, seq + 1);
                            continue;
                        }
                    }
                }
                self.rec = None;
            }
            if !self.open_next_record(segs) {
                return None;
            }
        }
    }

    fn lost(&mut self, seq: u64, why: &str) {
        tracing::error!(file = %self.seg.path.display(), seq, "{why}; event skipped");
        self.acks.insert(seq, seq + 1);
    }

    /// Opens the next PUT record at the cursor. False when nothing visible is left.
    fn open_next_record(&mut self, segs: &SegmentMap) -> bool {
        loop {
            let here = Pos::new(self.seg.id(), self.off);
            if here >= self.visible {
                return false;
            }
            let limit = if self.seg.id() == self.visible.seg {
                self.visible.off as usize
            } else {
                self.seg.data.len()
            };
            match RecordHeader::probe(&self.seg.data, self.off as usize, limit) {
                Probe::Empty => {
                    if !self.next_segment(segs) {
                        return false;
                    }
                }
                Probe::Valid(h) if h.kind == KIND_ACK => {
                    self.off += record_span(h.payload_len as usize);
                }
                Probe::Valid(h) => {
                    debug_assert_eq!(h.kind, KIND_PUT);
                    let start = self.off as usize + RECORD_HEADER_LEN;
                    let end = start + h.payload_len as usize;
                    self.note_seq(h.seq, h.count);
                    let seq_end = h.seq + h.count as u64;
                    if seq_end > self.acks.lo() {
                        self.index.push_back((seq_end, here));
                    }
                    self.off += record_span(h.payload_len as usize);
                    self.rec = Some(OpenRecord {
                        next: start,
                        end,
                        left: h.count,
                        seq: h.seq,
                    });
                    return true;
                }
                Probe::Invalid(reason) => {
                    tracing::error!(
                        file = %self.seg.path.display(),
                        offset = self.off,
                        reason,
                        "corrupt record in the channel; skipping to the next intact record"
                    );
                    match find_next_valid(
                        &self.seg.data,
                        self.off + RECORD_ALIGN,
                        limit as u64,
                        self.expected,
                    ) {
                        Some(next) => self.off = next,
                        None if self.seg.id() < self.visible.seg => {
                            if !self.next_segment(segs) {
                                return false;
                            }
                        }
                        None => self.off = self.visible.off,
                    }
                }
            }
        }
    }

    /// Registers a PUT record's seq range; a jump forward means events were lost to corruption.
    fn note_seq(&mut self, seq: u64, count: u32) {
        if seq > self.expected {
            tracing::error!(
                file = %self.seg.path.display(),
                lost_from = self.expected,
                lost_to = seq,
                "{} events were lost to corruption", seq - self.expected
            );
            self.acks.insert(self.expected, seq);
        }
        self.expected = self.expected.max(seq + count as u64);
    }

    fn next_segment(&mut self, segs: &SegmentMap) -> bool {
        if self.seg.id() >= self.visible.seg {
            return false;
        }
        // Poison: stop reading here; the channel checks the map after every take and turns
        // Unhealthy.
        let Ok(map) = segs.read() else {
            return false;
        };
        let next = map
            .range(self.seg.id() + 1..)
            .next()
            .map(|(_, s)| s.clone());
        match next {
            Some(s) => {
                self.seg = s;
                self.off = SEGMENT_HEADER_LEN;
                self.dropped = 0;
                true
            }
            None => false,
        }
    }
}

/// The offset of the next intact record in `data[from..limit)` that belongs after seq `min_seq`
/// (a PUT starting at or after it, or an ACK). Scans 8-byte-aligned offsets.
pub fn find_next_valid(data: &[u8], from: u64, limit: u64, min_seq: u64) -> Option<u64> {
    let mut at = super::format::align_up(from);
    while at + RECORD_HEADER_LEN as u64 <= limit {
        let a = at as usize;
        // Cheap pre-check on the magic bytes before a full checksum.
        if data[a + 10..a + 12] == super::format::RECORD_MAGIC {
            if let Probe::Valid(h) = RecordHeader::probe(data, a, limit as usize) {
                if h.kind == KIND_ACK || h.seq >= min_seq {
                    return Some(at);
                }
            }
        }
        at += RECORD_ALIGN;
    }
    None
}
