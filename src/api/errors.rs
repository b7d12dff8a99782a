//! API errors: an error code and a message, and the one mapping from the engine's refusals
//! and failures to the API's codes.

use std::borrow::Cow;

use crate::domain::{Action, KindRequired, Rejection};
use crate::engine::Error;

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
