//! The live status page served at `/` of the monitoring port, and the two JSON documents it
//! reads besides `/metrics`.
//!
//! # Endpoints
//!
//! | path | body |
//! |---|---|
//! | `/` | [`PAGE`]: one self-contained HTML file (inline CSS and JS, charts drawn as SVG by hand; no CDN, no build step), compiled into the binary with `include_str!` |
//! | `/topology` | [`Topology::to_json`](super::topology::Topology::to_json): what the agent runs and how it is wired |
//! | `/pipelines` | [`render_pipelines`]: each pipeline's latest results |
//!
//! `/topology`:
//!
//! ```text
//! {"agent":"a1",
//!  "sources":[{"name":"r1","type":"avro","channels":["c1"]}],
//!  "channels":[{"name":"c1","type":"file"}],
//!  "sinks":[{"name":"k1","type":"file_roll","channel":"c1","group":null}],
//!  "pipelines":[{"name":"wc","channel":"c2"}]}
//! ```
//!
//! Every list is sorted by name. The topology is *data* handed down by the layer that owns
//! the configuration (the agent calls [`MetricsRegistry::set_topology`] after a start, a
//! reload or a new pipeline): this module knows nothing of configurations, so the layering
//! (metrics below everything but the foundations) holds. A registry nobody described serves
//! the empty topology (`"agent":""`, empty lists).
//!
//! `/pipelines` is `{"<pipeline>": <details>}` for every counter group that has
//! [`CounterGroup::details`](super::CounterGroup::details) (the `PIPELINE.<name>` groups): for a pipeline,
//! `{"latest":[{"output":"#4 print(10)","batch_id":7,"batch_time":1700000000000,"total":42,
//! "rows":[["hello","3"],["world","1"]]}]}` — per output, the first rows of its latest batch,
//! each row a list of cells (a pair is `[key, value]`). The pipeline bounds what it keeps.
//!
//! # The page
//!
//! The page polls `/topology`, `/metrics` and `/pipelines` once a second. It draws the topology
//! (sources → channels → sinks / pipelines), keeps the last five minutes of samples in the
//! browser and charts per-component rates (differences of Flume's cumulative counters) and each
//! channel's fill, and shows each pipeline's latest results as a table. When a poll fails (the
//! agent stopped or restarts) it says "disconnected" and keeps polling; a restarted agent's
//! counters start again from zero, which the page detects (a counter going down) and treats as
//! a new series instead of a negative rate.
//!
//! The page also keeps its state in the DOM for tests and scripts: `#status` (`connected` /
//! `disconnected`), `data-polls` on `<body>`, `data-points` on each chart, and the text of
//! `#errors` (any script error the page caught).

use std::collections::BTreeMap;

use serde_json::Value;

use super::registry::MetricsRegistry;

/// The status page (`/`).
pub const PAGE: &str = include_str!("status.html");

/// The `/pipelines` JSON: `{"<name>": details}` for every group with
/// [`CounterGroup::details`](super::CounterGroup::details).
pub fn render_pipelines(registry: &MetricsRegistry) -> String {
    let out: BTreeMap<String, Value> = registry
        .groups()
        .iter()
        .filter_map(|g| g.details().map(|d| (g.name().to_string(), d)))
        .collect();
    serde_json::to_string(&out).unwrap_or_else(|_| "{}".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained() {
        // Nothing fetched from elsewhere: no absolute URL in src/href, no CDN.
        for needle in ["src=\"http", "href=\"http", "//cdn", "@import"] {
            assert!(!PAGE.contains(needle), "the page refers to {needle}");
        }
        for endpoint in ["/topology", "/metrics", "/pipelines"] {
            assert!(PAGE.contains(endpoint), "the page does not poll {endpoint}");
        }
    }
}
