//! The actix runtime (reference): one actix actor per UIN, one coordinator actor per worker.
//!
//! Simple and literal, it is the baseline the benchmarks compare against. Each worker thread
//! runs its own actix system; account actors are spread over the workers by UIN, coordinator
//! partitions one per worker. A coordinator drives a saga as an actix future
//! (`ResponseActFuture`): it keeps taking messages while the saga awaits account replies, and
//! it updates its ledger when the saga ends. A saga runs to its end even when the requester
//! stops waiting, so no reservation is ever left without an owner.
//!
//! Invariants:
//! - an account's state is touched only by its actor's handler;
//! - the registry maps each UIN to exactly one actor address and is never locked across an
//!   await (the address is cloned out first);
//! - mailboxes are bounded (`mailbox_capacity`); a full mailbox makes senders wait.

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use actix_rt::{Arbiter, ArbiterHandle, System};
use dashmap::DashMap;
use futures::future::join_all;
use parking_lot::Mutex;

use super::{ChargedCache, CoordinatorOp, Failure, RuntimeSettings};
use crate::clock::Clock;
use crate::coordinator::{
    Begin, Ledger, Mode, Next, Outcome, PurchaseReceipt, PurchaseRequest, Saga, SagaEnd, Step,
};
use crate::domain::{Account, Caller, Command, Rejection, Reply, Uin};
use crate::events::EventBus;

/// The actor of one UIN.
struct AccountActor {
    account: Account,
    mailbox_capacity: usize,
    events: Arc<EventBus>,
    clock: Arc<dyn Clock>,
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

/// A command for an account actor.
#[derive(Message)]
#[rtype(result = "Result<Reply, Rejection>")]
struct Envelope(Command);

impl Handler<Envelope> for AccountActor {
    type Result = MessageResult<Envelope>;

    fn handle(&mut self, envelope: Envelope, _ctx: &mut Self::Context) -> Self::Result {
        let (reply, crossings) = self.account.handle_noting(envelope.0);
        if !crossings.is_empty() {
            super::publish_warnings(&self.events, &self.account, crossings, self.clock.now());
        }
        MessageResult(reply)
    }
}

/// UIN to actor address. Shared by the engine's callers and the coordinators.
struct Registry {
    accounts: DashMap<Uin, Addr<AccountActor>>,
}

impl Registry {
    async fn call(&self, uin: Uin, command: Command) -> Result<Result<Reply, Rejection>, Failure> {
        // Clone the address out so that no map lock is held across the await.
        let Some(address) = self.accounts.get(&uin).map(|entry| entry.value().clone()) else {
            return Ok(Err(Rejection::UnknownUin(uin)));
        };
        address.send(Envelope(command)).await.map_err(|_| Failure::Stopped)
    }

    /// Runs a saga to its end, one account message at a time.
    async fn drive(&self, mut saga: Saga) -> Result<(Saga, SagaEnd), Failure> {
        let mut step = saga.first_step();
        loop {
            match step {
                Step::Call(uin, command) => {
                    let reply = self.call(uin, command).await?;
                    step = saga.advance(reply);
                }
                Step::Done(end) => return Ok((saga, end)),
            }
        }
    }
}

/// One partition of the purchase ledger, driving its sagas.
struct CoordinatorActor {
    ledger: Ledger,
    /// The partner of each customer whose purchase ended here, for repeats' answers.
    charged: ChargedCache,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    sweep_interval: Duration,
}

impl Actor for CoordinatorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        ctx.run_interval(self.sweep_interval, |_, ctx| ctx.notify(ExpireDue));
    }
}

#[derive(Message)]
#[rtype(result = "Result<Result<Outcome, Rejection>, Failure>")]
struct Coordinate(CoordinatorOp);

impl Handler<Coordinate> for CoordinatorActor {
    type Result = ResponseActFuture<Self, Result<Result<Outcome, Rejection>, Failure>>;

    fn handle(&mut self, message: Coordinate, _ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.now();
        let index = self.ledger.index().clone();
        index.maintain();
        let table = index.read(0);
        let charged = &self.charged;
        let next = match message.0 {
            CoordinatorOp::Begin { caller, request, mode } => {
                self.ledger
                    .begin(&table, Begin::new(caller, &request, mode), now, &|customer| charged.get(customer))
            }
            CoordinatorOp::Commit { caller, id } => {
                self.ledger.commit(&table, caller, &id, now, 0, &|customer| charged.get(customer))
            }
            CoordinatorOp::Cancel { caller, id } => {
                self.ledger.cancel(&table, caller, &id, now, 0, &|customer| charged.get(customer))
            }
        };
        drop(table);
        match next {
            Next::Answer(answer) => Box::pin(fut::ready(Ok(answer))),
            Next::Run(saga) => {
                let registry = self.registry.clone();
                let driven = async move { registry.drive(saga).await };
                Box::pin(driven.into_actor(self).map(|driven, actor, _ctx| {
                    let (saga, end) = driven?;
                    let now = actor.clock.now();
                    let index = actor.ledger.index().clone();
                    let table = index.read(0);
                    actor.charged.learn(&saga);
                    Ok(actor.ledger.finish(&table, saga, end, now))
                }))
            }
            Next::Elsewhere(place) => unreachable!("a partition alone in its index: {place:?}"),
        }
    }
}

/// Releases the reservations past their deadline; answers how many.
#[derive(Message)]
#[rtype(result = "Result<usize, Failure>")]
struct ExpireDue;

impl Handler<ExpireDue> for CoordinatorActor {
    type Result = ResponseActFuture<Self, Result<usize, Failure>>;

    fn handle(&mut self, _message: ExpireDue, _ctx: &mut Self::Context) -> Self::Result {
        let index = self.ledger.index().clone();
        index.maintain();
        let sagas = self.ledger.expire_due(&index.read(0), self.clock.now());
        let count = sagas.len();
        let registry = self.registry.clone();
        let driven = async move { join_all(sagas.into_iter().map(|saga| registry.drive(saga))).await };
        Box::pin(driven.into_actor(self).map(move |results, actor, _ctx| {
            let now = actor.clock.now();
            let index = actor.ledger.index().clone();
            let table = index.read(0);
            for result in results {
                let (saga, end) = result?;
                actor.charged.learn(&saga);
                // An expiry's answer is ReservationExpired; nobody waits for it here.
                let _ = actor.ledger.finish(&table, saga, end, now);
            }
            Ok(count)
        }))
    }
}

#[derive(Message)]
#[rtype(result = "usize")]
struct OpenReservations;

impl Handler<OpenReservations> for CoordinatorActor {
    type Result = usize;

    fn handle(&mut self, _message: OpenReservations, _ctx: &mut Self::Context) -> usize {
        self.ledger.open_reservations()
    }
}

/// One worker thread with its own actix system.
struct Worker {
    arbiter: ArbiterHandle,
    system: System,
    thread: Option<JoinHandle<()>>,
}

pub struct ActixRuntime {
    registry: Arc<Registry>,
    workers: Mutex<Vec<Worker>>,
    arbiters: Vec<ArbiterHandle>,
    coordinators: Vec<Addr<CoordinatorActor>>,
    mailbox_capacity: usize,
    /// Serializes account creation (see `spawn`).
    creating: tokio::sync::Mutex<()>,
    events: Arc<EventBus>,
    clock: Arc<dyn Clock>,
}

impl ActixRuntime {
    pub fn start(settings: RuntimeSettings, clock: Arc<dyn Clock>) -> ActixRuntime {
        let registry = Arc::new(Registry { accounts: DashMap::new() });
        let worker_count = settings.workers.max(1);
        let mut workers = Vec::with_capacity(worker_count);
        for index in 0..worker_count {
            let (sender, receiver) = mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("actix-worker-{index}"))
                .spawn(move || {
                    let system = System::new();
                    system.block_on(async {
                        let _ = sender.send((Arbiter::current(), System::current()));
                    });
                    let _ = system.run();
                })
                .expect("spawn an actix worker thread");
            let (arbiter, system) = receiver.recv().expect("actix worker started");
            workers.push(Worker { arbiter, system, thread: Some(thread) });
        }
        let arbiters: Vec<ArbiterHandle> = workers.iter().map(|w| w.arbiter.clone()).collect();
        let coordinators = arbiters
            .iter()
            .map(|arbiter| {
                let ledger = Ledger::alone(settings.ledger_limits);
                let registry = registry.clone();
                let clock = clock.clone();
                let sweep_interval = Duration::from_millis(settings.expiry_sweep_interval_ms.max(1));
                CoordinatorActor::start_in_arbiter(arbiter, move |_| CoordinatorActor {
                    ledger,
                    charged: ChargedCache::default(),
                    registry,
                    clock,
                    sweep_interval,
                })
            })
            .collect();
        ActixRuntime {
            registry,
            workers: Mutex::new(workers),
            arbiters,
            coordinators,
            mailbox_capacity: settings.mailbox_capacity.max(1),
            creating: tokio::sync::Mutex::new(()),
            events: settings.events.clone(),
            clock,
        }
    }

    pub async fn call(&self, uin: Uin, command: Command) -> Result<Result<Reply, Rejection>, Failure> {
        self.registry.call(uin, command).await
    }

    fn coordinator_of(&self, op: &CoordinatorOp) -> &Addr<CoordinatorActor> {
        let partition = op.id().partition_hash() % self.coordinators.len() as u64;
        &self.coordinators[partition as usize]
    }

    pub async fn coordinate(&self, op: CoordinatorOp) -> Result<Result<Outcome, Rejection>, Failure> {
        let coordinator = self.coordinator_of(&op).clone();
        coordinator.send(Coordinate(op)).await.map_err(|_| Failure::Stopped)?
    }

    pub async fn purchase_batch(
        &self,
        caller: Caller,
        requests: Vec<PurchaseRequest>,
    ) -> Result<Vec<Result<PurchaseReceipt, Rejection>>, Failure> {
        let calls = requests
            .into_iter()
            .map(|request| self.coordinate(CoordinatorOp::Begin { caller, request, mode: Mode::OneShot }));
        join_all(calls)
            .await
            .into_iter()
            .map(|result| {
                result.map(|answer| {
                    answer.map(|outcome| match outcome {
                        Outcome::Purchased(receipt) => receipt,
                        other => unreachable!("a one-shot purchase answered {other:?}"),
                    })
                })
            })
            .collect()
    }

    pub async fn expire_due(&self) -> Result<usize, Failure> {
        let sweeps = self.coordinators.iter().map(|coordinator| coordinator.send(ExpireDue));
        let mut count = 0;
        for result in join_all(sweeps).await {
            count += result.map_err(|_| Failure::Stopped)??;
        }
        Ok(count)
    }

    pub async fn open_reservations(&self) -> Result<usize, Failure> {
        let queries = self.coordinators.iter().map(|coordinator| coordinator.send(OpenReservations));
        let mut count = 0;
        for result in join_all(queries).await {
            count += result.map_err(|_| Failure::Stopped)?;
        }
        Ok(count)
    }

    /// Starts one actor per account, in one closure per worker, and registers them all, or
    /// none if a UIN is taken (or appears twice).
    pub async fn spawn(&self, accounts: Vec<Account>) -> Result<Result<(), Rejection>, Failure> {
        // Creations run one at a time, and check every UIN before any actor is registered, so
        // a creation never has to roll back accounts that others could already have used.
        // An async lock: the creation awaits the workers while holding it.
        let _creating = self.creating.lock().await;
        let mut seen = std::collections::HashSet::with_capacity(accounts.len());
        for account in &accounts {
            if self.registry.accounts.contains_key(&account.uin) || !seen.insert(account.uin) {
                return Ok(Err(Rejection::UinTaken(account.uin)));
            }
        }
        let worker_count = self.arbiters.len();
        let mut per_worker: Vec<Vec<Account>> = (0..worker_count).map(|_| Vec::new()).collect();
        for account in accounts {
            per_worker[(account.uin.0 % worker_count as u64) as usize].push(account);
        }
        let mut started = Vec::with_capacity(worker_count);
        for (arbiter, accounts) in self.arbiters.iter().zip(per_worker) {
            if accounts.is_empty() {
                continue;
            }
            let (sender, receiver) = tokio::sync::oneshot::channel();
            let mailbox_capacity = self.mailbox_capacity;
            let (events, clock) = (self.events.clone(), self.clock.clone());
            let sent = arbiter.spawn_fn(move || {
                let addresses: Vec<(Uin, Addr<AccountActor>)> = accounts
                    .into_iter()
                    .map(|account| {
                        let uin = account.uin;
                        let (events, clock) = (events.clone(), clock.clone());
                        (uin, AccountActor { account, mailbox_capacity, events, clock }.start())
                    })
                    .collect();
                let _ = sender.send(addresses);
            });
            if !sent {
                return Err(Failure::Stopped);
            }
            started.push(receiver);
        }
        for receiver in started {
            let addresses = receiver.await.map_err(|_| Failure::Stopped)?;
            for (uin, address) in addresses {
                let previous = self.registry.accounts.insert(uin, address);
                assert!(previous.is_none(), "UIN {uin} was registered while creations were locked");
            }
        }
        Ok(Ok(()))
    }

    pub fn contains(&self, uin: Uin) -> bool {
        self.registry.accounts.contains_key(&uin)
    }

    pub fn uins(&self) -> Vec<Uin> {
        self.registry.accounts.iter().map(|entry| *entry.key()).collect()
    }

    pub fn shutdown(&self) {
        for mut worker in self.workers.lock().drain(..) {
            worker.system.stop();
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for ActixRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
