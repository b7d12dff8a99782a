//! The conformance suite: the engine's behaviour, written once against its public API and run
//! on every runtime. Time is a manual clock.

mod common;

use std::collections::BTreeSet;

use common::*;
use partner_credit::domain::voucher::{PaymentMode, ProductScope, Scope};
use partner_credit::domain::{Month, Role, Timestamp, VoucherId};
use partner_credit::engine::{
    CustomerFilterField, CustomerQuery, NewCustomer, NewCustomerVoucher, NewPartner, NewPartnerVoucher,
    PartnerKind, PartnerVoucherType,
};
use partner_credit::{Caller, EngineConfig, Rejection, RuntimeKind, Uin, World, WorldSpec};

on_every_runtime!(
    set_up_and_queries,
    purchases_charge_the_right_partner,
    both_sides_or_neither,
    reservations_commit_cancel_and_expire,
    purchase_ids_are_idempotent,
    suspension_blocks_purchases,
    allocation_bounds,
    credit_line_reduction,
    authorization,
    batches,
    every_rejection_has_a_case,
    import_and_uin_assignment,
    concurrent_creation_of_one_uin,
);

async fn set_up_and_queries(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;

    let d = engine.query_partner_credit(Caller::Uin(t.d), t.d).await.unwrap();
    assert_eq!((d.total, d.allocated, d.remaining), (m("1000"), m("300"), m("1000")));
    // A distributor's direct children are second-level resellers, not customers.
    assert_eq!((d.customer_total, d.customer_remaining), (m("0"), m("0")));
    let r = engine.query_partner_credit(Caller::Uin(t.r), t.r).await.unwrap();
    assert_eq!((r.total, r.allocated, r.remaining), (m("500"), m("200"), m("500")));
    assert_eq!((r.customer_total, r.customer_remaining), (m("200"), m("200")));
    let s = engine.query_partner_credit(Caller::Uin(t.s), t.s).await.unwrap();
    assert_eq!((s.total, s.allocated, s.remaining), (m("300"), m("100"), m("200")));

    let quota = engine.query_customer_billing_quota(Caller::Uin(t.c), t.c).await.unwrap();
    assert_eq!(
        (quota.total, quota.remaining, quota.postpay_frozen, quota.force),
        (m("200"), m("200"), m("0"), 0)
    );

    let rows = engine.query_credit_by_uin_list(Caller::Uin(t.r), &[t.c]).await.unwrap();
    assert_eq!((rows[0].uin, rows[0].total, rows[0].remaining), (t.c, m("200"), m("200")));
    let rows = engine.query_credit_by_uin_list(Caller::Uin(t.d), &[t.s]).await.unwrap();
    assert_eq!(
        (rows[0].total, rows[0].remaining),
        (m("300"), m("200")),
        "a pool reads as total and remaining"
    );
    assert_eq!(refusal(engine.query_credit_by_uin_list(OP, &[])).await, "InvalidParameter");
    assert_eq!(refusal(engine.query_credit_by_uin_list(OP, &[t.c; 51])).await, "InvalidParameter");

    let direct = engine.query_direct_customers_credit(Caller::Uin(t.s), t.s).await.unwrap();
    assert_eq!(direct.iter().map(|row| row.uin).collect::<Vec<_>>(), vec![t.cs]);

    // Three more customers of R, created later, to page, filter and order.
    for uin in [20, 21, 22] {
        let customer =
            NewCustomer { uin: Some(Uin(uin)), parent: t.r, name: Some(format!("late-{uin}")), email: None };
        engine.create_customer(OP, customer).await.unwrap();
    }
    let query = CustomerQuery { page: 1, page_size: 2, ..CustomerQuery::default() };
    let (total, page) = engine.query_customers_credit(Caller::Uin(t.r), t.r, &query).await.unwrap();
    assert_eq!(total, 4);
    assert_eq!(page.len(), 2);
    let ascending = CustomerQuery { page: 1, page_size: 10, ascending: true, ..CustomerQuery::default() };
    let (_, all) = engine.query_customers_credit(Caller::Uin(t.r), t.r, &ascending).await.unwrap();
    assert_eq!(all.iter().map(|view| view.uin.0).collect::<Vec<_>>(), vec![10, 20, 21, 22]);
    let filtered =
        CustomerQuery { filter: Some((CustomerFilterField::Name, "late-2".into())), ..ascending.clone() };
    let (total, _) = engine.query_customers_credit(Caller::Uin(t.r), t.r, &filtered).await.unwrap();
    assert_eq!(total, 3);
    let by_uin =
        CustomerQuery { filter: Some((CustomerFilterField::ClientUin, "21".into())), ..ascending.clone() };
    let (total, page) = engine.query_customers_credit(Caller::Uin(t.r), t.r, &by_uin).await.unwrap();
    assert_eq!((total, page[0].uin), (1, Uin(21)));
    let page_zero = CustomerQuery { page: 0, ..ascending };
    assert_eq!(refusal(engine.query_customers_credit(OP, t.r, &page_zero)).await, "InvalidParameter");

    engine.set_remark(Caller::Uin(t.r), t.c, "vip".into()).await.unwrap();
    assert_eq!(engine.account(OP, t.c).await.unwrap().profile.remark.as_deref(), Some("vip"));

    engine.allocate_customer_credit(Caller::Uin(t.r), t.c, m("-50"), Some("back".into())).await.unwrap();
    let (total, history) =
        engine.query_credit_allocation_history(Caller::Uin(t.r), t.c, 1, 10).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        (history[0].amount, history[0].total_after, history[0].available_after),
        (m("-50"), m("150"), m("150"))
    );
    assert_eq!(history[0].remark.as_deref(), Some("back"));
    assert_eq!(history[0].operator, Caller::Uin(t.r));
    assert_eq!(history[1].amount, m("200"));
    assert_books_balance(&engine).await;
}

async fn purchases_charge_the_right_partner(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    let receipt = engine.purchase(Caller::Uin(t.c), request("a", t.c, "12.34")).await.unwrap();
    assert_eq!(receipt.charged, t.r);
    assert_eq!((receipt.customer_available, receipt.partner_available), (m("187.66"), m("487.66")));

    let receipt = engine.purchase(OP, request("b", t.cs, "10.00000001")).await.unwrap();
    assert_eq!(receipt.charged, t.d, "a second-level reseller's customer charges the distributor");
    assert_eq!(available(&engine, t.d).await, m("989.99999999"));
    assert_eq!(available(&engine, t.s).await, m("200"), "the second-level reseller is never charged");
    assert_eq!(available(&engine, t.cs).await, m("89.99999999"));
    assert_books_balance(&engine).await;
}

async fn both_sides_or_neither(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    // R's available (500) is less than the customer's once R's line covers less.
    engine.grant_credit(OP, t.r, m("-450")).await.unwrap();
    assert_eq!(refusal(engine.purchase(OP, request("x", t.c, "60"))).await, "InsufficientPartnerCredit");
    assert_eq!(available(&engine, t.c).await, m("200"), "the customer's hold was released");
    assert_eq!(available(&engine, t.r).await, m("50"));
    assert_eq!(refusal(engine.purchase(OP, request("y", t.c, "200.01"))).await, "InsufficientCustomerCredit");
    assert_eq!(available(&engine, t.r).await, m("50"), "the partner was never touched");
    engine.purchase(OP, request("z", t.c, "50")).await.unwrap();
    assert_eq!(
        refusal(engine.purchase(OP, request("w", t.c, "0.00000001"))).await,
        "InsufficientPartnerCredit"
    );
    assert_books_balance(&engine).await;
}

async fn reservations_commit_cancel_and_expire(kind: RuntimeKind) {
    let (engine, clock) = engine(kind);
    let t = tree(&engine).await;
    let reservation = engine.reserve(OP, request("r1", t.c, "30"), Some(10_000)).await.unwrap();
    assert_eq!(reservation.charged, t.r);
    assert_eq!(reservation.deadline, Timestamp(START.0 + 10_000));
    assert_eq!((available(&engine, t.c).await, available(&engine, t.r).await), (m("170"), m("470")));
    engine.commit(Caller::Uin(t.c), pid("r1")).await.unwrap();
    engine.commit(OP, pid("r1")).await.expect("a repeated commit answers the same");
    assert_eq!(refusal(engine.cancel(OP, pid("r1"))).await, "AlreadyCommitted");

    engine.reserve(OP, request("r2", t.c, "20"), None).await.unwrap();
    engine.cancel(OP, pid("r2")).await.unwrap();
    assert_eq!(refusal(engine.commit(OP, pid("r2"))).await, "AlreadyCancelled");
    assert_eq!((available(&engine, t.c).await, available(&engine, t.r).await), (m("170"), m("470")));

    // Expiry by the sweep.
    engine.reserve(OP, request("r3", t.cs, "40"), Some(1_000)).await.unwrap();
    engine.reserve(OP, request("r4", t.cs, "1"), Some(5_000)).await.unwrap();
    clock.advance_ms(1_000);
    assert_eq!(engine.expire_due().await.unwrap(), 1);
    assert_eq!(refusal(engine.commit(OP, pid("r3"))).await, "ReservationExpired");
    assert_eq!(available(&engine, t.cs).await, m("99"));
    assert_eq!(engine.open_reservations().await.unwrap(), 1);
    // Expiry at commit time, whether or not a sweep ran first.
    clock.advance_ms(4_000);
    assert_eq!(refusal(engine.commit(OP, pid("r4"))).await, "ReservationExpired");
    assert_eq!(available(&engine, t.cs).await, m("100"));
    assert_eq!(available(&engine, t.d).await, m("1000"));
    assert_eq!(engine.open_reservations().await.unwrap(), 0);

    assert_eq!(refusal(engine.reserve(OP, request("r5", t.c, "1"), Some(0))).await, "InvalidParameter");
    assert_eq!(
        refusal(engine.reserve(OP, request("r6", t.c, "1"), Some(86_400_001))).await,
        "InvalidParameter"
    );
    assert_books_balance(&engine).await;
}

async fn purchase_ids_are_idempotent(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    let first = engine.purchase(OP, request("same", t.c, "5")).await.unwrap();
    let again = engine.purchase(OP, request("same", t.c, "5")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(available(&engine, t.c).await, m("195"), "charged once");
    assert_eq!(refusal(engine.purchase(OP, request("same", t.c, "6"))).await, "PurchaseIdConflict");
    assert_eq!(refusal(engine.purchase(OP, request("same", t.cs, "5"))).await, "PurchaseIdConflict");
    assert_eq!(refusal(engine.reserve(OP, request("same", t.c, "5"), None)).await, "PurchaseIdConflict");
    let reserved = engine.reserve(OP, request("res", t.c, "5"), Some(1000)).await.unwrap();
    assert_eq!(engine.reserve(OP, request("res", t.c, "5"), Some(1000)).await.unwrap(), reserved);
    assert_eq!(refusal(engine.reserve(OP, request("res", t.c, "5"), Some(2000))).await, "PurchaseIdConflict");
    assert_eq!(available(&engine, t.c).await, m("190"));
    assert_books_balance(&engine).await;
}

async fn suspension_blocks_purchases(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    engine.set_suspension(Caller::Uin(t.r), t.c, true).await.unwrap();
    assert_eq!(engine.query_customer_billing_quota(OP, t.c).await.unwrap().force, 2);
    assert_eq!(refusal(engine.purchase(OP, request("p", t.c, "1"))).await, "Suspended");
    assert_eq!(refusal(engine.reserve(OP, request("q", t.c, "1"), None)).await, "Suspended");
    assert_eq!(refusal(engine.set_suspension(Caller::Uin(t.c), t.c, false)).await, "NotAuthorized");
    engine.set_suspension(OP, t.c, false).await.unwrap();
    engine.purchase(OP, request("r", t.c, "1")).await.unwrap();
    assert_eq!(refusal(engine.set_suspension(Caller::Uin(t.s), t.c, true)).await, "NotAuthorized");
    engine.set_suspension(Caller::Uin(t.s), t.cs, true).await.unwrap();
    assert_eq!(refusal(engine.purchase(OP, request("s", t.cs, "1"))).await, "Suspended");
}

async fn allocation_bounds(kind: RuntimeKind) {
    let (engine, clock) = engine(kind);
    let t = tree(&engine).await;
    let by_r = Caller::Uin(t.r);
    // R: line 500, 200 allocated.
    assert_eq!(refusal(engine.allocate_customer_credit(by_r, t.c, m("300.01"), None)).await, "OverAllocable");
    let line = engine.allocate_customer_credit(by_r, t.c, m("300"), None).await.unwrap();
    assert_eq!((line.total, line.available), (m("500"), m("500")));
    engine.purchase(OP, request("p", t.c, "100")).await.unwrap();
    assert_eq!(
        refusal(engine.allocate_customer_credit(by_r, t.c, m("-400.01"), None)).await,
        "OverRepossessable"
    );
    let line = engine.allocate_customer_credit(by_r, t.c, m("-400"), None).await.unwrap();
    assert_eq!((line.total, line.available), (m("100"), m("0")));
    assert_eq!(engine.query_partner_credit(by_r, t.r).await.unwrap().allocated, m("100"));
    // AllocateCustomerCredit admits 5 calls a second per caller; R has made 5.
    clock.advance_ms(1_000);
    assert_eq!(refusal(engine.allocate_customer_credit(by_r, t.c, m("0"), None)).await, "InvalidAmount");

    // Pools: D gave 300 to S; S gave 100 to CS.
    let by_d = Caller::Uin(t.d);
    let by_s = Caller::Uin(t.s);
    assert_eq!(
        refusal(engine.allocate_customer_credit(by_s, t.cs, m("200.01"), None)).await,
        "OverAllocable"
    );
    engine.allocate_customer_credit(by_s, t.cs, m("200"), None).await.unwrap();
    assert_eq!(refusal(engine.allocate_credit_pool(by_d, t.s, m("-0.01"))).await, "OverRepossessable");
    assert_eq!(refusal(engine.allocate_credit_pool(by_d, t.s, m("700.01"))).await, "OverAllocable");
    let pool = engine.allocate_credit_pool(by_d, t.s, m("700")).await.unwrap();
    assert_eq!((pool.total, pool.available), (m("1000"), m("700")));
    let pool = engine.allocate_credit_pool(by_d, t.s, m("-700")).await.unwrap();
    assert_eq!((pool.total, pool.available), (m("300"), m("0")));
    assert_eq!(refusal(engine.allocate_credit_pool(by_d, t.c, m("1"))).await, "WrongKind");
    assert_eq!(refusal(engine.allocate_customer_credit(by_d, t.s, m("1"), None)).await, "WrongKind");
    assert_books_balance(&engine).await;
}

async fn credit_line_reduction(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    engine.purchase(OP, request("p", t.c, "100")).await.unwrap();
    // R: line 500, used 100 (available 400), allocated 200.
    assert_eq!(refusal(engine.grant_credit(OP, t.r, m("-400.01"))).await, "OverRepossessable");
    let line = engine.grant_credit(OP, t.r, m("-350")).await.unwrap();
    assert_eq!((line.total, line.available), (m("150"), m("50")));
    // Allocable is now 150 - 200 < 0: no allocation, but purchases its available covers go on.
    assert_eq!(
        refusal(engine.allocate_customer_credit(Caller::Uin(t.r), t.c, m("0.01"), None)).await,
        "OverAllocable"
    );
    engine.purchase(OP, request("q", t.c, "50")).await.unwrap();
    assert_eq!(refusal(engine.purchase(OP, request("r", t.c, "0.01"))).await, "InsufficientPartnerCredit");
    assert_eq!(refusal(engine.grant_credit(OP, t.s, m("1"))).await, "WrongKind");
    assert_eq!(refusal(engine.grant_credit(OP, t.r, m("0"))).await, "InvalidAmount");
    assert_books_balance(&engine).await;
}

async fn authorization(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    let other = engine.create_partner(OP, PartnerKind::Reseller, NewPartner::default()).await.unwrap();
    let by_other = Caller::Uin(other);
    let by_c = Caller::Uin(t.c);
    // A partner acts only on its own customers and second-level resellers.
    assert_eq!(refusal(engine.allocate_customer_credit(by_other, t.c, m("1"), None)).await, "NotAuthorized");
    assert_eq!(refusal(engine.set_suspension(by_other, t.c, true)).await, "NotAuthorized");
    assert_eq!(refusal(engine.query_credit_by_uin_list(by_other, &[t.c])).await, "NotAuthorized");
    assert_eq!(refusal(engine.query_credit_allocation_history(by_other, t.c, 1, 10)).await, "NotAuthorized");
    assert_eq!(refusal(engine.query_partner_credit(by_other, t.r)).await, "NotAuthorized");
    assert_eq!(
        refusal(engine.query_customers_credit(by_other, t.r, &CustomerQuery::default())).await,
        "NotAuthorized"
    );
    assert_eq!(refusal(engine.allocate_credit_pool(Caller::Uin(t.r), t.s, m("1"))).await, "NotAuthorized");
    // A customer acts only on itself.
    assert_eq!(refusal(engine.purchase(by_c, request("p", t.cs, "1"))).await, "NotAuthorized");
    assert_eq!(refusal(engine.query_customer_billing_quota(by_c, t.cs)).await, "NotAuthorized");
    assert_eq!(refusal(engine.allocate_customer_credit(by_c, t.c, m("1"), None)).await, "NotAuthorized");
    // A partner does not purchase for its customer; the customer and the operator do.
    assert_eq!(refusal(engine.purchase(Caller::Uin(t.r), request("q", t.c, "1"))).await, "NotAuthorized");
    engine.reserve(by_c, request("mine", t.c, "1"), None).await.unwrap();
    assert_eq!(refusal(engine.commit(Caller::Uin(t.cs), pid("mine"))).await, "NotAuthorized");
    assert_eq!(refusal(engine.cancel(by_other, pid("mine"))).await, "NotAuthorized");
    // Set-up is the operator's.
    assert_eq!(refusal(engine.grant_credit(Caller::Uin(t.r), t.r, m("1"))).await, "OperatorOnly");
    assert_eq!(
        refusal(engine.create_partner(Caller::Uin(t.d), PartnerKind::Reseller, NewPartner::default())).await,
        "OperatorOnly"
    );
    let customer = NewCustomer { uin: None, parent: t.r, name: None, email: None };
    assert_eq!(refusal(engine.create_customer(Caller::Uin(t.r), customer)).await, "OperatorOnly");
    assert_eq!(available(&engine, t.c).await, m("199"));
    assert_books_balance(&engine).await;
}

async fn batches(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    let requests = vec![
        request("b1", t.c, "150"),
        request("b2", t.c, "60"),
        request("b3", t.cs, "10"),
        request("b4", Uin(999), "1"),
        request("b5", t.c, "0"),
        request("b1", t.c, "150"),
    ];
    let results = engine.purchase_batch(OP, requests).await.unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|result| match result {
            Ok(_) => "Committed",
            Err(rejection) => rejection.name(),
        })
        .collect();
    // b2 fails whichever of b1 and b2 runs first: together they exceed C's 200.
    assert_eq!(names[2..5], ["Committed", "UnknownUin", "InvalidAmount"]);
    assert_eq!(names[..2].iter().filter(|name| **name == "Committed").count(), 1, "{names:?}");
    // A repeat of an id still in flight is told to retry; once resolved it gets the first
    // answer. Either way the purchase is charged once.
    assert!(names[5] == names[0] || names[5] == "PurchaseInProgress", "{names:?}");
    let charged_once = if names[0] == "Committed" { m("50") } else { m("140") };
    assert_eq!(available(&engine, t.c).await, charged_once);
    assert_eq!(refusal(engine.purchase_batch(OP, Vec::new())).await, "InvalidParameter");
    let too_many = (0..8190).map(|index| request(&format!("x{index}"), t.c, "0.01")).collect();
    assert_eq!(refusal(engine.purchase_batch(OP, too_many)).await, "BatchTooLarge");
    let full = (0..8189).map(|index| request(&format!("y{index}"), t.cs, "0.01")).collect();
    let results = engine.purchase_batch(OP, full).await.unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(available(&engine, t.cs).await, m("8.11"));
    assert_books_balance(&engine).await;
}

/// One case for every rejection the engine gives (PurchaseInProgress needs a request
/// arriving in the middle of a saga: the coordinator's table covers it).
async fn every_rejection_has_a_case(kind: RuntimeKind) {
    let (engine, clock) =
        engine_with(kind, EngineConfig { open_reservations_max: 2, ..EngineConfig::default() });
    let t = tree(&engine).await;
    engine.set_suspension(OP, t.cs, true).await.unwrap();
    let mut seen = BTreeSet::new();
    let mut case = |name: &'static str, got: &'static str| {
        assert_eq!(got, name);
        seen.insert(name);
    };
    case("UnknownUin", refusal(engine.purchase(OP, request("a", Uin(404), "1"))).await);
    case("UnknownPurchase", refusal(engine.commit(OP, pid("never"))).await);
    case("WrongKind", refusal(engine.purchase(OP, request("b", t.r, "1"))).await);
    case(
        "UinTaken",
        refusal(engine.create_partner(
            OP,
            PartnerKind::Reseller,
            NewPartner { uin: Some(t.c), ..NewPartner::default() },
        ))
        .await,
    );
    case("NotAuthorized", refusal(engine.purchase(Caller::Uin(t.cs), request("c", t.c, "1"))).await);
    case("OperatorOnly", refusal(engine.grant_credit(Caller::Uin(t.d), t.d, m("1"))).await);
    case("InvalidAmount", refusal(engine.purchase(OP, request("d", t.c, "-1"))).await);
    case("InvalidParameter", refusal(engine.query_credit_allocation_history(OP, t.c, 1, 0)).await);
    let too_many = (0..8190).map(|index| request(&format!("e{index}"), t.c, "1")).collect();
    case("BatchTooLarge", refusal(engine.purchase_batch(OP, too_many)).await);
    engine.purchase(OP, request("f", t.c, "1")).await.unwrap();
    case("PurchaseIdConflict", refusal(engine.purchase(OP, request("f", t.c, "2"))).await);
    case("NotAReservation", refusal(engine.commit(OP, pid("f"))).await);
    engine.reserve(OP, request("g", t.c, "1"), Some(1000)).await.unwrap();
    engine.commit(OP, pid("g")).await.unwrap();
    case("AlreadyCommitted", refusal(engine.cancel(OP, pid("g"))).await);
    engine.reserve(OP, request("h", t.c, "1"), Some(1000)).await.unwrap();
    engine.cancel(OP, pid("h")).await.unwrap();
    case("AlreadyCancelled", refusal(engine.commit(OP, pid("h"))).await);
    engine.reserve(OP, request("i", t.c, "1"), Some(1000)).await.unwrap();
    clock.advance_ms(1000);
    case("ReservationExpired", refusal(engine.commit(OP, pid("i"))).await);
    // Two partitions of one open reservation each: fill both.
    let mut open = 0;
    let mut index = 0;
    let refused = loop {
        let result = engine.reserve(OP, request(&format!("j{index}"), t.c, "0.01"), None).await;
        index += 1;
        match result {
            Ok(_) => open += 1,
            Err(error) => break refusal_of::<()>(Err(error)),
        }
        assert!(index < 100, "the limit never applied");
    };
    assert!(open >= 1);
    case("TooManyOpenReservations", refused);
    case("Suspended", refusal(engine.purchase(OP, request("k", t.cs, "1"))).await);
    case("InsufficientCustomerCredit", refusal(engine.purchase(OP, request("l", t.c, "1000"))).await);
    engine.grant_credit(OP, t.r, m("-450")).await.unwrap();
    case("InsufficientPartnerCredit", refusal(engine.purchase(OP, request("n", t.c, "100"))).await);
    case("OverAllocable", refusal(engine.allocate_customer_credit(OP, t.c, m("1"), None)).await);
    case("OverRepossessable", refusal(engine.allocate_customer_credit(OP, t.c, m("-1000"), None)).await);
    // ForceQN admits 2 a second per caller: the third at one instant is over quota.
    engine.set_suspension(Caller::Uin(t.r), t.c, false).await.unwrap();
    engine.set_suspension(Caller::Uin(t.r), t.c, false).await.unwrap();
    case("RateLimited", refusal(engine.set_suspension(Caller::Uin(t.r), t.c, false)).await);

    // Vouchers, frozen credit and bills (issue 8).
    case("UnknownVoucher", refusal(engine.withdraw_customer_voucher(OP, VoucherId(404))).await);
    case("UnknownResource", refusal(engine.terminate_postpaid(OP, "none")).await);
    engine.set_suspension(OP, t.cs, false).await.unwrap();
    engine.purchase(OP, request("bill", t.cs, "1")).await.unwrap();
    engine.activate_postpaid(OP, "res", t.cs, m("1"), None).await.unwrap();
    case("ResourceTaken", refusal(engine.activate_postpaid(OP, "res", t.cs, m("1"), None)).await);
    let voucher = |amount: &str| NewCustomerVoucher {
        customer: t.cs,
        amount: m(amount),
        scope: Scope::new(ProductScope::AllProducts, vec![], PaymentMode::AllPayment).unwrap(),
        effective: START,
        expire: START.plus_ms(1_000_000),
    };
    case("InsufficientVoucherQuota", refusal(engine.issue_customer_voucher(OP, voucher("1"))).await);
    engine.grant_voucher_quota(OP, t.s, m("1")).await.unwrap();
    let id = engine.issue_customer_voucher(OP, voucher("1")).await.unwrap();
    engine.withdraw_customer_voucher(OP, id).await.unwrap();
    case("VoucherUnavailable", refusal(engine.withdraw_customer_voucher(OP, id)).await);
    let codes = (0..51).map(|index| format!("p{index}").into()).collect();
    let too_many = Scope::new(ProductScope::SpecifyProducts, codes, PaymentMode::AllPayment).map(|_| ());
    case("InvalidParameter", too_many.unwrap_err().name());
    let month = Month::of(engine.now());
    case("BillNotFinal", refusal(engine.confirm_bill(OP, t.cs, month)).await);
    clock.set(engine.bill_final_from(month));
    engine.confirm_bill(OP, t.cs, month).await.unwrap();
    case("BillConfirmed", refusal(engine.confirm_bill(OP, t.cs, month)).await);
    case("NoBill", refusal(engine.confirm_bill(OP, t.cs, Month::parse("2025-12").unwrap())).await);
    let resources = (0..1000).map(|index| format!("r{index}"));
    for resource in resources {
        match engine.activate_postpaid(OP, &resource, t.cs, m("0.00000001"), None).await {
            Ok(_) => {}
            Err(error) => {
                case("TooMany", refusal_of::<()>(Err(error)));
                break;
            }
        }
    }
    let escrowed = EngineConfig { escrow_partners: vec![Uin(3)], ..EngineConfig::default() };
    // Escrow is the sharded runtime's (with more than one shard).
    let (escrow_engine, _) = engine_with(RuntimeKind::Sharded, escrowed);
    let e = tree(&escrow_engine).await;
    let partner_voucher = NewPartnerVoucher {
        partner: Some(e.r),
        kind: PartnerVoucherType::General,
        amount: m("1"),
        scope: Scope::new(ProductScope::AllProducts, vec![], PaymentMode::AllPayment).unwrap(),
        expire: START.plus_ms(1_000_000),
    };
    case("Unsupported", refusal(escrow_engine.apply_partner_voucher(OP, partner_voucher)).await);

    let mut expected: BTreeSet<&str> = Rejection::NAMES.into_iter().collect();
    expected.remove("PurchaseInProgress");
    assert_eq!(seen, expected);
}

async fn import_and_uin_assignment(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let spec = WorldSpec {
        distributors: 2,
        sub_agents_per_distributor: 3,
        resellers: 4,
        customers: 1000,
        ..WorldSpec::default()
    };
    let world = World::generate(&spec);
    assert_eq!(engine.import(OP, &world).await.unwrap(), 2 + 6 + 4 + 1000);
    assert_eq!(
        refusal(engine.import(OP, &world)).await,
        "UinTaken",
        "a second import of the same world is refused whole"
    );
    assert_eq!(engine.all_accounts().await.unwrap().len(), 1012);
    let mut broken = World::generate(&WorldSpec { seed: 2, ..spec });
    for customer in &mut broken.customers {
        customer.uin += 1_000_000;
    }
    broken.customers[5].parent = 42;
    assert_eq!(refusal(engine.import(OP, &broken)).await, "InvalidParameter");
    assert_eq!(engine.all_accounts().await.unwrap().len(), 1012, "nothing of a broken world is created");

    let customer = world.customers[0].clone();
    let receipt = engine.purchase(OP, request("w", Uin(customer.uin), "1")).await.unwrap();
    assert_eq!(
        receipt.charged.0 == customer.parent,
        customer.parent >= partner_credit::world::RESELLER_UIN_BASE
    );
    // UINs assigned by the engine never collide with imported ones.
    let fresh = engine.create_partner(OP, PartnerKind::Reseller, NewPartner::default()).await.unwrap();
    assert!(world.customers.iter().all(|entry| entry.uin != fresh.0));
    let view = engine.account(OP, fresh).await.unwrap();
    assert!(matches!(view.role, Role::Reseller { .. }));
    assert_books_balance(&engine).await;
}

/// Many concurrent creations of one UIN: exactly one wins, and the parent lists it once.
async fn concurrent_creation_of_one_uin(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    let engine = std::sync::Arc::new(engine);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let engine = engine.clone();
            let parent = t.r;
            tokio::spawn(async move {
                let customer = NewCustomer { uin: Some(Uin(500)), parent, name: None, email: None };
                engine.create_customer(OP, customer).await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(uin) => {
                assert_eq!(uin, Uin(500));
                created += 1;
            }
            Err(error) => assert_eq!(refusal_of::<()>(Err(error)), "UinTaken"),
        }
    }
    assert_eq!(created, 1);
    let direct = engine.query_direct_customers_credit(OP, t.r).await.unwrap();
    assert_eq!(direct.iter().filter(|row| row.uin == Uin(500)).count(), 1);
}
