//! `partner-credit load`: the purchase load generator, against an embedded engine (the
//! default) or a running server over HTTP, with a report, thresholds and an audit of the
//! books against the load generator's own model.
//!
//! - Targets ([`target`]): a new embedded engine (the default; with `--hot-partner` on the
//!   sharded runtime the hot partner is escrowed, as a deployment would), or a server
//!   (`--target`, [`http`]) over keep-alive connections, one per task, every request signed.
//!   `--world FILE` uses the server's world file; otherwise a world is generated.
//!   Purchase ids carry a random per-run prefix, so runs against one server never collide
//!   (a repeated id would be answered as a repeat and charge nothing).
//! - Models: the **closed loop** (`--concurrency` tasks, each with one request in flight,
//!   latency from send to answer) and the **open loop** (`--rate`: requests are due on a
//!   fixed schedule, spread over the tasks as wrk2 spreads them over connections; latency
//!   counts from the due time, so a stall is measured, not hidden). In the open loop the
//!   tasks cap what is in flight; a request due while every task is busy is sent late (and
//!   counted as late), and one still unsent when the time is up is counted as unsent.
//!   Tokio's timer has millisecond granularity, so a request leaves up to 1 ms after its due
//!   time and that wait is part of its latency (wrk2's timer is no finer).
//! - Scenarios ([`scenario`]): uniform customers, `--hot-partner` (every purchase charges one
//!   partner), `--zipf S` (skewed customers); `--batch N` uses the batch action; `--mix`
//!   ([`mix`]) adds reserve-then-commit, reserve-then-cancel, reservations left to expire and
//!   allocations by partners at their quota. Customers running out of credit are part of the
//!   load: refusals are counted by code.
//! - Recording ([`recorder`]): per-task HDR histograms and counts by outcome, handed to a
//!   per-second timeline once a second, never under a lock per request.
//! - The report ([`report`]): throughput, latency percentiles, outcomes by code, the audit,
//!   `--json`, `--html` ([`html`]), `--threshold` ([`threshold`]) for the exit code.
//! - The audit ([`model`]): every account (or, over HTTP without an unlimited
//!   QueryCreditByUinList, a labelled sample) is read back and compared with what the
//!   acknowledged requests did; on the embedded target the engine's own conservation audit
//!   runs too.
//! - Repeatable: task `i` draws from a generator seeded by `--seed` and `i`, so the same seed
//!   gives the same sequence of requests (the report's `requests_digest`), and in a closed
//!   loop bounded by `--purchases-max` the same outcome counts.
//!
//! Exit codes (in `main.rs`): 0 when the audit and every threshold hold, 1 when one does
//! not, 2 when the load could not run (bad options, a malformed threshold, an unreachable
//! server, a server without the world).
//!
//! Invariant: every loop is bounded by the duration and by `purchases_max`; what is in
//! flight is bounded by the number of tasks.
//! Invariant: the hot loop allocates nothing per purchase beyond what the engine call does
//! (ids fit inline, outcome names are counted without allocating).

pub mod html;
#[cfg(feature = "http")]
pub mod http;
pub mod mix;
pub mod model;
pub mod progress;
pub mod recorder;
pub mod report;
pub mod scenario;
#[cfg(feature = "http")]
pub mod server_side;
pub mod target;
pub mod threshold;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::coordinator::PurchaseRequest;
use crate::domain::{Caller, Money, PurchaseId, Timestamp, Uin};
use crate::engine::{Engine, EngineConfig};
use crate::journal::FsyncPolicy;
use crate::runtime::RuntimeKind;
use crate::world::{World, WorldSpec};

use mix::{Flow, Mix, Pacer, EXPIRE_TIMEOUT_MS};
use model::{snapshot_of, Book, Snapshot};
use recorder::{Class, Recorder, Timeline};
use report::{AuditReport, EngineAudit, JournalReport, LoadReport, OpenLoop};
use scenario::Picker;
use target::{Answer, Driver};
use threshold::Threshold;

/// What an `allocate` flow repossesses and gives back: 1.00.
pub fn allocation_amount() -> Money {
    Money::from_units(1)
}

/// A request that waited longer than this past its due time is counted as late.
const LATE_US: u64 = 10_000;

/// What the load runs against.
#[derive(Clone, Debug)]
pub enum Target {
    /// A new engine in this process; with `data_dir`, it journals there under `fsync` (the
    /// directory must be new or empty: the load imports a world of its own).
    Embedded { runtime: RuntimeKind, data_dir: Option<PathBuf>, fsync: FsyncPolicy },
    /// A running server.
    #[cfg(feature = "http")]
    Http(http::HttpTarget),
}

impl Target {
    /// A new engine in this process, in memory only.
    pub fn embedded(runtime: RuntimeKind) -> Target {
        Target::Embedded { runtime, data_dir: None, fsync: FsyncPolicy::Always }
    }
}

/// Where the world comes from.
#[derive(Clone, Debug)]
pub enum WorldSource {
    Generate(WorldSpec),
    /// A world file, as `--write-world` writes it and `serve` imports it.
    File(PathBuf),
}

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub target: Target,
    pub duration: Duration,
    /// Tasks, each with one request in flight: the closed loop's concurrency, and the open
    /// loop's cap on what is in flight.
    pub concurrency: usize,
    /// Purchases started per second (open loop); `None` for the closed loop.
    pub rate_per_sec: Option<f64>,
    /// Purchases per request of a one-shot flow (1: CreatePurchase; more: CreatePurchases).
    pub batch: usize,
    pub world: WorldSource,
    /// Each purchase's amount.
    pub amount: Money,
    /// Stop after this many purchases (flows; a batch counts its purchases) even if time remains.
    pub purchases_max: u64,
    pub seed: u64,
    /// Only the customers of the partner charged for the most customers.
    pub hot_partner: bool,
    /// Zipf exponent over the customers.
    pub zipf: Option<f64>,
    pub mix: Mix,
    pub thresholds: Vec<Threshold>,
    /// No progress line.
    pub quiet: bool,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            target: Target::embedded(RuntimeKind::default()),
            duration: Duration::from_secs(10),
            concurrency: 256,
            rate_per_sec: None,
            batch: 1,
            world: WorldSource::Generate(WorldSpec::default()),
            amount: Money::from_units(1),
            purchases_max: u64::MAX,
            seed: 1,
            hot_partner: false,
            zipf: None,
            mix: Mix::default(),
            thresholds: Vec::new(),
            quiet: true,
        }
    }
}

/// Everything the tasks share; read-only but for the model's atomics and the pacer.
struct Shared {
    book: Book,
    picker: Picker,
    mix: Mix,
    pacer: Pacer,
    timeline: Arc<Timeline>,
    deadline: Instant,
    tasks: usize,
    batch: usize,
    amount: Money,
    rate_per_sec: Option<f64>,
    purchases_max: u64,
    seed: u64,
    /// Prefix of every purchase id: unique per run, so a server that saw earlier runs does
    /// not take this run's purchases for repeats.
    id_prefix: String,
    /// Whether allocations are made by the operator (over HTTP) rather than the partner.
    allocations_by_operator: bool,
    /// The latest deadline of a reservation left to expire, in ms from the start.
    expire_until_ms: AtomicU64,
    /// Allocation flows run as one-shot purchases because the partner's quota was spent.
    allocations_deferred: AtomicU64,
}

/// What one task hands back besides its recorder's timeline.
#[derive(Default)]
struct TaskEnd {
    digest: u64,
    due: u64,
    sent: u64,
    late: u64,
    unsent: u64,
    lag_us_max: u64,
    error_samples: Vec<String>,
}

const ERROR_SAMPLES_MAX: usize = 5;

/// A prepared target: drivers for the tasks, the world, and how to read accounts back.
enum Prepared {
    Embedded(Arc<Engine>),
    #[cfg(feature = "http")]
    Http(http::Prepared),
}

/// Runs the load and answers the report, thresholds checked. Fails only when the load
/// could not be run (bad options, an unreachable target, a world that does not import).
pub async fn run(options: &LoadOptions) -> anyhow::Result<LoadReport> {
    check(options)?;
    let world = match &options.world {
        WorldSource::Generate(spec) => {
            anyhow::ensure!(spec.customers > 0, "the world needs at least one customer");
            World::generate(&WorldSpec {
                hot_partner: options.hot_partner || spec.hot_partner,
                ..spec.clone()
            })
        }
        WorldSource::File(path) => World::load(path)?,
    };
    anyhow::ensure!(!world.customers.is_empty(), "the world has no customers");
    let book = Book::new(&world, options.amount, allocation_amount());
    let (hot, candidates) = book.hot_partner();
    let hot_partner = options.hot_partner.then_some(hot);
    let picker = Picker::new(book.customers.len(), options.hot_partner.then_some(candidates), options.zipf)?;

    let mut report = LoadReport {
        concurrency: options.concurrency,
        batch: options.batch,
        seed: options.seed,
        hot_partner: hot_partner.map(|uin| uin.0),
        model: if options.rate_per_sec.is_some() { "open" } else { "closed" }.into(),
        mix: (!options.mix.is_one_shot_only()).then(|| options.mix.to_string()),
        scenario: scenario_text(options, hot_partner, picker.len()),
        ..LoadReport::default()
    };
    let started = Instant::now();
    let (prepared, before, drivers) = prepare(options, &world, &book, hot_partner, &mut report).await?;
    report.import_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let timeline = Timeline::new(started);
    let shared = Arc::new(Shared {
        book,
        picker,
        mix: options.mix.clone(),
        pacer: Pacer::default(),
        timeline: timeline.clone(),
        deadline: started + options.duration,
        tasks: options.concurrency,
        batch: options.batch,
        amount: options.amount,
        rate_per_sec: options.rate_per_sec,
        purchases_max: options.purchases_max,
        seed: options.seed,
        id_prefix: id_prefix(),
        allocations_by_operator: !matches!(prepared, Prepared::Embedded(_)),
        expire_until_ms: AtomicU64::new(0),
        allocations_deferred: AtomicU64::new(0),
    });
    let progress = progress::Progress::start(timeline.clone(), options.duration, options.quiet);
    let tasks: Vec<_> = drivers
        .into_iter()
        .enumerate()
        .map(|(task, driver)| tokio::spawn(run_task(shared.clone(), task, driver)))
        .collect();
    let ends = futures::future::join_all(tasks).await;
    report.elapsed_secs = started.elapsed().as_secs_f64();
    if let Some(progress) = progress {
        progress.finish();
    }
    gather(options, &mut report, ends)?;
    report.record(&timeline.seconds(), &timeline.latency_us());
    #[cfg(feature = "http")]
    if let Prepared::Http(prepared) = &prepared {
        report.server = Some(prepared.server_side(report.latency_us.mean).await);
    }
    if let (Some(journal), Prepared::Embedded(engine)) = (&mut report.journal, &prepared) {
        journal.bytes = engine.journal_bytes().unwrap_or(journal.bytes).saturating_sub(journal.bytes);
        journal.bytes_per_operation = journal.bytes as f64 / report.operations.max(1) as f64;
    }
    let deferred = shared.allocations_deferred.load(Ordering::Relaxed);
    if deferred > 0 {
        if let Some(mix) = &mut report.mix {
            mix.push_str(&format!(
                " ({deferred} allocation flows ran as one-shot purchases: the partner's quota was spent)"
            ));
        }
    }
    report.audit = audit(&shared, &prepared, &before, started).await?;
    report.check(&options.thresholds);
    Ok(report)
}

/// Refuses options the load cannot run with.
fn check(options: &LoadOptions) -> anyhow::Result<()> {
    anyhow::ensure!(options.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(options.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(options.amount.is_positive(), "--amount must be greater than 0");
    if let Some(rate) = options.rate_per_sec {
        anyhow::ensure!(
            rate.is_finite() && (0.001..=1e9).contains(&rate),
            "--rate must be between 0.001 and 1000000000 a second"
        );
    }
    Ok(())
}

/// Imports the world into the target; answers it prepared, the books before the load, and
/// a driver per task.
async fn prepare(
    options: &LoadOptions,
    world: &World,
    book: &Book,
    hot_partner: Option<Uin>,
    report: &mut LoadReport,
) -> anyhow::Result<(Prepared, Snapshot, Vec<Driver>)> {
    Ok(match &options.target {
        Target::Embedded { runtime, data_dir, fsync } => {
            let escrow_partners = match (hot_partner, runtime) {
                (Some(hot), RuntimeKind::Sharded) => vec![hot],
                _ => Vec::new(),
            };
            if let Some(dir) = data_dir {
                anyhow::ensure!(
                    escrow_partners.is_empty(),
                    "--data-dir does not work with --hot-partner on the sharded runtime yet (its escrow \
                     slices are not journalled): leave out one of them"
                );
                check_data_dir(dir)?;
            }
            let config = EngineConfig {
                runtime: *runtime,
                escrow_partners,
                data_dir: data_dir.clone(),
                fsync: *fsync,
                ..EngineConfig::default()
            };
            let engine = Arc::new(Engine::open(config)?);
            report.accounts = engine.import(Caller::Operator, world).await?;
            if let (Some(dir), Some(bytes)) = (data_dir, engine.journal_bytes()) {
                // Counted from here: the import is not the load's.
                report.journal = Some(JournalReport {
                    dir: dir.display().to_string(),
                    fsync: fsync.to_string(),
                    bytes,
                    bytes_per_operation: 0.0,
                });
            }
            report.target = "embedded".into();
            report.runtime = Some(runtime.name().to_string());
            let before = snapshot_of(
                &world.to_accounts(Timestamp(0))?.iter().map(|account| account.view()).collect::<Vec<_>>(),
            );
            let drivers: Vec<Driver> =
                (0..options.concurrency).map(|_| Driver::Embedded(engine.clone())).collect();
            (Prepared::Embedded(engine), before, drivers)
        }
        #[cfg(feature = "http")]
        Target::Http(target) => {
            let mut prepared = http::Prepared::connect(target, world, book).await?;
            report.target = target.url.clone();
            report.accounts = world.len();
            let before = prepared.snapshot(book).await?;
            let drivers = prepared.drivers(options.concurrency).await?;
            prepared.scrape_before().await;
            (Prepared::Http(prepared), before, drivers)
        }
    })
}

/// The load imports a world of its own, so a directory with a journal in it is refused
/// rather than recovered and then added to.
fn check_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => anyhow::bail!("--data-dir {}: {error}", dir.display()),
    };
    anyhow::ensure!(
        entries.count() == 0,
        "--data-dir {} is not empty: the load imports a world of its own into a new journal; \
         give a new or empty directory",
        dir.display()
    );
    Ok(())
}

/// Adds up what the tasks did.
fn gather(
    options: &LoadOptions,
    report: &mut LoadReport,
    ends: Vec<Result<TaskEnd, tokio::task::JoinError>>,
) -> anyhow::Result<()> {
    let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
    let mut open = OpenLoop { rate_per_sec: options.rate_per_sec.unwrap_or(0.0), ..OpenLoop::default() };
    for end in ends {
        let end = end?;
        digest = (digest ^ end.digest).wrapping_mul(0x0100_0000_01b3);
        open.due += end.due;
        open.sent += end.sent;
        open.late += end.late;
        open.unsent += end.unsent;
        open.lag_us_max = open.lag_us_max.max(end.lag_us_max);
        for sample in end.error_samples {
            if report.error_samples.len() < ERROR_SAMPLES_MAX {
                report.error_samples.push(sample);
            }
        }
    }
    report.requests_digest = format!("{digest:016x}");
    if options.rate_per_sec.is_some() {
        report.open_loop = Some(open);
    }
    Ok(())
}

/// Reads the books after the load and checks them against what the tasks saw acknowledged.
async fn audit(
    shared: &Shared,
    prepared: &Prepared,
    before: &Snapshot,
    started: Instant,
) -> anyhow::Result<AuditReport> {
    // Reservations left to expire must be gone before the books are read.
    let expire_until = started + Duration::from_millis(shared.expire_until_ms.load(Ordering::Relaxed));
    if shared.mix.weight(Flow::ReserveExpire) > 0 {
        tokio::time::sleep_until((expire_until + Duration::from_millis(50)).into()).await;
    }
    Ok(match prepared {
        Prepared::Embedded(engine) => {
            if shared.mix.weight(Flow::ReserveExpire) > 0 {
                engine.expire_due().await?;
            }
            let views = engine.all_accounts().await?;
            let audit = crate::audit::Audit::of(&views);
            let after = snapshot_of(&views);
            engine.shutdown();
            let mut report = audit_report(&shared.book, before, &after, "full", None);
            report.accounts_read = views.len();
            report.ok &= audit.ok();
            report.engine = Some(EngineAudit {
                ok: audit.ok(),
                accounts: audit.accounts,
                customer_used: audit.customer_used.to_string(),
                partner_used: audit.partner_used.to_string(),
                customer_reserved: audit.customer_reserved.to_string(),
                partner_reserved: audit.partner_reserved.to_string(),
                violations: audit.violations.iter().take(100).cloned().collect(),
            });
            report
        }
        #[cfg(feature = "http")]
        Prepared::Http(prepared) => {
            if shared.mix.weight(Flow::ReserveExpire) > 0 {
                // The server's sweep releases due reservations every 100 ms by default.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let after = prepared.snapshot(&shared.book).await?;
            let mut audit = audit_report(&shared.book, before, &after, prepared.scope(), prepared.note());
            audit.accounts_read = after.len();
            audit
        }
    })
}

fn audit_report(
    book: &Book,
    before: &Snapshot,
    after: &Snapshot,
    scope: &str,
    note: Option<String>,
) -> AuditReport {
    let mut model = book.check(before, after);
    if scope == "full" {
        // A full audit reads every account: one missing from the readings is a failure,
        // not something to skip.
        let customers = book.customer_count();
        if model.customers_checked + model.customers_uncertain != customers {
            model.violations_count += 1;
            model.violations.push(format!(
                "a full audit checked {} of {customers} customers ({} left out as uncertain): accounts are missing from the readings",
                model.customers_checked, model.customers_uncertain
            ));
        }
    }
    AuditReport {
        ok: model.violations_count == 0,
        scope: scope.into(),
        note,
        accounts_read: after.len(),
        committed: book.committed_total(),
        used: book.used_total().to_string(),
        model,
        engine: None,
    }
}

fn scenario_text(options: &LoadOptions, hot_partner: Option<Uin>, customers: usize) -> String {
    let who = match hot_partner {
        Some(hot) => format!("hot partner {hot} ({customers} customers)"),
        None => format!("{customers} customers"),
    };
    match options.zipf {
        Some(exponent) => format!("{who}, Zipf s={exponent}"),
        None => format!("{who}, uniform"),
    }
}

/// A prefix unique to this run: 8 random base-36 digits (41 bits), short enough that ids
/// stay inline. Not from the seed: two runs with the same seed against one server must not
/// share ids, or the second run's purchases would be answered as repeats of the first's.
fn id_prefix() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let digits: String =
        (0..8).map(|_| char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[rng.gen_range(0..36)])).collect();
    format!("L{digits}-")
}

/// How many purchases task `task` of `tasks` may start: `purchases_max` split evenly.
fn task_budget(purchases_max: u64, tasks: usize, task: usize) -> u64 {
    if purchases_max == u64::MAX {
        return u64::MAX;
    }
    let tasks = tasks as u64;
    purchases_max / tasks + u64::from((task as u64) < purchases_max % tasks)
}

async fn run_task(shared: Arc<Shared>, task: usize, driver: Driver) -> TaskEnd {
    let mut this = Task::new(shared, task, driver);
    while this.budget > 0 {
        let Some(due) = this.next_due().await else { break };
        this.request(due).await;
    }
    this.recorder.flush();
    this.end
}

/// One task of the load: its own random stream, schedule, recorder and counts.
struct Task {
    shared: Arc<Shared>,
    task: usize,
    driver: Driver,
    rng: SmallRng,
    recorder: Recorder,
    end: TaskEnd,
    /// Purchases it may still start.
    budget: u64,
    /// Of its purchase ids.
    sequence: u64,
    /// Its next slot in the open loop's schedule.
    slot: u64,
    batch_requests: Vec<PurchaseRequest>,
    batch_customers: Vec<usize>,
    answers: Vec<Answer>,
}

impl Task {
    fn new(shared: Arc<Shared>, task: usize, driver: Driver) -> Task {
        Task {
            rng: SmallRng::seed_from_u64(shared.seed.wrapping_mul(1_000_003).wrapping_add(task as u64)),
            recorder: Recorder::new(shared.timeline.clone()),
            end: TaskEnd { digest: 0xcbf2_9ce4_8422_2325, ..TaskEnd::default() },
            budget: task_budget(shared.purchases_max, shared.tasks, task),
            sequence: 0,
            slot: 0,
            batch_requests: Vec::new(),
            batch_customers: Vec::new(),
            answers: Vec::new(),
            shared,
            task,
            driver,
        }
    }

    fn next_id(&mut self) -> PurchaseId {
        next_id(&self.shared, self.task, &mut self.sequence)
    }

    /// When the next request is due: now, in the closed loop; its slot's time in the open
    /// loop, after waiting for it or counting how late it is. `None` when the time is up.
    async fn next_due(&mut self) -> Option<Instant> {
        let shared = self.shared.clone();
        let Some(rate) = shared.rate_per_sec else {
            let now = Instant::now();
            return (now < shared.deadline).then_some(now);
        };
        // Slot k of task i is due at (i + k * tasks) * batch / rate.
        let spacing = shared.batch as f64 / rate;
        let (task, tasks, started) = (self.task as f64, shared.tasks as f64, shared.timeline.started);
        let due_of = |slot: u64| started + Duration::from_secs_f64((task + slot as f64 * tasks) * spacing);
        let due = due_of(self.slot);
        if due >= shared.deadline {
            return None;
        }
        let now = Instant::now();
        if now >= shared.deadline {
            // Behind when the time ran out: what was due and never sent is counted. An
            // estimate, then settled with the same `due_of` the loop uses, so that
            // `sent + unsent == due` holds exactly.
            let behind = shared.deadline.duration_since(due).as_secs_f64() / (tasks * spacing);
            let mut end_slot = self.slot + behind.ceil() as u64;
            while due_of(end_slot) < shared.deadline {
                end_slot += 1;
            }
            while end_slot > self.slot + 1 && due_of(end_slot - 1) >= shared.deadline {
                end_slot -= 1;
            }
            let unsent = (end_slot - self.slot).min(self.budget);
            self.end.unsent += unsent;
            self.end.due += unsent;
            // A stall at the end must show in the percentiles: each unsent request waited at
            // least from its due time to the end.
            for skipped in self.slot..self.slot + unsent {
                self.recorder.unsent(now, micros(due_of(skipped), shared.deadline));
            }
            return None;
        }
        if now < due {
            tokio::time::sleep_until(due.into()).await;
        } else {
            let lag_us = now.duration_since(due).as_micros() as u64;
            self.end.lag_us_max = self.end.lag_us_max.max(lag_us);
            self.end.late += u64::from(lag_us > LATE_US);
        }
        self.end.due += 1;
        self.end.sent += 1;
        self.slot += 1;
        Some(due)
    }

    /// One request of the mix (a flow may make two: a reservation and its commit, a
    /// repossession and its allocation back).
    async fn request(&mut self, due: Instant) {
        let shared = self.shared.clone();
        let mut flow = shared.mix.pick(&mut self.rng);
        let customer = shared.picker.pick(&mut self.rng);
        self.end.digest =
            (self.end.digest ^ (customer as u64) ^ ((flow as u64) << 40)).wrapping_mul(0x0100_0000_01b3);
        if flow == Flow::Allocate {
            let caller = (!shared.allocations_by_operator).then(|| shared.book.parent[customer]);
            if !shared.pacer.try_take(caller, Instant::now()) {
                shared.allocations_deferred.fetch_add(1, Ordering::Relaxed);
                flow = Flow::OneShot;
            }
        }
        match flow {
            Flow::OneShot if shared.batch > 1 => self.batch(due, customer).await,
            Flow::OneShot => {
                self.budget -= 1;
                shared.book.prefetch(customer);
                let id = self.next_id();
                let answer = self.driver.purchase(id, shared.book.customers[customer], shared.amount).await;
                self.answered(due, customer, answer, "Committed", 1);
            }
            Flow::ReserveCommit | Flow::ReserveCancel | Flow::ReserveExpire => {
                self.reservation(due, flow, customer).await
            }
            Flow::Allocate => self.allocation(due, customer).await,
        }
    }

    /// Counts an answer and the latency from `since` to now.
    fn answered(
        &mut self,
        since: Instant,
        customer: usize,
        answer: Answer,
        name: &'static str,
        committed: u64,
    ) {
        let answered = Instant::now();
        self.recorder.request(answered, micros(since, answered));
        note(&self.shared, &mut self.recorder, &mut self.end, customer, answer, name, committed);
    }

    /// A batch of one-shot purchases, the first for `customer`.
    async fn batch(&mut self, due: Instant, customer: usize) {
        let shared = self.shared.clone();
        let count = shared.batch.min(usize::try_from(self.budget).unwrap_or(usize::MAX));
        self.batch_requests.clear();
        self.batch_customers.clear();
        for index in 0..count {
            let customer = if index == 0 { customer } else { shared.picker.pick(&mut self.rng) };
            shared.book.prefetch(customer);
            if index > 0 {
                self.end.digest = (self.end.digest ^ customer as u64).wrapping_mul(0x0100_0000_01b3);
            }
            let id = self.next_id();
            self.batch_requests.push(PurchaseRequest::new(
                id,
                shared.book.customers[customer],
                shared.amount,
            ));
            self.batch_customers.push(customer);
        }
        self.budget -= count as u64;
        self.driver.purchase_batch(std::mem::take(&mut self.batch_requests), &mut self.answers).await;
        let answered = Instant::now();
        self.recorder.request(answered, micros(due, answered));
        for (answer, &customer) in self.answers.iter_mut().zip(&self.batch_customers) {
            let answer = std::mem::replace(answer, Answer::Done);
            note(&shared, &mut self.recorder, &mut self.end, customer, answer, "Committed", 1);
        }
    }

    /// A reservation, then its commit or cancel, or nothing (it is left to expire).
    async fn reservation(&mut self, due: Instant, flow: Flow, customer: usize) {
        let shared = self.shared.clone();
        self.budget -= 1;
        let id = self.next_id();
        let uin = shared.book.customers[customer];
        let answer = self.driver.reserve(id.clone(), uin, shared.amount, EXPIRE_TIMEOUT_MS).await;
        let reserved = matches!(answer, Answer::Done);
        self.answered(due, customer, answer, "Reserved", 0);
        if !reserved {
            return;
        }
        if flow == Flow::ReserveExpire {
            let until = Instant::now().duration_since(shared.timeline.started)
                + Duration::from_millis(EXPIRE_TIMEOUT_MS as u64);
            shared.expire_until_ms.fetch_max(until.as_millis() as u64, Ordering::Relaxed);
            return;
        }
        let sent = Instant::now();
        let (answer, name, committed) = if flow == Flow::ReserveCommit {
            (self.driver.commit(id).await, "Committed", 1)
        } else {
            (self.driver.cancel(id).await, "Cancelled", 0)
        };
        self.answered(sent, customer, answer, name, committed);
    }

    /// A repossession of the allocation amount, then its allocation back.
    async fn allocation(&mut self, due: Instant, customer: usize) {
        let shared = self.shared.clone();
        self.budget -= 1;
        let partner = shared.book.parent[customer];
        let uin = shared.book.customers[customer];
        let answer = self.driver.allocate(partner, uin, -shared.book.allocation_amount).await;
        let repossessed = matches!(answer, Answer::Done);
        if repossessed {
            shared.book.allocated(customer, -1);
        }
        self.answered(due, customer, answer, "Repossessed", 0);
        if !repossessed {
            return;
        }
        let sent = Instant::now();
        let answer = self.driver.allocate(partner, uin, shared.book.allocation_amount).await;
        if matches!(answer, Answer::Done) {
            shared.book.allocated(customer, 1);
        }
        self.answered(sent, customer, answer, "Allocated", 0);
    }
}

/// Counts an answer, and tells the model what an acknowledged one did: `committed`
/// purchases of the customer.
fn note(
    shared: &Shared,
    recorder: &mut Recorder,
    end: &mut TaskEnd,
    customer: usize,
    answer: Answer,
    done_name: &str,
    committed: u64,
) {
    match answer {
        Answer::Done => {
            if committed > 0 {
                shared.book.committed(customer, committed);
            }
            recorder.outcome(done_name, Class::Done);
        }
        Answer::Refused(code) => recorder.outcome(code, Class::Refused),
        Answer::Failed(code, message) => {
            shared.book.uncertain(customer);
            recorder.outcome(code, Class::Failed);
            if end.error_samples.len() < ERROR_SAMPLES_MAX {
                end.error_samples.push(format!("{code}: {message}"));
            }
        }
    }
}

fn next_id(shared: &Shared, task: usize, sequence: &mut u64) -> PurchaseId {
    let id = PurchaseId::numbered(&shared.id_prefix, task as u64, *sequence).expect("ids are short");
    *sequence += 1;
    id
}

fn micros(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_split_purchases_max_exactly() {
        for (max, tasks) in [(100, 7), (5, 8), (0, 3), (256, 256)] {
            let total: u64 = (0..tasks).map(|task| task_budget(max, tasks, task)).sum();
            assert_eq!(total, max);
        }
        assert_eq!(task_budget(u64::MAX, 4, 0), u64::MAX);
    }
}
