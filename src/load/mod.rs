//! `partner-credit load`: purchases from many concurrent tasks against an embedded engine,
//! then a report and an audit of the books.
//!
//! The load generator keeps its own record of what was acknowledged (the number of committed
//! purchases and their amount) and checks the engine's books against it at the end.
//!
//! Invariant: every loop is bounded by the duration and by `purchases_max`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::audit::Audit;
use crate::coordinator::PurchaseRequest;
use crate::domain::{Caller, Money, PurchaseId, Uin};
use crate::engine::{Engine, EngineConfig, Error};
use crate::runtime::RuntimeKind;
use crate::world::{World, WorldSpec};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub runtime: RuntimeKind,
    pub duration: Duration,
    /// Tasks issuing purchases, each waiting for its answer before the next (closed loop).
    pub concurrency: usize,
    pub world: WorldSpec,
    /// Each purchase's amount.
    pub amount: Money,
    /// Stop after this many purchases even if time remains.
    pub purchases_max: u64,
    pub seed: u64,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            runtime: RuntimeKind::default(),
            duration: Duration::from_secs(10),
            concurrency: 256,
            world: WorldSpec::default(),
            amount: Money::from_units(1),
            purchases_max: u64::MAX,
            seed: 1,
        }
    }
}

/// What happened.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub runtime: RuntimeKind,
    pub accounts: usize,
    pub import_secs: f64,
    pub elapsed_secs: f64,
    pub purchases: u64,
    pub committed: u64,
    pub purchases_per_sec: f64,
    /// Outcome name to count: `Committed` or the rejection's name.
    pub outcomes: BTreeMap<String, u64>,
    pub audit: Audit,
    /// What the load generator itself recorded as committed, in money.
    pub expected_used: Money,
}

impl LoadReport {
    /// The books balance and match what the load generator saw acknowledged.
    pub fn audit_ok(&self) -> bool {
        self.audit.ok() && self.audit.customer_used == self.expected_used
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "runtime          {}", self.runtime.name())?;
        writeln!(f, "world            {} accounts, imported in {:.3} s", self.accounts, self.import_secs)?;
        writeln!(f, "duration         {:.2} s", self.elapsed_secs)?;
        writeln!(f, "purchases        {}", self.purchases)?;
        writeln!(f, "throughput       {:.0} purchases/s", self.purchases_per_sec)?;
        writeln!(f, "outcomes")?;
        for (name, count) in &self.outcomes {
            writeln!(f, "  {name:<28} {count}")?;
        }
        let verdict = if self.audit_ok() { "ok" } else { "FAILED" };
        writeln!(f, "audit            {verdict}")?;
        writeln!(
            f,
            "  customers used {} (load generator recorded {})",
            self.audit.customer_used, self.expected_used
        )?;
        writeln!(f, "  partners used  {}", self.audit.partner_used)?;
        writeln!(
            f,
            "  reserved       {} customers, {} partners",
            self.audit.customer_reserved, self.audit.partner_reserved
        )?;
        for violation in self.audit.violations.iter().take(20) {
            writeln!(f, "  violation: {violation}")?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct TaskTally {
    purchases: u64,
    committed: u64,
    outcomes: BTreeMap<String, u64>,
}

/// Builds the world in a new embedded engine and runs the load.
pub async fn run(options: &LoadOptions) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(options.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(options.world.customers > 0, "the world needs at least one customer");
    let config = EngineConfig { runtime: options.runtime, ..EngineConfig::default() };
    let engine = Arc::new(Engine::start(config));
    let world = World::generate(&options.world);
    let started = Instant::now();
    let accounts = engine.import(Caller::Operator, &world).await?;
    let import_secs = started.elapsed().as_secs_f64();
    let customers: Arc<Vec<Uin>> = Arc::new(world.customer_uins());

    let started = Instant::now();
    let deadline = started + options.duration;
    let per_task_max = options.purchases_max.div_ceil(options.concurrency as u64);
    let tasks = (0..options.concurrency).map(|task| {
        let engine = engine.clone();
        let customers = customers.clone();
        let amount = options.amount;
        let seed = options.seed;
        tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(task as u64));
            let mut tally = TaskTally::default();
            while tally.purchases < per_task_max && Instant::now() < deadline {
                let customer = customers[rng.gen_range(0..customers.len())];
                let id = PurchaseId::numbered("load-", task as u64, tally.purchases).expect("short id");
                let request = PurchaseRequest::new(id, customer, amount);
                tally.purchases += 1;
                let name = match engine.purchase(Caller::Operator, request).await {
                    Ok(_) => {
                        tally.committed += 1;
                        "Committed"
                    }
                    Err(Error::Rejected(rejection)) => rejection.name(),
                    Err(Error::Failed(failure)) => return Err(failure),
                };
                *tally.outcomes.entry(name.to_string()).or_default() += 1;
            }
            Ok(tally)
        })
    });
    let tallies = futures::future::join_all(tasks).await;
    let elapsed_secs = started.elapsed().as_secs_f64();
    let mut total = TaskTally::default();
    for tally in tallies {
        let tally = tally??;
        total.purchases += tally.purchases;
        total.committed += tally.committed;
        for (name, count) in tally.outcomes {
            *total.outcomes.entry(name).or_default() += count;
        }
    }
    let audit = engine.audit().await?;
    engine.shutdown();
    let committed_units = i64::try_from(total.committed).unwrap_or(i64::MAX);
    let expected_used =
        Money::from_decimal(options.amount.as_decimal() * rust_decimal::Decimal::from(committed_units))?;
    Ok(LoadReport {
        runtime: options.runtime,
        accounts,
        import_secs,
        elapsed_secs,
        purchases: total.purchases,
        committed: total.committed,
        purchases_per_sec: total.purchases as f64 / elapsed_secs.max(f64::EPSILON),
        outcomes: total.outcomes,
        audit,
        expected_used,
    })
}
