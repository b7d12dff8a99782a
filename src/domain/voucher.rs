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

use std::collections::VecDeque;

use compact_str::CompactString;

use super::ids::{PurchaseId, Timestamp, Uin, VoucherId};
use super::money::Money;
use super::rejection::Rejection;

/// Which products a voucher applies to (`ProductScope` upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProductScope {
    /// Every product.
    AllProducts,
    /// Only the listed products.
    SpecifyProducts,
    /// Every product but the listed ones.
    SpecifyProductsBlacklist,
}

impl ProductScope {
    pub const ALL: [ProductScope; 3] =
        [ProductScope::AllProducts, ProductScope::SpecifyProducts, ProductScope::SpecifyProductsBlacklist];

    /// The upstream name.
    pub fn name(self) -> &'static str {
        match self {
            ProductScope::AllProducts => "AllProducts",
            ProductScope::SpecifyProducts => "SpecifyProducts",
            ProductScope::SpecifyProductsBlacklist => "SpecifyProductsBlacklist",
        }
    }

    /// The scope with this upstream name, exactly (case-sensitive).
    pub fn from_name(name: &str) -> Option<ProductScope> {
        Self::ALL.into_iter().find(|scope| scope.name() == name)
    }
}

/// The purchases' payment modes a voucher applies to (`PaymentMode` upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaymentMode {
    /// Prepaid and postpaid purchases.
    AllPayment,
    Prepaid,
    Postpaid,
}

impl PaymentMode {
    pub const ALL: [PaymentMode; 3] = [PaymentMode::AllPayment, PaymentMode::Prepaid, PaymentMode::Postpaid];

    /// The upstream name.
    pub fn name(self) -> &'static str {
        match self {
            PaymentMode::AllPayment => "AllPayment",
            PaymentMode::Prepaid => "Prepaid",
            PaymentMode::Postpaid => "Postpaid",
        }
    }

    /// The payment mode with this upstream name, exactly.
    pub fn from_name(name: &str) -> Option<PaymentMode> {
        Self::ALL.into_iter().find(|mode| mode.name() == name)
    }
}

/// How one purchase is paid: prepaid (yearly or monthly subscription) or postpaid
/// (pay-as-you-go). Named as the voucher usage details name it (`PayMode`: `Prepaid`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PayMode {
    #[default]
    Prepaid,
    Postpaid,
}

impl PayMode {
    pub const ALL: [PayMode; 2] = [PayMode::Prepaid, PayMode::Postpaid];

    pub fn name(self) -> &'static str {
        match self {
            PayMode::Prepaid => "Prepaid",
            PayMode::Postpaid => "Postpaid",
        }
    }

    /// The pay mode with this name, exactly.
    pub fn from_name(name: &str) -> Option<PayMode> {
        Self::ALL.into_iter().find(|mode| mode.name() == name)
    }
}

/// A voucher's state as the voucher lists show it (`VoucherStatus` upstream, plus
/// `PendingApproval` for partner vouchers not approved yet). See [`Voucher::status`] for
/// which wins when several apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoucherStatus {
    PendingApproval,
    Issued,
    Used,
    Expired,
    Invalidated,
}

impl VoucherStatus {
    pub const ALL: [VoucherStatus; 5] = [
        VoucherStatus::PendingApproval,
        VoucherStatus::Issued,
        VoucherStatus::Used,
        VoucherStatus::Expired,
        VoucherStatus::Invalidated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            VoucherStatus::PendingApproval => "PendingApproval",
            VoucherStatus::Issued => "Issued",
            VoucherStatus::Used => "Used",
            VoucherStatus::Expired => "Expired",
            VoucherStatus::Invalidated => "Invalidated",
        }
    }

    /// The status with this name, exactly.
    pub fn from_name(name: &str) -> Option<VoucherStatus> {
        Self::ALL.into_iter().find(|status| status.name() == name)
    }
}

/// What a customer voucher is for (`Usage` upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Usage {
    /// A discount its reseller or second-level reseller gives the customer.
    CustomerOffer,
    /// Issued with an approved Type II partner voucher for a product trial.
    ProductTrial,
}

impl Usage {
    pub const ALL: [Usage; 2] = [Usage::CustomerOffer, Usage::ProductTrial];

    pub fn name(self) -> &'static str {
        match self {
            Usage::CustomerOffer => "CustomerOffer",
            Usage::ProductTrial => "ProductTrial",
        }
    }

    /// The usage with this upstream name, exactly.
    pub fn from_name(name: &str) -> Option<Usage> {
        Self::ALL.into_iter().find(|usage| usage.name() == name)
    }
}

/// What a voucher applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// The deductions one purchase holds on one account's vouchers: (voucher, amount), in
/// deduction order, each amount positive. Empty, without an allocation, for the common
/// purchase that uses no voucher.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

/// Table-driven: one line per case. Every refusal must leave the book unchanged.
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use PaymentMode::AllPayment;
    use ProductScope::{AllProducts, SpecifyProducts, SpecifyProductsBlacklist};

    const CUSTOMER: Uin = Uin(10);
    const OTHER_CUSTOMER: Uin = Uin(11);
    const PARTNER: Uin = Uin(3);
    const T0: Timestamp = Timestamp(0);

    fn m(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    fn codes(list: &[&str]) -> Vec<CompactString> {
        list.iter().map(|code| CompactString::new(code)).collect()
    }

    fn scope(products: ProductScope, list: &[&str], payment: PaymentMode) -> Scope {
        Scope::new(products, codes(list), payment).unwrap()
    }

    fn anything() -> Scope {
        Scope::all_products(AllPayment)
    }

    fn with(mut voucher: Voucher, change: impl FnOnce(&mut Voucher)) -> Voucher {
        change(&mut voucher);
        voucher
    }

    /// A customer offer to `CUSTOMER`, effective from 0 until `expire`, on anything.
    fn offer(id: u64, amount: &str, expire: i64) -> Voucher {
        offer_in(id, amount, expire, anything())
    }

    fn offer_in(id: u64, amount: &str, expire: i64, scope: Scope) -> Voucher {
        Voucher::customer_offer(VoucherId(id), CUSTOMER, PARTNER, scope, m(amount), T0, at(expire), T0)
            .unwrap()
    }

    /// A partner voucher pending approval, issued at 0, on anything.
    fn pending(id: u64, kind: VoucherKind, amount: &str, expire: i64) -> Voucher {
        Voucher::partner(VoucherId(id), PARTNER, kind, anything(), m(amount), at(expire), T0).unwrap()
    }

    fn trial_kind(customer: Uin) -> VoucherKind {
        VoucherKind::PartnerTrial { customer, associated: None }
    }

    /// An approved Type I.
    fn general(id: u64, amount: &str, expire: i64) -> Voucher {
        with(pending(id, VoucherKind::PartnerGeneral, amount, expire), |voucher| voucher.approved = true)
    }

    /// The approved Type II `id + 1000` for `CUSTOMER` and its associated Type III `id`,
    /// approved at 0.
    fn trial_pair(id: u64, amount: &str, expire: i64) -> (Voucher, Voucher) {
        let partner_id = VoucherId(id + 1000);
        let kind = VoucherKind::PartnerTrial { customer: CUSTOMER, associated: Some(VoucherId(id)) };
        let mut partners = book(vec![pending(partner_id.0, kind, amount, expire)]);
        let mut customers = book(vec![partners.get(partner_id).unwrap().associated_trial().unwrap()]);
        assert_eq!(partners.approve(partner_id, T0), Ok(Some(VoucherId(id))));
        customers.approve_associated(VoucherId(id), T0).unwrap();
        (partners.get(partner_id).unwrap().clone(), customers.get(VoucherId(id)).unwrap().clone())
    }

    /// A Type III product-trial voucher of `CUSTOMER`.
    fn trial(id: u64, amount: &str, expire: i64) -> Voucher {
        trial_pair(id, amount, expire).1
    }

    /// An approved Type II for `customer`.
    fn partner_trial(id: u64, customer: Uin, amount: &str, expire: i64) -> Voucher {
        with(pending(id, trial_kind(customer), amount, expire), |voucher| voucher.approved = true)
    }

    fn book(vouchers: Vec<Voucher>) -> VoucherBook {
        let mut book = VoucherBook::default();
        for voucher in vouchers {
            book.add(voucher).unwrap();
        }
        book
    }

    fn parts(list: &[(u64, &str)]) -> Vec<(VoucherId, Money)> {
        list.iter().map(|&(id, amount)| (VoucherId(id), m(amount))).collect()
    }

    fn info(purchase: &PurchaseId, time: i64) -> UsageInfo<'_> {
        UsageInfo {
            purchase,
            pay: PayMode::Prepaid,
            product: Some("cvm"),
            time: at(time),
            customer: CUSTOMER,
        }
    }

    /// Runs a refused operation; answers the refusal's reason (`VoucherUnavailable`) or name
    /// (any other), after checking that the book did not change.
    fn refused<T: std::fmt::Debug>(
        book: &mut VoucherBook,
        operation: impl FnOnce(&mut VoucherBook) -> Result<T, Rejection>,
    ) -> String {
        let before = book.clone();
        let rejection = operation(book).expect_err("the operation was accepted");
        assert_eq!(*book, before, "{rejection}: a refusal changed the book");
        match rejection {
            Rejection::VoucherUnavailable { reason, .. } => reason.to_string(),
            other => other.name().to_string(),
        }
    }

    #[test]
    fn names_round_trip() {
        for scope in ProductScope::ALL {
            assert_eq!(ProductScope::from_name(scope.name()), Some(scope));
        }
        for mode in PaymentMode::ALL {
            assert_eq!(PaymentMode::from_name(mode.name()), Some(mode));
        }
        for mode in PayMode::ALL {
            assert_eq!(PayMode::from_name(mode.name()), Some(mode));
        }
        for status in VoucherStatus::ALL {
            assert_eq!(VoucherStatus::from_name(status.name()), Some(status));
        }
        for usage in Usage::ALL {
            assert_eq!(Usage::from_name(usage.name()), Some(usage));
        }
        assert_eq!(
            VoucherStatus::ALL.map(VoucherStatus::name),
            ["PendingApproval", "Issued", "Used", "Expired", "Invalidated"]
        );
        assert_eq!(
            ProductScope::ALL.map(ProductScope::name),
            ["AllProducts", "SpecifyProducts", "SpecifyProductsBlacklist"]
        );
        assert_eq!(PaymentMode::ALL.map(PaymentMode::name), ["AllPayment", "Prepaid", "Postpaid"]);
        assert_eq!(ProductScope::from_name("allproducts"), None);
        assert_eq!(PayMode::from_name("prePay"), None);
        assert_eq!(PayMode::default(), PayMode::Prepaid);
        assert_eq!(offer(1, "1", 10).kind.usage(), Some(Usage::CustomerOffer));
        assert_eq!(trial(1, "1", 10).kind.usage(), Some(Usage::ProductTrial));
        assert_eq!(general(1, "1", 10).kind.usage(), None);
        assert!(trial(1, "1", 10).is_trial() && partner_trial(1, CUSTOMER, "1", 10).is_trial());
        assert!(!offer(1, "1", 10).is_trial() && !general(1, "1", 10).is_trial());
    }

    #[test]
    fn scope_validation() {
        let check = |products: ProductScope, list: &[&str], expect: Result<(), &str>| {
            let label = format!("{products:?} {list:?}");
            match (Scope::new(products, codes(list), AllPayment), expect) {
                (Ok(scope), Ok(())) => assert_eq!(scope.codes.len(), list.len(), "{label}"),
                (Err(Rejection::InvalidParameter { parameter: "ProductCodes", reason }), Err(part)) => {
                    assert!(reason.contains(part), "{label}: {reason}")
                }
                (got, _) => panic!("{label}: unexpected {got:?}"),
            }
        };
        let fifty: Vec<String> = (0..50).map(|index| format!("p_{index}")).collect();
        let fifty: Vec<&str> = fifty.iter().map(String::as_str).collect();
        let fifty_one = [&fifty[..], &["p_50"]].concat();
        let (longest, too_long) = ("p".repeat(64), "p".repeat(65));
        check(AllProducts, &[], Ok(()));
        check(AllProducts, &["cvm"], Err("AllProducts takes no product codes, got 1"));
        check(SpecifyProducts, &[], Err("SpecifyProducts takes 1 to 50 product codes, got 0"));
        check(SpecifyProductsBlacklist, &[], Err("takes 1 to 50 product codes, got 0"));
        check(SpecifyProducts, &["cvm", "cbs"], Ok(()));
        check(SpecifyProductsBlacklist, &fifty, Ok(()));
        check(SpecifyProducts, &fifty_one, Err("got 51"));
        check(SpecifyProductsBlacklist, &fifty_one, Err("got 51"));
        check(SpecifyProducts, &[&longest], Ok(()));
        check(SpecifyProducts, &[&too_long], Err("1 to 64 bytes"));
        check(SpecifyProducts, &["cvm", ""], Err("1 to 64 bytes"));
        check(SpecifyProductsBlacklist, &["cvm", "cbs", "cvm"], Err("\"cvm\" is listed twice"));
    }

    #[test]
    fn scope_covers_products_and_payment_modes() {
        use PayMode::{Postpaid, Prepaid};
        // The product rule under `AllPayment`, for a scope listing "cvm" (AllProducts lists
        // nothing): (scope, the purchase's product, covered).
        let products = [
            (AllProducts, Some("cvm"), true),
            (AllProducts, Some("cbs"), true),
            (AllProducts, None, true),
            (SpecifyProducts, Some("cvm"), true),
            (SpecifyProducts, Some("cbs"), false),
            (SpecifyProducts, None, false),
            (SpecifyProductsBlacklist, Some("cvm"), false),
            (SpecifyProductsBlacklist, Some("cbs"), true),
            (SpecifyProductsBlacklist, None, true),
        ];
        // The payment rule: (the voucher's mode, the purchase's mode, covered).
        let payments = [
            (AllPayment, Prepaid, true),
            (AllPayment, Postpaid, true),
            (PaymentMode::Prepaid, Prepaid, true),
            (PaymentMode::Prepaid, Postpaid, false),
            (PaymentMode::Postpaid, Prepaid, false),
            (PaymentMode::Postpaid, Postpaid, true),
        ];
        // Every combination is covered exactly when both rules cover it.
        for (products, product, product_covered) in products {
            for (payment, pay, pay_covered) in payments {
                let listed: &[&str] = if products == AllProducts { &[] } else { &["cvm"] };
                let covered = scope(products, listed, payment).covers(product, pay);
                assert_eq!(
                    covered,
                    product_covered && pay_covered,
                    "{products:?} {payment:?} on {product:?} {pay:?}"
                );
            }
        }
    }

    #[test]
    fn issue_checks_amount_and_times() {
        let offer = |amount, effective, expire| {
            Voucher::customer_offer(
                VoucherId(1),
                CUSTOMER,
                PARTNER,
                anything(),
                m(amount),
                at(effective),
                at(expire),
                at(50),
            )
            .map(|voucher| voucher.status(at(50)))
            .map_err(|rejection| rejection.name())
        };
        assert_eq!(offer("0.01", 0, 100), Ok(VoucherStatus::Issued));
        assert_eq!(offer("1000000", 0, 100), Ok(VoucherStatus::Issued));
        assert_eq!(offer("1", 60, 100), Ok(VoucherStatus::Issued), "not yet effective lists as issued");
        assert_eq!(offer("1", 0, 50), Err("InvalidParameter"), "an expiry in the past is refused");
        assert_eq!(offer("-0.01", 0, 100), Err("InvalidAmount"));
        assert!(offer("0", 0, 100).is_ok(), "the documented range is [0, 1000000]");
        assert_eq!(offer("-1", 0, 100), Err("InvalidAmount"));
        assert_eq!(offer("1000000.00000001", 0, 100), Err("InvalidAmount"));
        assert_eq!(offer("1", 100, 100), Err("InvalidParameter"));
        assert_eq!(offer("1", 101, 100), Err("InvalidParameter"));
        assert_eq!(offer("-1", 101, 100), Err("InvalidAmount"), "amounts are checked first");

        let partner = |kind, amount, expire| {
            Voucher::partner(VoucherId(1), PARTNER, kind, anything(), m(amount), at(expire), at(50))
                .map(|voucher| (voucher.status(at(50)), voucher.effective, voucher.approved))
                .map_err(|rejection| rejection.name())
        };
        let general = VoucherKind::PartnerGeneral;
        let pending = Ok((VoucherStatus::PendingApproval, at(50), false));
        assert_eq!(partner(general, "10", 51), pending);
        assert_eq!(partner(trial_kind(CUSTOMER), "1000000", 51), pending);
        assert_eq!(partner(general, "10", 50), Err("InvalidParameter"));
        assert_eq!(partner(general, "-1", 100), Err("InvalidAmount"));
        assert_eq!(partner(general, "1000001", 100), Err("InvalidAmount"));
        let associated = VoucherKind::PartnerTrial { customer: CUSTOMER, associated: Some(VoucherId(2)) };
        assert_eq!(partner(associated, "10", 100), pending, "a Type II names its Type III's id");
        assert_eq!(
            partner(VoucherKind::CustomerOffer { issuer: PARTNER }, "10", 100),
            Err("InvalidParameter")
        );
        let customer_trial = VoucherKind::CustomerTrial { partner_voucher: VoucherId(2) };
        assert_eq!(partner(customer_trial, "10", 100), Err("InvalidParameter"));
    }

    #[test]
    fn status_precedence() {
        use VoucherStatus::*;
        let base = || offer(1, "10", 100);
        let check = |voucher: Voucher, now: i64, expect: VoucherStatus| {
            assert_eq!(voucher.status(at(now)), expect, "{voucher:?} at {now}");
        };
        let used = |voucher: &mut Voucher| voucher.remaining = Money::ZERO;
        let all_held = |voucher: &mut Voucher| {
            voucher.held = voucher.remaining;
            voucher.remaining = Money::ZERO;
        };
        check(base(), 50, Issued);
        check(base(), 99, Issued);
        check(base(), 100, Expired);
        check(with(base(), |voucher| voucher.effective = at(60)), 50, Issued);
        check(with(base(), used), 50, Used);
        check(with(base(), used), 100, Used);
        check(with(base(), all_held), 50, Issued);
        check(with(base(), all_held), 100, Expired);
        check(with(with(base(), used), |voucher| voucher.invalidated = true), 100, Invalidated);
        check(pending(1, VoucherKind::PartnerGeneral, "10", 100), 200, PendingApproval);
        check(with(pending(1, VoucherKind::PartnerGeneral, "10", 100), used), 50, PendingApproval);
        check(
            with(pending(1, VoucherKind::PartnerGeneral, "10", 100), |voucher| voucher.invalidated = true),
            50,
            Invalidated,
        );
    }

    /// One purchase's voucher parameters.
    #[derive(Clone, Copy)]
    struct Purchase {
        amount: &'static str,
        product: Option<&'static str>,
        pay: PayMode,
        customer: Uin,
        now: i64,
        trial_first: bool,
    }

    const BUY: Purchase = Purchase {
        amount: "10",
        product: Some("cvm"),
        pay: PayMode::Prepaid,
        customer: CUSTOMER,
        now: 10,
        trial_first: true,
    };

    /// Holds `purchase` on a book of `vouchers`: the deductions are `expect`, each voucher gave
    /// exactly its deduction from remaining to held, and holding nothing allocated nothing.
    fn check_hold(vouchers: Vec<Voucher>, purchase: Purchase, expect: &[(u64, &str)]) {
        let mut book = book(vouchers);
        let before = book.clone();
        let Purchase { amount, product, pay, customer, now, trial_first } = purchase;
        let deductions = book.hold(m(amount), product, pay, customer, at(now), trial_first);
        let label =
            format!("hold {amount} of {product:?} {pay:?} by {customer} at {now}, trial first {trial_first}");
        assert_eq!(deductions.parts, parts(expect), "{label}");
        assert!(deductions.total() <= m(amount), "{label}");
        if deductions.is_empty() {
            assert_eq!(deductions.parts.capacity(), 0, "{label}: holding nothing allocated");
            assert_eq!(book, before, "{label}: holding nothing changed the book");
        }
        for (voucher, old) in book.iter().zip(before.iter()) {
            let deducted: Money =
                deductions.parts.iter().filter(|(id, _)| *id == voucher.id).map(|&(_, amount)| amount).sum();
            assert_eq!(voucher.remaining, old.remaining - deducted, "{label}: {:?}", voucher.id);
            assert_eq!(voucher.held, old.held + deducted, "{label}: {:?}", voucher.id);
        }
    }

    #[test]
    fn deduction_order() {
        // Offers 1 (expires at 300), 2 and 4 (both at 200), and the trial 3 (at 400).
        let customer_book =
            || vec![offer(1, "10", 300), offer(2, "10", 200), trial(3, "10", 400), offer(4, "10", 200)];
        let all_four = [(3, "10"), (2, "10"), (4, "10"), (1, "10")];
        check_hold(customer_book(), Purchase { amount: "40", ..BUY }, &all_four);
        check_hold(
            customer_book(),
            Purchase { amount: "40", trial_first: false, ..BUY },
            &[(2, "10"), (4, "10"), (1, "10"), (3, "10")],
        );
        check_hold(customer_book(), Purchase { amount: "15", ..BUY }, &[(3, "10"), (2, "5")]);
        check_hold(
            customer_book(),
            Purchase { amount: "15", trial_first: false, ..BUY },
            &[(2, "10"), (4, "5")],
        );
        check_hold(customer_book(), Purchase { amount: "0.00000001", ..BUY }, &[(3, "0.00000001")]);
        check_hold(customer_book(), Purchase { amount: "100", ..BUY }, &all_four);
        check_hold(customer_book(), Purchase { amount: "0", ..BUY }, &[]);
        // Equal expiry: the lowest id first, among trials too.
        check_hold(
            vec![trial(7, "1", 400), trial(6, "1", 400)],
            Purchase { amount: "2", ..BUY },
            &[(6, "1"), (7, "1")],
        );
        // Partial deductions across vouchers of different sizes.
        check_hold(
            vec![offer(1, "3.5", 300), offer(2, "1.25", 200)],
            Purchase { amount: "4", ..BUY },
            &[(2, "1.25"), (1, "2.75")],
        );
        check_hold(
            vec![offer(1, "3.5", 300), offer(2, "1.25", 200)],
            Purchase { amount: "4.75", ..BUY },
            &[(2, "1.25"), (1, "3.5")],
        );
        check_hold(
            vec![offer(1, "3.5", 300), offer(2, "1.25", 200)],
            Purchase { amount: "5", ..BUY },
            &[(2, "1.25"), (1, "3.5")],
        );
        check_hold(vec![], BUY, &[]);

        // A partner's book: the Type II of the purchase's customer first, when the switch is on.
        let partner_book = || {
            vec![
                general(1, "10", 100),
                partner_trial(2, CUSTOMER, "10", 500),
                partner_trial(3, OTHER_CUSTOMER, "10", 50),
            ]
        };
        check_hold(partner_book(), Purchase { amount: "30", ..BUY }, &[(2, "10"), (1, "10")]);
        check_hold(
            partner_book(),
            Purchase { amount: "30", trial_first: false, ..BUY },
            &[(1, "10"), (2, "10")],
        );
        check_hold(
            partner_book(),
            Purchase { amount: "30", customer: OTHER_CUSTOMER, ..BUY },
            &[(3, "10"), (1, "10")],
        );
        check_hold(
            partner_book(),
            Purchase { amount: "30", customer: OTHER_CUSTOMER, trial_first: false, ..BUY },
            &[(3, "10"), (1, "10")],
        );
    }

    #[test]
    fn deduction_order_beyond_the_stack_buffer() {
        // 40 usable vouchers (more than HOLD_INLINE), expiring in the opposite order of their ids.
        let vouchers: Vec<Voucher> = (1..=40).map(|id| offer(id, "1", 1000 - id as i64)).collect();
        let expect: Vec<(u64, &str)> = (1..=40).rev().map(|id| (id, "1")).collect();
        check_hold(vouchers.clone(), Purchase { amount: "40", ..BUY }, &expect);
        check_hold(
            vouchers.clone(),
            Purchase { amount: "17.5", ..BUY },
            &[&expect[..17], &[(23, "0.5")]].concat(),
        );
        // Trials first, also when the candidates spill.
        let mut vouchers = vouchers;
        vouchers.push(trial(50, "1", 2000));
        check_hold(vouchers, Purchase { amount: "2", ..BUY }, &[(50, "1"), (40, "1")]);
    }

    #[test]
    fn unusable_vouchers_are_skipped() {
        use PayMode::Postpaid;
        let all = [(1, "10")];
        let none = [];
        let offer_from =
            |effective: i64| with(offer(1, "10", 100), |voucher| voucher.effective = at(effective));
        check_hold(vec![offer(1, "10", 100)], BUY, &all);
        check_hold(vec![general(1, "10", 100)], BUY, &all);
        check_hold(vec![pending(1, VoucherKind::PartnerGeneral, "10", 100)], BUY, &none);
        check_hold(vec![pending(1, trial_kind(CUSTOMER), "10", 100)], BUY, &none);
        check_hold(vec![with(offer(1, "10", 100), |voucher| voucher.invalidated = true)], BUY, &none);
        check_hold(vec![with(general(1, "10", 100), |voucher| voucher.invalidated = true)], BUY, &none);
        check_hold(vec![offer_from(11)], BUY, &none);
        check_hold(vec![offer_from(10)], BUY, &all);
        check_hold(vec![offer(1, "10", 10)], BUY, &none);
        check_hold(vec![offer(1, "10", 11)], BUY, &all);
        check_hold(vec![with(offer(1, "10", 100), |voucher| voucher.remaining = Money::ZERO)], BUY, &none);
        let only_cbs = || offer_in(1, "10", 100, scope(SpecifyProducts, &["cbs"], AllPayment));
        check_hold(vec![only_cbs()], BUY, &none);
        check_hold(vec![only_cbs()], Purchase { product: None, ..BUY }, &none);
        check_hold(vec![only_cbs()], Purchase { product: Some("cbs"), ..BUY }, &all);
        let not_cvm = || offer_in(1, "10", 100, scope(SpecifyProductsBlacklist, &["cvm"], AllPayment));
        check_hold(vec![not_cvm()], BUY, &none);
        check_hold(vec![not_cvm()], Purchase { product: None, ..BUY }, &all);
        let prepaid = || offer_in(1, "10", 100, Scope::all_products(PaymentMode::Prepaid));
        check_hold(vec![prepaid()], Purchase { pay: Postpaid, ..BUY }, &none);
        let postpaid = || offer_in(1, "10", 100, Scope::all_products(PaymentMode::Postpaid));
        check_hold(vec![postpaid()], Purchase { pay: Postpaid, ..BUY }, &all);
        check_hold(vec![postpaid()], BUY, &none);
        check_hold(vec![partner_trial(1, OTHER_CUSTOMER, "10", 100)], BUY, &none);
        check_hold(vec![partner_trial(1, CUSTOMER, "10", 100)], BUY, &all);
        // Only the usable one of several gives.
        let mixed = vec![
            pending(1, VoucherKind::PartnerGeneral, "10", 100),
            partner_trial(2, OTHER_CUSTOMER, "10", 100),
            offer(3, "10", 10),
            only_cbs_with_id(4),
            offer(5, "10", 100),
        ];
        check_hold(mixed, Purchase { amount: "50", ..BUY }, &[(5, "10")]);
    }

    fn only_cbs_with_id(id: u64) -> Voucher {
        offer_in(id, "10", 100, scope(SpecifyProducts, &["cbs"], AllPayment))
    }

    #[test]
    fn settle_records_usage_and_uses_up() {
        let mut book = book(vec![offer(1, "10", 100), offer(2, "5", 50)]);
        let first = PurchaseId::new("p-1").unwrap();
        let deductions = book.hold(m("12"), None, PayMode::Postpaid, CUSTOMER, at(10), true);
        assert_eq!(deductions.parts, parts(&[(2, "5"), (1, "7")]));
        assert_eq!(deductions.total(), m("12"));
        let usage = UsageInfo {
            purchase: &first,
            pay: PayMode::Postpaid,
            product: None,
            time: at(11),
            customer: CUSTOMER,
        };
        book.settle(&deductions, &usage);

        let record = |log_id, purchase: &PurchaseId, amount, pay, product: Option<&str>, time| UsageRecord {
            log_id,
            purchase: purchase.clone(),
            amount: m(amount),
            pay,
            product: product.map(CompactString::new),
            time: at(time),
            customer: CUSTOMER,
        };
        let used_up = book.get(VoucherId(2)).unwrap();
        assert_eq!((used_up.remaining, used_up.held), (Money::ZERO, Money::ZERO));
        assert_eq!(used_up.status(at(11)), VoucherStatus::Used);
        assert_eq!(used_up.usage_count(), 1);
        assert_eq!(
            used_up.usage().iter().collect::<Vec<_>>(),
            [&record(1, &first, "5", PayMode::Postpaid, None, 11)]
        );
        let partly = book.get(VoucherId(1)).unwrap();
        assert_eq!((partly.remaining, partly.held), (m("3"), Money::ZERO));
        assert_eq!(partly.status(at(11)), VoucherStatus::Issued);
        assert_eq!(
            partly.usage().iter().collect::<Vec<_>>(),
            [&record(2, &first, "7", PayMode::Postpaid, None, 11)]
        );

        // Log ids keep increasing across purchases; the book's remaining total follows.
        let second = PurchaseId::new("p-2").unwrap();
        let deductions = book.hold(m("1"), Some("cvm"), PayMode::Prepaid, CUSTOMER, at(12), true);
        book.settle(&deductions, &info(&second, 13));
        let partly = book.get(VoucherId(1)).unwrap();
        assert_eq!(partly.usage().back(), Some(&record(3, &second, "1", PayMode::Prepaid, Some("cvm"), 13)));
        assert_eq!(partly.usage_count(), 2);
        assert_eq!(book.remaining_total(at(13)), m("2"));
        assert_eq!(book.remaining_total(at(100)), Money::ZERO);
        // An empty settle or release does nothing.
        let before = book.clone();
        book.settle(&Deductions::default(), &info(&second, 14));
        book.release(&Deductions::default());
        assert_eq!(book, before);
    }

    #[test]
    fn release_restores() {
        let mut book = book(vec![offer(1, "10", 100), trial(2, "5", 50)]);
        let before = book.clone();
        let first = book.hold(m("7"), Some("cvm"), PayMode::Prepaid, CUSTOMER, at(10), true);
        let second = book.hold(m("7"), Some("cvm"), PayMode::Prepaid, CUSTOMER, at(10), true);
        assert_eq!(first.parts, parts(&[(2, "5"), (1, "2")]));
        assert_eq!(second.parts, parts(&[(1, "7")]));
        assert_eq!(book.remaining_total(at(10)), m("1"));
        book.release(&second);
        book.release(&first);
        assert_eq!(book, before);
        // Released after expiry: the amount is back in remaining, though no longer usable.
        let held = book.hold(m("3"), Some("cvm"), PayMode::Prepaid, CUSTOMER, at(10), true);
        book.release(&held);
        assert_eq!(book, before);
        assert!(book.hold(m("1"), Some("cvm"), PayMode::Prepaid, CUSTOMER, at(100), true).is_empty());
    }

    #[test]
    #[should_panic(expected = "cannot settle or release")]
    fn settling_more_than_held_is_a_bug() {
        let mut book = book(vec![offer(1, "10", 100)]);
        let purchase = PurchaseId::new("p").unwrap();
        let _ = book.hold(m("1"), None, PayMode::Prepaid, CUSTOMER, at(10), true);
        book.settle(&Deductions { parts: parts(&[(1, "1.01")]) }, &info(&purchase, 11));
    }

    #[test]
    #[should_panic(expected = "cannot settle or release")]
    fn releasing_twice_is_a_bug() {
        let mut book = book(vec![offer(1, "10", 100)]);
        let held = book.hold(m("1"), None, PayMode::Prepaid, CUSTOMER, at(10), true);
        book.release(&held);
        book.release(&held);
    }

    #[test]
    #[should_panic(expected = "is not in the book")]
    fn settling_on_a_missing_voucher_is_a_bug() {
        let purchase = PurchaseId::new("p").unwrap();
        VoucherBook::default().settle(&Deductions { parts: parts(&[(1, "1")]) }, &info(&purchase, 11));
    }

    #[test]
    fn withdrawal() {
        let check = |voucher: Voucher, now: i64, expect: Result<(), &str>| {
            let id = voucher.id;
            let mut book = book(vec![voucher]);
            let label = format!("withdraw {:?} at {now}", book.get(id).unwrap());
            match expect {
                Ok(()) => {
                    let before = book.get(id).unwrap().clone();
                    assert_eq!(book.withdraw(id, at(now)), Ok(()), "{label}");
                    assert_eq!(*book.get(id).unwrap(), Voucher { invalidated: true, ..before }, "{label}");
                    assert_eq!(book.get(id).unwrap().status(at(now)), VoucherStatus::Invalidated, "{label}");
                }
                Err(reason) => {
                    assert_eq!(refused(&mut book, |book| book.withdraw(id, at(now))), reason, "{label}")
                }
            }
        };
        let partly_used = |voucher: &mut Voucher| voucher.remaining = m("4");
        let all_held = |voucher: &mut Voucher| {
            voucher.held = voucher.remaining;
            voucher.remaining = Money::ZERO;
        };
        let used = |voucher: &mut Voucher| voucher.remaining = Money::ZERO;
        check(offer(1, "10", 100), 50, Ok(()));
        check(offer(1, "10", 100), 99, Ok(()));
        check(with(offer(1, "10", 100), partly_used), 50, Ok(()));
        check(with(offer(1, "10", 100), all_held), 50, Ok(()));
        check(with(offer(1, "10", 100), |voucher| voucher.effective = at(60)), 50, Ok(()));
        check(
            trial(1, "10", 100),
            50,
            Err("is a product trial voucher: invalidate its partner voucher instead"),
        );
        check(general(1, "10", 100), 50, Err("is a partner voucher: invalidate it instead"));
        check(
            pending(1, trial_kind(CUSTOMER), "10", 100),
            50,
            Err("is a partner voucher: invalidate it instead"),
        );
        check(
            with(offer(1, "10", 100), |voucher| voucher.invalidated = true),
            50,
            Err("is already withdrawn"),
        );
        check(with(offer(1, "10", 100), used), 50, Err("is used up"));
        check(with(offer(1, "10", 100), used), 100, Err("is used up"));
        check(offer(1, "10", 100), 100, Err("has expired"));
        check(with(offer(1, "10", 100), all_held), 100, Err("has expired"));
        let mut empty = VoucherBook::default();
        assert_eq!(refused(&mut empty, |book| book.withdraw(VoucherId(1), T0)), "UnknownVoucher");
    }

    #[test]
    fn held_amounts_settle_and_release_after_withdrawal() {
        let mut book = book(vec![offer(1, "10", 100), offer(2, "10", 200)]);
        let purchase = PurchaseId::new("p").unwrap();
        let hold = |book: &mut VoucherBook, amount| {
            book.hold(m(amount), None, PayMode::Prepaid, CUSTOMER, at(10), true)
        };
        let first = hold(&mut book, "4");
        let second = hold(&mut book, "3");
        book.withdraw(VoucherId(1), at(10)).unwrap();
        assert_eq!(hold(&mut book, "1").parts, parts(&[(2, "1")]), "a withdrawn voucher gives nothing more");
        book.settle(&first, &info(&purchase, 11));
        book.release(&second);
        let withdrawn = book.get(VoucherId(1)).unwrap();
        assert_eq!((withdrawn.remaining, withdrawn.held, withdrawn.usage_count()), (m("6"), Money::ZERO, 1));
        assert_eq!(withdrawn.usage()[0].amount, m("4"));
        assert_eq!(withdrawn.status(at(11)), VoucherStatus::Invalidated);
        assert_eq!(book.remaining_total(at(11)), m("9"), "a withdrawn voucher's remaining does not count");
    }

    #[test]
    fn invalidation() {
        let (partner_voucher, customer_voucher) = trial_pair(5, "10", 100);
        let mut partners = book(vec![
            general(1, "10", 100),
            pending(2, VoucherKind::PartnerGeneral, "10", 100),
            pending(3, trial_kind(CUSTOMER), "10", 100),
            partner_voucher,
        ]);
        let mut customers = book(vec![customer_voucher, offer(7, "10", 100)]);
        let held = customers.hold(m("4"), None, PayMode::Prepaid, CUSTOMER, at(10), true);
        assert_eq!(held.parts, parts(&[(5, "4")]));

        assert_eq!(partners.invalidate(VoucherId(1005)), Ok(Some(VoucherId(5))));
        assert_eq!(customers.invalidate_associated(VoucherId(5)), Ok(()));
        let before = customers.clone();
        assert_eq!(customers.invalidate_associated(VoucherId(5)), Ok(()), "idempotent");
        assert_eq!(customers, before);
        assert_eq!(partners.get(VoucherId(1005)).unwrap().status(at(10)), VoucherStatus::Invalidated);
        assert_eq!(customers.get(VoucherId(5)).unwrap().status(at(10)), VoucherStatus::Invalidated);
        assert_eq!(
            customers.hold(m("4"), None, PayMode::Prepaid, CUSTOMER, at(10), true).parts,
            parts(&[(7, "4")])
        );
        // What the trial voucher held before still releases.
        customers.release(&held);
        assert_eq!(customers.get(VoucherId(5)).unwrap().remaining, m("10"));

        assert_eq!(partners.invalidate(VoucherId(1)), Ok(None), "an approved Type I");
        assert_eq!(partners.invalidate(VoucherId(2)), Ok(None), "a pending Type I");
        assert_eq!(
            partners.invalidate(VoucherId(3)),
            Ok(None),
            "a pending Type II has no customer voucher yet"
        );
        assert_eq!(refused(&mut partners, |book| book.invalidate(VoucherId(1005))), "is already invalidated");
        assert_eq!(refused(&mut partners, |book| book.invalidate(VoucherId(9))), "UnknownVoucher");
        assert_eq!(
            refused(&mut customers, |book| book.invalidate(VoucherId(7))),
            "is a customer voucher: withdraw it instead"
        );
        assert_eq!(
            refused(&mut customers, |book| book.invalidate(VoucherId(5))),
            "is a product trial voucher: invalidate its partner voucher instead"
        );
        assert_eq!(
            refused(&mut customers, |book| book.invalidate_associated(VoucherId(7))),
            "is not a product trial customer voucher"
        );
        assert_eq!(
            refused(&mut customers, |book| book.invalidate_associated(VoucherId(9))),
            "UnknownVoucher"
        );
        // A used-up partner voucher can still be invalidated (and expiry does not matter).
        let mut used_up = book(vec![with(general(1, "10", 100), |voucher| voucher.remaining = Money::ZERO)]);
        assert_eq!(used_up.invalidate(VoucherId(1)), Ok(None));
    }

    #[test]
    fn approval() {
        let trial_kind_77 = VoucherKind::PartnerTrial { customer: CUSTOMER, associated: Some(VoucherId(77)) };
        let mut partners = book(vec![
            pending(1, VoucherKind::PartnerGeneral, "10", 100),
            pending(2, trial_kind_77, "7.5", 100),
            pending(3, VoucherKind::PartnerGeneral, "1", 100),
            with(pending(4, VoucherKind::PartnerGeneral, "1", 100), |voucher| voucher.invalidated = true),
            offer(5, "1", 100),
            trial(6, "1", 100),
        ]);
        assert_eq!(partners.approve(VoucherId(1), at(20)), Ok(None));
        let approved = partners.get(VoucherId(1)).unwrap();
        assert!(approved.approved);
        assert_eq!((approved.effective, approved.created), (at(20), T0));
        assert_eq!(approved.status(at(20)), VoucherStatus::Issued);
        assert!(approved.usable(at(20), None, PayMode::Prepaid, OTHER_CUSTOMER));
        assert!(!approved.usable(at(19), None, PayMode::Prepaid, OTHER_CUSTOMER), "valid from approval");

        // The Type III exists, pending, from the application on.
        let associated = partners.get(VoucherId(2)).unwrap().associated_trial().unwrap();
        let expect = Voucher {
            id: VoucherId(77),
            owner: CUSTOMER,
            kind: VoucherKind::CustomerTrial { partner_voucher: VoucherId(2) },
            scope: anything(),
            total: m("7.5"),
            remaining: m("7.5"),
            held: Money::ZERO,
            effective: T0,
            expire: at(100),
            approved: false,
            invalidated: false,
            created: T0,
            usage: VecDeque::new(),
            usage_count: 0,
        };
        assert_eq!(associated, expect);
        assert_eq!(associated.status(at(30)), VoucherStatus::PendingApproval);
        assert_eq!(partners.approve(VoucherId(2), at(30)), Ok(Some(VoucherId(77))));
        assert_eq!(partners.get(VoucherId(2)).unwrap().effective, at(30));
        let mut customers = book(vec![associated]);
        customers.approve_associated(VoucherId(77), at(30)).unwrap();
        let approved = customers.get(VoucherId(77)).unwrap();
        assert_eq!((approved.status(at(30)), approved.effective), (VoucherStatus::Issued, at(30)));
        assert_eq!(customers.approve_associated(VoucherId(77), at(31)), Ok(()), "twice is no error");
        // Invalidation is final: a Type III invalidated before its approval stays so.
        let mut invalidated = book(vec![with(expect.clone(), |voucher| voucher.invalidated = true)]);
        assert_eq!(
            refused(&mut invalidated, |book| book.approve_associated(VoucherId(77), at(30))),
            "is invalidated"
        );
        assert_eq!(
            refused(&mut partners, |book| book.approve_associated(VoucherId(1), at(30))),
            "is not a product trial customer voucher"
        );

        assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(1), at(21))), "is already approved");
        assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(2), at(31))), "is already approved");
        assert_eq!(
            refused(&mut partners, |book| book.approve(VoucherId(3), at(100))),
            "expired before approval"
        );
        assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(4), at(20))), "is invalidated");
        let customer_voucher = "is a customer voucher: it needs no approval";
        assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(5), at(20))), customer_voucher);
        assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(6), at(20))), customer_voucher);
        assert_eq!(refused(&mut partners, |book| book.approve(VoucherId(9), at(20))), "UnknownVoucher");
        assert_eq!(partners.approve(VoucherId(3), at(99)), Ok(None), "just before expiry");
    }

    #[test]
    fn a_book_is_sorted_and_bounded() {
        let mut small = book(vec![offer(3, "1", 100), offer(1, "1", 100), offer(2, "1", 100)]);
        assert_eq!(small.iter().map(|voucher| voucher.id.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(small.get(VoucherId(2)).map(|voucher| voucher.id), Some(VoucherId(2)));
        assert!(small.get(VoucherId(4)).is_none() && small.get_mut(VoucherId(0)).is_none());
        assert_eq!((small.len(), small.is_empty(), VoucherBook::default().is_empty()), (3, false, true));

        let mut full = book((1..=VoucherBook::VOUCHERS_MAX as u64).map(|id| offer(id, "1", 100)).collect());
        let too_many =
            Rejection::TooMany { what: "vouchers of one account", limit: VoucherBook::VOUCHERS_MAX };
        let before = full.clone();
        assert_eq!(full.add(offer(20_000, "1", 100)), Err(too_many));
        assert_eq!(full, before);
        // Holding across all of them: the lowest ids first at equal expiry.
        let deductions = full.hold(m("10000"), None, PayMode::Prepaid, CUSTOMER, at(10), true);
        assert_eq!(deductions.parts.len(), VoucherBook::VOUCHERS_MAX);
        assert!(deductions.parts.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert_eq!(deductions.total(), m("10000"));
    }

    #[test]
    #[should_panic(expected = "voucher ids must be unique")]
    fn adding_an_id_twice_is_a_bug() {
        let _ = book(vec![offer(1, "1", 100), offer(1, "2", 100)]);
    }

    #[test]
    fn usage_keeps_the_newest_records() {
        let mut book = book(vec![offer(1, "1000000", 100)]);
        let purchase = PurchaseId::new("p").unwrap();
        let uses = Voucher::USAGE_MAX as u64 + 1;
        for _ in 0..uses {
            let deductions = book.hold(m("1"), None, PayMode::Prepaid, CUSTOMER, at(10), true);
            book.settle(&deductions, &info(&purchase, 11));
        }
        let voucher = book.get(VoucherId(1)).unwrap();
        assert_eq!(voucher.usage().len(), Voucher::USAGE_MAX);
        assert_eq!(voucher.usage_count(), uses);
        assert_eq!(voucher.usage().front().map(|record| record.log_id), Some(2), "the oldest was dropped");
        assert_eq!(voucher.usage().back().map(|record| record.log_id), Some(uses));
        assert_eq!(voucher.remaining, m("1000000") - Money::from_units(uses as i64));
    }

    /// One step of the conservation property.
    #[derive(Clone, Debug)]
    enum Op {
        Hold { cents: i64, product: Option<&'static str>, pay: PayMode, customer: Uin, trial_first: bool },
        Settle(prop::sample::Index),
        Release(prop::sample::Index),
        Wait(i64),
        Withdraw(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let product = prop::sample::select(vec![None, Some("cvm"), Some("cbs")]);
        let pay = prop::sample::select(PayMode::ALL.to_vec());
        let customer = prop::sample::select(vec![CUSTOMER, OTHER_CUSTOMER]);
        prop_oneof![
            4 => (0i64..1500, product, pay, customer, any::<bool>()).prop_map(
                |(cents, product, pay, customer, trial_first)| Op::Hold { cents, product, pay, customer, trial_first }
            ),
            2 => any::<prop::sample::Index>().prop_map(Op::Settle),
            2 => any::<prop::sample::Index>().prop_map(Op::Release),
            1 => (0i64..200).prop_map(Op::Wait),
            1 => (1u64..=6).prop_map(Op::Withdraw),
        ]
    }

    /// Every kind of voucher in one book (the book does not check whose they are), with
    /// overlapping scopes and expiries.
    fn mixed_book() -> VoucherBook {
        book(vec![
            offer(1, "5", 1000),
            offer_in(2, "3.33", 500, scope(SpecifyProducts, &["cvm"], AllPayment)),
            trial(3, "7", 2000),
            offer_in(4, "2.5", 800, scope(SpecifyProductsBlacklist, &["cbs"], PaymentMode::Prepaid)),
            general(5, "4", 1500),
            partner_trial(6, OTHER_CUSTOMER, "6", 700),
        ])
    }

    proptest! {
        /// After every step of any sequence of holds, settles, releases, withdrawals and the
        /// passing of time, each voucher's total is its remaining plus held plus settled, its
        /// held is exactly its open deductions, and a hold takes as much as it can, in order.
        #[test]
        fn deductions_conserve_every_voucher(ops in prop::collection::vec(op(), 0..60)) {
            let mut book = mixed_book();
            let purchase = PurchaseId::new("p").unwrap();
            let mut now = 0;
            let mut open: Vec<Deductions> = Vec::new();
            let mut settled: BTreeMap<VoucherId, Money> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Hold { cents, product, pay, customer, trial_first } => {
                        let amount = Money::from_cents(cents);
                        let before = book.clone();
                        let usable = |voucher: &&Voucher| voucher.usable(at(now), product, pay, customer);
                        let available: Money = before.iter().filter(usable).map(|voucher| voucher.remaining).sum();
                        let deductions = book.hold(amount, product, pay, customer, at(now), trial_first);
                        prop_assert_eq!(deductions.total(), amount.min(available));
                        let key = |id| {
                            let voucher = before.get(id).unwrap();
                            (!(trial_first && voucher.is_trial()), voucher.expire, voucher.id)
                        };
                        prop_assert!(deductions.parts.windows(2).all(|pair| key(pair[0].0) < key(pair[1].0)));
                        for (index, &(id, part)) in deductions.parts.iter().enumerate() {
                            let voucher = before.get(id).unwrap();
                            prop_assert!(part.is_positive() && usable(&voucher));
                            if index + 1 < deductions.parts.len() {
                                prop_assert_eq!(part, voucher.remaining, "all but the last give all they have");
                            }
                        }
                        if !deductions.is_empty() {
                            open.push(deductions);
                        }
                    }
                    Op::Settle(index) if !open.is_empty() => {
                        let deductions = open.swap_remove(index.index(open.len()));
                        book.settle(&deductions, &info(&purchase, now));
                        for (id, part) in deductions.parts {
                            *settled.entry(id).or_default() += part;
                        }
                    }
                    Op::Release(index) if !open.is_empty() => {
                        book.release(&open.swap_remove(index.index(open.len())));
                    }
                    Op::Settle(_) | Op::Release(_) => {}
                    Op::Wait(ms) => now += ms,
                    Op::Withdraw(id) => {
                        let _ = book.withdraw(VoucherId(id), at(now));
                    }
                }
                for voucher in book.iter() {
                    let settled = settled.get(&voucher.id).copied().unwrap_or_default();
                    let held: Money = open
                        .iter()
                        .flat_map(|deductions| &deductions.parts)
                        .filter(|(id, _)| *id == voucher.id)
                        .map(|&(_, part)| part)
                        .sum();
                    prop_assert!(!voucher.remaining.is_negative() && !voucher.held.is_negative());
                    prop_assert_eq!(voucher.held, held);
                    prop_assert_eq!(voucher.total, voucher.remaining + voucher.held + settled);
                    prop_assert_eq!(voucher.usage().iter().map(|record| record.amount).sum::<Money>(), settled);
                }
            }
            for deductions in open.drain(..) {
                book.release(&deductions);
            }
            prop_assert!(book.iter().all(|voucher| voucher.held.is_zero()));
        }
    }
}
