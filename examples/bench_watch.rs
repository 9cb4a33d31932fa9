//! What a watching `harmony serve` costs on a large tree: the figures of
//! issue 12 for 100,000 files in 1,000 folders.
//!
//! ```text
//! cargo build --release --bin harmony --example bench_watch
//! target/release/examples/bench_watch [--dir BASE] [--files N] [--folders F] [--idle SECONDS]
//! ```
//!
//! It makes the tree and commits it (in process), then runs the real
//! `harmony serve` beside this example and prints: the time to start
//! watching (from spawn, and the watcher's own set-up as serve logs it);
//! serve's resident memory and its count of inotify watches (the `inotify
//! wd:` lines of /proc/PID/fdinfo/*) once its first rescan is done; the
//! time from saving one file to serve's commit of it (a commit stats the
//! whole tree); and serve's CPU seconds (user + system, /proc/PID/stat)
//! over the idle seconds that follow (default 60).

#[path = "common/mod.rs"]
mod common;
#[path = "common/serving.rs"]
mod serving;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{cpu_seconds, harmony_binary, rss_of, secs};
use serving::Location;

struct Args {
    dir: Option<PathBuf>,
    files: usize,
    folders: usize,
    idle: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        dir: None,
        files: 100_000,
        folders: 1_000,
        idle: 60,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--dir" => args.dir = Some(value.into()),
            "--files" => args.files = value.parse().expect("--files N"),
            "--folders" => args.folders = value.parse().expect("--folders F"),
            "--idle" => args.idle = value.parse().expect("--idle SECONDS"),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// Inotify watches held by process `pid`.
fn inotify_watches(pid: u32) -> usize {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| fs::read_to_string(fd.path()).ok())
        .map(|info| {
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count()
        })
        .sum()
}

/// Serve's log lines as they come.
fn log_lines(child: &mut Child) -> mpsc::Receiver<(Instant, String)> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a log line containing `text`; returns when it came and it.
fn wait_for(log: &mpsc::Receiver<(Instant, String)>, text: &str) -> (Instant, String) {
    loop {
        let (at, line) = log
            .recv_timeout(Duration::from_secs(600))
            .unwrap_or_else(|_| panic!("serve never logged {text:?}"));
        if line.contains(text) {
            return (at, line);
        }
    }
}

fn main() {
    let args = parse_args();
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let harmony = harmony_binary();
    let loc = Location::new(&base, "watched");
    let root = loc.root();
    let per_folder = args.files.div_ceil(args.folders);
    let made = Instant::now();
    for i in 0..args.files {
        let folder = root.join(format!("folder-{:04}", i / per_folder));
        if i % per_folder == 0 {
            fs::create_dir(&folder).unwrap();
        }
        fs::write(
            folder.join(format!("file-{i:06}.txt")),
            format!("file {i}\n"),
        )
        .unwrap();
    }
    println!(
        "tree: {} files in {} folders, made in {:.1} s",
        args.files,
        args.files.div_ceil(per_folder),
        secs(made.elapsed())
    );
    let committed = Instant::now();
    let report = loc.commit();
    println!(
        "first commit (in process): {} files in {:.1} s",
        report.added,
        secs(committed.elapsed())
    );

    let spawned = Instant::now();
    let mut child = Command::new(&harmony)
        .arg("-C")
        .arg(&root)
        .args(["--json", "serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn,harmony=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("harmony serve starts");
    let pid = child.id();
    let log = log_lines(&mut child);
    let (watching_at, watching) = wait_for(&log, "watching ");
    let (rescanned_at, rescan) = wait_for(&log, "nothing to commit");
    println!(
        "serve: watching {:.2} s after spawn ({}); first rescan done {:.2} s after spawn ({})",
        secs(watching_at - spawned),
        watching
            .rsplit('(')
            .next()
            .unwrap_or("")
            .trim_end_matches(')'),
        secs(rescanned_at - spawned),
        rescan
            .rsplit('(')
            .next()
            .unwrap_or("")
            .trim_end_matches(')')
    );
    println!(
        "serve: RSS {} (peak {}), {} inotify watches for {} folders (with the root and .harmony/)",
        rss_of(&pid.to_string(), "VmRSS:"),
        rss_of(&pid.to_string(), "VmHWM:"),
        inotify_watches(pid),
        args.files.div_ceil(per_folder) + 2
    );

    // Settle before each figure: the first rescan may re-read files
    // committed in the same second as written (racy stat fields), and a
    // commit that opens more files than the kernel queues events for
    // (max_queued_events, 16,384) overflows the queue with its own reads,
    // which costs one more (stat-only) rescan.
    let scans_in = |log: &mpsc::Receiver<(Instant, String)>| {
        log.try_iter()
            .filter(|(_, line)| line.contains("committed (") || line.contains("nothing to commit"))
            .count()
    };
    std::thread::sleep(Duration::from_secs(5));
    let settling = scans_in(&log);
    let saved = Instant::now();
    fs::write(root.join("folder-0000/file-000000.txt"), "saved again\n").unwrap();
    let (commit_at, commit) = wait_for(&log, "committed (");
    println!(
        "one save to its commit (after {settling} more scans settled the start): {:.2} s, \
         quiet period 1 s included: {}",
        secs(commit_at - saved),
        commit.split("committed ").nth(1).unwrap_or("")
    );

    std::thread::sleep(Duration::from_secs(5));
    let settling = scans_in(&log);
    let before = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(args.idle));
    let idle = cpu_seconds(pid) - before;
    println!(
        "serve idle for {} s (after {settling} more scans settled it): {:.3} CPU seconds \
         (user + system), {} scans meanwhile, RSS {}, {} inotify watches",
        args.idle,
        idle,
        scans_in(&log),
        rss_of(&pid.to_string(), "VmRSS:"),
        inotify_watches(pid)
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().expect("serve exits");
    println!("serve stopped on SIGTERM: {status}");
}
