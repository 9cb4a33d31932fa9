//! `harmony trash`: what `.harmony/trash/` keeps (last copies of versions
//! removed elsewhere), putting one back, and letting go of those another
//! location holds.

use std::time::Duration;

use clap::{Args, Subcommand};
use harmony::{Repo, TrashReason};

use super::conflicts::format_time;
use super::local::repo_path_arg;
use super::Output;

#[derive(Args, Debug)]
pub struct TrashArgs {
    #[command(subcommand)]
    action: Option<TrashAction>,
}

#[derive(Subcommand, Debug)]
enum TrashAction {
    /// Put the newest kept version of PATH back, as a local change that
    /// syncs like any edit.
    Restore {
        /// The path the version had (as `harmony trash` lists it).
        path: String,
        /// Restore it here instead (the path must be free).
        #[arg(long)]
        to: Option<String>,
    },
    /// Remove kept versions whose content another location holds.
    Empty {
        /// Only versions kept longer than this: 30d, 12h, 90m, 2w, 45s.
        #[arg(long, value_parser = parse_age)]
        older_than: Option<Duration>,
        /// Remove them even when no other location holds their content.
        #[arg(long)]
        force: bool,
    },
}

pub fn trash(out: &Output, args: TrashArgs) -> anyhow::Result<()> {
    let mut repo = Repo::open(&out.dir)?;
    match args.action {
        None => list(out, &repo),
        Some(TrashAction::Restore { path, to }) => {
            let path = repo_path_arg(&repo, out, &path)?
                .ok_or_else(|| anyhow::anyhow!("give the path of a file the trash keeps"))?;
            let to = match to {
                Some(to) => Some(
                    repo_path_arg(&repo, out, &to)?
                        .ok_or_else(|| anyhow::anyhow!("--to needs a file path"))?,
                ),
                None => None,
            };
            let restored = repo.restore_from_trash(&path, to.as_ref())?;
            out.report(&serde_json::json!({ "restored": restored }), || {
                out!("restored {restored}; the next commit or sync records it");
            })
        }
        Some(TrashAction::Empty { older_than, force }) => {
            if force {
                eprintln!(
                    "warning: --force removes kept versions even where they are the last copy"
                );
            }
            let emptied = repo.empty_trash(older_than, force)?;
            out.report(&emptied, || {
                out!(
                    "removed {} kept versions, {} freed",
                    emptied.removed,
                    indicatif::HumanBytes(emptied.bytes_freed)
                );
                for path in &emptied.kept {
                    out!("  kept {path}: no other location holds it (--force removes it anyway)");
                }
            })
        }
    }
}

fn list(out: &Output, repo: &Repo) -> anyhow::Result<()> {
    let items = repo.trash()?;
    out.report(&items, || {
        if out.quiet {
            return;
        }
        if items.is_empty() {
            out!("the trash is empty");
            return;
        }
        for item in &items {
            let why = match item.reason {
                Some(TrashReason::DeletedElsewhere) => "deleted elsewhere",
                Some(TrashReason::Replaced) => "replaced by a newer version",
                Some(TrashReason::Conflict) => "a conflict settled for another version",
                None => "kept by an older harmony",
            };
            out!(
                "{}  {:>10}  {}  ({why}{})",
                item.trashed_ms.map_or_else(|| "unknown time".into(), format_time),
                indicatif::HumanBytes(item.size).to_string(),
                item.path.as_ref().map_or("(unknown path)".into(), |p| p.to_string()),
                if item.held_elsewhere { "; held elsewhere too" } else { "; the last copy" }
            );
            out!("    {}", item.file.display());
        }
        out!("`harmony trash restore PATH` puts one back; `harmony trash empty` frees those held elsewhere");
    })
}
/// Reads an age like `30d`, `12h`, `90m`, `2w` or `45s`.
fn parse_age(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit; use s, m, h, d or w, e.g. 30d"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number, e.g. 30d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use s, m, h, d or w"
            ))
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_with_their_unit() {
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_age("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_age("90m"), Ok(Duration::from_secs(5400)));
        assert!(parse_age("30").unwrap_err().contains("no unit"));
        assert!(parse_age("3y").unwrap_err().contains("unknown unit"));
        assert!(parse_age("d").is_err());
    }
}
