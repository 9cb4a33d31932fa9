//! Applying merged remote changes to the working tree: what needs no bulk
//! transfer (renames and moves of held files, deletions, new content already
//! held here under another path). Everything else waits for `get`.
//!
//! The rules of DESIGN.md's "never lose data" hold throughout: a file whose
//! bytes are not the recorded version is never moved, replaced or deleted
//! (it is reported and stays a local change), and a deletion never destroys
//! the last known copy of a content: it goes to `.harmony/trash/`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{now_ms, Repo};
use crate::error::{Error, Result};
use crate::model::{Content, FileEntry, FileId, RepoPath, Resolved, STATE_DIR};
use crate::scan::{stat_of, still_as_recorded};
use crate::store::LocalFile;

/// Where a deleted file goes when no other location holds its content.
pub const TRASH_DIR: &str = "trash";
/// Where files wait between the two steps of a batch of moves.
const MOVING_DIR: &str = "moving";

/// What applying remote changes did to the working tree.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplyReport {
    pub moved: usize,
    pub deleted: usize,
    /// Deleted files kept in `.harmony/trash/` as the last known copy.
    pub trashed: usize,
    /// Files given their newest content from a copy already here (dedup).
    pub copied_locally: usize,
    /// Remote changes not applied, each with the reason.
    pub skipped: Vec<String>,
    /// Files renamed to different names on different locations at once:
    /// every location keeps the same one (the latest rename), listed here.
    pub rename_conflicts: Vec<String>,
}

/// One file to move: the first step takes it out of the tree, the second
/// puts it at its new path, so swaps and chains of renames work.
struct Move {
    record: LocalFile,
    to: RepoPath,
    parked: PathBuf,
}

impl Repo {
    /// Applies the entries `changed` by merging a peer's state to the working
    /// tree, as they are in the store now.
    pub fn apply_remote(&mut self, changed: &[FileId]) -> Result<ApplyReport> {
        self.recover_interrupted_moves()?;
        let mut report = ApplyReport::default();
        let mut moves = Vec::new();
        for id in changed {
            let Some(entry) = self.store.entry(*id)? else {
                continue; // collected since
            };
            let entry = &entry;
            if entry.path.is_conflict() {
                let others: Vec<&str> = entry
                    .path
                    .versions()
                    .iter()
                    .map(|v| v.value.as_str())
                    .filter(|p| *p != entry.current_path().as_str())
                    .collect();
                report.rename_conflicts.push(format!(
                    "{}: also renamed to {} elsewhere at the same time; kept {} everywhere",
                    entry.current_path(),
                    others.join(", "),
                    entry.current_path()
                ));
            }
            let Some(record) = self.store.local_file_by_id(entry.id)? else {
                // Not held here: a file never held here (not dropped) is
                // copied in when its content is already here.
                if !entry.holders.contains_key(&self.node_id()) {
                    self.copy_from_local(entry, None, &mut report)?;
                }
                continue;
            };
            match entry.resolved() {
                Resolved::Conflict(_) => continue, // shown by status; resolve settles it
                Resolved::Deleted => self.apply_deletion(entry, &record, &mut report)?,
                Resolved::File(newest) => {
                    let target = entry.current_path();
                    let record = match newest.value.hash() {
                        Some(hash) if hash != record.hash => self
                            .copy_from_local(entry, Some(&record), &mut report)?
                            .unwrap_or(record),
                        _ => record,
                    };
                    if *target != record.path && self.is_unchanged(&record, &mut report)? {
                        let parked = self.state_dir().join(MOVING_DIR).join(entry.id.to_string());
                        moves.push(Move {
                            record,
                            to: target.clone(),
                            parked,
                        });
                    }
                }
            }
        }
        self.apply_moves(moves, &mut report)?;
        Ok(report)
    }

    /// Puts files left in `.harmony/moving/` by an interrupted apply back at
    /// their recorded paths, so that no later scan takes them for deleted.
    /// Partial copies there are only copies and are removed.
    pub(crate) fn recover_interrupted_moves(&mut self) -> Result<()> {
        let moving = self.state_dir().join(MOVING_DIR);
        let Ok(items) = fs::read_dir(&moving) else {
            return Ok(());
        };
        for item in items {
            let item = item.map_err(Error::io("list", &moving))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with("copy-") {
                fs::remove_file(item.path()).map_err(Error::io("remove", item.path()))?;
                continue;
            }
            let record = match FileId::from_hex(&name) {
                Ok(id) => self.store.local_file_by_id(id)?,
                Err(_) => None,
            };
            let Some(record) = record else { continue };
            let target = record.path.to_path(&self.root);
            if fs::symlink_metadata(&target).is_err() {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
                }
                fs::rename(item.path(), &target).map_err(Error::io("restore", &target))?;
            }
        }
        Ok(())
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// The file is still the recorded version; otherwise it is reported and
    /// left alone.
    fn is_unchanged(&self, record: &LocalFile, report: &mut ApplyReport) -> Result<bool> {
        let unchanged = still_as_recorded(&self.root, record)
            .map_err(Error::io("read", record.path.to_path(&self.root)))?;
        if !unchanged {
            report.skipped.push(format!(
                "{}: changed here since the last commit; the remote change is not applied (commit, then sync again)",
                record.path
            ));
        }
        Ok(unchanged)
    }

    fn apply_deletion(
        &mut self,
        entry: &FileEntry,
        record: &LocalFile,
        report: &mut ApplyReport,
    ) -> Result<()> {
        if !self.is_unchanged(record, report)? {
            return Ok(());
        }
        let me = self.node_id();
        let held_elsewhere = entry.holders_of(record.hash).any(|n| *n != me);
        let path = record.path.to_path(&self.root);
        if held_elsewhere {
            fs::remove_file(&path).map_err(Error::io("delete", &path))?;
        } else {
            let kept = self.trash_path(&record.path)?;
            fs::rename(&path, &kept).map_err(Error::io("move to trash", &path))?;
            report.trashed += 1;
        }
        remove_empty_parents(&self.root, &record.path);
        let writer = self.store.write()?;
        let counter = writer.next_write_counter()?;
        let mut updated = writer.entry(entry.id)?.unwrap_or_else(|| entry.clone());
        updated.set_holding(me, None, counter);
        writer.put_entry(&updated)?;
        writer.remove_local_file(&record.path)?;
        writer.commit()?;
        report.deleted += 1;
        Ok(())
    }

    /// Puts the newest content of `entry` in place when it is already here
    /// under another path: copied into `.harmony/`, synced, then renamed into
    /// the tree. With `replacing`, the held older version is replaced (it goes
    /// to the trash unless another location holds it); without, the file is
    /// new here and its path must be free.
    fn copy_from_local(
        &mut self,
        entry: &FileEntry,
        replacing: Option<&LocalFile>,
        report: &mut ApplyReport,
    ) -> Result<Option<LocalFile>> {
        let Resolved::File(newest) = entry.resolved() else {
            return Ok(None);
        };
        let Content::File { hash, mtime_ns, .. } = newest.value else {
            return Ok(None);
        };
        let Some(source) = self.store.local_file_by_hash(hash)? else {
            return Ok(None); // needs a transfer: `get`
        };
        if !still_as_recorded(&self.root, &source).unwrap_or(false) {
            return Ok(None);
        }
        let path = match replacing {
            Some(old) if !self.is_unchanged(old, report)? => return Ok(None),
            Some(old) => old.path.clone(),
            None => entry.current_path().clone(),
        };
        let target = path.to_path(&self.root);
        if replacing.is_none() && fs::symlink_metadata(&target).is_ok() {
            report.skipped.push(format!(
                "{path}: its content is here, but the path is taken by a file Harmony does not know; not copied"
            ));
            return Ok(None);
        }
        let staging = self.state_dir().join(MOVING_DIR);
        fs::create_dir_all(&staging).map_err(Error::io("create", &staging))?;
        let copy = staging.join(format!("copy-{}", entry.id));
        fs::copy(source.path.to_path(&self.root), &copy).map_err(Error::io("copy", &copy))?;
        let _ = crate::scan::set_mtime(&copy, mtime_ns);
        fs::File::open(&copy)
            .and_then(|file| file.sync_all())
            .map_err(Error::io("sync", &copy))?;

        let me = self.node_id();
        if let Some(old) = replacing {
            if !entry.holders_of(old.hash).any(|n| *n != me) {
                let kept = self.trash_path(&old.path)?;
                fs::hard_link(&target, &kept).map_err(Error::io("keep in trash", &target))?;
                report.trashed += 1;
            }
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        fs::rename(&copy, &target).map_err(Error::io("place", &target))?;
        let meta = fs::symlink_metadata(&target).map_err(Error::io("stat", &target))?;
        let placed = LocalFile {
            path,
            file_id: entry.id,
            hash,
            stat: stat_of(&meta),
        };
        let writer = self.store.write()?;
        let counter = writer.next_write_counter()?;
        let mut current = writer.entry(entry.id)?.unwrap_or_else(|| entry.clone());
        current.set_holding(me, Some(hash), counter);
        writer.put_entry(&current)?;
        writer.put_local_file(&placed)?;
        writer.commit()?;
        report.copied_locally += 1;
        Ok(Some(placed))
    }

    /// A fresh name in `.harmony/trash/` for the last copy of `path`.
    pub(crate) fn trash_path(&self, path: &RepoPath) -> Result<PathBuf> {
        let trash = self.state_dir().join(TRASH_DIR);
        fs::create_dir_all(&trash).map_err(Error::io("create", &trash))?;
        Ok(trash.join(format!(
            "{}-{}",
            now_ms(),
            path.as_str().replace('/', "%2F")
        )))
    }

    /// Moves files in two steps: all out of the tree into `.harmony/moving/`,
    /// then each to its new path. A target taken by a file Harmony does not
    /// know is never overwritten: the moved file goes back and is reported.
    fn apply_moves(&mut self, moves: Vec<Move>, report: &mut ApplyReport) -> Result<()> {
        if moves.is_empty() {
            return Ok(());
        }
        let moving = self.state_dir().join(MOVING_DIR);
        fs::create_dir_all(&moving).map_err(Error::io("create", &moving))?;
        let mut parked = Vec::with_capacity(moves.len());
        for m in moves {
            let from = m.record.path.to_path(&self.root);
            fs::rename(&from, &m.parked).map_err(Error::io("move", &from))?;
            parked.push(m);
        }
        for m in &parked {
            remove_empty_parents(&self.root, &m.record.path);
        }
        let writer = self.store.write()?;
        for m in parked {
            let target = m.to.to_path(&self.root);
            let (placed, path) = if fs::symlink_metadata(&target).is_ok() {
                report.skipped.push(format!(
                    "{}: moved to {} elsewhere, but {} already exists here; left at the old path",
                    m.record.path, m.to, m.to
                ));
                (m.record.path.to_path(&self.root), m.record.path.clone())
            } else {
                (target, m.to.clone())
            };
            if let Some(parent) = placed.parent() {
                fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
            }
            fs::rename(&m.parked, &placed).map_err(Error::io("move", &placed))?;
            let meta = fs::symlink_metadata(&placed).map_err(Error::io("stat", &placed))?;
            writer.remove_local_file(&m.record.path)?;
            writer.put_local_file(&LocalFile {
                path,
                stat: stat_of(&meta),
                ..m.record
            })?;
            report.moved += 1;
        }
        writer.commit()?;
        Ok(())
    }
}

/// Removes the folders that held `path` while they are empty, up to the root.
pub(crate) fn remove_empty_parents(root: &Path, path: &RepoPath) {
    let mut dir = path.to_path(root);
    while dir.pop() && dir != root && dir.starts_with(root) {
        if fs::remove_dir(&dir).is_err() {
            break;
        }
    }
}
