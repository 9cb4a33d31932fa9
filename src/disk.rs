//! What a failed write says about the disk under it: full, or mounted
//! read-only. The operating system answers both with one terse errno
//! ("No space left on device", "Read-only file system") on whichever file
//! was being written; a user needs to know which disk it is and what to do,
//! so the errors built from these name the file system's mount point.

use std::io;
use std::path::{Path, PathBuf};

use rustix::io::Errno;

/// A disk condition that stops every write until the user acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    /// No space left (`ENOSPC`), or the user's quota is used up (`EDQUOT`).
    Full,
    /// The file system is mounted read-only (`EROFS`).
    ReadOnly,
}

/// The disk condition behind `error`, if it is one.
pub(crate) fn condition(error: &io::Error) -> Option<Condition> {
    match Errno::from_io_error(error)? {
        Errno::NOSPC | Errno::DQUOT => Some(Condition::Full),
        Errno::ROFS => Some(Condition::ReadOnly),
        _ => None,
    }
}

/// The top folder of the file system that holds `path` (its mount point):
/// the highest ancestor on the same device. Starts from the nearest
/// ancestor that exists, since the file a failed write meant to create may
/// not. Falls back to `path` itself when nothing along it can be read.
pub(crate) fn mount_point(path: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let mut existing = path
        .ancestors()
        .filter_map(|a| Some((a, a.metadata().ok()?)));
    let Some((mut top, first)) = existing.next() else {
        return path.to_path_buf();
    };
    for (ancestor, meta) in existing {
        if meta.dev() != first.dev() {
            break;
        }
        top = ancestor;
    }
    top.to_path_buf()
}

/// Whether the file system holding `path` is mounted read-only.
pub(crate) fn is_read_only(path: &Path) -> bool {
    rustix::fs::statvfs(path)
        .is_ok_and(|fs| fs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_read_only_are_told_apart_from_other_errors() {
        let errno = |e: Errno| io::Error::from_raw_os_error(e.raw_os_error());
        assert_eq!(condition(&errno(Errno::NOSPC)), Some(Condition::Full));
        assert_eq!(condition(&errno(Errno::DQUOT)), Some(Condition::Full));
        assert_eq!(condition(&errno(Errno::ROFS)), Some(Condition::ReadOnly));
        assert_eq!(condition(&errno(Errno::ACCESS)), None);
        assert_eq!(condition(&io::ErrorKind::Other.into()), None);
    }

    #[test]
    fn the_mount_point_of_a_file_not_made_yet_is_its_folders() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not/made/yet.part");
        let top = mount_point(&missing);
        assert!(dir.path().starts_with(&top), "{top:?}");
        assert_eq!(mount_point(Path::new("/")), Path::new("/"));
    }
}
