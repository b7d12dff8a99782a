//! The sharded runtime (default): the accounts split into one shard per core, each shard run
//! by whoever holds its lock, so that a purchase is one step on one shard with no message.
//!
//! Placement: a partner lives on shard `shard_of_uin(uin)`, a customer on the shard of the
//! partner its purchases charge (or, if that partner is escrowed, on `shard_of_uin` of its
//! own UIN: its partner side is then the shard's escrow slice). So a customer's purchase
//! finds both of its accounts, or the slice, on one shard, and its ledger record is kept
//! there too; [`directory::Directory`] maps a UIN to its shard and slot, looked up once, on
//! the caller's thread. Purchase ids are claimed across shards in one shared
//! [`IdIndex`], so a repeat of an id with another customer is still refused, and a commit or
//! cancel that names only the id finds its shard.
//!
//! Execution (flat combining): a caller that finds its shard free takes the shard's lock and
//! runs its request there and then, on its own thread, then whatever others queued
//! meanwhile; a caller that finds it busy queues the request, and the holder runs it before
//! letting go. No thread wakes another for a call on an idle engine. Each shard also has a
//! thread of its own, parked while callers do the work, that runs the periodic expiry and
//! escrow settlement, and the hops other shards send (escrow refills and recalls, requests
//! forwarded to the shard that holds their id).
//!
//! Invariants:
//! - a shard changes only under its lock; a thread holding a shard's lock never waits for
//!   another lock (it only tries), so shards cannot deadlock;
//! - every message queued on a shard is run: a queuer tries the lock after queuing, and a
//!   holder looks at the queue after letting go (with a full fence on both sides), so one
//!   of them sees the other;
//! - queues are bounded: a caller yields while its shard's queue is full, and a shard keeps
//!   the hops a full queue refused and sends them in its next round.

mod directory;
mod escrow;
mod log;
mod shard;

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use parking_lot::{Mutex, MutexGuard};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use self::directory::{Directory, Place};
use self::log::Log;
pub use self::log::ReplayError;
use self::shard::{Answer, Message, Origin, Shard};
use super::slots::Slots;
use super::{CoordinatorOp, Failure, RuntimeSettings, StepAnswers, StepTag};
use crate::cache::PREFETCH_DISTANCE;
use crate::clock::Clock;
use crate::coordinator::escrow::EscrowedPartners;
use crate::coordinator::index::Claim;
use crate::coordinator::{IdIndex, Keys, Ledger, LedgerImage, PurchaseReceipt, PurchaseRequest};
use crate::domain::{Account, Caller, Command, Credit, Rejection, Reply, Role, Uin};
use crate::events::EventBus;
use crate::journal::Journal;

/// A slot no account has: a purchase of an unknown customer.
pub(super) const NO_SLOT: u32 = u32::MAX;
/// Messages a shard's queue holds before callers wait.
const QUEUE_MESSAGES: usize = 4096;
/// Messages a holder runs for others before it leaves the rest to the shard's thread, so
/// that a caller is not held up long by work that is not its own.
const ROUND_MESSAGES_MAX: usize = 16_384;
/// Reply slots for single calls in flight at once; more fall back to one-shot channels.
const REPLY_SLOTS: usize = 4096;
/// How soon a shard's thread retries hops a full queue refused.
const RETRY_INTERVAL: Duration = Duration::from_micros(50);

/// What every shard and every caller share (but the shards themselves).
pub(super) struct Context {
    pub directory: Directory,
    pub index: Arc<IdIndex>,
    pub keys: Arc<Keys>,
    pub escrowed: Arc<EscrowedPartners>,
    pub slots: Arc<Slots<Result<Answer, Failure>>>,
    pub events: Arc<EventBus>,
    pub clock: Arc<dyn Clock>,
    pub sweep_interval: Duration,
    pub shards: usize,
    /// The answers of the steps of unfinished engine operations.
    pub steps: Arc<StepAnswers>,
}

/// One shard, its queue, and its thread.
struct Cell {
    shard: Mutex<Shard>,
    queue: ArrayQueue<Message>,
    /// The shard's own thread, to wake when a message needs running and no caller may come.
    thread: OnceLock<Thread>,
    /// The shard kept hops a full queue refused: its thread retries soon.
    retry: AtomicBool,
}

struct Shards {
    cells: Box<[Cell]>,
    context: Arc<Context>,
    stopping: AtomicBool,
}

pub fn shard_of_uin(uin: Uin, shards: usize) -> usize {
    // Fibonacci hashing spreads sequential UINs evenly.
    ((uin.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % shards as u64) as usize
}

impl Shards {
    /// Runs the shard whose lock `guard` holds: `first` (the holder's own message), then
    /// what is queued, in rounds; sends the rounds' hops; lets go, and takes the shard again
    /// if a message was queued meanwhile.
    fn combine<'a>(
        &'a self,
        me: usize,
        mut guard: MutexGuard<'a, Shard>,
        mut first: Option<Message>,
        mut sweep: bool,
    ) {
        let cell = &self.cells[me];
        let mut handled = 0;
        loop {
            self.round(me, &mut guard, first.take(), std::mem::take(&mut sweep), &mut handled);
            drop(guard);
            fence(Ordering::SeqCst);
            if cell.queue.is_empty() {
                return;
            }
            if handled >= ROUND_MESSAGES_MAX {
                // Leave the rest to the shard's own thread.
                self.wake(me);
                return;
            }
            match cell.shard.try_lock() {
                Some(again) => guard = again,
                None => return,
            }
        }
    }

    /// One round under the shard's lock and a read of the index.
    fn round(&self, me: usize, shard: &mut Shard, first: Option<Message>, sweep: bool, handled: &mut usize) {
        let cell = &self.cells[me];
        // Between rounds, with no read held: the index may rebuild.
        self.context.index.maintain();
        let table = self.context.index.read(me as u32);
        if sweep {
            shard.sweep(&table, None);
            shard.settle_slices();
        }
        // The clock is read once per message (a whole batch begins and ends at one instant),
        // never before the message was sent: a purchase is stamped no earlier than it came.
        if let Some(message) = first {
            shard.now = self.context.clock.now();
            shard.handle(&table, message);
        }
        let started = *handled;
        while *handled - started < ROUND_MESSAGES_MAX {
            match cell.queue.pop() {
                Some(message) => {
                    shard.now = self.context.clock.now();
                    shard.handle(&table, message);
                    *handled += 1;
                }
                None => break,
            }
        }
        drop(table);
        shard.seal();
        self.flush(me, shard);
    }

    /// Sends each shard its hops as one message; a full queue keeps them for the next round.
    fn flush(&self, me: usize, shard: &mut Shard) {
        let mut kept = false;
        for (target, outbox) in shard.outboxes.iter_mut().enumerate() {
            if outbox.is_empty() {
                continue;
            }
            let hops = std::mem::take(outbox);
            match self.cells[target].queue.push(Message::Hops(hops)) {
                Ok(()) => {
                    if target != me {
                        self.wake(target);
                    }
                }
                Err(Message::Hops(hops)) => {
                    *outbox = hops;
                    kept = true;
                }
                Err(_) => unreachable!("flush sends hops"),
            }
        }
        self.cells[me].retry.store(kept, Ordering::Relaxed);
        if kept {
            self.wake(me);
        }
    }

    fn wake(&self, shard: usize) {
        if let Some(thread) = self.cells[shard].thread.get() {
            thread.unpark();
        }
    }

    /// Runs `message` on `shard`: at once on this thread when the shard is free, else
    /// queued for its holder. `sent` is called as the message leaves the caller's hands.
    async fn submit(&self, shard: usize, message: Message, sent: impl FnOnce()) -> Result<(), Failure> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(Failure::Stopped);
        }
        let cell = &self.cells[shard];
        if let Some(guard) = cell.shard.try_lock() {
            sent();
            self.combine(shard, guard, Some(message), false);
            return Ok(());
        }
        let mut message = message;
        loop {
            match cell.queue.push(message) {
                Ok(()) => break,
                Err(back) => {
                    if self.stopping.load(Ordering::Acquire) {
                        return Err(Failure::Stopped);
                    }
                    message = back;
                    tokio::task::yield_now().await;
                }
            }
        }
        sent();
        fence(Ordering::SeqCst);
        // The holder may have looked at the queue before the message was in it.
        if let Some(guard) = cell.shard.try_lock() {
            self.combine(shard, guard, None, false);
        }
        Ok(())
    }

    /// The shard's own thread: parked until woken or a sweep is due.
    fn run(self: Arc<Self>, me: usize) {
        let cell = &self.cells[me];
        let mut next_sweep = Instant::now() + self.context.sweep_interval;
        loop {
            let timeout = if cell.retry.load(Ordering::Relaxed) {
                RETRY_INTERVAL
            } else {
                next_sweep.saturating_duration_since(Instant::now())
            };
            std::thread::park_timeout(timeout);
            let stopping = self.stopping.load(Ordering::Acquire);
            let sweep = Instant::now() >= next_sweep;
            if sweep {
                next_sweep = Instant::now() + self.context.sweep_interval;
            }
            let guard = cell.shard.lock();
            self.combine(me, guard, None, sweep && !stopping);
            if stopping {
                return;
            }
        }
    }
}

pub struct ShardedRuntime {
    shards: Arc<Shards>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Serializes account creation, so that an import is all or nothing.
    creating: tokio::sync::Mutex<()>,
    /// Where creations are written (shards write the rest), when the engine keeps a journal.
    journal: Option<Arc<Journal>>,
}

impl ShardedRuntime {
    /// A runtime in memory only.
    pub fn start(settings: RuntimeSettings, clock: Arc<dyn Clock>) -> ShardedRuntime {
        let count = settings.workers.clamp(1, crate::coordinator::index::SHARDS_MAX);
        Recovering::new(settings, clock, Keys::random(), count).start(None)
    }

    fn context(&self) -> &Context {
        &self.shards.context
    }

    /// Sends a message whose answer comes back on a one-shot channel.
    async fn ask<T>(
        &self,
        shard: usize,
        message: impl FnOnce(oneshot::Sender<T>) -> Message,
    ) -> Result<T, Failure> {
        let (sender, receiver) = oneshot::channel();
        self.shards.submit(shard, message(sender), || {}).await?;
        receiver.await.map_err(|_| Failure::Stopped)
    }

    pub async fn call(&self, uin: Uin, command: Command) -> Result<Result<Reply, Rejection>, Failure> {
        let Some(Place { shard, slot }) = self.context().directory.get(uin) else {
            return Ok(Err(Rejection::UnknownUin(uin)));
        };
        if command.credit() != Credit::Untouched && self.is_escrowed(uin) {
            // Every slice comes home first, at the home, with no refill in between: a
            // snapshot is exact and a credit-line reduction sees all available credit.
            return self.ask(shard as usize, |reply| Message::CallWhole { uin, command, reply }).await;
        }
        self.ask(shard as usize, |reply| Message::Call { slot, command, step: None, reply }).await
    }

    /// A call that is a step of an engine operation: written and its answer noted even if
    /// refused. A step to an unknown UIN goes to the shard of its UIN, which answers so.
    /// Only a journalled engine makes steps (`engine::intents` decides; without a journal
    /// its operations make plain calls).
    pub async fn call_step(
        &self,
        uin: Uin,
        command: Command,
        tag: StepTag,
    ) -> Result<Result<Reply, Rejection>, Failure> {
        debug_assert!(self.journal.is_some(), "a step on a runtime without a journal");
        let (shard, slot) = self.route_customer(uin);
        self.ask(shard, |reply| Message::Call { slot, command, step: Some((uin, tag)), reply }).await
    }

    pub fn step_answers(&self) -> &Arc<StepAnswers> {
        &self.context().steps
    }

    /// The shard a request goes to, and its customer's slot there.
    fn route(&self, op: &CoordinatorOp) -> (usize, u32) {
        let context = self.context();
        match op {
            // An unknown customer's purchase is refused, and remembered, at one shard.
            CoordinatorOp::Begin { request, .. } => self.route_customer(request.customer),
            CoordinatorOp::Commit { id, .. } | CoordinatorOp::Cancel { id, .. } => {
                let key = context.keys.id(id);
                match context.index.read(0).find(key.low, None, 0, |_| None) {
                    Some(Claim::There(place)) => (place.shard as usize, NO_SLOT),
                    // No entry anywhere: any shard answers that the purchase is unknown.
                    _ => (0, NO_SLOT),
                }
            }
        }
    }

    pub async fn coordinate(&self, op: CoordinatorOp) -> Result<Answer, Failure> {
        let (shard, slot) = self.route(&op);
        match self.context().slots.acquire() {
            Some(mut reply) => {
                let origin = Origin::Slot(reply.index());
                let message = Message::Coordinate { op, slot, skip: 0, origin };
                // Dropped before the message left (a cancelled caller, a stopped runtime),
                // the slot frees itself: no shard has its index.
                self.shards.submit(shard, message, || reply.mark_sent()).await?;
                reply.await
            }
            None => {
                let message =
                    |reply| Message::Coordinate { op, slot, skip: 0, origin: Origin::Channel(reply) };
                self.ask(shard, message).await
            }
        }
    }

    pub async fn purchase_batch(
        &self,
        caller: Caller,
        requests: Vec<PurchaseRequest>,
    ) -> Result<Vec<Result<PurchaseReceipt, Rejection>>, Failure> {
        let count = requests.len();
        let shards = self.context().shards;
        // Customers spread evenly: room for a fair share and some skew, so most batches grow
        // none.
        let share = count.div_ceil(shards) * 5 / 4;
        let mut per_shard: Vec<Vec<(u32, PurchaseRequest, u32)>> = (0..shards).map(|_| Vec::new()).collect();
        // A few requests ahead, each customer's directory entry is asked for, so that the
        // lookups' cache misses overlap.
        let directory = &self.context().directory;
        for request in requests.iter().take(PREFETCH_DISTANCE) {
            directory.prefetch(request.customer);
        }
        let customers: Vec<Uin> = requests.iter().map(|request| request.customer).collect();
        for (position, request) in requests.into_iter().enumerate() {
            if let Some(ahead) = customers.get(position + PREFETCH_DISTANCE) {
                directory.prefetch(*ahead);
            }
            let (shard, slot) = self.route_customer(request.customer);
            let queue = &mut per_shard[shard];
            if queue.capacity() == 0 {
                queue.reserve(share);
            }
            queue.push((position as u32, request, slot));
        }
        let mut waiting = Vec::with_capacity(shards);
        for (shard, requests) in per_shard.into_iter().enumerate() {
            if requests.is_empty() {
                continue;
            }
            let (reply, answer) = oneshot::channel();
            self.shards.submit(shard, Message::Batch { caller, requests, reply }, || {}).await?;
            waiting.push(answer);
        }
        let mut answers: Vec<Option<Result<PurchaseReceipt, Rejection>>> = (0..count).map(|_| None).collect();
        for answer in waiting {
            for (position, answer) in answer.await.map_err(|_| Failure::Stopped)? {
                answers[position as usize] = Some(answer);
            }
        }
        Ok(answers.into_iter().map(|answer| answer.expect("every position answered")).collect())
    }

    /// The shard of `customer` and its slot there; an unknown UIN goes to the shard of its
    /// hash, with no slot.
    fn route_customer(&self, customer: Uin) -> (usize, u32) {
        let context = self.context();
        match context.directory.get(customer) {
            Some(Place { shard, slot }) => (shard as usize, slot),
            None => (shard_of_uin(customer, context.shards), NO_SLOT),
        }
    }

    pub async fn expire_due(&self) -> Result<usize, Failure> {
        let mut released = 0;
        for shard in 0..self.context().shards {
            released += self.ask(shard, |reply| Message::ExpireDue { reply }).await?;
        }
        Ok(released)
    }

    pub async fn open_reservations(&self) -> Result<usize, Failure> {
        let mut open = 0;
        for shard in 0..self.context().shards {
            open += self.ask(shard, |reply| Message::OpenReservations { reply }).await?;
        }
        Ok(open)
    }

    /// The shard an account is placed on (see the module's documentation).
    fn placement(&self, account: &Account) -> usize {
        let context = self.context();
        let home = match account.role {
            Role::Customer { charged, .. } if !context.escrowed.is_escrowed(charged) => charged,
            _ => account.uin,
        };
        shard_of_uin(home, context.shards)
    }

    pub async fn spawn(&self, accounts: Vec<Account>) -> Result<Result<(), Rejection>, Failure> {
        let _creating = self.creating.lock().await;
        let mut seen = std::collections::HashSet::with_capacity(accounts.len());
        for account in &accounts {
            if self.contains(account.uin) || !seen.insert(account.uin) || account.uin.0 == u64::MAX {
                return Ok(Err(Rejection::UinTaken(account.uin)));
            }
        }
        let shards = self.context().shards;
        let mut per_shard: Vec<Vec<Account>> = (0..shards).map(|_| Vec::new()).collect();
        for account in accounts {
            per_shard[self.placement(&account)].push(account);
        }
        let per_shard: Vec<(u32, Vec<Account>)> = per_shard
            .into_iter()
            .enumerate()
            .filter(|(_, accounts)| !accounts.is_empty())
            .map(|(shard, accounts)| (shard as u32, accounts))
            .collect();
        self.context().directory.reserve(per_shard.iter().map(|(_, accounts)| accounts.len()).sum());
        if let Some(journal) = &self.journal {
            // Before any shard keeps an account: whatever uses them is written after.
            journal.submit(log::spawn_record(journal.buffer(), &per_shard), None);
        }
        for (shard, accounts) in per_shard {
            let shard = shard as usize;
            let uins: Vec<Uin> = accounts.iter().map(|account| account.uin).collect();
            let slots = self.ask(shard, |reply| Message::Spawn { accounts, reply }).await?;
            for (uin, slot) in uins.into_iter().zip(slots) {
                self.context().directory.put(uin, Place { shard: shard as u32, slot });
            }
        }
        Ok(Ok(()))
    }

    pub fn contains(&self, uin: Uin) -> bool {
        self.context().directory.contains(uin)
    }

    pub fn uins(&self) -> Vec<Uin> {
        self.context().directory.uins()
    }

    /// Whether `partner`'s available credit is split into per-shard slices (see
    /// [`EscrowedPartners`], the one place this is decided).
    pub fn is_escrowed(&self, partner: Uin) -> bool {
        self.context().escrowed.is_escrowed(partner)
    }

    pub fn shutdown(&self) {
        self.shards.stopping.store(true, Ordering::Release);
        for shard in 0..self.context().shards {
            self.shards.wake(shard);
        }
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
    }
}

/// A sharded runtime being put together, before its threads run: its state restored from
/// a snapshot and the journal replayed onto it, one record at a time, on the caller's
/// thread. Nothing runs on its own until [`Recovering::start`].
pub struct Recovering {
    shards: Arc<Shards>,
}

impl Recovering {
    /// `count` empty shards whose ledgers hash ids with `keys`.
    pub fn new(settings: RuntimeSettings, clock: Arc<dyn Clock>, keys: Keys, count: usize) -> Recovering {
        let count = count.clamp(1, crate::coordinator::index::SHARDS_MAX);
        let index = Arc::new(IdIndex::new(count));
        let keys = Arc::new(keys);
        let context = Arc::new(Context {
            directory: Directory::new(),
            index: index.clone(),
            keys: keys.clone(),
            escrowed: Arc::new(EscrowedPartners::new(settings.escrow_partners.iter().copied(), count)),
            slots: Slots::new(REPLY_SLOTS),
            events: settings.events.clone(),
            clock,
            sweep_interval: Duration::from_millis(settings.expiry_sweep_interval_ms.max(1)),
            shards: count,
            steps: Arc::new(StepAnswers::default()),
        });
        let cells = (0..count)
            .map(|shard| {
                let ledger = Ledger::new(settings.ledger_limits, index.clone(), shard as u32, keys.clone());
                Cell {
                    shard: Mutex::new(Shard::new(shard as u32, context.clone(), ledger)),
                    queue: ArrayQueue::new(QUEUE_MESSAGES),
                    thread: OnceLock::new(),
                    retry: AtomicBool::new(false),
                }
            })
            .collect();
        Recovering { shards: Arc::new(Shards { cells, context, stopping: AtomicBool::new(false) }) }
    }

    /// Takes a snapshot's state: its shards must be as many as these.
    pub fn restore(&self, image: RuntimeImage) -> Result<(), ReplayError> {
        if image.shards.len() != self.shards.cells.len() {
            return Err(ReplayError {
                shard: 0,
                problem: format!(
                    "the snapshot holds {} shards, the runtime has {}",
                    image.shards.len(),
                    self.shards.cells.len()
                ),
            });
        }
        let count = image.shards.iter().map(|shard| shard.accounts.len()).sum();
        self.shards.context.directory.reserve(count);
        for (cell, image) in self.shards.cells.iter().zip(image.shards) {
            let mut shard = cell.shard.lock();
            self.keep(&mut shard, image.accounts);
            shard.ledger.restore(image.ledger);
        }
        Ok(())
    }

    /// Keeps `accounts` in `shard` and puts their places in the directory.
    fn keep(&self, shard: &mut Shard, accounts: Vec<Account>) {
        for (slot, uin) in shard.keep(accounts) {
            self.shards.context.directory.put(uin, Place { shard: shard.index, slot });
        }
    }

    /// Applies one of the runtime's records again: a shard's round or a creation (see
    /// [`log`]). Answers false for a record that is not the runtime's.
    pub fn replay(&self, record: &[u8]) -> Result<bool, ReplayError> {
        match record.first() {
            Some(&log::ROUND) => self.replay_round(record).map(|()| true),
            Some(&log::SPAWN) => {
                let per_shard = log::read_spawn(record)?;
                let count = per_shard.iter().map(|(_, accounts)| accounts.len()).sum();
                self.shards.context.directory.reserve(count);
                for (shard, accounts) in per_shard {
                    let Some(cell) = self.shards.cells.get(shard as usize) else {
                        return Err(ReplayError {
                            shard,
                            problem: "a creation names a shard past the last".into(),
                        });
                    };
                    self.keep(&mut cell.shard.lock(), accounts);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Where the shards note the answers of steps (see [`StepTag`]).
    pub fn step_answers(&self) -> &Arc<StepAnswers> {
        &self.shards.context.steps
    }

    /// Calls `visit` with every account, shard by shard.
    pub fn each_account(&self, mut visit: impl FnMut(&Account)) {
        for cell in self.shards.cells.iter() {
            cell.shard.lock().accounts.iter().for_each(&mut visit);
        }
    }

    fn replay_round(&self, record: &[u8]) -> Result<(), ReplayError> {
        let shard = log::shard_of(record)?;
        let Some(cell) = self.shards.cells.get(shard as usize) else {
            return Err(ReplayError {
                shard,
                problem: format!("the runtime has {} shards", self.shards.cells.len()),
            });
        };
        let index = &self.shards.context.index;
        index.maintain();
        let mut shard = cell.shard.lock();
        let table = index.read(shard.index);
        shard.quiet = true;
        let replayed = shard.replay(&table, record);
        shard.quiet = false;
        drop(table);
        shard.outboxes.iter_mut().for_each(Vec::clear);
        replayed
    }

    /// Starts the shards' threads; with a journal, every round writes its record there and,
    /// if `hold`, holds its answers until the journal has it.
    ///
    /// Reservations whose deadline passed (while the process was down) are released first.
    pub fn start(self, journal: Option<(Arc<Journal>, bool)>) -> ShardedRuntime {
        let shards = self.shards;
        if let Some((journal, hold)) = &journal {
            for cell in shards.cells.iter() {
                let mut shard = cell.shard.lock();
                shard.log = Some(Log::new(journal.clone(), *hold));
                shards.context.index.maintain();
                let table = shards.context.index.read(shard.index);
                shard.sweep(&table, None);
                drop(table);
                shard.seal();
            }
        }
        let threads = (0..shards.cells.len())
            .map(|me| {
                let runner = shards.clone();
                let thread = std::thread::Builder::new()
                    .name(format!("shard-{me}"))
                    .spawn(move || runner.run(me))
                    .expect("spawn a shard thread");
                // Known before any message can need it woken.
                let _ = shards.cells[me].thread.set(thread.thread().clone());
                thread
            })
            .collect();
        let journal = journal.map(|(journal, _)| journal);
        ShardedRuntime {
            shards,
            threads: Mutex::new(threads),
            creating: tokio::sync::Mutex::new(()),
            journal,
        }
    }
}

/// What a snapshot keeps of a sharded runtime: every shard's accounts and ledger partition,
/// and the keys its ids were hashed with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuntimeImage {
    pub keys: Keys,
    pub shards: Vec<ShardImage>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardImage {
    pub accounts: Vec<Account>,
    pub ledger: LedgerImage,
}

impl ShardedRuntime {
    /// A consistent copy of every shard, taken with all of them held at once (and no
    /// creation under way: its record and its accounts come together), and what `cut`
    /// (called at that instant) answers: the journal position the copy covers.
    pub async fn image<T>(&self, cut: impl FnOnce() -> T) -> (RuntimeImage, T) {
        let _creating = self.creating.lock().await;
        let guards: Vec<_> = self.shards.cells.iter().map(|cell| cell.shard.lock()).collect();
        let at = cut();
        let shards = guards
            .iter()
            .map(|shard| ShardImage { accounts: shard.accounts.clone(), ledger: shard.ledger.image() })
            .collect();
        drop(guards);
        (RuntimeImage { keys: (*self.context().keys).clone(), shards }, at)
    }
}

impl Drop for ShardedRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
