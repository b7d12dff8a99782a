//! Criterion: one-shot purchases through the coordinator's ledger and saga and the accounts'
//! handlers, on one thread with no runtime: the floor under every runtime's cost per
//! purchase. Accounts sit in a dense vector and a purchase arrives with its customer's and
//! partner's slots, as the sharded runtime keeps them; compare with `partner-credit bench`'s
//! limit row.
//!
//! Two measurements: one purchase at a time (each waits for its own cache misses), and a
//! batch of 1024 whose accounts and index entries are asked for eight purchases ahead, as
//! the sharded runtime does with a batch (the misses of different purchases overlap).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use partner_credit::coordinator::{
    Begin, IdIndex, IndexRead, Key, Ledger, LedgerLimits, Mode, Next, PurchaseRequest, Step,
};
use partner_credit::domain::{Account, Caller, Money, PurchaseId, Timestamp, Uin};
use partner_credit::{World, WorldSpec};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;

/// The accounts of the generated world in a dense vector, and each customer's slot with its
/// charged partner's.
struct Accounts {
    accounts: Vec<Account>,
    /// A customer's slot and its partner's, and its UIN.
    customers: Vec<((u32, u32), Uin)>,
}

fn accounts() -> Accounts {
    let spec = WorldSpec { customer_credit: Money::from_units(1_000_000), ..WorldSpec::default() };
    let world = World::generate(&spec);
    let accounts = world.to_accounts(Timestamp(0)).expect("valid world");
    let slots: FxHashMap<Uin, u32> =
        accounts.iter().enumerate().map(|(slot, account)| (account.uin, slot as u32)).collect();
    let customers = world
        .customer_uins()
        .into_iter()
        .map(|customer| {
            let slot = slots[&customer];
            let charged = accounts[slot as usize].role.charged().expect("a customer");
            ((slot, slots[&charged]), customer)
        })
        .collect();
    Accounts { accounts, customers }
}

fn ledger() -> Ledger {
    let limits = LedgerLimits {
        resolved_retention_ms: 600_000,
        resolved_capacity: 500_000,
        open_reservations_max: 1_000,
    };
    Ledger::alone(limits)
}

/// One purchase from its begin to its answer.
fn purchase(
    ledger: &mut Ledger,
    table: &IndexRead<'_>,
    accounts: &mut [Account],
    (customer, partner): (u32, u32),
    request: &PurchaseRequest,
    key: Option<Key>,
) {
    let begin = Begin { key, ..Begin::new(Caller::Operator, request, Mode::OneShot) };
    let Next::Run(mut saga) = ledger.begin(table, begin, Timestamp(1), &|_| None) else {
        panic!("a new purchase runs a saga")
    };
    let mut step = saga.first_step();
    let end = loop {
        match step {
            Step::Call(uin, command) => {
                let slot = if uin == saga.customer() { customer } else { partner };
                step = saga.advance(accounts[slot as usize].handle(command));
            }
            Step::Done(end) => break end,
        }
    };
    ledger.finish(table, saga, end, Timestamp(1)).expect("purchased");
}

/// Asks for a purchase's customer account and index entry ahead, and keeps its id's key.
fn warm(
    accounts: &[Account],
    ledger: &Ledger,
    table: &IndexRead<'_>,
    keys: &mut Vec<Key>,
    ((customer, _), request): &((u32, u32), PurchaseRequest),
) {
    partner_credit::cache::prefetch_all(&accounts[*customer as usize]);
    let key = ledger.key(&request.id);
    table.prefetch(key.low);
    keys.push(key);
}

fn domain(c: &mut Criterion) {
    let Accounts { mut accounts, customers } = accounts();
    let mut ledger = ledger();
    let index: std::sync::Arc<IdIndex> = ledger.index().clone();
    let mut rng = SmallRng::seed_from_u64(1);
    let amount = Money::from_units(1);
    let mut sequence = 0u64;
    let mut next = |rng: &mut SmallRng| {
        sequence += 1;
        let (at, customer) = customers[rng.gen_range(0..customers.len())];
        let id = PurchaseId::numbered("p", 0, sequence).expect("short id");
        (at, PurchaseRequest::new(id, customer, amount))
    };
    // The requests are made outside the timed loop: a runtime receives them made.
    let mut group = c.benchmark_group("domain");
    group.bench_function("one-shot purchase, ledger + saga + accounts", |b| {
        b.iter_batched(
            || next(&mut rng),
            |(at, request)| {
                index.maintain();
                let table = index.read(0);
                purchase(&mut ledger, &table, &mut accounts, at, &request, None)
            },
            BatchSize::SmallInput,
        )
    });
    group.throughput(Throughput::Elements(1024));
    group.bench_function("batch of 1024, warmed 8 ahead", |b| {
        b.iter_batched(
            || (0..1024).map(|_| next(&mut rng)).collect::<Vec<_>>(),
            |batch| {
                index.maintain();
                let table = index.read(0);
                let mut keys = Vec::with_capacity(batch.len());
                for item in batch.iter().take(8) {
                    warm(&accounts, &ledger, &table, &mut keys, item);
                }
                for (position, (at, request)) in batch.iter().enumerate() {
                    if let Some(ahead) = batch.get(position + 8) {
                        warm(&accounts, &ledger, &table, &mut keys, ahead);
                    }
                    purchase(&mut ledger, &table, &mut accounts, *at, request, Some(keys[position]));
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, domain);
criterion_main!(benches);
