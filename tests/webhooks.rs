//! Webhooks: the deliverer in process against a small HTTP receiver on a loopback port (what
//! arrives, in what order, signed how; retries, timeouts, a receiver that is down, a full
//! queue, shutdown), then the real `partner-credit serve` with a `[[webhooks]]` entry.
//!
//! The receiver checks each request's signature with its own HMAC, not with the crate's.
//! The target needs the features `http` and `cli` (Cargo.toml's `required-features`).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use partner_credit::api::client::ApiClient;
use partner_credit::api::config::WebhookConfig;
use partner_credit::api::webhook::{self, WebhookStats, Webhooks};
use partner_credit::domain::{Threshold, WarningLevel};
use partner_credit::events::{CreditWarning, Event, EventBus};
use partner_credit::world::{CustomerEntry, PartnerEntry, World};
use partner_credit::{Money, Timestamp, Uin};

const SECRET: &str = "webhook-secret";

/// One request as the receiver read it.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    /// Names in lowercase.
    headers: HashMap<String, String>,
    body: Vec<u8>,
    at: Instant,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// Checks the signature headers as a receiver would, with its own HMAC.
    fn assert_signed(&self, secret: &str) {
        let timestamp = self.header("x-partnercredit-timestamp");
        let seconds: i64 = timestamp.parse().unwrap_or_else(|_| panic!("timestamp {timestamp:?}"));
        let now = unix_seconds();
        assert!((now - 60..=now).contains(&seconds), "timestamp {seconds}, now {now}");
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(&self.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let signature = self.header("x-partnercredit-signature");
        assert_eq!(signature, expected, "{}", String::from_utf8_lossy(&self.body));
        // The crate's own check agrees.
        assert!(webhook::verify(secret, timestamp, signature, &self.body, now, 300));
        assert!(!webhook::verify("another secret", timestamp, signature, &self.body, now, 300));
    }
}

/// How the receiver answers a request: a status, or never (holding the connection open).
type Answer = Option<u16>;

#[derive(Default)]
struct ReceiverState {
    requests: Mutex<Vec<Received>>,
    /// Answers for the next requests, in order; 200 once it is used up.
    script: Mutex<VecDeque<Answer>>,
    connections: Mutex<usize>,
    /// Answer with `connection: close` and close, instead of keeping connections open.
    close_after_answer: bool,
}

/// A webhook receiver on 127.0.0.1:0 that reads HTTP/1.1 requests on keep-alive connections,
/// records each, and answers as scripted.
struct Receiver {
    address: SocketAddr,
    state: Arc<ReceiverState>,
}

impl Receiver {
    async fn start(script: &[Answer]) -> Receiver {
        Receiver::start_with(script, false).await
    }

    async fn start_with(script: &[Answer], close_after_answer: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState { close_after_answer, ..ReceiverState::default() });
        state.script.lock().unwrap().extend(script.iter().copied());
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                *shared.connections.lock().unwrap() += 1;
                tokio::spawn(serve_connection(stream, shared.clone()));
            }
        });
        Receiver { address, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        *self.state.connections.lock().unwrap()
    }

    /// The first `count` requests, once they have arrived (10 s at most).
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        eventually(&format!("{count} requests"), || self.requests().len() >= count).await;
        self.requests()[..count].to_vec()
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, state: Arc<ReceiverState>) {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header line");
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
        let length = headers.get("content-length").map_or(0, |length| length.parse().unwrap());
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let answer = state.script.lock().unwrap().pop_front().unwrap_or(Some(200));
        state.requests.lock().unwrap().push(Received { method, path, headers, body, at: Instant::now() });
        match answer {
            None => std::future::pending::<()>().await,
            Some(status) => {
                let close = if state.close_after_answer { "connection: close\r\n" } else { "" };
                let response = format!("HTTP/1.1 {status} Scripted\r\ncontent-length: 2\r\n{close}\r\nok");
                if write.write_all(response.as_bytes()).await.is_err() || state.close_after_answer {
                    return;
                }
            }
        }
    }
}

/// Waits until `condition` holds, for 10 s at most.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "waited 10 s for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A JSON number with exactly this text (`json!` would write 0.00000001 as 1e-8).
fn number(text: &str) -> Value {
    Value::Number(text.parse().unwrap())
}

fn m(text: &str) -> Money {
    Money::parse(text).unwrap()
}

fn hook(url: String, attempts: u32, queue: usize, timeout_ms: u64) -> WebhookConfig {
    WebhookConfig { url, secret: SECRET.into(), attempts, queue, timeout_ms }
}

fn warning(
    customer: u64,
    level: WarningLevel,
    threshold: Option<Threshold>,
    total: &str,
    available: &str,
) -> Event {
    Event::CreditWarning(CreditWarning {
        customer: Uin(customer),
        partner: Uin(3_000_000),
        level,
        threshold,
        total: m(total),
        available: m(available),
        time: Timestamp(1_767_225_600_000 + 3_723_999),
    })
}

fn stats(webhooks: &Webhooks) -> WebhookStats {
    webhooks.stats()[0].1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_signed_with_exact_amounts() {
    let receiver = Receiver::start(&[]).await;
    let bus = Arc::new(EventBus::new());
    let webhooks = webhook::start(&bus, &[hook(receiver.url("/hooks/credit?v=1"), 3, 100, 2000)]).unwrap();
    let percent = Threshold::percent(Decimal::new(1250, 2)).unwrap();
    let amount = Threshold::amount(m("0.00000001")).unwrap();
    bus.publish(warning(10, WarningLevel::Remaining25, None, "100.10", "20.02"));
    bus.publish(warning(11, WarningLevel::PartnerCustom, Some(percent), "80", "9.99"));
    bus.publish(warning(12, WarningLevel::CustomerCustom, Some(amount), "1000000000000", "0"));

    let requests = receiver.wait_for(3).await;
    for request in &requests {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hooks/credit?v=1"));
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.header("host"), receiver.address.to_string());
        request.assert_signed(SECRET);
    }
    let bodies: Vec<Value> = requests.iter().map(Received::json).collect();
    assert_eq!(
        bodies,
        [
            json!({"EventId": 1, "EventType": "CreditWarning", "Time": "2026-01-01 01:02:03",
                   "CustomerUin": 10, "PartnerUin": 3_000_000, "Level": "Remaining25",
                   "Recipients": ["Partner", "Customer"], "Threshold": null,
                   "TotalCredit": number("100.1"), "RemainingCredit": number("20.02")}),
            json!({"EventId": 2, "EventType": "CreditWarning", "Time": "2026-01-01 01:02:03",
                   "CustomerUin": 11, "PartnerUin": 3_000_000, "Level": "PartnerCustom",
                   "Recipients": ["Partner"], "Threshold": {"RemainingPercent": number("12.5")},
                   "TotalCredit": 80, "RemainingCredit": number("9.99")}),
            json!({"EventId": 3, "EventType": "CreditWarning", "Time": "2026-01-01 01:02:03",
                   "CustomerUin": 12, "PartnerUin": 3_000_000, "Level": "CustomerCustom",
                   "Recipients": ["Customer"], "Threshold": {"RemainingAmount": number("0.00000001")},
                   "TotalCredit": 1_000_000_000_000u64, "RemainingCredit": 0}),
        ]
    );
    // The amounts' text is exact, never through a float.
    let text = String::from_utf8(requests[2].body.clone()).unwrap();
    assert!(text.contains(r#""RemainingAmount":0.00000001"#), "{text}");
    assert!(text.contains(r#""TotalCredit":1000000000000"#), "{text}");
    let text = String::from_utf8(requests[0].body.clone()).unwrap();
    assert!(text.contains(r#""TotalCredit":100.1"#) && !text.contains("100.10"), "{text}");

    eventually("3 delivered", || stats(&webhooks).delivered == 3).await;
    // One keep-alive connection carried all three.
    assert_eq!(receiver.connections(), 1);
    let stopped = webhooks.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stopped[0].1, WebhookStats { delivered: 3, failed: 0, dropped: 0 });
    assert_eq!(stopped[0].0, receiver.url("/hooks/credit?v=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_closes_every_connection_gets_each_event_once() {
    let receiver = Receiver::start_with(&[], true).await;
    let bus = Arc::new(EventBus::new());
    let webhooks = webhook::start(&bus, &[hook(receiver.url("/"), 1, 100, 2000)]).unwrap();
    for customer in 1..=5 {
        bus.publish(warning(customer, WarningLevel::Remaining25, None, "100", "20"));
        // One at a time: the next event goes once this one is delivered, so the deliverer's
        // connection is idle (and closed by the receiver) when the next one goes.
        eventually(&format!("{customer} delivered"), || stats(&webhooks).delivered == customer).await;
    }
    let customers: Vec<Value> =
        receiver.requests().iter().map(|request| request.json()["CustomerUin"].clone()).collect();
    assert_eq!(customers, [json!(1), json!(2), json!(3), json!(4), json!(5)]);
    assert_eq!(receiver.connections(), 5);
    assert_eq!(
        webhooks.shutdown(Duration::from_secs(5)).await[0].1,
        WebhookStats { delivered: 5, failed: 0, dropped: 0 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_twice_gets_the_event_on_the_third_attempt() {
    let receiver = Receiver::start(&[Some(500), Some(503)]).await;
    let bus = Arc::new(EventBus::new());
    let webhooks = webhook::start(&bus, &[hook(receiver.url("/"), 5, 100, 2000)]).unwrap();
    bus.publish(warning(10, WarningLevel::Remaining10, None, "100", "5"));

    let requests = receiver.wait_for(3).await;
    eventually("delivered", || stats(&webhooks).delivered == 1).await;
    // The same event each time, re-signed; waits of 100 ms, then 200 ms.
    for request in &requests {
        request.assert_signed(SECRET);
        assert_eq!(request.json()["EventId"], 1);
        assert_eq!(request.json()["Level"], "Remaining10");
    }
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(100));
    assert!(requests[2].at - requests[1].at >= Duration::from_millis(200));
    assert_eq!(stats(&webhooks), WebhookStats { delivered: 1, failed: 0, dropped: 0 });

    // The next event goes out at once, with the next id.
    bus.publish(warning(10, WarningLevel::Remaining0, None, "100", "0"));
    let requests = receiver.wait_for(4).await;
    assert_eq!(requests[3].json()["EventId"], 2);
    eventually("delivered", || stats(&webhooks).delivered == 2).await;
    webhooks.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_leads_to_failed_after_every_attempt() {
    // A port nothing listens on any more: connections are refused.
    let address = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let bus = Arc::new(EventBus::new());
    let started = Instant::now();
    let webhooks = webhook::start(&bus, &[hook(format!("http://{address}/down"), 3, 100, 1000)]).unwrap();
    bus.publish(warning(10, WarningLevel::Remaining25, None, "100", "20"));
    eventually("failed", || stats(&webhooks).failed == 1).await;
    // Three attempts: waits of 100 ms and 200 ms between them.
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(stats(&webhooks), WebhookStats { delivered: 0, failed: 1, dropped: 0 });

    // Each event is given up on by itself: a second one fails too, and nothing is stuck.
    bus.publish(warning(11, WarningLevel::Remaining25, None, "100", "20"));
    eventually("failed", || stats(&webhooks).failed == 2).await;
    let stopped = webhooks.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stopped[0].1, WebhookStats { delivered: 0, failed: 2, dropped: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_never_comes_times_out_and_the_event_goes_again_on_a_new_connection() {
    let receiver = Receiver::start(&[None]).await;
    let bus = Arc::new(EventBus::new());
    let webhooks = webhook::start(&bus, &[hook(receiver.url("/slow"), 2, 100, 300)]).unwrap();
    let published = Instant::now();
    bus.publish(warning(10, WarningLevel::Remaining25, None, "100", "20"));
    let requests = receiver.wait_for(2).await;
    eventually("delivered", || stats(&webhooks).delivered == 1).await;
    // The timeout (300 ms, counted from the first attempt's start, its connection included)
    // and the first wait (100 ms) passed before the second request. Measured from the
    // publication, which comes before the first attempt: how long the first connection took
    // to open does not shorten the bound.
    assert!(requests[1].at - published >= Duration::from_millis(400));
    assert_eq!(requests[0].body, requests[1].body);
    assert_eq!(receiver.connections(), 2);
    webhooks.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_without_blocking_the_publisher() {
    // The first request is never answered: the webhook is busy for its 1 s timeout.
    let receiver = Receiver::start(&[None]).await;
    let bus = Arc::new(EventBus::new());
    let webhooks = webhook::start(&bus, &[hook(receiver.url("/"), 1, 2, 1000)]).unwrap();
    bus.publish(warning(1, WarningLevel::Remaining25, None, "100", "20"));
    receiver.wait_for(1).await;
    // The queue holds 2 of the next 5; publishing never waits. No clock is read to show it:
    // a publisher that waited for room would have got it (the stuck request times out) and
    // dropped nothing, so three drops while the webhook is still busy are the proof.
    for customer in 2..=6 {
        bus.publish(warning(customer, WarningLevel::Remaining25, None, "100", "20"));
    }
    assert_eq!(stats(&webhooks).dropped, 3);
    assert_eq!(bus.dropped(), 3);

    eventually("1 failed and 2 delivered", || {
        stats(&webhooks) == WebhookStats { delivered: 2, failed: 1, dropped: 3 }
    })
    .await;
    let requests = receiver.requests();
    let customers: Vec<Value> =
        requests.iter().map(|request| request.json()["CustomerUin"].clone()).collect();
    assert_eq!(customers, [json!(1), json!(2), json!(3)]);
    let ids: Vec<Value> = requests.iter().map(|request| request.json()["EventId"].clone()).collect();
    assert_eq!(ids, [json!(1), json!(2), json!(3)]);
    webhooks.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_gets_every_event_and_shutdown_delivers_what_is_queued() {
    let first = Receiver::start(&[]).await;
    let second = Receiver::start(&[]).await;
    let bus = Arc::new(EventBus::new());
    let webhooks = webhook::start(
        &bus,
        &[
            hook(first.url("/a"), 3, 100, 2000),
            WebhookConfig { secret: "other".into(), ..hook(second.url("/b"), 3, 100, 2000) },
        ],
    )
    .unwrap();
    assert_eq!(webhooks.len(), 2);
    for customer in 1..=20 {
        bus.publish(warning(customer, WarningLevel::Remaining25, None, "100", "20"));
    }
    // Stopped at once: what each queue holds still goes out.
    let stopped = webhooks.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stopped.iter().map(|(_, stats)| stats.delivered).collect::<Vec<_>>(), [20, 20]);
    let mut ids = Vec::new();
    for (receiver, secret) in [(&first, SECRET), (&second, "other")] {
        let requests = receiver.requests();
        let customers: Vec<u64> =
            requests.iter().map(|request| request.json()["CustomerUin"].as_u64().unwrap()).collect();
        assert_eq!(customers, (1..=20).collect::<Vec<_>>());
        for request in &requests {
            request.assert_signed(secret);
            ids.push(request.json()["EventId"].as_u64().unwrap());
        }
    }
    // Ids are the server's: unique over its webhooks.
    ids.sort_unstable();
    assert_eq!(ids, (1..=40).collect::<Vec<_>>());
    assert_eq!(bus.subscriber_count(), 0);
}

#[test]
fn a_bad_webhook_is_refused_by_start_naming_it() {
    let bus = Arc::new(EventBus::new());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let error = runtime
        .block_on(async {
            webhook::start(&bus, &[hook("https://example.com/h".into(), 3, 100, 2000)]).map(|_| ())
        })
        .unwrap_err();
    assert!(error.starts_with("[[webhooks]] 1: url https://example.com/h: https is not offered"), "{error}");
    assert_eq!(bus.subscriber_count(), 0);
}

// The real binary.

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_partner-credit"))
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("partner-credit-webhooks-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

const RESELLER: u64 = 3_000_000;
const CUSTOMER: u64 = 10_000_001;

/// A running `partner-credit serve`; killed on drop.
struct Server {
    child: Child,
    address: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves a world of one reseller (credit line 1000) and its customer (no credit yet), with
/// the operator's key `op`, the reseller's `r` and `webhooks` (TOML) in the configuration.
fn serve(name: &str, webhooks: &str) -> Result<Server, String> {
    let directory = scratch(name);
    let world = World {
        resellers: vec![PartnerEntry { uin: RESELLER, name: None, credit: Decimal::from(1000) }],
        customers: vec![CustomerEntry { uin: CUSTOMER, parent: RESELLER, name: None, credit: Decimal::ZERO }],
        ..World::default()
    };
    world.save(&directory.join("world.json")).unwrap();
    let config = directory.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nworld = \"world.json\"\n[operator]\nsecret_id = \"op\"\n\
             secret_key = \"op-key\"\n[[keys]]\nsecret_id = \"r\"\nsecret_key = \"r-key\"\nuin = {RESELLER}\n\
             {webhooks}\n"
        ),
    )
    .unwrap();
    let mut child = binary()
        .args(["serve", "--log", "warn", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    match line.trim().strip_prefix("partner-credit serve: listening on http://") {
        Some(address) => {
            // The server listens first, then imports its world: requests wait for the line
            // that says it is ready.
            let mut ready = String::new();
            stdout.read_line(&mut ready).unwrap();
            assert!(ready.starts_with("partner-credit serve: ready"), "{ready:?}");
            Ok(Server { address: address.parse().unwrap(), child })
        }
        None => {
            let output = child.wait_with_output().unwrap();
            Err(format!("{:?}: {}", output.status.code(), String::from_utf8_lossy(&output.stderr)))
        }
    }
}

fn webhook_toml(url: &str) -> String {
    format!("[[webhooks]]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nattempts = 3\ntimeout_ms = 2000\n")
}

/// Allocates 100 to the customer, then buys 80, 15 and 5: its available credit goes to 20
/// (below 25%), 5 (below 10%) and 0.
async fn allocate_and_spend(server: &Server) {
    let mut reseller = ApiClient::connect(server.address, "r", "r-key").await.unwrap();
    let answer =
        call(&mut reseller, "AllocateCustomerCredit", json!({"ClientUin": CUSTOMER, "AddedCredit": 100}))
            .await;
    assert_eq!(answer["TotalCredit"], 100, "{answer}");
    let mut operator = ApiClient::connect(server.address, "op", "op-key").await.unwrap();
    for (index, (amount, remaining)) in [(80, 20), (15, 5), (5, 0)].into_iter().enumerate() {
        let answer = call(
            &mut operator,
            "CreatePurchase",
            json!({"PurchaseId": format!("p-{index}"), "ClientUin": CUSTOMER, "Amount": amount}),
        )
        .await;
        assert_eq!(answer["Status"], "Committed", "{answer}");
        assert_eq!(answer["ClientRemainingCredit"], remaining, "{answer}");
    }
}

/// After [`allocate_and_spend`]: R gives the customer 100 more (total 200, 100 left, which
/// re-arms every level), then a purchase of 60 leaves 40, below 25%: one warning.
async fn send_marker_warning(server: &Server) {
    let mut reseller = ApiClient::connect(server.address, "r", "r-key").await.unwrap();
    let answer =
        call(&mut reseller, "AllocateCustomerCredit", json!({"ClientUin": CUSTOMER, "AddedCredit": 100}))
            .await;
    assert_eq!(answer["TotalCredit"], 200, "{answer}");
    let mut operator = ApiClient::connect(server.address, "op", "op-key").await.unwrap();
    let purchase = json!({"PurchaseId": "marker", "ClientUin": CUSTOMER, "Amount": 60});
    let answer = call(&mut operator, "CreatePurchase", purchase).await;
    assert_eq!(answer["ClientRemainingCredit"], 40, "{answer}");
}

async fn call(client: &mut ApiClient, action: &str, body: Value) -> Value {
    let bytes = client.call(action, serde_json::to_vec(&body).unwrap()).await.unwrap();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(answer["Response"]["Error"].is_null(), "{action}: {answer}");
    answer["Response"].clone()
}

/// Sends SIGTERM and answers the exit status (10 s at most).
fn stop(server: &mut Server) -> std::process::ExitStatus {
    // SAFETY: a plain kill(2) of our own child's pid.
    assert_eq!(unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_webhook_serves_and_stops_cleanly() {
    let receiver = Receiver::start(&[]).await;
    let mut server = serve("serves", &webhook_toml(&receiver.url("/credit"))).unwrap();
    allocate_and_spend(&server).await;
    let status = tokio::task::block_in_place(|| stop(&mut server));
    assert!(status.success(), "{status:?}");
}

#[test]
fn serve_refuses_an_https_webhook_naming_the_setting() {
    let error = serve("https", &webhook_toml("https://127.0.0.1:9/credit")).err().expect("refused");
    assert!(error.starts_with("Some(2): "), "{error}");
    assert!(
        error.contains("[[webhooks]] 1: url https://127.0.0.1:9/credit: https is not offered"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn end_to_end_purchases_crossing_25_10_and_0_percent_post_three_warnings() {
    let receiver = Receiver::start(&[]).await;
    let server = serve("end-to-end", &webhook_toml(&receiver.url("/credit"))).unwrap();
    allocate_and_spend(&server).await;

    let requests = receiver.wait_for(3).await;
    // Nothing else comes: a marker warning, made after the three, arrives fourth. The
    // deliverer posts its events one at a time in order, so a duplicate or a stray event
    // among the first three would arrive before the marker. (This waits for an event that
    // must come rather than for a guessed time in which nothing should.)
    send_marker_warning(&server).await;
    let marker = &receiver.wait_for(4).await[3];
    let marker_event = marker.json();
    assert_eq!(
        (&marker_event["Level"], &marker_event["RemainingCredit"], &marker_event["TotalCredit"]),
        (&json!("Remaining25"), &json!(40), &json!(200)),
        "{marker_event}"
    );
    assert_eq!(receiver.requests().len(), 4);
    let mut summary = Vec::new();
    for request in &requests {
        request.assert_signed(SECRET);
        let event = request.json();
        assert_eq!(event["EventType"], "CreditWarning", "{event}");
        assert_eq!(event["CustomerUin"], CUSTOMER, "{event}");
        assert_eq!(event["PartnerUin"], RESELLER, "{event}");
        assert_eq!(event["Recipients"], json!(["Partner", "Customer"]), "{event}");
        assert_eq!(event["Threshold"], Value::Null, "{event}");
        assert_eq!(event["TotalCredit"], 100, "{event}");
        summary.push((event["Level"].as_str().unwrap().to_owned(), event["RemainingCredit"].to_string()));
    }
    assert_eq!(
        summary,
        [
            ("Remaining25".to_owned(), "20".to_owned()),
            ("Remaining10".into(), "5".into()),
            ("Remaining0".into(), "0".into())
        ]
    );
    let ids: Vec<u64> = requests.iter().map(|request| request.json()["EventId"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_reset_state_the_webhooks_post_the_new_engines_events_and_ids_go_on() {
    let receiver = Receiver::start(&[]).await;
    let server = serve("reset", &webhook_toml(&receiver.url("/credit"))).unwrap();
    allocate_and_spend(&server).await;
    receiver.wait_for(3).await;
    let mut operator = ApiClient::connect(server.address, "op", "op-key").await.unwrap();
    let answer = call(&mut operator, "ResetState", json!({"To": "StartWorld"})).await;
    assert_eq!(answer["Accounts"], 2, "{answer}");
    // The world is back as it started (the customer without credit, the purchase ids free):
    // the same steps cross the same levels again, now in the new engine.
    allocate_and_spend(&server).await;
    let requests = receiver.wait_for(6).await;
    let events: Vec<(u64, String)> = requests
        .iter()
        .map(|request| {
            request.assert_signed(SECRET);
            let event = request.json();
            (event["EventId"].as_u64().unwrap(), event["Level"].as_str().unwrap().to_owned())
        })
        .collect();
    let levels = ["Remaining25", "Remaining10", "Remaining0"];
    let expected: Vec<(u64, String)> = levels
        .iter()
        .chain(&levels)
        .enumerate()
        .map(|(index, level)| (index as u64 + 1, level.to_string()))
        .collect();
    assert_eq!(events, expected);
}
