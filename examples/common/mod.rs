//! Helpers shared by the benchmark examples: deterministic data, files with
//! old mtimes, and memory figures. Included with `#[path]`.

#![allow(dead_code)] // each example uses a subset

use std::fs;
use std::path::Path;
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
