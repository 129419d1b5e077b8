//! The set of counter groups an agent exposes, and the description of its topology that the
//! status page shows (handed in as data by the agent; see [`super::topology`]).

use std::sync::{Arc, Mutex};

use super::counters::CounterGroup;
use super::topology::Topology;

/// Live counter groups, in registration order, and the agent's topology.
#[derive(Default, Clone)]
pub struct MetricsRegistry {
    groups: Arc<Mutex<Vec<Arc<dyn CounterGroup>>>>,
    topology: Arc<Mutex<Topology>>,
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a group (a component being started).
    pub fn register(&self, group: Arc<dyn CounterGroup>) {
        // Poison (all three): a list of counter groups, whole after any push/retain/clone.
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(group);
    }

    /// Removes the group of kind/name (a component being stopped for good).
    pub fn unregister(&self, kind: &str, name: &str) {
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|g| !(g.kind() == kind && g.name() == name));
    }

    /// A snapshot of the groups.
    pub fn groups(&self) -> Vec<Arc<dyn CounterGroup>> {
        self.groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the topology served at `/topology` (the agent calls this after a start, a
    /// reload or a new pipeline).
    pub fn set_topology(&self, topology: Topology) {
        // Poison: a plain value, whole after any assignment.
        *self.topology.lock().unwrap_or_else(|e| e.into_inner()) = topology;
    }

    /// The topology last set (empty until the agent describes itself).
    pub fn topology(&self) -> Topology {
        self.topology
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
