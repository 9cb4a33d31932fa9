//! `harmony wanted [EXPR]`, `harmony group [add|remove GROUP]` and
//! `harmony numcopies [N]`: this location's preferred-content expression
//! and groups, and the repository-wide numcopies, all replicated with the
//! state so that every location counts copies and decides drops alike.

use clap::{Args, Subcommand};
use harmony::Repo;

use super::Output;

#[derive(Args, Debug)]
pub struct WantedArgs {
    /// The expression to set (see the README's "Preferred content"), e.g.
    /// `standard`, `include=photos/** and largerthan=1MB`; with none,
    /// prints the one in force.
    #[arg(value_name = "EXPR", num_args = 1.., conflicts_with_all = ["explain", "unset"])]
    expr: Vec<String>,
    /// Say why this location wants PATH or not, term by term.
    #[arg(long, value_name = "PATH", conflicts_with = "unset")]
    explain: Option<String>,
    /// Go back to the default (`standard`).
    #[arg(long)]
    unset: bool,
}

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(subcommand)]
    change: Option<GroupChange>,
}

#[derive(Subcommand, Debug)]
enum GroupChange {
    /// Put this location in GROUP.
    Add {
        /// The group (1-64 letters, digits, `-`, `_` or `.`).
        group: String,
    },
    /// Take this location out of GROUP.
    Remove {
        /// The group.
        group: String,
    },
}

#[derive(Args, Debug)]
pub struct NumcopiesArgs {
    /// The copies every file must keep, in the whole repository; with no
    /// N, prints the number in force. A concurrent setting elsewhere is
    /// settled by time: the latest one wins everywhere once they meet.
    #[arg(value_name = "N")]
    copies: Option<u32>,
}

pub fn group(out: &Output, args: GroupArgs) -> anyhow::Result<()> {
    let mut repo = Repo::open(&out.dir)?;
    let unchanged =
        match &args.change {
            None => None,
            Some(GroupChange::Add { group }) => (!repo.add_group(group)?)
                .then(|| format!("this location is in group {group} already")),
            Some(GroupChange::Remove { group }) => (!repo.remove_group(group)?)
                .then(|| format!("this location is not in group {group}")),
        };
    if let Some(unchanged) = unchanged {
        out.warn(&unchanged);
    }
    let groups = repo.preferences()?.groups;
    out.report(&groups, || {
        if args.change.is_none() || !out.quiet {
            for group in &groups {
                out!("{group}");
            }
        }
    })
}

pub fn numcopies(out: &Output, args: NumcopiesArgs) -> anyhow::Result<()> {
    let mut repo = Repo::open(&out.dir)?;
    if let Some(copies) = args.copies {
        repo.set_numcopies(copies)?;
    }
    let copies = repo.numcopies()?;
    out.report(&serde_json::json!({ "numcopies": copies }), || {
        if args.copies.is_none() || !out.quiet {
            out!("{copies}");
        }
    })
}

pub fn wanted(out: &Output, args: WantedArgs) -> anyhow::Result<()> {
    let mut repo = Repo::open(&out.dir)?;
    if let Some(path) = &args.explain {
        let Some(path) = super::local::repo_path_arg(&repo, out, path)? else {
            anyhow::bail!("--explain needs a file, not the whole repository");
        };
        let verdict = repo.explain_wanted(&path)?;
        return out.report(&verdict, || {
            let (verb, mode) = if verdict.held {
                (
                    if verdict.wanted {
                        "keeps"
                    } else {
                        "would drop"
                    },
                    "held here; evaluated as if dropped",
                )
            } else {
                (
                    if verdict.wanted {
                        "wants"
                    } else {
                        "does not want"
                    },
                    "not held here",
                )
            };
            out!("this location {verb} {} ({mode}):", verdict.path);
            out!("{}", verdict.explanation);
        });
    }
    if args.unset {
        repo.set_wanted(None)?;
    } else if !args.expr.is_empty() {
        repo.set_wanted(Some(&args.expr.join(" ")))?;
    }
    let set = repo.wanted_setting()?;
    out.report(
        &serde_json::json!({ "wanted": set, "default": set.is_none() }),
        || match &set {
            Some(expr) => out!("{expr}"),
            None => out!("standard (the default: this location's standard groups, else `present`)"),
        },
    )
}
