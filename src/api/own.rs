//! The engine's own actions: set-up by the operator, the purchase protocol, vouchers,
//! frozen credit, bills, warnings, the adjustable clock, and `Ping`.
//!
//! Fields (all names as in the API; `?` marks an optional one; times are
//! `YYYY-MM-DD hh:mm:ss` in UTC, months `YYYY-MM`):
//! - `CreatePartner` {`Kind`: `Distributor` | `Reseller` | `SubAgent`, `ParentUin` (SubAgent
//!   only), `Uin`?, `Name`?} -> {`Uin`};
//! - `CreateClient` {`ParentUin`, `Uin`?, `Name`, `Email`?} -> {`Uin`};
//! - `GrantPartnerCredit` {`PartnerUin`, `Credit` (an increment)} -> {`TotalCredit`,
//!   `RemainingCredit`};
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
//!   concurrently, as that many `CreatePurchase` calls at once would;
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
//!   operator)} -> {};
//! - `ActivatePostpaid` {`ResourceId` (1 to 64 characters), `ClientUin`, `Amount`,
//!   `FreezingCoefficient`? (0 to 1, at most 8 decimals; default `[engine]
//!   freezing_coefficient_default`)} -> {`FrozenAmount`}; `TerminatePostpaid` {`ResourceId`}
//!   -> {`ClientUin`, `RemainingCredit`};
//! - `ConfirmBill` {`ClientUin`, `Month`} -> {`ReturnedCredit`} (the customer's partner);
//!   `SettlePartnerBill` {`PartnerUin`, `Month`} -> {`ReturnedCredit`} (operator); a month
//!   is final, and can be confirmed, from its end plus the longest reservation timeout plus
//!   60 s (`FailedOperation.BillNotFinal` before; `FailedOperation.BillConfirmed` the second
//!   time);
//! - `SetCreditWarning` {`ClientUin`, `RemainingPercent`? (0 to 100, 2 decimals) or
//!   `RemainingAmount`? (0 or more); not both, neither removes the threshold} -> {}: the
//!   customer's partner sets its threshold for the customer, the customer its own;
//! - `AdvanceClock` {`Seconds`: 1 to 31536000} -> {`Now`} (operator; only on a server
//!   configured with `[engine] adjustable_clock = true`, else `UnsupportedOperation`): moves
//!   the engine's clock forward, to rehearse month ends and expiries;
//! - `Ping` {} -> {}: authenticated and parsed like the rest, and nothing else.
//!
//! <a name="charges"></a>Charges: `ClientVoucherDeduction` and `PartnerVoucherDeduction`
//! (what the customer's and the charged partner's vouchers deducted), `ClientCharge` and
//! `PartnerCharge` (the amount less each side's deduction: what each side's credit pays).
//! For a reservation they are held, and become final at commit.

use compact_str::CompactString;
use serde_json::{json, Map, Value};

use std::io::Write;

use super::errors::ApiError;
use super::params::Params;
use super::{money, time, uin};
use crate::clock::OffsetClock;
use crate::coordinator::{Charges, PurchaseRequest};
use crate::domain::voucher::{PayMode, PaymentMode, ProductScope, Scope, Voucher};
use crate::domain::{Action, Caller, Money, PurchaseId, Rejection, Threshold, Uin, VoucherId};
use crate::engine::{
    check_batch_len, check_reservation_timeout_ms, Engine, NewCustomer, NewCustomerVoucher, NewPartner,
    NewPartnerVoucher, PartnerKind, PartnerVoucherType,
};

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
            with_charges(
                json!({
                    "PurchaseId": receipt.id.as_str(),
                    "Status": "Committed",
                    "ChargedUin": uin(receipt.charged),
                    "ClientRemainingCredit": money(receipt.customer_available),
                    "PartnerRemainingCredit": money(receipt.partner_available),
                }),
                &receipt.charges(),
            )
        }
        Action::ReservePurchase => {
            let request = purchase_request(&mut params)?;
            let timeout = timeout_ms(engine, params.integer("TimeoutSeconds")?)?;
            params.finish()?;
            let receipt = engine.reserve(caller, request, timeout).await.map_err(engine_error)?;
            with_charges(
                json!({ "PurchaseId": receipt.id.as_str(), "Status": "Reserved", "ExpireTime": time(receipt.deadline) }),
                &receipt.charges(),
            )
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
            batch_len(items.len(), limit)?;
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
                    Ok(receipt) => with_charges(
                        json!({ "PurchaseId": id.as_str(), "Status": "Committed" }),
                        &receipt.charges(),
                    ),
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
        Action::GrantVoucherQuota => {
            let partner = params.required_uin("PartnerUin")?;
            let quota = params.required_money("Quota")?;
            params.finish()?;
            let total = engine.grant_voucher_quota(caller, partner, quota).await.map_err(engine_error)?;
            json!({ "TotalQuota": money(total) })
        }
        Action::IssueCustomerVoucher => {
            let customer = params.required_uin("CustomerUin")?;
            let amount = voucher_amount(&mut params)?;
            let scope = voucher_scope(&mut params, action)?;
            let effective = params.time("EffectiveTime")?;
            let expire = params.required_time("ExpireTime")?;
            params.finish()?;
            let effective = effective.unwrap_or_else(|| engine.now());
            let voucher = NewCustomerVoucher { customer, amount, scope, effective, expire };
            let id = engine.issue_customer_voucher(caller, voucher).await.map_err(engine_error)?;
            json!({ "VoucherId": voucher_id(id) })
        }
        Action::ApplyPartnerVoucher => {
            let kind = params.required_string("Type")?;
            let partner = params.uin("PartnerUin")?;
            let customer = params.uin("CustomerUin")?;
            let kind = match (kind.as_str(), customer) {
                ("General", None) => PartnerVoucherType::General,
                ("General", Some(_)) => {
                    return Err(ApiError::value(
                        "CustomerUin",
                        "only a ProductTrial voucher names a customer",
                    ))
                }
                ("ProductTrial", Some(customer)) => PartnerVoucherType::ProductTrial { customer },
                ("ProductTrial", None) => return Err(ApiError::missing("CustomerUin")),
                (other, _) => {
                    return Err(ApiError::value("Type", format!("{other:?} is not General or ProductTrial")))
                }
            };
            let amount = voucher_amount(&mut params)?;
            let scope = voucher_scope(&mut params, action)?;
            let expire = params.required_time("ExpireTime")?;
            params.finish()?;
            if caller == Caller::Operator && partner.is_none() {
                return Err(ApiError::missing("PartnerUin"));
            }
            let voucher = NewPartnerVoucher { partner, kind, amount, scope, expire };
            let id = engine.apply_partner_voucher(caller, voucher).await.map_err(engine_error)?;
            json!({ "VoucherId": voucher_id(id), "VoucherStatus": "PendingApproval" })
        }
        Action::ApprovePartnerVoucher => {
            let id = params.required_voucher_id("VoucherId")?;
            params.finish()?;
            let (id, associated) = engine.approve_partner_voucher(caller, id).await.map_err(engine_error)?;
            json!({ "VoucherId": voucher_id(id), "AssociatedVoucherId": associated.map(voucher_id) })
        }
        Action::WithdrawCustomerVoucher => {
            let id = params.required_voucher_id("VoucherId")?;
            params.finish()?;
            engine.withdraw_customer_voucher(caller, id).await.map_err(engine_error)?;
            json!({})
        }
        Action::InvalidatePartnerVoucher => {
            let id = params.required_voucher_id("VoucherId")?;
            params.finish()?;
            engine.invalidate_partner_voucher(caller, id).await.map_err(engine_error)?;
            json!({})
        }
        Action::SetTrialVoucherPriority => {
            let enabled = params.bool("Enabled")?.ok_or_else(|| ApiError::missing("Enabled"))?;
            let partner = params.uin("PartnerUin")?;
            params.finish()?;
            if caller == Caller::Operator && partner.is_none() {
                return Err(ApiError::missing("PartnerUin"));
            }
            engine.set_trial_voucher_priority(caller, partner, enabled).await.map_err(engine_error)?;
            json!({})
        }
        Action::ActivatePostpaid => {
            let resource = params.required_string("ResourceId")?;
            let customer = params.required_uin("ClientUin")?;
            let amount = params.required_money("Amount")?;
            let coefficient = params.decimal("FreezingCoefficient")?;
            params.finish()?;
            let frozen = engine
                .activate_postpaid(caller, &resource, customer, amount, coefficient)
                .await
                .map_err(engine_error)?;
            json!({ "FrozenAmount": money(frozen) })
        }
        Action::TerminatePostpaid => {
            let resource = params.required_string("ResourceId")?;
            params.finish()?;
            let (customer, available) =
                engine.terminate_postpaid(caller, &resource).await.map_err(engine_error)?;
            json!({ "ClientUin": uin(customer), "RemainingCredit": money(available) })
        }
        Action::ConfirmBill => {
            let customer = params.required_uin("ClientUin")?;
            let month = params.required_month("Month")?;
            params.finish()?;
            let returned = engine.confirm_bill(caller, customer, month).await.map_err(engine_error)?;
            json!({ "ReturnedCredit": money(returned) })
        }
        Action::SettlePartnerBill => {
            let partner = params.required_uin("PartnerUin")?;
            let month = params.required_month("Month")?;
            params.finish()?;
            let returned = engine.settle_partner_bill(caller, partner, month).await.map_err(engine_error)?;
            json!({ "ReturnedCredit": money(returned) })
        }
        Action::SetCreditWarning => {
            let customer = params.required_uin("ClientUin")?;
            let percent = params.decimal("RemainingPercent")?;
            let amount = params.money("RemainingAmount")?;
            params.finish()?;
            let rejected = |rejection: Rejection| ApiError::rejected(&rejection, action);
            let threshold = match (percent, amount) {
                (Some(_), Some(_)) => {
                    return Err(ApiError::value(
                        "RemainingAmount",
                        "give RemainingPercent or RemainingAmount, not both",
                    ))
                }
                (Some(percent), None) => Some(Threshold::percent(percent).map_err(rejected)?),
                (None, Some(amount)) => Some(Threshold::amount(amount).map_err(rejected)?),
                (None, None) => None,
            };
            engine.set_credit_warning(caller, customer, threshold).await.map_err(engine_error)?;
            json!({})
        }
        Action::AdvanceClock => {
            return Err(ApiError::internal(
                "AdvanceClock is answered by `own::advance_clock`, with the server's clock",
            ))
        }
        Action::Ping => {
            params.finish()?;
            json!({})
        }
        other => return Err(ApiError::internal(format!("{other} is not one of the engine's own actions"))),
    };
    Ok(super::object(fields))
}

/// The largest `Seconds` of one `AdvanceClock`: a year.
pub const ADVANCE_SECONDS_MAX: i64 = 31_536_000;

/// `AdvanceClock`: moves the server's adjustable clock forward. The server calls this rather
/// than [`handle`], because the clock belongs to it: `clock` is `None` unless the
/// configuration sets `[engine] adjustable_clock = true`.
pub fn advance_clock(
    engine: &Engine,
    clock: Option<&OffsetClock>,
    caller: Caller,
    mut params: Params,
) -> Result<Map<String, Value>, ApiError> {
    let action = Action::AdvanceClock;
    let seconds = params.required_integer("Seconds")?;
    if !(1..=ADVANCE_SECONDS_MAX).contains(&seconds) {
        return Err(ApiError::value(
            "Seconds",
            format!("{seconds} is outside 1 to {ADVANCE_SECONDS_MAX} (one year)"),
        ));
    }
    params.finish()?;
    engine.admit(caller, action).map_err(|rejection| ApiError::rejected(&rejection, action))?;
    if caller != Caller::Operator {
        return Err(ApiError::rejected(&Rejection::OperatorOnly("advance the clock"), action));
    }
    let Some(clock) = clock else {
        return Err(ApiError::new(
            "UnsupportedOperation",
            "AdvanceClock needs a server started with `adjustable_clock = true` in its [engine] \
             configuration",
        ));
    };
    let now = clock.advance_ms(seconds * 1000);
    Ok(super::object(json!({ "Now": time(now) })))
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

/// `Purchases` holds 1 to `limit` elements, as the engine bounds a batch.
fn batch_len(len: usize, limit: usize) -> Result<(), ApiError> {
    check_batch_len(len, limit).map_err(|_| {
        ApiError::new(
            "InvalidParameterValue.Purchases",
            format!("`Purchases` holds 1 to {limit} elements, got {len}"),
        )
    })
}

/// A purchase answer with its voucher deductions and charges.
fn with_charges(fields: Value, charges: &Charges) -> Value {
    let mut fields = super::object(fields);
    for (name, amount) in [
        ("ClientVoucherDeduction", charges.customer_deduction),
        ("PartnerVoucherDeduction", charges.partner_deduction),
        ("ClientCharge", charges.customer_charge),
        ("PartnerCharge", charges.partner_charge),
    ] {
        fields.insert(name.into(), money(amount));
    }
    Value::Object(fields)
}

fn voucher_id(id: VoucherId) -> Value {
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

/// The names of a voucher's `ProductScope` and `PaymentMode`, for errors.
pub(super) const PRODUCT_SCOPES: &str = "AllProducts, SpecifyProducts or SpecifyProductsBlacklist";
pub(super) const PAYMENT_MODES: &str = "AllPayment, Prepaid or Postpaid";

/// `ProductScope`, `ProductCodes` and `PaymentMode` of a voucher.
fn voucher_scope(params: &mut Params, action: Action) -> Result<Scope, ApiError> {
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
        .map_err(|rejection| ApiError::rejected(&rejection, action))
}

fn purchase_request(params: &mut Params) -> Result<PurchaseRequest, ApiError> {
    let id = params.required_purchase_id("PurchaseId")?;
    let customer = params.required_uin("ClientUin")?;
    let amount = params.required_money("Amount")?;
    let product_code = text(params, "ProductCode")?.map(CompactString::from);
    let pay = params.choice("PaymentMode", PayMode::from_name, "Prepaid or Postpaid")?.unwrap_or_default();
    Ok(PurchaseRequest { id, customer, amount, product_code, pay })
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
    #[serde(rename = "PaymentMode", default, borrow)]
    pay: Option<std::borrow::Cow<'a, str>>,
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
        let pay = match self.pay {
            None => PayMode::Prepaid,
            Some(name) => PayMode::from_name(&name)?,
        };
        Some(PurchaseRequest {
            id: PurchaseId::new(&self.id).ok()?,
            customer: (self.customer > 0).then_some(Uin(self.customer))?,
            amount,
            product_code,
            pay,
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
                Err(error) => Err(engine_error(error)),
            })
        }
        Action::CreatePurchases => {
            let batch = serde_json::from_slice::<BatchFields>(body).ok()?;
            batch_len(batch.purchases.len(), engine.config().batch_len_max).ok()?;
            let requests: Vec<PurchaseRequest> =
                batch.purchases.into_iter().map(PurchaseFields::request).collect::<Option<_>>()?;
            let ids: Vec<PurchaseId> = requests.iter().map(|request| request.id.clone()).collect();
            let results = match engine.purchase_batch(caller, requests).await {
                Ok(results) => results,
                Err(error) => return Some(Err(engine_error(error))),
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
                        out.extend_from_slice(b",\"Status\":\"Committed\"");
                        write_charges(&mut out, &receipt.charges());
                        out.push(b'}');
                    }
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

/// The charges' fields, each led by a comma, as [`with_charges`] writes them.
fn write_charges(out: &mut Vec<u8>, charges: &Charges) {
    let _ = write!(
        out,
        ",\"ClientVoucherDeduction\":{},\"PartnerVoucherDeduction\":{},\"ClientCharge\":{},\"PartnerCharge\":{}",
        charges.customer_deduction, charges.partner_deduction, charges.customer_charge, charges.partner_charge
    );
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
}
