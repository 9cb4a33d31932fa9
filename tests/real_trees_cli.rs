//! Real trees through the real binary: two `serve` processes and the
//! commands a user types, for type changes, modes, links, an occupied path
//! and a path clash kept both ways then fetched.

#[path = "support/cli.rs"]
mod cli;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cli::{json, location, ok, Serving};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn real_tree_changes_sync_through_the_binary() {
    let (a, a_id) = location("alpha");
    let (b, b_id) = location("beta");
    let (pa, pb) = (a.path(), b.path());
    fs::write(pa.join("bench"), b"bench notes").unwrap();
    fs::create_dir_all(pa.join("d")).unwrap();
    fs::write(pa.join("d/x"), b"x").unwrap();
    fs::write(pa.join("run.sh"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(pa.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("bench", pa.join("inside")).unwrap();
    std::os::unix::fs::symlink("/etc", pa.join("outside")).unwrap();

    let serve_a = Serving::start(pa);
    let serve_b = Serving::start(pb);
    ok(pa, &["peer", "add", "beta", &b_id, &serve_b.addr]);
    ok(pb, &["peer", "add", "alpha", &a_id, &serve_a.addr]);
    ok(pb, &["sync", "alpha"]);
    ok(pb, &["get", "."]);
    assert_eq!(mode(&pb.join("run.sh")) & 0o100, 0o100, "executable at b");
    assert_eq!(
        fs::read_link(pb.join("inside")).unwrap(),
        Path::new("bench")
    );
    assert_eq!(
        fs::read_link(pb.join("outside")).unwrap(),
        Path::new("/etc")
    );
    assert!(fs::symlink_metadata(pb.join("outside"))
        .unwrap()
        .file_type()
        .is_symlink());

    // File to folder, folder to file, chmod alone, a link retargeted.
    fs::rename(pa.join("bench"), pa.join("bench.tmp")).unwrap();
    fs::create_dir(pa.join("bench")).unwrap();
    fs::rename(pa.join("bench.tmp"), pa.join("bench/bench")).unwrap();
    fs::remove_dir_all(pa.join("d")).unwrap();
    fs::write(pa.join("d"), b"d is a file now").unwrap();
    fs::set_permissions(pa.join("run.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_file(pa.join("inside")).unwrap();
    std::os::unix::fs::symlink("bench/bench", pa.join("inside")).unwrap();
    // An occupied path at b: a new file of a's lands where b has a file of
    // its own that it does not sync (ignored here; an uncommitted file in
    // the way is the same case).
    fs::write(pb.join(".harmonyignore"), "taken.txt\n").unwrap();
    fs::write(pb.join("taken.txt"), b"b's own").unwrap();
    // Same bytes as run.sh: b has them, so the sync alone would apply it.
    fs::write(pa.join("taken.txt"), b"#!/bin/sh\n").unwrap();
    let out = ok(pb, &["sync", "alpha"]);
    assert!(out.contains("blocked"), "{out}");
    assert_eq!(fs::read(pb.join("bench/bench")).unwrap(), b"bench notes");
    assert_eq!(
        mode(&pb.join("run.sh")) & 0o100,
        0,
        "chmod applied by sync alone"
    );
    assert_eq!(
        fs::read_link(pb.join("inside")).unwrap(),
        Path::new("bench/bench")
    );
    // The folder is gone. (Its file may already be at `d` in its old version:
    // when the new `d` took the inode the deleted d/x had, a's commit saw
    // d/x moved there and edited.)
    assert!(!pb.join("d").is_dir(), "folder gone");
    let status = json(pb, &["status"]);
    let blocked: Vec<&serde_json::Value> = status
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state"] == "blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "{status}");
    assert_eq!(blocked[0]["path"], "taken.txt");
    assert_eq!(fs::read(pb.join("taken.txt")).unwrap(), b"b's own");
    ok(pb, &["get", "d"]);
    assert_eq!(fs::read(pb.join("d")).unwrap(), b"d is a file now");
    // Out of the way: the next sync applies it.
    fs::remove_file(pb.join("taken.txt")).unwrap();
    ok(pb, &["sync", "alpha"]);
    assert_eq!(fs::read(pb.join("taken.txt")).unwrap(), b"#!/bin/sh\n");

    // Two files claiming one path: both kept, listed, kept both, fetched.
    fs::write(pa.join("IMG_0001.JPG"), b"camera a").unwrap();
    ok(pa, &["commit"]);
    fs::write(pb.join("IMG_0001.JPG"), b"camera b").unwrap();
    ok(pb, &["sync", "alpha"]);
    let conflicts = json(pb, &["conflicts"]);
    assert_eq!(conflicts[0]["kind"], "path", "{conflicts}");
    let out = ok(pb, &["conflicts"]);
    assert!(out.contains("claimed by 2 files"), "{out}");
    ok(pb, &["resolve", "IMG_0001.JPG", "--keep", "both"]);
    ok(pb, &["sync", "alpha"]);
    ok(pa, &["get", "."]);
    ok(pb, &["get", "."]);
    assert_eq!(json(pa, &["conflicts"]), serde_json::json!([]));
    let names = |dir: &Path| {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("IMG_0001"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(pa), names(pb));
    assert_eq!(names(pa).len(), 2);
    assert_eq!(fs::read(pb.join("IMG_0001.JPG")).unwrap(), b"camera a");

    assert_eq!(serve_a.terminate().code(), Some(0));
    assert_eq!(serve_b.terminate().code(), Some(0));
}
