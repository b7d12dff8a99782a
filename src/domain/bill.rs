//! Bill months: what an account was charged in each month (UTC), until the month's bill is
//! confirmed and the charges return to its available credit.
//!
//! A committed purchase is booked to the month in which it was reserved (a one-shot
//! purchase: the month it was made). A month's bill is final once no purchase can be booked
//! to it any more: after the month has ended and the longest reservation timeout (plus a
//! grace period) has passed, every reservation made in it is committed, cancelled or expired.
//! Then it can be confirmed, once: the sum charged in it is taken off the account's `used`.
//!
//! Memory is bounded by the months with charges that are not confirmed yet, plus one entry per
//! confirmed month. The month of the latest booking (`current`) has no entry of its own: its
//! sum is whatever of `used` the older months do not account for. So an account that is
//! charged in one month only (every generated customer) stores just the month.
//!
//! Invariants:
//! - `used` = the sum of the older months' entries + the current month's implicit sum, and
//!   that implicit sum is never negative;
//! - a confirmed month has no entry and is never booked to again (a booking that would land
//!   in one, which the finality rule prevents, goes to the next month that is not confirmed).

use super::ids::{Month, Timestamp, Uin};
use super::money::Money;
use super::rejection::Rejection;
use serde::{Deserialize, Serialize};

/// The months of one account other than the current one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillHistory {
    /// Unconfirmed months before the current one, oldest first, with their sums.
    older: Vec<(Month, Money)>,
    /// Confirmed months, oldest first.
    confirmed: Vec<Month>,
    /// All the credit confirmations returned, for the audit.
    returned: Money,
}

impl BillHistory {
    /// All the credit bill confirmations returned so far.
    pub fn returned(&self) -> Money {
        self.returned
    }

    fn older_sum(&self) -> Money {
        self.older.iter().map(|(_, sum)| *sum).sum()
    }

    fn is_confirmed(&self, month: Month) -> bool {
        self.confirmed.binary_search(&month).is_ok()
    }
}

/// The bill state of one account: its current month (stored inline by the account) and the
/// rest (stored out of line, created when first needed).
pub struct Bills<'a> {
    pub current: &'a mut Option<Month>,
    pub history: &'a mut Option<Box<BillHistory>>,
}

impl Bills<'_> {
    /// Books `charge` to `month`; `used_before` is the account's `used` before the charge is
    /// added to it (the caller adds it).
    pub fn book(&mut self, month: Month, used_before: Money, charge: Money) {
        let mut month = month;
        if let Some(history) = self.history.as_deref() {
            while history.is_confirmed(month) {
                month = month.next();
            }
        }
        match *self.current {
            None => *self.current = Some(month),
            Some(current) if month == current => {}
            Some(current) if month > current => {
                let history = self.history.get_or_insert_with(Default::default);
                let current_sum = used_before - history.older_sum();
                history.older.push((current, current_sum));
                *self.current = Some(month);
            }
            Some(_) => {
                let history = self.history.get_or_insert_with(Default::default);
                match history.older.binary_search_by_key(&month, |(month, _)| *month) {
                    Ok(position) => history.older[position].1 += charge,
                    Err(position) => history.older.insert(position, (month, charge)),
                }
            }
        }
    }

    /// Confirms `month` at `now` for an account whose `used` is `used`; answers the credit
    /// that returns (the caller takes it off `used`). `final_from` is when the month's bill
    /// became final.
    pub fn confirm(
        &mut self,
        uin: Uin,
        month: Month,
        used: Money,
        now: Timestamp,
        final_from: Timestamp,
    ) -> Result<Money, Rejection> {
        if self.history.as_deref().is_some_and(|history| history.is_confirmed(month)) {
            return Err(Rejection::BillConfirmed { uin, month });
        }
        if now < final_from {
            return Err(Rejection::BillNotFinal { uin, month, final_from });
        }
        let older_sum = self.history.as_deref().map_or(Money::ZERO, BillHistory::older_sum);
        let returned = if *self.current == Some(month) {
            *self.current = None;
            used - older_sum
        } else {
            let history = self.history.as_deref_mut().ok_or(Rejection::NoBill { uin, month })?;
            match history.older.binary_search_by_key(&month, |(month, _)| *month) {
                Ok(position) => history.older.remove(position).1,
                Err(_) => return Err(Rejection::NoBill { uin, month }),
            }
        };
        let history = self.history.get_or_insert_with(Default::default);
        let position = history.confirmed.binary_search(&month).expect_err("not confirmed yet");
        history.confirmed.insert(position, month);
        history.returned += returned;
        Ok(returned)
    }

    /// The months with charges that are not confirmed, with their sums, oldest first.
    pub fn open_months(&self, used: Money) -> Vec<(Month, Money)> {
        let mut months = self.history.as_deref().map_or_else(Vec::new, |history| history.older.clone());
        if let Some(current) = *self.current {
            let older_sum: Money = months.iter().map(|(_, sum)| *sum).sum();
            months.push((current, used - older_sum));
        }
        months
    }
}

/// When the bill of `month` becomes final, for reservations that last at most
/// `reservation_timeout_ms_max`.
pub fn final_from(month: Month, reservation_timeout_ms_max: i64) -> Timestamp {
    month.end().plus_ms(reservation_timeout_ms_max).plus_ms(FINALITY_GRACE_MS)
}

/// Added to the longest reservation timeout: a commit decided just before a deadline still
/// has this long to reach the accounts.
pub const FINALITY_GRACE_MS: i64 = 60_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn month(text: &str) -> Month {
        Month::parse(text).unwrap()
    }

    fn m(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    /// An account's `used` with its bills, driven like the account drives them.
    #[derive(Default, Serialize, Deserialize)]
    struct Books {
        used: Money,
        current: Option<Month>,
        history: Option<Box<BillHistory>>,
    }

    impl Books {
        fn bills(&mut self) -> Bills<'_> {
            Bills { current: &mut self.current, history: &mut self.history }
        }

        fn charge(&mut self, text: &str, amount: &str) {
            let used = self.used;
            self.bills().book(month(text), used, m(amount));
            self.used += m(amount);
        }

        fn confirm(&mut self, text: &str) -> Result<Money, Rejection> {
            let used = self.used;
            let returned =
                self.bills().confirm(Uin(1), month(text), used, Timestamp(i64::MAX), Timestamp(0))?;
            self.used -= returned;
            Ok(returned)
        }

        fn open(&mut self) -> Vec<(String, Money)> {
            let used = self.used;
            self.bills().open_months(used).into_iter().map(|(month, sum)| (month.to_string(), sum)).collect()
        }
    }

    #[test]
    fn one_month_stores_only_the_month() {
        let mut books = Books::default();
        books.charge("2026-11", "1.50");
        books.charge("2026-11", "2.25");
        assert!(books.history.is_none());
        assert_eq!(books.open(), vec![("2026-11".into(), m("3.75"))]);
        assert_eq!(books.confirm("2026-11"), Ok(m("3.75")));
        assert_eq!(books.used, Money::ZERO);
        assert_eq!(books.open(), vec![]);
    }

    #[test]
    fn months_roll_over_and_confirm_in_any_order() {
        let mut books = Books::default();
        books.charge("2026-09", "1");
        books.charge("2026-10", "2");
        books.charge("2026-11", "4");
        // A late booking (reserved in October, committed in November).
        books.charge("2026-10", "0.5");
        assert_eq!(
            books.open(),
            vec![("2026-09".into(), m("1")), ("2026-10".into(), m("2.5")), ("2026-11".into(), m("4"))]
        );
        assert_eq!(books.confirm("2026-10"), Ok(m("2.5")));
        assert_eq!(books.used, m("5"));
        assert_eq!(books.confirm("2026-11"), Ok(m("4")));
        assert_eq!(books.confirm("2026-09"), Ok(m("1")));
        assert_eq!(books.used, Money::ZERO);
        assert_eq!(books.open(), vec![]);
    }

    #[test]
    fn refusals() {
        let mut books = Books::default();
        let refusal = |result: Result<Money, Rejection>| result.unwrap_err().name();
        assert_eq!(refusal(books.confirm("2026-11")), "NoBill");
        books.charge("2026-11", "1");
        assert_eq!(refusal(books.confirm("2026-10")), "NoBill");
        assert_eq!(books.confirm("2026-11"), Ok(m("1")));
        assert_eq!(refusal(books.confirm("2026-11")), "BillConfirmed");
        let used = books.used;
        let not_final = books.bills().confirm(Uin(1), month("2026-12"), used, Timestamp(5), Timestamp(6));
        assert_eq!(refusal(not_final), "BillNotFinal");
        // Refusals change nothing.
        assert_eq!(books.used, Money::ZERO);
    }

    #[test]
    fn a_booking_to_a_confirmed_month_goes_to_the_next_open_one() {
        let mut books = Books::default();
        books.charge("2026-10", "1");
        books.charge("2026-11", "2");
        assert_eq!(books.confirm("2026-10"), Ok(m("1")));
        books.charge("2026-10", "0.25");
        assert_eq!(books.open(), vec![("2026-11".into(), m("2.25"))]);
        assert_eq!(books.confirm("2026-11"), Ok(m("2.25")));
        books.charge("2026-11", "3");
        assert_eq!(books.open(), vec![("2026-12".into(), m("3"))]);
    }

    #[test]
    fn zero_charges_make_a_bill_of_zero() {
        let mut books = Books::default();
        books.charge("2026-11", "0");
        assert_eq!(books.confirm("2026-11"), Ok(Money::ZERO));
    }

    #[test]
    fn finality() {
        let november = month("2026-11");
        assert_eq!(final_from(november, 86_400_000), november.end().plus_ms(86_400_000 + FINALITY_GRACE_MS));
    }
}
