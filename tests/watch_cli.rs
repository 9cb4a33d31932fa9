//! `harmony serve` watching its working tree, through the real binary: with
//! no command typed at the serving location, what happens to its files is
//! committed, as another `harmony` process reading the state (`ls`) sees.

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use cli::{json, location, ok, serve_command, wait_until, Serving};

/// The committed state, as `ls --all --json` lists it: path to (hash,
/// state); deleted files are listed too.
fn committed(dir: &Path) -> BTreeMap<String, (Option<String>, String)> {
    json(dir, &["ls", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let hash = f["hash"].as_str().map(str::to_owned);
            let state = f["state"].as_str().unwrap().to_owned();
            (f["path"].as_str().unwrap().to_owned(), (hash, state))
        })
        .collect()
}

fn b3(bytes: &[u8]) -> Option<String> {
    Some(blake3::hash(bytes).to_hex().to_string())
}

/// Waits until the state lists `path` with `bytes` as its newest content.
fn wait_committed(dir: &Path, path: &str, bytes: &[u8]) {
    wait_until(&format!("{path} committed"), || {
        committed(dir).get(path).map(|(hash, _)| hash) == Some(&b3(bytes))
    });
}

fn log_of(log: &Path) -> String {
    fs::read_to_string(log).unwrap_or_default()
}

/// A location that commits a fifth of a second after a change.
fn quick_location(name: &str) -> tempfile::TempDir {
    let (dir, _) = location(name);
    ok(dir.path(), &["config", "quiet_period", "200ms"]);
    dir
}

#[test]
fn new_edited_renamed_and_deleted_files_are_committed_by_serve() {
    let loc = quick_location("alpha");
    let root = loc.path();
    fs::write(root.join("before.txt"), b"made while serve was down").unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let mut serving = Serving::watching(root, &log);

    // What changed while nothing watched: the commit at start.
    wait_committed(root, "before.txt", b"made while serve was down");

    fs::write(root.join("notes.txt"), b"one").unwrap();
    wait_committed(root, "notes.txt", b"one");

    fs::write(root.join("notes.txt"), b"two").unwrap();
    wait_committed(root, "notes.txt", b"two");

    // A rename into a folder made after serve started: the old path is not
    // left behind as a deletion (a rename, not a delete and an add).
    fs::create_dir(root.join("docs")).unwrap();
    fs::rename(root.join("notes.txt"), root.join("docs/notes.md")).unwrap();
    wait_committed(root, "docs/notes.md", b"two");
    assert!(
        !committed(root).contains_key("notes.txt"),
        "{:?}",
        committed(root)
    );

    // The new folder is watched too.
    fs::write(root.join("docs/more.txt"), b"more").unwrap();
    wait_committed(root, "docs/more.txt", b"more");

    fs::remove_file(root.join("docs/notes.md")).unwrap();
    wait_until("the deletion committed", || {
        committed(root)
            .get("docs/notes.md")
            .map(|(_, state)| state.as_str())
            == Some("deleted")
    });
    let listed: Vec<String> = json(root, &["ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ["before.txt", "docs/more.txt"]);

    // One commit per change above; and the writes of those commits to the
    // state database in .harmony/ are no changes: once settled, serve does
    // not commit again and again (the watch is left a second, five quiet
    // periods, to show it).
    let commits = log_of(&log).matches("committed (").count();
    assert_eq!(commits, 6, "{}", log_of(&log));
    let scans =
        |log: &str| log.matches("committed (").count() + log.matches("nothing to commit").count();
    let settled = scans(&log_of(&log));
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(scans(&log_of(&log)), settled, "{}", log_of(&log));
    assert!(serving.is_running());
    assert!(serving.terminate().success());
}

#[test]
fn an_editor_save_through_a_temp_file_and_a_rename_is_one_edit() {
    let loc = quick_location("alpha");
    let root = loc.path();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let _serving = Serving::watching(root, &log);
    fs::write(root.join("report.txt"), b"draft").unwrap();
    wait_committed(root, "report.txt", b"draft");
    let id_of = |root: &Path| {
        let entries = harmony::Repo::open(root)
            .unwrap()
            .store()
            .entries()
            .unwrap();
        assert_eq!(entries.len(), 1, "one file, no temporary one: {entries:?}");
        entries[0].id
    };
    let id = id_of(root);
    let commits_before = log_of(&log).matches("committed (").count();

    // gedit, GIO and most "atomic save" code: a temporary file beside the
    // file, then a rename over it.
    let temp = root.join(".goutputstream-5XQ2E3");
    fs::write(&temp, b"final").unwrap();
    fs::File::open(&temp).unwrap().sync_all().unwrap();
    fs::rename(&temp, root.join("report.txt")).unwrap();
    wait_committed(root, "report.txt", b"final");
    assert_eq!(id_of(root), id, "the same file, edited");
    let log_text = log_of(&log);
    let commits: Vec<&str> = log_text
        .lines()
        .filter(|l| l.contains("committed ("))
        .skip(commits_before)
        .collect();
    assert_eq!(commits.len(), 1, "one version: {commits:?}");
    assert!(
        commits[0].contains("0 added, 1 edited, 0 renamed, 0 deleted"),
        "{commits:?}"
    );

    // vim (backupcopy=no), emacs: the file renamed to a backup name (which
    // the scan ignores), a new one written, the backup removed.
    let backup = root.join("report.txt~");
    fs::rename(root.join("report.txt"), &backup).unwrap();
    fs::write(root.join("report.txt"), b"final, really").unwrap();
    fs::remove_file(&backup).unwrap();
    wait_committed(root, "report.txt", b"final, really");
    assert_eq!(id_of(root), id, "the same file, edited");
    let commits = log_of(&log).matches("committed (").count() - commits_before;
    assert_eq!(commits, 2, "{}", log_of(&log));
}

#[test]
fn a_real_watcher_overflow_is_followed_by_a_rescan_that_catches_everything() {
    let loc = quick_location("alpha");
    let root = loc.path();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let serving = Serving::watching(root, &log);
    fs::write(root.join("first.txt"), b"first").unwrap();
    wait_committed(root, "first.txt", b"first");

    // Stopped, serve reads no events: the kernel's queue for its inotify
    // instance (max_queued_events) fills and then says it overflowed. Each
    // new file is two events at least (create, close after write).
    let queue: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let files = queue / 2 + 100;
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &serving.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    fs::create_dir(root.join("burst")).unwrap();
    for i in 0..files {
        fs::write(root.join(format!("burst/{i:05}.txt")), i.to_string()).unwrap();
    }
    signal("-CONT");

    wait_until("every file of the burst committed", || {
        committed(root).len() == files + 1
    });
    let state = committed(root);
    for i in [0, files / 2, files - 1] {
        assert_eq!(
            state[&format!("burst/{i:05}.txt")].0,
            b3(i.to_string().as_bytes())
        );
    }
    assert!(log_of(&log).contains("overflowed"), "{}", log_of(&log));
}

#[test]
fn at_the_inotify_watch_limit_serve_warns_once_and_rescans_instead() {
    let loc = quick_location("alpha");
    let root = loc.path();
    ok(root, &["config", "rescan_interval", "1s"]);
    for folder in ["a", "b", "c", "d"] {
        fs::create_dir(root.join(folder)).unwrap();
    }
    // A user namespace of its own, whose watch limit (2: the root and one
    // folder) binds this serve alone; the host's limits are not touched.
    let harmony = assert_cmd::cargo::cargo_bin("harmony");
    let inner = serve_command(root, &["-v"]);
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "sh", "-c"])
        .arg("echo 2 > /proc/sys/user/max_inotify_watches && exec \"$0\" \"$@\"")
        .arg(&harmony)
        .args(inner.get_args());
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let mut serving = Serving::spawn(command, Some(&log));

    fs::write(root.join("c/one.txt"), b"one").unwrap();
    wait_committed(root, "c/one.txt", b"one");
    fs::write(root.join("d/two.txt"), b"two").unwrap();
    wait_committed(root, "d/two.txt", b"two");
    fs::write(root.join("d/two.txt"), b"three").unwrap();
    wait_committed(root, "d/two.txt", b"three");

    let text = log_of(&log);
    assert_eq!(
        text.matches("the inotify watch limit is reached").count(),
        1,
        "warned once: {text}"
    );
    assert!(text.contains("fs.inotify.max_user_watches"), "{text}");
    assert!(text.contains("rescanning every 1s instead"), "{text}");
    assert!(serving.is_running());
    assert!(serving.terminate().success());
}

#[test]
fn unwatched_serve_commits_before_a_sync_and_watching_serve_answers_from_its_commits() {
    for watch in [false, true] {
        // A quiet period of an hour: whatever a sync sees was committed at
        // start or by the sync itself, never by the watcher.
        let (a, a_id) = location("alpha");
        let (b, b_id) = location("beta");
        ok(a.path(), &["config", "quiet_period", "1h"]);
        ok(a.path(), &["config", "watch", &watch.to_string()]);
        ok(a.path(), &["peer", "add", "beta", &b_id, "127.0.0.1:9"]);
        let logs = tempfile::tempdir().unwrap();
        let log = logs.path().join("serve.log");
        let serving = Serving::spawn(serve_command(a.path(), &["-vv"]), Some(&log));
        if watch {
            wait_until("the commit at start", || {
                log_of(&log).contains("nothing to commit")
            });
        }
        fs::write(a.path().join("late.txt"), b"written after serve started").unwrap();
        ok(b.path(), &["peer", "add", "alpha", &a_id, &serving.addr]);
        ok(b.path(), &["sync", "alpha"]);
        let seen = committed(b.path()).contains_key("late.txt");
        assert_eq!(seen, !watch, "watch = {watch}: {:?}", committed(b.path()));
        assert_eq!(log_of(&log).contains("watching "), watch);
    }
}
