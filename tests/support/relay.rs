//! A UDP relay for WAN faults on loopback (this kernel has no netem): every
//! datagram between a client and a server is delayed, dropped at random,
//! duplicated, held back behind later ones, or dropped while the link is cut
//! (a blackout). Point the client at [`Relay::addr`].
//!
//! Each direction is a FIFO delay line: datagrams leave in the order they
//! came, unless [`Faults::reorder`] picks one for a second, slower line.
//! (A timer task per datagram reordered those due in the same millisecond,
//! and QUIC takes a packet overtaken by three others for lost: a loss-based
//! controller then crawled even at no loss. Reordering is a fault to ask
//! for, not an accident of the relay.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

/// The length of the refusal probe's datagram (`net::probe`); every QUIC
/// datagram is longer.
const PROBE_LEN: usize = 1;

/// How the relay treats traffic. `Faults::default()` is a clean link.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// One-way delay added to every datagram.
    pub delay: Duration,
    /// Share of datagrams dropped, each direction (0.0 to 1.0).
    pub loss: f64,
    /// Share of datagrams sent twice (0.0 to 1.0).
    pub duplicate: f64,
    /// Share of datagrams held back by [`REORDER_DELAY`] more, so that the
    /// ones sent after them arrive first (0.0 to 1.0).
    pub reorder: f64,
}

impl Faults {
    /// A link with `delay` one way and `loss`, nothing else.
    pub fn lossy(delay: Duration, loss: f64) -> Faults {
        Faults {
            delay,
            loss,
            ..Faults::default()
        }
    }
}

/// How much longer a reordered datagram takes: at 100 Mbit/s about 80
/// full datagrams overtake it, far past QUIC's packet threshold of 3.
pub const REORDER_DELAY: Duration = Duration::from_millis(10);

pub struct Relay {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    cut_after: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    cut_off: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts relaying to `server`, for one client at a time.
    pub async fn start(server: SocketAddr, faults: Faults, seed: u64) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = front.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let cut_after = Arc::new(AtomicU64::new(u64::MAX));
        let forwarded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let cut_off = Arc::new(AtomicU64::new(0));
        let client: Arc<std::sync::Mutex<Option<SocketAddr>>> = Default::default();
        let link = Link {
            faults,
            cut: cut.clone(),
            cut_after: cut_after.clone(),
            forwarded: forwarded.clone(),
            dropped: dropped.clone(),
            cut_off: cut_off.clone(),
            rng: Arc::new(AtomicU64::new(seed | 1)),
        };
        let upstream = {
            let (front, client, link) = (front.clone(), client.clone(), link.clone());
            let line = Lines::new(&back);
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
            let line = Lines::new(&front);
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
            cut_after,
            forwarded,
            dropped,
            cut_off,
            task,
        }
    }

    /// Drops everything from now on (`true`) or lets traffic through again
    /// (and forgets a [`Relay::cut_after`]).
    pub fn set_cut(&self, cut: bool) {
        if !cut {
            self.cut_after.store(u64::MAX, Ordering::SeqCst);
        }
        self.cut.store(cut, Ordering::SeqCst);
    }

    /// Cuts the link once it has forwarded `datagrams` in all: at that very
    /// datagram, however busy the machine (a task polling the count may
    /// run too late, after the transfer ended).
    pub fn cut_after(&self, datagrams: u64) {
        self.cut_after.store(datagrams, Ordering::SeqCst);
    }

    /// Whether the link is cut now.
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// Cuts the link for `lasting` once it has forwarded `after` more
    /// datagrams: a blackout in the middle of a transfer, not of the
    /// handshake (a peer silent at connect is reported unreachable in 3 s,
    /// by design).
    pub fn blackout(&self, after: u64, lasting: Duration) {
        let (cut, forwarded) = (self.cut.clone(), self.forwarded.clone());
        let from = forwarded.load(Ordering::Relaxed) + after;
        tokio::spawn(async move {
            while forwarded.load(Ordering::Relaxed) < from {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            cut.store(true, Ordering::SeqCst);
            tokio::time::sleep(lasting).await;
            cut.store(false, Ordering::SeqCst);
        });
    }

    /// Datagrams dropped so far while the link was cut: more than none
    /// means a blackout caught a live connection.
    pub fn cut_off(&self) -> u64 {
        self.cut_off.load(Ordering::Relaxed)
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
    cut_after: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    cut_off: Arc<AtomicU64>,
    rng: Arc<AtomicU64>,
}

/// A delay line: datagrams with the time they are due, sent in order.
type Line = tokio::sync::mpsc::UnboundedSender<Due>;
type Due = (tokio::time::Instant, Vec<u8>, SocketAddr);

/// One direction's two delay lines: the usual one, and the slower one that
/// reordered datagrams take.
struct Lines {
    usual: Line,
    slow: Line,
}

impl Lines {
    fn new(socket: &Arc<UdpSocket>) -> Lines {
        Lines {
            usual: Lines::line(socket.clone()),
            slow: Lines::line(socket.clone()),
        }
    }

    /// A delay line sending from `socket`, in order, each datagram when due.
    fn line(socket: Arc<UdpSocket>) -> Line {
        let (line, mut due) = tokio::sync::mpsc::unbounded_channel::<Due>();
        tokio::spawn(async move {
            while let Some((at, datagram, to)) = due.recv().await {
                tokio::time::sleep_until(at).await;
                let _ = socket.send_to(&datagram, to).await;
            }
        });
        line
    }
}

impl Link {
    /// Sends `datagram` to `to` after the delay, unless it is lost; some
    /// go twice, some late.
    fn pass(&self, lines: &Lines, datagram: Vec<u8>, to: SocketAddr) {
        if self.forwarded.load(Ordering::SeqCst) >= self.cut_after.load(Ordering::SeqCst) {
            self.cut.store(true, Ordering::SeqCst);
        }
        if self.cut.load(Ordering::SeqCst) {
            self.cut_off.fetch_add(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.chance() < self.faults.loss {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        let at = tokio::time::Instant::now() + self.faults.delay;
        if self.chance() < self.faults.duplicate {
            let _ = lines.usual.send((at, datagram.clone(), to));
        }
        let _ = if self.chance() < self.faults.reorder {
            lines.slow.send((at + REORDER_DELAY, datagram, to))
        } else {
            lines.usual.send((at, datagram, to))
        };
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
