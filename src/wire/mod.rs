//! The wire layer: pure encoders/decoders for Flume's Avro RPC over Netty framing. No I/O and
//! no tokio runtime types, so everything here is deterministic and fuzzable
//! (`fuzz/fuzz_targets/frame_handshake_request.rs`). The tokio server and client in
//! [`crate::rpc`] move bytes; every decision about bytes is made here.
//!
//! # Frame layout ([`frame`])
//!
//! ```text
//! frame  := serial:i32be count:i32be (length:i32be bytes[length]){count}
//! ```
//! One frame = one Avro message = the concatenation of its buffers. Buffer boundaries mean
//! nothing: any split is accepted, empty buffers included. `count == 0` is never written (Java's
//! decoder would swallow the next frame's first buffer) and is refused on input; negative counts
//! and lengths and more than [`frame::FrameLimits::max_buffers`] buffers are typed
//! [`frame::FrameError`]s that mean "close the connection"; buffers or frames over the byte caps
//! are recoverable errors (the decoder then discards that frame without buffering it, so a server
//! can answer its serial with an error). A partial frame simply waits for more bytes.
//!
//! # Buffer splits we produce
//!
//! * Server replies mirror Java's `Responder` exactly: `[handshake | one EMPTY buffer] [meta 00]
//!   [flag + payload, 8192-byte chunks]` — `[4,1,2]` for the first call on a connection (`BOTH`
//!   is `00 00 00 00`), `[0,1,2]` afterwards. Pings and handshake `NONE` replies are one buffer
//!   holding only the handshake bytes (empty for a ping on an established connection).
//! * Client requests: `[handshake? + meta 00 + name] [params…]`; the handshake meta is `02 00`
//!   (an empty map, as Java's `Requestor` writes it). Small events are copied into one params
//!   chunk; events ≥ [`call::ZERO_COPY_MIN_EVENT`] bytes go out as their own buffer, uncopied.
//!
//! # Handshake state machine ([`handshake`])
//!
//! Server, per connection: every request carries a `HandshakeRequest` until we have answered
//! one with `BOTH` or `CLIENT`; after that none is read (a client that keeps sending handshakes
//! gets a system error, as with Java). The client protocol is found by hash in the shared
//! [`handshake::ProtocolCache`] (seeded with Flume's released and trunk texts) or parsed from
//! the request's text and cached. `NONE` replies carry only the handshake (our protocol text and
//! hash) and leave the connection unestablished. Client: send the handshake until `BOTH`/`CLIENT`;
//! after `NONE`, re-send the same call with our protocol text and the server hash just learned
//! (a second `NONE` is an error, not a loop).
//!
//! # Requests and what is zero-copy ([`call`])
//!
//! `request := [handshake] meta:map<bytes> name:string params`. On the server the `appendBatch`
//! and `append` params are scanned in place: each [`Event`](crate::Event) is
//! `Event::from_scanned(message.slice(range), body_start)`, so its headers and body borrow the
//! received allocation (one atomic refcount bump per event, no allocation per event beyond the
//! `Vec<Event>` slot). The single memcpy of the receive path is
//! [`frame::Frame::message`] joining a multi-buffer frame into one contiguous `Bytes` (Java
//! always sends at least two buffers); a frame with one non-empty buffer is not copied at all.
//! The send path copies small events once into the params chunk and the frame codec copies the
//! buffers into the socket's write buffer.
//!
//! Invariants: decoding never panics on any input (fuzzed), never allocates in proportion to a
//! count or length it has not yet seen bytes for, and every rejection names what was wrong
//! ([`WireError`], [`call::ParamsError`], [`frame::FrameError`]). Client protocols whose
//! `append`/`appendBatch` request has another schema are decoded by `apache-avro` schema
//! resolution (slow path); Flume's own shapes always take the fast path.
//!
//! Modules: [`protocol`] texts/hashes/`Status`, [`frame`] Netty framing, [`handshake`]
//! handshake records and state machines, [`schema`] parsed client protocols, [`call`] requests,
//! responses and the two sessions. The Avro binary primitives they share live one layer down,
//! in [`crate::avro`], because [`crate::event`] needs them too.

pub mod call;
pub mod frame;
pub mod handshake;
pub mod protocol;
pub mod schema;

pub use call::{
    decode_append, decode_append_batch, ClientReply, ClientSession, Delivery, EncodedRequest,
    ParamsError, PendingReply, SentRequest, ServerAction, ServerSession, SessionLimits,
};
pub use frame::{Frame, FrameCodec, FrameError, FrameLimits};
pub use handshake::{
    ClientHandshake, ClientHandshakeError, HandshakeError, HandshakeMatch, HandshakeRequest,
    HandshakeResponse, ProtocolCache, ServerHandshake,
};
pub use protocol::{FlumeMessage, Md5, Status};
pub use schema::{ProtocolParseError, RemoteMessage, RemoteProtocol};

use crate::avro::AvroDecodeError;

/// Why a message could not be served (server) or understood (client). Framing problems are
/// [`FrameError`]s instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The handshake request was malformed or carried an unusable protocol.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The call metadata or message name was malformed.
    #[error("malformed call header: {0}")]
    MalformedCall(AvroDecodeError),
    /// The client called a message its own protocol does not declare.
    #[error("no such remote message: {name:?}")]
    UnknownMessage {
        /// The name as sent (lossy UTF-8).
        name: String,
    },
    /// The client's protocol declares a message Flume's does not have.
    #[error("message {name:?} is not part of Flume's AvroSourceProtocol")]
    NotLocal {
        /// The name as sent.
        name: String,
    },
    /// The params of an `append`/`appendBatch` could not be decoded.
    #[error("bad {message} params: {source}")]
    BadParams {
        /// Which message.
        message: FlumeMessage,
        /// What was wrong.
        source: ParamsError,
    },
    /// The client's protocol declares the message one-way; Flume's are two-way.
    #[error("message {name:?} is one-way in the client's protocol but two-way here")]
    OneWayMismatch {
        /// The message name.
        name: String,
    },
    /// The server's handshake response was unusable.
    #[error(transparent)]
    ClientHandshake(#[from] ClientHandshakeError),
    /// A response was not valid Avro for Flume's response layout.
    #[error("malformed response: {0}")]
    MalformedResponse(AvroDecodeError),
}

/// The `e.toString()` a Java `BinaryDecoder` failure produces for the same problem (what
/// Java's `Responder` would put in its system error).
pub fn java_decode_error_text(e: &AvroDecodeError) -> String {
    match e {
        AvroDecodeError::UnexpectedEof { .. } => "java.io.EOFException".to_string(),
        AvroDecodeError::BadLength { len, .. } if *len < 0 => {
            format!(
                "org.apache.avro.AvroRuntimeException: Malformed data. Length is negative: {len}"
            )
        }
        AvroDecodeError::BadVarint { .. } => {
            "org.apache.avro.InvalidNumberEncodingException: Invalid long encoding".to_string()
        }
        AvroDecodeError::IntOutOfRange { .. } => {
            "org.apache.avro.InvalidNumberEncodingException: Invalid int encoding".to_string()
        }
        other => format!("org.apache.avro.AvroRuntimeException: {other}"),
    }
}
