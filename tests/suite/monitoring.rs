//! The monitoring stack against the real servers: promtool, amtool and a real Prometheus scraping
//! the exporter. See tests/suite/common/tools.rs for how a missing tool is treated.

use crate::common;
use crate::common::grafana;
use crate::common::tools;

use std::collections::BTreeMap;

use common::{
    FAKE_TOKEN, scrape, start_exporter, start_exporter_from_file_on, start_exporter_on,
    wait_first_success,
};
use grafana::unreplaced_variable;
use serde_json::{Value, json};
use tools::{Prometheus, repo_path, run_tool, tool};
use wolkvox_exporter::clock::Clock;
use wolkvox_exporter::simulator::Simulator;

async fn check_metrics(rows: Option<Vec<Value>>) {
    let Some(promtool) = tool("promtool") else { return };
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    if let Some(rows) = rows {
        simulator.set_rows(rows);
    }
    let exporter = start_exporter(&simulator, "1h", &[]).await;
    wait_first_success(&exporter).await;
    let body = scrape(&exporter).await;
    exporter.stop().await;
    let (ok, findings) = run_tool(&promtool, &["check", "metrics"], Some(body.as_bytes()));
    assert!(ok && findings.trim().is_empty(), "promtool check metrics: {findings}");
}

#[tokio::test]
async fn promtool_finds_nothing_in_the_demo_metrics() {
    check_metrics(None).await;
}

/// Hundreds of series whose label values hold quotes, backslashes, newlines and any Unicode.
fn awkward_rows() -> Vec<Value> {
    let pieces = [
        "\"quoted\"",
        "back\\slash",
        "new\nline",
        "tab\there",
        "ñandú",
        "日本語",
        "😀",
        "{brace}",
        "a=b,c",
        " ",
        "",
        "#hash",
    ];
    (0..300)
        .map(|i| {
            let operation = format!("op {} {}", pieces[i % pieces.len()], i / 25);
            let description = format!("product {}", pieces[(i / 12) % pieces.len()]);
            json!({"operation": operation, "description": description, "items": (i % 97).to_string(), "date": "2026-11-02 10:00:00"})
        })
        .collect()
}

#[tokio::test]
async fn promtool_finds_nothing_in_hundreds_of_awkward_series() {
    check_metrics(Some(awkward_rows())).await;
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = tool("promtool") else { return };
    let rules = repo_path("deploy/prometheus/rules/wolkvox.rules.yml");
    let (ok, output) = run_tool(&promtool, &["check", "rules", rules.to_str().unwrap()], None);
    assert!(ok, "{output}");
    let tests = repo_path("deploy/prometheus/rules/wolkvox.rules.test.yml");
    let (ok, output) = run_tool(&promtool, &["test", "rules", tests.to_str().unwrap()], None);
    assert!(ok, "{output}");

    // Every alert has a unit test that expects it to fire.
    let tests_text = std::fs::read_to_string(&tests).unwrap();
    let alerts = crate::common::tools::bundled_alerts();
    assert!(alerts.len() >= 6, "{alerts:?}");
    for alert in alerts {
        assert!(
            tests_text.contains(&format!("alertname: {alert}")),
            "{alert} has no promtool test"
        );
    }
}

#[test]
fn the_example_prometheus_and_alertmanager_configs_are_valid() {
    let Some(promtool) = tool("promtool") else { return };
    let Some(amtool) = tool("amtool") else { return };
    let prometheus = repo_path("deploy/prometheus/prometheus.yml");
    let (ok, output) =
        run_tool(&promtool, &["check", "config", prometheus.to_str().unwrap()], None);
    assert!(ok, "{output}");
    let alertmanager = repo_path("deploy/alertmanager/alertmanager.yml");
    let (ok, output) = run_tool(&amtool, &["check-config", alertmanager.to_str().unwrap()], None);
    assert!(ok, "{output}");
}

/// The clock for an exporter beside a real Prometheus: the real one, since Prometheus stamps every
/// sample with the real time (an exporter on the tests' fixed November clock served a month that
/// had ended by December 1, and the "this month" queries found nothing).
///
/// Why these tests then pass on any real date: the exporter's usage series rightly end with the
/// billing month in the target's zone (Bogota), and that is the only date-dependent step in what
/// they check. A test here takes well under a minute, so when fewer than five minutes of the
/// month are left, it first waits for the next month to begin; on every other minute of any date
/// the month cannot turn while it runs. (faketime cannot move Prometheus, so this is reasoned,
/// not run: scripts/faketime-tests.sh leaves this binary on the real clock.)
async fn clear_of_a_month_end() -> Clock {
    const MARGIN: i64 = 5 * 60;
    let clock = Clock::system();
    let now = clock.now().to_zoned(bogota());
    let next_month = now.date().first_of_month().checked_add(jiff::Span::new().months(1)).unwrap();
    let month_end = next_month.to_zoned(bogota()).unwrap().timestamp();
    let left = month_end.as_second() - now.timestamp().as_second();
    if left < MARGIN {
        eprintln!("{left} s left in the month in Bogota: waiting for the next one to begin");
        tokio::time::sleep(std::time::Duration::from_secs(left.max(0) as u64 + 2)).await;
    }
    clock
}

fn bogota() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("America/Bogota").unwrap()
}

/// The values as Prometheus stored them: (server, operation, description) -> value.
fn by_labels(result: &[Value]) -> BTreeMap<(String, String, String), f64> {
    result
        .iter()
        .map(|sample| {
            let label = |name: &str| sample["metric"][name].as_str().unwrap_or_default().to_owned();
            let value = sample["value"][1].as_str().unwrap().parse().unwrap();
            ((label("server"), label("operation"), label("description")), value)
        })
        .collect()
}

#[tokio::test]
async fn prometheus_stores_exactly_the_values_the_simulator_served() {
    let Some(binary) = tool("prometheus") else { return };
    let clock = clear_of_a_month_end().await;
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    // Rows of this month's first two days, as the API answers on any date.
    let month = clock.now().to_zoned(bogota()).date().first_of_month();
    let (first, second) = (
        month.strftime("%Y-%m-01 09:00:00").to_string(),
        month.strftime("%Y-%m-02 09:00:00").to_string(),
    );
    simulator.set_rows(vec![
        json!({"operation": "ventas \"norte\"", "description": "Gamification", "items": "12", "date": first}),
        json!({"operation": "ventas \"norte\"", "description": "Gamification", "items": "15", "date": second}),
        json!({"operation": "cobranza medellín", "description": "Premium\\Gold", "items": " 7 ", "date": second}),
        json!({"operation": "soporte", "description": "Gamification", "items": "", "date": second}),
    ]);
    let exporter = start_exporter_on(&simulator, "1h", &[], clock).await;
    let prometheus = Prometheus::start(&binary, exporter.addr()).await;

    let mut expected = BTreeMap::new();
    expected.insert(
        ("0042".to_owned(), "cobranza medellín".to_owned(), "Premium\\Gold".to_owned()),
        7.0,
    );
    expected.insert(
        ("0042".to_owned(), "ventas \"norte\"".to_owned(), "Gamification".to_owned()),
        15.0,
    );
    let result = prometheus
        .wait_for("wolkvox_gamification_licenses", |result| by_labels(result) == expected)
        .await;
    assert_eq!(result.len(), 2);
    assert!(result.iter().all(|s| s["metric"]["job"] == "wolkvox"));
    let up = prometheus.query("wolkvox_up").await;
    assert_eq!(up[0]["value"][1], "1");
    exporter.stop().await;
}

const BILLING_CONFIG: &str = "\
targets:
  - server: '0042'
    token_env: WOLKVOX_TOKEN
    token_name: main
    daily_call_budget: 100000
    token_info: true
    apis: [gamification, chat_licenses, ivr_minutes]
budgets:
  - {api: chat_licenses, operation: ventas_bogota, description: Chat licenses, quantity: 25}
  - {api: chat_licenses, operation: soporte_cdmx, description: Chat licenses, quantity: 1000}
  - {api: gamification, operation: ventas_bogota, description: Gamification, quantity: 1000}
prices:
  - {api: chat_licenses, description: Chat licenses, unit_price: 12.5, currency: USD}
  - {api: gamification, description: Gamification, unit_price: 3.5, currency: USD}
cost_limits:
  - {currency: USD, monthly: 100000}
";

/// Each PromQL query of each dashboard panel and variable, with the variables set to real values.
#[tokio::test]
async fn every_dashboard_query_returns_series_from_a_real_prometheus() {
    let Some(binary) = tool("prometheus") else { return };
    let clock = clear_of_a_month_end().await;
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    // Three billing APIs on one token with a daily budget, contracts for two of them, prices of
    // their products and a cost limit: what the dashboards show.
    let exporter = start_exporter_from_file_on(&simulator, BILLING_CONFIG, "1h", clock).await;
    common::wait_all_up(&exporter).await;
    let prometheus = Prometheus::start(&binary, exporter.addr()).await;
    // Enough scrapes for increase() over the shortest range used below.
    prometheus
        .wait_for("count_over_time(wolkvox_up[1m])", |r| {
            r.first().is_some_and(|s| {
                s["value"][1].as_str().unwrap_or("0").parse::<f64>().unwrap() >= 4.0
            })
        })
        .await;
    let families =
        prometheus.query(r#"count by (__name__) ({__name__=~"wolkvox_(gamification_licenses|chat_licenses|ivr_minutes)"})"#).await;
    assert_eq!(families.len(), 3, "{families:?}");
    // The over-contract alert's condition holds for the one budget the simulator's usage passes.
    let over = prometheus.query("wolkvox_billing_budget_used > wolkvox_billing_budget").await;
    assert_eq!(over.len(), 1, "{over:?}");
    assert_eq!(over[0]["metric"]["operation"], "ventas_bogota");
    // The operation and product of the gamification contract, so that its panels find it.
    let (operation, description) = ("ventas_bogota", "Gamification");
    let licenses =
        prometheus.query(&format!(r#"wolkvox_gamification_licenses{{operation="{operation}", description="{description}"}}"#)).await;
    assert_eq!(licenses.len(), 1, "{licenses:?}");
    let substitute = |query: &str| {
        query
            .replace("$__rate_interval", "1m")
            .replace("$job", "wolkvox")
            .replace("$server", "0042")
            .replace("$api", "chat_licenses")
            .replace("$token_name", "main")
            .replace("$operation", &regex_escape(operation))
            .replace("$description", &regex_escape(description))
    };

    let dashboards: Vec<_> =
        std::fs::read_dir(repo_path("dashboards")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!dashboards.is_empty());
    let (mut checked, mut past) = (0, 0);
    for path in dashboards {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for query in dashboard_queries(&dashboard) {
            let promql = substitute(&query);
            assert!(
                unreplaced_variable(&promql).is_none(),
                "{}: unreplaced variable in {promql}",
                path.display()
            );
            // Days with failures only (none here): without its filter the query finds every reason.
            let promql = promql
                .strip_suffix(" > 0")
                .filter(|q| q.contains("request_failures_total"))
                .map_or(promql.clone(), str::to_owned);
            let result = query_at(&prometheus, &promql, evaluation_time(&promql)).await;
            if promql.starts_with("group by (api)") {
                // token_info has no billing panels: listed, it would show them empty.
                assert!(
                    result.iter().all(|s| s["metric"]["api"] != "token_info"),
                    "{}: $api lists token_info",
                    path.display()
                );
            }
            if past_months(&promql) {
                // Past months' values: this Prometheus is a minute old. tests/suite/dashboards.rs runs
                // these across months' ends; here they only have to run.
                past += 1;
                continue;
            }
            assert!(!result.is_empty(), "{}: no series for {promql}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} queries found");
    assert_eq!(
        past, 25,
        "one last-month query per finance table and in the cost table, and the eleven past months \
         of the chargeback tables in units and in money"
    );
    exporter.stop().await;
}

/// A query of past months, picked by `@ end()` against this month's end: last month's final peak
/// in the finance tables, and every column of the chargeback table but this month's (`… == 0)`).
fn past_months(promql: &str) -> bool {
    promql.contains("@ end()") && !promql.contains(") == 0)")
}

/// Bars (`increase(…[1d] offset -1d)`) count the day that starts at their timestamp: ask for the
/// bar of the day that ends in half a minute, which holds every sample so far. Anything else: now.
fn evaluation_time(promql: &str) -> f64 {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    if promql.contains("offset -1d") { now - 86_400.0 + 30.0 } else { now }
}

/// An instant query at `time`; panics on an API error, returns the result vector.
async fn query_at(prometheus: &Prometheus, promql: &str, time: f64) -> Vec<Value> {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/query", prometheus.url))
        .query(&[("query", promql), ("time", &format!("{time:.3}"))])
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "success", "{promql}: {body}");
    body["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Panel target expressions, and variable queries turned into PromQL: `label_values(m{…}, l)`
/// must find series, so it runs as `group by (l) (m{…})`.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("every target has an expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        let definition =
            variable["query"]["query"].as_str().or(variable["query"].as_str()).unwrap();
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .expect("label_values(selector, label)");
        let (selector, label) = inner.rsplit_once(',').unwrap();
        queries.push(format!("group by ({}) ({})", label.trim(), selector.trim()));
    }
    queries
}

fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push_str("\\\\");
        }
        out.push(c);
        out
    })
}
