//! Placement rules acted on by `serve` (issue 13): three real serves in a
//! line, a `client` laptop A, a `backup` NAS B and an `archive` disk C that
//! reaches A only through B, each with the defaults (1 s quiet period).
//!
//! ```text
//! cargo build --release --bin harmony --examples
//! ip netns add hbench && ip -n hbench link set lo up
//! ip netns exec hbench target/release/examples/bench_placement [--runs 20] [--size-kib 1024]
//! ```
//!
//! It prints, as the median of `--runs` (min–max): the time from saving a
//! new file at the laptop to its copy in the backup's tree and in the
//! archive's; and from moving it under `archive/` at the laptop to the
//! laptop's copy being dropped. Each file's bytes differ, so nothing is
//! reused.

#[path = "common/mod.rs"]
mod common;
#[path = "common/serves.rs"]
mod serves;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{harmony_binary, random_bytes};
use serves::{free_port, harmony, median, until, Serve};

const NAMES: [&str; 3] = ["laptop", "nas", "archive"];
const GROUPS: [&str; 3] = ["client", "backup", "archive"];

fn main() {
    let mut runs = 20;
    let mut size = 1024 << 10;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => runs = value().parse().expect("--runs N"),
            "--size-kib" => size = value().parse::<usize>().expect("--size-kib N") << 10,
            other => panic!("unknown argument {other}; see examples/bench_placement.rs"),
        }
    }
    let bin = harmony_binary();
    let base = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = NAMES.iter().map(|n| base.path().join(n)).collect();
    let mut ids = Vec::new();
    let mut addrs = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        fs::create_dir(dir).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        harmony(&bin, dir, &["init", "--name", NAMES[i], "--listen", &addr]);
        fs::write(dir.join(".harmony/config.toml"), "discovery = false\n").unwrap();
        harmony(&bin, dir, &["group", "add", GROUPS[i], "-q"]);
        ids.push(harmony(&bin, dir, &["id", "-q"]).trim().to_owned());
        addrs.push(addr);
    }
    for (i, j) in [(0, 1), (1, 0), (1, 2), (2, 1)] {
        harmony(
            &bin,
            &dirs[i],
            &["peer", "add", NAMES[j], &ids[j], &addrs[j], "-q"],
        );
    }
    let serving: Vec<Serve> = (0..3)
        .map(|i| {
            Serve::start(
                &bin,
                &dirs[i],
                &base.path().join(format!("{}.log", NAMES[i])),
            )
        })
        .collect();
    println!(
        "3 serves in a line: {} (client) – {} (backup) – {} (archive); defaults; files of {} KiB",
        NAMES[0],
        NAMES[1],
        NAMES[2],
        size >> 10
    );
    // Let the three join one repository first.
    fs::write(dirs[0].join("warm-up.txt"), b"warm-up").unwrap();
    until(|| dirs[2].join("warm-up.txt").exists());
    std::thread::sleep(Duration::from_secs(2));

    let (mut at_backup, mut at_archive, mut dropped) = (vec![], vec![], vec![]);
    for run in 0..runs {
        let name = format!("new{run}.bin");
        let bytes = random_bytes(size, run as u64 + 1);
        let start = Instant::now();
        fs::write(dirs[0].join(&name), &bytes).unwrap();
        let arrived = |i: usize| fs::read(dirs[i].join(&name)).is_ok_and(|b| b == bytes);
        at_backup.push((until(|| arrived(1)) - start).as_secs_f64());
        at_archive.push((until(|| arrived(2)) - start).as_secs_f64());

        let archived = format!("archive/{name}");
        // (A drop removes the folder it leaves empty.)
        fs::create_dir_all(dirs[0].join("archive")).unwrap();
        let start = Instant::now();
        fs::rename(dirs[0].join(&name), dirs[0].join(&archived)).unwrap();
        let gone = until(|| !dirs[0].join(&archived).exists() && dirs[2].join(&archived).exists());
        dropped.push((gone - start).as_secs_f64());
    }
    println!("\nmedian of {runs} (min–max):");
    for (what, xs) in [
        ("new file at the laptop → in the backup's tree", &at_backup),
        (
            "new file at the laptop → in the archive's tree (through the backup)",
            &at_archive,
        ),
        (
            "moved under archive/ at the laptop → the laptop's copy dropped",
            &dropped,
        ),
    ] {
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(0.0, f64::max);
        println!(
            "  {what:<70} {:.3} s  ({min:.3}–{max:.3})",
            median(xs.clone())
        );
    }
    for serve in serving {
        serve.stop();
    }
}
