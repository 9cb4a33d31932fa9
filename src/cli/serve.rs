//! `harmony serve`: run this node's QUIC endpoint in the foreground until
//! Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use harmony::node::live::discovery;
use harmony::node::{self, NodeSetup, Router};
use harmony::Repo;
use serde::Serialize;

use super::Output;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Listen on ADDR (host:port) instead of the address set at `init`;
    /// port 0 picks a free port (printed on start).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Do not commit this location's working tree before answering a sync
    /// (peers then see only what `harmony commit` recorded here).
    #[arg(long)]
    no_commit: bool,
    /// Neither announce this node on the local network nor follow trusted
    /// peers' announcements (as `discovery = false` in config.toml).
    #[arg(long)]
    no_discovery: bool,
}

#[derive(Serialize)]
struct Started {
    id: String,
    name: String,
    listen: String,
    peers: usize,
    /// Whether LAN discovery was asked for (it still stays off on a
    /// loopback address, or with HARMONY_NO_DISCOVERY set).
    discovery: bool,
}

pub fn serve(out: &Output, args: ServeArgs) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    let config = repo.config()?;
    let listen_text = args
        .listen
        .or(config.listen)
        .unwrap_or_else(|| repo.settings().listen.clone());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        anyhow::anyhow!(
            "invalid listen address `{listen_text}`: expected ip:port, e.g. 0.0.0.0:7447 or [::]:7447"
        )
    })?;
    let discovery = config.discovery && !args.no_discovery;
    let settings = repo.settings().clone();
    let peers = repo.store().peers()?;
    let setup = NodeSetup::of(&repo, listen)?;
    let trust = node::trusted(&repo)?;
    let root = repo.root().to_path_buf();
    drop(repo);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let node = setup.bind(trust)?;
        let source = node::trust_source(&root, node.membership())?;
        let bound = node.local_addr()?;
        let started = Started {
            id: node.node_id().to_string(),
            name: settings.node_name.clone(),
            listen: bound.to_string(),
            peers: peers.len(),
            discovery,
        };
        if out.json {
            out!("{}", serde_json::to_string(&started)?);
        } else if !out.quiet {
            out!(
                "serving node {} ({}) on {}, trusting {} peers; Ctrl-C to stop",
                started.name,
                started.id,
                started.listen,
                started.peers
            );
        }
        if peers.is_empty() {
            out.warn("no trusted peers yet: nobody can connect until you `harmony peer add` one");
        }
        tracing::info!("listening on {bound}");
        let router = Router::new(root.clone(), node.membership()).commit_first(!args.no_commit);
        // Discovery stops when serving does (`stopping` is dropped then).
        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        // The live node will redial the peers sent on `moved`; until then a
        // moved peer's saved address is used at the next dial.
        let (moved, _redial) = tokio::sync::mpsc::unbounded_channel();
        let finding = discovery.then(|| {
            tokio::spawn(discovery::run(
                root.clone(),
                node.node_id(),
                bound,
                moved,
                async {
                    let _ = stopped.await;
                },
            ))
        });
        node.serve(Arc::new(router), Some(source), async move {
            stop_signal().await;
            drop(stopping);
        })
        .await;
        if let Some(finding) = finding {
            let _ = finding.await;
        }
        if !out.json && !out.quiet {
            out!("stopped");
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // Do not wait for blocking tasks that may still run (a trust reload).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping"),
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
