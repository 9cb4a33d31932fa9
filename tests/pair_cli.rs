//! Pairing by invite through the real binary: `harmony invite` on one node,
//! `harmony join CODE` on the other, with a running `serve` answering and
//! without one; wrong, expired and reused codes are refused and trust
//! nothing on either side.

#[path = "support/cli.rs"]
mod cli;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use harmony::model::{InviteCode, InviteSecret};

/// `harmony invite ARGS` where a `serve` runs: the code it printed.
fn invite(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["invite"];
    all.extend_from_slice(args);
    let report = cli::json(dir, &all);
    assert_eq!(report["answered_by"], "serve", "{report}");
    report["code"].as_str().unwrap().to_owned()
}

/// The names of the peers `dir` trusts.
fn trusted(dir: &Path) -> Vec<String> {
    let list = cli::json(dir, &["peer", "list"]);
    let names = list.as_array().unwrap().iter();
    names
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_running_serve_answers_one_join_and_refuses_wrong_expired_and_reused_codes() {
    let (a, _) = cli::location("alpha");
    let (b, _) = cli::location("beta");
    let (c, _) = cli::location("gamma");
    std::fs::write(a.path().join("notes.txt"), b"from alpha").unwrap();
    let serving = cli::Serving::start(a.path());

    // Expired, with no other invite pending: the TLS handshake refuses.
    let short = invite(a.path(), &["--expires", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let err = cli::fails(c.path(), &["join", &short]);
    assert!(
        err.contains("refused this node: it has no invite pending (the code has expired"),
        "{err}"
    );
    // With another invite pending, the same code gets its own answer; the
    // serve sees the new invite without a restart.
    let code = invite(a.path(), &[]);
    let err = cli::fails(c.path(), &["join", &short]);
    assert!(
        err.contains("alpha refused the code: it has expired"),
        "{err}"
    );
    // The right node and address, another secret.
    let mut wrong: InviteCode = code.parse().unwrap();
    wrong.secret = InviteSecret([0x5a; 16]);
    let err = cli::fails(c.path(), &["join", &wrong.to_string()]);
    assert!(
        err.contains("alpha refused the code: it is not one of its invites"),
        "{err}"
    );

    let joined = cli::json(b.path(), &["join", &code]);
    assert_eq!(joined["name"], "alpha", "{joined}");
    assert_eq!(joined["addr"].as_str(), Some(serving.addr.as_str()));
    let err = cli::fails(c.path(), &["join", &code]);
    assert!(err.contains("it has no invite pending"), "{err}");
    invite(a.path(), &[]);
    let err = cli::fails(c.path(), &["join", &code]);
    assert!(
        err.contains("alpha refused the code: another node used it already"),
        "{err}"
    );

    // Trust both ways between alpha and beta, none for gamma's attempts.
    assert_eq!(trusted(a.path()), ["beta"]);
    assert_eq!(trusted(b.path()), ["alpha"]);
    assert!(trusted(c.path()).is_empty());
    // And they sync.
    cli::ok(b.path(), &["sync", "alpha"]);
    assert!(cli::ok(b.path(), &["ls"]).contains("notes.txt"));
    drop(serving);
}

#[test]
fn without_serve_invite_answers_the_join_itself_and_then_stops() {
    let (a, _) = cli::location("alpha");
    let (b, _) = cli::location("beta");
    let (c, _) = cli::location("gamma");
    let mut inviting = Command::cargo_bin("harmony")
        .unwrap()
        .arg("-C")
        .arg(a.path())
        .arg("invite")
        .env(cli::OFF_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kept open while it runs: a closed stdout would end it.
    let mut printed = BufReader::new(inviting.stdout.take().unwrap());
    let mut code = String::new();
    printed.read_line(&mut code).unwrap();
    let code = code.trim().to_owned();
    assert!(code.starts_with("harmony:"), "{code}");

    let joined = cli::json(b.path(), &["join", &code]);
    assert_eq!(joined["name"], "alpha");
    // Used: the invite ends by itself, exit status 0.
    assert!(inviting.wait().unwrap().success());
    assert_eq!(trusted(a.path()), ["beta"]);
    assert_eq!(trusted(b.path()), ["alpha"]);
    // Nobody answers the code any more, and it says why.
    let err = cli::fails(c.path(), &["join", &code]);
    assert!(
        err.contains("nothing listens")
            && err.contains("`harmony invite` runs on the inviting node"),
        "{err}"
    );
    assert!(trusted(c.path()).is_empty());
    // A damaged code is refused before anything is sent.
    let err = cli::fails(
        c.path(),
        &["join", &code.replacen("harmony:", "harmony:X", 1)],
    );
    assert!(err.contains("is not a valid invite code"), "{err}");
}
