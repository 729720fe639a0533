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
