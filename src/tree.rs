//! Writing to the working tree without ever passing through a symbolic
//! link (DESIGN.md, invariant 6).
//!
//! A path like `docs/two.txt` is not trusted to stay inside the location:
//! `docs` may have been replaced by a link to a folder elsewhere since it was
//! recorded. So no operation here hands a whole path to the kernel. Each
//! folder along the way is opened relative to the one before with
//! `O_NOFOLLOW | O_DIRECTORY` (a link there fails the open), and the last
//! step (create, rename, remove, link) is made relative to the last folder
//! opened, on the name alone, without following it either.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, RenameFlags, CWD};

use crate::model::RepoPath;

/// A location's working tree, opened at its root.
pub struct Tree {
    root: PathBuf,
    /// The file system takes names that differ only in case for one name
    /// (macOS and Windows defaults, case-folding ext4 folders).
    folds_case: bool,
}

/// Whether folders missing along a path are created.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Folders {
    Create,
    Existing,
}

impl Tree {
    /// The tree at `root`, on a file system that tells names apart by case.
    pub fn new(root: &Path) -> Tree {
        Tree {
            root: root.to_path_buf(),
            folds_case: false,
        }
    }

    /// The same tree, on a file system that folds case (or not).
    pub fn folding_case(self, folds_case: bool) -> Tree {
        Tree { folds_case, ..self }
    }

    /// Whether the file system at `dir` folds case: a name made there is
    /// looked up again in another case.
    pub fn probe_case_folding(dir: &Path) -> io::Result<bool> {
        let made = dir.join(format!("case-probe-{}", std::process::id()));
        File::create(&made)?;
        let folds = dir
            .join(format!("CASE-PROBE-{}", std::process::id()))
            .symlink_metadata()
            .is_ok();
        std::fs::remove_file(&made)?;
        Ok(folds)
    }

    /// Where a new file for `path` can live in this tree: `path` itself,
    /// unless the file system folds case and the folder already holds a
    /// name that differs from it only in case (another file of the
    /// repository: one must not replace the other). Then a distinct name,
    /// `stem.conflict-case.ext` (`-2` and up when taken), and the name it
    /// collided with. `own` is where the file lives now, if it does: that
    /// name counts as free.
    pub fn local_name(
        &self,
        path: &RepoPath,
        own: Option<&RepoPath>,
    ) -> io::Result<(RepoPath, Option<String>)> {
        let Some(twin) = self.case_twin(path)? else {
            return Ok((path.clone(), None));
        };
        for attempt in 1..=1000 {
            let Some(name) = crate::model::placement::conflict_name(path, "case", attempt) else {
                break;
            };
            if Some(&name) == own || self.case_twin(&name)?.is_none() && !self.exists(&name)? {
                return Ok((name, Some(twin)));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{path} differs only in case from {twin}, and no distinct name is free"),
        ))
    }

    /// The name in `path`'s folder that differs from its last name only in
    /// case, when the file system folds case.
    fn case_twin(&self, path: &RepoPath) -> io::Result<Option<String>> {
        if !self.folds_case {
            return Ok(None);
        }
        let (dir, name) = match self.parent(path, Folders::Existing) {
            Ok(found) => found,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let folded = name.to_lowercase();
        let mut listing = rfs::Dir::read_from(&dir)?;
        while let Some(item) = listing.read() {
            let item = item?;
            let Ok(other) = item.file_name().to_str() else {
                continue;
            };
            if other != name && other.to_lowercase() == folded {
                return Ok(Some(other.to_owned()));
            }
        }
        Ok(None)
    }

    /// The folder that holds `path`, opened without following links, and
    /// the last name of `path`.
    fn parent<'p>(&self, path: &'p RepoPath, folders: Folders) -> io::Result<(OwnedFd, &'p str)> {
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY;
        let mut dir = rfs::open(&self.root, flags, Mode::empty())?;
        let mut names = path.as_str().split('/').peekable();
        while let Some(name) = names.next() {
            if names.peek().is_none() {
                return Ok((dir, name));
            }
            let next = match rfs::openat(&dir, name, flags, Mode::empty()) {
                Err(rustix::io::Errno::NOENT) if folders == Folders::Create => {
                    match rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    rfs::openat(&dir, name, flags, Mode::empty())
                }
                other => other,
            };
            dir = next.map_err(|e| along(path, name, e))?;
        }
        Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"))
    }

    /// What is at `path`, not following a link there or along the way;
    /// `None` when nothing is.
    pub fn lstat(&self, path: &RepoPath) -> io::Result<Option<rfs::Stat>> {
        let (dir, name) = match self.parent(path, Folders::Existing) {
            Ok(found) => found,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(stat)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether anything (of any kind) is at `path`.
    pub fn exists(&self, path: &RepoPath) -> io::Result<bool> {
        Ok(self.lstat(path)?.is_some())
    }

    /// Opens the regular file at `path` for reading; a link there or along
    /// the way is an error.
    pub fn open_read(&self, path: &RepoPath) -> io::Result<File> {
        let (dir, name) = self.parent(path, Folders::Existing)?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(File::from(rfs::openat(&dir, name, flags, Mode::empty())?))
    }

    /// The target of the link at `path`.
    pub fn read_link(&self, path: &RepoPath) -> io::Result<String> {
        let (dir, name) = self.parent(path, Folders::Existing)?;
        let target = rfs::readlinkat(&dir, name, Vec::new())?;
        target
            .into_string()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "link target is not UTF-8"))
    }

    /// Moves `from` (a file outside the tree, in `.harmony/`) to `path`,
    /// creating its folders. With `replace`, whatever file is at `path`
    /// is replaced (the caller checked it is the recorded version);
    /// without, an existing `path` is an error ([`io::ErrorKind::AlreadyExists`]).
    pub fn place(&self, from: &Path, path: &RepoPath, replace: bool) -> io::Result<()> {
        let (dir, name) = self.parent(path, Folders::Create)?;
        let flags = if replace {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        Ok(rfs::renameat_with(CWD, from, &dir, name, flags)?)
    }

    /// Moves the file at `path` out of the tree, to `to` (in `.harmony/`).
    pub fn take_out(&self, path: &RepoPath, to: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(path, Folders::Existing)?;
        Ok(rfs::renameat(&dir, name, CWD, to)?)
    }

    /// Links the file at `path` to `to` (in `.harmony/`), keeping a copy
    /// that costs no space while the tree's file is replaced.
    pub fn link_out(&self, path: &RepoPath, to: &Path) -> io::Result<()> {
        let (dir, name) = self.parent(path, Folders::Existing)?;
        Ok(rfs::linkat(&dir, name, CWD, to, AtFlags::empty())?)
    }

    /// Removes the file or link at `path` (never a folder).
    pub fn remove_file(&self, path: &RepoPath) -> io::Result<()> {
        let (dir, name) = self.parent(path, Folders::Existing)?;
        Ok(rfs::unlinkat(&dir, name, AtFlags::empty())?)
    }

    /// Sets or clears the executable bits of the regular file at `path`
    /// (where the read bits allow: `chmod +x` under the umask).
    pub fn set_executable(&self, path: &RepoPath, executable: bool) -> io::Result<()> {
        let file = self.open_read(path)?;
        set_executable(&file, executable)
    }

    /// Removes the folders that held `path` while they are empty, up to the
    /// root.
    pub fn remove_empty_parents(&self, path: &RepoPath) {
        for folder in crate::model::placement::ancestors(path) {
            let removed = self
                .parent(&folder, Folders::Existing)
                .and_then(|(dir, name)| Ok(rfs::unlinkat(&dir, name, AtFlags::REMOVEDIR)?));
            if removed.is_err() {
                break;
            }
        }
    }
}

/// Gives an open regular file the executable bits its read bits allow, or
/// takes them away.
pub fn set_executable(file: &File, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata()?.permissions().mode() & 0o7777;
    let wanted = if executable {
        mode | ((mode & 0o444) >> 2)
    } else {
        mode & !0o111
    };
    if wanted != mode {
        rfs::fchmod(file, Mode::from_raw_mode(wanted))?;
    }
    Ok(())
}

/// Whether a stat's mode has the owner's executable bit.
pub fn is_executable(mode: u32) -> bool {
    mode & 0o100 != 0
}

/// A failure on a folder along `path`, worded for the user: a link there is
/// refused, not followed.
fn along(path: &RepoPath, name: &str, e: rustix::io::Errno) -> io::Error {
    match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("`{name}` on the way to {path} is not a folder (a file or a symbolic link); not written through"),
        ),
        other => other.into(),
    }
}

fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RepoPath {
        RepoPath::new(s).unwrap()
    }

    #[test]
    fn never_writes_through_a_linked_folder() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("docs")).unwrap();
        let staged = root.path().join("staged");
        std::fs::write(&staged, b"x").unwrap();
        let tree = Tree::new(root.path());
        let err = tree.place(&staged, &p("docs/two.txt"), false).unwrap_err();
        assert!(err.to_string().contains("not written through"), "{err}");
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        assert!(tree.open_read(&p("docs/two.txt")).is_err());
        assert!(tree.remove_file(&p("docs/x")).is_err());
        // The link itself is an entry of the tree: it can be removed.
        tree.remove_file(&p("docs")).unwrap();
        tree.place(&staged, &p("docs/two.txt"), false).unwrap();
        assert!(root.path().join("docs/two.txt").is_file());
    }

    #[test]
    fn names_that_differ_only_in_case_get_a_distinct_name_where_case_folds() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("Readme.md"), b"one").unwrap();
        let folding = Tree::new(root.path()).folding_case(true);
        let (name, twin) = folding.local_name(&p("README.md"), None).unwrap();
        assert_eq!(name, p("README.conflict-case.md"));
        assert_eq!(twin.as_deref(), Some("Readme.md"));
        assert_eq!(
            folding.local_name(&p("Readme.md"), None).unwrap(),
            (p("Readme.md"), None)
        );
        assert_eq!(
            folding.local_name(&p("other"), None).unwrap(),
            (p("other"), None)
        );
        // Where case matters, both names are free.
        let exact = Tree::new(root.path());
        assert_eq!(
            exact.local_name(&p("README.md"), None).unwrap(),
            (p("README.md"), None)
        );
        assert!(
            !Tree::probe_case_folding(root.path()).unwrap(),
            "this kernel's tmp folds no case"
        );
    }

    #[test]
    fn place_without_replace_keeps_what_is_there() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("a"), b"mine").unwrap();
        let staged = root.path().join("staged");
        std::fs::write(&staged, b"theirs").unwrap();
        let tree = Tree::new(root.path());
        let err = tree.place(&staged, &p("a"), false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(root.path().join("a")).unwrap(), b"mine");
    }

    #[test]
    fn executable_bits_follow_the_read_bits() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("s"), b"#!/bin/sh").unwrap();
        let tree = Tree::new(root.path());
        tree.set_executable(&p("s"), true).unwrap();
        let mode = tree.lstat(&p("s")).unwrap().unwrap().st_mode;
        assert!(is_executable(mode));
        tree.set_executable(&p("s"), false).unwrap();
        let mode = tree.lstat(&p("s")).unwrap().unwrap().st_mode;
        assert!(!is_executable(mode));
    }
}
