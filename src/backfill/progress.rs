//! What a backfill shows while the API's rules make it wait: on a terminal, one progress bar
//! (months done and left, calls made, the time to the next call, the time left); elsewhere (a log
//! file, a pipe, CI) one log line per month and one per new wait. Shared by the tokens' lanes,
//! which run at once.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use jiff::{SignedDuration, Timestamp};

use crate::clock::until;
use crate::wolkvox::Failure;

/// A terminal's bar is redrawn this often while waiting.
const REDRAW: SignedDuration = SignedDuration::from_secs(1);

pub(super) struct Progress {
    bar: Option<ProgressBar>,
    calls: AtomicUsize,
    /// The least time between two calls of a token: the interval, or the API's floor.
    spacing: Duration,
    /// The call time last announced in the log, by month.
    announced: Mutex<HashMap<String, Timestamp>>,
}

impl Progress {
    /// `months`: the calls to make; `spacing`: the least time between two of them.
    pub(super) fn new(months: usize, spacing: Duration) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let style = ProgressStyle::with_template("{bar:30} {pos}/{len} months  {msg}")
                .expect("a valid template")
                .progress_chars("=> ");
            ProgressBar::new(months as u64).with_style(style)
        });
        Progress { bar, calls: AtomicUsize::new(0), spacing, announced: Mutex::default() }
    }

    /// Waiting until `at` for `why`, with `left` months to go (this one included). Returns when to
    /// look again at the latest, for a terminal's countdown.
    pub(super) fn waiting(
        &self,
        month: &str,
        now: Timestamp,
        at: Timestamp,
        why: &str,
        left: usize,
    ) -> Timestamp {
        let wait = until(now, at);
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!(
                    "{} calls made, the next in {}, about {} left",
                    self.calls.load(Ordering::Relaxed),
                    seconds(wait),
                    seconds(wait + self.spacing * (left as u32).saturating_sub(1))
                ));
                at.min(now + REDRAW)
            }
            None => {
                // A wait under a second is the next call, not news.
                let mut announced = self.announced.lock().expect("no panic while holding the lock");
                if announced.get(month) != Some(&at) && wait >= Duration::from_secs(1) {
                    announced.insert(month.to_owned(), at);
                    tracing::info!(month, wait = %seconds(wait), left, "waiting for {why}");
                }
                at
            }
        }
    }

    pub(super) fn fetched(&self, month: &str, rows: usize, left: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => bar.inc(1),
            None => tracing::info!(month, rows, left, "month fetched"),
        }
    }

    pub(super) fn failed(&self, month: &str, failure: &Failure) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let warn = || tracing::warn!(month, reason = failure.reason.as_str(), msg = %failure.detail, "month failed");
        match &self.bar {
            Some(bar) => {
                bar.suspend(warn);
                bar.inc(1);
            }
            None => warn(),
        }
    }

    /// A month's call failed in a way that is tried again (transient, or the quota's pause).
    pub(super) fn trying_again(&self, month: &str, failure: &Failure) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let warn = || tracing::warn!(month, reason = failure.reason.as_str(), msg = %failure.detail, "month failed; trying it again");
        match &self.bar {
            Some(bar) => bar.suspend(warn),
            None => warn(),
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(format!("{} calls made", self.calls.load(Ordering::Relaxed)));
        }
    }
}

fn seconds(wait: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(wait.as_secs()))
}
