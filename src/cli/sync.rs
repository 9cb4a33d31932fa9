//! `sync [PEER...]`: commit, then exchange state with each peer in both
//! directions and apply what needs no transfer.

use anyhow::Context;
use clap::Args;
use harmony::node::{self, SessionReport};
use harmony::{CommitOptions, Repo};
use serde::Serialize;

use super::progress::ScanBar;
use super::{dial, Output};

#[derive(Args, Debug)]
pub struct SyncArgs {
    /// Trusted peers to sync with (all of them when none is given).
    peers: Vec<String>,
    /// Record the deletion of (nearly) every file if the commit finds it.
    #[arg(long)]
    allow_mass_delete: bool,
    #[command(flatten)]
    dial: dial::DialArgs,
}

#[derive(Serialize)]
struct PeerOutcome {
    peer: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    sessions: Vec<SessionReport>,
}

pub fn sync(out: &Output, args: SyncArgs) -> anyhow::Result<()> {
    let mut repo = Repo::open(&out.dir)?;
    let options = CommitOptions {
        allow_mass_delete: args.allow_mass_delete,
    };
    let committed = {
        let bar = ScanBar::new(out);
        repo.commit(&options, &bar)?
    };
    for warning in &committed.warnings {
        out.warn(warning);
    }
    let trusted = repo.store().peers()?;
    if trusted.is_empty() {
        anyhow::bail!(
            "no peers to sync with: trust one first with `harmony peer add NAME NODE_ID HOST:PORT`"
        );
    }
    let peers = if args.peers.is_empty() {
        trusted
    } else {
        args.peers
            .iter()
            .map(|name| {
                trusted.iter().find(|p| &p.name == name).cloned().with_context(|| {
                    format!("there is no peer named {name}; `harmony peer list` shows the trusted peers")
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let root = repo.root().to_path_buf();
    drop(repo);

    let runtime = super::network_runtime()?;
    let outcomes: Vec<PeerOutcome> = runtime.block_on(async {
        let mut outcomes = Vec::new();
        for peer in &peers {
            let mut sessions = Vec::new();
            let result = async {
                // Settings are read per peer: the first sync may join a repository.
                let dialed = node::dial(&root, peer, args.dial.connect_timeout).await?;
                let (reports, settled) = node::sync_until_settled(&dialed.conn, &root).await;
                sessions = reports;
                settled?;
                dialed.close().await;
                Ok::<_, anyhow::Error>(())
            }
            .await;
            outcomes.push(PeerOutcome {
                peer: peer.name.clone(),
                ok: result.is_ok(),
                error: result.err().map(|e| super::output::error_line(&e)),
                sessions,
            });
        }
        outcomes
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));

    out.report(&outcomes, || {
        if out.quiet {
            return;
        }
        if committed.changed() > 0 {
            out!(
                "committed: {} added, {} edited, {} renamed, {} deleted",
                committed.added,
                committed.edited,
                committed.renamed,
                committed.deleted
            );
        }
        for outcome in &outcomes {
            if outcome.error.is_some() {
                continue;
            }
            print_outcome(outcome);
        }
    })?;
    let failed: Vec<&PeerOutcome> = outcomes.iter().filter(|o| !o.ok).collect();
    for outcome in &failed {
        eprintln!(
            "error: sync with {} failed: {}",
            outcome.peer,
            outcome.error.as_deref().unwrap_or("unknown error")
        );
    }
    match failed.len() {
        0 => Ok(()),
        n => Err(anyhow::anyhow!(
            "{n} of {} peers could not be synced (see above)",
            outcomes.len()
        )),
    }
}

fn print_outcome(outcome: &PeerOutcome) {
    let (sent, received, changed) = outcome.sessions.iter().fold((0, 0, 0), |acc, s| {
        (
            acc.0 + s.entries_sent,
            acc.1 + s.entries_received,
            acc.2 + s.changed,
        )
    });
    if outcome.sessions.first().is_some_and(|s| s.in_sync) {
        out!("{}: already in sync", outcome.peer);
        return;
    }
    out!(
        "{}: sent {sent} and received {received} entries, {changed} changed here",
        outcome.peer
    );
    for session in &outcome.sessions {
        let a = &session.applied;
        if session.joined {
            out!("  joined the repository of {}", outcome.peer);
        }
        if a.moved + a.deleted + a.copied_locally + a.modes_changed > 0 {
            out!(
                "  working tree: {} moved, {} deleted ({} kept in .harmony/trash), {} filled from local copies, {} modes changed",
                a.moved, a.deleted, a.trashed, a.copied_locally, a.modes_changed
            );
        }
        for skipped in &a.skipped {
            out!("  not applied: {skipped}");
        }
        for blocked in &a.blocked {
            out!("  blocked (retried at the next sync or get): {blocked}");
        }
        for collision in &a.case_collisions {
            out!("  kept under another name: {collision}");
        }
        for conflict in &a.rename_conflicts {
            out!("  rename conflict: {conflict}");
        }
    }
}
