//! The [`Handler`] a server dispatches requests to, and [`Builtin`], the
//! requests every node answers (a location's router passes it the rest).

use std::future::Future;
use std::pin::Pin;

use crate::net::stream::FramedStream;
use crate::net::{NetError, PeerInfo};
use crate::proto::{ErrorCode, Request, Response};

/// A boxed future, as handlers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the server does with a request. The server has already read and
/// validated the request frame; the handler writes the response frame (and
/// whatever the protocol says follows it) on `stream`. The server finishes
/// the stream when the handler returns `Ok`, and resets it on `Err`.
///
/// Later request kinds plug in by implementing `Handler` for a type that
/// handles its own variants and passes the others to [`Builtin`].
pub trait Handler: Send + Sync + 'static {
    /// Answers `request` from `peer` on `stream`.
    fn handle<'a>(
        &'a self,
        peer: &'a PeerInfo,
        request: Request,
        stream: &'a mut FramedStream,
    ) -> BoxFuture<'a, Result<(), NetError>>;
}

/// The requests every node answers: `Ping` and `Bulk`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Builtin;

/// The bytes a `Bulk` response repeats: 0, 1, ..., 255, 0, 1, ...
pub fn bulk_pattern() -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| (0..BULK_BLOCK).map(|i| i as u8).collect())
}

/// Bytes per write of a bulk response.
const BULK_BLOCK: usize = 1 << 20;

impl Handler for Builtin {
    fn handle<'a>(
        &'a self,
        _peer: &'a PeerInfo,
        request: Request,
        stream: &'a mut FramedStream,
    ) -> BoxFuture<'a, Result<(), NetError>> {
        Box::pin(async move {
            match request {
                Request::Ping { payload } => stream.send_frame(&Response::Pong { payload }).await,
                Request::Bulk { len } => {
                    stream.send_frame(&Response::Bulk { len }).await?;
                    let pattern = bulk_pattern();
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(pattern.len() as u64) as usize;
                        stream.send_raw(&pattern[..n]).await?;
                        left -= n as u64;
                    }
                    Ok(())
                }
                // Served by the location's router (`node::Router`), which
                // passes only the other kinds on to `Builtin`.
                Request::Sync(_)
                | Request::Manifest { .. }
                | Request::ManifestPages { .. }
                | Request::Chunks(_)
                | Request::Files { .. }
                | Request::Refine { .. }
                | Request::Has { .. }
                | Request::Notify { .. }
                | Request::Join(_) => {
                    let refusal = Response::Error {
                        code: ErrorCode::UNSUPPORTED,
                        message: "this endpoint serves no repository location".into(),
                    };
                    stream.send_frame(&refusal).await
                }
            }
        })
    }
}
