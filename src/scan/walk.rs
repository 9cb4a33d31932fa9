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
use std::sync::{mpsc, Mutex};

use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::gitignore::Gitignore;
use ignore::Match;

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
/// `symlinks` is on, handing them to `found` in batches, **in path order**: the byte
/// order of their repository paths, which is the order the state database
/// keeps `local_files` in. So a scan compares the two as one merge, holding
/// neither in memory (a million-file tree costs a million-entry map
/// otherwise). Returns what was left out, with its reason.
///
/// Folders are listed one at a time; siblings are sorted by name, a folder
/// as its name followed by `/`, which is how it sorts among the paths under
/// it. (`ignore`'s walker sorts by name alone and cannot be told which
/// entries are folders, so "a.b" would come after "a/x".) The ignore rules
/// are `ignore`'s: each folder's `.harmonyignore`, the deepest one with a
/// matching rule deciding, and nothing under an ignored folder is listed.
pub fn walk(root: &Path, symlinks: bool, mut found: impl FnMut(Vec<WalkedFile>)) -> Vec<Skipped> {
    let (jobs, queued) = mpsc::sync_channel::<StatJob>(STAT_THREADS * 2);
    let queued = Mutex::new(queued);
    std::thread::scope(|threads| {
        for _ in 0..STAT_THREADS {
            threads.spawn(|| stat_jobs(&queued));
        }
        let (order, in_order) = mpsc::sync_channel::<mpsc::Receiver<Stated>>(STAT_THREADS * 4);
        let lister = threads.spawn(move || {
            let mut batch = Vec::with_capacity(STAT_BATCH);
            let send = |batch: Vec<Listed>| {
                let (reply, stated) = mpsc::sync_channel(1);
                // Both ends live until this scope ends; a send fails only
                // when a receiving thread panicked, which the scope reports.
                let _ = jobs.send((batch, reply));
                let _ = order.send(stated);
            };
            let skipped = list(root, symlinks, |listed| {
                batch.push(listed);
                if batch.len() == STAT_BATCH {
                    send(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(STAT_BATCH),
                    ));
                }
            });
            send(batch);
            skipped
        });
        let mut skipped = Vec::new();
        for stated in in_order {
            let Ok(stated) = stated.recv() else { break };
            found(stated.files);
            skipped.extend(stated.skipped);
        }
        skipped.extend(
            lister
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        );
        skipped
    })
}

/// Files stat'ed per job: large enough that a job costs more than its
/// channel messages, small enough that the threads share the work.
const STAT_BATCH: usize = 512;

/// Threads that stat listed files. Stat is most of a rescan's time (the
/// kernel's name lookup and `getattr`), and one thread listing folders
/// kept two cores half idle.
const STAT_THREADS: usize = 2;

/// A file listed, to be stat'ed: its repository path and its entry in the
/// folder's listing (stat'ed relative to the folder, no path lookup).
struct Listed {
    path: RepoPath,
    entry: std::fs::DirEntry,
}

/// Listed files, and where to send them stat'ed.
type StatJob = (Vec<Listed>, mpsc::SyncSender<Stated>);

/// One job's files, stat'ed, in the order listed, and the ones that could
/// not be.
struct Stated {
    files: Vec<WalkedFile>,
    skipped: Vec<Skipped>,
}

/// Stats the files of jobs taken from `queued` until it closes.
fn stat_jobs(queued: &Mutex<mpsc::Receiver<StatJob>>) {
    loop {
        let job = queued.lock().map(|q| q.recv());
        let Ok(Ok((listed, reply))) = job else { return };
        let mut stated = Stated {
            files: Vec::with_capacity(listed.len()),
            skipped: Vec::new(),
        };
        for Listed { path, entry } in listed {
            match entry.metadata() {
                Ok(meta) => stated.files.push(WalkedFile {
                    path,
                    stat: stat_of(&meta),
                    kind: kind_of(&meta),
                }),
                // Vanished between listing and stat: as if never seen.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => stated.skipped.push(Skipped {
                    path: PathBuf::from(path.as_str()),
                    repo_path: Some(path),
                    reason: SkipReason::Unreadable(e.to_string()),
                }),
            }
        }
        let _ = reply.send(stated);
    }
}

/// The walk's first half: lists folders in path order, honouring the
/// ignore rules, and hands over each file or link to stat.
fn list(root: &Path, symlinks: bool, mut listed: impl FnMut(Listed)) -> Vec<Skipped> {
    let builtin = builtin_ignores();
    let mut skipped = Vec::new();
    let mut stack: Vec<Folder> = Vec::new();
    match Folder::open(root.to_path_buf(), String::new()) {
        Ok(folder) => stack.push(folder),
        Err(e) => skipped.push(unreadable(PathBuf::new(), None, &e)),
    }
    while let Some(folder) = stack.last_mut() {
        let Some(child) = folder.children.pop() else {
            stack.pop();
            continue;
        };
        let folder = stack.last().expect("the folder just taken from");
        if builtin.is_match(&child.name) {
            continue;
        }
        let relative = || Path::new(&folder.prefix).join(&child.name);
        let Some(name) = child.name.to_str() else {
            skipped.push(Skipped {
                path: relative(),
                repo_path: None,
                reason: SkipReason::NotUtf8,
            });
            continue;
        };
        let is_dir = child.is_dir;
        let under_rules = stack.iter().any(|f| f.rules.is_some());
        if under_rules && ignored(&stack, &folder.path.join(name), is_dir) {
            continue;
        }
        let repo_path = match RepoPath::new(&format!("{}{name}", folder.prefix)) {
            Ok(p) => p,
            Err(e) => {
                skipped.push(Skipped {
                    path: relative(),
                    repo_path: None,
                    reason: SkipReason::Invalid(e.to_string()),
                });
                continue;
            }
        };
        let skip = |reason| Skipped {
            path: relative(),
            repo_path: Some(repo_path.clone()),
            reason,
        };
        let file_type = match child.file_type {
            Ok(t) => t,
            Err(e) => {
                skipped.push(skip(SkipReason::Unreadable(e.to_string())));
                continue;
            }
        };
        if file_type.is_dir() {
            let opened = Folder::open(folder.path.join(name), format!("{repo_path}/"));
            match opened {
                Ok(sub) => stack.push(sub),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => skipped.push(unreadable(relative(), Some(repo_path), &e)),
            }
            continue;
        }
        if file_type.is_symlink() && !symlinks {
            skipped.push(skip(SkipReason::Symlink));
            continue;
        }
        if !file_type.is_file() && !file_type.is_symlink() {
            skipped.push(skip(SkipReason::Special));
            continue;
        }
        listed(Listed {
            path: repo_path,
            entry: child.entry,
        });
    }
    skipped
}

/// A folder being walked: what is left of its sorted listing (last first,
/// so taking the next is a pop), and its ignore file.
struct Folder {
    /// Where it is on disk.
    path: PathBuf,
    /// Its repository path with a trailing `/`; empty for the root.
    prefix: String,
    /// Its entries, in reverse path order.
    children: Vec<Child>,
    /// Its `.harmonyignore`, when it has one.
    rules: Option<Gitignore>,
}

/// One entry of a folder's listing.
struct Child {
    name: std::ffi::OsString,
    /// Whether it is a folder, which sorts as its name followed by `/`.
    is_dir: bool,
    /// From the listing (no stat on most file systems).
    file_type: std::io::Result<std::fs::FileType>,
    entry: std::fs::DirEntry,
}

impl Child {
    /// The bytes it sorts by among its siblings: its name, and for a
    /// folder a `/` after it, which is how the paths under it sort.
    fn sort_key(&self) -> impl Iterator<Item = u8> + '_ {
        use std::os::unix::ffi::OsStrExt;
        let slash: &[u8] = if self.is_dir { b"/" } else { b"" };
        self.name.as_bytes().iter().chain(slash).copied()
    }
}

impl Folder {
    fn open(path: PathBuf, prefix: String) -> std::io::Result<Folder> {
        let mut children = Vec::new();
        let mut has_rules = false;
        for entry in std::fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry.file_name();
            let file_type = entry.file_type();
            has_rules |= name == IGNORE_FILE && file_type.as_ref().is_ok_and(|t| t.is_file());
            children.push(Child {
                name,
                is_dir: file_type.as_ref().is_ok_and(|t| t.is_dir()),
                file_type,
                entry,
            });
        }
        // Reverse path order.
        children.sort_unstable_by(|a, b| b.sort_key().cmp(a.sort_key()));
        let rules = has_rules.then(|| Gitignore::new(path.join(IGNORE_FILE)).0);
        Ok(Folder {
            path,
            prefix,
            children,
            rules,
        })
    }
}

/// Whether the ignore files of the folders on `stack` ignore `path`: the
/// deepest one with a matching rule decides, as in `ignore`'s walker.
fn ignored(stack: &[Folder], path: &Path, is_dir: bool) -> bool {
    for folder in stack.iter().rev() {
        if let Some(rules) = &folder.rules {
            match rules.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
    }
    false
}

fn unreadable(path: PathBuf, repo_path: Option<RepoPath>, err: &std::io::Error) -> Skipped {
    Skipped {
        path,
        repo_path,
        reason: SkipReason::Unreadable(err.to_string()),
    }
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

#[cfg(test)]
mod tests {
    use super::walk;
    use std::fs;

    /// The scan merges the walk with the database's `ORDER BY path`: the
    /// walk must list in byte order of whole paths, where a folder's files
    /// sort as "name/..." among siblings such as "name.txt" and "name-2".
    #[test]
    fn lists_in_the_byte_order_of_whole_paths() {
        let dir = tempfile::tempdir().unwrap();
        let names = [
            "a.b",
            "a/x",
            "a-",
            "a0",
            "a/b.c/d",
            "a/b/c",
            "a/b-",
            "b",
            "A",
            "a/b/c.d/e",
            "ä",
            "a b",
        ];
        for name in names {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, name).unwrap();
        }
        let mut listed = Vec::new();
        let skipped = walk(dir.path(), true, |files| {
            listed.extend(files.into_iter().map(|f| f.path.to_string()))
        });
        assert!(skipped.is_empty(), "{skipped:?}");
        let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        expected.sort();
        assert_eq!(listed, expected);
    }
}
