//! The hierarchy and what a partner sets on its customers: children, forced suspension,
//! remarks and credit-warning thresholds.

use super::{rules_ref, wrong_kind, Account, AccountKind, Role};
use crate::domain::access;
use crate::domain::ids::{Caller, Uin};
use crate::domain::rejection::{KindRequired, Rejection};
use crate::domain::warning::Threshold;
use serde::{Deserialize, Serialize};

/// Registers a new child account; answers the partner the child's purchases charge (for a
/// second-level reseller, its distributor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptChild {
    pub child: Uin,
    pub child_kind: AccountKind,
}

impl AdoptChild {
    pub(super) fn apply(self, account: &mut Account) -> Result<Uin, Rejection> {
        let uin = account.uin;
        let charged = match (&account.role, self.child_kind) {
            (Role::Reseller { .. }, AccountKind::Customer) => uin,
            (Role::SecondLevelReseller { distributor, .. }, AccountKind::Customer) => *distributor,
            (Role::Distributor { .. }, AccountKind::SecondLevelReseller) => uin,
            (_, AccountKind::SecondLevelReseller) => return Err(wrong_kind(uin, KindRequired::Distributor)),
            _ => return Err(wrong_kind(uin, KindRequired::CustomerParent)),
        };
        account.add_child(self.child);
        Ok(charged)
    }
}

/// Undoes [`AdoptChild`] when the child could not be created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisownChild {
    pub child: Uin,
}

impl DisownChild {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        // One occurrence only: a concurrent creation of the same UIN that won the race has its
        // own entry, which must stay.
        let children = &mut account.extra_mut().children;
        if let Some(position) = children.iter().rposition(|existing| *existing == self.child) {
            children.remove(position);
        }
        Ok(())
    }
}

/// The direct children an account lists (creations in progress included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Children;

impl Children {
    pub(super) fn apply(self, account: &mut Account) -> Result<Vec<Uin>, Rejection> {
        Ok(account.children().to_vec())
    }
}

/// ForceQN, by the customer's parent or the operator: `true` for forced suspension (type 2),
/// `false` for normal (type 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSuspension {
    pub caller: Caller,
    pub suspended: bool,
}

impl SetSuspension {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        let Role::Customer { parent, suspended, .. } = &mut account.role else {
            return Err(wrong_kind(account.uin, KindRequired::Customer));
        };
        access::its_parent(self.caller, account.uin, Some(*parent))?;
        *suspended = self.suspended;
        Ok(())
    }
}

/// ModifyClientRemark, by the customer's parent or the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRemark {
    pub caller: Caller,
    pub remark: Box<str>,
}

impl SetRemark {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        if account.kind() != AccountKind::Customer {
            return Err(wrong_kind(account.uin, KindRequired::Customer));
        }
        access::its_parent(self.caller, account.uin, account.parent())?;
        account.extra_mut().profile.remark = Some(self.remark);
        Ok(())
    }
}

/// SetCreditWarning on a customer: by its parent (the partner's threshold, events to the
/// partner) or itself (its own, events to itself); `None` removes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetWarningThreshold {
    pub caller: Caller,
    pub threshold: Option<Threshold>,
}

impl SetWarningThreshold {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        let uin = account.uin;
        if account.kind() != AccountKind::Customer {
            return Err(wrong_kind(uin, KindRequired::Customer));
        }
        access::itself_or_parent(self.caller, uin, account.parent())?;
        // Removing what was never set stores nothing.
        if self.threshold.is_some() || rules_ref(&account.extra).is_some() {
            let rules = account.rules_mut();
            let slot =
                if self.caller.is(uin) { &mut rules.own_threshold } else { &mut rules.partner_threshold };
            *slot = self.threshold;
        }
        Ok(())
    }
}
