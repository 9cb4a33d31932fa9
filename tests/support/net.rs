//! Helpers for the transport tests: identities, nodes serving on 127.0.0.1:0,
//! waiting for server events, and a raw TLS client. Included with `#[path]`
//! by the tests that use it.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use harmony::model::{NodeId, RepoId};
use harmony::net::tls::{crypto_provider, PinnedServerVerifier, SERVER_NAME};
use harmony::net::{Builtin, Handler, Identity, Node, NodeConfig, ServerEvent, TrustList};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

/// A node identity in its own temporary folder.
pub struct Ident {
    pub dir: tempfile::TempDir,
    pub identity: Identity,
}

impl Ident {
    pub fn new() -> Ident {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = Identity::create(dir.path()).expect("identity");
        Ident { dir, identity }
    }

    pub fn id(&self) -> NodeId {
        self.identity.node_id()
    }
}

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Test settings: loopback, short timeouts.
pub fn config(repo: RepoId, name: &str) -> NodeConfig {
    let mut config = NodeConfig::new(repo, name, localhost());
    config.handshake_timeout = Duration::from_secs(3);
    config.stream_timeout = Duration::from_secs(3);
    config
}

/// A client-only node (it never serves).
pub fn client(ident: &Ident, config: NodeConfig) -> Node {
    Node::bind(ident.identity.clone(), config, TrustList::new()).expect("bind client")
}

/// A node serving in the background until dropped or stopped.
pub struct Server {
    pub node: Arc<Node>,
    pub addr: SocketAddr,
    pub events: broadcast::Receiver<ServerEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(ident: &Ident, config: NodeConfig, trust: TrustList) -> Server {
        Server::start_with(ident, config, trust, Arc::new(Builtin))
    }

    pub fn start_with(
        ident: &Ident,
        config: NodeConfig,
        trust: TrustList,
        handler: Arc<dyn Handler>,
    ) -> Server {
        let node = Node::bind(ident.identity.clone(), config, trust).expect("bind");
        Server::start_node(node, handler)
    }

    /// Serves with an already bound `node`.
    pub fn start_node(node: Node, handler: Arc<dyn Handler>) -> Server {
        let node = Arc::new(node);
        let addr = node.local_addr().unwrap();
        let events = node.subscribe();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = node.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(handler, None, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Server {
            node,
            addr,
            events,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn id(&self) -> NodeId {
        self.node.node_id()
    }

    /// Waits (up to 10 s) for an event matching `pred`, skipping others.
    pub async fn event(&mut self, pred: impl Fn(&ServerEvent) -> bool) -> ServerEvent {
        let wait = async {
            loop {
                match self.events.recv().await {
                    Ok(event) if pred(&event) => return event,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("server events ended: {e}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .expect("expected server event")
    }

    /// Stops serving and waits for the loop to end. The endpoint stays open
    /// while `self` lives, so it can repeat its close to a peer that lost it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("serve stops in time")
                .expect("serve task");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A QUIC client made straight from rustls and quinn, not through
/// `harmony::net::Node`: it presents whatever certificate and key it is
/// given (a stolen certificate with another key, say) and sends raw bytes,
/// so a test can make a node face what our own client never sends.
pub struct RawClient {
    endpoint: quinn::Endpoint,
    /// The connection, TLS done and nothing sent yet.
    pub conn: quinn::Connection,
}

impl RawClient {
    /// Connects to the node `server` at `addr` (pinned, as our client does),
    /// presenting `cert` with `key`. Only the handshake may fail: a broken
    /// setup panics, so that it cannot pass for a refusal.
    pub async fn connect(
        addr: SocketAddr,
        server: NodeId,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> Result<RawClient, quinn::ConnectionError> {
        let provider = crypto_provider();
        let key = provider.key_provider.load_private_key(key).expect("key");
        let presented = rustls::sign::CertifiedKey::new(vec![cert], key);
        let verifier = PinnedServerVerifier::new(server, &provider);
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(Presents(Arc::new(presented))));
        tls.alpn_protocols = vec![harmony::proto::ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS");
        let endpoint = quinn::Endpoint::client(localhost()).expect("client endpoint");
        let connecting = endpoint
            .connect_with(quinn::ClientConfig::new(Arc::new(quic)), addr, SERVER_NAME)
            .expect("connect");
        let conn = connecting.await?;
        Ok(RawClient { endpoint, conn })
    }

    /// Connects as `ident`, with its own certificate and key.
    pub async fn connect_as(ident: &Ident, addr: SocketAddr, server: NodeId) -> RawClient {
        let cert = ident.identity.certificate().clone();
        RawClient::connect(addr, server, cert, ident.identity.private_key())
            .await
            .expect("TLS handshake")
    }

    /// Sends `bytes` as the client's `Hello`: on the first stream, which it
    /// then finishes. Returns the server's half of that stream.
    pub async fn send_hello(&self, bytes: &[u8]) -> anyhow::Result<quinn::RecvStream> {
        let (mut send, recv) = self.conn.open_bi().await?;
        send.write_all(bytes).await?;
        send.finish()?;
        Ok(recv)
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"");
    }
}

/// Presents one fixed certificate with one fixed key, whether they match or not.
#[derive(Debug)]
struct Presents(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Presents {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Polls `check` every 20 ms for up to 10 s.
pub async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Runs a test body with an overall time limit.
pub async fn within<T>(secs: u64, body: impl Future<Output = T>) -> T {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tokio::time::timeout(Duration::from_secs(secs), body)
        .await
        .expect("test timed out")
}
