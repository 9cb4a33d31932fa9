//! Benchmark of content transfer (`harmony get`) between two in-process
//! locations over QUIC on 127.0.0.1, through the library as `harmony get`
//! does it (`node::PlannedGet`, a client node, `Holders`) from a
//! location served by `node::Router`, printed beside two limits measured in
//! the same run — a bare quinn transfer from memory, and the same bare quinn
//! doing only the work any verified get must do (read, hash each chunk and
//! each whole file, write; no fsync: `common/verified_floor.rs`) — and
//! the figures the issue quotes for rsync, Unison and Syncthing here.
//!
//! ```text
//! cargo run --release --example bench_get [-- --dir /path/with/2.5GiB/free] [--only N]
//! ```
//!
//! Scenarios (datasets shaped like `peers/dataset.sh`, generated in process
//! with xorshift, fixed old mtimes):
//! 1. 1 GiB in 16 files of 64 MiB to a location that synced but holds none;
//! 2. 20,000 files of 4 KiB to an empty location (sync + get timed);
//! 3. 100 bytes inserted at 32 MiB into one of the 64 MiB files, which the
//!    getting side holds in its previous version;
//! 4. a 256 MiB get aborted at ~50% (recorded progress), then resumed.
//!
//! Scenario 2 creates 40,000 inodes; run within minutes of deleting many
//! files on an ext4 without a journal (as `/tmp` is on the project's
//! machine; e.g. right after another run of this bench), it takes 2-3x
//! longer, spent in the kernel skipping recently freed inodes on every
//! create (`perf`: `find_inode_bit` / `recently_deleted`).
//!
//! Bytes on the wire are the UDP bytes (both ways, handshake included) of the
//! connection `Holders` opens: the bench asks `Holders::conn` for it first,
//! keeps a handle, and reads its stats after the get. Peak RSS is VmHWM
//! reset through /proc/self/clear_refs before the timed part; the serving
//! side runs in the same process, so it counts both sides.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

#[path = "common/mod.rs"]
mod common;
#[path = "common/raw_quinn.rs"]
mod raw_quinn;
#[path = "common/serving.rs"]
mod serving;
#[path = "common/verified_floor.rs"]
mod verified_floor;

use common::{reset_peak_rss, rss, secs};
use harmony::model::RepoPath;
use harmony::net::{Identity, Node, PeerConnection};
use harmony::node::{sync_until_settled, NodeSetup, PlannedGet};
use harmony::store::PeerRecord;
use harmony::transfer::{GetReport, Holders, TransferProgress};
use raw_quinn::{bare_quinn, localhost};
use serving::{serve, Location, Served};
use tokio::runtime::Runtime;
use verified_floor::verified_quinn;

const MIB: usize = 1 << 20;
const MTIME: u64 = 1_700_000_000;

/// One row of the final summary.
struct Row {
    what: String,
    target: String,
    measured: String,
    peers: String,
    met: Option<bool>,
}

fn main() {
    let mut dir = None;
    // --only N: scenario N alone (3 needs 1's data and runs with it).
    let mut only: Option<u32> = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dir" => dir = Some(PathBuf::from(it.next().expect("--dir PATH"))),
            "--only" => only = Some(it.next().and_then(|n| n.parse().ok()).expect("--only N")),
            other => panic!("unknown argument {other}"),
        }
    }
    let base = dir.unwrap_or_else(std::env::temp_dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "# harmony get benchmark ({} cores, QUIC on 127.0.0.1, both sides in one process)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut rows = Vec::new();
    let runs = |n: u32| only.is_none_or(|o| o == n);
    if runs(1) || runs(3) {
        let raw = raw_quinn(&rt, &base);
        media_and_edit(&rt, &base, raw, &mut rows);
    }
    if runs(2) {
        small_files(&rt, &base, &mut rows);
    }
    if runs(4) {
        resume(&rt, &base, &mut rows);
    }
    summary(&rows);
}

// ---------------------------------------------------------------- locations

fn client_node(root: &Path) -> Node {
    NodeSetup::open(root, localhost())
        .unwrap()
        .bind_client()
        .unwrap()
}

/// One `harmony sync` of `loc` with `peer`: commit, connect, sessions while
/// the last one left news. Returns its wall time.
fn sync_once(rt: &Runtime, loc: &Location, peer: &Served) -> Duration {
    let started = Instant::now();
    loc.commit();
    let root = loc.root();
    rt.block_on(async {
        let node = client_node(&root);
        let conn = node.connect(peer.addr, peer.id, &peer.name).await.unwrap();
        sync_until_settled(&conn, &root).await.1.unwrap();
        let took = started.elapsed();
        conn.close();
        node.shutdown().await;
        took
    })
}

/// Holders for `loc` knowing `peer`, and a handle on the connection they
/// will use (opened now, so its UDP counters cover the whole get).
async fn holders_for(loc: &Location, peer: &Served) -> (Holders, PeerConnection) {
    let record = PeerRecord {
        name: peer.name.clone(),
        node_id: peer.id,
        addr: peer.addr.to_string(),
        added_ms: 0,
    };
    let mut holders = Holders::new(client_node(&loc.root()), vec![record]);
    let conn = holders.conn(peer.id).await.unwrap();
    (holders, conn)
}

/// What one `harmony get` cost.
struct GetRun {
    /// Locking the location and planning (`node::PlannedGet::new`).
    plan: Duration,
    connect: Duration,
    get: Duration,
    wire: u64,
    report: GetReport,
    peak: String,
    peak_kib: u64,
    timeline: Arc<Timeline>,
    cpu: Duration,
}

impl GetRun {
    fn total(&self) -> Duration {
        self.plan + self.connect + self.get
    }

    fn print(&self, label: &str) {
        let r = &self.report;
        println!(
            "{label}: {:.3} s = plan {:.3} + bind/connect {:.3} + get {:.3}",
            secs(self.total()),
            secs(self.plan),
            secs(self.connect),
            secs(self.get)
        );
        println!(
            "  files {}, failed {}, fetched {} B ({}), reused {} B ({}); on the wire {} B ({}, UDP both ways incl. handshake); peak RSS {}",
            r.files,
            r.failed.len(),
            r.bytes_fetched,
            human(r.bytes_fetched),
            r.bytes_reused,
            human(r.bytes_reused),
            self.wire,
            human(self.wire),
            self.peak
        );
        println!(
            "  CPU during transfer::get (both sides, user + system): {:.2} s = {:.0}% of one core, {:.0}% of the {} cores",
            secs(self.cpu),
            secs(self.cpu) / secs(self.get) * 100.0,
            secs(self.cpu) / secs(self.get) * 100.0 / cores() as f64,
            cores()
        );
        for f in r.failed.iter().take(5) {
            println!("  failed: {f}");
        }
    }
}

/// `harmony get` on `loc` from `peer`: everything (`all`) or the files held
/// here in an older version.
fn get_all(rt: &Runtime, loc: &Location, peer: &Served, all: bool) -> GetRun {
    rt.block_on(async {
        reset_peak_rss();
        let before = rss("VmRSS:");
        let started = Instant::now();
        // A get aborted just before (scenario 4) still finishes installing
        // on its own threads, holding the location for a moment.
        let planned = loop {
            match PlannedGet::new(&loc.repo(), all.then_some(&[][..])) {
                Err(harmony::Error::GetRunning(_)) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                other => break other.unwrap(),
            }
        };
        let plan_t = started.elapsed();
        let started = Instant::now();
        let (mut holders, conn) = holders_for(loc, peer).await;
        let connect = started.elapsed();
        let cpu_before = cpu_time();
        let timeline = Arc::new(Timeline {
            start: Instant::now(),
            marks: Default::default(),
        });
        let report = planned.run(&mut holders, timeline.clone()).await.unwrap();
        let get_t = timeline.start.elapsed();
        let cpu = cpu_time().saturating_sub(cpu_before);
        let stats = conn.connection().stats();
        let peak = format!("{} (RSS before: {before})", rss("VmHWM:"));
        let peak_kib = peak_kib();
        drop(conn);
        holders.close().await;
        GetRun {
            plan: plan_t,
            connect,
            get: get_t,
            wire: stats.udp_tx.bytes + stats.udp_rx.bytes,
            report,
            peak,
            peak_kib,
            timeline,
            cpu,
        }
    })
}

// ------------------------------------------------------------- raw quinn

/// The machine's limit: bare quinn, 1 GiB, median of 3. Returns MB/s.
fn raw_quinn(rt: &Runtime, base: &Path) -> f64 {
    let dir = tempfile::tempdir_in(base).unwrap();
    let id = Identity::create(dir.path()).unwrap();
    let len = 1u64 << 30;
    let cpu_before = cpu_time();
    let started = Instant::now();
    let runs: Vec<f64> = (0..3)
        .map(|_| mb_s(len, rt.block_on(bare_quinn(&id, len)).unwrap()))
        .collect();
    let cpu = secs(cpu_time().saturating_sub(cpu_before)) / secs(started.elapsed());
    println!(
        "  CPU during the 3 transfers: {:.0}% of one core ({:.0}% of the {} cores)",
        cpu * 100.0,
        cpu * 100.0 / cores() as f64,
        cores()
    );
    median(
        "machine limit: bare quinn, one connection, one stream, 1 GiB from memory",
        runs,
    )
}

/// Prints `runs` (MB/s) under `heading` and returns their median.
fn median(heading: &str, mut runs: Vec<f64>) -> f64 {
    let listed: Vec<String> = runs.iter().map(|r| format!("{r:.1}")).collect();
    println!("\n## {heading}: {} MB/s", listed.join(", "));
    runs.sort_by(f64::total_cmp);
    let median = runs[runs.len() / 2];
    println!("  median {median:.1} MB/s");
    median
}

/// The machine's limit for a verified get of A's media files
/// (see `common/verified_floor.rs`), median of 3. Returns MB/s.
fn verified_floor(rt: &Runtime, base: &Path, a: &Location) -> f64 {
    let dir = tempfile::tempdir_in(base).unwrap();
    let id = Identity::create(dir.path()).unwrap();
    let files: Vec<(PathBuf, blake3::Hash)> = (0..MEDIA_FILES)
        .map(|i| {
            let path = a.root().join(media_path(i));
            let hash = blake3::hash(&fs::read(&path).unwrap());
            (path, hash)
        })
        .collect();
    let total = (MEDIA_FILES * MEDIA_SIZE) as u64;
    let runs: Vec<f64> = (0..3)
        .map(|_| {
            let out = tempfile::tempdir_in(base).unwrap();
            mb_s(
                total,
                rt.block_on(verified_quinn(&id, &files, out.path()))
                    .unwrap(),
            )
        })
        .collect();
    median(
        "machine limit for a verified get: the same bare quinn carrying A's files from disk, 32 KiB pieces each blake3-checked, whole files hashed, written (no fsync)",
        runs,
    )
}

// ------------------------------------------------------------- scenarios

const MEDIA_FILES: usize = 16;
const MEDIA_SIZE: usize = 64 * MIB;

fn media_path(i: usize) -> String {
    format!("m{}/f{i:02}.bin", i / 8)
}

fn media_and_edit(rt: &Runtime, base: &Path, raw: f64, rows: &mut Vec<Row>) {
    println!("\n## 1. 1 GiB in {MEDIA_FILES} files of 64 MiB: A serves, B synced (untimed), B gets everything");
    let a = Location::new(base, "a");
    let b = Location::new(base, "b");
    let mut block = vec![0u8; MEDIA_SIZE];
    for i in 0..MEDIA_FILES {
        fill_random(&mut block, 1000 + i as u64);
        write_old(&a.root().join(media_path(i)), &block, MTIME);
    }
    drop(block);
    let started = Instant::now();
    a.commit();
    println!("A committed in {:.2} s (untimed)", secs(started.elapsed()));
    let floor = verified_floor(rt, base, &a);
    let server = serve(rt, &a, &[&b]);
    let t = sync_once(rt, &b, &server);
    println!("B's first sync {:.3} s (untimed)", secs(t));
    let run = get_all(rt, &b, &server, true);
    run.print("1. get 1 GiB");
    let total = (MEDIA_FILES * MEDIA_SIZE) as u64;
    assert_eq!(run.report.files, MEDIA_FILES);
    assert_eq!(run.report.bytes_fetched, total);
    let rate_get = mb_s(total, run.get);
    let rate_all = mb_s(total, run.total());
    println!(
        "  {rate_all:.1} MB/s over the whole get ({rate_get:.1} MB/s over transfer::get alone); raw quinn {raw:.1} MB/s; ratio {:.2} ({:.2}); verified floor {floor:.1} MB/s; ratio {:.2}",
        rate_all / raw,
        rate_get / raw,
        rate_all / floor
    );
    let (receiving, between) = run.timeline.split(MEDIA_SIZE as u64);
    println!(
        "  phases of transfer::get (from its progress calls): receiving chunks {:.3} s ({:.1} MB/s while receiving), between files {:.3} s (gaps in the progress at file boundaries, {:.1} ms per file), rest {:.3} s",
        secs(receiving),
        mb_s(total, receiving),
        secs(between),
        secs(between) * 1e3 / MEDIA_FILES as f64,
        secs(run.get.saturating_sub(receiving + between))
    );
    println!(
        "  wire overhead {:.2}% over the content",
        (run.wire as f64 / total as f64 - 1.0) * 100.0
    );
    let peak_kib = run.peak_kib;
    rows.push(Row {
        what: "1. 1 GiB / 16 files, throughput".into(),
        target: ">= 90% of raw quinn".into(),
        measured: format!(
            "{:.2} s, {rate_all:.0} MB/s = {:.0}% of {raw:.0}",
            secs(run.total()),
            rate_all / raw * 100.0
        ),
        peers: "rsync 1.32 s, Unison 5.95 s, Syncthing 4.06 s".into(),
        met: Some(rate_all >= 0.9 * raw),
    });
    rows.push(Row {
        what: "1. the same, against the verified floor".into(),
        target: "- (the floor is this machine's limit)".into(),
        measured: format!(
            "{:.0}% of {floor:.0} MB/s (floor = {:.0}% of raw quinn)",
            rate_all / floor * 100.0,
            floor / raw * 100.0
        ),
        peers: "-".into(),
        met: None,
    });
    rows.push(Row {
        what: "1. 1 GiB / 16 files, peak RSS".into(),
        target: "< 128 MiB".into(),
        measured: format!("{:.1} MiB", peak_kib as f64 / 1024.0),
        peers: "-".into(),
        met: Some(peak_kib < 128 * 1024),
    });

    // 3. Insert 100 bytes at 32 MiB into f03 (B holds it from the get above).
    println!(
        "\n## 3. 100 bytes inserted at offset 32 MiB of the 64 MiB {}, held by B",
        media_path(3)
    );
    let path = a.root().join(media_path(3));
    let mut bytes = fs::read(&path).unwrap();
    bytes.splice(32 * MIB..32 * MIB, [0x5au8; 100]);
    write_old(&path, &bytes, MTIME + 3600);
    drop(bytes);
    a.commit();
    let t = sync_once(rt, &b, &server);
    println!("B's sync after A's commit {:.3} s (untimed)", secs(t));
    let run = get_all(rt, &b, &server, false);
    run.print("3. get the edited file");
    assert_eq!(run.report.files, 1);
    let repo = a.repo();
    let rel = RepoPath::new(&media_path(3)).unwrap();
    let chunks = repo
        .store()
        .local_manifests()
        .unwrap()
        .into_iter()
        .find(|(f, _)| f.path == rel)
        .map(|(_, m)| m.chunks.len())
        .unwrap_or(0);
    println!(
        "  the whole manifest would be {chunks} chunks x ~36 B = {}; sent instead: the page index, the changed page, the changed chunk's sub-chunk list; content bytes fetched {}",
        human(chunks as u64 * 36),
        human(run.report.bytes_fetched),
    );
    rows.push(Row {
        what: "3. 100 B insert in 64 MiB, bytes".into(),
        target: "< 64 KiB on the wire incl. manifest".into(),
        measured: format!(
            "wire {} (content {}, rest: handshake, index, page, sub-chunk list)",
            human(run.wire),
            human(run.report.bytes_fetched),
        ),
        peers: "rsync 91 KiB, Unison 84 KiB, Syncthing 176 KiB".into(),
        met: Some(run.wire < 64 * 1024),
    });
    rows.push(Row {
        what: "3. 100 B insert in 64 MiB, time".into(),
        target: "-".into(),
        measured: format!("{:.3} s", secs(run.total())),
        peers: "-".into(),
        met: None,
    });
    drop(server);
}

fn small_files(rt: &Runtime, base: &Path, rows: &mut Vec<Row>) {
    const COUNT: usize = 20_000;
    println!("\n## 2. {COUNT} files of 4 KiB to an empty location: B's sync + get timed");
    let a = Location::new(base, "a");
    let b = Location::new(base, "b");
    let mut all = vec![0u8; COUNT * 4096];
    fill_random(&mut all, 7);
    for (i, bytes) in all.chunks(4096).enumerate() {
        let path = a
            .root()
            .join(format!("s{:02}/f{:03}.bin", i / 200, i % 200));
        write_old(&path, bytes, MTIME);
    }
    drop(all);
    let started = Instant::now();
    a.commit();
    println!("A committed in {:.2} s (untimed)", secs(started.elapsed()));
    let server = serve(rt, &a, &[&b]);
    let sync_t = sync_once(rt, &b, &server);
    let run = get_all(rt, &b, &server, true);
    println!(
        "B's sync (commit + connect + sessions) {:.3} s",
        secs(sync_t)
    );
    run.print("2. get 20,000 files");
    assert_eq!(run.report.files, COUNT);
    let total = sync_t + run.total();
    println!(
        "  {:.0} us per file in transfer::get (see the report for where it goes)",
        secs(run.get) * 1e6 / COUNT as f64
    );
    println!(
        "  sync + get {:.3} s; {:.0} files/s over the get",
        secs(total),
        COUNT as f64 / secs(run.get)
    );
    rows.push(Row {
        what: "2. 20,000 x 4 KiB, sync + get".into(),
        target: "< 4 s".into(),
        measured: format!(
            "{:.2} s (sync {:.2} + get {:.2})",
            secs(total),
            secs(sync_t),
            secs(run.total())
        ),
        peers: "rsync 4.05 s, Unison 9.82 s, Syncthing 22.4 s".into(),
        met: Some(secs(total) < 4.0),
    });
    drop(server);
}

/// Counts the bytes a get reports as advanced.
#[derive(Default)]
struct Counter(AtomicU64);

impl TransferProgress for Counter {
    fn start(&self, _: u64, _: u64) {}
    fn advance(&self, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::SeqCst);
    }
}

/// Records when each byte count was reached, to split a get of equal-sized
/// files into receiving time and time between files (verify, fsync,
/// install, next manifest).
struct Timeline {
    start: Instant,
    marks: std::sync::Mutex<Vec<(Duration, u64)>>,
}

impl TransferProgress for Timeline {
    fn start(&self, _: u64, _: u64) {}
    fn advance(&self, bytes: u64) {
        let mut marks = self.marks.lock().unwrap();
        let total = marks.last().map_or(0, |m| m.1) + bytes;
        marks.push((self.start.elapsed(), total));
    }
}

impl Timeline {
    /// (time receiving, time between files) for files of `size` bytes.
    fn split(&self, size: u64) -> (Duration, Duration) {
        let marks = self.marks.lock().unwrap();
        let (mut receiving, mut between) = (Duration::ZERO, Duration::ZERO);
        let mut file_start = Duration::ZERO;
        let mut prev = (Duration::ZERO, 0u64);
        for &(at, total) in marks.iter() {
            // The first mark of a file: the time since the previous file's
            // last mark went to finishing it, opening this one and its first
            // request.
            if prev.1 % size == 0 {
                between += at - prev.0;
                file_start = at;
            }
            if total % size == 0 {
                receiving += at - file_start;
            }
            prev = (at, total);
        }
        (receiving, between)
    }
}

fn resume(rt: &Runtime, base: &Path, rows: &mut Vec<Row>) {
    const SIZE: usize = 256 * MIB;
    println!("\n## 4. 256 MiB get aborted once ~50% of the bytes arrived, then resumed");
    let a = Location::new(base, "a");
    let b = Location::new(base, "b");
    let mut bytes = vec![0u8; SIZE];
    fill_random(&mut bytes, 4242);
    write_old(&a.root().join("video.bin"), &bytes, MTIME);
    drop(bytes);
    a.commit();
    let server = serve(rt, &a, &[&b]);
    sync_once(rt, &b, &server);
    let counter = Arc::new(Counter::default());
    let (received1, wire1, first_t) = rt.block_on(async {
        let planned = PlannedGet::new(&b.repo(), Some(&[])).unwrap();
        let (mut holders, conn) = holders_for(&b, &server).await;
        let started = Instant::now();
        let task = {
            let counter = counter.clone();
            tokio::spawn(async move {
                let report = planned.run(&mut holders, counter).await;
                holders.close().await;
                report
            })
        };
        while counter.0.load(Ordering::SeqCst) < SIZE as u64 / 2 && !task.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        task.abort();
        let ended = task.await;
        let took = started.elapsed();
        assert!(
            ended.as_ref().is_err_and(|e| e.is_cancelled()),
            "the first get ended before the abort"
        );
        let received = counter.0.load(Ordering::SeqCst);
        let stats = conn.connection().stats();
        conn.close();
        (received, stats.udp_rx.bytes + stats.udp_tx.bytes, took)
    });
    println!(
        "first get aborted after {:.3} s: {} received and checked (progress), {} on the wire",
        secs(first_t),
        human(received1),
        human(wire1)
    );
    let run = get_all(rt, &b, &server, true);
    run.print("4. resumed get");
    assert_eq!(run.report.files, 1);
    let size = SIZE as u64;
    let missing = size - received1.min(size);
    let refetched = run.report.bytes_fetched.saturating_sub(missing);
    let pct = refetched as f64 / size as f64 * 100.0;
    println!(
        "  missing at the abort (256 MiB - received) {}; second get fetched {}, reused {}; re-fetched {} = {pct:.2}% of the file",
        human(missing),
        human(run.report.bytes_fetched),
        human(run.report.bytes_reused),
        human(refetched)
    );
    assert_eq!(
        fs::read(b.root().join("video.bin")).unwrap().len(),
        SIZE,
        "the resumed file is whole"
    );
    rows.push(Row {
        what: "4. resume 256 MiB after abort at ~50%".into(),
        target: "re-fetched < 5%".into(),
        measured: format!("{} = {pct:.2}%", human(refetched)),
        peers: "-".into(),
        met: Some(pct < 5.0),
    });
    drop(server);
}

fn summary(rows: &[Row]) {
    println!("\n## summary");
    println!(
        "{:<40} {:<38} {:<58} {:<48} ok",
        "scenario", "target", "measured", "peers (this machine)"
    );
    for row in rows {
        let ok = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "{:<40} {:<38} {:<58} {:<48} {ok}",
            row.what, row.target, row.measured, row.peers
        );
    }
}

// ------------------------------------------------------------- helpers

/// CPU time used by this process so far (user + system, both sides).
fn cpu_time() -> Duration {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the
    // 12th, stime the 13th; in clock ticks of 1/100 s.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The last VmHWM, in KiB.
fn peak_kib() -> u64 {
    rss("VmHWM:")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(u64::MAX)
}

fn human(bytes: u64) -> String {
    if bytes >= 10 << 20 {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn mb_s(len: u64, d: Duration) -> f64 {
    len as f64 / d.as_secs_f64() / 1e6
}

/// Deterministic incompressible bytes (xorshift64).
fn fill_random(out: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for word in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes()[..word.len()]);
    }
}

fn write_old(path: &Path, bytes: &[u8], mtime: u64) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, bytes).unwrap();
    let file = fs::File::options().write(true).open(path).unwrap();
    file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime))
        .unwrap();
}
