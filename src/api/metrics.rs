//! The server's metrics, served by `GET /metrics` in the Prometheus text exposition format
//! (version 0.0.4), which the `prometheus-client` crate writes.
//!
//! What is counted, per answer, in the API layer:
//! - `partner_credit_requests_total{action, code}`: every answer, by action (`(none)` when
//!   the request named no valid action: refused before, by its signature or its action) and
//!   code (`Success`, the error code, or `Dropped` when a fault closed the connection);
//! - `partner_credit_request_duration_seconds{action}`: from the request's arrival to its
//!   answer (an injected delay included), a histogram;
//! - `partner_credit_purchases_committed_total`: purchases answered `Committed`
//!   (`CreatePurchase`, `CommitPurchase` and each purchase of a `CreatePurchases`; a repeat
//!   of a purchase id answers as the first time and is counted again);
//! - `partner_credit_purchases_refused_total{reason}`: purchases refused (`CreatePurchase`,
//!   `ReservePurchase`, each purchase of a `CreatePurchases`), by error code;
//! - `partner_credit_rate_limited_total{action}`: answers `RequestLimitExceeded` (a fault's
//!   excepted);
//! - `partner_credit_faults_injected_total{kind}`: `error`, `delay` and `drop`;
//! - `partner_credit_open_reservations`: read from the engine at scrape time;
//! - `partner_credit_webhook_events_total{url, outcome}`: `delivered`, `failed` and
//!   `dropped` (a full queue), from the webhooks' own counters at scrape time;
//! - `partner_credit_state_resets_total{to}`: `ResetState` calls carried out.
//!
//! Other parts of the server add their own families with [`Metrics::register`] (the
//! durability journal's fsyncs belong there once it exists; nothing is exported for it
//! before).
//!
//! Invariant: counting is atomic additions on cells made once at start, one per (action,
//! code) and per latency bucket: no lock, no allocation and no map per request. Only a
//! scrape allocates, and it writes only the non-zero cells of the per-action families (the
//! fixed families always appear, at zero too).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::errors::{code_index, CODES};
use super::faults::Effect;
use super::webhook::WebhookStats;
use crate::domain::Action;

/// The `Content-Type` of `GET /metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The action label of a request that named no valid action.
pub const NO_ACTION: &str = "(none)";
/// The code label of a successful answer.
pub const SUCCESS: &str = "Success";
/// The code label of a request a fault dropped: it got no answer.
pub const DROPPED: &str = "Dropped";
/// The code label of an error code missing from [`CODES`] (a test keeps it unused).
const OTHER: &str = "Other";

/// Rows of the per-action cells: every action, then [`NO_ACTION`].
const ACTION_ROWS: usize = Action::COUNT + 1;
/// Columns of the request cells: [`SUCCESS`], every code of [`CODES`], [`DROPPED`], then
/// [`OTHER`].
const CODE_COLUMNS: usize = CODES.len() + 3;

/// The latency buckets' upper bounds, in nanoseconds (0.1 ms to 10 s).
const BUCKETS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// One action's latency: a count per bucket (not cumulative; the last is above every bound)
/// and the sum.
struct Latency {
    buckets: [AtomicU64; BUCKETS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl Latency {
    fn new() -> Latency {
        Latency { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_ns: AtomicU64::new(0) }
    }
}

/// How an answer went, for [`Metrics::answered`].
#[derive(Clone, Copy, Debug)]
pub struct Answered<'a> {
    pub action: Option<Action>,
    /// `None` for a success, else the error code ([`DROPPED`] for no answer).
    pub code: Option<&'a str>,
    /// The error was injected by a fault (not the engine's or the server's own).
    pub injected: bool,
    pub elapsed: Duration,
}

/// The live counters.
pub struct Metrics {
    /// `ACTION_ROWS x CODE_COLUMNS` answer counts.
    requests: Box<[AtomicU64]>,
    latency: Box<[Latency]>,
    committed: AtomicU64,
    /// Refused purchases, by the index of their code in [`CODES`].
    refused: Box<[AtomicU64]>,
    rate_limited: Box<[AtomicU64]>,
    /// By [`Effect`] kind: error, delay, drop.
    faults: [AtomicU64; 3],
    /// `ResetState` calls: to `Empty`, to `StartWorld`.
    resets: [AtomicU64; 2],
    /// Families other parts of the server add (see [`Metrics::register`]).
    extra: Mutex<Vec<Arc<dyn Collector>>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").field("committed", &self.committed.load(Ordering::Relaxed)).finish()
    }
}

fn cells(count: usize) -> Box<[AtomicU64]> {
    (0..count).map(|_| AtomicU64::new(0)).collect()
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            requests: cells(ACTION_ROWS * CODE_COLUMNS),
            latency: (0..ACTION_ROWS).map(|_| Latency::new()).collect(),
            committed: AtomicU64::new(0),
            refused: cells(CODES.len()),
            rate_limited: cells(Action::COUNT),
            faults: std::array::from_fn(|_| AtomicU64::new(0)),
            resets: std::array::from_fn(|_| AtomicU64::new(0)),
            extra: Mutex::new(Vec::new()),
        }
    }

    /// Adds a family of another part of the server to every scrape (for example the
    /// journal's fsyncs). A collector reads its own counters when it is scraped.
    pub fn register(&self, collector: Arc<dyn Collector>) {
        self.extra.lock().push(collector);
    }

    /// Counts one answer: its action and code, its latency, a purchase's outcome, a
    /// rate-limit refusal.
    #[inline]
    pub fn answered(&self, answered: Answered<'_>) {
        let row = answered.action.map_or(Action::COUNT, |action| action as usize);
        // The code is looked up once: its column, and its index among refusals.
        let index = answered.code.and_then(code_index);
        let column = match (answered.code, index) {
            (None, _) => 0,
            (_, Some(index)) => index + 1,
            (Some(DROPPED), None) => CODES.len() + 1,
            (Some(_), None) => CODE_COLUMNS - 1,
        };
        self.requests[row * CODE_COLUMNS + column].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(answered.elapsed.as_nanos()).unwrap_or(u64::MAX);
        let latency = &self.latency[row];
        let bucket = BUCKETS_NS.iter().position(|bound| nanos <= *bound).unwrap_or(BUCKETS_NS.len());
        latency.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        latency.sum_ns.fetch_add(nanos, Ordering::Relaxed);
        let Some(action) = answered.action else { return };
        match (action, answered.code) {
            (Action::CreatePurchase | Action::CommitPurchase, None) => self.purchase_committed(),
            (_, Some(_)) if answered.injected => {}
            (Action::CreatePurchase | Action::ReservePurchase, Some(_)) => {
                if let Some(index) = index {
                    self.refused[index].fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {}
        }
        if answered.code == Some("RequestLimitExceeded") && !answered.injected {
            self.rate_limited[action as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One purchase of a batch committed.
    #[inline]
    pub fn purchase_committed(&self) {
        self.committed.fetch_add(1, Ordering::Relaxed);
    }

    /// One purchase refused with `code` (one of a batch, or a request's).
    #[inline]
    pub fn purchase_refused(&self, code: &str) {
        if let Some(index) = code_index(code) {
            self.refused[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn fault_injected(&self, effect: Effect) {
        let kind = match effect {
            Effect::Error(_) => 0,
            Effect::Delay(_) => 1,
            Effect::Drop => 2,
        };
        self.faults[kind].fetch_add(1, Ordering::Relaxed);
    }

    /// A `ResetState` carried out: to the start world (`true`) or an empty state.
    pub fn state_reset(&self, start_world: bool) {
        self.resets[usize::from(start_world)].fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text: these counters, the values read at scrape time, and the
    /// registered families.
    pub fn encode(self: &Arc<Metrics>, scraped: Scraped) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(View { metrics: self.clone(), scraped }));
        for collector in self.extra.lock().iter() {
            registry.register_collector(Box::new(Registered(collector.clone())));
        }
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// What a scrape reads from elsewhere than the counters.
#[derive(Clone, Debug, Default)]
pub struct Scraped {
    pub open_reservations: Option<i64>,
    /// Each webhook's URL and counts.
    pub webhooks: Vec<(String, WebhookStats)>,
}

/// The counters as one scrape sees them.
#[derive(Debug)]
struct View {
    metrics: Arc<Metrics>,
    scraped: Scraped,
}

/// The label set of a family without labels.
const NO_LABELS: [(&str, &str); 0] = [];

/// A registered family, as the registry takes it.
#[derive(Debug)]
struct Registered(Arc<dyn Collector>);

impl Collector for Registered {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        self.0.encode(encoder)
    }
}

fn action_label(row: usize) -> &'static str {
    Action::ALL.get(row).map_or(NO_ACTION, |action| action.name())
}

fn code_label(column: usize) -> &'static str {
    match column {
        0 => SUCCESS,
        column if column <= CODES.len() => CODES[column - 1],
        column if column == CODES.len() + 1 => DROPPED,
        _ => OTHER,
    }
}

/// Writes a counter family of labelled values.
fn counters<'v, L: prometheus_client::encoding::EncodeLabelSet + 'v>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in values {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for View {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let metrics = &*self.metrics;
        let load = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        let requests = metrics.requests.iter().enumerate().filter_map(|(index, cell)| {
            let value = load(cell);
            (value > 0).then(|| {
                let labels = [
                    ("action", action_label(index / CODE_COLUMNS)),
                    ("code", code_label(index % CODE_COLUMNS)),
                ];
                (labels, value)
            })
        });
        counters(
            &mut encoder,
            "partner_credit_requests",
            "Answers, by action and code (Success or the error code).",
            requests,
        )?;
        self.encode_latency(&mut encoder)?;
        let committed = std::iter::once((NO_LABELS, load(&metrics.committed)));
        counters(
            &mut encoder,
            "partner_credit_purchases_committed",
            "Purchases answered Committed.",
            committed,
        )?;
        let refused = metrics.refused.iter().enumerate().filter_map(|(index, cell)| {
            let value = load(cell);
            (value > 0).then(|| ([("reason", CODES[index])], value))
        });
        counters(
            &mut encoder,
            "partner_credit_purchases_refused",
            "Purchases refused, by error code.",
            refused,
        )?;
        let limited = metrics.rate_limited.iter().enumerate().filter_map(|(index, cell)| {
            let value = load(cell);
            (value > 0).then(|| ([("action", action_label(index))], value))
        });
        counters(
            &mut encoder,
            "partner_credit_rate_limited",
            "Requests refused over their quota, by action.",
            limited,
        )?;
        let kinds = ["error", "delay", "drop"].into_iter().zip(&metrics.faults);
        let faults = kinds.map(|(kind, cell)| ([("kind", kind)], load(cell)));
        counters(
            &mut encoder,
            "partner_credit_faults_injected",
            "Requests a fault applied to, by kind.",
            faults,
        )?;
        let resets = ["Empty", "StartWorld"].into_iter().zip(&metrics.resets);
        let resets = resets.map(|(to, cell)| ([("to", to)], load(cell)));
        counters(
            &mut encoder,
            "partner_credit_state_resets",
            "ResetState calls carried out, by target.",
            resets,
        )?;
        let webhooks = self.scraped.webhooks.iter().flat_map(|(url, stats)| {
            [("delivered", stats.delivered), ("failed", stats.failed), ("dropped", stats.dropped)]
                .map(|(outcome, value)| ([("url", url.as_str()), ("outcome", outcome)], value))
        });
        counters(
            &mut encoder,
            "partner_credit_webhook_events",
            "Webhook events delivered, failed after every attempt, or dropped by a full queue.",
            webhooks,
        )?;
        if let Some(open) = self.scraped.open_reservations {
            let mut family = encoder.encode_descriptor(
                "partner_credit_open_reservations",
                "Reservations neither committed, cancelled nor expired.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(open).encode(family.encode_family(&NO_LABELS)?)?;
        }
        Ok(())
    }
}

impl View {
    fn encode_latency(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut family = encoder.encode_descriptor(
            "partner_credit_request_duration_seconds",
            "From a request's arrival to its answer, by action.",
            None,
            MetricType::Histogram,
        )?;
        for (row, latency) in self.metrics.latency.iter().enumerate() {
            let counts: Vec<u64> = latency.buckets.iter().map(|cell| cell.load(Ordering::Relaxed)).collect();
            let count: u64 = counts.iter().sum();
            if count == 0 {
                continue;
            }
            // Each bucket's own count: the encoder writes them cumulated, as the format has it.
            let buckets: Vec<(f64, u64)> = counts
                .iter()
                .enumerate()
                .map(|(index, in_bucket)| {
                    (BUCKETS_NS.get(index).map_or(f64::INFINITY, |ns| *ns as f64 / 1e9), *in_bucket)
                })
                .collect();
            let sum = latency.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
            let labels = [("action", action_label(row))];
            family.encode_family(&labels)?.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        Ok(())
    }
}

/// Keeps the open-reservations gauge a signed number, as Prometheus gauges are.
pub fn gauge_of(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(action: Option<Action>, code: Option<&str>, ms: u64) -> Answered<'_> {
        Answered { action, code, injected: false, elapsed: Duration::from_millis(ms) }
    }

    #[test]
    fn answers_are_counted_by_action_and_code_and_written_by_the_crate() {
        let metrics = Arc::new(Metrics::new());
        metrics.answered(answered(Some(Action::CreatePurchase), None, 1));
        metrics.answered(answered(
            Some(Action::CreatePurchase),
            Some("FailedOperation.InsufficientClientCredit"),
            3,
        ));
        metrics.answered(answered(Some(Action::ForceQN), Some("RequestLimitExceeded"), 0));
        metrics.answered(answered(None, Some("AuthFailure.SignatureFailure"), 0));
        metrics.answered(Answered {
            injected: true,
            ..answered(Some(Action::CreatePurchase), Some("InternalError"), 0)
        });
        metrics.fault_injected(Effect::Error("InternalError"));
        let text = metrics.encode(Scraped { open_reservations: Some(2), webhooks: Vec::new() });
        for line in [
            "partner_credit_requests_total{action=\"CreatePurchase\",code=\"Success\"} 1",
            "partner_credit_requests_total{action=\"CreatePurchase\",code=\"FailedOperation.InsufficientClientCredit\"} 1",
            "partner_credit_requests_total{action=\"CreatePurchase\",code=\"InternalError\"} 1",
            "partner_credit_requests_total{action=\"(none)\",code=\"AuthFailure.SignatureFailure\"} 1",
            "partner_credit_purchases_committed_total 1",
            "partner_credit_purchases_refused_total{reason=\"FailedOperation.InsufficientClientCredit\"} 1",
            "partner_credit_rate_limited_total{action=\"ForceQN\"} 1",
            "partner_credit_faults_injected_total{kind=\"error\"} 1",
            "partner_credit_faults_injected_total{kind=\"drop\"} 0",
            "partner_credit_open_reservations 2",
            "partner_credit_request_duration_seconds_bucket{action=\"CreatePurchase\",le=\"0.001\"} 2",
            "partner_credit_request_duration_seconds_bucket{action=\"CreatePurchase\",le=\"0.0025\"} 2",
            "partner_credit_request_duration_seconds_bucket{action=\"CreatePurchase\",le=\"0.005\"} 3",
            "partner_credit_request_duration_seconds_bucket{action=\"CreatePurchase\",le=\"+Inf\"} 3",
            "partner_credit_request_duration_seconds_count{action=\"CreatePurchase\"} 3",
        ] {
            assert!(text.lines().any(|written| written == line), "{line} not in:\n{text}");
        }
        // An injected error is neither a refused purchase nor a rate-limit refusal.
        assert!(!text.contains("reason=\"InternalError\""), "{text}");
    }
}
