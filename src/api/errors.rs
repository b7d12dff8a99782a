//! API errors: an error code and a message, the one mapping from the engine's refusals and
//! failures to the API's codes, and [`CODES`], every code the API answers (what a fault may
//! inject, and the label set of the request metrics).

use std::borrow::Cow;

use crate::domain::{Action, KindRequired, Rejection};
use crate::engine::Error;

/// Every error code the API answers, in the order the metrics list them. A test reads the
/// API's sources and checks that every code they write is here.
pub const CODES: &[&str] = &[
    "AuthFailure.InvalidAuthorization",
    "AuthFailure.SecretIdNotFound",
    "AuthFailure.SignatureExpire",
    "AuthFailure.SignatureFailure",
    "FailedOperation.BillConfirmed",
    "FailedOperation.BillNotFinal",
    "FailedOperation.InsufficientClientCredit",
    "FailedOperation.InsufficientPartnerCredit",
    "FailedOperation.InsufficientVoucherQuota",
    "FailedOperation.InvalidSubAgentUin",
    "FailedOperation.NotAReservation",
    "FailedOperation.PurchaseCancelled",
    "FailedOperation.PurchaseCommitted",
    "FailedOperation.PurchaseIdConflict",
    "FailedOperation.PurchaseInProgress",
    "FailedOperation.ReservationExpired",
    "FailedOperation.ServiceSuspended",
    "FailedOperation.TooManyOpenReservations",
    "FailedOperation.UinNotAgent",
    "FailedOperation.UinNotReseller",
    "FailedOperation.VoucherStatus",
    "InternalError",
    "InvalidAction",
    "InvalidParameter",
    "InvalidParameter.Page",
    "InvalidParameterValue",
    "InvalidParameterValue.Amount",
    "InvalidParameterValue.CreditAmountOutOfRange",
    "InvalidParameterValue.InvalidUin",
    "InvalidParameterValue.Items",
    "InvalidParameterValue.Purchases",
    "InvalidParameterValue.UinList",
    "InvalidParameterValue.VoucherAmountOutOfRange",
    "LimitExceeded",
    "MissingParameter",
    "NoSuchVersion",
    "RequestLimitExceeded",
    "RequestSizeLimitExceeded",
    "RequestTimeout",
    "ResourceInUse.ResourceId",
    "ResourceInUse.Uin",
    "ResourceNotFound.Bill",
    "ResourceNotFound.ClientUin",
    "ResourceNotFound.ParentUin",
    "ResourceNotFound.PartnerUin",
    "ResourceNotFound.PurchaseId",
    "ResourceNotFound.ResourceId",
    "ResourceNotFound.SubAgentUin",
    "ResourceNotFound.VoucherId",
    "ServiceUnavailable",
    "UnauthorizedOperation.NotCustomerUin",
    "UnauthorizedOperation.UinNoAuth",
    "UnknownParameter",
    "UnsupportedOperation",
];

/// The index of `code` in [`CODES`].
pub fn code_index(code: &str) -> Option<usize> {
    CODES.binary_search(&code).ok()
}

/// An error answer: `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: Cow<'static, str>,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { code: Cow::Borrowed(code), message: message.into() }
    }

    pub fn missing(parameter: &str) -> ApiError {
        ApiError::new(
            "MissingParameter",
            format!("the request is missing the required parameter `{parameter}`"),
        )
    }

    pub fn wrong_type(parameter: &str, expected: &str) -> ApiError {
        ApiError::new("InvalidParameter", format!("`{parameter}` must be {expected}"))
    }

    pub fn value(parameter: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::new("InvalidParameterValue", format!("`{parameter}`: {reason}"))
    }

    pub fn unknown(parameter: &str) -> ApiError {
        ApiError::new("UnknownParameter", format!("`{parameter}` is not a parameter of this action"))
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new("InternalError", message)
    }

    /// An engine error in the context of `action`.
    pub fn from_engine(error: Error, action: Action) -> ApiError {
        match error {
            Error::Rejected(rejection) => ApiError::rejected(&rejection, action),
            Error::Failed(failure) => ApiError::internal(failure.to_string()),
        }
    }

    /// A refusal in the context of `action`: the one place refusals get their codes.
    pub fn rejected(rejection: &Rejection, action: Action) -> ApiError {
        ApiError::new(rejection_code(rejection, action), rejection.to_string())
    }
}

/// The code of a refusal. Some depend on which parameter the action names the account by.
pub fn rejection_code(rejection: &Rejection, action: Action) -> &'static str {
    match rejection {
        Rejection::RateLimited { .. } => "RequestLimitExceeded",
        Rejection::UnknownUin(_) => match action {
            Action::AllocateCreditPool
            | Action::QuerySubAgentsDetailV2
            | Action::QueryT1IndirectCustomersDetail => "ResourceNotFound.SubAgentUin",
            // The partner named by `PartnerUin`, or the calling partner itself.
            Action::GrantPartnerCredit
            | Action::QueryPartnerCredit
            | Action::CreatePartner
            | Action::QueryCustomersCredit
            | Action::QueryDirectCustomersCredit
            | Action::DescribeCustomerUin
            | Action::QueryVoucherPool
            | Action::GrantVoucherQuota
            | Action::SetTrialVoucherPriority
            | Action::SettlePartnerBill => "ResourceNotFound.PartnerUin",
            Action::CreateClient => "ResourceNotFound.ParentUin",
            _ => "ResourceNotFound.ClientUin",
        },
        Rejection::UnknownPurchase(_) => "ResourceNotFound.PurchaseId",
        Rejection::UnknownVoucher(_) => "ResourceNotFound.VoucherId",
        Rejection::UnknownResource(_) => "ResourceNotFound.ResourceId",
        Rejection::WrongKind { required, .. } => match required {
            KindRequired::Customer => "InvalidParameterValue.InvalidUin",
            KindRequired::SecondLevelReseller => "FailedOperation.InvalidSubAgentUin",
            KindRequired::ChargeablePartner | KindRequired::Partner | KindRequired::Distributor => {
                "FailedOperation.UinNotAgent"
            }
            KindRequired::CustomerParent => "FailedOperation.UinNotReseller",
        },
        Rejection::UinTaken(_) => "ResourceInUse.Uin",
        Rejection::ResourceTaken(_) => "ResourceInUse.ResourceId",
        Rejection::NotAuthorized { .. } => match action {
            Action::AllocateCreditPool
            | Action::QueryPartnerCredit
            | Action::QuerySubAgentsDetailV2
            | Action::QueryT1IndirectCustomersDetail
            | Action::QueryVoucherPool
            | Action::ApplyPartnerVoucher
            | Action::InvalidatePartnerVoucher
            | Action::SetTrialVoucherPriority => "UnauthorizedOperation.UinNoAuth",
            _ => "UnauthorizedOperation.NotCustomerUin",
        },
        Rejection::OperatorOnly(_) => "UnauthorizedOperation.UinNoAuth",
        Rejection::InvalidAmount(..) => match action {
            Action::CreatePurchase
            | Action::ReservePurchase
            | Action::CreatePurchases
            | Action::ActivatePostpaid
            | Action::GrantVoucherQuota => "InvalidParameterValue.Amount",
            // The upstream code for a voucher's denomination outside 0 to 1000000.
            Action::IssueCustomerVoucher | Action::ApplyPartnerVoucher => {
                "InvalidParameterValue.VoucherAmountOutOfRange"
            }
            _ => "InvalidParameterValue.CreditAmountOutOfRange",
        },
        Rejection::InvalidParameter { parameter, .. } => match *parameter {
            "UinList" => "InvalidParameterValue.UinList",
            "Page" | "PageSize" => "InvalidParameter.Page",
            _ => "InvalidParameterValue",
        },
        Rejection::BatchTooLarge { .. } => "InvalidParameterValue.Purchases",
        Rejection::PurchaseIdConflict(_) => "FailedOperation.PurchaseIdConflict",
        Rejection::PurchaseInProgress(_) => "FailedOperation.PurchaseInProgress",
        Rejection::AlreadyCommitted(_) => "FailedOperation.PurchaseCommitted",
        Rejection::AlreadyCancelled(_) => "FailedOperation.PurchaseCancelled",
        Rejection::ReservationExpired(_) => "FailedOperation.ReservationExpired",
        Rejection::NotAReservation(_) => "FailedOperation.NotAReservation",
        Rejection::TooManyOpenReservations(_) => "FailedOperation.TooManyOpenReservations",
        Rejection::TooMany { .. } => "LimitExceeded",
        Rejection::Unsupported(_) => "UnsupportedOperation",
        Rejection::VoucherUnavailable { .. } => "FailedOperation.VoucherStatus",
        Rejection::BillNotFinal { .. } => "FailedOperation.BillNotFinal",
        Rejection::BillConfirmed { .. } => "FailedOperation.BillConfirmed",
        Rejection::NoBill { .. } => "ResourceNotFound.Bill",
        Rejection::Suspended(_) => "FailedOperation.ServiceSuspended",
        Rejection::InsufficientCustomerCredit { .. } => "FailedOperation.InsufficientClientCredit",
        Rejection::InsufficientPartnerCredit { .. } => "FailedOperation.InsufficientPartnerCredit",
        Rejection::OverAllocable { .. } | Rejection::OverRepossessable { .. } => {
            "InvalidParameterValue.CreditAmountOutOfRange"
        }
        Rejection::InsufficientVoucherQuota { .. } => "FailedOperation.InsufficientVoucherQuota",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API's sources: every code literal they hold.
    const SOURCES: &[&str] = &[
        include_str!("errors.rs"),
        include_str!("server.rs"),
        include_str!("auth.rs"),
        include_str!("params.rs"),
        include_str!("decode.rs"),
        include_str!("actions/mod.rs"),
        include_str!("actions/bills.rs"),
        include_str!("actions/control.rs"),
        include_str!("actions/credit.rs"),
        include_str!("actions/customers.rs"),
        include_str!("actions/fast.rs"),
        include_str!("actions/postpaid.rs"),
        include_str!("actions/purchases.rs"),
        include_str!("actions/setup.rs"),
        include_str!("actions/voucher_queries.rs"),
        include_str!("actions/vouchers.rs"),
        include_str!("actions/warnings.rs"),
        include_str!("actions/operator.rs"),
    ];

    /// The families codes start with.
    const FAMILIES: &[&str] = &[
        "AuthFailure",
        "FailedOperation",
        "InternalError",
        "InvalidAction",
        "InvalidParameter",
        "LimitExceeded",
        "MissingParameter",
        "NoSuchVersion",
        "RequestLimitExceeded",
        "RequestSizeLimitExceeded",
        "RequestTimeout",
        "ResourceInUse",
        "ResourceNotFound",
        "ServiceUnavailable",
        "UnauthorizedOperation",
        "UnknownParameter",
        "UnsupportedOperation",
    ];

    #[test]
    fn codes_are_sorted_distinct_and_cover_every_code_the_sources_write() {
        assert!(CODES.windows(2).all(|pair| pair[0] < pair[1]), "CODES is sorted, for code_index");
        let mut seen = 0;
        for source in SOURCES {
            // The code, not its tests (this test's own list of families among them).
            let source = source.split("#[cfg(test)]").next().unwrap_or_default();
            for family in FAMILIES {
                let opening = format!("\"{family}");
                for (at, _) in source.match_indices(&opening) {
                    let rest = &source[at + 1..];
                    let literal = &rest[..rest.find('"').expect("a closed literal")];
                    if literal.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
                        assert!(code_index(literal).is_some(), "{literal} is answered but not in CODES");
                        seen += 1;
                    }
                }
            }
        }
        assert!(seen > CODES.len(), "the sources were read ({seen} code literals)");
        assert_eq!(code_index("InternalError").map(|index| CODES[index]), Some("InternalError"));
        assert_eq!(code_index("Nope"), None);
    }
}
