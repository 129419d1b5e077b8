//! The Avro source (`type = avro`). Filled in by the source work.
