//! The ledger and the saga, driven synchronously against plain accounts: no runtime.

use std::collections::HashMap;

use super::*;
use crate::domain::{Account, CustomerCredit, PartnerCredit, Role};
use crate::domain::{Caller, Rejection};

const R: Uin = Uin(3);
const C: Uin = Uin(10);

struct World {
    ledger: Ledger,
    accounts: HashMap<Uin, Account>,
    now: Timestamp,
}

fn world(limits: LedgerLimits) -> World {
    let partner = PartnerCredit {
        total: Money::from_units(100),
        allocated: Money::from_units(50),
        ..Default::default()
    };
    let customer = CustomerCredit { total: Money::from_units(50), ..Default::default() };
    let mut accounts = HashMap::new();
    accounts.insert(R, Account::new(R, Role::Reseller { credit: partner }, Timestamp(0)));
    accounts.insert(C, Account::new(C, Role::customer(R, R, customer), Timestamp(0)));
    World { ledger: Ledger::alone(limits), accounts, now: Timestamp(1_000) }
}

fn limits() -> LedgerLimits {
    LedgerLimits { resolved_retention_ms: 60_000, resolved_capacity: 100, open_reservations_max: 10 }
}

fn id(text: &str) -> PurchaseId {
    PurchaseId::new(text).unwrap()
}

fn request(text: &str, units: i64) -> PurchaseRequest {
    PurchaseRequest::new(id(text), C, Money::from_units(units))
}

impl World {
    /// Runs `op` on the ledger with a read of its index held, as a runtime's round does.
    fn with_index<T>(&mut self, op: impl FnOnce(&mut Ledger, &IndexRead<'_>, Timestamp) -> T) -> T {
        let index = self.ledger.index().clone();
        index.maintain();
        let table = index.read(0);
        op(&mut self.ledger, &table, self.now)
    }

    fn begin(&mut self, caller: Caller, request: PurchaseRequest, mode: Mode) -> Next {
        let charged = self.charged();
        self.with_index(|ledger, table, now| {
            ledger.begin(table, Begin::new(caller, &request, mode), now, &charged)
        })
    }

    /// The partner each customer's purchases charge, from the accounts.
    fn charged(&self) -> impl Fn(Uin) -> Option<Uin> {
        let charged: HashMap<Uin, Uin> = self
            .accounts
            .values()
            .filter_map(|account| Some((account.uin, account.role.charged()?)))
            .collect();
        move |customer| charged.get(&customer).copied()
    }

    fn finish(&mut self, saga: Saga, end: SagaEnd) -> Result<Outcome, Rejection> {
        self.with_index(|ledger, table, now| ledger.finish(table, saga, end, now))
    }

    fn run(&mut self, next: Next) -> Result<Outcome, Rejection> {
        match next {
            Next::Answer(answer) => answer,
            Next::Run(mut saga) => {
                let end = self.drive(&mut saga);
                self.finish(saga, end)
            }
            Next::Elsewhere(place) => unreachable!("alone in its index: {place:?}"),
        }
    }

    fn drive(&mut self, saga: &mut Saga) -> SagaEnd {
        let mut step = saga.first_step();
        loop {
            match step {
                Step::Call(uin, command) => {
                    let reply = match self.accounts.get_mut(&uin) {
                        Some(account) => account.handle(command),
                        None => Err(Rejection::UnknownUin(uin)),
                    };
                    step = saga.advance(reply);
                }
                Step::Done(end) => return end,
            }
        }
    }

    fn purchase(&mut self, text: &str, units: i64) -> Result<Outcome, Rejection> {
        let next = self.begin(Caller::Operator, request(text, units), Mode::OneShot);
        self.run(next)
    }

    fn reserve(&mut self, text: &str, units: i64) -> Result<Outcome, Rejection> {
        let next = self.begin(Caller::Operator, request(text, units), Mode::Reserve { timeout_ms: 500 });
        self.run(next)
    }

    fn resolve(&mut self, caller: Caller, text: &str, commit: bool) -> Next {
        let charged = self.charged();
        self.with_index(|ledger, table, now| match commit {
            true => ledger.commit(table, caller, &id(text), now, 0, &charged),
            false => ledger.cancel(table, caller, &id(text), now, 0, &charged),
        })
    }

    fn commit(&mut self, text: &str) -> Result<Outcome, Rejection> {
        let next = self.resolve(Caller::Operator, text, true);
        self.run(next)
    }

    fn cancel(&mut self, text: &str) -> Result<Outcome, Rejection> {
        let next = self.resolve(Caller::Operator, text, false);
        self.run(next)
    }

    fn expire(&mut self) -> usize {
        let sagas = self.with_index(|ledger, table, now| ledger.expire_due(table, now));
        let count = sagas.len();
        for mut saga in sagas {
            let end = self.drive(&mut saga);
            let _ = self.finish(saga, end);
        }
        count
    }

    /// (customer used, customer reserved, partner used, partner reserved), in whole units.
    fn books(&self) -> (Money, Money, Money, Money) {
        let Role::Customer { credit: customer, .. } = self.accounts[&C].role else { unreachable!() };
        let Role::Reseller { credit: partner } = self.accounts[&R].role else { unreachable!() };
        (customer.used, customer.reserved, partner.used, partner.reserved)
    }
}

fn units(values: (i64, i64, i64, i64)) -> (Money, Money, Money, Money) {
    (
        Money::from_units(values.0),
        Money::from_units(values.1),
        Money::from_units(values.2),
        Money::from_units(values.3),
    )
}

fn name(result: Result<Outcome, Rejection>) -> &'static str {
    match result {
        Ok(Outcome::Purchased(_)) => "Purchased",
        Ok(Outcome::Reserved(_)) => "Reserved",
        Ok(Outcome::Committed(_)) => "Committed",
        Ok(Outcome::Cancelled(_)) => "Cancelled",
        Err(rejection) => rejection.name(),
    }
}

#[test]
fn one_shot_purchase_charges_both_sides_and_repeats_idempotently() {
    let mut w = world(limits());
    let first = w.purchase("p1", 20);
    assert_eq!(name(first.clone()), "Purchased");
    assert_eq!(w.books(), units((20, 0, 20, 0)));
    assert_eq!(w.purchase("p1", 20), first, "a repeat returns the first outcome");
    assert_eq!(w.books(), units((20, 0, 20, 0)), "and changes nothing");
    assert_eq!(name(w.purchase("p1", 21)), "PurchaseIdConflict");
    assert_eq!(name(w.commit("p1")), "NotAReservation");
}

#[test]
fn refusals_are_recorded_and_release_the_customer() {
    let mut w = world(limits());
    assert_eq!(name(w.purchase("big", 51)), "InsufficientCustomerCredit");
    // The partner refuses after the customer reserved: the customer's hold is undone.
    w.accounts
        .get_mut(&R)
        .unwrap()
        .handle(crate::domain::account::HoldEscrow { credit: Money::from_units(95) })
        .unwrap();
    assert_eq!(name(w.purchase("p2", 10)), "InsufficientPartnerCredit");
    assert_eq!(w.books(), units((0, 0, 0, 95)));
    assert_eq!(name(w.purchase("p2", 10)), "InsufficientPartnerCredit", "a repeat returns the refusal");
    assert_eq!(name(w.cancel("p2")), "NotAReservation");
}

#[test]
fn reservation_table() {
    // (steps, outcome of each, books after) in one world per row.
    type Row = (&'static [(&'static str, &'static str)], (i64, i64, i64, i64));
    let rows: &[Row] = &[
        (&[("reserve", "Reserved")], (0, 5, 0, 5)),
        (&[("reserve", "Reserved"), ("reserve", "Reserved")], (0, 5, 0, 5)),
        (&[("reserve", "Reserved"), ("commit", "Committed")], (5, 0, 5, 0)),
        (&[("reserve", "Reserved"), ("commit", "Committed"), ("commit", "Committed")], (5, 0, 5, 0)),
        (&[("reserve", "Reserved"), ("commit", "Committed"), ("cancel", "AlreadyCommitted")], (5, 0, 5, 0)),
        (&[("reserve", "Reserved"), ("cancel", "Cancelled")], (0, 0, 0, 0)),
        (&[("reserve", "Reserved"), ("cancel", "Cancelled"), ("cancel", "Cancelled")], (0, 0, 0, 0)),
        (&[("reserve", "Reserved"), ("cancel", "Cancelled"), ("commit", "AlreadyCancelled")], (0, 0, 0, 0)),
        (&[("reserve", "Reserved"), ("late", ""), ("commit", "ReservationExpired")], (0, 0, 0, 0)),
        (&[("reserve", "Reserved"), ("late", ""), ("cancel", "ReservationExpired")], (0, 0, 0, 0)),
        (
            &[("reserve", "Reserved"), ("late", ""), ("sweep", ""), ("commit", "ReservationExpired")],
            (0, 0, 0, 0),
        ),
        (&[("commit", "UnknownPurchase")], (0, 0, 0, 0)),
        (&[("cancel", "UnknownPurchase")], (0, 0, 0, 0)),
    ];
    for (steps, books) in rows {
        let mut w = world(limits());
        for (step, expect) in *steps {
            let got = match *step {
                "reserve" => name(w.reserve("r", 5)),
                "commit" => name(w.commit("r")),
                "cancel" => name(w.cancel("r")),
                "late" => {
                    w.now = w.now.plus_ms(500);
                    ""
                }
                "sweep" => {
                    assert_eq!(w.expire(), 1);
                    ""
                }
                other => unreachable!("{other}"),
            };
            assert_eq!(got, *expect, "{steps:?} at {step}");
        }
        assert_eq!(w.books(), units(*books), "{steps:?}");
        assert_eq!(w.ledger.open_reservations(), usize::from(books.1 != 0), "{steps:?}");
    }
}

#[test]
fn sweep_expires_only_what_is_due() {
    let mut w = world(limits());
    w.reserve("a", 1).unwrap();
    w.now = w.now.plus_ms(100);
    w.reserve("b", 1).unwrap();
    w.now = w.now.plus_ms(400);
    assert_eq!(w.expire(), 1, "a's deadline has come, b's has not");
    assert_eq!(w.books(), units((0, 1, 0, 1)));
    w.now = w.now.plus_ms(100);
    assert_eq!(w.expire(), 1);
    assert_eq!(w.books(), units((0, 0, 0, 0)));
}

#[test]
fn in_flight_purchases_answer_in_progress() {
    let mut w = world(limits());
    let Next::Run(mut saga) = w.begin(Caller::Operator, request("x", 1), Mode::Reserve { timeout_ms: 500 })
    else {
        panic!("a new purchase runs a saga")
    };
    assert_eq!(name(w.reserve("x", 1)), "PurchaseInProgress");
    assert_eq!(name(w.commit("x")), "PurchaseInProgress");
    let end = w.drive(&mut saga);
    assert_eq!(name(w.finish(saga, end)), "Reserved");
    assert_eq!(name(w.commit("x")), "Committed");
}

#[test]
fn only_the_customer_or_the_operator_touches_a_purchase() {
    let mut w = world(limits());
    w.reserve("r", 1).unwrap();
    let stranger = Caller::Uin(Uin(77));
    let next = w.resolve(stranger, "r", true);
    assert_eq!(name(w.run(next)), "NotAuthorized");
    let next = w.begin(stranger, request("r", 1), Mode::Reserve { timeout_ms: 500 });
    assert_eq!(name(w.run(next)), "NotAuthorized");
    // The request's customer is the caller, but the id is another customer's.
    let next = w.begin(
        Caller::Uin(Uin(77)),
        PurchaseRequest::new(id("r"), Uin(77), Money::from_units(1)),
        Mode::Reserve { timeout_ms: 500 },
    );
    assert_eq!(name(w.run(next)), "NotAuthorized");
    let next = w.begin(
        Caller::Operator,
        PurchaseRequest::new(id("r"), Uin(77), Money::from_units(1)),
        Mode::Reserve { timeout_ms: 500 },
    );
    assert_eq!(name(w.run(next)), "PurchaseIdConflict", "the operator learns the id is taken");
    let next = w.resolve(Caller::Uin(C), "r", false);
    assert_eq!(name(w.run(next)), "Cancelled");
}

#[test]
fn open_reservations_are_bounded() {
    let mut w = world(LedgerLimits { open_reservations_max: 2, ..limits() });
    w.reserve("a", 1).unwrap();
    w.reserve("b", 1).unwrap();
    assert_eq!(name(w.reserve("c", 1)), "TooManyOpenReservations");
    assert_eq!(w.books(), units((0, 2, 0, 2)));
    w.cancel("a").unwrap();
    assert_eq!(name(w.reserve("c", 1)), "Reserved");
}

#[test]
fn resolved_ids_are_forgotten_after_the_window_or_beyond_capacity() {
    let mut w = world(LedgerLimits { resolved_capacity: 3, ..limits() });
    for index in 0..5 {
        w.purchase(&format!("p{index}"), 1).unwrap();
    }
    // Eviction happens when a new purchase begins: at most capacity + the one in flight.
    assert!(w.ledger.records_len() <= 4, "{} records", w.ledger.records_len());
    assert_eq!(name(w.purchase("p4", 2)), "PurchaseIdConflict", "recent ids are remembered");
    assert_eq!(name(w.purchase("p0", 2)), "Purchased", "the oldest were forgotten");

    let mut w = world(limits());
    w.purchase("old", 1).unwrap();
    w.now = w.now.plus_ms(60_000);
    w.expire();
    assert_eq!(w.ledger.records_len(), 0, "forgotten after the retention window");
}

#[test]
fn repeats_wait_until_a_commit_is_applied() {
    let mut w = world(limits());
    w.reserve("r", 5).unwrap();
    let Next::Run(mut saga) = w.resolve(Caller::Operator, "r", true) else { panic!("a commit runs a saga") };
    assert_eq!(name(w.commit("r")), "PurchaseInProgress", "the books do not show the commit yet");
    assert_eq!(name(w.cancel("r")), "PurchaseInProgress");
    let end = w.drive(&mut saga);
    assert_eq!(name(w.finish(saga, end)), "Committed");
    assert_eq!(w.books(), units((5, 0, 5, 0)));
    assert_eq!(name(w.commit("r")), "Committed");
    assert_eq!(name(w.cancel("r")), "AlreadyCommitted");
}

#[test]
fn a_saga_finds_its_record_after_eviction_moved_it() {
    // Capacity 1: while "slow" is in flight, later purchases push the ring over capacity and
    // eviction moves the unresolved record to the back, under a new sequence number.
    let mut w = world(LedgerLimits { resolved_capacity: 1, ..limits() });
    let Next::Run(mut slow) = w.begin(Caller::Operator, request("slow", 2), Mode::OneShot) else {
        panic!("a new purchase runs a saga")
    };
    let began_at = slow.record;
    for index in 0..3 {
        w.purchase(&format!("p{index}"), 1).unwrap();
    }
    let records = &w.ledger.records;
    let (first, end) = records.window();
    let still_there = (first..end).contains(&began_at) && records.get(began_at).key() == slow.key;
    assert!(!still_there, "eviction moved the in-flight record");
    let end = w.drive(&mut slow);
    assert_eq!(name(w.finish(slow, end)), "Purchased");
    assert_eq!(name(w.purchase("slow", 2)), "Purchased", "the repeat answers from the record");
    assert_eq!(name(w.purchase("slow", 3)), "PurchaseIdConflict");
    assert_eq!(w.books(), units((5, 0, 5, 0)));
}

#[test]
fn forgotten_records_leave_the_index_bounded() {
    for capacity in [10, 1_000] {
        let mut w = world(LedgerLimits { resolved_capacity: capacity, ..limits() });
        // Far more purchases than the capacity, with reservations held open across the churn,
        // so that records are forgotten, moved to the back and purged many times over.
        w.reserve("open-a", 1).unwrap();
        let purchases = 20 * capacity;
        for index in 0..purchases {
            // Refused (beyond the customer's credit), so that the books stay as they are.
            w.purchase(&format!("p{index}"), 1_000).unwrap_err();
            if index == purchases / 2 {
                w.reserve("open-b", 1).unwrap();
            }
            // The stale entries of forgotten and moved records are dropped when the index is
            // half full: it never holds more than half its room, and its room stays the
            // smallest table for these few live records.
            let index = w.ledger.index();
            assert!(index.occupied() <= index.capacity() / 2 + 1, "capacity {capacity}: {index:?}");
            assert_eq!(index.capacity(), super::index::CAPACITY_MIN, "capacity {capacity}: {index:?}");
        }
        let last = format!("p{}", purchases - 1);
        let refusal = name(w.purchase(&last, 1_000));
        assert_eq!(
            name(w.purchase(&last, 2)),
            "PurchaseIdConflict",
            "the latest ids are remembered: {refusal}"
        );
        assert_eq!(name(w.purchase("p0", 1)), "Purchased", "the oldest were forgotten");
        assert_eq!(name(w.commit("open-a")), "Committed", "open reservations are never forgotten");
        assert_eq!(name(w.cancel("open-b")), "Cancelled");
    }
}
