//! `harmony serve`: run this node's QUIC endpoint in the foreground until
//! Ctrl-C or SIGTERM, watching the working tree and committing it by itself
//! unless told not to.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
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
    /// Do not watch the working tree (as `watch = false` in
    /// .harmony/config.toml): commit only before answering a sync. Watching,
    /// serve commits a quiet period (`quiet_period`, 1 s) after the last
    /// change, rescans every `rescan_interval` (1 h), and without inotify
    /// watches to spare rescans every minute instead.
    #[arg(long)]
    no_watch: bool,
}

#[derive(Serialize)]
struct Started {
    id: String,
    name: String,
    listen: String,
    peers: usize,
}

pub fn serve(out: &Output, args: ServeArgs) -> anyhow::Result<()> {
    let repo = Repo::open(&out.dir)?;
    let config = repo.config()?;
    let listen_text = args
        .listen
        .or(config.listen.clone())
        .unwrap_or_else(|| repo.settings().listen.clone());
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        anyhow::anyhow!(
            "invalid listen address `{listen_text}`: expected ip:port, e.g. 0.0.0.0:7447 or [::]:7447"
        )
    })?;
    let settings = repo.settings().clone();
    let peers = repo.store().peers()?;
    let setup = NodeSetup::of(&repo, listen)?;
    let trust = node::trusted(&repo)?;
    let root = repo.root().to_path_buf();
    drop(repo);
    let watching = config.watch && !args.no_watch;

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
        // Watching, the state is a quiet period behind the tree (ten at
        // most, under changes that never pause), so a sync is answered from
        // it as it is: a commit per sync would scan the whole tree once per
        // peer and per change (live sync brings every peer at once), race
        // the watcher's own commits, and record a file caught halfway
        // through its save.
        let commit_first = !args.no_commit && !watching;
        let router = Router::new(root.clone(), node.membership()).commit_first(commit_first);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            stop_signal().await;
            let _ = stop_tx.send(true);
        });
        // Kept open so the watcher keeps its config; SIGHUP will send here.
        let (_config_tx, config_rx) = tokio::sync::watch::channel(config);
        let watcher = watching.then(|| {
            tokio::spawn(node::live::watch_and_commit(
                root.clone(),
                config_rx,
                node::live::StateChanged::default(),
                stopped(stop_rx.clone()),
            ))
        });
        node.serve(Arc::new(router), Some(source), stopped(stop_rx))
            .await;
        if let Some(watcher) = watcher {
            // Lets the commit under way finish.
            let _ = watcher.await;
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

/// Completes once `stop` says true (or its sender is gone).
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
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
