//! The HTTP target: a running `partner-credit serve`, driven over keep-alive connections
//! (one per task, each an [`ApiClient`] signing every request with TC3-HMAC-SHA256 as the
//! operator), and read back through the API for the audit.
//!
//! The world: the server must hold the same world as `--world` (start it with `world =
//! "FILE"` in its configuration). The load generator checks this at start by reading back
//! customers and partners of the world. On a server that holds none of the world's accounts
//! it creates a small world itself, as the operator, with the API's own actions
//! (`CreatePartner`, `GrantPartnerCredit`, `CreateClient`, then `AllocateCreditPool` and
//! `AllocateCustomerCredit` at their quota of 5 per second: at most
//! 50 allocations, about ten seconds). For anything bigger, or a
//! server holding part of it, it stops with a clear error.
//!
//! The audit reads accounts with QueryCreditByUinList as the operator (50 UINs per call).
//! Its documented quota is 5 per second per caller, far too slow for 100,000 customers, so:
//! when the server allows it without limit (`[quotas] QueryCreditByUinList = "none"`, read
//! from `--config`, or found by probing: six calls at once, none refused) every account is
//! read, before and after (a *full* audit); otherwise every partner and a sample of
//! customers are read, at the quota (a *partial* audit, labelled so in the report). A
//! partner's check covers all its customers' purchases either way, because the model knows
//! every acknowledged purchase.
//!
//! Before anything, the load waits while the server's `GET /health` says it is still
//! importing its world. Around the run it scrapes the server's `GET /metrics`
//! ([`super::server_side`]) for the report's server side.
//!
//! Invariant: the audit's reads are paced to the quota when there is one; the load never
//! retries a purchase.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use serde_json::Value;

use super::model::{Book, Credit, Snapshot};
use super::report::ServerSide;
use super::server_side::{self, Exposition};
use super::target::{Answer, Driver};
use crate::api::client::ApiClient;
use crate::api::config::{QuotaSetting, ServerConfig};
use crate::coordinator::PurchaseRequest;
use crate::domain::{Money, PurchaseId, Uin};
use crate::world::World;

/// How long one request may wait for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server still importing its world (`GET /health` 503) is waited for.
const READY_WAIT: Duration = Duration::from_secs(120);

/// UINs per QueryCreditByUinList call.
const UIN_LIST_MAX: usize = 50;
/// Customers read back in a partial audit.
const SAMPLE_CUSTOMERS: usize = 500;
/// Connections reading accounts back in a full audit.
const AUDIT_CONNECTIONS: usize = 8;

/// A server to load, and the operator's key.
#[derive(Clone, Debug)]
pub struct HttpTarget {
    /// As given: `http://HOST:PORT`.
    pub url: String,
    pub address: SocketAddr,
    pub secret_id: String,
    pub secret_key: String,
    /// Whether QueryCreditByUinList is known to be unlimited (from the server's
    /// configuration); `None`: probe.
    pub uin_list_unlimited: Option<bool>,
}

impl HttpTarget {
    /// `url` is `http://HOST:PORT`; the key is the operator's.
    pub fn new(url: &str, secret_id: &str, secret_key: &str) -> anyhow::Result<HttpTarget> {
        anyhow::ensure!(
            !url.starts_with("https://"),
            "--target {url}: the load generator speaks plain HTTP only; serve without [tls] to load it"
        );
        let host = url.strip_prefix("http://").unwrap_or(url).trim_end_matches('/');
        anyhow::ensure!(!host.contains('/'), "--target {url}: give only http://HOST:PORT");
        let address = host
            .to_socket_addrs()
            .map_err(|error| anyhow::anyhow!("--target {url}: {error}"))?
            .next()
            .ok_or_else(|| anyhow::anyhow!("--target {url}: no address"))?;
        Ok(HttpTarget {
            url: format!("http://{host}"),
            address,
            secret_id: secret_id.to_owned(),
            secret_key: secret_key.to_owned(),
            uin_list_unlimited: None,
        })
    }

    /// The operator's key, the address (unless `url` is given) and the QueryCreditByUinList
    /// quota from the server's configuration file.
    pub fn from_config(config: &ServerConfig, url: Option<&str>) -> anyhow::Result<HttpTarget> {
        anyhow::ensure!(
            config.tls.is_none(),
            "the server's configuration serves HTTPS; the load generator speaks plain HTTP only"
        );
        let listen = config.listen.to_string();
        let mut target = HttpTarget::new(
            url.unwrap_or(&format!("http://{listen}")),
            &config.operator.secret_id,
            &config.operator.secret_key,
        )?;
        target.uin_list_unlimited = Some(matches!(
            config.quotas.get("QueryCreditByUinList"),
            Some(QuotaSetting::Word(word)) if word == "none"
        ));
        Ok(target)
    }

    async fn client(&self) -> anyhow::Result<ApiClient> {
        ApiClient::connect(self.address, &self.secret_id, &self.secret_key)
            .await
            .map_err(|error| anyhow::anyhow!("{}: {error:#}", self.url))
    }
}

/// A connected target, checked to hold the world.
pub struct Prepared {
    target: HttpTarget,
    /// Every account can be read back (no quota on QueryCreditByUinList).
    full: bool,
    /// The customers read back in a partial audit.
    sample: Vec<Uin>,
    /// The server's metrics just before the load, or why there are none.
    metrics_before: Result<Exposition, String>,
}

impl Prepared {
    /// Connects, checks that the server holds the world, and finds out how the audit can read.
    pub async fn connect(target: &HttpTarget, world: &World, book: &Book) -> anyhow::Result<Prepared> {
        server_side::wait_until_ready(target.address, &target.url, READY_WAIT).await?;
        let mut client = target.client().await?;
        // The first and last customers and partners of the world: enough to tell a server
        // started with the world from one without it.
        let mut probe: Vec<Uin> = Vec::new();
        probe.extend(book.customers.first());
        probe.extend(book.customers.last());
        probe.extend(book.partner_uins().take(1));
        let mut answer = query(&mut client, &probe).await?;
        if matches!(&answer, Err((code, _)) if code.starts_with("ResourceNotFound")) {
            let allocations = allocations_to_create(world);
            let first_partner: Vec<Uin> = book.partner_uins().take(1).collect();
            let empty = matches!(query(&mut client, &first_partner).await?, Err((code, _)) if code.starts_with("ResourceNotFound"));
            if empty && allocations <= CREATE_ALLOCATIONS_MAX {
                eprintln!(
                    "partner-credit load: the server holds none of the world: creating its {} accounts through the API \
                     ({allocations} allocations at 5 per second)",
                    world.len()
                );
                create_world(&mut client, world).await?;
                answer = query(&mut client, &probe).await?;
            }
        }
        if let Err((code, message)) = &answer {
            if code.starts_with("ResourceNotFound") {
                anyhow::bail!(
                    "the server at {} does not hold the world ({code}: {message}); start it with the same world file \
                     (`world = \"FILE\"` in its configuration): the load generator creates a world through the API \
                     only on a server without its accounts and with at most {CREATE_ALLOCATIONS_MAX} allocations, \
                     because AllocateCustomerCredit and AllocateCreditPool are limited to 5 calls per second",
                    target.url
                );
            }
            anyhow::bail!("the server at {} refused QueryCreditByUinList: {code}: {message}", target.url);
        }
        let full = match target.uin_list_unlimited {
            Some(unlimited) => unlimited,
            None => {
                // Six calls at once: a server at the documented 5 per second refuses one.
                let mut limited = false;
                for _ in 0..6 {
                    if let Err((code, _)) = query(&mut client, &probe).await? {
                        limited |= code == "RequestLimitExceeded";
                    }
                }
                if limited {
                    // Let the budget refill before the audit's first reads.
                    tokio::time::sleep(Duration::from_millis(1_100)).await;
                }
                !limited
            }
        };
        let step = (book.customers.len() / SAMPLE_CUSTOMERS).max(1);
        let sample = book.customers.iter().step_by(step).take(SAMPLE_CUSTOMERS).copied().collect();
        let metrics_before = Err("not scraped".into());
        Ok(Prepared { target: target.clone(), full, sample, metrics_before })
    }

    /// Scrapes the server's metrics, as they are before the load (after the audit's first
    /// reads, so that only the load's requests fall between the two scrapes).
    pub async fn scrape_before(&mut self) {
        self.metrics_before = server_side::scrape(self.target.address).await;
    }

    /// What the server counted since [`Prepared::scrape_before`]; call it before the audit's
    /// last reads.
    pub async fn server_side(&self, client_latency_us_mean: f64) -> ServerSide {
        let url = &self.target.url;
        match (&self.metrics_before, server_side::scrape(self.target.address).await) {
            (Ok(before), Ok(after)) => server_side::summarize(url, before, &after, client_latency_us_mean),
            (Err(note), _) => server_side::unavailable(url, note.clone()),
            (_, Err(note)) => server_side::unavailable(url, note),
        }
    }

    pub fn scope(&self) -> &'static str {
        if self.full {
            "full"
        } else {
            "partial"
        }
    }

    pub fn note(&self) -> Option<String> {
        (!self.full).then(|| {
            format!(
                "QueryCreditByUinList is rate-limited on this server, so every partner and a sample of {} customers were \
                 read back; start the server with `[quotas] QueryCreditByUinList = \"none\"` for a full audit",
                self.sample.len()
            )
        })
    }

    /// One connection per task.
    pub async fn drivers(&self, count: usize) -> anyhow::Result<Vec<Driver>> {
        let clients = futures::future::join_all((0..count).map(|_| self.target.client())).await;
        clients
            .into_iter()
            .map(|client| Ok(Driver::Http(Box::new(Connection::new(client?, self.target.clone())))))
            .collect()
    }

    /// Reads back every account (full) or every partner and the sample (partial).
    pub async fn snapshot(&self, book: &Book) -> anyhow::Result<Snapshot> {
        let mut uins: Vec<Uin> = book.partner_uins().collect();
        if self.full {
            uins.extend(&book.customers);
        } else {
            uins.extend(&self.sample);
        }
        let chunks: Vec<&[Uin]> = uins.chunks(UIN_LIST_MAX).collect();
        let mut snapshot = Snapshot::with_capacity(uins.len());
        if self.full {
            let shares = chunks.len().div_ceil(AUDIT_CONNECTIONS).max(1);
            let reads = chunks.chunks(shares).map(|share| async move {
                let mut client = self.target.client().await?;
                let mut read = Vec::new();
                for chunk in share {
                    read.extend(read_credit(&mut client, chunk, false).await?);
                }
                anyhow::Ok(read)
            });
            for read in futures::future::join_all(reads).await {
                snapshot.extend(read?);
            }
        } else {
            let mut client = self.target.client().await?;
            for chunk in chunks {
                snapshot.extend(read_credit(&mut client, chunk, true).await?);
            }
        }
        Ok(snapshot)
    }
}

/// The most allocations (AllocateCreditPool and AllocateCustomerCredit calls, 5 per second
/// each) the load generator makes to create a world through the API: about 10 seconds.
const CREATE_ALLOCATIONS_MAX: usize = 50;

/// The allocations creating `world` through the API takes: every pool and customer with credit.
fn allocations_to_create(world: &World) -> usize {
    let pools = world.second_level_resellers.iter().filter(|pool| !pool.credit.is_zero()).count();
    pools + world.customers.iter().filter(|customer| !customer.credit.is_zero()).count()
}

/// Creates `world` on a server that holds none of it, as the operator: partners with their
/// credit lines (no quota), then pools and customers with their allocations, at the quota.
async fn create_world(client: &mut ApiClient, world: &World) -> anyhow::Result<()> {
    use serde_json::json;
    for (kind, partners) in [("Distributor", &world.distributors), ("Reseller", &world.resellers)] {
        for partner in partners {
            set_up(client, "CreatePartner", json!({ "Kind": kind, "Uin": partner.uin })).await?;
            if !partner.credit.is_zero() {
                let grant = json!({ "PartnerUin": partner.uin, "Credit": number(partner.credit) });
                set_up(client, "GrantPartnerCredit", grant).await?;
            }
        }
    }
    for pool in &world.second_level_resellers {
        let create = json!({ "Kind": "SubAgent", "ParentUin": pool.distributor, "Uin": pool.uin });
        set_up(client, "CreatePartner", create).await?;
        if !pool.credit.is_zero() {
            let allocate = json!({ "SubAgentUin": pool.uin, "Credit": number(pool.credit) });
            set_up(client, "AllocateCreditPool", allocate).await?;
        }
    }
    for customer in &world.customers {
        let name = format!("load-{}", customer.uin);
        let create = json!({ "ParentUin": customer.parent, "Uin": customer.uin, "Name": name });
        set_up(client, "CreateClient", create).await?;
        if !customer.credit.is_zero() {
            let allocate = json!({ "ClientUin": customer.uin, "AddedCredit": number(customer.credit) });
            set_up(client, "AllocateCustomerCredit", allocate).await?;
        }
    }
    Ok(())
}

/// A decimal as a JSON number, exactly as written (the API reads amounts as numbers).
fn number(value: rust_decimal::Decimal) -> Value {
    serde_json::from_str(&value.normalize().to_string()).expect("a decimal is a JSON number")
}

/// One set-up call, waiting out RequestLimitExceeded; any other error stops the creation.
async fn set_up(client: &mut ApiClient, action: &str, body: Value) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&body)?;
    for _ in 0..100 {
        let answer = client.call(action, body.clone()).await?;
        match error_code(&answer) {
            None => return Ok(()),
            Some("RequestLimitExceeded") => tokio::time::sleep(Duration::from_millis(220)).await,
            Some(code) => anyhow::bail!(
                "creating the world through the API: {action} answered {code}: {}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    anyhow::bail!("creating the world through the API: {action} still over its quota after 100 tries")
}

/// One QueryCreditByUinList: the `Data` array, or the error's code and message.
async fn query(client: &mut ApiClient, uins: &[Uin]) -> anyhow::Result<Result<Vec<Value>, (String, String)>> {
    let body = serde_json::to_vec(
        &serde_json::json!({ "UinList": uins.iter().map(|uin| uin.0).collect::<Vec<_>>() }),
    )?;
    let answer: Value = serde_json::from_slice(&client.call("QueryCreditByUinList", body).await?)?;
    let response = &answer["Response"];
    if let Some(error) = response.get("Error") {
        let text = |field: &str| error[field].as_str().unwrap_or("").to_owned();
        return Ok(Err((text("Code"), text("Message"))));
    }
    Ok(Ok(response["Data"].as_array().cloned().unwrap_or_default()))
}

/// Reads `uins`; when `paced`, waits out RequestLimitExceeded (5 per second by default).
async fn read_credit(
    client: &mut ApiClient,
    uins: &[Uin],
    paced: bool,
) -> anyhow::Result<Vec<(Uin, Credit)>> {
    for _ in 0..20 {
        match query(client, uins).await? {
            Ok(data) => {
                return data
                    .iter()
                    .map(|entry| {
                        let money = |field: &str| -> anyhow::Result<Money> {
                            let text = entry[field].to_string();
                            Money::parse(&text).map_err(|error| anyhow::anyhow!("{field} {text}: {error}"))
                        };
                        let uin =
                            entry["Uin"].as_u64().ok_or_else(|| anyhow::anyhow!("no Uin in {entry}"))?;
                        Ok((
                            Uin(uin),
                            Credit { total: money("TotalCredit")?, available: money("RemainingCredit")? },
                        ))
                    })
                    .collect();
            }
            Err((code, _)) if code == "RequestLimitExceeded" => {
                tokio::time::sleep(Duration::from_millis(if paced { 250 } else { 50 })).await;
            }
            Err((code, message)) => anyhow::bail!("reading accounts back: {code}: {message}"),
        }
    }
    anyhow::bail!("reading accounts back: still over the QueryCreditByUinList quota after 20 tries")
}

/// One task's keep-alive connection.
pub struct Connection {
    client: ApiClient,
    /// Where to connect again after a transport failure.
    target: HttpTarget,
    /// The last request failed in transport: the connection is reopened before the next.
    broken: bool,
    /// Codes seen, interned: the outcome tally wants `&'static str`, and the codes of one
    /// server are a handful.
    codes: Vec<&'static str>,
}

/// Codes interned by every connection, so each distinct code is leaked once.
static CODES: StdMutex<Vec<&'static str>> = StdMutex::new(Vec::new());

impl Connection {
    fn new(client: ApiClient, target: HttpTarget) -> Connection {
        Connection { client, target, broken: false, codes: Vec::new() }
    }

    /// Reopens a broken connection. A failure waits 100 ms, so a task whose server is gone
    /// counts an error every 100 ms rather than spinning.
    async fn call(&mut self, action: &str, body: Vec<u8>) -> anyhow::Result<bytes::Bytes> {
        if self.broken {
            match self.target.client().await {
                Ok(client) => {
                    self.client = client;
                    self.broken = false;
                }
                Err(error) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Err(error);
                }
            }
        }
        // A server that stops answering must not hold the run past its duration: after
        // REQUEST_TIMEOUT the request is a failure (Transport) and the connection is replaced.
        let answer = match tokio::time::timeout(REQUEST_TIMEOUT, self.client.call(action, body)).await {
            Ok(answer) => answer,
            Err(_) => Err(anyhow::anyhow!("no answer within {} s", REQUEST_TIMEOUT.as_secs())),
        };
        self.broken = answer.is_err();
        answer
    }

    fn intern(&mut self, code: &str) -> &'static str {
        if let Some(seen) = self.codes.iter().find(|seen| **seen == code) {
            return seen;
        }
        let mut codes = CODES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let interned = match codes.iter().find(|seen| **seen == code) {
            Some(seen) => *seen,
            None if codes.len() < 256 => {
                let leaked: &'static str = Box::leak(code.to_owned().into_boxed_str());
                codes.push(leaked);
                leaked
            }
            None => "OtherCode",
        };
        self.codes.push(interned);
        interned
    }

    /// Sends one request; a success, a refusal by code, or a failure.
    async fn send(&mut self, action: &str, body: Vec<u8>) -> Answer {
        match self.call(action, body).await {
            Ok(bytes) => match error_code(&bytes) {
                None => Answer::Done,
                Some(code) => self.classify(code, &bytes),
            },
            Err(error) => Answer::Failed("Transport", format!("{error:#}")),
        }
    }

    fn classify(&mut self, code: &str, body: &[u8]) -> Answer {
        let code = self.intern(code);
        if is_failure(code) {
            Answer::Failed(code, String::from_utf8_lossy(body).into_owned())
        } else {
            Answer::Refused(code)
        }
    }

    pub async fn purchase(&mut self, id: &PurchaseId, customer: Uin, amount: Money) -> Answer {
        let body =
            format!(r#"{{"PurchaseId":"{}","ClientUin":{},"Amount":{amount}}}"#, id.as_str(), customer.0);
        self.send("CreatePurchase", body.into_bytes()).await
    }

    pub async fn reserve(
        &mut self,
        id: &PurchaseId,
        customer: Uin,
        amount: Money,
        timeout_ms: i64,
    ) -> Answer {
        let body = format!(
            r#"{{"PurchaseId":"{}","ClientUin":{},"Amount":{amount},"TimeoutSeconds":{}}}"#,
            id.as_str(),
            customer.0,
            (timeout_ms / 1000).max(1)
        );
        self.send("ReservePurchase", body.into_bytes()).await
    }

    /// CommitPurchase (`commit`) or CancelPurchase.
    pub async fn resolve(&mut self, id: &PurchaseId, commit: bool) -> Answer {
        let body = format!(r#"{{"PurchaseId":"{}"}}"#, id.as_str());
        self.send(if commit { "CommitPurchase" } else { "CancelPurchase" }, body.into_bytes()).await
    }

    pub async fn allocate(&mut self, customer: Uin, delta: Money) -> Answer {
        let body = format!(r#"{{"ClientUin":{},"AddedCredit":{delta}}}"#, customer.0);
        self.send("AllocateCustomerCredit", body.into_bytes()).await
    }

    pub async fn purchase_batch(&mut self, requests: &[PurchaseRequest], answers: &mut Vec<Answer>) {
        use std::fmt::Write;
        let mut body = String::with_capacity(16 + requests.len() * 64);
        body.push_str(r#"{"Purchases":["#);
        for (index, request) in requests.iter().enumerate() {
            if index > 0 {
                body.push(',');
            }
            let _ = write!(
                body,
                r#"{{"PurchaseId":"{}","ClientUin":{},"Amount":{}}}"#,
                request.id.as_str(),
                request.customer.0,
                request.amount
            );
        }
        body.push_str("]}");
        let bytes = match self.call("CreatePurchases", body.into_bytes()).await {
            Ok(bytes) => bytes,
            Err(error) => {
                let message = format!("{error:#}");
                answers.extend(requests.iter().map(|_| Answer::Failed("Transport", message.clone())));
                return;
            }
        };
        if let Some(code) = error_code(&bytes) {
            let code = code.to_owned();
            answers.extend(requests.iter().map(|_| self.classify(&code, &bytes)));
            return;
        }
        let parsed: Value = match serde_json::from_slice(&bytes) {
            Ok(parsed) => parsed,
            Err(error) => {
                let message = format!("unreadable answer: {error}");
                answers.extend(requests.iter().map(|_| Answer::Failed("BadAnswer", message.clone())));
                return;
            }
        };
        let results = parsed["Response"]["Results"].as_array().map(Vec::as_slice).unwrap_or_default();
        for index in 0..requests.len() {
            let answer = match results.get(index) {
                Some(result) if result["Status"] == "Committed" => Answer::Done,
                Some(result) => {
                    let code = result["ErrorCode"].as_str().unwrap_or("UnknownError").to_owned();
                    self.classify(&code, result.to_string().as_bytes())
                }
                None => Answer::Failed("BadAnswer", "fewer results than purchases".into()),
            };
            answers.push(answer);
        }
    }
}

/// The error code of an answer, if it is an error: `"Error":{"Code":"..."`, read without
/// parsing the whole body (the server writes compact JSON).
pub(crate) fn error_code(body: &[u8]) -> Option<&str> {
    const MARK: &[u8] = br#""Error":{"Code":""#;
    let start = body.windows(MARK.len()).position(|window| window == MARK)? + MARK.len();
    let length = body[start..].iter().position(|&byte| byte == b'"')?;
    std::str::from_utf8(&body[start..start + length]).ok()
}

/// Codes that mean the system (or the load generator's request) is broken, not a refusal a
/// valid purchase can get.
/// Whether an error code means the request itself was wrong or the system failed (an
/// error of the run), rather than an expected refusal. The load generator sends valid
/// parameters, so a parameter error is its own mistake; only the allocation bound
/// (`InvalidParameterValue.CreditAmountOutOfRange`) is a refusal the load expects.
fn is_failure(code: &str) -> bool {
    code == "InternalError"
        || code.starts_with("AuthFailure")
        || (code.starts_with("InvalidParameterValue")
            && code != "InvalidParameterValue.CreditAmountOutOfRange")
        || matches!(
            code,
            "InvalidAction"
                | "UnsupportedOperation"
                | "MissingParameter"
                | "InvalidParameter"
                | "UnknownParameter"
                | "NoSuchVersion"
                | "RequestTimeout"
                | "RequestSizeLimitExceeded"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_compact_answers() {
        let refused = br#"{"Response":{"Error":{"Code":"FailedOperation.InsufficientClientCredit","Message":"x"},"RequestId":"r"}}"#;
        assert_eq!(error_code(refused), Some("FailedOperation.InsufficientClientCredit"));
        assert_eq!(error_code(br#"{"Response":{"Status":"Committed","RequestId":"r"}}"#), None);
        assert!(is_failure("InternalError") && is_failure("AuthFailure.SignatureFailure"));
        assert!(is_failure("InvalidParameterValue.Amount") && is_failure("InvalidParameterValue"));
        assert!(!is_failure("InvalidParameterValue.CreditAmountOutOfRange"));
        assert!(
            !is_failure("RequestLimitExceeded") && !is_failure("FailedOperation.InsufficientClientCredit")
        );
    }

    #[test]
    fn targets_parse() {
        let target = HttpTarget::new("http://127.0.0.1:8080/", "id", "key").unwrap();
        assert_eq!((target.url.as_str(), target.address.port()), ("http://127.0.0.1:8080", 8080));
        let refused = |url| HttpTarget::new(url, "id", "key").err().map(|error| error.to_string());
        assert_eq!(
            refused("https://127.0.0.1:8080").as_deref(),
            Some(
                "--target https://127.0.0.1:8080: the load generator speaks plain HTTP only; serve \
                 without [tls] to load it"
            )
        );
        assert_eq!(
            refused("http://127.0.0.1:8080/path").as_deref(),
            Some("--target http://127.0.0.1:8080/path: give only http://HOST:PORT")
        );
    }
}
