//! Flume's `AvroSourceProtocol`: the exact protocol texts Java hashes, their MD5s, the `Status`
//! enum and the message names.
//!
//! The texts are compiled in from `avro-schemas/` with `include_str!`; a test recomputes both
//! MD5s from the files, so a reformatted file cannot slip through.

use std::fmt;

/// Protocol text of released Flume ≤ 1.11.0 and Spark (Avro IDL compiler ≤ 1.11.0), exactly as
/// Java's `Protocol.toString()` prints it (1334 bytes, no trailing newline). sluicegate presents
/// this text and its hash [`FLUME_PROTOCOL_MD5`] as its own protocol, on both sides.
pub const FLUME_PROTOCOL_TEXT: &str = include_str!("../../avro-schemas/AvroSourceProtocol.avpr");

/// `MD5(FLUME_PROTOCOL_TEXT)` = `86aadae2c45474c0fe93ffd0f2350a65`.
pub const FLUME_PROTOCOL_MD5: [u8; 16] = [
    0x86, 0xaa, 0xda, 0xe2, 0xc4, 0x54, 0x74, 0xc0, 0xfe, 0x93, 0xff, 0xd0, 0xf2, 0x35, 0x0a, 0x65,
];

/// The same protocol as compiled by Avro ≥ 1.11.1 (Flume trunk): the doc comment has its
/// leading ` * ` stripped (1289 bytes).
pub const FLUME_TRUNK_PROTOCOL_TEXT: &str =
    include_str!("../../avro-schemas/AvroSourceProtocol-trunk.avpr");

/// `MD5(FLUME_TRUNK_PROTOCOL_TEXT)` = `8076c53714e01f6e2c1deb9544e7b1fe`.
pub const FLUME_TRUNK_PROTOCOL_MD5: [u8; 16] = [
    0x80, 0x76, 0xc5, 0x37, 0x14, 0xe0, 0x1f, 0x6e, 0x2c, 0x1d, 0xeb, 0x95, 0x44, 0xe7, 0xb1, 0xfe,
];

/// The `HandshakeRequest` schema (documentation and test oracle).
pub const HANDSHAKE_REQUEST_SCHEMA: &str = include_str!("../../avro-schemas/HandshakeRequest.avsc");

/// The `HandshakeResponse` schema (documentation and test oracle).
pub const HANDSHAKE_RESPONSE_SCHEMA: &str =
    include_str!("../../avro-schemas/HandshakeResponse.avsc");

/// Message name of `Status append(AvroFlumeEvent event)`.
pub const MSG_APPEND: &str = "append";
/// Message name of `Status appendBatch(array<AvroFlumeEvent> events)`.
pub const MSG_APPEND_BATCH: &str = "appendBatch";

/// An Avro protocol MD5 (`org.apache.avro.ipc.MD5`, fixed 16).
pub type Md5 = [u8; 16];

/// `MD5(text)`, the way Java's `Protocol.getMD5()` hashes `toString()`.
pub fn protocol_md5(text: &str) -> Md5 {
    use md5::{Digest, Md5 as Hasher};
    let mut h = Hasher::new();
    h.update(text.as_bytes());
    h.finalize().into()
}

/// The two Flume messages sluicegate serves and sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlumeMessage {
    /// `append(event)`: one event.
    Append,
    /// `appendBatch(events)`: an array of events.
    AppendBatch,
}

impl FlumeMessage {
    /// The Avro message name.
    pub fn name(self) -> &'static str {
        match self {
            FlumeMessage::Append => MSG_APPEND,
            FlumeMessage::AppendBatch => MSG_APPEND_BATCH,
        }
    }

    /// Looks a message name up in the local protocol.
    pub fn from_name(name: &[u8]) -> Option<FlumeMessage> {
        match name {
            b"append" => Some(FlumeMessage::Append),
            b"appendBatch" => Some(FlumeMessage::AppendBatch),
            _ => None,
        }
    }
}

impl fmt::Display for FlumeMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Flume's `enum Status { OK, FAILED, UNKNOWN }`, the response of both messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Index 0: the events were committed to every required channel.
    Ok,
    /// Index 1: the source refused the events (e.g. channel full); the sink retries.
    Failed,
    /// Index 2: never sent by Flume; decoded for completeness.
    Unknown,
}

impl Status {
    /// The Avro enum index.
    pub fn index(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::Unknown => 2,
        }
    }

    /// The enum symbol for an index.
    pub fn from_index(i: i64) -> Option<Status> {
        match i {
            0 => Some(Status::Ok),
            1 => Some(Status::Failed),
            2 => Some(Status::Unknown),
            _ => None,
        }
    }

    /// The Avro symbol (`OK`, `FAILED`, `UNKNOWN`).
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Failed => "FAILED",
            Status::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_hash_to_the_known_md5s() {
        assert_eq!(FLUME_PROTOCOL_TEXT.len(), 1334);
        assert_eq!(FLUME_TRUNK_PROTOCOL_TEXT.len(), 1289);
        assert_eq!(protocol_md5(FLUME_PROTOCOL_TEXT), FLUME_PROTOCOL_MD5);
        assert_eq!(
            protocol_md5(FLUME_TRUNK_PROTOCOL_TEXT),
            FLUME_TRUNK_PROTOCOL_MD5
        );
        assert_eq!(
            hex::encode(FLUME_PROTOCOL_MD5),
            "86aadae2c45474c0fe93ffd0f2350a65"
        );
        assert_eq!(
            hex::encode(FLUME_TRUNK_PROTOCOL_MD5),
            "8076c53714e01f6e2c1deb9544e7b1fe"
        );
    }

    #[test]
    fn status_indexes_match_the_enum_order() {
        for s in [Status::Ok, Status::Failed, Status::Unknown] {
            assert_eq!(Status::from_index(i64::from(s.index())), Some(s));
        }
        assert_eq!(Status::from_index(3), None);
    }
}
