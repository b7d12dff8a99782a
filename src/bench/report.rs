//! The bench's report: its rows, as `--json` writes them, and the table printed.

use serde::Serialize;

use super::recovery::{self, Recovery};
use super::FSYNC_LIMIT;

/// One row of the table, as `--json` writes it.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub runtime: String,
    pub scenario: String,
    pub submission: String,
    pub purchases_per_sec: f64,
    pub cpu_ns_per_purchase: f64,
    pub bytes_per_uin: f64,
    pub ratio_to_limit: f64,
    pub ratio_to_actix: f64,
    /// Its purchases/s over the `dashmap uniform inline` row's (NaN before that row runs).
    pub ratio_to_dashmap: f64,
    /// The quota row only: its purchases/s over the same purchases with no quota, the
    /// median of alternating rounds of the same run.
    pub ratio_to_no_quota: Option<f64>,
    /// The `http-single` row only: its requests/s over the `http-ping` row's (the same
    /// server answering an action that does nothing).
    pub ratio_to_empty_endpoint: Option<f64>,
    /// The `vouchers` row: its purchases/s over the same submission's row without vouchers
    /// (`sharded uniform batch-1024`); the `http-single v1` row: its purchases/s over the
    /// same row signed with TC3 (`sharded uniform http-single`).
    pub ratio_to_plain: Option<f64>,
    /// The `single-task` row only: the median and 99th percentile of one purchase's
    /// latency, in microseconds.
    pub latency_us_p50: Option<f64>,
    pub latency_us_p99: Option<f64>,
    /// Rows that made a million purchases or more: the process's resident memory they added,
    /// over the purchase ids the ledger then remembers (a million by default).
    pub bytes_per_purchase_id: Option<f64>,
    /// The durable rows: the journal's fsync policy (`always`, `interval:<ms>ms`, `never`).
    pub fsync: Option<String>,
    /// The durable rows: their purchases/s over the same row's without a journal, measured
    /// in the same run.
    pub ratio_to_in_memory: Option<f64>,
    /// The durable rows: the journal's bytes (record frames) written while the row was timed,
    /// over its purchases.
    pub journal_bytes_per_purchase: Option<f64>,
    /// Conservation held after the row and its committed purchases match the books (the
    /// `fsync-limit` row makes no purchases: true).
    pub audit_ok: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
    /// How long opening a data directory took (empty if the measurement did not run).
    pub recovery: Vec<Recovery>,
}

impl Report {
    /// Every row's audit held, and every recovered engine's.
    pub fn audit_ok(&self) -> bool {
        self.rows.iter().all(|row| row.audit_ok) && self.recovery.iter().all(|recovery| recovery.audit_ok)
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", header())?;
        for row in &self.rows {
            writeln!(f, "{}", format_row(row))?;
        }
        write!(f, "{}", recovery::format(&self.recovery))
    }
}

/// The table's header line. `x base` is a durable row's ratio to the same row in memory
/// (`ratio_to_in_memory`), the quota row's ratio to no quota, the `http-single` row's ratio
/// to `http-ping`, the vouchers row's ratio to the same row without vouchers, and the
/// `http-single v1` row's ratio to the same row signed with TC3. A durable row adds its
/// journal bytes per purchase after the columns.
pub fn header() -> String {
    format!(
        "{:<48} {:>14} {:>12} {:>9} {:>9} {:>9} {:>10} {:>6} {:>10}",
        "row",
        "purchases/s",
        "CPU ns/purch",
        "x limit",
        "x actix",
        "x dashmap",
        "bytes/UIN",
        "audit",
        "x base"
    )
}

pub fn format_row(row: &Row) -> String {
    let latency = match (row.latency_us_p50, row.latency_us_p99) {
        (Some(p50), Some(p99)) => format!("  latency p50 {p50:.1} us, p99 {p99:.1} us"),
        _ => String::new(),
    };
    let latency = match row.bytes_per_purchase_id {
        Some(bytes) => format!("{latency}  {bytes:.0} bytes per remembered purchase id"),
        None => latency,
    };
    let latency = match (&row.fsync, row.journal_bytes_per_purchase) {
        (Some(fsync), Some(bytes)) => {
            format!("{latency}  journal {bytes:.1} bytes per purchase, fsync {fsync}")
        }
        _ => latency,
    };
    let latency = if row.runtime == FSYNC_LIMIT {
        format!("{latency}  fdatasyncs/s of 4 KiB appends: one purchase each")
    } else {
        latency
    };
    format!(
        "{:<48} {:>14.0} {:>12.0} {:>9.3} {:>9.2} {:>9.3} {:>10.0} {:>6} {:>10}{latency}",
        row.name,
        row.purchases_per_sec,
        row.cpu_ns_per_purchase,
        row.ratio_to_limit,
        row.ratio_to_actix,
        row.ratio_to_dashmap,
        row.bytes_per_uin,
        match (row.runtime.as_str(), row.audit_ok) {
            (FSYNC_LIMIT, _) => "-",
            (_, true) => "ok",
            (_, false) => "FAILED",
        },
        row.ratio_to_in_memory
            .or(row.ratio_to_no_quota)
            .or(row.ratio_to_empty_endpoint)
            .or(row.ratio_to_plain)
            .map_or("-".into(), |ratio| format!("{ratio:.3}")),
    )
}
