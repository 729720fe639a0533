//! `wolkvox_exporter backfill` against the simulator's past months, with the real tools: promtool
//! makes blocks of the output, a real Prometheus serves them, instant queries at minutes of past
//! days return what the simulator answered for those days, and every dashboard panel that can
//! show history has data over six weeks of it.

use crate::common;
use crate::common::grafana;
use crate::common::process;
use crate::common::tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::FAKE_TOKEN;
use grafana::{dashboards, panels, unreplaced_variable};
use jiff::ToSpan;
use jiff::civil::{Date, date};
use serde_json::Value;
use tools::{Prometheus, run_tool, temp_dir, tool};
use wolkvox_exporter::simulator::{DocumentedError, Fault, Simulator, past_gamification};

fn backfill(simulator: &Simulator, state: &Path, extra: &[&str]) -> Output {
    process::binary()
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

/// Server 0042 from a config file with the gamification products' prices, so that the backfill
/// writes their estimated cost too (the cost panels' history: the chargeback in money).
const PRICED: &str = "\
targets:
  - server: '0042'
    token_env: WOLKVOX_TOKEN
prices:
  - {api: gamification, description: Gamification, unit_price: 3.5, currency: USD}
  - {api: gamification, description: Gamification Premium, unit_price: 9, currency: USD}
";

/// [`backfill`] of the targets and prices of a config file.
fn backfill_from_file(
    simulator: &Simulator,
    state: &Path,
    config: &Path,
    extra: &[&str],
) -> Output {
    process::binary()
        .arg("backfill")
        .arg("--config.file")
        .arg(config)
        .args(["--wolkvox.base-url", &simulator.base_url()])
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
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The value a series has at any minute of `day`: the latest row so far, and the month's highest.
fn expected(operation: &str, day: Date) -> (f64, f64) {
    let value_on =
        |day: Date| past_gamification(day).into_iter().find(|(o, _, _)| *o == operation).unwrap().2;
    let mut max = f64::MIN;
    let mut date = day.first_of_month();
    while date <= day {
        max = max.max(value_on(date));
        date = date.tomorrow().unwrap();
    }
    (value_on(day), max)
}

fn unix(day: Date, hour: i8, minute: i8) -> i64 {
    day.at(hour, minute, 0, 0)
        .to_zoned(jiff::tz::TimeZone::get("America/Bogota").unwrap())
        .unwrap()
        .timestamp()
        .as_second()
}

fn value(result: &[serde_json::Value]) -> Option<f64> {
    result.first()?["value"][1].as_str()?.parse().ok()
}

// Multi-threaded: the backfill process is waited for on one thread while the simulator answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: backfill, load into Prometheus, query as the dashboards do"
)]
async fn backfilled_months_are_served_by_a_real_prometheus_as_the_live_exporter_would_have() {
    let (Some(promtool), Some(prometheus)) = (tool("promtool"), tool("prometheus")) else { return };
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let dir = temp_dir("backfill");
    let (state, output, config) =
        (dir.join("data"), dir.join("history.om"), dir.join("wolkvox.yml"));
    std::fs::write(&config, PRICED).unwrap();

    // Twelve months up to mid-March: the chargeback tables' last twelve months, each with data.
    let range = ["--from", "2025-04", "--to", "2026-03-15", "--output", output.to_str().unwrap()];
    let first = backfill_from_file(&simulator, &state, &config, &range);
    assert!(first.status.success(), "{}", text(&first));
    // Whole-month windows, in order, one call at a time, a poll interval (1 s) apart.
    let requests = simulator.requests();
    let windows: Vec<(String, String)> = requests
        .iter()
        .map(|r| (r.date_ini.clone().unwrap_or_default(), r.date_end.clone().unwrap_or_default()))
        .collect();
    let months = (0..12).map(|k| date(2025, 4, 1).checked_add(k.months()).unwrap());
    let whole = months.map(|m| {
        (
            m.strftime("%Y%m%d000000").to_string(),
            m.last_of_month().strftime("%Y%m%d235959").to_string(),
        )
    });
    assert_eq!(windows, whole.collect::<Vec<_>>());
    for pair in requests.windows(2) {
        let gap = pair[1].received_at.duration_since(pair[0].received_at);
        assert!(
            gap >= Duration::from_secs(1),
            "the calls for {:?} and {:?} came {gap:?} apart",
            pair[0].date_ini,
            pair[1].date_ini
        );
    }
    assert_eq!(simulator.max_in_flight(FAKE_TOKEN), 1, "two calls were in flight at once");
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(written.ends_with("# EOF\n"));
    assert!(
        !written.contains(FAKE_TOKEN) && !text(&first).contains(FAKE_TOKEN),
        "the token leaked into the output or the log"
    );
    assert_eq!(
        text(&first).matches("month fetched").count(),
        12,
        "off a terminal, one line per month: {}",
        text(&first)
    );

    // A second run calls for nothing: the past months are kept.
    let second = backfill_from_file(&simulator, &state, &config, &range);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(simulator.requests().len(), requests.len(), "the second run called again");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        written,
        "the kept months give the same output"
    );
    for entry in common::walk(&state).into_iter().filter(|path| path.is_file()) {
        assert!(
            !String::from_utf8_lossy(&std::fs::read(entry).unwrap()).contains(FAKE_TOKEN),
            "the token is in the state directory"
        );
    }

    let tsdb = dir.join("tsdb");
    let (made, log) = run_tool(
        &promtool,
        &[
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=2400h",
            output.to_str().unwrap(),
            tsdb.to_str().unwrap(),
        ],
        None,
    );
    assert!(made, "promtool refused the output: {log}");
    let prometheus = Prometheus::start_on_tsdb(&prometheus, &tsdb).await;
    for (day, hour, minute) in [
        ("2026-01-01", 0, 0),
        ("2026-01-17", 13, 37),
        ("2026-02-28", 23, 59),
        ("2026-03-01", 0, 4),
        ("2026-03-15", 9, 2),
    ] {
        let day: Date = day.parse().unwrap();
        let at = unix(day, hour, minute);
        // Gamification is charged on the month's peak; the prices are PRICED's.
        for (operation, price) in [("ventas_bogota", 3.5), ("cobranza_medellín", 9.0)] {
            let (latest, max) = expected(operation, day);
            let selector = format!("{{job=\"wolkvox\",server=\"0042\",operation=\"{operation}\"}}");
            let got = value(
                &prometheus.query_at(&format!("wolkvox_gamification_licenses{selector}"), at).await,
            );
            assert_eq!(got, Some(latest), "{operation} at {day} {hour}:{minute}");
            let got = value(
                &prometheus
                    .query_at(&format!("wolkvox_gamification_licenses_max{selector}"), at)
                    .await,
            );
            assert_eq!(got, Some(max), "{operation}'s month peak at {day} {hour}:{minute}");
            let got =
                value(&prometheus.query_at(&format!("wolkvox_estimated_cost{selector}"), at).await);
            assert_eq!(got, Some(max * price), "{operation}'s cost at {day} {hour}:{minute}");
        }
    }
    // Nothing after the last day asked for.
    let after = unix("2026-03-16".parse().unwrap(), 12, 0);
    assert!(prometheus.query_at("wolkvox_gamification_licenses", after).await.is_empty());

    // The dashboards on February 1st to March 15th, as a Grafana date picker sets it.
    dashboards_have_data(
        &prometheus,
        unix(date(2026, 2, 1), 0, 0),
        unix(date(2026, 3, 15), 23, 59) + 59,
    )
    .await;
}

/// Panel queries that cannot have data on backfilled history, by panel title and query, and why:
/// the backfill writes usage, the month's peak, the month's end and the priced series' cost and
/// unit price, nothing of what the live exporter says about its own polls, calls, token, budgets
/// and cost limits.
const NOT_BACKFILLED: [(&str, &str, &str); 26] = [
    ("Most-used gamification contract", "A", "budgets: the live exporter's configuration"),
    (
        "Licenses for the invoice, per server, operation and product",
        "C D",
        "contract and its share: budgets",
    ),
    ("Polling", "A", "wolkvox_up: the live exporter's last poll"),
    ("Freshness", "A", "the live exporter's last success and poll interval"),
    ("Age of the last successful poll", "A", "the live exporter's last success"),
    ("Rows in the last response", "A", "the live exporter's last response"),
    ("Poll duration", "A", "the live exporter's last poll"),
    ("Failed polls per day, by reason", "A", "the live exporter's failure counters"),
    ("API calls per day", "A", "the live exporter's call counter"),
    ("Skipped rows per day, by reason", "A", "the live exporter's skipped-row counter"),
    (
        "Usage for the invoice, per billing API, operation and product",
        "C D",
        "contract and its share: budgets",
    ),
    ("Share of the contract used, by budget", "A", "budgets"),
    (
        "Estimated cost against the monthly limit",
        "A",
        "cost_limits: the live exporter's configuration",
    ),
    ("Estimated cost per operation", "C", "the contract at its prices: budgets"),
    ("Month's peak and contract over time", "A B", "budgets"),
    ("Calls spent today and the daily budget", "A B", "the live exporter's calls with its token"),
    ("Share of today's budget spent", "A", "the live exporter's calls with its token"),
    ("Schedule stretched by the budget", "A", "the live exporter's schedule"),
    ("Least time between calls", "A", "the live exporter's schedule"),
    ("Wolkvox's own count of today's calls", "A B C", "token_info: polled live only"),
    ("Polling by API", "A", "wolkvox_up: the live exporter's last poll"),
    ("Freshness by API", "A", "the live exporter's last success and poll interval"),
    ("Age of the last successful poll, by API", "A", "the live exporter's last success"),
    ("Rows in the last response, by billing API", "A", "the live exporter's last response"),
    ("API calls per day, by API", "A", "the live exporter's call counter"),
    ("Failed calls per day, by API and reason", "A", "the live exporter's failure counters"),
];

/// Grafana's step over six weeks at about a thousand points.
const STEP: Duration = Duration::from_secs(3600);

/// The step of a range query: [`STEP`], or the panel's or the query's minimum interval if longer.
fn step(panel: &Value, target: &Value) -> Duration {
    let minimums = [&target["interval"], &panel["interval"]].into_iter().filter_map(Value::as_str);
    minimums.map(|interval| humantime::parse_duration(interval).unwrap()).fold(STEP, Duration::max)
}

/// Runs every query of every dashboard panel from `start` to `end` as Grafana would, and fails
/// for each one with no data that is not exempt, each exempt one with data, and each exemption
/// that names no panel query.
async fn dashboards_have_data(prometheus: &Prometheus, start: i64, end: i64) {
    let (mut wrong, mut seen, mut titles) =
        (Vec::new(), BTreeSet::new(), BTreeMap::<String, usize>::new());
    for (path, dashboard) in dashboards() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let variables = variables(prometheus, &dashboard, start, end).await;
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap();
            *titles.entry(title.to_owned()).or_default() += 1;
            for target in panel["targets"].as_array().unwrap() {
                let ref_id = target["refId"].as_str().unwrap();
                seen.insert((title.to_owned(), ref_id.to_owned()));
                let promql = substitute(target["expr"].as_str().unwrap(), &variables);
                // An instant query (now's values, tables) runs at the range's end, which stands for
                // now: the chargeback table's own last year ends there too.
                let result = if target["instant"] == true {
                    prometheus.query_at(&promql, end).await
                } else {
                    prometheus.query_range(&promql, start, end, step(panel, target)).await
                };
                // Prometheus leaves out series without points: a series is data.
                let exemption = NOT_BACKFILLED
                    .iter()
                    .find(|(t, refs, _)| *t == title && refs.split(' ').any(|r| r == ref_id));
                match (result.is_empty(), exemption) {
                    (true, None) => wrong.push(format!(
                        "{file}: {title:?} {ref_id}: no data over the backfill: {promql}"
                    )),
                    (false, Some((_, _, why))) => wrong
                        .push(format!("{file}: {title:?} {ref_id}: has data, yet exempt ({why})")),
                    _ => {}
                }
            }
        }
    }
    for (title, refs, _) in &NOT_BACKFILLED {
        assert_eq!(titles.get(*title), Some(&1), "{title:?} must name one panel");
        for ref_id in refs.split(' ') {
            assert!(
                seen.contains(&((*title).to_owned(), ref_id.to_owned())),
                "{title:?} has no query {ref_id}"
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The query variables as a Grafana user looking at server 0042's history sets them: job wolkvox,
/// server 0042, every other one All. Those two must be offered: Grafana lists a variable's
/// values from its `label_values(selector, label)` over the dashboard's range.
async fn variables(
    prometheus: &Prometheus,
    dashboard: &Value,
    start: i64,
    end: i64,
) -> Vec<(String, String)> {
    let mut set = Vec::new();
    for variable in
        dashboard["templating"]["list"].as_array().unwrap().iter().filter(|v| v["type"] == "query")
    {
        let name = variable["name"].as_str().unwrap();
        let (value, chosen) = match name {
            "job" => ("wolkvox", true),
            "server" => ("0042", true),
            _ => (
                variable["allValue"]
                    .as_str()
                    .unwrap_or_else(|| panic!("${name} without an All value")),
                false,
            ),
        };
        if chosen {
            let definition = variable["query"]["query"].as_str().unwrap();
            let inner = definition.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')'));
            let (selector, label) = inner
                .and_then(|q| q.rsplit_once(", "))
                .unwrap_or_else(|| panic!("${name}: {definition}"));
            let offered = prometheus
                .query_range(
                    &format!("group by ({label}) ({})", substitute(selector, &set)),
                    start,
                    end,
                    STEP,
                )
                .await;
            assert!(
                offered.iter().any(|s| s["metric"][label] == value),
                "${name} does not offer {value} over the backfill: {definition}"
            );
        }
        set.push((name.to_owned(), value.to_owned()));
    }
    set
}

/// `expr` with `$name` and `${name}` replaced; any other variable fails the test.
fn substitute(expr: &str, variables: &[(String, String)]) -> String {
    let promql = variables.iter().fold(expr.to_owned(), |e, (name, value)| {
        e.replace(&format!("${{{name}}}"), value).replace(&format!("${name}"), value)
    });
    assert!(unreplaced_variable(&promql).is_none(), "a variable this test does not set: {promql}");
    promql
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
        (vec!["--from", "2026-01", "--sample-interval", "0s"], "--sample-interval"),
    ] {
        let output = backfill(&simulator, &state, &[args.clone(), vec!["--output", "-"]].concat());
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(text(&output).contains(flag), "{args:?} does not name {flag}: {}", text(&output));
    }
    let plan = backfill(&simulator, &state, &["--from", "2026-01", "--to", "2026-03", "--dry-run"]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(String::from_utf8_lossy(&plan.stdout).contains("3 call(s)"), "{}", text(&plan));
    assert!(simulator.requests().is_empty(), "a dry run called Wolkvox");
    // A century (1926 for 2026) and samples every second: each worth a warning.
    let plan = backfill(
        &simulator,
        &state,
        &["--from", "1926-01", "--to", "2026-01", "--sample-interval", "1s", "--dry-run"],
    );
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(
        text(&plan).contains("a long backfill") && text(&plan).contains("1201"),
        "{}",
        text(&plan)
    );
    assert!(text(&plan).contains("300 times the size"), "{}", text(&plan));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_a_progress_bar_counts_the_months_and_calls() {
    let Some(script) = tool("script") else { return };
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let dir = temp_dir("backfill-terminal");
    let command = format!(
        "{} backfill --wolkvox.server 0042 --wolkvox.base-url {} --wolkvox.poll-interval 1s --wolkvox.allow-fast-poll \
         --from 2026-01 --to 2026-02 --output {} --storage.path {}",
        process::BIN,
        simulator.base_url(),
        dir.join("history.om").display(),
        dir.join("data").display()
    );
    // script(1) runs the backfill on a pseudo-terminal and copies what it draws.
    let mut run = Command::new(script);
    run.args(["-qec", &command, "/dev/null"]).env("WOLKVOX_TOKEN", FAKE_TOKEN).stdin(Stdio::null());
    let drawn = tokio::task::spawn_blocking(move || run.output().unwrap()).await.unwrap();
    let screen = text(&drawn);
    assert!(drawn.status.success(), "{screen}");
    assert!(
        screen.contains("2/2 months") && screen.contains("2 calls made"),
        "no progress bar: {screen}"
    );
    assert!(
        !screen.contains("month fetched"),
        "a terminal gets the bar, not a line per month: {screen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tokens_are_backfilled_at_once_each_one_call_at_a_time() {
    let other_token = "fake-token-for-tests-0002";
    let simulator = Simulator::start(&[FAKE_TOKEN, other_token]).await.unwrap();
    // Slow answers: one token after the other would show as all of one before any of the other.
    simulator.set_fault(Some(Fault::Delay(Duration::from_millis(300))));
    let dir = temp_dir("backfill-tokens");
    let targets = dir.join("targets.yml");
    let target = |server: &str, token_env: &str| {
        format!(
            "  - server: '{server}'\n    token_env: {token_env}\n    base_url: {}\n    poll_interval: 1s\n",
            simulator.base_url()
        )
    };
    std::fs::write(
        &targets,
        format!("targets:\n{}{}", target("0042", "TOKEN_A"), target("0043", "TOKEN_B")),
    )
    .unwrap();
    let mut run = process::binary();
    run.args([
        "backfill",
        "--wolkvox.allow-fast-poll",
        "--from",
        "2026-01",
        "--to",
        "2026-03",
        "--output",
    ])
    .arg(dir.join("history.om"))
    .arg("--config.file")
    .arg(&targets)
    .arg("--storage.path")
    .arg(dir.join("data"))
    .env("TOKEN_A", FAKE_TOKEN)
    .env("TOKEN_B", other_token)
    .stdin(Stdio::null());
    let done = tokio::task::spawn_blocking(move || run.output().unwrap()).await.unwrap();
    assert!(done.status.success(), "{}", text(&done));

    for token in [FAKE_TOKEN, other_token] {
        assert_eq!(simulator.max_in_flight(token), 1, "two calls of one token at once");
    }
    let servers: Vec<String> =
        simulator.requests().into_iter().map(|r| r.server_header.unwrap_or_default()).collect();
    assert_eq!(servers.len(), 6, "{servers:?}");
    let first_of_0043 = servers.iter().position(|s| s == "0043").unwrap();
    let last_of_0042 = servers.iter().rposition(|s| s == "0042").unwrap();
    assert!(
        first_of_0043 < last_of_0042,
        "the tokens took turns instead of running at once: {servers:?}"
    );
}

#[tokio::test]
async fn an_interrupted_run_leaves_no_file() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let dir = temp_dir("backfill-interrupted");
    let output = dir.join("history.om");
    // A 5-minute interval: the second month waits, and is interrupted there.
    let mut child = process::binary()
        .arg("backfill")
        .args([
            "--wolkvox.server",
            "0042",
            "--wolkvox.base-url",
            &simulator.base_url(),
            "--wolkvox.poll-interval",
            "5m",
        ])
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
    assert!(
        Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success()
    );
    let status = child.wait().unwrap();
    assert!(!status.success());
    let left: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert!(left.is_empty(), "an interrupted run left {left:?}");
}

/// `--output` beside files someone else may plant: a link is refused (what it points at is left
/// alone), a planted `.NAME.partial` link is not followed, and a device is written into as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_follows_no_link_and_writes_into_a_device_as_it_is() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let dir = temp_dir("backfill-links");
    let victim = dir.join("victim");
    std::fs::write(&victim, "keep me\n").unwrap();
    let range = ["--from", "2026-01", "--to", "2026-01"];

    let link = dir.join("linked.om");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let output = backfill(
        &simulator,
        &dir.join("data"),
        &[&range[..], &["--output", link.to_str().unwrap()]].concat(),
    );
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("symbolic link"), "{}", text(&output));

    let planted = dir.join(".history.om.partial");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let history = dir.join("history.om");
    let output = backfill(
        &simulator,
        &dir.join("data"),
        &[&range[..], &["--output", history.to_str().unwrap()]].concat(),
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(std::fs::read_to_string(&history).unwrap().ends_with("# EOF\n"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n", "a link was followed");

    let output =
        backfill(&simulator, &dir.join("data"), &[&range[..], &["--output", "/dev/null"]].concat());
    assert!(output.status.success(), "{}", text(&output));
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(),
        "/dev/null was replaced by a file"
    );
}

/// A dry run read by `head -1` that has gone before the plan is printed: the backfill ends quietly
/// (no panic, exit 0), as other command-line tools do.
#[tokio::test]
async fn a_dry_run_into_a_pipe_closed_early_ends_quietly() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let dir = temp_dir("backfill-head");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = process::binary()
        .args(["backfill", "--wolkvox.server", "0042", "--wolkvox.base-url", &simulator.base_url()])
        .args([
            "--from",
            "2024-01",
            "--to",
            "2026-01",
            "--dry-run",
            "--storage.path",
            dir.join("data").to_str().unwrap(),
        ])
        .env("WOLKVOX_TOKEN", FAKE_TOKEN)
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
}

/// The first day of each month the simulator was asked for, in order.
fn months_asked(simulator: &Simulator) -> Vec<String> {
    simulator
        .requests()
        .iter()
        .map(|r| r.date_ini.clone().unwrap_or_default().chars().take(6).collect())
        .collect()
}

/// A 503 is transient by the failure table: the month is asked for again after its backoff (at
/// 1 s fast polling, the interval), and the backfill completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_mid_backfill_is_tried_again_after_the_tables_backoff() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.push_fault(Fault::Delay(Duration::ZERO));
    simulator.push_fault(Fault::Raw { status: 503, body: String::new() });
    let dir = temp_dir("backfill-transient");
    let output = dir.join("history.om");
    let run = backfill(
        &simulator,
        &dir.join("data"),
        &["--from", "2026-01", "--to", "2026-03", "--output", output.to_str().unwrap()],
    );
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(months_asked(&simulator), ["202601", "202602", "202602", "202603"]);
    let requests = simulator.requests();
    assert!(requests[1].faulted && !requests[2].faulted);
    let gap = requests[2].received_at.duration_since(requests[1].received_at);
    assert!(gap >= Duration::from_secs(1), "tried again {gap:?} after the failure");
    assert!(text(&run).contains("trying it again"), "{}", text(&run));
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(
        written.contains(&format!(" {}\n", unix(date(2026, 2, 15), 0, 0))),
        "February is missing from the output"
    );
}

/// A rejected token fails every call until someone fixes it: the backfill stops calling with it,
/// and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_stops_the_backfill_with_a_clear_error() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.push_fault(Fault::Delay(Duration::ZERO));
    simulator
        .push_fault(Fault::Documented { error: DocumentedError::ValidateToken, http_status: 403 });
    let dir = temp_dir("backfill-rejected");
    let output = dir.join("history.om");
    let run = backfill(
        &simulator,
        &dir.join("data"),
        &["--from", "2026-01", "--to", "2026-03", "--output", output.to_str().unwrap()],
    );
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert_eq!(
        months_asked(&simulator),
        ["202601", "202602"],
        "March was called with a rejected token"
    );
    assert!(
        text(&run).contains("rejected the token")
            && text(&run).contains("1 other month(s) were not called; fix the token"),
        "{}",
        text(&run)
    );
    assert!(!text(&run).contains(FAKE_TOKEN), "the token leaked into the log");
}
