//! How a [`Batch`] is encoded: node ids once, in a table, and each entry's
//! references to them as indices.
//!
//! An entry names nodes five times or more (the writer of each register
//! version, each version vector, each holder): 32 bytes each, about 160 of
//! the ~290 bytes of a typical entry. A batch of up to 1,024 entries names
//! a handful of nodes, so each is sent once and referred to by a varint
//! index, a byte for up to 127 nodes: an entry costs ~130 bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Batch, HolderRun};
use crate::model::{
    Content, FileEntry, FileId, Holding, MvRegister, NodeId, NodeRecord, RepoPath, VersionVector,
    Versioned,
};

/// A version vector as pairs of (node index, counter).
type WireVector = Vec<(u32, u64)>;

#[derive(Serialize, Deserialize)]
struct WireVersioned<T> {
    version: WireVector,
    value: T,
    by: u32,
    at_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct WireEntry {
    id: FileId,
    path: Vec<WireVersioned<RepoPath>>,
    content: Vec<WireVersioned<Content>>,
    holders: Vec<(u32, Holding)>,
    deletion_seen: Vec<(u32, WireVector)>,
}

#[derive(Deserialize)]
struct WireBatch {
    node_table: Vec<NodeId>,
    entries: Vec<WireEntry>,
    nodes: Vec<NodeRecord>,
    upto: u64,
    runs: Vec<HolderRun>,
}

/// [`WireBatch`] as encoded, borrowing what needs no translation.
#[derive(Serialize)]
struct WireBatchRef<'a> {
    node_table: Vec<NodeId>,
    entries: Vec<WireEntry>,
    nodes: &'a [NodeRecord],
    upto: u64,
    runs: &'a [HolderRun],
}

/// The node table of `entries`: every node they name, sorted, once.
fn node_table(entries: &[FileEntry]) -> Vec<NodeId> {
    let mut table = Vec::new();
    for entry in entries {
        let versions = entry
            .path
            .versions()
            .iter()
            .map(|v| (&v.version, v.by))
            .chain(entry.content.versions().iter().map(|v| (&v.version, v.by)));
        for (version, by) in versions {
            table.push(by);
            table.extend(version.iter().map(|(node, _)| *node));
        }
        table.extend(entry.holders.keys().copied());
        for (node, seen) in &entry.deletion_seen {
            table.push(*node);
            table.extend(seen.iter().map(|(n, _)| *n));
        }
    }
    table.sort_unstable();
    table.dedup();
    table
}

/// Turns node ids into indices of one table.
struct Indexer<'a>(&'a [NodeId]);

impl Indexer<'_> {
    fn index(&self, node: &NodeId) -> u32 {
        self.0
            .binary_search(node)
            .expect("the table holds every node of the batch") as u32
    }

    fn vector(&self, vector: &VersionVector) -> WireVector {
        vector.iter().map(|(n, c)| (self.index(n), *c)).collect()
    }

    fn versions<T: Clone>(&self, versions: &[Versioned<T>]) -> Vec<WireVersioned<T>> {
        versions
            .iter()
            .map(|v| WireVersioned {
                version: self.vector(&v.version),
                value: v.value.clone(),
                by: self.index(&v.by),
                at_ms: v.at_ms,
            })
            .collect()
    }

    fn entry(&self, entry: &FileEntry) -> WireEntry {
        WireEntry {
            id: entry.id,
            path: self.versions(entry.path.versions()),
            content: self.versions(entry.content.versions()),
            holders: entry
                .holders
                .iter()
                .map(|(n, h)| (self.index(n), h.clone()))
                .collect(),
            deletion_seen: entry
                .deletion_seen
                .iter()
                .map(|(n, seen)| (self.index(n), self.vector(seen)))
                .collect(),
        }
    }
}

/// Turns indices back into node ids, refusing one past the table.
struct Resolver<'a>(&'a [NodeId]);

impl Resolver<'_> {
    fn node(&self, index: u32) -> Result<NodeId, String> {
        self.0.get(index as usize).copied().ok_or_else(|| {
            format!(
                "node index {index} is past the batch's node table of {}",
                self.0.len()
            )
        })
    }

    fn vector(&self, pairs: WireVector) -> Result<VersionVector, String> {
        let mut vector = VersionVector::new();
        for (index, counter) in pairs {
            vector.record(self.node(index)?, counter);
        }
        Ok(vector)
    }

    fn register<T: Clone + Ord>(
        &self,
        versions: Vec<WireVersioned<T>>,
    ) -> Result<MvRegister<T>, String> {
        let versions = versions
            .into_iter()
            .map(|v| {
                Ok(Versioned {
                    version: self.vector(v.version)?,
                    value: v.value,
                    by: self.node(v.by)?,
                    at_ms: v.at_ms,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        MvRegister::from_versions(versions).ok_or_else(|| "a register holds no version".into())
    }

    fn entry(&self, wire: WireEntry) -> Result<FileEntry, String> {
        Ok(FileEntry {
            id: wire.id,
            path: self.register(wire.path)?,
            content: self.register(wire.content)?,
            holders: wire
                .holders
                .into_iter()
                .map(|(n, h)| Ok((self.node(n)?, h)))
                .collect::<Result<_, String>>()?,
            deletion_seen: wire
                .deletion_seen
                .into_iter()
                .map(|(n, seen)| Ok((self.node(n)?, self.vector(seen)?)))
                .collect::<Result<_, String>>()?,
        })
    }
}

impl Serialize for Batch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let node_table = node_table(&self.entries);
        let indexer = Indexer(&node_table);
        let entries = self.entries.iter().map(|e| indexer.entry(e)).collect();
        WireBatchRef {
            node_table,
            entries,
            nodes: &self.nodes,
            upto: self.upto,
            runs: &self.runs,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Batch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireBatch::deserialize(deserializer)?;
        let resolver = Resolver(&wire.node_table);
        let entries = wire
            .entries
            .into_iter()
            .map(|e| resolver.entry(e))
            .collect::<Result<_, String>>()
            .map_err(serde::de::Error::custom)?;
        Ok(Batch {
            entries,
            nodes: wire.nodes,
            upto: wire.upto,
            runs: wire.runs,
        })
    }
}
