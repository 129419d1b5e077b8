//! Replays the byte-exact Flume 1.11 transcripts (`compat-tests/fixtures/*.json`) through the
//! pure wire layer: the client streams go through `FrameCodec` + `ServerSession` and the replies
//! must equal what the real `AvroSource` sent, buffer split included; the Java client requests
//! must equal what `ClientSession` encodes for the same events, and the real server replies
//! must decode to the outcome the Java client reported.

use std::io::Read;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use serde_json::Value;
use sluicegate::wire::{
    ClientReply, ClientSession, Frame, FrameCodec, ProtocolCache, ServerAction, ServerSession,
    Status,
};
use sluicegate::Event;
use tokio_util::codec::Decoder;

fn fixtures() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat-tests/fixtures");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p.file_stem().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 8,
        "expected the 8 Flume transcripts, found {}",
        out.len()
    );
    out
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn json_frames(v: &Value) -> Vec<Frame> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            Frame::new(
                f["serial"].as_i64().unwrap() as i32,
                f["buffers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| Bytes::from(unhex(b)))
                    .collect(),
            )
        })
        .collect()
}

/// Splits a byte stream into frames, feeding the codec `chunk` bytes at a time.
fn decode_stream(stream: &[u8], chunk: usize) -> Vec<Frame> {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(f) = codec.decode(&mut buf).expect("valid frames") {
            frames.push(f);
        }
    }
    assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    assert!(buf.is_empty(), "stream ends on a frame boundary");
    frames
}

fn inflate(stream: &[u8]) -> Vec<u8> {
    // One zlib stream per direction, sync-flushed per frame; it may end without a trailer.
    let mut out = Vec::new();
    let mut d = flate2::read::ZlibDecoder::new(stream);
    match d.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("inflate failed: {e}"),
    }
    out
}

struct Served {
    replies: Vec<Frame>,
    delivered: Vec<Vec<Event>>,
}

/// Runs one connection's client frames through a fresh `ServerSession`.
fn serve(cache: &ProtocolCache, frames: &[Frame], status: Status) -> Served {
    let mut session = ServerSession::new(cache.clone());
    let mut replies = Vec::new();
    let mut delivered = Vec::new();
    for f in frames {
        let buffers = match session.on_request(f.message()) {
            ServerAction::Reply(b) => b,
            ServerAction::Reject { reply, error } => {
                eprintln!("rejected serial {}: {error}", f.serial);
                reply
            }
            ServerAction::Deliver(d) => {
                delivered.push(d.events);
                d.reply.finish(status)
            }
        };
        replies.push(Frame::new(f.serial, buffers));
    }
    Served { replies, delivered }
}

fn status_for(scenario: &str) -> Status {
    if scenario == "source-channel-full-failed" {
        Status::Failed
    } else {
        Status::Ok
    }
}

#[test]
fn server_replies_match_flume_byte_for_byte() {
    let cache = ProtocolCache::new();
    let mut checked = 0;
    for (name, fx) in fixtures() {
        let compressed = fx["compressed"].as_bool().unwrap_or(false);
        for conn in fx["connections"].as_array().unwrap() {
            let mut c2s = unhex(&conn["client_to_server_hex"]);
            let mut s2c = unhex(&conn["server_to_client_hex"]);
            if compressed {
                c2s = inflate(&c2s);
                s2c = inflate(&s2c);
            }
            // The codec must cut the raw stream exactly where Netty did, whatever the reads.
            let frames = decode_stream(&c2s, 1);
            for chunk in [3, 4096, c2s.len().max(1)] {
                assert_eq!(decode_stream(&c2s, chunk), frames, "{name}: chunk {chunk}");
            }
            if let Some(cf) = conn.get("client_frames") {
                assert_eq!(frames, json_frames(cf), "{name}: client frames");
            }
            let served = serve(&cache, &frames, status_for(&name));
            if let Some(sf) = conn.get("server_frames") {
                assert_eq!(served.replies, json_frames(sf), "{name}: reply buffers");
            }
            let mut wire = BytesMut::new();
            for r in &served.replies {
                r.encode_into(&mut wire);
            }
            assert_eq!(
                hex::encode(&wire),
                hex::encode(&s2c),
                "{name}: server byte stream"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 11, "connections replayed");
}

#[test]
fn delivered_events_are_what_the_java_client_sent() {
    let all = fixtures();
    let (_, fx) = all
        .iter()
        .find(|(n, _)| n == "sdk-appendbatch-plain")
        .unwrap();
    let frames = json_frames(&fx["connections"][0]["client_frames"]);
    let served = serve(&ProtocolCache::new(), &frames, Status::Ok);
    assert_eq!(served.delivered.len(), 1);
    let events = &served.delivered[0];
    assert_eq!(events.len(), 5);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.header("host").as_deref(), Some("h1"));
        assert_eq!(e.header("seq").as_deref(), Some(i.to_string().as_str()));
        assert_eq!(e.body(), format!("event {i}xxxxx").as_bytes());
    }

    let (_, fx) = all
        .iter()
        .find(|(n, _)| n == "sdk-appendbatch-multi")
        .unwrap();
    let frames = json_frames(&fx["connections"][0]["client_frames"]);
    let served = serve(&ProtocolCache::new(), &frames, Status::Ok);
    let counts: Vec<usize> = served.delivered.iter().map(Vec::len).collect();
    assert_eq!(counts, [3, 3, 1]);
    for e in served.delivered.iter().flatten() {
        assert_eq!(e.body().len(), 20_000);
    }
}

#[test]
fn exact_system_error_texts() {
    let all = fixtures();
    let (_, fx) = all
        .iter()
        .find(|(n, _)| n == "source-ping-and-unknown-message")
        .unwrap();
    let conns = fx["connections"].as_array().unwrap();
    let text_of = |conn: &Value| {
        let frames = json_frames(&conn["client_frames"]);
        let served = serve(&ProtocolCache::new(), &frames, Status::Ok);
        let msg = served.replies[0].message();
        let mut session = ClientSession::new();
        let sent = session.encode_append_batch(&[]).sent;
        match session.on_response(sent, &msg).unwrap() {
            ClientReply::Answer { result, .. } => result,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        text_of(&conns[1]),
        Err("org.apache.avro.AvroRuntimeException: No such remote message: bogusMessage".into())
    );
    assert_eq!(text_of(&conns[2]), Err("java.io.EOFException".into()));
    assert_eq!(text_of(&conns[3]), Ok(Status::Ok));
}

/// Java SDK scenarios: our client encodes the same messages (splits may differ) and decodes the
/// real server's replies into the result the Java client printed.
#[test]
fn client_encoding_matches_the_java_sdk() {
    for (name, fx) in fixtures() {
        if !(name.starts_with("sdk-") || name.starts_with("avrosink-") || name.contains("full"))
            || fx["compressed"].as_bool().unwrap_or(false)
        {
            continue;
        }
        let conn = &fx["connections"][0];
        let requests = json_frames(&conn["client_frames"]);
        let replies = json_frames(&conn["server_frames"]);
        let mut session = ClientSession::new();
        for (req, rep) in requests.iter().zip(&replies) {
            // Recover the events from the Java request with our own server-side decoder.
            let mut server = ServerSession::new(ProtocolCache::new());
            if req.serial != 1 {
                // Only the first request on a connection carries a handshake.
                server.on_request(requests[0].message());
            }
            let ServerAction::Deliver(d) = server.on_request(req.message()) else {
                panic!("{name}: request {} not delivered", req.serial);
            };
            let ours = match d.message {
                sluicegate::wire::FlumeMessage::Append => session.encode_append(&d.events[0]),
                sluicegate::wire::FlumeMessage::AppendBatch => {
                    session.encode_append_batch(&d.events)
                }
            };
            let ours_msg = Frame::new(req.serial, ours.buffers).message();
            assert_eq!(
                hex::encode(&ours_msg),
                hex::encode(req.message()),
                "{name}: request {}",
                req.serial
            );
            let reply = session.on_response(ours.sent, &rep.message()).unwrap();
            let expected = if name.contains("full") {
                Status::Failed
            } else {
                Status::Ok
            };
            match reply {
                ClientReply::Answer { result, handshake } => {
                    assert_eq!(result, Ok(expected), "{name}");
                    assert_eq!(handshake.is_some(), req.serial == 1, "{name}");
                }
                other => panic!("{name}: unexpected {other:?}"),
            }
        }
        assert!(session.is_established());
    }
}

/// The avsc scenario from the client side: a NONE reply makes our client re-send with its text.
#[test]
fn client_follows_none_then_both() {
    let all = fixtures();
    let (_, fx) = all
        .iter()
        .find(|(n, _)| n == "source-none-handshake")
        .unwrap();
    let replies = json_frames(&fx["connections"][0]["server_frames"]);
    let mut session = ClientSession::with_server_hash([0x30; 16]);
    let first = session.encode_ping();
    assert!(first.sent.handshake && !first.sent.protocol_text);
    assert_eq!(
        session
            .on_response(first.sent, &replies[0].message())
            .unwrap(),
        ClientReply::Resend
    );
    let again = session.encode_ping();
    assert!(again.sent.protocol_text);
    // Our re-sent handshake names the learned server hash and carries our protocol text.
    let msg = Frame::new(0, again.buffers).message();
    assert_eq!(&msg[16..20], &[0x02, 0xec, 0x14, b'{']);
    assert_eq!(
        session
            .on_response(again.sent, &replies[1].message())
            .unwrap(),
        ClientReply::Pong {
            handshake: Some(sluicegate::wire::HandshakeMatch::Both)
        }
    );
    assert!(session.is_established());
}
