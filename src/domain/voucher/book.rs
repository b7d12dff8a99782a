//! The vouchers one account owns ([`VoucherBook`]) and the two-phase deduction of a purchase
//! from them: hold, then settle or release ([`Deductions`]).
//!
//! Invariant: a voucher's `held` is the sum of the open [`Deductions`] on it; settling or
//! releasing more than is held is a broken ledger and panics.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::{PayMode, UsageRecord, Voucher, VoucherKind};
use crate::domain::ids::{PurchaseId, Timestamp, Uin, VoucherId};
use crate::domain::money::Money;
use crate::domain::rejection::Rejection;

/// The deductions one purchase holds on one account's vouchers: (voucher, amount), in
/// deduction order, each amount positive. Empty, without an allocation, for the common
/// purchase that uses no voucher.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deductions {
    pub parts: Vec<(VoucherId, Money)>,
}

impl Deductions {
    pub fn total(&self) -> Money {
        self.parts.iter().map(|&(_, amount)| amount).sum()
    }

    /// What is left of `amount` to charge on credit: `amount` itself, with no decimal
    /// arithmetic, when nothing was deducted (the common purchase).
    pub fn charge_of(&self, amount: Money) -> Money {
        if self.parts.is_empty() {
            amount
        } else {
            charge(amount, self.total())
        }
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

/// What one side's credit pays of a purchase's `amount` when its vouchers deducted
/// `deducted`: the one formula of a charge.
pub fn charge(amount: Money, deducted: Money) -> Money {
    amount - deducted
}

/// What a settle records in each voucher's usage.
#[derive(Clone, Copy, Debug)]
pub struct UsageInfo<'a> {
    pub purchase: &'a PurchaseId,
    pub pay: PayMode,
    pub product: Option<&'a str>,
    pub time: Timestamp,
    pub customer: Uin,
}

/// The vouchers one account owns, sorted by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherBook {
    /// Sorted by id, so lookups are binary searches and listings come in id order.
    vouchers: Vec<Voucher>,
    /// The last usage log id given out; 0 before the first.
    next_log_id: u64,
}

/// How many usable vouchers [`VoucherBook::hold`] sorts in a stack buffer before it
/// allocates: far more than an account typically has.
const HOLD_INLINE: usize = 16;

impl VoucherBook {
    /// The most vouchers one account holds, whatever their state.
    pub const VOUCHERS_MAX: usize = 10_000;

    /// Adds a voucher. Ids are given out in increasing order, so this appends, but it
    /// inserts in order anyway. A second voucher with the same id is a broken id generator
    /// and panics.
    pub fn add(&mut self, voucher: Voucher) -> Result<(), Rejection> {
        if self.vouchers.len() >= Self::VOUCHERS_MAX {
            return Err(Rejection::TooMany { what: "vouchers of one account", limit: Self::VOUCHERS_MAX });
        }
        match self.position(voucher.id) {
            Ok(_) => panic!("voucher {} is already in the book: voucher ids must be unique", voucher.id),
            Err(index) => self.vouchers.insert(index, voucher),
        }
        Ok(())
    }

    pub fn get(&self, id: VoucherId) -> Option<&Voucher> {
        self.position(id).ok().map(|index| &self.vouchers[index])
    }

    pub fn get_mut(&mut self, id: VoucherId) -> Option<&mut Voucher> {
        self.position(id).ok().map(|index| &mut self.vouchers[index])
    }

    /// In id order.
    pub fn iter(&self) -> impl Iterator<Item = &Voucher> {
        self.vouchers.iter()
    }

    pub fn len(&self) -> usize {
        self.vouchers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vouchers.is_empty()
    }

    fn position(&self, id: VoucherId) -> Result<usize, usize> {
        self.vouchers.binary_search_by_key(&id, |voucher| voucher.id)
    }

    /// Holds up to `amount` on the vouchers [`Voucher::usable`] for this purchase, and answers
    /// what it held (at most `amount`; less when the usable vouchers hold less). Order: trial
    /// vouchers first when `trial_first`, then the earliest `expire`, then the lowest id. Each
    /// voucher gives the smaller of its remaining amount and what is left to hold.
    ///
    /// Allocates nothing when it holds nothing, and sorts the candidates on the stack unless
    /// more than 16 vouchers are usable.
    pub fn hold(
        &mut self,
        amount: Money,
        product: Option<&str>,
        pay: PayMode,
        customer: Uin,
        now: Timestamp,
        trial_first: bool,
    ) -> Deductions {
        assert!(!amount.is_negative(), "holding a negative voucher amount {amount}");
        let mut deductions = Deductions::default();
        if amount.is_zero() {
            return deductions;
        }
        let mut inline = [0u32; HOLD_INLINE];
        let mut spilled = Vec::new();
        let mut count = 0;
        for (index, voucher) in self.vouchers.iter().enumerate() {
            if !voucher.usable(now, product, pay, customer) {
                continue;
            }
            // VOUCHERS_MAX keeps indices far below u32::MAX.
            let index = index as u32;
            if count < HOLD_INLINE {
                inline[count] = index;
            } else {
                if count == HOLD_INLINE {
                    spilled.extend_from_slice(&inline);
                }
                spilled.push(index);
            }
            count += 1;
        }
        let candidates: &mut [u32] = if count <= HOLD_INLINE { &mut inline[..count] } else { &mut spilled };
        let vouchers = &self.vouchers;
        candidates.sort_unstable_by_key(|&index| {
            let voucher = &vouchers[index as usize];
            let rank: u8 = if trial_first && voucher.is_trial() { 0 } else { 1 };
            (rank, voucher.expire, voucher.id)
        });
        let mut left = amount;
        for &index in candidates.iter() {
            if left.is_zero() {
                break;
            }
            let voucher = &mut self.vouchers[index as usize];
            let deducted = voucher.remaining.min(left);
            voucher.remaining -= deducted;
            voucher.held += deducted;
            left -= deducted;
            deductions.parts.push((voucher.id, deducted));
        }
        deductions
    }

    /// Makes held deductions final: each leaves `held` for good and is recorded in its
    /// voucher's usage, with a new log id. Panics if a voucher is missing or holds less than
    /// its deduction: the ledger is broken.
    pub fn settle(&mut self, deductions: &Deductions, info: &UsageInfo) {
        for &(id, amount) in &deductions.parts {
            let log_id = self.next_log_id + 1;
            let voucher = self.expect_mut(id);
            voucher.take_held(amount);
            voucher.record(UsageRecord {
                log_id,
                purchase: info.purchase.clone(),
                amount,
                pay: info.pay,
                product: info.product.map(CompactString::new),
                time: info.time,
                customer: info.customer,
            });
            self.next_log_id = log_id;
        }
    }

    /// Gives held deductions back to `remaining`, also on a voucher withdrawn, invalidated or
    /// expired since (its remaining amount shows it; it is just not usable). Panics like
    /// [`VoucherBook::settle`].
    pub fn release(&mut self, deductions: &Deductions) {
        for &(id, amount) in &deductions.parts {
            let voucher = self.expect_mut(id);
            voucher.take_held(amount);
            voucher.remaining += amount;
        }
    }

    fn expect_mut(&mut self, id: VoucherId) -> &mut Voucher {
        match self.position(id) {
            Ok(index) => &mut self.vouchers[index],
            Err(_) => panic!("voucher {id} holds a deduction but is not in the book: the ledger is broken"),
        }
    }

    /// The remaining amount of every voucher approved, not invalidated and not expired at
    /// `now` (`RemainingVoucher` of `QueryCustomerBillingQuota`), whatever its scope; held
    /// amounts are not counted. A voucher not yet effective counts: it will be usable.
    pub fn remaining_total(&self, now: Timestamp) -> Money {
        self.vouchers
            .iter()
            .filter(|voucher| {
                voucher.approved && !voucher.invalidated && voucher.effective <= now && now < voucher.expire
            })
            .map(|voucher| voucher.remaining)
            .sum()
    }

    /// Withdraws a customer offer. Refused, in this order, for a trial customer voucher
    /// (withdrawn only with its partner voucher), a partner voucher, a voucher already
    /// withdrawn, one used up (nothing remaining and nothing held: a voucher whose remaining
    /// amount is all held can be withdrawn, since a release would give it back), and one
    /// expired (`now >= expire`). Held amounts stay held and settle or release as usual.
    pub fn withdraw(&mut self, id: VoucherId, now: Timestamp) -> Result<(), Rejection> {
        let voucher = self.get_mut(id).ok_or(Rejection::UnknownVoucher(id))?;
        let refuse = |reason| Err(Rejection::VoucherUnavailable { id, reason });
        match voucher.kind {
            VoucherKind::CustomerOffer { .. } => {}
            VoucherKind::CustomerTrial { .. } => return refuse(TRIAL_WITHDRAWN_WITH_PARTNER),
            VoucherKind::PartnerGeneral | VoucherKind::PartnerTrial { .. } => {
                return refuse("is a partner voucher: invalidate it instead")
            }
        }
        if voucher.invalidated {
            return refuse("is already withdrawn");
        }
        if voucher.remaining.is_zero() && voucher.held.is_zero() {
            return refuse("is used up");
        }
        if now >= voucher.expire {
            return refuse("has expired");
        }
        voucher.invalidated = true;
        Ok(())
    }

    /// Invalidates a partner voucher, pending or approved, expired or not. Answers the
    /// associated customer voucher of an approved Type II, for the caller to withdraw on the
    /// customer's book with [`VoucherBook::invalidate_associated`]. Refused for customer
    /// vouchers and for a voucher already invalidated. Held amounts stay held.
    pub fn invalidate(&mut self, id: VoucherId) -> Result<Option<VoucherId>, Rejection> {
        let voucher = self.get_mut(id).ok_or(Rejection::UnknownVoucher(id))?;
        let refuse = |reason| Err(Rejection::VoucherUnavailable { id, reason });
        let associated = match voucher.kind {
            VoucherKind::CustomerOffer { .. } => return refuse("is a customer voucher: withdraw it instead"),
            VoucherKind::CustomerTrial { .. } => return refuse(TRIAL_WITHDRAWN_WITH_PARTNER),
            VoucherKind::PartnerGeneral => None,
            VoucherKind::PartnerTrial { associated, .. } => associated,
        };
        if voucher.invalidated {
            return refuse("is already invalidated");
        }
        voucher.invalidated = true;
        Ok(associated)
    }

    /// Withdraws a trial customer voucher because its partner voucher was invalidated: no
    /// expiry or usage checks, and withdrawing it again is no error. Refused for any other
    /// kind of voucher.
    pub fn invalidate_associated(&mut self, id: VoucherId) -> Result<(), Rejection> {
        let voucher = self.get_mut(id).ok_or(Rejection::UnknownVoucher(id))?;
        if !matches!(voucher.kind, VoucherKind::CustomerTrial { .. }) {
            return Err(Rejection::VoucherUnavailable {
                id,
                reason: "is not a product trial customer voucher",
            });
        }
        voucher.invalidated = true;
        Ok(())
    }

    /// Approves a pending partner voucher at `now`: its validity starts now. For a Type II,
    /// answers its associated Type III, which the caller approves on the customer's book with
    /// [`VoucherBook::approve_associated`]. Refused for customer vouchers, a voucher
    /// invalidated or already approved, and one whose expiry is not after `now` ("expired
    /// before approval").
    pub fn approve(&mut self, id: VoucherId, now: Timestamp) -> Result<Option<VoucherId>, Rejection> {
        let voucher = self.get_mut(id).ok_or(Rejection::UnknownVoucher(id))?;
        let refuse = |reason| Err(Rejection::VoucherUnavailable { id, reason });
        let associated = match voucher.kind {
            VoucherKind::CustomerOffer { .. } | VoucherKind::CustomerTrial { .. } => {
                return refuse("is a customer voucher: it needs no approval")
            }
            VoucherKind::PartnerGeneral => None,
            VoucherKind::PartnerTrial { associated, .. } => associated,
        };
        if voucher.invalidated {
            return refuse("is invalidated");
        }
        if voucher.approved {
            return refuse("is already approved");
        }
        if now >= voucher.expire {
            return refuse("expired before approval");
        }
        voucher.approved = true;
        voucher.effective = now;
        Ok(associated)
    }

    /// Approves the Type III of an approved Type II at `now`. Refused when it was
    /// invalidated meanwhile (its Type II was invalidated: invalidation is final) or is not a
    /// trial customer voucher; approving it twice is no error.
    pub fn approve_associated(&mut self, id: VoucherId, now: Timestamp) -> Result<(), Rejection> {
        let voucher = self.get_mut(id).ok_or(Rejection::UnknownVoucher(id))?;
        if !matches!(voucher.kind, VoucherKind::CustomerTrial { .. }) {
            return Err(Rejection::VoucherUnavailable {
                id,
                reason: "is not a product trial customer voucher",
            });
        }
        if voucher.invalidated {
            return Err(Rejection::VoucherUnavailable { id, reason: "is invalidated" });
        }
        if !voucher.approved {
            voucher.approved = true;
            voucher.effective = now;
        }
        Ok(())
    }
}

const TRIAL_WITHDRAWN_WITH_PARTNER: &str =
    "is a product trial voucher: invalidate its partner voucher instead";
