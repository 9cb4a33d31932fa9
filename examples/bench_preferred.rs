//! Benchmark of preferred content (issue #13): evaluating a location's rule
//! over 1,000,000 synthetic files, against the issue's target of under one
//! second for a million entries.
//!
//! ```text
//! cargo run --release --example bench_preferred [-- --files 1000000]
//! ```
//!
//! Four locations (a client laptop, a backup NAS, an archive disk, a source
//! phone) hold random subsets of files spread over photos, music, documents
//! and `archive/` folders. Each rule is evaluated once per file for the
//! laptop, with `wants` as the placement code calls it; `anything` is the
//! floor (the cost of the call itself). Paths and holder sets are built
//! before the clock starts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use harmony::model::preferred::{parse, wants, FileFacts, Locations, Purpose};
use harmony::model::NodeId;

/// The issue's target for a million entries, in seconds.
const TARGET_SECS_PER_MILLION: f64 = 1.0;

fn main() {
    let mut files = 1_000_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--files" => files = args.next().and_then(|n| n.parse().ok()).expect("--files N"),
            other => panic!("unknown argument {other}"),
        }
    }

    let names = ["client", "backup", "archive", "source"];
    let nodes: Vec<NodeId> = (1..=names.len() as u8).map(|i| NodeId([i; 32])).collect();
    let groups: BTreeMap<NodeId, BTreeSet<String>> = nodes
        .iter()
        .zip(names)
        .map(|(node, group)| (*node, BTreeSet::from([group.to_owned()])))
        .collect();
    let locations = Locations {
        groups: &groups,
        numcopies: 2,
    };
    // Every subset of the four locations, for files to point at.
    let holder_sets: Vec<BTreeSet<NodeId>> = (0..1u32 << nodes.len())
        .map(|mask| {
            (0..nodes.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| nodes[i])
                .collect()
        })
        .collect();
    let mut random = Rng(0x9e37_79b9_7f4a_7c15);
    let catalog: Vec<(String, u64, usize)> = (0..files)
        .map(|i| {
            let r = random.next();
            let path = match r % 4 {
                0 => format!("photos/{}/{:02}/img_{i:07}.jpg", 2015 + r % 10, r % 12 + 1),
                1 => format!("music/artist_{}/album_{}/track_{i:07}.mp3", r % 500, r % 7),
                2 => format!("docs/project_{}/notes_{i:07}.pdf", r % 300),
                _ => format!(
                    "archive/{}/project_{}/raw_{i:07}.bin",
                    2010 + r % 10,
                    r % 50
                ),
            };
            let size = (r >> 8) % 50_000_000;
            (path, size, (r >> 40) as usize % holder_sets.len())
        })
        .collect();

    let laptop = nodes[0];
    let rules = [
        ("anything (the floor)", "anything", Purpose::Get),
        ("standard (client), get", "standard", Purpose::Get),
        ("standard (client), drop", "standard", Purpose::Drop),
        (
            "globs and sizes, get",
            "(include=**/*.jpg or include=**/*.mp3) and largerthan=1MB \
             or smallerthan=100kB and not copies=2 or exclude=archive/** and lackingcopies=1",
            Purpose::Get,
        ),
    ];
    println!(
        "preferred content over {files} files, 4 locations (target: under {TARGET_SECS_PER_MILLION} s \
         per 1,000,000 entries)"
    );
    println!(
        "{:<26} {:>9} {:>10} {:>14} {:>16}",
        "rule", "wanted", "time", "files/s", "per 1,000,000"
    );
    for (name, text, purpose) in rules {
        let expr = parse(text).expect("the benchmark's rules parse");
        let start = Instant::now();
        let wanted = catalog
            .iter()
            .filter(|(path, size, holders)| {
                let file = FileFacts {
                    path,
                    size: *size,
                    holders: &holder_sets[*holders],
                };
                wants(&expr, laptop, &file, &locations, purpose)
            })
            .count();
        let secs = start.elapsed().as_secs_f64();
        let per_million = secs * 1e6 / files as f64;
        println!(
            "{name:<26} {wanted:>9} {:>8.1}ms {:>14.0} {:>14.3} s{}",
            secs * 1e3,
            files as f64 / secs,
            per_million,
            if per_million < TARGET_SECS_PER_MILLION {
                ""
            } else {
                "  (over the target)"
            },
        );
    }
}

/// A small deterministic generator (xorshift64*), so every run draws the
/// same catalog.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
