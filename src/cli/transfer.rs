//! `get` and `drop`.

use std::io::IsTerminal;

use clap::Args;
use harmony::model::RepoPath;
use harmony::node::{self, drop_files, Holders, PlannedGet, TransferProgress};
use harmony::{Repo, Selection};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::local::repo_path_arg;
use super::{dial, Output};

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Files or folders (relative to the current folder); none: bring every
    /// file held here up to its newest version.
    paths: Vec<String>,
    /// Get what this location's preferred-content rules want here and it
    /// lacks (among PATHS, if given), besides bringing held files current.
    #[arg(long)]
    auto: bool,
    #[command(flatten)]
    dial: dial::DialArgs,
}

#[derive(Args, Debug)]
pub struct DropArgs {
    /// Files or folders whose local copy to remove.
    #[arg(required_unless_present = "auto")]
    paths: Vec<String>,
    /// Drop the files held here that this location's preferred-content
    /// rules no longer want (among PATHS, if given), each still only once
    /// numcopies other copies are confirmed.
    #[arg(long, conflicts_with = "force")]
    auto: bool,
    /// Remove even when fewer other locations than numcopies confirm they
    /// hold the content (warned about: the copy may be the last one).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    dial: dial::DialArgs,
}

/// A byte progress bar on stderr (terminal only, not with -q).
struct TransferBar(ProgressBar);

impl TransferBar {
    fn new(out: &Output) -> Self {
        let bar = if !out.quiet && std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        TransferBar(bar)
    }
}

impl TransferProgress for TransferBar {
    fn start(&self, files: u64, bytes: u64) {
        self.0.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.0.set_length(bytes);
        self.0.set_message(format!("getting {files} files"));
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

impl Drop for TransferBar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// The repository paths named by `args`; an empty list when one of them is
/// the repository root (everything).
fn paths(repo: &Repo, out: &Output, args: &[String]) -> anyhow::Result<Vec<RepoPath>> {
    let mut paths = Vec::new();
    for arg in args {
        match repo_path_arg(repo, out, arg)? {
            Some(path) => paths.push(path),
            None => return Ok(vec![]),
        }
    }
    Ok(paths)
}

/// A runtime and the trusted peers as holders.
fn holders(
    repo: &Repo,
    dial: dial::DialArgs,
) -> anyhow::Result<(tokio::runtime::Runtime, Holders)> {
    let runtime = super::network_runtime()?;
    let holders = {
        let _guard = runtime.enter();
        node::trusted_holders(repo, dial.connect_timeout)?
    };
    Ok((runtime, holders))
}

pub fn get_files(out: &Output, args: GetArgs) -> anyhow::Result<()> {
    let mut repo = Repo::open(&out.dir)?;
    // Remote changes that could not be applied before are tried again.
    if !repo.store().blocked()?.is_empty() {
        for blocked in repo.apply_remote(&[])?.blocked {
            eprintln!("warning: still blocked: {blocked}");
        }
    }
    let selected = if args.paths.is_empty() {
        None
    } else {
        Some(paths(&repo, out, &args.paths)?)
    };
    let planned = if args.auto {
        let (wanted, _) = repo.auto_targets(selected.as_deref().unwrap_or_default())?;
        PlannedGet::of(&repo, Selection::OutdatedAnd(&wanted))?
    } else {
        PlannedGet::new(&repo, selected.as_deref())?
    };
    let (runtime, mut holders) = holders(&repo, args.dial)?;
    drop(repo);
    let report = {
        let bar = std::sync::Arc::new(TransferBar::new(out));
        runtime.block_on(async {
            let report = planned.run(&mut holders, bar.clone()).await;
            holders.close().await;
            report
        })?
    };
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    out.report(&report, || {
        if out.quiet {
            return;
        }
        out!(
            "got {} files: {} fetched, {} reused from copies here",
            report.files,
            indicatif::HumanBytes(report.bytes_fetched),
            indicatif::HumanBytes(report.bytes_reused)
        );
        for (holder, bytes) in &report.per_holder {
            out!("  from {holder}: {}", indicatif::HumanBytes(*bytes));
        }
    })?;
    for failure in &report.failed {
        eprintln!("error: {failure}");
    }
    match report.failed.len() {
        0 => Ok(()),
        n => Err(anyhow::anyhow!(
            "{n} files could not be fetched (see above)"
        )),
    }
}

pub fn drop_local(out: &Output, args: DropArgs) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    let selected = paths(&repo, out, &args.paths)?;
    let ids: Vec<_> = if args.auto {
        repo.auto_targets(&selected)?.1
    } else {
        repo.store()
            .local_files()?
            .into_iter()
            .filter(|f| selected.is_empty() || selected.iter().any(|p| f.path.starts_with(p)))
            .map(|f| f.file_id)
            .collect()
    };
    if ids.is_empty() {
        if args.auto {
            return out.report(&harmony::node::DropReport::default(), || {
                if !out.quiet {
                    out!("nothing to drop: the rules want every file held here");
                }
            });
        }
        anyhow::bail!("nothing to drop: no file held here matches");
    }
    if args.force {
        out.warn(&format!(
            "--force: not checking that {} other location(s) (numcopies) hold these files; \
             a copy removed here may be the last one",
            repo.numcopies()?
        ));
    }
    let root = repo.root().to_path_buf();
    let (runtime, mut holders) = holders(&repo, args.dial)?;
    drop(repo);
    let report = runtime.block_on(async {
        let report = drop_files(&root, &ids, &mut holders, args.force).await;
        holders.close().await;
        report
    })?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    out.report(&report, || {
        if !out.quiet {
            for path in &report.dropped {
                out!("dropped {path} (still in the repository; `harmony get` brings it back)");
            }
        }
    })?;
    for refusal in &report.refused {
        eprintln!("error: {refusal}");
    }
    match report.refused.len() {
        0 => Ok(()),
        n => Err(anyhow::anyhow!("{n} files were not dropped (see above)")),
    }
}
