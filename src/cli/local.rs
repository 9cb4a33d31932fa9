//! Commands on the local location: init, id, commit, status, ls.

use anyhow::Context;
use clap::Args;
use harmony::model::RepoPath;
use harmony::node::live::ServeStatus;
use harmony::{CommitOptions, FileState, InitOptions, Repo};
use serde::Serialize;

use super::conflicts::format_time;
use super::output::Listing;
use super::progress::ScanBar;
use super::Output;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// This node's name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Where `serve` listens, host:port (default: 0.0.0.0:7447).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Record the deletion of (nearly) every file, which is refused otherwise
    /// because it usually means the working tree is missing or unmounted.
    #[arg(long)]
    allow_mass_delete: bool,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only files at or under this path (relative to the current folder).
    path: Option<String>,
    /// Also list deleted files (tombstones).
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug)]
pub struct WhereisArgs {
    /// Files or folders (relative to the current folder).
    #[arg(required = true)]
    paths: Vec<String>,
}

#[derive(Serialize)]
struct IdReport {
    id: String,
    name: String,
    listen: String,
}

fn id_report(repo: &Repo) -> IdReport {
    IdReport {
        id: repo.node_id().to_string(),
        name: repo.settings().node_name.clone(),
        listen: repo.settings().listen.clone(),
    }
}

pub fn init(out: &Output, args: InitArgs) -> anyhow::Result<()> {
    let options = InitOptions {
        name: args.name,
        listen: args.listen,
    };
    let repo = Repo::init(&out.dir, &options)?;
    let report = id_report(&repo);
    out.report(&report, || {
        if out.quiet {
            out!("{}", report.id);
        } else {
            out!("Initialised location `{}` in {}", report.name, repo.root().display());
            out!("node id: {}", report.id);
            out!("Give this id to the owners of other locations: `harmony peer add {} {} <host:port>`", report.name, report.id);
        }
    })
}

pub fn id(out: &Output) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    let report = id_report(&repo);
    out.report(&report, || {
        out!("{}", report.id);
        if !out.quiet {
            out!("name:   {}", report.name);
            out!("listen: {}", report.listen);
        }
    })
}

pub fn commit(out: &Output, args: CommitArgs) -> anyhow::Result<()> {
    let mut repo = Repo::open(&out.dir)?;
    let options = CommitOptions {
        allow_mass_delete: args.allow_mass_delete,
    };
    let report = {
        let bar = ScanBar::new(out);
        repo.commit(&options, &bar)?
    };
    for warning in &report.warnings {
        out.warn(warning);
    }
    out.report(&report, || {
        if out.quiet {
            return;
        }
        if report.changed() == 0 {
            out!("nothing to commit ({} files unchanged)", report.unchanged);
        } else {
            out!(
                "committed: {} added, {} edited, {} renamed, {} deleted ({} files read, {}, in {:.2} s)",
                report.added,
                report.edited,
                report.renamed,
                report.deleted,
                report.files_read,
                human_bytes(report.bytes_read),
                report.duration.as_secs_f64()
            );
        }
    })
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Show only what the `serve` running here does: each peer (connected
    /// or not, the last sync and how it ended) and the transfer in progress
    /// (with `--json`: that as an object; `null` when no serve runs).
    #[arg(long)]
    serve: bool,
}

pub fn status(out: &Output, args: StatusArgs) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    let serving = ServeStatus::read(&repo.root().join(harmony::model::STATE_DIR));
    if args.serve {
        let json = serde_json::json!({ "serve": serving });
        return out.report(&json, || match &serving {
            Some(serving) => print_serving(serving),
            None => out!("serve is not running here"),
        });
    }
    let (lines, warnings) = {
        let bar = ScanBar::new(out);
        repo.status(&bar)?
    };
    for warning in &warnings {
        out.warn(warning);
    }
    out.report(&lines, || {
        if lines.is_empty() && !out.quiet {
            out!("everything committed and up to date");
        }
        for line in &lines {
            match (&line.from, &line.reason) {
                (Some(from), _) => out!(
                    "{:<9} {} (from {})",
                    state_name(line.state),
                    line.path,
                    from
                ),
                (None, Some(why)) => out!("{:<9} {}: {why}", state_name(line.state), line.path),
                (None, None) => out!("{:<9} {}", state_name(line.state), line.path),
            }
        }
        if let (Some(serving), false) = (&serving, out.quiet) {
            print_serving(serving);
        }
    })
}

/// The `serve` running here: its peers, then the transfer in progress.
fn print_serving(serving: &ServeStatus) {
    out!("serve: running (pid {}) on {}", serving.pid, serving.listen);
    for (name, peer) in &serving.peers {
        let last = match (peer.last_sync_ms, &peer.last_result) {
            (Some(at), Some(result)) => format!("last sync {}: {result}", format_time(at)),
            _ => "not synced yet".to_owned(),
        };
        let link = if peer.connected {
            "connected"
        } else {
            "not connected"
        };
        out!("  {name:<12} {link:<13}  {last}");
    }
    if let Some(t) = &serving.transfer {
        out!(
            "  fetching {} files: {} of {} at {}/s",
            t.files,
            human_bytes(t.bytes_done),
            human_bytes(t.bytes_total),
            human_bytes(t.rate as u64)
        );
    }
}

pub fn ls(out: &Output, args: LsArgs) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    let prefix = args
        .path
        .as_deref()
        .map(|p| repo_path_arg(&repo, out, p))
        .transpose()?
        .flatten();
    let bar = ScanBar::new(out);
    let mut listing = Listing::new(out);
    let mut first = true;
    repo.ls(prefix.as_ref(), args.all, &bar, |row| {
        if std::mem::take(&mut first) {
            bar.clear();
        }
        listing.row(&row, |w| {
            writeln!(
                w,
                "{:>10}  {}  {}  {:>2} {:<9} {}",
                human_bytes(row.size),
                if row.present { "here" } else { "    " },
                match row.wanted {
                    Some(true) => "want",
                    Some(false) => "    ",
                    None => "   -",
                },
                row.copies,
                state_name(row.state),
                row.path
            )
        });
    })?;
    listing.finish();
    Ok(())
}

/// Turns a path argument (relative to the current folder or `-C`) into a
/// repository path; `None` for the repository root itself.
pub fn repo_path_arg(repo: &Repo, out: &Output, arg: &str) -> anyhow::Result<Option<RepoPath>> {
    let base = std::fs::canonicalize(&out.dir)
        .with_context(|| format!("cannot open {}", out.dir.display()))?;
    let joined = base.join(arg);
    // Normalise `.` and `..` by hand: the path need not exist (files not held here).
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p),
            _ => {}
        }
    }
    let absolute: std::path::PathBuf = std::iter::once(std::ffi::OsStr::new("/"))
        .chain(parts)
        .collect();
    let relative = absolute
        .strip_prefix(repo.root())
        .map_err(|_| anyhow::anyhow!("{arg} is outside the location {}", repo.root().display()))?;
    if relative.as_os_str().is_empty() {
        return Ok(None);
    }
    Ok(Some(RepoPath::from_relative(relative)?))
}

fn state_name(state: FileState) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

pub fn whereis(out: &Output, args: WhereisArgs) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    let mut paths = Vec::new();
    for arg in &args.paths {
        // The root itself means every file.
        if let Some(path) = repo_path_arg(&repo, out, arg)? {
            paths.push(path);
        } else {
            paths.clear();
            break;
        }
    }
    let rows = repo.whereis(&paths)?;
    out.report(&rows, || {
        for row in &rows {
            out!(
                "{} ({} {} of numcopies {})",
                row.path,
                row.holders.len(),
                if row.holders.len() == 1 {
                    "copy"
                } else {
                    "copies"
                },
                row.numcopies
            );
            for holder in &row.holders {
                match &holder.name {
                    Some(name) => out!("  {name}  {}", holder.id),
                    None => out!("  {}", holder.id),
                }
            }
        }
    })?;
    let short = rows
        .iter()
        .filter(|r| r.hash.is_some() && r.holders.len() < r.numcopies as usize)
        .count();
    if short > 0 {
        out.warn(&format!(
            "{short} of these files have fewer copies than numcopies ({}); `harmony get` them \
             at another location, or lower numcopies",
            rows[0].numcopies
        ));
    }
    Ok(())
}
