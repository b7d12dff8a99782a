//! The ledger of one partition: the record of every purchase id it remembers, and what a
//! request means for it (new, a repeat, a conflict, too late, or another shard's).
//!
//! Ids are claimed in the runtime's [`IdIndex`], which the partitions of a runtime may share:
//! a new purchase claims its id across every partition at once, and a request for an id
//! whose entry is another partition's is answered [`Next::Elsewhere`], for the runtime to
//! take there. Each method takes the index's [`IndexRead`], held by the runtime for its round.
//!
//! Invariants:
//! - a request is authorized (the operator or the purchase's customer) before anything is
//!   recorded, so a refused request cannot claim a purchase id;
//! - a record's state changes only here, under the partition's actor;
//! - the partition's window is published in the index before the method that changed it
//!   returns, while the caller still holds its read: a rebuild never sees a claimed entry
//!   outside its window.

use std::collections::BTreeSet;
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::index::{Claim, IdIndex, IndexRead, Place};
use super::records::{Answer, Key, Keys, Open, Records, RefusalOf, State};
use super::saga::{Saga, SagaEnd, SagaKind, Stamp};
use super::{
    Holds, LedgerLimits, Mode, Outcome, PurchaseReceipt, PurchaseRequest, ReservationReceipt, Spent,
};
use crate::domain::access;
use crate::domain::account::Goods;
use crate::domain::voucher::PayMode;
use crate::domain::{Caller, KindRequired, Money, Month, PurchaseId, Rejection, Timestamp, Uin};

/// What a runtime does next for a request.
#[derive(Debug)]
pub enum Next {
    /// Drive this saga to its end, then call [`Ledger::finish`].
    Run(Saga),
    /// Answer at once; nothing changes.
    Answer(Result<Outcome, Rejection>),
    /// Another partition has an entry for the id: only it can tell whether the id is its
    /// (then it answers the request) or the entry is stale or a coincidence of tags (then
    /// the request comes back with the place in its `ignored`). Nothing changed here.
    Elsewhere(Place),
}

/// What a snapshot keeps of a ledger partition: its records and open reservations (the
/// index entries are written again from the records).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LedgerImage {
    records: Records,
    deadlines: BTreeSet<(Timestamp, Key)>,
    open_reservations: usize,
}

/// One partition of the purchase ledger.
#[derive(Debug)]
pub struct Ledger {
    limits: LedgerLimits,
    /// This partition's number in the index.
    shard: u32,
    index: Arc<IdIndex>,
    keys: Arc<Keys>,
    pub(super) records: Records,
    /// Open reservations by deadline, for expiry.
    deadlines: BTreeSet<(Timestamp, Key)>,
    open_reservations: usize,
    /// The last month computed and its bounds, so that most purchases compute none.
    month: (Timestamp, Timestamp, Month),
}

/// The partner a customer's purchases charge, as the runtime knows it: a repeat's answer
/// names it, and a record does not keep it. It never changes, so the customer's account
/// has it; keeping it in every record would cost each remembered id 8 bytes more, and a
/// cache of it in the ledger a random access per purchase.
pub type ChargedOf<'a> = &'a dyn Fn(Uin) -> Option<Uin>;

impl Ledger {
    /// A partition alone in its own index: the reference runtime, and tests.
    pub fn alone(limits: LedgerLimits) -> Ledger {
        Ledger::new(limits, Arc::new(IdIndex::new(1)), 0, Arc::new(Keys::random()))
    }

    /// Partition `shard` of a runtime whose partitions share `index` and `keys`.
    pub fn new(limits: LedgerLimits, index: Arc<IdIndex>, shard: u32, keys: Arc<Keys>) -> Ledger {
        assert!(
            limits.resolved_capacity.saturating_add(limits.open_reservations_max) <= Records::LIVE_MAX,
            "a ledger partition holds at most {} records (resolved capacity plus open reservations)",
            Records::LIVE_MAX
        );
        let month = Month::of(Timestamp(0));
        Ledger {
            limits,
            shard,
            index,
            keys,
            records: Records::with_capacity(Ledger::ring_room(&limits)),
            deadlines: BTreeSet::new(),
            open_reservations: 0,
            month: (month.start(), month.end(), month),
        }
    }

    /// The records the ring has room for from the start: the remembered ones plus an eighth
    /// for open reservations (at least 1,024, at most `open_reservations_max`). A ring's
    /// tail goes round all of its room, so every page of the room becomes resident however
    /// few records are live: room for every possible open reservation up front would make
    /// each remembered id cost twice its record. More open reservations than that grow the
    /// ring as they come.
    fn ring_room(limits: &LedgerLimits) -> usize {
        let headroom = (limits.resolved_capacity / 8).max(1024).min(limits.open_reservations_max);
        limits.resolved_capacity.saturating_add(headroom)
    }

    /// A copy of the partition's state, for a snapshot.
    pub fn image(&self) -> LedgerImage {
        LedgerImage {
            records: self.records.clone(),
            deadlines: self.deadlines.clone(),
            open_reservations: self.open_reservations,
        }
    }

    /// Takes the state of `image` and writes its records' index entries, a round's worth
    /// at a time. Call it on a new partition, before any round.
    pub fn restore(&mut self, image: LedgerImage) {
        self.records.restore(image.records);
        self.deadlines = image.deadlines;
        self.open_reservations = image.open_reservations;
        let keys: Vec<(u64, Key)> = self.records.keys().collect();
        for chunk in keys.chunks(IdIndex::ROUND_INSERTS_MAX) {
            self.index.maintain();
            let table = self.index.read(self.shard);
            for (sequence, key) in chunk {
                table.insert(key.low, self.shard, *sequence);
            }
            self.index.wrote(self.shard, chunk.len());
        }
        self.publish();
    }

    /// The index this partition claims ids in.
    pub fn index(&self) -> &Arc<IdIndex> {
        &self.index
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

    fn publish(&self) {
        let (first, end) = self.records.window();
        self.index.publish(self.shard, first, end);
    }

    /// The key of `id` in this ledger's index (a runtime that warms a batch's index entries
    /// computes it ahead and hands it to [`Ledger::begin`]).
    pub fn key(&self, id: &PurchaseId) -> Key {
        self.keys.id(id)
    }

    /// A one-shot purchase or a reservation.
    pub fn begin(
        &mut self,
        table: &IndexRead<'_>,
        begin: Begin<'_>,
        now: Timestamp,
        charged_of: ChargedOf<'_>,
    ) -> Next {
        let Begin { caller, request, mode, skip, key } = begin;
        // Authorize before anything is recorded, so that nobody can claim another customer's
        // purchase id with a refused request.
        let PurchaseRequest { id, customer, amount, product_code, pay } = request;
        let (customer, amount) = (*customer, *amount);
        if let Err(refusal) = access::itself(caller, customer) {
            return Next::Answer(Err(refusal));
        }
        let goods = goods(product_code, *pay);
        let key = key.unwrap_or_else(|| self.keys.id(id));
        let fingerprint = self.keys.content(amount, &goods, mode);
        let asked = Asked { id, customer, amount, fingerprint };
        let reservation = matches!(mode, Mode::Reserve { .. });
        if reservation && self.open_reservations >= self.limits.open_reservations_max {
            // A repeat still gets its first answer.
            let records = &self.records;
            return match table.find(key.low, Some(self.shard), skip, |sequence| records.here(sequence, key)) {
                Some(Claim::Here(sequence)) => {
                    Next::Answer(self.repeat(caller, &asked, sequence, charged_of))
                }
                Some(Claim::There(place)) => Next::Elsewhere(place),
                _ => Next::Answer(Err(Rejection::TooManyOpenReservations(self.limits.open_reservations_max))),
            };
        }
        let sequence = self.records.window().1;
        let records = &self.records;
        match table.claim(key.low, self.shard, sequence, skip, |sequence| records.here(sequence, key)) {
            Claim::Here(sequence) => return Next::Answer(self.repeat(caller, &asked, sequence, charged_of)),
            Claim::There(place) => return Next::Elsewhere(place),
            Claim::Claimed => self.index.wrote(self.shard, 1),
        }
        self.records.push(key, customer, fingerprint, reservation);
        if reservation {
            self.open_reservations += 1;
        }
        // Forgetting comes after the lookup, so that a repeat at the capacity's edge still
        // finds its record, and after the push, so that a record moved to the back lands
        // behind the new one's claimed sequence number.
        self.evict(table, now);
        let kind = if reservation { SagaKind::Reserve } else { SagaKind::OneShot };
        let stamp = Stamp { now, month: self.month_of(now), goods };
        let mut saga = Saga::start(id.clone(), kind, customer, None, amount, stamp, Holds::default());
        saga.record = sequence;
        saga.key = key;
        if let Mode::Reserve { timeout_ms } = mode {
            saga.timeout_ms = timeout_ms;
        }
        self.publish();
        Next::Run(saga)
    }

    /// At a partition another one's index entry names, for a request it could not claim
    /// (see [`Next::Elsewhere`]): the answer from the record here if this partition holds the
    /// id, or `None` if its entries hold something else.
    pub fn answer_repeat(
        &self,
        table: &IndexRead<'_>,
        caller: Caller,
        request: &PurchaseRequest,
        mode: Mode,
        charged_of: ChargedOf<'_>,
    ) -> Option<Result<Outcome, Rejection>> {
        let key = self.keys.id(&request.id);
        let records = &self.records;
        let Some(Claim::Here(sequence)) =
            table.find(key.low, Some(self.shard), u64::MAX, |sequence| records.here(sequence, key))
        else {
            return None;
        };
        let goods = goods(&request.product_code, request.pay);
        let fingerprint = self.keys.content(request.amount, &goods, mode);
        let asked =
            Asked { id: &request.id, customer: request.customer, amount: request.amount, fingerprint };
        Some(self.repeat(caller, &asked, sequence, charged_of))
    }

    /// The answer to a request whose id has a record here.
    fn repeat(
        &self,
        caller: Caller,
        asked: &Asked<'_>,
        sequence: u64,
        charged_of: ChargedOf<'_>,
    ) -> Result<Outcome, Rejection> {
        let record = self.records.get(sequence);
        access::itself(caller, record.customer())?;
        if record.customer() != asked.customer || !record.same_content(asked.fingerprint) {
            return Err(Rejection::PurchaseIdConflict(asked.id.clone()));
        }
        match self.records.first_answer(sequence) {
            Some(answer) => outcome(asked.id, asked.amount, record.customer(), answer, charged_of),
            None => Err(Rejection::PurchaseInProgress(asked.id.clone())),
        }
    }

    /// How a record keeps a refusal of `customer`'s purchase: in place when it is one of
    /// the refusals a purchase's accounts give, else whole beside it.
    fn refusal_of(&self, rejection: &Rejection, customer: Uin, charged: Option<Uin>) -> RefusalOf {
        match rejection {
            Rejection::UnknownUin(uin) if *uin == customer => RefusalOf::UnknownUin,
            Rejection::WrongKind { uin, required: KindRequired::Customer } if *uin == customer => {
                RefusalOf::WrongKind
            }
            Rejection::Suspended(uin) if *uin == customer => RefusalOf::Suspended,
            Rejection::InsufficientCustomerCredit { uin, available, needed } if *uin == customer => {
                RefusalOf::InsufficientCustomerCredit { available: *available, needed: *needed }
            }
            Rejection::InsufficientPartnerCredit { uin, available, needed } if Some(*uin) == charged => {
                RefusalOf::InsufficientPartnerCredit { available: *available, needed: *needed }
            }
            other => RefusalOf::Other(other.clone()),
        }
    }

    /// Phase two of a reservation: its amounts become used.
    pub fn commit(
        &mut self,
        table: &IndexRead<'_>,
        caller: Caller,
        id: &PurchaseId,
        now: Timestamp,
        skip: u64,
        charged_of: ChargedOf<'_>,
    ) -> Next {
        self.resolve(table, caller, id, now, true, skip, charged_of)
    }

    /// Releases a reservation.
    pub fn cancel(
        &mut self,
        table: &IndexRead<'_>,
        caller: Caller,
        id: &PurchaseId,
        now: Timestamp,
        skip: u64,
        charged_of: ChargedOf<'_>,
    ) -> Next {
        self.resolve(table, caller, id, now, false, skip, charged_of)
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &mut self,
        table: &IndexRead<'_>,
        caller: Caller,
        id: &PurchaseId,
        now: Timestamp,
        commit: bool,
        skip: u64,
        charged_of: ChargedOf<'_>,
    ) -> Next {
        let key = self.keys.id(id);
        let id = id.clone();
        let records = &self.records;
        let sequence =
            match table.find(key.low, Some(self.shard), skip, |sequence| records.here(sequence, key)) {
                Some(Claim::Here(sequence)) => sequence,
                Some(Claim::There(place)) => return Next::Elsewhere(place),
                _ => return Next::Answer(Err(Rejection::UnknownPurchase(id))),
            };
        let record = *self.records.get(sequence);
        let customer = record.customer();
        if let Err(refusal) = access::itself(caller, customer) {
            return Next::Answer(Err(refusal));
        }
        if !record.is_reservation() {
            return Next::Answer(Err(Rejection::NotAReservation(id)));
        }
        if record.settling() {
            return Next::Answer(Err(Rejection::PurchaseInProgress(id)));
        }
        let answer = match (record.state(), commit) {
            (State::InFlight, _) => Err(Rejection::PurchaseInProgress(id)),
            (State::Reserved, _) => {
                let open =
                    self.records.side_mut(sequence).open.take().expect("a reservation keeps its content");
                let (kind, state) = if now >= open.deadline {
                    (SagaKind::Release { expired: true }, State::Expired)
                } else if commit {
                    (SagaKind::Commit, State::Committed)
                } else {
                    (SagaKind::Release { expired: false }, State::Cancelled)
                };
                let record = self.records.get_mut(sequence);
                record.set_state(state);
                record.set_settling(true);
                self.records.resolve(sequence, now);
                self.deadlines.remove(&(open.deadline, key));
                self.open_reservations -= 1;
                let Open { amount, charged, month, holds, goods, .. } = *open;
                let goods = if holds.is_empty() { None } else { goods };
                let stamp = Stamp { now, month, goods };
                let mut saga = Saga::start(id, kind, customer, Some(charged), amount, stamp, holds);
                saga.record = sequence;
                saga.key = key;
                self.publish();
                return Next::Run(saga);
            }
            (State::Committed, true) => Ok(Outcome::Committed(id)),
            (State::Committed, false) => Err(Rejection::AlreadyCommitted(id)),
            (State::Cancelled, true) => Err(Rejection::AlreadyCancelled(id)),
            (State::Cancelled, false) => Ok(Outcome::Cancelled(id)),
            (State::Expired, _) => Err(Rejection::ReservationExpired(id)),
            // The refusal the purchase got, again.
            (State::Refused, _) => {
                let answer = self.records.first_answer(sequence).expect("a refused record keeps its refusal");
                outcome(&id, Money::ZERO, customer, answer, charged_of)
            }
        };
        Next::Answer(answer)
    }

    /// Records the end of a saga and gives the answer for the request that started it.
    pub fn finish(
        &mut self,
        table: &IndexRead<'_>,
        mut saga: Saga,
        end: SagaEnd,
        now: Timestamp,
    ) -> Result<Outcome, Rejection> {
        let [customer_deduction, partner_deduction] = saga.deducted();
        let spent = Spent::new(saga.amount, customer_deduction, partner_deduction);
        let holds = saga.take_all_holds();
        let customer = saga.customer();
        let charged = saga.charged();
        let located = self.records.locate(table, self.shard, saga.key, saga.record);
        let id = saga.id;
        let answer = match (saga.kind, end) {
            (_, SagaEnd::Settled) => {
                // The record may have been forgotten meanwhile (capacity); then nobody waits.
                if let Some(sequence) = located {
                    self.records.get_mut(sequence).set_settling(false);
                }
                match saga.kind {
                    SagaKind::Commit => Ok(Outcome::Committed(id)),
                    SagaKind::Release { expired: false } => Ok(Outcome::Cancelled(id)),
                    SagaKind::Release { expired: true } => Err(Rejection::ReservationExpired(id)),
                    kind => unreachable!("saga {kind:?} cannot end settled"),
                }
            }
            (SagaKind::OneShot | SagaKind::Reserve, SagaEnd::Refused(rejection)) => {
                let sequence = located.expect("an in-flight record stays");
                self.records.resolve(sequence, now);
                if self.records.get(sequence).is_reservation() {
                    self.open_reservations -= 1;
                }
                let refusal = self.refusal_of(&rejection, customer, charged);
                self.records.answer(sequence, State::Refused, Answer::Refused(refusal));
                Err(rejection)
            }
            (SagaKind::OneShot, SagaEnd::Purchased { charged, customer_available, partner_available }) => {
                let sequence = located.expect("an in-flight record stays");
                self.records.resolve(sequence, now);
                let deducted = spent.deductions.clone();
                let answer = Answer::Purchased { customer_available, partner_available, deducted };
                self.records.answer(sequence, State::Committed, answer);
                Ok(Outcome::Purchased(PurchaseReceipt {
                    id,
                    charged,
                    customer_available,
                    partner_available,
                    spent,
                }))
            }
            (SagaKind::Reserve, SagaEnd::Reserved { charged }) => {
                let sequence = located.expect("an in-flight record stays");
                // The deadline counts from the moment the reservation holds on both sides.
                let deadline = now.plus_ms(saga.timeout_ms);
                let answer = Answer::Reserved { deadline, deducted: spent.deductions.clone() };
                self.records.answer(sequence, State::Reserved, answer);
                let month = saga.stamp.month;
                let goods = saga.stamp.goods.take();
                let open =
                    Open { id: id.clone(), amount: saga.amount, charged, deadline, month, holds, goods };
                self.records.side_mut(sequence).open = Some(Box::new(open));
                self.deadlines.insert((deadline, saga.key));
                Ok(Outcome::Reserved(ReservationReceipt { id, charged, deadline, spent }))
            }
            (kind, end) => unreachable!("saga {kind:?} cannot end with {end:?}"),
        };
        self.publish();
        answer
    }

    /// Expires every reservation whose deadline is at or before `now`; each returned saga
    /// releases one. Also forgets resolved ids past the retention window.
    pub fn expire_due(&mut self, table: &IndexRead<'_>, now: Timestamp) -> Vec<Saga> {
        let mut sagas = Vec::new();
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > now {
                break;
            }
            let (_, key) = self.deadlines.pop_first().expect("first exists");
            let sequence =
                self.records.locate(table, self.shard, key, u64::MAX).expect("a reservation stays");
            let open = self.records.side_mut(sequence).open.take().expect("a reservation keeps its content");
            let record = self.records.get_mut(sequence);
            record.set_state(State::Expired);
            record.set_settling(true);
            let customer = record.customer();
            self.records.resolve(sequence, now);
            self.open_reservations -= 1;
            let kind = SagaKind::Release { expired: true };
            let stamp = Stamp { now, month: open.month, goods: None };
            let mut saga =
                Saga::start(open.id, kind, customer, Some(open.charged), open.amount, stamp, open.holds);
            saga.record = sequence;
            saga.key = key;
            sagas.push(saga);
        }
        self.evict(table, now);
        self.publish();
        sagas
    }

    /// Forgets the oldest resolved records beyond the retention window or the capacity.
    fn evict(&mut self, table: &IndexRead<'_>, now: Timestamp) {
        let (retention_ms, capacity) = (self.limits.resolved_retention_ms, self.limits.resolved_capacity);
        let written = self.records.evict(table, self.shard, now, retention_ms, capacity);
        if written > 0 {
            self.index.wrote(self.shard, written);
        }
    }

    pub fn open_reservations(&self) -> usize {
        self.open_reservations
    }

    /// The sequence numbers of the records this partition remembers: `first..end`.
    pub fn window(&self) -> (u64, u64) {
        self.records.window()
    }

    /// How many purchase records (open and remembered) the partition holds.
    pub fn records_len(&self) -> usize {
        self.records.len()
    }
}

/// A first answer, rebuilt for the request `id` of `amount`.
fn outcome(
    id: &PurchaseId,
    amount: Money,
    customer: Uin,
    answer: Answer,
    charged_of: ChargedOf<'_>,
) -> Result<Outcome, Rejection> {
    let charged = || charged_of(customer).expect("a customer whose purchase ended exists");
    match answer {
        Answer::Purchased { customer_available, partner_available, deducted } => {
            Ok(Outcome::Purchased(PurchaseReceipt {
                id: id.clone(),
                charged: charged(),
                customer_available,
                partner_available,
                spent: Spent { amount, deductions: deducted },
            }))
        }
        Answer::Reserved { deadline, deducted } => Ok(Outcome::Reserved(ReservationReceipt {
            id: id.clone(),
            charged: charged(),
            deadline,
            spent: Spent { amount, deductions: deducted },
        })),
        Answer::Refused(refusal) => Err(match refusal {
            RefusalOf::UnknownUin => Rejection::UnknownUin(customer),
            RefusalOf::WrongKind => Rejection::WrongKind { uin: customer, required: KindRequired::Customer },
            RefusalOf::Suspended => Rejection::Suspended(customer),
            RefusalOf::InsufficientCustomerCredit { available, needed } => {
                Rejection::InsufficientCustomerCredit { uin: customer, available, needed }
            }
            RefusalOf::InsufficientPartnerCredit { available, needed } => {
                Rejection::InsufficientPartnerCredit { uin: charged(), available, needed }
            }
            RefusalOf::Other(rejection) => rejection,
        }),
    }
}

/// A purchase a runtime asks its ledger to begin.
#[derive(Clone, Copy, Debug)]
pub struct Begin<'a> {
    pub caller: Caller,
    pub request: &'a PurchaseRequest,
    pub mode: Mode,
    /// The bitmask of the partitions that said their entries for the id hold something else
    /// (see [`Next::Elsewhere`]): 0 at first.
    pub skip: u64,
    /// The id's key ([`Ledger::key`]), if the runtime computed it ahead.
    pub key: Option<Key>,
}

impl<'a> Begin<'a> {
    /// A first attempt, with nothing computed ahead.
    pub fn new(caller: Caller, request: &'a PurchaseRequest, mode: Mode) -> Begin<'a> {
        Begin { caller, request, mode, skip: 0, key: None }
    }
}

/// What a request asks, as a repeat is judged by it.
struct Asked<'a> {
    id: &'a PurchaseId,
    customer: Uin,
    amount: Money,
    fingerprint: u64,
}

/// What vouchers need to know of a purchase, built once and shared with its sagas: nothing
/// (no allocation) for the plain one.
fn goods(product_code: &Option<CompactString>, pay: PayMode) -> Option<Arc<Goods>> {
    if product_code.is_none() && pay == PayMode::Prepaid {
        return None;
    }
    Some(Arc::new(Goods { product: product_code.clone(), pay }))
}
