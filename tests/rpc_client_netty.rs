//! `NettyAvroClient` / `RpcClient::Default` against in-process servers: batching, handshake,
//! out-of-order replies matched by serial, FAILED and system errors, timeouts, garbage, dead
//! clients, and deflate/TLS transports.

mod rpc_client_common;

use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use rpc_client_common::{dead_port, numbered, server_transport, tls_dir, Mode, TestServer};
use sluicegate::config::{Context, SystemProps};
use sluicegate::rpc::client::{NettyAvroClient, RpcClient, RpcClientConfig, RpcClientError};
use sluicegate::wire::{Frame, FrameCodec, ProtocolCache, ServerAction, ServerSession, Status};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;

fn cfg(port: u16, extra: &[(&str, &str)]) -> RpcClientConfig {
    let hp = format!("127.0.0.1:{port}");
    let mut pairs = vec![("hosts", "h1"), ("hosts.h1", hp.as_str())];
    pairs.extend_from_slice(extra);
    RpcClientConfig::from_context(&Context::from_pairs("t", pairs), &SystemProps::new()).unwrap()
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step took more than 20 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_batch_splits_into_batch_size_rpcs_in_order() {
    let server = TestServer::start(Mode::Ok).await;
    let mut c = within(RpcClient::connect(&cfg(
        server.port(),
        &[("batch-size", "3")],
    )))
    .await
    .unwrap();
    let events = numbered("e", 7);
    within(c.append_batch(&events)).await.unwrap();
    within(c.append(&events[0])).await.unwrap();
    assert!(c.is_active());
    let (batches, stored) = {
        let st = server.state.lock().unwrap();
        (st.batches.clone(), st.events.clone())
    };
    assert_eq!(batches, vec![3, 3, 1, 1]);
    let got: Vec<&[u8]> = stored.iter().map(|e| e.encoded().as_ref()).collect();
    let mut want: Vec<&[u8]> = events.iter().map(|e| e.encoded().as_ref()).collect();
    want.push(events[0].encoded());
    assert_eq!(got, want, "events arrive verbatim and in order");
    assert_eq!(server.connection_count(), 1);
    c.close().await;
    assert!(!c.is_active());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_status_is_an_error_and_kills_the_client() {
    let server = TestServer::start(Mode::FailFirst(1)).await;
    let mut c = within(RpcClient::connect(&cfg(server.port(), &[])))
        .await
        .unwrap();
    let e = within(c.append_batch(&numbered("e", 2))).await.unwrap_err();
    assert!(
        matches!(
            e,
            RpcClientError::Status {
                status: Status::Failed,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("Avro RPC call returned Status: FAILED"),
        "{e}"
    );
    assert!(!c.is_active());
    let e2 = within(c.append_batch(&numbered("e", 1))).await.unwrap_err();
    assert!(matches!(e2, RpcClientError::Inactive { .. }), "{e2}");
    // A new client works (the server now answers OK).
    let mut c = within(RpcClient::connect(&cfg(server.port(), &[])))
        .await
        .unwrap();
    within(c.append_batch(&numbered("e", 2))).await.unwrap();
    assert_eq!(server.bodies(), vec!["e-0", "e-1"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_server_times_out() {
    let server = TestServer::start(Mode::Stall).await;
    let c = within(RpcClient::connect(&cfg(
        server.port(),
        &[("request-timeout", "1000"), ("connect-timeout", "1000")],
    )))
    .await
    .unwrap();
    let RpcClient::Default(c) = c else {
        panic!("default client expected")
    };
    let e = within(c.append_batch(&numbered("e", 1))).await.unwrap_err();
    // The first call carries the handshake, so connect-timeout bounds it (as in Java).
    assert!(matches!(e, RpcClientError::HandshakeTimeout { .. }), "{e}");
    assert!(e.is_timeout());
    assert!(!c.is_active());
    // Established connection, then a stall: request-timeout.
    server.set_mode(Mode::Ok);
    let c = within(NettyAvroClient::connect(&cfg(
        server.port(),
        &[("request-timeout", "1000")],
    )))
    .await
    .unwrap();
    within(c.append_batch(&numbered("a", 1))).await.unwrap();
    server.set_mode(Mode::Stall);
    let e = within(c.append_batch(&numbered("b", 1))).await.unwrap_err();
    assert!(matches!(e, RpcClientError::RequestTimeout { .. }), "{e}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_reply_is_an_error() {
    let server = TestServer::start(Mode::Garbage).await;
    let c = within(NettyAvroClient::connect(&cfg(server.port(), &[])))
        .await
        .unwrap();
    let e = within(c.append_batch(&numbered("e", 1))).await.unwrap_err();
    assert!(matches!(e, RpcClientError::Closed { .. }), "{e}");
    assert!(e.to_string().contains("negative buffer count"), "{e}");
    assert!(!c.is_active());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_is_a_connect_error() {
    let (_held, port) = dead_port();
    let e = within(RpcClient::connect(&cfg(port, &[])))
        .await
        .unwrap_err();
    assert!(e.is_connect(), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

/// A scripted server that answers the handshake call, then collects two calls and answers them
/// in reverse order (as a Flume >= 1.10 source may).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_replies_are_matched_by_serial() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = tokio::io::split(tcp);
        let mut frames = FramedRead::new(rd, FrameCodec::new());
        let mut session = ServerSession::new(ProtocolCache::new());
        let mut answer = |f: Frame, status| {
            let ServerAction::Deliver(d) = session.on_request(f.message()) else {
                panic!("expected a call")
            };
            let body = String::from_utf8_lossy(d.events[0].body()).into_owned();
            let mut out = BytesMut::new();
            Frame::new(f.serial, d.reply.finish(status)).encode_into(&mut out);
            (body, out)
        };
        let first = frames.next().await.unwrap().unwrap();
        let (_, out) = answer(first, Status::Ok);
        wr.write_all(&out).await.unwrap();
        let a = frames.next().await.unwrap().unwrap();
        let b = frames.next().await.unwrap().unwrap();
        let serials = (a.serial, b.serial);
        // Answer the second call first (OK), then the first call (FAILED).
        let (body_a, out_a) = answer(a, Status::Failed);
        let (body_b, out_b) = answer(b, Status::Ok);
        wr.write_all(&out_b).await.unwrap();
        wr.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        wr.write_all(&out_a).await.unwrap();
        wr.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        (serials, body_a, body_b)
    });
    let c = within(NettyAvroClient::connect(&cfg(port, &[])))
        .await
        .unwrap();
    within(c.append_batch(&numbered("first", 1))).await.unwrap();
    assert!(c.is_established());
    let x = numbered("x", 1);
    let y = numbered("y", 1);
    let (rx, ry) = within(async { tokio::join!(c.append_batch(&x), c.append_batch(&y)) }).await;
    let ((sa, sb), body_a, body_b) = within(server).await.unwrap();
    assert_eq!((sa, sb).0 + 1, sb, "consecutive serials");
    assert!(sa >= 2);
    // The server saw body_a first and answered it FAILED after answering body_b OK: each reply
    // must reach the call with its serial, not the oldest call in flight.
    let (ra, rb) = if body_a == "x-0" { (rx, ry) } else { (ry, rx) };
    assert_ne!(body_a, body_b);
    assert!(rb.is_ok(), "second call got its own OK: {rb:?}");
    let err = ra.unwrap_err();
    assert!(
        matches!(
            err,
            RpcClientError::Status {
                status: Status::Failed,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_and_tls_in_both_layer_orders() {
    let ts = tls_dir()
        .join("truststore.p12")
        .to_string_lossy()
        .into_owned();
    for (deflate, tls, order) in [
        (true, false, "zlib-outside"),
        (false, true, "zlib-outside"),
        (true, true, "zlib-outside"),
        (true, true, "tls-outside"),
    ] {
        let server = TestServer::start_with(
            "127.0.0.1:0".parse().unwrap(),
            Mode::Ok,
            server_transport(deflate, tls, order),
        )
        .await;
        let mut extra = vec![("compression-layer-order", order), ("batch-size", "4")];
        if deflate {
            extra.push(("compression-type", "deflate"));
        }
        if tls {
            extra.extend([
                ("ssl", "true"),
                ("truststore", ts.as_str()),
                ("truststore-password", "changeit"),
                ("truststore-type", "PKCS12"),
            ]);
        }
        let mut c = within(RpcClient::connect(&cfg(server.port(), &extra)))
            .await
            .unwrap();
        let events = numbered("z", 10);
        within(c.append_batch(&events)).await.unwrap();
        within(c.append_batch(&events[..2])).await.unwrap();
        c.close().await;
        let want: Vec<String> = (0..10).chain(0..2).map(|i| format!("z-{i}")).collect();
        assert_eq!(
            server.bodies(),
            want,
            "deflate={deflate} tls={tls} order={order}"
        );
        server.stop().await;
    }
}
