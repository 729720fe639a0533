//! TLS, client certificates, basic auth, security headers, reloading, and the limits that keep
//! slow clients from stopping scrapes: the exporter's server with real clients (reqwest over
//! rustls, and raw TCP where a client must misbehave).

use crate::common;
use crate::common::certs;
use crate::common::tools;

use std::path::Path;
use std::time::Duration;

use certs::{Authority, Issued};
use common::{FAKE_TOKEN, config, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wolkvox_exporter::simulator::Simulator;

/// The exporter against a simulator, serving with the given web configuration file.
async fn start(simulator: &Simulator, web_config: &Path, extra: &[&str]) -> common::TestExporter {
    let mut args = vec!["--web.config.file", web_config.to_str().unwrap()];
    args.extend_from_slice(extra);
    common::start_exporter(simulator, "1h", &args).await
}

fn https_client(ca: &Path, identity: Option<&Issued>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    let mut builder =
        reqwest::Client::builder().tls_certs_only([ca]).timeout(Duration::from_secs(10));
    if let Some(issued) = identity {
        let pem =
            [std::fs::read(&issued.cert).unwrap(), std::fs::read(&issued.key).unwrap()].concat();
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

fn write(path: &Path, text: &str) {
    // Write then rename, as a careful operator (or a config manager) replaces a file.
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

#[tokio::test]
async fn tls_serves_verifying_clients_and_tells_plain_http_what_is_wrong() {
    let dir = tools::temp_dir("tls");
    let server = Authority::new("test CA").issue(&dir, "server", &["localhost", "127.0.0.1"]);
    let web = dir.join("web.yml");
    write(
        &web,
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  min_version: TLS12\n",
            server.cert.display(),
            server.key.display()
        ),
    );
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start(&simulator, &web, &[]).await;
    let port = exporter.addr().port();

    let client = https_client(&server.ca, None);
    let body = client
        .get(format!("https://localhost:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("wolkvox_up"), "{body}");

    let plain = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap();
    assert_eq!(plain.status().as_u16(), 400);
    assert!(plain.text().await.unwrap().contains("HTTP request to an HTTPS server"));

    // A client that does not trust the CA refuses the connection.
    let stranger =
        https_client(&Authority::new("other CA").issue(&dir, "other", &["localhost"]).ca, None);
    assert!(stranger.get(format!("https://localhost:{port}/metrics")).send().await.is_err());
    exporter.stop().await;
}

#[tokio::test]
async fn client_certificates_are_required_and_verified() {
    let dir = tools::temp_dir("mtls");
    let authority = Authority::new("test CA");
    let server = authority.issue(&dir, "server", &["localhost"]);
    let client_cert = authority.issue(&dir, "prometheus", &["prometheus"]);
    let rogue = Authority::new("rogue CA").issue(&dir, "rogue", &["prometheus"]);
    let web = dir.join("web.yml");
    write(
        &web,
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            server.cert.display(),
            server.key.display(),
            server.ca.display()
        ),
    );
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start(&simulator, &web, &[]).await;
    let url = format!("https://localhost:{}/metrics", exporter.addr().port());

    let with_cert = https_client(&server.ca, Some(&client_cert)).get(&url).send().await.unwrap();
    assert_eq!(with_cert.status().as_u16(), 200);
    assert!(
        https_client(&server.ca, None).get(&url).send().await.is_err(),
        "no client certificate must be refused"
    );
    assert!(
        https_client(&server.ca, Some(&rogue)).get(&url).send().await.is_err(),
        "a certificate from another CA must be refused"
    );
    exporter.stop().await;
}

fn users_file(users: &[(&str, &str)]) -> String {
    let mut text = String::from(
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n",
    );
    for (user, password) in users {
        text.push_str(&format!("  {user}: '{}'\n", bcrypt::hash(password, 4).unwrap()));
    }
    text
}

async fn status(
    client: &reqwest::Client,
    url: &str,
    credentials: Option<(&str, &str)>,
) -> reqwest::Response {
    let request = client.get(url);
    let request = match credentials {
        Some((user, password)) => request.basic_auth(user, Some(password)),
        None => request,
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn basic_auth_refuses_every_wrong_credential_and_sends_security_headers() {
    let dir = tools::temp_dir("auth");
    let web = dir.join("web.yml");
    write(&web, &users_file(&[("prometheus", "s3cret")]));
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start(&simulator, &web, &[]).await;
    let url = format!("http://{}/metrics", exporter.addr());
    let client = reqwest::Client::new();

    let ok = status(&client, &url, Some(("prometheus", "s3cret"))).await;
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["x-frame-options"], "deny");
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    for credentials in
        [None, Some(("prometheus", "wrong")), Some(("stranger", "s3cret")), Some(("", ""))]
    {
        let refused = status(&client, &url, credentials).await;
        assert_eq!(refused.status().as_u16(), 401, "{credentials:?}");
        assert_eq!(refused.headers()["www-authenticate"], "Basic realm=\"wolkvox_exporter\"");
        assert_eq!(refused.headers()["x-frame-options"], "deny");
    }
    exporter.stop().await;
}

#[tokio::test]
async fn probes_answer_without_credentials_and_everything_else_requires_them() {
    let dir = tools::temp_dir("probes");
    let web = dir.join("web.yml");
    write(&web, &users_file(&[("prometheus", "s3cret")]));
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start(&simulator, &web, &[]).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", exporter.addr());

    // A kubelet has no password: a 401 here would restart a healthy pod.
    let healthy = status(&client, &url("/-/healthy"), None).await;
    assert_eq!(healthy.status().as_u16(), 200);
    assert_eq!(
        healthy.headers()["x-frame-options"],
        "deny",
        "the security headers apply to probes too"
    );
    let ready = status(&client, &url("/-/ready"), None).await.status().as_u16();
    assert!(ready == 200 || ready == 503, "readiness answers without credentials: {ready}");
    for path in
        ["/metrics", "/", "/README.md", "/docs/runbook.md", "/-/healthy/../../metrics", "/nope"]
    {
        assert_eq!(
            status(&client, &url(path), None).await.status().as_u16(),
            401,
            "{path} must require credentials"
        );
        let allowed =
            status(&client, &url(path), Some(("prometheus", "s3cret"))).await.status().as_u16();
        assert_ne!(allowed, 401, "{path} with credentials");
    }
    exporter.stop().await;
}

#[tokio::test]
async fn users_and_certificates_are_reloaded_and_a_broken_file_keeps_the_last_good_one() {
    let logs = common::captured_logs();
    let dir = tools::temp_dir("reload");
    let web = dir.join("web.yml");
    let first = Authority::new("first CA").issue(&dir, "first", &["localhost"]);
    let tls = |issued: &Issued| {
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
            issued.cert.display(),
            issued.key.display()
        )
    };
    write(&web, &format!("{}{}", tls(&first), users_file(&[("alice", "one")])));
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start(&simulator, &web, &[]).await;
    let url = format!("https://localhost:{}/metrics", exporter.addr().port());
    let trusts_first = https_client(&first.ca, None);
    assert_eq!(status(&trusts_first, &url, Some(("alice", "one"))).await.status().as_u16(), 200);

    // New users: bob gets in, alice no longer does, without a restart.
    write(&web, &format!("{}{}", tls(&first), users_file(&[("bob", "two")])));
    wait_for(Duration::from_secs(10), "bob to be accepted", || async {
        (status(&trusts_first, &url, Some(("bob", "two"))).await.status().as_u16() == 200)
            .then_some(())
    })
    .await;
    assert_eq!(status(&trusts_first, &url, Some(("alice", "one"))).await.status().as_u16(), 401);

    // A renewed certificate from another CA is served to new connections.
    let second = Authority::new("second CA").issue(&dir, "second", &["localhost"]);
    write(&web, &format!("{}{}", tls(&second), users_file(&[("bob", "two")])));
    wait_for(Duration::from_secs(10), "the new certificate", || async {
        https_client(&second.ca, None)
            .get(&url)
            .basic_auth("bob", Some("two"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;

    // A broken file is refused (the watcher says so), and the last good configuration stays in
    // force while the file is broken: the second certificate, bob in, alice and strangers out.
    write(&web, "basic_auth_users: [this is not a map\n");
    let file = web.display().to_string();
    wait_for(Duration::from_secs(10), "the broken file to be refused", || async {
        (!logs.lines_with(&["web configuration is invalid", &file]).is_empty()).then_some(())
    })
    .await;
    let client = https_client(&second.ca, None);
    assert_eq!(status(&client, &url, Some(("bob", "two"))).await.status().as_u16(), 200);
    assert_eq!(status(&client, &url, Some(("alice", "one"))).await.status().as_u16(), 401);
    assert_eq!(status(&client, &url, None).await.status().as_u16(), 401);
    assert!(
        https_client(&first.ca, None).get(&url).send().await.is_err(),
        "the first certificate came back"
    );

    // The watcher outlived the broken file: the next good one takes effect, certificate and users
    // (a new client each time, so that a pooled connection cannot hide the old certificate).
    write(&web, &format!("{}{}", tls(&first), users_file(&[("carol", "three")])));
    wait_for(Duration::from_secs(10), "the good file after the broken one", || async {
        let response = https_client(&first.ca, None)
            .get(&url)
            .basic_auth("carol", Some("three"))
            .send()
            .await
            .ok()?;
        (response.status().as_u16() == 200).then_some(())
    })
    .await;
    assert_eq!(
        status(&https_client(&first.ca, None), &url, Some(("bob", "two"))).await.status().as_u16(),
        401
    );
    exporter.stop().await;
}

/// The `tls_server_config` section serving `issued`, requiring client certificates from its CA if
/// `require_client_certificates`.
fn tls_section(issued: &Issued, require_client_certificates: bool) -> String {
    let mut text = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
        issued.cert.display(),
        issued.key.display()
    );
    if require_client_certificates {
        text.push_str(&format!(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
            issued.ca.display()
        ));
    }
    text
}

/// Waits for a log line naming `file` that was not there in `before`, and returns it.
async fn next_log_line_naming(logs: &common::Logs, file: &Path, before: usize) -> String {
    let file = file.display().to_string();
    wait_for(Duration::from_secs(10), "a log line naming the web configuration file", || async {
        logs.lines_with(&["web configuration", &file]).get(before).cloned()
    })
    .await
}

#[tokio::test]
async fn an_emptied_web_config_keeps_tls_and_basic_auth() {
    let logs = common::captured_logs();
    let dir = tools::temp_dir("emptied");
    let server = Authority::new("test CA").issue(&dir, "server", &["localhost", "127.0.0.1"]);
    let web = dir.join("web.yml");
    write(
        &web,
        &format!("{}{}", tls_section(&server, false), users_file(&[("prometheus", "s3cret")])),
    );
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start(&simulator, &web, &[]).await;
    let port = exporter.addr().port();
    let url = format!("https://localhost:{port}/metrics");
    assert_eq!(
        status(&https_client(&server.ca, None), &url, Some(("prometheus", "s3cret")))
            .await
            .status()
            .as_u16(),
        200
    );

    // Written in place, as an editor mid-write or a full disk leaves the file: nothing, blank
    // lines, only a comment.
    for (seen, emptied) in ["", "\n  \n", "# being edited\n"].into_iter().enumerate() {
        std::fs::write(&web, emptied).unwrap();
        let line = next_log_line_naming(&logs, &web, seen).await;
        // A new client each time: a new connection, which gets the settings in force now.
        let client = https_client(&server.ca, None);
        let with_credentials =
            client.get(&url).basic_auth("prometheus", Some("s3cret")).send().await;
        let with_credentials = with_credentials
            .unwrap_or_else(|error| panic!("{emptied:?}: TLS is no longer served: {error}"));
        assert_eq!(with_credentials.status().as_u16(), 200, "{emptied:?}");
        let without = client.get(&url).send().await.unwrap();
        assert_eq!(
            without.status().as_u16(),
            401,
            "{emptied:?}: credentials are no longer required"
        );
        let plain = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap();
        assert_eq!(plain.status().as_u16(), 400, "{emptied:?}: plain HTTP is served");
        assert!(
            line.contains("WARN")
                && line.contains("empty")
                && line.contains("keeping the last good"),
            "{line}"
        );
    }
    exporter.stop().await;
}

#[tokio::test]
async fn a_reload_that_removes_protection_is_applied_and_says_what_at_warn() {
    let logs = common::captured_logs();
    let dir = tools::temp_dir("unprotected");
    let authority = Authority::new("test CA");
    let server = authority.issue(&dir, "server", &["localhost", "127.0.0.1"]);
    let client_cert = authority.issue(&dir, "prometheus", &["prometheus"]);
    let web = dir.join("web.yml");
    write(
        &web,
        &format!("{}{}", tls_section(&server, true), users_file(&[("prometheus", "s3cret")])),
    );
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start(&simulator, &web, &[]).await;
    let port = exporter.addr().port();
    let https = format!("https://localhost:{port}/metrics");
    let client = https_client(&server.ca, Some(&client_cert));
    assert_eq!(
        status(&client, &https, Some(("prometheus", "s3cret"))).await.status().as_u16(),
        200
    );

    // A real document that drops TLS and basic auth on purpose: applied, and said loudly.
    write(&web, "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n");
    let line = next_log_line_naming(&logs, &web, 0).await;
    assert!(line.contains("WARN"), "{line}");
    for removed in ["TLS", "client certificates", "basic auth"] {
        assert!(line.contains(removed), "{removed} is not named: {line}");
    }
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.unwrap();
    assert_eq!(plain.status().as_u16(), 200, "the new file was not applied");
    exporter.stop().await;
}

#[tokio::test]
async fn an_explicit_empty_mapping_serves_unprotected_and_says_so_at_start_up() {
    let logs = common::captured_logs();
    let dir = tools::temp_dir("explicit-empty");
    let web = dir.join("web.yml");
    write(&web, "{}\n");
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start(&simulator, &web, &[]).await;
    let line = next_log_line_naming(&logs, &web, 0).await;
    assert!(line.contains("WARN") && line.contains("neither TLS nor basic auth"), "{line}");
    assert_eq!(common::get(&exporter, "/metrics").await.0, 200);
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_does_not_lock_out_the_right_ones() {
    let dir = tools::temp_dir("flood");
    let web = dir.join("web.yml");
    // Cost 10, as htpasswd -B makes them: every unknown password costs a real bcrypt.
    let users = [("prometheus", "s3cret"), ("grafana", "fake-grafana-password")];
    let mut text = String::from("basic_auth_users:\n");
    for (user, password) in users {
        text.push_str(&format!("  {user}: '{}'\n", bcrypt::hash(password, 10).unwrap()));
    }
    write(&web, &text);
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start(&simulator, &web, &[]).await;
    let url = format!("http://{}/metrics", exporter.addr());
    let prometheus = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    // Prometheus has scraped before the flood starts.
    assert_eq!(status(&prometheus, &url, Some(users[0])).await.status().as_u16(), 200);

    // 100 clients guessing passwords as fast as they are answered; bounded in count and time.
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let attackers: Vec<_> = (0..100)
        .map(|attacker| {
            let (url, flooding) = (url.clone(), flooding.clone());
            tokio::spawn(async move {
                let client =
                    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                for guess in 0..300 {
                    if !flooding.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let _ = client
                        .get(&url)
                        .basic_auth("prometheus", Some(format!("wrong-guess-{attacker}-{guess}")))
                        .send()
                        .await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut statuses = Vec::new();
    for _ in 0..16 {
        statuses.push(status(&prometheus, &url, Some(users[0])).await.status().as_u16());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(served, 16, "{served} of 16 scrapes served under the flood: {statuses:?}");

    // Credentials not verified before wait for a turn at bcrypt: a 503 when none came in time says
    // they were not checked, never that they are wrong.
    let newcomer = status(&prometheus, &url, Some(users[1])).await.status().as_u16();
    assert!(newcomer == 200 || newcomer == 503, "{newcomer}");
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    for attacker in attackers {
        attacker.await.unwrap();
    }
    exporter.stop().await;
}

#[tokio::test]
async fn requests_past_the_cap_are_refused_at_once() {
    let dir = tools::temp_dir("cap");
    let web = dir.join("web.yml");
    // Cost 12: checking a password takes a noticeable while, holding the only request slot.
    write(
        &web,
        &format!("basic_auth_users:\n  prometheus: '{}'\n", bcrypt::hash("s3cret", 12).unwrap()),
    );
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start(&simulator, &web, &["--web.max-requests", "1"]).await;
    let url = format!("http://{}/metrics", exporter.addr());
    let client = reqwest::Client::new();
    // Verified once, so that these scrapes need no bcrypt from now on.
    assert_eq!(status(&client, &url, Some(("prometheus", "s3cret"))).await.status().as_u16(), 200);

    // Wrong guesses, one after another: each holds the slot while bcrypt checks it (or, sent while
    // a scrape held it, is refused in turn).
    let guessing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let guesser = tokio::spawn({
        let (url, guessing) = (url.clone(), guessing.clone());
        async move {
            let mut statuses = Vec::new();
            while guessing.load(std::sync::atomic::Ordering::Relaxed) && statuses.len() < 50 {
                statuses.push(
                    status(&reqwest::Client::new(), &url, Some(("prometheus", "wrong-guess")))
                        .await
                        .status()
                        .as_u16(),
                );
            }
            statuses
        }
    });
    let refused =
        wait_for(Duration::from_secs(10), "a scrape refused while a guess is checked", || async {
            let response = status(&client, &url, Some(("prometheus", "s3cret"))).await;
            (response.status().as_u16() == 503).then_some(response)
        })
        .await;
    guessing.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refused.text().await.unwrap(), "Too many concurrent requests\n");
    let guesses = guesser.await.unwrap();
    assert!(
        guesses.contains(&401) && guesses.iter().all(|s| *s == 401 || *s == 503),
        "{guesses:?}"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn idle_and_slow_clients_do_not_stop_other_scrapes() {
    let dir = tools::temp_dir("slow");
    let web = dir.join("web.yml");
    write(&web, "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n");
    let simulator = Simulator::start(&[FAKE_TOKEN]).await.unwrap();
    let exporter = start(&simulator, &web, &[]).await;
    let addr = exporter.addr();

    // 300 connections that say nothing, and 50 that send half a request and stall.
    let mut hogs = Vec::new();
    for i in 0..350 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        if i >= 300 {
            stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        }
        hogs.push(stream);
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    for _ in 0..10 {
        let response = client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("a scrape gets through");
        assert_eq!(response.status().as_u16(), 200);
    }
    // Slow clients do not hold their connection for ever: the header read times out.
    let mut slow = hogs.pop().unwrap();
    let mut buffer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut buffer)).await;
    assert!(closed.is_ok(), "a stalled request was never closed");
    exporter.stop().await;
}

#[test]
fn invalid_web_configurations_stop_start_up_naming_the_field() {
    let dir = tools::temp_dir("web-invalid");
    let server = Authority::new("test CA").issue(&dir, "server", &["localhost"]);
    let cases = [
        ("tls_server_config:\n  key_file: x\n".to_owned(), "tls_server_config.cert_file"),
        (
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: /nonexistent\n",
                server.cert.display()
            ),
            "tls_server_config.key_file",
        ),
        (
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  min_version: SSL3\n",
                server.cert.display(),
                server.key.display()
            ),
            "tls_server_config.min_version",
        ),
        (
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n",
                server.cert.display(),
                server.key.display()
            ),
            "tls_server_config.client_ca_file",
        ),
        (
            format!(
                "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: Sometimes\n",
                server.cert.display(),
                server.key.display()
            ),
            "client_auth_type",
        ),
        ("basic_auth_users:\n  alice: plaintext-password\n".to_owned(), "basic_auth_users.alice"),
        (
            "http_server_config:\n  headers:\n    X-Powered-By: me\n".to_owned(),
            "http_server_config.headers.X-Powered-By",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow-all\n".to_owned(),
            "http_server_config.headers.X-Frame-Options",
        ),
        ("tls_config: {}\n".to_owned(), "unknown field `tls_config`"),
        // Most likely a mistake (a file not written yet); `{}` says "no protection" on purpose.
        (String::new(), "empty"),
        ("\n  \n".to_owned(), "empty"),
        ("# to be written\n".to_owned(), "empty"),
    ];
    for (text, expected) in cases {
        let web = dir.join("web.yml");
        std::fs::write(&web, &text).unwrap();
        let args = ["--wolkvox.server", "0042", "--web.config.file", web.to_str().unwrap()];
        let error = config(&args, &[("WOLKVOX_TOKEN", FAKE_TOKEN)])
            .expect_err("must be refused")
            .to_string();
        let named = error.contains(&format!("--web.config.file {}", web.display()));
        assert!(named && error.contains(expected), "{text:?}: {error}");
    }
}
