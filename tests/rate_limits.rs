//! Per-action rate limits, per caller, under a manual clock: the documented table, the burst
//! rule, the T-second rule, the refill, independence of callers and actions, overrides, and
//! the sweep of idle budgets.

mod common;

use common::*;
use partner_credit::domain::{Action, Quota, QuotaTable, Rejection, DOCUMENTED_QUOTAS};
use partner_credit::{Caller, Engine, EngineConfig, ManualClock, RuntimeKind, Uin};

fn quota(n: u32) -> Option<Quota> {
    Some(Quota::per_second(n).unwrap())
}

fn with_quotas(quotas: QuotaTable) -> (Engine, ManualClock) {
    engine_with(RuntimeKind::Sharded, EngineConfig { quotas, ..EngineConfig::default() })
}

fn over_quota(action: Action, per_second: u32) -> Rejection {
    Rejection::RateLimited { action, per_second }
}

/// Asserts that `caller`'s next `action` is refused as over its quota of `per_second`.
#[track_caller]
fn assert_over_quota(engine: &Engine, caller: Caller, action: Action, per_second: u32) {
    assert_eq!(engine.admit(caller, action), Err(over_quota(action, per_second)), "{action} by {caller:?}");
}

#[test]
fn the_table_is_the_documented_one_entry_by_entry() {
    let fixture = include_str!("fixtures/documented_quotas.txt");
    let rows: Vec<(&str, u32)> = fixture
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (name, n) = line.split_once(' ').expect("`Action N`");
            (name, n.parse().expect("a number"))
        })
        .collect();
    assert_eq!(rows.len(), 42);
    assert_eq!(DOCUMENTED_QUOTAS.len(), rows.len());
    let table = QuotaTable::documented();
    for (index, (&(name, n), &(action, table_n))) in rows.iter().zip(DOCUMENTED_QUOTAS.iter()).enumerate() {
        assert_eq!((action.name(), table_n), (name, n), "row {index}");
        assert_eq!(Action::from_name(name), Some(action));
        assert_eq!(table.get(action), quota(n), "{name}");
    }
    // Nothing else has a quota by default: the engine's own actions and the upstream
    // actions the page does not list.
    assert_eq!(table.iter().count(), 42);
    assert_eq!(table.get(Action::CreatePurchase), None);
    assert_eq!(table.get(Action::CreatePartner), None);
}

#[tokio::test]
async fn burst_n_at_one_instant_then_refused() {
    let (engine, _clock) = engine(RuntimeKind::Sharded);
    let caller = Caller::Uin(Uin(42));
    for (action, n) in [
        (Action::AllocateCustomerCredit, 5),
        (Action::ForceQN, 2),
        (Action::CreateAndSendClientInvitationMail, 1),
        (Action::DescribeCustomerUin, 20),
        (Action::DescribeBillSummary, 1),
    ] {
        for call in 0..n {
            assert_eq!(engine.admit(caller, action), Ok(()), "{action} call {call}");
        }
        let refused = engine.admit(caller, action).unwrap_err();
        assert_eq!(refused, over_quota(action, n));
        assert_eq!(
            refused.to_string(),
            format!("rate limit exceeded: {action} admits {n} requests per second per caller")
        );
    }
}

#[tokio::test]
async fn refusals_use_nothing() {
    let (engine, clock) = engine(RuntimeKind::Sharded);
    let caller = Caller::Uin(Uin(43));
    let action = Action::ForceQN; // 2 a second: one back every 500 ms
    for _ in 0..2 {
        engine.admit(caller, action).unwrap();
    }
    for _ in 0..100 {
        assert_over_quota(&engine, caller, action, 2);
    }
    // Had the refusals used budget, nothing would be back after 500 ms.
    clock.advance_ms(500);
    assert_eq!(engine.admit(caller, action), Ok(()));
    assert_over_quota(&engine, caller, action, 2);
}

#[tokio::test]
async fn quotas_that_do_not_divide_a_second_admit_no_more_than_n() {
    // 1 s / 300,000 is 3333.33 ns: the interval is rounded up, never down.
    let quotas = QuotaTable::documented().with([(Action::CreatePurchase, quota(300_000))]);
    let (engine, clock) = with_quotas(quotas);
    let caller = Caller::Operator;
    let mut admitted = 0;
    for _ in 0..=1000 {
        while engine.admit(caller, Action::CreatePurchase).is_ok() {
            admitted += 1;
        }
        clock.advance_ms(1);
    }
    // Over [0, 1 s]: the burst and at most one second's refill.
    assert!(admitted <= 600_000, "{admitted}");
    assert!(admitted >= 599_000, "{admitted}");
}

#[tokio::test]
async fn over_quota_changes_nothing() {
    let (engine, _clock) = engine(RuntimeKind::Sharded);
    let t = tree(&engine).await;
    let by_r = Caller::Uin(t.r);
    // tree() made R's first allocation; four more fit in this second.
    for _ in 0..4 {
        engine.allocate_customer_credit(by_r, t.c, m("1"), None).await.unwrap();
    }
    let before = engine.account(OP, t.c).await.unwrap();
    let history = engine.query_credit_allocation_history(OP, t.c, 1, 100).await.unwrap();
    let refused = engine.allocate_customer_credit(by_r, t.c, m("1"), None).await.unwrap_err();
    assert_eq!(refused.rejection(), Some(&over_quota(Action::AllocateCustomerCredit, 5)));
    assert_eq!(engine.account(OP, t.c).await.unwrap(), before);
    assert_eq!(engine.query_credit_allocation_history(OP, t.c, 1, 100).await.unwrap(), history);

    // A purchase over its configured quota claims no purchase id: the same id goes through
    // once the budget refills.
    let quotas = QuotaTable::documented().with([(Action::CreatePurchase, quota(1))]);
    let (engine, clock) = with_quotas(quotas);
    let t2 = tree(&engine).await;
    engine.purchase(Caller::Uin(t2.c), request("first", t2.c, "1")).await.unwrap();
    let again = engine.purchase(Caller::Uin(t2.c), request("second", t2.c, "1")).await;
    assert_eq!(refusal_of(again), "RateLimited");
    assert_eq!(available(&engine, t2.c).await, m("199"));
    clock.advance_ms(1_000);
    engine.purchase(Caller::Uin(t2.c), request("second", t2.c, "1")).await.unwrap();
    assert_eq!(available(&engine, t2.c).await, m("198"));
    assert_books_balance(&engine).await;
}

/// Calls `action` as `caller` once every millisecond from now for `ms` milliseconds (both
/// ends included); answers the times (ms from the start) of the admitted calls.
fn hammer(engine: &Engine, clock: &ManualClock, caller: Caller, action: Action, ms: i64) -> Vec<i64> {
    let mut admitted = Vec::new();
    for at in 0..=ms {
        if engine.admit(caller, action).is_ok() {
            admitted.push(at);
        }
        clock.advance_ms(1);
    }
    admitted
}

#[tokio::test]
async fn at_most_n_times_t_plus_one_in_any_window_of_t_seconds() {
    for (action, n) in
        [(Action::ForceQN, 2), (Action::AllocateCustomerCredit, 5), (Action::DescribeCustomerUin, 20)]
    {
        let (engine, clock) = engine(RuntimeKind::Sharded);
        let caller = Caller::Uin(Uin(7));
        let admitted = hammer(&engine, &clock, caller, action, 10_000);
        // From a fresh state over [0, 10 s]: the burst, then one every 1/N s.
        assert_eq!(admitted.len(), (n * 11) as usize, "{action}");
        for t in 1..=5i64 {
            let bound = n as usize * (t as usize + 1);
            for (first, &start) in admitted.iter().enumerate() {
                let in_window = admitted[first..].iter().take_while(|&&at| at <= start + t * 1000).count();
                assert!(in_window <= bound, "{action}: {in_window} admitted in [{start}, {start} + {t} s]");
            }
        }
    }
}

#[tokio::test]
async fn the_budget_refills_at_n_per_second() {
    let (engine, clock) = engine(RuntimeKind::Sharded);
    let caller = Caller::Uin(Uin(9));
    let action = Action::AllocateCustomerCredit; // 5 a second: one every 200 ms
    for _ in 0..5 {
        engine.admit(caller, action).unwrap();
    }
    assert_over_quota(&engine, caller, action, 5);
    // One comes back after 200 ms, not before.
    clock.advance_ms(199);
    assert_over_quota(&engine, caller, action, 5);
    clock.advance_ms(1);
    assert_eq!(engine.admit(caller, action), Ok(()));
    // Only one came back.
    assert_over_quota(&engine, caller, action, 5);
    // Idle for a second: the whole burst is back, and no more.
    clock.advance_ms(1_000);
    for _ in 0..5 {
        engine.admit(caller, action).unwrap();
    }
    assert_over_quota(&engine, caller, action, 5);
    // Idle for an hour: still a burst of 5, not more.
    clock.advance_ms(3_600_000);
    for _ in 0..5 {
        engine.admit(caller, action).unwrap();
    }
    assert_over_quota(&engine, caller, action, 5);
}

#[tokio::test]
async fn callers_and_actions_never_share_a_budget() {
    let (engine, _clock) = engine(RuntimeKind::Sharded);
    let (a, b) = (Caller::Uin(Uin(1)), Caller::Uin(Uin(2)));
    for _ in 0..5 {
        engine.admit(a, Action::QueryPartnerCredit).unwrap();
    }
    assert_over_quota(&engine, a, Action::QueryPartnerCredit, 5);
    // Another caller, the operator, and the same caller's other actions are untouched.
    for caller in [b, Caller::Operator] {
        for _ in 0..5 {
            engine.admit(caller, Action::QueryPartnerCredit).unwrap();
        }
        assert_over_quota(&engine, caller, Action::QueryPartnerCredit, 5);
    }
    for action in [Action::QueryCreditByUinList, Action::QueryCustomersCredit, Action::AllocateCustomerCredit]
    {
        for _ in 0..5 {
            engine.admit(a, action).unwrap();
        }
        // Each of these actions admits 5 a second (the documented table).
        assert_over_quota(&engine, a, action, 5);
    }
    // Through the engine's own methods too: R is throttled on allocation, not on queries.
    let t = tree(&engine).await;
    let by_r = Caller::Uin(t.r);
    for _ in 0..4 {
        engine.allocate_customer_credit(by_r, t.c, m("1"), None).await.unwrap();
    }
    assert_eq!(refusal(engine.allocate_customer_credit(by_r, t.c, m("1"), None)).await, "RateLimited");
    engine.query_partner_credit(by_r, t.r).await.unwrap();
    engine.allocate_customer_credit(Caller::Uin(t.s), t.cs, m("1"), None).await.unwrap();
}

#[tokio::test]
async fn own_actions_are_unlimited_by_default_and_configurable() {
    let (engine, _clock) = engine(RuntimeKind::Sharded);
    let t = tree(&engine).await;
    let by_c = Caller::Uin(t.c);
    for index in 0..100 {
        engine.purchase(by_c, request(&format!("p{index}"), t.c, "0.01")).await.unwrap();
    }
    for action in
        [Action::CreatePurchase, Action::CreatePartner, Action::GrantPartnerCredit, Action::CreatePurchases]
    {
        for _ in 0..1000 {
            engine.admit(by_c, action).unwrap();
        }
    }

    let quotas = QuotaTable::documented().with([
        (Action::CreatePurchase, quota(3)),
        (Action::CreatePurchases, quota(1)),
        (Action::AllocateCustomerCredit, quota(10)),
        (Action::ForceQN, None),
    ]);
    let (engine, _clock) = with_quotas(quotas);
    let t = tree(&engine).await;
    let by_c = Caller::Uin(t.c);
    for index in 0..3 {
        engine.purchase(by_c, request(&format!("p{index}"), t.c, "1")).await.unwrap();
    }
    assert_eq!(refusal(engine.purchase(by_c, request("p3", t.c, "1"))).await, "RateLimited");
    // A batch is one request, whatever its length.
    let batch = |prefix: &str| (0..10).map(|index| request(&format!("{prefix}{index}"), t.c, "1")).collect();
    let results = engine.purchase_batch(by_c, batch("b")).await.unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(refusal(engine.purchase_batch(by_c, batch("c"))).await, "RateLimited");
    assert_eq!(available(&engine, t.c).await, m("187"));
    // tree() used one of R's ten allocations.
    for _ in 0..9 {
        engine.allocate_customer_credit(Caller::Uin(t.r), t.c, m("1"), None).await.unwrap();
    }
    let refused = engine.allocate_customer_credit(Caller::Uin(t.r), t.c, m("1"), None).await.unwrap_err();
    assert_eq!(refused.rejection(), Some(&over_quota(Action::AllocateCustomerCredit, 10)));
    for _ in 0..50 {
        engine.set_suspension(Caller::Uin(t.r), t.c, false).await.unwrap();
    }
}

#[tokio::test]
async fn idle_budgets_are_swept() {
    let (engine, clock) = engine(RuntimeKind::Sharded);
    for uin in 0..10_000 {
        engine.admit(Caller::Uin(Uin(uin)), Action::QueryPartnerCredit).unwrap();
        engine.admit(Caller::Uin(Uin(uin)), Action::ForceQN).unwrap();
    }
    assert_eq!(engine.rate_limit_budgets(), 20_000);
    engine.sweep_rate_limits();
    assert_eq!(engine.rate_limit_budgets(), 20_000, "budgets in use are kept");
    // governor forgets a budget one refill interval after it is full again: ForceQN's (2 a
    // second, one call) at 500 + 500 ms, QueryPartnerCredit's (5 a second) at 200 + 200 ms.
    clock.advance_ms(900);
    engine.admit(Caller::Uin(Uin(1)), Action::QueryPartnerCredit).unwrap();
    clock.advance_ms(99);
    engine.sweep_rate_limits();
    assert_eq!(engine.rate_limit_budgets(), 10_001, "ForceQN budgets are kept until 1000 ms");
    clock.advance_ms(1);
    engine.sweep_rate_limits();
    assert_eq!(engine.rate_limit_budgets(), 1, "only the caller seen 100 ms ago is left");
    // A swept caller starts afresh: its whole burst.
    for _ in 0..2 {
        engine.admit(Caller::Uin(Uin(5)), Action::ForceQN).unwrap();
    }
    assert_over_quota(&engine, Caller::Uin(Uin(5)), Action::ForceQN, 2);
}
