//! Benchmark of `commit`, printed beside this machine's own limits measured in
//! the same run.
//!
//! ```text
//! cargo run --release --example bench_commit [-- --dir /path/with/3GiB/free] [--small N] [--large-mib M]
//! ```
//!
//! Scenarios: a first commit of N files of 4 KiB (default 100,000); a
//! re-commit with nothing changed; a re-commit after editing 100 files; a
//! commit of M MiB (default 2048) in 4 large files. Each prints wall time and
//! peak memory (VmHWM, reset before each scenario through
//! /proc/self/clear_refs). The reference is the single pass the commit does
//! per file (fastcdc + blake3 of every chunk + blake3 of the whole) run from
//! memory on one thread and on all threads, plus blake3 and fastcdc alone.

#[path = "common/mod.rs"]
mod common;

use common::{backdate, random_bytes, reset_peak_rss, rss, secs, threads, write_old};
use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harmony::chunk::{hash_reader, ChunkParams};
use harmony::scan::NoProgress;
use harmony::{CommitOptions, InitOptions, Repo};

struct Args {
    dir: Option<PathBuf>,
    small: usize,
    large_mib: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        dir: None,
        small: 100_000,
        large_mib: 2048,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--dir" => args.dir = Some(value.into()),
            "--small" => args.small = value.parse().expect("--small N"),
            "--large-mib" => args.large_mib = value.parse().expect("--large-mib M"),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::tempdir_in(&base).expect("temp dir");
    println!("# harmony commit benchmark ({} cores)", threads());
    let limits = machine_limits();
    small_files(work.path(), args.small);
    large_files(work.path(), args.large_mib, &limits);
}

struct Limits {
    single_pass_1t: f64,
    single_pass_all: f64,
}

/// This machine's own speed for the work a commit does per byte, from memory.
fn machine_limits() -> Limits {
    let data = random_bytes(256 << 20, 1);
    let params = ChunkParams::DEFAULT;
    let blake3_1t = rate(data.len(), || {
        blake3::hash(&data);
    });
    let cdc = rate(data.len(), || {
        let n = fastcdc::v2020::FastCDC::new(
            &data,
            params.min as usize,
            params.avg as usize,
            params.max as usize,
        )
        .count();
        assert!(n > 0);
    });
    let single_pass_1t = rate(data.len(), || {
        let mut buf = vec![0u8; 4 << 20];
        hash_reader(&mut Cursor::new(&data), params, &mut buf).unwrap();
    });
    let n = threads();
    let single_pass_all = rate(data.len() * n, || {
        std::thread::scope(|s| {
            for _ in 0..n {
                s.spawn(|| {
                    let mut buf = vec![0u8; 4 << 20];
                    hash_reader(&mut Cursor::new(&data), params, &mut buf).unwrap();
                });
            }
        });
    });
    let larger = ChunkParams {
        min: 16 << 10,
        avg: 64 << 10,
        max: 256 << 10,
    };
    let single_pass_64k = rate(data.len(), || {
        let mut buf = vec![0u8; 4 << 20];
        hash_reader(&mut Cursor::new(&data), larger, &mut buf).unwrap();
    });
    println!("\n## machine limits (256 MiB in memory, best of 3)");
    println!("blake3, 1 thread:                          {blake3_1t:8.0} MB/s");
    println!("fastcdc 8K/32K/128K, chunking only:        {cdc:8.0} MB/s");
    println!("single pass (cdc + chunk + whole hash), 1 thread:  {single_pass_1t:8.0} MB/s");
    println!("single pass, {n} threads:                    {single_pass_all:8.0} MB/s");
    println!("single pass with 16K/64K/256K, 1 thread:   {single_pass_64k:8.0} MB/s");
    Limits {
        single_pass_1t,
        single_pass_all,
    }
}

fn small_files(work: &Path, count: usize) {
    let root = work.join("small");
    fs::create_dir(&root).unwrap();
    let mut repo = init(&root);
    println!("\n## {count} files of 4 KiB");
    let started = Instant::now();
    for i in 0..count {
        let path = root.join(format!("s{:03}/f{:05}.bin", i % 100, i));
        write_old(&path, &random_bytes(4096, i as u64 + 10));
    }
    println!(
        "created in {:.1} s (not part of any figure)",
        secs(started.elapsed())
    );

    let (report, t, peak) =
        measure(|| repo.commit(&CommitOptions::default(), &NoProgress).unwrap());
    assert_eq!(report.added, count);
    println!(
        "first commit:               {:6.2} s  ({:.0} files/s), peak RSS {peak}",
        secs(t),
        count as f64 / secs(t)
    );

    let (report, t, peak) =
        measure(|| repo.commit(&CommitOptions::default(), &NoProgress).unwrap());
    assert_eq!((report.changed(), report.files_read), (0, 0));
    println!(
        "re-commit, nothing changed: {:6.2} s  (target < 1.5 s), peak RSS {peak}",
        secs(t)
    );

    for i in (0..count).step_by(count / 100) {
        let path = root.join(format!("s{:03}/f{:05}.bin", i % 100, i));
        write_old(&path, &random_bytes(4096, i as u64 + 999_999));
    }
    let (report, t, peak) =
        measure(|| repo.commit(&CommitOptions::default(), &NoProgress).unwrap());
    assert_eq!((report.edited, report.files_read), (100, 100));
    println!(
        "re-commit after 100 edits:  {:6.2} s, peak RSS {peak}",
        secs(t)
    );
    drop(repo);
    fs::remove_dir_all(&root).unwrap();
}

fn large_files(work: &Path, total_mib: usize, limits: &Limits) {
    let root = work.join("large");
    fs::create_dir(&root).unwrap();
    let mut repo = init(&root);
    let per_file = (total_mib << 20) / 4;
    println!("\n## {total_mib} MiB in 4 files");
    let block = random_bytes(16 << 20, 7);
    for f in 0..4u8 {
        let mut file = fs::File::create(root.join(format!("large-{f}.bin"))).unwrap();
        let mut written = 0;
        let mut block = block.clone();
        while written < per_file {
            block[0] = block[0].wrapping_add(1).wrapping_add(f);
            let n = block.len().min(per_file - written);
            std::io::Write::write_all(&mut file, &block[..n]).unwrap();
            written += n;
        }
        drop(file);
        backdate(&root.join(format!("large-{f}.bin")));
    }
    let (report, t, peak) =
        measure(|| repo.commit(&CommitOptions::default(), &NoProgress).unwrap());
    assert_eq!(report.added, 4);
    let mbps = report.bytes_read as f64 / 1e6 / secs(t);
    println!(
        "commit: {:.2} s, {mbps:.0} MB/s, peak RSS {peak} (files in page cache)",
        secs(t)
    );
    println!(
        "  vs single pass from memory: 1 thread {:.0} MB/s = {:.0}%, {} threads {:.0} MB/s = {:.0}% (target >= 80%)",
        limits.single_pass_1t,
        100.0 * mbps / limits.single_pass_1t,
        threads(),
        limits.single_pass_all,
        100.0 * mbps / limits.single_pass_all
    );
}

fn init(root: &Path) -> Repo {
    let options = InitOptions {
        name: Some("bench".into()),
        listen: Some("127.0.0.1:0".into()),
    };
    Repo::init(root, &options).unwrap()
}

/// Runs `f` and returns its result, wall time and peak resident memory.
fn measure<T>(f: impl FnOnce() -> T) -> (T, Duration, String) {
    reset_peak_rss();
    let started = Instant::now();
    let value = f();
    let elapsed = started.elapsed();
    (value, elapsed, rss("VmHWM:"))
}

/// MB/s of `f` over `bytes`, best of three.
fn rate(bytes: usize, mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            f();
            bytes as f64 / 1e6 / secs(started.elapsed())
        })
        .fold(0.0, f64::max)
}
