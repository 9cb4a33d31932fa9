//! A file's replicated entry: where it lives, what it contains, who holds it.
//!
//! Path and content are separate registers under one stable [`FileId`], so a
//! rename and a concurrent edit touch different registers and merge cleanly.
//! Holders are per-node slots that only their owner writes, merged by the
//! owner's counter: location tracking needs no conflict handling at all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    ContentHash, FileId, MvRegister, NodeId, PathError, RepoPath, VersionVector, Versioned,
};

/// What a file holds in one version: bytes with the metadata users rely on
/// (DESIGN.md, invariant 10), a symbolic link, or nothing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Content {
    /// The file exists with these bytes.
    File {
        /// blake3 of the bytes.
        hash: ContentHash,
        /// Length in bytes.
        size: u64,
        /// Modification time when this version was recorded (ns since the
        /// epoch), restored on other locations like `rsync -t` does.
        mtime_ns: i64,
        /// The owner's executable bit; the other mode bits follow each
        /// location's umask. A `chmod +x` alone is a new version with the
        /// same bytes, so it travels without any content.
        executable: bool,
    },
    /// The file was deleted (a tombstone).
    Deleted,
    /// A symbolic link: its target, as text, never followed.
    Link {
        /// The link's text, as read; never followed.
        target: LinkTarget,
    },
}

impl Content {
    /// What holders hold of this version: the bytes' blake3 for a file, a
    /// hash of the target for a link (so that holding works alike).
    pub fn hash(&self) -> Option<ContentHash> {
        match self {
            Content::File { hash, .. } => Some(*hash),
            Content::Link { target } => Some(target.hash()),
            Content::Deleted => None,
        }
    }

    /// The bytes of a file version: hash, size and mtime; `None` for a link
    /// or a deletion (nothing to transfer).
    pub fn bytes(&self) -> Option<(ContentHash, u64, i64)> {
        match self {
            Content::File {
                hash,
                size,
                mtime_ns,
                ..
            } => Some((*hash, *size, *mtime_ns)),
            _ => None,
        }
    }

    /// The size shown for this version (a link's is its target's length).
    pub fn size(&self) -> u64 {
        match self {
            Content::File { size, .. } => *size,
            Content::Link { target } => target.as_str().len() as u64,
            Content::Deleted => 0,
        }
    }

    /// The kind a working-tree file of this version has.
    pub fn kind(&self) -> Option<Kind> {
        match self {
            Content::File {
                executable: false, ..
            } => Some(Kind::File),
            Content::File {
                executable: true, ..
            } => Some(Kind::Executable),
            Content::Link { .. } => Some(Kind::Link),
            Content::Deleted => None,
        }
    }
}

/// What a working-tree file is, as far as Harmony records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A regular file.
    File,
    /// A regular file with an execute bit, restored as such where the file system has one.
    Executable,
    /// A symbolic link (when links are synced).
    Link,
}

impl Kind {
    /// The code stored in the state database.
    pub fn code(self) -> u8 {
        match self {
            Kind::File => 0,
            Kind::Executable => 1,
            Kind::Link => 2,
        }
    }

    /// The kind stored in the state database as `code`; `None` for a code no Harmony writes
    /// (damage).
    pub fn from_code(code: u8) -> Option<Kind> {
        [Kind::File, Kind::Executable, Kind::Link]
            .into_iter()
            .find(|k| k.code() == code)
    }
}

/// Longest link target accepted, in bytes (Linux's PATH_MAX).
pub const MAX_LINK_TARGET: usize = 4096;

/// A symbolic link's target: any non-empty text without NUL up to
/// [`MAX_LINK_TARGET`] bytes, absolute or leading out of the repository
/// included. It is only ever written as a link's text, never resolved, so
/// no target can make Harmony read or write outside the location.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct LinkTarget(String);

impl LinkTarget {
    /// Checks `target` against the rules above.
    pub fn new(target: &str) -> Result<Self, PathError> {
        let invalid = |reason| PathError::Invalid {
            path: target.to_owned(),
            reason,
        };
        if target.is_empty() {
            return Err(invalid("the link target is empty"));
        }
        if target.len() > MAX_LINK_TARGET {
            return Err(invalid("the link target is longer than 4096 bytes"));
        }
        if target.contains('\0') {
            return Err(invalid("the link target contains a NUL byte"));
        }
        Ok(LinkTarget(target.to_owned()))
    }

    /// The target as text, as the link holds it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hash holders record for a link to this target.
    pub fn hash(&self) -> ContentHash {
        let mut hasher = blake3::Hasher::new_derive_key("harmony symlink target v1");
        hasher.update(self.0.as_bytes());
        ContentHash(*hasher.finalize().as_bytes())
    }
}

impl<'de> Deserialize<'de> for LinkTarget {
    /// Decoding re-checks the rules, as for paths.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        LinkTarget::new(&text).map_err(serde::de::Error::custom)
    }
}

/// One node's slot in a file's holder map.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Holding {
    /// The content this node holds for the file, `None` if none any more.
    pub hash: Option<ContentHash>,
    /// The holder's own counter at the time it wrote the slot; the larger wins.
    pub counter: u64,
}

/// Who writes, with which counter, at what time: the parts of every local write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The node writing: its slot in the version vector.
    pub node: NodeId,
    /// Its next write counter (the vector's new value for that slot).
    pub counter: u64,
    /// Wall-clock time of the write, ms since the Unix epoch: only for picking a winner
    /// among concurrent path claims, never for ordering versions.
    pub at_ms: i64,
}

/// One file of the repository as replicated: a stable id (so renames are not delete + add),
/// its path and content as multi-value registers (concurrent writes are kept side by side,
/// a conflict), and who holds which content.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileEntry {
    /// Stable over renames and edits: what sync and the local records key the file by.
    pub id: FileId,
    /// Its path; several values when locations renamed it concurrently.
    pub path: MvRegister<RepoPath>,
    /// Its content (or deletion); several values when locations wrote it concurrently.
    pub content: MvRegister<Content>,
    /// Per node, the content it holds for this file: where a get finds the bytes.
    pub holders: BTreeMap<NodeId, Holding>,
    /// Acknowledgements of the deletion: each node, once it has seen the file
    /// deleted, records the content history it saw. When every known node's
    /// acknowledgement covers the current history, the tombstone is stable
    /// and may be collected. Each node writes only its own slot.
    pub deletion_seen: BTreeMap<NodeId, VersionVector>,
}

/// The content of a file as all known versions put it.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved<'a> {
    /// One current version.
    File(&'a Versioned<Content>),
    /// Every current version is a deletion.
    Deleted,
    /// Concurrent versions with content: a conflict, each side kept.
    Conflict(Vec<&'a Versioned<Content>>),
}

impl FileEntry {
    /// A file first seen here.
    pub fn new_file(id: FileId, path: RepoPath, content: Content, stamp: Stamp) -> Self {
        let mut entry = FileEntry {
            id,
            path: MvRegister::new(path, stamp.node, stamp.counter, stamp.at_ms),
            content: MvRegister::new(content.clone(), stamp.node, stamp.counter, stamp.at_ms),
            holders: BTreeMap::new(),
            deletion_seen: BTreeMap::new(),
        };
        entry.set_holding(stamp.node, content.hash(), stamp.counter);
        entry
    }

    /// The highest write of `node` that any version vector of this entry
    /// includes. A receiver compares it with its own write counter: a peer
    /// that credits this node with a write it never made (a forged counter,
    /// up to `u64::MAX`) would make every later write of this node look
    /// equal to the forgery, a conflict that no edit here could settle.
    pub fn credited_writes(&self, node: &NodeId) -> u64 {
        self.path
            .versions()
            .iter()
            .map(|v| &v.version)
            .chain(self.content.versions().iter().map(|v| &v.version))
            .chain(self.deletion_seen.values())
            .map(|vector| vector.get(node))
            .max()
            .unwrap_or(0)
    }

    /// Records a local rename or move.
    pub fn rename(&mut self, path: RepoPath, stamp: Stamp) {
        self.path
            .write(path, stamp.node, stamp.counter, stamp.at_ms);
    }

    /// Records new local content (an edit, or a deletion with `Content::Deleted`);
    /// the writer holds exactly what it wrote.
    pub fn set_content(&mut self, content: Content, stamp: Stamp) {
        let hash = content.hash();
        self.content
            .write(content, stamp.node, stamp.counter, stamp.at_ms);
        self.set_holding(stamp.node, hash, stamp.counter);
    }

    /// Records content read from this location's tree (an edit, or a
    /// deletion with `Content::Deleted`), which changed the copy the
    /// writer's holder slot says it has. When that copy is no version held
    /// now (newer ones arrived since it was written), the change was made
    /// without seeing them and is concurrent with them
    /// ([`MvRegister::write_unseen`]): a conflict, never a silent overwrite.
    pub fn set_local_content(&mut self, content: Content, stamp: Stamp) {
        let held = self.holders.get(&stamp.node).and_then(|h| h.hash);
        // No copy held (a file put at the path by hand): a new version.
        let seen = held.is_none()
            || self
                .content
                .versions()
                .iter()
                .any(|v| v.value.hash() == held);
        if seen {
            return self.set_content(content, stamp);
        }
        let hash = content.hash();
        self.content
            .write_unseen(content, stamp.node, stamp.counter, stamp.at_ms);
        self.set_holding(stamp.node, hash, stamp.counter);
    }

    /// Records what `node` holds. Only `node` itself may call this for its slot.
    pub fn set_holding(&mut self, node: NodeId, hash: Option<ContentHash>, counter: u64) {
        let slot = self
            .holders
            .entry(node)
            .or_insert(Holding { hash, counter });
        if counter >= slot.counter {
            *slot = Holding { hash, counter };
        }
    }

    /// Folds in another replica of the same file.
    pub fn merge(&mut self, other: &FileEntry) {
        debug_assert_eq!(self.id, other.id);
        self.path.merge(&other.path);
        self.content.merge(&other.content);
        for (node, theirs) in &other.holders {
            self.set_holding(*node, theirs.hash, theirs.counter);
        }
        for (node, seen) in &other.deletion_seen {
            self.deletion_seen.entry(*node).or_default().join(seen);
        }
    }

    /// Records that `me` has seen this file deleted; false when it already had
    /// (or the file is not deleted).
    pub fn acknowledge_deletion(&mut self, me: NodeId) -> bool {
        if !self.is_deleted() {
            return false;
        }
        let history = self.content.joined_version();
        let seen = self.deletion_seen.entry(me).or_default();
        if seen.dominates(&history) {
            return false;
        }
        seen.join(&history);
        true
    }

    /// True when the file is deleted and every node that could still hold an
    /// older version has acknowledged the deletion: `known` nodes, the
    /// file's holders and every writer of its content.
    pub fn deletion_is_stable<'a>(&self, known: impl IntoIterator<Item = &'a NodeId>) -> bool {
        if !self.is_deleted() {
            return false;
        }
        let history = self.content.joined_version();
        let acknowledged = |node: &NodeId| {
            self.deletion_seen
                .get(node)
                .is_some_and(|seen| seen.dominates(&history))
        };
        known.into_iter().all(acknowledged)
            && self.holders.keys().all(acknowledged)
            && history.iter().all(|(node, _)| acknowledged(node))
    }

    /// Folds in a replica received from a peer. `me`'s own holder slot is
    /// left alone: this node alone knows what it holds.
    pub fn merge_remote(&mut self, other: &FileEntry, me: NodeId) {
        let mine = self.holders.get(&me).cloned();
        let my_ack = self.deletion_seen.get(&me).cloned();
        self.merge(other);
        match my_ack {
            Some(ack) => {
                self.deletion_seen.insert(me, ack);
            }
            None => {
                self.deletion_seen.remove(&me);
            }
        }
        match mine {
            Some(slot) => {
                self.holders.insert(me, slot);
            }
            None => {
                self.holders.remove(&me);
            }
        }
    }

    /// Restores the invariants of an entry decoded from untrusted bytes:
    /// each register canonical (no dominated or duplicate version, sorted;
    /// decoding already refused an empty one), and no empty acknowledgement.
    pub fn normalized(self) -> FileEntry {
        FileEntry {
            id: self.id,
            path: self.path.normalized(),
            content: self.content.normalized(),
            holders: self.holders,
            deletion_seen: self
                .deletion_seen
                .into_iter()
                .filter(|(_, seen)| !seen.is_empty())
                .collect(),
        }
    }

    /// The path the file is shown and stored under: the deterministic winner when
    /// concurrent renames disagree (see [`MvRegister::winner`]).
    pub fn current_path(&self) -> &RepoPath {
        &self.path.winner().value
    }

    /// The file's content per its current versions. An edit concurrent with a
    /// deletion keeps the edit: deletions count only when nothing else is left.
    pub fn resolved(&self) -> Resolved<'_> {
        let files: Vec<_> = self
            .content
            .versions()
            .iter()
            .filter(|v| !matches!(v.value, Content::Deleted))
            .collect();
        match files.len() {
            0 => Resolved::Deleted,
            1 => Resolved::File(files[0]),
            _ => Resolved::Conflict(files),
        }
    }

    /// True when every current version of the content is a deletion (a tombstone).
    pub fn is_deleted(&self) -> bool {
        matches!(self.resolved(), Resolved::Deleted)
    }

    /// Nodes that hold `hash`.
    pub fn holders_of(&self, hash: ContentHash) -> impl Iterator<Item = &NodeId> {
        self.holders
            .iter()
            .filter(move |(_, h)| h.hash == Some(hash))
            .map(|(node, _)| node)
    }

    /// The hash of the content's one current version, when there is exactly
    /// one and it has bytes or a link target: what a holder slot sent in a
    /// compact run (`proto::HolderRun`) stands for.
    pub fn single_content_hash(&self) -> Option<ContentHash> {
        match self.content.versions() {
            [only] => only.value.hash(),
            _ => None,
        }
    }

    /// True when the two replicas differ at most in their holder slots:
    /// what a peer that has `other` needs of `self` is its slots alone.
    pub fn differs_only_in_holders(&self, other: &FileEntry) -> bool {
        self.id == other.id
            && self.path == other.path
            && self.content == other.content
            && self.deletion_seen == other.deletion_seen
    }

    /// Order-independent fingerprint of this entry, for state digests: equal
    /// entries give equal digests whatever order their versions arrived in.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = postcard::to_stdvec(self).expect("an entry always encodes");
        let mut hasher = blake3::Hasher::new_derive_key("harmony file entry v1");
        hasher.update(&bytes);
        *hasher.finalize().as_bytes()
    }
}
