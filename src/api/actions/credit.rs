//! Allocation and the credit queries (upstream actions), with their documented fields:
//! `AllocateCustomerCredit`, `AllocateCreditPool`, `QueryCreditByUinList`,
//! `QueryDirectCustomersCredit`, `QueryCustomersCredit`, `QueryPartnerCredit`,
//! `QueryCreditAllocationHistory` and `QueryCustomerBillingQuota`.
//!
//! Fields the engine has no data for, answered with a neutral value of the documented type:
//! - `QueryCustomersCredit` `Data[]`: `Type` `""`, `Mobile` `""`, `RecentExpiry` `""`
//!   (credit never expires), `IdentifyType` `0` (not verified); `Arrears` is the documented
//!   constant `"-"`;
//! - `QueryCustomerBillingQuota` `Data`: `PrepayFrozen` `0` (the engine freezes only for
//!   postpaid products, which is `PostpayFrozen`).

use serde_json::{json, Value};

use super::{
    filter_of, filter_type, order_of, own_account, page_param, profile_text, Answer, Context,
    PAGE_SIZE_DEFAULT,
};
use crate::api::errors::ApiError;
use crate::api::params::Params;
use crate::api::{money, time, uin};
use crate::domain::{AccountView, AllocationRecord, Caller, Money, Role, Uin};
use crate::engine::{CustomerFilterField, CustomerQuery, UinCredit};

pub fn read_allocation(params: &mut Params, _: &Context) -> Result<(Uin, Money, Option<String>), ApiError> {
    Ok((params.required_uin("ClientUin")?, params.required_money("AddedCredit")?, params.string("Remark")?))
}

pub async fn allocate_customer_credit(
    context: &Context<'_>,
    caller: Caller,
    (customer, credit, remark): (Uin, Money, Option<String>),
) -> Answer {
    let line = context
        .engine
        .allocate_customer_credit(caller, customer, credit, remark)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "TotalCredit": money(line.total), "RemainingCredit": money(line.available) }))
}

pub fn read_pool_allocation(params: &mut Params, _: &Context) -> Result<(Uin, Money), ApiError> {
    Ok((params.required_uin("SubAgentUin")?, params.required_money("Credit")?))
}

pub async fn allocate_credit_pool(
    context: &Context<'_>,
    caller: Caller,
    (sub_agent, credit): (Uin, Money),
) -> Answer {
    let line = context
        .engine
        .allocate_credit_pool(caller, sub_agent, credit)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "TotalCredit": money(line.total), "RemainingCredit": money(line.available) }))
}

pub fn read_uin_list(params: &mut Params, _: &Context) -> Result<Vec<Uin>, ApiError> {
    params.required_uins("UinList", crate::engine::UIN_LIST_MAX, "InvalidParameterValue.UinList")
}

pub async fn query_credit_by_uin_list(context: &Context<'_>, caller: Caller, uins: Vec<Uin>) -> Answer {
    let credits = context
        .engine
        .query_credit_by_uin_list(caller, &uins)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "Data": credits.iter().map(uin_credit).collect::<Vec<_>>() }))
}

pub async fn query_direct_customers_credit(context: &Context<'_>, caller: Caller, (): ()) -> Answer {
    let partner = own_account(context, caller)?;
    let credits = context
        .engine
        .query_direct_customers_credit(caller, partner)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "Data": credits.iter().map(uin_credit).collect::<Vec<_>>() }))
}

pub fn read_customers_query(params: &mut Params, context: &Context) -> Result<CustomerQuery, ApiError> {
    let field = filter_type(
        params,
        |name| match name {
            "ClientUin" => Some(CustomerFilterField::ClientUin),
            "Name" => Some(CustomerFilterField::Name),
            "Remark" => Some(CustomerFilterField::Remark),
            "Email" => Some(CustomerFilterField::Email),
            _ => None,
        },
        "ClientUin, Name, Remark or Email",
    )?;
    let filter = filter_of(field, params.string("Filter")?)?;
    let page = page_param(params, "Page", Some(1), context)?;
    let page_size = page_param(params, "PageSize", Some(PAGE_SIZE_DEFAULT), context)?;
    let ascending = order_of(params.string("Order")?)?;
    Ok(CustomerQuery { filter, page, page_size, ascending })
}

pub async fn query_customers_credit(context: &Context<'_>, caller: Caller, query: CustomerQuery) -> Answer {
    let partner = own_account(context, caller)?;
    let (total, customers) = context
        .engine
        .query_customers_credit(caller, partner, &query)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "Total": total, "Data": customers.iter().map(customer_credit).collect::<Vec<_>>() }))
}

pub async fn query_partner_credit(context: &Context<'_>, caller: Caller, (): ()) -> Answer {
    let partner = own_account(context, caller)?;
    let credit =
        context.engine.query_partner_credit(caller, partner).await.map_err(|error| context.refused(error))?;
    Ok(json!({
        "TotalCredit": money(credit.total),
        "AllocatedCredit": money(credit.allocated),
        "RemainingCredit": money(credit.remaining),
        "CustomerTotalCredit": money(credit.customer_total),
        "CustomerRemainingCredit": money(credit.customer_remaining),
    }))
}

pub fn read_history_query(params: &mut Params, context: &Context) -> Result<(Uin, usize, usize), ApiError> {
    let customer = params.required_uin("ClientUin")?;
    let page = page_param(params, "Page", Some(1), context)?;
    let page_size = page_param(params, "PageSize", Some(PAGE_SIZE_DEFAULT), context)?;
    Ok((customer, page, page_size))
}

pub async fn query_allocation_history(
    context: &Context<'_>,
    caller: Caller,
    (customer, page, page_size): (Uin, usize, usize),
) -> Answer {
    let (total, records) = context
        .engine
        .query_credit_allocation_history(caller, customer, page, page_size)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "Total": total, "History": records.iter().map(allocation).collect::<Vec<_>>() }))
}

/// `EventId` and `ComponentName` tag the request for the caller's own logs: read for their
/// types, nothing done with them.
pub fn read_billing_quota(params: &mut Params, _: &Context) -> Result<(), ApiError> {
    params.integer("EventId")?;
    params.string("ComponentName")?;
    Ok(())
}

pub async fn query_customer_billing_quota(context: &Context<'_>, caller: Caller, (): ()) -> Answer {
    let customer = own_account(context, caller)?;
    let quota = context
        .engine
        .query_customer_billing_quota(caller, customer)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({
        "Data": {
            "TotalCredit": money(quota.total),
            "RemainingCredit": money(quota.remaining),
            "RemainingVoucher": money(quota.remaining_voucher),
            "Force": quota.force,
            "PrepayFrozen": 0,
            "PostpayFrozen": money(quota.postpay_frozen),
        }
    }))
}

pub(super) fn suspended(view: &AccountView) -> bool {
    matches!(view.role, Role::Customer { suspended: true, .. })
}

/// `QueryDirectCustomersCreditData`.
fn uin_credit(credit: &UinCredit) -> Value {
    json!({
        "Uin": uin(credit.uin),
        "TotalCredit": money(credit.total),
        "RemainingCredit": money(credit.remaining),
    })
}

/// `QueryCustomersCreditData`.
fn customer_credit(view: &AccountView) -> Value {
    json!({
        "ClientUin": uin(view.uin),
        "Name": profile_text(&view.profile.name),
        "Type": "",
        "Mobile": "",
        "Email": profile_text(&view.profile.email),
        "Arrears": "-",
        "AssociationTime": time(view.created),
        "RecentExpiry": "",
        "Credit": money(view.total()),
        "RemainingCredit": money(view.available()),
        "IdentifyType": 0,
        "Remark": profile_text(&view.profile.remark),
        "Force": if suspended(view) { 2 } else { 0 },
    })
}

/// `QueryCreditAllocationHistoryData`.
fn allocation(record: &AllocationRecord) -> Value {
    json!({
        "AllocatedTime": time(record.time),
        "Operator": record.operator.to_string(),
        "Credit": money(record.amount),
        "AllocatedCredit": money(record.total_after),
        "ClientCreditAfter": money(record.available_after),
        "Remark": profile_text(&record.remark),
    })
}
