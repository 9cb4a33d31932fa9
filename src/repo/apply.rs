//! Applying merged remote changes to the working tree: what needs no bulk
//! transfer (renames and moves of held files, deletions, executable bits,
//! symbolic links, new content already held here under another path).
//! Everything else waits for `get`.
//!
//! The rules of DESIGN.md's "never lose data" hold throughout: a file whose
//! bytes are not the recorded version is never moved, replaced or deleted
//! (it is reported and stays a local change), a deletion never destroys the
//! last known copy of a content (it goes to `.harmony/trash/`), and nothing
//! is written through a symbolic link ([`Tree`]).
//!
//! Applying is per file (invariant 8): a change that cannot be applied here
//! (a file in the way, permission denied, a full disk, a name the file
//! system refuses) is recorded as blocked with its reason, shown by
//! `status`, and tried again by the next apply; the others still apply.
//!
//! The changes go in phases, so that a path freed by one change is free for
//! the next: deletions, then changes in place, then moves (all files out of
//! the tree first, then each to its new path, so swaps and chains work, and
//! a file can move into a new folder of its own old name), then new files.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::PathBuf;

use serde::Serialize;

use super::trash::TrashReason;
use super::{now_ms, Repo};
use crate::error::{Error, Result};
use crate::model::{Content, FileEntry, FileId, Kind, Placed, Resolved, STATE_DIR};
use crate::scan::{file_stat, still_as_recorded};
use crate::store::{LocalFile, Writer};
use crate::tree::{set_executable, Tree};

/// Where files wait between the two steps of a batch of moves.
const MOVING_DIR: &str = "moving";

/// What applying remote changes did to the working tree.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplyReport {
    /// Files moved to a new path in the working tree (renamed elsewhere, or displaced by a
    /// clash).
    pub moved: usize,
    /// Files deleted from the working tree (kept in the trash when they were the last
    /// copy).
    pub deleted: usize,
    /// Deleted or replaced files kept in `.harmony/trash/` as the last
    /// known copy.
    pub trashed: usize,
    /// Files given their newest content from a copy already here (dedup),
    /// and links made.
    pub copied_locally: usize,
    /// Executable bits set or cleared.
    pub modes_changed: usize,
    /// Remote changes not applied because the file changed here (they stay
    /// local changes: commit, then sync again).
    pub skipped: Vec<String>,
    /// Remote changes that could not be applied here, each with the reason;
    /// tried again at the next sync or get.
    pub blocked: Vec<String>,
    /// Files kept under a distinct name here because this file system
    /// folds case and another file's name differs from theirs only in case.
    pub case_collisions: Vec<String>,
    /// Files renamed to different names on different locations at once:
    /// every location keeps the same one (the latest rename), listed here.
    pub rename_conflicts: Vec<String>,
}

/// One file to move: the first step takes it out of the tree, the second
/// puts it at its new path.
struct Move {
    record: LocalFile,
    to: crate::model::RepoPath,
    parked: PathBuf,
}

/// Whether the apply step has work for `entry` in this tree: it holds the
/// file (a move, an update, a deletion), or can make it from what is here
/// (a link; content that a file here holds). A merge asks this of every
/// entry it changes, so that the million entries of a first sync, held
/// elsewhere, leave the apply nothing to go through.
pub(crate) fn has_work_here(writer: &Writer<'_>, entry: &FileEntry) -> crate::store::Result<bool> {
    if writer.local_file_path_of(entry.id)?.is_some() {
        return Ok(true);
    }
    Ok(match made_from(entry) {
        MadeFrom::Link => true,
        MadeFrom::Content(hash) => writer.holds_content(hash)?,
        MadeFrom::Nothing => false,
    })
}

/// What a location that does not hold a file needs to make it.
enum MadeFrom {
    /// A link: nothing but its target, which the entry carries.
    Link,
    /// This content, from a file here that holds it.
    Content(crate::model::ContentHash),
    /// It cannot be made (a deletion, a conflict): nothing to do.
    Nothing,
}

fn made_from(entry: &FileEntry) -> MadeFrom {
    let Resolved::File(newest) = entry.resolved() else {
        return MadeFrom::Nothing;
    };
    match &newest.value {
        Content::Link { .. } => MadeFrom::Link,
        Content::File { hash, .. } => MadeFrom::Content(*hash),
        Content::Deleted => MadeFrom::Nothing,
    }
}

/// How the changes of one apply ended, as the blocked table needs them:
/// only failures, and the ids that may have been blocked, are kept.
#[derive(Default)]
struct Outcomes {
    /// Entries applied (or with nothing to apply here).
    applied: Vec<FileId>,
    /// Entries collected since they changed.
    gone: Vec<FileId>,
    /// Entries that could not be applied, with the path and the reason.
    failed: Vec<(FileId, crate::model::RepoPath, String)>,
}

impl Outcomes {
    fn push(&mut self, placed: &Placed, failure: Option<String>) {
        match failure {
            None => self.applied.push(placed.entry.id),
            Some(reason) => self
                .failed
                .push((placed.entry.id, placed.path.clone(), reason)),
        }
    }
}

/// What the first phase leaves for the others: the moves, the new files
/// whose content is here, and how every entry ended so far.
#[derive(Default)]
struct Later {
    outcomes: Outcomes,
    moves: Vec<(Placed, Move)>,
    new: Vec<Placed>,
}

/// What one file's change needs in the later phases.
enum Next {
    Done,
    Move(Move),
    New,
}

impl Repo {
    /// Applies the entries `changed` by merging a peer's state to the working
    /// tree, as they are in the store now, together with every change still
    /// blocked here.
    pub fn apply_remote(&mut self, changed: &[FileId]) -> Result<ApplyReport> {
        self.apply_changes(changed, TrashReason::DeletedElsewhere)
    }

    /// [`Repo::apply_remote`] for changes that `resolve` made here: a file it
    /// deleted is kept in the trash as a conflict's other side.
    pub(crate) fn apply_settled(&mut self, changed: &[FileId]) -> Result<ApplyReport> {
        self.apply_changes(changed, TrashReason::Conflict)
    }

    /// Applies `changed` (and what is blocked); a deleted file that is the
    /// last copy goes to the trash for `deletion`.
    ///
    /// Entries are read one at a time and only those the later phases need
    /// (moves, new files whose content is here) are kept: a first sync
    /// brings a million entries this location does not hold, and applying
    /// them must not hold a million entries.
    fn apply_changes(&mut self, changed: &[FileId], deletion: TrashReason) -> Result<ApplyReport> {
        self.recover_interrupted_moves()?;
        let mut report = ApplyReport::default();
        let blocked: BTreeSet<FileId> = self
            .store
            .blocked()?
            .into_iter()
            .map(|b| b.file_id)
            .collect();
        let mut ids = changed.to_vec();
        ids.extend(blocked.iter().copied());
        ids.sort_unstable();
        ids.dedup();
        let mut later = Later::default();
        // Deletions first (and what this location does not hold, which
        // depends on no path), then changes in place, then the rest.
        let mut held = Vec::new();
        for id in ids {
            let Some(placed) = self.store.placed_entry(id)? else {
                later.outcomes.gone.push(id); // collected since: nothing to apply
                continue;
            };
            if !placed.entry.is_deleted() && self.store.local_file_by_id(id)?.is_some() {
                held.push(id);
                continue;
            }
            self.apply_first(placed, deletion, &mut report, &mut later)?;
        }
        for id in held {
            if let Some(placed) = self.store.placed_entry(id)? {
                self.apply_first(placed, deletion, &mut report, &mut later)?;
            }
        }
        let Later {
            mut outcomes,
            moves,
            new,
        } = later;
        for (placed, result) in self.apply_moves(moves, &mut report)? {
            outcomes.push(&placed, result.err());
        }
        for placed in &new {
            let result = self.materialize(placed, &mut report);
            outcomes.push(placed, result.err().map(|e| e.to_string()));
        }
        let writer = self.store.write()?;
        for id in outcomes.gone.iter().chain(&outcomes.applied) {
            if blocked.contains(id) {
                writer.clear_blocked(*id)?;
            }
        }
        for (id, path, reason) in outcomes.failed {
            report.blocked.push(format!("{path}: {reason}"));
            writer.set_blocked(id, &path, &reason, now_ms())?;
        }
        writer.commit()?;
        Ok(report)
    }

    /// The first phase of one entry: what it needs later goes to `later`.
    fn apply_first(
        &mut self,
        placed: Placed,
        deletion: TrashReason,
        report: &mut ApplyReport,
        later: &mut Later,
    ) -> Result<()> {
        note_rename_conflict(&placed.entry, report);
        match self.apply_one(&placed, deletion, report) {
            Ok(Next::Done) => later.outcomes.push(&placed, None),
            Ok(Next::Move(m)) => later.moves.push((placed, m)),
            Ok(Next::New) if self.has_content_of(&placed)? => later.new.push(placed),
            Ok(Next::New) => later.outcomes.push(&placed, None), // needs a transfer: `get`
            Err(e) => later.outcomes.push(&placed, Some(e.to_string())),
        }
        Ok(())
    }

    /// Whether [`materialize`](Self::materialize) can make `placed` here
    /// from what this location has.
    fn has_content_of(&self, placed: &Placed) -> Result<bool> {
        Ok(match made_from(&placed.entry) {
            MadeFrom::Link => true,
            MadeFrom::Content(hash) => self.store.local_file_by_hash(hash)?.is_some(),
            MadeFrom::Nothing => false,
        })
    }

    /// Applies what can be applied of one entry at once; says what is left
    /// for the later phases.
    fn apply_one(
        &mut self,
        placed: &Placed,
        deletion: TrashReason,
        report: &mut ApplyReport,
    ) -> Result<Next> {
        let entry = &placed.entry;
        let Some(record) = self.store.local_file_by_id(entry.id)? else {
            // Not held here: a file never held here (not dropped) is made
            // here when its content is already here.
            let never_held = !entry.holders.contains_key(&self.node_id());
            return Ok(if never_held && !entry.is_deleted() {
                Next::New
            } else {
                Next::Done
            });
        };
        let newest = match entry.resolved() {
            Resolved::Conflict(_) => return Ok(Next::Done), // shown by status; resolve settles it
            Resolved::Deleted => {
                self.apply_deletion(entry, &record, deletion, report)?;
                return Ok(Next::Done);
            }
            Resolved::File(newest) => newest.value.clone(),
        };
        let record = if newest.hash() != Some(record.hash) || newest.kind() != Some(record.kind) {
            match self.update_in_place(entry, &newest, &record, report)? {
                Some(updated) => updated,
                None => return Ok(Next::Done), // needs a transfer, or changed here
            }
        } else {
            record
        };
        if placed.path == record.path {
            return Ok(Next::Done);
        }
        // Kept under a distinct name because case folds here: it stays.
        let (here, _) = self
            .tree()?
            .local_name(&placed.path, Some(&record.path))
            .map_err(Error::io(
                "list the folder of",
                placed.path.to_path(&self.root),
            ))?;
        if here == record.path {
            return Ok(Next::Done);
        }
        if self.is_unchanged(&record, report)? {
            let parked = self.state_dir().join(MOVING_DIR).join(entry.id.to_string());
            return Ok(Next::Move(Move {
                record,
                to: placed.path.clone(),
                parked,
            }));
        }
        Ok(Next::Done)
    }

    /// Puts files left in `.harmony/moving/` by an interrupted apply back at
    /// their recorded paths, so that no later scan takes them for deleted.
    /// Partial copies there are only copies and are removed.
    pub(crate) fn recover_interrupted_moves(&mut self) -> Result<()> {
        let moving = self.state_dir().join(MOVING_DIR);
        let Ok(items) = fs::read_dir(&moving) else {
            return Ok(());
        };
        let tree = Tree::new(&self.root);
        for item in items {
            let item = item.map_err(Error::io("list", &moving))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with("copy-") || name.starts_with("link-") {
                fs::remove_file(item.path()).map_err(Error::io("remove", item.path()))?;
                continue;
            }
            let record = match FileId::from_hex(&name) {
                Ok(id) => self.store.local_file_by_id(id)?,
                Err(_) => None,
            };
            let Some(record) = record else { continue };
            match tree.place(&item.path(), &record.path, false) {
                Ok(()) => {}
                // Something took its place meanwhile: it stays parked, and
                // the next recovery tries again; nothing is overwritten.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("restore", record.path.to_path(&self.root))(e)),
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

    /// True when a location other than this one holds `hash`, for any file.
    pub(crate) fn held_elsewhere(&self, hash: crate::model::ContentHash) -> Result<bool> {
        let me = self.node_id();
        Ok(self
            .store
            .holders_of_content(hash)?
            .iter()
            .any(|n| *n != me))
    }

    fn apply_deletion(
        &mut self,
        entry: &FileEntry,
        record: &LocalFile,
        reason: TrashReason,
        report: &mut ApplyReport,
    ) -> Result<()> {
        if !self.is_unchanged(record, report)? {
            return Ok(());
        }
        let tree = self.tree()?;
        let path = record.path.to_path(&self.root);
        if self.held_elsewhere(record.hash)? || record.kind == Kind::Link {
            tree.remove_file(&record.path)
                .map_err(Error::io("delete", &path))?;
        } else {
            self.keep_in_trash(&tree, record, reason, false)?;
            report.trashed += 1;
        }
        tree.remove_empty_parents(&record.path);
        self.record_holding(entry, None, Some(&record.path))?;
        report.deleted += 1;
        Ok(())
    }

    /// Gives a held file its newest version where that needs no transfer:
    /// a new executable bit, a link, or bytes held here under another path.
    /// `None` when it needs a `get` (or changed here).
    fn update_in_place(
        &mut self,
        entry: &FileEntry,
        newest: &Content,
        record: &LocalFile,
        report: &mut ApplyReport,
    ) -> Result<Option<LocalFile>> {
        if !self.is_unchanged(record, report)? {
            return Ok(None);
        }
        let tree = Tree::new(&self.root);
        let at = record.path.to_path(&self.root);
        match newest {
            Content::File {
                hash, executable, ..
            } if *hash == record.hash && record.kind != Kind::Link => {
                tree.set_executable(&record.path, *executable)
                    .map_err(Error::io("change the mode of", &at))?;
                report.modes_changed += 1;
                let updated = self.stat_record(entry.id, &record.path, newest)?;
                self.record_holding(entry, Some(&updated), None)?;
                Ok(Some(updated))
            }
            _ => self.copy_from_local(entry, newest, Some(record), &record.path, report),
        }
    }

    /// Makes a file not held here, when its content is here already (a link
    /// always is).
    fn materialize(&mut self, placed: &Placed, report: &mut ApplyReport) -> Result<()> {
        let Resolved::File(newest) = placed.entry.resolved() else {
            return Ok(());
        };
        let newest = newest.value.clone();
        self.copy_from_local(&placed.entry, &newest, None, &placed.path, report)?;
        Ok(())
    }

    /// Puts `newest` at `path` from what is here: a link made, or bytes
    /// copied from a file holding them, into `.harmony/`, synced, then
    /// renamed into the tree. With `replacing`, the held older version is
    /// replaced (it goes to the trash unless another location holds it);
    /// without, the path must be free. `None` when the bytes are not here.
    fn copy_from_local(
        &mut self,
        entry: &FileEntry,
        newest: &Content,
        replacing: Option<&LocalFile>,
        path: &crate::model::RepoPath,
        report: &mut ApplyReport,
    ) -> Result<Option<LocalFile>> {
        let tree = self.tree()?;
        let staging = self.state_dir().join(MOVING_DIR);
        fs::create_dir_all(&staging).map_err(Error::io("create", &staging))?;
        let path = &match replacing {
            Some(_) => path.clone(),
            None => self.local_name(&tree, path, report)?,
        };
        let staged = match newest {
            Content::Link { target } => {
                let link = staging.join(format!("link-{}", entry.id));
                let _ = fs::remove_file(&link);
                std::os::unix::fs::symlink(target.as_str(), &link)
                    .map_err(Error::io("make the link", &link))?;
                link
            }
            Content::File {
                hash,
                mtime_ns,
                executable,
                ..
            } => {
                let Some(source) = self.store.local_file_by_hash(*hash)? else {
                    return Ok(None); // needs a transfer: `get`
                };
                if source.kind == Kind::Link
                    || !still_as_recorded(&self.root, &source).unwrap_or(false)
                {
                    return Ok(None);
                }
                let copy = staging.join(format!("copy-{}", entry.id));
                let copied = (|| -> io::Result<()> {
                    let mut from = tree.open_read(&source.path)?;
                    let mut to = fs::File::create(&copy)?;
                    io::copy(&mut from, &mut to)?;
                    set_executable(&to, *executable)?;
                    to.sync_all()
                })();
                copied.map_err(Error::io("copy", &copy))?;
                let _ = crate::scan::set_mtime(&copy, *mtime_ns);
                copy
            }
            Content::Deleted => return Ok(None),
        };
        let target = path.to_path(&self.root);
        if let Some(old) = replacing {
            if old.kind != Kind::Link && !self.held_elsewhere(old.hash)? {
                self.keep_in_trash(&tree, old, TrashReason::Replaced, true)?;
                report.trashed += 1;
            }
        }
        let placed = tree.place(&staged, path, replacing.is_some());
        if let Err(e) = placed {
            let _ = fs::remove_file(&staged);
            return Err(match e.kind() {
                io::ErrorKind::AlreadyExists => Error::Refused(format!(
                    "{path} is taken here by a file Harmony does not know; commit or move it, then sync again"
                )),
                _ => Error::io("place", &target)(e),
            });
        }
        let placed = self.stat_record(entry.id, path, newest)?;
        self.record_holding(entry, Some(&placed), None)?;
        report.copied_locally += 1;
        Ok(Some(placed))
    }

    /// The local record of the file now at `path`, of version `content`.
    fn stat_record(
        &self,
        id: FileId,
        path: &crate::model::RepoPath,
        content: &Content,
    ) -> Result<LocalFile> {
        let at = path.to_path(&self.root);
        let stat = Tree::new(&self.root)
            .lstat(path)
            .map_err(Error::io("stat", &at))?
            .ok_or_else(|| Error::io("stat", &at)(io::ErrorKind::NotFound.into()))?;
        Ok(LocalFile {
            path: path.clone(),
            file_id: id,
            hash: content.hash().unwrap_or(crate::model::ContentHash([0; 32])),
            stat: file_stat(&stat),
            kind: content.kind().unwrap_or(Kind::File),
        })
    }

    /// Records what this node now holds of `entry` (`placed`, or nothing)
    /// and its local file, in one transaction; `gone` is a local record to
    /// forget.
    fn record_holding(
        &mut self,
        entry: &FileEntry,
        placed: Option<&LocalFile>,
        gone: Option<&crate::model::RepoPath>,
    ) -> Result<()> {
        let me = self.node_id();
        let writer = self.store.write()?;
        let counter = writer.next_write_counter()?;
        let mut current = writer.entry(entry.id)?.unwrap_or_else(|| entry.clone());
        current.set_holding(me, placed.map(|p| p.hash), counter);
        writer.put_entry(&current)?;
        if let Some(path) = gone {
            writer.remove_local_file(path)?;
        }
        if let Some(placed) = placed {
            if let Some(old) = writer.local_file_path_of(entry.id)? {
                if old != placed.path {
                    writer.remove_local_file(&old)?;
                }
            }
            writer.put_local_file(placed)?;
        }
        writer.commit()?;
        Ok(())
    }

    /// Where a file placed at `path` lives here: `path`, or a distinct name
    /// when this file system folds case and a name differing only in case
    /// is taken (reported: neither file may replace the other).
    fn local_name(
        &self,
        tree: &Tree,
        path: &crate::model::RepoPath,
        report: &mut ApplyReport,
    ) -> Result<crate::model::RepoPath> {
        let (name, twin) = tree
            .local_name(path, None)
            .map_err(Error::io("list the folder of", path.to_path(&self.root)))?;
        if let Some(twin) = twin {
            report.case_collisions.push(format!(
                "{path}: differs only in case from {twin}, which this file system takes for the same name; kept here as {name}"
            ));
        }
        Ok(name)
    }

    /// Moves files in two steps: all out of the tree into `.harmony/moving/`,
    /// then each to its new path. A target taken by a file Harmony does not
    /// know is never overwritten: the moved file goes back and is blocked.
    fn apply_moves(
        &mut self,
        moves: Vec<(Placed, Move)>,
        report: &mut ApplyReport,
    ) -> Result<Vec<(Placed, std::result::Result<(), String>)>> {
        let mut results = Vec::new();
        if moves.is_empty() {
            return Ok(results);
        }
        let moving = self.state_dir().join(MOVING_DIR);
        fs::create_dir_all(&moving).map_err(Error::io("create", &moving))?;
        let tree = self.tree()?;
        let mut parked = Vec::with_capacity(moves.len());
        for (placed, m) in moves {
            match tree.take_out(&m.record.path, &m.parked) {
                Ok(()) => parked.push((placed, m)),
                Err(e) => results.push((placed, Err(format!("cannot move it: {e}")))),
            }
        }
        for (_, m) in &parked {
            tree.remove_empty_parents(&m.record.path);
        }
        for (_, m) in parked.iter_mut() {
            m.to = self.local_name(&tree, &m.to, report)?;
        }
        let writer = self.store.write()?;
        for (placed, m) in parked {
            let result = match tree.place(&m.parked, &m.to, false) {
                Ok(()) => Ok(m.to.clone()),
                Err(e) => {
                    let why = match e.kind() {
                        io::ErrorKind::AlreadyExists => format!(
                            "moved to {} elsewhere, but that path is taken here by a file Harmony does not know; left at {}",
                            m.to, m.record.path
                        ),
                        _ => format!("cannot move it to {}: {e}; left at {}", m.to, m.record.path),
                    };
                    // Back where it was; if even that fails it stays parked
                    // and the next apply's recovery puts it back.
                    let _ = tree.place(&m.parked, &m.record.path, false);
                    Err(why)
                }
            };
            let path = result.clone().unwrap_or_else(|_| m.record.path.clone());
            let at = path.to_path(&self.root);
            let stat = tree
                .lstat(&path)
                .map_err(Error::io("stat", &at))?
                .map(|s| file_stat(&s));
            writer.remove_local_file(&m.record.path)?;
            if let Some(stat) = stat {
                writer.put_local_file(&LocalFile {
                    path,
                    stat,
                    ..m.record
                })?;
            }
            if result.is_ok() {
                report.moved += 1;
            }
            results.push((placed, result.map(|_| ())));
        }
        writer.commit()?;
        Ok(results)
    }
}

/// Reports a file renamed to different names at once.
fn note_rename_conflict(entry: &FileEntry, report: &mut ApplyReport) {
    if !entry.path.is_conflict() {
        return;
    }
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
