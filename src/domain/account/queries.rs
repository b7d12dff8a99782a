//! What queries and audits read of an account: a copy of its state ([`Snapshot`]) and of its
//! vouchers, bills, frozen credit and thresholds ([`Details`]). Neither changes anything.

use super::{rules_ref, Account, AccountKind, Profile, Role, VoucherPool};
use crate::domain::bill::{BillHistory, Bills};
use crate::domain::ids::{Month, Timestamp, Uin, VoucherId};
use crate::domain::money::Money;
use crate::domain::rejection::Rejection;
use crate::domain::voucher::Voucher;
use crate::domain::warning::Threshold;
use serde::{Deserialize, Serialize};

/// A copy of the account's state ([`AccountView`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot;

impl Snapshot {
    pub(super) fn apply(self, account: &mut Account) -> Result<Box<AccountView>, Rejection> {
        Ok(Box::new(account.view()))
    }
}

/// Everything about vouchers, bills and frozen credit a query shows: the vouchers (unless
/// `vouchers` is false) with the usage records `usage` asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    pub now: Timestamp,
    pub vouchers: bool,
    pub usage: UsageOf,
}

impl Details {
    pub(super) fn apply(self, account: &mut Account) -> Result<Box<AccountDetails>, Rejection> {
        Ok(Box::new(account.details(self.now, self.vouchers, self.usage)))
    }
}

/// Which vouchers' usage records a [`Details`] copies: a voucher may hold up to
/// [`Voucher::USAGE_MAX`] of them, and lists do not show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UsageOf {
    None,
    One(VoucherId),
    All,
}

/// Vouchers, bills and frozen credit of an account, for queries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDetails {
    pub vouchers: Vec<Voucher>,
    /// Usable voucher credit now (RemainingVoucher).
    pub vouchers_remaining: Money,
    pub voucher_pool: VoucherPool,
    pub trial_first: bool,
    /// Active postpaid resources and what each freezes.
    pub frozen: Vec<(Box<str>, Money)>,
    /// Months with charges not confirmed yet, oldest first.
    pub open_bills: Vec<(Month, Money)>,
    pub partner_threshold: Option<Threshold>,
    pub own_threshold: Option<Threshold>,
}

/// A copy of an account's state for queries and audits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub uin: Uin,
    pub role: Role,
    pub created: Timestamp,
    pub profile: Profile,
    pub children_count: usize,
    /// Voucher deductions made final on its vouchers, over its life.
    pub vouchers_settled: Money,
    /// Voucher deductions held by open purchases.
    pub vouchers_held: Money,
    /// Credit that bill confirmations gave back, over its life.
    pub bills_returned: Money,
}

impl AccountView {
    pub fn kind(&self) -> AccountKind {
        self.role.kind()
    }

    /// The parent: the distributor of a second-level reseller, the reseller or second-level
    /// reseller of a customer.
    pub fn parent(&self) -> Option<Uin> {
        self.role.parent()
    }

    /// Total credit as the upstream `TotalCredit` reads it for this kind.
    pub fn total(&self) -> Money {
        match &self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => credit.total,
            Role::SecondLevelReseller { pool, .. } => pool.total,
            Role::Customer { credit, .. } => credit.total,
        }
    }

    /// Available credit as the upstream `RemainingCredit` reads it for this kind.
    pub fn available(&self) -> Money {
        match &self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => credit.available(),
            Role::SecondLevelReseller { pool, .. } => pool.remaining(),
            Role::Customer { credit, .. } => credit.available(),
        }
    }
}

impl Account {
    pub fn view(&self) -> AccountView {
        AccountView {
            uin: self.uin,
            role: self.role.clone(),
            created: self.created,
            profile: self.profile().cloned().unwrap_or_default(),
            children_count: self.children().len(),
            vouchers_settled: self
                .vouchers()
                .map(|voucher| voucher.total - voucher.remaining - voucher.held)
                .sum(),
            vouchers_held: self.vouchers().map(|voucher| voucher.held).sum(),
            bills_returned: rules_ref(&self.extra)
                .and_then(|rules| rules.bills.as_deref())
                .map_or(Money::ZERO, BillHistory::returned),
        }
    }

    pub fn details(&self, now: Timestamp, vouchers: bool, usage: UsageOf) -> AccountDetails {
        let trial_first = match &self.role {
            Role::Customer { trial_first, .. } => *trial_first,
            _ => !rules_ref(&self.extra).is_some_and(|rules| rules.trial_first_off),
        };
        let Some(rules) = rules_ref(&self.extra) else {
            let mut details = AccountDetails { trial_first, ..AccountDetails::default() };
            if let Role::Customer { credit, bill_month: Some(month), .. } = &self.role {
                details.open_bills = vec![(*month, credit.used)];
            }
            return details;
        };
        let (mut current, used) = match &self.role {
            Role::Customer { credit, bill_month, .. } => (*bill_month, credit.used),
            Role::Distributor { credit } | Role::Reseller { credit } => (rules.bill_month, credit.used),
            Role::SecondLevelReseller { .. } => (None, Money::ZERO),
        };
        let mut history = rules.bills.clone();
        let copy = |voucher: &Voucher| {
            if usage == UsageOf::All || usage == UsageOf::One(voucher.id) {
                voucher.clone()
            } else {
                voucher.without_usage()
            }
        };
        AccountDetails {
            vouchers: if vouchers { rules.vouchers.iter().map(copy).collect() } else { Vec::new() },
            vouchers_remaining: rules.vouchers.remaining_total(now),
            voucher_pool: rules.voucher_pool,
            trial_first,
            frozen: rules.frozen.clone(),
            open_bills: Bills { current: &mut current, history: &mut history }.open_months(used),
            partner_threshold: rules.partner_threshold,
            own_threshold: rules.own_threshold,
        }
    }
}
