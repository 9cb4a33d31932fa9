//! Untrusted handshakes against a real `harmony serve` (issue #14, "Limits
//! in serve"): how many a second it refuses, and what they cost a trusted
//! peer's `get` meanwhile.
//!
//! ```text
//! cargo build --release --bin harmony --example bench_refuse
//! target/release/examples/bench_refuse [--mib 256] [--attackers 8]
//! ```
//!
//! Location A serves (`harmony serve --no-watch --no-live`) one file of
//! `--mib` MiB; B trusts A, synced, and fetches the file with `harmony get`,
//! first alone, then while `--attackers` tasks in this process connect to A
//! again and again with nodes A does not trust. Each attempt is a full QUIC
//! and TLS 1.3 handshake (the client's certificate is only seen encrypted,
//! so nothing cheaper can tell it apart), refused with a TLS alert; the
//! attackers count them. Attackers, serve and get share this machine's
//! cores, so the rate is what one machine can do to itself, not a
//! network's worth.

#[path = "common/mod.rs"]
mod common;
#[path = "common/serves.rs"]
mod serves;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cpu_seconds, harmony_binary, random_bytes, secs, write_old};
use harmony::model::NodeId;
use harmony::net::NetError;
use harmony::node::NodeSetup;
use harmony::{InitOptions, Repo};
use serves::{free_port, harmony, Serve};

fn main() {
    let mut mib = 256;
    let mut attackers = 8;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--mib" => mib = value().parse().expect("--mib N"),
            "--attackers" => attackers = value().parse().expect("--attackers N"),
            other => panic!("unknown argument {other}; see examples/bench_refuse.rs"),
        }
    }
    let bin = harmony_binary();
    let base = tempfile::tempdir().unwrap();
    let (a, b) = (base.path().join("a"), base.path().join("b"));
    let mut ids = Vec::new();
    let mut addrs = Vec::new();
    for (dir, name) in [(&a, "A"), (&b, "B")] {
        fs::create_dir(dir).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        harmony(
            &bin,
            dir,
            &["init", "--name", name, "--listen", &addr, "-q"],
        );
        fs::write(dir.join(".harmony/config.toml"), "discovery = false\n").unwrap();
        ids.push(harmony(&bin, dir, &["id", "-q"]).trim().to_owned());
        addrs.push(addr);
    }
    harmony(&bin, &a, &["peer", "add", "B", &ids[1], &addrs[1], "-q"]);
    harmony(&bin, &b, &["peer", "add", "A", &ids[0], &addrs[0], "-q"]);
    write_old(&a.join("big.bin"), &random_bytes(mib << 20, 3));
    harmony(&bin, &a, &["commit", "-q"]);
    let serve = Serve::start_with(
        &bin,
        &a,
        &base.path().join("a.log"),
        &["--no-watch", "--no-live"],
    );
    std::thread::sleep(Duration::from_millis(500));
    harmony(&bin, &b, &["sync", "A", "-q"]);
    let a_id: NodeId = ids[0].parse().unwrap();
    let a_addr = addrs[0].parse().unwrap();

    println!(
        "serve A on loopback, B gets {mib} MiB; {attackers} attacker tasks with untrusted nodes"
    );
    let alone = timed_get(&bin, &b);
    println!(
        "get alone:             {:6.2} s  {:7.1} MB/s",
        secs(alone),
        (mib << 20) as f64 / secs(alone) / 1e6
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let strangers: Vec<tempfile::TempDir> =
        (0..attackers).map(|i| stranger(base.path(), i)).collect();
    let tasks: Vec<_> = strangers
        .iter()
        .map(|dir| {
            let node = {
                let _guard = rt.enter();
                NodeSetup::open(dir.path(), "127.0.0.1:0".parse().unwrap())
                    .unwrap()
                    .bind_client()
                    .unwrap()
            };
            let (stop, refused, other) = (stop.clone(), refused.clone(), other.clone());
            rt.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match node.connect(a_addr, a_id, "A").await {
                        Err(NetError::NotTrusted { .. }) => refused.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            if other.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("an attempt failed otherwise: {e}");
                            }
                            0
                        }
                        Ok(_) => panic!("an untrusted node got in"),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let (cpu_before, refused_before) = (
        cpu_seconds(serve.child.id()),
        refused.load(Ordering::Relaxed),
    );
    harmony(&bin, &b, &["drop", "--force", "big.bin", "-q"]);
    let started = Instant::now();
    let attacked = timed_get(&bin, &b);
    let window = started.elapsed();
    let count = refused.load(Ordering::Relaxed) - refused_before;
    let cpu = cpu_seconds(serve.child.id()) - cpu_before;
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });
    println!(
        "get under attack:      {:6.2} s  {:7.1} MB/s  ({:.0}% of alone)",
        secs(attacked),
        (mib << 20) as f64 / secs(attacked) / 1e6,
        100.0 * secs(alone) / secs(attacked)
    );
    println!(
        "refused meanwhile:     {count} handshakes, {:.0}/s; serve used {cpu:.2} CPU s ({:.0} µs each, the get included); {} attempts failed otherwise",
        count as f64 / secs(window),
        cpu / count.max(1) as f64 * 1e6,
        other.load(Ordering::Relaxed)
    );
    let log = fs::read_to_string(&serve.log).unwrap_or_default();
    println!(
        "serve's log: {} lines, {} bytes; its last lines:",
        log.lines().count(),
        log.len()
    );
    let lines: Vec<&str> = log.lines().collect();
    for line in &lines[lines.len().saturating_sub(4)..] {
        println!("  {line}");
    }
    serve.stop();
}

/// A location A has never heard of.
fn stranger(base: &Path, i: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(base).unwrap();
    let options = InitOptions {
        name: Some(format!("stranger{i}")),
        listen: Some("127.0.0.1:0".into()),
    };
    Repo::init(dir.path(), &options).unwrap();
    dir
}

/// Runs B's `get .`, which must fetch the file: how long it took.
fn timed_get(bin: &Path, b: &Path) -> Duration {
    let started = Instant::now();
    harmony(bin, b, &["get", ".", "-q"]);
    let took = started.elapsed();
    assert!(b.join("big.bin").exists(), "the get fetched nothing");
    took
}
