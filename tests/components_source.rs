//! Interceptors, channel selectors, the channel processor, and the seq / netcat / exec sources.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::{Channel, ChannelError};
use sluicegate::config::Context;
use sluicegate::event::Event;
use sluicegate::metrics::SourceCounter;
use sluicegate::source::exec::ExecSource;
use sluicegate::source::interceptor::{
    interceptor_from_context, interceptors_from_context, local_hostname, HostInterceptor,
    Interceptor,
};
use sluicegate::source::netcat::NetcatSource;
use sluicegate::source::selector::ChannelSelector;
use sluicegate::source::seq::SeqSource;
use sluicegate::source::{ChannelProcessor, Source};

mod support;
use support::wait_until;

fn mem(name: &str, cap: u64, tx: usize) -> Arc<MemoryChannel> {
    Arc::new(MemoryChannel::new(
        name,
        MemoryChannelConfig {
            capacity: cap,
            transaction_capacity: tx,
            byte_capacity: None,
            keep_alive: Duration::from_millis(10),
        },
    ))
}

fn dynch(c: &Arc<MemoryChannel>) -> Arc<dyn Channel> {
    c.clone()
}

/// Takes and commits everything in `c`.
fn drain(c: &MemoryChannel) -> Vec<Event> {
    let t = c.take_batch(100_000, Duration::ZERO).unwrap();
    let v = t.events().to_vec();
    t.commit().unwrap();
    v
}

fn bodies(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(e.body()).into_owned())
        .collect()
}

fn interceptor(pairs: &[(&str, &str)]) -> Arc<dyn Interceptor> {
    let ctx = Context::from_pairs("a1.sources.r1.interceptors.i1", pairs.iter().copied());
    interceptor_from_context("i1", &ctx).unwrap()
}

// ---------------------------------------------------------------- interceptors

#[test]
fn timestamp_sets_epoch_millis_and_respects_preserve_existing() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let i = interceptor(&[("type", "timestamp")]);
    let before = now();
    let out = i.intercept(vec![
        Event::from_body("a"),
        Event::new([("timestamp", "5"), ("x", "y")], "b"),
    ]);
    let after = now();
    for e in &out {
        let ts: u64 = e.header("timestamp").unwrap().parse().unwrap();
        assert!(
            (before..=after).contains(&ts),
            "{ts} not in {before}..={after}"
        );
    }
    assert_eq!(out[1].header("x").as_deref(), Some("y"));
    assert_eq!(bodies(&out), ["a", "b"]);

    let keep = interceptor(&[
        ("type", "TIMESTAMP"),
        ("preserveExisting", "true"),
        ("headerName", "ts"),
    ]);
    let e = Event::new([("ts", "5")], "b");
    let out = keep.intercept(vec![e.clone(), Event::from_body("c")]);
    assert_eq!(out[0].header("ts").as_deref(), Some("5"));
    // Unchanged events are not re-encoded.
    assert_eq!(out[0].encoded().as_ptr(), e.encoded().as_ptr());
    assert!(out[1].header("ts").is_some());
    assert!(out[1].header("timestamp").is_none());
}

#[test]
fn host_sets_ip_or_hostname() {
    let ctx = Context::from_pairs("p", [("type", "host")]);
    let hi = HostInterceptor::from_context("i1", &ctx).unwrap();
    let out = hi.intercept(vec![Event::new([("host", "old")], "x")]);
    match hi.host() {
        Some(h) => {
            h.parse::<std::net::IpAddr>()
                .unwrap_or_else(|_| panic!("useIP=true must give an IP, got {h}"));
            assert_eq!(out[0].header("host").as_deref(), Some(h));
        }
        // The local host name does not resolve here: Flume adds nothing then.
        None => assert_eq!(out[0].header("host").as_deref(), Some("old")),
    }

    let i = interceptor(&[
        ("type", "host"),
        ("useIP", "false"),
        ("hostHeader", "agent"),
        ("preserveExisting", "true"),
    ]);
    let out = i.intercept(vec![
        Event::from_body("x"),
        Event::new([("agent", "keep")], "y"),
    ]);
    assert_eq!(
        out[0].header("agent").map(|c| c.into_owned()),
        local_hostname()
    );
    assert_eq!(out[1].header("agent").as_deref(), Some("keep"));
}

#[test]
fn static_defaults_and_preserve() {
    let i = interceptor(&[("type", "static")]);
    let out = i.intercept(vec![
        Event::from_body("x"),
        Event::new([("key", "mine")], "y"),
    ]);
    assert_eq!(out[0].header("key").as_deref(), Some("value"));
    // preserveExisting defaults to true for `static`.
    assert_eq!(out[1].header("key").as_deref(), Some("mine"));

    let i = interceptor(&[
        (
            "type",
            "org.apache.flume.interceptor.StaticInterceptor$Builder",
        ),
        ("key", "dc"),
        ("value", "eu-1"),
        ("preserveExisting", "false"),
    ]);
    let out = i.intercept(vec![Event::new([("dc", "us"), ("a", "b")], "y")]);
    assert_eq!(out[0].header("dc").as_deref(), Some("eu-1"));
    assert_eq!(out[0].header("a").as_deref(), Some("b"));
    assert_eq!(out[0].header_count(), 2);
    assert_eq!(out[0].body(), b"y");
}

#[test]
fn uuid_sets_unique_prefixed_ids() {
    let i = interceptor(&[("type", "uuid"), ("prefix", "p-")]);
    let out = i.intercept(vec![
        Event::from_body("1"),
        Event::from_body("2"),
        Event::new([("id", "given")], "3"),
    ]);
    let a = out[0].header("id").unwrap().into_owned();
    let b = out[1].header("id").unwrap().into_owned();
    assert_ne!(a, b);
    for id in [&a, &b] {
        let rest = id.strip_prefix("p-").expect("prefix");
        uuid::Uuid::parse_str(rest).expect("a UUID");
    }
    assert_eq!(out[2].header("id").as_deref(), Some("given"));

    let i = interceptor(&[
        ("type", "uuid"),
        ("headerName", "uid"),
        ("preserveExisting", "false"),
    ]);
    let out = i.intercept(vec![Event::new([("uid", "given")], "3")]);
    assert_ne!(out[0].header("uid").as_deref(), Some("given"));
}

#[test]
fn regex_filter_includes_or_excludes_by_body() {
    let evs = || {
        vec![
            Event::from_body("ERROR disk"),
            Event::from_body("INFO ok"),
            Event::from_body("WARN ERROR-ish"),
        ]
    };
    let all = interceptor(&[("type", "regex_filter")]);
    assert_eq!(all.intercept(evs()).len(), 3);
    let inc = interceptor(&[("type", "regex_filter"), ("regex", "^ERROR")]);
    assert_eq!(bodies(&inc.intercept(evs())), ["ERROR disk"]);
    let exc = interceptor(&[
        ("type", "regex_filter"),
        ("regex", "ERROR"),
        ("excludeEvents", "true"),
    ]);
    assert_eq!(bodies(&exc.intercept(evs())), ["INFO ok"]);
    let bad = Context::from_pairs(
        "a1.sources.r1.interceptors.i1",
        [("type", "regex_filter"), ("regex", "(")],
    );
    let err = interceptor_from_context("i1", &bad).unwrap_err();
    assert_eq!(err.key, "a1.sources.r1.interceptors.i1.regex");
}

#[test]
fn remove_header_by_name_list_and_regex() {
    let e = Event::new(
        [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("my-x", "4"),
            ("xmy", "5"),
            ("keep", "6"),
        ],
        "body",
    );
    let i = interceptor(&[
        ("type", "remove_header"),
        ("withName", "a"),
        ("fromList", "b ; c"),
        ("fromListSeparator", "\\s*;\\s*"),
        ("matching", "my.*"),
    ]);
    let out = i.intercept(vec![e]);
    let names: Vec<String> = out[0].header_map().into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["xmy", "keep"]);
    assert_eq!(out[0].body(), b"body");

    // Default separator, and untouched events keep their encoding.
    let i = interceptor(&[("type", "remove_header"), ("fromList", "a, b")]);
    let e1 = Event::new([("a", "1"), ("z", "2")], "x");
    let e2 = Event::new([("z", "2")], "y");
    let out = i.intercept(vec![e1, e2.clone()]);
    assert_eq!(out[0].header_map(), vec![("z".into(), "2".into())]);
    assert_eq!(out[1].encoded().as_ptr(), e2.encoded().as_ptr());
}

#[test]
fn interceptor_chain_config_and_errors() {
    let ctx = Context::from_pairs(
        "a1.sources.r1",
        [
            ("interceptors", "f  s"),
            ("interceptors.f.type", "regex_filter"),
            ("interceptors.f.regex", "keep"),
            ("interceptors.s.type", "static"),
            ("interceptors.s.key", "k"),
        ],
    );
    let chain = interceptors_from_context(&ctx).unwrap();
    assert_eq!(chain.len(), 2);
    let c = mem("c1", 100, 100);
    let p = ChannelProcessor::from_context(&ctx, vec![dynch(&c)]).unwrap();
    p.process_batch(&[Event::from_body("keep me"), Event::from_body("drop me")])
        .unwrap();
    let got = drain(&c);
    assert_eq!(bodies(&got), ["keep me"]);
    assert_eq!(got[0].header("k").as_deref(), Some("value"));

    let bad = Context::from_pairs(
        "a1.sources.r1",
        [("interceptors", "i1"), ("interceptors.i1.type", "nope")],
    );
    let err = interceptors_from_context(&bad).unwrap_err();
    assert_eq!(err.key, "a1.sources.r1.interceptors.i1.type");
    let missing = Context::from_pairs("a1.sources.r1", [("interceptors", "i1")]);
    assert!(interceptors_from_context(&missing).is_err());
}

// ---------------------------------------------------------------- selectors + processor

#[test]
fn replicating_with_optional_channel_failure_is_ignored() {
    let c1 = mem("c1", 100, 100);
    let c2 = mem("c2", 100, 1); // refuses batches of more than one event
    let ctx = Context::from_pairs("a1.sources.r1", [("selector.optional", "c2")]);
    let p = ChannelProcessor::from_context(&ctx, vec![dynch(&c1), dynch(&c2)]).unwrap();
    p.process_batch(&[Event::from_body("a"), Event::from_body("b")])
        .unwrap();
    assert_eq!(bodies(&drain(&c1)), ["a", "b"]);
    assert_eq!(c2.size(), 0);
    // A single event fits c2: optional channels still get their events.
    p.process_batch(&[Event::from_body("c")]).unwrap();
    assert_eq!(bodies(&drain(&c2)), ["c"]);
}

#[test]
fn replicating_required_failure_fails_the_batch_after_earlier_commits() {
    let c1 = mem("c1", 100, 100);
    let c2 = mem("c2", 100, 1);
    let p = ChannelProcessor::replicating(vec![dynch(&c1), dynch(&c2)]);
    let err = p
        .process_batch(&[Event::from_body("a"), Event::from_body("b")])
        .unwrap_err();
    assert!(
        matches!(err, ChannelError::TransactionTooLarge { .. }),
        "{err}"
    );
    // Flume semantics: the first channel already committed.
    assert_eq!(c1.size(), 2);
    assert_eq!(c2.size(), 0);
}

#[test]
fn multiplexing_routes_by_header_with_default_and_optional() {
    let (c1, c2, c3) = (
        mem("c1", 100, 100),
        mem("c2", 100, 100),
        mem("c3", 100, 100),
    );
    let ctx = Context::from_pairs(
        "a1.sources.r1",
        [
            ("selector.type", "multiplexing"),
            ("selector.header", "state"),
            ("selector.mapping.CZ", "c1"),
            ("selector.mapping.US", "c2 c3"),
            ("selector.optional.CZ", "c2 c1"),
            ("selector.default", "c3"),
        ],
    );
    let p = ChannelProcessor::from_context(&ctx, vec![dynch(&c1), dynch(&c2), dynch(&c3)]).unwrap();
    p.process_batch(&[
        Event::new([("state", "CZ")], "cz"),
        Event::new([("state", "US")], "us"),
        Event::new([("state", "XX")], "xx"),
        Event::new([("state", "  ")], "blank"),
        Event::from_body("none"),
    ])
    .unwrap();
    assert_eq!(bodies(&drain(&c1)), ["cz"]);
    // "cz" reaches c2 as optional; c1 is not duplicated as optional for CZ.
    assert_eq!(bodies(&drain(&c2)), ["us", "cz"]);
    assert_eq!(bodies(&drain(&c3)), ["us", "xx", "blank", "none"]);

    // Default header name.
    let ctx = Context::from_pairs(
        "a1.sources.r1",
        [
            ("selector.type", "MULTIPLEXING"),
            ("selector.mapping.a", "c2"),
        ],
    );
    let sel = ChannelSelector::from_context(&ctx, vec![dynch(&c1), dynch(&c2)]).unwrap();
    let e = Event::new([("flume.selector.header", "a")], "x");
    assert_eq!(sel.required(&e), &[1]);
    assert!(sel.required(&Event::from_body("y")).is_empty());
}

#[test]
fn multiplexing_required_failure_and_config_errors() {
    let c1 = mem("c1", 100, 1);
    let c2 = mem("c2", 100, 100);
    let ctx = Context::from_pairs(
        "a1.sources.r1",
        [
            ("selector.type", "multiplexing"),
            ("selector.header", "h"),
            ("selector.mapping.a", "c1"),
            ("selector.default", "c2"),
        ],
    );
    let p = ChannelProcessor::from_context(&ctx, vec![dynch(&c1), dynch(&c2)]).unwrap();
    assert!(p
        .process_batch(&[Event::new([("h", "a")], "1"), Event::new([("h", "a")], "2")])
        .is_err());
    assert_eq!(c1.size(), 0);

    let bad = Context::from_pairs(
        "a1.sources.r1",
        [
            ("selector.type", "multiplexing"),
            ("selector.mapping.a", "c9"),
        ],
    );
    let err = ChannelSelector::from_context(&bad, vec![dynch(&c1)]).unwrap_err();
    assert_eq!(err.key, "a1.sources.r1.selector.mapping.a");
    assert!(err.message.contains("c9"), "{}", err.message);
    let bad = Context::from_pairs("a1.sources.r1", [("selector.type", "fancy")]);
    assert!(ChannelSelector::from_context(&bad, vec![dynch(&c1)]).is_err());
}

// ---------------------------------------------------------------- seq source

#[test]
fn seq_source_counts_from_zero_in_batches_and_stops() {
    let c = mem("c1", 1000, 100);
    let ctx = Context::from_pairs("a1.sources.r1", [("batchSize", "5"), ("totalEvents", "12")]);
    let mut s = SeqSource::from_context("r1", &ctx, ChannelProcessor::replicating(vec![dynch(&c)]))
        .unwrap();
    s.start().unwrap();
    wait_until("12 events", || c.size() == 12);
    // After totalEvents the source backs off (1 s sleeps); stop must interrupt that.
    s.stop();
    let got = bodies(&drain(&c));
    let want: Vec<String> = (0..12).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
    let k = s.counter();
    assert_eq!(SourceCounter::get(&k.events_accepted), 12);
    assert_eq!(SourceCounter::get(&k.append_batch_accepted), 3);

    let bad = Context::from_pairs("a1.sources.r1", [("batchSize", "0")]);
    assert!(SeqSource::from_context("r1", &bad, ChannelProcessor::replicating(vec![])).is_err());
}

// ---------------------------------------------------------------- netcat source

fn netcat(pairs: &[(&str, &str)], c: &Arc<MemoryChannel>) -> NetcatSource {
    let mut all = vec![("bind", "127.0.0.1"), ("port", "0")];
    all.extend_from_slice(pairs);
    let ctx = Context::from_pairs("a1.sources.r1", all);
    let mut s =
        NetcatSource::from_context("r1", &ctx, ChannelProcessor::replicating(vec![dynch(c)]))
            .unwrap();
    s.start().unwrap();
    s
}

fn connect(s: &NetcatSource) -> TcpStream {
    let t = TcpStream::connect(s.local_addr().unwrap()).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    t
}

fn read_n(t: &mut TcpStream, n: usize) -> String {
    let mut buf = vec![0u8; n];
    t.read_exact(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn netcat_acks_each_line_and_stores_bodies() {
    let c = mem("c1", 100, 100);
    let mut s = netcat(&[], &c);
    let mut t = connect(&s);
    t.write_all(b"hello\nwor").unwrap();
    assert_eq!(read_n(&mut t, 3), "OK\n");
    t.write_all(b"ld\r\n\n").unwrap();
    assert_eq!(read_n(&mut t, 6), "OK\nOK\n");
    assert_eq!(bodies(&drain(&c)), ["hello", "world\r", ""]);
    let k = s.counter();
    assert_eq!(SourceCounter::get(&k.events_accepted), 3);
    drop(t);
    s.stop();
}

#[test]
fn netcat_rejects_long_lines_and_reports_channel_failures() {
    let c = mem("c1", 100, 100);
    let mut s = netcat(&[("max-line-length", "8")], &c);
    let mut t = connect(&s);
    t.write_all(b"1234567\n").unwrap(); // 7 + newline = 8: fits
    assert_eq!(read_n(&mut t, 3), "OK\n");
    t.write_all(b"123456789\n").unwrap();
    let mut rest = String::new();
    t.read_to_string(&mut rest).unwrap(); // the server closes the connection
    assert_eq!(
        rest,
        "FAILED: Event exceeds the maximum length (8 chars, including newline)\n"
    );
    assert_eq!(bodies(&drain(&c)), ["1234567"]);

    c.close().unwrap();
    let mut t = connect(&s);
    t.write_all(b"x\n").unwrap();
    let mut line = [0u8; 64];
    let n = t.read(&mut line).unwrap();
    let reply = String::from_utf8_lossy(&line[..n]).into_owned();
    assert!(reply.starts_with("FAILED: "), "{reply}");
    assert!(reply.contains("closed"), "{reply}");
    assert_eq!(SourceCounter::get(&s.counter().channel_write_fail), 1);
    s.stop();
}

#[test]
fn netcat_without_acks_is_silent() {
    let c = mem("c1", 100, 100);
    let mut s = netcat(&[("ack-every-event", "false")], &c);
    let mut t = connect(&s);
    t.write_all(b"a\nb\n").unwrap();
    t.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    t.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    wait_until("2 events", || c.size() == 2);
    s.stop();
    assert_eq!(bodies(&drain(&c)), ["a", "b"]);
    let bad = Context::from_pairs("a1.sources.r1", [("bind", "127.0.0.1")]);
    let err = NetcatSource::from_context("r1", &bad, ChannelProcessor::replicating(vec![]))
        .err()
        .unwrap();
    assert_eq!(err.key, "a1.sources.r1.port");
}

// ---------------------------------------------------------------- exec source

fn exec(pairs: &[(&str, &str)], c: &Arc<MemoryChannel>) -> ExecSource {
    let ctx = Context::from_pairs("a1.sources.r1", pairs.iter().copied());
    let mut s = ExecSource::from_context("r1", &ctx, ChannelProcessor::replicating(vec![dynch(c)]))
        .unwrap();
    s.start().unwrap();
    s
}

#[test]
fn exec_echo_one_event_per_line() {
    let c = mem("c1", 100, 100);
    let mut s = exec(&[("command", "echo hello   world")], &c);
    wait_until("1 event", || c.size() == 1);
    s.stop();
    assert_eq!(bodies(&drain(&c)), ["hello world"]);

    let mut s = exec(
        &[
            ("shell", "/bin/sh -c"),
            ("command", r"printf 'a\nb\r\nc'"),
            ("batchSize", "2"),
        ],
        &c,
    );
    wait_until("3 events", || c.size() == 3);
    s.stop();
    assert_eq!(bodies(&drain(&c)), ["a", "b", "c"]);
    let k = s.counter();
    assert_eq!(SourceCounter::get(&k.events_received), 3);
    assert_eq!(SourceCounter::get(&k.events_accepted), 3);
}

#[test]
fn exec_restarts_the_command() {
    let c = mem("c1", 1000, 100);
    let mut s = exec(
        &[
            ("command", "echo again"),
            ("restart", "true"),
            ("restartThrottle", "20"),
        ],
        &c,
    );
    wait_until("3 runs", || c.size() >= 3);
    s.stop();
    let got = bodies(&drain(&c));
    assert!(got.len() >= 3);
    assert!(got.iter().all(|b| b == "again"), "{got:?}");
}

#[test]
fn exec_flushes_partial_batches_on_timeout_and_on_stop() {
    let c = mem("c1", 100, 100);
    // Timeout flush: the command keeps running, the partial batch still arrives.
    let mut s = exec(
        &[
            ("shell", "/bin/sh -c"),
            ("command", "printf '1\\n2\\n'; sleep 30"),
            ("batchSize", "100"),
            ("batchTimeout", "50"),
        ],
        &c,
    );
    wait_until("timeout flush", || c.size() == 2);
    s.stop(); // terminates `sleep 30`
    assert_eq!(bodies(&drain(&c)), ["1", "2"]);

    // Stop flush: lines read but not yet delivered are delivered by stop().
    let mut s = exec(
        &[
            ("shell", "/bin/sh -c"),
            ("command", "printf 'x\\ny\\n'; sleep 30"),
            ("batchSize", "100"),
            ("batchTimeout", "600000"),
        ],
        &c,
    );
    let k = s.counter();
    wait_until("2 lines read", || {
        SourceCounter::get(&k.events_received) == 2
    });
    assert_eq!(c.size(), 0);
    s.stop();
    assert_eq!(bodies(&drain(&c)), ["x", "y"]);
    let missing = Context::from_pairs("a1.sources.r1", [("restart", "true")]);
    let err = ExecSource::from_context("r1", &missing, ChannelProcessor::replicating(vec![]))
        .err()
        .unwrap();
    assert_eq!(err.key, "a1.sources.r1.command");
}
