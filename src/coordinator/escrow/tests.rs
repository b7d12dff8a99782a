//! The escrow state machine driven by hand: one table of rows for a slice and one for a
//! home; then a world of one home and 2 to 4 slices with a queue each way between the home
//! and every slice, as the sharded runtime carries them, for the last-cent cases and for a
//! property test of random interleavings that checks the invariant and the conservation of
//! the partner's credit after every step.

use std::collections::{HashMap, VecDeque};

use proptest::prelude::*;

use super::*;

const PARTNER: Uin = Uin(7);
const JANUARY: &str = "2026-01";
const FEBRUARY: &str = "2026-02";

fn m(text: &str) -> Money {
    text.parse().expect("an amount")
}

fn month(text: &str) -> Month {
    Month::parse(text).expect("a month")
}

/// A step on one slice; sagas are numbered by the row.
#[derive(Clone, Copy, Debug)]
enum SliceOp {
    Reserve(u32, &'static str),
    /// A one-shot purchase, charged at once to a month.
    Charge(u32, &'static str, &'static str),
    Commit(&'static str, &'static str),
    Release(&'static str),
    Granted(&'static str, bool),
    GiveBack,
    TakeUsed,
}

/// What a parked saga is answered: what the slice has left free, or a refusal.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Taken(&'static str),
    Refused { available: &'static str, needed: &'static str },
}

#[derive(Clone, Copy, Debug)]
enum SliceOut {
    Served(&'static str),
    Parked(Option<&'static str>),
    Done,
    Refilled(&'static [(u32, Answer)], Option<&'static str>),
    /// Free credit and used credit per month.
    Settled(&'static str, &'static [(&'static str, &'static str)]),
    NothingToSettle,
}

/// A slice's free, reserved, used and granted credit and how many sagas are parked.
type Balances = (&'static str, &'static str, &'static str, &'static str, usize);

/// A row of the slice table: its name, its steps with their answers, the balances at the end.
type SliceRow = (&'static str, &'static [(SliceOp, SliceOut)], Balances);

fn balances_of(slice: &Slice<u32>) -> (Money, Money, Money, Money, usize) {
    (slice.free(), slice.reserved(), slice.used(), slice.granted_net(), slice.parked())
}

fn settlement(free: &str, used: &[(&str, &str)]) -> Settlement {
    Settlement { free: m(free), used: used.iter().map(|(when, amount)| (month(when), m(amount))).collect() }
}

/// Runs `steps` on a new slice, comparing every answer, and the balances at the end. A
/// refusal takes nothing: after a grant, the credit that left free is exactly what the
/// answered sagas that were served took.
fn check_slice(name: &str, steps: &[(SliceOp, SliceOut)], expected: Balances) {
    use SliceOp::*;
    let mut slice = Slice::new(PARTNER);
    let mut amounts = HashMap::new();
    for (index, (op, out)) in steps.iter().enumerate() {
        let context = format!("{name}, step {index}: {op:?}");
        let before = balances_of(&slice);
        let answered = match (*op, *out) {
            (Reserve(saga, amount) | Charge(saga, amount, _), out) => {
                amounts.insert(saga, m(amount));
                let charge = match *op {
                    Charge(_, _, when) => Some(month(when)),
                    _ => None,
                };
                let expected = match out {
                    SliceOut::Served(available) => Reservation::Served { available: m(available) },
                    SliceOut::Parked(refill) => Reservation::Parked { refill: refill.map(m) },
                    other => panic!("{context}: a reservation answers {other:?}"),
                };
                assert_eq!(slice.reserve(saga, m(amount), charge), expected, "{context}");
                continue;
            }
            (Commit(charge, when), SliceOut::Done) => {
                slice.commit(m(charge), month(when));
                continue;
            }
            (Release(charge), SliceOut::Done) => {
                slice.release(m(charge));
                continue;
            }
            (Granted(amount, exhausted), SliceOut::Refilled(answers, refill)) => {
                let refilled = slice.granted(m(amount), exhausted);
                let expected: Vec<_> =
                    answers.iter().map(|(saga, answer)| (*saga, answer_of(answer))).collect();
                assert_eq!(refilled, Refilled { answers: expected, refill: refill.map(m) }, "{context}");
                (m(amount), refilled.answers)
            }
            (GiveBack, SliceOut::Settled(free, used)) => {
                assert_eq!(slice.give_back(), settlement(free, used), "{context}");
                continue;
            }
            (TakeUsed, SliceOut::Settled(free, used)) => {
                assert_eq!(slice.take_used(), Some(settlement(free, used)), "{context}");
                continue;
            }
            (TakeUsed, SliceOut::NothingToSettle) => {
                assert_eq!(slice.take_used(), None, "{context}");
                continue;
            }
            (op, out) => panic!("{context}: no such row: {op:?} answering {out:?}"),
        };
        let (grant, answers) = answered;
        let served: Money =
            answers.iter().filter(|(_, answer)| answer.is_ok()).map(|(saga, _)| amounts[saga]).sum();
        let after = balances_of(&slice);
        assert_eq!(after.0, before.0 + grant - served, "{context}: free credit");
        assert_eq!(after.1 + after.2, before.1 + before.2 + served, "{context}: reserved and used");
        assert_eq!(after.4, before.4 - answers.len(), "{context}: parked");
    }
    let (free, reserved, used, granted, parked) = expected;
    assert_eq!(balances_of(&slice), (m(free), m(reserved), m(used), m(granted), parked), "{name}: balances");
}

fn answer_of(answer: &Answer) -> Result<Money, Rejection> {
    match *answer {
        Answer::Taken(available) => Ok(m(available)),
        Answer::Refused { available, needed } => Err(Rejection::InsufficientPartnerCredit {
            uin: PARTNER,
            available: m(available),
            needed: m(needed),
        }),
    }
}

#[test]
fn slice_steps() {
    use Answer::*;
    use SliceOp::*;
    use SliceOut::*;
    #[rustfmt::skip]
    let rows: &[SliceRow] = &[
        ("an empty slice parks and asks for the amount",
            &[(Reserve(1, "2"), Parked(Some("2")))], ("0", "0", "0", "0", 1)),
        ("one refill at a time",
            &[(Reserve(1, "2"), Parked(Some("2"))), (Reserve(2, "1"), Parked(None))], ("0", "0", "0", "0", 2)),
        ("a grant serves the parked in order and asks for the next",
            &[(Reserve(1, "2"), Parked(Some("2"))), (Reserve(2, "3"), Parked(None)),
              (Granted("2.5", false), Refilled(&[(1, Taken("0.5"))], Some("3")))],
            ("0.5", "2", "0", "2.5", 1)),
        ("served from free credit",
            &[(Reserve(1, "1"), Parked(Some("1"))), (Granted("5", false), Refilled(&[(1, Taken("4"))], None)),
              (Reserve(2, "4"), Served("0"))],
            ("0", "5", "0", "5", 0)),
        ("nobody overtakes a parked saga, even one free credit covers",
            &[(Granted("1", false), Refilled(&[], None)), (Reserve(1, "3"), Parked(Some("3"))),
              (Reserve(2, "0.5"), Parked(None)),
              (Granted("2", false), Refilled(&[(1, Taken("0"))], Some("0.5")))],
            ("0", "3", "0", "3", 1)),
        ("without exhausted, a grant too small serves nobody and asks again",
            &[(Reserve(1, "3"), Parked(Some("3"))), (Granted("1", false), Refilled(&[], Some("3")))],
            ("1", "0", "0", "1", 1)),
        ("exhausted refuses the first it cannot cover, with what the slice has",
            &[(Reserve(1, "3"), Parked(Some("3"))), (Reserve(2, "0.25"), Parked(None)),
              (Granted("0.5", true), Refilled(&[(1, Refused { available: "0.5", needed: "3" }), (2, Taken("0.25"))], None))],
            ("0.25", "0.25", "0", "0.5", 0)),
        ("exhausted refuses only one; the next waits for its own refill",
            &[(Reserve(1, "3"), Parked(Some("3"))), (Reserve(2, "2"), Parked(None)),
              (Granted("0", true), Refilled(&[(1, Refused { available: "0", needed: "3" })], Some("2")))],
            ("0", "0", "0", "0", 1)),
        ("exhausted refuses nobody when credit came back meanwhile",
            &[(Granted("2", false), Refilled(&[], None)), (Reserve(1, "2"), Served("0")),
              (Reserve(2, "1.5"), Parked(Some("1.5"))), (Release("2"), Done),
              (Granted("0", true), Refilled(&[(2, Taken("0.5"))], None))],
            ("0.5", "1.5", "0", "2", 0)),
        ("a charge is used at once, per month",
            &[(Granted("10", false), Refilled(&[], None)), (Charge(1, "1", JANUARY), Served("9")),
              (Charge(2, "2", FEBRUARY), Served("7")), (Charge(3, "0.5", JANUARY), Served("6.5"))],
            ("6.5", "0", "3.5", "10", 0)),
        ("commit moves reserved to used in the commit's month, release to free",
            &[(Granted("10", false), Refilled(&[], None)), (Reserve(1, "4"), Served("6")),
              (Reserve(2, "3"), Served("3")), (Commit("4", FEBRUARY), Done), (Release("3"), Done)],
            ("6", "0", "4", "10", 0)),
        ("giving back takes free and used, leaves reservations",
            &[(Granted("10", false), Refilled(&[], None)), (Reserve(1, "4"), Served("6")),
              (Charge(2, "1", JANUARY), Served("5")), (Charge(3, "2", FEBRUARY), Served("3")),
              (GiveBack, Settled("3", &[(JANUARY, "1"), (FEBRUARY, "2")]))],
            ("0", "4", "0", "4", 0)),
        ("giving back keeps the parked and the refill on its way",
            &[(Reserve(1, "1"), Parked(Some("1"))), (GiveBack, Settled("0", &[])),
              (Reserve(2, "1"), Parked(None)), (Granted("2", false), Refilled(&[(1, Taken("1")), (2, Taken("0"))], None))],
            ("0", "2", "0", "2", 0)),
        ("settling takes used only",
            &[(Granted("10", false), Refilled(&[], None)), (Charge(1, "1", JANUARY), Served("9")),
              (Reserve(2, "2"), Served("7")), (TakeUsed, Settled("0", &[(JANUARY, "1")])), (TakeUsed, NothingToSettle)],
            ("7", "2", "0", "9", 0)),
    ];
    for (name, steps, balances) in rows {
        check_slice(name, steps, *balances);
    }
}

#[test]
#[should_panic(expected = "exceeds the slice's reserved")]
fn a_commit_beyond_the_reserved_is_a_bug() {
    let mut slice = Slice::<u32>::new(PARTNER);
    let _ = slice.granted(m("1"), false);
    let _ = slice.reserve(1, m("1"), None);
    slice.commit(m("1.01"), month(JANUARY));
}

/// A step at a home of three slices.
#[derive(Clone, Copy, Debug)]
enum HomeOp {
    /// (slice, wanted, available at the home)
    Refill(u32, &'static str, &'static str),
    CallWhole(u32),
    /// (free, used per month, answers a recall)
    Returned(&'static str, &'static [(&'static str, &'static str)], bool),
    /// What is available once the calls ran.
    ServeWaiting(&'static str),
}

#[derive(Clone, Copy, Debug)]
enum HomeOut {
    Grant(u32, &'static str, bool),
    Recall,
    Wait,
    Settled,
    /// The calls a recall's end runs, in order.
    Recalled(&'static [u32]),
    Grants(&'static [(u32, &'static str, bool)]),
}

/// A row of the home table: its name, its steps with their answers, what the home holds at
/// the end and whether it is recalling.
type HomeRow = (&'static str, &'static [(HomeOp, HomeOut)], &'static str, bool);

fn check_home(name: &str, steps: &[(HomeOp, HomeOut)], held: &str, recalling: bool) {
    let mut home = Home::<u32>::new(3);
    let mut waiting = None;
    let grant = |(slice, amount, exhausted): (u32, &str, bool)| Grant { slice, amount: m(amount), exhausted };
    for (index, (op, out)) in steps.iter().enumerate() {
        let context = format!("{name}, step {index}: {op:?}");
        match (*op, *out) {
            (HomeOp::Refill(slice, wanted, available), out) => {
                let expected = match out {
                    HomeOut::Grant(slice, amount, exhausted) => {
                        Decision::Grant(grant((slice, amount, exhausted)))
                    }
                    HomeOut::Recall => Decision::RecallEverySlice,
                    HomeOut::Wait => Decision::WaitForRecall,
                    other => panic!("{context}: a refill answers {other:?}"),
                };
                assert_eq!(home.refill(slice, m(wanted), m(available)), expected, "{context}");
            }
            (HomeOp::CallWhole(call), HomeOut::Recall) => {
                assert_eq!(home.call_whole(call), Decision::RecallEverySlice, "{context}")
            }
            (HomeOp::CallWhole(call), HomeOut::Wait) => {
                assert_eq!(home.call_whole(call), Decision::WaitForRecall, "{context}")
            }
            (HomeOp::Returned(free, used, recall), HomeOut::Settled) => {
                assert!(home.returned(&settlement(free, used), recall).is_none(), "{context}");
            }
            (HomeOp::Returned(free, used, recall), HomeOut::Recalled(calls)) => {
                let recalled = home.returned(&settlement(free, used), recall).expect(&context);
                assert_eq!(recalled.calls, calls, "{context}");
                waiting = Some(recalled.waiting);
            }
            (HomeOp::ServeWaiting(available), HomeOut::Grants(grants)) => {
                let served = home.serve_waiting(waiting.take().expect(&context), m(available));
                assert_eq!(served, grants.iter().copied().map(grant).collect::<Vec<_>>(), "{context}");
            }
            (op, out) => panic!("{context}: no such row: {op:?} answering {out:?}"),
        }
    }
    assert_eq!((home.held(), home.is_recalling()), (m(held), recalling), "{name}");
}

#[test]
fn home_steps() {
    use HomeOp::*;
    use HomeOut::*;
    #[rustfmt::skip]
    let rows: &[HomeRow] = &[
        ("a share of what is available: a sixth on three slices",
            &[(Refill(1, "1", "60"), Grant(1, "10", false))], "10", false),
        ("at least what is wanted",
            &[(Refill(1, "25", "60"), Grant(1, "25", false))], "25", false),
        ("the share is cut to 8 places",
            &[(Refill(2, "0.00000001", "1"), Grant(2, "0.16666666", false))], "0.16666666", false),
        ("all that is left, when that covers",
            &[(Refill(0, "0.01", "0.01"), Grant(0, "0.01", false))], "0.01", false),
        ("a refill available cannot cover recalls every slice",
            &[(Refill(1, "0.02", "0.01"), Recall)], "0", true),
        ("refills and calls wait for the recall in progress",
            &[(Refill(1, "5", "1"), Recall), (Refill(2, "1", "100"), Wait), (CallWhole(7), Wait)], "0", true),
        ("a call recalls every slice",
            &[(CallWhole(7), Recall), (CallWhole(8), Wait)], "0", true),
        ("settlements that answer no recall take off the hold and count for nothing",
            &[(Refill(1, "1", "60"), Grant(1, "10", false)), (CallWhole(7), Recall),
              (Returned("0", &[(JANUARY, "2")], false), Settled), (Returned("0", &[], false), Settled),
              (Returned("0", &[], false), Settled)],
            "8", true),
        ("the last return ends the recall: calls first, then the refills from what is left, in order",
            &[(Refill(1, "1", "60"), Grant(1, "10", false)), (Refill(2, "55", "50"), Recall), (CallWhole(7), Wait),
              (Refill(0, "15", "50"), Wait), (Refill(1, "3", "50"), Wait),
              (Returned("0", &[], true), Settled), (Returned("6", &[(JANUARY, "4")], true), Settled),
              (Returned("0", &[], true), Recalled(&[7])),
              (ServeWaiting("60"), Grants(&[(2, "55", false), (0, "0", true), (1, "3", false)]))],
            "58", false),
        ("what is left cannot cover a waiting refill: nothing and exhausted, and the next may still be served",
            &[(Refill(2, "30", "20"), Recall), (Refill(1, "10", "20"), Wait),
              (Returned("0", &[], true), Settled), (Returned("0", &[], true), Settled),
              (Returned("0", &[], true), Recalled(&[])),
              (ServeWaiting("20"), Grants(&[(2, "0", true), (1, "10", false)]))],
            "10", false),
        ("exactly what is wanted after a recall, not a share",
            &[(Refill(0, "2", "1"), Recall), (Returned("0", &[], true), Settled),
              (Returned("0", &[], true), Settled), (Returned("0", &[], true), Recalled(&[])),
              (ServeWaiting("90"), Grants(&[(0, "2", false)]))],
            "2", false),
    ];
    for (name, steps, held, recalling) in rows {
        check_home(name, steps, held, *recalling);
    }
}

#[test]
#[should_panic(expected = "a recall answer comes to a recall in progress")]
fn a_recall_answer_without_a_recall_is_a_bug() {
    let mut home = Home::<u32>::new(2);
    let _ = home.returned(&Settlement::default(), true);
}

#[test]
fn a_partner_is_escrowed_when_named_and_there_is_more_than_one_slice() {
    let named = [Uin(3), PARTNER];
    for (slices, partner, expected) in
        [(2, PARTNER, true), (4, Uin(3), true), (2, Uin(4), false), (1, PARTNER, false)]
    {
        let escrowed = EscrowedPartners::new(named, slices);
        assert_eq!(escrowed.is_escrowed(partner), expected, "{partner} on {slices} slices");
    }
}

mod world;
