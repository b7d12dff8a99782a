//! The reference model: what the load generator itself saw acknowledged, and the check of
//! the target's accounts against it.
//!
//! The [`Book`] knows the world (each customer, its parent, the partner charged for it) and
//! counts, per customer, the purchases acknowledged as committed and the allocations and
//! repossessions acknowledged, in units of their fixed amounts (atomics: a random customer's
//! counter is rarely contended, and no lock is taken per purchase). A request that failed
//! without an answer (a transport error) leaves its customer *uncertain*: it may or may not
//! have been applied, so that customer and its partners are not compared, and the report
//! says how many were left out.
//!
//! The check compares two snapshots of `(total, available)` per UIN, taken before and after
//! the load, with the model:
//! - a customer's total moved by what was allocated to it, and its available credit by that
//!   less what its purchases used (a reservation still held shows as missing credit);
//! - a chargeable partner's total did not move, and its available credit fell by what its
//!   customers' purchases used;
//! - a second-level reseller's pool remaining fell by what was allocated to its customers.
//!
//! Comparing differences rather than absolute values lets the same check run against a
//! server that served other load before.
//!
//! Invariant: the model changes only on an acknowledged answer; a refusal changes nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::{AccountView, Money, Uin};
use crate::world::World;

/// A UIN's credit as the upstream API reads it: `TotalCredit` and `RemainingCredit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credit {
    pub total: Money,
    pub available: Money,
}

/// Credit per UIN at one moment (every account, or a sample).
pub type Snapshot = HashMap<Uin, Credit>;

pub fn snapshot_of(views: &[AccountView]) -> Snapshot {
    views.iter().map(|view| (view.uin, Credit { total: view.total(), available: view.available() })).collect()
}

/// What kind of partner a UIN is, for the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PartnerKind {
    Chargeable,
    Pool,
}

/// The world and what happened to it.
pub struct Book {
    pub customers: Vec<Uin>,
    /// The partner charged for each customer's purchases.
    pub charged: Vec<Uin>,
    /// Each customer's parent: the partner that allocates to it.
    pub parent: Vec<Uin>,
    partners: Vec<(Uin, PartnerKind)>,
    /// Each customer's world credit, for a model of the whole state.
    pub purchase_amount: Money,
    pub allocation_amount: Money,
    committed: Vec<AtomicU64>,
    allocated: Vec<AtomicI64>,
    uncertain: Vec<AtomicBool>,
}

/// The result of comparing the target's accounts with the model.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ModelCheck {
    pub customers_checked: usize,
    pub partners_checked: usize,
    /// Customers left out because a request about them failed without an answer.
    pub customers_uncertain: usize,
    /// Every difference, as a sentence (the first 100).
    pub violations: Vec<String>,
    pub violations_count: usize,
}

impl Book {
    pub fn new(world: &World, purchase_amount: Money, allocation_amount: Money) -> Book {
        let distributor_of: HashMap<u64, u64> =
            world.second_level_resellers.iter().map(|pool| (pool.uin, pool.distributor)).collect();
        let customers: Vec<Uin> = world.customers.iter().map(|customer| Uin(customer.uin)).collect();
        let parent: Vec<Uin> = world.customers.iter().map(|customer| Uin(customer.parent)).collect();
        let charged = world
            .customers
            .iter()
            .map(|customer| Uin(distributor_of.get(&customer.parent).copied().unwrap_or(customer.parent)))
            .collect();
        let partners = world
            .distributors
            .iter()
            .chain(&world.resellers)
            .map(|partner| (Uin(partner.uin), PartnerKind::Chargeable))
            .chain(world.second_level_resellers.iter().map(|pool| (Uin(pool.uin), PartnerKind::Pool)))
            .collect();
        let count = customers.len();
        Book {
            customers,
            charged,
            parent,
            partners,
            purchase_amount,
            allocation_amount,
            committed: (0..count).map(|_| AtomicU64::new(0)).collect(),
            allocated: (0..count).map(|_| AtomicI64::new(0)).collect(),
            uncertain: (0..count).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// The customers charged to the partner charged for the most customers, and that partner.
    pub fn hot_partner(&self) -> (Uin, Vec<u32>) {
        let mut counts: HashMap<Uin, usize> = HashMap::new();
        for charged in &self.charged {
            *counts.entry(*charged).or_default() += 1;
        }
        let hot = counts
            .into_iter()
            .max_by_key(|(uin, count)| (*count, std::cmp::Reverse(*uin)))
            .map(|(uin, _)| uin);
        let hot = hot.unwrap_or(Uin(0));
        let candidates =
            (0..self.charged.len() as u32).filter(|&index| self.charged[index as usize] == hot).collect();
        (hot, candidates)
    }

    /// Every partner's UIN: distributors, resellers, second-level resellers.
    pub fn partner_uins(&self) -> impl Iterator<Item = Uin> + '_ {
        self.partners.iter().map(|(uin, _)| *uin)
    }

    /// Asks for the customer's counter's cache line before its purchase is sent, so that it
    /// is here when the answer comes: a locked add on a line that misses stalls its core for
    /// the whole miss (about 5% of the embedded throughput), a prefetch stalls nothing.
    pub fn prefetch(&self, customer: usize) {
        crate::cache::prefetch(&self.committed[customer]);
    }

    pub fn committed(&self, customer: usize, purchases: u64) {
        self.committed[customer].fetch_add(purchases, Ordering::Relaxed);
    }

    /// An allocation (`units` > 0) or repossession (`units` < 0) of the allocation amount.
    pub fn allocated(&self, customer: usize, units: i64) {
        self.allocated[customer].fetch_add(units, Ordering::Relaxed);
    }

    pub fn uncertain(&self, customer: usize) {
        self.uncertain[customer].store(true, Ordering::Relaxed);
    }

    /// Customers in the world.
    pub fn customer_count(&self) -> usize {
        self.customers.len()
    }

    /// Purchases acknowledged as committed, in total.
    pub fn committed_total(&self) -> u64 {
        self.committed.iter().map(|count| count.load(Ordering::Relaxed)).sum()
    }

    /// What the acknowledged purchases used, in total.
    pub fn used_total(&self) -> Money {
        times(self.purchase_amount, self.committed_total() as i64)
    }

    /// Compares `after` with `before` plus the model, for every UIN present in both.
    pub fn check(&self, before: &Snapshot, after: &Snapshot) -> ModelCheck {
        let mut check = ModelCheck::default();
        let violation = |check: &mut ModelCheck, text: String| {
            check.violations_count += 1;
            if check.violations.len() < 100 {
                check.violations.push(text);
            }
        };
        let mut used_by_partner: HashMap<Uin, Money> = HashMap::new();
        let mut given_by_pool: HashMap<Uin, Money> = HashMap::new();
        let mut uncertain_partners: HashSet<Uin> = HashSet::new();
        for (index, &customer) in self.customers.iter().enumerate() {
            let used = times(self.purchase_amount, self.committed[index].load(Ordering::Relaxed) as i64);
            let given = times(self.allocation_amount, self.allocated[index].load(Ordering::Relaxed));
            *used_by_partner.entry(self.charged[index]).or_default() += used;
            *given_by_pool.entry(self.parent[index]).or_default() += given;
            if self.uncertain[index].load(Ordering::Relaxed) {
                check.customers_uncertain += 1;
                uncertain_partners.insert(self.charged[index]);
                uncertain_partners.insert(self.parent[index]);
                continue;
            }
            let (Some(was), Some(is)) = (before.get(&customer), after.get(&customer)) else { continue };
            check.customers_checked += 1;
            if is.total - was.total != given {
                violation(&mut check, format!(
                    "customer {customer}: total moved from {} to {}, but the load generator saw {given} allocated",
                    was.total, is.total
                ));
            }
            if was.available - is.available != used - given {
                violation(&mut check, format!(
                    "customer {customer}: available moved from {} to {}, but the load generator saw {used} used and {given} allocated",
                    was.available, is.available
                ));
            }
        }
        for &(partner, kind) in &self.partners {
            if uncertain_partners.contains(&partner) {
                continue;
            }
            let (Some(was), Some(is)) = (before.get(&partner), after.get(&partner)) else { continue };
            check.partners_checked += 1;
            let expected = match kind {
                PartnerKind::Chargeable => used_by_partner.get(&partner).copied().unwrap_or_default(),
                PartnerKind::Pool => given_by_pool.get(&partner).copied().unwrap_or_default(),
            };
            if is.total != was.total {
                violation(
                    &mut check,
                    format!("partner {partner}: total moved from {} to {}", was.total, is.total),
                );
            }
            if was.available - is.available != expected {
                let what = if kind == PartnerKind::Pool {
                    "allocated to its customers"
                } else {
                    "used by its customers"
                };
                violation(&mut check, format!(
                    "partner {partner}: available moved from {} to {}, but the load generator saw {expected} {what}",
                    was.available, is.available
                ));
            }
        }
        check
    }
}

/// `amount` times `count`, exact.
pub fn times(amount: Money, count: i64) -> Money {
    Money::from_decimal(amount.as_decimal() * Decimal::from(count)).unwrap_or(Money::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::WorldSpec;

    fn world() -> World {
        World::generate(&WorldSpec {
            distributors: 1,
            sub_agents_per_distributor: 1,
            resellers: 1,
            customers: 4,
            customer_credit: Money::from_units(10),
            ..WorldSpec::default()
        })
    }

    fn snapshot(world: &World) -> Snapshot {
        let accounts = world.to_accounts(crate::domain::Timestamp(0)).unwrap();
        accounts
            .iter()
            .map(|account| {
                let view = account.view();
                (view.uin, Credit { total: view.total(), available: view.available() })
            })
            .collect()
    }

    #[test]
    fn the_check_finds_what_the_model_did_not_see() {
        let world = world();
        let book = Book::new(&world, Money::from_units(1), Money::from_units(2));
        let before = snapshot(&world);
        let mut after = before.clone();
        assert!(book.check(&before, &after).violations.is_empty());

        // Customer 0 bought 3; its charged partner's available fell by 3 too.
        book.committed(0, 3);
        let customer = book.customers[0];
        let partner = book.charged[0];
        after.get_mut(&customer).unwrap().available -= Money::from_units(3);
        after.get_mut(&partner).unwrap().available -= Money::from_units(3);
        let check = book.check(&before, &after);
        assert!(check.violations.is_empty(), "{:?}", check.violations);
        assert_eq!((check.customers_checked, check.partners_checked), (4, 3));

        // One purchase the model did not see shows on both sides.
        after.get_mut(&customer).unwrap().available -= Money::from_units(1);
        after.get_mut(&partner).unwrap().available -= Money::from_units(1);
        assert_eq!(book.check(&before, &after).violations_count, 2);

        // Unless the customer is uncertain: then it and its partners are left out.
        book.uncertain(0);
        let check = book.check(&before, &after);
        assert!(check.violations.is_empty(), "{:?}", check.violations);
        assert_eq!(check.customers_uncertain, 1);
    }
}
