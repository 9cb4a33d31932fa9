//! What real trees do, between in-process locations: type changes, files
//! that claim one path, executable bits, symbolic links, changes that cannot
//! be applied here, and holders found per content.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use harmony::model::RepoPath;
use harmony::scan::NoProgress;
use harmony::{ConflictKind, FileState, Keep};
use support::{get_from, one_repository, serve, sync_pair, tree, Item, Location};

/// a and b each add their own file at `path`, b after a (so a's claim is
/// the first), and sync.
fn both_added(path: &str, at_a: &[u8], at_b: &[u8]) -> (Location, Location) {
    let [mut a, mut b] = one_repository(["a", "b"]);
    a.write(path, at_a);
    a.commit();
    std::thread::sleep(std::time::Duration::from_millis(5));
    b.write(path, at_b);
    sync_pair(&mut a, &mut b);
    (a, b)
}

/// Each of a and b fetches what it lacks from the other.
async fn fetch_both(a: &Location, b: &Location) {
    for (to, from) in [(b, a), (a, b)] {
        let report = fetch(to, from).await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
    }
}

/// `to` fetches everything it lacks from `from`.
async fn fetch(to: &Location, from: &Location) -> harmony::transfer::GetReport {
    let mut server = serve(from, &[to]);
    let report = get_from(to, Some(&[]), &[(from, server.addr)]).await;
    server.stop().await;
    report
}

/// a holds `files`; b joined, synced and fetched them all.
async fn pair_holding(files: &[(&str, &[u8])]) -> (Location, Location) {
    let [mut a, mut b] = one_repository(["a", "b"]);
    for (path, bytes) in files {
        a.write(path, bytes);
    }
    sync_pair(&mut a, &mut b);
    let report = fetch(&b, &a).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    (a, b)
}

fn chmod(loc: &Location, path: &str, mode: u32) {
    fs::set_permissions(loc.root().join(path), fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_moved_into_a_folder_of_its_own_name_is_a_rename() {
    let (mut a, mut b) = pair_holding(&[("bench", b"the bench")]).await;
    let root = a.root();
    fs::rename(root.join("bench"), root.join("bench.tmp")).unwrap();
    fs::create_dir(root.join("bench")).unwrap();
    fs::rename(root.join("bench.tmp"), root.join("bench/bench")).unwrap();
    let report = a.commit();
    assert_eq!((report.renamed, report.added, report.deleted), (1, 0, 0));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    sync_pair(&mut a, &mut b);
    assert_eq!(tree(&b), tree(&a));
    assert_eq!(
        tree(&b).get("bench/bench"),
        Some(&Item::File(b"the bench".to_vec(), false))
    );
    assert_eq!(a.paths(), ["bench/bench"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_replaced_by_a_file_of_its_name() {
    let (mut a, mut b) = pair_holding(&[("d/x", b"x"), ("d/y", b"y")]).await;
    fs::remove_dir_all(a.root().join("d")).unwrap();
    a.write("d", b"now a file");
    let report = a.commit();
    assert_eq!((report.deleted, report.added), (2, 1));
    sync_pair(&mut a, &mut b);
    let report = fetch(&b, &a).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(tree(&b), tree(&a));
    assert_eq!(b.paths(), ["d"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_files_added_at_one_path_are_both_kept_and_listed() {
    let (mut a, mut b) = both_added("notes/todo.txt", b"a's list", b"b's list");
    fetch_both(&a, &b).await;
    assert_eq!(tree(&a), tree(&b), "both trees are the same");
    let items = tree(&a);
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        items.get("notes/todo.txt"),
        Some(&Item::File(b"a's list".to_vec(), false))
    );
    let other = items.keys().find(|p| p.contains(".conflict-")).unwrap();
    assert!(other.starts_with("notes/todo.conflict-") && other.ends_with(".txt"));
    assert_eq!(items[other], Item::File(b"b's list".to_vec(), false));
    let paths = a.paths();
    assert_eq!(paths.len(), 2, "ls lists each once: {paths:?}");

    let conflicts = a.repo.conflicts().unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].kind, ConflictKind::Path);
    assert_eq!(conflicts[0].sides.len(), 2);
    let states: Vec<FileState> = a.ls().iter().map(|f| f.state).collect();
    assert_eq!(states, [FileState::Conflict, FileState::Conflict]);

    // Keeping both makes the conflict names real: nothing moves.
    let path = RepoPath::new("notes/todo.txt").unwrap();
    a.repo.resolve(&path, &Keep::Both).unwrap();
    sync_pair(&mut a, &mut b);
    assert!(a.repo.conflicts().unwrap().is_empty());
    assert!(b.repo.conflicts().unwrap().is_empty());
    assert_eq!(tree(&a), items);
    assert_eq!(tree(&b), items);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_clash_resolved_for_one_side_deletes_the_other_into_the_trash() {
    let (mut a, mut b) = both_added("IMG_0001.JPG", b"camera one", b"camera two");
    let path = RepoPath::new("IMG_0001.JPG").unwrap();
    // b keeps its own picture at the name; a's goes (into b's trash? b never
    // held it; a holds the only copy, so a keeps it in its trash).
    b.repo.resolve(&path, &Keep::Local).unwrap();
    assert_eq!(
        tree(&b),
        BTreeMap::from([(
            "IMG_0001.JPG".to_owned(),
            Item::File(b"camera two".to_vec(), false)
        )])
    );
    sync_pair(&mut a, &mut b);
    let report = fetch(&a, &b).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(tree(&a), tree(&b));
    let trash = fs::read_dir(a.root().join(".harmony/trash")).unwrap();
    let kept: Vec<Vec<u8>> = trash
        .map(|f| fs::read(f.unwrap().path()).unwrap())
        .collect();
    assert_eq!(
        kept,
        [b"camera one".to_vec()],
        "the last copy is in a's trash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_where_another_location_has_a_folder_moves_aside() {
    let [mut a, mut b] = one_repository(["a", "b"]);
    a.write("p", b"a file");
    b.write("p/q", b"in a folder");
    sync_pair(&mut a, &mut b);
    fetch_both(&a, &b).await;
    assert_eq!(tree(&a), tree(&b));
    let items = tree(&a);
    assert_eq!(
        items.get("p/q"),
        Some(&Item::File(b"in a folder".to_vec(), false))
    );
    let aside = items.keys().find(|p| p.starts_with("p.conflict-")).unwrap();
    assert_eq!(items[aside], Item::File(b"a file".to_vec(), false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_onto_a_path_another_location_created_loses_it() {
    let (mut a, mut b) = pair_holding(&[("x", b"x")]).await;
    b.write("z", b"b's z");
    b.commit();
    std::thread::sleep(std::time::Duration::from_millis(5));
    fs::rename(a.root().join("x"), a.root().join("z")).unwrap();
    sync_pair(&mut a, &mut b);
    fetch_both(&a, &b).await;
    assert_eq!(tree(&a), tree(&b));
    let items = tree(&a);
    assert_eq!(items.get("z"), Some(&Item::File(b"b's z".to_vec(), false)));
    assert!(items
        .iter()
        .any(|(p, i)| p.starts_with("z.conflict-") && *i == Item::File(b"x".to_vec(), false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_both_then_get_finds_the_holder_by_content() {
    let (mut a, mut b) = pair_holding(&[("f.txt", b"v1")]).await;
    a.write("f.txt", b"a's edit");
    b.write("f.txt", b"b's edit");
    sync_pair(&mut a, &mut b);
    a.repo
        .resolve(&RepoPath::new("f.txt").unwrap(), &Keep::Both)
        .unwrap();
    sync_pair(&mut a, &mut b);
    // b's version now has a file of its own at a, held (as f.txt) by b only.
    let report = fetch(&a, &b).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let items = tree(&a);
    let copy = items.keys().find(|p| p.contains(".conflict-")).unwrap();
    assert_eq!(items[copy], Item::File(b"b's edit".to_vec(), false));
    let whereis = a.repo.whereis(&[RepoPath::new(copy).unwrap()]).unwrap();
    assert_eq!(whereis[0].holders.len(), 2, "a and b hold that content");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executable_bit_travels_and_a_chmod_alone_fetches_nothing() {
    let [mut a, mut b] = one_repository(["a", "b"]);
    a.write("run.sh", b"#!/bin/sh\necho hi\n");
    chmod(&a, "run.sh", 0o755);
    sync_pair(&mut a, &mut b);
    fetch(&b, &a).await;
    assert_eq!(
        tree(&b).get("run.sh"),
        Some(&Item::File(b"#!/bin/sh\necho hi\n".to_vec(), true))
    );

    chmod(&a, "run.sh", 0o644);
    let report = a.commit();
    assert_eq!(report.edited, 1, "a mode change is a new version");
    sync_pair(&mut a, &mut b);
    assert_eq!(tree(&b), tree(&a), "applied by the sync, without a get");
    assert!(
        b.repo
            .wanted(harmony::Selection::Under(&[]))
            .unwrap()
            .is_empty(),
        "nothing to fetch"
    );
    assert_eq!(b.ls()[0].state, FileState::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_sync_as_links_and_are_never_followed() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"not for peers").unwrap();
    let [mut a, mut b] = one_repository(["a", "b"]);
    a.write("target.txt", b"t");
    std::os::unix::fs::symlink("target.txt", a.root().join("inside")).unwrap();
    std::os::unix::fs::symlink(outside.path(), a.root().join("out")).unwrap();
    sync_pair(&mut a, &mut b);
    let items = tree(&b);
    assert_eq!(items.get("inside"), Some(&Item::Link("target.txt".into())));
    assert_eq!(
        items.get("out"),
        Some(&Item::Link(outside.path().to_string_lossy().into_owned()))
    );
    assert!(!items.contains_key("out/secret"), "not read through");
    // A new target syncs as an edit of the link.
    fs::remove_file(a.root().join("inside")).unwrap();
    std::os::unix::fs::symlink("elsewhere", a.root().join("inside")).unwrap();
    sync_pair(&mut a, &mut b);
    assert_eq!(
        tree(&b).get("inside"),
        Some(&Item::Link("elsewhere".into()))
    );
    // Deleted: gone at b too.
    fs::remove_file(a.root().join("inside")).unwrap();
    sync_pair(&mut a, &mut b);
    assert!(!tree(&b).contains_key("inside"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_through_a_folder_replaced_by_a_link() {
    for links_synced in [false, true] {
        let (mut a, mut b) = pair_holding(&[("docs/one.txt", b"1")]).await;
        if !links_synced {
            fs::write(b.root().join(".harmony/config.toml"), "symlinks = false\n").unwrap();
        }
        let outside = tempfile::tempdir().unwrap();
        fs::remove_dir_all(b.root().join("docs")).unwrap();
        std::os::unix::fs::symlink(outside.path(), b.root().join("docs")).unwrap();
        a.write("docs/two.txt", b"2");
        a.write("free.txt", b"3");
        a.commit();
        sync_pair(&mut a, &mut b);
        let report = fetch(&b, &a).await;
        assert_eq!(
            fs::read_dir(outside.path()).unwrap().count(),
            0,
            "nothing written outside"
        );
        assert_eq!(
            fs::read(b.root().join("free.txt")).unwrap(),
            b"3",
            "the rest is fetched"
        );
        let items = tree(&b);
        if links_synced {
            // The link is b's file `docs`, and a folder of that name exists
            // elsewhere: the link moves aside, the folder is made.
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            assert_eq!(
                items.get("docs/two.txt"),
                Some(&Item::File(b"2".to_vec(), false))
            );
            let aside = items
                .keys()
                .find(|p| p.starts_with("docs.conflict-"))
                .unwrap();
            assert_eq!(
                items[aside],
                Item::Link(outside.path().to_string_lossy().into_owned())
            );
        } else {
            assert!(
                report
                    .failed
                    .iter()
                    .any(|f| f.contains("docs/two.txt") && f.contains("not written through")),
                "{:?}",
                report.failed
            );
            assert!(!items.contains_key("docs/two.txt"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_occupied_path_blocks_only_its_file_and_is_retried() {
    let (mut a, mut b) = pair_holding(&[("have.txt", b"same bytes")]).await;
    // Both new files' contents are already at b (dedup): the sync applies them.
    a.write("new.txt", b"same bytes");
    a.write("also.txt", b"same bytes");
    a.commit();
    b.commit();
    // An uncommitted file of b's own is in the way of new.txt.
    b.write("new.txt", b"b's own, not committed");
    support::sync_pair_committed(&mut a, &mut b);
    assert_eq!(fs::read(b.root().join("also.txt")).unwrap(), b"same bytes");
    assert_eq!(
        fs::read(b.root().join("new.txt")).unwrap(),
        b"b's own, not committed"
    );
    let (lines, _) = b.repo.status(&NoProgress).unwrap();
    let blocked: Vec<_> = lines
        .iter()
        .filter(|l| l.state == FileState::Blocked)
        .collect();
    assert_eq!(blocked.len(), 1, "{lines:?}");
    assert_eq!(blocked[0].path.as_str(), "new.txt");
    assert!(blocked[0].reason.as_deref().unwrap().contains("taken here"));
    // Moved away: the next sync applies it and the block is gone.
    fs::rename(b.root().join("new.txt"), b.root().join("mine.txt")).unwrap();
    support::sync_pair_committed(&mut a, &mut b);
    b.repo.apply_remote(&[]).unwrap();
    assert_eq!(fs::read(b.root().join("new.txt")).unwrap(), b"same bytes");
    assert!(b.repo.store().blocked().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_differ_only_in_case_are_both_kept_where_case_folds() {
    let [mut a, mut b] = one_repository(["a", "b"]);
    a.write("docs/Readme.md", b"one");
    a.write("docs/README.md", b"two");
    // This kernel has no case-folding file system: b is told it has one,
    // and Harmony's own check of the folder does the rest.
    fs::write(b.root().join(".harmony/config.toml"), "fold_case = true\n").unwrap();
    sync_pair(&mut a, &mut b);
    let report = fetch(&b, &a).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let items = tree(&b);
    assert_eq!(items.len(), 2, "{items:?}");
    let mut contents: Vec<&Item> = items.values().collect();
    contents.sort_by_key(|i| format!("{i:?}"));
    assert_eq!(
        contents,
        [
            &Item::File(b"one".to_vec(), false),
            &Item::File(b"two".to_vec(), false)
        ]
    );
    assert!(
        items.keys().any(|p| p.contains(".conflict-case")),
        "{items:?}"
    );
    // Nothing moves back and forth; an edit reaches the file kept aside.
    sync_pair(&mut a, &mut b);
    assert_eq!(tree(&b), items);
    assert!(b.repo.store().blocked().unwrap().is_empty());
    let aside = items
        .keys()
        .find(|p| p.contains(".conflict-case"))
        .unwrap()
        .clone();
    let original = if aside.contains("README") {
        "docs/README.md"
    } else {
        "docs/Readme.md"
    };
    a.write(original, b"edited");
    sync_pair(&mut a, &mut b);
    fetch(&b, &a).await;
    assert_eq!(tree(&b)[&aside], Item::File(b"edited".to_vec(), false));
    assert_eq!(tree(&b).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_added_to_a_folder_renamed_elsewhere_stays_at_its_path() {
    let (mut a, mut b) = pair_holding(&[("music/one.flac", b"1"), ("music/two.flac", b"2")]).await;
    fs::rename(a.root().join("music"), a.root().join("albums")).unwrap();
    b.write("music/new.flac", b"new");
    sync_pair(&mut a, &mut b);
    fetch(&a, &b).await;
    // Renames are per file: the files a knew moved; b's new one was never
    // renamed by anyone, so it stays where b put it. Nothing is lost.
    for loc in [&a, &b] {
        assert_eq!(
            loc.paths(),
            ["albums/one.flac", "albums/two.flac", "music/new.flac"]
        );
    }
    assert_eq!(tree(&a), tree(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_is_never_served_as_the_bytes_it_points_to() {
    let [mut a, mut b] = one_repository(["a", "b"]);
    a.write("target.txt", b"what the link points to");
    std::os::unix::fs::symlink("target.txt", a.root().join("link")).unwrap();
    sync_pair(&mut a, &mut b);
    let link_hash = harmony::model::LinkTarget::new("target.txt")
        .unwrap()
        .hash();
    let mut server = serve(&a, &[&b]);
    let mut holders = support::holders(&b, &[(&a, server.addr)]);
    let conn = holders.conn(a.repo.node_id()).await.unwrap();
    let (answer, _) = conn
        .request(&harmony::proto::Request::Has { hash: link_hash })
        .await
        .unwrap();
    assert_eq!(answer, harmony::proto::Response::Has(false));
    holders.close().await;
    server.stop().await;
}

/// Sets or clears the immutable attribute of `path` (refused writes even
/// for root, which the test suite runs as in CI); false where the file
/// system has no such attribute.
fn immutable(path: &std::path::Path, on: bool) -> bool {
    std::process::Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_this_location_may_not_write_blocks_only_its_file() {
    let (mut a, mut b) = pair_holding(&[("have.txt", b"same bytes")]).await;
    a.write("locked/new.txt", b"same bytes");
    a.write("free.txt", b"same bytes");
    a.commit();
    let locked = b.root().join("locked");
    fs::create_dir(&locked).unwrap();
    if !immutable(&locked, true) {
        eprintln!("chattr +i is not available here: nothing to check");
        return;
    }
    sync_pair(&mut a, &mut b);
    immutable(&locked, false);
    assert_eq!(fs::read(b.root().join("free.txt")).unwrap(), b"same bytes");
    let blocked = b.repo.store().blocked().unwrap();
    assert_eq!(blocked.len(), 1, "{blocked:?}");
    assert_eq!(blocked[0].path.as_str(), "locked/new.txt");
    assert!(
        blocked[0].reason.contains("not permitted"),
        "{}",
        blocked[0].reason
    );
    // Writable again: the next apply places it.
    b.repo.apply_remote(&[]).unwrap();
    assert_eq!(fs::read(locked.join("new.txt")).unwrap(), b"same bytes");
    assert!(b.repo.store().blocked().unwrap().is_empty());
}
