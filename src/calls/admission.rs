//! Call admission: from a token's ledger and the time, which of its jobs calls next and when. Every
//! rule about when Wolkvox may be called lives here, and nowhere else:
//!
//! - the API's floor: one call per API every 5 minutes (unless fast polling is allowed);
//! - one call in flight per token; a call still open in the ledger (another process on the same
//!   state directory is making it, or the process died during it) blocks the token until its
//!   caller gives up on it, and at least until Wolkvox would have (60 s);
//! - a token's APIs spread evenly over the 5 minutes instead of called back to back;
//! - the daily call budget: calls spaced so that what is left lasts until midnight, never over it;
//! - what each failure means (`Failure::consequence`): the interval, backoff, `Retry-After`, the
//!   token's rest after a timeout, the quota's pause until midnight in the token's zone;
//! - side calls (the backfill) share the token's rules and each API's floor with the exporter, but
//!   not its schedule, and take turns with a running exporter rather than its slot.
//!
//! Pure and synchronous: the ledger is a plain value (the state directory persists it as it is),
//! `now` is a parameter, and the random jitter is passed in.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::clock::until;
use crate::wolkvox::{Consequence, Failure, Reason};

/// The API allows one call per API every 5 minutes.
pub const FLOOR: Duration = Duration::from_secs(300);
/// The API may work on a call for this long; a call we gave up on earlier may still be running.
pub const API_MAX_CALL: Duration = Duration::from_secs(60);
/// The first retry of a transient failure; it doubles up to the interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// While a call of another process holds the token, its ledger is read again this often: the
/// call's end frees the token at once, long before its timeout.
const OPEN_CALL_RECHECK: SignedDuration = SignedDuration::from_secs(1);
/// A `Retry-After` longer than this is treated as a mistake.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The first poll of a new job comes within a tenth of its interval, at most this, of start-up.
const MAX_FIRST_POLL_JITTER: Duration = Duration::from_secs(5);
/// A past event this far in the future is the clock's doing, not a rounding.
const CLOCK_TOLERANCE: SignedDuration = SignedDuration::from_secs(2);
/// Jitter only ever adds to a wait: up to 5% of it, at most 30 s.
const MAX_JITTER: Duration = Duration::from_secs(30);

/// The rules of one token, from the configuration.
#[derive(Clone, Debug)]
pub struct TokenRules {
    /// The zone of the token's day (budget and quota).
    pub zone: TimeZone,
    pub daily_budget: Option<u32>,
    /// Intervals under 5 minutes allowed (simulators and tests): no floor.
    pub fast_poll: bool,
    pub jobs: Vec<JobRules>,
}

/// The rules of one job (one billing API of one server, or `token_info`).
#[derive(Clone, Debug)]
pub struct JobRules {
    /// Names the job in the ledger: stable across restarts, never the token.
    pub key: String,
    pub interval: Duration,
    pub timeout: Duration,
}

/// What a token has done and must remember, across restarts too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub jobs: BTreeMap<String, JobLedger>,
    pub last_call_start: Option<Timestamp>,
    /// None while a call is in flight (or was, when its process died).
    pub last_call_end: Option<Timestamp>,
    /// The day `calls_today` counts, in the token's zone.
    pub day: Option<Date>,
    pub calls_today: u32,
    /// No call of the token before this (quota, rest after a timeout).
    pub paused_until: Option<Timestamp>,
    /// Why `paused_until` was set: the cause of its latest end.
    #[serde(default)]
    pub pause_reason: Option<PauseReason>,
    /// While a call is open: when its caller gives up on it at the latest.
    #[serde(default)]
    pub open_call_until: Option<Timestamp>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobLedger {
    pub last_start: Option<Timestamp>,
    pub last_end: Option<Timestamp>,
    /// None: succeeded (or never ended); Some: how the last call failed.
    pub last_failure: Option<Reason>,
    /// Transient failures since the last success or lasting failure, for the backoff.
    pub failures_in_a_row: u32,
    /// Failures of any kind since the last success, for `wolkvox_consecutive_failures`.
    #[serde(default)]
    pub failures_since_success: u32,
    /// When this job is due by its own schedule (interval, backoff, `Retry-After`).
    pub due: Option<Timestamp>,
}

/// Why a token makes no call for a while.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// Wolkvox said the day's quota is spent: until midnight in the token's zone.
    Quota,
    /// A call timed out: until Wolkvox would have given up on it, so two never overlap there.
    TimeoutRest,
    /// The daily call budget is spent: until midnight in the token's zone.
    Budget,
}

impl PauseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::Quota => "quota",
            PauseReason::TimeoutRest => "timeout_rest",
            PauseReason::Budget => "budget",
        }
    }
}

/// The answer: job `job` (an index into `TokenRules::jobs`) may call at `at`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    pub job: usize,
    pub at: Timestamp,
    /// The least time between two calls that the daily budget imposes now (zero without one).
    pub spacing: Duration,
    /// The budget, not the schedule, set `at`.
    pub held_by_budget: bool,
}

impl Ledger {
    /// Calls made on `now`'s day in the zone (the count of another day is not today's).
    pub fn calls_on(&self, now: Timestamp, zone: &TimeZone) -> u32 {
        if self.day == Some(now.to_zoned(zone.clone()).date()) { self.calls_today } else { 0 }
    }

    /// Takes in another view of the same token (the file, when this process's writes failed and
    /// another process may have written since): of each fact the more restrictive, so that no
    /// call is admitted that either view forbids.
    pub fn merge(&mut self, other: &Ledger) {
        // The token's latest call, with its end; the same start seen ended is the later view.
        let same_call_ended_there =
            other.last_call_start == self.last_call_start && self.last_call_end.is_none();
        if other.last_call_start > self.last_call_start || same_call_ended_there {
            self.last_call_start = other.last_call_start;
            self.last_call_end = other.last_call_end;
            self.open_call_until = other.open_call_until;
        }
        match other.day.cmp(&self.day) {
            std::cmp::Ordering::Greater => {
                (self.day, self.calls_today) = (other.day, other.calls_today)
            }
            std::cmp::Ordering::Equal => self.calls_today = self.calls_today.max(other.calls_today),
            std::cmp::Ordering::Less => {}
        }
        if other.paused_until > self.paused_until {
            (self.paused_until, self.pause_reason) = (other.paused_until, other.pause_reason);
        }
        for (key, theirs) in &other.jobs {
            let mine = self.jobs.entry(key.clone()).or_insert_with(|| theirs.clone());
            mine.last_start = mine.last_start.max(theirs.last_start);
            mine.due = mine.due.max(theirs.due);
            if theirs.last_end > mine.last_end {
                mine.last_end = theirs.last_end;
                mine.last_failure = theirs.last_failure;
                mine.failures_in_a_row = theirs.failures_in_a_row;
                mine.failures_since_success = theirs.failures_since_success;
            }
        }
    }

    /// Until when a call that started and has not ended holds the token: one made by another
    /// process on the same state directory, or left open by a process that died during it.
    fn open_call_holds_until(&self) -> Option<Timestamp> {
        let start = self.last_call_end.is_none().then_some(self.last_call_start).flatten()?;
        Some(latest([Some(start + signed(API_MAX_CALL)), self.open_call_until]))
    }
}

/// Past events recorded in the future mean the wall clock has been stepped back since they were
/// (a machine that booted with a wrong clock, then corrected): by at least as far as the latest is
/// ahead. Every time in the ledger moves back by that step, so that each wait is what its rule
/// asked, counted from the present, rather than the clock's error on top of it (a day ahead, a
/// day without a call). A day count of a future day is today's. Returns the step, if any.
pub fn undo_clock_step(
    ledger: &mut Ledger,
    rules: &TokenRules,
    now: Timestamp,
) -> Option<SignedDuration> {
    let events = ledger.jobs.values().flat_map(|job| [job.last_start, job.last_end]);
    let latest = events.chain([ledger.last_call_start, ledger.last_call_end]).flatten().max()?;
    let step = latest.duration_since(now);
    if step <= CLOCK_TOLERANCE {
        return None;
    }
    let back = |at: &mut Option<Timestamp>| {
        *at = at.map(|at| at.checked_sub(step).unwrap_or(Timestamp::MIN))
    };
    for job in ledger.jobs.values_mut() {
        [&mut job.last_start, &mut job.last_end, &mut job.due].into_iter().for_each(back);
    }
    [
        &mut ledger.last_call_start,
        &mut ledger.last_call_end,
        &mut ledger.paused_until,
        &mut ledger.open_call_until,
    ]
    .into_iter()
    .for_each(back);
    let today = now.to_zoned(rules.zone.clone()).date();
    if ledger.day > Some(today) {
        ledger.day = Some(today);
    }
    Some(step)
}

/// Makes the ledger hold exactly the configured jobs: a new job is due within a few seconds
/// (`jitter` in [0, 1) spreads exporters started together), a job no longer configured is dropped.
pub fn reconcile(ledger: &mut Ledger, rules: &TokenRules, now: Timestamp, jitter: f64) {
    ledger.jobs.retain(|key, _| rules.jobs.iter().any(|job| job.key == *key));
    add_jobs(ledger, rules, now, jitter);
}

/// Adds the jobs the ledger lacks and keeps the others, configured or not: a side command such as
/// the backfill must not make the exporter forget when it called its other APIs.
pub fn add_jobs(ledger: &mut Ledger, rules: &TokenRules, now: Timestamp, jitter: f64) {
    for job in &rules.jobs {
        ledger.jobs.entry(job.key.clone()).or_insert_with(|| JobLedger {
            due: Some(now + signed(scale((job.interval / 10).min(MAX_FIRST_POLL_JITTER), jitter))),
            ..JobLedger::default()
        });
    }
}

/// Which job calls next, and when; None only for a token without jobs.
pub fn next(ledger: &Ledger, rules: &TokenRules, now: Timestamp) -> Option<Decision> {
    // The earliest; of equals, the job that was due first, then the first configured.
    schedule(ledger, rules, now)
        .into_iter()
        .min_by_key(|decision| (decision.at, due_of(ledger, rules, decision.job)))
}

/// When to look at the ledger again for a call admitted at `at`: then, or soon while a call is
/// open (another process's, on a shared state directory), since its end frees the token at once.
pub fn look_again_at(ledger: &Ledger, at: Timestamp, now: Timestamp) -> Timestamp {
    match ledger.open_call_holds_until() {
        Some(_) => at.min(now + OPEN_CALL_RECHECK),
        None => at,
    }
}

/// When each job may call, if it were the next (one decision per job, in configuration order).
pub fn schedule(ledger: &Ledger, rules: &TokenRules, now: Timestamp) -> Vec<Decision> {
    let hold = TokenHold::of(ledger, rules, now);
    (0..rules.jobs.len())
        .map(|job| hold.decide(ledger, rules, job, due_of(ledger, rules, job).unwrap_or(now)))
        .collect()
}

/// When a side command (the backfill) may call job `job`: the API's floor, the token's own
/// constraints and its budget hold as for the exporter, but the job's schedule is the side
/// command's own (`own_due`: its interval since its last call), not the exporter's.
pub fn next_side_call(
    ledger: &Ledger,
    rules: &TokenRules,
    job: usize,
    now: Timestamp,
    own_due: Option<Timestamp>,
) -> Decision {
    TokenHold::of(ledger, rules, now).decide(ledger, rules, job, own_due.unwrap_or(now))
}

/// Whether a side call of job `job` at `at` must let a running exporter call first, and until
/// when at the latest: the exporter may call the same job before a floor after `at` (the side call
/// would delay it), and the job's last call was the side command's own (`own_last_start`), so the
/// turn is the exporter's. The turn ends when the exporter calls, or a floor after it could have:
/// an exporter that does not call (stopped, or hung) does not hold the side command for ever.
pub fn exporters_turn(
    ledger: &Ledger,
    rules: &TokenRules,
    job: usize,
    at: Timestamp,
    own_last_start: Option<Timestamp>,
) -> Option<Timestamp> {
    let floor = signed(if rules.fast_poll { Duration::ZERO } else { FLOOR });
    let state = ledger.jobs.get(&rules.jobs[job].key)?;
    let last_was_ours = own_last_start.is_some() && state.last_start == own_last_start;
    let exporter_at = TokenHold::of(ledger, rules, at).decide(ledger, rules, job, state.due?).at;
    (last_was_ours && exporter_at < at + floor && at < exporter_at + floor)
        .then_some(exporter_at + floor)
}

fn due_of(ledger: &Ledger, rules: &TokenRules, job: usize) -> Option<Timestamp> {
    ledger.jobs.get(&rules.jobs[job].key).and_then(|j| j.due)
}

/// How often each of a token's `jobs` can call on `daily_budget` calls a day: an equal share of the
/// day each. Configuration lengthens shorter intervals to it, so that a budgeted schedule asks no
/// more than the budget gives; `TokenHold` then spaces the calls by what is left of the day.
/// None when the budget cannot pay for one call of each job a day.
pub fn budget_interval(daily_budget: u32, jobs: usize) -> Option<Duration> {
    let jobs = u64::try_from(jobs).ok()?;
    (daily_budget > 0 && u64::from(daily_budget) >= jobs)
        .then(|| Duration::from_secs(24 * 3600 * jobs / u64::from(daily_budget)))
}

/// What holds back every job of a token at one instant: the call in flight, the spread, a pause
/// and the budget.
struct TokenHold {
    floor: Duration,
    token_at: Timestamp,
    budget_at: Option<Timestamp>,
    spacing: Duration,
}

impl TokenHold {
    fn of(ledger: &Ledger, rules: &TokenRules, now: Timestamp) -> TokenHold {
        let floor = if rules.fast_poll { Duration::ZERO } else { FLOOR };
        // Several jobs take turns evenly over the floor (or the shortest interval, if shorter):
        // three APIs every 5 minutes call once every 100 s, not back to back. Longer intervals do
        // not delay the first polls further; one job is held by its own schedule only.
        let shortest = rules.jobs.iter().map(|job| job.interval).min().unwrap_or(Duration::ZERO);
        let spread = match rules.jobs.len() {
            0 | 1 => Duration::ZERO,
            jobs => shortest.min(floor) / jobs as u32,
        };
        let token_at = latest([
            ledger.open_call_holds_until(),
            ledger.last_call_end,
            ledger.last_call_start.map(|start| start + signed(spread)),
            ledger.paused_until,
        ]);
        let (budget_at, spacing) = match rules.daily_budget {
            None => (None, Duration::ZERO),
            Some(budget) => {
                let calls = ledger.calls_on(now, &rules.zone);
                if calls >= budget {
                    (Some(next_midnight(now, &rules.zone)), Duration::ZERO)
                } else {
                    let spacing = until(now, next_midnight(now, &rules.zone)) / (budget - calls);
                    (ledger.last_call_end.map(|end| end + signed(spacing)), spacing)
                }
            }
        };
        TokenHold { floor, token_at, budget_at, spacing }
    }

    /// Job `job`, due by its schedule at `due`, calls at the latest of that, its API's floor and
    /// what holds the token.
    fn decide(&self, ledger: &Ledger, rules: &TokenRules, job: usize, due: Timestamp) -> Decision {
        let floor_at = ledger
            .jobs
            .get(&rules.jobs[job].key)
            .and_then(|s| s.last_start)
            .map(|start| start + signed(self.floor));
        let scheduled = latest([Some(due), floor_at, Some(self.token_at)]);
        let at = latest([Some(scheduled), self.budget_at]);
        Decision {
            job,
            at,
            spacing: self.spacing,
            held_by_budget: self.budget_at.is_some_and(|b| b > scheduled),
        }
    }
}

/// Notes that job `job` starts a call at `now`: for the token's day count, the one call in flight
/// (held until the job's timeout, for any other process on the state directory), and the floor.
pub fn record_start(ledger: &mut Ledger, rules: &TokenRules, job: usize, now: Timestamp) {
    let today = now.to_zoned(rules.zone.clone()).date();
    ledger.calls_today = ledger.calls_on(now, &rules.zone) + 1;
    ledger.day = Some(today);
    ledger.last_call_start = Some(now);
    ledger.last_call_end = None;
    ledger.open_call_until = Some(now + signed(rules.jobs[job].timeout));
    ledger.jobs.entry(rules.jobs[job].key.clone()).or_default().last_start = Some(now);
}

/// Notes that job `job`'s call ended at `now` with `failure` (None: success), and schedules what
/// follows. `jitter` in [0, 1) lengthens the wait a little.
pub fn record_end(
    ledger: &mut Ledger,
    rules: &TokenRules,
    job: usize,
    now: Timestamp,
    failure: Option<&Failure>,
    jitter: f64,
) {
    let state = ledger.jobs.entry(rules.jobs[job].key.clone()).or_default();
    let consequence = failure.map(Failure::consequence);
    let wait = wait_after(rules, job, state.failures_in_a_row, failure, now);
    let wait = wait + scale((wait / 20).min(MAX_JITTER), jitter);

    state.last_end = Some(now);
    state.last_failure = failure.map(|f| f.reason);
    state.failures_since_success =
        if failure.is_some() { state.failures_since_success + 1 } else { 0 };
    state.failures_in_a_row = match consequence {
        Some(Consequence::Backoff | Consequence::BackoffAndRestToken) => {
            state.failures_in_a_row + 1
        }
        _ => 0,
    };
    state.due = Some(now + signed(wait));
    end_token_call(ledger, rules, job, now, consequence);
}

/// How long job `job` waits after a call that ended at `now` with `failure` (None: a success),
/// before any jitter, by the failure's consequence: the interval; the backoff of a transient
/// failure (`failures_in_a_row` before this one); until midnight in the token's zone for the
/// quota; and longer whenever the server said when to come back.
pub fn wait_after(
    rules: &TokenRules,
    job: usize,
    failures_in_a_row: u32,
    failure: Option<&Failure>,
    now: Timestamp,
) -> Duration {
    let interval = rules.jobs[job].interval;
    let wait = match failure.map(Failure::consequence) {
        None | Some(Consequence::Interval) => interval,
        Some(Consequence::Backoff | Consequence::BackoffAndRestToken) => {
            backoff(failures_in_a_row, interval, rules.fast_poll)
        }
        Some(Consequence::PauseTokenUntilMidnight) => until(now, next_midnight(now, &rules.zone)),
    };
    // A server that says when to come back is obeyed, whatever the failure.
    let asked =
        failure.and_then(|f| f.retry_after).map_or(Duration::ZERO, |d| d.min(MAX_RETRY_AFTER));
    wait.max(asked)
}

/// Notes that a side command's call of job `job` ended at `now`: what it means for the token (the
/// call in flight ends, a quota or a timeout pauses every caller) is recorded as for the exporter;
/// the job's own schedule and failure counts, which the exporter reports, are left alone.
pub fn record_side_end(
    ledger: &mut Ledger,
    rules: &TokenRules,
    job: usize,
    now: Timestamp,
    failure: Option<&Failure>,
) {
    end_token_call(ledger, rules, job, now, failure.map(Failure::consequence));
}

fn end_token_call(
    ledger: &mut Ledger,
    rules: &TokenRules,
    job: usize,
    now: Timestamp,
    consequence: Option<Consequence>,
) {
    let started = ledger.jobs.get(&rules.jobs[job].key).and_then(|j| j.last_start).unwrap_or(now);
    ledger.last_call_end = Some(now);
    ledger.open_call_until = None;
    let pause = match consequence {
        // The quota belongs to the token: every job waits for the next day.
        Some(Consequence::PauseTokenUntilMidnight) => {
            Some((next_midnight(now, &rules.zone), PauseReason::Quota))
        }
        // Wolkvox may still be answering the call we dropped: give it the API's full minute
        // before the token makes another call, so two can never overlap on its side.
        Some(Consequence::BackoffAndRestToken) => {
            let rest = started + signed(API_MAX_CALL);
            let rest = if rules.fast_poll {
                rest.min(now + signed(rules.jobs[job].interval))
            } else {
                rest
            };
            Some((rest, PauseReason::TimeoutRest))
        }
        _ => None,
    };
    if let Some((until, reason)) = pause
        && Some(until) > ledger.paused_until
    {
        (ledger.paused_until, ledger.pause_reason) = (Some(until), Some(reason));
    }
}

/// The pause that holds the whole token at `now`, if any: until when, and why. A spent daily budget
/// counts, like a pause Wolkvox imposed; of two, the one that lasts longer.
pub fn pause(
    ledger: &Ledger,
    rules: &TokenRules,
    now: Timestamp,
) -> Option<(Timestamp, PauseReason)> {
    // A ledger of an earlier version has no reason: a rest lasts a minute, a quota a day.
    let imposed = ledger
        .paused_until
        .filter(|&until| until > now)
        .map(|until| (until, ledger.pause_reason.unwrap_or(PauseReason::Quota)));
    let budget_spent =
        rules.daily_budget.is_some_and(|budget| ledger.calls_on(now, &rules.zone) >= budget);
    let budget = budget_spent.then(|| (next_midnight(now, &rules.zone), PauseReason::Budget));
    [imposed, budget]
        .into_iter()
        .flatten()
        .max_by_key(|&(until, reason)| (until, reason != PauseReason::Budget))
}

/// 30 s doubling per failure in a row, up to the interval; with fast polling the first retry may
/// come as soon as the interval.
fn backoff(failures_in_a_row: u32, interval: Duration, fast: bool) -> Duration {
    let first = if fast { FIRST_BACKOFF.min(interval) } else { FIRST_BACKOFF };
    first.saturating_mul(2u32.saturating_pow(failures_in_a_row)).min(interval).max(first)
}

/// 00:00:00 of the day after `now`'s in the zone, when the daily quota is assumed to reset.
pub fn next_midnight(now: Timestamp, zone: &TimeZone) -> Timestamp {
    let zoned = now.to_zoned(zone.clone());
    zoned
        .tomorrow()
        .and_then(|day| day.start_of_day())
        .map_or(Timestamp::MAX, |midnight| midnight.timestamp())
}

fn latest<const N: usize>(times: [Option<Timestamp>; N]) -> Timestamp {
    times.into_iter().flatten().max().unwrap_or(Timestamp::MIN)
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

fn scale(most: Duration, fraction: f64) -> Duration {
    most.mul_f64(fraction.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn job(key: &str, interval: Duration) -> JobRules {
        JobRules { key: key.to_owned(), interval, timeout: MINUTE }
    }

    fn rules(jobs: Vec<JobRules>) -> TokenRules {
        TokenRules {
            zone: TimeZone::get("America/Bogota").unwrap(),
            daily_budget: None,
            fast_poll: false,
            jobs,
        }
    }

    fn failure(reason: Reason, status: Option<u16>) -> Failure {
        Failure { status, ..Failure::new(reason, "test") }
    }

    /// Records one call of `job` from `start` to `end`.
    fn call(
        ledger: &mut Ledger,
        rules: &TokenRules,
        job: usize,
        start: Timestamp,
        end: Timestamp,
        failure: Option<&Failure>,
    ) {
        record_start(ledger, rules, job, start);
        record_end(ledger, rules, job, end, failure, 0.0);
    }

    /// Records one call of a side command (the backfill) of `job`, at `at`, over at once.
    fn side_call(
        ledger: &mut Ledger,
        rules: &TokenRules,
        job: usize,
        at: Timestamp,
        failure: Option<&Failure>,
    ) {
        record_start(ledger, rules, job, at);
        record_side_end(ledger, rules, job, at, failure);
    }

    fn rules_with_interval(interval: Duration) -> TokenRules {
        rules(vec![job("0042/gamification", interval)])
    }

    fn started(rules: &TokenRules, now: Timestamp) -> Ledger {
        let mut ledger = Ledger::default();
        reconcile(&mut ledger, rules, now, 0.0);
        ledger
    }

    const NOON: &str = "2026-11-15T12:00:00-05:00";

    #[test]
    fn a_new_job_is_due_at_once_then_every_interval_after_its_end() {
        let rules = rules(vec![job("0042/gamification", 5 * MINUTE)]);
        let now = at(NOON);
        let mut ledger = started(&rules, now);
        assert_eq!(next(&ledger, &rules, now).unwrap().at, now);
        call(&mut ledger, &rules, 0, now, now + SignedDuration::from_secs(2), None);
        assert_eq!(next(&ledger, &rules, now).unwrap().at, at("2026-11-15T12:05:02-05:00"));
    }

    #[test]
    fn first_poll_jitter_is_at_most_a_tenth_of_the_interval_and_5s() {
        let rules = rules(vec![job("a", 5 * MINUTE), job("b", 20 * Duration::from_secs(1))]);
        let ledger = started(&rules, at(NOON));
        let mut jittered = Ledger::default();
        reconcile(&mut jittered, &rules, at(NOON), 0.999);
        assert_eq!(ledger.jobs["a"].due, Some(at(NOON)));
        assert!(jittered.jobs["a"].due.unwrap() < at("2026-11-15T12:00:05-05:00"));
        assert!(jittered.jobs["b"].due.unwrap() < at("2026-11-15T12:00:02-05:00"));
    }

    #[test]
    fn the_floor_holds_even_when_a_job_is_due_sooner() {
        let rules = rules(vec![job("a", 5 * MINUTE)]);
        let mut ledger = started(&rules, at(NOON));
        // A transient failure asks for a 30 s retry; the API's floor says 5 minutes after the start.
        call(
            &mut ledger,
            &rules,
            0,
            at(NOON),
            at("2026-11-15T12:00:01-05:00"),
            Some(&failure(Reason::Transport, None)),
        );
        assert_eq!(ledger.jobs["a"].due, Some(at("2026-11-15T12:00:31-05:00")));
        assert_eq!(next(&ledger, &rules, at(NOON)).unwrap().at, at("2026-11-15T12:05:00-05:00"));
        // With fast polling allowed (simulators, tests) there is no floor.
        let fast = TokenRules { fast_poll: true, ..rules.clone() };
        assert_eq!(next(&ledger, &fast, at(NOON)).unwrap().at, at("2026-11-15T12:00:31-05:00"));
    }

    #[test]
    fn a_call_left_open_by_a_crash_blocks_the_token_for_the_apis_full_minute() {
        let rules = rules(vec![job("a", MINUTE), job("b", MINUTE)]);
        let mut ledger = started(&rules, at(NOON));
        record_start(&mut ledger, &rules, 0, at(NOON));
        // Job b is due now, but the open call (the process died during it) may still run.
        let fast = TokenRules { fast_poll: true, ..rules };
        assert_eq!(next(&ledger, &fast, at(NOON)).unwrap().at, at("2026-11-15T12:01:00-05:00"));
    }

    #[test]
    fn a_call_open_in_another_process_holds_the_token_until_its_timeout() {
        let rules = TokenRules {
            fast_poll: true,
            ..rules(vec![JobRules { timeout: 10 * MINUTE, ..job("a", MINUTE) }, job("b", MINUTE)])
        };
        let mut ledger = started(&rules, at(NOON));
        record_start(&mut ledger, &rules, 0, at(NOON));
        // A backfill's call with a 10-minute timeout may run past the API's minute on our side.
        assert_eq!(next(&ledger, &rules, at(NOON)).unwrap().at, at("2026-11-15T12:10:00-05:00"));
        record_end(&mut ledger, &rules, 0, at("2026-11-15T12:03:00-05:00"), None, 0.0);
        assert_eq!(
            next(&ledger, &rules, at("2026-11-15T12:03:00-05:00")).unwrap().at,
            at("2026-11-15T12:03:00-05:00")
        );
    }

    #[test]
    fn a_side_call_keeps_the_floor_and_the_token_rules_but_not_the_exporters_schedule() {
        let rules = rules(vec![job("0042/gamification", 60 * MINUTE)]);
        let mut ledger = started(&rules, at(NOON));
        // The exporter polled at noon and is due again at 13:00.
        call(&mut ledger, &rules, 0, at(NOON), at(NOON), None);
        let exporters = ledger.jobs["0042/gamification"].clone();
        // The backfill is held by the API's floor, not by the exporter's hour.
        assert_eq!(
            next_side_call(&ledger, &rules, 0, at(NOON), None).at,
            at("2026-11-15T12:05:00-05:00")
        );
        let side = at("2026-11-15T12:05:00-05:00");
        side_call(&mut ledger, &rules, 0, side, None);
        assert_eq!(
            ledger.jobs["0042/gamification"].due, exporters.due,
            "the exporter's schedule is its own"
        );
        assert_eq!(ledger.calls_today, 2, "the budget counts every caller");
        // ...and its own interval after that, when it is longer.
        let own_due = Some(side + SignedDuration::from_mins(20));
        assert_eq!(
            next_side_call(&ledger, &rules, 0, side, own_due).at,
            at("2026-11-15T12:25:00-05:00")
        );
        // A quota error of a side call pauses the exporter too.
        side_call(
            &mut ledger,
            &rules,
            0,
            at("2026-11-15T12:25:00-05:00"),
            Some(&failure(Reason::Quota, Some(403))),
        );
        assert_eq!(
            next(&ledger, &rules, at("2026-11-15T12:25:00-05:00")).unwrap().at,
            at("2026-11-16T00:00:00-05:00")
        );
    }

    #[test]
    fn a_side_call_takes_turns_with_a_running_exporter_and_never_takes_its_slot_twice() {
        let rules = rules(vec![job("0042/gamification", 5 * MINUTE)]);
        let mut ledger = started(&rules, at(NOON));
        call(&mut ledger, &rules, 0, at(NOON), at(NOON), None);
        // The exporter called last: the side call may go at the floor, though it delays the exporter.
        let floor = at("2026-11-15T12:05:00-05:00");
        assert_eq!(exporters_turn(&ledger, &rules, 0, floor, None), None);
        side_call(&mut ledger, &rules, 0, floor, None);
        // The side call called last and the exporter may call within the floor (at 12:10, the
        // floor after the side call): the exporter's turn, until a floor later at the latest.
        let next_floor = at("2026-11-15T12:10:00-05:00");
        let given_up = at("2026-11-15T12:15:00-05:00");
        assert_eq!(exporters_turn(&ledger, &rules, 0, next_floor, Some(floor)), Some(given_up));
        assert_eq!(
            exporters_turn(&ledger, &rules, 0, given_up, Some(floor)),
            None,
            "the exporter does not call"
        );
        // Once the exporter has called, the turn is the side call's again.
        call(&mut ledger, &rules, 0, next_floor, next_floor, None);
        assert_eq!(
            exporters_turn(&ledger, &rules, 0, at("2026-11-15T12:15:00-05:00"), Some(floor)),
            None
        );
        // An exporter due long after the floor is not delayed by a side call: no turn to wait for.
        let hourly = rules_with_interval(60 * MINUTE);
        let mut ledger = started(&hourly, at(NOON));
        call(&mut ledger, &hourly, 0, at(NOON), at(NOON), None);
        side_call(&mut ledger, &hourly, 0, floor, None);
        assert_eq!(exporters_turn(&ledger, &hourly, 0, next_floor, Some(floor)), None);
    }

    #[test]
    fn one_call_at_a_time_and_a_tokens_apis_spread_over_the_interval() {
        let rules = rules(
            ["gamification", "chat_licenses", "ivr_minutes"]
                .map(|api| job(api, 5 * MINUTE))
                .to_vec(),
        );
        let mut ledger = started(&rules, at(NOON));
        let mut now = at(NOON);
        let mut starts = Vec::new();
        for _ in 0..9 {
            let decision = next(&ledger, &rules, now).unwrap();
            assert!(decision.at >= now);
            now = decision.at;
            starts.push((decision.job, now));
            let end = now + SignedDuration::from_secs(2);
            call(&mut ledger, &rules, decision.job, now, end, None);
            now = end;
        }
        // Three APIs every 5 minutes: one call every 100 s, not three back to back.
        for pair in starts.windows(2) {
            assert!(
                pair[1].1.duration_since(pair[0].1) >= SignedDuration::from_secs(100),
                "{starts:?}"
            );
        }
        for api in 0..3 {
            let mine: Vec<Timestamp> =
                starts.iter().filter(|(j, _)| *j == api).map(|(_, t)| *t).collect();
            assert_eq!(mine.len(), 3, "{starts:?}");
            assert!(
                mine.windows(2)
                    .all(|w| w[1].duration_since(w[0]) >= SignedDuration::from_secs(300)),
                "{starts:?}"
            );
        }
    }

    #[test]
    fn transient_failures_back_off_from_30s_doubling_up_to_the_interval() {
        let rules = TokenRules { fast_poll: true, ..rules(vec![job("a", 5 * MINUTE)]) };
        let mut ledger = started(&rules, at(NOON));
        let mut now = at(NOON);
        let mut waits = Vec::new();
        for reason in [
            Reason::Transport,
            Reason::Timeout,
            Reason::RateLimited,
            Reason::Transport,
            Reason::Transport,
        ] {
            call(&mut ledger, &rules, 0, now, now, Some(&failure(reason, Some(429))));
            let due = ledger.jobs["a"].due.unwrap();
            waits.push(due.duration_since(now).as_secs());
            now = due;
        }
        call(&mut ledger, &rules, 0, now, now, None);
        waits.push(ledger.jobs["a"].due.unwrap().duration_since(now).as_secs());
        assert_eq!(waits, [30, 60, 120, 240, 300, 300]);
        // A 5xx is transient, a 404 is not.
        call(&mut ledger, &rules, 0, now, now, Some(&failure(Reason::Http, Some(502))));
        assert_eq!(ledger.jobs["a"].failures_in_a_row, 1);
        call(&mut ledger, &rules, 0, now, now, Some(&failure(Reason::Http, Some(404))));
        assert_eq!(ledger.jobs["a"].failures_in_a_row, 0);
        assert_eq!(ledger.jobs["a"].due, Some(now + SignedDuration::from_secs(300)));
    }

    #[test]
    fn lasting_failures_wait_the_interval_and_retry_after_is_obeyed_on_any() {
        let rules = rules(vec![job("a", 5 * MINUTE)]);
        for reason in [
            Reason::Auth,
            Reason::Concurrency,
            Reason::Forbidden,
            Reason::BadRequest,
            Reason::Decode,
            Reason::TooLarge,
        ] {
            let mut ledger = started(&rules, at(NOON));
            call(&mut ledger, &rules, 0, at(NOON), at(NOON), Some(&failure(reason, Some(403))));
            assert_eq!(ledger.jobs["a"].due, Some(at("2026-11-15T12:05:00-05:00")), "{reason}");
            assert_eq!(ledger.paused_until, None, "{reason}");
        }
        let mut ledger = started(&rules, at(NOON));
        let maintenance =
            Failure { retry_after: Some(15 * MINUTE), ..failure(Reason::Forbidden, Some(403)) };
        call(&mut ledger, &rules, 0, at(NOON), at(NOON), Some(&maintenance));
        assert_eq!(next(&ledger, &rules, at(NOON)).unwrap().at, at("2026-11-15T12:15:00-05:00"));
        let absurd = Failure {
            retry_after: Some(Duration::from_secs(10 * 86400)),
            ..failure(Reason::RateLimited, Some(429))
        };
        call(&mut ledger, &rules, 0, at(NOON), at(NOON), Some(&absurd));
        assert_eq!(
            ledger.jobs["a"].due,
            Some(at("2026-11-16T12:00:00-05:00")),
            "a Retry-After over a day is capped"
        );
    }

    #[test]
    fn a_quota_error_pauses_every_job_of_the_token_until_midnight_in_its_zone() {
        let rules =
            rules(vec![job("0001/gamification", 5 * MINUTE), job("0002/gamification", 5 * MINUTE)]);
        // 23:30 in Bogota is 04:30 UTC the next day: midnight is Bogota's, 30 minutes away.
        let now = at("2026-11-30T23:30:00-05:00");
        let mut ledger = started(&rules, now);
        call(&mut ledger, &rules, 0, now, now, Some(&failure(Reason::Quota, Some(403))));
        let midnight = at("2026-12-01T00:00:00-05:00");
        assert_eq!(ledger.paused_until, Some(midnight));
        assert_eq!(next(&ledger, &rules, now).unwrap().at, midnight, "the other job waits too");
        assert_eq!(next(&ledger, &rules, midnight).unwrap().at, midnight);
    }

    #[test]
    fn after_a_timeout_the_token_rests_until_the_api_would_have_given_up() {
        let rules =
            TokenRules { fast_poll: true, ..rules(vec![job("a", MINUTE), job("b", MINUTE)]) };
        let mut ledger = started(&rules, at(NOON));
        call(
            &mut ledger,
            &rules,
            0,
            at(NOON),
            at("2026-11-15T12:00:10-05:00"),
            Some(&failure(Reason::Timeout, None)),
        );
        // Job b is due, but Wolkvox may work on the dropped call until a minute after it began.
        assert_eq!(
            next(&ledger, &rules, at("2026-11-15T12:00:10-05:00")).unwrap().at,
            at("2026-11-15T12:01:00-05:00")
        );
    }

    #[test]
    fn a_daily_budget_spaces_calls_to_last_the_day_and_is_never_exceeded() {
        let mut rules = rules(vec![job("a", 5 * MINUTE)]);
        rules.daily_budget = Some(3);
        // 18:00: six hours left for three calls.
        let evening = at("2026-11-15T18:00:00-05:00");
        let mut ledger = started(&rules, evening);
        let first = next(&ledger, &rules, evening).unwrap();
        assert_eq!((first.at, first.spacing), (evening, Duration::from_secs(2 * 3600)));
        call(&mut ledger, &rules, 0, evening, evening, None);
        let second = next(&ledger, &rules, evening).unwrap();
        assert_eq!(
            second.at,
            at("2026-11-15T21:00:00-05:00"),
            "three hours for each of the two calls left"
        );
        assert!(second.held_by_budget);
        call(&mut ledger, &rules, 0, second.at, second.at, None);
        call(
            &mut ledger,
            &rules,
            0,
            at("2026-11-15T22:00:00-05:00"),
            at("2026-11-15T22:00:00-05:00"),
            None,
        );
        assert_eq!(ledger.calls_on(at("2026-11-15T22:00:00-05:00"), &rules.zone), 3);
        let spent = next(&ledger, &rules, at("2026-11-15T22:00:00-05:00")).unwrap();
        assert_eq!(spent.at, at("2026-11-16T00:00:00-05:00"), "spent: nothing until the next day");
        // The next day counts again from zero.
        assert_eq!(ledger.calls_on(at("2026-11-16T00:00:00-05:00"), &rules.zone), 0);
        record_start(&mut ledger, &rules, 0, at("2026-11-16T00:00:00-05:00"));
        assert_eq!(ledger.calls_today, 1);
    }

    #[test]
    fn a_budget_that_is_not_tight_holds_nothing_back() {
        let mut rules = rules(vec![job("a", 5 * MINUTE)]);
        rules.daily_budget = Some(1000);
        let mut ledger = started(&rules, at(NOON));
        call(&mut ledger, &rules, 0, at(NOON), at(NOON), None);
        let decision = next(&ledger, &rules, at(NOON)).unwrap();
        assert_eq!(decision.at, at("2026-11-15T12:05:00-05:00"));
        assert!(!decision.held_by_budget);
    }

    #[test]
    fn a_clock_that_jumps_back_never_unlocks_an_early_call() {
        let rules = rules(vec![job("a", 5 * MINUTE)]);
        let mut ledger = started(&rules, at(NOON));
        call(&mut ledger, &rules, 0, at(NOON), at(NOON), None);
        let an_hour_earlier = at("2026-11-15T11:00:00-05:00");
        assert_eq!(
            next(&ledger, &rules, an_hour_earlier).unwrap().at,
            at("2026-11-15T12:05:00-05:00")
        );
    }

    #[test]
    fn reconcile_drops_jobs_no_longer_configured_and_keeps_the_others() {
        let rules_before = rules(vec![job("a", 5 * MINUTE), job("b", 5 * MINUTE)]);
        let mut ledger = started(&rules_before, at(NOON));
        call(&mut ledger, &rules_before, 0, at(NOON), at(NOON), None);
        let kept = ledger.jobs["a"].clone();
        let rules_after = rules(vec![job("a", 5 * MINUTE), job("c", 5 * MINUTE)]);
        reconcile(&mut ledger, &rules_after, at("2026-11-15T12:01:00-05:00"), 0.0);
        assert_eq!(ledger.jobs.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(ledger.jobs["a"], kept);
        assert_eq!(ledger.jobs["c"].due, Some(at("2026-11-15T12:01:00-05:00")));
    }

    #[test]
    fn the_ledger_is_a_plain_value_that_round_trips_through_json() {
        let rules = rules(vec![job("0042/gamification", 5 * MINUTE)]);
        let mut ledger = started(&rules, at(NOON));
        call(&mut ledger, &rules, 0, at(NOON), at(NOON), Some(&failure(Reason::Quota, Some(403))));
        let text = serde_json::to_string(&ledger).unwrap();
        assert!(text.contains("\"last_failure\":\"quota\""), "{text}");
        assert_eq!(serde_json::from_str::<Ledger>(&text).unwrap(), ledger);
    }

    #[test]
    fn a_merge_keeps_what_either_view_forbids() {
        let rules = rules(vec![job("a", 5 * MINUTE), job("b", 5 * MINUTE)]);
        let mut file = started(&rules, at(NOON));
        // The file saw a call of b at noon; then this process called a, and its writes failed.
        call(&mut file, &rules, 1, at(NOON), at("2026-11-15T12:00:01-05:00"), None);
        let mut mine = file.clone();
        record_start(&mut mine, &rules, 0, at("2026-11-15T12:02:00-05:00"));
        // Meanwhile another process (a backfill) paused the token after a quota, on the file.
        file.paused_until = Some(at("2026-11-16T00:00:00-05:00"));
        file.calls_today += 1;

        let mut merged = mine.clone();
        merged.merge(&file);
        assert_eq!(
            merged.last_call_start,
            Some(at("2026-11-15T12:02:00-05:00")),
            "this process's call stays open"
        );
        assert_eq!(merged.last_call_end, None);
        assert_eq!(merged.paused_until, file.paused_until, "the other's pause holds");
        assert_eq!(merged.calls_today, 2);
        assert_eq!(
            merged.jobs["a"].last_start,
            Some(at("2026-11-15T12:02:00-05:00")),
            "a's floor holds"
        );
        // Taking the file instead would admit a at once; the merge admits nothing before the pause.
        assert!(
            next(&file, &rules, at("2026-11-15T12:02:01-05:00")).unwrap().at
                >= at("2026-11-16T00:00:00-05:00")
        );
        assert!(
            next(&merged, &rules, at("2026-11-15T12:02:01-05:00")).unwrap().at
                >= at("2026-11-16T00:00:00-05:00")
        );
        let unpaused = Ledger { paused_until: None, ..file.clone() };
        assert_eq!(
            next(&unpaused, &rules, at("2026-11-15T12:02:01-05:00")).unwrap().at,
            at("2026-11-15T12:02:30-05:00")
        );
        let mut merged_unpaused = mine.clone();
        merged_unpaused.merge(&unpaused);
        assert!(
            next(&merged_unpaused, &rules, at("2026-11-15T12:02:01-05:00")).unwrap().at
                >= at("2026-11-15T12:03:00-05:00")
        );

        // The end of the same call, seen on the other side, ends it here too.
        let mut ended = mine.clone();
        record_end(&mut ended, &rules, 0, at("2026-11-15T12:02:02-05:00"), None, 0.0);
        mine.merge(&ended);
        assert_eq!(mine.last_call_end, Some(at("2026-11-15T12:02:02-05:00")));
        assert_eq!(mine.jobs["a"].due, ended.jobs["a"].due);
    }

    #[test]
    fn a_ledger_written_on_a_clock_a_day_ahead_is_taken_back_by_the_step() {
        let rules = rules(vec![job("a", 5 * MINUTE)]);
        let ahead = at("2026-11-16T12:00:00-05:00");
        let mut ledger = started(&rules, ahead);
        // The quota, hit on the wrong clock: paused until its midnight.
        call(
            &mut ledger,
            &rules,
            0,
            ahead,
            ahead + SignedDuration::from_secs(1),
            Some(&failure(Reason::Quota, Some(429))),
        );
        let now = at(NOON);
        let mut corrected = ledger.clone();
        let step = undo_clock_step(&mut corrected, &rules, now).expect("a step");
        assert_eq!(step, SignedDuration::from_hours(24) + SignedDuration::from_secs(1));
        assert_eq!(corrected.last_call_end, Some(now), "the latest event is now, at the latest");
        assert_eq!(
            corrected.paused_until,
            Some(at("2026-11-16T00:00:00-05:00") - SignedDuration::from_secs(1))
        );
        assert_eq!(
            corrected.calls_on(now, &rules.zone),
            1,
            "the calls of the wrong day are today's"
        );
        // On the wrong clock nothing would be called before the day after tomorrow.
        assert_eq!(next(&ledger, &rules, now).unwrap().at, at("2026-11-17T00:00:00-05:00"));
        assert!(next(&corrected, &rules, now).unwrap().at <= at("2026-11-16T00:00:00-05:00"));
        // A ledger of the present is left alone, and so is a second look.
        assert_eq!(undo_clock_step(&mut corrected, &rules, now), None);
        let mut present = started(&rules, now);
        call(&mut present, &rules, 0, now, now + SignedDuration::from_secs(1), None);
        let before = present.clone();
        assert_eq!(undo_clock_step(&mut present, &rules, now), None);
        assert_eq!(present, before);
    }

    #[test]
    fn the_pause_that_holds_a_token_says_until_when_and_why() {
        let rules = rules(vec![job("a", 5 * MINUTE)]);
        let mut ledger = started(&rules, at(NOON));
        assert_eq!(pause(&ledger, &rules, at(NOON)), None);
        call(
            &mut ledger,
            &rules,
            0,
            at(NOON),
            at("2026-11-15T12:00:30-05:00"),
            Some(&failure(Reason::Timeout, None)),
        );
        assert_eq!(
            pause(&ledger, &rules, at(NOON)),
            Some((at("2026-11-15T12:01:00-05:00"), PauseReason::TimeoutRest))
        );
        assert_eq!(
            pause(&ledger, &rules, at("2026-11-15T12:01:00-05:00")),
            None,
            "over at its end"
        );
        let midnight = at("2026-11-16T00:00:00-05:00");
        call(
            &mut ledger,
            &rules,
            0,
            at("2026-11-15T12:06:00-05:00"),
            at("2026-11-15T12:06:01-05:00"),
            Some(&failure(Reason::Quota, Some(403))),
        );
        assert_eq!(
            pause(&ledger, &rules, at("2026-11-15T12:07:00-05:00")),
            Some((midnight, PauseReason::Quota))
        );
        // A timeout after the quota does not shorten the pause nor change its reason.
        call(
            &mut ledger,
            &rules,
            0,
            at("2026-11-15T13:00:00-05:00"),
            at("2026-11-15T13:00:30-05:00"),
            Some(&failure(Reason::Timeout, None)),
        );
        assert_eq!(
            pause(&ledger, &rules, at("2026-11-15T13:01:00-05:00")),
            Some((midnight, PauseReason::Quota))
        );
        // A spent budget pauses the token until midnight too; a quota says more, and wins a tie.
        let budgeted = TokenRules { daily_budget: Some(2), ..rules.clone() };
        assert_eq!(
            pause(&ledger, &budgeted, at("2026-11-15T13:01:00-05:00")),
            Some((midnight, PauseReason::Quota))
        );
        let mut spent = started(&budgeted, at(NOON));
        call(&mut spent, &budgeted, 0, at(NOON), at(NOON), None);
        assert_eq!(pause(&spent, &budgeted, at(NOON)), None);
        call(
            &mut spent,
            &budgeted,
            0,
            at("2026-11-15T12:05:00-05:00"),
            at("2026-11-15T12:05:00-05:00"),
            None,
        );
        assert_eq!(
            pause(&spent, &budgeted, at("2026-11-15T12:06:00-05:00")),
            Some((midnight, PauseReason::Budget))
        );
        // The ledger keeps the reason, in its file too.
        let text = serde_json::to_string(&ledger).unwrap();
        assert!(text.contains("\"pause_reason\":\"quota\""), "{text}");
    }
}
