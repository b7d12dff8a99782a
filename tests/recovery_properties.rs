//! Recovery after a crash at any point of a run: for random sequences of operations
//! (purchases, reservations and their commits and cancels, allocations, vouchers, creations,
//! credit lines), the journal is cut at the end of each operation and at random bytes in
//! between, as a crash could leave it, and recovered. What recovers must be exactly the
//! state after the last operation the cut holds whole, or after the next one (an operation
//! over several accounts that had begun is finished at recovery); the books balance; and
//! every purchase acknowledged before the cut gets its first answer again.

mod common;

use common::*;
use partner_credit::domain::voucher::{PaymentMode, Scope};
use partner_credit::engine::{NewCustomer, NewCustomerVoucher};
use partner_credit::{Caller, Engine, ManualClock, PurchaseReceipt, PurchaseRequest};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Purchase { customer: bool, cents: u32 },
    Reserve { customer: bool, cents: u32 },
    Commit(usize),
    Cancel(usize),
    Allocate { customer: bool, cents: i32 },
    Voucher { customer: bool },
    Create,
    Grant { cents: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 1..5_000u32).prop_map(|(customer, cents)| Op::Purchase { customer, cents }),
        2 => (any::<bool>(), 1..3_000u32).prop_map(|(customer, cents)| Op::Reserve { customer, cents }),
        1 => (0..8usize).prop_map(Op::Commit),
        1 => (0..8usize).prop_map(Op::Cancel),
        2 => (any::<bool>(), -5_000..10_000i32).prop_map(|(customer, cents)| Op::Allocate { customer, cents }),
        1 => any::<bool>().prop_map(|customer| Op::Voucher { customer }),
        1 => Just(Op::Create),
        1 => (1..100_000u32).prop_map(|cents| Op::Grant { cents }),
    ]
}

fn money(cents: i64) -> partner_credit::Money {
    let sign = if cents < 0 { "-" } else { "" };
    m(&format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100))
}

/// After each operation: the journal's length, the state, and the purchases acknowledged so far.
struct Point {
    journal: u64,
    state: String,
    purchases: usize,
}

async fn apply(
    engine: &Engine,
    t: &Tree,
    op: &Op,
    reserved: &mut Vec<(Caller, String)>,
    index: usize,
) -> Option<(PurchaseRequest, Caller, PurchaseReceipt)> {
    let pick = |customer: bool| if customer { (t.c, t.r) } else { (t.cs, t.s) };
    match op {
        Op::Purchase { customer, cents } => {
            let (uin, _) = pick(*customer);
            let request = request(&format!("p-{index}"), uin, &money(*cents as i64).to_string());
            let caller = Caller::Uin(uin);
            let receipt = engine.purchase(caller, request.clone()).await.ok()?;
            return Some((request, caller, receipt));
        }
        Op::Reserve { customer, cents } => {
            let (uin, _) = pick(*customer);
            let id = format!("r-{index}");
            let caller = Caller::Uin(uin);
            let request = request(&id, uin, &money(*cents as i64).to_string());
            if engine.reserve(caller, request, Some(60_000)).await.is_ok() {
                reserved.push((caller, id));
            }
        }
        Op::Commit(which) | Op::Cancel(which) => {
            if let Some((caller, id)) = reserved.get(*which).cloned() {
                let _ = match op {
                    Op::Commit(_) => engine.commit(caller, pid(&id)).await,
                    _ => engine.cancel(caller, pid(&id)).await,
                };
            }
        }
        Op::Allocate { customer, cents } => {
            let (uin, parent) = pick(*customer);
            let _ =
                engine.allocate_customer_credit(Caller::Uin(parent), uin, money(*cents as i64), None).await;
        }
        Op::Voucher { customer } => {
            let (uin, _) = pick(*customer);
            let now = engine.now();
            let voucher = NewCustomerVoucher {
                customer: uin,
                amount: m("3"),
                scope: Scope::all_products(PaymentMode::AllPayment),
                effective: now,
                expire: now.plus_ms(86_400_000),
            };
            let _ = engine.issue_customer_voucher(Caller::Operator, voucher).await;
        }
        Op::Create => {
            let customer = NewCustomer { uin: None, parent: t.r, name: None, email: None };
            let _ = engine.create_customer(OP, customer).await;
        }
        Op::Grant { cents } => {
            let _ = engine.grant_credit(OP, t.r, money(*cents as i64)).await;
        }
    }
    None
}

fn check(ops: Vec<Op>, cuts_between: Vec<u16>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START);
        let engine = open(dir.path(), &clock);
        let t = tree(&engine).await;
        engine.grant_voucher_quota(OP, t.r, m("1000")).await.unwrap();
        engine.grant_voucher_quota(OP, t.s, m("1000")).await.unwrap();
        let mut points = vec![Point {
            journal: engine.journal_bytes().unwrap(),
            state: state(&engine).await,
            purchases: 0,
        }];
        let mut reserved = Vec::new();
        let mut purchases = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            if let Some(purchase) = apply(&engine, &t, op, &mut reserved, index).await {
                purchases.push(purchase);
            }
            points.push(Point {
                journal: engine.journal_bytes().unwrap(),
                state: state(&engine).await,
                purchases: purchases.len(),
            });
        }
        drop(engine);

        let segment = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|extension| extension == "pcj"))
            .expect("a journal segment");
        let bytes = std::fs::read(&segment).unwrap();
        let end = points.last().unwrap().journal;
        // The segment's header (24 bytes) comes before the records; preallocated zeros
        // follow them, and the copies below leave those out.
        let header = 24;
        assert!(bytes.len() as u64 >= header + end);
        let mut cuts: Vec<u64> = points.iter().map(|point| point.journal).collect();
        for (index, between) in cuts_between.iter().enumerate() {
            let (from, to) = (points[index % points.len()].journal, end);
            if to > from {
                cuts.push(from + u64::from(*between) % (to - from));
            }
        }
        for cut in cuts {
            let copy = tempfile::tempdir().unwrap();
            let name = segment.file_name().unwrap();
            std::fs::write(copy.path().join(name), &bytes[..(header + cut) as usize]).unwrap();
            let recovered = open(copy.path(), &clock);
            let whole = points.iter().rposition(|point| point.journal <= cut).expect("the set-up is whole");
            let got = state(&recovered).await;
            let next = points.get(whole + 1).map(|point| &point.state);
            prop_assert!(
                got == points[whole].state || Some(&got) == next,
                "cut at {cut} of {end}: the state is neither after operation {whole} nor after the next"
            );
            for (request, caller, receipt) in &purchases[..points[whole].purchases] {
                let again = recovered.purchase(*caller, request.clone()).await;
                prop_assert_eq!(again.as_ref().ok(), Some(receipt), "{} after a cut at {}", request.id, cut);
            }
            prop_assert_eq!(state(&recovered).await, got, "repeats changed the state");
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn a_crash_anywhere_recovers_what_was_acknowledged(
        ops in prop::collection::vec(op(), 1..30),
        cuts_between in prop::collection::vec(any::<u16>(), 8),
    ) {
        check(ops, cuts_between)?;
    }
}
