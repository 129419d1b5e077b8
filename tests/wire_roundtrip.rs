//! Property tests with `apache-avro` as the oracle: events encoded by apache-avro (schema parsed
//! from `avro-schemas/AvroSourceProtocol.avpr`), split into random Netty buffers and fed to the
//! codec in random chunks, must come out of `ServerSession` with the same headers and bodies;
//! and `ClientSession`'s `appendBatch` params must decode with apache-avro to the same events.

use std::collections::{BTreeMap, HashMap};

use apache_avro::types::Value;
use apache_avro::Schema;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sluicegate::wire::{
    ClientSession, Frame, FrameCodec, ProtocolCache, ServerAction, ServerSession, Status,
};
use sluicegate::Event;
use tokio_util::codec::Decoder;

/// `array<AvroFlumeEvent>` built from the protocol file itself.
fn batch_schema() -> Schema {
    let text = include_str!("../avro-schemas/AvroSourceProtocol.avpr");
    let p: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut event = p["types"][1].clone();
    assert_eq!(event["name"], "AvroFlumeEvent");
    event["namespace"] = p["namespace"].clone();
    Schema::parse(&serde_json::json!({"type": "array", "items": event})).unwrap()
}

type Ev = (BTreeMap<String, String>, Vec<u8>);

fn oracle_encode(schema: &Schema, events: &[Ev]) -> Vec<u8> {
    let items = events
        .iter()
        .map(|(h, b)| {
            Value::Record(vec![
                (
                    "headers".into(),
                    Value::Map(
                        h.iter()
                            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                            .collect::<HashMap<_, _>>(),
                    ),
                ),
                ("body".into(), Value::Bytes(b.clone())),
            ])
        })
        .collect();
    apache_avro::to_avro_datum(schema, Value::Array(items)).unwrap()
}

fn oracle_decode(schema: &Schema, params: &[u8]) -> Vec<Ev> {
    let mut input = params;
    let v = apache_avro::from_avro_datum(schema, &mut input, None).unwrap();
    assert!(input.is_empty(), "apache-avro left {} bytes", input.len());
    let Value::Array(items) = v else {
        panic!("not an array")
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Record(f) = item else {
                panic!("not a record")
            };
            let mut h = BTreeMap::new();
            let mut body = Vec::new();
            for (name, v) in f {
                match (name.as_str(), v) {
                    ("headers", Value::Map(m)) => {
                        for (k, v) in m {
                            let Value::String(s) = v else { panic!() };
                            h.insert(k, s);
                        }
                    }
                    ("body", Value::Bytes(b)) => body = b,
                    other => panic!("unexpected field {other:?}"),
                }
            }
            (h, body)
        })
        .collect()
}

fn as_ev(e: &Event) -> Ev {
    (e.header_map().into_iter().collect(), e.body().to_vec())
}

fn event_strategy() -> impl Strategy<Value = Ev> {
    (
        prop::collection::btree_map("\\PC{0,12}", "\\PC{0,24}", 0..5),
        prop_oneof![
            4 => prop::collection::vec(any::<u8>(), 0..64),
            1 => prop::collection::vec(any::<u8>(), 8000..30000),
        ],
    )
}

/// Splits `msg` at the given (sorted, deduplicated) cut points, keeping empty buffers.
fn split(msg: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (msg.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(Bytes::copy_from_slice(&msg[last..p]));
        last = p;
    }
    out.push(Bytes::copy_from_slice(&msg[last..]));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn oracle_encoded_batches_decode_zero_copy(
        events in prop::collection::vec(event_strategy(), 0..20),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
        chunk in 1usize..5000,
        serial in any::<i32>(),
    ) {
        let schema = batch_schema();
        let params = oracle_encode(&schema, &events);
        // Handshake + meta + name exactly as a Java client writes them.
        let head = ClientSession::new().encode_append_batch(&[]).buffers.remove(0);
        let mut msg = head.to_vec();
        msg.extend_from_slice(&params);
        let frame = Frame::new(serial, split(&msg, &cuts));
        let wire = frame.to_bytes();

        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        let mut got = None;
        for piece in wire.chunks(chunk) {
            prop_assert!(got.is_none());
            buf.extend_from_slice(piece);
            got = codec.decode(&mut buf).unwrap();
        }
        let got = got.expect("frame decoded");
        prop_assert_eq!(&got, &frame);
        let message = got.message();
        let mut session = ServerSession::new(ProtocolCache::new());
        let ServerAction::Deliver(d) = session.on_request(message.clone()) else {
            panic!("not delivered");
        };
        let decoded: Vec<Ev> = d.events.iter().map(as_ev).collect();
        prop_assert_eq!(&decoded, &events);
        // Zero-copy: every event lies inside the received message.
        let range = message.as_ptr() as usize..message.as_ptr() as usize + message.len();
        for e in &d.events {
            prop_assert!(range.contains(&(e.encoded().as_ptr() as usize)) || e.encoded().is_empty());
        }
        let reply = d.reply.finish(Status::Ok);
        prop_assert_eq!(reply.iter().map(Bytes::len).collect::<Vec<_>>(), vec![4, 1, 2]);
    }

    #[test]
    fn client_encoding_decodes_with_apache_avro(
        events in prop::collection::vec(event_strategy(), 0..20),
    ) {
        let schema = batch_schema();
        let ours: Vec<Event> = events.iter().map(|(h, b)| Event::new(h, b)).collect();
        let req = ClientSession::new().encode_append_batch(&ours);
        prop_assert!(req.sent.handshake);
        let params: Vec<u8> = req.buffers[1..].iter().flat_map(|b| b.iter().copied()).collect();
        prop_assert_eq!(oracle_decode(&schema, &params), events.clone());
        // Large events travel as their own, uncopied buffer.
        for e in ours.iter().filter(|e| e.encoded_len() >= sluicegate::wire::call::ZERO_COPY_MIN_EVENT) {
            prop_assert!(req.buffers.iter().any(|b| b.as_ptr() == e.encoded().as_ptr()));
        }
    }
}
