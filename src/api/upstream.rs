//! The upstream intlpartnersmgt actions the engine offers, with their documented request
//! and response fields; every other upstream action is counted against its quota and
//! answers `UnsupportedOperation`.
//!
//! Offered: `AllocateCustomerCredit`, `AllocateCreditPool`, `QueryCreditByUinList`,
//! `QueryCustomersCredit`, `QueryDirectCustomersCredit`, `QueryPartnerCredit`,
//! `QueryCreditAllocationHistory`, `QueryCustomerBillingQuota`, `ForceQN`,
//! `DescribeCustomerUin`, `DescribeCustomerInfo`, `QuerySubAgentsDetailV2`,
//! `QueryT1IndirectCustomersDetail`, `ModifyClientRemark`, and the vouchers:
//! `QueryVoucherPool`, `QueryVoucherAmountByUin`, `QueryVoucherListByUin`,
//! `DescribeCustomerVoucherList`, `DescribeCustomerOwnVoucherList`,
//! `DescribeCustomerVoucherUsageDetails`, `DescribeCustomerOwnVoucherUsageDetails`.
//!
//! Whose account: actions with a UIN parameter act on that account, as the engine authorizes
//! (a partner on its own customers and second-level resellers, a customer on itself, the
//! operator on everything; a distributor also reads the vouchers of its second-level
//! resellers' customers). Actions without one (`QueryPartnerCredit`,
//! `QueryDirectCustomersCredit`, `QueryCustomersCredit`, `DescribeCustomerUin`,
//! `QuerySubAgentsDetailV2`, `QueryCustomerBillingQuota`, `QueryVoucherPool`,
//! `DescribeCustomerOwnVoucherList`, `DescribeCustomerOwnVoucherUsageDetails`) read the
//! caller's own account; the operator has none, so its call is counted against its quota
//! and refused with `UnauthorizedOperation.UinNoAuth`.
//!
//! Paging: `Page` counts from 1; `PageSize` is 1 to 100 where the reference says so
//! (`QuerySubAgentsDetailV2`, `QueryT1IndirectCustomersDetail`, the voucher lists and usage
//! details) and 1 to [`crate::engine::PAGE_SIZE_MAX`] elsewhere; when optional they default
//! to 1 and [`PAGE_SIZE_DEFAULT`]. Out of range is `InvalidParameter.Page`. Lists are ordered
//! by association (binding) time, newest first unless `Order` says `asc`; voucher lists by
//! voucher id, newest first; usage details newest first.
//!
//! Vouchers, as written here:
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
//! - `QueryCustomersCredit` `Data[]`: `Type` `""`, `Mobile` `""`, `RecentExpiry` `""`
//!   (credit never expires), `IdentifyType` `0` (not verified); `Arrears` is the documented
//!   constant `"-"`;
//! - `QueryCustomerBillingQuota` `Data`: `PrepayFrozen` `0` (the engine freezes only for
//!   postpaid products, which is `PostpayFrozen`);
//! - `DescribeCustomerInfo` `Data[]`: `Phone` `""`, `AuthStatus` `"-1"` (not uploaded),
//!   `AuthType` `-1` (no such information), `CidRegisterTime`, `UinRegisterTime` and
//!   `AuthPassTime` `""`;
//! - `QuerySubAgentsDetailV2` `Data[]`: `Mobile` `""`, `Voucher` `0`, `RemainingVoucher` `0`
//!   (and the `Mobile` filter matches nothing);
//! - `ForceQN`: the deprecated `C` `0` and `M` `"success"`;
//! - `DescribeCustomerVoucherList` `Data[]`: `ApplyReason` `""` (vouchers carry no
//!   application notes);
//! - `UsageDetail` (`Data[]` of both usage-details actions): `BillId` is the purchase id, as
//!   `DealName` is (the engine has no bills with ids of their own); `SubProductCode` `""`
//!   and `SubProductCodeName` `""` (purchases name no sub-product); `ProductCodeName` is the
//!   product code (there is no catalogue of names); `ProductCode` is `""` for a purchase
//!   that named none; `PayTime` and `CompletionTime` are both the time the deduction became
//!   final (the purchase's commit);
//! - a name, e-mail or remark never set is `""` (`AgentName` of `QueryVoucherPool` too).

use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::params::Params;
use super::{money, time, uin};
use crate::domain::voucher::{PaymentMode, ProductScope, Usage, UsageRecord, Voucher, VoucherStatus};
use crate::domain::{
    AccountKind, AccountView, Action, AllocationRecord, Caller, Rejection, Role, Timestamp, Uin, VoucherId,
};
use crate::engine::{
    CustomerFilterField, CustomerQuery, Engine, SubAgentFilterField, SubAgentQuery, UinCredit, VoucherFilter,
    VoucherListStatus, VOUCHER_UIN_LIST_MAX,
};

/// The page size of `QueryCustomersCredit` and `QueryCreditAllocationHistory` when the
/// request names none (the reference gives no default).
pub const PAGE_SIZE_DEFAULT: usize = 20;

use crate::engine::REMARK_MAX;

/// `ClientBindTime` of `QueryT1IndirectCustomersDetail` is documented in UTC+08:00; every
/// other time the API writes is UTC.
const UTC_PLUS_8_MS: i64 = 8 * 3_600_000;

pub async fn handle(
    engine: &Engine,
    caller: Caller,
    action: Action,
    mut params: Params,
) -> Result<Map<String, Value>, ApiError> {
    let engine_error = |error| ApiError::from_engine(error, action);
    let fields = match action {
        Action::AllocateCustomerCredit => {
            let customer = params.required_uin("ClientUin")?;
            let credit = params.required_money("AddedCredit")?;
            let remark = params.string("Remark")?;
            params.finish()?;
            let line = engine
                .allocate_customer_credit(caller, customer, credit, remark)
                .await
                .map_err(engine_error)?;
            json!({ "TotalCredit": money(line.total), "RemainingCredit": money(line.available) })
        }
        Action::AllocateCreditPool => {
            let sub_agent = params.required_uin("SubAgentUin")?;
            let credit = params.required_money("Credit")?;
            params.finish()?;
            let line = engine.allocate_credit_pool(caller, sub_agent, credit).await.map_err(engine_error)?;
            json!({ "TotalCredit": money(line.total), "RemainingCredit": money(line.available) })
        }
        Action::QueryCreditByUinList => {
            let uins = params.required_uins(
                "UinList",
                crate::engine::UIN_LIST_MAX,
                "InvalidParameterValue.UinList",
            )?;
            params.finish()?;
            let credits = engine.query_credit_by_uin_list(caller, &uins).await.map_err(engine_error)?;
            json!({ "Data": credits.iter().map(uin_credit).collect::<Vec<_>>() })
        }
        Action::QueryDirectCustomersCredit => {
            params.finish()?;
            let partner = own_account(engine, caller, action)?;
            let credits =
                engine.query_direct_customers_credit(caller, partner).await.map_err(engine_error)?;
            json!({ "Data": credits.iter().map(uin_credit).collect::<Vec<_>>() })
        }
        Action::QueryCustomersCredit => {
            let field = params
                .string("FilterType")?
                .filter(|name| !name.is_empty())
                .map(|name| match name.as_str() {
                    "ClientUin" => Ok(CustomerFilterField::ClientUin),
                    "Name" => Ok(CustomerFilterField::Name),
                    "Remark" => Ok(CustomerFilterField::Remark),
                    "Email" => Ok(CustomerFilterField::Email),
                    other => Err(ApiError::value(
                        "FilterType",
                        format!("{other:?} is not ClientUin, Name, Remark or Email"),
                    )),
                })
                .transpose()?;
            let filter = filter_of(field, params.string("Filter")?)?;
            let page = page_param(&mut params, "Page", Some(1), action)?;
            let page_size = page_param(&mut params, "PageSize", Some(PAGE_SIZE_DEFAULT), action)?;
            let ascending = order_of(params.string("Order")?)?;
            params.finish()?;
            let partner = own_account(engine, caller, action)?;
            let query = CustomerQuery { filter, page, page_size, ascending };
            let (total, customers) =
                engine.query_customers_credit(caller, partner, &query).await.map_err(engine_error)?;
            json!({ "Total": total, "Data": customers.iter().map(customer_credit).collect::<Vec<_>>() })
        }
        Action::QueryPartnerCredit => {
            params.finish()?;
            let partner = own_account(engine, caller, action)?;
            let credit = engine.query_partner_credit(caller, partner).await.map_err(engine_error)?;
            json!({
                "TotalCredit": money(credit.total),
                "AllocatedCredit": money(credit.allocated),
                "RemainingCredit": money(credit.remaining),
                "CustomerTotalCredit": money(credit.customer_total),
                "CustomerRemainingCredit": money(credit.customer_remaining),
            })
        }
        Action::QueryCreditAllocationHistory => {
            let customer = params.required_uin("ClientUin")?;
            let page = page_param(&mut params, "Page", Some(1), action)?;
            let page_size = page_param(&mut params, "PageSize", Some(PAGE_SIZE_DEFAULT), action)?;
            params.finish()?;
            let (total, records) = engine
                .query_credit_allocation_history(caller, customer, page, page_size)
                .await
                .map_err(engine_error)?;
            json!({ "Total": total, "History": records.iter().map(allocation).collect::<Vec<_>>() })
        }
        Action::QueryCustomerBillingQuota => {
            // Tags of the request for the caller's own logs; nothing to do with them here.
            params.integer("EventId")?;
            params.string("ComponentName")?;
            params.finish()?;
            let customer = own_account(engine, caller, action)?;
            let quota = engine.query_customer_billing_quota(caller, customer).await.map_err(engine_error)?;
            json!({
                "Data": {
                    "TotalCredit": money(quota.total),
                    "RemainingCredit": money(quota.remaining),
                    "RemainingVoucher": money(quota.remaining_voucher),
                    "Force": quota.force,
                    "PrepayFrozen": 0,
                    "PostpayFrozen": money(quota.postpay_frozen),
                }
            })
        }
        Action::ForceQN => {
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
            params.finish()?;
            engine.set_suspension(caller, customer, suspended).await.map_err(engine_error)?;
            json!({ "C": 0, "M": "success" })
        }
        Action::ModifyClientRemark => {
            // Documented as a string holding the UIN.
            let customer = uin_text(&params.required_string("ClientUin")?)?;
            let remark = params.required_string("Remark")?;
            if remark.chars().count() > REMARK_MAX {
                return Err(ApiError::value("Remark", format!("has more than {REMARK_MAX} characters")));
            }
            params.finish()?;
            engine.set_remark(caller, customer, remark.clone()).await.map_err(engine_error)?;
            json!({ "ClientRemark": remark })
        }
        Action::DescribeCustomerUin => {
            let page = page_param(&mut params, "Page", None, action)?;
            let page_size = page_param(&mut params, "PageSize", None, action)?;
            params.finish()?;
            let partner = own_account(engine, caller, action)?;
            let (total, uins) = engine
                .describe_customer_uins(caller, partner, page, page_size)
                .await
                .map_err(engine_error)?;
            let data: Vec<Value> = uins.iter().map(|uin| json!({ "CustomerUin": uin.to_string() })).collect();
            json!({ "Data": data, "Total": total.to_string() })
        }
        Action::DescribeCustomerInfo => {
            let uins = params.required_uins(
                "CustomerUin",
                crate::engine::CUSTOMER_INFO_MAX,
                "InvalidParameterValue",
            )?;
            params.finish()?;
            let customers = engine.describe_customer_info(caller, &uins).await.map_err(engine_error)?;
            json!({ "Data": customers.iter().map(customer_info).collect::<Vec<_>>() })
        }
        Action::QuerySubAgentsDetailV2 => {
            let page = page_param(&mut params, "Page", None, action)?;
            let page_size = page_param(&mut params, "PageSize", None, action)?;
            let field = params
                .string("FilterType")?
                .filter(|name| !name.is_empty())
                .map(|name| match name.as_str() {
                    "Name" => Ok(SubAgentFilterField::Name),
                    "SubAgentUin" => Ok(SubAgentFilterField::SubAgentUin),
                    "Remark" => Ok(SubAgentFilterField::Remark),
                    "Mobile" => Ok(SubAgentFilterField::Mobile),
                    "Email" => Ok(SubAgentFilterField::Email),
                    "ClientUin" => Ok(SubAgentFilterField::ClientUin),
                    other => Err(ApiError::value(
                        "FilterType",
                        format!("{other:?} is not Name, SubAgentUin, Remark, Mobile, Email or ClientUin"),
                    )),
                })
                .transpose()?;
            let filter = filter_of(field, params.string("Filter")?)?;
            let ascending = order_of(params.string("Order")?)?;
            params.finish()?;
            let distributor = own_account(engine, caller, action)?;
            let query = SubAgentQuery { filter, page, page_size, ascending };
            let (total, sub_agents) =
                engine.query_sub_agents_detail(caller, distributor, &query).await.map_err(engine_error)?;
            json!({ "Total": total, "Data": sub_agents.iter().map(sub_agent_detail).collect::<Vec<_>>() })
        }
        Action::QueryT1IndirectCustomersDetail => {
            let sub_agent = params.required_uin("SubAgentUin")?;
            let page = page_param(&mut params, "Page", None, action)?;
            let page_size = page_param(&mut params, "PageSize", None, action)?;
            params.finish()?;
            let found = engine
                .query_t1_indirect_customers(caller, sub_agent, page, page_size)
                .await
                .map_err(engine_error)?;
            let data: Vec<Value> = found
                .customers
                .iter()
                .map(|customer| {
                    json!({
                        "ClientUin": uin(customer.uin),
                        "ClientName": text(&customer.profile.name),
                        "ClientBindTime": time(customer.created.plus_ms(UTC_PLUS_8_MS)),
                    })
                })
                .collect();
            json!({
                "Total": found.total,
                "SubAgentUin": uin(found.sub_agent.uin),
                "SubAgentName": text(&found.sub_agent.profile.name),
                "Data": data,
            })
        }
        Action::QueryVoucherPool => {
            params.finish()?;
            let partner = own_account(engine, caller, action)?;
            let found = engine.query_voucher_pool(caller, partner).await.map_err(engine_error)?;
            let account_type = match found.partner.kind() {
                AccountKind::Reseller => 1,
                AccountKind::Distributor => 2,
                AccountKind::SecondLevelReseller => 3,
                AccountKind::Customer => return Err(ApiError::internal("a customer has no voucher pool")),
            };
            json!({
                "AgentName": text(&found.partner.profile.name),
                "AccountType": account_type,
                "TotalQuota": money(found.pool.total),
                "RemainingQuota": money(found.pool.remaining()),
                "IssuedNum": found.pool.issued_count,
            })
        }
        Action::QueryVoucherAmountByUin => {
            let uins = params.required_uins("ClientUins", VOUCHER_UIN_LIST_MAX, "InvalidParameterValue")?;
            params.finish()?;
            let amounts = engine.query_voucher_amount_by_uin(caller, &uins).await.map_err(engine_error)?;
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
            json!({ "Data": data })
        }
        Action::QueryVoucherListByUin => {
            let uins = params.required_uins("ClientUins", VOUCHER_UIN_LIST_MAX, "InvalidParameterValue")?;
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
            params.finish()?;
            let lists =
                engine.query_voucher_list_by_uin(caller, &uins, status).await.map_err(engine_error)?;
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
            json!({ "Data": data })
        }
        Action::DescribeCustomerVoucherList | Action::DescribeCustomerOwnVoucherList => {
            let page = page_param(&mut params, "Page", None, action)?;
            let page_size = page_param(&mut params, "PageSize", None, action)?;
            let partner_view = action == Action::DescribeCustomerVoucherList;
            let customer = if partner_view { params.uin("CustomerUin")? } else { None };
            let status = params.choice(
                "VoucherStatus",
                |name| {
                    VoucherStatus::from_name(name).filter(|status| *status != VoucherStatus::PendingApproval)
                },
                "Issued, Used, Expired or Invalidated",
            )?;
            let payment = params.choice("PaymentMode", PaymentMode::from_name, super::own::PAYMENT_MODES)?;
            let usage = if partner_view {
                params.choice("Usage", Usage::from_name, "ProductTrial or CustomerOffer")?
            } else {
                None
            };
            let products =
                params.choice("ProductScope", ProductScope::from_name, super::own::PRODUCT_SCOPES)?;
            let id = params.voucher_id("VoucherId")?;
            params.finish()?;
            let filter = VoucherFilter { customer, status, payment, usage, products, id };
            let found = if partner_view {
                engine.describe_customer_voucher_list(caller, &filter, page, page_size).await
            } else {
                let customer = own_account(engine, caller, action)?;
                engine.describe_customer_own_voucher_list(caller, customer, &filter, page, page_size).await
            }
            .map_err(engine_error)?;
            let now = engine.now();
            let data: Vec<Value> =
                found.vouchers.iter().map(|voucher| customer_voucher(voucher, now, partner_view)).collect();
            json!({ "TotalCount": found.total, "Data": data })
        }
        Action::DescribeCustomerVoucherUsageDetails | Action::DescribeCustomerOwnVoucherUsageDetails => {
            let page = page_param(&mut params, "Page", None, action)?;
            let page_size = page_param(&mut params, "PageSize", None, action)?;
            let partner_view = action == Action::DescribeCustomerVoucherUsageDetails;
            let customer = if partner_view { Some(params.required_uin("CustomerUin")?) } else { None };
            let id = params.required_voucher_id("VoucherId")?;
            let month = params.month("Month")?;
            params.finish()?;
            let customer = match customer {
                Some(customer) => customer,
                None => own_account(engine, caller, action)?,
            };
            let usage = engine
                .voucher_usage(caller, action, customer, id, month, page, page_size)
                .await
                .map_err(engine_error)?;
            let data: Vec<Value> = usage.records.iter().map(|record| usage_detail(record, id)).collect();
            let mut fields = super::object(json!({
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
            Value::Object(fields)
        }
        _ => {
            engine.admit(caller, action).map_err(|rejection| ApiError::rejected(&rejection, action))?;
            return Err(ApiError::new(
                "UnsupportedOperation",
                format!("{action} is an upstream action this engine does not offer"),
            ));
        }
    };
    Ok(super::object(fields))
}

/// The account an action without a UIN parameter reads: the caller's own. The operator has
/// none: its call is counted against its quota, like every call, and refused. Called after
/// the parameters are read, so that a malformed request is not counted.
fn own_account(engine: &Engine, caller: Caller, action: Action) -> Result<Uin, ApiError> {
    match caller {
        Caller::Uin(uin) => Ok(uin),
        Caller::Operator => {
            engine.admit(caller, action).map_err(|rejection| ApiError::rejected(&rejection, action))?;
            Err(ApiError::new(
                "UnauthorizedOperation.UinNoAuth",
                format!(
                    "{action} reads the calling partner's or customer's own account and the operator has \
                     none: call it with that account's key"
                ),
            ))
        }
    }
}

/// A page number or size: required when `default` is `None`. Negative values are refused
/// here; zero and values above the largest page by the engine, with the same code.
fn page_param(
    params: &mut Params,
    name: &'static str,
    default: Option<usize>,
    action: Action,
) -> Result<usize, ApiError> {
    let value = match default {
        None => params.required_integer(name)?,
        Some(default) => match params.integer(name)? {
            None => return Ok(default),
            Some(value) => value,
        },
    };
    usize::try_from(value).map_err(|_| {
        let rejection =
            Rejection::InvalidParameter { parameter: name, reason: format!("{value} is negative") };
        ApiError::rejected(&rejection, action)
    })
}

/// `FilterType` and `Filter` together; an empty `Filter` is no filter.
fn filter_of<F>(field: Option<F>, value: Option<String>) -> Result<Option<(F, String)>, ApiError> {
    match (field, value) {
        (_, None) => Ok(None),
        (_, Some(value)) if value.is_empty() => Ok(None),
        (Some(field), Some(value)) => Ok(Some((field, value))),
        (None, Some(_)) => Err(ApiError::missing("FilterType")),
    }
}

/// `Order`: `asc` or `desc` (any case; `acs` too, as the reference of
/// `QuerySubAgentsDetailV2` spells it); descending when absent or empty.
fn order_of(order: Option<String>) -> Result<bool, ApiError> {
    match order.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("desc") => Ok(false),
        Some("asc") | Some("acs") => Ok(true),
        Some(_) => Err(ApiError::value("Order", "must be asc or desc")),
    }
}

/// A UIN written as a string.
fn uin_text(text: &str) -> Result<Uin, ApiError> {
    match text.trim().parse::<u64>() {
        Ok(value) if value > 0 => Ok(Uin(value)),
        _ => Err(ApiError::value("ClientUin", format!("{text:?} is not a UIN (a positive integer)"))),
    }
}

/// A profile text as the API writes it: `""` when never set.
fn text(value: &Option<Box<str>>) -> &str {
    value.as_deref().unwrap_or("")
}

fn suspended(view: &AccountView) -> bool {
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
        "Name": text(&view.profile.name),
        "Type": "",
        "Mobile": "",
        "Email": text(&view.profile.email),
        "Arrears": "-",
        "AssociationTime": time(view.created),
        "RecentExpiry": "",
        "Credit": money(view.total()),
        "RemainingCredit": money(view.available()),
        "IdentifyType": 0,
        "Remark": text(&view.profile.remark),
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
        "Remark": text(&record.remark),
    })
}

/// `DescribeCustomerInfoData`.
fn customer_info(view: &AccountView) -> Value {
    let has_expense = matches!(&view.role, Role::Customer { credit, .. } if credit.used.is_positive());
    json!({
        "CustomerUin": view.uin.to_string(),
        "Email": text(&view.profile.email),
        "Phone": "",
        "Mark": text(&view.profile.remark),
        "Name": text(&view.profile.name),
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
        "Name": text(&view.profile.name),
        "Remark": text(&view.profile.remark),
        "Mobile": "",
        "Email": text(&view.profile.email),
        "CountOfCustomers": view.children_count,
        "BindTime": time(view.created),
        "Credit": money(view.total()),
        "RemainingCredit": money(view.available()),
        "Voucher": 0,
        "RemainingVoucher": 0,
    })
}

/// `DescribeCustomerVoucherItem` (with `Usage` and `ApplyReason`) or
/// `DescribeCustomerOwnVoucherItem`.
fn customer_voucher(voucher: &Voucher, now: Timestamp, with_usage: bool) -> Value {
    let mut item = super::object(json!({
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Timestamp;

    #[test]
    fn orders_filters_and_uins() {
        assert_eq!(order_of(None), Ok(false));
        assert_eq!(order_of(Some("".into())), Ok(false));
        assert_eq!(order_of(Some("Desc".into())), Ok(false));
        assert_eq!(order_of(Some("ASC".into())), Ok(true));
        assert_eq!(order_of(Some("acs".into())), Ok(true));
        assert_eq!(order_of(Some("up".into())).unwrap_err().code, "InvalidParameterValue");
        assert_eq!(filter_of(Some(1), Some("x".into())), Ok(Some((1, "x".into()))));
        assert_eq!(filter_of(Some(1), Some("".into())), Ok(None));
        assert_eq!(filter_of::<u8>(None, None), Ok(None));
        assert_eq!(filter_of::<u8>(None, Some("x".into())).unwrap_err().code, "MissingParameter");
        assert_eq!(uin_text(" 12 "), Ok(Uin(12)));
        for bad in ["0", "-3", "x", "", "1.5"] {
            assert_eq!(uin_text(bad).unwrap_err().code, "InvalidParameterValue", "{bad:?}");
        }
        assert_eq!(time(Timestamp(0).plus_ms(UTC_PLUS_8_MS)), Value::String("1970-01-01 08:00:00".into()));
    }
}
