//! The whole story on loopback, in one process: three locations of one
//! repository, state travelling through a middle node, a partial `get`, a
//! rename that moves no bytes, and a conflict shown and resolved.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! Each step is what a user would type (shown as `$ ...`), done through the
//! same library calls the `harmony` command makes.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use harmony::model::RepoPath;
use harmony::net::{Node, NodeConfig, TrustList};
use harmony::scan::NoProgress;
use harmony::store::PeerRecord;
use harmony::sync::{sync_with, SyncService};
use harmony::transfer::{get, Holders};
use harmony::{CommitOptions, InitOptions, Keep, Repo};
use tokio::sync::oneshot;

/// One location: its folder, and its endpoint while it serves.
struct Place {
    name: &'static str,
    root: PathBuf,
    addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
}

impl Place {
    fn init(base: &Path, name: &'static str) -> anyhow::Result<Place> {
        let root = base.join(name);
        fs::create_dir_all(&root)?;
        let options = InitOptions {
            name: Some(name.into()),
            listen: Some("127.0.0.1:0".into()),
        };
        let repo = Repo::init(&root, &options)?;
        say(
            &format!("harmony -C {name} init --name {name}"),
            &format!("node id {}", repo.node_id()),
        );
        Ok(Place {
            name,
            root: repo.root().to_path_buf(),
            addr: None,
            stop: None,
        })
    }

    fn repo(&self) -> Repo {
        Repo::open(&self.root).expect("open location")
    }

    /// `harmony serve`, in the background, trusting `peers`.
    fn serve(&mut self, peers: &[&Place]) -> anyhow::Result<()> {
        let repo = self.repo();
        let trust = TrustList::from_peers(
            peers
                .iter()
                .map(|p| (p.repo().node_id(), p.name.to_owned())),
        );
        let mut config =
            NodeConfig::new(repo.settings().repo_id, self.name, "127.0.0.1:0".parse()?);
        config.fresh = repo.store().is_fresh()?;
        let node = Node::bind(repo.identity().clone(), config, trust)?;
        self.addr = Some(node.local_addr()?);
        let service = SyncService::new(self.root.clone(), node.membership());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            node.serve(Arc::new(service), None, async {
                let _ = stopped.await;
            })
            .await;
        });
        self.stop = Some(stop);
        Ok(())
    }

    fn write(&self, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.root.join(path);
        fs::create_dir_all(path.parent().expect("a file has a folder"))?;
        fs::write(path, bytes)?;
        Ok(())
    }

    fn commit(&self) -> anyhow::Result<()> {
        let report = self.repo().commit(&CommitOptions::default(), &NoProgress)?;
        say(
            &format!("harmony -C {} commit", self.name),
            &format!(
                "{} added, {} edited, {} renamed, {} deleted",
                report.added, report.edited, report.renamed, report.deleted
            ),
        );
        Ok(())
    }

    /// A client endpoint of this location, trusting `peers` at their addresses.
    fn holders(&self, peers: &[&Place]) -> anyhow::Result<Holders> {
        let repo = self.repo();
        let mut config =
            NodeConfig::new(repo.settings().repo_id, self.name, "127.0.0.1:0".parse()?);
        config.fresh = repo.store().is_fresh()?;
        let node = Node::bind_client(repo.identity().clone(), config)?;
        let records = peers
            .iter()
            .map(|p| PeerRecord {
                name: p.name.to_owned(),
                node_id: p.repo().node_id(),
                addr: p.addr.expect("a serving peer").to_string(),
                added_ms: 0,
            })
            .collect();
        Ok(Holders::new(node, records))
    }

    /// `harmony sync PEER` (commit, then a session; one more if the first
    /// changed what this location holds).
    async fn sync(&self, peer: &Place) -> anyhow::Result<()> {
        self.repo().commit(&CommitOptions::default(), &NoProgress)?;
        let mut holders = self.holders(&[peer])?;
        let conn = holders
            .conn(peer.repo().node_id())
            .await
            .map_err(anyhow::Error::msg)?;
        let mut lines = Vec::new();
        for _ in 0..3 {
            let report = sync_with(&conn, self.root.clone()).await?;
            lines.push(if report.in_sync {
                "already in sync".to_owned()
            } else {
                format!(
                    "sent {}, received {} entries; working tree: {} moved, {} deleted{}",
                    report.entries_sent,
                    report.entries_received,
                    report.applied.moved,
                    report.applied.deleted,
                    if report.joined {
                        "; joined the repository"
                    } else {
                        ""
                    }
                )
            });
            if !report.left_news() {
                break;
            }
        }
        holders.close().await;
        say(
            &format!("harmony -C {} sync {}", self.name, peer.name),
            &lines.join("\n  "),
        );
        Ok(())
    }

    fn ls(&self) -> anyhow::Result<()> {
        let rows = self.repo().ls(None, false, &NoProgress)?;
        let text: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{:>8} B  {}  {} copies  {:?}  {}",
                    r.size,
                    if r.present { "here" } else { "    " },
                    r.copies,
                    r.state,
                    r.path
                )
            })
            .collect();
        say(&format!("harmony -C {} ls", self.name), &text.join("\n  "));
        Ok(())
    }
}

fn say(command: &str, output: &str) {
    println!("$ {command}\n  {output}");
}

fn story(text: &str) {
    println!("\n# {text}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let base = tempfile::tempdir()?;
    story("Three locations: a laptop, a NAS, a desktop. The NAS and the desktop start empty.");
    let laptop = Place::init(base.path(), "laptop")?;
    let mut nas = Place::init(base.path(), "nas")?;
    let desktop = Place::init(base.path(), "desktop")?;
    laptop.write("photos/2026/beach.jpg", &vec![1u8; 300_000])?;
    laptop.write("photos/2026/hike.jpg", &vec![2u8; 200_000])?;
    laptop.write("music/song.flac", &vec![3u8; 500_000])?;
    laptop.commit()?;

    story("The NAS serves; the laptop syncs with it; the NAS joins the laptop's repository.");
    nas.serve(&[&laptop, &desktop])?;
    laptop.sync(&nas).await?;

    story("The desktop syncs with the NAS only, and learns of the laptop's files:");
    desktop.sync(&nas).await?;
    desktop.ls()?;
    let whereis = desktop.repo().whereis(&[RepoPath::new("music")?])?;
    say(
        "harmony -C desktop whereis music",
        &format!(
            "{} is held by {}",
            whereis[0].path,
            whereis[0]
                .holders
                .iter()
                .filter_map(|h| h.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    story("The NAS takes the photos (a partial get): the music stays on the laptop only.");
    let mut laptop_served = Place {
        name: "laptop",
        root: laptop.root.clone(),
        addr: None,
        stop: None,
    };
    laptop_served.serve(&[&nas, &desktop])?;
    let nas_repo = nas.repo();
    let wanted = nas_repo.wanted(Some(&[RepoPath::new("photos")?]))?;
    let mut holders = nas.holders(&[&laptop_served])?;
    let report = get(&nas.root, &wanted, &mut holders, Arc::new(NoProgress)).await?;
    holders.close().await;
    say(
        "harmony -C nas get photos",
        &format!(
            "{} files, {} bytes fetched",
            report.files, report.bytes_fetched
        ),
    );
    nas.ls()?;

    story("The laptop renames the photo folder: the rename travels without content.");
    fs::rename(
        laptop.root.join("photos/2026"),
        laptop.root.join("photos/summer-2026"),
    )?;
    laptop.sync(&nas).await?;
    println!(
        "  the NAS's working tree now has photos/summer-2026: {}",
        nas.root.join("photos/summer-2026/beach.jpg").exists()
    );

    story("The laptop and the NAS edit the same photo before syncing: a conflict.");
    laptop.write("photos/summer-2026/beach.jpg", b"laptop's retouch")?;
    nas.write("photos/summer-2026/beach.jpg", b"nas's retouch")?;
    nas.commit()?;
    laptop.sync(&nas).await?;
    for conflict in laptop.repo().conflicts()? {
        let sides: Vec<String> = conflict
            .sides
            .iter()
            .map(|s| format!("{} ({} B)", s.name.clone().unwrap_or_default(), s.size))
            .collect();
        say(
            "harmony -C laptop conflicts",
            &format!("{}: {}", conflict.path, sides.join(" vs ")),
        );
    }
    let done = laptop
        .repo()
        .resolve(&RepoPath::new("photos/summer-2026/beach.jpg")?, &Keep::Both)?;
    say(
        "harmony -C laptop resolve photos/summer-2026/beach.jpg --keep both",
        &format!(
            "kept the laptop's version; the other one is now {}",
            done.created[0]
        ),
    );
    laptop.sync(&nas).await?;
    nas.ls()?;

    for place in [nas, laptop_served] {
        if let Some(stop) = place.stop {
            let _ = stop.send(());
        }
    }
    println!(
        "\n(the locations were in {}; removed)",
        base.path().display()
    );
    Ok(())
}
