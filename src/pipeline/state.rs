//! Keyed state across batches: `update_state_by_key` (returning `None` drops the key) and
//! `map_with_state` (initial state, per-key timeout), with a key limit and TTL — stateful stages
//! on [`StatefulStage`](super::StatefulStage).
//!
//! Owned by the windows/state work (see `/work/wt/pipeline-api.md`); not implemented in this
//! file yet.
