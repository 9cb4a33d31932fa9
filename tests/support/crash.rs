//! Crash trials (issue 14): the real `harmony` binary killed with SIGKILL at
//! random, seeded moments of each risky operation, and after every kill the
//! invariants that "nothing is lost" promises, each counted:
//!
//! * the state database passes `PRAGMA integrity_check`;
//! * no partial or temporary file is in a working tree: every file there is
//!   a whole version written in the trial;
//! * no content is lost: every version the trees held before the operation
//!   is still in a tree, in `.harmony/staging/` or in `.harmony/trash/`
//!   (checked by hash; right after the kill `.harmony/moving/` counts too,
//!   since the next operation's recovery puts its files back, and after the
//!   next operation it no longer does);
//! * the next operation completes, and its result is right: the killed
//!   location converges to what the operation would have made of it;
//! * a resumed get fetches only what was missing (the bytes it fetched
//!   against the bytes the kill left missing, added up for the report).
//!
//! Shared by tests/crash.rs (a few trials per operation, fixed seeds, small
//! trees) and examples/crash_trials.rs (the full runs and their table).
//! Included with `#[path]` beside `mod.rs` (`crate::support`) and `cli.rs`
//! (`crate::cli`), which start the binary.

#![allow(dead_code)] // the test binary uses a subset

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harmony::model::ContentHash;
use harmony::proto::MAX_WHOLE_FILE;
use harmony::store::{Store, DB_FILE};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::cli::{self, Serving};
use crate::support::write_old;

type Hash = [u8; 32];

/// What a working tree holds: each file's path and the hash of its bytes.
type TreeMap = BTreeMap<String, Hash>;

/// The operations killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `commit` of a large tree of new files.
    Commit,
    /// `sync` (renames, deletions, edits, new files from the peer), the
    /// client killed.
    SyncClient,
    /// `sync` (renames and deletions sent to the peer), the serving side
    /// (`serve`) killed while it merges and applies.
    SyncServer,
    /// `get` of many small files.
    GetSmall,
    /// `get` of one large file.
    GetLarge,
    /// The apply step of a `sync` that moves and deletes many files, killed
    /// once its two-step moves have begun (files in `.harmony/moving/`).
    Apply,
    /// `serve` killed while it answers a `get` of small files and a large
    /// one (once a content reached beta's staging).
    ServeGet,
}

impl Operation {
    /// Every operation, in the order of the table.
    pub const ALL: [Operation; 7] = [
        Operation::Commit,
        Operation::SyncClient,
        Operation::SyncServer,
        Operation::GetSmall,
        Operation::GetLarge,
        Operation::Apply,
        Operation::ServeGet,
    ];

    /// The name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Commit => "commit",
            Operation::SyncClient => "sync (client killed)",
            Operation::SyncServer => "sync (serve killed)",
            Operation::GetSmall => "get, small files",
            Operation::GetLarge => "get, one large file",
            Operation::Apply => "apply (moves, deletions)",
            Operation::ServeGet => "serve answering a get",
        }
    }

    /// Whether the kill hits the serving side (`serve`) rather than the
    /// command the trial runs.
    fn kills_serve(self) -> bool {
        matches!(self, Operation::SyncServer | Operation::ServeGet)
    }

    /// Whether the next operation is a resumed get, whose re-fetch is measured.
    fn resumes_get(self) -> bool {
        matches!(
            self,
            Operation::GetSmall | Operation::GetLarge | Operation::ServeGet
        )
    }
}

/// How large the trials' trees are.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Files of the commit trials.
    pub commit_files: usize,
    /// Small files of the synced trees and of the gets.
    pub small_files: usize,
    /// Bytes of the large file of the gets.
    pub large_size: usize,
    /// Files renamed in the apply trials.
    pub moves: usize,
}

impl Scale {
    /// The sizes (release build).
    pub const FULL: Scale = Scale {
        commit_files: 20_000,
        small_files: 3_000,
        large_size: 64 << 20,
        moves: 2_000,
    };

    /// A slice for `cargo test` (debug build): each trial a few seconds.
    pub const QUICK: Scale = Scale {
        commit_files: 2_000,
        small_files: 600,
        large_size: 24 << 20,
        moves: 400,
    };
}

/// The invariants checked after each kill, in the table's order.
pub const INVARIANTS: [&str; 4] = ["integrity", "no partial", "content kept", "next op ok"];

/// What the trials of one operation found.
#[derive(Debug, Default)]
pub struct Tally {
    /// Trials run.
    pub trials: usize,
    /// Kills that landed while the operation ran (the others came after it
    /// ended; their invariants are checked all the same).
    pub landed: usize,
    /// Trials in which each of [`INVARIANTS`] held.
    pub held: [usize; 4],
    /// Trials whose kill left files parked in `.harmony/moving/`, which the
    /// next operation's recovery (`recover_interrupted_moves`) put back.
    pub recovered_moves: usize,
    /// Bytes the resumed gets fetched.
    pub refetched: u64,
    /// Bytes the kills left missing (what a resumed get has to fetch).
    pub missing: u64,
    /// Each invariant that failed: the trial's seed and what was wrong.
    pub failures: Vec<String>,
}

impl Tally {
    /// Bytes fetched by resumed gets per byte missing, in percent.
    pub fn refetch_percent(&self) -> Option<f64> {
        (self.missing > 0).then(|| self.refetched as f64 * 100.0 / self.missing as f64)
    }

    /// The table's header line.
    pub fn header() -> String {
        format!(
            "| operation | trials | landed mid-op | {} | moves recovered | re-fetched / missing |\n|---|---:|---:|{}---:|---|",
            INVARIANTS.join(" | "),
            "---:|".repeat(INVARIANTS.len())
        )
    }

    /// The table's line for `op`.
    pub fn row(&self, op: Operation) -> String {
        let held: Vec<String> = self
            .held
            .iter()
            .map(|h| format!("{h}/{}", self.trials))
            .collect();
        let refetch = match self.refetch_percent() {
            Some(p) => format!("{p:.1}% ({} / {} B)", self.refetched, self.missing),
            None if op.resumes_get() => "nothing was missing".to_owned(),
            None => "-".to_owned(),
        };
        format!(
            "| {} | {} | {} | {} | {} | {refetch} |",
            op.name(),
            self.trials,
            self.landed,
            held.join(" | "),
            self.recovered_moves
        )
    }
}

/// Runs `trials` trials of `op` at `scale`, the kill moments drawn from
/// `seed`. The first, uncut run of the operation measures how long its
/// span lasts ([`in_span`]), so that the kills fall inside it; a trial
/// whose operation ended before its kill shortens it to what it took.
pub fn run(op: Operation, scale: Scale, trials: usize, seed: u64) -> Tally {
    let mut window = calibrate(op, scale, seed);
    let mut tally = Tally::default();
    for k in 0..trials {
        let trial_seed = seed ^ ((op as u64) << 48) ^ (k as u64).wrapping_mul(0x9E37_79B9);
        if let Some(shorter) = trial(op, scale, trial_seed, window, &mut tally) {
            window = shorter;
        }
    }
    tally
}

/// Two locations of one repository, `alpha` serving on a fixed port (so
/// that it can be started again after a kill) and `beta` its peer.
struct World {
    a: tempfile::TempDir,
    b: tempfile::TempDir,
    port: u16,
    serve: Option<Serving>,
    /// Every content written in the trial's trees.
    known: HashSet<Hash>,
    rng: StdRng,
}

impl World {
    fn new(seed: u64) -> World {
        let (a, _) = cli::location("alpha");
        let (b, _) = cli::location("beta");
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .unwrap()
            .port();
        World {
            a,
            b,
            port,
            serve: None,
            known: HashSet::new(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn a(&self) -> &Path {
        self.a.path()
    }

    fn b(&self) -> &Path {
        self.b.path()
    }

    fn both(&self) -> [&Path; 2] {
        [self.a(), self.b()]
    }

    /// Writes `len` fresh random bytes at `path` in the tree at `root`.
    fn write(&mut self, root: &Path, path: &str, len: usize) {
        let mut bytes = vec![0; len];
        self.rng.fill_bytes(&mut bytes);
        self.known.insert(*blake3::hash(&bytes).as_bytes());
        write_old(&root.join(path), &bytes);
    }

    /// `count` small files (0.5 to 4 KiB) under `folder/` in the tree at `root`.
    fn small_files(&mut self, root: &Path, folder: &str, count: usize) {
        for i in 0..count {
            let len = self.rng.random_range(512..4096);
            self.write(root, &format!("{folder}/{}/{i}.dat", i % 40), len);
        }
    }

    /// Makes the two trusted peers and starts alpha's `serve`.
    fn pair(&mut self) {
        let a_id = cli::ok(self.a(), &["id", "-q"]).trim().to_owned();
        let b_id = cli::ok(self.b(), &["id", "-q"]).trim().to_owned();
        cli::ok(self.a(), &["peer", "add", "beta", &b_id, "127.0.0.1:9"]);
        let addr = format!("127.0.0.1:{}", self.port);
        cli::ok(self.b(), &["peer", "add", "alpha", &a_id, &addr]);
        self.start_serve();
    }

    /// Starts alpha's `serve` on its port, trying again for a few seconds
    /// while that is taken (the port was free when the world was made, and
    /// is freed again by a kill, but other processes may bind meanwhile).
    fn start_serve(&mut self) {
        let addr = format!("127.0.0.1:{}", self.port);
        let mut tries = 0;
        loop {
            let command = cli::serve_command_at(self.a(), &addr, &["--no-watch", "--no-live"]);
            match Serving::try_spawn(command, None) {
                Ok(serving) => break self.serve = Some(serving),
                Err(e) if tries == 50 => panic!("alpha's serve on {addr}: {e}"),
                Err(_) => tries += 1,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// beta made a full copy of alpha.
    fn copy_to_b(&mut self) {
        cli::ok(self.b(), &["-q", "sync", "alpha"]);
        cli::ok(self.b(), &["-q", "get", "."]);
        assert_eq!(tree(self.b()), tree(self.a()), "the first get copied alpha");
    }

    /// Renames `count` of the files under `small/` in the tree at `root`
    /// into `moved/`, and deletes every tenth of the rest; returns the
    /// files left under `small/`.
    fn move_and_delete(&mut self, root: &Path, count: usize) -> Vec<String> {
        let mut left = Vec::new();
        for (k, path) in tree(root).into_keys().enumerate() {
            if !path.starts_with("small/") {
                continue;
            }
            if k < count {
                let to = root.join("moved").join(&path["small/".len()..]);
                fs::create_dir_all(to.parent().unwrap()).unwrap();
                fs::rename(root.join(&path), to).unwrap();
            } else if k % 10 == 0 {
                fs::remove_file(root.join(&path)).unwrap();
            } else {
                left.push(path);
            }
        }
        left
    }
}

/// Builds the world of a trial of `op` (everything before the operation).
fn prepare(op: Operation, scale: Scale, seed: u64) -> World {
    let mut w = World::new(seed);
    let (a, b) = (w.a().to_path_buf(), w.b().to_path_buf());
    match op {
        Operation::Commit => w.small_files(&a, "small", scale.commit_files),
        Operation::SyncClient | Operation::Apply => {
            w.small_files(&a, "small", scale.small_files.max(scale.moves * 5 / 4));
            cli::ok(&a, &["-q", "commit"]);
            w.pair();
            w.copy_to_b();
            let moves = match op {
                Operation::Apply => scale.moves,
                _ => scale.small_files / 4,
            };
            let left = w.move_and_delete(&a, moves);
            if op == Operation::SyncClient {
                // Edits and new files too: the sync records them, the get
                // after it fetches them.
                for path in left.iter().step_by(10) {
                    w.write(&a, path, 3000);
                }
                w.small_files(&a, "new", scale.small_files / 10);
            }
            cli::ok(&a, &["-q", "commit"]);
        }
        Operation::SyncServer => {
            w.small_files(&a, "small", scale.small_files);
            cli::ok(&a, &["-q", "commit"]);
            w.pair();
            w.copy_to_b();
            w.move_and_delete(&b, scale.small_files / 3);
            cli::ok(&b, &["-q", "commit"]);
        }
        Operation::GetSmall | Operation::GetLarge | Operation::ServeGet => {
            if op != Operation::GetLarge {
                w.small_files(&a, "small", scale.small_files);
            }
            if op != Operation::GetSmall {
                w.write(&a, "large.bin", scale.large_size);
            }
            cli::ok(&a, &["-q", "commit"]);
            w.pair();
            cli::ok(&b, &["-q", "sync", "alpha"]);
        }
    }
    w
}

/// The command a trial of `op` runs (and kills, unless the kill is for
/// `serve`), in the location it runs in.
fn operation(op: Operation, w: &World) -> Command {
    match op {
        Operation::Commit => cli::command(w.a(), &["-q", "commit"]),
        Operation::SyncClient | Operation::Apply | Operation::SyncServer => {
            cli::command(w.b(), &["-q", "sync", "alpha"])
        }
        Operation::GetSmall | Operation::GetLarge | Operation::ServeGet => {
            cli::command(w.b(), &["-q", "get", "."])
        }
    }
}

/// Files parked in `.harmony/moving/` of the location at `root`.
fn parked(root: &Path) -> usize {
    fs::read_dir(root.join(".harmony/moving")).map_or(0, |items| {
        items
            .filter_map(|i| i.ok())
            .filter(|i| {
                let name = i.file_name().to_string_lossy().into_owned();
                !name.starts_with("copy-") && !name.starts_with("link-")
            })
            .count()
    })
}

/// Whether the operation is in the span the kills fall in: for the apply
/// trials while files are parked in `.harmony/moving/` (its two-step
/// moves); for `serve` answering a get while contents are in beta's staging
/// (serve is sending); for the others throughout.
fn in_span(op: Operation, w: &World) -> bool {
    match op {
        Operation::Apply => parked(w.b()) > 0,
        Operation::ServeGet => fs::read_dir(w.b().join(".harmony/staging")).is_ok_and(|items| {
            items
                .filter_map(|i| i.ok())
                .any(|i| i.file_name().to_string_lossy().ends_with(".part"))
        }),
        _ => true,
    }
}

/// How long the kills' span lasts, from an uncut run: from the first to the
/// last moment seen [`in_span`].
fn calibrate(op: Operation, scale: Scale, seed: u64) -> Duration {
    let w = prepare(op, scale, seed);
    let mut child = spawn(operation(op, &w));
    let (mut first, mut last) = (None, None);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if in_span(op, &w) {
            first.get_or_insert_with(Instant::now);
            last = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    assert!(
        status.success(),
        "the uncut {} failed ({status})",
        op.name()
    );
    match (first, last) {
        (Some(first), Some(last)) => last - first,
        _ => panic!("the uncut {} never entered its span", op.name()),
    }
}

fn spawn(mut command: Command) -> Child {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for `child`, killing it after two minutes (a bound for a stuck
/// trial, not a measure).
fn wait_bounded(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One trial: prepare, run the operation, kill at a random moment of
/// `window`, check, run the next operation, check again. Returns how long
/// the span lasted when the operation ended before the kill.
fn trial(
    op: Operation,
    scale: Scale,
    seed: u64,
    window: Duration,
    tally: &mut Tally,
) -> Option<Duration> {
    let mut w = prepare(op, scale, seed);
    let before: HashSet<Hash> = w
        .both()
        .iter()
        .flat_map(|r| tree(r).into_values())
        .collect();
    // Within the first three quarters: the calibrating run, the first,
    // is often the slowest, and later kills would mostly come too late.
    // A kill of `serve` gets one trial in the test slice (each costs the
    // client's stream timeout), so it falls in the first 40%: with 75%,
    // a get faster than the calibrating one now and then ended before the
    // kill (seen in 2 of some 20 full runs), and the slice saw none land.
    let reach = if op.kills_serve() { 0.4 } else { 0.75 };
    let delay = window.mul_f64(w.rng.random_range(0.0..reach));

    let mut child = spawn(operation(op, &w));
    let deadline = Instant::now() + Duration::from_secs(120);
    while !in_span(op, &w) && child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the {} never began", op.name());
        std::thread::sleep(Duration::from_micros(200));
    }
    let span_began = Instant::now();
    let mut ended = None;
    while span_began.elapsed() < delay {
        if ended.is_none() && child.try_wait().unwrap().is_some() {
            ended = Some(span_began.elapsed());
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let running = ended.is_none() && child.try_wait().unwrap().is_none();
    let landed = if op.kills_serve() {
        let serve = w.serve.take().expect("alpha serves");
        drop(serve); // SIGKILL, and reaped
        let status = wait_bounded(&mut child);
        running && !status.success()
    } else {
        child.kill().unwrap();
        let status = child.wait().unwrap();
        running && status.signal() == Some(9)
    };
    tally.trials += 1;
    tally.landed += usize::from(landed);

    let mut failed: [Vec<String>; 4] = Default::default();
    let roots = w.both().map(Path::to_path_buf);
    for root in &roots {
        if let Err(e) = integrity(root) {
            failed[0].push(e);
        }
        failed[1].extend(partial_files(root, &w.known));
    }
    if parked(w.b()) + parked(w.a()) > 0 {
        tally.recovered_moves += 1;
    }
    failed[2].extend(lost(&before, &roots, true));
    let missing = op.resumes_get().then(|| missing_bytes(w.a(), w.b()));

    if op.kills_serve() {
        w.start_serve();
    }
    match next_operation(op, &w) {
        Ok(fetched) => {
            if let (Some(missing), Some(fetched)) = (missing, fetched) {
                tally.missing += missing;
                tally.refetched += fetched;
            }
        }
        Err(e) => failed[3].push(e),
    }
    for root in &roots {
        if parked(root) > 0 {
            failed[3].push(format!(
                "{} files still parked in .harmony/moving/ after the next operation",
                parked(root)
            ));
        }
        if let Err(e) = integrity(root) {
            failed[0].push(format!("after the next operation: {e}"));
        }
        failed[1].extend(partial_files(root, &w.known));
    }
    failed[2].extend(lost(&before, &roots, false));

    for (k, failures) in failed.iter().enumerate() {
        if failures.is_empty() {
            tally.held[k] += 1;
        } else {
            let mut shown: Vec<&str> = failures.iter().map(String::as_str).take(3).collect();
            if failures.len() > 3 {
                shown.push("...");
            }
            tally.failures.push(format!(
                "{} (seed {seed}, kill {} mid-op at {delay:?}): {} failed: {}",
                op.name(),
                if landed { "landed" } else { "after the end," },
                INVARIANTS[k],
                shown.join("; ")
            ));
        }
    }
    ended
}

/// Runs the operation that follows the kill and checks its result: the
/// killed location's state is what the operation would have made.
/// Returns, for a resumed get, the bytes it fetched.
fn next_operation(op: Operation, w: &World) -> Result<Option<u64>, String> {
    let run = |dir: &Path, args: &[&str]| -> Result<String, String> {
        let out = cli::harmony(dir, args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "harmony {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    let same = |x: &Path, y: &Path, what: &str| -> Result<(), String> {
        let (tx, ty) = (tree(x), tree(y));
        if tx == ty {
            return Ok(());
        }
        let differ = tx
            .iter()
            .filter(|(p, h)| ty.get(*p) != Some(h))
            .map(|(p, _)| p.as_str())
            .chain(
                ty.keys()
                    .filter(|p| !tx.contains_key(*p))
                    .map(String::as_str),
            )
            .take(3)
            .collect::<Vec<_>>()
            .join(", ");
        Err(format!("{what}: the trees differ (e.g. {differ})"))
    };
    match op {
        Operation::Commit => {
            run(w.a(), &["-q", "commit"])?;
            let listed: serde_json::Value =
                serde_json::from_str(&run(w.a(), &["--json", "ls"])?).map_err(|e| e.to_string())?;
            let files = listed.as_array().map_or(0, Vec::len);
            let on_disk = tree(w.a()).len();
            if files != on_disk {
                return Err(format!("ls lists {files} files, the tree has {on_disk}"));
            }
            Ok(None)
        }
        Operation::SyncClient | Operation::Apply => {
            run(w.b(), &["-q", "sync", "alpha"])?;
            run(w.b(), &["-q", "get", "."])?;
            same(
                w.b(),
                w.a(),
                "after the next sync and get, beta is not alpha",
            )?;
            Ok(None)
        }
        Operation::SyncServer => {
            run(w.b(), &["-q", "sync", "alpha"])?;
            same(w.a(), w.b(), "after the next sync, alpha is not beta")?;
            Ok(None)
        }
        Operation::GetSmall | Operation::GetLarge | Operation::ServeGet => {
            let report: serde_json::Value =
                serde_json::from_str(&run(w.b(), &["--json", "get", "."])?)
                    .map_err(|e| e.to_string())?;
            same(w.b(), w.a(), "after the resumed get, beta is not alpha")?;
            Ok(report["bytes_fetched"].as_u64())
        }
    }
}

/// The blake3 of every file under `dir` (its path relative to `dir`),
/// `.harmony/` at the top left out.
fn files_under(dir: &Path) -> TreeMap {
    fn walk(root: &Path, dir: &Path, out: &mut TreeMap) {
        let Ok(items) = fs::read_dir(dir) else { return };
        for item in items.flatten() {
            let path = item.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == ".harmony" {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                walk(root, &path, out);
            } else if let Ok(bytes) = fs::read(&path) {
                out.insert(rel, *blake3::hash(&bytes).as_bytes());
            }
        }
    }
    let mut out = TreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The working tree of the location at `root`.
fn tree(root: &Path) -> TreeMap {
    files_under(root)
}

fn integrity(root: &Path) -> Result<(), String> {
    let db = root.join(".harmony").join(DB_FILE);
    let check = rusqlite::Connection::open(&db)
        .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)))
        .map_err(|e| format!("{}: {e}", db.display()))?;
    match check.as_str() {
        "ok" => Ok(()),
        _ => Err(format!("{}: integrity_check says {check}", db.display())),
    }
}

/// Files in the working tree at `root` that are no whole version written in
/// the trial (a partial file), or have a staging or temporary name.
fn partial_files(root: &Path, known: &HashSet<Hash>) -> Vec<String> {
    tree(root)
        .into_iter()
        .filter(|(path, hash)| {
            let name = path.rsplit('/').next().unwrap_or(path);
            !known.contains(hash)
                || name.contains(".part")
                || name.starts_with("copy-")
                || name.starts_with("link-")
        })
        .map(|(path, _)| format!("{path} in the tree of {}", root.display()))
        .collect()
}

/// The contents of `before` found nowhere: not in any of the trees at
/// `roots`, their staging or their trash (nor, `with_moving`, parked in
/// `.harmony/moving/`).
fn lost(before: &HashSet<Hash>, roots: &[PathBuf], with_moving: bool) -> Vec<String> {
    let mut found: HashSet<Hash> = HashSet::new();
    for root in roots {
        found.extend(tree(root).into_values());
        let mut kept = vec!["staging", "trash"];
        if with_moving {
            kept.push("moving");
        }
        for dir in kept {
            found.extend(files_under(&root.join(".harmony").join(dir)).into_values());
        }
    }
    let lost = before.iter().filter(|h| !found.contains(*h)).count();
    match lost {
        0 => Vec::new(),
        n => vec![format!(
            "{n} of {} contents found in no tree, staging or trash{}",
            before.len(),
            if with_moving {
                " (nor moving)"
            } else {
                " after the next operation"
            }
        )],
    }
}

/// The bytes beta still lacks of alpha's tree: whole small contents not
/// staged intact, and the chunks of a large one that its part file in
/// staging does not hold intact.
fn missing_bytes(a: &Path, b: &Path) -> u64 {
    let here = tree(b);
    let store = Store::open(&a.join(".harmony").join(DB_FILE)).unwrap();
    let staging = b.join(".harmony/staging");
    let mut missing = 0;
    for (path, hash) in tree(a) {
        if here.get(&path) == Some(&hash) {
            continue;
        }
        let size = fs::metadata(a.join(&path)).unwrap().len();
        let part =
            fs::read(staging.join(format!("{}.part", ContentHash(hash)))).unwrap_or_default();
        if size <= MAX_WHOLE_FILE {
            if *blake3::hash(&part).as_bytes() != hash {
                missing += size;
            }
            continue;
        }
        let manifest = store
            .manifest(ContentHash(hash))
            .unwrap()
            .expect("a manifest");
        for (chunk, offset) in manifest.chunks.iter().zip(manifest.offsets()) {
            let range = offset as usize..offset as usize + chunk.len as usize;
            let intact = part
                .get(range)
                .is_some_and(|bytes| ContentHash::from(blake3::hash(bytes)) == chunk.hash);
            if !intact {
                missing += u64::from(chunk.len);
            }
        }
    }
    missing
}
