//! The congestion controller of a connection, chosen by the path.
//!
//! A loss-based controller (CUBIC) takes every lost packet for congestion:
//! under random loss p its rate is about MSS/RTT x 1.2/sqrt(p), which is
//! 0.35 MB/s at 1% loss and 50 ms, however fast the link. A model-based one
//! (BBR) measures the bottleneck's bandwidth and the path's RTT and barely
//! notices random loss (7-9 MB/s in the same place), but on loopback and a
//! LAN quinn's BBR gives up 13-20% of CUBIC's speed (examples/lossy-links.md).
//! Random loss is a property of long paths (Wi-Fi hops, the Internet), and
//! those have round trips of milliseconds; a LAN or the same host has well
//! under one. So by default each connection runs both and follows CUBIC
//! while its shortest round trip is under [`FAR_RTT`], BBR from there on
//! ([`ByPath`]), with BBR's window held to what the path was measured to
//! carry ([`StartupCap`]). On a far path a packet lost alone is not taken
//! for congestion: quinn's BBR would hold its window to the bytes in flight
//! while it recovers (packet conservation), which under 2% random loss is
//! most of the time and cost 8% of the throughput on wan.py. A run of
//! losses ([`LOSS_BURST`], an overflowing queue) and persistent congestion
//! (a blackout) still are: ignoring those too cost 27% on the test relay's
//! bad link, with reordering, duplicates and a blackout.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{
    BbrConfig, Controller, ControllerFactory, ControllerMetrics, CubicConfig, NewRenoConfig,
};
use quinn_proto::RttEstimator;

/// The shortest round trip from which a path counts as far, and BBR leads.
pub const FAR_RTT: Duration = Duration::from_millis(5);

/// The congestion controller of every connection (both directions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Congestion {
    /// CUBIC on a near path, BBR on a far one (see [`FAR_RTT`]).
    ByPath,
    /// Loss-based (quinn's default): under random loss p its rate is about
    /// MSS/RTT x 1.2/sqrt(p), ~0.35 MB/s at 1% and 50 ms.
    Cubic,
    /// Loss-based, the simplest (RFC 9002).
    NewReno,
    /// Model-based (bandwidth and RTT): random loss barely slows it.
    Bbr,
}

/// The congestion controller used unless configured otherwise.
pub const DEFAULT_CONGESTION: Congestion = Congestion::ByPath;

impl Congestion {
    /// The environment variable that overrides the default controller.
    pub const ENV: &'static str = "HARMONY_CONGESTION";

    /// Parses `bypath`, `cubic`, `newreno` or `bbr` (any case).
    pub fn parse(name: &str) -> Option<Congestion> {
        match name.to_ascii_lowercase().as_str() {
            "bypath" => Some(Congestion::ByPath),
            "cubic" => Some(Congestion::Cubic),
            "newreno" => Some(Congestion::NewReno),
            "bbr" => Some(Congestion::Bbr),
            _ => None,
        }
    }

    /// The default, unless [`Congestion::ENV`] names another one (for
    /// measurements, and for links where the default does badly). An
    /// unknown name is reported and ignored.
    pub fn from_env() -> Congestion {
        match std::env::var(Congestion::ENV) {
            Ok(name) => Congestion::parse(&name).unwrap_or_else(|| {
                tracing::warn!(
                    "{}={name:?} is not bypath, cubic, newreno or bbr; using {:?}",
                    Congestion::ENV,
                    DEFAULT_CONGESTION
                );
                DEFAULT_CONGESTION
            }),
            Err(_) => DEFAULT_CONGESTION,
        }
    }

    pub(super) fn factory(self) -> Arc<dyn ControllerFactory + Send + Sync> {
        match self {
            Congestion::ByPath => Arc::new(ByPathConfig),
            Congestion::Cubic => Arc::new(CubicConfig::default()),
            Congestion::NewReno => Arc::new(NewRenoConfig::default()),
            Congestion::Bbr => Arc::new(BbrConfig::default()),
        }
    }
}

/// Which controller sets `conn`'s window now, for logs and tests: `CUBIC`,
/// `BBR` or `NewReno`, and for [`Congestion::ByPath`] `CUBIC (near path)`
/// or `BBR (far path)`.
pub fn leading_controller(conn: &quinn::Connection) -> &'static str {
    let state = conn.congestion_state().into_any();
    let state = match state.downcast::<ByPath>() {
        Ok(by_path) if by_path.is_far => return "BBR (far path)",
        Ok(_) => return "CUBIC (near path)",
        Err(other) => other,
    };
    if state.is::<quinn::congestion::Cubic>() {
        "CUBIC"
    } else if state.is::<quinn::congestion::Bbr>() {
        "BBR"
    } else {
        "NewReno"
    }
}

/// Builds a [`ByPath`] controller for each connection.
struct ByPathConfig;

impl ControllerFactory for ByPathConfig {
    fn build(self: Arc<Self>, now: Instant, mtu: u16) -> Box<dyn Controller> {
        let far = Arc::new(BbrConfig::default()).build(now, mtu);
        Box::new(ByPath {
            near: Arc::new(CubicConfig::default()).build(now, mtu),
            cap: StartupCap::new(far.initial_window()),
            far: Some(far),
            is_far: false,
            mtu,
        })
    }
}

/// Runs CUBIC and BBR side by side on every event, and lets the one for the
/// path decide the window. Both stay up to date, so a switch starts from a
/// window that fits the path. Until the first acknowledgement it is near
/// (both start from the same initial window anyway). The shortest round
/// trip only falls, so once a path is near it stays near, and BBR is
/// dropped: on a fast near path its per-acknowledgement work is not free.
struct ByPath {
    near: Box<dyn Controller>,
    /// `None` once the path is known to be near.
    far: Option<Box<dyn Controller>>,
    /// Bounds the far controller's window.
    cap: StartupCap,
    is_far: bool,
    mtu: u16,
}

impl ByPath {
    fn leader(&self) -> &dyn Controller {
        match &self.far {
            Some(far) if self.is_far => far.as_ref(),
            _ => self.near.as_ref(),
        }
    }

    /// Both controllers still running.
    fn each(&mut self) -> impl Iterator<Item = &mut Box<dyn Controller>> {
        std::iter::once(&mut self.near).chain(self.far.as_mut())
    }
}

impl Controller for ByPath {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.each()
            .for_each(|c| c.on_sent(now, bytes, last_packet_number));
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.is_far = rtt.min() >= FAR_RTT;
        if !self.is_far {
            self.far = None;
        }
        if self.far.is_some() {
            self.cap.on_ack(now, bytes, app_limited, rtt.min());
        }
        self.each()
            .for_each(|c| c.on_ack(now, sent, bytes, app_limited, rtt));
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        self.each()
            .for_each(|c| c.on_end_acks(now, in_flight, app_limited, largest_packet_num_acked));
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        self.near
            .on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
        let burst = lost_bytes >= LOSS_BURST * u64::from(self.mtu);
        if let Some(far) = self
            .far
            .as_mut()
            .filter(|_| is_persistent_congestion || burst)
        {
            far.on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
        }
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.mtu = new_mtu;
        self.each().for_each(|c| c.on_mtu_update(new_mtu));
    }

    fn window(&self) -> u64 {
        match &self.far {
            Some(far) if self.is_far => far.window().min(self.cap.window()),
            _ => self.near.window(),
        }
    }

    fn metrics(&self) -> ControllerMetrics {
        self.leader().metrics()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(ByPath {
            near: self.near.clone_box(),
            far: self.far.as_ref().map(|far| far.clone_box()),
            cap: self.cap.clone(),
            is_far: self.is_far,
            mtu: self.mtu,
        })
    }

    fn initial_window(&self) -> u64 {
        self.leader().initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// quinn 0.11's BBR does not bound its window in STARTUP by its own model:
/// it adds every acknowledged byte until the bandwidth stops growing (its
/// test compares the window *gain* with the target window, so it always
/// grows). One startup thus sends several times what the path holds, and
/// wan.py's 200 ms bottleneck queue dropped 20,000-30,000 packets per
/// compare run at 0 loss, a third of what crossed. This caps the window at
/// BBR's own startup target: [`STARTUP_GAIN`] x the most bytes delivered
/// in one shortest round trip during the last [`RATE_ROUNDS`] of them.
/// While the rate grows, a round trip delivers about the whole window, so
/// the cap stays ahead of a window that doubles each round, as a startup's
/// does; at the bottleneck it holds the queue to under two bandwidth-delay
/// products.
#[derive(Clone)]
struct StartupCap {
    initial_window: u64,
    /// Bytes acknowledged in all.
    acked: u64,
    /// (when, `acked` then) for the acknowledgements of about the last
    /// round trip, oldest first: the first is the latest one at least a
    /// round trip old.
    recent: VecDeque<(Instant, u64)>,
    /// The most delivered in one round trip, per round of the filter:
    /// (when the round began, bytes), newest last.
    best: VecDeque<(Instant, u64)>,
}

/// Packets lost in one go from which a far path takes the loss for
/// congestion (a queue overflowing drops runs of packets; random loss, one
/// here and there).
const LOSS_BURST: u64 = 3;

/// BBR's STARTUP gain, 2/ln 2.
const STARTUP_GAIN: f64 = 2.885;
/// Round trips the most delivered is remembered (BBR's bandwidth filter
/// spans 10).
const RATE_ROUNDS: u32 = 10;

impl StartupCap {
    fn new(initial_window: u64) -> StartupCap {
        StartupCap {
            initial_window,
            acked: 0,
            recent: VecDeque::new(),
            best: VecDeque::new(),
        }
    }

    /// `bytes` were acknowledged at `now`; `min_rtt` is the path's shortest
    /// round trip. An acknowledgement while the application had nothing
    /// more to send says little about the path, so it counts only if it
    /// beats what is remembered.
    fn on_ack(&mut self, now: Instant, bytes: u64, app_limited: bool, min_rtt: Duration) {
        self.acked += bytes;
        match self.recent.back_mut() {
            Some((at, acked)) if *at == now => *acked = self.acked,
            _ => self.recent.push_back((now, self.acked)),
        }
        let Some(round_ago) = now.checked_sub(min_rtt) else {
            return;
        };
        while self.recent.get(1).is_some_and(|(at, _)| *at <= round_ago) {
            self.recent.pop_front();
        }
        let Some(&(then, acked_then)) = self.recent.front().filter(|(at, _)| *at <= round_ago)
        else {
            return;
        };
        // Bytes per shortest round trip, from the span just over one.
        let span = now.saturating_duration_since(then).as_secs_f64();
        let delivered = ((self.acked - acked_then) as f64 * min_rtt.as_secs_f64() / span) as u64;
        if app_limited && delivered <= self.most_delivered() {
            return;
        }
        let filter_start = now.checked_sub(min_rtt * RATE_ROUNDS);
        while self
            .best
            .front()
            .is_some_and(|(at, _)| filter_start.is_some_and(|start| *at < start))
        {
            self.best.pop_front();
        }
        match self.best.back_mut() {
            Some((began, most)) if now.saturating_duration_since(*began) < min_rtt => {
                *most = (*most).max(delivered);
            }
            _ => self.best.push_back((now, delivered)),
        }
    }

    fn most_delivered(&self) -> u64 {
        self.best.iter().map(|(_, bytes)| *bytes).max().unwrap_or(0)
    }

    /// The largest window the far controller may have now.
    fn window(&self) -> u64 {
        ((STARTUP_GAIN * self.most_delivered() as f64) as u64).max(self.initial_window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender limited by the cap alone, over a bottleneck of `rate`
    /// bytes a second and a round trip of `rtt`: each round delivers the
    /// smaller of the window and what the bottleneck carries in a round,
    /// acknowledged in ten steps. Returns the bytes delivered per round.
    fn rounds(cap: &mut StartupCap, rate: u64, rtt: Duration, n: usize) -> Vec<u64> {
        let per_round = (rate as f64 * rtt.as_secs_f64()) as u64;
        let mut now = Instant::now();
        (0..n)
            .map(|_| {
                let delivered = cap.window().min(per_round);
                for _ in 0..10 {
                    now += rtt / 10;
                    cap.on_ack(now, delivered / 10, false, rtt);
                }
                delivered
            })
            .collect()
    }

    #[test]
    fn the_startup_cap_lets_the_rate_grow_fast_and_holds_it_near_the_path() {
        // wan.py's link: 100 Mbit/s, 50 ms round trip (a BDP of 625 KB).
        let (rate, rtt) = (12_500_000, Duration::from_millis(50));
        let mut cap = StartupCap::new(14_720);
        let delivered = rounds(&mut cap, rate, rtt, 12);
        let bdp = 625_000;
        // From 14.7 KB to the whole BDP in a handful of rounds, as a
        // startup doubling (or better) each round would.
        let full = delivered.iter().position(|&d| d >= bdp).unwrap();
        assert!(full <= 5, "{delivered:?}");
        // Never more than the startup gain's worth of queue on top.
        let window = cap.window();
        assert!(window >= bdp && window <= bdp * 29 / 10, "{window}");
    }

    #[test]
    fn rounds_limited_by_the_application_do_not_lower_the_cap() {
        let rtt = Duration::from_millis(50);
        let mut cap = StartupCap::new(14_720);
        rounds(&mut cap, 12_500_000, rtt, 12);
        let full = cap.window();
        let mut now = Instant::now() + Duration::from_secs(10);
        for _ in 0..40 {
            now += rtt;
            cap.on_ack(now, 100, true, rtt);
        }
        assert_eq!(cap.window(), full);
    }
}
