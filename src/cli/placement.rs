//! `harmony group [add|remove GROUP]` and `harmony numcopies [N]`: this
//! location's groups and the repository-wide numcopies, both replicated
//! with the state so that every location counts copies alike.

use clap::{Args, Subcommand};
use harmony::Repo;

use super::Output;

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
