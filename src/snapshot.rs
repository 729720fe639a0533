//! What the exporter knows about each target, and the bytes `/metrics` serves.
//!
//! Lanes record each poll's outcome here (a short lock, never held across a poll). A renderer
//! task turns the state into exposition text once per change and swaps it in whole; scrapes only
//! ever load the last published [`Published`], so they cost the same whether a poll runs or not.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::budget::Budget;
use crate::config::{self, Target};
use crate::gzip::GzipPrefix;
use crate::metrics;
use crate::wolkvox::{Api, Failure, Reason, Report, SkipReason, TokenInfo, catalogue};

/// The history of one billing API of one target, as far as the metrics need it.
#[derive(Clone, Debug)]
pub struct TargetState {
    pub server: String,
    pub api: &'static Api,
    pub stale_after: Duration,
    pub poll_interval: Duration,
    /// The token's name, to find its [`TokenState`].
    pub token_name: String,
    /// The zone of the month window, whose end the metrics and alerts need.
    pub timezone: jiff::tz::TimeZone,
    pub requests: u64,
    pub failures: [u64; Reason::ALL.len()],
    /// Polls that failed since the last success (any reason).
    pub consecutive_failures: u32,
    pub skipped: [u64; SkipReason::ALL.len()],
    pub last_poll: Option<LastPoll>,
    pub last_success: Option<Success>,
    /// The most recent failure and when it happened (Unix time), kept after later successes.
    pub last_failure: Option<(f64, Failure)>,
    /// When the lane plans to poll this target next (Unix time), for the landing page.
    pub next_poll_unix: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct LastPoll {
    pub finished_unix: f64,
    pub duration: Duration,
    pub failure: Option<Failure>,
}

#[derive(Clone, Debug)]
pub struct Success {
    pub report: Arc<Report>,
    /// Monotonic, for staleness; `unix` is for the timestamp metric.
    pub at: Instant,
    pub unix: f64,
}

impl TargetState {
    fn new(target: &Target, api: &'static Api) -> TargetState {
        TargetState {
            server: target.server.clone(),
            api,
            stale_after: target.stale_after,
            poll_interval: target.poll_interval,
            token_name: target.token_name.clone(),
            timezone: target.timezone.clone(),
            requests: 0,
            failures: [0; Reason::ALL.len()],
            consecutive_failures: 0,
            skipped: [0; SkipReason::ALL.len()],
            last_poll: None,
            last_success: None,
            last_failure: None,
            next_poll_unix: None,
        }
    }

    /// Server 0042 just after one successful poll that returned `report` (for benchmarks and
    /// tests of the rendering).
    pub fn after_one_success(report: Report) -> TargetState {
        let now = unix_now();
        TargetState {
            server: "0042".to_owned(),
            api: catalogue::gamification(),
            stale_after: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(300),
            token_name: "WOLKVOX_TOKEN".to_owned(),
            timezone: jiff::tz::TimeZone::get("America/Bogota").expect("the bundled zone database knows Bogota"),
            requests: 1,
            failures: [0; Reason::ALL.len()],
            consecutive_failures: 0,
            skipped: [0; SkipReason::ALL.len()],
            last_poll: Some(LastPoll { finished_unix: now, duration: Duration::from_millis(800), failure: None }),
            last_success: Some(Success { report: Arc::new(report), at: Instant::now(), unix: now }),
            last_failure: None,
            next_poll_unix: Some(now + 300.0),
        }
    }

    /// The usage series to serve: none once the last success is older than `stale_after`.
    pub fn fresh_report(&self, now: Instant) -> Option<&Report> {
        let success = self.last_success.as_ref()?;
        (now.duration_since(success.at) <= self.stale_after).then_some(&*success.report)
    }

    /// Unix time at which the current billing month ends in the target's zone: the first instant
    /// of the next month there.
    pub fn month_end_unix(&self, unix: f64) -> Option<f64> {
        let now = jiff::Timestamp::from_second(unix as i64).ok()?.to_zoned(self.timezone.clone());
        let next_month = now.first_of_month().ok()?.checked_add(jiff::Span::new().months(1)).ok()?.start_of_day().ok()?;
        Some(next_month.timestamp().as_second() as f64)
    }

    /// When the usage series will go stale, if they are still being served.
    fn stale_deadline(&self, now: Instant) -> Option<Instant> {
        let deadline = self.last_success.as_ref()?.at + self.stale_after;
        (deadline >= now).then_some(deadline + Duration::from_millis(1))
    }
}

/// What the metrics say about one token, that is one lane.
#[derive(Clone, Debug)]
pub struct TokenState {
    pub name: String,
    pub daily_call_budget: Option<u32>,
    /// Calls made since midnight in the lane's time zone.
    pub calls_today: u32,
    /// The least time between two calls that the daily budget imposes now (zero without one).
    pub call_spacing: Duration,
    /// The last call came later than its schedule because of the budget.
    pub stretched: bool,
    /// Wolkvox's own count, from the last successful `token_info` poll.
    pub info: Option<TokenInfo>,
}

impl TokenState {
    fn new(target: &Target) -> TokenState {
        TokenState {
            name: target.token_name.clone(),
            daily_call_budget: target.daily_call_budget,
            calls_today: 0,
            call_spacing: Duration::ZERO,
            stretched: false,
            info: None,
        }
    }
}

/// What `/metrics`, `/` and `/-/ready` serve until the next change.
pub struct Published {
    /// Exposition text of everything but the per-scrape process metrics.
    pub text: Bytes,
    /// The same, gzip-compressed once here rather than on every scrape.
    pub gzip: GzipPrefix,
    pub targets: Vec<TargetState>,
    pub tokens: Vec<TokenState>,
    /// Every target (server) has had a successful poll of one of its APIs.
    pub ready: bool,
}

impl Published {
    fn build(targets: Vec<TargetState>, tokens: Vec<TokenState>, budgets: &[Budget], now: Instant) -> Published {
        let text = metrics::render(&targets, &tokens, budgets, now);
        let gzip = GzipPrefix::new(text.as_bytes());
        // A server is ready once any of its APIs answered: one API the token may not call must not
        // keep the others' series from being scraped (its wolkvox_up says what is wrong).
        let ready = targets.iter().all(|t| targets.iter().any(|other| other.server == t.server && other.last_success.is_some()));
        Published { text: Bytes::from(text), gzip, targets, tokens, ready }
    }
}

pub struct Store {
    states: Mutex<Vec<TargetState>>,
    /// One per lane, in the order of [`config::group_by_token`].
    tokens: Mutex<Vec<TokenState>>,
    budgets: Arc<[Budget]>,
    published: ArcSwap<Published>,
    changed: Notify,
}

impl Store {
    /// One state per target and billing API, in the order of [`jobs`].
    pub fn new(targets: &[Target], budgets: &[Budget]) -> Arc<Store> {
        let tokens = config::group_by_token(targets).into_iter().map(|lane| TokenState::new(&targets[lane[0]])).collect();
        Store::from_states(jobs(targets).map(|job| TargetState::new(&targets[job.target], job.api)).collect(), tokens, budgets)
    }

    /// A store that already holds these states, rendered and published (for benchmarks).
    pub fn from_states(states: Vec<TargetState>, tokens: Vec<TokenState>, budgets: &[Budget]) -> Arc<Store> {
        let published = Published::build(states.clone(), tokens.clone(), budgets, Instant::now());
        Arc::new(Store {
            states: Mutex::new(states),
            tokens: Mutex::new(tokens),
            budgets: budgets.into(),
            published: ArcSwap::from_pointee(published),
            changed: Notify::new(),
        })
    }

    pub fn published(&self) -> Arc<Published> {
        self.published.load_full()
    }

    /// A copy of the current state (cheap: reports are shared), for tests and the renderer.
    pub fn states(&self) -> Vec<TargetState> {
        self.states.lock().expect("no panic while holding the lock").clone()
    }

    pub fn tokens(&self) -> Vec<TokenState> {
        self.tokens.lock().expect("no panic while holding the lock").clone()
    }

    /// Updates what lane `lane` reports about its token. Published with the lane's next recorded
    /// poll, so that a poll costs one render, not one per update.
    pub fn update_token(&self, lane: usize, update: impl FnOnce(&mut TokenState)) {
        update(&mut self.tokens.lock().expect("no panic while holding the lock")[lane]);
    }

    /// Notes when the lane will poll target `index` next; published with the next recorded poll.
    pub fn schedule(&self, index: usize, next_poll_unix: f64) {
        self.states.lock().expect("no panic while holding the lock")[index].next_poll_unix = Some(next_poll_unix);
    }

    /// Records one finished poll of target `index`. A failure keeps the last good report.
    pub fn record(&self, index: usize, outcome: Result<Report, Failure>, duration: Duration) {
        let finished_unix = unix_now();
        {
            let mut states = self.states.lock().expect("no panic while holding the lock");
            let state = &mut states[index];
            state.requests += 1;
            let failure = match outcome {
                Ok(report) => {
                    state.consecutive_failures = 0;
                    for &(reason, count) in &report.skipped {
                        state.skipped[reason as usize] += count;
                    }
                    state.last_success = Some(Success { report: Arc::new(report), at: Instant::now(), unix: finished_unix });
                    None
                }
                Err(failure) => {
                    state.consecutive_failures += 1;
                    state.failures[failure.reason as usize] += 1;
                    state.last_failure = Some((finished_unix, failure.clone()));
                    Some(failure)
                }
            };
            state.last_poll = Some(LastPoll { finished_unix, duration, failure });
        }
        self.changed.notify_one();
    }

    /// Renders whenever a poll is recorded, when a target's series go stale, and at a month's end. Runs forever.
    /// `Store::new` published the first render; this one waits for the first change.
    pub async fn render_forever(self: Arc<Self>) {
        // Nothing can go stale, and no month end is due, before a first poll.
        let mut next_render: Option<Instant> = None;
        loop {
            match next_render {
                Some(deadline) => {
                    tokio::select! {
                        () = self.changed.notified() => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => self.changed.notified().await,
            }
            let now = Instant::now();
            let states = self.states();
            // The month's end changes wolkvox_month_end_timestamp_seconds: render then too.
            let unix = unix_now();
            let month_end = states.iter().filter_map(|s| s.month_end_unix(unix)).reduce(f64::min);
            let month_end = month_end.map(|end| now + Duration::from_secs_f64((end - unix).max(0.0) + 0.001));
            next_render = states.iter().filter_map(|s| s.stale_deadline(now)).chain(month_end).min();
            // Rendering a large response takes milliseconds of CPU: keep it off the async workers.
            let (tokens, budgets) = (self.tokens(), self.budgets.clone());
            let published = tokio::task::spawn_blocking(move || Published::build(states, tokens, &budgets, now))
                .await
                .expect("rendering does not panic");
            self.published.store(Arc::new(published));
        }
    }
}

/// One billing API of one target: what a lane polls, and where the outcome is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    /// Index of the state in the store.
    pub state: usize,
    /// Index of the target in the configuration.
    pub target: usize,
    pub api: &'static Api,
}

/// Every target's APIs in configuration order, and `token_info` after the APIs of the first target
/// of each token that asks for it; the store holds their states in the same order.
pub fn jobs(targets: &[Target]) -> impl Iterator<Item = Job> + '_ {
    targets
        .iter()
        .enumerate()
        .flat_map(move |(target, t)| {
            let first_of_token = targets[..target].iter().all(|other| other.token != t.token);
            let token_info = (t.token_info && first_of_token).then_some(&catalogue::TOKEN_INFO);
            t.apis.iter().copied().chain(token_info).map(move |api| (target, api))
        })
        .enumerate()
        .map(|(state, (target, api))| Job { state, target, api })
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wolkvox::Reason;

    fn unix(text: &str) -> f64 {
        text.parse::<jiff::Timestamp>().unwrap().as_second() as f64
    }

    #[test]
    fn the_month_ends_at_midnight_in_the_targets_zone_not_utc() {
        let target = TargetState::after_one_success(Report::default());
        // 02:00 UTC on December 1 is still November 30 in Bogota (UTC-5).
        assert_eq!(target.month_end_unix(unix("2026-12-01T02:00:00Z")), Some(unix("2026-12-01T05:00:00Z")));
        assert_eq!(target.month_end_unix(unix("2026-12-01T05:00:00Z")), Some(unix("2027-01-01T05:00:00Z")));
        assert_eq!(target.month_end_unix(unix("2026-12-31T23:59:59Z")), Some(unix("2027-01-01T05:00:00Z")));
        let utc = TargetState { timezone: jiff::tz::TimeZone::UTC, ..target };
        assert_eq!(utc.month_end_unix(unix("2026-12-01T02:00:00Z")), Some(unix("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn failures_in_a_row_count_until_a_success_and_the_last_failure_stays() {
        let store = Store::from_states(vec![TargetState::after_one_success(Report::default())], vec![], &[]);
        let fail = || Err(Failure::new(Reason::Timeout, "no answer in 60s"));
        store.record(0, fail(), Duration::from_secs(60));
        store.record(0, fail(), Duration::from_secs(60));
        assert_eq!(store.states()[0].consecutive_failures, 2);
        store.record(0, Ok(Report::default()), Duration::from_secs(1));
        let state = &store.states()[0];
        assert_eq!(state.consecutive_failures, 0);
        assert_eq!(state.last_failure.as_ref().map(|(_, f)| f.reason), Some(Reason::Timeout), "kept after the success");
    }
}
