//! The order of refusals, as `domain/rejection.rs` documents it: one row per pair of
//! conditions that can both hold, with the refusal that must win. Written against the
//! engine's public API and run on every runtime, like TigerBeetle's "errors by descending
//! precedence" tests.
//!
//! Every row holds both conditions at once (the comment says which); the first column names
//! the winner. Between rows the manual clock moves one second on, so that no row spends
//! another's rate-limit budget.

mod common;

use common::*;
use partner_credit::domain::voucher::{PaymentMode, ProductScope, Scope};
use partner_credit::domain::{Action, Month, Quota, QuotaTable, VoucherId};
use partner_credit::engine::{CustomerQuery, NewCustomer, NewCustomerVoucher, NewPartner, PartnerKind};
use partner_credit::{Caller, EngineConfig, Money, PurchaseRequest, RuntimeKind, Uin};

on_every_runtime!(refusals_follow_the_documented_precedence, the_rate_limit_comes_before_everything);

/// A second reseller R2 (credit line 20) with a customer C2 (10 allocated), beside the tree.
async fn second_reseller(engine: &partner_credit::Engine) -> (Uin, Uin) {
    let r2 = engine
        .create_partner(OP, PartnerKind::Reseller, NewPartner { uin: Some(Uin(30)), ..NewPartner::default() })
        .await
        .unwrap();
    let customer = NewCustomer { uin: Some(Uin(31)), parent: r2, name: Some("c2".into()), email: None };
    let c2 = engine.create_customer(OP, customer).await.unwrap();
    engine.grant_credit(OP, r2, m("20")).await.unwrap();
    engine.allocate_customer_credit(OP, c2, m("10"), None).await.unwrap();
    (r2, c2)
}

async fn refusals_follow_the_documented_precedence(kind: RuntimeKind) {
    let (engine, clock) = engine(kind);
    let t = tree(&engine).await;
    let (r2, c2) = second_reseller(&engine).await;
    let (by_r2, by_c2) = (Caller::Uin(r2), Caller::Uin(c2));
    let unknown = Uin(404);
    // State the rows refer to: a one-shot purchase "f" of C, a voucher of C, a postpaid
    // resource of C, and CS suspended.
    engine.purchase(OP, request("f", t.c, "1")).await.unwrap();
    engine.grant_voucher_quota(OP, t.r, m("10")).await.unwrap();
    let voucher = NewCustomerVoucher {
        customer: t.c,
        amount: m("5"),
        scope: Scope::new(ProductScope::AllProducts, vec![], PaymentMode::AllPayment).unwrap(),
        effective: START,
        expire: START.plus_ms(1_000_000_000),
    };
    let voucher_of_c = engine.issue_customer_voucher(OP, voucher.clone()).await.unwrap();
    engine.activate_postpaid(OP, "res-c", t.c, m("1"), None).await.unwrap();
    engine.set_suspension(OP, t.cs, true).await.unwrap();
    let month = Month::of(engine.now());
    let page = CustomerQuery::default();

    let row = |winner: &'static str, got: &'static str, what: &str| {
        assert_eq!(got, winner, "{what}");
        clock.advance_ms(1000);
    };

    // 2. What the request alone decides comes before any state.
    row(
        "OperatorOnly",
        refusal(engine.grant_credit(Caller::Uin(t.r), unknown, m("1"))).await,
        "operator-only; unknown UIN",
    );
    row(
        "OperatorOnly",
        refusal(engine.grant_credit(Caller::Uin(t.r), t.r, m("0"))).await,
        "operator-only; zero change",
    );
    row(
        "InvalidAmount",
        refusal(engine.purchase(OP, request("a1", unknown, "0"))).await,
        "zero amount; unknown UIN",
    );
    row(
        "InvalidAmount",
        refusal(engine.purchase(by_c2, request("a2", t.c, "-1"))).await,
        "negative amount; another's customer",
    );
    row(
        "InvalidAmount",
        refusal(engine.allocate_customer_credit(by_r2, t.c, m("0"), None)).await,
        "zero allocation; not the customer's partner",
    );
    row(
        "InvalidParameter",
        refusal(engine.query_credit_allocation_history(OP, unknown, 0, 10)).await,
        "page 0; unknown UIN",
    );
    row(
        "InvalidParameter",
        refusal(engine.reserve(OP, request("a3", t.r, "1"), Some(0))).await,
        "zero timeout; not a customer",
    );
    let oversized: Vec<PurchaseRequest> =
        (0..8190).map(|index| request(&format!("b{index}"), t.c, "0")).collect();
    row(
        "BatchTooLarge",
        refusal(engine.purchase_batch(OP, oversized)).await,
        "too many purchases; zero amounts",
    );

    // 3. Existence comes before the kind and authorization.
    let taken = NewCustomer { uin: Some(t.c), parent: unknown, name: Some("x".into()), email: None };
    row("UinTaken", refusal(engine.create_customer(OP, taken)).await, "UIN taken; unknown parent");
    row(
        "UnknownUin",
        refusal(engine.describe_customer_info(OP, &[t.r, unknown])).await,
        "one UIN of the wrong kind; another unknown",
    );
    row(
        "UnknownUin",
        refusal(engine.allocate_customer_credit(by_r2, unknown, m("1"), None)).await,
        "unknown UIN; a caller that is not its partner",
    );
    row("UnknownPurchase", refusal(engine.commit(by_c2, pid("never"))).await, "unknown purchase; any caller");
    row(
        "UnknownVoucher",
        refusal(engine.withdraw_customer_voucher(by_r2, VoucherId(9_999))).await,
        "unknown voucher; any caller",
    );
    row(
        "UnknownResource",
        refusal(engine.terminate_postpaid(by_r2, "none")).await,
        "unknown resource; any caller",
    );

    // 4. The kind comes before authorization.
    row(
        "WrongKind",
        refusal(engine.set_suspension(by_r2, t.r, true)).await,
        "ForceQN on a reseller; a stranger",
    );
    row(
        "WrongKind",
        refusal(engine.allocate_customer_credit(by_r2, t.s, m("1"), None)).await,
        "allocation to a second-level reseller as a customer; not its partner",
    );
    row(
        "WrongKind",
        refusal(engine.query_customers_credit(by_c2, t.c, &page)).await,
        "a customer's customers; asked by another customer",
    );
    row(
        "WrongKind",
        refusal(engine.query_partner_credit(by_c2, t.c)).await,
        "a customer's partner credit; asked by another customer",
    );
    row(
        "WrongKind",
        refusal(engine.query_voucher_amount_by_uin(by_r2, &[t.r])).await,
        "a reseller's vouchers as a customer's; not its partner",
    );
    row(
        "WrongKind",
        refusal(engine.activate_postpaid(by_r2, "res-r", t.r, m("1"), None)).await,
        "postpaid on a reseller; a stranger",
    );
    row(
        "WrongKind",
        refusal(engine.confirm_bill(by_r2, t.r, month)).await,
        "a reseller's bill as a customer's; a stranger",
    );

    // 5. Authorization comes before the state and amounts.
    row(
        "NotAuthorized",
        refusal(engine.confirm_bill(by_r2, t.c, month)).await,
        "another's customer; bill not final",
    );
    row(
        "NotAuthorized",
        refusal(engine.activate_postpaid(by_r2, "res-c", t.c, m("1"), None)).await,
        "another's customer; resource id taken",
    );
    row(
        "NotAuthorized",
        refusal(engine.allocate_customer_credit(by_r2, t.c, m("-1000"), None)).await,
        "another's customer; more than it has",
    );
    row(
        "NotAuthorized",
        refusal(engine.issue_customer_voucher(by_r2, voucher.clone())).await,
        "another's customer; no voucher quota of its own",
    );

    // 6. The state comes before amounts against credit.
    row(
        "Suspended",
        refusal(engine.purchase(OP, request("s1", t.cs, "1000"))).await,
        "suspended; not enough credit",
    );
    row(
        "InsufficientCustomerCredit",
        refusal(engine.purchase(OP, request("s2", c2, "50"))).await,
        "neither the customer (10) nor its partner (20) covers 50: the customer is asked first",
    );

    // The purchase protocol: the coordinator decides before any account is read.
    row(
        "NotAuthorized",
        refusal(engine.purchase(by_c2, request("p1", unknown, "1"))).await,
        "another customer; unknown",
    );
    row(
        "NotAuthorized",
        refusal(engine.purchase(by_c2, request("p2", t.r, "1"))).await,
        "another customer; a reseller",
    );
    row(
        "NotAuthorized",
        refusal(engine.purchase(by_c2, request("f", t.c, "2"))).await,
        "another customer's purchase id, with other content",
    );
    row(
        "PurchaseIdConflict",
        refusal(engine.purchase(OP, request("f", unknown, "1"))).await,
        "a used id with other content; an unknown customer",
    );
    row(
        "PurchaseIdConflict",
        refusal(engine.purchase(OP, request("f", t.cs, "1"))).await,
        "a used id with other content; a suspended customer",
    );
    row(
        "NotAuthorized",
        refusal(engine.commit(by_c2, pid("f"))).await,
        "another customer's purchase; not a reservation",
    );
    row("NotAReservation", refusal(engine.commit(OP, pid("f"))).await, "the operator: not a reservation");

    // Ids named alone: a caller that may not act on them is told they do not exist.
    row(
        "UnknownVoucher",
        refusal(engine.withdraw_customer_voucher(by_r2, voucher_of_c)).await,
        "another partner's customer's voucher",
    );
    row(
        "UnknownResource",
        refusal(engine.terminate_postpaid(by_r2, "res-c")).await,
        "another partner's customer's resource",
    );
    assert_books_balance(&engine).await;
}

async fn the_rate_limit_comes_before_everything(kind: RuntimeKind) {
    let quotas =
        QuotaTable::documented().with([(Action::CreatePurchase, Some(Quota::per_second(1).unwrap()))]);
    let (engine, _clock) = engine_with(kind, EngineConfig { quotas, ..EngineConfig::default() });
    let t = tree(&engine).await;
    let customer = Caller::Uin(t.c);
    engine.purchase(customer, request("first", t.c, "1")).await.unwrap();
    // The clock does not move: the budget of one a second is spent.
    for (what, request) in [
        ("a zero amount", request("z", t.c, "0")),
        ("an unknown customer", request("u", Uin(404), "1")),
        ("another customer", request("o", t.cs, "1")),
        ("a repeat with other content", request("first", t.c, "2")),
        ("more than the credit", PurchaseRequest::new(pid("big"), t.c, Money::from_units(1_000_000))),
    ] {
        assert_eq!(refusal(engine.purchase(customer, request)).await, "RateLimited", "{what}");
    }
    // Every refusal above changed nothing: one purchase of 1 on each side.
    assert_eq!(available(&engine, t.c).await, m("199"));
    assert_books_balance(&engine).await;
}
