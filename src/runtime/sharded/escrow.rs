//! Escrow on the sharded runtime: the glue between the shards and the escrow state machine
//! (`coordinator::escrow`), which owns every money rule. A shard holds its slices of the
//! escrowed partners and, for the partners that live on it, their homes; this file feeds
//! them the saga steps and hops that concern them, and turns their answers into hops and
//! into commands on the partner's account (`HoldEscrow`, `Release`, `Commit`).
//!
//! Invariant: a slice's reservation is committed or released by the saga that made it, on
//! the same shard; credit moves between a slice and its home only as `Granted` and
//! `Returned` hops, and at the home what the home holds for escrow is the account's reserved
//! credit (checked in debug builds after every home step).

use tokio::sync::oneshot;

use super::shard::{Hop, Shard};
use super::shard_of_uin;
use crate::coordinator::escrow::{Decision, Grant, Home, Recalled, Reservation, Settlement, Slice};
use crate::coordinator::IndexRead;
use crate::domain::account::{Commit, HoldEscrow, PartnerReserved, Release};
use crate::domain::voucher::Deductions;
use crate::domain::{Command, Money, Rejection, Reply, Role, Uin};

/// A command for an escrowed partner's whole account, and where its answer goes.
pub(super) type WholeCall = (Command, oneshot::Sender<Result<Reply, Rejection>>);

impl Shard {
    fn home_of(&self, partner: Uin) -> usize {
        shard_of_uin(partner, self.context.shards)
    }

    fn slice(&mut self, partner: Uin) -> &mut Slice<usize> {
        self.slices.entry(partner).or_insert_with(|| Slice::new(partner))
    }

    fn home(&mut self, partner: Uin) -> &mut Home<WholeCall> {
        let slices = self.context.shards as u32;
        self.homes.entry(partner).or_insert_with(|| Home::new(slices))
    }

    /// A partner-side step of a saga on this shard's slice: answered at once, or `None` when
    /// the saga is parked until a refill.
    pub(super) fn slice_step(
        &mut self,
        key: usize,
        partner: Uin,
        command: Command,
    ) -> Option<Result<Reply, Rejection>> {
        let slice = self.slice(partner);
        // An escrowed partner has no vouchers (the engine refuses them), so a slice serves
        // every partner-side step from credit alone.
        match command {
            Command::ReservePartner(reserve) => {
                match slice.reserve(key, reserve.amount, reserve.commit.then_some(reserve.month)) {
                    Reservation::Served { available } => Some(Ok(reserved_on_slice(available))),
                    Reservation::Parked { refill } => {
                        if let Some(wanted) = refill {
                            self.ask_refill(partner, wanted);
                        }
                        None
                    }
                }
            }
            Command::Commit(Commit { charge, month, vouchers }) => {
                assert!(vouchers.is_none(), "an escrowed partner has no vouchers");
                slice.commit(charge, month);
                Some(Ok(Reply::Commit(())))
            }
            Command::Release(Release { charge, vouchers }) => {
                assert!(vouchers.is_none(), "an escrowed partner has no vouchers");
                slice.release(charge);
                Some(Ok(Reply::Release(())))
            }
            other => unreachable!("{other:?} is not a partner-side saga step"),
        }
    }

    fn ask_refill(&mut self, partner: Uin, wanted: Money) {
        let home = self.home_of(partner);
        self.outboxes[home].push(Hop::Refill { partner, wanted, from: self.index });
    }

    /// At the slice: the home's grant arrived. The sagas it answers go on from here.
    pub(super) fn granted(&mut self, table: &IndexRead<'_>, partner: Uin, amount: Money, exhausted: bool) {
        let refilled = self.slice(partner).granted(amount, exhausted);
        if let Some(wanted) = refilled.refill {
            self.ask_refill(partner, wanted);
        }
        for (key, answer) in refilled.answers {
            self.resume(table, key, answer.map(reserved_on_slice));
        }
    }

    /// At the slice: the answer to a recall.
    pub(super) fn give_back(&mut self, partner: Uin) {
        let settlement = self.slice(partner).give_back();
        self.send_home(partner, settlement, true);
    }

    /// Settles every slice's used credit with its home (at each sweep).
    pub(super) fn settle_slices(&mut self) {
        let mut settled = Vec::new();
        for (partner, slice) in &mut self.slices {
            if let Some(settlement) = slice.take_used() {
                settled.push((*partner, settlement));
            }
        }
        for (partner, settlement) in settled {
            self.send_home(partner, settlement, false);
        }
    }

    /// The home's own slice settles at once; the others send a hop.
    fn send_home(&mut self, partner: Uin, settlement: Settlement, recall: bool) {
        let home = self.home_of(partner);
        if home == self.index as usize {
            self.returned(partner, settlement, recall);
        } else {
            self.outboxes[home].push(Hop::Returned { partner, settlement, recall });
        }
    }

    /// At the home: a slice asks for a refill.
    pub(super) fn refill(&mut self, partner: Uin, wanted: Money, from: u32) {
        let available = self.partner_available(partner);
        let decision = self.home(partner).refill(from, wanted, available);
        self.carry_out(partner, decision);
    }

    /// At the home: `command` on the whole account of an escrowed partner, once every slice
    /// is back.
    pub(super) fn call_whole(
        &mut self,
        partner: Uin,
        command: Command,
        reply: oneshot::Sender<Result<Reply, Rejection>>,
    ) {
        let decision = self.home(partner).call_whole((command, reply));
        self.carry_out(partner, decision);
    }

    fn carry_out(&mut self, partner: Uin, decision: Decision) {
        match decision {
            Decision::Grant(grant) => self.grant(partner, grant),
            Decision::RecallEverySlice => {
                // The home's own slice too answers by hop: behind any grant on its way to it,
                // so that the grant is recalled with the slice rather than missed by the
                // recall (which could refuse a purchase the whole credit covers).
                for outbox in &mut self.outboxes {
                    outbox.push(Hop::Recall { partner });
                }
            }
            Decision::WaitForRecall => {}
        }
        self.check_home(partner);
    }

    fn grant(&mut self, partner: Uin, grant: Grant) {
        let Grant { slice, amount, exhausted } = grant;
        if amount.is_positive() {
            // Escrowed credit counts as reserved at the home until the slice settles it.
            let reply = self.account(partner, HoldEscrow { credit: amount }.into());
            assert!(
                reply.is_ok(),
                "granting {amount} of {partner}'s available credit was refused: {reply:?}"
            );
        }
        self.outboxes[slice as usize].push(Hop::Granted { partner, amount, exhausted });
    }

    /// At the home: a slice's settlement. The end of a recall applies the waiting calls to
    /// the whole account, then serves the waiting refills from what is available after them.
    pub(super) fn returned(&mut self, partner: Uin, settlement: Settlement, recall: bool) {
        let recalled = self.home(partner).returned(&settlement, recall);
        let Settlement { free, used } = settlement;
        let release = Command::from(Release { charge: free, vouchers: None });
        let commits = used.into_iter().map(|(month, charge)| Commit { charge, month, vouchers: None }.into());
        for command in std::iter::once(release).chain(commits) {
            let reply = self.account(partner, command);
            assert!(reply.is_ok(), "settling a slice of {partner} was refused: {reply:?}");
        }
        if let Some(Recalled { calls, waiting }) = recalled {
            for (command, reply) in calls {
                let _ = reply.send(self.account(partner, command));
            }
            let available = self.partner_available(partner);
            for grant in self.home(partner).serve_waiting(waiting, available) {
                self.grant(partner, grant);
            }
        }
        self.check_home(partner);
    }

    /// Every reservation of an escrowed partner goes through a slice, so its account's
    /// reserved credit is exactly what the home holds for the slices.
    fn check_home(&self, partner: Uin) {
        if cfg!(debug_assertions) {
            let held = self.homes.get(&partner).map_or(Money::ZERO, Home::held);
            if let Some(Role::Distributor { credit } | Role::Reseller { credit }) =
                self.partner_account(partner).map(|account| &account.role)
            {
                assert_eq!(
                    credit.reserved, held,
                    "{partner}'s reserved credit is not the home's escrow hold"
                );
            }
        }
    }
}

/// A slice's answer to a partner-side reservation: credit only, no voucher.
fn reserved_on_slice(available: Money) -> Reply {
    Reply::ReservePartner(PartnerReserved { available, deductions: Deductions::default() })
}
