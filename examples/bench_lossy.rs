//! A sync and a get through the test suite's UDP relay (loopback, one-way
//! delay, random loss, duplicates, reordering, a blackout), with each
//! congestion controller: the figures of issue #14 ("Bad networks") and the
//! choice of the default controller.
//!
//! ```text
//! cargo run --release --example bench_lossy [-- --mib 16 --entries 5000 --delay-ms 25
//!     --loss 0,0.001,0.01,0.02 --cc bypath,cubic,bbr
//!     --duplicate 0 --reorder 0 --blackout-s 0]
//! ```
//!
//! Location a holds one file of `--mib` MiB and `--entries` small files; for
//! every loss rate and controller, a fresh location b syncs with a through
//! the relay (timed), then gets the large file (timed, checked against a's
//! bytes). `--duplicate` and `--reorder` are shares of datagrams (as
//! `--loss`); `--blackout-s` cuts the link that long, 300 datagrams into the
//! sync and into the get. "close" is the client endpoint's shutdown after
//! the sync, which `harmony sync` waits for too.
//! Both nodes use the controller, set as a user would, through
//! `HARMONY_CONGESTION`. Both sides and the relay share this process's two
//! cores: the relay spends a task per datagram, so clean-link figures here
//! are lower than over plain loopback (see `bench_get` for those).

use std::path::Path;
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;
#[allow(dead_code)] // the relay's cut switch and counters
#[path = "../tests/support/relay.rs"]
mod relay;
#[path = "common/serving.rs"]
mod serving;

use common::{random_bytes, secs, write_old};
use harmony::model::RepoPath;
use harmony::net::{Congestion, Node};
use harmony::node::{NodeSetup, PlannedGet};
use harmony::scan::NoProgress;
use harmony::store::PeerRecord;
use harmony::sync::sync_with;
use harmony::transfer::Holders;
use harmony::Repo;
use relay::{Faults, Relay};
use serving::{serve, Location, Served};

const BIG: &str = "big.bin";
/// Datagrams through before a blackout: past the handshake.
const BLACKOUT_AFTER: u64 = 300;

struct Args {
    mib: usize,
    entries: usize,
    delay: Duration,
    losses: Vec<f64>,
    controllers: Vec<String>,
    duplicate: f64,
    reorder: f64,
    blackout: Duration,
}

fn args() -> Args {
    let mut args = Args {
        mib: 16,
        entries: 5000,
        delay: Duration::from_millis(25),
        losses: vec![0.0, 0.001, 0.01, 0.02],
        controllers: vec!["bypath".into(), "cubic".into(), "bbr".into()],
        duplicate: 0.0,
        reorder: 0.0,
        blackout: Duration::ZERO,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--mib" => args.mib = value.parse().expect("--mib N"),
            "--entries" => args.entries = value.parse().expect("--entries N"),
            "--delay-ms" => args.delay = Duration::from_millis(value.parse().expect("ms")),
            "--loss" => {
                args.losses = value
                    .split(',')
                    .map(|l| l.parse().expect("--loss 0.01,0.02"))
                    .collect()
            }
            "--cc" => args.controllers = value.split(',').map(str::to_owned).collect(),
            "--duplicate" => args.duplicate = value.parse().expect("--duplicate 0.01"),
            "--reorder" => args.reorder = value.parse().expect("--reorder 0.01"),
            "--blackout-s" => {
                args.blackout = Duration::from_secs_f64(value.parse().expect("--blackout-s 5"))
            }
            other => panic!("unknown argument {other}"),
        }
    }
    for cc in &args.controllers {
        Congestion::parse(cc).unwrap_or_else(|| panic!("unknown controller {cc}"));
    }
    args
}

fn main() {
    // RUST_LOG=harmony=debug shows the phases of each run.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = tempfile::tempdir().unwrap();
    let a = Location::new(base.path(), "a");
    let big = random_bytes(args.mib << 20, 7);
    write_old(&a.root().join(BIG), &big);
    for i in 0..args.entries {
        let path = a.root().join(format!("small/d{:03}/f{i:05}", i / 100));
        write_old(&path, format!("small file {i}").as_bytes());
    }
    a.commit();
    let want = blake3::hash(&big);
    println!(
        "relay: {} ms one way, {}% duplicated, {}% reordered, blackout {} s; sync of {} entries, get of {} MiB",
        args.delay.as_millis(),
        args.duplicate * 100.0,
        args.reorder * 100.0,
        secs(args.blackout),
        args.entries + 1,
        args.mib
    );
    println!(
        "{:>6} {:>7} | {:>8} {:>8} | {:>8} {:>9} | result",
        "loss", "cc", "sync s", "close s", "get s", "get MB/s"
    );
    for &loss in &args.losses {
        for cc in &args.controllers {
            // Read by every NodeConfig::new below, as `harmony` reads it.
            std::env::set_var(Congestion::ENV, cc);
            let faults = Faults {
                delay: args.delay,
                loss,
                duplicate: args.duplicate,
                reorder: args.reorder,
            };
            let run = run_once(&rt, base.path(), &a, faults, args.blackout);
            let result = match &run {
                Ok(run) if run.got == Some(want) && args.blackout.is_zero() => "ok".to_owned(),
                Ok(run) if run.got == Some(want) => {
                    format!("ok, {} datagrams lost in blackouts", run.cut_off)
                }
                Ok(_) => "WRONG BYTES".to_owned(),
                Err(why) => why.clone(),
            };
            let run = run.unwrap_or_default();
            println!(
                "{:>5.1}% {:>7} | {:>8.2} {:>8.2} | {:>8.2} {:>9.2} | {result}",
                loss * 100.0,
                cc,
                secs(run.sync),
                secs(run.closing),
                secs(run.get),
                (args.mib << 20) as f64 / secs(run.get).max(1e-9) / 1e6
            );
        }
    }
}

fn client_node(root: &Path) -> Node {
    NodeSetup::open(root, "127.0.0.1:0".parse().unwrap())
        .unwrap()
        .bind_client()
        .unwrap()
}

/// What one run took.
#[derive(Default)]
struct Run {
    /// Connecting and the sync session.
    sync: Duration,
    /// The client endpoint's shutdown after the sync (QUIC's draining
    /// period, at most 2 s): part of what `harmony sync` takes.
    closing: Duration,
    get: Duration,
    got: Option<blake3::Hash>,
    /// Datagrams the blackouts dropped (none: they missed the traffic).
    cut_off: u64,
}

/// A fresh location syncs with `a` through a relay with `loss`, then gets
/// the large file: the times and the bytes it got.
fn run_once(
    rt: &tokio::runtime::Runtime,
    base: &Path,
    a: &Location,
    faults: Faults,
    blackout: Duration,
) -> Result<Run, String> {
    let b = Location::new(base, "b");
    let served: Served = serve(rt, a, &[&b]);
    rt.block_on(async {
        let relay = Relay::start(served.addr, faults, 5).await;
        if !blackout.is_zero() {
            relay.blackout(BLACKOUT_AFTER, blackout);
        }
        let root = b.root();
        let started = Instant::now();
        let node = client_node(&root);
        let conn = node
            .connect(relay.addr, served.id, &served.name)
            .await
            .map_err(|e| e.to_string())?;
        sync_with(&conn, root.clone())
            .await
            .map_err(|e| e.to_string())?;
        let sync = started.elapsed();
        conn.close();
        node.shutdown().await;
        let closing = started.elapsed() - sync;

        let started = Instant::now();
        if !blackout.is_zero() {
            relay.blackout(BLACKOUT_AFTER, blackout);
        }
        let repo = Repo::open(&root).unwrap();
        let planned = PlannedGet::new(&repo, Some(&[RepoPath::new(BIG).unwrap()]))
            .map_err(|e| e.to_string())?;
        let record = PeerRecord {
            name: served.name.clone(),
            node_id: served.id,
            addr: relay.addr.to_string(),
            added_ms: 0,
        };
        let mut holders = Holders::new(client_node(&root), vec![record]);
        let report = planned
            .run(&mut holders, std::sync::Arc::new(NoProgress))
            .await
            .map_err(|e| e.to_string())?;
        holders.close().await;
        let get = started.elapsed();
        if !report.failed.is_empty() {
            return Err(report.failed.join("; "));
        }
        let got = Some(blake3::hash(
            &std::fs::read(root.join(BIG)).map_err(|e| e.to_string())?,
        ));
        Ok(Run {
            sync,
            closing,
            get,
            got,
            cut_off: relay.cut_off(),
        })
    })
}
