//! Operations over several accounts that finish even across a crash: an allocation takes
//! credit from one account and gives it to another, a creation adopts a child and spawns
//! it, a voucher is drawn from a pool and added to a book. Each step is a command to one
//! account; a crash between two steps must not leave the first without the second.
//!
//! With a journal, such an operation is an intent: its record (what it was asked to do)
//! goes to the journal before its first step, each step is written by the shard that
//! applies it with the operation's id and the step's number, and the shard notes the
//! step's answer. An end record follows the last step. Recovery replays all of it; an
//! intent without its end is then run again from the start on the recovered state, with
//! the steps that already happened answered from their notes instead of applied again, so
//! it takes the path it took before the crash and does only what is left.
//!
//! Invariants:
//! - an operation's steps are a function of its intent and of its steps' answers: its
//!   inputs (the clock's reading, ids, the record of an allocation) are in the intent, and
//!   steps are numbered in the order they are asked for (before any await);
//! - the intent's record is submitted, and the intent noted, under one lock, which a
//!   snapshot takes after every shard's: a snapshot holds an intent iff the journal before
//!   its position holds the intent's record;
//! - an intent ends (its end record, its notes dropped) when its operation answered, with a
//!   result or a refusal; a failure of the system leaves it open for recovery to finish.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{run_to_end, typed, Engine, EngineResult, Error};
use crate::domain::voucher::Voucher;
use crate::domain::{
    Account, AccountKind, Caller, CreditLine, KindRequired, Money, Profile, RecordInfo, Rejection, Request,
    Role, Timestamp, Uin, VoucherId,
};
use crate::journal::Journal;
use crate::runtime::{Failure, Runtime, StepAnswers, StepTag, StepsOf};

/// The first byte of an intent's record.
pub(super) const INTENT: u8 = 3;
/// The first byte of an intent's end.
pub(super) const INTENT_END: u8 = 4;

/// What an operation over several accounts was asked to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Intent {
    Allocate {
        caller: Caller,
        receiver: Uin,
        kind: KindRequired,
        delta: Money,
        record: Box<RecordInfo>,
    },
    Create {
        uin: Uin,
        role: Role,
        profile: Option<Profile>,
        parent: Option<(Uin, AccountKind)>,
        created: Timestamp,
    },
    IssueVoucher {
        issuer: Uin,
        voucher: Box<Voucher>,
    },
    ApplyPartnerVoucher {
        voucher: Box<Voucher>,
    },
    ApproveVoucher {
        owner: Uin,
        id: VoucherId,
        now: Timestamp,
    },
    InvalidateVoucher {
        caller: Caller,
        owner: Uin,
        id: VoucherId,
    },
    SetTrialFirst {
        partner: Uin,
        distributor: bool,
        enabled: bool,
    },
}

/// What an operation answers.
#[derive(Debug)]
pub(super) enum Done {
    CreditLine(CreditLine),
    Uin(Uin),
    Voucher(VoucherId),
    Approved(VoucherId, Option<VoucherId>),
    Nothing,
}

impl Done {
    fn unexpected(self) -> Error {
        Failure::Internal(format!("an operation answered {self:?}")).into()
    }

    pub fn credit_line(self) -> EngineResult<CreditLine> {
        match self {
            Done::CreditLine(line) => Ok(line),
            other => Err(other.unexpected()),
        }
    }

    pub fn uin(self) -> EngineResult<Uin> {
        match self {
            Done::Uin(uin) => Ok(uin),
            other => Err(other.unexpected()),
        }
    }

    pub fn voucher(self) -> EngineResult<VoucherId> {
        match self {
            Done::Voucher(id) => Ok(id),
            other => Err(other.unexpected()),
        }
    }

    pub fn approved(self) -> EngineResult<(VoucherId, Option<VoucherId>)> {
        match self {
            Done::Approved(id, associated) => Ok((id, associated)),
            other => Err(other.unexpected()),
        }
    }

    pub fn nothing(self) -> EngineResult<()> {
        match self {
            Done::Nothing => Ok(()),
            other => Err(other.unexpected()),
        }
    }
}

impl Intent {
    async fn run(self, steps: &Steps) -> EngineResult<Done> {
        match self {
            Intent::Allocate { caller, receiver, kind, delta, record } => {
                super::allocation::allocate_steps(steps, caller, receiver, kind, delta, record)
                    .await
                    .map(Done::CreditLine)
            }
            Intent::Create { uin, role, profile, parent, created } => {
                super::setup::create_steps(steps, uin, role, profile, parent, created).await.map(Done::Uin)
            }
            Intent::IssueVoucher { issuer, voucher } => {
                super::vouchers::issue_steps(steps, issuer, *voucher).await.map(Done::Voucher)
            }
            Intent::ApplyPartnerVoucher { voucher } => {
                super::vouchers::apply_partner_steps(steps, *voucher).await.map(Done::Voucher)
            }
            Intent::ApproveVoucher { owner, id, now } => {
                super::vouchers::approve_steps(steps, owner, id, now)
                    .await
                    .map(|(id, associated)| Done::Approved(id, associated))
            }
            Intent::InvalidateVoucher { caller, owner, id } => {
                super::vouchers::invalidate_steps(steps, caller, owner, id).await.map(|()| Done::Nothing)
            }
            Intent::SetTrialFirst { partner, distributor, enabled } => {
                super::vouchers::trial_first_steps(steps, partner, distributor, enabled)
                    .await
                    .map(|()| Done::Nothing)
            }
        }
    }
}

/// How an operation's steps reach the accounts: numbered, and answered from the notes of a
/// run a crash cut short. Cheap to clone.
#[derive(Clone)]
pub(super) struct Steps {
    inner: Arc<StepsInner>,
}

struct StepsInner {
    runtime: Arc<Runtime>,
    vouchers: Arc<DashMap<VoucherId, Uin>>,
    /// The intent's id; `None` without a journal (steps are plain calls).
    intent: Option<u64>,
    next: AtomicU32,
    /// Run again after a crash: the answers of the steps that happened before it.
    resumed: Option<StepsOf>,
}

impl Steps {
    fn new(engine: &Engine, intent: Option<u64>, resumed: Option<StepsOf>) -> Steps {
        Steps {
            inner: Arc::new(StepsInner {
                runtime: engine.runtime.clone(),
                vouchers: engine.vouchers.clone(),
                intent,
                next: AtomicU32::new(0),
                resumed,
            }),
        }
    }

    /// Steps that are plain calls: for reads outside any operation that share code with one.
    pub fn plain(engine: &Engine) -> Steps {
        Steps::new(engine, None, None)
    }

    /// Which account owns each voucher (see `vouchers.rs`).
    pub fn vouchers(&self) -> &DashMap<VoucherId, Uin> {
        &self.inner.vouchers
    }

    /// The next step: `request` to `uin`. Numbered now, so that steps asked for together
    /// (then awaited together) keep their order.
    pub fn ask<R: Request + Send + 'static>(
        &self,
        uin: Uin,
        request: R,
    ) -> impl Future<Output = EngineResult<R::Answer>> + Send + 'static
    where
        R::Answer: Send,
    {
        let step = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let inner = self.inner.clone();
        async move {
            let happened = inner.resumed.as_ref().and_then(|answers| answers.get(&step));
            let reply = match (inner.intent, happened) {
                (None, _) => inner.runtime.call(uin, request.into()).await?,
                (Some(_), Some(answer)) => answer.clone(),
                (Some(intent), None) => {
                    inner.runtime.call_step(uin, request.into(), StepTag { intent, step }).await?
                }
            };
            typed::<R>(uin, reply)
        }
    }

    /// Creates accounts (a creation is a record of its own). Run again after a crash, an
    /// operation finds the accounts it had created.
    pub async fn spawn(&self, accounts: Vec<Account>) -> Result<Result<(), Rejection>, Failure> {
        let runtime = &self.inner.runtime;
        if self.inner.resumed.is_some() && accounts.iter().all(|account| runtime.contains(account.uin)) {
            return Ok(Ok(()));
        }
        runtime.spawn(accounts).await
    }
}

/// The open intents, and the journal their records go to.
pub(super) struct Intents {
    journal: Option<Arc<Journal>>,
    open: Mutex<BTreeMap<u64, Intent>>,
    next: AtomicU64,
}

impl Intents {
    pub fn new(journal: Option<Arc<Journal>>, open: BTreeMap<u64, Intent>, next: u64) -> Intents {
        Intents { journal, open: Mutex::new(open), next: AtomicU64::new(next) }
    }

    /// Writes `intent` and notes it open; `None` without a journal.
    fn begin(&self, intent: &Intent) -> Option<u64> {
        let journal = self.journal.as_ref()?;
        let mut open = self.open.lock();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let record = postcard::to_extend(&(INTENT, id, intent), journal.buffer()).expect("an intent encodes");
        journal.submit(record, None);
        open.insert(id, intent.clone());
        Some(id)
    }

    fn end(&self, id: u64, answers: Option<&Arc<StepAnswers>>) {
        let Some(journal) = &self.journal else { return };
        let mut open = self.open.lock();
        let record = postcard::to_extend(&(INTENT_END, id), journal.buffer()).expect("an end encodes");
        journal.submit(record, None);
        open.remove(&id);
        if let Some(answers) = answers {
            answers.forget(id);
        }
    }

    /// The open intents with their steps' answers, and the next id: under the lock a
    /// snapshot holds after every shard's.
    pub fn image(&self, answers: &StepAnswers) -> (Vec<(u64, Intent, StepsOf)>, u64) {
        let open = self.open.lock();
        let intents = open.iter().map(|(id, intent)| (*id, intent.clone(), answers.of(*id))).collect();
        (intents, self.next.load(Ordering::Relaxed))
    }

    fn open(&self) -> Vec<(u64, Intent)> {
        self.open.lock().iter().map(|(id, intent)| (*id, intent.clone())).collect()
    }
}

/// Replays an intent's record or end into `open`; answers the id it names.
pub(super) fn replay(record: &[u8], open: &mut BTreeMap<u64, Intent>) -> Result<u64, String> {
    match record.first() {
        Some(&INTENT) => {
            let (_, id, intent) = postcard::from_bytes::<(u8, u64, Intent)>(record)
                .map_err(|error| format!("an intent does not decode: {error}"))?;
            open.insert(id, intent);
            Ok(id)
        }
        Some(&INTENT_END) => {
            let (_, id) = postcard::from_bytes::<(u8, u64)>(record)
                .map_err(|error| format!("an intent's end does not decode: {error}"))?;
            open.remove(&id);
            Ok(id)
        }
        other => Err(format!("record kind {other:?} is not an intent")),
    }
}

impl Engine {
    /// Runs an operation over several accounts to its end, even if the caller stops
    /// waiting and, with a journal, even across a crash. `keep` is held until it ends.
    pub(super) async fn durably(&self, intent: Intent, keep: impl Send + 'static) -> EngineResult<Done> {
        let id = self.intents.begin(&intent);
        let steps = Steps::new(self, id, None);
        let intents = self.intents.clone();
        let answers = self.runtime.step_answers().cloned();
        run_to_end(async move {
            let _keep = keep;
            let result = intent.run(&steps).await;
            if let (Some(id), false) = (id, matches!(result, Err(Error::Failed(_)))) {
                intents.end(id, answers.as_ref());
            }
            result
        })
        .await
    }

    /// Finishes the operations a crash cut short, oldest first, before the engine takes a
    /// request. Blocks: called as the engine starts.
    pub(super) fn finish_intents(&self) -> Result<(), Error> {
        let open = self.intents.open();
        if open.is_empty() {
            return Ok(());
        }
        let answers = self.runtime.step_answers().cloned();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    futures::executor::block_on(async {
                        for (id, intent) in open {
                            let happened = answers.as_ref().map(|answers| answers.of(id)).unwrap_or_default();
                            let steps = Steps::new(self, Some(id), Some(happened));
                            let result = intent.run(&steps).await;
                            if let Err(Error::Failed(failure)) = result {
                                return Err(Error::Failed(failure));
                            }
                            self.intents.end(id, answers.as_ref());
                        }
                        Ok(())
                    })
                })
                .join()
                .unwrap_or_else(|_| Err(Failure::Internal("finishing an operation panicked".into()).into()))
        })
    }
}
