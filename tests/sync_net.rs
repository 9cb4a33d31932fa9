//! State sync over QUIC between in-process nodes on 127.0.0.1: convergence,
//! the one-round-trip no-change sync and its bytes, transitive knowledge,
//! a lossy slow link, and a connection cut in the middle of a sync.

mod support;

use std::time::Duration;

use harmony::sync::sync_with;
use harmony::Repo;
use support::relay::{Faults, Relay};
use support::{locations, serve, sync_once, Location};

fn digest(loc: &Location) -> [u8; 32] {
    loc.repo.store().state_digest().unwrap()
}

fn entries(loc: &Location) -> usize {
    loc.repo.store().entries().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_over_quic_converges_and_then_costs_one_round_trip() {
    let mut a = Location::new("a");
    for i in 0..300 {
        a.write(
            &format!("d{}/f{i}.bin", i % 10),
            format!("file {i}").as_bytes(),
        );
    }
    a.commit();
    let mut b = Location::new("b");
    let server = serve(&a, &[&b]);
    let (report, _) = sync_once(&mut b, &a, server.addr).await.unwrap();
    assert!(report.joined, "the fresh location joins a's repository");
    assert_eq!(report.entries_received, 300);
    assert_eq!(digest(&a), digest(&b));
    assert_eq!(
        Repo::open(&b.root()).unwrap().settings().repo_id,
        a.repo.settings().repo_id
    );

    // Nothing changed: hellos only, within a small byte budget.
    let (report, bytes) = sync_once(&mut b, &a, server.addr).await.unwrap();
    assert!(report.in_sync);
    assert_eq!((report.entries_sent, report.entries_received), (0, 0));
    assert!(bytes < 6 * 1024, "{bytes} bytes for a no-change sync");

    // A change on b travels to a, and only it.
    b.write("new.txt", b"from b");
    let (report, _) = sync_once(&mut b, &a, server.addr).await.unwrap();
    assert_eq!(report.entries_sent, 1);
    assert_eq!(digest(&a), digest(&b));
    assert!(a.paths().contains(&"new.txt".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_reaches_a_third_location_through_a_second() {
    let [mut a, mut b, mut c] = locations(["a", "b", "c"]);
    a.write("photos/cat.jpg", b"meow");
    a.commit();
    let server_a = serve(&a, &[&b]);
    sync_once(&mut b, &a, server_a.addr).await.unwrap();
    let server_b = serve(&b, &[&a, &c]);
    sync_once(&mut c, &b, server_b.addr).await.unwrap();

    let c_repo = Repo::open(&c.root()).unwrap();
    let whereis = c_repo.whereis(&[]).unwrap();
    assert_eq!(whereis.len(), 1);
    assert_eq!(whereis[0].path.as_str(), "photos/cat.jpg");
    assert_eq!(whereis[0].holders[0].name.as_deref(), Some("a"));
    let record = c_repo
        .store()
        .node(a.repo.node_id())
        .unwrap()
        .expect("a's record");
    assert_eq!(record.addrs, [a.repo.settings().listen.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_completes_over_a_slow_lossy_link() {
    let mut a = Location::new("a");
    for i in 0..2000 {
        a.write(
            &format!("d{}/f{i}.bin", i % 20),
            format!("file {i}").as_bytes(),
        );
    }
    a.commit();
    let mut b = Location::new("b");
    b.write("from-b.txt", b"b");
    b.commit();
    let mut b = Location::joining_repo(b, &a);
    let server = serve(&a, &[&b]);
    let faults = Faults::lossy(Duration::from_millis(50), 0.02);
    let relay = Relay::start(server.addr, faults, 7).await;
    let (report, _) = sync_once(&mut b, &a, relay.addr).await.unwrap();
    assert_eq!(report.entries_received, 2000);
    assert_eq!(report.entries_sent, 1);
    assert_eq!(digest(&a), digest(&b));
    let (_, dropped) = relay.counts();
    assert!(
        dropped > 0,
        "the relay dropped nothing: the test proves nothing"
    );
}

/// The client waits for the server's work as long as the connection lives
/// (issue #14): the server commits its tree before it answers and merges
/// and applies before it ends the session, and no stream moves meanwhile.
/// A fixed stream timer failed such a sync; here the server's commit of
/// thousands of new files takes far longer than the client's limit, over a
/// lossy link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_waits_for_the_servers_commit_over_a_lossy_link() {
    let mut a = Location::new("a");
    a.write("first.txt", b"1");
    a.commit();
    let mut b = Location::joining_repo(Location::new("b"), &a);
    let server = serve(&a, &[&b]);
    // Written, not committed: the server commits them when b syncs.
    for i in 0..4000 {
        a.write(&format!("d{}/f{i}.txt", i % 40), format!("{i}").as_bytes());
    }
    let faults = Faults::lossy(Duration::from_millis(25), 0.01);
    let relay = Relay::start(server.addr, faults, 13).await;
    b.commit();
    let mut setup = support::node_setup(&b.root());
    setup.config.stream_timeout = Duration::from_millis(100);
    let node = setup.bind_client().unwrap();
    let conn = node
        .connect(relay.addr, a.repo.node_id(), "a")
        .await
        .unwrap();
    let report = sync_with(&conn, b.root()).await.unwrap();
    conn.close();
    assert_eq!(report.entries_received, 4001);
    assert_eq!(digest(&a), digest(&b));
    assert!(relay.counts().1 > 0, "the relay dropped nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_cut_midway_leaves_both_sides_consistent_and_the_next_one_finishes() {
    let mut a = Location::new("a");
    for i in 0..12_000 {
        a.write(&format!("d{}/f{i}.bin", i % 50), format!("{i}").as_bytes());
    }
    a.commit();
    let mut b = Location::new("b");
    let server = serve(&a, &[&b]);
    let faults = Faults::lossy(Duration::from_millis(5), 0.0);
    let relay = Relay::start(server.addr, faults, 9).await;
    // Cut once part of the batches went through: counted in datagrams
    // (12,000 entries are ~1,500), as merging may lag behind the link.
    relay.cut_after(400);
    let cutter = async {
        loop {
            if relay.is_cut() {
                return b.repo.store().entries().map(|e| e.len()).unwrap_or(0);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let root = b.root();
    let (result, at_cut) = tokio::join!(
        async {
            let node = support::node_setup(&root).bind_client().unwrap();
            let conn = node.connect(relay.addr, a.repo.node_id(), "a").await?;
            sync_with(&conn, root.clone()).await
        },
        cutter
    );
    assert!(result.is_err(), "the cut sync must fail, not claim success");
    let merged = entries(&b);
    assert!(
        merged >= at_cut && merged < 12_000,
        "{merged} entries after the cut"
    );
    for loc in [&a, &b] {
        let check: String = rusqlite::Connection::open(loc.root().join(".harmony/state.db"))
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    relay.set_cut(false);
    let (report, _) = sync_once(&mut b, &a, relay.addr).await.unwrap();
    assert!(
        report.entries_received <= 12_000 - merged + 1024,
        "resumed from where it stopped: {} entries sent again",
        report.entries_received
    );
    assert_eq!(entries(&b), 12_000);
    assert_eq!(digest(&a), digest(&b));
}

/// b and c connect while both are fresh, then b joins a's repository (a
/// session with a) and a session runs on the old connection, one way or the
/// other: c joins a's repository too. The `Hello`s of that connection still
/// say b is fresh and in a repository of its own; a join decided on them
/// left c merging a's files into a repository that no one else is in, and
/// refused by b ever after.
async fn a_session_on_a_connection_older_than_a_join(c_dials: bool) {
    let [mut a, mut b, c] = locations(["a", "b", "c"]);
    a.write("doc.txt", b"from a");
    a.commit();
    let (dialer, served) = if c_dials { (&c, &b) } else { (&b, &c) };
    let server = serve(served, &[dialer]);
    let dialer = dialer.root();
    let node = support::sync_setup(&dialer).bind_client().unwrap();
    let (id, name) = (
        served.repo.node_id(),
        served.repo.settings().node_name.clone(),
    );
    let old = node.connect(server.addr, id, &name).await.unwrap();
    assert!(old.peer().fresh);

    let server_a = serve(&a, &[&b]);
    let (report, _) = sync_once(&mut b, &a, server_a.addr).await.unwrap();
    assert!(report.joined);

    let report = sync_with(&old, dialer).await.unwrap();
    assert_eq!(report.joined, c_dials, "the fresh side joins");
    let repo_of = |loc: &Location| Repo::open(&loc.root()).unwrap().settings().repo_id;
    assert_eq!(repo_of(&c), a.repo.settings().repo_id);
    assert_eq!(repo_of(&b), a.repo.settings().repo_id);
    assert_eq!(c.paths(), ["doc.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_joins_by_the_membership_the_client_has_now() {
    a_session_on_a_connection_older_than_a_join(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_client_joins_by_the_membership_the_server_has_now() {
    a_session_on_a_connection_older_than_a_join(true).await;
}
