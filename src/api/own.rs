//! The engine's own actions: set-up by the operator, the purchase protocol, and `Ping`.
//!
//! Fields (all names as in the API):
//! - `CreatePartner` {`Kind`: `Distributor` | `Reseller` | `SubAgent`, `ParentUin` (SubAgent
//!   only), `Uin`?, `Name`?} -> {`Uin`};
//! - `CreateClient` {`ParentUin`, `Uin`?, `Name`, `Email`?} -> {`Uin`};
//! - `GrantPartnerCredit` {`PartnerUin`, `Credit` (an increment)} -> {`TotalCredit`,
//!   `RemainingCredit`};
//! - `CreatePurchase` {`PurchaseId`, `ClientUin`, `Amount`, `ProductCode`?} -> {`PurchaseId`,
//!   `Status`: `Committed`, `ChargedUin`, `ClientRemainingCredit`, `PartnerRemainingCredit`};
//! - `ReservePurchase` {the same, `TimeoutSeconds`? (60)} -> {`PurchaseId`, `Status`:
//!   `Reserved`, `ExpireTime`};
//! - `CommitPurchase` / `CancelPurchase` {`PurchaseId`} -> {`PurchaseId`, `Status`};
//! - `CreatePurchases` {`Purchases`: up to 8189 `CreatePurchase` objects} -> {`Results`: per
//!   purchase, in order, {`PurchaseId`, `Status`: `Committed` | `Refused`, and when refused
//!   `ErrorCode` and `ErrorMessage`}};
//! - `Ping` {} -> {}: authenticated and parsed like the rest, and nothing else.

use compact_str::CompactString;
use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::params::Params;
use super::{money, time, uin};
use crate::coordinator::PurchaseRequest;
use crate::domain::{Action, Caller};
use crate::engine::{Engine, NewCustomer, NewPartner, PartnerKind};

/// The longest `ProductCode`, `Name` or `Email` accepted.
const TEXT_MAX: usize = 256;

pub async fn handle(
    engine: &Engine,
    caller: Caller,
    action: Action,
    mut params: Params,
) -> Result<Map<String, Value>, ApiError> {
    let engine_error = |error| ApiError::from_engine(error, action);
    let fields = match action {
        Action::CreatePartner => {
            let kind = match params.required_string("Kind")?.as_str() {
                "Distributor" => PartnerKind::Distributor,
                "Reseller" => PartnerKind::Reseller,
                "SubAgent" => PartnerKind::SecondLevelReseller,
                other => {
                    return Err(ApiError::value(
                        "Kind",
                        format!("{other:?} is not Distributor, Reseller or SubAgent"),
                    ))
                }
            };
            let partner = NewPartner {
                parent: params.uin("ParentUin")?,
                uin: params.uin("Uin")?,
                name: text(&mut params, "Name")?,
            };
            params.finish()?;
            let created = engine.create_partner(caller, kind, partner).await.map_err(engine_error)?;
            json!({ "Uin": uin(created) })
        }
        Action::CreateClient => {
            let customer = NewCustomer {
                parent: params.required_uin("ParentUin")?,
                uin: params.uin("Uin")?,
                name: Some(text(&mut params, "Name")?.ok_or_else(|| ApiError::missing("Name"))?),
                email: text(&mut params, "Email")?,
            };
            params.finish()?;
            let created = engine.create_customer(caller, customer).await.map_err(engine_error)?;
            json!({ "Uin": uin(created) })
        }
        Action::GrantPartnerCredit => {
            let partner = params.required_uin("PartnerUin")?;
            let credit = params.required_money("Credit")?;
            params.finish()?;
            let line = engine.grant_credit(caller, partner, credit).await.map_err(engine_error)?;
            json!({ "TotalCredit": money(line.total), "RemainingCredit": money(line.available) })
        }
        Action::CreatePurchase => {
            let request = purchase_request(&mut params)?;
            params.finish()?;
            let receipt = engine.purchase(caller, request).await.map_err(engine_error)?;
            json!({
                "PurchaseId": receipt.id.as_str(),
                "Status": "Committed",
                "ChargedUin": uin(receipt.charged),
                "ClientRemainingCredit": money(receipt.customer_available),
                "PartnerRemainingCredit": money(receipt.partner_available),
            })
        }
        Action::ReservePurchase => {
            let request = purchase_request(&mut params)?;
            let max_secs = engine.config().reservation_timeout_ms_max / 1000;
            let default_secs = engine.config().reservation_timeout_ms_default / 1000;
            let timeout = params.bounded("TimeoutSeconds", 1, max_secs, default_secs)?;
            params.finish()?;
            let receipt =
                engine.reserve(caller, request, Some(timeout * 1000)).await.map_err(engine_error)?;
            json!({ "PurchaseId": receipt.id.as_str(), "Status": "Reserved", "ExpireTime": time(receipt.deadline) })
        }
        Action::CommitPurchase | Action::CancelPurchase => {
            let id = params.required_purchase_id("PurchaseId")?;
            params.finish()?;
            let status = if action == Action::CommitPurchase {
                engine.commit(caller, id.clone()).await.map_err(engine_error)?;
                "Committed"
            } else {
                engine.cancel(caller, id.clone()).await.map_err(engine_error)?;
                "Cancelled"
            };
            json!({ "PurchaseId": id.as_str(), "Status": status })
        }
        Action::CreatePurchases => {
            let items = params.objects("Purchases")?.ok_or_else(|| ApiError::missing("Purchases"))?;
            params.finish()?;
            let limit = engine.config().batch_len_max;
            if items.is_empty() || items.len() > limit {
                return Err(ApiError::value(
                    "Purchases",
                    format!("holds 1 to {limit} purchases, got {}", items.len()),
                ));
            }
            let mut requests = Vec::with_capacity(items.len());
            for mut item in items {
                requests.push(purchase_request(&mut item)?);
                item.finish()?;
            }
            let ids: Vec<_> = requests.iter().map(|request| request.id.clone()).collect();
            let results = engine.purchase_batch(caller, requests).await.map_err(engine_error)?;
            let results: Vec<Value> = ids
                .iter()
                .zip(results)
                .map(|(id, result)| match result {
                    Ok(_) => json!({ "PurchaseId": id.as_str(), "Status": "Committed" }),
                    Err(rejection) => {
                        let error = ApiError::rejected(&rejection, Action::CreatePurchase);
                        json!({
                            "PurchaseId": id.as_str(),
                            "Status": "Refused",
                            "ErrorCode": error.code,
                            "ErrorMessage": error.message,
                        })
                    }
                })
                .collect();
            json!({ "Results": results })
        }
        Action::Ping => {
            params.finish()?;
            json!({})
        }
        other => return Err(ApiError::internal(format!("{other} is not one of the engine's own actions"))),
    };
    match fields {
        Value::Object(fields) => Ok(fields),
        _ => unreachable!("every answer is an object"),
    }
}

fn purchase_request(params: &mut Params) -> Result<PurchaseRequest, ApiError> {
    let id = params.required_purchase_id("PurchaseId")?;
    let customer = params.required_uin("ClientUin")?;
    let amount = params.required_money("Amount")?;
    let product_code = text(params, "ProductCode")?.map(CompactString::from);
    Ok(PurchaseRequest { id, customer, amount, product_code })
}

/// An optional string of 1 to [`TEXT_MAX`] characters.
fn text(params: &mut Params, name: &str) -> Result<Option<String>, ApiError> {
    match params.string(name)? {
        Some(text) if text.is_empty() || text.chars().count() > TEXT_MAX => {
            Err(ApiError::value(name, format!("must be 1 to {TEXT_MAX} characters")))
        }
        other => Ok(other),
    }
}
