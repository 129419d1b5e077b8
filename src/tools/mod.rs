//! Command-line tools as library functions (the binary's subcommands call them):
//!
//! | module | tool |
//! |---|---|
//! | [`avro_client`] | `flume-ng avro-client`: send a file's (or stdin's) lines as events |
//! | [`bench`](mod@bench) | a load generator for Avro sources: events/s, MB/s, latency percentiles |
//! | [`relay`] | two sluicegate hops end to end (file channel + Avro sink between them), verified |
//! | [`top`] | `sluicegate top`: a live terminal view of a running agent, fed by its `/metrics` |
//! | [`hdfs_bench`] | `bench --hdfs`: Avro → file channel → HDFS sink (`file://`), files read back and verified |
//! | [`pipeline_bench`] | `bench --pipeline`: Avro → file channel → the streaming word count, per-batch timings, the Spark anchor's keeps-up rule |
//!
//! This module sits at the top of the layering, beside the agent: it uses the layers below
//! (sources, sinks, channels, rpc, pipeline), nothing uses it.

pub mod avro_client;
pub mod bench;
pub mod hdfs_bench;
pub mod pipeline_bench;
pub mod relay;
pub mod top;
