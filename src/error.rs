//! The library's error type: each variant says what failed and, where the user
//! can do something about it, what to do.

use std::path::PathBuf;

use crate::disk::{self, Condition};
use crate::net::IdentityError;
use crate::store::StoreError;

/// Why a library call failed; `Display` words it for the user, with what to do where there
/// is something to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `init` in a folder that is already a location.
    #[error("{0} is already a Harmony location (it has .harmony/); use it as it is, or remove .harmony/ to start over")]
    AlreadyInitialised(PathBuf),
    /// `init` inside another location: two locations nesting would each sync the other's
    /// files.
    #[error("{path} is inside the Harmony location {outer}; a location cannot hold another")]
    NestedLocation {
        /// Where `init` was asked.
        path: PathBuf,
        /// The location that already holds it.
        outer: PathBuf,
    },
    /// A command run outside any location.
    #[error("not inside a Harmony location (no .harmony/ in {0} or above); run `harmony init` first or pass -C DIR")]
    NotALocation(PathBuf),
    /// A listen address that is not `host:port`.
    #[error("invalid listen address `{0}`: expected host:port, e.g. 0.0.0.0:7447 or [::1]:7447")]
    BadListenAddress(String),
    /// A group name outside the allowed characters (it is written in expressions such as
    /// `copies=GROUP:N`).
    #[error("invalid group name `{0}`: use 1-64 letters, digits, `-`, `_` or `.`")]
    BadGroup(String),
    /// A preferred-content expression that does not parse.
    #[error("invalid preferred-content expression: {0}; nothing was changed (the README's \"Preferred content\" lists the terms)")]
    BadExpression(#[from] crate::model::preferred::ParseError),
    /// A location already in the most groups a record may name.
    #[error("this location is in {max} groups already, the most it may be in; remove one first (`harmony group remove GROUP`)", max = crate::model::MAX_GROUPS)]
    TooManyGroups,
    /// A numcopies out of range.
    #[error("invalid numcopies {0}: use a number of copies from 1 to {max}", max = crate::model::MAX_NUMCOPIES)]
    BadNumCopies(u32),
    /// A node or peer name outside the allowed characters (names are typed in commands and
    /// shown in messages).
    #[error("invalid node name `{0}`: use 1-64 letters, digits, `-`, `_` or `.`")]
    BadName(String),
    /// A commit that would record almost every file as deleted: a missing or unmounted tree
    /// looks like that, and replicating it would delete the files everywhere.
    #[error("refusing to record the deletion of {deleted} of {recorded} files: the working tree {root} looks missing or unmounted. If you really deleted them, run `harmony commit --allow-mass-delete`")]
    MassDeletion {
        /// The location's working tree.
        root: PathBuf,
        /// Files the commit would record as deleted.
        deleted: usize,
        /// Files recorded before.
        recorded: usize,
    },
    /// A file system operation failed on `path`.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, as a verb phrase ("read", "create the folder").
        action: &'static str,
        /// The file or folder it was done to.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A write failed because the disk holding `path` is full (or the
    /// user's quota is used up): named with its mount point, so that the
    /// user knows where to free space. Made by [`Error::io`].
    #[error("cannot {action} {}: the disk is full (the file system mounted at {}); free space on it, then run this again", path.display(), disk.display())]
    DiskFull {
        /// What was being done, as for [`Error::Io`].
        action: &'static str,
        /// The file or folder it was done to.
        path: PathBuf,
        /// The mount point of the full file system.
        disk: PathBuf,
    },
    /// A write failed because `path` is on a file system mounted read-only.
    /// Made by [`Error::io`].
    #[error("cannot {action} {}: it is on a read-only file system (mounted at {}); nothing there can be changed until it is mounted read-write (status and ls still work)", path.display(), disk.display())]
    ReadOnly {
        /// What was being done, as for [`Error::Io`].
        action: &'static str,
        /// The file or folder it was done to.
        path: PathBuf,
        /// The mount point of the read-only file system.
        disk: PathBuf,
    },
    /// The state database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node's key or certificate cannot be used.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A repository path no entry has.
    #[error("{0} is not a file of this repository; see `harmony ls`")]
    NoSuchFile(crate::model::RepoPath),
    /// `resolve` on a file that has no conflict.
    #[error("{0} has no conflict to resolve")]
    NotConflicted(crate::model::RepoPath),
    /// `.harmony/config.toml` has a bad value.
    #[error("{}: {why}; fix the file (or remove it for the defaults)", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the key.
        why: String,
    },
    /// `resolve` cannot keep the version asked for (e.g. no such side).
    #[error("cannot resolve: {0}")]
    Resolve(String),
    /// An operation this location refuses, worded in full by whoever refused it.
    #[error("{0}")]
    Refused(String),
    /// A worker thread of a get stopped (panicked or hung up); names what it was doing.
    #[error(
        "the thread that {0} stopped unexpectedly; run the get again (what was staged is kept)"
    )]
    ThreadStopped(&'static str),
    /// Another `get` holds the staging folder of this location.
    #[error("another `harmony get` is fetching into {0} right now; let it finish (or stop it), then run this again")]
    GetRunning(PathBuf),
    /// The state database contradicts itself (a record pointing at nothing): a bug or
    /// damage, never a peer's doing.
    #[error("the state database is inconsistent: {0}")]
    Inconsistent(String),
}

/// The library's result, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error of file system operation `action` on `path`: a full or
    /// read-only disk is told as such ([`Error::DiskFull`],
    /// [`Error::ReadOnly`]), anything else is [`Error::Io`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| match disk::condition(&source) {
            Some(Condition::Full) => Error::DiskFull {
                action,
                disk: disk::mount_point(&path),
                path,
            },
            Some(Condition::ReadOnly) => Error::ReadOnly {
                action,
                disk: disk::mount_point(&path),
                path,
            },
            None => Error::Io {
                action,
                path,
                source,
            },
        }
    }

    /// Whether this is a full or read-only disk, which stops every write
    /// that follows until the user acts (a `get` stops at the first).
    pub(crate) fn stops_writes(&self) -> bool {
        matches!(
            self,
            Error::DiskFull { .. }
                | Error::ReadOnly { .. }
                | Error::Store(StoreError::Full | StoreError::ReadOnly)
        )
    }
}
