//! The tokio transport for Flume's Avro RPC: the server side the Avro source runs on, and the
//! client side the Avro sink uses. Filled in by the RPC work.
