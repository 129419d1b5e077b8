//! The Avro sink's commit-behind over a durable file channel: delivered batches are committed in
//! the background, at most `COMMITS_IN_FLIGHT` at a time, `stop` waits for them, and a commit that fails is
//! reported (never counted as drained) while the events it covered were delivered.

mod rpc_client_common;

use std::sync::Arc;

use rpc_client_common::{numbered, runtime, Mode, TestServer};
use sluicegate::channel::file::{FileChannel, FileChannelConfig};
use sluicegate::channel::{Channel, ChannelError};
use sluicegate::config::{Context, SystemProps};
use sluicegate::metrics::SinkCounter;
use sluicegate::sink::avro::{AvroSink, COMMITS_IN_FLIGHT};
use sluicegate::sink::{Sink, SinkError, SinkStatus};

fn file_channel(dir: &std::path::Path) -> Arc<FileChannel> {
    let mut cfg = FileChannelConfig::in_dir(dir);
    cfg.minimum_required_space = 1 << 20;
    Arc::new(FileChannel::open("c1", cfg).expect("open file channel"))
}

fn sink(rt: &tokio::runtime::Runtime, port: u16, channel: Arc<dyn Channel>) -> AvroSink {
    let port = port.to_string();
    let ctx = Context::from_pairs(
        "a1.sinks.k1",
        [
            ("hostname", "127.0.0.1"),
            ("port", port.as_str()),
            ("batch-size", "10"),
        ],
    );
    AvroSink::from_context(
        "k1",
        &ctx,
        &SystemProps::new(),
        channel,
        rt.handle().clone(),
    )
    .expect("sink")
}

fn drained(s: &AvroSink) -> u64 {
    SinkCounter::get(&s.counter().event_drain_success)
}

#[test]
fn commits_run_behind_boundedly_and_stop_settles_them() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Mode::Ok));
    let dir = tempfile::tempdir().unwrap();
    let channel = file_channel(dir.path());
    let batches = COMMITS_IN_FLIGHT as u64 + 3;
    let total = 10 * batches;
    let want: Vec<String> = (0..total).map(|i| format!("e-{i}")).collect();
    channel.put_batch(&numbered("e", total as usize)).unwrap();

    let mut k = sink(&rt, server.port(), channel.clone());
    k.start().unwrap();
    let behind = COMMITS_IN_FLIGHT as u64;
    for i in 1..=batches {
        assert_eq!(k.process().unwrap(), SinkStatus::Ready);
        // Batch i is delivered; with `behind` commits allowed to run, the commits of every
        // batch before i - behind must be done (counted) by now.
        assert!(
            drained(&k) >= 10 * i.saturating_sub(behind),
            "after {i} deliveries only {} events counted as committed",
            drained(&k)
        );
        assert!(drained(&k) <= 10 * i);
    }
    assert_eq!(
        server.bodies(),
        want,
        "delivered once each, in channel order"
    );
    k.stop();
    assert_eq!(drained(&k), total, "stop waits for every commit in flight");
    assert_eq!(channel.size(), 0);
    channel.close().unwrap();
    drop(channel);

    // The takes were durable: a reopened channel holds nothing to send again.
    let reopened = file_channel(dir.path());
    assert_eq!(reopened.size(), 0);
    rt.block_on(server.stop());
}

#[test]
fn an_empty_take_settles_the_commits_behind() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Mode::Ok));
    let dir = tempfile::tempdir().unwrap();
    let channel = file_channel(dir.path());
    channel.put_batch(&numbered("e", 20)).unwrap();
    let mut k = sink(&rt, server.port(), channel.clone());
    k.start().unwrap();
    assert_eq!(k.process().unwrap(), SinkStatus::Ready);
    assert_eq!(k.process().unwrap(), SinkStatus::Ready);
    assert_eq!(k.process().unwrap(), SinkStatus::Backoff);
    assert_eq!(drained(&k), 20, "an idle sink has nothing left uncommitted");
    assert_eq!(channel.size(), 0);
    k.stop();
    rt.block_on(server.stop());
}

#[test]
fn a_failed_commit_is_reported_and_not_counted() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Mode::Ok));
    let dir = tempfile::tempdir().unwrap();
    let channel = file_channel(dir.path());
    channel.put_batch(&numbered("e", 10)).unwrap();
    let mut k = sink(&rt, server.port(), channel.clone());
    k.start().unwrap();

    // The take commit's fdatasync fails: the channel stops promising durability.
    channel.inject_sync_failure();
    assert_eq!(
        k.process().unwrap(),
        SinkStatus::Ready,
        "the batch was delivered; its commit runs behind"
    );
    let err = k.process().expect_err("the failed commit must surface");
    assert!(
        matches!(err, SinkError::Channel(ChannelError::Unhealthy { .. })),
        "{err}"
    );
    assert_eq!(drained(&k), 0, "a failed commit is not a successful drain");
    assert_eq!(server.event_count(), 10, "delivered exactly once");
    assert!(matches!(
        channel.put_batch(&numbered("f", 1)),
        Err(ChannelError::Unhealthy { .. })
    ));
    k.stop();
    rt.block_on(server.stop());
}
