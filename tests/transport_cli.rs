//! The real binary: `peer add|list|remove|ping` and `serve`, as a user runs
//! them, on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

fn harmony(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::cargo_bin("harmony").unwrap();
    cmd.arg("-C").arg(dir).args(args);
    cmd.output().unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = harmony(dir, args);
    assert!(
        out.status.success(),
        "harmony {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails with exit status 1; returns stderr.
fn fails(dir: &Path, args: &[&str]) -> String {
    let out = harmony(dir, args);
    assert_eq!(out.status.code(), Some(1), "harmony {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn location(name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    ok(
        dir.path(),
        &["init", "--name", name, "--listen", "127.0.0.1:0"],
    );
    let id = ok(dir.path(), &["id", "-q"]).trim().to_owned();
    (dir, id)
}

/// A `harmony serve` child, killed if the test fails.
struct Serving(Option<Child>);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn peers_serve_ping_and_sigterm_through_the_binary() {
    let (a, a_id) = location("alpha");
    let (b, b_id) = location("beta");
    let (c, _) = location("gamma");

    // peer add: typos and bad addresses are caught.
    let first = if b_id.starts_with('A') { "B" } else { "A" };
    let typo = format!("{first}{}", &b_id[1..]);
    let err = fails(a.path(), &["peer", "add", "beta", &typo, "127.0.0.1:7447"]);
    assert!(err.contains("checksum does not match"), "{err}");
    let err = fails(a.path(), &["peer", "add", "beta", &b_id, "nohost"]);
    assert!(err.contains("expected host:port"), "{err}");
    let err = fails(a.path(), &["peer", "remove", "nobody"]);
    assert!(err.contains("no peer named nobody"), "{err}");

    // beta trusts alpha, then serves.
    ok(b.path(), &["peer", "add", "alpha", &a_id, "127.0.0.1:9"]);
    let err = fails(b.path(), &["peer", "add", "alpha", &a_id, "127.0.0.1:9"]);
    assert!(err.contains("a peer named alpha already exists"), "{err}");
    let err = fails(b.path(), &["peer", "add", "other", &a_id, "127.0.0.1:9"]);
    assert!(err.contains("already trusted as alpha"), "{err}");

    let mut child = Command::cargo_bin("harmony")
        .unwrap()
        .arg("-C")
        .arg(b.path())
        .args(["--json", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let mut serving = Serving(Some(child));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve prints its address");
    let started: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(started["id"], b_id.as_str());
    let addr = started["listen"].as_str().unwrap().to_owned();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );

    // alpha trusts beta at the bound address; list shows it.
    ok(a.path(), &["peer", "add", "beta", &b_id, &addr]);
    let list: serde_json::Value =
        serde_json::from_str(&ok(a.path(), &["--json", "peer", "list"])).unwrap();
    assert_eq!(list[0]["name"], "beta");
    assert_eq!(list[0]["id"], b_id.as_str());
    assert_eq!(list[0]["addr"], addr.as_str());

    // Ping through the CLI (both locations are fresh: different repository
    // ids are fine until one of them records something).
    let out = ok(a.path(), &["peer", "ping", "beta", "-n", "2"]);
    assert!(out.contains("reply from beta"), "{out}");
    let report: serde_json::Value = serde_json::from_str(&ok(
        a.path(),
        &["--json", "peer", "ping", "beta", "-n", "1"],
    ))
    .unwrap();
    assert_eq!(report["rtt_ms"].as_array().unwrap().len(), 1);

    // gamma is not trusted by beta: a clear refusal.
    ok(c.path(), &["peer", "add", "beta", &b_id, &addr]);
    let err = fails(c.path(), &["peer", "ping", "beta"]);
    assert!(err.contains("peer beta does not trust this node"), "{err}");
    // beta adds gamma while serving: the next connection is accepted.
    let c_id = ok(c.path(), &["id", "-q"]).trim().to_owned();
    ok(b.path(), &["peer", "add", "gamma", &c_id, "127.0.0.1:9"]);
    ok(c.path(), &["peer", "ping", "beta", "-n", "1"]);

    // Once both have recorded files, they are two repositories.
    std::fs::write(a.path().join("a.txt"), b"alpha").unwrap();
    std::fs::write(b.path().join("b.txt"), b"beta").unwrap();
    ok(a.path(), &["commit"]);
    ok(b.path(), &["commit"]);
    let err = fails(a.path(), &["peer", "ping", "beta"]);
    assert!(err.contains("peer beta belongs to repository"), "{err}");

    // A peer removed no longer connects.
    ok(b.path(), &["peer", "remove", "gamma"]);
    let err = fails(c.path(), &["peer", "ping", "beta"]);
    assert!(err.contains("does not trust this node"), "{err}");

    // SIGTERM stops serve cleanly, exit status 0.
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = serving.0.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "serve exits 0 on SIGTERM");
}
