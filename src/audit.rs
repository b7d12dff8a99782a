//! The audit of the books: reads every account and checks the invariants of PRODUCT.md
//! section 3 that span accounts.
//!
//! Checked, for a quiescent engine (no operation in flight):
//! - no account's available credit (or any counter) is negative;
//! - every chargeable partner's consumption equals the sum over the customers it is charged
//!   for, where an account's consumption is what it was charged (`used`), plus what bill
//!   confirmations returned of it, plus the deductions made final on its vouchers: both are
//!   the amounts of the committed purchases, each counted once on each side;
//! - likewise its `reserved` plus the deductions its vouchers hold equals its customers';
//! - every partner's `allocated` (a pool's `allocated`) equals the sum of what its children
//!   hold: customers' totals, second-level resellers' pools;
//! - customers' consumption equals partners' consumption in total.
//!
//! Invariant: pure; it reads views and does no I/O.

use std::collections::HashMap;

use crate::domain::{AccountView, Money, Role, Uin};

/// The result of an audit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    pub accounts: usize,
    pub customers: usize,
    /// Sum of customers' used credit: every committed purchase's customer side.
    pub customer_used: Money,
    /// Sum of chargeable partners' used credit: every committed purchase's partner side.
    pub partner_used: Money,
    pub customer_reserved: Money,
    pub partner_reserved: Money,
    /// Sum of credit lines granted to distributors and resellers.
    pub granted: Money,
    /// Sum of customers' totals.
    pub customer_total: Money,
    /// Sums of the deductions made final on customers' and on partners' vouchers.
    pub customer_deducted: Money,
    pub partner_deducted: Money,
    /// Sum of the credit bill confirmations returned (customers and partners).
    pub returned: Money,
    /// Every broken invariant, as a sentence.
    pub violations: Vec<String>,
}

#[derive(Default)]
struct Sums {
    used: Money,
    reserved: Money,
    given: Money,
}

/// What an account consumed of committed purchases: charged, returned since, or deducted.
fn consumed(view: &AccountView, used: Money) -> Money {
    used + view.bills_returned + view.vouchers_settled
}

impl Audit {
    pub fn of(views: &[AccountView]) -> Audit {
        let mut audit = Audit { accounts: views.len(), ..Audit::default() };
        let mut charged_sums: HashMap<Uin, Sums> = HashMap::new();
        let mut given_sums: HashMap<Uin, Sums> = HashMap::new();
        for view in views {
            let uin = view.uin;
            let mut negative = |what: &str, value: Money| {
                if value.is_negative() {
                    audit.violations.push(format!("{uin}: {what} is {value}"));
                }
            };
            match &view.role {
                Role::Distributor { credit } | Role::Reseller { credit } => {
                    negative("used", credit.used);
                    negative("reserved", credit.reserved);
                    negative("allocated", credit.allocated);
                    negative("available", credit.available());
                }
                Role::SecondLevelReseller { distributor, pool } => {
                    negative("pool allocated", pool.allocated);
                    negative("pool remaining", pool.remaining());
                    given_sums.entry(*distributor).or_default().given += pool.total;
                }
                Role::Customer { parent, charged, credit, .. } => {
                    negative("used", credit.used);
                    negative("reserved", credit.reserved);
                    negative("frozen", credit.frozen);
                    negative("available", credit.available());
                    let sums = charged_sums.entry(*charged).or_default();
                    sums.used += consumed(view, credit.used);
                    sums.reserved += credit.reserved + view.vouchers_held;
                    given_sums.entry(*parent).or_default().given += credit.total;
                }
            }
        }
        for view in views {
            let uin = view.uin;
            let given = given_sums.get(&uin).map(|sums| sums.given).unwrap_or_default();
            match &view.role {
                Role::Distributor { credit } | Role::Reseller { credit } => {
                    audit.partner_used += credit.used;
                    audit.partner_reserved += credit.reserved;
                    audit.partner_deducted += view.vouchers_settled;
                    audit.returned += view.bills_returned;
                    audit.granted += credit.total;
                    let charged = charged_sums.remove(&uin).unwrap_or_default();
                    let consumed = consumed(view, credit.used);
                    if consumed != charged.used {
                        audit.violations.push(format!(
                            "{uin}: consumed {consumed} (used, returned, deducted) but its customers consumed {}",
                            charged.used
                        ));
                    }
                    let held = credit.reserved + view.vouchers_held;
                    if held != charged.reserved {
                        audit.violations.push(format!(
                            "{uin}: holds {held} (reserved, voucher holds) but its customers hold {}",
                            charged.reserved
                        ));
                    }
                    if credit.allocated != given {
                        audit.violations.push(format!(
                            "{uin}: allocated {} but its children hold {given}",
                            credit.allocated
                        ));
                    }
                }
                Role::SecondLevelReseller { pool, .. } => {
                    if pool.allocated != given {
                        audit.violations.push(format!(
                            "{uin}: pool allocated {} but its customers hold {given}",
                            pool.allocated
                        ));
                    }
                }
                Role::Customer { credit, .. } => {
                    audit.customers += 1;
                    audit.customer_used += credit.used;
                    audit.customer_deducted += view.vouchers_settled;
                    audit.returned += view.bills_returned;
                    audit.customer_reserved += credit.reserved;
                    audit.customer_total += credit.total;
                }
            }
        }
        for (uin, sums) in charged_sums {
            if !(sums.used.is_zero() && sums.reserved.is_zero()) {
                audit.violations.push(format!("customers charge {uin}, which is not a chargeable partner"));
            }
        }
        let customers_consumed: Money = views
            .iter()
            .filter_map(|view| match &view.role {
                Role::Customer { credit, .. } => Some(consumed(view, credit.used)),
                _ => None,
            })
            .sum();
        let partners_consumed: Money = views
            .iter()
            .filter_map(|view| match &view.role {
                Role::Distributor { credit } | Role::Reseller { credit } => Some(consumed(view, credit.used)),
                _ => None,
            })
            .sum();
        if customers_consumed != partners_consumed {
            audit.violations.push(format!(
                "customers consumed {customers_consumed} in total but partners {partners_consumed}"
            ));
        }
        audit
    }

    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}
