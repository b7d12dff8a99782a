//! Bill confirmation on one account: a month's charges return to available credit, once,
//! after the month is final (see [`crate::domain::bill`]).

use super::{rules_opt_mut, with_bill_history, wrong_kind, Account, Role};
use crate::domain::access;
use crate::domain::bill::Bills;
use crate::domain::ids::{Caller, Month, Timestamp};
use crate::domain::money::Money;
use crate::domain::rejection::{KindRequired, Rejection};
use serde::{Deserialize, Serialize};

/// ConfirmBill (a customer's, by its parent: `kind` is `Customer`) or SettlePartnerBill (a
/// distributor's or reseller's, by the operator: `kind` is `ChargeablePartner`, and the
/// engine refuses anyone else before it reads any state): the month's charges return to
/// available credit. `final_from` is when the month's bill became final. Answers the credit
/// returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmBill {
    pub caller: Caller,
    pub kind: KindRequired,
    pub month: Month,
    pub now: Timestamp,
    pub final_from: Timestamp,
}

impl ConfirmBill {
    pub(super) fn apply(self, account: &mut Account) -> Result<Money, Rejection> {
        let uin = account.uin;
        let ConfirmBill { caller, kind, month, now, final_from } = self;
        let returned = match (&mut account.role, kind) {
            (Role::Customer { parent, credit, bill_month, .. }, KindRequired::Customer) => {
                access::its_parent(caller, uin, Some(*parent))?;
                let used = credit.used;
                let returned = with_bill_history(&mut account.extra, |history| {
                    Bills { current: bill_month, history }.confirm(uin, month, used, now, final_from)
                })?;
                credit.used -= returned;
                returned
            }
            (Role::Distributor { credit } | Role::Reseller { credit }, KindRequired::ChargeablePartner) => {
                // A partner never charged has no bill state: it refuses as an empty one would
                // (not final yet, or no bill), creating nothing.
                let (mut no_month, mut no_history) = (None, None);
                let mut bills = match rules_opt_mut(&mut account.extra) {
                    Some(rules) => Bills { current: &mut rules.bill_month, history: &mut rules.bills },
                    None => Bills { current: &mut no_month, history: &mut no_history },
                };
                let returned = bills.confirm(uin, month, credit.used, now, final_from)?;
                credit.used -= returned;
                returned
            }
            _ => return Err(wrong_kind(uin, kind)),
        };
        Ok(returned)
    }
}
