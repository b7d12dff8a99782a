//! The HTTP API (`partner-credit serve`): API 3.0 conventions, so that the official SDKs and
//! CLI talk to the engine with only the endpoint changed. Only this layer knows HTTP and
//! JSON; it turns requests into engine calls and engine answers into responses.
//!
//! - [`sign`]: the TC3-HMAC-SHA256 signature (pure);
//! - [`params`]: strict reading of a request's JSON parameters;
//! - [`errors`]: error answers, and the one mapping from refusals to codes;
//! - [`upstream`] and [`own`]: the actions, upstream and the engine's own;
//! - [`config`], [`tls`], [`server`]: the configuration and the actix-web server;
//! - [`client`]: a signing client over one keep-alive connection, for benches and load.

pub mod client;
pub mod config;
pub mod errors;
pub mod own;
pub mod params;
pub mod server;
pub mod sign;
pub mod tls;
pub mod upstream;

use serde_json::{Map, Number, Value};

use crate::domain::{Money, Timestamp, Uin};

/// The API version the server speaks (`X-TC-Version`).
pub const VERSION: &str = "2022-09-28";

/// An amount as a JSON number, exactly (no float on the way).
pub fn money(amount: Money) -> Value {
    Value::Number(amount.to_string().parse::<Number>().expect("a decimal is a JSON number"))
}

/// The fields of an answer built with `json!({...})`.
pub fn object(fields: Value) -> Map<String, Value> {
    match fields {
        Value::Object(fields) => fields,
        other => unreachable!("an answer is an object, not {other}"),
    }
}

pub fn uin(uin: Uin) -> Value {
    Value::Number(uin.0.into())
}

/// A time as the API writes them: `YYYY-MM-DD hh:mm:ss`, UTC.
pub fn time(at: Timestamp) -> Value {
    let seconds = at.0.div_euclid(1000);
    let of_day = seconds.rem_euclid(86_400);
    Value::String(format!(
        "{} {:02}:{:02}:{:02}",
        sign::utc_date(seconds),
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(serde_json::to_string(&money(Money::parse("0.1").unwrap())).unwrap(), "0.1");
        assert_eq!(serde_json::to_string(&money(Money::parse("-12.50").unwrap())).unwrap(), "-12.5");
        assert_eq!(serde_json::to_string(&money(Money::ZERO)).unwrap(), "0");
        assert_eq!(
            time(Timestamp(1_767_225_600_000 + 3_723_999)),
            Value::String("2026-01-01 01:02:03".into())
        );
    }
}
