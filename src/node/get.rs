//! Getting content: a get planned from the location's state, run against
//! holders (the trusted peers, or any given ones).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{DialError, NodeSetup};
use crate::model::RepoPath;
use crate::transfer::{self, GetLock, GetReport, Holders, RateLimit, TransferProgress};
use crate::{GetPlan, Repo, Selection};

/// The trusted peers of `repo` as holders, reached through one client
/// endpoint (IPv6 when any peer's address is), each waiting
/// `handshake_timeout` for its peer, content received at most at the
/// location's `bandwidth_limit` as `config.toml` says now (a running `serve`
/// may give a limit it keeps current instead: [`Holders::rate_limit`]).
/// Must be called within a Tokio runtime.
pub fn trusted_holders(repo: &Repo, handshake_timeout: Duration) -> Result<Holders, DialError> {
    let limit = RateLimit::new(repo.config()?.bandwidth_limit);
    let peers = repo.store().peers().map_err(crate::Error::from)?;
    let ipv6 = peers.iter().any(|p| p.addr.starts_with('['));
    let local: SocketAddr = if ipv6 { "[::]:0" } else { "0.0.0.0:0" }
        .parse()
        .expect("a valid address");
    let mut setup = NodeSetup::of(repo, local)?;
    setup.config.handshake_timeout = handshake_timeout;
    Ok(Holders::new(setup.bind_client()?, peers).rate_limit(limit))
}

/// A `get` ready to run: the location locked for it (one get at a time),
/// then its plan made from the state.
pub struct PlannedGet {
    lock: GetLock,
    plan: GetPlan,
}

impl PlannedGet {
    /// Plans the get of the files `paths` select in `repo` (see
    /// [`Repo::wanted`]); fails with [`Error::GetRunning`](crate::Error)
    /// while another get runs there.
    pub fn new(repo: &Repo, paths: Option<&[RepoPath]>) -> crate::Result<PlannedGet> {
        PlannedGet::of(repo, paths.into())
    }

    /// Plans the get of the files `selection` selects in `repo`.
    pub fn of(repo: &Repo, selection: Selection<'_>) -> crate::Result<PlannedGet> {
        let lock = GetLock::take(repo.root())?;
        let plan = repo.plan_get(selection)?;
        Ok(PlannedGet { lock, plan })
    }

    /// What will be fetched.
    pub fn plan(&self) -> &GetPlan {
        &self.plan
    }

    /// Fetches the planned contents from `holders`, telling `progress`.
    pub async fn run(
        self,
        holders: &mut Holders,
        progress: Arc<dyn TransferProgress>,
    ) -> crate::Result<GetReport> {
        transfer::get(self.lock, self.plan, holders, progress).await
    }
}
