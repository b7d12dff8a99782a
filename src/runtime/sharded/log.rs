//! What a shard writes to the journal, how it holds its answers until the journal has them,
//! and how it applies its records again at recovery.
//!
//! A shard's journal record is one round: the inputs it applied that changed its state, in
//! the order it applied them, each with the clock reading it ran under. Replaying a shard's
//! records in order, on the state the last snapshot held, gives its state again: a shard's
//! step reads nothing but its own accounts and ledger partition, the index entries of ids it
//! claimed itself (a replay searches its own entries only), and the clock it is given.
//! Inputs that changed nothing are not written: refusals before a claim, repeats answered
//! from a record, requests forwarded to another shard, queries, refused commands.
//!
//! Invariants:
//! - an input is written before the round that applied it lets go of the shard, and the
//!   round's record is submitted before its hops leave: a record that depends on another
//!   shard's step (a batch's answer forwarded back) is behind that step's record;
//! - under the policy `always` every answer a round gives, of a change or of a read, is
//!   held until the journal is durable up to the round's record (or, for a round that wrote
//!   none, up to everything submitted before it): no answer tells of a state a crash could
//!   lose;
//! - if the journal fails, held answers fail too ([`Failure::Journal`]): none claims a
//!   durability it does not have.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::shard::{Answer, BatchAnswers, Origin, Shard};
use super::NO_SLOT;
use crate::coordinator::{Begin, IndexRead, Mode, PurchaseRequest};
use crate::domain::{Account, Caller, Command, PurchaseId, Rejection, Reply, Timestamp, Uin};
use crate::journal::{Done, Durability, Journal};
use crate::runtime::{CoordinatorOp, Failure, StepTag};

/// One input a shard applied, as it writes it: borrowed from the message in hand.
#[derive(Serialize)]
enum InputRef<'a> {
    Begin { caller: Caller, request: &'a PurchaseRequest, mode: Mode },
    Resolve { caller: Caller, id: &'a PurchaseId, commit: bool },
    Call { slot: u32, command: &'a Command },
    Sweep,
    Step { uin: Uin, slot: u32, command: &'a Command, tag: StepTag },
}

/// One input as replay reads it back: the same variants, in the same order, as
/// [`InputRef`].
#[derive(Deserialize)]
enum Input {
    Begin { caller: Caller, request: PurchaseRequest, mode: Mode },
    Resolve { caller: Caller, id: PurchaseId, commit: bool },
    Call { slot: u32, command: Command },
    Sweep,
    Step { uin: Uin, slot: u32, command: Command, tag: StepTag },
}

/// The first byte of a shard round's record.
pub const ROUND: u8 = 0;
/// The first byte of a creation's record: the accounts each shard keeps, written by the
/// runtime before any shard keeps them, so that a creation over several shards is all in
/// the journal or not at all (creations run one at a time).
pub const SPAWN: u8 = 1;

/// A creation's record.
pub fn spawn_record(buffer: Vec<u8>, per_shard: &[(u32, Vec<Account>)]) -> Vec<u8> {
    append(buffer, &(SPAWN, per_shard))
}

/// The accounts each shard keeps, from a creation's record.
pub fn read_spawn(record: &[u8]) -> Result<Vec<(u32, Vec<Account>)>, ReplayError> {
    match postcard::from_bytes::<(u8, Vec<(u32, Vec<Account>)>)>(record) {
        Ok((SPAWN, per_shard)) => Ok(per_shard),
        Ok((kind, _)) => {
            Err(ReplayError { shard: 0, problem: format!("record kind {kind} is not a creation") })
        }
        Err(error) => Err(ReplayError { shard: 0, problem: format!("a creation does not decode: {error}") }),
    }
}

/// The shard a round's record is of.
pub fn shard_of(record: &[u8]) -> Result<u32, ReplayError> {
    let failed = |problem: String| ReplayError { shard: 0, problem };
    match postcard::take_from_bytes::<(u8, Head)>(record) {
        Ok(((ROUND, head), _)) => Ok(head.shard),
        Ok(((kind, _), _)) => Err(failed(format!("record kind {kind} is not a shard's round"))),
        Err(error) => Err(failed(format!("the record's head does not decode: {error}"))),
    }
}

/// The head of a shard's record: which shard, and the clock of its first input (each
/// input then carries its difference from the one before).
#[derive(Serialize, Deserialize)]
struct Head {
    shard: u32,
    now: i64,
}

/// A journal record's bytes could not be applied: the journal is intact (its checksums
/// passed) but this build reads it differently, or the state it applies to is not the one
/// it was written on.
#[derive(Debug, thiserror::Error)]
#[error("journal record of shard {shard}: {problem}")]
pub struct ReplayError {
    pub shard: u32,
    pub problem: String,
}

/// An answer a round gives, held or sent.
pub(super) enum Release {
    Answer(Origin, Answer),
    Batch(oneshot::Sender<BatchAnswers>, BatchAnswers),
    Reply(oneshot::Sender<Result<Reply, Rejection>>, Result<Reply, Rejection>),
    Slots(oneshot::Sender<Vec<u32>>, Vec<u32>),
    Count(oneshot::Sender<usize>, usize),
}

impl Release {
    /// Sends the answer, or, if the journal failed, tells the caller the outcome is unknown.
    fn send(self, slots: &super::super::slots::Slots<Result<Answer, Failure>>, durability: &Durability) {
        if let Err(error) = durability {
            // A dropped channel tells its caller the runtime stopped: the outcome is unknown.
            if let Release::Answer(Origin::Slot(index), _) = self {
                slots.complete(index, Err(Failure::Journal(error.to_string())));
            }
            return;
        }
        match self {
            Release::Answer(Origin::Slot(index), answer) => slots.complete(index, Ok(answer)),
            Release::Answer(Origin::Channel(reply), answer) => {
                let _ = reply.send(answer);
            }
            Release::Answer(_, _) => unreachable!("only answers to callers are released"),
            Release::Batch(reply, answers) => {
                let _ = reply.send(answers);
            }
            Release::Reply(reply, answer) => {
                let _ = reply.send(answer);
            }
            Release::Slots(reply, slots) => {
                let _ = reply.send(slots);
            }
            Release::Count(reply, count) => {
                let _ = reply.send(count);
            }
        }
    }
}

/// A shard's side of the journal.
pub(super) struct Log {
    journal: Arc<Journal>,
    /// The round's record so far (empty: nothing written this round).
    buffer: Vec<u8>,
    /// The clock of the last input written this round.
    last: Timestamp,
    /// Whether answers wait for the journal (the policy `always`).
    hold: bool,
    held: Vec<Release>,
}

impl Log {
    pub fn new(journal: Arc<Journal>, hold: bool) -> Log {
        let buffer = journal.buffer();
        Log { journal, buffer, last: Timestamp(0), hold, held: Vec::new() }
    }

    fn write(&mut self, shard: u32, now: Timestamp, input: &InputRef<'_>) {
        if self.buffer.is_empty() {
            self.buffer = append(std::mem::take(&mut self.buffer), &(ROUND, Head { shard, now: now.0 }));
            self.last = now;
        }
        let delta = now.0 - self.last.0;
        self.last = now;
        self.buffer = append(std::mem::take(&mut self.buffer), &(delta, input));
    }
}

fn append<T: Serialize + ?Sized>(buffer: Vec<u8>, value: &T) -> Vec<u8> {
    postcard::to_extend(value, buffer).expect("a journal input always encodes")
}

impl Shard {
    fn write(&mut self, input: InputRef<'_>) {
        let (shard, now) = (self.index, self.now);
        if let Some(log) = &mut self.log {
            log.write(shard, now, &input);
        }
    }

    /// Writes a purchase or reservation that began (its record is claimed).
    pub(super) fn write_begin(&mut self, caller: Caller, request: &PurchaseRequest, mode: Mode) {
        self.write(InputRef::Begin { caller, request, mode });
    }

    /// Writes a commit or cancel that resolved its reservation.
    pub(super) fn write_resolve(&mut self, caller: Caller, id: &PurchaseId, commit: bool) {
        self.write(InputRef::Resolve { caller, id, commit });
    }

    /// Writes a sweep that released reservations past their deadline.
    pub(super) fn write_sweep(&mut self) {
        self.write(InputRef::Sweep);
    }

    /// Applies `command` to the account in `slot` and writes it if it changed the account:
    /// a query or a refusal changes nothing.
    pub(super) fn call_logged(&mut self, slot: u32, command: Command) -> Result<Reply, Rejection> {
        let mark = match &mut self.log {
            Some(log) if !command.reads_only() => {
                let mark = log.buffer.len();
                log.write(self.index, self.now, &InputRef::Call { slot, command: &command });
                Some(mark)
            }
            _ => None,
        };
        let reply = self.account_at(slot, command);
        if let (Some(mark), Err(_), Some(log)) = (mark, &reply, &mut self.log) {
            log.buffer.truncate(mark);
        }
        reply
    }

    /// Applies a step of an engine operation (see [`StepTag`]): written whatever it does,
    /// and its answer noted.
    pub(super) fn call_step(
        &mut self,
        uin: Uin,
        slot: u32,
        command: Command,
        tag: StepTag,
    ) -> Result<Reply, Rejection> {
        self.write(InputRef::Step { uin, slot, command: &command, tag });
        self.step(uin, slot, command, tag)
    }

    fn step(&mut self, uin: Uin, slot: u32, command: Command, tag: StepTag) -> Result<Reply, Rejection> {
        let answer = match self.accounts.get(slot as usize) {
            Some(account) if account.uin == uin => self.account_at(slot, command),
            _ => Err(Rejection::UnknownUin(uin)),
        };
        self.context.steps.record(tag, &answer);
        answer
    }

    /// Sends an answer, or holds it until the round's record is durable.
    pub(super) fn release(&mut self, release: Release) {
        match &mut self.log {
            Some(log) if log.hold => log.held.push(release),
            _ => release.send(&self.context.slots, &Ok(())),
        }
    }

    /// At the end of a round, under the shard's lock and before its hops leave: submits the
    /// round's record, and hands the journal the answers that wait for it.
    pub(super) fn seal(&mut self) {
        let Some(log) = &mut self.log else { return };
        let held = std::mem::take(&mut log.held);
        let done = (!held.is_empty()).then(|| {
            let slots = self.context.slots.clone();
            Box::new(move |durability: Durability| {
                for release in held {
                    release.send(&slots, &durability);
                }
            }) as Done
        });
        if !log.buffer.is_empty() {
            let payload = std::mem::replace(&mut log.buffer, log.journal.buffer());
            log.journal.submit(payload, done);
        } else if let Some(done) = done {
            log.journal.after_durable(done);
        }
    }

    /// Applies one of this shard's records again, at recovery: nothing is answered, written
    /// or published.
    pub(super) fn replay(&mut self, table: &IndexRead<'_>, mut bytes: &[u8]) -> Result<(), ReplayError> {
        let shard = self.index;
        let failed = |problem: String| ReplayError { shard, problem };
        let ((_, head), rest) =
            postcard::take_from_bytes::<(u8, Head)>(bytes).map_err(|error| failed(error.to_string()))?;
        if head.shard != self.index {
            return Err(failed(format!("the record names shard {}", head.shard)));
        }
        bytes = rest;
        let mut now = head.now;
        let others = !(1u64 << self.index);
        while !bytes.is_empty() {
            let ((delta, input), rest) = postcard::take_from_bytes::<(i64, Input)>(bytes)
                .map_err(|error| failed(format!("an input does not decode: {error}")))?;
            bytes = rest;
            now += delta;
            self.now = Timestamp(now);
            let end = self.ledger.window().1;
            let open = self.ledger.open_reservations();
            match input {
                Input::Begin { caller, request, mode } => {
                    let slot = self.slot_of(request.customer).unwrap_or(NO_SLOT);
                    let begin = Begin { caller, request: &request, mode, skip: others, key: None };
                    self.begin(table, begin, slot, Origin::Sweep);
                    if self.ledger.window().1 == end {
                        return Err(failed(format!("purchase {} did not begin again", request.id)));
                    }
                }
                Input::Resolve { caller, id, commit } => {
                    let op = if commit {
                        CoordinatorOp::Commit { caller, id: id.clone() }
                    } else {
                        CoordinatorOp::Cancel { caller, id: id.clone() }
                    };
                    self.coordinate(table, op, NO_SLOT, others, Origin::Sweep);
                    if self.ledger.open_reservations() == open {
                        return Err(failed(format!("reservation {id} did not resolve again")));
                    }
                }
                Input::Call { slot, command } => {
                    if slot as usize >= self.accounts.len() {
                        return Err(failed(format!("a command names slot {slot}, past the accounts")));
                    }
                    if let Err(refusal) = self.account_at(slot, command) {
                        return Err(failed(format!("a command was refused again: {refusal}")));
                    }
                }
                Input::Sweep => self.sweep_at(table, None),
                Input::Step { uin, slot, command, tag } => {
                    let _ = self.step(uin, slot, command, tag);
                }
            }
        }
        Ok(())
    }
}
