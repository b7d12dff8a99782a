//! `--mix`: the flows a task runs, by weight, and the pacing of allocations at their quota.
//!
//! Flows: `one-shot` (CreatePurchase, or CreatePurchases with `--batch`), `reserve-commit`,
//! `reserve-cancel`, `reserve-expire` (a reservation of [`EXPIRE_TIMEOUT_MS`] left to
//! expire; the run waits for the last one before the audit), and `allocate` (a partner
//! repossesses [`super::allocation_amount`] from one of its customers, then allocates it
//! back: two AllocateCustomerCredit calls). Written `one-shot=90,reserve-commit=5,...`;
//! flows not named have weight 0. The default is one-shot only.
//!
//! Allocations are paced per calling partner at its documented AllocateCustomerCredit quota
//! (5 per second), as a well-behaved partner's tooling would call: a flow whose partner has
//! no budget left runs as a one-shot purchase instead, and is counted as deferred.
//!
//! Invariant: the choice of flow comes from the task's seeded generator, so the same seed
//! gives the same flows.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::Rng;

use crate::domain::{Action, Uin, DOCUMENTED_QUOTAS};

/// How long a `reserve-expire` reservation is held: 1 s, the shortest `TimeoutSeconds` the
/// API takes, so the embedded and HTTP targets run the same flow.
pub const EXPIRE_TIMEOUT_MS: i64 = 1_000;

/// One flow of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flow {
    OneShot,
    ReserveCommit,
    ReserveCancel,
    ReserveExpire,
    Allocate,
}

const FLOWS: [(Flow, &str); 5] = [
    (Flow::OneShot, "one-shot"),
    (Flow::ReserveCommit, "reserve-commit"),
    (Flow::ReserveCancel, "reserve-cancel"),
    (Flow::ReserveExpire, "reserve-expire"),
    (Flow::Allocate, "allocate"),
];

/// Weights of the flows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; 5],
    total: u32,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix { weights: [1, 0, 0, 0, 0], total: 1 }
    }
}

impl Mix {
    pub fn parse(text: &str) -> anyhow::Result<Mix> {
        let mut weights = [0u32; 5];
        for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let (name, weight) =
                part.split_once('=').ok_or_else(|| anyhow::anyhow!("--mix: {part:?} is not FLOW=WEIGHT"))?;
            let index = FLOWS.iter().position(|(_, flow)| *flow == name.trim()).ok_or_else(|| {
                let names: Vec<_> = FLOWS.iter().map(|(_, name)| *name).collect();
                anyhow::anyhow!("--mix: unknown flow {name:?} (flows: {})", names.join(", "))
            })?;
            weights[index] =
                weight.trim().parse().ok().filter(|weight| *weight <= 1_000_000).ok_or_else(|| {
                    anyhow::anyhow!("--mix: the weight of {name} is not a whole number up to 1000000")
                })?;
        }
        let total = weights.iter().sum();
        anyhow::ensure!(total > 0, "--mix: every weight is 0");
        Ok(Mix { weights, total })
    }

    pub fn is_one_shot_only(&self) -> bool {
        self.weights[0] == self.total
    }

    pub fn weight(&self, flow: Flow) -> u32 {
        self.weights[FLOWS.iter().position(|(seen, _)| *seen == flow).expect("every flow is listed")]
    }

    pub fn pick(&self, rng: &mut SmallRng) -> Flow {
        if self.is_one_shot_only() {
            return Flow::OneShot;
        }
        let mut draw = rng.gen_range(0..self.total);
        for (index, weight) in self.weights.iter().enumerate() {
            if draw < *weight {
                return FLOWS[index].0;
            }
            draw -= weight;
        }
        unreachable!("the draw is below the total")
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = FLOWS
            .iter()
            .zip(self.weights)
            .filter(|(_, weight)| *weight > 0)
            .map(|((_, name), weight)| format!("{name}={weight}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Allocation budgets per calling partner (`None`: the operator), spent two calls at a time
/// and refilled at the documented quota.
pub struct Pacer {
    interval: Duration,
    next: Mutex<HashMap<Option<Uin>, Instant>>,
}

impl Default for Pacer {
    fn default() -> Pacer {
        let per_second = DOCUMENTED_QUOTAS
            .iter()
            .find(|(action, _)| *action == Action::AllocateCustomerCredit)
            .map_or(5, |(_, per_second)| *per_second);
        // Two calls per flow.
        Pacer {
            interval: Duration::from_secs_f64(2.0 / f64::from(per_second.max(1))),
            next: Mutex::default(),
        }
    }
}

impl Pacer {
    /// Whether `caller` may make an allocation flow now; if so, its budget is spent.
    pub fn try_take(&self, caller: Option<Uin>, now: Instant) -> bool {
        let mut next = self.next.lock();
        let slot = next.entry(caller).or_insert(now);
        if now < *slot {
            return false;
        }
        *slot = now + self.interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mixes_parse_and_pick_by_weight() {
        let mix = Mix::parse("one-shot=2, reserve-commit=1,allocate=1").unwrap();
        assert_eq!(mix.to_string(), "one-shot=2,reserve-commit=1,allocate=1");
        let mut rng = SmallRng::seed_from_u64(1);
        let mut counts = HashMap::new();
        for _ in 0..4_000 {
            *counts.entry(mix.pick(&mut rng)).or_insert(0) += 1;
        }
        assert!((1_800..2_200).contains(&counts[&Flow::OneShot]), "{counts:?}");
        assert!(!counts.contains_key(&Flow::ReserveCancel));
        for (bad, why) in [
            ("one-shot", "--mix: \"one-shot\" is not FLOW=WEIGHT"),
            ("teleport=1", "--mix: unknown flow \"teleport\" (flows: "),
            ("one-shot=-1", "--mix: the weight of one-shot is not a whole number up to 1000000"),
            ("one-shot=0", "--mix: every weight is 0"),
            ("", "--mix: every weight is 0"),
        ] {
            let error = Mix::parse(bad).unwrap_err().to_string();
            assert!(error.starts_with(why), "{bad:?}: {error}");
        }
    }

    #[test]
    fn the_pacer_keeps_each_caller_to_its_quota() {
        let pacer = Pacer::default();
        let now = Instant::now();
        assert!(pacer.try_take(Some(Uin(1)), now));
        assert!(!pacer.try_take(Some(Uin(1)), now + Duration::from_millis(100)));
        assert!(pacer.try_take(Some(Uin(2)), now));
        assert!(pacer.try_take(Some(Uin(1)), now + Duration::from_millis(400)));
    }
}
