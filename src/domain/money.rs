//! Exact decimal money.
//!
//! Every amount inside the engine is a [`Money`]: an exact decimal with at most
//! [`Money::SCALE_MAX`] decimal places and an absolute value of at most [`Money::ABS_MAX`],
//! stored as a whole number of 10^-8 units in an `i128` (fixed point). Additions,
//! subtractions and comparisons are then single integer instructions: `rust_decimal` costs
//! about seven times as much on the purchase path (docs/performance.md). Texts and
//! `Decimal`s are converted at the edges ([`Money::parse`], [`Money::from_decimal`],
//! [`Money::as_decimal`], `Display`); multiplications (freezing coefficients, warning
//! percentages) go through `Decimal`. Floating point never touches money here; the API layer
//! parses JSON numbers from their text, not through `f64`.
//!
//! Invariant: a `Money` built by [`Money::parse`] or [`Money::from_decimal`] has at most 8
//! decimal places (it is a whole number of units) and |value| <= `ABS_MAX`; an `i128` holds
//! sums of 10^17 such values, far more than the engine can hold.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use rust_decimal::Decimal;

/// An exact amount of money in the platform currency (USD): a whole number of 10^-8 units.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Money(i128);

/// Units of 10^-8 in one whole unit of money.
const UNITS_PER_WHOLE: i128 = 100_000_000;

/// Why a text or decimal is not a valid amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MoneyError {
    #[error("'{0}' is not a decimal number")]
    NotANumber(String),
    #[error("{0} has more than 8 decimal places")]
    TooManyDecimals(String),
    #[error("{0} is out of range: amounts are at most 1000000000000 in absolute value")]
    OutOfRange(String),
}

impl Money {
    /// The most decimal places an amount may carry (the upstream bills use 8).
    pub const SCALE_MAX: u32 = 8;
    /// The largest absolute amount of one operation: one trillion. It keeps every sum the
    /// engine forms far below the limits of `i128` and of `Decimal` (about 7.9e28), to which
    /// amounts convert at the edges.
    pub const ABS_MAX: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0);
    pub const ZERO: Money = Money(0);

    /// Parses a decimal text such as `"12.50"`, `"-3"` or `"1e2"` is refused (no exponents).
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let trimmed = text.trim();
        let valid_chars = !trimmed.is_empty()
            && trimmed
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || c == '.' || (i == 0 && (c == '-' || c == '+')));
        if !valid_chars {
            return Err(MoneyError::NotANumber(text.to_string()));
        }
        // Judge the text, not the decimal: `Decimal` rounds what is past its 28 digits, so
        // "1.000…0001" would otherwise come out as exactly 1.
        let digits = trimmed.trim_start_matches(['-', '+']);
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if fraction.trim_end_matches('0').len() > Self::SCALE_MAX as usize {
            return Err(MoneyError::TooManyDecimals(text.to_string()));
        }
        if whole.trim_start_matches('0').len() > 13 {
            return Err(MoneyError::OutOfRange(text.to_string()));
        }
        let decimal = Decimal::from_str(trimmed).map_err(|_| MoneyError::NotANumber(text.to_string()))?;
        Money::from_decimal(decimal).map_err(|error| match error {
            // Report the text the caller wrote, not the normalised decimal.
            MoneyError::TooManyDecimals(_) => MoneyError::TooManyDecimals(text.to_string()),
            MoneyError::OutOfRange(_) => MoneyError::OutOfRange(text.to_string()),
            other => other,
        })
    }

    /// Checks scale and range of a decimal. Trailing zeros do not count as decimal places.
    pub fn from_decimal(value: Decimal) -> Result<Money, MoneyError> {
        let normalized = value.normalize();
        if normalized.scale() > Self::SCALE_MAX {
            return Err(MoneyError::TooManyDecimals(value.to_string()));
        }
        if normalized.abs() > Self::ABS_MAX {
            return Err(MoneyError::OutOfRange(value.to_string()));
        }
        let mut fixed = normalized;
        fixed.rescale(Self::SCALE_MAX);
        Ok(Money(fixed.mantissa()))
    }

    /// Whole units, for generated worlds and tests.
    pub fn from_units(units: i64) -> Money {
        Money(i128::from(units) * UNITS_PER_WHOLE)
    }

    /// Hundredths (cents), for generated worlds and tests.
    pub fn from_cents(cents: i64) -> Money {
        Money(i128::from(cents) * (UNITS_PER_WHOLE / 100))
    }

    /// The amount as a `Decimal` at scale 8 (its `Display` and equality ignore the scale).
    pub fn as_decimal(self) -> Decimal {
        Decimal::from_i128_with_scale(self.0, Self::SCALE_MAX)
    }

    /// The amount in units of 10^-8: the fixed-point value itself.
    pub fn units(self) -> i128 {
        self.0
    }

    /// The amount of `units` units of 10^-8, as [`Money::units`] answered it: records keep
    /// amounts so. Only for values a `Money` had: sums may exceed [`Money::ABS_MAX`].
    pub fn from_fixed(units: i128) -> Money {
        Money(units)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// One of `parts` equal shares, cut to 8 places towards zero (so that the shares never
    /// add up to more than the whole).
    pub fn share_of(self, parts: u32) -> Money {
        Money(self.0 / i128::from(parts.max(1)))
    }

    pub fn abs(self) -> Money {
        Money(self.0.abs())
    }

    /// The value as `f64`, only for JSON output and reports, never for arithmetic.
    pub fn to_f64_lossy(self) -> f64 {
        use rust_decimal::prelude::ToPrimitive;
        self.as_decimal().to_f64().unwrap_or(f64::NAN)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.as_decimal().normalize(), f)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(text: &str) -> Result<Money, MoneyError> {
        Money::parse(text)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, other: Money) -> Money {
        Money(self.0 + other.0)
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, other: Money) -> Money {
        Money(self.0 - other.0)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, other: Money) {
        self.0 += other.0;
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, other: Money) {
        self.0 -= other.0;
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Result<&str, &str>) {
        let got = Money::parse(text);
        match (got, expect) {
            (Ok(money), Ok(want)) => assert_eq!(money.to_string(), want, "parse {text:?}"),
            (Err(error), Err(kind)) => {
                let name = match error {
                    MoneyError::NotANumber(_) => "not a number",
                    MoneyError::TooManyDecimals(_) => "too many decimals",
                    MoneyError::OutOfRange(_) => "out of range",
                };
                assert_eq!(name, kind, "parse {text:?}");
            }
            (got, want) => panic!("parse {text:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn parse_table() {
        check("1", Ok("1"));
        check("1.00", Ok("1"));
        check("0.01", Ok("0.01"));
        check("-3.5", Ok("-3.5"));
        check("+2", Ok("2"));
        check("0.12345678", Ok("0.12345678"));
        check("0.123456780", Ok("0.12345678"));
        check("0.123456789", Err("too many decimals"));
        check("1000000000000", Ok("1000000000000"));
        check("1000000000000.00000001", Err("out of range"));
        check("-1000000000001", Err("out of range"));
        check("", Err("not a number"));
        check("abc", Err("not a number"));
        check("1e3", Err("not a number"));
        check("NaN", Err("not a number"));
        check("1.2.3", Err("not a number"));
        check("--1", Err("not a number"));
        // Past Decimal's 28 digits: refused, not rounded.
        check("1.000000000000000000000000000001", Err("too many decimals"));
        check("0.99999999999999999999999999999", Err("too many decimals"));
        check("0.000000000000000000000000000001", Err("too many decimals"));
        check("99999999999999999999999999999999", Err("out of range"));
        check("00000000000000000001.5000000000000000000000000", Ok("1.5"));
    }

    #[test]
    fn abs_max_is_one_trillion() {
        assert_eq!(Money::ABS_MAX, Decimal::from(1_000_000_000_000i64));
    }

    #[test]
    fn every_amount_has_scale_eight() {
        for money in [Money::parse("1").unwrap(), Money::from_units(3), Money::from_cents(5), Money::ZERO] {
            assert_eq!(money.as_decimal().scale(), 8, "{money}");
            assert_eq!((money + Money::parse("0.00000001").unwrap()).as_decimal().scale(), 8);
        }
        assert_eq!(Money::parse("1.50").unwrap().to_string(), "1.5");
    }

    #[test]
    fn fixed_point_round_trips_through_decimal_and_text() {
        for text in ["0", "1", "-1", "0.00000001", "-0.00000001", "1000000000000", "-1000000000000", "123.45"]
        {
            let money = Money::parse(text).unwrap();
            assert_eq!(Money::from_decimal(money.as_decimal()), Ok(money), "{text}");
            assert_eq!(money.to_string().parse::<Money>(), Ok(money), "{text}");
        }
        assert_eq!(Money::parse("0.00000001").unwrap().units(), 1);
        assert_eq!(Money::from_units(-2).units(), -200_000_000);
        assert_eq!(Money::from_cents(150), Money::parse("1.5").unwrap());
        assert!(Money::parse("-0.00000001").unwrap().is_negative());
        assert!(!Money::ZERO.is_negative() && !Money::ZERO.is_positive() && Money::ZERO.is_zero());
        assert!(Money::parse("0.00000002").unwrap() > Money::parse("0.00000001").unwrap());
        assert_eq!(format!("{:?}", Money::from_cents(5)), "Money(0.05)");
    }

    #[test]
    fn shares_never_exceed_the_whole() {
        let whole = Money::parse("1").unwrap();
        assert_eq!(whole.share_of(3), Money::parse("0.33333333").unwrap());
        assert!(Money::parse("0.00000001").unwrap().share_of(4).is_zero());
        assert_eq!(whole.share_of(0), whole);
    }

    #[test]
    fn arithmetic_is_exact() {
        let tenth = Money::parse("0.1").unwrap();
        let sum: Money = std::iter::repeat_n(tenth, 10).sum();
        assert_eq!(sum, Money::from_units(1));
        assert_eq!(Money::from_cents(150) - Money::from_units(1), Money::parse("0.5").unwrap());
    }
}
