//! The whole exporter, in-process, against the simulator over real HTTP on 127.0.0.1.

use crate::common;

use std::time::Duration;

use common::{
    FAKE_TOKEN, check_faults, failures, get, known_rows, sample, samples, scrape, start_exporter,
    up, wait_first_success, wait_for,
};
use wolkvox_exporter::simulator::{DocumentedError, Fault, Simulator};

const WAIT: Duration = Duration::from_secs(10);

fn licenses(operation: &str, description: &str) -> String {
    format!(
        "wolkvox_gamification_licenses{{server=\"0042\",operation=\"{operation}\",description=\"{description}\"}}"
    )
}

#[tokio::test]
async fn serves_the_values_the_simulator_served() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_rows(known_rows());
    let exporter = start_exporter(&simulator, "1h", &[]).await;
    wait_first_success(&exporter).await;

    let text = scrape(&exporter).await;
    // In the order the answer first named each series.
    assert_eq!(
        samples(&text, "wolkvox_gamification_licenses"),
        vec![
            (licenses("ventas", "Gamification"), 15.0),
            (licenses("soporte", "Gamification"), 7.0)
        ]
    );
    let max = "wolkvox_gamification_licenses_max{server=\"0042\",operation=\"ventas\",description=\"Gamification\"}";
    assert_eq!(sample(&text, max), Some(15.0));
    assert_eq!(up(&text), Some(1.0));
    assert_eq!(sample(&text, "wolkvox_rows{server=\"0042\",api=\"gamification\"}"), Some(4.0));
    let skipped =
        "wolkvox_rows_skipped_total{server=\"0042\",api=\"gamification\",reason=\"blank_items\"}";
    assert_eq!(sample(&text, skipped), Some(1.0));
    assert_eq!(
        sample(&text, "wolkvox_api_requests_total{server=\"0042\",api=\"gamification\"}"),
        Some(1.0)
    );
    assert!(text.contains("wolkvox_exporter_build_info{version=\""));
    assert!(text.contains("process_resident_memory_bytes"));

    // The request the API saw: the documented shape and this month's window.
    let requests = simulator.requests();
    assert_eq!(requests.len(), 1, "scrapes must not call the API");
    let request = &requests[0];
    assert_eq!(request.api.as_deref(), Some("gamification"));
    assert_eq!(request.server_header.as_deref(), Some("0042"));
    // The exporter's clock starts at 10:00 on November 15 in Bogota (common::start_time).
    assert_eq!(request.date_ini.as_deref(), Some("20261101000000"));
    assert_eq!(request.date_end.as_deref().map(|end| &end[..10]), Some("2026111510"));
    exporter.stop().await;
}

#[tokio::test]
async fn scrapes_never_reach_the_api_and_repeat_identically() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start_exporter(&simulator, "1h", &[]).await;
    wait_first_success(&exporter).await;
    let business = |text: String| {
        text.lines()
            .filter(|l| {
                !l.starts_with("process_")
                    && !l.starts_with("# HELP process_")
                    && !l.starts_with("# TYPE process_")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let first = business(scrape(&exporter).await);
    for _ in 0..20 {
        assert_eq!(business(scrape(&exporter).await), first);
    }
    assert_eq!(simulator.requests().len(), 1);
    exporter.stop().await;
}

#[tokio::test]
async fn gzip_is_served_when_asked_and_decodes_to_the_same_text() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start_exporter(&simulator, "1h", &[]).await;
    wait_first_success(&exporter).await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{}/metrics", exporter.addr()))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let compressed = response.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut text)
        .expect("one valid gzip member");
    let plain = scrape(&exporter).await;
    let cached = |t: &str| t.split("# HELP process_").next().unwrap().to_owned();
    assert_eq!(cached(&text), cached(&plain));
    assert!(
        text.contains("process_start_time_seconds"),
        "the per-scrape part is inside the same gzip member"
    );
    exporter.stop().await;
}

/// Every fault: `up` drops to 0, the right reason is counted, the last good values stay.
#[tokio::test]
async fn every_fault_is_classified_and_keeps_the_last_good_values() {
    let documented = |error, http_status| Fault::Documented { error, http_status };
    check_faults(vec![
        (documented(DocumentedError::TokenLimitExceeded, 403), "quota"),
        (documented(DocumentedError::TokenLimitExceeded, 200), "quota"),
        (documented(DocumentedError::ValidateToken, 403), "auth"),
        (documented(DocumentedError::EnterToken, 401), "auth"),
        (documented(DocumentedError::SimultaneousRequests, 403), "concurrency"),
        (documented(DocumentedError::ApiDoesNotExist, 400), "bad_request"),
        (documented(DocumentedError::ParametersRequired, 200), "bad_request"),
        (Fault::Raw { status: 403, body: String::new() }, "forbidden"),
        (Fault::RetryAfter { status: 429, seconds: 1 }, "rate_limited"),
        (Fault::Raw { status: 502, body: "<html>Bad Gateway</html>".into() }, "http"),
        (Fault::Raw { status: 404, body: String::new() }, "http"),
        (Fault::MalformedJson, "decode"),
        (Fault::TruncatedJson, "decode"),
        (Fault::Raw { status: 200, body: "[]".into() }, "decode"),
        (Fault::Oversized(64 * 1024), "too_large"),
        (Fault::OversizedStreamed(64 * 1024), "too_large"),
        (Fault::Delay(Duration::from_secs(4)), "timeout"),
    ])
    .await;
}

#[tokio::test]
async fn an_unreachable_api_is_a_transport_failure() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let base_url = format!("http://{closed}");
    let exporter = start_exporter(&simulator, "200ms", &["--wolkvox.base-url", &base_url]).await;
    let text = wait_for(WAIT, "a transport failure", || async {
        let text = scrape(&exporter).await;
        (failures(&text, "transport") >= 1.0).then_some(text)
    })
    .await;
    assert_eq!(up(&text), Some(0.0));
    assert!(samples(&text, "wolkvox_gamification_licenses").is_empty());
    exporter.stop().await;
}

/// Ready while it serves, whatever Wolkvox answers: a rollout during a Wolkvox outage goes on, and
/// the pod stays in its Service with its alerts.
#[tokio::test]
async fn readiness_does_not_wait_for_wolkvox() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_fault(Some(Fault::Raw { status: 500, body: String::new() }));
    let exporter = start_exporter(&simulator, "200ms", &[]).await;
    wait_for(WAIT, "a failed poll", || async {
        (failures(&scrape(&exporter).await, "http") >= 1.0).then_some(())
    })
    .await;
    assert_eq!(get(&exporter, "/-/ready").await.0, 200);
    assert_eq!(get(&exporter, "/-/healthy").await.0, 200);
    assert!(
        get(&exporter, "/").await.1.contains("waiting for a first successful poll"),
        "the landing page says what is missing"
    );

    simulator.set_fault(None);
    wait_first_success(&exporter).await;
    assert!(get(&exporter, "/").await.1.contains("every server has answered"));
    exporter.stop().await;
}

#[tokio::test]
async fn usage_series_disappear_after_stale_after_but_health_stays() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start_exporter(&simulator, "200ms", &["--wolkvox.stale-after", "1s"]).await;
    wait_first_success(&exporter).await;
    assert!(!samples(&scrape(&exporter).await, "wolkvox_gamification_licenses").is_empty());

    simulator.set_fault(Some(Fault::Documented {
        error: DocumentedError::ValidateToken,
        http_status: 403,
    }));
    let text = wait_for(WAIT, "stale series to go", || async {
        let text = scrape(&exporter).await;
        samples(&text, "wolkvox_gamification_licenses").is_empty().then_some(text)
    })
    .await;
    assert_eq!(up(&text), Some(0.0));
    assert!(samples(&text, "wolkvox_gamification_licenses_max").is_empty());
    assert!(
        sample(
            &text,
            "wolkvox_last_success_timestamp_seconds{server=\"0042\",api=\"gamification\"}"
        )
        .is_some()
    );
    exporter.stop().await;
}

#[tokio::test]
async fn a_slow_api_never_sees_two_calls_from_targets_sharing_a_token() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    simulator.set_fault(Some(Fault::Delay(Duration::from_millis(150))));
    let dir = tempdir();
    let file = dir.join("targets.yml");
    let base_url = simulator.base_url();
    let state_dir = dir.join("data");
    std::fs::write(
        &file,
        format!(
            "targets:\n  - {{server: '0001', token_env: SHARED_TOKEN, base_url: '{base_url}'}}\n  - {{server: '0002', token_env: SHARED_TOKEN, base_url: '{base_url}'}}\n  - {{server: '0003', token_env: SHARED_TOKEN, base_url: '{base_url}'}}\n"
        ),
    )
    .unwrap();
    let args = [
        "--config.file",
        file.to_str().unwrap(),
        "--wolkvox.poll-interval",
        "100ms",
        "--wolkvox.allow-fast-poll",
        "--web.listen-address",
        "127.0.0.1:0",
        "--storage.path",
        state_dir.to_str().unwrap(),
    ];
    let config = common::config(&args, &[("SHARED_TOKEN", FAKE_TOKEN)]).unwrap();
    let exporter = wolkvox_exporter::Exporter::start(config).await.unwrap();
    wait_first_success(&exporter).await;
    // Enough slow calls, of all three targets, that they would have overlapped had the lane let them.
    wait_for(Duration::from_secs(20), "eight calls covering the three servers", || async {
        let requests = simulator.requests();
        let every_server = ["0001", "0002", "0003"]
            .iter()
            .all(|s| requests.iter().any(|r| r.server_header.as_deref() == Some(*s)));
        (requests.len() >= 8 && every_server).then_some(())
    })
    .await;
    exporter.stop().await;
    assert_eq!(simulator.max_in_flight(FAKE_TOKEN), 1);
}

#[tokio::test]
async fn the_interval_is_respected_end_to_end() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start_exporter(&simulator, "1s", &[]).await;
    // When each call reached the simulator, as noticed by looking at its record every 5 ms.
    let mut arrivals = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while arrivals.len() < 4 {
        let now = std::time::Instant::now();
        arrivals.resize(simulator.requests().len().max(arrivals.len()), now);
        assert!(now < deadline, "{} polls in 15 s at a 1 s interval", arrivals.len());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    exporter.stop().await;
    for (k, pair) in arrivals.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        // The interval is a floor, counted from the end of the previous call, and jitter only adds
        // to it (at most 5%); 50 ms of slack for how late a call may be noticed.
        assert!(
            gap >= Duration::from_millis(950),
            "poll {} came {gap:?} after the previous one at a 1 s interval",
            k + 2
        );
        // Nor does the lane fall far behind its schedule.
        assert!(
            gap < Duration::from_secs(3),
            "poll {} came {gap:?} after the previous one at a 1 s interval",
            k + 2
        );
    }
}

#[tokio::test]
async fn http_surface() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start_exporter(&simulator, "1h", &[]).await;
    wait_first_success(&exporter).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", exporter.addr());

    assert_eq!(get(&exporter, "/nope").await.0, 404);
    assert_eq!(client.post(url("/metrics")).send().await.unwrap().status().as_u16(), 405);
    assert_eq!(client.delete(url("/-/ready")).send().await.unwrap().status().as_u16(), 405);
    let length = |response: &reqwest::Response| -> usize {
        response.headers()["content-length"].to_str().unwrap().parse().unwrap()
    };
    let head = client.head(url("/metrics")).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert!(
        head.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4")
    );
    let head_length = length(&head);
    assert!(head.bytes().await.unwrap().is_empty(), "HEAD sends no body");
    let full = client.get(url("/metrics")).send().await.unwrap();
    let get_length = length(&full);
    assert_eq!(
        full.bytes().await.unwrap().len(),
        get_length,
        "Content-Length is the body's length"
    );
    // The process metrics at the end may change between the two requests by a few bytes.
    assert!(
        head_length.abs_diff(get_length) < 64,
        "HEAD announces the GET's length: {head_length} vs {get_length}"
    );

    let (status, landing) = get(&exporter, "/").await;
    assert_eq!(status, 200);
    assert!(
        landing.contains("<td>0042</td><td>gamification</td>")
            && landing.contains("href=\"/metrics\""),
        "{landing}"
    );
    assert!(
        landing.contains("<span class=\"ok\">ok</span> (") && landing.contains(" ago)"),
        "{landing}"
    );
    let (status, readme) = get(&exporter, "/README.md").await;
    assert_eq!(status, 200);
    assert!(
        readme.starts_with("# wolkvox_exporter\n"),
        "the landing page's README link serves the README"
    );
    // Every link of the landing page answers, the docs among them.
    let links: Vec<&str> =
        landing.split("href=\"").skip(1).map(|rest| &rest[..rest.find('"').unwrap()]).collect();
    for needed in
        ["/metrics", "/README.md", "/docs/runbook.md", "/docs/configuration.md", "/docs/metrics.md"]
    {
        assert!(links.contains(&needed), "the landing page does not link {needed}: {links:?}");
    }
    for link in &links {
        assert_eq!(get(&exporter, link).await.0, 200, "the landing page links {link}");
    }
    // The runbook every alert's runbook_url names: a heading for every alert of the rules.
    let (status, runbook) = get(&exporter, "/docs/runbook.md").await;
    assert_eq!(status, 200);
    let alerts = crate::common::tools::bundled_alerts();
    assert!(alerts.len() >= 8, "{alerts:?}");
    for alert in alerts {
        assert!(
            runbook.contains(&format!("\n## {alert}\n")),
            "/docs/runbook.md has no section for {alert}"
        );
    }
    // Every file of docs/ is served as built, and nothing else under /docs/.
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/docs")).unwrap() {
        let file = entry.unwrap().path();
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        let (status, text) = get(&exporter, &format!("/docs/{name}")).await;
        assert_eq!(
            status, 200,
            "docs/{name} is not served at /docs/{name}: add it to DOCS in src/serve/router.rs"
        );
        assert_eq!(
            text,
            std::fs::read_to_string(&file).unwrap(),
            "/docs/{name} is not docs/{name}"
        );
    }
    assert_eq!(get(&exporter, "/docs/nope.md").await.0, 404);
    exporter.stop().await;
}

#[tokio::test]
async fn custom_telemetry_path() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter =
        start_exporter(&simulator, "1h", &["--web.telemetry-path", "/wolkvox/metrics"]).await;
    let (status, text) = get(&exporter, "/wolkvox/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("wolkvox_up"));
    assert_eq!(get(&exporter, "/metrics").await.0, 404);
    exporter.stop().await;
}

fn tempdir() -> common::tools::TestDir {
    common::tools::temp_dir("test")
}

#[tokio::test]
async fn a_rotated_token_file_is_used_at_the_next_poll_without_a_restart() {
    const NEXT_TOKEN: &str = "fake-token-for-tests-0002";
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let dir = common::tools::temp_dir("rotation");
    let token_file = dir.join("token");
    std::fs::write(&token_file, FAKE_TOKEN).unwrap();
    let base_url = simulator.base_url();
    let state_dir = dir.join("data");
    let args = [
        "--wolkvox.server",
        "0042",
        "--wolkvox.token-file",
        token_file.to_str().unwrap(),
        "--wolkvox.base-url",
        &base_url,
        "--wolkvox.poll-interval",
        "200ms",
        "--wolkvox.allow-fast-poll",
        "--web.listen-address",
        "127.0.0.1:0",
        "--storage.path",
        state_dir.to_str().unwrap(),
    ];
    let exporter =
        wolkvox_exporter::Exporter::start(common::config(&args, &[]).unwrap()).await.unwrap();
    wait_first_success(&exporter).await;

    // The new token is valid on both sides before the file changes, as in a careful rotation.
    simulator.set_accepted_tokens(&[FAKE_TOKEN, NEXT_TOKEN]);
    std::fs::write(&token_file, format!("{NEXT_TOKEN}\n")).unwrap();
    wait_for(WAIT, "a poll with the new token", || async {
        (simulator.max_in_flight(NEXT_TOKEN) > 0).then_some(())
    })
    .await;
    simulator.set_accepted_tokens(&[NEXT_TOKEN]);
    let before = simulator.requests().len();
    wait_for(WAIT, "more polls", || async {
        (simulator.requests().len() > before + 2).then_some(())
    })
    .await;
    let text = scrape(&exporter).await;
    assert_eq!(up(&text), Some(1.0));
    assert_eq!(failures(&text, "auth"), 0.0);
    exporter.stop().await;
}
