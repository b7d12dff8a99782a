//! Regressions from a review of the engine core. Each test is named for the behaviour that
//! now holds and says in one line which bug it guards against:
//! - an allocation or a creation whose caller stopped waiting was left half done (credit
//!   taken from one side and never given, a parent listing a child never created);
//! - a refused, unauthorized purchase claimed the purchase id for the retention window;
//! - a failed import registered accounts others could use before rolling them back.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use partner_credit::domain::Role;
use partner_credit::engine::{CustomerQuery, NewCustomer};
use partner_credit::world::{CustomerEntry, PartnerEntry};
use partner_credit::{Caller, Engine, Money, RuntimeKind, Uin, World};
use rust_decimal::Decimal;

/// What partner `uin` has given to its customers.
async fn allocated(engine: &Engine, uin: Uin) -> Money {
    match engine.account(OP, uin).await.unwrap().role {
        Role::Reseller { credit } | Role::Distributor { credit } => credit.allocated,
        other => panic!("{uin} is not a reseller or distributor: {other:?}"),
    }
}

/// A customer's total credit: the sum of its allocations.
async fn total(engine: &Engine, uin: Uin) -> Money {
    engine.account(OP, uin).await.unwrap().total()
}

/// Waits until R has given C exactly `given` in all (both sides of the allocation applied),
/// then checks the books.
async fn wait_for_allocation(engine: &Engine, t: &Tree, given: &str) {
    eventually(&format!("R's allocation to C to reach {given} on both sides"), || async {
        allocated(engine, t.r).await == m(given) && total(engine, t.c).await == m(given)
    })
    .await;
    assert_books_balance(engine).await;
}

// Guards against: a repossession abandoned after its first step took 50 from C and never
// returned it to R.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_repossession_keeps_the_credit() {
    let (engine, _clock) = engine(RuntimeKind::Actix);
    let t = tree(&engine).await;
    assert_books_balance(&engine).await;
    {
        let mut repossession =
            Box::pin(engine.allocate_customer_credit(Caller::Uin(t.r), t.c, m("-50"), None));
        // The first poll sends the first step (OpenAllocation to C).
        let _ = futures::poll!(&mut repossession);
    } // The caller gives up (a timeout, a closed connection).
      // The repossession runs to its end: the 50 taken from C is R's again.
    wait_for_allocation(&engine, &t, "150").await;
}

// Guards against: an allocation abandoned after the giver gave (TakeAllocable) never
// credited the receiver (CloseAllocation), so 50 left R and never reached C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_allocation_reaches_the_customer() {
    let (engine, _clock) = engine(RuntimeKind::Actix);
    let t = tree(&engine).await;
    {
        let mut allocation = Box::pin(engine.allocate_customer_credit(Caller::Uin(t.r), t.c, m("50"), None));
        // Drive the allocation until R has given the 50, and abandon it there: the point at
        // which a half-done allocation would lose credit. A future that is done must not be
        // polled again; on a fast machine the allocation may finish at the first poll, and
        // then there is nothing left to abandon.
        let deadline = Instant::now() + Duration::from_secs(10);
        while futures::poll!(&mut allocation).is_pending() && allocated(&engine, t.r).await != m("250") {
            assert!(Instant::now() < deadline, "waited 10 s for R to give the 50");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    } // The caller gives up.
    wait_for_allocation(&engine, &t, "250").await;
}

// Guards against: a creation abandoned after its parent adopted the child left the parent
// listing a customer that was never registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_creation_still_creates_the_customer() {
    let (engine, _clock) = engine(RuntimeKind::Actix);
    let t = tree(&engine).await;
    let new = |parent| NewCustomer { uin: Some(Uin(77)), parent, name: None, email: None };
    {
        let mut creation = Box::pin(engine.create_customer(OP, new(t.r)));
        // The first poll sends AdoptChild to R.
        let _ = futures::poll!(&mut creation);
    } // The caller gives up.
      // The creation runs to its end although its caller stopped waiting.
    eventually("customer 77 to be registered", || async { engine.account(OP, Uin(77)).await.is_ok() }).await;
    assert_eq!(engine.account(OP, Uin(77)).await.unwrap().parent(), Some(t.r));
    assert_eq!(refusal(engine.create_customer(OP, new(t.s))).await, "UinTaken");
    let (n, rows) =
        engine.query_customers_credit(Caller::Uin(t.r), t.r, &CustomerQuery::default()).await.unwrap();
    assert_eq!(n, 2, "C and 77");
    assert!(rows.iter().all(|v| v.parent() == Some(t.r)), "R sees only its own customers");
    let (n, _) =
        engine.query_customers_credit(Caller::Uin(t.s), t.s, &CustomerQuery::default()).await.unwrap();
    assert_eq!(n, 1, "S sees only CS");
    assert_books_balance(&engine).await;
}

// Guards against: a purchase refused as unauthorized claimed its id, so the customer's own
// purchase with that id was refused for the retention window (10 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthorized_purchase_leaves_its_id_free() {
    let (engine, _clock) = engine(RuntimeKind::Actix);
    let t = tree(&engine).await;
    // CS tries to buy on C's account: refused, as it should be.
    assert_eq!(
        refusal(engine.purchase(Caller::Uin(t.cs), request("order-1", t.c, "5"))).await,
        "NotAuthorized"
    );
    // C's own purchase with that id goes through.
    let receipt = engine.purchase(Caller::Uin(t.c), request("order-1", t.c, "5")).await.unwrap();
    assert_eq!((receipt.charged, receipt.customer_available), (t.r, m("195")));
    assert_books_balance(&engine).await;
}

// Guards against: an import that failed half way (a racing creation took one of its UINs)
// had already registered some of its accounts, which a purchase could reserve on before the
// import rolled them back. Now every UIN is checked before any account is registered, and
// creations wait for an import under way, so the import is all or nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_racing_an_import_keeps_its_account() {
    let (engine, _clock) = engine(RuntimeKind::Actix);
    let engine = Arc::new(engine);
    let t = tree(&engine).await;
    // A world large enough that registering it takes a while: reseller 1000 and 600,001
    // customers. Even UINs land on worker 0, odd ones on worker 1; the last customer, Z, is
    // the UIN the racing creation asks for.
    let n = 600_000u64;
    let z = Uin(1001 + 2 * (n - 1));
    let mut customers =
        vec![CustomerEntry { uin: 1002, parent: 1000, name: None, credit: Decimal::from(100) }];
    customers.extend((0..n).map(|i| CustomerEntry {
        uin: 1001 + 2 * i,
        parent: 1000,
        name: None,
        credit: Decimal::from(1),
    }));
    let world = World {
        resellers: vec![PartnerEntry { uin: 1000, name: None, credit: Decimal::from(1_000_000) }],
        customers,
        ..World::default()
    };
    let accounts = world.len();
    let importer = engine.clone();
    let import = tokio::spawn(async move { importer.import(OP, &world).await });
    // Worker 0's accounts (1002 among them) are registered while worker 1's may not be yet:
    // the window in which the import used to be undone by a racing creation.
    eventually("customer 1002 to be registered", || async { engine.account(OP, Uin(1002)).await.is_ok() })
        .await;
    let creator = engine.clone();
    let r = t.r;
    let creation = tokio::spawn(async move {
        creator.create_customer(OP, NewCustomer { uin: Some(z), parent: r, name: None, email: None }).await
    });
    engine.reserve(OP, request("in-window", Uin(1002), "10"), None).await.unwrap();

    // The import had checked its UINs before registering any: it completes, and the
    // creation that asked for one of them is refused.
    assert_eq!(import.await.unwrap().unwrap(), accounts);
    assert_eq!(refusal_of(creation.await.unwrap()), "UinTaken");
    // Z is the import's customer, and R lists no phantom child.
    assert_eq!(engine.account(OP, z).await.unwrap().parent(), Some(Uin(1000)));
    let (customers_of_r, _) =
        engine.query_customers_credit(Caller::Uin(t.r), t.r, &CustomerQuery::default()).await.unwrap();
    assert_eq!(customers_of_r, 1, "R has only C");
    // The reservation made in the window commits on an account that stayed.
    engine.commit(OP, pid("in-window")).await.unwrap();
    assert_eq!(available(&engine, Uin(1002)).await, m("90"));
    assert_books_balance(&engine).await;
    // The rest of the engine is untouched.
    let receipt = engine.purchase(OP, request("later", t.c, "1")).await.unwrap();
    assert_eq!(receipt.customer_available, m("199"));
}
