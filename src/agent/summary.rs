//! The periodic one-line summary a running agent logs per flow (`sluicegate agent`, every
//! 10 s by default; `-Dsluicegate.summary.interval=5s` changes it, `--no-summary` or an
//! interval of `0`/`off` turns it off).
//!
//! A *flow* is one channel with the sources that put into it and the sinks that take from it:
//!
//! ```text
//! flow c0: gen 10000/s -> c0 in 10000/s out 9990/s, 120/10000 (1.2%) -> fwd 9990/s; errors 0
//! ```
//!
//! Every figure is read from the metrics counters the components already keep (the ones
//! `/metrics` publishes), so the summary costs nothing on the hot path: rates are the change of
//! `EventAcceptedCount` (source), `EventPutSuccessCount`/`EventTakeSuccessCount` (channel) and
//! `EventDrainSuccessCount` (sink) since the previous summary, divided by the time between them;
//! the fill is `ChannelSize`/`ChannelCapacity`; *errors* is the number of failures counted in
//! the interval (a source's `ChannelWriteFail`, `EventReadFail`, `GenericProcessingFail`; a
//! channel's put/take errors; a sink's `EventWriteFail`, `ConnectionFailedCount`,
//! `ChannelReadFail`). A source whose channel is full counts a `ChannelWriteFail` per refused
//! batch, as Flume does, so sustained back-pressure shows up there.

use std::collections::BTreeMap;
use std::time::Duration;

use super::conf::AgentConfig;
use crate::metrics::MetricsRegistry;

/// The property that sets the interval.
pub const INTERVAL_PROPERTY: &str = "sluicegate.summary.interval";
/// The default interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Parses an interval: `10s`, `500ms`, `2m`, or a bare number of seconds. `0` and `off` mean
/// no summary (`Ok(None)`).
pub fn parse_interval(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim().to_ascii_lowercase();
    if t == "off" || t == "false" || t == "none" {
        return Ok(None);
    }
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t.as_str(), "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{INTERVAL_PROPERTY}={text}: expected e.g. 10s, 500ms, 1m, or off"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" | "min" => n * 60.0,
        _ => {
            return Err(format!(
                "{INTERVAL_PROPERTY}={text}: unknown unit '{unit}' (use ms, s or m)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{INTERVAL_PROPERTY}={text}: must be 0 or more"));
    }
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs.max(0.01))))
}

/// Counter values of every component, keyed by `(kind, name)`.
pub type Snapshot = BTreeMap<(String, String), BTreeMap<String, u64>>;

/// Reads every counter group of `registry` (attributes that are not integers are skipped).
pub fn snapshot(registry: &MetricsRegistry) -> Snapshot {
    registry
        .groups()
        .into_iter()
        .map(|g| {
            let attrs = g
                .attributes()
                .into_iter()
                .filter_map(|(k, v)| v.parse::<u64>().ok().map(|v| (k.to_string(), v)))
                .collect();
            ((g.kind().to_string(), g.name().to_string()), attrs)
        })
        .collect()
}

fn get(s: &Snapshot, kind: &str, name: &str, attr: &str) -> u64 {
    s.get(&(kind.to_string(), name.to_string()))
        .and_then(|a| a.get(attr))
        .copied()
        .unwrap_or(0)
}

fn delta(now: &Snapshot, before: &Snapshot, kind: &str, name: &str, attrs: &[&str]) -> u64 {
    attrs
        .iter()
        .map(|a| get(now, kind, name, a).saturating_sub(get(before, kind, name, a)))
        .sum()
}

fn rate(n: u64, secs: f64) -> String {
    let r = n as f64 / secs.max(1e-3);
    if r >= 100.0 || r == 0.0 {
        format!("{r:.0}/s")
    } else {
        format!("{r:.1}/s")
    }
}

/// One line per channel of `cfg`, comparing `now` with `before` taken `elapsed` earlier.
pub fn lines(
    cfg: &AgentConfig,
    before: &Snapshot,
    now: &Snapshot,
    elapsed: Duration,
) -> Vec<String> {
    let secs = elapsed.as_secs_f64();
    cfg.channels
        .iter()
        .map(|ch| {
            let c = ch.name.as_str();
            let mut errors = delta(now, before, "CHANNEL", c, &["EventPutErrorCount", "EventTakeErrorCount"]);
            let sources: Vec<String> = cfg
                .sources
                .iter()
                .filter(|s| s.channels.iter().any(|n| n == c))
                .map(|s| {
                    errors += delta(
                        now,
                        before,
                        "SOURCE",
                        &s.name,
                        &["ChannelWriteFail", "EventReadFail", "GenericProcessingFail"],
                    );
                    format!("{} {}", s.name, rate(delta(now, before, "SOURCE", &s.name, &["EventAcceptedCount"]), secs))
                })
                .collect();
            let sinks: Vec<String> = cfg
                .sinks
                .iter()
                .filter(|s| s.channel == c)
                .map(|s| {
                    errors += delta(
                        now,
                        before,
                        "SINK",
                        &s.name,
                        &["EventWriteFail", "ConnectionFailedCount", "ChannelReadFail"],
                    );
                    format!("{} {}", s.name, rate(delta(now, before, "SINK", &s.name, &["EventDrainSuccessCount"]), secs))
                })
                .collect();
            let size = get(now, "CHANNEL", c, "ChannelSize");
            let cap = get(now, "CHANNEL", c, "ChannelCapacity");
            let fill = if cap == 0 { 0.0 } else { size as f64 * 100.0 / cap as f64 };
            let none = || "(none)".to_string();
            format!(
                "flow {c}: {} -> {c} in {} out {}, {size}/{cap} ({fill:.1}%) -> {}; errors {errors}",
                if sources.is_empty() { none() } else { sources.join(", ") },
                rate(delta(now, before, "CHANNEL", c, &["EventPutSuccessCount"]), secs),
                rate(delta(now, before, "CHANNEL", c, &["EventTakeSuccessCount"]), secs),
                if sinks.is_empty() { none() } else { sinks.join(", ") },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("10s"), Ok(Some(Duration::from_secs(10))));
        assert_eq!(
            parse_interval("500ms"),
            Ok(Some(Duration::from_millis(500)))
        );
        assert_eq!(parse_interval("2m"), Ok(Some(Duration::from_secs(120))));
        assert_eq!(parse_interval("3"), Ok(Some(Duration::from_secs(3))));
        assert_eq!(parse_interval("0"), Ok(None));
        assert_eq!(parse_interval("off"), Ok(None));
        assert!(parse_interval("10h").is_err());
        assert!(parse_interval("fast").is_err());
    }

    #[test]
    fn one_line_per_channel_from_counter_deltas() {
        let cfg = crate::agent::load_str(
            "a.sources = s\na.channels = c\na.sinks = k\n\
             a.sources.s.type = seq\na.sources.s.channels = c\n\
             a.channels.c.type = memory\na.sinks.k.type = null\na.sinks.k.channel = c\n",
            None,
            "a",
        )
        .unwrap();
        let snap = |acc, put, take, drain, size, fail| -> Snapshot {
            let mut s = Snapshot::new();
            let mut put_attrs = |k: &str, n: &str, v: &[(&str, u64)]| {
                s.insert(
                    (k.into(), n.into()),
                    v.iter().map(|(a, b)| (a.to_string(), *b)).collect(),
                );
            };
            put_attrs(
                "SOURCE",
                "s",
                &[("EventAcceptedCount", acc), ("ChannelWriteFail", fail)],
            );
            put_attrs(
                "CHANNEL",
                "c",
                &[
                    ("EventPutSuccessCount", put),
                    ("EventTakeSuccessCount", take),
                    ("ChannelSize", size),
                    ("ChannelCapacity", 100),
                ],
            );
            put_attrs("SINK", "k", &[("EventDrainSuccessCount", drain)]);
            s
        };
        let before = snap(0, 0, 0, 0, 0, 0);
        let now = snap(2000, 2000, 1950, 1950, 50, 3);
        let l = lines(&cfg, &before, &now, Duration::from_secs(10));
        assert_eq!(
            l,
            vec!["flow c: s 200/s -> c in 200/s out 195/s, 50/100 (50.0%) -> k 195/s; errors 3"]
        );
    }
}
