//! `harmony invite` and `harmony join CODE`: pairing two locations with a
//! one-time code instead of copying node ids both ways (the exchange is the
//! node service's, `harmony::node::pair`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use harmony::model::InviteCode;
use harmony::node::pair::{self, Invite};
use harmony::node::{self, NodeSetup};
use harmony::Repo;
use serde::Serialize;

use super::peer::{check_addr, check_name, now_ms, PeerJson};
use super::Output;

/// The longest an invite may live: a code is a password, best short-lived.
const MAX_EXPIRES: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Args, Debug)]
pub struct InviteArgs {
    /// How long the code may be used (once): `10m`, `1h`, `2d` (at most 7 days).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    expires: Duration,
    /// Where the other node reaches this one (host:port), instead of the
    /// address `serve` listens on; repeat for several.
    #[arg(long = "addr", value_name = "HOST:PORT")]
    addrs: Vec<String>,
}

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// The code `harmony invite` printed on the other node.
    code: String,
    /// The name to trust the other node by here (default: the name it gives itself).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    dial: super::dial::DialArgs,
}

#[derive(Serialize)]
struct InviteJson {
    code: String,
    id: String,
    addrs: Vec<String>,
    expires_ms: i64,
    /// Who answers the join: `serve` (running for this location) or
    /// `invite` (this command, until the code is used or expires).
    answered_by: &'static str,
}

pub fn invite(out: &Output, args: InviteArgs) -> anyhow::Result<()> {
    if args.expires < Duration::from_secs(1) || args.expires > MAX_EXPIRES {
        bail!("--expires must be from 1s to 7 days");
    }
    for addr in &args.addrs {
        check_addr(addr)?;
    }
    let mut repo = Repo::open(&out.dir)?;
    let root = repo.root().to_path_buf();
    let addrs = |bound| {
        let addrs = if args.addrs.is_empty() {
            pair::invite_addrs(bound)
        } else {
            args.addrs.clone()
        };
        if addrs.is_empty() {
            bail!(
                "this node listens on {bound} and no address of this host was found to put in \
                 the code; give the address the other node reaches it at, `--addr HOST:PORT`"
            );
        }
        Ok(addrs)
    };
    if let Some(bound) = pair::running_serve(&root) {
        let invite = pair::make_invite(&mut repo, args.expires, addrs(bound)?)?;
        return print_invite(out, &invite, "serve");
    }
    // No serve here: this command answers the join itself.
    let config = repo.config()?;
    let listen = super::serve::listen_addr(&repo, &config, None)?;
    let setup = NodeSetup::of(&repo, listen)?;
    let trust = node::trusted(&repo)?;
    let runtime = super::network_runtime()?;
    runtime.block_on(async {
        let node = Arc::new(setup.bind(trust)?);
        let bound = node.local_addr()?;
        let invite = pair::make_invite(&mut repo, args.expires, addrs(bound)?)?;
        drop(repo);
        print_invite(out, &invite, "invite")?;
        if !out.quiet && !out.json {
            eprintln!(
                "no `harmony serve` runs for this location: answering the join here until the \
                 code is used or expires (Ctrl-C cancels)"
            );
        }
        let id = invite.code.secret.id();
        let joined = tokio::select! {
            joined = pair::serve_invite(node, &root, id, invite.expires_ms) => joined?,
            _ = tokio::signal::ctrl_c() => bail!("cancelled: the code can no longer be used while neither this command nor `serve` runs"),
        };
        if !out.quiet && !out.json {
            let repo = Repo::open(&root)?;
            let name = repo
                .store()
                .peers()?
                .into_iter()
                .find(|p| p.node_id == joined)
                .map_or_else(|| joined.short(), |p| p.name);
            eprintln!("node {joined} joined: trusted here as {name}");
        }
        Ok(())
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// The code alone on the first line (for scripts), then what to do with
/// it; `--json`: one line, printed before a self-serving invite waits.
fn print_invite(out: &Output, invite: &Invite, answered_by: &'static str) -> anyhow::Result<()> {
    let code = invite.code.to_string();
    if out.json {
        let report = InviteJson {
            code,
            id: invite.code.inviter.to_string(),
            addrs: invite.code.addrs.clone(),
            expires_ms: invite.expires_ms,
            answered_by,
        };
        out!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    out!("{code}");
    if !out.quiet {
        let left = (invite.expires_ms - now_ms()).max(0) as u64 / 1000;
        out!(
            "On the other node, run `harmony join` with this code (one line; it works once, \
             for {}). Keep it secret: whoever has it can pair with this node.",
            humantime::format_duration(Duration::from_secs(left))
        );
    }
    Ok(())
}

pub fn join(out: &Output, args: JoinArgs) -> anyhow::Result<()> {
    let code: InviteCode = args.code.parse()?;
    let repo = Repo::open(&out.dir)?;
    if let Some(name) = &args.name {
        check_name(name)?;
        if repo.store().peers()?.iter().any(|p| &p.name == name) {
            bail!("a peer named {name} already exists; choose another `--name`");
        }
    }
    let root = repo.root().to_path_buf();
    drop(repo);
    let runtime = super::network_runtime()?;
    let peer = runtime
        .block_on(pair::join(
            &root,
            &code,
            args.name.as_deref(),
            args.dial.connect_timeout,
        ))
        .context("cannot join")?;
    out.report(&PeerJson::from(&peer), || {
        if !out.quiet {
            out!(
                "paired with {} ({}) at {}: both nodes trust each other now; `harmony sync {}` \
                 exchanges state",
                peer.name,
                peer.node_id,
                peer.addr,
                peer.name
            );
        }
    })
}
