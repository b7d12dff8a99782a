//! The in-process API: what the server, the load generator, the benches and the tests call.
//!
//! Every method is async and usable from any tokio program. Set-up, allocation, suspension
//! and queries are short sequences of account commands sent from here; the purchase protocol
//! runs in the runtime's coordinators. The engine checks inputs that need no state (amounts,
//! bounds, the operator-only actions) and leaves every rule that reads state to the actors.
//!
//! Invariants:
//! - the engine holds no account or purchase state; it holds the runtime, the clock, its
//!   configuration, the event bus, and two indexes (voucher -> owner, postpaid resource ->
//!   customer) so that an operation naming only a voucher or a resource finds its actor;
//! - a refusal ([`Error::Rejected`]) changes nothing; a [`Error::Failed`] means the outcome is
//!   unknown because the runtime stopped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use futures::future::join_all;

use crate::audit::Audit;
use crate::clock::{Clock, SystemClock};
use crate::coordinator::{LedgerLimits, Mode, Outcome, PurchaseReceipt, PurchaseRequest, ReservationReceipt};
use crate::domain::{
    Account, AccountKind, AccountView, Action, AllocationRecord, Caller, Command, CreditLine, KindRequired,
    Money, Profile, PurchaseId, QuotaTable, RecordInfo, Rejection, Reply, Role, Uin, VoucherId, VoucherPool,
};
use crate::events::EventBus;
use crate::limits::RateLimits;
use crate::runtime::{CoordinatorOp, Failure, Runtime, RuntimeKind, RuntimeSettings};
use crate::world::World;

#[path = "engine_rules.rs"]
mod rules;
pub use rules::{
    check_coefficient, NewCustomerVoucher, NewPartnerVoucher, PartnerVoucherType, VoucherAmount,
    VoucherFilter, VoucherListStatus, VoucherPage, VoucherPoolView, VoucherUsage, RESOURCE_ID_MAX,
    VOUCHER_PAGE_SIZE_MAX, VOUCHER_UIN_LIST_MAX,
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
}

impl EngineConfig {
    /// The largest `resolved_capacity` and `open_reservations_max` the server accepts: the
    /// ledger's records stay far below what its index can tell apart.
    pub const LEDGER_RECORDS_MAX: usize = 100_000_000;
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

/// A partner kind the operator can create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartnerKind {
    Distributor,
    Reseller,
    /// A second-level reseller; its parent is a distributor.
    SecondLevelReseller,
}

/// A new partner.
#[derive(Clone, Debug, Default)]
pub struct NewPartner {
    /// Assigned by the engine when absent.
    pub uin: Option<Uin>,
    /// The distributor of a second-level reseller.
    pub parent: Option<Uin>,
    pub name: Option<String>,
}

/// A new customer.
#[derive(Clone, Debug)]
pub struct NewCustomer {
    pub uin: Option<Uin>,
    /// Its reseller or second-level reseller.
    pub parent: Uin,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// QueryPartnerCredit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartnerCreditSummary {
    pub total: Money,
    pub allocated: Money,
    pub remaining: Money,
    pub customer_total: Money,
    pub customer_remaining: Money,
}

/// QueryCustomerBillingQuota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BillingQuota {
    pub total: Money,
    pub remaining: Money,
    pub postpay_frozen: Money,
    /// What its vouchers can still deduct.
    pub remaining_voucher: Money,
    /// 0 normal, 2 forced suspension.
    pub force: u8,
}

/// One row of QueryCreditByUinList and QueryDirectCustomersCredit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UinCredit {
    pub uin: Uin,
    pub total: Money,
    pub remaining: Money,
}

/// Which field QueryCustomersCredit filters on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomerFilterField {
    ClientUin,
    Name,
    Remark,
    Email,
}

/// QueryCustomersCredit's filter, page and order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerQuery {
    pub filter: Option<(CustomerFilterField, String)>,
    /// From 1.
    pub page: usize,
    pub page_size: usize,
    /// By association time; descending unless set.
    pub ascending: bool,
}

impl Default for CustomerQuery {
    fn default() -> CustomerQuery {
        CustomerQuery { filter: None, page: 1, page_size: 20, ascending: false }
    }
}

/// The largest page any query returns.
pub const PAGE_SIZE_MAX: usize = 1000;
/// QueryCreditByUinList takes 1 to 50 UINs.
pub const UIN_LIST_MAX: usize = 50;
/// DescribeCustomerInfo takes 1 to 20 UINs.
pub const CUSTOMER_INFO_MAX: usize = 20;
/// The largest page of QuerySubAgentsDetailV2 and QueryT1IndirectCustomersDetail (documented).
pub const SUB_AGENT_PAGE_SIZE_MAX: usize = 100;

/// Which field QuerySubAgentsDetailV2 filters on. `SubAgentUin`, `Email` and `ClientUin`
/// match exactly, the others as a substring, as the upstream reference says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubAgentFilterField {
    Name,
    SubAgentUin,
    Remark,
    /// The engine holds no mobile numbers: this filter matches nothing.
    Mobile,
    Email,
    /// The second-level reseller that has this customer.
    ClientUin,
}

/// QuerySubAgentsDetailV2's filter, page and order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAgentQuery {
    pub filter: Option<(SubAgentFilterField, String)>,
    /// From 1.
    pub page: usize,
    /// 1 to [`SUB_AGENT_PAGE_SIZE_MAX`].
    pub page_size: usize,
    /// By binding time; descending unless set.
    pub ascending: bool,
}

/// QueryT1IndirectCustomersDetail: a second-level reseller and one page of its customers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndirectCustomers {
    pub sub_agent: AccountView,
    /// How many customers the second-level reseller has.
    pub total: usize,
    /// Newest binding first.
    pub customers: Vec<AccountView>,
}

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
}

impl Engine {
    /// Starts an engine on the system clock.
    pub fn start(config: EngineConfig) -> Engine {
        Engine::start_with_clock(config, Arc::new(SystemClock))
    }

    pub fn start_with_clock(config: EngineConfig, clock: Arc<dyn Clock>) -> Engine {
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
        let runtime = Arc::new(Runtime::start(config.runtime, settings, clock.clone()));
        let limits = Arc::new(RateLimits::new(&config.quotas, clock.clone()));
        let sweeper = limits
            .any()
            .then(|| spawn_rate_limit_sweeper(Arc::downgrade(&limits), config.rate_limit_sweep_interval_ms));
        Engine {
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
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn now(&self) -> crate::domain::Timestamp {
        self.clock.now()
    }

    /// Stops the runtime's threads. Calls after this fail with [`Failure::Stopped`].
    pub fn shutdown(&self) {
        self.runtime.shutdown();
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

    async fn call(&self, uin: Uin, command: Command) -> EngineResult<Reply> {
        call(&self.runtime, uin, command).await
    }

    // ----- set-up (operator only) -----

    /// Creates a distributor, a reseller, or a second-level reseller under a distributor.
    pub async fn create_partner(
        &self,
        caller: Caller,
        kind: PartnerKind,
        partner: NewPartner,
    ) -> EngineResult<Uin> {
        self.admit(caller, Action::CreatePartner)?;
        require_operator(caller, "create partners")?;
        let profile = profile(partner.name, None);
        match kind {
            PartnerKind::Distributor | PartnerKind::Reseller => {
                if let Some(parent) = partner.parent {
                    return Err(invalid("ParentUin", format!("a {kind:?} has no parent, got {parent}")));
                }
                let credit = Default::default();
                let role = if kind == PartnerKind::Distributor {
                    Role::Distributor { credit }
                } else {
                    Role::Reseller { credit }
                };
                self.create(partner.uin, role, profile, None).await
            }
            PartnerKind::SecondLevelReseller => {
                let Some(distributor) = partner.parent else {
                    return Err(invalid("ParentUin", "a second-level reseller needs its distributor".into()));
                };
                let role = Role::SecondLevelReseller { distributor, pool: Default::default() };
                self.create(partner.uin, role, profile, Some((distributor, AccountKind::SecondLevelReseller)))
                    .await
            }
        }
    }

    /// Creates a customer under a reseller or a second-level reseller.
    pub async fn create_customer(&self, caller: Caller, customer: NewCustomer) -> EngineResult<Uin> {
        self.admit(caller, Action::CreateClient)?;
        require_operator(caller, "create customers")?;
        // The charged partner is replaced by the one the parent names when it adopts the
        // customer.
        let role = Role::customer(customer.parent, customer.parent, Default::default());
        let profile = profile(customer.name, customer.email);
        self.create(customer.uin, role, profile, Some((customer.parent, AccountKind::Customer))).await
    }

    async fn create(
        &self,
        uin: Option<Uin>,
        mut role: Role,
        profile: Option<Profile>,
        parent: Option<(Uin, AccountKind)>,
    ) -> EngineResult<Uin> {
        let uin = match uin {
            Some(uin) if self.runtime.contains(uin) => return Err(Rejection::UinTaken(uin).into()),
            Some(uin) => uin,
            None => self.fresh_uin(),
        };
        let runtime = self.runtime.clone();
        let created = self.clock.now();
        // A customer copies its partner's trial-voucher priority switch: no switch may run
        // between that read and the customer's registration.
        let switching = match role {
            Role::Customer { .. } => Some(self.switching.clone().read_owned().await),
            _ => None,
        };
        // Adopt, then spawn (or disown): run to the end even if the caller stops waiting, so
        // no parent is left listing a child that was never created.
        run_to_end(async move {
            let _switching = switching;
            if let Some((parent, child_kind)) = parent {
                let reply = call(&runtime, parent, Command::AdoptChild { child: uin, child_kind }).await?;
                if let (Reply::Adopted { charged }, Role::Customer { charged: slot, trial_first, .. }) =
                    (reply, &mut role)
                {
                    *slot = charged;
                    // The charged partner's trial-voucher priority switch.
                    let details = Command::Details {
                        now: created,
                        vouchers: false,
                        usage: crate::domain::account::UsageOf::None,
                    };
                    if let Reply::Details(details) = call(&runtime, charged, details).await? {
                        *trial_first = details.trial_first;
                    }
                }
            }
            let mut account = Account::new(uin, role, created);
            if let Some(profile) = profile {
                account.set_profile(profile);
            }
            if let Err(rejection) = runtime.spawn(vec![account]).await? {
                if let Some((parent, _)) = parent {
                    call(&runtime, parent, Command::DisownChild { child: uin }).await?;
                }
                return Err(rejection.into());
            }
            Ok(uin)
        })
        .await
    }

    fn fresh_uin(&self) -> Uin {
        loop {
            let uin = Uin(self.next_uin.fetch_add(1, Ordering::Relaxed));
            if !self.runtime.contains(uin) {
                return uin;
            }
        }
    }

    /// Raises (positive) or reduces (negative) a distributor's or reseller's credit line. A
    /// reduction cannot take its available credit below zero.
    pub async fn grant_credit(&self, caller: Caller, partner: Uin, delta: Money) -> EngineResult<CreditLine> {
        self.admit(caller, Action::GrantPartnerCredit)?;
        require_operator(caller, "change credit lines")?;
        require_nonzero(delta)?;
        let record = self.record_info(caller, None);
        match self.call(partner, Command::GrantCredit { delta, record }).await? {
            Reply::Credit(line) => Ok(line),
            other => unexpected(other),
        }
    }

    /// Creates all accounts of a world in one step, or none if any is invalid or taken.
    /// Parents must be in the same world.
    pub async fn import(&self, caller: Caller, world: &World) -> EngineResult<usize> {
        require_operator(caller, "import hierarchies")?;
        let accounts =
            world.to_accounts(self.clock.now()).map_err(|error| invalid("world", error.to_string()))?;
        let count = accounts.len();
        self.runtime.spawn(accounts).await??;
        if let Some(max) = self.runtime.uins().iter().map(|uin| uin.0).max() {
            self.next_uin.fetch_max(max + 1, Ordering::Relaxed);
        }
        Ok(count)
    }

    // ----- allocation -----

    /// AllocateCustomerCredit: `delta` is an increment; negative repossesses. The caller is
    /// the customer's reseller or second-level reseller, or the operator.
    pub async fn allocate_customer_credit(
        &self,
        caller: Caller,
        customer: Uin,
        delta: Money,
        remark: Option<String>,
    ) -> EngineResult<CreditLine> {
        self.admit(caller, Action::AllocateCustomerCredit)?;
        self.allocate(caller, customer, KindRequired::Customer, delta, remark).await
    }

    /// AllocateCreditPool: a distributor allocates to (or repossesses from) the pool of one of
    /// its second-level resellers. Answers the pool's total and what is left of it.
    pub async fn allocate_credit_pool(
        &self,
        caller: Caller,
        sub_agent: Uin,
        delta: Money,
    ) -> EngineResult<CreditLine> {
        self.admit(caller, Action::AllocateCreditPool)?;
        self.allocate(caller, sub_agent, KindRequired::SecondLevelReseller, delta, None).await
    }

    /// The receiver refuses first (authorization, repossession bounds); then the giver
    /// (allocable bounds); the last step cannot be refused. So a refusal at any step leaves
    /// nothing changed, and no step needs undoing.
    async fn allocate(
        &self,
        caller: Caller,
        receiver: Uin,
        kind: KindRequired,
        delta: Money,
        remark: Option<String>,
    ) -> EngineResult<CreditLine> {
        if let Some(remark) = &remark {
            check_remark(remark)?;
        }
        let record = self.record_info(caller, remark);
        let runtime = self.runtime.clone();
        // Run to the end even if the caller stops waiting: a half-done allocation would have
        // taken credit from one side without giving it to the other.
        run_to_end(async move {
            let open = Command::OpenAllocation { caller, receiver: kind, delta, record: record.clone() };
            let Reply::AllocationOpened { giver, applied } = call(&runtime, receiver, open).await? else {
                return Err(Failure::Internal("OpenAllocation answered something else".into()).into());
            };
            if let Some(applied) = applied {
                call(&runtime, giver, Command::ReturnAllocable { amount: delta.abs() }).await?;
                return Ok(applied);
            }
            call(&runtime, giver, Command::TakeAllocable { amount: delta }).await?;
            match call(&runtime, receiver, Command::CloseAllocation { delta, record }).await? {
                Reply::Credit(line) => Ok(line),
                other => unexpected(other),
            }
        })
        .await
    }

    // ----- suspension -----

    /// ForceQN: suspend (`true`, type 2) or restore (`false`, type 0) a customer.
    pub async fn set_suspension(&self, caller: Caller, customer: Uin, suspended: bool) -> EngineResult<()> {
        self.admit(caller, Action::ForceQN)?;
        self.call(customer, Command::SetSuspension { caller, suspended }).await?;
        Ok(())
    }

    /// ModifyClientRemark.
    pub async fn set_remark(&self, caller: Caller, customer: Uin, remark: String) -> EngineResult<()> {
        self.admit(caller, Action::ModifyClientRemark)?;
        check_remark(&remark)?;
        self.call(customer, Command::SetRemark { caller, remark: remark.into_boxed_str() }).await?;
        Ok(())
    }

    // ----- purchases -----

    /// A one-shot purchase: reserve and commit on the customer and its charged partner.
    pub async fn purchase(&self, caller: Caller, request: PurchaseRequest) -> EngineResult<PurchaseReceipt> {
        self.admit(caller, Action::CreatePurchase)?;
        require_positive(request.amount)?;
        match self.coordinate(CoordinatorOp::Begin { caller, request, mode: Mode::OneShot }).await? {
            Outcome::Purchased(receipt) => Ok(receipt),
            other => unexpected_outcome(other),
        }
    }

    /// Phase one: holds the amount on both sides until commit, cancel or the deadline.
    pub async fn reserve(
        &self,
        caller: Caller,
        request: PurchaseRequest,
        timeout_ms: Option<i64>,
    ) -> EngineResult<ReservationReceipt> {
        self.admit(caller, Action::ReservePurchase)?;
        require_positive(request.amount)?;
        let timeout_ms = timeout_ms.unwrap_or(self.config.reservation_timeout_ms_default);
        if !(1..=self.config.reservation_timeout_ms_max).contains(&timeout_ms) {
            return Err(invalid(
                "timeout",
                format!("{timeout_ms} ms is outside 1 to {} ms", self.config.reservation_timeout_ms_max),
            ));
        }
        let op = CoordinatorOp::Begin { caller, request, mode: Mode::Reserve { timeout_ms } };
        match self.coordinate(op).await? {
            Outcome::Reserved(receipt) => Ok(receipt),
            other => unexpected_outcome(other),
        }
    }

    /// Phase two: the reservation's amounts become used on both sides.
    pub async fn commit(&self, caller: Caller, id: PurchaseId) -> EngineResult<()> {
        self.admit(caller, Action::CommitPurchase)?;
        self.coordinate(CoordinatorOp::Commit { caller, id }).await.map(drop)
    }

    /// Releases a reservation on both sides.
    pub async fn cancel(&self, caller: Caller, id: PurchaseId) -> EngineResult<()> {
        self.admit(caller, Action::CancelPurchase)?;
        self.coordinate(CoordinatorOp::Cancel { caller, id }).await.map(drop)
    }

    async fn coordinate(&self, op: CoordinatorOp) -> EngineResult<Outcome> {
        Ok(self.runtime.coordinate(op).await??)
    }

    /// Many one-shot purchases at once, answered in order. A refusal of one does not stop the
    /// others. They run concurrently, like that many single calls made at once: two
    /// purchases of one customer (or charging one partner) that cannot both pass may be
    /// applied in either order.
    pub async fn purchase_batch(
        &self,
        caller: Caller,
        requests: Vec<PurchaseRequest>,
    ) -> EngineResult<Vec<Result<PurchaseReceipt, Rejection>>> {
        self.admit(caller, Action::CreatePurchases)?;
        if requests.is_empty() {
            return Err(invalid("Purchases", format!("a batch holds 1 to {}", self.config.batch_len_max)));
        }
        if requests.len() > self.config.batch_len_max {
            return Err(
                Rejection::BatchTooLarge { len: requests.len(), limit: self.config.batch_len_max }.into()
            );
        }
        if requests.iter().all(|request| request.amount.is_positive()) {
            return Ok(self.runtime.purchase_batch(caller, requests).await?);
        }
        // Invalid amounts are refused one by one, like the runtime's refusals.
        let mut answers: Vec<Option<Result<PurchaseReceipt, Rejection>>> = Vec::with_capacity(requests.len());
        let mut valid = Vec::with_capacity(requests.len());
        for request in requests {
            match require_positive(request.amount) {
                Ok(()) => {
                    answers.push(None);
                    valid.push(request);
                }
                Err(Error::Rejected(rejection)) => answers.push(Some(Err(rejection))),
                Err(Error::Failed(failure)) => return Err(failure.into()),
            }
        }
        let mut results = self.runtime.purchase_batch(caller, valid).await?.into_iter();
        Ok(answers
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| results.next().expect("one result per valid request")))
            .collect())
    }

    /// Releases every reservation past its deadline now, instead of at the next sweep.
    /// Answers how many were released.
    pub async fn expire_due(&self) -> EngineResult<usize> {
        Ok(self.runtime.expire_due().await?)
    }

    pub async fn open_reservations(&self) -> EngineResult<usize> {
        Ok(self.runtime.open_reservations().await?)
    }

    // ----- queries -----

    /// One account's state, for the account itself, its parent, or the operator.
    pub async fn account(&self, caller: Caller, uin: Uin) -> EngineResult<AccountView> {
        let view = self.snapshot(uin).await?;
        authorize_view(caller, &view)?;
        Ok(view)
    }

    async fn snapshot(&self, uin: Uin) -> EngineResult<AccountView> {
        match self.call(uin, Command::Snapshot).await? {
            Reply::Snapshot(view) => Ok(*view),
            other => unexpected(other),
        }
    }

    async fn children(&self, uin: Uin) -> EngineResult<Vec<Uin>> {
        children(&self.runtime, uin).await
    }

    /// The children of a partner. A child listed but not yet created (its creation is in
    /// progress) is left out, and so is anything whose parent is not this partner.
    async fn children_views(&self, partner: Uin) -> EngineResult<Vec<AccountView>> {
        let children = self.children(partner).await?;
        let mut views = Vec::with_capacity(children.len());
        for result in join_all(children.iter().map(|uin| self.snapshot(*uin))).await {
            match result {
                Ok(view) if view.parent() == Some(partner) => views.push(view),
                Ok(_) | Err(Error::Rejected(Rejection::UnknownUin(_))) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(views)
    }

    async fn snapshots(&self, uins: &[Uin]) -> EngineResult<Vec<AccountView>> {
        join_all(uins.iter().map(|uin| self.snapshot(*uin))).await.into_iter().collect()
    }

    /// QueryPartnerCredit, for the partner itself or the operator.
    pub async fn query_partner_credit(
        &self,
        caller: Caller,
        partner: Uin,
    ) -> EngineResult<PartnerCreditSummary> {
        self.admit(caller, Action::QueryPartnerCredit)?;
        let view = self.snapshot(partner).await?;
        if !(caller == Caller::Operator || caller.is(partner)) {
            return Err(not_authorized(caller, partner));
        }
        let (total, allocated, remaining) = match &view.role {
            Role::Distributor { credit } | Role::Reseller { credit } => {
                (credit.total, credit.allocated, credit.available())
            }
            Role::SecondLevelReseller { pool, .. } => (pool.total, pool.allocated, pool.remaining()),
            Role::Customer { .. } => return Err(wrong_kind(partner, KindRequired::Partner)),
        };
        let customers = self.children_views(partner).await?;
        let customers = customers.iter().filter(|view| view.kind() == AccountKind::Customer);
        let (customer_total, customer_remaining) = customers
            .fold((Money::ZERO, Money::ZERO), |(total, remaining), view| {
                (total + view.total(), remaining + view.available())
            });
        Ok(PartnerCreditSummary { total, allocated, remaining, customer_total, customer_remaining })
    }

    /// QueryCustomerBillingQuota, for the customer itself (or its parent, or the operator).
    pub async fn query_customer_billing_quota(
        &self,
        caller: Caller,
        customer: Uin,
    ) -> EngineResult<BillingQuota> {
        self.admit(caller, Action::QueryCustomerBillingQuota)?;
        let view = self.account(caller, customer).await?;
        let Role::Customer { credit, suspended, .. } = view.role else {
            return Err(wrong_kind(customer, KindRequired::Customer));
        };
        let remaining_voucher = self
            .details_with(customer, false, crate::domain::account::UsageOf::None)
            .await?
            .vouchers_remaining;
        Ok(BillingQuota {
            total: credit.total,
            remaining: credit.available(),
            postpay_frozen: credit.frozen,
            remaining_voucher,
            force: if suspended { 2 } else { 0 },
        })
    }

    /// QueryCreditByUinList: 1 to 50 UINs, each one of the caller's customers or
    /// second-level resellers.
    pub async fn query_credit_by_uin_list(
        &self,
        caller: Caller,
        uins: &[Uin],
    ) -> EngineResult<Vec<UinCredit>> {
        self.admit(caller, Action::QueryCreditByUinList)?;
        if uins.is_empty() || uins.len() > UIN_LIST_MAX {
            return Err(invalid("UinList", format!("holds 1 to {UIN_LIST_MAX} UINs, got {}", uins.len())));
        }
        let views = self.snapshots(uins).await?;
        for view in &views {
            authorize_child(caller, view)?;
        }
        Ok(views.iter().map(uin_credit).collect())
    }

    /// QueryDirectCustomersCredit: the credit of every direct customer of `partner`.
    pub async fn query_direct_customers_credit(
        &self,
        caller: Caller,
        partner: Uin,
    ) -> EngineResult<Vec<UinCredit>> {
        self.admit(caller, Action::QueryDirectCustomersCredit)?;
        let customers = self.customers_of(caller, partner).await?;
        Ok(customers.iter().map(uin_credit).collect())
    }

    /// QueryCustomersCredit: the partner's customers, filtered, ordered by association time
    /// and paged. Answers the number of matches and one page.
    pub async fn query_customers_credit(
        &self,
        caller: Caller,
        partner: Uin,
        query: &CustomerQuery,
    ) -> EngineResult<(usize, Vec<AccountView>)> {
        self.admit(caller, Action::QueryCustomersCredit)?;
        check_page(query.page, query.page_size, PAGE_SIZE_MAX)?;
        let mut customers = self.customers_of(caller, partner).await?;
        if let Some((field, needle)) = &query.filter {
            customers.retain(|view| customer_matches(view, *field, needle));
        }
        sort_by_association(&mut customers, query.ascending);
        let total = customers.len();
        Ok((total, page_of(customers, query.page, query.page_size)))
    }

    async fn customers_of(&self, caller: Caller, partner: Uin) -> EngineResult<Vec<AccountView>> {
        let view = self.snapshot(partner).await?;
        if !(caller == Caller::Operator || caller.is(partner)) {
            return Err(not_authorized(caller, partner));
        }
        if view.kind() == AccountKind::Customer {
            return Err(wrong_kind(partner, KindRequired::Partner));
        }
        let mut children = self.children_views(partner).await?;
        children.retain(|child| child.kind() == AccountKind::Customer);
        Ok(children)
    }

    /// QueryCreditAllocationHistory: the credit moves a customer (or a second-level
    /// reseller's pool) received, newest first, for its parent or the operator.
    pub async fn query_credit_allocation_history(
        &self,
        caller: Caller,
        receiver: Uin,
        page: usize,
        page_size: usize,
    ) -> EngineResult<(usize, Vec<AllocationRecord>)> {
        self.admit(caller, Action::QueryCreditAllocationHistory)?;
        check_page(page, page_size, PAGE_SIZE_MAX)?;
        let view = self.snapshot(receiver).await?;
        authorize_child(caller, &view)?;
        match self.call(receiver, Command::History { page, page_size }).await? {
            Reply::History { total, records } => Ok((total, records)),
            other => unexpected(other),
        }
    }

    /// DescribeCustomerUin: one page of the UINs of `partner`'s customers, newest binding
    /// first, and how many there are; for the partner itself or the operator.
    pub async fn describe_customer_uins(
        &self,
        caller: Caller,
        partner: Uin,
        page: usize,
        page_size: usize,
    ) -> EngineResult<(usize, Vec<Uin>)> {
        self.admit(caller, Action::DescribeCustomerUin)?;
        check_page(page, page_size, PAGE_SIZE_MAX)?;
        let mut customers = self.customers_of(caller, partner).await?;
        sort_by_association(&mut customers, false);
        let total = customers.len();
        let page = page_of(customers, page, page_size);
        Ok((total, page.iter().map(|view| view.uin).collect()))
    }

    /// DescribeCustomerInfo: 1 to 20 customers, in the order asked, each one of the
    /// caller's customers (or any, for the operator).
    pub async fn describe_customer_info(
        &self,
        caller: Caller,
        customers: &[Uin],
    ) -> EngineResult<Vec<AccountView>> {
        self.admit(caller, Action::DescribeCustomerInfo)?;
        if customers.is_empty() || customers.len() > CUSTOMER_INFO_MAX {
            return Err(invalid(
                "CustomerUin",
                format!("holds 1 to {CUSTOMER_INFO_MAX} UINs, got {}", customers.len()),
            ));
        }
        let views = self.snapshots(customers).await?;
        for view in &views {
            authorize_child(caller, view)?;
            if view.kind() != AccountKind::Customer {
                return Err(wrong_kind(view.uin, KindRequired::Customer));
            }
        }
        Ok(views)
    }

    /// QuerySubAgentsDetailV2: a distributor's second-level resellers, filtered, ordered by
    /// binding time and paged; for the distributor itself or the operator. Answers the
    /// number of matches and one page.
    pub async fn query_sub_agents_detail(
        &self,
        caller: Caller,
        distributor: Uin,
        query: &SubAgentQuery,
    ) -> EngineResult<(usize, Vec<AccountView>)> {
        self.admit(caller, Action::QuerySubAgentsDetailV2)?;
        check_page(query.page, query.page_size, SUB_AGENT_PAGE_SIZE_MAX)?;
        let view = self.snapshot(distributor).await?;
        if !(caller == Caller::Operator || caller.is(distributor)) {
            return Err(not_authorized(caller, distributor));
        }
        if view.kind() != AccountKind::Distributor {
            return Err(wrong_kind(distributor, KindRequired::Distributor));
        }
        let mut sub_agents = self.children_views(distributor).await?;
        sub_agents.retain(|child| child.kind() == AccountKind::SecondLevelReseller);
        if let Some((field, needle)) = &query.filter {
            let parent_of_client = match field {
                SubAgentFilterField::ClientUin => self.parent_of_customer(needle).await?,
                _ => None,
            };
            sub_agents.retain(|view| sub_agent_matches(view, *field, needle, parent_of_client));
        }
        sort_by_association(&mut sub_agents, query.ascending);
        let total = sub_agents.len();
        Ok((total, page_of(sub_agents, query.page, query.page_size)))
    }

    /// The parent of the customer whose UIN is `text`, if there is one.
    async fn parent_of_customer(&self, text: &str) -> EngineResult<Option<Uin>> {
        let Ok(uin) = text.parse::<u64>() else {
            return Ok(None);
        };
        match self.snapshot(Uin(uin)).await {
            Ok(view) if view.kind() == AccountKind::Customer => Ok(view.parent()),
            Ok(_) | Err(Error::Rejected(Rejection::UnknownUin(_))) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// QueryT1IndirectCustomersDetail: one page of a second-level reseller's customers,
    /// newest binding first; for its distributor or the operator.
    pub async fn query_t1_indirect_customers(
        &self,
        caller: Caller,
        sub_agent: Uin,
        page: usize,
        page_size: usize,
    ) -> EngineResult<IndirectCustomers> {
        self.admit(caller, Action::QueryT1IndirectCustomersDetail)?;
        check_page(page, page_size, SUB_AGENT_PAGE_SIZE_MAX)?;
        let view = self.snapshot(sub_agent).await?;
        authorize_child(caller, &view)?;
        if view.kind() != AccountKind::SecondLevelReseller {
            return Err(wrong_kind(sub_agent, KindRequired::SecondLevelReseller));
        }
        let mut customers = self.children_views(sub_agent).await?;
        customers.retain(|child| child.kind() == AccountKind::Customer);
        sort_by_association(&mut customers, false);
        let total = customers.len();
        Ok(IndirectCustomers { sub_agent: view, total, customers: page_of(customers, page, page_size) })
    }

    /// Every account's state, for audits. Not paged: meant for tests, the load generator's
    /// audit and operators.
    pub async fn all_accounts(&self) -> EngineResult<Vec<AccountView>> {
        let mut uins = self.runtime.uins();
        uins.sort_unstable();
        let mut views = Vec::with_capacity(uins.len());
        // In chunks, so that a large world does not put every request in flight at once.
        for chunk in uins.chunks(4096) {
            views.extend(self.snapshots(chunk).await?);
        }
        Ok(views)
    }

    /// Reads every account and checks the books (see [`Audit`]). Meant for a quiescent
    /// engine: operations in flight show up as imbalances.
    pub async fn audit(&self) -> EngineResult<Audit> {
        Ok(Audit::of(&self.all_accounts().await?))
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
        self.runtime.shutdown();
    }
}

async fn call(runtime: &Runtime, uin: Uin, command: Command) -> EngineResult<Reply> {
    Ok(runtime.call(uin, command).await??)
}

/// The direct children an account lists (creations in progress included).
async fn children(runtime: &Runtime, uin: Uin) -> EngineResult<Vec<Uin>> {
    match call(runtime, uin, Command::Children).await? {
        Reply::Children(children) => Ok(children),
        other => unexpected(other),
    }
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

fn profile(name: Option<String>, email: Option<String>) -> Option<Profile> {
    if name.is_none() && email.is_none() {
        return None;
    }
    Some(Profile {
        name: name.map(String::into_boxed_str),
        email: email.map(String::into_boxed_str),
        remark: None,
    })
}

fn customer_matches(view: &AccountView, field: CustomerFilterField, needle: &str) -> bool {
    let text = |value: &Option<Box<str>>| value.as_deref().is_some_and(|text| text.contains(needle));
    match field {
        CustomerFilterField::ClientUin => view.uin.to_string() == needle,
        CustomerFilterField::Name => text(&view.profile.name),
        CustomerFilterField::Remark => text(&view.profile.remark),
        CustomerFilterField::Email => text(&view.profile.email),
    }
}

fn sub_agent_matches(
    view: &AccountView,
    field: SubAgentFilterField,
    needle: &str,
    parent_of_client: Option<Uin>,
) -> bool {
    let contains = |value: &Option<Box<str>>| value.as_deref().is_some_and(|text| text.contains(needle));
    match field {
        SubAgentFilterField::Name => contains(&view.profile.name),
        SubAgentFilterField::SubAgentUin => view.uin.to_string() == needle,
        SubAgentFilterField::Remark => contains(&view.profile.remark),
        SubAgentFilterField::Mobile => false,
        SubAgentFilterField::Email => view.profile.email.as_deref() == Some(needle),
        SubAgentFilterField::ClientUin => parent_of_client == Some(view.uin),
    }
}

/// Orders by association (binding) time, then UIN, so that equal times page stably.
fn sort_by_association(views: &mut [AccountView], ascending: bool) {
    views.sort_by_key(|view| (view.created, view.uin));
    if !ascending {
        views.reverse();
    }
}

/// Page `page` (from 1) of `page_size` items.
fn page_of<T>(items: Vec<T>, page: usize, page_size: usize) -> Vec<T> {
    let skip = page.saturating_sub(1).saturating_mul(page_size);
    items.into_iter().skip(skip).take(page_size).collect()
}

fn uin_credit(view: &AccountView) -> UinCredit {
    UinCredit { uin: view.uin, total: view.total(), remaining: view.available() }
}

fn require_operator(caller: Caller, action: &'static str) -> Result<(), Error> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::Uin(_) => Err(Rejection::OperatorOnly(action).into()),
    }
}

/// The longest remark kept (of a customer, or of an allocation), in characters.
pub const REMARK_MAX: usize = 256;

fn check_remark(remark: &str) -> Result<(), Error> {
    if remark.chars().count() > REMARK_MAX {
        return Err(invalid("Remark", format!("has more than {REMARK_MAX} characters")));
    }
    Ok(())
}

fn require_positive(amount: Money) -> Result<(), Error> {
    if amount.is_positive() {
        Ok(())
    } else {
        Err(Rejection::InvalidAmount(amount, "a purchase amount must be greater than 0").into())
    }
}

fn require_nonzero(amount: Money) -> Result<(), Error> {
    if amount.is_zero() {
        Err(Rejection::InvalidAmount(amount, "a credit change of 0 changes nothing").into())
    } else {
        Ok(())
    }
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

/// The account itself, its parent, or the operator.
fn authorize_view(caller: Caller, view: &AccountView) -> Result<(), Error> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::Uin(uin) if uin == view.uin || Some(uin) == view.parent() => Ok(()),
        Caller::Uin(_) => Err(not_authorized(caller, view.uin)),
    }
}

/// The account's parent or the operator.
fn authorize_child(caller: Caller, view: &AccountView) -> Result<(), Error> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::Uin(uin) if Some(uin) == view.parent() => Ok(()),
        Caller::Uin(_) => Err(not_authorized(caller, view.uin)),
    }
}

fn not_authorized(caller: Caller, target: Uin) -> Error {
    Rejection::NotAuthorized { caller: caller.to_string(), target }.into()
}

fn wrong_kind(uin: Uin, required: KindRequired) -> Error {
    Rejection::WrongKind { uin, required }.into()
}

fn invalid(parameter: &'static str, reason: String) -> Error {
    Rejection::InvalidParameter { parameter, reason }.into()
}

fn unexpected<T>(reply: Reply) -> EngineResult<T> {
    Err(Failure::Internal(format!("unexpected reply {reply:?}")).into())
}

fn unexpected_outcome<T>(outcome: Outcome) -> EngineResult<T> {
    Err(Failure::Internal(format!("unexpected outcome {outcome:?}")).into())
}
