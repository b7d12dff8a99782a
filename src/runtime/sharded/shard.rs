//! One shard: the accounts that live on it in a dense vector, the ledger partition of their
//! purchases, the sagas that wait for escrow, and what it owes other shards. Whoever holds
//! the shard's lock runs it (see `mod.rs`); nothing here knows which thread that is.
//!
//! A purchase arrives with its customer's slot, resolved by the caller. The customer lives
//! here, and so does the partner its purchase charges (a customer is placed on its charged
//! partner's shard), or, for an escrowed partner, this shard's slice of its credit: so a
//! purchase runs from its first step to its answer without a message. Its saga runs on the
//! stack and only a saga that must wait for an escrow refill is kept.
//!
//! Invariants:
//! - the shard changes only under its lock, one message at a time;
//! - an account's slot never changes; `links[slot]` is the slot of the customer's charged
//!   partner on this shard, once a purchase looked it up;
//! - every saga runs to its end; `expire_due` answers only once the releases it started are
//!   done.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use slab::Slab;
use tokio::sync::oneshot;

use super::directory::{Directory, Place};
use super::escrow::WholeCall;
use super::log::{Log, Release};
use super::{Context, NO_SLOT};
use crate::cache::PREFETCH_DISTANCE;
use crate::coordinator::escrow::{Home, Slice};
use crate::coordinator::{
    Begin, IndexRead, Key, Ledger, Mode, Next, Outcome, PurchaseReceipt, PurchaseRequest, Saga, Step,
};
use crate::domain::{Account, Caller, Command, Rejection, Reply, Role, Timestamp, Uin};
use crate::runtime::CoordinatorOp;

pub(super) type Answer = Result<Outcome, Rejection>;
pub(super) type BatchAnswers = Vec<(u32, Result<PurchaseReceipt, Rejection>)>;

/// Where an answer goes.
pub(super) enum Origin {
    Slot(u32),
    Channel(oneshot::Sender<Answer>),
    /// A purchase of a batch of the shard `shard` (this one, or the one that forwarded it).
    Batch {
        shard: u32,
        key: u32,
        position: u32,
    },
    /// A release started by `expire_due`; the key is the waiting request.
    Expiry(usize),
    /// A release started by the periodic sweep: nobody waits.
    Sweep,
}

/// A message to a shard.
pub(super) enum Message {
    /// One purchase-protocol operation. `slot` is the customer's here for a purchase (or
    /// `NO_SLOT`: unknown); `skip` are the shards whose index entries for the id are known
    /// to hold something else.
    Coordinate {
        op: CoordinatorOp,
        slot: u32,
        skip: u64,
        origin: Origin,
    },
    /// One-shot purchases of customers of this shard: (position, request, customer's slot).
    Batch {
        caller: Caller,
        requests: Vec<(u32, PurchaseRequest, u32)>,
        reply: oneshot::Sender<BatchAnswers>,
    },
    /// A command to the account in `slot`; a step of an engine operation names its UIN too
    /// (its slot may be `NO_SLOT`: unknown).
    Call {
        slot: u32,
        command: Command,
        step: Option<(Uin, crate::runtime::StepTag)>,
        reply: oneshot::Sender<Result<Reply, Rejection>>,
    },
    /// Accounts to keep; answers their slots, in order.
    Spawn {
        accounts: Vec<Account>,
        reply: oneshot::Sender<Vec<u32>>,
    },
    ExpireDue {
        reply: oneshot::Sender<usize>,
    },
    /// At an escrowed partner's home: recall every slice, then apply `command` to the whole
    /// account, before any slice can take credit again.
    CallWhole {
        uin: Uin,
        command: Command,
        reply: oneshot::Sender<Result<Reply, Rejection>>,
    },
    OpenReservations {
        reply: oneshot::Sender<usize>,
    },
    /// From another shard, one round's worth.
    Hops(Vec<Hop>),
}

/// What shards send each other.
pub(super) enum Hop {
    /// To an escrowed partner's home: a slice needs at least `wanted` more.
    Refill { partner: Uin, wanted: crate::domain::Money, from: u32 },
    /// From the home: credit for the slice. `exhausted`: it is everything the partner had
    /// after all slices were recalled, so what it cannot cover is refused.
    Granted { partner: Uin, amount: crate::domain::Money, exhausted: bool },
    /// From the home: give back the slice's free credit and settle its used credit.
    Recall { partner: Uin },
    /// To the home: a slice's free credit given back and its used credit settled, per bill
    /// month; `recall` when it answers a recall.
    Returned { partner: Uin, settlement: crate::coordinator::escrow::Settlement, recall: bool },
    /// A request whose id this shard's index entry holds: answer it from the record here,
    /// or send it back if the entry holds another id.
    Forward { op: CoordinatorOp, skip: u64, from: u32, origin: Origin },
    /// A request sent back: the forwarding shard's entries hold another id.
    Back { op: CoordinatorOp, skip: u64, origin: Origin },
    /// The answer to a purchase of a batch, at the batch's shard.
    BatchAnswer { key: u32, position: u32, answer: Answer },
}

pub(super) struct PendingBatch {
    remaining: usize,
    answers: BatchAnswers,
    reply: oneshot::Sender<BatchAnswers>,
}

pub(super) struct PendingExpiry {
    remaining: usize,
    released: usize,
    reply: oneshot::Sender<usize>,
}

/// A saga waiting for an escrow refill: its answer's destination and its customer's slot.
pub(super) struct Parked {
    pub saga: Saga,
    pub origin: Origin,
    pub customer: u32,
}

/// The state one shard owns.
pub(super) struct Shard {
    pub index: u32,
    pub context: Arc<Context>,
    pub accounts: Vec<Account>,
    /// For a customer's slot, its charged partner's slot here (`NO_SLOT` until looked up).
    pub links: Vec<u32>,
    pub ledger: Ledger,
    pub sagas: Slab<Parked>,
    pub batches: Slab<PendingBatch>,
    pub expiries: Slab<PendingExpiry>,
    /// Hops for each shard, sent when the round ends.
    pub outboxes: Vec<Vec<Hop>>,
    /// This shard's slices of escrowed partners.
    pub slices: FxHashMap<Uin, Slice<usize>>,
    /// Homes of the escrowed partners that live on this shard.
    pub homes: FxHashMap<Uin, Home<WholeCall>>,
    /// The clock read when the message in hand was taken: every purchase in it begins and
    /// ends then.
    pub now: Timestamp,
    /// The ids' keys of a batch, computed ahead (kept to reuse the allocation).
    pub keys: Vec<Key>,
    /// The shard's side of the journal, when the engine keeps one.
    pub log: Option<Log>,
    /// Replaying the journal: warnings crossed again are not published again.
    pub quiet: bool,
}

impl Shard {
    pub fn new(index: u32, context: Arc<Context>, ledger: Ledger) -> Shard {
        let shards = context.shards;
        Shard {
            index,
            accounts: Vec::new(),
            links: Vec::new(),
            ledger,
            sagas: Slab::new(),
            batches: Slab::new(),
            expiries: Slab::new(),
            outboxes: (0..shards).map(|_| Vec::new()).collect(),
            slices: FxHashMap::default(),
            homes: FxHashMap::default(),
            now: context.clock.now(),
            keys: Vec::new(),
            log: None,
            quiet: false,
            context,
        }
    }

    fn directory(&self) -> &Directory {
        &self.context.directory
    }

    /// The slot of `uin` if it lives here.
    pub fn slot_of(&self, uin: Uin) -> Option<u32> {
        slot_here(self.directory(), self.index, uin)
    }

    /// Applies `command` to the account in `slot`, publishing the warnings it crossed.
    pub fn account_at(&mut self, slot: u32, command: Command) -> Result<Reply, Rejection> {
        let account = &mut self.accounts[slot as usize];
        let (reply, crossings) = account.handle_noting(command);
        if !crossings.is_empty() && !self.quiet {
            crate::runtime::publish_warnings(&self.context.events, account, crossings, self.now);
        }
        reply
    }

    /// Applies `command` to the account `uin` of this shard.
    pub fn account(&mut self, uin: Uin, command: Command) -> Result<Reply, Rejection> {
        match self.slot_of(uin) {
            Some(slot) => self.account_at(slot, command),
            None => Err(Rejection::UnknownUin(uin)),
        }
    }

    /// Handles one message under the round's read of the index.
    pub fn handle(&mut self, table: &IndexRead<'_>, message: Message) {
        match message {
            Message::Coordinate { op, slot, skip, origin } => self.coordinate(table, op, slot, skip, origin),
            Message::Batch { caller, requests, reply } => self.batch(table, caller, requests, reply),
            Message::Call { slot, command, step, reply } => {
                let answer = match step {
                    None => self.call_logged(slot, command),
                    Some((uin, tag)) => self.call_step(uin, slot, command, tag),
                };
                self.release(Release::Reply(reply, answer));
            }
            Message::Spawn { accounts, reply } => {
                // The runtime wrote the creation's record (see `log::SPAWN`).
                let slots = self.keep(accounts).into_iter().map(|(slot, _)| slot).collect();
                self.release(Release::Slots(reply, slots));
            }
            Message::ExpireDue { reply } => self.sweep(table, Some(reply)),
            Message::CallWhole { uin, command, reply } => self.call_whole(uin, command, reply),
            Message::OpenReservations { reply } => {
                let open = self.ledger.open_reservations();
                self.release(Release::Count(reply, open));
            }
            Message::Hops(hops) => {
                for hop in hops {
                    self.hop(table, hop);
                }
            }
        }
    }

    /// Keeps `accounts` in the next slots: answers each one's slot and UIN.
    pub fn keep(&mut self, accounts: Vec<Account>) -> Vec<(u32, Uin)> {
        crate::cache::reserve_huge(&mut self.accounts, accounts.len());
        self.links.reserve(accounts.len());
        let mut kept = Vec::with_capacity(accounts.len());
        for account in accounts {
            kept.push((self.accounts.len() as u32, account.uin));
            self.accounts.push(account);
            self.links.push(NO_SLOT);
        }
        kept
    }

    fn hop(&mut self, table: &IndexRead<'_>, hop: Hop) {
        match hop {
            Hop::Refill { partner, wanted, from } => self.refill(partner, wanted, from),
            Hop::Granted { partner, amount, exhausted } => self.granted(table, partner, amount, exhausted),
            Hop::Recall { partner } => self.give_back(partner),
            Hop::Returned { partner, settlement, recall } => self.returned(partner, settlement, recall),
            Hop::Forward { op, skip, from, origin } => self.forwarded(table, op, skip, from, origin),
            Hop::Back { op, skip, origin } => {
                let slot = match &op {
                    CoordinatorOp::Begin { request, .. } => self.slot_of(request.customer).unwrap_or(NO_SLOT),
                    _ => NO_SLOT,
                };
                self.coordinate(table, op, slot, skip, origin)
            }
            Hop::BatchAnswer { key, position, answer } => self.batch_answer(key, position, answer),
        }
    }

    pub fn coordinate(
        &mut self,
        table: &IndexRead<'_>,
        op: CoordinatorOp,
        slot: u32,
        skip: u64,
        origin: Origin,
    ) {
        let now = self.now;
        let (accounts, directory, me) = (&self.accounts, &self.context.directory, self.index);
        let charged_of = |customer| charged_of(accounts, directory, me, customer);
        let next = match &op {
            CoordinatorOp::Begin { caller, request, mode } => {
                let begin = Begin { caller: *caller, request, mode: *mode, skip, key: None };
                return self.begin(table, begin, slot, origin);
            }
            CoordinatorOp::Commit { caller, id } => {
                self.ledger.commit(table, *caller, id, now, skip, &charged_of)
            }
            CoordinatorOp::Cancel { caller, id } => {
                self.ledger.cancel(table, *caller, id, now, skip, &charged_of)
            }
        };
        if let (Next::Run(_), CoordinatorOp::Commit { caller, id } | CoordinatorOp::Cancel { caller, id }) =
            (&next, &op)
        {
            self.write_resolve(*caller, id, matches!(op, CoordinatorOp::Commit { .. }));
        }
        match next {
            Next::Answer(answer) => self.deliver(origin, answer),
            Next::Run(saga) => self.run(table, saga, slot, origin),
            Next::Elsewhere(place) => self.forward(op, skip, place.shard, origin),
        }
    }

    /// A purchase of a customer of this shard (in `slot`), begun and run as far as it goes.
    pub fn begin(&mut self, table: &IndexRead<'_>, begin: Begin<'_>, slot: u32, origin: Origin) {
        let (accounts, directory, me) = (&self.accounts, &self.context.directory, self.index);
        let charged_of = |customer| charged_of(accounts, directory, me, customer);
        match self.ledger.begin(table, begin, self.now, &charged_of) {
            Next::Answer(answer) => self.deliver(origin, answer),
            Next::Run(saga) => {
                self.write_begin(begin.caller, begin.request, begin.mode);
                self.run(table, saga, slot, origin)
            }
            Next::Elsewhere(place) => {
                let Begin { caller, request, mode, skip, .. } = begin;
                let op = CoordinatorOp::Begin { caller, request: request.clone(), mode };
                self.forward(op, skip, place.shard, origin);
            }
        }
    }

    /// Sends a request to the shard whose index entry holds its id. This shard holds no
    /// record of the id (a claim or a search prefers its own), so it is skipped from now on.
    fn forward(&mut self, op: CoordinatorOp, skip: u64, shard: u32, origin: Origin) {
        let skip = skip | (1 << self.index);
        self.outboxes[shard as usize].push(Hop::Forward { op, skip, from: self.index, origin });
    }

    /// At the shard an index entry names: answers the request from its record, or sends it
    /// back to `from` with this shard skipped.
    fn forwarded(&mut self, table: &IndexRead<'_>, op: CoordinatorOp, skip: u64, from: u32, origin: Origin) {
        let answered = match &op {
            CoordinatorOp::Begin { caller, request, mode } => {
                let (accounts, directory, me) = (&self.accounts, &self.context.directory, self.index);
                let charged_of = |customer| charged_of(accounts, directory, me, customer);
                self.ledger.answer_repeat(table, *caller, request, *mode, &charged_of)
            }
            // A commit or cancel runs where its record is: here, or the search goes on.
            CoordinatorOp::Commit { .. } | CoordinatorOp::Cancel { .. } => {
                return self.coordinate(table, op, NO_SLOT, skip, origin);
            }
        };
        match answered {
            Some(answer) => self.deliver(origin, answer),
            None => {
                let skip = skip | (1 << self.index);
                self.outboxes[from as usize].push(Hop::Back { op, skip, origin });
            }
        }
    }

    fn batch(
        &mut self,
        table: &IndexRead<'_>,
        caller: Caller,
        requests: Vec<(u32, PurchaseRequest, u32)>,
        reply: oneshot::Sender<BatchAnswers>,
    ) {
        let key = self.batches.insert(PendingBatch {
            remaining: requests.len(),
            answers: Vec::with_capacity(requests.len()),
            reply,
        }) as u32;
        // A few purchases ahead, the customer's account and the id's index entry are asked
        // for: the lookups of different purchases are independent, so their cache misses
        // overlap instead of each stalling in turn.
        let mut keys = std::mem::take(&mut self.keys);
        keys.clear();
        let warm = |shard: &Shard, keys: &mut Vec<Key>, (_, request, slot): &(u32, PurchaseRequest, u32)| {
            if let Some(account) = shard.accounts.get(*slot as usize) {
                crate::cache::prefetch_all(account);
            }
            let key = shard.ledger.key(&request.id);
            table.prefetch(key.low);
            keys.push(key);
        };
        for request in requests.iter().take(PREFETCH_DISTANCE) {
            warm(self, &mut keys, request);
        }
        for (index, (position, request, slot)) in requests.iter().enumerate() {
            if let Some(ahead) = requests.get(index + PREFETCH_DISTANCE) {
                warm(self, &mut keys, ahead);
            }
            let begin = Begin { caller, request, mode: Mode::OneShot, skip: 0, key: Some(keys[index]) };
            self.begin(table, begin, *slot, Origin::Batch { shard: self.index, key, position: *position });
        }
        self.keys = keys;
    }

    fn batch_answer(&mut self, key: u32, position: u32, answer: Answer) {
        let batch = &mut self.batches[key as usize];
        let receipt = answer.map(|outcome| match outcome {
            Outcome::Purchased(receipt) => receipt,
            other => unreachable!("a one-shot purchase answered {other:?}"),
        });
        batch.answers.push((position, receipt));
        batch.remaining -= 1;
        if batch.remaining == 0 {
            let batch = self.batches.remove(key as usize);
            self.release(Release::Batch(batch.reply, batch.answers));
        }
    }

    /// Runs a saga as far as it goes: to its end (the common case), or until it waits for
    /// an escrow refill, then it is kept.
    fn run(&mut self, table: &IndexRead<'_>, mut saga: Saga, customer: u32, origin: Origin) {
        let step = saga.first_step();
        self.drive(table, saga, customer, origin, step);
    }

    pub fn drive(
        &mut self,
        table: &IndexRead<'_>,
        mut saga: Saga,
        customer: u32,
        origin: Origin,
        mut step: Step,
    ) {
        loop {
            match step {
                Step::Call(uin, command) => {
                    let partner_side = saga.charged() == Some(uin);
                    if partner_side && self.context.escrowed.is_escrowed(uin) {
                        let key = self.sagas.vacant_key();
                        match self.slice_step(key, uin, command) {
                            Some(reply) => step = saga.advance(reply),
                            None => {
                                self.sagas.insert(Parked { saga, origin, customer });
                                return;
                            }
                        }
                        continue;
                    }
                    let slot = if uin == saga.customer() {
                        Some(customer).filter(|slot| *slot != NO_SLOT).or_else(|| self.slot_of(uin))
                    } else {
                        self.partner_slot(customer, uin)
                    };
                    let reply = match slot {
                        Some(slot) => self.account_at(slot, command),
                        None => Err(Rejection::UnknownUin(uin)),
                    };
                    step = saga.advance(reply);
                }
                Step::Done(end) => {
                    let answer = self.ledger.finish(table, saga, end, self.now);
                    self.deliver(origin, answer);
                    return;
                }
            }
        }
    }

    /// The slot of a customer's charged partner `partner` on this shard: remembered in
    /// `links` after the first lookup.
    fn partner_slot(&mut self, customer: u32, partner: Uin) -> Option<u32> {
        if let Some(&link) = self.links.get(customer as usize) {
            if link != NO_SLOT && self.accounts[link as usize].uin == partner {
                return Some(link);
            }
        }
        let slot = self.slot_of(partner)?;
        if let Some(link) = self.links.get_mut(customer as usize) {
            *link = slot;
        }
        Some(slot)
    }

    pub fn resume(&mut self, table: &IndexRead<'_>, key: usize, reply: Result<Reply, Rejection>) {
        let Parked { mut saga, origin, customer } = self.sagas.remove(key);
        let step = saga.advance(reply);
        self.drive(table, saga, customer, origin, step);
    }

    pub fn deliver(&mut self, origin: Origin, answer: Answer) {
        match origin {
            Origin::Slot(_) | Origin::Channel(_) => self.release(Release::Answer(origin, answer)),
            Origin::Batch { shard, key, position } if shard == self.index => {
                self.batch_answer(key, position, answer)
            }
            Origin::Batch { shard, key, position } => {
                self.outboxes[shard as usize].push(Hop::BatchAnswer { key, position, answer })
            }
            Origin::Expiry(key) => {
                let expiry = &mut self.expiries[key];
                expiry.remaining -= 1;
                if expiry.remaining == 0 {
                    let expiry = self.expiries.remove(key);
                    self.release(Release::Count(expiry.reply, expiry.released));
                }
            }
            Origin::Sweep => {}
        }
    }

    /// Releases the reservations past their deadline; answers `reply` once all are released.
    pub fn sweep(&mut self, table: &IndexRead<'_>, reply: Option<oneshot::Sender<usize>>) {
        self.now = self.context.clock.now();
        self.sweep_at(table, reply);
    }

    /// Releases the reservations past their deadline at `self.now`.
    pub fn sweep_at(&mut self, table: &IndexRead<'_>, reply: Option<oneshot::Sender<usize>>) {
        let sagas = self.ledger.expire_due(table, self.now);
        let count = sagas.len();
        if count > 0 {
            self.write_sweep();
        }
        let origin = match reply {
            None => None,
            Some(reply) if count == 0 => {
                self.release(Release::Count(reply, 0));
                return;
            }
            Some(reply) => {
                Some(self.expiries.insert(PendingExpiry { remaining: count, released: count, reply }))
            }
        };
        for saga in sagas {
            let customer = self.slot_of(saga.customer()).unwrap_or(NO_SLOT);
            self.run(table, saga, customer, origin.map_or(Origin::Sweep, Origin::Expiry));
        }
    }

    /// The account of a partner of this shard.
    pub fn partner_account(&self, partner: Uin) -> Option<&Account> {
        self.slot_of(partner).map(|slot| &self.accounts[slot as usize])
    }

    pub fn partner_available(&self, partner: Uin) -> crate::domain::Money {
        match self.partner_account(partner).map(|account| &account.role) {
            Some(Role::Distributor { credit } | Role::Reseller { credit }) => credit.available(),
            _ => crate::domain::Money::ZERO,
        }
    }
}

/// The slot of `uin` if it lives on shard `me`. A free function, so that it can be called
/// while the shard's ledger is borrowed.
fn slot_here(directory: &Directory, me: u32, uin: Uin) -> Option<u32> {
    match directory.get(uin) {
        Some(Place { shard, slot }) if shard == me => Some(slot),
        _ => None,
    }
}

/// The partner a customer of shard `me` is charged, from its account: for a repeat's answer.
fn charged_of(accounts: &[Account], directory: &Directory, me: u32, customer: Uin) -> Option<Uin> {
    accounts[slot_here(directory, me, customer)? as usize].role.charged()
}
