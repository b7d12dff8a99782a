//! Accounts: the state one actor owns, and the commands that change it.
//!
//! Each UIN is one [`Account`]. Its [`Role`] holds the credit state of PRODUCT.md section 2
//! exactly: a customer's `total`, `used`, `reserved`, `frozen`; a distributor's or
//! reseller's `total` (credit line), `allocated`, `used`, `reserved`; a second-level
//! reseller's pool. [`Account::handle`] applies one [`Command`] and answers with a
//! [`Reply`] or a [`Rejection`]; the runtime decides which thread runs it.
//!
//! This file holds the account's types, its invariants and the table of commands; each
//! command is a type with its own answer (see [`Request`]), and its rules live in the file of
//! its concept: `purchase` (the steps of the purchase protocol), `allocation`, `vouchers`,
//! `postpaid`, `bills`, `hierarchy` (children, suspension, remarks, warning thresholds) and
//! `queries`.
//!
//! Invariants, checked after every command (`debug_assert` in release builds would hide a
//! broken ledger, so these are plain asserts):
//! - every available credit and every counter is >= 0, except a partner's `allocable`,
//!   which a credit-line reduction may take below zero;
//! - a refused command changes nothing;
//! - a command that authorizes its caller does so before it looks at the account's kind or
//!   state (see [`super::rejection`] for the order of refusals).

use serde::{Deserialize, Serialize};
mod allocation;
mod bills;
mod hierarchy;
mod postpaid;
mod purchase;
mod queries;
mod vouchers;

pub use allocation::{
    require_change, AllocationOpened, AllocationRecord, CloseAllocation, CreditLine, GrantCredit, History,
    HistoryPage, OpenAllocation, RecordInfo, ReturnAllocable, TakeAllocable, ZERO_ALLOCATION,
    ZERO_CREDIT_CHANGE,
};
pub use bills::ConfirmBill;
pub use hierarchy::{AdoptChild, Children, DisownChild, SetRemark, SetSuspension, SetWarningThreshold};
pub use postpaid::{Freeze, Unfreeze};
pub use purchase::{
    Commit, CustomerReserved, Goods, HoldEscrow, PartnerReserved, Release, ReserveCustomer, ReservePartner,
    SettleVouchers, Settlement,
};
pub use queries::{AccountDetails, AccountView, Details, Snapshot, UsageOf};
pub use vouchers::{
    AddVoucher, ApproveAssociated, ApproveVoucher, DrawVoucherQuota, GrantVoucherQuota, InvalidateAssociated,
    InvalidateVoucher, ReturnVoucherQuota, SetTrialFirst, VoucherIssuer, VoucherPool, WithdrawVoucher,
};

use super::access;
use super::bill::{BillHistory, Bills};
use super::ids::{Month, Timestamp, Uin, VoucherId};
use super::money::Money;
use super::rejection::{KindRequired, Rejection};
use super::voucher::{Voucher, VoucherBook};
use super::warning::{self, Crossings, Threshold, WarningState};

/// The kinds of UIN in the partner programme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
        /// Which credit warnings are currently crossed (see [`warning`]).
        warnings: WarningState,
        /// The charged partner's trial-voucher priority switch, copied here so that a
        /// purchase needs no lookup (on by default).
        trial_first: bool,
        /// The bill month of its latest charge (see [`super::bill`]).
        bill_month: Option<Month>,
    },
}

impl Role {
    /// A customer with no warnings crossed, trial priority on and no charges yet.
    pub fn customer(parent: Uin, charged: Uin, credit: CustomerCredit) -> Role {
        Role::Customer {
            parent,
            charged,
            credit,
            suspended: false,
            warnings: WarningState::default(),
            trial_first: true,
            bill_month: None,
        }
    }

    pub fn kind(&self) -> AccountKind {
        match self {
            Role::Distributor { .. } => AccountKind::Distributor,
            Role::Reseller { .. } => AccountKind::Reseller,
            Role::SecondLevelReseller { .. } => AccountKind::SecondLevelReseller,
            Role::Customer { .. } => AccountKind::Customer,
        }
    }

    /// The parent: the distributor of a second-level reseller, the reseller or second-level
    /// reseller of a customer.
    pub fn parent(&self) -> Option<Uin> {
        match self {
            Role::SecondLevelReseller { distributor, .. } => Some(*distributor),
            Role::Customer { parent, .. } => Some(*parent),
            Role::Distributor { .. } | Role::Reseller { .. } => None,
        }
    }

    /// The partner a customer's purchases charge.
    pub fn charged(&self) -> Option<Uin> {
        match self {
            Role::Customer { charged, .. } => Some(*charged),
            _ => None,
        }
    }
}

/// Descriptive fields that no rule reads. Boxed so that accounts without them (generated
/// worlds) pay one pointer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: Option<Box<str>>,
    pub email: Option<Box<str>>,
    pub remark: Option<Box<str>>,
}

/// The state of one UIN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub uin: Uin,
    pub role: Role,
    /// When the account was created or bound to its parent (AssociationTime upstream).
    pub created: Timestamp,
    /// What most accounts (generated or imported customers) never have, boxed so that they
    /// pay one pointer for it.
    extra: Option<Box<Extra>>,
}

/// The parts of an account that a plain purchase does not read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Extra {
    profile: Profile,
    /// Direct children: customers of a reseller or second-level reseller, second-level
    /// resellers of a distributor.
    children: Vec<Uin>,
    /// Credit moves received by this account, oldest first, at most
    /// [`Account::HISTORY_MAX`].
    history: Vec<AllocationRecord>,
    /// The state of vouchers, frozen credit, bills and warning thresholds; boxed again so
    /// that the partners' `Extra` (they all have children) stays small.
    rules: Option<Box<Rules>>,
}

/// The parts of an account that vouchers, frozen credit, bills and warnings use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Rules {
    /// Vouchers it owns: customer vouchers of a customer, partner vouchers of a partner.
    vouchers: VoucherBook,
    /// A partner's pool for issuing customer vouchers.
    voucher_pool: VoucherPool,
    /// A partner's trial-voucher priority switch is off (customers keep a copy in their role).
    trial_first_off: bool,
    /// Active postpaid resources of a customer and the credit each freezes.
    frozen: Vec<(Box<str>, Money)>,
    /// Bill months other than the current one.
    bills: Option<Box<BillHistory>>,
    /// A partner's current bill month (customers keep theirs in their role).
    bill_month: Option<Month>,
    /// The warning threshold a customer's partner set for it (events to the partner).
    partner_threshold: Option<Threshold>,
    /// The warning threshold a customer set for itself (events to the customer).
    own_threshold: Option<Threshold>,
}

fn rules_ref(extra: &Option<Box<Extra>>) -> Option<&Rules> {
    extra.as_deref().and_then(|extra| extra.rules.as_deref())
}

fn rules_opt_mut(extra: &mut Option<Box<Extra>>) -> Option<&mut Rules> {
    extra.as_deref_mut().and_then(|extra| extra.rules.as_deref_mut())
}

/// Runs `f` on a customer's out-of-line bill history: a history `f` creates (a month other
/// than the current one, a confirmation) is kept; none is created otherwise.
fn with_bill_history<R>(
    extra: &mut Option<Box<Extra>>,
    f: impl FnOnce(&mut Option<Box<BillHistory>>) -> R,
) -> R {
    if let Some(rules) = rules_opt_mut(extra) {
        return f(&mut rules.bills);
    }
    let mut created = None;
    let result = f(&mut created);
    if created.is_some() {
        rules_of(extra).bills = created;
    }
    result
}

fn rules_of(extra: &mut Option<Box<Extra>>) -> &mut Rules {
    extra.get_or_insert_with(Default::default).rules.get_or_insert_with(Default::default)
}

/// What a command does to an account's credit counters. Declared with every command in the
/// table below, so that the two things that depend on it read one allow-list: the sharded
/// runtime brings an escrowed partner's slices home before a call that is not `Untouched`,
/// and a customer's warnings are evaluated after a command that `Moved` its credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Credit {
    /// Neither reads nor changes them: profiles, children, history, voucher books and pools.
    Untouched,
    /// Reads them and changes nothing.
    Read,
    /// Holds part of the available credit for a purchase in progress. Warnings wait for the
    /// purchase's commit or release, so that a purchase its partner refuses warns nobody.
    Held,
    /// Changes total, used, reserved or frozen credit, or what warnings compare them with.
    Moved,
}

/// One command an account takes, with the answer it gives when it accepts. Implemented for
/// every command type by the table below; each command's rules are its `apply` method, in
/// the file of its concept.
pub trait Request: Into<Command> {
    /// What the account answers when it accepts the command.
    type Answer;
    /// What the command does to credit counters.
    const CREDIT: Credit;
    /// The answer inside `reply`, or `reply` back if it answers another command.
    fn answer(reply: Reply) -> Result<Self::Answer, Reply>;
}

/// Declares every command: its type, its answer and its [`Credit`]. [`Command`] (what a
/// runtime carries to an account) and [`Reply`] have one variant per command.
macro_rules! commands {
    ($($concept:literal: $($command:ident => $answer:ty, $credit:ident;)*)*) => {
        /// A message to one account actor: one of the command types of the files of this
        /// module, by concept.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Command {
            $($(#[doc = concat!("See [`", stringify!($command), "`] (", $concept, ").")] $command($command),)*)*
        }

        /// An account's answer to a command it accepted: one variant per command.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Reply {
            $($($command($answer),)*)*
        }

        $($(
            impl From<$command> for Command {
                fn from(command: $command) -> Command {
                    Command::$command(command)
                }
            }

            impl Request for $command {
                type Answer = $answer;
                const CREDIT: Credit = Credit::$credit;
                fn answer(reply: Reply) -> Result<$answer, Reply> {
                    match reply {
                        Reply::$command(answer) => Ok(answer),
                        other => Err(other),
                    }
                }
            }
        )*)*

        impl Command {
            /// What the command does to credit counters.
            pub fn credit(&self) -> Credit {
                match self {
                    $($(Command::$command(_) => Credit::$credit,)*)*
                }
            }

            fn apply(self, account: &mut Account) -> Result<Reply, Rejection> {
                match self {
                    $($(Command::$command(command) => command.apply(account).map(Reply::$command),)*)*
                }
            }
        }
    };
}

commands! {
    "purchase steps":
        ReserveCustomer => CustomerReserved, Held;
        ReservePartner => PartnerReserved, Held;
        Commit => (), Moved;
        Release => (), Moved;
        SettleVouchers => (), Untouched;
        HoldEscrow => Money, Held;
    "allocation":
        OpenAllocation => AllocationOpened, Moved;
        TakeAllocable => (), Moved;
        ReturnAllocable => (), Moved;
        CloseAllocation => CreditLine, Moved;
        GrantCredit => CreditLine, Moved;
        History => HistoryPage, Untouched;
    "vouchers":
        GrantVoucherQuota => Money, Untouched;
        DrawVoucherQuota => (), Untouched;
        ReturnVoucherQuota => (), Untouched;
        VoucherIssuer => Uin, Untouched;
        AddVoucher => (), Untouched;
        ApproveVoucher => Option<VoucherId>, Untouched;
        ApproveAssociated => (), Untouched;
        WithdrawVoucher => (), Untouched;
        InvalidateVoucher => Option<VoucherId>, Untouched;
        InvalidateAssociated => (), Untouched;
        SetTrialFirst => (), Untouched;
    "postpaid":
        Freeze => Money, Moved;
        Unfreeze => Money, Moved;
    "bills":
        ConfirmBill => Money, Moved;
    "hierarchy and settings":
        AdoptChild => Uin, Untouched;
        DisownChild => (), Untouched;
        SetSuspension => (), Untouched;
        SetRemark => (), Untouched;
        SetWarningThreshold => (), Moved;
    "queries":
        Snapshot => Box<AccountView>, Read;
        Details => Box<AccountDetails>, Read;
        Children => Vec<Uin>, Untouched;
}

impl Command {
    /// Whether the command only reads the account (a query, or a check that answers a
    /// UIN): it changes nothing even when accepted, so the journal skips it.
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Snapshot(_)
                | Command::Details(_)
                | Command::Children(_)
                | Command::History(_)
                | Command::VoucherIssuer(_)
        )
    }
}

impl Account {
    pub fn new(uin: Uin, role: Role, created: Timestamp) -> Account {
        Account { uin, role, created, extra: None }
    }

    pub fn kind(&self) -> AccountKind {
        self.role.kind()
    }

    /// The parent: the distributor of a second-level reseller, the reseller or second-level
    /// reseller of a customer.
    pub fn parent(&self) -> Option<Uin> {
        self.role.parent()
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

    /// Registers a child directly (imports); the actor way is [`AdoptChild`].
    pub fn add_child(&mut self, child: Uin) {
        self.extra_mut().children.push(child);
    }

    /// Credit moves received, oldest first.
    pub fn history(&self) -> &[AllocationRecord] {
        self.extra.as_ref().map_or(&[], |extra| &extra.history)
    }

    /// The postpaid resources that freeze some of its credit.
    pub fn frozen_resources(&self) -> impl Iterator<Item = &str> {
        rules_ref(&self.extra)
            .into_iter()
            .flat_map(|rules| rules.frozen.iter().map(|(resource, _)| &**resource))
    }

    /// The vouchers it owns.
    pub fn vouchers(&self) -> impl Iterator<Item = &Voucher> {
        rules_ref(&self.extra).into_iter().flat_map(|rules| rules.vouchers.iter())
    }

    /// The warning thresholds of a customer: its partner's for it, and its own.
    pub fn thresholds(&self) -> (Option<Threshold>, Option<Threshold>) {
        match rules_ref(&self.extra) {
            Some(rules) => (rules.partner_threshold, rules.own_threshold),
            None => (None, None),
        }
    }

    fn rules_mut(&mut self) -> &mut Rules {
        rules_of(&mut self.extra)
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// Applies one command. A rejection leaves the account exactly as it was.
    pub fn handle(&mut self, command: impl Into<Command>) -> Result<Reply, Rejection> {
        self.handle_noting(command.into()).0
    }

    /// Applies one command and answers it typed (for tests and single-threaded callers).
    pub fn ask<R: Request>(&mut self, command: R) -> Result<R::Answer, Rejection> {
        let reply = self.handle(command)?;
        Ok(R::answer(reply).unwrap_or_else(|other| panic!("{} answered {other:?}", self.uin)))
    }

    /// Like [`Account::handle`], and answers the credit warnings the command crossed (see
    /// [`warning`]); the runtime turns them into events.
    pub fn handle_noting(&mut self, command: Command) -> (Result<Reply, Rejection>, Crossings) {
        let watch = matches!(self.role, Role::Customer { .. }) && command.credit() == Credit::Moved;
        let reply = command.apply(self);
        self.check_invariants();
        let crossings = if watch && reply.is_ok() { self.evaluate_warnings() } else { Crossings::default() };
        (reply, crossings)
    }

    fn evaluate_warnings(&mut self) -> Crossings {
        let (partner, own) = self.thresholds();
        let Role::Customer { credit, warnings, .. } = &mut self.role else {
            return Crossings::default();
        };
        warning::evaluate(warnings, credit.total, credit.available(), partner.as_ref(), own.as_ref())
    }

    /// Books `charge` to the bill `month` and adds it to `used`: the one place a charge
    /// becomes used, on either side. Only a month other than a customer's current one needs
    /// the out-of-line part; a partner keeps its month there.
    fn book_charge(&mut self, month: Month, charge: Money) -> Result<(), Rejection> {
        match &mut self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => {
                let rules = rules_of(&mut self.extra);
                Bills { current: &mut rules.bill_month, history: &mut rules.bills }.book(
                    month,
                    credit.used,
                    charge,
                );
                credit.used += charge;
            }
            Role::Customer { credit, bill_month, .. } => {
                let used = credit.used;
                with_bill_history(&mut self.extra, |history| {
                    Bills { current: bill_month, history }.book(month, used, charge)
                });
                credit.used += charge;
            }
            Role::SecondLevelReseller { .. } => {
                return Err(wrong_kind(self.uin, KindRequired::ChargeablePartner));
            }
        }
        Ok(())
    }

    fn partner_credit_mut(&mut self) -> Result<&mut PartnerCredit, Rejection> {
        match &mut self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => Ok(credit),
            _ => Err(wrong_kind(self.uin, KindRequired::ChargeablePartner)),
        }
    }

    /// The reserved credit a commit or release moves, on either side.
    fn reserved_mut(&mut self) -> Result<&mut Money, Rejection> {
        match &mut self.role {
            Role::Distributor { credit } | Role::Reseller { credit } => Ok(&mut credit.reserved),
            Role::Customer { credit, .. } => Ok(&mut credit.reserved),
            Role::SecondLevelReseller { .. } => Err(wrong_kind(self.uin, KindRequired::ChargeablePartner)),
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
        if let Some(rules) = rules_ref(&self.extra) {
            let pool = &rules.voucher_pool;
            assert!(!pool.issued.is_negative(), "{uin}: voucher quota issued < 0");
            assert!(!pool.remaining().is_negative(), "{uin}: voucher quota remaining < 0");
        }
    }
}

fn wrong_kind(uin: Uin, required: KindRequired) -> Rejection {
    Rejection::WrongKind { uin, required }
}

#[cfg(test)]
mod tests;
