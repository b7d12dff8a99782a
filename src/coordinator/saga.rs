//! The two-phase saga: the sequence of account commands that carries out one
//! purchase-protocol step across the customer and the charged partner.
//!
//! Invariant: a saga runs to its end once started, even if its requester stops waiting;
//! every amount it reserved is committed or released by it or by a later saga of the same
//! record.

use std::sync::Arc;

use super::records::Key;
use super::Holds;
use crate::domain::account::{
    Commit, CustomerReserved, Goods, PartnerReserved, Release, ReserveCustomer, ReservePartner,
    SettleVouchers, Settlement,
};
use crate::domain::voucher::Deductions;
use crate::domain::{Command, Money, Month, PurchaseId, Rejection, Reply, Request, Timestamp, Uin};

/// What a saga does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SagaKind {
    /// Reserve on the customer, charge the partner, commit the customer.
    OneShot,
    /// Reserve on the customer, then on the partner.
    Reserve,
    /// Commit a reservation on both sides.
    Commit,
    /// Release a reservation on both sides; an expiry answers `ReservationExpired`.
    Release { expired: bool },
}

/// How a saga ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SagaEnd {
    Purchased {
        charged: Uin,
        customer_available: Money,
        partner_available: Money,
    },
    Reserved {
        charged: Uin,
    },
    Refused(Rejection),
    /// A commit or a release is done on both sides.
    Settled,
}

/// The next thing a saga needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this command to this account and feed the reply to [`Saga::advance`].
    Call(Uin, Command),
    Done(SagaEnd),
}

/// When a saga runs and what it concerns, beyond the amount.
#[derive(Debug)]
pub(super) struct Stamp {
    /// When the saga started: vouchers are valid or not at this instant, usage is recorded
    /// at it.
    pub(super) now: Timestamp,
    /// The bill month the purchase's charges are booked to.
    pub(super) month: Month,
    pub(super) goods: Option<Arc<Goods>>,
}

/// A purchase-protocol operation in progress across the customer and the charged partner.
#[derive(Debug)]
pub struct Saga {
    pub id: PurchaseId,
    pub kind: SagaKind,
    customer: Uin,
    charged: Option<Uin>,
    pub(super) amount: Money,
    phase: Phase,
    customer_available: Money,
    partner_available: Money,
    pub(super) stamp: Stamp,
    /// The deductions held and not yet made final or given back; boxed, and absent when
    /// there are none, so that a plain purchase's saga stays small.
    holds: Option<Box<Holds>>,
    /// Where its ledger record was when the saga began (a sequence number; see
    /// [`super::records::Records::locate`]): finding it there costs one read instead of an
    /// index lookup.
    pub(super) record: u64,
    /// Its record's key, to find the record if it moved meanwhile.
    pub(super) key: Key,
    /// A reservation's timeout: its deadline counts from the moment it holds on both sides.
    pub(super) timeout_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Start,
    CustomerReserved,
    /// A one-shot purchase's partner charge is done and its voucher deductions are being
    /// made final.
    PartnerSettling,
    PartnerDone,
    /// Undoing the customer's reservation after the partner refused. Boxed: refusals are
    /// rare and every saga is as large as its largest phase.
    Undoing(Box<Rejection>),
    CustomerSettled,
}

impl Saga {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        id: PurchaseId,
        kind: SagaKind,
        customer: Uin,
        charged: Option<Uin>,
        amount: Money,
        stamp: Stamp,
        holds: Holds,
    ) -> Saga {
        Saga {
            id,
            kind,
            customer,
            charged,
            amount,
            phase: Phase::Start,
            customer_available: Money::ZERO,
            partner_available: Money::ZERO,
            stamp,
            record: 0,
            key: Key { low: 0, high: 0 },
            timeout_ms: 0,
            holds: if holds.is_empty() {
                None
            } else {
                let totals = [holds.customer.total(), holds.partner.total()];
                Some(Box::new(Holds { totals, ..holds }))
            },
        }
    }

    /// Every held deduction, for the ledger to keep with a reservation or to drop.
    pub(super) fn take_all_holds(&mut self) -> Holds {
        self.holds.take().map_or_else(Holds::default, |holds| *holds)
    }

    /// What each side's vouchers deducted in all (customer, partner).
    pub(super) fn deducted(&self) -> [Money; 2] {
        self.holds.as_deref().map_or([Money::ZERO; 2], |holds| holds.totals)
    }

    /// Takes one side's held deductions (`customer` or the partner's).
    fn take_holds(&mut self, customer: bool) -> Deductions {
        match self.holds.as_deref_mut() {
            Some(holds) if customer => std::mem::take(&mut holds.customer),
            Some(holds) => std::mem::take(&mut holds.partner),
            None => Deductions::default(),
        }
    }

    /// Keeps one side's held deductions (`keep`) or only their total; nothing is stored for
    /// none. Answers them back when not kept.
    fn note_holds(&mut self, customer: bool, deductions: Deductions, keep: bool) -> Deductions {
        if deductions.is_empty() {
            return deductions;
        }
        let holds = self.holds.get_or_insert_with(Default::default);
        holds.totals[usize::from(!customer)] = deductions.total();
        match (keep, customer) {
            (true, true) => holds.customer = deductions,
            (true, false) => holds.partner = deductions,
            (false, _) => return deductions,
        }
        Deductions::default()
    }

    /// What a commit records on the vouchers of one side; nothing when it deducted none.
    fn settlement(&self, deductions: Deductions) -> Option<Box<Settlement>> {
        if deductions.is_empty() {
            return None;
        }
        Some(Box::new(Settlement {
            deductions,
            purchase: self.id.clone(),
            goods: self.stamp.goods.clone(),
            time: self.stamp.now,
            customer: self.customer,
        }))
    }

    /// The commit of one side's reservation: its charge and the settlement of its held
    /// deductions.
    fn commit(&mut self, customer: bool) -> Command {
        let deductions = self.take_holds(customer);
        let charge = deductions.charge_of(self.amount);
        Commit { charge, month: self.stamp.month, vouchers: self.settlement(deductions) }.into()
    }

    /// The release of one side's reservation: its charge and its held deductions.
    fn release(&mut self, customer: bool) -> Command {
        let deductions = self.take_holds(customer);
        let charge = deductions.charge_of(self.amount);
        Release { charge, vouchers: (!deductions.is_empty()).then(|| Box::new(deductions)) }.into()
    }

    pub fn customer(&self) -> Uin {
        self.customer
    }

    /// The partner this saga charges, once known. A step for this UIN is a partner-side step.
    pub fn charged(&self) -> Option<Uin> {
        self.charged
    }

    /// The first step.
    pub fn first_step(&mut self) -> Step {
        let amount = self.amount;
        match self.kind {
            SagaKind::OneShot | SagaKind::Reserve => Step::Call(
                self.customer,
                ReserveCustomer { amount, now: self.stamp.now, goods: self.stamp.goods.clone() }.into(),
            ),
            SagaKind::Commit => Step::Call(self.customer, self.commit(true)),
            SagaKind::Release { .. } => Step::Call(self.customer, self.release(true)),
        }
    }

    /// Takes the reply to the last step's command and says what comes next.
    pub fn advance(&mut self, reply: Result<Reply, Rejection>) -> Step {
        let amount = self.amount;
        let phase = std::mem::replace(&mut self.phase, Phase::Start);
        match (&self.kind, phase, reply) {
            (SagaKind::OneShot | SagaKind::Reserve, Phase::Start, Ok(reply)) => {
                let CustomerReserved { charged, available, deductions } = answer::<ReserveCustomer>(reply);
                self.charged = Some(charged);
                self.customer_available = available;
                self.note_holds(true, deductions, true);
                self.phase = Phase::CustomerReserved;
                let commit = self.kind == SagaKind::OneShot;
                let command = ReservePartner {
                    amount,
                    commit,
                    customer: self.customer,
                    now: self.stamp.now,
                    month: self.stamp.month,
                    goods: self.stamp.goods.clone(),
                };
                Step::Call(charged, command.into())
            }
            (SagaKind::OneShot | SagaKind::Reserve, Phase::Start, Err(rejection)) => {
                Step::Done(SagaEnd::Refused(rejection))
            }
            (SagaKind::OneShot | SagaKind::Reserve, Phase::CustomerReserved, Err(rejection)) => {
                self.phase = Phase::Undoing(Box::new(rejection));
                Step::Call(self.customer, self.release(true))
            }
            (SagaKind::OneShot | SagaKind::Reserve, Phase::CustomerReserved, Ok(reply)) => {
                let PartnerReserved { available, deductions } = answer::<ReservePartner>(reply);
                self.partner_available = available;
                let charged = self.charged.expect("charged known");
                let keep = self.kind == SagaKind::Reserve;
                let deductions = self.note_holds(false, deductions, keep);
                if keep {
                    return Step::Done(SagaEnd::Reserved { charged });
                }
                match self.settlement(deductions) {
                    Some(settlement) => {
                        self.phase = Phase::PartnerSettling;
                        Step::Call(charged, SettleVouchers { settlement }.into())
                    }
                    None => {
                        self.phase = Phase::PartnerDone;
                        Step::Call(self.customer, self.commit(true))
                    }
                }
            }
            (SagaKind::OneShot, Phase::PartnerSettling, reply) => {
                expect_settled(reply, self.charged.expect("charged known"));
                self.phase = Phase::PartnerDone;
                Step::Call(self.customer, self.commit(true))
            }
            (SagaKind::OneShot, Phase::PartnerDone, reply) => {
                expect_settled(reply, self.customer);
                Step::Done(SagaEnd::Purchased {
                    charged: self.charged.expect("charged known"),
                    customer_available: self.customer_available,
                    partner_available: self.partner_available,
                })
            }
            (_, Phase::Undoing(rejection), reply) => {
                expect_settled(reply, self.customer);
                Step::Done(SagaEnd::Refused(*rejection))
            }
            (SagaKind::Commit | SagaKind::Release { .. }, Phase::Start, reply) => {
                expect_settled(reply, self.customer);
                self.phase = Phase::CustomerSettled;
                let charged = self.charged.expect("a reservation knows its partner");
                let command =
                    if self.kind == SagaKind::Commit { self.commit(false) } else { self.release(false) };
                Step::Call(charged, command)
            }
            (SagaKind::Commit | SagaKind::Release { .. }, Phase::CustomerSettled, reply) => {
                expect_settled(reply, self.charged.expect("charged known"));
                Step::Done(SagaEnd::Settled)
            }
            (kind, phase, reply) => unreachable!("saga {kind:?} in {phase:?} got {reply:?}"),
        }
    }
}

/// Commits and releases cannot be refused: the amounts were reserved by this purchase.
fn expect_settled(reply: Result<Reply, Rejection>, uin: Uin) {
    if let Err(rejection) = reply {
        panic!("settling a reservation on {uin} was refused: {rejection}");
    }
}

/// The typed answer to the command of the step the saga is in: a reply to another command
/// would be a bug of the runtime that carried it.
fn answer<R: Request>(reply: Reply) -> R::Answer {
    R::answer(reply).unwrap_or_else(|other| panic!("{} answered {other:?}", std::any::type_name::<R>()))
}
