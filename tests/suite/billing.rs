//! The billing family: several APIs of one server on one token, polled through its single lane.

use crate::common;
use crate::common::tools;

use std::time::Duration;

use common::{FAKE_TOKEN, sample, scrape, start_exporter, wait_first_success, wait_for};
use serde_json::json;
use wolkvox_exporter::simulator::Simulator;

fn row(operation: &str, description: &str, items: &str) -> serde_json::Value {
    json!({"operation": operation, "description": description, "items": items, "date": "2026-11-02 10:00:00"})
}

#[tokio::test]
async fn each_api_becomes_its_own_family_and_the_token_never_has_two_calls_in_flight() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_rows_for("gamification", vec![row("ventas", "Gamification", "12")]);
    simulator.set_rows_for(
        "chat_licenses",
        vec![row("ventas", "Chat", "40"), row("soporte", "Chat", "9")],
    );
    simulator.set_rows_for("ivr_minutes", vec![row("ventas", "IVR", "1234.5")]);
    // Every call takes a while, so that polls of the three APIs would overlap if the lane let them.
    simulator.set_fault(Some(wolkvox_exporter::simulator::Fault::Delay(Duration::from_millis(50))));
    let exporter = start_exporter(
        &simulator,
        "300ms",
        &["--wolkvox.apis", "gamification,chat_licenses,ivr_minutes"],
    )
    .await;
    common::wait_all_up(&exporter).await;
    // Each API polled twice at least: its calls and the others' had every chance to overlap.
    let text = wait_for(Duration::from_secs(20), "two polls of each API", || async {
        let text = scrape(&exporter).await;
        let polled = |api: &str| {
            sample(&text, &format!("wolkvox_api_requests_total{{server=\"0042\",api=\"{api}\"}}"))
        };
        ["gamification", "chat_licenses", "ivr_minutes"]
            .iter()
            .all(|api| polled(api).is_some_and(|n| n >= 2.0))
            .then_some(text)
    })
    .await;
    let usage = |metric: &str, operation: &str, description: &str| {
        sample(
            &text,
            &format!(
                "{metric}{{server=\"0042\",operation=\"{operation}\",description=\"{description}\"}}"
            ),
        )
    };
    assert_eq!(usage("wolkvox_gamification_licenses", "ventas", "Gamification"), Some(12.0));
    assert_eq!(usage("wolkvox_chat_licenses", "ventas", "Chat"), Some(40.0));
    assert_eq!(usage("wolkvox_chat_licenses", "soporte", "Chat"), Some(9.0));
    assert_eq!(usage("wolkvox_ivr_minutes", "ventas", "IVR"), Some(1234.5));
    assert_eq!(usage("wolkvox_ivr_minutes_max", "ventas", "IVR"), Some(1234.5));
    assert!(
        text.contains(
            "# HELP wolkvox_ivr_minutes IVR minutes (minutes, the unit Wolkvox bills in)"
        ),
        "{text}"
    );
    // Nothing of an API that is not polled.
    assert!(!text.contains("wolkvox_tts_characters"), "{text}");
    for api in ["gamification", "chat_licenses", "ivr_minutes"] {
        assert_eq!(
            sample(&text, &format!("wolkvox_up{{server=\"0042\",api=\"{api}\"}}")),
            Some(1.0),
            "{api}"
        );
    }

    let requests = simulator.requests();
    for api in ["gamification", "chat_licenses", "ivr_minutes"] {
        assert!(requests.iter().any(|r| r.api.as_deref() == Some(api)), "{api} never requested");
    }
    assert!(requests.iter().all(|r| !r.faulted), "the simulator refused a call: {requests:?}");
    assert_eq!(simulator.max_in_flight(FAKE_TOKEN), 1);
    exporter.stop().await;
}

#[tokio::test]
async fn the_simulator_serves_every_billing_api_and_refuses_unknown_ones() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let client = reqwest::Client::new();
    let get = |api: &str| {
        client
            .get(format!("{}/api/v2/billing.php?api={api}", simulator.base_url()))
            .header("wolkvox-token", FAKE_TOKEN)
            .send()
    };
    for api in &wolkvox_exporter::wolkvox::catalogue::APIS {
        let body: serde_json::Value = get(api.name).await.unwrap().json().await.unwrap();
        assert_eq!(body["code"], 200, "{}", api.name);
        assert!(!body["data"].as_array().unwrap().is_empty(), "{}", api.name);
    }
    let unknown: serde_json::Value = get("chat").await.unwrap().json().await.unwrap();
    assert_eq!(unknown["msg"], "THE API YOU WANT TO CONSULT DOES NOT EXIST");
}

#[test]
fn the_documented_catalogue_matches_the_code() {
    let metrics =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    for (k, api) in wolkvox_exporter::wolkvox::catalogue::APIS.iter().enumerate() {
        let row = format!("| {} | `{}` | `{}` | {} |", k + 1, api.name, api.metric, api.counts);
        assert!(metrics.contains(&row), "docs/metrics.md lacks the catalogue row {row}");
    }
}

#[tokio::test]
async fn calls_of_the_day_are_counted_per_token_name_against_the_budget() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    // One API: the calls follow its interval, and the budget, far larger, never holds them back.
    let extra = ["--wolkvox.daily-call-budget", "10000000", "--wolkvox.token-name", "main"];
    let exporter = start_exporter(&simulator, "200ms", &extra).await;
    wait_first_success(&exporter).await;
    let calls_today = |text: &str| sample(text, "wolkvox_token_calls_today{token_name=\"main\"}");
    let text = wait_for(Duration::from_secs(10), "four calls counted", || async {
        let text = scrape(&exporter).await;
        calls_today(&text).is_some_and(|n| n >= 4.0).then_some(text)
    })
    .await;
    let counted = calls_today(&text).unwrap();
    let made = simulator.calls_today(FAKE_TOKEN) as f64;
    // A call may be on its way while the scrape runs.
    assert!(
        counted >= 4.0 && (made - 1.0..=made).contains(&counted),
        "counted {counted}, the simulator saw {made}"
    );
    assert_eq!(
        sample(&text, "wolkvox_token_daily_call_budget{token_name=\"main\"}"),
        Some(10000000.0)
    );
    assert_eq!(sample(&text, "wolkvox_token_budget_stretched{token_name=\"main\"}"), Some(0.0));
    assert!(
        sample(&text, "wolkvox_token_call_spacing_seconds{token_name=\"main\"}")
            .is_some_and(|s| s > 0.0 && s < 1.0),
        "{text}"
    );
    assert!(!text.contains(FAKE_TOKEN));
    exporter.stop().await;
}

#[tokio::test]
async fn token_limit_exceeded_pauses_every_api_of_the_token() {
    const WITNESS_TOKEN: &str = "fake-token-for-tests-0003";
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_daily_quota(Some(4));
    // A witness: a second token, with a simulator of its own and no quota, polled by its own lane
    // at the same interval. Its calls measure out the time in which the paused token would have
    // called, however slow the machine.
    let witness = Simulator::start(&[WITNESS_TOKEN]).await.unwrap();
    let dir = tools::temp_dir("quota");
    let witness_token = dir.join("witness-token");
    std::fs::write(&witness_token, WITNESS_TOKEN).unwrap();
    std::fs::set_permissions(&witness_token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .unwrap();
    let yaml = format!(
        "targets:\n  - {{server: '0042', token_env: WOLKVOX_TOKEN, apis: [gamification, chat_licenses, ivr_minutes]}}\n  - {{server: '0043', token_file: '{}', base_url: '{}'}}\n",
        witness_token.display(),
        witness.base_url()
    );
    let exporter = common::start_exporter_from_file(&simulator, &yaml, "200ms").await;

    // Three first polls and one more succeed; the fifth call is refused.
    wait_for(Duration::from_secs(10), "the refused call", || async {
        (simulator.counts().1 >= 1).then_some(())
    })
    .await;
    // Then the token rests: while the witness polls five times (each of the three APIs would have
    // been due five times), the token makes no call.
    let witnessed = witness.counts().0;
    wait_for(Duration::from_secs(15), "five polls of the witness", || async {
        (witness.counts().0 >= witnessed + 5).then_some(())
    })
    .await;
    assert_eq!(simulator.counts(), (5, 1), "(calls, refused calls)");
    let text = scrape(&exporter).await;
    let quota: f64 = ["gamification", "chat_licenses", "ivr_minutes"]
        .iter()
        .filter_map(|api| sample(&text, &format!("wolkvox_api_request_failures_total{{server=\"0042\",api=\"{api}\",reason=\"quota\"}}")))
        .sum();
    assert_eq!(quota, 1.0);
    assert_eq!(sample(&text, "wolkvox_token_calls_today{token_name=\"WOLKVOX_TOKEN\"}"), Some(5.0));
    exporter.stop().await;
}

#[tokio::test]
async fn budgets_are_served_beside_the_usage_they_bound() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_rows_for(
        "chat_licenses",
        vec![row("ventas", "Chat", "31"), row("soporte", "Chat", "9")],
    );
    let yaml = "targets:\n  - {server: '0042', token_env: WOLKVOX_TOKEN, apis: [gamification, chat_licenses]}\nbudgets:\n  \
                - {api: chat_licenses, operation: ventas, description: Chat, quantity: 30}\n  \
                - {api: chat_licenses, operation: nadie, description: Chat, quantity: 5}\n";
    let exporter = common::start_exporter_from_file(&simulator, yaml, "1h").await;
    common::wait_all_up(&exporter).await;
    let text = scrape(&exporter).await;
    let labels = |operation: &str| {
        format!(
            "{{api=\"chat_licenses\",server=\"0042\",operation=\"{operation}\",description=\"Chat\"}}"
        )
    };
    assert_eq!(sample(&text, &format!("wolkvox_billing_budget{}", labels("ventas"))), Some(30.0));
    assert_eq!(
        sample(&text, &format!("wolkvox_billing_budget_used{}", labels("ventas"))),
        Some(31.0)
    );
    // A budget whose series the API does not report has nothing used to show.
    assert_eq!(sample(&text, &format!("wolkvox_billing_budget{}", labels("nadie"))), Some(5.0));
    assert_eq!(sample(&text, &format!("wolkvox_billing_budget_used{}", labels("nadie"))), None);
    exporter.stop().await;
}

fn dated(operation: &str, description: &str, items: &str, date: &str) -> serde_json::Value {
    json!({"operation": operation, "description": description, "items": items, "date": date})
}

#[tokio::test]
async fn priced_series_are_served_with_their_estimated_cost_on_the_peak_or_the_latest_value() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    // Each series peaked earlier in the month than its latest row.
    let (early, late) = ("2026-11-02 10:00:00", "2026-11-12 10:00:00");
    simulator.set_rows_for(
        "gamification",
        vec![
            dated("ventas", "Gamification", "20", early),
            dated("ventas", "Gamification", "12", late),
            dated("soporte", "Gamification", "4", late),
        ],
    );
    simulator.set_rows_for(
        "chat_licenses",
        vec![
            dated("ventas", "Chat", "40", early),
            dated("ventas", "Chat", "31", late),
            dated("soporte", "Chat", "9", late),
        ],
    );
    let yaml = "targets:\n  - {server: '0042', token_env: WOLKVOX_TOKEN, apis: [gamification, chat_licenses]}\nprices:\n  \
                - {api: gamification, description: Gamification, unit_price: 2.5, currency: USD}\n  \
                - {api: chat_licenses, operation: ventas, description: Chat, unit_price: 9, currency: USD, charge: latest}\n\
                cost_limits:\n  - {currency: USD, monthly: 5000}\n";
    let exporter = common::start_exporter_from_file(&simulator, yaml, "1h").await;
    common::wait_all_up(&exporter).await;
    let text = scrape(&exporter).await;
    let series = |api: &str, operation: &str, description: &str| {
        format!(
            "server=\"0042\",api=\"{api}\",operation=\"{operation}\",description=\"{description}\",currency=\"USD\""
        )
    };
    let usage = |metric: &str, operation: &str, description: &str| {
        let labels =
            format!("{{server=\"0042\",operation=\"{operation}\",description=\"{description}\"}}");
        sample(&text, &format!("{metric}{labels}")).unwrap()
    };
    let cost = |labels: &str| sample(&text, &format!("wolkvox_estimated_cost{{{labels}}}"));

    // Gamification licenses, on the peak: 2.5 x the month's highest, for every operation.
    for operation in ["ventas", "soporte"] {
        let max = usage("wolkvox_gamification_licenses_max", operation, "Gamification");
        let labels = series("gamification", operation, "Gamification");
        assert_eq!(cost(&labels), Some(2.5 * max), "{operation}: {text}");
        let price = format!("wolkvox_unit_price{{{labels},charge=\"peak\"}}");
        assert_eq!(sample(&text, &price), Some(2.5));
    }
    assert_eq!(cost(&series("gamification", "ventas", "Gamification")), Some(50.0));
    // Chat of ventas, priced on the latest row: 9 x 31, not 9 x 40.
    let latest = usage("wolkvox_chat_licenses", "ventas", "Chat");
    assert_eq!(latest, 31.0);
    assert_eq!(cost(&series("chat_licenses", "ventas", "Chat")), Some(9.0 * latest));
    let price = format!(
        "wolkvox_unit_price{{{},charge=\"latest\"}}",
        series("chat_licenses", "ventas", "Chat")
    );
    assert_eq!(sample(&text, &price), Some(9.0));
    // Chat of soporte has no price: no cost, no price.
    assert_eq!(cost(&series("chat_licenses", "soporte", "Chat")), None);
    assert!(!text.contains("operation=\"soporte\",description=\"Chat\",currency="), "{text}");
    assert_eq!(sample(&text, "wolkvox_cost_limit{server=\"0042\",currency=\"USD\"}"), Some(5000.0));
    exporter.stop().await;
}

#[tokio::test]
async fn token_info_reports_the_servers_own_count_when_asked_for() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_daily_quota(Some(5000));
    let exporter =
        start_exporter(&simulator, "1h", &["--wolkvox.token-info", "--wolkvox.token-name", "main"])
            .await;
    // Ready comes with the first answer of either call; wait for both.
    let text = common::wait_for(Duration::from_secs(10), "token_info polled", || async {
        let text = scrape(&exporter).await;
        (text.contains("wolkvox_token_info_limit")
            && text.contains("wolkvox_up{server=\"0042\",api=\"gamification\"} 1"))
        .then_some(text)
    })
    .await;
    assert_eq!(sample(&text, "wolkvox_token_info_limit{token_name=\"main\"}"), Some(5000.0));
    // Gamification and token_info in either order: the server counted one or both calls.
    let used = sample(&text, "wolkvox_token_info_used_today{token_name=\"main\"}").unwrap();
    assert!(used == 1.0 || used == 2.0, "{used}");
    assert_eq!(sample(&text, "wolkvox_up{server=\"0042\",api=\"token_info\"}"), Some(1.0));
    let requests = simulator.requests();
    assert_eq!(
        requests.iter().filter(|r| r.api.as_deref() == Some("token_info")).count(),
        1,
        "{requests:?}"
    );
    exporter.stop().await;

    // Off by default: it costs a call.
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start_exporter(&simulator, "1h", &[]).await;
    wait_first_success(&exporter).await;
    assert!(!scrape(&exporter).await.contains("wolkvox_token_info_"));
    assert!(simulator.requests().iter().all(|r| r.api.as_deref() == Some("gamification")));
    exporter.stop().await;
}

#[tokio::test]
async fn one_api_the_token_may_not_call_does_not_keep_the_server_unready() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    // ivr_minutes is refused for ever; gamification answers.
    simulator.set_rows_for("ivr_minutes", vec![json!("not a row")]);
    let exporter =
        start_exporter(&simulator, "1h", &["--wolkvox.apis", "gamification,ivr_minutes"]).await;
    wait_first_success(&exporter).await;
    let text = common::wait_for(Duration::from_secs(10), "both first polls", || async {
        let text = scrape(&exporter).await;
        text.contains("wolkvox_up{server=\"0042\",api=\"ivr_minutes\"} 0").then_some(text)
    })
    .await;
    assert_eq!(sample(&text, "wolkvox_up{server=\"0042\",api=\"gamification\"}"), Some(1.0));
    exporter.stop().await;
}
