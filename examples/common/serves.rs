//! Helpers of the benchmarks that run real `harmony serve` processes:
//! setting locations up with the binary, starting and stopping serves,
//! waiting on their state, and reading their logs and the loopback's bytes.
//! Included with `#[path]`, beside `common/mod.rs`.

#![allow(dead_code)] // each example uses a subset

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harmony::model::STATE_DIR;
use harmony::store::{Store, DB_FILE};

/// A running `harmony -v serve`, its log (stderr) in a file.
pub struct Serve {
    pub log: PathBuf,
    pub child: Child,
}

impl Serve {
    /// Starts `bin -C dir -v serve`, logging to `log`.
    pub fn start(bin: &Path, dir: &Path, log: &Path) -> Serve {
        Serve::start_with(bin, dir, log, &[])
    }

    /// [`Serve::start`] with `flags` after `serve`.
    pub fn start_with(bin: &Path, dir: &Path, log: &Path, flags: &[&str]) -> Serve {
        let child = Command::new(bin)
            .arg("-C")
            .arg(dir)
            .args(["-v", "serve"])
            .args(flags)
            .stdout(Stdio::null())
            .stderr(fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Serve {
            log: log.to_path_buf(),
            child,
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Runs `bin -C dir ARGS`, which must succeed; returns its stdout.
pub fn harmony(bin: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "harmony {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A UDP port free now on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether location `dir`'s state has a live file at `path`.
pub fn in_state(dir: &Path, path: &str) -> bool {
    let Ok(store) = Store::open(&dir.join(STATE_DIR).join(DB_FILE)) else {
        return false;
    };
    store.placed_entries().is_ok_and(|placed| {
        placed
            .iter()
            .any(|p| p.path.as_str() == path && p.entry.content.winner().value.hash().is_some())
    })
}

/// Polls `done` every 2 ms until it holds (at most a minute); returns when.
pub fn until(mut done: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting");
        std::thread::sleep(Duration::from_millis(2));
    }
    Instant::now()
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Bytes sent on loopback so far (/proc/net/dev).
pub fn loopback_bytes() -> u64 {
    let dev = fs::read_to_string("/proc/net/dev").unwrap();
    let lo = dev
        .lines()
        .find(|l| l.trim_start().starts_with("lo:"))
        .expect("lo");
    let fields: Vec<&str> = lo.split_whitespace().collect();
    fields[9].parse().unwrap() // transmit bytes
}

/// Saves `bytes` at `path` as an editor does: a temporary file renamed over.
pub fn save(path: &Path, bytes: &[u8]) {
    let temp = path.with_extension("swp");
    fs::write(&temp, bytes).unwrap();
    fs::rename(&temp, path).unwrap();
}

/// Lines of `log` after its first `after` lines that contain `text`.
pub fn count_lines(log: &Path, text: &str, after: usize) -> usize {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .skip(after)
        .filter(|l| l.contains(text))
        .count()
}

/// How many lines `log` has now.
pub fn lines_of(log: &Path) -> usize {
    fs::read_to_string(log).unwrap_or_default().lines().count()
}
