//! `compression-layer-order = auto` (the Avro source's default) over 127.0.0.1: one server
//! transport with TLS and deflate serves clients of both layer orders (Flume ≤ 1.9 and ≥ 1.10),
//! and closes connections whose first bytes are neither, or that end before showing them,
//! cleanly and with an error naming the peer and the bytes.

use std::path::PathBuf;
use std::time::Duration;

use sluicegate::config::{Context, SystemProps};
use sluicegate::rpc::{
    ClientTransport, LayerOrder, RpcStream, ServerLayerOrder, ServerTransport, TransportError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

mod support;
use support::echo::echo_server;

const LIMIT: Duration = Duration::from_secs(20);

fn fx(name: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", "tls", name]
        .iter()
        .collect();
    p.to_string_lossy().into_owned()
}

/// A source-side transport from `flume.conf`-style keys (TLS from the fixture keystore).
fn server(tls: bool, deflate: bool, extra: &[(&str, &str)]) -> ServerTransport {
    let ks = fx("server.p12");
    let mut pairs: Vec<(&str, &str)> = extra.to_vec();
    if tls {
        pairs.extend([
            ("ssl", "true"),
            ("keystore", ks.as_str()),
            ("keystore-password", "changeit"),
            ("keystore-type", "PKCS12"),
        ]);
    }
    if deflate {
        pairs.push(("compression-type", "deflate"));
    }
    ServerTransport::from_context(
        &Context::from_pairs("a1.sources.r1", pairs),
        &SystemProps::new(),
    )
    .expect("source transport")
}

/// A sink-side transport in `order` (TLS trusting the fixture CA).
fn client(tls: bool, deflate: bool, order: &str) -> ClientTransport {
    let ca = fx("ca.pem");
    let mut pairs = vec![
        ("compression-layer-order", order),
        ("connect-timeout", "10000"),
    ];
    if tls {
        pairs.extend([
            ("ssl", "true"),
            ("truststore", ca.as_str()),
            ("truststore-type", "PEM"),
        ]);
    }
    if deflate {
        pairs.push(("compression-type", "deflate"));
    }
    ClientTransport::from_context(
        &Context::from_pairs("a1.sinks.k1", pairs),
        &SystemProps::new(),
    )
    .expect("sink transport")
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// Sends `msg` in frame-sized writes (one flush each) and expects it echoed back.
async fn echo(stream: &mut RpcStream, msg: &[u8]) {
    let mut got = vec![0u8; msg.len()];
    let (mut rd, mut wr) = tokio::io::split(stream);
    let write = async {
        for chunk in msg.chunks(10_000) {
            wr.write_all(chunk).await.unwrap();
            wr.flush().await.unwrap();
        }
    };
    let read = async { rd.read_exact(&mut got).await.unwrap() };
    tokio::time::timeout(LIMIT, async { tokio::join!(write, read) })
        .await
        .expect("echo timed out");
    assert!(got == msg, "echoed bytes differ");
}

async fn next_accept(
    rx: &mut mpsc::Receiver<Result<&'static str, TransportError>>,
) -> Result<&'static str, TransportError> {
    tokio::time::timeout(LIMIT, rx.recv())
        .await
        .expect("the server decides in time")
        .expect("accept result")
}

/// Reads until the server closes; true if it did (EOF or reset) within the limit.
async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    let r = tokio::time::timeout(LIMIT, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    r.is_ok()
}

#[tokio::test]
async fn one_auto_port_serves_both_layer_orders() {
    // No compression-layer-order key: a source defaults to auto.
    let t = server(true, true, &[]);
    assert_eq!(t.layer_order(), ServerLayerOrder::Auto);
    let (addr, mut accepted) = echo_server(t, 4).await;
    // Alternate the orders on one port: each connection is decided on its own.
    for (order, layers) in [
        ("tls-outside", "tls+zlib"),
        ("zlib-outside", "zlib+tls"),
        ("flume-1.9", "tls+zlib"),
        ("flume-1.11", "zlib+tls"),
    ] {
        let c = client(true, true, order);
        let mut s = c.connect("localhost", addr.port()).await.unwrap();
        assert_eq!(s.layers(), layers);
        assert_eq!(next_accept(&mut accepted).await.unwrap(), layers);
        echo(&mut s, b"hello flume").await;
        echo(&mut s, &payload(300_000)).await;
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn explicit_orders_still_pin_the_port() {
    for (pinned, other) in [
        ("tls-outside", "zlib-outside"),
        ("zlib-outside", "tls-outside"),
    ] {
        let t = server(true, true, &[("compression-layer-order", pinned)]);
        let (addr, mut accepted) = echo_server(t, 2).await;
        let mut s = client(true, true, pinned)
            .connect("localhost", addr.port())
            .await
            .unwrap();
        echo(&mut s, b"pinned").await;
        assert!(next_accept(&mut accepted).await.is_ok());
        let r = client(true, true, other)
            .connect("localhost", addr.port())
            .await;
        assert!(
            matches!(r, Err(TransportError::TlsHandshake { .. })),
            "{r:?}"
        );
        let e = next_accept(&mut accepted).await.unwrap_err();
        assert!(matches!(e, TransportError::TlsHandshake { .. }), "{e}");
    }
}

#[tokio::test]
async fn auto_changes_nothing_without_both_layers() {
    for (tls, deflate, layers) in [
        (false, false, "plain"),
        (false, true, "zlib"),
        (true, false, "tls"),
    ] {
        let t = server(tls, deflate, &[("compression-layer-order", "auto")]);
        let (addr, mut accepted) = echo_server(t, 1).await;
        let mut s = client(tls, deflate, "tls-outside")
            .connect("localhost", addr.port())
            .await
            .unwrap();
        assert_eq!(s.layers(), layers);
        echo(&mut s, &payload(50_000)).await;
        assert_eq!(next_accept(&mut accepted).await.unwrap(), layers);
    }
    // Without TLS nothing is read ahead: a plain server takes any first byte.
    let (addr, mut accepted) = echo_server(server(false, false, &[]), 1).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0x00, 0x00]).await.unwrap();
    let mut back = [0u8; 2];
    tokio::time::timeout(LIMIT, tcp.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, [0, 0]);
    assert_eq!(next_accept(&mut accepted).await.unwrap(), "plain");
}

#[tokio::test]
async fn garbage_first_bytes_get_a_clean_close_naming_peer_and_bytes() {
    let (addr, mut accepted) = echo_server(server(true, true, &[]), 3).await;
    // A plain Netty frame (a sender without TLS and deflate), a TLS alert record, and HTTP.
    for (sent, shown) in [
        (
            &[0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01][..],
            "are 00",
        ),
        (&[0x15, 0x03, 0x03, 0x00, 0x02][..], "are 15 "),
        (b"GET / HTTP/1.1\r\n\r\n".as_slice(), "are 47 "),
    ] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let me = tcp.local_addr().unwrap();
        tcp.write_all(sent).await.unwrap();
        let e = next_accept(&mut accepted).await.unwrap_err();
        match &e {
            TransportError::UnknownLayers { target, seen } => {
                assert_eq!(target, &me.to_string());
                assert!(!seen.is_empty() && sent.starts_with(seen), "{seen:02x?}");
            }
            other => panic!("expected UnknownLayers, got {other:?}"),
        }
        let text = e.to_string();
        assert!(text.contains(&me.to_string()), "{text}");
        assert!(text.contains(shown), "{text}");
        assert!(closed_by_server(&mut tcp).await, "the server closes");
    }
}

#[tokio::test]
async fn early_close_and_silence_end_cleanly() {
    let t = server(true, true, &[]).with_handshake_timeout(Duration::from_millis(500));
    let (addr, mut accepted) = echo_server(t, 4).await;
    // Connect and close at once (a health check), or after part of a header.
    for sent in [&[][..], &[0x16, 0x03][..], &[0x78][..]] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(sent).await.unwrap();
        tcp.shutdown().await.unwrap();
        match next_accept(&mut accepted).await {
            Err(TransportError::ClosedEarly { seen, .. }) => assert_eq!(seen, sent),
            other => panic!("expected ClosedEarly, got {other:?}"),
        }
        drop(tcp);
    }
    // A client that sends one byte of a TLS header and then nothing: the TLS handshake's
    // deadline closes it, as for a silent client on a fixed order.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0x16]).await.unwrap();
    match next_accept(&mut accepted).await {
        Err(TransportError::Timeout { what, after, .. }) => {
            assert_eq!(what, "TLS handshake");
            assert_eq!(after, Duration::from_millis(500));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(closed_by_server(&mut tcp).await);
}

#[test]
fn fixed_order_in_settings_round_trips() {
    // The sink side keeps its explicit setting; auto is a source-only value.
    let c = client(true, true, "tls-outside");
    assert_eq!(c.settings().layer_order, LayerOrder::TlsOutside);
    let e = ClientTransport::from_context(
        &Context::from_pairs("a1.sinks.k1", [("compression-layer-order", "auto")]),
        &SystemProps::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("only on a source"), "{e}");
}
