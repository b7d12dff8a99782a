//! The report of a load run: printed for people, written as JSON (`--json`) for scripts, and
//! checked against `--threshold`s for the exit code.
//!
//! Latency is in microseconds from the HDR histogram of every request (3 significant
//! digits). In the open loop it counts from the moment a request was due, not the moment it
//! was sent, so a stall shows in the percentiles instead of hiding in fewer requests
//! (coordinated omission, as wrk2 corrects it).
//!
//! Invariant: the report is built from the recorded timeline and the audit only; printing
//! and JSON show the same numbers.

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::model::ModelCheck;
use super::recorder::{Class, Second, Tally};
use super::threshold::{Metric, Percentile, Threshold};

/// Percentiles of the latency of every request, in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    /// Requests measured.
    pub count: u64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        if histogram.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
            count: histogram.len(),
        }
    }
}

/// The open loop's account of its schedule: nothing due is silently dropped.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpenLoop {
    /// The target: operations per second.
    pub rate_per_sec: f64,
    /// Requests due before the end.
    pub due: u64,
    pub sent: u64,
    /// Requests sent more than 10 ms after they were due (every task was busy).
    pub late: u64,
    /// Requests due before the end that were never sent (the tasks were behind when the
    /// time ran out).
    pub unsent: u64,
    /// The longest a request waited past its due time before it was sent, in microseconds.
    pub lag_us_max: u64,
}

/// The engine's own conservation audit (embedded target only).
#[derive(Clone, Debug, Default, Serialize)]
pub struct EngineAudit {
    pub ok: bool,
    pub accounts: usize,
    pub customer_used: String,
    pub partner_used: String,
    pub customer_reserved: String,
    pub partner_reserved: String,
    pub violations: Vec<String>,
}

/// The audit at the end: the target's accounts against the load generator's own model.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditReport {
    pub ok: bool,
    /// `full` (every account read back) or `partial` (a sample; see `note`).
    pub scope: String,
    pub note: Option<String>,
    pub accounts_read: usize,
    /// Purchases the load generator saw committed, and what they used.
    pub committed: u64,
    pub used: String,
    pub model: ModelCheck,
    pub engine: Option<EngineAudit>,
}

/// What the server itself counted during the run (HTTP target), from its `GET /metrics`
/// scraped before and after: whether the client or the server was the bottleneck.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServerSide {
    pub metrics_url: String,
    /// Whether both scrapes were read; if not, `note` says why and the counts are zero.
    pub available: bool,
    pub note: Option<String>,
    /// API requests the server answered between the scrapes (from every client).
    pub requests: u64,
    pub succeeded: u64,
    /// Answered with an error code.
    pub refused: u64,
    /// Answers by code (`Success` or the error code).
    pub by_code: BTreeMap<String, u64>,
    pub purchases_committed: u64,
    pub purchases_refused: u64,
    pub rate_limited: u64,
    pub faults_injected: u64,
    /// The mean time from a request's arrival to its answer, in the server.
    pub latency_us_mean: Option<f64>,
    /// The mean latency the load generator measured, for comparison.
    pub client_latency_us_mean: f64,
    /// Which side the time went to.
    pub verdict: String,
}

/// The embedded engine's journal (with `--data-dir`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct JournalReport {
    /// The data directory, kept after the run.
    pub dir: String,
    /// `always`, `interval:<ms>ms` or `never`.
    pub fsync: String,
    /// Journal bytes (record frames) written during the load, the world's import excluded.
    pub bytes: u64,
    /// `bytes` over the operations.
    pub bytes_per_operation: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ThresholdResult {
    pub threshold: String,
    /// The measured value, in the threshold's unit (microseconds, a count, a fraction of
    /// operations for `N%`, operations per second).
    pub value: f64,
    pub ok: bool,
}

/// One second of the run.
#[derive(Clone, Debug, Serialize)]
pub struct SecondReport {
    pub second: usize,
    pub requests: u64,
    pub operations: u64,
    pub refused: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// `embedded` or the server's URL.
    pub target: String,
    /// The embedded engine's runtime.
    pub runtime: Option<String>,
    /// The embedded engine's journal, with `--data-dir`.
    pub journal: Option<JournalReport>,
    /// `closed` (each task waits for its answer) or `open` (a fixed arrival rate).
    pub model: String,
    pub concurrency: usize,
    /// Purchases per request (1 unless `--batch`).
    pub batch: usize,
    /// The customers purchases are for, and the mix of flows.
    pub scenario: String,
    pub mix: Option<String>,
    pub hot_partner: Option<u64>,
    pub seed: u64,
    /// A digest of the sequence of requests: the same seed gives the same digest.
    pub requests_digest: String,
    pub accounts: usize,
    pub import_secs: f64,
    pub elapsed_secs: f64,
    pub requests: u64,
    /// Purchases, reservations, commits, cancels, allocations: each purchase of a batch is one.
    pub operations: u64,
    pub throughput_per_sec: f64,
    pub requests_per_sec: f64,
    pub latency_us: Latency,
    /// Outcome code to count: `Committed` (and `Reserved`, `Cancelled`, `Allocated`,
    /// `Repossessed` in a mix) or the API's error code.
    pub outcomes: BTreeMap<String, u64>,
    pub refused: u64,
    pub errors: u64,
    /// The first few failures, as messages.
    pub error_samples: Vec<String>,
    pub open_loop: Option<OpenLoop>,
    pub audit: AuditReport,
    /// The server's own counts (HTTP target).
    pub server: Option<ServerSide>,
    pub thresholds: Vec<ThresholdResult>,
    pub series: Vec<SecondReport>,
}

impl LoadReport {
    /// Fills the counts, latency and series from the timeline's seconds and the run's
    /// latency histogram.
    pub fn record(&mut self, seconds: &[Second], latency: &Histogram<u64>) {
        let mut outcomes = Tally::default();
        for second in seconds {
            outcomes.merge(&second.outcomes);
            self.requests += second.requests;
        }
        self.latency_us = Latency::of(latency);
        self.operations = outcomes.total();
        self.refused = outcomes.of_class(Class::Refused);
        self.errors = outcomes.of_class(Class::Failed);
        self.outcomes = outcomes.counts.iter().map(|(name, _, count)| (name.clone(), *count)).collect();
        let elapsed = self.elapsed_secs.max(f64::EPSILON);
        self.throughput_per_sec = self.operations as f64 / elapsed;
        self.requests_per_sec = self.requests as f64 / elapsed;
        self.series = seconds
            .iter()
            .enumerate()
            .map(|(index, second)| SecondReport {
                second: index,
                requests: second.requests,
                operations: second.outcomes.total(),
                refused: second.outcomes.of_class(Class::Refused),
                errors: second.outcomes.of_class(Class::Failed),
                p50_us: second.latency().p50_us,
                p99_us: second.latency().p99_us,
                max_us: second.latency().max_us,
            })
            .collect();
    }

    /// Checks each threshold against the report.
    pub fn check(&mut self, thresholds: &[Threshold]) {
        self.thresholds = thresholds
            .iter()
            .map(|threshold| {
                let value = match threshold.metric {
                    Metric::LatencyUs(Percentile::P50) => self.latency_us.p50 as f64,
                    Metric::LatencyUs(Percentile::P90) => self.latency_us.p90 as f64,
                    Metric::LatencyUs(Percentile::P99) => self.latency_us.p99 as f64,
                    Metric::LatencyUs(Percentile::P999) => self.latency_us.p999 as f64,
                    Metric::LatencyUs(Percentile::Max) => self.latency_us.max as f64,
                    Metric::Refused => self.refused as f64,
                    Metric::Errors => self.errors as f64,
                    Metric::Throughput => self.throughput_per_sec,
                };
                let ok = threshold.holds(value, self.operations);
                let value = match threshold.bound {
                    super::threshold::Bound::Fraction(_) if self.operations > 0 => {
                        value / self.operations as f64
                    }
                    super::threshold::Bound::Fraction(_) => 0.0,
                    super::threshold::Bound::Value(_) => value,
                };
                ThresholdResult { threshold: threshold.text.clone(), value, ok }
            })
            .collect();
    }

    /// The audit holds and every threshold holds: the exit code is 0.
    pub fn ok(&self) -> bool {
        self.audit.ok && self.thresholds.iter().all(|result| result.ok)
    }
}

/// Microseconds as people read them: `850 us`, `1.25 ms`, `2.10 s`.
pub fn duration_text(us: u64) -> String {
    if us < 1_000 {
        format!("{us} us")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2} s", us as f64 / 1_000_000.0)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.runtime {
            Some(runtime) => writeln!(f, "target        embedded engine, {runtime} runtime")?,
            None => writeln!(f, "target        {}", self.target)?,
        }
        if let Some(journal) = &self.journal {
            writeln!(
                f,
                "journal       {} (kept), fsync {}: {} bytes written, {:.1} per operation",
                journal.dir, journal.fsync, journal.bytes, journal.bytes_per_operation
            )?;
        }
        writeln!(f, "world         {} accounts, ready in {:.3} s", self.accounts, self.import_secs)?;
        let model = match &self.open_loop {
            Some(open) => format!(
                "open loop at {:.0} operations/s, at most {} in flight",
                open.rate_per_sec, self.concurrency
            ),
            None => format!("closed loop, {} tasks", self.concurrency),
        };
        let batch = if self.batch > 1 { format!(", batches of {}", self.batch) } else { String::new() };
        writeln!(f, "load          {model}{batch}, {}, seed {}", self.scenario, self.seed)?;
        if let Some(mix) = &self.mix {
            writeln!(f, "mix           {mix}")?;
        }
        writeln!(f, "duration      {:.2} s", self.elapsed_secs)?;
        writeln!(f, "requests      {} ({:.0}/s)", self.requests, self.requests_per_sec)?;
        writeln!(f, "throughput    {:.0} operations/s", self.throughput_per_sec)?;
        let latency = &self.latency_us;
        writeln!(
            f,
            "latency       p50 {}  p90 {}  p99 {}  p99.9 {}  max {}{}",
            duration_text(latency.p50),
            duration_text(latency.p90),
            duration_text(latency.p99),
            duration_text(latency.p999),
            duration_text(latency.max),
            if self.open_loop.is_some() { "  (from the due time)" } else { "" }
        )?;
        if let Some(open) = &self.open_loop {
            writeln!(
                f,
                "schedule      {} due, {} sent, {} late (> 10 ms), {} unsent, lag max {}",
                open.due,
                open.sent,
                open.late,
                open.unsent,
                duration_text(open.lag_us_max)
            )?;
        }
        writeln!(
            f,
            "outcomes      {} operations, {} refused ({:.2}%), {} errors ({:.2}%)",
            self.operations,
            self.refused,
            percent(self.refused, self.operations),
            self.errors,
            percent(self.errors, self.operations)
        )?;
        for (name, count) in &self.outcomes {
            writeln!(f, "  {name:<44} {count:>12}")?;
        }
        for sample in &self.error_samples {
            writeln!(f, "  error: {sample}")?;
        }
        let audit = &self.audit;
        let verdict = if audit.ok { "ok" } else { "FAILED" };
        writeln!(
            f,
            "audit         {verdict} ({}: {} accounts read, {} customers and {} partners checked against the load generator's model)",
            audit.scope, audit.accounts_read, audit.model.customers_checked, audit.model.partners_checked
        )?;
        if let Some(note) = &audit.note {
            writeln!(f, "  note: {note}")?;
        }
        writeln!(f, "  committed   {} purchases, {} used", audit.committed, audit.used)?;
        if audit.model.customers_uncertain > 0 {
            writeln!(
                f,
                "  uncertain   {} customers left out (a request failed without an answer)",
                audit.model.customers_uncertain
            )?;
        }
        if let Some(engine) = &audit.engine {
            writeln!(
                f,
                "  engine      {} (customers used {}, partners used {}, reserved {} / {})",
                if engine.ok { "conserves" } else { "BROKEN" },
                engine.customer_used,
                engine.partner_used,
                engine.customer_reserved,
                engine.partner_reserved
            )?;
            for violation in engine.violations.iter().take(20) {
                writeln!(f, "  violation: {violation}")?;
            }
        }
        for violation in audit.model.violations.iter().take(20) {
            writeln!(f, "  violation: {violation}")?;
        }
        if let Some(server) = &self.server {
            write_server_side(f, server)?;
        }
        if !self.thresholds.is_empty() {
            writeln!(f, "thresholds")?;
            for result in &self.thresholds {
                let verdict = if result.ok { "ok" } else { "BROKEN" };
                writeln!(f, "  {:<28} {verdict} (measured {})", result.threshold, threshold_value(result))?;
            }
        }
        Ok(())
    }
}

fn write_server_side(f: &mut fmt::Formatter<'_>, server: &ServerSide) -> fmt::Result {
    if !server.available {
        let note = server.note.as_deref().unwrap_or("no metrics");
        return writeln!(f, "server        not measured: {note}");
    }
    writeln!(
        f,
        "server        {} requests answered ({} succeeded, {} refused), {} purchases committed, {} refused, \
         {} over quota, {} faults injected",
        server.requests,
        server.succeeded,
        server.refused,
        server.purchases_committed,
        server.purchases_refused,
        server.rate_limited,
        server.faults_injected
    )?;
    if let Some(mean) = server.latency_us_mean {
        writeln!(
            f,
            "  time        mean {} in the server, {} seen by the client",
            duration_text(mean.round() as u64),
            duration_text(server.client_latency_us_mean.round() as u64)
        )?;
    }
    writeln!(f, "  verdict     {}", server.verdict)?;
    for (code, count) in server.by_code.iter().filter(|(code, _)| code.as_str() != "Success") {
        writeln!(f, "  {code:<44} {count:>12}")?;
    }
    Ok(())
}

fn threshold_value(result: &ThresholdResult) -> String {
    let text = result.threshold.to_ascii_lowercase();
    if text.starts_with('p') || text.starts_with("max") {
        duration_text(result.value as u64)
    } else if text.contains('%') {
        format!("{:.3}%", result.value * 100.0)
    } else {
        format!("{:.0}", result.value)
    }
}
