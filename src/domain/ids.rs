//! Identifiers: UINs, purchase ids, the caller of an operation, and time stamps.
//!
//! Invariant: a [`PurchaseId`] is 1 to 64 characters with no control characters; ids up to
//! 24 bytes are stored inline, without a heap allocation.

use serde::{Deserialize, Serialize};
use std::fmt;

use compact_str::CompactString;

/// The account number of a distributor, reseller, second-level reseller or customer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Uin(pub u64);

impl fmt::Display for Uin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Uin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uin({})", self.0)
    }
}

/// A client-chosen purchase id: the key of idempotency and of the two-phase protocol.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PurchaseId(CompactString);

/// Why a text is not a valid purchase id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("a PurchaseId has 1 to 64 characters and no control characters")]
pub struct PurchaseIdError;

impl PurchaseId {
    pub const LEN_MAX: usize = 64;

    pub fn new(text: &str) -> Result<PurchaseId, PurchaseIdError> {
        let count = text.chars().count();
        if count == 0 || count > Self::LEN_MAX || text.chars().any(char::is_control) {
            return Err(PurchaseIdError);
        }
        Ok(PurchaseId(CompactString::new(text)))
    }

    /// `{prefix}{first}-{second}`, formatted without a heap allocation when it fits inline
    /// (24 bytes): for generated ids (the load generator, the benches).
    pub fn numbered(prefix: &str, first: u64, second: u64) -> Result<PurchaseId, PurchaseIdError> {
        // Digits by `itoa` on the stack, then one copy: the generators make millions of ids a
        // second, and `format!` machinery showed in their profile.
        let (mut first_digits, mut second_digits) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (first, second) = (first_digits.format(first), second_digits.format(second));
        let mut text = CompactString::with_capacity(prefix.len() + first.len() + 1 + second.len());
        for part in [prefix, first, "-", second] {
            text.push_str(part);
        }
        PurchaseId::new(&text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stable hash that places the purchase on a coordinator partition (FNV-1a, so that
    /// the placement does not depend on the process's random hasher seed).
    pub fn partition_hash(&self) -> u64 {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for byte in self.0.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }
}

impl fmt::Display for PurchaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PurchaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PurchaseId({:?})", self.0.as_str())
    }
}

/// Who performs an operation: the platform operator or the owner of a UIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Caller {
    /// The platform ("channel manager"): may act on every account.
    Operator,
    /// A distributor, reseller, second-level reseller or customer acting for itself.
    Uin(Uin),
}

impl Caller {
    pub fn is(self, uin: Uin) -> bool {
        self == Caller::Uin(uin)
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caller::Operator => f.write_str("operator"),
            Caller::Uin(uin) => write!(f, "{uin}"),
        }
    }
}

/// Milliseconds since the Unix epoch (UTC). The domain never reads a clock; callers pass
/// the time in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn plus_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    pub fn as_ms(self) -> i64 {
        self.0
    }
}

/// A voucher's numeric id (`VoucherId` upstream), given out by the engine in increasing
/// order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VoucherId(pub u64);

impl fmt::Display for VoucherId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A calendar month in UTC (a bill month), as `year * 12 + (month - 1)`: never zero, so that
/// an `Option<Month>` takes four bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Month(std::num::NonZeroU32);

impl Month {
    /// The first month [`Month::parse`] accepts (2000-01) and the last (9999-12).
    pub const FIRST_YEAR: u32 = 2000;
    pub const LAST_YEAR: u32 = 9999;

    /// `year` and `month` (1 to 12), or `None` outside 2000-01 ..= 9999-12.
    pub fn new(year: u32, month: u32) -> Option<Month> {
        ((Self::FIRST_YEAR..=Self::LAST_YEAR).contains(&year) && (1..=12).contains(&month))
            .then(|| Month::from_index(year * 12 + month - 1))
    }

    /// `YYYY-MM`, exactly.
    pub fn parse(text: &str) -> Result<Month, String> {
        let bytes = text.as_bytes();
        let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
        if bytes.len() != 7 || bytes[4] != b'-' || !digits(0..4) || !digits(5..7) {
            return Err(format!("'{text}' is not a month as YYYY-MM"));
        }
        let year: u32 = text[..4].parse().expect("four digits");
        let month: u32 = text[5..].parse().expect("two digits");
        Month::new(year, month).ok_or_else(|| {
            format!("'{text}' is not a month from {}-01 to {}-12", Self::FIRST_YEAR, Self::LAST_YEAR)
        })
    }

    /// The month (UTC) that contains `at`; times before 2000 count as 2000-01, after 9999 as
    /// 9999-12.
    pub fn of(at: Timestamp) -> Month {
        let days = at.0.div_euclid(86_400_000);
        let (year, month, _) = civil_from_days(days);
        if year < Self::FIRST_YEAR as i64 {
            return Month::from_index(Self::FIRST_YEAR * 12);
        }
        if year > Self::LAST_YEAR as i64 {
            return Month::from_index(Self::LAST_YEAR * 12 + 11);
        }
        Month::new(year as u32, month).expect("a year in range and a month from 1 to 12")
    }

    fn from_index(index: u32) -> Month {
        Month(std::num::NonZeroU32::new(index).expect("months from 2000 have a positive index"))
    }

    pub fn year(self) -> u32 {
        self.0.get() / 12
    }

    /// 1 to 12.
    pub fn month(self) -> u32 {
        self.0.get() % 12 + 1
    }

    /// The month after this one.
    pub fn next(self) -> Month {
        Month::from_index(self.0.get() + 1)
    }

    /// The first instant of the month.
    pub fn start(self) -> Timestamp {
        Timestamp(days_from_civil(self.year() as i64, self.month(), 1) * 86_400_000)
    }

    /// The first instant after the month: the start of the next one.
    pub fn end(self) -> Timestamp {
        self.next().start()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = month as i64;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted + 2) / 5 + 1) as u32;
    let month = if shifted < 10 { shifted + 3 } else { shifted - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purchase_id_table() {
        let cases: &[(&str, bool)] = &[
            ("p-1", true),
            ("a", true),
            (&"x".repeat(64), true),
            (&"x".repeat(65), false),
            ("", false),
            ("tab\there", false),
            ("ünïcödé-✓", true),
        ];
        for (text, valid) in cases {
            assert_eq!(PurchaseId::new(text).is_ok(), *valid, "{text:?}");
        }
    }

    #[test]
    fn numbered_ids() {
        assert_eq!(PurchaseId::numbered("t", 3, 42).unwrap().as_str(), "t3-42");
        assert!(PurchaseId::numbered(&"x".repeat(64), 1, 1).is_err());
    }

    #[test]
    fn month_table() {
        let cases: &[(&str, Option<(u32, u32)>)] = &[
            ("2026-11", Some((2026, 11))),
            ("2000-01", Some((2000, 1))),
            ("9999-12", Some((9999, 12))),
            ("1999-12", None),
            ("2026-13", None),
            ("2026-00", None),
            ("2026-1", None),
            ("2026/11", None),
            ("+026-11", None),
            ("2026-11-01", None),
            ("", None),
        ];
        for (text, expected) in cases {
            let parsed = Month::parse(text).ok().map(|month| (month.year(), month.month()));
            assert_eq!(parsed, *expected, "{text:?}");
        }
        assert_eq!(Month::parse("2026-02").unwrap().to_string(), "2026-02");
    }

    #[test]
    fn month_bounds() {
        // 2026-11-01T00:00:00Z and 2026-12-01T00:00:00Z.
        let november = Month::parse("2026-11").unwrap();
        assert_eq!(november.start(), Timestamp(1_793_491_200_000));
        assert_eq!(november.end(), Timestamp(1_796_083_200_000));
        assert_eq!(Month::of(november.start()), november);
        assert_eq!(Month::of(november.end().plus_ms(-1)), november);
        assert_eq!(Month::of(november.end()).to_string(), "2026-12");
        // A leap February, and the turn of a year.
        let february = Month::parse("2028-02").unwrap();
        assert_eq!(february.end().as_ms() - february.start().as_ms(), 29 * 86_400_000);
        assert_eq!(Month::parse("2026-12").unwrap().end(), Month::parse("2027-01").unwrap().start());
        assert_eq!(Month::of(Timestamp(0)).to_string(), "2000-01");
        assert_eq!(Month::of(Timestamp(930_787_200_000)).to_string(), "2000-01", "1999-07 is before 2000");
        assert_eq!(Month::of(Timestamp(i64::MAX)).to_string(), "9999-12");
    }

    #[test]
    fn partition_hash_is_stable() {
        let id = PurchaseId::new("p-1").unwrap();
        assert_eq!(id.partition_hash(), PurchaseId::new("p-1").unwrap().partition_hash());
        assert_ne!(id.partition_hash(), PurchaseId::new("p-2").unwrap().partition_hash());
    }
}
