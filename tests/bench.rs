//! `partner-credit bench` from the outside: the durable rows run, audit, and report what
//! they are compared by. No timing is asserted: two cores shared with builds measure
//! nothing reliably in a fraction of a second.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// A path for one test's files, not yet created.
fn scratch(name: &str) -> PathBuf {
    let directory = std::env::temp_dir().join(format!("partner-credit-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    directory
}

#[test]
fn the_durable_rows_and_the_recoveries_audit_and_report_what_they_are_compared_by() {
    let root = scratch("durable");
    std::fs::create_dir_all(&root).unwrap();
    let (json, data_dir) = (root.join("report.json"), root.join("data"));
    let output = Command::new(env!("CARGO_BIN_EXE_partner-credit"))
        .args(["bench", "--only", "durable", "--secs", "0.2", "--customers", "1000"])
        .args(["--recovery-accounts", "2000", "--recovery-purchases", "3000"])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{text}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let row =
        |name: &str| rows.iter().find(|row| row["name"] == name).unwrap_or_else(|| panic!("{name}: {text}"));
    let mut durable = vec!["sharded uniform batch-1024 durable"];
    if cfg!(feature = "http") {
        durable.push("sharded uniform http-single durable");
    }
    for name in &durable {
        let durable = row(name);
        let in_memory = row(name.strip_suffix(" durable").unwrap());
        assert_eq!(durable["audit_ok"], true, "{name}: {text}");
        assert_eq!(in_memory["audit_ok"], true, "{name}: {text}");
        assert_eq!(durable["fsync"], "always");
        assert!(durable["purchases_per_sec"].as_f64().unwrap() > 0.0, "{name}: {text}");
        let ratio = durable["ratio_to_in_memory"].as_f64().unwrap();
        let expected =
            durable["purchases_per_sec"].as_f64().unwrap() / in_memory["purchases_per_sec"].as_f64().unwrap();
        assert!((ratio - expected).abs() <= 1e-9 * expected, "{name}: {ratio} against {expected}");
        assert!(durable["journal_bytes_per_purchase"].as_f64().unwrap() > 0.0, "{name}: {text}");
        assert!(
            in_memory["journal_bytes_per_purchase"].is_null() && in_memory["ratio_to_in_memory"].is_null()
        );
    }
    assert!(row("fsync-limit")["purchases_per_sec"].as_f64().unwrap() > 0.0, "{text}");
    // `--only durable` runs the bases, the durable rows, their in-memory rows and fsync-limit.
    let mut names: Vec<&str> = rows.iter().map(|row| row["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let mut expected =
        vec!["limit uniform inline", "actix uniform single", "dashmap uniform inline", "fsync-limit"];
    for name in &durable {
        expected.extend([*name, name.strip_suffix(" durable").unwrap()]);
    }
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert!(text.contains("journal") && text.contains("bytes per purchase"), "{text}");
    // Both recoveries ran, audited, and reopened what was written: the world's accounts
    // (2,000 customers and their partners) and the 3,000 purchases.
    let recoveries = report["recovery"].as_array().unwrap();
    let shapes: Vec<&str> = recoveries.iter().map(|recovery| recovery["shape"].as_str().unwrap()).collect();
    assert_eq!(shapes, ["snapshot + journal", "journal only"], "{text}");
    for recovery in recoveries {
        assert_eq!(recovery["audit_ok"], true, "{recovery}: {text}");
        assert!(recovery["accounts"].as_u64().unwrap() > 2000, "{recovery}");
        assert_eq!(recovery["purchases"], 3000);
        assert!(recovery["open_secs"].as_f64().unwrap() > 0.0, "{recovery}");
        assert!(recovery["journal_bytes"].as_u64().unwrap() > 0, "{recovery}");
    }
    assert!(recoveries[0]["snapshot_bytes"].as_u64().unwrap() > 0, "{text}");
    assert_eq!(recoveries[1]["snapshot_bytes"], 0);
    assert!(text.contains("recovery (snapshot + journal): "), "{text}");
    // The bench made the data directory, so it removed it.
    assert!(!data_dir.exists(), "{} is left behind", data_dir.display());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_bad_fsync_policy_is_refused_with_the_accepted_forms() {
    let output = Command::new(env!("CARGO_BIN_EXE_partner-credit"))
        .args(["bench", "--only", "durable", "--fsync", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("always, interval:<ms> from 1 to 60000, or never"), "{stderr}");
}
