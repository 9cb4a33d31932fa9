//! `conflicts` and `resolve`: concurrent versions of a file, and files that
//! claim one path, are kept side by side until the user picks; the pick is an
//! ordinary write that supersedes every version it saw, so it syncs like any
//! change.

use serde::Serialize;

use super::{now_ms, Repo};
use crate::error::{Error, Result};
use crate::model::placement::conflict_name;
use crate::model::{
    Content, FileEntry, FileId, NodeId, Placed, RepoPath, Resolved, Stamp, Versioned,
};
use crate::store::Writer;

/// One side of a conflict.
#[derive(Clone, Debug, Serialize)]
pub struct ConflictSide {
    /// Where this side lives in the tree (its conflict name, for a file
    /// that lost a clash for its path).
    pub path: RepoPath,
    /// blake3 of this version's content, hex (empty for a deletion).
    pub hash: String,
    /// Its length in bytes.
    pub size: u64,
    /// The node that wrote this version, and its name if known.
    pub node: String,
    /// The writer's node name, when its record has reached this location.
    pub name: Option<String>,
    /// When it was written (ms since the Unix epoch, the writer's clock).
    pub time_ms: i64,
    /// This location holds this version.
    pub here: bool,
}

/// A file (or path) two or more versions clash on, with every side, as `conflicts` lists
/// it.
#[derive(Clone, Debug, Serialize)]
pub struct Conflict {
    /// The path the clash is about.
    pub path: RepoPath,
    /// Whether versions of one file clash, or files for one path.
    pub kind: ConflictKind,
    /// Every side of the clash.
    pub sides: Vec<ConflictSide>,
}

/// What clashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictKind {
    /// Concurrent versions of one file.
    Content,
    /// Different files claiming one path (or a file where another location
    /// has a folder).
    Path,
}

/// Which version `resolve` keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The version this location holds.
    Local,
    /// The version written by the node with this name or id.
    Node(String),
    /// Every version: the one held here (or the newest) stays at the path,
    /// each other one becomes a file of its own next to it.
    Both,
}

/// What `resolve` did.
#[derive(Clone, Debug, Serialize)]
pub struct Resolution {
    /// The path resolved.
    pub path: RepoPath,
    /// What was kept: the content hash for a content conflict, the path of the file kept
    /// for a path clash (`both` when every file stayed).
    pub kept: String,
    /// Files created for the other versions (with `both`).
    pub created: Vec<RepoPath>,
}

impl Repo {
    /// Every file with concurrent versions, and every path claimed by
    /// several files, with each side.
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        let me = self.node_id();
        let mut conflicts = Vec::new();
        let entries = self.store.placed_entries()?;
        let mut clashes: std::collections::BTreeMap<RepoPath, Vec<&Placed>> = Default::default();
        for placed in entries.iter().filter(|p| p.is_displaced()) {
            clashes
                .entry(placed.entry.current_path().clone())
                .or_default()
                .push(placed);
        }
        for placed in &entries {
            let entry = &placed.entry;
            if clashes.contains_key(&placed.path) && !placed.is_displaced() {
                clashes
                    .get_mut(&placed.path)
                    .expect("checked")
                    .insert(0, placed);
            }
            let Resolved::Conflict(sides) = entry.resolved() else {
                continue;
            };
            let held = entry.holders.get(&me).and_then(|h| h.hash);
            let sides = sides
                .into_iter()
                .map(|v| self.side(&placed.path, v, held))
                .collect();
            conflicts.push(Conflict {
                path: placed.path.clone(),
                kind: ConflictKind::Content,
                sides,
            });
        }
        for (path, claimants) in clashes {
            let sides = claimants
                .iter()
                .map(|p| {
                    let held = p.entry.holders.get(&me).and_then(|h| h.hash);
                    let mut side = self.side(&p.path, p.entry.content.winner(), held);
                    let wrote = p.entry.path.winner();
                    side.node = wrote.by.to_string();
                    side.name = self.store.node(wrote.by).ok().flatten().map(|n| n.name);
                    side.time_ms = wrote.at_ms;
                    side
                })
                .collect();
            conflicts.push(Conflict {
                path,
                kind: ConflictKind::Path,
                sides,
            });
        }
        conflicts.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(conflicts)
    }

    fn side(
        &self,
        path: &RepoPath,
        v: &Versioned<Content>,
        held: Option<crate::model::ContentHash>,
    ) -> ConflictSide {
        ConflictSide {
            path: path.clone(),
            hash: v.value.hash().map(|h| h.to_string()).unwrap_or_default(),
            size: v.value.size(),
            node: v.by.to_string(),
            name: self.store.node(v.by).ok().flatten().map(|n| n.name),
            time_ms: v.at_ms,
            here: held.is_some() && held == v.value.hash(),
        }
    }

    /// Settles the conflict at `path` by keeping the chosen version(s).
    pub fn resolve(&mut self, path: &RepoPath, keep: &Keep) -> Result<Resolution> {
        let clash = self
            .conflicts()?
            .into_iter()
            .find(|c| c.kind == ConflictKind::Path && c.sides.iter().any(|s| s.path == *path));
        if let Some(clash) = clash {
            return self.resolve_path_clash(clash, keep);
        }
        let me = self.node_id();
        let nodes = self.store.nodes()?;
        let writer = self.store.write()?;
        let entry = writer
            .live_entry_at(path)?
            .ok_or_else(|| Error::NoSuchFile(path.clone()))?;
        let Resolved::Conflict(sides) = entry.resolved() else {
            return Err(Error::NotConflicted(path.clone()));
        };
        let sides: Vec<Versioned<Content>> = sides.into_iter().cloned().collect();
        let held = entry.holders.get(&me).and_then(|h| h.hash);
        let is_held = |v: &Versioned<Content>| v.value.hash().is_some() && v.value.hash() == held;
        let chosen = match keep {
            Keep::Local => sides.iter().find(|v| is_held(v)).ok_or_else(|| {
                Error::Resolve(format!(
                    "this location holds none of the versions of {path}; use --keep NODE"
                ))
            })?,
            Keep::Node(who) => {
                let node = resolve_node(who, &nodes)?;
                sides.iter().find(|v| v.by == node).ok_or_else(|| {
                    Error::Resolve(format!("no version of {path} was written by {who}"))
                })?
            }
            Keep::Both => sides
                .iter()
                .find(|v| is_held(v))
                .unwrap_or_else(|| entry.content.winner()),
        };
        let mut created = Vec::new();
        if *keep == Keep::Both {
            for other in sides.iter().filter(|v| *v != chosen) {
                created.push(split_off(&writer, &entry, other, &nodes, me)?);
            }
        }
        let mut resolved = entry.clone();
        let stamp = Stamp {
            node: me,
            counter: writer.next_write_counter()?,
            at_ms: now_ms(),
        };
        let holding = entry.holders.get(&me).cloned();
        resolved
            .content
            .write(chosen.value.clone(), me, stamp.counter, stamp.at_ms);
        // Writing the content does not change what this node holds.
        if let Some(holding) = holding {
            resolved.holders.insert(me, holding);
        }
        writer.put_entry(&resolved)?;
        writer.commit()?;
        Ok(Resolution {
            path: path.clone(),
            kept: chosen
                .value
                .hash()
                .map(|h| h.to_string())
                .unwrap_or_default(),
            created,
        })
    }
}

impl Repo {
    /// Settles a clash of files for one path. `both`: every file keeps the
    /// name it is shown under now (a real rename to its conflict name);
    /// `local` or `NODE`: that file keeps the path and the others are
    /// deleted (their last copies go to the trash, as for any deletion).
    fn resolve_path_clash(&mut self, clash: Conflict, keep: &Keep) -> Result<Resolution> {
        let me = self.node_id();
        let nodes = self.store.nodes()?;
        let mut ids = Vec::new();
        let mut claimants = Vec::new();
        for side in &clash.sides {
            let writer = self.store.write()?;
            let entry = writer
                .live_entry_at(&side.path)?
                .ok_or_else(|| Error::NoSuchFile(side.path.clone()))?;
            drop(writer);
            claimants.push((side.clone(), entry));
        }
        let chosen = match keep {
            Keep::Both => None,
            Keep::Local => Some(
                claimants
                    .iter()
                    .position(|(side, _)| side.here)
                    .ok_or_else(|| {
                        Error::Resolve(format!(
                            "this location holds none of the files claiming {}; use --keep NODE or both",
                            clash.path
                        ))
                    })?,
            ),
            Keep::Node(who) => {
                let node = resolve_node(who, &nodes)?.to_string();
                Some(claimants.iter().position(|(side, _)| side.node == node).ok_or_else(|| {
                    Error::Resolve(format!("no file claiming {} was put there by {who}", clash.path))
                })?)
            }
        };
        let writer = self.store.write()?;
        let mut created = Vec::new();
        for (k, (side, entry)) in claimants.iter().enumerate() {
            let stamp = Stamp {
                node: me,
                counter: writer.next_write_counter()?,
                at_ms: now_ms(),
            };
            let mut updated = entry.clone();
            match chosen {
                None if side.path != *entry.current_path() => {
                    updated.rename(side.path.clone(), stamp);
                    created.push(side.path.clone());
                }
                Some(c) if c == k && side.path != clash.path => {
                    updated.rename(clash.path.clone(), stamp)
                }
                Some(c) if c != k => {
                    let holding = updated.holders.get(&me).cloned();
                    updated
                        .content
                        .write(Content::Deleted, me, stamp.counter, stamp.at_ms);
                    if let Some(holding) = holding {
                        updated.holders.insert(me, holding);
                    }
                }
                _ => continue,
            }
            writer.put_entry(&updated)?;
            ids.push(updated.id);
        }
        writer.commit()?;
        // This tree follows at once: renamed files are where they are
        // shown already; deleted ones go (to the trash when last copies).
        self.apply_settled(&ids)?;
        Ok(Resolution {
            path: clash.path.clone(),
            kept: match chosen {
                Some(c) => claimants[c].0.path.to_string(),
                None => "both".into(),
            },
            created,
        })
    }
}

/// Makes `version` a file of its own next to the conflicted one, named
/// `stem.conflict-NODE.ext`.
fn split_off(
    writer: &Writer<'_>,
    entry: &FileEntry,
    version: &Versioned<Content>,
    nodes: &[crate::model::NodeRecord],
    me: NodeId,
) -> Result<RepoPath> {
    let who = nodes
        .iter()
        .find(|n| n.id == version.by)
        .map(|n| n.name.clone())
        .unwrap_or_else(|| version.by.short());
    let path = conflict_path(entry.current_path(), &who)?;
    let stamp = Stamp {
        node: me,
        counter: writer.next_write_counter()?,
        at_ms: now_ms(),
    };
    // Nobody holds the new file yet (each node writes only its own holder
    // slot): every location that has this content fills the file with a
    // local copy, and says so, when the entry reaches it.
    let id = FileId::new_at(stamp.at_ms as u64);
    let mut copy = FileEntry::new_file(id, path.clone(), version.value.clone(), stamp);
    copy.holders.clear();
    writer.put_entry(&copy)?;
    Ok(path)
}

/// `dir/name.ext` -> `dir/name.conflict-WHO.ext`, with WHO cleaned into a
/// plain name.
fn conflict_path(path: &RepoPath, who: &str) -> Result<RepoPath> {
    let who: String = who
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    conflict_name(path, &who, 1)
        .ok_or_else(|| Error::Resolve(format!("a conflict name for {path} would be too long")))
}

/// A node named by the user: its name in the node records, or its id.
fn resolve_node(who: &str, nodes: &[crate::model::NodeRecord]) -> Result<NodeId> {
    if let Some(node) = nodes.iter().find(|n| n.name == who) {
        return Ok(node.id);
    }
    who.parse::<NodeId>().map_err(|_| {
        Error::Resolve(format!(
            "no node is called `{who}`; use a name from `harmony conflicts` or a node id"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::conflict_path;
    use crate::model::RepoPath;

    #[test]
    fn conflict_names_keep_the_extension() {
        let p = |s| RepoPath::new(s).unwrap();
        assert_eq!(
            conflict_path(&p("a/b/song.flac"), "laptop").unwrap(),
            p("a/b/song.conflict-laptop.flac")
        );
        assert_eq!(
            conflict_path(&p("README"), "nas 1").unwrap(),
            p("README.conflict-nas_1")
        );
        assert_eq!(
            conflict_path(&p(".bashrc"), "x").unwrap(),
            p(".bashrc.conflict-x")
        );
    }
}
