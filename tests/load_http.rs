//! `partner-credit load --target`: the real binary against the real `partner-credit serve`
//! on a free loopback port, both started with the same world file.
//!
//! Each test starts its own server (a world of a few dozen accounts imports in
//! milliseconds), so the books of one test never see another's purchases.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_partner-credit"))
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("partner-credit-load-http-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

/// A running `partner-credit serve`; killed on drop.
struct Server {
    child: Child,
    url: String,
    config: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a generated world of `customers` customers with `credit` each, and a
/// configuration importing it (`quotas` is the `[quotas]` table's body), and serves it.
fn serve(directory: &Path, customers: &str, credit: &str, quotas: &str) -> Server {
    serve_with(directory, customers, credit, quotas, true)
}

/// As [`serve`]; with `import` false the server starts empty (the world file is still written).
fn serve_with(directory: &Path, customers: &str, credit: &str, quotas: &str, import: bool) -> Server {
    let world = directory.join("world.json");
    let status = binary()
        .args(["load", "--write-world"])
        .arg(&world)
        .args(["--customers", customers, "--customer-credit", credit])
        .status()
        .unwrap();
    assert!(status.success());
    let config = directory.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n{}[operator]\nsecret_id = \"load-operator\"\n\
             secret_key = \"load-operator-key\"\n[quotas]\n{quotas}\n[http]\nworkers = 1\n",
            if import { "world = \"world.json\"\n" } else { "" }
        ),
    )
    .unwrap();
    let mut child = binary()
        .args(["serve", "--log", "warn", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("partner-credit serve: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, url, config }
}

/// Runs `load` against `server` with `arguments` plus `--quiet --json FILE`.
fn load(server: &Server, directory: &Path, arguments: &[&str]) -> (Output, Value) {
    let json = directory.join("report.json");
    let output = binary()
        .arg("load")
        .args(["--target", &server.url, "--config"])
        .arg(&server.config)
        .arg("--world")
        .arg(directory.join("world.json"))
        .args(arguments)
        .args(["--quiet", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let report =
        std::fs::read(&json).map(|text| serde_json::from_slice(&text).unwrap()).unwrap_or(Value::Null);
    (output, report)
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn over_http_exactly_30_of_100_purchases_succeed_and_every_account_is_audited() {
    let directory = scratch("exact");
    let server = serve(&directory, "10", "3", "QueryCreditByUinList = \"none\"");
    let (output, report) =
        load(&server, &directory, &["--purchases-max", "100", "--connections", "4", "--duration", "20"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(report["target"], server.url.as_str());
    assert_eq!(report["outcomes"]["Committed"], 30, "{report}");
    assert_eq!(report["outcomes"]["FailedOperation.InsufficientClientCredit"], 70, "{report}");
    assert_eq!(report["errors"], 0);
    assert_eq!(report["audit"]["ok"], true, "{}", text(&output));
    assert_eq!(report["audit"]["scope"], "full");
    assert_eq!(report["audit"]["model"]["customers_checked"], 10);
    assert_eq!(report["audit"]["model"]["partners_checked"], 210);
    // The server's own counts, from its metrics scraped before and after: the same requests.
    let side = &report["server"];
    assert_eq!(side["available"], true, "{side}");
    assert_eq!(side["requests"], 100, "{side}");
    assert_eq!(side["purchases_committed"], 30, "{side}");
    assert_eq!(side["by_code"]["FailedOperation.InsufficientClientCredit"], 70, "{side}");
    assert!(
        text(&output).contains("server        100 requests answered (30 succeeded, 70 refused)"),
        "{}",
        text(&output)
    );

    // A second run on the same server: the books are compared as differences, so the first
    // run's purchases do not count against it, and now everything is refused.
    let (output, report) =
        load(&server, &directory, &["--purchases-max", "20", "--batch", "5", "--connections", "2"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(report["outcomes"]["FailedOperation.InsufficientClientCredit"], 20, "{report}");
    assert_eq!(report["requests"], 4);
    assert_eq!(report["audit"]["ok"], true);
}

#[test]
fn over_http_with_the_default_quota_the_audit_is_partial_and_says_so() {
    let directory = scratch("partial");
    let server = serve(&directory, "20", "1000", "");
    let (output, report) = load(
        &server,
        &directory,
        &[
            "--purchases-max",
            "300",
            "--connections",
            "4",
            "--mix",
            "one-shot=6,reserve-commit=2,reserve-cancel=1,reserve-expire=1",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(report["audit"]["scope"], "partial");
    assert!(report["audit"]["note"].as_str().unwrap().contains("QueryCreditByUinList"), "{report}");
    assert_eq!(report["audit"]["ok"], true, "{}", text(&output));
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["outcomes"]["Reserved"].as_u64().unwrap() > 0, "{report}");
    assert!(text(&output).contains("partial"));
}

#[test]
fn a_server_without_the_world_is_a_clear_error() {
    let directory = scratch("missing");
    let server = serve(&directory, "10", "3", "");
    let other = directory.join("other.json");
    let status =
        binary().args(["load", "--write-world"]).arg(&other).args(["--customers", "30"]).status().unwrap();
    assert!(status.success());
    let output = binary()
        .args(["load", "--quiet", "--target", &server.url, "--secret-id", "load-operator", "--secret-key"])
        .arg("load-operator-key")
        .arg("--world")
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("does not hold the world"), "{}", text(&output));

    let output = binary()
        .args([
            "load",
            "--quiet",
            "--target",
            &server.url,
            "--secret-id",
            "load-operator",
            "--secret-key",
            "wrong",
        ])
        .arg("--world")
        .arg(directory.join("world.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("AuthFailure"), "{}", text(&output));
}

#[test]
fn a_small_world_is_created_through_the_api_on_an_empty_server() {
    let directory = scratch("create");
    let server = serve_with(&directory, "6", "2", "QueryCreditByUinList = \"none\"", false);
    let (output, report) = load(&server, &directory, &["--purchases-max", "100", "--connections", "3"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("creating its"), "{}", text(&output));
    assert_eq!(report["outcomes"]["Committed"], 12, "{report}");
    assert_eq!(report["outcomes"]["FailedOperation.InsufficientClientCredit"], 88, "{report}");
    assert_eq!(report["audit"]["ok"], true, "{}", text(&output));
    assert_eq!(report["audit"]["scope"], "full");
}
