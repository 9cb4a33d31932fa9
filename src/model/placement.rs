//! One path, one live file (DESIGN.md, invariant 7): where each live file is
//! placed in every working tree when several claim the same path.
//!
//! Claims are replicated state (each file's path register); placements are
//! derived from them by a pure, deterministic rule, so every location that
//! knows the same claims places the same files at the same paths, and no
//! location has to write anything to settle the clash. Until the user
//! settles it (`resolve`), the files that lost a clash live under a
//! conflict name next to the path they claim, and `conflicts` lists them.
//!
//! The rule, for the live files claiming one path `P`:
//! * a folder wins over files: when any live file lies under `P/`, every
//!   file claiming `P` itself is displaced (a folder may hold many files, a
//!   file is one);
//! * otherwise the first claim keeps `P`: the earliest write of the path
//!   (writer's clock), ties broken by writer node id, then by file id. A
//!   file renamed onto a taken path, or added there later, is the one moved
//!   aside;
//! * a displaced file gets `stem.conflict-NODE.ext` (NODE: the first five
//!   characters of the id of the node that wrote its path), or
//!   `stem.conflict-NODE-2.ext`, `-3`, ... when that name is claimed too,
//!   or taken by an earlier-ranked loser of the same clash.
//!
//! Conflict names are injective (two different claimed paths never yield
//! the same name), so the clashes at different paths never compete for a
//! name, and each clash can be settled on its own: [`affected_by`] says
//! which clashes a change of one claim can touch.

use std::collections::{BTreeMap, BTreeSet};

use super::{FileEntry, FileId, NodeId, RepoPath};

/// The marker between a conflict name's stem and the node that caused it.
const CONFLICT_MARK: &str = ".conflict-";
/// Characters of the writer's node id in a conflict name.
const NODE_CHARS: usize = 5;
/// Conflict names tried per displaced file before giving up (more than any
/// real clash needs; the limit only keeps a hostile history finite).
const MAX_ATTEMPTS: u32 = 1000;

/// An entry with the path it is placed at in every working tree: its claim,
/// or its conflict name while it is displaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// The entry as replicated.
    pub entry: FileEntry,
    /// Where it is in the working trees now.
    pub path: RepoPath,
}

impl Placed {
    /// Lives under a conflict name: another file holds the path it claims.
    pub fn is_displaced(&self) -> bool {
        self.path != *self.entry.current_path()
    }
}

/// A live file's claim on a path: its current path and who wrote it when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The file claiming.
    pub id: FileId,
    /// The path it claims (its current path).
    pub path: RepoPath,
    /// When the claiming write was made: the earlier claim keeps the path.
    pub at_ms: i64,
    /// Who made it: breaks ties between claims of one millisecond.
    pub by: NodeId,
}

impl Claim {
    /// The claim of a live file; `None` for a deleted one, which claims
    /// nothing.
    pub fn of(entry: &FileEntry) -> Option<Claim> {
        if entry.is_deleted() {
            return None;
        }
        let path = entry.path.winner();
        Some(Claim {
            id: entry.id,
            path: path.value.clone(),
            at_ms: path.at_ms,
            by: path.by,
        })
    }

    /// Earlier claims rank first.
    fn rank(&self) -> (i64, NodeId, FileId) {
        (self.at_ms, self.by, self.id)
    }
}

/// The displaced files among the `claimants` of `path`, each with the
/// conflict name it is placed under. `folder_below` says whether a live
/// file lies under `path/`; `claimed(p)` whether any live file claims `p`
/// or lies under `p/`. Files not listed keep their claim.
pub fn displaced(
    path: &RepoPath,
    claimants: &[Claim],
    folder_below: bool,
    mut claimed: impl FnMut(&RepoPath) -> bool,
) -> Vec<(FileId, RepoPath)> {
    let mut ranked: Vec<&Claim> = claimants.iter().filter(|c| c.path == *path).collect();
    ranked.sort_by_key(|c| c.rank());
    let keep = usize::from(!folder_below);
    let mut given: BTreeSet<RepoPath> = BTreeSet::new();
    let mut out = Vec::new();
    for loser in ranked.into_iter().skip(keep) {
        let node = node_tag(&loser.by);
        let name = (1..=MAX_ATTEMPTS)
            .filter_map(|attempt| conflict_name(path, &node, attempt))
            .find(|name| !claimed(name) && !given.contains(name));
        if let Some(name) = name {
            given.insert(name.clone());
            out.push((loser.id, name));
        }
    }
    out
}

/// The claimed paths whose clash a change of the claim `path` can alter:
/// the path itself, each folder above it (a file there is displaced while
/// anything lies below), and the path whose conflict names include `path`.
pub fn affected_by(path: &RepoPath) -> Vec<RepoPath> {
    let mut out = vec![path.clone()];
    out.extend(ancestors(path));
    if let Some(base) = conflict_base(path) {
        out.push(base);
    }
    out
}

/// The folders above `path`, innermost first.
pub fn ancestors(path: &RepoPath) -> impl Iterator<Item = RepoPath> + '_ {
    let text = path.as_str();
    text.rmatch_indices('/')
        .filter_map(move |(i, _)| RepoPath::new(&text[..i]).ok())
}

/// `dir/stem.ext` -> `dir/stem.conflict-WHO.ext` (`-WHO-2` and up for
/// later attempts). `None` when the name would be too long.
pub fn conflict_name(path: &RepoPath, who: &str, attempt: u32) -> Option<RepoPath> {
    let text = path.as_str();
    let (dir, file) = match text.rfind('/') {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => ("", text),
    };
    let tag = if attempt <= 1 {
        who.to_owned()
    } else {
        format!("{who}-{attempt}")
    };
    let name = match file.rfind('.') {
        Some(dot) if dot > 0 => format!("{}{CONFLICT_MARK}{tag}{}", &file[..dot], &file[dot..]),
        _ => format!("{file}{CONFLICT_MARK}{tag}"),
    };
    RepoPath::new(&format!("{dir}{name}")).ok()
}

/// The path a conflict name was made from, if `path` has the form of one
/// made by [`displaced`].
pub fn conflict_base(path: &RepoPath) -> Option<RepoPath> {
    let text = path.as_str();
    let (dir, file) = match text.rfind('/') {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => ("", text),
    };
    let mark = file.rfind(CONFLICT_MARK)?;
    let rest = &file[mark + CONFLICT_MARK.len()..];
    let (tag, ext) = match rest.find('.') {
        Some(dot) => (&rest[..dot], &rest[dot..]),
        None => (rest, ""),
    };
    let (node, attempt) = match tag.split_once('-') {
        Some((node, n)) => (node, Some(n)),
        None => (tag, None),
    };
    let node_ok = node.len() == NODE_CHARS && node.bytes().all(|b| b.is_ascii_alphanumeric());
    let attempt_ok = attempt.is_none_or(|n| n.parse::<u32>().is_ok_and(|n| n >= 2));
    if !node_ok || !attempt_ok || ext.get(1..).is_some_and(|e| e.contains('.')) {
        return None;
    }
    RepoPath::new(&format!("{dir}{}{ext}", &file[..mark])).ok()
}

/// The part of a node id a conflict name carries.
fn node_tag(node: &NodeId) -> String {
    node.to_string()[..NODE_CHARS].to_owned()
}

/// The whole placement of a set of entries at once: every displaced live
/// file with its conflict name. The store keeps the same result up to date
/// clash by clash; this is the reference it is tested against.
pub fn layout<'a>(entries: impl IntoIterator<Item = &'a FileEntry>) -> BTreeMap<FileId, RepoPath> {
    let claims: Vec<Claim> = entries.into_iter().filter_map(Claim::of).collect();
    let mut by_path: BTreeMap<&RepoPath, Vec<Claim>> = BTreeMap::new();
    for claim in &claims {
        by_path.entry(&claim.path).or_default().push(claim.clone());
    }
    let mut folders: BTreeSet<RepoPath> = BTreeSet::new();
    for claim in &claims {
        folders.extend(ancestors(&claim.path));
    }
    let claimed = |p: &RepoPath| by_path.contains_key(p) || folders.contains(p);
    let mut out = BTreeMap::new();
    for (path, claimants) in &by_path {
        out.extend(displaced(path, claimants, folders.contains(*path), claimed));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RepoPath {
        RepoPath::new(s).unwrap()
    }

    fn claim(id: u8, path: &str, at_ms: i64) -> Claim {
        Claim {
            id: FileId([id; 16]),
            path: p(path),
            at_ms,
            by: NodeId([id; 32]),
        }
    }

    #[test]
    fn conflict_names_keep_the_extension_and_round_trip() {
        for (path, name) in [
            ("a/b/song.flac", "a/b/song.conflict-ABCDE.flac"),
            ("README", "README.conflict-ABCDE"),
            (".bashrc", ".bashrc.conflict-ABCDE"),
            ("x.tar.gz", "x.tar.conflict-ABCDE.gz"),
        ] {
            let made = conflict_name(&p(path), "ABCDE", 1).unwrap();
            assert_eq!(made, p(name));
            assert_eq!(conflict_base(&made), Some(p(path)));
            let second = conflict_name(&p(path), "ABCDE", 2).unwrap();
            assert_eq!(conflict_base(&second), Some(p(path)));
        }
        assert_eq!(conflict_base(&p("notes.conflict-laptop.txt")), None);
        assert_eq!(conflict_base(&p("plain.txt")), None);
    }

    #[test]
    fn the_first_claim_keeps_the_path() {
        let claims = [claim(2, "todo.txt", 20), claim(1, "todo.txt", 10)];
        let out = displaced(&p("todo.txt"), &claims, false, |_| false);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, FileId([2; 16]));
        assert!(out[0].1.as_str().starts_with("todo.conflict-"));
        assert!(out[0].1.as_str().ends_with(".txt"));
    }

    #[test]
    fn a_folder_displaces_a_file_of_its_name() {
        let claims = [claim(1, "bench", 1)];
        let out = displaced(&p("bench"), &claims, true, |_| false);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn taken_conflict_names_are_skipped() {
        let claims = [claim(1, "a", 1), claim(2, "a", 2), claim(2, "a", 3)];
        let first = conflict_name(&p("a"), &node_tag(&NodeId([2; 32])), 1).unwrap();
        let out = displaced(&p("a"), &claims, false, |q| *q == first);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|(_, name)| *name != first));
        assert_ne!(out[0].1, out[1].1);
    }

    #[test]
    fn affected_paths_cover_folders_and_the_base() {
        let name = conflict_name(&p("d/x.txt"), "ABCDE", 1).unwrap();
        let affected = affected_by(&name);
        assert!(affected.contains(&p("d/x.txt")));
        assert!(affected.contains(&p("d")));
        assert_eq!(
            ancestors(&p("a/b/c")).collect::<Vec<_>>(),
            [p("a/b"), p("a")]
        );
    }
}
