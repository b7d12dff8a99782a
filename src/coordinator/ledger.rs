//! The ledger of one partition: the record of every purchase id it remembers, and what a
//! request means for it (new, a repeat, a conflict, too late).
//!
//! Invariants:
//! - a request is authorized (the operator or the purchase's customer) before anything is
//!   recorded, so a refused request cannot claim a purchase id;
//! - a record's state changes only here, under the partition's actor.

use std::collections::BTreeSet;
use std::sync::Arc;

use compact_str::CompactString;

use super::records::Records;
use super::saga::{Saga, SagaEnd, SagaKind, Stamp};
use super::{
    Deducted, Holds, LedgerLimits, Mode, Outcome, PurchaseReceipt, PurchaseRequest, ReservationReceipt, Spent,
};
use crate::domain::access;
use crate::domain::account::Goods;
use crate::domain::voucher::PayMode;
use crate::domain::{Caller, Money, Month, PurchaseId, Rejection, Timestamp, Uin};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Content {
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
pub(super) enum State {
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
pub(super) struct Record {
    pub(super) content: Content,
    pub(super) state: State,
    /// The answer to the request that created the record, repeated to identical requests.
    pub(super) first: Option<First>,
    /// When the record reached a final state; `None` while in flight or reserved.
    pub(super) resolved_at: Option<Timestamp>,
    /// A commit or release saga is applying the record's final state: requests for it wait
    /// (`PurchaseInProgress`) so that no answer runs ahead of the books.
    pub(super) settling: bool,
}

/// The answer to the request that created a record, kept compactly: the id and the amount
/// are the record's own, so a repeat's answer is rebuilt from them.
#[derive(Clone, Debug)]
pub(super) enum First {
    Purchased { charged: Uin, customer_available: Money, partner_available: Money, deductions: Deducted },
    Reserved { charged: Uin, deadline: Timestamp, deductions: Deducted },
    Refused(Rejection),
}

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
    pub(super) records: Records,
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
        if let Err(refusal) = access::itself(caller, content.customer) {
            return Next::Answer(Err(refusal));
        }
        if let Some(record) = self.records.get(&request.id) {
            if let Err(refusal) = access::itself(caller, record.content.customer) {
                return Next::Answer(Err(refusal));
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
        if let Err(refusal) = access::itself(caller, customer) {
            return Next::Answer(Err(refusal));
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
                let saga = Saga::start(id, kind, customer, Some(charged), amount, stamp, holds);
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
        let [customer_deduction, partner_deduction] = saga.deducted();
        let spent = Spent::new(saga.amount, customer_deduction, partner_deduction);
        let holds = saga.take_all_holds();
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
            sagas.push(Saga::start(id, kind, customer, Some(charged), amount, stamp, holds));
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
