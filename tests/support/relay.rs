//! A UDP relay for WAN faults on loopback (this kernel has no netem): every
//! datagram between a client and a server is delayed, dropped at random, or
//! dropped while the link is cut. Point the client at [`Relay::addr`].
//!
//! Each direction is a FIFO delay line: datagrams leave in the order they
//! came. (A timer task per datagram reordered those due in the same
//! millisecond, and QUIC takes a packet overtaken by three others for lost:
//! a loss-based controller then crawled even at no loss.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

/// The length of the refusal probe's datagram (`net::probe`); every QUIC
/// datagram is longer.
const PROBE_LEN: usize = 1;

/// How the relay treats traffic.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    /// One-way delay added to every datagram.
    pub delay: Duration,
    /// Share of datagrams dropped, each direction (0.0 to 1.0).
    pub loss: f64,
}

pub struct Relay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts relaying to `server`, for one client at a time.
    pub async fn start(server: SocketAddr, faults: Faults, seed: u64) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let client: Arc<std::sync::Mutex<Option<SocketAddr>>> = Default::default();
        let link = Link {
            faults,
            cut: cut.clone(),
            forwarded: forwarded.clone(),
            dropped: dropped.clone(),
            rng: Arc::new(AtomicU64::new(seed | 1)),
        };
        let upstream = {
            let (front, client, link) = (front.clone(), client.clone(), link.clone());
            let line = link.line(back.clone());
            async move {
                let mut buf = vec![0u8; 65_536];
                loop {
                    let Ok((n, from)) = front.recv_from(&mut buf).await else {
                        return;
                    };
                    // The client is whoever sends QUIC: not the one-byte
                    // refusal probe `Node::connect` sends from a socket of its
                    // own while the handshake runs (one client at a time
                    // here; a real path answers each source port apart).
                    if n > PROBE_LEN {
                        *client.lock().unwrap() = Some(from);
                    }
                    link.pass(&line, buf[..n].to_vec(), server);
                }
            }
        };
        let downstream = {
            let line = link.line(front.clone());
            async move {
                let mut buf = vec![0u8; 65_536];
                loop {
                    let Ok((n, _)) = back.recv_from(&mut buf).await else {
                        return;
                    };
                    let to = *client.lock().unwrap();
                    if let Some(to) = to {
                        link.pass(&line, buf[..n].to_vec(), to);
                    }
                }
            }
        };
        let task = tokio::spawn(async move {
            tokio::join!(upstream, downstream);
        });
        Relay {
            addr,
            cut,
            forwarded,
            dropped,
            task,
        }
    }

    /// Drops everything from now on (`true`) or lets traffic through again.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }

    /// Datagrams forwarded and dropped so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.forwarded.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Link {
    faults: Faults,
    cut: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    rng: Arc<AtomicU64>,
}

/// One direction's delay line: datagrams with the time they are due.
type Line = tokio::sync::mpsc::UnboundedSender<Due>;
type Due = (tokio::time::Instant, Vec<u8>, SocketAddr);

impl Link {
    /// A delay line sending from `socket`, in order, each datagram when due.
    fn line(&self, socket: Arc<UdpSocket>) -> Line {
        let (line, mut due) = tokio::sync::mpsc::unbounded_channel::<Due>();
        tokio::spawn(async move {
            while let Some((at, datagram, to)) = due.recv().await {
                tokio::time::sleep_until(at).await;
                let _ = socket.send_to(&datagram, to).await;
            }
        });
        line
    }

    /// Sends `datagram` to `to` after the delay, unless it is lost.
    fn pass(&self, line: &Line, datagram: Vec<u8>, to: SocketAddr) {
        if self.cut.load(Ordering::SeqCst) || self.chance() < self.faults.loss {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        let at = tokio::time::Instant::now() + self.faults.delay;
        let _ = line.send((at, datagram, to));
    }

    /// A pseudo-random number in [0, 1) (xorshift; seeded, so runs repeat).
    fn chance(&self) -> f64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}
