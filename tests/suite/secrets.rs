//! The token appears nowhere: not in logs at any level (ours and the libraries'), not in any HTTP
//! response, not even when the upstream echoes it back.

use crate::common;

use std::time::Duration;

use common::{FAKE_TOKEN, get, scrape, start_exporter, wait_first_success, wait_for};
use wolkvox_exporter::simulator::{DocumentedError, Fault, Simulator};

// Its own runtime, whose threads log everything into `logs`: the other tests of the binary run
// beside it in this process.
#[test]
fn the_token_never_appears_in_logs_or_responses() {
    let logs = common::Logs::default();
    common::logging_everything(&logs, the_token_never_appears(&logs));
}

async fn the_token_never_appears(logs: &common::Logs) {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start_exporter(&simulator, "100ms", &["--wolkvox.timeout", "300ms"]).await;
    wait_first_success(&exporter).await;
    let echo = format!(
        r#"{{"code": 403, "error": "FORBIDDEN", "msg": "PLEASE VALIDATE TOKEN {FAKE_TOKEN}"}}"#
    );
    // Wolkvox writes its messages in capitals; a message may cut the token short, or carry it
    // base64-encoded.
    let shouted = format!(
        r#"{{"code": 403, "error": "FORBIDDEN", "msg": "TOKEN {} IS INVALID"}}"#,
        FAKE_TOKEN.to_uppercase()
    );
    let cut = format!(
        r#"{{"code": 403, "error": "FORBIDDEN", "msg": "token {}... is invalid"}}"#,
        &FAKE_TOKEN[..12]
    );
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(FAKE_TOKEN);
    let base64 =
        format!(r#"{{"code": 403, "error": "FORBIDDEN", "msg": "header {encoded} refused"}}"#);
    let faults = [
        Fault::Raw { status: 403, body: shouted },
        Fault::Raw { status: 403, body: cut },
        Fault::Raw { status: 403, body: base64 },
        Fault::Raw { status: 403, body: echo.clone() },
        Fault::Raw { status: 200, body: echo },
        Fault::Documented { error: DocumentedError::ValidateToken, http_status: 403 },
        Fault::Delay(Duration::from_secs(1)),
        Fault::MalformedJson,
        Fault::Raw { status: 500, body: String::new() },
    ];
    for fault in faults {
        simulator.push_fault(fault);
    }
    wait_for(Duration::from_secs(20), "every fault to be served", || async {
        (simulator.requests().len() >= 11).then_some(())
    })
    .await;

    let mut responses = vec![scrape(&exporter).await];
    for path in ["/", "/-/ready", "/-/healthy", "/nope"] {
        responses.push(get(&exporter, path).await.1);
    }
    exporter.stop().await;

    let logs = logs.text();
    assert!(logs.contains("poll failed"), "the failures were logged");
    assert!(logs.contains("<redacted>"), "the echoed token was replaced");
    let traces = [
        FAKE_TOKEN.to_owned(),
        FAKE_TOKEN.to_uppercase(),
        FAKE_TOKEN[..12].to_owned(),
        encoded.trim_end_matches('=').to_owned(),
    ];
    for trace in &traces {
        assert!(!logs.contains(trace.as_str()), "the token leaked into the logs as {trace}");
        for body in &responses {
            assert!(
                !body.contains(trace.as_str()),
                "the token leaked into a response as {trace}: {body}"
            );
        }
    }
}
