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

use super::format::{SegmentHeader, SEGMENT_HEADER_LEN};

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

    /// Turns a spare file (see [`super::spare`]) into segment `id`: header, sync (which also
    /// makes the spare's zeroing durable), then the rename into the log and a directory sync.
    /// On failure the spare is handed back when it is still intact.
    pub fn from_spare(
        spare: super::spare::SpareFile,
        dir: &Path,
        id: u64,
        first_seq: u64,
        size: u64,
    ) -> Result<Segment, (io::Error, Option<super::spare::SpareFile>)> {
        let path = segment_path(dir, id);
        if path.exists() {
            let e = io::Error::new(io::ErrorKind::AlreadyExists, "segment file already exists");
            return Err((e, Some(spare)));
        }
        let header = SegmentHeader {
            id,
            first_seq,
            size,
        };
        let prepared = (|| {
            spare.file.write_all_at(&header.encode(), 0)?;
            spare.file.sync_all()
        })();
        if let Err(e) = prepared {
            // The header may be half written: this spare is no longer known to be zero.
            let _ = std::fs::remove_file(&spare.path);
            return Err((e, None));
        }
        if let Err(e) = std::fs::rename(&spare.path, &path) {
            let _ = std::fs::remove_file(&spare.path);
            return Err((e, None));
        }
        let file = spare.file;
        let res = sync_dir(dir).and_then(|()| map(&file));
        match res {
            Ok((data, mapped)) => Ok(Segment {
                header,
                path,
                file,
                data,
                mapped,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err((e, None))
            }
        }
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
    /// (cut by a crash or by hand) is extended with zeros before it is mapped.
    pub fn open(path: &Path, writable: bool) -> Result<Segment, String> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|e| format!("cannot open: {e}"))?;
        let mut hb = [0u8; SEGMENT_HEADER_LEN as usize];
        let got = read_up_to(&file, &mut hb).map_err(|e| format!("cannot read header: {e}"))?;
        let header = SegmentHeader::decode(&hb[..got])?;
        let len = file
            .metadata()
            .map_err(|e| format!("cannot stat: {e}"))?
            .len();
        if len < header.size {
            if !writable {
                return Err(format!(
                    "file is {len} bytes, its header says {} (truncated)",
                    header.size
                ));
            }
            tracing::warn!(
                file = %path.display(),
                len,
                size = header.size,
                "segment file is shorter than its header says; extending it with zeros"
            );
            file.set_len(header.size)
                .map_err(|e| format!("cannot extend: {e}"))?;
        }
        let (data, mapped) = map(&file).map_err(|e| format!("cannot map: {e}"))?;
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

fn read_up_to(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}
