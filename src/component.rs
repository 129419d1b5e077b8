//! The component types sluicegate supports, with the names a `flume.conf` may use for them.
//!
//! Like Flume, a `type` is either a short alias (`avro`, `memory`, `file_roll`), matched
//! case-insensitively as Flume's enums are (`AVRO`, `Memory`), or the Java class name of the
//! component (`org.apache.flume.source.AvroSource`), matched exactly as `Class.forName` would.
//! Types that Flume knows but sluicegate does not implement are recognised so the error can
//! say so instead of calling them unknown.
//!
//! This is the one registry of type names. The `flume.conf` validator (`agent::conf`) resolves
//! every `type` once and hands the resolved enum down; the components that also build from a
//! bare [`Context`] (a source's channel selector and interceptors, a sink group's processor)
//! resolve through [`ComponentType::from_context`] here too, so no name is accepted in one place
//! and refused in another. The module sits at the bottom of the crate, next to [`crate::config`]
//! (the only module it uses), so sources, sinks and the agent can all name these types.

use std::fmt;

use crate::config::{ConfigError, Context};

/// What a [`ComponentType`] is a type of, for messages (`source`, `sink processor`).
pub trait ComponentType: Sized + Copy + Eq + fmt::Debug + 'static {
    /// `source`, `channel`, `sink`, `interceptor`, `channel selector`, `sink processor`.
    const KIND: &'static str;
    /// Every supported type.
    const ALL: &'static [Self];
    /// Flume aliases of this kind that sluicegate does not implement.
    const FLUME_UNSUPPORTED: &'static [&'static str];

    /// The short name (`avro`, `file_roll`).
    fn short_name(self) -> &'static str;
    /// The Java class name Flume uses for it.
    fn class_name(self) -> &'static str;

    /// Resolves a configured `type` value (already trimmed).
    fn from_config(value: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| {
            t.short_name().eq_ignore_ascii_case(value)
                || t.class_name() == value
                || t.extra_aliases().contains(&value)
        })
    }

    /// Resolves the `type` key of `ctx` (a component `what`, e.g. `interceptor 'i1'`, that must
    /// have one). The error names the key's file and line and the supported types.
    fn from_context(ctx: &Context, what: &str) -> Result<Self, ConfigError> {
        match ctx.get("type").map(str::trim) {
            None => Err(ctx.error(
                "type",
                &format!(
                    "is not set: {what} needs a type (supported {} types: {})",
                    Self::KIND,
                    Self::supported_list()
                ),
            )),
            Some(v) => {
                Self::from_config(v).ok_or_else(|| ctx.error("type", &Self::unsupported_message(v)))
            }
        }
    }

    /// Resolves the `type` key of `ctx`, `default` when it is not set.
    fn from_context_or(ctx: &Context, default: Self) -> Result<Self, ConfigError> {
        match ctx.get("type").map(str::trim) {
            None => Ok(default),
            Some(v) => {
                Self::from_config(v).ok_or_else(|| ctx.error("type", &Self::unsupported_message(v)))
            }
        }
    }

    /// Other accepted exact spellings (e.g. Flume's own alias when it differs from ours).
    fn extra_aliases(self) -> &'static [&'static str] {
        &[]
    }

    /// `avro, netcat, seq, exec`.
    fn supported_list() -> String {
        Self::ALL
            .iter()
            .map(|t| t.short_name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A message for a `type` value that is not supported, naming what is.
    fn unsupported_message(value: &str) -> String {
        let close = |t: &Self| {
            let c = t.class_name();
            c.eq_ignore_ascii_case(value) || c.replace('$', ".").eq_ignore_ascii_case(value)
        };
        if let Some(t) = Self::ALL.iter().find(|t| close(t)) {
            return format!(
                "unknown {} type '{value}' (class names must match exactly: did you mean '{}'?); \
                 supported {} types: {} (or their Flume class names)",
                Self::KIND,
                t.class_name(),
                Self::KIND,
                Self::supported_list()
            );
        }
        let known_flume = Self::FLUME_UNSUPPORTED
            .iter()
            .any(|n| n.eq_ignore_ascii_case(value));
        if known_flume {
            format!(
                "{} type '{value}' is a Flume type that sluicegate does not implement; supported {} \
                 types: {} (or their Flume class names)",
                Self::KIND,
                Self::KIND,
                Self::supported_list()
            )
        } else {
            format!(
                "unknown {} type '{value}'; supported {} types: {} (or their Flume class names)",
                Self::KIND,
                Self::KIND,
                Self::supported_list()
            )
        }
    }
}

macro_rules! component_types {
    (
        $(#[$meta:meta])*
        $ty:ident, $kind:literal, unsupported: [$($uns:literal),* $(,)?] {
            $( $(#[$vmeta:meta])* $variant:ident => $short:literal, $class:literal $(, aliases: [$($alias:literal),*])? ; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $ty {
            $( $(#[$vmeta])* $variant, )*
        }

        impl ComponentType for $ty {
            const KIND: &'static str = $kind;
            const ALL: &'static [Self] = &[$($ty::$variant),*];
            const FLUME_UNSUPPORTED: &'static [&'static str] = &[$($uns),*];

            fn short_name(self) -> &'static str {
                match self { $( $ty::$variant => $short, )* }
            }

            fn class_name(self) -> &'static str {
                match self { $( $ty::$variant => $class, )* }
            }

            fn extra_aliases(self) -> &'static [&'static str] {
                match self { $( $ty::$variant => &[$($($alias),*)?], )* }
            }
        }

        impl $ty {
            /// The short name (`avro`).
            pub fn as_str(self) -> &'static str {
                self.short_name()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.short_name())
            }
        }
    };
}

component_types! {
    /// Source types.
    SourceType, "source", unsupported: [
        "thrift", "syslogtcp", "multiport_syslogtcp", "syslogudp", "spooldir", "http", "jms",
        "taildir", "netcatudp", "kafka", "org.apache.flume.source.kafka.KafkaSource",
    ] {
        /// Flume's `AvroSource`.
        Avro => "avro", "org.apache.flume.source.AvroSource";
        /// Flume's `NetcatSource` (TCP).
        Netcat => "netcat", "org.apache.flume.source.NetcatSource";
        /// Flume's `SequenceGeneratorSource`.
        Seq => "seq", "org.apache.flume.source.SequenceGeneratorSource";
        /// Flume's `ExecSource`.
        Exec => "exec", "org.apache.flume.source.ExecSource";
    }
}

component_types! {
    /// Channel types.
    ChannelType, "channel", unsupported: [
        "jdbc", "spillablememory", "kafka", "org.apache.flume.channel.kafka.KafkaChannel",
    ] {
        /// Flume's `MemoryChannel`.
        Memory => "memory", "org.apache.flume.channel.MemoryChannel";
        /// Flume's durable `FileChannel`.
        File => "file", "org.apache.flume.channel.file.FileChannel";
    }
}

component_types! {
    /// Sink types.
    SinkType, "sink", unsupported: [
        "irc", "thrift", "elasticsearch", "hbase", "asynchbase", "hbase2",
        "morphline_solr", "hive", "http", "kafka", "org.apache.flume.sink.kafka.KafkaSink",
    ] {
        /// Flume's `AvroSink`.
        Avro => "avro", "org.apache.flume.sink.AvroSink";
        /// Flume's `LoggerSink`.
        Logger => "logger", "org.apache.flume.sink.LoggerSink";
        /// Flume's `RollingFileSink`.
        FileRoll => "file_roll", "org.apache.flume.sink.RollingFileSink";
        /// Flume's `NullSink`.
        Null => "null", "org.apache.flume.sink.NullSink";
        /// Flume's `HDFSEventSink` (local `file://` paths in this build).
        Hdfs => "hdfs", "org.apache.flume.sink.hdfs.HDFSEventSink";
        /// sluicegate's streaming-SQL pipeline (no Flume counterpart; `agent::pipeline_sink`).
        Pipeline => "pipeline", "sluicegate.pipeline.SqlPipelineSink";
    }
}

component_types! {
    /// Interceptor types. Flume has no `uuid` alias (only the class name); sluicegate adds one.
    InterceptorType, "interceptor", unsupported: [
        "regex_extractor", "search_replace",
        "org.apache.flume.sink.solr.morphline.MorphlineInterceptor$Builder",
    ] {
        /// Adds a `timestamp` header.
        Timestamp => "timestamp", "org.apache.flume.interceptor.TimestampInterceptor$Builder";
        /// Adds a `host` header.
        Host => "host", "org.apache.flume.interceptor.HostInterceptor$Builder";
        /// Adds one fixed header.
        Static => "static", "org.apache.flume.interceptor.StaticInterceptor$Builder";
        /// Adds an `id` header with a random UUID.
        Uuid => "uuid", "org.apache.flume.sink.solr.morphline.UUIDInterceptor$Builder";
        /// Keeps or drops events whose body matches a regex.
        RegexFilter => "regex_filter", "org.apache.flume.interceptor.RegexFilteringInterceptor$Builder";
        /// Removes headers.
        RemoveHeader => "remove_header", "org.apache.flume.interceptor.RemoveHeaderInterceptor$Builder";
    }
}

component_types! {
    /// Channel selector types (`selector.type`; default `replicating`).
    SelectorType, "channel selector", unsupported: [
        "load_balancing", "org.apache.flume.channel.LoadBalancingChannelSelector",
    ] {
        /// Every event to every channel (Flume's default).
        Replicating => "replicating", "org.apache.flume.channel.ReplicatingChannelSelector";
        /// Channels chosen by a header value.
        Multiplexing => "multiplexing", "org.apache.flume.channel.MultiplexingChannelSelector";
    }
}

component_types! {
    /// Sink processor types (`processor.type` of a sink group; default `default`).
    SinkProcessorType, "sink processor", unsupported: [] {
        /// One sink, no group behaviour.
        Default => "default", "org.apache.flume.sink.DefaultSinkProcessor";
        /// Prioritised sinks with failover.
        Failover => "failover", "org.apache.flume.sink.FailoverSinkProcessor";
        /// Round-robin or random over sinks.
        LoadBalance => "load_balance", "org.apache.flume.sink.LoadBalancingSinkProcessor";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_case_insensitive_class_names_exact() {
        assert_eq!(SourceType::from_config("avro"), Some(SourceType::Avro));
        assert_eq!(SourceType::from_config("AVRO"), Some(SourceType::Avro));
        assert_eq!(
            SourceType::from_config("org.apache.flume.source.AvroSource"),
            Some(SourceType::Avro)
        );
        assert_eq!(
            SourceType::from_config("org.apache.flume.source.avrosource"),
            None
        );
        assert_eq!(SinkType::from_config("File_Roll"), Some(SinkType::FileRoll));
        assert_eq!(ChannelType::from_config("FILE"), Some(ChannelType::File));
        assert_eq!(
            InterceptorType::from_config(
                "org.apache.flume.sink.solr.morphline.UUIDInterceptor$Builder"
            ),
            Some(InterceptorType::Uuid)
        );
        assert_eq!(
            InterceptorType::from_config("REGEX_FILTER"),
            Some(InterceptorType::RegexFilter)
        );
        assert_eq!(
            SinkProcessorType::from_config("load_balance"),
            Some(SinkProcessorType::LoadBalance)
        );
        assert_eq!(
            SelectorType::from_config("Multiplexing"),
            Some(SelectorType::Multiplexing)
        );
        assert_eq!(SinkType::from_config("HDFS"), Some(SinkType::Hdfs));
        assert_eq!(SinkType::from_config("hbase"), None);
    }

    #[test]
    fn every_class_name_round_trips() {
        fn check<T: ComponentType>() {
            for t in T::ALL {
                assert_eq!(T::from_config(t.class_name()), Some(*t));
                assert_eq!(T::from_config(t.short_name()), Some(*t));
                assert_eq!(
                    T::from_config(&t.short_name().to_ascii_uppercase()),
                    Some(*t)
                );
            }
        }
        check::<SourceType>();
        check::<ChannelType>();
        check::<SinkType>();
        check::<InterceptorType>();
        check::<SelectorType>();
        check::<SinkProcessorType>();
    }

    #[test]
    fn unsupported_messages_name_the_supported_types() {
        assert_eq!(
            SinkType::unsupported_message("hbase"),
            "sink type 'hbase' is a Flume type that sluicegate does not implement; supported sink \
             types: avro, logger, file_roll, null, hdfs, pipeline (or their Flume class names)"
        );
        assert_eq!(
            ChannelType::unsupported_message("disk"),
            "unknown channel type 'disk'; supported channel types: memory, file (or their Flume \
             class names)"
        );
        assert!(
            SourceType::unsupported_message("org.apache.flume.source.avrosource")
                .contains("did you mean 'org.apache.flume.source.AvroSource'")
        );
    }

    #[test]
    fn from_context_points_at_the_type_key() {
        let ctx = Context::from_pairs("a1.sinkgroups.g1.processor", [("type", " Failover ")]);
        assert_eq!(
            SinkProcessorType::from_context_or(&ctx, SinkProcessorType::Default),
            Ok(SinkProcessorType::Failover)
        );
        let unset = Context::new("a1.sources.r1.selector");
        assert_eq!(
            SelectorType::from_context_or(&unset, SelectorType::Replicating),
            Ok(SelectorType::Replicating)
        );
        let e = InterceptorType::from_context(
            &Context::new("a1.sources.r1.interceptors.i1"),
            "interceptor 'i1'",
        )
        .unwrap_err();
        assert_eq!(e.key, "a1.sources.r1.interceptors.i1.type");
        assert_eq!(
            e.message,
            "is not set: interceptor 'i1' needs a type (supported interceptor types: timestamp, \
             host, static, uuid, regex_filter, remove_header)"
        );
        let bad = Context::from_pairs(
            "a1.sources.r1.selector",
            [(
                "type",
                "org.apache.flume.channel.replicatingchannelselector",
            )],
        );
        let e = SelectorType::from_context_or(&bad, SelectorType::Replicating).unwrap_err();
        assert_eq!(e.key, "a1.sources.r1.selector.type");
        assert!(
            e.message.contains("class names must match exactly"),
            "{}",
            e.message
        );
    }
}
