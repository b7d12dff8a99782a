//! `--html FILE`: the report as one self-contained page, for people who would rather look
//! than read: throughput per second and latency p50/p99 per second as inline SVG charts,
//! then the summary, the outcomes, the server's own counts (HTTP target) and the audit.
//!
//! The charts are drawn here, as SVG, so the page needs no script and no network; a short
//! inline script only checks that the browser laid each chart out (it marks the body with
//! `data-charts-rendered`), which the headless-browser test reads.
//!
//! Invariant: every text from the report is escaped; the page fetches nothing.

use std::fmt::Write;

use super::report::{duration_text, LoadReport, ServerSide};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_BOTTOM: f64 = 28.0;
const MARGIN_TOP: f64 = 12.0;

/// One line of a chart.
struct Series<'a> {
    name: &'a str,
    color: &'a str,
    values: Vec<f64>,
}

/// The page.
pub fn render(report: &LoadReport) -> String {
    // The last second is usually cut short by the end of the run: its count is scaled to a
    // rate, and a stub of less than half a second is left out rather than drawn as a dive.
    let mut seconds = report.series.as_slice();
    let mut last_fraction = 1.0;
    if let Some(last) = seconds.last() {
        let fraction = report.elapsed_secs - last.second as f64;
        if fraction > 0.0 && fraction < 0.5 && seconds.len() > 1 {
            seconds = &seconds[..seconds.len() - 1];
        } else if fraction > 0.0 && fraction < 1.0 {
            last_fraction = fraction;
        }
    }
    let per_second = |index: usize, count: u64| {
        if index + 1 == seconds.len() {
            count as f64 / last_fraction
        } else {
            count as f64
        }
    };
    let throughput = Series {
        name: "operations/s",
        color: "#1f77b4",
        values: seconds
            .iter()
            .enumerate()
            .map(|(index, second)| per_second(index, second.operations))
            .collect(),
    };
    let refused = Series {
        name: "refused/s",
        color: "#d62728",
        values: seconds.iter().enumerate().map(|(index, second)| per_second(index, second.refused)).collect(),
    };
    let p50 = Series {
        name: "p50 (ms)",
        color: "#2ca02c",
        values: seconds.iter().map(|second| second.p50_us as f64 / 1_000.0).collect(),
    };
    let p99 = Series {
        name: "p99 (ms)",
        color: "#ff7f0e",
        values: seconds.iter().map(|second| second.p99_us as f64 / 1_000.0).collect(),
    };
    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<title>partner-credit load report</title>\n<style>\n");
    page.push_str(
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}\
         td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}td.n{text-align:right}\
         .ok{color:#2a7d2a}.bad{color:#c62828;font-weight:bold}svg{background:#fafafa;border:1px solid #ddd}\
         .legend span{margin-right:1em}\n",
    );
    page.push_str("</style>\n</head>\n<body>\n<h1>partner-credit load report</h1>\n");
    let latency = &report.latency_us;
    let _ = write!(
        page,
        "<table id=\"summary\">\n<tr><th>target</th><td>{}</td></tr>\n<tr><th>load</th><td>{} loop, {} tasks, {}, seed {}</td></tr>\n\
         <tr><th>duration</th><td>{:.2} s</td></tr>\n<tr><th>throughput</th><td>{:.0} operations/s ({:.0} requests/s)</td></tr>\n\
         <tr><th>latency</th><td>p50 {} &middot; p90 {} &middot; p99 {} &middot; p99.9 {} &middot; max {}</td></tr>\n\
         <tr><th>audit</th><td class=\"{}\">{} ({})</td></tr>\n</table>\n",
        escape(&report.target),
        escape(&report.model),
        report.concurrency,
        escape(&report.scenario),
        report.seed,
        report.elapsed_secs,
        report.throughput_per_sec,
        report.requests_per_sec,
        duration_text(latency.p50),
        duration_text(latency.p90),
        duration_text(latency.p99),
        duration_text(latency.p999),
        duration_text(latency.max),
        if report.audit.ok { "ok" } else { "bad" },
        if report.audit.ok { "ok" } else { "FAILED" },
        escape(&report.audit.scope),
    );
    page.push_str("<h2>Throughput per second</h2>\n");
    page.push_str(&chart("throughput-chart", &[throughput, refused]));
    page.push_str("<h2>Latency per second</h2>\n");
    page.push_str(&chart("latency-chart", &[p50, p99]));
    page.push_str("<h2>Outcomes</h2>\n<table id=\"outcomes\">\n");
    for (name, count) in &report.outcomes {
        let _ = writeln!(page, "<tr><td>{}</td><td class=\"n\">{count}</td></tr>", escape(name));
    }
    page.push_str("</table>\n");
    if let Some(server) = &report.server {
        server_side(&mut page, server);
    }
    if !report.thresholds.is_empty() {
        page.push_str("<h2>Thresholds</h2>\n<table id=\"thresholds\">\n");
        for result in &report.thresholds {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td class=\"{}\">{}</td></tr>",
                escape(&result.threshold),
                if result.ok { "ok" } else { "bad" },
                if result.ok { "ok" } else { "BROKEN" }
            );
        }
        page.push_str("</table>\n");
    }
    for violation in report.audit.model.violations.iter().take(20) {
        let _ = writeln!(page, "<p class=\"bad\">{}</p>", escape(violation));
    }
    page.push_str(
        "<script>\n(function(){var n=0;document.querySelectorAll('svg.chart').forEach(function(svg){\
         var box=svg.getBBox();if(box.width>0&&box.height>0&&svg.querySelectorAll('polyline').length>0)n++;});\
         document.body.setAttribute('data-charts-rendered',String(n));})();\n</script>\n",
    );
    page.push_str("</body>\n</html>\n");
    page
}

/// The server's own counts, beside the client's: which side was the bottleneck.
fn server_side(page: &mut String, server: &ServerSide) {
    page.push_str("<h2>Server side</h2>\n<table id=\"server\">\n");
    if !server.available {
        let _ = writeln!(
            page,
            "<tr><th>metrics</th><td>not measured: {}</td></tr>\n</table>",
            escape(server.note.as_deref().unwrap_or("no metrics"))
        );
        return;
    }
    let rows = [
        ("requests answered", server.requests.to_string()),
        ("succeeded", server.succeeded.to_string()),
        ("refused", server.refused.to_string()),
        ("purchases committed", server.purchases_committed.to_string()),
        ("purchases refused", server.purchases_refused.to_string()),
        ("over quota", server.rate_limited.to_string()),
        ("faults injected", server.faults_injected.to_string()),
        (
            "mean time in the server",
            server.latency_us_mean.map_or("-".into(), |us| duration_text(us.round() as u64)),
        ),
        ("mean latency seen by the client", duration_text(server.client_latency_us_mean.round() as u64)),
        ("verdict", server.verdict.clone()),
    ];
    for (name, value) in rows {
        let _ = writeln!(page, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    }
    for (code, count) in server.by_code.iter().filter(|(code, _)| code.as_str() != "Success") {
        let _ = writeln!(page, "<tr><td>{}</td><td class=\"n\">{count}</td></tr>", escape(code));
    }
    page.push_str("</table>\n");
}

/// A line chart of `series` over the seconds of the run, with axes and a legend.
fn chart(id: &str, series: &[Series<'_>]) -> String {
    let points = series.iter().map(|line| line.values.len()).max().unwrap_or(0);
    let top = series.iter().flat_map(|line| line.values.iter().copied()).fold(0.0_f64, f64::max);
    let top = if top > 0.0 { nice_ceiling(top) } else { 1.0 };
    let plot_width = WIDTH - MARGIN_LEFT - 12.0;
    let plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let x = |index: usize| MARGIN_LEFT + plot_width * (index as f64 + 0.5) / points.max(1) as f64;
    let y = |value: f64| MARGIN_TOP + plot_height * (1.0 - value / top);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg id=\"{id}\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\">"
    );
    for step in 0..=4 {
        let value = top * f64::from(step) / 4.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{MARGIN_LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            WIDTH - 12.0,
            MARGIN_LEFT - 6.0,
            y(value) + 4.0,
            axis_label(value),
            y = y(value),
        );
    }
    let label_every = points.div_ceil(10).max(1);
    for index in (0..points).step_by(label_every) {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{}s</text>",
            x(index),
            HEIGHT - 8.0,
            index + 1
        );
    }
    for line in series {
        let coordinates: Vec<String> = line
            .values
            .iter()
            .enumerate()
            .map(|(index, value)| format!("{:.1},{:.1}", x(index), y(*value)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline class=\"series\" data-name=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            escape(line.name),
            line.color,
            coordinates.join(" ")
        );
    }
    svg.push_str("</svg>\n<div class=\"legend\">");
    for line in series {
        let _ = write!(svg, "<span style=\"color:{}\">&#9632; {}</span>", line.color, escape(line.name));
    }
    svg.push_str("</div>\n");
    svg
}

/// The smallest 1, 2 or 5 times a power of ten at or above `value`.
fn nice_ceiling(value: f64) -> f64 {
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|step| step * power)
        .find(|candidate| *candidate >= value)
        .unwrap_or(value)
}

fn axis_label(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{:.1}M", value / 1_000_000.0)
    } else if value >= 1_000.0 {
        format!("{:.0}k", value / 1_000.0)
    } else if value >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::report::SecondReport;

    #[test]
    fn the_page_has_both_charts_and_escapes_text() {
        let mut report =
            LoadReport { target: "<embedded>".into(), elapsed_secs: 3.0, ..LoadReport::default() };
        report.outcomes.insert("Committed".into(), 3);
        report.series = (0..3)
            .map(|second| SecondReport {
                second,
                requests: 10,
                operations: 10,
                refused: 1,
                errors: 0,
                p50_us: 100,
                p99_us: 900,
                max_us: 1_000,
            })
            .collect();
        let page = render(&report);
        assert!(page.contains("id=\"throughput-chart\"") && page.contains("id=\"latency-chart\""));
        assert_eq!(page.matches("<polyline").count(), 4);
        assert!(page.contains("&lt;embedded&gt;") && !page.contains("<embedded>"));
        assert!(!page.contains("http://") || page.matches("http://").all(|_| page.contains("xmlns")));
        assert_eq!((nice_ceiling(730.0), nice_ceiling(0.3), nice_ceiling(2.0)), (1_000.0, 0.5, 2.0));
    }
}
