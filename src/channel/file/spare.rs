//! Spare segment files: consumed segments kept for reuse instead of deleted.
//!
//! Deleting a 128 MiB segment is not cheap. On ext4 the freed blocks are returned in a journal
//! transaction, and on a filesystem mounted with `discard` (common on cloud VMs, including this
//! project's build machine) they are also trimmed. Every `fdatasync` that needs the journal in the
//! meantime waits: measured here, a segment deletion stalled every commit for 170-230 ms. So a
//! consumed segment is *retired* instead:
//!
//! 1. it is renamed to `spare-<n>.sgseg` at once (recovery only ever looks at `log-*.sgseg`;
//!    readers still mapping it are not disturbed), and the directory is synced, so after a crash
//!    the file is either still a consumed `log-*` segment (which recovery deletes as before) or a
//!    spare (which open zeroes again), never something in between;
//! 2. its whole length is turned back into zeros with `fallocate(FALLOC_FL_ZERO_RANGE)`: a
//!    metadata change that keeps the blocks allocated (no free, no trim) and makes every byte
//!    read as zero, which the log format reads as "nothing written here yet";
//! 3. when the writer needs a new segment it takes a spare, writes the new header, syncs the
//!    file (making the zeroing durable too) and only then renames it to `log-<id>.sgseg` and
//!    syncs the directory. A `log-*` file is therefore always a complete, zeroed segment.
//!
//! A segment's file is touched only when nothing can read it any more: nobody else holds its
//! `Arc`, and no event slice still points into its mapping (the mapping's owner carries a
//! liveness token; see [`Segment::unmap`]). A sink usually drops the events of a batch just
//! after committing it, so a spare still in use is retried on every maintenance tick
//! ([`Spares::tick`]) for up to [`WAIT_TICKS`] ticks, then simply unlinked (which is safe while
//! mapped: the file lives until its last mapping goes). When the pool already holds
//! its limit (see [`spare_limit`]), or the filesystem cannot zero a range, a consumed segment is
//! deleted — in
//! small steps (see [`remove_gently`]). Spares found at open are zeroed again and adopted, or
//! deleted if they do not fit.
//!
//! Spares keep their disk space reserved beyond the backlog — at most [`MAX_SPARE_BYTES`]
//! (two default 128 MiB segments; none at all for segments larger than that, such as Flume's
//! 2 GB `maxFileSize` default copied into a configuration: those are always deleted gently) —
//! in exchange for never paying for allocation or deletion on the commit path.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::format::SegmentHeader;
use super::segment::{segment_path, sync_dir, Segment, Unmapped};

/// Most spare files kept.
pub const MAX_SPARES: usize = 2;

/// Most disk space spare files may hold together.
pub const MAX_SPARE_BYTES: u64 = 256 << 20;

/// How many spares a channel with `segment_size` segments keeps.
pub fn spare_limit(segment_size: u64) -> usize {
    (MAX_SPARE_BYTES / segment_size.max(1)).min(MAX_SPARES as u64) as usize
}

/// Maintenance ticks (200 ms each) a consumed segment still in use is waited for before it is
/// unlinked instead of reused.
pub const WAIT_TICKS: u32 = 25;

/// Bytes freed per step when a spare is deleted (see [`remove_gently`]).
const SHRINK_STEP: u64 = 4 << 20;

const PREFIX: &str = "spare-";
const SUFFIX: &str = ".sgseg";

/// A zeroed, renamed-away segment file waiting to become a new segment.
#[derive(Debug)]
pub struct SpareFile {
    /// Where it lives (`spare-<n>.sgseg`).
    pub path: PathBuf,
    /// Opened read-write.
    pub file: File,
}

impl SpareFile {
    /// Turns this spare into segment `id` of `dir`: header, sync (which also makes the spare's
    /// zeroing durable), then the rename into the log and a directory sync. On failure the
    /// spare is handed back when it is still intact.
    pub fn into_segment(
        self,
        dir: &Path,
        id: u64,
        first_seq: u64,
        size: u64,
    ) -> Result<Segment, (io::Error, Option<SpareFile>)> {
        let path = segment_path(dir, id);
        if path.exists() {
            let e = io::Error::new(io::ErrorKind::AlreadyExists, "segment file already exists");
            return Err((e, Some(self)));
        }
        let header = SegmentHeader {
            id,
            first_seq,
            size,
        };
        let prepared = (|| {
            self.file.write_all_at(&header.encode(), 0)?;
            self.file.sync_all()
        })();
        if let Err(e) = prepared {
            // The header may be half written: this spare is no longer known to be zero.
            let _ = std::fs::remove_file(&self.path);
            return Err((e, None));
        }
        if let Err(e) = std::fs::rename(&self.path, &path) {
            let _ = std::fs::remove_file(&self.path);
            return Err((e, None));
        }
        let res =
            sync_dir(dir).and_then(|()| Segment::from_prepared(header, path.clone(), self.file));
        res.map_err(|e| {
            let _ = std::fs::remove_file(&path);
            (e, None)
        })
    }
}

/// The pool of spare segment files of one data directory.
#[derive(Debug)]
pub struct Spares {
    dir: PathBuf,
    size: u64,
    free: Mutex<Vec<SpareFile>>,
    /// Consumed segments (already renamed to spare names) still in use, with the ticks waited.
    waiting: Mutex<Vec<(Waiting, PathBuf, u32)>>,
    /// Held while retiring, so concurrent callers cannot overfill the pool.
    busy: Mutex<()>,
    next_name: AtomicU64,
    /// Spares kept at most ([`spare_limit`]).
    max: usize,
    /// Cleared when the filesystem cannot zero a range; from then on segments are deleted.
    enabled: AtomicBool,
}

impl Spares {
    /// Opens the pool for `dir`, adopting the spares a previous run left (zeroed again) and
    /// deleting those that do not fit (wrong size, too many).
    pub fn open(dir: &Path, segment_size: u64) -> Spares {
        let spares = Spares {
            dir: dir.to_path_buf(),
            size: segment_size,
            free: Mutex::new(Vec::new()),
            waiting: Mutex::new(Vec::new()),
            busy: Mutex::new(()),
            next_name: AtomicU64::new(0),
            max: spare_limit(segment_size),
            enabled: AtomicBool::new(true),
        };
        let mut found = list(dir);
        found.sort();
        let mut pool = Vec::new();
        for (n, path) in found {
            spares.next_name.fetch_max(n + 1, Ordering::Relaxed);
            match (pool.len() < spares.max).then(|| spares.adopt(&path)) {
                Some(Ok(spare)) => pool.push(spare),
                _ => remove(&path, "a spare segment that does not fit"),
            }
        }
        *lock(&spares.free) = pool;
        spares
    }

    /// Opens a spare a previous run left and zeroes it again (its state is unknown).
    fn adopt(&self, path: &Path) -> io::Result<SpareFile> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        if file.metadata()?.len() != self.size {
            return Err(io::Error::other("size differs from maxFileSize"));
        }
        self.zero(&file)?;
        Ok(SpareFile {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Spare files ready for use.
    pub fn ready(&self) -> usize {
        lock(&self.free).len()
    }

    /// Takes a spare for a new segment, if one is ready.
    pub fn take(&self) -> Option<SpareFile> {
        lock(&self.free).pop()
    }

    /// Puts a spare back (a segment creation from it failed before the rename).
    pub fn give_back(&self, spare: SpareFile) {
        lock(&self.free).push(spare);
    }

    /// Retires consumed segments (already removed from the segment map, and covered by a
    /// durable checkpoint): moves them out of the log at once, then keeps what it can as spares
    /// and deletes the rest, gently. Those still in use wait for [`Spares::tick`]. See the
    /// module docs for the order of operations.
    pub fn retire(&self, dead: Vec<Arc<Segment>>) {
        if dead.is_empty() {
            // Still a chance to release the ones waiting.
            return self.tick();
        }
        let _busy = lock(&self.busy);
        let mut moved = Vec::new();
        for seg in dead {
            let n = self.next_name.fetch_add(1, Ordering::Relaxed);
            let spare_path = self.dir.join(format!("{PREFIX}{n:020}{SUFFIX}"));
            // Renaming does not disturb anyone still reading through the mapping.
            match std::fs::rename(&seg.path, &spare_path) {
                Ok(()) => moved.push((Waiting::Shared(seg), spare_path, 0)),
                Err(e) => {
                    tracing::warn!(file = %seg.path.display(), error = %e, "could not move a consumed segment out of the log");
                    remove(&seg.path, "a consumed segment");
                }
            }
        }
        // The renames must be durable before any spare is zeroed or shrunk.
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not sync the data directory after retiring segments");
        }
        lock(&self.waiting).extend(moved);
        self.release_waiting();
    }

    /// True when consumed segments are waiting to be released by their last readers.
    pub fn has_waiting(&self) -> bool {
        !lock(&self.waiting).is_empty()
    }

    /// Retries the consumed segments that were still in use; gives up on (unlinks) those that
    /// have waited [`WAIT_TICKS`] ticks.
    pub fn tick(&self) {
        let _busy = lock(&self.busy);
        self.release_waiting();
    }

    fn release_waiting(&self) {
        let pending = std::mem::take(&mut *lock(&self.waiting));
        let mut free = Vec::new();
        let mut still = Vec::new();
        for (w, path, ticks) in pending {
            match w.release() {
                Ok(file) => free.push(SpareFile { path, file }),
                Err(_) if ticks + 1 >= WAIT_TICKS => {
                    remove(&path, "a consumed segment that stayed in use");
                }
                Err(w) => still.push((w, path, ticks + 1)),
            }
        }
        lock(&self.waiting).extend(still);
        let room = self.max.saturating_sub(self.ready());
        let mut shrink = Vec::new();
        for (i, spare) in free.into_iter().enumerate() {
            let fits = spare.file.metadata().is_ok_and(|m| m.len() == self.size);
            if i >= room || !fits || !self.enabled.load(Ordering::Relaxed) {
                shrink.push(spare);
                continue;
            }
            match self.zero(&spare.file) {
                Ok(()) => self.give_back(spare),
                Err(e) => {
                    tracing::info!(error = %e, "the filesystem cannot zero a range; consumed segments will be deleted instead of reused");
                    self.enabled.store(false, Ordering::Relaxed);
                    shrink.push(spare);
                }
            }
        }
        for spare in shrink {
            remove_gently(spare);
        }
    }

    /// Makes every byte of `file` read as zero again while keeping its blocks allocated.
    fn zero(&self, file: &File) -> io::Result<()> {
        rustix::fs::fallocate(file, rustix::fs::FallocateFlags::ZERO_RANGE, 0, self.size)?;
        // A cheap guard against a filesystem that accepted the call without zeroing.
        let mut probe = [0u8; 64];
        file.read_exact_at(&mut probe, 0)?;
        if probe.iter().any(|&b| b != 0) {
            return Err(io::Error::other("FALLOC_FL_ZERO_RANGE left data behind"));
        }
        Ok(())
    }
}

/// A consumed segment on its way out.
#[derive(Debug)]
enum Waiting {
    /// Someone else (a reader) may still hold the `Arc`.
    Shared(Arc<Segment>),
    /// Our mapping handle is gone; event slices may still hold the mapping.
    Mapped(Unmapped),
}

impl Waiting {
    /// The file, once nothing can read it any more.
    fn release(self) -> Result<File, Waiting> {
        let u = match self {
            Waiting::Shared(seg) => match Arc::try_unwrap(seg) {
                Ok(seg) => seg.unmap(),
                Err(seg) => return Err(Waiting::Shared(seg)),
            },
            Waiting::Mapped(u) => u,
        };
        if u.still_mapped() {
            Err(Waiting::Mapped(u))
        } else {
            Ok(u.file)
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poison: spares hold no events; a panic can at worst leak a spare file, which the next
    // open adopts or deletes.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `spare-*.sgseg` files in `dir`, with their numbers.
fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let n = name
                .to_str()?
                .strip_prefix(PREFIX)?
                .strip_suffix(SUFFIX)?
                .parse()
                .ok()?;
            Some((n, e.path()))
        })
        .collect()
}

/// Deletes a spare without one big journal transaction: freeing a whole segment at once (and,
/// under `discard`, trimming it) stalled every concurrent `fdatasync` for ~165 ms here; shrinking
/// it [`SHRINK_STEP`] at a time, each step synced, bounds that stall to ~7 ms (measured with a
/// 4 KiB append + fdatasync loop running beside it).
fn remove_gently(spare: SpareFile) {
    let mut len = spare.file.metadata().map(|m| m.len()).unwrap_or(0);
    while len > 0 {
        len = len.saturating_sub(SHRINK_STEP);
        if spare
            .file
            .set_len(len)
            .and_then(|()| spare.file.sync_data())
            .is_err()
        {
            break;
        }
    }
    drop(spare.file);
    remove(&spare.path, "a spare segment");
}

fn remove(path: &Path, what: &str) {
    tracing::debug!(file = %path.display(), "deleting {what}");
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(file = %path.display(), error = %e, "could not delete {what}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 1 << 20;

    fn segment(dir: &Path, id: u64) -> Arc<Segment> {
        let seg = Segment::create(dir, id, id * 100, SIZE).unwrap();
        seg.file.write_all_at(&[0xAB; 4096], 8192).unwrap();
        Arc::new(seg)
    }

    /// Whether `dir`'s filesystem can zero a range (tmpfs cannot: then segments are deleted).
    fn zeroing_works(dir: &Path) -> bool {
        let f = File::create(dir.join("probe")).unwrap();
        f.set_len(SIZE).unwrap();
        let ok = rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::ZERO_RANGE, 0, 4096).is_ok();
        std::fs::remove_file(dir.join("probe")).unwrap();
        ok
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_consumed_segment_becomes_a_zeroed_spare_and_then_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::open(dir.path(), SIZE);
        spares.retire(vec![segment(dir.path(), 1)]);
        if !zeroing_works(dir.path()) {
            // tmpfs and the like: the fallback, tested everywhere by
            // `without_zeroing_consumed_segments_are_deleted`.
            assert!(names(dir.path()).is_empty(), "deleted, not kept");
            assert_eq!(spares.ready(), 0);
            return;
        }
        assert_eq!(names(dir.path()), vec!["spare-00000000000000000000.sgseg"]);
        assert_eq!(spares.ready(), 1);

        let spare = spares.take().unwrap();
        let mut all = vec![0u8; SIZE as usize];
        spare.file.read_exact_at(&mut all, 0).unwrap();
        assert!(all.iter().all(|&b| b == 0), "a spare reads as zeros");
        assert_eq!(spare.file.metadata().unwrap().len(), SIZE, "space kept");

        let seg = spare.into_segment(dir.path(), 7, 700, SIZE).unwrap();
        assert_eq!(names(dir.path()), vec!["log-00000000000000000007.sgseg"]);
        drop(seg);
        let path = segment_path(dir.path(), 7);
        let reopened = Segment::open(&path, false, None).unwrap();
        assert_eq!((reopened.id(), reopened.header.first_seq), (7, 700));
        assert!(reopened.data[64..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_segment_still_mapped_waits_for_its_slices_then_becomes_a_spare() {
        let dir = tempfile::tempdir().unwrap();
        let zeroing = zeroing_works(dir.path());
        let spares = Spares::open(dir.path(), SIZE);
        let seg = segment(dir.path(), 1);
        let slice = seg.data.slice(8192..8192 + 4096);
        spares.retire(vec![seg]);
        assert!(spares.has_waiting());
        assert_eq!(
            names(dir.path()),
            vec!["spare-00000000000000000000.sgseg"],
            "out of the log at once"
        );
        spares.tick();
        assert!(slice.iter().all(|&b| b == 0xAB), "the held slice is intact");
        drop(slice);
        spares.tick();
        assert!(!spares.has_waiting());
        if zeroing {
            assert_eq!(spares.ready(), 1);
            assert_eq!(names(dir.path()), vec!["spare-00000000000000000000.sgseg"]);
        } else {
            assert_eq!(spares.ready(), 0);
            assert!(names(dir.path()).is_empty(), "deleted once released");
        }
    }

    #[test]
    fn a_segment_held_too_long_is_unlinked_and_its_readers_keep_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::open(dir.path(), SIZE);
        let seg = segment(dir.path(), 1);
        let reader = seg.clone();
        let slice = seg.data.slice(8192..8192 + 4096);
        spares.retire(vec![seg]);
        // Retiring made the first attempt; the last of WAIT_TICKS gives up.
        for _ in 1..WAIT_TICKS {
            assert_eq!(names(dir.path()).len(), 1, "still waiting");
            spares.tick();
        }
        assert!(!spares.has_waiting());
        assert!(names(dir.path()).is_empty(), "unlinked");
        assert_eq!(spares.ready(), 0);
        assert!(reader.data[8192..8192 + 4096].iter().all(|&b| b == 0xAB));
        assert!(slice.iter().all(|&b| b == 0xAB));
    }

    #[test]
    fn beyond_the_pool_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let kept = if zeroing_works(dir.path()) {
            MAX_SPARES
        } else {
            0
        };
        let spares = Spares::open(dir.path(), SIZE);
        let dead: Vec<_> = (1..=MAX_SPARES as u64 + 2)
            .map(|id| segment(dir.path(), id))
            .collect();
        spares.retire(dead);
        assert_eq!(spares.ready(), kept);
        let left = names(dir.path());
        assert_eq!(left.len(), kept, "{left:?}");
        assert!(left.iter().all(|n| n.starts_with("spare-")));
    }

    #[test]
    fn without_zeroing_consumed_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::open(dir.path(), SIZE);
        // As after a failed FALLOC_FL_ZERO_RANGE: the pool is off for good.
        spares.enabled.store(false, Ordering::Relaxed);
        let held = segment(dir.path(), 2);
        let slice = held.data.slice(8192..8192 + 4096);
        spares.retire(vec![segment(dir.path(), 1), held]);
        assert_eq!(spares.ready(), 0);
        assert_eq!(
            names(dir.path()),
            vec!["spare-00000000000000000001.sgseg"],
            "the free one is deleted at once, the held one waits for its reader"
        );
        assert!(slice.iter().all(|&b| b == 0xAB), "the held slice is intact");
        drop(slice);
        spares.tick();
        assert!(!spares.has_waiting());
        assert_eq!(spares.ready(), 0);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn large_segments_are_never_kept() {
        assert_eq!(spare_limit(128 << 20), 2);
        assert_eq!(spare_limit(64 << 10), MAX_SPARES);
        assert_eq!(spare_limit(200 << 20), 1);
        assert_eq!(spare_limit(2_146_435_071), 0);
        let dir = tempfile::tempdir().unwrap();
        let size = 512 << 20;
        let spares = Spares::open(dir.path(), size);
        let seg = Segment::create(dir.path(), 1, 0, size).unwrap();
        spares.retire(vec![Arc::new(seg)]);
        assert_eq!(spares.ready(), 0);
        assert!(names(dir.path()).is_empty(), "deleted (gently)");
    }

    #[test]
    fn open_adopts_fitting_spares_zeroed_and_deletes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let zeroing = zeroing_works(dir.path());
        let p = |n: u64| dir.path().join(format!("spare-{n:020}.sgseg"));
        for n in 0..3 {
            let f = File::create(p(n)).unwrap();
            f.set_len(SIZE).unwrap();
            f.write_all_at(b"stale record bytes", 4096).unwrap();
        }
        let small = File::create(p(3)).unwrap();
        small.set_len(SIZE / 2).unwrap();
        let spares = Spares::open(dir.path(), SIZE);
        if !zeroing {
            // A spare that cannot be zeroed again is never adopted.
            assert_eq!(spares.ready(), 0);
            assert!(names(dir.path()).is_empty(), "all deleted");
            return;
        }
        assert_eq!(spares.ready(), MAX_SPARES);
        assert_eq!(names(dir.path()).len(), MAX_SPARES);
        while let Some(s) = spares.take() {
            let mut b = [1u8; 32];
            s.file.read_exact_at(&mut b, 4096).unwrap();
            assert_eq!(b, [0u8; 32], "adopted spares are zeroed again");
        }
        // New spares get names after the ones found.
        spares.retire(vec![segment(dir.path(), 9)]);
        assert!(dir.path().join("spare-00000000000000000004.sgseg").exists());
    }
}
