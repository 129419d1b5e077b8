//! The agent's topology as plain data, for the status page's `/topology` (see
//! [`super::status`] for the JSON shape). The agent describes itself with these types and
//! hands the value to [`MetricsRegistry::set_topology`](super::MetricsRegistry::set_topology);
//! nothing here knows of configurations, so the metrics layer stays below the agent.

use serde_json::json;

/// A source in the [`Topology`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopologySource {
    /// The component name (`r1`).
    pub name: String,
    /// Its type as configured (`avro`, `netcat`).
    pub type_name: String,
    /// The channels it writes to.
    pub channels: Vec<String>,
}

/// A channel in the [`Topology`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopologyChannel {
    /// The component name (`c1`).
    pub name: String,
    /// Its type (`memory`, `file`).
    pub type_name: String,
}

/// A sink in the [`Topology`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopologySink {
    /// The component name (`k1`).
    pub name: String,
    /// Its type (`avro`, `file_roll`).
    pub type_name: String,
    /// The channel it takes from.
    pub channel: String,
    /// The sink group it belongs to, if any.
    pub group: Option<String>,
}

/// A stream-processing pipeline in the [`Topology`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopologyPipeline {
    /// The pipeline name (its metrics group is `PIPELINE.<name>`).
    pub name: String,
    /// The channel it takes from.
    pub channel: String,
}

/// What an agent runs and how it is wired, as plain data (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// The agent name (`-n`).
    pub agent: String,
    /// Sources.
    pub sources: Vec<TopologySource>,
    /// Channels.
    pub channels: Vec<TopologyChannel>,
    /// Sinks.
    pub sinks: Vec<TopologySink>,
    /// Pipelines.
    pub pipelines: Vec<TopologyPipeline>,
}

impl Topology {
    /// The `/topology` JSON (lists sorted by name).
    pub fn to_json(&self) -> String {
        let mut t = self.clone();
        t.sources.sort_by(|a, b| a.name.cmp(&b.name));
        t.channels.sort_by(|a, b| a.name.cmp(&b.name));
        t.sinks.sort_by(|a, b| a.name.cmp(&b.name));
        t.pipelines.sort_by(|a, b| a.name.cmp(&b.name));
        let v = json!({
            "agent": t.agent,
            "sources": t.sources.iter().map(|s| json!({
                "name": s.name, "type": s.type_name, "channels": s.channels,
            })).collect::<Vec<_>>(),
            "channels": t.channels.iter().map(|c| json!({
                "name": c.name, "type": c.type_name,
            })).collect::<Vec<_>>(),
            "sinks": t.sinks.iter().map(|k| json!({
                "name": k.name, "type": k.type_name, "channel": k.channel, "group": k.group,
            })).collect::<Vec<_>>(),
            "pipelines": t.pipelines.iter().map(|p| json!({
                "name": p.name, "channel": p.channel,
            })).collect::<Vec<_>>(),
        });
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn topology_json_is_sorted_and_complete() {
        let t = Topology {
            agent: "a1".into(),
            sources: vec![
                TopologySource {
                    name: "r2".into(),
                    type_name: "netcat".into(),
                    channels: vec!["c1".into()],
                },
                TopologySource {
                    name: "r1".into(),
                    type_name: "avro".into(),
                    channels: vec!["c1".into(), "c2".into()],
                },
            ],
            channels: vec![TopologyChannel {
                name: "c1".into(),
                type_name: "file".into(),
            }],
            sinks: vec![TopologySink {
                name: "k1".into(),
                type_name: "avro".into(),
                channel: "c1".into(),
                group: Some("g1".into()),
            }],
            pipelines: vec![TopologyPipeline {
                name: "wc".into(),
                channel: "c2".into(),
            }],
        };
        let v: Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(v["agent"], "a1");
        assert_eq!(v["sources"][0]["name"], "r1");
        assert_eq!(v["sources"][0]["channels"], json!(["c1", "c2"]));
        assert_eq!(v["sources"][1]["type"], "netcat");
        assert_eq!(v["sinks"][0]["group"], "g1");
        assert_eq!(v["pipelines"][0]["channel"], "c2");
        let empty: Value = serde_json::from_str(&Topology::default().to_json()).unwrap();
        assert_eq!(empty["agent"], "");
        assert_eq!(empty["sinks"], json!([]));
    }
}
