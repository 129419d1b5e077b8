//! The set of counter groups an agent exposes.

use std::sync::{Arc, Mutex};

use super::counters::CounterGroup;

/// Live counter groups, in registration order.
#[derive(Default, Clone)]
pub struct MetricsRegistry {
    groups: Arc<Mutex<Vec<Arc<dyn CounterGroup>>>>,
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
}
