//! `--threshold`: pass/fail conditions on the report, as k6 has them, that set the exit code.
//!
//! Forms: `p50|p90|p99|p999|max < N(us|ms|s)`, `refused < N%` or `refused < N` (a count),
//! `errors < N%` or `errors < N`, `throughput > N` (operations per second). `<=` and `>=`
//! are accepted too. Anything else is an error (exit code 2), never silently ignored.
//!
//! Invariant: parsing is pure; a threshold is checked against numbers of the report only.

use std::fmt;

/// What a threshold looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// A latency percentile (or the maximum), in microseconds.
    LatencyUs(Percentile),
    Refused,
    Errors,
    /// Operations per second.
    Throughput,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Percentile {
    P50,
    P90,
    P99,
    P999,
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

/// The bound, in the metric's unit: microseconds, a fraction of operations (for `N%`), a
/// count, or operations per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    Value(f64),
    Fraction(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    /// As the user wrote it, for the report.
    pub text: String,
    pub metric: Metric,
    pub comparison: Comparison,
    pub bound: Bound,
}

/// Why a threshold cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--threshold {text:?}: {reason} (forms: p99<5ms, p50<=800us, max<1s, refused<1%, errors<10, throughput>1000)")]
pub struct ThresholdError {
    pub text: String,
    pub reason: String,
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Threshold, ThresholdError> {
        let error = |reason: &str| ThresholdError { text: text.to_owned(), reason: reason.to_owned() };
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let position = compact.find(['<', '>']).ok_or_else(|| error("no < or > in it"))?;
        let (name, rest) = compact.split_at(position);
        let (comparison, value) = if let Some(value) = rest.strip_prefix("<=") {
            (Comparison::LessOrEqual, value)
        } else if let Some(value) = rest.strip_prefix(">=") {
            (Comparison::GreaterOrEqual, value)
        } else if let Some(value) = rest.strip_prefix('<') {
            (Comparison::Less, value)
        } else {
            (Comparison::Greater, &rest[1..])
        };
        let metric = match name.to_ascii_lowercase().as_str() {
            "p50" => Metric::LatencyUs(Percentile::P50),
            "p90" => Metric::LatencyUs(Percentile::P90),
            "p99" => Metric::LatencyUs(Percentile::P99),
            "p999" | "p99.9" => Metric::LatencyUs(Percentile::P999),
            "max" => Metric::LatencyUs(Percentile::Max),
            "refused" => Metric::Refused,
            "errors" => Metric::Errors,
            "throughput" => Metric::Throughput,
            "" => return Err(error("no metric before the comparison")),
            _ => return Err(error(&format!("unknown metric {name:?}"))),
        };
        let number = |digits: &str| -> Result<f64, ThresholdError> {
            match digits.parse::<f64>() {
                Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
                _ => Err(error(&format!("{digits:?} is not a number of 0 or more"))),
            }
        };
        let bound = match metric {
            Metric::LatencyUs(_) => {
                let (digits, scale) = if let Some(digits) = value.strip_suffix("us") {
                    (digits, 1.0)
                } else if let Some(digits) = value.strip_suffix("ms") {
                    (digits, 1_000.0)
                } else if let Some(digits) = value.strip_suffix('s') {
                    (digits, 1_000_000.0)
                } else {
                    return Err(error("a latency needs a unit: us, ms or s"));
                };
                Bound::Value(number(digits)? * scale)
            }
            Metric::Refused | Metric::Errors => match value.strip_suffix('%') {
                Some(digits) => {
                    let percent = number(digits)?;
                    if percent > 100.0 {
                        return Err(error("a percentage is at most 100"));
                    }
                    Bound::Fraction(percent / 100.0)
                }
                None => Bound::Value(number(value)?),
            },
            Metric::Throughput => Bound::Value(number(value.strip_suffix("/s").unwrap_or(value))?),
        };
        Ok(Threshold { text: text.to_owned(), metric, comparison, bound })
    }

    /// Whether `value` (and `operations`, for a fraction) keeps this threshold. A run that
    /// measured nothing keeps none: an empty histogram's p99 of 0 proves nothing.
    pub fn holds(&self, value: f64, operations: u64) -> bool {
        if operations == 0 {
            return false;
        }
        let bound = match self.bound {
            Bound::Value(bound) => bound,
            Bound::Fraction(fraction) => {
                let value = if operations == 0 { 0.0 } else { value / operations as f64 };
                return compare(self.comparison, value, fraction);
            }
        };
        compare(self.comparison, value, bound)
    }
}

fn compare(comparison: Comparison, value: f64, bound: f64) -> bool {
    match comparison {
        Comparison::Less => value < bound,
        Comparison::LessOrEqual => value <= bound,
        Comparison::Greater => value > bound,
        Comparison::GreaterOrEqual => value >= bound,
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: Result<(Metric, Comparison, Bound), &str>) {
        let parsed = Threshold::parse(text)
            .map(|threshold| (threshold.metric, threshold.comparison, threshold.bound))
            .map_err(|error| error.reason);
        match (parsed, expect) {
            (Ok(parsed), Ok(expect)) => assert_eq!(parsed, expect, "{text}"),
            (Err(reason), Err(expect)) => assert!(reason.contains(expect), "{text}: {reason}"),
            (parsed, expect) => panic!("{text}: got {parsed:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn thresholds_parse() {
        use Comparison::*;
        use Metric::*;
        use Percentile::*;
        check("p99<5ms", Ok((LatencyUs(P99), Less, Bound::Value(5_000.0))));
        check("p50 <= 800us", Ok((LatencyUs(P50), LessOrEqual, Bound::Value(800.0))));
        check("p90<0.5s", Ok((LatencyUs(P90), Less, Bound::Value(500_000.0))));
        check("p999<2ms", Ok((LatencyUs(P999), Less, Bound::Value(2_000.0))));
        check("p99.9<2ms", Ok((LatencyUs(P999), Less, Bound::Value(2_000.0))));
        check("max<1s", Ok((LatencyUs(Max), Less, Bound::Value(1_000_000.0))));
        check("refused<1%", Ok((Refused, Less, Bound::Fraction(0.01))));
        check("errors<10", Ok((Errors, Less, Bound::Value(10.0))));
        check("throughput>1000", Ok((Throughput, Greater, Bound::Value(1_000.0))));
        check("throughput>=1000/s", Ok((Throughput, GreaterOrEqual, Bound::Value(1_000.0))));
        check("p99<5", Err("needs a unit"));
        check("p98<5ms", Err("unknown metric"));
        check("p99=5ms", Err("no < or >"));
        check("<5ms", Err("no metric"));
        check("refused<abc%", Err("not a number"));
        check("refused<150%", Err("at most 100"));
        check("p99<-1ms", Err("not a number"));
    }

    #[test]
    fn thresholds_hold_or_break() {
        let p99 = Threshold::parse("p99<5ms").unwrap();
        assert!(p99.holds(4_999.0, 10));
        assert!(!p99.holds(5_000.0, 10));
        let refused = Threshold::parse("refused<1%").unwrap();
        assert!(refused.holds(9.0, 1_000));
        assert!(!refused.holds(10.0, 1_000));
        let throughput = Threshold::parse("throughput>100").unwrap();
        assert!(throughput.holds(101.0, 10));
        assert!(!throughput.holds(100.0, 10));
        // A run that measured nothing keeps no threshold.
        for threshold in [p99, refused, throughput] {
            assert!(!threshold.holds(0.0, 0), "{}", threshold.text);
        }
    }
}
