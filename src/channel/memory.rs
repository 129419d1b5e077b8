//! The bounded in-memory channel (`type = memory`), Flume's `MemoryChannel`.
//!
//! Invariants: `size + in_flight_puts ≤ capacity` is never exceeded; `bytes ≤ byteCapacity`
//! (bodies only, as Flume counts); taken-but-uncommitted events still hold their slots and bytes
//! until commit, so a rollback can always put them back at the front.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{Channel, ChannelError, TakeBatch, TakeCompletion};
use crate::config::{ConfigError, Context};
use crate::event::Event;
use crate::metrics::ChannelCounter;

/// Settings of a memory channel, with Flume's defaults.
#[derive(Debug, Clone)]
pub struct MemoryChannelConfig {
    /// `capacity` (events), default 100.
    pub capacity: u64,
    /// `transactionCapacity`, default 100.
    pub transaction_capacity: usize,
    /// `byteCapacity` in bytes of event bodies; `None` = unbounded.
    pub byte_capacity: Option<u64>,
    /// `keep-alive`: how long a put waits for room, default 3 s.
    pub keep_alive: Duration,
}

impl Default for MemoryChannelConfig {
    fn default() -> Self {
        MemoryChannelConfig {
            capacity: 100,
            transaction_capacity: 100,
            byte_capacity: None,
            keep_alive: Duration::from_secs(3),
        }
    }
}

impl MemoryChannelConfig {
    /// Reads `capacity`, `transactionCapacity`, `byteCapacity`,
    /// `byteCapacityBufferPercentage` and `keep-alive` (seconds).
    pub fn from_context(ctx: &Context) -> Result<Self, ConfigError> {
        let d = MemoryChannelConfig::default();
        let (capacity, tx) = super::read_capacities(ctx, d.capacity, d.transaction_capacity)?;
        let buffer_pct = ctx.get_u64("byteCapacityBufferPercentage", 20)?.min(100);
        let byte_capacity = ctx
            .parse::<u64>("byteCapacity", "a byte count")?
            .filter(|b| *b > 0)
            .map(|b| b * (100 - buffer_pct) / 100);
        let keep_alive = ctx.get_secs("keep-alive", 3)?;
        Ok(MemoryChannelConfig {
            capacity,
            transaction_capacity: tx,
            byte_capacity,
            keep_alive,
        })
    }
}

struct State {
    queue: VecDeque<Event>,
    /// Slots held by events in the queue plus events taken but not committed.
    used_slots: u64,
    used_bytes: u64,
    closed: bool,
    /// Puts parked waiting for room.
    puts_waiting: usize,
}

struct Inner {
    name: String,
    cfg: MemoryChannelConfig,
    state: Mutex<State>,
    /// Signalled when room appears (takes committed) or events arrive.
    changed: Condvar,
    counter: Arc<ChannelCounter>,
}

/// A bounded, transactional in-memory channel.
#[derive(Clone)]
pub struct MemoryChannel {
    inner: Arc<Inner>,
}

impl MemoryChannel {
    /// A new empty channel.
    pub fn new(name: impl Into<String>, cfg: MemoryChannelConfig) -> MemoryChannel {
        let name = name.into();
        let counter = Arc::new(ChannelCounter::new(name.clone()));
        ChannelCounter::add(&counter.capacity, cfg.capacity);
        MemoryChannel {
            inner: Arc::new(Inner {
                name,
                cfg,
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    used_slots: 0,
                    used_bytes: 0,
                    closed: false,
                    puts_waiting: 0,
                }),
                changed: Condvar::new(),
                counter,
            }),
        }
    }

    /// How many puts are parked waiting for room (up to `keep-alive`). The count rises under
    /// the channel's lock just before a put waits, so once a caller sees it, any take that
    /// commits afterwards wakes that put.
    pub fn puts_waiting(&self) -> usize {
        self.lock().puts_waiting
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Poison: no code that can panic runs under this lock (queue pushes/drains and counter
        // arithmetic, each finished before the next), so the state is never half-updated; and
        // a memory channel promises nothing across a restart that refusing could protect.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn body_bytes(events: &[Event]) -> u64 {
    events.iter().map(|e| e.body().len() as u64).sum()
}

impl Channel for MemoryChannel {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn put_batch(&self, events: &[Event]) -> Result<(), ChannelError> {
        let inner = &self.inner;
        let n = events.len();
        ChannelCounter::add(&inner.counter.put_attempt, n as u64);
        if n > inner.cfg.transaction_capacity {
            ChannelCounter::add(&inner.counter.put_error, n as u64);
            return Err(ChannelError::TransactionTooLarge {
                channel: inner.name.clone(),
                batch: n,
                capacity: inner.cfg.transaction_capacity,
            });
        }
        let bytes = body_bytes(events);
        if let Some(cap) = inner.cfg.byte_capacity {
            if bytes > cap {
                ChannelCounter::add(&inner.counter.put_error, n as u64);
                return Err(ChannelError::ByteCapacity {
                    channel: inner.name.clone(),
                    used: 0,
                    capacity: cap,
                    wanted: bytes,
                });
            }
        }
        let deadline = Instant::now() + inner.cfg.keep_alive;
        let mut st = self.lock();
        loop {
            if st.closed {
                return Err(ChannelError::Closed {
                    channel: inner.name.clone(),
                });
            }
            let slots_ok = st.used_slots + n as u64 <= inner.cfg.capacity;
            let bytes_ok = inner
                .cfg
                .byte_capacity
                .is_none_or(|c| st.used_bytes + bytes <= c);
            if slots_ok && bytes_ok {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                ChannelCounter::add(&inner.counter.put_error, n as u64);
                if !slots_ok {
                    return Err(ChannelError::Full {
                        channel: inner.name.clone(),
                        size: st.used_slots,
                        capacity: inner.cfg.capacity,
                        wanted: n,
                        waited: inner.cfg.keep_alive,
                    });
                }
                return Err(ChannelError::ByteCapacity {
                    channel: inner.name.clone(),
                    used: st.used_bytes,
                    capacity: inner.cfg.byte_capacity.unwrap_or(0),
                    wanted: bytes,
                });
            }
            st.puts_waiting += 1;
            // Poison: as in `lock`.
            st = inner
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            st.puts_waiting -= 1;
        }
        st.queue.extend(events.iter().cloned());
        st.used_slots += n as u64;
        st.used_bytes += bytes;
        inner
            .counter
            .channel_size
            .store(st.queue.len() as u64, std::sync::atomic::Ordering::Relaxed);
        drop(st);
        ChannelCounter::add(&inner.counter.put_success, n as u64);
        inner.changed.notify_all();
        Ok(())
    }

    fn take_batch(&self, max: usize, wait: Duration) -> Result<TakeBatch, ChannelError> {
        let inner = &self.inner;
        let max = max.min(inner.cfg.transaction_capacity).max(1);
        let deadline = Instant::now() + wait;
        let mut st = self.lock();
        loop {
            if st.closed {
                return Err(ChannelError::Closed {
                    channel: inner.name.clone(),
                });
            }
            if !st.queue.is_empty() {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                ChannelCounter::add(&inner.counter.take_attempt, 1);
                return Ok(TakeBatch::empty());
            }
            // Poison: as in `lock`.
            st = inner
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let k = max.min(st.queue.len());
        let events: Vec<Event> = st.queue.drain(..k).collect();
        inner
            .counter
            .channel_size
            .store(st.queue.len() as u64, std::sync::atomic::Ordering::Relaxed);
        drop(st);
        ChannelCounter::add(&inner.counter.take_attempt, k as u64);
        Ok(TakeBatch::new(
            events,
            Box::new(MemoryTake {
                channel: self.clone(),
            }),
        ))
    }

    fn size(&self) -> u64 {
        self.lock().queue.len() as u64
    }

    fn capacity(&self) -> u64 {
        self.inner.cfg.capacity
    }

    fn transaction_capacity(&self) -> usize {
        self.inner.cfg.transaction_capacity
    }

    fn counter(&self) -> &Arc<ChannelCounter> {
        &self.inner.counter
    }

    fn close(&self) -> Result<(), ChannelError> {
        self.lock().closed = true;
        self.inner.changed.notify_all();
        Ok(())
    }
}

struct MemoryTake {
    channel: MemoryChannel,
}

impl TakeCompletion for MemoryTake {
    fn commit(self: Box<Self>, events: &[Event]) -> Result<(), ChannelError> {
        let inner = &self.channel.inner;
        let mut st = self.channel.lock();
        st.used_slots -= events.len() as u64;
        st.used_bytes -= body_bytes(events);
        drop(st);
        ChannelCounter::add(&inner.counter.take_success, events.len() as u64);
        inner.changed.notify_all();
        Ok(())
    }

    fn rollback(self: Box<Self>, events: Vec<Event>) {
        let inner = &self.channel.inner;
        let mut st = self.channel.lock();
        for e in events.into_iter().rev() {
            st.queue.push_front(e);
        }
        inner
            .counter
            .channel_size
            .store(st.queue.len() as u64, std::sync::atomic::Ordering::Relaxed);
        drop(st);
        inner.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(cap: u64, tx: usize) -> MemoryChannel {
        MemoryChannel::new(
            "c1",
            MemoryChannelConfig {
                capacity: cap,
                transaction_capacity: tx,
                byte_capacity: None,
                keep_alive: Duration::from_millis(20),
            },
        )
    }

    fn ev(i: u32) -> Event {
        Event::new([("seq", i.to_string())], i.to_be_bytes())
    }

    #[test]
    fn put_take_commit_in_order() {
        let c = ch(10, 5);
        c.put_batch(&[ev(1), ev(2), ev(3)]).unwrap();
        let t = c.take_batch(2, Duration::ZERO).unwrap();
        assert_eq!(t.events(), &[ev(1), ev(2)]);
        t.commit().unwrap();
        assert_eq!(c.size(), 1);
    }

    #[test]
    fn rollback_returns_events_to_the_front_in_order() {
        let c = ch(10, 5);
        c.put_batch(&[ev(1), ev(2), ev(3)]).unwrap();
        let t = c.take_batch(2, Duration::ZERO).unwrap();
        drop(t);
        let t = c.take_batch(5, Duration::ZERO).unwrap();
        assert_eq!(t.events(), &[ev(1), ev(2), ev(3)]);
    }

    #[test]
    fn full_channel_refuses_after_keep_alive_and_stays_unchanged() {
        let c = ch(4, 10);
        c.put_batch(&[ev(1), ev(2), ev(3)]).unwrap();
        let err = c.put_batch(&[ev(4), ev(5)]).unwrap_err();
        assert!(matches!(err, ChannelError::Full { .. }), "{err}");
        assert_eq!(c.size(), 3);
        // Taken-but-uncommitted events still hold their slots.
        let t = c.take_batch(3, Duration::ZERO).unwrap();
        assert!(c.put_batch(&[ev(4), ev(5)]).is_err());
        t.commit().unwrap();
        c.put_batch(&[ev(4), ev(5)]).unwrap();
    }

    #[test]
    fn oversized_transactions_fail_at_once() {
        let c = ch(100, 2);
        let err = c.put_batch(&[ev(1), ev(2), ev(3)]).unwrap_err();
        assert!(matches!(
            err,
            ChannelError::TransactionTooLarge {
                batch: 3,
                capacity: 2,
                ..
            }
        ));
    }

    #[test]
    fn a_waiting_put_succeeds_when_room_appears() {
        let c = MemoryChannel::new(
            "c1",
            MemoryChannelConfig {
                capacity: 1,
                transaction_capacity: 1,
                byte_capacity: None,
                // Longer than the bounded wait below: the put cannot time out first.
                keep_alive: Duration::from_secs(60),
            },
        );
        c.put_batch(&[ev(1)]).unwrap();
        let c2 = c.clone();
        let h = std::thread::spawn(move || c2.put_batch(&[ev(2)]));
        // Proof that the put took the blocking path: it is parked waiting for room.
        let end = Instant::now() + Duration::from_secs(30);
        while c.puts_waiting() != 1 {
            assert!(
                Instant::now() < end && !h.is_finished(),
                "the put never parked waiting for room"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(c.size(), 1, "nothing of the waiting put is in yet");
        c.take_batch(1, Duration::ZERO).unwrap().commit().unwrap();
        h.join().unwrap().unwrap();
        assert_eq!(c.puts_waiting(), 0);
        assert_eq!(c.take_batch(1, Duration::ZERO).unwrap().events(), &[ev(2)]);
    }
}
