//! Regressions a review of the credit rules (issue 8) found: refused voucher-pool commands
//! that created state, a warning for a purchase the partner refused, a cancelled
//! TerminatePostpaid that left its resource id stuck, approve and invalidate of a trial
//! voucher racing into a live customer voucher, and a customer created during a
//! trial-priority switch keeping the old value.
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
use partner_credit::{Caller, EngineConfig, RuntimeKind, Timestamp, Uin};

const DAY_MS: i64 = 86_400_000;

fn all_products() -> Scope {
    Scope::new(ProductScope::AllProducts, vec![], PaymentMode::AllPayment).unwrap()
}

#[test]
fn refused_grant_voucher_quota_changes_nothing() {
    let mut account = Account::new(Uin(5), Role::Reseller { credit: PartnerCredit::default() }, Timestamp(0));
    let before = account.clone();
    let reply = account.handle(GrantVoucherQuota { delta: m("-1") });
    assert!(reply.is_err(), "{reply:?}");
    assert_eq!(account, before, "a refused GrantVoucherQuota changed the account");
}

#[test]
fn refused_draw_voucher_quota_changes_nothing() {
    let mut account = Account::new(Uin(5), Role::Reseller { credit: PartnerCredit::default() }, Timestamp(0));
    let before = account.clone();
    let reply = account.handle(DrawVoucherQuota { quota: m("1") });
    assert!(reply.is_err(), "{reply:?}");
    assert_eq!(account, before, "a refused DrawVoucherQuota changed the account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_refusal_publishes_no_warning() {
    for kind in [RuntimeKind::Sharded, RuntimeKind::Actix] {
        let (engine, _clock) = engine(kind);
        let t = tree(&engine).await;
        let mut events = engine.subscribe(100);
        engine.grant_credit(OP, t.r, m("-450")).await.unwrap();
        let refused = refusal(engine.purchase(OP, request("x", t.c, "160"))).await;
        assert_eq!(refused, "InsufficientPartnerCredit");
        let event = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
        if let Ok(Some(Event::CreditWarning(warning))) = event {
            panic!("{kind:?}: a refused purchase published {warning:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_terminate_leaks_the_resource_id() {
    let (engine, _clock) = engine(RuntimeKind::Sharded);
    let t = tree(&engine).await;
    engine.activate_postpaid(OP, "res-1", t.c, m("10"), None).await.unwrap();
    {
        let mut terminate = Box::pin(engine.terminate_postpaid(OP, "res-1"));
        let polled = futures::poll!(&mut terminate);
        assert!(polled.is_pending());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = engine.activate_postpaid(OP, "res-1", t.c, m("10"), None).await;
    let terminate = engine.terminate_postpaid(OP, "res-1").await;
    assert!(
        again.is_ok() || terminate.is_ok(),
        "res-1 is stuck: activate {again:?}, terminate {terminate:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_invalidate_race_leaves_live_trial_voucher() {
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
        // Either may be refused (approving an invalidated voucher, invalidating twice is
        // not possible here); what matters is the end state.
        let _ = approve.await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trial_switch_races_customer_creation() {
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
