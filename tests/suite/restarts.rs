//! An exporter stopped (as SIGTERM stops it) or killed (as SIGKILL does, in the middle of a call)
//! and started again at once on the same state directory, against the simulator with a 5-minute
//! interval: no call before the API's rules allow it, the last good values served at once, the
//! day's calls and a quota pause carried over, and the token nowhere in the state directory.
//!
//! In this process, on tokio's paused clock with the exporter's wall clock injected: seconds of
//! watching for a call that must not come take none, and the quota's midnight is crossed on
//! purpose. The restarts that need a real process (a signal during a call, descriptor limits, a
//! second process on the lock, root) are in wall_clock::restarts.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use wolkvox_exporter::calls::admission::next_midnight;
use wolkvox_exporter::clock::Clock;
use wolkvox_exporter::simulator::{Fault, Simulator};

use crate::common::{
    self, FAKE_TOKEN, TestExporter, known_rows, sample, samples, scrape, start_time, state_dir,
    wait_for_calls,
};

/// Long enough that an exporter restarted without its ledger would have called (its first poll
/// comes within 5 s).
const WATCH: Duration = Duration::from_secs(8);

/// An exporter in this process, as server 0042 polling `simulator` every 5 minutes, its state in
/// `state`, on `clock` (the same clock across restarts: the wall time goes on).
async fn start(simulator: &Simulator, state: &Path, clock: &Clock) -> TestExporter {
    let state = state.to_str().unwrap();
    common::start_exporter_on(
        simulator,
        "5m",
        &["--wolkvox.timeout", "30s", "--storage.path", state],
        clock.clone(),
    )
    .await
}

/// Stopped as SIGTERM stops it: the call in flight ends and is recorded, then everything stops.
async fn terminate(exporter: TestExporter, state: &Path) {
    exporter.stop().await;
    released(state).await;
}

/// Killed as SIGKILL kills it: every task dropped where it stands, a call in flight too, nothing
/// more written.
async fn kill(exporter: TestExporter, state: &Path) {
    drop(exporter);
    released(state).await;
}

/// Until the exporter's lock on `state` is free, as it is once a process has ended: the tasks of a
/// stopped or dropped exporter let go of the state directory when the runtime next runs them.
async fn released(state: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let lock = std::fs::File::open(state.join("lock")).unwrap();
        if lock.try_lock().is_ok() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stopped exporter still holds {}",
            state.display()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Lets `time` pass on the paused clock in small steps, as it passes for a process: each step
/// lets the exporter and the simulator answer what came in, so that no timeout fires for a call
/// that was answered at once.
async fn watch(time: Duration) {
    let end = tokio::time::Instant::now() + time;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// As [`watch`], until the wall clock reads `at`.
async fn watch_until(clock: &Clock, at: Timestamp) {
    watch(clock.instant_at(at) - tokio::time::Instant::now()).await;
}

fn usage(text: &str) -> Vec<(String, f64)> {
    samples(text, "wolkvox_gamification_licenses")
}

fn bogota() -> TimeZone {
    TimeZone::get("America/Bogota").unwrap()
}

/// Scrapes `exporter`: its usage must be `good`, the values of a success at Unix time `success`,
/// while that month lasts in Bogota (the exporter's zone) on `clock`, and none once it is over; a
/// scrape while the month turns may show either.
async fn scrape_expecting(
    exporter: &TestExporter,
    clock: &Clock,
    good: &[(String, f64)],
    success: f64,
    why: &str,
) -> String {
    let month = |at: Timestamp| at.to_zoned(bogota()).first_of_month().unwrap().date();
    let succeeded_in = month(Timestamp::from_second(success as i64).unwrap());
    let before = month(clock.now());
    let text = scrape(exporter).await;
    let after = month(clock.now());
    let served = usage(&text);
    if after == succeeded_in {
        assert_eq!(served, good, "{why}");
    } else if before != succeeded_in {
        assert!(served.is_empty(), "{why}: last month's values served after its end: {served:?}");
    }
    text
}

#[tokio::test(start_paused = true)]
async fn restarts_within_the_interval_make_no_call_and_serve_the_last_values_at_once() {
    let clock = Clock::starting_at(start_time());
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_rows(known_rows());
    let (_dir, state) = state_dir("term");
    let first = start(&simulator, &state, &clock).await;
    wait_for_calls(&simulator, 1).await;
    let text = loop {
        let text = scrape(&first).await;
        if !usage(&text).is_empty() {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let success = sample(
        &text,
        "wolkvox_last_success_timestamp_seconds{server=\"0042\",api=\"gamification\"}",
    )
    .unwrap();

    // Stopped between polls, then killed, each followed by an immediate restart.
    terminate(first, &state).await;
    let second = start(&simulator, &state, &clock).await;
    let started = std::time::Instant::now();
    let restored = scrape_expecting(
        &second,
        &clock,
        &usage(&text),
        success,
        "the last good values are served at once",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the first scrape came {:?} after the restart",
        started.elapsed()
    );
    assert_eq!(
        sample(
            &restored,
            "wolkvox_last_success_timestamp_seconds{server=\"0042\",api=\"gamification\"}"
        ),
        Some(success),
        "with their original success time"
    );
    assert_eq!(sample(&restored, "wolkvox_up{server=\"0042\",api=\"gamification\"}"), Some(1.0));
    assert_eq!(
        sample(&restored, "wolkvox_token_calls_today{token_name=\"WOLKVOX_TOKEN\"}"),
        Some(1.0),
        "the day's calls carry over"
    );
    let ready = common::get(&second, "/-/ready").await.0;
    assert_eq!(ready, 200, "ready from the restored success");

    kill(second, &state).await;
    let third = start(&simulator, &state, &clock).await;
    watch(WATCH).await;
    assert_eq!(simulator.counts().0, 1, "a restart within the interval called Wolkvox");
    scrape_expecting(&third, &clock, &usage(&text), success, "after a kill too").await;

    // The token is nowhere in the state directory.
    for entry in std::fs::read_dir(&state).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(FAKE_TOKEN),
            "the token was written to the state directory"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_during_a_call_counts_as_a_call_in_flight() {
    let clock = Clock::starting_at(start_time());
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    // The call hangs: the exporter is killed while Wolkvox still works on it.
    simulator.set_fault(Some(Fault::Delay(Duration::from_secs(20))));
    let (_dir, state) = state_dir("kill");
    let first = start(&simulator, &state, &clock).await;
    wait_for_calls(&simulator, 1).await;
    kill(first, &state).await;

    simulator.set_fault(None);
    let second = start(&simulator, &state, &clock).await;
    watch(WATCH).await;
    assert_eq!(
        simulator.counts().0,
        1,
        "the restarted exporter called while the first call may still run"
    );
    let text = scrape(&second).await;
    assert_eq!(sample(&text, "wolkvox_token_calls_today{token_name=\"WOLKVOX_TOKEN\"}"), Some(1.0));
}

/// A quota refusal pauses the token until midnight in Bogota, and a restart keeps the pause: no
/// call before midnight. Started at `start` and watched for `watched` after the restart: when the
/// watch crosses midnight, the pause has ended there and exactly one call came after it (refused
/// again: the simulator's day does not turn), which pauses the token until the next midnight.
async fn quota_pause_across_a_restart(start_at: &str, watched: Duration) {
    let clock = Clock::starting_at(start_at.parse().unwrap());
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_daily_quota(Some(0));
    let (_dir, state) = state_dir("quota");
    let first = start(&simulator, &state, &clock).await;
    wait_for_calls(&simulator, 1).await;
    let text = loop {
        let text = scrape(&first).await;
        if sample(
            &text,
            "wolkvox_api_request_failures_total{server=\"0042\",api=\"gamification\",reason=\"quota\"}",
        ) == Some(1.0)
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(sample(&text, "wolkvox_up{server=\"0042\",api=\"gamification\"}"), Some(0.0));
    terminate(first, &state).await;

    let restarted_at = clock.now();
    let second = start(&simulator, &state, &clock).await;
    let midnight = next_midnight(restarted_at, &bogota());
    let end = restarted_at + jiff::SignedDuration::try_from(watched).unwrap();
    let crossed_midnight = end > midnight;
    watch_until(
        &clock,
        if crossed_midnight { midnight - jiff::SignedDuration::from_secs(1) } else { end },
    )
    .await;
    assert_eq!(simulator.counts().0, 1, "the restart forgot the quota pause");
    let text = scrape(&second).await;
    assert_eq!(
        sample(&text, "wolkvox_up{server=\"0042\",api=\"gamification\"}"),
        Some(0.0),
        "up is the last poll's result"
    );
    // The state says so after the restart too: the quota's pause, until midnight in Bogota, and
    // the streak of failures it began.
    let paused = |text: &str| {
        sample(
            text,
            "wolkvox_token_paused_until_timestamp_seconds{token_name=\"WOLKVOX_TOKEN\",reason=\"quota\"}",
        )
    };
    let streak = sample(
        &text,
        "wolkvox_failure_streak{server=\"0042\",api=\"gamification\",reason=\"quota\"}",
    );
    assert_eq!((paused(&text), streak), (Some(midnight.as_second() as f64), Some(1.0)), "{text}");

    if crossed_midnight {
        watch_until(&clock, end).await;
        assert_eq!(
            simulator.counts().0,
            2,
            "the pause ended at midnight: exactly one call after it, refused again"
        );
        let text = scrape(&second).await;
        let next = next_midnight(midnight, &bogota());
        assert_eq!(
            paused(&text),
            Some(next.as_second() as f64),
            "paused again, until the next midnight: {text}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_quota_pause_survives_a_restart() {
    // 10:00: midnight is 14 hours away.
    quota_pause_across_a_restart("2026-11-15T10:00:00-05:00", WATCH).await;
}

#[tokio::test(start_paused = true)]
async fn a_quota_pause_survives_a_restart_until_midnight_and_no_longer() {
    // Two minutes before the month's last midnight, watched for a quarter of an hour: past the
    // midnight and the 5-minute interval after the refused call.
    quota_pause_across_a_restart("2026-11-30T23:58:00-05:00", Duration::from_secs(15 * 60)).await;
}

/// A ledger of one call an hour before `now`, due since, as an earlier run would have left it.
fn ledger_of_an_hour_ago(state: &Path, now: Timestamp) {
    use wolkvox_exporter::calls::admission::{JobLedger, Ledger};
    use wolkvox_exporter::storage::{Role, Storage};
    let hour_ago = now - jiff::SignedDuration::from_hours(1);
    let end = hour_ago + jiff::SignedDuration::from_secs(1);
    let job = JobLedger {
        last_start: Some(hour_ago),
        last_end: Some(end),
        due: Some(end + jiff::SignedDuration::from_mins(5)),
        ..JobLedger::default()
    };
    let ledger = Ledger {
        jobs: [("0042/gamification".to_owned(), job)].into(),
        last_call_start: Some(hour_ago),
        last_call_end: Some(end),
        ..Ledger::default()
    };
    let storage = Storage::open(state, Role::Backfill, Clock::starting_at(now)).unwrap();
    assert!(storage.save_ledger("WOLKVOX_TOKEN", &ledger));
}

/// A state directory that can no longer be written (a directory where the ledger's temporary file
/// goes fails every write, as a full disk does): each decision must not be taken on the file's
/// stale ledger, which says the call is still due. The rules hold from what the process knows.
#[tokio::test(start_paused = true)]
async fn a_state_directory_that_cannot_be_written_makes_no_call_storm() {
    let clock = Clock::starting_at(start_time());
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_rows(known_rows());
    let (_dir, state) = state_dir("unwritable");
    ledger_of_an_hour_ago(&state, clock.now());
    std::fs::create_dir(state.join("token-WOLKVOX_TOKEN.ledger.json.tmp")).unwrap();

    let running = start(&simulator, &state, &clock).await;
    wait_for_calls(&simulator, 1).await;
    watch(WATCH).await;
    assert_eq!(
        simulator.counts().0,
        1,
        "calls within the 5-minute floor while the state directory could not be written"
    );
    let text = scrape(&running).await;
    assert_eq!(
        sample(&text, "wolkvox_up{server=\"0042\",api=\"gamification\"}"),
        Some(1.0),
        "still serving"
    );
    assert!(
        sample(&text, "wolkvox_storage_write_failures_total").is_some_and(|n| n >= 2.0),
        "the failed writes are counted"
    );
    assert_eq!(
        sample(&text, "wolkvox_token_state_saved{token_name=\"WOLKVOX_TOKEN\"}"),
        Some(0.0),
        "and the state says so"
    );
}
