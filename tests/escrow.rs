//! Escrow on the sharded runtime: a hot partner's available credit split into per-shard
//! slices. Refusals come only when the partner's whole available credit cannot cover a
//! purchase; the last cent is spent exactly once; the books balance.

mod common;

use std::sync::Arc;

use common::*;
use partner_credit::engine::{NewCustomer, NewPartner, PartnerKind};
use partner_credit::{Caller, Engine, EngineConfig, ManualClock, Money, RuntimeKind, Uin};

const RESELLER: Uin = Uin(7);
const CUSTOMERS: u64 = 200;

/// A hot reseller whose available credit is exactly `available`, with customers holding far
/// more, on a sharded engine with `shards` shards.
async fn hot_reseller(shards: usize, available: &str) -> (Arc<Engine>, ManualClock) {
    let config = EngineConfig { escrow_partners: vec![RESELLER], ..EngineConfig::default() };
    let (engine, clock) = engine_with(RuntimeKind::Sharded, EngineConfig { workers: shards, ..config });
    let engine = Arc::new(engine);
    let reseller = NewPartner { uin: Some(RESELLER), ..NewPartner::default() };
    engine.create_partner(OP, PartnerKind::Reseller, reseller).await.unwrap();
    engine.grant_credit(OP, RESELLER, m(&(CUSTOMERS * 100).to_string())).await.unwrap();
    for index in 0..CUSTOMERS {
        let customer =
            NewCustomer { uin: Some(Uin(1000 + index)), parent: RESELLER, name: None, email: None };
        let uin = engine.create_customer(OP, customer).await.unwrap();
        engine.allocate_customer_credit(Caller::Uin(RESELLER), uin, m("100"), None).await.unwrap();
    }
    let reduction = m(&(CUSTOMERS * 100).to_string()) - m(available);
    engine.grant_credit(OP, RESELLER, -reduction).await.unwrap();
    assert_eq!(super_available(&engine).await, m(available));
    (engine, clock)
}

async fn super_available(engine: &Engine) -> Money {
    available(engine, RESELLER).await
}

/// Runs `count` concurrent one-shot purchases of `amount`; answers (committed, refused).
async fn spend(
    engine: &Arc<Engine>,
    count: usize,
    amount: &'static str,
    tag: &'static str,
) -> (usize, usize) {
    let tasks: Vec<_> = (0..count)
        .map(|index| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let customer = Uin(1000 + (index as u64 * 7919) % CUSTOMERS);
                engine.purchase(OP, request(&format!("{tag}-{index}"), customer, amount)).await
            })
        })
        .collect();
    let (committed, refused) = committed_and_refused_for_partner_credit(tasks).await;
    (committed, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_cent_is_spent_exactly_once() {
    for shards in [2, 3, 4] {
        let (engine, _clock) = hot_reseller(shards, "1.00").await;
        let (committed, refused) = spend(&engine, 1000, "0.01", "cent").await;
        assert_eq!((committed, refused), (100, 900), "{shards} shards");
        assert_eq!(super_available(&engine).await, m("0"));
        assert_books_balance(&engine).await;
        let audit = engine.audit().await.unwrap();
        assert_eq!((audit.customer_used, audit.partner_used), (m("1"), m("1")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_only_when_the_whole_available_credit_cannot_cover() {
    let (engine, _clock) = hot_reseller(2, "10.00").await;
    let (committed, _) = spend(&engine, 300, "0.37", "odd").await;
    // 27 x 0.37 = 9.99: a 28th would need 0.36 more than the partner has.
    assert_eq!(committed, 27);
    assert_eq!(super_available(&engine).await, m("0.01"));
    // The remaining cent is still spendable, from whichever shard asks.
    let (committed, refused) = spend(&engine, 10, "0.01", "rest").await;
    assert_eq!((committed, refused), (1, 9));
    assert_books_balance(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_on_slices_commit_cancel_and_expire() {
    let (engine, clock) = hot_reseller(2, "50").await;
    for index in 0..40u64 {
        let customer = Uin(1000 + index % CUSTOMERS);
        engine.reserve(OP, request(&format!("r{index}"), customer, "1"), Some(1_000)).await.unwrap();
    }
    // Reserved amounts count as taken, wherever they were reserved.
    assert_eq!(super_available(&engine).await, m("10"));
    for index in 0..10 {
        engine.commit(OP, pid(&format!("r{index}"))).await.unwrap();
    }
    for index in 10..20 {
        engine.cancel(OP, pid(&format!("r{index}"))).await.unwrap();
    }
    clock.advance_ms(1_000);
    assert_eq!(engine.expire_due().await.unwrap(), 20);
    assert_eq!(super_available(&engine).await, m("40"));
    let view = engine.query_partner_credit(OP, RESELLER).await.unwrap();
    assert_eq!(view.remaining, m("40"));
    assert_books_balance(&engine).await;
    let audit = engine.audit().await.unwrap();
    assert_eq!((audit.partner_used, audit.partner_reserved), (m("10"), m("0")));
    // A credit-line reduction sees the credit held in slices.
    engine.grant_credit(OP, RESELLER, m("-40")).await.unwrap();
    assert_eq!(super_available(&engine).await, m("0"));
}
