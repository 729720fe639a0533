//! Static checks of every dashboard: provisionable as is, every panel titled, described and with a
//! unit, every query on the datasource variable and honouring the template variables.

use std::path::PathBuf;

use serde_json::Value;

fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut files: Vec<(PathBuf, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains("DS_PROMETHEUS"), "{}: ${{DS_PROMETHEUS}} breaks file provisioning", path.display());
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, value)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!files.is_empty());
    files
}

fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = stack.pop() {
        stack.extend(panel["panels"].as_array().into_iter().flatten());
        if panel["type"] != "row" {
            all.push(panel);
        }
    }
    all
}

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
        assert!(dashboard["time"]["from"].is_string() && dashboard["refresh"].is_string(), "{name}: time range and refresh");
        assert!(dashboard["id"].is_null(), "{name}: id must be null so any Grafana can import it");
        let variables = dashboard["templating"]["list"].as_array().unwrap();
        let datasource = variables.iter().find(|v| v["name"] == "datasource").expect("a datasource variable");
        assert_eq!(datasource["type"], "datasource");
        assert_eq!(datasource["query"], "prometheus");
        for name in ["job", "server"] {
            let variable = variables.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("{name} variable"));
            assert_eq!(variable["datasource"]["uid"], "${datasource}");
            assert!(variable["query"]["query"].as_str().unwrap().starts_with("label_values("));
        }
    }
    uids.sort();
    uids.dedup();
    assert_eq!(uids.len(), dashboards().len(), "uids must be unique");
}

#[test]
fn every_panel_has_a_title_a_unit_a_description_and_the_datasource_variable() {
    for (path, dashboard) in dashboards() {
        let mut ids = Vec::new();
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or_default();
            let at = format!("{}: panel {title:?}", path.display());
            assert!(!title.is_empty(), "{at}: title");
            assert!(panel["description"].as_str().is_some_and(|d| !d.is_empty() && !d.contains('\n')), "{at}: one-line description");
            assert!(panel["fieldConfig"]["defaults"]["unit"].as_str().is_some_and(|u| !u.is_empty()), "{at}: unit");
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

#[test]
fn queries_aggregate_honour_the_variables_and_use_rate_interval() {
    for (path, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let at = format!("{}: {expr}", path.display());
                assert!(expr.contains("sum") || expr.contains("min by") || expr.contains("max by"), "{at}: aggregate");
                // Token series have no server: the token is their selection.
                let selection = if expr.contains("wolkvox_token_") { "$token_name" } else { "$server" };
                for variable in ["$job", selection] {
                    assert!(expr.contains(variable), "{at}: ignores {variable}");
                }
                if expr.contains("wolkvox_gamification_licenses") {
                    for variable in ["$operation", "$description"] {
                        assert!(expr.contains(variable), "{at}: ignores {variable}");
                    }
                }
                for function in ["rate(", "increase("] {
                    if expr.contains(function) {
                        assert!(expr.contains("[$__rate_interval]"), "{at}: {function} without $__rate_interval");
                    }
                }
            }
        }
    }
}

#[test]
fn every_alert_has_a_runbook_section_in_the_readme() {
    let rules = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/rules/wolkvox.rules.yml")).unwrap();
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let alerts: Vec<&str> = rules.lines().filter_map(|line| line.trim().strip_prefix("- alert: ")).collect();
    assert!(alerts.len() >= 8, "{alerts:?}");
    for alert in alerts {
        assert!(readme.contains(&format!("\n#### {alert}\n")), "README has no runbook section for {alert}");
        assert!(rules.contains(&format!("README.md#{}\"", alert.to_lowercase())), "{alert}'s runbook_url does not point at its section");
    }
}
