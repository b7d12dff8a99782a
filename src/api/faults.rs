//! Fault injection: the server fails on purpose, so that clients can test their retries and
//! timeouts against it (as LocalStack's chaos API does for AWS).
//!
//! A fault names the requests it applies to (an action or `*`, and optionally the calling
//! UIN), a probability, and one effect: an error `code` (answered in the usual error body),
//! a `delay_ms` before the real answer, or a `drop` of the connection without an answer.
//! The list comes from `[[faults]]` in the configuration and is replaced at run time by the
//! operator's `SetFaults`; `DescribeFaults` answers it in the same shape.
//!
//! How a request meets the list: once it is authenticated and names an action, every fault
//! that matches it draws once from its own generator, in list order; the first one whose
//! draw falls under its probability applies. So a fault's decisions depend only on the
//! requests it matched, in the order they reached it: with a `seed`, the same sequence of
//! matching requests gets the same decisions on every run. The generator is a counter run
//! through SplitMix64 (the draw is a function of the seed and the count of earlier draws),
//! so deciding takes one atomic addition and no lock.
//!
//! Invariants:
//! - an error or a drop is decided before the engine is called, so a request answered by a
//!   fault changes nothing; a delayed request is then carried out as usual;
//! - faults never apply to `SetFaults` and `DescribeFaults` themselves, so a fault on `*`
//!   cannot lock the operator out of removing it;
//! - with no fault in force, a request pays one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{ApiError, CODES};
use super::params::Params;
use crate::domain::{Action, Caller, Uin};

/// The most faults in force at once.
pub const FAULTS_MAX: usize = 100;
/// The longest `delay_ms`: five minutes, longer than any SDK's default timeout.
pub const DELAY_MS_MAX: u64 = 300_000;

/// What a fault does to a request it applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Answer this error code (one of [`CODES`]) instead of carrying the request out.
    Error(&'static str),
    /// Wait this long, then carry the request out as usual.
    Delay(Duration),
    /// Close the connection without an answer.
    Drop,
}

impl Effect {
    /// The kind, as the metrics label it.
    pub fn kind(self) -> &'static str {
        match self {
            Effect::Error(_) => "error",
            Effect::Delay(_) => "delay",
            Effect::Drop => "drop",
        }
    }
}

/// One fault, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// `None` is `*`: every action but the fault actions.
    pub action: Option<Action>,
    /// Only requests signed with this UIN's key; `None`: any caller, the operator included.
    pub caller_uin: Option<Uin>,
    /// 0 to 1.
    pub probability: f64,
    pub effect: Effect,
    /// The generator's seed: the one given, or one drawn at random when none was, so that
    /// `DescribeFaults` tells how to repeat a run.
    pub seed: u64,
}

/// A fault in force, with its generator.
struct Armed {
    fault: Fault,
    /// The probability as a threshold on a 64-bit draw (`u64::MAX` and above: always).
    threshold: u128,
    /// Draws made: the generator's state.
    draws: AtomicU64,
}

impl Armed {
    fn new(fault: Fault) -> Armed {
        let threshold = (fault.probability * 18_446_744_073_709_551_616.0) as u128;
        Armed { fault, threshold, draws: AtomicU64::new(0) }
    }

    fn matches(&self, caller: Caller, action: Action) -> bool {
        self.fault.action.map_or(true, |wanted| wanted == action)
            && self.fault.caller_uin.map_or(true, |uin| caller == Caller::Uin(uin))
    }

    /// One draw: whether the fault applies to this request.
    fn fires(&self) -> bool {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        (split_mix64(self.fault.seed.wrapping_add(n.wrapping_mul(GOLDEN_GAMMA))) as u128) < self.threshold
    }
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a well-mixed 64-bit value of each input.
fn split_mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN_GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The faults in force, replaced whole by [`Faults::set`].
pub struct Faults {
    armed: ArcSwap<Vec<Armed>>,
}

impl Faults {
    pub fn new(faults: Vec<Fault>) -> Faults {
        Faults { armed: ArcSwap::from_pointee(faults.into_iter().map(Armed::new).collect()) }
    }

    /// Replaces the list; each fault's generator starts again from its seed.
    pub fn set(&self, faults: Vec<Fault>) {
        self.armed.store(Arc::new(faults.into_iter().map(Armed::new).collect()));
    }

    /// The list in force.
    pub fn list(&self) -> Vec<Fault> {
        self.armed.load().iter().map(|armed| armed.fault.clone()).collect()
    }

    /// The effect on a request of `caller` for `action`, if a fault applies to it.
    #[inline]
    pub fn decide(&self, caller: Caller, action: Action) -> Option<Effect> {
        if matches!(action, Action::SetFaults | Action::DescribeFaults) {
            return None;
        }
        let armed = self.armed.load();
        if armed.is_empty() {
            return None;
        }
        let mut applied = None;
        // Every matching fault draws, even after one applied: each one's decisions depend on
        // the requests it matched only, not on the faults before it.
        for fault in armed.iter().filter(|fault| fault.matches(caller, action)) {
            if fault.fires() && applied.is_none() {
                applied = Some(fault.fault.effect);
            }
        }
        applied
    }
}

/// A fault as written, before it is checked: a `[[faults]]` table of the configuration
/// (snake_case), or an element of `SetFaults`'s `Faults` (PascalCase, read by [`read`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSetting {
    pub action: String,
    pub caller_uin: Option<u64>,
    pub probability: Option<f64>,
    pub code: Option<String>,
    pub delay_ms: Option<u64>,
    #[serde(default)]
    pub drop: bool,
    pub seed: Option<u64>,
}

/// Why a fault cannot be used: the field, as the API names it, and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultError {
    pub field: &'static str,
    pub reason: String,
    /// Whether it is a combination of fields (not one field's value) that is wrong.
    pub combination: bool,
}

impl FaultError {
    fn value(field: &'static str, reason: String) -> FaultError {
        FaultError { field, reason, combination: false }
    }
}

/// The configuration's name of an API field, for configuration errors.
pub fn snake_case(field: &str) -> &'static str {
    match field {
        "Action" => "action",
        "CallerUin" => "caller_uin",
        "Probability" => "probability",
        "Code" => "code",
        "DelayMs" => "delay_ms",
        "Drop" => "drop",
        "Seed" => "seed",
        _ => "faults",
    }
}

impl FaultSetting {
    /// Checks the fault: a known action or `*`, a positive UIN, a probability from 0 to 1,
    /// and exactly one effect, a known code or a delay within bounds.
    pub fn check(&self) -> Result<Fault, FaultError> {
        let action = match self.action.as_str() {
            "*" => None,
            name => match Action::from_name(name) {
                Some(Action::SetFaults | Action::DescribeFaults) => {
                    return Err(FaultError::value(
                        "Action",
                        format!("{name} is never faulted: faults do not apply to the fault actions"),
                    ))
                }
                Some(action) => Some(action),
                None => {
                    return Err(FaultError::value(
                        "Action",
                        format!("{name:?} is not an action of this service, nor `*`"),
                    ))
                }
            },
        };
        let caller_uin = match self.caller_uin {
            Some(0) => return Err(FaultError::value("CallerUin", "a UIN is a positive integer".into())),
            other => other.map(Uin),
        };
        let probability =
            self.probability.ok_or_else(|| FaultError::value("Probability", "is required".into()))?;
        if !(0.0..=1.0).contains(&probability) {
            return Err(FaultError::value("Probability", format!("{probability} is outside 0 to 1")));
        }
        let effects = [self.code.is_some(), self.delay_ms.is_some(), self.drop];
        let count = effects.iter().filter(|given| **given).count();
        if count != 1 {
            return Err(FaultError {
                field: "Code",
                reason: format!("a fault has exactly one of Code, DelayMs and Drop (true), not {count}"),
                combination: true,
            });
        }
        let effect = if let Some(code) = &self.code {
            let known = CODES.iter().find(|known| **known == code.as_str()).ok_or_else(|| {
                FaultError::value(
                    "Code",
                    format!("{code:?} is not an error code this API answers (the README lists them)"),
                )
            })?;
            Effect::Error(known)
        } else if let Some(delay_ms) = self.delay_ms {
            if !(1..=DELAY_MS_MAX).contains(&delay_ms) {
                return Err(FaultError::value(
                    "DelayMs",
                    format!("{delay_ms} is outside 1 to {DELAY_MS_MAX}"),
                ));
            }
            Effect::Delay(Duration::from_millis(delay_ms))
        } else {
            Effect::Drop
        };
        let seed = self.seed.unwrap_or_else(rand::random);
        Ok(Fault { action, caller_uin, probability, effect, seed })
    }
}

/// Reads `SetFaults`'s `Faults`: up to [`FAULTS_MAX`] objects, each checked; an error names
/// the element's field (`Faults.2.Probability`).
pub fn read(params: &mut Params) -> Result<Vec<Fault>, ApiError> {
    let items = params
        .objects("Faults", FAULTS_MAX, "InvalidParameterValue")?
        .ok_or_else(|| ApiError::missing("Faults"))?;
    let mut faults = Vec::with_capacity(items.len());
    for (index, mut item) in items.into_iter().enumerate() {
        let setting = FaultSetting {
            action: item.required_string("Action")?,
            caller_uin: item.uin("CallerUin")?.map(|uin| uin.0),
            probability: item
                .decimal("Probability")?
                .map(probability_of)
                .transpose()
                .map_err(|reason| ApiError::value(&format!("Faults.{index}.Probability"), reason))?,
            code: item.string("Code")?,
            delay_ms: match item.integer("DelayMs")? {
                None => None,
                Some(ms) => Some(u64::try_from(ms).map_err(|_| {
                    ApiError::value(
                        &format!("Faults.{index}.DelayMs"),
                        format!("{ms} is outside 1 to {DELAY_MS_MAX}"),
                    )
                })?),
            },
            drop: item.bool("Drop")?.unwrap_or(false),
            seed: match item.integer("Seed")? {
                None => None,
                Some(seed) => Some(u64::try_from(seed).map_err(|_| {
                    ApiError::value(&format!("Faults.{index}.Seed"), format!("{seed} is negative"))
                })?),
            },
        };
        item.finish()?;
        if setting.probability.is_none() {
            return Err(ApiError::missing(&format!("Faults.{index}.Probability")));
        }
        let fault = setting.check().map_err(|error| {
            let name = format!("Faults.{index}.{}", error.field);
            if error.combination {
                ApiError::new("InvalidParameter", format!("`Faults.{index}`: {}", error.reason))
            } else {
                ApiError::value(&name, error.reason)
            }
        })?;
        faults.push(fault);
    }
    Ok(faults)
}

/// A probability written as a decimal, as a float (any decimal from 0 to 1 is within a
/// float's precision of itself).
fn probability_of(value: Decimal) -> Result<f64, String> {
    value.to_f64().ok_or_else(|| format!("{value} is not a probability"))
}

/// A fault as `DescribeFaults` writes it: the shape `SetFaults` reads.
pub fn describe(fault: &Fault) -> Value {
    let mut fields = json!({
        "Action": fault.action.map_or("*", Action::name),
        "Probability": fault.probability,
        "Seed": fault.seed,
    });
    let object = fields.as_object_mut().expect("an object");
    if let Some(uin) = fault.caller_uin {
        object.insert("CallerUin".into(), json!(uin.0));
    }
    match fault.effect {
        Effect::Error(code) => object.insert("Code".into(), json!(code)),
        Effect::Delay(delay) => object.insert("DelayMs".into(), json!(delay.as_millis() as u64)),
        Effect::Drop => object.insert("Drop".into(), json!(true)),
    };
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(action: &str, probability: f64) -> FaultSetting {
        FaultSetting {
            action: action.into(),
            probability: Some(probability),
            code: Some("InternalError".into()),
            seed: Some(7),
            ..FaultSetting::default()
        }
    }

    #[test]
    fn bad_faults_say_what_is_wrong() {
        let cases: Vec<(FaultSetting, &str, &str)> = vec![
            (setting("Fly", 0.5), "Action", "\"Fly\" is not an action of this service, nor `*`"),
            (setting("SetFaults", 0.5), "Action", "SetFaults is never faulted"),
            (setting("*", 1.5), "Probability", "1.5 is outside 0 to 1"),
            (setting("*", -0.1), "Probability", "-0.1 is outside 0 to 1"),
            (setting("*", f64::NAN), "Probability", "NaN is outside 0 to 1"),
            (FaultSetting { probability: None, ..setting("*", 0.0) }, "Probability", "is required"),
            (FaultSetting { caller_uin: Some(0), ..setting("*", 0.5) }, "CallerUin", "positive"),
            (
                FaultSetting { code: Some("Boom".into()), ..setting("*", 0.5) },
                "Code",
                "\"Boom\" is not an error code this API answers",
            ),
            (
                FaultSetting { drop: true, ..setting("*", 0.5) },
                "Code",
                "exactly one of Code, DelayMs and Drop",
            ),
            (FaultSetting { code: None, ..setting("*", 0.5) }, "Code", "not 0"),
            (
                FaultSetting { code: None, delay_ms: Some(0), ..setting("*", 0.5) },
                "DelayMs",
                "0 is outside 1 to 300000",
            ),
            (
                FaultSetting { code: None, delay_ms: Some(DELAY_MS_MAX + 1), ..setting("*", 0.5) },
                "DelayMs",
                "outside 1 to 300000",
            ),
        ];
        for (setting, field, reason) in cases {
            let error = setting.check().unwrap_err();
            assert_eq!(error.field, field, "{setting:?}");
            assert!(error.reason.contains(reason), "{setting:?}: {}", error.reason);
        }
    }

    #[test]
    fn a_seeded_fault_decides_the_same_way_every_run_and_at_its_rate() {
        let fault = setting("CreatePurchase", 0.3).check().unwrap();
        let decisions = |faults: &Faults| -> Vec<bool> {
            (0..1000).map(|_| faults.decide(Caller::Operator, Action::CreatePurchase).is_some()).collect()
        };
        let faults = Faults::new(vec![fault.clone()]);
        let first = decisions(&faults);
        // Setting the list again starts each generator again from its seed.
        faults.set(vec![fault]);
        assert_eq!(decisions(&faults), first);
        // 0.3 of 1000: the mean 300 and the standard deviation 14.5; five of them either side.
        let fired = first.iter().filter(|fired| **fired).count();
        assert!((228..=372).contains(&fired), "{fired}");
    }

    #[test]
    fn faults_match_their_action_and_caller_and_never_the_fault_actions() {
        let always = |action: &str, caller_uin: Option<u64>| {
            FaultSetting { caller_uin, ..setting(action, 1.0) }.check().unwrap()
        };
        let faults = Faults::new(vec![always("CreatePurchase", Some(5))]);
        assert_eq!(
            faults.decide(Caller::Uin(Uin(5)), Action::CreatePurchase),
            Some(Effect::Error("InternalError"))
        );
        assert_eq!(faults.decide(Caller::Uin(Uin(6)), Action::CreatePurchase), None);
        assert_eq!(faults.decide(Caller::Operator, Action::CreatePurchase), None);
        assert_eq!(faults.decide(Caller::Uin(Uin(5)), Action::Ping), None);
        faults.set(vec![always("*", None)]);
        assert!(faults.decide(Caller::Operator, Action::ResetState).is_some());
        assert_eq!(faults.decide(Caller::Operator, Action::SetFaults), None);
        assert_eq!(faults.decide(Caller::Operator, Action::DescribeFaults), None);
        // Never and always, exactly.
        let never = setting("*", 0.0).check().unwrap();
        faults.set(vec![never]);
        assert!((0..10_000).all(|_| faults.decide(Caller::Operator, Action::Ping).is_none()));
        faults.set(Vec::new());
        assert_eq!(faults.list(), Vec::new());
    }

    #[test]
    fn descriptions_have_the_shape_set_faults_reads() {
        let fault =
            FaultSetting { caller_uin: Some(1000201), ..setting("CreatePurchase", 0.3) }.check().unwrap();
        assert_eq!(
            describe(&fault),
            json!({"Action": "CreatePurchase", "CallerUin": 1000201, "Probability": 0.3, "Code": "InternalError", "Seed": 7})
        );
        let delay = FaultSetting { code: None, delay_ms: Some(300), ..setting("*", 1.0) }.check().unwrap();
        assert_eq!(describe(&delay), json!({"Action": "*", "Probability": 1.0, "DelayMs": 300, "Seed": 7}));
        let drop = FaultSetting { code: None, drop: true, ..setting("*", 0.5) }.check().unwrap();
        assert_eq!(describe(&drop)["Drop"], json!(true));
    }
}
