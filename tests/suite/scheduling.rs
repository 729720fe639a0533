//! The polling policy under tokio's paused clock: hours of schedule in milliseconds, with a
//! scripted usage source instead of the network.

use crate::common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;
use wolkvox_exporter::calls::admission::{JobLedger, Ledger, next_midnight};
use wolkvox_exporter::calls::lanes::{self, UsageSource, run_lane};
use wolkvox_exporter::clock::{Clock, until};
use wolkvox_exporter::config::{Contracts, Target};
use wolkvox_exporter::serve::store::Store;
use wolkvox_exporter::storage::{Role, Storage};
use wolkvox_exporter::wolkvox::client::{Call, Request};
use wolkvox_exporter::wolkvox::{Failure, Reason, Report, TokenInfo, catalogue};

/// Answers from a script (then successes), taking `took` of virtual time per call, and records
/// when each call started and how many overlapped.
struct Script {
    outcomes: Mutex<VecDeque<Result<Report, Failure>>>,
    took: Duration,
    /// Server, API and start of each call.
    calls: Mutex<Vec<(String, &'static str, Instant)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Script {
    fn new(outcomes: Vec<Result<Report, Failure>>, took: Duration) -> Arc<Script> {
        Arc::new(Script {
            outcomes: Mutex::new(outcomes.into()),
            took,
            calls: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        })
    }

    fn starts(&self, server: &str) -> Vec<Instant> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _, _)| s == server)
            .map(|(_, _, at)| *at)
            .collect()
    }

    fn gaps(&self, server: &str) -> Vec<Duration> {
        self.starts(server).windows(2).map(|w| w[1] - w[0]).collect()
    }
}

impl UsageSource for Script {
    async fn poll(&self, request: &Request<'_>) -> Result<Report, Failure> {
        let api = match request.call {
            Call::Billing { api, .. } => catalogue::find(api).unwrap().name,
            Call::TokenInfo => catalogue::TOKEN_INFO.name,
        };
        self.calls.lock().unwrap().push((request.server.to_owned(), api, Instant::now()));
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.took).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.outcomes.lock().unwrap().pop_front().unwrap_or_else(|| Ok(Report::default()))
    }

    /// A call like the others (same timing, same script), whose success says 7 calls of 1000.
    async fn token_info(&self, request: &Request<'_>) -> Result<TokenInfo, Failure> {
        let outcome = self.poll(request).await;
        outcome.map(|_| TokenInfo {
            limit: Some(1000.0),
            used_today: Some(7.0),
            all_tokens_used_today: None,
        })
    }
}

fn failure(reason: Reason, status: Option<u16>) -> Result<Report, Failure> {
    Err(Failure { status, ..Failure::new(reason, "scripted") })
}

/// Every test starts at this wall time (10:00 in Bogota), whatever the real time: midnight is 14
/// hours away.
fn start_time() -> Timestamp {
    "2026-11-15T10:00:00-05:00".parse().unwrap()
}

/// Runs the exporter's lanes for `targets` (planned as the exporter plans them; the tests need one
/// token) for `virtual_time`, on a clock that starts at [`start_time`].
async fn run(script: &Arc<Script>, targets: Vec<Target>, virtual_time: Duration) -> Arc<Store> {
    let clock = Clock::starting_at(start_time());
    let (lanes, store) = lanes::plan(&targets, &Contracts::default(), clock.clone(), None);
    assert_eq!(lanes.len(), 1, "the scheduling tests run one token");
    let running: Vec<_> = lanes
        .into_iter()
        .map(|lane| {
            tokio::spawn(run_lane(
                script.clone(),
                lane,
                store.clone(),
                clock.clone(),
                tokio::sync::watch::channel(false).1,
            ))
        })
        .collect();
    tokio::time::sleep(virtual_time).await;
    running.iter().for_each(|lane| lane.abort());
    store
}

fn until_midnight(target: &Target) -> Duration {
    until(start_time(), next_midnight(start_time(), &target.timezone))
}

const SECOND: Duration = Duration::from_secs(1);
const FIVE_MINUTES: Duration = Duration::from_secs(300);
/// The most jitter a wait gets: 5% of it, at most 30 s.
fn max_jitter(wait: Duration) -> Duration {
    (wait / 20).min(Duration::from_secs(30))
}

#[tokio::test(start_paused = true)]
async fn first_poll_at_start_then_every_interval_never_sooner() {
    let script = Script::new(vec![], 2 * SECOND);
    let start = Instant::now();
    run(&script, vec![common::target("0042", "5m")], Duration::from_secs(3600)).await;

    let starts = script.starts("0042");
    assert!(starts[0] - start <= 5 * SECOND, "first poll {:?} after start", starts[0] - start);
    assert!((11..=12).contains(&starts.len()), "{} polls in an hour", starts.len());
    for gap in script.gaps("0042") {
        // The wait is counted from the end of a 2 s call.
        assert!(gap >= FIVE_MINUTES + 2 * SECOND, "gap {gap:?} is under the interval");
        assert!(
            gap <= FIVE_MINUTES + 2 * SECOND + max_jitter(FIVE_MINUTES),
            "gap {gap:?} is more than a little jitter"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn targets_sharing_a_token_never_overlap_even_when_calls_are_slow() {
    // Each call takes 50 s: polls of the three targets queue behind each other.
    let script = Script::new(vec![], 50 * SECOND);
    let targets = vec![
        common::target("0001", "5m"),
        common::target("0002", "5m"),
        common::target("0003", "5m"),
    ];
    run(&script, targets, Duration::from_secs(3600)).await;

    assert_eq!(script.max_in_flight.load(Ordering::SeqCst), 1);
    let calls = script.calls.lock().unwrap().clone();
    for pair in calls.windows(2) {
        assert!(
            pair[1].2 - pair[0].2 >= 50 * SECOND,
            "a call started before the previous one ended"
        );
    }
    for server in ["0001", "0002", "0003"] {
        assert!(
            script.starts(server).len() >= 8,
            "{server} polled {} times",
            script.starts(server).len()
        );
        assert!(
            script.gaps(server).iter().all(|gap| *gap >= FIVE_MINUTES),
            "{server} polled sooner than its interval"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn transient_failures_back_off_from_30s_then_success_restores_the_interval() {
    let outcomes = vec![
        failure(Reason::Transport, None),
        failure(Reason::Timeout, None),
        failure(Reason::Http, Some(502)),
        failure(Reason::RateLimited, Some(429)),
        failure(Reason::Transport, None),
        Ok(Report::default()),
    ];
    let script = Script::new(outcomes, Duration::ZERO);
    run(&script, vec![common::target("0042", "5m")], Duration::from_secs(1800)).await;

    let gaps = script.gaps("0042");
    let expected = [30, 60, 120, 240, 300, 300].map(Duration::from_secs);
    for (gap, want) in gaps.iter().zip(expected) {
        assert!(
            *gap >= want && *gap <= want + max_jitter(want),
            "gaps {gaps:?}, expected about {expected:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let asked = Err(Failure {
        status: Some(429),
        retry_after: Some(Duration::from_secs(200)),
        ..Failure::new(Reason::RateLimited, "slow down")
    });
    let script = Script::new(vec![asked], Duration::ZERO);
    run(&script, vec![common::target("0042", "5m")], Duration::from_secs(600)).await;

    let gap = script.gaps("0042")[0];
    assert!(gap >= Duration::from_secs(200) && gap <= Duration::from_secs(210), "{gap:?}");
}

#[tokio::test(start_paused = true)]
async fn quota_errors_wait_until_the_next_day_in_the_targets_zone() {
    let script = Script::new(vec![failure(Reason::Quota, Some(403))], Duration::ZERO);
    let target = common::target("0042", "5m");
    let start = Instant::now();
    let expected = until_midnight(&target);
    assert_eq!(expected, Duration::from_secs(14 * 3600));
    run(&script, vec![target], Duration::from_secs(2 * 24 * 3600)).await;

    // Midnight is `expected` after the start; the first call came a few seconds of jitter later.
    let starts = script.starts("0042");
    let (first, retry) = (starts[0] - start, starts[1] - start);
    assert!(first <= 5 * SECOND, "first call {first:?} after start");
    assert!(
        retry + SECOND >= expected && retry <= expected + 35 * SECOND,
        "retried {retry:?} after start, midnight was {expected:?} away"
    );
}

#[tokio::test(start_paused = true)]
async fn other_failures_wait_the_normal_interval() {
    let outcomes = vec![
        failure(Reason::Auth, Some(403)),
        failure(Reason::Decode, Some(200)),
        failure(Reason::Http, Some(404)),
    ];
    let script = Script::new(outcomes, Duration::ZERO);
    run(&script, vec![common::target("0042", "5m")], Duration::from_secs(1000)).await;

    for gap in script.gaps("0042") {
        assert!(gap >= FIVE_MINUTES && gap <= FIVE_MINUTES + max_jitter(FIVE_MINUTES), "{gap:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn counters_add_up_and_failures_keep_the_last_good_report() {
    let good = Report { rows: 1, series: vec![], skipped: vec![] };
    let outcomes = vec![
        Ok(good.clone()),
        failure(Reason::Auth, Some(403)),
        failure(Reason::Forbidden, Some(403)),
    ];
    let script = Script::new(outcomes, Duration::ZERO);
    let store = run(&script, vec![common::target("0042", "5m")], Duration::from_secs(700)).await;

    let state = &store.states()[0];
    assert_eq!(state.requests, 3);
    assert_eq!(
        state.failures[Reason::Auth as usize] + state.failures[Reason::Forbidden as usize],
        2
    );
    assert_eq!(*state.last_success.as_ref().expect("kept").report, good);
    assert!(state.last_poll.as_ref().unwrap().failure.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_quota_error_pauses_every_target_of_the_token() {
    let script = Script::new(vec![failure(Reason::Quota, Some(403))], Duration::ZERO);
    let targets = vec![common::target("0001", "5m"), common::target("0002", "5m")];
    // Watch up to an hour, but stop short of midnight, when calls may resume.
    let window = until_midnight(&targets[0]) - Duration::from_secs(120);
    run(&script, targets, window).await;

    // Whichever target polled first hit the quota; the other must not spend the token again.
    let calls = script.calls.lock().unwrap().len();
    assert_eq!(calls, 1, "the lane kept spending an exhausted quota: {calls} calls in {window:?}");
}

#[tokio::test(start_paused = true)]
async fn after_a_timeout_the_token_rests_until_the_api_would_have_given_up() {
    // Timeout 10 s: the dropped call may run on Wolkvox for up to 60 s, so no call for 50 s more.
    let mut target = common::target("0042", "5m");
    target.timeout = Duration::from_secs(10);
    let script = Script::new(vec![failure(Reason::Timeout, None)], Duration::ZERO);
    run(&script, vec![target], Duration::from_secs(600)).await;

    let gap = script.gaps("0042")[0];
    assert!(gap >= Duration::from_secs(50), "called again after {gap:?}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_obeyed_on_any_failure() {
    let maintenance = Err(Failure {
        status: Some(403),
        retry_after: Some(Duration::from_secs(900)),
        ..Failure::new(Reason::Forbidden, "maintenance")
    });
    let script = Script::new(vec![maintenance], Duration::ZERO);
    run(&script, vec![common::target("0042", "5m")], Duration::from_secs(1200)).await;

    let gap = script.gaps("0042")[0];
    assert!(gap >= Duration::from_secs(900), "{gap:?}");
}

#[tokio::test(start_paused = true)]
async fn every_api_of_a_target_gets_its_own_schedule_on_the_one_lane() {
    let script = Script::new(vec![], 20 * SECOND);
    let mut target = common::target("0042", "5m");
    target.apis = ["gamification", "chat_licenses", "ivr_minutes"]
        .map(|name| catalogue::find(name).unwrap())
        .to_vec();
    run(&script, vec![target], Duration::from_secs(3600)).await;

    assert_eq!(script.max_in_flight.load(Ordering::SeqCst), 1);
    let calls = script.calls.lock().unwrap().clone();
    for api in ["gamification", "chat_licenses", "ivr_minutes"] {
        let starts: Vec<Instant> =
            calls.iter().filter(|(_, a, _)| *a == api).map(|(_, _, at)| *at).collect();
        assert!(
            (10..=12).contains(&starts.len()),
            "{api} polled {} times in an hour",
            starts.len()
        );
        assert!(
            starts.windows(2).all(|w| w[1] - w[0] >= FIVE_MINUTES),
            "{api} polled sooner than every 5m"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_daily_call_budget_is_never_exceeded_and_lasts_the_whole_day() {
    let script = Script::new(vec![], 2 * SECOND);
    let mut target = common::target("0042", "5m");
    target.apis = ["gamification", "chat_licenses", "ivr_minutes"]
        .map(|name| catalogue::find(name).unwrap())
        .to_vec();
    // Three APIs every 5 minutes would take 864 calls a day.
    target.daily_call_budget = Some(60);
    let zone = target.timezone.clone();
    let (wall, start) = (start_time(), Instant::now());
    let store = run(&script, vec![target], Duration::from_secs(50 * 3600)).await;

    assert_eq!(script.max_in_flight.load(Ordering::SeqCst), 1);
    let day_of = |at: Instant| (wall + (at - start)).to_zoned(zone.clone()).date();
    let calls = script.calls.lock().unwrap().clone();
    let mut per_day: std::collections::BTreeMap<jiff::civil::Date, Vec<Instant>> =
        Default::default();
    for (_, _, at) in &calls {
        per_day.entry(day_of(*at)).or_default().push(*at);
    }
    for (day, starts) in &per_day {
        assert!(starts.len() <= 60, "{} calls on {day}, over the budget of 60", starts.len());
    }
    // The first whole day: most of the budget is used, spread over the day rather than spent early.
    let (day, starts) = per_day.iter().nth(1).unwrap();
    assert!(starts.len() >= 55, "only {} calls on {day}", starts.len());
    let longest_gap = starts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(longest_gap <= Duration::from_secs(3600), "{longest_gap:?} without a call on {day}");

    let token = &store.tokens()[0];
    assert!(token.stretched && token.calls_today <= 60, "{token:?}");
    assert!(token.call_spacing > FIVE_MINUTES, "{token:?}");
}

#[tokio::test(start_paused = true)]
async fn token_info_takes_a_place_on_the_lane_and_in_the_budget() {
    let script = Script::new(vec![], SECOND);
    let mut first = common::target("0001", "5m");
    first.apis =
        ["gamification", "chat_licenses"].map(|name| catalogue::find(name).unwrap()).to_vec();
    first.token_info = true;
    first.daily_call_budget = Some(30);
    // A second target of the same token: token_info is still polled once, for the token.
    let second = common::target("0002", "5m");
    // The budget spaces the calls by half an hour to an hour: six hours give each of the four jobs a turn.
    let store = run(&script, vec![first, second], Duration::from_secs(6 * 3600)).await;

    let calls = script.calls.lock().unwrap().clone();
    let token_info: Vec<&str> = calls
        .iter()
        .filter(|(_, api, _)| *api == "token_info")
        .map(|(server, _, _)| server.as_str())
        .collect();
    assert!(
        !token_info.is_empty() && token_info.iter().all(|server| *server == "0001"),
        "{token_info:?}"
    );
    assert_eq!(script.max_in_flight.load(Ordering::SeqCst), 1);
    let token = &store.tokens()[0];
    assert_eq!(token.info.as_ref().and_then(|info| info.used_today), Some(7.0));
    // 10:00 to 16:00: one day, so every call counts today, within the budget; and every job had a turn.
    assert_eq!(token.calls_today as usize, calls.len(), "{token:?}");
    assert!(calls.len() <= 30, "{} calls over a budget of 30", calls.len());
    for (server, api) in [
        ("0001", "gamification"),
        ("0001", "chat_licenses"),
        ("0002", "gamification"),
        ("0001", "token_info"),
    ] {
        assert!(
            calls.iter().any(|(s, a, _)| s == server && *a == api),
            "{server} {api} never called: {calls:?}"
        );
    }
}

#[test]
fn planning_drops_the_jobs_no_longer_configured_from_the_state_directory() {
    let dir = common::tools::temp_dir("plan");
    let storage = Arc::new(Storage::open(&dir, Role::Exporter, Clock::system()).unwrap());
    let targets = vec![common::target("0042", "5m")];
    let token_name = &targets[0].token_name;
    let removed = JobLedger { last_start: Some(start_time()), ..JobLedger::default() };
    let before = Ledger {
        jobs: [("0099/gamification".to_owned(), removed)].into(),
        calls_today: 3,
        ..Ledger::default()
    };
    storage.save_ledger(token_name, &before);

    lanes::plan(
        &targets,
        &Contracts::default(),
        Clock::starting_at(start_time()),
        Some(storage.clone()),
    );
    let after = storage.load_ledger(token_name).unwrap().expect("the ledger is written back");
    assert_eq!(after.jobs.keys().collect::<Vec<_>>(), ["0042/gamification"], "{after:?}");
    assert_eq!(after.calls_today, 3, "the rest of the ledger is kept");
}
