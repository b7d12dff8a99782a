//! Frozen credit of postpaid resources (the engine's own actions).
//!
//! - `ActivatePostpaid` {`ResourceId` (1 to 64 characters), `ClientUin`, `Amount`,
//!   `FreezingCoefficient`? (0 to 1, at most 8 decimals; default `[engine]
//!   freezing_coefficient_default`)} -> {`FrozenAmount`};
//! - `TerminatePostpaid` {`ResourceId`} -> {`ClientUin`, `RemainingCredit`}.
//!
//! The resource id's length, the amount and the coefficient are the engine's checks.

use rust_decimal::Decimal;
use serde_json::json;

use super::{Answer, Context};
use crate::api::errors::ApiError;
use crate::api::params::Params;
use crate::api::{money, uin};
use crate::domain::{Caller, Money, Uin};

/// A resource to activate, as read.
pub struct Activation {
    resource: String,
    customer: Uin,
    amount: Money,
    coefficient: Option<Decimal>,
}

pub fn read_activation(params: &mut Params, _: &Context) -> Result<Activation, ApiError> {
    Ok(Activation {
        resource: params.required_string("ResourceId")?,
        customer: params.required_uin("ClientUin")?,
        amount: params.required_money("Amount")?,
        coefficient: params.decimal("FreezingCoefficient")?,
    })
}

pub async fn activate_postpaid(context: &Context<'_>, caller: Caller, read: Activation) -> Answer {
    let Activation { resource, customer, amount, coefficient } = read;
    let frozen = context
        .engine
        .activate_postpaid(caller, &resource, customer, amount, coefficient)
        .await
        .map_err(|error| context.refused(error))?;
    Ok(json!({ "FrozenAmount": money(frozen) }))
}

pub fn read_resource(params: &mut Params, _: &Context) -> Result<String, ApiError> {
    params.required_string("ResourceId")
}

pub async fn terminate_postpaid(context: &Context<'_>, caller: Caller, resource: String) -> Answer {
    let (customer, available) =
        context.engine.terminate_postpaid(caller, &resource).await.map_err(|error| context.refused(error))?;
    Ok(json!({ "ClientUin": uin(customer), "RemainingCredit": money(available) }))
}
