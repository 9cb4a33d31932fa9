//! Crash safety: a `commit` killed with SIGKILL at any moment leaves a state
//! database that opens, passes SQLite's integrity check, and lets the next
//! commit complete.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{pseudo_random, write_old};

fn harmony(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harmony"));
    cmd.arg("-C").arg(dir).arg("-q");
    cmd
}

fn make_tree(root: &Path) -> usize {
    let big = pseudo_random(6 << 20, 9);
    for i in 0..4 {
        let mut bytes = big.clone();
        bytes[0] = i;
        write_old(&root.join(format!("big/{i}.bin")), &bytes);
    }
    for i in 0..1500 {
        write_old(
            &root.join(format!("small/{}/{i}.txt", i % 30)),
            &pseudo_random(2048, i),
        );
    }
    1504
}

#[test]
fn a_killed_commit_leaves_a_usable_state() {
    let mut killed_midway = 0;
    for delay_ms in [10, 40, 80, 150, 300, 600] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let init = harmony(root).arg("init").stdout(Stdio::null()).status();
        assert!(init.unwrap().success());
        let files = make_tree(root);

        let mut child = harmony(root).arg("commit").spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            killed_midway += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let db = rusqlite::Connection::open(root.join(".harmony/state.db")).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "after a kill at {delay_ms} ms");
        drop(db);

        let out = harmony(root).arg("commit").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ls = harmony(root).args(["--json", "ls"]).output().unwrap();
        let listed: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
        assert_eq!(
            listed.as_array().unwrap().len(),
            files,
            "after a kill at {delay_ms} ms"
        );
    }
    assert!(
        killed_midway >= 3,
        "only {killed_midway} kills landed during a commit"
    );
}
