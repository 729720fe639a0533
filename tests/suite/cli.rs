//! The binary as an operator runs it: exit codes, messages, `--config.check`. (`--demo` and its
//! signals are in wall_clock::demo.)

use crate::common::process;

const FAKE_TOKEN: &str = "fake-token-for-tests-0001";

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = process::binary();
    command.args(args).env_clear();
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("the binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn version_and_help() {
    let (code, stdout, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")));
    let (code, stdout, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--wolkvox.server",
        "--wolkvox.token-file",
        "--config.file",
        "--web.listen-address",
        "--demo",
        "WOLKVOX_TOKEN",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}");
    }
}

/// `backfill` is a subcommand that --help lists. The WOLKVOX_* variables that Docker Compose sets
/// for the exporter do not conflict with it; a flag given before it is refused, not ignored.
#[test]
fn help_lists_the_backfill_subcommand_which_takes_the_environment() {
    let (code, stdout, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    assert!(
        stdout.lines().any(|line| line.trim_start().starts_with("backfill ")),
        "--help lacks backfill: {stdout}"
    );
    let env =
        [("WOLKVOX_SERVER", "0042"), ("WOLKVOX_TOKEN", FAKE_TOKEN), ("WOLKVOX_STORAGE_PATH", "")];
    let (code, stdout, stderr) = run(
        &["backfill", "--help"],
        &[("WOLKVOX_TOKEN_FILE", "/run/secrets/wolkvox_token"), env[0]],
    );
    assert_eq!(code, 0, "{stderr}");
    for flag in ["--wolkvox.server", "--config.file", "--from", "--output", "--dry-run"] {
        assert!(stdout.contains(flag), "backfill --help lacks {flag}");
    }
    let (code, stdout, stderr) = run(&["backfill", "--from", "2026-01", "--dry-run"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("backfill plan"), "{stdout}");
    let (code, _, stderr) =
        run(&["--wolkvox.server", "0042", "backfill", "--from", "2026-01", "--dry-run"], &env);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

#[test]
fn invalid_configuration_exits_non_zero_with_one_clear_line() {
    let cases: [(&[&str], &str); 6] = [
        (&["--wolkvox.server", "0042"], "--wolkvox.token-file: no token"),
        (
            &["--wolkvox.server", "0042", "--wolkvox.poll-interval", "soon"],
            "'--wolkvox.poll-interval <POLL_INTERVAL>': \"soon\" is not a duration such as 90s or 5m",
        ),
        (
            &["--wolkvox.server", "0042", "--wolkvox.max-response-bytes", "lots"],
            "'--wolkvox.max-response-bytes <MAX_RESPONSE_BYTES>': \"lots\" is not a size such as 32MiB",
        ),
        (&["--wolkvox.server", "0042", "--wolkvox.timezone", "Nowhere/Land"], "--wolkvox.timezone"),
        (
            &["--config.file", "/nonexistent/targets.yml"],
            "--config.file: cannot read /nonexistent/targets.yml",
        ),
        (
            &["--wolkvox.server", "0042", "--web.config.file", "/nonexistent/web.yml"],
            "invalid configuration: --web.config.file /nonexistent/web.yml: cannot read /nonexistent/web.yml",
        ),
    ];
    for (args, expected) in cases {
        let env: &[(&str, &str)] =
            if expected.contains("no token") { &[] } else { &[("WOLKVOX_TOKEN", FAKE_TOKEN)] };
        let (code, _, stderr) = run(args, env);
        assert_ne!(code, 0, "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn config_check_prints_the_targets_without_the_token() {
    let (code, stdout, stderr) =
        run(&["--wolkvox.server", "0042", "--config.check"], &[("WOLKVOX_TOKEN", FAKE_TOKEN)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("server=0042") && stdout.contains("token=env WOLKVOX_TOKEN"),
        "{stdout}"
    );
    assert!(!stdout.contains(FAKE_TOKEN) && !stderr.contains(FAKE_TOKEN));
    let (code, _, stderr) = run(&["--wolkvox.server", "0042", "--config.check"], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no token"));
}

/// Prices and cost limits: `--config.check` prints what it read, and refuses each bad entry with
/// exit code 2 and one line naming it.
#[test]
fn config_check_prints_the_prices_and_names_each_bad_one() {
    let targets = "targets:\n  - {server: '0001', token_env: WOLKVOX_TOKEN, apis: [gamification, chat_licenses]}\n";
    let check = |yaml: &str| {
        let file = crate::common::tools::temp_file("targets.yml", yaml);
        let config = file.to_str().unwrap();
        run(&["--config.file", config, "--config.check"], &[("WOLKVOX_TOKEN", FAKE_TOKEN)])
    };
    let (code, stdout, stderr) = check(&format!(
        "{targets}prices:\n  \
         - {{api: gamification, description: Gamification, unit_price: 2.5, currency: USD}}\n  \
         - {{api: chat_licenses, operation: ventas, description: Chat, unit_price: 9, currency: USD, charge: latest}}\n\
         cost_limits:\n  - {{currency: USD, monthly: 5000}}\n"
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("2 price(s), 1 cost limit(s)"), "{stdout}");
    assert!(stdout.contains("price server=0001 api=gamification operation=(every) description=\"Gamification\" unit_price=2.5 currency=USD charge=peak"), "{stdout}");
    assert!(stdout.contains("price server=0001 api=chat_licenses operation=\"ventas\" description=\"Chat\" unit_price=9 currency=USD charge=latest"), "{stdout}");
    assert!(stdout.contains("cost_limit server=0001 currency=USD monthly=5000"), "{stdout}");

    let price = "{api: gamification, description: G, unit_price: 1, currency: USD}";
    let cases = [
        (
            format!("prices:\n  - {price}\n  - {{api: chat, description: G, unit_price: 1, currency: USD}}\n"),
            "prices[1].api: unknown API \"chat\"",
        ),
        (
            "prices:\n  - {api: ivr_minutes, description: G, unit_price: 1, currency: USD}\n".into(),
            "prices[0].api: ivr_minutes is not polled for server 0001",
        ),
        (
            "prices:\n  - {api: gamification, server: '0009', description: G, unit_price: 1, currency: USD}\n".into(),
            "prices[0].server: \"0009\" is not the server of any target",
        ),
        (
            "prices:\n  - {api: gamification, description: G, unit_price: -0.5, currency: USD}\n".into(),
            "prices[0].unit_price: -0.5 is not a price of 0 or more",
        ),
        (
            "prices:\n  - {api: gamification, description: G, unit_price: .inf, currency: USD}\n".into(),
            "prices[0].unit_price: inf is not a price of 0 or more",
        ),
        (
            "prices:\n  - {api: gamification, description: G, unit_price: .nan, currency: USD}\n".into(),
            "prices[0].unit_price: NaN is not a price of 0 or more",
        ),
        (
            format!("prices:\n  - {price}\n  - {{api: gamification, description: H, unit_price: 1, currency: usd}}\n"),
            "prices[1].currency: \"usd\" is not an ISO 4217 currency code",
        ),
        (
            "prices:\n  - {api: gamification, description: G, unit_price: 1, currency: US}\n".into(),
            "prices[0].currency: \"US\" is not an ISO 4217",
        ),
        (
            "prices:\n  - {api: gamification, description: G, unit_price: 1, currency: USD, charge: max}\n".into(),
            "prices[0].charge: \"max\" is not peak",
        ),
        (
            format!("prices:\n  - {price}\n  - {price}\n"),
            "prices[1]: duplicate of prices[0]",
        ),
        (
            "prices:\n  - {api: gamification, operation: v, description: G, unit_price: 1, currency: USD}\n  - {api: gamification, operation: v, server: '0001', description: G, unit_price: 2, currency: EUR}\n".into(),
            "prices[1]: duplicate of prices[0]",
        ),
        (
            "cost_limits:\n  - {server: '0009', currency: USD, monthly: 1}\n".into(),
            "cost_limits[0].server: \"0009\" is not the server of any target",
        ),
        (
            "cost_limits:\n  - {currency: Usd, monthly: 1}\n".into(),
            "cost_limits[0].currency: \"Usd\" is not an ISO 4217",
        ),
        (
            "cost_limits:\n  - {currency: USD, monthly: 0}\n".into(),
            "cost_limits[0].monthly: 0 is not an amount over 0",
        ),
        (
            "cost_limits:\n  - {currency: USD, monthly: .nan}\n".into(),
            "cost_limits[0].monthly: NaN is not an amount over 0",
        ),
        (
            "cost_limits:\n  - {currency: USD, monthly: 1}\n  - {currency: USD, server: '0001', monthly: 2}\n".into(),
            "cost_limits[1]: duplicate of cost_limits[0]",
        ),
    ];
    for (entries, expected) in cases {
        let (code, stdout, stderr) = check(&format!("{targets}{entries}"));
        assert_eq!(code, 2, "{entries}: {stdout}{stderr}");
        assert!(stderr.contains(expected), "{entries}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(!stderr.contains(FAKE_TOKEN));
    }
}
