//! Throughput of one bulk stream over loopback: a bare quinn connection with
//! default settings next to Harmony's own endpoint (mutual TLS with pinning
//! verifiers, tuned transport, socket buffers, the `Bulk` request), in the
//! same run. Data is generated from memory on the sending side and counted,
//! not stored, on the receiving side.
//!
//! `cargo run --release --example bench_transport [-- GIB [ROUNDS]]`
//! (default: 1 GiB per transfer, 3 rounds; the median is reported).

use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/raw_quinn.rs"]
mod raw_quinn;

use harmony::model::RepoId;
use harmony::net::{Builtin, Identity, Node, NodeConfig, TrustList};
use raw_quinn::{bare_quinn, localhost};

/// Harmony's endpoint: `Node::serve` with the built-in handler, a client
/// `Node`, the handshake, then one `Bulk` request.
async fn harmony_node(
    server_id: &Identity,
    client_id: &Identity,
    len: u64,
) -> anyhow::Result<Duration> {
    let repo = RepoId([1; 16]);
    let trust = TrustList::from_peers([(client_id.node_id(), "client".to_owned())]);
    // UNTUNED=1: quinn's default transport and socket, to see what tuning costs.
    let tuned = std::env::var_os("UNTUNED").is_none();
    let mut config = NodeConfig::new(repo, "server", localhost());
    config.tuned = tuned;
    let server = Arc::new(Node::bind(server_id.clone(), config, trust)?);
    let addr = server.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .serve(Arc::new(Builtin), None, async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    let mut config = NodeConfig::new(repo, "client", localhost());
    config.tuned = tuned;
    let client = Node::bind_client(client_id.clone(), config)?;
    let conn = client.connect(addr, server_id.node_id(), "server").await?;
    let start = Instant::now();
    let got = conn.bulk(len).await?;
    let elapsed = start.elapsed();
    anyhow::ensure!(got == len, "got {got} of {len} bytes");
    conn.close();
    client.shutdown().await;
    let _ = stop.send(());
    serving.await?;
    Ok(elapsed)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mb_s(len: u64, d: Duration) -> f64 {
    len as f64 / d.as_secs_f64() / 1e6
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let gib: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1.0);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let len = (gib * (1u64 << 30) as f64) as u64;

    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("s"))?;
    std::fs::create_dir(dir.path().join("c"))?;
    let server_id = Identity::create(&dir.path().join("s"))?;
    let client_id = Identity::create(&dir.path().join("c"))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (mut bare, mut ours) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for round in 1..=rounds {
            let b = bare_quinn(&server_id, len).await?;
            let h = harmony_node(&server_id, &client_id, len).await?;
            println!(
                "round {round}: bare quinn {:7.1} MB/s   harmony {:7.1} MB/s",
                mb_s(len, b),
                mb_s(len, h)
            );
            bare.push(b);
            ours.push(h);
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let (b, h) = (median(bare), median(ours));
    println!();
    println!("one connection, one stream, loopback, {gib} GiB per transfer, median of {rounds}:");
    println!(
        "  bare quinn (default settings)   {:8.1} MB/s",
        mb_s(len, b)
    );
    println!(
        "  harmony endpoint (Bulk request) {:8.1} MB/s",
        mb_s(len, h)
    );
    println!(
        "  ratio harmony / bare            {:8.2}",
        b.as_secs_f64() / h.as_secs_f64()
    );
    println!(
        "harmony transport: stream window {} MiB, connection window {} MiB, send window {} MiB, UDP buffers {} MiB requested",
        harmony::net::STREAM_RECEIVE_WINDOW >> 20,
        harmony::net::CONNECTION_RECEIVE_WINDOW >> 20,
        harmony::net::SEND_WINDOW >> 20,
        harmony::net::UDP_BUFFER >> 20
    );
    Ok(())
}
