//! What each load task records, and the per-second timeline the tasks hand it to.
//!
//! A task records every answer into its own [`Recorder`]: a latency histogram (HDR, 3
//! significant digits) of the current second and counts by outcome. When its second rolls
//! over it adds what it holds into the shared [`Timeline`] under one lock, so the lock is
//! taken about once per task per second, never per request. The live progress line and the
//! HTML charts read the timeline; the report merges it whole.
//!
//! Invariant: a recorder allocates only when it sees an outcome code for the first time or
//! its histogram grows to a latency range it has not seen; recording an answer is a few
//! additions.

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// A latency histogram in microseconds. It starts covering 1 us to 4 ms and grows when a
/// larger latency arrives, so the hundreds of per-task histograms stay small (tens of KB).
pub fn latency_histogram() -> Histogram<u64> {
    let mut histogram = Histogram::new_with_bounds(1, 4_096, 3).expect("valid HDR bounds");
    histogram.auto(true);
    histogram
}

/// What an answer was, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The request did what it asked (`Committed`, `Reserved`, ...).
    Done,
    /// An expected refusal (insufficient credit, rate limited, ...): part of the load.
    Refused,
    /// The system failed, or the answer never came: a transport error, `InternalError`.
    Failed,
}

/// Counts by outcome name, in first-seen order. A handful of names at most, so a linear
/// search beats hashing, and a name already seen costs no allocation.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub counts: Vec<(String, Class, u64)>,
}

impl Tally {
    pub fn add(&mut self, name: &str, class: Class, count: u64) {
        match self.counts.iter_mut().find(|(seen, _, _)| seen == name) {
            Some((_, _, total)) => *total += count,
            None => self.counts.push((name.to_owned(), class, count)),
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        for (name, class, count) in &other.counts {
            self.add(name, *class, *count);
        }
    }

    pub fn of_class(&self, class: Class) -> u64 {
        self.counts.iter().filter(|(_, seen, _)| *seen == class).map(|(_, _, count)| count).sum()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, _, count)| count).sum()
    }

    pub fn clear(&mut self) {
        for (_, _, count) in &mut self.counts {
            *count = 0;
        }
    }
}

/// One second of the run, from every task.
#[derive(Clone, Debug)]
pub struct Second {
    /// Latency of the requests answered in this second, while the second is recent; once
    /// it is [`SETTLE_SECS`] old only its summary is kept, so a long run's memory stays
    /// small (a histogram is tens of KB, a summary 24 bytes).
    latency_us: Option<Histogram<u64>>,
    summary: LatencySummary,
    /// Requests answered (a batch is one request).
    pub requests: u64,
    /// Outcomes of the operations answered (each purchase of a batch is one).
    pub outcomes: Tally,
}

/// The latency figures of one second the report and the charts show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    fn of(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            p50_us: histogram.value_at_quantile(0.50),
            p99_us: histogram.value_at_quantile(0.99),
            max_us: histogram.max(),
        }
    }
}

/// Seconds after which a second's histogram is folded into its summary: every task hands
/// in its numbers at least once a second, so by then the second is complete.
pub const SETTLE_SECS: usize = 3;

impl Second {
    fn new() -> Second {
        Second {
            latency_us: Some(latency_histogram()),
            summary: LatencySummary::default(),
            requests: 0,
            outcomes: Tally::default(),
        }
    }

    /// p50, p99 and max of the second.
    pub fn latency(&self) -> LatencySummary {
        match &self.latency_us {
            Some(histogram) => LatencySummary::of(histogram),
            None => self.summary,
        }
    }

    fn settle(&mut self) {
        if let Some(histogram) = self.latency_us.take() {
            self.summary = LatencySummary::of(&histogram);
        }
    }
}

/// Every second of the run so far; seconds count from the start of the run.
pub struct Timeline {
    pub started: Instant,
    inner: Mutex<TimelineInner>,
}

struct TimelineInner {
    seconds: Vec<Second>,
    /// Every latency of the run, for its percentiles.
    latency_us: Histogram<u64>,
}

impl Timeline {
    pub fn new(started: Instant) -> Arc<Timeline> {
        Arc::new(Timeline {
            started,
            inner: Mutex::new(TimelineInner { seconds: Vec::new(), latency_us: latency_histogram() }),
        })
    }

    fn add(&self, index: usize, latency_us: &Histogram<u64>, requests: u64, outcomes: &Tally) {
        let mut inner = self.inner.lock();
        inner.latency_us.add(latency_us).expect("auto-resizing histograms merge");
        while inner.seconds.len() <= index {
            let settled = inner.seconds.len().checked_sub(SETTLE_SECS);
            if let Some(settled) = settled {
                inner.seconds[settled].settle();
            }
            inner.seconds.push(Second::new());
        }
        let second = &mut inner.seconds[index];
        match &mut second.latency_us {
            Some(histogram) => histogram.add(latency_us).expect("auto-resizing histograms merge"),
            // A straggler for a settled second: its latencies count in the run's
            // percentiles, and raise the second's max.
            None => second.summary.max_us = second.summary.max_us.max(latency_us.max()),
        }
        second.requests += requests;
        second.outcomes.merge(outcomes);
    }

    /// A copy of the seconds so far (for the live line, the report and the charts).
    pub fn seconds(&self) -> Vec<Second> {
        self.inner.lock().seconds.clone()
    }

    /// Every latency of the run so far.
    pub fn latency_us(&self) -> Histogram<u64> {
        self.inner.lock().latency_us.clone()
    }

    /// The requests, operations by class and the p99 of one second, if it has any.
    pub fn second_summary(&self, index: usize) -> Option<(u64, u64, u64, u64, u64)> {
        let inner = self.inner.lock();
        let second = inner.seconds.get(index)?;
        Some((
            second.requests,
            second.outcomes.total(),
            second.outcomes.of_class(Class::Refused),
            second.outcomes.of_class(Class::Failed),
            second.latency().p99_us,
        ))
    }

    /// Operations refused and failed over every second handed in so far.
    pub fn refused_and_failed(&self) -> (u64, u64) {
        let inner = self.inner.lock();
        inner.seconds.iter().fold((0, 0), |(refused, failed), second| {
            (
                refused + second.outcomes.of_class(Class::Refused),
                failed + second.outcomes.of_class(Class::Failed),
            )
        })
    }
}

/// Latencies a recorder holds before it writes them into its histogram.
const PENDING_MAX: usize = 64;

/// One task's recording of the current second.
pub struct Recorder {
    timeline: Arc<Timeline>,
    second: usize,
    latency_us: Histogram<u64>,
    /// Latencies not yet in the histogram. Hundreds of tasks' histograms do not stay in
    /// cache, so a latency written at once costs a cache miss; written 64 at a time, mostly
    /// into the same few bins, they cost a few.
    pending_us: [u64; PENDING_MAX],
    pending_len: usize,
    requests: u64,
    outcomes: Tally,
}

impl Recorder {
    pub fn new(timeline: Arc<Timeline>) -> Recorder {
        Recorder {
            timeline,
            second: 0,
            latency_us: latency_histogram(),
            pending_us: [0; PENDING_MAX],
            pending_len: 0,
            requests: 0,
            outcomes: Tally::default(),
        }
    }

    /// A request answered at `answered`, `latency_us` after it was due (open loop) or sent
    /// (closed loop).
    pub fn request(&mut self, answered: Instant, latency_us: u64) {
        let second = answered.saturating_duration_since(self.timeline.started).as_secs() as usize;
        if second != self.second {
            self.flush();
            self.second = second;
        }
        if self.pending_len == PENDING_MAX {
            self.drain();
        }
        self.pending_us[self.pending_len] = latency_us.max(1);
        self.pending_len += 1;
        self.requests += 1;
    }

    /// A request due but never sent before the time ran out: it would have waited at least
    /// `latency_us`, which goes into the percentiles (as wrk2 counts it) though no answer
    /// was counted.
    pub fn unsent(&mut self, now: Instant, latency_us: u64) {
        self.request(now, latency_us);
        self.requests -= 1;
    }

    fn drain(&mut self) {
        for &latency_us in &self.pending_us[..self.pending_len] {
            // `record` grows the histogram; `saturating_record` would clamp at its current top.
            if self.latency_us.record(latency_us).is_err() {
                self.latency_us.saturating_record(latency_us);
            }
        }
        self.pending_len = 0;
    }

    /// The outcome of one operation of the last request.
    pub fn outcome(&mut self, name: &str, class: Class) {
        self.outcomes.add(name, class, 1);
    }

    /// Hands the current second to the timeline.
    pub fn flush(&mut self) {
        if self.requests == 0 && self.outcomes.total() == 0 {
            return;
        }
        self.drain();
        self.timeline.add(self.second, &self.latency_us, self.requests, &self.outcomes);
        self.latency_us.reset();
        self.requests = 0;
        self.outcomes.clear();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds_are_merged_across_recorders() {
        let started = Instant::now();
        let timeline = Timeline::new(started);
        let mut first = Recorder::new(timeline.clone());
        let mut second = Recorder::new(timeline.clone());
        first.request(started, 100);
        first.outcome("Committed", Class::Done);
        second.request(started + Duration::from_millis(1500), 300);
        second.outcome("FailedOperation.InsufficientClientCredit", Class::Refused);
        first.request(started + Duration::from_millis(1200), 200);
        first.outcome("Committed", Class::Done);
        drop(first);
        drop(second);
        let seconds = timeline.seconds();
        assert_eq!(seconds.len(), 2);
        assert_eq!((seconds[0].requests, seconds[1].requests), (1, 2));
        assert_eq!(seconds[1].outcomes.of_class(Class::Refused), 1);
        assert_eq!(seconds[1].latency().max_us, 300);
        // Past the histogram's first range it grows instead of clamping.
        let mut third = Recorder::new(timeline.clone());
        third.request(started, 250_000);
        drop(third);
        let max = timeline.seconds()[0].latency().max_us;
        assert!((249_000..=251_000).contains(&max), "{max}");
        assert_eq!(timeline.refused_and_failed(), (1, 0));
        assert_eq!(timeline.latency_us().len(), 4);
    }

    #[test]
    fn old_seconds_keep_only_their_summary_and_the_run_keeps_every_latency() {
        let started = Instant::now();
        let timeline = Timeline::new(started);
        let mut recorder = Recorder::new(timeline.clone());
        for second in 0..10u64 {
            for latency in 1..=100 {
                recorder.request(started + Duration::from_millis(second * 1000 + 10), latency * (second + 1));
            }
        }
        recorder.flush();
        let seconds = timeline.seconds();
        assert_eq!(seconds.len(), 10);
        let settled = seconds.iter().filter(|second| second.latency_us.is_none()).count();
        assert_eq!(settled, 10 - SETTLE_SECS);
        // Settled or not, a second answers the same figures.
        for (index, second) in seconds.iter().enumerate() {
            let factor = index as u64 + 1;
            assert_eq!(second.latency().max_us, 100 * factor, "second {index}");
            assert_eq!(second.latency().p50_us, 50 * factor, "second {index}");
        }
        // A straggler for a settled second counts in the run and raises that second's max.
        let mut late = Recorder::new(timeline.clone());
        late.request(started + Duration::from_millis(500), 7_000);
        drop(late);
        let max = timeline.seconds()[0].latency().max_us;
        assert!((7_000..=7_010).contains(&max), "{max}: the histogram's precision is 3 digits");
        assert_eq!(timeline.latency_us().len(), 1001);
    }
}
