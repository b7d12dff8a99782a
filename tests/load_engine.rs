//! The load generator in process, on the embedded engine: the mix of flows, the open loop's
//! account of a schedule it cannot keep, and the audit catching books that disagree with
//! the model.

use std::time::Duration;

use partner_credit::load::mix::Mix;
use partner_credit::load::{self, LoadOptions, Target, WorldSource};
use partner_credit::{Money, RuntimeKind, WorldSpec};

fn small_world(customers: usize, credit: i64) -> WorldSource {
    WorldSource::Generate(WorldSpec {
        customers,
        customer_credit: Money::from_units(credit),
        ..WorldSpec::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flow_of_the_mix_runs_and_the_books_match_the_model() {
    for runtime in [RuntimeKind::Sharded, RuntimeKind::Actix] {
        let options = LoadOptions {
            target: Target::embedded(runtime),
            world: small_world(50, 30),
            concurrency: 8,
            purchases_max: 3_000,
            duration: Duration::from_secs(20),
            mix: Mix::parse("one-shot=5,reserve-commit=2,reserve-cancel=2,reserve-expire=1,allocate=1")
                .unwrap(),
            ..LoadOptions::default()
        };
        let report = load::run(&options).await.unwrap();
        for outcome in ["Committed", "Reserved", "Cancelled", "Repossessed", "Allocated"] {
            assert!(report.outcomes.get(outcome).is_some_and(|count| *count > 0), "{outcome}: {report}");
        }
        // 50 customers with 30.00 each run out: refusals are part of the load.
        assert!(report.refused > 0, "{report}");
        assert_eq!(report.errors, 0, "{report}");
        assert!(report.audit.ok, "{report}");
        let engine = report.audit.engine.as_ref().unwrap();
        assert_eq!((engine.customer_reserved.as_str(), engine.partner_reserved.as_str()), ("0", "0"));
        assert_eq!(report.audit.committed, report.outcomes["Committed"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_it_cannot_keep_counts_lateness_instead_of_hiding_it() {
    // One task cannot start 10,000,000 purchases a second (one takes about a microsecond
    // in a release build): requests fall behind their due times, the latency from the due
    // time grows, and what was never sent is counted.
    let options = LoadOptions {
        world: small_world(100, 1_000_000),
        concurrency: 1,
        rate_per_sec: Some(10_000_000.0),
        duration: Duration::from_millis(300),
        ..LoadOptions::default()
    };
    let report = load::run(&options).await.unwrap();
    let open = report.open_loop.as_ref().unwrap();
    assert!(open.late > 0 && open.unsent > 0, "{report}");
    assert_eq!(open.sent + open.unsent, open.due, "{report}");
    assert!((2_990_000..=3_000_000).contains(&open.due), "{report}");
    assert!(report.latency_us.max >= 100_000, "a stall of 100 ms or more must show: {report}");
    assert!(report.audit.ok, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_file_is_used_as_it_is() {
    let directory = std::env::temp_dir().join(format!("partner-credit-load-engine-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join("world.json");
    let mut world = partner_credit::World::generate(&WorldSpec {
        customers: 4,
        customer_credit: Money::from_units(2),
        ..WorldSpec::default()
    });
    // One customer with nothing: its purchases are all refused.
    world.customers[0].credit = rust_decimal::Decimal::ZERO;
    world.save(&path).unwrap();
    let options = LoadOptions {
        world: WorldSource::File(path),
        concurrency: 2,
        purchases_max: 100,
        ..LoadOptions::default()
    };
    let report = load::run(&options).await.unwrap();
    assert_eq!(report.outcomes["Committed"], 6, "{report}");
    assert_eq!(report.outcomes["FailedOperation.InsufficientClientCredit"], 94, "{report}");
    assert!(report.audit.ok, "{report}");
}
