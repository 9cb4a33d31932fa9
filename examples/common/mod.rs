//! Helpers shared by the benchmark examples: deterministic data, files with
//! old mtimes, and memory figures. Included with `#[path]`.

#![allow(dead_code)] // each example uses a subset

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

/// Deterministic incompressible bytes (xorshift), fast enough for GiBs.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a file (creating folders) with an old mtime, so that a commit
/// trusts its stat fields at once.
pub fn write_old(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, bytes).unwrap();
    backdate(path);
}

/// A fixed mtime well in the past, like the peers' datasets (1700000000).
pub fn backdate(path: &Path) {
    let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(when).unwrap();
}

/// Resets the peak resident set size (VmHWM) to the current one (Linux >= 4.0).
pub fn reset_peak_rss() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

/// A field of /proc/self/status, such as "VmHWM:" (peak) or "VmRSS:".
pub fn rss(field: &str) -> String {
    rss_of("self", field)
}

/// A field of /proc/PID/status ("self": this process).
pub fn rss_of(pid: &str, field: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l[field.len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The `harmony` binary built beside this example (target/PROFILE/).
pub fn harmony_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/PROFILE/examples/")
        .join("harmony");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --release --bin harmony --examples)",
        bin.display()
    );
    bin
}

/// User + system CPU seconds of process `pid` so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("serve runs");
    // The fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / clock_ticks() as f64
}

fn clock_ticks() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}
