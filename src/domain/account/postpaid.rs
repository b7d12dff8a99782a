//! Frozen credit: a postpaid resource freezes part of a customer's available credit while it
//! is active.
//!
//! Invariant: a customer's `frozen` equals the sum of its active resources' (checked where
//! they change; purchases never touch them), and it holds at most [`Account::FROZEN_MAX`].

use super::{rules_of, rules_opt_mut, rules_ref, wrong_kind, Account, Role};
use crate::domain::access;
use crate::domain::ids::{Caller, Uin};
use crate::domain::money::Money;
use crate::domain::rejection::{KindRequired, Rejection};
use serde::{Deserialize, Serialize};

/// ActivatePostpaid: freeze `frozen` of a customer's available credit for `resource`. The
/// engine authorizes the caller before it claims the resource id, so this does not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freeze {
    pub resource: Box<str>,
    pub frozen: Money,
}

impl Freeze {
    pub(super) fn apply(self, account: &mut Account) -> Result<Money, Rejection> {
        let uin = account.uin;
        let Role::Customer { credit, .. } = &mut account.role else {
            return Err(wrong_kind(uin, KindRequired::Customer));
        };
        if self.frozen.is_negative() {
            return Err(Rejection::InvalidAmount(self.frozen, "a frozen amount is not negative"));
        }
        let active = rules_ref(&account.extra).map_or(&[][..], |rules| &rules.frozen[..]);
        if active.iter().any(|(id, _)| *id == self.resource) {
            return Err(Rejection::ResourceTaken(self.resource.into()));
        }
        if active.len() >= Account::FROZEN_MAX {
            return Err(Rejection::TooMany {
                what: "active postpaid resources of one customer",
                limit: Account::FROZEN_MAX,
            });
        }
        let available = credit.available();
        if available < self.frozen {
            return Err(Rejection::InsufficientCustomerCredit { uin, available, needed: self.frozen });
        }
        credit.frozen += self.frozen;
        let active = &mut rules_of(&mut account.extra).frozen;
        active.push((self.resource, self.frozen));
        check_frozen(uin, active, credit.frozen);
        Ok(available - self.frozen)
    }
}

/// TerminatePostpaid: release what a resource froze, for the customer itself, its parent or
/// the operator; answers the available credit after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unfreeze {
    pub caller: Caller,
    pub resource: Box<str>,
}

impl Unfreeze {
    pub(super) fn apply(self, account: &mut Account) -> Result<Money, Rejection> {
        let uin = account.uin;
        let Role::Customer { parent, credit, .. } = &mut account.role else {
            return Err(wrong_kind(uin, KindRequired::Customer));
        };
        access::itself_or_parent(self.caller, uin, Some(*parent))?;
        let unknown = || Rejection::UnknownResource(self.resource.to_string());
        let active = match rules_opt_mut(&mut account.extra) {
            Some(rules) => &mut rules.frozen,
            None => return Err(unknown()),
        };
        let Some(position) = active.iter().position(|(id, _)| *id == self.resource) else {
            return Err(unknown());
        };
        let (_, frozen) = active.swap_remove(position);
        credit.frozen -= frozen;
        check_frozen(uin, active, credit.frozen);
        Ok(credit.available())
    }
}

impl Account {
    /// At most this many postpaid resources may be active on one customer.
    pub const FROZEN_MAX: usize = 1_000;
}

/// A customer's `frozen` is the sum of its resources'.
fn check_frozen(uin: Uin, resources: &[(Box<str>, Money)], frozen: Money) {
    let sum: Money = resources.iter().map(|(_, amount)| *amount).sum();
    assert_eq!(sum, frozen, "{uin}: frozen differs from its resources");
}
