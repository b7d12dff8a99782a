//! Regressions from a review of the engine core, each a bug that was real:
//! - an allocation or a creation whose caller stopped waiting was left half done (credit
//!   taken from one side and never given, a parent listing a child never created);
//! - a refused, unauthorized purchase claimed the purchase id for the retention window;
//! - a failed import registered accounts others could use before rolling them back.

mod common;

use common::*;
use partner_credit::engine::{CustomerQuery, NewCustomer};
use partner_credit::{Caller, RuntimeKind, Uin};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_repossession_loses_credit() {
    let (engine, _clock) = engine(RuntimeKind::Actix);
    let t = tree(&engine).await;
    assert_books_balance(&engine).await;
    {
        let mut fut = Box::pin(engine.allocate_customer_credit(Caller::Uin(t.r), t.c, m("-50"), None));
        let first = futures::poll!(&mut fut); // sends OpenAllocation
        tokio::time::sleep(Duration::from_millis(100)).await; // receiver applies it
        println!("first poll: {first:?}");
    } // caller gives up (timeout / client disconnect): ReturnAllocable never sent
    let audit = engine.audit().await.unwrap();
    println!("violations: {:?}", audit.violations);
    println!(
        "C: {:?}\nR: {:?}",
        engine.account(OP, t.c).await.unwrap().role,
        engine.account(OP, t.r).await.unwrap().role
    );
    assert!(audit.ok(), "books broken: {:?}", audit.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_allocation_loses_credit() {
    let (engine, _clock) = engine(RuntimeKind::Actix);
    let t = tree(&engine).await;
    {
        let mut fut = Box::pin(engine.allocate_customer_credit(Caller::Uin(t.r), t.c, m("50"), None));
        // A future that is done must not be polled again; on a fast machine the allocation
        // may finish at either poll, and then there is nothing left to abandon.
        let done = futures::poll!(&mut fut).is_ready(); // OpenAllocation
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !done {
            let _ = futures::poll!(&mut fut); // TakeAllocable
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    } // CloseAllocation never sent (unless it finished)
    let audit = engine.audit().await.unwrap();
    assert!(audit.ok(), "books broken: {:?}", audit.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_creation_leaves_phantom_child() {
    let (engine, _clock) = engine(RuntimeKind::Actix);
    let t = tree(&engine).await;
    let new = |parent| NewCustomer { uin: Some(Uin(77)), parent, name: None, email: None };
    {
        let mut fut = Box::pin(engine.create_customer(OP, new(t.r)));
        let _ = futures::poll!(&mut fut); // AdoptChild at R
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The creation ran to its end although its caller stopped waiting.
    let q = engine.query_partner_credit(Caller::Uin(t.r), t.r).await;
    assert!(q.is_ok(), "{q:?}");
    assert_eq!(refusal(engine.create_customer(OP, new(t.s))).await, "UinTaken");
    let (n, rows) =
        engine.query_customers_credit(Caller::Uin(t.r), t.r, &CustomerQuery::default()).await.unwrap();
    assert_eq!(n, 2, "C and 77");
    assert!(rows.iter().all(|v| v.parent() == Some(t.r)), "R sees only its own customers");
    let (n, _) =
        engine.query_customers_credit(Caller::Uin(t.s), t.s, &CustomerQuery::default()).await.unwrap();
    assert_eq!(n, 1, "S sees only CS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_request_poisons_purchase_id() {
    let (engine, _clock) = engine(RuntimeKind::Actix);
    let t = tree(&engine).await;
    // CS tries to buy on C's account: refused, as it should be.
    assert_eq!(
        refusal(engine.purchase(Caller::Uin(t.cs), request("order-1", t.c, "5"))).await,
        "NotAuthorized"
    );
    // C's own, legitimate purchase with that id is now refused for 10 minutes.
    let mine = engine.purchase(Caller::Uin(t.c), request("order-1", t.c, "5")).await;
    println!("C's purchase: {mine:?}");
    assert!(mine.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn import_rollback_races_with_purchase() {
    use partner_credit::world::{CustomerEntry, PartnerEntry};
    use partner_credit::World;
    use rust_decimal::Decimal;
    use std::sync::Arc;
    let (engine, _clock) = engine(RuntimeKind::Actix);
    let engine = Arc::new(engine);
    let t = tree(&engine).await;
    let n = 600_000u64;
    let z = 1001 + 2 * (n - 1);
    let mut customers =
        vec![CustomerEntry { uin: 1002, parent: 1000, name: None, credit: Decimal::from(100) }];
    for i in 0..n {
        customers.push(CustomerEntry {
            uin: 1001 + 2 * i,
            parent: 1000,
            name: None,
            credit: Decimal::from(1),
        });
    }
    let world = World {
        resellers: vec![PartnerEntry { uin: 1000, name: None, credit: Decimal::from(1_000_000) }],
        customers,
        ..World::default()
    };
    let e = engine.clone();
    let import = tokio::spawn(async move { e.import(OP, &world).await });
    // Wait until worker 0's accounts (even UINs) are registered.
    while engine.account(OP, Uin(1002)).await.is_err() {
        tokio::task::yield_now().await;
    }
    let e = engine.clone();
    let r = t.r;
    let creator = tokio::spawn(async move {
        e.create_customer(OP, NewCustomer { uin: Some(Uin(z)), parent: r, name: None, email: None }).await
    });
    let reserved = engine.reserve(OP, request("in-window", Uin(1002), "10"), None).await;
    println!("reserve on world customer: {reserved:?}");
    println!("create Z: {:?}", creator.await.unwrap());
    println!("import: {:?}", import.await.unwrap());
    println!("1002 exists after import: {:?}", engine.account(OP, Uin(1002)).await.map(|v| v.uin));
    let committed = engine.commit(OP, pid("in-window")).await;
    println!("commit: {committed:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("a later purchase on C: {:?}", engine.purchase(OP, request("later", t.c, "1")).await);
    println!("reserve later: {:?}", engine.reserve(OP, request("in-window2", t.c, "1"), None).await);
}
