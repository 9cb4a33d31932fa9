//! Repository paths: the only form in which a file's location is stored or sent.
//!
//! A `RepoPath` is relative to the repository root, `/`-separated, normalised
//! (no empty, `.` or `..` component), valid UTF-8, and never inside `.harmony/`.
//! Paths from peers are untrusted, so every constructor checks all of it.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

/// The folder at the repository root that holds Harmony's own state.
pub const STATE_DIR: &str = ".harmony";
/// Longest path accepted, in bytes (Linux's PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single name accepted, in bytes (NAME_MAX on common filesystems).
pub const MAX_NAME_BYTES: usize = 255;

/// Why a path cannot be a repository path.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// A name from the file system that is not UTF-8 (lossily printed).
    #[error("path `{0}` is not valid UTF-8; Harmony syncs only UTF-8 names, rename it")]
    NotUtf8(String),
    /// A path that breaks a rule (empty, absolute, a `.` or `..` part, a NUL,
    /// inside `.harmony/`, too long).
    #[error("path `{path}` is not allowed: {reason}")]
    Invalid {
        /// The path as given.
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

/// A path inside the repository, in the only form stored or sent (see the
/// module's rules). Checked when made and when decoded, so that no peer can
/// name a file outside the location or inside `.harmony/`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RepoPath(String);

impl RepoPath {
    /// Checks a `/`-separated relative path.
    pub fn new(path: &str) -> Result<Self, PathError> {
        let invalid = |reason| PathError::Invalid {
            path: path.to_owned(),
            reason,
        };
        if path.is_empty() {
            return Err(invalid("it is empty"));
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(invalid("it is longer than 4096 bytes"));
        }
        if path.contains('\0') {
            return Err(invalid("it contains a NUL byte"));
        }
        if path.starts_with('/') {
            return Err(invalid("it is absolute"));
        }
        for (i, name) in path.split('/').enumerate() {
            match name {
                "" => return Err(invalid("it has an empty component")),
                "." | ".." => return Err(invalid("it has a `.` or `..` component")),
                STATE_DIR if i == 0 => return Err(invalid("it is inside .harmony/")),
                _ if name.len() > MAX_NAME_BYTES => {
                    return Err(invalid("a name in it is longer than 255 bytes"))
                }
                _ => {}
            }
        }
        Ok(RepoPath(path.to_owned()))
    }

    /// Converts a path relative to the repository root, as found on disk.
    pub fn from_relative(path: &Path) -> Result<Self, PathError> {
        let mut text = String::new();
        for component in path.components() {
            let Component::Normal(name) = component else {
                return Err(PathError::Invalid {
                    path: path.display().to_string(),
                    reason: "it is not a plain relative path",
                });
            };
            let name = name
                .to_str()
                .ok_or_else(|| PathError::NotUtf8(path.display().to_string()))?;
            if !text.is_empty() {
                text.push('/');
            }
            text.push_str(name);
        }
        Self::new(&text)
    }

    /// The path as text, `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path on disk under `root`.
    pub fn to_path(&self, root: &Path) -> PathBuf {
        root.join(&self.0)
    }

    /// True when `self` is `prefix` or lies inside the folder `prefix`.
    pub fn starts_with(&self, prefix: &RepoPath) -> bool {
        self.0 == prefix.0
            || (self.0.starts_with(&prefix.0) && self.0.as_bytes()[prefix.0.len()] == b'/')
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for RepoPath {
    /// Decoding re-checks every rule: a path from a peer or a damaged database
    /// never bypasses validation.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        RepoPath::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_relative_paths() {
        for ok in [
            "a",
            "a/b/c.txt",
            ".hidden",
            "dir/.harmony",
            "ünï/cödé",
            "a..b",
        ] {
            assert_eq!(RepoPath::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_escapes_and_state_dir() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/",
            "./a",
            ".harmony",
            ".harmony/state.db",
            "a\0b",
        ] {
            assert!(RepoPath::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(RepoPath::new(&"x".repeat(256)).is_err());
        assert!(RepoPath::new(&["y"; 3000].join("/")).is_err());
    }

    #[test]
    fn decoding_validates() {
        let bytes = postcard::to_stdvec(&"../../etc/passwd").unwrap();
        assert!(postcard::from_bytes::<RepoPath>(&bytes).is_err());
    }

    #[test]
    fn prefix_matches_whole_components() {
        let p = RepoPath::new("music/a.flac").unwrap();
        assert!(p.starts_with(&RepoPath::new("music").unwrap()));
        assert!(!p.starts_with(&RepoPath::new("mus").unwrap()));
        assert!(p.starts_with(&p));
    }
}
