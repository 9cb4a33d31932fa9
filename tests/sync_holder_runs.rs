//! Holder changes travel as compact runs (protocol.md, "Holder runs"): a
//! location that took copies of many files sends its new holder slots at
//! about a byte each, and a run that does not fit the receiver's state is
//! brought whole by the next session, so nothing is lost.

mod support;

use harmony::proto::encode_frame;
use harmony::sync;
use support::{locations, outgoing, sync_pair, sync_pair_committed, Location};

const FILES: usize = 300;

fn body(i: usize) -> Vec<u8> {
    format!("file number {i}\n").into_bytes()
}

/// a with `FILES` files, b knowing them (state only), then b taking a copy
/// of each by hand and committing, as a `get` would: only b's holder slots
/// changed since the sync.
fn pair_after_copies() -> (Location, Location) {
    let [mut a, mut b] = locations(["a", "b"]);
    for i in 0..FILES {
        a.write(&format!("f/{i:03}.txt"), &body(i));
    }
    sync_pair(&mut a, &mut b);
    for i in 0..FILES {
        b.write(&format!("f/{i:03}.txt"), &body(i));
    }
    assert_eq!(b.commit().edited, 0);
    (a, b)
}

/// The batches b would send a now.
fn from_b_to_a(a: &Location, b: &Location) -> Vec<sync::Batch> {
    let (id_a, id_b) = (a.repo.node_id(), b.repo.node_id());
    let hello_a = sync::hello(a.repo.store(), id_b, false).unwrap();
    let hello_b = sync::hello(b.repo.store(), id_a, false).unwrap();
    outgoing(b.repo.store(), &hello_b, &hello_a, id_a)
}

fn digest(loc: &Location) -> [u8; 32] {
    loc.repo.store().state_digest().unwrap()
}

#[test]
fn new_holdings_of_one_commits_files_go_as_one_run_of_a_byte_a_file() {
    let (mut a, mut b) = pair_after_copies();
    let batches = from_b_to_a(&a, &b);
    let entries: usize = batches.iter().map(|b| b.entries.len()).sum();
    let runs: Vec<_> = batches.iter().flat_map(|b| &b.runs).collect();
    let bytes: usize = batches.iter().map(|b| encode_frame(b).unwrap().len()).sum();
    assert_eq!(entries, 0, "no entry goes whole");
    assert_eq!(runs.len(), 1, "one commit's files have consecutive ids");
    assert_eq!(runs[0].node, b.repo.node_id());
    assert_eq!(runs[0].counters.len(), FILES);
    // 300 whole entries were ~100 KB; the run is its counters and ~60 bytes.
    assert!(
        bytes < FILES + 200,
        "{bytes} bytes for {FILES} holder slots"
    );

    sync_pair_committed(&mut a, &mut b);
    assert_eq!(digest(&a), digest(&b));
    let id_b = b.repo.node_id();
    for entry in a.repo.store().entries().unwrap() {
        let slot = entry.holders.get(&id_b).expect("b's slot reached a");
        assert_eq!(slot.hash, entry.single_content_hash());
    }
    assert!(a.ls().iter().all(|f| f.copies == 2));
}

#[test]
fn a_run_that_no_longer_fits_comes_whole_in_the_next_session() {
    let (mut a, mut b) = pair_after_copies();
    // a edits one file of b's run before b's slots reach it: b's slot for
    // it holds the old content, which is no current version at a.
    a.write("f/007.txt", b"edited at a\n");
    assert_eq!(a.commit().edited, 1);
    let old = b.repo.store().entries().unwrap();
    let old_007 = old
        .iter()
        .find(|e| e.current_path().as_str() == "f/007.txt")
        .unwrap()
        .single_content_hash();

    let (id_a, id_b) = (a.repo.node_id(), b.repo.node_id());
    sync_pair_committed(&mut a, &mut b);
    assert!(
        a.repo.store().peer_wants_whole(id_b).unwrap(),
        "a could not place b's run and asks for whole entries"
    );
    assert!(
        sync::hello(a.repo.store(), id_b, false)
            .unwrap()
            .whole_entries
    );

    // The next session brings b's changes whole; then both agree.
    let mut sessions = 1;
    while sync_pair_committed(&mut a, &mut b) > 0 {
        sessions += 1;
        assert!(sessions <= 4, "no convergence after {sessions} sessions");
    }
    assert_eq!(digest(&a), digest(&b));
    assert!(!a.repo.store().peer_wants_whole(id_b).unwrap());
    assert!(!b.repo.store().peer_wants_whole(id_a).unwrap());
    let entries = a.repo.store().entries().unwrap();
    let edited = entries
        .iter()
        .find(|e| e.current_path().as_str() == "f/007.txt")
        .unwrap();
    assert_ne!(edited.single_content_hash(), old_007);
    for entry in &entries {
        let slot = entry.holders.get(&id_b).expect("b's slot reached a");
        if entry.id != edited.id {
            assert_eq!(slot.hash, entry.single_content_hash());
        }
    }
}
