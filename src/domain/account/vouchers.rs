//! An account's vouchers: the partner's pool for customer vouchers, adding vouchers to a
//! book, and their approval, withdrawal and invalidation. What a voucher deducts in a
//! purchase is in `purchase`; the voucher rules themselves are in [`crate::domain::voucher`].
//!
//! Invariant: a voucher pool's issued amount is never negative and never above its total.

use super::{rules_opt_mut, rules_ref, wrong_kind, Account, Role};
use crate::domain::access;
use crate::domain::ids::{Caller, Timestamp, Uin, VoucherId};
use crate::domain::money::Money;
use crate::domain::rejection::{KindRequired, Rejection};
use crate::domain::voucher::{Voucher, VoucherBook, VoucherKind};
use serde::{Deserialize, Serialize};

/// A partner's pool for customer vouchers (QueryVoucherPool).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherPool {
    /// Granted by the operator.
    pub total: Money,
    /// Issued as customer vouchers.
    pub issued: Money,
    /// How many customer vouchers were issued from it.
    pub issued_count: u64,
}

impl VoucherPool {
    pub fn remaining(&self) -> Money {
        self.total - self.issued
    }
}

/// The operator adds to (or, negative, takes from what is not issued of) a partner's voucher
/// pool; answers the pool's total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantVoucherQuota {
    pub delta: Money,
}

impl GrantVoucherQuota {
    pub(super) fn apply(self, account: &mut Account) -> Result<Money, Rejection> {
        let uin = account.uin;
        account.require_issuer_kind()?;
        let delta = self.delta;
        if delta.is_zero() {
            return Err(Rejection::InvalidAmount(delta, "a voucher quota grant of 0 changes nothing"));
        }
        let remaining = account.voucher_pool().remaining();
        if delta.is_negative() && remaining < delta.abs() {
            return Err(Rejection::InsufficientVoucherQuota { uin, remaining, asked: delta.abs() });
        }
        let pool = &mut account.rules_mut().voucher_pool;
        pool.total += delta;
        Ok(pool.total)
    }
}

/// Takes a customer voucher's value, `quota`, from the issuer's pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawVoucherQuota {
    pub quota: Money,
}

impl DrawVoucherQuota {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        let uin = account.uin;
        account.require_issuer_kind()?;
        let remaining = account.voucher_pool().remaining();
        if remaining < self.quota {
            return Err(Rejection::InsufficientVoucherQuota { uin, remaining, asked: self.quota });
        }
        let pool = &mut account.rules_mut().voucher_pool;
        pool.issued += self.quota;
        pool.issued_count += 1;
        Ok(())
    }
}

/// Gives back what [`DrawVoucherQuota`] took, when the voucher could not be issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnVoucherQuota {
    pub quota: Money,
}

impl ReturnVoucherQuota {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        let uin = account.uin;
        let pool = &mut account.rules_mut().voucher_pool;
        assert!(pool.issued >= self.quota, "return of {} voucher quota on {uin} exceeds issued", self.quota);
        pool.issued -= self.quota;
        pool.issued_count -= 1;
        Ok(())
    }
}

/// Checks that `caller` may issue a voucher to this customer (its parent or the operator);
/// answers the parent, whose pool pays for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoucherIssuer {
    pub caller: Caller,
}

impl VoucherIssuer {
    pub(super) fn apply(self, account: &mut Account) -> Result<Uin, Rejection> {
        let Role::Customer { parent, .. } = account.role else {
            return Err(wrong_kind(account.uin, KindRequired::Customer));
        };
        access::its_parent(self.caller, account.uin, Some(parent))?;
        Ok(parent)
    }
}

/// Adds a voucher to the account's book (checked by the engine).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddVoucher {
    pub voucher: Box<Voucher>,
}

impl AddVoucher {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        account.rules_mut().vouchers.add(*self.voucher)
    }
}

/// Approves a pending partner voucher; a trial voucher answers its customer voucher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproveVoucher {
    pub id: VoucherId,
    pub now: Timestamp,
}

impl ApproveVoucher {
    pub(super) fn apply(self, account: &mut Account) -> Result<Option<VoucherId>, Rejection> {
        account.book_of(self.id)?.approve(self.id, self.now)
    }
}

/// Approves the customer voucher of an approved trial voucher (refused if invalidated).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproveAssociated {
    pub id: VoucherId,
    pub now: Timestamp,
}

impl ApproveAssociated {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        account.book_of(self.id)?.approve_associated(self.id, self.now)
    }
}

/// WithdrawCustomerVoucher, by the customer's parent (its issuer) or the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawVoucher {
    pub caller: Caller,
    pub id: VoucherId,
    pub now: Timestamp,
}

impl WithdrawVoucher {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        let (uin, id) = (account.uin, self.id);
        let Role::Customer { parent, .. } = account.role else {
            // A partner's voucher: its owner learns why it cannot be withdrawn.
            access::itself(self.caller, uin)?;
            account.book_of(id)?;
            return Err(Rejection::VoucherUnavailable {
                id,
                reason: "is a partner voucher: invalidate it instead",
            });
        };
        let vouchers = account.book_of(id)?;
        let issuer = match vouchers.get(id).map(|voucher| voucher.kind) {
            Some(VoucherKind::CustomerOffer { issuer }) => Some(issuer),
            _ => None,
        };
        access::permit(self.caller, uin, [Some(parent), issuer])?;
        vouchers.withdraw(id, self.now)
    }
}

/// InvalidatePartnerVoucher, by the owner (or the operator); answers the associated customer
/// voucher to withdraw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidateVoucher {
    pub caller: Caller,
    pub id: VoucherId,
}

impl InvalidateVoucher {
    pub(super) fn apply(self, account: &mut Account) -> Result<Option<VoucherId>, Rejection> {
        access::itself(self.caller, account.uin)?;
        account.book_of(self.id)?.invalidate(self.id)
    }
}

/// Withdraws a trial customer voucher whose partner voucher was invalidated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidateAssociated {
    pub id: VoucherId,
}

impl InvalidateAssociated {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        account.book_of(self.id)?.invalidate_associated(self.id)
    }
}

/// The trial-voucher priority switch (on a partner, and copied to its customers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetTrialFirst {
    pub enabled: bool,
}

impl SetTrialFirst {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        match &mut account.role {
            Role::Customer { trial_first, .. } => *trial_first = self.enabled,
            Role::Distributor { .. } | Role::Reseller { .. } => {
                account.rules_mut().trial_first_off = !self.enabled
            }
            Role::SecondLevelReseller { .. } => {
                return Err(wrong_kind(account.uin, KindRequired::ChargeablePartner))
            }
        }
        Ok(())
    }
}

impl Account {
    fn voucher_pool(&self) -> VoucherPool {
        rules_ref(&self.extra).map(|rules| rules.voucher_pool).unwrap_or_default()
    }

    /// Customer vouchers are issued by a customer's parent: a reseller or a second-level
    /// reseller, whose pool pays for them.
    fn require_issuer_kind(&self) -> Result<(), Rejection> {
        match self.role {
            Role::Reseller { .. } | Role::SecondLevelReseller { .. } => Ok(()),
            _ => Err(wrong_kind(self.uin, KindRequired::CustomerParent)),
        }
    }

    /// The voucher book that holds `id`, or `UnknownVoucher`.
    fn book_of(&mut self, id: VoucherId) -> Result<&mut VoucherBook, Rejection> {
        match rules_opt_mut(&mut self.extra) {
            Some(rules) if rules.vouchers.get(id).is_some() => Ok(&mut rules.vouchers),
            _ => Err(Rejection::UnknownVoucher(id)),
        }
    }
}
