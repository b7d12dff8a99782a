//! Webhooks: the server posts every event of the engine's bus as JSON to each configured
//! `[[webhooks]]` URL, signed with that webhook's secret.
//!
//! A credit warning is posted as:
//!
//! ```json
//! {"EventId": 7, "EventType": "CreditWarning", "Time": "2026-01-01 00:00:00",
//!  "CustomerUin": 10000001, "PartnerUin": 3000000, "Level": "Remaining25",
//!  "Recipients": ["Partner", "Customer"], "Threshold": null,
//!  "TotalCredit": 100, "RemainingCredit": 20}
//! ```
//!
//! `Level` is `Remaining25`, `Remaining10`, `Remaining0`, `PartnerCustom` or
//! `CustomerCustom`; `Recipients` is `["Partner", "Customer"]` for the first three,
//! `["Partner"]` or `["Customer"]` for the custom ones, whose `Threshold` is
//! `{"RemainingPercent": 12.5}` or `{"RemainingAmount": 40}` (otherwise `null`). Amounts are
//! exact JSON numbers; `Time` is when the engine saw the crossing, UTC. `EventId` increases
//! by one per event a webhook takes from its queue, counted over all the server's webhooks
//! from 1 at every start; a retry of an event keeps its id.
//!
//! Every request carries two headers:
//! - `X-PartnerCredit-Timestamp`: the Unix time in seconds when this attempt was signed;
//! - `X-PartnerCredit-Signature`: `sha256=` and the lowercase hex of
//!   HMAC-SHA256(secret, `<timestamp>.<body>`), the key being the webhook's `secret` as
//!   UTF-8 and the message the timestamp header's text, a dot, and the body's exact bytes.
//!
//! A receiver verifies a request by computing that HMAC over the raw body (before any JSON
//! parsing) and comparing it with the header in constant time ([`verify`] does both), then
//! refusing timestamps more than a few minutes from its clock, which bounds replays. Delivery
//! is at least once: a receiver that answers too late, or whose connection drops mid-answer,
//! gets the event again, so it deduplicates by `EventId`.
//!
//! Delivery: one task per webhook, with its own bounded queue on the bus (`queue` events).
//! Events go out one at a time, in the order the queue holds them, over one keep-alive
//! connection. An attempt fails on a connection error, no complete answer within
//! `timeout_ms`, or a status other than 2xx; it is retried after 100 ms, doubling up to 5 s,
//! until `attempts` tries, after which the event is logged and counted as failed. While a
//! webhook retries, its queue fills; an event that finds it full is dropped and counted, and
//! drops are logged at most once a second. Nothing here ever makes the engine wait.
//!
//! When the server replaces its engine (`ResetState`), [`Webhooks::resubscribe`] hands each
//! task a subscription to the new engine's bus: the task first delivers what the old queue
//! still held, then goes on with the new one; its counts and event ids go on too.
//!
//! Invariant: a request's signature covers its exact body and timestamp header.
//! Invariant: only plain HTTP (the crate's client is hyper's http1 without TLS), so a
//! configuration with an `https://` URL is refused at start rather than sent in clear.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Number, Value};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::WebhookConfig;
use super::{money, time, uin};
use crate::domain::Threshold;
use crate::events::{Event, EventBus, Subscription};

/// The header with the Unix seconds the signature covers.
pub const TIMESTAMP_HEADER: &str = "X-PartnerCredit-Timestamp";
/// The header with `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-PartnerCredit-Signature";

/// The first retry's wait; each next one doubles, up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The most of an answer's body read (and thrown away) to keep the connection usable.
const ANSWER_BYTES_MAX: usize = 64 * 1024;

/// Where a webhook posts: the parts of an `http://host[:port][/path]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// A name or an IP address, without the brackets of an IPv6 address.
    pub host: String,
    pub port: u16,
    /// The `Host` header: the host as written in the URL, and the port unless it is 80.
    pub authority: String,
    /// The request target: the path and query, `/` when the URL has none.
    pub path: String,
}

impl Endpoint {
    /// Parses a webhook URL; the error says what is wrong, for a configuration error.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("a URL has no spaces or control characters".into());
        }
        let scheme_end = url.find("://").ok_or("expected http://host:port/path")?;
        let scheme = url[..scheme_end].to_ascii_lowercase();
        if scheme == "https" {
            return Err("https is not offered: the server's webhook client speaks plain HTTP only \
                 (no TLS client is built in); post to http://, for example to a relay on the \
                 same host that forwards over HTTPS"
                .into());
        }
        if scheme != "http" {
            return Err(format!("the scheme is {scheme}, not http"));
        }
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        if path.contains('#') {
            return Err("a webhook URL has no #fragment".into());
        }
        if authority.contains('@') {
            return Err("a webhook URL has no user name or password".into());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or("an IPv6 address needs its ]")?;
                if host.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(format!("[{host}] is not an IPv6 address"));
                }
                (host, after)
            }
            None => {
                let colon = authority.find(':').unwrap_or(authority.len());
                (&authority[..colon], &authority[colon..])
            }
        };
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        if !authority.starts_with('[')
            && !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        {
            return Err(format!("{host} is not a host name or address"));
        }
        let port = match port.strip_prefix(':') {
            None if port.is_empty() => 80,
            None => return Err(format!("unexpected {port:?} after the host")),
            Some(digits) => match digits.parse::<u16>() {
                Ok(port) if port > 0 && digits.bytes().all(|byte| byte.is_ascii_digit()) => port,
                _ => return Err(format!("the port {digits:?} is not 1 to 65535")),
            },
        };
        let path = match path {
            "" => "/".to_owned(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_owned(),
        };
        if path.parse::<hyper::Uri>().is_err() {
            return Err(format!("{path} is not a valid path"));
        }
        let authority =
            if port == 80 { authority.trim_end_matches(":80").to_owned() } else { authority.to_owned() };
        Ok(Endpoint { host: host.to_owned(), port, authority, path })
    }
}

/// What one webhook did since the server started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Events a 2xx answer acknowledged.
    pub delivered: u64,
    /// Events given up on after every attempt failed.
    pub failed: u64,
    /// Events dropped because the webhook's queue was full.
    pub dropped: u64,
}

/// The live counters behind a [`WebhookStats`], shared with the webhook's task.
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    /// The current subscription's own count: the bus adds to it when the queue is full. A
    /// `parking_lot::Mutex` and not a tokio one, because no await happens while it is held;
    /// only a resubscription writes it.
    dropped: parking_lot::Mutex<Arc<AtomicU64>>,
    /// What the subscriptions before the current one dropped.
    dropped_before: AtomicU64,
}

impl Counters {
    fn stats(&self) -> WebhookStats {
        let dropped = self.dropped.lock().load(Ordering::Relaxed);
        WebhookStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped_before.load(Ordering::Relaxed) + dropped,
        }
    }

    /// Counts the drops of a new subscription from now on, after the old one's.
    fn switch(&self, dropped: Arc<AtomicU64>) {
        let mut current = self.dropped.lock();
        self.dropped_before.fetch_add(current.load(Ordering::Relaxed), Ordering::Relaxed);
        *current = dropped;
    }
}

/// The running webhooks of a server: one task each.
pub struct Webhooks {
    running: Vec<Running>,
    /// Set to `true` to stop: each task delivers what its queue holds, then ends.
    stop: watch::Sender<bool>,
}

struct Running {
    url: String,
    /// The queue's capacity, for a subscription to another bus.
    queue: usize,
    counters: Arc<Counters>,
    /// Where a subscription to another bus goes to the task.
    switch: tokio::sync::mpsc::UnboundedSender<Subscription>,
    task: JoinHandle<()>,
}

/// What one webhook's task needs to post.
struct Target {
    url: String,
    endpoint: Endpoint,
    secret: String,
    attempts: u32,
    timeout: Duration,
}

/// Starts one delivery task per webhook, each subscribed to `bus` with a queue of its
/// `queue` events. Call it within a tokio runtime; the configurations are checked again
/// (a bad one is an error naming it).
pub fn start(bus: &Arc<EventBus>, hooks: &[WebhookConfig]) -> Result<Webhooks, String> {
    let targets = hooks
        .iter()
        .enumerate()
        .map(|(index, hook)| {
            hook.validate().map_err(|message| format!("[[webhooks]] {}: {message}", index + 1))?;
            let endpoint = Endpoint::parse(&hook.url).expect("validated");
            Ok(Target {
                url: hook.url.clone(),
                endpoint,
                secret: hook.secret.clone(),
                attempts: hook.attempts,
                timeout: Duration::from_millis(hook.timeout_ms),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let (stop, stopped) = watch::channel(false);
    // One sequence for the server: ids increase over all its webhooks.
    let event_ids = Arc::new(AtomicU64::new(0));
    let running = targets
        .into_iter()
        .zip(hooks)
        .map(|(target, hook)| {
            let subscription = bus.subscribe(hook.queue);
            let counters = Arc::new(Counters {
                delivered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                dropped: parking_lot::Mutex::new(subscription.dropped_counter()),
                dropped_before: AtomicU64::new(0),
            });
            let url = target.url.clone();
            let (switch, switches) = tokio::sync::mpsc::unbounded_channel();
            let queues =
                Queues { current: subscription, switches, backlog: std::collections::VecDeque::new() };
            let task =
                tokio::spawn(run(target, queues, counters.clone(), event_ids.clone(), stopped.clone()));
            Running { url, queue: hook.queue, counters, switch, task }
        })
        .collect();
    Ok(Webhooks { running, stop })
}

impl Webhooks {
    /// Each webhook's URL and counts, in configuration order.
    pub fn stats(&self) -> Vec<(String, WebhookStats)> {
        self.running.iter().map(|running| (running.url.clone(), running.counters.stats())).collect()
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Subscribes every webhook to `bus` (a new engine's) in place of the bus it had: each
    /// task delivers what its old queue holds, then the new one's events.
    pub fn resubscribe(&self, bus: &Arc<EventBus>) {
        for running in &self.running {
            let subscription = bus.subscribe(running.queue);
            // A task that ended (the server is stopping) has nothing left to deliver.
            let _ = running.switch.send(subscription);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Stops the webhooks: each delivers what its queue holds (retries included) for up to
    /// `grace`, then is cut off. Logs and answers each one's counts.
    pub async fn shutdown(self, grace: Duration) -> Vec<(String, WebhookStats)> {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        let mut stats = Vec::with_capacity(self.running.len());
        for running in self.running {
            let mut task = running.task;
            let finished = tokio::time::timeout_at(deadline, &mut task).await.is_ok();
            if !finished {
                task.abort();
            }
            let counts = running.counters.stats();
            tracing::info!(
                url = %running.url,
                delivered = counts.delivered,
                failed = counts.failed,
                dropped = counts.dropped,
                finished,
                "webhook stopped"
            );
            stats.push((running.url, counts));
        }
        stats
    }
}

/// A task's queues: the current subscription, what an old one still held, and where a new
/// one comes from.
struct Queues {
    current: Subscription,
    switches: tokio::sync::mpsc::UnboundedReceiver<Subscription>,
    backlog: std::collections::VecDeque<Event>,
}

impl Queues {
    /// Takes `next` as the current subscription; what the old one held is delivered first.
    fn switch(&mut self, next: Subscription, counters: &Counters) {
        while let Ok(event) = self.current.try_recv() {
            self.backlog.push_back(event);
        }
        counters.switch(next.dropped_counter());
        self.current = next;
    }
}

/// One webhook's task: takes events off its queue and posts them one at a time, until the
/// bus is gone or it is told to stop and its queue is empty.
async fn run(
    target: Target,
    mut queues: Queues,
    counters: Arc<Counters>,
    event_ids: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut drops = DropReport { url: target.url.clone(), counters: counters.clone(), logged: 0 };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connection: Option<Connection> = None;
    let mut stopping = *stop.borrow();
    loop {
        let event = if let Some(event) = queues.backlog.pop_front() {
            event
        } else if stopping {
            match queues.current.try_recv() {
                Ok(event) => event,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                event = queues.current.recv() => match event {
                    Some(event) => event,
                    // The bus is gone: the end, unless it was an engine replaced by another,
                    // whose subscription was sent before the old bus could go.
                    None => match queues.switches.try_recv() {
                        Ok(next) => {
                            queues.switch(next, &counters);
                            continue;
                        }
                        Err(_) => break,
                    },
                },
                Some(next) = queues.switches.recv() => {
                    queues.switch(next, &counters);
                    continue;
                }
                _ = tick.tick() => {
                    drops.report();
                    continue;
                }
                // Told to stop, or the sender is gone: either way, drain and end.
                _ = stop.changed() => {
                    stopping = true;
                    continue;
                }
            }
        };
        let id = event_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let body = Bytes::from(body(id, &event));
        let delivery = deliver(&target, &mut connection, &body);
        tokio::pin!(delivery);
        // Drops go on being reported while an event is retried for seconds.
        let outcome = loop {
            tokio::select! {
                outcome = &mut delivery => break outcome,
                _ = tick.tick() => drops.report(),
            }
        };
        match outcome {
            Ok(()) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    url = %target.url,
                    event_id = id,
                    attempts = target.attempts,
                    %error,
                    "webhook: giving up on an event"
                );
            }
        }
    }
    drops.report();
}

/// Logs the events a full queue dropped since the last report.
struct DropReport {
    url: String,
    counters: Arc<Counters>,
    logged: u64,
}

impl DropReport {
    fn report(&mut self) {
        let dropped = self.counters.stats().dropped;
        if dropped > self.logged {
            tracing::warn!(
                url = %self.url,
                dropped = dropped - self.logged,
                dropped_total = dropped,
                "webhook: queue full, events dropped"
            );
            self.logged = dropped;
        }
    }
}

/// Posts one event until an attempt succeeds or `attempts` have failed; the last error.
async fn deliver(target: &Target, connection: &mut Option<Connection>, body: &Bytes) -> Result<(), String> {
    let mut backoff = BACKOFF_FIRST;
    let mut attempt = 1;
    loop {
        let error = match tokio::time::timeout(target.timeout, post(target, connection, body)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error,
            Err(_) => format!("no answer within {} ms", target.timeout.as_millis()),
        };
        // A connection that failed once is not trusted with the next attempt.
        *connection = None;
        tracing::debug!(url = %target.url, attempt, %error, "webhook attempt failed");
        if attempt >= target.attempts {
            return Err(error);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        attempt += 1;
    }
}

/// One attempt: a signed POST over the kept connection (or a new one), and its answer.
async fn post(target: &Target, connection: &mut Option<Connection>, body: &Bytes) -> Result<(), String> {
    let timestamp = unix_seconds();
    let request = || {
        hyper::Request::post(target.endpoint.path.as_str())
            .header("host", target.endpoint.authority.as_str())
            .header("content-type", "application/json")
            .header("user-agent", concat!("partner-credit/", env!("CARGO_PKG_VERSION")))
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature(&target.secret, timestamp, body))
            .body(Full::new(body.clone()))
            .expect("a parsed endpoint makes a valid request")
    };
    let mut kept = connection.take();
    if let Some(open) = &mut kept {
        if open.sender.ready().await.is_err() {
            kept = None;
        }
    }
    let reused = kept.is_some();
    let mut open = match kept {
        Some(open) => open,
        None => Connection::open(&target.endpoint).await?,
    };
    let response = match open.sender.send_request(request()).await {
        Ok(response) => response,
        // The receiver closed the idle connection as the request went out: once more on a
        // new connection, which is not another attempt.
        Err(error) if reused && (error.is_canceled() || error.is_incomplete_message()) => {
            open = Connection::open(&target.endpoint).await?;
            open.sender.send_request(request()).await.map_err(|error| format!("sending: {error}"))?
        }
        Err(error) => return Err(format!("sending: {error}")),
    };
    let status = response.status();
    // Read the answer (bounded) so that the connection can carry the next event.
    if Limited::new(response.into_body(), ANSWER_BYTES_MAX).collect().await.is_ok() {
        *connection = Some(open);
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP status {status}"))
    }
}

/// A keep-alive connection to a webhook: hyper's sending half and the task driving the
/// connection, which is ended with it, so that a receiver that never answers does not keep
/// a task and a socket per timed-out attempt.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    task: JoinHandle<()>,
}

impl Connection {
    async fn open(endpoint: &Endpoint) -> Result<Connection, String> {
        let stream = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|error| format!("connecting to {}:{}: {error}", endpoint.host, endpoint.port))?;
        stream.set_nodelay(true).map_err(|error| error.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| format!("handshake: {error}"))?;
        let task = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "webhook connection closed");
            }
        });
        Ok(Connection { sender, task })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_seconds() -> i64 {
    crate::clock::Clock::now(&crate::clock::SystemClock).0.div_euclid(1000)
}

/// The JSON body of an event (see the module's documentation).
pub fn body(event_id: u64, event: &Event) -> Vec<u8> {
    let value = match event {
        Event::CreditWarning(warning) => json!({
            "EventId": event_id,
            "EventType": "CreditWarning",
            "Time": time(warning.time),
            "CustomerUin": uin(warning.customer),
            "PartnerUin": uin(warning.partner),
            "Level": warning.level.name(),
            "Recipients": warning.level.recipients().names(),
            "Threshold": match warning.threshold {
                None => Value::Null,
                Some(Threshold::RemainingPercent(percent)) => json!({
                    "RemainingPercent": Value::Number(
                        percent.normalize().to_string().parse::<Number>().expect("a decimal is a JSON number")
                    )
                }),
                Some(Threshold::RemainingAmount(amount)) => json!({ "RemainingAmount": money(amount) }),
            },
            "TotalCredit": money(warning.total),
            "RemainingCredit": money(warning.available),
        }),
    };
    serde_json::to_vec(&value).expect("JSON values serialize")
}

/// The signature header's value: `sha256=` and the hex of HMAC-SHA256(secret,
/// `<timestamp>.<body>`).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = mac(secret, &timestamp.to_string(), body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// HMAC-SHA256 with `secret` over `"<timestamp>.<body>"`.
fn mac(secret: &str, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// What a receiver checks: that `signature_header` is the signature of `body` at
/// `timestamp_header` with `secret` (compared in constant time), and that the timestamp is
/// within `skew_secs` of `now_secs`.
pub fn verify(
    secret: &str,
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: i64,
    skew_secs: i64,
) -> bool {
    let Ok(timestamp) = timestamp_header.parse::<i64>() else {
        return false;
    };
    if timestamp.to_string() != timestamp_header || now_secs.abs_diff(timestamp) > skew_secs.unsigned_abs() {
        return false;
    }
    let Some(hex_text) = signature_header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_text) else {
        return false;
    };
    // `verify_slice` compares in constant time.
    mac(secret, timestamp_header, body).verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Money, Timestamp, Uin, WarningLevel};
    use crate::events::CreditWarning;

    fn endpoint(host: &str, port: u16, authority: &str, path: &str) -> Endpoint {
        Endpoint { host: host.into(), port, authority: authority.into(), path: path.into() }
    }

    #[test]
    fn urls() {
        let good = [
            (
                "http://127.0.0.1:9000/hooks/credit",
                endpoint("127.0.0.1", 9000, "127.0.0.1:9000", "/hooks/credit"),
            ),
            ("HTTP://example.com", endpoint("example.com", 80, "example.com", "/")),
            ("http://example.com:80/a?b=c", endpoint("example.com", 80, "example.com", "/a?b=c")),
            (
                "http://relay-1.internal:8080?x=1",
                endpoint("relay-1.internal", 8080, "relay-1.internal:8080", "/?x=1"),
            ),
            ("http://[::1]:9000/h", endpoint("::1", 9000, "[::1]:9000", "/h")),
        ];
        for (url, expected) in good {
            assert_eq!(Endpoint::parse(url), Ok(expected), "{url}");
        }
        let bad = [
            ("https://example.com/h", "https is not offered"),
            ("ftp://example.com/h", "scheme is ftp"),
            ("example.com:80/h", "expected http://"),
            ("http://:80/h", "no host"),
            ("http://example.com:0/h", "not 1 to 65535"),
            ("http://example.com:70000/h", "not 1 to 65535"),
            ("http://example.com:+80/h", "not 1 to 65535"),
            ("http://user:pw@example.com/h", "no user name"),
            ("http://example.com/h#top", "fragment"),
            ("http://exa mple.com/h", "no spaces"),
            ("http://[::1/h", "needs its ]"),
            ("http://[nope]:80/h", "not an IPv6 address"),
            ("http://ex%41mple.com/h", "not a host name"),
        ];
        for (url, words) in bad {
            let error = Endpoint::parse(url).unwrap_err();
            assert!(error.contains(words), "{url}: {error}");
        }
    }

    fn warning(level: WarningLevel, threshold: Option<Threshold>) -> Event {
        Event::CreditWarning(CreditWarning {
            customer: Uin(10_000_001),
            partner: Uin(3_000_000),
            level,
            threshold,
            total: Money::parse("100.10").unwrap(),
            available: Money::parse("0.00000001").unwrap(),
            time: Timestamp(1_767_225_600_000 + 3_723_999),
        })
    }

    #[test]
    fn bodies() {
        let table = [
            (
                warning(WarningLevel::Remaining25, None),
                r#"{"CustomerUin":10000001,"EventId":7,"EventType":"CreditWarning","Level":"Remaining25","PartnerUin":3000000,"Recipients":["Partner","Customer"],"RemainingCredit":0.00000001,"Threshold":null,"Time":"2026-01-01 01:02:03","TotalCredit":100.1}"#,
            ),
            (
                warning(
                    WarningLevel::PartnerCustom,
                    Some(Threshold::percent("12.50".parse().unwrap()).unwrap()),
                ),
                r#"{"CustomerUin":10000001,"EventId":7,"EventType":"CreditWarning","Level":"PartnerCustom","PartnerUin":3000000,"Recipients":["Partner"],"RemainingCredit":0.00000001,"Threshold":{"RemainingPercent":12.5},"Time":"2026-01-01 01:02:03","TotalCredit":100.1}"#,
            ),
            (
                warning(
                    WarningLevel::CustomerCustom,
                    Some(Threshold::amount(Money::from_units(40)).unwrap()),
                ),
                r#"{"CustomerUin":10000001,"EventId":7,"EventType":"CreditWarning","Level":"CustomerCustom","PartnerUin":3000000,"Recipients":["Customer"],"RemainingCredit":0.00000001,"Threshold":{"RemainingAmount":40},"Time":"2026-01-01 01:02:03","TotalCredit":100.1}"#,
            ),
        ];
        for (event, expected) in table {
            assert_eq!(String::from_utf8(body(7, &event)).unwrap(), expected);
        }
    }

    #[test]
    fn signatures_verify_and_anything_else_does_not() {
        let body = br#"{"EventId":1}"#;
        let signed = signature("secret", 1_767_225_600, body);
        // HMAC-SHA256("secret", `1767225600.{"EventId":1}`), computed with Python's hmac.
        assert_eq!(signed, "sha256=ef8fc04a1fd7b8664d915e1eb8eff6e7dd5f53643942819eec4676f3f3a33bfc");
        assert!(verify("secret", "1767225600", &signed, body, 1_767_225_600, 300));
        assert!(verify("secret", "1767225600", &signed, body, 1_767_225_900, 300));
        let cases: [(&str, &str, &str, &[u8], i64); 7] = [
            ("other", "1767225600", &signed, body, 1_767_225_600),
            ("secret", "1767225601", &signed, body, 1_767_225_600),
            ("secret", "01767225600", &signed, body, 1_767_225_600),
            ("secret", "1767225600", &signed, br#"{"EventId":2}"#, 1_767_225_600),
            ("secret", "1767225600", &signed, body, 1_767_225_901),
            ("secret", "1767225600", &signed[7..], body, 1_767_225_600),
            ("secret", "1767225600", "sha256=zz", body, 1_767_225_600),
        ];
        for (secret, timestamp, signature, body, now) in cases {
            assert!(
                !verify(secret, timestamp, signature, body, now, 300),
                "{secret} {timestamp} {signature}"
            );
        }
    }
}
