//! `commit`: scan the working tree and record what changed, in one
//! transaction.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{now_ms, Repo};
use crate::error::{Error, Result};
use crate::model::{Content, FileEntry, FileId, FileIdSequence, Kind, Stamp};
use crate::scan::{self, Change, ReadFile, ScanOutcome, ScanProgress};
use crate::store::{LocalFile, Writer};

/// A commit that would delete at least this share of the recorded files...
const MASS_DELETE_SHARE: f64 = 0.9;
/// ...and at least this many of them is refused without `allow_mass_delete`.
const MASS_DELETE_MIN: usize = 2;

/// How `commit` may treat what it finds.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    /// Record even a deletion of (nearly) every file.
    pub allow_mass_delete: bool,
}

/// What a commit recorded and what it could not.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CommitReport {
    /// Paths recorded for the first time.
    pub added: usize,
    /// Recorded files whose bytes changed.
    pub edited: usize,
    /// Recorded files found under a new path (by their content).
    pub renamed: usize,
    /// Recorded files that are gone.
    pub deleted: usize,
    /// Files recognised as unchanged without being read.
    pub unchanged: usize,
    /// Files whose bytes were read and hashed.
    pub files_read: usize,
    /// Bytes read and hashed.
    pub bytes_read: u64,
    /// Things not synced, one line each (symlinks, special files, ...).
    pub warnings: Vec<String>,
    /// How long the commit took.
    #[serde(serialize_with = "as_secs")]
    pub duration: Duration,
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl CommitReport {
    /// Files whose record changed: added, edited, renamed or deleted.
    pub fn changed(&self) -> usize {
        self.added + self.edited + self.renamed + self.deleted
    }
}

impl Repo {
    /// Scans the working tree and records adds, edits, renames and deletions.
    pub fn commit(
        &mut self,
        options: &CommitOptions,
        progress: &dyn ScanProgress,
    ) -> Result<CommitReport> {
        let started = Instant::now();
        self.recover_interrupted_moves()?;
        let recorded_count = self.store.local_file_count()?;
        let outcome = self.scan(progress)?;
        let deleted = outcome
            .changes
            .iter()
            .filter(|c| matches!(c, Change::Deleted(_)))
            .count();
        if !options.allow_mass_delete && is_mass_deletion(deleted, recorded_count) {
            return Err(Error::MassDeletion {
                root: self.root.clone(),
                deleted,
                recorded: recorded_count,
            });
        }

        let me = self.node_id();
        let writer = self.store.write()?;
        let mut report = CommitReport {
            unchanged: outcome.unchanged,
            files_read: outcome.files_read,
            bytes_read: outcome.bytes_read,
            warnings: warnings(&outcome),
            ..CommitReport::default()
        };
        for (hash, manifest) in &outcome.manifests {
            writer.put_manifest(*hash, manifest)?;
        }
        // The files this commit adds get consecutive ids.
        let mut new_ids = FileIdSequence::new_at(now_ms() as u64);
        for change in outcome.changes {
            let stamp = || -> Result<Stamp> {
                Ok(Stamp {
                    node: me,
                    counter: writer.next_write_counter()?,
                    at_ms: now_ms(),
                })
            };
            match change {
                // A path the repository already has (a file held elsewhere,
                // copied here by hand): the same file, not a new one.
                Change::Added(file) => match writer.live_entry_at(&file.path)? {
                    Some(mut entry) => {
                        let newest = &entry.content.winner().value;
                        let same =
                            newest.hash() == Some(file.hash) && newest.kind() == Some(file.kind);
                        if same && !entry.content.is_conflict() {
                            entry.set_holding(me, Some(file.hash), writer.next_write_counter()?);
                        } else {
                            entry.set_local_content(content_of(&file), stamp()?);
                            report.edited += 1;
                        }
                        writer.put_entry(&entry)?;
                        record_local(&writer, entry.id, &file)?;
                    }
                    None => {
                        let stamp = stamp()?;
                        let id = new_ids.next_id();
                        let entry =
                            FileEntry::new_file(id, file.path.clone(), content_of(&file), stamp);
                        writer.put_entry(&entry)?;
                        record_local(&writer, id, &file)?;
                        report.added += 1;
                    }
                },
                Change::Edited { file_id, file } => {
                    let mut entry = load(&writer, file_id)?;
                    entry.set_local_content(content_of(&file), stamp()?);
                    writer.put_entry(&entry)?;
                    record_local(&writer, file_id, &file)?;
                    report.edited += 1;
                }
                Change::Renamed {
                    file_id,
                    from,
                    file,
                    edited,
                } => {
                    let mut entry = load(&writer, file_id)?;
                    let stamp = stamp()?;
                    entry.rename(file.path.clone(), stamp);
                    if edited {
                        entry.set_local_content(content_of(&file), stamp);
                    }
                    writer.put_entry(&entry)?;
                    writer.remove_local_file(&from)?;
                    record_local(&writer, file_id, &file)?;
                    report.renamed += 1;
                }
                Change::Deleted(old) => {
                    let mut entry = load(&writer, old.file_id)?;
                    entry.set_local_content(Content::Deleted, stamp()?);
                    entry.acknowledge_deletion(me);
                    writer.put_entry(&entry)?;
                    writer.remove_local_file(&old.path)?;
                    report.deleted += 1;
                }
                Change::Touched { file_id, file } => record_local(&writer, file_id, &file)?,
            }
        }
        let replaced = writer.take_replaced();
        writer.commit()?;
        // A claim recorded here (a rename onto a path another location's
        // file holds) can move a file of this tree aside.
        if !replaced.is_empty() {
            let applied = self.apply_remote(&replaced)?;
            report.warnings.extend(applied.blocked);
        }
        report.duration = started.elapsed();
        Ok(report)
    }
}

impl Repo {
    /// Compares the working tree with what this location recorded, with
    /// its chunking and config.
    pub(super) fn scan(&self, progress: &dyn ScanProgress) -> Result<ScanOutcome> {
        let symlinks = self.config()?.symlinks;
        Ok(self.store.each_local_file(|recorded| {
            scan::scan(
                &self.root,
                recorded,
                self.settings.chunking,
                symlinks,
                progress,
            )
        })?)
    }
}

fn is_mass_deletion(deleted: usize, recorded: usize) -> bool {
    deleted >= MASS_DELETE_MIN && deleted as f64 >= MASS_DELETE_SHARE * recorded as f64
}

fn content_of(file: &ReadFile) -> Content {
    match &file.target {
        Some(target) => Content::Link {
            target: target.clone(),
        },
        None => Content::File {
            hash: file.hash,
            size: file.stat.size,
            mtime_ns: file.stat.mtime_ns,
            executable: file.kind == Kind::Executable,
        },
    }
}

fn load(writer: &Writer<'_>, id: FileId) -> Result<FileEntry> {
    writer.entry(id)?.ok_or_else(|| {
        Error::Inconsistent(format!("a recorded file refers to unknown file id {id}"))
    })
}

fn record_local(writer: &Writer<'_>, file_id: FileId, file: &ReadFile) -> Result<()> {
    writer.put_local_file(&LocalFile {
        path: file.path.clone(),
        file_id,
        hash: file.hash,
        stat: file.recorded_stat(),
        kind: file.kind,
    })?;
    Ok(())
}

/// One line per thing the user should hear about.
pub(super) fn warnings(outcome: &ScanOutcome) -> Vec<String> {
    let skipped = outcome.skipped.iter().map(ToString::to_string);
    let failed = outcome.failed.iter().map(ToString::to_string);
    let kept = outcome.kept.iter().map(|p| {
        format!(
            "{p}: recorded but now ignored or not a regular file; left as recorded (not deleted)"
        )
    });
    skipped.chain(failed).chain(kept).collect()
}

#[cfg(test)]
mod tests {
    use super::is_mass_deletion;

    #[test]
    fn mass_deletion_rule() {
        assert!(!is_mass_deletion(1, 1), "deleting the only file is fine");
        assert!(is_mass_deletion(2, 2));
        assert!(is_mass_deletion(95, 100));
        assert!(!is_mass_deletion(50, 100));
        assert!(!is_mass_deletion(0, 0));
    }
}
