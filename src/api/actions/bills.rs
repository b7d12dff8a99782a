//! Bill months (the engine's own actions).
//!
//! - `ConfirmBill` {`ClientUin`, `Month`} -> {`ReturnedCredit`}, by the customer's partner;
//! - `SettlePartnerBill` {`PartnerUin`, `Month`} -> {`ReturnedCredit`}, by the operator.
//!
//! A month is final, and can be confirmed, from its end plus the longest reservation timeout
//! plus 60 s (`FailedOperation.BillNotFinal` before; `FailedOperation.BillConfirmed` the
//! second time). Months are written `YYYY-MM`.

use serde_json::json;

use super::{Answer, Context};
use crate::api::errors::ApiError;
use crate::api::money;
use crate::api::params::Params;
use crate::domain::{Caller, Month, Uin};

pub fn read_customer_month(params: &mut Params, _: &Context) -> Result<(Uin, Month), ApiError> {
    Ok((params.required_uin("ClientUin")?, params.required_month("Month")?))
}

pub async fn confirm_bill(context: &Context<'_>, caller: Caller, (customer, month): (Uin, Month)) -> Answer {
    let returned =
        context.engine.confirm_bill(caller, customer, month).await.map_err(|error| context.refused(error))?;
    Ok(json!({ "ReturnedCredit": money(returned) }))
}

pub fn read_partner_month(params: &mut Params, _: &Context) -> Result<(Uin, Month), ApiError> {
    Ok((params.required_uin("PartnerUin")?, params.required_month("Month")?))
}

pub async fn settle_partner_bill(
    context: &Context<'_>,
    caller: Caller,
    (partner, month): (Uin, Month),
) -> Answer {
    let returned = context
        .engine
        .settle_partner_bill(caller, partner, month)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "ReturnedCredit": money(returned) }))
}
