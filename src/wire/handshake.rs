//! The Avro IPC handshake (spec §2.2–§2.4): records, the shared client-protocol cache and the
//! per-connection state machines of both roles.
//!
//! Server ([`ServerHandshake`], Java `Responder.handshake`): until a non-`NONE` reply has been
//! sent on a connection, every request starts with a `HandshakeRequest`; afterwards none is read.
//! The client's protocol is looked up by `clientHash` in the [`ProtocolCache`] (shared by all
//! connections, pre-seeded with both Flume texts); if unknown and the request carries the text,
//! the text is parsed and cached. `match = serverHash == ours ? (known ? BOTH : NONE)
//! : (known ? CLIENT : NONE)`; every non-`BOTH` reply carries our protocol text and hash.
//!
//! Client ([`ClientHandshake`], Java `Requestor`): prefix a `HandshakeRequest` (meta `02 00`, as
//! Java writes it) until a `BOTH`/`CLIENT` reply; after `NONE` re-send the call with our protocol
//! text and the server hash learned from the reply.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use bytes::{BufMut, Bytes, BytesMut};

use super::protocol::{
    protocol_md5, Md5, FLUME_PROTOCOL_MD5, FLUME_PROTOCOL_TEXT, FLUME_TRUNK_PROTOCOL_TEXT,
};
use super::schema::{ProtocolParseError, RemoteProtocol};
use crate::avro::{self, AvroDecodeError};

/// `HandshakeMatch` enum of the handshake response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeMatch {
    /// Both sides know each other's protocol (index 0, byte `00`).
    Both,
    /// The server knows the client's protocol; the client must learn the server's (`02`).
    Client,
    /// The server does not know the client's protocol: re-send with its text (`04`).
    None,
}

impl HandshakeMatch {
    fn index(self) -> i64 {
        match self {
            HandshakeMatch::Both => 0,
            HandshakeMatch::Client => 1,
            HandshakeMatch::None => 2,
        }
    }
}

/// Avro `map<bytes>` handshake metadata, in wire order.
pub type Meta = Vec<(String, Bytes)>;

/// `org.apache.avro.ipc.HandshakeRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// MD5 of the client's protocol text.
    pub client_hash: Md5,
    /// The client's protocol text, sent only after a `NONE` reply.
    pub client_protocol: Option<String>,
    /// The hash the client believes the server has.
    pub server_hash: Md5,
    /// Metadata; Java clients send an empty map (`02 00`), avsc/Python send null (`00`).
    pub meta: Option<Meta>,
}

/// `org.apache.avro.ipc.HandshakeResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// The match verdict.
    pub match_: HandshakeMatch,
    /// The server's protocol text (present unless `BOTH`).
    pub server_protocol: Option<String>,
    /// The server's protocol hash (present unless `BOTH`).
    pub server_hash: Option<Md5>,
    /// Metadata; Java servers send null.
    pub meta: Option<Meta>,
}

fn write_meta(out: &mut BytesMut, meta: &Option<Meta>) {
    match meta {
        None => out.put_u8(0),
        Some(m) => {
            out.put_u8(2);
            if !m.is_empty() {
                avro::write_long(out, m.len() as i64);
                for (k, v) in m {
                    avro::write_str(out, k);
                    avro::write_bytes(out, v);
                }
            }
            out.put_u8(0);
        }
    }
}

fn read_meta(buf: &[u8], pos: &mut usize) -> Result<Option<Meta>, AvroDecodeError> {
    if avro::read_union_index(buf, pos, 2)? == 0 {
        return Ok(None);
    }
    let mut m = Vec::new();
    loop {
        let n = avro::read_block_count(buf, pos)?;
        if n == 0 {
            return Ok(Some(m));
        }
        for _ in 0..n {
            let k = avro::read_str(buf, pos)?.to_string();
            let v = Bytes::copy_from_slice(avro::read_bytes(buf, pos)?);
            m.push((k, v));
        }
    }
}

fn read_md5(buf: &[u8], pos: &mut usize) -> Result<Md5, AvroDecodeError> {
    let s = avro::read_fixed(buf, pos, 16)?;
    let mut h = [0u8; 16];
    h.copy_from_slice(s);
    Ok(h)
}

fn read_opt_str(buf: &[u8], pos: &mut usize) -> Result<Option<String>, AvroDecodeError> {
    if avro::read_union_index(buf, pos, 2)? == 0 {
        return Ok(None);
    }
    Ok(Some(avro::read_str(buf, pos)?.to_string()))
}

impl HandshakeRequest {
    /// Appends the Avro encoding.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.client_hash);
        match &self.client_protocol {
            None => out.put_u8(0),
            Some(p) => {
                out.put_u8(2);
                avro::write_str(out, p);
            }
        }
        out.put_slice(&self.server_hash);
        write_meta(out, &self.meta);
    }

    /// Decodes one request at `*pos`, advancing it.
    pub fn decode(buf: &[u8], pos: &mut usize) -> Result<HandshakeRequest, AvroDecodeError> {
        Ok(HandshakeRequest {
            client_hash: read_md5(buf, pos)?,
            client_protocol: read_opt_str(buf, pos)?,
            server_hash: read_md5(buf, pos)?,
            meta: read_meta(buf, pos)?,
        })
    }
}

impl HandshakeResponse {
    /// Appends the Avro encoding.
    pub fn encode(&self, out: &mut BytesMut) {
        avro::write_long(out, self.match_.index());
        match &self.server_protocol {
            None => out.put_u8(0),
            Some(p) => {
                out.put_u8(2);
                avro::write_str(out, p);
            }
        }
        match &self.server_hash {
            None => out.put_u8(0),
            Some(h) => {
                out.put_u8(2);
                out.put_slice(h);
            }
        }
        write_meta(out, &self.meta);
    }

    /// Decodes one response at `*pos`, advancing it.
    pub fn decode(buf: &[u8], pos: &mut usize) -> Result<HandshakeResponse, AvroDecodeError> {
        let at = *pos;
        let match_ = match avro::read_long(buf, pos)? {
            0 => HandshakeMatch::Both,
            1 => HandshakeMatch::Client,
            2 => HandshakeMatch::None,
            v => {
                return Err(AvroDecodeError::BadTag {
                    at,
                    what: "HandshakeMatch",
                    value: v,
                })
            }
        };
        let server_protocol = read_opt_str(buf, pos)?;
        let server_hash = if avro::read_union_index(buf, pos, 2)? == 1 {
            Some(read_md5(buf, pos)?)
        } else {
            None
        };
        Ok(HandshakeResponse {
            match_,
            server_protocol,
            server_hash,
            meta: read_meta(buf, pos)?,
        })
    }

    /// The bytes the server sends for a verdict (constant per verdict: `BOTH` is `00 00 00 00`,
    /// the others carry the Flume protocol text and hash).
    pub fn server_bytes(m: HandshakeMatch) -> Bytes {
        static BYTES: LazyLock<[Bytes; 3]> = LazyLock::new(|| {
            [
                HandshakeMatch::Both,
                HandshakeMatch::Client,
                HandshakeMatch::None,
            ]
            .map(|m| {
                let both = m == HandshakeMatch::Both;
                let r = HandshakeResponse {
                    match_: m,
                    server_protocol: (!both).then(|| FLUME_PROTOCOL_TEXT.to_string()),
                    server_hash: (!both).then_some(FLUME_PROTOCOL_MD5),
                    meta: None,
                };
                let mut out = BytesMut::new();
                r.encode(&mut out);
                out.freeze()
            })
        });
        BYTES[m.index() as usize].clone()
    }
}

/// Client protocols known to a server, keyed by MD5. Cheap to clone (an `Arc`), thread-safe,
/// meant to be shared by every connection of one source. Pre-seeded with Flume's released and
/// trunk texts; learned protocols are added up to a size cap (default 1024) so a client cycling
/// through made-up protocols cannot grow it without bound.
#[derive(Debug, Clone)]
pub struct ProtocolCache {
    inner: Arc<RwLock<HashMap<Md5, Arc<RemoteProtocol>>>>,
    max_entries: usize,
}

impl Default for ProtocolCache {
    fn default() -> Self {
        ProtocolCache::new()
    }
}

impl ProtocolCache {
    /// Default cap on the number of cached protocols.
    pub const DEFAULT_MAX_ENTRIES: usize = 1024;

    /// A cache holding both Flume protocols.
    pub fn new() -> ProtocolCache {
        ProtocolCache::with_max_entries(Self::DEFAULT_MAX_ENTRIES)
    }

    /// A cache holding both Flume protocols that learns at most `max_entries` protocols in all.
    pub fn with_max_entries(max_entries: usize) -> ProtocolCache {
        static SEEDS: LazyLock<[Arc<RemoteProtocol>; 2]> = LazyLock::new(|| {
            [FLUME_PROTOCOL_TEXT, FLUME_TRUNK_PROTOCOL_TEXT]
                .map(|t| Arc::new(RemoteProtocol::parse(t).expect("Flume protocol texts parse")))
        });
        let mut map = HashMap::new();
        for p in SEEDS.iter() {
            map.insert(p.hash(), p.clone());
        }
        ProtocolCache {
            inner: Arc::new(RwLock::new(map)),
            max_entries,
        }
    }

    /// The protocol with this hash, if known.
    pub fn get(&self, hash: &Md5) -> Option<Arc<RemoteProtocol>> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
            .cloned()
    }

    /// Caches a protocol under its own hash. Returns false when the cache is full.
    pub fn insert(&self, protocol: Arc<RemoteProtocol>) -> bool {
        let mut map = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.max_entries && !map.contains_key(&protocol.hash()) {
            return false;
        }
        map.insert(protocol.hash(), protocol);
        true
    }

    /// Number of cached protocols (including the two seeds).
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Never true (the seeds are always present); for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a server could not process a handshake. Java answers with a system error (and keeps
/// the connection, unestablished); [`HandshakeError::java_text`] gives that text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The bytes where a `HandshakeRequest` must be are not one.
    #[error("malformed handshake request: {0}")]
    Malformed(#[from] AvroDecodeError),
    /// The client's protocol text could not be parsed.
    #[error("client protocol rejected: {0}")]
    BadProtocol(#[from] ProtocolParseError),
}

impl HandshakeError {
    /// The `e.toString()` Java's `Responder` would send for this failure.
    pub fn java_text(&self) -> String {
        match self {
            HandshakeError::Malformed(e) => super::java_decode_error_text(e),
            HandshakeError::BadProtocol(e) => format!("org.apache.avro.SchemaParseException: {e}"),
        }
    }
}

/// Result of [`ServerHandshake::read`].
#[derive(Debug, Clone)]
pub enum HandshakeStep {
    /// The client's protocol is known. `response` is the handshake to prefix to the reply:
    /// empty when the connection was already established (no handshake was read), `BOTH`'s
    /// `00 00 00 00`, or `CLIENT` with our protocol.
    Established {
        /// The client's protocol.
        remote: Arc<RemoteProtocol>,
        /// Handshake response bytes (empty if none is due).
        response: Bytes,
        /// The verdict sent, `None` if the connection was already established.
        verdict: Option<HandshakeMatch>,
    },
    /// `NONE`: reply with exactly `response` (nothing else); the client will re-send.
    Unknown {
        /// The `NONE` handshake response (carries our protocol text and hash).
        response: Bytes,
    },
}

/// The server side of one connection's handshake.
#[derive(Debug, Clone)]
pub struct ServerHandshake {
    cache: ProtocolCache,
    remote: Option<Arc<RemoteProtocol>>,
}

impl ServerHandshake {
    /// A fresh (unestablished) connection using the shared cache.
    pub fn new(cache: ProtocolCache) -> ServerHandshake {
        ServerHandshake {
            cache,
            remote: None,
        }
    }

    /// Whether a non-`NONE` reply has been produced on this connection.
    pub fn is_established(&self) -> bool {
        self.remote.is_some()
    }

    /// The client's protocol once established.
    pub fn remote(&self) -> Option<&Arc<RemoteProtocol>> {
        self.remote.as_ref()
    }

    /// Reads the handshake at the start of a request (if one is due), advancing `*pos`, and
    /// updates the connection state exactly like Java's `Responder.handshake`.
    ///
    /// A learned protocol text is cached only when `MD5(text) == clientHash` (Java caches it
    /// blindly; checking keeps one client from poisoning the cache for others). It is used for
    /// this connection either way.
    pub fn read(&mut self, msg: &[u8], pos: &mut usize) -> Result<HandshakeStep, HandshakeError> {
        if let Some(remote) = &self.remote {
            return Ok(HandshakeStep::Established {
                remote: remote.clone(),
                response: Bytes::new(),
                verdict: None,
            });
        }
        let req = HandshakeRequest::decode(msg, pos)?;
        let mut remote = self.cache.get(&req.client_hash);
        if remote.is_none() {
            if let Some(text) = &req.client_protocol {
                let parsed = Arc::new(RemoteProtocol::parse(text)?);
                if parsed.hash() == req.client_hash {
                    if !self.cache.insert(parsed.clone()) {
                        tracing::warn!(
                            "client protocol cache is full; protocol {} not cached",
                            hex::encode(req.client_hash)
                        );
                    }
                } else {
                    tracing::debug!(
                        claimed = %hex::encode(req.client_hash),
                        actual = %hex::encode(protocol_md5(text)),
                        "client protocol text does not match its hash; not caching it"
                    );
                }
                remote = Some(parsed);
            }
        }
        let verdict = match (&remote, req.server_hash == FLUME_PROTOCOL_MD5) {
            (None, _) => HandshakeMatch::None,
            (Some(_), true) => HandshakeMatch::Both,
            (Some(_), false) => HandshakeMatch::Client,
        };
        let response = HandshakeResponse::server_bytes(verdict);
        match remote {
            None => Ok(HandshakeStep::Unknown { response }),
            Some(remote) => {
                self.remote = Some(remote.clone());
                Ok(HandshakeStep::Established {
                    remote,
                    response,
                    verdict: Some(verdict),
                })
            }
        }
    }
}

/// Why a client could not use a handshake response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientHandshakeError {
    /// The reply does not start with a valid `HandshakeResponse`.
    #[error("malformed handshake response: {0}")]
    Malformed(#[from] AvroDecodeError),
    /// `NONE` again although our protocol text was sent: the server cannot use it.
    #[error("server answered handshake NONE even after receiving our protocol text")]
    Rejected,
    /// `CLIENT`/`NONE` without the server hash.
    #[error("handshake {0:?} response lacks the server hash")]
    MissingServerHash(HandshakeMatch),
}

/// The client side of one connection's handshake.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    server_hash: Md5,
    send_text: bool,
    established: bool,
    server_protocol: Option<String>,
}

impl Default for ClientHandshake {
    fn default() -> Self {
        ClientHandshake::new()
    }
}

impl ClientHandshake {
    /// A fresh connection that assumes the server speaks Flume's protocol.
    pub fn new() -> ClientHandshake {
        ClientHandshake::with_server_hash(FLUME_PROTOCOL_MD5)
    }

    /// A fresh connection that assumes the server hash learned earlier for this address (Java's
    /// JVM-wide `REMOTE_HASHES`; keep such a map in the RPC layer if wanted).
    pub fn with_server_hash(server_hash: Md5) -> ClientHandshake {
        ClientHandshake {
            server_hash,
            send_text: false,
            established: false,
            server_protocol: None,
        }
    }

    /// Whether a `BOTH`/`CLIENT` reply has been received (no more handshakes are sent).
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The server hash sent in the next handshake (learned from `CLIENT`/`NONE` replies).
    pub fn server_hash(&self) -> Md5 {
        self.server_hash
    }

    /// The server protocol text, if a `CLIENT`/`NONE` reply carried one.
    pub fn server_protocol(&self) -> Option<&str> {
        self.server_protocol.as_deref()
    }

    /// Forgets the connection (after a disconnect): the next request carries a handshake.
    pub fn reset(&mut self) {
        self.established = false;
        self.send_text = false;
    }

    /// The handshake request the next call must carry, or `None` once established.
    pub fn request(&self) -> Option<HandshakeRequest> {
        (!self.established).then(|| HandshakeRequest {
            client_hash: FLUME_PROTOCOL_MD5,
            client_protocol: self.send_text.then(|| FLUME_PROTOCOL_TEXT.to_string()),
            server_hash: self.server_hash,
            meta: Some(Vec::new()),
        })
    }

    /// Whether a request carrying our protocol text is outstanding.
    pub fn sent_text(&self) -> bool {
        self.send_text
    }

    /// Reads the handshake response of a call that carried a handshake and updates the state
    /// like Java's `Requestor.readHandshake`. `sent_text` says whether that call carried our text.
    pub fn read_response(
        &mut self,
        msg: &[u8],
        pos: &mut usize,
        sent_text: bool,
    ) -> Result<HandshakeMatch, ClientHandshakeError> {
        let r = HandshakeResponse::decode(msg, pos)?;
        match r.match_ {
            HandshakeMatch::Both => {
                self.established = true;
                self.send_text = false;
            }
            HandshakeMatch::Client | HandshakeMatch::None => {
                let hash = r
                    .server_hash
                    .ok_or(ClientHandshakeError::MissingServerHash(r.match_))?;
                self.server_hash = hash;
                self.server_protocol = r.server_protocol;
                if r.match_ == HandshakeMatch::Client {
                    self.established = true;
                    self.send_text = false;
                } else {
                    if sent_text {
                        return Err(ClientHandshakeError::Rejected);
                    }
                    self.send_text = true;
                }
            }
        }
        Ok(r.match_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_client_handshake_bytes() {
        let hs = ClientHandshake::new().request().unwrap();
        let mut out = BytesMut::new();
        hs.encode(&mut out);
        assert_eq!(
            hex::encode(&out),
            "86aadae2c45474c0fe93ffd0f2350a650086aadae2c45474c0fe93ffd0f2350a650200"
        );
        let mut pos = 0;
        assert_eq!(HandshakeRequest::decode(&out, &mut pos).unwrap(), hs);
        assert_eq!(pos, out.len());
    }

    #[test]
    fn server_verdict_bytes() {
        assert_eq!(
            &HandshakeResponse::server_bytes(HandshakeMatch::Both)[..],
            &[0, 0, 0, 0]
        );
        let none = HandshakeResponse::server_bytes(HandshakeMatch::None);
        assert_eq!(&none[..4], &[0x04, 0x02, 0xec, 0x14]);
        assert_eq!(none.len(), 4 + 1334 + 1 + 16 + 1);
        let mut pos = 0;
        let r = HandshakeResponse::decode(&none, &mut pos).unwrap();
        assert_eq!(r.match_, HandshakeMatch::None);
        assert_eq!(r.server_protocol.as_deref(), Some(FLUME_PROTOCOL_TEXT));
        assert_eq!(r.server_hash, Some(FLUME_PROTOCOL_MD5));
    }

    #[test]
    fn server_state_machine_none_then_both_then_silent() {
        let cache = ProtocolCache::new();
        let text = r#"{"protocol":"X","messages":{}}"#;
        let hash = protocol_md5(text);
        let mut hs = ServerHandshake::new(cache.clone());
        let req = |proto: Option<&str>, server: Md5| {
            let mut out = BytesMut::new();
            HandshakeRequest {
                client_hash: hash,
                client_protocol: proto.map(str::to_string),
                server_hash: server,
                meta: None,
            }
            .encode(&mut out);
            out
        };
        let m = req(None, hash);
        let mut pos = 0;
        assert!(matches!(
            hs.read(&m, &mut pos).unwrap(),
            HandshakeStep::Unknown { .. }
        ));
        assert!(!hs.is_established());
        let m = req(Some(text), FLUME_PROTOCOL_MD5);
        let mut pos = 0;
        match hs.read(&m, &mut pos).unwrap() {
            HandshakeStep::Established {
                verdict, response, ..
            } => {
                assert_eq!(verdict, Some(HandshakeMatch::Both));
                assert_eq!(&response[..], &[0, 0, 0, 0]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(pos, m.len());
        // Established: nothing is read any more.
        let mut pos = 0;
        match hs.read(b"garbage", &mut pos).unwrap() {
            HandshakeStep::Established { response, .. } => assert!(response.is_empty()),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(pos, 0);
        // Learned protocol is shared: a new connection with the wrong server hash gets CLIENT.
        let mut hs2 = ServerHandshake::new(cache);
        let m = req(None, hash);
        let mut pos = 0;
        assert!(matches!(
            hs2.read(&m, &mut pos).unwrap(),
            HandshakeStep::Established {
                verdict: Some(HandshakeMatch::Client),
                ..
            }
        ));
    }

    #[test]
    fn client_state_machine_none_resends_with_text_then_both() {
        let mut c = ClientHandshake::with_server_hash([9; 16]);
        assert!(c.request().unwrap().client_protocol.is_none());
        let none = HandshakeResponse::server_bytes(HandshakeMatch::None);
        let mut pos = 0;
        assert_eq!(
            c.read_response(&none, &mut pos, false).unwrap(),
            HandshakeMatch::None
        );
        let r = c.request().unwrap();
        assert_eq!(r.client_protocol.as_deref(), Some(FLUME_PROTOCOL_TEXT));
        assert_eq!(r.server_hash, FLUME_PROTOCOL_MD5);
        let mut pos = 0;
        assert_eq!(
            c.read_response(&none, &mut pos, true),
            Err(ClientHandshakeError::Rejected)
        );
        let mut pos = 0;
        c.read_response(&[0, 0, 0, 0], &mut pos, true).unwrap();
        assert!(c.is_established());
        assert!(c.request().is_none());
    }
}
