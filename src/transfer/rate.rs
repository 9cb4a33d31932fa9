//! The bandwidth limit of a location (`bandwidth_limit` in `config.toml`):
//! content bytes a serving node sends, and content bytes a `get` receives,
//! each at most so many per second. State sync is never limited: it is small
//! and keeps every location's view of the others true.
//!
//! [`TokenBucket`] is the arithmetic alone, with the time passed in, so it
//! is tested exactly and without sleeping; [`RateLimit`] is the shared,
//! changeable handle that sleeps until bytes may pass, and sends or reads
//! them on a stream in paced steps.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::net::{FramedStream, NetError};
use crate::repo::Config;

/// The smallest burst: the largest chunk of the default chunk sizes, so
/// that one chunk or one small file, after a pause, passes at once.
pub(super) const MIN_BURST: u64 = crate::chunk::ChunkParams::DEFAULT.max as u64;

/// Bytes are counted in nanobytes (a byte is 10^9 of them), so that `t`
/// nanoseconds at `r` bytes per second add exactly `t * r` of them.
const NANO: i128 = 1_000_000_000;

/// A token bucket: bytes may pass at `rate` per second on average, with a
/// burst of [`capacity`](TokenBucket::capacity) after a quiet time.
///
/// A reservation may take the level below zero (a debt): the one who
/// reserved waits until the debt is paid, and later reservations queue
/// behind it, so concurrent senders share the rate in the order they came
/// and nobody polls. A reservation is at most a [`step`](TokenBucket::step),
/// so the debt stays a few steps deep and no wait is longer than the bucket
/// takes to fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    capacity: u64,
    /// Tokens in nanobytes; negative while reservations wait.
    level: i128,
    /// When `level` was last brought up to date.
    at: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate` bytes per second (at least 1).
    pub fn new(rate: u64, now: Instant) -> TokenBucket {
        let rate = rate.max(1);
        let capacity = Self::capacity_for(rate);
        TokenBucket {
            rate,
            capacity,
            level: i128::from(capacity) * NANO,
            at: now,
        }
    }

    /// A quarter second of the rate, or [`MIN_BURST`], whichever is larger.
    fn capacity_for(rate: u64) -> u64 {
        (rate / 4).max(MIN_BURST)
    }

    /// The rate in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The most bytes that pass at once after a quiet time.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The most bytes one reservation takes: a quarter second of the rate
    /// (at least one byte). A long transfer moves in steps this size, so
    /// even at a very low rate bytes flow every quarter second and neither
    /// side's stall watchdog mistakes the pacing for a dead peer.
    pub fn step(&self) -> u64 {
        (self.rate / 4).clamp(1, self.capacity)
    }

    /// Reserves `bytes` (at most a [`step`](Self::step); more is allowed but
    /// waits longer) at `now`; returns how long to wait before they pass.
    pub fn reserve(&mut self, bytes: u64, now: Instant) -> Duration {
        self.refill(now);
        self.level = self.level.saturating_sub(i128::from(bytes) * NANO);
        if self.level >= 0 {
            return Duration::ZERO;
        }
        let rate = i128::from(self.rate);
        let nanos = (-self.level + rate - 1) / rate;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// A new rate from `now` on: what accrued until now counts at the old
    /// rate; the bucket keeps its tokens up to its new capacity, and a debt
    /// is paid at the new rate.
    pub fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate.max(1);
        self.capacity = Self::capacity_for(self.rate);
        self.level = self.level.min(i128::from(self.capacity) * NANO);
    }

    /// Adds the tokens accrued since the last update, up to the capacity.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at);
        self.at = self.at.max(now);
        let nanos = i128::try_from(elapsed.as_nanos()).unwrap_or(i128::MAX);
        let accrued = nanos.saturating_mul(i128::from(self.rate));
        let full = i128::from(self.capacity) * NANO;
        self.level = self.level.saturating_add(accrued).min(full);
    }
}

/// A location's limit for one direction of content transfer, shared by
/// every transfer of the process (cloning shares it). Unlimited by default;
/// [`set_rate`](RateLimit::set_rate) changes it while transfers run.
#[derive(Clone, Debug, Default)]
pub struct RateLimit(Arc<Mutex<Option<TokenBucket>>>);

impl RateLimit {
    /// A limit of `rate` bytes per second; `None`: no limit.
    pub fn new(rate: Option<u64>) -> RateLimit {
        let limit = RateLimit::default();
        limit.set_rate(rate);
        limit
    }

    /// The limit from now on; `None` lifts it. Transfers already waiting
    /// finish their current step on the old schedule.
    pub fn set_rate(&self, rate: Option<u64>) {
        let now = now();
        let mut bucket = self.lock();
        match (bucket.as_mut(), rate) {
            (Some(b), Some(rate)) => b.set_rate(rate, now),
            (None, Some(rate)) => *bucket = Some(TokenBucket::new(rate, now)),
            (_, None) => *bucket = None,
        }
    }

    /// Bytes per second at most; `None`: no limit.
    pub fn rate(&self) -> Option<u64> {
        self.lock().as_ref().map(TokenBucket::rate)
    }

    /// Keeps the rate at `config`'s `bandwidth_limit` as it is reloaded;
    /// ends when the sender is gone.
    pub async fn follow(self, mut config: tokio::sync::watch::Receiver<Config>) {
        while config.changed().await.is_ok() {
            let rate = config.borrow_and_update().bandwidth_limit;
            if rate != self.rate() {
                tracing::info!(
                    "bandwidth limit now {}",
                    rate.map_or("none".to_owned(), |r| format!("{r} bytes/s"))
                );
                self.set_rate(rate);
            }
        }
    }

    /// Sends `bytes` on `stream`, in steps as the limit allows.
    pub async fn send(&self, stream: &mut FramedStream, mut bytes: Bytes) -> Result<(), NetError> {
        while !bytes.is_empty() {
            let now = self.pass(bytes.len()).await;
            stream.send_bytes(bytes.split_to(now)).await?;
        }
        Ok(())
    }

    /// Fills `buf` from `stream`, in steps as the limit allows. Reading
    /// slowly is what slows the sender: QUIC's flow control gives it room
    /// only as fast as this side reads.
    pub async fn recv_exact(
        &self,
        stream: &mut FramedStream,
        mut buf: &mut [u8],
    ) -> Result<(), NetError> {
        while !buf.is_empty() {
            let now = self.pass(buf.len()).await;
            let (part, rest) = buf.split_at_mut(now);
            stream.recv_exact(part).await?;
            buf = rest;
        }
        Ok(())
    }

    /// Waits until the next step of at most `want` bytes may pass; returns
    /// its size (all of `want` without a limit).
    async fn pass(&self, want: usize) -> usize {
        let (bytes, wait) = {
            let mut bucket = self.lock();
            let Some(bucket) = bucket.as_mut() else {
                return want;
            };
            let step = usize::try_from(bucket.step()).unwrap_or(usize::MAX);
            let bytes = want.min(step);
            (bytes, bucket.reserve(bytes as u64, now()))
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<TokenBucket>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Tokio's clock (which tests may pause), as the bucket's.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_full_bucket_lets_its_capacity_pass_at_once_then_paces() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(4 * MIB, t0);
        assert_eq!(b.capacity(), MIB, "a quarter second of the rate");
        assert_eq!(b.step(), MIB);
        assert_eq!(b.reserve(MIB, t0), Duration::ZERO);
        // Empty now: the next MiB waits exactly a quarter second.
        assert_eq!(b.reserve(MIB, t0), ms(250));
        // Reserved behind that one: half a second from t0.
        assert_eq!(b.reserve(MIB, t0), ms(500));
        // A second later the debt is paid and 1 MiB of the 2 MiB accrued
        // since is back: it never holds more than its capacity.
        assert_eq!(b.reserve(MIB, t0 + ms(1500)), Duration::ZERO);
        assert_eq!(b.reserve(1, t0 + ms(1500)), Duration::from_nanos(239));
    }

    #[test]
    fn the_burst_is_at_least_one_chunk() {
        let t0 = Instant::now();
        let b = TokenBucket::new(100_000, t0);
        assert_eq!(b.capacity(), MIN_BURST);
        assert_eq!(b.step(), 25_000, "a quarter second still");
        let slowest = TokenBucket::new(0, t0);
        assert_eq!((slowest.rate(), slowest.step()), (1, 1));
    }

    #[test]
    fn waits_round_up_to_the_nanosecond() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, t0);
        b.reserve(MIN_BURST, t0);
        // One byte at 3 bytes/s: 333,333,333.3 ns, rounded up.
        assert_eq!(b.reserve(1, t0), Duration::from_nanos(333_333_334));
    }

    #[test]
    fn a_new_rate_counts_from_when_it_is_set() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(4 * MIB, t0);
        assert_eq!(b.reserve(3 * MIB, t0), ms(500), "a 2 MiB debt at 4 MiB/s");
        // 100 ms at 4 MiB/s paid 0.4 MiB of it; the 1.6 MiB left takes
        // 1.6 s at 1 MiB/s.
        b.set_rate(MIB, t0 + ms(100));
        assert_eq!(b.capacity(), MIN_BURST.max(MIB / 4));
        assert_eq!(b.reserve(0, t0 + ms(100)), ms(1600));
        // Raised just as the debt is paid: the empty bucket fills at the
        // new rate, up to the new capacity.
        b.set_rate(8 * MIB, t0 + ms(1700));
        assert_eq!(b.capacity(), 2 * MIB);
        assert_eq!(b.reserve(2 * MIB, t0 + ms(1700)), ms(250));
    }

    #[test]
    fn a_long_quiet_time_fills_the_bucket_and_no_more() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(u64::MAX, t0);
        b.reserve(b.capacity(), t0);
        let later = t0 + Duration::from_secs(1 << 40);
        assert_eq!(b.reserve(b.capacity(), later), Duration::ZERO);
        // A clock read out of order adds nothing.
        let mut c = TokenBucket::new(MIB, t0 + ms(10));
        c.reserve(c.capacity(), t0 + ms(10));
        assert_eq!(c.reserve(MIB / 4, t0), ms(250));
    }

    /// The async handle, on tokio's paused clock: a long transfer takes its
    /// bytes beyond the burst divided by the rate, exactly.
    #[tokio::test(start_paused = true)]
    async fn the_handle_paces_in_steps_and_follows_a_new_rate() {
        let limit = RateLimit::new(Some(4 * MIB));
        let start = tokio::time::Instant::now();
        let mut left = 9 * MIB as usize;
        let mut steps = 0;
        while left > 0 {
            left -= limit.pass(left).await;
            steps += 1;
        }
        assert_eq!(steps, 9, "steps of a quarter second");
        assert_eq!(start.elapsed(), ms(2000), "(9 - 1) MiB at 4 MiB/s");

        limit.set_rate(None);
        assert_eq!(limit.pass(usize::MAX).await, usize::MAX);
        assert_eq!(start.elapsed(), ms(2000), "no limit: no wait");
        assert_eq!(limit.rate(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_handle_follows_the_reloaded_config() {
        let (tx, rx) = tokio::sync::watch::channel(Config::default());
        let limit = RateLimit::default();
        let following = tokio::spawn(limit.clone().follow(rx));
        tx.send_modify(|c| c.bandwidth_limit = Some(MIB));
        tokio::task::yield_now().await;
        assert_eq!(limit.rate(), Some(MIB));
        tx.send_modify(|c| c.bandwidth_limit = None);
        tokio::task::yield_now().await;
        assert_eq!(limit.rate(), None);
        drop(tx);
        following.await.unwrap();
    }
}
