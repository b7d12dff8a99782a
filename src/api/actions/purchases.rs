//! The purchase protocol (the engine's own actions), on the general path.
//!
//! - `CreatePurchase` {`PurchaseId`, `ClientUin`, `Amount`, `ProductCode`?, `PaymentMode`?
//!   (`Prepaid`, the default, or `Postpaid`)} -> {`PurchaseId`, `Status`: `Committed`,
//!   `ChargedUin`, `ClientRemainingCredit`, `PartnerRemainingCredit`, and the
//!   [charges](#charges)};
//! - `ReservePurchase` {the same, `TimeoutSeconds`? (60)} -> {`PurchaseId`, `Status`:
//!   `Reserved`, `ExpireTime`, and the [charges](#charges)};
//! - `CommitPurchase` / `CancelPurchase` {`PurchaseId`} -> {`PurchaseId`, `Status`};
//! - `CreatePurchases` {`Purchases`: up to 8189 `CreatePurchase` objects} -> {`Results`: per
//!   purchase, in order, {`PurchaseId`, `Status`: `Committed` | `Refused`; when committed the
//!   [charges](#charges), when refused `ErrorCode` and `ErrorMessage`}}; the purchases run
//!   concurrently, as that many `CreatePurchase` calls at once would.
//!
//! <a name="charges"></a>Charges: `ClientVoucherDeduction` and `PartnerVoucherDeduction`
//! (what the customer's and the charged partner's vouchers deducted), `ClientCharge` and
//! `PartnerCharge` (the amount less each side's deduction: what each side's credit pays).
//! For a reservation they are held, and become final at commit.
//!
//! A purchase's fields are each checked by one function, which [`super::fast`] calls too:
//! the id by [`crate::api::params::purchase_id_of`], the customer by [`crate::api::params::uin_of`], the amount by
//! [`crate::api::params::money_of`], the product code by [`super::text_fits`], the payment mode by
//! [`PayMode::from_name`]; the batch's length by [`batch_len`] and a reservation's timeout by
//! [`timeout_ms`], both on the engine's bounds ([`crate::engine::check_batch_len`],
//! [`crate::engine::check_reservation_timeout_ms`]). That the amount is positive is the
//! engine's check alone ([`crate::engine::check_purchase_amount`]).

use compact_str::CompactString;
use serde_json::{json, Value};

use super::{text, Answer, Context};
use crate::api::errors::ApiError;
use crate::api::params::Params;
use crate::api::{money, object, time, uin};
use crate::coordinator::{Charges, PurchaseRequest};
use crate::domain::voucher::PayMode;
use crate::domain::{Action, Caller, PurchaseId};
use crate::engine::{check_batch_len, check_reservation_timeout_ms, Engine};

/// The names of the payment modes of a purchase, for errors.
pub const PAY_MODES: &str = "Prepaid or Postpaid";

/// Reads one purchase's fields, in the order their errors take precedence.
pub fn read_purchase(params: &mut Params, _: &Context) -> Result<PurchaseRequest, ApiError> {
    let id = params.required_purchase_id("PurchaseId")?;
    let customer = params.required_uin("ClientUin")?;
    let amount = params.required_money("Amount")?;
    let product_code = text(params, "ProductCode")?.map(CompactString::from);
    let pay = params.choice("PaymentMode", PayMode::from_name, PAY_MODES)?.unwrap_or_default();
    Ok(PurchaseRequest { id, customer, amount, product_code, pay })
}

pub async fn purchase(context: &Context<'_>, caller: Caller, request: PurchaseRequest) -> Answer {
    let receipt = context.engine.purchase(caller, request).await.map_err(|error| context.refused(error))?;
    Ok(with_charges(
        json!({
            "PurchaseId": receipt.id.as_str(),
            "Status": "Committed",
            "ChargedUin": uin(receipt.charged),
            "ClientRemainingCredit": money(receipt.customer_available),
            "PartnerRemainingCredit": money(receipt.partner_available),
        }),
        &receipt.charges(),
    ))
}

pub fn read_reservation(
    params: &mut Params,
    context: &Context,
) -> Result<(PurchaseRequest, Option<i64>), ApiError> {
    let request = read_purchase(params, context)?;
    let timeout = timeout_ms(context.engine, params.integer("TimeoutSeconds")?)?;
    Ok((request, timeout))
}

pub async fn reserve(
    context: &Context<'_>,
    caller: Caller,
    (request, timeout): (PurchaseRequest, Option<i64>),
) -> Answer {
    let receipt =
        context.engine.reserve(caller, request, timeout).await.map_err(|error| context.refused(error))?;
    Ok(with_charges(
        json!({ "PurchaseId": receipt.id.as_str(), "Status": "Reserved", "ExpireTime": time(receipt.deadline) }),
        &receipt.charges(),
    ))
}

/// `TimeoutSeconds` in milliseconds, within the engine's bound; absent, the engine's
/// default (whatever it is in milliseconds).
fn timeout_ms(engine: &Engine, seconds: Option<i64>) -> Result<Option<i64>, ApiError> {
    let Some(seconds) = seconds else { return Ok(None) };
    let max_ms = engine.config().reservation_timeout_ms_max;
    match seconds.checked_mul(1000) {
        Some(ms) if check_reservation_timeout_ms(ms, max_ms).is_ok() => Ok(Some(ms)),
        _ => Err(ApiError::value("TimeoutSeconds", format!("{seconds} is outside 1 to {}", max_ms / 1000))),
    }
}

pub fn read_id(params: &mut Params, _: &Context) -> Result<PurchaseId, ApiError> {
    params.required_purchase_id("PurchaseId")
}

/// `CommitPurchase` or `CancelPurchase`, as the context's action says.
pub async fn resolve(context: &Context<'_>, caller: Caller, id: PurchaseId) -> Answer {
    let engine = context.engine;
    let status = if context.action == Action::CommitPurchase {
        engine.commit(caller, id.clone()).await.map_err(|error| context.refused(error))?;
        "Committed"
    } else {
        engine.cancel(caller, id.clone()).await.map_err(|error| context.refused(error))?;
        "Cancelled"
    };
    Ok(json!({ "PurchaseId": id.as_str(), "Status": status }))
}

/// `Purchases`, each element still to be read: the request's own parameters are all known
/// before any element's are read, so an unknown one is refused first.
pub fn read_batch(params: &mut Params, context: &Context) -> Result<Vec<Params>, ApiError> {
    let limit = context.engine.config().batch_len_max;
    params
        .objects("Purchases", limit, "InvalidParameterValue.Purchases")?
        .ok_or_else(|| ApiError::missing("Purchases"))
}

pub async fn purchase_batch(context: &Context<'_>, caller: Caller, items: Vec<Params>) -> Answer {
    batch_len(items.len(), context.engine.config().batch_len_max)?;
    let mut requests = Vec::with_capacity(items.len());
    for mut item in items {
        requests.push(read_purchase(&mut item, context)?);
        item.finish()?;
    }
    let ids: Vec<_> = requests.iter().map(|request| request.id.clone()).collect();
    let results =
        context.engine.purchase_batch(caller, requests).await.map_err(|error| context.refused(error))?;
    let results: Vec<Value> = ids
        .iter()
        .zip(results)
        .map(|(id, result)| match result {
            Ok(receipt) => {
                if let Some(metrics) = context.server.metrics() {
                    metrics.purchase_committed();
                }
                with_charges(json!({ "PurchaseId": id.as_str(), "Status": "Committed" }), &receipt.charges())
            }
            Err(rejection) => {
                let error = ApiError::rejected(&rejection, Action::CreatePurchase);
                if let Some(metrics) = context.server.metrics() {
                    metrics.purchase_refused(&error.code);
                }
                json!({
                    "PurchaseId": id.as_str(),
                    "Status": "Refused",
                    "ErrorCode": error.code,
                    "ErrorMessage": error.message,
                })
            }
        })
        .collect();
    Ok(json!({ "Results": results }))
}

/// `Purchases` holds 1 to `limit` elements, as the engine bounds a batch.
pub fn batch_len(len: usize, limit: usize) -> Result<(), ApiError> {
    check_batch_len(len, limit).map_err(|_| {
        ApiError::new(
            "InvalidParameterValue.Purchases",
            format!("`Purchases` holds 1 to {limit} elements, got {len}"),
        )
    })
}

/// The charges' field names and values, in the order answers write them.
pub fn charge_fields(charges: &Charges) -> [(&'static str, crate::domain::Money); 4] {
    [
        ("ClientVoucherDeduction", charges.customer_deduction),
        ("PartnerVoucherDeduction", charges.partner_deduction),
        ("ClientCharge", charges.customer_charge),
        ("PartnerCharge", charges.partner_charge),
    ]
}

/// A purchase answer with its voucher deductions and charges.
fn with_charges(fields: Value, charges: &Charges) -> Value {
    let mut fields = object(fields);
    for (name, amount) in charge_fields(charges) {
        fields.insert(name.into(), money(amount));
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::params;

    #[test]
    fn batch_lengths_in_the_apis_words() {
        assert_eq!(batch_len(1, 2), Ok(()));
        assert_eq!(batch_len(2, 2), Ok(()));
        for (len, message) in
            [(0, "`Purchases` holds 1 to 2 elements, got 0"), (3, "`Purchases` holds 1 to 2 elements, got 3")]
        {
            let error = batch_len(len, 2).unwrap_err();
            assert_eq!(
                (error.code.as_ref(), error.message.as_str()),
                ("InvalidParameterValue.Purchases", message)
            );
        }
        // The shared checks the fast path calls too.
        assert!(params::purchase_id_of("PurchaseId", "order-1").is_ok());
        assert!(PayMode::from_name("Postpaid").is_some());
    }
}
