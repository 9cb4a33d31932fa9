//! The always-on node, driven as a user would: three `harmony serve`
//! processes in a line A–B–C (C reaches A only through B), and no command
//! typed at the serving locations but a `get` that makes them hold a file.
//! Every wait below is a deadline for something that must happen, not a
//! measure of how fast it does (the figures are in examples/bench_live.rs).

#[path = "support/cli.rs"]
mod cli;

use std::path::Path;
use std::time::{Duration, Instant};

use cli::{json, location, ok, serve_command_at, Serving};

/// Long enough for anything the live node must do on a busy 2-core machine.
const DEADLINE: Duration = Duration::from_secs(60);

/// A free UDP port on 127.0.0.1 (bound and released: peers must know each
/// other's address before either serves).
fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Three locations in a line, each trusting its neighbours at fixed
/// addresses; the periodic sync is far off, so only notices move changes.
struct Line {
    /// One line of three serves at a time: five at once (fifteen serves)
    /// on two cores stretch every wait past what the test is about.
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
    dirs: Vec<tempfile::TempDir>,
    /// Each serve's log (`-v`: a line per sync and per transfer), outside
    /// the watched trees.
    logs: tempfile::TempDir,
    addrs: Vec<String>,
    serving: Vec<Option<Serving>>,
}

impl Line {
    fn new() -> Line {
        static LINES: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let one_at_a_time = LINES.lock().unwrap_or_else(|e| e.into_inner());
        let made: Vec<_> = ["a", "b", "c"].iter().map(|n| location(n)).collect();
        let addrs: Vec<String> = (0..3)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let names = ["a", "b", "c"];
        for (i, j) in [(0, 1), (1, 0), (1, 2), (2, 1)] {
            ok(
                made[i].0.path(),
                &["peer", "add", names[j], &made[j].1, &addrs[j]],
            );
        }
        for (dir, _) in &made {
            std::fs::write(
                dir.path().join(".harmony/config.toml"),
                "discovery = false\nquiet_period = \"300ms\"\nsync_interval = \"1h\"\n",
            )
            .unwrap();
        }
        let mut line = Line {
            _one_at_a_time: one_at_a_time,
            dirs: made.into_iter().map(|(dir, _)| dir).collect(),
            logs: tempfile::tempdir().unwrap(),
            addrs,
            serving: vec![None, None, None],
        };
        for i in 0..3 {
            line.start(i);
        }
        line
    }

    fn dir(&self, i: usize) -> &Path {
        self.dirs[i].path()
    }

    fn start(&mut self, i: usize) {
        let runs = std::fs::read_dir(self.logs.path()).unwrap().count();
        let log = self
            .logs
            .path()
            .join(format!("{runs}-{}.log", ["a", "b", "c"][i]));
        let serve = serve_command_at(self.dir(i), &self.addrs[i], &["-v"]);
        self.serving[i] = Some(Serving::spawn(serve, Some(&log)));
    }

    /// Waits until `done` holds; at the deadline, fails naming `what`, with
    /// the logs of the three serves.
    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > DEADLINE {
                for log in std::fs::read_dir(self.logs.path()).unwrap() {
                    let log = log.unwrap().path();
                    eprintln!(
                        "== {}\n{}",
                        log.display(),
                        std::fs::read_to_string(&log).unwrap()
                    );
                }
                panic!("still waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self, i: usize) {
        let status = self.serving[i].take().unwrap().terminate();
        assert!(status.success(), "serve exits 0 on SIGTERM: {status}");
    }

    /// The size of the newest content of `path` in location `i`'s state.
    fn listed(&self, i: usize, path: &str) -> Option<u64> {
        let rows = json(self.dir(i), &["ls"]);
        rows.as_array()
            .unwrap()
            .iter()
            .find(|row| row["path"] == path)
            .map(|row| row["size"].as_u64().unwrap())
    }

    /// Makes location `i` hold `path` (a `get`, the one command typed). C
    /// trusts only B, so its get succeeds once B holds the file and C has
    /// heard so.
    fn hold(&self, i: usize, path: &str) {
        self.wait_until(&format!("{path} fetched at {i}"), || {
            cli::harmony(self.dir(i), &["get", path]).status.success()
        });
    }

    fn read(&self, i: usize, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir(i).join(path)).ok()
    }
}

/// Writes `bytes` to `path` as editors save: a temporary file in the same
/// folder, renamed over the old one.
fn save_like_an_editor(path: &Path, bytes: &[u8]) {
    let temp = path.with_file_name(format!(
        ".{}.swp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&temp, bytes).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

#[test]
fn an_edit_a_rename_and_a_deletion_at_a_reach_b_and_c_by_themselves() {
    let line = Line::new();
    std::fs::write(line.dir(0).join("doc.txt"), b"first").unwrap();
    line.wait_until("doc.txt in c's state", || {
        line.listed(2, "doc.txt") == Some(5)
    });
    // B and C hold it from now on.
    for i in [1, 2] {
        line.hold(i, "doc.txt");
    }

    save_like_an_editor(&line.dir(0).join("doc.txt"), b"second version");
    for i in [1, 2] {
        line.wait_until("the edit in the held copies", || {
            line.read(i, "doc.txt").as_deref() == Some(b"second version")
        });
    }
    // One version: no conflict, and the editor's temporary file was never
    // recorded.
    for i in 0..3 {
        assert_eq!(json(line.dir(i), &["conflicts"]), serde_json::json!([]));
        assert_eq!(line.listed(i, ".doc.txt.swp"), None);
    }

    std::fs::create_dir(line.dir(0).join("docs")).unwrap();
    std::fs::rename(
        line.dir(0).join("doc.txt"),
        line.dir(0).join("docs/moved.txt"),
    )
    .unwrap();
    for i in [1, 2] {
        line.wait_until("the rename in the trees", || {
            line.read(i, "docs/moved.txt").as_deref() == Some(b"second version")
                && line.read(i, "doc.txt").is_none()
        });
    }

    std::fs::remove_file(line.dir(0).join("docs/moved.txt")).unwrap();
    for i in [1, 2] {
        line.wait_until("the deletion in state and tree", || {
            line.listed(i, "docs/moved.txt").is_none() && line.read(i, "docs/moved.txt").is_none()
        });
    }
}

#[test]
fn a_stopped_node_catches_up_when_it_comes_back() {
    let mut line = Line::new();
    std::fs::write(line.dir(0).join("notes.txt"), b"v1").unwrap();
    line.wait_until("notes.txt in c's state", || {
        line.listed(2, "notes.txt") == Some(2)
    });
    for i in [1, 2] {
        line.hold(i, "notes.txt");
    }

    line.stop(2);
    std::fs::write(line.dir(0).join("notes.txt"), b"v2 while c was away").unwrap();
    std::fs::write(line.dir(0).join("new.txt"), b"new").unwrap();
    line.wait_until("the changes at b", || line.listed(1, "new.txt") == Some(3));
    // B saw C go: its status says so (it tried to tell C of the change).
    line.start(2);
    line.wait_until("c caught up, in state and in its held copy", || {
        line.listed(2, "new.txt") == Some(3)
            && line.read(2, "notes.txt").as_deref() == Some(b"v2 while c was away")
    });
}

#[test]
fn the_same_file_edited_at_two_nodes_at_once_is_a_conflict_with_both_kept() {
    let line = Line::new();
    std::fs::write(line.dir(0).join("plan.txt"), b"draft").unwrap();
    line.wait_until("plan.txt at b", || line.listed(1, "plan.txt") == Some(5));
    line.hold(1, "plan.txt");
    // Within one quiet period of each other.
    std::fs::write(line.dir(0).join("plan.txt"), b"edited at a").unwrap();
    std::fs::write(line.dir(1).join("plan.txt"), b"edited at b!").unwrap();
    for i in 0..3 {
        line.wait_until("the conflict everywhere", || {
            let conflicts = json(line.dir(i), &["conflicts"]);
            conflicts.as_array().unwrap().len() == 1
                && conflicts[0]["sides"].as_array().unwrap().len() == 2
        });
    }
    let conflicts = json(line.dir(2), &["conflicts"]);
    let mut sizes: Vec<u64> = conflicts[0]["sides"]
        .as_array()
        .unwrap()
        .iter()
        .map(|side| side["size"].as_u64().unwrap())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [11, 12], "both versions are kept");
    // Neither local edit was overwritten.
    assert_eq!(
        line.read(0, "plan.txt").as_deref(),
        Some(&b"edited at a"[..])
    );
    assert_eq!(
        line.read(1, "plan.txt").as_deref(),
        Some(&b"edited at b!"[..])
    );
}

#[test]
fn status_shows_the_peers_of_a_running_serve() {
    let line = Line::new();
    std::fs::write(line.dir(0).join("x.txt"), b"x").unwrap();
    line.wait_until("x.txt at c", || line.listed(2, "x.txt") == Some(1));
    line.wait_until("b's status: both peers connected and synced", || {
        let status = json(line.dir(1), &["status", "--serve"]);
        ["a", "c"].iter().all(|peer| {
            let peer = &status["serve"]["peers"][peer];
            peer["connected"] == true && peer["syncs"].as_u64().unwrap_or(0) > 0
        })
    });
    let text = ok(line.dir(1), &["status", "--serve"]);
    assert!(text.contains("connected"), "{text}");
}

#[test]
fn sighup_reloads_config_toml_and_a_bad_file_keeps_the_running_one() {
    let (dir, _) = location("a");
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let serving = Serving::spawn(cli::serve_command(dir.path(), &["-v"]), Some(&log));
    let hup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &serving.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let logged = |text: &str| std::fs::read_to_string(&log).unwrap().contains(text);
    let config = dir.path().join(".harmony/config.toml");
    std::fs::write(&config, "discovery = false\nsync_interval = \"10s\"\n").unwrap();
    hup();
    cli::wait_until("the reload", || logged("config.toml reloaded"));
    std::fs::write(&config, "sync_interval = \"soon\"\n").unwrap();
    hup();
    cli::wait_until("the refusal", || {
        logged("`sync_interval` must be") && logged("keeping the running configuration")
    });
    assert!(
        serving.terminate().success(),
        "still running, and stops cleanly"
    );
}

/// Placement rules acted on by the serves alone (issue 13): A a `client`
/// laptop, B a `backup` NAS, C an `archive` disk reached through B.
#[test]
fn a_new_file_reaches_backup_and_archive_and_archiving_it_frees_the_laptop() {
    let line = Line::new();
    for (i, group) in ["client", "backup", "archive"].iter().enumerate() {
        ok(line.dir(i), &["group", "add", group]);
    }
    std::fs::write(line.dir(0).join("photo.jpg"), b"a photo").unwrap();
    for i in [1, 2] {
        line.wait_until("the photo at the backup and the archive", || {
            line.read(i, "photo.jpg").as_deref() == Some(b"a photo")
        });
    }
    assert_eq!(line.read(0, "photo.jpg").as_deref(), Some(&b"a photo"[..]));

    // Archived at the laptop: the archive holds it, so the laptop drops it.
    std::fs::create_dir(line.dir(0).join("archive")).unwrap();
    std::fs::rename(
        line.dir(0).join("photo.jpg"),
        line.dir(0).join("archive/photo.jpg"),
    )
    .unwrap();
    line.wait_until("the laptop's copy dropped", || {
        line.read(0, "archive/photo.jpg").is_none()
    });
    for i in [1, 2] {
        line.wait_until(
            "the archived photo kept at the backup and the archive",
            || line.read(i, "archive/photo.jpg").as_deref() == Some(b"a photo"),
        );
    }
    assert_eq!(
        line.listed(0, "archive/photo.jpg"),
        Some(7),
        "still in the repository"
    );
}

#[test]
fn a_source_drops_its_copy_once_the_backup_has_one() {
    let line = Line::new();
    ok(line.dir(0), &["group", "add", "source"]);
    ok(line.dir(1), &["group", "add", "backup"]);
    std::fs::write(line.dir(0).join("clip.mov"), b"a clip").unwrap();
    line.wait_until("the clip at the backup", || {
        line.read(1, "clip.mov").as_deref() == Some(b"a clip")
    });
    line.wait_until("the source's copy dropped", || {
        line.read(0, "clip.mov").is_none()
    });
    assert_eq!(line.read(1, "clip.mov").as_deref(), Some(&b"a clip"[..]));
}
