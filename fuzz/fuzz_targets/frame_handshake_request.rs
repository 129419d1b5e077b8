//! Drives arbitrary bytes through `FrameCodec` and a `ServerSession` (as one connection), in
//! chunks whose sizes come from the input, and checks invariants: no panic, every reply is a
//! non-empty buffer list, a reply to an established connection never carries a handshake.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluicegate::wire::{
    ClientSession, Frame, FrameCodec, FrameLimits, ProtocolCache, ServerAction, ServerSession,
    SessionLimits, Status,
};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split % 64) + 1;
    let mut codec = FrameCodec::with_limits(FrameLimits {
        max_buffers: 1024,
        max_buffer_len: 1 << 20,
        max_frame_bytes: 1 << 20,
    });
    let mut session = ServerSession::with_limits(
        ProtocolCache::new(),
        SessionLimits {
            max_batch_events: 10_000,
        },
    );
    let mut client = ClientSession::new();
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => return, // connection would be closed
            };
            let was = session.is_established();
            let reply = match session.on_request(frame.message()) {
                ServerAction::Reply(b) => b,
                ServerAction::Reject { reply, .. } => reply,
                ServerAction::Deliver(d) => {
                    for e in &d.events {
                        let _ = e.header_map();
                        let _ = e.body();
                    }
                    d.reply.finish(Status::Ok)
                }
            };
            assert!(!reply.is_empty());
            if was {
                assert!(reply[0].is_empty(), "no handshake after establishment");
            }
            let out = Frame::new(frame.serial, reply).to_bytes();
            assert!(out.len() >= 12);
            // The client decoder must not panic on whatever it is fed either.
            let sent = client.encode_append_batch(&[]).sent;
            let _ = client.on_response(sent, &frame.message());
        }
    }
    let _ = codec.decode_eof(&mut buf);
});
