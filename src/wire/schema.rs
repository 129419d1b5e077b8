//! Client protocols learned during handshakes: which messages they have and each message's
//! request/response schema.
//!
//! A protocol text (JSON) is parsed once (then cached by hash in
//! [`ProtocolCache`](super::handshake::ProtocolCache)). For every message the request fields are
//! turned into one self-contained record schema (named types inlined at first use) so the
//! `apache-avro` crate can parse it. `append`/`appendBatch` whose request has exactly Flume's
//! shape (`AvroFlumeEvent { map<string> headers; bytes body }`, field names `event`/`events`)
//! take the zero-copy fast path; any other shape is decoded with `apache-avro` schema
//! resolution (writer = client schema, reader = ours), the way Java's `Responder` does.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use apache_avro::Schema;
use serde_json::{Map, Value};

use super::protocol::{protocol_md5, FlumeMessage, Md5, FLUME_PROTOCOL_TEXT};

/// Why a protocol text could not be used (Java answers such a handshake with a system error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolParseError {
    /// Not JSON at all.
    #[error("protocol text is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not an Avro protocol.
    #[error("invalid Avro protocol: {0}")]
    Invalid(String),
}

/// How the params of one remote message are decoded on the server.
#[derive(Debug, Clone)]
pub enum ParamsPlan {
    /// Byte-identical to Flume's request: zero-copy decoder.
    Fast(FlumeMessage),
    /// Same message name as a local message but another schema: `apache-avro` resolution
    /// from this writer schema to ours.
    Resolve {
        /// Which local message it resolves to.
        local: FlumeMessage,
        /// The client's (writer's) request record.
        writer: Arc<Schema>,
    },
    /// Not a local message, or its schema could not be parsed (the reason).
    Unusable(String),
}

/// One message of a remote protocol.
#[derive(Debug, Clone)]
pub struct RemoteMessage {
    name: String,
    one_way: bool,
    request_json: Value,
    response_json: Value,
    request_schema: Result<Arc<Schema>, String>,
    response_schema: Result<Arc<Schema>, String>,
    plan: ParamsPlan,
}

impl RemoteMessage {
    /// The message name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the protocol declares it `"one-way": true`.
    pub fn is_one_way(&self) -> bool {
        self.one_way
    }

    /// The request as one self-contained record schema (JSON).
    pub fn request_json(&self) -> &Value {
        &self.request_json
    }

    /// The response schema, self-contained (JSON).
    pub fn response_json(&self) -> &Value {
        &self.response_json
    }

    /// The request record parsed by `apache-avro` (or why it could not be).
    pub fn request_schema(&self) -> Result<&Schema, &str> {
        self.request_schema.as_deref().map_err(String::as_str)
    }

    /// The response schema parsed by `apache-avro` (or why it could not be).
    pub fn response_schema(&self) -> Result<&Schema, &str> {
        self.response_schema.as_deref().map_err(String::as_str)
    }

    /// How the server decodes this message's params.
    pub fn plan(&self) -> &ParamsPlan {
        &self.plan
    }
}

/// A parsed Avro protocol (a client's, learned in a handshake, or one of Flume's).
#[derive(Debug, Clone)]
pub struct RemoteProtocol {
    hash: Md5,
    text: String,
    name: String,
    namespace: Option<String>,
    messages: HashMap<String, RemoteMessage>,
}

impl RemoteProtocol {
    /// Parses a protocol text. `hash()` is `MD5(text)`.
    pub fn parse(text: &str) -> Result<RemoteProtocol, ProtocolParseError> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| ProtocolParseError::Json(e.to_string()))?;
        let obj = root
            .as_object()
            .ok_or_else(|| ProtocolParseError::Invalid("not a JSON object".into()))?;
        let name = obj
            .get("protocol")
            .and_then(Value::as_str)
            .ok_or_else(|| ProtocolParseError::Invalid("No protocol name specified".into()))?
            .to_string();
        let namespace = obj
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let mut registry = HashMap::new();
        if let Some(types) = obj.get("types") {
            let types = types
                .as_array()
                .ok_or_else(|| ProtocolParseError::Invalid("Types not an array".into()))?;
            for t in types {
                collect_named(t, namespace.as_deref(), &mut registry);
            }
        }
        let mut messages = HashMap::new();
        if let Some(msgs) = obj.get("messages") {
            let msgs = msgs
                .as_object()
                .ok_or_else(|| ProtocolParseError::Invalid("Messages not an object".into()))?;
            for m in msgs.values() {
                // Named types defined inline in one message are visible to later ones (Java
                // shares one `Names` table), so register them too.
                if let Some(req) = m.get("request").and_then(Value::as_array) {
                    for f in req {
                        if let Some(t) = f.get("type") {
                            collect_named(t, namespace.as_deref(), &mut registry);
                        }
                    }
                }
                if let Some(r) = m.get("response") {
                    collect_named(r, namespace.as_deref(), &mut registry);
                }
            }
            for (mname, m) in msgs {
                let msg = parse_message(mname, m, namespace.as_deref(), &registry)?;
                messages.insert(mname.clone(), msg);
            }
        }
        Ok(RemoteProtocol {
            hash: protocol_md5(text),
            text: text.to_string(),
            name,
            namespace,
            messages,
        })
    }

    /// `MD5(text)`.
    pub fn hash(&self) -> Md5 {
        self.hash
    }

    /// The protocol text as received.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The protocol name (`"protocol"`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The protocol namespace.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// One message by name.
    pub fn message(&self, name: &str) -> Option<&RemoteMessage> {
        self.messages.get(name)
    }

    /// All message names (unordered).
    pub fn message_names(&self) -> impl Iterator<Item = &str> {
        self.messages.keys().map(String::as_str)
    }
}

/// Our own request records (reader schemas of the slow path).
pub(crate) static LOCAL_REQUESTS: LazyLock<LocalRequests> = LazyLock::new(|| {
    let p = RemoteProtocol::parse(FLUME_PROTOCOL_TEXT).expect("Flume protocol parses");
    let get = |m: FlumeMessage| {
        p.message(m.name())
            .and_then(|m| m.request_schema().ok().cloned())
            .expect("Flume request schema parses")
    };
    LocalRequests {
        append: get(FlumeMessage::Append),
        append_batch: get(FlumeMessage::AppendBatch),
    }
});

/// Reader schemas of the local messages' requests.
pub(crate) struct LocalRequests {
    pub(crate) append: Schema,
    pub(crate) append_batch: Schema,
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

fn is_named_kind(t: &str) -> bool {
    matches!(t, "record" | "error" | "enum" | "fixed")
}

/// (fullname, namespace of the definition) of a named type definition.
fn full_name(def: &Map<String, Value>, ns: Option<&str>) -> Option<(String, Option<String>)> {
    let name = def.get("name")?.as_str()?;
    if let Some((space, _)) = name.rsplit_once('.') {
        return Some((name.to_string(), Some(space.to_string())));
    }
    let space = match def.get("namespace").and_then(Value::as_str) {
        Some("") => None,
        Some(s) => Some(s.to_string()),
        None => ns.map(str::to_string),
    };
    let full = match &space {
        Some(s) => format!("{s}.{name}"),
        None => name.to_string(),
    };
    Some((full, space))
}

/// Registers every named definition in `v` (recursively) under its full name.
fn collect_named(v: &Value, ns: Option<&str>, reg: &mut HashMap<String, (Value, Option<String>)>) {
    match v {
        Value::Array(items) => {
            for i in items {
                collect_named(i, ns, reg);
            }
        }
        Value::Object(o) => {
            let Some(t) = o.get("type") else { return };
            match t.as_str() {
                Some(k) if is_named_kind(k) => {
                    let Some((full, space)) = full_name(o, ns) else {
                        return;
                    };
                    reg.entry(full)
                        .or_insert_with(|| (v.clone(), space.clone()));
                    if let Some(fields) = o.get("fields").and_then(Value::as_array) {
                        for f in fields {
                            if let Some(ft) = f.get("type") {
                                collect_named(ft, space.as_deref(), reg);
                            }
                        }
                    }
                }
                Some("array") => {
                    if let Some(i) = o.get("items") {
                        collect_named(i, ns, reg);
                    }
                }
                Some("map") => {
                    if let Some(i) = o.get("values") {
                        collect_named(i, ns, reg);
                    }
                }
                Some(_) => {}
                None => collect_named(t, ns, reg),
            }
        }
        _ => {}
    }
}

/// Rewrites a schema so it stands alone: references to protocol types are replaced by their
/// definition at first use and by the full name afterwards.
struct Inliner<'a> {
    registry: &'a HashMap<String, (Value, Option<String>)>,
    defined: HashSet<String>,
}

impl Inliner<'_> {
    fn inline(&mut self, v: &Value, ns: Option<&str>) -> Result<Value, String> {
        match v {
            Value::String(s) => {
                if PRIMITIVES.contains(&s.as_str()) {
                    return Ok(v.clone());
                }
                let full = if s.contains('.') {
                    s.clone()
                } else {
                    match ns {
                        Some(n) => format!("{n}.{s}"),
                        None => s.clone(),
                    }
                };
                let key = if self.registry.contains_key(&full) {
                    full
                } else if self.registry.contains_key(s) {
                    s.clone()
                } else {
                    return Err(format!("Undefined name: \"{s}\""));
                };
                if self.defined.contains(&key) {
                    return Ok(Value::String(key));
                }
                let (def, space) = &self.registry[&key];
                let def = def.clone();
                let space = space.clone();
                self.inline(&def, space.as_deref())
            }
            Value::Array(branches) => branches
                .iter()
                .map(|b| self.inline(b, ns))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(o) => {
                let t = o.get("type").ok_or("schema object without \"type\"")?;
                match t.as_str() {
                    Some(k) if is_named_kind(k) => {
                        let (full, space) =
                            full_name(o, ns).ok_or("named type without a \"name\"")?;
                        if !self.defined.insert(full.clone()) {
                            return Ok(Value::String(full));
                        }
                        let mut out = o.clone();
                        // Aliases play no part in resolving to Flume's schema, and apache-avro
                        // 0.21 panics on malformed ones (found by fuzzing): drop them.
                        out.remove("aliases");
                        let short = full.rsplit('.').next().unwrap_or(&full).to_string();
                        out.insert("name".into(), Value::String(short));
                        match &space {
                            Some(s) => out.insert("namespace".into(), Value::String(s.clone())),
                            None => out.insert("namespace".into(), Value::String(String::new())),
                        };
                        if k == "error" {
                            out.insert("type".into(), Value::String("record".into()));
                        }
                        if let Some(fields) = o.get("fields").and_then(Value::as_array) {
                            let mut new_fields = Vec::with_capacity(fields.len());
                            for f in fields {
                                let mut f = f.as_object().ok_or("field is not an object")?.clone();
                                f.remove("aliases");
                                let ft = f.get("type").ok_or("field without \"type\"")?.clone();
                                f.insert("type".into(), self.inline(&ft, space.as_deref())?);
                                new_fields.push(Value::Object(f));
                            }
                            out.insert("fields".into(), Value::Array(new_fields));
                        }
                        Ok(Value::Object(out))
                    }
                    Some("array") => {
                        let mut out = o.clone();
                        let i = o.get("items").ok_or("array without \"items\"")?;
                        out.insert("items".into(), self.inline(i, ns)?);
                        Ok(Value::Object(out))
                    }
                    Some("map") => {
                        let mut out = o.clone();
                        let i = o.get("values").ok_or("map without \"values\"")?;
                        out.insert("values".into(), self.inline(i, ns)?);
                        Ok(Value::Object(out))
                    }
                    Some(_) => Ok(v.clone()),
                    None => {
                        let mut out = o.clone();
                        out.insert("type".into(), self.inline(t, ns)?);
                        Ok(Value::Object(out))
                    }
                }
            }
            other => Err(format!("not a schema: {other}")),
        }
    }
}

fn parse_message(
    name: &str,
    m: &Value,
    ns: Option<&str>,
    registry: &HashMap<String, (Value, Option<String>)>,
) -> Result<RemoteMessage, ProtocolParseError> {
    let bad = |what: &str| ProtocolParseError::Invalid(format!("message {name}: {what}"));
    let m = m.as_object().ok_or_else(|| bad("not an object"))?;
    let request = m
        .get("request")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no request"))?;
    let one_way = m.get("one-way").and_then(Value::as_bool).unwrap_or(false);
    let mut inliner = Inliner {
        registry,
        defined: HashSet::new(),
    };
    let mut fields = Vec::with_capacity(request.len());
    for f in request {
        let mut f = f
            .as_object()
            .ok_or_else(|| bad("request field is not an object"))?
            .clone();
        let t = f
            .get("type")
            .ok_or_else(|| bad("request field without type"))?
            .clone();
        let t = inliner.inline(&t, ns).map_err(|e| bad(&e))?;
        f.insert("type".into(), t);
        f.remove("aliases");
        fields.push(Value::Object(f));
    }
    let request_json = serde_json::json!({
        "type": "record",
        "name": "sluicegate_request",
        "fields": fields,
    });
    let response = m.get("response").ok_or_else(|| bad("no response"))?.clone();
    let mut inliner = Inliner {
        registry,
        defined: HashSet::new(),
    };
    let response_json = inliner.inline(&response, ns).map_err(|e| bad(&e))?;
    let request_schema = parse_schema(&request_json);
    let response_schema = parse_schema(&response_json);
    let plan = match FlumeMessage::from_name(name.as_bytes()) {
        None => ParamsPlan::Unusable(format!("no local message named {name}")),
        Some(local) if is_flume_request(local, &request_json) => ParamsPlan::Fast(local),
        Some(local) => match &request_schema {
            Ok(writer) => ParamsPlan::Resolve {
                local,
                writer: writer.clone(),
            },
            Err(e) => ParamsPlan::Unusable(e.clone()),
        },
    };
    Ok(RemoteMessage {
        name: name.to_string(),
        one_way,
        request_json,
        response_json,
        request_schema,
        response_schema,
        plan,
    })
}

/// `Schema::parse` on client-supplied JSON, with a panic inside `apache-avro` turned into an
/// error (it has panicked on malformed input before).
fn parse_schema(json: &Value) -> Result<Arc<Schema>, String> {
    match std::panic::catch_unwind(|| Schema::parse(json)) {
        Ok(Ok(s)) => Ok(Arc::new(s)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("apache-avro panicked while parsing the schema".to_string()),
    }
}

fn is_prim(v: &Value, p: &str) -> bool {
    match v {
        Value::String(s) => s == p,
        Value::Object(o) => o.get("type").and_then(Value::as_str) == Some(p),
        _ => false,
    }
}

fn single_field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let fields = v.get("fields")?.as_array()?;
    match fields.as_slice() {
        [f] if f.get("name")?.as_str()? == name => f.get("type"),
        _ => None,
    }
}

fn is_flume_event(v: &Value) -> bool {
    if v.get("type").and_then(Value::as_str) != Some("record") {
        return false;
    }
    let Some(fields) = v.get("fields").and_then(Value::as_array) else {
        return false;
    };
    let [h, b] = fields.as_slice() else {
        return false;
    };
    let named = |f: &Value, n: &str| f.get("name").and_then(Value::as_str) == Some(n);
    let headers_ok = named(h, "headers")
        && h.get("type").is_some_and(|t| {
            t.get("type").and_then(Value::as_str) == Some("map")
                && t.get("values").is_some_and(|v| is_prim(v, "string"))
        });
    let body_ok = named(b, "body") && b.get("type").is_some_and(|t| is_prim(t, "bytes"));
    headers_ok && body_ok
}

/// Whether a (self-contained) request record is byte-compatible with Flume's and resolves to
/// it field by field.
fn is_flume_request(local: FlumeMessage, request: &Value) -> bool {
    match local {
        FlumeMessage::Append => single_field(request, "event").is_some_and(is_flume_event),
        FlumeMessage::AppendBatch => single_field(request, "events").is_some_and(|t| {
            t.get("type").and_then(Value::as_str) == Some("array")
                && t.get("items").is_some_and(is_flume_event)
        }),
    }
}

/// Most array/map items (summed over the whole datum) the slow path lets `apache-avro` decode.
pub const SLOW_PATH_MAX_ITEMS: u64 = 1_000_000;
/// Deepest nesting the slow path accepts.
const SLOW_PATH_MAX_DEPTH: u32 = 64;

/// Walks Avro data written with a self-contained schema (as built by [`RemoteMessage`]) without
/// allocating, proving every count and length is backed by bytes, nesting stays shallow and the
/// item total stays under [`SLOW_PATH_MAX_ITEMS`] — so the `apache-avro` decode that follows
/// cannot be made to allocate gigabytes or recurse without bound by a forged count (found by
/// fuzzing). Returns the offset after the datum.
pub(crate) fn prevalidate(schema: &Value, buf: &[u8], pos: usize) -> Result<usize, String> {
    let mut v = Validator {
        buf,
        pos,
        names: HashMap::new(),
        budget: SLOW_PATH_MAX_ITEMS,
    };
    register(schema, &mut v.names, 0);
    v.skip(schema, 0)?;
    Ok(v.pos)
}

/// Registers every named definition of a self-contained schema (including ones inside union
/// branches or arrays the data may never reach) by full name.
fn register<'a>(s: &'a Value, names: &mut HashMap<String, &'a Value>, depth: u32) {
    if depth > SLOW_PATH_MAX_DEPTH {
        return;
    }
    match s {
        Value::Array(branches) => branches.iter().for_each(|b| register(b, names, depth + 1)),
        Value::Object(o) => {
            let Some(t) = o.get("type") else { return };
            match t.as_str() {
                Some(k) if is_named_kind(k) => {
                    let name = o.get("name").and_then(Value::as_str).unwrap_or("");
                    let full = match o.get("namespace").and_then(Value::as_str) {
                        Some(ns) if !ns.is_empty() && !name.contains('.') => format!("{ns}.{name}"),
                        _ => name.to_string(),
                    };
                    names.entry(full).or_insert(s);
                    let fields = o.get("fields").and_then(Value::as_array);
                    for f in fields.into_iter().flatten() {
                        if let Some(ft) = f.get("type") {
                            register(ft, names, depth + 1);
                        }
                    }
                }
                Some("array") => o
                    .get("items")
                    .iter()
                    .for_each(|i| register(i, names, depth + 1)),
                Some("map") => o
                    .get("values")
                    .iter()
                    .for_each(|i| register(i, names, depth + 1)),
                Some(_) => {}
                None => register(t, names, depth + 1),
            }
        }
        _ => {}
    }
}

struct Validator<'a> {
    buf: &'a [u8],
    pos: usize,
    names: HashMap<String, &'a Value>,
    budget: u64,
}

impl<'a> Validator<'a> {
    fn items(&mut self, n: u64) -> Result<(), String> {
        self.budget = self.budget.checked_sub(n).ok_or_else(|| {
            format!("more than {SLOW_PATH_MAX_ITEMS} array/map items in one request")
        })?;
        Ok(())
    }

    fn skip(&mut self, s: &'a Value, depth: u32) -> Result<(), String> {
        use crate::avro;
        if depth > SLOW_PATH_MAX_DEPTH {
            return Err(format!("data nested deeper than {SLOW_PATH_MAX_DEPTH}"));
        }
        let e = |e: crate::avro::AvroDecodeError| e.to_string();
        let (buf, pos) = (self.buf, &mut self.pos);
        match s {
            Value::String(t) => match t.as_str() {
                "null" => Ok(()),
                "boolean" => avro::read_bool(buf, pos).map(drop).map_err(e),
                "int" => avro::read_int(buf, pos).map(drop).map_err(e),
                "long" => avro::read_long(buf, pos).map(drop).map_err(e),
                "float" => avro::read_fixed(buf, pos, 4).map(drop).map_err(e),
                "double" => avro::read_fixed(buf, pos, 8).map(drop).map_err(e),
                "bytes" | "string" => avro::read_bytes_range(buf, pos).map(drop).map_err(e),
                name => {
                    let def = *self
                        .names
                        .get(name)
                        .ok_or_else(|| format!("unknown type {name}"))?;
                    self.skip(def, depth + 1)
                }
            },
            Value::Array(branches) => {
                let at = *pos;
                let i = avro::read_long(buf, pos).map_err(e)?;
                let b = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| format!("union branch {i} out of range at offset {at}"))?;
                self.skip(b, depth + 1)
            }
            Value::Object(o) => {
                let t = o.get("type").ok_or("schema without type")?;
                let Some(kind) = t.as_str() else {
                    return self.skip(t, depth + 1);
                };
                match kind {
                    "record" | "error" | "enum" | "fixed" => match kind {
                        "enum" => avro::read_int(buf, pos).map(drop).map_err(e),
                        "fixed" => {
                            let n = o.get("size").and_then(Value::as_u64).unwrap_or(0);
                            avro::read_fixed(buf, pos, n as usize).map(drop).map_err(e)
                        }
                        _ => {
                            let fields = o.get("fields").and_then(Value::as_array);
                            for f in fields.into_iter().flatten() {
                                let ft = f.get("type").ok_or("field without type")?;
                                self.skip(ft, depth + 1)?;
                            }
                            Ok(())
                        }
                    },
                    "array" | "map" => {
                        let (inner, is_map) = match kind {
                            "array" => (o.get("items").ok_or("array without items")?, false),
                            _ => (o.get("values").ok_or("map without values")?, true),
                        };
                        loop {
                            let n = avro::read_block_count(self.buf, &mut self.pos).map_err(e)?;
                            if n == 0 {
                                return Ok(());
                            }
                            self.items(n)?;
                            for _ in 0..n {
                                if is_map {
                                    avro::read_bytes_range(self.buf, &mut self.pos).map_err(e)?;
                                }
                                self.skip(inner, depth + 1)?;
                            }
                        }
                    }
                    _ => self.skip(t, depth + 1),
                }
            }
            other => Err(format!("not a schema: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::{FLUME_PROTOCOL_MD5, FLUME_TRUNK_PROTOCOL_TEXT};

    #[test]
    fn flume_protocols_take_the_fast_path() {
        for text in [FLUME_PROTOCOL_TEXT, FLUME_TRUNK_PROTOCOL_TEXT] {
            let p = RemoteProtocol::parse(text).unwrap();
            assert_eq!(p.name(), "AvroSourceProtocol");
            assert_eq!(p.namespace(), Some("org.apache.flume.source.avro"));
            let mut names: Vec<_> = p.message_names().collect();
            names.sort_unstable();
            assert_eq!(names, ["append", "appendBatch"]);
            for m in [FlumeMessage::Append, FlumeMessage::AppendBatch] {
                let rm = p.message(m.name()).unwrap();
                assert!(matches!(rm.plan(), ParamsPlan::Fast(x) if *x == m));
                assert!(rm.request_schema().is_ok());
                assert!(matches!(rm.response_schema(), Ok(Schema::Enum(_))));
            }
        }
        assert_eq!(
            RemoteProtocol::parse(FLUME_PROTOCOL_TEXT).unwrap().hash(),
            FLUME_PROTOCOL_MD5
        );
    }

    #[test]
    fn other_shapes_and_unknown_messages_are_classified() {
        let text = r#"{"protocol":"P","namespace":"x.y","types":[
            {"type":"record","name":"Ev","fields":[{"name":"headers","type":{"type":"map","values":"string"}},{"name":"body","type":"bytes"},{"name":"extra","type":"int","default":0}]}],
            "messages":{"appendBatch":{"request":[{"name":"events","type":{"type":"array","items":"Ev"}}],"response":"null"},
                        "other":{"request":[],"response":"Ev","one-way":false}}}"#;
        let p = RemoteProtocol::parse(text).unwrap();
        assert!(matches!(
            p.message("appendBatch").unwrap().plan(),
            ParamsPlan::Resolve {
                local: FlumeMessage::AppendBatch,
                ..
            }
        ));
        assert!(matches!(
            p.message("other").unwrap().plan(),
            ParamsPlan::Unusable(_)
        ));
        assert!(p.message("append").is_none());
    }

    #[test]
    fn broken_texts_are_errors() {
        assert!(matches!(
            RemoteProtocol::parse("{nope"),
            Err(ProtocolParseError::Json(_))
        ));
        assert!(matches!(
            RemoteProtocol::parse(r#"{"messages":{}}"#),
            Err(ProtocolParseError::Invalid(_))
        ));
        assert!(matches!(
            RemoteProtocol::parse(
                r#"{"protocol":"P","messages":{"m":{"request":[{"name":"a","type":"Missing"}],"response":"null"}}}"#
            ),
            Err(ProtocolParseError::Invalid(_))
        ));
    }
}
