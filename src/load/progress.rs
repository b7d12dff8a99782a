//! The live progress line on stderr (indicatif): elapsed time, the rate of the last whole
//! second, refusals and errors so far, and the p99 of the last whole second.
//!
//! Shown only when stderr is a terminal and `--quiet` is off, so scripts and CI logs get
//! the report alone. It reads the shared timeline four times a second; the load tasks never
//! wait for it.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::recorder::Timeline;
use super::report::duration_text;

/// A running progress line; [`Progress::finish`] clears it.
pub struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts the line if it should be shown.
    pub fn start(timeline: Arc<Timeline>, duration: Duration, quiet: bool) -> Option<Progress> {
        if quiet || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::with_draw_target(
            Some(duration.as_millis() as u64),
            ProgressDrawTarget::stderr_with_hz(4),
        );
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        let line = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(250));
            loop {
                interval.tick().await;
                let elapsed = timeline.started.elapsed();
                line.set_position(elapsed.as_millis() as u64);
                let last = (elapsed.as_secs() as usize).checked_sub(1);
                let (rate, p99) = last
                    .and_then(|index| timeline.second_summary(index))
                    .map(|(_, operations, _, _, p99)| (operations, p99))
                    .unwrap_or((0, 0));
                let (refused, failed) = timeline.refused_and_failed();
                line.set_message(format!(
                    "{rate:>8}/s  refused {refused:>8}  errors {failed:>6}  p99 {:>9}",
                    duration_text(p99)
                ));
            }
        });
        Some(Progress { bar, ticker })
    }

    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
