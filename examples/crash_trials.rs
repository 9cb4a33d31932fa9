//! Crash trials (issue 14): each risky operation of the real `harmony`
//! binary killed with SIGKILL at random moments drawn from a seed, and the
//! invariants checked after every kill (see tests/support/crash.rs, which
//! tests/crash.rs runs a slice of in `cargo test`).
//!
//! ```text
//! cargo build --release --bin harmony --example crash_trials
//! target/release/examples/crash_trials [--trials N] [--seed S] [--quick] [--only NAME]
//! ```
//!
//! `--trials` is per operation (default 10, seven operations); the seed
//! (printed) makes the kill moments and the trees reproducible, though where
//! a kill lands also depends on how fast the machine runs at that moment.
//! `--quick` uses the test suite's small trees; `--only` runs the operations
//! whose name contains NAME. It prints one table row per operation: trials,
//! kills that landed mid-operation, how often each invariant held, the
//! trials whose kill the move recovery had to undo, and the bytes resumed
//! gets fetched against the bytes that were missing; then every failure with
//! the seed of its trial.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/support/cli.rs"]
mod cli;
#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/crash.rs"]
mod crash;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crash::{Operation, Scale, Tally};

fn main() {
    let mut trials = 10;
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    let mut scale = Scale::FULL;
    let mut only = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--trials" => trials = value().parse().expect("--trials N"),
            "--seed" => seed = value().parse().expect("--seed S"),
            "--quick" => scale = Scale::QUICK,
            "--only" => only = value(),
            _ => panic!("unknown argument {arg}"),
        }
    }
    // The helpers of tests/support/cli.rs find the binary as integration
    // tests do, through the variable cargo sets for them.
    std::env::set_var("CARGO_BIN_EXE_harmony", common::harmony_binary());
    println!("crash trials: seed {seed}, {trials} trials per operation, {scale:?}");

    let started = Instant::now();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for op in Operation::ALL {
        if !op.name().contains(only.as_str()) {
            continue;
        }
        let op_started = Instant::now();
        let mut tally = crash::run(op, scale, trials, seed);
        println!(
            "{} done in {:.0} s ({} failures)\n{}",
            op.name(),
            op_started.elapsed().as_secs_f64(),
            tally.failures.len(),
            tally.row(op)
        );
        rows.push(tally.row(op));
        failures.append(&mut tally.failures);
    }
    println!(
        "\n{} trials in {:.0} s\n\n{}",
        trials * rows.len(),
        started.elapsed().as_secs_f64(),
        Tally::header()
    );
    for row in rows {
        println!("{row}");
    }
    if !failures.is_empty() {
        println!("\nfailures:");
        for failure in &failures {
            println!("- {failure}");
        }
        std::process::exit(1);
    }
}
