//! Moving verified contents from staging into the working tree, in groups,
//! so that durability costs a few syncs per group instead of two fsyncs and
//! a database transaction per file:
//!
//! 1. the staged files of the group are made durable (one `fsync` for a
//!    lone file, one `syncfs` for many);
//! 2. each is renamed into place, if its target is still what the records
//!    say (never over a local change, never over an unknown file; an older
//!    version with no other copy is kept in `.harmony/trash/`);
//! 3. the renames are made durable (the folders' `fsync`, or `syncfs`);
//! 4. one database transaction records every file placed.
//!
//! A crash between 2 and 4, or a full disk failing 4, leaves files in
//! place that the records do not know yet: the next `get` finds each at its
//! path with the content it wants and records it as placed, and the next
//! commit adopts them (same content as the repository says, so nothing is
//! lost or conflicted). A crash before 2 leaves the staged files in
//! staging, where the next `get` resumes a large content from its part
//! file.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};

use crate::chunk::Manifest;
use crate::model::{Content, ContentHash, Kind, Placed, RepoPath, Resolved};
use crate::scan::{file_stat, set_mtime, still_as_recorded};
use crate::store::LocalFile;
use crate::tree::{set_executable, Tree};
use crate::{Error, Repo};

/// Files per group, at most.
const GROUP_FILES: usize = 4096;
/// Up to this many files (or folders) are synced one by one; more, by one
/// `syncfs` of the whole file system.
const SYNC_ONE_BY_ONE: usize = 4;

/// A verified content in staging, for the files that get it.
pub(super) struct Ready {
    pub staged: PathBuf,
    pub hash: ContentHash,
    /// Stored with the files, so that their chunks serve later gets and
    /// the next version's manifest is fetched page by page.
    pub manifest: Option<Manifest>,
    /// The files that get this content (several when files share it).
    pub targets: Vec<Placed>,
}

/// What one group did, for the report.
#[derive(Default)]
pub(super) struct Installed {
    pub files: usize,
    pub failed: Vec<String>,
}

/// Installs what arrives on `ready` until every sender is gone; `done` is
/// told after each group.
pub(super) fn run(
    root: &Path,
    ready: Receiver<Ready>,
    mut done: impl FnMut(Installed),
) -> crate::Result<()> {
    let mut repo = Repo::open(root)?;
    while let Ok(first) = ready.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_FILES {
            match ready.try_recv() {
                Ok(next) => group.push(next),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        done(install_group(&mut repo, group)?);
    }
    Ok(())
}

/// One file to place: a staged copy of the content and its target entry.
struct Placement {
    staged: PathBuf,
    hash: ContentHash,
    target: Placed,
}

fn install_group(repo: &mut Repo, group: Vec<Ready>) -> crate::Result<Installed> {
    let root = repo.root().to_path_buf();
    let mut installed = Installed::default();
    let mut placements = Vec::new();
    let mut manifests = Vec::new();
    for ready in group {
        let Some((_, _, mtime_ns)) = super::newest(&ready.targets[0].entry) else {
            continue;
        };
        // The content takes its files' modification time (not setting it
        // only makes the next commit look at the file again).
        let _ = set_mtime(&ready.staged, mtime_ns);
        for (k, target) in ready.targets.iter().enumerate() {
            // The first file takes the staged copy; each other one a copy.
            let staged = if k == 0 {
                ready.staged.clone()
            } else {
                let copy = ready.staged.with_extension(format!("part{k}"));
                let copied =
                    fs::copy(&ready.staged, &copy).and_then(|_| set_mtime(&copy, mtime_ns));
                if let Err(e) = copied {
                    let why = Error::io("copy it to", &copy)(e);
                    installed.failed.push(format!("{}: {why}", target.path));
                    continue;
                }
                copy
            };
            // Each file gets its version's executable bit.
            if let Err(e) = File::open(&staged).and_then(|f| set_executable(&f, executable(target)))
            {
                let why = Error::io("set the mode of", &staged)(e);
                installed.failed.push(format!("{}: {why}", target.path));
                continue;
            }
            placements.push(Placement {
                staged,
                hash: ready.hash,
                target: target.clone(),
            });
        }
        if let Some(manifest) = ready.manifest {
            manifests.push((ready.hash, manifest));
        }
    }
    let staged: Vec<&Path> = placements.iter().map(|p| p.staged.as_path()).collect();
    let staging = root.join(crate::model::STATE_DIR).join(super::STAGING_DIR);
    make_durable(&staged, true).map_err(Error::io("sync", &staging))?;

    let mut placed = Vec::new();
    for placement in placements {
        match place(repo, &placement) {
            Ok(done) => placed.push(done),
            Err(e) => installed
                .failed
                .push(format!("{}: {e}", placement.target.path)),
        }
    }
    let targets: Vec<PathBuf> = placed
        .iter()
        .map(|p: &PlacedFile| p.file.path.to_path(&root))
        .collect();
    let targets: Vec<&Path> = targets.iter().map(PathBuf::as_path).collect();
    make_durable(&targets, false).map_err(Error::io("sync", &root))?;

    let me = repo.node_id();
    let writer = repo.store_mut().write()?;
    for (hash, manifest) in &manifests {
        writer.put_manifest(*hash, manifest)?;
    }
    for done in &placed {
        if let Some(old) = &done.old {
            writer.remove_local_file(old)?;
        }
        writer.put_local_file(&done.file)?;
        let counter = writer.next_write_counter()?;
        let mut current = writer
            .entry(done.file.file_id)?
            .unwrap_or_else(|| done.entry.entry.clone());
        current.set_holding(me, Some(done.file.hash), counter);
        writer.put_entry(&current)?;
    }
    writer.commit()?;
    installed.files = placed.len();
    Ok(installed)
}

/// Makes `paths` durable: their contents (`contents`), or else the folders
/// holding them (their new names).
fn make_durable(paths: &[&Path], contents: bool) -> std::io::Result<()> {
    let targets: BTreeSet<&Path> = if contents {
        paths.iter().copied().collect()
    } else {
        paths.iter().filter_map(|p| p.parent()).collect()
    };
    if targets.len() > SYNC_ONE_BY_ONE {
        if let Some(any) = targets.first() {
            rustix::fs::syncfs(File::open(any)?)?;
        }
        return Ok(());
    }
    for path in targets {
        let file = File::open(path)?;
        if contents {
            file.sync_data()?;
        } else {
            file.sync_all()?;
        }
    }
    Ok(())
}

/// Whether the regular file at `path` (reached through no link) has
/// content `hash`.
fn holds(tree: &Tree, path: &RepoPath, hash: ContentHash) -> bool {
    tree.open_read(path)
        .and_then(super::staging::hash_of)
        .is_ok_and(|held| held == hash)
}

/// Whether the newest version of a target is executable.
fn executable(target: &Placed) -> bool {
    matches!(
        target.entry.resolved(),
        Resolved::File(v) if matches!(v.value, Content::File { executable: true, .. })
    )
}

/// A file placed in the working tree.
struct PlacedFile {
    file: LocalFile,
    entry: Placed,
    /// The path of the version it replaced, when that was recorded here.
    old: Option<RepoPath>,
}

/// Renames a staged content to its file's path: over the held older version
/// if it is still as recorded (kept in the trash when no other location
/// holds it), or at a free path; never over anything else, and never
/// through a symbolic link.
fn place(repo: &mut Repo, placement: &Placement) -> crate::Result<PlacedFile> {
    let root = repo.root();
    let tree = repo.tree()?;
    let target = &placement.target;
    let old = repo.store().local_file_by_id(target.entry.id)?;
    // A new file whose name differs only in case from another here, where
    // case folds: kept under a distinct name, so that neither vanishes.
    // (An update in place needs no such look.)
    let here = match &old {
        Some(old) if old.path == target.path => target.path.clone(),
        _ => {
            tree.local_name(&target.path, old.as_ref().map(|o| &o.path))
                .map_err(Error::io("list the folder of", target.path.to_path(root)))?
                .0
        }
    };
    let target_path = match &old {
        Some(old) if old.path != here => &target.path,
        _ => &here,
    };
    let at = target_path.to_path(root);
    let old_intact = match &old {
        Some(old) => still_as_recorded(root, old).map_err(Error::io("read", &at))?,
        None => false,
    };
    // Placed already by a get that could not record it (killed after its
    // rename, before its transaction, or its commit failed on a full disk):
    // the very content, so it is taken as placed (anything else at a path
    // not recorded is refused below).
    let placed_before = match &old {
        Some(old) if old_intact && old.path == *target_path => false,
        _ => holds(&tree, target_path, placement.hash),
    };
    let replace = match &old {
        Some(old) => {
            if !old_intact {
                // That get also replaced or removed the older version.
                let finished = placed_before
                    && (old.path == *target_path || !tree.exists(&old.path).unwrap_or(true));
                if !finished {
                    return Err(Error::Refused(format!(
                        "{} changed here since the last commit; not overwritten (commit it, then get again)",
                        old.path
                    )));
                }
            } else if old.kind != Kind::Link && !repo.held_elsewhere(old.hash)? {
                repo.keep_in_trash(&tree, old, crate::repo::TrashReason::Replaced, true)?;
            }
            old.path == *target_path
        }
        None => false,
    };
    if placed_before {
        let _ = fs::remove_file(&placement.staged);
        tree.set_executable(target_path, executable(target))
            .map_err(Error::io("change the mode of", &at))?;
    } else {
        tree.place(&placement.staged, target_path, replace)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::Refused(format!(
                    "{target_path} exists here but is not recorded; commit it first (it may become a conflict)"
                )),
                _ => Error::io("place", &at)(e),
            })?;
    }
    if let Some(old) = &old {
        if old.path != *target_path {
            let _ = tree.remove_file(&old.path);
            tree.remove_empty_parents(&old.path);
        }
    }
    let stat = tree
        .lstat(target_path)
        .map_err(Error::io("stat", &at))?
        .ok_or_else(|| Error::io("stat", &at)(std::io::ErrorKind::NotFound.into()))?;
    Ok(PlacedFile {
        file: LocalFile {
            path: target_path.clone(),
            file_id: target.entry.id,
            hash: placement.hash,
            stat: file_stat(&stat),
            kind: if executable(target) {
                Kind::Executable
            } else {
                Kind::File
            },
        },
        entry: target.clone(),
        old: old.map(|o| o.path),
    })
}
