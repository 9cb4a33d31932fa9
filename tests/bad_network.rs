//! Issue #14's bad network, through the test relay: 2% loss each way, 25 ms
//! one way (a 50 ms round trip), 1% of datagrams duplicated and 1% held back
//! behind later ones, and a 5 s blackout once the transfer runs. A sync of
//! 20,000 entries and a get of a large file complete and verify, with the
//! default congestion controller. (Times and throughput for each loss rate
//! and controller: `examples/bench_lossy.rs`, figures in
//! examples/lossy-links.md.)

mod support;

use std::time::Duration;

use harmony::net::leading_controller;
use support::relay::{Faults, Relay};
use support::{get_from, pseudo_random, serve, sync_once, sync_setup, trusted_pair, Location};

const BAD: Faults = Faults {
    delay: Duration::from_millis(25),
    loss: 0.02,
    duplicate: 0.01,
    reorder: 0.01,
};

/// Long enough for QUIC to declare everything in flight lost, several
/// probe timeouts in a row; shorter than the 60 s idle timeout.
const BLACKOUT: Duration = Duration::from_secs(5);

/// Datagrams through before the blackout: past the handshake (about ten),
/// well before the end of either transfer (thousands).
const BLACKOUT_AFTER: u64 = 300;

/// Checks that the faults the test is about happened at all.
fn assert_faulted(relay: &Relay) {
    assert!(relay.counts().1 > 0, "the relay dropped nothing");
    assert!(
        relay.cut_off() > 0,
        "the blackout caught no traffic: it came too late to test anything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_of_20000_entries_crosses_a_bad_link_and_a_blackout() {
    let mut a = Location::new("a");
    for i in 0..20_000 {
        a.write(&format!("d{}/f{i}", i % 100), format!("{i}").as_bytes());
    }
    a.commit();
    let mut b = Location::joining("b", &a);
    let server = serve(&a, &[&b]);
    let relay = Relay::start(server.addr, BAD, 17).await;
    relay.blackout(BLACKOUT_AFTER, BLACKOUT);
    let (report, _) = sync_once(&mut b, &a, relay.addr).await.unwrap();
    assert_eq!(report.entries_received, 20_000);
    let digest = |loc: &Location| loc.repo.store().state_digest().unwrap();
    assert_eq!(digest(&a), digest(&b));
    assert_faulted(&relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_of_a_large_file_crosses_a_bad_link_and_a_blackout() {
    let film = pseudo_random(24 << 20, 31);
    let (a, b, server) = trusted_pair(&[("film.mkv", &film)]).await;
    let relay = Relay::start(server.addr, BAD, 19).await;
    relay.blackout(BLACKOUT_AFTER, BLACKOUT);
    let report = get_from(&b, Some(&[]), &[(&a, relay.addr)]).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.files, 1);
    let got = std::fs::read(b.root().join("film.mkv")).unwrap();
    assert!(got == film, "the file b got differs from a's");
    assert_faulted(&relay);
}

/// The default controller follows CUBIC on a near path (loopback) and BBR
/// on a far one (the relay's 50 ms round trip), where random loss would
/// hold CUBIC to a fraction of the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_controller_follows_the_path() {
    let (a, b, server) = trusted_pair(&[]).await;
    let relay = Relay::start(
        server.addr,
        Faults::lossy(Duration::from_millis(25), 0.0),
        23,
    )
    .await;
    let node = sync_setup(&b.root()).bind_client().unwrap();
    for (addr, leading) in [
        (server.addr, "CUBIC (near path)"),
        (relay.addr, "BBR (far path)"),
    ] {
        let conn = node.connect(addr, a.repo.node_id(), "a").await.unwrap();
        conn.ping(b"round trips").await.unwrap();
        assert_eq!(leading_controller(conn.connection()), leading, "via {addr}");
        conn.close();
    }
}
