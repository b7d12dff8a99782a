//! The upstream intlpartnersmgt actions the engine offers, with their documented request
//! and response fields; every other upstream action is counted against its quota and
//! answers `UnsupportedOperation`.

use serde_json::{json, Map, Value};

use super::errors::ApiError;
use super::params::Params;
use super::{money, time, uin};
use crate::domain::{Action, Caller};
use crate::engine::Engine;

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
        _ => {
            engine.admit(caller, action).map_err(|rejection| ApiError::rejected(&rejection, action))?;
            return Err(ApiError::new(
                "UnsupportedOperation",
                format!("{action} is an upstream action this engine does not offer"),
            ));
        }
    };
    let _ = (time, uin);
    match fields {
        Value::Object(fields) => Ok(fields),
        _ => unreachable!("every answer is an object"),
    }
}
