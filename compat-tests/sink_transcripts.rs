//! Sink direction, byte level: sluicegate's RPC client and Avro sink send the same events as the
//! real Flume 1.11 clients in the transcripts (`compat-tests/fixtures/*.json`) to a scripted
//! server that answers with the real AvroSource's recorded bytes. The requests must equal what
//! Java sent — per frame, the serial and the concatenated message (Java's 8192-byte buffer split
//! is not copied) and the first buffer (handshake + metadata + message name) — and the client must
//! accept the real replies (handshake on the first response, empty first buffer afterwards).

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::Value;
use sluicegate::avro::{write_long, write_str};
use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::config::{Context, SystemProps};
use sluicegate::rpc::client::{NettyAvroClient, RpcClientConfig, RpcClientError};
use sluicegate::sink::avro::AvroSink;
use sluicegate::sink::{Sink, SinkStatus};
use sluicegate::wire::protocol::{FLUME_PROTOCOL_MD5, FLUME_PROTOCOL_TEXT};
use sluicegate::wire::{Frame, FrameCodec, Status};
use sluicegate::Event;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;

fn frames(v: &Value) -> Vec<Frame> {
    v.as_array()
        .expect("frames")
        .iter()
        .map(|f| {
            Frame::new(
                f["serial"].as_i64().expect("serial") as i32,
                f["buffers"]
                    .as_array()
                    .expect("buffers")
                    .iter()
                    .map(|b| Bytes::from(common::unhex(b.as_str().expect("hex"))))
                    .collect(),
            )
        })
        .collect()
}

/// (client frames, server frames) of connection 0 of a transcript.
fn conversation(name: &str) -> (Vec<Frame>, Vec<Frame>) {
    let t = common::transcript(name);
    let c = &t["connections"][0];
    (frames(&c["client_frames"]), frames(&c["server_frames"]))
}

/// A one-connection server: for each scripted reply, reads one request and answers it with the
/// reply's buffers under the request's serial; then collects anything else until EOF (bounded).
async fn scripted(replies: Vec<Vec<Bytes>>) -> (u16, tokio::task::JoinHandle<Vec<Frame>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let (rd, mut wr) = tokio::io::split(tcp);
        let mut rx = FramedRead::new(rd, FrameCodec::new());
        let mut got = Vec::new();
        for reply in replies {
            let Ok(Some(Ok(f))) = tokio::time::timeout(Duration::from_secs(10), rx.next()).await
            else {
                return got;
            };
            let mut out = BytesMut::new();
            Frame::new(f.serial, reply).encode_into(&mut out);
            got.push(f);
            wr.write_all(&out).await.expect("write reply");
            wr.flush().await.expect("flush");
        }
        while let Ok(Some(Ok(f))) = tokio::time::timeout(Duration::from_secs(2), rx.next()).await {
            got.push(f);
        }
        got
    });
    (port, task)
}

fn client_cfg(port: u16, batch: usize) -> RpcClientConfig {
    let mut c = RpcClientConfig::single("127.0.0.1", port);
    c.batch_size = batch;
    c
}

fn assert_same_requests(name: &str, ours: &[Frame], java: &[Frame]) {
    assert_eq!(ours.len(), java.len(), "{name}: number of requests");
    for (i, (o, j)) in ours.iter().zip(java).enumerate() {
        assert_eq!(o.serial, j.serial, "{name}: serial of request {i}");
        assert_eq!(
            hex::encode(&o.buffers[0]),
            hex::encode(&j.buffers[0]),
            "{name}: request {i} first buffer (handshake + meta + name)"
        );
        let (om, jm) = (o.message(), j.message());
        assert_eq!(om.len(), jm.len(), "{name}: request {i} length");
        assert!(om == jm, "{name}: request {i} bytes differ from Java's");
    }
}

fn padded(prefix: String, len: usize) -> String {
    let mut s = prefix;
    while s.len() < len {
        s.push('x');
    }
    s
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn sdk_appendbatch_plain() {
    let (java, replies) = conversation("sdk-appendbatch-plain");
    let events: Vec<Event> = (0..5)
        .map(|i| {
            Event::new(
                [("host", "h1".to_string()), ("seq", i.to_string())],
                padded(format!("event {i}"), 12),
            )
        })
        .collect();
    rt().block_on(async {
        let (port, server) = scripted(replies.into_iter().map(|f| f.buffers).collect()).await;
        let c = NettyAvroClient::connect(&client_cfg(port, 100))
            .await
            .expect("connect");
        c.append_batch(&events)
            .await
            .expect("Flume's OK reply is accepted");
        assert!(c.is_established());
        c.close().await;
        assert_same_requests(
            "sdk-appendbatch-plain",
            &server.await.expect("server"),
            &java,
        );
    });
}

#[test]
fn sdk_append_plain() {
    let (java, replies) = conversation("sdk-append-plain");
    rt().block_on(async {
        let (port, server) = scripted(replies.into_iter().map(|f| f.buffers).collect()).await;
        let c = NettyAvroClient::connect(&client_cfg(port, 100))
            .await
            .expect("connect");
        for i in 0..3 {
            let e = Event::new([("k", "v")], padded(format!("event {i}"), 8));
            c.append(&e).await.expect("append OK");
        }
        c.close().await;
        assert_same_requests("sdk-append-plain", &server.await.expect("server"), &java);
    });
}

#[test]
fn sdk_appendbatch_multi() {
    let (java, replies) = conversation("sdk-appendbatch-multi");
    let events: Vec<Event> = (0..7)
        .map(|i| {
            Event::new(
                [("seq", i.to_string())],
                padded(format!("event {i}"), 20_000),
            )
        })
        .collect();
    rt().block_on(async {
        let (port, server) = scripted(replies.into_iter().map(|f| f.buffers).collect()).await;
        let c = NettyAvroClient::connect(&client_cfg(port, 3))
            .await
            .expect("connect");
        // One call; the client splits it into RPCs of batch-size 3 (3, 3, 1).
        c.append_batch(&events).await.expect("three OK replies");
        c.close().await;
        assert_same_requests(
            "sdk-appendbatch-multi",
            &server.await.expect("server"),
            &java,
        );
    });
}

#[test]
fn avrosink_agent_plain() {
    let (java, replies) = conversation("avrosink-agent-plain");
    let rt = rt();
    let (port, server) = rt.block_on(scripted(replies.into_iter().map(|f| f.buffers).collect()));
    let channel = Arc::new(MemoryChannel::new("c1", MemoryChannelConfig::default()));
    // Flume's seq source: bodies "0".."6", no headers.
    let events: Vec<Event> = (0..7).map(|i| Event::from_body(i.to_string())).collect();
    channel.put_batch(&events).expect("put");
    let port = port.to_string();
    let ctx = Context::from_pairs(
        "a1.sinks.k1",
        [
            ("hostname", "127.0.0.1"),
            ("port", port.as_str()),
            ("batch-size", "3"),
        ],
    );
    let mut sink = AvroSink::from_context(
        "k1",
        &ctx,
        &SystemProps::new(),
        channel.clone(),
        rt.handle().clone(),
    )
    .expect("sink");
    sink.start().expect("start");
    for _ in 0..3 {
        assert_eq!(sink.process().expect("delivered"), SinkStatus::Ready);
    }
    assert_eq!(sink.process().expect("empty"), SinkStatus::Backoff);
    assert_eq!(channel.size(), 0);
    sink.stop();
    let ours = rt.block_on(server).expect("server");
    assert_same_requests("avrosink-agent-plain", &ours, &java);
}

#[test]
fn source_channel_full_failed() {
    let (java, replies) = conversation("source-channel-full-failed");
    let events: Vec<Event> = (0..10)
        .map(|i| Event::new([("seq", i.to_string())], padded(format!("event {i}"), 16)))
        .collect();
    rt().block_on(async {
        let (port, server) = scripted(replies.into_iter().map(|f| f.buffers).collect()).await;
        let c = NettyAvroClient::connect(&client_cfg(port, 100))
            .await
            .expect("connect");
        let e = c
            .append_batch(&events)
            .await
            .expect_err("FAILED must be an error");
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
        assert!(!c.is_active(), "a failed client is dead");
        c.close().await;
        assert_same_requests(
            "source-channel-full-failed",
            &server.await.expect("server"),
            &java,
        );
    });
}

#[test]
fn source_none_handshake_resends_with_protocol_text() {
    let (_, server_frames) = conversation("source-none-handshake");
    // The real AvroSource's NONE reply (its protocol text and hash), then BOTH + OK.
    let none = server_frames[0].buffers.clone();
    assert_eq!(none[0][0], 0x04, "transcript's first reply is NONE");
    let both_ok = vec![
        Bytes::from_static(&[0, 0, 0, 0]),
        Bytes::from_static(&[0]),
        Bytes::from_static(&[0, 0]),
    ];
    let event = Event::new([("host", "h1")], "ab");
    rt().block_on(async {
        let (port, server) = scripted(vec![none, both_ok]).await;
        let c = NettyAvroClient::connect(&client_cfg(port, 100))
            .await
            .expect("connect");
        c.append_batch(std::slice::from_ref(&event))
            .await
            .expect("OK after the resend");
        assert!(c.is_established());
        c.close().await;
        let got = server.await.expect("server");
        assert_eq!(got.len(), 2, "the call is sent twice");
        assert_eq!(
            (got[0].serial, got[1].serial),
            (1, 2),
            "the resend has a new serial"
        );
        // Second request: clientHash, clientProtocol = our text, serverHash learned from NONE,
        // meta {}, call meta {}, "appendBatch", params.
        let mut want = BytesMut::new();
        want.extend_from_slice(&FLUME_PROTOCOL_MD5);
        want.extend_from_slice(&[2]);
        write_str(&mut want, FLUME_PROTOCOL_TEXT);
        want.extend_from_slice(&FLUME_PROTOCOL_MD5);
        want.extend_from_slice(&[2, 0, 0]);
        write_str(&mut want, "appendBatch");
        write_long(&mut want, 1);
        want.extend_from_slice(event.encoded());
        want.extend_from_slice(&[0]);
        assert_eq!(hex::encode(got[1].message()), hex::encode(&want));
        // The first one carried no text.
        assert_eq!(got[0].message()[16], 0, "clientProtocol = null first");
    });
}
