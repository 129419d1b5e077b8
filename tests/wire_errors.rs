//! Bad input: each case asserts the specific error (and, where a reply is due, the exact
//! Java-compatible reply).

use bytes::{BufMut, Bytes, BytesMut};
use sluicegate::avro::{self, AvroDecodeError};
use sluicegate::wire::protocol::{protocol_md5, FLUME_PROTOCOL_MD5};
use sluicegate::wire::{
    FlumeMessage, Frame, FrameCodec, FrameError, FrameLimits, HandshakeError, HandshakeRequest,
    ParamsError, ProtocolCache, ServerAction, ServerSession, SessionLimits, WireError,
};
use sluicegate::Event;
use tokio_util::codec::Decoder;

fn decode_all(bytes: &[u8], limits: FrameLimits) -> Result<Option<Frame>, FrameError> {
    let mut codec = FrameCodec::with_limits(limits);
    let mut buf = BytesMut::from(bytes);
    codec.decode(&mut buf)
}

fn header(serial: i32, count: i32) -> Vec<u8> {
    let mut v = serial.to_be_bytes().to_vec();
    v.extend_from_slice(&count.to_be_bytes());
    v
}

#[test]
fn truncated_frame_waits_then_fails_at_eof() {
    let wire = Frame::new(5, vec![Bytes::from_static(b"hello"), Bytes::new()]).to_bytes();
    for cut in 0..wire.len() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&wire[..cut]);
        assert!(codec.decode(&mut buf).unwrap().is_none(), "cut {cut}");
        let eof = codec.decode_eof(&mut buf);
        if cut == 0 {
            assert!(eof.unwrap().is_none());
        } else {
            assert!(
                matches!(eof, Err(FrameError::TruncatedAtEof { .. })),
                "cut {cut}: {eof:?}"
            );
        }
    }
}

#[test]
fn bad_counts_and_lengths_are_typed_errors() {
    let d = FrameLimits::default();
    assert!(matches!(
        decode_all(&header(1, 0), d),
        Err(FrameError::ZeroCount { serial: 1 })
    ));
    assert!(matches!(
        decode_all(&header(1, -3), d),
        Err(FrameError::NegativeCount { count: -3, .. })
    ));
    let mut neg = header(2, 2);
    neg.extend_from_slice(&0i32.to_be_bytes());
    neg.extend_from_slice(&(-1i32).to_be_bytes());
    assert!(matches!(
        decode_all(&neg, d),
        Err(FrameError::NegativeLength {
            index: 1,
            len: -1,
            ..
        })
    ));
    let mut huge = header(3, 1);
    huge.extend_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        decode_all(&huge, d),
        Err(FrameError::BufferTooLarge { index: 0, .. })
    ));
    assert!(matches!(
        decode_all(&header(4, i32::MAX), d),
        Err(FrameError::TooManyBuffers { .. })
    ));
    let small = FrameLimits {
        max_buffers: 4,
        max_buffer_len: 100,
        max_frame_bytes: 150,
    };
    assert!(matches!(
        decode_all(&header(5, 5), small),
        Err(FrameError::TooManyBuffers {
            count: 5,
            max: 4,
            ..
        })
    ));
    let two = Frame::new(
        6,
        vec![Bytes::from(vec![0u8; 100]), Bytes::from(vec![0u8; 100])],
    );
    assert!(matches!(
        decode_all(&two.to_bytes(), small),
        Err(FrameError::FrameTooLarge {
            len: 200,
            max: 150,
            ..
        })
    ));
    // The same caps apply when encoding.
    let mut codec = FrameCodec::with_limits(small);
    let mut dst = BytesMut::new();
    assert!(matches!(
        tokio_util::codec::Encoder::encode(&mut codec, two, &mut dst),
        Err(FrameError::FrameTooLarge { .. })
    ));
}

fn java_handshake() -> BytesMut {
    let mut out = BytesMut::new();
    HandshakeRequest {
        client_hash: FLUME_PROTOCOL_MD5,
        client_protocol: None,
        server_hash: FLUME_PROTOCOL_MD5,
        meta: Some(vec![]),
    }
    .encode(&mut out);
    out
}

fn call(name: &str, params: &[u8]) -> Bytes {
    let mut m = java_handshake();
    m.put_u8(0);
    avro::write_str(&mut m, name);
    m.put_slice(params);
    m.freeze()
}

fn batch_params(events: &[Event]) -> Vec<u8> {
    let mut p = Vec::new();
    avro::write_long(&mut p, events.len() as i64);
    for e in events {
        p.extend_from_slice(e.encoded());
    }
    p.push(0);
    p
}

fn system_error_text(reply: &[Bytes]) -> String {
    let payload: Vec<u8> = reply[2..].iter().flat_map(|b| b.iter().copied()).collect();
    assert_eq!(&payload[..2], &[1, 0], "flag true, union branch string");
    let mut pos = 2;
    avro::read_str(&payload, &mut pos).unwrap().to_string()
}

#[test]
fn garbage_before_a_handshake_is_a_system_error_and_stays_unestablished() {
    let mut s = ServerSession::new(ProtocolCache::new());
    match s.on_request(Bytes::from_static(b"GET / HTTP/1.1\r\n")) {
        ServerAction::Reject { reply, error } => {
            // 16 bytes of "hash", then union branch 'T' (0x54 = 42) is out of range.
            assert!(matches!(
                error,
                WireError::Handshake(HandshakeError::Malformed(
                    AvroDecodeError::UnexpectedEof { .. }
                )) | WireError::Handshake(HandshakeError::Malformed(
                    AvroDecodeError::BadTag { .. }
                ))
            ));
            assert!(
                reply[0].is_empty(),
                "no handshake bytes before establishment"
            );
            assert_eq!(&reply[1][..], &[0]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!s.is_established());
    match s.on_request(Bytes::from_static(b"short")) {
        ServerAction::Reject { reply, error } => {
            assert_eq!(
                error,
                WireError::Handshake(HandshakeError::Malformed(AvroDecodeError::UnexpectedEof {
                    at: 0,
                    needed: 11
                }))
            );
            assert_eq!(system_error_text(&reply), "java.io.EOFException");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unknown_message_is_rejected_with_javas_text() {
    let mut s = ServerSession::new(ProtocolCache::new());
    match s.on_request(call("bogus", &[])) {
        ServerAction::Reject { reply, error } => {
            assert_eq!(
                error,
                WireError::UnknownMessage {
                    name: "bogus".into()
                }
            );
            assert_eq!(&reply[0][..], &[0, 0, 0, 0], "handshake BOTH still sent");
            assert_eq!(
                system_error_text(&reply),
                "org.apache.avro.AvroRuntimeException: No such remote message: bogus"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(s.is_established(), "the handshake itself succeeded");
}

#[test]
fn client_protocol_lacking_append_batch() {
    let text = r#"{"protocol":"AvroSourceProtocol","namespace":"org.apache.flume.source.avro","types":[{"type":"record","name":"AvroFlumeEvent","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}],"messages":{"append":{"request":[{"name":"event","type":"AvroFlumeEvent"}],"response":"null"}}}"#;
    let hash = protocol_md5(text);
    let hs = |with_text: bool| {
        let mut m = BytesMut::new();
        HandshakeRequest {
            client_hash: hash,
            client_protocol: with_text.then(|| text.to_string()),
            server_hash: hash,
            meta: None,
        }
        .encode(&mut m);
        m
    };
    let cache = ProtocolCache::new();
    let mut s = ServerSession::new(cache.clone());
    let mut first = hs(false);
    first.put_slice(&[0, 0]); // ping
    let ServerAction::Reply(none) = s.on_request(first.freeze()) else {
        panic!("expected NONE")
    };
    assert_eq!(none.len(), 1);
    assert_eq!(none[0][0], 0x04, "NONE");
    let mut second = hs(true);
    second.put_u8(0);
    avro::write_str(&mut second, "appendBatch");
    second.put_slice(&batch_params(&[Event::from_body(b"x")]));
    match s.on_request(second.freeze()) {
        ServerAction::Reject { reply, error } => {
            assert_eq!(
                error,
                WireError::UnknownMessage {
                    name: "appendBatch".into()
                }
            );
            assert_eq!(
                reply[0][0], 0x02,
                "CLIENT: our hash differs from the one it sent"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(cache.len(), 3, "learned protocol cached");
    // `append`, which it has, works on the established connection.
    let mut m = BytesMut::new();
    m.put_u8(0);
    avro::write_str(&mut m, "append");
    m.put_slice(Event::new([("k", "v")], b"body").encoded());
    let ServerAction::Deliver(d) = s.on_request(m.freeze()) else {
        panic!("append not delivered")
    };
    assert_eq!(d.message, FlumeMessage::Append);
    assert_eq!(d.events[0].body(), b"body");
}

#[test]
fn truncated_negative_and_oversized_params() {
    let events: Vec<Event> = (0..5)
        .map(|i| Event::new([("seq", i.to_string())], b"abcdef"))
        .collect();
    let full = batch_params(&events);
    let mut s = ServerSession::new(ProtocolCache::new());
    match s.on_request(call("appendBatch", &full[..full.len() - 4])) {
        ServerAction::Reject { reply, error } => {
            assert!(matches!(
                error,
                WireError::BadParams {
                    message: FlumeMessage::AppendBatch,
                    source: ParamsError::Avro(AvroDecodeError::UnexpectedEof { .. })
                }
            ));
            assert_eq!(system_error_text(&reply), "java.io.EOFException");
        }
        other => panic!("unexpected {other:?}"),
    }

    // One event whose body length is -1.
    let mut s = ServerSession::new(ProtocolCache::new());
    match s.on_request(call("appendBatch", &[0x02, 0x00, 0x01, 0x00])) {
        ServerAction::Reject { reply, error } => {
            assert!(matches!(
                error,
                WireError::BadParams {
                    source: ParamsError::Avro(AvroDecodeError::BadLength { len: -1, .. }),
                    ..
                }
            ));
            assert_eq!(
                system_error_text(&reply),
                "org.apache.avro.AvroRuntimeException: Malformed data. Length is negative: -1"
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    // A count claiming far more events than bytes: no huge allocation, EOF error.
    let mut s = ServerSession::new(ProtocolCache::new());
    let mut p = Vec::new();
    avro::write_long(&mut p, 50_000);
    p.extend_from_slice(&[0, 0]);
    assert!(matches!(
        s.on_request(call("appendBatch", &p)),
        ServerAction::Reject {
            error: WireError::BadParams {
                source: ParamsError::Avro(AvroDecodeError::UnexpectedEof { .. }),
                ..
            },
            ..
        }
    ));

    let mut s = ServerSession::with_limits(
        ProtocolCache::new(),
        SessionLimits {
            max_batch_events: 3,
        },
    );
    match s.on_request(call("appendBatch", &full)) {
        ServerAction::Reject { error, .. } => assert_eq!(
            error,
            WireError::BadParams {
                message: FlumeMessage::AppendBatch,
                source: ParamsError::TooManyEvents { count: 5, max: 3 }
            }
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_stateless_client_resending_handshakes_gets_a_system_error() {
    let mut s = ServerSession::new(ProtocolCache::new());
    let params = batch_params(&[Event::from_body(b"x")]);
    assert!(matches!(
        s.on_request(call("appendBatch", &params)),
        ServerAction::Deliver(_)
    ));
    // The handshake is now parsed as call metadata, exactly like Java would.
    assert!(matches!(
        s.on_request(call("appendBatch", &params)),
        ServerAction::Reject { .. }
    ));
}

#[test]
fn a_different_event_schema_is_resolved_on_the_slow_path() {
    // The client's event record has its fields in the other order plus an extra field.
    let text = r#"{"protocol":"P","namespace":"other.ns","types":[{"type":"record","name":"Ev","fields":[{"name":"body","type":"bytes"},{"name":"headers","type":{"type":"map","values":"string"}},{"name":"extra","type":"long"}]}],"messages":{"appendBatch":{"request":[{"name":"events","type":{"type":"array","items":"Ev"}}],"response":"string"}}}"#;
    let mut m = BytesMut::new();
    HandshakeRequest {
        client_hash: protocol_md5(text),
        client_protocol: Some(text.into()),
        server_hash: FLUME_PROTOCOL_MD5,
        meta: None,
    }
    .encode(&mut m);
    m.put_u8(0);
    avro::write_str(&mut m, "appendBatch");
    // 2 events: body, headers, extra.
    m.put_u8(4);
    avro::write_bytes(&mut m, b"one");
    m.put_slice(&[2]);
    avro::write_str(&mut m, "k");
    avro::write_str(&mut m, "v");
    m.put_u8(0);
    avro::write_long(&mut m, 99);
    avro::write_bytes(&mut m, b"");
    m.put_u8(0);
    avro::write_long(&mut m, -5);
    m.put_u8(0);
    let mut s = ServerSession::new(ProtocolCache::new());
    let ServerAction::Deliver(d) = s.on_request(m.freeze()) else {
        panic!("not delivered")
    };
    assert_eq!(d.events.len(), 2);
    assert_eq!(d.events[0].body(), b"one");
    assert_eq!(d.events[0].header("k").as_deref(), Some("v"));
    assert_eq!(d.events[1].body(), b"");
    assert_eq!(d.events[1].header_count(), 0);
}

#[test]
fn slow_path_refuses_forged_counts_before_allocating() {
    // Fuzzer finding: a different event schema sends params to apache-avro, whose array decode
    // reserved `count` values up front (a forged count → multi-GB allocation).
    let text = r#"{"protocol":"P","types":[{"type":"record","name":"Ev","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"},{"name":"n","type":"null"}]}],"messages":{"appendBatch":{"request":[{"name":"events","type":{"type":"array","items":"Ev"}}],"response":"null"}}}"#;
    let mut m = BytesMut::new();
    HandshakeRequest {
        client_hash: protocol_md5(text),
        client_protocol: Some(text.into()),
        server_hash: FLUME_PROTOCOL_MD5,
        meta: None,
    }
    .encode(&mut m);
    m.put_u8(0);
    avro::write_str(&mut m, "appendBatch");
    avro::write_long(&mut m, 100_000_000);
    m.put_slice(&[0, 0]);
    let mut s = ServerSession::new(ProtocolCache::new());
    match s.on_request(m.freeze()) {
        ServerAction::Reject { error, .. } => assert!(
            matches!(
                &error,
                WireError::BadParams {
                    source: ParamsError::Resolve(msg),
                    ..
                } if msg.contains("more than 1000000")
            ),
            "{error}"
        ),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn malformed_aliases_in_a_client_protocol_do_not_panic() {
    // Fuzzer finding: apache-avro 0.21 unwraps alias names; the aliases are dropped first.
    let text = r#"{"protocol":"AvroSourceProtocol","namespace":"org.apache.flume.source.avro","types":[{"type":"enum","name":"Status","aliases":["F[ILED"],"symbols":["OK","FAILED","UNKNOWN"]},{"type":"record","name":"AvroFlumeEvent","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"}]}],"messages":{"append":{"request":[{"name":"event","type":"AvroFlumeEvent"}],"response":"Status"}}}"#;
    let p = sluicegate::wire::RemoteProtocol::parse(text).unwrap();
    assert!(p.message("append").unwrap().response_schema().is_ok());
}
