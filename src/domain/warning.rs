//! Credit warnings: which levels of a customer's remaining credit it has fallen below, and
//! which of them it crossed just now.
//!
//! The rule (seeds `000` and `002`): when a customer's available credit falls below 25%, 10%
//! and 0% of its total (75%, 90% and 100% used), one warning per crossing goes to its
//! partner and to the customer; a level re-arms when the credit rises back above it. A
//! partner may set a custom threshold for one of its customers (warnings to the partner),
//! and a customer one for itself (warnings to the customer), as a percentage of the total
//! or as an amount.
//!
//! When a level is *below*, for a `total` > 0 and an `available` credit:
//! - a percentage `p` > 0 (the presets 25 and 10, or a custom `RemainingPercent`): when
//!   `available < total * p / 100`, strictly, so a customer with exactly 25% left is not
//!   below 25%;
//! - an amount `a` > 0 (a custom `RemainingAmount`): when `available < a`;
//! - zero (the preset `Remaining0`, a custom 0 percent or a custom amount 0): when
//!   `available <= 0`, that is when everything is used;
//! - with `total <= 0` (a customer never given credit, or all taken back) nothing is below.
//!
//! A *crossing* is a level going from not below to below in one evaluation; going back
//! above re-arms the level silently. A custom level whose threshold is absent is never
//! below, so removing a threshold re-arms it too.
//!
//! [`evaluate`] runs on the purchase path after every customer reservation, so it does no
//! decimal division: every `Money` is an integer count of 10^-8 at scale 8, and each
//! comparison is one of integers (`4 * available < total` for 25%), exact for every amount
//! `Money` can hold (a mantissa is below 2^96, its products here below 2^110).
//!
//! Invariant: pure: no I/O, no clock, no allocation; the answer depends only on the
//! arguments.

use serde::{Deserialize, Serialize};
use std::fmt;

use rust_decimal::Decimal;

use super::money::Money;
use super::rejection::Rejection;

/// A custom warning threshold: the remaining credit below which a warning goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Threshold {
    /// A percentage of the customer's total credit, 0 to 100 with at most 2 decimals.
    RemainingPercent(Decimal),
    /// An amount of remaining credit, 0 or more.
    RemainingAmount(Money),
}

impl Threshold {
    /// The most decimals a percentage may carry.
    pub const PERCENT_SCALE_MAX: u32 = 2;

    /// A percentage threshold, checked: 0 to 100, at most 2 decimals (trailing zeros do not
    /// count).
    pub fn percent(value: Decimal) -> Result<Threshold, Rejection> {
        let invalid = |reason: String| Rejection::InvalidParameter { parameter: "RemainingPercent", reason };
        let value = value.normalize();
        if (value.is_sign_negative() && !value.is_zero()) || value > Decimal::ONE_HUNDRED {
            return Err(invalid(format!("{value} is not between 0 and 100")));
        }
        if value.scale() > Self::PERCENT_SCALE_MAX {
            return Err(invalid(format!("{value} has more than 2 decimal places")));
        }
        // -0 normalizes to a zero that prints as "0" but keeps its sign bit.
        Ok(Threshold::RemainingPercent(value.abs()))
    }

    /// An amount threshold, checked: 0 or more.
    pub fn amount(value: Money) -> Result<Threshold, Rejection> {
        if value.is_negative() {
            return Err(Rejection::InvalidParameter {
                parameter: "RemainingAmount",
                reason: format!("{value} is negative"),
            });
        }
        Ok(Threshold::RemainingAmount(value))
    }

    /// Whether a customer with this `total` (> 0) and `available` credit is below the
    /// threshold (units of 10^-8, see [`units`]).
    fn is_below(&self, total: i128, available: i128) -> bool {
        match *self {
            Threshold::RemainingPercent(percent) => {
                // Hundredths of a percent: `available < total * hundredths / 10_000`. A
                // percentage built without `Threshold::percent` is rounded to 2 decimals and
                // clamped to 0..=100 rather than trusted.
                let mut percent = percent;
                percent.rescale(Self::PERCENT_SCALE_MAX);
                let hundredths = percent.mantissa().clamp(0, 10_000);
                if hundredths == 0 {
                    available <= 0
                } else {
                    available * 10_000 < total * hundredths
                }
            }
            Threshold::RemainingAmount(amount) => {
                let amount = units(amount);
                if amount <= 0 {
                    available <= 0
                } else {
                    available < amount
                }
            }
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::RemainingPercent(percent) => write!(f, "{}% remaining", percent.normalize()),
            Threshold::RemainingAmount(amount) => write!(f, "{amount} remaining"),
        }
    }
}

/// A warning level. The presets are nested (below 0% implies below 10% implies below 25%);
/// the custom ones stand apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WarningLevel {
    /// Less than 25% of the total remains (more than 75% used).
    Remaining25,
    /// Less than 10% remains (more than 90% used).
    Remaining10,
    /// Nothing remains (100% used).
    Remaining0,
    /// The threshold the customer's partner set for it.
    PartnerCustom,
    /// The threshold the customer set for itself.
    CustomerCustom,
}

impl WarningLevel {
    /// Every level, in the order [`Crossings::iter`] answers them.
    pub const ALL: [WarningLevel; 5] = [
        WarningLevel::Remaining25,
        WarningLevel::Remaining10,
        WarningLevel::Remaining0,
        WarningLevel::PartnerCustom,
        WarningLevel::CustomerCustom,
    ];

    /// The level's name, as the API and the webhooks write it.
    pub fn name(self) -> &'static str {
        match self {
            WarningLevel::Remaining25 => "Remaining25",
            WarningLevel::Remaining10 => "Remaining10",
            WarningLevel::Remaining0 => "Remaining0",
            WarningLevel::PartnerCustom => "PartnerCustom",
            WarningLevel::CustomerCustom => "CustomerCustom",
        }
    }

    /// Who is warned: both for the presets, whoever set a custom threshold for the others.
    pub fn recipients(self) -> Recipients {
        match self {
            WarningLevel::Remaining25 | WarningLevel::Remaining10 | WarningLevel::Remaining0 => {
                Recipients::PartnerAndCustomer
            }
            WarningLevel::PartnerCustom => Recipients::Partner,
            WarningLevel::CustomerCustom => Recipients::Customer,
        }
    }

    /// The level's bit in a [`WarningState`] or [`Crossings`].
    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for WarningLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who a warning goes to: the customer's partner (its reseller or second-level reseller),
/// the customer, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Recipients {
    PartnerAndCustomer,
    Partner,
    Customer,
}

impl Recipients {
    /// The recipients' names, partner first, as the webhooks write them.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Recipients::PartnerAndCustomer => &["Partner", "Customer"],
            Recipients::Partner => &["Partner"],
            Recipients::Customer => &["Customer"],
        }
    }
}

/// The levels a customer is currently below, one bit per [`WarningLevel`]. An account keeps
/// one and hands it to [`evaluate`] after every change of its credit.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningState(u8);

impl WarningState {
    pub fn is_below(self, level: WarningLevel) -> bool {
        self.0 & level.bit() != 0
    }

    /// Below no level at all.
    pub fn is_clear(self) -> bool {
        self.0 == 0
    }
}

/// The levels one [`evaluate`] found crossed downwards: one warning each.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crossings(u8);

impl Crossings {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn contains(self, level: WarningLevel) -> bool {
        self.0 & level.bit() != 0
    }

    /// The levels crossed, presets from 25% down, then the partner's, then the customer's.
    pub fn iter(self) -> impl Iterator<Item = WarningLevel> {
        WarningLevel::ALL.into_iter().filter(move |level| self.contains(*level))
    }
}

/// Updates `state` for a customer's `total` and `available` credit and its custom
/// thresholds (`partner`: set by its partner; `own`: set by itself), and answers the levels
/// crossed downwards now. Levels the credit rose back above are re-armed without a crossing.
///
/// Cheap enough for every reservation: a handful of integer comparisons, and one when the
/// customer has no custom threshold and at least 25% left while it was below nothing.
pub fn evaluate(
    state: &mut WarningState,
    total: Money,
    available: Money,
    partner: Option<&Threshold>,
    own: Option<&Threshold>,
) -> Crossings {
    let total = units(total);
    if total <= 0 {
        state.0 = 0;
        return Crossings(0);
    }
    let available = units(available);
    // The presets are nested: with at least 25% left none is below.
    let mut below = 0;
    if 4 * available < total {
        below |= WarningLevel::Remaining25.bit();
        if 10 * available < total {
            below |= WarningLevel::Remaining10.bit();
        }
        if available <= 0 {
            below |= WarningLevel::Remaining0.bit();
        }
    } else if state.0 == 0 && partner.is_none() && own.is_none() {
        return Crossings(0);
    }
    if partner.is_some_and(|threshold| threshold.is_below(total, available)) {
        below |= WarningLevel::PartnerCustom.bit();
    }
    if own.is_some_and(|threshold| threshold.is_below(total, available)) {
        below |= WarningLevel::CustomerCustom.bit();
    }
    let crossed = below & !state.0;
    state.0 = below;
    Crossings(crossed)
}

/// An amount as an integer count of 10^-8: a `Money` is stored at scale 8, so this is its
/// mantissa (a `Decimal` of another scale, which no `Money` has, is rescaled first).
fn units(money: Money) -> i128 {
    let mut decimal = money.as_decimal();
    if decimal.scale() != Money::SCALE_MAX {
        decimal.rescale(Money::SCALE_MAX);
    }
    decimal.mantissa()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    use WarningLevel::*;

    fn m(text: &str) -> Money {
        Money::parse(text).unwrap()
    }

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn percent(text: &str) -> Threshold {
        Threshold::percent(d(text)).unwrap()
    }

    fn amount(text: &str) -> Threshold {
        Threshold::amount(m(text)).unwrap()
    }

    /// Evaluates a sequence of available credits for one customer of `total`, from a clear
    /// state, and checks the levels crossed at each step.
    fn check(
        total: &str,
        partner: Option<Threshold>,
        own: Option<Threshold>,
        steps: &[(&str, &[WarningLevel])],
    ) {
        let mut state = WarningState::default();
        for (step, (available, expected)) in steps.iter().enumerate() {
            let crossed = evaluate(&mut state, m(total), m(available), partner.as_ref(), own.as_ref());
            let crossed: Vec<WarningLevel> = crossed.iter().collect();
            assert_eq!(
                crossed, *expected,
                "total {total}, step {step}: available {available} (partner {partner:?}, own {own:?})"
            );
            for level in WarningLevel::ALL {
                if expected.contains(&level) {
                    assert!(state.is_below(level), "step {step}: {level} crossed but not below");
                }
            }
        }
    }

    #[test]
    fn presets_cross_once_each_and_rearm_above() {
        check(
            "100",
            None,
            None,
            &[
                ("100", &[]),
                ("30", &[]),
                ("20", &[Remaining25]),
                ("19", &[]),
                ("5", &[Remaining10]),
                ("0", &[Remaining0]),
                ("0", &[]),
                // Up to 5: Remaining0 re-arms silently, the others stay below.
                ("5", &[]),
                ("0", &[Remaining0]),
                // Up above 25%: everything re-arms, then each crossing warns again.
                ("50", &[]),
                ("24.99", &[Remaining25]),
                ("9.99", &[Remaining10]),
                // Between 10% and 25%: only Remaining10 re-arms.
                ("15", &[]),
                ("9", &[Remaining10]),
            ],
        );
    }

    #[test]
    fn exact_boundaries_are_not_below() {
        check("100", None, None, &[("25", &[]), ("24.99999999", &[Remaining25])]);
        check("100", None, None, &[("10", &[Remaining25]), ("9.99999999", &[Remaining10])]);
        check("100", None, None, &[("0.00000001", &[Remaining25, Remaining10]), ("0", &[Remaining0])]);
        // A total that 4 and 10 do not divide: 25% of 0.00000005 is 0.0000000125.
        check(
            "0.00000005",
            None,
            None,
            &[("0.00000002", &[]), ("0.00000001", &[Remaining25]), ("0", &[Remaining10, Remaining0])],
        );
        check("33.33", None, None, &[("8.3325", &[]), ("8.3324", &[Remaining25]), ("3.333", &[])]);
        check("33.33", None, None, &[("3.3329", &[Remaining25, Remaining10])]);
    }

    #[test]
    fn one_big_purchase_crosses_several_levels_with_one_crossing_each() {
        check("100", None, None, &[("100", &[]), ("0", &[Remaining25, Remaining10, Remaining0]), ("0", &[])]);
        check(
            "100",
            None,
            None,
            &[("9", &[Remaining25, Remaining10]), ("100", &[]), ("9", &[Remaining25, Remaining10])],
        );
        let partner = Some(percent("50"));
        let own = Some(amount("30"));
        check("100", partner, own, &[("20", &[Remaining25, PartnerCustom, CustomerCustom])]);
    }

    #[test]
    fn no_total_is_below_nothing_and_clears_the_state() {
        let mut state = WarningState::default();
        let partner = Some(amount("10"));
        assert_eq!(evaluate(&mut state, m("100"), m("0"), partner.as_ref(), None).len(), 4);
        assert!(!state.is_clear());
        // All credit taken back: the total is 0; nothing is below and nothing is crossed.
        assert!(evaluate(&mut state, m("0"), m("0"), partner.as_ref(), None).is_empty());
        assert!(state.is_clear());
        assert!(evaluate(&mut state, m("-1"), m("-1"), partner.as_ref(), Some(&percent("0"))).is_empty());
        assert!(state.is_clear());
        // Credit again, all of it used: every level crosses again.
        let crossed = evaluate(&mut state, m("100"), m("0"), partner.as_ref(), None);
        assert_eq!(crossed.iter().collect::<Vec<_>>(), [Remaining25, Remaining10, Remaining0, PartnerCustom]);
    }

    #[test]
    fn custom_percent_thresholds() {
        // The partner's 50% for the customer; the customer's own 80%.
        check(
            "200",
            Some(percent("50")),
            Some(percent("80")),
            &[
                ("200", &[]),
                ("160", &[]),
                ("159.99", &[CustomerCustom]),
                ("100", &[]),
                ("99", &[PartnerCustom]),
                ("170", &[]),
                ("40", &[Remaining25, PartnerCustom, CustomerCustom]),
            ],
        );
        // Two decimals, strict: 12.5% of 80 is 10.
        check("80", None, Some(percent("12.50")), &[("10", &[Remaining25]), ("9.99", &[CustomerCustom])]);
        check(
            "1000",
            Some(percent("0.01")),
            None,
            &[("0.1", &[Remaining25, Remaining10]), ("0.09", &[PartnerCustom])],
        );
        // 100%: any use at all.
        check("100", Some(percent("100")), None, &[("100", &[]), ("99.99999999", &[PartnerCustom])]);
    }

    #[test]
    fn custom_amount_thresholds() {
        check(
            "100",
            Some(amount("40")),
            Some(amount("5.5")),
            &[
                ("40", &[]),
                ("39.99", &[PartnerCustom]),
                ("5.5", &[Remaining25, Remaining10]),
                ("5.49", &[CustomerCustom]),
                ("41", &[]),
                ("1", &[Remaining25, Remaining10, PartnerCustom, CustomerCustom]),
            ],
        );
        // An amount above the total: below from the first evaluation.
        check("100", None, Some(amount("150")), &[("100", &[CustomerCustom]), ("99", &[])]);
    }

    #[test]
    fn zero_thresholds_mean_all_used() {
        for zero in [percent("0"), percent("0.00"), amount("0")] {
            check(
                "100",
                Some(zero),
                Some(zero),
                &[
                    ("0.00000001", &[Remaining25, Remaining10]),
                    ("0", &[Remaining0, PartnerCustom, CustomerCustom]),
                    ("1", &[]),
                    ("0", &[Remaining0, PartnerCustom, CustomerCustom]),
                ],
            );
        }
    }

    #[test]
    fn removing_a_threshold_rearms_it() {
        let mut state = WarningState::default();
        let own = percent("90");
        assert_eq!(
            evaluate(&mut state, m("100"), m("80"), None, Some(&own)).iter().collect::<Vec<_>>(),
            [CustomerCustom]
        );
        assert!(evaluate(&mut state, m("100"), m("80"), None, None).is_empty());
        assert!(state.is_clear());
        assert!(evaluate(&mut state, m("100"), m("79"), None, Some(&own)).contains(CustomerCustom));
    }

    /// A threshold as built, and its display or the parameter and words of its refusal.
    type ThresholdCase = (Result<Threshold, Rejection>, Result<&'static str, (&'static str, &'static str)>);

    #[test]
    fn thresholds_are_checked() {
        let cases: [ThresholdCase; 11] = [
            (Threshold::percent(d("0")), Ok("0% remaining")),
            (Threshold::percent(d("-0.00")), Ok("0% remaining")),
            (Threshold::percent(d("100")), Ok("100% remaining")),
            (Threshold::percent(d("12.50")), Ok("12.5% remaining")),
            (Threshold::percent(d("0.01")), Ok("0.01% remaining")),
            (Threshold::percent(d("100.01")), Err(("RemainingPercent", "between 0 and 100"))),
            (Threshold::percent(d("-1")), Err(("RemainingPercent", "between 0 and 100"))),
            (Threshold::percent(d("12.345")), Err(("RemainingPercent", "more than 2 decimal places"))),
            (Threshold::amount(m("0")), Ok("0 remaining")),
            (Threshold::amount(m("12.34567891")), Ok("12.34567891 remaining")),
            (Threshold::amount(m("-0.01")), Err(("RemainingAmount", "negative"))),
        ];
        for (got, expected) in cases {
            match (got, expected) {
                (Ok(threshold), Ok(text)) => assert_eq!(threshold.to_string(), text),
                (Err(Rejection::InvalidParameter { parameter, reason }), Err((name, words))) => {
                    assert_eq!(parameter, name);
                    assert!(reason.contains(words), "{reason}");
                }
                (got, expected) => panic!("got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn an_unchecked_percent_is_rounded_and_clamped() {
        let rounded = Threshold::RemainingPercent(d("24.999"));
        check("100", None, Some(rounded), &[("24.99999999", &[Remaining25, CustomerCustom])]);
        let over = Threshold::RemainingPercent(d("250"));
        check("100", None, Some(over), &[("100", &[]), ("99", &[CustomerCustom])]);
    }

    #[test]
    fn levels_names_and_recipients() {
        let table = [
            (Remaining25, "Remaining25", Recipients::PartnerAndCustomer, &["Partner", "Customer"][..]),
            (Remaining10, "Remaining10", Recipients::PartnerAndCustomer, &["Partner", "Customer"][..]),
            (Remaining0, "Remaining0", Recipients::PartnerAndCustomer, &["Partner", "Customer"][..]),
            (PartnerCustom, "PartnerCustom", Recipients::Partner, &["Partner"][..]),
            (CustomerCustom, "CustomerCustom", Recipients::Customer, &["Customer"][..]),
        ];
        for (level, name, recipients, names) in table {
            assert_eq!(
                (level.name(), level.recipients(), level.recipients().names()),
                (name, recipients, names)
            );
        }
    }

    #[test]
    fn amounts_as_large_as_money_goes_compare_exactly() {
        // Totals sum allocations, so they may exceed what one operation may move.
        let most = Money::from_decimal(Money::ABS_MAX).unwrap();
        let total = most + most + most + most;
        let mut state = WarningState::default();
        assert!(evaluate(&mut state, total, most, None, None).is_empty());
        let crossed = evaluate(&mut state, total, most - m("0.00000001"), None, Some(&percent("99.99")));
        assert_eq!(crossed.iter().collect::<Vec<_>>(), [Remaining25, CustomerCustom]);
    }
}
