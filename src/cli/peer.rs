//! `harmony peer add|list|remove|ping`: the nodes this location trusts.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Subcommand;
use harmony::model::NodeId;
use harmony::node::live::discovery;
use harmony::node::PeerRecord;
use harmony::Repo;
use serde::Serialize;

use super::Output;

#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Trust the node NODE_ID, reachable at ADDR (host:port). Both sides must
    /// add each other. Without ADDR, the node is looked for on the local
    /// network (it must run `harmony serve` with discovery on).
    Add {
        /// The name you will use for this peer (letters, digits, `-`, `_`, `.`).
        name: String,
        /// Its node id, as `harmony id` prints it there.
        node_id: String,
        /// Where it listens, host:port (e.g. nas.local:7447 or [::1]:7447).
        addr: Option<String>,
        /// Without ADDR: how long to listen for the node's announcement.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
    /// List the trusted peers.
    List,
    /// Forget a peer: it can no longer connect to this node.
    Remove { name: String },
    /// Connect to a peer, check both identities and the repository, and
    /// report the round-trip time.
    Ping {
        name: String,
        /// How many pings.
        #[arg(long, short = 'n', default_value_t = 3)]
        count: u32,
        #[command(flatten)]
        dial: super::dial::DialArgs,
    },
}

pub fn run(out: &Output, command: PeerCommand) -> anyhow::Result<()> {
    match command {
        PeerCommand::Add {
            name,
            node_id,
            addr,
            wait,
        } => add(out, &name, &node_id, addr.as_deref(), wait),
        PeerCommand::List => list(out),
        PeerCommand::Remove { name } => remove(out, &name),
        PeerCommand::Ping { name, count, dial } => ping(out, &name, count, dial),
    }
}

pub(super) fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("invalid peer name `{name}`: use 1-64 letters, digits, `-`, `_` or `.`");
    }
    Ok(())
}

/// Checks `host:port` syntax without resolving the host (it may not resolve
/// from here yet).
pub(super) fn check_addr(addr: &str) -> anyhow::Result<()> {
    if addr.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let bad = || {
        anyhow::anyhow!(
            "invalid address `{addr}`: expected host:port, e.g. 192.168.1.20:7447, nas.local:7447 or [::1]:7447"
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
    match port.parse::<u16>() {
        Ok(port) if port != 0 && host_ok => Ok(()),
        _ => Err(bad()),
    }
}

fn add(
    out: &Output,
    name: &str,
    node_id: &str,
    addr: Option<&str>,
    wait: Duration,
) -> anyhow::Result<()> {
    check_name(name)?;
    let node_id = NodeId::from_str(node_id)?;
    if let Some(addr) = addr {
        check_addr(addr)?;
    }
    let mut repo = Repo::open(&out.dir)?;
    if node_id == repo.node_id() {
        bail!("{node_id} is this node's own id; add the id that `harmony id` prints on the other node");
    }
    let peers = repo.store().peers()?;
    if let Some(same) = peers.iter().find(|p| p.name == name) {
        bail!(
            "a peer named {name} already exists (node id {}); remove it first with `harmony peer remove {name}`",
            same.node_id
        );
    }
    if let Some(same) = peers.iter().find(|p| p.node_id == node_id) {
        bail!(
            "node id {node_id} is already trusted as {}; remove that entry first with `harmony peer remove {}`",
            same.name,
            same.name
        );
    }
    let mut record = PeerRecord {
        name: name.to_owned(),
        node_id,
        addr: addr.unwrap_or_default().to_owned(),
        added_ms: now_ms(),
    };
    let found = addr.is_none();
    if found {
        record.addr = discover(&repo, &record, wait)?.to_string();
    }
    let writer = repo.store_mut().write()?;
    writer
        .add_peer(&record)
        .with_context(|| format!("cannot add peer {name}"))?;
    writer.commit()?;
    let report = PeerJson::from(&record);
    out.report(&report, || {
        if !out.quiet {
            let how = if found { " (found on the local network)" } else { "" };
            out!("trusting peer {name} ({node_id}) at {}{how}", record.addr);
            out!(
                "It must trust this node too: on {name}, run `harmony peer add {} {} <this node's host:port>`",
                repo.settings().node_name,
                repo.node_id()
            );
        }
    })
}

/// Listens for `peer`'s announcement on the local network for `wait`; the
/// address where it proved its identity.
fn discover(repo: &Repo, peer: &PeerRecord, wait: Duration) -> anyhow::Result<SocketAddr> {
    let id = peer.node_id;
    let with_addr = format!("harmony peer add {} {id} HOST:PORT", peer.name);
    if !repo.config()?.discovery {
        bail!(
            "no address given, and LAN discovery is off for this location (`discovery = false` \
             in .harmony/config.toml): give the address, `{with_addr}`"
        );
    }
    let runtime = super::network_runtime()?;
    let found = runtime
        .block_on(discovery::find(repo.root(), peer, wait))
        .map_err(|e| anyhow::anyhow!("{e}; give the address instead, `{with_addr}`"))?;
    found.with_context(|| {
        format!(
            "heard no announcement from {id} on the local network within {}: check that \
             `harmony serve` runs there with discovery on (the default) and that both machines \
             are on the same network, or give the address, `{with_addr}` (`--wait` listens longer)",
            humantime::format_duration(wait)
        )
    })
}

/// A trusted peer in `--json` output (also `join`'s).
#[derive(Serialize)]
pub(super) struct PeerJson {
    name: String,
    id: String,
    addr: String,
}

impl From<&PeerRecord> for PeerJson {
    fn from(p: &PeerRecord) -> Self {
        PeerJson {
            name: p.name.clone(),
            id: p.node_id.to_string(),
            addr: p.addr.clone(),
        }
    }
}

fn list(out: &Output) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    let peers = repo.store().peers()?;
    let report: Vec<PeerJson> = peers.iter().map(PeerJson::from).collect();
    out.report(&report, || {
        if report.is_empty() {
            if !out.quiet {
                out!("no trusted peers; add one with `harmony peer add NAME NODE_ID HOST:PORT`");
            }
            return;
        }
        let width = report
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        for p in &report {
            out!("{:width$}  {}  {}", p.name, p.id, p.addr);
        }
    })
}

fn remove(out: &Output, name: &str) -> anyhow::Result<()> {
    let mut repo = Repo::open(&out.dir)?;
    let writer = repo.store_mut().write()?;
    if !writer.remove_peer(name)? {
        bail!("there is no peer named {name}; `harmony peer list` shows the trusted peers");
    }
    writer.commit()?;
    #[derive(Serialize)]
    struct Removed<'a> {
        removed: &'a str,
    }
    out.report(&Removed { removed: name }, || {
        if !out.quiet {
            out!("no longer trusting peer {name} (connections already open end when they close or `serve` restarts)");
        }
    })
}

#[derive(Serialize)]
struct PingReport {
    name: String,
    id: String,
    addr: String,
    /// The resolved address actually used.
    remote: String,
    protocol: u32,
    rtt_ms: Vec<f64>,
    /// Set when the two locations are in different repositories because one
    /// is fresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

fn ping(out: &Output, name: &str, count: u32, dial: super::dial::DialArgs) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    let peer = repo
        .store()
        .peers()?
        .into_iter()
        .find(|p| p.name == name)
        .with_context(|| {
            format!("there is no peer named {name}; `harmony peer list` shows the trusted peers")
        })?;
    let settings = repo.settings().clone();
    let fresh = repo.store().is_fresh()?;
    let root = repo.root().to_path_buf();
    drop(repo);
    let runtime = super::network_runtime()?;
    let report = runtime.block_on(async {
        let dialed = harmony::node::dial(&root, &peer, dial.connect_timeout).await?;
        let conn = &dialed.conn;
        let mut rtt_ms = Vec::new();
        for i in 0..count.max(1) {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let rtt = conn.ping(&i.to_be_bytes()).await?;
            rtt_ms.push(rtt.as_secs_f64() * 1000.0);
        }
        let protocol = conn.peer().version;
        let joins = (conn.peer().repo_id != settings.repo_id).then(|| {
            if fresh {
                format!(
                    "this location is fresh and joins repository {} at its first sync with {name}",
                    conn.peer().repo_id
                )
            } else {
                format!("{name} is fresh and joins this repository at its first sync")
            }
        });
        let remote = dialed.remote;
        dialed.close().await;
        Ok::<_, anyhow::Error>(PingReport {
            name: name.to_owned(),
            id: peer.node_id.to_string(),
            addr: peer.addr.clone(),
            remote: remote.to_string(),
            protocol,
            rtt_ms,
            note: joins,
        })
    })?;
    out.report(&report, || {
        if out.quiet {
            return;
        }
        for rtt in &report.rtt_ms {
            out!(
                "reply from {} ({}): {rtt:.2} ms",
                report.name,
                report.remote
            );
        }
        out!(
            "peer {} is reachable, trusts this node, protocol {}",
            report.name,
            report.protocol
        );
        if let Some(note) = &report.note {
            out!("{note}");
        }
    })
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
