//! The ledger: a small memory-mapped checkpoint of positions, in `checkpointDir/ledger`.
//!
//! Two fixed slots alternate (A, B, A, …). A checkpoint is written into the slot *not* holding
//! the newest valid one and flushed with `msync`; a torn ledger write therefore damages only the
//! slot being written, and open picks the valid slot with the highest generation. If neither slot
//! is valid, open falls back to replaying every segment (slow but exact; see the module essay).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use super::format::{le32, le64, Pos, FORMAT_VERSION};
use super::segment::preallocate;

/// Magic at the start of each ledger slot.
pub const LEDGER_MAGIC: [u8; 8] = *b"SGFCLDG\0";
/// Bytes per slot.
pub const SLOT_SIZE: usize = 32 * 1024;
/// Ledger file length (two slots).
pub const LEDGER_LEN: usize = 2 * SLOT_SIZE;
/// Fixed part of a slot before the ranges.
pub const SLOT_FIXED: usize = 80;
/// Most committed-take ranges above `ack_lo` a slot can hold.
pub const MAX_RANGES: usize = (SLOT_SIZE - SLOT_FIXED - 4) / 16;
/// The ledger's file name inside `checkpointDir`.
pub const LEDGER_FILE: &str = "ledger";

/// The state a checkpoint records: everything recovery needs to skip the log before `write`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Increases by one per checkpoint.
    pub generation: u64,
    /// Log position up to which every record is reflected below (and was durable when written).
    pub write: Pos,
    /// Sequence number the next put event gets.
    pub next_seq: u64,
    /// Every sequence number below this has had its take committed.
    pub ack_lo: u64,
    /// A record position at or before the first record holding a sequence `>= ack_lo`.
    pub ack_pos: Pos,
    /// Committed-take ranges `[start, end)` above `ack_lo`, sorted, disjoint.
    pub ranges: Vec<(u64, u64)>,
}

impl Checkpoint {
    /// Encodes into one slot image (length `SLOT_FIXED + 16·n + 4`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&LEDGER_MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.ranges.len() as u32).to_le_bytes());
        for v in [
            self.generation,
            self.write.seg,
            self.write.off,
            self.next_seq,
            self.ack_lo,
            self.ack_pos.seg,
            self.ack_pos.off,
            0,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for (a, b) in &self.ranges {
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
        }
        let crc = crc32c::crc32c(out);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// Decodes one slot image, checking magic, version and checksum.
    pub fn decode(slot: &[u8]) -> Result<Checkpoint, CheckpointError> {
        if slot.len() < SLOT_FIXED + 4 {
            return Err(CheckpointError::Truncated);
        }
        if slot.iter().take(SLOT_FIXED).all(|b| *b == 0) {
            return Err(CheckpointError::Empty);
        }
        if slot[0..8] != LEDGER_MAGIC {
            return Err(CheckpointError::BadMagic);
        }
        let version = le32(slot, 8);
        if version != FORMAT_VERSION {
            return Err(CheckpointError::Version { found: version });
        }
        let n = le32(slot, 12) as usize;
        if n > MAX_RANGES {
            return Err(CheckpointError::RangeCount { n });
        }
        let end = SLOT_FIXED + 16 * n;
        if slot.len() < end + 4 {
            return Err(CheckpointError::Truncated);
        }
        if crc32c::crc32c(&slot[..end]) != le32(slot, end) {
            return Err(CheckpointError::Checksum);
        }
        let f = |i: usize| le64(slot, 16 + 8 * i);
        let ranges = (0..n)
            .map(|i| {
                (
                    le64(slot, SLOT_FIXED + 16 * i),
                    le64(slot, SLOT_FIXED + 16 * i + 8),
                )
            })
            .collect();
        Ok(Checkpoint {
            generation: f(0),
            write: Pos::new(f(1), f(2)),
            next_seq: f(3),
            ack_lo: f(4),
            ack_pos: Pos::new(f(5), f(6)),
            ranges,
        })
    }
}

/// Why a ledger slot holds no usable checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Never written (all zeros).
    #[error("slot empty")]
    Empty,
    /// The file ends inside the slot.
    #[error("slot truncated")]
    Truncated,
    /// Not a ledger slot.
    #[error("bad magic")]
    BadMagic,
    /// Written by another format version.
    #[error("format version {found}, this build reads {FORMAT_VERSION}")]
    Version { found: u32 },
    /// More ranges than a slot can hold.
    #[error("range count {n} out of bounds")]
    RangeCount { n: usize },
    /// The slot's CRC does not match.
    #[error("checksum mismatch")]
    Checksum,
}

/// What reading a ledger found: the newest valid checkpoint and a note per bad slot.
#[derive(Debug, Clone)]
pub struct LedgerState {
    /// The valid slot with the highest generation, with its slot index.
    pub newest: Option<(usize, Checkpoint)>,
    /// Why each invalid slot was rejected (`slot A: checksum mismatch`).
    pub problems: Vec<String>,
}

/// Reads both slots from raw ledger bytes (any length; missing bytes count as damage).
pub fn read_slots(bytes: &[u8]) -> LedgerState {
    let mut newest: Option<(usize, Checkpoint)> = None;
    let mut problems = Vec::new();
    for slot in 0..2 {
        let start = (slot * SLOT_SIZE).min(bytes.len());
        let end = ((slot + 1) * SLOT_SIZE).min(bytes.len());
        match Checkpoint::decode(&bytes[start..end]) {
            Ok(c) => {
                if newest
                    .as_ref()
                    .is_none_or(|(_, n)| c.generation > n.generation)
                {
                    newest = Some((slot, c));
                }
            }
            Err(CheckpointError::Empty) if bytes.len() >= end && end > start => {}
            Err(e) => problems.push(format!("slot {}: {e}", ["A", "B"][slot])),
        }
    }
    LedgerState { newest, problems }
}

/// The open, mapped ledger.
pub struct Ledger {
    path: PathBuf,
    _file: File,
    map: MmapMut,
    /// Slot holding the newest checkpoint (the next write goes to the other one).
    current: usize,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

impl Ledger {
    /// Opens (creating or repairing the length of) `dir/ledger` and reads its slots.
    pub fn open(dir: &Path) -> io::Result<(Ledger, LedgerState)> {
        let path = dir.join(LEDGER_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let existing = std::fs::read(&path)?;
        // A ledger created just now has no slots yet: nothing is damaged.
        let state = if existing.is_empty() {
            LedgerState {
                newest: None,
                problems: Vec::new(),
            }
        } else {
            read_slots(&existing)
        };
        if !existing.is_empty() && existing.len() < LEDGER_LEN {
            tracing::warn!(
                file = %path.display(),
                len = existing.len(),
                "ledger file is truncated; restoring its length"
            );
        }
        // Reserve the blocks so stores through the map can never fault on a full disk.
        preallocate(&file, LEDGER_LEN as u64)?;
        if file.metadata()?.len() < LEDGER_LEN as u64 {
            file.set_len(LEDGER_LEN as u64)?;
        }
        file.sync_all()?;
        // SAFETY: the file has its full length and is never shortened while mapped; only this
        // process writes it (guarded by the directory lock).
        let map = unsafe { MmapMut::map_mut(&file)? };
        let current = state.newest.as_ref().map(|(s, _)| *s).unwrap_or(1);
        Ok((
            Ledger {
                path,
                _file: file,
                map,
                current,
                scratch: Vec::with_capacity(SLOT_SIZE),
            },
            state,
        ))
    }

    /// Writes `ck` into the other slot and flushes it to disk (`msync`).
    pub fn write(&mut self, ck: &Checkpoint) -> io::Result<()> {
        ck.encode(&mut self.scratch);
        if self.scratch.len() > SLOT_SIZE {
            return Err(io::Error::other("checkpoint does not fit a ledger slot"));
        }
        let slot = 1 - self.current;
        let start = slot * SLOT_SIZE;
        let n = self.scratch.len();
        self.map[start..start + n].copy_from_slice(&self.scratch);
        // Stale bytes after the image are harmless: the range count says where the CRC is.
        self.map.flush_range(start, n)?;
        self.current = slot;
        Ok(())
    }

    /// The ledger's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_newest_slot_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (mut l, st) = Ledger::open(dir.path()).unwrap();
        assert!(st.newest.is_none());
        let mut ck = Checkpoint {
            generation: 1,
            write: Pos::new(3, 4096),
            next_seq: 99,
            ack_lo: 10,
            ack_pos: Pos::new(2, 64),
            ranges: vec![(12, 14), (20, 21)],
        };
        l.write(&ck).unwrap();
        ck.generation = 2;
        ck.next_seq = 120;
        l.write(&ck).unwrap();
        drop(l);
        let bytes = std::fs::read(dir.path().join(LEDGER_FILE)).unwrap();
        let st = read_slots(&bytes);
        assert_eq!(st.newest.unwrap().1, ck);
        // Damage the newest slot: the older one is used.
        let mut b = bytes.clone();
        b[SLOT_SIZE + 20] ^= 0xff;
        let st = read_slots(&b);
        assert_eq!(st.newest.unwrap().1.generation, 1);
        assert_eq!(st.problems.len(), 1);
    }
}
