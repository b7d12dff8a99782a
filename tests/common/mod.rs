//! Shared set-up for the integration tests: engines on every runtime with a manual clock, and
//! a small hierarchy built through the public API.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(feature = "http")]
pub mod http;

use partner_credit::engine::{NewCustomer, NewPartner, PartnerKind};
use partner_credit::{
    Caller, Engine, EngineConfig, Error, ManualClock, Money, PurchaseId, PurchaseRequest, RuntimeKind,
    Timestamp, Uin,
};

#[allow(unused_macros)]
macro_rules! on_every_runtime {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sharded() {
                    super::$name(partner_credit::RuntimeKind::Sharded).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn actix() {
                    super::$name(partner_credit::RuntimeKind::Actix).await;
                }
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use on_every_runtime;

pub const OP: Caller = Caller::Operator;
pub const START: Timestamp = Timestamp(1_767_225_600_000); // 2026-01-01T00:00:00Z

pub fn m(text: &str) -> Money {
    Money::parse(text).unwrap()
}

pub fn pid(text: &str) -> PurchaseId {
    PurchaseId::new(text).unwrap()
}

pub fn request(id: &str, customer: Uin, amount: &str) -> PurchaseRequest {
    PurchaseRequest::new(pid(id), customer, m(amount))
}

/// The name of the refusal a call ends with; panics on success or on a failure of the system.
pub async fn refusal<T: std::fmt::Debug>(
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> &'static str {
    refusal_of(call.await)
}

pub fn refusal_of<T: std::fmt::Debug>(result: Result<T, Error>) -> &'static str {
    match result {
        Err(Error::Rejected(rejection)) => rejection.name(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

pub fn engine(kind: RuntimeKind) -> (Engine, ManualClock) {
    engine_with(kind, EngineConfig::default())
}

pub fn engine_with(kind: RuntimeKind, config: EngineConfig) -> (Engine, ManualClock) {
    let clock = ManualClock::new(START);
    let config = EngineConfig { runtime: kind, workers: 2, ..config };
    (Engine::start_with_clock(config, Arc::new(clock.clone())), clock)
}

/// A distributor D with a second-level reseller S, a reseller R, a customer C of R and a
/// customer CS of S.
///
/// D: line 1000, pool of 300 given to S; S gives 100 to CS. R: line 500, gives 200 to C.
pub struct Tree {
    pub d: Uin,
    pub s: Uin,
    pub r: Uin,
    pub c: Uin,
    pub cs: Uin,
}

pub async fn tree(engine: &Engine) -> Tree {
    let partner = |uin| NewPartner { uin: Some(Uin(uin)), ..NewPartner::default() };
    let d = engine.create_partner(OP, PartnerKind::Distributor, partner(1)).await.unwrap();
    let s = engine
        .create_partner(OP, PartnerKind::SecondLevelReseller, NewPartner { parent: Some(d), ..partner(2) })
        .await
        .unwrap();
    let r = engine.create_partner(OP, PartnerKind::Reseller, partner(3)).await.unwrap();
    let customer = |uin, parent| NewCustomer {
        uin: Some(Uin(uin)),
        parent,
        name: Some(format!("customer-{uin}")),
        email: Some(format!("c{uin}@example.com")),
    };
    let c = engine.create_customer(OP, customer(10, r)).await.unwrap();
    let cs = engine.create_customer(OP, customer(11, s)).await.unwrap();
    engine.grant_credit(OP, d, m("1000")).await.unwrap();
    engine.grant_credit(OP, r, m("500")).await.unwrap();
    engine.allocate_credit_pool(Caller::Uin(d), s, m("300")).await.unwrap();
    engine.allocate_customer_credit(Caller::Uin(s), cs, m("100"), None).await.unwrap();
    engine.allocate_customer_credit(Caller::Uin(r), c, m("200"), Some("first".into())).await.unwrap();
    Tree { d, s, r, c, cs }
}

/// Available credit as the upstream `RemainingCredit` reads it.
pub async fn available(engine: &Engine, uin: Uin) -> Money {
    engine.account(OP, uin).await.unwrap().available()
}

pub async fn assert_books_balance(engine: &Engine) {
    let audit = engine.audit().await.unwrap();
    assert!(audit.ok(), "the books do not balance: {:#?}", audit.violations);
}

/// Waits until `condition` holds, checking every few milliseconds, and fails the test after
/// 10 s. For what a background task does on its own time: the test waits for the outcome it
/// can observe rather than for a guessed duration.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Awaits concurrent purchases; answers (committed, refused), where every refusal must be
/// for insufficient partner credit.
pub async fn committed_and_refused_for_partner_credit<T>(
    tasks: Vec<tokio::task::JoinHandle<Result<T, Error>>>,
) -> (usize, usize) {
    let (mut committed, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => committed += 1,
            Err(Error::Rejected(rejection)) => {
                assert_eq!(rejection.name(), "InsufficientPartnerCredit", "{rejection}");
                refused += 1;
            }
            Err(Error::Failed(failure)) => panic!("{failure}"),
        }
    }
    (committed, refused)
}

/// An engine on `dir` (two shards) at `clock`, recovering what the directory holds.
pub fn open(dir: &std::path::Path, clock: &ManualClock) -> Engine {
    let config = EngineConfig { data_dir: Some(dir.to_path_buf()), workers: 2, ..EngineConfig::default() };
    Engine::open_with_clock(config, Arc::new(clock.clone())).expect("the data directory opens")
}

/// Every account's state, and the books, as the operator sees them: two engines with the
/// same state give the same text.
pub async fn state(engine: &Engine) -> String {
    let mut accounts = engine.all_accounts().await.unwrap();
    accounts.sort_by_key(|account| account.uin);
    assert_books_balance(engine).await;
    format!("{accounts:#?}")
}
