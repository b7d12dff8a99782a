//! Escrow on the sharded runtime: a hot partner's available credit split into one slice per
//! shard, so that the partner-side steps of its purchases run on the saga's own shard. See
//! docs/ARCHITECTURE.md, "Escrow", for the protocol and the rules that keep money exact.
//!
//! Invariant: a slice's reservation is committed or released by the saga that made it, on
//! the same shard; credit moves between a slice and its home only as `Granted` and
//! `Returned` hops, and at the home escrowed credit counts as reserved until it is settled.

use std::collections::VecDeque;

use tokio::sync::oneshot;

use super::{shard_of_uin, Hop, Shard};
use crate::domain::account::{Commit, HoldEscrow, PartnerReserved, Release};
use crate::domain::voucher::Deductions;
use crate::domain::{Command, Money, Month, Rejection, Reply, Role, Uin};

/// One shard's slice of an escrowed partner's available credit.
#[derive(Default)]
pub(super) struct Slice {
    /// Credit this shard may still reserve or charge.
    free: Money,
    /// Held by open reservations coordinated on this shard.
    reserved: Money,
    /// Charged here and not yet settled with the home, per bill month.
    used: Vec<(Month, Money)>,
    /// Sagas waiting for a refill: (saga key, amount, charge at once in this month), in
    /// arrival order.
    parked: VecDeque<(usize, Money, Option<Month>)>,
    refill_pending: bool,
}

/// A command for an escrowed partner's whole account, and where its answer goes.
pub(super) type WholeCall = (Command, oneshot::Sender<Result<Reply, Rejection>>);

/// At a partner's home, a recall of every slice waiting for their returns.
pub(super) struct Recall {
    returns_left: usize,
    /// Commands to apply to the whole account when the recall is done, before the refills.
    calls: Vec<WholeCall>,
    /// Refills to answer when the recall is done: (shard, wanted).
    waiting: Vec<(u32, Money)>,
}

impl Shard {
    fn home_of(&self, partner: Uin) -> usize {
        shard_of_uin(partner, self.senders.len())
    }

    /// A partner-side step of a saga on a slice: answered at once, or `None` when the saga
    /// is parked until a refill.
    pub(super) fn slice_step(
        &mut self,
        key: usize,
        partner: Uin,
        command: Command,
    ) -> Option<Result<Reply, Rejection>> {
        let slice = self.slices.entry(partner).or_default();
        // An escrowed partner has no vouchers (the engine refuses them), so a slice serves
        // every partner-side step from credit alone.
        match command {
            Command::ReservePartner(reserve) => {
                let (amount, charge) = (reserve.amount, reserve.commit.then_some(reserve.month));
                // Arrival order: nobody overtakes a parked saga.
                if slice.parked.is_empty() && slice.free >= amount {
                    Some(Ok(reserved_on_slice(take_from_slice(slice, amount, charge))))
                } else {
                    slice.parked.push_back((key, amount, charge));
                    self.request_refill(partner);
                    None
                }
            }
            Command::Commit(Commit { charge, month, vouchers }) => {
                assert!(vouchers.is_none(), "an escrowed partner has no vouchers");
                assert!(slice.reserved >= charge, "commit of {charge} exceeds the slice's reserved");
                slice.reserved -= charge;
                add_used(&mut slice.used, month, charge);
                Some(Ok(Reply::Commit(())))
            }
            Command::Release(Release { charge, vouchers }) => {
                assert!(vouchers.is_none(), "an escrowed partner has no vouchers");
                assert!(slice.reserved >= charge, "release of {charge} exceeds the slice's reserved");
                slice.reserved -= charge;
                slice.free += charge;
                Some(Ok(Reply::Release(())))
            }
            other => unreachable!("{other:?} is not a partner-side saga step"),
        }
    }

    /// Asks the home for enough to cover the first parked saga (one at a time, in arrival
    /// order, so that a refusal always concerns one purchase).
    fn request_refill(&mut self, partner: Uin) {
        let home = self.home_of(partner);
        let slice = self.slices.get_mut(&partner).expect("the slice exists");
        let Some(&(_, wanted, _)) = slice.parked.front() else { return };
        if slice.refill_pending {
            return;
        }
        slice.refill_pending = true;
        self.outboxes[home].push(Hop::Refill { partner, wanted, from: self.index });
    }

    /// At the home: grant from the partner's available credit, or recall every slice first
    /// when it cannot cover the request.
    pub(super) fn refill(&mut self, partner: Uin, wanted: Money, from: u32) {
        if let Some(recall) = self.recalls.get_mut(&partner) {
            recall.waiting.push((from, wanted));
            return;
        }
        let available = self.partner_available(partner);
        if available >= wanted {
            // A share of what is left, so that the next refills are rare but no slice
            // hoards the partner's credit.
            let share = available.share_of(2 * self.senders.len() as u32);
            self.grant(partner, from, wanted.max(share).min(available), false);
            return;
        }
        self.start_recall(partner, Vec::new(), vec![(from, wanted)]);
    }

    /// At the home: recalls every slice of `partner`. The home's own slice comes back at
    /// once; the others answer the recall, and when all have, `calls` run on the whole
    /// account and then `waiting` refills are served (see [`Shard::returned`]).
    fn start_recall(&mut self, partner: Uin, calls: Vec<WholeCall>, waiting: Vec<(u32, Money)>) {
        self.return_slice(partner, false);
        let home = self.index as usize;
        // Escrow needs more than one shard (see `ShardedRuntime::is_escrowed`), so there is
        // always another slice to answer.
        let others = self.senders.len() - 1;
        debug_assert!(others > 0, "no escrow on a single shard");
        for shard in (0..self.senders.len()).filter(|shard| *shard != home) {
            self.outboxes[shard].push(Hop::Recall { partner });
        }
        self.recalls.insert(partner, Recall { returns_left: others, calls, waiting });
    }

    fn grant(&mut self, partner: Uin, to: u32, amount: Money, exhausted: bool) {
        if amount.is_positive() {
            // Escrowed credit counts as reserved at the home until the slice settles it.
            let reply = self.account(partner, HoldEscrow { credit: amount }.into());
            assert!(
                reply.is_ok(),
                "granting {amount} of {partner}'s available credit was refused: {reply:?}"
            );
        }
        self.outboxes[to as usize].push(Hop::Granted { partner, amount, exhausted });
    }

    /// At a slice: the refill arrived. Serve the parked sagas it covers in order. `exhausted`
    /// says the partner's whole available credit could not cover the first parked saga, so
    /// that one is refused (unless the slice got credit back meanwhile).
    pub(super) fn granted(&mut self, partner: Uin, amount: Money, exhausted: bool) {
        let slice = self.slices.entry(partner).or_default();
        slice.free += amount;
        slice.refill_pending = false;
        let mut answered = Vec::new();
        let mut refuse_front = exhausted;
        while let Some(&(key, amount, charge)) = slice.parked.front() {
            if slice.free >= amount {
                slice.parked.pop_front();
                answered.push((key, Ok(reserved_on_slice(take_from_slice(slice, amount, charge)))));
            } else if std::mem::take(&mut refuse_front) {
                slice.parked.pop_front();
                let refusal = Rejection::InsufficientPartnerCredit {
                    uin: partner,
                    available: slice.free,
                    needed: amount,
                };
                answered.push((key, Err(refusal)));
            } else {
                break;
            }
        }
        self.request_refill(partner);
        for (key, reply) in answered {
            let step = self.sagas[key].0.advance(reply);
            self.drive(key, step);
        }
    }

    /// At the home: `command` on the whole account of an escrowed partner. Every slice is
    /// recalled first (or the recall in progress is joined); refills that arrive meanwhile
    /// wait for it, so no slice takes credit between the returns and the command.
    pub(super) fn call_whole(
        &mut self,
        partner: Uin,
        command: Command,
        reply: oneshot::Sender<Result<Reply, Rejection>>,
    ) {
        if let Some(recall) = self.recalls.get_mut(&partner) {
            recall.calls.push((command, reply));
            return;
        }
        self.start_recall(partner, vec![(command, reply)], Vec::new());
    }

    /// Gives this shard's slice back: free credit leaves escrow, used credit is settled.
    /// `recall` marks the answer to a recall, which the home counts.
    pub(super) fn return_slice(&mut self, partner: Uin, recall: bool) {
        let slice = self.slices.entry(partner).or_default();
        let free = std::mem::take(&mut slice.free);
        let used = std::mem::take(&mut slice.used);
        let home = self.home_of(partner);
        if home == self.index as usize {
            self.settle_at_home(partner, free, used);
        } else {
            self.outboxes[home].push(Hop::Returned { partner, free, used, recall });
        }
    }

    /// Settles every slice's used credit with its home (at each sweep).
    pub(super) fn settle_slices(&mut self) {
        let mut settled = Vec::new();
        for (partner, slice) in &mut self.slices {
            if !slice.used.is_empty() {
                settled.push((*partner, std::mem::take(&mut slice.used)));
            }
        }
        for (partner, used) in settled {
            let home = self.home_of(partner);
            if home == self.index as usize {
                self.settle_at_home(partner, Money::ZERO, used);
            } else {
                self.outboxes[home].push(Hop::Returned { partner, free: Money::ZERO, used, recall: false });
            }
        }
    }

    /// At the home: free credit leaves escrow; used credit becomes used, booked to its bill
    /// month.
    fn settle_at_home(&mut self, partner: Uin, free: Money, used: Vec<(Month, Money)>) {
        let release = Command::from(Release { charge: free, vouchers: None });
        let commits = used.into_iter().map(|(month, charge)| Commit { charge, month, vouchers: None }.into());
        for command in std::iter::once(release).chain(commits) {
            let reply = self.account(partner, command);
            assert!(reply.is_ok(), "settling a slice of {partner} was refused: {reply:?}");
        }
    }

    /// At the home: a slice's return; the last answer to a recall serves the waiting refills.
    pub(super) fn returned(&mut self, partner: Uin, free: Money, used: Vec<(Month, Money)>, recall: bool) {
        self.settle_at_home(partner, free, used);
        if !recall {
            return;
        }
        let Some(pending) = self.recalls.get_mut(&partner) else {
            unreachable!("a recall answer comes to a recall in progress")
        };
        pending.returns_left -= 1;
        if pending.returns_left > 0 {
            return;
        }
        let pending = self.recalls.remove(&partner).expect("present");
        // Every slice is back: the account is whole for the calls waiting on it.
        for (command, reply) in pending.calls {
            let _ = reply.send(self.account(partner, command));
        }
        // Every slice is back: what the home has is all the partner has. Each waiting slice
        // gets exactly what its first parked saga needs, in order, or, when the whole
        // available credit cannot cover that saga, nothing and the word that it is refused.
        for (from, wanted) in pending.waiting {
            let available = self.partner_available(partner);
            if available >= wanted {
                self.grant(partner, from, wanted, false);
            } else {
                self.grant(partner, from, Money::ZERO, true);
            }
        }
    }

    fn partner_available(&self, partner: Uin) -> Money {
        match self.accounts.get(&partner).map(|account| &account.role) {
            Some(Role::Distributor { credit } | Role::Reseller { credit }) => credit.available(),
            _ => Money::ZERO,
        }
    }
}

/// Takes `amount` from a slice's free credit, as a reservation or a charge booked to a
/// month; answers what is left free.
fn take_from_slice(slice: &mut Slice, amount: Money, charge: Option<Month>) -> Money {
    slice.free -= amount;
    match charge {
        Some(month) => add_used(&mut slice.used, month, amount),
        None => slice.reserved += amount,
    }
    slice.free
}

fn add_used(used: &mut Vec<(Month, Money)>, month: Month, amount: Money) {
    match used.iter_mut().find(|(existing, _)| *existing == month) {
        Some((_, sum)) => *sum += amount,
        None => used.push((month, amount)),
    }
}

/// A slice's answer to a partner-side reservation: credit only, no voucher.
fn reserved_on_slice(available: Money) -> Reply {
    Reply::ReservePartner(PartnerReserved { available, deductions: Deductions::default() })
}
