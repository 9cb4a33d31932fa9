//! Driving the real `harmony` binary: commands, and `serve` children.
//! Included with `#[path]` by the tests that use it.
//!
//! Every command runs with LAN discovery forced off ([`OFF_ENV`]), and
//! `serve` also with `--no-discovery`: these tests run on the host's own
//! network, where nothing may be multicast. Only tests/discovery.rs turns it
//! on, inside private network namespaces.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
pub use harmony::node::live::discovery::OFF_ENV;

pub fn harmony(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().unwrap()
}

/// `harmony -C DIR ARGS`, not started: for a child to signal or to wait on.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("harmony").unwrap();
    cmd.arg("-C").arg(dir).args(args).env(OFF_ENV, "1");
    cmd
}

/// Succeeds; returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = harmony(dir, args);
    assert!(
        out.status.success(),
        "harmony {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails with exit status 1; returns stderr.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let out = harmony(dir, args);
    assert_eq!(out.status.code(), Some(1), "harmony {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// `ok` with `--json`, parsed.
pub fn json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(dir, &all)).unwrap()
}

/// A new location named `name`; returns its folder and node id.
pub fn location(name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let id = init_at(dir.path(), name);
    (dir, id)
}

/// Makes the existing folder `dir` a new location named `name`, listening
/// on loopback and not announcing itself; returns its node id.
pub fn init_at(dir: &Path, name: &str) -> String {
    ok(dir, &["init", "--name", name, "--listen", "127.0.0.1:0"]);
    std::fs::write(dir.join(".harmony/config.toml"), "discovery = false\n").unwrap();
    ok(dir, &["id", "-q"]).trim().to_owned()
}

/// `harmony -C DIR --json serve --listen 127.0.0.1:0 --no-discovery` with
/// `extra` arguments.
pub fn serve_command(dir: &Path, extra: &[&str]) -> Command {
    serve_command_at(dir, "127.0.0.1:0", extra)
}

/// [`serve_command`] listening on `addr`.
pub fn serve_command_at(dir: &Path, addr: &str, extra: &[&str]) -> Command {
    let mut command = Command::cargo_bin("harmony").unwrap();
    command
        .arg("-C")
        .arg(dir)
        .args(["--json", "serve", "--listen", addr, "--no-discovery"])
        .args(extra)
        .env(OFF_ENV, "1");
    command
}

/// Polls `done` until it holds; panics, naming `what`, after a minute (a
/// bound for a stuck test, not a measure of speed).
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `harmony serve` child on 127.0.0.1, killed if the test fails; its
/// log (stderr) is printed then, so that a failure seen once on a busy
/// machine says what the serving side met.
pub struct Serving {
    child: Option<Child>,
    /// Where its stderr goes: the caller's file, or one of our own.
    log: PathBuf,
    _own_log: Option<tempfile::NamedTempFile>,
    /// The address it bound, as it printed it.
    pub addr: String,
    /// What it printed on start (`--json`).
    pub started: serde_json::Value,
}

impl Serving {
    /// `harmony serve --no-watch --no-live`: it commits only before
    /// answering a sync and starts nothing itself, so a test of sync sees
    /// exactly what it wrote, when it syncs (tests/live_cli.rs tests the
    /// always-on node).
    pub fn start(dir: &Path) -> Serving {
        Serving::spawn(serve_command(dir, &["--no-watch", "--no-live"]), None)
    }

    /// `harmony serve` watching its tree and committing by itself, its log
    /// (`-vv`: debug, which has a line for each commit, also one that found
    /// nothing) written to `log`.
    pub fn watching(dir: &Path, log: &Path) -> Serving {
        Serving::spawn(serve_command(dir, &["-vv"]), Some(log))
    }

    /// Starts `command` (a `harmony --json serve` as [`serve_command`]
    /// makes, maybe wrapped), its stderr into `log` or nowhere, and waits
    /// for the address it prints.
    pub fn spawn(command: Command, log: Option<&Path>) -> Serving {
        Serving::try_spawn(command, log).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Serving::spawn`], an error if serve ends (its address taken, say)
    /// before it prints its address.
    pub fn try_spawn(mut command: Command, log: Option<&Path>) -> Result<Serving, String> {
        let own_log = match log {
            Some(_) => None,
            None => Some(tempfile::NamedTempFile::new().unwrap()),
        };
        let log = log.map_or_else(
            || own_log.as_ref().unwrap().path().to_owned(),
            Path::to_owned,
        );
        let stderr = Stdio::from(std::fs::File::create(&log).unwrap());
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut serving = Serving {
            child: Some(child),
            log,
            _own_log: own_log,
            addr: String::new(),
            started: serde_json::Value::Null,
        };
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| "serve printed no address in 30 s".to_owned())?;
        serving.started = serde_json::from_str(&line)
            .map_err(|e| format!("serve ended before it printed its address ({e})"))?;
        serving.addr = serving.started["listen"].as_str().unwrap().to_owned();
        Ok(serving)
    }

    /// The process id, to signal it or read /proc.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// True while it runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM and waits (up to 15 s) for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- the serve's log ({}):\n{log}---", self.log.display());
        }
    }
}
