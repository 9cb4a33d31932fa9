//! The bandwidth limit over QUIC between in-process locations: a serving
//! node sends content, and a get receives it, no faster than the limit
//! allows, and the bytes arrive whole.
//!
//! The tests run on tokio's paused clock, so no test waits for the limit and
//! the lower bounds hold exactly. The clock only jumps ahead (to the next
//! timer) when every task waits, also while the get's writer thread, which
//! tokio does not see, is busy: so a get may look slower than it was, never
//! faster, and the nodes' stall watchdogs get [`PATIENT`] so that such a jump
//! does not fire them. An unlimited get of the same bytes takes ~0.1 s here.

mod support;

use std::fs;
use std::time::Duration;

use harmony::net::NodeConfig;
use harmony::node::Router;
use harmony::transfer::{GetReport, RateLimit, TokenBucket};
use support::net::Server;
use support::{get_through, holders_with, pseudo_random, serve_routed, sync_once, Location};

/// The stall watchdog's limit on both sides (see the module's note).
const PATIENT: Duration = Duration::from_secs(24 * 3600);

fn patient(config: &mut NodeConfig) {
    config.stream_timeout = PATIENT;
}

/// a served to b, its router changed by `route`, b synced with it.
async fn served(a: &Location, b: &mut Location, route: impl FnOnce(Router) -> Router) -> Server {
    let server = serve_routed(a, &[&*b], patient, route);
    sync_once(b, a, server.addr).await.unwrap();
    server
}

/// b's get of every file from a, receiving as `limit` allows.
async fn get_all(b: &Location, a: &Location, server: &Server, limit: RateLimit) -> GetReport {
    let holders = holders_with(b, &[(a, server.addr)], patient).rate_limit(limit);
    get_through(b, Some(&[]), holders).await
}

/// A get's bytes fetched and how long it took on tokio's clock.
async fn timed(get: impl std::future::Future<Output = GetReport>) -> (GetReport, Duration) {
    let start = tokio::time::Instant::now();
    let report = get.await;
    (report, start.elapsed())
}

const MIB: u64 = 1 << 20;

/// The least time `bytes` take at `rate`: all but the first burst.
fn least(bytes: u64, rate: u64) -> Duration {
    let burst = TokenBucket::new(rate, std::time::Instant::now()).capacity();
    Duration::from_secs_f64(bytes.saturating_sub(burst) as f64 / rate as f64)
}

/// a holding `big.bin` (4 MiB in chunks) and `small.txt` (a whole file).
fn pair() -> (Location, Location, Vec<u8>) {
    let big = pseudo_random(4 << 20, 7);
    let [mut a, b] = support::locations(["a", "b"]);
    a.write("big.bin", &big);
    a.write("small.txt", b"small");
    a.commit();
    (a, b, big)
}

fn assert_whole(b: &Location, big: &[u8], report: &GetReport) {
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.files, 2);
    assert_eq!(fs::read(b.root().join("big.bin")).unwrap(), big);
    assert_eq!(fs::read(b.root().join("small.txt")).unwrap(), b"small");
}

#[tokio::test(start_paused = true)]
async fn a_limited_server_sends_no_faster_than_its_limit() {
    let (a, mut b, big) = pair();
    let rate = MIB;
    let server = served(&a, &mut b, |r| r.rate_limit(RateLimit::new(Some(rate)))).await;
    let (report, took) = timed(get_all(&b, &a, &server, RateLimit::default())).await;
    assert_whole(&b, &big, &report);
    let sent = report.bytes_fetched;
    println!("{sent} bytes sent at {rate} bytes/s in {took:?}");
    assert!(took >= least(sent, rate), "{sent} bytes in {took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_limited_get_receives_no_faster_than_its_limit() {
    let (a, mut b, big) = pair();
    let server = served(&a, &mut b, |r| r).await;
    let rate = 2 * MIB;
    let (report, took) = timed(get_all(&b, &a, &server, RateLimit::new(Some(rate)))).await;
    assert_whole(&b, &big, &report);
    let got = report.bytes_fetched;
    println!("{got} bytes received at {rate} bytes/s in {took:?}");
    assert!(took >= least(got, rate), "{got} bytes in {took:?}");
}

/// A limit lowered while a get runs (as a reloaded `config.toml` does)
/// holds back the rest of it.
#[tokio::test(start_paused = true)]
async fn a_limit_changed_during_a_get_takes_effect_at_once() {
    let (a, mut b, big) = pair();
    let (fast, slow) = (4 * MIB, MIB / 2);
    let limit = RateLimit::new(Some(fast));
    let server = served(&a, &mut b, |r| r.rate_limit(limit.clone())).await;
    let lowered = Duration::from_millis(250);
    let lower = tokio::spawn(async move {
        tokio::time::sleep(lowered).await;
        limit.set_rate(Some(slow));
    });
    let (report, took) = timed(get_all(&b, &a, &server, RateLimit::default())).await;
    assert_whole(&b, &big, &report);
    lower.await.unwrap();
    // By then at most a burst, a quarter second and one step (1 MiB each)
    // passed at the fast rate; the rest waits for the slow one.
    let before = 3 * MIB;
    let after = least(report.bytes_fetched - before, slow);
    println!("limit lowered after {lowered:?}: {took:?} (at least {after:?} more)");
    assert!(took >= lowered + after, "{took:?}");
}
