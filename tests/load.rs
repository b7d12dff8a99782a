//! `partner-credit load` from the outside: the real binary, its exit codes, its `--json`
//! report, and runs whose outcome is known in advance.
//!
//! Worlds here are tiny and runs bounded by `--purchases-max` or a second, so each test
//! takes well under a few seconds on two cores.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_partner-credit"))
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("partner-credit-load-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

/// Runs `load` with `arguments` plus `--quiet --json FILE`; answers the output and the report.
fn load(name: &str, arguments: &[&str]) -> (Output, Value) {
    let json = scratch(name).join("report.json");
    let output =
        binary().arg("load").args(arguments).args(["--quiet", "--json"]).arg(&json).output().unwrap();
    let report =
        std::fs::read(&json).map(|text| serde_json::from_slice(&text).unwrap()).unwrap_or(Value::Null);
    (output, report)
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// 10 customers with 3.00 each and purchases of 1.00: exactly 30 can succeed.
const EXACTLY_30: [&str; 8] =
    ["--customers", "10", "--customer-credit", "3", "--amount", "1", "--duration", "20"];

#[test]
fn a_world_where_exactly_30_purchases_succeed_reports_exactly_30() {
    for batch in ["1", "8"] {
        let mut arguments = EXACTLY_30.to_vec();
        arguments.extend(["--purchases-max", "100", "--concurrency", "7", "--batch", batch]);
        let (output, report) = load(&format!("exact-{batch}"), &arguments);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        assert_eq!(report["outcomes"]["Committed"], 30, "{report}");
        assert_eq!(report["outcomes"]["FailedOperation.InsufficientClientCredit"], 70, "{report}");
        assert_eq!(report["operations"], 100);
        assert_eq!(report["refused"], 70);
        assert_eq!(report["errors"], 0);
        assert_eq!(report["audit"]["ok"], true);
        assert_eq!(report["audit"]["committed"], 30);
        assert_eq!(report["audit"]["model"]["customers_checked"], 10);
        assert_eq!(report["audit"]["engine"]["ok"], true);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("FailedOperation.InsufficientClientCredit")
                && stdout.contains("audit         ok")
        );
    }
}

#[test]
fn the_json_report_has_the_documented_fields() {
    let (output, report) =
        load("json", &["--customers", "100", "--purchases-max", "500", "--concurrency", "4"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(report["throughput_per_sec"].as_f64().unwrap() > 0.0);
    for percentile in ["p50", "p90", "p99", "p999", "max"] {
        assert!(report["latency_us"][percentile].as_u64().is_some(), "{percentile}: {report}");
    }
    let latency = &report["latency_us"];
    assert!(latency["p50"].as_u64() <= latency["p99"].as_u64());
    assert!(latency["p99"].as_u64() <= latency["max"].as_u64());
    assert_eq!(latency["count"], 500);
    assert_eq!(report["outcomes"]["Committed"], 500);
    assert_eq!(report["audit"]["ok"], true);
    assert_eq!(report["model"], "closed");
    assert!(report["series"].as_array().is_some_and(|series| !series.is_empty()));
}

#[test]
fn thresholds_set_the_exit_code() {
    let mut arguments = EXACTLY_30.to_vec();
    arguments.extend(["--purchases-max", "100", "--concurrency", "4"]);
    let with = |thresholds: &[&str]| {
        let mut all = arguments.clone();
        for threshold in thresholds {
            all.extend(["--threshold", threshold]);
        }
        load("thresholds", &all)
    };
    // 70% of the purchases are refused.
    let (output, report) = with(&["refused<1%"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert_eq!(report["thresholds"][0]["ok"], false);
    assert!(String::from_utf8_lossy(&output.stdout).contains("BROKEN"));
    let (output, report) = with(&["refused<80%", "errors<1", "p99<10s", "max<=60s", "throughput>1"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(report["thresholds"].as_array().unwrap().iter().all(|result| result["ok"] == true));
    let (output, _) = with(&["p99<1us"]);
    assert_eq!(output.status.code(), Some(1));
    for malformed in ["p99<5", "p98<5ms", "refused=1%", "throughput>fast"] {
        let (output, _) = with(&[malformed]);
        assert_eq!(output.status.code(), Some(2), "{malformed}: {}", text(&output));
        assert!(text(&output).contains("--threshold"), "{}", text(&output));
    }
}

#[test]
fn the_same_seed_gives_the_same_requests_and_outcomes() {
    // 50 customers with 20.00 each: 1,000 can succeed of 2,000, whatever the interleaving.
    let run = |seed: &str| {
        let arguments = [
            "--customers",
            "50",
            "--customer-credit",
            "20",
            "--purchases-max",
            "2000",
            "--concurrency",
            "16",
            "--zipf",
            "0.8",
            "--seed",
            seed,
            "--duration",
            "20",
        ];
        let (output, report) = load(&format!("seed-{seed}"), &arguments);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        report
    };
    let (first, second, other) = (run("7"), run("7"), run("8"));
    assert_eq!(first["outcomes"], second["outcomes"]);
    assert_eq!(first["requests_digest"], second["requests_digest"]);
    assert_ne!(first["requests_digest"], other["requests_digest"]);
}

#[test]
fn the_open_loop_keeps_its_schedule_and_accounts_for_every_due_request() {
    let (output, report) =
        load("open", &["--customers", "1000", "--rate", "2000", "--duration", "1", "--concurrency", "32"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(report["model"], "open");
    let open = &report["open_loop"];
    let due = open["due"].as_u64().unwrap();
    assert!((1_990..=2_000).contains(&due), "{open}");
    assert_eq!(open["sent"].as_u64().unwrap() + open["unsent"].as_u64().unwrap(), due);
    assert_eq!(report["operations"].as_u64(), open["sent"].as_u64());
    assert_eq!(report["audit"]["ok"], true);
}

#[test]
fn a_hot_partner_takes_every_purchase() {
    let (output, report) = load(
        "hot",
        &["--customers", "200", "--hot-partner", "--purchases-max", "1000", "--concurrency", "8"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(report["hot_partner"], 3_000_000);
    assert_eq!(report["outcomes"]["Committed"], 1000);
    assert_eq!(report["audit"]["ok"], true);
    assert_eq!(report["audit"]["model"]["partners_checked"], 210);
}

#[test]
fn bad_options_exit_with_2() {
    for arguments in [
        &["--rate", "0"][..],
        &["--zipf", "-1"],
        &["--mix", "teleport=1"],
        &["--duration", "0"],
        &["--secret-id", "x"],
        &["--target", "http://127.0.0.1:1"],
        &["--fsync", "always"],
        &["--data-dir", "/nonexistent/partner-credit-data", "--fsync", "sometimes"],
        &["--data-dir", "/nonexistent/partner-credit-data", "--runtime", "actix"],
    ] {
        let output = binary().arg("load").args(arguments).arg("--quiet").output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {}", text(&output));
    }
    // The escrow of a hot partner keeps no journal: said in the load's own terms.
    let empty = scratch("hot-journal").join("data");
    let output = binary()
        .args(["load", "--quiet", "--hot-partner", "--customers", "100", "--data-dir"])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("--data-dir does not work with --hot-partner"), "{}", text(&output));
    assert!(!empty.exists(), "a refused load created {}", empty.display());
    std::fs::remove_dir_all(empty.parent().unwrap()).unwrap();
}

#[test]
fn with_a_data_dir_the_load_is_journalled_and_recovers() {
    let data_dir = scratch("journal-data").join("data");
    let arguments = ["--customers", "100", "--purchases-max", "500", "--concurrency", "4"];
    let mut with_dir = arguments.to_vec();
    with_dir.extend(["--data-dir", data_dir.to_str().unwrap(), "--fsync", "interval:2"]);
    let (output, report) = load("journal", &with_dir);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(report["outcomes"]["Committed"], 500);
    let journal = &report["journal"];
    assert_eq!(journal["dir"], data_dir.to_str().unwrap());
    assert_eq!(journal["fsync"], "interval:2ms");
    assert!(journal["bytes_per_operation"].as_f64().unwrap() > 0.0, "{report}");
    assert!(text(&output).contains("kept"), "{}", text(&output));
    // The journal holds the run: an engine opened on it has the 500 purchases' charges.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let config = partner_credit::EngineConfig { data_dir: Some(data_dir.clone()), ..Default::default() };
        let engine = partner_credit::Engine::open(config).unwrap();
        let audit = engine.audit().await.unwrap();
        assert!(audit.ok());
        assert_eq!(audit.customer_used, partner_credit::Money::from_units(500));
    });
    // A directory that holds a journal is refused, not added to.
    let (output, _) = load("journal-again", &with_dir);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("is not empty"), "{}", text(&output));
    // Without a data directory there is no journal.
    let (output, report) = load("no-journal", &arguments);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(report["journal"].is_null());
}
