//! Criterion benches through the engine API: one uncontended purchase (latency) and a batch
//! of 64 on every runtime, and a batch of 64 against one hot partner on the sharded runtime.
//! Set-up (the world, the engine) stays out of the timed loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use partner_credit::{
    Action, Caller, Engine, EngineConfig, Money, PurchaseId, PurchaseRequest, Quota, QuotaTable, RuntimeKind,
    Uin, World, WorldSpec,
};

/// Large enough that no customer runs out during a bench.
fn world(hot_partner: bool) -> World {
    World::generate(&WorldSpec {
        customers: 10_000,
        customer_credit: Money::from_units(1_000_000),
        hot_partner,
        ..WorldSpec::default()
    })
}

fn engine(
    runtime: &tokio::runtime::Runtime,
    kind: RuntimeKind,
    hot_partner: bool,
) -> (Arc<Engine>, Vec<Uin>) {
    let engine = Arc::new(Engine::start(EngineConfig { runtime: kind, ..EngineConfig::default() }));
    let world = world(hot_partner);
    runtime.block_on(engine.import(Caller::Operator, &world)).expect("import");
    (engine, world.customer_uins())
}

fn request(counter: &AtomicU64, customers: &[Uin]) -> PurchaseRequest {
    let sequence = counter.fetch_add(1, Ordering::Relaxed);
    let id = PurchaseId::numbered("bench-", 0, sequence).expect("short id");
    PurchaseRequest::new(id, customers[(sequence as usize * 7919) % customers.len()], Money::from_cents(1))
}

fn purchases(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("purchase");
    for kind in RuntimeKind::ALL {
        let (engine, customers) = engine(&runtime, kind, false);
        let counter = AtomicU64::new(0);
        group.bench_function(BenchmarkId::new("single", kind.name()), |b| {
            b.to_async(&runtime).iter(|| {
                let request = request(&counter, &customers);
                let engine = &engine;
                async move { engine.purchase(Caller::Operator, request).await.expect("purchase") }
            })
        });
        bench_batch(
            &mut group,
            &runtime,
            BenchmarkId::new("batch-64", kind.name()),
            &engine,
            &customers,
            &counter,
        );
        engine.shutdown();
    }
    let (engine, customers) = engine(&runtime, RuntimeKind::Sharded, true);
    let counter = AtomicU64::new(0);
    let id = BenchmarkId::new("hot-partner batch-64", "sharded");
    bench_batch(&mut group, &runtime, id, &engine, &customers, &counter);
    engine.shutdown();
    group.finish();
}

/// Batches of 64 purchases; building a batch stays out of the timed loop.
fn bench_batch(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    id: BenchmarkId,
    engine: &Engine,
    customers: &[Uin],
    counter: &AtomicU64,
) {
    group.bench_function(id, |b| {
        b.to_async(runtime).iter_batched(
            || (0..64).map(|_| request(counter, customers)).collect::<Vec<_>>(),
            |requests| async move { engine.purchase_batch(Caller::Operator, requests).await.expect("batch") },
            criterion::BatchSize::SmallInput,
        )
    });
}

/// The cost of the rate-limit check alone: an action with no quota, one caller under a
/// quota, and 100,000 callers in turn (their budgets spill out of the caches).
fn rate_limits(c: &mut Criterion) {
    let quota = Quota::per_second(partner_credit::domain::QUOTA_MAX).expect("valid");
    let quotas = QuotaTable::documented().with([(Action::CreatePurchase, Some(quota))]);
    let engine = Engine::start(EngineConfig { quotas, ..EngineConfig::default() });
    let mut group = c.benchmark_group("admit");
    group.bench_function("no quota", |b| {
        b.iter(|| engine.admit(Caller::Operator, Action::CommitPurchase).expect("admitted"))
    });
    group.bench_function("one caller", |b| {
        b.iter(|| engine.admit(Caller::Operator, Action::CreatePurchase).expect("admitted"))
    });
    let mut next = 0u64;
    group.bench_function("100k callers", |b| {
        b.iter(|| {
            next = (next + 7919) % 100_000;
            engine.admit(Caller::Uin(Uin(next)), Action::CreatePurchase).expect("admitted")
        })
    });
    group.finish();
    engine.shutdown();
}

criterion_group!(benches, purchases, rate_limits);
criterion_main!(benches);
