//! Version vectors: the causal history of one replicated value.
//!
//! Each node keeps one counter for the whole repository (its change sequence),
//! so a version vector entry `n: c` means "includes node n's write number c and
//! everything n had seen before it".

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::NodeId;

/// A version vector: per node, the last write counter of that node this version has seen.
/// It orders versions by causality (`compare`), so concurrent writes are told from
/// successive ones without any clock.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VersionVector(BTreeMap<NodeId, u64>);

impl VersionVector {
    /// The empty vector: a version that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of `node` in this vector (0 when absent).
    pub fn get(&self, node: &NodeId) -> u64 {
        self.0.get(node).copied().unwrap_or(0)
    }

    /// Records `node`'s write number `counter`. Counters only grow: a smaller
    /// value is ignored, which keeps `join` and `record` commutative.
    pub fn record(&mut self, node: NodeId, counter: u64) {
        let slot = self.0.entry(node).or_insert(0);
        *slot = (*slot).max(counter);
    }

    /// Forgets `node`'s writes after number `counter`: the history as it was
    /// before them (0 removes the node).
    pub fn cap(&mut self, node: NodeId, counter: u64) {
        match counter {
            0 => {
                self.0.remove(&node);
            }
            _ => {
                if let Some(slot) = self.0.get_mut(&node) {
                    *slot = (*slot).min(counter);
                }
            }
        }
    }

    /// Point-wise maximum: the history that includes both.
    pub fn join(&mut self, other: &VersionVector) {
        for (node, counter) in &other.0 {
            self.record(*node, *counter);
        }
    }

    /// True when this history includes all of `other`'s.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(node, c)| self.get(node) >= *c)
    }

    /// The causal order: `Some(Less)` when `self` happened before `other`,
    /// `None` when they are concurrent.
    pub fn causal_cmp(&self, other: &VersionVector) -> Option<Ordering> {
        match (self.dominates(other), other.dominates(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Greater),
            (false, true) => Some(Ordering::Less),
            (false, false) => None,
        }
    }

    /// The node slots with their counters, in node id order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &u64)> {
        self.0.iter()
    }

    /// Number of nodes with a slot.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a version that has seen no write.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for VersionVector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(n, c)| (n.short(), c)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u8) -> NodeId {
        NodeId([n; 32])
    }

    #[test]
    fn causal_order() {
        let mut a = VersionVector::new();
        a.record(node(1), 1);
        let mut b = a.clone();
        b.record(node(2), 2);
        assert_eq!(a.causal_cmp(&b), Some(Ordering::Less));
        assert_eq!(b.causal_cmp(&a), Some(Ordering::Greater));
        let mut c = a.clone();
        c.record(node(3), 3);
        assert_eq!(b.causal_cmp(&c), None);
        let mut joined = b.clone();
        joined.join(&c);
        assert!(joined.dominates(&b) && joined.dominates(&c));
        assert_eq!(a.causal_cmp(&a), Some(Ordering::Equal));
    }

    #[test]
    fn record_never_goes_back() {
        let mut a = VersionVector::new();
        a.record(node(1), 5);
        a.record(node(1), 3);
        assert_eq!(a.get(&node(1)), 5);
    }
}
