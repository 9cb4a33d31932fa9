//! `harmony demo`: the whole story on loopback, in a temporary folder: three
//! locations of one repository, state travelling through a middle one, a
//! partial `get`, a rename that moves no bytes, a conflict kept and
//! resolved, and at last an edit that reaches another location by itself
//! through watching, live `serve`s.
//!
//! Every step runs this very binary as a child process, in the location's
//! folder, exactly as a user would type it, and shows its real output: the
//! demo cannot drift from what the commands do, and it needs no code of its
//! own beyond the script. The folder is removed at the end, also after a
//! failed step or Ctrl-C (the `serve` children are stopped first).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::Output;

/// How the story's servers run until its last act: committing only when a
/// peer syncs and syncing only when told, so that each step shows one thing.
const STEP_BY_STEP: [&str; 2] = ["--no-watch", "--no-live"];
/// The file the last act edits, held by the laptop and the NAS, and its new size.
const LIVE_FILE: &str = "photos/summer-2026/hike.jpg";
const LIVE_SIZE: usize = 123_456;
/// How long the last act waits for the edit to reach the NAS by itself
/// (about 2 s: the quiet period, a notice, a sync and a get).
const LIVE_WAIT: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Make the temporary folder inside DIR (default: the system's
    /// temporary folder, $TMPDIR or /tmp).
    #[arg(long = "dir", id = "demo_dir", value_name = "DIR")]
    parent: Option<PathBuf>,
    /// Keep the three locations afterwards, to look around in them (their
    /// servers are stopped either way).
    #[arg(long)]
    keep: bool,
}

/// One thing the demo showed, in order (the `--json` document lists them).
#[derive(Serialize)]
#[serde(untagged)]
enum Event {
    Story {
        story: String,
    },
    Command {
        location: &'static str,
        command: String,
        /// The command's own `--json` output.
        output: Value,
    },
}

#[derive(Serialize)]
struct DemoReport {
    dir: String,
    kept: bool,
    events: Vec<Event>,
}

/// The three locations' folders, their running servers, and what was shown.
struct Demo<'a> {
    out: &'a Output,
    exe: PathBuf,
    base: PathBuf,
    /// `serve` children by location, stopped (SIGTERM, then SIGKILL) when
    /// the demo ends.
    servers: Vec<(&'static str, Child)>,
    /// Set by Ctrl-C or SIGTERM. A terminal's Ctrl-C also reaches the
    /// children (one process group): the running step ends, and the demo
    /// stops before the next one.
    interrupted: Arc<AtomicBool>,
    events: Vec<Event>,
}

pub fn demo(out: &Output, args: DemoArgs) -> anyhow::Result<()> {
    let parent = args.parent.unwrap_or_else(std::env::temp_dir);
    let folder = tempfile::Builder::new()
        .prefix("harmony-demo-")
        .tempdir_in(&parent)
        .with_context(|| {
            format!(
                "cannot create the demo's folder in {}; pick another with `harmony demo --dir DIR`",
                parent.display()
            )
        })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    watch_signals(&runtime, interrupted.clone())?;
    let mut demo = Demo {
        out,
        exe: std::env::current_exe().context("cannot find the harmony binary to run")?,
        base: folder.path().to_path_buf(),
        servers: Vec::new(),
        interrupted,
        events: Vec::new(),
    };
    let result = demo.story();
    demo.stop_servers();
    let dir = folder.path().display().to_string();
    let kept = args.keep;
    if kept {
        let _ = folder.keep();
    } else {
        folder
            .close()
            .with_context(|| format!("cannot remove the demo's folder {dir}"))?;
    }
    let fate = if kept { "kept" } else { "removed" };
    if demo.interrupted.load(Ordering::SeqCst) {
        bail!("demo interrupted; its folder {dir} was {fate}");
    }
    result.map_err(|e| {
        anyhow::anyhow!(
            "{}; the demo's folder {dir} was {fate}",
            super::output::error_line(&e)
        )
    })?;
    let report = DemoReport {
        dir: dir.clone(),
        kept,
        events: std::mem::take(&mut demo.events),
    };
    out.report(&report, || {
        if out.quiet {
            return;
        }
        if kept {
            out!("\nThe locations are kept in {dir} (try `harmony -C {dir}/nas ls`); remove the folder when done.");
        } else {
            out!("\nThat was all; the locations in {dir} are removed.");
        }
    })
}

/// Ctrl-C and SIGTERM set `flag` instead of killing the demo at once, so
/// that it can stop its servers and remove its folder.
fn watch_signals(runtime: &tokio::runtime::Runtime, flag: Arc<AtomicBool>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let _guard = runtime.enter();
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        let mut signals = signal(kind).context("cannot watch for Ctrl-C and SIGTERM")?;
        let flag = flag.clone();
        runtime.spawn(async move {
            if signals.recv().await.is_some() {
                flag.store(true, Ordering::SeqCst);
            }
        });
    }
    Ok(())
}

impl Demo<'_> {
    fn story(&mut self) -> anyhow::Result<()> {
        let locations = ["laptop", "nas", "desktop"];
        self.say(&format!(
            "Three locations of one repository: a laptop, a NAS and a desktop, each a folder in {}. \
             Every command below is the real `harmony`, run in that location's folder.",
            self.base.display()
        ));
        for name in locations {
            fs::create_dir(self.base.join(name))?;
            self.run(name, &["init", "--name", name, "--listen", "127.0.0.1:0"])?;
        }

        self.say("The laptop has photos and music. `commit` records them: each file's hash, size and chunk list.");
        self.write("laptop", "photos/2026/beach.jpg", &[1; 300_000])?;
        self.write("laptop", "photos/2026/hike.jpg", &[2; 200_000])?;
        self.write("laptop", "music/song.flac", &[3; 500_000])?;
        self.run("laptop", &["commit"])?;

        self.say(
            "Each location runs `harmony serve` in the background (here on 127.0.0.1, so without \
             LAN discovery; `--no-watch --no-live`: it commits only when a peer syncs and syncs \
             only when told, so that each step below shows one thing) and trusts the others by node id (what `harmony id` prints \
             there). Trust is mutual: the desktop and the laptop know only the NAS.",
        );
        let mut addr = Vec::new();
        let mut id = Vec::new();
        for name in locations {
            addr.push(self.serve(name, &STEP_BY_STEP)?);
            id.push(
                self.query(name, &["id"])?["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        for (a, b) in [(0, 1), (1, 0), (1, 2), (2, 1)] {
            self.run(
                locations[a],
                &["peer", "add", locations[b], &id[b], &addr[b]],
            )?;
        }

        self.say(
            "The laptop syncs with the NAS. The NAS, fresh, joins the laptop's repository and \
             learns of every file, but receives no content: state and content travel apart.",
        );
        self.run("laptop", &["sync", "nas"])?;
        self.run("nas", &["ls"])?;

        self.say("The desktop syncs with the NAS only, and learns of the laptop's files and where they are through it.");
        self.run("desktop", &["sync", "nas"])?;
        self.run("desktop", &["whereis", "music"])?;

        self.say("The NAS fetches the photos only (a partial get), from the laptop; the song stays on the laptop alone.");
        self.run("nas", &["get", "photos"])?;
        self.run("nas", &["ls"])?;

        self.say(
            "The laptop renames the photo folder (mv photos/2026 photos/summer-2026). The sync \
             carries the rename and the NAS moves its own copies: no file content travels.",
        );
        fs::rename(
            self.base.join("laptop/photos/2026"),
            self.base.join("laptop/photos/summer-2026"),
        )?;
        self.run("laptop", &["sync", "nas"])?;
        self.run("nas", &["ls", "photos"])?;

        self.say(
            "The laptop and the NAS both retouch beach.jpg before they sync: a conflict. \
             Nothing is lost, both versions are kept until someone chooses.",
        );
        self.write(
            "laptop",
            "photos/summer-2026/beach.jpg",
            b"laptop's retouch",
        )?;
        self.write("nas", "photos/summer-2026/beach.jpg", b"the NAS's retouch")?;
        self.run("laptop", &["sync", "nas"])?;
        self.run("laptop", &["conflicts"])?;

        self.say(
            "The laptop keeps both: its version stays at the path, the NAS's gets a name of its \
             own, and the next sync tells the NAS.",
        );
        self.run(
            "laptop",
            &["resolve", "photos/summer-2026/beach.jpg", "--keep", "both"],
        )?;
        self.run("laptop", &["sync", "nas"])?;
        self.run("nas", &["ls", "photos"])?;

        self.say("The NAS now holds its own version under the new name, and fetches the laptop's.");
        self.run("nas", &["get", "photos"])?;
        self.run("nas", &["ls"])?;

        self.say(
            "Until now each step was typed. `harmony serve` as it runs by default is the \
             always-on node: it watches its folder and commits a second after the last change, \
             tells its peers, and fetches newer versions of the files it holds. The laptop and \
             the NAS restart theirs that way, on the same addresses.",
        );
        for (name, addr) in locations.into_iter().zip(&addr).take(2) {
            self.stop_server(name);
            self.serve(name, &["--listen", addr.as_str()])?;
        }
        self.say(
            "The laptop edits hike.jpg, and nobody types anything: its serve commits the edit, \
             tells the NAS, and the NAS's serve syncs and fetches the new version by itself.",
        );
        self.write("laptop", LIVE_FILE, &[4; LIVE_SIZE])?;
        let took = self.wait_until_held("nas", LIVE_FILE, LIVE_SIZE as u64)?;
        self.say(&format!(
            "The new version reached the NAS {:.1} s after the save, without a command:",
            took.as_secs_f64()
        ));
        self.run("nas", &["ls", LIVE_FILE])?;
        Ok(())
    }

    /// Polls `location` until it holds the newest content of `path`, of
    /// `size` bytes, fetched by its own serve; how long that took. Fails
    /// after [`LIVE_WAIT`].
    fn wait_until_held(
        &mut self,
        location: &str,
        path: &str,
        size: u64,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let deadline = start + LIVE_WAIT;
        loop {
            let listed = self.query(location, &["ls", path])?;
            let held = listed.as_array().into_iter().flatten().any(|file| {
                file["size"] == size && file["present"] == true && file["state"] == "ok"
            });
            if held {
                return Ok(start.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "the edit of {path} did not reach the {location} within {} s (its serve \
                     should have fetched it)",
                    LIVE_WAIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A line of the story (human output), or an event (`--json`).
    fn say(&mut self, text: &str) {
        if self.out.json {
            self.events.push(Event::Story {
                story: text.to_owned(),
            });
        } else if !self.out.quiet {
            out!("\n# {text}");
        }
    }

    /// What the user would do with an editor or a file manager.
    fn write(&self, location: &str, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.base.join(location).join(path);
        fs::create_dir_all(path.parent().expect("a file has a folder"))?;
        fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))
    }

    fn command(&self, location: &str, args: &[&str], json: bool) -> Command {
        let mut command = Command::new(&self.exe);
        command
            .current_dir(self.base.join(location))
            .args(json.then_some("--json"))
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs `harmony ARGS` in `location` and shows it with its output (its
    /// `--json` output with `--json`). A failed step ends the demo.
    fn run(&mut self, location: &'static str, args: &[&str]) -> anyhow::Result<()> {
        let json = self.out.json;
        let output = self.finish(location, args, json)?;
        let line = format!("harmony {}", args.join(" "));
        if json {
            let output = parse(&output.stdout, &line)?;
            self.events.push(Event::Command {
                location,
                command: line,
                output,
            });
        } else if !self.out.quiet {
            out!("{location}$ {line}");
            for text in [&output.stdout, &output.stderr] {
                for l in String::from_utf8_lossy(text).lines() {
                    out!("  {l}");
                }
            }
        }
        Ok(())
    }

    /// Runs `harmony --json ARGS` in `location` without showing it: for
    /// what the story needs to know (node ids).
    fn query(&mut self, location: &str, args: &[&str]) -> anyhow::Result<Value> {
        let output = self.finish(location, args, true)?;
        parse(&output.stdout, &format!("harmony {}", args.join(" ")))
    }

    fn finish(
        &mut self,
        location: &str,
        args: &[&str],
        json: bool,
    ) -> anyhow::Result<std::process::Output> {
        let output = self
            .command(location, args, json)
            .output()
            .with_context(|| format!("cannot run {}", self.exe.display()))?;
        if self.interrupted.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!(
                "the demo's step `harmony {}` in {location} failed: {}",
                args.join(" "),
                stderr
                    .lines()
                    .last()
                    .unwrap_or("no message")
                    .trim_start_matches("error: ")
            );
        }
        Ok(output)
    }

    /// Starts `harmony serve --no-discovery EXTRA` in `location` in the
    /// background; returns the address it bound (a free port on 127.0.0.1,
    /// as `init` asked, unless EXTRA says `--listen`). Without LAN
    /// discovery: the demo's nodes talk on loopback only, and must not
    /// announce themselves on the user's network.
    fn serve(&mut self, location: &'static str, extra: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["serve", "--no-discovery"];
        args.extend_from_slice(extra);
        let shown = format!("harmony {} &", args.join(" "));
        let mut child = self
            .command(location, &args, true)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {}", self.exe.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        self.servers.push((location, child));
        // `serve --json` prints one line once bound; EOF means it failed.
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let started: Value = serde_json::from_str(&line).map_err(|_| {
            anyhow::anyhow!(
                "`harmony serve` in {location} did not start (try `harmony -C {} serve` by hand)",
                self.base.join(location).display()
            )
        })?;
        let addr = started["listen"].as_str().unwrap_or_default().to_owned();
        if self.out.json {
            self.events.push(Event::Command {
                location,
                command: shown,
                output: started,
            });
        } else if !self.out.quiet {
            out!("{location}$ {shown}");
            out!("  serving on {addr}");
        }
        Ok(addr)
    }

    /// Stops the server of `location`.
    fn stop_server(&mut self, location: &str) {
        let (stopping, running) = std::mem::take(&mut self.servers)
            .into_iter()
            .partition(|(name, _)| *name == location);
        self.servers = running;
        stop(stopping);
    }

    /// Stops every server.
    fn stop_servers(&mut self) {
        stop(std::mem::take(&mut self.servers));
    }
}

/// SIGTERM to each server, as Ctrl-C would; SIGKILL after 5 s.
fn stop(servers: Vec<(&'static str, Child)>) {
    use rustix::process::{kill_process, Pid, Signal};
    for (_, child) in &servers {
        let _ = kill_process(Pid::from_child(child), Signal::TERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for (_, mut child) in servers {
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn parse(stdout: &[u8], command: &str) -> anyhow::Result<Value> {
    serde_json::from_slice(stdout).with_context(|| format!("`{command}` printed no JSON document"))
}

impl Drop for Demo<'_> {
    /// Also on a panic: no server outlives the demo.
    fn drop(&mut self) {
        self.stop_servers();
    }
}
