//! How actors map to threads. The engine talks to one [`Runtime`]; each runtime owns the
//! account actors and the coordinator partitions and delivers their messages its own way.
//!
//! The seam is deliberately narrow: send one [`Command`] to one account, run one purchase
//! protocol operation at the coordinator partition that owns its purchase id, run a batch of
//! purchases, expire due reservations, create accounts. It is an enum rather than a trait
//! object so that the purchase path pays no virtual call or boxed future for the dispatch.
//!
//! Invariant: all account and purchase state lives inside actors of the runtime; the engine
//! holds none.

pub mod actix;
pub mod sharded;
mod slots;

use std::sync::Arc;

use crate::clock::Clock;
use crate::coordinator::{LedgerLimits, Mode, Outcome, PurchaseReceipt, PurchaseRequest};
use crate::domain::warning::{Crossings, WarningLevel};
use crate::domain::{Account, Caller, Command, PurchaseId, Rejection, Reply, Role, Timestamp, Uin};
use crate::events::{CreditWarning, Event, EventBus};

/// The runtimes the engine can run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// One executor thread per core owning the actors of its shard; batched messages.
    #[default]
    Sharded,
    /// One actix actor per UIN, one coordinator actor per worker thread (the reference).
    Actix,
}

impl RuntimeKind {
    pub const ALL: [RuntimeKind; 2] = [RuntimeKind::Sharded, RuntimeKind::Actix];

    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Sharded => "sharded",
            RuntimeKind::Actix => "actix",
        }
    }
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;
    fn from_str(text: &str) -> Result<RuntimeKind, String> {
        match text {
            "sharded" => Ok(RuntimeKind::Sharded),
            "actix" => Ok(RuntimeKind::Actix),
            other => Err(format!("unknown runtime '{other}': the runtimes are: sharded, actix")),
        }
    }
}

/// Settings every runtime takes.
#[derive(Clone, Debug)]
pub struct RuntimeSettings {
    /// Worker threads; also the number of coordinator partitions.
    pub workers: usize,
    /// Messages an account actor's mailbox holds before senders wait.
    pub mailbox_capacity: usize,
    /// Limits of each coordinator partition.
    pub ledger_limits: LedgerLimits,
    /// How often coordinators release reservations past their deadline.
    pub expiry_sweep_interval_ms: u64,
    /// Partners whose available credit the sharded runtime splits into per-shard slices.
    pub escrow_partners: Vec<Uin>,
    /// Where credit warnings go.
    pub events: Arc<EventBus>,
}

/// Publishes one event per warning level a command on `account` crossed (callers skip it,
/// and the clock read for `now`, when it crossed none).
pub(crate) fn publish_warnings(events: &EventBus, account: &Account, crossings: Crossings, now: Timestamp) {
    let Role::Customer { parent, credit, .. } = &account.role else { return };
    let (partner_threshold, own_threshold) = account.thresholds();
    for level in crossings.iter() {
        let threshold = match level {
            WarningLevel::PartnerCustom => partner_threshold,
            WarningLevel::CustomerCustom => own_threshold,
            _ => None,
        };
        events.publish(Event::CreditWarning(CreditWarning {
            customer: account.uin,
            partner: *parent,
            level,
            threshold,
            total: credit.total,
            available: credit.available(),
            time: now,
        }));
    }
}

/// The partner each customer's purchases charge, as a coordinator that lives apart from the
/// accounts learns it from its sagas: what a repeat's answer names (see
/// [`crate::coordinator::ChargedOf`]). At most one entry per customer; it never changes.
#[derive(Debug, Default)]
pub(crate) struct ChargedCache(rustc_hash::FxHashMap<Uin, Uin>);

impl ChargedCache {
    /// Learns the partner of `saga`'s customer, once it knows it.
    pub fn learn(&mut self, saga: &crate::coordinator::Saga) {
        if let Some(charged) = saga.charged() {
            self.0.entry(saga.customer()).or_insert(charged);
        }
    }

    pub fn get(&self, customer: Uin) -> Option<Uin> {
        self.0.get(&customer).copied()
    }
}

/// One step of an engine operation over several accounts (see `engine::intents`): the
/// shard writes it to the journal even if it changes nothing, and notes its answer, so that
/// after a crash the operation can be finished from where it stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct StepTag {
    pub intent: u64,
    pub step: u32,
}

/// The answers the steps of unfinished operations got, in the order the shards applied
/// them: written under a shard's lock, so a snapshot taken with every shard held sees
/// exactly the steps its state holds.
#[derive(Debug, Default)]
pub struct StepAnswers(parking_lot::Mutex<rustc_hash::FxHashMap<u64, StepsOf>>);

/// The answers of one operation's steps, by step.
pub type StepsOf = std::collections::BTreeMap<u32, Result<Reply, Rejection>>;

impl StepAnswers {
    pub fn record(&self, tag: StepTag, answer: &Result<Reply, Rejection>) {
        self.0.lock().entry(tag.intent).or_default().insert(tag.step, answer.clone());
    }

    /// The answers of `intent`'s steps so far.
    pub fn of(&self, intent: u64) -> StepsOf {
        self.0.lock().get(&intent).cloned().unwrap_or_default()
    }

    pub fn forget(&self, intent: u64) {
        self.0.lock().remove(&intent);
    }

    /// Replaces every answer (a snapshot's).
    pub fn restore(&self, answers: impl IntoIterator<Item = (u64, StepsOf)>) {
        *self.0.lock() = answers.into_iter().collect();
    }
}

/// A failure of the system, as opposed to a refusal: the operation's outcome is unknown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("the engine's runtime has stopped")]
    Stopped,
    #[error("internal error: {0}")]
    Internal(String),
    /// The journal could not make the answer durable (a write or fsync failed): the
    /// operation may or may not survive a restart, and the engine takes no more.
    #[error("the journal failed, so the outcome is unknown: {0}")]
    Journal(String),
}

/// One purchase-protocol operation for the coordinator partition of its purchase id.
#[derive(Clone, Debug)]
pub enum CoordinatorOp {
    Begin { caller: Caller, request: PurchaseRequest, mode: Mode },
    Commit { caller: Caller, id: PurchaseId },
    Cancel { caller: Caller, id: PurchaseId },
}

impl CoordinatorOp {
    pub fn id(&self) -> &PurchaseId {
        match self {
            CoordinatorOp::Begin { request, .. } => &request.id,
            CoordinatorOp::Commit { id, .. } | CoordinatorOp::Cancel { id, .. } => id,
        }
    }
}

pub(crate) enum Runtime {
    Sharded(sharded::ShardedRuntime),
    Actix(actix::ActixRuntime),
}

impl Runtime {
    pub fn start(kind: RuntimeKind, settings: RuntimeSettings, clock: Arc<dyn Clock>) -> Runtime {
        match kind {
            RuntimeKind::Sharded => Runtime::Sharded(sharded::ShardedRuntime::start(settings, clock)),
            RuntimeKind::Actix => Runtime::Actix(actix::ActixRuntime::start(settings, clock)),
        }
    }

    pub async fn call(&self, uin: Uin, command: Command) -> Result<Result<Reply, Rejection>, Failure> {
        match self {
            Runtime::Sharded(runtime) => runtime.call(uin, command).await,
            Runtime::Actix(runtime) => runtime.call(uin, command).await,
        }
    }

    /// A call that is one step of an operation over several accounts (see [`StepTag`]),
    /// made only by a journalled engine; the actix runtime keeps no journal and makes it a
    /// plain call.
    pub async fn call_step(
        &self,
        uin: Uin,
        command: Command,
        tag: StepTag,
    ) -> Result<Result<Reply, Rejection>, Failure> {
        match self {
            Runtime::Sharded(runtime) => runtime.call_step(uin, command, tag).await,
            Runtime::Actix(runtime) => runtime.call(uin, command).await,
        }
    }

    /// The step answers of the sharded runtime (the actix runtime keeps none).
    pub fn step_answers(&self) -> Option<&Arc<StepAnswers>> {
        match self {
            Runtime::Sharded(runtime) => Some(runtime.step_answers()),
            Runtime::Actix(_) => None,
        }
    }

    pub async fn coordinate(&self, op: CoordinatorOp) -> Result<Result<Outcome, Rejection>, Failure> {
        match self {
            Runtime::Sharded(runtime) => runtime.coordinate(op).await,
            Runtime::Actix(runtime) => runtime.coordinate(op).await,
        }
    }

    pub async fn purchase_batch(
        &self,
        caller: Caller,
        requests: Vec<PurchaseRequest>,
    ) -> Result<Vec<Result<PurchaseReceipt, Rejection>>, Failure> {
        match self {
            Runtime::Sharded(runtime) => runtime.purchase_batch(caller, requests).await,
            Runtime::Actix(runtime) => runtime.purchase_batch(caller, requests).await,
        }
    }

    pub async fn expire_due(&self) -> Result<usize, Failure> {
        match self {
            Runtime::Sharded(runtime) => runtime.expire_due().await,
            Runtime::Actix(runtime) => runtime.expire_due().await,
        }
    }

    /// Creates all accounts or, if any UIN is taken, none.
    pub async fn spawn(&self, accounts: Vec<Account>) -> Result<Result<(), Rejection>, Failure> {
        match self {
            Runtime::Sharded(runtime) => runtime.spawn(accounts).await,
            Runtime::Actix(runtime) => runtime.spawn(accounts).await,
        }
    }

    pub fn contains(&self, uin: Uin) -> bool {
        match self {
            Runtime::Sharded(runtime) => runtime.contains(uin),
            Runtime::Actix(runtime) => runtime.contains(uin),
        }
    }

    /// Whether `partner`'s available credit is split into per-shard slices (only the sharded
    /// runtime escrows, and only with more than one shard).
    pub fn is_escrowed(&self, partner: Uin) -> bool {
        match self {
            Runtime::Sharded(runtime) => runtime.is_escrowed(partner),
            Runtime::Actix(_) => false,
        }
    }

    pub fn uins(&self) -> Vec<Uin> {
        match self {
            Runtime::Sharded(runtime) => runtime.uins(),
            Runtime::Actix(runtime) => runtime.uins(),
        }
    }

    /// Open reservations over all coordinator partitions.
    pub async fn open_reservations(&self) -> Result<usize, Failure> {
        match self {
            Runtime::Sharded(runtime) => runtime.open_reservations().await,
            Runtime::Actix(runtime) => runtime.open_reservations().await,
        }
    }

    /// A consistent copy of every shard and what `cut` answers at that instant (see
    /// [`sharded::ShardedRuntime::image`]); `None` on the actix runtime, which keeps no
    /// journal.
    pub async fn image<T>(&self, cut: impl FnOnce() -> T) -> Option<(sharded::RuntimeImage, T)> {
        match self {
            Runtime::Sharded(runtime) => Some(runtime.image(cut).await),
            Runtime::Actix(_) => None,
        }
    }

    pub fn shutdown(&self) {
        match self {
            Runtime::Sharded(runtime) => runtime.shutdown(),
            Runtime::Actix(runtime) => runtime.shutdown(),
        }
    }
}
