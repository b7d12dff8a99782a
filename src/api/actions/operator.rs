//! The operator's controls of the server as a test double (the engine's own actions; no
//! quota unless configured).
//!
//! - `SetFaults` {`Faults`: up to 100 of {`Action` (a name or `*`), `CallerUin`?,
//!   `Probability` (0 to 1), one of `Code` | `DelayMs` (1 to 300000) | `Drop` (true),
//!   `Seed`?}} -> {}: replaces the faults in force (`[]` clears them); see
//!   [`crate::api::faults`];
//! - `DescribeFaults` {} -> {`Faults`}: the faults in force, in the shape `SetFaults` reads
//!   (with the seed in force: the one given, or the one drawn for a fault given none);
//! - `ResetState` {`To`: `Empty` | `StartWorld`} -> {`Accounts`}: replaces the whole state
//!   (accounts, vouchers, reservations, purchase ids remembered for repeats, histories, rate
//!   limits) with an empty one or the world the server imported at start, in one step
//!   ([`crate::api::server::Api::replace_engine`]). The faults in force and the metrics stay
//!   as they are, and so does an adjustable clock.
//!
//! Each is counted against its quota, then refused to anyone but the operator.

use serde_json::{json, Value};

use super::{Answer, Context};
use crate::api::errors::ApiError;
use crate::api::faults::{self, Fault};
use crate::api::params::Params;
use crate::api::server::Replacement;
use crate::domain::{Caller, Rejection};

pub fn read_faults(params: &mut Params, _: &Context) -> Result<Vec<Fault>, ApiError> {
    faults::read(params)
}

/// Counted, then only the operator.
fn operator_only(context: &Context<'_>, caller: Caller, what: &'static str) -> Result<(), ApiError> {
    context.admit(caller)?;
    if caller != Caller::Operator {
        return Err(context.rejected(&Rejection::OperatorOnly(what)));
    }
    Ok(())
}

pub async fn set_faults(context: &Context<'_>, caller: Caller, list: Vec<Fault>) -> Answer {
    operator_only(context, caller, "set faults")?;
    tracing::info!(faults = list.len(), "faults replaced");
    context.server.faults().set(list);
    Ok(json!({}))
}

pub async fn describe_faults(context: &Context<'_>, caller: Caller, (): ()) -> Answer {
    operator_only(context, caller, "describe faults")?;
    let list: Vec<Value> = context.server.faults().list().iter().map(faults::describe).collect();
    Ok(json!({ "Faults": list }))
}

pub fn read_reset(params: &mut Params, _: &Context) -> Result<Replacement, ApiError> {
    params
        .choice(
            "To",
            |name| match name {
                "Empty" => Some(Replacement::Empty),
                "StartWorld" => Some(Replacement::StartWorld),
                _ => None,
            },
            "Empty or StartWorld",
        )?
        .ok_or_else(|| ApiError::missing("To"))
}

pub async fn reset_state(context: &Context<'_>, caller: Caller, to: Replacement) -> Answer {
    operator_only(context, caller, "reset the state")?;
    let accounts = context.server.replace_engine(to).await.map_err(|error| context.refused(error))?;
    if let Some(metrics) = context.server.metrics() {
        metrics.state_reset(to == Replacement::StartWorld);
    }
    tracing::info!(?to, accounts, "state reset");
    Ok(json!({ "Accounts": accounts }))
}
