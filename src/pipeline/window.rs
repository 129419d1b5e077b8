//! Windows over batch time: `window`, `reduce_by_key_and_window` (with an optional inverse
//! function), `count_by_window`, `count_by_value_and_window` — stateful stages on
//! [`StatefulStage`](super::StatefulStage).
//!
//! Owned by the windows/state work (see `/work/wt/pipeline-api.md`); not implemented in this
//! file yet.
