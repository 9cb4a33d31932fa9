//! The always-on node's figures (issue 12), from four real `harmony serve`
//! processes on loopback: B in the middle, trusting A, C and D, each of
//! which trusts only B, so a change at A reaches C only through B.
//!
//! ```text
//! cargo build --release --bin harmony --examples
//! ip netns add hbench && ip -n hbench link set lo up      # loopback of its own:
//! ip netns exec hbench target/release/examples/bench_live  # the wire bytes are ours alone
//! [--runs 20] [--idle 60] [--dir BASE]
//! ```
//!
//! It prints, each as the median of `--runs`: the time from saving a file
//! at A to seeing it in B's and in C's state, and from saving a new version
//! of a 1 MiB file that B and C hold to the new bytes in their trees; the
//! CPU seconds of each serve and the bytes on loopback (all of /proc/net/dev
//! `lo`: run it in a namespace of its own) over `--idle` idle seconds; and,
//! after a burst of 1,000 saves within 2 s at A, how many commits and syncs
//! followed (from the serves' logs). Every serve runs with its defaults
//! (1 s quiet period), LAN discovery off.

#[path = "common/mod.rs"]
mod common;
#[path = "common/serves.rs"]
mod serves;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{cpu_seconds, harmony_binary, random_bytes};
use serves::{
    count_lines, free_port, harmony, in_state, lines_of, loopback_bytes, median, save, until, Serve,
};

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

struct Args {
    runs: usize,
    idle: u64,
    dir: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        runs: 20,
        idle: 60,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => args.runs = value().parse().expect("--runs N"),
            "--idle" => args.idle = value().parse().expect("--idle SECONDS"),
            "--dir" => args.dir = Some(value().into()),
            other => panic!("unknown argument {other}; see the header of examples/bench_live.rs"),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let bin = harmony_binary();
    let base = tempfile::tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir)).unwrap();
    let mut ids = Vec::new();
    let mut addrs = Vec::new();
    for name in NAMES {
        let dir = base.path().join(name);
        fs::create_dir(&dir).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        harmony(&bin, &dir, &["init", "--name", name, "--listen", &addr]);
        fs::write(dir.join(".harmony/config.toml"), "discovery = false\n").unwrap();
        ids.push(harmony(&bin, &dir, &["id", "-q"]).trim().to_owned());
        addrs.push(addr);
    }
    let dir = |i: usize| base.path().join(NAMES[i]);
    for leaf in [0, 2, 3] {
        harmony(
            &bin,
            &dir(leaf),
            &["peer", "add", "b", &ids[1], &addrs[1], "-q"],
        );
        harmony(
            &bin,
            &dir(1),
            &["peer", "add", NAMES[leaf], &ids[leaf], &addrs[leaf], "-q"],
        );
    }
    let nodes: Vec<Serve> = (0..4)
        .map(|i| {
            Serve::start(
                &bin,
                &dir(i),
                &base.path().join(format!("{}.log", NAMES[i])),
            )
        })
        .collect();
    println!("4 serves on loopback (B trusts A, C, D; they trust B); quiet period 1 s (default)");

    // A 1 MiB file that B and C hold.
    fs::write(dir(0).join("held.bin"), random_bytes(1 << 20, 0)).unwrap();
    until(|| in_state(&dir(2), "held.bin"));
    for i in [1, 2] {
        until(|| {
            Command::new(&bin)
                .arg("-C")
                .arg(dir(i))
                .args(["get", "held.bin", "-q"])
                .status()
                .unwrap()
                .success()
        });
    }

    let (mut state_b, mut state_c, mut content_b, mut content_c) = (vec![], vec![], vec![], vec![]);
    for run in 0..args.runs {
        let name = format!("s{run}.txt");
        let start = Instant::now();
        save(&dir(0).join(&name), format!("run {run}").as_bytes());
        let at_b = until(|| in_state(&dir(1), &name));
        let at_c = until(|| in_state(&dir(2), &name));
        state_b.push((at_b - start).as_secs_f64());
        state_c.push((at_c - start).as_secs_f64());

        let bytes = random_bytes(1 << 20, run as u64 + 1);
        let start = Instant::now();
        save(&dir(0).join("held.bin"), &bytes);
        let arrived = |i: usize| fs::read(dir(i).join("held.bin")).is_ok_and(|b| b == bytes);
        let at_b = until(|| arrived(1));
        let at_c = until(|| arrived(2));
        content_b.push((at_b - start).as_secs_f64());
        content_c.push((at_c - start).as_secs_f64());
    }
    println!("\nsave to visible, median of {} (min–max):", args.runs);
    for (what, xs) in [
        ("state   A→B", &state_b),
        ("state   A→C (through B)", &state_c),
        ("content A→B (1 MiB held)", &content_b),
        ("content A→C (1 MiB held, through B)", &content_c),
    ] {
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(0.0, f64::max);
        println!(
            "  {what:<38} {:.3} s  ({min:.3}–{max:.3})",
            median(xs.clone())
        );
    }

    // Idle: let everything settle first.
    std::thread::sleep(Duration::from_secs(5));
    let cpu_before: Vec<f64> = nodes.iter().map(|n| cpu_seconds(n.child.id())).collect();
    let wire_before = loopback_bytes();
    std::thread::sleep(Duration::from_secs(args.idle));
    let wire = loopback_bytes() - wire_before;
    let per_minute = 60.0 / args.idle as f64;
    println!("\nidle, over {} s (per minute):", args.idle);
    for (i, node) in nodes.iter().enumerate() {
        let cpu = cpu_seconds(node.child.id()) - cpu_before[i];
        let peers = if i == 1 { 3 } else { 1 };
        println!(
            "  serve {} ({peers} peers): {:.3} CPU s per idle minute",
            NAMES[i],
            cpu * per_minute
        );
    }
    println!(
        "  loopback bytes, all 4 serves (B with 3 peers): {:.0} B per idle minute",
        wire as f64 * per_minute
    );

    // A burst of 1,000 saves within 2 s.
    let marks: Vec<usize> = nodes.iter().map(|n| lines_of(&n.log)).collect();
    fs::create_dir(dir(0).join("burst")).unwrap();
    let start = Instant::now();
    for i in 0..1000 {
        fs::write(dir(0).join(format!("burst/{i}.txt")), format!("{i}")).unwrap();
        let due = start + Duration::from_millis(2 * i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let written = start.elapsed();
    until(|| in_state(&dir(2), "burst/999.txt"));
    let reached = start.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "\nburst: 1,000 saves at A in {:.2} s; all at C {:.2} s after the first; then:",
        written.as_secs_f64(),
        reached.as_secs_f64()
    );
    for (i, node) in nodes.iter().enumerate() {
        println!(
            "  serve {}: {} commits, {} syncs",
            NAMES[i],
            count_lines(&node.log, "committed", marks[i]),
            count_lines(&node.log, "synced with", marks[i])
        );
    }
    println!(
        "  (a sync is logged by both sides: each session counts at its client and its server)"
    );

    for node in nodes {
        node.stop();
    }
}
