//! `inspect`: a read-only report of a channel directory — ledger slots, segments, positions,
//! sizes — that verifies every record's CRC. Backs `sluicegate channel inspect DIR`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::format::{record_span, Probe, RecordHeader, KIND_ACK, RECORD_ALIGN, SEGMENT_HEADER_LEN};
use super::ledger::{read_slots, Checkpoint, LEDGER_FILE};
use super::reader::find_next_valid;
use super::segment::{list_segments, segment_path, Segment};

/// Why a directory could not be inspected at all.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Neither a channel directory nor one with `checkpoint/` and `data/` inside.
    #[error("{0} holds no file channel (expected a ledger and log-*.sgseg segments, or checkpoint/ and data/ subdirectories)")]
    NotAChannel(PathBuf),
    /// `DIR` is a checkpoint directory: it holds the ledger but no segments.
    #[error("{dir} is a checkpoint directory (it holds the ledger, no segments); pass the data directory: sluicegate channel inspect {} --checkpoint-dir {dir}", data_dir.as_deref().map_or_else(|| "<the channel's dataDirs>".to_string(), |d| d.display().to_string()))]
    CheckpointDir {
        /// The directory given.
        dir: PathBuf,
        /// A sibling data directory, when one was found.
        data_dir: Option<PathBuf>,
    },
    /// `DIR` holds segments but neither it nor a sibling holds the ledger.
    #[error("{0} holds segments but no ledger, and no sibling directory (../checkpoint) does; pass the channel's checkpointDir: sluicegate channel inspect {0} --checkpoint-dir <checkpointDir>")]
    NoLedger(PathBuf),
    /// Reading failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file or directory being read.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// One damaged spot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// Byte offset in the segment.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

/// What was found in one segment.
#[derive(Debug, Clone)]
pub struct SegmentReport {
    /// File.
    pub path: PathBuf,
    /// Id (from the name).
    pub id: u64,
    /// Header problem, if the header is unreadable.
    pub header_error: Option<String>,
    /// First seq from the header.
    pub first_seq: u64,
    /// File size.
    pub size: u64,
    /// End of the last intact record.
    pub used: u64,
    /// PUT records / events in them / ACK records.
    pub put_records: u64,
    /// Events in PUT records.
    pub events: u64,
    /// ACK records.
    pub ack_records: u64,
    /// Seq range `[first, end)` of events seen.
    pub seq_range: Option<(u64, u64)>,
    /// Records failing validation.
    pub bad: Vec<BadRecord>,
}

/// The full report (`Display` prints it for humans).
#[derive(Debug, Clone)]
pub struct InspectReport {
    /// Ledger file.
    pub ledger_path: PathBuf,
    /// Newest valid checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// Problems with ledger slots.
    pub ledger_problems: Vec<String>,
    /// Segments, ascending.
    pub segments: Vec<SegmentReport>,
}

impl InspectReport {
    /// True when every header, record and ledger slot in use checked out.
    pub fn is_clean(&self) -> bool {
        self.checkpoint.is_some()
            && self
                .segments
                .iter()
                .all(|s| s.header_error.is_none() && s.bad.is_empty())
    }

    /// Events held according to the checkpoint (excluding anything logged after it).
    pub fn checkpointed_events(&self) -> Option<u64> {
        self.checkpoint
            .as_ref()
            .map(|c| c.next_seq - c.ack_lo - c.ranges.iter().map(|(a, b)| b - a).sum::<u64>())
    }
}

/// Inspects `dir`, finding the ledger in the usual layouts:
///
/// * `dir` holds `checkpoint/` and `data/`;
/// * `dir` holds both the ledger and the segments;
/// * `dir` is a data directory whose ledger is in a sibling directory (`../checkpoint`, or the
///   only sibling holding a ledger), as Flume's default `~/.flume/file-channel/{checkpoint,data}`.
///
/// A checkpoint directory (a ledger, no segments) is refused with the command to run instead,
/// and so is a data directory whose ledger cannot be found. For other layouts use
/// [`inspect_dirs`].
pub fn inspect(dir: &Path) -> Result<InspectReport, InspectError> {
    if dir.join("checkpoint").is_dir() && dir.join("data").is_dir() {
        return inspect_dirs(&dir.join("checkpoint"), &dir.join("data"));
    }
    let segments = list_segments(dir).map_err(|source| InspectError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let has_ledger = dir.join(LEDGER_FILE).is_file();
    match (has_ledger, segments.is_empty()) {
        (true, false) => inspect_dirs(dir, dir),
        (true, true) => Err(InspectError::CheckpointDir {
            dir: dir.to_path_buf(),
            data_dir: sibling_with(dir, |d| list_segments(d).is_ok_and(|s| !s.is_empty())),
        }),
        (false, false) => match sibling_with(dir, |d| d.join(LEDGER_FILE).is_file()) {
            Some(ck) => inspect_dirs(&ck, dir),
            None => Err(InspectError::NoLedger(dir.to_path_buf())),
        },
        (false, true) => Err(InspectError::NotAChannel(dir.to_path_buf())),
    }
}

/// The sibling of `dir` that satisfies `test`: `../checkpoint` or `../data` first, else the only
/// sibling directory that does.
fn sibling_with(dir: &Path, test: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let parent = dir.canonicalize().ok()?.parent()?.to_path_buf();
    let me = dir.canonicalize().ok()?;
    for name in ["checkpoint", "data"] {
        let c = parent.join(name);
        if c != me && c.is_dir() && test(&c) {
            return Some(c);
        }
    }
    let found: Vec<PathBuf> = std::fs::read_dir(&parent)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| *p != me && p.is_dir() && test(p))
        .collect();
    match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Inspects a channel whose `checkpointDir` and (first) `dataDirs` entry are given separately.
pub fn inspect_dirs(ck_dir: &Path, data_dir: &Path) -> Result<InspectReport, InspectError> {
    let ledger_path = ck_dir.join(LEDGER_FILE);
    let ids = list_segments(data_dir).map_err(|source| InspectError::Io {
        path: data_dir.to_path_buf(),
        source,
    })?;
    if ids.is_empty() && !ledger_path.exists() {
        return Err(InspectError::NotAChannel(data_dir.to_path_buf()));
    }
    let (checkpoint, ledger_problems) = match std::fs::read(&ledger_path) {
        Ok(b) => {
            let st = read_slots(&b);
            (st.newest.map(|(_, c)| c), st.problems)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            None,
            vec![format!(
                "no ledger here: {e} (the ledger lives in the channel's checkpointDir; \
                 pass it with --checkpoint-dir)"
            )],
        ),
        Err(e) => (None, vec![format!("cannot read: {e}")]),
    };
    let segments = ids
        .into_iter()
        .map(|id| inspect_segment(&segment_path(data_dir, id), id))
        .collect();
    Ok(InspectReport {
        ledger_path,
        checkpoint,
        ledger_problems,
        segments,
    })
}

fn inspect_segment(path: &Path, id: u64) -> SegmentReport {
    let mut r = SegmentReport {
        path: path.to_path_buf(),
        id,
        header_error: None,
        first_seq: 0,
        size: 0,
        used: SEGMENT_HEADER_LEN,
        put_records: 0,
        events: 0,
        ack_records: 0,
        seq_range: None,
        bad: Vec::new(),
    };
    let seg = match Segment::open(path, false, None) {
        Ok(s) => s,
        Err(e) => {
            r.header_error = Some(e.to_string());
            return r;
        }
    };
    r.first_seq = seg.header.first_seq;
    r.size = seg.len();
    let data = &seg.data;
    let limit = data.len();
    let mut off = SEGMENT_HEADER_LEN;
    let mut last_seq = 0;
    loop {
        match RecordHeader::probe(data, off as usize, limit) {
            Probe::Empty => break,
            Probe::Valid(h) => {
                if h.kind == KIND_ACK {
                    r.ack_records += 1;
                } else {
                    r.put_records += 1;
                    r.events += h.count as u64;
                    let end = h.seq + h.count as u64;
                    r.seq_range = Some(match r.seq_range {
                        None => (h.seq, end),
                        Some((a, _)) => (a, end),
                    });
                    last_seq = end;
                }
                off += record_span(h.payload_len as usize);
                r.used = off;
            }
            Probe::Invalid(reason) => {
                r.bad.push(BadRecord {
                    offset: off,
                    reason: reason.to_string(),
                });
                match find_next_valid(data, off + RECORD_ALIGN, limit as u64, last_seq) {
                    Some(next) => off = next,
                    None => break,
                }
            }
        }
    }
    r
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ledger {}", self.ledger_path.display())?;
        match &self.checkpoint {
            Some(c) => {
                writeln!(
                    f,
                    "  checkpoint generation {}: write position {}, next seq {}, ack low-water {} at {}, {} out-of-order ranges",
                    c.generation, c.write, c.next_seq, c.ack_lo, c.ack_pos, c.ranges.len()
                )?;
                writeln!(
                    f,
                    "  events held at the checkpoint: {}",
                    self.checkpointed_events().unwrap_or(0)
                )?;
            }
            None => writeln!(f, "  no valid checkpoint (open would replay every segment)")?,
        }
        for p in &self.ledger_problems {
            writeln!(f, "  PROBLEM: {p}")?;
        }
        writeln!(f, "{} segment(s)", self.segments.len())?;
        for s in &self.segments {
            if let Some(e) = &s.header_error {
                writeln!(f, "  {} id {}: BAD HEADER: {e}", s.path.display(), s.id)?;
                continue;
            }
            let seqs = s
                .seq_range
                .map(|(a, b)| format!("seq {a}..{b}"))
                .unwrap_or_else(|| "no events".into());
            writeln!(
                f,
                "  {} id {}: first seq {}, {} of {} bytes used, {} put records ({} events, {seqs}), {} ack records, CRC {}",
                s.path.display(),
                s.id,
                s.first_seq,
                s.used,
                s.size,
                s.put_records,
                s.events,
                s.ack_records,
                if s.bad.is_empty() { "ok".to_string() } else { format!("{} BAD", s.bad.len()) }
            )?;
            for b in &s.bad {
                writeln!(f, "    BAD RECORD at offset {}: {}", b.offset, b.reason)?;
            }
        }
        writeln!(
            f,
            "{}",
            if self.is_clean() {
                "all checks passed"
            } else {
                "PROBLEMS FOUND"
            }
        )
    }
}
