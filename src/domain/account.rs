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

use std::sync::Arc;

use compact_str::CompactString;

use super::bill::{BillHistory, Bills};
use super::ids::{Caller, Month, PurchaseId, Timestamp, Uin, VoucherId};
use super::money::Money;
use super::rejection::{KindRequired, Rejection};
use super::voucher::{Deductions, PayMode, UsageInfo, Voucher, VoucherBook, VoucherKind};
use super::warning::{self, Crossings, Threshold, WarningState};

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

/// The parts of an account that a plain purchase does not read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

/// A partner's pool for customer vouchers (QueryVoucherPool).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// What a purchase buys, for voucher scopes: absent for the plain purchase (no product code,
/// prepaid), so that it allocates nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Goods {
    pub product: Option<CompactString>,
    pub pay: PayMode,
}

impl Goods {
    pub fn product(goods: &Option<Arc<Goods>>) -> Option<&str> {
        goods.as_deref().and_then(|goods| goods.product.as_deref())
    }

    pub fn pay(goods: &Option<Arc<Goods>>) -> PayMode {
        goods.as_deref().map_or(PayMode::Prepaid, |goods| goods.pay)
    }
}

/// What a commit records on the vouchers a purchase deducted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub deductions: Deductions,
    pub purchase: PurchaseId,
    pub goods: Option<Arc<Goods>>,
    pub time: Timestamp,
    pub customer: Uin,
}

/// A message to one account actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Phase one of a purchase on the customer side: hold what its vouchers cover of
    /// `amount`, then the rest (its charge) on its available credit.
    ReserveCustomer {
        caller: Caller,
        amount: Money,
        now: Timestamp,
        goods: Option<Arc<Goods>>,
    },
    /// Phase one on the charged partner: hold what its vouchers cover of `amount` for
    /// `customer`, then the rest on its available credit, or charge it at once (booked to
    /// `month`) when `commit` is set (the one-shot purchase needs no second phase on the
    /// partner's credit).
    ReservePartner {
        amount: Money,
        commit: bool,
        customer: Uin,
        now: Timestamp,
        month: Month,
        goods: Option<Arc<Goods>>,
    },
    /// Phase two: the held charge becomes used, booked to `month`; the held voucher
    /// deductions become final.
    Commit {
        amount: Money,
        month: Month,
        vouchers: Option<Box<Settlement>>,
    },
    /// At an escrowed partner's home: hold `amount` of its available credit for a slice (no
    /// voucher is involved).
    HoldEscrow {
        amount: Money,
    },
    /// Makes voucher deductions final (after a one-shot partner charge).
    SettleVouchers(Box<Settlement>),
    /// Phase two of a cancel or an expiry: the held charge and deductions are released.
    Release {
        amount: Money,
        vouchers: Option<Box<Deductions>>,
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
    /// ActivatePostpaid: freeze `amount` of a customer's available credit for a resource.
    Freeze {
        caller: Caller,
        resource: Box<str>,
        amount: Money,
    },
    /// TerminatePostpaid: release what a resource froze.
    Unfreeze {
        caller: Caller,
        resource: Box<str>,
    },
    /// ConfirmBill (a customer's, by its parent) or SettlePartnerBill (a partner's, by the
    /// operator): the month's charges return to available credit. `final_from` is when the
    /// month's bill became final.
    ConfirmBill {
        caller: Caller,
        month: Month,
        now: Timestamp,
        final_from: Timestamp,
    },
    /// The operator adds to (or, negative, takes from) a partner's voucher pool.
    GrantVoucherQuota {
        delta: Money,
    },
    /// Takes a customer voucher's amount from the issuer's pool.
    DrawVoucherQuota {
        amount: Money,
    },
    /// Gives back what `DrawVoucherQuota` took, when the voucher could not be issued.
    ReturnVoucherQuota {
        amount: Money,
    },
    /// Checks that `caller` may issue a voucher to this customer; answers its parent.
    VoucherIssuer {
        caller: Caller,
    },
    /// Adds a voucher to the account's book (checked by the engine).
    AddVoucher(Box<Voucher>),
    /// Approves a pending partner voucher; a trial voucher answers its customer voucher.
    ApproveVoucher {
        id: VoucherId,
        now: Timestamp,
    },
    /// Approves the customer voucher of an approved trial voucher (refused if invalidated).
    ApproveAssociated {
        id: VoucherId,
        now: Timestamp,
    },
    /// WithdrawCustomerVoucher, by the issuer (or the operator).
    WithdrawVoucher {
        caller: Caller,
        id: VoucherId,
        now: Timestamp,
    },
    /// InvalidatePartnerVoucher, by the owner (or the operator); answers the associated
    /// customer voucher to withdraw.
    InvalidateVoucher {
        caller: Caller,
        id: VoucherId,
    },
    /// Withdraws a trial customer voucher whose partner voucher was invalidated.
    InvalidateAssociated {
        id: VoucherId,
    },
    /// The trial-voucher priority switch (on a partner, and copied to its customers).
    SetTrialFirst {
        enabled: bool,
    },
    /// SetCreditWarning on a customer: by its parent (the partner's threshold) or itself
    /// (its own); `None` removes it.
    SetWarningThreshold {
        caller: Caller,
        threshold: Option<Threshold>,
    },
    Snapshot,
    /// Everything about vouchers, bills and frozen credit a query shows: the vouchers
    /// (unless `vouchers` is false) with the usage records `usage` asks for.
    Details {
        now: Timestamp,
        vouchers: bool,
        usage: UsageOf,
    },
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
    /// A customer reservation: the partner to reserve on next, what is left, and what its
    /// vouchers cover (the charge is the rest).
    CustomerReserved {
        charged: Uin,
        available: Money,
        deductions: Deductions,
    },
    /// A partner reservation or charge: what is left, and what its vouchers cover.
    PartnerReserved {
        available: Money,
        deductions: Deductions,
    },
    /// Available credit after a reserve, commit or release.
    Available(Money),
    /// An amount: credit returned by a bill confirmation, a pool's total, ...
    Amount(Money),
    /// A partner voucher approved: the customer voucher that comes with a trial one.
    Approved(Option<VoucherId>),
    /// A partner voucher invalidated: its customer voucher, to withdraw.
    Invalidated(Option<VoucherId>),
    /// The customer's parent (who may issue vouchers to it).
    Issuer(Uin),
    Details(Box<AccountDetails>),
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

/// Which vouchers' usage records a [`Command::Details`] copies: a voucher may hold up to
/// [`Voucher::USAGE_MAX`] of them, and lists do not show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageOf {
    None,
    One(VoucherId),
    All,
}

/// Vouchers, bills and frozen credit of an account, for queries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
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

    /// The vouchers it owns.
    pub fn vouchers(&self) -> impl Iterator<Item = &Voucher> {
        rules_ref(&self.extra).into_iter().flat_map(|rules| rules.vouchers.iter())
    }

    fn rules_mut(&mut self) -> &mut Rules {
        rules_of(&mut self.extra)
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    pub fn kind(&self) -> AccountKind {
        self.role.kind()
    }

    /// At most this many postpaid resources may be active on one customer.
    pub const FROZEN_MAX: usize = 1_000;

    /// Applies one command. A rejection leaves the account exactly as it was.
    pub fn handle(&mut self, command: Command) -> Result<Reply, Rejection> {
        self.handle_noting(command).0
    }

    /// Like [`Account::handle`], and answers the credit warnings the command crossed (see
    /// [`warning`]); the runtime turns them into events.
    pub fn handle_noting(&mut self, command: Command) -> (Result<Reply, Rejection>, Crossings) {
        let watch = matches!(self.role, Role::Customer { .. }) && command.may_move_available();
        let reply = self.apply(command);
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

    /// The warning thresholds of a customer: its partner's for it, and its own.
    pub fn thresholds(&self) -> (Option<Threshold>, Option<Threshold>) {
        match rules_ref(&self.extra) {
            Some(rules) => (rules.partner_threshold, rules.own_threshold),
            None => (None, None),
        }
    }

    fn apply(&mut self, command: Command) -> Result<Reply, Rejection> {
        let uin = self.uin;
        match command {
            Command::ReserveCustomer { caller, amount, now, goods } => {
                let Role::Customer { charged, credit, suspended, trial_first, .. } = &mut self.role else {
                    return Err(wrong_kind(uin, KindRequired::Customer));
                };
                if !(caller == Caller::Operator || caller.is(uin)) {
                    return Err(not_authorized(caller, uin));
                }
                if *suspended {
                    return Err(Rejection::Suspended(uin));
                }
                let deductions = hold_vouchers(&mut self.extra, amount, &goods, uin, now, *trial_first);
                let charge = deductions.charge_of(amount);
                let available = credit.available();
                if available < charge {
                    release_vouchers(&mut self.extra, &deductions);
                    return Err(Rejection::InsufficientCustomerCredit { uin, available, needed: charge });
                }
                credit.reserved += charge;
                Ok(Reply::CustomerReserved { charged: *charged, available: available - charge, deductions })
            }
            Command::ReservePartner { amount, commit, customer, now, month, goods } => {
                let (Role::Distributor { credit } | Role::Reseller { credit }) = &mut self.role else {
                    return Err(wrong_kind(uin, KindRequired::ChargeablePartner));
                };
                let trial_first = !rules_ref(&self.extra).is_some_and(|rules| rules.trial_first_off);
                let deductions = hold_vouchers(&mut self.extra, amount, &goods, customer, now, trial_first);
                let charge = deductions.charge_of(amount);
                let available = credit.available();
                if available < charge {
                    release_vouchers(&mut self.extra, &deductions);
                    return Err(Rejection::InsufficientPartnerCredit { uin, available, needed: charge });
                }
                if commit {
                    let rules = rules_of(&mut self.extra);
                    Bills { current: &mut rules.bill_month, history: &mut rules.bills }.book(
                        month,
                        credit.used,
                        charge,
                    );
                    credit.used += charge;
                } else {
                    credit.reserved += charge;
                }
                Ok(Reply::PartnerReserved { available: available - charge, deductions })
            }
            Command::Commit { amount, month, vouchers } => {
                match &mut self.role {
                    Role::Distributor { credit } | Role::Reseller { credit } => {
                        assert!(
                            credit.reserved >= amount,
                            "commit of {amount} on {uin} exceeds its reserved"
                        );
                        credit.reserved -= amount;
                        let rules = rules_of(&mut self.extra);
                        Bills { current: &mut rules.bill_month, history: &mut rules.bills }.book(
                            month,
                            credit.used,
                            amount,
                        );
                        credit.used += amount;
                    }
                    Role::Customer { credit, bill_month, .. } => {
                        assert!(
                            credit.reserved >= amount,
                            "commit of {amount} on {uin} exceeds its reserved"
                        );
                        credit.reserved -= amount;
                        // Only a month other than the current one needs the out-of-line part.
                        let used = credit.used;
                        with_bill_history(&mut self.extra, |history| {
                            Bills { current: bill_month, history }.book(month, used, amount)
                        });
                        credit.used += amount;
                    }
                    Role::SecondLevelReseller { .. } => {
                        return Err(wrong_kind(uin, KindRequired::ChargeablePartner))
                    }
                }
                if let Some(settlement) = vouchers {
                    settle_vouchers(&mut self.extra, &settlement);
                }
                Ok(Reply::Done)
            }
            Command::HoldEscrow { amount } => {
                let credit = self.partner_credit_mut()?;
                let available = credit.available();
                if available < amount {
                    return Err(Rejection::InsufficientPartnerCredit { uin, available, needed: amount });
                }
                credit.reserved += amount;
                Ok(Reply::Available(available - amount))
            }
            Command::SettleVouchers(settlement) => {
                settle_vouchers(&mut self.extra, &settlement);
                Ok(Reply::Done)
            }
            Command::Release { amount, vouchers } => {
                let (reserved, _) = self.spendable_mut()?;
                assert!(*reserved >= amount, "release of {amount} on {uin} exceeds its reserved");
                *reserved -= amount;
                if let Some(deductions) = vouchers {
                    release_vouchers(&mut self.extra, &deductions);
                }
                Ok(Reply::Done)
            }
            Command::Freeze { caller, resource, amount } => {
                let Role::Customer { parent, credit, .. } = &mut self.role else {
                    return Err(wrong_kind(uin, KindRequired::Customer));
                };
                if !(caller == Caller::Operator || caller.is(uin) || caller.is(*parent)) {
                    return Err(not_authorized(caller, uin));
                }
                if amount.is_negative() {
                    return Err(Rejection::InvalidAmount(amount, "a frozen amount is not negative"));
                }
                let frozen = &rules_ref(&self.extra).map_or(&[][..], |rules| &rules.frozen[..]);
                if frozen.iter().any(|(id, _)| *id == resource) {
                    return Err(Rejection::ResourceTaken(resource.into()));
                }
                if frozen.len() >= Self::FROZEN_MAX {
                    return Err(Rejection::TooMany {
                        what: "active postpaid resources of one customer",
                        limit: Self::FROZEN_MAX,
                    });
                }
                let available = credit.available();
                if available < amount {
                    return Err(Rejection::InsufficientCustomerCredit { uin, available, needed: amount });
                }
                credit.frozen += amount;
                let frozen = &mut rules_of(&mut self.extra).frozen;
                frozen.push((resource, amount));
                check_frozen(uin, frozen, credit.frozen);
                Ok(Reply::Available(available - amount))
            }
            Command::Unfreeze { caller, resource } => {
                let Role::Customer { parent, credit, .. } = &mut self.role else {
                    return Err(wrong_kind(uin, KindRequired::Customer));
                };
                if !(caller == Caller::Operator || caller.is(uin) || caller.is(*parent)) {
                    return Err(not_authorized(caller, uin));
                }
                let frozen = match rules_opt_mut(&mut self.extra) {
                    Some(rules) => &mut rules.frozen,
                    None => return Err(Rejection::UnknownResource(resource.into())),
                };
                let Some(position) = frozen.iter().position(|(id, _)| *id == resource) else {
                    return Err(Rejection::UnknownResource(resource.into()));
                };
                let (_, amount) = frozen.swap_remove(position);
                credit.frozen -= amount;
                check_frozen(uin, frozen, credit.frozen);
                Ok(Reply::Available(credit.available()))
            }
            Command::ConfirmBill { caller, month, now, final_from } => {
                let returned = match &mut self.role {
                    Role::Customer { parent, credit, bill_month, .. } => {
                        if !(caller == Caller::Operator || caller.is(*parent)) {
                            return Err(not_authorized(caller, uin));
                        }
                        let used = credit.used;
                        let returned = with_bill_history(&mut self.extra, |history| {
                            Bills { current: bill_month, history }.confirm(uin, month, used, now, final_from)
                        })?;
                        credit.used -= returned;
                        returned
                    }
                    Role::Distributor { credit } | Role::Reseller { credit } => {
                        if caller != Caller::Operator {
                            return Err(Rejection::OperatorOnly("settle a partner's bill"));
                        }
                        // A partner never charged has no bill state: it refuses as an empty one
                        // would (not final yet, or no bill), creating nothing.
                        let (mut no_month, mut no_history) = (None, None);
                        let mut bills = match rules_opt_mut(&mut self.extra) {
                            Some(rules) => {
                                Bills { current: &mut rules.bill_month, history: &mut rules.bills }
                            }
                            None => Bills { current: &mut no_month, history: &mut no_history },
                        };
                        let returned = bills.confirm(uin, month, credit.used, now, final_from)?;
                        credit.used -= returned;
                        returned
                    }
                    Role::SecondLevelReseller { .. } => {
                        return Err(wrong_kind(uin, KindRequired::Customer));
                    }
                };
                Ok(Reply::Amount(returned))
            }
            Command::GrantVoucherQuota { delta } => {
                // Customer vouchers are issued by a customer's parent: a reseller or a
                // second-level reseller.
                if !matches!(self.role, Role::Reseller { .. } | Role::SecondLevelReseller { .. }) {
                    return Err(wrong_kind(uin, KindRequired::CustomerParent));
                }
                if delta.is_zero() {
                    return Err(Rejection::InvalidAmount(
                        delta,
                        "a voucher quota grant of 0 changes nothing",
                    ));
                }
                let remaining = self.voucher_pool().remaining();
                if delta.is_negative() && remaining < delta.abs() {
                    return Err(Rejection::InsufficientVoucherQuota { uin, remaining, asked: delta.abs() });
                }
                let pool = &mut self.rules_mut().voucher_pool;
                pool.total += delta;
                Ok(Reply::Amount(pool.total))
            }
            Command::DrawVoucherQuota { amount } => {
                if !matches!(self.role, Role::Reseller { .. } | Role::SecondLevelReseller { .. }) {
                    return Err(wrong_kind(uin, KindRequired::CustomerParent));
                }
                let remaining = self.voucher_pool().remaining();
                if remaining < amount {
                    return Err(Rejection::InsufficientVoucherQuota { uin, remaining, asked: amount });
                }
                let pool = &mut self.rules_mut().voucher_pool;
                pool.issued += amount;
                pool.issued_count += 1;
                Ok(Reply::Done)
            }
            Command::ReturnVoucherQuota { amount } => {
                let pool = &mut self.rules_mut().voucher_pool;
                assert!(pool.issued >= amount, "return of {amount} voucher quota on {uin} exceeds issued");
                pool.issued -= amount;
                pool.issued_count -= 1;
                Ok(Reply::Done)
            }
            Command::VoucherIssuer { caller } => {
                let Role::Customer { parent, .. } = self.role else {
                    return Err(wrong_kind(uin, KindRequired::Customer));
                };
                if !(caller == Caller::Operator || caller.is(parent)) {
                    return Err(not_authorized(caller, uin));
                }
                Ok(Reply::Issuer(parent))
            }
            Command::AddVoucher(voucher) => {
                self.rules_mut().vouchers.add(*voucher)?;
                Ok(Reply::Done)
            }
            Command::ApproveVoucher { id, now } => {
                Ok(Reply::Approved(self.vouchers_mut(id)?.approve(id, now)?))
            }
            Command::ApproveAssociated { id, now } => {
                self.vouchers_mut(id)?.approve_associated(id, now)?;
                Ok(Reply::Done)
            }
            Command::WithdrawVoucher { caller, id, now } => {
                let Role::Customer { parent, .. } = self.role else {
                    // A partner's voucher: its owner learns why it cannot be withdrawn.
                    if !(caller == Caller::Operator || caller.is(uin)) {
                        return Err(not_authorized(caller, uin));
                    }
                    self.vouchers_mut(id)?;
                    return Err(Rejection::VoucherUnavailable {
                        id,
                        reason: "is a partner voucher: invalidate it instead",
                    });
                };
                let vouchers = self.vouchers_mut(id)?;
                let issuer = match vouchers.get(id).map(|voucher| voucher.kind) {
                    Some(VoucherKind::CustomerOffer { issuer }) => Some(issuer),
                    _ => None,
                };
                let allowed = caller == Caller::Operator
                    || caller.is(parent)
                    || issuer.is_some_and(|issuer| caller.is(issuer));
                if !allowed {
                    return Err(not_authorized(caller, uin));
                }
                vouchers.withdraw(id, now)?;
                Ok(Reply::Done)
            }
            Command::InvalidateVoucher { caller, id } => {
                if !(caller == Caller::Operator || caller.is(uin)) {
                    return Err(not_authorized(caller, uin));
                }
                let associated = self.vouchers_mut(id)?.invalidate(id)?;
                Ok(Reply::Invalidated(associated))
            }
            Command::InvalidateAssociated { id } => {
                self.vouchers_mut(id)?.invalidate_associated(id)?;
                Ok(Reply::Done)
            }
            Command::SetTrialFirst { enabled } => {
                match &mut self.role {
                    Role::Customer { trial_first, .. } => *trial_first = enabled,
                    Role::Distributor { .. } | Role::Reseller { .. } => {
                        self.rules_mut().trial_first_off = !enabled
                    }
                    Role::SecondLevelReseller { .. } => {
                        return Err(wrong_kind(uin, KindRequired::ChargeablePartner))
                    }
                }
                Ok(Reply::Done)
            }
            Command::SetWarningThreshold { caller, threshold } => {
                let Role::Customer { parent, .. } = self.role else {
                    return Err(wrong_kind(uin, KindRequired::Customer));
                };
                let own = caller.is(uin);
                if !(own || caller == Caller::Operator || caller.is(parent)) {
                    return Err(not_authorized(caller, uin));
                }
                // Removing what was never set stores nothing.
                if threshold.is_some() || rules_ref(&self.extra).is_some() {
                    let rules = self.rules_mut();
                    let slot = if own { &mut rules.own_threshold } else { &mut rules.partner_threshold };
                    *slot = threshold;
                }
                Ok(Reply::Done)
            }
            Command::Details { now, vouchers, usage } => {
                Ok(Reply::Details(Box::new(self.details(now, vouchers, usage))))
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

    fn voucher_pool(&self) -> VoucherPool {
        rules_ref(&self.extra).map(|rules| rules.voucher_pool).unwrap_or_default()
    }

    /// The voucher book that holds `id`, or `UnknownVoucher`.
    fn vouchers_mut(&mut self, id: VoucherId) -> Result<&mut VoucherBook, Rejection> {
        match rules_opt_mut(&mut self.extra) {
            Some(rules) if rules.vouchers.get(id).is_some() => Ok(&mut rules.vouchers),
            _ => Err(Rejection::UnknownVoucher(id)),
        }
    }

    pub fn details(&self, now: Timestamp, vouchers: bool, usage: UsageOf) -> AccountDetails {
        let trial_first = match &self.role {
            Role::Customer { trial_first, .. } => *trial_first,
            _ => !rules_ref(&self.extra).is_some_and(|rules| rules.trial_first_off),
        };
        let Some(extra) = rules_ref(&self.extra) else {
            let mut details = AccountDetails { trial_first, ..AccountDetails::default() };
            if let Role::Customer { credit, bill_month: Some(month), .. } = &self.role {
                details.open_bills = vec![(*month, credit.used)];
            }
            return details;
        };
        let (mut current, used) = match &self.role {
            Role::Customer { credit, bill_month, .. } => (*bill_month, credit.used),
            Role::Distributor { credit } | Role::Reseller { credit } => (extra.bill_month, credit.used),
            Role::SecondLevelReseller { .. } => (None, Money::ZERO),
        };
        let mut history = extra.bills.clone();
        AccountDetails {
            vouchers: if vouchers {
                let copy = |voucher: &Voucher| {
                    if usage == UsageOf::All || usage == UsageOf::One(voucher.id) {
                        voucher.clone()
                    } else {
                        voucher.without_usage()
                    }
                };
                extra.vouchers.iter().map(copy).collect()
            } else {
                Vec::new()
            },
            vouchers_remaining: extra.vouchers.remaining_total(now),
            voucher_pool: extra.voucher_pool,
            trial_first,
            frozen: extra.frozen.clone(),
            open_bills: Bills { current: &mut current, history: &mut history }.open_months(used),
            partner_threshold: extra.partner_threshold,
            own_threshold: extra.own_threshold,
        }
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

impl Command {
    /// Whether the command reads or changes a partner's credit counters. A sharded runtime
    /// brings an escrowed partner's slices home before such a command only.
    pub fn touches_credit(&self) -> bool {
        !matches!(
            self,
            Command::Details { .. }
                | Command::Children
                | Command::History { .. }
                | Command::AdoptChild { .. }
                | Command::DisownChild { .. }
                | Command::SetTrialFirst { .. }
                | Command::AddVoucher(_)
                | Command::ApproveVoucher { .. }
                | Command::InvalidateVoucher { .. }
                | Command::SetRemark { .. }
        )
    }

    /// Whether the command may change a customer's total or available credit (and so cross
    /// a warning threshold). A purchase is judged at its commit, not at its reservation, so
    /// that a purchase the partner refuses (its hold released at once) warns nobody: the
    /// reservation already took the charge off available credit, so the commit sees it.
    fn may_move_available(&self) -> bool {
        matches!(
            self,
            Command::Commit { .. }
                | Command::Release { .. }
                | Command::OpenAllocation { .. }
                | Command::CloseAllocation { .. }
                | Command::Freeze { .. }
                | Command::Unfreeze { .. }
                | Command::ConfirmBill { .. }
                | Command::SetWarningThreshold { .. }
        )
    }
}

/// A customer's `frozen` is the sum of its resources' (checked where they change, not on
/// every command: purchases never touch them).
fn check_frozen(uin: Uin, resources: &[(Box<str>, Money)], frozen: Money) {
    let sum: Money = resources.iter().map(|(_, amount)| *amount).sum();
    assert_eq!(sum, frozen, "{uin}: frozen differs from its resources");
}

/// Holds what an account's vouchers cover of `amount`; nothing (and no allocation) for an
/// account without vouchers.
fn hold_vouchers(
    extra: &mut Option<Box<Extra>>,
    amount: Money,
    goods: &Option<Arc<Goods>>,
    customer: Uin,
    now: Timestamp,
    trial_first: bool,
) -> Deductions {
    match rules_opt_mut(extra) {
        Some(rules) if !rules.vouchers.is_empty() => {
            rules.vouchers.hold(amount, Goods::product(goods), Goods::pay(goods), customer, now, trial_first)
        }
        _ => Deductions::default(),
    }
}

fn release_vouchers(extra: &mut Option<Box<Extra>>, deductions: &Deductions) {
    if deductions.is_empty() {
        return;
    }
    rules_opt_mut(extra).expect("deductions come from a voucher book").vouchers.release(deductions);
}

fn settle_vouchers(extra: &mut Option<Box<Extra>>, settlement: &Settlement) {
    if settlement.deductions.is_empty() {
        return;
    }
    let info = UsageInfo {
        purchase: &settlement.purchase,
        pay: Goods::pay(&settlement.goods),
        product: Goods::product(&settlement.goods),
        time: settlement.time,
        customer: settlement.customer,
    };
    rules_opt_mut(extra)
        .expect("deductions come from a voucher book")
        .vouchers
        .settle(&settlement.deductions, &info);
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
