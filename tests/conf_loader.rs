//! `flume.conf` loader tests over the fixture corpus in `tests/fixtures/conf/`: the user
//! guide's examples load into the expected typed model, ugly-but-valid files read as Java reads
//! them, and every broken file is refused with its exact messages.

use std::path::Path;

use sluicegate::agent::conf::{load_file, load_str, ChannelSelection};
use sluicegate::agent::{
    ChannelType, InterceptorType, SelectorType, SinkProcessorType, SinkType, SourceType,
};

const DIR: &str = "tests/fixtures/conf";

fn load(name: &str, agent: &str) -> sluicegate::agent::AgentConfig {
    let path = format!("{DIR}/{name}");
    load_file(Path::new(&path), agent).unwrap_or_else(|e| panic!("{path} must load:\n{e}"))
}

fn pairs(ctx: &sluicegate::config::Context) -> Vec<(String, String)> {
    ctx.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn warnings(c: &sluicegate::agent::AgentConfig) -> Vec<String> {
    c.warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn simple_netcat_logger_user_guide_example() {
    let c = load("simple-netcat-logger.conf", "a1");
    assert_eq!(c.name, "a1");
    assert_eq!(c.sources.len(), 1);
    let r1 = &c.sources[0];
    assert_eq!(
        (r1.name.as_str(), r1.source_type),
        ("r1", SourceType::Netcat)
    );
    assert_eq!(r1.channels, vec!["c1"]);
    assert_eq!(r1.context.prefix(), "a1.sources.r1");
    assert_eq!(r1.context.get("port"), Some("44444"));
    assert_eq!(r1.context.origin("port").line, 11);
    assert_eq!(
        r1.context
            .origin("port")
            .file
            .as_deref()
            .map(|p| p.as_path()),
        Some(Path::new("tests/fixtures/conf/simple-netcat-logger.conf"))
    );
    assert_eq!(r1.selector.selector_type, SelectorType::Replicating);
    assert!(r1.interceptors.is_empty());
    let c1 = c.channel("c1").unwrap();
    assert_eq!(c1.channel_type, ChannelType::Memory);
    assert_eq!(c1.context.get_u64("capacity", 0).unwrap(), 1000);
    let k1 = c.sink("k1").unwrap();
    assert_eq!(
        (k1.sink_type, k1.channel.as_str()),
        (SinkType::Logger, "c1")
    );
    assert!(c.sinkgroups.is_empty());
    assert_eq!(c.ungrouped_sinks().count(), 1);
    assert!(c.warnings.is_empty(), "{:?}", warnings(&c));
}

#[test]
fn avro_source_memory_channel_logger_sink() {
    let c = load("avro-memory-logger.conf", "a1");
    let r1 = c.source("r1").unwrap();
    assert_eq!(r1.source_type, SourceType::Avro);
    assert_eq!(
        pairs(&r1.context),
        [
            ("bind", "0.0.0.0"),
            ("channels", "c1"),
            ("compression-type", "deflate"),
            ("port", "4141"),
            ("type", "avro")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    // A component's errors name the file, line and full key.
    let e = r1.context.error("port", "bad");
    assert_eq!(
        e.to_string(),
        "tests/fixtures/conf/avro-memory-logger.conf:9: a1.sources.r1.port: bad"
    );
    assert_eq!(
        c.channel("c1").unwrap().context.get("byteCapacity"),
        Some("800000")
    );
    assert_eq!(
        c.sink("k1").unwrap().context.get("maxBytesToLog"),
        Some("64")
    );
}

#[test]
fn multiplexing_selector_user_guide_example() {
    let c = load("multiplexing.conf", "agent_foo");
    let s = c.source("avro-AppSrv-source1").unwrap();
    assert_eq!(s.channels, vec!["mem-channel-1", "file-channel-2"]);
    assert_eq!(s.selector.selector_type, SelectorType::Multiplexing);
    assert_eq!(
        s.selector.context.prefix(),
        "agent_foo.sources.avro-AppSrv-source1.selector"
    );
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        s.selector.selection,
        ChannelSelection::Multiplexing {
            header: "State".into(),
            mapping: vec![
                ("AZ".into(), v(&["file-channel-2"])),
                ("CA".into(), v(&["mem-channel-1"])),
                ("NY".into(), v(&["mem-channel-1", "file-channel-2"])),
            ],
            default: v(&["mem-channel-1"]),
            optional: vec![("CA".into(), v(&["mem-channel-1", "file-channel-2"]))],
        }
    );
    assert_eq!(
        c.channel("file-channel-2").unwrap().channel_type,
        ChannelType::File
    );
    assert_eq!(
        c.sink("avro-forward-sink2").unwrap().sink_type,
        SinkType::Avro
    );
    assert_eq!(
        c.sinks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["logger-sink1", "avro-forward-sink2"]
    );
}

#[test]
fn interceptors_by_alias_and_class_name_in_order() {
    let c = load("interceptors.conf", "a1");
    let r1 = c.source("r1").unwrap();
    let kinds: Vec<_> = r1
        .interceptors
        .iter()
        .map(|i| (i.name.as_str(), i.interceptor_type))
        .collect();
    assert_eq!(
        kinds,
        [
            ("i1", InterceptorType::Host),
            ("i2", InterceptorType::Timestamp),
            ("i3", InterceptorType::Static),
            ("i4", InterceptorType::Uuid),
            ("i5", InterceptorType::RegexFilter),
            ("i6", InterceptorType::RemoveHeader),
        ]
    );
    let i3 = &r1.interceptors[2];
    assert_eq!(i3.context.prefix(), "a1.sources.r1.interceptors.i3");
    assert_eq!(i3.context.get("key"), Some("datacenter"));
    assert_eq!(i3.context.get("value"), Some("NEW_YORK"));
    assert!(!r1.interceptors[0]
        .context
        .get_bool("preserveExisting", true));
    assert_eq!(warnings(&c), [
        "tests/fixtures/conf/interceptors.conf:22: a1.sources.r1.interceptors.i7: interceptor 'i7' \
         is configured but not listed in a1.sources.r1.interceptors; it is ignored (as Flume does)"
    ]);
}

#[test]
fn failover_sink_group() {
    let c = load("failover.conf", "a1");
    assert_eq!(c.sinkgroups.len(), 1);
    let g = &c.sinkgroups[0];
    assert_eq!(g.name, "g1");
    assert_eq!(g.sinks, vec!["k1", "k2"]);
    assert_eq!(g.processor.processor_type, SinkProcessorType::Failover);
    assert_eq!(g.processor.context.prefix(), "a1.sinkgroups.g1.processor");
    assert_eq!(g.processor.context.get_i64("priority.k2", 0).unwrap(), 10);
    assert_eq!(
        g.processor.context.get_u64("maxpenalty", 30000).unwrap(),
        10000
    );
    assert_eq!(c.group_of_sink("k2").map(|g| g.name.as_str()), Some("g1"));
    assert_eq!(c.ungrouped_sinks().count(), 0);
    assert_eq!(c.channel("c1").unwrap().channel_type, ChannelType::File);
}

#[test]
fn load_balance_sink_group_with_class_names_and_a_lone_sink() {
    let c = load("load-balance.conf", "a1");
    assert_eq!(c.source("r1").unwrap().source_type, SourceType::Avro);
    assert_eq!(c.channel("c1").unwrap().channel_type, ChannelType::Memory);
    assert_eq!(c.sink("k1").unwrap().sink_type, SinkType::Avro);
    assert_eq!(c.sink("k2").unwrap().sink_type, SinkType::Avro);
    let g = c.sinkgroup("g1").unwrap();
    assert_eq!(g.processor.processor_type, SinkProcessorType::LoadBalance);
    assert!(g.processor.context.get_bool("backoff", false));
    assert_eq!(g.processor.context.get("selector"), Some("random"));
    let lone: Vec<_> = c
        .ungrouped_sinks()
        .map(|s| (s.name.as_str(), s.sink_type))
        .collect();
    assert_eq!(lone, [("k3", SinkType::FileRoll)]);
}

#[test]
fn one_file_two_agents() {
    let w = load("multi-agent.conf", "weblog");
    assert_eq!(w.sources[0].name, "avro-AppSrv-source");
    assert_eq!(w.sinks[0].context.get("hostname"), Some("10.1.1.100"));
    let col = load("multi-agent.conf", "collector");
    assert_eq!(col.sinks[0].sink_type, SinkType::FileRoll);
    assert_eq!(
        col.sinks[0].context.get("sink.directory"),
        Some("/data/flume")
    );
    assert_eq!(col.sources[0].context.get("port"), Some("10000"));
}

#[test]
fn ugly_continuations_and_separators() {
    let c = load("ugly-continuations.conf", "a1");
    assert_eq!(c.sources[0].channels, vec!["c1", "c2"]);
    assert_eq!(c.channels.len(), 2);
    assert_eq!(
        c.sinks.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["k1", "k2"]
    );
    let r1 = &c.sources[0];
    assert_eq!(r1.source_type, SourceType::Exec);
    assert_eq!(
        r1.context.get("command"),
        Some("tail -F /var/log/app.log /var/log/other.log")
    );
    assert_eq!(r1.context.origin("command").line, 10);
    assert_eq!(r1.context.get("windowsish"), Some(r"C:\logs\"));
    // Leading tab, padded separator and trailing spaces (trimmed by Flume's loader).
    assert_eq!(c.sink("k1").unwrap().sink_type, SinkType::Logger);
    assert_eq!(c.sink("k1").unwrap().context.origin("type").line, 18);
    // `:` separator, whitespace separator, continuation inside the key.
    assert_eq!(c.sink("k1").unwrap().channel, "c1");
    assert_eq!(c.sink("k2").unwrap().sink_type, SinkType::Null);
    assert_eq!(c.sink("k2").unwrap().context.origin("type").line, 21);
    assert_eq!(c.sink("k2").unwrap().channel, "c2");
    // A backslash before end of file is dropped.
    assert_eq!(c.sink("k2").unwrap().context.get("batchSize"), Some("10"));
    assert!(c.warnings.is_empty(), "{:?}", warnings(&c));
}

#[test]
fn ugly_unicode_escapes_and_raw_utf8() {
    let c = load("ugly-unicode.conf", "a1");
    let r1 = &c.sources[0];
    assert_eq!(r1.interceptors[0].context.get("value"), Some("Zürich € 😀"));
    assert_eq!(r1.interceptors[1].context.get("value"), Some("Zürich € 😀"));
    assert_eq!(r1.interceptors[1].context.get("tab"), Some("a\tb"));
    assert_eq!(c.sink("k1").unwrap().context.get("odd=key"), Some("x"));
}

#[test]
fn ugly_duplicates_last_wins_with_warnings() {
    let c = load("ugly-duplicates.conf", "a1");
    assert_eq!(c.source("r1").unwrap().context.get("port"), Some("3333"));
    assert_eq!(c.source("r1").unwrap().context.origin("port").line, 14);
    assert_eq!(c.sink("k1").unwrap().sink_type, SinkType::Null);
    let f = "tests/fixtures/conf/ugly-duplicates.conf";
    assert_eq!(warnings(&c), [
        format!("{f}:6: a1.sources.r1.port: set again on line 14; the last value wins (as in Flume), this one is ignored"),
        format!("{f}:9: a1.sinks.k1.type: set again on line 13; the last value wins (as in Flume), this one is ignored"),
        format!("{f}:12: a1.sources.r1.port: set again on line 14; the last value wins (as in Flume), this one is ignored"),
    ]);
}

#[test]
fn ugly_line_endings_and_encodings() {
    let crlf = load("ugly-crlf.conf", "a1");
    let r1 = &crlf.sources[0];
    assert_eq!(r1.context.get("bind"), Some("127.0.0.1"));
    assert_eq!(r1.context.origin("bind").line, 7);
    assert_eq!(r1.context.origin("port").line, 9);
    let cr = load("ugly-cr-only.conf", "a1");
    assert_eq!(cr.sink("k1").unwrap().context.origin("channel").line, 8);
    let latin1 = load("ugly-latin1.conf", "a1");
    assert_eq!(
        latin1.sources[0].interceptors[0].context.get("value"),
        Some("café")
    );
    assert_eq!(warnings(&latin1), [
        "tests/fixtures/conf/ugly-latin1.conf: (encoding): the file is not valid UTF-8; it was \
         read as ISO-8859-1 (as Flume 1.11 reads it)"
    ]);
}

#[test]
fn loader_marks_structural_keys_used() {
    let c = load("avro-memory-logger.conf", "a1");
    let unused = c.sources[0].context.unused_keys();
    assert!(!unused.contains(&"type".to_string()));
    assert!(!unused.contains(&"channels".to_string()));
    assert!(unused.contains(&"port".to_string()), "{unused:?}");
}

/// Every broken fixture with its exact, complete error output.
#[test]
fn broken_configs_report_every_problem_exactly() {
    let table: &[(&str, &str, &[&str])] = &[
        ("agent-not-found.conf", "a2", &[
            ": a2: no agent named 'a2' in the configuration (agents in this file: a1, collector); check -n/--name",
        ]),
        ("bad-escape.conf", "a1", &[
            ":5: a1.sources.r1.path: malformed \\uxxxx escape '\\users': \\u must be followed by exactly four hex digits (Java refuses the whole file: \"Malformed \\uxxxx encoding.\"); write '\\\\u' for a literal backslash-u",
        ]),
        ("class-name-case.conf", "a1", &[
            ":3: a1.sources.r1.type: unknown source type 'org.apache.flume.source.avroSource' (class names must match exactly: did you mean 'org.apache.flume.source.AvroSource'?); supported source types: avro, netcat, seq, exec (or their Flume class names)",
        ]),
        ("config-filters.conf", "a1", &[
            ":1: a1.configfilters: config filters (Flume 1.10+ `configfilters`) are not supported by sluicegate; put the values in the file directly",
            ":2: a1.configfilters.f1.type: config filters (Flume 1.10+ `configfilters`) are not supported by sluicegate; put the values in the file directly",
        ]),
        ("default-processor.conf", "a1", &[
            ":12: a1.sinkgroups.g1.sinks: the default sink processor takes exactly one sink, but group 'g1' has 2; use processor.type = failover or load_balance",
        ]),
        ("interceptors.conf", "a1", &[
            ":3: a1.sources.r1.interceptors.i1.type: is not set: interceptor 'i1' needs a type (supported interceptor types: timestamp, host, static, uuid, regex_filter, remove_header)",
            ":7: a1.sources.r1.interceptors.i2.type: interceptor type 'search_replace' is a Flume type that sluicegate does not implement; supported interceptor types: timestamp, host, static, uuid, regex_filter, remove_header (or their Flume class names)",
            ":8: a1.sources.r1.interceptors.i3.type: unknown interceptor type 'org.apache.flume.interceptor.TimestampInterceptor.Builder' (class names must match exactly: did you mean 'org.apache.flume.interceptor.TimestampInterceptor$Builder'?); supported interceptor types: timestamp, host, static, uuid, regex_filter, remove_header (or their Flume class names)",
        ]),
        ("listed-without-settings.conf", "a1", &[
            ":2: a1.channels.c2.type: channel 'c2' is listed in a1.channels but has no settings; set its type",
            ":4: a1.sinkgroups.g1.sinks: sink group 'g1' is listed in a1.sinkgroups but has no settings; set its sinks",
        ]),
        ("many-problems.conf", "a1", &[
            ":6: a1.sources.src.channels: channel 'memory' is not listed in a1.channels (defined: mem)",
            ":10: a1.sinks.extra.type: is not set: sink 'extra' needs a type (supported sink types: avro, logger, file_roll, null, hdfs, pipeline)",
        ]),
        ("missing-type.conf", "a1", &[
            ":7: a1.sinks.k1.type: is not set: sink 'k1' needs a type (supported sink types: avro, logger, file_roll, null, hdfs, pipeline)",
        ]),
        ("no-channels.conf", "a1", &[
            ": a1.channels: is not set: the agent needs at least one channel (space-separated names)",
            ": a1.sources, a1.sinks: are both unset: the agent needs at least one source or sink",
        ]),
        ("selector.conf", "a1", &[
            ":11: a1.sources.r1.selector.mapping.US: channel 'c3' is not among the channels of source 'r1' (c1, c2)",
            ":12: a1.sources.r1.selector.default: channel 'c4' is not among the channels of source 'r1' (c1, c2)",
            ":15: a1.sources.r2.selector.type: channel selector type 'load_balancing' is a Flume type that sluicegate does not implement; supported channel selector types: replicating, multiplexing (or their Flume class names)",
        ]),
        ("sink-channel.conf", "a1", &[
            ":8: a1.sinks.k1.channel: is not set: sink 'k1' must read one channel (defined: c1, c2)",
            ":10: a1.sinks.k2.channel: channel 'cx' is not listed in a1.channels (defined: c1, c2)",
            ":12: a1.sinks.k3.channel: a sink reads exactly one channel, got 2 ('c1 c2')",
            ":13: a1.sinks.k4.channel: is not set: sink 'k4' must read one channel (sinks use 'channel', singular; 'channels' is for sources) (defined: c1, c2)",
        ]),
        ("sinkgroups.conf", "a1", &[
            ":4: a1.sinkgroups: sink group 'k3' has the same name as a sink; Flume runs sink groups and lone sinks under one set of names, so one of them would never run — rename one",
            ":16: a1.sinkgroups.g2.sinks: sink 'k2' is already in sink group 'g1'; a sink can belong to only one group",
            ":16: a1.sinkgroups.g2.sinks: sink 'k5' is not listed in a1.sinks (defined: k1, k2, k3)",
            ":17: a1.sinkgroups.g2.processor.type: unknown sink processor type 'round_robin'; supported sink processor types: default, failover, load_balance (or their Flume class names)",
        ]),
        ("source-channels.conf", "a1", &[
            ":4: a1.sources.r1.channels: is not set: source 'r1' must write to at least one channel (defined: c1)",
            ":8: a1.sources.r2.channels: channel 'c9' is not listed in a1.channels (defined: c1)",
        ]),
        ("unsupported-types.conf", "a1", &[
            ":4: a1.sources.r1.type: unknown source type 'avr0'; supported source types: avro, netcat, seq, exec (or their Flume class names)",
            ":6: a1.channels.c1.type: channel type 'jdbc' is a Flume type that sluicegate does not implement; supported channel types: memory, file (or their Flume class names)",
            ":7: a1.sinks.k1.type: sink type 'hbase' is a Flume type that sluicegate does not implement; supported sink types: avro, logger, file_roll, null, hdfs, pipeline (or their Flume class names)",
        ]),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (name, agent, expected) in table {
        let path = format!("{DIR}/broken/{name}");
        seen.insert(name.to_string());
        let err = match load_file(Path::new(&path), agent) {
            Ok(_) => panic!("{path} must be refused"),
            Err(e) => e,
        };
        let want: Vec<String> = expected.iter().map(|l| format!("{path}{l}")).collect();
        assert_eq!(err.to_string(), want.join("\n"), "{path}");
        assert_eq!(err.errors.len(), expected.len());
    }
    // Every broken fixture is in the table.
    for entry in std::fs::read_dir(format!("{DIR}/broken")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            seen.contains(&name),
            "broken fixture {name} has no expected errors"
        );
    }
}

#[test]
fn broken_configs_still_carry_warnings() {
    let err = load_file(
        Path::new("tests/fixtures/conf/broken/many-problems.conf"),
        "a1",
    )
    .unwrap_err();
    let w: Vec<String> = err.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w, [
        "tests/fixtures/conf/broken/many-problems.conf:12: a1.sinks.forgotten: sink 'forgotten' is configured but not listed in a1.sinks; it is ignored (as Flume does)"
    ]);
}

#[test]
fn in_memory_text_and_odd_keys() {
    let text = "a1.sources = r1\na1.channels = c1 c1\na1.sources.r1.type = seq\n\
                a1.sources.r1.channels = c1\na1.channels.c1.type = memory\n\
                a1.channels.c1.capacity =   \na1.bogus.x = 1\nflat = 1\nother.sinks = k9\n\
                a1.channels.c2.type = memory\na1.sources.r1.path = ${HOME}/x\n";
    let c = load_str(text, None, "a1").unwrap();
    let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(w, [
        "line 2: a1.channels: lists 'c1' more than once; it is used once",
        "line 6: a1.channels.c1.capacity: has an empty value; Flume ignores the key as if it were not set",
        "line 7: a1.bogus.x: is not a Flume agent key (expected a1.sources|channels|sinks|sinkgroups = names, or a1.<sources|channels|sinks|sinkgroups>.<name>.<key>); Flume ignores it",
        "line 10: a1.channels.c2: channel 'c2' is configured but not listed in a1.channels; it is ignored (as Flume does)",
        "line 11: a1.sources.r1.path: contains '${...}': Flume 1.11 would substitute it (environment/system property lookups); sluicegate does not and uses the text as written",
    ]);
    assert!(!c.channels[0].context.contains("capacity"));
    assert_eq!(c.channels.len(), 1);
}
