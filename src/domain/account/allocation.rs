//! Credit moves: allocations to customers and second-level resellers' pools (and
//! repossessions, their negative), credit-line changes by the operator, and the history of
//! both.
//!
//! An allocation is three steps across two accounts, ordered so that only the first two can
//! refuse and nothing needs undoing: the receiver opens it ([`OpenAllocation`]: authorization,
//! and a repossession applied where it can be refused), the giver takes from or returns to
//! its allocable credit ([`TakeAllocable`], [`ReturnAllocable`]), and the receiver closes a
//! positive one ([`CloseAllocation`]: the credit arrives).
//!
//! Invariant: every credit move an account receives is recorded in its history, at most
//! [`Account::HISTORY_MAX`] records, the oldest dropped first.

use super::{access, wrong_kind, Account, Role};
use crate::domain::ids::{Caller, Timestamp, Uin};
use crate::domain::money::Money;
use crate::domain::rejection::{KindRequired, Rejection};
use serde::{Deserialize, Serialize};

/// One credit allocation, repossession or credit-line change, as QueryCreditAllocationHistory
/// shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRecord {
    pub time: Timestamp,
    pub operator: Caller,
    /// The increment: positive allocates, negative repossesses.
    pub amount: Money,
    /// The receiver's total credit after the allocation.
    pub total_after: Money,
    /// The receiver's available credit after the allocation.
    pub available_after: Money,
    pub remark: Option<Box<str>>,
}

/// Who performed a credit move and why, for its record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordInfo {
    pub operator: Caller,
    pub remark: Option<Box<str>>,
    pub time: Timestamp,
}

/// A total and what is available of it, as the allocation actions answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditLine {
    pub total: Money,
    pub available: Money,
}

/// A credit move of 0 changes nothing and is refused with `why`: checked by the engine before
/// anything is asked of an account, and by the account itself.
pub fn require_change(delta: Money, why: &'static str) -> Result<(), Rejection> {
    if delta.is_zero() {
        return Err(Rejection::InvalidAmount(delta, why));
    }
    Ok(())
}

/// Why an allocation of 0 is refused.
pub const ZERO_ALLOCATION: &str = "an allocation of 0 changes nothing";
/// Why a credit-line change of 0 is refused.
pub const ZERO_CREDIT_CHANGE: &str = "a credit change of 0 changes nothing";

/// First step of an allocation, at the receiver (a customer or a second-level reseller, as
/// `receiver` requires): checks authorization (the receiver's parent or the operator); a
/// repossession (negative `delta`) is applied here, where it can be refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAllocation {
    pub caller: Caller,
    pub receiver: KindRequired,
    pub delta: Money,
    pub record: Box<RecordInfo>,
}

/// The receiver accepted an allocation. For a repossession it is already applied and
/// `applied` holds its result; for a positive allocation the giver is asked next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationOpened {
    pub giver: Uin,
    pub applied: Option<CreditLine>,
}

impl OpenAllocation {
    pub(super) fn apply(self, account: &mut Account) -> Result<AllocationOpened, Rejection> {
        let uin = account.uin;
        let giver = match (&account.role, self.receiver) {
            (Role::Customer { parent, .. }, KindRequired::Customer) => *parent,
            (Role::SecondLevelReseller { distributor, .. }, KindRequired::SecondLevelReseller) => {
                *distributor
            }
            _ => return Err(wrong_kind(uin, self.receiver)),
        };
        access::its_parent(self.caller, uin, Some(giver))?;
        require_change(self.delta, ZERO_ALLOCATION)?;
        if self.delta.is_positive() {
            return Ok(AllocationOpened { giver, applied: None });
        }
        let taken = self.delta.abs();
        let available = match &account.role {
            Role::Customer { credit, .. } => credit.available(),
            Role::SecondLevelReseller { pool, .. } => pool.remaining(),
            _ => unreachable!("receiver kind checked above"),
        };
        if available < taken {
            return Err(Rejection::OverRepossessable { uin, available, asked: taken });
        }
        match &mut account.role {
            Role::Customer { credit, .. } => credit.total -= taken,
            Role::SecondLevelReseller { pool, .. } => pool.total -= taken,
            _ => unreachable!("receiver kind checked above"),
        }
        let applied = account.record(self.delta, *self.record);
        Ok(AllocationOpened { giver, applied: Some(applied) })
    }
}

/// Second step of a positive allocation, at the giver: take `credit` from its allocable
/// credit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeAllocable {
    pub credit: Money,
}

impl TakeAllocable {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        let uin = account.uin;
        let allocable = account.allocable()?;
        if allocable < self.credit {
            return Err(Rejection::OverAllocable { uin, allocable, asked: self.credit });
        }
        *account.allocated_mut()? += self.credit;
        Ok(())
    }
}

/// Second step of a repossession, at the giver: `credit` is allocable again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnAllocable {
    pub credit: Money,
}

impl ReturnAllocable {
    pub(super) fn apply(self, account: &mut Account) -> Result<(), Rejection> {
        let uin = account.uin;
        let allocated = account.allocated_mut()?;
        assert!(*allocated >= self.credit, "return of {} on {uin} exceeds allocated", self.credit);
        *allocated -= self.credit;
        Ok(())
    }
}

/// Last step of a positive allocation, at the receiver: the credit arrives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseAllocation {
    pub delta: Money,
    pub record: Box<RecordInfo>,
}

impl CloseAllocation {
    pub(super) fn apply(self, account: &mut Account) -> Result<CreditLine, Rejection> {
        match &mut account.role {
            Role::Customer { credit, .. } => credit.total += self.delta,
            Role::SecondLevelReseller { pool, .. } => pool.total += self.delta,
            _ => return Err(wrong_kind(account.uin, KindRequired::Customer)),
        }
        Ok(account.record(self.delta, *self.record))
    }
}

/// The operator raises (positive) or reduces (negative) a partner's credit line. A reduction
/// cannot take its available credit below zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantCredit {
    pub delta: Money,
    pub record: Box<RecordInfo>,
}

impl GrantCredit {
    pub(super) fn apply(self, account: &mut Account) -> Result<CreditLine, Rejection> {
        let uin = account.uin;
        let credit = account.partner_credit_mut()?;
        if self.delta.is_negative() && credit.available() < self.delta.abs() {
            return Err(Rejection::OverRepossessable {
                uin,
                available: credit.available(),
                asked: self.delta.abs(),
            });
        }
        credit.total += self.delta;
        Ok(account.record(self.delta, *self.record))
    }
}

/// One page of the history, newest first; `page` counts from 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub page: usize,
    pub page_size: usize,
}

/// A page of the history and how many records there are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub total: usize,
    pub records: Vec<AllocationRecord>,
}

impl History {
    pub(super) fn apply(self, account: &mut Account) -> Result<HistoryPage, Rejection> {
        let history = account.history();
        let skip = self.page.saturating_sub(1).saturating_mul(self.page_size);
        let records = history.iter().rev().skip(skip).take(self.page_size).cloned().collect();
        Ok(HistoryPage { total: history.len(), records })
    }
}

impl Account {
    /// At most this many allocation records are kept per account; older ones are dropped
    /// first. At the documented quota of 5 allocations per second this is over half an hour
    /// of continuous allocation to one customer.
    pub const HISTORY_MAX: usize = 10_000;

    /// Appends a history record of a credit move that was just applied; answers the
    /// resulting total and available credit.
    fn record(&mut self, amount: Money, info: RecordInfo) -> CreditLine {
        let line = match &self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => {
                CreditLine { total: credit.total, available: credit.available() }
            }
            Role::SecondLevelReseller { pool, .. } => {
                CreditLine { total: pool.total, available: pool.remaining() }
            }
            Role::Customer { credit, .. } => {
                CreditLine { total: credit.total, available: credit.available() }
            }
        };
        let history = &mut self.extra_mut().history;
        if history.len() == Self::HISTORY_MAX {
            history.remove(0);
        }
        history.push(AllocationRecord {
            time: info.time,
            operator: info.operator,
            amount,
            total_after: line.total,
            available_after: line.available,
            remark: info.remark,
        });
        line
    }

    fn allocable(&self) -> Result<Money, Rejection> {
        match &self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => Ok(credit.allocable()),
            Role::SecondLevelReseller { pool, .. } => Ok(pool.remaining()),
            Role::Customer { .. } => Err(wrong_kind(self.uin, KindRequired::Partner)),
        }
    }

    fn allocated_mut(&mut self) -> Result<&mut Money, Rejection> {
        match &mut self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => Ok(&mut credit.allocated),
            Role::SecondLevelReseller { pool, .. } => Ok(&mut pool.allocated),
            Role::Customer { .. } => Err(wrong_kind(self.uin, KindRequired::Partner)),
        }
    }
}
