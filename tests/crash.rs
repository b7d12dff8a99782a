//! The crash test (issue 16): the real `partner-credit serve --data-dir` under a mixed load
//! over HTTP, killed with SIGKILL at random moments and restarted on the same directory, at
//! least 20 times a run; after every restart nothing acknowledged is missing, nothing
//! unacknowledged is half applied, and repeats of acknowledged purchase ids get their first
//! answers.
//!
//! Several client tasks send one-shot purchases, reservations and their commits and cancels
//! (as the operator), allocations and repossessions (as the customer's partner) and customer
//! vouchers (as the operator). Each request is recorded before it is sent; its answer (a
//! success or a refusal) makes it *acknowledged*; a request the kill cut off is *unknown*:
//! it may or may not have happened. After each restart the checks read the server back:
//! - allocations: every attempt on a customer moves its own power of two of millionths
//!   (`2^k`, `k` unique per customer), so the difference between a customer's total and its
//!   start total decomposes in exactly one way into the attempts that happened; every
//!   acknowledged allocation must be among them, no refused one, and the unknown ones are
//!   decided by it (and must stay decided);
//! - every partner's `AllocatedCredit` equals what its children hold, and its credit line is
//!   unchanged (no credit taken from one side and not given to the other);
//! - every acknowledged voucher exists with its amount; a voucher found that no acknowledged
//!   issue made must match an unknown issue (each issue has its own amount);
//! - repeats of acknowledged purchases and reservations (those of the life just killed, a
//!   sample of the older ones, all of them at the end) get their first answer, and
//!   acknowledged commits and cancels answer as committed or cancelled; then the state read
//!   again is exactly the state read before: the repeats changed nothing;
//! - unknown purchases, reservations, commits and cancels are then sent again, and what they
//!   answer is theirs from then on.
//!
//! After some kills, and after the last one, the directory is also opened in process with
//! [`Engine::open`]: the audit's conservation holds, and the same checks pass on the
//! recovered accounts and vouchers.
//!
//! `--nocapture` shows what it did. `CRASH_SEED=N` repeats a run's choices (the moments of
//! the kills fall on other requests each time); `CRASH_KILLS=N` kills N times (24). On a
//! failure the data directory and the server's log are kept, and their path is printed.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use partner_credit::api::client::ApiClient;
use partner_credit::domain::Role;
use partner_credit::world::{World, WorldSpec};
use partner_credit::{Caller, Engine, EngineConfig, Money, Uin};

const CUSTOMERS: usize = 300;
/// Each customer's total at the start.
const CUSTOMER_CREDIT: i64 = 300;
/// What every reseller and second-level reseller holds beyond what its customers were given,
/// so that allocations can grow.
const PARTNER_SPARE: i64 = 1_000_000_000;
/// Journal bytes between snapshots, and a segment's size: small, so that a run writes many
/// of both and kills land while snapshots are written and segments roll.
const SNAPSHOT_BYTES: u64 = 8 << 10;
const SEGMENT_BYTES: u64 = 4 << 10;
/// Each partner's quota for customer vouchers.
const VOUCHER_QUOTA: &str = "100000000";
/// Client tasks sending the load, each on its own connections.
const CLIENTS: usize = 6;
const KILLS_DEFAULT: usize = 24;
/// A life's load before its kill, in milliseconds (shortened when the run is behind).
const LOAD_MS_MIN: u64 = 100;
const LOAD_MS_MAX: u64 = 600;
/// The time the lives with load may take together (the final checks come after).
const LOAD_BUDGET: Duration = Duration::from_secs(45);
/// Allocation exponents per customer: 2^0 to 2^40 millionths (up to about 1.1 million).
const EXPONENTS: u32 = 41;
/// Reservations outlive the run: none expires while the test waits to resolve it.
const RESERVATION_SECONDS: i64 = 3600;
/// Older acknowledged purchases repeated after each restart (besides the last life's).
const REPEAT_SAMPLE: usize = 200;
/// Connections the checks repeat purchases on.
const CHECK_CONNECTIONS: usize = 4;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const OPERATOR: &str = "crash-operator";
const VOUCHER_EXPIRE: &str = "2099-12-31 23:59:59";

// ---------------------------------------------------------------------------------------
// The world and the server

/// The accounts of the run and their start.
struct Setup {
    world: World,
    customers: Vec<u64>,
    /// A customer's reseller or second-level reseller: who allocates to it.
    parent: HashMap<u64, u64>,
    /// Resellers and second-level resellers, which allocate and have voucher quotas.
    partners: Vec<u64>,
    distributors: Vec<u64>,
    /// Every account's total at the start (a partner's credit line, a pool, a customer's).
    start_total: BTreeMap<u64, Money>,
}

fn setup() -> Setup {
    let spec = WorldSpec {
        distributors: 2,
        sub_agents_per_distributor: 2,
        resellers: 4,
        customers: CUSTOMERS,
        customer_credit: Money::from_units(CUSTOMER_CREDIT),
        hot_partner: false,
        names: false,
        seed: 16,
    };
    let mut world = World::generate(&spec);
    let spare = Decimal::from(PARTNER_SPARE);
    for reseller in &mut world.resellers {
        reseller.credit += spare;
    }
    for sub_agent in &mut world.second_level_resellers {
        sub_agent.credit += spare;
    }
    for distributor in &mut world.distributors {
        distributor.credit = world
            .second_level_resellers
            .iter()
            .filter(|sub_agent| sub_agent.distributor == distributor.uin)
            .map(|sub_agent| sub_agent.credit)
            .sum();
    }
    let money = |credit: Decimal| Money::from_decimal(credit).unwrap();
    let mut start_total = BTreeMap::new();
    for entry in world.distributors.iter().chain(&world.resellers) {
        start_total.insert(entry.uin, money(entry.credit));
    }
    for entry in &world.second_level_resellers {
        start_total.insert(entry.uin, money(entry.credit));
    }
    for entry in &world.customers {
        start_total.insert(entry.uin, money(entry.credit));
    }
    let sub_agents: Vec<u64> = world.second_level_resellers.iter().map(|entry| entry.uin).collect();
    let partners = world.resellers.iter().map(|entry| entry.uin).chain(sub_agents.iter().copied()).collect();
    Setup {
        customers: world.customers.iter().map(|entry| entry.uin).collect(),
        parent: world.customers.iter().map(|entry| (entry.uin, entry.parent)).collect(),
        partners,
        distributors: world.distributors.iter().map(|entry| entry.uin).collect(),
        start_total,
        world,
    }
}

fn partner_key(uin: u64) -> String {
    format!("partner-{uin}")
}

/// The server's configuration: the world to import into the empty directory, a key for every
/// partner, and no quota on the actions the load and the checks call many times.
fn write_config(dir: &Path, setup: &Setup) -> PathBuf {
    setup.world.save(&dir.join("world.json")).unwrap();
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\nworld = \"world.json\"\n[operator]\nsecret_id = \"{OPERATOR}\"\n\
         secret_key = \"{OPERATOR}-key\"\n"
    );
    for uin in setup.partners.iter().chain(&setup.distributors) {
        let key = partner_key(*uin);
        text.push_str(&format!("[[keys]]\nsecret_id = \"{key}\"\nsecret_key = \"{key}-key\"\nuin = {uin}\n"));
    }
    text.push_str(&format!(
        "[quotas]\nAllocateCustomerCredit = \"none\"\nQueryCreditByUinList = \"none\"\n\
         QueryPartnerCredit = \"none\"\nQueryVoucherListByUin = \"none\"\n\
         [engine]\nworkers = 2\nsnapshot_bytes = {SNAPSHOT_BYTES}\nsegment_bytes = {SEGMENT_BYTES}\n\
         [http]\nworkers = 2\n",
    ));
    let path = dir.join("server.toml");
    std::fs::write(&path, text).unwrap();
    path
}

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

impl Server {
    /// SIGKILL: no answer in flight gets out, nothing is flushed.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Starts the server on `data`; its standard output comes line by line on the channel, its
/// log is appended to `log`.
fn spawn(config: &Path, data: &Path, log: &Path) -> (Child, mpsc::Receiver<String>) {
    let log = File::options().create(true).append(true).open(log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_partner-credit"))
        .args(["serve", "--log", "warn", "--listen", "127.0.0.1:0", "--fsync", "always", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = mpsc::channel();
    // Drains standard output until the process ends, so that the server never blocks on it.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    (child, lines)
}

/// Starts the server and waits until it is ready; checks the accounts it says it has.
fn start(config: &Path, data: &Path, log: &Path, accounts: usize, recovered: bool) -> Server {
    let (child, lines) = spawn(config, data, log);
    // Killed on drop from here on, so that a failed start leaves no server behind.
    let mut server = Server { child, address: SocketAddr::from(([0, 0, 0, 0], 0)) };
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut address = None;
    loop {
        let line =
            lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|error| {
                panic!("the server did not get ready ({error}); its log: {}", log.display())
            });
        if let Some(url) = line.strip_prefix("partner-credit serve: listening on http://") {
            address = Some(url.parse().unwrap());
        } else if line.starts_with("partner-credit serve: ready") {
            // A restart serves what the directory holds; only the first start imports.
            let source = if recovered { " recovered" } else { "" };
            assert_eq!(line, format!("partner-credit serve: ready ({accounts} accounts{source})"));
            break;
        }
    }
    server.address = address.expect("the server printed its address before ready");
    server
}

// ---------------------------------------------------------------------------------------
// Requests

/// What a request got: the `Response` object without its `RequestId`, or nothing (the
/// connection broke, or the server said it does not know the outcome).
type Reply = Option<Value>;

async fn connect(address: SocketAddr, key: &str) -> Option<ApiClient> {
    ApiClient::connect(address, key, &format!("{key}-key")).await.ok()
}

async fn call(client: &mut ApiClient, action: &str, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap();
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, client.call(action, bytes)).await.ok()?.ok()?;
    let mut response = serde_json::from_slice::<Value>(&answer).ok()?["Response"].take();
    response.as_object_mut()?.remove("RequestId")?;
    // The outcome of these is unknown, as of a broken connection.
    if matches!(code(&response), "InternalError" | "ServiceUnavailable") {
        return None;
    }
    Some(response)
}

/// A call of the checks, which nothing interrupts: it must be answered.
async fn answer(client: &mut ApiClient, action: &str, body: &Value) -> Value {
    call(client, action, body).await.unwrap_or_else(|| panic!("{action} {body} got no answer"))
}

/// The error code of an answer, or "" for a success.
fn code(response: &Value) -> &str {
    response["Error"]["Code"].as_str().unwrap_or("")
}

/// A JSON number with exactly this text.
fn number(text: &str) -> Value {
    Value::Number(text.parse().unwrap())
}

fn money_of(value: &Value) -> Money {
    Money::parse(&value.to_string()).unwrap_or_else(|error| panic!("{value}: {error}"))
}

fn cents_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// ±2^exponent millionths, as text.
fn allocation_text(exponent: u32, negative: bool) -> String {
    let micros = 1i128 << exponent;
    let sign = if negative { "-" } else { "" };
    format!("{sign}{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

// ---------------------------------------------------------------------------------------
// The model: every request sent, and what is known of it

/// A one-shot purchase or a reservation, and a reservation's commit or cancel.
#[derive(Debug)]
struct Purchase {
    id: String,
    customer: u64,
    amount: String,
    reserve: bool,
    life: usize,
    /// The first answer; `None` while unknown.
    first: Reply,
    resolution: Option<Resolution>,
}

#[derive(Debug)]
struct Resolution {
    commit: bool,
    answer: Reply,
}

impl Purchase {
    fn action(&self) -> &'static str {
        if self.reserve {
            "ReservePurchase"
        } else {
            "CreatePurchase"
        }
    }

    fn body(&self) -> Value {
        let mut body =
            json!({ "PurchaseId": self.id, "ClientUin": self.customer, "Amount": number(&self.amount) });
        if self.reserve {
            body["TimeoutSeconds"] = json!(RESERVATION_SECONDS);
        }
        body
    }

    fn reserved(&self) -> bool {
        self.reserve && self.first.as_ref().is_some_and(|first| first["Status"] == "Reserved")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    /// Answered with success.
    Done,
    /// Answered with a refusal.
    Refused,
    /// No answer yet: it may or may not have happened.
    Unknown,
    /// Was unknown; the state after a restart said whether it happened.
    Decided(bool),
}

impl Known {
    /// Whether it happened, if that is known.
    fn happened(self) -> Option<bool> {
        match self {
            Known::Done => Some(true),
            Known::Refused => Some(false),
            Known::Unknown => None,
            Known::Decided(happened) => Some(happened),
        }
    }
}

/// An allocation (positive) or repossession (negative) of 2^exponent millionths.
#[derive(Debug)]
struct Allocation {
    exponent: u32,
    negative: bool,
    life: usize,
    known: Known,
}

impl Allocation {
    fn micros(&self) -> i128 {
        let micros = 1i128 << self.exponent;
        if self.negative {
            -micros
        } else {
            micros
        }
    }
}

#[derive(Debug)]
struct VoucherIssue {
    customer: u64,
    /// Unique to this issue, so that a voucher found tells which issue made it.
    amount: Money,
    life: usize,
    known: Known,
    /// The voucher's id, once known.
    id: Option<u64>,
}

#[derive(Default)]
struct Model {
    purchases: Vec<Purchase>,
    /// Acknowledged reservations no commit or cancel has been sent for.
    open: Vec<usize>,
    allocations: BTreeMap<u64, Vec<Allocation>>,
    vouchers: Vec<VoucherIssue>,
    next_id: u64,
}

/// What the run did and checked, for the report.
#[derive(Default, Debug)]
struct Tally {
    kills_under_load: usize,
    kills_while_starting: usize,
    restarts: usize,
    in_process_recoveries: usize,
    load_ms: u128,
    /// Repeats of acknowledged purchases and reservations that got their first answer.
    repeats_compared: usize,
    /// Repeats of acknowledged commits and cancels (and of their opposites, refused).
    resolutions_compared: usize,
    /// Purchases, reservations, commits and cancels a kill left unknown, by action: sent
    /// again after the restart.
    unknowns_sent_again: BTreeMap<&'static str, usize>,
    allocation_customers_checked: usize,
    allocations_decided: usize,
    partner_checks: usize,
    vouchers_checked: usize,
    vouchers_decided: usize,
    state_comparisons: usize,
    audits: usize,
    open_reservation_checks: usize,
    /// The snapshot and journal segment files seen in the data directory after kills.
    files_seen: BTreeSet<String>,
}

// ---------------------------------------------------------------------------------------
// The load

/// One client task of one life: sends requests until told to stop.
async fn client(
    address: SocketAddr,
    model: Arc<Mutex<Model>>,
    setup: Arc<Setup>,
    life: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let Some(mut operator) = connect(address, OPERATOR).await else { return };
    let mut partners: HashMap<u64, ApiClient> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        let customer = *setup.customers.choose(&mut rng).unwrap();
        let roll = rng.gen_range(0..100);
        let lost = match roll {
            0..=54 => {
                let reserve = roll >= 35;
                let (index, action, body) = {
                    let mut model = model.lock().unwrap();
                    model.next_id += 1;
                    let id = format!("L{life}-{}", model.next_id);
                    let amount = cents_text(rng.gen_range(1..=6000));
                    let purchase =
                        Purchase { id, customer, amount, reserve, life, first: None, resolution: None };
                    let (action, body) = (purchase.action(), purchase.body());
                    model.purchases.push(purchase);
                    (model.purchases.len() - 1, action, body)
                };
                let reply = call(&mut operator, action, &body).await;
                let mut model = model.lock().unwrap();
                let lost = reply.is_none();
                model.purchases[index].first = reply;
                if model.purchases[index].reserved() {
                    model.open.push(index);
                }
                lost
            }
            55..=69 => {
                let picked = {
                    let mut model = model.lock().unwrap();
                    if model.open.is_empty() {
                        None
                    } else {
                        let slot = rng.gen_range(0..model.open.len());
                        let index = model.open.swap_remove(slot);
                        let commit = rng.gen_bool(0.6);
                        model.purchases[index].resolution = Some(Resolution { commit, answer: None });
                        Some((index, commit, model.purchases[index].id.clone()))
                    }
                };
                let Some((index, commit, id)) = picked else { continue };
                let action = if commit { "CommitPurchase" } else { "CancelPurchase" };
                let reply = call(&mut operator, action, &json!({ "PurchaseId": id })).await;
                let lost = reply.is_none();
                model.lock().unwrap().purchases[index].resolution.as_mut().unwrap().answer = reply;
                lost
            }
            70..=89 => {
                let picked = {
                    let mut model = model.lock().unwrap();
                    let attempts = model.allocations.entry(customer).or_default();
                    let used: BTreeSet<u32> = attempts.iter().map(|attempt| attempt.exponent).collect();
                    let free: Vec<u32> = (0..EXPONENTS).filter(|exponent| !used.contains(exponent)).collect();
                    free.choose(&mut rng).map(|&exponent| {
                        let negative = rng.gen_bool(0.35);
                        attempts.push(Allocation { exponent, negative, life, known: Known::Unknown });
                        (attempts.len() - 1, exponent, negative)
                    })
                };
                let Some((index, exponent, negative)) = picked else { continue };
                let partner = setup.parent[&customer];
                if let Entry::Vacant(slot) = partners.entry(partner) {
                    match connect(address, &partner_key(partner)).await {
                        Some(client) => slot.insert(client),
                        None => return,
                    };
                }
                let body = json!({
                    "ClientUin": customer,
                    "AddedCredit": number(&allocation_text(exponent, negative)),
                    "Remark": format!("crash test, life {life}"),
                });
                let reply = call(partners.get_mut(&partner).unwrap(), "AllocateCustomerCredit", &body).await;
                let lost = reply.is_none();
                if lost {
                    partners.remove(&partner);
                }
                let mut model = model.lock().unwrap();
                let attempt = &mut model.allocations.get_mut(&customer).unwrap()[index];
                attempt.known = match reply {
                    None => Known::Unknown,
                    Some(reply) if code(&reply).is_empty() => Known::Done,
                    Some(_) => Known::Refused,
                };
                continue;
            }
            _ => {
                let (index, amount) = {
                    let mut model = model.lock().unwrap();
                    // 1.00, 1.01, ...: every issue its own amount.
                    let amount = cents_text(100 + model.vouchers.len() as i64);
                    let issue = VoucherIssue {
                        customer,
                        amount: Money::parse(&amount).unwrap(),
                        life,
                        known: Known::Unknown,
                        id: None,
                    };
                    model.vouchers.push(issue);
                    (model.vouchers.len() - 1, amount)
                };
                let body = json!({ "CustomerUin": customer, "Amount": number(&amount), "ExpireTime": VOUCHER_EXPIRE });
                let reply = call(&mut operator, "IssueCustomerVoucher", &body).await;
                let lost = reply.is_none();
                let mut model = model.lock().unwrap();
                let issue = &mut model.vouchers[index];
                match reply {
                    None => {}
                    Some(reply) if code(&reply).is_empty() => {
                        issue.known = Known::Done;
                        issue.id = Some(reply["VoucherId"].as_u64().unwrap());
                    }
                    Some(_) => issue.known = Known::Refused,
                }
                lost
            }
        };
        if lost {
            // The connection is gone: a new one, unless the server is.
            match connect(address, OPERATOR).await {
                Some(client) => operator = client,
                None => return,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The checks

/// Every account's total and available credit.
type State = BTreeMap<u64, (Money, Money)>;

async fn read_state(address: SocketAddr, setup: &Setup) -> State {
    let mut client = connect(address, OPERATOR).await.unwrap();
    let uins: Vec<u64> = setup.start_total.keys().copied().collect();
    let mut state = State::new();
    for chunk in uins.chunks(50) {
        let reply = answer(&mut client, "QueryCreditByUinList", &json!({ "UinList": chunk })).await;
        assert_eq!(code(&reply), "", "{reply}");
        for item in reply["Data"].as_array().unwrap() {
            let uin = item["Uin"].as_u64().unwrap();
            state.insert(uin, (money_of(&item["TotalCredit"]), money_of(&item["RemainingCredit"])));
        }
    }
    assert_eq!(state.len(), uins.len());
    state
}

/// Which of a customer's allocation attempts its total says happened. Each attempt moves
/// its own power of two (with its sign), so the difference from the start total is a sum of
/// distinct signed powers of two in exactly one way: going up from the lowest bit, a bit
/// that is set must be the attempt of that exponent, and nothing may be left.
fn decode(customer: u64, delta: Money, attempts: &[Allocation]) -> Result<Vec<bool>, String> {
    let units = delta.units();
    // Money has 8 decimals; allocations move whole millionths.
    if units % 100 != 0 {
        return Err(format!("customer {customer}: total moved by {delta}, not whole millionths"));
    }
    let mut rest = units / 100;
    let mut happened = vec![false; attempts.len()];
    for exponent in 0..EXPONENTS {
        if rest.rem_euclid(1i128 << (exponent + 1)) == 0 {
            continue;
        }
        let Some(index) = attempts.iter().position(|attempt| attempt.exponent == exponent) else {
            return Err(format!(
                "customer {customer}: total moved by {delta}, which needs 2^{exponent} millionths that no \
                 allocation moved"
            ));
        };
        happened[index] = true;
        rest -= attempts[index].micros();
    }
    if rest != 0 {
        return Err(format!(
            "customer {customer}: total moved by {delta}, {rest} millionths more than any allocations"
        ));
    }
    Ok(happened)
}

/// Checks every customer's allocations against its total, and decides the unknown ones.
fn check_allocations(
    model: &mut Model,
    setup: &Setup,
    totals: &BTreeMap<u64, Money>,
    tally: &mut Tally,
    at: &str,
) {
    for &customer in &setup.customers {
        let total = totals[&customer];
        let delta = total - setup.start_total[&customer];
        let attempts = model.allocations.entry(customer).or_default();
        let happened = decode(customer, delta, attempts)
            .unwrap_or_else(|problem| panic!("{at}: {problem}; its allocations: {attempts:?}"));
        for (attempt, happened) in attempts.iter_mut().zip(happened) {
            match attempt.known.happened() {
                Some(known) if known != happened => panic!(
                    "{at}: customer {customer}: the allocation of {} (life {}, {:?}) {} in its total {total}",
                    allocation_text(attempt.exponent, attempt.negative),
                    attempt.life,
                    attempt.known,
                    if happened { "is" } else { "is not" },
                ),
                Some(_) => {}
                None => {
                    attempt.known = Known::Decided(happened);
                    tally.allocations_decided += 1;
                }
            }
        }
        tally.allocation_customers_checked += 1;
    }
}

/// Checks each customer's vouchers (id and amount) against the issues sent to it, and
/// decides the unknown ones.
fn check_vouchers(model: &mut Model, found: &BTreeMap<u64, Vec<(u64, Money)>>, tally: &mut Tally, at: &str) {
    let mut by_customer: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (index, issue) in model.vouchers.iter().enumerate() {
        by_customer.entry(issue.customer).or_default().push(index);
    }
    for (customer, indexes) in by_customer {
        let vouchers = found.get(&customer).map(Vec::as_slice).unwrap_or_default();
        let mut matched = vec![false; vouchers.len()];
        for &index in &indexes {
            let issue = &mut model.vouchers[index];
            let position = vouchers.iter().position(|&(id, amount)| match issue.id {
                Some(known) => id == known,
                None => amount == issue.amount,
            });
            if let Some(position) = position {
                assert!(
                    !matched[position],
                    "{at}: customer {customer}: voucher {:?} matched twice",
                    vouchers[position]
                );
                matched[position] = true;
                assert_eq!(
                    vouchers[position].1, issue.amount,
                    "{at}: customer {customer}: voucher {:?}",
                    vouchers[position]
                );
            }
            match (issue.known.happened(), position) {
                (Some(true), None) => panic!(
                    "{at}: customer {customer}: the voucher of {} issued in life {} ({:?}, id {:?}) is missing; it has {vouchers:?}",
                    issue.amount, issue.life, issue.known, issue.id
                ),
                (Some(false), Some(position)) => panic!(
                    "{at}: customer {customer}: voucher {:?} exists, but its issue in life {} was {:?}",
                    vouchers[position], issue.life, issue.known
                ),
                (None, position) => {
                    issue.known = Known::Decided(position.is_some());
                    issue.id = position.map(|position| vouchers[position].0);
                    tally.vouchers_decided += 1;
                }
                _ => {}
            }
            tally.vouchers_checked += 1;
        }
        if let Some(extra) = matched.iter().position(|matched| !matched) {
            panic!("{at}: customer {customer}: voucher {:?} was issued by no request", vouchers[extra]);
        }
    }
    for (customer, vouchers) in found {
        assert!(
            vouchers.is_empty() || model.vouchers.iter().any(|issue| issue.customer == *customer),
            "{at}: customer {customer} has vouchers {vouchers:?} and was issued none"
        );
    }
}

/// Every partner's allocated credit is what its children hold, and no credit line moved.
async fn check_partners(address: SocketAddr, setup: &Setup, state: &State, tally: &mut Tally) {
    for &partner in setup.partners.iter().chain(&setup.distributors) {
        let mut client = connect(address, &partner_key(partner)).await.unwrap();
        let reply = answer(&mut client, "QueryPartnerCredit", &json!({})).await;
        assert_eq!(code(&reply), "", "{reply}");
        assert_eq!(
            money_of(&reply["TotalCredit"]),
            setup.start_total[&partner],
            "partner {partner}: {reply}"
        );
        let children: Money = if setup.distributors.contains(&partner) {
            let subs = setup.world.second_level_resellers.iter().filter(|sub| sub.distributor == partner);
            subs.map(|sub| state[&sub.uin].0).sum()
        } else {
            money_of(&reply["CustomerTotalCredit"])
        };
        assert_eq!(
            money_of(&reply["AllocatedCredit"]),
            children,
            "partner {partner}: allocated credit is not what its children hold: {reply}"
        );
        tally.partner_checks += 1;
    }
}

async fn read_vouchers(address: SocketAddr, customers: &[u64]) -> BTreeMap<u64, Vec<(u64, Money)>> {
    let mut client = connect(address, OPERATOR).await.unwrap();
    let mut found = BTreeMap::new();
    for chunk in customers.chunks(20) {
        let reply = answer(&mut client, "QueryVoucherListByUin", &json!({ "ClientUins": chunk })).await;
        assert_eq!(code(&reply), "", "{reply}");
        for item in reply["Data"].as_array().unwrap() {
            let vouchers = item["Data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|voucher| {
                    let id = voucher["VoucherId"].as_str().unwrap().parse().unwrap();
                    (id, money_of(&voucher["TotalAmount"]))
                })
                .collect();
            found.insert(item["ClientUin"].as_u64().unwrap(), vouchers);
        }
    }
    found
}

/// A request the checks send again, and the answer it must get (`None`: whatever it gets is
/// its answer from now on).
struct Repeat {
    purchase: usize,
    action: &'static str,
    body: Value,
    expected: Option<Value>,
}

/// Sends the repeats over a few connections; answers their replies in order.
async fn send_all(address: SocketAddr, repeats: &[Repeat]) -> Vec<Value> {
    let chunk_len = repeats.len().div_ceil(CHECK_CONNECTIONS).max(1);
    let mut tasks = Vec::new();
    for chunk in repeats.chunks(chunk_len) {
        let requests: Vec<(&'static str, Value)> =
            chunk.iter().map(|repeat| (repeat.action, repeat.body.clone())).collect();
        tasks.push(tokio::spawn(async move {
            let mut client = connect(address, OPERATOR).await.unwrap();
            let mut replies = Vec::with_capacity(requests.len());
            for (action, body) in requests {
                let mut reply = answer(&mut client, action, &body).await;
                // A purchase a kill left in progress is finished by recovery; wait for it.
                for _ in 0..100 {
                    if code(&reply) != "FailedOperation.PurchaseInProgress" {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    reply = answer(&mut client, action, &body).await;
                }
                replies.push(reply);
            }
            replies
        }));
    }
    let mut replies = Vec::with_capacity(repeats.len());
    for task in tasks {
        replies.extend(task.await.unwrap());
    }
    replies
}

/// The checks after a restart, over HTTP. `killed` is the life just killed; `all` repeats
/// every acknowledged purchase rather than a sample.
async fn check_server(
    address: SocketAddr,
    model: &Mutex<Model>,
    setup: &Setup,
    killed: usize,
    all: bool,
    rng: &mut SmallRng,
    tally: &mut Tally,
) -> State {
    let at = format!("after the restart of life {killed}");
    let before = read_state(address, setup).await;
    let totals = before.iter().map(|(&uin, &(total, _))| (uin, total)).collect();
    check_allocations(&mut model.lock().unwrap(), setup, &totals, tally, &at);
    check_partners(address, setup, &before, tally).await;
    let issued: Vec<u64> = model
        .lock()
        .unwrap()
        .vouchers
        .iter()
        .map(|issue| issue.customer)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let found = read_vouchers(address, &issued).await;
    check_vouchers(&mut model.lock().unwrap(), &found, tally, &at);

    // Repeats of what was acknowledged: the first answer again, and nothing changes.
    let repeats = {
        let model = model.lock().unwrap();
        for purchase in &model.purchases {
            let Some(Resolution { commit, answer: Some(answered) }) = &purchase.resolution else { continue };
            // The reservation was acknowledged and outlives the run: only its loss could
            // refuse its commit or cancel.
            assert_eq!(
                code(answered),
                "",
                "{at}: the {} of reservation {} (life {}) was refused: {answered}",
                if *commit { "commit" } else { "cancel" },
                purchase.id,
                purchase.life
            );
        }
        let acknowledged: Vec<usize> =
            (0..model.purchases.len()).filter(|&i| model.purchases[i].first.is_some()).collect();
        let (recent, older): (Vec<usize>, Vec<usize>) =
            acknowledged.into_iter().partition(|&i| all || model.purchases[i].life + 1 >= killed);
        let sample = older.choose_multiple(rng, REPEAT_SAMPLE.min(older.len())).copied();
        let mut repeats = Vec::new();
        for index in recent.into_iter().chain(sample) {
            let purchase = &model.purchases[index];
            let first = purchase.first.clone();
            repeats.push(Repeat {
                purchase: index,
                action: purchase.action(),
                body: purchase.body(),
                expected: first,
            });
            let Some(resolution) = &purchase.resolution else { continue };
            let Some(answered) = &resolution.answer else { continue };
            let id = json!({ "PurchaseId": purchase.id });
            let (same, other, refusal) = if resolution.commit {
                ("CommitPurchase", "CancelPurchase", "FailedOperation.PurchaseCommitted")
            } else {
                ("CancelPurchase", "CommitPurchase", "FailedOperation.PurchaseCancelled")
            };
            repeats.push(Repeat {
                purchase: index,
                action: same,
                body: id.clone(),
                expected: Some(answered.clone()),
            });
            let refused = json!({ "Error": { "Code": refusal } });
            repeats.push(Repeat { purchase: index, action: other, body: id, expected: Some(refused) });
        }
        repeats
    };
    let replies = send_all(address, &repeats).await;
    {
        let model = model.lock().unwrap();
        for (repeat, reply) in repeats.iter().zip(&replies) {
            let expected = repeat.expected.as_ref().unwrap();
            let purchase = &model.purchases[repeat.purchase];
            let same = if expected.get("Error").is_some() && expected["Error"].get("Message").is_none() {
                code(reply) == code(expected)
            } else {
                reply == expected
            };
            assert!(
                same,
                "{at}: {} {} (life {}) answered\n  {reply}\nbut it was acknowledged as\n  {expected}",
                repeat.action, repeat.body, purchase.life
            );
            if repeat.action == purchase.action() {
                tally.repeats_compared += 1;
            } else {
                tally.resolutions_compared += 1;
            }
        }
    }
    let after = read_state(address, setup).await;
    assert_eq!(after, before, "{at}: repeating acknowledged purchases changed the state");
    tally.state_comparisons += 1;

    // What a kill left unknown is sent again: its answer is its own from now on.
    let unknown = {
        let model = model.lock().unwrap();
        let mut unknown = Vec::new();
        for (index, purchase) in model.purchases.iter().enumerate() {
            if purchase.first.is_none() {
                unknown.push(Repeat {
                    purchase: index,
                    action: purchase.action(),
                    body: purchase.body(),
                    expected: None,
                });
            } else if let Some(Resolution { commit, answer: None }) = purchase.resolution {
                let action = if commit { "CommitPurchase" } else { "CancelPurchase" };
                let body = json!({ "PurchaseId": purchase.id });
                unknown.push(Repeat { purchase: index, action, body, expected: None });
            }
        }
        unknown
    };
    let replies = send_all(address, &unknown).await;
    {
        let mut model = model.lock().unwrap();
        for (repeat, reply) in unknown.into_iter().zip(replies) {
            let purchase = &mut model.purchases[repeat.purchase];
            if repeat.action == purchase.action() {
                purchase.first = Some(reply);
                if purchase.reserved() {
                    model.open.push(repeat.purchase);
                }
            } else {
                purchase.resolution.as_mut().unwrap().answer = Some(reply);
            }
            *tally.unknowns_sent_again.entry(repeat.action).or_default() += 1;
        }
    }
    read_state(address, setup).await
}

/// Opens the directory in process (no server holds it): the books balance, and the
/// accounts and vouchers pass the same checks as over HTTP. Answers every account's total
/// and available credit.
async fn check_in_process(
    data: &Path,
    model: &Mutex<Model>,
    setup: &Setup,
    tally: &mut Tally,
    at: &str,
) -> State {
    let config = EngineConfig { data_dir: Some(data.to_path_buf()), workers: 2, ..EngineConfig::default() };
    let engine = Engine::open(config)
        .unwrap_or_else(|error| panic!("{at}: the data directory does not open: {error}"));
    let audit = engine.audit().await.unwrap();
    assert!(audit.ok(), "{at}: the books do not balance: {:#?}", audit.violations);
    tally.audits += 1;
    let accounts = engine.all_accounts().await.unwrap();
    let state: State = accounts.iter().map(|view| (view.uin.0, (view.total(), view.available()))).collect();
    assert_eq!(state.len(), setup.start_total.len(), "{at}: accounts");
    let totals = state.iter().map(|(&uin, &(total, _))| (uin, total)).collect();
    check_allocations(&mut model.lock().unwrap(), setup, &totals, tally, at);
    // No credit line or pool moved: the load only moves credit between partners and customers.
    for view in &accounts {
        let total = match &view.role {
            Role::Distributor { credit } | Role::Reseller { credit } => credit.total,
            Role::SecondLevelReseller { pool, .. } => pool.total,
            Role::Customer { .. } => continue,
        };
        assert_eq!(total, setup.start_total[&view.uin.0], "{at}: partner {}", view.uin);
    }
    let mut found = BTreeMap::new();
    for &customer in &setup.customers {
        let details = engine.account_details(Caller::Operator, Uin(customer)).await.unwrap();
        let vouchers: Vec<(u64, Money)> =
            details.vouchers.iter().map(|voucher| (voucher.id.0, voucher.total)).collect();
        found.insert(customer, vouchers);
    }
    check_vouchers(&mut model.lock().unwrap(), &found, tally, at);
    // Once nothing is unknown, the reservations open are exactly the acknowledged ones not
    // committed or cancelled.
    let open = {
        let model = model.lock().unwrap();
        let purchases = &model.purchases;
        let unknown = purchases.iter().any(|purchase| {
            purchase.first.is_none() || purchase.resolution.as_ref().is_some_and(|r| r.answer.is_none())
        });
        (!unknown).then(|| purchases.iter().filter(|p| p.reserved() && p.resolution.is_none()).count())
    };
    if let Some(open) = open {
        assert_eq!(engine.open_reservations().await.unwrap(), open, "{at}: open reservations");
        tally.open_reservation_checks += 1;
    }
    engine.close().unwrap();
    drop(engine);
    tally.in_process_recoveries += 1;
    state
}

// ---------------------------------------------------------------------------------------
// The run

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("partner-credit-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(text.parse().unwrap_or_else(|_| panic!("{name}={text:?} is not a number")))
}

#[test]
fn acknowledged_operations_survive_kill_9_and_nothing_is_half_applied() {
    let seed = env_number("CRASH_SEED").unwrap_or_else(rand::random);
    let kills = env_number("CRASH_KILLS").map_or(KILLS_DEFAULT, |kills| kills as usize);
    println!("crash test: seed {seed} (CRASH_SEED={seed} repeats its choices), {kills} kills");
    let dir = scratch();
    // Kept on a failure, for its journal and the server's log.
    let keep = KeepOnPanic(dir.clone());
    let data = dir.join("data");
    let log = dir.join("server.log");
    let setup = Arc::new(setup());
    let config = write_config(&dir, &setup);
    let accounts = setup.start_total.len();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut rng = SmallRng::seed_from_u64(seed);
    let model = Arc::new(Mutex::new(Model::default()));
    let mut tally = Tally::default();
    let started = Instant::now();

    let server = start(&config, &data, &log, accounts, false);
    runtime.block_on(async {
        let mut operator = connect(server.address, OPERATOR).await.unwrap();
        for &partner in &setup.partners {
            let body = json!({ "PartnerUin": partner, "Quota": number(VOUCHER_QUOTA) });
            let reply = answer(&mut operator, "GrantVoucherQuota", &body).await;
            assert_eq!(code(&reply), "", "{reply}");
        }
    });
    let mut server = Some(server);
    for life in 0..kills {
        let running = server.take().unwrap();
        // The lives left share what is left of the load budget (restarts and checks are not
        // counted against it), and each gets at least the minimum, so that every kill lands
        // under load.
        let left =
            LOAD_BUDGET.saturating_sub(Duration::from_millis(tally.load_ms as u64)) / (kills - life) as u32;
        let load = Duration::from_millis(rng.gen_range(LOAD_MS_MIN..=LOAD_MS_MAX))
            .min(left)
            .max(Duration::from_millis(LOAD_MS_MIN));
        let before = model.lock().unwrap().purchases.len();
        runtime.block_on(async {
            let stop = Arc::new(AtomicBool::new(false));
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let (model, setup, stop) = (model.clone(), setup.clone(), stop.clone());
                    tokio::spawn(client(running.address, model, setup, life, rng.gen(), stop))
                })
                .collect();
            tokio::time::sleep(load).await;
            stop.store(true, Ordering::SeqCst);
            running.kill();
            for task in tasks {
                task.await.unwrap();
            }
        });
        for entry in std::fs::read_dir(&data).unwrap() {
            tally.files_seen.insert(entry.unwrap().file_name().to_string_lossy().into_owned());
        }
        tally.load_ms += load.as_millis();
        let sent = model.lock().unwrap().purchases.len() - before;
        if sent > 0 {
            tally.kills_under_load += 1;
        }
        let mut note = String::new();
        // Sometimes the directory is recovered in process first; sometimes the server is
        // killed again while it starts.
        if rng.gen_bool(0.25) {
            let at = format!("in process after life {life}");
            runtime.block_on(check_in_process(&data, &model, &setup, &mut tally, &at));
            note.push_str(", recovered in process");
        }
        if rng.gen_bool(0.15) {
            let (mut child, _lines) = spawn(&config, &data, &log);
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..40)));
            child.kill().unwrap();
            child.wait().unwrap();
            tally.kills_while_starting += 1;
            note.push_str(", killed while starting");
        }
        let restarted = Instant::now();
        let next = start(&config, &data, &log, accounts, true);
        let restart_ms = restarted.elapsed().as_millis();
        tally.restarts += 1;
        let checked = Instant::now();
        let last = life + 1 == kills;
        runtime.block_on(check_server(next.address, &model, &setup, life, last, &mut rng, &mut tally));
        println!(
            "life {life:>2}: {load:>4?} of load ({sent} purchases sent), killed{note}; ready in {restart_ms} ms, \
             checked in {} ms",
            checked.elapsed().as_millis()
        );
        server = Some(next);
    }
    // The last check: the state as the server left it, then the directory in process.
    let last = server.take().unwrap();
    let state = runtime.block_on(read_state(last.address, &setup));
    last.kill();
    let recovered =
        runtime.block_on(check_in_process(&data, &model, &setup, &mut tally, "in process at the end"));
    assert_eq!(recovered, state, "in process at the end: the accounts differ from the server's last answers");
    tally.state_comparisons += 1;

    report(&model.lock().unwrap(), &tally, started.elapsed());
    // What makes the run a crash test: every kill cut a load short, some cut requests in
    // flight (sent again or decided after the restart), and kills landed on a journal of
    // several segments with snapshots written.
    assert_eq!(tally.kills_under_load, kills, "a life sent no purchase before its kill");
    let cut_short = tally.unknowns_sent_again.values().sum::<usize>()
        + tally.allocations_decided
        + tally.vouchers_decided;
    assert!(cut_short > 0, "no kill left a request's outcome unknown: nothing was cut in flight");
    assert!(seen(&tally, ".pcs") > 0, "no snapshot was seen after a kill: {:?}", tally.files_seen);
    assert!(seen(&tally, ".pcj") > 1, "the journal never rolled to a second segment: {:?}", tally.files_seen);
    drop(keep);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// How many of the file names seen in the data directory end with `suffix` (`.pcs`
/// snapshots, `.pcj` segments; a prepared segment's `.tmp` is neither).
fn seen(tally: &Tally, suffix: &str) -> usize {
    tally.files_seen.iter().filter(|name| name.ends_with(suffix)).count()
}

/// Prints where the run's files are if the test fails, and keeps them.
struct KeepOnPanic(PathBuf);

impl Drop for KeepOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "crash test failed: its data directory and server log are kept in {}",
                self.0.display()
            );
        }
    }
}

fn report(model: &Model, tally: &Tally, elapsed: Duration) {
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut count = |kind: &str, reply: &Reply| {
        let outcome = match reply {
            None => "unknown".to_owned(),
            Some(reply) if code(reply).is_empty() => "ok".to_owned(),
            Some(reply) => code(reply).trim_start_matches("FailedOperation.").to_owned(),
        };
        *outcomes.entry(format!("{kind} {outcome}")).or_default() += 1;
    };
    for purchase in &model.purchases {
        count(purchase.action(), &purchase.first);
        if let Some(resolution) = &purchase.resolution {
            count(if resolution.commit { "CommitPurchase" } else { "CancelPurchase" }, &resolution.answer);
        }
    }
    let mut known = |kind: &str, known: Known| {
        let outcome = match known {
            Known::Done => "ok",
            Known::Refused => "refused",
            Known::Unknown => "unknown",
            Known::Decided(true) => "unknown, then found applied",
            Known::Decided(false) => "unknown, then found not applied",
        };
        *outcomes.entry(format!("{kind} {outcome}")).or_default() += 1;
    };
    for attempt in model.allocations.values().flatten() {
        known("AllocateCustomerCredit", attempt.known);
    }
    for issue in &model.vouchers {
        known("IssueCustomerVoucher", issue.known);
    }
    println!(
        "crash test report ({:.1} s, {:.1} s of load):",
        elapsed.as_secs_f64(),
        tally.load_ms as f64 / 1000.0
    );
    println!(
        "  kills: {} under load, {} while starting; {} restarts; {} recoveries in process",
        tally.kills_under_load, tally.kills_while_starting, tally.restarts, tally.in_process_recoveries
    );
    println!(
        "  files seen after kills: {} snapshots, {} journal segments; others: {:?}",
        seen(tally, ".pcs"),
        seen(tally, ".pcj"),
        tally
            .files_seen
            .iter()
            .filter(|name| !name.ends_with(".pcs") && !name.ends_with(".pcj"))
            .collect::<Vec<_>>()
    );
    println!("  answers (purchases, commits and cancels a kill left unknown count with their answer when sent again):");
    for (outcome, count) in &outcomes {
        println!("    {outcome:<60} {count:>6}");
    }
    println!(
        "  checks: {} repeats of purchases and {} of commits and cancels got their first answers; {} unknown \
         purchases, commits and cancels sent again ({:?}); {} customer totals decomposed ({} unknown allocations decided); \
         {} partner checks; {} voucher checks ({} unknown issues decided); {} states compared; {} audits; {} counts of open reservations",
        tally.repeats_compared,
        tally.resolutions_compared,
        tally.unknowns_sent_again.values().sum::<usize>(),
        tally.unknowns_sent_again,
        tally.allocation_customers_checked,
        tally.allocations_decided,
        tally.partner_checks,
        tally.vouchers_checked,
        tally.vouchers_decided,
        tally.state_comparisons,
        tally.audits,
        tally.open_reservation_checks
    );
}

#[test]
fn a_customer_total_decomposes_into_its_allocations_in_one_way() {
    let attempt = |exponent, negative, known| Allocation { exponent, negative, life: 0, known };
    let attempts =
        [attempt(0, false, Known::Done), attempt(1, true, Known::Unknown), attempt(5, false, Known::Refused)];
    let millionths = |n: i64| Money::parse(&format!("{}", Decimal::new(n, 6))).unwrap();
    assert_eq!(decode(1, millionths(1), &attempts), Ok(vec![true, false, false]));
    assert_eq!(decode(1, millionths(-1), &attempts), Ok(vec![true, true, false]));
    assert_eq!(decode(1, millionths(31), &attempts), Ok(vec![true, true, true]));
    assert_eq!(decode(1, millionths(0), &attempts), Ok(vec![false, false, false]));
    assert!(decode(1, millionths(4), &attempts).unwrap_err().contains("2^2"));
    assert!(decode(1, millionths(1 << 41), &attempts).unwrap_err().contains("more than"));
    assert!(decode(1, Money::parse("0.00000001").unwrap(), &attempts)
        .unwrap_err()
        .contains("whole millionths"));
}
