//! State sync between locations in one process, through the library calls
//! the network session makes (no network): merge rules, transitive
//! knowledge, and the working tree after a sync.

mod support;

use std::collections::BTreeMap;
use std::fs;

use harmony::model::{RepoPath, STATE_DIR};
use harmony::store::{Store, DB_FILE};
use harmony::sync;
use harmony::FileState;
use support::{
    b3, conflicted_pair, locations, one_repository, outgoing, pseudo_random, shared_pair,
    sync_pair, sync_pair_committed, sync_pair_merged, Location,
};

fn states(loc: &Location) -> BTreeMap<String, (FileState, bool)> {
    loc.ls()
        .into_iter()
        .map(|f| (f.path.to_string(), (f.state, f.present)))
        .collect()
}

fn digest(loc: &Location) -> [u8; 32] {
    loc.repo.store().state_digest().unwrap()
}

#[test]
fn a_fresh_location_joins_and_learns_everything_transitively() {
    let [mut a, mut b, mut c] = locations(["a", "b", "c"]);
    a.write("music/one.flac", &pseudo_random(100_000, 1));
    a.write("docs/readme.txt", b"hello");
    assert!(sync_pair(&mut a, &mut b) > 0);
    assert_eq!(b.repo.settings().repo_id, a.repo.settings().repo_id);
    assert!(sync_pair(&mut b, &mut c) > 0);
    assert_eq!(digest(&b), digest(&c));
    // c's own record reaches a through b.
    assert!(sync_pair(&mut a, &mut b) > 0);
    assert_eq!(digest(&a), digest(&c));

    let listed = c.ls();
    assert_eq!(listed.len(), 2);
    for file in &listed {
        assert!(!file.present, "content does not travel with state");
        assert_eq!(file.copies, 1);
    }
    let entry = c.repo.store().entries().unwrap().remove(0);
    assert!(entry.holders.contains_key(&a.repo.node_id()));
    // c knows a's name and address, though it never talked to a.
    let record = c
        .repo
        .store()
        .node(a.repo.node_id())
        .unwrap()
        .expect("a's record");
    assert_eq!(record.name, "a");
    assert_eq!(record.addrs, [a.repo.settings().listen.clone()]);
    assert_eq!(c.repo.store().nodes().unwrap().len(), 3);
    let music = RepoPath::new("music").unwrap();
    let whereis = c.repo.whereis(&[music]).unwrap();
    assert_eq!(whereis.len(), 1);
    assert_eq!(whereis[0].path.as_str(), "music/one.flac");
    assert_eq!(whereis[0].holders.len(), 1);
    assert_eq!(whereis[0].holders[0].name.as_deref(), Some("a"));
    assert_eq!(whereis[0].holders[0].id, a.repo.node_id().to_string());
    let nowhere = RepoPath::new("nowhere").unwrap();
    assert!(c.repo.whereis(&[nowhere]).is_err());
    // Nothing was written to the working trees of b and c.
    assert!(!c.root().join("music").exists());
    // A location with state of its own does not change repository.
    let mut d = Location::new("d");
    d.write("mine.txt", b"d's own");
    d.commit();
    assert!(!d.repo.join_if_fresh(a.repo.settings().repo_id).unwrap());
}

#[test]
fn sync_is_idempotent_and_digest_first() {
    let [mut a, mut b] = locations(["a", "b"]);
    a.write("f.txt", b"x");
    assert!(sync_pair(&mut a, &mut b) > 0);
    assert_eq!(
        sync_pair(&mut a, &mut b),
        0,
        "equal digests: nothing exchanged"
    );
    assert_eq!(sync_pair(&mut b, &mut a), 0);
    // After a change, only the changed entry travels.
    a.write("g.txt", b"y");
    a.commit();
    let seq_before = b.repo.store().change_seq().unwrap();
    sync_pair(&mut a, &mut b);
    assert_eq!(b.repo.store().change_seq().unwrap(), seq_before + 1);
    assert_eq!(digest(&a), digest(&b));
}

#[test]
fn a_rename_here_and_an_edit_there_merge_into_one_renamed_edited_file() {
    let original = pseudo_random(50_000, 2);
    let (mut a, mut b) = shared_pair(&original);
    fs::create_dir(a.root().join("renamed")).unwrap();
    fs::rename(
        a.root().join("shared.bin"),
        a.root().join("renamed/new.bin"),
    )
    .unwrap();
    let edited = pseudo_random(50_000, 3);
    b.write("shared.bin", &edited);
    sync_pair(&mut a, &mut b);
    assert_eq!(digest(&a), digest(&b));

    // One file, renamed and edited, on both sides; no conflict.
    for loc in [&a, &b] {
        let listed = loc.ls();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].path.as_str(), "renamed/new.bin");
        assert_eq!(listed[0].hash.as_deref(), Some(b3(&edited).as_str()));
    }
    // b's working tree followed the rename, keeping its edit.
    assert_eq!(fs::read(b.root().join("renamed/new.bin")).unwrap(), edited);
    assert!(!b.root().join("shared.bin").exists());
    // a still holds the old content under the new name: outdated until `get`.
    assert_eq!(states(&a)["renamed/new.bin"], (FileState::Outdated, false));
    assert_eq!(
        fs::read(a.root().join("renamed/new.bin")).unwrap(),
        original
    );
}

/// A network session sends its batches while it merges the peer's. When
/// both sides changed one entry and the merge of the peer's version (which
/// gives the entry a newer change number) happens before the sender reads
/// it, the sender must still send it in this session: it reads from a
/// snapshot taken before merging starts.
#[test]
fn an_entry_both_sides_changed_goes_out_even_when_merged_before_it_is_read() {
    let (mut a, mut b) = shared_pair(&pseudo_random(50_000, 2));
    fs::create_dir(a.root().join("renamed")).unwrap();
    fs::rename(
        a.root().join("shared.bin"),
        a.root().join("renamed/new.bin"),
    )
    .unwrap();
    a.commit();
    b.write("shared.bin", &pseudo_random(50_000, 3));
    b.commit();

    let (id_a, id_b) = (a.repo.node_id(), b.repo.node_id());
    let hello_a = sync::hello(a.repo.store(), id_b, false).unwrap();
    let hello_b = sync::hello(b.repo.store(), id_a, false).unwrap();
    assert!(!sync::begin(a.repo.store_mut(), id_b, &hello_a, &hello_b).unwrap());
    sync::begin(b.repo.store_mut(), id_a, &hello_b, &hello_a).unwrap();
    // a's sender takes its snapshot, then a merges all of b's batches
    // before its sender reads anything.
    let snapshot = Store::open_snapshot(&a.root().join(STATE_DIR).join(DB_FILE)).unwrap();
    let mut moved_on = 0;
    let mut into_a = sync::Incoming::new(id_b, &hello_a, &hello_b);
    for batch in outgoing(b.repo.store(), &hello_b, &hello_a, id_a) {
        let merged = sync::merge_batch(a.repo.store_mut(), id_a, &mut into_a, batch).unwrap();
        moved_on += merged.changed.len();
    }
    assert_eq!(
        moved_on, 1,
        "the entry changed at a, past the range a sends"
    );
    let mut changed = Vec::new();
    let mut into_b = sync::Incoming::new(id_a, &hello_b, &hello_a);
    for batch in outgoing(&snapshot, &hello_a, &hello_b, id_b) {
        let merged = sync::merge_batch(b.repo.store_mut(), id_b, &mut into_b, batch).unwrap();
        changed.extend(merged.changed);
    }
    b.repo.apply_remote(&changed).unwrap();
    // b learned a's rename in this one session.
    assert_eq!(changed.len(), 1);
    assert_eq!(b.ls()[0].path.as_str(), "renamed/new.bin");
    assert!(b.root().join("renamed/new.bin").exists());
}

#[test]
fn concurrent_edits_are_a_conflict_with_both_versions_kept() {
    let (a, b) = conflicted_pair();
    assert_eq!(digest(&a), digest(&b));
    for loc in [&a, &b] {
        assert_eq!(states(loc)["shared.bin"].0, FileState::Conflict);
        let entry = loc.repo.store().entries().unwrap().remove(0);
        let hashes: Vec<_> = entry
            .content
            .versions()
            .iter()
            .filter_map(|v| v.value.hash())
            .map(|h| h.to_string())
            .collect();
        assert!(hashes.contains(&b3(b"edit by a")) && hashes.contains(&b3(b"edit by b")));
    }
    // Each working tree keeps its own version.
    assert_eq!(fs::read(a.root().join("shared.bin")).unwrap(), b"edit by a");
    assert_eq!(fs::read(b.root().join("shared.bin")).unwrap(), b"edit by b");
    let (status, _) = a.repo.status(&harmony::scan::NoProgress).unwrap();
    assert!(status.iter().any(|l| l.state == FileState::Conflict));
}

#[test]
fn an_edit_concurrent_with_a_delete_keeps_the_edit() {
    let (mut a, mut b) = shared_pair(b"base");
    fs::remove_file(a.root().join("shared.bin")).unwrap();
    b.write("shared.bin", b"edited by b");
    sync_pair(&mut a, &mut b);
    assert_eq!(digest(&a), digest(&b));
    assert_eq!(states(&a)["shared.bin"], (FileState::Ok, false));
    assert_eq!(states(&b)["shared.bin"], (FileState::Ok, true));
    assert_eq!(
        fs::read(b.root().join("shared.bin")).unwrap(),
        b"edited by b"
    );
}

#[test]
fn remote_renames_move_held_files_and_deletions_remove_them() {
    let [mut a, mut b] = locations(["a", "b"]);
    for i in 0..5 {
        a.write(&format!("album/{i}.jpg"), &pseudo_random(10_000, i));
    }
    a.write("old.txt", b"to be deleted");
    sync_pair(&mut a, &mut b);
    // b holds copies of everything (as `get` would leave it).
    for i in 0..5 {
        b.write(&format!("album/{i}.jpg"), &pseudo_random(10_000, i));
    }
    b.write("old.txt", b"to be deleted");
    sync_pair(&mut a, &mut b);

    fs::rename(a.root().join("album"), a.root().join("album-2026")).unwrap();
    fs::remove_file(a.root().join("old.txt")).unwrap();
    sync_pair(&mut a, &mut b);

    // The folder rename was applied on b without any content transfer.
    assert!(!b.root().join("album").exists());
    for i in 0..5 {
        assert_eq!(
            fs::read(b.root().join(format!("album-2026/{i}.jpg"))).unwrap(),
            pseudo_random(10_000, i)
        );
    }
    // The deleted file's last copy was on b: it went to the trash, not away.
    assert!(!b.root().join("old.txt").exists());
    let trash: Vec<_> = fs::read_dir(b.root().join(".harmony/trash"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(trash.len(), 1);
    assert_eq!(fs::read(&trash[0]).unwrap(), b"to be deleted");
    // b now records exactly what its tree holds: a commit finds nothing.
    assert_eq!(b.commit().changed(), 0);
    // b's holder slot changed when the deletion was applied: one more
    // exchange carries that back, then both agree.
    assert!(sync_pair(&mut a, &mut b) > 0);
    assert_eq!(sync_pair(&mut a, &mut b), 0);
    let paths: Vec<String> = b.paths();
    assert_eq!(paths.len(), 5);
    assert!(paths.iter().all(|p| p.starts_with("album-2026/")));
}

#[test]
fn a_file_changed_here_since_the_last_commit_is_never_moved_or_deleted() {
    let (mut a, mut b) = shared_pair(b"base");
    a.write("keep.txt", b"k");
    sync_pair(&mut a, &mut b);
    b.write("keep.txt", b"k");
    b.commit();
    sync_pair(&mut a, &mut b);

    fs::rename(a.root().join("shared.bin"), a.root().join("moved.bin")).unwrap();
    fs::remove_file(a.root().join("keep.txt")).unwrap();
    a.commit();
    // b changes both files after its last commit, then syncs without committing.
    fs::write(b.root().join("shared.bin"), b"local, uncommitted").unwrap();
    fs::write(b.root().join("keep.txt"), b"also local").unwrap();
    sync_pair_committed(&mut a, &mut b);
    assert_eq!(
        fs::read(b.root().join("shared.bin")).unwrap(),
        b"local, uncommitted"
    );
    assert_eq!(fs::read(b.root().join("keep.txt")).unwrap(), b"also local");
    assert!(!b.root().join("moved.bin").exists());
    // The next commit records them as b's changes: the edit survives the delete.
    b.commit();
    sync_pair(&mut a, &mut b);
    let listed = states(&b);
    assert!(listed.contains_key("keep.txt"), "{listed:?}");
    let path = RepoPath::new("moved.bin").unwrap();
    let moved = b
        .repo
        .store()
        .entries()
        .unwrap()
        .into_iter()
        .find(|e| e.current_path() == &path)
        .expect("the renamed file");
    assert!(!moved.is_deleted());
}

#[test]
fn content_already_held_here_is_reused_instead_of_fetched() {
    let (mut a, mut b) = shared_pair(b"version 1");
    // b already has version 2 under another name (say, a download).
    b.write("download.bin", b"version 2");
    b.commit();
    a.write("shared.bin", b"version 2");
    sync_pair(&mut a, &mut b);
    assert_eq!(fs::read(b.root().join("shared.bin")).unwrap(), b"version 2");
    assert_eq!(states(&b)["shared.bin"], (FileState::Ok, true));
    // Version 1 had a copy only on b: kept in the trash.
    let trash = fs::read_dir(b.root().join(".harmony/trash"))
        .unwrap()
        .count();
    assert_eq!(trash, 1);
    assert_eq!(b.commit().changed(), 0);
}

#[test]
fn resolve_keeps_the_chosen_version_and_the_resolution_syncs() {
    use harmony::Keep;
    let (mut a, mut b) = conflicted_pair();
    let conflicts = a.repo.conflicts().unwrap();
    assert_eq!(conflicts.len(), 1);
    let sides = &conflicts[0].sides;
    assert_eq!(sides.len(), 2);
    assert!(sides
        .iter()
        .any(|s| s.name.as_deref() == Some("b") && !s.here));
    assert!(sides
        .iter()
        .any(|s| s.name.as_deref() == Some("a") && s.here));

    let path = RepoPath::new("shared.bin").unwrap();
    let err = b
        .repo
        .resolve(&path, &Keep::Node("nobody".into()))
        .unwrap_err();
    assert!(err.to_string().contains("no node is called"), "{err}");
    let done = b.repo.resolve(&path, &Keep::Node("a".into())).unwrap();
    assert_eq!(done.kept, b3(b"edit by a"));
    assert!(b.repo.conflicts().unwrap().is_empty());
    // b now holds an outdated version; a holds the kept one.
    assert_eq!(states(&b)["shared.bin"], (FileState::Outdated, false));
    sync_pair(&mut a, &mut b);
    assert!(a.repo.conflicts().unwrap().is_empty());
    assert_eq!(states(&a)["shared.bin"], (FileState::Ok, true));
    assert_eq!(digest(&a), digest(&b));
}

#[test]
fn resolve_both_keeps_every_version_under_its_own_name() {
    use harmony::Keep;
    let (mut a, mut b) = conflicted_pair();
    let path = RepoPath::new("shared.bin").unwrap();
    let done = a.repo.resolve(&path, &Keep::Both).unwrap();
    assert_eq!(
        done.created,
        [RepoPath::new("shared.conflict-b.bin").unwrap()]
    );
    sync_pair(&mut a, &mut b);
    for loc in [&a, &b] {
        assert!(loc.repo.conflicts().unwrap().is_empty());
        let listed = loc.ls();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].path.as_str(), "shared.bin");
        assert_eq!(listed[0].hash.as_deref(), Some(b3(b"edit by a").as_str()));
        assert_eq!(listed[1].path.as_str(), "shared.conflict-b.bin");
        assert_eq!(listed[1].hash.as_deref(), Some(b3(b"edit by b").as_str()));
    }
    // b had that version: it copied it to the new name, without a transfer.
    assert_eq!(
        fs::read(b.root().join("shared.conflict-b.bin")).unwrap(),
        b"edit by b"
    );
    sync_pair(&mut a, &mut b);
    assert_eq!(a.ls()[1].copies, 1);
    assert!(!a.ls()[1].present);
    assert!(b.ls()[1].present);
}

fn tombstones(loc: &Location) -> usize {
    loc.repo.store().tombstones().unwrap().len()
}

/// A node record taken from a peer as it sent it is not sent back to that
/// peer, nor is the peer's own record: each is ~250 bytes signed, and a
/// fleet gossiping them back and forth paid for every echo.
#[test]
fn node_records_are_not_echoed_to_the_peer_that_has_them() {
    let [mut a, mut b, mut c] = one_repository(["a", "b", "c"]);
    sync_pair(&mut a, &mut c);
    sync_pair(&mut a, &mut b);
    assert!(
        b.repo.store().node(c.repo.node_id()).unwrap().is_some(),
        "b learned c's record from a"
    );
    let (id_a, id_b) = (a.repo.node_id(), b.repo.node_id());
    let hello_a = sync::hello(a.repo.store(), id_b, false).unwrap();
    let hello_b = sync::hello(b.repo.store(), id_a, false).unwrap();
    let to_a = outgoing(b.repo.store(), &hello_b, &hello_a, id_a);
    let records: Vec<_> = to_a.iter().flat_map(|batch| &batch.nodes).collect();
    assert!(records.is_empty(), "{records:?}");
    // c, which has not seen b, gets b's record (and not its own).
    let id_c = c.repo.node_id();
    let hello_c = sync::hello(c.repo.store(), id_b, false).unwrap();
    let hello_b = sync::hello(b.repo.store(), id_c, false).unwrap();
    let to_c = outgoing(b.repo.store(), &hello_b, &hello_c, id_c);
    let ids: Vec<_> = to_c
        .iter()
        .flat_map(|batch| &batch.nodes)
        .map(|r| r.id)
        .collect();
    assert!(ids.contains(&id_b) && !ids.contains(&id_c), "{ids:?}");
}

#[test]
fn tombstones_are_collected_once_every_known_node_has_seen_them() {
    let [mut a, mut b, mut c] = locations(["a", "b", "c"]);
    a.write("doomed.txt", b"old news");
    a.write("kept.txt", b"stays");
    sync_pair(&mut a, &mut b);
    sync_pair(&mut b, &mut c);
    c.write("doomed.txt", b"old news"); // c holds a copy, then goes offline
    c.commit();
    sync_pair(&mut b, &mut c);

    fs::remove_file(a.root().join("doomed.txt")).unwrap();
    for _ in 0..4 {
        sync_pair(&mut a, &mut b);
    }
    // c is known and has not seen the deletion: the tombstone must stay, or
    // c's old copy would bring the file back.
    assert_eq!(tombstones(&a), 1);
    assert_eq!(tombstones(&b), 1);

    // c comes back: it learns of the deletion (its copy goes to the trash,
    // a's copy is gone too), acknowledges it, and nothing is resurrected.
    sync_pair(&mut b, &mut c);
    assert!(!c.root().join("doomed.txt").exists());
    for _ in 0..4 {
        sync_pair(&mut a, &mut b);
        sync_pair(&mut b, &mut c);
    }
    for loc in [&a, &b, &c] {
        assert_eq!(tombstones(loc), 0, "{}", loc.repo.settings().node_name);
        assert_eq!(loc.paths(), ["kept.txt"]);
    }
    assert_eq!(digest(&a), digest(&b));
    assert_eq!(digest(&b), digest(&c));
    assert_eq!(sync_pair(&mut a, &mut b), 0);
    assert_eq!(sync_pair(&mut b, &mut c), 0);
}

#[test]
fn concurrent_renames_settle_on_the_same_name_everywhere_and_are_reported() {
    let (mut a, mut b) = shared_pair(b"base");
    fs::rename(a.root().join("shared.bin"), a.root().join("by-a.bin")).unwrap();
    a.commit();
    std::thread::sleep(std::time::Duration::from_millis(5));
    fs::rename(b.root().join("shared.bin"), b.root().join("by-b.bin")).unwrap();
    sync_pair(&mut a, &mut b);
    sync_pair(&mut a, &mut b);
    assert_eq!(digest(&a), digest(&b));
    // The later rename (b's) wins on both; both working trees follow it.
    assert_eq!(a.paths(), ["by-b.bin"]);
    assert_eq!(b.paths(), ["by-b.bin"]);
    assert!(a.root().join("by-b.bin").exists() && !a.root().join("by-a.bin").exists());
    assert!(b.root().join("by-b.bin").exists());
    let entry = a.repo.store().entries().unwrap().remove(0);
    assert!(entry.path.is_conflict());
    let report = a.repo.apply_remote(&[entry.id]).unwrap();
    assert_eq!(report.rename_conflicts.len(), 1);
    assert!(
        report.rename_conflicts[0].contains("by-a.bin"),
        "{:?}",
        report.rename_conflicts
    );
}

/// An edit made here, and committed only after a newer version of the
/// same file arrived (serve's watcher commits a quiet period after the
/// edit; a merge may land in between), is concurrent with that version: a
/// conflict with both kept. It used to supersede it, and the other
/// location's edit was lost everywhere.
#[test]
fn an_edit_committed_after_a_newer_version_arrived_is_a_conflict() {
    let (mut a, mut b) = shared_pair(b"draft");
    a.write("shared.bin", b"edited at a");
    a.commit();
    b.write("shared.bin", b"edited at b!");
    // b merges a's version before committing its own edit.
    sync_pair_committed(&mut a, &mut b);
    b.commit();
    sync_pair_committed(&mut a, &mut b);
    for loc in [&a, &b] {
        let conflicts = loc.repo.conflicts().unwrap();
        assert_eq!(
            conflicts.len(),
            1,
            "{}: {conflicts:?}",
            loc.repo.settings().node_name
        );
        let mut sizes: Vec<u64> = conflicts[0].sides.iter().map(|s| s.size).collect();
        sizes.sort();
        assert_eq!(sizes, [11, 12], "both versions kept");
    }
    assert_eq!(
        fs::read(a.root().join("shared.bin")).unwrap(),
        b"edited at a"
    );
    assert_eq!(
        fs::read(b.root().join("shared.bin")).unwrap(),
        b"edited at b!"
    );
}

/// A sync killed between its merge and its apply (found by the crash
/// trials, tests/crash.rs): the peer's progress says the changes are merged,
/// so no later session brings them again, and the next one finds the
/// digests equal. The merge leaves each change blocked until applied, and
/// that session applies it: the rename reaches the tree.
#[test]
fn a_sync_cut_between_merge_and_apply_is_applied_by_the_next_sync() {
    let (mut a, mut b) = shared_pair(b"moved while b was cut off");
    fs::create_dir(a.root().join("moved")).unwrap();
    fs::rename(
        a.root().join("shared.bin"),
        a.root().join("moved/shared.bin"),
    )
    .unwrap();
    a.commit();
    sync_pair_merged(&mut a, &mut b, false);
    assert!(b.root().join("shared.bin").exists(), "nothing applied yet");

    assert_eq!(
        sync_pair(&mut a, &mut b),
        0,
        "the next sync finds nothing new"
    );
    assert!(!b.root().join("shared.bin").exists());
    assert_eq!(
        fs::read(b.root().join("moved/shared.bin")).unwrap(),
        b"moved while b was cut off"
    );
    assert!(b.repo.store().blocked().unwrap().is_empty());
}

/// The apply step after a merge has work only for files this location
/// holds, or can make from what it has: a cut first sync leaves nothing
/// blocked for the files held elsewhere. (Each was marked "not applied
/// yet", so `status` listed every file of the repository, and the next
/// apply read them all again.)
#[test]
fn a_cut_first_sync_leaves_nothing_blocked_for_files_held_elsewhere() {
    let [mut a, mut b] = locations(["a", "b"]);
    for i in 0..50 {
        a.write(&format!("f/{i:02}"), format!("file {i}").as_bytes());
    }
    a.commit();
    sync_pair_merged(&mut a, &mut b, false);
    assert_eq!(b.ls().len(), 50, "merged");
    assert!(b.repo.store().blocked().unwrap().is_empty());
    let (status, _) = b.repo.status(&harmony::scan::NoProgress).unwrap();
    assert!(status.is_empty(), "{status:?}");
    // A file b can make from what it holds still waits for the apply.
    b.write("mine.txt", b"file 7");
    b.commit();
    a.write("g/copy", b"file 7");
    a.commit();
    sync_pair_merged(&mut a, &mut b, false);
    let blocked: Vec<String> = b
        .repo
        .store()
        .blocked()
        .unwrap()
        .into_iter()
        .map(|f| f.path.to_string())
        .collect();
    assert_eq!(blocked, ["g/copy"]);
    sync_pair(&mut a, &mut b);
    assert_eq!(fs::read(b.root().join("g/copy")).unwrap(), b"file 7");
}

/// Two locations meeting for the first time, each holding most of the
/// other's state already (it reached both through a third): each sends
/// only what lies in the buckets of its summary that differ.
#[test]
fn a_first_meeting_sends_only_what_the_other_lacks() {
    let [mut a, mut b, mut c] = locations(["a", "b", "c"]);
    for i in 0..200 {
        a.write(&format!("f/{i:03}"), format!("{i}").as_bytes());
    }
    sync_pair(&mut a, &mut b);
    sync_pair(&mut a, &mut c);
    // b and c know the same 200 files (and a, b and c); then each changes one.
    b.write("only-b.txt", b"b");
    c.write("only-c.txt", b"c");
    b.commit();
    c.commit();
    let (id_b, id_c) = (b.repo.node_id(), c.repo.node_id());
    let hello_b = sync::hello(b.repo.store(), id_c, false).unwrap();
    let hello_c = sync::hello(c.repo.store(), id_b, false).unwrap();
    assert!(hello_b.merged_yours.is_none() && hello_b.summary.is_some());
    let sent: Vec<String> = outgoing(b.repo.store(), &hello_b, &hello_c, id_c)
        .iter()
        .flat_map(|batch| batch.entries.iter())
        .map(|e| e.current_path().to_string())
        .collect();
    // The new file, and the few that share a bucket with a row that
    // differs (the two new files, the records of b and c), out of 201.
    assert!(sent.contains(&"only-b.txt".to_owned()));
    assert!(sent.len() <= 10, "{} entries sent: {sent:?}", sent.len());

    sync_pair(&mut b, &mut c);
    assert_eq!(digest(&b), digest(&c));
    assert_eq!(b.paths().len(), 202);
    // Met once, they have progress of each other: no summary any more.
    assert!(sync::hello(b.repo.store(), id_c, false)
        .unwrap()
        .summary
        .is_none());
    // A fresh peer has nothing to leave out: none for it either.
    let [d] = locations(["d"]);
    let to_fresh = sync::hello(b.repo.store(), d.repo.node_id(), true).unwrap();
    assert!(to_fresh.merged_yours.is_none() && to_fresh.summary.is_none());
}
