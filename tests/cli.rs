//! The `harmony` binary driven as a user would: output formats, exit codes,
//! and what the command line promises in CLI.md.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use support::write_old;

fn harmony(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("harmony").unwrap();
    cmd.arg("-C").arg(dir);
    cmd
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let out = harmony(dir).arg("--json").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn init_creates_an_identity_and_refuses_to_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    harmony(dir.path())
        .args(["init", "--name", "laptop", "--listen", "127.0.0.1:7447"])
        .assert()
        .success()
        .stdout(predicate::str::contains("node id: "));
    let key = dir.path().join(".harmony/node.key");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let id = json(dir.path(), &["id"]);
    assert_eq!(id["name"], "laptop");
    assert_eq!(id["listen"], "127.0.0.1:7447");
    let node_id = id["id"].as_str().unwrap();
    assert!(node_id.parse::<harmony::model::NodeId>().is_ok());

    harmony(dir.path())
        .arg("init")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already a Harmony location"));
    // The identity is unchanged by the refused init.
    assert_eq!(json(dir.path(), &["id"])["id"], node_id);
}

/// Key hygiene (issue #14): a node key other users may read is refused, as
/// ssh refuses one, with the `chmod` to run; a damaged key or certificate,
/// or a key that is not the certificate's, is named in the error.
#[test]
fn a_node_key_must_be_private_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    harmony(dir.path()).arg("init").assert().success();
    let state = dir.path().join(".harmony");
    let (key, cert) = (state.join("node.key"), state.join("node.crt"));
    // The timeout only bounds a `serve` that wrongly started.
    let refused_by = |args: &[&str], why: &str| {
        let out = harmony(dir.path())
            .args(args)
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {why}");
        String::from_utf8(out.stderr).unwrap()
    };
    let refused = |why: &str| refused_by(&["id"], why);

    // The node itself (`serve`) refuses to start, as every command does.
    let serve = ["serve", "--listen", "127.0.0.1:0", "--no-discovery"];
    for mode in [0o640, 0o604, 0o644] {
        fs::set_permissions(&key, fs::Permissions::from_mode(mode)).unwrap();
        for command in [&["id"][..], &serve] {
            let err = refused_by(command, "a readable key");
            let chmod = format!("run `chmod 600 {}`", key.display());
            assert!(err.contains(&chmod), "mode {mode:o}, {command:?}: {err}");
        }
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    harmony(dir.path()).arg("id").assert().success();

    let (key_pem, cert_pem) = (fs::read(&key).unwrap(), fs::read(&cert).unwrap());
    let restore = || {
        fs::write(&key, &key_pem).unwrap();
        fs::write(&cert, &cert_pem).unwrap();
    };
    // Truncated: the PEM armour is cut.
    fs::write(&key, &key_pem[..key_pem.len() / 2]).unwrap();
    let err = refused("a truncated key");
    let cut = format!(
        "{} is not a valid PEM private key: it is cut short",
        key.display()
    );
    assert!(err.contains(&cut), "{err}");
    restore();
    fs::write(&cert, &cert_pem[..cert_pem.len() / 2]).unwrap();
    let err = refused("a truncated certificate");
    let cut = format!(
        "{} is not a valid PEM certificate: it is cut short",
        cert.display()
    );
    assert!(err.contains(&cut), "{err}");
    restore();
    // Corrupt: whole PEM armour around damaged bytes (the DER header).
    let damaged = |pem: &[u8]| {
        let mut text = String::from_utf8(pem.to_vec()).unwrap();
        let at = text.find('\n').unwrap() + 1;
        text.replace_range(at..at + 8, "AAAAAAAA");
        text
    };
    fs::write(&key, damaged(&key_pem)).unwrap();
    assert!(refused("a corrupt key").contains(&key.display().to_string()));
    restore();
    fs::write(&cert, damaged(&cert_pem)).unwrap();
    assert!(refused("a corrupt certificate").contains(&cert.display().to_string()));
    restore();
    // Another location's key beside this certificate.
    let other = tempfile::tempdir().unwrap();
    harmony(other.path()).arg("init").assert().success();
    fs::copy(other.path().join(".harmony/node.key"), &key).unwrap();
    let err = refused("a key of another certificate");
    assert!(err.contains("does not belong to the certificate"), "{err}");
    restore();
    harmony(dir.path()).arg("id").assert().success();
}

#[test]
fn init_validates_its_arguments_and_nesting() {
    let dir = tempfile::tempdir().unwrap();
    harmony(dir.path())
        .args(["init", "--listen", "nowhere"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("invalid listen address"));
    harmony(dir.path())
        .args(["init", "--name", "has space"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("invalid node name"));
    assert!(!dir.path().join(".harmony").exists());
    harmony(dir.path()).arg("init").assert().success();
    let inner = dir.path().join("inner");
    fs::create_dir(&inner).unwrap();
    harmony(&inner)
        .arg("init")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("inside the Harmony location"));
}

#[test]
fn errors_and_usage_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    harmony(dir.path())
        .arg("status")
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(
            "error: not inside a Harmony location",
        ));
    harmony(dir.path()).arg("frobnicate").assert().code(2);
    harmony(dir.path())
        .args(["commit", "--no-such-flag"])
        .assert()
        .code(2);
}

/// Output piped into a reader that stops early (`harmony ls | head`) ends
/// the command quietly, not with a panic.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    harmony(dir.path())
        .args(["init", "--name", "x"])
        .assert()
        .success();
    for i in 0..200 {
        fs::write(dir.path().join(format!("f{i:03}")), b"x").unwrap();
    }
    harmony(dir.path()).arg("commit").assert().success();
    let mut ls = std::process::Command::new(assert_cmd::cargo::cargo_bin("harmony"))
        .arg("-C")
        .arg(dir.path())
        .arg("ls")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(ls.stdout.take()); // the reader is gone before the first line
    let out = ls.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn commit_ls_and_status_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    harmony(root)
        .args(["init", "--name", "a"])
        .assert()
        .success();
    write_old(&root.join("music/song.flac"), &[1u8; 70_000]);
    write_old(&root.join("readme.txt"), b"hello");

    let status = json(root, &["status"]);
    assert_eq!(status.as_array().unwrap().len(), 2);
    assert_eq!(status[0]["state"], "new");

    // In a pipe: no progress bar, no warnings, only the summary on stdout.
    harmony(root)
        .arg("commit")
        .assert()
        .success()
        .stdout(predicate::str::contains("2 added"))
        .stderr("");
    harmony(root)
        .args(["-q", "commit"])
        .assert()
        .success()
        .stdout("");

    let ls = json(root, &["ls"]);
    let files = ls.as_array().unwrap();
    assert_eq!(files.len(), 2);
    let song = &files[0];
    assert_eq!(song["path"], "music/song.flac");
    assert_eq!(song["size"], 70_000);
    assert_eq!(song["hash"], blake3::hash(&[1u8; 70_000]).to_hex().as_str());
    assert_eq!(song["present"], true);
    assert_eq!(song["copies"], 1);
    assert_eq!(song["state"], "ok");

    // `ls PATH` is relative to the current folder, and works from a sub-folder.
    let music = json(&root.join("music"), &["ls", "."]);
    assert_eq!(music.as_array().unwrap().len(), 1);
    let by_prefix = json(root, &["ls", "music"]);
    assert_eq!(by_prefix.as_array().unwrap().len(), 1);

    fs::write(root.join("readme.txt"), b"changed").unwrap();
    let status = json(root, &["status"]);
    assert_eq!(status[0]["path"], "readme.txt");
    assert_eq!(status[0]["state"], "modified");
    harmony(root)
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("modified  readme.txt"));
}

#[test]
fn commit_refuses_to_record_an_emptied_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    harmony(root).arg("init").assert().success();
    for i in 0..5 {
        write_old(&root.join(format!("disk/{i}.bin")), &[i; 10]);
    }
    harmony(root).arg("commit").assert().success();
    fs::remove_dir_all(root.join("disk")).unwrap();
    harmony(root)
        .arg("commit")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--allow-mass-delete"));
    harmony(root)
        .args(["commit", "--allow-mass-delete"])
        .assert()
        .success()
        .stdout(predicate::str::contains("5 deleted"));
}
