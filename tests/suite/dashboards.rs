//! Static checks of every dashboard: provisionable as is, every panel titled, described and with a
//! unit, every query on the datasource variable and honouring the template variables; colours that
//! say what the value means, "now" panels that read now, bars that count a fixed day, panels of
//! optional features that say what to configure, the finance tables and the chargeback table. The
//! PromQL that is hard to get right runs through promtool (last month's final peak, the API of every
//! usage metric) or, where promtool's cap of 10,000 samples a query is too small, through a real
//! Prometheus on blocks promtool made from OpenMetrics history (each month's peak of the chargeback
//! table).

use crate::common::grafana;
use crate::common::tools;

use std::collections::BTreeMap;
use std::time::Duration;

use grafana::{dashboards, panels};
use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use wolkvox_exporter::wolkvox::catalogue::APIS;

fn dashboard(file: &str) -> Value {
    dashboards()
        .into_iter()
        .find(|(path, _)| path.ends_with(file))
        .unwrap_or_else(|| panic!("{file}"))
        .1
}

fn exprs(panel: &Value) -> Vec<&str> {
    panel["targets"].as_array().into_iter().flatten().map(|t| t["expr"].as_str().unwrap()).collect()
}

fn expr_of<'a>(panel: &'a Value, ref_id: &str) -> &'a str {
    let targets = panel["targets"].as_array().unwrap();
    targets
        .iter()
        .find(|t| t["refId"] == ref_id)
        .unwrap_or_else(|| panic!("{}: no query {ref_id}", panel["title"]))["expr"]
        .as_str()
        .unwrap()
}

/// Panels that show one value per series as of now (the end of the time range).
fn shows_now(panel: &Value) -> bool {
    ["stat", "gauge", "bargauge", "table"].contains(&panel["type"].as_str().unwrap())
}

/// The API-health series, labelled {server, api}.
const HEALTH: [&str; 7] = [
    "wolkvox_up{",
    "wolkvox_last_success_timestamp_seconds",
    "wolkvox_last_poll_duration_seconds",
    "wolkvox_poll_interval_seconds",
    "wolkvox_api_request",
    "wolkvox_rows",
    "wolkvox_month_end_timestamp_seconds",
];

/// Optional features: a metric that only exists with the feature, and the setting to name.
const OPTIONAL: [(&str, &str); 6] = [
    ("wolkvox_billing_budget", "budgets:"),
    ("wolkvox_token_daily_call_budget", "--wolkvox.daily-call-budget"),
    ("wolkvox_token_info_", "--wolkvox.token-info"),
    ("wolkvox_estimated_cost", "prices:"),
    ("wolkvox_unit_price", "prices:"),
    ("wolkvox_cost_limit", "cost_limits:"),
];

/// Whether `expr` selects a metric whose name starts with `prefix` (`prefix…{`), not merely
/// names it in a regular expression.
fn selects(expr: &str, prefix: &str) -> bool {
    expr.match_indices(prefix).any(|(at, _)| {
        let rest = &expr[at + prefix.len()..];
        rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_').starts_with('{')
    })
}

const FINANCE_COLUMNS: [&str; 5] =
    ["Now", "Month's peak", "Contract", "% of contract", "Last month's final peak"];

#[test]
fn dashboards_are_provisionable_with_a_datasource_variable_and_stable_uid() {
    let mut uids = Vec::new();
    for (path, dashboard) in dashboards() {
        let name = path.display();
        let uid = dashboard["uid"].as_str().unwrap_or_default();
        assert!(!uid.is_empty() && uid.len() <= 40, "{name}: uid");
        uids.push(uid.to_owned());
        assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}: title");
        assert!(dashboard["tags"].as_array().is_some_and(|t| !t.is_empty()), "{name}: tags");
        assert!(
            dashboard["time"]["from"].is_string() && dashboard["refresh"].is_string(),
            "{name}: time range and refresh"
        );
        assert!(dashboard["id"].is_null(), "{name}: id must be null so any Grafana can import it");
        let variables = dashboard["templating"]["list"].as_array().unwrap();
        let datasource =
            variables.iter().find(|v| v["name"] == "datasource").expect("a datasource variable");
        assert_eq!(datasource["type"], "datasource");
        assert_eq!(datasource["query"], "prometheus");
        for name in ["job", "server"] {
            let variable = variables
                .iter()
                .find(|v| v["name"] == name)
                .unwrap_or_else(|| panic!("{name} variable"));
            assert_eq!(variable["datasource"]["uid"], "${datasource}");
            assert!(variable["query"]["query"].as_str().unwrap().starts_with("label_values("));
        }
    }
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), dashboards().len(), "uids must be unique");
}

/// Billing is monthly: the default range is the month so far, and one job is shown at a time (two
/// jobs scraping one exporter would count everything twice).
#[test]
fn the_month_so_far_of_one_job() {
    for (path, dashboard) in dashboards() {
        let name = path.display();
        assert_eq!(
            dashboard["time"],
            json!({"from": "now/M", "to": "now"}),
            "{name}: default range: this month so far"
        );
        let variables = dashboard["templating"]["list"].as_array().unwrap();
        let job = variables.iter().find(|v| v["name"] == "job").unwrap();
        assert_eq!(job["multi"], false, "{name}: $job must be single-select");
        assert_eq!(job["includeAll"], false, "{name}: $job must not offer All");
    }
}

#[test]
fn every_panel_has_a_title_a_unit_a_description_and_the_datasource_variable() {
    for (path, dashboard) in dashboards() {
        let mut ids = Vec::new();
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or_default();
            let at = format!("{}: panel {title:?}", path.display());
            assert!(!title.is_empty(), "{at}: title");
            assert!(
                panel["description"].as_str().is_some_and(|d| !d.is_empty() && !d.contains('\n')),
                "{at}: one-line description"
            );
            assert!(
                panel["fieldConfig"]["defaults"]["unit"].as_str().is_some_and(|u| !u.is_empty()),
                "{at}: unit"
            );
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{at}: datasource");
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{at}: no query");
            for target in targets {
                assert_eq!(target["datasource"]["uid"], "${datasource}", "{at}: target datasource");
            }
            ids.push(panel["id"].as_u64().expect("panel id"));
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "{}: panel ids must be unique", path.display());
    }
}

/// The label lists of every `by (...)` clause in `expr`.
fn by_clauses(expr: &str) -> Vec<&str> {
    expr.match_indices("by (")
        .map(|(at, _)| &expr[at + 4..at + 4 + expr[at + 4..].find(')').unwrap()])
        .collect()
}

/// The range of every `function(`'s range selector, e.g. `1d` in `increase(x{…}[1d] offset -1d)`,
/// with what follows it up to the closing parenthesis.
fn ranges<'a>(expr: &'a str, function: &str) -> Vec<(&'a str, &'a str)> {
    expr.match_indices(function)
        .map(|(at, _)| {
            let rest = &expr[at..];
            let open =
                rest.find('[').unwrap_or_else(|| panic!("{function} without a range in {expr}"));
            let close = open + rest[open..].find(']').unwrap();
            let after = &rest[close + 1..];
            (&rest[open + 1..close], after[..after.find(')').unwrap()].trim())
        })
        .collect()
}

#[test]
fn queries_aggregate_honour_the_variables_and_keep_the_server() {
    for (path, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            for expr in exprs(panel) {
                let at = format!("{}: {expr}", path.display());
                assert!(
                    expr.contains("sum") || expr.contains("min by") || expr.contains("max by"),
                    "{at}: aggregate"
                );
                // Token series have no server: the token is their selection.
                let tokens = expr.contains("wolkvox_token_");
                let selection = if tokens { "$token_name" } else { "$server" };
                for variable in ["$job", selection] {
                    assert!(expr.contains(variable), "{at}: ignores {variable}");
                }
                if expr.contains("wolkvox_gamification_licenses") {
                    for variable in ["$operation", "$description"] {
                        assert!(expr.contains(variable), "{at}: ignores {variable}");
                    }
                }
                // Two servers may hold operations of the same name: never add them up unseen.
                for labels in by_clauses(expr) {
                    let kept = if tokens { "token_name" } else { "server" };
                    assert!(
                        labels.split(',').any(|l| l.trim() == kept),
                        "{at}: by ({labels}) drops {kept}"
                    );
                }
                // Gauges from two scrapes of one exporter (a restart overlap, two scrape configs)
                // are one value: deduplicated with max before they are added up.
                if expr.contains("sum") && !expr.contains("increase(") {
                    assert!(
                        expr.contains("sum(max by (job, server")
                            || expr.contains("(max by (job, server"),
                        "{at}: sum without max over instances"
                    );
                }
                for (window, _) in ranges(expr, "rate(") {
                    assert_eq!(window, "$__rate_interval", "{at}: rate() without $__rate_interval");
                }
                assert!(
                    !expr.contains("$__interval") && !expr.contains("$__range"),
                    "{at}: a window that changes with zoom"
                );
            }
        }
    }
}

/// "This month" (`now/M`) starts when the billing month does: at midnight in the exporter's default
/// zone, not in the viewer's browser's (the figures follow the target's zone).
#[test]
fn the_dashboards_months_start_in_the_targets_zone() {
    for (path, dashboard) in dashboards() {
        assert_eq!(
            dashboard["timezone"],
            "America/Bogota",
            "{}: the month would start in the viewer's zone",
            path.display()
        );
    }
}

/// Bars count a fixed day, whatever the zoom: `increase(…[1d] offset -1d)` at a step of one day,
/// so the bar at a day's midnight counts that day (today's so far).
#[test]
fn bars_count_a_fixed_window_at_a_step_of_the_same_length() {
    let mut bars = 0;
    for (path, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            let at = format!("{}: panel {}", path.display(), panel["title"]);
            let is_bars = panel["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars";
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for (window, after) in ranges(expr, "increase(") {
                    assert!(is_bars, "{at}: increase() outside a bar chart");
                    assert!(
                        !window.contains('$'),
                        "{at}: increase() over a variable window {window}"
                    );
                    assert_eq!(
                        panel["interval"], window,
                        "{at}: min interval must equal the window {window}"
                    );
                    assert_eq!(
                        target["interval"], window,
                        "{at}: min step must equal the window {window}"
                    );
                    assert_eq!(
                        after,
                        format!("offset -{window}"),
                        "{at}: a bar at a day's start counts that day"
                    );
                    bars += 1;
                }
            }
            if is_bars {
                assert_eq!(
                    panel["fieldConfig"]["defaults"]["custom"]["barAlignment"], 1,
                    "{at}: the bar stands after its timestamp"
                );
            }
        }
    }
    assert!(bars >= 5, "only {bars} bar queries");
}

/// Grafana's default when a panel sets none: green, red from 80.
fn is_grafana_default(steps: &Value) -> bool {
    *steps == json!([{"color": "green", "value": null}, {"color": "red", "value": 80}])
}

fn colours(defaults: &Value) -> Vec<&str> {
    let steps =
        defaults["thresholds"]["steps"].as_array().into_iter().flatten().map(|s| &s["color"]);
    let mapped = defaults["mappings"].as_array().into_iter().flatten().flat_map(|m| {
        let results: Vec<&Value> = match m["options"]["result"].is_object() {
            true => vec![&m["options"]["result"]["color"]],
            false => {
                m["options"].as_object().into_iter().flatten().map(|(_, r)| &r["color"]).collect()
            }
        };
        results
    });
    steps.chain(mapped).filter_map(Value::as_str).collect()
}

#[test]
fn every_stat_gauge_and_bar_gauge_colours_its_value_explicitly_and_reads_now() {
    let mut checked = 0;
    for (path, dashboard) in dashboards() {
        for panel in panels(&dashboard).into_iter().filter(|p| shows_now(p)) {
            let at = format!("{}: panel {}", path.display(), panel["title"]);
            let defaults = &panel["fieldConfig"]["defaults"];
            let steps = &defaults["thresholds"]["steps"];
            assert!(
                steps.as_array().is_some_and(|s| !s.is_empty()),
                "{at}: no thresholds: Grafana's green/red-at-80 would colour it"
            );
            assert!(!is_grafana_default(steps), "{at}: Grafana's default thresholds");
            assert_eq!(defaults["color"]["mode"], "thresholds", "{at}: colour by the thresholds");
            // A series the exporter expired must disappear, not keep its last value for days.
            for target in panel["targets"].as_array().unwrap() {
                assert!(
                    target["instant"] == true && target["range"] == false,
                    "{at}: {} must be an instant query",
                    target["refId"]
                );
                if panel["type"] == "table" {
                    assert_eq!(target["format"], "table", "{at}: table format");
                }
            }
            // Red only where the value is a failure, a contract or a cost limit passed; counts
            // and costs are one colour: a cost is neither good nor bad by itself.
            let all = exprs(panel).join(" ");
            let about_failure = [
                "wolkvox_up{",
                "wolkvox_last_success_timestamp_seconds",
                "wolkvox_billing_budget",
                "wolkvox_cost_limit",
            ]
            .iter()
            .any(|m| all.contains(m));
            if colours(defaults).contains(&"red") {
                assert!(about_failure, "{at}: red on a value that is no failure");
            }
            let counts = [
                "_licenses",
                "wolkvox_rows",
                "_max",
                "wolkvox_token_call_spacing",
                "wolkvox_estimated_cost",
                "wolkvox_unit_price",
            ]
            .iter()
            .any(|m| all.contains(m));
            if counts && !about_failure {
                assert_eq!(
                    steps.as_array().unwrap().len(),
                    1,
                    "{at}: a count gets one neutral colour"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} panels");
}

#[test]
fn shares_run_from_zero_to_a_hundred_percent_and_turn_red_only_past_the_contract() {
    let mut shares = 0;
    for (path, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            let at = format!("{}: panel {}", path.display(), panel["title"]);
            let defaults = &panel["fieldConfig"]["defaults"];
            // The table's share column carries its own unit in an override.
            let mut configs = vec![defaults.clone()];
            for o in panel["fieldConfig"]["overrides"].as_array().unwrap() {
                let mut config = json!({});
                for p in o["properties"].as_array().unwrap() {
                    config[p["id"].as_str().unwrap()] = p["value"].clone();
                }
                configs.push(config);
            }
            for config in configs {
                let max = match config["unit"].as_str() {
                    Some("percentunit") => 1,
                    Some("percent") => 100,
                    _ => continue,
                };
                assert_eq!(config["min"], 0, "{at}: a share starts at 0");
                assert_eq!(config["max"], max, "{at}: a share ends at 100%");
                for step in config["thresholds"]["steps"].as_array().into_iter().flatten() {
                    if step["color"] == "red" {
                        assert!(
                            step["value"].as_f64().is_some_and(|v| v >= f64::from(max)),
                            "{at}: red below 100%"
                        );
                    }
                }
                shares += 1;
            }
        }
    }
    assert!(shares >= 5, "only {shares} shares");
}

#[test]
fn polling_panels_say_failing_in_red_and_ok_in_green() {
    let mut checked = 0;
    for (path, dashboard) in dashboards() {
        for panel in panels(&dashboard)
            .into_iter()
            .filter(|p| exprs(p).iter().any(|e| e.contains("wolkvox_up{")))
        {
            if !shows_now(panel) || panel["type"] == "table" {
                continue;
            }
            let at = format!("{}: panel {}", path.display(), panel["title"]);
            let defaults = &panel["fieldConfig"]["defaults"];
            let values = defaults["mappings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["type"] == "value")
                .expect("a value mapping");
            assert_eq!(values["options"]["0"]["color"], "red", "{at}: 0 in red");
            assert_eq!(values["options"]["0"]["text"], "failing", "{at}: 0 says failing");
            assert_eq!(values["options"]["1"]["color"], "green", "{at}: 1 in green");
            assert_eq!(values["options"]["1"]["text"], "ok", "{at}: 1 says ok");
            assert_eq!(
                defaults["thresholds"]["steps"],
                json!([{"color": "red", "value": null}, {"color": "green", "value": 1}]),
                "{at}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2);
}

/// Health is per API (token_info's success says nothing about billing data), and the worst wins:
/// the lowest wolkvox_up, the oldest last success.
#[test]
fn health_panels_pick_their_api_and_show_the_worst() {
    for (path, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            for expr in exprs(panel) {
                let at = format!("{}: {expr}", path.display());
                let mentioned: Vec<&str> =
                    HEALTH.iter().copied().filter(|m| expr.contains(m)).collect();
                if mentioned.is_empty() {
                    continue;
                }
                for metric in mentioned {
                    for selector in expr
                        .match_indices(metric)
                        .map(|(at, _)| &expr[at..at + expr[at..].find('}').unwrap()])
                    {
                        assert!(
                            selector.contains("api=\"") || selector.contains("api=~\"$api\""),
                            "{at}: {selector} mixes every API"
                        );
                    }
                }
                if expr.contains("wolkvox_up{")
                    && !expr.contains("and on (job, server, api) wolkvox_up{")
                {
                    assert!(expr.starts_with("min by ("), "{at}: the worst wolkvox_up is the min");
                }
                for (at_selector, _) in expr.match_indices("wolkvox_last_success_timestamp_seconds")
                {
                    let before = &expr[..at_selector];
                    assert!(
                        before.ends_with("min by (job, server) (max without (instance, pod) (")
                            || before.ends_with(
                                "min by (job, server, api) (max without (instance, pod) ("
                            ),
                        "{at}: the oldest last success is the min"
                    );
                }
            }
        }
    }
}

#[test]
fn panels_of_optional_features_say_what_to_configure_when_empty() {
    let mut checked = 0;
    for (path, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            let exprs = exprs(panel);
            for (metric, setting) in OPTIONAL {
                if exprs.iter().all(|e| selects(e, metric)) {
                    let at = format!("{}: panel {}", path.display(), panel["title"]);
                    let no_value =
                        panel["fieldConfig"]["defaults"]["noValue"].as_str().unwrap_or_default();
                    assert!(
                        no_value.contains(setting),
                        "{at}: noValue must say to set {setting}, not {no_value:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 5, "only {checked} panels of optional features");
}

#[test]
fn legends_offer_no_max_to_mistake_for_the_months_peak() {
    for (path, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            let calcs = panel["options"]["legend"]["calcs"].as_array().into_iter().flatten();
            for calc in calcs {
                assert_ne!(
                    calc,
                    "max",
                    "{}: panel {}: a legend max reads as the month's peak",
                    path.display(),
                    panel["title"]
                );
            }
        }
    }
}

fn finance_table(dashboard: &Value) -> &Value {
    panels(dashboard)
        .into_iter()
        .find(|p| {
            p["type"] == "table"
                && p["transformations"].to_string().contains("Last month's final peak")
        })
        .expect("a finance table")
}

#[test]
fn each_dashboard_has_a_finance_table_with_its_columns() {
    for (path, dashboard) in dashboards() {
        let table = finance_table(&dashboard);
        let at = format!("{}: panel {}", path.display(), table["title"]);
        let transformations = table["transformations"].as_array().unwrap();
        assert_eq!(transformations[0]["id"], "merge", "{at}: one row per series from every query");
        let organize = &transformations[1];
        assert_eq!(organize["id"], "organize", "{at}");
        let renames = &organize["options"]["renameByName"];
        for (i, column) in FINANCE_COLUMNS.iter().enumerate() {
            let value_field = format!("Value #{}", ['A', 'B', 'C', 'D', 'E'][i]);
            assert_eq!(renames[&value_field], *column, "{at}: {value_field}");
        }
        for label in ["server", "operation", "description"] {
            assert!(renames[label].is_string(), "{at}: a column for {label}");
        }
        assert_eq!(organize["options"]["excludeByName"]["Time"], true, "{at}: no Time column");
        let peak = expr_of(table, "B");
        assert!(peak.contains("_max"), "{at}: the month's peak is the _max series");
        assert!(expr_of(table, "C").contains("wolkvox_billing_budget{"), "{at}: the contract");
        assert!(
            expr_of(table, "D").contains("wolkvox_billing_budget_used{")
                && expr_of(table, "D").contains(" / "),
            "{at}: the share"
        );
        let last = expr_of(table, "E");
        assert!(
            last.contains("_max")
                && last.contains("wolkvox_month_end_timestamp_seconds")
                && last.contains("@ end()"),
            "{at}: last month"
        );
        let overrides = table["fieldConfig"]["overrides"].to_string();
        assert!(
            overrides.contains("\"% of contract\"") && overrides.contains("percentunit"),
            "{at}: the share's unit"
        );
        assert!(overrides.contains("\"no budget\""), "{at}: an empty contract says why");
    }
}

// --- The PromQL itself, through promtool ----------------------------------------------------------

/// A dashboard query with its variables set for a promtool test: every server, operation, product.
fn for_promtool(expr: &str, api: &str) -> String {
    expr.replace("$job", "wolkvox")
        .replace("$server", ".*")
        .replace("$operation", ".*")
        .replace("$description", ".*")
        .replace("$token_name", ".*")
        .replace("$api", api)
}

/// Runs promtool's unit tests on `series` (name → values, 1h apart from 1970-01-01 00:00 UTC) and
/// `cases` (an expression evaluated at a time, and the samples expected); JSON is YAML.
fn promtool_test(series: &[(String, String)], cases: Vec<Value>) {
    let Some(promtool) = tools::tool("promtool") else { return };
    let dir = tools::temp_dir("dashboard-promql");
    let input: Vec<Value> = series.iter().map(|(s, v)| json!({"series": s, "values": v})).collect();
    let file = json!({
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1h", "input_series": input, "promql_expr_test": cases}],
    });
    let path = dir.join("test.yml");
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let (ok, output) = tools::run_tool(&promtool, &["test", "rules", path.to_str().unwrap()], None);
    assert!(ok, "{output}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn case(expr: &str, hours: u32, expected: &[(&str, f64)]) -> Value {
    let samples: Vec<Value> =
        expected.iter().map(|(labels, value)| json!({"labels": labels, "value": value})).collect();
    json!({"expr": expr, "eval_time": format!("{hours}h"), "exp_samples": samples})
}

/// In America/Bogota (UTC-5) January 1970 ends at hour 749 (Feb 1 05:00 UTC) and February at hour
/// 1421. The exporter's pod restarts on February 15th (hour 1100): a new instance label.
fn month_end_series(api: &str) -> Vec<(String, String)> {
    vec![
        (
            format!(
                "wolkvox_month_end_timestamp_seconds{{job='wolkvox', instance='a', server='0042', api='{api}'}}"
            ),
            "2696400x748 5115600x351".into(),
        ),
        (
            format!(
                "wolkvox_month_end_timestamp_seconds{{job='wolkvox', instance='b', server='0042', api='{api}'}}"
            ),
            "_x1099 5115600x321 7794000x279".into(),
        ),
    ]
}

/// January peaks at 40, February at 25 (20 before the restart), March starts at 3. The `_max`
/// series lags the month's start by a poll: it still holds the old month's peak at hour 749.
fn peak_series(metric: &str, labels: &str) -> Vec<(String, String)> {
    vec![
        (
            format!("{metric}{{job='wolkvox', instance='a', server='0042', {labels}}}"),
            "10x400 40x348 5x300 20x49".into(),
        ),
        (
            format!("{metric}{{job='wolkvox', instance='b', server='0042', {labels}}}"),
            "_x1099 20x50 25x270 3x279".into(),
        ),
    ]
}

#[test]
fn last_months_final_peak_is_the_peak_just_before_the_month_rolled_over_in_the_targets_zone() {
    let gamification = dashboard("wolkvox-gamification.json");
    let expr = for_promtool(expr_of(finance_table(&gamification), "E"), ".*");
    let mut series = month_end_series("gamification");
    series.extend(peak_series(
        "wolkvox_gamification_licenses_max",
        "operation='ventas', description='Gamification'",
    ));
    let row = "{job='wolkvox', server='0042', operation='ventas', description='Gamification'}";
    promtool_test(
        &series,
        vec![
            case(&expr, 745, &[]), // January 30th, 20:00 in Bogota: no December in the data
            case(&expr, 752, &[(row, 40.0)]), // February 1st, 02:00 in Bogota
            case(&expr, 960, &[(row, 40.0)]), // February 10th
            case(&expr, 1420, &[(row, 40.0)]), // the last hour of February
            case(&expr, 1425, &[(row, 25.0)]), // March: February's, from the pod that replaced the first
            case(&expr, 1700, &[(row, 25.0)]), // March 12th: not January's higher peak
        ],
    );

    // Named from its metric, one API at a time (promtool allows 10,000 samples a query).
    let billing = dashboard("wolkvox-billing-overview.json");
    let expr = |api: &str| for_promtool(expr_of(finance_table(&billing), "E"), api);
    for (api, other, metric, product) in [
        ("tts_chars", "chat_licenses", "wolkvox_tts_characters_max", "TTS"),
        ("chat_licenses", "tts_chars", "wolkvox_chat_licenses_max", "Chat"),
    ] {
        let mut series = month_end_series(api);
        series.extend(peak_series(metric, &format!("operation='ventas', description='{product}'")));
        let row = format!(
            "{{job='wolkvox', server='0042', api='{api}', operation='ventas', description='{product}'}}"
        );
        promtool_test(
            &series,
            vec![
                case(&expr(".*"), 960, &[(&row, 40.0)]),
                case(&expr(".*"), 1700, &[(&row, 25.0)]),
                case(&expr(api), 1700, &[(&row, 25.0)]),
                case(&expr(other), 1700, &[]), // $api picks another API
            ],
        );
    }
}

fn cost_table(dashboard: &Value) -> &Value {
    panels(dashboard)
        .into_iter()
        .find(|p| p["type"] == "table" && p["title"] == "Estimated cost per operation")
        .expect("the cost table")
}

/// The money beside the units: the month's cost per currency, the cost centres' table (this month,
/// last month, the contract at its prices), the last 12 months in money, and what to configure
/// when no price is set.
#[test]
fn the_billing_overview_shows_the_estimated_cost_and_says_when_no_price_is_set() {
    let billing = dashboard("wolkvox-billing-overview.json");
    let find = |title: &str| {
        panels(&billing)
            .into_iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("no panel {title:?}"))
    };
    let total = find("Estimated cost this month, per currency");
    assert_eq!(total["type"], "stat");
    assert!(by_clauses(expr_of(total, "A")).iter().any(|b| b.contains("currency")), "per currency");

    let table = cost_table(&billing);
    let renames = &table["transformations"][1]["options"]["renameByName"];
    for (value, column) in [
        ("Value #A", "This month (so far)"),
        ("Value #B", "Last month"),
        ("Value #C", "Contract at its prices"),
    ] {
        assert_eq!(renames[value], column, "{value}");
    }
    for label in ["server", "operation", "currency"] {
        assert!(renames[label].is_string(), "a column for {label}");
    }
    assert!(expr_of(table, "C").contains("wolkvox_billing_budget{"), "the contract");
    assert!(expr_of(table, "C").contains("wolkvox_unit_price{"), "at its prices");

    let months = find("Estimated cost per operation and month, the last 12 months");
    assert_eq!(months["timeFrom"], "1y");
    let targets = months["targets"].as_array().unwrap();
    assert_eq!(targets.len(), CHARGEBACK_MONTHS);
    let gamification = dashboard("wolkvox-gamification.json");
    let units = chargeback_table(&gamification);
    for k in 0..CHARGEBACK_MONTHS {
        let ref_id = chargeback_ref_id(k);
        let expr = expr_of(months, &ref_id);
        assert!(selects(expr, "wolkvox_estimated_cost"), "{ref_id}: {expr}");
        // The same month as the chargeback in units: the same window, the same month ends.
        assert_eq!(
            chargeback_window(expr),
            chargeback_window(expr_of(units, &ref_id)),
            "{ref_id}: another window than the units'"
        );
        assert!(expr.contains(&format!(") / {MONTH_SECONDS}) == {k})")), "{ref_id}: {expr}");
        let renamed = &months["transformations"][1]["options"]["renameByName"];
        assert_eq!(renamed[format!("Value #{ref_id}")], chargeback_column(k).as_str());
    }

    // No price: a 0, not an empty panel, that says what to set and where it is documented.
    let priced = find("Priced series");
    assert!(expr_of(priced, "A").ends_with(" or vector(0)"));
    let zero = &priced["fieldConfig"]["defaults"]["mappings"][0]["options"]["0"]["text"];
    let zero = zero.as_str().unwrap_or_default();
    assert!(zero.contains("prices:") && zero.contains("docs/configuration.md#costs"), "{zero}");
}

/// Last month's cost of an operation: each series' value just before the month rolled over in the
/// target's zone, across a pod restart, added up over the operation's products.
#[test]
fn last_months_cost_is_the_cost_just_before_the_month_rolled_over_in_the_targets_zone() {
    let billing = dashboard("wolkvox-billing-overview.json");
    let expr = for_promtool(expr_of(cost_table(&billing), "B"), ".*");
    let mut series = month_end_series("chat_licenses");
    series.extend(peak_series(
        "wolkvox_estimated_cost",
        "api='chat_licenses', operation='ventas', description='Chat', currency='USD'",
    ));
    series.push((
        "wolkvox_estimated_cost{job='wolkvox', instance='a', server='0042', api='chat_licenses', operation='ventas', description='Premium', currency='USD'}".into(),
        "2x1099".into(),
    ));
    series.push((
        "wolkvox_estimated_cost{job='wolkvox', instance='b', server='0042', api='chat_licenses', operation='ventas', description='Premium', currency='USD'}".into(),
        "_x1099 2x600".into(),
    ));
    let row = "{job='wolkvox', server='0042', operation='ventas', currency='USD'}";
    promtool_test(
        &series,
        vec![
            case(&expr, 745, &[]),             // January 30th in Bogota: no December
            case(&expr, 752, &[(row, 42.0)]),  // February 1st, 02:00 in Bogota
            case(&expr, 1420, &[(row, 42.0)]), // the last hour of February
            case(&expr, 1425, &[(row, 27.0)]), // March: February's, from the new pod
            case(&expr, 1700, &[(row, 27.0)]),
        ],
    );
}

/// The billing overview names each usage metric's API from its name: right for every entry of the
/// catalogue, and honouring $api.
#[test]
fn the_billing_overview_finds_the_api_of_every_catalogue_metric() {
    let billing = dashboard("wolkvox-billing-overview.json");
    let table = finance_table(&billing);
    let usage = panels(&billing)
        .into_iter()
        .find(|p| p["title"] == "Usage of every polled billing API")
        .expect("the usage panel");
    let mut series = Vec::new();
    for (k, api) in APIS.iter().enumerate() {
        let labels = "job='wolkvox', instance='x', server='0042', operation='op', description='d'";
        series.push((format!("{}{{{labels}}}", api.metric), format!("{k}x10")));
        series.push((format!("{}_max{{{labels}}}", api.metric), format!("{}x10", 100 + k)));
        series.push((
            format!("wolkvox_month_end_timestamp_seconds{{job='wolkvox', instance='x', server='0042', api='{}'}}", api.name),
            "1800000000x10".into(),
        ));
    }
    let row = |api: &str| {
        format!("{{job='wolkvox', server='0042', api='{api}', operation='op', description='d'}}")
    };
    let rows: Vec<String> = APIS.iter().map(|api| row(api.name)).collect();
    let lines: Vec<String> = APIS
        .iter()
        .map(|api| format!("{{__name__='{}', {}", api.metric, &row(api.name)[1..]))
        .collect();
    let now: Vec<(&str, f64)> =
        rows.iter().enumerate().map(|(k, r)| (r.as_str(), k as f64)).collect();
    let peak: Vec<(&str, f64)> =
        rows.iter().enumerate().map(|(k, r)| (r.as_str(), (100 + k) as f64)).collect();
    let line: Vec<(&str, f64)> =
        lines.iter().enumerate().map(|(k, r)| (r.as_str(), k as f64)).collect();
    let chat = APIS.iter().position(|a| a.name == "chat_licenses").unwrap();
    let tts = APIS.iter().position(|a| a.name == "tts_chars").unwrap();
    let selected = [(rows[chat].as_str(), chat as f64), (rows[tts].as_str(), tts as f64)];
    promtool_test(
        &series,
        vec![
            case(&for_promtool(expr_of(table, "A"), ".*"), 5, &now),
            case(&for_promtool(expr_of(table, "B"), ".*"), 5, &peak),
            case(&for_promtool(expr_of(usage, "A"), ".*"), 5, &line),
            case(&for_promtool(expr_of(table, "A"), "chat_licenses|tts_chars"), 5, &selected),
        ],
    );
}

// --- The chargeback table: each month's peak, the last 12 months ---------------------------------

/// The months of the chargeback table, this one included.
const CHARGEBACK_MONTHS: usize = 12;

/// An average Gregorian month in seconds (365.2425 days / 12): the gap between two month ends,
/// divided by it and rounded, counts the months between them (the true gap is within 3 days of it).
const MONTH_SECONDS: i64 = 2_629_746;

fn chargeback_ref_id(k: usize) -> String {
    char::from(b'A' + u8::try_from(k).unwrap()).to_string()
}

/// The column of the month `k` months before now's.
fn chargeback_column(k: usize) -> String {
    match k {
        0 => "This month (so far)".to_owned(),
        1 => "1 month ago".to_owned(),
        _ => format!("{k} months ago"),
    }
}

fn chargeback_table(dashboard: &Value) -> &Value {
    panels(dashboard)
        .into_iter()
        .find(|p| {
            p["type"] == "table" && p["title"].as_str().is_some_and(|t| t.starts_with("Chargeback"))
        })
        .expect("a chargeback table")
}

/// The subquery window of a chargeback column: its range, offset and step, from
/// `…)[72d:15m] offset 27d))`.
fn chargeback_window(expr: &str) -> (Duration, Duration, &str) {
    let open = expr.find(")[").unwrap_or_else(|| panic!("no subquery in {expr}")) + 1;
    let close = open + expr[open..].find(']').unwrap();
    let (range, step) = expr[open + 1..close]
        .split_once(':')
        .unwrap_or_else(|| panic!("a subquery without a step in {expr}"));
    let after = &expr[close + 1..];
    let offset = after[..after.find(')').unwrap()].trim();
    let offset = match offset.strip_prefix("offset ") {
        Some(offset) => humantime::parse_duration(offset).unwrap(),
        None => {
            assert!(offset.is_empty(), "{offset:?} after the subquery of {expr}");
            Duration::ZERO
        }
    };
    (humantime::parse_duration(range).unwrap(), offset, step)
}

#[test]
fn the_chargeback_table_has_a_column_per_month_and_a_row_per_server_operation_and_product() {
    let gamification = dashboard("wolkvox-gamification.json");
    let table = chargeback_table(&gamification);
    let at = format!("panel {}", table["title"]);
    // The last year up to now, whatever the dashboard's range: the columns are named from now.
    assert_eq!(table["timeFrom"], "1y", "{at}: a panel time of its own");
    let targets = table["targets"].as_array().unwrap();
    assert_eq!(targets.len(), CHARGEBACK_MONTHS, "{at}: one query per month");
    let transformations = table["transformations"].as_array().unwrap();
    assert_eq!(transformations[0]["id"], "merge", "{at}: one row per series from every query");
    let organize = &transformations[1];
    assert_eq!(organize["id"], "organize", "{at}");
    let renames = &organize["options"]["renameByName"];
    for label in ["server", "operation", "description"] {
        assert!(renames[label].is_string(), "{at}: a column for {label}");
    }
    for hidden in ["Time", "job"] {
        assert_eq!(organize["options"]["excludeByName"][hidden], true, "{at}: no {hidden} column");
    }
    let mut columns = Vec::new();
    for k in 0..CHARGEBACK_MONTHS {
        let ref_id = chargeback_ref_id(k);
        let column = chargeback_column(k);
        assert_eq!(renames[format!("Value #{ref_id}")], column.as_str(), "{at}: query {ref_id}");
        let expr = expr_of(table, &ref_id);
        let at = format!("{at}: {column}: {expr}");
        columns.push(column);
        // The last `_max` of each series in the month (its peak: it resets at the month's start,
        // a poll late), then the highest of the series: backfill and live, a restart's old and
        // new pod, two scrapes of one exporter. This month's is now's value: the subquery's last
        // step is the last quarter hour (or, with nothing scraped now, the month's last value).
        let body =
            expr.strip_prefix("max by (job, server, operation, description) (").unwrap_or_default();
        let last = "last_over_time((wolkvox_gamification_licenses_max{";
        let now = "(wolkvox_gamification_licenses_max{";
        let shape = if k == 0 {
            body.starts_with(now) && body.contains(&format!(")) or {last}"))
        } else {
            body.starts_with(last)
        };
        assert!(shape, "{at}: the last _max of the month, highest over the series");
        // The month is the target's: the one whose end is k months before the end of now's.
        assert!(
            selects(expr, "wolkvox_month_end_timestamp_seconds")
                && expr.contains(
                    "[31d] @ end())) - max by (job, server) (wolkvox_month_end_timestamp_seconds{"
                )
                && expr.contains(&format!(") / {MONTH_SECONDS}) == {k})")),
            "{at}: the month {k} months before now's, from the month ends"
        );
        // Nothing scraped this month: empty, not every month a column off.
        assert!(expr.ends_with("[31d])) > time())"), "{at}: this month's end must be after now");
        // Every zone's midnight falls on a quarter hour: the last step of a month is its end.
        assert_eq!(chargeback_window(expr).2, "15m", "{at}: step");
    }
    columns.sort();
    columns.dedup();
    assert_eq!(columns.len(), CHARGEBACK_MONTHS, "{at}: two columns of one name");
}

/// Each column's fixed window holds the whole of its month, and the month it selects is the one `k`
/// months before now's, on any day of any month of forty years, in zones with half and quarter hours
/// and daylight saving time.
#[test]
fn each_chargeback_column_searches_a_window_holding_its_whole_month_in_any_zone() {
    let gamification = dashboard("wolkvox-gamification.json");
    let table = chargeback_table(&gamification);
    let windows: Vec<(i64, i64)> = (0..CHARGEBACK_MONTHS)
        .map(|k| {
            let (range, offset, _) = chargeback_window(expr_of(table, &chargeback_ref_id(k)));
            (i64::try_from(range.as_secs()).unwrap(), i64::try_from(offset.as_secs()).unwrap())
        })
        .collect();
    for zone in [
        "America/Bogota",
        "America/Santiago",
        "America/St_Johns",
        "Europe/Madrid",
        "Asia/Kathmandu",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
    ] {
        let tz = TimeZone::get(zone).unwrap();
        let starts: Vec<i64> = (2024..2064)
            .flat_map(|year| (1..=12).map(move |month| date(year, month, 1)))
            .map(|first| first.to_zoned(tz.clone()).unwrap().timestamp().as_second())
            .collect();
        for start in &starts {
            assert_eq!(start % 900, 0, "{zone}: a month starts off the 15-minute steps");
        }
        for current in CHARGEBACK_MONTHS..starts.len() - 1 {
            let current_end = starts[current + 1];
            // The first and the last second of the month: the windows slide with now.
            for now in [starts[current], current_end - 1] {
                for (k, (range, offset)) in windows.iter().enumerate() {
                    let (start, end) = (starts[current - k], starts[current - k + 1]);
                    let at = format!(
                        "{zone}, now {}: {}",
                        Timestamp::from_second(now).unwrap(),
                        chargeback_column(k)
                    );
                    let months = ((current_end - end) as f64 / MONTH_SECONDS as f64).round();
                    assert_eq!(months, k as f64, "{at}: the month is counted wrong");
                    assert!(
                        now - offset - range <= start,
                        "{at}: the window starts after the month"
                    );
                    assert!(end.min(now) <= now - offset, "{at}: the window ends before the month");
                }
            }
        }
    }
}

/// Unix seconds of a time of day in `zone`.
fn unix_in(zone: &str, (year, month, day): (i16, i8, i8), hour: i8) -> i64 {
    date(year, month, day)
        .at(hour, 0, 0, 0)
        .to_zoned(TimeZone::get(zone).unwrap())
        .unwrap()
        .timestamp()
        .as_second()
}

/// What `wolkvox_month_end_timestamp_seconds` says at `unix`: the first instant of the next month
/// in `zone`.
fn month_end_in(zone: &str, unix: i64) -> f64 {
    let tz = TimeZone::get(zone).unwrap();
    let next = Timestamp::from_second(unix)
        .unwrap()
        .to_zoned(tz.clone())
        .date()
        .last_of_month()
        .tomorrow()
        .unwrap();
    next.to_zoned(tz).unwrap().timestamp().as_second() as f64
}

/// Gauges sampled every 5 minutes, written as OpenMetrics: what `wolkvox_exporter backfill`
/// writes, and what the live exporter's scrapes store.
#[derive(Default)]
struct History(BTreeMap<&'static str, Vec<String>>);

impl History {
    fn add(
        &mut self,
        name: &'static str,
        labels: &str,
        from: i64,
        to: i64,
        value: impl Fn(i64) -> f64,
    ) {
        let lines = self.0.entry(name).or_default();
        lines.extend(
            (from..to).step_by(300).map(|t| format!("{name}{{{labels}}} {} {t}", value(t))),
        );
    }

    fn openmetrics(&self) -> String {
        let mut text = String::new();
        for (name, lines) in &self.0 {
            text.push_str(&format!("# TYPE {name} gauge\n"));
            for line in lines {
                text.push_str(line);
                text.push('\n');
            }
        }
        text + "# EOF\n"
    }
}

const BOGOTA: &str = "America/Bogota";

/// Server 0042 bills in Bogota (UTC-5). Its history from January to mid-February 2026 is
/// backfilled (no instance label), then pod a serves it live (overlapping the backfill), and pod b
/// from February 15th (overlapping pod a for an hour). January peaks at 40 on the 31st at 21:00,
/// which is already February 1st in UTC; February at 25 (20 before the restart); March, a lower
/// month, at 12; April so far at 7, since 11:05 on the 10th. Its Premium product starts live, and
/// pod b lost its state: February's 30 is only in pod a's series. Server 0077 bills in UTC, where
/// that same instant is in February. `_max` resets a poll (5 minutes) after the month's start, as
/// the exporter's does.
fn chargeback_history() -> History {
    let bogota = |day: (i16, i8, i8), hour: i8| unix_in(BOGOTA, day, hour);
    let utc = |day: (i16, i8, i8), hour: i8| unix_in("UTC", day, hour);
    let mut history = History::default();
    let month_end = "wolkvox_month_end_timestamp_seconds";
    let peak = "wolkvox_gamification_licenses_max";
    let bogota_end = |t| month_end_in(BOGOTA, t);
    let gamification = move |t| match t {
        t if t < bogota((2026, 1, 31), 21) => 10.0,
        t if t <= bogota((2026, 2, 1), 0) => 40.0,
        t if t < bogota((2026, 2, 12), 0) => 5.0,
        t if t < bogota((2026, 2, 20), 0) => 20.0,
        t if t <= bogota((2026, 3, 1), 0) => 25.0,
        t if t < bogota((2026, 3, 20), 0) => 3.0,
        t if t <= bogota((2026, 4, 1), 0) => 12.0,
        t if t < bogota((2026, 4, 10), 11) + 5 * 60 => 6.0,
        _ => 7.0,
    };
    let backfill = (bogota((2026, 1, 1), 0), bogota((2026, 2, 11), 0));
    let pod_a = (bogota((2026, 2, 10), 0), bogota((2026, 2, 15), 12));
    let pod_b = (bogota((2026, 2, 15), 11), bogota((2026, 4, 10), 12));
    for (instance, (from, to)) in
        [("", backfill), ("instance=\"a\",", pod_a), ("instance=\"b\",", pod_b)]
    {
        let labels = format!("job=\"wolkvox\",{instance}server=\"0042\"");
        history.add(month_end, &format!("{labels},api=\"gamification\""), from, to, bogota_end);
        history.add(
            peak,
            &format!("{labels},operation=\"ventas\",description=\"Gamification\""),
            from,
            to,
            gamification,
        );
    }
    let premium = "job=\"wolkvox\",instance=\"{}\",server=\"0042\",operation=\"ventas\",description=\"Premium\"";
    history.add(peak, &premium.replace("{}", "a"), pod_a.0, pod_a.1, |t| {
        if t < bogota((2026, 2, 12), 0) { 6.0 } else { 30.0 }
    });
    history.add(peak, &premium.replace("{}", "b"), pod_b.0, pod_b.1, |t| match t {
        t if t <= bogota((2026, 3, 1), 0) => 8.0,
        t if t <= bogota((2026, 4, 1), 0) => 9.0,
        _ => 4.0,
    });
    let (from, to) = (utc((2026, 1, 20), 0), pod_b.1);
    let labels = "job=\"wolkvox\",instance=\"c\",server=\"0077\"";
    history.add(month_end, &format!("{labels},api=\"gamification\""), from, to, |t| {
        month_end_in("UTC", t)
    });
    history.add(
        peak,
        &format!("{labels},operation=\"ventas\",description=\"Gamification\""),
        from,
        to,
        move |t| match t {
            t if t <= utc((2026, 2, 1), 0) => 11.0,
            t if t < utc((2026, 2, 1), 2) => 2.0,
            t if t <= utc((2026, 3, 1), 0) => 13.0,
            t if t <= utc((2026, 4, 1), 0) => 6.0,
            _ => 1.0,
        },
    );
    history
}

/// Each column of the chargeback table holds exactly its month's peak, in the target's zone,
/// across backfilled and live history, a restart, duplicate series and a lower later month; and
/// still does when nothing was scraped for days.
#[tokio::test]
async fn each_chargeback_column_is_its_months_peak_in_the_targets_zone_from_backfilled_and_live_history()
 {
    let (Some(promtool), Some(binary)) = (tools::tool("promtool"), tools::tool("prometheus"))
    else {
        return;
    };
    let dir = tools::temp_dir("chargeback");
    let (input, tsdb) = (dir.join("history.om"), dir.join("tsdb"));
    std::fs::write(&input, chargeback_history().openmetrics()).unwrap();
    // Blocks of up to 100 days: promtool's default of 2 hours makes a thousand of them.
    let args = [
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        "--quiet",
        "--max-block-duration=2400h",
        input.to_str().unwrap(),
        tsdb.to_str().unwrap(),
    ];
    let (made, log) = tools::run_tool(&promtool, &args, None);
    assert!(made, "{log}");
    let prometheus = tools::Prometheus::start_on_tsdb(&binary, &tsdb).await;

    let gamification = dashboard("wolkvox-gamification.json");
    let table = chargeback_table(&gamification);
    let bogota = |day: (i16, i8, i8), hour: i8| unix_in(BOGOTA, day, hour);
    type Row = (&'static str, &'static str, [Option<f64>; 4]);
    // Server, product, and its peaks this month, 1, 2 and 3 months ago; none further back.
    let april: [Row; 3] = [
        ("0042", "Gamification", [Some(7.0), Some(12.0), Some(25.0), Some(40.0)]),
        ("0042", "Premium", [Some(4.0), Some(9.0), Some(30.0), None]),
        ("0077", "Gamification", [Some(1.0), Some(6.0), Some(13.0), Some(11.0)]),
    ];
    let cases: [(&str, i64, &[Row]); 8] = [
        ("April 10th, the last samples", bogota((2026, 4, 10), 12), &april),
        (
            "April 10th, 11:10: a peak newer than the last quarter hour",
            bogota((2026, 4, 10), 11) + 10 * 60,
            &april,
        ),
        ("April 20th, nothing scraped for ten days", bogota((2026, 4, 20), 0), &april),
        (
            "April 1st, 01:00 in Bogota",
            bogota((2026, 4, 1), 1),
            &[
                ("0042", "Gamification", [Some(6.0), Some(12.0), Some(25.0), Some(40.0)]),
                ("0042", "Premium", [Some(4.0), Some(9.0), Some(30.0), None]),
                ("0077", "Gamification", [Some(1.0), Some(6.0), Some(13.0), Some(11.0)]),
            ],
        ),
        (
            "March 31st, 23:00 in Bogota: April in UTC",
            bogota((2026, 3, 31), 23),
            &[
                ("0042", "Gamification", [Some(12.0), Some(25.0), Some(40.0), None]),
                ("0042", "Premium", [Some(9.0), Some(30.0), None, None]),
                ("0077", "Gamification", [Some(1.0), Some(6.0), Some(13.0), Some(11.0)]),
            ],
        ),
        (
            "February 14th, pod a",
            bogota((2026, 2, 14), 0),
            &[
                ("0042", "Gamification", [Some(20.0), Some(40.0), None, None]),
                ("0042", "Premium", [Some(30.0), None, None, None]),
                ("0077", "Gamification", [Some(13.0), Some(11.0), None, None]),
            ],
        ),
        (
            "February 1st, 01:00 in Bogota, from the backfill",
            bogota((2026, 2, 1), 1),
            &[
                ("0042", "Gamification", [Some(5.0), Some(40.0), None, None]),
                ("0077", "Gamification", [Some(13.0), Some(11.0), None, None]),
            ],
        ),
        ("May 2nd: nothing this month, so no column can be named", bogota((2026, 5, 2), 0), &[]),
    ];
    for (when, at, rows) in cases {
        for k in 0..CHARGEBACK_MONTHS {
            let expr = for_promtool(expr_of(table, &chargeback_ref_id(k)), "gamification");
            let got: BTreeMap<(String, String), f64> = prometheus
                .query_at(&expr, at)
                .await
                .iter()
                .map(|sample| {
                    let label = |name: &str| sample["metric"][name].as_str().unwrap().to_owned();
                    (
                        (label("server"), label("description")),
                        sample["value"][1].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect();
            let expected: BTreeMap<(String, String), f64> = rows
                .iter()
                .filter_map(|(server, product, peaks)| {
                    Some(((String::from(*server), String::from(*product)), (*peaks.get(k)?)?))
                })
                .collect();
            assert_eq!(got, expected, "{when}: {}", chargeback_column(k));
        }
    }
    drop(prometheus);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_alert_has_a_section_in_the_runbook() {
    let runbook =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/runbook.md")).unwrap();
    let rules = std::fs::read_to_string(crate::common::tools::repo_path(
        "deploy/prometheus/rules/wolkvox.rules.yml",
    ))
    .unwrap();
    let alerts = crate::common::tools::bundled_alerts();
    assert!(alerts.len() >= 8, "{alerts:?}");
    for alert in alerts {
        assert!(
            runbook.contains(&format!("\n## {alert}\n")),
            "docs/runbook.md has no section for {alert}"
        );
        assert!(
            rules.contains(&format!("\"docs/runbook.md#{}\"", alert.to_lowercase())),
            "{alert}'s runbook_url does not point at its section"
        );
    }
}
