//! The million-file table of issue #15, measured with the real binary as a
//! new user runs it: N files of 32 bytes in N/1,000 folders (default
//! N = 1,000,000) at location A, then a fresh location B syncing from A's
//! `serve` over 127.0.0.1.
//!
//! ```text
//! cargo build --release --bin harmony --examples
//! target/release/examples/bench_scale [--files N] [--dir DIR]
//! ```
//!
//! Every row prints wall time and the peak RSS of each process involved:
//! a command's own from `/usr/bin/time`, and `serve`'s as its VmHWM (its
//! peak since it started, so the serve row shows the most it ever held).
//! Sync rows print the bytes that crossed loopback during the command (both
//! directions, IP and UDP headers included; nothing else runs on lo here).
//! Database rows print state.db per file after a checkpoint, without VACUUM:
//! what a user's disk holds.
//!
//! The bench needs about 5 GiB free in DIR (default: the system's temporary
//! folder) for N = 1,000,000; it removes what it made at the end.

#[path = "common/mod.rs"]
mod common;
#[path = "common/serves.rs"]
mod serves;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{backdate, cpu_seconds, harmony_binary, random_bytes, rss_of};
use harmony::model::STATE_DIR;
use harmony::node::live::STATUS_FILE;
use harmony::store::DB_FILE;
use serves::{free_port, harmony, loopback_bytes, Serve};

/// Files per folder, as in the issue's run.
const PER_FOLDER: usize = 1_000;
/// Bytes per file.
const FILE_LEN: usize = 32;
/// Files edited for the "sync after edits" row.
const EDITS: usize = 100;

struct Args {
    files: usize,
    dir: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        files: 1_000_000,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--files" => args.files = value.parse().expect("--files N"),
            "--dir" => args.dir = Some(value.into()),
            other => panic!("unknown argument {other} (--files N, --dir DIR)"),
        }
    }
    args
}

/// What one timed command cost.
struct Measured {
    secs: f64,
    peak_kib: u64,
}

/// Runs `bin -C dir ARGS` under `/usr/bin/time`; it must succeed.
fn timed(bin: &Path, dir: &Path, args: &[&str]) -> Measured {
    let report = dir.with_extension("time");
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(bin)
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .expect("/usr/bin/time runs (Debian package `time`)");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "harmony {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak_kib = fs::read_to_string(&report)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .expect("/usr/bin/time wrote the peak RSS");
    let _ = fs::remove_file(report);
    Measured { secs, peak_kib }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn row(what: &str, secs: f64, memory: &str, other: &str) {
    println!("| {what:<32} | {secs:>8.2} s | {memory:<28} | {other}");
}

/// state.db bytes per file after a checkpoint (the WAL folded in).
fn db_per_file(location: &Path, files: usize) -> f64 {
    let db = location.join(STATE_DIR).join(DB_FILE);
    let conn = rusqlite::Connection::open(&db).expect("state.db opens");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    drop(conn);
    fs::metadata(&db).expect("state.db").len() as f64 / files as f64
}

/// Waits until `serve` is up (its status file written) and then idle (no
/// CPU used for half a second): its start-up scan is done.
fn wait_idle(location: &Path, pid: u32) {
    let status = location.join(STATE_DIR).join(STATUS_FILE);
    let deadline = Instant::now() + Duration::from_secs(600);
    while !status.exists() {
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut before = cpu_seconds(pid);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = cpu_seconds(pid);
        if now - before < 0.02 {
            return;
        }
        assert!(Instant::now() < deadline, "serve never became idle");
        before = now;
    }
}

fn serve_peak(pid: u32) -> String {
    let hwm = rss_of(&pid.to_string(), "VmHWM:");
    let kib: u64 = hwm
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmHWM in kB");
    mib(kib)
}

/// Writes the dataset: `files` files of [`FILE_LEN`] random bytes, with an
/// old mtime as a tree at rest has.
fn make_tree(root: &Path, files: usize) {
    let started = Instant::now();
    for i in 0..files {
        let folder = root.join(format!("dir{:04}", i / PER_FOLDER));
        if i % PER_FOLDER == 0 {
            fs::create_dir_all(&folder).unwrap();
        }
        let path = folder.join(format!("file-{i:07}.dat"));
        fs::write(&path, random_bytes(FILE_LEN, i as u64)).unwrap();
        backdate(&path);
    }
    eprintln!(
        "wrote {files} files in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let args = parse_args();
    let bin = harmony_binary();
    let base = tempfile::Builder::new()
        .prefix("harmony-scale-")
        .tempdir_in(args.dir.unwrap_or_else(std::env::temp_dir))
        .unwrap();
    let (a, b) = (base.path().join("a"), base.path().join("b"));
    let n = args.files;
    make_tree(&a, n);
    fs::create_dir_all(&b).unwrap();

    let a_addr = format!("127.0.0.1:{}", free_port());
    harmony(
        &bin,
        &a,
        &["init", "--name", "a", "--listen", &a_addr, "-q"],
    );
    harmony(
        &bin,
        &b,
        &["init", "--name", "b", "--listen", "127.0.0.1:1", "-q"],
    );
    let id = |dir: &Path| harmony(&bin, dir, &["id", "-q"]).trim().to_owned();
    let (a_id, b_id) = (id(&a), id(&b));
    // B runs no serve: A's live node finds its port closed and leaves it.
    harmony(&bin, &a, &["peer", "add", "b", &b_id, "127.0.0.1:1", "-q"]);
    harmony(&bin, &b, &["peer", "add", "a", &a_id, &a_addr, "-q"]);

    println!(
        "{n} files of {FILE_LEN} B in {} folders",
        n.div_ceil(PER_FOLDER)
    );
    println!(
        "| operation                        |     time   | peak RSS                     | other"
    );
    println!(
        "| -------------------------------- | ---------- | ---------------------------- | -----"
    );
    let m = timed(&bin, &a, &["-q", "commit"]);
    row("first commit", m.secs, &mib(m.peak_kib), "");
    let m = timed(&bin, &a, &["-q", "commit"]);
    row("commit, nothing changed", m.secs, &mib(m.peak_kib), "");
    row(
        "state.db at the committer",
        0.0,
        "",
        &format!("{:.0} B per file", db_per_file(&a, n)),
    );

    let serve = Serve::start_with(&bin, &a, &base.path().join("serve.log"), &[]);
    let pid = serve.child.id();
    wait_idle(&a, pid);
    let synced = |what: &str| {
        let before = loopback_bytes();
        let m = timed(&bin, &b, &["-q", "sync", "a"]);
        let bytes = loopback_bytes() - before;
        row(
            what,
            m.secs,
            &format!("client {}, serve {}", mib(m.peak_kib), serve_peak(pid)),
            &format!(
                "{:.1} KB on the wire, {:.0} B per file",
                bytes as f64 / 1e3,
                bytes as f64 / n as f64
            ),
        );
    };
    synced("first sync to a fresh location");
    row(
        "state.db at the synced location",
        0.0,
        "",
        &format!("{:.0} B per file", db_per_file(&b, n)),
    );
    wait_idle(&a, pid);
    synced("sync, nothing changed");

    for i in (0..n).step_by((n / EDITS).max(1)).take(EDITS) {
        let path = a
            .join(format!("dir{:04}", i / PER_FOLDER))
            .join(format!("file-{i:07}.dat"));
        fs::write(&path, random_bytes(FILE_LEN, u64::MAX - i as u64)).unwrap();
    }
    // A's serve watches: it commits the edits by itself after its quiet period.
    std::thread::sleep(Duration::from_secs(2));
    wait_idle(&a, pid);
    synced(&format!("sync after {EDITS} edits"));
    serve.stop();

    for (what, args) in [
        ("ls --json", &["--json", "ls"][..]),
        ("status", &["status"][..]),
    ] {
        let m = timed(&bin, &a, args);
        row(
            what,
            m.secs,
            &mib(m.peak_kib),
            "at the committer, stdout to /dev/null",
        );
    }
}
