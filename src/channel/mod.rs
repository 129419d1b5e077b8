//! Channels: where a source's events wait, transactionally, until a sink or the pipeline takes them.
//!
//! # The contract (Flume's, kept exactly)
//!
//! * **Put** is one transaction per call: [`Channel::put_batch`] stores every event of the slice
//!   or none. It returns `Ok` only once the events are committed — for a durable channel, once
//!   they would survive a crash. The Avro source answers `OK` only after that.
//! * A put waits up to the channel's `keep-alive` for room, then fails with
//!   [`ChannelError::Full`]; a batch larger than `transactionCapacity` fails at once with
//!   [`ChannelError::TransactionTooLarge`]. A failed put leaves the channel unchanged.
//! * **Take** opens a transaction: [`Channel::take_batch`] hands out up to `max` events in order
//!   as a [`TakeBatch`]. [`TakeBatch::commit`] removes them for good; [`TakeBatch::rollback`] (or
//!   dropping the batch) returns them to the *front* of the channel in their original order.
//! * While a take is open, [`TakeBatch::release_pages`] tells the channel the taker has read
//!   some of its events: a hint about memory residency only (the file channel drops their
//!   mapped pages; the events stay valid and read the same bytes), ignored by the memory channel.
//! * Several take transactions may be open at once (competing consumers, as in Flume: each event
//!   goes to one taker).
//!
//! The trait is synchronous: channels block (on room, on fsync, on data). Async callers run
//! channel calls on `tokio::task::spawn_blocking` or on dedicated threads.
//!
//! # Implementations
//! * [`memory`]: bounded in-memory queue (`type = memory`).
//! * [`file`](mod@file): the durable mmap-backed file channel (`type = file`).

pub mod file;
pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, Context};
use crate::event::Event;
use crate::metrics::ChannelCounter;

/// Reads Flume's `capacity` and `transactionCapacity` (both at least 1, the second no larger
/// than the first), as every channel type does. Returns `(capacity, transactionCapacity)`.
pub fn read_capacities(
    ctx: &Context,
    default_capacity: u64,
    default_transaction_capacity: usize,
) -> Result<(u64, usize), ConfigError> {
    let capacity = ctx.get_u64("capacity", default_capacity)?;
    if capacity == 0 {
        return Err(ctx.error("capacity", "must be at least 1"));
    }
    let tx = ctx.get_u64("transactionCapacity", default_transaction_capacity as u64)?;
    if tx == 0 {
        return Err(ctx.error("transactionCapacity", "must be at least 1"));
    }
    if tx > capacity {
        return Err(ctx.error(
            "transactionCapacity",
            &format!("({tx}) must not exceed capacity ({capacity})"),
        ));
    }
    Ok((capacity, tx as usize))
}

/// Why a channel refused a put or a take. Every variant is something an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// No room appeared within `keep-alive` (Flume's `ChannelFullException`).
    #[error(
        "channel {channel} is full: {size} of {capacity} events in use, no room for {wanted} more \
         after waiting {waited:?}: its sinks take events more slowly than its sources put them, \
         or their downstream is not accepting"
    )]
    Full {
        /// The channel's name from the configuration (`c1`).
        channel: String,
        /// Event slots in use when the wait gave up (events in the channel plus puts in flight).
        size: u64,
        /// The configured `capacity`, in events.
        capacity: u64,
        /// Events in the refused batch; all or none of them go in.
        wanted: usize,
        /// How long the put waited for room (the channel's `keep-alive`).
        waited: Duration,
    },
    /// The byte budget (`byteCapacity`) has no room for the batch.
    #[error(
        "channel {channel} has no byte capacity left: {used} of {capacity} bytes in use, batch needs {wanted}"
    )]
    ByteCapacity {
        /// The channel's name from the configuration (`c1`).
        channel: String,
        /// Bytes counted against the budget when the put was refused (in-flight puts included; the
        /// memory channel reports 0 when the batch alone is larger than the budget).
        used: u64,
        /// The byte budget in bytes (memory channel: `byteCapacity` less the
        /// `byteCapacityBufferPercentage` headroom).
        capacity: u64,
        /// Bytes the refused batch needs (memory channel: body bytes); all or none of it goes in.
        wanted: u64,
    },
    /// More events in one transaction than `transactionCapacity` allows.
    #[error(
        "channel {channel}: a transaction of {batch} events exceeds transactionCapacity {capacity} \
         (lower the sender's batch-size or raise transactionCapacity)"
    )]
    TransactionTooLarge {
        /// The channel's name from the configuration (`c1`).
        channel: String,
        /// Events in the refused transaction.
        batch: usize,
        /// The configured `transactionCapacity`, in events.
        capacity: usize,
    },
    /// A single event larger than the channel can ever hold.
    #[error("channel {channel}: event of {size} bytes exceeds the maximum of {max} bytes")]
    EventTooLarge {
        /// The channel's name from the configuration (`c1`).
        channel: String,
        /// The event's size in bytes, as the channel measures it.
        size: usize,
        /// The largest event, in bytes, this channel can ever accept.
        max: usize,
    },
    /// Free disk space fell below `minimumRequiredSpace`, or the disk is full.
    #[error(
        "channel {channel}: usable space exhausted in {dir}: {available} bytes free, \
         {required} required (minimumRequiredSpace); puts resume when space returns"
    )]
    DiskSpace {
        /// The channel's name from the configuration (`c1`).
        channel: String,
        /// The data directory whose file system ran short.
        dir: String,
        /// Bytes free to this process on that file system when the put was refused.
        available: u64,
        /// Bytes that must stay free (`minimumRequiredSpace`).
        required: u64,
    },
    /// An I/O failure, with what was being done.
    #[error("channel {channel}: {what}: {source}")]
    Io {
        /// The channel's name from the configuration (`c1`).
        channel: String,
        /// What was being done when it failed (`checking free space`), with the path where one applies.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Durability or correctness can no longer be promised (an fsync or ledger write failed, or
    /// a panic inside the channel left its state untrustworthy); the channel refuses work until
    /// restarted, and a restart recovers from disk.
    #[error("channel {channel} is unhealthy and refuses work until restarted: {reason}")]
    Unhealthy {
        /// The channel's name from the configuration (`c1`).
        channel: String,
        /// The first failure that made it unhealthy; later calls report the same one.
        reason: String,
    },
    /// Data on disk failed validation.
    #[error("channel {channel}: corrupt record in {file} at offset {offset}: {reason}")]
    Corrupt {
        /// The channel's name from the configuration (`c1`).
        channel: String,
        /// The segment (or ledger) file holding the bad record.
        file: String,
        /// Byte offset of the bad record from the start of that file.
        offset: u64,
        /// What failed to check out (CRC mismatch, bad length, unknown kind, ...).
        reason: String,
    },
    /// The channel was stopped.
    #[error("channel {channel} is closed")]
    Closed {
        /// The channel's name from the configuration (`c1`).
        channel: String,
    },
}

/// A transactional event queue. See the module docs for the contract.
pub trait Channel: Send + Sync + 'static {
    /// The component name from the configuration (`c1`).
    fn name(&self) -> &str;

    /// Stores `events` as one transaction, waiting up to `keep-alive` for room.
    fn put_batch(&self, events: &[Event]) -> Result<(), ChannelError>;

    /// Opens a take transaction of at most `max` events (and at most `transactionCapacity`),
    /// waiting up to `wait` for the first event. An empty batch means nothing arrived in time.
    fn take_batch(&self, max: usize, wait: Duration) -> Result<TakeBatch, ChannelError>;

    /// Events currently held (committed puts minus committed takes).
    fn size(&self) -> u64;

    /// Capacity in events.
    fn capacity(&self) -> u64;

    /// Largest number of events one transaction may carry.
    fn transaction_capacity(&self) -> usize;

    /// The channel's Flume counters.
    fn counter(&self) -> &Arc<ChannelCounter>;

    /// Flushes and releases resources; later calls fail with [`ChannelError::Closed`].
    fn close(&self) -> Result<(), ChannelError> {
        Ok(())
    }
}

/// How a channel finishes a take transaction. Implemented by each channel. `Sync` so that a
/// [`TakeBatch`] can be shared by the threads that read its events (and call
/// [`TakeBatch::release_pages`]).
pub trait TakeCompletion: Send + Sync {
    /// Makes the take permanent.
    fn commit(self: Box<Self>, events: &[Event]) -> Result<(), ChannelError>;
    /// Returns `events` (in order) to the front of the channel.
    fn rollback(self: Box<Self>, events: Vec<Event>);
    /// The channel's sequence number of each taken event, in the order handed out, when the
    /// channel has them (the file channel: stable across restarts; the memory channel: none).
    fn seqs(&self) -> Option<&[u64]> {
        None
    }
    /// A hint that the taker is done reading `events` (a run of this take's events, in take
    /// order) for now; see [`TakeBatch::release_pages`]. Must not change what any event reads.
    fn release(&self, events: &[Event]) {
        let _ = events;
    }
}

/// An open take transaction. Dropping it without [`commit`](TakeBatch::commit) rolls it back.
pub struct TakeBatch {
    events: Vec<Event>,
    completion: Option<Box<dyn TakeCompletion>>,
}

impl TakeBatch {
    /// Wraps taken events and the channel's way to finish the transaction.
    pub fn new(events: Vec<Event>, completion: Box<dyn TakeCompletion>) -> TakeBatch {
        TakeBatch {
            events,
            completion: Some(completion),
        }
    }

    /// An empty batch (nothing to commit or roll back).
    pub fn empty() -> TakeBatch {
        TakeBatch {
            events: Vec::new(),
            completion: None,
        }
    }

    /// The taken events, oldest first.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The channel's sequence number of each taken event (same order as [`events`](Self::events)),
    /// if the channel assigns durable ones (the file channel does; the memory channel does not).
    /// A consumer that records them can recognise, after a crash, events whose take it had
    /// already finished but whose commit was lost.
    pub fn seqs(&self) -> Option<&[u64]> {
        self.completion.as_ref().and_then(|c| c.seqs())
    }

    /// A hint that the taker has read the events `range` (indices into
    /// [`events`](Self::events)) and will not read them again soon: a channel whose events are
    /// slices of a file mapping (the file channel) drops the mapped pages wholly inside those
    /// events' bytes from the process's resident set. Behaviour does not change: the events stay
    /// valid, and reading one again faults the same bytes back in from the page cache (only
    /// slower). Other channels ignore it; an out-of-bounds range is clamped.
    pub fn release_pages(&self, range: std::ops::Range<usize>) {
        let end = range.end.min(self.events.len());
        let start = range.start.min(end);
        if let Some(c) = &self.completion {
            if start < end {
                c.release(&self.events[start..end]);
            }
        }
    }

    /// Number of taken events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when nothing was taken.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Commits the take: the events leave the channel for good.
    pub fn commit(mut self) -> Result<(), ChannelError> {
        match self.completion.take() {
            Some(c) => c.commit(&self.events),
            None => Ok(()),
        }
    }

    /// Rolls the take back: the events return to the front of the channel, in order.
    pub fn rollback(mut self) {
        if let Some(c) = self.completion.take() {
            c.rollback(std::mem::take(&mut self.events));
        }
    }
}

impl Drop for TakeBatch {
    fn drop(&mut self) {
        if let Some(c) = self.completion.take() {
            c.rollback(std::mem::take(&mut self.events));
        }
    }
}

impl std::fmt::Debug for TakeBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TakeBatch")
            .field("events", &self.events.len())
            .finish()
    }
}
