//! Locations for the benchmark examples: a location in a temporary folder,
//! and one served in the background as `harmony serve` does. Included with
//! `#[path]`.

#![allow(dead_code)] // each example uses a subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use harmony::model::NodeId;
use harmony::net::TrustList;
use harmony::node::{NodeSetup, Router};
use harmony::scan::NoProgress;
use harmony::{CommitOptions, CommitReport, InitOptions, Repo};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// A location in a temporary folder under the `--dir` base, removed on drop.
pub struct Location {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub id: NodeId,
}

impl Location {
    pub fn new(base: &Path, name: &str) -> Location {
        let dir = tempfile::tempdir_in(base).expect("temp dir");
        let options = InitOptions {
            name: Some(name.into()),
            listen: Some("127.0.0.1:0".into()),
        };
        let repo = Repo::init(dir.path(), &options).unwrap();
        Location {
            id: repo.node_id(),
            dir,
            name: name.into(),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn repo(&self) -> Repo {
        Repo::open(self.dir.path()).unwrap()
    }

    pub fn commit(&self) -> CommitReport {
        self.repo()
            .commit(&CommitOptions::default(), &NoProgress)
            .unwrap()
    }
}

/// A location served in the background (as `harmony serve`) until dropped.
pub struct Served {
    pub addr: SocketAddr,
    pub id: NodeId,
    pub name: String,
    pub root: PathBuf,
    stop: Option<oneshot::Sender<()>>,
}

pub fn serve(rt: &Runtime, loc: &Location, trusted: &[&Location]) -> Served {
    serve_routed(rt, loc, trusted, |router| router)
}

/// [`serve`], its router changed by `route` (e.g. a rate limit).
pub fn serve_routed(
    rt: &Runtime,
    loc: &Location,
    trusted: &[&Location],
    route: impl FnOnce(Router) -> Router,
) -> Served {
    let trust = TrustList::from_peers(trusted.iter().map(|t| (t.id, t.name.clone())));
    let setup = NodeSetup::open(&loc.root(), "127.0.0.1:0".parse().unwrap()).unwrap();
    let _guard = rt.enter();
    let node = Arc::new(setup.bind(trust).unwrap());
    let addr = node.local_addr().unwrap();
    let service = Arc::new(route(Router::new(loc.root(), node.membership())));
    let (stop, stopped) = oneshot::channel::<()>();
    rt.spawn(async move {
        node.serve(service, None, async {
            let _ = stopped.await;
        })
        .await;
    });
    Served {
        addr,
        id: loc.id,
        name: loc.name.clone(),
        root: loc.root(),
        stop: Some(stop),
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
