//! Helpers shared by the integration tests: temporary locations and files.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use harmony::scan::NoProgress;
use harmony::{CommitOptions, CommitReport, InitOptions, ListedFile, Repo};

/// A location in a temporary folder, removed on drop.
pub struct Location {
    pub dir: tempfile::TempDir,
    pub repo: Repo,
}

impl Location {
    pub fn new(name: &str) -> Location {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = InitOptions {
            name: Some(name.to_owned()),
            listen: Some("127.0.0.1:0".to_owned()),
        };
        let repo = Repo::init(dir.path(), &options).expect("init");
        Location { dir, repo }
    }

    pub fn root(&self) -> PathBuf {
        self.repo.root().to_path_buf()
    }

    /// Writes `bytes` at `path` (creating folders) with an mtime safely in the
    /// past, so that a later scan trusts its stat fields.
    pub fn write(&self, path: &str, bytes: &[u8]) {
        write_old(&self.root().join(path), bytes);
    }

    pub fn commit(&mut self) -> CommitReport {
        self.repo
            .commit(&CommitOptions::default(), &NoProgress)
            .expect("commit")
    }

    pub fn ls(&self) -> Vec<ListedFile> {
        self.repo.ls(None, false, &NoProgress).expect("ls")
    }

    /// Paths listed by `ls`, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.ls().into_iter().map(|f| f.path.to_string()).collect()
    }
}

/// Writes a file and backdates its mtime by an hour.
pub fn write_old(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create folders");
    }
    fs::write(path, bytes).expect("write file");
    backdate(path);
}

pub fn backdate(path: &Path) {
    let file = fs::File::options().write(true).open(path).expect("open");
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .expect("set mtime");
}

/// Deterministic incompressible bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// True when this process runs as root (file permissions do not stop it).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
