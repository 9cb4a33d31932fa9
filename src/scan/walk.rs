//! Walking the working tree: which regular files are there, with their stat
//! fields, honouring ignore rules. Nothing is read here, only listed.
//!
//! Symbolic links are listed as links (never followed), unless the location
//! turned them off. Defined behaviours for what Harmony does not sync (each
//! reported as a [`Skipped`] so the user hears of it, and never mistaken for
//! a deletion): links when turned off; special files (FIFOs,
//! sockets, devices) are not synced; names that are not UTF-8 are not synced
//! (rename them); unreadable folders are not descended, and files recorded
//! under them are left as they were.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::WalkBuilder;

use crate::model::{Kind, RepoPath, STATE_DIR};
use crate::store::FileStat;

/// Per-folder ignore files, in gitignore syntax.
pub const IGNORE_FILE: &str = ".harmonyignore";

/// Names never synced: Harmony's own folder and editors' temporary files.
const BUILTIN_IGNORES: &[&str] = &[
    STATE_DIR, // .harmony/
    "*.swp",   // vim
    "*.swo",
    "*.swx",
    "4913", // vim's write probe
    "*~",   // emacs, gedit, kate backups
    ".#*",  // emacs lock files
    "#*#",  // emacs auto-save
    ".*.kate-swp",
    ".~lock.*#",       // LibreOffice locks
    ".DS_Store",       // macOS Finder
    ".harmony.init-*", // an interrupted `init`
];

/// A regular file or a symbolic link found in the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkedFile {
    /// Its path in the repository.
    pub path: RepoPath,
    /// Its stat fields at the walk (the read checks they held).
    pub stat: FileStat,
    /// File, executable or link.
    pub kind: Kind,
}

/// Why something in the tree is not synced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A symbolic link, while links are turned off in `config.toml`.
    Symlink,
    /// A FIFO, socket or device: nothing that can be synced.
    Special,
    /// A name that is not UTF-8.
    NotUtf8,
    /// A name no repository path can have (the rule it breaks).
    Invalid(String),
    /// Could not be read (what the system said): what was recorded under it is kept.
    Unreadable(String),
}

/// Something in the tree that is not synced, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The path relative to the root, lossily printable.
    pub path: PathBuf,
    /// The repository path, when the name is valid.
    pub repo_path: Option<RepoPath>,
    /// Why it is not synced.
    pub reason: SkipReason,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.display();
        match &self.reason {
            SkipReason::Symlink => write!(
                f,
                "{path}: symbolic link, not synced (links are turned off in .harmony/config.toml)"
            ),
            SkipReason::Special => write!(
                f,
                "{path}: not a regular file (FIFO, socket or device), not synced"
            ),
            SkipReason::NotUtf8 => {
                write!(f, "{path}: name is not valid UTF-8, not synced; rename it")
            }
            SkipReason::Invalid(why) => write!(f, "{path}: {why}"),
            SkipReason::Unreadable(why) => write!(
                f,
                "{path}: cannot be read ({why}); what was recorded under it is kept as it was"
            ),
        }
    }
}

/// Everything one walk found.
#[derive(Debug, Default)]
pub struct Walked {
    /// Regular files and links, in walk order.
    pub files: Vec<WalkedFile>,
    /// What was left out, with its reason.
    pub skipped: Vec<Skipped>,
}

impl Skipped {
    /// True when `path` is at or under one of `skipped` (an unreadable folder,
    /// a symlink, ...): the walk says nothing about it, so it is not deleted.
    pub fn covers(skipped: &[Skipped], path: &RepoPath) -> bool {
        skipped
            .iter()
            .filter_map(|s| s.repo_path.as_ref())
            .any(|skipped| path.starts_with(skipped))
    }
}

/// The built-in names as one matcher, tried on each name along a path.
pub(super) fn builtin_ignores() -> GlobSet {
    let mut builder = GlobSetBuilder::new();
    for pattern in BUILTIN_IGNORES {
        builder.add(Glob::new(pattern).expect("built-in ignore patterns are valid"));
    }
    builder.build().expect("built-in ignore patterns are valid")
}

/// Lists the regular files under `root`, and its symbolic links when
/// `symlinks` is on.
pub fn walk(root: &Path, symlinks: bool, mut on_file: impl FnMut(u64)) -> Walked {
    let builtin = builtin_ignores();
    let mut walker = WalkBuilder::new(root);
    walker
        .standard_filters(false)
        .follow_links(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .filter_entry(move |entry| !builtin.is_match(entry.file_name()));
    let mut walked = Walked::default();
    for result in walker.build() {
        let entry = match result {
            Ok(entry) => entry,
            Err(err) => {
                walked.skipped.push(skipped_for_error(root, &err));
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            continue;
        }
        let repo_path = match RepoPath::from_relative(relative) {
            Ok(p) => p,
            Err(e) => {
                let reason = match e {
                    crate::model::PathError::NotUtf8(_) => SkipReason::NotUtf8,
                    other => SkipReason::Invalid(other.to_string()),
                };
                walked.skipped.push(Skipped {
                    path: relative.to_owned(),
                    repo_path: None,
                    reason,
                });
                continue;
            }
        };
        let skip = |reason| Skipped {
            path: relative.to_owned(),
            repo_path: Some(repo_path.clone()),
            reason,
        };
        if file_type.is_symlink() && !symlinks {
            walked.skipped.push(skip(SkipReason::Symlink));
            continue;
        }
        if !file_type.is_file() && !file_type.is_symlink() {
            walked.skipped.push(skip(SkipReason::Special));
            continue;
        }
        match entry.metadata() {
            Ok(meta) => {
                on_file(meta.len());
                walked.files.push(WalkedFile {
                    path: repo_path,
                    stat: stat_of(&meta),
                    kind: kind_of(&meta),
                });
            }
            // Vanished between listing and stat: as if never seen.
            Err(e) if is_not_found(&e) => {}
            Err(e) => walked
                .skipped
                .push(skip(SkipReason::Unreadable(e.to_string()))),
        }
    }
    walked
}

/// The stat fields Harmony compares to decide whether a file may have changed.
pub fn stat_of(meta: &Metadata) -> FileStat {
    use std::os::unix::fs::MetadataExt;
    FileStat {
        size: meta.len(),
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        inode: meta.ino(),
        dev: meta.dev(),
    }
}

/// What a working-tree file is, from its (not followed) metadata.
pub fn kind_of(meta: &Metadata) -> Kind {
    use std::os::unix::fs::PermissionsExt;
    if meta.file_type().is_symlink() {
        Kind::Link
    } else if crate::tree::is_executable(meta.permissions().mode()) {
        Kind::Executable
    } else {
        Kind::File
    }
}

/// Gives the file at `path` the modification time `mtime_ns` (as
/// [`stat_of`] reads it: nanoseconds since the epoch), leaving its access
/// time: one system call, no open.
pub fn set_mtime(path: &Path, mtime_ns: i64) -> std::io::Result<()> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD, UTIME_OMIT};
    let ns = mtime_ns.max(0);
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: ns / 1_000_000_000,
            tv_nsec: ns % 1_000_000_000,
        },
    };
    Ok(utimensat(CWD, path, &times, AtFlags::empty())?)
}

fn is_not_found(err: &ignore::Error) -> bool {
    err.io_error()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

fn skipped_for_error(root: &Path, err: &ignore::Error) -> Skipped {
    let path = error_path(err)
        .map(|p| p.strip_prefix(root).unwrap_or(p).to_owned())
        .unwrap_or_default();
    let repo_path = RepoPath::from_relative(&path).ok();
    Skipped {
        path,
        repo_path,
        reason: SkipReason::Unreadable(
            err.io_error()
                .map(|e| e.to_string())
                .unwrap_or_else(|| err.to_string()),
        ),
    }
}

fn error_path(err: &ignore::Error) -> Option<&Path> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Partial(errs) => errs.iter().find_map(error_path),
        _ => None,
    }
}
