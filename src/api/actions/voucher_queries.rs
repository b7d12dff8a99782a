//! The upstream voucher queries, with their documented fields: `QueryVoucherPool`,
//! `QueryVoucherAmountByUin`, `QueryVoucherListByUin`, `DescribeCustomerVoucherList`,
//! `DescribeCustomerOwnVoucherList`, `DescribeCustomerVoucherUsageDetails` and
//! `DescribeCustomerOwnVoucherUsageDetails`.
//!
//! As written here:
//! - `VoucherStatus` filters take exactly the documented values `Issued`, `Used`, `Expired`,
//!   `Invalidated` (the reference's example value `Issused` is a typo and is refused, naming
//!   the valid ones); `QueryVoucherListByUin`'s `Status` takes `Unused`, `Used`, `Expired`,
//!   and its answer's `VoucherStatus` uses the same words (`Unused` for an issued voucher),
//!   plus `Invalidated` for a withdrawn one, which that filter cannot select.
//! - `RemainingAmount` / `RemainAmount` of a voucher is what purchases may still deduct:
//!   amounts held by open reservations are not in it. `QueryVoucherAmountByUin`'s
//!   `TotalAmount` is the sum of the denominations of the customer's vouchers that are not
//!   withdrawn, its `RemainAmount` what they can deduct now (as `RemainingVoucher` in
//!   `QueryCustomerBillingQuota`).
//! - The usage details without `Month` list every month: `Month` is `""` and
//!   `RecordsCountByMonth` counts all the records; `TotalRecordsCount` counts every
//!   deduction ever recorded (a voucher keeps its newest 10,000 for listing).
//!
//! Fields the engine has no data for, answered with a neutral value of the documented type:
//! - `DescribeCustomerVoucherList` `Data[]`: `ApplyReason` `""` (vouchers carry no
//!   application notes);
//! - `UsageDetail` (`Data[]` of both usage-details actions): `BillId` is the purchase id, as
//!   `DealName` is (the engine has no bills with ids of their own); `SubProductCode` `""`
//!   and `SubProductCodeName` `""` (purchases name no sub-product); `ProductCodeName` is the
//!   product code (there is no catalogue of names); `ProductCode` is `""` for a purchase
//!   that named none; `PayTime` and `CompletionTime` are both the time the deduction became
//!   final (the purchase's commit);
//! - `AgentName` of `QueryVoucherPool` is `""` when the partner has no name.

use serde_json::{json, Value};

use super::vouchers::{PAYMENT_MODES, PRODUCT_SCOPES};
use super::{own_account, page_param, profile_text, Answer, Context};
use crate::api::errors::ApiError;
use crate::api::params::Params;
use crate::api::{money, object, time, uin};
use crate::domain::voucher::{PaymentMode, ProductScope, Usage, UsageRecord, Voucher, VoucherStatus};
use crate::domain::{AccountKind, Action, Caller, Month, Timestamp, Uin, VoucherId};
use crate::engine::{VoucherFilter, VoucherListStatus, VOUCHER_UIN_LIST_MAX};

pub async fn query_voucher_pool(context: &Context<'_>, caller: Caller, (): ()) -> Answer {
    let partner = own_account(context, caller)?;
    let found =
        context.engine.query_voucher_pool(caller, partner).await.map_err(|error| context.refused(error))?;
    let account_type = match found.partner.kind() {
        AccountKind::Reseller => 1,
        AccountKind::Distributor => 2,
        AccountKind::SecondLevelReseller => 3,
        AccountKind::Customer => return Err(ApiError::internal("a customer has no voucher pool")),
    };
    Ok(json!({
        "AgentName": profile_text(&found.partner.profile.name),
        "AccountType": account_type,
        "TotalQuota": money(found.pool.total),
        "RemainingQuota": money(found.pool.remaining()),
        "IssuedNum": found.pool.issued_count,
    }))
}

pub fn read_client_uins(params: &mut Params, _: &Context) -> Result<Vec<Uin>, ApiError> {
    params.required_uins("ClientUins", VOUCHER_UIN_LIST_MAX, "InvalidParameterValue")
}

pub async fn query_voucher_amount(context: &Context<'_>, caller: Caller, uins: Vec<Uin>) -> Answer {
    let amounts = context
        .engine
        .query_voucher_amount_by_uin(caller, &uins)
        .await
        .map_err(|error| context.refused(error))?;
    let data: Vec<Value> = amounts
        .iter()
        .map(|amount| {
            json!({
                "ClientUin": uin(amount.customer),
                "TotalAmount": money(amount.total),
                "RemainAmount": money(amount.remaining),
            })
        })
        .collect();
    Ok(json!({ "Data": data }))
}

pub fn read_list_query(
    params: &mut Params,
    context: &Context,
) -> Result<(Vec<Uin>, Option<VoucherListStatus>), ApiError> {
    let uins = read_client_uins(params, context)?;
    let status = params.choice(
        "Status",
        |name| match name {
            "Unused" => Some(VoucherListStatus::Unused),
            "Used" => Some(VoucherListStatus::Used),
            "Expired" => Some(VoucherListStatus::Expired),
            _ => None,
        },
        "Unused, Used or Expired",
    )?;
    Ok((uins, status))
}

pub async fn query_voucher_list(
    context: &Context<'_>,
    caller: Caller,
    (uins, status): (Vec<Uin>, Option<VoucherListStatus>),
) -> Answer {
    let engine = context.engine;
    let lists = engine
        .query_voucher_list_by_uin(caller, &uins, status)
        .await
        .map_err(|error| context.refused(error))?;
    let now = engine.now();
    let data: Vec<Value> = lists
        .iter()
        .map(|(customer, vouchers)| {
            let items: Vec<Value> = vouchers
                .iter()
                .map(|voucher| {
                    let status = match voucher.status(now) {
                        VoucherStatus::Issued => "Unused",
                        other => other.name(),
                    };
                    json!({
                        "VoucherId": voucher.id.0.to_string(),
                        "VoucherStatus": status,
                        "TotalAmount": money(voucher.total),
                        "RemainAmount": money(voucher.remaining),
                    })
                })
                .collect();
            json!({ "ClientUin": uin(*customer), "TotalCount": items.len(), "Data": items })
        })
        .collect();
    Ok(json!({ "Data": data }))
}

/// A voucher list's page and filter. The partner's view (`DescribeCustomerVoucherList`)
/// also filters by customer and usage; the customer's own view does not have them.
pub struct VoucherListQuery {
    page: usize,
    page_size: usize,
    filter: VoucherFilter,
}

fn partner_view(context: &Context) -> bool {
    matches!(
        context.action,
        Action::DescribeCustomerVoucherList | Action::DescribeCustomerVoucherUsageDetails
    )
}

pub fn read_voucher_filter(params: &mut Params, context: &Context) -> Result<VoucherListQuery, ApiError> {
    let page = page_param(params, "Page", None, context)?;
    let page_size = page_param(params, "PageSize", None, context)?;
    let partner_view = partner_view(context);
    let customer = if partner_view { params.uin("CustomerUin")? } else { None };
    let status = params.choice(
        "VoucherStatus",
        |name| VoucherStatus::from_name(name).filter(|status| *status != VoucherStatus::PendingApproval),
        "Issued, Used, Expired or Invalidated",
    )?;
    let payment = params.choice("PaymentMode", PaymentMode::from_name, PAYMENT_MODES)?;
    let usage = if partner_view {
        params.choice("Usage", Usage::from_name, "ProductTrial or CustomerOffer")?
    } else {
        None
    };
    let products = params.choice("ProductScope", ProductScope::from_name, PRODUCT_SCOPES)?;
    let id = params.voucher_id("VoucherId")?;
    let filter = VoucherFilter { customer, status, payment, usage, products, id };
    Ok(VoucherListQuery { page, page_size, filter })
}

pub async fn describe_vouchers(context: &Context<'_>, caller: Caller, query: VoucherListQuery) -> Answer {
    let VoucherListQuery { page, page_size, filter } = query;
    let engine = context.engine;
    let partner_view = partner_view(context);
    let found = if partner_view {
        engine.describe_customer_voucher_list(caller, &filter, page, page_size).await
    } else {
        let customer = own_account(context, caller)?;
        engine.describe_customer_own_voucher_list(caller, customer, &filter, page, page_size).await
    }
    .map_err(|error| context.refused(error))?;
    let now = engine.now();
    let data: Vec<Value> =
        found.vouchers.iter().map(|voucher| customer_voucher(voucher, now, partner_view)).collect();
    Ok(json!({ "TotalCount": found.total, "Data": data }))
}

/// A voucher's usage details: the partner's view names the customer, the customer's own
/// view reads its own account.
pub struct UsageQuery {
    page: usize,
    page_size: usize,
    customer: Option<Uin>,
    id: VoucherId,
    month: Option<Month>,
}

pub fn read_usage_query(params: &mut Params, context: &Context) -> Result<UsageQuery, ApiError> {
    let page = page_param(params, "Page", None, context)?;
    let page_size = page_param(params, "PageSize", None, context)?;
    let customer = if partner_view(context) { Some(params.required_uin("CustomerUin")?) } else { None };
    let id = params.required_voucher_id("VoucherId")?;
    let month = params.month("Month")?;
    Ok(UsageQuery { page, page_size, customer, id, month })
}

pub async fn describe_usage(context: &Context<'_>, caller: Caller, query: UsageQuery) -> Answer {
    let UsageQuery { page, page_size, customer, id, month } = query;
    let partner_view = customer.is_some();
    let customer = match customer {
        Some(customer) => customer,
        None => own_account(context, caller)?,
    };
    let usage = context
        .engine
        .voucher_usage(caller, context.action, customer, id, month, page, page_size)
        .await
        .map_err(|error| context.refused(error))?;
    let data: Vec<Value> = usage.records.iter().map(|record| usage_detail(record, id)).collect();
    let mut fields = object(json!({
        "Data": data,
        "VoucherId": id.0,
        "TotalAmount": money(usage.voucher.total),
        "RemainAmount": money(usage.voucher.remaining),
        "TotalRecordsCount": usage.voucher.usage_count(),
        "Month": month.map(|month| month.to_string()).unwrap_or_default(),
        "RecordsCountByMonth": usage.month_records,
    }));
    if partner_view {
        fields.insert("CustomerUin".into(), uin(customer));
    }
    Ok(Value::Object(fields))
}

/// `DescribeCustomerVoucherItem` (with `Usage` and `ApplyReason`) or
/// `DescribeCustomerOwnVoucherItem`.
fn customer_voucher(voucher: &Voucher, now: Timestamp, with_usage: bool) -> Value {
    let mut item = object(json!({
        "VoucherId": voucher.id.0,
        "CustomerUin": uin(voucher.owner),
        "VoucherStatus": voucher.status(now).name(),
        "RemainingAmount": money(voucher.remaining),
        "TotalAmount": money(voucher.total),
        "PaymentMode": voucher.scope.payment.name(),
        "ProductScope": voucher.scope.products.name(),
        "EffectiveTime": time(voucher.effective),
        "ExpireTime": time(voucher.expire),
    }));
    if with_usage {
        item.insert("Usage".into(), json!(voucher.kind.usage().map(Usage::name)));
        item.insert("ApplyReason".into(), json!(""));
    }
    Value::Object(item)
}

/// `UsageDetail`: one deduction from a voucher.
fn usage_detail(record: &UsageRecord, voucher: VoucherId) -> Value {
    let product = record.product.as_deref().unwrap_or("");
    json!({
        "Id": record.log_id,
        "VoucherId": voucher.0.to_string(),
        "DealName": record.purchase.as_str(),
        "BillId": record.purchase.as_str(),
        "Amount": money(record.amount),
        "PayMode": record.pay.name(),
        "ProductCode": product,
        "SubProductCode": "",
        "ProductCodeName": product,
        "SubProductCodeName": "",
        "PayTime": time(record.time),
        "CompletionTime": time(record.time),
        "OwnerUin": uin(record.customer),
    })
}
