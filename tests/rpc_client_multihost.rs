//! The load-balancing and failover clients against several in-process servers: distribution,
//! skipping dead hosts, Flume's backoff, failover order and attempt limits.

mod rpc_client_common;

use std::time::Duration;

use rpc_client_common::{dead_port, numbered, Mode, TestServer};
use sluicegate::clock::ManualClock;
use sluicegate::config::{Context, SystemProps};
use sluicegate::rpc::client::{RpcClient, RpcClientConfig, RpcClientError};

fn cfg(client_type: &str, ports: &[u16], extra: &[(&str, &str)]) -> RpcClientConfig {
    let aliases: Vec<String> = (0..ports.len()).map(|i| format!("h{i}")).collect();
    let hosts = aliases.join(" ");
    let values: Vec<(String, String)> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("hosts.h{i}"), format!("127.0.0.1:{p}")))
        .collect();
    let mut pairs: Vec<(&str, &str)> =
        vec![("hosts", hosts.as_str()), ("client.type", client_type)];
    pairs.extend(values.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    pairs.extend_from_slice(extra);
    RpcClientConfig::from_context(&Context::from_pairs("t", pairs), &SystemProps::new()).unwrap()
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test step took more than 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_batches_in_turn() {
    let s: Vec<TestServer> = vec![
        TestServer::start(Mode::Ok).await,
        TestServer::start(Mode::Ok).await,
        TestServer::start(Mode::Ok).await,
    ];
    let ports: Vec<u16> = s.iter().map(|x| x.port()).collect();
    let mut c = within(RpcClient::connect(&cfg("default_loadbalance", &ports, &[])))
        .await
        .unwrap();
    for i in 0..6 {
        within(c.append_batch(&numbered(&format!("b{i}"), 2)))
            .await
            .unwrap();
    }
    assert_eq!(s[0].bodies(), vec!["b0-0", "b0-1", "b3-0", "b3-1"]);
    assert_eq!(s[1].bodies(), vec!["b1-0", "b1-1", "b4-0", "b4-1"]);
    assert_eq!(s[2].bodies(), vec!["b2-0", "b2-1", "b5-0", "b5-1"]);
    // One connection per host, reused.
    assert!(s.iter().all(|x| x.connection_count() == 1));
    c.close().await;
    for x in s {
        x.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_selector_uses_every_host() {
    let a = TestServer::start(Mode::Ok).await;
    let b = TestServer::start(Mode::Ok).await;
    let mut c = within(RpcClient::connect(&cfg(
        "default_loadbalance",
        &[a.port(), b.port()],
        &[("host-selector", "random")],
    )))
    .await
    .unwrap();
    for i in 0..40 {
        within(c.append_batch(&numbered(&format!("r{i}"), 1)))
            .await
            .unwrap();
    }
    assert_eq!(a.event_count() + b.event_count(), 40);
    // 2^-39 chance of a false failure.
    assert!(a.event_count() > 0 && b.event_count() > 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_hosts_are_skipped_and_backed_off() {
    let ok = TestServer::start(Mode::Ok).await;
    let failing = TestServer::start(Mode::FailFirst(1000)).await;
    let (_held, dead) = dead_port();
    let ports = [dead, failing.port(), ok.port()];
    // Without backoff every batch tries the hosts in turn; all batches still arrive.
    let mut c = within(RpcClient::connect(&cfg("default_loadbalance", &ports, &[])))
        .await
        .unwrap();
    for i in 0..6 {
        within(c.append_batch(&numbered(&format!("n{i}"), 1)))
            .await
            .unwrap();
    }
    let want: Vec<String> = (0..6).map(|i| format!("n{i}-0")).collect();
    assert_eq!(ok.bodies(), want);
    let calls_without_backoff = failing.calls();
    assert!(
        calls_without_backoff >= 4,
        "failing host tried on most batches: {calls_without_backoff}"
    );
    c.close().await;

    // With backoff, each failed host is skipped for 2 s after its first failure. The clock
    // stands still, so however slow this machine, all six batches fall inside those 2 s.
    let before = failing.calls();
    let time = ManualClock::new();
    let mut c = within(RpcClient::connect(&cfg(
        "default_loadbalance",
        &ports,
        &[("backoff", "true")],
    )))
    .await
    .unwrap()
    .with_clock(time.clock());
    for i in 0..6 {
        within(c.append_batch(&numbered(&format!("k{i}"), 1)))
            .await
            .unwrap();
    }
    assert_eq!(failing.calls() - before, 1, "backed off after one failure");
    assert_eq!(ok.event_count(), 12);
    // Once the 2 s have passed, the failing host is tried again (and backed off for 4 s).
    time.advance(Duration::from_millis(2001));
    for i in 0..3 {
        within(c.append_batch(&numbered(&format!("m{i}"), 1)))
            .await
            .unwrap();
    }
    assert_eq!(
        failing.calls() - before,
        2,
        "retried once after the backoff"
    );
    assert_eq!(ok.event_count(), 15);
    c.close().await;
    ok.stop().await;
    failing.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_hosts_failing_is_unable_to_send() {
    let f1 = TestServer::start(Mode::FailFirst(100)).await;
    let (_held, dead) = dead_port();
    let time = ManualClock::new();
    let mut c = within(RpcClient::connect(&cfg(
        "default_loadbalance",
        &[f1.port(), dead],
        &[("backoff", "true"), ("maxBackoff", "1000")],
    )))
    .await
    .unwrap()
    .with_clock(time.clock());
    let e = within(c.append_batch(&numbered("x", 1))).await.unwrap_err();
    assert!(
        matches!(e, RpcClientError::AllHostsFailed { tried: 2, .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("Unable to send batch to any host"),
        "{e}"
    );
    // Both backed off now: fails at once without trying, until the very end of the backoff
    // (maxBackoff = 1000 ms caps the 2 s backoff).
    for step in [0, 999] {
        time.advance(Duration::from_millis(step));
        let e = within(c.append_batch(&numbered("x", 1))).await.unwrap_err();
        assert!(
            matches!(e, RpcClientError::AllHostsFailed { tried: 0, .. }),
            "after {step} ms: {e}"
        );
    }
    assert_eq!(f1.calls(), 1);
    // Past it, the hosts are tried again.
    time.advance(Duration::from_millis(2));
    f1.set_mode(Mode::Ok);
    within(c.append_batch(&numbered("y", 1))).await.unwrap();
    assert_eq!(f1.bodies(), vec!["y-0"]);
    f1.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_goes_down_the_priority_list_cyclically() {
    let a = TestServer::start(Mode::Ok).await;
    let b = TestServer::start(Mode::Ok).await;
    let cs = TestServer::start(Mode::Ok).await;
    let (pa, pb, pc) = (a.port(), b.port(), cs.port());
    let mut c = within(RpcClient::connect(&cfg(
        "default_failover",
        &[pa, pb, pc],
        &[],
    )))
    .await
    .unwrap();
    within(c.append_batch(&numbered("p", 3))).await.unwrap();
    assert_eq!(a.event_count(), 3, "first host has priority");
    // A answers FAILED: the same batch goes to B within the same call.
    a.set_mode(Mode::FailFirst(1));
    within(c.append_batch(&numbered("q", 2))).await.unwrap();
    assert_eq!(b.bodies(), vec!["q-0", "q-1"]);
    // A is fine again, but the client stays on B (cyclic, starts after the last host used).
    within(c.append_batch(&numbered("r", 1))).await.unwrap();
    assert_eq!(b.event_count(), 3);
    // B dies: next is C.
    b.stop().await;
    within(c.append_batch(&numbered("s", 1))).await.unwrap();
    assert_eq!(cs.bodies(), vec!["s-0"]);
    // C fails: wraps round to A.
    cs.set_mode(Mode::FailFirst(1));
    within(c.append_batch(&numbered("t", 1))).await.unwrap();
    assert_eq!(a.bodies(), vec!["p-0", "p-1", "p-2", "t-0"]);
    c.close().await;
    a.stop().await;
    cs.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_attempt_limit_and_no_host() {
    let a = TestServer::start(Mode::FailFirst(100)).await;
    let b = TestServer::start(Mode::FailFirst(100)).await;
    let mut c = within(RpcClient::connect(&cfg(
        "default_failover",
        &[a.port(), b.port()],
        &[("max-attempts", "3")],
    )))
    .await
    .unwrap();
    let e = within(c.append_batch(&numbered("x", 1))).await.unwrap_err();
    assert!(
        matches!(e, RpcClientError::FailoverExhausted { attempts: 3, .. }),
        "{e}"
    );
    assert_eq!(a.calls() + b.calls(), 3);
    assert_eq!(a.calls(), 2, "A, B, A");
    c.close().await;
    a.stop().await;
    b.stop().await;

    let ((_h1, d1), (_h2, d2)) = (dead_port(), dead_port());
    let mut c = within(RpcClient::connect(&cfg("default_failover", &[d1, d2], &[])))
        .await
        .unwrap();
    let e = within(c.append_batch(&numbered("x", 1))).await.unwrap_err();
    assert!(matches!(e, RpcClientError::NoActiveHost { .. }), "{e}");
    assert!(e.is_connect());
}
