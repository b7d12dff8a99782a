//! Vouchers: the three types, what each applies to, the order they are deducted in, and
//! their life (issue, approval, withdrawal, invalidation). One [`VoucherBook`] holds the
//! vouchers one account owns.
//!
//! The rules (seed `001_74727323a7bf5c7f.txt`, PRODUCT.md section 2):
//! - A *Type I* partner voucher ([`VoucherKind::PartnerGeneral`]) offsets the partner's cost
//!   for any of its customers; a *Type II* ([`VoucherKind::PartnerTrial`]) only for one
//!   designated customer. Both are issued pending, and are usable only once the operator
//!   approves them; their validity starts at approval.
//! - A *Type III* customer voucher offsets the customer's fee. Its reseller or second-level
//!   reseller issues it as an offer ([`VoucherKind::CustomerOffer`], usage `CustomerOffer`),
//!   or it is issued automatically, already approved, when a Type II is approved
//!   ([`VoucherKind::CustomerTrial`], usage `ProductTrial`).
//! - A [`Scope`] limits a voucher to all products, a list of products, or all but a
//!   blocklist, and to a payment mode.
//! - Deduction order ([`VoucherBook::hold`]): with the trial-first switch on (the upstream
//!   default), trial vouchers first; then the earliest to expire; then the lowest id.
//! - An unexpired customer offer that is not used up can be withdrawn. A trial customer
//!   voucher cannot: invalidating its partner voucher withdraws it. Amounts already deducted
//!   or held stay where they are.
//!
//! Deduction is two-phase, like credit: [`VoucherBook::hold`] moves amounts from `remaining`
//! to `held`, then [`VoucherBook::settle`] makes them final and records the usage, or
//! [`VoucherBook::release`] gives them back. A voucher withdrawn, invalidated or expired
//! while amounts are held still settles or releases them: the purchase that holds them was
//! accepted while the voucher was usable.
//!
//! Invariants:
//! - For every voucher, `remaining >= 0`, `held >= 0` and `total == remaining + held +
//!   settled`, where settled is the sum of every usage record ever written (the dropped
//!   ones included).
//! - A voucher's `held` is the sum of the open [`Deductions`] on it; settling or releasing
//!   more than is held is a broken ledger and panics (the asserts stay on in release builds).
//! - A refused operation changes nothing.
//! - Everything is bounded: at most [`VoucherBook::VOUCHERS_MAX`] vouchers per account,
//!   [`Scope::CODES_MAX`] product codes per scope, and [`Voucher::USAGE_MAX`] usage records
//!   per voucher (the oldest dropped first).

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

use compact_str::CompactString;

mod book;

pub use book::{charge, Deductions, UsageInfo, VoucherBook};

use super::ids::{PurchaseId, Timestamp, Uin, VoucherId};
use super::money::Money;
use super::rejection::Rejection;

named! {
    /// Which products a voucher applies to (`ProductScope` upstream).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum ProductScope {
        /// Every product.
        AllProducts,
        /// Only the listed products.
        SpecifyProducts,
        /// Every product but the listed ones.
        SpecifyProductsBlacklist,
    }
}

named! {
    /// The purchases' payment modes a voucher applies to (`PaymentMode` upstream).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum PaymentMode {
        /// Prepaid and postpaid purchases.
        AllPayment,
        Prepaid,
        Postpaid,
    }
}

named! {
    /// How one purchase is paid: prepaid (yearly or monthly subscription) or postpaid
    /// (pay-as-you-go). Named as the voucher usage details name it (`PayMode`: `Prepaid`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum PayMode {
        #[default]
        Prepaid,
        Postpaid,
    }
}

named! {
    /// A voucher's state as the voucher lists show it (`VoucherStatus` upstream, plus
    /// `PendingApproval` for partner vouchers not approved yet). See [`Voucher::status`] for
    /// which wins when several apply.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum VoucherStatus {
        PendingApproval,
        Issued,
        Used,
        Expired,
        Invalidated,
    }
}

named! {
    /// What a customer voucher is for (`Usage` upstream).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum Usage {
        /// A discount its reseller or second-level reseller gives the customer.
        CustomerOffer,
        /// Issued with an approved Type II partner voucher for a product trial.
        ProductTrial,
    }
}

/// What a voucher applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub products: ProductScope,
    /// The listed products (`SpecifyProducts`) or the blocklist (`SpecifyProductsBlacklist`),
    /// in the order given; empty for `AllProducts`. At most [`Scope::CODES_MAX`], so a linear
    /// search is as fast as any index.
    pub codes: Box<[CompactString]>,
    pub payment: PaymentMode,
}

impl Scope {
    /// The most product codes one scope lists.
    pub const CODES_MAX: usize = 50;
    /// The longest product code, in bytes.
    pub const CODE_LEN_MAX: usize = 64;

    /// Validates the codes: `SpecifyProducts` and `SpecifyProductsBlacklist` need 1 to
    /// [`Scope::CODES_MAX`] codes, `AllProducts` none; each code has 1 to
    /// [`Scope::CODE_LEN_MAX`] bytes and appears once.
    pub fn new(
        products: ProductScope,
        codes: Vec<CompactString>,
        payment: PaymentMode,
    ) -> Result<Scope, Rejection> {
        let invalid = |reason: String| Err(Rejection::InvalidParameter { parameter: "ProductCodes", reason });
        let count_valid = match products {
            ProductScope::AllProducts => codes.is_empty(),
            ProductScope::SpecifyProducts | ProductScope::SpecifyProductsBlacklist => {
                (1..=Self::CODES_MAX).contains(&codes.len())
            }
        };
        if !count_valid {
            let wanted = match products {
                ProductScope::AllProducts => "no product codes".to_string(),
                _ => format!("1 to {} product codes", Self::CODES_MAX),
            };
            return invalid(format!("{} takes {wanted}, got {}", products.name(), codes.len()));
        }
        for (index, code) in codes.iter().enumerate() {
            if code.is_empty() || code.len() > Self::CODE_LEN_MAX {
                return invalid(format!(
                    "a product code has 1 to {} bytes, got {code:?}",
                    Self::CODE_LEN_MAX
                ));
            }
            // Quadratic, but over at most 50 codes: cheaper than a set.
            if codes[..index].contains(code) {
                return invalid(format!("product code {code:?} is listed twice"));
            }
        }
        Ok(Scope { products, codes: codes.into_boxed_slice(), payment })
    }

    /// Every product, in the given payment mode.
    pub fn all_products(payment: PaymentMode) -> Scope {
        Scope { products: ProductScope::AllProducts, codes: Box::default(), payment }
    }

    /// Whether a purchase of `product` (if it names one) paid by `pay` is in scope.
    /// `AllProducts` covers any purchase, with or without a product code;
    /// `SpecifyProducts` only a purchase whose code is listed; `SpecifyProductsBlacklist` any
    /// purchase whose code is not listed, including one without a code. `AllPayment` covers
    /// both pay modes; `Prepaid` and `Postpaid` only their own.
    pub fn covers(&self, product: Option<&str>, pay: PayMode) -> bool {
        let payment = match self.payment {
            PaymentMode::AllPayment => true,
            PaymentMode::Prepaid => pay == PayMode::Prepaid,
            PaymentMode::Postpaid => pay == PayMode::Postpaid,
        };
        payment
            && match self.products {
                ProductScope::AllProducts => true,
                ProductScope::SpecifyProducts => product.is_some_and(|code| self.lists(code)),
                ProductScope::SpecifyProductsBlacklist => !product.is_some_and(|code| self.lists(code)),
            }
    }

    fn lists(&self, product: &str) -> bool {
        self.codes.iter().any(|code| code.as_str() == product)
    }
}

/// The four kinds of voucher, with what each kind links to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VoucherKind {
    /// Type III issued by the customer's reseller or second-level reseller from its voucher
    /// quota.
    CustomerOffer { issuer: Uin },
    /// Type III issued automatically with an approved Type II partner voucher.
    CustomerTrial { partner_voucher: VoucherId },
    /// Type I partner voucher: offsets the partner's cost for any of its customers.
    PartnerGeneral,
    /// Type II partner voucher: offsets the partner's cost for one designated customer.
    /// `associated` is the Type III issued at approval.
    PartnerTrial { customer: Uin, associated: Option<VoucherId> },
}

impl VoucherKind {
    /// A customer voucher's usage; `None` for partner vouchers, which have none upstream.
    pub fn usage(self) -> Option<Usage> {
        match self {
            VoucherKind::CustomerOffer { .. } => Some(Usage::CustomerOffer),
            VoucherKind::CustomerTrial { .. } => Some(Usage::ProductTrial),
            VoucherKind::PartnerGeneral | VoucherKind::PartnerTrial { .. } => None,
        }
    }
}

/// One final deduction from a voucher (`UsageDetail` upstream).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Unique within the owning account's book, increasing from 1 (`Id` upstream).
    pub log_id: u64,
    pub purchase: PurchaseId,
    pub amount: Money,
    pub pay: PayMode,
    pub product: Option<CompactString>,
    pub time: Timestamp,
    /// The customer whose purchase it was: the owner for a customer voucher, one of the
    /// partner's customers for a partner voucher.
    pub customer: Uin,
}

/// One voucher and its usage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voucher {
    pub id: VoucherId,
    /// The customer (Type III) or the partner (Type I and II).
    pub owner: Uin,
    pub kind: VoucherKind,
    pub scope: Scope,
    /// The denomination.
    pub total: Money,
    /// Neither deducted nor held: what purchases may still use.
    pub remaining: Money,
    /// Held by open purchases: reserved, not final.
    pub held: Money,
    /// For partner vouchers, the approval time (the issue time until then).
    pub effective: Timestamp,
    /// The voucher is usable while `effective <= now < expire`.
    pub expire: Timestamp,
    /// Customer vouchers are approved at issue; partner vouchers by the operator.
    pub approved: bool,
    /// Withdrawn (customer voucher) or invalidated (partner voucher); irreversible.
    pub invalidated: bool,
    pub created: Timestamp,
    /// The newest [`Voucher::USAGE_MAX`] records, oldest first. A deque, so dropping the
    /// oldest on a busy voucher is O(1) rather than a move of the whole history.
    usage: VecDeque<UsageRecord>,
    /// Every record ever written, including the dropped ones (`TotalRecordsCount`).
    usage_count: u64,
}

impl Voucher {
    /// The largest denomination, in whole currency units (upstream
    /// `InvalidParameterValue.VoucherAmountOutOfRange`: 0 to 1000000).
    pub const AMOUNT_MAX: i64 = 1_000_000;
    /// The most usage records one voucher keeps; older ones are dropped first.
    pub const USAGE_MAX: usize = 10_000;

    /// A Type III offer, approved at issue. Refused when the amount is not in [0, 1000000]
    /// (the upstream range, as the issue asks) or when it would expire before it takes
    /// effect. An `expire` in the past is accepted: the
    /// voucher is born `Expired`.
    #[allow(clippy::too_many_arguments)] // The fields of an issue request, all required.
    pub fn customer_offer(
        id: VoucherId,
        owner: Uin,
        issuer: Uin,
        scope: Scope,
        amount: Money,
        effective: Timestamp,
        expire: Timestamp,
        now: Timestamp,
    ) -> Result<Voucher, Rejection> {
        check_amount(amount)?;
        if expire <= now {
            return Err(Rejection::InvalidParameter {
                parameter: "ExpireTime",
                reason: format!("the expiry time ({}) must be after now ({})", expire.0, now.0),
            });
        }
        if effective >= expire {
            return Err(Rejection::InvalidParameter {
                parameter: "ExpireTime",
                reason: format!(
                    "the expiry time ({}) must be after the effective time ({})",
                    expire.0, effective.0
                ),
            });
        }
        let voucher = Voucher::fresh(
            id,
            owner,
            VoucherKind::CustomerOffer { issuer },
            scope,
            amount,
            effective,
            expire,
            now,
        );
        Ok(Voucher { approved: true, ..voucher })
    }

    /// A Type I or Type II partner voucher, pending approval: `effective` is `now` until the
    /// approval sets it. Refused when `kind` is not `PartnerGeneral` or `PartnerTrial` with no
    /// associated voucher yet, when the amount is not in [0, 1000000], or when `expire` is not
    /// after `now`.
    pub fn partner(
        id: VoucherId,
        owner: Uin,
        kind: VoucherKind,
        scope: Scope,
        amount: Money,
        expire: Timestamp,
        now: Timestamp,
    ) -> Result<Voucher, Rejection> {
        check_amount(amount)?;
        if !matches!(kind, VoucherKind::PartnerGeneral | VoucherKind::PartnerTrial { .. }) {
            return Err(Rejection::InvalidParameter {
                parameter: "VoucherType",
                reason: "a partner voucher is PartnerGeneral or PartnerTrial".to_string(),
            });
        }
        if expire <= now {
            return Err(Rejection::InvalidParameter {
                parameter: "ExpireTime",
                reason: format!("the expiry time ({}) must be after now ({})", expire.0, now.0),
            });
        }
        Ok(Voucher::fresh(id, owner, kind, scope, amount, now, expire, now))
    }

    /// The Type III that comes with a Type II (applied with `associated` set): pending like
    /// it, for its designated customer, with the same scope, denomination and expiry. Created
    /// with the Type II so that approving and invalidating the pair commute: each side is
    /// approved or invalidated on its own account, and invalidation is final.
    pub fn associated_trial(&self) -> Option<Voucher> {
        let VoucherKind::PartnerTrial { customer, associated: Some(associated) } = self.kind else {
            return None;
        };
        let kind = VoucherKind::CustomerTrial { partner_voucher: self.id };
        Some(Voucher::fresh(
            associated,
            customer,
            kind,
            self.scope.clone(),
            self.total,
            self.created,
            self.expire,
            self.created,
        ))
    }

    /// Not approved, not invalidated, nothing used.
    #[allow(clippy::too_many_arguments)]
    fn fresh(
        id: VoucherId,
        owner: Uin,
        kind: VoucherKind,
        scope: Scope,
        amount: Money,
        effective: Timestamp,
        expire: Timestamp,
        now: Timestamp,
    ) -> Voucher {
        Voucher {
            id,
            owner,
            kind,
            scope,
            total: amount,
            remaining: amount,
            held: Money::ZERO,
            effective,
            expire,
            approved: false,
            invalidated: false,
            created: now,
            usage: VecDeque::new(),
            usage_count: 0,
        }
    }

    /// The status at `now`. When several apply, the first of these wins: `Invalidated`
    /// (withdrawn or invalidated, whatever else holds), `PendingApproval`, `Used` (nothing
    /// remaining and nothing held, even if also past its expiry), `Expired` (`now >=
    /// expire`), else `Issued`. A voucher not yet effective is `Issued`, as upstream lists
    /// it. A voucher whose whole remaining amount is held is not `Used`: a release may give
    /// it back.
    pub fn status(&self, now: Timestamp) -> VoucherStatus {
        if self.invalidated {
            VoucherStatus::Invalidated
        } else if !self.approved {
            VoucherStatus::PendingApproval
        } else if self.remaining.is_zero() && self.held.is_zero() {
            VoucherStatus::Used
        } else if now >= self.expire {
            VoucherStatus::Expired
        } else {
            VoucherStatus::Issued
        }
    }

    /// Whether a purchase by `customer` of `product` paid by `pay` may deduct from this
    /// voucher at `now`: approved, not invalidated, `effective <= now < expire`, something
    /// remaining, in scope, and, for a Type II, `customer` is its designated customer.
    pub fn usable(&self, now: Timestamp, product: Option<&str>, pay: PayMode, customer: Uin) -> bool {
        self.approved
            && !self.invalidated
            && self.effective <= now
            && now < self.expire
            && self.remaining.is_positive()
            && match self.kind {
                VoucherKind::PartnerTrial { customer: designated, .. } => designated == customer,
                _ => true,
            }
            && self.scope.covers(product, pay)
    }

    /// A product-trial voucher (Type II or its associated Type III): deducted first when the
    /// trial-first switch is on.
    pub fn is_trial(&self) -> bool {
        matches!(self.kind, VoucherKind::CustomerTrial { .. } | VoucherKind::PartnerTrial { .. })
    }

    /// The newest usage records (at most [`Voucher::USAGE_MAX`]), oldest first.
    pub fn usage(&self) -> &VecDeque<UsageRecord> {
        &self.usage
    }

    /// How many usage records were ever written, including those dropped.
    pub fn usage_count(&self) -> u64 {
        self.usage_count
    }

    /// A copy without its usage records (`usage_count` stays), for lists that do not show
    /// them: a voucher may hold up to [`Voucher::USAGE_MAX`] of them.
    pub fn without_usage(&self) -> Voucher {
        Voucher { usage: VecDeque::new(), ..self.clone_fields() }
    }

    fn clone_fields(&self) -> Voucher {
        Voucher {
            id: self.id,
            owner: self.owner,
            kind: self.kind,
            scope: self.scope.clone(),
            total: self.total,
            remaining: self.remaining,
            held: self.held,
            effective: self.effective,
            expire: self.expire,
            approved: self.approved,
            invalidated: self.invalidated,
            created: self.created,
            usage: VecDeque::new(),
            usage_count: self.usage_count,
        }
    }

    /// Takes `amount` out of `held`, for a settle or a release.
    fn take_held(&mut self, amount: Money) {
        assert!(
            !amount.is_negative() && amount <= self.held,
            "voucher {} holds {}, cannot settle or release {amount}: the ledger is broken",
            self.id,
            self.held
        );
        self.held -= amount;
    }

    fn record(&mut self, record: UsageRecord) {
        if self.usage.len() == Self::USAGE_MAX {
            self.usage.pop_front();
        }
        self.usage.push_back(record);
        self.usage_count += 1;
    }
}

fn check_amount(amount: Money) -> Result<(), Rejection> {
    if amount.is_negative() || amount > Money::from_units(Voucher::AMOUNT_MAX) {
        return Err(Rejection::InvalidAmount(amount, "a voucher amount is from 0 to 1000000"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
