//! Operation-sequence property test: random put / take / commit / rollback / reopen / crash
//! (a put torn at an arbitrary byte, plus garbage after it) against a simple in-memory model,
//! with 4 KiB segments so rollover, split transactions and segment deletion happen constantly.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use sluicegate::channel::file::{FileChannel, FileChannelConfig};
use sluicegate::channel::{Channel, ChannelError, TakeBatch};
use sluicegate::Event;

const CAPACITY: u64 = 60;
const TX: usize = 12;

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u16>),
    Take(usize),
    Commit(usize),
    Rollback(usize),
    Reopen,
    Checkpoint,
    Crash { n: u8, keep: u16, garbage: Vec<u8> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(0u16..400, 1..TX + 2).prop_map(Op::Put),
        4 => (1usize..15).prop_map(Op::Take),
        3 => (0usize..3).prop_map(Op::Commit),
        2 => (0usize..3).prop_map(Op::Rollback),
        1 => Just(Op::Reopen),
        1 => Just(Op::Checkpoint),
        1 => (1u8..6, 0u16..3000, proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(n, keep, garbage)| Op::Crash { n, keep, garbage }),
    ]
}

fn cfg(dir: &std::path::Path) -> FileChannelConfig {
    FileChannelConfig {
        capacity: CAPACITY,
        transaction_capacity: TX,
        segment_size: 4096,
        minimum_required_space: 1 << 20,
        keep_alive: Duration::from_millis(1),
        ..FileChannelConfig::in_dir(dir)
    }
}

fn event(id: u64, size: u16) -> Event {
    let body: Vec<u8> = (0..size)
        .map(|i| (id as u8).wrapping_add(i as u8))
        .collect();
    Event::new([("id", id.to_string())], body)
}

struct Model {
    /// Committed puts not yet committed-taken, in put order.
    store: Vec<Event>,
    /// What a take sees next (store minus open takes, with rollbacks at the front).
    queue: VecDeque<Event>,
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut ch = Some(FileChannel::open("m", cfg(dir.path())).unwrap());
    let mut model = Model {
        store: Vec::new(),
        queue: VecDeque::new(),
    };
    let mut open: Vec<TakeBatch> = Vec::new();
    let mut next_id = 0u64;
    for op in ops {
        let c = ch.as_ref().unwrap();
        match op {
            Op::Put(sizes) => {
                let evs: Vec<Event> = sizes
                    .iter()
                    .map(|s| {
                        next_id += 1;
                        event(next_id, *s)
                    })
                    .collect();
                let res = c.put_batch(&evs);
                if evs.len() > TX {
                    let too_large = matches!(res, Err(ChannelError::TransactionTooLarge { .. }));
                    prop_assert!(too_large, "{:?}", res);
                } else if model.store.len() + evs.len() > CAPACITY as usize {
                    let full = matches!(res, Err(ChannelError::Full { .. }));
                    prop_assert!(full, "{:?}", res);
                } else {
                    prop_assert!(res.is_ok(), "{:?}", res);
                    model.store.extend(evs.iter().cloned());
                    model.queue.extend(evs);
                }
            }
            Op::Take(max) => {
                if open.len() >= 3 {
                    continue;
                }
                let t = c.take_batch(max, Duration::ZERO).unwrap();
                let k = max.min(TX).min(model.queue.len());
                let want: Vec<Event> = model.queue.drain(..k).collect();
                prop_assert_eq!(t.events(), &want[..]);
                if !t.is_empty() {
                    open.push(t);
                }
            }
            Op::Commit(i) => {
                if i < open.len() {
                    let t = open.remove(i);
                    let taken: Vec<Event> = t.events().to_vec();
                    t.commit().unwrap();
                    model.store.retain(|e| !taken.contains(e));
                }
            }
            Op::Rollback(i) => {
                if i < open.len() {
                    let t = open.remove(i);
                    for e in t.events().iter().rev() {
                        model.queue.push_front(e.clone());
                    }
                    t.rollback();
                }
            }
            Op::Checkpoint => c.checkpoint().unwrap(),
            Op::Reopen | Op::Crash { .. } => {
                // Open takes are neither committed nor rolled back before the restart.
                let stale: Vec<TakeBatch> = std::mem::take(&mut open);
                let c = ch.take().unwrap();
                match op {
                    Op::Crash { n, keep, garbage } => {
                        let torn: Vec<Event> = (0..n)
                            .map(|i| event(1_000_000 + next_id + i as u64, 150))
                            .collect();
                        next_id += n as u64;
                        if c.crash_with_torn_put(&torn, keep as usize, &garbage) {
                            // Written in full, only never synced: a process crash keeps it.
                            model.store.extend(torn);
                        }
                    }
                    _ => c.close().unwrap(),
                }
                let c = FileChannel::open("m", cfg(dir.path())).unwrap();
                drop(stale); // rolls back into the dead instance: must not affect the new one
                model.queue = model.store.iter().cloned().collect();
                prop_assert_eq!(c.size(), model.store.len() as u64);
                ch = Some(c);
            }
        }
        let c = ch.as_ref().unwrap();
        prop_assert_eq!(c.size(), model.store.len() as u64);
    }
    // Finally everything left comes out in order, exactly once, after one more restart.
    drop(open);
    let c = ch.take().unwrap();
    c.close().unwrap();
    drop(c);
    let c = FileChannel::open("m", cfg(dir.path())).unwrap();
    let mut got = Vec::new();
    loop {
        let t = c.take_batch(TX, Duration::ZERO).unwrap();
        if t.is_empty() {
            break;
        }
        got.extend_from_slice(t.events());
        t.commit().unwrap();
    }
    prop_assert_eq!(got, model.store);
    c.checkpoint().unwrap();
    prop_assert_eq!(c.segment_count(), 1);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn file_channel_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}

#[test]
fn regression_complete_but_unsynced_put_survives_a_process_crash() {
    run(vec![Op::Crash {
        n: 3,
        keep: 531,
        garbage: vec![],
    }])
    .unwrap();
}
