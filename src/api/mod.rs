//! The HTTP API (`partner-credit serve`): API 3.0 conventions, so that the official SDKs and
//! CLI talk to the engine with only the endpoint changed. Only this layer knows HTTP and
//! JSON; it turns requests into engine calls and engine answers into responses.
//!
//! - [`sign`]: the TC3-HMAC-SHA256 and v1 signatures (pure); [`auth`]: who a request comes
//!   from, by either, with the `Host` forms accepted;
//! - [`decode`]: the one decoder of a request's parameters (JSON, form body, query string);
//! - [`params`]: strict reading of the decoded parameters;
//! - [`errors`]: error answers, and the one mapping from refusals to codes;
//! - [`actions`]: the actions as one table (reader and handler of each), a file per family;
//! - [`config`], [`tls`], [`server`]: the configuration and the actix-web server (the
//!   request path, and the engine it can replace whole); [`serve`]: the command's start and
//!   stop;
//! - the test double's controls: [`faults`] (errors, delays and dropped connections on
//!   purpose), [`admin`] (`GET /health`, `GET /metrics`), [`metrics`] (what is counted);
//! - [`client`]: a signing client over one keep-alive connection, for benches and load;
//! - [`webhook`]: posts the engine's events (credit warnings) to the configured URLs.

pub mod actions;
pub mod admin;
pub mod auth;
pub mod client;
pub mod config;
pub mod decode;
pub mod errors;
pub mod faults;
pub mod metrics;
pub mod params;
pub mod serve;
pub mod server;
pub mod sign;
pub mod tls;
pub mod webhook;

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

/// The first and last years [`parse_time`] accepts.
pub const TIME_YEARS: std::ops::RangeInclusive<i64> = 1970..=9999;

/// Reads a time as [`time`] writes it, `YYYY-MM-DD hh:mm:ss` in UTC, exactly: every field
/// with its digits, a real calendar date from 1970 to 9999, and no leap second. The error
/// says what the text should look like.
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    let bytes = text.as_bytes();
    let layout_ok = bytes.len() == 19
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            4 | 7 => *byte == b'-',
            10 => *byte == b' ',
            13 | 16 => *byte == b':',
            _ => byte.is_ascii_digit(),
        });
    if !layout_ok {
        return Err(format!("{text:?} is not a UTC time as YYYY-MM-DD hh:mm:ss"));
    }
    let field = |range: std::ops::Range<usize>| text[range].parse::<i64>().expect("checked digits");
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    let (hour, minute, second) = (field(11..13), field(14..16), field(17..19));
    if !TIME_YEARS.contains(&year) {
        return Err(format!("{text:?} is outside the years {} to {}", TIME_YEARS.start(), TIME_YEARS.end()));
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(format!("{text:?} has no month {month:02}")),
    };
    if !(1..=days_in_month).contains(&day) {
        return Err(format!("{text:?} has no day {day:02} in its month"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!("{text:?} is not a time of day from 00:00:00 to 23:59:59"));
    }
    let days = crate::domain::ids::days_from_civil(year, month as u32, day as u32);
    Ok(Timestamp((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_bad_ones_say_why() {
        for millis in
            [0, 951_782_400_000, 1_767_225_600_000 + 3_723_000, 4_102_444_799_000, 253_402_300_799_000]
        {
            let written = time(Timestamp(millis));
            assert_eq!(parse_time(written.as_str().unwrap()), Ok(Timestamp(millis)), "{written}");
        }
        assert_eq!(parse_time("2024-02-29 12:00:00"), Ok(Timestamp(1_709_208_000_000)));
        let cases = [
            ("2026-01-01", "YYYY-MM-DD hh:mm:ss"),
            ("2026-01-01T00:00:00", "YYYY-MM-DD hh:mm:ss"),
            ("2026-1-01 00:00:00", "YYYY-MM-DD hh:mm:ss"),
            (" 2026-01-01 00:00:00", "YYYY-MM-DD hh:mm:ss"),
            ("2026-01-01 00:00:00Z", "YYYY-MM-DD hh:mm:ss"),
            ("2026-13-01 00:00:00", "no month 13"),
            ("2026-00-01 00:00:00", "no month 00"),
            ("2025-02-29 00:00:00", "no day 29"),
            ("2100-02-29 00:00:00", "no day 29"),
            ("2026-04-31 00:00:00", "no day 31"),
            ("2026-01-00 00:00:00", "no day 00"),
            ("2026-01-01 24:00:00", "time of day"),
            ("2026-01-01 23:60:00", "time of day"),
            ("2026-01-01 23:59:60", "time of day"),
            ("1969-12-31 23:59:59", "outside the years"),
        ];
        for (text, reason) in cases {
            let error = parse_time(text).unwrap_err();
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

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
