//! The in-process API: what the server, the load generator, the benches and the tests call.
//!
//! Every method is async and usable from any tokio program. Set-up, allocation, suspension
//! and queries are short sequences of account commands sent from here; the purchase protocol
//! runs in the runtime's coordinators. The engine checks what needs no state (amounts,
//! bounds, operator-only actions) before anything else, and leaves every rule that reads
//! state to the actors; one file per concept: `setup`, `allocation`, `purchases`, `queries`,
//! `vouchers`, `postpaid`, `bills`, `warnings`.
//!
//! Invariants:
//! - the engine holds no account or purchase state; it holds the runtime, the clock, its
//!   configuration, the event bus, and two indexes (voucher -> owner, postpaid resource ->
//!   customer) so that an operation naming only a voucher or a resource finds its actor;
//! - a refusal ([`Error::Rejected`]) changes nothing; a [`Error::Failed`] means the outcome is
//!   unknown because the runtime stopped;
//! - refusals follow the precedence of [`crate::domain::rejection`]: the rate limit, then
//!   what the request alone decides, then what the accounts decide;
//! - who may act on what is decided by [`crate::domain::access`], once per check: by an
//!   account for its own commands, by the engine for what it reads from snapshots.

mod allocation;
mod bills;
mod bounds;
mod durable;
mod intents;
mod postpaid;
mod purchases;
mod queries;
mod setup;
mod vouchers;
mod warnings;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;

use crate::clock::{Clock, SystemClock};
use crate::coordinator::LedgerLimits;
use crate::domain::{Action, Caller, QuotaTable, RecordInfo, Rejection, Request, Uin, VoucherId};
use crate::events::EventBus;
use crate::journal::{FsyncPolicy, Journal, JournalOptions};
use crate::limits::RateLimits;
use crate::runtime::{Failure, Runtime, RuntimeKind, RuntimeSettings};

pub use bounds::*;
pub use durable::{OpenError, SnapshotError};
pub use postpaid::{check_coefficient, RESOURCE_ID_MAX};
pub use queries::{
    BillingQuota, CustomerFilterField, CustomerQuery, IndirectCustomers, PartnerCreditSummary,
    SubAgentFilterField, SubAgentQuery, UinCredit, CUSTOMER_INFO_MAX, PAGE_SIZE_MAX, SUB_AGENT_PAGE_SIZE_MAX,
    UIN_LIST_MAX,
};
pub use setup::{NewCustomer, NewPartner, PartnerKind, REMARK_MAX};
pub use vouchers::{
    NewCustomerVoucher, NewPartnerVoucher, PartnerVoucherType, VoucherAmount, VoucherFilter,
    VoucherListStatus, VoucherPage, VoucherPoolView, VoucherUsage, VOUCHER_PAGE_SIZE_MAX,
    VOUCHER_UIN_LIST_MAX,
};

/// The engine's settings, with the documented defaults.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub runtime: RuntimeKind,
    /// Worker threads of the runtime; by default one per core.
    pub workers: usize,
    /// Messages an account actor's mailbox holds before senders wait.
    pub mailbox_capacity: usize,
    /// Reservation timeout when a reservation names none (the API's default is 60 s).
    pub reservation_timeout_ms_default: i64,
    /// The longest reservation timeout accepted (one day).
    pub reservation_timeout_ms_max: i64,
    /// How long a resolved purchase id is remembered for idempotent repeats (10 minutes).
    pub resolved_retention_ms: i64,
    /// How many resolved purchase ids the engine remembers at most (1,000,000, about 200 MB
    /// at worst); the oldest are forgotten first.
    pub resolved_capacity: usize,
    /// How many reservations may be open at once (1,000,000).
    pub open_reservations_max: usize,
    /// How many purchases one batch may hold (8189, as the API allows).
    pub batch_len_max: usize,
    /// How often reservations past their deadline are released (100 ms).
    pub expiry_sweep_interval_ms: u64,
    /// Hot partners: distributors or resellers charged by so many purchases that one actor
    /// would be the bottleneck. The sharded runtime splits their available credit into
    /// per-shard slices (see docs/ARCHITECTURE.md, "Escrow"). A purchase's
    /// `partner_available` is then the available credit of its shard's slice, not the
    /// partner's whole. Empty by default.
    pub escrow_partners: Vec<Uin>,
    /// The per-second quota of every action, per caller: the documented upstream quotas by
    /// default, none on the engine's own actions (see [`crate::domain::quota`]).
    pub quotas: QuotaTable,
    /// How often callers with a full budget again are forgotten by the rate limiter (10 s;
    /// at least 100 ms).
    pub rate_limit_sweep_interval_ms: u64,
    /// The freezing coefficient of ActivatePostpaid when a request names none (1: the whole
    /// amount is frozen).
    pub freezing_coefficient_default: rust_decimal::Decimal,
    /// Where the journal and snapshots go; `None` (the default): the engine keeps its state
    /// in memory only, and a restart loses it. Needs the sharded runtime.
    pub data_dir: Option<PathBuf>,
    /// When the journal is fsynced (with a data directory): `Always` (the default) before
    /// any answer leaves; `Interval` every so often, answers first (a crash of the machine
    /// loses at most the interval); `Never`, when the system decides.
    pub fsync: FsyncPolicy,
    /// Journal segment files are closed at this size (64 MiB).
    pub segment_bytes: u64,
    /// A snapshot is written in the background once the journal has grown by this much
    /// since the last one (128 MiB), so that a restart replays at most about that much.
    pub snapshot_bytes: u64,
}

impl EngineConfig {
    /// The largest `resolved_capacity` and `open_reservations_max` the server accepts: the
    /// ledger's records stay far below what its index can tell apart.
    pub const LEDGER_RECORDS_MAX: usize = 100_000_000;
    /// The `segment_bytes` the server accepts: from a page (smaller would open a file for
    /// about every write) to 1 GiB.
    pub const SEGMENT_BYTES_RANGE: std::ops::RangeInclusive<u64> = 4096..=1 << 30;
    /// The `snapshot_bytes` the server accepts: from a page (smaller would snapshot the whole
    /// state after about every write) to 1 TiB.
    pub const SNAPSHOT_BYTES_RANGE: std::ops::RangeInclusive<u64> = 4096..=1 << 40;
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            runtime: RuntimeKind::default(),
            workers: std::thread::available_parallelism().map(usize::from).unwrap_or(2),
            mailbox_capacity: 256,
            reservation_timeout_ms_default: 60_000,
            reservation_timeout_ms_max: 86_400_000,
            resolved_retention_ms: 600_000,
            resolved_capacity: 1_000_000,
            open_reservations_max: 1_000_000,
            batch_len_max: 8189,
            expiry_sweep_interval_ms: 100,
            escrow_partners: Vec::new(),
            quotas: QuotaTable::documented(),
            rate_limit_sweep_interval_ms: 10_000,
            freezing_coefficient_default: rust_decimal::Decimal::ONE,
            data_dir: None,
            fsync: FsyncPolicy::Always,
            segment_bytes: JournalOptions::SEGMENT_BYTES_DEFAULT,
            snapshot_bytes: 128 << 20,
        }
    }
}

/// Why an engine call did not succeed: refused (an expected outcome) or failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error(transparent)]
    Failed(#[from] Failure),
}

impl Error {
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Error::Rejected(rejection) => Some(rejection),
            Error::Failed(_) => None,
        }
    }
}

pub type EngineResult<T> = Result<T, Error>;

pub struct Engine {
    /// Shared with the tasks that run multi-step operations to their end.
    runtime: Arc<Runtime>,
    limits: Arc<RateLimits>,
    /// Dropping it stops the rate-limit sweeper.
    #[allow(dead_code)]
    sweeper: Option<crossbeam_channel::Sender<()>>,
    clock: Arc<dyn Clock>,
    config: EngineConfig,
    /// The next UIN to try when a creation names none.
    next_uin: AtomicU64,
    /// Where credit warnings go (see [`crate::events`]).
    events: Arc<EventBus>,
    /// The next voucher id.
    next_voucher: AtomicU64,
    /// Which account owns each voucher.
    vouchers: Arc<DashMap<VoucherId, Uin>>,
    /// Which customer each active postpaid resource freezes credit of.
    resources: Arc<DashMap<Box<str>, Uin>>,
    /// Written by a trial-voucher priority switch, read by a customer's creation (which copies
    /// the switch): creations run alongside each other, never alongside a switch.
    switching: Arc<tokio::sync::RwLock<()>>,
    /// The journal, with a data directory.
    journal: Option<Arc<Journal>>,
    /// Operations over several accounts under way (see `intents.rs`).
    intents: Arc<intents::Intents>,
    /// Dropping the sender stops the background snapshots; the engine's drop joins them.
    snapshots: parking_lot::Mutex<Option<(crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>)>>,
}

impl Engine {
    /// Starts an engine on the system clock.
    ///
    /// # Panics
    /// With a data directory, if it cannot be opened: use [`Engine::open`] to handle that.
    pub fn start(config: EngineConfig) -> Engine {
        Engine::start_with_clock(config, Arc::new(SystemClock))
    }

    /// # Panics
    /// As [`Engine::start`].
    pub fn start_with_clock(config: EngineConfig, clock: Arc<dyn Clock>) -> Engine {
        Engine::open_with_clock(config, clock).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts an engine on the system clock; with a data directory, recovers what it holds
    /// first (the newest snapshot and the journal after it).
    pub fn open(config: EngineConfig) -> Result<Engine, OpenError> {
        Engine::open_with_clock(config, Arc::new(SystemClock))
    }

    pub fn open_with_clock(config: EngineConfig, clock: Arc<dyn Clock>) -> Result<Engine, OpenError> {
        Engine::assemble(config, clock, None)
    }

    /// An engine whose state is the snapshot at `path` (LoadSnapshot), checked as a
    /// recovery is. With a data directory, the directory is replaced by the snapshot (every
    /// journal and snapshot file in it is deleted) and then recovered: no other engine may
    /// hold it.
    pub fn load_snapshot(config: EngineConfig, path: &std::path::Path) -> Result<Engine, OpenError> {
        Engine::load_snapshot_with_clock(config, path, Arc::new(SystemClock))
    }

    pub fn load_snapshot_with_clock(
        config: EngineConfig,
        path: &std::path::Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, OpenError> {
        let image = durable::read_image(path)?;
        match &config.data_dir {
            Some(dir) => {
                crate::journal::replace_with_snapshot(dir, &image.1)?;
                Engine::assemble(config, clock, None)
            }
            None => Engine::assemble(config, clock, Some(image.0)),
        }
    }

    /// An engine with no state (ResetState): with a data directory, every journal and
    /// snapshot file in it is deleted first, so no other engine may hold it.
    pub fn open_empty(config: EngineConfig, clock: Arc<dyn Clock>) -> Result<Engine, OpenError> {
        if let Some(dir) = &config.data_dir {
            crate::journal::clear(dir)?;
        }
        Engine::assemble(config, clock, None)
    }

    /// Reads and checks the snapshot at `path` as [`Engine::load_snapshot`] would, changing
    /// nothing.
    pub fn check_snapshot(path: &std::path::Path) -> Result<(), OpenError> {
        durable::read_image(path).map(drop)
    }

    /// How many accounts the engine holds.
    pub fn account_count(&self) -> usize {
        self.runtime.uins().len()
    }

    fn assemble(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        image: Option<durable::EngineImage>,
    ) -> Result<Engine, OpenError> {
        let partitions = config.workers.max(1);
        let events = Arc::new(EventBus::new());
        let settings = RuntimeSettings {
            workers: config.workers.max(1),
            mailbox_capacity: config.mailbox_capacity,
            ledger_limits: LedgerLimits {
                resolved_retention_ms: config.resolved_retention_ms,
                resolved_capacity: config.resolved_capacity.div_ceil(partitions),
                open_reservations_max: config.open_reservations_max.div_ceil(partitions),
            },
            expiry_sweep_interval_ms: config.expiry_sweep_interval_ms,
            escrow_partners: config.escrow_partners.clone(),
            events: events.clone(),
        };
        let opened = match (&config.data_dir, image) {
            (Some(dir), _) => durable::open(&config, dir, settings, clock.clone())?,
            (None, Some(image)) => durable::restore(&config, image, settings, clock.clone())?,
            (None, None) => durable::Opened {
                runtime: Runtime::start(config.runtime, settings, clock.clone()),
                journal: None,
                accounts: Vec::new(),
                intents: Default::default(),
                next_intent: 0,
            },
        };
        let durable::Opened { runtime, journal, accounts, intents, next_intent } = opened;
        let runtime = Arc::new(runtime);
        let intents = Arc::new(intents::Intents::new(journal.clone(), intents, next_intent));
        let limits = Arc::new(RateLimits::new(&config.quotas, clock.clone()));
        let sweeper = limits
            .any()
            .then(|| spawn_rate_limit_sweeper(Arc::downgrade(&limits), config.rate_limit_sweep_interval_ms));
        let snapshots = journal.as_ref().map(|journal| {
            durable::spawn_snapshots(runtime.clone(), intents.clone(), journal.clone(), config.snapshot_bytes)
        });
        let engine = Engine {
            runtime,
            limits,
            sweeper,
            clock,
            config,
            next_uin: AtomicU64::new(100_000_000_001),
            events,
            next_voucher: AtomicU64::new(1),
            vouchers: Arc::new(DashMap::new()),
            resources: Arc::new(DashMap::new()),
            switching: Arc::new(tokio::sync::RwLock::new(())),
            journal,
            intents,
            snapshots: parking_lot::Mutex::new(snapshots),
        };
        engine.index(&accounts);
        engine.finish_intents().map_err(|error| OpenError::Recovery {
            dir: engine.config.data_dir.clone().unwrap_or_default(),
            position: 0,
            problem: format!("finishing an operation a crash cut short: {error}"),
        })?;
        Ok(engine)
    }

    /// Notes which account owns each voucher and which customer each postpaid resource
    /// freezes, and the next free voucher id: what the engine keeps beside the runtime.
    fn index(&self, accounts: &[crate::domain::Account]) {
        let mut next_voucher = self.next_voucher.load(Ordering::Relaxed);
        for account in accounts {
            for voucher in account.vouchers() {
                self.vouchers.insert(voucher.id, account.uin);
                next_voucher = next_voucher.max(voucher.id.0 + 1);
            }
            for resource in account.frozen_resources() {
                self.resources.insert(resource.into(), account.uin);
            }
        }
        self.next_voucher.store(next_voucher, Ordering::Relaxed);
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn now(&self) -> crate::domain::Timestamp {
        self.clock.now()
    }

    /// The clock the engine runs on, for another engine on the same time.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Stops the runtime's threads. Calls after this fail with [`Failure::Stopped`].
    pub fn shutdown(&self) {
        self.runtime.shutdown();
    }

    /// Stops the engine, as [`Engine::shutdown`], and with a data directory syncs the
    /// journal and lets go of the directory, so that another engine may open it while
    /// handles to this one remain. Dropping the engine does the same.
    pub fn close(&self) -> Result<(), crate::journal::JournalError> {
        if let Some((stop, thread)) = self.snapshots.lock().take() {
            drop(stop);
            let _ = thread.join();
        }
        self.runtime.shutdown();
        match &self.journal {
            Some(journal) => journal.close(),
            None => Ok(()),
        }
    }

    /// Counts one call of `action` by `caller` against its quota, or refuses it with
    /// [`Rejection::RateLimited`]. Every engine method that is an API action does this
    /// first; the server calls it for the actions the engine does not offer. Views meant for
    /// operators and tests (`account`, `all_accounts`, `audit`, `import`, ...) are not
    /// actions and have no quota.
    #[inline]
    pub fn admit(&self, caller: Caller, action: Action) -> Result<(), Rejection> {
        self.limits.check(caller, action)
    }

    /// Forgets the rate-limit budgets of callers idle long enough to have a full budget
    /// again. The engine does this every `rate_limit_sweep_interval_ms` by itself.
    pub fn sweep_rate_limits(&self) {
        self.limits.sweep();
    }

    /// How many (caller, action) rate-limit budgets the engine holds.
    pub fn rate_limit_budgets(&self) -> usize {
        self.limits.len()
    }

    /// Sends one command to one account and answers its typed reply.
    async fn ask<R: Request>(&self, uin: Uin, request: R) -> EngineResult<R::Answer> {
        ask(&self.runtime, uin, request).await
    }

    fn record_info(&self, caller: Caller, remark: Option<String>) -> Box<RecordInfo> {
        Box::new(RecordInfo {
            operator: caller,
            remark: remark.map(String::into_boxed_str),
            time: self.clock.now(),
        })
    }
}

/// Sweeps the rate limits every `interval_ms` (at least 100 ms) until the answered sender
/// is dropped, which the engine's drop does.
fn spawn_rate_limit_sweeper(limits: Weak<RateLimits>, interval_ms: u64) -> crossbeam_channel::Sender<()> {
    let interval = Duration::from_millis(interval_ms.max(100));
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let spawned = std::thread::Builder::new().name("rate-limit-sweep".into()).spawn(move || {
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
            match limits.upgrade() {
                Some(limits) => limits.sweep(),
                None => return,
            }
        }
    });
    if let Err(error) = spawned {
        // Limits still hold; only idle budgets stay in memory until the engine is dropped.
        tracing::warn!(%error, "could not start the rate-limit sweeper");
    }
    stop
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(error) = self.close() {
            tracing::error!("closing the engine's journal: {error}");
        }
    }
}

/// Sends one command to one account and answers its typed reply.
async fn ask<R: Request>(runtime: &Runtime, uin: Uin, request: R) -> EngineResult<R::Answer> {
    typed::<R>(uin, runtime.call(uin, request.into()).await?)
}

/// The typed answer of `R` from an account's reply: the one place a reply of another
/// command would be noticed (a broken runtime, reported as a failure).
fn typed<R: Request>(uin: Uin, reply: Result<crate::domain::Reply, Rejection>) -> EngineResult<R::Answer> {
    R::answer(reply?).map_err(|other| Failure::Internal(format!("{uin} answered {other:?}")).into())
}

/// Runs a multi-step operation on its own task, so that it finishes even if the caller's
/// future is dropped (a timeout, a closed connection).
async fn run_to_end<T: Send + 'static>(
    steps: impl std::future::Future<Output = EngineResult<T>> + Send + 'static,
) -> EngineResult<T> {
    match tokio::spawn(steps).await {
        Ok(result) => result,
        Err(error) => {
            Err(Failure::Internal(format!("a multi-step operation did not finish: {error}")).into())
        }
    }
}

/// A parameter outside its bounds.
fn invalid(parameter: &'static str, reason: String) -> Error {
    Rejection::InvalidParameter { parameter, reason }.into()
}

/// Pages count from 1 and hold 1 to `page_size_max` items.
fn check_page(page: usize, page_size: usize, page_size_max: usize) -> Result<(), Error> {
    if page == 0 {
        return Err(invalid("Page", "pages count from 1".into()));
    }
    if !(1..=page_size_max).contains(&page_size) {
        return Err(invalid("PageSize", format!("{page_size} is outside 1 to {page_size_max}")));
    }
    Ok(())
}

/// Page `page` (from 1) of `page_size` items.
fn page_of<T>(items: Vec<T>, page: usize, page_size: usize) -> Vec<T> {
    let skip = page.saturating_sub(1).saturating_mul(page_size);
    items.into_iter().skip(skip).take(page_size).collect()
}
