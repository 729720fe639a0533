//! Upstreams that misbehave on purpose: the exporter survives, keeps serving the last good values,
//! and says why. (The documented faults are in tests/suite/exporter.rs.)

use crate::common;
use crate::common::certs;
use crate::common::tools;

use std::time::Duration;

use common::{
    FAKE_TOKEN, check_faults, failures, samples, scrape, start_exporter, up, wait_first_success,
    wait_for,
};
use wolkvox_exporter::simulator::{Fault, Simulator};

#[tokio::test]
async fn hostile_bodies_are_survived_and_classified() {
    let nested =
        format!("{{\"code\": 200, \"data\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    check_faults(vec![
        // A byte every 300 ms: the total timeout (3 s) still holds.
        (Fault::Trickle(Duration::from_millis(300)), "timeout"),
        // The size cap (32 KiB) holds on a body that never ends.
        (Fault::Endless, "too_large"),
        // 4 MiB of blanks, gzipped to 4 KiB (128 times the size cap): never inflated, as no
        // compression is asked for.
        (Fault::GzipBomb(4 << 20), "decode"),
        (Fault::ResetMidBody, "transport"),
        // Redirects are not followed (they would carry the token), loops included.
        (Fault::RedirectLoop, "http"),
        (
            Fault::RawBytes { status: 200, body: b"{\"code\": 200, \"data\": [{\"operation\": \"\xff\xfe\", \"items\": \"1\"}]}".to_vec() },
            "decode",
        ),
        (Fault::Raw { status: 200, body: nested }, "decode"),
        (
            Fault::Raw { status: 200, body: r#"{"code": 200, "data": [{"operation": "a", "description": "b", "items": 1e999}]}"#.into() },
            "decode",
        ),
    ])
    .await;
}

#[tokio::test]
async fn huge_but_finite_numbers_and_duplicate_keys_are_read_as_json_reads_them() {
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let body = r#"{"code": 200, "code": "200", "data": [
        {"operation": "a", "description": "b", "items": "1", "items": "7"},
        {"operation": "big", "description": "b", "items": 123456789012345678901234567890}]}"#;
    simulator.set_fault(Some(Fault::Raw { status: 200, body: body.into() }));
    let exporter = start_exporter(&simulator, "1h", &[]).await;
    wait_first_success(&exporter).await;
    let text = scrape(&exporter).await;
    let values = samples(&text, "wolkvox_gamification_licenses");
    assert_eq!(
        values[0],
        (
            "wolkvox_gamification_licenses{server=\"0042\",operation=\"a\",description=\"b\"}"
                .to_owned(),
            7.0
        ),
        "the last duplicate wins"
    );
    assert_eq!(values[1].1, 1.2345678901234568e29);
    exporter.stop().await;
}

#[tokio::test]
async fn an_upstream_certificate_that_does_not_verify_is_refused_unless_its_ca_is_named() {
    let dir = tools::temp_dir("upstream-tls");
    let authority = certs::Authority::new("private upstream CA");
    let server = authority.issue(&dir, "upstream", &["localhost"]);
    let web = dir.join("upstream-web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            server.cert.display(),
            server.key.display()
        ),
    )
    .unwrap();
    let simulator = Simulator::start_tls(&[FAKE_TOKEN], &web).await.unwrap();

    let untrusting = start_exporter(&simulator, "200ms", &[]).await;
    let text = wait_for(Duration::from_secs(15), "a refused certificate", || async {
        let text = scrape(&untrusting).await;
        (failures(&text, "transport") >= 1.0).then_some(text)
    })
    .await;
    assert_eq!(up(&text), Some(0.0));
    assert!(simulator.requests().is_empty(), "no request may reach an unverified server");
    untrusting.stop().await;

    let ca = server.ca.to_str().unwrap();
    let trusting = start_exporter(&simulator, "1h", &["--wolkvox.ca-file", ca]).await;
    wait_first_success(&trusting).await;
    assert_eq!(simulator.requests().len(), 1);
    trusting.stop().await;
}
