//! The credit rules of issue 8 through the engine's API, on every runtime: vouchers, frozen
//! credit, bill confirmation and credit warnings. Time is a manual clock.

mod common;

use common::*;
use partner_credit::coordinator::{Charges, PurchaseRequest};
use partner_credit::domain::voucher::{PayMode, PaymentMode, ProductScope, Scope, VoucherStatus};
use partner_credit::domain::warning::{Threshold, WarningLevel};
use partner_credit::domain::{Month, Timestamp, VoucherId};
use partner_credit::engine::{NewCustomerVoucher, NewPartnerVoucher, PartnerVoucherType, VoucherFilter};
use partner_credit::events::{Event, Subscription, TryRecvError};
use partner_credit::{Caller, Engine, EngineConfig, Money, RuntimeKind, Uin};

on_every_runtime!(
    customer_vouchers_deduct_before_credit,
    deductions_come_back_on_cancel_and_expiry,
    partner_vouchers_and_trial_priority,
    trial_priority_switch,
    fully_covered_purchases_need_no_credit,
    withdraw_and_invalidate,
    voucher_refusals_change_nothing,
    frozen_credit,
    bill_confirmation,
    warnings_cross_once_and_rearm,
    custom_warning_thresholds,
);

const DAY_MS: i64 = 86_400_000;

fn all_products() -> Scope {
    Scope::new(ProductScope::AllProducts, vec![], PaymentMode::AllPayment).unwrap()
}

fn only(products: ProductScope, codes: &[&str], payment: PaymentMode) -> Scope {
    Scope::new(products, codes.iter().map(|code| (*code).into()).collect(), payment).unwrap()
}

fn buying(id: &str, customer: Uin, amount: &str, product: &str) -> PurchaseRequest {
    PurchaseRequest { product_code: Some(product.into()), ..request(id, customer, amount) }
}

fn charges(customer_deduction: &str, partner_deduction: &str, amount: &str) -> Charges {
    Charges {
        customer_deduction: m(customer_deduction),
        partner_deduction: m(partner_deduction),
        customer_charge: m(amount) - m(customer_deduction),
        partner_charge: m(amount) - m(partner_deduction),
    }
}

/// Issues a customer voucher from R's pool to C, valid from `START` for `days`.
async fn issue(engine: &Engine, t: &Tree, amount: &str, scope: Scope, days: i64) -> VoucherId {
    let voucher = NewCustomerVoucher {
        customer: t.c,
        amount: m(amount),
        scope,
        effective: START,
        expire: START.plus_ms(days * DAY_MS),
    };
    engine.issue_customer_voucher(Caller::Uin(t.r), voucher).await.unwrap()
}

/// R applies for a partner voucher valid for `days`, and the operator approves it.
async fn partner_voucher(
    engine: &Engine,
    t: &Tree,
    kind: PartnerVoucherType,
    amount: &str,
    days: i64,
) -> (VoucherId, Option<VoucherId>) {
    let voucher = NewPartnerVoucher {
        partner: None,
        kind,
        amount: m(amount),
        scope: all_products(),
        expire: START.plus_ms(days * DAY_MS),
    };
    let id = engine.apply_partner_voucher(Caller::Uin(t.r), voucher).await.unwrap();
    engine.approve_partner_voucher(OP, id).await.unwrap()
}

/// (remaining, held, status) of one voucher of `owner`.
async fn voucher(engine: &Engine, owner: Uin, id: VoucherId) -> (Money, Money, VoucherStatus) {
    let details = engine.account_details(OP, owner).await.unwrap();
    let voucher = details.vouchers.iter().find(|voucher| voucher.id == id).expect("the voucher exists");
    (voucher.remaining, voucher.held, voucher.status(engine.now()))
}

async fn customer_vouchers_deduct_before_credit(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    engine.grant_voucher_quota(OP, t.r, m("100")).await.unwrap();
    let general = issue(&engine, &t, "5", all_products(), 30).await;
    let cvm =
        issue(&engine, &t, "3", only(ProductScope::SpecifyProducts, &["cvm"], PaymentMode::Prepaid), 10)
            .await;
    let pool = engine.query_voucher_pool(Caller::Uin(t.r), t.r).await.unwrap().pool;
    assert_eq!(
        (pool.total, pool.issued, pool.issued_count, pool.remaining()),
        (m("100"), m("8"), 2, m("92"))
    );

    // Out of the second voucher's scope: only the general one deducts.
    let receipt = engine.purchase(OP, buying("a", t.c, "1.25", "cos")).await.unwrap();
    assert_eq!(receipt.charges(), charges("1.25", "0", "1.25"));
    assert_eq!(available(&engine, t.c).await, m("200"));
    assert_eq!(available(&engine, t.r).await, m("498.75"), "the partner is charged the whole amount");

    // Earliest expiry first: the cvm voucher (3), then the general one (3.75 left).
    let receipt = engine.purchase(OP, buying("b", t.c, "10", "cvm")).await.unwrap();
    assert_eq!(receipt.charges(), charges("6.75", "0", "10"));
    assert_eq!((receipt.customer_available, receipt.partner_available), (m("196.75"), m("488.75")));
    assert_eq!(voucher(&engine, t.c, cvm).await, (m("0"), m("0"), VoucherStatus::Used));
    assert_eq!(voucher(&engine, t.c, general).await, (m("0"), m("0"), VoucherStatus::Used));

    // A postpaid purchase is outside the cvm voucher's payment mode.
    engine.grant_voucher_quota(OP, t.r, m("-1")).await.unwrap();
    let prepaid_only =
        issue(&engine, &t, "2", only(ProductScope::SpecifyProducts, &["cvm"], PaymentMode::Prepaid), 10)
            .await;
    let postpaid = PurchaseRequest { pay: PayMode::Postpaid, ..buying("c", t.c, "1", "cvm") };
    assert_eq!(engine.purchase(OP, postpaid).await.unwrap().charges(), charges("0", "0", "1"));
    assert_eq!(voucher(&engine, t.c, prepaid_only).await.0, m("2"));

    // Usage details record each deduction.
    let usage = engine
        .voucher_usage(
            Caller::Uin(t.r),
            partner_credit::Action::DescribeCustomerVoucherUsageDetails,
            t.c,
            general,
            None,
            1,
            10,
        )
        .await
        .unwrap();
    let amounts: Vec<(String, Money)> =
        usage.records.iter().map(|record| (record.purchase.to_string(), record.amount)).collect();
    assert_eq!(amounts, vec![("b".to_string(), m("3.75")), ("a".to_string(), m("1.25"))]);
    let quota = engine.query_customer_billing_quota(Caller::Uin(t.c), t.c).await.unwrap();
    assert_eq!(quota.remaining_voucher, m("2"));
    assert_books_balance(&engine).await;
}

async fn deductions_come_back_on_cancel_and_expiry(kind: RuntimeKind) {
    let (engine, clock) = engine(kind);
    let t = tree(&engine).await;
    engine.grant_voucher_quota(OP, t.r, m("10")).await.unwrap();
    let id = issue(&engine, &t, "4", all_products(), 30).await;

    let reservation = engine.reserve(OP, buying("r1", t.c, "10", "cvm"), Some(1_000)).await.unwrap();
    assert_eq!(reservation.charges(), charges("4", "0", "10"));
    assert_eq!(voucher(&engine, t.c, id).await, (m("0"), m("4"), VoucherStatus::Issued));
    assert_eq!(available(&engine, t.c).await, m("194"));
    assert_books_balance(&engine).await;
    engine.cancel(OP, pid("r1")).await.unwrap();
    assert_eq!(voucher(&engine, t.c, id).await, (m("4"), m("0"), VoucherStatus::Issued));
    assert_eq!(available(&engine, t.c).await, m("200"));

    engine.reserve(OP, buying("r2", t.c, "3", "cvm"), Some(1_000)).await.unwrap();
    clock.advance_ms(1_000);
    assert_eq!(engine.expire_due().await.unwrap(), 1);
    assert_eq!(voucher(&engine, t.c, id).await, (m("4"), m("0"), VoucherStatus::Issued));

    engine.reserve(OP, buying("r3", t.c, "1", "cvm"), Some(1_000)).await.unwrap();
    engine.commit(OP, pid("r3")).await.unwrap();
    assert_eq!(voucher(&engine, t.c, id).await, (m("3"), m("0"), VoucherStatus::Issued));
    assert_eq!(available(&engine, t.c).await, m("200"), "fully covered: no credit used");
    assert_eq!(available(&engine, t.r).await, m("499"));
    assert_books_balance(&engine).await;
}

async fn partner_vouchers_and_trial_priority(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    let (general, _) = partner_voucher(&engine, &t, PartnerVoucherType::General, "4", 10).await;
    let (trial, associated) =
        partner_voucher(&engine, &t, PartnerVoucherType::ProductTrial { customer: t.c }, "6", 30).await;
    let associated = associated.expect("a trial voucher issues a customer voucher");
    assert_eq!(voucher(&engine, t.c, associated).await, (m("6"), m("0"), VoucherStatus::Issued));

    // Trial first on both sides (despite the general voucher's earlier expiry).
    let receipt = engine.purchase(OP, buying("a", t.c, "8", "cvm")).await.unwrap();
    assert_eq!(receipt.charges(), charges("6", "8", "8"));
    assert_eq!(voucher(&engine, t.r, trial).await.0, m("0"));
    assert_eq!(voucher(&engine, t.r, general).await.0, m("2"));
    assert_eq!(available(&engine, t.c).await, m("198"));
    assert_eq!(available(&engine, t.r).await, m("500"), "the partner's vouchers covered its cost");

    // The trial voucher is for C only: a purchase of another customer of R gets the general one.
    let other = engine
        .create_customer(
            OP,
            partner_credit::engine::NewCustomer { uin: Some(Uin(20)), parent: t.r, name: None, email: None },
        )
        .await
        .unwrap();
    engine.allocate_customer_credit(Caller::Uin(t.r), other, m("10"), None).await.unwrap();
    let receipt = engine.purchase(OP, buying("b", other, "5", "cvm")).await.unwrap();
    assert_eq!(receipt.charges(), charges("0", "2", "5"));
    assert_books_balance(&engine).await;

    // Pending vouchers deduct nothing; a distributor's customer is not R's to designate.
    let pending = NewPartnerVoucher {
        partner: None,
        kind: PartnerVoucherType::General,
        amount: m("50"),
        scope: all_products(),
        expire: START.plus_ms(DAY_MS),
    };
    let pending = engine.apply_partner_voucher(Caller::Uin(t.r), pending).await.unwrap();
    assert_eq!(voucher(&engine, t.r, pending).await.2, VoucherStatus::PendingApproval);
    assert_eq!(
        engine.purchase(OP, buying("c", other, "1", "cvm")).await.unwrap().charges(),
        charges("0", "0", "1")
    );
    let foreign = NewPartnerVoucher {
        partner: None,
        kind: PartnerVoucherType::ProductTrial { customer: t.cs },
        amount: m("1"),
        scope: all_products(),
        expire: START.plus_ms(DAY_MS),
    };
    assert_eq!(refusal(engine.apply_partner_voucher(Caller::Uin(t.r), foreign)).await, "InvalidParameter");
    assert_eq!(refusal(engine.approve_partner_voucher(Caller::Uin(t.r), pending)).await, "OperatorOnly");
    engine.approve_partner_voucher(OP, pending).await.unwrap();
    assert_eq!(refusal(engine.approve_partner_voucher(OP, pending)).await, "VoucherUnavailable");
    assert_books_balance(&engine).await;
}

async fn trial_priority_switch(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    // The general voucher expires first: with the switch off it deducts first.
    let (general, _) = partner_voucher(&engine, &t, PartnerVoucherType::General, "4", 10).await;
    let (trial, associated) =
        partner_voucher(&engine, &t, PartnerVoucherType::ProductTrial { customer: t.c }, "6", 30).await;
    engine.grant_voucher_quota(OP, t.r, m("5")).await.unwrap();
    let offer = issue(&engine, &t, "5", all_products(), 5).await;
    assert_eq!(refusal(engine.set_trial_voucher_priority(Caller::Uin(t.c), None, false)).await, "WrongKind");
    engine.set_trial_voucher_priority(Caller::Uin(t.r), None, false).await.unwrap();

    let receipt = engine.purchase(OP, buying("a", t.c, "5", "cvm")).await.unwrap();
    assert_eq!(receipt.charges(), charges("5", "5", "5"));
    assert_eq!(voucher(&engine, t.c, offer).await.0, m("0"), "the offer expires first");
    assert_eq!(voucher(&engine, t.c, associated.unwrap()).await.0, m("6"));
    assert_eq!(voucher(&engine, t.r, general).await.0, m("0"));
    assert_eq!(voucher(&engine, t.r, trial).await.0, m("5"));

    // Customers created afterwards inherit the switch.
    engine.set_trial_voucher_priority(Caller::Uin(t.r), None, true).await.unwrap();
    let details = engine.account_details(OP, t.c).await.unwrap();
    assert!(details.trial_first);
    assert_books_balance(&engine).await;
}

async fn fully_covered_purchases_need_no_credit(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    engine.allocate_customer_credit(Caller::Uin(t.r), t.c, m("-200"), None).await.unwrap();
    assert_eq!(
        refusal(engine.purchase(OP, buying("a", t.c, "1", "cvm"))).await,
        "InsufficientCustomerCredit"
    );
    engine.grant_voucher_quota(OP, t.r, m("10")).await.unwrap();
    issue(&engine, &t, "10", all_products(), 30).await;
    let receipt = engine.purchase(OP, buying("b", t.c, "7.5", "cvm")).await.unwrap();
    assert_eq!(receipt.charges(), charges("7.5", "0", "7.5"));
    assert_eq!(receipt.customer_available, m("0"));
    // More than the vouchers cover needs credit for the rest.
    let refused = refusal(engine.purchase(OP, buying("c", t.c, "2.5000001", "cvm"))).await;
    assert_eq!(refused, "InsufficientCustomerCredit");
    engine.purchase(OP, buying("d", t.c, "2.5", "cvm")).await.unwrap();
    // A suspended customer is refused even when vouchers would cover it.
    engine.set_suspension(OP, t.c, true).await.unwrap();
    assert_eq!(refusal(engine.purchase(OP, buying("e", t.c, "0.5", "cvm"))).await, "Suspended");
    assert_books_balance(&engine).await;
}

async fn withdraw_and_invalidate(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    engine.grant_voucher_quota(OP, t.r, m("10")).await.unwrap();
    let offer = issue(&engine, &t, "5", all_products(), 30).await;
    engine.purchase(OP, buying("a", t.c, "2", "cvm")).await.unwrap();
    // Refused as unknown: the id must not reveal its owner.
    assert_eq!(refusal(engine.withdraw_customer_voucher(Caller::Uin(t.c), offer)).await, "UnknownVoucher");
    engine.withdraw_customer_voucher(Caller::Uin(t.r), offer).await.unwrap();
    assert_eq!(voucher(&engine, t.c, offer).await, (m("3"), m("0"), VoucherStatus::Invalidated));
    assert_eq!(
        refusal(engine.withdraw_customer_voucher(Caller::Uin(t.r), offer)).await,
        "VoucherUnavailable"
    );
    assert_eq!(
        engine.purchase(OP, buying("b", t.c, "1", "cvm")).await.unwrap().charges(),
        charges("0", "0", "1")
    );

    let (trial, associated) =
        partner_voucher(&engine, &t, PartnerVoucherType::ProductTrial { customer: t.c }, "6", 30).await;
    let associated = associated.unwrap();
    let refused = refusal(engine.withdraw_customer_voucher(Caller::Uin(t.r), associated)).await;
    assert_eq!(refused, "VoucherUnavailable", "a trial customer voucher goes with its partner voucher");
    engine.purchase(OP, buying("c", t.c, "1", "cvm")).await.unwrap();
    assert_eq!(refusal(engine.invalidate_partner_voucher(Caller::Uin(t.c), trial)).await, "UnknownVoucher");
    engine.invalidate_partner_voucher(Caller::Uin(t.r), trial).await.unwrap();
    assert_eq!(voucher(&engine, t.r, trial).await, (m("5"), m("0"), VoucherStatus::Invalidated));
    assert_eq!(voucher(&engine, t.c, associated).await, (m("5"), m("0"), VoucherStatus::Invalidated));
    assert_eq!(
        engine.purchase(OP, buying("d", t.c, "1", "cvm")).await.unwrap().charges(),
        charges("0", "0", "1")
    );
    assert_eq!(refusal(engine.withdraw_customer_voucher(OP, VoucherId(999))).await, "UnknownVoucher");
    assert_books_balance(&engine).await;
}

async fn voucher_refusals_change_nothing(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    let new = |amount: &str| NewCustomerVoucher {
        customer: t.c,
        amount: m(amount),
        scope: all_products(),
        effective: START,
        expire: START.plus_ms(DAY_MS),
    };
    let by_r = Caller::Uin(t.r);
    assert_eq!(refusal(engine.issue_customer_voucher(by_r, new("1"))).await, "InsufficientVoucherQuota");
    engine.grant_voucher_quota(OP, t.r, m("10")).await.unwrap();
    assert_eq!(refusal(engine.issue_customer_voucher(by_r, new("10.01"))).await, "InsufficientVoucherQuota");
    assert_eq!(refusal(engine.issue_customer_voucher(by_r, new("-1"))).await, "InvalidAmount");
    assert_eq!(refusal(engine.issue_customer_voucher(by_r, new("1000001"))).await, "InvalidAmount");
    assert_eq!(refusal(engine.issue_customer_voucher(Caller::Uin(t.d), new("1"))).await, "NotAuthorized");
    assert_eq!(refusal(engine.issue_customer_voucher(Caller::Uin(t.c), new("1"))).await, "NotAuthorized");
    let backwards = NewCustomerVoucher { expire: START, effective: START.plus_ms(1), ..new("1") };
    assert_eq!(refusal(engine.issue_customer_voucher(by_r, backwards)).await, "InvalidParameter");
    assert_eq!(refusal(engine.grant_voucher_quota(by_r, t.r, m("1"))).await, "OperatorOnly");
    assert_eq!(refusal(engine.grant_voucher_quota(OP, t.r, m("-10.01"))).await, "InsufficientVoucherQuota");
    assert_eq!(refusal(engine.grant_voucher_quota(OP, t.c, m("1"))).await, "WrongKind");
    let pool = engine.query_voucher_pool(by_r, t.r).await.unwrap().pool;
    assert_eq!((pool.total, pool.issued, pool.issued_count), (m("10"), m("0"), 0));
    let page = engine.describe_customer_voucher_list(by_r, &VoucherFilter::default(), 1, 10).await.unwrap();
    assert_eq!(page.total, 0);
    assert_eq!(
        refusal(engine.describe_customer_voucher_list(by_r, &VoucherFilter::default(), 1, 101)).await,
        "InvalidParameter"
    );
    let listed = VoucherFilter { customer: Some(t.cs), ..VoucherFilter::default() };
    assert_eq!(refusal(engine.describe_customer_voucher_list(by_r, &listed, 1, 10)).await, "NotAuthorized");
    // The distributor lists the vouchers of its second-level reseller's customers.
    engine.describe_customer_voucher_list(Caller::Uin(t.d), &listed, 1, 10).await.unwrap();
    assert_books_balance(&engine).await;
}

async fn frozen_credit(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    let frozen =
        engine.activate_postpaid(Caller::Uin(t.c), "ins-1", t.c, m("100"), Some("0.5".parse().unwrap()));
    assert_eq!(frozen.await.unwrap(), m("50"));
    let quota = engine.query_customer_billing_quota(OP, t.c).await.unwrap();
    assert_eq!((quota.remaining, quota.postpay_frozen), (m("150"), m("50")));
    assert_eq!(refusal(engine.purchase(OP, request("a", t.c, "150.01"))).await, "InsufficientCustomerCredit");
    // The default coefficient (1) freezes the whole amount; rounding is up to 8 decimals.
    assert_eq!(engine.activate_postpaid(OP, "ins-2", t.c, m("10"), None).await.unwrap(), m("10"));
    let third = "0.33333333".parse().unwrap();
    assert_eq!(
        engine.activate_postpaid(OP, "ins-3", t.c, m("0.1"), Some(third)).await.unwrap(),
        m("0.03333334")
    );
    assert_eq!(
        refusal(engine.activate_postpaid(OP, "ins-1", t.c, m("1"), None)).await,
        "ResourceTaken",
        "a resource id is active once"
    );
    assert_eq!(
        refusal(engine.activate_postpaid(OP, "ins-4", t.c, m("200"), None)).await,
        "InsufficientCustomerCredit"
    );
    assert_eq!(
        refusal(engine.activate_postpaid(OP, "ins-4", t.c, m("1"), Some(2.into()))).await,
        "InvalidParameter"
    );
    assert_eq!(refusal(engine.activate_postpaid(OP, "", t.c, m("1"), None)).await, "InvalidParameter");
    assert_eq!(
        refusal(engine.activate_postpaid(Caller::Uin(t.d), "ins-5", t.c, m("1"), None)).await,
        "NotAuthorized"
    );
    assert_eq!(refusal(engine.activate_postpaid(OP, "ins-6", t.r, m("1"), None)).await, "WrongKind");
    assert_eq!(available(&engine, t.c).await, m("139.96666666"));

    assert_eq!(refusal(engine.terminate_postpaid(Caller::Uin(t.cs), "ins-1")).await, "UnknownResource");
    let (customer, after) = engine.terminate_postpaid(Caller::Uin(t.r), "ins-1").await.unwrap();
    assert_eq!((customer, after), (t.c, m("189.96666666")));
    assert_eq!(refusal(engine.terminate_postpaid(OP, "ins-1")).await, "UnknownResource");
    // A terminated id can be activated again.
    engine.activate_postpaid(OP, "ins-1", t.c, m("1"), None).await.unwrap();
    assert_books_balance(&engine).await;
}

async fn bill_confirmation(kind: RuntimeKind) {
    let config = EngineConfig { reservation_timeout_ms_max: 600_000, ..EngineConfig::default() };
    let (engine, clock) = engine_with(kind, config);
    let t = tree(&engine).await;
    let january = Month::parse("2026-01").unwrap();
    let february = Month::parse("2026-02").unwrap();
    engine.purchase(OP, request("a", t.c, "12.5")).await.unwrap();
    engine.purchase(OP, request("b", t.cs, "3")).await.unwrap();
    // Reserved in January, committed in February: booked to January.
    clock.set(february.start().plus_ms(-1_000));
    engine.reserve(OP, request("c", t.c, "7.25"), Some(600_000)).await.unwrap();
    assert_eq!(refusal(engine.confirm_bill(Caller::Uin(t.r), t.c, january)).await, "BillNotFinal");
    clock.set(february.start());
    engine.commit(OP, pid("c")).await.unwrap();
    engine.purchase(OP, request("d", t.c, "1")).await.unwrap();
    assert_eq!(engine.bill_final_from(january), Timestamp(february.start().as_ms() + 600_000 + 60_000));
    clock.set(engine.bill_final_from(january).plus_ms(-1));
    assert_eq!(refusal(engine.confirm_bill(Caller::Uin(t.r), t.c, january)).await, "BillNotFinal");
    clock.set(engine.bill_final_from(january));
    assert_eq!(available(&engine, t.c).await, m("179.25"));

    assert_eq!(refusal(engine.confirm_bill(Caller::Uin(t.c), t.c, january)).await, "NotAuthorized");
    assert_eq!(refusal(engine.confirm_bill(Caller::Uin(t.r), t.cs, january)).await, "NotAuthorized");
    assert_eq!(engine.confirm_bill(Caller::Uin(t.r), t.c, january).await.unwrap(), m("19.75"));
    assert_eq!(available(&engine, t.c).await, m("199"));
    assert_eq!(refusal(engine.confirm_bill(Caller::Uin(t.r), t.c, january)).await, "BillConfirmed");
    assert_eq!(
        refusal(engine.confirm_bill(Caller::Uin(t.r), t.c, Month::parse("2025-12").unwrap())).await,
        "NoBill"
    );
    assert_eq!(refusal(engine.confirm_bill(Caller::Uin(t.r), t.r, january)).await, "WrongKind");
    let open = engine.account_details(OP, t.c).await.unwrap().open_bills;
    assert_eq!(open, vec![(february, m("1"))]);
    assert_books_balance(&engine).await;

    // The partners' bills: R was charged 19.75 in January, D 3 (for CS).
    assert_eq!(refusal(engine.settle_partner_bill(Caller::Uin(t.r), t.r, january)).await, "OperatorOnly");
    assert_eq!(engine.settle_partner_bill(OP, t.r, january).await.unwrap(), m("19.75"));
    assert_eq!(engine.settle_partner_bill(OP, t.d, january).await.unwrap(), m("3"));
    assert_eq!(available(&engine, t.r).await, m("499"));
    assert_eq!(refusal(engine.settle_partner_bill(OP, t.c, january)).await, "WrongKind");
    assert_eq!(refusal(engine.settle_partner_bill(OP, t.r, february)).await, "BillNotFinal");
    assert_books_balance(&engine).await;
}

/// The next warning queued, or `None` if there is none. Nothing to wait for: the runtime
/// publishes a command's warnings as the account handles it, and an engine call answers only
/// once its account commands are handled, so the warnings of every call that has returned
/// are already queued.
fn next_warning(events: &mut Subscription) -> Option<(Uin, Uin, WarningLevel, Money)> {
    match events.try_recv() {
        Ok(Event::CreditWarning(warning)) => {
            Some((warning.customer, warning.partner, warning.level, warning.available))
        }
        Err(TryRecvError::Empty) => None,
        other => panic!("expected a credit warning or none, got {other:?}"),
    }
}

async fn warnings_cross_once_and_rearm(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let mut events = engine.subscribe(100);
    let t = tree(&engine).await;
    assert_eq!(next_warning(&mut events), None, "allocations from zero cross nothing");
    engine.purchase(OP, request("a", t.c, "140")).await.unwrap();
    assert_eq!(next_warning(&mut events), None, "60 of 200 is above 25%");
    engine.purchase(OP, request("b", t.c, "10.01")).await.unwrap();
    assert_eq!(next_warning(&mut events), Some((t.c, t.r, WarningLevel::Remaining25, m("49.99"))));
    engine.purchase(OP, request("c", t.c, "1")).await.unwrap();
    assert_eq!(next_warning(&mut events), None, "once per crossing");
    // One purchase crosses 10% and 0% at once.
    engine.purchase(OP, request("d", t.c, "48.99")).await.unwrap();
    assert_eq!(next_warning(&mut events), Some((t.c, t.r, WarningLevel::Remaining10, m("0"))));
    assert_eq!(next_warning(&mut events), Some((t.c, t.r, WarningLevel::Remaining0, m("0"))));
    // Credit back above every level re-arms them; a refused purchase warns nothing.
    engine.allocate_customer_credit(Caller::Uin(t.r), t.c, m("300"), None).await.unwrap();
    assert_eq!(refusal(engine.purchase(OP, request("e", t.c, "300.01"))).await, "InsufficientCustomerCredit");
    assert_eq!(next_warning(&mut events), None);
    engine.purchase(OP, request("f", t.c, "250")).await.unwrap();
    assert_eq!(next_warning(&mut events), Some((t.c, t.r, WarningLevel::Remaining25, m("50"))));
    // A customer of a second-level reseller warns its parent, not the distributor charged.
    engine.purchase(OP, request("g", t.cs, "91")).await.unwrap();
    assert_eq!(next_warning(&mut events), Some((t.cs, t.s, WarningLevel::Remaining25, m("9"))));
    assert_eq!(next_warning(&mut events), Some((t.cs, t.s, WarningLevel::Remaining10, m("9"))));
    assert_eq!(next_warning(&mut events), None);
}

async fn custom_warning_thresholds(kind: RuntimeKind) {
    let (engine, _clock) = engine(kind);
    let t = tree(&engine).await;
    let mut events = engine.subscribe(100);
    let by_partner = Threshold::amount(m("150")).unwrap();
    let own = Threshold::percent("60".parse().unwrap()).unwrap();
    engine.set_credit_warning(Caller::Uin(t.r), t.c, Some(by_partner)).await.unwrap();
    engine.set_credit_warning(Caller::Uin(t.c), t.c, Some(own)).await.unwrap();
    assert_eq!(refusal(engine.set_credit_warning(Caller::Uin(t.s), t.c, None)).await, "NotAuthorized");
    assert_eq!(next_warning(&mut events), None);
    engine.purchase(OP, request("a", t.c, "50.01")).await.unwrap();
    assert_eq!(next_warning(&mut events), Some((t.c, t.r, WarningLevel::PartnerCustom, m("149.99"))));
    engine.purchase(OP, request("b", t.c, "30")).await.unwrap();
    assert_eq!(next_warning(&mut events), Some((t.c, t.r, WarningLevel::CustomerCustom, m("119.99"))));
    // Removing the customer's own threshold; the partner's stays crossed.
    engine.set_credit_warning(Caller::Uin(t.c), t.c, None).await.unwrap();
    engine.purchase(OP, request("c", t.c, "1")).await.unwrap();
    assert_eq!(next_warning(&mut events), None);
    let details = engine.account_details(Caller::Uin(t.c), t.c).await.unwrap();
    assert_eq!((details.partner_threshold, details.own_threshold), (Some(by_partner), None));
}
