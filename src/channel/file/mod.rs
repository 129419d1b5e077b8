//! The durable file channel (`type = file`): a segmented, checksummed append-only log with a
//! small memory-mapped ledger, group-committed with `fdatasync`, read zero-copy through `mmap`.
//!
//! # Shape
//!
//! One log, in `dataDirs` (only the first directory is used; more produce a warning, since a
//! single sequential log gains nothing from being spread and ordering across directories would
//! need a second index). The log is a run of *segments* `log-<id:020>.sgseg`, each preallocated
//! to `maxFileSize` bytes. Two kinds of records are appended to it:
//!
//! * **PUT** — a put transaction's events, stored as their Avro encoding (`event.encoded()`)
//!   verbatim. A transaction is one record, or several when it crosses a segment boundary; only
//!   the last carries `END_OF_TXN`.
//! * **ACK** — the sequence ranges of a committed take. A take commit is a log append like any
//!   other, so it rides the same group commit and is durable when `commit` returns.
//!
//! Every event has a sequence number (seq), assigned in log order. The channel's contents are
//! "PUT seqs minus ACKed seqs". The ledger (`checkpointDir/ledger`) records, every
//! `checkpointInterval` or every segment's worth of writes, a position in the log together with
//! the state as of that position, so recovery never reads the backlog, only what follows.
//!
//! # On-disk layout (all integers little-endian; format version 1)
//!
//! Segment header, 64 bytes at offset 0:
//!
//! ```text
//!  0  8  magic "SGFCSEG\0"
//!  8  4  format version (1)
//! 12  4  header length (64)
//! 16  8  segment id (= the number in the file name)
//! 24  8  first seq: the seq the first event in this segment gets
//! 32  8  preallocated file size
//! 40 20  zero
//! 60  4  CRC32C of bytes 0..60
//! ```
//!
//! Records follow from offset 64, each starting on a multiple of 8:
//!
//! ```text
//!  0  4  payload length P (bytes after this 24-byte header, padding excluded)
//!  4  4  CRC32C of (payload, then header bytes 8..24)
//!  8  1  kind: 1 = PUT, 2 = ACK
//!  9  1  flags: bit 0 = END_OF_TXN (last record of a put transaction)
//! 10  2  magic "sg"
//! 12  4  count: PUT = events, ACK = ranges
//! 16  8  PUT: seq of the first event; ACK: 0
//! 24  P  payload, then zero padding to a multiple of 8
//!        PUT: count × (u32 length L, L bytes of Avro-encoded AvroFlumeEvent)
//!        ACK: count × (u64 start, u64 end), half-open seq ranges
//! ```
//!
//! Twenty-four zero bytes where a header would be mean "nothing written here yet" (segments are
//! preallocated with zeros). The ledger is 64 KiB: two 32 KiB slots, each
//!
//! ```text
//!  0  8  magic "SGFCLDG\0"      8  4  format version (1)      12  4  n = number of ranges
//! 16  8  generation            24  8  write position: segment  32  8  write position: offset
//! 40  8  next seq              48  8  ack low-water mark (every seq below it is taken)
//! 56  8  ack position: segment 64  8  ack position: offset     72  8  zero
//! 80 16n ranges above the low-water mark whose takes are committed (start, end)
//! 80+16n 4  CRC32C of bytes 0..80+16n
//! ```
//!
//! # Invariants
//!
//! 1. Records are appended only under the log lock, so a put transaction's records are
//!    contiguous and seqs increase in log order with no gaps.
//! 2. Readers never look past the *visible* end: the durable end with `fsyncPerTransaction`
//!    (so nothing is handed out that a crash could take back), the written end without it.
//! 3. A checkpoint names a position at a transaction boundary that was already durable when
//!    the ledger slot was written, together with the exact acknowledgement state as of that
//!    position (ACK appends and their in-memory effect happen under one lock hold).
//! 4. The ack position is at or before the first record holding an unacknowledged event; the
//!    reader restarts there and skips acknowledged seqs.
//! 5. A segment is retired (renamed out of the log, then reused or deleted; see `spare.rs`) only
//!    after a persisted checkpoint has both its write position and its ack position in a later
//!    segment. Hence every event in a deleted segment was taken,
//!    and every ACK record for a live event lies in a live segment — which is why replaying
//!    all live segments (the fallback when the ledger is unreadable) is exact.
//! 6. A mapped file is never shortened; bytes after the recovered end are zeroed at open.
//!
//! # Writes: `pwrite` + `fdatasync`, not stores through the map
//!
//! Appends use positioned writes (`FileExt::write_all_at`) into preallocated space, and
//! durability comes from `fdatasync` of every segment touched since the last sync. Reads go
//! through a read-only shared `mmap` of each segment (Linux has one page cache, so the map sees
//! what `pwrite` wrote). The reasons:
//!
//! * **Errors are returned, not signalled.** A store into a map whose block cannot be allocated
//!   (disk full, thin provisioning) or read back (EIO) raises SIGBUS, which kills the process
//!   with no chance to answer the client FAILED. `pwrite` returns ENOSPC/EIO as an error, which
//!   we turn into [`ChannelError::DiskSpace`]/[`ChannelError::Io`]; the sender retries.
//!   Segments are also preallocated with `fallocate`, so writes inside them cannot run out of
//!   space at all; running out shows up when a new segment is created, before anything is
//!   written.
//! * **Flush ordering is explicit.** With a writable map the kernel may write dirty pages back
//!   in any order and at any time, and `msync` is the only ordering tool. With `pwrite` the
//!   sequence "append records, fdatasync, then publish / write the ledger" is exactly what we
//!   state in invariants 2 and 3.
//! * **SIGBUS on truncated files.** Reading a map beyond the end of a file faults. Segments are
//!   mapped only at their full preallocated length (a short file is extended first), never
//!   shortened while mapped, and recovery's tail truncation punches a hole with
//!   `FALLOC_FL_KEEP_SIZE` (or writes zeros) instead of `ftruncate`.
//! * **Segments are recycled, not deleted.** Freeing a segment's blocks (and trimming them on a
//!   `discard` mount) stalls every concurrent `fdatasync` behind one journal transaction for a
//!   large fraction of a second; `spare.rs` keeps consumed segments, zeroed in place, for the
//!   writer's next rollover.
//! * **Read pages do not stay in the resident set.** Every mapped page a take touches counts in
//!   the process's RSS (as file-backed, `RssFile`) for as long as the mapping lives, i.e. until
//!   the segment is retired, so pages are dropped with `madvise(MADV_DONTNEED)` at three points:
//!   1. after each take commit, the pages of the reader's segment wholly before the first
//!      unacknowledged record (in steps of at least 4 MiB; `ReadState::drop_acked_pages`);
//!   2. during a take, behind the take's own scan (every event is validated, which touches
//!      every page): every 4 MiB of taken bytes, the pages wholly inside the events taken since
//!      the last drop — so a 1,000,000-event take is never resident at once, and a small take
//!      (a sink's) is never touched;
//!   3. on request, [`TakeBatch::release_pages`]: the pages wholly inside a run of the take's
//!      events that the taker has read (the pipeline calls it behind each worker's scan).
//!      The take records the mappings holding its events (`MapRange`) and `madvise`s only
//!      inside them; its events keep those mappings alive until it is committed or rolled back.
//!
//!   On a read-only shared file map `MADV_DONTNEED` only unmaps the pages from this process:
//!   the page cache keeps them, and any event slice read again (by the taker, after a rollback,
//!   or by a second pass over the same batch) faults the same bytes back in, at the cost of a
//!   minor fault per 64 KiB or so. Behaviour never changes; only residency does.
//! * **fsync errors poison.** After a failed `fdatasync` the kernel may have dropped the dirty
//!   pages and marked them clean, so a retry can "succeed" without the data ("fsyncgate",
//!   Rebello et al., ATC'20). The channel therefore stops: every call returns
//!   [`ChannelError::Unhealthy`] and [`FileChannel::health`] reports `Unhealthy = 1` until the
//!   process restarts and recovery re-reads what is really on disk. A failed ledger write, a
//!   thread panicking while it holds one of the channel's state locks (the in-memory state may
//!   be half-updated), and a panic of the maintenance thread stop the channel the same way.
//!
//! The ledger alone is written through a map (it is tiny, preallocated, and written with one
//! `msync` per checkpoint into the slot not holding the newest checkpoint, so a torn write can
//! only ever damage the older copy).
//!
//! # Group commit
//!
//! A committing transaction appends under the log lock, releases it, and then waits for the
//! durable end to pass its record. If no sync is running it becomes the leader: it notes the
//! current written end, syncs the files without holding the lock, then advances the durable
//! end, publishes to readers and wakes everyone; followers whose records were covered return
//! without a sync of their own. With `fsyncPerTransaction = false` a commit returns once
//! written and the maintenance thread syncs every `fsyncInterval` seconds: a power loss (not a
//! process crash) can lose at most that interval of commits.
//!
//! # Recovery
//!
//! Open takes an exclusive `flock` on `in_use.lock` in both directories, reads the ledger's
//! newest valid slot, deletes segments wholly before it, opens the rest, and replays only the
//! records after its write position (at most about one segment, because a checkpoint is forced
//! after every segment's worth of writes): PUTs advance the seq, ACKs update the
//! acknowledgement set. The first record that does not validate ends the log *unless* an
//! intact record follows it (then it is a corrupt record in the middle: logged with file and
//! offset, the intact records kept, the lost seqs logged and counted as gone). A put
//! transaction with no END record is discarded (its commit never returned). Everything after
//! the end is zeroed. Corruption before the checkpoint position is found lazily by the reader,
//! which verifies every record's CRC before handing out its events and resynchronises on the
//! next intact record the same way.
//!
//! A segment that cannot be opened stops recovery with an error naming the file and the
//! cause, and nothing is removed. The one exception is the newest segment past the checkpoint
//! when every byte of it is zero, which is what a crash during its creation leaves
//! (`recovery.rs` lists exactly what recovery may delete, and why).
//!
//! # Disk trouble
//!
//! A put first checks `statvfs`: below `minimumRequiredSpace` it fails with
//! [`ChannelError::DiskSpace`] (the Avro source answers FAILED, the sender retries). Creating a
//! segment for puts also requires `maxFileSize + minimumRequiredSpace` free. ACK records may dip
//! into that reserve, so consumers can always drain a full disk, after which consumed segments
//! are deleted and puts resume by themselves. Nothing committed is touched by a failed put: the
//! writer rewinds, zeroes what it wrote and removes any segment it created.
//!
//! [`TakeBatch::release_pages`]: crate::channel::TakeBatch::release_pages
//! [`ChannelError::DiskSpace`]: crate::channel::ChannelError::DiskSpace
//! [`ChannelError::Io`]: crate::channel::ChannelError::Io
//! [`ChannelError::Unhealthy`]: crate::channel::ChannelError::Unhealthy

mod acks;
mod channel;
mod config;
mod disk;
mod fault;
mod format;
mod inspect;
mod ledger;
mod reader;
mod recovery;
mod segment;
mod spare;
mod writer;

pub use channel::FileChannel;
pub use config::{FileChannelConfig, IGNORED_KEYS, MIN_REQUIRED_SPACE_FLOOR, MIN_SEGMENT_SIZE};
#[doc(hidden)]
pub use fault::{Faults, FileOp};
pub use format::FORMAT_VERSION;
pub use inspect::{inspect, inspect_dirs, BadRecord, InspectError, InspectReport, SegmentReport};
pub use ledger::Checkpoint;
