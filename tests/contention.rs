//! Contention: 10,000 concurrent one-shot purchases against the customers of one reseller
//! whose available credit covers exactly N of them. Exactly N succeed, every other is refused
//! for insufficient partner credit, and the books balance.

mod common;

use std::sync::Arc;

use common::*;
use partner_credit::engine::{NewCustomer, NewPartner, PartnerKind};
use partner_credit::{Caller, EngineConfig, QuotaTable, RuntimeKind, Uin};

const PURCHASES: usize = 10_000;
const CUSTOMERS: u64 = 100;
/// The reseller's available credit covers this many purchases of 1.00.
const COVERED: usize = 3_217;

async fn hot_reseller(kind: RuntimeKind) {
    // The set-up allocates to every customer at one instant: no quotas here.
    let (engine, _clock) =
        engine_with(kind, EngineConfig { quotas: QuotaTable::unlimited(), ..Default::default() });
    let engine = Arc::new(engine);
    let reseller = NewPartner { uin: Some(Uin(7)), ..NewPartner::default() };
    let reseller = engine.create_partner(OP, PartnerKind::Reseller, reseller).await.unwrap();
    // Customers hold far more than the reseller can pay for, so only the partner refuses.
    let per_customer = m("1000");
    engine.grant_credit(OP, reseller, m(&(CUSTOMERS * 1000).to_string())).await.unwrap();
    for index in 0..CUSTOMERS {
        let customer =
            NewCustomer { uin: Some(Uin(1000 + index)), parent: reseller, name: None, email: None };
        let uin = engine.create_customer(OP, customer).await.unwrap();
        engine.allocate_customer_credit(Caller::Uin(reseller), uin, per_customer, None).await.unwrap();
    }
    // Reduce the reseller's line so that its available credit covers exactly COVERED; its
    // allocable credit goes negative, which stops allocations but not purchases.
    let reduction = (CUSTOMERS * 1000) as usize - COVERED;
    engine.grant_credit(OP, reseller, m(&format!("-{reduction}"))).await.unwrap();
    assert_eq!(available(&engine, reseller).await, m(&COVERED.to_string()));

    let tasks: Vec<_> = (0..PURCHASES)
        .map(|index| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let customer = Uin(1000 + (index as u64 % CUSTOMERS));
                engine.purchase(OP, request(&format!("hot-{index}"), customer, "1.00")).await
            })
        })
        .collect();
    let (committed, refused) = committed_and_refused_for_partner_credit(tasks).await;
    assert_eq!(committed, COVERED);
    assert_eq!(refused, PURCHASES - COVERED);
    assert_eq!(available(&engine, reseller).await, m("0"));
    let audit = engine.audit().await.unwrap();
    assert!(audit.ok(), "{:?}", audit.violations);
    assert_eq!(audit.partner_used, m(&COVERED.to_string()));
    assert_eq!(audit.customer_used, m(&COVERED.to_string()));
    assert!(audit.customer_reserved.is_zero() && audit.partner_reserved.is_zero());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reseller_actix() {
    hot_reseller(RuntimeKind::Actix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reseller_sharded() {
    hot_reseller(RuntimeKind::Sharded).await;
}
