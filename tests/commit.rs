//! `commit` through the library: every kind of change, ignore rules, the
//! stat shortcut, and what is deliberately not synced.

mod support;

use std::collections::BTreeMap;
use std::fs;

use harmony::model::{Content, RepoPath};
use harmony::scan::NoProgress;
use harmony::{CommitOptions, Error, FileState};
use support::{b3, backdate, pseudo_random, Location};

/// `ls` as path -> hash.
fn hashes(loc: &Location) -> BTreeMap<String, String> {
    loc.ls()
        .into_iter()
        .map(|f| (f.path.to_string(), f.hash.unwrap()))
        .collect()
}

/// The file id behind a path, to see that renames keep identity.
fn file_id(loc: &Location, path: &str) -> harmony::model::FileId {
    let path = RepoPath::new(path).unwrap();
    loc.repo
        .store()
        .entries()
        .unwrap()
        .into_iter()
        .find(|e| e.current_path() == &path && !e.is_deleted())
        .unwrap_or_else(|| panic!("no entry at {path}"))
        .id
}

#[test]
fn add_edit_delete_are_recorded() {
    let mut loc = Location::new("a");
    loc.write("a.txt", b"alpha");
    loc.write("dir/b.bin", &pseudo_random(300_000, 1));
    let report = loc.commit();
    assert_eq!((report.added, report.files_read), (2, 2));
    assert_eq!(hashes(&loc)["a.txt"], b3(b"alpha"));

    loc.write("a.txt", b"alpha, edited");
    let report = loc.commit();
    assert_eq!((report.edited, report.added, report.deleted), (1, 0, 0));
    assert_eq!(hashes(&loc)["a.txt"], b3(b"alpha, edited"));

    fs::remove_file(loc.root().join("a.txt")).unwrap();
    let report = loc.commit();
    assert_eq!(report.deleted, 1);
    assert_eq!(loc.paths(), ["dir/b.bin"]);
    // The tombstone stays in the repository, shown on request.
    let mut all = Vec::new();
    loc.repo
        .ls(None, true, &NoProgress, |row| all.push(row))
        .unwrap();
    assert!(all
        .iter()
        .any(|f| f.path.as_str() == "a.txt" && f.state == FileState::Deleted));
}

#[test]
fn renames_and_moves_keep_the_file_identity() {
    let mut loc = Location::new("a");
    loc.write("photo.jpg", &pseudo_random(100_000, 2));
    loc.write("notes.txt", b"some notes");
    loc.write("big.bin", &pseudo_random(1_000_000, 3));
    loc.commit();
    let (photo, notes, big) = (
        file_id(&loc, "photo.jpg"),
        file_id(&loc, "notes.txt"),
        file_id(&loc, "big.bin"),
    );
    let root = loc.root();

    // A plain rename and a move into a new sub-folder.
    fs::rename(root.join("photo.jpg"), root.join("holiday.jpg")).unwrap();
    fs::create_dir_all(root.join("archive/2026")).unwrap();
    fs::rename(root.join("notes.txt"), root.join("archive/2026/notes.txt")).unwrap();
    // A rename with an edit: same inode, new bytes.
    fs::rename(root.join("big.bin"), root.join("big-edited.bin")).unwrap();
    let mut bytes = fs::read(root.join("big-edited.bin")).unwrap();
    bytes[500_000] ^= 0xff;
    fs::write(root.join("big-edited.bin"), &bytes).unwrap();
    backdate(&root.join("big-edited.bin"));

    let report = loc.commit();
    assert_eq!(
        (report.renamed, report.added, report.deleted, report.edited),
        (3, 0, 0, 0),
        "{report:?}"
    );
    assert_eq!(file_id(&loc, "holiday.jpg"), photo);
    assert_eq!(file_id(&loc, "archive/2026/notes.txt"), notes);
    assert_eq!(file_id(&loc, "big-edited.bin"), big);
    assert_eq!(hashes(&loc)["big-edited.bin"], b3(&bytes));
    assert_eq!(
        loc.paths(),
        ["archive/2026/notes.txt", "big-edited.bin", "holiday.jpg"]
    );
}

#[test]
fn a_copy_and_delete_is_a_rename_by_content() {
    let mut loc = Location::new("a");
    let bytes = pseudo_random(50_000, 4);
    loc.write("old/name.dat", &bytes);
    loc.commit();
    let id = file_id(&loc, "old/name.dat");
    // A new inode with the same bytes, as a move across filesystems makes.
    loc.write("new/name.dat", &bytes);
    fs::remove_dir_all(loc.root().join("old")).unwrap();
    let report = loc.commit();
    assert_eq!((report.renamed, report.added, report.deleted), (1, 0, 0));
    assert_eq!(file_id(&loc, "new/name.dat"), id);
}

#[test]
fn unchanged_rescan_reads_no_file() {
    let mut loc = Location::new("a");
    for i in 0..200 {
        loc.write(
            &format!("d{}/f{i}.txt", i % 7),
            format!("file {i}").as_bytes(),
        );
    }
    assert_eq!(loc.commit().files_read, 200);
    let report = loc.commit();
    assert_eq!(report.files_read, 0, "{report:?}");
    assert_eq!(report.bytes_read, 0);
    assert_eq!(report.unchanged, 200);
    assert_eq!(report.changed(), 0);
    // Touching a file (new mtime, same bytes) reads it but records nothing.
    loc.write("d0/f0.txt", b"file 0");
    let report = loc.commit();
    assert_eq!((report.files_read, report.changed()), (1, 0));
}

#[test]
fn ignore_rules_are_honoured() {
    let mut loc = Location::new("a");
    loc.write(".harmonyignore", b"*.tmp\nbuild/\n!keep.tmp\n");
    loc.write("sub/.harmonyignore", b"local-only.txt\n");
    for path in [
        "a.txt",
        "x.tmp",
        "keep.tmp",
        "build/out.o",
        "sub/local-only.txt",
        "sub/shared.txt",
        "local-only.txt",
        // Built-in ignores: editor temp files.
        ".a.txt.swp",
        "a.txt~",
        ".#a.txt",
        "#a.txt#",
    ] {
        loc.write(path, path.as_bytes());
    }
    loc.commit();
    assert_eq!(
        loc.paths(),
        [
            ".harmonyignore",
            "a.txt",
            "keep.tmp",
            "local-only.txt",
            "sub/.harmonyignore",
            "sub/shared.txt"
        ]
    );
}

#[test]
fn newly_ignored_files_are_kept_not_deleted() {
    let mut loc = Location::new("a");
    loc.write("data.log", b"log");
    loc.write("other.txt", b"x");
    loc.commit();
    loc.write(".harmonyignore", b"*.log\n");
    let report = loc.commit();
    assert_eq!(report.deleted, 0);
    assert!(report.warnings.iter().any(|w| w.contains("data.log")));
    assert!(loc.paths().contains(&"data.log".to_owned()));
}

#[test]
fn mass_deletion_is_refused_unless_allowed() {
    let mut loc = Location::new("a");
    for i in 0..10 {
        loc.write(&format!("media/{i}.bin"), &[i as u8; 100]);
    }
    loc.commit();
    // The folder vanishes, as when a disk is unmounted.
    fs::remove_dir_all(loc.root().join("media")).unwrap();
    let refused = loc.repo.commit(&CommitOptions::default(), &NoProgress);
    assert!(
        matches!(
            refused,
            Err(Error::MassDeletion {
                deleted: 10,
                recorded: 10,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        loc.paths().len(),
        10,
        "nothing recorded by the refused commit"
    );
    let allowed = CommitOptions {
        allow_mass_delete: true,
    };
    assert_eq!(loc.repo.commit(&allowed, &NoProgress).unwrap().deleted, 10);
    assert!(loc.paths().is_empty());
}

#[test]
fn links_are_recorded_as_links_and_special_files_and_bad_names_are_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let mut loc = Location::new("a");
    let root = loc.root();
    loc.write("real.txt", b"real");
    std::os::unix::fs::symlink("real.txt", root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("outside")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(root.join("pipe"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let bad_name = std::ffi::OsStr::from_bytes(b"bad-\xff-name.txt");
    fs::write(root.join(bad_name), b"x").unwrap();

    let report = loc.commit();
    assert_eq!(loc.paths(), ["link.txt", "outside", "real.txt"]);
    let warnings = report.warnings.join("\n");
    assert!(warnings.contains("pipe: not a regular file"), "{warnings}");
    assert!(warnings.contains("not valid UTF-8"), "{warnings}");
    let entries = loc.repo.store().entries().unwrap();
    let content = |path: &str| {
        entries
            .iter()
            .find(|e| e.current_path().as_str() == path)
            .map(|e| e.content.winner().value.clone())
            .unwrap()
    };
    // The link's own text, never what it points to.
    assert!(matches!(content("outside"), Content::Link { target } if target.as_str() == "/etc"));

    // A recorded file replaced by a link is an edit of that file.
    fs::remove_file(root.join("real.txt")).unwrap();
    std::os::unix::fs::symlink("elsewhere", root.join("real.txt")).unwrap();
    let report = loc.commit();
    assert_eq!((report.deleted, report.edited), (0, 1));
    assert!(matches!(
        loc.repo
            .store()
            .entries()
            .unwrap()
            .iter()
            .find(|e| e.current_path().as_str() == "real.txt")
            .unwrap()
            .content
            .winner()
            .value,
        Content::Link { .. }
    ));

    // With links turned off they are skipped with a warning, and a recorded
    // link is not taken for a deletion.
    fs::write(root.join(".harmony/config.toml"), "symlinks = false\n").unwrap();
    let report = loc.commit();
    assert_eq!(report.deleted, 0);
    let warnings = report.warnings.join("\n");
    assert!(
        warnings.contains("link.txt: symbolic link, not synced"),
        "{warnings}"
    );
    assert_eq!(loc.paths(), ["link.txt", "outside", "real.txt"]);
}

/// Run as a user whom permissions stop (as `nobody` when the tests run as
/// root, as CI does), so that it always asserts.
#[test]
fn unreadable_folders_do_not_look_deleted() {
    use std::os::unix::fs::PermissionsExt;
    let mut loc = Location::new("a");
    loc.write("private/secret.txt", b"s");
    loc.write("public.txt", b"p");
    loc.commit();
    let private = loc.root().join("private");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o000)).unwrap();
    let out = support::harmony_unprivileged(&loc.root(), &["--json", "commit"]);
    fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("private"), "a warning names it: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["deleted"], 0, "{report}");
    assert_eq!(loc.paths(), ["private/secret.txt", "public.txt"]);
}

#[test]
fn a_file_written_during_the_read_is_never_recorded_with_a_wrong_hash() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut loc = Location::new("a");
    let path = loc.root().join("growing.log");
    fs::write(&path, pseudo_random(8 << 20, 5)).unwrap();
    let stop = AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            // Appends 4 KiB about every 100 µs, at most 64 MiB in all.
            let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
            for _ in 0..16_384 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                file.write_all(&[b'x'; 4096]).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        });
        let report = loc.commit();
        stop.store(true, Ordering::Relaxed);
        report
    });
    // Either it was reported as changing, or what was recorded matches a
    // prefix of the file that really existed at the recorded size.
    let listed = loc.ls();
    match listed.first() {
        None => assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("changed while being read")),
            "{report:?}"
        ),
        Some(file) => {
            let bytes = fs::read(&path).unwrap();
            assert_eq!(
                file.hash.as_deref().unwrap(),
                b3(&bytes[..file.size as usize])
            );
        }
    }
}

#[test]
fn status_shows_uncommitted_changes() {
    let mut loc = Location::new("a");
    loc.write("keep.txt", b"k");
    loc.write("edit.txt", b"e");
    loc.write("gone.txt", b"g");
    loc.write("move.txt", b"m");
    loc.commit();
    loc.write("edit.txt", b"edited");
    loc.write("new.txt", b"n");
    fs::remove_file(loc.root().join("gone.txt")).unwrap();
    fs::rename(loc.root().join("move.txt"), loc.root().join("moved.txt")).unwrap();
    let (lines, _) = loc.repo.status(&NoProgress).unwrap();
    let summary: Vec<(String, FileState)> = lines
        .iter()
        .map(|l| (l.path.to_string(), l.state))
        .collect();
    assert_eq!(
        summary,
        [
            ("edit.txt".to_owned(), FileState::Modified),
            ("gone.txt".to_owned(), FileState::Missing),
            ("moved.txt".to_owned(), FileState::Renamed),
            ("new.txt".to_owned(), FileState::New),
        ]
    );
    // ls shows the recorded files with their local state.
    let states: BTreeMap<String, FileState> = loc
        .ls()
        .into_iter()
        .map(|f| (f.path.to_string(), f.state))
        .collect();
    assert_eq!(states["keep.txt"], FileState::Ok);
    assert_eq!(states["edit.txt"], FileState::Modified);
    assert_eq!(states["gone.txt"], FileState::Missing);
    // Status recorded nothing.
    assert_eq!(loc.commit().changed(), 4);
}

#[test]
fn a_folder_rename_is_recorded_without_reading_the_files() {
    let mut loc = Location::new("a");
    for i in 0..3 {
        loc.write(&format!("album/{i}.raw"), &pseudo_random(200_000, i));
    }
    loc.commit();
    fs::rename(loc.root().join("album"), loc.root().join("album-2026")).unwrap();
    let report = loc.commit();
    assert_eq!((report.renamed, report.added, report.deleted), (3, 0, 0));
    assert_eq!(report.files_read, 0, "{report:?}");
    assert_eq!(
        hashes(&loc)["album-2026/1.raw"],
        b3(&pseudo_random(200_000, 1))
    );
}
