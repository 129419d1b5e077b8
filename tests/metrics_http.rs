//! The metrics HTTP server against a plain `TcpStream` client on 127.0.0.1: Flume's `/metrics`
//! JSON shape, the HTML root, 403/404 answers, and the Prometheus text format.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use sluicegate::metrics::http::MetricsServer;
use sluicegate::metrics::{
    ChannelCounter, ChannelHealth, CounterGroup, MetricsRegistry, SinkCounter, SourceCounter,
};
use sluicegate::pipeline::PipelineCounter;

/// A blocking HTTP/1.1 request; returns (status, headers, body). Bounded by socket timeouts.
fn request(addr: SocketAddr, raw: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    let text = String::from_utf8(buf).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"));
    let status: u16 = parts.next().unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    if let Some((_, len)) = headers.iter().find(|(k, _)| k == "content-length") {
        if !raw.starts_with("HEAD ") {
            assert_eq!(len.parse::<usize>().unwrap(), body.len(), "content-length");
        }
    }
    (status, headers, body.to_string())
}

fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(registry: MetricsRegistry) -> Running {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), registry).await?;
            addr_tx.send(server.local_addr()?).unwrap();
            server
                .run(async move {
                    let _ = stop_rx.await;
                })
                .await
        })
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server bound");
    Running {
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

fn registry() -> (
    MetricsRegistry,
    Arc<SourceCounter>,
    Arc<ChannelCounter>,
    Arc<SinkCounter>,
) {
    let reg = MetricsRegistry::new();
    let src = Arc::new(SourceCounter::new("r1"));
    let ch = Arc::new(ChannelCounter::new("c1"));
    let sink = Arc::new(SinkCounter::new("k1"));
    src.start();
    ch.start();
    sink.start();
    SourceCounter::add(&src.events_received, 2);
    SourceCounter::add(&src.events_accepted, 2);
    SourceCounter::add(&src.append_batch_received, 1);
    SourceCounter::add(&src.append_batch_accepted, 1);
    SourceCounter::add(&src.open_connections, 1);
    ChannelCounter::add(&ch.capacity, 1_000_000);
    ChannelCounter::add(&ch.channel_size, 2);
    ChannelCounter::add(&ch.put_attempt, 2);
    ChannelCounter::add(&ch.put_success, 2);
    SinkCounter::add(&sink.connection_created, 1);
    reg.register(src.clone());
    reg.register(ch.clone());
    reg.register(sink.clone());
    (reg, src, ch, sink)
}

#[test]
fn metrics_json_has_flumes_shape() {
    let (reg, src, _ch, _sink) = registry();
    let server = start(reg);
    let (status, headers, body) = get(server.addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/json;charset=utf-8")
    );
    let json: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
    let obj = json.as_object().expect("top level is an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["CHANNEL.c1", "SINK.k1", "SOURCE.r1"]);
    for (k, attrs) in obj {
        let attrs = attrs
            .as_object()
            .unwrap_or_else(|| panic!("{k} is an object"));
        for (name, v) in attrs {
            assert!(v.is_string(), "{k}.{name} must be a JSON string, got {v}");
        }
        let kind = k.split('.').next().unwrap();
        assert_eq!(attrs["Type"], kind, "{k}.Type");
        assert!(attrs.contains_key("StartTime") && attrs.contains_key("StopTime"));
        assert_ne!(attrs["StartTime"], "0", "{k} was started");
        assert_eq!(attrs["StopTime"], "0");
    }
    let s = &obj["SOURCE.r1"];
    for (name, want) in [
        ("EventReceivedCount", "2"),
        ("EventAcceptedCount", "2"),
        ("AppendBatchReceivedCount", "1"),
        ("AppendBatchAcceptedCount", "1"),
        ("AppendReceivedCount", "0"),
        ("AppendAcceptedCount", "0"),
        ("OpenConnectionCount", "1"),
        ("EventReadFail", "0"),
        ("ChannelWriteFail", "0"),
        ("GenericProcessingFail", "0"),
    ] {
        assert_eq!(s[name], want, "SOURCE.r1.{name}");
    }
    let c = &obj["CHANNEL.c1"];
    for (name, want) in [
        ("ChannelSize", "2"),
        ("ChannelCapacity", "1000000"),
        ("ChannelFillPercentage", "2.0E-4"),
        ("EventPutAttemptCount", "2"),
        ("EventPutSuccessCount", "2"),
        ("EventTakeAttemptCount", "0"),
        ("EventTakeSuccessCount", "0"),
    ] {
        assert_eq!(c[name], want, "CHANNEL.c1.{name}");
    }
    let k = &obj["SINK.k1"];
    for name in [
        "ConnectionCreatedCount",
        "ConnectionClosedCount",
        "ConnectionFailedCount",
        "BatchEmptyCount",
        "BatchUnderflowCount",
        "BatchCompleteCount",
        "EventDrainAttemptCount",
        "EventDrainSuccessCount",
        "EventWriteFail",
        "ChannelReadFail",
    ] {
        assert!(k.get(name).is_some(), "SINK.k1.{name} present");
    }
    assert_eq!(k["ConnectionCreatedCount"], "1");

    // Counters are live: a second fetch sees new values.
    SourceCounter::add(&src.events_received, 5);
    let (_, _, body) = get(server.addr, "/METRICS");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["SOURCE.r1"]["EventReceivedCount"], "7");
}

#[test]
fn root_errors_and_methods() {
    let (reg, ..) = registry();
    let server = start(reg);
    let (status, headers, body) = get(server.addr, "/");
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html;charset=utf-8")
    );
    assert!(body.contains("href = \"./metrics\""), "{body}");
    assert_eq!(get(server.addr, "/nothing-here").0, 404);
    assert_eq!(get(server.addr, "/metrics/").0, 404);
    for method in ["TRACE", "OPTIONS"] {
        let (status, ..) = request(server.addr, &format!("{method} /metrics HTTP/1.1\r\n\r\n"));
        assert_eq!(status, 403, "{method}");
    }
    let (status, headers, body) = request(server.addr, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert!(
        header(&headers, "content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 2
    );
    assert_eq!(request(server.addr, "garbage\r\n\r\n").0, 400);
    // A query string does not change the route.
    assert_eq!(get(server.addr, "/metrics?pretty=1").0, 200);
}

#[test]
fn prometheus_text_parses_line_by_line() {
    let (reg, ..) = registry();
    let server = start(reg);
    let (status, headers, body) = get(server.addr, "/metrics/prometheus");
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let sample_re =
        regex::Regex::new(r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{component="((?:[^"\\]|\\.)*)"\} (\S+)$"#)
            .unwrap();
    let mut typed = std::collections::BTreeMap::new();
    let mut samples = std::collections::BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(kind == "counter" || kind == "gauge", "{line}");
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "one TYPE per metric"
            );
        } else if line.starts_with("# HELP ") {
            continue;
        } else {
            let c = sample_re
                .captures(line)
                .unwrap_or_else(|| panic!("bad sample line: {line}"));
            let name = c[1].to_string();
            assert!(typed.contains_key(&name), "sample before its TYPE: {line}");
            let v: f64 = c[3].parse().unwrap_or_else(|_| panic!("bad value: {line}"));
            samples.insert((name, c[2].to_string()), v);
        }
    }
    let s = |n: &str, c: &str| samples.get(&(n.to_string(), c.to_string())).copied();
    assert_eq!(s("flume_source_event_received_count", "r1"), Some(2.0));
    assert_eq!(
        s("flume_source_append_batch_accepted_count", "r1"),
        Some(1.0)
    );
    assert_eq!(s("flume_channel_channel_size", "c1"), Some(2.0));
    assert_eq!(s("flume_channel_channel_capacity", "c1"), Some(1_000_000.0));
    assert_eq!(
        s("flume_channel_channel_fill_percentage", "c1"),
        Some(0.0002)
    );
    assert_eq!(s("flume_sink_connection_created_count", "k1"), Some(1.0));
    assert_eq!(typed["flume_source_event_received_count"], "counter");
    assert_eq!(typed["flume_channel_channel_size"], "gauge");
    assert_eq!(typed["flume_source_open_connection_count"], "gauge");
    assert!(
        !typed.keys().any(|k| k.ends_with("_type")),
        "the Type attribute is not a metric"
    );
}

/// The `# TYPE` of every metric in Prometheus text.
fn prometheus_types(body: &str) -> std::collections::BTreeMap<String, String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            (name.to_string(), kind.to_string())
        })
        .collect()
}

#[test]
fn gauges_are_typed_gauge_and_every_declared_gauge_is_emitted() {
    let (reg, ..) = registry();
    // A file channel's health flags: `Open` is true/false (JSON only), `Closed`/`Unhealthy` 0/1.
    let fc = Arc::new(ChannelCounter::new("fc"));
    let health = Arc::new(ChannelHealth::default());
    health.open.store(1, std::sync::atomic::Ordering::Relaxed);
    fc.attach_health(health);
    fc.start();
    reg.register(fc.clone());
    let p = Arc::new(PipelineCounter::new("wc"));
    p.start();
    p.state_keys.store(42, std::sync::atomic::Ordering::Relaxed);
    p.watermark_lag_ms
        .store(1500, std::sync::atomic::Ordering::Relaxed);
    p.processing_last_ms
        .store(7, std::sync::atomic::Ordering::Relaxed);
    p.input_total
        .store(900, std::sync::atomic::Ordering::Relaxed);
    reg.register(p.clone());
    let server = start(reg.clone());
    let (status, _, body) = get(server.addr, "/metrics/prometheus");
    assert_eq!(status, 200);
    let typed = prometheus_types(&body);

    // Every gauge a group declares is emitted, typed gauge (a declared gauge that is never
    // emitted, like FileChannel's non-numeric `Open` was, fails here).
    let groups: Vec<Arc<dyn CounterGroup>> = reg.groups();
    for g in &groups {
        for attr in g.gauges() {
            let name = sluicegate::metrics::prometheus::metric_name(g.kind(), attr);
            assert_eq!(
                typed.get(&name).map(String::as_str),
                Some("gauge"),
                "{}.{}: declared a gauge, so {name} must be typed gauge",
                g.kind(),
                attr
            );
        }
    }
    assert!(
        !typed.contains_key("flume_channel_open"),
        "Open is JSON-only"
    );
    assert!(
        body.contains("flume_channel_closed{component=\"fc\"} 0"),
        "{body}"
    );
    for gauge in [
        "flume_pipeline_state_keys",
        "flume_pipeline_watermark_lag_ms",
        "flume_pipeline_processing_time_last_ms",
        "flume_pipeline_processing_time_p50_ms",
        "flume_pipeline_processing_time_p99_ms",
        "flume_pipeline_scheduling_delay_last_ms",
        "flume_pipeline_input_events_last_batch",
    ] {
        assert_eq!(typed[gauge], "gauge", "{gauge}");
    }
    for counter in [
        "flume_pipeline_batches_completed",
        "flume_pipeline_input_events_total",
        "flume_pipeline_errors_non_utf8",
        "flume_pipeline_output_records",
        "flume_source_event_accepted_count",
        "flume_channel_event_put_success_count",
    ] {
        assert_eq!(typed[counter], "counter", "{counter}");
    }
    assert!(body.contains("flume_pipeline_state_keys{component=\"wc\"} 42"));
    assert!(body.contains("flume_pipeline_watermark_lag_ms{component=\"wc\"} 1500"));
    // The JSON still carries FileChannel's `Open` as Flume does.
    let (_, _, json) = get(server.addr, "/metrics");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["CHANNEL.fc"]["Open"], "true");
    assert_eq!(v["CHANNEL.fc"]["Closed"], "0");
}

#[tokio::test]
async fn serve_stops_on_shutdown() {
    let (reg, ..) = registry();
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), reg)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    // A connection that never sends a request must not keep the server from stopping.
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("server stops within the timeout")
        .unwrap()
        .unwrap();
    drop(idle);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}
