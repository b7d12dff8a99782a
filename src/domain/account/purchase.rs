//! The steps of the purchase protocol on one account: reserve (customer side, then partner
//! side), commit, release, and the voucher deductions that travel with them.
//!
//! Words: a purchase's `amount` is what it costs; a side's `deductions` are what its
//! vouchers cover of the amount; its `charge` is the rest, what its credit pays
//! ([`Deductions::charge_of`], the one formula). Commands after a reservation carry the
//! charge, never the amount.
//!
//! Invariant: a reservation holds exactly its charge of reserved credit and its deductions
//! on its vouchers; the commit or release of it moves exactly those, and cannot be refused.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use compact_str::CompactString;

use super::{rules_opt_mut, wrong_kind, Account, Extra, Role};
use crate::domain::ids::{Month, PurchaseId, Timestamp, Uin};
use crate::domain::money::Money;
use crate::domain::rejection::{KindRequired, Rejection};
use crate::domain::voucher::{Deductions, PayMode, UsageInfo};

/// What a purchase buys, for voucher scopes: absent for the plain purchase (no product code,
/// prepaid), so that it allocates nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goods {
    pub product: Option<CompactString>,
    pub pay: PayMode,
}

impl Goods {
    pub fn product(goods: &Option<Arc<Goods>>) -> Option<&str> {
        goods.as_deref().and_then(|goods| goods.product.as_deref())
    }

    pub fn pay(goods: &Option<Arc<Goods>>) -> PayMode {
        goods.as_deref().map_or(PayMode::Prepaid, |goods| goods.pay)
    }
}

/// What a commit records on the vouchers a purchase deducted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub deductions: Deductions,
    pub purchase: PurchaseId,
    pub goods: Option<Arc<Goods>>,
    pub time: Timestamp,
    pub customer: Uin,
}

/// Phase one of a purchase on the customer side: hold what its vouchers cover of `amount`,
/// then the rest (its charge) on its available credit. The coordinator has authorized the
/// caller for this customer before it sends this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveCustomer {
    pub amount: Money,
    pub now: Timestamp,
    pub goods: Option<Arc<Goods>>,
}

/// A customer reservation: the partner to reserve on next, what is left, and what its
/// vouchers cover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerReserved {
    pub charged: Uin,
    pub available: Money,
    pub deductions: Deductions,
}

impl ReserveCustomer {
    pub(super) fn apply(self, account: &mut Account) -> Result<CustomerReserved, Rejection> {
        let uin = account.uin;
        let Role::Customer { charged, credit, suspended, trial_first, .. } = &mut account.role else {
            return Err(wrong_kind(uin, KindRequired::Customer));
        };
        if *suspended {
            return Err(Rejection::Suspended(uin));
        }
        let deductions =
            hold_vouchers(&mut account.extra, self.amount, &self.goods, uin, self.now, *trial_first);
        let charge = deductions.charge_of(self.amount);
        let available = credit.available();
        if available < charge {
            release_vouchers(&mut account.extra, &deductions);
            return Err(Rejection::InsufficientCustomerCredit { uin, available, needed: charge });
        }
        credit.reserved += charge;
        Ok(CustomerReserved { charged: *charged, available: available - charge, deductions })
    }
}

/// Phase one on the charged partner: hold what its vouchers cover of `amount` for
/// `customer`, then the rest on its available credit, or charge it at once (booked to
/// `month`) when `commit` is set (the one-shot purchase needs no second phase on the
/// partner's credit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservePartner {
    pub amount: Money,
    pub commit: bool,
    pub customer: Uin,
    pub now: Timestamp,
    pub month: Month,
    pub goods: Option<Arc<Goods>>,
}

/// A partner reservation or charge: what is left, and what its vouchers cover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerReserved {
    pub available: Money,
    pub deductions: Deductions,
}

impl ReservePartner {
    pub(super) fn apply(self, account: &mut Account) -> Result<PartnerReserved, Rejection> {
        let uin = account.uin;
        let trial_first = !super::rules_ref(&account.extra).is_some_and(|rules| rules.trial_first_off);
        let available = account.partner_credit_mut()?.available();
        let deductions =
            hold_vouchers(&mut account.extra, self.amount, &self.goods, self.customer, self.now, trial_first);
        let charge = deductions.charge_of(self.amount);
        if available < charge {
            release_vouchers(&mut account.extra, &deductions);
            return Err(Rejection::InsufficientPartnerCredit { uin, available, needed: charge });
        }
        if self.commit {
            account.book_charge(self.month, charge)?;
        } else {
            account.partner_credit_mut()?.reserved += charge;
        }
        Ok(PartnerReserved { available: available - charge, deductions })
    }
}

/// Phase two: the held `charge` becomes used, booked to `month`; the held voucher
/// deductions become final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub charge: Money,
    pub month: Month,
    pub vouchers: Option<Box<Settlement>>,
}

impl Commit {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        let uin = account.uin;
        let reserved = account.reserved_mut()?;
        assert!(*reserved >= self.charge, "commit of {} on {uin} exceeds its reserved", self.charge);
        *reserved -= self.charge;
        account.book_charge(self.month, self.charge)?;
        if let Some(settlement) = self.vouchers {
            settle_vouchers(&mut account.extra, &settlement);
        }
        Ok(())
    }
}

/// Phase two of a cancel or an expiry: the held `charge` and deductions are released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub charge: Money,
    pub vouchers: Option<Box<Deductions>>,
}

impl Release {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        let uin = account.uin;
        let reserved = account.reserved_mut()?;
        assert!(*reserved >= self.charge, "release of {} on {uin} exceeds its reserved", self.charge);
        *reserved -= self.charge;
        if let Some(deductions) = self.vouchers {
            release_vouchers(&mut account.extra, &deductions);
        }
        Ok(())
    }
}

/// Makes voucher deductions final (after a one-shot partner charge).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleVouchers {
    pub settlement: Box<Settlement>,
}

impl SettleVouchers {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        settle_vouchers(&mut account.extra, &self.settlement);
        Ok(())
    }
}

/// At an escrowed partner's home: hold `credit` of its available credit for a slice (no
/// voucher is involved). Answers what is left available.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldEscrow {
    pub credit: Money,
}

impl HoldEscrow {
    pub(super) fn apply(self, account: &mut Account) -> Result<Money, Rejection> {
        let uin = account.uin;
        let credit = account.partner_credit_mut()?;
        let available = credit.available();
        if available < self.credit {
            return Err(Rejection::InsufficientPartnerCredit { uin, available, needed: self.credit });
        }
        credit.reserved += self.credit;
        Ok(available - self.credit)
    }
}

/// Holds what an account's vouchers cover of `amount`; nothing (and no allocation) for an
/// account without vouchers.
fn hold_vouchers(
    extra: &mut Option<Box<Extra>>,
    amount: Money,
    goods: &Option<Arc<Goods>>,
    customer: Uin,
    now: Timestamp,
    trial_first: bool,
) -> Deductions {
    match rules_opt_mut(extra) {
        Some(rules) if !rules.vouchers.is_empty() => {
            rules.vouchers.hold(amount, Goods::product(goods), Goods::pay(goods), customer, now, trial_first)
        }
        _ => Deductions::default(),
    }
}

fn release_vouchers(extra: &mut Option<Box<Extra>>, deductions: &Deductions) {
    if deductions.is_empty() {
        return;
    }
    rules_opt_mut(extra).expect("deductions come from a voucher book").vouchers.release(deductions);
}

fn settle_vouchers(extra: &mut Option<Box<Extra>>, settlement: &Settlement) {
    if settlement.deductions.is_empty() {
        return;
    }
    let info = UsageInfo {
        purchase: &settlement.purchase,
        pay: Goods::pay(&settlement.goods),
        product: Goods::product(&settlement.goods),
        time: settlement.time,
        customer: settlement.customer,
    };
    rules_opt_mut(extra)
        .expect("deductions come from a voucher book")
        .vouchers
        .settle(&settlement.deductions, &info);
}
