//! `harmony group` and `harmony numcopies` through the real binary: shown,
//! set, refused with nothing stored when bad, and carried to a peer by a
//! sync.

#[path = "support/cli.rs"]
mod cli;

use cli::{fails, json, location, ok, Serving};

#[test]
fn groups_are_added_listed_and_removed_and_bad_names_store_nothing() {
    let (loc, _) = location("laptop");
    assert_eq!(json(loc.path(), &["group"]), serde_json::json!([]));
    ok(loc.path(), &["group", "add", "client"]);
    ok(loc.path(), &["group", "add", "backup"]);
    assert_eq!(ok(loc.path(), &["group"]), "backup\nclient\n");
    let again = cli::harmony(loc.path(), &["group", "add", "client"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("in group client already"));
    ok(loc.path(), &["group", "remove", "backup"]);
    assert_eq!(json(loc.path(), &["group"]), serde_json::json!(["client"]));

    for bad in ["", "two words", "copies:2", "a=b", "(x)"] {
        let err = fails(loc.path(), &["group", "add", bad]);
        assert!(err.contains("invalid group name"), "{bad:?}: {err}");
    }
    assert_eq!(json(loc.path(), &["group"]), serde_json::json!(["client"]));
}

#[test]
fn numcopies_defaults_to_one_and_bad_values_store_nothing() {
    let (loc, _) = location("laptop");
    assert_eq!(ok(loc.path(), &["numcopies"]), "1\n");
    ok(loc.path(), &["numcopies", "2"]);
    assert_eq!(json(loc.path(), &["numcopies"])["numcopies"], 2);
    let err = fails(loc.path(), &["numcopies", "0"]);
    assert!(err.contains("invalid numcopies 0"), "{err}");
    let err = fails(loc.path(), &["numcopies", "5000"]);
    assert!(err.contains("from 1 to 1024"), "{err}");
    assert_eq!(ok(loc.path(), &["numcopies"]), "2\n");
}

#[test]
fn a_sync_carries_groups_and_numcopies_and_the_latest_numcopies_wins() {
    let (a, a_id) = location("a");
    let (b, b_id) = location("b");
    ok(a.path(), &["group", "add", "backup"]);
    ok(a.path(), &["numcopies", "3"]);
    let serving = Serving::start(a.path());
    ok(a.path(), &["peer", "add", "b", &b_id, "127.0.0.1:9"]);
    ok(b.path(), &["peer", "add", "a", &a_id, &serving.addr]);
    ok(b.path(), &["sync", "a"]);
    assert_eq!(ok(b.path(), &["numcopies"]), "3\n");
    // The latest setting wins, whoever made it and whether higher or lower.
    for (at, copies) in [(&b, "4"), (&a, "2")] {
        ok(at.path(), &["numcopies", copies]);
        ok(b.path(), &["sync", "a"]);
        assert_eq!(ok(a.path(), &["numcopies"]), format!("{copies}\n"));
        assert_eq!(ok(b.path(), &["numcopies"]), format!("{copies}\n"));
    }
    // b's own groups are its own.
    assert_eq!(json(b.path(), &["group"]), serde_json::json!([]));
}

#[test]
fn a_drop_needs_numcopies_other_copies_confirmed_and_force_warns() {
    let names = ["a", "b", "c"];
    let made: Vec<_> = names.iter().map(|n| location(n)).collect();
    let dir = |i: usize| made[i].0.path();
    std::fs::write(dir(0).join("doc.txt"), b"the document").unwrap();
    let serving: Vec<Serving> = (0..3).map(|i| Serving::start(dir(i))).collect();
    for i in 0..3 {
        for j in (0..3).filter(|&j| j != i) {
            ok(
                dir(i),
                &["peer", "add", names[j], &made[j].1, &serving[j].addr],
            );
        }
    }
    ok(dir(0), &["numcopies", "2"]);
    for i in [1, 2] {
        ok(dir(i), &["sync", "a"]);
        ok(dir(i), &["get", "doc.txt"]);
        ok(dir(i), &["sync", "a"]);
    }
    ok(dir(1), &["sync", "a"]);
    assert_eq!(ok(dir(1), &["numcopies"]), "2\n");

    // b: a and c confirm, two copies besides b's.
    let out = ok(dir(1), &["drop", "doc.txt"]);
    assert!(out.contains("dropped doc.txt"), "{out}");
    ok(dir(1), &["sync", "a"]);
    // a: only c holds it besides a now.
    let err = fails(dir(0), &["drop", "doc.txt"]);
    assert!(
        err.contains("numcopies is 2 and 1 other location confirmed it holds this content"),
        "{err}"
    );
    assert!(dir(0).join("doc.txt").exists());
    let forced = cli::harmony(dir(0), &["drop", "doc.txt", "--force"]);
    assert!(forced.status.success());
    let warned = String::from_utf8_lossy(&forced.stderr);
    assert!(
        warned.contains("--force: not checking that 2 other location(s)"),
        "{warned}"
    );
    assert!(!dir(0).join("doc.txt").exists());
}

#[test]
fn wanted_is_shown_set_explained_and_bad_expressions_store_nothing() {
    let (loc, _) = location("laptop");
    assert_eq!(
        json(loc.path(), &["wanted"]),
        serde_json::json!({ "wanted": null, "default": true })
    );
    let set = ok(
        loc.path(),
        &[
            "wanted",
            "include=photos/**",
            "and",
            "(largerthan=1kB  or present)",
        ],
    );
    assert_eq!(set, "include=photos/** and (largerthan=1kB or present)\n");

    let err = fails(loc.path(), &["wanted", "largerthan 10MB"]);
    assert!(
        err.contains("expected `=` after `largerthan` at column 12"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(
        json(loc.path(), &["wanted"])["wanted"],
        "include=photos/** and (largerthan=1kB or present)"
    );

    std::fs::create_dir(loc.path().join("photos")).unwrap();
    std::fs::write(loc.path().join("photos/big.raw"), vec![7u8; 2000]).unwrap();
    ok(loc.path(), &["commit"]);
    let why = ok(loc.path(), &["wanted", "--explain", "photos/big.raw"]);
    assert!(why.contains("this location keeps photos/big.raw"), "{why}");
    assert!(why.contains("largerthan=1kB"), "{why}");
    let why = json(loc.path(), &["wanted", "--explain", "photos/big.raw"]);
    assert_eq!((&why["held"], &why["wanted"]), (&true.into(), &true.into()));

    ok(loc.path(), &["wanted", "--unset"]);
    assert_eq!(json(loc.path(), &["wanted"])["default"], true);
}

#[test]
fn get_and_drop_auto_follow_the_rules() {
    let (a, a_id) = location("a");
    let (b, b_id) = location("b");
    for (path, bytes) in [("photos/cat.jpg", &b"meow"[..]), ("docs/todo.txt", b"todo")] {
        std::fs::create_dir_all(a.path().join(path).parent().unwrap()).unwrap();
        std::fs::write(a.path().join(path), bytes).unwrap();
    }
    let serving = Serving::start(a.path());
    ok(a.path(), &["peer", "add", "b", &b_id, "127.0.0.1:9"]);
    ok(b.path(), &["peer", "add", "a", &a_id, &serving.addr]);
    ok(b.path(), &["sync", "a"]);

    // The default wants nothing new.
    let report = json(b.path(), &["get", "--auto"]);
    assert_eq!(report["files"], 0);
    ok(b.path(), &["wanted", "include=photos/**"]);
    let report = json(b.path(), &["get", "--auto"]);
    assert_eq!(report["files"], 1);
    assert!(b.path().join("photos/cat.jpg").exists());
    assert!(!b.path().join("docs/todo.txt").exists());
    let wanted: Vec<(String, bool)> = json(b.path(), &["ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["path"].as_str().unwrap().to_owned(),
                row["wanted"] == true,
            )
        })
        .collect();
    assert_eq!(
        wanted,
        [
            ("docs/todo.txt".to_owned(), false),
            ("photos/cat.jpg".to_owned(), true)
        ]
    );
    let listed = ok(b.path(), &["ls"]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("here  want") && l.ends_with("photos/cat.jpg")),
        "{listed}"
    );

    // whereis counts copies against numcopies and warns about files short of it.
    ok(b.path(), &["numcopies", "3"]);
    let whereis = cli::harmony(b.path(), &["whereis", "docs"]);
    let (shown, warned) = (
        String::from_utf8_lossy(&whereis.stdout),
        String::from_utf8_lossy(&whereis.stderr),
    );
    assert!(
        shown.contains("docs/todo.txt (1 copy of numcopies 3)"),
        "{shown}"
    );
    assert!(
        warned.contains("1 of these files have fewer copies than numcopies (3)"),
        "{warned}"
    );
    ok(b.path(), &["numcopies", "1"]);

    // New rules: the photo is dropped (a confirms its copy), the notes got.
    ok(b.path(), &["wanted", "include=docs/**"]);
    let out = ok(b.path(), &["drop", "--auto"]);
    assert!(out.contains("dropped photos/cat.jpg"), "{out}");
    ok(b.path(), &["get", "--auto"]);
    assert!(!b.path().join("photos/cat.jpg").exists());
    assert_eq!(
        std::fs::read(b.path().join("docs/todo.txt")).unwrap(),
        b"todo"
    );
    let out = ok(b.path(), &["drop", "--auto"]);
    assert!(out.contains("nothing to drop"), "{out}");
}
