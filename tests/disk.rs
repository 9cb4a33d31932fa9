//! Full disks and read-only media, through the real binary (issue #14): a
//! `get` into a full disk, `commit` and `sync` when the state database
//! cannot grow, and a location on a read-only mount. Each test mounts a
//! small tmpfs of its own (which needs root, as CI runs) and unmounts it
//! when done, also when it fails.

#[path = "support/cli.rs"]
mod cli;
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use cli::{fails, init_at, json, location, ok, Serving};

/// A tmpfs mounted on a temporary folder, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// A tmpfs of `mib` MiB. `None` (the reason printed) where this process
    /// cannot mount one, not being root; under CI (`CI` set), which runs as
    /// root, that is a failure instead.
    fn mount(mib: u32) -> Option<Tmpfs> {
        if !rustix::process::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run this test: mounting a tmpfs needs root"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let size = format!("size={mib}m,mode=0755");
        run("mount", &["-t", "tmpfs", "-o", &size, "tmpfs"], dir.path());
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Mounts it again with `options` (`ro`, `rw`).
    fn remount(&self, options: &str) {
        run("mount", &["-o", &format!("remount,{options}")], self.path());
    }

    /// Fills the disk with one file but for `spare` bytes; returns the file
    /// (removing it frees the space).
    fn fill(&self, spare: u64) -> PathBuf {
        let path = self.path().join("filler");
        let mut filler = fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 << 10];
        // Ends at the first short or failed write: no space left.
        while filler.write(&block).is_ok_and(|n| n == block.len()) {}
        let full = filler.metadata().unwrap().len();
        filler.set_len(full.saturating_sub(spare)).unwrap();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process a failed test left behind cannot keep it busy.
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn run(program: &str, args: &[&str], target: &Path) {
    let status = Command::new(program).args(args).arg(target).status();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "{program} {args:?} {target:?}: {status:?}"
    );
}

/// `PRAGMA integrity_check` of the location at `root`, opened read-only.
fn integrity(root: &Path) -> String {
    use rusqlite::OpenFlags;
    let uri = format!(
        "file:{}?immutable=1",
        root.join(".harmony/state.db").display()
    );
    let conn = rusqlite::Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

/// Every file of the working tree at `root` (not `.harmony/`), with its bytes.
fn tree_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path == root.join(".harmony") {
                continue;
            }
            if path.is_dir() {
                folders.push(path);
            } else {
                let name = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                files.insert(name, fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// `len` bytes that do not compress or repeat.
fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut bytes = vec![0; len];
    blake3::Hasher::new()
        .update(&[seed])
        .finalize_xof()
        .fill(&mut bytes);
    bytes
}

/// `alpha` serving `files` from a temporary folder, and `beta`, a new
/// location in `folder` (created) on the disk under test, trusting each
/// other, synced once: beta joined alpha's repository.
fn alpha_serving_beta_at(folder: &Path, files: &[(&str, &[u8])]) -> (tempfile::TempDir, Serving) {
    let (alpha, alpha_id) = location("alpha");
    for (path, bytes) in files {
        fs::write(alpha.path().join(path), bytes).unwrap();
    }
    fs::create_dir(folder).unwrap();
    let beta_id = init_at(folder, "beta");
    ok(
        alpha.path(),
        &["peer", "add", "beta", &beta_id, "127.0.0.1:9"],
    );
    let serving = Serving::start(alpha.path());
    ok(folder, &["peer", "add", "alpha", &alpha_id, &serving.addr]);
    ok(folder, &["sync", "alpha"]);
    (alpha, serving)
}

#[test]
fn a_get_into_a_full_disk_stops_naming_it_and_resumes_once_space_is_freed() {
    let Some(disk) = Tmpfs::mount(8) else {
        return;
    };
    let beta = disk.path().join("beta");
    let big = noise(4 << 20, 1);
    let (alpha, _serving) =
        alpha_serving_beta_at(&beta, &[("big.bin", &big), ("notes.txt", b"notes")]);

    let filler = disk.fill(1 << 20);
    let err = fails(&beta, &["get", "."]);
    let mount = format!(
        "the disk is full (the file system mounted at {})",
        disk.path().display()
    );
    assert!(err.contains(&mount), "{err}");
    assert!(
        err.contains("free space on it, then run this again"),
        "{err}"
    );
    // No partial file in the working tree: whatever is there is whole.
    let placed = tree_files(&beta);
    assert!(!placed.contains_key("big.bin"), "{:?}", placed.keys());
    for (path, bytes) in &placed {
        assert_eq!(bytes, &fs::read(alpha.path().join(path)).unwrap(), "{path}");
    }
    // The state is still usable, on a disk as full as the get left it.
    ok(&beta, &["status"]);
    assert_eq!(json(&beta, &["ls"]).as_array().unwrap().len(), 2);
    assert_eq!(integrity(&beta), "ok");

    fs::remove_file(filler).unwrap();
    let report = json(&beta, &["get", "."]);
    assert!(
        report["bytes_reused"].as_u64().unwrap() > 0,
        "resumed: {report}"
    );
    assert_eq!(fs::read(beta.join("big.bin")).unwrap(), big);
    assert_eq!(fs::read(beta.join("notes.txt")).unwrap(), b"notes");
    assert_eq!(integrity(&beta), "ok");
}

#[test]
fn commit_and_sync_fail_cleanly_while_the_state_database_cannot_grow() {
    let Some(disk) = Tmpfs::mount(8) else {
        return;
    };
    let beta = disk.path().join("beta");
    let (alpha, _serving) = alpha_serving_beta_at(&beta, &[("first.txt", b"first")]);
    for i in 0..1000 {
        fs::write(
            alpha.path().join(format!("alpha-{i:04}.txt")),
            i.to_string(),
        )
        .unwrap();
    }
    for i in 0..200 {
        let path = beta.join(format!("beta-{i:03}.txt"));
        fs::write(&path, i.to_string()).unwrap();
        // Old enough to be trusted unread by the next commit, which then
        // has nothing to write: the sync below fails in its merge.
        support::backdate(&path);
    }
    let full = "the disk holding .harmony/state.db is full, so the change was not recorded \
                (nothing is lost); free space on it, then run this again";

    // A commit that needs more room than there is.
    let filler = disk.fill(64 << 10);
    let err = fails(&beta, &["commit"]);
    assert!(err.contains(full), "{err}");
    assert_eq!(integrity(&beta), "ok");
    assert_eq!(
        json(&beta, &["ls"]).as_array().unwrap().len(),
        1,
        "nothing recorded"
    );
    fs::remove_file(&filler).unwrap();
    assert_eq!(json(&beta, &["commit"])["added"], 200);

    // A sync whose merge needs more room than there is.
    let filler = disk.fill(64 << 10);
    let err = fails(&beta, &["sync", "alpha"]);
    assert!(
        err.contains(&format!("sync with alpha failed: {full}")),
        "{err}"
    );
    assert_eq!(integrity(&beta), "ok");
    ok(&beta, &["status"]);
    fs::remove_file(&filler).unwrap();
    ok(&beta, &["sync", "alpha"]);
    assert_eq!(json(&beta, &["ls"]).as_array().unwrap().len(), 1201);
    assert_eq!(integrity(&beta), "ok");
}

#[test]
fn a_location_on_a_read_only_mount_is_read_and_refuses_writes_saying_why() {
    let Some(disk) = Tmpfs::mount(8) else {
        return;
    };
    let beta = disk.path().join("beta");
    let (_alpha, _serving) = alpha_serving_beta_at(&beta, &[("theirs.txt", b"theirs")]);
    fs::write(beta.join("mine.txt"), b"mine").unwrap();
    ok(&beta, &["sync", "alpha"]);
    fs::write(beta.join("later.txt"), b"later").unwrap();

    disk.remount("ro");
    let status = json(&beta, &["status"]);
    assert_eq!(status[0]["path"], "later.txt", "{status}");
    let listed = json(&beta, &["ls"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    ok(&beta, &["whereis", "theirs.txt"]);
    ok(&beta, &["conflicts"]);
    for write in [&["commit"][..], &["get", "."], &["sync", "alpha"]] {
        let err = fails(&beta, write);
        assert!(err.contains("read-only file system"), "{write:?}: {err}");
        assert!(err.contains("status and ls still work"), "{write:?}: {err}");
    }

    disk.remount("rw");
    assert_eq!(json(&beta, &["commit"])["added"], 1);
    ok(&beta, &["get", "."]);
    assert_eq!(fs::read(beta.join("theirs.txt")).unwrap(), b"theirs");
}

/// A full disk that fails the database commit of an install (or a kill
/// between its renames and that commit) leaves files in the tree with the
/// content the repository says, unrecorded. The next get adopts them, new
/// files and updates alike, instead of refusing them as unknown or changed.
#[test]
fn files_a_get_placed_but_could_not_record_are_adopted_by_the_next_get() {
    let (alpha, alpha_id) = location("alpha");
    fs::write(alpha.path().join("edited.txt"), b"first").unwrap();
    let beta = tempfile::tempdir().unwrap();
    let beta_id = init_at(beta.path(), "beta");
    ok(
        alpha.path(),
        &["peer", "add", "beta", &beta_id, "127.0.0.1:9"],
    );
    let serving = Serving::start(alpha.path());
    ok(
        beta.path(),
        &["peer", "add", "alpha", &alpha_id, &serving.addr],
    );
    ok(beta.path(), &["sync", "alpha"]);
    ok(beta.path(), &["get", "."]);

    fs::write(alpha.path().join("edited.txt"), b"second").unwrap();
    fs::write(alpha.path().join("new.txt"), b"new").unwrap();
    ok(beta.path(), &["sync", "alpha"]);
    // What the interrupted install left: both renamed into place.
    fs::write(beta.path().join("edited.txt"), b"second").unwrap();
    fs::write(beta.path().join("new.txt"), b"new").unwrap();
    let report = json(beta.path(), &["get", "."]);
    assert_eq!(report["files"], 2, "{report}");
    assert_eq!(report["failed"], serde_json::json!([]), "{report}");
    let listed = json(beta.path(), &["ls"]);
    for file in listed.as_array().unwrap() {
        assert_eq!(file["present"], true, "{listed}");
    }
    assert_eq!(json(beta.path(), &["status"]), serde_json::json!([]));
}
