//! Interceptors: per-source event rewriting and filtering, run by the
//! [`ChannelProcessor`](super::ChannelProcessor) before the channel selector.
//!
//! Configured on the source as in Flume:
//!
//! ```text
//! a1.sources.r1.interceptors = ts hostname
//! a1.sources.r1.interceptors.ts.type = timestamp
//! a1.sources.r1.interceptors.hostname.type = host
//! a1.sources.r1.interceptors.hostname.useIP = false
//! ```
//!
//! Supported types (short names case-insensitive, or Flume's builder class names):
//! `timestamp`, `host`, `static`, `uuid`, `regex_filter`, `remove_header`.
//!
//! Events are immutable and kept in their Avro encoding, so an interceptor that changes a header
//! builds a new encoding in one pass over the raw header bytes (no per-header `String`s, header
//! values that are not UTF-8 survive unchanged); an interceptor that changes nothing hands the
//! same event back without re-encoding it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use regex::Regex;

use crate::avro;
use crate::clock::now_millis;
use crate::component::{ComponentType, InterceptorType};
use crate::config::{ConfigError, Context};
use crate::event::Event;

/// Rewrites or filters a batch of events. May drop events; must keep the order of the rest.
pub trait Interceptor: Send + Sync {
    /// Processes one batch and returns what remains of it.
    fn intercept(&self, events: Vec<Event>) -> Vec<Event>;
}

impl fmt::Debug for dyn Interceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Interceptor")
    }
}

/// Builds the interceptor chain of a source from its context (`interceptors` = space-separated
/// names, each configured under `interceptors.<name>.*`). An unset or empty list gives an empty
/// chain.
pub fn interceptors_from_context(
    source_ctx: &Context,
) -> Result<Vec<Arc<dyn Interceptor>>, ConfigError> {
    let list = source_ctx.get_or("interceptors", "").trim().to_string();
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let all = source_ctx.sub("interceptors");
    let mut out = Vec::new();
    for name in list.split_whitespace() {
        let ctx = all.sub(name);
        out.push(interceptor_from_context(name, &ctx)?);
    }
    Ok(out)
}

/// Builds one interceptor from its own context (the keys under `interceptors.<name>.`),
/// resolving its `type` through the registry in [`crate::component`].
pub fn interceptor_from_context(
    name: &str,
    ctx: &Context,
) -> Result<Arc<dyn Interceptor>, ConfigError> {
    let kind = InterceptorType::from_context(ctx, &format!("interceptor '{name}'"))?;
    build_interceptor(name, kind, ctx)
}

/// Builds one interceptor of an already resolved `kind` from its own context.
pub fn build_interceptor(
    name: &str,
    kind: InterceptorType,
    ctx: &Context,
) -> Result<Arc<dyn Interceptor>, ConfigError> {
    Ok(match kind {
        InterceptorType::Timestamp => Arc::new(TimestampInterceptor::from_context(name, ctx)?),
        InterceptorType::Host => Arc::new(HostInterceptor::from_context(name, ctx)?),
        InterceptorType::Static => Arc::new(StaticInterceptor::from_context(name, ctx)?),
        InterceptorType::Uuid => Arc::new(UuidInterceptor::from_context(name, ctx)?),
        InterceptorType::RegexFilter => {
            Arc::new(RegexFilteringInterceptor::from_context(name, ctx)?)
        }
        InterceptorType::RemoveHeader => {
            Arc::new(RemoveHeaderInterceptor::from_context(name, ctx)?)
        }
    })
}

/// Re-encodes `ev` keeping the headers whose raw key passes `keep`, then appending `add`
/// (in order), sharing nothing but copying the body once.
fn rebuild(ev: &Event, keep: impl Fn(&[u8]) -> bool, add: &[(&[u8], &[u8])]) -> Event {
    let kept = ev.headers_raw().filter(|(k, _)| keep(k)).count();
    let n = kept + add.len();
    let extra: usize = add.iter().map(|(k, v)| k.len() + v.len() + 20).sum();
    let mut out = BytesMut::with_capacity(ev.encoded_len() + extra + 10);
    if n > 0 {
        avro::write_long(&mut out, n as i64);
        for (k, v) in ev.headers_raw().filter(|(k, _)| keep(k)) {
            avro::write_bytes(&mut out, k);
            avro::write_bytes(&mut out, v);
        }
        for (k, v) in add {
            avro::write_bytes(&mut out, k);
            avro::write_bytes(&mut out, v);
        }
    }
    out.put_u8(0);
    let body = ev.body();
    avro::write_long(&mut out, body.len() as i64);
    let body_start = out.len();
    out.put_slice(body);
    Event::from_scanned(out.freeze(), body_start)
}

/// `ev` with header `key` set to `value` (any existing value replaced).
pub fn set_header(ev: &Event, key: &str, value: &str) -> Event {
    if has_header(ev, key) {
        let k = key.as_bytes();
        rebuild(ev, |h| h != k, &[(k, value.as_bytes())])
    } else {
        prepend_header(ev, key, value)
    }
}

/// `ev` with a header it does not have yet: one extra map block in front of the existing
/// encoding (Avro maps may be split into blocks), so the rest is copied with one `memcpy`.
fn prepend_header(ev: &Event, key: &str, value: &str) -> Event {
    let raw = ev.encoded();
    let body_start = raw.len() - ev.body().len();
    let mut out = BytesMut::with_capacity(raw.len() + key.len() + value.len() + 12);
    avro::write_long(&mut out, 1);
    avro::write_str(&mut out, key);
    avro::write_str(&mut out, value);
    let shift = out.len();
    out.put_slice(raw);
    Event::from_scanned(out.freeze(), shift + body_start)
}

fn has_header(ev: &Event, key: &str) -> bool {
    ev.headers_raw().any(|(k, _)| k == key.as_bytes())
}

/// Sets `key` on every event (skipping events that have it when `preserve`), the value computed
/// once per changed event by `value`.
fn set_on_all<'v>(
    mut events: Vec<Event>,
    key: &str,
    preserve: bool,
    mut value: impl FnMut() -> Cow<'v, str>,
) -> Vec<Event> {
    for ev in events.iter_mut() {
        let present = has_header(ev, key);
        if preserve && present {
            continue;
        }
        *ev = if present {
            let k = key.as_bytes();
            rebuild(ev, |h| h != k, &[(k, value().as_bytes())])
        } else {
            prepend_header(ev, key, &value())
        };
    }
    events
}

/// `timestamp`: sets a header (`headerName`, default `timestamp`) to the current time in epoch
/// milliseconds; `preserveExisting` (default false) keeps a value already there.
#[derive(Debug, Clone)]
pub struct TimestampInterceptor {
    header: String,
    preserve_existing: bool,
}

impl TimestampInterceptor {
    /// Reads `headerName` and `preserveExisting`.
    pub fn from_context(_name: &str, ctx: &Context) -> Result<Self, ConfigError> {
        let header = ctx.get_or("headerName", "timestamp").to_string();
        if header.is_empty() {
            return Err(ctx.error("headerName", "must not be empty"));
        }
        Ok(TimestampInterceptor {
            header,
            preserve_existing: ctx.get_bool("preserveExisting", false),
        })
    }
}

impl Interceptor for TimestampInterceptor {
    fn intercept(&self, events: Vec<Event>) -> Vec<Event> {
        set_on_all(events, &self.header, self.preserve_existing, || {
            Cow::Owned(now_millis().to_string())
        })
    }
}

/// `host`: sets a header (`hostHeader`, default `host`) to this machine's IP address
/// (`useIP` true, default) or host name (`useIP` false); `preserveExisting` default false.
///
/// Like Flume (`InetAddress.getLocalHost()`), the address is the one the local host name
/// resolves to; if it cannot be resolved no header is added (a warning is logged once).
#[derive(Debug, Clone)]
pub struct HostInterceptor {
    header: String,
    preserve_existing: bool,
    host: Option<String>,
}

impl HostInterceptor {
    /// Reads `hostHeader`, `useIP`, `preserveExisting` and looks the local host up once.
    pub fn from_context(name: &str, ctx: &Context) -> Result<Self, ConfigError> {
        let header = ctx.get_or("hostHeader", "host").to_string();
        if header.is_empty() {
            return Err(ctx.error("hostHeader", "must not be empty"));
        }
        let use_ip = ctx.get_bool("useIP", true);
        let host = local_host(use_ip);
        if host.is_none() {
            tracing::warn!(
                interceptor = name,
                "could not determine the local host address; host header will not be set"
            );
        }
        Ok(HostInterceptor {
            header,
            preserve_existing: ctx.get_bool("preserveExisting", false),
            host,
        })
    }

    /// The value this interceptor writes (None when the local host is unknown).
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}

/// The local host name (`gethostname`, which on Linux is the `nodename` of `uname`).
pub fn local_hostname() -> Option<String> {
    let uname = rustix::system::uname();
    let s = uname.nodename().to_string_lossy().into_owned();
    (!s.is_empty()).then_some(s)
}

fn local_host(use_ip: bool) -> Option<String> {
    use std::net::ToSocketAddrs;
    let name = local_hostname()?;
    if !use_ip {
        return Some(name);
    }
    let addrs: Vec<std::net::SocketAddr> = (name.as_str(), 0).to_socket_addrs().ok()?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(|a| a.ip().to_string())
}

impl Interceptor for HostInterceptor {
    fn intercept(&self, events: Vec<Event>) -> Vec<Event> {
        match &self.host {
            None => events,
            Some(h) => set_on_all(events, &self.header, self.preserve_existing, || {
                Cow::Borrowed(h.as_str())
            }),
        }
    }
}

/// `static`: sets header `key` (default `key`) to `value` (default `value`);
/// `preserveExisting` default **true**.
#[derive(Debug, Clone)]
pub struct StaticInterceptor {
    key: String,
    value: String,
    preserve_existing: bool,
}

impl StaticInterceptor {
    /// Reads `key`, `value`, `preserveExisting`.
    pub fn from_context(_name: &str, ctx: &Context) -> Result<Self, ConfigError> {
        Ok(StaticInterceptor {
            key: ctx.get_or("key", "key").to_string(),
            value: ctx.get_or("value", "value").to_string(),
            preserve_existing: ctx.get_bool("preserveExisting", true),
        })
    }
}

impl Interceptor for StaticInterceptor {
    fn intercept(&self, events: Vec<Event>) -> Vec<Event> {
        set_on_all(events, &self.key, self.preserve_existing, || {
            Cow::Borrowed(self.value.as_str())
        })
    }
}

/// `uuid` (Flume's morphline `UUIDInterceptor`): sets header `headerName` (default `id`) to
/// `prefix` + a random UUID; `preserveExisting` default **true**.
#[derive(Debug, Clone)]
pub struct UuidInterceptor {
    header: String,
    prefix: String,
    preserve_existing: bool,
}

impl UuidInterceptor {
    /// Reads `headerName`, `prefix`, `preserveExisting`.
    pub fn from_context(_name: &str, ctx: &Context) -> Result<Self, ConfigError> {
        let header = ctx.get_or("headerName", "id").to_string();
        if header.is_empty() {
            return Err(ctx.error("headerName", "must not be empty"));
        }
        Ok(UuidInterceptor {
            header,
            prefix: ctx.get_or("prefix", "").to_string(),
            preserve_existing: ctx.get_bool("preserveExisting", true),
        })
    }
}

impl Interceptor for UuidInterceptor {
    fn intercept(&self, events: Vec<Event>) -> Vec<Event> {
        set_on_all(events, &self.header, self.preserve_existing, || {
            Cow::Owned(format!("{}{}", self.prefix, uuid::Uuid::new_v4()))
        })
    }
}

/// `regex_filter`: keeps events whose body (read as UTF-8, invalid bytes replaced) contains a
/// match of `regex` (default `.*`), or drops them when `excludeEvents` is true.
///
/// The pattern is compiled with Rust's `regex` crate, which covers Java's syntax except
/// back-references and look-around (those are reported as configuration errors).
#[derive(Debug, Clone)]
pub struct RegexFilteringInterceptor {
    regex: Regex,
    exclude: bool,
}

impl RegexFilteringInterceptor {
    /// Reads `regex` and `excludeEvents`.
    pub fn from_context(_name: &str, ctx: &Context) -> Result<Self, ConfigError> {
        let pattern = ctx.get_or("regex", ".*");
        let regex = Regex::new(pattern)
            .map_err(|e| ctx.error("regex", &format!("invalid regular expression: {e}")))?;
        Ok(RegexFilteringInterceptor {
            regex,
            exclude: ctx.get_bool("excludeEvents", false),
        })
    }
}

impl Interceptor for RegexFilteringInterceptor {
    fn intercept(&self, mut events: Vec<Event>) -> Vec<Event> {
        events.retain(|e| {
            let body = String::from_utf8_lossy(e.body());
            self.regex.is_match(&body) != self.exclude
        });
        events
    }
}

/// `remove_header`: removes header `withName`, every header listed in `fromList` (split by the
/// regex `fromListSeparator`, default `\s*,\s*`), and every header whose whole name matches the
/// regex `matching`. Events with nothing to remove are passed on untouched.
#[derive(Debug, Clone)]
pub struct RemoveHeaderInterceptor {
    with_name: Option<String>,
    from_list: Option<Vec<String>>,
    matching: Option<Regex>,
}

impl RemoveHeaderInterceptor {
    /// Reads `withName`, `fromList`, `fromListSeparator`, `matching`.
    pub fn from_context(_name: &str, ctx: &Context) -> Result<Self, ConfigError> {
        let with_name = ctx.get("withName").map(str::to_string);
        let sep = ctx.get_or("fromListSeparator", "\\s*,\\s*");
        let sep_re = Regex::new(sep).map_err(|e| {
            ctx.error(
                "fromListSeparator",
                &format!("invalid regular expression: {e}"),
            )
        })?;
        let from_list = ctx.get("fromList").map(|l| {
            // Java's String.split drops trailing empty strings.
            let mut parts: Vec<String> = sep_re.split(l).map(str::to_string).collect();
            while parts.last().is_some_and(|p| p.is_empty()) {
                parts.pop();
            }
            parts
        });
        let matching =
            match ctx.get("matching") {
                None => None,
                Some(m) => Some(Regex::new(&format!("^(?:{m})$")).map_err(|e| {
                    ctx.error("matching", &format!("invalid regular expression: {e}"))
                })?),
            };
        Ok(RemoveHeaderInterceptor {
            with_name,
            from_list,
            matching,
        })
    }

    fn removes(&self, key: &[u8]) -> bool {
        if self.with_name.as_deref().map(str::as_bytes) == Some(key) {
            return true;
        }
        if let Some(list) = &self.from_list {
            if list.iter().any(|n| n.as_bytes() == key) {
                return true;
            }
        }
        if let Some(re) = &self.matching {
            if re.is_match(&String::from_utf8_lossy(key)) {
                return true;
            }
        }
        false
    }
}

impl Interceptor for RemoveHeaderInterceptor {
    fn intercept(&self, mut events: Vec<Event>) -> Vec<Event> {
        for ev in events.iter_mut() {
            if ev.headers_raw().any(|(k, _)| self.removes(k)) {
                *ev = rebuild(ev, |k| !self.removes(k), &[]);
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_header_replaces_and_keeps_raw_values() {
        let raw = bytes::Bytes::from_static(&[
            0x04, 0x02, b'a', 0x02, 0xff, 0x02, b'b', 0x02, b'1', 0x00, 0x02, b'x',
        ]);
        let e = Event::from_encoded(raw).unwrap();
        let e2 = set_header(&e, "b", "2");
        assert_eq!(e2.headers_raw().next(), Some((&b"a"[..], &[0xffu8][..])));
        assert_eq!(e2.header("b").as_deref(), Some("2"));
        assert_eq!(e2.header_count(), 2);
        assert_eq!(e2.body(), b"x");
        // The result is a valid encoding.
        assert_eq!(Event::from_encoded(e2.encoded().clone()).unwrap(), e2);
    }

    #[test]
    fn prepended_headers_form_a_valid_multi_block_map() {
        let e = Event::new([("a", "1")], b"body");
        let e2 = set_header(&set_header(&e, "b", "2"), "c", "3");
        let back = Event::from_encoded(e2.encoded().clone()).unwrap();
        assert_eq!(back.body(), b"body");
        assert_eq!(e2.body(), b"body");
        let mut h = back.header_map();
        h.sort();
        assert_eq!(
            h,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("c".into(), "3".into())
            ]
        );
        // Replacing a header found in a later block keeps one value.
        let e3 = set_header(&e2, "a", "9");
        assert_eq!(e3.header("a").as_deref(), Some("9"));
        assert_eq!(e3.header_count(), 3);
        let from_empty = set_header(&Event::from_body(b""), "k", "v");
        assert_eq!(
            Event::from_encoded(from_empty.encoded().clone()).unwrap(),
            from_empty
        );
    }
}
