//! The machine's limit for a *verified* get: bare quinn ([`BarePair`])
//! carrying files read from disk, with the work every such get must do and
//! nothing else — the sender reads the files on a blocking thread into
//! recycled buffers and writes them to the stream as bare quinn does; the
//! receiver copies each 32 KiB piece out of the stream, hashes it (the
//! per-chunk check), and hands it to a writer thread that hashes the whole
//! file and writes it to the page cache. No state, no manifests, no
//! scheduling, and no fsync (Harmony's get makes its files durable; this
//! does not, so it is an upper bound): what is left between this and
//! `harmony get` is Harmony's own overhead plus durability. Included with
//! `#[path]` next to `raw_quinn.rs`.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use harmony::net::Identity;

use super::raw_quinn::{BarePair, BLOCK};

/// The average chunk of the repository's chunking.
const PIECE: usize = 32 * 1024;

/// Sends `files` over one stream and writes them into `out`, each checked
/// against its blake3.
pub async fn verified_quinn(
    server_id: &Identity,
    files: &[(PathBuf, blake3::Hash)],
    out: &Path,
) -> anyhow::Result<Duration> {
    let sizes: Vec<u64> = files
        .iter()
        .map(|(f, _)| f.metadata().map(|m| m.len()))
        .collect::<Result<_, _>>()?;
    let expected: Vec<blake3::Hash> = files.iter().map(|(_, h)| *h).collect();
    let paths: Vec<PathBuf> = files.iter().map(|(f, _)| f.clone()).collect();
    let out = out.to_owned();
    let (elapsed, hashes) = BarePair::new(server_id)?
        .one_stream(
            &[1],
            move |send, _| send_files(send, paths),
            move |recv| receive_files(recv, sizes, out),
        )
        .await?;
    anyhow::ensure!(hashes == expected, "a file arrived corrupted");
    Ok(elapsed)
}

/// The sender: reads `paths` on a blocking thread into four 1 MiB buffers
/// that go round (as Harmony's server recycles its read buffers).
async fn send_files(mut send: quinn::SendStream, paths: Vec<PathBuf>) {
    let (full_tx, mut full) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let (empty_tx, empty) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..4 {
        empty_tx.send(Vec::with_capacity(BLOCK)).unwrap();
    }
    tokio::task::spawn_blocking(move || {
        let mut spare = None;
        for path in paths {
            let mut file = File::open(path).unwrap();
            loop {
                let Some(mut block) = spare.take().or_else(|| empty.recv().ok()) else {
                    return;
                };
                block.clear();
                (&mut file)
                    .take(BLOCK as u64)
                    .read_to_end(&mut block)
                    .unwrap();
                if block.is_empty() {
                    spare = Some(block);
                    break;
                }
                let last = block.len() < BLOCK;
                if full_tx.blocking_send(block).is_err() {
                    return;
                }
                if last {
                    break;
                }
            }
        }
    });
    while let Some(block) = full.recv().await {
        send.write_all(&block).await.unwrap();
        let _ = empty_tx.send(block);
    }
    send.finish().unwrap();
}

/// The receiver: pieces checked here, then hashed whole and written by a
/// writer thread into `out`. Returns the whole files' hashes.
async fn receive_files(
    mut recv: quinn::RecvStream,
    sizes: Vec<u64>,
    out: PathBuf,
) -> anyhow::Result<Vec<blake3::Hash>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let writer_sizes = sizes.clone();
    let writer = std::thread::spawn(move || -> anyhow::Result<Vec<blake3::Hash>> {
        let mut hashes = Vec::new();
        for (i, size) in writer_sizes.into_iter().enumerate() {
            let mut file = File::create(out.join(format!("{i}.part")))?;
            let mut whole = blake3::Hasher::new();
            let mut left = size;
            while left > 0 {
                let piece = rx
                    .blocking_recv()
                    .ok_or_else(|| anyhow::anyhow!("the receiver stopped early"))?;
                whole.update(&piece);
                file.write_all(&piece)?;
                left -= piece.len() as u64;
            }
            hashes.push(whole.finalize());
        }
        Ok(hashes)
    });
    for size in sizes {
        let mut left = size;
        while left > 0 {
            let mut piece = vec![0; left.min(PIECE as u64) as usize];
            recv.read_exact(&mut piece).await?;
            std::hint::black_box(blake3::hash(&piece));
            left -= piece.len() as u64;
            if tx.send(piece).await.is_err() {
                break;
            }
        }
    }
    drop(tx);
    let joined = tokio::task::spawn_blocking(move || writer.join()).await?;
    joined.expect("the writer thread panicked")
}
