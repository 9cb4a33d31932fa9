//! `harmony sync` through the real binary: two `serve` processes and sync
//! commands between them, as users run them.

#[path = "support/cli.rs"]
mod cli;

use std::fs;

use cli::{fails, json, location, ok, Serving};

#[test]
fn two_serving_locations_sync_through_the_binary() {
    let (a, a_id) = location("alpha");
    let (b, b_id) = location("beta");
    let (c, _) = location("gamma");
    fs::create_dir_all(a.path().join("music")).unwrap();
    fs::write(a.path().join("music/song.flac"), b"la la la").unwrap();
    fs::write(a.path().join("notes.txt"), b"notes").unwrap();

    let serve_a = Serving::start(a.path());
    let serve_b = Serving::start(b.path());
    ok(a.path(), &["peer", "add", "beta", &b_id, &serve_b.addr]);
    ok(b.path(), &["peer", "add", "alpha", &a_id, &serve_a.addr]);

    // a commits as part of its sync with b; b (fresh) joins a's repository.
    let out = ok(a.path(), &["sync", "beta"]);
    assert!(out.contains("beta: sent 2 and received 0 entries"), "{out}");
    let listed = json(b.path(), &["ls"]);
    let paths: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["music/song.flac", "notes.txt"]);
    assert_eq!(listed[0]["present"], false);
    assert_eq!(listed[0]["copies"], 1);

    // b takes a copy of the song by hand; its sync tells a (2 copies now).
    fs::create_dir_all(b.path().join("music")).unwrap();
    fs::write(b.path().join("music/song.flac"), b"la la la").unwrap();
    let report = json(b.path(), &["sync"]);
    assert_eq!(report[0]["peer"], "alpha");
    assert_eq!(report[0]["ok"], true);
    let whereis = json(a.path(), &["whereis", "music"]);
    let holders: Vec<&str> = whereis[0]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(holders.len(), 2, "{whereis}");
    assert!(holders.contains(&"alpha") && holders.contains(&"beta"));

    // A folder rename on a travels without content and moves b's copy.
    fs::rename(a.path().join("music"), a.path().join("albums")).unwrap();
    ok(a.path(), &["sync"]);
    assert!(b.path().join("albums/song.flac").exists());
    assert!(!b.path().join("music").exists());
    let out = ok(b.path(), &["sync", "alpha"]);
    assert!(out.contains("alpha: already in sync"), "{out}");

    // Concurrent edits: a conflict, listed by both, resolved on one.
    fs::write(a.path().join("albums/song.flac"), b"alpha's mix").unwrap();
    fs::write(b.path().join("albums/song.flac"), b"beta's mix").unwrap();
    ok(b.path(), &["sync"]);
    let conflicts = json(a.path(), &["conflicts"]);
    assert_eq!(conflicts[0]["path"], "albums/song.flac");
    assert_eq!(conflicts[0]["sides"].as_array().unwrap().len(), 2);
    let status = json(b.path(), &["status"]);
    assert_eq!(status[0]["state"], "conflict");
    ok(a.path(), &["resolve", "albums/song.flac", "--keep", "both"]);
    ok(a.path(), &["sync"]);
    assert_eq!(json(b.path(), &["conflicts"]), serde_json::json!([]));
    assert_eq!(
        fs::read(b.path().join("albums/song.conflict-beta.flac")).unwrap(),
        b"beta's mix"
    );

    // Content on demand: b gets a file, then drops it again (a confirms).
    let report = json(b.path(), &["get", "notes.txt"]);
    assert_eq!(report["files"], 1);
    assert_eq!(report["per_holder"]["alpha"], 5);
    assert_eq!(fs::read(b.path().join("notes.txt")).unwrap(), b"notes");
    ok(b.path(), &["sync"]);
    let out = ok(b.path(), &["drop", "notes.txt"]);
    assert!(out.contains("dropped notes.txt"), "{out}");
    assert!(!b.path().join("notes.txt").exists());
    // a holds the last copy now: its drop is refused.
    ok(b.path(), &["sync"]);
    let err = fails(a.path(), &["drop", "notes.txt"]);
    assert!(err.contains("no other location confirmed"), "{err}");
    assert!(a.path().join("notes.txt").exists());

    // Someone a does not trust: a clear refusal, exit status 1.
    ok(c.path(), &["peer", "add", "alpha", &a_id, &serve_a.addr]);
    let err = fails(c.path(), &["sync", "alpha"]);
    assert!(err.contains("peer alpha does not trust this node"), "{err}");
    let err = fails(c.path(), &["sync", "nobody"]);
    assert!(err.contains("there is no peer named nobody"), "{err}");

    assert_eq!(serve_a.terminate().code(), Some(0));
    assert_eq!(serve_b.terminate().code(), Some(0));
    // A peer that is not running: a clear error.
    let err = fails(b.path(), &["sync", "alpha"]);
    assert!(err.contains("sync with alpha failed"), "{err}");
}
