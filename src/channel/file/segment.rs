//! One preallocated segment file: created with its header, written with positioned writes,
//! read through a shared read-only memory map.
//!
//! SIGBUS safety: a segment is mapped only once its file has its full preallocated length, and a
//! mapped file is never shortened. The one place that discards bytes ([`Segment::zero_from`],
//! used by recovery before any reader exists) punches a hole with `FALLOC_FL_KEEP_SIZE`, so the
//! length never changes under the map.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use memmap2::Mmap;

use crate::event::Event;

use super::fault::{self, Faults, FileOp};
use super::format::{HeaderError, SegmentHeader, SEGMENT_HEADER_LEN};

/// File name prefix and suffix of segments: `log-00000000000000000001.sgseg`.
const PREFIX: &str = "log-";
const SUFFIX: &str = ".sgseg";

/// The path of segment `id` in `dir`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{id:020}{SUFFIX}"))
}

/// Segment ids found in `dir`, ascending.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// fsyncs a directory so file creations and deletions in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reserves `len` bytes of disk for `file` so later writes inside cannot hit ENOSPC.
/// Falls back to a sparse `set_len` where the filesystem cannot preallocate.
pub fn preallocate(file: &File, len: u64) -> io::Result<()> {
    use rustix::fs::{fallocate, FallocateFlags};
    use rustix::io::Errno;
    match fallocate(file, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => {
            if file.metadata()?.len() < len {
                file.set_len(len)?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// An open segment.
#[derive(Debug)]
pub struct Segment {
    /// Decoded header.
    pub header: SegmentHeader,
    /// Where it lives.
    pub path: PathBuf,
    /// Opened read-write; appends use positioned writes on it.
    pub file: File,
    /// The whole file, mapped read-only and shared (owner of every event slice handed out).
    pub data: Bytes,
    /// Alive while the mapping is: held by the mapping's owner, which lives as long as `data`
    /// or any slice of it.
    mapped: Weak<()>,
}

impl Segment {
    /// Segment id.
    #[inline]
    pub fn id(&self) -> u64 {
        self.header.id
    }

    /// Tells the kernel this process no longer needs the mapped pages wholly inside
    /// `[from, to)` (`madvise(MADV_DONTNEED)`), so they stop counting in its resident set.
    /// Only a hint about residency: the mapping is read-only and shared, so a later access to
    /// those bytes (an event slice still held somewhere, a re-read after a rollback) faults the
    /// same file contents back in from the page cache. Nothing is written and the file is not
    /// touched. Returns the offset up to which pages were dropped (`to` rounded down to a page;
    /// `from` rounded up), or `from` when the range holds no whole page.
    pub fn drop_pages(&self, from: u64, to: u64) -> u64 {
        self.map_range().drop_pages(from, to)
    }

    /// Where this segment's mapping lies in memory (see [`MapRange`]).
    #[inline]
    pub fn map_range(&self) -> MapRange {
        MapRange {
            base: self.data.as_ptr() as usize,
            len: self.data.len(),
        }
    }

    /// The file's length (= its preallocated size).
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.data.len() as u64
    }

    /// Creates segment `id` in `dir`: header, preallocation, fsync of file and directory.
    pub fn create(dir: &Path, id: u64, first_seq: u64, size: u64) -> io::Result<Segment> {
        let path = segment_path(dir, id);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let header = SegmentHeader {
            id,
            first_seq,
            size,
        };
        let res = (|| {
            preallocate(&file, size)?;
            file.write_all_at(&header.encode(), 0)?;
            file.sync_all()?;
            sync_dir(dir)
        })();
        if let Err(e) = res {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        let (data, mapped) = map(&file)?;
        Ok(Segment {
            header,
            path,
            file,
            data,
            mapped,
        })
    }

    /// Wraps a segment file that already holds `header` and its full preallocated length,
    /// durably (a reused spare, see `spare.rs`): maps it.
    pub fn from_prepared(header: SegmentHeader, path: PathBuf, file: File) -> io::Result<Segment> {
        let (data, mapped) = map(&file)?;
        Ok(Segment {
            header,
            path,
            file,
            data,
            mapped,
        })
    }

    /// Gives up this handle's mapping. What remains can tell whether event slices elsewhere
    /// still keep the mapping alive (then the file's contents must not be touched).
    pub fn unmap(self) -> Unmapped {
        let Segment {
            file, data, mapped, ..
        } = self;
        drop(data);
        Unmapped { file, mapped }
    }

    /// Opens an existing segment, checking its header. A file shorter than its recorded size
    /// (cut by a crash or by hand) is extended with zeros before it is mapped. Every failure
    /// says which file and why; [`SegmentError::Unwritten`] alone means the file provably holds
    /// nothing (see its docs). `faults` injects failures (tests; `None` in production).
    pub fn open(
        path: &Path,
        writable: bool,
        faults: Option<&Faults>,
    ) -> Result<Segment, SegmentError> {
        let io_err = |op, source| SegmentError::Io {
            op,
            path: path.to_path_buf(),
            source,
        };
        let file = fault::check(faults, FileOp::Open, path)
            .and_then(|()| OpenOptions::new().read(true).write(writable).open(path))
            .map_err(|e| io_err(FileOp::Open, e))?;
        let mut hb = [0u8; SEGMENT_HEADER_LEN as usize];
        let got = fault::check(faults, FileOp::Read, path)
            .and_then(|()| read_up_to(&file, &mut hb, 0))
            .map_err(|e| io_err(FileOp::Read, e))?;
        let header = match SegmentHeader::decode(&hb[..got]) {
            Ok(h) => h,
            Err(HeaderError::Absent { .. }) => {
                let len = file.metadata().map_err(|e| io_err(FileOp::Stat, e))?.len();
                return Err(match first_written_byte(&file, len, faults, path)? {
                    None => SegmentError::Unwritten {
                        path: path.to_path_buf(),
                        len,
                    },
                    Some(at) => SegmentError::HeaderWiped {
                        path: path.to_path_buf(),
                        at,
                    },
                });
            }
            Err(source) => {
                return Err(SegmentError::BadHeader {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let len = fault::check(faults, FileOp::Stat, path)
            .and_then(|()| file.metadata())
            .map_err(|e| io_err(FileOp::Stat, e))?
            .len();
        if len < header.size {
            if !writable {
                return Err(SegmentError::Truncated {
                    path: path.to_path_buf(),
                    len,
                    size: header.size,
                });
            }
            tracing::warn!(
                file = %path.display(),
                len,
                size = header.size,
                "segment file is shorter than its header says; extending it with zeros"
            );
            fault::check(faults, FileOp::Extend, path)
                .and_then(|()| file.set_len(header.size))
                .map_err(|e| io_err(FileOp::Extend, e))?;
        }
        let (data, mapped) = fault::check(faults, FileOp::Map, path)
            .and_then(|()| map(&file))
            .map_err(|e| io_err(FileOp::Map, e))?;
        Ok(Segment {
            header,
            path: path.to_path_buf(),
            file,
            data,
            mapped,
        })
    }

    /// Makes every byte from `off` to the end read as zero again (recovery's tail truncation),
    /// without changing the file length, then re-reserves the space and syncs.
    pub fn zero_from(&self, off: u64) -> io::Result<()> {
        let len = self.len();
        if off >= len {
            return Ok(());
        }
        use rustix::fs::FallocateFlags as F;
        let punched =
            rustix::fs::fallocate(&self.file, F::PUNCH_HOLE | F::KEEP_SIZE, off, len - off);
        if punched.is_err() {
            // No hole punching here: overwrite with zeros instead.
            let zeros = vec![0u8; 1 << 16];
            let mut at = off;
            while at < len {
                let n = ((len - at) as usize).min(zeros.len());
                self.file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
        } else {
            preallocate(&self.file, len)?;
        }
        self.file.sync_data()
    }
}

/// The address range of one segment's read-only shared file mapping, for dropping its pages
/// from the resident set. Holds no reference: whoever drops pages through it must know the
/// mapping is alive (the take that recorded it holds event slices of it; see
/// [`drop_event_pages`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRange {
    base: usize,
    len: usize,
}

impl MapRange {
    /// True when the byte at `addr` lies in the mapping.
    #[inline]
    pub fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base) < self.len
    }

    /// `madvise(MADV_DONTNEED)` on the whole pages inside `[from, to)` (offsets in the
    /// mapping; see [`Segment::drop_pages`]). The mapping must be alive. Returns the offset up
    /// to which pages were dropped, or `from` when the range holds no whole page.
    pub fn drop_pages(&self, from: u64, to: u64) -> u64 {
        const PAGE: u64 = 4096;
        let to = to.min(self.len as u64);
        // The mapping starts on a page boundary (mmap), so offsets and addresses align alike;
        // check anyway, and on larger pages (or an unaligned base) simply do nothing.
        if !self.base.is_multiple_of(PAGE as usize) {
            return from;
        }
        let lo = from.div_ceil(PAGE) * PAGE;
        let hi = to / PAGE * PAGE;
        if hi <= lo {
            return from;
        }
        // SAFETY: `[lo, hi)` lies inside a live read-only shared file mapping (hi <= len,
        // caller's contract that it is alive), page-aligned. MADV_DONTNEED on a shared file
        // mapping discards only this process's page-table entries; the contents stay in the
        // page cache/file and are faulted back unchanged on the next access, so every slice of
        // the mapping stays valid and reads the same bytes.
        let rc = unsafe {
            libc::madvise(
                (self.base + lo as usize) as *mut libc::c_void,
                (hi - lo) as usize,
                libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            return from;
        }
        hi
    }
}

/// Drops from the resident set the mapped pages wholly inside the bytes of `events`: each run
/// of consecutive events lying in one of `maps` gives one span (from its lowest byte to its
/// highest), and the whole pages inside that span are dropped ([`MapRange::drop_pages`]).
/// Events in none of `maps` are left alone. Returns the bytes dropped.
///
/// Every mapping in `maps` must be alive for the duration of the call; a take guarantees it by
/// recording only mappings that hold at least one of its events, whose slices keep them mapped.
/// Behaviour never changes (see [`Segment::drop_pages`]): a dropped page read later faults the
/// same bytes back in.
pub fn drop_event_pages(maps: &[MapRange], events: &[Event]) -> u64 {
    let mut dropped = 0;
    let mut i = 0;
    while i < events.len() {
        let at = events[i].encoded().as_ptr() as usize;
        let Some(m) = maps.iter().find(|m| m.contains(at)) else {
            i += 1;
            continue;
        };
        let (mut lo, mut hi) = (at, at + events[i].encoded_len());
        i += 1;
        while i < events.len() {
            let e = events[i].encoded();
            let a = e.as_ptr() as usize;
            if !m.contains(a) {
                break;
            }
            lo = lo.min(a);
            hi = hi.max(a + e.len());
            i += 1;
        }
        let (from, to) = ((lo - m.base) as u64, (hi - m.base) as u64);
        let got = m.drop_pages(from, to);
        if got > from {
            dropped += got - from.div_ceil(4096) * 4096;
        }
    }
    dropped
}

/// A segment file whose own mapping handle is gone (see [`Segment::unmap`]).
#[derive(Debug)]
pub struct Unmapped {
    /// Opened read-write.
    pub file: File,
    mapped: Weak<()>,
}

impl Unmapped {
    /// True while event slices of the old mapping are still alive somewhere.
    pub fn still_mapped(&self) -> bool {
        self.mapped.strong_count() > 0
    }
}

/// Owns a segment's mapping for `Bytes`; its token tells when the last slice is gone.
struct MapOwner {
    map: Mmap,
    _token: Arc<()>,
}

impl AsRef<[u8]> for MapOwner {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

fn map(file: &File) -> io::Result<(Bytes, Weak<()>)> {
    // SAFETY: the file is never shortened while mapped (see the module docs), and the map is
    // read-only; bytes being appended beyond what readers look at is fine. A spare is only
    // zeroed once no slice of its old mapping is left (`Segment::unmap`).
    let map = unsafe { Mmap::map(file)? };
    let token = Arc::new(());
    let mapped = Arc::downgrade(&token);
    Ok((Bytes::from_owner(MapOwner { map, _token: token }), mapped))
}

/// Why a segment could not be opened. Only [`SegmentError::Unwritten`] says anything about
/// what the file holds (nothing); every other variant leaves that unknown.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// An operation on the file failed (too many open files, permissions, out of memory for the
    /// map, an I/O error...): the contents are unknown, not necessarily damaged.
    #[error("{op} {path}: {source}")]
    Io {
        op: FileOp,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Every byte of the file is zero (or it is empty): no header was ever written, so nothing
    /// else was either. This is what a segment creation cut short by a crash leaves.
    #[error("{path}: no header and nothing written ({len} bytes, all zero)")]
    Unwritten { path: PathBuf, len: u64 },
    /// The header bytes are zero but the file holds data at `at`: the header was destroyed
    /// after the segment was written (never the result of a crash during creation).
    #[error("{path}: the header is all zeros but the file holds data (first non-zero byte at offset {at})")]
    HeaderWiped { path: PathBuf, at: u64 },
    /// The header is present but invalid.
    #[error("{path}: bad segment header: {source}")]
    BadHeader {
        path: PathBuf,
        #[source]
        source: HeaderError,
    },
    /// Shorter than its header says (only when opened read-only; otherwise it is extended).
    #[error("{path}: file is {len} bytes, its header says {size} (truncated)")]
    Truncated { path: PathBuf, len: u64, size: u64 },
}

impl SegmentError {
    /// The file concerned.
    pub fn path(&self) -> &Path {
        match self {
            SegmentError::Io { path, .. }
            | SegmentError::Unwritten { path, .. }
            | SegmentError::HeaderWiped { path, .. }
            | SegmentError::BadHeader { path, .. }
            | SegmentError::Truncated { path, .. } => path,
        }
    }
}

/// The offset of the first non-zero byte of `file` (`len` bytes long), or `None` when every byte
/// reads as zero. Reads in 1 MiB steps; only used for a file whose header region is zero.
fn first_written_byte(
    file: &File,
    len: u64,
    faults: Option<&Faults>,
    path: &Path,
) -> Result<Option<u64>, SegmentError> {
    let mut buf = vec![0u8; (1 << 20).min(len as usize)];
    let mut at = 0u64;
    while at < len {
        let want = ((len - at) as usize).min(buf.len());
        let got = fault::check(faults, FileOp::Read, path)
            .and_then(|()| read_up_to(file, &mut buf[..want], at))
            .map_err(|source| SegmentError::Io {
                op: FileOp::Read,
                path: path.to_path_buf(),
                source,
            })?;
        if let Some(i) = buf[..got].iter().position(|&b| b != 0) {
            return Ok(Some(at + i as u64));
        }
        if got < want {
            break; // shrank while we read: what is gone was not data we could lose
        }
        at += got as u64;
    }
    Ok(None)
}

fn read_up_to(file: &File, buf: &mut [u8], base: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], base + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_pages_read_back_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let seg = Segment::create(dir.path(), 1, 0, 1 << 20).unwrap();
        let pattern: Vec<u8> = (0..600_000u32).map(|i| (i * 7 + 3) as u8).collect();
        seg.file.write_all_at(&pattern, 4096).unwrap();
        let slice = seg.data.slice(4096..4096 + pattern.len());
        assert_eq!(&slice[..], &pattern[..]); // faults the pages in
                                              // No whole page inside the range: nothing dropped, `from` comes back.
        assert_eq!(seg.drop_pages(100, 4000), 100);
        assert_eq!(seg.drop_pages(5000, 8191), 5000);
        // From rounded up, to rounded down to a page.
        assert_eq!(seg.drop_pages(100, 600_000), 600_000 / 4096 * 4096);
        // Past the end is clamped to the file.
        assert_eq!(seg.drop_pages(0, u64::MAX), 1 << 20);
        // Slices taken before the drop read the same file contents afterwards.
        assert_eq!(&slice[..], &pattern[..]);
        assert_eq!(&seg.data[4096..4096 + pattern.len()], &pattern[..]);
    }
}
