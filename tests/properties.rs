//! Model-based property test: random sequences of set-up, allocation, repossession, pool
//! allocation, credit-line changes, suspension, purchases and reservations (with a product
//! code and a pay mode), commits, cancels and expiry, customer vouchers (issue, withdraw),
//! partner vouchers (apply, approve, invalidate; general and product trial), the trial-first
//! switch, voucher quotas, frozen credit (activate and terminate postpaid), bill confirmation
//! (customers' and partners'), and the clock moving past voucher expiries and month ends.
//!
//! Operations come in batches of two kinds:
//! - *concurrent* batches: credit moves, suspensions, purchases, reservations, commits,
//!   cancels and customer creations, each from its own task, all at once;
//! - *sequential* batches: everything that changes what a voucher may deduct, freezes or
//!   returns credit, or moves the clock (and any operation of the first kind), one at a time.
//!   The model predicts each answer exactly: the refusal's name, or the returned value.
//!   Keeping voucher changes (issue, approve, withdraw, invalidate, the switch, the clock)
//!   out of concurrent batches means that during one, which vouchers a purchase may use is
//!   fixed: only what they have left depends on the order.
//!
//! The world starts with credit (and partner lines reduced below what they allocated, so that
//! partners refuse too), a voucher per customer of every scope in turn, a general voucher on
//! D and R4 and an approved product trial for customer 10 (not when partners are escrowed:
//! partner vouchers are refused then). The clock moves by small steps (reservations expire,
//! vouchers take effect and expire), to just before a month ends (a reservation made then and
//! committed in the next month is booked to the month it was reserved in), and to the instant
//! a month's bill becomes final, optionally confirming that month for every account.
//!
//! The reference model keeps the PRODUCT.md section 2 counters of every account (customers:
//! total, used, reserved, frozen; partners: total, allocated, used, reserved; pools), every
//! voucher (its denomination, what open purchases hold on it, and its final deductions, one
//! per purchase), every voucher quota, every frozen resource, and per customer and partner
//! the unconfirmed sum of each bill month with the months confirmed.
//!
//! # Which order, for concurrent purchases with vouchers
//!
//! A voucher deduction depends on what the purchases before it on the same voucher book took,
//! and the steps of concurrent purchases interleave (a purchase that the partner refuses
//! holds the customer's vouchers for a while, then gives them back), so no sequential order
//! of whole purchases explains every outcome. The model does not guess an order; it computes
//! for each purchase of a batch, per side (the customer's book, the charged partner's book):
//! - `usable`: the vouchers whose rules let this purchase deduct (approved and not
//!   invalidated before the batch, effective, not expired, in scope, the designated
//!   customer), and `U`, what they have left at the start of the batch;
//! - `H`: the amounts of the other purchases of the batch whose usable vouchers overlap
//!   (the most they can hold first), and `G`: what the batch's cancels can give back to
//!   these vouchers.
//!
//! A deduction is `min(amount, what the usable vouchers have left)`, so it must lie in
//! `[min(amount, U - H), min(amount, U + G)]`. When `H = G = 0` nothing else in the batch
//! touches these vouchers: the model predicts the deduction exactly, voucher by voucher, by
//! the documented order (trial vouchers first when the charged partner's switch is on, then
//! the earliest expiry, then the lowest id). Otherwise its split over the vouchers is unknown
//! until the engine shows it, and is then checked rather than predicted (see "after every
//! batch"); when it is the only unknown one among the open purchases on a book, the holds
//! left over give it exactly. The credit checks of the batch use the bounds: a purchase consumes at most
//! `amount - min deduction` of credit, and an acknowledged one exactly the charge of its
//! receipt.
//!
//! # Checked
//!
//! For every answer of a concurrent batch, that it was possible in some order: a refusal for
//! lack of credit only if the other operations could have consumed enough, an acceptance only
//! if the credit could have been there; every receipt has customer charge + customer
//! deduction = partner charge + partner deduction = amount, each deduction within its bounds
//! (exact when predicted). For every sequential operation, its exact answer.
//!
//! After every batch (and every sequential operation), the invariants:
//! - per account nothing negative: available, used, reserved, frozen credit (the audit), every
//!   voucher's remaining and held amounts, every voucher quota's remaining;
//! - every charge, deduction, freeze and return is accounted for exactly once: the engine's
//!   counters equal the model's (used, reserved, frozen, allocated, the credit bill
//!   confirmations returned, the deductions settled and held on each account's vouchers),
//!   the open bill months and their sums equal the model's, and each voucher's usage records
//!   are exactly the model's: one per committed purchase that deducted from it, none for a
//!   purchase that was not committed, summing per purchase to its receipt's deduction, on
//!   vouchers usable for that purchase. Where the model did not know a split, it takes the
//!   engine's only after these checks; what open purchases hold on a voucher must be covered
//!   by the known splits plus the unknown ones (exactly, in total), and `remaining = total -
//!   held - settled` for every voucher;
//! - the audit holds: per chargeable partner, consumption (used + bills returned + voucher
//!   deductions settled) and holds (reserved + voucher holds) equal its customers';
//!   allocations equal what the children hold.
//!
//! At the end every open reservation expires: nothing stays reserved, no voucher holds
//! anything.
//!
//! The engine runs with a short `reservation_timeout_ms_max`, so that a month's bill becomes
//! final soon after the month ends, and with resolved purchases remembered for years, so that
//! a jump of a month does not make old reservation ids unknown (forgetting has its own tests).
//!
//! Shrunk failures are kept in tests/properties.proptest-regressions and replayed first;
//! those found under an earlier strategy, whose seeds no longer generate them, are explicit
//! tests at the end of this file, each with its post-mortem.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use common::*;
use compact_str::CompactString;
use partner_credit::coordinator::Charges;
use partner_credit::domain::bill::FINALITY_GRACE_MS;
use partner_credit::domain::{
    AccountDetails, AccountView, Month, PayMode, PaymentMode, ProductScope, Role, Scope, Timestamp, Voucher,
    VoucherId, VoucherKind,
};
use partner_credit::engine::{
    NewCustomer, NewCustomerVoucher, NewPartner, NewPartnerVoucher, PartnerKind, PartnerVoucherType,
};
use partner_credit::{Caller, Engine, EngineConfig, Error, ManualClock, Money, QuotaTable, RuntimeKind, Uin};
use proptest::prelude::*;
use rust_decimal::Decimal;

const D: Uin = Uin(1);
const SUB_AGENTS: [Uin; 2] = [Uin(2), Uin(3)];
const RESELLERS: [Uin; 2] = [Uin(4), Uin(5)];
/// Customers and their parents: three under R4, one under R5, two under S2, one under S3.
const CUSTOMERS: [(Uin, Uin); 7] = [
    (Uin(10), Uin(4)),
    (Uin(11), Uin(4)),
    (Uin(12), Uin(4)),
    (Uin(13), Uin(5)),
    (Uin(14), Uin(2)),
    (Uin(15), Uin(2)),
    (Uin(16), Uin(3)),
];
const CHARGEABLE: [Uin; 3] = [Uin(1), Uin(4), Uin(5)];
/// The partners customers can be created under; they issue customer vouchers.
const PARENTS: [Uin; 4] = [Uin(4), Uin(5), Uin(2), Uin(3)];

/// The longest reservation timeout the engine accepts: a month's bill is final this long
/// (plus the grace period) after the month ends.
const TIMEOUT_MS_MAX: i64 = 5_000;
const DAY_MS: i64 = 86_400_000;
/// The voucher quota each voucher issuer starts with, in cents.
const VOUCHER_QUOTA_CENTS: i64 = 10_000;
/// The customer vouchers issued at set-up, in cents (partner vouchers: twice that).
const SET_UP_VOUCHER_CENTS: i64 = 1_500;
/// The credit lines of D, R4 and R5, the pools of S2 and S3, and each customer's credit to
/// start with, in cents.
const LINE_CENTS: [i64; 3] = [30_000, 20_000, 10_000];
const POOL_CENTS: [i64; 2] = [10_000, 6_000];
const CUSTOMER_CENTS: i64 = 4_000;
/// How much each chargeable partner's line is then reduced: below what it allocated, so
/// that partners refuse purchases their customers could pay.
const LINE_REDUCTION_CENTS: [i64; 3] = [15_000, 12_000, 6_000];

/// What purchases buy: a product code (or none) and a pay mode.
const GOODS: [(Option<&str>, PayMode); 4] = [
    (None, PayMode::Prepaid),
    (Some("cvm"), PayMode::Prepaid),
    (Some("cdb"), PayMode::Prepaid),
    (Some("cvm"), PayMode::Postpaid),
];
/// The scopes vouchers are issued with.
const SCOPES: [(ProductScope, &[&str], PaymentMode); 6] = [
    (ProductScope::AllProducts, &[], PaymentMode::AllPayment),
    (ProductScope::SpecifyProducts, &["cvm"], PaymentMode::AllPayment),
    (ProductScope::SpecifyProducts, &["cdb"], PaymentMode::AllPayment),
    (ProductScope::SpecifyProductsBlacklist, &["cvm"], PaymentMode::AllPayment),
    (ProductScope::AllProducts, &[], PaymentMode::Prepaid),
    (ProductScope::SpecifyProducts, &["cvm", "cdb"], PaymentMode::Postpaid),
];
/// A customer voucher's effective time, from now.
const EFFECTIVE_MS: [i64; 3] = [-1_000, 0, 1_500];
/// A voucher's expiry, from now: already past, passed by a few advances, by a month jump, or
/// not within the test.
const EXPIRE_MS: [i64; 4] = [-500, 2_500, 60_000, 400 * DAY_MS];
/// Freezing coefficients; the last one makes the frozen amount round up at 8 decimals.
const COEFFICIENTS: [&str; 4] = ["1", "0.5", "0", "0.33333333"];
/// Postpaid resource ids: few, so that some activations find theirs taken.
const RESOURCES: [&str; 3] = ["pp-0", "pp-1", "pp-2"];

#[derive(Clone, Debug)]
enum Op {
    Grant {
        partner: usize,
        cents: i64,
    },
    Allocate {
        customer: usize,
        cents: i64,
    },
    AllocatePool {
        sub_agent: usize,
        cents: i64,
    },
    Suspend {
        customer: usize,
        suspended: bool,
    },
    Purchase {
        customer: usize,
        cents: i64,
        goods: usize,
    },
    Reserve {
        customer: usize,
        cents: i64,
        timeout_ms: i64,
        goods: usize,
    },
    /// Commits and cancels name a reservation by index from the latest, modulo their number.
    Commit {
        reservation: usize,
    },
    Cancel {
        reservation: usize,
    },
    /// Creates a customer under one of the resellers or second-level resellers.
    CreateCustomer {
        parent: usize,
    },
    // The operations below run only in sequential batches.
    /// Moves the clock and releases what is due.
    Advance {
        ms: i64,
    },
    /// Moves the clock to `ms` before the current month ends (if that is ahead): reservations
    /// made then are committed in the next month, and booked to this one.
    EndOfMonth {
        ms: i64,
    },
    /// Moves the clock to the instant the current month's bill becomes final; then, when
    /// `confirm`, confirms that month for every customer and chargeable partner.
    NextMonth {
        confirm: bool,
    },
    GrantVoucherQuota {
        parent: usize,
        cents: i64,
    },
    IssueCustomerVoucher {
        customer: usize,
        cents: i64,
        scope: usize,
        effective: usize,
        expire: usize,
    },
    /// A general voucher for `partner`, or a product trial voucher for `trial`'s charged
    /// partner; approved at once when `approve`.
    ApplyPartnerVoucher {
        trial: Option<usize>,
        partner: usize,
        cents: i64,
        scope: usize,
        expire: usize,
        approve: bool,
    },
    /// Operations on a voucher pick one by index, modulo the number of vouchers.
    ApproveVoucher {
        voucher: usize,
    },
    WithdrawVoucher {
        voucher: usize,
    },
    InvalidateVoucher {
        voucher: usize,
    },
    SetTrialFirst {
        partner: usize,
        enabled: bool,
    },
    ActivatePostpaid {
        customer: usize,
        resource: usize,
        cents: i64,
        coefficient: usize,
    },
    TerminatePostpaid {
        resource: usize,
    },
    /// `months_back` 0 is the current month.
    ConfirmBill {
        customer: usize,
        months_back: u32,
    },
    SettlePartnerBill {
        partner: usize,
        months_back: u32,
    },
}

#[derive(Clone, Debug)]
enum Batch {
    Concurrent(Vec<Op>),
    Sequential(Vec<Op>),
}

fn concurrent_op() -> impl Strategy<Value = Op> {
    // Indexes into the customers that exist when the batch starts, modulo their number.
    let customer = 0..64usize;
    prop_oneof![
        1 => (0..CHARGEABLE.len(), -20_000i64..40_000).prop_map(|(partner, cents)| Op::Grant { partner, cents }),
        1 => (customer.clone(), -8_000i64..15_000).prop_map(|(customer, cents)| Op::Allocate { customer, cents }),
        1 => (0..SUB_AGENTS.len(), -10_000i64..20_000).prop_map(|(sub_agent, cents)| Op::AllocatePool { sub_agent, cents }),
        1 => (customer.clone(), any::<bool>()).prop_map(|(customer, suspended)| Op::Suspend { customer, suspended }),
        4 => (customer.clone(), 1i64..6_000, 0..GOODS.len())
            .prop_map(|(customer, cents, goods)| Op::Purchase { customer, cents, goods }),
        3 => (customer, 1i64..6_000, 1i64..3_000, 0..GOODS.len())
            .prop_map(|(customer, cents, timeout_ms, goods)| Op::Reserve { customer, cents, timeout_ms, goods }),
        2 => (0usize..8).prop_map(|reservation| Op::Commit { reservation }),
        1 => (0usize..8).prop_map(|reservation| Op::Cancel { reservation }),
        1 => (0..PARENTS.len()).prop_map(|parent| Op::CreateCustomer { parent }),
    ]
}

fn sequential_op() -> impl Strategy<Value = Op> {
    let customer = 0..64usize;
    let voucher = 0..64usize;
    prop_oneof![
        2 => (1i64..2_000).prop_map(|ms| Op::Advance { ms }),
        2 => any::<bool>().prop_map(|confirm| Op::NextMonth { confirm }),
        3 => (1i64..1_500).prop_map(|ms| Op::EndOfMonth { ms }),
        1 => (0..PARENTS.len(), -3_000i64..10_000).prop_map(|(parent, cents)| Op::GrantVoucherQuota { parent, cents }),
        4 => (customer.clone(), 1i64..3_000, 0..SCOPES.len(), 0..EFFECTIVE_MS.len(), 0..EXPIRE_MS.len())
            .prop_map(|(customer, cents, scope, effective, expire)| Op::IssueCustomerVoucher {
                customer, cents, scope, effective, expire,
            }),
        4 => (
            prop::option::of(customer.clone()),
            0..CHARGEABLE.len(),
            1i64..3_000,
            0..SCOPES.len(),
            0..EXPIRE_MS.len(),
            prop::bool::weighted(0.8),
        )
            .prop_map(|(trial, partner, cents, scope, expire, approve)| Op::ApplyPartnerVoucher {
                trial, partner, cents, scope, expire, approve,
            }),
        1 => voucher.clone().prop_map(|voucher| Op::ApproveVoucher { voucher }),
        1 => voucher.clone().prop_map(|voucher| Op::WithdrawVoucher { voucher }),
        1 => voucher.prop_map(|voucher| Op::InvalidateVoucher { voucher }),
        1 => (0..CHARGEABLE.len(), any::<bool>()).prop_map(|(partner, enabled)| Op::SetTrialFirst { partner, enabled }),
        2 => (customer.clone(), 0..RESOURCES.len(), 1i64..4_000, 0..COEFFICIENTS.len())
            .prop_map(|(customer, resource, cents, coefficient)| Op::ActivatePostpaid {
                customer, resource, cents, coefficient,
            }),
        1 => (0..RESOURCES.len()).prop_map(|resource| Op::TerminatePostpaid { resource }),
        3 => (customer, months_back()).prop_map(|(customer, months_back)| Op::ConfirmBill { customer, months_back }),
        2 => (0..CHARGEABLE.len(), months_back())
            .prop_map(|(partner, months_back)| Op::SettlePartnerBill { partner, months_back }),
    ]
}

/// Mostly the previous month, the one a month jump makes final.
fn months_back() -> impl Strategy<Value = u32> {
    prop_oneof![1 => Just(0u32), 3 => Just(1), 1 => Just(2)]
}

fn batches() -> impl Strategy<Value = Vec<Batch>> {
    let concurrent = prop::collection::vec(concurrent_op(), 1..6).prop_map(Batch::Concurrent);
    let sequential = prop::collection::vec(prop_oneof![3 => sequential_op(), 1 => concurrent_op()], 1..4)
        .prop_map(Batch::Sequential);
    prop::collection::vec(prop_oneof![3 => concurrent, 2 => sequential], 1..25)
}

/// A credit counter that an operation needs and may consume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Resource {
    CustomerAvailable(Uin),
    PartnerAvailable(Uin),
    /// A partner's allocable credit, or a second-level reseller's pool remaining.
    Allocable(Uin),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DealState {
    /// A one-shot purchase, committed.
    Purchased,
    Open,
    Committed,
    Cancelled,
    Expired,
}

/// The two sides of a purchase, as indexes into its per-side arrays.
const CUSTOMER_SIDE: usize = 0;
const PARTNER_SIDE: usize = 1;

/// A purchase's deductions on the vouchers of one side, voucher by voucher.
type Split = Vec<(VoucherId, Money)>;

/// An acknowledged purchase or reservation.
#[derive(Clone, Debug)]
struct Deal {
    id: String,
    customer: Uin,
    charged: Uin,
    goods: usize,
    /// When and in which step it held its vouchers and credit.
    time: i64,
    step: u64,
    /// The bill month its charges are booked to.
    month: Month,
    /// Per side: what vouchers deducted and what credit was charged.
    deduction: [Money; 2],
    charge: [Money; 2],
    /// Per side: which vouchers deducted how much; `None` while the model does not know.
    split: [Option<Split>; 2],
    state: DealState,
    deadline: i64,
}

impl Deal {
    /// The account whose vouchers and credit one side uses.
    fn owner(&self, side: usize) -> Uin {
        if side == CUSTOMER_SIDE {
            self.customer
        } else {
            self.charged
        }
    }

    fn hold(&self, side: usize) -> Hold {
        Hold {
            customer: self.customer,
            owner: self.owner(side),
            time: self.time,
            step: self.step,
            goods: self.goods,
        }
    }

    /// Committed: its deductions are final.
    fn settled(&self) -> bool {
        matches!(self.state, DealState::Purchased | DealState::Committed)
    }
}

/// What a purchase deducts on one side depends on: whose vouchers, when, for whom, what.
#[derive(Clone, Copy, Debug)]
struct Hold {
    customer: Uin,
    owner: Uin,
    time: i64,
    step: u64,
    goods: usize,
}

#[derive(Clone, Debug)]
struct VoucherModel {
    id: VoucherId,
    owner: Uin,
    kind: VoucherKind,
    scope: usize,
    total: Money,
    /// Held by open purchases.
    held: Money,
    /// Final deductions, at most one per purchase: (purchase id, amount).
    settled: Vec<(String, Money)>,
    effective: i64,
    expire: i64,
    /// The step in which it was approved (customer vouchers: issued), and withdrawn or
    /// invalidated: a purchase may deduct from it only in a later step, and only before that.
    approved: Option<u64>,
    invalidated: Option<u64>,
}

impl VoucherModel {
    /// A voucher with nothing deducted, approved in step `approved` (or pending).
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: VoucherId,
        owner: Uin,
        kind: VoucherKind,
        scope: usize,
        total: Money,
        effective: i64,
        expire: i64,
        approved: Option<u64>,
    ) -> Self {
        VoucherModel {
            id,
            owner,
            kind,
            scope,
            total,
            held: Money::ZERO,
            settled: Vec::new(),
            effective,
            expire,
            approved,
            invalidated: None,
        }
    }

    /// A voucher usable from the set-up on (step 0).
    fn approved(
        id: VoucherId,
        owner: Uin,
        kind: VoucherKind,
        scope: usize,
        total: Money,
        effective: i64,
        expire: i64,
    ) -> Self {
        VoucherModel::new(id, owner, kind, scope, total, effective, expire, Some(0))
    }

    fn settled_sum(&self) -> Money {
        self.settled.iter().map(|(_, amount)| *amount).sum()
    }

    fn remaining(&self) -> Money {
        self.total - self.held - self.settled_sum()
    }

    fn is_trial(&self) -> bool {
        matches!(self.kind, VoucherKind::CustomerTrial { .. } | VoucherKind::PartnerTrial { .. })
    }

    fn is_partner(&self) -> bool {
        matches!(self.kind, VoucherKind::PartnerGeneral | VoucherKind::PartnerTrial { .. })
    }
}

/// The bill months of one account.
#[derive(Clone, Debug, Default)]
struct Bills {
    /// Months with charges not confirmed yet, with their sums (zero sums included).
    open: BTreeMap<Month, Money>,
    confirmed: BTreeSet<Month>,
    /// What confirmations returned, in total.
    returned: Money,
}

/// The reference model: the counters of every account, the vouchers, the purchases.
#[derive(Clone, Debug, Default)]
struct Model {
    /// total, allocated, used, reserved
    partners: HashMap<Uin, [Money; 4]>,
    /// pool total, pool allocated
    pools: HashMap<Uin, [Money; 2]>,
    /// total, used, reserved, frozen
    customers: HashMap<Uin, [Money; 4]>,
    suspended: HashMap<Uin, bool>,
    /// Customers whose suspension was set both ways in the last batch: the last writer wins,
    /// so either value is right, and the model adopts the engine's.
    suspension_raced: Vec<Uin>,
    deals: Vec<Deal>,
    deal_index: HashMap<String, usize>,
    /// The deals that are reservations, in creation order; operations pick one by index.
    reservations: Vec<usize>,
    /// Every customer with its parent, in creation order; operations pick one by index.
    customer_list: Vec<(Uin, Uin)>,
    now: i64,
    /// Counts concurrent batches and sequential operations: what happened in which order.
    step: u64,
    /// In id order (ids are given out increasing).
    vouchers: Vec<VoucherModel>,
    /// Voucher quotas: total, issued, how many vouchers issued.
    voucher_pools: HashMap<Uin, (Money, Money, u64)>,
    /// Partners whose trial-first switch is off.
    trial_first_off: HashSet<Uin>,
    /// Active postpaid resources: customer and frozen amount.
    resources: BTreeMap<&'static str, (Uin, Money)>,
    bills: HashMap<Uin, Bills>,
    /// Every chargeable partner is escrowed: partner vouchers are refused.
    escrow: bool,
}

/// The partner a customer of `parent` is charged through.
fn charged_of(parent: Uin) -> Uin {
    if SUB_AGENTS.contains(&parent) {
        D
    } else {
        parent
    }
}

fn money(cents: i64) -> Money {
    Money::from_cents(cents)
}

fn month_of(now: i64) -> Month {
    Month::of(Timestamp(now))
}

/// The month `back` months before the one containing `now`.
fn month_back(now: i64, back: u32) -> Month {
    let month = month_of(now);
    let index = month.year() * 12 + month.month() - 1 - back;
    Month::new(index / 12, index % 12 + 1).unwrap()
}

/// When a month's bill becomes final: its end, plus the longest reservation, plus the grace.
fn final_from(month: Month) -> i64 {
    month.end().0 + TIMEOUT_MS_MAX + FINALITY_GRACE_MS
}

fn scope_of(scope: usize) -> Scope {
    let (products, codes, payment) = SCOPES[scope];
    Scope::new(products, codes.iter().map(|code| CompactString::from(*code)).collect(), payment).unwrap()
}

/// Whether a voucher of scope `scope` applies to a purchase of `goods` (the model's own
/// statement of the scope rules).
fn covers(scope: usize, goods: usize) -> bool {
    let (products, codes, payment) = SCOPES[scope];
    let (product, pay) = GOODS[goods];
    let listed = product.is_some_and(|product| codes.contains(&product));
    let pays = match payment {
        PaymentMode::AllPayment => true,
        PaymentMode::Prepaid => pay == PayMode::Prepaid,
        PaymentMode::Postpaid => pay == PayMode::Postpaid,
    };
    pays && match products {
        ProductScope::AllProducts => true,
        ProductScope::SpecifyProducts => listed,
        ProductScope::SpecifyProductsBlacklist => !listed,
    }
}

/// `amount x coefficient`, rounded up to 8 decimals.
fn frozen_of(amount: Money, coefficient: Decimal) -> Money {
    let scale = Decimal::from(100_000_000u64);
    Money::from_decimal((amount.as_decimal() * coefficient * scale).ceil() / scale).unwrap()
}

fn split_sum(split: &Split) -> Money {
    split.iter().map(|(_, amount)| *amount).sum()
}

impl Model {
    /// The customer an operation's index names, and its parent.
    fn customer(&self, index: usize) -> (Uin, Uin) {
        self.customer_list[index % self.customer_list.len()]
    }

    fn parent_of(&self, customer: Uin) -> Uin {
        self.customer_list.iter().find(|(uin, _)| *uin == customer).expect("a known customer").1
    }

    fn value(&self, resource: Resource) -> Money {
        match resource {
            Resource::CustomerAvailable(uin) => {
                let [total, used, reserved, frozen] = self.customers[&uin];
                total - used - reserved - frozen
            }
            Resource::PartnerAvailable(uin) => {
                let [total, _, used, reserved] = self.partners[&uin];
                total - used - reserved
            }
            Resource::Allocable(uin) => match self.partners.get(&uin) {
                Some([total, allocated, ..]) => *total - *allocated,
                None => {
                    let [total, allocated] = self.pools[&uin];
                    total - allocated
                }
            },
        }
    }

    /// The reservation an operation's index names: 0 is the latest.
    fn reservation(&self, index: usize) -> Option<usize> {
        let len = self.reservations.len();
        (len > 0).then(|| self.reservations[len - 1 - index % len])
    }

    fn deal(&self, id: &str) -> Option<&Deal> {
        self.deal_index.get(id).map(|&index| &self.deals[index])
    }

    fn voucher_position(&self, id: VoucherId) -> usize {
        self.vouchers.binary_search_by_key(&id, |voucher| voucher.id).expect("a known voucher")
    }

    fn voucher(&self, id: VoucherId) -> &VoucherModel {
        &self.vouchers[self.voucher_position(id)]
    }

    fn voucher_mut(&mut self, id: VoucherId) -> &mut VoucherModel {
        let position = self.voucher_position(id);
        &mut self.vouchers[position]
    }

    /// The voucher an operation's index names, if there is any.
    fn pick_voucher(&self, index: usize) -> Option<VoucherModel> {
        (!self.vouchers.is_empty()).then(|| self.vouchers[index % self.vouchers.len()].clone())
    }

    /// A new voucher id must be above every id given out before.
    fn add_voucher(&mut self, voucher: VoucherModel) -> Result<(), TestCaseError> {
        if let Some(last) = self.vouchers.last() {
            prop_assert!(voucher.id > last.id, "voucher id {} after {}", voucher.id, last.id);
        }
        self.vouchers.push(voucher);
        Ok(())
    }

    /// The trial-first switch of a charged partner (its customers keep a copy).
    fn trial_first(&self, charged: Uin) -> bool {
        !self.trial_first_off.contains(&charged)
    }

    /// Whether the rules let a purchase deduct from a voucher, whatever it has left.
    fn usable(&self, voucher: &VoucherModel, hold: &Hold) -> bool {
        voucher.owner == hold.owner
            && voucher.approved.is_some_and(|step| step < hold.step)
            && voucher.invalidated.map_or(true, |step| step > hold.step)
            && voucher.effective <= hold.time
            && hold.time < voucher.expire
            && covers(voucher.scope, hold.goods)
            && match voucher.kind {
                VoucherKind::PartnerTrial { customer, .. } => customer == hold.customer,
                _ => true,
            }
    }

    fn usable_set(&self, hold: &Hold) -> Vec<VoucherId> {
        self.vouchers.iter().filter(|voucher| self.usable(voucher, hold)).map(|voucher| voucher.id).collect()
    }

    /// The documented deduction: trial vouchers first when the switch is on, then the
    /// earliest expiry, then the lowest id; each gives what it has, until `amount` is covered.
    fn predict(&self, hold: &Hold, usable: &[VoucherId], amount: Money) -> Split {
        let customer = self.customer_list.iter().find(|(uin, _)| *uin == hold.customer).expect("a customer");
        let trial_first = self.trial_first(charged_of(customer.1));
        let mut candidates: Vec<&VoucherModel> = usable.iter().map(|id| self.voucher(*id)).collect();
        candidates.sort_by_key(|voucher| (!(trial_first && voucher.is_trial()), voucher.expire, voucher.id));
        let mut left = amount;
        let mut split = Vec::new();
        for voucher in candidates {
            let deducted = voucher.remaining().min(left);
            if deducted.is_positive() {
                split.push((voucher.id, deducted));
                left -= deducted;
            }
        }
        split
    }

    fn book(&mut self, uin: Uin, month: Month, amount: Money) {
        let bills = self.bills.entry(uin).or_default();
        // A booking never lands in a confirmed month; the finality rule keeps it from trying.
        let mut month = month;
        while bills.confirmed.contains(&month) {
            month = month.next();
        }
        *bills.open.entry(month).or_default() += amount;
    }

    /// ConfirmBill's answer: refusals in precedence order, else the month's sum.
    fn confirmation(&self, uin: Uin, month: Month) -> Result<Money, &'static str> {
        let bills = self.bills.get(&uin);
        if bills.is_some_and(|bills| bills.confirmed.contains(&month)) {
            return Err("BillConfirmed");
        }
        if self.now < final_from(month) {
            return Err("BillNotFinal");
        }
        bills.and_then(|bills| bills.open.get(&month)).copied().ok_or("NoBill")
    }

    fn confirm(&mut self, uin: Uin, month: Month, returned: Money) {
        let bills = self.bills.get_mut(&uin).expect("confirmed bills exist");
        bills.open.remove(&month);
        bills.confirmed.insert(month);
        bills.returned += returned;
    }

    /// Gives back what an open deal holds, credit and vouchers (when the split is known;
    /// otherwise the reconciliation finds out).
    fn release(&mut self, index: usize) {
        let deal = self.deals[index].clone();
        self.customers.get_mut(&deal.customer).unwrap()[2] -= deal.charge[CUSTOMER_SIDE];
        self.partners.get_mut(&deal.charged).unwrap()[3] -= deal.charge[PARTNER_SIDE];
        for split in deal.split.iter().flatten() {
            for (id, amount) in split {
                self.voucher_mut(*id).held -= *amount;
            }
        }
    }

    fn add_deal(&mut self, deal: Deal) -> usize {
        let index = self.deals.len();
        self.deal_index.insert(deal.id.clone(), index);
        self.deals.push(deal);
        index
    }
}

/// What a purchase may deduct on one side, as seen from the start of its batch.
#[derive(Clone, Debug)]
struct SidePlan {
    owner: Uin,
    usable: Vec<VoucherId>,
    /// Bounds of the deduction.
    low: Money,
    high: Money,
    /// The exact split, when nothing else in the batch touches these vouchers.
    predicted: Option<Split>,
}

#[derive(Clone, Debug)]
struct Plan {
    customer: Uin,
    charged: Uin,
    amount: Money,
    sides: [SidePlan; 2],
}

/// The plan of every purchase and reservation of a batch (see the module doc).
fn plans(batch: &[Op], model: &Model) -> Vec<Option<Plan>> {
    let firsts: Vec<Option<Plan>> = batch
        .iter()
        .map(|op| match *op {
            Op::Purchase { customer, cents, goods } | Op::Reserve { customer, cents, goods, .. } => {
                let (uin, parent) = model.customer(customer);
                let charged = charged_of(parent);
                let side = |owner| {
                    let hold = Hold { customer: uin, owner, time: model.now, step: model.step, goods };
                    SidePlan {
                        owner,
                        usable: model.usable_set(&hold),
                        low: Money::ZERO,
                        high: Money::ZERO,
                        predicted: None,
                    }
                };
                Some(Plan { customer: uin, charged, amount: money(cents), sides: [side(uin), side(charged)] })
            }
            _ => None,
        })
        .collect();
    let mut plans = firsts.clone();
    for (index, plan) in plans.iter_mut().enumerate() {
        let Some(plan) = plan else { continue };
        let op = &batch[index];
        let goods = match *op {
            Op::Purchase { goods, .. } | Op::Reserve { goods, .. } => goods,
            _ => unreachable!(),
        };
        for side in [CUSTOMER_SIDE, PARTNER_SIDE] {
            let usable = plan.sides[side].usable.clone();
            let owner = plan.sides[side].owner;
            let start: Money = usable.iter().map(|id| model.voucher(*id).remaining()).sum();
            // The most the batch's other purchases can hold on these vouchers first.
            let mut taken = Money::ZERO;
            for (other, other_plan) in firsts.iter().enumerate() {
                let Some(other_plan) = other_plan else { continue };
                let other_side = &other_plan.sides[side];
                if other != index
                    && other_side.owner == owner
                    && other_side.usable.iter().any(|id| usable.contains(id))
                {
                    taken += other_plan.amount;
                }
            }
            // The most the batch's cancels can give back to them.
            let mut given = Money::ZERO;
            for other in batch {
                let Op::Cancel { reservation } = *other else { continue };
                let Some(deal) = model.reservation(reservation) else { continue };
                let deal = &model.deals[deal];
                if deal.state != DealState::Open || deal.owner(side) != owner {
                    continue;
                }
                given += match &deal.split[side] {
                    Some(split) => {
                        split.iter().filter(|(id, _)| usable.contains(id)).map(|(_, amount)| *amount).sum()
                    }
                    None => deal.deduction[side],
                };
            }
            let amount = plan.amount;
            let low = amount.min((start - taken).max(Money::ZERO));
            let high = amount.min(start + given);
            let hold = Hold { customer: plan.customer, owner, time: model.now, step: model.step, goods };
            let predicted = if taken.is_zero() && given.is_zero() {
                Some(model.predict(&hold, &usable, amount))
            } else if high.is_zero() {
                Some(Vec::new())
            } else {
                None
            };
            let side_plan = &mut plan.sides[side];
            side_plan.low = low;
            side_plan.high = high;
            side_plan.predicted = predicted;
        }
    }
    plans
}

/// What an operation needs (checked and consumed; an empty name: consumed, never checked)
/// and what it may give back, in the model's state at the start of its batch.
struct Needs {
    needs: Vec<(Resource, Money, &'static str)>,
    gives: Vec<(Resource, Money)>,
}

fn needs(op: &Op, model: &Model, plan: Option<&Plan>) -> Needs {
    use Resource::*;
    let mut result = Needs { needs: Vec::new(), gives: Vec::new() };
    match *op {
        Op::Grant { partner, cents } => {
            let uin = CHARGEABLE[partner];
            if cents < 0 {
                result.needs.push((PartnerAvailable(uin), money(-cents), "OverRepossessable"));
                // A reduction takes allocable credit too, but is never refused for it (it may
                // go negative): consumed, not checked.
                result.needs.push((Allocable(uin), money(-cents), ""));
            } else {
                result.gives.push((PartnerAvailable(uin), money(cents)));
                result.gives.push((Allocable(uin), money(cents)));
            }
        }
        Op::Allocate { customer, cents } => {
            let (uin, parent) = model.customer(customer);
            if cents > 0 {
                result.needs.push((Allocable(parent), money(cents), "OverAllocable"));
                result.gives.push((CustomerAvailable(uin), money(cents)));
            } else if cents < 0 {
                result.needs.push((CustomerAvailable(uin), money(-cents), "OverRepossessable"));
                result.gives.push((Allocable(parent), money(-cents)));
            }
        }
        Op::AllocatePool { sub_agent, cents } => {
            let uin = SUB_AGENTS[sub_agent];
            if cents > 0 {
                result.needs.push((Allocable(D), money(cents), "OverAllocable"));
                result.gives.push((Allocable(uin), money(cents)));
            } else if cents < 0 {
                result.needs.push((Allocable(uin), money(-cents), "OverRepossessable"));
                result.gives.push((Allocable(D), money(-cents)));
            }
        }
        Op::Purchase { .. } | Op::Reserve { .. } => {
            let plan = plan.expect("purchases have a plan");
            // The most credit it can charge on each side: the amount less the least it can
            // deduct.
            let customer_charge = plan.amount - plan.sides[CUSTOMER_SIDE].low;
            let partner_charge = plan.amount - plan.sides[PARTNER_SIDE].low;
            result.needs.push((
                CustomerAvailable(plan.customer),
                customer_charge,
                "InsufficientCustomerCredit",
            ));
            result.needs.push((PartnerAvailable(plan.charged), partner_charge, "InsufficientPartnerCredit"));
            // A hold undone after the partner refused gives the customer's credit back.
            result.gives.push((CustomerAvailable(plan.customer), customer_charge));
        }
        Op::Cancel { reservation } | Op::Commit { reservation } => {
            if let Some(deal) = model.reservation(reservation) {
                let deal = &model.deals[deal];
                if matches!(op, Op::Cancel { .. }) && deal.state == DealState::Open {
                    result.gives.push((CustomerAvailable(deal.customer), deal.charge[CUSTOMER_SIDE]));
                    result.gives.push((PartnerAvailable(deal.charged), deal.charge[PARTNER_SIDE]));
                }
            }
        }
        Op::Suspend { .. } | Op::CreateCustomer { .. } => {}
        _ => unreachable!("{op:?} runs alone"),
    }
    result
}

async fn set_up(engine: &Engine, escrow: bool) -> Model {
    let partner = |uin: Uin, parent| NewPartner { uin: Some(uin), parent, name: None };
    engine.create_partner(OP, PartnerKind::Distributor, partner(D, None)).await.unwrap();
    for sub_agent in SUB_AGENTS {
        engine
            .create_partner(OP, PartnerKind::SecondLevelReseller, partner(sub_agent, Some(D)))
            .await
            .unwrap();
    }
    for reseller in RESELLERS {
        engine.create_partner(OP, PartnerKind::Reseller, partner(reseller, None)).await.unwrap();
    }
    for (uin, parent) in CUSTOMERS {
        engine
            .create_customer(OP, NewCustomer { uin: Some(uin), parent, name: None, email: None })
            .await
            .unwrap();
    }
    let mut model = Model { now: START.0, escrow, ..Model::default() };
    for uin in PARENTS {
        engine.grant_voucher_quota(OP, uin, money(VOUCHER_QUOTA_CENTS)).await.unwrap();
        model.voucher_pools.insert(uin, (money(VOUCHER_QUOTA_CENTS), Money::ZERO, 0));
    }
    // Credit to start with, so that purchases (and so deductions and bills) happen from the
    // first batch; the operations take it back and give more.
    for (uin, cents) in CHARGEABLE.into_iter().zip(LINE_CENTS) {
        engine.grant_credit(OP, uin, money(cents)).await.unwrap();
        model.partners.insert(uin, [money(cents), Money::ZERO, Money::ZERO, Money::ZERO]);
    }
    for (uin, cents) in SUB_AGENTS.into_iter().zip(POOL_CENTS) {
        engine.allocate_credit_pool(Caller::Uin(D), uin, money(cents)).await.unwrap();
        model.pools.insert(uin, [money(cents), Money::ZERO]);
        model.partners.get_mut(&D).unwrap()[1] += money(cents);
    }
    for (uin, parent) in CUSTOMERS {
        let cents = CUSTOMER_CENTS;
        engine.allocate_customer_credit(Caller::Uin(parent), uin, money(cents), None).await.unwrap();
        model.customers.insert(uin, [money(cents), Money::ZERO, Money::ZERO, Money::ZERO]);
        match model.partners.get_mut(&parent) {
            Some(counters) => counters[1] += money(cents),
            None => model.pools.get_mut(&parent).unwrap()[1] += money(cents),
        }
        model.suspended.insert(uin, false);
        model.customer_list.push((uin, parent));
    }
    for (uin, cents) in CHARGEABLE.into_iter().zip(LINE_REDUCTION_CENTS) {
        engine.grant_credit(OP, uin, money(-cents)).await.unwrap();
        model.partners.get_mut(&uin).unwrap()[0] -= money(cents);
    }
    // Vouchers to start with: one per customer, of every scope in turn; a general one on D and
    // R4 and a product trial (partner vouchers are refused for escrowed partners).
    let expire = START.0 + 400 * DAY_MS;
    for (index, (uin, parent)) in CUSTOMERS.into_iter().enumerate() {
        let scope = index % SCOPES.len();
        let amount = money(SET_UP_VOUCHER_CENTS);
        let voucher = NewCustomerVoucher {
            customer: uin,
            amount,
            scope: scope_of(scope),
            effective: START,
            expire: Timestamp(expire),
        };
        let id = engine.issue_customer_voucher(Caller::Uin(parent), voucher).await.unwrap();
        let kind = VoucherKind::CustomerOffer { issuer: parent };
        model.vouchers.push(VoucherModel::approved(id, uin, kind, scope, amount, START.0, expire));
        let pool = model.voucher_pools.get_mut(&parent).unwrap();
        pool.1 += amount;
        pool.2 += 1;
    }
    if !escrow {
        for partner in [D, RESELLERS[0]] {
            let amount = money(2 * SET_UP_VOUCHER_CENTS);
            let voucher = NewPartnerVoucher {
                partner: Some(partner),
                kind: PartnerVoucherType::General,
                amount,
                scope: scope_of(0),
                expire: Timestamp(expire),
            };
            let id = engine.apply_partner_voucher(OP, voucher).await.unwrap();
            engine.approve_partner_voucher(OP, id).await.unwrap();
            let kind = VoucherKind::PartnerGeneral;
            model.vouchers.push(VoucherModel::approved(id, partner, kind, 0, amount, START.0, expire));
        }
        // A product trial for the first customer: its trial vouchers come after its offer in
        // id order, so the trial-first switch decides which deducts first, on both sides.
        let (customer, reseller) = CUSTOMERS[0];
        let amount = money(SET_UP_VOUCHER_CENTS);
        let voucher = NewPartnerVoucher {
            partner: Some(reseller),
            kind: PartnerVoucherType::ProductTrial { customer },
            amount,
            scope: scope_of(0),
            expire: Timestamp(expire),
        };
        let id = engine.apply_partner_voucher(OP, voucher).await.unwrap();
        let (_, associated) = engine.approve_partner_voucher(OP, id).await.unwrap();
        let associated = associated.expect("a product trial comes with a customer voucher");
        assert_eq!(associated, VoucherId(id.0 + 1), "created with its partner voucher");
        let kind = VoucherKind::PartnerTrial { customer, associated: Some(associated) };
        model.vouchers.push(VoucherModel::approved(id, reseller, kind, 0, amount, START.0, expire));
        let kind = VoucherKind::CustomerTrial { partner_voucher: id };
        model.vouchers.push(VoucherModel::approved(associated, customer, kind, 0, amount, START.0, expire));
    }
    model
}

/// One concurrent operation's answer.
#[derive(Debug)]
struct Answer {
    op: Op,
    /// "Ok" or the refusal's name.
    outcome: String,
    /// An acknowledged reservation's deadline.
    deadline: Option<i64>,
    /// The purchase id used.
    id: String,
    /// An acknowledged purchase's or reservation's charges and charged partner.
    charges: Option<(Charges, Uin)>,
    /// The deal a commit or cancel names, as the batch started.
    deal: Option<usize>,
}

fn name_of(result: Result<(), Error>) -> String {
    match result {
        Ok(()) => "Ok".to_string(),
        Err(Error::Rejected(rejection)) => rejection.name().to_string(),
        Err(Error::Failed(failure)) => panic!("the engine failed: {failure}"),
    }
}

/// A sequential operation's answer: its value or the refusal's name.
fn outcome<T>(result: Result<T, Error>) -> Result<T, String> {
    match result {
        Ok(value) => Ok(value),
        Err(Error::Rejected(rejection)) => Err(rejection.name().to_string()),
        Err(Error::Failed(failure)) => panic!("the engine failed: {failure}"),
    }
}

/// Compares an answer with the model's: the same value, or the same refusal.
fn expect<T: PartialEq + std::fmt::Debug>(
    label: &str,
    actual: &Result<T, String>,
    expected: &Result<T, &'static str>,
) -> Result<(), TestCaseError> {
    let same = match (actual, expected) {
        (Ok(actual), Ok(expected)) => actual == expected,
        (Err(actual), Err(expected)) => actual == expected,
        _ => false,
    };
    prop_assert!(same, "{label}: answered {actual:?}, the model expected {expected:?}");
    Ok(())
}

fn purchase_request(id: &str, customer: Uin, cents: i64, goods: usize) -> partner_credit::PurchaseRequest {
    let mut request = request(id, customer, &money(cents).to_string());
    let (product, pay) = GOODS[goods];
    request.product_code = product.map(CompactString::from);
    request.pay = pay;
    request
}

/// Runs one concurrent operation against the engine.
async fn run(
    engine: Arc<Engine>,
    op: Op,
    target: (Uin, Uin),
    reservation: Option<(usize, String)>,
    id: String,
    new_uin: Uin,
) -> Answer {
    let deal = reservation.as_ref().map(|(deal, _)| *deal);
    let reservation_id = reservation.map(|(_, id)| id);
    let mut deadline = None;
    let mut charges = None;
    let outcome = match op {
        Op::Grant { partner, cents } => {
            name_of(engine.grant_credit(OP, CHARGEABLE[partner], money(cents)).await.map(drop))
        }
        Op::Allocate { cents, .. } => {
            let (uin, parent) = target;
            name_of(
                engine.allocate_customer_credit(Caller::Uin(parent), uin, money(cents), None).await.map(drop),
            )
        }
        Op::AllocatePool { sub_agent, cents } => name_of(
            engine.allocate_credit_pool(Caller::Uin(D), SUB_AGENTS[sub_agent], money(cents)).await.map(drop),
        ),
        Op::Suspend { suspended, .. } => {
            let (uin, parent) = target;
            name_of(engine.set_suspension(Caller::Uin(parent), uin, suspended).await)
        }
        Op::Purchase { cents, goods, .. } => {
            let uin = target.0;
            let result = engine.purchase(Caller::Uin(uin), purchase_request(&id, uin, cents, goods)).await;
            if let Ok(receipt) = &result {
                charges = Some((receipt.charges(), receipt.charged));
            }
            name_of(result.map(drop))
        }
        Op::Reserve { cents, timeout_ms, goods, .. } => {
            let uin = target.0;
            let result = engine.reserve(OP, purchase_request(&id, uin, cents, goods), Some(timeout_ms)).await;
            if let Ok(receipt) = &result {
                deadline = Some(receipt.deadline.0);
                charges = Some((receipt.charges(), receipt.charged));
            }
            name_of(result.map(drop))
        }
        Op::Commit { .. } | Op::Cancel { .. } => match reservation_id {
            None => "NoReservation".to_string(),
            Some(id) if matches!(op, Op::Commit { .. }) => name_of(engine.commit(OP, pid(&id)).await),
            Some(id) => name_of(engine.cancel(OP, pid(&id)).await),
        },
        Op::CreateCustomer { parent } => {
            let customer =
                NewCustomer { uin: Some(new_uin), parent: PARENTS[parent], name: None, email: None };
            name_of(engine.create_customer(OP, customer).await.map(drop))
        }
        _ => unreachable!("{op:?} runs alone"),
    };
    Answer { op, outcome, deadline, id, charges, deal }
}

fn check_case(kind: RuntimeKind, batches: Vec<Batch>) -> Result<(), TestCaseError> {
    check_case_with(kind, EngineConfig::default(), batches)
}

fn check_case_with(
    kind: RuntimeKind,
    config: EngineConfig,
    batches: Vec<Batch>,
) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let escrow = !config.escrow_partners.is_empty();
    let config = EngineConfig {
        // The model is of the credit rules; rate limits have their own tests (rate_limits.rs).
        quotas: QuotaTable::unlimited(),
        reservation_timeout_ms_max: TIMEOUT_MS_MAX,
        resolved_retention_ms: 3_650 * DAY_MS,
        ..config
    };
    runtime.block_on(async move {
        let (engine, clock) = engine_with(kind, config);
        let engine = Arc::new(engine);
        let mut model = set_up(&engine, escrow).await;
        compare(&engine, &mut model).await?;
        for (batch_index, batch) in batches.into_iter().enumerate() {
            match batch {
                Batch::Concurrent(ops) => {
                    run_batch(&engine, &mut model, batch_index, 0, ops).await?;
                    compare(&engine, &mut model).await?;
                }
                Batch::Sequential(ops) => {
                    for (index, op) in ops.into_iter().enumerate() {
                        run_step(&engine, &clock, &mut model, batch_index, index, op).await?;
                        compare(&engine, &mut model).await?;
                    }
                }
            }
        }
        // Let every reservation expire: nothing may stay reserved or held.
        advance(&engine, &clock, &mut model, TIMEOUT_MS_MAX + 1).await;
        compare(&engine, &mut model).await?;
        let audit = engine.audit().await.unwrap();
        prop_assert!(audit.customer_reserved.is_zero() && audit.partner_reserved.is_zero(), "{audit:?}");
        for view in engine.all_accounts().await.unwrap() {
            prop_assert!(
                view.vouchers_held.is_zero(),
                "{} still holds {} on vouchers",
                view.uin,
                view.vouchers_held
            );
        }
        prop_assert!(model.deals.iter().all(|deal| deal.state != DealState::Open));
        Ok(())
    })
}

fn new_customer_uin(batch: usize, index: usize) -> Uin {
    Uin(1_000 + (batch * 10 + index) as u64)
}

async fn advance(engine: &Engine, clock: &ManualClock, model: &mut Model, ms: i64) {
    clock.advance_ms(ms);
    model.now += ms;
    engine.expire_due().await.unwrap();
    for index in 0..model.deals.len() {
        let deal = &model.deals[index];
        if deal.state == DealState::Open && deal.deadline <= model.now {
            model.release(index);
            model.deals[index].state = DealState::Expired;
        }
    }
}

/// Runs the operations of a concurrent batch at once (or one operation of a sequential batch),
/// checks that every answer was possible, and applies the acknowledged ones to the model.
async fn run_batch(
    engine: &Arc<Engine>,
    model: &mut Model,
    batch_index: usize,
    first_index: usize,
    batch: Vec<Op>,
) -> Result<(), TestCaseError> {
    model.step += 1;
    let plans = plans(&batch, model);
    let all_needs: Vec<Needs> =
        batch.iter().zip(&plans).map(|(op, plan)| needs(op, model, plan.as_ref())).collect();
    let tasks: Vec<_> = batch
        .into_iter()
        .enumerate()
        .map(|(offset, op)| {
            let index = first_index + offset;
            let reservation = match op {
                Op::Commit { reservation } | Op::Cancel { reservation } => {
                    model.reservation(reservation).map(|deal| (deal, model.deals[deal].id.clone()))
                }
                _ => None,
            };
            let target = match op {
                Op::Allocate { customer, .. }
                | Op::Suspend { customer, .. }
                | Op::Purchase { customer, .. }
                | Op::Reserve { customer, .. } => model.customer(customer),
                _ => (Uin(0), Uin(0)),
            };
            let id = format!("b{batch_index}-{index}");
            tokio::spawn(run(
                engine.clone(),
                op,
                target,
                reservation,
                id,
                new_customer_uin(batch_index, index),
            ))
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let toggled: Vec<Uin> = results
        .iter()
        .filter_map(|answer| match answer.op {
            Op::Suspend { customer, .. } => Some(model.customer(customer).0),
            _ => None,
        })
        .collect();
    let start = model.clone();
    // Is each answer possible in some order of the batch?
    for (index, answer) in results.iter().enumerate() {
        let (op, outcome) = (&answer.op, &answer.outcome);
        let others =
            all_needs.iter().enumerate().filter(|(other, _)| *other != index).map(|(_, needs)| needs);
        let mut lowest: HashMap<Resource, Money> = HashMap::new();
        let mut highest: HashMap<Resource, Money> = HashMap::new();
        for needs in others {
            for (resource, amount, _) in &needs.needs {
                *lowest.entry(*resource).or_default() += *amount;
            }
            for (resource, amount) in &needs.gives {
                *highest.entry(*resource).or_default() += *amount;
            }
        }
        let own = &all_needs[index];
        let label = format!("batch {batch_index}: {op:?} answered {outcome}");
        if outcome == "Ok" {
            let mut checked: Vec<(Resource, Money)> =
                own.needs.iter().filter(|(_, _, name)| !name.is_empty()).map(|(r, a, _)| (*r, *a)).collect();
            if let Some(plan) = &plans[index] {
                let Some((charges, charged)) = answer.charges else {
                    return Err(TestCaseError::fail(format!("{label}: no charges")));
                };
                check_charges(&label, plan, &charges, charged)?;
                // What it actually charged must have been there.
                checked = vec![
                    (Resource::CustomerAvailable(plan.customer), charges.customer_charge),
                    (Resource::PartnerAvailable(plan.charged), charges.partner_charge),
                ];
            }
            for (resource, amount) in checked {
                let most = start.value(resource) + highest.get(&resource).copied().unwrap_or_default();
                prop_assert!(
                    most >= amount,
                    "{label}: {resource:?} could be at most {most}, needed {amount}"
                );
            }
        } else if let Some((resource, amount, _)) =
            own.needs.iter().find(|(_, _, name)| *name == outcome.as_str())
        {
            let least = start.value(*resource) - lowest.get(resource).copied().unwrap_or_default();
            prop_assert!(
                least < *amount,
                "{label}: {resource:?} was at least {least}, needed at most {amount}"
            );
        } else {
            let expected = match op {
                Op::Purchase { customer, .. } | Op::Reserve { customer, .. } => {
                    let uin = start.customer(*customer).0;
                    outcome == "Suspended" && (start.suspended[&uin] || toggled.contains(&uin))
                }
                Op::Commit { reservation } | Op::Cancel { reservation } => {
                    let Some(state) = start.reservation(*reservation).map(|deal| start.deals[deal].state)
                    else {
                        prop_assert_eq!(outcome.as_str(), "NoReservation");
                        continue;
                    };
                    let commit = matches!(op, Op::Commit { .. });
                    let contested = results.iter().enumerate().any(|(other, other_answer)| {
                        other != index
                            && matches!(other_answer.op, Op::Commit { .. } | Op::Cancel { .. })
                            && other_answer.deal == answer.deal
                    });
                    match (state, outcome.as_str()) {
                        // Another request for the same reservation was settling it.
                        (_, "PurchaseInProgress") => contested,
                        (DealState::Expired, "ReservationExpired") => true,
                        (DealState::Committed, "AlreadyCommitted") => !commit,
                        (DealState::Cancelled, "AlreadyCancelled") => commit,
                        // The other of a commit and a cancel in the same batch won.
                        (DealState::Open, "AlreadyCommitted") => !commit,
                        (DealState::Open, "AlreadyCancelled") => commit,
                        _ => false,
                    }
                }
                // Zero-cent allocations and credit changes are refused as changing nothing.
                Op::Allocate { cents: 0, .. }
                | Op::AllocatePool { cents: 0, .. }
                | Op::Grant { cents: 0, .. } => outcome == "InvalidAmount",
                _ => false,
            };
            prop_assert!(expected, "{label}: not a possible answer");
        }
    }
    let mut set_to: HashMap<Uin, Vec<bool>> = HashMap::new();
    for answer in &results {
        if let (Op::Suspend { customer, suspended }, "Ok") = (&answer.op, answer.outcome.as_str()) {
            set_to.entry(model.customer(*customer).0).or_default().push(*suspended);
        }
    }
    model.suspension_raced = set_to
        .into_iter()
        .filter(|(_, values)| values.contains(&true) && values.contains(&false))
        .map(|(uin, _)| uin)
        .collect();
    // Apply every acknowledged operation to the model.
    for (offset, (answer, plan)) in results.into_iter().zip(plans).enumerate() {
        if answer.outcome == "Ok" {
            let target = match answer.op {
                Op::Allocate { customer, .. } | Op::Suspend { customer, .. } => start.customer(customer),
                Op::CreateCustomer { parent } => {
                    (new_customer_uin(batch_index, first_index + offset), PARENTS[parent])
                }
                _ => (Uin(0), Uin(0)),
            };
            apply(model, answer, plan, target)?;
        }
    }
    Ok(())
}

/// A receipt's charges: each side's charge and deduction add up to the amount, and each
/// deduction is within its bounds (exact when predicted).
fn check_charges(label: &str, plan: &Plan, charges: &Charges, charged: Uin) -> Result<(), TestCaseError> {
    prop_assert_eq!(charged, plan.charged, "{}: charged partner", label);
    let deductions = [charges.customer_deduction, charges.partner_deduction];
    let credit = [charges.customer_charge, charges.partner_charge];
    for side in [CUSTOMER_SIDE, PARTNER_SIDE] {
        let (deduction, charge) = (deductions[side], credit[side]);
        prop_assert!(!deduction.is_negative() && !charge.is_negative(), "{label}: {charges:?}");
        prop_assert_eq!(deduction + charge, plan.amount, "{}: {:?}", label, charges);
        let side_plan = &plan.sides[side];
        prop_assert!(
            side_plan.low <= deduction && deduction <= side_plan.high,
            "{label}: side {side} deducted {deduction}, not within {} to {}",
            side_plan.low,
            side_plan.high
        );
        if let Some(split) = &side_plan.predicted {
            prop_assert_eq!(
                deduction,
                split_sum(split),
                "{}: side {} deducted, predicted {:?}",
                label,
                side,
                split
            );
        }
    }
    Ok(())
}

fn apply(
    model: &mut Model,
    answer: Answer,
    plan: Option<Plan>,
    target: (Uin, Uin),
) -> Result<(), TestCaseError> {
    let (uin, parent) = target;
    let op = &answer.op;
    match *op {
        Op::Grant { partner, cents } => {
            model.partners.get_mut(&CHARGEABLE[partner]).unwrap()[0] += money(cents)
        }
        Op::Allocate { cents, .. } => {
            model.customers.get_mut(&uin).unwrap()[0] += money(cents);
            match model.partners.get_mut(&parent) {
                Some(counters) => counters[1] += money(cents),
                None => model.pools.get_mut(&parent).unwrap()[1] += money(cents),
            }
        }
        Op::AllocatePool { sub_agent, cents } => {
            model.pools.get_mut(&SUB_AGENTS[sub_agent]).unwrap()[0] += money(cents);
            model.partners.get_mut(&D).unwrap()[1] += money(cents);
        }
        Op::Suspend { suspended, .. } => {
            model.suspended.insert(uin, suspended);
        }
        Op::CreateCustomer { .. } => {
            model.customers.insert(uin, [Money::ZERO; 4]);
            model.suspended.insert(uin, false);
            model.customer_list.push((uin, parent));
        }
        Op::Purchase { goods, .. } | Op::Reserve { goods, .. } => {
            let plan = plan.expect("purchases have a plan");
            let (charges, _) = answer.charges.expect("acknowledged purchases have charges");
            let deduction = [charges.customer_deduction, charges.partner_deduction];
            let charge = [charges.customer_charge, charges.partner_charge];
            let split = [CUSTOMER_SIDE, PARTNER_SIDE].map(|side| {
                if deduction[side].is_zero() {
                    Some(Vec::new())
                } else {
                    plan.sides[side].predicted.clone()
                }
            });
            let reserve = matches!(op, Op::Reserve { .. });
            let deal = Deal {
                id: answer.id.clone(),
                customer: plan.customer,
                charged: plan.charged,
                goods,
                time: model.now,
                step: model.step,
                month: month_of(model.now),
                deduction,
                charge,
                split: split.clone(),
                state: if reserve { DealState::Open } else { DealState::Purchased },
                deadline: answer.deadline.unwrap_or(i64::MAX),
            };
            if reserve {
                prop_assert!(answer.deadline.is_some(), "a reservation has a deadline");
                model.customers.get_mut(&plan.customer).unwrap()[2] += charge[CUSTOMER_SIDE];
                model.partners.get_mut(&plan.charged).unwrap()[3] += charge[PARTNER_SIDE];
                for (id, amount) in split.iter().flatten().flatten() {
                    model.voucher_mut(*id).held += *amount;
                }
                let index = model.add_deal(deal);
                model.reservations.push(index);
            } else {
                model.customers.get_mut(&plan.customer).unwrap()[1] += charge[CUSTOMER_SIDE];
                model.partners.get_mut(&plan.charged).unwrap()[2] += charge[PARTNER_SIDE];
                model.book(plan.customer, deal.month, charge[CUSTOMER_SIDE]);
                model.book(plan.charged, deal.month, charge[PARTNER_SIDE]);
                for (id, amount) in split.iter().flatten().flatten() {
                    model.voucher_mut(*id).settled.push((answer.id.clone(), *amount));
                }
                model.add_deal(deal);
            }
        }
        Op::Commit { .. } | Op::Cancel { .. } => {
            let commit = matches!(op, Op::Commit { .. });
            let index = answer.deal.expect("an acknowledged reservation");
            let deal = model.deals[index].clone();
            match (deal.state, commit) {
                (DealState::Open, true) => {
                    let customer = model.customers.get_mut(&deal.customer).unwrap();
                    customer[2] -= deal.charge[CUSTOMER_SIDE];
                    customer[1] += deal.charge[CUSTOMER_SIDE];
                    let partner = model.partners.get_mut(&deal.charged).unwrap();
                    partner[3] -= deal.charge[PARTNER_SIDE];
                    partner[2] += deal.charge[PARTNER_SIDE];
                    model.book(deal.customer, deal.month, deal.charge[CUSTOMER_SIDE]);
                    model.book(deal.charged, deal.month, deal.charge[PARTNER_SIDE]);
                    for (id, amount) in deal.split.iter().flatten().flatten() {
                        let voucher = model.voucher_mut(*id);
                        voucher.held -= *amount;
                        voucher.settled.push((deal.id.clone(), *amount));
                    }
                    model.deals[index].state = DealState::Committed;
                }
                (DealState::Open, false) => {
                    model.release(index);
                    model.deals[index].state = DealState::Cancelled;
                }
                // Idempotent repeats change nothing.
                (DealState::Committed, true) | (DealState::Cancelled, false) => {}
                (state, _) => prop_assert!(false, "{op:?} succeeded on a reservation in state {state:?}"),
            }
        }
        _ => unreachable!("{op:?} runs alone"),
    }
    Ok(())
}

/// Runs one operation of a sequential batch; the model predicts its answer exactly.
async fn run_step(
    engine: &Arc<Engine>,
    clock: &ManualClock,
    model: &mut Model,
    batch_index: usize,
    index: usize,
    op: Op,
) -> Result<(), TestCaseError> {
    let label = format!("batch {batch_index}, operation {index}: {op:?}");
    match op {
        Op::Advance { ms } => {
            advance(engine, clock, model, ms).await;
            return Ok(());
        }
        Op::EndOfMonth { ms } => {
            let ms = (month_of(model.now).end().0 - ms - model.now).max(0);
            advance(engine, clock, model, ms).await;
            return Ok(());
        }
        Op::NextMonth { confirm } => {
            // Exactly the first instant the current month can be confirmed.
            let month = month_of(model.now);
            advance(engine, clock, model, final_from(month) - model.now).await;
            if confirm {
                model.step += 1;
                let customers = model.customer_list.clone();
                for (uin, parent) in customers {
                    let expected = model.confirmation(uin, month);
                    let actual = outcome(engine.confirm_bill(Caller::Uin(parent), uin, month).await);
                    expect(&format!("{label}: ConfirmBill of {uin}"), &actual, &expected)?;
                    if let Ok(returned) = actual {
                        model.confirm(uin, month, returned);
                        model.customers.get_mut(&uin).unwrap()[1] -= returned;
                    }
                }
                for uin in CHARGEABLE {
                    let expected = model.confirmation(uin, month);
                    let actual = outcome(engine.settle_partner_bill(OP, uin, month).await);
                    expect(&format!("{label}: SettlePartnerBill of {uin}"), &actual, &expected)?;
                    if let Ok(returned) = actual {
                        model.confirm(uin, month, returned);
                        model.partners.get_mut(&uin).unwrap()[2] -= returned;
                    }
                }
            }
            return Ok(());
        }
        Op::Grant { .. }
        | Op::Allocate { .. }
        | Op::AllocatePool { .. }
        | Op::Suspend { .. }
        | Op::Purchase { .. }
        | Op::Reserve { .. }
        | Op::Commit { .. }
        | Op::Cancel { .. }
        | Op::CreateCustomer { .. } => return run_batch(engine, model, batch_index, index, vec![op]).await,
        _ => {}
    }
    model.step += 1;
    let step = model.step;
    let now = model.now;
    match op {
        Op::GrantVoucherQuota { parent, cents } => {
            let uin = PARENTS[parent];
            let delta = money(cents);
            let (total, issued, _) = model.voucher_pools[&uin];
            let expected = if cents == 0 {
                Err("InvalidAmount")
            } else if cents < 0 && total - issued < -delta {
                Err("InsufficientVoucherQuota")
            } else {
                Ok(total + delta)
            };
            let actual = outcome(engine.grant_voucher_quota(OP, uin, delta).await);
            expect(&label, &actual, &expected)?;
            if actual.is_ok() {
                model.voucher_pools.get_mut(&uin).unwrap().0 += delta;
            }
        }
        Op::IssueCustomerVoucher { customer, cents, scope, effective, expire } => {
            let (uin, parent) = model.customer(customer);
            let amount = money(cents);
            let (effective, expire) = (now + EFFECTIVE_MS[effective], now + EXPIRE_MS[expire]);
            let (total, issued, _) = model.voucher_pools[&parent];
            let expected = if expire <= now || effective >= expire {
                Err("InvalidParameter")
            } else if total - issued < amount {
                Err("InsufficientVoucherQuota")
            } else {
                Ok(())
            };
            let request = NewCustomerVoucher {
                customer: uin,
                amount,
                scope: scope_of(scope),
                effective: Timestamp(effective),
                expire: Timestamp(expire),
            };
            let actual = outcome(engine.issue_customer_voucher(Caller::Uin(parent), request).await);
            expect(&label, &actual.clone().map(drop), &expected)?;
            if let Ok(id) = actual {
                model.add_voucher(VoucherModel::new(
                    id,
                    uin,
                    VoucherKind::CustomerOffer { issuer: parent },
                    scope,
                    amount,
                    effective,
                    expire,
                    Some(step),
                ))?;
                let pool = model.voucher_pools.get_mut(&parent).unwrap();
                pool.1 += amount;
                pool.2 += 1;
            }
        }
        Op::ApplyPartnerVoucher { trial, partner, cents, scope, expire, approve } => {
            let (partner, kind, model_kind) = match trial {
                Some(customer) => {
                    let (uin, parent) = model.customer(customer);
                    (
                        charged_of(parent),
                        PartnerVoucherType::ProductTrial { customer: uin },
                        // The customer voucher's id follows the partner voucher's.
                        VoucherKind::PartnerTrial { customer: uin, associated: None },
                    )
                }
                None => (CHARGEABLE[partner], PartnerVoucherType::General, VoucherKind::PartnerGeneral),
            };
            let amount = money(cents);
            let expire = now + EXPIRE_MS[expire];
            let expected = if model.escrow {
                Err("Unsupported")
            } else if expire <= now {
                Err("InvalidParameter")
            } else {
                Ok(())
            };
            let request = NewPartnerVoucher {
                partner: None,
                kind,
                amount,
                scope: scope_of(scope),
                expire: Timestamp(expire),
            };
            let actual = outcome(engine.apply_partner_voucher(Caller::Uin(partner), request).await);
            expect(&label, &actual.clone().map(drop), &expected)?;
            if let Ok(id) = actual {
                // A product trial's customer voucher is created with it, pending.
                let model_kind = match model_kind {
                    VoucherKind::PartnerTrial { customer, .. } => {
                        let associated = VoucherId(id.0 + 1);
                        VoucherKind::PartnerTrial { customer, associated: Some(associated) }
                    }
                    other => other,
                };
                model.add_voucher(VoucherModel::new(
                    id, partner, model_kind, scope, amount, now, expire, None,
                ))?;
                if let VoucherKind::PartnerTrial { customer, associated: Some(associated) } = model_kind {
                    model.add_voucher(VoucherModel::new(
                        associated,
                        customer,
                        VoucherKind::CustomerTrial { partner_voucher: id },
                        scope,
                        amount,
                        now,
                        expire,
                        None,
                    ))?;
                }
                if approve {
                    approve_voucher(engine, model, &label, id).await?;
                }
            }
        }
        Op::ApproveVoucher { voucher } => {
            if let Some(voucher) = model.pick_voucher(voucher) {
                approve_voucher(engine, model, &label, voucher.id).await?;
            }
        }
        Op::WithdrawVoucher { voucher } => {
            let Some(voucher) = model.pick_voucher(voucher) else { return Ok(()) };
            let unavailable = Err("VoucherUnavailable");
            let (caller, expected) = match voucher.kind {
                // A partner voucher is invalidated, not withdrawn.
                VoucherKind::PartnerGeneral | VoucherKind::PartnerTrial { .. } => (OP, unavailable),
                VoucherKind::CustomerTrial { .. } => {
                    (Caller::Uin(model.parent_of(voucher.owner)), unavailable)
                }
                VoucherKind::CustomerOffer { issuer } => {
                    let used_up = voucher.remaining().is_zero() && voucher.held.is_zero();
                    let refused = voucher.invalidated.is_some() || used_up || now >= voucher.expire;
                    (Caller::Uin(issuer), if refused { unavailable } else { Ok(()) })
                }
            };
            let actual = outcome(engine.withdraw_customer_voucher(caller, voucher.id).await);
            expect(&label, &actual, &expected)?;
            if actual.is_ok() {
                model.voucher_mut(voucher.id).invalidated = Some(step);
            }
        }
        Op::InvalidateVoucher { voucher } => {
            let Some(voucher) = model.pick_voucher(voucher) else { return Ok(()) };
            let (caller, expected) = if voucher.is_partner() {
                (
                    Caller::Uin(voucher.owner),
                    if voucher.invalidated.is_some() { Err("VoucherUnavailable") } else { Ok(()) },
                )
            } else {
                (OP, Err("VoucherUnavailable"))
            };
            let actual = outcome(engine.invalidate_partner_voucher(caller, voucher.id).await);
            expect(&label, &actual, &expected)?;
            if actual.is_ok() {
                model.voucher_mut(voucher.id).invalidated = Some(step);
                if let VoucherKind::PartnerTrial { associated: Some(associated), .. } = voucher.kind {
                    model.voucher_mut(associated).invalidated.get_or_insert(step);
                }
            }
        }
        Op::SetTrialFirst { partner, enabled } => {
            let uin = CHARGEABLE[partner];
            let actual = outcome(engine.set_trial_voucher_priority(Caller::Uin(uin), None, enabled).await);
            expect(&label, &actual, &Ok(()))?;
            if enabled {
                model.trial_first_off.remove(&uin);
            } else {
                model.trial_first_off.insert(uin);
            }
        }
        Op::ActivatePostpaid { customer, resource, cents, coefficient } => {
            let (uin, parent) = model.customer(customer);
            let resource = RESOURCES[resource];
            let amount = money(cents);
            let coefficient: Decimal = COEFFICIENTS[coefficient].parse().unwrap();
            let frozen = frozen_of(amount, coefficient);
            let expected = if model.resources.contains_key(resource) {
                Err("ResourceTaken")
            } else if model.value(Resource::CustomerAvailable(uin)) < frozen {
                Err("InsufficientCustomerCredit")
            } else {
                Ok(frozen)
            };
            let actual = outcome(
                engine.activate_postpaid(Caller::Uin(parent), resource, uin, amount, Some(coefficient)).await,
            );
            expect(&label, &actual, &expected)?;
            if actual.is_ok() {
                model.customers.get_mut(&uin).unwrap()[3] += frozen;
                model.resources.insert(resource, (uin, frozen));
            }
        }
        Op::TerminatePostpaid { resource } => {
            let resource = RESOURCES[resource];
            let expected = match model.resources.get(resource) {
                None => Err("UnknownResource"),
                Some(&(uin, frozen)) => Ok((uin, model.value(Resource::CustomerAvailable(uin)) + frozen)),
            };
            let actual = outcome(engine.terminate_postpaid(OP, resource).await);
            expect(&label, &actual, &expected)?;
            if let Ok((uin, _)) = actual {
                let (_, frozen) = model.resources.remove(resource).unwrap();
                model.customers.get_mut(&uin).unwrap()[3] -= frozen;
            }
        }
        Op::ConfirmBill { customer, months_back } => {
            let (uin, parent) = model.customer(customer);
            let month = month_back(now, months_back);
            let expected = model.confirmation(uin, month);
            let actual = outcome(engine.confirm_bill(Caller::Uin(parent), uin, month).await);
            expect(&label, &actual, &expected)?;
            if let Ok(returned) = actual {
                model.confirm(uin, month, returned);
                model.customers.get_mut(&uin).unwrap()[1] -= returned;
            }
        }
        Op::SettlePartnerBill { partner, months_back } => {
            let uin = CHARGEABLE[partner];
            let month = month_back(now, months_back);
            let expected = model.confirmation(uin, month);
            let actual = outcome(engine.settle_partner_bill(OP, uin, month).await);
            expect(&label, &actual, &expected)?;
            if let Ok(returned) = actual {
                model.confirm(uin, month, returned);
                model.partners.get_mut(&uin).unwrap()[2] -= returned;
            }
        }
        _ => unreachable!("handled above"),
    }
    Ok(())
}

/// ApprovePartnerVoucher: refused for customer vouchers, invalidated, approved or expired
/// ones; a product trial voucher issues its customer voucher.
async fn approve_voucher(
    engine: &Engine,
    model: &mut Model,
    label: &str,
    id: VoucherId,
) -> Result<(), TestCaseError> {
    let (step, now) = (model.step, model.now);
    let voucher = model.voucher(id).clone();
    let refused = !voucher.is_partner()
        || voucher.invalidated.is_some()
        || voucher.approved.is_some()
        || now >= voucher.expire;
    let expected = if refused { Err("VoucherUnavailable") } else { Ok(()) };
    let actual = outcome(engine.approve_partner_voucher(OP, id).await);
    expect(&format!("{label}, approving {id}"), &actual.clone().map(drop), &expected)?;
    let Ok((approved, associated)) = actual else { return Ok(()) };
    prop_assert_eq!(approved, id);
    let entry = model.voucher_mut(id);
    entry.approved = Some(step);
    entry.effective = now;
    match (voucher.kind, associated) {
        (VoucherKind::PartnerGeneral, None) => {}
        (VoucherKind::PartnerTrial { associated: Some(expected), .. }, Some(associated)) => {
            prop_assert_eq!(associated, expected);
            let customer_voucher = model.voucher_mut(associated);
            customer_voucher.approved = Some(step);
            customer_voucher.effective = now;
        }
        (kind, associated) => prop_assert!(false, "{label}: {kind:?} approved with {associated:?}"),
    }
    Ok(())
}

/// Checks an account's voucher book against the model: the vouchers and their fixed fields,
/// their usage records against the committed purchases, their holds against the open ones.
/// Where the model did not know a purchase's split, it learns it here from the records (or,
/// for the only open purchase with an unknown split, from the holds), after checking it.
fn reconcile(model: &mut Model, owner: Uin, details: &AccountDetails) -> Result<(), TestCaseError> {
    let side = if model.customers.contains_key(&owner) { CUSTOMER_SIDE } else { PARTNER_SIDE };
    let positions: Vec<usize> =
        (0..model.vouchers.len()).filter(|&i| model.vouchers[i].owner == owner).collect();
    let engine_ids: Vec<VoucherId> = details.vouchers.iter().map(|voucher| voucher.id).collect();
    let model_ids: Vec<VoucherId> = positions.iter().map(|&i| model.vouchers[i].id).collect();
    prop_assert_eq!(engine_ids, model_ids, "the vouchers of {}", owner);
    let pairs: Vec<(&Voucher, usize)> = details.vouchers.iter().zip(positions.iter().copied()).collect();
    // Usage records: the ones the model knows, and new ones of committed purchases whose
    // split it did not know.
    let mut new_parts: BTreeMap<String, Split> = BTreeMap::new();
    for &(engine_voucher, position) in &pairs {
        let voucher = &model.vouchers[position];
        let label = format!("voucher {} of {owner}", voucher.id);
        check_fixed_fields(&label, engine_voucher, voucher)?;
        prop_assert!(
            !engine_voucher.remaining.is_negative() && !engine_voucher.held.is_negative(),
            "{label}: remaining {}, held {}",
            engine_voucher.remaining,
            engine_voucher.held
        );
        prop_assert_eq!(engine_voucher.usage_count(), engine_voucher.usage().len() as u64, "{}", label);
        let mut known = voucher.settled.clone();
        for record in engine_voucher.usage() {
            let id = record.purchase.as_str();
            let Some(deal) = model.deal(id) else {
                return Err(TestCaseError::fail(format!(
                    "{label}: a record of {id}, which the model never acknowledged"
                )));
            };
            let (product, pay) = GOODS[deal.goods];
            prop_assert!(
                record.customer == deal.customer
                    && record.pay == pay
                    && record.product.as_deref() == product
                    && record.amount.is_positive(),
                "{label}: record {record:?} of {deal:?}"
            );
            if let Some(position) =
                known.iter().position(|(known, amount)| known == id && *amount == record.amount)
            {
                known.swap_remove(position);
                continue;
            }
            prop_assert!(
                deal.settled() && deal.owner(side) == owner && deal.split[side].is_none(),
                "{label}: record {record:?}, the model expected {:?} ({deal:?})",
                voucher.settled
            );
            let parts = new_parts.entry(id.to_string()).or_default();
            prop_assert!(
                !parts.iter().any(|(other, _)| *other == voucher.id),
                "{label}: two records of {id}"
            );
            parts.push((voucher.id, record.amount));
        }
        prop_assert!(known.is_empty(), "{label}: records missing: {known:?}");
    }
    for index in 0..model.deals.len() {
        let deal = &model.deals[index];
        if !(deal.settled() && deal.owner(side) == owner && deal.split[side].is_none()) {
            continue;
        }
        let parts = new_parts.remove(&deal.id).unwrap_or_default();
        let label = format!("{owner}'s vouchers for {}", deal.id);
        prop_assert_eq!(split_sum(&parts), deal.deduction[side], "{}: records {:?}", label, parts);
        for (id, _) in &parts {
            prop_assert!(
                model.usable(model.voucher(*id), &deal.hold(side)),
                "{label}: voucher {id} was not usable"
            );
        }
        let id = deal.id.clone();
        for (voucher, amount) in &parts {
            model.voucher_mut(*voucher).settled.push((id.clone(), *amount));
        }
        model.deals[index].split[side] = Some(parts);
    }
    prop_assert!(
        new_parts.is_empty(),
        "{owner}: records of purchases the model did not expect: {new_parts:?}"
    );
    // Holds: the known splits of the open purchases, and what the unknown ones hold.
    let open: Vec<usize> = (0..model.deals.len())
        .filter(|&i| {
            let deal = &model.deals[i];
            deal.state == DealState::Open && deal.owner(side) == owner && deal.deduction[side].is_positive()
        })
        .collect();
    let unknown: Vec<usize> =
        open.iter().copied().filter(|&i| model.deals[i].split[side].is_none()).collect();
    let mut rest_total = Money::ZERO;
    let mut rest_split = Vec::new();
    for &(engine_voucher, position) in &pairs {
        let id = engine_voucher.id;
        let known: Money = open
            .iter()
            .filter_map(|&i| model.deals[i].split[side].as_ref())
            .flatten()
            .filter(|(voucher, _)| *voucher == id)
            .map(|(_, amount)| *amount)
            .sum();
        let rest = engine_voucher.held - known;
        prop_assert!(
            !rest.is_negative(),
            "voucher {id} of {owner} holds {}, its known holds {known}",
            engine_voucher.held
        );
        if rest.is_positive() {
            let voucher = &model.vouchers[position];
            prop_assert!(
                unknown.iter().any(|&i| model.usable(voucher, &model.deals[i].hold(side))),
                "voucher {id} of {owner} holds {rest} for no open purchase that could use it"
            );
            rest_split.push((id, rest));
        }
        rest_total += rest;
    }
    let unknown_total: Money = unknown.iter().map(|&i| model.deals[i].deduction[side]).sum();
    prop_assert_eq!(rest_total, unknown_total, "{}'s vouchers: held beyond the known splits", owner);
    if let [only] = unknown[..] {
        model.deals[only].split[side] = Some(rest_split);
    }
    for &(engine_voucher, position) in &pairs {
        let voucher = &mut model.vouchers[position];
        voucher.held = engine_voucher.held;
        prop_assert_eq!(
            engine_voucher.remaining,
            voucher.remaining(),
            "voucher {} of {}: remaining is not total - held - settled",
            voucher.id,
            owner
        );
    }
    Ok(())
}

fn check_fixed_fields(label: &str, engine: &Voucher, model: &VoucherModel) -> Result<(), TestCaseError> {
    prop_assert_eq!(engine.owner, model.owner, "{}", label);
    prop_assert_eq!(engine.kind, model.kind, "{}", label);
    prop_assert_eq!(&engine.scope, &scope_of(model.scope), "{}", label);
    prop_assert_eq!(engine.total, model.total, "{}", label);
    prop_assert_eq!((engine.effective.0, engine.expire.0), (model.effective, model.expire), "{}", label);
    prop_assert_eq!(
        (engine.approved, engine.invalidated),
        (model.approved.is_some(), model.invalidated.is_some()),
        "{}",
        label
    );
    Ok(())
}

/// Everything an account shows besides its voucher book: voucher quota, frozen resources,
/// open bill months, the trial-first switch.
fn check_details(model: &Model, view: &AccountView, details: &AccountDetails) -> Result<(), TestCaseError> {
    let uin = view.uin;
    let (total, issued, count) = model.voucher_pools.get(&uin).copied().unwrap_or_default();
    let pool = details.voucher_pool;
    prop_assert_eq!(
        (pool.total, pool.issued, pool.issued_count),
        (total, issued, count),
        "voucher quota of {}",
        uin
    );
    prop_assert!(!pool.remaining().is_negative(), "voucher quota of {uin}");
    let mut frozen: Vec<(String, Money)> =
        details.frozen.iter().map(|(resource, amount)| (resource.to_string(), *amount)).collect();
    frozen.sort();
    let expected: Vec<(String, Money)> = model
        .resources
        .iter()
        .filter(|(_, (owner, _))| *owner == uin)
        .map(|(resource, (_, amount))| (resource.to_string(), *amount))
        .collect();
    prop_assert_eq!(frozen, expected, "frozen resources of {}", uin);
    let bills: Vec<(Month, Money)> = model
        .bills
        .get(&uin)
        .map(|bills| bills.open.iter().map(|(m, s)| (*m, *s)).collect())
        .unwrap_or_default();
    prop_assert_eq!(&details.open_bills, &bills, "open bills of {}", uin);
    match view.role {
        Role::Customer { charged, .. } => {
            prop_assert_eq!(details.trial_first, model.trial_first(charged), "trial first of {}", uin)
        }
        Role::Distributor { .. } | Role::Reseller { .. } => {
            prop_assert_eq!(details.trial_first, model.trial_first(uin), "trial first of {}", uin)
        }
        Role::SecondLevelReseller { .. } => {}
    }
    Ok(())
}

async fn compare(engine: &Engine, model: &mut Model) -> Result<(), TestCaseError> {
    let audit = engine.audit().await.unwrap();
    prop_assert!(audit.ok(), "audit: {:?}", audit.violations);
    let views = engine.all_accounts().await.unwrap();
    for view in &views {
        let details = engine.account_details(OP, view.uin).await.unwrap();
        reconcile(model, view.uin, &details)?;
        check_details(model, view, &details)?;
    }
    for view in views {
        let vouchers = model.vouchers.iter().filter(|voucher| voucher.owner == view.uin);
        let settled: Money = vouchers.clone().map(VoucherModel::settled_sum).sum();
        let held: Money = vouchers.map(|voucher| voucher.held).sum();
        let returned = model.bills.get(&view.uin).map(|bills| bills.returned).unwrap_or_default();
        prop_assert_eq!(
            (view.vouchers_settled, view.vouchers_held, view.bills_returned),
            (settled, held, returned),
            "voucher deductions settled and held, bills returned, of {}",
            view.uin
        );
        match view.role {
            Role::Distributor { credit } | Role::Reseller { credit } => {
                let [total, allocated, used, reserved] = model.partners[&view.uin];
                prop_assert_eq!(
                    (credit.total, credit.allocated, credit.used, credit.reserved),
                    (total, allocated, used, reserved),
                    "partner {}",
                    view.uin
                );
            }
            Role::SecondLevelReseller { pool, .. } => {
                let [total, allocated] = model.pools[&view.uin];
                prop_assert_eq!((pool.total, pool.allocated), (total, allocated), "pool {}", view.uin);
            }
            Role::Customer { credit, suspended, .. } => {
                let [total, used, reserved, frozen] = model.customers[&view.uin];
                prop_assert_eq!(
                    (credit.total, credit.used, credit.reserved, credit.frozen),
                    (total, used, reserved, frozen),
                    "customer {}",
                    view.uin
                );
                if model.suspension_raced.contains(&view.uin) {
                    model.suspended.insert(view.uin, suspended);
                }
                prop_assert_eq!(suspended, model.suspended[&view.uin], "suspension of {}", view.uin);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sharded_matches_the_model(batches in batches()) {
        check_case(RuntimeKind::Sharded, batches)?;
    }

    /// Every chargeable partner's credit split into slices: the same model must hold.
    #[test]
    fn sharded_with_escrow_matches_the_model(batches in batches()) {
        let config = EngineConfig { escrow_partners: CHARGEABLE.to_vec(), ..EngineConfig::default() };
        check_case_with(RuntimeKind::Sharded, config, batches)?;
    }

    #[test]
    fn actix_matches_the_model(batches in batches()) {
        check_case(RuntimeKind::Actix, batches)?;
    }
}

/// Runs one case on every configuration the properties run on: sharded, sharded with every
/// chargeable partner escrowed, and actix.
fn check_case_everywhere(batches: Vec<Batch>) {
    let escrowed = EngineConfig { escrow_partners: CHARGEABLE.to_vec(), ..EngineConfig::default() };
    for (name, kind, config) in [
        ("sharded", RuntimeKind::Sharded, EngineConfig::default()),
        ("sharded with escrow", RuntimeKind::Sharded, escrowed),
        ("actix", RuntimeKind::Actix, EngineConfig::default()),
    ] {
        if let Err(error) = check_case_with(kind, config, batches.clone()) {
            panic!("{name}: {error}");
        }
    }
}

// Regressions found by the property test under an earlier strategy (flat batches of
// concurrent operations, no goods, a world starting from zero). Their seeds no longer
// generate these cases, so each is kept here as its concrete operations, with amounts
// re-derived for today's set-up so that the same interleaving is possible.

/// Post-mortem (seed b7d52eea, 0a4446c): a batch set one customer's suspension both ways.
/// The model applied acknowledged answers in the batch's order, so it expected the last one
/// in the batch to win; but ForceQN is last-writer-wins in the order the engine received the
/// calls, and the other one could land last. Fix: the model accepts either value for a
/// customer whose suspension was raced (`Model::suspension_raced`) and adopts the engine's.
/// The shrunk case had the race in its tenth batch among other operations; the race alone
/// is what failed, so here it is run many times in both batch orders, as the engine's order
/// differs from the batch's only some of the time.
#[test]
fn a_batch_that_suspends_and_restores_one_customer_accepts_either_outcome() {
    let race = |first: bool| {
        Batch::Concurrent(vec![
            Op::Suspend { customer: 2, suspended: first },
            Op::Suspend { customer: 2, suspended: !first },
        ])
    };
    let mut batches = vec![Batch::Concurrent(vec![
        Op::Grant { partner: 0, cents: 2642 },
        Op::Grant { partner: 2, cents: 19563 },
        Op::Suspend { customer: 2, suspended: false },
        Op::Suspend { customer: 2, suspended: true },
    ])];
    batches.extend((0..20).map(|round| race(round % 2 == 0)));
    check_case_everywhere(batches);
}

/// Post-mortem (seed c9f8a033, cbe6921): a credit-line reduction of R4 raced an allocation
/// from R4 to a customer that needed all of R4's allocable credit but the reduction's share.
/// When the reduction landed first, the allocation was refused with OverAllocable, rightly;
/// but the checker counted a reduction as consuming no allocable credit, so it called the
/// refusal impossible. Fix: the model counts a reduction as consuming allocable credit
/// (never checked, since a reduction may take allocable below zero). The shrunk case, in
/// cents from a world starting at zero: R4 +16370; a pool allocation of 0 (refused, and
/// irrelevant); then R4 -2287 racing an allocation of 14084 to customer 10, one cent more
/// than the 14083 left after the reduction. Today R4 starts with 4000 less allocable than
/// nothing (line 8000, allocated 12000), so the allocation is 10084: one cent more than the
/// 10083 left after the reduction, and within the 12370 there before it.
#[test]
fn an_allocation_racing_a_credit_line_reduction_may_be_refused_as_over_allocable() {
    check_case_everywhere(vec![
        Batch::Concurrent(vec![Op::Grant { partner: 1, cents: 16_370 }]),
        Batch::Concurrent(vec![
            Op::Grant { partner: 1, cents: -2_287 },
            Op::Allocate { customer: 0, cents: 10_084 },
        ]),
    ]);
}
