//! Benchmark of the bandwidth limit (`bandwidth_limit` in config.toml): a
//! get of one file between two in-process locations over QUIC on
//! 127.0.0.1, unlimited, then limited on the serving side (what it sends)
//! and on the getting side (what it receives), each achieved rate printed
//! next to its limit.
//!
//! ```text
//! cargo run --release --example bench_limit [-- --mib 64] [--limits 1,10,50] [--dir PATH]
//! ```
//!
//! The rates are MiB/s; the achieved rate is the file's bytes over the
//! get's wall time (plan, connect, manifest and install included), so it
//! runs a little under the limit, and over it by at most the burst (a
//! quarter second of the rate, at least 128 KiB) divided by the time.

use std::path::PathBuf;
use std::time::Instant;

#[path = "common/mod.rs"]
mod common;
#[path = "common/serving.rs"]
mod serving;

use harmony::node::{sync_until_settled, NodeSetup, PlannedGet};
use harmony::store::PeerRecord;
use harmony::transfer::{Holders, RateLimit};
use serving::{serve_routed, Location, Served};
use tokio::runtime::Runtime;

const MIB: u64 = 1 << 20;

fn main() {
    let (mut mib, mut limits, mut dir) = (64u64, vec![1u64, 10, 50], None);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--mib" => mib = value().parse().expect("--mib N"),
            "--limits" => {
                limits = value()
                    .split(',')
                    .map(|n| n.parse().expect("--limits N,N,..."))
                    .collect()
            }
            "--dir" => dir = Some(PathBuf::from(value())),
            other => panic!("unknown argument {other}"),
        }
    }
    let base = dir.unwrap_or_else(std::env::temp_dir);
    let rt = Runtime::new().unwrap();
    let a = Location::new(&base, "a");
    common::write_old(
        &a.root().join("big.bin"),
        &common::random_bytes((mib * MIB) as usize, 1),
    );
    a.commit();
    println!("a get of one file of {mib} MiB over QUIC on 127.0.0.1");
    println!(
        "{:<10} {:>10} {:>12} {:>9}",
        "limited", "limit", "achieved", "of limit"
    );
    let mut runs = vec![("nothing", None)];
    for &l in &limits {
        runs.push(("sending", Some(l)));
        runs.push(("receiving", Some(l)));
    }
    for (side, limit) in runs {
        let rate = limit.map(|l| l * MIB);
        let sending = RateLimit::new(rate.filter(|_| side == "sending"));
        let receiving = RateLimit::new(rate.filter(|_| side == "receiving"));
        let b = Location::new(&base, "b");
        let served = serve_routed(&rt, &a, &[&b], |r| r.rate_limit(sending));
        let took = rt.block_on(async {
            sync(&b, &served).await;
            let planned = PlannedGet::new(&b.repo(), Some(&[])).unwrap();
            let started = Instant::now();
            let mut holders = holders(&b, &served).rate_limit(receiving);
            let report = planned
                .run(&mut holders, std::sync::Arc::new(harmony::scan::NoProgress))
                .await
                .unwrap();
            let took = started.elapsed();
            holders.close().await;
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            assert_eq!(report.bytes_fetched, mib * MIB);
            took
        });
        let achieved = (mib * MIB) as f64 / took.as_secs_f64() / MIB as f64;
        match limit {
            None => println!("{side:<10} {:>10} {achieved:>7.1} MiB/s", "-"),
            Some(l) => println!(
                "{side:<10} {l:>4} MiB/s {achieved:>7.2} MiB/s {:>8.1}%",
                achieved / l as f64 * 100.0
            ),
        }
    }
}

fn client(root: &std::path::Path) -> harmony::net::Node {
    NodeSetup::open(root, "127.0.0.1:0".parse().unwrap())
        .unwrap()
        .bind_client()
        .unwrap()
}

async fn sync(loc: &Location, peer: &Served) {
    let node = client(&loc.root());
    let conn = node.connect(peer.addr, peer.id, &peer.name).await.unwrap();
    sync_until_settled(&conn, &loc.root()).await.1.unwrap();
    conn.close();
    node.shutdown().await;
}

fn holders(loc: &Location, peer: &Served) -> Holders {
    let record = PeerRecord {
        name: peer.name.clone(),
        node_id: peer.id,
        addr: peer.addr.to_string(),
        added_ms: 0,
    };
    Holders::new(client(&loc.root()), vec![record])
}
