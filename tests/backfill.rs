//! `wolkvox_exporter backfill` against the simulator's past months, with the real tools: promtool
//! makes blocks of the output, a real Prometheus serves them, and instant queries at minutes of
//! past days return what the simulator answered for those days.

mod common;
#[path = "common/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::FAKE_TOKEN;
use jiff::civil::Date;
use tools::{Prometheus, run_tool, temp_dir, tool};
use wolkvox_exporter::simulator::{Simulator, past_gamification};

fn backfill(simulator: &Simulator, state: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wolkvox_exporter"))
        .arg("backfill")
        .args(["--wolkvox.server", "0042", "--wolkvox.base-url", &simulator.base_url()])
        .args(["--wolkvox.poll-interval", "1s", "--wolkvox.allow-fast-poll"])
        .arg("--storage.path")
        .arg(state)
        .args(extra)
        .env("WOLKVOX_TOKEN", FAKE_TOKEN)
        .stdin(Stdio::null())
        .output()
        .expect("the backfill runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// The value a series has at any minute of `day`: the latest row so far, and the month's highest.
fn expected(operation: &str, day: Date) -> (f64, f64) {
    let value_on = |day: Date| past_gamification(day).into_iter().find(|(o, _, _)| *o == operation).unwrap().2;
    let mut max = f64::MIN;
    let mut date = day.first_of_month();
    while date <= day {
        max = max.max(value_on(date));
        date = date.tomorrow().unwrap();
    }
    (value_on(day), max)
}

fn unix(day: Date, hour: i8, minute: i8) -> i64 {
    day.at(hour, minute, 0, 0).to_zoned(jiff::tz::TimeZone::get("America/Bogota").unwrap()).unwrap().timestamp().as_second()
}

fn value(result: &[serde_json::Value]) -> Option<f64> {
    result.first()?["value"][1].as_str()?.parse().ok()
}

// Multi-threaded: the backfill process is waited for on one thread while the simulator answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfilled_months_are_served_by_a_real_prometheus_as_the_live_exporter_would_have() {
    let (Some(promtool), Some(prometheus)) = (tool("promtool"), tool("prometheus")) else { return };
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let dir = temp_dir("backfill");
    let (state, output) = (dir.join("data"), dir.join("history.om"));

    let first = backfill(&simulator, &state, &["--from", "2026-01", "--to", "2026-03-15", "--output", output.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first));
    // Whole-month windows, in order, one call at a time, a poll interval (1 s) apart.
    let requests = simulator.requests();
    let windows: Vec<(String, String)> =
        requests.iter().map(|r| (r.date_ini.clone().unwrap_or_default(), r.date_end.clone().unwrap_or_default())).collect();
    assert_eq!(
        windows,
        [
            ("20260101000000".to_owned(), "20260131235959".to_owned()),
            ("20260201000000".to_owned(), "20260228235959".to_owned()),
            ("20260301000000".to_owned(), "20260331235959".to_owned()),
        ]
    );
    for pair in requests.windows(2) {
        let gap = pair[1].received_at.duration_since(pair[0].received_at);
        assert!(gap >= Duration::from_secs(1), "the calls for {:?} and {:?} came {gap:?} apart", pair[0].date_ini, pair[1].date_ini);
    }
    assert_eq!(simulator.max_in_flight(FAKE_TOKEN), 1, "two calls were in flight at once");
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(written.ends_with("# EOF\n"));
    assert!(!written.contains(FAKE_TOKEN) && !text(&first).contains(FAKE_TOKEN), "the token leaked into the output or the log");

    // A second run calls for nothing: the past months are kept.
    let second = backfill(&simulator, &state, &["--from", "2026-01", "--to", "2026-03-15", "--output", output.to_str().unwrap()]);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(simulator.requests().len(), requests.len(), "the second run called again");
    assert_eq!(std::fs::read_to_string(&output).unwrap(), written, "the kept months give the same output");
    for entry in walk(&state) {
        assert!(!String::from_utf8_lossy(&std::fs::read(entry).unwrap()).contains(FAKE_TOKEN), "the token is in the state directory");
    }

    let tsdb = dir.join("tsdb");
    let (made, log) = run_tool(
        &promtool,
        &["tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=2400h", output.to_str().unwrap(), tsdb.to_str().unwrap()],
        None,
    );
    assert!(made, "promtool refused the output: {log}");
    let prometheus = Prometheus::start_on_tsdb(&prometheus, &tsdb).await;
    for (day, hour, minute) in
        [("2026-01-01", 0, 0), ("2026-01-17", 13, 37), ("2026-02-28", 23, 59), ("2026-03-01", 0, 4), ("2026-03-15", 9, 2)]
    {
        let day: Date = day.parse().unwrap();
        let at = unix(day, hour, minute);
        for operation in ["ventas_bogota", "cobranza_medellín"] {
            let (latest, max) = expected(operation, day);
            let selector = format!("{{job=\"wolkvox\",server=\"0042\",operation=\"{operation}\"}}");
            let got = value(&prometheus.query_at(&format!("wolkvox_gamification_licenses{selector}"), at).await);
            assert_eq!(got, Some(latest), "{operation} at {day} {hour}:{minute}");
            let got = value(&prometheus.query_at(&format!("wolkvox_gamification_licenses_max{selector}"), at).await);
            assert_eq!(got, Some(max), "{operation}'s month peak at {day} {hour}:{minute}");
        }
    }
    // Nothing after the last day asked for.
    let after = unix("2026-03-16".parse().unwrap(), 12, 0);
    assert!(prometheus.query_at("wolkvox_gamification_licenses", after).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ranges_stop_with_the_flag_named_and_a_dry_run_makes_no_call() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let dir = temp_dir("backfill-bad");
    let state = dir.join("data");
    for (args, flag) in [
        (vec!["--from", "2026-03", "--to", "2026-01"], "--from"),
        (vec!["--from", "2999-01"], "--from"),
        (vec!["--from", "2026-01", "--to", "2999-01"], "--to"),
        (vec!["--from", "March"], "--from"),
    ] {
        let output = backfill(&simulator, &state, &[args.clone(), vec!["--output", "-"]].concat());
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(text(&output).contains(flag), "{args:?} does not name {flag}: {}", text(&output));
    }
    let plan = backfill(&simulator, &state, &["--from", "2026-01", "--to", "2026-03", "--dry-run"]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(String::from_utf8_lossy(&plan.stdout).contains("3 call(s)"), "{}", text(&plan));
    assert!(simulator.requests().is_empty(), "a dry run called Wolkvox");
}

#[tokio::test]
async fn an_interrupted_run_leaves_no_file() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let dir = temp_dir("backfill-interrupted");
    let output = dir.join("history.om");
    // A 5-minute interval: the second month waits, and is interrupted there.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wolkvox_exporter"))
        .arg("backfill")
        .args(["--wolkvox.server", "0042", "--wolkvox.base-url", &simulator.base_url(), "--wolkvox.poll-interval", "5m"])
        .args(["--from", "2026-01", "--to", "2026-02", "--output", output.to_str().unwrap()])
        .arg("--storage.path")
        .arg(dir.join("data"))
        .env("WOLKVOX_TOKEN", FAKE_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while simulator.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the first month was never called");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    let left: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "an interrupted run left {left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}
