//! Rate limits: the quota table of [`crate::domain::quota`] enforced per (caller, action).
//!
//! One keyed `governor` limiter (GCRA) per action that has a quota, keyed by the caller (the
//! operator is one caller). Actions without a quota have no limiter, so checking them costs
//! one array load. The limiters read the engine's monotonic clock (a manual clock in tests),
//! so a wall clock stepped back does not freeze callers. A caller whose budget is full again is indistinguishable from a fresh one, and
//! [`RateLimits::sweep`] forgets it (governor keeps it one refill interval longer, so at
//! most 1 s + 1/N s after its last call). The engine sweeps on a timer, so memory follows
//! the callers of the last sweep interval, not every UIN ever seen.
//!
//! Invariant: a refused check consumes nothing and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::RateLimiter;
use rustc_hash::FxBuildHasher;

use crate::clock::Clock;
use crate::domain::{Action, Caller, QuotaTable, Rejection};

type Limiter =
    RateLimiter<Caller, DashMapStateStore<Caller, FxBuildHasher>, LimiterClock, NoOpMiddleware<Nanos>>;

/// The engine's monotonic clock as governor sees it: nanoseconds since the limits were made.
#[derive(Clone)]
struct LimiterClock {
    clock: Arc<dyn Clock>,
    origin: u64,
}

impl governor::clock::Clock for LimiterClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::new(self.clock.monotonic_nanos().saturating_sub(self.origin))
    }
}

/// Every action's limiter.
pub struct RateLimits {
    /// Indexed by `Action as usize`; `None` where the action has no quota.
    limiters: Box<[Option<(u32, Limiter)>]>,
}

impl RateLimits {
    pub fn new(table: &QuotaTable, clock: Arc<dyn Clock>) -> RateLimits {
        let clock = LimiterClock { origin: clock.monotonic_nanos(), clock };
        let limiters = Action::ALL
            .iter()
            .map(|&action| {
                let quota = table.get(action)?;
                // One back every ceil(1 s / N): governor's `per_second` rounds the interval
                // down, which would admit a little more than N a second.
                let interval = Duration::from_nanos(1_000_000_000u64.div_ceil(u64::from(quota.get())));
                let per_second = governor::Quota::with_period(interval)
                    .expect("the interval is at least 1 ns")
                    .allow_burst(quota.nonzero());
                Some((
                    quota.get(),
                    Limiter::dashmap_with_clock_and_hasher(per_second, clock.clone(), FxBuildHasher),
                ))
            })
            .collect();
        RateLimits { limiters }
    }

    /// Admits one call of `action` by `caller`, or refuses it with
    /// [`Rejection::RateLimited`].
    #[inline]
    pub fn check(&self, caller: Caller, action: Action) -> Result<(), Rejection> {
        match &self.limiters[action as usize] {
            None => Ok(()),
            Some((per_second, limiter)) => limiter
                .check_key(&caller)
                .map_err(|_| Rejection::RateLimited { action, per_second: *per_second }),
        }
    }

    /// Whether any action has a quota.
    pub fn any(&self) -> bool {
        self.limiters.iter().any(Option::is_some)
    }

    /// Forgets the callers whose budget has been full again for a refill interval, and
    /// hands back the memory of a map that emptied out.
    pub fn sweep(&self) {
        for (_, limiter) in self.limiters.iter().flatten() {
            let before = limiter.len();
            limiter.retain_recent();
            if limiter.len() < before / 4 {
                limiter.shrink_to_fit();
            }
        }
    }

    /// How many (caller, action) budgets are held.
    pub fn len(&self) -> usize {
        self.limiters.iter().flatten().map(|(_, limiter)| limiter.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
