//! The real binary: `peer add|list|remove|ping` and `serve`, as a user runs
//! them, on 127.0.0.1.

#[path = "support/cli.rs"]
mod cli;

use cli::{fails, location, ok, Serving};

#[test]
fn peers_serve_ping_and_sigterm_through_the_binary() {
    let (a, a_id) = location("alpha");
    let (b, b_id) = location("beta");
    let (c, _) = location("gamma");

    // peer add: typos and bad addresses are caught.
    let first = if b_id.starts_with('A') { "B" } else { "A" };
    let typo = format!("{first}{}", &b_id[1..]);
    let err = fails(a.path(), &["peer", "add", "beta", &typo, "127.0.0.1:7447"]);
    assert!(err.contains("checksum does not match"), "{err}");
    let err = fails(a.path(), &["peer", "add", "beta", &b_id, "nohost"]);
    assert!(err.contains("expected host:port"), "{err}");
    let err = fails(a.path(), &["peer", "remove", "nobody"]);
    assert!(err.contains("no peer named nobody"), "{err}");

    // beta trusts alpha, then serves.
    ok(b.path(), &["peer", "add", "alpha", &a_id, "127.0.0.1:9"]);
    let err = fails(b.path(), &["peer", "add", "alpha", &a_id, "127.0.0.1:9"]);
    assert!(err.contains("a peer named alpha already exists"), "{err}");
    let err = fails(b.path(), &["peer", "add", "other", &a_id, "127.0.0.1:9"]);
    assert!(err.contains("already trusted as alpha"), "{err}");

    let serving = Serving::start(b.path());
    let started = &serving.started;
    assert_eq!(started["id"], b_id.as_str());
    let addr = serving.addr.clone();
    assert!(
        addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
        "{addr}"
    );

    // alpha trusts beta at the bound address; list shows it.
    ok(a.path(), &["peer", "add", "beta", &b_id, &addr]);
    let list: serde_json::Value =
        serde_json::from_str(&ok(a.path(), &["--json", "peer", "list"])).unwrap();
    assert_eq!(list[0]["name"], "beta");
    assert_eq!(list[0]["id"], b_id.as_str());
    assert_eq!(list[0]["addr"], addr.as_str());

    // Ping through the CLI (both locations are fresh: different repository
    // ids are fine until one of them records something).
    let out = ok(a.path(), &["peer", "ping", "beta", "-n", "2"]);
    assert!(out.contains("reply from beta"), "{out}");
    let report: serde_json::Value = serde_json::from_str(&ok(
        a.path(),
        &["--json", "peer", "ping", "beta", "-n", "1"],
    ))
    .unwrap();
    assert_eq!(report["rtt_ms"].as_array().unwrap().len(), 1);

    // gamma is not trusted by beta: a clear refusal.
    ok(c.path(), &["peer", "add", "beta", &b_id, &addr]);
    let err = fails(c.path(), &["peer", "ping", "beta"]);
    assert!(err.contains("peer beta does not trust this node"), "{err}");
    // beta adds gamma while serving: the next connection is accepted.
    let c_id = ok(c.path(), &["id", "-q"]).trim().to_owned();
    ok(b.path(), &["peer", "add", "gamma", &c_id, "127.0.0.1:9"]);
    ok(c.path(), &["peer", "ping", "beta", "-n", "1"]);

    // Once both have recorded files, they are two repositories.
    std::fs::write(a.path().join("a.txt"), b"alpha").unwrap();
    std::fs::write(b.path().join("b.txt"), b"beta").unwrap();
    ok(a.path(), &["commit"]);
    ok(b.path(), &["commit"]);
    let err = fails(a.path(), &["peer", "ping", "beta"]);
    assert!(err.contains("peer beta belongs to repository"), "{err}");

    // A peer removed no longer connects.
    ok(b.path(), &["peer", "remove", "gamma"]);
    let err = fails(c.path(), &["peer", "ping", "beta"]);
    assert!(err.contains("does not trust this node"), "{err}");

    // SIGTERM stops serve cleanly, exit status 0.
    let status = serving.terminate();
    assert_eq!(status.code(), Some(0), "serve exits 0 on SIGTERM");
}
