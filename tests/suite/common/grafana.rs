//! The dashboards of dashboards/ as Grafana reads them: every file, its panels, and what is left of
//! its variables in a query.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// Every dashboard, by path, in the order of their names.
pub(crate) fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut files: Vec<(PathBuf, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("DS_PROMETHEUS"),
                "{}: ${{DS_PROMETHEUS}} breaks file provisioning",
                path.display()
            );
            let value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, value)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!files.is_empty());
    files
}

/// Every panel but rows, those inside collapsed rows included.
pub(crate) fn panels(dashboard: &Value) -> Vec<&Value> {
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

/// A `$name` or `${name}` Grafana would replace; `$1` in label_replace is PromQL's own.
pub(crate) fn unreplaced_variable(promql: &str) -> Option<&str> {
    promql
        .match_indices('$')
        .map(|(at, _)| &promql[at..])
        .find(|rest| rest[1..].starts_with(|c: char| c.is_alphabetic() || c == '_' || c == '{'))
}
