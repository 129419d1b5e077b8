//! On-disk framing: the segment header and the record header, encoded and checked byte by byte.
//!
//! Everything here is pure (no I/O) so the layout can be tested and fuzzed in isolation. The
//! layout itself is described in the module essay of [`super`]; the constants below are the
//! single source of truth for it.

/// A byte position in the log: segment id, then offset inside that segment file.
/// Ordered lexicographically, which is log order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Segment id.
    pub seg: u64,
    /// Byte offset inside the segment file.
    pub off: u64,
}

impl Pos {
    /// A position.
    pub const fn new(seg: u64, off: u64) -> Pos {
        Pos { seg, off }
    }
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seg, self.off)
    }
}

/// Format version written into every segment and ledger header. Bump on any layout change.
pub const FORMAT_VERSION: u32 = 1;

/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SGFCSEG\0";
/// Length of the segment header; the first record starts here.
pub const SEGMENT_HEADER_LEN: u64 = 64;

/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 24;
/// Records start on multiples of this.
pub const RECORD_ALIGN: u64 = 8;
/// Two magic bytes inside every record header (offset 10).
pub const RECORD_MAGIC: [u8; 2] = *b"sg";

/// Record kind: a slice of one put transaction's events.
pub const KIND_PUT: u8 = 1;
/// Record kind: sequence ranges whose takes were committed (or skipped as corrupt).
pub const KIND_ACK: u8 = 2;

/// Flag: this record is the last one of its put transaction.
pub const FLAG_END_OF_TXN: u8 = 1;

/// Bytes of per-event framing inside a PUT payload (the `u32` length).
pub const EVENT_FRAME_LEN: usize = 4;
/// Bytes per range inside an ACK payload.
pub const ACK_RANGE_LEN: usize = 16;

/// Rounds `n` up to the record alignment.
#[inline]
pub fn align_up(n: u64) -> u64 {
    (n + RECORD_ALIGN - 1) & !(RECORD_ALIGN - 1)
}

/// Total on-disk length of a record with `payload_len` payload bytes (header + payload + pad).
#[inline]
pub fn record_span(payload_len: usize) -> u64 {
    align_up((RECORD_HEADER_LEN + payload_len) as u64)
}

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment id (also in the file name).
    pub id: u64,
    /// Sequence number the first event written into this segment gets.
    pub first_seq: u64,
    /// File size the segment was preallocated to.
    pub size: u64,
}

impl SegmentHeader {
    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN as usize] {
        let mut b = [0u8; SEGMENT_HEADER_LEN as usize];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.id.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_seq.to_le_bytes());
        b[32..40].copy_from_slice(&self.size.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header; the error says what is wrong.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let n = b.len().min(SEGMENT_HEADER_LEN as usize);
        if b[..n].iter().all(|&x| x == 0) {
            return Err(HeaderError::Absent { len: n });
        }
        if n < SEGMENT_HEADER_LEN as usize {
            return Err(HeaderError::Short { len: n });
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = le32(b, 8);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version { found: version });
        }
        let crc = le32(b, 60);
        if crc32c::crc32c(&b[0..60]) != crc {
            return Err(HeaderError::Checksum);
        }
        Ok(SegmentHeader {
            id: le64(b, 16),
            first_seq: le64(b, 24),
            size: le64(b, 32),
        })
    }
}

/// Why a segment header did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Every header byte present is zero (`len` of them; fewer than 64 when the file is that
    /// short): no header was ever written here.
    #[error("no header: the first {len} bytes are all zero")]
    Absent { len: usize },
    /// Shorter than a header, and not all zeros.
    #[error("file too short for a header ({len} bytes)")]
    Short { len: usize },
    /// Not a sluicegate segment.
    #[error("bad magic (not a sluicegate segment)")]
    BadMagic,
    /// Written by another format version.
    #[error("format version {found}, this build reads {FORMAT_VERSION}")]
    Version { found: u32 },
    /// The header's CRC does not match.
    #[error("header checksum mismatch")]
    Checksum,
}

/// A decoded record header (its checksum not yet verified against the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Payload bytes after the 24-byte header (padding excluded).
    pub payload_len: u32,
    /// CRC32C of the payload followed by header bytes 8..24.
    pub crc: u32,
    /// [`KIND_PUT`] or [`KIND_ACK`].
    pub kind: u8,
    /// [`FLAG_END_OF_TXN`] or 0.
    pub flags: u8,
    /// PUT: number of events; ACK: number of ranges.
    pub count: u32,
    /// PUT: sequence number of the first event; ACK: 0.
    pub seq: u64,
}

/// What is found at a record position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// 24 zero bytes (or end of file): nothing was ever written here.
    Empty,
    /// A header whose fields and checksum are valid.
    Valid(RecordHeader),
    /// Something that is neither empty nor a valid record.
    Invalid(&'static str),
}

impl RecordHeader {
    /// Header bytes 8..24 (the part covered by the checksum).
    #[inline]
    pub fn tail_bytes(&self) -> [u8; 16] {
        let mut t = [0u8; 16];
        t[0] = self.kind;
        t[1] = self.flags;
        t[2..4].copy_from_slice(&RECORD_MAGIC);
        t[4..8].copy_from_slice(&self.count.to_le_bytes());
        t[8..16].copy_from_slice(&self.seq.to_le_bytes());
        t
    }

    /// Finishes the checksum given the CRC32C of the payload.
    #[inline]
    pub fn seal(&mut self, payload_crc: u32) {
        self.crc = crc32c::crc32c_append(payload_crc, &self.tail_bytes());
    }

    /// The 24 header bytes.
    #[inline]
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut b = [0u8; RECORD_HEADER_LEN];
        b[0..4].copy_from_slice(&self.payload_len.to_le_bytes());
        b[4..8].copy_from_slice(&self.crc.to_le_bytes());
        b[8..24].copy_from_slice(&self.tail_bytes());
        b
    }

    /// Decodes the header at `buf[off..]` and verifies the whole record's checksum, without
    /// reading past `limit` (an exclusive byte offset in `buf`).
    pub fn probe(buf: &[u8], off: usize, limit: usize) -> Probe {
        let limit = limit.min(buf.len());
        if off + RECORD_HEADER_LEN > limit {
            return if buf[off.min(limit)..limit].iter().all(|b| *b == 0) {
                Probe::Empty
            } else {
                Probe::Invalid("truncated record header")
            };
        }
        let h = &buf[off..off + RECORD_HEADER_LEN];
        if h.iter().all(|b| *b == 0) {
            return Probe::Empty;
        }
        let hdr = RecordHeader {
            payload_len: le32(h, 0),
            crc: le32(h, 4),
            kind: h[8],
            flags: h[9],
            count: le32(h, 12),
            seq: le64(h, 16),
        };
        if h[10..12] != RECORD_MAGIC {
            return Probe::Invalid("bad record magic");
        }
        if hdr.kind != KIND_PUT && hdr.kind != KIND_ACK {
            return Probe::Invalid("unknown record kind");
        }
        let end = off + RECORD_HEADER_LEN + hdr.payload_len as usize;
        if end > limit {
            return Probe::Invalid("record runs past the end of the segment");
        }
        let payload = &buf[off + RECORD_HEADER_LEN..end];
        let crc = crc32c::crc32c_append(crc32c::crc32c(payload), &h[8..24]);
        if crc != hdr.crc {
            return Probe::Invalid("checksum mismatch");
        }
        let min_payload = match hdr.kind {
            KIND_PUT => hdr.count as usize * EVENT_FRAME_LEN,
            _ => hdr.count as usize * ACK_RANGE_LEN,
        };
        if (hdr.payload_len as usize) < min_payload {
            return Probe::Invalid("payload shorter than its count");
        }
        Probe::Valid(hdr)
    }
}

/// Reads a little-endian `u32` at `at`.
#[inline]
pub fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Reads a little-endian `u64` at `at`.
#[inline]
pub fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Iterates the `(start, end)` ranges of an ACK payload.
pub fn ack_ranges(payload: &[u8], count: u32) -> impl Iterator<Item = (u64, u64)> + '_ {
    (0..count as usize).map(move |i| {
        let at = i * ACK_RANGE_LEN;
        (le64(payload, at), le64(payload, at + 8))
    })
}

/// Appends one ACK record (header + ranges + padding) to `out`.
pub fn encode_ack(out: &mut Vec<u8>, ranges: &[(u64, u64)]) {
    let start = out.len();
    out.resize(start + RECORD_HEADER_LEN, 0);
    for (a, b) in ranges {
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
    }
    let payload_len = out.len() - start - RECORD_HEADER_LEN;
    let mut h = RecordHeader {
        payload_len: payload_len as u32,
        crc: 0,
        kind: KIND_ACK,
        flags: 0,
        count: ranges.len() as u32,
        seq: 0,
    };
    h.seal(crc32c::crc32c(&out[start + RECORD_HEADER_LEN..]));
    out[start..start + RECORD_HEADER_LEN].copy_from_slice(&h.encode());
    let padded = start + record_span(payload_len) as usize;
    out.resize(padded, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trips_and_rejects_damage() {
        let h = SegmentHeader {
            id: 7,
            first_seq: 1234,
            size: 1 << 20,
        };
        let mut b = h.encode();
        assert_eq!(SegmentHeader::decode(&b).unwrap(), h);
        b[30] ^= 1;
        assert_eq!(SegmentHeader::decode(&b), Err(HeaderError::Checksum));
        assert_eq!(
            SegmentHeader::decode(&[0u8; 64]),
            Err(HeaderError::Absent { len: 64 })
        );
        assert_eq!(
            SegmentHeader::decode(&[0u8; 10]),
            Err(HeaderError::Absent { len: 10 })
        );
        assert_eq!(
            SegmentHeader::decode(&b[..10]),
            Err(HeaderError::Short { len: 10 })
        );
        b[0] = b'X';
        assert_eq!(SegmentHeader::decode(&b), Err(HeaderError::BadMagic));
    }

    #[test]
    fn ack_record_probes_valid_and_detects_flips() {
        let mut buf = Vec::new();
        encode_ack(&mut buf, &[(1, 5), (9, 10)]);
        assert_eq!(buf.len() % 8, 0);
        buf.extend_from_slice(&[0u8; 32]);
        let Probe::Valid(h) = RecordHeader::probe(&buf, 0, buf.len()) else {
            panic!("expected a valid record");
        };
        assert_eq!(h.kind, KIND_ACK);
        let payload = &buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + h.payload_len as usize];
        assert_eq!(
            ack_ranges(payload, h.count).collect::<Vec<_>>(),
            vec![(1, 5), (9, 10)]
        );
        let next = record_span(h.payload_len as usize) as usize;
        assert_eq!(RecordHeader::probe(&buf, next, buf.len()), Probe::Empty);
        for bit in 0..(next * 8) {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(RecordHeader::probe(&b, 0, b.len()), Probe::Valid(x) if x == h),
                "flip of bit {bit} went unnoticed"
            );
        }
    }
}
