//! The Avro source's connection filter (`ipFilter = true`, `ipFilterRules = ...`), with the
//! semantics of Flume's `PatternRule` + Netty's `RuleBasedIpFilter` (spec §1.8).
//!
//! `ipFilterRules` is a comma-separated list of `allow|deny:ip|name:<pattern>` rules. In a
//! pattern `*` matches any run of characters, `?` one character and `.` is literal; the pattern
//! must match the whole string. (As in Java, any other regex syntax in a pattern, such as
//! `10.0.0.[1-5]`, is passed through to the regular expression.) Rules are tried in order and
//! the first that matches decides; a connection that matches none is **accepted**.
//!
//! * `ip:` rules match the peer's address text: `10.1.2.3`, or for IPv6 both Java's long form
//!   (`0:0:0:0:0:0:0:1`) and the compressed form (`::1`).
//! * `name:localhost` matches any loopback address and any address of this machine's interfaces
//!   (it does not look the name up).
//! * other `name:` rules match the peer's host name from a reverse DNS lookup that is confirmed
//!   by a forward lookup (as Java's `InetAddress.getHostName` does); when there is no name, the
//!   address text is matched instead. **Each name rule reached costs a lookup** for a new peer
//!   address: lookups run on a blocking thread with a timeout ([`IpFilter::with_lookup_timeout`],
//!   default 2 s) and results are cached for [`NAME_CACHE_TTL`]. Put `ip:` rules first when
//!   possible: name lookups are only made when a name rule is reached.

use std::collections::HashMap;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::config::{ConfigError, Context};

/// How long a reverse-lookup result is reused.
pub const NAME_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default limit for one reverse lookup.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many names are cached (the cache is cleared when full).
const NAME_CACHE_MAX: usize = 4096;

/// A bad `ipFilterRules` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ipFilter rule '{rule}': {reason}; rules look like allow:ip:10.0.* or deny:name:*.example.com")]
pub struct IpFilterError {
    /// The rule as written.
    pub rule: String,
    /// What is wrong with it.
    pub reason: String,
}

/// What a rule matches.
#[derive(Debug, Clone)]
pub enum RuleTarget {
    /// `ip:<pattern>`: the address text.
    Ip(Regex),
    /// `name:<pattern>`: the (reverse-looked-up) host name.
    Name(Regex),
    /// `name:localhost`: loopback and this machine's own addresses.
    Localhost,
}

/// One `allow|deny:ip|name:<pattern>` rule.
#[derive(Debug, Clone)]
pub struct IpFilterRule {
    /// `allow` (true) or `deny`.
    pub allow: bool,
    /// What it matches.
    pub target: RuleTarget,
    /// The rule as written (for logs).
    pub text: String,
}

impl IpFilterRule {
    /// Parses one rule.
    pub fn parse(rule: &str) -> Result<IpFilterRule, IpFilterError> {
        let text = rule.trim();
        let err = |reason: &str| IpFilterError {
            rule: text.to_string(),
            reason: reason.to_string(),
        };
        let mut parts = text.splitn(3, ':');
        let access = parts.next().unwrap_or("");
        let kind = parts
            .next()
            .ok_or_else(|| err("expected <allow|deny>:<ip|name>:<pattern>"))?;
        let pattern = parts
            .next()
            .ok_or_else(|| err("expected <allow|deny>:<ip|name>:<pattern>"))?;
        let allow = match access {
            "allow" => true,
            "deny" => false,
            _ => return Err(err(&format!("'{access}' must be 'allow' or 'deny'"))),
        };
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err(err("the pattern is empty"));
        }
        let compile = |p: &str| -> Result<Regex, IpFilterError> {
            Regex::new(&format!("^(?:{})$", wildcard_to_regex(p)))
                .map_err(|e| err(&format!("bad pattern: {e}")))
        };
        let target = match kind {
            "ip" => RuleTarget::Ip(compile(pattern)?),
            "name" if pattern == "localhost" => RuleTarget::Localhost,
            "name" => RuleTarget::Name(compile(pattern)?),
            _ => return Err(err(&format!("'{kind}' must be 'ip' or 'name'"))),
        };
        Ok(IpFilterRule {
            allow,
            target,
            text: text.to_string(),
        })
    }
}

/// Flume's `PatternRule.addRule`: `.` → `\.`, `*` → `.*`, `?` → `.`; the rest stays regex.
fn wildcard_to_regex(p: &str) -> String {
    let mut out = String::with_capacity(p.len() * 2);
    for c in p.chars() {
        match c {
            '.' => out.push_str("\\."),
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push(c),
        }
    }
    out
}

/// Reverse-lookup results: the confirmed name (or none) and when it was looked up.
type NameCache = Arc<Mutex<HashMap<IpAddr, (Option<String>, Instant)>>>;

/// An ordered rule list; cheap to clone (shares the name cache).
#[derive(Debug, Clone)]
pub struct IpFilter {
    rules: Arc<Vec<IpFilterRule>>,
    lookup_timeout: Duration,
    cache: NameCache,
}

/// The decision for one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted by the rule with this text, or by default (`None`).
    Allow(Option<String>),
    /// Denied by the rule with this text.
    Deny(String),
}

impl Verdict {
    /// True for [`Verdict::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow(_))
    }
}

impl IpFilter {
    /// Parses an `ipFilterRules` value (comma-separated rules; empty entries are skipped).
    pub fn parse(rules: &str) -> Result<IpFilter, IpFilterError> {
        let parsed = rules
            .split(',')
            .filter(|r| !r.trim().is_empty())
            .map(IpFilterRule::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if parsed.is_empty() {
            return Err(IpFilterError {
                rule: rules.to_string(),
                reason: "no rules".into(),
            });
        }
        Ok(IpFilter {
            rules: Arc::new(parsed),
            lookup_timeout: DEFAULT_LOOKUP_TIMEOUT,
            cache: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Reads `ipFilter` and `ipFilterRules`; `Ok(None)` when `ipFilter` is not `true`.
    pub fn from_context(ctx: &Context) -> Result<Option<IpFilter>, ConfigError> {
        if !ctx.get_bool("ipFilter", false) {
            let _ = ctx.get("ipFilterRules"); // read, so it is not reported as unknown
            return Ok(None);
        }
        let rules =
            match ctx.get("ipFilterRules") {
                Some(r) if !r.trim().is_empty() => r,
                _ => return Err(ctx.error(
                    "ipFilterRules",
                    "ipFilter is true but ipFilterRules is not set (e.g. allow:ip:127.*,deny:ip:*)",
                )),
            };
        IpFilter::parse(rules)
            .map(Some)
            .map_err(|e| ctx.error("ipFilterRules", &e.to_string()))
    }

    /// Sets the limit for one reverse lookup.
    pub fn with_lookup_timeout(mut self, t: Duration) -> IpFilter {
        self.lookup_timeout = t;
        self
    }

    /// The rules in order.
    pub fn rules(&self) -> &[IpFilterRule] {
        &self.rules
    }

    /// Decides for a peer, doing the name lookup only if a name rule is reached.
    pub async fn check(&self, peer: IpAddr) -> Verdict {
        let peer = canonical(peer);
        let mut name: Option<String> = None;
        for rule in self.rules.iter() {
            let hit = match &rule.target {
                RuleTarget::Localhost => is_local_address(peer),
                RuleTarget::Ip(re) => ip_texts(peer).iter().any(|t| re.is_match(t)),
                RuleTarget::Name(re) => {
                    if name.is_none() {
                        name = Some(self.host_name(peer).await);
                    }
                    name.as_deref().is_some_and(|n| re.is_match(n))
                }
            };
            if hit {
                return if rule.allow {
                    Verdict::Allow(Some(rule.text.clone()))
                } else {
                    Verdict::Deny(rule.text.clone())
                };
            }
        }
        Verdict::Allow(None)
    }

    /// Decides with a host name supplied by the caller (no lookup; for tests and tools).
    pub fn check_with_name(&self, peer: IpAddr, host_name: &str) -> Verdict {
        let peer = canonical(peer);
        for rule in self.rules.iter() {
            let hit = match &rule.target {
                RuleTarget::Localhost => is_local_address(peer),
                RuleTarget::Ip(re) => ip_texts(peer).iter().any(|t| re.is_match(t)),
                RuleTarget::Name(re) => re.is_match(host_name),
            };
            if hit {
                return if rule.allow {
                    Verdict::Allow(Some(rule.text.clone()))
                } else {
                    Verdict::Deny(rule.text.clone())
                };
            }
        }
        Verdict::Allow(None)
    }

    /// Java's `getHostName()`: the confirmed reverse name, or the address text.
    async fn host_name(&self, ip: IpAddr) -> String {
        let now = Instant::now();
        // Poison (both): a name cache with a TTL; each insert/clear leaves it whole.
        if let Some((n, at)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ip)
        {
            if now.duration_since(*at) < NAME_CACHE_TTL {
                return n.clone().unwrap_or_else(|| ip.to_string());
            }
        }
        let looked = tokio::time::timeout(
            self.lookup_timeout,
            tokio::task::spawn_blocking(move || reverse_lookup(ip)),
        )
        .await;
        let name = match looked {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!(peer = %ip, error = %e, "ipFilter: reverse lookup task failed");
                None
            }
            Err(_) => {
                tracing::warn!(peer = %ip, timeout = ?self.lookup_timeout, "ipFilter: reverse lookup timed out; matching name rules against the address");
                None
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= NAME_CACHE_MAX {
            cache.clear();
        }
        cache.insert(ip, (name.clone(), now));
        name.unwrap_or_else(|| ip.to_string())
    }
}

/// IPv4-mapped IPv6 addresses are treated as the IPv4 address (as Java does).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The texts an `ip:` pattern is matched against.
fn ip_texts(ip: IpAddr) -> Vec<String> {
    match ip {
        IpAddr::V4(v4) => vec![v4.to_string()],
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let long = s
                .iter()
                .map(|x| format!("{x:x}"))
                .collect::<Vec<_>>()
                .join(":");
            vec![long, v6.to_string()]
        }
    }
}

/// Loopback, unspecified, or one of this machine's interface addresses.
pub fn is_local_address(ip: IpAddr) -> bool {
    let ip = canonical(ip);
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    local_interface_addresses().contains(&ip)
}

/// This machine's interface addresses (`getifaddrs`).
///
/// libc is used directly here and in [`reverse_lookup`]: rustix has no `getifaddrs` (it is a
/// libc routine over netlink, not a system call) and no `getnameinfo` (a resolver routine).
fn local_interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid place for getifaddrs to store the list head.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list getifaddrs returned, which stays valid
        // until the freeifaddrs below; `ifa_addr` is null or points at a sockaddr whose real
        // type is given by its `sa_family`, and we read it only as that type.
        unsafe {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed exactly once; no pointer
    // into the list is used after this.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// Reverse lookup (`getnameinfo` with `NI_NAMEREQD`), confirmed by a forward lookup.
fn reverse_lookup(ip: IpAddr) -> Option<String> {
    let sa = socket2::SockAddr::from(SocketAddr::new(ip, 0));
    let mut host = [0u8; 1025];
    // SAFETY: `sa` holds a sockaddr_in/sockaddr_in6 of exactly `sa.len()` bytes; getnameinfo
    // writes at most `host.len()` bytes into `host`, and is given no service buffer.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr().cast::<libc::sockaddr>(),
            sa.len(),
            host.as_mut_ptr().cast::<libc::c_char>(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    let name = CStr::from_bytes_until_nul(&host)
        .ok()?
        .to_string_lossy()
        .into_owned();
    // Forward-confirm, as Java does, so a PTR record alone cannot claim a name.
    let confirmed = (name.as_str(), 0)
        .to_socket_addrs()
        .map(|mut it| it.any(|a| canonical(a.ip()) == ip))
        .unwrap_or(false);
    confirmed.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn interface_addresses_include_loopback() {
        let addrs = local_interface_addresses();
        assert!(addrs.contains(&ip("127.0.0.1")), "{addrs:?}");
        assert!(is_local_address(ip("127.0.0.1")));
        assert!(
            !is_local_address(ip("192.0.2.1")),
            "TEST-NET-1 is nobody's interface"
        );
    }

    #[test]
    fn reverse_lookup_is_forward_confirmed() {
        // 127.0.0.1 is named (e.g. `localhost` in /etc/hosts) on every machine this runs on;
        // whatever the name, it must resolve back to the address.
        let name = reverse_lookup(ip("127.0.0.1")).expect("a name for 127.0.0.1");
        let back: Vec<IpAddr> = (name.as_str(), 0)
            .to_socket_addrs()
            .unwrap()
            .map(|a| a.ip())
            .collect();
        assert!(back.contains(&ip("127.0.0.1")), "{name} -> {back:?}");
    }

    #[test]
    fn wildcards_are_anchored_and_dots_literal() {
        let f = IpFilter::parse("allow:ip:10.0.*,deny:ip:*").unwrap();
        assert!(f.check_with_name(ip("10.0.3.4"), "x").is_allowed());
        assert!(!f.check_with_name(ip("10.1.3.4"), "x").is_allowed());
        // '.' is literal: 10x0.1.1 must not match 10.0.*
        let f = IpFilter::parse("deny:ip:10.0.*").unwrap();
        assert!(f.check_with_name(ip("100.0.1.1"), "x").is_allowed());
        let f = IpFilter::parse("deny:ip:1?.0.0.1").unwrap();
        assert!(!f.check_with_name(ip("12.0.0.1"), "x").is_allowed());
        assert!(f.check_with_name(ip("1.0.0.1"), "x").is_allowed());
        // anchored: a pattern for a prefix does not match a longer address
        let f = IpFilter::parse("deny:ip:10.0.0.1").unwrap();
        assert!(f.check_with_name(ip("10.0.0.12"), "x").is_allowed());
        assert!(!f.check_with_name(ip("10.0.0.1"), "x").is_allowed());
    }

    #[test]
    fn errors_name_the_rule() {
        for bad in [
            "permit:ip:1.2.3.4",
            "allow:host:x",
            "allow",
            "allow:ip",
            "allow:ip: ",
        ] {
            let e = IpFilter::parse(&format!("allow:ip:1.1.1.1, {bad}")).unwrap_err();
            assert_eq!(e.rule, bad.trim(), "{e}");
            assert!(e.to_string().contains(bad.trim()));
        }
        let ctx = Context::from_pairs("a1.sources.r1", [("ipFilter", "true")]);
        let e = IpFilter::from_context(&ctx).unwrap_err();
        assert_eq!(e.key, "a1.sources.r1.ipFilterRules");
        let ctx = Context::from_pairs("a1.sources.r1", [("ipFilterRules", "deny:ip:*")]);
        assert!(IpFilter::from_context(&ctx).unwrap().is_none());
    }

    #[test]
    fn ipv6_long_and_short_forms() {
        let f = IpFilter::parse("deny:ip:0:0:0:0:0:0:0:1").unwrap();
        assert!(!f.check_with_name(ip("::1"), "x").is_allowed());
        let f = IpFilter::parse("deny:ip:fe80::*").unwrap();
        assert!(!f.check_with_name(ip("fe80::1:2"), "x").is_allowed());
        let f = IpFilter::parse("deny:ip:10.*").unwrap();
        assert!(!f.check_with_name(ip("::ffff:10.1.1.1"), "x").is_allowed());
    }

    #[test]
    fn localhost_rule() {
        let f = IpFilter::parse("deny:name:localhost").unwrap();
        assert!(!f.check_with_name(ip("127.0.0.1"), "x").is_allowed());
        assert!(!f.check_with_name(ip("127.1.2.3"), "x").is_allowed());
        assert!(!f.check_with_name(ip("::1"), "x").is_allowed());
        assert!(f.check_with_name(ip("192.0.2.1"), "x").is_allowed());
    }
}
