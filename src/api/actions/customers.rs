//! Customers and second-level resellers (upstream actions), with their documented fields:
//! `ForceQN`, `ModifyClientRemark`, `DescribeCustomerUin`, `DescribeCustomerInfo`,
//! `QuerySubAgentsDetailV2` and `QueryT1IndirectCustomersDetail`.
//!
//! Fields the engine has no data for, answered with a neutral value of the documented type:
//! - `DescribeCustomerInfo` `Data[]`: `Phone` `""`, `AuthStatus` `"-1"` (not uploaded),
//!   `AuthType` `-1` (no such information), `CidRegisterTime`, `UinRegisterTime` and
//!   `AuthPassTime` `""`;
//! - `QuerySubAgentsDetailV2` `Data[]`: `Mobile` `""`, `Voucher` `0`, `RemainingVoucher` `0`
//!   (and the `Mobile` filter matches nothing);
//! - `ForceQN`: the deprecated `C` `0` and `M` `"success"`.
//!
//! `ClientBindTime` of `QueryT1IndirectCustomersDetail` is documented in UTC+08:00; every
//! other time the API writes is UTC.

use serde_json::{json, Value};

use super::credit::suspended;
use super::{filter_of, filter_type, order_of, own_account, page_param, profile_text, Answer, Context};
use crate::api::errors::ApiError;
use crate::api::params::Params;
use crate::api::{money, time, uin};
use crate::domain::{AccountView, Caller, Role, Uin};
use crate::engine::{SubAgentFilterField, SubAgentQuery, REMARK_MAX};

/// The offset of `ClientBindTime`'s time zone, UTC+08:00.
const UTC_PLUS_8_MS: i64 = 8 * 3_600_000;

pub fn read_suspension(params: &mut Params, _: &Context) -> Result<(Uin, bool), ApiError> {
    let customer = params.required_uin("ClientUin")?;
    let suspended = match params.required_integer("Type")? {
        0 => false,
        2 => true,
        other => {
            return Err(ApiError::value(
                "Type",
                format!("{other} is not 0 (normal) or 2 (forced service suspension)"),
            ))
        }
    };
    Ok((customer, suspended))
}

pub async fn force_qn(context: &Context<'_>, caller: Caller, (customer, suspended): (Uin, bool)) -> Answer {
    context
        .engine
        .set_suspension(caller, customer, suspended)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "C": 0, "M": "success" }))
}

pub fn read_remark(params: &mut Params, _: &Context) -> Result<(Uin, String), ApiError> {
    // Documented as a string holding the UIN.
    let customer = uin_text(&params.required_string("ClientUin")?)?;
    let remark = params.required_string("Remark")?;
    if remark.chars().count() > REMARK_MAX {
        return Err(ApiError::value("Remark", format!("has more than {REMARK_MAX} characters")));
    }
    Ok((customer, remark))
}

pub async fn modify_client_remark(
    context: &Context<'_>,
    caller: Caller,
    (customer, remark): (Uin, String),
) -> Answer {
    context
        .engine
        .set_remark(caller, customer, remark.clone())
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "ClientRemark": remark }))
}

/// `Page` and `PageSize`, both required.
pub fn read_pages(params: &mut Params, context: &Context) -> Result<(usize, usize), ApiError> {
    Ok((page_param(params, "Page", None, context)?, page_param(params, "PageSize", None, context)?))
}

pub async fn describe_customer_uin(
    context: &Context<'_>,
    caller: Caller,
    (page, page_size): (usize, usize),
) -> Answer {
    let partner = own_account(context, caller)?;
    let (total, uins) = context
        .engine
        .describe_customer_uins(caller, partner, page, page_size)
        .await
        .map_err(|error| context.refused(error))?;
    let data: Vec<Value> = uins.iter().map(|uin| json!({ "CustomerUin": uin.to_string() })).collect();
    Ok(json!({ "Data": data, "Total": total.to_string() }))
}

pub fn read_customer_uins(params: &mut Params, _: &Context) -> Result<Vec<Uin>, ApiError> {
    params.required_uins("CustomerUin", crate::engine::CUSTOMER_INFO_MAX, "InvalidParameterValue")
}

pub async fn describe_customer_info(context: &Context<'_>, caller: Caller, uins: Vec<Uin>) -> Answer {
    let customers =
        context.engine.describe_customer_info(caller, &uins).await.map_err(|error| context.refused(error))?;
    Ok(json!({ "Data": customers.iter().map(customer_info).collect::<Vec<_>>() }))
}

pub fn read_sub_agents_query(params: &mut Params, context: &Context) -> Result<SubAgentQuery, ApiError> {
    let (page, page_size) = read_pages(params, context)?;
    let field = filter_type(
        params,
        |name| match name {
            "Name" => Some(SubAgentFilterField::Name),
            "SubAgentUin" => Some(SubAgentFilterField::SubAgentUin),
            "Remark" => Some(SubAgentFilterField::Remark),
            "Mobile" => Some(SubAgentFilterField::Mobile),
            "Email" => Some(SubAgentFilterField::Email),
            "ClientUin" => Some(SubAgentFilterField::ClientUin),
            _ => None,
        },
        "Name, SubAgentUin, Remark, Mobile, Email or ClientUin",
    )?;
    let filter = filter_of(field, params.string("Filter")?)?;
    let ascending = order_of(params.string("Order")?)?;
    Ok(SubAgentQuery { filter, page, page_size, ascending })
}

pub async fn query_sub_agents_detail(context: &Context<'_>, caller: Caller, query: SubAgentQuery) -> Answer {
    let distributor = own_account(context, caller)?;
    let (total, sub_agents) = context
        .engine
        .query_sub_agents_detail(caller, distributor, &query)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "Total": total, "Data": sub_agents.iter().map(sub_agent_detail).collect::<Vec<_>>() }))
}

pub fn read_indirect_query(params: &mut Params, context: &Context) -> Result<(Uin, usize, usize), ApiError> {
    let sub_agent = params.required_uin("SubAgentUin")?;
    let (page, page_size) = read_pages(params, context)?;
    Ok((sub_agent, page, page_size))
}

pub async fn query_indirect_customers(
    context: &Context<'_>,
    caller: Caller,
    (sub_agent, page, page_size): (Uin, usize, usize),
) -> Answer {
    let found = context
        .engine
        .query_t1_indirect_customers(caller, sub_agent, page, page_size)
        .await
        .map_err(|error| context.refused(error))?;
    let data: Vec<Value> = found
        .customers
        .iter()
        .map(|customer| {
            json!({
                "ClientUin": uin(customer.uin),
                "ClientName": profile_text(&customer.profile.name),
                "ClientBindTime": time(customer.created.plus_ms(UTC_PLUS_8_MS)),
            })
        })
        .collect();
    Ok(json!({
        "Total": found.total,
        "SubAgentUin": uin(found.sub_agent.uin),
        "SubAgentName": profile_text(&found.sub_agent.profile.name),
        "Data": data,
    }))
}

/// A UIN written as a string.
fn uin_text(text: &str) -> Result<Uin, ApiError> {
    match text.trim().parse::<u64>() {
        Ok(value) if value > 0 => Ok(Uin(value)),
        _ => Err(ApiError::value("ClientUin", format!("{text:?} is not a UIN (a positive integer)"))),
    }
}

/// `DescribeCustomerInfoData`.
fn customer_info(view: &AccountView) -> Value {
    let has_expense = matches!(&view.role, Role::Customer { credit, .. } if credit.used.is_positive());
    json!({
        "CustomerUin": view.uin.to_string(),
        "Email": profile_text(&view.profile.email),
        "Phone": "",
        "Mark": profile_text(&view.profile.remark),
        "Name": profile_text(&view.profile.name),
        "BindTime": time(view.created),
        // 1 is the reference's "forcibly" suspended (ForceQN's type 2); 2 is suspension for
        // arrears, which the engine does not have.
        "AccountStatus": if suspended(view) { "1" } else { "0" },
        "AuthStatus": "-1",
        "AuthType": -1,
        "CidRegisterTime": "",
        "UinRegisterTime": "",
        "AuthPassTime": "",
        "HasExpense": i64::from(has_expense),
    })
}

/// `QuerySubAgentsDetailV2ResponseData`.
fn sub_agent_detail(view: &AccountView) -> Value {
    json!({
        "SubAgentUin": uin(view.uin),
        "Name": profile_text(&view.profile.name),
        "Remark": profile_text(&view.profile.remark),
        "Mobile": "",
        "Email": profile_text(&view.profile.email),
        "CountOfCustomers": view.children_count,
        "BindTime": time(view.created),
        "Credit": money(view.total()),
        "RemainingCredit": money(view.available()),
        "Voucher": 0,
        "RemainingVoucher": 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    #[test]
    fn uins_as_text_and_the_utc_plus_8_offset() {
        assert_eq!(uin_text(" 12 "), Ok(Uin(12)));
        for bad in ["0", "-3", "x", "", "1.5"] {
            assert_eq!(uin_text(bad).unwrap_err().code, "InvalidParameterValue", "{bad:?}");
        }
        assert_eq!(time(Timestamp(0).plus_ms(UTC_PLUS_8_MS)), Value::String("1970-01-01 08:00:00".into()));
    }
}
