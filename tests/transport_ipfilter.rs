//! `ipFilterRules`: a rule table checked against Flume's `PatternRule` semantics, configuration
//! errors, and live connections refused by the server transport.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sluicegate::config::{Context, Origin};
use sluicegate::rpc::{
    ClientTransport, IpFilter, ServerTransport, TransportError, TransportSettings, Verdict,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn rule_table() {
    // (rules, peer, reverse name, allowed?)
    let table: &[(&str, &str, &str, bool)] = &[
        ("allow:ip:127.*,deny:ip:*", "127.0.0.1", "localhost", true),
        ("allow:ip:127.*,deny:ip:*", "10.0.0.1", "h", false),
        ("deny:ip:*,allow:ip:127.*", "127.0.0.1", "localhost", false), // first match decides
        ("deny:ip:192.168.1.?", "192.168.1.7", "h", false),
        ("deny:ip:192.168.1.?", "192.168.1.17", "h", true), // ? is exactly one char
        ("deny:ip:192.168.1.*", "192.168.10.1", "h", true), // '.' is literal
        ("deny:ip:10.0.0.1", "10.0.0.10", "h", true),       // anchored
        ("deny:ip:10.0.0.1", "110.0.0.1", "h", true),       // anchored at the start too
        ("deny:ip:10.0.0.[1-3]", "10.0.0.2", "h", false),   // regex passes through (as Java)
        ("deny:ip:10.0.0.[1-3]", "10.0.0.4", "h", true),
        (
            "deny:name:*.example.com",
            "192.0.2.1",
            "web.example.com",
            false,
        ),
        ("deny:name:*.example.com", "192.0.2.1", "example.com", true),
        (
            "deny:name:*.example.com",
            "192.0.2.1",
            "webXexample.com",
            true,
        ),
        (
            "allow:name:db?.corp,deny:ip:*",
            "192.0.2.9",
            "db1.corp",
            true,
        ),
        (
            "allow:name:db?.corp,deny:ip:*",
            "192.0.2.9",
            "db12.corp",
            false,
        ),
        ("deny:name:localhost", "127.0.0.1", "whatever", false), // local address, no name needed
        ("deny:name:localhost", "::1", "whatever", false),
        ("deny:name:localhost", "192.0.2.1", "localhost", true), // not a local address
        ("deny:ip:0:0:0:0:0:0:0:1", "::1", "h", false),          // Java's IPv6 text
        ("deny:ip:::1", "::1", "h", false),                      // compressed text
        ("deny:ip:10.*", "::ffff:10.9.9.9", "h", false),         // IPv4-mapped
        ("allow:ip:1.2.3.4", "5.6.7.8", "h", true),              // no match: accepted
        (" allow:ip:1.2.3.4 , deny:ip:5.* ,", "5.6.7.8", "h", false), // spaces, trailing comma
    ];
    for (rules, peer, name, allowed) in table {
        let f = IpFilter::parse(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
        let ip: IpAddr = peer.parse().unwrap();
        assert_eq!(
            f.check_with_name(ip, name).is_allowed(),
            *allowed,
            "rules '{rules}', peer {peer}, name {name}"
        );
    }
}

#[test]
fn verdict_names_the_rule() {
    let f = IpFilter::parse("allow:ip:10.*,deny:ip:*").unwrap();
    assert_eq!(
        f.check_with_name("10.1.1.1".parse().unwrap(), "h"),
        Verdict::Allow(Some("allow:ip:10.*".into()))
    );
    assert_eq!(
        f.check_with_name("11.1.1.1".parse().unwrap(), "h"),
        Verdict::Deny("deny:ip:*".into())
    );
    let f = IpFilter::parse("deny:ip:10.*").unwrap();
    assert_eq!(
        f.check_with_name("11.1.1.1".parse().unwrap(), "h"),
        Verdict::Allow(None)
    );
}

#[test]
fn configuration_errors_point_at_the_line() {
    let mut c = Context::new("a1.sources.r1");
    let o = Origin {
        file: Some(Arc::new("flume.conf".into())),
        line: 9,
    };
    c.insert("ipFilter", "true", o.clone());
    c.insert(
        "ipFilterRules",
        "allow:ip:127.*,allow:ipaddr:10.*",
        Origin {
            line: 10,
            ..o.clone()
        },
    );
    let e = IpFilter::from_context(&c).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("flume.conf:10: a1.sources.r1.ipFilterRules:"),
        "{text}"
    );
    assert!(text.contains("'allow:ipaddr:10.*'"), "{text}");
    assert!(text.contains("'ipaddr' must be 'ip' or 'name'"), "{text}");
    // ipFilter without rules.
    let c = Context::from_pairs("a1.sources.r1", [("ipFilter", "true")]);
    let e = IpFilter::from_context(&c).unwrap_err();
    assert_eq!(e.key, "a1.sources.r1.ipFilterRules");
    // Case matters, as in Flume.
    assert!(IpFilter::parse("Allow:ip:*").is_err());
    assert!(IpFilter::parse("allow:IP:*").is_err());
}

#[tokio::test]
async fn name_rules_do_a_lookup_and_fall_back_to_the_address() {
    // Whatever 127.0.0.1 resolves to here ("localhost" or nothing → "127.0.0.1"), `*` matches.
    let f = IpFilter::parse("deny:name:*")
        .unwrap()
        .with_lookup_timeout(Duration::from_secs(5));
    assert!(!f.check("127.0.0.1".parse().unwrap()).await.is_allowed());
    // A name pattern that can only match the address text or a real name.
    let f = IpFilter::parse("deny:name:nonexistent-host-name.invalid").unwrap();
    assert!(f.check("127.0.0.1".parse().unwrap()).await.is_allowed());
    // ip rules before name rules decide without a lookup.
    let f = IpFilter::parse("allow:ip:127.0.0.1,deny:name:*").unwrap();
    assert!(f.check("127.0.0.1".parse().unwrap()).await.is_allowed());
}

/// Runs a plain server with `rules`; returns whether a client got its echo back.
async fn live(rules: &str) -> (bool, Option<TransportError>) {
    let filter = IpFilter::parse(rules).unwrap();
    let server = ServerTransport::new(TransportSettings::plain(), None, Some(filter));
    let listener = ServerTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = listener.local_addr().unwrap().port();
    let srv = tokio::spawn(async move {
        let (tcp, peer) = tokio::time::timeout(LIMIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        match server.accept(tcp, peer).await {
            Ok(mut s) => {
                let mut b = [0u8; 4];
                if s.read_exact(&mut b).await.is_ok() {
                    let _ = s.write_all(&b).await;
                    let _ = s.flush().await;
                }
                None
            }
            Err(e) => Some(e),
        }
    });
    let client = ClientTransport::new(TransportSettings::plain(), None, LIMIT);
    let mut s = client.connect("127.0.0.1", port).await.unwrap();
    let _ = s.write_all(b"ping").await;
    let _ = s.flush().await;
    let mut b = [0u8; 4];
    let echoed = tokio::time::timeout(LIMIT, s.read_exact(&mut b))
        .await
        .expect("a refused connection is closed, not left hanging")
        .is_ok();
    let server_err = srv.await.unwrap();
    (echoed && &b == b"ping", server_err)
}

#[tokio::test]
async fn refused_connections_are_closed() {
    let (ok, err) = live("allow:ip:127.*,deny:ip:*").await;
    assert!(ok);
    assert!(err.is_none());
    let (ok, err) = live("deny:ip:127.0.0.1").await;
    assert!(!ok);
    match err {
        Some(TransportError::Rejected { rule, peer }) => {
            assert_eq!(rule, "deny:ip:127.0.0.1");
            assert_eq!(peer.ip().to_string(), "127.0.0.1");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    let (ok, err) = live("deny:name:localhost").await;
    assert!(!ok);
    assert!(matches!(err, Some(TransportError::Rejected { .. })));
}
