//! Whether live sync storms with many nodes (issue 12: "a burst of commits,
//! or 32 nodes, causes no sync storm"): `--nodes` real `harmony serve`
//! processes on loopback, each trusting every other (a full mesh, the
//! worst case for notices), all started empty.
//!
//! ```text
//! cargo build --release --bin harmony --examples
//! ip netns add hbench && ip -n hbench link set lo up      # loopback of its own:
//! ip netns exec hbench target/release/examples/bench_mesh  # the wire bytes are ours alone
//! [--nodes 32] [--changes 10] [--idle 30] [--dir BASE]
//! ```
//!
//! It prints: the dials and sessions while the empty nodes start (they
//! have nothing to exchange); for the first file, which makes every other
//! node join the repository, and for each of `--changes` edits made in
//! turn at different nodes, the time until every node's state has it and
//! how many sync sessions followed, beside the floor of `nodes - 1` (each
//! other node must hear of it once); and the CPU seconds and loopback bytes
//! of all the serves over `--idle` idle seconds. Sessions are counted from
//! the serves' logs (each session is logged by both of its ends).

#[path = "common/mod.rs"]
mod common;
#[path = "common/serves.rs"]
mod serves;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{cpu_seconds, harmony_binary};
use serves::{count_lines, free_port, harmony, in_state, lines_of, loopback_bytes, median, Serve};

struct Args {
    nodes: usize,
    changes: usize,
    idle: u64,
    dir: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        nodes: 32,
        changes: 10,
        idle: 30,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--nodes" => args.nodes = value().parse().expect("--nodes N"),
            "--changes" => args.changes = value().parse().expect("--changes N"),
            "--idle" => args.idle = value().parse().expect("--idle SECONDS"),
            "--dir" => args.dir = Some(value().into()),
            other => panic!("unknown argument {other}; see the header of examples/bench_mesh.rs"),
        }
    }
    assert!(args.nodes >= 2, "--nodes must be at least 2");
    args
}

/// What the serves logged since `marks` (their line counts then): sync
/// sessions (each logged at both ends) and connections made.
fn sessions_and_dials(serving: &[Serve], marks: &[usize]) -> (usize, usize) {
    let count = |text: &str| -> usize {
        serving
            .iter()
            .zip(marks)
            .map(|(serve, &mark)| count_lines(&serve.log, text, mark))
            .sum()
    };
    (count("synced with") / 2, count("connected to "))
}

fn marks(serving: &[Serve]) -> Vec<usize> {
    serving.iter().map(|s| lines_of(&s.log)).collect()
}

/// Waits until `path` is in every location's state; returns when.
fn until_everywhere(dirs: &[PathBuf], path: &str) -> Instant {
    let mut at = Instant::now();
    for dir in dirs {
        at = serves::until(|| in_state(dir, path));
    }
    at
}

/// Waits until no serve has logged a line for `quiet`.
fn until_quiet(serving: &[Serve], quiet: Duration) {
    let mut last = marks(serving);
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        std::thread::sleep(Duration::from_millis(100));
        let now = marks(serving);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}

fn main() {
    let args = parse_args();
    let n = args.nodes;
    let bin = harmony_binary();
    let base = tempfile::tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir)).unwrap();
    let dirs: Vec<PathBuf> = (0..n).map(|i| base.path().join(format!("n{i}"))).collect();
    let mut ids = Vec::new();
    let mut addrs = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        fs::create_dir(dir).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        harmony(
            &bin,
            dir,
            &["init", "--name", &format!("n{i}"), "--listen", &addr],
        );
        fs::write(dir.join(".harmony/config.toml"), "discovery = false\n").unwrap();
        ids.push(harmony(&bin, dir, &["id", "-q"]).trim().to_owned());
        addrs.push(addr);
    }
    for (i, dir) in dirs.iter().enumerate() {
        for j in (0..n).filter(|&j| j != i) {
            let name = format!("n{j}");
            harmony(&bin, dir, &["peer", "add", &name, &ids[j], &addrs[j], "-q"]);
        }
    }
    let logs = |i: usize| base.path().join(format!("n{i}.log"));
    let start = Instant::now();
    let serving: Vec<Serve> = (0..n)
        .map(|i| Serve::start(&bin, &dirs[i], &logs(i)))
        .collect();
    println!(
        "{n} serves on loopback, each trusting the {} others; defaults (1 s quiet period), discovery off",
        n - 1
    );
    until_quiet(&serving, Duration::from_secs(3));
    let (sessions, dials) = sessions_and_dials(&serving, &vec![0; n]);
    println!(
        "\nstart, all empty: {dials} connections made, {sessions} sync sessions, quiet after {:.1} s",
        start.elapsed().as_secs_f64() - 3.0
    );

    let mark = marks(&serving);
    let start = Instant::now();
    fs::write(dirs[0].join("first.txt"), b"the first file").unwrap();
    let everywhere = until_everywhere(&dirs, "first.txt") - start;
    until_quiet(&serving, Duration::from_secs(3));
    let (sessions, dials) = sessions_and_dials(&serving, &mark);
    println!(
        "first file (every other node joins): in all {n} states after {:.2} s; {sessions} sessions, {dials} connections (floor: {} sessions)",
        everywhere.as_secs_f64(),
        n - 1
    );

    let mut times = Vec::new();
    let mut counts = Vec::new();
    for change in 0..args.changes {
        let at = (change * 7 + 1) % n;
        let path = format!("change{change}.txt");
        let mark = marks(&serving);
        let start = Instant::now();
        fs::write(dirs[at].join(&path), format!("change {change} at n{at}")).unwrap();
        times.push((until_everywhere(&dirs, &path) - start).as_secs_f64());
        until_quiet(&serving, Duration::from_secs(3));
        counts.push(sessions_and_dials(&serving, &mark).0 as f64);
    }
    if args.changes > 0 {
        let max = counts.iter().copied().fold(0.0, f64::max);
        println!(
            "one new file at a node, median of {}: in all states after {:.2} s; {:.0} sessions (max {max:.0}; floor {})",
            args.changes,
            median(times),
            median(counts),
            n - 1
        );
    }

    let cpu_before: Vec<f64> = serving.iter().map(|s| cpu_seconds(s.child.id())).collect();
    let wire_before = loopback_bytes();
    std::thread::sleep(Duration::from_secs(args.idle));
    let cpu: f64 = serving
        .iter()
        .zip(&cpu_before)
        .map(|(s, before)| cpu_seconds(s.child.id()) - before)
        .sum();
    let per_minute = 60.0 / args.idle as f64;
    println!(
        "idle, over {} s: {:.3} CPU s per idle minute for all {n} serves ({:.4} each); {:.0} loopback bytes per idle minute",
        args.idle,
        cpu * per_minute,
        cpu * per_minute / n as f64,
        (loopback_bytes() - wire_before) as f64 * per_minute
    );
    for serve in serving {
        serve.stop();
    }
}
