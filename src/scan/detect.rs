//! Change detection, as pure functions: from what was recorded and what a walk
//! found, which files must be read ([`triage`]), and from their hashes, what
//! changed ([`detect`]): adds, edits, deletions, and renames recognised by
//! inode (even when edited too) or by content.

use std::collections::{BTreeMap, HashMap};

use crate::model::{ContentHash, FileId, Kind, LinkTarget, RepoPath};
use crate::store::{FileStat, LocalFile};

use super::WalkedFile;

/// The outcome of comparing stat fields only.
#[derive(Debug, Default)]
pub struct Triage {
    /// Files whose stat fields changed, or new paths: they must be read.
    pub to_read: Vec<WalkedFile>,
    /// New paths that are a recorded file moved (same device, inode, size
    /// and mtime as a recorded path now missing): known without reading, so
    /// renaming a folder of large files reads nothing. Its recorded content
    /// is taken as is, like an unchanged file's (a rename changes ctime, so
    /// an edit that keeps size and mtime during a move would go unseen).
    pub moved: Vec<ReadFile>,
    /// What was recorded at the paths in `to_read` that were recorded:
    /// the files that may have been edited.
    pub changed: Vec<LocalFile>,
    /// Recorded paths not found by the walk.
    pub missing: Vec<LocalFile>,
    /// How many files were recognised as unchanged without reading them.
    pub unchanged: usize,
}

/// Splits the walk into unchanged files, moved files, files to read, and
/// missing paths. Both `recorded` and `walked` come in path order (the
/// database's and [`walk`](super::walk)'s), so they are compared as one
/// merge: a tree of a million unchanged files costs no map of a million
/// paths. Only what differs is kept.
pub fn triage(
    recorded: impl IntoIterator<Item = LocalFile>,
    walked: impl IntoIterator<Item = WalkedFile>,
) -> Triage {
    let mut recorded = recorded.into_iter().peekable();
    let mut triage = Triage::default();
    let mut new_paths = Vec::new();
    for file in walked {
        while let Some(gone) = recorded.next_if(|r| r.path < file.path) {
            triage.missing.push(gone);
        }
        match recorded.next_if(|r| r.path == file.path) {
            Some(old) if old.stat == file.stat => triage.unchanged += 1,
            Some(old) => {
                triage.changed.push(old);
                triage.to_read.push(file);
            }
            None => new_paths.push(file),
        }
    }
    triage.missing.extend(recorded);
    let missing_by_inode: HashMap<(u64, u64), &LocalFile> = triage
        .missing
        .iter()
        .map(|f| ((f.stat.dev, f.stat.inode), f))
        .collect();
    for file in new_paths {
        // Links are not taken as moved: reading one costs a readlink.
        let same = missing_by_inode
            .get(&(file.stat.dev, file.stat.inode))
            .filter(|old| {
                old.stat.size == file.stat.size
                    && old.stat.mtime_ns == file.stat.mtime_ns
                    && old.kind == file.kind
                    && file.kind != Kind::Link
            });
        match same {
            Some(old) => triage.moved.push(ReadFile {
                path: file.path,
                stat: file.stat,
                hash: old.hash,
                kind: file.kind,
                target: None,
                recheck: false,
            }),
            None => triage.to_read.push(file),
        }
    }
    triage.to_read.sort_by(|a, b| a.path.cmp(&b.path));
    triage
}

/// A file that was read, with the hash of the bytes read and the stat fields
/// that held throughout the read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadFile {
    /// Where it was read.
    pub path: RepoPath,
    /// Its stat fields, unchanged from before the read to after it.
    pub stat: FileStat,
    /// blake3 of the bytes read.
    pub hash: ContentHash,
    /// File, executable or link.
    pub kind: Kind,
    /// The target, for a link.
    pub target: Option<LinkTarget>,
    /// Modified so shortly before it was read that a write right after the
    /// read might keep the same timestamp: record it to be read again next
    /// time (git's "racily clean" problem).
    pub recheck: bool,
}

impl ReadFile {
    /// The stat fields to record: a file to recheck gets an mtime no real file
    /// has, so the next scan reads it again.
    pub fn recorded_stat(&self) -> FileStat {
        let mut stat = self.stat;
        if self.recheck {
            stat.mtime_ns = i64::MIN;
        }
        stat
    }
}

/// One change to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A path nothing was recorded for, with content not explained by a rename.
    Added(ReadFile),
    /// New bytes at a recorded path.
    Edited {
        /// The recorded file.
        file_id: FileId,
        /// Its new bytes.
        file: ReadFile,
    },
    /// A recorded file under a new path; `edited` when its bytes changed too.
    Renamed {
        /// The recorded file.
        file_id: FileId,
        /// The path it was recorded under.
        from: RepoPath,
        /// What is at the new path.
        file: ReadFile,
        /// The bytes changed too.
        edited: bool,
    },
    /// A recorded path that is gone.
    Deleted(LocalFile),
    /// Same bytes, new stat fields (touched, copied over with the same
    /// content): nothing to replicate, only the local record is refreshed.
    Touched {
        /// The recorded file.
        file_id: FileId,
        /// What was read (same hash, new stat).
        file: ReadFile,
    },
}

/// Decides what changed. `changed` is what the state says was at the
/// recorded paths among those read ([`Triage::changed`]), `read` the files
/// read in this scan, `missing` the recorded paths now gone.
pub fn detect(changed: &[LocalFile], read: Vec<ReadFile>, missing: Vec<LocalFile>) -> Vec<Change> {
    let by_path: HashMap<&RepoPath, &LocalFile> = changed.iter().map(|f| (&f.path, f)).collect();
    let mut changes = Vec::new();
    let mut new_paths = Vec::new();
    for file in read {
        match by_path.get(&file.path) {
            Some(old) if old.hash == file.hash && old.kind == file.kind => {
                changes.push(Change::Touched {
                    file_id: old.file_id,
                    file,
                })
            }
            Some(old) => changes.push(Change::Edited {
                file_id: old.file_id,
                file,
            }),
            None => new_paths.push(file),
        }
    }

    // Renames, strongest evidence first: the same inode (survives an edit),
    // then the same content (a copy-and-delete, a move across filesystems).
    let mut gone: BTreeMap<RepoPath, LocalFile> =
        missing.into_iter().map(|f| (f.path.clone(), f)).collect();
    let by_inode: HashMap<(u64, u64), RepoPath> = gone
        .values()
        .map(|f| ((f.stat.dev, f.stat.inode), f.path.clone()))
        .collect();
    let mut unexplained = Vec::new();
    for file in new_paths {
        let old = by_inode
            .get(&(file.stat.dev, file.stat.inode))
            .and_then(|path| gone.remove(path));
        match old {
            Some(old) => changes.push(Change::Renamed {
                file_id: old.file_id,
                from: old.path,
                edited: old.hash != file.hash || old.kind != file.kind,
                file,
            }),
            None => unexplained.push(file),
        }
    }
    for file in unexplained {
        match take_same_content(&mut gone, &file) {
            Some(old) => changes.push(Change::Renamed {
                file_id: old.file_id,
                from: old.path,
                edited: old.kind != file.kind,
                file,
            }),
            None => changes.push(Change::Added(file)),
        }
    }
    changes.extend(gone.into_values().map(Change::Deleted));
    changes
}

/// Removes and returns a gone file with `file`'s content, preferring one with
/// the same name (a move between folders), then the first by path.
fn take_same_content(
    gone: &mut BTreeMap<RepoPath, LocalFile>,
    file: &ReadFile,
) -> Option<LocalFile> {
    let name = |p: &RepoPath| p.as_str().rsplit('/').next().map(str::to_owned);
    let candidates: Vec<&RepoPath> = gone
        .values()
        .filter(|g| g.hash == file.hash)
        .map(|g| &g.path)
        .collect();
    let pick = candidates
        .iter()
        .find(|p| name(p) == name(&file.path))
        .or(candidates.first())
        .map(|p| (*p).clone())?;
    gone.remove(&pick)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(inode: u64, mtime: i64) -> FileStat {
        FileStat {
            size: 1,
            mtime_ns: mtime,
            ctime_ns: mtime,
            inode,
            dev: 1,
        }
    }

    fn path(p: &str) -> RepoPath {
        RepoPath::new(p).unwrap()
    }

    fn recorded(p: &str, inode: u64, hash: u8) -> LocalFile {
        LocalFile {
            path: path(p),
            file_id: FileId([inode as u8; 16]),
            hash: ContentHash([hash; 32]),
            stat: stat(inode, 1),
            kind: Kind::File,
        }
    }

    fn read(p: &str, inode: u64, hash: u8) -> ReadFile {
        ReadFile {
            path: path(p),
            stat: stat(inode, 2),
            hash: ContentHash([hash; 32]),
            kind: Kind::File,
            target: None,
            recheck: false,
        }
    }

    fn walked(p: &str, inode: u64, mtime: i64) -> WalkedFile {
        WalkedFile {
            path: path(p),
            stat: stat(inode, mtime),
            kind: Kind::File,
        }
    }

    #[test]
    fn a_moved_file_is_recognised_without_reading_it() {
        let rec = vec![recorded("old/name", 7, 3)];
        let mut moved = walked("new/name", 7, 1);
        moved.stat.ctime_ns = 99; // a rename changes ctime
        let t = triage(rec.clone(), vec![moved]);
        assert!(t.to_read.is_empty());
        assert_eq!(t.moved.len(), 1);
        assert_eq!(t.moved[0].hash, ContentHash([3; 32]));
        // Edited on the way (new mtime): read it.
        let t = triage(rec, vec![walked("new/name", 7, 5)]);
        assert_eq!((t.to_read.len(), t.moved.len()), (1, 0));
    }

    #[test]
    fn triage_reads_only_changed_and_new_files() {
        let rec = vec![
            recorded("gone", 3, 3),
            recorded("same", 1, 1),
            recorded("touched", 2, 2),
        ];
        // Both sides in path order, as the database and the walk give them.
        let t = triage(
            rec,
            vec![
                walked("new", 4, 1),
                walked("same", 1, 1),
                walked("touched", 2, 5),
            ],
        );
        assert_eq!(t.unchanged, 1);
        let to_read: Vec<_> = t.to_read.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(to_read, ["new", "touched"]);
        assert_eq!(t.missing.len(), 1);
        assert_eq!(t.missing[0].path.as_str(), "gone");
        let changed: Vec<_> = t.changed.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(changed, ["touched"]);
    }

    #[test]
    fn classifies_every_kind_of_change() {
        let rec = vec![
            recorded("edit", 1, 1),
            recorded("touch", 2, 2),
            recorded("moved-by-inode", 3, 3),
            recorded("d/moved-by-content", 4, 4),
            recorded("deleted", 5, 5),
        ];
        let missing = vec![rec[2].clone(), rec[3].clone(), rec[4].clone()];
        let reads = vec![
            read("edit", 1, 10),
            read("touch", 2, 2),
            read("sub/renamed-and-edited", 3, 30),
            read("e/moved-by-content", 99, 4),
            read("added", 6, 6),
        ];
        let changes = detect(&rec, reads, missing);
        assert!(changes.contains(&Change::Edited {
            file_id: FileId([1; 16]),
            file: read("edit", 1, 10)
        }));
        assert!(changes.contains(&Change::Touched {
            file_id: FileId([2; 16]),
            file: read("touch", 2, 2)
        }));
        assert!(changes.contains(&Change::Renamed {
            file_id: FileId([3; 16]),
            from: path("moved-by-inode"),
            file: read("sub/renamed-and-edited", 3, 30),
            edited: true,
        }));
        assert!(changes.contains(&Change::Renamed {
            file_id: FileId([4; 16]),
            from: path("d/moved-by-content"),
            file: read("e/moved-by-content", 99, 4),
            edited: false,
        }));
        assert!(changes.contains(&Change::Added(read("added", 6, 6))));
        assert!(changes.contains(&Change::Deleted(recorded("deleted", 5, 5))));
        assert_eq!(changes.len(), 6);
    }

    #[test]
    fn duplicate_content_pairs_by_name_first() {
        let rec = vec![recorded("a/x", 1, 7), recorded("a/y", 2, 7)];
        let changes = detect(&rec, vec![read("b/y", 50, 7)], rec.clone());
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Renamed { from, .. } if from.as_str() == "a/y")));
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Deleted(f) if f.path.as_str() == "a/x")));
    }
}
