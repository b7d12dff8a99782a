//! The sharded runtime (default): one executor thread per core, each owning the actors of
//! its shard, with messages between shards in batches.
//!
//! A UIN's account lives on shard `shard_of_uin(uin)`; a purchase's ledger record, and the
//! saga that carries it out, on shard `shard_of_purchase(id)`. An actor here is the account
//! (its state and `Account::handle`); it needs no task or mailbox of its own. A shard runs a
//! loop: take the packets in its inbox, handle each message, and when a saga's next step
//! is for an account on the same shard, handle it inline; otherwise queue it for the
//! account's shard. At the end of each round the queued messages go out, one packet per
//! destination shard. Answers to callers go back through a reply slot (single calls, no
//! allocation), a one-shot channel (everything else), or once per shard for a batch.
//!
//! Invariants:
//! - an account is touched only by its shard's thread; a ledger partition likewise;
//! - inboxes are bounded; a shard never blocks on a full inbox of another shard (it keeps the
//!   packet and retries while it goes on draining its own), so shards cannot deadlock;
//! - every saga runs to its end; expiry sweeps and `expire_due` answer only once the
//!   releases they started are done.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use dashmap::DashSet;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use slab::Slab;
use tokio::sync::oneshot;

mod escrow;

use escrow::WholeCall;

use super::slots::Slots;
use super::{ChargedCache, CoordinatorOp, Failure, RuntimeSettings};
use crate::clock::Clock;
use crate::coordinator::escrow::{EscrowedPartners, Home, Settlement, Slice};
use crate::coordinator::{Ledger, Mode, Next, Outcome, PurchaseReceipt, PurchaseRequest, Saga, Step};
use crate::domain::{Account, Caller, Command, Credit, Money, PurchaseId, Rejection, Reply, Timestamp, Uin};
use crate::events::EventBus;

type Answer = Result<Outcome, Rejection>;
type BatchAnswers = Vec<(u32, Result<PurchaseReceipt, Rejection>)>;

/// Packets a shard's inbox holds before senders wait.
const INBOX_PACKETS: usize = 4096;
/// Messages a shard handles before it sends what it queued, so that other shards are not
/// starved while it drains a long inbox.
const ROUND_MESSAGES_MAX: usize = 16_384;
/// Times a shard with an empty inbox yields before it parks.
const SPINS_BEFORE_PARKING: usize = 32;
/// Reply slots for single calls in flight at once; more fall back to one-shot channels.
const REPLY_SLOTS: usize = 4096;

/// Where a saga's answer goes.
enum Origin {
    Slot(u32),
    Channel(oneshot::Sender<Answer>),
    Batch {
        key: usize,
        position: u32,
    },
    /// A release started by `expire_due`; the key is the waiting request.
    Expiry(usize),
    /// A release started by the periodic sweep: nobody waits.
    Sweep,
}

enum Message {
    Coordinate {
        op: CoordinatorOp,
        origin: Origin,
    },
    Batch {
        caller: Caller,
        requests: Vec<(u32, PurchaseRequest)>,
        reply: oneshot::Sender<BatchAnswers>,
    },
    Call {
        uin: Uin,
        command: Command,
        reply: oneshot::Sender<Result<Reply, Rejection>>,
    },
    Spawn {
        accounts: Vec<Account>,
        reply: oneshot::Sender<()>,
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
    Stop,
}

/// What shards send each other: kept apart from `Message` so that the batches that carry
/// most of the traffic hold small elements.
enum Hop {
    /// A saga's step for an account of this shard, from the saga's shard.
    Step { uin: Uin, command: Command, from: u32, saga: u32 },
    /// The answer to a step, back at the saga's shard.
    StepReply { saga: u32, reply: Result<Reply, Rejection> },
    /// To an escrowed partner's home: a slice needs at least `wanted` more.
    Refill { partner: Uin, wanted: Money, from: u32 },
    /// From the home: credit for the slice. `exhausted`: it is everything the partner had
    /// after all slices were recalled, so what it cannot cover is refused.
    Granted { partner: Uin, amount: Money, exhausted: bool },
    /// From the home: give back the slice's free credit and settle its used credit.
    Recall { partner: Uin },
    /// To the home: a slice's free credit given back and its used credit settled, per bill
    /// month; `recall` when it answers a recall.
    Returned { partner: Uin, settlement: Settlement, recall: bool },
}

enum Packet {
    One(Message),
    Hops(Vec<Hop>),
}

fn shard_of_uin(uin: Uin, shards: usize) -> usize {
    // Fibonacci hashing spreads sequential UINs evenly.
    ((uin.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % shards as u64) as usize
}

fn shard_of_purchase(id: &PurchaseId, shards: usize) -> usize {
    (id.partition_hash() % shards as u64) as usize
}

struct PendingBatch {
    remaining: usize,
    answers: BatchAnswers,
    reply: oneshot::Sender<BatchAnswers>,
}

struct PendingExpiry {
    remaining: usize,
    released: usize,
    reply: oneshot::Sender<usize>,
}

/// The state one shard thread owns.
struct Shard {
    index: u32,
    /// The partner of each customer whose purchase ended here, for repeats' answers.
    charged: ChargedCache,
    accounts: FxHashMap<Uin, Account>,
    ledger: Ledger,
    sagas: Slab<(Saga, Origin)>,
    batches: Slab<PendingBatch>,
    expiries: Slab<PendingExpiry>,
    /// Hops for each shard, sent at the end of the round.
    outboxes: Vec<Vec<Hop>>,
    /// Partners whose credit is split into slices (none on a single shard).
    escrowed: Arc<EscrowedPartners>,
    /// This shard's slices of the escrowed partners (the home's own slice included), with
    /// parked sagas named by their key in `sagas`.
    slices: FxHashMap<Uin, Slice<usize>>,
    /// The homes of the escrowed partners that live on this shard: what they hold for their
    /// slices, and their recalls in progress.
    homes: FxHashMap<Uin, Home<WholeCall>>,
    senders: Vec<Sender<Packet>>,
    slots: Arc<Slots<Answer>>,
    clock: Arc<dyn Clock>,
    /// The clock read when the packet being handled was taken: every purchase in a packet
    /// (a whole batch) begins and ends at it, one clock read instead of two per purchase.
    now: Timestamp,
    events: Arc<EventBus>,
    sweep_interval: Duration,
}

impl Shard {
    fn run(mut self, inbox: Receiver<Packet>) {
        let mut next_sweep = Instant::now() + self.sweep_interval;
        let mut stopping = false;
        while !stopping {
            let waiting_to_send = self.outboxes.iter().any(|outbox| !outbox.is_empty());
            let timeout = if waiting_to_send {
                Duration::from_micros(50)
            } else {
                next_sweep.saturating_duration_since(Instant::now())
            };
            let mut handled = 0;
            // Under load the next packet is usually a moment away: yield a few times before
            // parking, since waking a parked thread costs a system call on both sides.
            let mut first = None;
            for _ in 0..SPINS_BEFORE_PARKING {
                match inbox.try_recv() {
                    Ok(packet) => {
                        first = Some(packet);
                        break;
                    }
                    Err(TryRecvError::Empty) => std::thread::yield_now(),
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let first = match first {
                Some(packet) => Some(packet),
                None => match inbox.recv_timeout(timeout) {
                    Ok(packet) => Some(packet),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                },
            };
            // Between rounds, with no read of the index held: a rebuild may run.
            self.ledger.index().maintain();
            if let Some(packet) = first {
                handled += self.take(packet, &mut stopping);
            }
            while handled < ROUND_MESSAGES_MAX && !stopping {
                match inbox.try_recv() {
                    Ok(packet) => handled += self.take(packet, &mut stopping),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if Instant::now() >= next_sweep {
                self.sweep(None);
                self.settle_slices();
                next_sweep = Instant::now() + self.sweep_interval;
            }
            self.flush();
        }
    }

    /// Handles one packet; answers how many messages it held.
    fn take(&mut self, packet: Packet, stopping: &mut bool) -> usize {
        self.now = self.clock.now();
        match packet {
            Packet::One(message) => {
                *stopping |= self.handle(message);
                1
            }
            Packet::Hops(hops) => {
                let count = hops.len();
                for hop in &hops {
                    self.warm_hop(hop);
                }
                for hop in hops {
                    self.hop(hop);
                }
                count
            }
        }
    }

    /// Handles one message; answers whether the shard should stop.
    fn handle(&mut self, message: Message) -> bool {
        match message {
            Message::Coordinate { op, origin } => self.coordinate(op, origin),
            Message::Batch { caller, requests, reply } => {
                let key = self.batches.insert(PendingBatch {
                    remaining: requests.len(),
                    answers: Vec::with_capacity(requests.len()),
                    reply,
                });
                let index = self.ledger.index().clone();
                let table = index.read();
                for (_, request) in &requests {
                    self.warm_account(request.customer);
                    self.ledger.warm(&table, &request.id);
                }
                drop(table);
                for (position, request) in requests {
                    let op = CoordinatorOp::Begin { caller, request, mode: Mode::OneShot };
                    self.coordinate(op, Origin::Batch { key, position });
                }
            }
            Message::Call { uin, command, reply } => {
                let _ = reply.send(self.account(uin, command));
            }
            Message::Spawn { accounts, reply } => {
                self.accounts.reserve(accounts.len());
                for account in accounts {
                    self.accounts.insert(account.uin, account);
                }
                let _ = reply.send(());
            }
            Message::ExpireDue { reply } => self.sweep(Some(reply)),
            Message::CallWhole { uin, command, reply } => self.call_whole(uin, command, reply),
            Message::OpenReservations { reply } => {
                let _ = reply.send(self.ledger.open_reservations());
            }
            Message::Stop => return true,
        }
        false
    }

    /// Looks up, and so brings into the cache, an account of this shard that a message of
    /// the packet in hand will need. A packet's lookups are independent of each other, so the
    /// processor overlaps their cache misses, where handling the messages one by one would
    /// wait for each in turn: the point of taking messages in batches.
    fn warm_account(&self, uin: Uin) {
        if shard_of_uin(uin, self.senders.len()) == self.index as usize {
            std::hint::black_box(self.accounts.get(&uin).map(|account| account.uin));
        }
    }

    /// Warms what a hop will touch: the account of a step, or for a reply, the account of
    /// the saga's customer and the saga's ledger record.
    fn warm_hop(&self, hop: &Hop) {
        match hop {
            Hop::Step { uin, .. } => self.warm_account(*uin),
            Hop::StepReply { saga, .. } => {
                if let Some((saga, _)) = self.sagas.get(*saga as usize) {
                    self.warm_account(saga.customer());
                    self.ledger.warm_record(saga);
                }
            }
            _ => {}
        }
    }

    fn hop(&mut self, hop: Hop) {
        match hop {
            Hop::Step { uin, command, from, saga } => {
                let reply = self.account(uin, command);
                self.outboxes[from as usize].push(Hop::StepReply { saga, reply });
            }
            Hop::StepReply { saga, reply } => {
                let step = self.sagas[saga as usize].0.advance(reply);
                self.drive(saga as usize, step);
            }
            Hop::Refill { partner, wanted, from } => self.refill(partner, wanted, from),
            Hop::Granted { partner, amount, exhausted } => self.granted(partner, amount, exhausted),
            Hop::Recall { partner } => self.give_back(partner),
            Hop::Returned { partner, settlement, recall } => self.returned(partner, settlement, recall),
        }
    }

    fn account(&mut self, uin: Uin, command: Command) -> Result<Reply, Rejection> {
        match self.accounts.get_mut(&uin) {
            Some(account) => {
                let (reply, crossings) = account.handle_noting(command);
                if !crossings.is_empty() {
                    super::publish_warnings(&self.events, account, crossings, self.now);
                }
                reply
            }
            None => Err(Rejection::UnknownUin(uin)),
        }
    }

    fn coordinate(&mut self, op: CoordinatorOp, origin: Origin) {
        let now = self.now;
        let index = self.ledger.index().clone();
        let table = index.read();
        let charged = &self.charged;
        let next = match op {
            CoordinatorOp::Begin { caller, request, mode } => {
                self.ledger.begin(&table, caller, request, mode, now, &[], &|customer| charged.get(customer))
            }
            CoordinatorOp::Commit { caller, id } => {
                self.ledger.commit(&table, caller, id, now, &|customer| charged.get(customer))
            }
            CoordinatorOp::Cancel { caller, id } => {
                self.ledger.cancel(&table, caller, id, now, &|customer| charged.get(customer))
            }
        };
        drop(table);
        match next {
            Next::Answer(answer) => self.deliver(origin, answer),
            Next::Run(saga) => self.start(saga, origin),
            Next::Elsewhere(place) => unreachable!("a partition alone in its index: {place:?}"),
        }
    }

    fn start(&mut self, mut saga: Saga, origin: Origin) {
        let step = saga.first_step();
        let key = self.sagas.insert((saga, origin));
        self.drive(key, step);
    }

    /// Advances a saga through every step it can take on this shard; a step for another
    /// shard's account is queued, and the saga waits for its reply.
    fn drive(&mut self, key: usize, mut step: Step) {
        let shards = self.senders.len();
        loop {
            match step {
                Step::Call(uin, command) => {
                    let target = shard_of_uin(uin, shards);
                    let partner_side = self.sagas[key].0.charged() == Some(uin);
                    // Every shard, the home included, serves an escrowed partner from its slice,
                    // so that every reservation goes through the one protocol.
                    if partner_side && self.escrowed.is_escrowed(uin) {
                        match self.slice_step(key, uin, command) {
                            Some(reply) => {
                                step = self.sagas[key].0.advance(reply);
                                continue;
                            }
                            None => return,
                        }
                    }
                    if target == self.index as usize {
                        let reply = self.account(uin, command);
                        step = self.sagas[key].0.advance(reply);
                    } else {
                        let hop = Hop::Step { uin, command, from: self.index, saga: key as u32 };
                        self.outboxes[target].push(hop);
                        return;
                    }
                }
                Step::Done(end) => {
                    let (saga, origin) = self.sagas.remove(key);
                    self.charged.learn(&saga);
                    let index = self.ledger.index().clone();
                    let answer = self.ledger.finish(&index.read(), saga, end, self.now);
                    self.deliver(origin, answer);
                    return;
                }
            }
        }
    }

    fn deliver(&mut self, origin: Origin, answer: Answer) {
        match origin {
            Origin::Slot(index) => self.slots.complete(index, answer),
            Origin::Channel(reply) => {
                let _ = reply.send(answer);
            }
            Origin::Batch { key, position } => {
                let batch = &mut self.batches[key];
                let receipt = answer.map(|outcome| match outcome {
                    Outcome::Purchased(receipt) => receipt,
                    other => unreachable!("a one-shot purchase answered {other:?}"),
                });
                batch.answers.push((position, receipt));
                batch.remaining -= 1;
                if batch.remaining == 0 {
                    let batch = self.batches.remove(key);
                    let _ = batch.reply.send(batch.answers);
                }
            }
            Origin::Expiry(key) => {
                let expiry = &mut self.expiries[key];
                expiry.remaining -= 1;
                if expiry.remaining == 0 {
                    let expiry = self.expiries.remove(key);
                    let _ = expiry.reply.send(expiry.released);
                }
            }
            Origin::Sweep => {}
        }
    }

    /// Releases the reservations past their deadline; answers `reply` once all are released.
    fn sweep(&mut self, reply: Option<oneshot::Sender<usize>>) {
        self.now = self.clock.now();
        let index = self.ledger.index().clone();
        let sagas = self.ledger.expire_due(&index.read(), self.now);
        let count = sagas.len();
        let origin = match reply {
            None => None,
            Some(reply) if count == 0 => {
                let _ = reply.send(0);
                return;
            }
            Some(reply) => {
                Some(self.expiries.insert(PendingExpiry { remaining: count, released: count, reply }))
            }
        };
        for saga in sagas {
            self.start(saga, origin.map_or(Origin::Sweep, Origin::Expiry));
        }
    }

    /// Sends each non-empty outbox as one packet. A full inbox keeps its packet for the next
    /// round rather than block: the other shard may be waiting to send to this one.
    fn flush(&mut self) {
        for (target, outbox) in self.outboxes.iter_mut().enumerate() {
            if outbox.is_empty() {
                continue;
            }
            // Keep the capacity: the next round sends about as many.
            let capacity = outbox.capacity();
            let hops = std::mem::replace(outbox, Vec::with_capacity(capacity));
            match self.senders[target].try_send(Packet::Hops(hops)) {
                Ok(()) => {}
                Err(TrySendError::Full(Packet::Hops(hops))) => *outbox = hops,
                Err(TrySendError::Full(Packet::One(_))) => unreachable!("flush sends hops"),
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

pub struct ShardedRuntime {
    /// Partners whose credit is split into slices: calls on them gather the slices first.
    escrowed: Arc<EscrowedPartners>,
    senders: Vec<Sender<Packet>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    slots: Arc<Slots<Answer>>,
    /// Which UINs exist, for creation checks and audits; written only under `creating`.
    uins: DashSet<Uin>,
    /// Serializes account creation, so that an import is all or nothing.
    creating: tokio::sync::Mutex<()>,
}

impl ShardedRuntime {
    pub fn start(settings: RuntimeSettings, clock: Arc<dyn Clock>) -> ShardedRuntime {
        let shard_count = settings.workers.max(1);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shard_count).map(|_| crossbeam_channel::bounded::<Packet>(INBOX_PACKETS)).unzip();
        let slots = Slots::new(REPLY_SLOTS);
        let escrowed = Arc::new(EscrowedPartners::new(settings.escrow_partners.iter().copied(), shard_count));
        let threads = receivers
            .into_iter()
            .enumerate()
            .map(|(index, inbox)| {
                let shard = Shard {
                    index: index as u32,
                    charged: ChargedCache::default(),
                    accounts: FxHashMap::default(),
                    ledger: Ledger::alone(settings.ledger_limits),
                    sagas: Slab::new(),
                    batches: Slab::new(),
                    expiries: Slab::new(),
                    outboxes: (0..shard_count).map(|_| Vec::new()).collect(),
                    escrowed: escrowed.clone(),
                    slices: FxHashMap::default(),
                    homes: FxHashMap::default(),
                    senders: senders.clone(),
                    slots: slots.clone(),
                    now: clock.now(),
                    clock: clock.clone(),
                    events: settings.events.clone(),
                    sweep_interval: Duration::from_millis(settings.expiry_sweep_interval_ms.max(1)),
                };
                std::thread::Builder::new()
                    .name(format!("shard-{index}"))
                    .spawn(move || shard.run(inbox))
                    .expect("spawn a shard thread")
            })
            .collect();
        ShardedRuntime {
            escrowed,
            senders,
            threads: Mutex::new(threads),
            slots,
            uins: DashSet::new(),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// Sends without blocking the caller's executor: a full inbox makes the task yield.
    async fn send(&self, shard: usize, mut packet: Packet) -> Result<(), Failure> {
        loop {
            match self.senders[shard].try_send(packet) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(returned)) => {
                    packet = returned;
                    tokio::task::yield_now().await;
                }
                Err(TrySendError::Disconnected(_)) => return Err(Failure::Stopped),
            }
        }
    }

    async fn ask<T>(
        &self,
        shard: usize,
        message: impl FnOnce(oneshot::Sender<T>) -> Message,
    ) -> Result<T, Failure> {
        let (sender, receiver) = oneshot::channel();
        self.send(shard, Packet::One(message(sender))).await?;
        receiver.await.map_err(|_| Failure::Stopped)
    }

    pub async fn call(&self, uin: Uin, command: Command) -> Result<Result<Reply, Rejection>, Failure> {
        let shard = shard_of_uin(uin, self.senders.len());
        if command.credit() != Credit::Untouched && self.is_escrowed(uin) {
            // Every slice comes home first, at the home, with no refill in between: a
            // snapshot is exact and a credit-line reduction sees all available credit.
            return self.ask(shard, |reply| Message::CallWhole { uin, command, reply }).await;
        }
        self.ask(shard, |reply| Message::Call { uin, command, reply }).await
    }

    pub async fn coordinate(&self, op: CoordinatorOp) -> Result<Answer, Failure> {
        let shard = shard_of_purchase(op.id(), self.senders.len());
        match self.slots.acquire() {
            Some(mut slot) => {
                let origin = Origin::Slot(slot.index());
                // Dropped before the send completes (a cancelled caller, a stopped runtime),
                // the slot frees itself: no shard has its index.
                self.send(shard, Packet::One(Message::Coordinate { op, origin })).await?;
                slot.mark_sent();
                Ok(slot.await)
            }
            None => self.ask(shard, |reply| Message::Coordinate { op, origin: Origin::Channel(reply) }).await,
        }
    }

    pub async fn purchase_batch(
        &self,
        caller: Caller,
        requests: Vec<PurchaseRequest>,
    ) -> Result<Vec<Result<PurchaseReceipt, Rejection>>, Failure> {
        let shard_count = self.senders.len();
        let count = requests.len();
        // Ids spread evenly: room for a fair share and some skew, so most batches grow none.
        let share = count.div_ceil(shard_count) * 5 / 4;
        let mut per_shard: Vec<Vec<(u32, PurchaseRequest)>> =
            (0..shard_count).map(|_| Vec::with_capacity(share)).collect();
        for (position, request) in requests.into_iter().enumerate() {
            per_shard[shard_of_purchase(&request.id, shard_count)].push((position as u32, request));
        }
        let mut waiting = Vec::with_capacity(shard_count);
        for (shard, requests) in per_shard.into_iter().enumerate() {
            if requests.is_empty() {
                continue;
            }
            let (reply, receiver) = oneshot::channel();
            self.send(shard, Packet::One(Message::Batch { caller, requests, reply })).await?;
            waiting.push(receiver);
        }
        let mut answers: Vec<Option<Result<PurchaseReceipt, Rejection>>> = (0..count).map(|_| None).collect();
        for receiver in waiting {
            for (position, answer) in receiver.await.map_err(|_| Failure::Stopped)? {
                answers[position as usize] = Some(answer);
            }
        }
        Ok(answers.into_iter().map(|answer| answer.expect("every position answered")).collect())
    }

    pub async fn expire_due(&self) -> Result<usize, Failure> {
        let mut released = 0;
        for shard in 0..self.senders.len() {
            released += self.ask(shard, |reply| Message::ExpireDue { reply }).await?;
        }
        Ok(released)
    }

    pub async fn open_reservations(&self) -> Result<usize, Failure> {
        let mut open = 0;
        for shard in 0..self.senders.len() {
            open += self.ask(shard, |reply| Message::OpenReservations { reply }).await?;
        }
        Ok(open)
    }

    pub async fn spawn(&self, accounts: Vec<Account>) -> Result<Result<(), Rejection>, Failure> {
        let _creating = self.creating.lock().await;
        let mut seen = std::collections::HashSet::with_capacity(accounts.len());
        for account in &accounts {
            if self.uins.contains(&account.uin) || !seen.insert(account.uin) {
                return Ok(Err(Rejection::UinTaken(account.uin)));
            }
        }
        let shard_count = self.senders.len();
        let mut per_shard: Vec<Vec<Account>> = (0..shard_count).map(|_| Vec::new()).collect();
        for account in accounts {
            per_shard[shard_of_uin(account.uin, shard_count)].push(account);
        }
        for (shard, accounts) in per_shard.into_iter().enumerate() {
            if accounts.is_empty() {
                continue;
            }
            let uins: Vec<Uin> = accounts.iter().map(|account| account.uin).collect();
            self.ask(shard, |reply| Message::Spawn { accounts, reply }).await?;
            for uin in uins {
                self.uins.insert(uin);
            }
        }
        Ok(Ok(()))
    }

    pub fn contains(&self, uin: Uin) -> bool {
        self.uins.contains(&uin)
    }

    /// Whether `partner`'s available credit is split into per-shard slices: the shards ask
    /// the same `EscrowedPartners`, the one place this is decided.
    pub fn is_escrowed(&self, partner: Uin) -> bool {
        self.escrowed.is_escrowed(partner)
    }

    pub fn uins(&self) -> Vec<Uin> {
        self.uins.iter().map(|uin| *uin).collect()
    }

    pub fn shutdown(&self) {
        for sender in &self.senders {
            let _ = sender.send(Packet::One(Message::Stop));
        }
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for ShardedRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
