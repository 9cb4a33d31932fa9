//! The machine's limit for the network benchmarks: a bare quinn connection
//! with default settings on loopback, one stream, data from memory.
//! Included with `#[path]`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harmony::net::tls::{crypto_provider, PinnedServerVerifier};
use harmony::net::Identity;

pub const BLOCK: usize = 1 << 20;

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Two bare quinn endpoints on loopback: default transport and socket,
/// server-auth TLS only.
pub struct BarePair {
    pub server: quinn::Endpoint,
    pub client: quinn::Endpoint,
    pub client_config: quinn::ClientConfig,
    pub addr: SocketAddr,
}

impl BarePair {
    pub fn new(server_id: &Identity) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(
                vec![server_id.certificate().clone()],
                server_id.private_key(),
            )?;
        server_tls.alpn_protocols = vec![b"bench".to_vec()];
        let server_config = quinn::ServerConfig::with_crypto(Arc::new(
            quinn::crypto::rustls::QuicServerConfig::try_from(server_tls)?,
        ));
        let server = quinn::Endpoint::server(server_config, localhost())?;
        let addr = server.local_addr()?;

        let verifier = PinnedServerVerifier::new(server_id.node_id(), &crypto_provider());
        let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        client_tls.alpn_protocols = vec![b"bench".to_vec()];
        let client_config = quinn::ClientConfig::new(Arc::new(
            quinn::crypto::rustls::QuicClientConfig::try_from(client_tls)?,
        ));
        let client = quinn::Endpoint::client(localhost())?;
        Ok(BarePair {
            server,
            client,
            client_config,
            addr,
        })
    }
}

impl BarePair {
    /// One timed exchange over one stream: the client sends `ask`; `serve`
    /// answers on the server's side (and finishes the stream); `receive`
    /// reads the answer. Returns the time from opening the stream to the
    /// end of `receive`, and what `receive` returned.
    pub async fn one_stream<S, SF, R, RF, T>(
        self,
        ask: &[u8],
        serve: S,
        receive: R,
    ) -> anyhow::Result<(Duration, T)>
    where
        S: FnOnce(quinn::SendStream, Vec<u8>) -> SF + Send + 'static,
        SF: std::future::Future<Output = ()> + Send,
        R: FnOnce(quinn::RecvStream) -> RF,
        RF: std::future::Future<Output = anyhow::Result<T>>,
    {
        let BarePair {
            server,
            client,
            client_config,
            addr,
        } = self;
        let ask_len = ask.len();
        let serving = tokio::spawn(async move {
            let conn = server.accept().await.unwrap().await.unwrap();
            let (send, mut recv) = conn.accept_bi().await.unwrap();
            let mut asked = vec![0; ask_len];
            recv.read_exact(&mut asked).await.unwrap();
            serve(send, asked).await;
            let _ = conn.closed().await;
            server.wait_idle().await;
        });

        let conn = client.connect_with(client_config, addr, "bench")?.await?;
        let start = Instant::now();
        let (mut send, recv) = conn.open_bi().await?;
        send.write_all(ask).await?;
        send.finish()?;
        let received = receive(recv).await?;
        let elapsed = start.elapsed();
        conn.close(0u32.into(), b"done");
        client.wait_idle().await;
        serving.await?;
        Ok((elapsed, received))
    }
}

/// Bare quinn ([`BarePair`]): `len` bytes from memory over one stream.
pub async fn bare_quinn(server_id: &Identity, len: u64) -> anyhow::Result<Duration> {
    let serve = |mut send: quinn::SendStream, asked: Vec<u8>| async move {
        let mut left = u64::from_be_bytes(asked.try_into().unwrap());
        let block = vec![0xa5u8; BLOCK];
        while left > 0 {
            let n = left.min(BLOCK as u64) as usize;
            send.write_all(&block[..n]).await.unwrap();
            left -= n as u64;
        }
        send.finish().unwrap();
    };
    let receive = |mut recv: quinn::RecvStream| async move {
        let mut got = 0u64;
        while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
            got += chunk.bytes.len() as u64;
        }
        Ok(got)
    };
    let (elapsed, got) = BarePair::new(server_id)?
        .one_stream(&len.to_be_bytes(), serve, receive)
        .await?;
    anyhow::ensure!(got == len, "got {got} of {len} bytes");
    Ok(elapsed)
}
