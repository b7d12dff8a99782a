//! Escrow: a hot partner's available credit split into slices, one per shard, as a pure
//! state machine beside [`Ledger`](super::Ledger) and [`Saga`](super::Saga). It owns the
//! money rules of the protocol (docs/ARCHITECTURE.md, "Escrow"); the runtime only carries
//! its messages and applies its holds, releases and commits to the partner's account.
//!
//! A [`Slice`] is one shard's share of one partner: it serves the partner side of sagas
//! (reserve, commit, release) from its free credit, parks in arrival order what it cannot
//! cover, and asks for one refill at a time. The [`Home`] sits beside the partner's account
//! on its own shard: it grants refills from the account's available credit, recalls every
//! slice when that cannot cover a refill or when a command needs the whole account, and
//! counts what it holds for the slices. [`EscrowedPartners`] decides which partners escrow.
//!
//! Nothing here knows threads, channels or where a saga runs: a slice is told "this amount
//! for this saga" and answers; the runtime's keys for parked sagas and for whole-account
//! calls are type parameters.
//!
//! Invariants:
//! - per slice, `free + reserved + used = granted`, every term non-negative, where
//!   `granted` is the slice's net granted credit (grants in, give-backs and settlements
//!   out); asserted after every step, in release builds too;
//! - in total, what the home holds for escrow equals the slices' granted credit plus the
//!   credit on its way between them ([`check_total`]), and at the home it is exactly the
//!   partner account's reserved credit, since every reservation of an escrowed partner goes
//!   through a slice;
//! - a slice serves in arrival order: no reservation overtakes a parked one;
//! - a reservation is refused only on an `exhausted` grant, which the home sends after every
//!   slice came back, so only when the partner's whole available credit cannot cover it.

use std::collections::VecDeque;

use rustc_hash::FxHashSet;

use crate::domain::{Money, Month, Rejection, Uin};

/// Which partners have their credit split into slices. The one place this is decided: the
/// engine (through the runtime) and every shard ask [`EscrowedPartners::is_escrowed`].
#[derive(Debug, Default)]
pub struct EscrowedPartners {
    partners: FxHashSet<Uin>,
}

impl EscrowedPartners {
    /// The `named` partners, when there is more than one slice to split them into: a single
    /// slice would hold all of a partner's credit, the account's job, with extra messages.
    pub fn new(named: impl IntoIterator<Item = Uin>, slices: usize) -> EscrowedPartners {
        let partners = if slices > 1 { named.into_iter().collect() } else { FxHashSet::default() };
        EscrowedPartners { partners }
    }

    pub fn is_escrowed(&self, partner: Uin) -> bool {
        self.partners.contains(&partner)
    }
}

/// Credit leaving a slice for its home: the free credit given back, and the credit charged
/// per bill month, which the home settles into those months.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    pub free: Money,
    pub used: Vec<(Month, Money)>,
}

impl Settlement {
    /// Everything the settlement takes off the home's escrow hold.
    pub fn total(&self) -> Money {
        self.free + self.used.iter().map(|(_, amount)| *amount).sum::<Money>()
    }
}

/// A slice's answer to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Reservation {
    /// Taken from free credit; `available` is what the slice has left free.
    Served { available: Money },
    /// Parked until a refill; `refill` is the amount to ask the home for, when no refill is
    /// already on its way.
    Parked { refill: Option<Money> },
}

/// What a refill served at a slice.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct Refilled<Saga> {
    /// The parked sagas answered, in arrival order: what the slice has left free after each
    /// one, or its refusal.
    pub answers: Vec<(Saga, Result<Money, Rejection>)>,
    /// The next refill to ask for, when sagas are still parked.
    pub refill: Option<Money>,
}

#[derive(Debug)]
struct Parked<Saga> {
    saga: Saga,
    amount: Money,
    /// The bill month of a one-shot purchase, charged at once; `None` for a reservation.
    charge: Option<Month>,
}

/// One slice's share of one partner's credit.
#[derive(Debug)]
pub struct Slice<Saga> {
    /// Named in a refusal.
    partner: Uin,
    /// Credit this slice may still reserve or charge.
    free: Money,
    /// Held by open reservations served here.
    reserved: Money,
    /// Charged here and not yet settled with the home, per bill month, so that the home
    /// books a hot partner's charges to the right months.
    used: Vec<(Month, Money)>,
    /// Net credit granted: grants in, give-backs and settlements out. What the home holds
    /// for this slice once no credit is on its way between them.
    granted: Money,
    /// Sagas waiting for a refill, in arrival order.
    parked: VecDeque<Parked<Saga>>,
    /// One refill at a time, for the first parked saga, so that a refusal concerns one
    /// purchase.
    refill_pending: bool,
}

impl<Saga> Slice<Saga> {
    pub fn new(partner: Uin) -> Slice<Saga> {
        Slice {
            partner,
            free: Money::ZERO,
            reserved: Money::ZERO,
            used: Vec::new(),
            granted: Money::ZERO,
            parked: VecDeque::new(),
            refill_pending: false,
        }
    }

    pub fn free(&self) -> Money {
        self.free
    }

    pub fn reserved(&self) -> Money {
        self.reserved
    }

    /// Charged here and not yet settled, all months together.
    pub fn used(&self) -> Money {
        self.used.iter().map(|(_, amount)| *amount).sum()
    }

    /// Net credit granted: grants in, give-backs and settlements out.
    pub fn granted_net(&self) -> Money {
        self.granted
    }

    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Reserves `amount` for `saga`, or charges it at once to the bill month `charge`.
    /// Served from free credit when nobody is parked (arrival order: nobody overtakes a
    /// parked saga); otherwise parked until a refill.
    pub fn reserve(&mut self, saga: Saga, amount: Money, charge: Option<Month>) -> Reservation {
        assert!(!amount.is_negative(), "a reservation of {amount}");
        let reservation = if self.parked.is_empty() && self.free >= amount {
            self.take(amount, charge);
            Reservation::Served { available: self.free }
        } else {
            self.parked.push_back(Parked { saga, amount, charge });
            Reservation::Parked { refill: self.refill_to_ask() }
        };
        self.check();
        reservation
    }

    /// Charges `charge` of a reservation served here to the bill month `month`.
    pub fn commit(&mut self, charge: Money, month: Month) {
        assert!(!charge.is_negative(), "a commit of {charge}");
        assert!(self.reserved >= charge, "commit of {charge} exceeds the slice's reserved {}", self.reserved);
        self.reserved -= charge;
        add_used(&mut self.used, month, charge);
        self.check();
    }

    /// Frees `charge` of a reservation served here. Parked sagas wait for their refill, which
    /// will find the credit freed here.
    pub fn release(&mut self, charge: Money) {
        assert!(!charge.is_negative(), "a release of {charge}");
        assert!(
            self.reserved >= charge,
            "release of {charge} exceeds the slice's reserved {}",
            self.reserved
        );
        self.reserved -= charge;
        self.free += charge;
        self.check();
    }

    /// The home granted `amount`: serve the parked sagas it covers, in order. `exhausted`
    /// says the partner's whole available credit could not cover the refill, so the first
    /// parked saga that still cannot be covered is refused (none, when the slice got credit
    /// back meanwhile and covers them all).
    pub fn granted(&mut self, amount: Money, exhausted: bool) -> Refilled<Saga> {
        assert!(!amount.is_negative(), "a grant of {amount}");
        self.free += amount;
        self.granted += amount;
        self.refill_pending = false;
        let mut answers = Vec::new();
        let mut refuse_first = exhausted;
        while let Some(first) = self.parked.front() {
            if self.free >= first.amount {
                let Parked { saga, amount, charge } = self.parked.pop_front().expect("a first");
                self.take(amount, charge);
                answers.push((saga, Ok(self.free)));
            } else if std::mem::take(&mut refuse_first) {
                let Parked { saga, amount, .. } = self.parked.pop_front().expect("a first");
                let refusal = Rejection::InsufficientPartnerCredit {
                    uin: self.partner,
                    available: self.free,
                    needed: amount,
                };
                answers.push((saga, Err(refusal)));
            } else {
                break;
            }
        }
        let refill = self.refill_to_ask();
        self.check();
        Refilled { answers, refill }
    }

    /// Gives the slice back to the home (the answer to a recall): free credit leaves and
    /// used credit is settled; open reservations stay, to be committed or released here.
    pub fn give_back(&mut self) -> Settlement {
        let settlement =
            Settlement { free: std::mem::take(&mut self.free), used: std::mem::take(&mut self.used) };
        self.granted -= settlement.total();
        self.check();
        settlement
    }

    /// The used credit to settle with the home (periodically), or `None` when there is none.
    pub fn take_used(&mut self) -> Option<Settlement> {
        if self.used.is_empty() {
            return None;
        }
        let settlement = Settlement { free: Money::ZERO, used: std::mem::take(&mut self.used) };
        self.granted -= settlement.total();
        self.check();
        Some(settlement)
    }

    /// Takes `amount` from free credit, as a reservation or as a charge to a bill month.
    fn take(&mut self, amount: Money, charge: Option<Month>) {
        self.free -= amount;
        match charge {
            Some(month) => add_used(&mut self.used, month, amount),
            None => self.reserved += amount,
        }
    }

    /// The refill for the first parked saga, unless one is already on its way.
    fn refill_to_ask(&mut self) -> Option<Money> {
        let first = self.parked.front()?;
        if self.refill_pending {
            return None;
        }
        self.refill_pending = true;
        Some(first.amount)
    }

    /// The per-slice invariant: every credit the slice was granted is free, reserved or
    /// used, and none is negative.
    fn check(&self) {
        let used = self.used();
        assert!(
            !self.free.is_negative() && !self.reserved.is_negative() && !used.is_negative(),
            "a negative slice of {}: free {}, reserved {}, used {used}",
            self.partner,
            self.free,
            self.reserved,
        );
        assert_eq!(
            self.free + self.reserved + used,
            self.granted,
            "slice of {}: free + reserved + used is not what it was granted",
            self.partner
        );
    }
}

fn add_used(used: &mut Vec<(Month, Money)>, month: Month, amount: Money) {
    match used.iter_mut().find(|(existing, _)| *existing == month) {
        Some((_, sum)) => *sum += amount,
        None => used.push((month, amount)),
    }
}

/// What the home does about a refill or a whole-account call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Decision {
    /// Hold the grant's amount on the partner's account and send it to the slice.
    Grant(Grant),
    /// Every slice gives its credit back ([`Slice::give_back`]) and the home takes each
    /// return with `answers_recall`. The home's own slice counts like the others, and must
    /// answer after any grant already on its way to it (otherwise the recall misses that
    /// credit), so a runtime sends it the recall by the way it sends it grants.
    RecallEverySlice,
    /// A recall is in progress; its end serves the request.
    WaitForRecall,
}

/// Credit the home grants a slice: `amount` (held on the partner's account before it
/// leaves), and whether it is everything the partner had for the slice's first parked saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub slice: u32,
    pub amount: Money,
    pub exhausted: bool,
}

/// The end of a recall: every slice is back, so the account is whole. The runtime applies
/// `calls` to the account first, then hands `waiting` to [`Home::serve_waiting`] with what
/// is available after them.
#[derive(Debug)]
#[must_use]
pub struct Recalled<Call> {
    pub calls: Vec<Call>,
    pub waiting: Waiting,
}

/// Refills that waited on a recall, in arrival order: (slice, wanted).
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct Waiting(Vec<(u32, Money)>);

#[derive(Debug)]
struct Recall<Call> {
    /// Slices that have not answered yet.
    returns_left: u32,
    /// Commands for the whole account, applied when every slice is back, before the refills.
    calls: Vec<Call>,
    waiting: Vec<(u32, Money)>,
}

/// The home side of one escrowed partner, beside its account.
#[derive(Debug)]
pub struct Home<Call> {
    /// How many slices the partner has, the home's own included.
    slices: u32,
    /// Held on the account for the slices: grants out, settlements in.
    held: Money,
    recall: Option<Recall<Call>>,
}

impl<Call> Home<Call> {
    pub fn new(slices: u32) -> Home<Call> {
        assert!(slices > 0, "a partner without slices");
        Home { slices, held: Money::ZERO, recall: None }
    }

    /// What the home holds on the account for the slices (reserved, until settled).
    pub fn held(&self) -> Money {
        self.held
    }

    pub fn is_recalling(&self) -> bool {
        self.recall.is_some()
    }

    /// `slice` asks for at least `wanted`; `available` is the partner's available credit at
    /// the home. Grants `max(wanted, available / (2 x slices))` capped at `available`, so that
    /// refills are rare but no slice hoards the credit; when `available` cannot cover
    /// `wanted`, recalls every slice first (the credit `wanted` needs may sit in them).
    pub fn refill(&mut self, slice: u32, wanted: Money, available: Money) -> Decision {
        assert!(slice < self.slices, "slice {slice} of {}", self.slices);
        let decision = if let Some(recall) = &mut self.recall {
            recall.waiting.push((slice, wanted));
            Decision::WaitForRecall
        } else if available >= wanted {
            let share = available.share_of(2 * self.slices);
            Decision::Grant(self.grant(slice, wanted.max(share).min(available), false))
        } else {
            self.recall =
                Some(Recall { returns_left: self.slices, calls: Vec::new(), waiting: vec![(slice, wanted)] });
            Decision::RecallEverySlice
        };
        self.check();
        decision
    }

    /// A command that reads or changes the whole account: every slice comes back first (or
    /// the call joins the recall in progress), and no refill is served in between.
    pub fn call_whole(&mut self, call: Call) -> Decision {
        let decision = match &mut self.recall {
            Some(recall) => {
                recall.calls.push(call);
                Decision::WaitForRecall
            }
            None => {
                self.recall =
                    Some(Recall { returns_left: self.slices, calls: vec![call], waiting: Vec::new() });
                Decision::RecallEverySlice
            }
        };
        self.check();
        decision
    }

    /// A slice's settlement arrived (the runtime releases its free credit on the account and
    /// commits its used credit per month). Only an answer to a recall counts towards it; the
    /// last one ends the recall.
    pub fn returned(&mut self, settlement: &Settlement, answers_recall: bool) -> Option<Recalled<Call>> {
        self.held -= settlement.total();
        let recalled = if answers_recall { self.count_return() } else { None };
        self.check();
        recalled
    }

    /// After a recall's calls ran on the whole account, with `available` all the partner
    /// has: each waiting slice gets exactly what it asked for, in order, or, when what is left
    /// cannot cover it, nothing and `exhausted`. Credit is never handed to a slice that
    /// cannot use it while another needs it.
    pub fn serve_waiting(&mut self, waiting: Waiting, mut available: Money) -> Vec<Grant> {
        let grants = waiting
            .0
            .into_iter()
            .map(|(slice, wanted)| {
                if available >= wanted {
                    available -= wanted;
                    self.grant(slice, wanted, false)
                } else {
                    self.grant(slice, Money::ZERO, true)
                }
            })
            .collect();
        self.check();
        grants
    }

    fn grant(&mut self, slice: u32, amount: Money, exhausted: bool) -> Grant {
        self.held += amount;
        Grant { slice, amount, exhausted }
    }

    fn count_return(&mut self) -> Option<Recalled<Call>> {
        let recall = self.recall.as_mut().expect("a recall answer comes to a recall in progress");
        recall.returns_left -= 1;
        if recall.returns_left > 0 {
            return None;
        }
        let Recall { calls, waiting, .. } = self.recall.take().expect("present");
        Some(Recalled { calls, waiting: Waiting(waiting) })
    }

    fn check(&self) {
        assert!(!self.held.is_negative(), "the home holds {} for its slices", self.held);
        if let Some(recall) = &self.recall {
            assert!(
                (1..=self.slices).contains(&recall.returns_left),
                "a recall waits for {} of {} slices",
                recall.returns_left,
                self.slices
            );
        }
    }
}

/// The total invariant of one partner's escrow: what `home` holds equals the granted credit
/// of its `slices` plus `in_transit`, the credit in grants the slices have not received yet
/// and in settlements the home has not received yet. The runtime cannot call it at every
/// step (the slices live on other threads); the tests do.
pub fn check_total<'a, Saga: 'a, Call>(
    home: &Home<Call>,
    slices: impl IntoIterator<Item = &'a Slice<Saga>>,
    in_transit: Money,
) {
    let granted: Money = slices.into_iter().map(Slice::granted_net).sum();
    assert_eq!(home.held, granted + in_transit, "the home's escrow hold is not what its slices were granted");
}

#[cfg(test)]
mod tests;
