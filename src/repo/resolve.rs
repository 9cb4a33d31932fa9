//! `conflicts` and `resolve`: concurrent versions of a file are kept side by
//! side until the user picks; the pick is an ordinary write that supersedes
//! every version it saw, so it syncs like any change.

use serde::Serialize;

use super::{now_ms, Repo};
use crate::error::{Error, Result};
use crate::model::{Content, FileEntry, FileId, NodeId, RepoPath, Resolved, Stamp, Versioned};
use crate::store::Writer;

/// One side of a conflict.
#[derive(Clone, Debug, Serialize)]
pub struct ConflictSide {
    pub hash: String,
    pub size: u64,
    /// The node that wrote this version, and its name if known.
    pub node: String,
    pub name: Option<String>,
    /// When it was written (ms since the Unix epoch, the writer's clock).
    pub time_ms: i64,
    /// This location holds this version.
    pub here: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Conflict {
    pub path: RepoPath,
    pub sides: Vec<ConflictSide>,
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
    pub path: RepoPath,
    pub kept: String,
    /// Files created for the other versions (with `both`).
    pub created: Vec<RepoPath>,
}

impl Repo {
    /// Every file with concurrent versions, with each side.
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        let me = self.node_id();
        let mut conflicts = Vec::new();
        for entry in self.store.entries()? {
            let Resolved::Conflict(sides) = entry.resolved() else {
                continue;
            };
            let held = entry.holders.get(&me).and_then(|h| h.hash);
            let sides = sides
                .into_iter()
                .filter_map(|v| match &v.value {
                    Content::File { hash, size, .. } => Some(ConflictSide {
                        hash: hash.to_string(),
                        size: *size,
                        node: v.by.to_string(),
                        name: self.store.node(v.by).ok().flatten().map(|n| n.name),
                        time_ms: v.at_ms,
                        here: held == Some(*hash),
                    }),
                    Content::Deleted => None,
                })
                .collect();
            conflicts.push(Conflict {
                path: entry.current_path().clone(),
                sides,
            });
        }
        Ok(conflicts)
    }

    /// Settles the conflict at `path` by keeping the chosen version(s).
    pub fn resolve(&mut self, path: &RepoPath, keep: &Keep) -> Result<Resolution> {
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

/// `dir/name.ext` -> `dir/name.conflict-WHO.ext`.
fn conflict_path(path: &RepoPath, who: &str) -> Result<RepoPath> {
    let text = path.as_str();
    let (dir, file) = match text.rfind('/') {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => ("", text),
    };
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
    let name = match file.rfind('.') {
        Some(dot) if dot > 0 => format!("{}.conflict-{who}{}", &file[..dot], &file[dot..]),
        _ => format!("{file}.conflict-{who}"),
    };
    RepoPath::new(&format!("{dir}{name}")).map_err(|e| Error::Resolve(e.to_string()))
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
