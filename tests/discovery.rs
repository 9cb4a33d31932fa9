//! LAN discovery, with real `harmony serve` processes inside private network
//! namespaces (tests/support/netns.rs): nothing here is multicast on the
//! host's own network. Each namespace test is skipped, saying why, where
//! namespaces cannot be made (not root, no `ip`). The identity check alone
//! runs in process on 127.0.0.1.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/netns.rs"]
mod netns;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use cli::{json, location, ok};
use harmony::node::live::discovery::is_at;
use harmony::node::PeerRecord;
use netns::Lan;
use support::Location;

/// Lets `serve` announce and follow (the helpers turn discovery off).
fn discoverable(dir: &Path) {
    std::fs::write(dir.join(".harmony/config.toml"), "discovery = true\n").unwrap();
}

/// The address `dir`'s location has saved for its peer `name`.
fn saved_addr(dir: &Path, name: &str) -> String {
    let peers = json(dir, &["peer", "list"]);
    let peer = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no peer {name} in {peers}"));
    peer["addr"].as_str().unwrap().to_owned()
}

/// Waits (up to 20 s) until `dir` has saved `addr` for `name`; returns how
/// long after `since` that was seen.
fn wait_for_addr(dir: &Path, name: &str, addr: &str, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let saved = saved_addr(dir, name);
        if saved == addr {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "peer {name} still at {saved}, not {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two locations that trust each other at stale addresses, discovery on.
fn trusting_pair() -> ((tempfile::TempDir, String), (tempfile::TempDir, String)) {
    let (a, a_id) = location("a");
    let (b, b_id) = location("b");
    ok(a.path(), &["peer", "add", "b", &b_id, "10.77.0.2:1"]);
    ok(b.path(), &["peer", "add", "a", &a_id, "10.77.0.1:1"]);
    discoverable(a.path());
    discoverable(b.path());
    ((a, a_id), (b, b_id))
}

#[test]
fn b_follows_a_to_a_new_port_and_a_new_address_and_saves_it() {
    let Some(lan) = Lan::new("mv", &[("a", "10.77.0.1/24"), ("b", "10.77.0.2/24")]) else {
        return;
    };
    let ((a, _), (b, _)) = trusting_pair();
    let serve_b = lan.serve("b", b.path(), "0.0.0.0:7601");

    let started = Instant::now();
    let serve_a = lan.serve("a", a.path(), "0.0.0.0:7501");
    let found = wait_for_addr(b.path(), "a", "10.77.0.1:7501", started);
    println!(
        "B learned A's address {} ms after A started",
        found.as_millis()
    );
    // Both ways: A learned B's from B's answer to its start.
    wait_for_addr(a.path(), "b", "10.77.0.2:7601", started);

    assert_eq!(serve_a.terminate().code(), Some(0));
    let started = Instant::now();
    let serve_a = lan.serve("a", a.path(), "0.0.0.0:7502");
    let moved = wait_for_addr(b.path(), "a", "10.77.0.1:7502", started);
    println!(
        "B learned A's new port {} ms after A restarted",
        moved.as_millis()
    );

    assert_eq!(serve_a.terminate().code(), Some(0));
    lan.readdress("a", "10.77.0.1/24", "10.77.0.11/24");
    let started = Instant::now();
    let serve_a = lan.serve("a", a.path(), "0.0.0.0:7502");
    let moved = wait_for_addr(b.path(), "a", "10.77.0.11:7502", started);
    println!(
        "B learned A's new address {} ms after A restarted",
        moved.as_millis()
    );

    // Saved: still there once B stopped, and what a sync dials.
    assert_eq!(serve_b.terminate().code(), Some(0));
    assert_eq!(saved_addr(b.path(), "a"), "10.77.0.11:7502");
    let synced = lan.run("b", b.path(), &["sync", "a"]);
    assert!(
        synced.status.success(),
        "sync at the discovered address: {}",
        String::from_utf8_lossy(&synced.stderr)
    );
    drop(serve_a);
}

#[test]
fn b_finds_a_over_ipv6() {
    let Some(lan) = Lan::new("v6", &[("a", "10.77.0.1/24"), ("b", "10.77.0.2/24")]) else {
        return;
    };
    lan.add_v6("a", "fd77::1/64");
    lan.add_v6("b", "fd77::2/64");
    let ((a, _), (b, _)) = trusting_pair();
    let _serve_b = lan.serve("b", b.path(), "[fd77::2]:7601");
    let started = Instant::now();
    // Bound to an IPv6 address: it announces in IPv6 only, from that address.
    let _serve_a = lan.serve("a", a.path(), "[fd77::1]:7501");
    wait_for_addr(b.path(), "a", "[fd77::1]:7501", started);
    wait_for_addr(a.path(), "b", "[fd77::2]:7601", started);
}

#[test]
fn an_untrusted_announcer_changes_nothing() {
    let hosts = [
        ("a", "10.77.0.1/24"),
        ("b", "10.77.0.2/24"),
        ("u", "10.77.0.9/24"),
    ];
    let Some(lan) = Lan::new("un", &hosts) else {
        return;
    };
    let ((a, _), (b, _)) = trusting_pair();
    // U trusts B, but B does not trust U.
    let (u, _) = location("u");
    let b_id = ok(b.path(), &["id", "-q"]);
    ok(u.path(), &["peer", "add", "b", b_id.trim(), "10.77.0.2:1"]);
    discoverable(u.path());

    let serve_b = lan.serve("b", b.path(), "0.0.0.0:7601");
    let started = Instant::now();
    let serve_u = lan.serve("u", u.path(), "0.0.0.0:7509");
    // U hears B (B trusts nobody new for it, but announces to all).
    wait_for_addr(u.path(), "b", "10.77.0.2:7601", started);
    // B saw U's announcements before A's: A's is the one acted on.
    let serve_a = lan.serve("a", a.path(), "0.0.0.0:7501");
    wait_for_addr(b.path(), "a", "10.77.0.1:7501", started);
    let peers = json(b.path(), &["peer", "list"]);
    assert_eq!(peers.as_array().unwrap().len(), 1, "{peers}");
    drop((serve_a, serve_b, serve_u));
}

#[test]
fn peer_add_without_an_address_finds_the_node_on_the_lan() {
    let Some(lan) = Lan::new("pa", &[("a", "10.77.0.1/24"), ("b", "10.77.0.2/24")]) else {
        return;
    };
    let (a, a_id) = location("a");
    let (b, _) = location("b");
    let (_, nobody_id) = location("nobody");
    discoverable(a.path());
    discoverable(b.path());
    let _serve_a = lan.serve("a", a.path(), "0.0.0.0:7501");

    // A does not trust B yet: its identity is still proven before it refuses.
    let added = lan.run("b", b.path(), &["--json", "peer", "add", "a", &a_id]);
    assert!(
        added.status.success(),
        "peer add without an address: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    let added: serde_json::Value = serde_json::from_slice(&added.stdout).unwrap();
    assert_eq!(added["addr"], "10.77.0.1:7501");
    assert_eq!(saved_addr(b.path(), "a"), "10.77.0.1:7501");

    // A node nobody runs: a clear failure, nothing added.
    let missing = lan.run(
        "b",
        b.path(),
        &["peer", "add", "n", &nobody_id, "--wait", "1s"],
    );
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("heard no announcement from"), "{err}");
    assert!(err.contains("HOST:PORT"), "{err}");
    assert_eq!(
        json(b.path(), &["peer", "list"]).as_array().unwrap().len(),
        1
    );

    // Discovery off (by the location's config, or for the process).
    std::fs::write(b.path().join(".harmony/config.toml"), "discovery = false\n").unwrap();
    let off = lan.run("b", b.path(), &["peer", "add", "n", &nobody_id]);
    assert_eq!(off.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&off.stderr).contains("discovery = false"));
    discoverable(b.path());
    let forced = lan
        .harmony("b", b.path())
        .env(cli::OFF_ENV, "1")
        .args(["peer", "add", "n", &nobody_id])
        .output()
        .unwrap();
    assert_eq!(forced.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&forced.stderr).contains(cli::OFF_ENV));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_node_itself_passes_the_identity_check() {
    let [a, b, c] = support::locations(["a", "b", "c"]);
    let server = support::serve(&a, &[&b]);
    let claimed = |loc: &Location| PeerRecord {
        name: "a".into(),
        node_id: loc.repo.node_id(),
        addr: server.addr.to_string(),
        added_ms: 0,
    };
    assert!(is_at(&b.root(), &claimed(&a), server.addr).await);
    // A does not trust C, and still proves its key to C.
    assert!(is_at(&c.root(), &claimed(&a), server.addr).await);
    // A beacon claiming that C listens there (a forgery) fails the check.
    assert!(!is_at(&b.root(), &claimed(&c), server.addr).await);
}
