//! The baselines every row of `partner-credit bench` is a ratio to: the machine's limit for
//! the work (one thread, plain vectors, the two-phase check inline) and the `DashMap` an
//! embedder would write instead of using the engine. Neither keeps idempotency records.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use rust_decimal::Decimal;

use super::{cpu_time, resident_bytes, Measured};
use crate::world::{CustomerEntry, World};

/// A credit in the limit row: `rust_decimal`, as a program written without the engine's
/// fixed-point money would keep it, so that the row stays the baseline it has always been
/// (a customer's available credit also subtracts its frozen credit, a partner's does not).
#[derive(Clone, Copy, Default)]
struct LimitCredit {
    total: Decimal,
    used: Decimal,
    reserved: Decimal,
    frozen: Option<Decimal>,
}

impl LimitCredit {
    fn partner(credit: Decimal) -> LimitCredit {
        LimitCredit { total: fixed(credit), ..LimitCredit::default() }
    }

    fn customer(credit: Decimal) -> LimitCredit {
        LimitCredit { total: fixed(credit), frozen: Some(fixed(Decimal::ZERO)), ..LimitCredit::default() }
    }

    fn available(&self) -> Decimal {
        match self.frozen {
            Some(frozen) => self.total - self.used - self.reserved - frozen,
            None => self.total - self.used - self.reserved,
        }
    }
}

/// `value` at scale 8, as the engine's money used to be, so that additions take
/// `rust_decimal`'s equal-scale path.
fn fixed(mut value: Decimal) -> Decimal {
    value.rescale(8);
    value
}

/// The two-phase purchase of both baselines: both sides checked, both reserved, both
/// committed; answers whether it was committed.
#[inline]
fn purchase(customer: &mut LimitCredit, partner: &mut LimitCredit, amount: Decimal) -> bool {
    if customer.available() < amount || partner.available() < amount {
        return false;
    }
    customer.reserved += amount;
    partner.reserved += amount;
    customer.reserved -= amount;
    customer.used += amount;
    partner.reserved -= amount;
    partner.used += amount;
    true
}

/// Each customer of `world` with the UIN of the partner its purchases charge (a
/// second-level reseller's customers charge its distributor).
fn customers_and_charged(world: &World) -> impl Iterator<Item = (&CustomerEntry, u64)> {
    let sub_agent_distributor: std::collections::HashMap<u64, u64> =
        world.second_level_resellers.iter().map(|sub_agent| (sub_agent.uin, sub_agent.distributor)).collect();
    world.customers.iter().map(move |customer| {
        (customer, sub_agent_distributor.get(&customer.parent).copied().unwrap_or(customer.parent))
    })
}

/// One thread, plain vectors, the two-phase check inline.
pub(super) fn limit(world: &World, duration: Duration) -> Measured {
    let resident_before = resident_bytes();
    let partner_index: std::collections::HashMap<u64, usize> = world
        .distributors
        .iter()
        .chain(&world.resellers)
        .enumerate()
        .map(|(index, partner)| (partner.uin, index))
        .collect();
    let mut partners: Vec<LimitCredit> = world
        .distributors
        .iter()
        .chain(&world.resellers)
        .map(|partner| LimitCredit::partner(partner.credit))
        .collect();
    let mut customers: Vec<(LimitCredit, usize)> = customers_and_charged(world)
        .map(|(customer, charged)| (LimitCredit::customer(customer.credit), partner_index[&charged]))
        .collect();
    let bytes_per_uin =
        resident_bytes().saturating_sub(resident_before) as f64 / (customers.len() + partners.len()) as f64;
    let amount = fixed(Decimal::ONE);
    let mut rng = SmallRng::seed_from_u64(1);
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut purchases = 0u64;
    let mut committed = 0u64;
    'outer: loop {
        for _ in 0..1024 {
            let index = rng.gen_range(0..customers.len());
            let (customer, partner) = &mut customers[index];
            purchases += 1;
            committed += u64::from(purchase(customer, &mut partners[*partner], amount));
        }
        if started.elapsed() >= duration {
            break 'outer;
        }
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let customer_used: Decimal = customers.iter().map(|(credit, _)| credit.used).sum();
    let partner_used: Decimal = partners.iter().map(|credit| credit.used).sum();
    let expected = Decimal::from(committed);
    Measured {
        purchases,
        elapsed,
        cpu,
        bytes_per_uin,
        audit_ok: customer_used == partner_used && customer_used == expected && committed == purchases,
        ratio_to_no_quota: None,
        latency_us: None,
        bytes_per_purchase_id: None,
        journal_bytes: None,
    }
}

/// One `DashMap<u64, Mutex<..>>` of every account's `rust_decimal` credit, and a thread per
/// core making purchases inline: lock the customer, then its charged partner, check and
/// reserve both, commit both. No actors, no idempotency records: the design an embedder
/// could write in an afternoon, and the peer the sharded runtime is measured against.
pub(super) fn dashmap_row(world: &World, duration: Duration) -> Measured {
    type Account = parking_lot::Mutex<LimitCredit>;
    let resident_before = resident_bytes();
    let accounts: dashmap::DashMap<u64, Account> = dashmap::DashMap::new();
    for partner in world.distributors.iter().chain(&world.resellers) {
        accounts.insert(partner.uin, parking_lot::Mutex::new(LimitCredit::partner(partner.credit)));
    }
    let mut customers: Vec<(u64, u64)> = Vec::with_capacity(world.customers.len());
    for (customer, charged) in customers_and_charged(world) {
        accounts.insert(customer.uin, parking_lot::Mutex::new(LimitCredit::customer(customer.credit)));
        customers.push((customer.uin, charged));
    }
    let bytes_per_uin = resident_bytes().saturating_sub(resident_before) as f64 / accounts.len() as f64;
    let amount = fixed(Decimal::ONE);
    let threads = std::thread::available_parallelism().map(usize::from).unwrap_or(2);
    let cpu_before = cpu_time();
    let started = Instant::now();
    let (purchases, committed) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let (accounts, customers) = (&accounts, &customers);
                scope.spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(thread as u64 + 1);
                    let (mut purchases, mut committed) = (0u64, 0u64);
                    while started.elapsed() < duration {
                        for _ in 0..1024 {
                            let (customer, partner) = customers[rng.gen_range(0..customers.len())];
                            purchases += 1;
                            let customer = accounts.get(&customer).expect("a customer of the world");
                            let mut customer = customer.lock();
                            if customer.available() < amount {
                                continue;
                            }
                            let partner = accounts.get(&partner).expect("a partner of the world");
                            committed += u64::from(purchase(&mut customer, &mut partner.lock(), amount));
                        }
                    }
                    (purchases, committed)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a bench thread"))
            .fold((0, 0), |sum, one| (sum.0 + one.0, sum.1 + one.1))
    });
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let used = |uin: &u64| accounts.get(uin).map_or(Decimal::ZERO, |account| account.lock().used);
    let customer_used: Decimal = customers.iter().map(|(customer, _)| used(customer)).sum();
    let partners: std::collections::BTreeSet<u64> = customers.iter().map(|(_, partner)| *partner).collect();
    let partner_used: Decimal = partners.iter().map(used).sum();
    Measured {
        purchases,
        elapsed,
        cpu,
        bytes_per_uin,
        audit_ok: customer_used == partner_used
            && customer_used == Decimal::from(committed)
            && committed == purchases,
        ratio_to_no_quota: None,
        latency_us: None,
        bytes_per_purchase_id: None,
        journal_bytes: None,
    }
}
