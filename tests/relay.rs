//! Issue 4's relay proof: upstream clients → sluicegate (durable file channel) → Avro sink →
//! sluicegate. One million events: counts and content checksums equal end to end, nothing out
//! of order per upstream connection, nothing duplicated.

use std::time::Duration;

use sluicegate::tools::relay::{run_relay, RelayOptions};

#[test]
fn a_million_events_cross_two_hops_exactly_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RelayOptions {
        events: 1_000_000,
        body_size: 64,
        batch_size: 1000,
        connections: 4,
        sinks: 1,
        dir: dir.path().to_path_buf(),
        deadline: Duration::from_secs(240),
    };
    let r = run_relay(&opts).unwrap();
    println!("{r}");
    assert_eq!(r.sent, 1_000_000);
    assert_eq!(r.received, r.sent, "{r}");
    assert_eq!(r.out_of_order, 0, "{r}");
    assert_eq!(r.received_checksum, r.sent_checksum, "{r}");
}
