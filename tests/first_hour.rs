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
        "got 2 files",                                   // the partial get
        "2 renamed",                                     // the rename, without content
        "photos/summer-2026/beach.conflict-nas.jpg",     // the conflict, both kept
        "laptop$ harmony serve --no-discovery --listen", // the live node
        "without a command:\nnas$ harmony ls photos/summer-2026/hike.jpg\n  120.56 KiB  here",
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

fn run(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("harmony")
        .unwrap()
        .args(args)
        .output()
        .unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "harmony {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every command path (`["peer", "add"]`, ...), read from the `Commands:`
/// section clap writes into `--help`, so the list follows the definitions.
/// Leaves clap's own `help` out.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(prefix: &[String], paths: &mut Vec<Vec<String>>) {
        let mut args: Vec<&str> = prefix.iter().map(String::as_str).collect();
        args.push("--help");
        let help = stdout_of(&args);
        let names = help
            .lines()
            .skip_while(|l| *l != "Commands:")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_whitespace().next())
            .filter(|name| *name != "help");
        for name in names.map(str::to_owned).collect::<Vec<_>>() {
            let mut path = prefix.to_vec();
            path.push(name);
            walk(&path, paths);
            paths.push(path);
        }
    }
    let mut paths = Vec::new();
    walk(&[], &mut paths);
    assert!(paths.len() > 15, "{paths:?}");
    paths
}

#[test]
fn bash_completions_know_every_command() {
    let script = stdout_of(&["completions", "bash"]);
    for path in command_paths() {
        // clap_complete's bash script names the state of each command path
        // `harmony__subcmd__peer__subcmd__add`.
        let state = format!("harmony__subcmd__{}", path.join("__subcmd__"));
        assert!(script.contains(&state), "no completion for {path:?}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(stdout_of(&["completions", shell]).contains("harmony"));
    }
    assert_eq!(run(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn every_command_has_a_man_page_that_renders() {
    let dir = tempfile::tempdir().unwrap();
    let pages = stdout_of(&["--json", "man", dir.path().to_str().unwrap()]);
    let pages: Vec<String> = serde_json::from_str(&pages).unwrap();
    let mut expected = vec!["harmony.1".to_owned()];
    expected.extend(
        command_paths()
            .iter()
            .map(|p| format!("harmony-{}.1", p.join("-"))),
    );
    expected.sort();
    let mut written = entries(dir.path());
    written.sort();
    assert_eq!(written, expected);
    assert_eq!(pages.len(), expected.len());

    let man_installed = Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    for name in &expected {
        let page = dir.path().join(name);
        let roff = std::fs::read_to_string(&page).unwrap();
        assert!(
            roff.contains("\n.TH ") && roff.contains("\n.SH NAME\n"),
            "{name}"
        );
        if man_installed {
            // man -l renders the file itself; groff's warnings go to stderr.
            let shown = Command::new("man")
                .args(["--warnings", "-l"])
                .arg(&page)
                .env("MANWIDTH", "80")
                .output()
                .unwrap();
            assert!(shown.status.success(), "man -l {name}");
            let text = String::from_utf8_lossy(&shown.stdout);
            assert!(text.contains("SYNOPSIS"), "{name}: {text}");
            assert_eq!(String::from_utf8_lossy(&shown.stderr), "", "{name}");
        }
    }
    // Without DIR: harmony(1) on stdout.
    assert!(stdout_of(&["man"]).contains(".TH harmony 1"));
}

#[test]
fn an_unreachable_peer_is_reported_with_its_address_and_what_to_check() {
    let (a, _) = cli::location("alpha");
    let (_b, b_id) = cli::location("beta");
    let (_c, c_id) = cli::location("gamma");
    // A socket that receives and never answers, and a port nobody holds.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let closed_addr = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    cli::ok(a.path(), &["peer", "add", "silent", &b_id, &silent_addr]);
    cli::ok(a.path(), &["peer", "add", "closed", &c_id, &closed_addr]);

    for command in [&["sync"][..], &["peer", "ping"]] {
        let mut args = command.to_vec();
        args.extend(["silent", "--connect-timeout", "1"]);
        let err = cli::fails(a.path(), &args);
        assert!(
            err.contains(&format!(
                "cannot reach peer silent at {silent_addr}: no answer within 1 s"
            )) && err.contains("firewall"),
            "{err}"
        );
        let mut args = command.to_vec();
        args.push("closed");
        let err = cli::fails(a.path(), &args);
        let port = closed_addr.rsplit(':').next().unwrap();
        assert!(
            err.contains(&format!(
                "cannot reach peer closed at {closed_addr}: nothing listens on UDP port {port}"
            )),
            "{err}"
        );
    }
    let out = cli::harmony(a.path(), &["sync", "silent", "--connect-timeout", "0"]);
    assert_eq!(out.status.code(), Some(2));
    drop(silent);
}

#[test]
fn get_and_drop_name_a_stopped_holder_and_its_address_at_once() {
    let (a, a_id) = cli::location("alpha");
    let (b, b_id) = cli::location("beta");
    std::fs::write(a.path().join("f.txt"), b"only alpha has it").unwrap();
    let serving = cli::Serving::start(a.path());
    cli::ok(a.path(), &["peer", "add", "beta", &b_id, "127.0.0.1:9"]);
    cli::ok(b.path(), &["peer", "add", "alpha", &a_id, &serving.addr]);
    cli::ok(b.path(), &["sync"]);
    cli::ok(b.path(), &["get", "f.txt"]);
    let addr = serving.addr.clone();
    assert!(serving.terminate().success());
    // Its port now refuses: both say so (not "no answer" after the
    // timeout), naming the peer, the address and what to check.
    let port = addr.rsplit(':').next().unwrap();
    let stopped =
        format!("cannot reach peer alpha at {addr}: nothing listens on UDP port {port} there");
    let err = cli::fails(b.path(), &["drop", "f.txt"]);
    assert!(
        err.contains(&stopped) && err.contains("`harmony serve` runs there"),
        "{err}"
    );
    assert!(b.path().join("f.txt").exists());
    cli::ok(b.path(), &["drop", "f.txt", "--force"]);
    let err = cli::fails(b.path(), &["get", "f.txt"]);
    assert!(err.contains(&stopped), "{err}");
}

/// The commands whose output is not a report: a script for the shell, and
/// `serve`, which runs until stopped (its start line is JSON, parsed by
/// `cli::Serving::start` below).
const NOT_REPORTS: [&str; 2] = ["completions", "serve"];

#[test]
fn every_command_prints_json_with_json() {
    let (a, a_id) = cli::location("alpha");
    let (b, b_id) = cli::location("beta");
    let (c, c_id) = cli::location("gamma");
    std::fs::create_dir(a.path().join("music")).unwrap();
    std::fs::write(a.path().join("music/song.flac"), b"la la la").unwrap();
    std::fs::write(a.path().join("notes.txt"), b"notes").unwrap();
    let serving = cli::Serving::start(b.path());
    cli::ok(b.path(), &["peer", "add", "alpha", &a_id, "127.0.0.1:9"]);
    cli::ok(a.path(), &["peer", "add", "beta", &b_id, &serving.addr]);
    cli::ok(a.path(), &["sync"]);
    // Both edit notes.txt: a conflict for `conflicts` and `resolve`.
    std::fs::write(a.path().join("notes.txt"), b"alpha's notes").unwrap();
    std::fs::write(b.path().join("notes.txt"), b"beta's notes").unwrap();
    cli::ok(a.path(), &["sync"]);

    let fresh = tempfile::tempdir().unwrap();
    let demo = tempfile::tempdir().unwrap();
    let man = tempfile::tempdir().unwrap();
    let with_dir =
        |words: &str, dir: &tempfile::TempDir| format!("{words} {}", dir.path().display());
    // (command, where, arguments), in an order that gives each command
    // something to report.
    let runs: Vec<(&str, &Path, String)> = vec![
        ("init", fresh.path(), "init".into()),
        ("id", a.path(), "id".into()),
        ("config", a.path(), "config".into()),
        ("commit", a.path(), "commit".into()),
        ("status", a.path(), "status".into()),
        ("ls", a.path(), "ls".into()),
        ("whereis", a.path(), "whereis music".into()),
        ("conflicts", a.path(), "conflicts".into()),
        ("resolve", a.path(), "resolve notes.txt --keep both".into()),
        (
            "peer add",
            a.path(),
            format!("peer add gamma {c_id} 127.0.0.1:9"),
        ),
        ("peer list", a.path(), "peer list".into()),
        ("peer ping", a.path(), "peer ping beta -n 1".into()),
        ("peer remove", a.path(), "peer remove gamma".into()),
        ("wanted", a.path(), "wanted present".into()),
        ("group add", a.path(), "group add backup".into()),
        ("group remove", a.path(), "group remove backup".into()),
        ("numcopies", a.path(), "numcopies 1".into()),
        ("sync", a.path(), "sync beta".into()),
        ("get", a.path(), "get".into()),
        ("drop", a.path(), "drop music --force".into()),
        ("trash", a.path(), "trash".into()),
        ("trash empty", a.path(), "trash empty".into()),
        ("demo", a.path(), with_dir("demo --dir", &demo)),
        ("man", a.path(), with_dir("man", &man)),
    ];
    let mut covered: Vec<String> = runs.iter().map(|(name, _, _)| name.to_string()).collect();
    covered.extend(NOT_REPORTS.map(String::from));
    // `trash restore` needs something in the trash: its --json output is
    // parsed by the trash test. `invite` and `join` run below, one with the
    // other's output.
    covered.push("trash restore".into());
    covered.extend(["invite".into(), "join".into()]);
    covered.retain(|c| c != "trash");
    covered.sort();
    let paths = command_paths();
    let mut leaves: Vec<String> = paths
        .iter()
        .filter(|p| !paths.iter().any(|q| q.len() > p.len() && q.starts_with(p)))
        .map(|p| p.join(" "))
        .collect();
    leaves.sort();
    assert_eq!(covered, leaves, "every command needs a --json run here");

    for (name, dir, args) in runs {
        let args: Vec<&str> = std::iter::once("--json")
            .chain(args.split_whitespace())
            .collect();
        let out = cli::ok(dir, &args);
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&out) {
            panic!("`{name} --json` printed no JSON ({e}):\n{out}");
        }
    }
    assert!(serving.started["listen"].is_string());
    // Where a serve runs, `invite` prints its one document and returns.
    let invited = cli::json(b.path(), &["invite"]);
    let (d, _) = cli::location("delta");
    let joined = cli::json(d.path(), &["join", invited["code"].as_str().unwrap()]);
    assert_eq!(joined["name"], "beta");
    drop(c);
}

#[test]
fn trash_lists_restores_and_empties_only_what_is_held_elsewhere() {
    let (a, a_id) = cli::location("alpha");
    let (b, b_id) = cli::location("beta");
    assert_eq!(cli::json(b.path(), &["trash"]), serde_json::json!([]));
    std::fs::create_dir(a.path().join("docs")).unwrap();
    std::fs::write(a.path().join("docs/old.txt"), b"to be deleted").unwrap();
    let serving = cli::Serving::start(b.path());
    cli::ok(b.path(), &["peer", "add", "alpha", &a_id, "127.0.0.1:9"]);
    cli::ok(a.path(), &["peer", "add", "beta", &b_id, &serving.addr]);
    cli::ok(a.path(), &["sync"]);
    // beta gets a copy (as `get` would), then alpha deletes its own: beta's
    // copy is the last one and goes to the trash.
    std::fs::create_dir(b.path().join("docs")).unwrap();
    std::fs::write(b.path().join("docs/old.txt"), b"to be deleted").unwrap();
    cli::ok(a.path(), &["sync"]);
    std::fs::remove_file(a.path().join("docs/old.txt")).unwrap();
    cli::ok(a.path(), &["sync"]);
    assert!(!b.path().join("docs/old.txt").exists());

    let listed = cli::json(b.path(), &["trash"]);
    let items = listed.as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["path"], "docs/old.txt");
    assert_eq!(items[0]["size"], 13);
    assert!(items[0]["trashed_ms"].as_i64().unwrap() > 0);
    let kept = items[0]["file"].as_str().unwrap();
    assert_eq!(std::fs::read(kept).unwrap(), b"to be deleted");
    assert_eq!(items[0]["reason"], "deleted-elsewhere");
    assert_eq!(items[0]["held_elsewhere"], false);
    let human = cli::ok(b.path(), &["trash"]);
    assert!(
        human.contains("docs/old.txt") && human.contains("deleted elsewhere"),
        "{human}"
    );

    // The last copy is not emptied without --force.
    let emptied = cli::json(b.path(), &["trash", "empty"]);
    assert_eq!(emptied["removed"], 0, "{emptied}");
    assert_eq!(emptied["kept"], serde_json::json!(["docs/old.txt"]));
    assert!(std::path::Path::new(kept).exists());

    // Restored as a local change: b's next sync gives it back to alpha.
    let err = cli::fails(b.path(), &["trash", "restore", "docs/none.txt"]);
    assert!(err.contains("keeps no version of docs/none.txt"), "{err}");
    let restored = cli::json(
        b.path(),
        &["trash", "restore", "docs/old.txt", "--to", "docs/back.txt"],
    );
    assert_eq!(restored["restored"], "docs/back.txt");
    assert_eq!(
        std::fs::read(b.path().join("docs/back.txt")).unwrap(),
        b"to be deleted"
    );
    assert_eq!(cli::json(b.path(), &["trash"]), serde_json::json!([]));
    let status = cli::json(b.path(), &["status"]);
    assert_eq!(status[0]["state"], "new", "{status}");

    // Another last copy, this time replaced by a newer version; once
    // alpha holds that content too, emptying frees it.
    std::fs::write(b.path().join("keep.txt"), b"v1").unwrap();
    cli::ok(a.path(), &["sync"]);
    std::fs::write(a.path().join("keep.txt"), b"v2").unwrap();
    cli::ok(a.path(), &["sync"]);
    cli::ok(b.path(), &["peer", "remove", "alpha"]);
    drop(serving);
    let serving_a = cli::Serving::start(a.path());
    cli::ok(b.path(), &["peer", "add", "alpha", &a_id, &serving_a.addr]);
    cli::ok(b.path(), &["get", "keep.txt"]);
    let listed = cli::json(b.path(), &["trash"]);
    assert_eq!(listed[0]["reason"], "replaced", "{listed}");
    // v1 is b's alone: kept; once alpha holds those bytes too (as another
    // file), emptying frees it.
    assert_eq!(cli::json(b.path(), &["trash", "empty"])["removed"], 0);
    std::fs::write(a.path().join("copy.txt"), b"v1").unwrap();
    cli::ok(b.path(), &["sync", "alpha"]);
    assert_eq!(cli::json(b.path(), &["trash"])[0]["held_elsewhere"], true);
    let young = cli::json(b.path(), &["trash", "empty", "--older-than", "1d"]);
    assert_eq!(young["removed"], 0, "kept for less than a day");
    let emptied = cli::json(b.path(), &["trash", "empty"]);
    assert_eq!(emptied["removed"], 1, "{emptied}");
    assert_eq!(cli::json(b.path(), &["trash"]), serde_json::json!([]));
    let bad = cli::harmony(b.path(), &["trash", "empty", "--older-than", "3y"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown unit"));
}
