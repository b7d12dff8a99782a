//! Custom credit warning thresholds (the engine's own action).
//!
//! `SetCreditWarning` {`ClientUin`, `RemainingPercent`? (0 to 100, 2 decimals) or
//! `RemainingAmount`? (0 or more); not both, neither removes the threshold} -> {}: the
//! customer's partner sets its threshold for the customer, the customer its own. The bounds
//! of a threshold are the domain's ([`Threshold`]).

use rust_decimal::Decimal;
use serde_json::json;

use super::{Answer, Context};
use crate::api::errors::ApiError;
use crate::api::params::Params;
use crate::domain::{Caller, Money, Threshold, Uin};

pub fn read_threshold(
    params: &mut Params,
    _: &Context,
) -> Result<(Uin, Option<Decimal>, Option<Money>), ApiError> {
    Ok((
        params.required_uin("ClientUin")?,
        params.decimal("RemainingPercent")?,
        params.money("RemainingAmount")?,
    ))
}

pub async fn set_credit_warning(
    context: &Context<'_>,
    caller: Caller,
    (customer, percent, amount): (Uin, Option<Decimal>, Option<Money>),
) -> Answer {
    let rejected = |rejection| context.rejected(&rejection);
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
    context
        .engine
        .set_credit_warning(caller, customer, threshold)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({}))
}
