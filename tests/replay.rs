//! Replays real git histories through three locations, git as the oracle.
//!
//! Each commit is made by the next location in turn: it syncs with the one
//! that made the previous commit, fetches everything (`get .`), applies the
//! commit's diff to its tree (renames as renames), and commits. After every
//! step its tree (bytes, executable bits and links) must be the commit's
//! tree; at the end every location's must, with no conflict left.
//!
//! Two histories: one made here that holds what real trees do (a file
//! moved into a folder of its own name, a folder replaced by a file, modes,
//! links), and the last commits of this project's own history when the
//! checkout has it. Run with `--nocapture` for the figures: per step, the
//! time, the bytes on the wire and the bytes of the files changed.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use support::{get_from, one_repository, serve, sync_once, tree, Item, Location};

/// Commits of this project's history replayed, at most.
const OWN_HISTORY: usize = 24;

fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn git_text(dir: &Path, args: &[&str]) -> String {
    String::from_utf8(git(dir, args)).unwrap()
}

/// The tree of `commit`, as [`tree`] shows a working tree.
fn commit_tree(repo: &Path, commit: &str) -> BTreeMap<String, Item> {
    let listing = git(repo, &["ls-tree", "-r", "-z", commit]);
    let mut out = BTreeMap::new();
    for record in listing.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let record = String::from_utf8(record.to_vec()).unwrap();
        let (meta, path) = record.split_once('\t').unwrap();
        let mut meta = meta.split(' ');
        let (mode, kind, blob) = (
            meta.next().unwrap(),
            meta.next().unwrap(),
            meta.next().unwrap(),
        );
        if kind != "blob" {
            continue; // submodules
        }
        let bytes = git(repo, &["cat-file", "blob", blob]);
        let item = match mode {
            "120000" => Item::Link(String::from_utf8(bytes).unwrap()),
            "100755" => Item::File(bytes, true),
            _ => Item::File(bytes, false),
        };
        out.insert(path.to_owned(), item);
    }
    out
}

/// Writes `item` at `path` under `root`.
fn put(root: &Path, path: &str, item: &Item) {
    use std::os::unix::fs::PermissionsExt;
    let at = root.join(path);
    fs::create_dir_all(at.parent().unwrap()).unwrap();
    if fs::symlink_metadata(&at).is_ok() {
        fs::remove_file(&at).unwrap();
    }
    match item {
        Item::Link(target) => std::os::unix::fs::symlink(target, &at).unwrap(),
        Item::File(bytes, exec) => {
            fs::write(&at, bytes).unwrap();
            let mode = if *exec { 0o755 } else { 0o644 };
            fs::set_permissions(&at, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

fn remove(root: &Path, path: &str) {
    fs::remove_file(root.join(path)).unwrap();
    let mut dir = root.join(path);
    while dir.pop() && dir != root {
        if fs::remove_dir(&dir).is_err() {
            break;
        }
    }
}

/// Applies the diff `parent..commit` to the tree at `root`, renames as
/// renames (through a temporary name, so a file can move into a folder of
/// its own old name); returns the bytes of the files it wrote.
fn apply_diff(repo: &Path, parent: &str, commit: &str, root: &Path) -> u64 {
    let diff = git_text(
        repo,
        &[
            "diff-tree",
            "-r",
            "-M",
            "--no-commit-id",
            "--name-status",
            "-z",
            parent,
            commit,
        ],
    );
    let target = commit_tree(repo, commit);
    let mut fields = diff.split('\0').filter(|f| !f.is_empty());
    let (mut deleted, mut renamed, mut written) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(status) = fields.next() {
        match status.chars().next().unwrap() {
            'D' => deleted.push(fields.next().unwrap().to_owned()),
            'R' => {
                let from = fields.next().unwrap().to_owned();
                let to = fields.next().unwrap().to_owned();
                renamed.push((from, to.clone()));
                written.push(to);
            }
            _ => written.push(fields.next().unwrap().to_owned()),
        }
    }
    for path in &deleted {
        remove(root, path);
    }
    let parked: Vec<(String, std::path::PathBuf)> = renamed
        .iter()
        .enumerate()
        .map(|(k, (from, to))| {
            let tmp = root.join(format!(".replay-move-{k}"));
            fs::rename(root.join(from), &tmp).unwrap();
            remove_empty_parents(root, from);
            (to.clone(), tmp)
        })
        .collect();
    for (to, tmp) in parked {
        fs::create_dir_all(root.join(&to).parent().unwrap()).unwrap();
        fs::rename(tmp, root.join(&to)).unwrap();
    }
    let mut bytes = 0;
    for path in written {
        let item = &target[&path];
        let current = tree_item(root, &path);
        if current.as_ref() != Some(item) {
            put(root, &path, item);
            if let Item::File(b, _) = item {
                bytes += b.len() as u64;
            }
        }
    }
    bytes
}

fn remove_empty_parents(root: &Path, path: &str) {
    let mut dir = root.join(path);
    while dir.pop() && dir != root {
        if fs::remove_dir(&dir).is_err() {
            break;
        }
    }
}

fn tree_item(root: &Path, path: &str) -> Option<Item> {
    use std::os::unix::fs::PermissionsExt;
    let at = root.join(path);
    let meta = fs::symlink_metadata(&at).ok()?;
    Some(if meta.file_type().is_symlink() {
        Item::Link(fs::read_link(&at).unwrap().to_string_lossy().into_owned())
    } else if meta.is_file() {
        Item::File(
            fs::read(&at).unwrap(),
            meta.permissions().mode() & 0o100 != 0,
        )
    } else {
        return None;
    })
}

/// Replays `commits` (oldest first; the first is applied onto an empty tree)
/// of the git repository `repo` through three locations.
async fn replay(repo: &Path, commits: &[String]) {
    let mut locations = one_repository(["a", "b", "c"]);
    let empty = git_text(repo, &["hash-object", "-t", "tree", "/dev/null"]);
    let mut parent = empty.trim().to_owned();
    let (mut wire_total, mut changed_total) = (0u64, 0u64);
    for (step, commit) in commits.iter().enumerate() {
        let started = Instant::now();
        let me = step % 3;
        let mut wire = 0;
        if step > 0 {
            let prev = (step - 1) % 3;
            let (here, there) = take_two(&mut locations, me, prev);
            let mut server = serve(there, &[&*here]);
            let (_, bytes) = sync_once(here, there, server.addr).await.unwrap();
            wire += bytes;
            let report = get_from(here, Some(&[]), &[(there, server.addr)]).await;
            assert!(report.failed.is_empty(), "step {step}: {:?}", report.failed);
            wire += report.bytes_fetched;
            server.stop().await;
        }
        let loc = &mut locations[me];
        let changed = apply_diff(repo, &parent, commit, &loc.root());
        loc.commit();
        let expected = commit_tree(repo, commit);
        assert_eq!(
            tree(loc).keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "step {step} ({commit}): paths"
        );
        assert!(
            tree(loc) == expected,
            "step {step} ({commit}): contents or modes"
        );
        eprintln!(
            "step {step:>3} {}: {:>7.3} s, {:>9} B on the wire for {:>9} B of changed files",
            &commit[..8],
            started.elapsed().as_secs_f64(),
            wire,
            changed
        );
        wire_total += wire;
        changed_total += changed;
        parent = commit.clone();
    }
    // The others catch up with the last editor, which holds the whole tree.
    let last = commits.last().unwrap();
    let editor = (commits.len() - 1) % 3;
    for me in (0..3).filter(|m| *m != editor) {
        let other = editor;
        let (here, there) = take_two(&mut locations, me, other);
        let mut server = serve(there, &[&*here]);
        sync_once(here, there, server.addr).await.unwrap();
        let report = get_from(here, Some(&[]), &[(there, server.addr)]).await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        server.stop().await;
    }
    let expected = commit_tree(repo, last);
    for loc in &locations {
        let got = tree(loc);
        let differs: Vec<&String> = expected
            .keys()
            .chain(got.keys())
            .filter(|p| expected.get(*p) != got.get(*p))
            .collect();
        assert!(
            differs.is_empty(),
            "a location's final tree differs at {differs:?}"
        );
        assert!(loc.repo.conflicts().unwrap().is_empty());
        assert!(loc.repo.store().blocked().unwrap().is_empty());
    }
    eprintln!(
        "replayed {} commits: {wire_total} B on the wire for {changed_total} B of changed files",
        commits.len()
    );
}

/// Mutable access to one location and shared access to another.
fn take_two(locations: &mut [Location], me: usize, other: usize) -> (&mut Location, &Location) {
    assert_ne!(me, other);
    if me < other {
        let (left, right) = locations.split_at_mut(other);
        (&mut left[me], &right[0])
    } else {
        let (left, right) = locations.split_at_mut(me);
        (&mut right[0], &left[other])
    }
}

/// One commit's changes to a working tree.
type Step = Box<dyn Fn(&Path)>;

/// A history with what real trees do, made with git itself.
fn made_history(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    git(dir, &["init", "-q", "-b", "main"]);
    let steps: Vec<Step> = vec![
        Box::new(|d| {
            fs::write(d.join("bench"), b"benchmark notes\n".repeat(50)).unwrap();
            fs::create_dir_all(d.join("src/lib")).unwrap();
            fs::write(d.join("src/lib/a.rs"), b"fn a() {}\n").unwrap();
            fs::write(d.join("run.sh"), b"#!/bin/sh\necho run\n").unwrap();
            fs::set_permissions(d.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        }),
        // A file moved into a new folder of its own old name.
        Box::new(|d| {
            fs::rename(d.join("bench"), d.join("bench.tmp")).unwrap();
            fs::create_dir(d.join("bench")).unwrap();
            fs::rename(d.join("bench.tmp"), d.join("bench/bench")).unwrap();
        }),
        // A chmod alone, a link inside and one outside the tree.
        Box::new(|d| {
            fs::set_permissions(d.join("run.sh"), fs::Permissions::from_mode(0o644)).unwrap();
            std::os::unix::fs::symlink("src/lib/a.rs", d.join("a-link")).unwrap();
            std::os::unix::fs::symlink("/etc/hostname", d.join("host")).unwrap();
        }),
        // A folder replaced by a file of its name; an edit.
        Box::new(|d| {
            fs::remove_dir_all(d.join("src/lib")).unwrap();
            fs::write(d.join("src/lib"), b"now a file\n").unwrap();
            fs::write(
                d.join("bench/bench"),
                b"benchmark notes, edited\n".repeat(50),
            )
            .unwrap();
        }),
        // A link retargeted, a file replaced by a link, and back.
        Box::new(|d| {
            fs::remove_file(d.join("a-link")).unwrap();
            std::os::unix::fs::symlink("src/lib", d.join("a-link")).unwrap();
            fs::remove_file(d.join("run.sh")).unwrap();
            std::os::unix::fs::symlink("bench/bench", d.join("run.sh")).unwrap();
        }),
        Box::new(|d| {
            fs::remove_file(d.join("run.sh")).unwrap();
            fs::write(d.join("run.sh"), b"#!/bin/sh\necho again\n").unwrap();
            fs::set_permissions(d.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
            fs::rename(d.join("host"), d.join("bench/host")).unwrap();
        }),
    ];
    let mut commits = Vec::new();
    for (k, step) in steps.iter().enumerate() {
        step(dir);
        git(dir, &["add", "-A"]);
        git(
            dir,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                &format!("step {k}"),
            ],
        );
        commits.push(git_text(dir, &["rev-parse", "HEAD"]).trim().to_owned());
    }
    commits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_history_of_type_changes_modes_and_links() {
    let dir = tempfile::tempdir().unwrap();
    let commits = made_history(dir.path());
    replay(dir.path(), &commits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_projects_own_history() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-list", "--first-parent", "HEAD"])
        .output();
    let commits: Vec<String> = match listed {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .take(OWN_HISTORY)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    if commits.len() < 2 {
        eprintln!("no git history in this checkout: only the made history is replayed");
        return;
    }
    let mut commits = commits;
    commits.reverse();
    // The oldest commit listed is applied onto an empty tree whole.
    replay(repo, &commits).await;
}
