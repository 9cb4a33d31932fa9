//! `harmony trash`: what `.harmony/trash/` keeps, read-only. Files land
//! there when a change from elsewhere (a deletion, a newer version) would
//! have removed the last known copy of a content here.
//!
//! The listing reads the file names that `Repo::trash_path` (src/repo/apply.rs)
//! gives: `<milliseconds since 1970>-<repository path, '/' as %2F>`. The
//! names do not say why a file was kept; that needs a record written when
//! it is trashed, which belongs with `trash restore` and `trash empty`.
//! `tests/first_hour.rs` trashes a file through a real sync and lists it,
//! so a change of the naming shows there.

use std::fs;
use std::path::Path;

use anyhow::Context;
use harmony::model::STATE_DIR;
use harmony::Repo;
use serde::Serialize;

use super::conflicts::format_time;
use super::Output;

/// The folder in `.harmony/` (`TRASH_DIR` of src/repo/apply.rs).
const TRASH_DIR: &str = "trash";

#[derive(Serialize)]
struct Trashed {
    /// The repository path the file had; `None` for a name this version of
    /// Harmony did not write.
    path: Option<String>,
    size: u64,
    /// When it was moved to the trash.
    trashed_ms: Option<i64>,
    /// The kept file itself, to copy back by hand.
    file: String,
}

pub fn trash(out: &Output) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    let dir = repo.root().join(STATE_DIR).join(TRASH_DIR);
    let mut items = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => Some(entries),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries.into_iter().flatten() {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        items.push(item(&entry.path())?);
    }
    items.sort_by(|a, b| (a.trashed_ms, &a.file).cmp(&(b.trashed_ms, &b.file)));
    out.report(&items, || {
        if out.quiet {
            return;
        }
        if items.is_empty() {
            out!("the trash is empty");
            return;
        }
        for item in &items {
            out!(
                "{}  {:>10}  {}",
                item.trashed_ms.map_or_else(|| "unknown time".into(), format_time),
                indicatif::HumanBytes(item.size).to_string(),
                item.path.as_deref().unwrap_or("(unknown path)")
            );
            out!("    {}", item.file);
        }
        out!("each is the last copy seen here of a version removed elsewhere; copy it back to restore it");
    })
}

fn item(file: &Path) -> anyhow::Result<Trashed> {
    let size = fs::symlink_metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let parsed = name
        .split_once('-')
        .and_then(|(ms, path)| Some((ms.parse::<i64>().ok()?, path.replace("%2F", "/"))));
    Ok(Trashed {
        path: parsed.as_ref().map(|(_, path)| path.clone()),
        size,
        trashed_ms: parsed.map(|(ms, _)| ms),
        file: file.display().to_string(),
    })
}
