//! A `harmony get` killed with SIGKILL midway, through the real binary:
//! no partial file appears in the working tree, and the next `get` keeps
//! the chunks already in `.harmony/staging/` and fetches only the rest.

mod support;

#[path = "support/cli.rs"]
mod cli;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use cli::{json, location, ok, Serving};
use support::{pseudo_random, write_old};

/// Large enough that a debug-build `get` over loopback takes a few seconds,
/// so that the kill lands in the middle of it.
const SIZE: usize = 96 << 20;

/// A child process killed (SIGKILL) if the test fails before it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `.part` files in the staging folder of the location at `root`.
fn part_files(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root.join(".harmony/staging")) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "part"))
        .collect()
}

#[test]
fn a_killed_get_resumes_with_the_missing_chunks_only() {
    let started = Instant::now();
    let (a, a_id) = location("alpha");
    let (b, b_id) = location("beta");
    let big = pseudo_random(SIZE, 42);
    write_old(&a.path().join("big.bin"), &big);
    ok(a.path(), &["commit"]);

    // Both trust each other; alpha serves, beta (fresh) joins at its sync.
    ok(a.path(), &["peer", "add", "beta", &b_id, "127.0.0.1:9"]);
    let serve_a = Serving::start(a.path());
    ok(b.path(), &["peer", "add", "alpha", &a_id, &serve_a.addr]);
    ok(b.path(), &["sync", "alpha"]);
    let listed = json(b.path(), &["ls"]);
    assert_eq!(listed[0]["path"], "big.bin", "{listed}");
    assert_eq!(listed[0]["present"], false, "{listed}");
    let setup = started.elapsed();

    // A get, killed once its part file holds ~40% of the content: the file
    // is sparse (sized up front), so its allocated blocks grow with the
    // chunks written.
    let get_started = Instant::now();
    let mut get = Killed(
        Command::cargo_bin("harmony")
            .unwrap()
            .arg("-C")
            .arg(b.path())
            .args(["-q", "get", "big.bin"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut second_get_refused = false;
    let (part, allocated) = loop {
        if let Some(status) = get.0.try_wait().unwrap() {
            panic!(
                "the get ended ({status}) after {:?}, before it could be killed at 40% of \
                 {SIZE} bytes: make the file larger",
                get_started.elapsed()
            );
        }
        if let [part] = &part_files(b.path())[..] {
            if !second_get_refused {
                // A second get meanwhile stops at once, saying why, and
                // leaves the first one's work alone.
                let second = Command::cargo_bin("harmony")
                    .unwrap()
                    .arg("-C")
                    .arg(b.path())
                    .args(["get", "big.bin"])
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&second.stderr);
                assert_eq!(second.status.code(), Some(1), "{stderr}");
                assert!(
                    stderr.contains("another `harmony get` is fetching into"),
                    "{stderr}"
                );
                second_get_refused = true;
            }
            if let Ok(meta) = fs::metadata(part) {
                let allocated = meta.blocks() * 512;
                if allocated >= SIZE as u64 * 2 / 5 {
                    break (part.clone(), allocated);
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "the get made no progress in 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    get.0.kill().unwrap();
    let status = get.0.wait().unwrap();
    let killed_after = get_started.elapsed();
    assert_eq!(
        status.signal(),
        Some(9),
        "the get ended ({status}) before the kill landed: make the file larger"
    );

    // Nothing in the working tree; the part file stays in staging.
    assert!(
        !b.path().join("big.bin").exists(),
        "a partial file entered the working tree"
    );
    assert!(part.exists(), "the part file is gone after the kill");
    assert_eq!(fs::metadata(&part).unwrap().len(), SIZE as u64);

    // The next get keeps what the killed one wrote and fetches the rest.
    let resume_started = Instant::now();
    let report = json(b.path(), &["get", "big.bin"]);
    let resume = resume_started.elapsed();
    assert_eq!(report["files"], 1, "{report}");
    assert_eq!(report["failed"], serde_json::json!([]), "{report}");
    let fetched = report["bytes_fetched"].as_u64().unwrap();
    let reused = report["bytes_reused"].as_u64().unwrap();
    println!(
        "size {SIZE}, allocated at the kill {allocated} (after {killed_after:?}); \
         resume: reused {reused}, fetched {fetched} in {resume:?}; setup {setup:?}"
    );
    assert!(
        reused >= SIZE as u64 * 35 / 100,
        "only {reused} of {SIZE} bytes reused after the kill at {allocated} bytes: {report}"
    );
    assert_eq!(
        fetched + reused,
        SIZE as u64,
        "bytes fetched twice or missing: {report}"
    );
    assert_eq!(report["per_holder"]["alpha"], fetched, "{report}");
    let got = fs::read(b.path().join("big.bin")).unwrap();
    assert!(got == big, "the file got differs from alpha's");
    assert_eq!(part_files(b.path()), Vec::<PathBuf>::new());

    assert_eq!(serve_a.terminate().code(), Some(0));
}
