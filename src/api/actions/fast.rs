//! The hot actions (`CreatePurchase`, `CreatePurchases`) without the general path's JSON
//! tree: typed parsing of a JSON body (or, for `CreatePurchase`, the fields of a form body or
//! query string read as they are), and the answer written straight to bytes (a JSON object).
//!
//! The fast path takes only plainly valid requests. Each field is checked by the function
//! the general path's reader uses ([`super::purchases`] lists them), and any doubt (a field
//! of another type, an unknown or repeated field, a value those checks refuse) sends the
//! request down the general path, which answers it with the precise error. So both paths
//! answer every request alike, and the fast one only sooner.
//!
//! Invariant: the fast path answers a request only when the general path would have called
//! the engine with the same requests; it never refuses one itself, except as the engine
//! refuses.

use std::borrow::Cow;
use std::io::Write;

use super::purchases::{batch_len, charge_fields};
use super::text_fits;
use crate::api::decode::{Encoded, FlatParams};
use crate::api::errors::ApiError;
use crate::api::metrics::Metrics;
use crate::api::params;
use crate::coordinator::{Charges, PurchaseRequest};
use crate::domain::voucher::PayMode;
use crate::domain::{Action, Caller, PurchaseId};
use crate::engine::Engine;
use compact_str::CompactString;

/// The purchase fields as typed JSON: strings borrowed from the body where they have no
/// escapes. A repeated field is an error of serde's, so such a request takes the general
/// path (which refuses it).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PurchaseFields<'a> {
    #[serde(rename = "PurchaseId", borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "ClientUin")]
    customer: serde_json::Number,
    #[serde(rename = "Amount")]
    amount: serde_json::Number,
    #[serde(rename = "ProductCode", default, borrow)]
    product_code: Option<Cow<'a, str>>,
    #[serde(rename = "PaymentMode", default, borrow)]
    pay: Option<Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchFields<'a> {
    #[serde(rename = "Purchases", borrow)]
    purchases: Vec<PurchaseFields<'a>>,
}

impl<'a> PurchaseFields<'a> {
    /// The fields of a flattened `CreatePurchase`, if it names only them, each once, and
    /// with a number where one is due (read as the general path's readers read text).
    fn flattened(params: &'a FlatParams<'a>) -> Option<PurchaseFields<'a>> {
        let (mut id, mut customer, mut amount, mut product_code, mut pay) = (None, None, None, None, None);
        for (name, value) in params.pairs() {
            let value = value.as_ref();
            // A field given twice is the general path's to refuse.
            match name.as_ref() {
                "PurchaseId" => once(&mut id, Cow::Borrowed(value))?,
                "ClientUin" => once(&mut customer, params::number_of_text(value)?)?,
                "Amount" => once(&mut amount, params::number_of_text(value)?)?,
                "ProductCode" => once(&mut product_code, Cow::Borrowed(value))?,
                "PaymentMode" => once(&mut pay, Cow::Borrowed(value))?,
                _ => return None,
            }
        }
        Some(PurchaseFields { id: id?, customer: customer?, amount: amount?, product_code, pay })
    }

    /// The request, if every field passes the general path's checks; `None` sends the
    /// request down the general path, which names what is wrong.
    fn request(self) -> Option<PurchaseRequest> {
        let id = params::purchase_id_of("PurchaseId", &self.id).ok()?;
        let customer = params::uin_of("ClientUin", &self.customer).ok()?;
        let amount = params::money_of("Amount", self.amount.as_str()).ok()?;
        let product_code = match self.product_code {
            Some(code) if !text_fits(&code) => return None,
            code => code.map(|code| CompactString::from(code.as_ref())),
        };
        let pay = match self.pay {
            None => PayMode::default(),
            Some(name) => PayMode::from_name(&name)?,
        };
        Some(PurchaseRequest { id, customer, amount, product_code, pay })
    }
}

/// Fills a field read for the first time; `None` if it was read before.
fn once<T>(field: &mut Option<T>, value: T) -> Option<()> {
    match field {
        Some(_) => None,
        None => {
            *field = Some(value);
            Some(())
        }
    }
}

/// Answers `action` if it is a hot one and the body plainly valid; `None` otherwise, for the
/// general path.
/// Each purchase of a batch is counted in `metrics` (the request itself is counted by the
/// server).
pub async fn answer(
    engine: &Engine,
    caller: Caller,
    action: Action,
    encoded: &Encoded<'_>,
    metrics: Option<&Metrics>,
) -> Option<Result<Vec<u8>, ApiError>> {
    let refused = |error| ApiError::from_engine(error, action);
    match (action, encoded) {
        (Action::CreatePurchase, _) => {
            let fields = match encoded {
                Encoded::Json(body) => serde_json::from_slice::<PurchaseFields>(body).ok()?,
                Encoded::Flattened(params) => PurchaseFields::flattened(params)?,
            };
            let request = fields.request()?;
            Some(match engine.purchase(caller, request).await {
                Ok(receipt) => {
                    let mut out = Vec::with_capacity(320);
                    out.extend_from_slice(b"{\"PurchaseId\":");
                    write_string(&mut out, receipt.id.as_str());
                    let _ = write!(
                        out,
                        ",\"Status\":\"Committed\",\"ChargedUin\":{},\"ClientRemainingCredit\":{},\"PartnerRemainingCredit\":{}",
                        receipt.charged.0, receipt.customer_available, receipt.partner_available
                    );
                    write_charges(&mut out, &receipt.charges());
                    out.push(b'}');
                    Ok(out)
                }
                Err(error) => Err(refused(error)),
            })
        }
        (Action::CreatePurchases, Encoded::Json(body)) => {
            let batch = serde_json::from_slice::<BatchFields>(body).ok()?;
            batch_len(batch.purchases.len(), engine.config().batch_len_max).ok()?;
            let requests: Vec<PurchaseRequest> =
                batch.purchases.into_iter().map(PurchaseFields::request).collect::<Option<_>>()?;
            let ids: Vec<PurchaseId> = requests.iter().map(|request| request.id.clone()).collect();
            let results = match engine.purchase_batch(caller, requests).await {
                Ok(results) => results,
                Err(error) => return Some(Err(refused(error))),
            };
            let mut out = Vec::with_capacity(16 + ids.len() * 180);
            out.extend_from_slice(b"{\"Results\":[");
            for (index, (id, result)) in ids.iter().zip(results).enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"PurchaseId\":");
                write_string(&mut out, id.as_str());
                match result {
                    Ok(receipt) => {
                        if let Some(metrics) = metrics {
                            metrics.purchase_committed();
                        }
                        out.extend_from_slice(b",\"Status\":\"Committed\"");
                        write_charges(&mut out, &receipt.charges());
                        out.push(b'}');
                    }
                    Err(rejection) => {
                        let error = ApiError::rejected(&rejection, Action::CreatePurchase);
                        if let Some(metrics) = metrics {
                            metrics.purchase_refused(&error.code);
                        }
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

/// The charges' fields, each led by a comma, as the general path writes them.
fn write_charges(out: &mut Vec<u8>, charges: &Charges) {
    for (name, amount) in charge_fields(charges) {
        let _ = write!(out, ",\"{name}\":{amount}");
    }
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}
