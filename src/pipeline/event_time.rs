//! Event time: timestamps from a header or a function, bounded-out-of-orderness watermarks,
//! windows that fire when the watermark passes their end, late events counted and side-output,
//! idle-stream watermark advance, session windows — stateful stages on
//! [`StatefulStage`](super::StatefulStage).
//!
//! Owned by the windows/state work (see `/work/wt/pipeline-api.md`); not implemented in this
//! file yet.
