//! The purchase coordinator: the ledger of purchases, the two-phase saga and the escrow of
//! hot partners' credit, as pure state machines that every runtime drives.
//!
//! Purchases are partitioned by a hash of their id; each partition is one [`Ledger`], owned
//! by one coordinator actor of the runtime. The ledger decides what a request means for the
//! purchase's record (new, a repeat, a conflict, too late) and hands out a [`Saga`]: the
//! sequence of account commands that carries it out. The runtime sends each command the
//! saga asks for to the account's actor and feeds the reply back, until the saga is done;
//! then [`Ledger::finish`] records the result and gives the answer.
//!
//! [`escrow`] holds the money rules of a runtime that splits a hot partner's credit into
//! slices: a slice serves the partner side of sagas from its share, and the partner's home
//! grants, recalls and settles; its invariant, `free + reserved + used = granted` per slice
//! and the home's hold equal to the slices' granted credit in total, is asserted after
//! every step.
//!
//! The protocol, per purchase id:
//!
//! ```text
//!            reserve / purchase            commit
//!   (none) ──────────────────► InFlight ─► Reserved ───────► Committed
//!                                 │            │  cancel
//!                                 │            ├───────────► Cancelled
//!                                 │            │  deadline
//!                                 │            └───────────► Expired
//!                                 ├──(one-shot purchase)───► Committed
//!                                 └──(refused)─────────────► Refused
//! ```
//!
//! Invariants:
//! - every amount reserved on an account belongs to exactly one record in `InFlight` or
//!   `Reserved`, or to a commit or release saga that is running; sagas always run to the end;
//! - a record's state changes only in `ledger.rs`, under the partition's actor;
//! - a terminal record is forgotten only after the retention window or when the partition
//!   holds more than its share of `resolved_capacity`; a repeat after that is a new purchase.

use serde::{Deserialize, Serialize};
pub mod escrow;
pub mod index;
mod ledger;
mod records;
mod saga;

pub use index::{IdIndex, IndexRead, Place};
pub use ledger::{Begin, ChargedOf, Ledger, LedgerImage, Next};
pub use records::{Key, Keys};
pub use saga::{Saga, SagaEnd, SagaKind, Step};

use compact_str::CompactString;

use crate::domain::voucher::{self, Deductions, PayMode};
use crate::domain::{Money, PurchaseId, Timestamp, Uin};

/// The customer's and the partner's voucher deductions; `None` when both are zero.
type Deducted = Option<Box<[Money; 2]>>;

/// A purchase as a client asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseRequest {
    pub id: PurchaseId,
    pub customer: Uin,
    pub amount: Money,
    /// What is bought, for voucher scopes.
    pub product_code: Option<CompactString>,
    /// How it is paid, for voucher payment modes.
    pub pay: PayMode,
}

impl PurchaseRequest {
    pub fn new(id: PurchaseId, customer: Uin, amount: Money) -> PurchaseRequest {
        PurchaseRequest { id, customer, amount, product_code: None, pay: PayMode::Prepaid }
    }
}

/// The voucher deductions a purchase holds on each side. Both empty (no allocation) for a
/// purchase no voucher covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holds {
    pub customer: Deductions,
    pub partner: Deductions,
    /// What each side deducted in all, kept when the deductions themselves have moved on
    /// (into a commit's settlement).
    totals: [Money; 2],
}

impl Holds {
    fn is_empty(&self) -> bool {
        self.customer.is_empty() && self.partner.is_empty()
    }
}

/// What a purchase deducted from vouchers and charged to credit, on each side: for each,
/// deduction + charge = the amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charges {
    pub customer_deduction: Money,
    pub partner_deduction: Money,
    pub customer_charge: Money,
    pub partner_charge: Money,
}

/// What a receipt keeps to answer [`Charges`]: the amount, and the two deductions when
/// vouchers made any (boxed: most purchases have none, and every ledger record keeps its
/// first answer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spent {
    amount: Money,
    deductions: Deducted,
}

impl Spent {
    fn new(amount: Money, customer_deduction: Money, partner_deduction: Money) -> Spent {
        let none = customer_deduction.is_zero() && partner_deduction.is_zero();
        Spent { amount, deductions: (!none).then(|| Box::new([customer_deduction, partner_deduction])) }
    }

    pub fn charges(&self) -> Charges {
        let [customer_deduction, partner_deduction] = self.deductions.as_deref().copied().unwrap_or_default();
        Charges {
            customer_deduction,
            partner_deduction,
            customer_charge: voucher::charge(self.amount, customer_deduction),
            partner_charge: voucher::charge(self.amount, partner_deduction),
        }
    }
}

/// How a purchase is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Reserve and commit in one call.
    OneShot,
    /// Reserve only; commit or cancel later, before `timeout_ms` has passed.
    Reserve { timeout_ms: i64 },
}

/// The answer to a purchase-protocol request that was not refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Purchased(PurchaseReceipt),
    Reserved(ReservationReceipt),
    Committed(PurchaseId),
    Cancelled(PurchaseId),
}

/// A committed one-shot purchase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseReceipt {
    pub id: PurchaseId,
    /// The partner charged: the reseller, or the distributor of a second-level reseller.
    pub charged: Uin,
    pub customer_available: Money,
    pub partner_available: Money,
    spent: Spent,
}

impl PurchaseReceipt {
    /// What each side's vouchers deducted and each side's credit paid.
    pub fn charges(&self) -> Charges {
        self.spent.charges()
    }
}

/// An open reservation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationReceipt {
    pub id: PurchaseId,
    pub charged: Uin,
    /// After this instant the engine releases the reservation.
    pub deadline: Timestamp,
    spent: Spent,
}

impl ReservationReceipt {
    /// What each side's vouchers hold and each side's credit holds.
    pub fn charges(&self) -> Charges {
        self.spent.charges()
    }
}

/// Limits of one ledger partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerLimits {
    /// How long a resolved purchase id is remembered for idempotent repeats.
    pub resolved_retention_ms: i64,
    /// How many resolved purchase ids this partition remembers at most.
    pub resolved_capacity: usize,
    /// How many reservations may be open at once in this partition.
    pub open_reservations_max: usize,
}

#[cfg(test)]
mod tests;
