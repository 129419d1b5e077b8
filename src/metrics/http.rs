//! The HTTP metrics server Flume starts with `-Dflume.monitoring.type=http`
//! (`HTTPMetricsServer`), on tokio, with a small hand-written HTTP/1.1 front end.
//!
//! | request | answer |
//! |---|---|
//! | `GET /metrics` (path case-insensitive, as in Flume) | `200`, `application/json;charset=utf-8`: `{"SOURCE.r1":{"EventReceivedCount":"2",...},...}` — every value a string |
//! | `GET /metrics/prometheus` | `200`, the same counters in Prometheus text format ([`super::prometheus`]) |
//! | `GET /` | `200`, the live status page ([`super::status`]; it links `/metrics` as Flume's root page does) |
//! | `GET /topology` | `200`, the agent's topology as JSON ([`super::topology::Topology::to_json`]) |
//! | `GET /pipelines` | `200`, each pipeline's latest results as JSON ([`super::status::render_pipelines`]) |
//! | `TRACE`, `OPTIONS` (any path) | `403` |
//! | anything else | `404` |
//!
//! Any other method is routed like `GET` (as Flume's Jetty handler does); `HEAD` gets the
//! headers only. Every response closes the connection. A client gets 10 s to send its request
//! head (at most 16 KiB).
//!
//! ```no_run
//! # async fn f(registry: sluicegate::metrics::MetricsRegistry) -> std::io::Result<()> {
//! use sluicegate::metrics::http::MetricsServer;
//! let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), registry).await?;
//! let port = server.local_addr()?.port();
//! server.run(std::future::pending::<()>()).await
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::prometheus;
use super::registry::MetricsRegistry;
use super::status;

/// Flume's default monitoring port.
pub const DEFAULT_PORT: u16 = 41414;
/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Time a client gets to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to write a response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Renders the registry as Flume's `/metrics` JSON: `{"<KIND>.<name>": {attr: "value"}}`,
/// keys sorted.
pub fn render_json(registry: &MetricsRegistry) -> String {
    let mut out: BTreeMap<String, BTreeMap<&'static str, String>> = BTreeMap::new();
    for g in registry.groups() {
        let entry = out.entry(format!("{}.{}", g.kind(), g.name())).or_default();
        for (k, v) in g.attributes() {
            entry.insert(k, v);
        }
    }
    // Serialising a map of strings cannot fail.
    serde_json::to_string(&out).unwrap_or_else(|_| "{}".to_string())
}

/// A bound metrics server; call [`MetricsServer::run`] to serve.
pub struct MetricsServer {
    listener: TcpListener,
    registry: MetricsRegistry,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port; see [`MetricsServer::local_addr`]).
    pub async fn bind(addr: SocketAddr, registry: MetricsRegistry) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind the metrics server to {addr}: {e}"),
            )
        })?;
        Ok(MetricsServer { listener, registry })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting and drops open connections.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, "metrics server listening (status page /, /metrics, /metrics/prometheus)");
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let registry = self.registry.clone();
                        conns.spawn(async move {
                            if let Err(e) = handle(stream, &registry).await {
                                tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly, keep serving.
                        tracing::warn!(error = %e, "metrics server accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.shutdown().await;
        tracing::info!(%addr, "metrics server stopped");
        Ok(())
    }
}

/// Binds `addr` and serves the registry until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    registry: MetricsRegistry,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    MetricsServer::bind(addr, registry)
        .await?
        .run(shutdown)
        .await
}

struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn error(status: u16, reason: &'static str) -> Response {
        Response {
            status,
            reason,
            content_type: "text/html;charset=utf-8",
            body: format!(
                "<html><head><title>Error {status} {reason}</title></head><body><h2>HTTP ERROR \
                 {status}</h2><p>{reason}</p></body></html>"
            ),
        }
    }
}

fn route(method: &str, target: &str, registry: &MetricsRegistry) -> Response {
    if method.eq_ignore_ascii_case("TRACE") || method.eq_ignore_ascii_case("OPTIONS") {
        return Response::error(403, "Forbidden");
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    if path == "/" {
        Response {
            status: 200,
            reason: "OK",
            content_type: "text/html;charset=utf-8",
            body: status::PAGE.into(),
        }
    } else if path.eq_ignore_ascii_case("/topology") {
        Response {
            status: 200,
            reason: "OK",
            content_type: "application/json;charset=utf-8",
            body: registry.topology().to_json(),
        }
    } else if path.eq_ignore_ascii_case("/pipelines") {
        Response {
            status: 200,
            reason: "OK",
            content_type: "application/json;charset=utf-8",
            body: status::render_pipelines(registry),
        }
    } else if path.eq_ignore_ascii_case("/metrics") {
        Response {
            status: 200,
            reason: "OK",
            content_type: "application/json;charset=utf-8",
            body: render_json(registry),
        }
    } else if path.eq_ignore_ascii_case("/metrics/prometheus") {
        Response {
            status: 200,
            reason: "OK",
            content_type: prometheus::CONTENT_TYPE,
            body: prometheus::render(registry),
        }
    } else {
        Response::error(404, "Not Found")
    }
}

async fn handle(mut stream: TcpStream, registry: &MetricsRegistry) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = tokio::time::timeout(READ_TIMEOUT, async {
        let mut chunk = [0u8; 2048];
        loop {
            if let Some(i) = find_head_end(&buf) {
                return Ok(Some(i));
            }
            if buf.len() > MAX_HEAD {
                return Ok(None);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a full request head",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request head not received in time"))??;

    let (response, head_only) = match head_end {
        None => (
            Response::error(431, "Request Header Fields Too Large"),
            false,
        ),
        Some(end) => {
            let head = String::from_utf8_lossy(&buf[..end]);
            let request_line = head.lines().next().unwrap_or("");
            let mut parts = request_line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(method), Some(target), Some(version)) if version.starts_with("HTTP/") => {
                    let head_only = method.eq_ignore_ascii_case("HEAD");
                    (route(method, target, registry), head_only)
                }
                _ => (Response::error(400, "Bad Request"), false),
            }
        }
    };

    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: \
         no-cache\r\nConnection: close\r\n\r\n",
        response.status,
        response.reason,
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(response.body.as_bytes());
    }
    tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "response not sent in time"))?
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"))
}

/// Which monitoring service `flume.monitoring.type` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitoringType {
    /// `http` (or `org.apache.flume.instrumentation.http.HTTPMetricsServer`): Flume's JSON.
    Http,
}

/// The monitoring options from Flume's `-Dflume.monitoring.*` system properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringOptions {
    /// The service.
    pub monitoring_type: MonitoringType,
    /// `flume.monitoring.port` (default 41414).
    pub port: u16,
    /// `flume.monitoring.bind` — a sluicegate extension; Flume (Jetty) listens on all
    /// interfaces, which is the default here too.
    pub bind: IpAddr,
}

impl MonitoringOptions {
    /// The socket address to serve on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
}

/// A bad `-Dflume.monitoring.*` setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("-D{key}={value}: {message}")]
pub struct MonitoringConfigError {
    /// The property (`flume.monitoring.port`).
    pub key: String,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub message: String,
}

/// Reads `flume.monitoring.type` / `.port` / `.bind` from `-D` properties as Flume's
/// `Application` does: no `flume.monitoring.type` → `Ok(None)` (no monitoring).
pub fn monitoring_options<'a, I>(
    props: I,
) -> Result<Option<MonitoringOptions>, MonitoringConfigError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let props: BTreeMap<&str, &str> = props.into_iter().collect();
    let err = |key: &str, value: &str, message: String| MonitoringConfigError {
        key: key.to_string(),
        value: value.to_string(),
        message,
    };
    let Some(kind) = props.get("flume.monitoring.type").map(|v| v.trim()) else {
        return Ok(None);
    };
    let monitoring_type = if kind.eq_ignore_ascii_case("http")
        || kind == "org.apache.flume.instrumentation.http.HTTPMetricsServer"
    {
        MonitoringType::Http
    } else if kind.eq_ignore_ascii_case("ganglia") || kind.eq_ignore_ascii_case("prometheus") {
        return Err(err(
            "flume.monitoring.type",
            kind,
            "this monitoring type is not supported by sluicegate; use 'http' (its /metrics serves \
             Flume's JSON and /metrics/prometheus the Prometheus text format)"
                .into(),
        ));
    } else {
        return Err(err(
            "flume.monitoring.type",
            kind,
            "unknown monitoring type; supported: http".into(),
        ));
    };
    let port = match props.get("flume.monitoring.port").map(|v| v.trim()) {
        None => DEFAULT_PORT,
        Some(v) => v.parse::<u16>().map_err(|_| {
            err(
                "flume.monitoring.port",
                v,
                "expected a TCP port number (0-65535)".into(),
            )
        })?,
    };
    let bind = match props.get("flume.monitoring.bind").map(|v| v.trim()) {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(v) => v.parse::<IpAddr>().map_err(|_| {
            err(
                "flume.monitoring.bind",
                v,
                "expected an IP address such as 0.0.0.0 or 127.0.0.1".into(),
            )
        })?,
    };
    Ok(Some(MonitoringOptions {
        monitoring_type,
        port,
        bind,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitoring_options_from_system_properties() {
        assert_eq!(monitoring_options([("x", "y")]).unwrap(), None);
        let o = monitoring_options([("flume.monitoring.type", "http")])
            .unwrap()
            .unwrap();
        assert_eq!(o.port, 41414);
        assert_eq!(o.addr().to_string(), "0.0.0.0:41414");
        let o = monitoring_options([
            (
                "flume.monitoring.type",
                "org.apache.flume.instrumentation.http.HTTPMetricsServer",
            ),
            ("flume.monitoring.port", "34545"),
            ("flume.monitoring.bind", "127.0.0.1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(o.addr().to_string(), "127.0.0.1:34545");
        let e = monitoring_options([
            ("flume.monitoring.type", "HTTP"),
            ("flume.monitoring.port", "99999"),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "-Dflume.monitoring.port=99999: expected a TCP port number (0-65535)"
        );
        let e = monitoring_options([("flume.monitoring.type", "ganglia")]).unwrap_err();
        assert!(e.message.contains("not supported"));
    }

    #[test]
    fn routing() {
        let r = MetricsRegistry::new();
        assert_eq!(route("GET", "/", &r).status, 200);
        assert_eq!(route("GET", "/metrics", &r).status, 200);
        assert_eq!(route("GET", "/METRICS?x=1", &r).status, 200);
        assert_eq!(route("GET", "/metrics", &r).body, "{}");
        assert_eq!(route("POST", "/metrics", &r).status, 200);
        assert_eq!(route("TRACE", "/metrics", &r).status, 403);
        assert_eq!(route("options", "/", &r).status, 403);
        assert_eq!(route("GET", "/nope", &r).status, 404);
        assert_eq!(route("GET", "/metrics/prometheus", &r).status, 200);
        assert_eq!(route("GET", "/topology", &r).status, 200);
        assert_eq!(route("GET", "/pipelines", &r).body, "{}");
        assert_eq!(route("GET", "/", &r).body, status::PAGE);
    }
}
