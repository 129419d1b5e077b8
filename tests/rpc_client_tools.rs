//! The `avro-client` and `bench` tools against an in-process OK-answering server.

mod rpc_client_common;

use std::time::Duration;

use rpc_client_common::{runtime, server_transport, Mode, TestServer};
use sluicegate::config::SystemProps;
use sluicegate::tools::avro_client::{self, AvroClientError, AvroClientOptions};
use sluicegate::tools::bench::{self, BenchOptions};

#[test]
fn avro_client_sends_lines_with_headers_in_batches() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Mode::Ok));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(
        &input,
        "line 0\nline 1\r\n\nline 3\nline 4\nline 5\nlast without newline",
    )
    .unwrap();
    let headers = dir.path().join("headers");
    std::fs::write(&headers, "# headers\nhost=web1\nenv = prod\n").unwrap();
    let mut opts = AvroClientOptions::new("127.0.0.1", server.port());
    opts.file = Some(input);
    opts.header_file = Some(headers);
    let report = avro_client::run(&opts, &SystemProps::new()).unwrap();
    assert_eq!(report.events, 7);
    assert_eq!(report.batches, 2, "Flume's avro-client batch size is 5");
    assert_eq!(server.state.lock().unwrap().batches, vec![5, 2]);
    assert_eq!(
        server.bodies(),
        vec![
            "line 0",
            "line 1",
            "",
            "line 3",
            "line 4",
            "line 5",
            "last without newline"
        ]
    );
    for e in server.events() {
        assert_eq!(
            e.header_map(),
            vec![
                ("host".to_string(), "web1".to_string()),
                ("env".to_string(), "prod".to_string())
            ]
        );
    }
    rt.block_on(server.stop());
}

#[test]
fn avro_client_deflate_and_errors() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start_with(
        "127.0.0.1:0".parse().unwrap(),
        Mode::FailFirst(1),
        server_transport(true, false, "zlib-outside"),
    ));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(
        &input,
        (0..12).map(|i| format!("l{i}\n")).collect::<String>(),
    )
    .unwrap();
    let mut opts = AvroClientOptions::new("127.0.0.1", server.port());
    opts.file = Some(input.clone());
    opts.deflate = true;
    opts.batch_size = 4;
    let e = avro_client::run(&opts, &SystemProps::new()).unwrap_err();
    assert!(
        matches!(
            e,
            AvroClientError::Rpc {
                delivered: 0,
                batches: 0,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("FAILED"), "{e}");
    let r = avro_client::run(&opts, &SystemProps::new()).unwrap();
    assert_eq!((r.events, r.batches), (12, 3));
    assert_eq!(server.event_count(), 12);
    rt.block_on(server.stop());

    let mut missing = AvroClientOptions::new("127.0.0.1", 1);
    missing.file = Some(dir.path().join("nope"));
    assert!(matches!(
        avro_client::run(&missing, &SystemProps::new()),
        Err(AvroClientError::Read { .. })
    ));
}

#[test]
fn bench_pushes_every_event_over_several_connections() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Mode::Ok));
    let mut opts = BenchOptions::new(server.addr());
    opts.events = 1050;
    opts.batch_size = 100;
    opts.body_size = 64;
    opts.headers = 3;
    opts.connections = 3;
    let report = rt
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                bench::run(&opts, &SystemProps::new()),
            )
            .await
            .expect("bench finished")
        })
        .unwrap();
    assert_eq!(report.events, 1050);
    assert_eq!(report.calls, 11);
    assert_eq!(report.body_bytes, 1050 * 64);
    assert!(report.latency.p50 <= report.latency.p99 && report.latency.p99 <= report.latency.max);
    assert!(report.events_per_sec > 0.0);
    assert_eq!(server.event_count(), 1050);
    assert_eq!(server.connection_count(), 3);
    let mut sizes = server.state.lock().unwrap().batches.clone();
    sizes.sort_unstable();
    assert_eq!(sizes[0], 50);
    assert!(server
        .events()
        .iter()
        .all(|e| e.body().len() == 64 && e.header_count() == 3));
    println!("{report}");
    rt.block_on(server.stop());
}

#[test]
fn bench_reports_failures() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start(Mode::FailFirst(1)));
    let mut opts = BenchOptions::new(server.addr());
    opts.events = 500;
    let e = rt
        .block_on(bench::run(&opts, &SystemProps::new()))
        .unwrap_err();
    assert!(e.to_string().contains("FAILED"), "{e}");
    rt.block_on(server.stop());
}

/// `sluicegate avro-client --compression-layer-order` reaches the transport: against a source
/// pinned to Flume 1.9's order (TLS outside, zlib inside) only `tls-outside` gets through.
#[test]
fn avro_client_binary_sets_the_layer_order() {
    let rt = runtime();
    let server = rt.block_on(TestServer::start_with(
        "127.0.0.1:0".parse().unwrap(),
        Mode::Ok,
        server_transport(true, true, "tls-outside"),
    ));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a\nb\nc\n").unwrap();
    let port = server.port().to_string();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sluicegate"))
            .args(["avro-client", "-H", "127.0.0.1", "-p", &port, "-F"])
            .arg(&input)
            .args(["--ssl", "--trust-all-certs", "--deflate"])
            .args(extra)
            .output()
            .unwrap()
    };
    // The default (zlib outside, Flume 1.10+) cannot talk to this source.
    let out = run(&[]);
    assert!(!out.status.success(), "zlib-outside must not get through");
    assert_eq!(server.event_count(), 0);
    let out = run(&["--compression-layer-order", "tls-outside"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.bodies(), vec!["a", "b", "c"]);
    // Anything else is refused by the argument parser, naming the choices.
    let out = run(&["--compression-layer-order", "inside-out"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zlib-outside") && err.contains("tls-outside"),
        "{err}"
    );
    rt.block_on(server.stop());
}
