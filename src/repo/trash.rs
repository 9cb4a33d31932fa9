//! The trash: `.harmony/trash/` keeps the last copy seen here of a version
//! that a change from elsewhere removed (a deletion, a newer version, a
//! conflict settled for another version), so that nothing is lost. Each kept
//! file is recorded with its path, content and reason, so that it can be
//! listed, restored as a local change, or let go once another location
//! holds that content.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::{now_ms, Repo};
use crate::error::{Error, Result};
use crate::model::{RepoPath, STATE_DIR};
use crate::store::{LocalFile, TrashRecord};
use crate::tree::Tree;

/// The folder in `.harmony/`.
pub const TRASH_DIR: &str = "trash";

/// Why a version was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrashReason {
    /// The file was deleted elsewhere.
    DeletedElsewhere,
    /// A newer version from elsewhere replaced it.
    Replaced,
    /// A conflict was settled for another version.
    Conflict,
}

impl TrashReason {
    fn code(self) -> u8 {
        match self {
            TrashReason::DeletedElsewhere => 0,
            TrashReason::Replaced => 1,
            TrashReason::Conflict => 2,
        }
    }

    fn from_code(code: u8) -> Option<TrashReason> {
        [
            TrashReason::DeletedElsewhere,
            TrashReason::Replaced,
            TrashReason::Conflict,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }
}

/// One file the trash keeps, as `harmony trash` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct TrashedFile {
    /// The repository path the version had (`None` for a file in the trash
    /// folder that no record describes, e.g. from an older Harmony).
    pub path: Option<RepoPath>,
    /// Length in bytes.
    pub size: u64,
    /// blake3 of the bytes, hex.
    pub hash: Option<String>,
    /// When it was kept (ms since the Unix epoch).
    pub trashed_ms: Option<i64>,
    /// Why it was kept (`None` when no record describes it).
    pub reason: Option<TrashReason>,
    /// Another location holds this content, as far as this one knows: the
    /// copy here can go (`trash empty`).
    pub held_elsewhere: bool,
    /// The kept file itself.
    pub file: PathBuf,
}

/// What `trash empty` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrashEmptied {
    /// Trashed files removed.
    pub removed: usize,
    /// Bytes those files took.
    pub bytes_freed: u64,
    /// Kept: the last known copy of their content (use `--force`).
    pub kept: Vec<RepoPath>,
}

impl Repo {
    fn trash_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR).join(TRASH_DIR)
    }

    /// Keeps the working-tree file of `record` in the trash, recorded with
    /// `reason`: moved there, or with `link`, hard-linked (the tree's file
    /// is about to be replaced in place).
    pub(crate) fn keep_in_trash(
        &mut self,
        tree: &Tree,
        record: &LocalFile,
        reason: TrashReason,
        link: bool,
    ) -> Result<()> {
        let dir = self.trash_dir();
        fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
        let at_ms = now_ms();
        let base = format!("{at_ms}-{}", record.path.as_str().replace('/', "%2F"));
        let name = (1..)
            .map(|k| {
                if k == 1 {
                    base.clone()
                } else {
                    format!("{base}.{k}")
                }
            })
            .find(|name| fs::symlink_metadata(dir.join(name)).is_err())
            .expect("some name is free");
        let kept = dir.join(&name);
        let at = record.path.to_path(&self.root);
        if link {
            tree.link_out(&record.path, &kept)
                .map_err(Error::io("keep in trash", &at))?;
        } else {
            tree.take_out(&record.path, &kept)
                .map_err(Error::io("move to trash", &at))?;
        }
        let writer = self.store.write()?;
        writer.put_trash(&TrashRecord {
            name,
            path: record.path.clone(),
            hash: record.hash,
            size: record.stat.size,
            at_ms,
            reason: reason.code(),
        })?;
        writer.commit()?;
        Ok(())
    }

    /// Everything the trash keeps, oldest first; files no record describes
    /// last.
    pub fn trash(&self) -> Result<Vec<TrashedFile>> {
        let dir = self.trash_dir();
        let mut listed = Vec::new();
        let records = self.store.trash()?;
        for record in &records {
            listed.push(TrashedFile {
                path: Some(record.path.clone()),
                size: record.size,
                hash: Some(record.hash.to_string()),
                trashed_ms: Some(record.at_ms),
                reason: TrashReason::from_code(record.reason),
                held_elsewhere: self.held_elsewhere(record.hash)?,
                file: dir.join(&record.name),
            });
        }
        let names: std::collections::HashSet<&str> =
            records.iter().map(|r| r.name.as_str()).collect();
        if let Ok(items) = fs::read_dir(&dir) {
            for item in items {
                let item = item.map_err(Error::io("list", &dir))?;
                let name = item.file_name().to_string_lossy().into_owned();
                if names.contains(name.as_str()) {
                    continue;
                }
                let size = item.metadata().map(|m| m.len()).unwrap_or(0);
                listed.push(TrashedFile {
                    path: None,
                    size,
                    hash: None,
                    trashed_ms: None,
                    reason: None,
                    held_elsewhere: false,
                    file: item.path(),
                });
            }
        }
        Ok(listed)
    }

    /// Puts the newest kept version of `path` back into the tree, at `to`
    /// (or `path`), as a local change: the next commit records it and it
    /// syncs like any edit. Never over an existing file.
    pub fn restore_from_trash(
        &mut self,
        path: &RepoPath,
        to: Option<&RepoPath>,
    ) -> Result<RepoPath> {
        let record = self
            .store
            .trash()?
            .into_iter()
            .filter(|r| r.path == *path)
            .max_by_key(|r| r.at_ms)
            .ok_or_else(|| {
                Error::Refused(format!(
                    "the trash keeps no version of {path}; `harmony trash` lists what it keeps"
                ))
            })?;
        let target = to.unwrap_or(path);
        let tree = self.tree()?;
        let at = target.to_path(&self.root);
        let kept = self.trash_dir().join(&record.name);
        match tree.place(&kept, target, false) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Refused(format!(
                    "{target} exists; restore the kept version under another name with `--to NEW`, or move that file away first"
                )))
            }
            Err(e) => return Err(Error::io("restore", &at)(e)),
        }
        let writer = self.store.write()?;
        writer.remove_trash(&record.name)?;
        writer.commit()?;
        Ok(target.clone())
    }

    /// Removes kept versions older than `older_than` (all when `None`) whose
    /// content another location holds; with `force`, every one.
    pub fn empty_trash(
        &mut self,
        older_than: Option<Duration>,
        force: bool,
    ) -> Result<TrashEmptied> {
        let cutoff = older_than.map(|age| now_ms() - age.as_millis() as i64);
        let mut emptied = TrashEmptied::default();
        for item in self.trash()? {
            if cutoff.is_some_and(|c| item.trashed_ms.is_none_or(|t| t > c)) {
                continue;
            }
            if !item.held_elsewhere && !force {
                if let Some(path) = item.path {
                    emptied.kept.push(path);
                }
                continue;
            }
            fs::remove_file(&item.file).map_err(Error::io("remove", &item.file))?;
            if let Some(name) = item.file.file_name() {
                let writer = self.store.write()?;
                writer.remove_trash(&name.to_string_lossy())?;
                writer.commit()?;
            }
            emptied.removed += 1;
            emptied.bytes_freed += item.size;
        }
        Ok(emptied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_keep_their_codes() {
        for reason in [
            TrashReason::DeletedElsewhere,
            TrashReason::Replaced,
            TrashReason::Conflict,
        ] {
            assert_eq!(TrashReason::from_code(reason.code()), Some(reason));
        }
    }
}
