//! The library's error type: each variant says what failed and, where the user
//! can do something about it, what to do.

use std::path::PathBuf;

use crate::net::IdentityError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} is already a Harmony location (it has .harmony/); use it as it is, or remove .harmony/ to start over")]
    AlreadyInitialised(PathBuf),
    #[error("{path} is inside the Harmony location {outer}; a location cannot hold another")]
    NestedLocation { path: PathBuf, outer: PathBuf },
    #[error("not inside a Harmony location (no .harmony/ in {0} or above); run `harmony init` first or pass -C DIR")]
    NotALocation(PathBuf),
    #[error("invalid listen address `{0}`: expected host:port, e.g. 0.0.0.0:7447 or [::1]:7447")]
    BadListenAddress(String),
    #[error("invalid node name `{0}`: use 1-64 letters, digits, `-`, `_` or `.`")]
    BadName(String),
    #[error("refusing to record the deletion of {deleted} of {recorded} files: the working tree {root} looks missing or unmounted. If you really deleted them, run `harmony commit --allow-mass-delete`")]
    MassDeletion {
        root: PathBuf,
        deleted: usize,
        recorded: usize,
    },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("{0} is not a file of this repository; see `harmony ls`")]
    NoSuchFile(crate::model::RepoPath),
    #[error("{0} has no conflict to resolve")]
    NotConflicted(crate::model::RepoPath),
    #[error("{}: {why}; fix the file (or remove it for the defaults)", path.display())]
    Config { path: PathBuf, why: String },
    #[error("cannot resolve: {0}")]
    Resolve(String),
    #[error("{0}")]
    Refused(String),
    #[error(
        "the thread that {0} stopped unexpectedly; run the get again (what was staged is kept)"
    )]
    ThreadStopped(&'static str),
    #[error("another `harmony get` is fetching into {0} right now; let it finish (or stop it), then run this again")]
    GetRunning(PathBuf),
    #[error("the state database is inconsistent: {0}")]
    Inconsistent(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
