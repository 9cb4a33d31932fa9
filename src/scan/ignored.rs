//! Whether one path is ignored, asked path by path (as a watcher does)
//! instead of by walking: the same built-in names and `.harmonyignore`
//! files that [`walk`](super::walk) honours, so that a change the walk would
//! never record does not wake anyone.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use globset::GlobSet;
use ignore::gitignore::Gitignore;
use ignore::Match;

use super::walk::builtin_ignores;
use super::IGNORE_FILE;

/// The ignore rules of one working tree, with each folder's
/// `.harmonyignore` read once and kept until [`forget`](Self::forget).
pub struct IgnoreRules {
    root: PathBuf,
    builtin: GlobSet,
    /// Per folder (relative to the root): its ignore file, `None` when it
    /// has none.
    files: HashMap<PathBuf, Option<Gitignore>>,
}

impl IgnoreRules {
    /// The rules of the location at `root`, as its walk reads them.
    pub fn new(root: &Path) -> IgnoreRules {
        IgnoreRules {
            root: root.to_path_buf(),
            builtin: builtin_ignores(),
            files: HashMap::new(),
        }
    }

    /// Drops what was read of the ignore files (one of them changed).
    pub fn forget(&mut self) {
        self.files.clear();
    }

    /// True when the walk would not list `relative` (a path under the root,
    /// a folder when `is_dir`): a built-in name anywhere along it, or an
    /// ignore file of a folder above it that ignores it or a folder it is
    /// in. As in the walk, the deepest ignore file with a matching rule
    /// decides, so a `!negation` in a sub-folder re-includes.
    pub fn is_ignored(&mut self, relative: &Path, is_dir: bool) -> bool {
        let names: Vec<_> = relative.components().collect();
        let mut prefix = PathBuf::new();
        for (i, name) in names.iter().enumerate() {
            let parent = prefix.clone();
            prefix.push(name);
            if self.builtin.is_match(name.as_os_str()) {
                return true;
            }
            let dir = i + 1 < names.len() || is_dir;
            if self.ignored_by_files(&parent, &prefix, dir) {
                return true;
            }
        }
        false
    }

    /// The verdict of the ignore files in `folder` and above on `path`.
    fn ignored_by_files(&mut self, folder: &Path, path: &Path, is_dir: bool) -> bool {
        let absolute = self.root.join(path);
        let mut folder = Some(folder);
        while let Some(at) = folder {
            if let Some(rules) = self.file_of(at) {
                match rules.matched(&absolute, is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                    Match::None => {}
                }
            }
            folder = at.parent();
        }
        false
    }

    fn file_of(&mut self, folder: &Path) -> Option<&Gitignore> {
        let root = &self.root;
        self.files
            .entry(folder.to_path_buf())
            .or_insert_with(|| {
                let path = root.join(folder).join(IGNORE_FILE);
                path.is_file().then(|| Gitignore::new(&path).0)
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::IgnoreRules;
    use crate::scan::walk;
    use std::fs;
    use std::path::Path;

    fn tree(root: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }

    #[test]
    fn ignores_what_the_walk_does_not_list() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        tree(
            root,
            &[
                (".harmony/state.db", ""),
                (".harmonyignore", "*.log\nbuild/\n"),
                ("notes.txt", ""),
                ("a.log", ""),
                ("build/out.o", ""),
                ("src/build", "a file named build is not a folder"),
                ("src/.main.rs.swp", ""),
                ("src/main.rs", ""),
                ("logs/.harmonyignore", "!keep.log\n"),
                ("logs/keep.log", ""),
                ("logs/drop.log", ""),
            ],
        );
        let mut listed: Vec<String> = Vec::new();
        walk(root, true, |files| {
            listed.extend(files.into_iter().map(|f| f.path.to_string()))
        });
        let mut rules = IgnoreRules::new(root);
        for path in [
            ".harmony/state.db",
            ".harmonyignore",
            "notes.txt",
            "a.log",
            "build/out.o",
            "src/build",
            "src/.main.rs.swp",
            "src/main.rs",
            "logs/.harmonyignore",
            "logs/keep.log",
            "logs/drop.log",
        ] {
            assert_eq!(
                rules.is_ignored(Path::new(path), false),
                !listed.iter().any(|l| l == path),
                "{path} (walk listed {listed:?})"
            );
        }
        assert!(rules.is_ignored(Path::new(".harmony"), true));
        assert!(rules.is_ignored(Path::new("build"), true));
        assert!(!rules.is_ignored(Path::new("src"), true));
    }

    #[test]
    fn an_ignore_file_read_again_after_forget() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut rules = IgnoreRules::new(root);
        assert!(!rules.is_ignored(Path::new("video.tmp"), false));
        fs::write(root.join(".harmonyignore"), "*.tmp\n").unwrap();
        assert!(!rules.is_ignored(Path::new("video.tmp"), false), "kept");
        rules.forget();
        assert!(rules.is_ignored(Path::new("video.tmp"), false));
    }
}
