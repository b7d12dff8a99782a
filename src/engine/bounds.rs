//! The bounds of a purchase request, each decided once: the amount of a purchase, the length
//! of a batch and the timeout of a reservation.
//!
//! The engine refuses a request outside them with these refusals. The API reads the same
//! functions before it calls the engine, so that it can refuse such a request in its own
//! words (naming its own parameters) before anything is counted, without a second copy of
//! the rule.
//!
//! Invariant: each bound is written here and nowhere else; every check of it, in the engine
//! or in the API, is a call of one of these functions.

use crate::domain::{Money, Rejection};

/// A purchase (one-shot, reserved, or one of a batch) is for more than nothing. How many
/// decimals and how large an amount may be is [`Money`]'s own rule.
pub fn check_purchase_amount(amount: Money) -> Result<(), Rejection> {
    if amount.is_positive() {
        Ok(())
    } else {
        Err(Rejection::InvalidAmount(amount, "a purchase amount must be greater than 0"))
    }
}

/// A batch holds 1 to `batch_len_max` purchases.
pub fn check_batch_len(len: usize, batch_len_max: usize) -> Result<(), Rejection> {
    if len == 0 {
        return Err(Rejection::InvalidParameter {
            parameter: "Purchases",
            reason: format!("a batch holds 1 to {batch_len_max}"),
        });
    }
    if len > batch_len_max {
        return Err(Rejection::BatchTooLarge { len, limit: batch_len_max });
    }
    Ok(())
}

/// A reservation is held from 1 ms to `reservation_timeout_ms_max`.
pub fn check_reservation_timeout_ms(
    timeout_ms: i64,
    reservation_timeout_ms_max: i64,
) -> Result<(), Rejection> {
    if (1..=reservation_timeout_ms_max).contains(&timeout_ms) {
        Ok(())
    } else {
        Err(Rejection::InvalidParameter {
            parameter: "timeout",
            reason: format!("{timeout_ms} ms is outside 1 to {reservation_timeout_ms_max} ms"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_at_its_edges() {
        let amount = |text| Money::parse(text).unwrap();
        assert_eq!(check_purchase_amount(amount("0.00000001")), Ok(()));
        assert!(matches!(check_purchase_amount(amount("0")), Err(Rejection::InvalidAmount(..))));
        assert!(matches!(check_purchase_amount(amount("-1")), Err(Rejection::InvalidAmount(..))));

        assert_eq!(check_batch_len(1, 3), Ok(()));
        assert_eq!(check_batch_len(3, 3), Ok(()));
        assert_eq!(check_batch_len(4, 3), Err(Rejection::BatchTooLarge { len: 4, limit: 3 }));
        let empty = check_batch_len(0, 3).unwrap_err();
        assert_eq!(empty.to_string(), "invalid Purchases: a batch holds 1 to 3");

        assert_eq!(check_reservation_timeout_ms(1, 1000), Ok(()));
        assert_eq!(check_reservation_timeout_ms(1000, 1000), Ok(()));
        for outside in [0, -1, 1001, i64::MIN, i64::MAX] {
            let refused = check_reservation_timeout_ms(outside, 1000).unwrap_err();
            assert_eq!(refused.to_string(), format!("invalid timeout: {outside} ms is outside 1 to 1000 ms"));
        }
    }
}
