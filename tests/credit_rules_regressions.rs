//! Regressions a review of the credit rules (issue 8) found: refused voucher-pool commands
//! that created state, a warning for a purchase the partner refused, a cancelled
//! TerminatePostpaid that left its resource id stuck, approve and invalidate of a trial
//! voucher racing into a live customer voucher, and a customer created during a
//! trial-priority switch keeping the old value. Each test is named for the behaviour that now
//! holds and says in one line which bug it guards against.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use partner_credit::domain::account::{DrawVoucherQuota, GrantVoucherQuota};
use partner_credit::domain::voucher::{PaymentMode, ProductScope, Scope, VoucherKind};
use partner_credit::domain::QuotaTable;
use partner_credit::domain::{Account, PartnerCredit, Role};
use partner_credit::engine::{NewCustomer, NewPartnerVoucher, PartnerVoucherType};
use partner_credit::events::Event;
use partner_credit::{Caller, EngineConfig, Rejection, RuntimeKind, Timestamp, Uin};

const DAY_MS: i64 = 86_400_000;

fn all_products() -> Scope {
    Scope::new(ProductScope::AllProducts, vec![], PaymentMode::AllPayment).unwrap()
}

/// The refusal of drawing or taking back 1 from a voucher pool that holds nothing.
fn empty_pool(uin: Uin) -> Rejection {
    Rejection::InsufficientVoucherQuota { uin, remaining: m("0"), asked: m("1") }
}

// Guards against: a refused GrantVoucherQuota created the reseller's voucher pool.
#[test]
fn refused_grant_voucher_quota_changes_nothing() {
    let mut account = Account::new(Uin(5), Role::Reseller { credit: PartnerCredit::default() }, Timestamp(0));
    let before = account.clone();
    let reply = account.handle(GrantVoucherQuota { delta: m("-1") });
    assert_eq!(reply.unwrap_err(), empty_pool(Uin(5)));
    assert_eq!(account, before, "a refused GrantVoucherQuota changed the account");
}

// Guards against: a refused DrawVoucherQuota created the reseller's voucher pool.
#[test]
fn refused_draw_voucher_quota_changes_nothing() {
    let mut account = Account::new(Uin(5), Role::Reseller { credit: PartnerCredit::default() }, Timestamp(0));
    let before = account.clone();
    let reply = account.handle(DrawVoucherQuota { quota: m("1") });
    assert_eq!(reply.unwrap_err(), empty_pool(Uin(5)));
    assert_eq!(account, before, "a refused DrawVoucherQuota changed the account");
}

// Guards against: a purchase the partner refused published the customer's credit warning,
// as if the customer had spent the amount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_the_partner_refuses_publishes_no_warning() {
    for kind in [RuntimeKind::Sharded, RuntimeKind::Actix] {
        let (engine, _clock) = engine(kind);
        let t = tree(&engine).await;
        let mut events = engine.subscribe(100);
        // R has 50 left: a purchase of 160 by C (200 available) is the partner's to refuse.
        // Had it counted, C would have crossed 25% with 40 left.
        engine.grant_credit(OP, t.r, m("-450")).await.unwrap();
        let refused = refusal(engine.purchase(OP, request("x", t.c, "160"))).await;
        assert_eq!(refused, "InsufficientPartnerCredit");
        // Then a purchase that does cross: its warning must be the first event, since a
        // warning of the refused purchase would have been published before the refusal.
        engine.grant_credit(OP, t.r, m("450")).await.unwrap();
        engine.purchase(OP, request("y", t.c, "185")).await.unwrap();
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv()).await;
        match event {
            Ok(Some(Event::CreditWarning(warning))) => assert_eq!(
                (warning.customer, warning.available),
                (t.c, m("15")),
                "{kind:?}: the first warning is not the committed purchase's: {warning:?}"
            ),
            other => panic!("{kind:?}: expected the committed purchase's warning, got {other:?}"),
        }
    }
}

// Guards against: a TerminatePostpaid whose caller stopped waiting left its resource id
// taken for good, so the resource could be neither activated again nor terminated.
// On one thread, so that the termination's task cannot finish before the caller's first
// poll: the caller then gives up with the termination certainly in progress.
#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_terminate_releases_the_resource_id() {
    let (engine, _clock) = engine(RuntimeKind::Sharded);
    let t = tree(&engine).await;
    engine.activate_postpaid(OP, "res-1", t.c, m("10"), None).await.unwrap();
    {
        let mut terminate = Box::pin(engine.terminate_postpaid(OP, "res-1"));
        let polled = futures::poll!(&mut terminate);
        assert!(polled.is_pending());
    } // The caller gives up.
      // The termination runs to its end: res-1 is free again. Until then an activation is
      // refused (ResourceTaken) and changes nothing, so trying it is the observation.
    eventually("res-1 to be released", || async {
        match engine.activate_postpaid(OP, "res-1", t.c, m("10"), None).await {
            Ok(_) => true,
            Err(refused) => {
                assert_eq!(refusal_of::<()>(Err(refused)), "ResourceTaken");
                false
            }
        }
    })
    .await;
    // The new activation is a live one: terminating it gives the 10 back.
    assert_eq!(engine.terminate_postpaid(OP, "res-1").await.unwrap(), (t.c, m("200")));
    assert_books_balance(&engine).await;
}

// Guards against: approving a ProductTrial partner voucher while its partner invalidated
// it left the trial customer voucher live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_approve_and_invalidate_leave_no_live_trial_voucher() {
    let (engine, _clock) = engine_with(
        RuntimeKind::Sharded,
        EngineConfig { quotas: QuotaTable::unlimited(), ..Default::default() },
    );
    let engine = Arc::new(engine);
    let t = tree(&engine).await;
    for _ in 0..200 {
        let voucher = NewPartnerVoucher {
            partner: None,
            kind: PartnerVoucherType::ProductTrial { customer: t.c },
            amount: m("1"),
            scope: all_products(),
            expire: START.plus_ms(30 * DAY_MS),
        };
        let id = engine.apply_partner_voucher(Caller::Uin(t.r), voucher).await.unwrap();
        let (a, b) = (engine.clone(), engine.clone());
        let r = t.r;
        let approve = tokio::spawn(async move { a.approve_partner_voucher(OP, id).await });
        let invalidate = tokio::spawn(async move { b.invalidate_partner_voucher(Caller::Uin(r), id).await });
        // Approving may be refused, when the invalidation came first; the invalidation is
        // never refused. What matters is the end state.
        match approve.await.unwrap() {
            Ok(_) => {}
            Err(refused) => assert_eq!(refusal_of::<()>(Err(refused)), "VoucherUnavailable"),
        }
        invalidate.await.unwrap().unwrap();
    }
    let details = engine.account_details(OP, t.c).await.unwrap();
    let live: Vec<_> = details
        .vouchers
        .iter()
        .filter(|voucher| matches!(voucher.kind, VoucherKind::CustomerTrial { .. }) && !voucher.invalidated)
        .map(|voucher| voucher.id)
        .collect();
    assert!(
        live.is_empty(),
        "{} trial customer vouchers live after their partner voucher was invalidated: {live:?}",
        live.len()
    );
}

// Guards against: a customer created while its partner switched trial-voucher priority
// copied the value from before the switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_created_during_a_trial_switch_gets_the_new_value() {
    let (engine, _clock) = engine_with(
        RuntimeKind::Sharded,
        EngineConfig { quotas: QuotaTable::unlimited(), ..Default::default() },
    );
    let engine = Arc::new(engine);
    let t = tree(&engine).await;
    let mut stale = 0;
    for i in 0..150u64 {
        engine.set_trial_voucher_priority(Caller::Uin(t.r), None, true).await.unwrap();
        let (a, b) = (engine.clone(), engine.clone());
        let r = t.r;
        let create = tokio::spawn(async move {
            a.create_customer(
                OP,
                NewCustomer { uin: Some(Uin(10_000 + i)), parent: r, name: None, email: None },
            )
            .await
        });
        let switch =
            tokio::spawn(async move { b.set_trial_voucher_priority(Caller::Uin(r), None, false).await });
        let uin = create.await.unwrap().unwrap();
        switch.await.unwrap().unwrap();
        let details = engine.account_details(OP, uin).await.unwrap();
        if details.trial_first {
            stale += 1;
        }
    }
    assert_eq!(stale, 0, "customers created during a switch kept the old value");
}
