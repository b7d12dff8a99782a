//! Time for the engine: the system clock, or a manual one that tests move by hand.
//!
//! Invariant: the domain never reads a clock; the engine and the coordinators read this one
//! and pass the time in.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::domain::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;

    /// Nanoseconds on a clock that never goes back (for rate limits, which a wall clock
    /// stepped back by NTP would freeze). By default the wall clock's milliseconds.
    fn monotonic_nanos(&self) -> u64 {
        u64::try_from(self.now().0).unwrap_or(0).saturating_mul(1_000_000)
    }
}

/// Wall-clock time (UTC milliseconds).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    /// Since the first call in this process, on `Instant`.
    fn monotonic_nanos(&self) -> u64 {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set(&self, time: Timestamp) {
        self.0.store(time.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

/// The system clock moved forward by an offset that only grows: for rehearsing month ends
/// and expiries on a running server (`[engine] adjustable_clock`). Its monotonic clock is
/// the system's, so rate limits are not affected.
#[derive(Clone, Debug, Default)]
pub struct OffsetClock(Arc<AtomicI64>);

impl OffsetClock {
    pub fn new() -> OffsetClock {
        OffsetClock::default()
    }

    /// Moves the clock forward by `ms` (at least 0); answers the new time.
    pub fn advance_ms(&self, ms: i64) -> Timestamp {
        self.0.fetch_add(ms.max(0), Ordering::SeqCst);
        self.now()
    }

    /// How far ahead of the system clock it is.
    pub fn offset_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        SystemClock.now().plus_ms(self.offset_ms())
    }

    fn monotonic_nanos(&self) -> u64 {
        SystemClock.monotonic_nanos()
    }
}
