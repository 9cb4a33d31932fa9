//! A fleet gossiping state (issue 15): `--nodes` locations of one
//! repository, in process, each adding `--files` files; then rounds in
//! which every location syncs with one peer drawn at random, until every
//! location knows every file. Each session is the library's own (hellos,
//! batches both ways, merge, apply), its bytes those of its frames (QUIC
//! and TLS add a few percent on top).
//!
//! ```text
//! cargo run --release --example bench_fleet [--nodes 32] [--files 10] [--seed S] [--gets]
//! ```
//!
//! `--gets`: after each round every location also takes a copy of the
//! files it knows (as a `get` would, by hand, and commits), so holder maps
//! grow with the fleet as they do when every location keeps everything.
//!
//! It prints, per round, the sessions, the bytes and the entries learned
//! (a location knowing a file it did not know before), then the bytes per
//! entry learned over all rounds, beside log2 of the fleet (the rounds
//! gossip needs).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use support::{pair, sync_pair_measured, Location};

struct Args {
    nodes: usize,
    files: usize,
    seed: u64,
    gets: bool,
}

fn args() -> Args {
    let mut args = Args {
        nodes: 32,
        files: 10,
        seed: 1,
        gets: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> u64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--nodes" => args.nodes = value() as usize,
            "--files" => args.files = value() as usize,
            "--seed" => args.seed = value(),
            "--gets" => args.gets = true,
            other => panic!("unknown argument {other}; see the doc comment of bench_fleet.rs"),
        }
    }
    assert!(args.nodes >= 2, "--nodes must be at least 2");
    args
}

fn content(node: usize, file: usize) -> Vec<u8> {
    format!("file {file} of node {node}\n").into_bytes()
}

/// The paths `loc` knows.
fn known(loc: &Location) -> BTreeSet<String> {
    loc.repo
        .store()
        .entries()
        .unwrap()
        .iter()
        .map(|e| e.current_path().to_string())
        .collect()
}

fn main() {
    let args = args();
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let first = Location::new("n00");
    let mut fleet = vec![first];
    for n in 1..args.nodes {
        let loc = Location::joining(&format!("n{n:02}"), &fleet[0]);
        fleet.push(loc);
    }
    for (n, loc) in fleet.iter_mut().enumerate() {
        for f in 0..args.files {
            loc.write(&format!("n{n:02}/f{f:02}.txt"), &content(n, f));
        }
        loc.commit();
    }
    let total = args.nodes * args.files;
    let mut knows: Vec<BTreeSet<String>> = fleet.iter().map(known).collect();
    println!(
        "{} locations, {} files each, seed {}{}",
        args.nodes,
        args.files,
        args.seed,
        if args.gets {
            ", every location getting what it knows"
        } else {
            ""
        }
    );
    println!("round  sessions  bytes        entries learned  bytes/entry");
    let (mut all_bytes, mut all_learned, mut all_sessions) = (0usize, 0usize, 0usize);
    let mut round = 0;
    while knows.iter().any(|k| k.len() < total) {
        round += 1;
        assert!(round <= 64, "no convergence after 64 rounds");
        let mut bytes = 0;
        for i in 0..args.nodes {
            let j = (i + rng.random_range(1..args.nodes)) % args.nodes;
            let (a, b) = pair(&mut fleet, i, j);
            bytes += sync_pair_measured(a, b).bytes;
        }
        let now: Vec<BTreeSet<String>> = fleet.iter().map(known).collect();
        let learned: usize = now.iter().zip(&knows).map(|(n, k)| n.len() - k.len()).sum();
        knows = now;
        if args.gets {
            for loc in &mut fleet {
                for path in known(loc) {
                    let (node, file) = parse(&path);
                    loc.write(&path, &content(node, file));
                }
                loc.commit();
            }
        }
        println!(
            "{round:>5}  {:>8}  {bytes:>11}  {learned:>15}  {:>11}",
            args.nodes,
            bytes
                .checked_div(learned)
                .map_or("-".into(), |b| b.to_string())
        );
        all_bytes += bytes;
        all_learned += learned;
        all_sessions += args.nodes;
    }
    println!(
        "all {total} files everywhere after {round} rounds (log2 of {} is {:.1}): {all_sessions} sessions, {all_bytes} bytes, {} bytes per session, {} bytes per entry learned",
        args.nodes,
        (args.nodes as f64).log2(),
        all_bytes / all_sessions.max(1),
        all_bytes / all_learned.max(1)
    );
}

/// The node and file numbers of a path this bench wrote.
fn parse(path: &str) -> (usize, usize) {
    let (node, file) = path.split_once('/').expect("nNN/fFF.txt");
    let number = |s: &str| {
        s.trim_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap()
    };
    (number(node), number(file))
}
