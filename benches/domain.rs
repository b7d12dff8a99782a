//! Criterion: one one-shot purchase through the coordinator's ledger and saga and the
//! accounts' handlers, on one thread with no runtime. The floor under every runtime's cost
//! per purchase; compare it with `partner-credit bench`'s limit row.

use criterion::{criterion_group, criterion_main, Criterion};
use partner_credit::coordinator::{Begin, Ledger, LedgerLimits, Mode, Next, PurchaseRequest, Step};
use partner_credit::domain::{Account, Caller, Money, PurchaseId, Timestamp, Uin};
use partner_credit::{World, WorldSpec};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rustc_hash::FxHashMap;

fn domain(c: &mut Criterion) {
    let spec = WorldSpec { customer_credit: Money::from_units(1_000_000), ..WorldSpec::default() };
    let world = World::generate(&spec);
    let customers: Vec<Uin> = world.customer_uins();
    let mut accounts: FxHashMap<Uin, Account> = world
        .to_accounts(Timestamp(0))
        .expect("valid world")
        .into_iter()
        .map(|account| (account.uin, account))
        .collect();
    let limits = LedgerLimits {
        resolved_retention_ms: 600_000,
        resolved_capacity: 500_000,
        open_reservations_max: 1_000,
    };
    let mut ledger = Ledger::alone(limits);
    let index = ledger.index().clone();
    // A runtime holds a read of the index for a round of messages: here, 1024 purchases.
    let mut table = Some(index.read(0));
    let mut rng = SmallRng::seed_from_u64(1);
    let amount = Money::from_units(1);
    let mut sequence = 0u64;
    c.bench_function("domain/one-shot purchase, ledger + saga + accounts", |b| {
        b.iter(|| {
            sequence += 1;
            if sequence % 1024 == 0 {
                table = None;
                index.maintain();
                table = Some(index.read(0));
            }
            let read = table.as_ref().expect("held");
            let customer = customers[rng.gen_range(0..customers.len())];
            let request = PurchaseRequest::new(
                PurchaseId::numbered("p", 0, sequence).expect("short id"),
                customer,
                amount,
            );
            let Next::Run(mut saga) = ledger.begin(
                read,
                Begin::new(Caller::Operator, &request, Mode::OneShot),
                Timestamp(1),
                &|_| None,
            ) else {
                panic!("a new purchase runs a saga")
            };
            let mut step = saga.first_step();
            let end = loop {
                match step {
                    Step::Call(uin, command) => {
                        let reply = accounts.get_mut(&uin).expect("known account").handle(command);
                        step = saga.advance(reply);
                    }
                    Step::Done(end) => break end,
                }
            };
            ledger.finish(read, saga, end, Timestamp(1)).expect("purchased")
        })
    });
}

criterion_group!(benches, domain);
criterion_main!(benches);
