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
//! ([`ByPath`]).

use std::any::Any;
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
        Box::new(ByPath {
            near: Arc::new(CubicConfig::default()).build(now, mtu),
            far: Some(Arc::new(BbrConfig::default()).build(now, mtu)),
            is_far: false,
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
    is_far: bool,
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
        self.each()
            .for_each(|c| c.on_congestion_event(now, sent, is_persistent_congestion, lost_bytes));
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.each().for_each(|c| c.on_mtu_update(new_mtu));
    }

    fn window(&self) -> u64 {
        self.leader().window()
    }

    fn metrics(&self) -> ControllerMetrics {
        self.leader().metrics()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(ByPath {
            near: self.near.clone_box(),
            far: self.far.as_ref().map(|far| far.clone_box()),
            is_far: self.is_far,
        })
    }

    fn initial_window(&self) -> u64 {
        self.leader().initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}
