//! The purchase coordinator: the ledger of purchases and the two-phase saga, as pure state
//! machines that every runtime drives.
//!
//! Purchases are partitioned by a hash of their id; each partition is one [`Ledger`], owned
//! by one coordinator actor of the runtime. The ledger decides what a request means for the
//! purchase's record (new, a repeat, a conflict, too late) and hands out a [`Saga`]: the
//! sequence of account commands that carries it out. The runtime sends each command the
//! saga asks for to the account's actor and feeds the reply back, until the saga is done;
//! then [`Ledger::finish`] records the result and gives the answer.
//!
//! The protocol, per purchase id:
//!
//! ```text
//!            reserve / purchase            commit
//!   (none) ──────────────────► InFlight ─► Reserved ───────► Committed
//!                                 │            │  cancel
//!                                 │            ├───────────► Cancelled
//!                                 │            │  deadline
//!                                 │            └───────────► Expired
//!                                 ├──(one-shot purchase)───► Committed
//!                                 └──(refused)─────────────► Refused
//! ```
//!
//! Invariants:
//! - every amount reserved on an account belongs to exactly one record in `InFlight` or
//!   `Reserved`, or to a commit or release saga that is running; sagas always run to the end;
//! - a record's state changes only in this file, under the partition's actor;
//! - a terminal record is forgotten only after the retention window or when the partition
//!   holds more than its share of `resolved_capacity`; a repeat after that is a new purchase.

use std::collections::{BTreeSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

use compact_str::CompactString;

use crate::domain::account::{Goods, Settlement};
use crate::domain::voucher::{Deductions, PayMode};
use crate::domain::{Caller, Command, Money, Month, PurchaseId, Rejection, Reply, Timestamp, Uin};

/// A purchase as a client asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseRequest {
    pub id: PurchaseId,
    pub customer: Uin,
    pub amount: Money,
    /// What is bought, for voucher scopes.
    pub product_code: Option<CompactString>,
    /// How it is paid, for voucher payment modes.
    pub pay: PayMode,
}

impl PurchaseRequest {
    pub fn new(id: PurchaseId, customer: Uin, amount: Money) -> PurchaseRequest {
        PurchaseRequest { id, customer, amount, product_code: None, pay: PayMode::Prepaid }
    }
}

/// The voucher deductions a purchase holds on each side. Both empty (no allocation) for a
/// purchase no voucher covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holds {
    pub customer: Deductions,
    pub partner: Deductions,
    /// What each side deducted in all, kept when the deductions themselves have moved on
    /// (into a commit's settlement).
    totals: [Money; 2],
}

impl Holds {
    fn is_empty(&self) -> bool {
        self.customer.is_empty() && self.partner.is_empty()
    }
}

/// What a purchase deducted from vouchers and charged to credit, on each side: for each,
/// deduction + charge = the amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charges {
    pub customer_deduction: Money,
    pub partner_deduction: Money,
    pub customer_charge: Money,
    pub partner_charge: Money,
}

/// What a receipt keeps to answer [`Charges`]: the amount, and the two deductions when
/// vouchers made any (boxed: most purchases have none, and every ledger record keeps its
/// first answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spent {
    amount: Money,
    deductions: Deducted,
}

impl Spent {
    fn new(amount: Money, customer_deduction: Money, partner_deduction: Money) -> Spent {
        let none = customer_deduction.is_zero() && partner_deduction.is_zero();
        Spent { amount, deductions: (!none).then(|| Box::new([customer_deduction, partner_deduction])) }
    }

    pub fn charges(&self) -> Charges {
        let [customer_deduction, partner_deduction] = self.deductions.as_deref().copied().unwrap_or_default();
        Charges {
            customer_deduction,
            partner_deduction,
            customer_charge: self.amount - customer_deduction,
            partner_charge: self.amount - partner_deduction,
        }
    }
}

/// How a purchase is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Reserve and commit in one call.
    OneShot,
    /// Reserve only; commit or cancel later, before `timeout_ms` has passed.
    Reserve { timeout_ms: i64 },
}

/// The answer to a purchase-protocol request that was not refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Purchased(PurchaseReceipt),
    Reserved(ReservationReceipt),
    Committed(PurchaseId),
    Cancelled(PurchaseId),
}

/// A committed one-shot purchase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseReceipt {
    pub id: PurchaseId,
    /// The partner charged: the reseller, or the distributor of a second-level reseller.
    pub charged: Uin,
    pub customer_available: Money,
    pub partner_available: Money,
    spent: Spent,
}

impl PurchaseReceipt {
    /// What each side's vouchers deducted and each side's credit paid.
    pub fn charges(&self) -> Charges {
        self.spent.charges()
    }
}

/// An open reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationReceipt {
    pub id: PurchaseId,
    pub charged: Uin,
    /// After this instant the engine releases the reservation.
    pub deadline: Timestamp,
    spent: Spent,
}

impl ReservationReceipt {
    /// What each side's vouchers hold and each side's credit holds.
    pub fn charges(&self) -> Charges {
        self.spent.charges()
    }
}

/// Limits of one ledger partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerLimits {
    /// How long a resolved purchase id is remembered for idempotent repeats.
    pub resolved_retention_ms: i64,
    /// How many resolved purchase ids this partition remembers at most.
    pub resolved_capacity: usize,
    /// How many reservations may be open at once in this partition.
    pub open_reservations_max: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Content {
    customer: Uin,
    amount: Money,
    /// What vouchers need to know of the purchase, built once and shared with its sagas:
    /// nothing (no allocation) for the plain one. Compared by value for repeats.
    goods: Option<Arc<Goods>>,
    mode: Mode,
}

impl Content {
    fn goods(product_code: Option<CompactString>, pay: PayMode) -> Option<Arc<Goods>> {
        if product_code.is_none() && pay == PayMode::Prepaid {
            return None;
        }
        Some(Arc::new(Goods { product: product_code, pay }))
    }
}

#[derive(Clone, Debug)]
enum State {
    InFlight,
    Reserved {
        charged: Uin,
        deadline: Timestamp,
        /// The bill month its charges are booked to: the month it was reserved in.
        month: Month,
        /// Boxed: most reservations hold no voucher deduction.
        holds: Option<Box<Holds>>,
    },
    Committed,
    Cancelled,
    Expired,
    Refused,
}

#[derive(Clone, Debug)]
struct Record {
    content: Content,
    state: State,
    /// The answer to the request that created the record, repeated to identical requests.
    first: Option<First>,
    /// When the record reached a final state; `None` while in flight or reserved.
    resolved_at: Option<Timestamp>,
    /// A commit or release saga is applying the record's final state: requests for it wait
    /// (`PurchaseInProgress`) so that no answer runs ahead of the books.
    settling: bool,
}

/// The answer to the request that created a record, kept compactly: the id and the amount
/// are the record's own, so a repeat's answer is rebuilt from them.
#[derive(Clone, Debug)]
enum First {
    Purchased { charged: Uin, customer_available: Money, partner_available: Money, deductions: Deducted },
    Reserved { charged: Uin, deadline: Timestamp, deductions: Deducted },
    Refused(Rejection),
}

/// The customer's and the partner's voucher deductions; `None` when both are zero.
type Deducted = Option<Box<[Money; 2]>>;

impl First {
    fn answer(&self, id: &PurchaseId, amount: Money) -> Result<Outcome, Rejection> {
        match self {
            First::Purchased { charged, customer_available, partner_available, deductions } => {
                Ok(Outcome::Purchased(PurchaseReceipt {
                    id: id.clone(),
                    charged: *charged,
                    customer_available: *customer_available,
                    partner_available: *partner_available,
                    spent: Spent { amount, deductions: deductions.clone() },
                }))
            }
            First::Reserved { charged, deadline, deductions } => Ok(Outcome::Reserved(ReservationReceipt {
                id: id.clone(),
                charged: *charged,
                deadline: *deadline,
                spent: Spent { amount, deductions: deductions.clone() },
            })),
            First::Refused(rejection) => Err(rejection.clone()),
        }
    }
}

/// What a runtime does next for a request.
#[derive(Debug)]
pub enum Next {
    /// Drive this saga to its end, then call [`Ledger::finish`].
    Run(Saga),
    /// Answer at once; nothing changes.
    Answer(Result<Outcome, Rejection>),
}

/// One partition of the purchase ledger.
#[derive(Debug)]
pub struct Ledger {
    limits: LedgerLimits,
    records: Records,
    /// Open reservations by deadline, for expiry.
    deadlines: BTreeSet<(Timestamp, PurchaseId)>,
    open_reservations: usize,
    /// The last month computed and its bounds, so that most purchases compute none.
    month: (Timestamp, Timestamp, Month),
}

impl Ledger {
    pub fn new(limits: LedgerLimits) -> Ledger {
        assert!(
            limits.resolved_capacity.saturating_add(limits.open_reservations_max) <= Records::LIVE_MAX,
            "a ledger partition holds at most {} records (resolved capacity plus open reservations)",
            Records::LIVE_MAX
        );
        let month = Month::of(Timestamp(0));
        Ledger {
            limits,
            records: Records::default(),
            deadlines: BTreeSet::new(),
            open_reservations: 0,
            month: (month.start(), month.end(), month),
        }
    }

    /// The bill month of `now`.
    fn month_of(&mut self, now: Timestamp) -> Month {
        let (start, end, month) = self.month;
        if start <= now && now < end {
            return month;
        }
        let month = Month::of(now);
        self.month = (month.start(), month.end(), month);
        month
    }

    /// A one-shot purchase or a reservation by `caller`.
    pub fn begin(&mut self, caller: Caller, request: PurchaseRequest, mode: Mode, now: Timestamp) -> Next {
        let content = Content {
            customer: request.customer,
            amount: request.amount,
            goods: Content::goods(request.product_code, request.pay),
            mode,
        };
        // Authorize before anything is recorded, so that nobody can claim another customer's
        // purchase id with a refused request.
        if !(caller == Caller::Operator || caller.is(content.customer)) {
            return Next::Answer(Err(not_authorized(caller, content.customer)));
        }
        if let Some(record) = self.records.get(&request.id) {
            if !(caller == Caller::Operator || caller.is(record.content.customer)) {
                return Next::Answer(Err(not_authorized(caller, record.content.customer)));
            }
            if record.content != content {
                return Next::Answer(Err(Rejection::PurchaseIdConflict(request.id)));
            }
            return Next::Answer(match &record.first {
                Some(first) => first.answer(&request.id, record.content.amount),
                None => Err(Rejection::PurchaseInProgress(request.id)),
            });
        }
        if matches!(mode, Mode::Reserve { .. }) && self.open_reservations >= self.limits.open_reservations_max
        {
            return Next::Answer(Err(Rejection::TooManyOpenReservations(self.limits.open_reservations_max)));
        }
        self.evict(now);
        let mut saga = Saga::start(
            request.id.clone(),
            match mode {
                Mode::OneShot => SagaKind::OneShot,
                Mode::Reserve { .. } => SagaKind::Reserve,
            },
            caller,
            content.customer,
            None,
            content.amount,
            Stamp { now, month: self.month_of(now), goods: content.goods.clone() },
            Holds::default(),
        );
        if matches!(mode, Mode::Reserve { .. }) {
            self.open_reservations += 1;
        }
        saga.record = self.records.insert(
            request.id,
            Record { content, state: State::InFlight, first: None, settling: false, resolved_at: None },
        );
        Next::Run(saga)
    }

    /// Phase two of a reservation: its amounts become used.
    pub fn commit(&mut self, caller: Caller, id: PurchaseId, now: Timestamp) -> Next {
        self.resolve(caller, id, now, true)
    }

    /// Releases a reservation.
    pub fn cancel(&mut self, caller: Caller, id: PurchaseId, now: Timestamp) -> Next {
        self.resolve(caller, id, now, false)
    }

    fn resolve(&mut self, caller: Caller, id: PurchaseId, now: Timestamp, commit: bool) -> Next {
        let Some(record) = self.records.get_mut(&id) else {
            return Next::Answer(Err(Rejection::UnknownPurchase(id)));
        };
        let customer = record.content.customer;
        if !(caller == Caller::Operator || caller.is(customer)) {
            return Next::Answer(Err(not_authorized(caller, customer)));
        }
        if record.content.mode == Mode::OneShot {
            return Next::Answer(Err(Rejection::NotAReservation(id)));
        }
        if record.settling {
            return Next::Answer(Err(Rejection::PurchaseInProgress(id)));
        }
        let answer = match (&mut record.state, commit) {
            (State::InFlight, _) => Err(Rejection::PurchaseInProgress(id.clone())),
            (State::Reserved { charged, deadline, month, holds }, _) => {
                let (charged, deadline, month) = (*charged, *deadline, *month);
                let holds = holds.take().map_or_else(Holds::default, |holds| *holds);
                let goods = if holds.is_empty() { None } else { record.content.goods.clone() };
                let amount = record.content.amount;
                let (kind, state) = if now >= deadline {
                    (SagaKind::Release { expired: true }, State::Expired)
                } else if commit {
                    (SagaKind::Commit, State::Committed)
                } else {
                    (SagaKind::Release { expired: false }, State::Cancelled)
                };
                record.state = state;
                record.settling = true;
                record.resolved_at = Some(now);
                self.records.unresolved -= 1;
                self.deadlines.remove(&(deadline, id.clone()));
                self.open_reservations -= 1;
                let stamp = Stamp { now, month, goods };
                let saga = Saga::start(id, kind, caller, customer, Some(charged), amount, stamp, holds);
                return Next::Run(saga);
            }
            (State::Committed, true) => Ok(Outcome::Committed(id)),
            (State::Committed, false) => Err(Rejection::AlreadyCommitted(id)),
            (State::Cancelled, true) => Err(Rejection::AlreadyCancelled(id)),
            (State::Cancelled, false) => Ok(Outcome::Cancelled(id)),
            (State::Expired, _) => Err(Rejection::ReservationExpired(id)),
            (State::Refused, _) => match &record.first {
                Some(First::Refused(rejection)) => Err(rejection.clone()),
                _ => unreachable!("a refused record keeps its refusal"),
            },
        };
        Next::Answer(answer)
    }

    /// Records the end of a saga and gives the answer for the request that started it.
    pub fn finish(&mut self, mut saga: Saga, end: SagaEnd, now: Timestamp) -> Result<Outcome, Rejection> {
        let [customer_deduction, partner_deduction] =
            saga.holds.as_deref().map_or([Money::ZERO; 2], |holds| holds.totals);
        let spent = Spent::new(saga.amount, customer_deduction, partner_deduction);
        let holds = saga.holds.take().map_or_else(Holds::default, |holds| *holds);
        let month = saga.stamp.month;
        let near = saga.record;
        let id = saga.id;
        if end == SagaEnd::Settled {
            // The record may have been forgotten meanwhile (capacity); then nobody waits.
            if let Some(record) = self.records.get_mut(&id) {
                record.settling = false;
            }
        }
        match (saga.kind, end) {
            (SagaKind::OneShot | SagaKind::Reserve, SagaEnd::Refused(rejection)) => {
                let record = self.records.resolve_mut(&id, near, now);
                if matches!(record.content.mode, Mode::Reserve { .. }) {
                    self.open_reservations -= 1;
                }
                record.state = State::Refused;
                record.first = Some(First::Refused(rejection.clone()));
                Err(rejection)
            }
            (SagaKind::OneShot, SagaEnd::Purchased { charged, customer_available, partner_available }) => {
                let record = self.records.resolve_mut(&id, near, now);
                record.state = State::Committed;
                let deductions = spent.deductions.clone();
                record.first =
                    Some(First::Purchased { charged, customer_available, partner_available, deductions });
                Ok(Outcome::Purchased(PurchaseReceipt {
                    id,
                    charged,
                    customer_available,
                    partner_available,
                    spent,
                }))
            }
            (SagaKind::Reserve, SagaEnd::Reserved { charged }) => {
                let position = self.records.near(&id, near).expect("in-flight record");
                let record = &mut self.records.ring[position].record;
                let Mode::Reserve { timeout_ms } = record.content.mode else {
                    unreachable!("a reserve saga belongs to a reservation")
                };
                // The deadline counts from the moment the reservation holds on both sides.
                let deadline = now.plus_ms(timeout_ms);
                let holds = if holds.is_empty() { None } else { Some(Box::new(holds)) };
                record.state = State::Reserved { charged, deadline, month, holds };
                record.first =
                    Some(First::Reserved { charged, deadline, deductions: spent.deductions.clone() });
                self.deadlines.insert((deadline, id.clone()));
                Ok(Outcome::Reserved(ReservationReceipt { id, charged, deadline, spent }))
            }
            (SagaKind::Commit, SagaEnd::Settled) => Ok(Outcome::Committed(id)),
            (SagaKind::Release { expired: false }, SagaEnd::Settled) => Ok(Outcome::Cancelled(id)),
            (SagaKind::Release { expired: true }, SagaEnd::Settled) => Err(Rejection::ReservationExpired(id)),
            (kind, end) => unreachable!("saga {kind:?} cannot end with {end:?}"),
        }
    }

    /// Expires every reservation whose deadline is at or before `now`; each returned saga
    /// releases one. Also forgets resolved ids past the retention window.
    pub fn expire_due(&mut self, now: Timestamp) -> Vec<Saga> {
        let mut sagas = Vec::new();
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > now {
                break;
            }
            let (_, id) = self.deadlines.pop_first().expect("first exists");
            let record = self.records.resolve_mut(&id, u64::MAX, now);
            let State::Reserved { charged, month, ref mut holds, .. } = record.state else {
                unreachable!("only reserved records have deadlines")
            };
            let holds = holds.take().map_or_else(Holds::default, |holds| *holds);
            record.state = State::Expired;
            record.settling = true;
            self.open_reservations -= 1;
            let customer = record.content.customer;
            let amount = record.content.amount;
            let kind = SagaKind::Release { expired: true };
            let stamp = Stamp { now, month, goods: None };
            sagas.push(Saga::start(
                id,
                kind,
                Caller::Operator,
                customer,
                Some(charged),
                amount,
                stamp,
                holds,
            ));
        }
        self.evict(now);
        sagas
    }

    /// Looks `id` up, so that its place in the index is in the cache when `begin` needs it
    /// (see the sharded runtime's warming).
    pub fn warm(&self, id: &PurchaseId) {
        std::hint::black_box(self.records.position(id));
    }

    /// Reads the ledger record `saga` will resolve, so that it is in the cache when it ends.
    pub fn warm_record(&self, saga: &Saga) {
        let offset = saga.record.checked_sub(self.records.first_sequence);
        let entry = offset.and_then(|offset| self.records.ring.get(offset as usize));
        std::hint::black_box(
            entry.map(|entry| (entry.id.as_str().len(), entry.record.resolved_at.is_some())),
        );
    }

    /// Forgets the oldest resolved records beyond the retention window or the capacity.
    fn evict(&mut self, now: Timestamp) {
        self.records.evict(now, self.limits.resolved_retention_ms, self.limits.resolved_capacity);
    }

    pub fn open_reservations(&self) -> usize {
        self.open_reservations
    }

    /// How many purchase records (open and remembered) the partition holds.
    pub fn records_len(&self) -> usize {
        self.records.len()
    }
}

/// What a saga does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SagaKind {
    /// Reserve on the customer, charge the partner, commit the customer.
    OneShot,
    /// Reserve on the customer, then on the partner.
    Reserve,
    /// Commit a reservation on both sides.
    Commit,
    /// Release a reservation on both sides; an expiry answers `ReservationExpired`.
    Release { expired: bool },
}

/// How a saga ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SagaEnd {
    Purchased {
        charged: Uin,
        customer_available: Money,
        partner_available: Money,
    },
    Reserved {
        charged: Uin,
    },
    Refused(Rejection),
    /// A commit or a release is done on both sides.
    Settled,
}

/// The next thing a saga needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this command to this account and feed the reply to [`Saga::advance`].
    Call(Uin, Command),
    Done(SagaEnd),
}

/// When a saga runs and what it concerns, beyond the amount.
#[derive(Debug)]
struct Stamp {
    /// When the saga started: vouchers are valid or not at this instant, usage is recorded
    /// at it.
    now: Timestamp,
    /// The bill month the purchase's charges are booked to.
    month: Month,
    goods: Option<Arc<Goods>>,
}

/// A purchase-protocol operation in progress across the customer and the charged partner.
#[derive(Debug)]
pub struct Saga {
    pub id: PurchaseId,
    pub kind: SagaKind,
    caller: Caller,
    customer: Uin,
    charged: Option<Uin>,
    amount: Money,
    phase: Phase,
    customer_available: Money,
    partner_available: Money,
    stamp: Stamp,
    /// The deductions held and not yet made final or given back; boxed, and absent when
    /// there are none, so that a plain purchase's saga stays small.
    holds: Option<Box<Holds>>,
    /// Where its ledger record was when the saga began (a sequence number; see
    /// [`Records::near`]): finding it there costs one read instead of an index lookup.
    record: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Start,
    CustomerReserved,
    /// A one-shot purchase's partner charge is done and its voucher deductions are being
    /// made final.
    PartnerSettling,
    PartnerDone,
    /// Undoing the customer's reservation after the partner refused. Boxed: refusals are
    /// rare and every saga is as large as its largest phase.
    Undoing(Box<Rejection>),
    CustomerSettled,
}

impl Saga {
    #[allow(clippy::too_many_arguments)]
    fn start(
        id: PurchaseId,
        kind: SagaKind,
        caller: Caller,
        customer: Uin,
        charged: Option<Uin>,
        amount: Money,
        stamp: Stamp,
        holds: Holds,
    ) -> Saga {
        Saga {
            id,
            kind,
            caller,
            customer,
            charged,
            amount,
            phase: Phase::Start,
            customer_available: Money::ZERO,
            partner_available: Money::ZERO,
            stamp,
            record: 0,
            holds: if holds.is_empty() {
                None
            } else {
                let totals = [holds.customer.total(), holds.partner.total()];
                Some(Box::new(Holds { totals, ..holds }))
            },
        }
    }

    /// Takes one side's held deductions (`customer` or the partner's).
    fn take_holds(&mut self, customer: bool) -> Deductions {
        match self.holds.as_deref_mut() {
            Some(holds) if customer => std::mem::take(&mut holds.customer),
            Some(holds) => std::mem::take(&mut holds.partner),
            None => Deductions::default(),
        }
    }

    /// Keeps one side's held deductions (`keep`) or only their total; nothing is stored for
    /// none. Answers them back when not kept.
    fn note_holds(&mut self, customer: bool, deductions: Deductions, keep: bool) -> Deductions {
        if deductions.is_empty() {
            return deductions;
        }
        let holds = self.holds.get_or_insert_with(Default::default);
        holds.totals[usize::from(!customer)] = deductions.total();
        match (keep, customer) {
            (true, true) => holds.customer = deductions,
            (true, false) => holds.partner = deductions,
            (false, _) => return deductions,
        }
        Deductions::default()
    }

    /// What a commit records on the vouchers of one side; nothing when it deducted none.
    fn settlement(&self, deductions: Deductions) -> Option<Box<Settlement>> {
        if deductions.is_empty() {
            return None;
        }
        Some(Box::new(Settlement {
            deductions,
            purchase: self.id.clone(),
            goods: self.stamp.goods.clone(),
            time: self.stamp.now,
            customer: self.customer,
        }))
    }

    fn commit_customer(&mut self) -> Command {
        let deductions = self.take_holds(true);
        Command::Commit {
            amount: deductions.charge_of(self.amount),
            month: self.stamp.month,
            vouchers: self.settlement(deductions),
        }
    }

    fn release_customer(&mut self) -> Command {
        let deductions = self.take_holds(true);
        Command::Release {
            amount: deductions.charge_of(self.amount),
            vouchers: (!deductions.is_empty()).then(|| Box::new(deductions)),
        }
    }

    pub fn customer(&self) -> Uin {
        self.customer
    }

    /// The partner this saga charges, once known. A step for this UIN is a partner-side step.
    pub fn charged(&self) -> Option<Uin> {
        self.charged
    }

    /// The first step.
    pub fn first_step(&mut self) -> Step {
        let amount = self.amount;
        match self.kind {
            SagaKind::OneShot | SagaKind::Reserve => Step::Call(
                self.customer,
                Command::ReserveCustomer {
                    caller: self.caller,
                    amount,
                    now: self.stamp.now,
                    goods: self.stamp.goods.clone(),
                },
            ),
            SagaKind::Commit => Step::Call(self.customer, self.commit_customer()),
            SagaKind::Release { .. } => Step::Call(self.customer, self.release_customer()),
        }
    }

    /// Takes the reply to the last step's command and says what comes next.
    pub fn advance(&mut self, reply: Result<Reply, Rejection>) -> Step {
        let amount = self.amount;
        let phase = std::mem::replace(&mut self.phase, Phase::Start);
        match (&self.kind, phase, reply) {
            (SagaKind::OneShot | SagaKind::Reserve, Phase::Start, Ok(reply)) => {
                let Reply::CustomerReserved { charged, available, deductions } = reply else {
                    unreachable!("a customer reservation answers CustomerReserved")
                };
                self.charged = Some(charged);
                self.customer_available = available;
                self.note_holds(true, deductions, true);
                self.phase = Phase::CustomerReserved;
                let commit = self.kind == SagaKind::OneShot;
                let command = Command::ReservePartner {
                    amount,
                    commit,
                    customer: self.customer,
                    now: self.stamp.now,
                    month: self.stamp.month,
                    goods: self.stamp.goods.clone(),
                };
                Step::Call(charged, command)
            }
            (SagaKind::OneShot | SagaKind::Reserve, Phase::Start, Err(rejection)) => {
                Step::Done(SagaEnd::Refused(rejection))
            }
            (SagaKind::OneShot | SagaKind::Reserve, Phase::CustomerReserved, Err(rejection)) => {
                self.phase = Phase::Undoing(Box::new(rejection));
                Step::Call(self.customer, self.release_customer())
            }
            (SagaKind::OneShot | SagaKind::Reserve, Phase::CustomerReserved, Ok(reply)) => {
                let Reply::PartnerReserved { available, deductions } = reply else {
                    unreachable!("a partner reservation answers PartnerReserved")
                };
                self.partner_available = available;
                let charged = self.charged.expect("charged known");
                let keep = self.kind == SagaKind::Reserve;
                let deductions = self.note_holds(false, deductions, keep);
                if keep {
                    return Step::Done(SagaEnd::Reserved { charged });
                }
                match self.settlement(deductions) {
                    Some(settlement) => {
                        self.phase = Phase::PartnerSettling;
                        Step::Call(charged, Command::SettleVouchers(settlement))
                    }
                    None => {
                        self.phase = Phase::PartnerDone;
                        Step::Call(self.customer, self.commit_customer())
                    }
                }
            }
            (SagaKind::OneShot, Phase::PartnerSettling, reply) => {
                expect_settled(reply, self.charged.expect("charged known"));
                self.phase = Phase::PartnerDone;
                Step::Call(self.customer, self.commit_customer())
            }
            (SagaKind::OneShot, Phase::PartnerDone, reply) => {
                expect_settled(reply, self.customer);
                Step::Done(SagaEnd::Purchased {
                    charged: self.charged.expect("charged known"),
                    customer_available: self.customer_available,
                    partner_available: self.partner_available,
                })
            }
            (_, Phase::Undoing(rejection), reply) => {
                expect_settled(reply, self.customer);
                Step::Done(SagaEnd::Refused(*rejection))
            }
            (SagaKind::Commit | SagaKind::Release { .. }, Phase::Start, reply) => {
                expect_settled(reply, self.customer);
                self.phase = Phase::CustomerSettled;
                let charged = self.charged.expect("a reservation knows its partner");
                let deductions = self.take_holds(false);
                let charge = deductions.charge_of(amount);
                let command = if self.kind == SagaKind::Commit {
                    Command::Commit {
                        amount: charge,
                        month: self.stamp.month,
                        vouchers: self.settlement(deductions),
                    }
                } else {
                    Command::Release {
                        amount: charge,
                        vouchers: (!deductions.is_empty()).then(|| Box::new(deductions)),
                    }
                };
                Step::Call(charged, command)
            }
            (SagaKind::Commit | SagaKind::Release { .. }, Phase::CustomerSettled, reply) => {
                expect_settled(reply, self.charged.expect("charged known"));
                Step::Done(SagaEnd::Settled)
            }
            (kind, phase, reply) => unreachable!("saga {kind:?} in {phase:?} got {reply:?}"),
        }
    }
}

/// Commits and releases cannot be refused: the amounts were reserved by this purchase.
fn expect_settled(reply: Result<Reply, Rejection>, uin: Uin) {
    if let Err(rejection) = reply {
        panic!("settling a reservation on {uin} was refused: {rejection}");
    }
}

fn not_authorized(caller: Caller, target: Uin) -> Rejection {
    Rejection::NotAuthorized { caller: caller.to_string(), target }
}

/// The records of one partition: a ring in creation order, and an index from purchase id
/// to position.
///
/// Appending and forgetting walk the ring sequentially, and the index holds only sequence
/// numbers with their hashes precomputed, so forgetting the oldest record never has to
/// read a cold key: what makes a large idempotency table cheap on the purchase path. A
/// record still in flight or reserved when it reaches the front is moved to the back, so an
/// open reservation never holds up forgetting.
///
/// Forgetting does not touch the index either: an index entry whose sequence number is
/// below `first_sequence` is stale and matches nothing. Stale entries are purged only when
/// the index is full: the purge rebuilds it from the live entries with room for twice the
/// records, so the index holds at most about four entries per record, and a purchase pays
/// tens of nanoseconds of rebuilding instead of two cache misses into a table of a million
/// entries.
///
/// An index entry is 8 bytes: the low 32 bits of the sequence number and 32 bits of the
/// id's hash, so that growing the index never reads the ring. Sequence numbers are told
/// apart by their offset from `first_sequence` modulo 2^32, which is exact while the ring
/// and the stale entries span fewer than 2^32 records: [`Records::LIVE_MAX`] keeps them far
/// below.
#[derive(Default)]
struct Records {
    ring: VecDeque<Entry>,
    /// The sequence number of `ring[0]`; `ring[i]` has `first_sequence + i`.
    first_sequence: u64,
    index: hashbrown::HashTable<Slot>,
    /// Seeded fast hashing: purchase ids are chosen by clients, so the hash must resist
    /// flooding, and it is on every purchase's path.
    hasher: foldhash::fast::RandomState,
    /// Records not yet resolved (in flight or reserved).
    unresolved: usize,
}

struct Entry {
    id: PurchaseId,
    hash: u32,
    record: Record,
}

/// An index entry (see [`Records`]).
#[derive(Clone, Copy)]
struct Slot {
    sequence: u32,
    hash: u32,
}

/// The table hash of a 32-bit id hash: its bits both low (where the table picks a bucket)
/// and high (where it takes a bucket's tag).
fn spread(hash: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(hash)
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("len", &self.ring.len())
            .field("unresolved", &self.unresolved)
            .finish()
    }
}

impl Records {
    /// At most this many live records (the capacity plus open reservations) per partition.
    /// The index then has room for at most about four times as many entries, so a stale
    /// entry is purged before its offset could wrap around into the ring's range: the ring
    /// and the stale entries span well under 2^31 sequence numbers, far below 2^32.
    pub const LIVE_MAX: usize = 1 << 28;

    fn hash(&self, id: &PurchaseId) -> u32 {
        self.hasher.hash_one(id) as u32
    }

    /// The ring position of an index entry; `None` when it is stale.
    fn offset(&self, slot: Slot) -> Option<usize> {
        let offset = slot.sequence.wrapping_sub(self.first_sequence as u32) as usize;
        (offset < self.ring.len()).then_some(offset)
    }

    fn position(&self, id: &PurchaseId) -> Option<usize> {
        let hash = self.hash(id);
        let ring = &self.ring;
        let matches = |slot: &Slot| {
            slot.hash == hash && self.offset(*slot).is_some_and(|offset| ring[offset].id == *id)
        };
        self.index.find(spread(hash), matches).and_then(|slot| self.offset(*slot))
    }

    fn get(&self, id: &PurchaseId) -> Option<&Record> {
        self.position(id).map(|position| &self.ring[position].record)
    }

    fn get_mut(&mut self, id: &PurchaseId) -> Option<&mut Record> {
        self.position(id).map(|position| &mut self.ring[position].record)
    }

    /// The position of `id`, looked for first where sequence number `near` is: a record keeps
    /// its sequence number unless `evict` moves it to the back, so a saga finds its record
    /// there without touching the index, unless it was moved meanwhile.
    fn near(&self, id: &PurchaseId, near: u64) -> Option<usize> {
        if let Some(offset) = near.checked_sub(self.first_sequence) {
            if let Some(entry) = self.ring.get(offset as usize) {
                if entry.id == *id {
                    return Some(offset as usize);
                }
            }
        }
        self.position(id)
    }

    /// Adds an unresolved record; the id must not be present. Answers its sequence number.
    fn insert(&mut self, id: PurchaseId, record: Record) -> u64 {
        let hash = self.hash(&id);
        let sequence = self.first_sequence + self.ring.len() as u64;
        self.index_insert(hash, sequence);
        self.ring.push_back(Entry { id, hash, record });
        self.unresolved += 1;
        sequence
    }

    /// Indexes the ring entry that has (or is about to get) `sequence`; stale entries are
    /// purged first when the index is full.
    fn index_insert(&mut self, hash: u32, sequence: u64) {
        if self.index.len() == self.index.capacity() {
            self.purge_stale();
        }
        let slot = Slot { sequence: sequence as u32, hash };
        self.index.insert_unique(spread(hash), slot, |slot| spread(slot.hash));
    }

    /// Rebuilds the index from its live entries, with room for twice as many as the ring
    /// holds: the next purge is at least that many inserts away, and the index never holds
    /// more than about four entries per record. (Removing stale entries in place would leave
    /// tombstones that make the table double instead.)
    fn purge_stale(&mut self) {
        let mut index = hashbrown::HashTable::with_capacity(2 * self.ring.len() + 16);
        for slot in self.index.iter().filter(|slot| self.offset(**slot).is_some()) {
            index.insert_unique(spread(slot.hash), *slot, |slot| spread(slot.hash));
        }
        self.index = index;
    }

    /// The record of `id` (looked for at sequence number `near` first), marked resolved at
    /// `now`: one lookup for both.
    fn resolve_mut(&mut self, id: &PurchaseId, near: u64, now: Timestamp) -> &mut Record {
        let position = self.near(id, near).expect("a record being resolved exists");
        self.unresolved -= 1;
        let record = &mut self.ring[position].record;
        assert!(record.resolved_at.is_none(), "a record is resolved once");
        record.resolved_at = Some(now);
        record
    }

    /// Forgets resolved records from the front while they are past the retention window or
    /// the ring holds more resolved records than `capacity`.
    fn evict(&mut self, now: Timestamp, retention_ms: i64, capacity: usize) {
        // Each unresolved record is moved to the back at most once per call.
        let mut moves_left = self.unresolved;
        while let Some(front) = self.ring.front() {
            let over_capacity = self.ring.len() - self.unresolved > capacity;
            match front.record.resolved_at {
                Some(resolved_at) if over_capacity || resolved_at.plus_ms(retention_ms) <= now => {
                    // Its index entry is stale from now on.
                    self.ring.pop_front();
                    self.first_sequence += 1;
                }
                None if over_capacity && moves_left > 0 => {
                    moves_left -= 1;
                    let entry = self.ring.pop_front().expect("front exists");
                    self.first_sequence += 1;
                    let new_sequence = self.first_sequence + self.ring.len() as u64;
                    let hash = entry.hash;
                    self.ring.push_back(entry);
                    self.index_insert(hash, new_sequence);
                }
                _ => break,
            }
        }
    }

    fn len(&self) -> usize {
        self.ring.len()
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
