//! The engine's own voucher actions (the upstream queries are [`super::voucher_queries`]).
//!
//! - `GrantVoucherQuota` {`PartnerUin`, `Quota` (an increment; negative takes back what is
//!   not issued)} -> {`TotalQuota`} (operator);
//! - `IssueCustomerVoucher` {`CustomerUin`, `Amount` (from 0 to 1000000, else
//!   `InvalidParameterValue.VoucherAmountOutOfRange`), `ProductScope`? (`AllProducts`,
//!   `SpecifyProducts`, `SpecifyProductsBlacklist`; default `AllProducts`), `ProductCodes`?
//!   (1 to 50 strings; required by the two lists, refused with `AllProducts`),
//!   `PaymentMode`? (`AllPayment`, the default, `Prepaid`, `Postpaid`), `EffectiveTime`?
//!   (default now), `ExpireTime`} -> {`VoucherId`}: by the customer's reseller or
//!   second-level reseller (or the operator), from that partner's voucher quota;
//! - `ApplyPartnerVoucher` {`Type`: `General` | `ProductTrial`, `PartnerUin` (required of the
//!   operator; a partner applies for itself), `CustomerUin` (required for `ProductTrial`,
//!   refused for `General`), `Amount`, `ProductScope`?, `ProductCodes`?, `PaymentMode`?,
//!   `ExpireTime`} -> {`VoucherId`, `VoucherStatus`: `PendingApproval`};
//! - `ApprovePartnerVoucher` {`VoucherId`} (operator) -> {`VoucherId`, `AssociatedVoucherId`:
//!   the customer voucher a `ProductTrial` voucher issues, `null` for a `General` one};
//! - `WithdrawCustomerVoucher` {`VoucherId`} -> {}; `InvalidatePartnerVoucher` {`VoucherId`}
//!   -> {} (its associated customer voucher becomes `Invalidated` too);
//! - `SetTrialVoucherPriority` {`Enabled`: true | false, `PartnerUin` (required of the
//!   operator)} -> {}.

use compact_str::CompactString;
use serde_json::{json, Value};

use super::{Answer, Context};
use crate::api::errors::ApiError;
use crate::api::money;
use crate::api::params::Params;
use crate::domain::voucher::{PaymentMode, ProductScope, Scope, Voucher};
use crate::domain::{Caller, Money, Timestamp, Uin, VoucherId};
use crate::engine::{NewCustomerVoucher, NewPartnerVoucher, PartnerVoucherType};

/// The names of a voucher's `ProductScope` and `PaymentMode`, for errors.
pub const PRODUCT_SCOPES: &str = "AllProducts, SpecifyProducts or SpecifyProductsBlacklist";
pub const PAYMENT_MODES: &str = "AllPayment, Prepaid or Postpaid";

pub fn read_quota_grant(params: &mut Params, _: &Context) -> Result<(Uin, Money), ApiError> {
    Ok((params.required_uin("PartnerUin")?, params.required_money("Quota")?))
}

pub async fn grant_voucher_quota(
    context: &Context<'_>,
    caller: Caller,
    (partner, quota): (Uin, Money),
) -> Answer {
    let total = context
        .engine
        .grant_voucher_quota(caller, partner, quota)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "TotalQuota": money(total) }))
}

/// A customer voucher as read; the effective time defaults to the engine's now when it is
/// issued.
pub struct CustomerVoucher {
    customer: Uin,
    amount: Money,
    scope: Scope,
    effective: Option<Timestamp>,
    expire: Timestamp,
}

pub fn read_customer_voucher(params: &mut Params, context: &Context) -> Result<CustomerVoucher, ApiError> {
    Ok(CustomerVoucher {
        customer: params.required_uin("CustomerUin")?,
        amount: voucher_amount(params)?,
        scope: voucher_scope(params, context)?,
        effective: params.time("EffectiveTime")?,
        expire: params.required_time("ExpireTime")?,
    })
}

pub async fn issue_customer_voucher(context: &Context<'_>, caller: Caller, read: CustomerVoucher) -> Answer {
    let CustomerVoucher { customer, amount, scope, effective, expire } = read;
    let effective = effective.unwrap_or_else(|| context.engine.now());
    let voucher = NewCustomerVoucher { customer, amount, scope, effective, expire };
    let id = context
        .engine
        .issue_customer_voucher(caller, voucher)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "VoucherId": voucher_id(id) }))
}

pub fn read_partner_voucher(params: &mut Params, context: &Context) -> Result<NewPartnerVoucher, ApiError> {
    let kind = params.required_string("Type")?;
    let partner = params.uin("PartnerUin")?;
    let customer = params.uin("CustomerUin")?;
    let kind = match (kind.as_str(), customer) {
        ("General", None) => PartnerVoucherType::General,
        ("General", Some(_)) => {
            return Err(ApiError::value("CustomerUin", "only a ProductTrial voucher names a customer"))
        }
        ("ProductTrial", Some(customer)) => PartnerVoucherType::ProductTrial { customer },
        ("ProductTrial", None) => return Err(ApiError::missing("CustomerUin")),
        (other, _) => {
            return Err(ApiError::value("Type", format!("{other:?} is not General or ProductTrial")))
        }
    };
    let amount = voucher_amount(params)?;
    let scope = voucher_scope(params, context)?;
    let expire = params.required_time("ExpireTime")?;
    Ok(NewPartnerVoucher { partner, kind, amount, scope, expire })
}

pub async fn apply_partner_voucher(
    context: &Context<'_>,
    caller: Caller,
    voucher: NewPartnerVoucher,
) -> Answer {
    require_partner_of_operator(caller, voucher.partner)?;
    let id = context
        .engine
        .apply_partner_voucher(caller, voucher)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "VoucherId": voucher_id(id), "VoucherStatus": "PendingApproval" }))
}

pub fn read_voucher_id(params: &mut Params, _: &Context) -> Result<VoucherId, ApiError> {
    params.required_voucher_id("VoucherId")
}

pub async fn approve_partner_voucher(context: &Context<'_>, caller: Caller, id: VoucherId) -> Answer {
    let (id, associated) =
        context.engine.approve_partner_voucher(caller, id).await.map_err(|error| context.refused(error))?;
    Ok(json!({ "VoucherId": voucher_id(id), "AssociatedVoucherId": associated.map(voucher_id) }))
}

pub async fn withdraw_customer_voucher(context: &Context<'_>, caller: Caller, id: VoucherId) -> Answer {
    context.engine.withdraw_customer_voucher(caller, id).await.map_err(|error| context.refused(error))?;
    Ok(json!({}))
}

pub async fn invalidate_partner_voucher(context: &Context<'_>, caller: Caller, id: VoucherId) -> Answer {
    context.engine.invalidate_partner_voucher(caller, id).await.map_err(|error| context.refused(error))?;
    Ok(json!({}))
}

pub fn read_priority(params: &mut Params, _: &Context) -> Result<(bool, Option<Uin>), ApiError> {
    let enabled = params.bool("Enabled")?.ok_or_else(|| ApiError::missing("Enabled"))?;
    Ok((enabled, params.uin("PartnerUin")?))
}

pub async fn set_trial_voucher_priority(
    context: &Context<'_>,
    caller: Caller,
    (enabled, partner): (bool, Option<Uin>),
) -> Answer {
    require_partner_of_operator(caller, partner)?;
    context
        .engine
        .set_trial_voucher_priority(caller, partner, enabled)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({}))
}

/// A partner acts for itself; the operator names the partner it acts for.
fn require_partner_of_operator(caller: Caller, partner: Option<Uin>) -> Result<(), ApiError> {
    if caller == Caller::Operator && partner.is_none() {
        return Err(ApiError::missing("PartnerUin"));
    }
    Ok(())
}

pub fn voucher_id(id: VoucherId) -> Value {
    Value::Number(id.0.into())
}

/// A voucher's `Amount`: from 0 to 1000000, as the upstream `VoucherAmountOutOfRange` and
/// the issue say.
fn voucher_amount(params: &mut Params) -> Result<Money, ApiError> {
    let amount = params.required_money("Amount")?;
    if amount.is_negative() || amount > Money::from_units(Voucher::AMOUNT_MAX) {
        return Err(ApiError::new(
            "InvalidParameterValue.VoucherAmountOutOfRange",
            format!("`Amount`: {amount} is not from 0 to {}", Voucher::AMOUNT_MAX),
        ));
    }
    Ok(amount)
}

/// `ProductScope`, `ProductCodes` and `PaymentMode` of a voucher.
fn voucher_scope(params: &mut Params, context: &Context) -> Result<Scope, ApiError> {
    let products = params
        .choice("ProductScope", ProductScope::from_name, PRODUCT_SCOPES)?
        .unwrap_or(ProductScope::AllProducts);
    let codes = params.strings("ProductCodes", Scope::CODES_MAX, "InvalidParameterValue")?;
    let payment = params
        .choice("PaymentMode", PaymentMode::from_name, PAYMENT_MODES)?
        .unwrap_or(PaymentMode::AllPayment);
    let codes = match (products, codes) {
        (ProductScope::AllProducts, codes) => codes.unwrap_or_default(),
        (_, Some(codes)) => codes,
        (_, None) => return Err(ApiError::missing("ProductCodes")),
    };
    Scope::new(products, codes.into_iter().map(CompactString::from).collect(), payment)
        .map_err(|rejection| context.rejected(&rejection))
}
