//! The closed set of refusals: expected outcomes of valid requests, not failures.
//!
//! When several refusals apply to one request, the first one checked wins. The checks run in
//! the order of the variants below, in these groups:
//! 1. the caller's quota for the action (`RateLimited`);
//! 2. what the request alone decides, before any state is read: operator-only actions,
//!    parameters, amounts and sizes (`OperatorOnly`, `InvalidParameter`, `InvalidAmount`,
//!    `BatchTooLarge`);
//! 3. the existence of what the request names (`UinTaken` for a UIN to create, checked
//!    before its parent; `UnknownUin`, `UnknownPurchase`, `UnknownVoucher`,
//!    `UnknownResource`);
//! 4. the kind of the accounts it names (`WrongKind`);
//! 5. whether the caller may act on them (`NotAuthorized`);
//! 6. their state (`ResourceTaken` to `Suspended`);
//! 7. amounts against credit (`InsufficientCustomerCredit` to `InsufficientVoucherQuota`).
//!
//! Two deliberate exceptions:
//! - The purchase protocol authorizes first: its coordinator refuses a caller that is
//!   neither the operator nor the customer a purchase names, then decides what the purchase
//!   id's record says (`PurchaseIdConflict` to `TooManyOpenReservations`), all before any
//!   account is read, so that a refused request can neither claim nor probe a purchase id.
//!   Only then do the accounts decide (existence, kind, suspension, the customer's credit,
//!   then the partner's).
//! - A caller that may not act on a voucher or a postpaid resource it names only by its id
//!   is told it does not exist (`UnknownVoucher`, `UnknownResource`): ids are global and
//!   sequential, and `NotAuthorized` would confirm them.
//!
//! `tests/precedence.rs` pins the order with one row per pair of conditions that can both
//! hold. Each variant names the condition, not the operation.
//!
//! Invariant: a refused operation changes nothing.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::ids::{Month, PurchaseId, Timestamp, Uin, VoucherId};
use super::money::Money;
use super::quota::Action;

/// The kind an account was required to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KindRequired {
    Customer,
    /// A distributor or a reseller: the partners that hold a credit line and are charged.
    ChargeablePartner,
    /// A reseller or a second-level reseller: the partners that have customers.
    CustomerParent,
    Distributor,
    SecondLevelReseller,
    /// Any partner (distributor, second-level reseller or reseller).
    Partner,
}

impl fmt::Display for KindRequired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KindRequired::Customer => "a customer",
            KindRequired::ChargeablePartner => "a distributor or reseller",
            KindRequired::CustomerParent => "a reseller or second-level reseller",
            KindRequired::Distributor => "a distributor",
            KindRequired::SecondLevelReseller => "a second-level reseller",
            KindRequired::Partner => "a partner",
        })
    }
}

/// Why the engine refused a request. Every variant is an expected outcome; none means the
/// engine is broken.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error, Serialize, Deserialize)]
pub enum Rejection {
    /// The caller used up its quota for this action; retry later.
    #[error("rate limit exceeded: {action} admits {per_second} requests per second per caller")]
    RateLimited { action: Action, per_second: u32 },
    /// An action only the platform operator may take (set-up, credit lines, imports).
    #[error("only the operator may {0}")]
    OperatorOnly(#[serde(deserialize_with = "static_text")] Text),
    /// A parameter outside its documented bounds (page size, list length, timeout, ...).
    #[error("invalid {parameter}: {reason}")]
    InvalidParameter {
        #[serde(deserialize_with = "static_text")]
        parameter: Text,
        reason: String,
    },
    /// An amount that is zero, negative or otherwise invalid where a positive one is needed.
    #[error("invalid amount {0}: {1}")]
    InvalidAmount(Money, #[serde(deserialize_with = "static_text")] Text),
    /// A batch with more requests than the engine takes at once.
    #[error("a batch holds at most {limit} purchases, got {len}")]
    BatchTooLarge { len: usize, limit: usize },
    /// Creating an account whose UIN is taken.
    #[error("UIN {0} already exists")]
    UinTaken(Uin),
    /// No account has this UIN.
    #[error("UIN {0} does not exist")]
    UnknownUin(Uin),
    /// No purchase with this id is known (never seen, or resolved and forgotten).
    #[error("purchase {0} does not exist")]
    UnknownPurchase(PurchaseId),
    /// No voucher with this id is known.
    #[error("voucher {0} does not exist")]
    UnknownVoucher(VoucherId),
    /// No active postpaid resource has this id.
    #[error("postpaid resource '{0}' is not active")]
    UnknownResource(String),
    /// The account is of another kind than the operation needs.
    #[error("UIN {uin} is not {required}")]
    WrongKind { uin: Uin, required: KindRequired },
    /// The caller may not act on this account: a partner acts only on its own customers and
    /// second-level resellers, a customer only on itself.
    #[error("caller {caller} may not act on UIN {target}")]
    NotAuthorized { caller: String, target: Uin },
    /// Activating a postpaid resource whose id is already active.
    #[error("postpaid resource '{0}' is already active")]
    ResourceTaken(String),
    /// The same purchase id was used before with other content.
    #[error("purchase {0} was already used with other content")]
    PurchaseIdConflict(PurchaseId),
    /// The purchase is being processed by another request; retry.
    #[error("purchase {0} is still in progress")]
    PurchaseInProgress(PurchaseId),
    /// The purchase was already committed.
    #[error("purchase {0} is already committed")]
    AlreadyCommitted(PurchaseId),
    /// The purchase was already cancelled.
    #[error("purchase {0} is already cancelled")]
    AlreadyCancelled(PurchaseId),
    /// The reservation passed its deadline and was released.
    #[error("reservation {0} expired and was released")]
    ReservationExpired(PurchaseId),
    /// The purchase is a one-shot purchase: it has no reservation to commit or cancel.
    #[error("purchase {0} was not made by a reservation")]
    NotAReservation(PurchaseId),
    /// The engine holds as many open reservations as it is configured to.
    #[error("too many open reservations (limit {0})")]
    TooManyOpenReservations(usize),
    /// An account holds as many of something (vouchers, postpaid resources) as it may.
    #[error("{what}: at most {limit}")]
    TooMany {
        #[serde(deserialize_with = "static_text")]
        what: Text,
        limit: usize,
    },
    /// A combination the engine does not offer, with the reason.
    #[error("not offered: {0}")]
    Unsupported(String),
    /// The voucher's state does not allow the operation (withdrawn, expired, used up, not
    /// pending approval, ...).
    #[error("voucher {id} {reason}")]
    VoucherUnavailable {
        id: VoucherId,
        #[serde(deserialize_with = "static_text")]
        reason: Text,
    },
    /// A bill month that a purchase may still be booked to.
    #[error("the {month} bill of UIN {uin} is not final: it can be confirmed from {final_from:?}")]
    BillNotFinal { uin: Uin, month: Month, final_from: Timestamp },
    /// A bill month confirmed before.
    #[error("the {month} bill of UIN {uin} is already confirmed")]
    BillConfirmed { uin: Uin, month: Month },
    /// Nothing was booked to this month.
    #[error("UIN {uin} has no bill for {month}")]
    NoBill { uin: Uin, month: Month },
    /// The customer is under forced service suspension.
    #[error("customer {0} is suspended")]
    Suspended(Uin),
    /// The customer's available credit does not cover its charge.
    #[error("customer {uin} has {available} available, the purchase needs {needed}")]
    InsufficientCustomerCredit { uin: Uin, available: Money, needed: Money },
    /// The charged partner's available credit does not cover its charge.
    #[error("partner {uin} has {available} available, the purchase needs {needed}")]
    InsufficientPartnerCredit { uin: Uin, available: Money, needed: Money },
    /// A positive allocation larger than the giver's allocable credit.
    #[error("UIN {uin} can allocate {allocable}, asked for {asked}")]
    OverAllocable { uin: Uin, allocable: Money, asked: Money },
    /// A repossession (or credit-line reduction) larger than the receiver's available credit.
    #[error("UIN {uin} has {available} that can be taken back, asked for {asked}")]
    OverRepossessable { uin: Uin, available: Money, asked: Money },
    /// A customer voucher larger than what is left of its issuer's voucher quota.
    #[error("UIN {uin} has {remaining} of voucher quota left, the voucher needs {asked}")]
    InsufficientVoucherQuota { uin: Uin, remaining: Money, asked: Money },
}

impl Rejection {
    /// The names of every variant, in precedence order; tests check that each has a case.
    pub const NAMES: [&'static str; 32] = [
        "RateLimited",
        "OperatorOnly",
        "InvalidParameter",
        "InvalidAmount",
        "BatchTooLarge",
        "UinTaken",
        "UnknownUin",
        "UnknownPurchase",
        "UnknownVoucher",
        "UnknownResource",
        "WrongKind",
        "NotAuthorized",
        "ResourceTaken",
        "PurchaseIdConflict",
        "PurchaseInProgress",
        "AlreadyCommitted",
        "AlreadyCancelled",
        "ReservationExpired",
        "NotAReservation",
        "TooManyOpenReservations",
        "TooMany",
        "Unsupported",
        "VoucherUnavailable",
        "BillNotFinal",
        "BillConfirmed",
        "NoBill",
        "Suspended",
        "InsufficientCustomerCredit",
        "InsufficientPartnerCredit",
        "OverAllocable",
        "OverRepossessable",
        "InsufficientVoucherQuota",
    ];

    /// A short, stable name for counting outcomes in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Rejection::RateLimited { .. } => "RateLimited",
            Rejection::UnknownUin(_) => "UnknownUin",
            Rejection::UnknownPurchase(_) => "UnknownPurchase",
            Rejection::UnknownVoucher(_) => "UnknownVoucher",
            Rejection::UnknownResource(_) => "UnknownResource",
            Rejection::WrongKind { .. } => "WrongKind",
            Rejection::UinTaken(_) => "UinTaken",
            Rejection::ResourceTaken(_) => "ResourceTaken",
            Rejection::NotAuthorized { .. } => "NotAuthorized",
            Rejection::OperatorOnly(_) => "OperatorOnly",
            Rejection::InvalidAmount(..) => "InvalidAmount",
            Rejection::InvalidParameter { .. } => "InvalidParameter",
            Rejection::BatchTooLarge { .. } => "BatchTooLarge",
            Rejection::PurchaseIdConflict(_) => "PurchaseIdConflict",
            Rejection::PurchaseInProgress(_) => "PurchaseInProgress",
            Rejection::AlreadyCommitted(_) => "AlreadyCommitted",
            Rejection::AlreadyCancelled(_) => "AlreadyCancelled",
            Rejection::ReservationExpired(_) => "ReservationExpired",
            Rejection::NotAReservation(_) => "NotAReservation",
            Rejection::TooManyOpenReservations(_) => "TooManyOpenReservations",
            Rejection::TooMany { .. } => "TooMany",
            Rejection::Unsupported(_) => "Unsupported",
            Rejection::VoucherUnavailable { .. } => "VoucherUnavailable",
            Rejection::BillNotFinal { .. } => "BillNotFinal",
            Rejection::BillConfirmed { .. } => "BillConfirmed",
            Rejection::NoBill { .. } => "NoBill",
            Rejection::Suspended(_) => "Suspended",
            Rejection::InsufficientCustomerCredit { .. } => "InsufficientCustomerCredit",
            Rejection::InsufficientPartnerCredit { .. } => "InsufficientPartnerCredit",
            Rejection::OverAllocable { .. } => "OverAllocable",
            Rejection::OverRepossessable { .. } => "OverRepossessable",
            Rejection::InsufficientVoucherQuota { .. } => "InsufficientVoucherQuota",
        }
    }
}

/// A text from the code that a rejection names (a parameter, a limit). Spelled as an alias
/// so that serde does not take it for a text borrowed from its input.
type Text = &'static str;

/// A text a rejection names from the code (a parameter, a limit), read back from the journal:
/// each distinct text is kept once for the life of the process, so that reading many records
/// costs nothing more. Only texts the code wrote come back (records are checksummed), so the
/// set stays as small as the code's.
fn static_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<&'static str, D::Error> {
    static TEXTS: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    let mut texts = TEXTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(kept) = texts.iter().find(|kept| **kept == text) {
        return Ok(kept);
    }
    let kept: &'static str = Box::leak(text.into_owned().into_boxed_str());
    texts.push(kept);
    Ok(kept)
}
