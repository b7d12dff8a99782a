//! The server's side of an HTTP load: its `GET /metrics` scraped before and after the run,
//! and what it counted in between, so that a report shows whether the client or the server
//! was the bottleneck. Also the wait for `GET /health` before a run.
//!
//! The exposition text is read by a small parser of the Prometheus text format (version
//! 0.0.4: `name{label="value",...} number`, comments and blank lines skipped, label values
//! with `\\`, `\"` and `\n` escapes), enough for the counters and histograms the server
//! writes.
//!
//! Invariant: a server without metrics (an older one, or `[admin] metrics = false`) gives a
//! report with a note, never a failed run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::report::ServerSide;

/// One line of the exposition: a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// A scrape's samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Reads the text format; the error names the line.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let samples = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(|(index, line)| {
                sample(line.trim()).map_err(|reason| format!("line {}: {reason}: {line}", index + 1))
            })
            .collect::<Result<_, _>>()?;
        Ok(Exposition { samples })
    }

    /// The sum of the samples called `name` whose labels satisfy `keep`.
    pub fn sum(&self, name: &str, keep: impl Fn(&Sample) -> bool) -> f64 {
        self.samples
            .iter()
            .filter(|sample| sample.name == name && keep(sample))
            .map(|sample| sample.value)
            .sum()
    }

    /// The samples called `name`, summed by the value of their label `label`.
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut sums = BTreeMap::new();
        for sample in self.samples.iter().filter(|sample| sample.name == name) {
            *sums.entry(sample.label(label).unwrap_or("").to_owned()).or_insert(0.0) += sample.value;
        }
        sums
    }
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let mut end = None;
        while let Some((start, c)) = chars.next() {
            if c == '}' {
                end = Some(start + 1);
                break;
            }
            if c == ',' || c == ' ' {
                continue;
            }
            let equals = inner[start..].find('=').ok_or("a label without =")? + start;
            let key = inner[start..equals].trim().to_owned();
            while chars.peek().is_some_and(|(at, _)| *at <= equals) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("a label value without its quote".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    None => return Err("an unterminated label value".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(other) => value.push(other),
                        None => return Err("an unterminated escape".into()),
                    },
                    Some(other) => value.push(other),
                }
            }
            labels.push((key, value));
        }
        let end = end.ok_or("labels without their }")?;
        rest = &inner[end..];
    }
    let value_text = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        text => text.parse::<f64>().map_err(|error| format!("the value {text:?}: {error}"))?,
    };
    Ok(Sample { name, labels, value })
}

/// `GET path` on a new connection: the status and the body.
async fn get(address: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path).header("host", address.to_string()).body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Waits while the server answers `GET /health` with 503 (importing its world), up to
/// `limit`. A server without the endpoint, or one that does not answer it, is not waited for:
/// the run's own requests will tell.
pub async fn wait_until_ready(address: SocketAddr, url: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    let mut told = false;
    loop {
        match get(address, "/health").await {
            Ok((503, body)) if body.contains("starting") => {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the server at {url} was still starting after {} s (GET /health: {body})",
                    limit.as_secs()
                );
                if !told {
                    eprintln!(
                        "partner-credit load: the server at {url} is still importing its world; waiting"
                    );
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => return Ok(()),
        }
    }
}

/// The server's `GET /metrics`, or why there is none.
pub async fn scrape(address: SocketAddr) -> Result<Exposition, String> {
    match get(address, "/metrics").await {
        Ok((200, text)) if text.contains("partner_credit_requests_total") || text.contains("# TYPE partner_credit") => {
            Exposition::parse(&text)
        }
        Ok((200, _)) => Err("GET /metrics answered, but not with this server's metrics".into()),
        Ok((status, _)) => Err(format!("GET /metrics answered HTTP {status} (the server may run with [admin] metrics = false or serve them on [admin] listen)")),
        Err(error) => Err(format!("GET /metrics failed: {error:#}")),
    }
}

/// What the server counted between two scrapes; `client_latency_mean_us` is the mean the
/// load generator measured, to compare with the server's own.
pub fn summarize(
    url: &str,
    before: &Exposition,
    after: &Exposition,
    client_latency_mean_us: f64,
) -> ServerSide {
    const REQUESTS: &str = "partner_credit_requests_total";
    let delta = |name: &str, keep: &dyn Fn(&Sample) -> bool| -> u64 {
        (after.sum(name, keep) - before.sum(name, keep)).max(0.0).round() as u64
    };
    let all = |_: &Sample| true;
    let mut by_code = BTreeMap::new();
    let (before_codes, after_codes) = (before.by_label(REQUESTS, "code"), after.by_label(REQUESTS, "code"));
    for (code, count) in &after_codes {
        let change = (count - before_codes.get(code).copied().unwrap_or(0.0)).round() as u64;
        if change > 0 {
            by_code.insert(code.clone(), change);
        }
    }
    let requests = delta(REQUESTS, &all);
    let succeeded = by_code.get("Success").copied().unwrap_or(0);
    let time_sum = after.sum("partner_credit_request_duration_seconds_sum", all)
        - before.sum("partner_credit_request_duration_seconds_sum", all);
    let time_count = delta("partner_credit_request_duration_seconds_count", &all);
    let server_mean_us = (time_count > 0).then(|| time_sum * 1e6 / time_count as f64);
    ServerSide {
        metrics_url: format!("{url}/metrics"),
        available: true,
        note: None,
        requests,
        succeeded,
        refused: requests - succeeded.min(requests),
        by_code,
        purchases_committed: delta("partner_credit_purchases_committed_total", &all),
        purchases_refused: delta("partner_credit_purchases_refused_total", &all),
        rate_limited: delta("partner_credit_rate_limited_total", &all),
        faults_injected: delta("partner_credit_faults_injected_total", &all),
        latency_us_mean: server_mean_us,
        client_latency_us_mean: client_latency_mean_us,
        verdict: verdict(server_mean_us, client_latency_mean_us),
    }
}

/// Which side the time went to: the server's own time against what the client measured.
fn verdict(server_mean_us: Option<f64>, client_mean_us: f64) -> String {
    match server_mean_us {
        None => "the server answered no request between the scrapes".into(),
        Some(_) if client_mean_us <= 0.0 => "no latency measured on the client".into(),
        Some(server) => {
            let share = server / client_mean_us;
            let percent = share * 100.0;
            if share >= 0.5 {
                format!("{percent:.0}% of the client's mean latency was spent in the server: the server is the bottleneck")
            } else {
                format!(
                    "{percent:.0}% of the client's mean latency was spent in the server: the rest is the client, the \
                     network or queueing before the server read the requests, so the client side is the bottleneck"
                )
            }
        }
    }
}

/// The report's section when the server's metrics could not be read.
pub fn unavailable(url: &str, note: String) -> ServerSide {
    ServerSide { metrics_url: format!("{url}/metrics"), note: Some(note), ..ServerSide::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP partner_credit_requests_total Answers.
# TYPE partner_credit_requests_total counter
partner_credit_requests_total{action="CreatePurchase",code="Success"} 7
partner_credit_requests_total{action="CreatePurchase",code="FailedOperation.InsufficientClientCredit"} 3
partner_credit_requests_total{action="(none)",code="AuthFailure.SignatureFailure"} 1
partner_credit_request_duration_seconds_bucket{action="CreatePurchase",le="+Inf"} 10
partner_credit_request_duration_seconds_sum{action="CreatePurchase"} 0.002
partner_credit_request_duration_seconds_count{action="CreatePurchase"} 10
partner_credit_purchases_committed_total 7
partner_credit_webhook_events_total{url="http://h/a\"b\\c",outcome="delivered"} 2
"#;

    #[test]
    fn the_text_format_is_read_with_its_labels_and_escapes() {
        let exposition = Exposition::parse(TEXT).unwrap();
        assert_eq!(exposition.samples.len(), 8);
        assert_eq!(exposition.samples[0].label("code"), Some("Success"));
        assert_eq!(exposition.samples[3].value, 10.0);
        assert_eq!(exposition.samples[3].label("le"), Some("+Inf"));
        assert_eq!(exposition.samples[7].label("url"), Some("http://h/a\"b\\c"));
        assert_eq!(exposition.sum("partner_credit_requests_total", |_| true), 11.0);
        for bad in ["name{a=\"b\" 1", "name{a=b} 1", "name", "name{a=\"b\"} many"] {
            assert!(Exposition::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_server_side_is_the_difference_of_two_scrapes() {
        let before = Exposition::parse(TEXT).unwrap();
        let after = Exposition::parse(
            &TEXT
                .replace("code=\"Success\"} 7", "code=\"Success\"} 107")
                .replace("_sum{action=\"CreatePurchase\"} 0.002", "_sum{action=\"CreatePurchase\"} 0.012")
                .replace("_count{action=\"CreatePurchase\"} 10", "_count{action=\"CreatePurchase\"} 110")
                .replace("committed_total 7", "committed_total 107"),
        )
        .unwrap();
        let side = summarize("http://127.0.0.1:1", &before, &after, 400.0);
        assert_eq!((side.requests, side.succeeded, side.refused), (100, 100, 0));
        assert_eq!(side.by_code, BTreeMap::from([("Success".to_owned(), 100)]));
        assert_eq!(side.purchases_committed, 100);
        assert!((side.latency_us_mean.unwrap() - 100.0).abs() < 1e-6, "{side:?}");
        assert!(side.verdict.starts_with("25% of the client's mean latency"), "{}", side.verdict);
        assert!(side.verdict.ends_with("the client side is the bottleneck"), "{}", side.verdict);
    }
}
