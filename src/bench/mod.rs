//! `partner-credit bench`: the runtimes side by side on one workload, as ratios within one
//! run.
//!
//! Every row builds the world of `partner-credit load` (or its hot-partner variant), then
//! makes purchases of 1.00 by uniformly random customers for `secs` seconds, then audits the
//! books: conservation must hold and the customers' used credit must equal what the row
//! counted as committed. The first row is the machine's limit for this work: one thread, a
//! plain vector of credit structs with `rust_decimal`, the two-phase check inline, no actors,
//! no idempotency records. The `dashmap` row is the peer an embedder would write instead of
//! using the engine: a `DashMap<u64, Mutex<..>>` of the same credit structs, a thread per
//! core, no idempotency records. The `single-task` row makes one purchase at a time from one
//! task and reports its latency.
//!
//! The `durable` rows are their in-memory rows again with a journal in a data directory
//! (fsync `always` unless `--fsync` says otherwise), each from a fresh empty directory, with
//! their ratio to the in-memory row of the same run and the journal bytes they wrote per
//! purchase; `fsync-limit` is the directory's fdatasyncs a second, what a design that
//! fsyncs once per purchase could reach (see `durable.rs`).
//!
//! Invariant: every loop is bounded by time; the world's credit is large enough that every
//! purchase succeeds, so rows measure the same work.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::coordinator::PurchaseRequest;
use crate::domain::voucher::{PaymentMode, ProductScope, Scope};
use crate::domain::{Action, Caller, Money, PurchaseId, Quota, QuotaTable, Uin};
use crate::engine::{Engine, EngineConfig, NewCustomerVoucher};
use crate::journal::FsyncPolicy;
use crate::runtime::RuntimeKind;
use crate::world::{World, WorldSpec};
use compact_str::CompactString;

mod baselines;
mod durable;
#[cfg(feature = "http")]
mod http;
mod recovery;
mod report;

use self::baselines::{dashmap_row, limit};
pub use self::durable::{data_dir_default, on_tmpfs};
use self::durable::{fsync_limit, DataDirs};
pub use self::recovery::{format as format_recovery, Recovery};
pub use self::report::{format_row, header, Report, Row};

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Time per row.
    pub secs: f64,
    pub customers: usize,
    /// Concurrent callers for the single-call rows.
    pub single_tasks: usize,
    /// Keep-alive connections for the HTTP single-request rows (4 for batches).
    pub http_connections: usize,
    /// Run only the rows whose name contains this (the limit, actix and dashmap rows, the
    /// bases of the ratios, always run; so do the in-memory rows of the durable rows chosen,
    /// and `fsync-limit` with them).
    pub only: Option<String>,
    /// The HTTP rows' server counts its answers for `GET /metrics` (`[admin] metrics`), as
    /// `serve` does by default; off, to measure what counting costs.
    pub http_metrics: bool,
    /// Where the durable rows keep their journals, each in a fresh directory of its own
    /// inside, deleted after the row; `None`: [`data_dir_default`]. Created if missing, and
    /// then removed after the run.
    pub data_dir: Option<PathBuf>,
    /// The durable rows' fsync policy.
    pub fsync: FsyncPolicy,
    /// The recovery measurement ([`Recovery`]): the customers (with their partners) and the
    /// journalled purchases the data directory holds. It runs in a whole run, or when `only` is part of its name,
    /// `durable recovery` (`durable`, `recovery`).
    pub recovery_accounts: usize,
    pub recovery_purchases: u64,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            secs: 3.0,
            customers: 100_000,
            single_tasks: 64,
            http_connections: 32,
            only: None,
            http_metrics: true,
            data_dir: None,
            fsync: FsyncPolicy::Always,
            recovery_accounts: 1_000_000,
            recovery_purchases: 1_000_000,
        }
    }
}

/// How purchases reach the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submission {
    Inline,
    Single,
    /// One task, one purchase at a time: the latency an embedder calling
    /// `engine.purchase(...).await` in a loop sees.
    SingleTask,
    Batch(usize),
    /// `Ping` over HTTP: the server's cost with no engine call.
    HttpPing,
    /// `CreatePurchase` over HTTP, one per request.
    HttpSingle,
    /// `CreatePurchases` over HTTP.
    HttpBatch(usize),
}

impl Submission {
    fn name(self) -> String {
        match self {
            Submission::Inline => "inline".into(),
            Submission::Single => "single".into(),
            Submission::SingleTask => "single-task".into(),
            Submission::Batch(size) => format!("batch-{size}"),
            Submission::HttpPing => "http-ping".into(),
            Submission::HttpSingle => "http-single".into(),
            Submission::HttpBatch(size) => format!("http-batch-{size}"),
        }
    }
}

#[derive(Clone, Copy)]
struct Plan {
    /// `None` for the rows without the engine: the limit, or with `dashmap`, the
    /// `DashMap<u64, Mutex<..>>` design an embedder could write in an afternoon, or with
    /// `fsync_limit`, the disk's fdatasyncs a second.
    runtime: Option<RuntimeKind>,
    dashmap: bool,
    fsync_limit: bool,
    hot_partner: bool,
    submission: Submission,
    /// Purchases under a generous quota ([`GENEROUS_QUOTA`]), measured against the same
    /// row without one, in alternating rounds.
    quota: bool,
    /// Every customer holds two vouchers, one of them out of the purchases' scope.
    vouchers: bool,
    /// HTTP rows: requests signed with signature v1 (HmacSHA256, a form body), as the Node.js
    /// SDK signs by default, rather than TC3 over JSON.
    v1: bool,
    /// With a journal in a fresh data directory, under this policy; the same plan with
    /// `None` is its in-memory row.
    durable: Option<FsyncPolicy>,
}

/// The product every purchase of the vouchers row buys; one voucher per customer covers it,
/// the other covers only [`OTHER_PRODUCT`].
const VOUCHER_PRODUCT: &str = "cvm";
const OTHER_PRODUCT: &str = "cos";

/// The quota of the quota row: never reached, so the row measures the check's cost.
pub const GENEROUS_QUOTA: u32 = crate::domain::QUOTA_MAX;

/// Alternating rounds of the quota row (A B B A ...), so that drift of the machine's speed
/// hits both halves alike; the row's ratio is the median of the rounds' ratios.
const QUOTA_ROUNDS: u32 = 10;

impl Plan {
    fn runtime_name(&self) -> &'static str {
        match (self.runtime, self.dashmap, self.fsync_limit) {
            (Some(kind), _, _) => kind.name(),
            (None, true, _) => "dashmap",
            (None, false, true) => FSYNC_LIMIT,
            (None, false, false) => "limit",
        }
    }

    /// The rows every run has: the bases of the ratios.
    fn is_base(&self) -> bool {
        !self.fsync_limit && matches!(self.runtime, None | Some(RuntimeKind::Actix))
    }

    /// The same row without a journal.
    fn in_memory(&self) -> Plan {
        Plan { durable: None, ..*self }
    }

    fn scenario(&self) -> &'static str {
        if self.hot_partner {
            "hot-partner"
        } else {
            "uniform"
        }
    }

    fn name(&self) -> String {
        if self.fsync_limit {
            return FSYNC_LIMIT.into();
        }
        let quota = if self.quota { " quota" } else { "" };
        let vouchers = if self.vouchers { " vouchers" } else { "" };
        let v1 = if self.v1 { " v1" } else { "" };
        // Named by its policy unless it is the default one.
        let durable = match self.durable {
            None => String::new(),
            Some(FsyncPolicy::Always) => " durable".into(),
            Some(policy) => format!(" durable {policy}"),
        };
        format!(
            "{} {} {}{quota}{vouchers}{v1}{durable}",
            self.runtime_name(),
            self.scenario(),
            self.submission.name()
        )
    }
}

/// The name (and runtime) of the row of the disk's fdatasyncs a second.
const FSYNC_LIMIT: &str = "fsync-limit";

/// Which of `plans` run: every row whose name contains `only` (all without it), the bases of
/// the ratios, the in-memory row of every durable row that runs (its ratio must come from
/// the same run), and `fsync-limit` whenever a durable row runs.
fn chosen(plans: &[Plan], only: Option<&str>) -> Vec<bool> {
    let named: Vec<bool> = plans
        .iter()
        .map(|plan| plan.is_base() || only.map_or(true, |only| plan.name().contains(only)))
        .collect();
    let durable: Vec<String> = plans
        .iter()
        .zip(&named)
        .filter(|(plan, named)| **named && plan.durable.is_some())
        .map(|(plan, _)| plan.in_memory().name())
        .collect();
    plans
        .iter()
        .zip(named)
        .map(|(plan, named)| {
            named
                || (plan.durable.is_none() && durable.contains(&plan.name()))
                || (plan.fsync_limit && !durable.is_empty())
        })
        .collect()
}

/// The rows, in order: the limit first, actix second, as the bases of the ratios; each
/// durable row right after its in-memory row, under `fsync`.
fn plans(fsync: FsyncPolicy) -> Vec<Plan> {
    let plan = |runtime, hot_partner, submission| Plan {
        runtime,
        dashmap: false,
        fsync_limit: false,
        hot_partner,
        submission,
        quota: false,
        vouchers: false,
        v1: false,
        durable: None,
    };
    let durable = Some(fsync);
    vec![
        plan(None, false, Submission::Inline),
        plan(Some(RuntimeKind::Actix), false, Submission::Single),
        Plan { dashmap: true, ..plan(None, false, Submission::Inline) },
        plan(Some(RuntimeKind::Sharded), false, Submission::SingleTask),
        plan(Some(RuntimeKind::Sharded), false, Submission::Single),
        plan(Some(RuntimeKind::Sharded), false, Submission::Batch(64)),
        plan(Some(RuntimeKind::Sharded), false, Submission::Batch(1024)),
        Plan { durable, ..plan(Some(RuntimeKind::Sharded), false, Submission::Batch(1024)) },
        Plan { fsync_limit: true, ..plan(None, false, Submission::Inline) },
        plan(Some(RuntimeKind::Sharded), true, Submission::Batch(1024)),
        Plan { vouchers: true, ..plan(Some(RuntimeKind::Sharded), false, Submission::Batch(1024)) },
        Plan { quota: true, ..plan(Some(RuntimeKind::Sharded), false, Submission::Single) },
        #[cfg(feature = "http")]
        plan(Some(RuntimeKind::Sharded), false, Submission::HttpPing),
        #[cfg(feature = "http")]
        plan(Some(RuntimeKind::Sharded), false, Submission::HttpSingle),
        #[cfg(feature = "http")]
        Plan { durable, ..plan(Some(RuntimeKind::Sharded), false, Submission::HttpSingle) },
        #[cfg(feature = "http")]
        Plan { v1: true, ..plan(Some(RuntimeKind::Sharded), false, Submission::HttpSingle) },
        #[cfg(feature = "http")]
        plan(Some(RuntimeKind::Sharded), false, Submission::HttpBatch(1024)),
    ]
}

pub async fn run(options: &BenchOptions, mut progress: impl FnMut(&Row)) -> anyhow::Result<Report> {
    anyhow::ensure!(options.secs > 0.0 && options.secs <= 3600.0, "--secs must be between 0 and 3600");
    anyhow::ensure!(options.customers > 0, "--customers must be at least 1");
    anyhow::ensure!(
        (1..=10_000).contains(&options.http_connections),
        "--http-connections must be between 1 and 10000"
    );
    let duration = Duration::from_secs_f64(options.secs);
    let plans = plans(options.fsync);
    let chosen = chosen(&plans, options.only.as_deref());
    // Created only if a durable row runs; removed when dropped.
    let mut data_dirs: Option<DataDirs> = None;
    let mut rows: Vec<Row> = Vec::new();
    for (plan, _) in plans.into_iter().zip(chosen).filter(|(_, chosen)| *chosen) {
        let name = plan.name();
        let data_dir = match plan.durable.is_some() || plan.fsync_limit {
            true => Some(data_dirs_of(&mut data_dirs, options)?.fresh(&name)?),
            false => None,
        };
        let measured = measure(plan, data_dir.clone(), duration, options).await?;
        if let (Some(dirs), Some(dir)) = (&mut data_dirs, &data_dir) {
            dirs.remove(dir)?;
        }
        let row = row_of(plan, name, &measured, &rows);
        progress(&row);
        rows.push(row);
        release_freed_memory();
    }
    // Chosen as a row named `durable recovery` would be.
    let recovery_chosen = options.only.as_deref().map_or(true, |only| recovery::NAME.contains(only));
    let mut recovery = Vec::new();
    if recovery_chosen {
        let dirs = data_dirs_of(&mut data_dirs, options)?;
        recovery = recovery::measure(dirs, options.recovery_accounts, options.recovery_purchases).await?;
    }
    if let Some(dirs) = data_dirs {
        dirs.finish()?;
    }
    Ok(Report { rows, recovery })
}

/// The bench's data directory, created the first time a row needs it.
fn data_dirs_of<'a>(
    data_dirs: &'a mut Option<DataDirs>,
    options: &BenchOptions,
) -> anyhow::Result<&'a mut DataDirs> {
    match data_dirs {
        Some(dirs) => Ok(dirs),
        None => Ok(data_dirs.insert(DataDirs::create(options.data_dir.clone())?)),
    }
}

/// Runs the row `plan` in a world of its own (journalling in `data_dir` if it is durable).
async fn measure(
    plan: Plan,
    data_dir: Option<PathBuf>,
    duration: Duration,
    options: &BenchOptions,
) -> anyhow::Result<Measured> {
    let spec = WorldSpec {
        customers: options.customers,
        // Enough that no purchase is refused however fast a row runs.
        customer_credit: Money::from_units(1_000_000),
        hot_partner: plan.hot_partner,
        ..WorldSpec::default()
    };
    let world = World::generate(&spec);
    Ok(match plan.runtime {
        None if plan.dashmap => dashmap_row(&world, duration),
        None if plan.fsync_limit => {
            fsync_limit(data_dir.expect("the fsync-limit row has a directory"), duration).await?
        }
        None => limit(&world, duration),
        Some(kind) => {
            // The hot partner's credit is split into per-shard slices (escrow).
            let escrow_partners =
                if plan.hot_partner { vec![Uin(crate::world::RESELLER_UIN_BASE)] } else { Vec::new() };
            let config = EngineConfig {
                runtime: kind,
                escrow_partners,
                data_dir,
                fsync: plan.durable.unwrap_or_default(),
                ..EngineConfig::default()
            };
            if plan.quota {
                quota_row(config, &world, plan.submission, duration, options.single_tasks).await?
            } else if plan.submission.is_http() {
                http_row(config, &world, plan.submission, plan.v1, duration, options).await?
            } else {
                let vouchers = plan.vouchers;
                engine_row(config, &world, plan.submission, duration, options.single_tasks, vouchers).await?
            }
        }
    })
}

/// The row of `plan` from what it measured, with its ratios to the rows before it.
fn row_of(plan: Plan, name: String, measured: &Measured, rows: &[Row]) -> Row {
    let mut row = Row {
        name,
        runtime: plan.runtime_name().into(),
        scenario: plan.scenario().into(),
        submission: plan.submission.name(),
        purchases_per_sec: measured.purchases as f64 / measured.elapsed.as_secs_f64(),
        cpu_ns_per_purchase: measured.cpu.as_nanos() as f64 / measured.purchases.max(1) as f64,
        bytes_per_uin: measured.bytes_per_uin,
        ratio_to_limit: 0.0,
        ratio_to_actix: 0.0,
        ratio_to_dashmap: f64::NAN,
        ratio_to_no_quota: measured.ratio_to_no_quota,
        ratio_to_empty_endpoint: None,
        ratio_to_plain: None,
        latency_us_p50: measured.latency_us.map(|(p50, _)| p50),
        latency_us_p99: measured.latency_us.map(|(_, p99)| p99),
        bytes_per_purchase_id: measured.bytes_per_purchase_id,
        fsync: plan.durable.map(|policy| policy.to_string()),
        ratio_to_in_memory: None,
        journal_bytes_per_purchase: measured
            .journal_bytes
            .map(|bytes| bytes as f64 / measured.purchases.max(1) as f64),
        audit_ok: measured.audit_ok,
    };
    let rate = row.purchases_per_sec;
    let rate_of = |found: Option<&Row>| found.map(|row| row.purchases_per_sec);
    let base = |runtime: &str| rate_of(rows.iter().find(|row| row.runtime == runtime));
    let named = |name: &str| rate_of(rows.iter().find(|row| row.name == name));
    row.ratio_to_limit = base("limit").map_or(1.0, |limit| rate / limit);
    row.ratio_to_actix = base("actix").map_or(f64::NAN, |actix| rate / actix);
    row.ratio_to_dashmap = base("dashmap").map_or(f64::NAN, |dashmap| rate / dashmap);
    if plan.submission == Submission::HttpSingle && !plan.v1 {
        let ping = rate_of(rows.iter().find(|row| row.submission == "http-ping"));
        row.ratio_to_empty_endpoint = ping.map(|ping| rate / ping);
    }
    if row.runtime == "actix" {
        row.ratio_to_actix = 1.0;
    }
    if row.runtime == "dashmap" {
        row.ratio_to_dashmap = 1.0;
    }
    if plan.durable.is_some() {
        row.ratio_to_in_memory = named(&plan.in_memory().name()).map(|in_memory| rate / in_memory);
    }
    if plan.vouchers || plan.v1 {
        let plain = format!("sharded uniform {}", plan.submission.name());
        row.ratio_to_plain = named(&plain).map(|plain| rate / plain);
    }
    row
}

struct Measured {
    purchases: u64,
    elapsed: Duration,
    cpu: Duration,
    bytes_per_uin: f64,
    audit_ok: bool,
    ratio_to_no_quota: Option<f64>,
    /// The median and 99th percentile of one purchase's latency (single-task rows).
    latency_us: Option<(f64, f64)>,
    /// Resident bytes per remembered purchase id, for rows that filled the ledger
    /// (`resolved_capacity`, a million by default).
    bytes_per_purchase_id: Option<f64>,
    /// With a data directory: the journal bytes written while the row was timed.
    journal_bytes: Option<u64>,
}

async fn engine_row(
    config: EngineConfig,
    world: &World,
    submission: Submission,
    duration: Duration,
    single_tasks: usize,
    vouchers: bool,
) -> anyhow::Result<Measured> {
    let (engine, bytes_per_uin) = start(config, world).await?;
    let customers: Arc<Vec<Uin>> = Arc::new(world.customer_uins());
    let committed = Arc::new(AtomicU64::new(0));
    let product = if vouchers {
        give_vouchers(&engine).await?;
        Some(CompactString::from(VOUCHER_PRODUCT))
    } else {
        None
    };
    let resident_before = resident_bytes();
    let journal_before = engine.journal_bytes();
    let driven =
        drive(&engine, &customers, &committed, submission, duration, single_tasks, 0, product).await?;
    // Every purchase counted was answered, so its record is in (under `always`, durable).
    let journal_bytes = journal_written(&engine, journal_before);
    // What the remembered purchase ids cost, once the ledger holds as many as it keeps: the
    // memory live now, so what the row freed (an index table a rebuild replaced) is handed
    // back first, as for bytes per UIN.
    release_freed_memory();
    let remembered = driven.purchases.min(engine.config().resolved_capacity as u64);
    let bytes_per_purchase_id = (remembered >= 1_000_000)
        .then(|| resident_bytes().saturating_sub(resident_before) as f64 / remembered as f64);
    let audit_ok = audit(&engine, &committed, driven.purchases).await?;
    Ok(Measured {
        bytes_per_uin,
        bytes_per_purchase_id,
        audit_ok,
        ratio_to_no_quota: None,
        journal_bytes,
        ..driven
    })
}

/// The journal bytes written since `before` (an earlier [`Engine::journal_bytes`]).
fn journal_written(engine: &Engine, before: Option<u64>) -> Option<u64> {
    Some(engine.journal_bytes()?.saturating_sub(before?))
}

/// Gives every customer two vouchers from its parent's pool: one for [`VOUCHER_PRODUCT`],
/// large enough never to run out in a row, and one only for [`OTHER_PRODUCT`].
async fn give_vouchers(engine: &Arc<Engine>) -> anyhow::Result<()> {
    let accounts = engine.all_accounts().await?;
    let parents: std::collections::BTreeSet<Uin> = accounts
        .iter()
        .filter_map(|view| {
            (view.kind() == crate::domain::AccountKind::Customer).then(|| view.parent()).flatten()
        })
        .collect();
    for parent in &parents {
        engine.grant_voucher_quota(Caller::Operator, *parent, Money::from_units(1_000_000_000_000)).await?;
    }
    let customers: Vec<Uin> = accounts
        .iter()
        .filter(|view| view.kind() == crate::domain::AccountKind::Customer)
        .map(|view| view.uin)
        .collect();
    let now = engine.now();
    let voucher = |customer, product: &str| -> anyhow::Result<NewCustomerVoucher> {
        Ok(NewCustomerVoucher {
            customer,
            amount: Money::from_units(1_000_000),
            scope: Scope::new(ProductScope::SpecifyProducts, vec![product.into()], PaymentMode::AllPayment)?,
            effective: now,
            expire: now.plus_ms(30 * 86_400_000),
        })
    };
    for chunk in customers.chunks(1024) {
        let mut issued = Vec::with_capacity(chunk.len() * 2);
        for customer in chunk {
            // The one out of scope first: the in-scope one expires no sooner, and ties go to
            // the lower id, so the out-of-scope one is looked at and skipped every time.
            issued.push(engine.issue_customer_voucher(Caller::Operator, voucher(*customer, OTHER_PRODUCT)?));
            issued
                .push(engine.issue_customer_voucher(Caller::Operator, voucher(*customer, VOUCHER_PRODUCT)?));
        }
        for result in futures::future::join_all(issued).await {
            result?;
        }
    }
    Ok(())
}

/// Purchases under [`GENEROUS_QUOTA`] on `CreatePurchase`, and the same with no quota, on
/// two engines in alternating rounds; the row is the quota half.
async fn quota_row(
    config: EngineConfig,
    world: &World,
    submission: Submission,
    duration: Duration,
    single_tasks: usize,
) -> anyhow::Result<Measured> {
    let quota = Quota::per_second(GENEROUS_QUOTA)?;
    let limited = EngineConfig {
        quotas: QuotaTable::documented().with([(Action::CreatePurchase, Some(quota))]),
        ..config.clone()
    };
    let (free, _) = start(config, world).await?;
    let (engine, bytes_per_uin) = start(limited, world).await?;
    let customers: Arc<Vec<Uin>> = Arc::new(world.customer_uins());
    let round = duration / QUOTA_ROUNDS;
    let (committed_free, committed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let halves = [(&free, &committed_free), (&engine, &committed)];
    // Warm both up (caches, maps, the allocator), uncounted but audited.
    let mut purchases = [0u64; 2];
    for (half, (engine, committed)) in halves.iter().enumerate() {
        purchases[half] += drive(engine, &customers, committed, submission, round / 2, single_tasks, 0, None)
            .await?
            .purchases;
    }
    let mut totals = [Measured::zero(), Measured::zero()];
    let mut ratios = Vec::with_capacity(QUOTA_ROUNDS as usize);
    for index in 1..=QUOTA_ROUNDS {
        // A B B A A B ...: a steady drift of the machine's speed favours neither half.
        let order = if index % 2 == 1 { [0, 1] } else { [1, 0] };
        let mut rates = [0.0; 2];
        for half in order {
            let (engine, committed) = halves[half];
            let driven =
                drive(engine, &customers, committed, submission, round, single_tasks, index, None).await?;
            purchases[half] += driven.purchases;
            rates[half] = driven.rate();
            totals[half].add(&driven);
        }
        ratios.push(rates[1] / rates[0]);
    }
    let audit_ok = audit(&free, &committed_free, purchases[0]).await?
        && audit(&engine, &committed, purchases[1]).await?;
    // The median round: one disturbed round moves it little.
    ratios.sort_by(f64::total_cmp);
    let ratio = (ratios[ratios.len() / 2] + ratios[(ratios.len() - 1) / 2]) / 2.0;
    let [_, total] = totals;
    Ok(Measured { bytes_per_uin, audit_ok, ratio_to_no_quota: Some(ratio), ..total })
}

#[cfg(feature = "http")]
async fn http_row(
    config: EngineConfig,
    world: &World,
    submission: Submission,
    v1: bool,
    duration: Duration,
    options: &BenchOptions,
) -> anyhow::Result<Measured> {
    let connections =
        if matches!(submission, Submission::HttpBatch(_)) { 4 } else { options.http_connections };
    http::row(config, world, submission, v1, duration, connections, options.http_metrics).await
}

#[cfg(not(feature = "http"))]
async fn http_row(
    _: EngineConfig,
    _: &World,
    _: Submission,
    _: bool,
    _: Duration,
    _: &BenchOptions,
) -> anyhow::Result<Measured> {
    anyhow::bail!("the HTTP rows need the `http` feature")
}

impl Submission {
    fn is_http(self) -> bool {
        matches!(self, Submission::HttpPing | Submission::HttpSingle | Submission::HttpBatch(_))
    }
}

/// An engine with `world` imported, and the resident bytes the import added per UIN. The
/// engine's memory before its first account (threads, mailboxes, empty tables: a few MB
/// whatever the world) is not counted: it is not a cost per UIN, and over a small world it
/// would read as one.
async fn start(config: EngineConfig, world: &World) -> anyhow::Result<(Arc<Engine>, f64)> {
    let engine = Arc::new(Engine::start(config));
    release_freed_memory();
    let resident_before = resident_bytes();
    let uin_count = engine.import(Caller::Operator, world).await?;
    // The import's temporaries are freed by now; hand them back so they are not counted.
    release_freed_memory();
    Ok((engine, resident_bytes().saturating_sub(resident_before) as f64 / uin_count as f64))
}

/// Purchases from `single_tasks` callers (or 8 batch callers) for `duration`, of `product`.
/// Round `round` uses purchase ids of its own.
#[allow(clippy::too_many_arguments)]
async fn drive(
    engine: &Arc<Engine>,
    customers: &Arc<Vec<Uin>>,
    committed: &Arc<AtomicU64>,
    submission: Submission,
    duration: Duration,
    single_tasks: usize,
    round: u32,
    product: Option<CompactString>,
) -> anyhow::Result<Measured> {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = match submission {
        Submission::Single => single_tasks,
        Submission::SingleTask => 1,
        // Enough batches in flight to keep every shard busy.
        Submission::Batch(_) => 8,
        other => unreachable!("{other:?} rows are not driven in process"),
    };
    timed(duration, stop.clone(), || {
        (0..tasks)
            .map(|task| {
                let caller = Submitter {
                    engine: engine.clone(),
                    customers: customers.clone(),
                    stop: stop.clone(),
                    committed: committed.clone(),
                    submission,
                    id: (u64::from(round) << 32) | task as u64,
                    product: product.clone(),
                };
                tokio::spawn(caller.run())
            })
            .collect()
    })
    .await
}

/// Starts the callers, lets them run for `duration`, stops them: answers how many
/// purchases they made, the wall time and the process's CPU time.
async fn timed<M: Into<Made>>(
    duration: Duration,
    stop: Arc<AtomicBool>,
    spawn: impl FnOnce() -> Vec<tokio::task::JoinHandle<anyhow::Result<M>>>,
) -> anyhow::Result<Measured> {
    let cpu_before = cpu_time();
    let started = Instant::now();
    let handles = spawn();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut purchases = 0;
    let mut latencies: Option<Latencies> = None;
    for handle in handles {
        let made: Made = handle.await??.into();
        purchases += made.purchases;
        match (&mut latencies, made.latencies) {
            (Some(all), Some(one)) => all.add(&one)?,
            (all @ None, one) => *all = one,
            (Some(_), None) => {}
        }
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    let latency_us = latencies.map(|latencies| {
        let us = |quantile| latencies.value_at_quantile(quantile) as f64 / 1000.0;
        (us(0.5), us(0.99))
    });
    Ok(Measured { purchases, elapsed, cpu, latency_us, ..Measured::zero() })
}

/// Latencies of single purchases, in nanoseconds.
type Latencies = hdrhistogram::Histogram<u64>;

/// What one caller did: how many purchases it made and, for a single-task row, how long
/// each took.
struct Made {
    purchases: u64,
    latencies: Option<Latencies>,
}

impl From<u64> for Made {
    fn from(purchases: u64) -> Made {
        Made { purchases, latencies: None }
    }
}

/// Checks the books after a row, and that they hold what the callers saw committed; then
/// stops the engine.
async fn audit(engine: &Engine, committed: &AtomicU64, purchases: u64) -> anyhow::Result<bool> {
    let held = books_hold(engine, committed.load(Ordering::Relaxed), purchases).await?;
    engine.shutdown();
    Ok(held)
}

/// Conservation holds, every one of `purchases` (of 1.00 each) was committed, and the
/// customers' used credit and voucher deductions add up to exactly the committed ones.
async fn books_hold(engine: &Engine, committed: u64, purchases: u64) -> anyhow::Result<bool> {
    let audit = engine.audit().await?;
    let expected = Money::from_decimal(rust_decimal::Decimal::from(committed))?;
    Ok(audit.ok() && audit.customer_used + audit.customer_deducted == expected && committed == purchases)
}

impl Measured {
    fn zero() -> Measured {
        Measured {
            purchases: 0,
            elapsed: Duration::ZERO,
            cpu: Duration::ZERO,
            bytes_per_uin: 0.0,
            audit_ok: true,
            ratio_to_no_quota: None,
            latency_us: None,
            bytes_per_purchase_id: None,
            journal_bytes: None,
        }
    }

    fn add(&mut self, other: &Measured) {
        self.purchases += other.purchases;
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
    }

    fn rate(&self) -> f64 {
        self.purchases as f64 / self.elapsed.as_secs_f64()
    }
}

/// One caller: purchases until told to stop.
struct Submitter {
    engine: Arc<Engine>,
    customers: Arc<Vec<Uin>>,
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    submission: Submission,
    /// Unique per caller and round: its purchase ids are `t<id>-<sequence>`.
    id: u64,
    /// The product code of every purchase.
    product: Option<CompactString>,
}

impl Submitter {
    /// Answers how many purchases it made (and, one at a time, how long each took).
    async fn run(self) -> anyhow::Result<Made> {
        let Submitter { engine, customers, stop, committed, submission, id, product } = self;
        let mut latencies = match submission {
            // From 1 ns to 60 s, three significant digits.
            Submission::SingleTask => Some(Latencies::new_with_bounds(1, 60_000_000_000, 3)?),
            _ => None,
        };
        let mut rng = SmallRng::seed_from_u64(id + 1);
        let amount = Money::from_units(1);
        let mut sequence = 0u64;
        let mut next = |rng: &mut SmallRng| {
            sequence += 1;
            let customer = customers[rng.gen_range(0..customers.len())];
            let id = PurchaseId::numbered("t", id, sequence).expect("short id");
            PurchaseRequest { product_code: product.clone(), ..PurchaseRequest::new(id, customer, amount) }
        };
        let mut made = 0u64;
        while !stop.load(Ordering::Relaxed) {
            match submission {
                Submission::Single | Submission::SingleTask => {
                    let request = next(&mut rng);
                    made += 1;
                    let started = Instant::now();
                    let answer = engine.purchase(Caller::Operator, request).await;
                    if let Some(latencies) = &mut latencies {
                        latencies.saturating_record(started.elapsed().as_nanos() as u64);
                    }
                    if answer.is_ok() {
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Submission::Batch(size) => {
                    let requests: Vec<PurchaseRequest> = (0..size).map(|_| next(&mut rng)).collect();
                    made += size as u64;
                    let answers = engine.purchase_batch(Caller::Operator, requests).await?;
                    let ok = answers.iter().filter(|answer| answer.is_ok()).count();
                    committed.fetch_add(ok as u64, Ordering::Relaxed);
                }
                other => unreachable!("{other:?} rows are not driven in process"),
            }
        }
        Ok(Made { purchases: made, latencies })
    }
}

/// Resident memory of this process.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|field| field.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as usize;
    pages * page_size
}

/// CPU time of this process (all threads, user and system).
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let micros = |time: libc::timeval| time.tv_sec as u64 * 1_000_000 + time.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Returns freed memory to the system, so the next row's resident bytes are its own.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
