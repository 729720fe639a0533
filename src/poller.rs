//! The whole polling policy: one lane per token, so a token never has two calls in flight; a
//! schedule per target and billing API (first poll at start, then every interval plus a little
//! jitter); sooner retries with backoff for transient failures; a pause of the whole token until
//! the next day on quota errors; and, with a daily call budget, calls spaced so that the budget
//! lasts until midnight and is never exceeded.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Zoned;
use tokio::time::Instant;

use crate::config::{self, Target};
use crate::snapshot::{self, Job, Store};
use crate::wolkvox::{Api, Client, Failure, Reason, Report, TokenInfo, catalogue};

/// Transient failures are retried no sooner than this, unless fast polling is allowed.
const MIN_RETRY: Duration = Duration::from_secs(30);
/// A `Retry-After` longer than this is treated as a mistake.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The API may work on a call for this long; a call we gave up on earlier may still be running.
const API_MAX_CALL: Duration = Duration::from_secs(60);

/// Where usage comes from: the Wolkvox client in production, a script in scheduling tests.
pub trait UsageSource: Send + Sync + 'static {
    fn poll(&self, target: &Target, api: &'static Api) -> impl Future<Output = Result<Report, Failure>> + Send;
    fn token_info(&self, target: &Target) -> impl Future<Output = Result<TokenInfo, Failure>> + Send;
}

impl UsageSource for Client {
    fn poll(&self, target: &Target, api: &'static Api) -> impl Future<Output = Result<Report, Failure>> + Send {
        self.fetch(target, api.name, &target.token)
    }

    fn token_info(&self, target: &Target) -> impl Future<Output = Result<TokenInfo, Failure>> + Send {
        self.fetch_token_info(target, &target.token)
    }
}

/// The targets that share one token, and their jobs (`Job::target` indexes `targets`). The
/// token's name and budget are those of its first target (the configuration checked they agree).
pub struct Lane {
    /// The token's place in the store.
    pub index: usize,
    pub targets: Vec<Target>,
    pub jobs: Vec<Job>,
}

/// One lane per token, in configuration order.
pub fn lanes(targets: &[Target]) -> Vec<Lane> {
    config::group_by_token(targets)
        .into_iter()
        .enumerate()
        .map(|(index, members)| Lane {
            index,
            targets: members.iter().map(|&i| targets[i].clone()).collect(),
            jobs: snapshot::jobs(targets)
                .filter_map(|job| Some(Job { target: members.iter().position(|&i| i == job.target)?, ..job }))
                .collect(),
        })
        .collect()
}

/// Polls a lane's jobs one call at a time, forever.
pub async fn run_lane<S: UsageSource>(source: Arc<S>, lane: Lane, store: Arc<Store>) {
    let Lane { index: lane, mut targets, jobs } = lane;
    let clock = Clock::start();
    let zone = targets[0].timezone.clone();
    let mut calls = CallsToday { limit: targets[0].daily_call_budget, day: clock.now(&zone).date(), calls: 0 };
    let mut last_call_end: Option<Instant> = None;
    let mut was_stretched = false;
    let start = Instant::now();
    let mut plans: Vec<Plan> =
        jobs.iter().map(|job| Plan { due: start + first_poll_jitter(targets[job.target].poll_interval), failures_in_a_row: 0 }).collect();
    publish_schedule(&store, &jobs, &plans);
    loop {
        let Some((next, due)) = plans.iter().enumerate().min_by_key(|(_, plan)| plan.due).map(|(k, plan)| (k, plan.due)) else {
            return;
        };
        let now = clock.now(&zone);
        calls.roll_over(&now);
        let spacing = calls.spacing(&now);
        let at = match last_call_end {
            // Spent: nothing until the day (and the count) starts again.
            _ if calls.spent() => Instant::now() + until_next_day(&now) + Duration::from_millis(1),
            Some(end) => due.max(end + spacing),
            None => due,
        };
        // Stretched: the budget, not the schedule or the previous call, decided when this one goes.
        let stretched = calls.limit.is_some() && last_call_end.is_some_and(|end| at > due.max(end));
        tokio::time::sleep_until(at).await;
        calls.roll_over(&clock.now(&zone));
        if calls.spent() {
            // A wake-up just short of midnight: wait again rather than overspend.
            continue;
        }
        calls.calls += 1;
        let job = jobs[next];
        let target = &mut targets[job.target];
        refresh_token(target);
        let started = Instant::now();
        let (outcome, info) = call(source.as_ref(), target, job.api).await;
        let took = started.elapsed();
        last_call_end = Some(Instant::now());
        log_stretch(&targets[0].token_name, &calls, spacing, (was_stretched, stretched));
        was_stretched = stretched;
        store.update_token(lane, |token| {
            token.calls_today = calls.calls;
            token.call_spacing = spacing;
            token.stretched = stretched;
            token.info = info.or(token.info.take());
        });
        let target = &targets[job.target];

        let now = clock.now(&target.timezone);
        let plan = &mut plans[next];
        let wait = next_wait(&outcome, plan.failures_in_a_row, target, &now);
        plan.failures_in_a_row = match &outcome {
            Err(failure) if failure.is_transient() => plan.failures_in_a_row + 1,
            _ => 0,
        };
        let wait = wait + jitter(wait);
        // Measured from the end of the call: the next one can never come sooner than `wait`.
        let finished = Instant::now();
        plan.due = finished + wait;
        match &outcome {
            // The quota belongs to the token: every target of the lane waits for the next day.
            Err(failure) if failure.reason == Reason::Quota => plans.iter_mut().for_each(|p| p.due = p.due.max(finished + wait)),
            // Wolkvox may still be answering the call we dropped: give it the API's full minute
            // before the token makes another call, so two can never overlap on its side.
            Err(failure) if failure.reason == Reason::Timeout => {
                let mut rest = API_MAX_CALL.saturating_sub(target.timeout);
                if target.allow_fast_poll {
                    rest = rest.min(target.poll_interval);
                }
                let quiet = finished + rest;
                plans.iter_mut().for_each(|p| p.due = p.due.max(quiet));
            }
            _ => {}
        }
        log_outcome(target, job.api, &outcome, took, wait);
        publish_schedule(&store, &jobs, &plans);
        store.record(job.state, outcome, took);
    }
}

/// Tells the store when each job is due, for the landing page (a budget may still delay a call).
fn publish_schedule(store: &Store, jobs: &[Job], plans: &[Plan]) {
    let (now, unix) = (Instant::now(), snapshot::unix_now());
    for (job, plan) in jobs.iter().zip(plans) {
        store.schedule(job.state, unix + plan.due.saturating_duration_since(now).as_secs_f64());
    }
}

/// The wall clock, plus however far tokio's clock has run ahead of the real one: nothing in
/// production (so clock corrections are followed), virtual days in tests under a paused clock. The
/// day boundaries of quotas and budgets come from it.
struct Clock {
    tokio: Instant,
    real: std::time::Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock { tokio: Instant::now(), real: std::time::Instant::now() }
    }

    fn now(&self, zone: &jiff::tz::TimeZone) -> Zoned {
        let ahead = self.tokio.elapsed().saturating_sub(self.real.elapsed());
        let ahead = jiff::SignedDuration::try_from(ahead).unwrap_or(jiff::SignedDuration::MAX);
        jiff::Timestamp::now().saturating_add(ahead).unwrap_or(jiff::Timestamp::MAX).to_zoned(zone.clone())
    }
}

/// The token's calls since midnight, against its daily budget if it has one.
struct CallsToday {
    limit: Option<u32>,
    day: jiff::civil::Date,
    calls: u32,
}

impl CallsToday {
    /// A new day starts the count again.
    fn roll_over(&mut self, now: &Zoned) {
        if now.date() != self.day {
            self.day = now.date();
            self.calls = 0;
        }
    }

    fn spent(&self) -> bool {
        self.limit.is_some_and(|limit| self.calls >= limit)
    }

    /// The calls left, spread evenly over the rest of the day; zero without a budget.
    fn spacing(&self, now: &Zoned) -> Duration {
        let Some(limit) = self.limit else { return Duration::ZERO };
        let rest_of_day = until_next_day(now);
        rest_of_day / limit.saturating_sub(self.calls).max(1)
    }
}

/// One call of a job. `token_info` is recorded like any API (health, failures); its numbers,
/// which belong to the token, come back beside an empty report.
async fn call<S: UsageSource>(source: &S, target: &Target, api: &'static Api) -> (Result<Report, Failure>, Option<TokenInfo>) {
    if std::ptr::eq(api, &catalogue::TOKEN_INFO) {
        match source.token_info(target).await {
            Ok(info) => (Ok(Report::default()), Some(info)),
            Err(failure) => (Err(failure), None),
        }
    } else {
        (source.poll(target, api).await, None)
    }
}

/// Logs when the budget starts or stops holding the schedule back.
fn log_stretch(name: &str, calls: &CallsToday, spacing: Duration, (was_stretched, stretched): (bool, bool)) {
    let budget = calls.limit.unwrap_or(0);
    if stretched && !was_stretched {
        let every = humantime::format_duration(Duration::from_secs(spacing.as_secs())).to_string();
        tracing::info!(token_name = name, budget, calls_today = calls.calls, every, "the daily call budget stretches the schedule");
    } else if !stretched && was_stretched {
        tracing::info!(token_name = name, budget, calls_today = calls.calls, "the schedule fits the daily call budget again");
    }
}

/// Reads the token file again before each poll: a rotated token is used without a restart, and a
/// file that cannot be read (mid-rotation, say) leaves the previous token in use.
fn refresh_token(target: &mut Target) {
    let Some(path) = &target.token_file else { return };
    match config::read_token_file(path) {
        Ok(token) if token != target.token => {
            tracing::info!(server = %target.server, file = %path.display(), "the token file changed: polling with the new token");
            if let Some(warning) = config::readable_by_others(path) {
                tracing::warn!("{warning}");
            }
            target.token = token;
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(server = %target.server, %error, "cannot read the token file; polling with the previous token"),
    }
}

struct Plan {
    due: Instant,
    failures_in_a_row: u32,
}

/// How long to wait after a poll, before jitter. `failures_in_a_row` counts the transient
/// failures before this one.
pub fn next_wait(outcome: &Result<Report, Failure>, failures_in_a_row: u32, target: &Target, now: &Zoned) -> Duration {
    let interval = target.poll_interval;
    let wait = match outcome {
        Ok(_) => return interval,
        Err(failure) if failure.reason == Reason::Quota => until_next_day(now),
        Err(failure) if failure.is_transient() => {
            let floor = if target.allow_fast_poll { MIN_RETRY.min(interval) } else { MIN_RETRY };
            match failure.retry_after {
                Some(_) => floor,
                None => floor.saturating_mul(2u32.saturating_pow(failures_in_a_row)).min(interval).max(floor),
            }
        }
        Err(_) => interval,
    };
    // A server that says when to come back is obeyed, whatever the failure.
    let asked = outcome.as_ref().err().and_then(|f| f.retry_after).map_or(Duration::ZERO, |d| d.min(MAX_RETRY_AFTER));
    wait.max(asked)
}

/// Time until 00:00:00 tomorrow in the target's zone, when the daily quota is assumed to reset.
pub fn until_next_day(now: &Zoned) -> Duration {
    let midnight = now.tomorrow().and_then(|day| day.start_of_day()).expect("tomorrow exists");
    Duration::try_from(now.duration_until(&midnight)).unwrap_or(Duration::ZERO)
}

/// Up to 5% later (at most 30 s), so that exporters restarted together drift apart. Never
/// earlier: the interval is a floor the API imposes.
fn jitter(wait: Duration) -> Duration {
    let most = (wait / 20).min(Duration::from_secs(30));
    most.mul_f64(fastrand::f64())
}

/// The first poll comes within a tenth of the interval (at most 5 s) of start-up.
fn first_poll_jitter(interval: Duration) -> Duration {
    (interval / 10).min(Duration::from_secs(5)).mul_f64(fastrand::f64())
}

fn log_outcome(target: &Target, api: &Api, outcome: &Result<Report, Failure>, took: Duration, wait: Duration) {
    let took_ms = took.as_millis() as u64;
    let next_poll_in = humantime::format_duration(Duration::from_secs(wait.as_secs())).to_string();
    match outcome {
        Ok(report) => tracing::info!(
            server = %target.server, api = api.name, series = report.series.len(), rows = report.rows, took_ms, next_poll_in,
            "poll succeeded"
        ),
        Err(failure) => tracing::warn!(
            server = %target.server, api = api.name, reason = failure.reason.as_str(), msg = %failure.detail, took_ms, next_poll_in,
            "poll failed; serving the last good values"
        ),
    }
}
