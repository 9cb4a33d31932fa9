//! Benchmark of state sync between two in-process locations over QUIC on
//! 127.0.0.1, through the library exactly as `harmony sync` does it (commit,
//! bind a client node, connect, sessions while the last one left news),
//! printed beside the figures the issue quotes for rsync, Unison and
//! Syncthing on this machine.
//!
//! ```text
//! cargo run --release --example bench_sync [-- --dir /path/with/1.2GiB/free] [--files N]
//! ```
//!
//! Scenarios: a fresh location's first sync with a repository of N files of
//! 64 bytes (default 100,000); the same sync again with nothing changed; a
//! sync after 10 edits; a 512 MiB folder rename (16 files of 32 MiB) held by
//! both sides. Each prints wall time, split into its phases (commit, bind +
//! connect, sessions), the UDP bytes of the connection in both directions
//! (QUIC + TLS handshake included), the state payload (the encoded frames of
//! both hellos and of the batches both sides send, computed from the two
//! stores just before each session, outside the clock), and peak memory
//! (VmHWM from connect to the end, reset through /proc/self/clear_refs; the
//! serving side runs in the same process, so it counts both sides).

#[path = "common/mod.rs"]
mod common;
#[path = "common/serving.rs"]
mod serving;

use common::{random_bytes, reset_peak_rss, rss, secs, threads, write_old};
use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harmony::model::NodeId;
use harmony::node::{settle, NodeSetup};
use harmony::proto::{encode_frame, Request, Response};
use harmony::sync::{hello, sync_with, Outgoing, SessionReport};
use harmony::{CommitReport, Repo};
use serving::{serve, Location, Served};
use tokio::runtime::Runtime;

struct Args {
    dir: Option<PathBuf>,
    files: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        dir: None,
        files: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--dir" => args.dir = Some(value.into()),
            "--files" => args.files = value.parse().expect("--files N"),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// One row of the final summary.
struct Row {
    what: String,
    target: String,
    measured: String,
    met: Option<bool>,
}

fn main() {
    let args = parse_args();
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    // The same runtime as `harmony sync`; the serving side shares it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# harmony sync benchmark ({} cores, QUIC on 127.0.0.1, both sides in one process)",
        threads()
    );
    let mut rows = Vec::new();
    many_files(&rt, &base, args.files, &mut rows);
    folder_rename(&rt, &base, &mut rows);
    summary(&rows, args.files);
}

/// What one `harmony sync` with one peer cost.
struct SyncRun {
    commit: Duration,
    connect: Duration,
    sessions: Duration,
    /// conn.close() + node.shutdown(), after the figures were taken.
    close: Duration,
    wire: u64,
    hello_bytes: usize,
    batch_bytes: usize,
    batches: usize,
    reports: Vec<SessionReport>,
    committed: CommitReport,
    peak: String,
}

impl SyncRun {
    /// Commit + connect + sessions: when `harmony sync` has its answer.
    fn total(&self) -> Duration {
        self.commit + self.connect + self.sessions
    }

    fn payload(&self) -> usize {
        self.hello_bytes + self.batch_bytes
    }

    fn received(&self) -> usize {
        self.reports.iter().map(|r| r.entries_received).sum()
    }

    fn print(&self, label: &str) {
        println!(
            "{label}: {:.3} s = commit {:.3} + bind/connect {:.3} + {} session(s) {:.3}  (then close {:.3})",
            secs(self.total()),
            secs(self.commit),
            secs(self.connect),
            self.reports.len(),
            secs(self.sessions),
            secs(self.close),
        );
        let sent: usize = self.reports.iter().map(|r| r.entries_sent).sum();
        let changed: usize = self.reports.iter().map(|r| r.changed).sum();
        println!(
            "  commit recorded {} changes; entries sent {sent}, received {}, changed here {changed}; in sync at once: {}",
            self.committed.changed(),
            self.received(),
            self.reports.first().is_some_and(|r| r.in_sync)
        );
        println!(
            "  on the wire {} ({} B, UDP both ways incl. handshake); state payload {} B = hellos {} B + {} batch frames {} B; peak RSS {}",
            kib(self.wire),
            self.wire,
            self.payload(),
            self.hello_bytes,
            self.batches,
            self.batch_bytes,
            self.peak
        );
    }
}

/// The frames of one session, from the two stores as they are now: both
/// hellos, and the batches each side would send (the server's side as
/// `SyncService` computes it, ours as `sync_with` does).
fn session_payload(client: &Path, server: &Path) -> (usize, usize, usize) {
    let (c, s) = (Repo::open(client).unwrap(), Repo::open(server).unwrap());
    let c_hello = hello(c.store(), s.node_id(), s.store().is_fresh().unwrap()).unwrap();
    let s_hello = hello(s.store(), c.node_id(), c.store().is_fresh().unwrap()).unwrap();
    let hellos = encode_frame(&Request::Sync(c_hello.clone())).unwrap().len()
        + encode_frame(&Response::Sync(s_hello.clone()))
            .unwrap()
            .len();
    let (mut bytes, mut batches) = (0, 0);
    if c_hello.digest != s_hello.digest {
        for (repo, mine, theirs, to) in [
            (&c, &c_hello, &s_hello, s.node_id()),
            (&s, &s_hello, &c_hello, c.node_id()),
        ] {
            let mut out = Outgoing::new(mine, theirs, to);
            while let Some(batch) = out.next_batch(repo.store()).unwrap() {
                bytes += encode_frame(&batch).unwrap().len();
                batches += 1;
            }
        }
    }
    (hellos, bytes, batches)
}

/// One `harmony sync` of `loc` with `peer`: commit, bind a client node on
/// 127.0.0.1, connect, sessions while the last one left news.
fn sync_once(rt: &Runtime, loc: &Location, peer: &Served) -> SyncRun {
    let started = Instant::now();
    let committed = loc.commit();
    let commit = started.elapsed();
    let root = loc.root();
    rt.block_on(async {
        let started = Instant::now();
        let setup = NodeSetup::open(&root, "127.0.0.1:0".parse().unwrap()).unwrap();
        let node = setup.bind_client().unwrap();
        reset_peak_rss();
        let rss_before = rss("VmRSS:");
        let conn = node.connect(peer.addr, peer.id, &peer.name).await.unwrap();
        let connect = started.elapsed();
        // Per session: the frames it will carry (outside the clock), its time.
        let measured = Cell::new((Duration::ZERO, 0, 0, 0));
        let (root, conn_ref, measured_ref) = (&root, &conn, &measured);
        let (reports, settled) = settle(move || async move {
            let (h, b, n) = session_payload(root, &peer.root);
            let started = Instant::now();
            let report = sync_with(conn_ref, root.clone()).await;
            let (t, hs, bs, ns) = measured_ref.get();
            measured_ref.set((t + started.elapsed(), hs + h, bs + b, ns + n));
            report
        })
        .await;
        settled.unwrap();
        let (sessions, hello_bytes, batch_bytes, batches) = measured.get();
        let stats = conn.connection().stats();
        let peak = format!("{} (RSS before: {rss_before})", rss("VmHWM:"));
        let started = Instant::now();
        conn.close();
        node.shutdown().await;
        SyncRun {
            commit,
            connect,
            sessions,
            close: started.elapsed(),
            wire: stats.udp_tx.bytes + stats.udp_rx.bytes,
            hello_bytes,
            batch_bytes,
            batches,
            reports,
            committed,
            peak,
        }
    })
}

/// Where a session's fixed cost goes: the store reads every session does on
/// each side (opening, the hello, and the tombstone collection that ends
/// every session), timed one by one on `root`'s store.
fn store_costs(name: &str, root: &Path, peer: NodeId) {
    let started = Instant::now();
    let repo = Repo::open(root).unwrap();
    let open = started.elapsed();
    let started = Instant::now();
    hello(repo.store(), peer, false).unwrap();
    let hello_t = started.elapsed();
    let started = Instant::now();
    let tombstones = repo.store().tombstones().unwrap().len();
    let tomb_t = started.elapsed();
    let started = Instant::now();
    repo.store().merged_by_all_peers().unwrap();
    repo.store().nodes().unwrap();
    let rest = started.elapsed();
    println!(
        "  {name}'s store, per session: Repo::open {:.1} ms, hello {:.1} ms, tombstones() {:.1} ms ({tombstones} found), merged_by_all_peers + nodes {:.1} ms",
        ms(open),
        ms(hello_t),
        ms(tomb_t),
        ms(rest)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn small_path(i: usize) -> String {
    format!("d{:03}/f{:06}.bin", i % 100, i)
}

fn many_files(rt: &Runtime, base: &Path, count: usize, rows: &mut Vec<Row>) {
    println!("\n## A: {count} files of 64 bytes; B: a fresh location");
    let a = Location::new(base, "a");
    let b = Location::new(base, "b");
    let started = Instant::now();
    for i in 0..count {
        write_old(
            &a.root().join(small_path(i)),
            &random_bytes(64, i as u64 + 1),
        );
    }
    let created = started.elapsed();
    let started = Instant::now();
    let report = a.commit();
    assert_eq!(report.added, count);
    println!(
        "created in {:.1} s, committed on A in {:.1} s (not part of any figure)",
        secs(created),
        secs(started.elapsed())
    );
    let server = serve(rt, &a, &[&b]);

    // 1. First sync of the fresh location.
    let run = sync_once(rt, &b, &server);
    assert!(run.reports[0].joined, "B joins A's repository");
    assert_eq!(run.received(), count);
    assert_eq!(
        a.repo().store().state_digest().unwrap(),
        b.repo().store().state_digest().unwrap(),
        "A and B converge"
    );
    run.print("1. first sync, B fresh (B's commit of its empty tree timed)");
    let t = secs(run.total());
    println!(
        "  {:.0} entries/s over the whole sync, {:.0} entries/s over the sessions; {:.1} wire bytes/entry, {:.1} payload bytes/entry",
        count as f64 / t,
        count as f64 / secs(run.sessions),
        run.wire as f64 / count as f64,
        run.payload() as f64 / count as f64
    );
    rows.push(Row {
        what: format!("1. first sync, {count} entries"),
        target: "< 3 s".into(),
        measured: format!("{t:.2} s, {}", kib(run.wire)),
        met: Some(t < 3.0),
    });

    // 2. Nothing changed.
    let run = sync_once(rt, &b, &server);
    assert!(run.reports[0].in_sync, "nothing changed: digests equal");
    run.print("2. sync again, nothing changed");
    rows.push(Row {
        what: "2. no-change sync, wall time".into(),
        target: "(rsync 0.30 s, Unison 0.37 s at 20k files)".into(),
        measured: format!("{:.3} s", secs(run.total())),
        met: None,
    });
    rows.push(Row {
        what: "2. no-change sync, bytes all in".into(),
        target: "< 6 KiB (rsync 269 KiB, Unison 10 KiB)".into(),
        measured: format!("{} B", run.wire),
        met: Some(run.wire < 6 * 1024),
    });
    rows.push(Row {
        what: "2. no-change sync, state payload".into(),
        target: "< 256 B".into(),
        measured: format!("{} B", run.payload()),
        met: Some(run.payload() < 256),
    });
    let no_change_wire = run.wire;
    store_costs("A", &a.root(), b.id);
    store_costs("B", &b.root(), a.id);
    let started = Instant::now();
    let report = a.commit();
    assert_eq!(report.changed(), 0);
    println!(
        "  A's no-change commit (what serve does before every session since it commits first): {:.0} ms",
        ms(started.elapsed())
    );

    // 3. Ten edits on A.
    for i in (0..count).step_by((count / 10).max(1)).take(10) {
        write_old(
            &a.root().join(small_path(i)),
            &random_bytes(64, i as u64 + 10_000_000),
        );
    }
    let report = a.commit();
    assert_eq!(report.edited, 10.min(count));
    let run = sync_once(rt, &b, &server);
    assert_eq!(run.received(), 10.min(count));
    run.print("3. sync after 10 edits on A");
    println!(
        "  {:.0} wire bytes per changed entry ({:.0} beyond the no-change sync), {:.0} payload bytes per changed entry",
        run.wire as f64 / 10.0,
        (run.wire as f64 - no_change_wire as f64) / 10.0,
        run.payload() as f64 / 10.0
    );
    rows.push(Row {
        what: "3. sync after 10 edits".into(),
        target: "~ 10 entries, not N".into(),
        measured: format!(
            "{:.3} s, {} B ({:.0} B/entry)",
            secs(run.total()),
            run.wire,
            run.wire as f64 / 10.0
        ),
        met: Some(run.wire < 64 * 1024),
    });
    drop(server);
}

const BIG_FILES: usize = 16;
const BIG_SIZE: usize = 32 << 20;

/// Writes the 16 big files under `root/big/`, the same bytes for the same
/// index everywhere.
fn write_big(root: &Path, block: &mut [u8]) {
    for f in 0..BIG_FILES {
        block[..8].copy_from_slice(&(f as u64 + 1).to_le_bytes());
        write_old(&root.join(format!("big/file-{f:02}.bin")), block);
    }
}

fn folder_rename(rt: &Runtime, base: &Path, rows: &mut Vec<Row>) {
    let total_mib = (BIG_FILES * BIG_SIZE) >> 20;
    println!("\n## {total_mib} MiB folder rename: C serves big/ ({BIG_FILES} files of 32 MiB), D holds it too");
    let c = Location::new(base, "c");
    let d = Location::new(base, "d");
    let mut block = random_bytes(BIG_SIZE, 42);
    write_big(&c.root(), &mut block);
    let report = c.commit();
    assert_eq!(report.added, BIG_FILES);
    let server = serve(rt, &c, &[&d]);
    let run = sync_once(rt, &d, &server);
    assert!(run.reports[0].joined, "D joins C's repository");
    assert_eq!(run.received(), BIG_FILES);

    // No `get` yet: D gets the same bytes at the same paths by other means.
    write_big(&d.root(), &mut block);
    drop(block);
    let started = Instant::now();
    let report = d.commit();
    println!(
        "D committed its copy in {:.2} s: {} added, {} edited, {} read (not part of any figure)",
        secs(started.elapsed()),
        report.added,
        report.edited,
        report.files_read
    );
    let run = sync_once(rt, &d, &server);
    println!(
        "D told C it holds them: {} session(s), {} entries sent",
        run.reports.len(),
        run.reports.iter().map(|r| r.entries_sent).sum::<usize>()
    );
    let holders = c.repo().whereis(&[]).unwrap();
    assert_eq!(holders.len(), BIG_FILES);
    for w in &holders {
        assert_eq!(
            w.holders.len(),
            2,
            "C must know that C and D both hold {}",
            w.path
        );
    }

    fs::rename(c.root().join("big"), c.root().join("big-renamed")).unwrap();
    let started = Instant::now();
    let report = c.commit();
    assert_eq!(
        report.renamed, BIG_FILES,
        "C's commit sees {BIG_FILES} renames"
    );
    println!(
        "C committed the rename in {:.2} s: {} renamed, {} files / {} read (not part of any figure)",
        secs(started.elapsed()),
        report.renamed,
        report.files_read,
        kib(report.bytes_read)
    );

    let run = sync_once(rt, &d, &server);
    run.print("4. D syncs after C renamed big/ to big-renamed/");
    let moved: usize = run.reports.iter().map(|r| r.applied.moved).sum();
    println!("  moved in D's working tree: {moved}");
    for r in &run.reports {
        for s in &r.applied.skipped {
            println!("  not applied: {s}");
        }
    }
    let renamed = d.root().join("big-renamed");
    let listed = fs::read_dir(&renamed)
        .map(|dir| dir.count())
        .unwrap_or_else(|e| panic!("D has no big-renamed/ after the sync: {e}"));
    assert_eq!(
        listed, BIG_FILES,
        "D's big-renamed/ holds {listed} entries, not {BIG_FILES}"
    );
    for f in 0..BIG_FILES {
        let path = renamed.join(format!("file-{f:02}.bin"));
        let len = fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert_eq!(len, BIG_SIZE as u64, "{}", path.display());
    }
    assert!(
        !d.root().join("big").exists(),
        "D's working tree still has big/ after the sync"
    );
    println!("  checked: D has big-renamed/ with the {BIG_FILES} files, and no big/");
    let t = secs(run.total());
    rows.push(Row {
        what: format!("4. {total_mib} MiB folder rename, time"),
        target: "< 0.2 s (Unison 3.9 s, Syncthing 0.58 s)".into(),
        measured: format!("{t:.3} s"),
        met: Some(t < 0.2),
    });
    rows.push(Row {
        what: format!("4. {total_mib} MiB folder rename, bytes"),
        target: "< 16 KiB (rsync 513 MiB, Unison 15 KiB, Syncthing 356 KiB)".into(),
        measured: format!("{} B", run.wire),
        met: Some(run.wire < 16 * 1024),
    });
    drop(server);
    // The locations (1 GiB) are removed here, on drop.
}

fn summary(rows: &[Row], count: usize) {
    println!("\n## summary (N = {count})");
    println!("{:<36} {:<58} {:<28} ok", "scenario", "target", "measured");
    for row in rows {
        let ok = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "{:<36} {:<58} {:<28} {ok}",
            row.what, row.target, row.measured
        );
    }
    println!(
        "\nissue's figures on this machine: no-change pass over 20,000 files: rsync 0.30 s / 269 KiB, Unison 0.37 s / 10 KiB;"
    );
    println!(
        "512 MiB folder rename: rsync 513 MiB, Unison 3.9 s / 15 KiB, Syncthing 0.58 s / 356 KiB"
    );
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}
