//! `status` and `ls`: read-only views that combine the replicated state with
//! a scan of the working tree (nothing is recorded).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::Repo;
use crate::error::Result;
use crate::model::STATE_DIR;
use crate::model::{FileEntry, FileId, NodeId, Placed, RepoPath, Resolved};
use crate::scan::{Change, ScanProgress};
use crate::store::{Order, Store, DB_FILE};

/// The state of one file as `ls` and `status` show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    /// Held here at its newest version, or not held here by choice.
    Ok,
    /// Held here, but a newer version exists elsewhere (`get` brings it).
    Outdated,
    /// Held here per the state, but gone from the working tree (not committed).
    Missing,
    /// Changed in the working tree and not committed.
    Modified,
    /// Concurrent versions exist; see `conflicts`.
    Conflict,
    /// The newest version is a deletion.
    Deleted,
    /// In the working tree but not yet in the repository (status only).
    New,
    /// Moved in the working tree and not committed (status only).
    Renamed,
    /// A remote change to it could not be applied here (status only; the
    /// line says why, and the next sync or get tries again).
    Blocked,
}

/// One row of `ls`.
#[derive(Clone, Debug, Serialize)]
pub struct ListedFile {
    /// The file's path (where it is placed).
    pub path: RepoPath,
    /// Length of the newest content in bytes (0 for a deleted file).
    pub size: u64,
    /// blake3 of the newest content, hex; absent for a deleted file.
    pub hash: Option<String>,
    /// The newest content is held here.
    pub present: bool,
    /// How many locations hold the newest content.
    pub copies: usize,
    /// Whether this location's preferred-content rules want it here (for a
    /// file held here: keep it); absent for a link, a conflict or a
    /// deletion, which the rules do not judge.
    pub wanted: Option<bool>,
    /// Whether it is here, wanted, in conflict, and so on.
    pub state: FileState,
}

/// One row of `status`.
#[derive(Clone, Debug, Serialize)]
pub struct StatusLine {
    /// The file's path.
    pub path: RepoPath,
    /// What differs from the recorded state.
    pub state: FileState,
    /// For a rename, the path it was recorded under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<RepoPath>,
    /// For a blocked file, why the remote change was not applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A location holding a file's content, for `whereis`.
#[derive(Clone, Debug, Serialize)]
pub struct Holder {
    /// The node id, hex.
    pub id: String,
    /// The node's name, when its record has reached this location.
    pub name: Option<String>,
}

/// One row of `whereis`.
#[derive(Clone, Debug, Serialize)]
pub struct Whereabouts {
    /// The file's path.
    pub path: RepoPath,
    /// blake3 of the newest content, hex.
    pub hash: Option<String>,
    /// The locations holding the newest content.
    pub holders: Vec<Holder>,
    /// The repository's numcopies: fewer holders than this is a file at
    /// risk.
    pub numcopies: u32,
}

/// What the working tree says about recorded files, by file id.
struct TreeView {
    changed: HashMap<FileId, FileState>,
    lines: Vec<StatusLine>,
    warnings: Vec<String>,
}

impl Repo {
    fn tree_view(&self, progress: &dyn ScanProgress) -> Result<TreeView> {
        let outcome = self.scan(progress)?;
        let warnings = super::commit::warnings(&outcome);
        let mut view = TreeView {
            changed: HashMap::new(),
            lines: Vec::new(),
            warnings,
        };
        for change in outcome.changes {
            let (path, state, from) = match change {
                Change::Added(file) => (file.path, FileState::New, None),
                Change::Edited { file_id, file } => {
                    view.changed.insert(file_id, FileState::Modified);
                    (file.path, FileState::Modified, None)
                }
                Change::Renamed {
                    file_id,
                    from,
                    file,
                    ..
                } => {
                    view.changed.insert(file_id, FileState::Modified);
                    (file.path, FileState::Renamed, Some(from))
                }
                Change::Deleted(old) => {
                    view.changed.insert(old.file_id, FileState::Missing);
                    (old.path, FileState::Missing, None)
                }
                Change::Touched { .. } => continue,
            };
            view.lines.push(StatusLine {
                path,
                state,
                from,
                reason: None,
            });
        }
        Ok(view)
    }

    /// Uncommitted changes of the working tree, then outdated and conflicted
    /// files, sorted by path; and warnings about what is not synced. The
    /// state is read entry by entry: memory grows with what is listed, not
    /// with the repository.
    pub fn status(&self, progress: &dyn ScanProgress) -> Result<(Vec<StatusLine>, Vec<String>)> {
        self.store.read_through()?;
        let db = self.root.join(STATE_DIR).join(DB_FILE);
        let me = self.node_id();
        // The state is read on a connection and a thread of its own while
        // this one scans the tree: at a million files each takes a second
        // or two.
        let (view, replicated) = std::thread::scope(|threads| {
            let replicated = threads.spawn(|| needing_attention(&db, me));
            let view = self.tree_view(progress);
            let replicated = replicated
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (view, replicated)
        });
        let view = view?;
        let mut lines = view.lines;
        lines.extend(replicated?);
        for blocked in self.store.blocked()? {
            lines.push(StatusLine {
                path: blocked.path,
                state: FileState::Blocked,
                from: None,
                reason: Some(blocked.reason),
            });
        }
        lines.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((lines, view.warnings))
    }

    /// Hands `row` every file of the repository under `prefix` (all when
    /// `None`), also those not held here, in path order; deleted files only
    /// with `include_deleted`. Rows are made as the state is read, so a
    /// listing of any size needs the memory of one entry (and of what the
    /// scan of the tree finds changed).
    pub fn ls(
        &self,
        prefix: Option<&RepoPath>,
        include_deleted: bool,
        progress: &dyn ScanProgress,
        mut row: impl FnMut(ListedFile),
    ) -> Result<()> {
        self.store.read_through()?;
        let view = self.tree_view(progress)?;
        let me = self.node_id();
        let rules = self.rules()?;
        let clashed = self.store.clashed_paths()?;
        Ok(self.store.each_placed(prefix, Order::ByPath, |placed| {
            let mut state = replicated_state(&placed, me, &clashed);
            if state == FileState::Deleted && !include_deleted {
                return Ok(());
            }
            let entry = &placed.entry;
            if let Some(local) = view.changed.get(&entry.id) {
                if state != FileState::Conflict {
                    state = *local;
                }
            }
            let hash = newest_hash(entry);
            let size = match entry.resolved() {
                Resolved::File(v) => v.value.size(),
                Resolved::Conflict(_) => entry.content.winner().value.size(),
                Resolved::Deleted => 0,
            };
            let copies = match hash {
                Some(h) => self.store.holders_of_content_of(entry, h)?.len(),
                None => 0,
            };
            let present = hash.is_some_and(|h| entry.holders_of(h).any(|n| *n == me));
            let wanted = super::rules::wanted_here(&rules, &placed);
            row(ListedFile {
                path: placed.path,
                size,
                hash: hash.map(|h| h.to_string()),
                present,
                copies,
                wanted,
                state,
            });
            Ok(())
        })?)
    }
}

impl Repo {
    /// Which locations hold the newest content of each file at or under
    /// `paths` (every file when empty). A path matching nothing is an error.
    pub fn whereis(&self, paths: &[RepoPath]) -> Result<Vec<Whereabouts>> {
        let numcopies = self.numcopies()?;
        let names: HashMap<NodeId, String> = self
            .store
            .nodes()?
            .into_iter()
            .map(|n| (n.id, n.name))
            .collect();
        let entries: Vec<Placed> = self
            .store
            .placed_entries()?
            .into_iter()
            .filter(|e| !e.entry.is_deleted())
            .collect();
        for path in paths {
            if !entries.iter().any(|e| e.path.starts_with(path)) {
                return Err(crate::Error::NoSuchFile(path.clone()));
            }
        }
        let mut found = Vec::new();
        for placed in entries
            .iter()
            .filter(|e| paths.is_empty() || paths.iter().any(|p| e.path.starts_with(p)))
        {
            let hash = newest_hash(&placed.entry);
            let holders = match hash {
                Some(h) => self.store.holders_of_content(h)?,
                None => Default::default(),
            };
            found.push(Whereabouts {
                path: placed.path.clone(),
                hash: hash.map(|h| h.to_string()),
                holders: holders
                    .iter()
                    .map(|id| Holder {
                        id: id.to_string(),
                        name: names.get(id).cloned(),
                    })
                    .collect(),
                numcopies,
            });
        }
        Ok(found)
    }
}

/// The content `ls` and `whereis` show: the current one, or for a conflict
/// the deterministic pick among the sides.
fn newest_hash(entry: &FileEntry) -> Option<crate::model::ContentHash> {
    match entry.resolved() {
        Resolved::File(v) => v.value.hash(),
        Resolved::Conflict(_) => entry.content.winner().value.hash(),
        Resolved::Deleted => None,
    }
}

/// The outdated and conflicted files of the state database at `db`, read
/// entry by entry on a connection of its own.
fn needing_attention(db: &std::path::Path, me: NodeId) -> Result<Vec<StatusLine>> {
    let store = Store::open(db)?;
    store.read_through()?;
    let clashed = store.clashed_paths()?;
    let mut lines = Vec::new();
    store.each_placed(None, Order::Stored, |placed| {
        let state = replicated_state(&placed, me, &clashed);
        if matches!(state, FileState::Outdated | FileState::Conflict) {
            lines.push(StatusLine {
                path: placed.path,
                state,
                from: None,
                reason: None,
            });
        }
        Ok(())
    })?;
    Ok(lines)
}

/// The state that follows from the replicated entry alone: a file displaced
/// by another claiming its path is a conflict, and so is the one placed at
/// a path in `clashed` ([`Store::clashed_paths`]).
fn replicated_state(placed: &Placed, me: NodeId, clashed: &HashSet<RepoPath>) -> FileState {
    let entry = &placed.entry;
    if placed.is_displaced() || clashed.contains(&placed.path) {
        return FileState::Conflict;
    }
    match entry.resolved() {
        Resolved::Deleted => FileState::Deleted,
        Resolved::Conflict(_) => FileState::Conflict,
        Resolved::File(newest) => {
            let held = entry.holders.get(&me).and_then(|h| h.hash);
            match (held, newest.value.hash()) {
                (Some(held), Some(newest)) if held != newest => FileState::Outdated,
                _ => FileState::Ok,
            }
        }
    }
}
