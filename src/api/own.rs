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
//!   `ErrorCode` and `ErrorMessage`}}; the purchases run concurrently, as that many
//!   `CreatePurchase` calls at once would;
//! - `Ping` {} -> {}: authenticated and parsed like the rest, and nothing else.

use compact_str::CompactString;
use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::params::Params;
use super::{money, time, uin};
use crate::coordinator::PurchaseRequest;
use std::io::Write;

use crate::domain::{Action, Caller, Money, PurchaseId, Uin};
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
            let timeout = match params.integer("TimeoutSeconds")? {
                // Absent: the engine's default, whatever it is in milliseconds.
                None => None,
                Some(secs) if (1..=max_secs).contains(&secs) => Some(secs * 1000),
                Some(secs) => {
                    return Err(ApiError::value(
                        "TimeoutSeconds",
                        format!("{secs} is outside 1 to {max_secs}"),
                    ))
                }
            };
            params.finish()?;
            let receipt = engine.reserve(caller, request, timeout).await.map_err(engine_error)?;
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
            let limit = engine.config().batch_len_max;
            let items = params
                .objects("Purchases", limit, "InvalidParameterValue.Purchases")?
                .ok_or_else(|| ApiError::missing("Purchases"))?;
            params.finish()?;
            if items.is_empty() {
                return Err(ApiError::new(
                    "InvalidParameterValue.Purchases",
                    format!("`Purchases` holds 1 to {limit} elements, got 0"),
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
    Ok(super::object(fields))
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

/// The purchase fields as typed JSON, for the fast path: strings borrowed from the body
/// where they have no escapes.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PurchaseFields<'a> {
    #[serde(rename = "PurchaseId", borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(rename = "ClientUin")]
    customer: u64,
    #[serde(rename = "Amount")]
    amount: serde_json::Number,
    #[serde(rename = "ProductCode", default, borrow)]
    product_code: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchFields<'a> {
    #[serde(rename = "Purchases", borrow)]
    purchases: Vec<PurchaseFields<'a>>,
}

impl PurchaseFields<'_> {
    /// The request, if every field is valid; `None` sends the request down the general
    /// path, which names what is wrong.
    fn request(self) -> Option<PurchaseRequest> {
        let amount = Money::parse(self.amount.as_str()).ok()?;
        let product_code = match self.product_code {
            Some(code) if code.is_empty() || code.chars().count() > TEXT_MAX => return None,
            code => code.map(|code| CompactString::from(code.as_ref())),
        };
        Some(PurchaseRequest {
            id: PurchaseId::new(&self.id).ok()?,
            customer: (self.customer > 0).then_some(Uin(self.customer))?,
            amount,
            product_code,
        })
    }
}

/// The hot actions (`CreatePurchase`, `CreatePurchases`) without the general path's JSON
/// tree: typed parsing, and the answer written straight to bytes (a JSON object). `None`
/// when the action is another, or the request is not plainly valid: the general path then
/// answers it, with the precise error.
pub async fn fast(
    engine: &Engine,
    caller: Caller,
    action: Action,
    body: &[u8],
) -> Option<Result<Vec<u8>, ApiError>> {
    let engine_error = |error| ApiError::from_engine(error, action);
    match action {
        Action::CreatePurchase => {
            let request = serde_json::from_slice::<PurchaseFields>(body).ok()?.request()?;
            Some(match engine.purchase(caller, request).await {
                Ok(receipt) => {
                    let mut out = Vec::with_capacity(160);
                    out.extend_from_slice(b"{\"PurchaseId\":");
                    write_string(&mut out, receipt.id.as_str());
                    let _ = write!(
                        out,
                        ",\"Status\":\"Committed\",\"ChargedUin\":{},\"ClientRemainingCredit\":{},\"PartnerRemainingCredit\":{}}}",
                        receipt.charged.0, receipt.customer_available, receipt.partner_available
                    );
                    Ok(out)
                }
                Err(error) => Err(engine_error(error)),
            })
        }
        Action::CreatePurchases => {
            let batch = serde_json::from_slice::<BatchFields>(body).ok()?;
            let limit = engine.config().batch_len_max;
            if batch.purchases.is_empty() || batch.purchases.len() > limit {
                return None;
            }
            let requests: Vec<PurchaseRequest> =
                batch.purchases.into_iter().map(PurchaseFields::request).collect::<Option<_>>()?;
            let ids: Vec<PurchaseId> = requests.iter().map(|request| request.id.clone()).collect();
            let results = match engine.purchase_batch(caller, requests).await {
                Ok(results) => results,
                Err(error) => return Some(Err(engine_error(error))),
            };
            let mut out = Vec::with_capacity(16 + ids.len() * 48);
            out.extend_from_slice(b"{\"Results\":[");
            for (index, (id, result)) in ids.iter().zip(results).enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"PurchaseId\":");
                write_string(&mut out, id.as_str());
                match result {
                    Ok(_) => out.extend_from_slice(b",\"Status\":\"Committed\"}"),
                    Err(rejection) => {
                        let error = ApiError::rejected(&rejection, Action::CreatePurchase);
                        out.extend_from_slice(b",\"Status\":\"Refused\",\"ErrorCode\":");
                        write_string(&mut out, &error.code);
                        out.extend_from_slice(b",\"ErrorMessage\":");
                        write_string(&mut out, &error.message);
                        out.push(b'}');
                    }
                }
            }
            out.extend_from_slice(b"]}");
            Some(Ok(out))
        }
        _ => None,
    }
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}
