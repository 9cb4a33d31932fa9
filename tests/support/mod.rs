//! Helpers shared by the integration tests: temporary locations and files.

#![allow(dead_code)] // each test binary uses a different subset

pub mod net;
pub mod relay;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use std::sync::Arc;

use harmony::model::{RepoId, RepoPath};
use harmony::net::TrustList;
use harmony::node::{NodeSetup, PlannedGet, Router};
use harmony::scan::NoProgress;
use harmony::sync::{sync_with, SessionReport, SyncError};
use harmony::{CommitOptions, CommitReport, InitOptions, ListedFile, Repo};
use net::Server;

/// A location in a temporary folder, removed on drop.
pub struct Location {
    pub dir: tempfile::TempDir,
    pub repo: Repo,
}

impl Location {
    pub fn new(name: &str) -> Location {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = InitOptions {
            name: Some(name.to_owned()),
            listen: Some("127.0.0.1:0".to_owned()),
        };
        let repo = Repo::init(dir.path(), &options).expect("init");
        // No test location announces itself on the host's network.
        fs::write(
            dir.path().join(".harmony/config.toml"),
            "discovery = false\n",
        )
        .unwrap();
        Location { dir, repo }
    }

    /// A new location of `other`'s repository (as its first sync would make it).
    pub fn joining(name: &str, other: &Location) -> Location {
        Location::new(name).join(other.repo.settings().repo_id)
    }

    /// This fresh location, made a location of the repository `repo_id`.
    fn join(mut self, repo_id: RepoId) -> Location {
        assert!(self.repo.join_if_fresh(repo_id).unwrap());
        self
    }

    /// `loc`, made a location of `other`'s repository even though it holds
    /// state of its own (as if it had been initialised from `other`).
    pub fn joining_repo(loc: Location, other: &Location) -> Location {
        let db = loc.root().join(".harmony/state.db");
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'repo_id'",
            [other.repo.settings().repo_id.0.to_vec()],
        )
        .unwrap();
        let repo = Repo::open(&loc.root()).unwrap();
        Location { dir: loc.dir, repo }
    }

    pub fn root(&self) -> PathBuf {
        self.repo.root().to_path_buf()
    }

    /// Writes `bytes` at `path` (creating folders) with an mtime safely in the
    /// past, so that a later scan trusts its stat fields.
    pub fn write(&self, path: &str, bytes: &[u8]) {
        write_old(&self.root().join(path), bytes);
    }

    /// Commits; deleting every file is allowed here (tests that check the
    /// mass-deletion guard call `repo.commit` themselves).
    pub fn commit(&mut self) -> CommitReport {
        let options = CommitOptions {
            allow_mass_delete: true,
        };
        self.repo.commit(&options, &NoProgress).expect("commit")
    }

    pub fn ls(&self) -> Vec<ListedFile> {
        let mut rows = Vec::new();
        self.repo
            .ls(None, false, &NoProgress, |row| rows.push(row))
            .expect("ls");
        rows
    }

    /// Paths listed by `ls`, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.ls().into_iter().map(|f| f.path.to_string()).collect()
    }
}

/// Locations `a` and `b` of `locs` (two different ones), both mutable.
pub fn pair(locs: &mut [Location], a: usize, b: usize) -> (&mut Location, &mut Location) {
    assert_ne!(a, b);
    if a < b {
        let (left, right) = locs.split_at_mut(b);
        (&mut left[a], &mut right[0])
    } else {
        let (left, right) = locs.split_at_mut(a);
        (&mut right[0], &mut left[b])
    }
}

/// Fresh locations named `names`, each in its own folder: `let [a, b, c] =
/// locations(["a", "b", "c"]);`.
pub fn locations<const N: usize>(names: [&str; N]) -> [Location; N] {
    names.map(Location::new)
}

/// Locations named `names` of one repository: the first is new, the others
/// joined it (as their first sync would make them): `let [a, b, c] =
/// one_repository(["a", "b", "c"]);`.
pub fn one_repository<const N: usize>(names: [&str; N]) -> [Location; N] {
    let mut repo_id = None;
    names.map(|name| {
        let loc = Location::new(name);
        match repo_id {
            Some(id) => loc.join(id),
            None => {
                repo_id = Some(loc.repo.settings().repo_id);
                loc
            }
        }
    })
}

/// a and b of one repository, both holding `shared.bin` with `bytes`
/// (synced in process, each side's copy committed).
pub fn shared_pair(bytes: &[u8]) -> (Location, Location) {
    let [mut a, mut b] = locations(["a", "b"]);
    a.write("shared.bin", bytes);
    sync_pair(&mut a, &mut b);
    // b takes a copy by hand (as `get` will) and commits it: both hold it.
    b.write("shared.bin", bytes);
    b.commit();
    sync_pair(&mut a, &mut b);
    assert_eq!(a.ls()[0].copies, 2);
    (a, b)
}

/// [`shared_pair`] after concurrent edits of `shared.bin` ("edit by a",
/// "edit by b") met in a sync: a conflict on both sides.
pub fn conflicted_pair() -> (Location, Location) {
    let (mut a, mut b) = shared_pair(b"base");
    a.write("shared.bin", b"edit by a");
    b.write("shared.bin", b"edit by b");
    sync_pair(&mut a, &mut b);
    (a, b)
}

/// a holding `files` (committed) and serving b over QUIC, which trusts it
/// and has synced with it (b holds nothing yet).
pub async fn trusted_pair(files: &[(&str, &[u8])]) -> (Location, Location, Server) {
    trusted_pair_with(files, |_| {}).await
}

/// [`trusted_pair`] with a's serving settings changed by `adjust`.
pub async fn trusted_pair_with(
    files: &[(&str, &[u8])],
    adjust: impl FnOnce(&mut harmony::net::NodeConfig),
) -> (Location, Location, Server) {
    let [mut a, mut b] = locations(["a", "b"]);
    for (path, bytes) in files {
        a.write(path, bytes);
    }
    a.commit();
    let server = serve_with(&a, &[&b], adjust);
    sync_once(&mut b, &a, server.addr).await.unwrap();
    (a, b, server)
}

/// Writes a file and backdates its mtime by an hour.
pub fn write_old(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create folders");
    }
    fs::write(path, bytes).expect("write file");
    backdate(path);
}

pub fn backdate(path: &Path) {
    let file = fs::File::options().write(true).open(path).expect("open");
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .expect("set mtime");
}

/// Deterministic incompressible bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Runs the `harmony` binary on the location at `root` as a user whom file
/// permissions stop: as root (CI), as `nobody` through util-linux's
/// `setpriv`, on a tree handed to `nobody` for the run and given back
/// after; otherwise as this user.
pub fn harmony_unprivileged(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("harmony");
    if !is_root() {
        return std::process::Command::new(bin)
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .unwrap();
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let nobody: Vec<u32> = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("a user nobody")
        .split(':')
        .skip(2)
        .take(2)
        .map(|id| id.parse().unwrap())
        .collect();
    chown_tree(root, Some(nobody[0]), Some(nobody[1]));
    let out = std::process::Command::new("setpriv")
        .arg(format!("--reuid={}", nobody[0]))
        .arg(format!("--regid={}", nobody[1]))
        .arg("--clear-groups")
        .arg(bin)
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .expect("setpriv (util-linux) runs the binary as nobody");
    chown_tree(root, Some(0), Some(0));
    out
}

fn chown_tree(path: &std::path::Path, uid: Option<u32>, gid: Option<u32>) {
    std::os::unix::fs::lchown(path, uid, gid).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// True when this process runs as root (file permissions do not stop it).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// One bidirectional state sync between two locations, in process, through
/// the same library calls the network session makes: commit, hellos, batches
/// both ways, merge, apply to the working trees. Returns the number of
/// batches exchanged (0 when the digests were equal).
pub fn sync_pair(a: &mut Location, b: &mut Location) -> usize {
    a.commit();
    b.commit();
    sync_pair_committed(a, b)
}

/// [`sync_pair`] without the commits first: what is in the working trees but
/// not committed stays a local change.
pub fn sync_pair_committed(a: &mut Location, b: &mut Location) -> usize {
    sync_pair_merged(a, b, true)
}

/// [`sync_pair_committed`]; without `apply`, the sessions stop after their
/// merges, as a process killed before its apply step does.
pub fn sync_pair_merged(a: &mut Location, b: &mut Location, apply: bool) -> usize {
    session(a, b, apply).batches
}

/// What one in-process session exchanged.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exchanged {
    /// Batches, both ways (0 when the digests were equal).
    pub batches: usize,
    /// Encoded bytes of both hellos and every batch, as frames: the
    /// session's payload on the wire, without QUIC's and TLS's overhead.
    pub bytes: usize,
}

/// [`sync_pair_committed`], measuring what it exchanged.
pub fn sync_pair_measured(a: &mut Location, b: &mut Location) -> Exchanged {
    session(a, b, true)
}

fn session(a: &mut Location, b: &mut Location, apply: bool) -> Exchanged {
    use harmony::proto::{encode_frame, Request, Response};
    use harmony::sync;
    // A fresh location joins the repository of its first peer.
    let repo_a = a.repo.settings().repo_id;
    let repo_b = b.repo.settings().repo_id;
    assert!(b.repo.join_if_fresh(repo_a).unwrap() || a.repo.join_if_fresh(repo_b).unwrap());
    let (id_a, id_b) = (a.repo.node_id(), b.repo.node_id());
    let hello_a = sync::hello(a.repo.store(), id_b, b.repo.store().is_fresh().unwrap()).unwrap();
    let hello_b = sync::hello(b.repo.store(), id_a, a.repo.store().is_fresh().unwrap()).unwrap();
    let in_sync = sync::begin(a.repo.store_mut(), id_b, &hello_a, &hello_b).unwrap();
    sync::begin(b.repo.store_mut(), id_a, &hello_b, &hello_a).unwrap();
    let hellos = encode_frame(&Request::Sync(hello_a.clone())).unwrap().len()
        + encode_frame(&Response::Sync(hello_b.clone()))
            .unwrap()
            .len();
    if in_sync {
        // The session applies what an earlier one merged and left blocked.
        for loc in [a, b] {
            if !loc.repo.store().blocked().unwrap().is_empty() {
                loc.repo.apply_remote(&[]).unwrap();
            }
            sync::collect_tombstones(loc.repo.store_mut()).unwrap();
        }
        return Exchanged {
            batches: 0,
            bytes: hellos,
        };
    }
    let from_a = outgoing(a.repo.store(), &hello_a, &hello_b, id_b);
    let from_b = outgoing(b.repo.store(), &hello_b, &hello_a, id_a);
    let count = from_a.len() + from_b.len();
    let bytes: usize = from_a
        .iter()
        .chain(&from_b)
        .map(|batch| encode_frame(batch).unwrap().len())
        .sum();
    for (to, mut incoming, batches) in [
        (
            &mut *b,
            sync::Incoming::new(id_a, &hello_b, &hello_a),
            from_a,
        ),
        (
            &mut *a,
            sync::Incoming::new(id_b, &hello_a, &hello_b),
            from_b,
        ),
    ] {
        let me = to.repo.node_id();
        let mut changed = Vec::new();
        for batch in batches {
            let merged = sync::merge_batch(to.repo.store_mut(), me, &mut incoming, batch).unwrap();
            changed.extend(merged.changed);
        }
        if !apply {
            continue;
        }
        to.repo.apply_remote(&changed).unwrap();
        sync::collect_tombstones(to.repo.store_mut()).unwrap();
    }
    Exchanged {
        batches: count,
        bytes: hellos + bytes,
    }
}

/// Every batch `store` has for the peer `to` in the session of these
/// hellos, as its sender would send them.
pub fn outgoing(
    store: &harmony::store::Store,
    mine: &harmony::sync::SyncHello,
    theirs: &harmony::sync::SyncHello,
    to: harmony::model::NodeId,
) -> Vec<harmony::sync::Batch> {
    let mut out = harmony::sync::Outgoing::new(mine, theirs, to);
    std::iter::from_fn(|| out.next_batch(store).unwrap()).collect()
}

/// Serves `loc` to the `trusted` locations.
pub fn serve(loc: &Location, trusted: &[&Location]) -> Server {
    serve_with(loc, trusted, |_| {})
}

/// [`serve`] with settings changed by `adjust` (e.g. a short stream timeout).
pub fn serve_with(
    loc: &Location,
    trusted: &[&Location],
    adjust: impl FnOnce(&mut harmony::net::NodeConfig),
) -> Server {
    serve_routed(loc, trusted, adjust, |router| router)
}

/// [`serve_with`], its router changed by `route` (e.g. a rate limit).
pub fn serve_routed(
    loc: &Location,
    trusted: &[&Location],
    adjust: impl FnOnce(&mut harmony::net::NodeConfig),
    route: impl FnOnce(Router) -> Router,
) -> Server {
    let trust = TrustList::from_peers(
        trusted
            .iter()
            .map(|t| (t.repo.node_id(), t.repo.settings().node_name.clone())),
    );
    let mut setup = sync_setup(&loc.root());
    adjust(&mut setup.config);
    let node = setup.bind(trust).unwrap();
    let router = route(Router::new(loc.root(), node.membership()));
    Server::start_node(node, Arc::new(router))
}

/// `holder` serving only `client`, through the handler `wrap` makes of its
/// router (a rogue that lies, say); returns the server and the handler.
pub fn serve_wrapped<H: harmony::net::Handler + 'static>(
    holder: &Location,
    client: &Location,
    wrap: impl FnOnce(Router) -> H,
) -> (Server, Arc<H>) {
    let name = client.repo.settings().node_name.clone();
    let trust = TrustList::from_peers([(client.repo.node_id(), name)]);
    let node = sync_setup(&holder.root()).bind(trust).unwrap();
    let handler = Arc::new(wrap(Router::new(holder.root(), node.membership())));
    (Server::start_node(node, handler.clone()), handler)
}

/// One `harmony sync` from `loc` to the node serving at `addr`: commit,
/// connect, one session. Returns the report and the UDP bytes the
/// connection moved (both directions, handshake included).
pub async fn sync_once(
    loc: &mut Location,
    server: &Location,
    addr: std::net::SocketAddr,
) -> Result<(SessionReport, u64), SyncError> {
    loc.commit();
    let node = sync_setup(&loc.root()).bind_client().unwrap();
    let conn = node
        .connect(
            addr,
            server.repo.node_id(),
            &server.repo.settings().node_name,
        )
        .await?;
    let report = sync_with(&conn, loc.root()).await;
    let stats = conn.connection().stats();
    conn.close();
    Ok((report?, stats.udp_tx.bytes + stats.udp_rx.bytes))
}

/// The node of the location at `root` with the transport tests' settings:
/// loopback, 3 s for a handshake and for each read.
pub fn node_setup(root: &Path) -> NodeSetup {
    let mut setup = NodeSetup::open(root, net::localhost()).expect("node settings");
    setup.config.handshake_timeout = Duration::from_secs(3);
    setup.config.stream_timeout = Duration::from_secs(3);
    setup
}

/// [`node_setup`] for sync: short handshakes, but batch frames of 256 KiB
/// over a slow lossy link need more than the transport tests' 3 s per read.
pub fn sync_setup(root: &Path) -> NodeSetup {
    let mut setup = node_setup(root);
    setup.config.stream_timeout = Duration::from_secs(20);
    setup
}

/// Holders for `loc`: the given serving locations at their addresses.
pub fn holders(
    loc: &Location,
    serving: &[(&Location, std::net::SocketAddr)],
) -> harmony::transfer::Holders {
    holders_with(loc, serving, |_| {})
}

/// [`holders`] with the client's settings changed by `adjust` (e.g. a short
/// stream timeout).
pub fn holders_with(
    loc: &Location,
    serving: &[(&Location, std::net::SocketAddr)],
    adjust: impl FnOnce(&mut harmony::net::NodeConfig),
) -> harmony::transfer::Holders {
    let mut setup = sync_setup(&loc.root());
    adjust(&mut setup.config);
    let node = setup.bind_client().unwrap();
    let peers = serving
        .iter()
        .map(|(other, addr)| harmony::store::PeerRecord {
            name: other.repo.settings().node_name.clone(),
            node_id: other.repo.node_id(),
            addr: addr.to_string(),
            added_ms: 0,
        })
        .collect();
    harmony::transfer::Holders::new(node, peers)
}

/// `harmony get PATHS` (every file for an empty list; `None`: the files held
/// here in an older version) from the given serving locations.
pub async fn get_from(
    loc: &Location,
    paths: Option<&[&str]>,
    serving: &[(&Location, std::net::SocketAddr)],
) -> harmony::transfer::GetReport {
    get_through(loc, paths, holders(loc, serving)).await
}

/// [`get_from`] through the given `holders` (e.g. with a rate limit).
pub async fn get_through(
    loc: &Location,
    paths: Option<&[&str]>,
    mut holders: harmony::transfer::Holders,
) -> harmony::transfer::GetReport {
    let repo = Repo::open(&loc.root()).unwrap();
    let paths: Option<Vec<RepoPath>> =
        paths.map(|ps| ps.iter().map(|p| RepoPath::new(p).unwrap()).collect());
    let planned = PlannedGet::new(&repo, paths.as_deref()).unwrap();
    let report = planned
        .run(&mut holders, std::sync::Arc::new(NoProgress))
        .await
        .unwrap();
    holders.close().await;
    report
}

/// What a working tree holds, `.harmony/` aside: each file's bytes and
/// executable bit, each link's target.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    File(Vec<u8>, bool),
    Link(String),
}

pub fn tree(loc: &Location) -> BTreeMap<String, Item> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Item>) {
        for item in fs::read_dir(dir).unwrap() {
            let item = item.unwrap();
            let path = item.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == ".harmony" {
                continue;
            }
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(rel, Item::Link(target.to_string_lossy().into_owned()));
            } else if meta.is_dir() {
                walk(root, &path, out);
            } else {
                let exec = meta.permissions().mode() & 0o100 != 0;
                out.insert(rel, Item::File(fs::read(&path).unwrap(), exec));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&loc.root(), &loc.root(), &mut out);
    out
}
