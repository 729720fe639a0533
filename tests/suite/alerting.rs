//! The alerting bundle beyond promtool's own checks: where the runbook links point (docs/runbook.md) and the script
//! that moves them, what the promtool cases prove, and the example Alertmanager's inhibitions
//! against the real Alertmanager. See tests/suite/common/tools.rs for how a missing tool is treated.

use crate::common;
use crate::common::tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::markdown::github_anchors;
use common::{FAKE_TOKEN, scrape, start_exporter_from_file, wait_all_up, wait_for};
use serde_json::{Value, json};
use tools::{Alertmanager, repo_path, run_tool, temp_dir, tool};
use wolkvox_exporter::simulator::Simulator;

const RULES: &str = "deploy/prometheus/rules/wolkvox.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/rules/wolkvox.rules.test.yml";
const ALERTMANAGER: &str = "deploy/alertmanager/alertmanager.yml";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The alerting rules (not the recording rules) of a rules file.
fn alert_rules(rules: &Value) -> Vec<&Value> {
    let groups = rules["groups"].as_array().expect("groups");
    groups
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .filter(|r| r.get("alert").is_some())
        .collect()
}

/// (base, anchor) of every alert's runbook_url, checking that the anchor is its own section.
fn runbook_urls(rules: &Value) -> Vec<(String, String)> {
    alert_rules(rules)
        .into_iter()
        .map(|rule| {
            let name = rule["alert"].as_str().unwrap();
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no runbook_url"));
            let (base, anchor) =
                url.split_once('#').unwrap_or_else(|| panic!("{name}: {url} has no #section"));
            assert_eq!(anchor, name.to_lowercase(), "{name}: {url} is not its own section");
            (base.to_owned(), anchor.to_owned())
        })
        .collect()
}

#[test]
fn every_runbook_url_is_one_shared_base_and_a_runbook_section() {
    let rules_text = read(&repo_path(RULES));
    let rules = yaml(&repo_path(RULES));
    let anchors = github_anchors(&read(&repo_path("docs/runbook.md")));
    let urls = runbook_urls(&rules);
    assert!(urls.len() >= 13, "{urls:?}");
    for (_, section) in &urls {
        assert!(anchors.contains(section), "docs/runbook.md has no heading for #{section}");
    }
    let bases: BTreeSet<&str> = urls.iter().map(|(base, _)| base.as_str()).collect();
    assert_eq!(
        bases,
        BTreeSet::from(["docs/runbook.md"]),
        "one base for every link, by default the runbook beside the bundle"
    );
    // No address the project does not own: the base is the only place for one, and it is set
    // by the operator (scripts/set-runbook-url.sh). Comments may show an example.
    let hosts: Vec<&str> = rules_text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains("://"))
        .collect();
    assert!(hosts.is_empty(), "the rules name a host: {hosts:?}");
}

/// Every optional series on: a daily call budget, token_info, contracts, prices and a cost limit.
const EVERYTHING_ON: &str = "\
targets:
  - server: '0042'
    token_env: WOLKVOX_TOKEN
    token_name: main
    daily_call_budget: 100000
    token_info: true
    apis: [gamification, chat_licenses]
budgets:
  - {api: chat_licenses, operation: ventas_bogota, description: Chat licenses, quantity: 25}
prices:
  - {api: chat_licenses, description: Chat licenses, unit_price: 12.5, currency: USD}
cost_limits:
  - {currency: USD, monthly: 1000}
";

/// The metric names (`wolkvox_…`, `process_…`) and failure reasons the rules read, and the
/// recording rules they define and read.
fn rule_inputs(
    rules: &Value,
) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let (mut metrics, mut reasons, mut recorded, mut read) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            if let Some(name) = rule["record"].as_str() {
                recorded.insert(name.to_owned());
            }
            let expr = rule["expr"].as_str().unwrap();
            let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
            for word in words {
                if word.starts_with("wolkvox_") || word.starts_with("process_") {
                    metrics.insert(word.to_owned());
                } else if word.starts_with("wolkvox:") {
                    read.insert(word.to_owned());
                }
            }
            for part in expr.split("reason=\"").skip(1) {
                reasons.insert(part.split('"').next().unwrap().to_owned());
            }
        }
    }
    (metrics, reasons, recorded, read)
}

/// A rule reading a metric the exporter does not serve (a typo, a rename) would never fire.
#[tokio::test]
async fn every_metric_and_reason_the_rules_read_is_served_by_the_exporter() {
    let rules = yaml(&repo_path(RULES));
    let (metrics, reasons, recorded, read) = rule_inputs(&rules);
    assert!(metrics.len() >= 15, "{metrics:?}");
    assert_eq!(read, recorded, "the recording rules the alerts read are the ones defined");

    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start_exporter_from_file(&simulator, EVERYTHING_ON, "1h").await;
    wait_all_up(&exporter).await;
    let mut text = scrape(&exporter).await;
    exporter.stop().await;
    // The series of a failing token exist only while it fails: a quota refusal gives the
    // token's pause and the target's failure streak.
    let refusing = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    refusing.set_daily_quota(Some(0));
    let exporter = start_exporter_from_file(&refusing, EVERYTHING_ON, "1h").await;
    let failing = wait_for(Duration::from_secs(30), "a quota pause", || async {
        let text = scrape(&exporter).await;
        text.contains("wolkvox_token_paused_until_timestamp_seconds{").then_some(text)
    })
    .await;
    exporter.stop().await;
    text.push_str(&failing);
    let served: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .filter(|n| !n.is_empty())
        .collect();
    for metric in &metrics {
        assert!(
            served.contains(metric.as_str()),
            "the rules read {metric}, which the exporter does not serve"
        );
    }
    for reason in &reasons {
        assert!(
            text.contains(&format!("reason=\"{reason}\"")),
            "the rules read reason=\"{reason}\", which the exporter never counts"
        );
    }
}

/// The files scripts/set-runbook-url.sh reads and writes, copied to a temporary tree.
fn copy_of_the_bundle() -> tools::TestDir {
    let root = temp_dir("runbook-url");
    for dir in ["scripts", "deploy/prometheus/rules", "deploy/kubernetes", "dashboards"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let dashboards = std::fs::read_dir(repo_path("dashboards")).unwrap().map(|e| e.unwrap().path());
    let files = ["scripts/set-runbook-url.sh", "scripts/sync-kubernetes.sh", RULES].map(repo_path);
    for file in files.into_iter().chain(dashboards) {
        let relative = file.strip_prefix(repo_path("")).unwrap();
        std::fs::copy(&file, root.join(relative)).unwrap();
    }
    root
}

fn set_runbook_url(root: &Path, url: &str) -> (bool, String) {
    let output = Command::new("bash")
        .arg(root.join("scripts/set-runbook-url.sh"))
        .arg(url)
        .output()
        .expect("bash runs");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn set_runbook_url_moves_every_link_and_the_kubernetes_copy_follows() {
    let root = copy_of_the_bundle();
    let rules_path = root.join(RULES);
    let original = read(&rules_path);
    let sections: Vec<String> =
        runbook_urls(&yaml(&rules_path)).into_iter().map(|(_, section)| section).collect();

    for base in [
        "https://wiki.example.org/ops/wolkvox/docs/runbook.md?ref=main&plain=1",
        "docs/runbooks/wolkvox.md",
        "README.md",
        "docs/runbook.md",
    ] {
        let (ok, output) = set_runbook_url(&root, base);
        assert!(ok, "{base}: {output}");
        let rules = yaml(&rules_path);
        let urls = runbook_urls(&rules);
        assert!(urls.iter().all(|(b, _)| b == base), "{base}: {urls:?}");
        assert_eq!(
            urls.iter().map(|(_, s)| s.clone()).collect::<Vec<_>>(),
            sections,
            "the sections stay"
        );
        // Nothing else in the file changed.
        let text = read(&rules_path);
        assert_eq!(text.replace(&format!("\"{base}#"), "\"docs/runbook.md#"), original, "{base}");
        // The PrometheusRule was regenerated from it.
        let rule = yaml(&root.join("deploy/kubernetes/prometheusrule.yaml"));
        assert_eq!(rule["spec"], rules, "{base}: the PrometheusRule did not follow");
    }
    assert_eq!(read(&rules_path), original, "back to the bundled base, byte for byte");

    // What would break the YAML, the sed expression or the #section is refused, and nothing moves.
    for bad in [
        "",
        "https://wiki.example.org/README.md#top",
        "has space",
        "quo\"te",
        "back\\slash",
        "pipe|d",
    ] {
        let (ok, output) = set_runbook_url(&root, bad);
        assert!(!ok, "{bad:?} was accepted: {output}");
        assert_eq!(read(&rules_path), original, "{bad:?} changed the rules");
    }

    if let Some(promtool) = tool("promtool") {
        set_runbook_url(
            &root,
            "https://wiki.example.org/ops/wolkvox/docs/runbook.md?ref=main&plain=1",
        );
        let (ok, output) =
            run_tool(&promtool, &["check", "rules", rules_path.to_str().unwrap()], None);
        assert!(ok, "{output}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// "90s", "5m", "1h", "3d16h" in seconds.
fn seconds(duration: &str) -> u64 {
    let (mut total, mut number) = (0, 0);
    for c in duration.chars() {
        match c {
            '0'..='9' => number = number * 10 + u64::from(c.to_digit(10).unwrap()),
            unit => {
                total += number
                    * [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)]
                        .iter()
                        .find(|(u, _)| *u == unit)
                        .expect("a unit")
                        .1;
                number = 0;
            }
        }
    }
    total
}

/// The promtool cases of every alert: one where it fires, and one evaluated at least twice its
/// `for:` after the start where an input series must not fire it (a careless rule would).
#[test]
fn every_alert_has_a_firing_case_and_a_quiet_case_well_after_its_for() {
    let rules = yaml(&repo_path(RULES));
    let tests = yaml(&repo_path(RULE_TESTS));
    // The labels that tell one alert's series from another's.
    const KEYS: [&str; 7] =
        ["job", "instance", "server", "api", "operation", "description", "token_name"];
    for rule in alert_rules(&rules) {
        let name = rule["alert"].as_str().unwrap();
        let wait = rule["for"].as_str().map_or(0, seconds);
        let (mut fires, mut quiet) = (false, false);
        for group in tests["tests"].as_array().unwrap() {
            let inputs: Vec<BTreeMap<String, String>> = group["input_series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| series_labels(s["series"].as_str().unwrap()))
                .collect();
            for case in group["alert_rule_test"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["alertname"] == name)
            {
                let expected = case["exp_alerts"].as_array().unwrap();
                fires |= !expected.is_empty();
                if seconds(case["eval_time"].as_str().unwrap()) < 2 * wait {
                    continue;
                }
                // An input series that no expected alert stands for.
                quiet |= inputs.iter().any(|input| {
                    !expected.iter().any(|alert| {
                        KEYS.iter().all(|key| {
                            match (alert["exp_labels"][key].as_str(), input.get(*key)) {
                                (Some(want), Some(have)) => want == have,
                                _ => true,
                            }
                        })
                    })
                });
            }
        }
        assert!(fires, "{name} has no promtool case where it fires");
        assert!(
            quiet,
            "{name} has no promtool case where it must stay quiet, at twice its for: or later"
        );
    }
}

/// An alert about a server or a token (its expression aggregates the scrape's instance and pod
/// away, or reads the recording rules that do) must continue across a pod replacement and keep two
/// namespaces apart: its promtool cases have inputs for both, a series that ends (`stale`) and the
/// same series from another instance that begins later (`_x...`), and one series in two namespaces.
#[test]
fn every_alert_about_a_server_or_a_token_is_tested_across_a_pod_replacement_and_two_namespaces() {
    let rules = yaml(&repo_path(RULES));
    let tests = yaml(&repo_path(RULE_TESTS));
    let mut checked = 0;
    for rule in alert_rules(&rules) {
        let name = rule["alert"].as_str().unwrap();
        let expr = rule["expr"].as_str().unwrap();
        if !(expr.contains("without (instance, pod") || expr.contains("wolkvox:")) {
            continue;
        }
        checked += 1;
        let (mut replaced, mut namespaces) = (false, false);
        for group in tests["tests"].as_array().unwrap() {
            if !group["alert_rule_test"].as_array().unwrap().iter().any(|c| c["alertname"] == name)
            {
                continue;
            }
            let inputs: Vec<(String, BTreeMap<String, String>, &str)> = group["input_series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let series = s["series"].as_str().unwrap();
                    let metric = series.split('{').next().unwrap().to_owned();
                    (metric, series_labels(series), s["values"].as_str().unwrap())
                })
                .collect();
            let without = |labels: &BTreeMap<String, String>, drop: &str| {
                let mut labels = labels.clone();
                labels.remove(drop);
                labels
            };
            for (metric, labels, values) in &inputs {
                replaced |= values.trim_end().ends_with("stale")
                    && inputs.iter().any(|(m, l, v)| {
                        m == metric
                            && l.get("instance") != labels.get("instance")
                            && without(l, "instance") == without(labels, "instance")
                            && v.starts_with("_x")
                    });
                namespaces |= labels.contains_key("namespace")
                    && inputs.iter().any(|(m, l, _)| {
                        m == metric
                            && l.contains_key("namespace")
                            && l.get("namespace") != labels.get("namespace")
                            && without(&without(l, "namespace"), "instance")
                                == without(&without(labels, "namespace"), "instance")
                    });
            }
        }
        assert!(replaced, "{name} has no promtool case with a pod replacement");
        assert!(namespaces, "{name} has no promtool case with one series in two namespaces");
    }
    assert!(checked >= 9, "{checked} alerts about a server or a token");
}

/// `name{a="x", b="y"}` -> {a: x, b: y}; label values in these tests hold no commas or quotes.
fn series_labels(series: &str) -> BTreeMap<String, String> {
    let inner = series.split_once('{').map_or("", |(_, rest)| rest.trim_end_matches('}'));
    inner
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// The labels that say which exporter an alert is about, once instance and pod are aggregated away.
const WHERE: [&str; 4] = ["job", "cluster", "namespace", "service"];

/// Each inhibition names Wolkvox alerts on both sides, and every label it compares is required on
/// both sides: a missing label would be "equal" to another missing one.
#[test]
fn every_inhibition_is_scoped_to_wolkvox_alerts_that_carry_the_labels_it_compares() {
    let config = yaml(&repo_path(ALERTMANAGER));
    let rules = config["inhibit_rules"].as_array().expect("inhibit_rules");
    assert!(!rules.is_empty());
    for rule in rules {
        // Without the process (instance) to compare, the alerts compare where the exporter runs:
        // the same token name or server in another namespace is another exporter's.
        let equal: Vec<&str> =
            rule["equal"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        if !equal.contains(&"instance") {
            for label in WHERE {
                assert!(equal.contains(&label), "{rule} does not compare {label}");
            }
        }
        for side in ["source_matchers", "target_matchers"] {
            let matchers: Vec<&str> = rule[side]
                .as_array()
                .unwrap_or_else(|| panic!("{rule}: no {side}"))
                .iter()
                .map(|m| m.as_str().unwrap())
                .collect();
            assert!(
                matchers.iter().any(|m| m.starts_with("alertname=\"Wolkvox")
                    || m.starts_with("alertname=~\"Wolkvox")),
                "{side} of {rule} is not limited to Wolkvox alerts"
            );
            for label in rule["equal"].as_array().unwrap() {
                let label = label.as_str().unwrap();
                let required = matchers.contains(&format!("{label}=~\".+\"").as_str());
                // job is on every alert: Prometheus adds it to each series it scrapes. Where the
                // exporter runs may be absent from both sides, which then means the same place.
                assert!(
                    required || WHERE.contains(&label),
                    "{side} of {rule} does not require {label}"
                );
            }
        }
    }
}

/// `amtool config routes test`: the receiver the bundled configuration picks for `labels`, and
/// the routes it matched on the way (`--tree`).
fn route(amtool: &Path, labels: &[&str]) -> (String, String) {
    let config = format!("--config.file={}", repo_path(ALERTMANAGER).display());
    let mut args = vec!["config", "routes", "test", config.as_str()];
    args.extend_from_slice(labels);
    let (ok, receiver) = run_tool(amtool, &args, None);
    assert!(ok, "{labels:?}: {receiver}");
    args.insert(3, "--tree");
    let (ok, tree) = run_tool(amtool, &args, None);
    assert!(ok, "{labels:?}: {tree}");
    let receiver =
        receiver.lines().filter(|l| !l.starts_with("Warning:")).collect::<Vec<_>>().join("\n");
    (receiver.trim().to_owned(), tree)
}

/// The Wolkvox part of the example is a subtree that takes Wolkvox alerts only: pasted into a
/// shared Alertmanager, another team's critical alert never reaches the Wolkvox pager, and the
/// alerts that last the whole month are not repeated every few hours.
#[test]
fn the_example_alertmanager_routes_only_wolkvox_alerts_to_the_wolkvox_receivers() {
    let Some(amtool) = tool("amtool") else { return };
    let config = yaml(&repo_path(ALERTMANAGER));
    let root = &config["route"];
    assert!(
        !root["receiver"].as_str().unwrap().starts_with("wolkvox"),
        "the root's receiver is another team's default: {root}"
    );
    let subtree: Vec<&Value> = root["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["matchers"][0] == "alertname=~\"Wolkvox.+\"")
        .collect();
    assert_eq!(subtree.len(), 1, "one Wolkvox subtree: {root}");
    assert_eq!(subtree[0]["continue"], json!(false));

    for (labels, receiver) in [
        (
            &["alertname=WolkvoxTokenRejected", "severity=critical", "server=0042"][..],
            "wolkvox-pager",
        ),
        (
            &["alertname=WolkvoxQuotaExhausted", "severity=critical", "token_name=main"],
            "wolkvox-pager",
        ),
        (&["alertname=WolkvoxDataStale", "severity=warning", "server=0042"], "wolkvox-chat"),
        (&["alertname=WolkvoxExporterAbsent", "severity=warning", "job=wolkvox"], "wolkvox-chat"),
        // Another team's alerts, critical or not, with or without Wolkvox-like labels.
        (&["alertname=KubeNodeNotReady", "severity=critical", "node=node-1"], "default"),
        (&["alertname=DatabaseDown", "severity=critical", "job=wolkvox", "server=0042"], "default"),
        (&["alertname=DiskFilling", "severity=warning"], "default"),
    ] {
        assert_eq!(route(&amtool, labels).0, receiver, "{labels:?}");
    }

    // The contract and cost-limit alerts take their own route, with a long repeat interval (and no longer than
    // Alertmanager's default --data.retention of 120h, which would cut it short).
    let contract = subtree[0]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["matchers"][0].as_str().unwrap().contains("WolkvoxUsageOverContract"))
        .expect("a route for the contract alerts");
    let repeat = seconds(contract["repeat_interval"].as_str().expect("its own repeat_interval"));
    assert!((3 * 86_400..=120 * 3_600).contains(&repeat), "{contract}");
    for alert in [
        "WolkvoxUsageOverContract",
        "WolkvoxUsageProjectedOverContract",
        "WolkvoxCostOverLimit",
        "WolkvoxCostProjectedOverLimit",
    ] {
        let (receiver, tree) =
            route(&amtool, &[&format!("alertname={alert}"), "severity=warning", "server=0042"]);
        assert_eq!(receiver, "wolkvox-chat");
        let matched = tree.lines().last_of_route();
        assert!(
            matched.contains("WolkvoxUsageOverContract|WolkvoxUsageProjectedOverContract"),
            "{alert} took another route: {tree}"
        );
    }
}

/// The deepest route `amtool config routes test --tree` matched.
trait LastOfRoute {
    fn last_of_route(self) -> String;
}

impl<'a, I: Iterator<Item = &'a str>> LastOfRoute for I {
    fn last_of_route(self) -> String {
        self.filter(|l| l.contains("──")).last().unwrap_or_default().to_owned()
    }
}

/// The bundled Alertmanager configuration with its receivers pointed at a closed local port, so
/// that the test sends nothing anywhere (notifications fail, which does not matter here).
fn bundled_config_without_receivers() -> String {
    let mut config = yaml(&repo_path(ALERTMANAGER));
    for receiver in config["receivers"].as_array_mut().unwrap() {
        for webhook in receiver["webhook_configs"].as_array_mut().into_iter().flatten() {
            webhook["url"] = json!("http://127.0.0.1:9/alertmanager");
        }
    }
    serde_norway::to_string(&config).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect())
}

#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: the alerts posted, then the table of what each must hold back"
)]
async fn the_example_alertmanager_holds_back_only_what_a_wolkvox_alert_explains() {
    let Some(binary) = tool("prometheus-alertmanager") else { return };
    let alertmanager = Alertmanager::start(&binary, &bundled_config_without_receivers()).await;

    // Another team's critical alerts, one without a server label and one with it; then the two
    // Wolkvox criticals that explain something.
    let node_down = labels(&[
        ("alertname", "NodeDown"),
        ("severity", "critical"),
        ("job", "node"),
        ("instance", "node-1:9100"),
    ]);
    let database_down = labels(&[
        ("alertname", "DatabaseDown"),
        ("severity", "critical"),
        ("job", "db"),
        ("server", "0043"),
    ]);
    let node_not_ready = labels(&[
        ("alertname", "KubeNodeNotReady"),
        ("severity", "critical"),
        ("job", "kube-state-metrics"),
        ("node", "node-1"),
    ]);
    // The Wolkvox alerts about a server or a token carry no instance (a new pod continues them);
    // where the exporter runs is its job and namespace.
    let token_rejected = labels(&[
        ("alertname", "WolkvoxTokenRejected"),
        ("severity", "critical"),
        ("job", "wolkvox"),
        ("server", "0042"),
        ("api", "gamification"),
        ("reason", "auth"),
    ]);
    let exporter_down = labels(&[
        ("alertname", "WolkvoxExporterDown"),
        ("severity", "warning"),
        ("job", "wolkvox"),
        ("instance", "exp-b:10042"),
    ]);
    let quota_exhausted = labels(&[
        ("alertname", "WolkvoxQuotaExhausted"),
        ("severity", "critical"),
        ("job", "wolkvox"),
        ("namespace", "ops"),
        ("token_name", "shared"),
        ("reason", "quota"),
    ]);
    let warning = |name: &str, extra: &[(&str, &str)]| {
        let mut all = vec![("alertname", name), ("severity", "warning")];
        all.extend_from_slice(extra);
        labels(&all)
    };
    let polling_failing = warning(
        "WolkvoxPollingFailing",
        &[
            ("job", "wolkvox"),
            ("namespace", "ops"),
            ("server", "0063"),
            ("api", "gamification"),
            ("token_name", "main"),
        ],
    );
    fn target<'a>(server: &'a str, api: &'a str, token: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![("job", "wolkvox"), ("server", server), ("api", api), ("token_name", token)]
    }
    // (alert, what must hold it back)
    let cases: Vec<(Value, Option<&Value>)> = vec![
        // Explained by the rejected token of the same server.
        (
            warning("WolkvoxPollingFailing", &target("0042", "chat_licenses", "main")),
            Some(&token_rejected),
        ),
        (
            warning("WolkvoxDataStale", &target("0042", "gamification", "main")),
            Some(&token_rejected),
        ),
        (
            warning("WolkvoxPollsOftenFailing", &target("0042", "gamification", "main")),
            Some(&token_rejected),
        ),
        // Another server (which another team's critical alert also names), and the same server
        // in another namespace.
        (warning("WolkvoxPollingFailing", &target("0043", "gamification", "main")), None),
        (
            warning(
                "WolkvoxDataStale",
                &[
                    ("job", "wolkvox"),
                    ("namespace", "staging"),
                    ("server", "0042"),
                    ("api", "gamification"),
                    ("token_name", "main"),
                ],
            ),
            None,
        ),
        // Same server, not something a rejected token explains.
        (warning("WolkvoxLicensesJumped", &[("job", "wolkvox"), ("server", "0042")]), None),
        // No server label, like the critical NodeDown: neither team's alerts may touch the other's.
        (warning("DiskFilling", &[("job", "node"), ("instance", "node-2:9100")]), None),
        (
            warning(
                "WolkvoxCallBudgetRunningOut",
                &[("job", "wolkvox"), ("instance", "exp-a:10042"), ("token_name", "main")],
            ),
            None,
        ),
        // Explained by the exporter that cannot be scraped: the alerts about that process.
        (
            warning(
                "WolkvoxStateNotSaved",
                &[("job", "wolkvox"), ("instance", "exp-b:10042"), ("token_name", "main")],
            ),
            Some(&exporter_down),
        ),
        (
            warning(
                "WolkvoxRowsSkipped",
                &[
                    ("job", "wolkvox"),
                    ("instance", "exp-b:10042"),
                    ("server", "0050"),
                    ("api", "gamification"),
                    ("reason", "blank_items"),
                ],
            ),
            Some(&exporter_down),
        ),
        // The same instance, but not a Wolkvox alert; and a Wolkvox alert of another instance.
        (warning("ProcessMemoryHigh", &[("job", "wolkvox"), ("instance", "exp-b:10042")]), None),
        (
            warning(
                "WolkvoxStateNotSaved",
                &[("job", "wolkvox"), ("instance", "exp-c:10042"), ("token_name", "main")],
            ),
            None,
        ),
        // The spent quota pauses every server of its token: their polls stop, their data goes stale.
        (
            warning(
                "WolkvoxPollingFailing",
                &[
                    ("job", "wolkvox"),
                    ("namespace", "ops"),
                    ("server", "0060"),
                    ("api", "chat_licenses"),
                    ("token_name", "shared"),
                ],
            ),
            Some(&quota_exhausted),
        ),
        (
            warning(
                "WolkvoxDataStale",
                &[
                    ("job", "wolkvox"),
                    ("namespace", "ops"),
                    ("server", "0061"),
                    ("api", "gamification"),
                    ("token_name", "shared"),
                ],
            ),
            Some(&quota_exhausted),
        ),
        // Another token of that exporter, and a token of the same name on other exporters (another
        // namespace, and one outside Kubernetes).
        (
            warning(
                "WolkvoxDataStale",
                &[
                    ("job", "wolkvox"),
                    ("namespace", "ops"),
                    ("server", "0062"),
                    ("api", "gamification"),
                    ("token_name", "other"),
                ],
            ),
            None,
        ),
        (
            warning(
                "WolkvoxDataStale",
                &[
                    ("job", "wolkvox"),
                    ("namespace", "staging"),
                    ("server", "0061"),
                    ("api", "gamification"),
                    ("token_name", "shared"),
                ],
            ),
            None,
        ),
        (warning("WolkvoxDataStale", &target("0061", "gamification", "shared")), None),
        // Polls failing in a row say what the ratio says, for that API only.
        (
            warning(
                "WolkvoxPollsOftenFailing",
                &[
                    ("job", "wolkvox"),
                    ("namespace", "ops"),
                    ("server", "0063"),
                    ("api", "gamification"),
                    ("token_name", "main"),
                ],
            ),
            Some(&polling_failing),
        ),
        (
            warning(
                "WolkvoxPollsOftenFailing",
                &[
                    ("job", "wolkvox"),
                    ("namespace", "ops"),
                    ("server", "0063"),
                    ("api", "chat_licenses"),
                    ("token_name", "main"),
                ],
            ),
            None,
        ),
        // The sources themselves stay active.
        (node_down.clone(), None),
        (node_not_ready.clone(), None),
        (database_down.clone(), None),
        (token_rejected.clone(), None),
        (exporter_down.clone(), None),
        (quota_exhausted.clone(), None),
        (polling_failing.clone(), None),
    ];

    // The inhibitor reads alerts in the order they arrive: the sources first, the ones expected to
    // inhibit nothing before the ones expected to, so that once the latter show their effect the
    // former have been seen too.
    let sources = [
        &node_down,
        &node_not_ready,
        &database_down,
        &token_rejected,
        &exporter_down,
        &quota_exhausted,
        &polling_failing,
    ];
    alertmanager
        .post_alerts(&json!(sources.iter().map(|l| json!({"labels": l})).collect::<Vec<_>>()))
        .await;
    let targets: Vec<Value> = cases
        .iter()
        .filter(|(l, _)| !sources.contains(&l))
        .map(|(l, _)| json!({"labels": l}))
        .collect();
    alertmanager.post_alerts(&Value::Array(targets)).await;

    let expected_inhibited = cases.iter().filter(|(_, by)| by.is_some()).count();
    let deadline = Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        let alerts = alertmanager.alerts().await;
        let inhibited = alerts
            .iter()
            .filter(|a| a["status"]["inhibitedBy"].as_array().is_some_and(|by| !by.is_empty()))
            .count();
        if alerts.len() == cases.len() && inhibited >= expected_inhibited {
            break alerts;
        }
        assert!(
            Instant::now() < deadline,
            "{inhibited} of {expected_inhibited} inhibited, {} alerts: {alerts:#?}\n{}",
            alerts.len(),
            alertmanager.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let find = |wanted: &Value| {
        alerts
            .iter()
            .find(|a| &a["labels"] == wanted)
            .unwrap_or_else(|| panic!("{wanted} not found in {alerts:#?}"))
    };
    for (alert, by) in &cases {
        let found = find(alert);
        let inhibited_by: BTreeSet<&str> = found["status"]["inhibitedBy"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        let expected: BTreeSet<&str> =
            by.iter().map(|source| find(source)["fingerprint"].as_str().unwrap()).collect();
        assert_eq!(
            inhibited_by,
            expected,
            "{alert} (fingerprints: {:?})",
            alerts
                .iter()
                .map(|a| (&a["fingerprint"], &a["labels"]["alertname"]))
                .collect::<Vec<_>>()
        );
        let state = if by.is_some() { "suppressed" } else { "active" };
        assert_eq!(found["status"]["state"], state, "{alert}");
        // The Wolkvox subtree: Wolkvox criticals page, other Wolkvox alerts go to chat, and
        // every other team's alert, critical or not, stays with the root's receiver.
        let name = alert["alertname"].as_str().unwrap();
        let receiver = match (name.starts_with("Wolkvox"), alert["severity"].as_str()) {
            (false, _) => "default",
            (true, Some("critical")) => "wolkvox-pager",
            (true, _) => "wolkvox-chat",
        };
        let receivers: Vec<&str> = found["receivers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(receivers, [receiver], "{alert}");
    }
}
