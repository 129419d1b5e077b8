//! Decode one framed `appendBatch` of 1,000 events (256-byte bodies, 3 headers) into
//! `Vec<Event>`: our zero-copy path (FrameCodec + ServerSession) vs apache-avro's generic
//! decoder on the same params. Run: `cargo bench --bench wire_decode`.

use apache_avro::Schema;
use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluicegate::wire::{
    decode_append_batch, ClientSession, Frame, FrameCodec, ProtocolCache, ServerAction,
    ServerSession,
};
use sluicegate::Event;
use tokio_util::codec::Decoder;

const EVENTS: usize = 1000;

fn batch() -> Vec<Event> {
    (0..EVENTS)
        .map(|i| {
            Event::new(
                [
                    ("host", "web-42.example.com".to_string()),
                    ("timestamp", (1_700_000_000_000u64 + i as u64).to_string()),
                    ("seq", i.to_string()),
                ],
                vec![b'x'; 256],
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let events = batch();
    let req = ClientSession::new().encode_append_batch(&events);
    let head_len = req.buffers[0].len();
    let wire = Frame::new(1, req.buffers).to_bytes();
    let cache = ProtocolCache::new();

    let mut g = c.benchmark_group("append_batch_1000x256B");
    g.throughput(Throughput::Elements(EVENTS as u64));
    // Full path from the framed bytes as read from a socket (the read buffer itself is set up
    // outside the timing): FrameCodec, the one join memcpy in Frame::message (Java sends a
    // separate header buffer), handshake, zero-copy event scan.
    g.bench_function("sluicegate_frame_to_events", |b| {
        b.iter_batched(
            || BytesMut::from(&wire[..]),
            |mut buf| {
                let mut codec = FrameCodec::new();
                let frame = codec.decode(&mut buf).unwrap().unwrap();
                let mut session = ServerSession::new(cache.clone());
                match session.on_request(frame.message()) {
                    ServerAction::Deliver(d) => black_box(d.events),
                    _ => unreachable!(),
                }
            },
            BatchSize::LargeInput,
        )
    });
    // Only the zero-copy scan of the params (message already contiguous).
    let message = {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&wire[..]);
        codec.decode(&mut buf).unwrap().unwrap().message()
    };
    g.bench_function("sluicegate_scan_params", |b| {
        b.iter(|| {
            let mut pos = head_len;
            black_box(decode_append_batch(&message, &mut pos, 100_000).unwrap())
        })
    });

    let text = include_str!("../avro-schemas/AvroSourceProtocol.avpr");
    let p: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut event = p["types"][1].clone();
    event["namespace"] = p["namespace"].clone();
    let schema = Schema::parse(&serde_json::json!({"type": "array", "items": event})).unwrap();
    let params = {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&wire[..]);
        codec
            .decode(&mut buf)
            .unwrap()
            .unwrap()
            .message()
            .slice(head_len..)
    };
    g.bench_function("apache_avro_generic", |b| {
        b.iter(|| {
            let mut input = &params[..];
            black_box(apache_avro::from_avro_datum(&schema, &mut input, None).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
