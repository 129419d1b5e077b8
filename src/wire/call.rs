//! Calls: the request/response layout after the handshake, the zero-copy event decoder, the
//! per-connection [`ServerSession`] and the client-side [`ClientSession`].
//!
//! ```text
//! request  := [HandshakeRequest]  meta:map<bytes>  name:string  params
//! response := [HandshakeResponse] meta:map<bytes>  error:boolean  (Status | union{string})
//! ```
//!
//! Server replies reproduce Java's buffer split exactly: `[handshake bytes | one empty buffer]`
//! `[meta 00]` `[flag + payload]`; pings and `NONE` replies are a single buffer.

use bytes::{BufMut, Bytes, BytesMut};

use super::handshake::{
    ClientHandshake, HandshakeMatch, HandshakeStep, ProtocolCache, ServerHandshake,
};
use super::protocol::{FlumeMessage, Md5, Status, FLUME_PROTOCOL_TEXT};
use super::schema::{prevalidate, ParamsPlan, RemoteProtocol, LOCAL_REQUESTS};
use super::{java_decode_error_text, WireError};
use crate::avro::{self, AvroDecodeError};
use crate::event::Event;
use std::sync::Arc;

/// Java's `ByteBufferOutputStream` chunk size; replies longer than this are split like Java.
pub const JAVA_CHUNK: usize = 8192;

/// Events at least this long are sent by [`ClientSession`] as their own buffer (zero-copy)
/// instead of being copied into the params chunk.
pub const ZERO_COPY_MIN_EVENT: usize = 8192;

/// Why the params of a call could not be turned into events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Not valid Avro for the request schema (truncated, negative length, bad varint, …).
    #[error(transparent)]
    Avro(#[from] AvroDecodeError),
    /// An `appendBatch` with more events than allowed.
    #[error("appendBatch carries at least {count} events, more than the limit of {max}")]
    TooManyEvents {
        /// Events declared so far (block counts summed).
        count: u64,
        /// The configured cap.
        max: usize,
    },
    /// Schema resolution from the client's request schema to ours failed.
    #[error("cannot resolve the client's request schema to Flume's: {0}")]
    Resolve(String),
}

impl ParamsError {
    /// The `e.toString()` a Java `Responder` would send for this failure.
    pub fn java_text(&self) -> String {
        match self {
            ParamsError::Avro(e) => java_decode_error_text(e),
            ParamsError::TooManyEvents { .. } => {
                format!("org.apache.avro.AvroRuntimeException: {self}")
            }
            ParamsError::Resolve(m) => format!("org.apache.avro.AvroTypeException: {m}"),
        }
    }
}

/// Decodes `appendBatch` params (`array<AvroFlumeEvent>`) at `*pos` without copying: every
/// event is a `message.slice(..)` of its own encoding. Advances `*pos` past the array.
/// Rejects more than `max_events` events before allocating for them.
pub fn decode_append_batch(
    message: &Bytes,
    pos: &mut usize,
    max_events: usize,
) -> Result<Vec<Event>, ParamsError> {
    let buf: &[u8] = message;
    let mut events: Vec<Event> = Vec::new();
    let mut total: u64 = 0;
    loop {
        let n = avro::read_block_count(buf, pos)?;
        if n == 0 {
            return Ok(events);
        }
        total = total.saturating_add(n);
        if total > max_events as u64 {
            return Err(ParamsError::TooManyEvents {
                count: total,
                max: max_events,
            });
        }
        // Every event takes at least 2 bytes: never reserve for more than can be present.
        let possible = (buf.len() - *pos) / 2;
        events.reserve((n as usize).min(possible));
        for _ in 0..n {
            let start = *pos;
            let body_start = Event::scan(buf, pos)?;
            events.push(Event::from_scanned(
                message.slice(start..*pos),
                body_start - start,
            ));
        }
    }
}

/// Decodes `append` params (one `AvroFlumeEvent`) at `*pos` without copying.
pub fn decode_append(message: &Bytes, pos: &mut usize) -> Result<Event, ParamsError> {
    let start = *pos;
    let body_start = Event::scan(message, pos)?;
    Ok(Event::from_scanned(
        message.slice(start..*pos),
        body_start - start,
    ))
}

/// Slow path: decode params written with another request schema, resolving to ours with
/// `apache-avro`, and re-encode the events in Flume's layout.
fn decode_resolved(
    local: FlumeMessage,
    writer: &apache_avro::Schema,
    params: &[u8],
    max_events: usize,
) -> Result<Vec<Event>, ParamsError> {
    use apache_avro::types::Value;
    let reader = match local {
        FlumeMessage::Append => &LOCAL_REQUESTS.append,
        FlumeMessage::AppendBatch => &LOCAL_REQUESTS.append_batch,
    };
    let mut input = params;
    let value = apache_avro::from_avro_datum(writer, &mut input, Some(reader))
        .map_err(|e| ParamsError::Resolve(e.to_string()))?;
    let bad = |what: &str| ParamsError::Resolve(format!("unexpected resolved value: {what}"));
    let Value::Record(mut fields) = value else {
        return Err(bad("request is not a record"));
    };
    let Some((_, field)) = fields.pop() else {
        return Err(bad("request has no field"));
    };
    let to_event = |v: Value| -> Result<Event, ParamsError> {
        let Value::Record(f) = v else {
            return Err(bad("event is not a record"));
        };
        let mut headers = Vec::new();
        let mut body = Vec::new();
        for (name, v) in f {
            match (name.as_str(), v) {
                ("headers", Value::Map(m)) => {
                    for (k, v) in m {
                        match v {
                            Value::String(s) => headers.push((k, s)),
                            _ => return Err(bad("header value is not a string")),
                        }
                    }
                }
                ("body", Value::Bytes(b)) => body = b,
                _ => return Err(bad("unknown event field")),
            }
        }
        Ok(Event::new(headers, body))
    };
    match local {
        FlumeMessage::Append => Ok(vec![to_event(field)?]),
        FlumeMessage::AppendBatch => {
            let Value::Array(items) = field else {
                return Err(bad("events is not an array"));
            };
            if items.len() > max_events {
                return Err(ParamsError::TooManyEvents {
                    count: items.len() as u64,
                    max: max_events,
                });
            }
            items.into_iter().map(to_event).collect()
        }
    }
}

/// Skips a `map<bytes>` (call metadata) at `*pos`.
fn skip_meta(buf: &[u8], pos: &mut usize) -> Result<(), AvroDecodeError> {
    loop {
        let n = avro::read_block_count(buf, pos)?;
        if n == 0 {
            return Ok(());
        }
        for _ in 0..n {
            avro::read_bytes_range(buf, pos)?;
            avro::read_bytes_range(buf, pos)?;
        }
    }
}

const META_EMPTY: &[u8] = &[0];
const STATUS_REPLY: [&[u8]; 3] = [&[0, 0], &[0, 2], &[0, 4]];

/// Splits `payload` into Java's 8192-byte chunks.
fn chunk(payload: Bytes, out: &mut Vec<Bytes>) {
    let mut p = payload;
    while p.len() > JAVA_CHUNK {
        out.push(p.split_to(JAVA_CHUNK));
    }
    out.push(p);
}

/// A reply that is owed once the caller has stored (or failed to store) delivered events.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the client waits for this reply"]
pub struct PendingReply {
    handshake: Bytes,
}

impl PendingReply {
    /// A reply for a connection whose handshake bytes are `handshake` (empty when none is due).
    pub fn new(handshake: Bytes) -> PendingReply {
        PendingReply { handshake }
    }

    /// The normal response: `[handshake | empty] [00] [00 status]` (e.g. OK on the first call is
    /// buffers `00000000`, `00`, `0000`). No allocation beyond the `Vec`.
    pub fn finish(self, status: Status) -> Vec<Bytes> {
        vec![
            self.handshake,
            Bytes::from_static(META_EMPTY),
            Bytes::from_static(STATUS_REPLY[status.index() as usize]),
        ]
    }

    /// An Avro system error (what Java sends when the handler throws): `[handshake | empty]
    /// [00] [01 00 <text>]`, the last part split at 8192 bytes like Java. Flume clients report
    /// it as `EventDeliveryException` with this text as the cause. Java's texts are
    /// `"<exception class>: <message>"`.
    pub fn system_error(self, text: &str) -> Vec<Bytes> {
        let mut payload = BytesMut::with_capacity(text.len() + 12);
        payload.put_u8(1);
        payload.put_u8(0);
        avro::write_str(&mut payload, text);
        let mut out = Vec::with_capacity(3);
        out.push(self.handshake);
        out.push(Bytes::from_static(META_EMPTY));
        chunk(payload.freeze(), &mut out);
        out
    }
}

/// Events delivered by one `append`/`appendBatch` call.
#[derive(Debug)]
pub struct Delivery {
    /// Which message carried them.
    pub message: FlumeMessage,
    /// The events; on the fast path each is a zero-copy slice of the request.
    pub events: Vec<Event>,
    /// Finish with `reply.finish(Status)` (or `reply.system_error(text)`) and send the buffers
    /// in a frame with the request's serial.
    pub reply: PendingReply,
}

/// What the transport must do with one request.
#[derive(Debug)]
pub enum ServerAction {
    /// Send these buffers (same serial) and do nothing else: a ping answer or a handshake
    /// `NONE`.
    Reply(Vec<Bytes>),
    /// The request cannot be served: send `reply` (a Java-compatible system error, the same
    /// bytes a Java `Responder` would produce) and keep the connection; `error` says why (log it,
    /// count it).
    Reject {
        /// The system-error reply to send.
        reply: Vec<Bytes>,
        /// What was wrong.
        error: WireError,
    },
    /// Store the events, then send `reply.finish(status)`.
    Deliver(Delivery),
}

/// Per-connection limits of a [`ServerSession`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Most events one `appendBatch` may carry (default 100,000).
    pub max_batch_events: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_batch_events: 100_000,
        }
    }
}

/// The pure server side of one connection: feed it each request message
/// ([`Frame::message`](super::frame::Frame::message)), act on the [`ServerAction`].
#[derive(Debug, Clone)]
pub struct ServerSession {
    handshake: ServerHandshake,
    limits: SessionLimits,
}

impl ServerSession {
    /// A new connection sharing `cache` with the others of the same server.
    pub fn new(cache: ProtocolCache) -> ServerSession {
        ServerSession::with_limits(cache, SessionLimits::default())
    }

    /// A new connection with explicit limits.
    pub fn with_limits(cache: ProtocolCache, limits: SessionLimits) -> ServerSession {
        ServerSession {
            handshake: ServerHandshake::new(cache),
            limits,
        }
    }

    /// Whether the handshake is done (no more handshakes will be read).
    pub fn is_established(&self) -> bool {
        self.handshake.is_established()
    }

    /// The client's protocol, once established.
    pub fn remote_protocol(&self) -> Option<&Arc<RemoteProtocol>> {
        self.handshake.remote()
    }

    /// Handles one request message, following Java's `Responder.respond` step by step.
    pub fn on_request(&mut self, message: Bytes) -> ServerAction {
        let was_established = self.handshake.is_established();
        let mut pos = 0;
        let (remote, hs) = match self.handshake.read(&message, &mut pos) {
            Err(e) => {
                return ServerAction::Reject {
                    reply: PendingReply::new(Bytes::new()).system_error(&e.java_text()),
                    error: WireError::Handshake(e),
                }
            }
            Ok(HandshakeStep::Unknown { response }) => return ServerAction::Reply(vec![response]),
            Ok(HandshakeStep::Established {
                remote, response, ..
            }) => (remote, response),
        };
        let reject = |hs: Bytes, text: String, error: WireError| ServerAction::Reject {
            reply: PendingReply::new(hs).system_error(&text),
            error,
        };
        let name = match skip_meta(&message, &mut pos)
            .and_then(|()| avro::read_bytes_range(&message, &mut pos).map(|r| &message[r]))
        {
            Ok(n) => n,
            Err(e) => {
                return reject(hs, java_decode_error_text(&e), WireError::MalformedCall(e));
            }
        };
        if name.is_empty() {
            return ServerAction::Reply(vec![hs]);
        }
        let name_str = String::from_utf8_lossy(name);
        let Some(rm) = remote.message(&name_str) else {
            return reject(
                hs,
                format!("org.apache.avro.AvroRuntimeException: No such remote message: {name_str}"),
                WireError::UnknownMessage {
                    name: name_str.into_owned(),
                },
            );
        };
        let Some(local) = FlumeMessage::from_name(name) else {
            return reject(
                hs,
                format!(
                    "org.apache.avro.AvroRuntimeException: No message named {name_str} in {FLUME_PROTOCOL_TEXT}"
                ),
                WireError::NotLocal {
                    name: name_str.into_owned(),
                },
            );
        };
        let max = self.limits.max_batch_events;
        let decoded = match rm.plan() {
            ParamsPlan::Fast(FlumeMessage::AppendBatch) => {
                decode_append_batch(&message, &mut pos, max)
            }
            ParamsPlan::Fast(FlumeMessage::Append) => {
                decode_append(&message, &mut pos).map(|e| vec![e])
            }
            ParamsPlan::Resolve { local, writer } => {
                match prevalidate(rm.request_json(), &message, pos) {
                    Ok(_) => decode_resolved(*local, writer, &message[pos..], max),
                    Err(e) => Err(ParamsError::Resolve(e)),
                }
            }
            ParamsPlan::Unusable(reason) => Err(ParamsError::Resolve(reason.clone())),
        };
        let events = match decoded {
            Ok(ev) => ev,
            Err(e) => {
                return reject(
                    hs,
                    e.java_text(),
                    WireError::BadParams {
                        message: local,
                        source: e,
                    },
                )
            }
        };
        if rm.is_one_way() && was_established {
            return reject(
                hs,
                format!("org.apache.avro.AvroRuntimeException: Not both one-way: {local}"),
                WireError::OneWayMismatch {
                    name: local.name().to_string(),
                },
            );
        }
        ServerAction::Deliver(Delivery {
            message: local,
            events,
            reply: PendingReply::new(hs),
        })
    }
}

/// What a request sent by a [`ClientSession`] carried; pass it back to
/// [`ClientSession::on_response`] with the matching reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentRequest {
    /// The request carried a handshake, so the reply starts with one.
    pub handshake: bool,
    /// The handshake carried our protocol text.
    pub protocol_text: bool,
    /// It was a ping (empty message name): the reply has no call response.
    pub ping: bool,
}

/// An encoded request: the frame buffers and what to expect back.
#[derive(Debug, Clone)]
pub struct EncodedRequest {
    /// The message split into buffers: `[handshake? + meta + name] [params…]`.
    pub buffers: Vec<Bytes>,
    /// Pass to [`ClientSession::on_response`].
    pub sent: SentRequest,
}

/// A decoded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientReply {
    /// Handshake `NONE`: encode the same call again (it now carries our protocol text and the
    /// learned server hash) and send it with a new serial.
    Resend,
    /// A ping was answered.
    Pong {
        /// The handshake verdict if the ping carried a handshake.
        handshake: Option<HandshakeMatch>,
    },
    /// A call was answered: a `Status`, or an Avro system error's text.
    Answer {
        /// The handshake verdict if the call carried a handshake.
        handshake: Option<HandshakeMatch>,
        /// `Ok(status)` or `Err(system error text)`.
        result: Result<Status, String>,
    },
}

/// The pure client side of one connection (what Flume's `NettyAvroRpcClient` does on the
/// wire). Send a handshake until established; don't pipeline calls before that.
#[derive(Debug, Clone, Default)]
pub struct ClientSession {
    handshake: ClientHandshake,
}

impl ClientSession {
    /// A fresh connection assuming Flume's server hash.
    pub fn new() -> ClientSession {
        ClientSession::default()
    }

    /// A fresh connection assuming a server hash learned earlier for this address.
    pub fn with_server_hash(server_hash: Md5) -> ClientSession {
        ClientSession {
            handshake: ClientHandshake::with_server_hash(server_hash),
        }
    }

    /// The handshake state (established?, learned server hash).
    pub fn handshake(&self) -> &ClientHandshake {
        &self.handshake
    }

    /// Whether requests no longer carry a handshake.
    pub fn is_established(&self) -> bool {
        self.handshake.is_established()
    }

    /// Forget the connection after a disconnect: the next request carries a handshake.
    pub fn reset(&mut self) {
        self.handshake.reset();
    }

    fn header(&self, name: &str) -> (BytesMut, SentRequest) {
        let hs = self.handshake.request();
        let sent = SentRequest {
            handshake: hs.is_some(),
            protocol_text: hs.as_ref().is_some_and(|h| h.client_protocol.is_some()),
            ping: name.is_empty(),
        };
        let mut out = BytesMut::with_capacity(if sent.protocol_text { 1400 } else { 64 });
        if let Some(hs) = hs {
            hs.encode(&mut out);
        }
        out.put_u8(0); // call metadata: empty map
        avro::write_str(&mut out, name);
        (out, sent)
    }

    /// `appendBatch(events)`: the events' encodings are written verbatim (copied into one
    /// params chunk; events of [`ZERO_COPY_MIN_EVENT`] bytes or more are passed as their own
    /// buffers without copying).
    pub fn encode_append_batch(&self, events: &[Event]) -> EncodedRequest {
        let (head, sent) = self.header(FlumeMessage::AppendBatch.name());
        let mut buffers = vec![head.freeze()];
        let small: usize = events
            .iter()
            .map(Event::encoded_len)
            .filter(|&l| l < ZERO_COPY_MIN_EVENT)
            .sum();
        let mut chunk = BytesMut::with_capacity(small + 11);
        if !events.is_empty() {
            avro::write_long(&mut chunk, events.len() as i64);
        }
        for e in events {
            let raw = e.encoded();
            if raw.len() >= ZERO_COPY_MIN_EVENT {
                if !chunk.is_empty() {
                    buffers.push(chunk.split().freeze());
                }
                buffers.push(raw.clone());
            } else {
                chunk.extend_from_slice(raw);
            }
        }
        chunk.put_u8(0);
        buffers.push(chunk.freeze());
        EncodedRequest { buffers, sent }
    }

    /// `append(event)`: the event's encoding is the params (passed without copying).
    pub fn encode_append(&self, event: &Event) -> EncodedRequest {
        let (head, sent) = self.header(FlumeMessage::Append.name());
        EncodedRequest {
            buffers: vec![head.freeze(), event.encoded().clone()],
            sent,
        }
    }

    /// A handshake ping (empty message name), as avsc sends before its first call.
    pub fn encode_ping(&self) -> EncodedRequest {
        let (head, sent) = self.header("");
        EncodedRequest {
            buffers: vec![head.freeze()],
            sent,
        }
    }

    /// Decodes the reply to a request encoded by this session and updates the handshake state.
    pub fn on_response(
        &mut self,
        sent: SentRequest,
        message: &[u8],
    ) -> Result<ClientReply, WireError> {
        let mut pos = 0;
        let verdict = if sent.handshake {
            let v = self
                .handshake
                .read_response(message, &mut pos, sent.protocol_text)?;
            if v == HandshakeMatch::None {
                return Ok(ClientReply::Resend);
            }
            Some(v)
        } else {
            None
        };
        if sent.ping {
            return Ok(ClientReply::Pong { handshake: verdict });
        }
        let bad = WireError::MalformedResponse;
        skip_meta(message, &mut pos).map_err(bad)?;
        let result = if avro::read_bool(message, &mut pos).map_err(bad)? {
            avro::read_union_index(message, &mut pos, 1).map_err(bad)?;
            let text = avro::read_bytes(message, &mut pos).map_err(bad)?;
            Err(String::from_utf8_lossy(text).into_owned())
        } else {
            let at = pos;
            let i = avro::read_long(message, &mut pos).map_err(bad)?;
            Ok(Status::from_index(i).ok_or(WireError::MalformedResponse(
                AvroDecodeError::BadTag {
                    at,
                    what: "Status",
                    value: i,
                },
            ))?)
        };
        Ok(ClientReply::Answer {
            handshake: verdict,
            result,
        })
    }
}
