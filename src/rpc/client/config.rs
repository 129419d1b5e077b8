//! [`RpcClientConfig`]: the Flume SDK's RPC client properties
//! (`RpcClientConfigurationConstants`, spec §4.3–§4.5), read from a [`Context`].
//!
//! | key | default | notes |
//! |---|---|---|
//! | `client.type` | `default` | `default`, `default_loadbalance`, `default_failover` (`thrift` and class names are refused) |
//! | `hosts` | — | space-separated aliases, e.g. `h1 h2` |
//! | `hosts.<alias>` | — | `host:port` |
//! | `batch-size` | 100 | `< 1` or unparsable → 100 (warning), as Flume |
//! | `connect-timeout` | 20000 ms | `< 1000` → 20000 (warning), as Flume |
//! | `request-timeout` | 20000 ms | `< 1000` → 20000 (warning), as Flume |
//! | `compression-type`, `compression-level`, `compression-layer-order` | none, 6, zlib-outside | see [`crate::rpc::transport`] |
//! | `ssl`, `trust-all-certs`, `truststore*`, `verify-hostname`, `include-/exclude-protocols`, `include-/exclude-cipher-suites` | | see [`crate::rpc::tls`] |
//! | `host-selector` | `round_robin` | load balancing: `round_robin` or `random` |
//! | `backoff` | false | load balancing: skip a failed host for a while |
//! | `maxBackoff` | 0 (= 30000 ms) | load balancing: cap of the backoff |
//! | `max-attempts` | number of hosts | failover |
//! | `maxIoWorkers` | — | accepted and ignored (Flume ≥ 1.10 ignores it too) |

use std::time::Duration;

use crate::config::{ConfigError, Context, SystemProps};
use crate::rpc::transport::ClientTransport;

/// Flume's `DEFAULT_BATCH_SIZE`.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Flume's `DEFAULT_REQUEST_TIMEOUT_MILLIS`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(20_000);
/// Flume's `MIN_REQUEST_TIMEOUT_MILLIS`: smaller values fall back to the default.
pub const MIN_REQUEST_TIMEOUT: Duration = Duration::from_millis(1_000);
/// `OrderSelector`'s internal cap when `maxBackoff` is 0.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_millis(30_000);

/// Which client `client.type` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientType {
    /// `default`: one connection to the first host (`NettyAvroRpcClient`).
    #[default]
    Default,
    /// `default_loadbalance`: `LoadBalancingRpcClient`.
    LoadBalance,
    /// `default_failover`: `FailoverRpcClient`.
    Failover,
}

impl ClientType {
    /// Parses a `client.type` value (case-insensitive, also Flume's class names).
    pub fn parse(v: &str) -> Option<ClientType> {
        match v.trim().to_ascii_lowercase().as_str() {
            "default" | "avro" | "org.apache.flume.api.nettyavrorpcclient" => {
                Some(ClientType::Default)
            }
            "default_loadbalance" | "org.apache.flume.api.loadbalancingrpcclient" => {
                Some(ClientType::LoadBalance)
            }
            "default_failover" | "org.apache.flume.api.failoverrpcclient" => {
                Some(ClientType::Failover)
            }
            _ => None,
        }
    }
}

/// `host-selector` of the load-balancing client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostSelector {
    /// Hosts in turn, starting one further on each batch.
    #[default]
    RoundRobin,
    /// A random order for each batch.
    Random,
}

/// One `hosts.<alias> = host:port` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// The alias (`h1`).
    pub alias: String,
    /// Host name or IP literal.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl HostInfo {
    /// A host entry.
    pub fn new(alias: impl Into<String>, host: impl Into<String>, port: u16) -> HostInfo {
        HostInfo {
            alias: alias.into(),
            host: host.into(),
            port,
        }
    }

    /// Parses `host:port` (IPv6 as `[::1]:4141`).
    pub fn parse(alias: &str, v: &str) -> Option<HostInfo> {
        let v = v.trim();
        let (host, port) = v.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return None;
        }
        Some(HostInfo::new(alias, host, port.trim().parse().ok()?))
    }
}

impl std::fmt::Display for HostInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Everything an RPC client needs; see the module docs for the keys.
#[derive(Debug, Clone)]
pub struct RpcClientConfig {
    /// `client.type`.
    pub client_type: ClientType,
    /// `hosts` in their configured order.
    pub hosts: Vec<HostInfo>,
    /// `batch-size`: most events per `appendBatch` RPC.
    pub batch_size: usize,
    /// `connect-timeout`: TCP connect + TLS, and the first (handshake-carrying) call.
    pub connect_timeout: Duration,
    /// `request-timeout`: every later call.
    pub request_timeout: Duration,
    /// Compression, TLS and connect timeout of each connection.
    pub transport: ClientTransport,
    /// `host-selector` (load balancing).
    pub selector: HostSelector,
    /// `backoff` (load balancing).
    pub backoff: bool,
    /// `maxBackoff` (load balancing); 0 in the file means [`DEFAULT_MAX_BACKOFF`].
    pub max_backoff: Duration,
    /// `max-attempts` (failover); defaults to the number of hosts.
    pub max_attempts: usize,
}

impl RpcClientConfig {
    /// A `default` client for one host with Flume's defaults (no TLS, no compression).
    pub fn single(host: impl Into<String>, port: u16) -> RpcClientConfig {
        RpcClientConfig {
            client_type: ClientType::Default,
            hosts: vec![HostInfo::new("h1", host, port)],
            batch_size: DEFAULT_BATCH_SIZE,
            connect_timeout: crate::rpc::transport::DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            transport: ClientTransport::new(
                crate::rpc::transport::TransportSettings::plain(),
                None,
                crate::rpc::transport::DEFAULT_CONNECT_TIMEOUT,
            ),
            selector: HostSelector::RoundRobin,
            backoff: false,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_attempts: 1,
        }
    }

    /// Reads Flume's RPC client keys (see the module docs).
    pub fn from_context(
        ctx: &Context,
        props: &SystemProps,
    ) -> Result<RpcClientConfig, ConfigError> {
        let client_type = match ctx.get("client.type") {
            None => ClientType::Default,
            Some(v) => ClientType::parse(v).ok_or_else(|| {
                ctx.error(
                    "client.type",
                    &format!(
                        "unsupported client type '{v}': use default, default_loadbalance or \
                         default_failover (thrift is not implemented)"
                    ),
                )
            })?,
        };
        let aliases: Vec<String> = ctx
            .require("hosts")?
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let mut hosts = Vec::with_capacity(aliases.len());
        for alias in &aliases {
            let key = format!("hosts.{alias}");
            let v = ctx.require(&key)?;
            let h = HostInfo::parse(alias, v)
                .ok_or_else(|| ctx.error(&key, &format!("expected host:port, got '{v}'")))?;
            hosts.push(h);
        }
        if client_type == ClientType::LoadBalance && hosts.len() < 2 {
            return Err(ctx.error(
                "hosts",
                "default_loadbalance needs at least two hosts (use client.type = default for one)",
            ));
        }
        let batch_size = match ctx.get("batch-size").map(|v| v.trim().parse::<i64>()) {
            None => DEFAULT_BATCH_SIZE,
            Some(Ok(n)) if n >= 1 => n as usize,
            Some(_) => {
                ctx.warn(
                    "batch-size",
                    "invalid batch-size (must be an integer >= 1); using the default 100 as \
                     Flume does",
                );
                DEFAULT_BATCH_SIZE
            }
        };
        let transport = ClientTransport::from_context(ctx, props)?;
        let request_timeout =
            crate::rpc::transport::flume_timeout(ctx, "request-timeout", DEFAULT_REQUEST_TIMEOUT)?;
        let selector = match ctx
            .get("host-selector")
            .map(|s| s.trim().to_ascii_lowercase())
        {
            None => HostSelector::RoundRobin,
            Some(s) if s == "round_robin" => HostSelector::RoundRobin,
            Some(s) if s == "random" => HostSelector::Random,
            Some(s) => {
                return Err(ctx.error(
                    "host-selector",
                    &format!("unknown host selector '{s}': use round_robin or random"),
                ))
            }
        };
        let backoff = ctx.get_bool("backoff", false);
        let max_backoff = match ctx.get_u64("maxBackoff", 0)? {
            0 => DEFAULT_MAX_BACKOFF,
            ms => Duration::from_millis(ms),
        };
        let max_attempts = match ctx.get_u64("max-attempts", hosts.len() as u64)? {
            0 => {
                ctx.warn(
                    "max-attempts",
                    "max-attempts must be >= 1; using the number of hosts",
                );
                hosts.len()
            }
            n => n as usize,
        };
        if ctx.contains("maxIoWorkers") {
            let _ = ctx.get("maxIoWorkers");
            ctx.warn(
                "maxIoWorkers",
                "maxIoWorkers is no longer supported and is ignored (as in Flume >= 1.10)",
            );
        }
        Ok(RpcClientConfig {
            client_type,
            hosts,
            batch_size,
            connect_timeout: transport.connect_timeout(),
            request_timeout,
            transport,
            selector,
            backoff,
            max_backoff,
            max_attempts,
        })
    }

    /// This configuration for one host as a `default` client (what the load-balancing and
    /// failover clients build per host).
    pub fn for_host(&self, host: &HostInfo) -> RpcClientConfig {
        RpcClientConfig {
            client_type: ClientType::Default,
            hosts: vec![host.clone()],
            max_attempts: 1,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> Context {
        Context::from_pairs("a1.sinks.k1", pairs.iter().copied())
    }

    #[test]
    fn defaults_and_flume_fallbacks() {
        let c = RpcClientConfig::from_context(
            &ctx(&[
                ("hosts", "h1"),
                ("hosts.h1", "127.0.0.1:4141"),
                ("batch-size", "0"),
                ("request-timeout", "999"),
            ]),
            &SystemProps::new(),
        )
        .unwrap();
        assert_eq!(c.client_type, ClientType::Default);
        assert_eq!(c.hosts, vec![HostInfo::new("h1", "127.0.0.1", 4141)]);
        assert_eq!(c.batch_size, 100);
        assert_eq!(c.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(c.connect_timeout, Duration::from_millis(20_000));
        assert_eq!(c.max_backoff, DEFAULT_MAX_BACKOFF);
        let c = RpcClientConfig::from_context(
            &ctx(&[
                ("hosts", "a b"),
                ("hosts.a", "x:1"),
                ("hosts.b", "[::1]:2"),
                ("client.type", "default_loadbalance"),
                ("batch-size", "abc"),
                ("request-timeout", "1500"),
                ("host-selector", "RANDOM"),
                ("backoff", "true"),
                ("maxBackoff", "5000"),
            ]),
            &SystemProps::new(),
        )
        .unwrap();
        assert_eq!(c.client_type, ClientType::LoadBalance);
        assert_eq!(c.batch_size, 100);
        assert_eq!(c.request_timeout, Duration::from_millis(1500));
        assert_eq!(c.selector, HostSelector::Random);
        assert!(c.backoff);
        assert_eq!(c.max_backoff, Duration::from_millis(5000));
        assert_eq!(c.hosts[1].to_string(), "[::1]:2");
        assert_eq!(c.max_attempts, 2);
    }

    #[test]
    fn errors_name_the_key() {
        for (pairs, key) in [
            (vec![("hosts", "h1")], "a1.sinks.k1.hosts.h1"),
            (
                vec![("hosts", "h1"), ("hosts.h1", "nohost")],
                "a1.sinks.k1.hosts.h1",
            ),
            (
                vec![
                    ("hosts", "h1"),
                    ("hosts.h1", "x:1"),
                    ("client.type", "thrift"),
                ],
                "a1.sinks.k1.client.type",
            ),
            (
                vec![
                    ("hosts", "h1"),
                    ("hosts.h1", "x:1"),
                    ("client.type", "default_loadbalance"),
                ],
                "a1.sinks.k1.hosts",
            ),
            (vec![], "a1.sinks.k1.hosts"),
        ] {
            let e = RpcClientConfig::from_context(&ctx(&pairs), &SystemProps::new()).unwrap_err();
            assert_eq!(e.key, key, "{pairs:?}");
        }
    }
}
