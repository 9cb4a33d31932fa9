//! A multi-value register: the replicated cell behind a file's path and its
//! content.
//!
//! A write supersedes every version its writer had seen; writes nobody saw
//! side by side stay side by side (siblings) until a later write that saw them
//! all settles them. Merge is a set union minus dominated versions, so it is
//! commutative, associative and idempotent, and no concurrent write is ever
//! dropped silently: this is where "conflicts are kept" comes from.

use serde::{Deserialize, Deserializer, Serialize};

use super::{NodeId, VersionVector};

/// One version of a register's value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Versioned<T> {
    /// The version that wrote the value.
    pub version: VersionVector,
    /// The value written.
    pub value: T,
    /// The node that made this write.
    pub by: NodeId,
    /// Wall-clock time of the write, milliseconds since the Unix epoch. For people
    /// and for deterministic tie-breaks only; never used for causality.
    pub at_ms: i64,
}

/// The versions of a value that no other version dominates, in canonical order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct MvRegister<T> {
    versions: Vec<Versioned<T>>,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MvRegister<T> {
    /// Decoding refuses a register without a version, which no write makes
    /// and every reader of a register relies on (`winner`): a peer's batch
    /// or a damaged state database holding one fails to decode instead of
    /// panicking later. (Dominated or unsorted versions are restored by
    /// `normalized`, as a peer may send them without breaking anything.)
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Parts<T> {
            versions: Vec<Versioned<T>>,
        }
        let Parts { versions } = Parts::deserialize(deserializer)?;
        if versions.is_empty() {
            return Err(serde::de::Error::custom("a register holds no version"));
        }
        Ok(MvRegister { versions })
    }
}

impl<T: Clone + Ord> MvRegister<T> {
    /// A register holding one first write.
    pub fn new(value: T, by: NodeId, counter: u64, at_ms: i64) -> Self {
        let mut version = VersionVector::new();
        version.record(by, counter);
        MvRegister {
            versions: vec![Versioned {
                version,
                value,
                by,
                at_ms,
            }],
        }
    }

    /// Rebuilds a register from untrusted parts (e.g. a peer's message),
    /// restoring the invariants: no dominated version, no duplicate, canonical order.
    /// Returns `None` when nothing is left.
    pub fn from_versions(versions: Vec<Versioned<T>>) -> Option<Self> {
        (!versions.is_empty()).then(|| MvRegister { versions }.normalized())
    }

    /// The same versions with the invariants restored (no dominated or
    /// duplicate version, canonical order), for a register decoded from
    /// untrusted bytes.
    pub fn normalized(&self) -> Self {
        let mut register = MvRegister {
            versions: Vec::with_capacity(self.versions.len()),
        };
        for v in &self.versions {
            register.insert(v.clone());
        }
        register
    }

    /// Writes `value` as `by`'s write number `counter`, superseding every
    /// version currently held (the writer has seen them all).
    pub fn write(&mut self, value: T, by: NodeId, counter: u64, at_ms: i64) {
        let mut version = self.joined_version();
        version.record(by, counter);
        self.versions = vec![Versioned {
            version,
            value,
            by,
            at_ms,
        }];
    }

    /// Writes `value` as `by`'s write number `counter`, made without having
    /// seen any version held now: an edit of a copy that those versions
    /// superseded, made before they arrived (a watcher's commit comes a
    /// quiet period after the edit, and a merge may land in between). The
    /// new version follows everything the held versions followed, but none
    /// of them, so they stay, in conflict with it: nothing is lost.
    ///
    /// Why this is exact: each held version includes its writer's own write,
    /// which the edited copy had not seen; so the copy's history has at most
    /// that writer's previous write, and the new version keeps no more.
    pub fn write_unseen(&mut self, value: T, by: NodeId, counter: u64, at_ms: i64) {
        let mut version = self.joined_version();
        for held in &self.versions {
            version.cap(held.by, held.version.get(&held.by).saturating_sub(1));
        }
        version.record(by, counter);
        self.insert(Versioned {
            version,
            value,
            by,
            at_ms,
        });
    }

    /// Folds in another replica's versions.
    pub fn merge(&mut self, other: &MvRegister<T>) {
        for v in &other.versions {
            self.insert(v.clone());
        }
    }

    fn insert(&mut self, candidate: Versioned<T>) {
        let dominated = self.versions.iter().any(|held| {
            held.version.dominates(&candidate.version)
                && (held.version != candidate.version || held == &candidate)
        });
        if dominated {
            return;
        }
        self.versions.retain(|held| {
            !candidate.version.dominates(&held.version) || held.version == candidate.version
        });
        let at = self
            .versions
            .binary_search(&candidate)
            .unwrap_or_else(|pos| pos);
        self.versions.insert(at, candidate);
    }

    /// The history that includes every version held.
    pub fn joined_version(&self) -> VersionVector {
        let mut joined = VersionVector::new();
        for v in &self.versions {
            joined.join(&v.version);
        }
        joined
    }

    /// The current versions, at least one; more than one is a conflict.
    pub fn versions(&self) -> &[Versioned<T>] {
        &self.versions
    }

    /// More than one version: concurrent writes not settled yet.
    pub fn is_conflict(&self) -> bool {
        self.versions.len() > 1
    }

    /// A deterministic pick among siblings, the same on every node: the latest
    /// write by wall clock, ties broken by node id, then by value.
    pub fn winner(&self) -> &Versioned<T> {
        self.versions
            .iter()
            .max_by(|a, b| (a.at_ms, a.by, &a.value).cmp(&(b.at_ms, b.by, &b.value)))
            .expect("a register always holds at least one version")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: u8) -> NodeId {
        NodeId([n; 32])
    }

    /// B holds "draft"; A's "v2" (written on top of it) is merged at B
    /// before B's watcher commits B's own edit of its draft copy.
    #[test]
    fn a_write_unseen_is_concurrent_with_what_arrived_and_follows_its_base() {
        let (a, b, c) = (node(1), node(2), node(3));
        let mut draft = MvRegister::new("draft".to_string(), c, 5, 0);
        draft.write("draft 2".into(), b, 3, 1);
        let base = draft.joined_version();
        let mut at_b = draft.clone();
        let mut at_a = draft.clone();
        at_a.write("v2".into(), a, 9, 2);
        at_a.write("v3".into(), a, 10, 3);
        at_b.merge(&at_a);
        assert_eq!(at_b.winner().value, "v3");
        at_b.write_unseen("edited at b".into(), b, 7, 4);
        assert!(at_b.is_conflict(), "both kept: {at_b:?}");
        let ours = at_b.versions().iter().find(|v| v.by == b).unwrap();
        let theirs = at_b.versions().iter().find(|v| v.by == a).unwrap();
        assert_eq!(ours.version.causal_cmp(&theirs.version), None);
        assert!(
            ours.version.dominates(&base),
            "it follows the draft it edited"
        );
        // Everywhere the same outcome, whatever the order of merging.
        at_a.merge(&at_b);
        assert_eq!(at_a, at_b);
    }

    #[test]
    fn later_write_supersedes_and_concurrent_writes_stay() {
        let mut a = MvRegister::new("v1".to_string(), node(1), 1, 0);
        let mut b = a.clone();
        a.write("a".into(), node(1), 2, 10);
        b.write("b".into(), node(2), 1, 20);
        let mut merged = a.clone();
        merged.merge(&b);
        assert!(merged.is_conflict());
        assert_eq!(merged.winner().value, "b");
        // A write that saw both settles the conflict.
        merged.write("settled".into(), node(1), 3, 30);
        assert!(!merged.is_conflict());
        a.merge(&merged);
        b.merge(&merged);
        assert_eq!(a, merged);
        assert_eq!(b, merged);
    }

    #[test]
    fn decoding_refuses_an_empty_register() {
        let one = MvRegister::new(7u32, node(1), 1, 0);
        let bytes = postcard::to_stdvec(&one).unwrap();
        assert_eq!(postcard::from_bytes::<MvRegister<u32>>(&bytes), Ok(one));
        // A count of zero versions: what a damaged row or a hostile peer sends.
        let empty = postcard::from_bytes::<MvRegister<u32>>(&[0]);
        assert!(empty.is_err(), "{empty:?}");
    }

    #[test]
    fn from_versions_drops_dominated_and_duplicates() {
        let first = MvRegister::new(1u32, node(1), 1, 0);
        let mut second = first.clone();
        second.write(2, node(1), 2, 0);
        let mut parts = first.versions().to_vec();
        parts.extend(second.versions().iter().cloned());
        parts.extend(second.versions().iter().cloned());
        let rebuilt = MvRegister::from_versions(parts.clone()).unwrap();
        assert_eq!(rebuilt, second);
        let raw = MvRegister { versions: parts };
        assert_eq!(raw.normalized(), second);
        assert!(MvRegister::<u32>::from_versions(vec![]).is_none());
    }
}
