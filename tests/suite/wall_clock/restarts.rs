//! The exporter as a real process on its state directory, where only a real process will do: one
//! stopped by SIGTERM and started again (the rest of the restarts run in this process, on a paused
//! clock: tests/suite/restarts.rs), SIGTERM during a call, a second exporter on the lock, descriptor
//! limits, a token file that became a FIFO, a clock stepped back, and root's backfill in a
//! service's directory. And a backfill beside a running exporter on the same state directory: the
//! two share the token's ledger, so their calls never overlap.

use crate::common;
use crate::common::process::{self, Running};
use crate::common::tools::{self, TestDir};

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{FAKE_TOKEN, known_rows, sample, samples, state_dir, wait_for_calls};
use wolkvox_exporter::simulator::{Fault, Simulator};

/// Long enough that an exporter restarted without its ledger would have called (its first poll
/// comes within 5 s), short enough for a test.
const WATCH: Duration = Duration::from_secs(8);

fn usage(text: &str) -> Vec<(String, f64)> {
    samples(text, "wolkvox_gamification_licenses")
}

/// Scrapes `running`: its usage must be `good`, the values of a success at Unix time `success`,
/// while that month lasts in Bogota (the exporter's zone), and none once it is over; a scrape while
/// the month turns may show either. So the test holds at any time, a month's last seconds too.
async fn scrape_expecting(
    running: &Running,
    good: &[(String, f64)],
    success: f64,
    why: &str,
) -> String {
    let month = |at: jiff::Timestamp| {
        at.to_zoned(jiff::tz::TimeZone::get("America/Bogota").unwrap())
            .first_of_month()
            .unwrap()
            .date()
    };
    let succeeded_in = month(jiff::Timestamp::from_second(success as i64).unwrap());
    let before = month(jiff::Timestamp::now());
    let text = running.scrape().await;
    let after = month(jiff::Timestamp::now());
    let served = usage(&text);
    if after == succeeded_in {
        assert_eq!(served, good, "{why}");
    } else if before != succeeded_in {
        assert!(served.is_empty(), "{why}: last month's values served after its end: {served:?}");
    }
    text
}

/// The restart as a real process lives it, once (tests/suite/restarts.rs has the rest in this
/// process): SIGTERM between polls and an immediate restart make no call and serve the last values.
#[tokio::test]
async fn a_process_stopped_and_started_again_makes_no_call_within_the_interval() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_rows(known_rows());
    let (_dir, state) = state_dir("term");
    let mut first = Running::start(&simulator, &state);
    wait_for_calls(&simulator, 1).await;
    let text = loop {
        let text = first.scrape().await;
        if !usage(&text).is_empty() {
            break text;
        }
    };
    let success = sample(
        &text,
        "wolkvox_last_success_timestamp_seconds{server=\"0042\",api=\"gamification\"}",
    )
    .unwrap();

    let status = first.signal("-TERM");
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    let second = Running::start(&simulator, &state);
    let restored = scrape_expecting(
        &second,
        &usage(&text),
        success,
        "the last good values are served at once",
    )
    .await;
    assert_eq!(
        sample(&restored, "wolkvox_token_calls_today{token_name=\"WOLKVOX_TOKEN\"}"),
        Some(1.0),
        "the day's calls carry over"
    );
    tokio::time::sleep(WATCH).await;
    assert_eq!(simulator.counts().0, 1, "a restart within the interval called Wolkvox");
}

#[tokio::test]
async fn a_second_exporter_on_the_same_path_refuses_to_start() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let (_dir, state) = state_dir("twice");
    let first = Running::start(&simulator, &state);
    first.scrape().await;
    let output = process::binary()
        .args([
            "--wolkvox.server",
            "0042",
            "--wolkvox.base-url",
            &simulator.base_url(),
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .arg("--storage.path")
        .arg(&state)
        .env("WOLKVOX_TOKEN", FAKE_TOKEN)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--storage.path") && stderr.contains(&state.display().to_string()),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())),
        "the message names the other process: {stderr}"
    );
}

// Multi-threaded: the backfill process is waited for while the simulator answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_beside_the_exporter_shares_its_ledger_and_their_calls_never_overlap() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    // Slow calls every second from two processes: without one ledger under one lock they overlap.
    simulator.set_fault(Some(Fault::Delay(Duration::from_millis(400))));
    let (_dir, state) = state_dir("beside");
    let fast = ["--wolkvox.poll-interval", "1s", "--wolkvox.allow-fast-poll"];
    let exporter = Running::start_polling(&simulator, &state, &fast);
    wait_for_calls(&simulator, 1).await;

    let output = state.with_extension("om");
    let mut backfill = process::binary();
    backfill
        .args(["backfill", "--wolkvox.server", "0042", "--wolkvox.base-url", &simulator.base_url()])
        .args(fast)
        .args(["--from", "2026-01", "--to", "2026-04", "--output", output.to_str().unwrap()])
        .arg("--storage.path")
        .arg(&state)
        .env("WOLKVOX_TOKEN", FAKE_TOKEN);
    let done = tokio::task::spawn_blocking(move || backfill.output().unwrap()).await.unwrap();
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "the backfill beside the exporter failed: {log}");

    assert_eq!(simulator.max_in_flight(FAKE_TOKEN), 1, "two calls were in flight at once");
    // The backfill's whole months, and the exporter's polls going on between them.
    let is_backfill = |ini: &str| {
        ["202601", "202602", "202603", "202604"].iter().any(|month| ini.starts_with(month))
    };
    let calls: Vec<bool> = simulator
        .requests()
        .iter()
        .map(|r| is_backfill(r.date_ini.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(calls.iter().filter(|&&b| b).count(), 4, "{calls:?}");
    let (first, last) =
        (calls.iter().position(|&b| b).unwrap(), calls.iter().rposition(|&b| b).unwrap());
    assert!(
        calls[first..last].iter().any(|&b| !b),
        "the exporter made no call during the backfill: {calls:?}"
    );
    drop(exporter);
}

/// A backfill run by root beside a service (systemd's dynamic user owns the state directory)
/// leaves every file it makes to the directory's owner, so that the service still reads and locks
/// them.
#[tokio::test]
async fn files_made_by_root_in_anothers_state_directory_are_handed_to_its_owner() {
    let Some((_dir, state)) = services_state_dir("owner") else { return };
    backfill_one_month(&state).await;
    let made = common::walk(&state);
    assert!(made.iter().any(|path| path.ends_with("token-WOLKVOX_TOKEN.ledger.json")), "{made:?}");
    for path in made {
        let owner = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (owner.uid(), owner.gid()),
            (SERVICE_USER, SERVICE_USER),
            "{} is not the service's",
            path.display()
        );
    }
}

/// A state directory owned by the service's user, or None (said) when this process is not root:
/// only root can give a directory away, and only root could write into it afterwards.
fn services_state_dir(tag: &str) -> Option<(TestDir, PathBuf)> {
    let (dir, state) = state_dir(tag);
    std::fs::create_dir_all(&state).unwrap();
    if std::os::unix::fs::chown(&state, Some(SERVICE_USER), Some(SERVICE_USER)).is_err() {
        tools::missing("root, to run a backfill in another user's state directory");
        return None;
    }
    Some((dir, state))
}

/// A backfill of January 2026 on `state`, against a simulator of its own; it must succeed.
async fn backfill_one_month(state: &Path) {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let mut backfill = process::binary();
    backfill
        .args(["backfill", "--wolkvox.server", "0042", "--wolkvox.base-url", &simulator.base_url()])
        .args([
            "--from",
            "2026-01",
            "--to",
            "2026-01",
            "--output",
            state.with_extension("om").to_str().unwrap(),
        ])
        .arg("--storage.path")
        .arg(state)
        .env("WOLKVOX_TOKEN", FAKE_TOKEN);
    let done = tokio::task::spawn_blocking(move || backfill.output().unwrap()).await.unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
}

/// The user of the image and of the Kubernetes pod.
const SERVICE_USER: u32 = 65532;

/// The exporter binary polling every second under `ulimit -n descriptors`.
fn start_with_descriptors(
    simulator: &Simulator,
    state: &Path,
    descriptors: u32,
    extra: &[&str],
) -> Running {
    // bash sets the limit, then becomes the exporter: a signal to the child reaches it.
    let mut exporter = Command::new("bash");
    exporter.args(["-c", &format!("ulimit -n {descriptors} && exec \"$0\" \"$@\""), process::BIN]);
    exporter.env("WOLKVOX_TOKEN", FAKE_TOKEN);
    Running::launch(
        exporter,
        simulator,
        state,
        &[&["--wolkvox.poll-interval", "1s", "--wolkvox.allow-fast-poll"], extra].concat(),
    )
}

/// Idle connections to `port`, as many as `count`.
async fn idle_connections(port: u16, count: usize) -> Vec<tokio::net::TcpStream> {
    let mut idle = Vec::new();
    for _ in 0..count {
        idle.extend(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok());
    }
    idle
}

/// Out of file descriptors (idle connections past `ulimit -n`, with the cap on connections lifted),
/// the ledger cannot be opened: that says nothing of what it holds. It is kept, not set aside, and the token goes on from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_that_cannot_be_opened_for_a_while_is_kept_and_nothing_forgotten() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_rows(known_rows());
    let (_dir, state) = state_dir("descriptors");
    let running = start_with_descriptors(&simulator, &state, 64, &["--web.max-connections", "0"]);
    let port = running.port();
    running.scrape().await;
    wait_for_calls(&simulator, 3).await;

    // Past the limit: every descriptor the exporter has left goes to an idle connection.
    let idle = idle_connections(port, 120).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    drop(idle);

    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        // The exporter accepts again within a header-read timeout of the connections closing.
        let text = running.scrape().await;
        assert!(
            Instant::now() < deadline,
            "no poll succeeded after a failed read of the ledger: {text}"
        );
        if sample(&text, "wolkvox_up{server=\"0042\",api=\"gamification\"}") == Some(1.0)
            && sample(&text, "wolkvox_storage_read_failures_total").is_some_and(|n| n > 0.0)
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let set_aside: Vec<_> = common::walk(&state)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".bad-"))
        .collect();
    assert!(set_aside.is_empty(), "a good ledger was set aside: {set_aside:?}");
    // The day's count went on from the ledger (a run across midnight starts a new day).
    let calls_today =
        sample(&text, "wolkvox_token_calls_today{token_name=\"WOLKVOX_TOKEN\"}").unwrap();
    assert!(
        calls_today >= 3.0
            || jiff::Timestamp::now()
                .to_zoned(jiff::tz::TimeZone::get("America/Bogota").unwrap())
                .hour()
                == 0
    );
}

/// The same, with links planted by the directory's owner (a compromised service) where the
/// backfill run as root will write: every file they point at stays as it was, and is not given
/// away.
#[tokio::test]
async fn links_planted_in_the_state_directory_give_its_owner_nothing_of_roots() {
    let Some((_dir, state)) = services_state_dir("planted") else { return };
    let (_victims, victims) = state_dir("victims");
    std::fs::create_dir_all(&victims).unwrap();
    let names = [
        "backfill.lock",
        "lock",
        "token-WOLKVOX_TOKEN.lock",
        "token-WOLKVOX_TOKEN.ledger.json.tmp",
        "token-WOLKVOX_TOKEN.ledger.json",
    ];
    for name in names {
        let victim = victims.join(name);
        std::fs::write(&victim, "root:x:0:0\n").unwrap();
        std::os::unix::fs::symlink(&victim, state.join(name)).unwrap();
        std::os::unix::fs::lchown(state.join(name), Some(SERVICE_USER), Some(SERVICE_USER))
            .unwrap();
    }
    std::os::unix::fs::symlink(&victims, state.join("backfill")).unwrap();

    backfill_one_month(&state).await;
    for name in names {
        let victim = std::fs::metadata(victims.join(name)).unwrap();
        assert_eq!(
            std::fs::read_to_string(victims.join(name)).unwrap(),
            "root:x:0:0\n",
            "{name} was followed"
        );
        assert_eq!(
            (victim.uid(), victim.mode() & 0o777),
            (0, 0o644),
            "{name}'s target was given away"
        );
    }
    assert_eq!(
        std::fs::read_dir(&victims).unwrap().count(),
        names.len(),
        "the backfill wrote through the linked backfill/"
    );
    let ledger = std::fs::symlink_metadata(state.join("token-WOLKVOX_TOKEN.ledger.json")).unwrap();
    assert!(ledger.is_file() && ledger.uid() == SERVICE_USER, "a ledger of its own, the service's");
}

/// A machine that ran a day ahead (a wrong clock at boot), then was corrected: what the ledger
/// recorded on the wrong clock lies in the future. The exporter says so and counts every wait from
/// the present: it polls again within its interval, not a day later, and its last success is not
/// in the future (where the staleness alert could never see it).
#[tokio::test]
async fn a_clock_stepped_back_a_day_costs_no_day_of_polling() {
    let Some(_) = tools::tool("faketime") else { return };
    // libfaketime itself, preloaded: the faketime command forks, and a signal to it would miss
    // the exporter.
    let multiarch = std::fs::read_dir("/usr/lib")
        .unwrap()
        .map(|e| e.unwrap().path().join("faketime/libfaketime.so.1"));
    let libfaketime = multiarch
        .into_iter()
        .find(|p| p.exists())
        .expect("libfaketime.so.1 beside the faketime command");
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_rows(known_rows());
    let (_dir, state) = state_dir("stepped");
    let mut exporter = process::binary();
    exporter
        .env("LD_PRELOAD", &libfaketime)
        .env("FAKETIME", "+1d")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    exporter.env("WOLKVOX_TOKEN", FAKE_TOKEN);
    let mut ahead = Running::launch(
        exporter,
        &simulator,
        &state,
        &["--wolkvox.poll-interval", "2s", "--wolkvox.allow-fast-poll"],
    );
    wait_for_calls(&simulator, 2).await;
    ahead.signal("-TERM");

    let calls = simulator.counts().0;
    let corrected = Running::start_polling(
        &simulator,
        &state,
        &["--wolkvox.poll-interval", "2s", "--wolkvox.allow-fast-poll"],
    );
    wait_for_calls(&simulator, calls + 2).await;
    let text = corrected.scrape().await;
    let now = jiff::Timestamp::now().as_second() as f64;
    let success = sample(
        &text,
        "wolkvox_last_success_timestamp_seconds{server=\"0042\",api=\"gamification\"}",
    )
    .unwrap();
    assert!(success <= now + 1.0, "the last success is {} s in the future", success - now);
}

/// A token file replaced by a FIFO that nobody writes: the read before each poll refuses it at once
/// and polling goes on with the previous token; SIGTERM still ends the process (a read waiting on
/// the FIFO held a runtime thread, and the process never exited).
#[tokio::test]
async fn a_token_file_replaced_by_a_fifo_holds_up_nothing() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let (_dir, state) = state_dir("fifo");
    std::fs::create_dir_all(&state).unwrap();
    let token_file = state.with_extension("token");
    std::fs::write(&token_file, FAKE_TOKEN).unwrap();
    let polling = [
        "--wolkvox.poll-interval",
        "1s",
        "--wolkvox.allow-fast-poll",
        "--wolkvox.token-file",
        token_file.to_str().unwrap(),
    ];
    let mut running = Running::launch(process::binary(), &simulator, &state, &polling);
    wait_for_calls(&simulator, 1).await;

    std::fs::remove_file(&token_file).unwrap();
    assert!(Command::new("mkfifo").arg(&token_file).status().unwrap().success());
    let calls = simulator.counts().0;
    wait_for_calls(&simulator, calls + 2).await;
    let text = running.scrape().await;
    assert_eq!(
        sample(&text, "wolkvox_up{server=\"0042\",api=\"gamification\"}"),
        Some(1.0),
        "polling with the previous token"
    );

    running.send("-TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    while running.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the exporter did not exit within 15 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Idle connections past the descriptor limit wait to be accepted: the cap on connections stays
/// under what `ulimit -n` allows, so the state directory can always be read and polling goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_never_take_the_descriptors_the_state_directory_needs() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_rows(known_rows());
    let (_dir, state) = state_dir("connections");
    let running = start_with_descriptors(&simulator, &state, 128, &[]);
    running.scrape().await;
    wait_for_calls(&simulator, 2).await;

    // More than the descriptors allow (the rest wait in the listen queue, 128 long).
    let idle = idle_connections(running.port(), 150).await;
    let calls = simulator.counts().0;
    wait_for_calls(&simulator, calls + 3).await;
    drop(idle);
    let text = running.scrape().await;
    assert_eq!(
        sample(&text, "wolkvox_storage_read_failures_total"),
        Some(0.0),
        "the ledger could not be read"
    );
    assert_eq!(sample(&text, "wolkvox_token_state_saved{token_name=\"WOLKVOX_TOKEN\"}"), Some(1.0));
    assert_eq!(sample(&text, "wolkvox_up{server=\"0042\",api=\"gamification\"}"), Some(1.0));
}

/// SIGTERM during a call: the call ends and is recorded before the process exits, so its answer
/// is kept and the next process does not wait out a call that is over (Kubernetes gives the pod
/// terminationGracePeriodSeconds, longer than the call timeout, for this).
// Multi-threaded: the simulator answers while the test waits for the process to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_call_in_flight_end_and_be_recorded() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_rows(known_rows());
    simulator.set_fault(Some(Fault::Delay(Duration::from_secs(2))));
    let (_dir, state) = state_dir("sigterm");
    let mut running = Running::start(&simulator, &state);
    wait_for_calls(&simulator, 1).await;
    running.signal("-TERM");

    let ledger: serde_json::Value = serde_json::from_slice(
        &std::fs::read(state.join("token-WOLKVOX_TOKEN.ledger.json")).unwrap(),
    )
    .unwrap();
    assert!(
        ledger["ledger"]["last_call_end"].is_string(),
        "the call was cut, left open in the ledger: {ledger}"
    );
    let answers = std::fs::read_to_string(state.join("token-WOLKVOX_TOKEN.answers.json")).unwrap();
    assert!(answers.contains("0042/gamification"), "its answer was lost: {answers}");
}
