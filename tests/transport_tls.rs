//! End-to-end tests of the transport stack over 127.0.0.1: echo servers through every layer
//! combination, layer-order mismatches, TLS keystores/truststores, hostname verification,
//! protocol/cipher filtering and configuration errors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluicegate::config::{Context, Origin, SystemProps};
use sluicegate::rpc::{
    ClientTransport, LayerOrder, RpcStream, ServerTransport, StoreSource, TlsClientSettings,
    TlsFilters, TlsServerSettings, TransportError, TransportSettings, TrustMode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::echo::echo_server;

const LIMIT: Duration = Duration::from_secs(20);

fn fx(name: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", "tls", name]
        .iter()
        .collect();
    p.to_string_lossy().into_owned()
}

fn ctx(pairs: &[(&str, &str)]) -> Context {
    Context::from_pairs("a1.sources.r1", pairs.iter().copied())
}

/// Sends `msg` in frame-sized writes (one flush per write) and expects it echoed back.
async fn echo(stream: &mut RpcStream, msg: &[u8]) {
    let writer_msg = msg.to_vec();
    let mut got = vec![0u8; msg.len()];
    let (mut rd, mut wr) = tokio::io::split(stream);
    let write = async {
        for chunk in writer_msg.chunks(10_000) {
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

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn server_tls_p12() -> TlsServerSettings {
    TlsServerSettings::new(
        &StoreSource::new(fx("server.p12")).password("changeit"),
        &TlsFilters::default(),
    )
    .unwrap()
}

fn client_tls_ca() -> TlsClientSettings {
    TlsClientSettings::new(
        &TrustMode::Store(StoreSource::new(fx("ca.pem"))),
        false,
        &TlsFilters::default(),
    )
    .unwrap()
}

fn client(settings: TransportSettings, tls: Option<TlsClientSettings>) -> ClientTransport {
    ClientTransport::new(settings, tls, Duration::from_secs(10))
}

#[tokio::test]
async fn every_layer_combination_echoes() {
    let combos: [(TransportSettings, bool, &str); 5] = [
        (TransportSettings::plain(), false, "plain"),
        (TransportSettings::deflate(6), false, "zlib"),
        (TransportSettings::plain(), true, "tls"),
        (
            TransportSettings::deflate(1).with_layer_order(LayerOrder::ZlibOutside),
            true,
            "zlib+tls",
        ),
        (
            TransportSettings::deflate(9).with_layer_order(LayerOrder::TlsOutside),
            true,
            "tls+zlib",
        ),
    ];
    for (settings, tls, layers) in combos {
        let server = ServerTransport::new(settings, tls.then(server_tls_p12), None);
        let (addr, mut accepted) = echo_server(server, 1).await;
        let c = client(settings, tls.then(client_tls_ca));
        let mut s = c.connect("127.0.0.1", addr.port()).await.unwrap();
        assert_eq!(s.layers(), layers);
        assert_eq!(s.peer_addr().unwrap(), addr);
        assert_eq!(tls, s.tls_protocol().is_some());
        echo(&mut s, b"hello flume").await;
        echo(&mut s, &payload(300_000)).await;
        assert_eq!(accepted.recv().await.unwrap().unwrap(), layers);
        s.shutdown().await.unwrap();
        // The server echoes EOF by closing: the client reads a clean end of stream.
        let mut rest = Vec::new();
        tokio::time::timeout(LIMIT, s.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert!(rest.is_empty());
    }
}

#[tokio::test]
async fn socket_options_match_netty() {
    let (addr, _rx) = echo_server(
        ServerTransport::new(TransportSettings::plain(), None, None),
        1,
    )
    .await;
    let s = client(TransportSettings::plain(), None)
        .connect("127.0.0.1", addr.port())
        .await
        .unwrap();
    assert!(s.tcp().nodelay().unwrap());
    assert!(socket2::SockRef::from(s.tcp()).keepalive().unwrap());
}

#[tokio::test]
async fn layer_order_mismatch_fails_cleanly_both_ways() {
    for (server_order, client_order) in [
        (LayerOrder::ZlibOutside, LayerOrder::TlsOutside),
        (LayerOrder::TlsOutside, LayerOrder::ZlibOutside),
    ] {
        let server = ServerTransport::new(
            TransportSettings::deflate(6).with_layer_order(server_order),
            Some(server_tls_p12()),
            None,
        )
        .with_handshake_timeout(Duration::from_secs(10));
        let (addr, mut accepted) = echo_server(server, 1).await;
        let c = client(
            TransportSettings::deflate(6).with_layer_order(client_order),
            Some(client_tls_ca()),
        );
        let r = tokio::time::timeout(LIMIT, c.connect("127.0.0.1", addr.port()))
            .await
            .expect("mismatch must not hang");
        match r {
            Err(TransportError::TlsHandshake { .. }) => {}
            other => panic!("expected a TLS handshake error, got {other:?}"),
        }
        let server_side = tokio::time::timeout(LIMIT, accepted.recv())
            .await
            .unwrap()
            .unwrap();
        let e = server_side.unwrap_err().to_string();
        assert!(e.contains("TLS handshake"), "{e}");
    }
}

#[tokio::test]
async fn tls_client_against_plain_server_fails_cleanly() {
    let (addr, _rx) = echo_server(
        ServerTransport::new(TransportSettings::plain(), None, None),
        1,
    )
    .await;
    // The plain echo server echoes the ClientHello back: not a ServerHello.
    let r = tokio::time::timeout(
        LIMIT,
        client(TransportSettings::plain(), Some(client_tls_ca())).connect("127.0.0.1", addr.port()),
    )
    .await
    .expect("no hang");
    assert!(
        matches!(r, Err(TransportError::TlsHandshake { .. })),
        "{r:?}"
    );
}

async fn handshake(
    server: TlsServerSettings,
    client_tls: TlsClientSettings,
    host: &str,
) -> Result<RpcStream, TransportError> {
    let (addr, _rx) = echo_server(
        ServerTransport::new(TransportSettings::plain(), Some(server), None),
        1,
    )
    .await;
    let c = client(TransportSettings::plain(), Some(client_tls));
    let mut s = tokio::time::timeout(LIMIT, c.connect(host, addr.port()))
        .await
        .expect("no hang")?;
    echo(&mut s, b"ping").await;
    Ok(s)
}

fn pem_server(cert: &str, key: &str) -> TlsServerSettings {
    TlsServerSettings::new(
        &StoreSource::new(fx(cert)).key_path(fx(key)),
        &TlsFilters::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn keystores_pkcs12_and_pem() {
    let trust = client_tls_ca();
    handshake(server_tls_p12(), trust.clone(), "127.0.0.1")
        .await
        .unwrap();
    // One PEM file with chain and key.
    let combined = TlsServerSettings::new(
        &StoreSource::new(fx("server-combined.pem")),
        &TlsFilters::default(),
    )
    .unwrap();
    handshake(combined, trust.clone(), "127.0.0.1")
        .await
        .unwrap();
    // Certificate and key in two files (keystore + keystore-key).
    handshake(pem_server("server.pem", "server.key"), trust, "127.0.0.1")
        .await
        .unwrap();
}

#[tokio::test]
async fn truststores_and_trust_all() {
    let server = || server_tls_p12();
    let f = TlsFilters::default();
    // PKCS#12 truststore made by keytool.
    let p12 = TlsClientSettings::new(
        &TrustMode::Store(StoreSource::new(fx("truststore.p12")).password("changeit")),
        false,
        &f,
    )
    .unwrap();
    handshake(server(), p12, "127.0.0.1").await.unwrap();
    // Trust-all accepts a certificate from an unknown CA.
    let all = TlsClientSettings::new(&TrustMode::TrustAll, false, &f).unwrap();
    handshake(server(), all, "127.0.0.1").await.unwrap();
    // The wrong CA fails.
    let wrong = TlsClientSettings::new(
        &TrustMode::Store(StoreSource::new(fx("other-ca.pem"))),
        false,
        &f,
    )
    .unwrap();
    let e = handshake(server(), wrong, "127.0.0.1").await.unwrap_err();
    assert!(matches!(e, TransportError::TlsHandshake { .. }), "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    // The platform (Mozilla) roots do not know the test CA either.
    let platform = TlsClientSettings::new(&TrustMode::PlatformRoots, false, &f).unwrap();
    let e = handshake(server(), platform, "localhost")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn hostname_verification_is_optional() {
    let f = TlsFilters::default();
    let ca = || TrustMode::Store(StoreSource::new(fx("ca.pem")));
    let other = || pem_server("other-name.pem", "other-name.key");
    // Off (Flume's behaviour): a valid chain for another name is accepted.
    let off = TlsClientSettings::new(&ca(), false, &f).unwrap();
    assert!(!off.verify_hostname());
    handshake(other(), off, "127.0.0.1").await.unwrap();
    // On: the same certificate is refused for 127.0.0.1.
    let on = TlsClientSettings::new(&ca(), true, &f).unwrap();
    let e = handshake(other(), on.clone(), "127.0.0.1")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not valid for name"), "{e}");
    // On, with the right names (SAN IP and DNS).
    handshake(
        pem_server("server.pem", "server.key"),
        on.clone(),
        "127.0.0.1",
    )
    .await
    .unwrap();
    handshake(pem_server("server.pem", "server.key"), on, "localhost")
        .await
        .unwrap();
    // Off still checks the chain: the other-name cert under an unknown CA is refused.
    let wrong = TlsClientSettings::new(
        &TrustMode::Store(StoreSource::new(fx("other-ca.pem"))),
        false,
        &f,
    )
    .unwrap();
    let e = handshake(other(), wrong, "127.0.0.1").await.unwrap_err();
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
}

fn filters(pairs: &[(&str, &str)]) -> TlsFilters {
    TlsFilters::from_context(&ctx(pairs), &SystemProps::new())
}

#[tokio::test]
async fn protocol_filtering() {
    let server = |p: &[(&str, &str)]| {
        TlsServerSettings::new(
            &StoreSource::new(fx("server.p12")).password("changeit"),
            &filters(p),
        )
        .unwrap()
    };
    let client = |p: &[(&str, &str)]| {
        TlsClientSettings::new(
            &TrustMode::Store(StoreSource::new(fx("ca.pem"))),
            false,
            &filters(p),
        )
        .unwrap()
    };
    let s = handshake(server(&[]), client(&[]), "127.0.0.1")
        .await
        .unwrap();
    assert_eq!(s.tls_protocol(), Some("TLSv1.3"));
    let s = handshake(
        server(&[("exclude-protocols", "SSLv3 TLSv1.3")]),
        client(&[]),
        "127.0.0.1",
    )
    .await
    .unwrap();
    assert_eq!(s.tls_protocol(), Some("TLSv1.2"));
    // TLSv1.3-only server vs TLSv1.2-only client.
    let e = handshake(
        server(&[("include-protocols", "TLSv1.3")]),
        client(&[("include-protocols", "TLSv1.2")]),
        "127.0.0.1",
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransportError::TlsHandshake { .. }), "{e}");
}

#[tokio::test]
async fn cipher_suite_filtering() {
    let server = TlsServerSettings::new(
        &StoreSource::new(fx("server.p12")).password("changeit"),
        &filters(&[
            ("include-protocols", "TLSv1.2"),
            (
                "include-cipher-suites",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ),
        ]),
    )
    .unwrap();
    let trust = || TrustMode::Store(StoreSource::new(fx("ca.pem")));
    let ok = TlsClientSettings::new(&trust(), false, &TlsFilters::default()).unwrap();
    let s = handshake(server.clone(), ok, "127.0.0.1").await.unwrap();
    assert_eq!(s.tls_protocol(), Some("TLSv1.2"));
    let excluded = TlsClientSettings::new(
        &trust(),
        false,
        &filters(&[(
            "exclude-cipher-suites",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        )]),
    )
    .unwrap();
    let e = handshake(server, excluded, "127.0.0.1").await.unwrap_err();
    assert!(matches!(e, TransportError::TlsHandshake { .. }), "{e}");
}

#[test]
fn jks_keystores_get_the_conversion_command() {
    let hint =
        "keytool -importkeystore -srckeystore ks.jks -destkeystore ks.p12 -deststoretype PKCS12";
    let jks = fx("server.jks");
    for with_type in [true, false] {
        let mut c = Context::new("a1.sources.r1");
        let origin = Origin {
            file: Some(Arc::new(PathBuf::from("flume.conf"))),
            line: 12,
        };
        c.insert("ssl", "true", origin.clone());
        c.insert("keystore", jks.as_str(), origin.clone());
        c.insert("keystore-password", "changeit", origin.clone());
        if with_type {
            c.insert("keystore-type", "JKS", origin.clone());
        }
        let e = TlsServerSettings::from_context(&c, &SystemProps::new()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(hint), "{text}");
        assert!(
            text.starts_with("flume.conf:12: a1.sources.r1.keystore:"),
            "{text}"
        );
        assert!(text.contains("JKS"), "{text}");
    }
    // A JKS truststore too.
    let c = ctx(&[
        ("ssl", "true"),
        ("truststore", &jks),
        ("truststore-type", "JKS"),
    ]);
    let e = TlsClientSettings::from_context(&c, &SystemProps::new()).unwrap_err();
    assert_eq!(e.key, "a1.sources.r1.truststore");
    assert!(e.message.contains(hint), "{e}");
}

#[test]
fn keystore_configuration_and_errors() {
    let props = SystemProps::new();
    // ssl off: no TLS.
    assert!(TlsServerSettings::from_context(&ctx(&[]), &props)
        .unwrap()
        .is_none());
    // Missing keystore.
    let e = TlsServerSettings::from_context(&ctx(&[("ssl", "true")]), &props).unwrap_err();
    assert_eq!(e.key, "a1.sources.r1.keystore");
    // keystore-type = JKS (Flume's default) on a PKCS#12 file works, as in Java.
    let p12 = fx("server.p12");
    let c = ctx(&[
        ("ssl", "true"),
        ("keystore", &p12),
        ("keystore-password", "changeit"),
        ("keystore-type", "JKS"),
    ]);
    assert!(TlsServerSettings::from_context(&c, &props)
        .unwrap()
        .is_some());
    // Wrong password.
    let c = ctx(&[
        ("ssl", "true"),
        ("keystore", &p12),
        ("keystore-password", "nope"),
    ]);
    let e = TlsServerSettings::from_context(&c, &props).unwrap_err();
    assert_eq!(e.key, "a1.sources.r1.keystore");
    assert!(e.message.contains("wrong password"), "{e}");
    // PEM without a key.
    let c = ctx(&[("ssl", "true"), ("keystore", &fx("server-chain.pem"))]);
    let e = TlsServerSettings::from_context(&c, &props).unwrap_err();
    assert!(e.message.contains("keystore-key"), "{e}");
    // A key that does not match the certificate.
    let c = ctx(&[
        ("ssl", "true"),
        ("keystore", &fx("server.pem")),
        ("keystore-key", &fx("other-name.key")),
    ]);
    let e = TlsServerSettings::from_context(&c, &props).unwrap_err();
    assert_eq!(e.key, "a1.sources.r1.keystore");
    // Unknown type; empty protocol set.
    let c = ctx(&[
        ("ssl", "true"),
        ("keystore", &p12),
        ("keystore-type", "BKS"),
    ]);
    assert_eq!(
        TlsServerSettings::from_context(&c, &props).unwrap_err().key,
        "a1.sources.r1.keystore-type"
    );
    let c = ctx(&[
        ("ssl", "true"),
        ("keystore", &p12),
        ("keystore-password", "changeit"),
        ("include-protocols", "SSLv3 TLSv1 TLSv1.1"),
    ]);
    let e = TlsServerSettings::from_context(&c, &props).unwrap_err();
    assert_eq!(e.key, "a1.sources.r1.include-protocols");
    assert!(e.message.contains("never enabled"), "{e}");
    let c = ctx(&[
        ("ssl", "true"),
        ("keystore", &p12),
        ("keystore-password", "changeit"),
        ("include-cipher-suites", "TLS_RSA_WITH_RC4_128_MD5"),
    ]);
    let e = TlsServerSettings::from_context(&c, &props).unwrap_err();
    assert_eq!(e.key, "a1.sources.r1.include-cipher-suites");
    // Missing file.
    let c = ctx(&[("ssl", "true"), ("keystore", "/nonexistent/ks.p12")]);
    let e = TlsServerSettings::from_context(&c, &props).unwrap_err();
    assert!(e.message.contains("/nonexistent/ks.p12"), "{e}");
}

#[tokio::test]
async fn global_properties_and_env_fallbacks() {
    // Keystore from -D properties, truststore from FLUME_SSL_* (looked up through a closure).
    let props = SystemProps::from_pairs([
        ("javax.net.ssl.keyStore", fx("server.p12")),
        ("javax.net.ssl.keyStorePassword", "changeit".to_string()),
        ("javax.net.ssl.keyStoreType", "PKCS12".to_string()),
    ])
    .with_env_lookup(|k| match k {
        "FLUME_SSL_TRUSTSTORE_PATH" => Some(fx("truststore.p12")),
        "FLUME_SSL_TRUSTSTORE_PASSWORD" => Some("changeit".into()),
        "FLUME_SSL_INCLUDE_PROTOCOLS" => Some("TLSv1.2".into()),
        _ => None,
    });
    let server = ServerTransport::from_context(&ctx(&[("ssl", "true")]), &props).unwrap();
    assert!(server.is_tls());
    let (addr, _rx) = echo_server(server, 1).await;
    let client = ClientTransport::from_context(
        &Context::from_pairs(
            "a1.sinks.k1",
            [("ssl", "true"), ("connect-timeout", "5000")],
        ),
        &props,
    )
    .unwrap();
    let mut s = client.connect("127.0.0.1", addr.port()).await.unwrap();
    echo(&mut s, b"globals").await;
    assert_eq!(s.tls_protocol(), Some("TLSv1.2"));
}

#[tokio::test]
async fn full_context_round_trip_with_deflate_and_flume_19_order() {
    let p12 = fx("server.p12");
    let ca = fx("ca.pem");
    let src = ctx(&[
        ("ssl", "true"),
        ("keystore", &p12),
        ("keystore-password", "changeit"),
        ("keystore-type", "PKCS12"),
        ("compression-type", "deflate"),
        ("compression-layer-order", "tls-outside"),
    ]);
    let server = ServerTransport::from_context(&src, &SystemProps::new()).unwrap();
    let (addr, mut accepted) = echo_server(server, 1).await;
    let sink = Context::from_pairs(
        "a1.sinks.k1",
        [
            ("ssl", "true"),
            ("truststore", ca.as_str()),
            ("truststore-type", "PEM"),
            ("compression-type", "deflate"),
            ("compression-level", "9"),
            ("compression-layer-order", "flume-1.9"),
        ],
    );
    let client = ClientTransport::from_context(&sink, &SystemProps::new()).unwrap();
    let mut s = client.connect("localhost", addr.port()).await.unwrap();
    assert_eq!(s.layers(), "tls+zlib");
    echo(&mut s, &payload(100_000)).await;
    assert_eq!(accepted.recv().await.unwrap().unwrap(), "tls+zlib");
}

#[tokio::test]
async fn connect_errors() {
    // Nothing listens on this port: it is bound, never listening, and held until the end.
    let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    held.bind(&any.into()).unwrap();
    let port = held.local_addr().unwrap().as_socket().unwrap().port();
    let c = client(TransportSettings::plain(), None);
    let e = c.connect("127.0.0.1", port).await.unwrap_err();
    assert!(matches!(e, TransportError::Connect { .. }), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    // A TLS server that never answers the handshake: the connect timeout bounds it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let s = silent.accept().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let c = ClientTransport::new(
        TransportSettings::plain(),
        Some(client_tls_ca()),
        Duration::from_millis(1000),
    );
    let e = c.connect("127.0.0.1", addr.port()).await.unwrap_err();
    assert!(
        matches!(
            e,
            TransportError::Timeout {
                what: "TLS handshake",
                ..
            }
        ),
        "{e}"
    );
    hold.abort();
}
