//! Crash safety: each risky operation of the real binary killed with
//! SIGKILL at seeded random moments, a few trials each on small trees (the
//! full runs: examples/crash_trials.rs). After every kill the state
//! database passes SQLite's integrity check, no partial file is in a
//! working tree, no content is lost, the next operation completes with the
//! right result, and a resumed get fetches no more than was missing.

mod support;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/crash.rs"]
mod crash;

use crash::{Operation, Scale, Tally};

/// Runs `count` trials of `op` with a fixed seed and asserts that every
/// invariant held after every kill, and that a kill landed mid-operation.
/// The operations whose `serve` is killed get one trial: the client waits
/// out its stream timeout (30 s) before it gives up on the dead peer.
fn trials(op: Operation, seed: u64, count: usize) -> Tally {
    let tally = crash::run(op, Scale::QUICK, count, seed);
    println!("{}\n{}", Tally::header(), tally.row(op));
    assert!(tally.failures.is_empty(), "{}", tally.failures.join("\n"));
    assert!(
        tally.landed > 0,
        "no kill of {} landed mid-operation",
        op.name()
    );
    tally
}

#[test]
fn a_killed_commit_of_many_files_leaves_a_usable_state() {
    trials(Operation::Commit, 1, 2);
}

#[test]
fn a_sync_killed_on_the_client_converges_at_the_next_sync() {
    trials(Operation::SyncClient, 2, 2);
}

#[test]
fn a_sync_whose_serve_is_killed_converges_at_the_next_sync() {
    trials(Operation::SyncServer, 3, 1);
}

#[test]
fn a_killed_get_of_small_files_resumes() {
    let tally = trials(Operation::GetSmall, 4, 2);
    assert!(
        tally.refetched <= tally.missing,
        "{}",
        tally.row(Operation::GetSmall)
    );
}

#[test]
fn a_killed_get_of_a_large_file_resumes_with_the_missing_chunks_only() {
    let tally = trials(Operation::GetLarge, 5, 2);
    assert!(
        tally.refetched <= tally.missing,
        "{}",
        tally.row(Operation::GetLarge)
    );
}

#[test]
fn an_apply_killed_during_its_moves_is_recovered() {
    let tally = trials(Operation::Apply, 6, 2);
    assert!(
        tally.recovered_moves > 0,
        "no kill left files in .harmony/moving/ for the recovery"
    );
}

#[test]
fn a_get_whose_serve_is_killed_resumes() {
    trials(Operation::ServeGet, 7, 1);
}
