//! A new user's first hour, through the real binary: `demo`, shell
//! completions and man pages, clear failures, and `--json` everywhere.

#[path = "support/cli.rs"]
mod cli;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_demo_runs_to_the_end_and_leaves_nothing_behind() {
    let parent = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("harmony")
        .unwrap()
        .arg("demo")
        .arg("--dir")
        .arg(parent.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each part of the story, as the commands themselves report it.
    for shown in [
        "nas: sent 0 and received 3 entries", // state through the middle one
        "desktop$ harmony whereis music",
        "got 2 files",                               // the partial get
        "2 renamed",                                 // the rename, without content
        "photos/summer-2026/beach.conflict-nas.jpg", // the conflict, both kept
    ] {
        assert!(stdout.contains(shown), "`{shown}` missing from:\n{stdout}");
    }
    assert_eq!(entries(parent.path()), Vec::<String>::new());
}

#[test]
fn an_interrupted_demo_stops_its_servers_and_removes_its_folder() {
    let parent = tempfile::tempdir().unwrap();
    let mut child = Command::cargo_bin("harmony")
        .unwrap()
        .arg("demo")
        .arg("--dir")
        .arg(parent.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once a server runs, Ctrl-C (SIGINT to the demo alone: its servers
    // must be stopped by the demo, not by the terminal's signal).
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    lines
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("serving on"))
        .expect("the demo starts a server");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    lines.for_each(drop);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("demo interrupted"), "{stderr}");
    assert_eq!(entries(parent.path()), Vec::<String>::new());
}
