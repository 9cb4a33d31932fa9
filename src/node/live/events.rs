//! What the watcher's events mean for the [`Pacer`](super::pace::Pacer):
//! a batch of debounced events (or errors) turned into one [`Seen`], keeping
//! only changes that a commit could record.
//!
//! Dropped: reads (inotify reports every open, and a commit opens the files
//! it hashes and the folders it walks: counting them would commit forever),
//! anything in `.harmony/` (the state database is written by each commit),
//! and paths the scan ignores (built-in names, `.harmonyignore`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use notify::event::{AccessKind, AccessMode, CreateKind, RemoveKind};
use notify::{ErrorKind, Event, EventKind};
use notify_debouncer_full::DebounceEventResult;

use crate::scan::{IgnoreRules, IGNORE_FILE};

/// What one batch from the watcher says.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Seen {
    /// The time of the latest change worth a commit, if any.
    pub changed: Option<Instant>,
    /// Events were lost (an overflowed queue, a failed read): why.
    pub lost: Option<String>,
    /// The inotify watch limit was hit: part of the tree is not watched.
    pub limit: bool,
}

impl Seen {
    pub(super) fn is_empty(&self) -> bool {
        *self == Seen::default()
    }
}

/// Reads one batch; `relevant` says whether an event is worth a commit.
pub(super) fn observe(
    batch: DebounceEventResult,
    mut relevant: impl FnMut(&Event) -> bool,
) -> Seen {
    let mut seen = Seen::default();
    match batch {
        Ok(events) => {
            for debounced in events {
                if debounced.event.need_rescan() {
                    seen.lost = Some("the watcher's event queue overflowed".into());
                } else if relevant(&debounced.event) {
                    seen.changed = seen.changed.max(Some(debounced.time));
                }
            }
        }
        Err(errors) => {
            for error in errors {
                if matches!(error.kind, ErrorKind::MaxFilesWatch) {
                    seen.limit = true;
                } else {
                    seen.lost = Some(format!("the watcher failed: {error}"));
                }
            }
        }
    }
    seen
}

/// Whether an event is worth a commit of the tree at `root`.
pub(super) struct Filter {
    root: PathBuf,
    rules: IgnoreRules,
}

impl Filter {
    pub(super) fn new(root: &Path) -> Filter {
        Filter {
            root: root.to_path_buf(),
            rules: IgnoreRules::new(root),
        }
    }

    /// True for a change (not a read) to a path the scan does not ignore;
    /// a rename counts when either of its paths does.
    pub(super) fn relevant(&mut self, event: &Event) -> bool {
        let folder = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => None,
            EventKind::Access(_) | EventKind::Other => return false,
            EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder) => {
                Some(true)
            }
            _ => None,
        };
        if event
            .paths
            .iter()
            .any(|p| p.file_name() == Some(std::ffi::OsStr::new(IGNORE_FILE)))
        {
            self.rules.forget();
        }
        let mut any = false;
        for path in &event.paths {
            any |= self.counts(path, folder);
        }
        any
    }

    /// Whether a change at `path` counts; `folder` when the event says what
    /// it was. A path that is gone is ignored only when it would be as a
    /// file and as a folder alike: a missed deletion would wait for the
    /// next rescan, a needless commit costs one scan.
    fn counts(&mut self, path: &Path, folder: Option<bool>) -> bool {
        let Ok(relative) = path.strip_prefix(&self.root) else {
            return false;
        };
        if relative.as_os_str().is_empty() {
            // The root itself moved or vanished: the commit tells.
            return true;
        }
        let is_dir = folder.or_else(|| std::fs::symlink_metadata(path).ok().map(|m| m.is_dir()));
        match is_dir {
            Some(is_dir) => !self.rules.is_ignored(relative, is_dir),
            None => {
                !(self.rules.is_ignored(relative, false) && self.rules.is_ignored(relative, true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{observe, Filter, Seen};
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, Flag, ModifyKind, RenameMode,
    };
    use notify::{Error, ErrorKind, Event, EventKind};
    use notify_debouncer_full::DebouncedEvent;
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn event(kind: EventKind, paths: &[&Path]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |e, p| e.add_path(p.to_path_buf()))
    }

    #[test]
    fn an_overflow_or_a_failure_is_lost_events_and_the_limit_is_its_own() {
        let at = Instant::now();
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        let seen = observe(Ok(vec![DebouncedEvent::new(overflow, at)]), |_| true);
        assert!(seen.lost.is_some() && seen.changed.is_none(), "{seen:?}");

        let errors = vec![
            Error::new(ErrorKind::MaxFilesWatch),
            Error::io(std::io::Error::other("read failed")),
        ];
        let seen = observe(Err(errors), |_| true);
        assert!(seen.limit);
        assert!(seen.lost.unwrap().contains("read failed"));

        let seen = observe(Err(vec![Error::new(ErrorKind::MaxFilesWatch)]), |_| true);
        assert_eq!(
            seen,
            Seen {
                limit: true,
                ..Seen::default()
            }
        );
    }

    #[test]
    fn the_latest_relevant_change_is_what_counts() {
        let at = Instant::now();
        let later = at + Duration::from_millis(30);
        let write = |path: &str, time| {
            let kind = EventKind::Modify(ModifyKind::Data(DataChange::Any));
            DebouncedEvent::new(event(kind, &[Path::new(path)]), time)
        };
        let batch = vec![write("/t/a", at), write("/t/ignored", later)];
        let seen = observe(Ok(batch), |e| !e.paths[0].ends_with("ignored"));
        assert_eq!(seen.changed, Some(at));
        assert!(observe(Ok(vec![write("/t/ignored", at)]), |_| false).is_empty());
    }

    #[test]
    fn reads_the_state_folder_and_ignored_paths_are_not_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join(".harmonyignore"), "*.tmp\n").unwrap();
        std::fs::create_dir(root.join("photos")).unwrap();
        let mut filter = Filter::new(root);
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let file = root.join("photos/cat.jpg");
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));

        assert!(filter.relevant(&event(data, &[&file])));
        assert!(filter.relevant(&event(closed, &[&file])));
        assert!(!filter.relevant(&event(open, &[&file])));
        assert!(!filter.relevant(&event(open, &[&root.join("photos")])));
        assert!(!filter.relevant(&event(data, &[&root.join(".harmony/state.db-wal")])));
        assert!(!filter.relevant(&event(data, &[&root.join("video.tmp")])));
        assert!(!filter.relevant(&event(data, &[&root.join("photos/.cat.jpg.swp")])));
        assert!(!filter.relevant(&event(data, &[Path::new("/elsewhere/file")])));
        let folder = EventKind::Create(CreateKind::Folder);
        assert!(filter.relevant(&event(folder, &[&root.join("albums")])));

        // A rename from an ignored name onto a synced one is a change (an
        // editor's save), and so is the other way round.
        let rename = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let temp = root.join("photos/cat.jpg.tmp");
        assert!(filter.relevant(&event(rename, &[&temp, &file])));
        assert!(filter.relevant(&event(rename, &[&file, &temp])));

        // A changed ignore file is read again (and is itself a change).
        std::fs::write(root.join(".harmonyignore"), "").unwrap();
        assert!(filter.relevant(&event(data, &[&root.join(".harmonyignore")])));
        assert!(filter.relevant(&event(data, &[&root.join("video.tmp")])));
    }
}
