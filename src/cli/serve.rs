//! `harmony serve`: run this node in the foreground until Ctrl-C or SIGTERM:
//! its QUIC endpoint answering peers, and the live node keeping this
//! location and its peers current (`node::live`): watching the working tree
//! and committing it by itself unless told not to. SIGHUP reloads
//! `.harmony/config.toml`.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;
use harmony::node::live::{self, discovery, Inbox, Live, StateChanged, StatusBoard};
use harmony::node::{self, NodeSetup, Router};
use harmony::Config;
use harmony::Repo;
use serde::Serialize;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

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
    /// Do not watch the working tree (as `watch = false` in
    /// .harmony/config.toml): commit only before answering a sync. Watching,
    /// serve commits a quiet period (`quiet_period`, 1 s) after the last
    /// change, rescans every `rescan_interval` (1 h), and without inotify
    /// watches to spare rescans every minute instead.
    #[arg(long)]
    no_watch: bool,
    /// Only answer peers, as `serve` did before it kept locations current:
    /// no connections of its own, no notices of changes, no fetching of
    /// newer versions of held files (with `--no-watch`, syncs happen only
    /// when someone types `harmony sync`).
    #[arg(long)]
    no_live: bool,
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
    let listen = listen_addr(&repo, &config, args.listen)?;
    let discovery = config.discovery && !args.no_discovery;
    let watching = config.watch && !args.no_watch;
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
        // Before anything is printed: a test or a unit manager may signal
        // as soon as it reads the address, and SIGHUP unhandled would kill.
        let caught = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        );
        let node = Arc::new(setup.bind(trust)?);
        let source = node::trust_source(&root, node.membership())?;
        let bound = node.local_addr()?;
        let status = StatusBoard::new(bound.to_string());
        if let Err(e) = status.write_now(&root) {
            tracing::warn!("cannot write this serve's status file: {e}");
        }
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
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        // Content sent to every peer together, at the limit as reloaded.
        let sending = node::RateLimit::new(config.bandwidth_limit);
        let (config_tx, config_rx) = watch::channel(config);
        tokio::spawn(sending.clone().follow(config_rx.clone()));
        tokio::spawn(signals(root.clone(), caught, stop_tx, config_tx));
        let inbox = Inbox::default();
        let watcher = watching.then(|| {
            tokio::spawn(live::watch_and_commit(
                root.clone(),
                config_rx.clone(),
                StateChanged::into(&inbox),
                stopped(),
            ))
        });
        let finding = discovery.then(|| {
            let (moved, redial) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(reachable_when_moved(redial, inbox.clone()));
            tokio::spawn(discovery::run(
                root.clone(),
                node.node_id(),
                bound,
                moved,
                stopped(),
            ))
        });
        let status_writer = tokio::spawn(status.clone().keep_written(root.clone()));
        let live = Live {
            root: root.clone(),
            node: node.clone(),
            inbox: inbox.clone(),
            config: config_rx,
            status,
        };
        let live = (!args.no_live).then(|| tokio::spawn(live.run(stopped())));
        // Watching, the state is at most a quiet period behind the tree, so
        // a sync is answered from it as it is: a commit per sync would scan
        // the whole tree once per peer and per change (live sync brings
        // every peer at once), race the watcher's own commits, and record a
        // file caught halfway through its save.
        let commit_first = !args.no_commit && !watching;
        let router = Router::new(root.clone(), node.membership())
            .commit_first(commit_first)
            .live(inbox)
            .rate_limit(sending);
        node.serve(Arc::new(router), Some(source), stopped()).await;
        if let Some(live) = live {
            let _ = live.await;
        }
        if let Some(watcher) = watcher {
            // Lets the commit under way finish.
            let _ = watcher.await;
        }
        if let Some(finding) = finding {
            let _ = finding.await;
        }
        status_writer.abort();
        StatusBoard::remove_file(&root);
        if !out.json && !out.quiet {
            out!("stopped");
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // Do not wait for blocking tasks that may still run (a trust reload).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// Where the location `repo` serves: `given` (`--listen`), else `listen` in
/// config.toml, else the address set at `init`.
pub(super) fn listen_addr(
    repo: &Repo,
    config: &Config,
    given: Option<String>,
) -> anyhow::Result<SocketAddr> {
    let text = given
        .or(config.listen.clone())
        .unwrap_or_else(|| repo.settings().listen.clone());
    text.parse().map_err(|_| {
        anyhow::anyhow!(
            "invalid listen address `{text}`: expected ip:port, e.g. 0.0.0.0:7447 or [::]:7447"
        )
    })
}

/// A peer discovery saw at a new address is dialed there now.
async fn reachable_when_moved(
    mut moved: tokio::sync::mpsc::UnboundedReceiver<harmony::model::NodeId>,
    inbox: Inbox,
) {
    while let Some(peer) = moved.recv().await {
        inbox.reachable(peer);
    }
}

/// Handles the signals: Ctrl-C (SIGINT) and SIGTERM stop (`stop` becomes
/// true), SIGHUP reads `config.toml` again and passes it on (a bad file is
/// reported and the running configuration kept).
async fn signals(
    root: std::path::PathBuf,
    caught: (std::io::Result<Signal>, std::io::Result<Signal>),
    stop: watch::Sender<bool>,
    config: watch::Sender<Config>,
) {
    let (mut term, mut hup) = match caught {
        (Ok(term), Ok(hup)) => (term, hup),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("cannot watch SIGTERM and SIGHUP: {e}; Ctrl-C stops");
            let _ = tokio::signal::ctrl_c().await;
            let _ = stop.send(true);
            return;
        }
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: stopping"),
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = hup.recv() => {
                let state_dir = root.join(harmony::model::STATE_DIR);
                match Config::load(&state_dir) {
                    Ok(new) => {
                        for (key, changed) in [
                            ("listen", new.listen != config.borrow().listen),
                            ("discovery", new.discovery != config.borrow().discovery),
                        ] {
                            if changed {
                                tracing::warn!("config.toml: a new `{key}` takes effect when serve restarts");
                            }
                        }
                        tracing::info!("SIGHUP: config.toml reloaded");
                        config.send_replace(new);
                    }
                    Err(e) => tracing::warn!("SIGHUP: {e}; keeping the running configuration"),
                }
                continue;
            }
        }
        let _ = stop.send(true);
        return;
    }
}
