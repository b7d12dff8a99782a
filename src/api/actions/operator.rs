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
//! - `SaveSnapshot` {`Path`} -> {`Bytes`}: writes every account and purchase record to a
//!   snapshot file; `LoadSnapshot` {`Path`} -> {`Accounts`}: replaces the whole state with a
//!   snapshot's, checked as a recovery is, through the same path as `ResetState` (a
//!   snapshot that does not load changes nothing). Paths are the server machine's, relative
//!   to its working directory.
//!
//! Each is counted against its quota, then refused to anyone but the operator.

use std::path::PathBuf;

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
    let start_world = to == Replacement::StartWorld;
    let accounts = context.server.replace_engine(to.clone()).await.map_err(|error| context.refused(error))?;
    if let Some(metrics) = context.server.metrics() {
        metrics.state_reset(start_world);
    }
    tracing::info!(?to, accounts, "state reset");
    Ok(json!({ "Accounts": accounts }))
}

/// `Path`: a snapshot file on the server's machine, relative to its working directory.
pub fn read_path(params: &mut Params, _: &Context) -> Result<PathBuf, ApiError> {
    let path = params.required_string("Path")?;
    if path.is_empty() || path.len() > PATH_LEN_MAX || path.contains('\0') {
        return Err(ApiError::new(
            "InvalidParameterValue",
            format!("Path: a file path of 1 to {PATH_LEN_MAX} bytes without NUL"),
        ));
    }
    Ok(PathBuf::from(path))
}

/// The longest `Path` read.
const PATH_LEN_MAX: usize = 4096;

/// SaveSnapshot {`Path`} -> {`Bytes`}: writes the whole state to `Path` atomically (a
/// temporary file, fsynced, renamed).
pub async fn save_snapshot(context: &Context<'_>, caller: Caller, path: PathBuf) -> Answer {
    operator_only(context, caller, "save snapshots")?;
    let bytes = context
        .engine
        .save_snapshot(&path)
        .await
        .map_err(|error| ApiError::new("InvalidParameterValue", format!("Path: {error}")))?;
    tracing::info!(path = %path.display(), bytes, "snapshot saved");
    Ok(json!({ "Bytes": bytes }))
}

/// LoadSnapshot {`Path`} -> {`Accounts`}: replaces the whole state with the snapshot's,
/// through the same path as `ResetState`; a snapshot that does not load changes nothing.
pub async fn load_snapshot(context: &Context<'_>, caller: Caller, path: PathBuf) -> Answer {
    operator_only(context, caller, "load snapshots")?;
    let replacement = Replacement::Snapshot(path.clone());
    let accounts =
        context.server.replace_engine(replacement).await.map_err(|error| context.refused(error))?;
    tracing::info!(path = %path.display(), accounts, "snapshot loaded");
    Ok(json!({ "Accounts": accounts }))
}
