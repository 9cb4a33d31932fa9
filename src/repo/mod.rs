//! [`Repo`]: one location of a repository, the API the command line, the
//! tests and the examples use. It ties the pure model to the store, the
//! working tree and the node identity.

pub(crate) mod apply;
mod commit;
mod config;
mod config_file;
mod plan;
mod preferences;
mod resolve;
mod rules;
mod trash;
mod view;

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) use apply::has_work_here;
pub use apply::ApplyReport;
pub use commit::{CommitOptions, CommitReport};
pub use config::{Config, CONFIG_FILE, KEYS as CONFIG_KEYS};
pub use config_file::{ConfigSource, ConfigValue};
pub use plan::{GetPlan, Selection, WantedContent};
pub use resolve::{Conflict, ConflictKind, ConflictSide, Keep, Resolution};
pub use rules::RuleVerdict;
pub use trash::{TrashEmptied, TrashReason, TrashedFile, TRASH_DIR};
pub use view::{FileState, Holder, ListedFile, StatusLine, Whereabouts};

use crate::chunk::ChunkParams;
use crate::error::{Error, Result};
use crate::model::{NodeId, NodeRecord, Preferences, RepoId, STATE_DIR};
use crate::net::record_proof;
use crate::net::Identity;
use crate::store::{Settings, Store, DB_FILE};

/// The port a location listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7447;

/// Choices made at `init`.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// The node's name; the host name when not given.
    pub name: Option<String>,
    /// Where `serve` listens; `0.0.0.0:7447` when not given.
    pub listen: Option<String>,
}

/// One location: a working tree with its `.harmony/` folder.
pub struct Repo {
    root: PathBuf,
    store: Store,
    identity: Identity,
    settings: Settings,
    /// Whether the tree's file system folds case, once probed (the probe
    /// writes a file: not once per file applied).
    probed_case_folding: std::cell::OnceCell<bool>,
}

impl Repo {
    /// Makes `root` a new location of a new repository.
    ///
    /// Everything is prepared in a temporary folder next to `.harmony/` and
    /// renamed into place at the end, so an interrupted `init` leaves no
    /// half-made location behind.
    pub fn init(root: &Path, options: &InitOptions) -> Result<Repo> {
        let root = fs::canonicalize(root).map_err(Error::io("open", root))?;
        let state_dir = root.join(STATE_DIR);
        if state_dir.exists() {
            return Err(Error::AlreadyInitialised(root));
        }
        if let Some(parent) = root.parent() {
            if let Ok(outer) = find_root(parent) {
                return Err(Error::NestedLocation { path: root, outer });
            }
        }
        let name = match &options.name {
            Some(name) => validate_name(name)?,
            None => default_name(),
        };
        let listen = options
            .listen
            .clone()
            .unwrap_or_else(|| format!("0.0.0.0:{DEFAULT_PORT}"));
        validate_listen(&listen)?;

        let staging = root.join(format!("{STATE_DIR}.init-{}", std::process::id()));
        fs::create_dir(&staging).map_err(Error::io("create", &staging))?;
        let made = (|| {
            Identity::create(&staging)?;
            let settings = Settings {
                repo_id: RepoId::random(),
                node_name: name,
                listen,
                chunking: ChunkParams::DEFAULT,
            };
            Store::create(&staging.join(DB_FILE), &settings)?;
            fs::rename(&staging, &state_dir).map_err(Error::io("create", &state_dir))
        })();
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        let mut repo = Repo::open_root(root)?;
        repo.publish_node_record()?;
        Ok(repo)
    }

    /// Writes this node's record (name, listen address) into the replicated
    /// state, so that other locations learn how to reach it.
    pub fn publish_node_record(&mut self) -> Result<()> {
        let (name, addr) = (
            self.settings.node_name.clone(),
            self.settings.listen.clone(),
        );
        self.update_node_record(|record| {
            record.name = name;
            record.addrs = vec![addr];
        })
    }

    /// This location's placement preferences, as its node record says.
    pub fn preferences(&self) -> Result<Preferences> {
        Ok(self
            .store
            .node(self.node_id())?
            .map(|r| r.preferences)
            .unwrap_or_default())
    }

    /// Changes this location's placement preferences (its node record,
    /// replicated with the state). Nothing is written if `change` leaves
    /// them as they are.
    pub fn update_preferences(&mut self, change: impl FnOnce(&mut Preferences)) -> Result<()> {
        self.update_node_record(|record| change(&mut record.preferences))
    }

    /// Rewrites this node's own record with `change` applied, under a new
    /// write counter, and signs it, unless the change leaves it as it is
    /// and signed. A record only signed now (one stored before records were
    /// signed) keeps its counter: its signed copy wins over the unsigned
    /// one everywhere ([`NodeRecord::merge`]).
    fn update_node_record(&mut self, change: impl FnOnce(&mut NodeRecord)) -> Result<()> {
        let id = self.node_id();
        let writer = self.store.write()?;
        let current = writer.node(id)?;
        let mut record = current.clone().unwrap_or_else(|| NodeRecord {
            id,
            name: String::new(),
            addrs: Vec::new(),
            counter: 0,
            preferences: Preferences::default(),
            proof: None,
        });
        change(&mut record);
        let changed = current.as_ref() != Some(&record);
        if !changed && record_proof::verify(&record).is_ok() {
            return Ok(());
        }
        if changed {
            record.counter = writer.next_write_counter()?;
        }
        record_proof::sign(&self.identity, &mut record)?;
        writer.put_node(&record, None)?;
        writer.commit()?;
        Ok(())
    }

    /// Opens the location that contains `start` (walking up to `.harmony/`).
    pub fn open(start: &Path) -> Result<Repo> {
        let start = fs::canonicalize(start).map_err(Error::io("open", start))?;
        Repo::open_root(find_root(&start)?)
    }

    fn open_root(root: PathBuf) -> Result<Repo> {
        let state_dir = root.join(STATE_DIR);
        let identity = Identity::load(&state_dir)?;
        let store = Store::open(&state_dir.join(DB_FILE))?;
        let settings = store.settings()?;
        let mut repo = Repo {
            root,
            store,
            identity,
            settings,
            probed_case_folding: std::cell::OnceCell::new(),
        };
        // A record stored before records were signed (schema 5) is signed
        // now: peers refuse it unsigned. (Only this node signs its record,
        // so one with a proof needs no check at every open.)
        let own = repo.store.node(repo.node_id())?;
        if own.is_some_and(|r| r.proof.is_none()) {
            repo.update_node_record(|_| {})?;
        }
        Ok(repo)
    }

    /// The working tree's top folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This location's node id.
    pub fn node_id(&self) -> NodeId {
        self.identity.node_id()
    }

    /// This location's key and certificate, for a node to present.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// This location's settings as last read (the repository may change once, at a join).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Joins the repository `repo_id` if this location is still fresh (has
    /// recorded nothing, synced with no one); true if it now belongs to it.
    pub fn join_if_fresh(&mut self, repo_id: RepoId) -> Result<bool> {
        if self.settings.repo_id == repo_id {
            return Ok(true);
        }
        let joined = self.store.join_repository(repo_id)?;
        if joined {
            self.settings.repo_id = repo_id;
        }
        Ok(joined)
    }

    /// The state database, for the layers that read it directly (sync, transfer, node).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The state database, for the layers that write to it directly (sync merges).
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}

/// The nearest folder at or above `start` that holds `.harmony/`.
fn find_root(start: &Path) -> Result<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(STATE_DIR).join(DB_FILE).is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::NotALocation(start.to_path_buf()))
}

fn validate_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(Error::BadName(name.to_owned()))
    }
}

fn validate_listen(listen: &str) -> Result<()> {
    listen
        .parse::<SocketAddr>()
        .map(|_| ())
        .map_err(|_| Error::BadListenAddress(listen.to_owned()))
}

/// The host name, cleaned into a valid node name.
fn default_name() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cleaned: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "node".to_owned()
    } else {
        cleaned
    }
}

/// Milliseconds since the Unix epoch, for the human side of versions.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
