//! Hostile and broken input against a running Avro source (127.0.0.1, real TCP). For every
//! case: the client gets a clear Avro system error or a closed connection, the server keeps
//! serving a fresh client afterwards, and nothing is ever answered OK that was not stored.

#[path = "../compat-tests/source_util.rs"]
mod source_util;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use sluicegate::avro::write_str;
use sluicegate::config::{Context, SystemProps};
use sluicegate::rpc::ClientTransport;
use sluicegate::wire::protocol::{protocol_md5, FLUME_PROTOCOL_MD5, FLUME_PROTOCOL_TEXT};
use sluicegate::wire::{
    ClientReply, ClientSession, Frame, FrameCodec, HandshakeRequest, SentRequest, Status,
};
use source_util::*;
use tokio_util::codec::Framed;

const NO_HANDSHAKE: SentRequest = SentRequest {
    handshake: false,
    protocol_text: false,
    ping: false,
};
const WITH_HANDSHAKE: SentRequest = SentRequest {
    handshake: true,
    protocol_text: false,
    ping: false,
};

/// A fresh client sends `n` events and gets OK; returns them.
fn fresh_client_is_served(h: &Harness, tag: &str) -> Vec<sluicegate::Event> {
    let evs = events(tag, 0..3);
    let mut c = RawClient::connect(h.addr());
    let mut s = session();
    assert_eq!(
        append_batch(&mut c, &mut s, 1, &evs).expect("fresh client answered"),
        Ok(Status::Ok),
        "{tag}: fresh client"
    );
    evs
}

/// Decodes a reply frame as a system error; returns its text.
fn system_error(raw: &[u8], sent: SentRequest) -> String {
    let frame = parse_frame(raw);
    match ClientSession::new().on_response(sent, &frame.message()) {
        Ok(ClientReply::Answer {
            result: Err(text), ..
        }) => text,
        other => panic!("expected a system error, got {other:?}"),
    }
}

/// After a bad input the server serves a fresh client, and the channel holds exactly
/// `expected` (the events that were answered OK), nothing else.
fn still_serving(h: &Harness, mut expected: Vec<sluicegate::Event>, tag: &str) {
    expected.extend(fresh_client_is_served(h, tag));
    assert_same_events(&h.drain(), &expected, tag);
}

fn plain() -> Harness {
    Harness::start(&[], channel_config(1000))
}

#[test]
fn truncated_frame_then_close() {
    let h = plain();
    let req = session().encode_append_batch(&events("t", 0..5));
    let bytes = frame_bytes(1, &req.buffers);
    let mut c = RawClient::connect(h.addr());
    c.send_raw(&bytes[..bytes.len() - 7]).unwrap();
    c.sock.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        c.closed_within(IO_TIMEOUT),
        "server closes a truncated stream"
    );
    assert!(c.pending().is_empty(), "no answer for a truncated request");
    still_serving(&h, vec![], "truncated");
    assert!(h.count(|c| &c.event_read_fail) >= 1);
}

#[test]
fn broken_framing_closes_the_connection() {
    let h = plain();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative buffer length", {
            let mut b = vec![0, 0, 0, 1, 0, 0, 0, 1];
            b.extend_from_slice(&(-5i32).to_be_bytes());
            b
        }),
        (
            "count = 0",
            vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4],
        ),
        ("negative count", vec![0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe]),
        ("too many buffers", {
            let mut b = vec![0, 0, 0, 1];
            b.extend_from_slice(&1_000_000i32.to_be_bytes());
            b
        }),
        (
            "garbage before a handshake (HTTP)",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let mut c = RawClient::connect(h.addr());
        c.send_raw(&bytes).unwrap();
        assert!(c.closed_within(IO_TIMEOUT), "{what}: connection closed");
        assert!(c.pending().is_empty(), "{what}: nothing answered");
        still_serving(&h, vec![], what);
    }
    assert!(h.count(|c| &c.event_read_fail) >= 5);
}

#[test]
fn huge_buffer_length_is_refused_without_buffering() {
    let h = plain();
    let mut c = RawClient::connect(h.addr());
    let mut b = vec![0, 0, 0, 9, 0, 0, 0, 2];
    b.extend_from_slice(&i32::MAX.to_be_bytes());
    b.extend_from_slice(&[0u8; 64]);
    c.send_raw(&b).unwrap();
    // Over max-frame-bytes: answered at once with a system error for serial 9 (the rest of
    // the 2 GiB frame would be discarded unbuffered), then closed since no handshake was read.
    let raw = c.read_frame().expect("an answer to the oversized request");
    assert_eq!(parse_frame(&raw).serial, 9);
    let text = system_error(&raw, WITH_HANDSHAKE);
    assert!(
        text.contains("exceeds") && text.contains("max-frame-bytes"),
        "{text}"
    );
    assert!(c.closed_within(IO_TIMEOUT));
    still_serving(&h, vec![], "huge length");
}

#[test]
fn garbage_message_in_a_valid_frame_gets_a_system_error_and_the_connection_stays() {
    let h = plain();
    let mut c = RawClient::connect(h.addr());
    c.send_frame(4, &[Bytes::from_static(b"\x01\x02not a handshake")]);
    let raw = c.read_frame().expect("answer");
    assert_eq!(parse_frame(&raw).serial, 4);
    let text = system_error(&raw, NO_HANDSHAKE);
    assert!(
        text.starts_with("java.io.EOFException") || text.contains("Exception"),
        "{text}"
    );
    // Same connection, a proper first request now: served.
    let evs = events("after-garbage", 0..2);
    let mut s = session();
    assert_eq!(
        append_batch(&mut c, &mut s, 5, &evs).unwrap(),
        Ok(Status::Ok)
    );
    still_serving(&h, evs, "garbage message");
    assert_eq!(h.count(|c| &c.event_read_fail), 1);
}

#[test]
fn unknown_message_of_a_learned_client_protocol() {
    let h = plain();
    // A client protocol declaring an extra message "bogus".
    let mut proto: serde_json::Value = serde_json::from_str(FLUME_PROTOCOL_TEXT).unwrap();
    proto["messages"]["bogus"] = serde_json::json!({"request": [], "response": "null"});
    let text = serde_json::to_string(&proto).unwrap();
    let mut req = BytesMut::new();
    HandshakeRequest {
        client_hash: protocol_md5(&text),
        client_protocol: Some(text),
        server_hash: FLUME_PROTOCOL_MD5,
        meta: None,
    }
    .encode(&mut req);
    req.put_u8(0);
    write_str(&mut req, "bogus");
    let mut c = RawClient::connect(h.addr());
    c.send_frame(1, &[req.freeze()]);
    let raw = c.read_frame().expect("answer");
    let mut s = session();
    let sent = SentRequest {
        handshake: true,
        protocol_text: true,
        ping: false,
    };
    match s.on_response(sent, &parse_frame(&raw).message()).unwrap() {
        ClientReply::Answer {
            result: Err(text), ..
        } => assert!(text.contains("No message named bogus"), "{text}"),
        other => panic!("unexpected {other:?}"),
    }
    // The handshake succeeded (BOTH), so the connection is established: the next call carries
    // no handshake and is served.
    assert!(s.is_established());
    let evs = events("after-bogus", 0..4);
    assert_eq!(
        append_batch(&mut c, &mut s, 2, &evs).unwrap(),
        Ok(Status::Ok)
    );
    still_serving(&h, evs, "unknown message");
}

#[test]
fn body_larger_than_the_cap() {
    let h = Harness::start(&[("max-frame-bytes", "4096")], channel_config(1000));
    let big = vec![sluicegate::Event::new(
        Vec::<(String, String)>::new(),
        vec![b'x'; 10_000],
    )];
    // (a) On an established connection: system error, the oversized frame is discarded, and
    // the connection keeps working.
    let mut c = RawClient::connect(h.addr());
    let mut s = session();
    let first = events("before", 0..2);
    assert_eq!(
        append_batch(&mut c, &mut s, 1, &first).unwrap(),
        Ok(Status::Ok)
    );
    let req = s.encode_append_batch(&big);
    c.send_frame(2, &req.buffers);
    let raw = c.read_frame().expect("answer to the oversized request");
    assert_eq!(parse_frame(&raw).serial, 2);
    let text = system_error(&raw, NO_HANDSHAKE);
    assert!(text.contains("max-frame-bytes"), "{text}");
    let after = events("after", 0..3);
    assert_eq!(
        append_batch(&mut c, &mut s, 3, &after).unwrap(),
        Ok(Status::Ok)
    );
    // (b) As the first request: the error follows a BOTH handshake, then the connection closes.
    let mut c2 = RawClient::connect(h.addr());
    let req = session().encode_append_batch(&big);
    c2.send_frame(1, &req.buffers);
    let raw = c2
        .read_frame()
        .expect("answer to the oversized first request");
    assert!(system_error(&raw, WITH_HANDSHAKE).contains("max-frame-bytes"));
    assert!(c2.closed_within(IO_TIMEOUT));
    let mut expected = first;
    expected.extend(after);
    still_serving(&h, expected, "body over the cap");
    assert_eq!(h.count(|c| &c.event_read_fail), 2);
    assert_eq!(h.count(|c| &c.events_received), 2 + 3 + 3);
}

#[test]
fn too_many_events_for_max_batch_events() {
    let h = Harness::start(&[("max-batch-events", "5")], channel_config(1000));
    let mut c = RawClient::connect(h.addr());
    let mut s = session();
    let answer = append_batch(&mut c, &mut s, 1, &events("many", 0..6)).unwrap();
    match answer {
        Err(text) => assert!(text.contains("limit of 5"), "{text}"),
        Ok(st) => panic!("expected a system error, got {st}"),
    }
    // The refused call completed the handshake; the connection goes on without one.
    assert!(s.is_established());
    let ok = events("five", 0..5);
    assert_eq!(
        append_batch(&mut c, &mut s, 2, &ok).unwrap(),
        Ok(Status::Ok)
    );
    still_serving(&h, ok, "max-batch-events");
}

#[test]
fn deflate_bomb_on_a_deflate_port() {
    let h = Harness::start(
        &[
            ("compression-type", "deflate"),
            ("max-frame-bytes", "1048576"),
        ],
        channel_config(1000),
    );
    let mut c = RawClient::connect_with(h.addr(), true);
    let mut s = session();
    let first = events("pre-bomb", 0..2);
    assert_eq!(
        append_batch(&mut c, &mut s, 1, &first).unwrap(),
        Ok(Status::Ok)
    );
    // A frame declaring one 16 MiB buffer, then 16 MiB of zeros: ~16 KiB on the wire.
    let mut header = vec![0, 0, 0, 2, 0, 0, 0, 1];
    header.extend_from_slice(&(16i32 << 20).to_be_bytes());
    c.send(&header).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..16 {
        c.send(&zeros).unwrap();
    }
    let raw = c.read_frame().expect("answer to the bomb");
    assert_eq!(parse_frame(&raw).serial, 2);
    assert!(system_error(&raw, NO_HANDSHAKE).contains("max-frame-bytes"));
    // The bomb was discarded as it inflated; the same connection keeps working.
    let after = events("post-bomb", 0..3);
    assert_eq!(
        append_batch(&mut c, &mut s, 3, &after).unwrap(),
        Ok(Status::Ok)
    );
    let mut expected = first;
    expected.extend(after);
    assert_same_events(&h.drain(), &expected, "deflate bomb");
    // A bomb that inflates to zeros straight away is a zero buffer count: closed.
    let mut c2 = RawClient::connect_with(h.addr(), true);
    for _ in 0..4 {
        // The server may close (and reset) before all of it is written.
        if c2.send(&zeros).is_err() {
            break;
        }
    }
    assert!(c2.closed_within(IO_TIMEOUT));
    // A fresh deflate client is served.
    let mut c3 = RawClient::connect_with(h.addr(), true);
    let mut s3 = session();
    let last = events("fresh-deflate", 0..2);
    assert_eq!(
        append_batch(&mut c3, &mut s3, 1, &last).unwrap(),
        Ok(Status::Ok)
    );
    assert_same_events(&h.drain(), &last, "fresh deflate client");
}

fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

/// One appendBatch over TLS with sluicegate's own client transport.
fn tls_append(h: &Harness, evs: &[sluicegate::Event]) -> Result<Status, String> {
    let store = tls_dir().join("truststore.p12");
    let ctx = Context::from_pairs(
        "a1.sinks.k1",
        [
            ("ssl", "true"),
            ("truststore", store.to_str().unwrap()),
            ("truststore-password", "changeit"),
            ("truststore-type", "PKCS12"),
            ("connect-timeout", "5000"),
        ],
    );
    let transport = ClientTransport::from_context(&ctx, &SystemProps::new()).unwrap();
    let port = h.addr().port();
    h.rt.block_on(async move {
        let stream = transport
            .connect("localhost", port)
            .await
            .map_err(|e| e.to_string())?;
        let mut framed = Framed::new(stream, FrameCodec::new());
        let mut s = ClientSession::new();
        let req = s.encode_append_batch(evs);
        framed
            .send(Frame::new(1, req.buffers))
            .await
            .map_err(|e| e.to_string())?;
        let reply = tokio::time::timeout(IO_TIMEOUT, framed.next())
            .await
            .map_err(|_| "timeout".to_string())?
            .ok_or("closed")?
            .map_err(|e| e.to_string())?;
        match s.on_response(req.sent, &reply.message()) {
            Ok(ClientReply::Answer { result, .. }) => result,
            other => Err(format!("unexpected {other:?}")),
        }
    })
}

fn tls_source() -> Harness {
    let ks = tls_dir().join("server.p12");
    Harness::start(
        &[
            ("ssl", "true"),
            ("keystore", ks.to_str().unwrap()),
            ("keystore-password", "changeit"),
            ("keystore-type", "PKCS12"),
        ],
        channel_config(1000),
    )
}

#[test]
fn tls_handshake_on_a_plain_port() {
    let h = plain();
    let evs = events("tls", 0..2);
    let err = tls_append(&h, &evs).expect_err("TLS against a plain source fails");
    assert!(!err.is_empty());
    still_serving(&h, vec![], "TLS on plain port");
}

#[test]
fn plain_bytes_on_a_tls_port() {
    let h = tls_source();
    let mut c = RawClient::connect(h.addr());
    let req = session().encode_append_batch(&events("plain", 0..2));
    c.send_frame(1, &req.buffers);
    assert!(
        c.closed_within(IO_TIMEOUT),
        "plain request on a TLS port: closed"
    );
    assert!(h.drain().is_empty());
    let evs = events("tls-ok", 0..3);
    assert_eq!(tls_append(&h, &evs), Ok(Status::Ok));
    assert_same_events(&h.drain(), &evs, "TLS client after plain bytes");
}

#[test]
fn a_client_stalled_mid_frame_does_not_block_others() {
    // read-timeout far above the test's own read deadline: if the stalled client blocked the
    // others, their reads would time out.
    let h = Harness::start(&[("read-timeout", "120000")], channel_config(1000));
    let req = session().encode_append_batch(&events("stalled", 0..5));
    let bytes = frame_bytes(1, &req.buffers);
    let mut stalled = RawClient::connect(h.addr());
    stalled.send_raw(&bytes[..bytes.len() / 2]).unwrap();
    let mut expected = Vec::new();
    for round in 0..3 {
        expected.extend(fresh_client_is_served(&h, &format!("other{round}")));
    }
    assert_same_events(&h.drain(), &expected, "others served");
    assert!(!stalled.closed_within(Duration::from_millis(50)));
    assert!(stalled.pending().is_empty());
}

#[test]
fn a_stalled_frame_is_closed_after_read_timeout() {
    let h = Harness::start(&[("read-timeout", "300")], channel_config(1000));
    let req = session().encode_append_batch(&events("stalled", 0..5));
    let bytes = frame_bytes(1, &req.buffers);
    let mut stalled = RawClient::connect(h.addr());
    stalled.send_raw(&bytes[..bytes.len() / 2]).unwrap();
    assert!(stalled.closed_within(IO_TIMEOUT), "stalled client closed");
    assert!(stalled.pending().is_empty());
    still_serving(&h, vec![], "after read-timeout");
    assert_eq!(h.count(|c| &c.event_read_fail), 1);
}

#[test]
fn full_channel_answers_failed_and_stores_nothing() {
    let h = Harness::start(&[], channel_config(4));
    let mut c = RawClient::connect(h.addr());
    let mut s = session();
    assert_eq!(
        append_batch(&mut c, &mut s, 1, &events("big", 0..10)).unwrap(),
        Ok(Status::Failed)
    );
    assert!(h.drain().is_empty(), "nothing stored for FAILED");
    // append of a single event into a channel with room: OK; the connection stayed usable.
    let one = events("one", 0..1);
    let req = s.encode_append(&one[0]);
    c.send_frame(2, &req.buffers);
    assert_eq!(
        read_answer(&mut c, &mut s, 2, req.sent).unwrap(),
        Ok(Status::Ok)
    );
    assert_same_events(&h.drain(), &one, "after FAILED");
    assert_eq!(h.count(|c| &c.channel_write_fail), 1);
    assert_eq!(h.count(|c| &c.append_batch_accepted), 0);
    assert_eq!(h.count(|c| &c.append_accepted), 1);
}

#[test]
fn max_connections_closes_the_excess() {
    let h = Harness::start(&[("max-connections", "2")], channel_config(1000));
    let mut a = RawClient::connect(h.addr());
    let mut b = RawClient::connect(h.addr());
    let (mut sa, mut sb) = (session(), session());
    let ea = events("a", 0..1);
    let eb = events("b", 0..1);
    assert_eq!(
        append_batch(&mut a, &mut sa, 1, &ea).unwrap(),
        Ok(Status::Ok)
    );
    assert_eq!(
        append_batch(&mut b, &mut sb, 1, &eb).unwrap(),
        Ok(Status::Ok)
    );
    assert_eq!(h.count(|c| &c.open_connections), 2);
    let mut excess = RawClient::connect(h.addr());
    assert!(excess.closed_within(IO_TIMEOUT), "third connection closed");
    drop(a);
    wait_until(|| h.count(|c| &c.open_connections) < 2);
    let mut expected = ea;
    expected.extend(eb);
    still_serving(&h, expected, "after max-connections");
    drop(b);
    wait_until(|| h.count(|c| &c.open_connections) == 0);
}

#[test]
fn idle_timeout_closes_quiet_connections() {
    let h = Harness::start(&[("idle-timeout", "200")], channel_config(1000));
    let mut c = RawClient::connect(h.addr());
    let mut s = session();
    let evs = events("idle", 0..2);
    assert_eq!(
        append_batch(&mut c, &mut s, 1, &evs).unwrap(),
        Ok(Status::Ok)
    );
    assert!(c.closed_within(IO_TIMEOUT), "idle connection closed");
    still_serving(&h, evs, "after idle-timeout");
}

/// Polls `cond` for at most 10 s.
fn wait_until(cond: impl Fn() -> bool) {
    let end = Instant::now() + IO_TIMEOUT;
    while !cond() {
        assert!(Instant::now() < end, "condition not reached in time");
        std::thread::sleep(Duration::from_millis(10));
    }
}
