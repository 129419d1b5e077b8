//! The counters in the Prometheus text exposition format (version 0.0.4).
//!
//! Every numeric attribute of every counter group becomes one sample:
//!
//! ```text
//! # TYPE flume_source_event_received_count counter
//! flume_source_event_received_count{component="r1"} 2
//! ```
//!
//! The name is `flume_<kind>_<attribute>`: the kind lower-cased (`source`, `channel`, `sink`)
//! and the Flume attribute name turned from CamelCase into snake_case
//! (`EventReceivedCount` → `event_received_count`, `ChannelFillPercentage` →
//! `channel_fill_percentage`). The `component` label is the component name. The attributes a
//! group lists in [`CounterGroup::gauges`](super::counters::CounterGroup::gauges) (sizes,
//! capacities, open connections, start/stop times, health flags; a pipeline's last-batch
//! figures, timings, state keys and watermark lag) are typed `gauge`, everything else
//! `counter`. Non-numeric attributes (`Type`, FileChannel's `Open`, which is `true`/`false`)
//! are left out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::registry::MetricsRegistry;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `EventReceivedCount` → `event_received_count`; anything outside `[a-zA-Z0-9_]` → `_`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

/// The Prometheus metric name for a Flume attribute of a kind (`SOURCE`, `EventReceivedCount`).
pub fn metric_name(kind: &str, attribute: &str) -> String {
    format!(
        "flume_{}_{}",
        snake_case(&kind.to_ascii_lowercase()),
        snake_case(attribute)
    )
}

fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// One metric: (is a gauge, Flume attribute name, samples as (component, value)).
type Family = (bool, &'static str, Vec<(String, String)>);

/// Renders every counter group of `registry` as Prometheus text, metrics sorted by name and
/// samples by component.
pub fn render(registry: &MetricsRegistry) -> String {
    let mut metrics: BTreeMap<String, Family> = BTreeMap::new();
    for g in registry.groups() {
        for (attr, value) in g.attributes() {
            let Ok(v) = value.trim().parse::<f64>() else {
                continue;
            };
            let text = if value.contains(['.', 'E', 'e']) || !v.is_finite() {
                match v {
                    x if x.is_nan() => "NaN".to_string(),
                    x if x == f64::INFINITY => "+Inf".to_string(),
                    x if x == f64::NEG_INFINITY => "-Inf".to_string(),
                    x => format!("{x:?}"),
                }
            } else {
                value.trim().to_string()
            };
            let entry = metrics
                .entry(metric_name(g.kind(), attr))
                .or_insert_with(|| (g.gauges().contains(&attr), attr, Vec::new()));
            entry.2.push((g.name().to_string(), text));
        }
    }
    let mut out = String::new();
    for (name, (gauge, attr, mut samples)) in metrics {
        samples.sort();
        let _ = writeln!(out, "# HELP {name} Flume {attr}");
        let _ = writeln!(
            out,
            "# TYPE {name} {}",
            if gauge { "gauge" } else { "counter" }
        );
        for (component, value) in samples {
            let _ = writeln!(
                out,
                "{name}{{component=\"{}\"}} {value}",
                escape_label(&component)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            metric_name("SOURCE", "EventReceivedCount"),
            "flume_source_event_received_count"
        );
        assert_eq!(
            metric_name("CHANNEL", "ChannelFillPercentage"),
            "flume_channel_channel_fill_percentage"
        );
        assert_eq!(snake_case("EventReadFail"), "event_read_fail");
        assert_eq!(snake_case("HTTPServerCount"), "http_server_count");
        assert_eq!(snake_case("Open"), "open");
        assert_eq!(snake_case("a.b-c"), "a_b_c");
        assert_eq!(metric_name("SINK_PROCESSOR", "X"), "flume_sink_processor_x");
    }

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
