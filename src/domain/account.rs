//! Accounts: the state one actor owns, and the commands that change it.
//!
//! Each UIN is one [`Account`]. Its [`Role`] holds the credit state of PRODUCT.md section 2
//! exactly: a customer's `total`, `used`, `reserved`, `frozen`; a distributor's or
//! reseller's `total` (credit line), `allocated`, `used`, `reserved`; a second-level
//! reseller's pool. [`Account::handle`] applies one [`Command`] and answers with a
//! [`Reply`] or a [`Rejection`]; the runtime decides which thread runs it.
//!
//! Invariants, checked after every command (`debug_assert` in release builds would hide a
//! broken ledger, so these are plain asserts):
//! - every available credit and every counter is >= 0, except a partner's `allocable`,
//!   which a credit-line reduction may take below zero;
//! - a refused command changes nothing.

use super::ids::{Caller, Timestamp, Uin};
use super::money::Money;
use super::rejection::{KindRequired, Rejection};

/// The kinds of UIN in the partner programme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccountKind {
    /// First-level distributor: credit line from the platform; has second-level resellers.
    Distributor,
    /// Belongs to one distributor; allocates to its customers from a pool the distributor
    /// gives it. Never charged by purchases: its customers' purchases charge the distributor.
    SecondLevelReseller,
    /// First-level (direct) reseller: credit line from the platform; has customers.
    Reseller,
    /// An end customer of a reseller or a second-level reseller.
    Customer,
}

/// Credit of a distributor or reseller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartnerCredit {
    /// The credit line granted by the operator.
    pub total: Money,
    /// Given to customers (and, for a distributor, to second-level resellers' pools).
    pub allocated: Money,
    /// Charged by committed purchases of its customers.
    pub used: Money,
    /// Held by open reservations of its customers' purchases.
    pub reserved: Money,
}

impl PartnerCredit {
    pub fn available(&self) -> Money {
        self.total - self.used - self.reserved
    }

    /// May be negative after a credit-line reduction; then allocations stop.
    pub fn allocable(&self) -> Money {
        self.total - self.allocated
    }
}

/// Credit pool of a second-level reseller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCredit {
    /// Given by its distributor (counted in the distributor's `allocated`).
    pub total: Money,
    /// Given to its customers.
    pub allocated: Money,
}

impl PoolCredit {
    pub fn remaining(&self) -> Money {
        self.total - self.allocated
    }
}

/// Credit of a customer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CustomerCredit {
    /// The sum of its allocations.
    pub total: Money,
    /// Charged by committed purchases.
    pub used: Money,
    /// Held by open reservations.
    pub reserved: Money,
    /// Held by active postpaid resources.
    pub frozen: Money,
}

impl CustomerCredit {
    pub fn available(&self) -> Money {
        self.total - self.used - self.reserved - self.frozen
    }
}

/// What an account is, with the state that only that kind has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Distributor {
        credit: PartnerCredit,
    },
    Reseller {
        credit: PartnerCredit,
    },
    SecondLevelReseller {
        distributor: Uin,
        pool: PoolCredit,
    },
    Customer {
        /// The reseller or second-level reseller it belongs to.
        parent: Uin,
        /// The partner its purchases charge: the parent, or the parent's distributor for a
        /// customer of a second-level reseller. Stored so that a purchase needs no lookup.
        charged: Uin,
        credit: CustomerCredit,
        /// Forced service suspension (ForceQN type 2).
        suspended: bool,
    },
}

impl Role {
    pub fn kind(&self) -> AccountKind {
        match self {
            Role::Distributor { .. } => AccountKind::Distributor,
            Role::Reseller { .. } => AccountKind::Reseller,
            Role::SecondLevelReseller { .. } => AccountKind::SecondLevelReseller,
            Role::Customer { .. } => AccountKind::Customer,
        }
    }
}

/// Descriptive fields that no rule reads. Boxed so that accounts without them (generated
/// worlds) pay one pointer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    pub name: Option<Box<str>>,
    pub email: Option<Box<str>>,
    pub remark: Option<Box<str>>,
}

/// One credit allocation, repossession or credit-line change, as QueryCreditAllocationHistory
/// shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    pub operator: Caller,
    pub remark: Option<Box<str>>,
    pub time: Timestamp,
}

/// The state of one UIN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub uin: Uin,
    pub role: Role,
    /// When the account was created or bound to its parent (AssociationTime upstream).
    pub created: Timestamp,
    /// What most accounts (generated or imported customers) never have, boxed so that they
    /// pay one pointer for it.
    extra: Option<Box<Extra>>,
}

/// The parts of an account that no purchase reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Extra {
    profile: Profile,
    /// Direct children: customers of a reseller or second-level reseller, second-level
    /// resellers of a distributor.
    children: Vec<Uin>,
    /// Credit moves received by this account, oldest first, at most
    /// [`Account::HISTORY_MAX`].
    history: Vec<AllocationRecord>,
}

/// A message to one account actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Phase one of a purchase on the customer side: hold `amount` of its available credit.
    ReserveCustomer {
        caller: Caller,
        amount: Money,
    },
    /// Phase one on the charged partner: hold `amount`, or charge it at once when
    /// `commit` is set (the one-shot purchase needs no second phase on the partner).
    ReservePartner {
        amount: Money,
        commit: bool,
    },
    /// Phase two: the held amount becomes used.
    Commit {
        amount: Money,
    },
    /// Phase two of a cancel or an expiry: the held amount is released.
    Release {
        amount: Money,
    },
    /// First step of an allocation, at the receiver (a customer or a second-level reseller,
    /// as `receiver` requires). Checks authorization; a repossession (negative `delta`) is
    /// applied here, where it can be refused.
    OpenAllocation {
        caller: Caller,
        receiver: KindRequired,
        delta: Money,
        record: Box<RecordInfo>,
    },
    /// Second step of a positive allocation, at the giver: take from its allocable credit.
    TakeAllocable {
        amount: Money,
    },
    /// Second step of a repossession, at the giver: the amount is allocable again.
    ReturnAllocable {
        amount: Money,
    },
    /// Last step of a positive allocation, at the receiver: the credit arrives.
    CloseAllocation {
        delta: Money,
        record: Box<RecordInfo>,
    },
    /// The operator raises (positive) or reduces (negative) a partner's credit line.
    GrantCredit {
        delta: Money,
        record: Box<RecordInfo>,
    },
    /// ForceQN: `true` for forced suspension (type 2), `false` for normal (type 0).
    SetSuspension {
        caller: Caller,
        suspended: bool,
    },
    /// Registers a new child account; answers the partner the child's purchases charge.
    AdoptChild {
        child: Uin,
        child_kind: AccountKind,
    },
    /// Undoes `AdoptChild` when the child could not be created.
    DisownChild {
        child: Uin,
    },
    /// ModifyClientRemark, by the customer's parent or the operator.
    SetRemark {
        caller: Caller,
        remark: Box<str>,
    },
    Snapshot,
    Children,
    /// One page of the history, newest first; `page` counts from 1.
    History {
        page: usize,
        page_size: usize,
    },
}

/// The answer of an account to a command it accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A customer reservation: the partner to reserve on next, and what is left.
    CustomerReserved {
        charged: Uin,
        available: Money,
    },
    /// Available credit after a reserve, commit or release.
    Available(Money),
    /// The receiver accepted an allocation. For a repossession it is already applied and
    /// `applied` holds its result; for a positive allocation the giver is asked next.
    AllocationOpened {
        giver: Uin,
        applied: Option<CreditLine>,
    },
    /// The resulting total and available credit of a receiver or a partner.
    Credit(CreditLine),
    /// The partner that the adopted child's purchases charge, for customers.
    Adopted {
        charged: Uin,
    },
    Done,
    /// Boxed: snapshots are rare, and every reply is as large as its largest variant.
    Snapshot(Box<AccountView>),
    Children(Vec<Uin>),
    History {
        total: usize,
        records: Vec<AllocationRecord>,
    },
}

/// A total and what is available of it, as the allocation actions answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditLine {
    pub total: Money,
    pub available: Money,
}

/// A copy of an account's state for queries and audits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountView {
    pub uin: Uin,
    pub role: Role,
    pub created: Timestamp,
    pub profile: Profile,
    pub children_count: usize,
}

impl AccountView {
    pub fn kind(&self) -> AccountKind {
        self.role.kind()
    }

    /// The parent: the distributor of a second-level reseller, the reseller or second-level
    /// reseller of a customer.
    pub fn parent(&self) -> Option<Uin> {
        match self.role {
            Role::SecondLevelReseller { distributor, .. } => Some(distributor),
            Role::Customer { parent, .. } => Some(parent),
            _ => None,
        }
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
    /// At most this many allocation records are kept per account; older ones are dropped
    /// first. At the documented quota of 5 allocations per second this is over half an hour
    /// of continuous allocation to one customer.
    pub const HISTORY_MAX: usize = 10_000;

    pub fn new(uin: Uin, role: Role, created: Timestamp) -> Account {
        Account { uin, role, created, extra: None }
    }

    pub fn profile(&self) -> Option<&Profile> {
        self.extra.as_ref().map(|extra| &extra.profile)
    }

    pub fn set_profile(&mut self, profile: Profile) {
        self.extra_mut().profile = profile;
    }

    /// Direct children: customers of a reseller or second-level reseller, second-level
    /// resellers of a distributor. Empty for customers.
    pub fn children(&self) -> &[Uin] {
        self.extra.as_ref().map_or(&[], |extra| &extra.children)
    }

    /// Registers a child directly (imports); the actor way is [`Command::AdoptChild`].
    pub fn add_child(&mut self, child: Uin) {
        self.extra_mut().children.push(child);
    }

    /// Credit moves received, oldest first.
    pub fn history(&self) -> &[AllocationRecord] {
        self.extra.as_ref().map_or(&[], |extra| &extra.history)
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    pub fn kind(&self) -> AccountKind {
        self.role.kind()
    }

    /// Applies one command. A rejection leaves the account exactly as it was.
    pub fn handle(&mut self, command: Command) -> Result<Reply, Rejection> {
        let reply = self.apply(command);
        self.check_invariants();
        reply
    }

    fn apply(&mut self, command: Command) -> Result<Reply, Rejection> {
        let uin = self.uin;
        match command {
            Command::ReserveCustomer { caller, amount } => {
                let Role::Customer { charged, credit, suspended, .. } = &mut self.role else {
                    return Err(wrong_kind(uin, KindRequired::Customer));
                };
                if !(caller == Caller::Operator || caller.is(uin)) {
                    return Err(not_authorized(caller, uin));
                }
                if *suspended {
                    return Err(Rejection::Suspended(uin));
                }
                let available = credit.available();
                if available < amount {
                    return Err(Rejection::InsufficientCustomerCredit { uin, available, needed: amount });
                }
                credit.reserved += amount;
                Ok(Reply::CustomerReserved { charged: *charged, available: available - amount })
            }
            Command::ReservePartner { amount, commit } => {
                let credit = self.partner_credit_mut()?;
                let available = credit.available();
                if available < amount {
                    return Err(Rejection::InsufficientPartnerCredit { uin, available, needed: amount });
                }
                if commit {
                    credit.used += amount;
                } else {
                    credit.reserved += amount;
                }
                Ok(Reply::Available(available - amount))
            }
            Command::Commit { amount } => {
                let (reserved, used) = self.spendable_mut()?;
                assert!(*reserved >= amount, "commit of {amount} on {uin} exceeds its reserved");
                *reserved -= amount;
                *used += amount;
                Ok(Reply::Done)
            }
            Command::Release { amount } => {
                let (reserved, _) = self.spendable_mut()?;
                assert!(*reserved >= amount, "release of {amount} on {uin} exceeds its reserved");
                *reserved -= amount;
                Ok(Reply::Done)
            }
            Command::OpenAllocation { caller, receiver, delta, record } => {
                self.open_allocation(caller, receiver, delta, *record)
            }
            Command::TakeAllocable { amount } => {
                let allocable = self.allocable()?;
                if allocable < amount {
                    return Err(Rejection::OverAllocable { uin, allocable, asked: amount });
                }
                *self.allocated_mut()? += amount;
                Ok(Reply::Done)
            }
            Command::ReturnAllocable { amount } => {
                let allocated = self.allocated_mut()?;
                assert!(*allocated >= amount, "return of {amount} on {uin} exceeds allocated");
                *allocated -= amount;
                Ok(Reply::Done)
            }
            Command::CloseAllocation { delta, record } => {
                match &mut self.role {
                    Role::Customer { credit, .. } => credit.total += delta,
                    Role::SecondLevelReseller { pool, .. } => pool.total += delta,
                    _ => return Err(wrong_kind(uin, KindRequired::Customer)),
                }
                Ok(Reply::Credit(self.record(delta, *record)))
            }
            Command::GrantCredit { delta, record } => {
                let credit = self.partner_credit_mut()?;
                if delta.is_negative() && credit.available() < delta.abs() {
                    return Err(Rejection::OverRepossessable {
                        uin,
                        available: credit.available(),
                        asked: delta.abs(),
                    });
                }
                credit.total += delta;
                Ok(Reply::Credit(self.record(delta, *record)))
            }
            Command::SetSuspension { caller, suspended } => {
                let Role::Customer { parent, suspended: state, .. } = &mut self.role else {
                    return Err(wrong_kind(uin, KindRequired::Customer));
                };
                if !(caller == Caller::Operator || caller.is(*parent)) {
                    return Err(not_authorized(caller, uin));
                }
                *state = suspended;
                Ok(Reply::Done)
            }
            Command::AdoptChild { child, child_kind } => {
                let charged = match (&self.role, child_kind) {
                    (Role::Reseller { .. }, AccountKind::Customer) => uin,
                    (Role::SecondLevelReseller { distributor, .. }, AccountKind::Customer) => *distributor,
                    (Role::Distributor { .. }, AccountKind::SecondLevelReseller) => uin,
                    (_, AccountKind::SecondLevelReseller) => {
                        return Err(wrong_kind(uin, KindRequired::Distributor))
                    }
                    _ => return Err(wrong_kind(uin, KindRequired::CustomerParent)),
                };
                self.add_child(child);
                Ok(Reply::Adopted { charged })
            }
            Command::DisownChild { child } => {
                // One occurrence only: a concurrent creation of the same UIN that won the
                // race has its own entry, which must stay.
                let children = &mut self.extra_mut().children;
                if let Some(position) = children.iter().rposition(|existing| *existing == child) {
                    children.remove(position);
                }
                Ok(Reply::Done)
            }
            Command::SetRemark { caller, remark } => {
                let Role::Customer { parent, .. } = self.role else {
                    return Err(wrong_kind(uin, KindRequired::Customer));
                };
                if !(caller == Caller::Operator || caller.is(parent)) {
                    return Err(not_authorized(caller, uin));
                }
                self.extra_mut().profile.remark = Some(remark);
                Ok(Reply::Done)
            }
            Command::Snapshot => Ok(Reply::Snapshot(Box::new(self.view()))),
            Command::Children => Ok(Reply::Children(self.children().to_vec())),
            Command::History { page, page_size } => {
                let total = self.history().len();
                let skip = page.saturating_sub(1).saturating_mul(page_size);
                let records = self.history().iter().rev().skip(skip).take(page_size).cloned();
                Ok(Reply::History { total, records: records.collect() })
            }
        }
    }

    fn open_allocation(
        &mut self,
        caller: Caller,
        receiver: KindRequired,
        delta: Money,
        record: RecordInfo,
    ) -> Result<Reply, Rejection> {
        let uin = self.uin;
        let giver = match (&self.role, receiver) {
            (Role::Customer { parent, .. }, KindRequired::Customer) => *parent,
            (Role::SecondLevelReseller { distributor, .. }, KindRequired::SecondLevelReseller) => {
                *distributor
            }
            _ => return Err(wrong_kind(uin, receiver)),
        };
        if !(caller == Caller::Operator || caller.is(giver)) {
            return Err(not_authorized(caller, uin));
        }
        if delta.is_zero() {
            return Err(Rejection::InvalidAmount(delta, "an allocation of 0 changes nothing"));
        }
        if delta.is_positive() {
            return Ok(Reply::AllocationOpened { giver, applied: None });
        }
        let taken = delta.abs();
        let available = match &mut self.role {
            Role::Customer { credit, .. } => credit.available(),
            Role::SecondLevelReseller { pool, .. } => pool.remaining(),
            _ => unreachable!("receiver kind checked above"),
        };
        if available < taken {
            return Err(Rejection::OverRepossessable { uin, available, asked: taken });
        }
        match &mut self.role {
            Role::Customer { credit, .. } => credit.total -= taken,
            Role::SecondLevelReseller { pool, .. } => pool.total -= taken,
            _ => unreachable!("receiver kind checked above"),
        }
        let applied = self.record(delta, record);
        Ok(Reply::AllocationOpened { giver, applied: Some(applied) })
    }

    /// Appends a history record of a credit move that was just applied.
    fn record(&mut self, amount: Money, info: RecordInfo) -> CreditLine {
        let view_total;
        let view_available;
        match &self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => {
                view_total = credit.total;
                view_available = credit.available();
            }
            Role::SecondLevelReseller { pool, .. } => {
                view_total = pool.total;
                view_available = pool.remaining();
            }
            Role::Customer { credit, .. } => {
                view_total = credit.total;
                view_available = credit.available();
            }
        }
        let history = &mut self.extra_mut().history;
        if history.len() == Self::HISTORY_MAX {
            history.remove(0);
        }
        history.push(AllocationRecord {
            time: info.time,
            operator: info.operator,
            amount,
            total_after: view_total,
            available_after: view_available,
            remark: info.remark,
        });
        CreditLine { total: view_total, available: view_available }
    }

    fn partner_credit_mut(&mut self) -> Result<&mut PartnerCredit, Rejection> {
        match &mut self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => Ok(credit),
            _ => Err(wrong_kind(self.uin, KindRequired::ChargeablePartner)),
        }
    }

    /// The counters a commit or release moves, for either side.
    fn spendable_mut(&mut self) -> Result<(&mut Money, &mut Money), Rejection> {
        match &mut self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => {
                Ok((&mut credit.reserved, &mut credit.used))
            }
            Role::Customer { credit, .. } => Ok((&mut credit.reserved, &mut credit.used)),
            Role::SecondLevelReseller { .. } => Err(wrong_kind(self.uin, KindRequired::ChargeablePartner)),
        }
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

    pub fn view(&self) -> AccountView {
        AccountView {
            uin: self.uin,
            role: self.role.clone(),
            created: self.created,
            profile: self.profile().cloned().unwrap_or_default(),
            children_count: self.children().len(),
        }
    }

    /// The invariants of PRODUCT.md section 3 that one account can check on its own.
    pub fn check_invariants(&self) {
        let uin = self.uin;
        match &self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => {
                assert!(!credit.used.is_negative(), "{uin}: used < 0");
                assert!(!credit.reserved.is_negative(), "{uin}: reserved < 0");
                assert!(!credit.allocated.is_negative(), "{uin}: allocated < 0");
                assert!(!credit.available().is_negative(), "{uin}: available < 0");
            }
            Role::SecondLevelReseller { pool, .. } => {
                assert!(!pool.allocated.is_negative(), "{uin}: pool allocated < 0");
                assert!(!pool.remaining().is_negative(), "{uin}: pool remaining < 0");
            }
            Role::Customer { credit, .. } => {
                assert!(!credit.used.is_negative(), "{uin}: used < 0");
                assert!(!credit.reserved.is_negative(), "{uin}: reserved < 0");
                assert!(!credit.frozen.is_negative(), "{uin}: frozen < 0");
                assert!(!credit.available().is_negative(), "{uin}: available < 0");
            }
        }
    }
}

fn wrong_kind(uin: Uin, required: KindRequired) -> Rejection {
    Rejection::WrongKind { uin, required }
}

fn not_authorized(caller: Caller, target: Uin) -> Rejection {
    Rejection::NotAuthorized { caller: caller.to_string(), target }
}

#[cfg(test)]
#[path = "account_tests.rs"]
mod tests;
