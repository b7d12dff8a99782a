//! Actions about the server itself (the engine's own).
//!
//! - `Ping` {} -> {}: authenticated and parsed like the rest, and nothing else (the benches
//!   measure the server's own cost with it);
//! - `AdvanceClock` {`Seconds`: 1 to 31536000} -> {`Now`} (operator; only on a server
//!   configured with `[engine] adjustable_clock = true`, else `UnsupportedOperation`): moves
//!   the engine's clock forward, to rehearse month ends and expiries. The clock is the
//!   server's ([`Context::clock`]), not the engine's.

use serde_json::json;

use super::{Answer, Context};
use crate::api::errors::ApiError;
use crate::api::params::Params;
use crate::api::time;
use crate::domain::{Caller, Rejection};

/// The largest `Seconds` of one `AdvanceClock`: a year.
pub const ADVANCE_SECONDS_MAX: i64 = 31_536_000;

pub async fn ping(_: &Context<'_>, _: Caller, (): ()) -> Answer {
    Ok(json!({}))
}

pub fn read_seconds(params: &mut Params, _: &Context) -> Result<i64, ApiError> {
    let seconds = params.required_integer("Seconds")?;
    if !(1..=ADVANCE_SECONDS_MAX).contains(&seconds) {
        return Err(ApiError::value(
            "Seconds",
            format!("{seconds} is outside 1 to {ADVANCE_SECONDS_MAX} (one year)"),
        ));
    }
    Ok(seconds)
}

/// Counted against its quota first, as every call; then only the operator, and only on a
/// server whose configuration made the clock adjustable.
pub async fn advance_clock(context: &Context<'_>, caller: Caller, seconds: i64) -> Answer {
    context.admit(caller)?;
    if caller != Caller::Operator {
        return Err(context.rejected(&Rejection::OperatorOnly("advance the clock")));
    }
    let Some(clock) = context.clock else {
        return Err(ApiError::new(
            "UnsupportedOperation",
            "AdvanceClock needs a server started with `adjustable_clock = true` in its [engine] \
             configuration",
        ));
    };
    let now = clock.advance_ms(seconds * 1000);
    Ok(json!({ "Now": time(now) }))
}
