//! Configuration: every invalid value is refused with a message naming the field, never the token.

use crate::common;

use std::time::Duration;

use common::tools::{TestFile, temp_file};
use common::{FAKE_TOKEN, config};

const TOKEN_ENV: (&str, &str) = ("WOLKVOX_TOKEN", FAKE_TOKEN);

fn write_temp(name: &str, text: &str) -> TestFile {
    temp_file(name, text)
}

/// The error for these flags and environment, checked to name `field` and not to leak the token.
fn error(args: &[&str], env: &[(&str, &str)]) -> String {
    let error = config(args, env).expect_err("must be refused").to_string();
    assert!(!error.contains(FAKE_TOKEN), "the token leaked into {error:?}");
    error
}

fn file_error(yaml: &str, env: &[(&str, &str)]) -> String {
    let path = write_temp("targets.yml", yaml);
    error(&["--config.file", path.to_str().unwrap()], env)
}

#[test]
fn a_single_target_from_flags_gets_the_defaults() {
    let config = config(&["--wolkvox.server", "0042"], &[TOKEN_ENV]).unwrap();
    let target = &config.targets[0];
    assert_eq!(target.server, "0042");
    assert_eq!(target.base_url, "https://wv0042.wolkvox.com");
    assert_eq!(target.poll_interval, Duration::from_secs(300));
    assert_eq!(target.timeout, Duration::from_secs(60));
    assert_eq!(target.timezone_name, "America/Bogota");
    assert_eq!(target.max_response_bytes, 32 * 1024 * 1024);
    assert_eq!(target.stale_after, Duration::from_secs(3600));
    assert_eq!(target.token.expose(), FAKE_TOKEN);
    assert_eq!(config.listen_address, "0.0.0.0:10042");
    assert_eq!(config.telemetry_path, "/metrics");
}

#[test]
fn debug_output_never_shows_the_token() {
    let config = config(&["--wolkvox.server", "0042"], &[TOKEN_ENV]).unwrap();
    assert!(!format!("{config:?}").contains(FAKE_TOKEN));
}

/// Flags, environment, and what the error must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn flag_errors_name_the_flag() {
    let cases: [Case; 13] = [
        (&[], &[TOKEN_ENV], "--wolkvox.server"),
        (&["--wolkvox.server", "00 42"], &[TOKEN_ENV], "--wolkvox.server"),
        (&["--wolkvox.server", "0042"], &[], "--wolkvox.token-file: no token"),
        (&["--wolkvox.server", "0042"], &[("WOLKVOX_TOKEN", "  ")], "WOLKVOX_TOKEN"),
        (
            &["--wolkvox.server", "0042"],
            &[("WOLKVOX_TOKEN", "fake token with spaces")],
            "WOLKVOX_TOKEN",
        ),
        (
            &["--wolkvox.server", "0042", "--wolkvox.poll-interval", "1m"],
            &[TOKEN_ENV],
            "--wolkvox.poll-interval: 1m is under",
        ),
        (
            &["--wolkvox.server", "0042", "--wolkvox.timezone", "Mars/Olympus"],
            &[TOKEN_ENV],
            "--wolkvox.timezone",
        ),
        (
            &["--wolkvox.server", "0042", "--wolkvox.stale-after", "1m"],
            &[TOKEN_ENV],
            "--wolkvox.stale-after",
        ),
        (
            &["--wolkvox.server", "0042", "--wolkvox.base-url", "ftp://x"],
            &[TOKEN_ENV],
            "--wolkvox.base-url",
        ),
        (
            &["--wolkvox.server", "0042", "--web.listen-address", "nowhere"],
            &[TOKEN_ENV],
            "--web.listen-address",
        ),
        (
            &["--wolkvox.server", "0042", "--web.telemetry-path", "metrics"],
            &[TOKEN_ENV],
            "--web.telemetry-path",
        ),
        (
            &["--wolkvox.server", "0042", "--web.telemetry-path", "/docs/metrics"],
            &[TOKEN_ENV],
            "--web.telemetry-path",
        ),
        (&["--demo", "--wolkvox.server", "0042"], &[], "--demo"),
    ];
    for (args, env, expected) in cases {
        let error = error(args, env);
        assert!(error.contains(expected), "{args:?}: {error:?} does not name {expected:?}");
    }
}

#[test]
fn fast_polling_needs_the_override() {
    let args =
        ["--wolkvox.server", "0042", "--wolkvox.poll-interval", "10s", "--wolkvox.allow-fast-poll"];
    assert_eq!(
        config(&args, &[TOKEN_ENV]).unwrap().targets[0].poll_interval,
        Duration::from_secs(10)
    );
}

#[test]
fn token_files_are_trimmed_and_their_problems_named() {
    let good = write_temp("token", &format!("  {FAKE_TOKEN}\n"));
    let config =
        config(&["--wolkvox.server", "0042", "--wolkvox.token-file", good.to_str().unwrap()], &[])
            .unwrap();
    assert_eq!(config.targets[0].token.expose(), FAKE_TOKEN);

    let empty = write_temp("token", "\n");
    let message =
        error(&["--wolkvox.server", "0042", "--wolkvox.token-file", empty.to_str().unwrap()], &[]);
    assert!(message.contains("--wolkvox.token-file") && message.contains("empty"), "{message}");
    let message =
        error(&["--wolkvox.server", "0042", "--wolkvox.token-file", "/nonexistent/token"], &[]);
    assert!(message.contains("--wolkvox.token-file: cannot read /nonexistent/token"), "{message}");
    let message = error(
        &["--wolkvox.server", "0042", "--wolkvox.token-file", good.to_str().unwrap()],
        &[TOKEN_ENV],
    );
    assert!(message.contains("not both"), "{message}");
}

#[test]
fn a_targets_file_with_overrides_and_a_shared_token() {
    let token = write_temp("token", FAKE_TOKEN);
    let yaml = format!(
        "targets:\n  - server: 0042\n    token_file: {}\n    poll_interval: 10m\n    timezone: America/Mexico_City\n    timeout: 30s\n  - server: '0099'\n    token_env: OTHER_TOKEN\n",
        token.display()
    );
    let path = write_temp("targets.yml", &yaml);
    let config =
        config(&["--config.file", path.to_str().unwrap()], &[("OTHER_TOKEN", FAKE_TOKEN)]).unwrap();
    let [first, second] = &config.targets[..] else { panic!("two targets") };
    assert_eq!(first.server, "0042", "an unquoted 0042 stays a server number");
    assert_eq!(first.poll_interval, Duration::from_secs(600));
    assert_eq!(first.timezone_name, "America/Mexico_City");
    assert_eq!(first.timeout, Duration::from_secs(30));
    assert_eq!(second.poll_interval, Duration::from_secs(300), "flags set the defaults");
    assert_eq!(second.base_url, "https://wv0099.wolkvox.com");
    assert_eq!(
        wolkvox_exporter::config::group_by_token(&config.targets),
        vec![vec![0, 1]],
        "a shared token is one lane"
    );
}

#[test]
fn file_errors_name_the_field() {
    let cases = [
        (
            "targets:\n  - server: '1'\n    token_env: T\n    pol_interval: 5m\n",
            "unknown field `pol_interval`",
        ),
        (
            "targets:\n  - server: '1'\n    token_env: T\n    poll_interval: soon\n",
            "targets[0].poll_interval",
        ),
        (
            "targets:\n  - server: '1'\n    token_env: T\n    poll_interval: 1m\n",
            "targets[0].poll_interval: 1m is under",
        ),
        (
            "targets:\n  - server: '1'\n    token_env: T\n    timezone: Mars/Olympus\n",
            "targets[0].timezone",
        ),
        ("targets:\n  - server: '1'\n    token_env: T\n    timeout: 0s\n", "targets[0].timeout"),
        ("targets:\n  - server: '1'\n", "targets[0].token_file: no token"),
        (
            "targets:\n  - server: '1'\n    token_env: MISSING\n",
            "targets[0].token_env: the environment variable MISSING is not set",
        ),
        (
            "targets:\n  - server: '1'\n    token_file: /nonexistent\n",
            "targets[0].token_file: cannot read",
        ),
        (
            "targets:\n  - server: '1'\n    token_env: T\n  - server: '1'\n    token_env: T\n",
            "targets[1].server: duplicate of targets[0]",
        ),
        ("targets: []\n", "targets: lists no target"),
        ("targets:\n  - token_env: T\n", "missing field `server`"),
        ("scrape: {}\n", "unknown field `scrape`"),
        ("targets: [\n", "--config.file"),
    ];
    for (yaml, expected) in cases {
        let error = file_error(yaml, &[("T", FAKE_TOKEN)]);
        assert!(error.contains(expected), "{yaml:?}: {error:?} does not name {expected:?}");
    }
}

#[test]
fn the_config_file_excludes_single_target_flags() {
    let path = write_temp("targets.yml", "targets:\n  - server: '1'\n    token_env: T\n");
    let error = error(
        &["--config.file", path.to_str().unwrap(), "--wolkvox.server", "0042"],
        &[("T", FAKE_TOKEN)],
    );
    assert!(error.contains("--config.file"), "{error}");
}

#[test]
fn a_token_file_every_user_can_read_draws_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let file = write_temp("token", FAKE_TOKEN);
    let args = ["--wolkvox.server", "0042", "--wolkvox.token-file", file.to_str().unwrap()];
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let warnings = config(&args, &[]).unwrap().warnings;
    assert!(
        warnings.len() == 1
            && warnings[0].contains("readable by every user")
            && warnings[0].contains("chmod 0400"),
        "{warnings:?}"
    );
    assert!(!warnings[0].contains(FAKE_TOKEN));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(config(&args, &[]).unwrap().warnings.is_empty());
}

#[test]
fn the_upstream_ca_file_must_hold_a_certificate() {
    let not_pem = write_temp("ca.pem", "not a certificate");
    let message = error(
        &["--wolkvox.server", "0042", "--wolkvox.ca-file", not_pem.to_str().unwrap()],
        &[TOKEN_ENV],
    );
    assert!(
        message.contains(&format!(
            "--wolkvox.ca-file: {} holds no PEM certificate",
            not_pem.display()
        )),
        "{message}"
    );
    let message = error(
        &["--wolkvox.server", "0042", "--wolkvox.ca-file", "/nonexistent/ca.pem"],
        &[TOKEN_ENV],
    );
    assert!(message.contains("--wolkvox.ca-file: cannot read"), "{message}");
}

#[test]
fn apis_come_from_the_flag_or_the_file_and_default_to_gamification() {
    let names = |config: &wolkvox_exporter::config::Config, k: usize| {
        config.targets[k].apis.iter().map(|api| api.name).collect::<Vec<_>>()
    };
    let plain = config(&["--wolkvox.server", "0042"], &[TOKEN_ENV]).unwrap();
    assert_eq!(names(&plain, 0), ["gamification"]);
    let flagged = config(
        &["--wolkvox.server", "0042", "--wolkvox.apis", "chat_licenses, ivr_minutes"],
        &[TOKEN_ENV],
    )
    .unwrap();
    assert_eq!(names(&flagged, 0), ["chat_licenses", "ivr_minutes"]);
    let path = write_temp(
        "targets.yml",
        "targets:\n  - {server: '0001', token_env: WOLKVOX_TOKEN, apis: [tts_chars, gamification]}\n  - {server: '0002', token_env: WOLKVOX_TOKEN}\n",
    );
    let filed = config(
        &["--config.file", path.to_str().unwrap(), "--wolkvox.apis", "pbx_licenses"],
        &[TOKEN_ENV],
    )
    .unwrap();
    assert_eq!(names(&filed, 0), ["tts_chars", "gamification"]);
    assert_eq!(
        names(&filed, 1),
        ["pbx_licenses"],
        "the flag is the default of targets without `apis`"
    );
}

#[test]
fn unknown_duplicate_and_missing_apis_are_refused() {
    let unknown =
        error(&["--wolkvox.server", "0042", "--wolkvox.apis", "gamification,chat"], &[TOKEN_ENV]);
    assert!(
        unknown.contains("--wolkvox.apis: unknown API \"chat\"")
            && unknown.contains("chat_licenses, interaction_licenses"),
        "{unknown}"
    );
    let twice =
        error(&["--wolkvox.server", "0042", "--wolkvox.apis", "ivr_calls,ivr_calls"], &[TOKEN_ENV]);
    assert!(twice.contains("--wolkvox.apis: ivr_calls is listed twice"), "{twice}");
    let in_file = file_error(
        "targets:\n  - {server: '0001', token_env: WOLKVOX_TOKEN, apis: [vision, visión]}\n",
        &[TOKEN_ENV],
    );
    assert!(
        in_file.contains("targets[0].apis: unknown API \"visión\"")
            && in_file.contains("agent_script"),
        "{in_file}"
    );
    let empty = file_error(
        "targets:\n  - {server: '0001', token_env: WOLKVOX_TOKEN, apis: []}\n",
        &[TOKEN_ENV],
    );
    assert!(empty.contains("targets[0].apis: lists no API"), "{empty}");
}

#[test]
fn token_names_and_daily_call_budgets_must_agree_and_suffice() {
    let spaced = write_temp("mi token ñ.txt", FAKE_TOKEN);
    let named = config(
        &["--wolkvox.server", "0042", "--wolkvox.token-file", spaced.to_str().unwrap()],
        &[],
    )
    .unwrap();
    assert_eq!(
        named.targets[0].token_name, "mi_token__.txt",
        "a file name becomes a label-safe default name"
    );
    let plain =
        config(&["--wolkvox.server", "0042", "--wolkvox.daily-call-budget", "500"], &[TOKEN_ENV])
            .unwrap();
    assert_eq!(
        (plain.targets[0].token_name.as_str(), plain.targets[0].daily_call_budget),
        ("WOLKVOX_TOKEN", Some(500))
    );
    let too_small = error(
        &[
            "--wolkvox.server",
            "0042",
            "--wolkvox.apis",
            "gamification,ivr_calls",
            "--wolkvox.daily-call-budget",
            "1",
        ],
        &[TOKEN_ENV],
    );
    assert!(
        too_small.contains("--wolkvox.daily-call-budget: 1 calls a day cannot poll the 2 APIs"),
        "{too_small}"
    );
    let is_the_token =
        error(&["--wolkvox.server", "0042", "--wolkvox.token-name", FAKE_TOKEN], &[TOKEN_ENV]);
    assert!(is_the_token.contains("--wolkvox.token-name: is the token itself"), "{is_the_token}");

    let shared = "targets:\n  - {server: '0001', token_env: A, token_name: main, daily_call_budget: 100}\n  - {server: '0002', token_env: B, ";
    let env = [("A", FAKE_TOKEN), ("B", FAKE_TOKEN), ("C", "fake-token-for-tests-0002")];
    let renamed = file_error(&format!("{shared}token_name: other}}\n"), &env);
    assert!(
        renamed.contains("targets[1].token_name: \"other\" differs from \"main\""),
        "{renamed}"
    );
    let defaults = "targets:\n  - {server: '0001', token_env: A}\n  - {server: '0002', token_env: B, token_name: main}\n";
    let path = write_temp("targets.yml", defaults);
    let named = config(&["--config.file", path.to_str().unwrap()], &env).unwrap();
    assert_eq!(
        [&named.targets[0].token_name, &named.targets[1].token_name],
        ["main", "main"],
        "a given name wins over defaults"
    );
    let budgets =
        file_error(&format!("{shared}token_name: main, daily_call_budget: 200}}\n"), &env);
    assert!(budgets.contains("targets[1].daily_call_budget: differs"), "{budgets}");
    let clash = file_error(
        "targets:\n  - {server: '0001', token_env: A, token_name: main}\n  - {server: '0002', token_env: C, token_name: main}\n",
        &env,
    );
    assert!(clash.contains("token_name: \"main\" already names another token"), "{clash}");
    let negative =
        file_error("targets:\n  - {server: '0001', token_env: A, daily_call_budget: -5}\n", &env);
    assert!(negative.contains("daily_call_budget"), "{negative}");
    let zones = file_error(&format!("{shared}token_name: main, timezone: UTC}}\n"), &env);
    assert!(zones.contains("targets[1].timezone: differs from \"America/Bogota\""), "{zones}");
    let path = write_temp("targets.yml", &format!("{shared}token_name: main}}\n"));
    let agreed = config(&["--config.file", path.to_str().unwrap()], &env).unwrap();
    assert_eq!(
        agreed.targets[1].daily_call_budget,
        Some(100),
        "the budget is the token's, set on any of its targets"
    );
}

#[test]
fn budgets_must_name_a_polled_api_of_a_configured_server_once() {
    let targets = "targets:\n  - {server: '0001', token_env: WOLKVOX_TOKEN, apis: [gamification, chat_licenses]}\n";
    let with = |budgets: &str| format!("{targets}budgets:\n{budgets}");
    let ok = write_temp(
        "targets.yml",
        &with("  - {api: chat_licenses, operation: ventas, description: Chat, quantity: 40}\n"),
    );
    let config = config(&["--config.file", ok.to_str().unwrap()], &[TOKEN_ENV]).unwrap();
    assert_eq!(
        (config.contracts.budgets[0].server.as_str(), config.contracts.budgets[0].quantity),
        ("0001", 40.0)
    );

    let cases = [
        (
            "  - {api: chat, operation: a, description: b, quantity: 1}\n",
            "budgets[0].api: unknown API \"chat\"",
        ),
        (
            "  - {api: ivr_minutes, operation: a, description: b, quantity: 1}\n",
            "budgets[0].api: ivr_minutes is not polled for server 0001",
        ),
        (
            "  - {api: chat_licenses, server: '0009', operation: a, description: b, quantity: 1}\n",
            "budgets[0].server: \"0009\" is not",
        ),
        (
            "  - {api: chat_licenses, operation: a, description: b, quantity: -1}\n",
            "budgets[0].quantity: -1 is not a quantity of 0 or more",
        ),
        (
            "  - {api: chat_licenses, operation: a, description: b, quantity: .nan}\n",
            "budgets[0].quantity",
        ),
        (
            "  - {api: chat_licenses, operation: a, description: b, quantity: 1}\n  - {api: chat_licenses, operation: a, description: b, quantity: 2}\n",
            "budgets[1]: duplicate of budgets[0]",
        ),
        (
            "  - {api: chat_licenses, operation: a, description: b, quantity: 1, extra: 2}\n",
            "unknown field `extra`",
        ),
    ];
    for (budgets, expected) in cases {
        let error = file_error(&with(budgets), &[TOKEN_ENV]);
        assert!(error.contains(expected), "{budgets}: {error}");
    }
    let two = "targets:\n  - {server: '0001', token_env: WOLKVOX_TOKEN}\n  - {server: '0002', token_env: WOLKVOX_TOKEN}\n";
    let unnamed = file_error(
        &format!(
            "{two}budgets:\n  - {{api: gamification, operation: a, description: b, quantity: 1}}\n"
        ),
        &[TOKEN_ENV],
    );
    assert!(
        unnamed.contains("budgets[0].server: required when the file lists several targets"),
        "{unnamed}"
    );
}

#[test]
fn prices_and_cost_limits_need_a_server_when_the_file_lists_several_targets() {
    let two = "targets:\n  - {server: '0001', token_env: WOLKVOX_TOKEN}\n  - {server: '0002', token_env: WOLKVOX_TOKEN}\n";
    let price = "{api: gamification, description: G, unit_price: 1, currency: USD}";
    let unnamed = file_error(&format!("{two}prices:\n  - {price}\n"), &[TOKEN_ENV]);
    assert!(
        unnamed.contains("prices[0].server: required when the file lists several targets"),
        "{unnamed}"
    );
    let unnamed = file_error(
        &format!("{two}cost_limits:\n  - {{currency: USD, monthly: 10}}\n"),
        &[TOKEN_ENV],
    );
    assert!(
        unnamed.contains("cost_limits[0].server: required when the file lists several targets"),
        "{unnamed}"
    );
    // Named, the same entries are the servers' own, and a currency may have a limit per server.
    let named = write_temp(
        "targets.yml",
        &format!(
            "{two}prices:\n  - {{server: '0002', api: gamification, operation: v, description: G, unit_price: 1.5, currency: COP}}\n\
             cost_limits:\n  - {{server: '0001', currency: COP, monthly: 10}}\n  - {{server: '0002', currency: COP, monthly: 20}}\n"
        ),
    );
    let config = config(&["--config.file", named.to_str().unwrap()], &[TOKEN_ENV]).unwrap();
    let price = &config.contracts.prices.entries()[0];
    assert_eq!(
        (
            price.server.as_str(),
            price.operation.as_deref(),
            price.unit_price,
            price.charge.as_str()
        ),
        ("0002", Some("v"), 1.5, "peak")
    );
    let limits: Vec<(&str, f64)> =
        config.contracts.cost_limits.iter().map(|l| (l.server.as_str(), l.monthly)).collect();
    assert_eq!(limits, [("0001", 10.0), ("0002", 20.0)]);
}

#[test]
fn a_budget_too_small_for_the_intervals_stretches_them_within_stale_after() {
    // 3 APIs, 288 calls a day: one poll of each every 15 minutes instead of 5.
    let args = [
        "--wolkvox.server",
        "0042",
        "--wolkvox.apis",
        "gamification,chat_licenses,ivr_minutes",
        "--wolkvox.daily-call-budget",
        "288",
    ];
    let stretched = config(&args, &[TOKEN_ENV]).unwrap();
    assert_eq!(stretched.targets[0].poll_interval, Duration::from_secs(15 * 60));
    let roomy =
        config(&[&args[..4], &["--wolkvox.daily-call-budget", "100000"]].concat(), &[TOKEN_ENV])
            .unwrap();
    assert_eq!(
        roomy.targets[0].poll_interval,
        Duration::from_secs(5 * 60),
        "a budget that pays for the intervals changes nothing"
    );
    // 6 calls a day: each API every 12 hours, past the default stale-after of 1h.
    let sparse = error(&[&args[..4], &["--wolkvox.daily-call-budget", "6"]].concat(), &[TOKEN_ENV]);
    assert!(
        sparse.contains("--wolkvox.daily-call-budget: 6 calls a day for the 3 APIs")
            && sparse.contains("every 12h"),
        "{sparse}"
    );
    let allowed = config(
        &[&args[..4], &["--wolkvox.daily-call-budget", "6", "--wolkvox.stale-after", "13h"]]
            .concat(),
        &[TOKEN_ENV],
    )
    .unwrap();
    assert_eq!(allowed.targets[0].poll_interval, Duration::from_secs(12 * 3600));
}
