//! Command-line flags, environment and the YAML targets file, turned into one validated
//! [`Config`]. Every error names the flag or field at fault and never quotes a token.

pub(crate) mod contracts;
pub(crate) mod error;
pub(crate) mod token;
pub(crate) mod upstream_ca;

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use jiff::tz::TimeZone;
use serde::Deserialize;

pub use crate::config::error::ConfigError;
use crate::config::token::{InvalidToken, Token};
use crate::web::WebSettings;
use crate::wolkvox::{Api, catalogue};
use contracts::{Budget, FileBudget, Polled};

/// The API allows one call every 5 minutes; faster needs `--wolkvox.allow-fast-poll`.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(300);
/// Even with fast polling allowed, a lane must breathe between calls.
const MIN_FAST_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Upper bounds keep every deadline computable; nothing sensible lies beyond them.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(24 * 3600);
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_STALE_AFTER: Duration = Duration::from_secs(31 * 24 * 3600);
/// The API caps a result at 256 MB; more than 1 GiB cannot be a billing answer.
const MAX_RESPONSE_BYTES: u64 = 1 << 30;
/// A token is a few dozen characters; a token file is never read past this.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;
/// Thousands of targets, budgets and prices.
const MAX_CONFIG_FILE_BYTES: u64 = 16 << 20;
/// Documented in the README and docs/configuration.md; above 10000 because 9100-9999 of Prometheus' port list is taken.
pub const DEFAULT_LISTEN_ADDRESS: &str = ":10042";
/// `--demo` polls the embedded simulator this often.
pub const DEMO_POLL_INTERVAL: Duration = Duration::from_secs(15);
/// The token `--demo` hands the simulator: a public placeholder, not a secret.
pub const DEMO_TOKEN: &str = "demo-token-not-a-secret";
pub const DEMO_SERVER: &str = "0042";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "wolkvox_exporter",
    version,
    args_override_self = true,
    about = "Prometheus exporter for Wolkvox billing usage. Polls the API in the background and serves the cached values.",
    after_help = "The token comes from --wolkvox.token-file, or from the environment variable WOLKVOX_TOKEN \
                  (never from a flag: command lines are visible to every user through ps)."
)]
pub struct Flags {
    /// Wolkvox server number, e.g. 0042 (required unless --config.file or --demo).
    #[arg(long = "wolkvox.server", env = "WOLKVOX_SERVER", value_name = "NUMBER")]
    pub server: Option<String>,
    /// File holding the token (surrounding whitespace is trimmed).
    #[arg(long = "wolkvox.token-file", env = "WOLKVOX_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Where the API lives; {server} is replaced by the server number.
    #[arg(long = "wolkvox.base-url", env = "WOLKVOX_BASE_URL", default_value = "https://wv{server}.wolkvox.com")]
    pub base_url: String,
    /// How often each target is polled (e.g. 90s, 5m).
    #[arg(long = "wolkvox.poll-interval", env = "WOLKVOX_POLL_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// Allow poll intervals under 5m (for tests and simulators; the real API forbids it).
    #[arg(long = "wolkvox.allow-fast-poll", env = "WOLKVOX_ALLOW_FAST_POLL")]
    pub allow_fast_poll: bool,
    /// Time allowed for one request, from connect to the last byte.
    #[arg(long = "wolkvox.timeout", env = "WOLKVOX_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// IANA time zone of the month window sent to the API.
    #[arg(long = "wolkvox.timezone", env = "WOLKVOX_TIMEZONE", default_value = "America/Bogota")]
    pub timezone: String,
    /// PEM file of a CA to trust for the API's certificate, besides the system's (a TLS-inspecting proxy, a simulator).
    #[arg(long = "wolkvox.ca-file", env = "WOLKVOX_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Larger answers are refused without being buffered.
    #[arg(long = "wolkvox.max-response-bytes", env = "WOLKVOX_MAX_RESPONSE_BYTES", default_value = "32MiB", value_parser = parse_bytes)]
    pub max_response_bytes: u64,
    /// Billing APIs to poll, comma-separated (see the catalogue in docs/metrics.md); each costs one call per poll.
    #[arg(long = "wolkvox.apis", env = "WOLKVOX_APIS", default_value = "gamification", value_name = "API,...")]
    pub apis: String,
    /// A name for the token in metrics and logs (default: the token file's name, or the
    /// environment variable's); never the token itself.
    #[arg(long = "wolkvox.token-name", env = "WOLKVOX_TOKEN_NAME", value_name = "NAME")]
    pub token_name: Option<String>,
    /// Calls the token may spend per day (midnight to midnight in the time zone); the schedule is
    /// stretched to stay within it. Default: no budget.
    #[arg(long = "wolkvox.daily-call-budget", env = "WOLKVOX_DAILY_CALL_BUDGET", value_name = "CALLS")]
    pub daily_call_budget: Option<u32>,
    /// Also poll information.php?api=token_info with each token (Wolkvox's own count of its calls
    /// today; each poll costs a call).
    #[arg(long = "wolkvox.token-info", env = "WOLKVOX_TOKEN_INFO")]
    pub token_info: bool,
    /// A target's usage series disappear when its last successful poll is older than this.
    #[arg(long = "wolkvox.stale-after", env = "WOLKVOX_STALE_AFTER", default_value = "1h", value_parser = parse_duration)]
    pub stale_after: Duration,
    /// YAML file listing several targets; the flags above set their defaults.
    #[arg(long = "config.file", env = "WOLKVOX_CONFIG_FILE", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Address to listen on (":PORT" means every interface).
    #[arg(long = "web.listen-address", env = "WOLKVOX_WEB_LISTEN_ADDRESS", default_value = DEFAULT_LISTEN_ADDRESS)]
    pub listen_address: String,
    /// exporter-toolkit web configuration: TLS, client certificates, basic auth, security headers.
    #[arg(long = "web.config.file", env = "WOLKVOX_WEB_CONFIG_FILE", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,
    /// Requests served at once; more are answered 503 at once (0: no limit).
    #[arg(long = "web.max-requests", env = "WOLKVOX_WEB_MAX_REQUESTS", default_value_t = 40)]
    pub max_requests: usize,
    /// Connections open at once, idle ones included; past it new ones wait to be accepted (0: no
    /// limit). Never more than the file descriptors leave room for.
    #[arg(long = "web.max-connections", env = "WOLKVOX_WEB_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Path under which the metrics are served.
    #[arg(long = "web.telemetry-path", env = "WOLKVOX_WEB_TELEMETRY_PATH", default_value = "/metrics")]
    pub telemetry_path: String,
    /// Async worker threads. An exporter needs few, and tokio's default of one per CPU of the
    /// node multiplies memory on a large machine.
    #[arg(long = "runtime.worker-threads", env = "WOLKVOX_RUNTIME_WORKER_THREADS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub worker_threads: u16,
    #[arg(long = "log.level", env = "WOLKVOX_LOG_LEVEL", value_enum, default_value = "info")]
    pub log_level: LogLevel,
    #[arg(long = "log.format", env = "WOLKVOX_LOG_FORMAT", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,
    /// Validate flags, config file and token sources, print the targets and exit.
    #[arg(long = "config.check")]
    pub config_check: bool,
    /// Run against an embedded simulated Wolkvox API; no token or server needed.
    #[arg(long = "demo")]
    pub demo: bool,
    /// Directory for the call ledger and the last good answers, so that a restart never calls
    /// early and serves the last values at once (default data/; none with --demo; empty: off).
    #[arg(long = "storage.path", env = "WOLKVOX_STORAGE_PATH", value_name = "DIR")]
    pub storage_path: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// Everything the exporter needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub targets: Vec<Target>,
    pub listen_address: String,
    pub telemetry_path: String,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    /// The single target points at the embedded simulator, whose address is known only once it runs.
    pub demo: bool,
    /// The CAs of `--wolkvox.ca-file`, to trust besides the system's.
    pub ca_certificates: Vec<reqwest::Certificate>,
    pub web_config_file: Option<PathBuf>,
    pub web: Arc<WebSettings>,
    pub max_requests: usize,
    pub max_connections: usize,
    /// Things worth a warning once logging runs (a token file others can read).
    pub warnings: Vec<String>,
    /// Contracted quantities, from the config file.
    pub budgets: Vec<Budget>,
    /// The state directory; None: nothing survives a restart.
    pub storage_path: Option<PathBuf>,
}

/// One Wolkvox server to poll, with the token that pays for it.
#[derive(Clone, Debug)]
pub struct Target {
    pub server: String,
    pub base_url: String,
    pub token: Token,
    /// Read again before every poll, so that a rotated token is used without a restart.
    pub token_file: Option<PathBuf>,
    /// Where the token came from ("file /etc/...", "env NAME"), for `--config.check`.
    pub token_source: String,
    pub poll_interval: Duration,
    pub allow_fast_poll: bool,
    pub timeout: Duration,
    pub timezone: TimeZone,
    pub timezone_name: String,
    pub max_response_bytes: u64,
    pub stale_after: Duration,
    /// The billing APIs polled for this server, each on its own schedule.
    pub apis: Vec<&'static Api>,
    /// How metrics and logs call the token; targets that share a token share the name.
    pub token_name: String,
    /// `token_name` was derived from the token's source rather than given.
    pub token_name_is_default: bool,
    /// Calls the token may make per day, shared by every target using it (`poll_interval` is
    /// already lengthened where it cannot pay for the interval).
    pub daily_call_budget: Option<u32>,
    /// Poll `token_info` with this token (on its first target).
    pub token_info: bool,
}

/// A token file that cannot be used; the message names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        reason: InvalidToken,
    },
}

/// A value of a duration flag or field that is not a duration.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a duration such as 90s or 5m ({source})")]
pub struct InvalidDuration {
    pub text: String,
    pub source: humantime::DurationError,
}

/// A value of a size flag that is not a size.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a size such as 32MiB ({reason})")]
pub struct InvalidSize {
    pub text: String,
    /// bytesize says what is wrong only in words.
    pub reason: String,
}

/// The config file: `targets:`, and the optional `budgets:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    targets: Vec<FileTarget>,
    #[serde(default)]
    budgets: Vec<FileBudget>,
}

/// Values stay text until validation so that errors can name `targets[N].field`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTarget {
    server: String,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    base_url: Option<String>,
    poll_interval: Option<String>,
    timeout: Option<String>,
    timezone: Option<String>,
    apis: Option<Vec<String>>,
    token_name: Option<String>,
    daily_call_budget: Option<u32>,
    token_info: Option<bool>,
}

impl Config {
    /// Builds the configuration from parsed flags; `env` looks up environment variables (the
    /// token ones), so tests can pass their own.
    pub fn from_flags(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let listen_address = listen_address(&flags.listen_address)?;
        let telemetry_path = telemetry_path(&flags.telemetry_path)?;
        let mut file_budgets = Vec::new();
        let mut targets = if flags.demo {
            if flags.config_file.is_some() || flags.server.is_some() {
                return Err(ConfigError::new("--demo", "polls only the embedded simulator: drop --config.file and --wolkvox.server"));
            }
            vec![demo_target(flags)?]
        } else if let Some(path) = &flags.config_file {
            if flags.server.is_some() || flags.token_file.is_some() {
                return Err(ConfigError::new(
                    "--config.file",
                    "the file lists the targets: drop --wolkvox.server and --wolkvox.token-file (WOLKVOX_SERVER, WOLKVOX_TOKEN_FILE)",
                ));
            }
            let (targets, budgets) = targets_from_file(path, flags, env)?;
            file_budgets = budgets;
            targets
        } else {
            vec![target_from_flags(flags, env)?]
        };
        let field_of = |i: usize, key: &str| match (&flags.config_file, key) {
            (Some(_), key) => format!("targets[{i}].{key}"),
            (None, "token_name") => "--wolkvox.token-name".to_owned(),
            (None, _) => "--wolkvox.daily-call-budget".to_owned(),
        };
        check_tokens(&mut targets, &field_of)?;
        let polled: Vec<Polled<'_>> = targets.iter().map(|t| Polled { server: &t.server, apis: &t.apis }).collect();
        let budgets = contracts::check(file_budgets, &polled)?;
        // Read once here, where an error names the flag, and handed to the client as read.
        let ca_certificates = match &flags.ca_file {
            Some(path) => crate::config::upstream_ca::ca_certificates(path).map_err(|why| ConfigError::new("--wolkvox.ca-file", why))?,
            None => Vec::new(),
        };
        let web = match &flags.web_config_file {
            Some(path) => WebSettings::load(path).map_err(|why| ConfigError::new(format!("--web.config.file {}", path.display()), why))?,
            None => WebSettings::plain(),
        };
        let mut warnings: Vec<String> = targets.iter().filter_map(|t| t.token_file.as_deref()).filter_map(readable_by_others).collect();
        let storage_path = match flags.storage_path.as_deref().map(str::trim) {
            None if flags.demo => None,
            None => Some(PathBuf::from(DEFAULT_STORAGE_PATH)),
            Some("") => {
                warnings.push(
                    "--storage.path is empty: nothing is kept across restarts, so a restart calls Wolkvox early and forgets the day's calls and any quota pause"
                        .to_owned(),
                );
                None
            }
            Some(path) => Some(PathBuf::from(path)),
        };
        Ok(Config {
            targets,
            listen_address,
            telemetry_path,
            log_level: flags.log_level,
            log_format: flags.log_format,
            demo: flags.demo,
            ca_certificates,
            web_config_file: flags.web_config_file.clone(),
            web: Arc::new(web),
            max_requests: flags.max_requests,
            max_connections: flags.max_connections,
            warnings,
            budgets,
            storage_path,
        })
    }
}

fn target_from_flags(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<Target, ConfigError> {
    let server = flags.server.clone().ok_or_else(|| {
        ConfigError::new("--wolkvox.server", "required (or use --config.file, or --demo to try the exporter without an account)")
    })?;
    let server = check_server("--wolkvox.server", &server)?;
    let token_file = flags.token_file.clone();
    let (token, token_source) = match (&flags.token_file, env("WOLKVOX_TOKEN")) {
        (Some(_), Some(_)) => return Err(ConfigError::new("--wolkvox.token-file", "set either the token file or WOLKVOX_TOKEN, not both")),
        (Some(path), None) => token_from_file("--wolkvox.token-file", path)?,
        (None, Some(value)) => token_from_env("WOLKVOX_TOKEN", "WOLKVOX_TOKEN", &value)?,
        (None, None) => {
            return Err(ConfigError::new(
                "--wolkvox.token-file",
                "no token: set --wolkvox.token-file or the environment variable WOLKVOX_TOKEN",
            ));
        }
    };
    let overrides = Overrides::none();
    Ok(Target { token_file, ..build_target(flags, &overrides, server, token, token_source)? })
}

fn targets_from_file(
    path: &Path,
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<Target>, Vec<FileBudget>), ConfigError> {
    let text = crate::storage::read_file::read_regular_text(path, MAX_CONFIG_FILE_BYTES)
        .map_err(|e| ConfigError::new("--config.file", format!("cannot read {}: {e}", path.display())))?;
    let file: TargetsFile =
        serde_norway::from_str(&text).map_err(|e| ConfigError::new(format!("--config.file {}", path.display()), e.to_string()))?;
    if file.targets.is_empty() {
        return Err(ConfigError::new("targets", "lists no target"));
    }
    let mut targets: Vec<Target> = Vec::with_capacity(file.targets.len());
    for (i, entry) in file.targets.into_iter().enumerate() {
        let field = format!("targets[{i}]");
        let server = check_server(&format!("{field}.server"), &entry.server)?;
        let (token, token_source) = match (&entry.token_file, &entry.token_env) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(format!("{field}.token_file"), "set either token_file or token_env, not both"));
            }
            (Some(path), None) => token_from_file(&format!("{field}.token_file"), path)?,
            (None, Some(name)) => {
                // A pasted token instead of a variable name must not end up quoted in the error.
                if name.is_empty()
                    || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    || name.starts_with(|c: char| c.is_ascii_digit())
                {
                    return Err(ConfigError::new(
                        format!("{field}.token_env"),
                        "must be the name of an environment variable (letters, digits, _)",
                    ));
                }
                let value = env(name)
                    .ok_or_else(|| ConfigError::new(format!("{field}.token_env"), format!("the environment variable {name} is not set")))?;
                token_from_env(&format!("{field}.token_env"), name, &value)?
            }
            (None, None) => return Err(ConfigError::new(format!("{field}.token_file"), "no token: set token_file or token_env")),
        };
        let overrides = Overrides {
            base_url: entry.base_url,
            poll_interval: entry.poll_interval,
            timeout: entry.timeout,
            timezone: entry.timezone,
            apis: entry.apis,
            token_name: entry.token_name,
            daily_call_budget: entry.daily_call_budget,
            token_info: entry.token_info,
            field: format!("{field}."),
        };
        let target = Target { token_file: entry.token_file.clone(), ..build_target(flags, &overrides, server, token, token_source)? };
        // The server number is the identity of a target's series: two entries for it would clash.
        if let Some(first) = targets.iter().position(|t| t.server == target.server) {
            return Err(ConfigError::new(format!("{field}.server"), format!("duplicate of targets[{first}] (server {})", target.server)));
        }
        targets.push(target);
    }
    Ok((targets, file.budgets))
}

fn demo_target(flags: &Flags) -> Result<Target, ConfigError> {
    let demo_flags = Flags { poll_interval: DEMO_POLL_INTERVAL, allow_fast_poll: true, ..flags.clone() };
    let overrides = Overrides::none();
    let token = Token::new(DEMO_TOKEN).expect("the demo token is valid");
    build_target(&demo_flags, &overrides, DEMO_SERVER.to_owned(), token, "demo".to_owned())
}

/// A file target's own settings; `field` is its prefix in error messages ("targets[2]."), or
/// empty when the flags themselves are being validated.
struct Overrides {
    field: String,
    base_url: Option<String>,
    poll_interval: Option<String>,
    timeout: Option<String>,
    timezone: Option<String>,
    apis: Option<Vec<String>>,
    token_name: Option<String>,
    daily_call_budget: Option<u32>,
    token_info: Option<bool>,
}

impl Overrides {
    /// No file target: the flags alone.
    fn none() -> Overrides {
        Overrides {
            field: String::new(),
            base_url: None,
            poll_interval: None,
            timeout: None,
            timezone: None,
            apis: None,
            token_name: None,
            daily_call_budget: None,
            token_info: None,
        }
    }

    /// The name of a setting in an error message: the file's key, or else the flag.
    fn name(&self, key: &str, flag: &str) -> String {
        if self.field.is_empty() { flag.to_owned() } else { format!("{}{key}", self.field) }
    }

    fn duration(&self, key: &str, flag: &str, value: &Option<String>, default: Duration) -> Result<Duration, ConfigError> {
        match value {
            None => Ok(default),
            Some(text) => parse_duration(text).map_err(|e| ConfigError::new(self.name(key, flag), e)),
        }
    }
}

fn build_target(flags: &Flags, overrides: &Overrides, server: String, token: Token, token_source: String) -> Result<Target, ConfigError> {
    let poll_interval = overrides.duration("poll_interval", "--wolkvox.poll-interval", &overrides.poll_interval, flags.poll_interval)?;
    let interval_field = overrides.name("poll_interval", "--wolkvox.poll-interval");
    if poll_interval < MIN_FAST_POLL_INTERVAL || poll_interval > MAX_POLL_INTERVAL {
        return Err(ConfigError::new(interval_field, "must be between 100ms and 24h"));
    }
    if poll_interval < MIN_POLL_INTERVAL && !flags.allow_fast_poll {
        return Err(ConfigError::new(
            interval_field,
            format!(
                "{} is under the API's limit of one call every 5m (--wolkvox.allow-fast-poll overrides it, for simulators only)",
                humantime::format_duration(poll_interval)
            ),
        ));
    }
    let timeout = overrides.duration("timeout", "--wolkvox.timeout", &overrides.timeout, flags.timeout)?;
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(ConfigError::new(overrides.name("timeout", "--wolkvox.timeout"), "must be longer than zero and at most 10m"));
    }
    if flags.stale_after > MAX_STALE_AFTER {
        return Err(ConfigError::new("--wolkvox.stale-after", "must be at most 31d"));
    }
    if flags.stale_after < poll_interval {
        // Name the target's own interval when it is the one that conflicts.
        let field = if overrides.poll_interval.is_some() { interval_field } else { "--wolkvox.stale-after".to_owned() };
        return Err(ConfigError::new(
            field,
            format!(
                "{} is shorter than the poll interval {}: series would vanish between polls",
                humantime::format_duration(flags.stale_after),
                humantime::format_duration(poll_interval)
            ),
        ));
    }
    let timezone_name = overrides.timezone.clone().unwrap_or_else(|| flags.timezone.clone());
    let timezone = TimeZone::get(&timezone_name).map_err(|_| {
        ConfigError::new(overrides.name("timezone", "--wolkvox.timezone"), format!("unknown IANA time zone {timezone_name:?}"))
    })?;
    let base_url_field = overrides.name("base_url", "--wolkvox.base-url");
    let base_url = overrides.base_url.as_deref().unwrap_or(&flags.base_url).replace("{server}", &server);
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) || base_url.parse::<reqwest::Url>().is_err() {
        return Err(ConfigError::new(base_url_field, format!("{base_url:?} is not an http(s) URL")));
    }
    if flags.max_response_bytes == 0 || flags.max_response_bytes > MAX_RESPONSE_BYTES {
        return Err(ConfigError::new("--wolkvox.max-response-bytes", "must be larger than zero and at most 1GiB"));
    }
    let apis = match &overrides.apis {
        Some(names) => apis(&overrides.name("apis", "--wolkvox.apis"), names)?,
        None => apis("--wolkvox.apis", &flags.apis.split(',').map(str::to_owned).collect::<Vec<_>>())?,
    };
    let token_name_field = overrides.name("token_name", "--wolkvox.token-name");
    let given = overrides.token_name.as_ref().or(flags.token_name.as_ref());
    let token_name = given.map_or_else(|| default_token_name(&token_source), |name| name.trim().to_owned());
    if token_name.is_empty() || !token_name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(ConfigError::new(token_name_field, "must be letters, digits, - _ . (it is a metric label)"));
    }
    if token_name == token.expose() {
        return Err(ConfigError::new(token_name_field, "is the token itself: choose a name that is not a secret"));
    }
    Ok(Target {
        apis,
        token_name,
        token_name_is_default: given.is_none(),
        daily_call_budget: overrides.daily_call_budget.or(flags.daily_call_budget),
        token_info: overrides.token_info.unwrap_or(flags.token_info),
        server,
        base_url,
        token,
        token_file: None,
        token_source,
        poll_interval,
        allow_fast_poll: flags.allow_fast_poll,
        timeout,
        timezone,
        timezone_name,
        max_response_bytes: flags.max_response_bytes,
        stale_after: flags.stale_after,
    })
}

/// "file /etc/wolkvox/token-0042" -> "token-0042", "env WOLKVOX_TOKEN" -> "WOLKVOX_TOKEN"; what a
/// label value should not hold becomes `_`.
fn default_token_name(token_source: &str) -> String {
    let name = token_source.split_once(' ').map_or(token_source, |(_, rest)| rest);
    let name = Path::new(name).file_name().map_or(name.into(), |file| file.to_string_lossy());
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// What must hold across targets: one name per token, one token per name, one budget per token,
/// and a budget that lets every API of the token be polled at least once a day, and often enough
/// for `stale_after`. A name, budget or `token_info` given on any of a token's targets then
/// becomes that of all of them, and a budget that cannot pay for the intervals lengthens them.
fn check_tokens(targets: &mut [Target], field_of: &dyn Fn(usize, &str) -> String) -> Result<(), ConfigError> {
    let lanes = group_by_token(targets);
    for lane in &lanes {
        let named = lane.iter().copied().find(|&i| !targets[i].token_name_is_default).unwrap_or(lane[0]);
        let budgeted = lane.iter().copied().find(|&i| targets[i].daily_call_budget.is_some());
        let (name, budget) = (targets[named].token_name.clone(), budgeted.and_then(|i| targets[i].daily_call_budget));
        for &i in lane {
            if !targets[i].token_name_is_default && targets[i].token_name != name {
                return Err(ConfigError::new(
                    field_of(i, "token_name"),
                    format!("{:?} differs from {name:?}, given to the same token: give both the same token_name", targets[i].token_name),
                ));
            }
            if budget.is_some() && targets[i].timezone_name != targets[lane[0]].timezone_name {
                return Err(ConfigError::new(
                    field_of(i, "timezone"),
                    format!(
                        "differs from {:?} of the target with the same token: a daily_call_budget needs one day, so one time zone",
                        targets[lane[0]].timezone_name
                    ),
                ));
            }
            if targets[i].daily_call_budget.is_some_and(|b| Some(b) != budget) {
                return Err(ConfigError::new(
                    field_of(i, "daily_call_budget"),
                    "differs from the budget another target gives the same token",
                ));
            }
        }
        let token_info = lane.iter().any(|&i| targets[i].token_info);
        let calls: usize = lane.iter().map(|&i| targets[i].apis.len()).sum::<usize>() + usize::from(token_info);
        if let Some(budget) = budget.filter(|&b| (b as usize) < calls) {
            return Err(ConfigError::new(
                field_of(budgeted.unwrap_or(lane[0]), "daily_call_budget"),
                format!("{budget} calls a day cannot poll the {calls} APIs (token_info included) that use token {name:?} even once a day"),
            ));
        }
        // A budget smaller than the intervals ask for stretches them: every API of the token gets an
        // equal share of the day's calls.
        let budget_period = budget.map_or(Duration::ZERO, |budget| Duration::from_secs(24 * 3600 * calls as u64 / u64::from(budget)));
        for &i in lane {
            if budget_period > targets[i].stale_after {
                return Err(ConfigError::new(
                    field_of(budgeted.unwrap_or(i), "daily_call_budget"),
                    format!(
                        "{} calls a day for the {calls} APIs of token {name:?} poll each about every {}, longer than --wolkvox.stale-after {}: raise one of them",
                        budget.unwrap_or(0),
                        humantime::format_duration(budget_period),
                        humantime::format_duration(targets[i].stale_after)
                    ),
                ));
            }
            let target = &mut targets[i];
            target.token_name.clone_from(&name);
            target.daily_call_budget = budget;
            target.token_info = token_info;
            target.poll_interval = target.poll_interval.max(budget_period);
        }
    }
    for lane in &lanes {
        let name = &targets[lane[0]].token_name;
        if let Some(other) = lanes.iter().find(|other| other[0] != lane[0] && targets[other[0]].token_name == *name) {
            return Err(ConfigError::new(
                field_of(other[0].max(lane[0]), "token_name"),
                format!("{name:?} already names another token: give each token its own token_name"),
            ));
        }
    }
    Ok(())
}

/// Billing API names, checked against the catalogue: none unknown, none twice, at least one.
fn apis(field: &str, names: &[String]) -> Result<Vec<&'static Api>, ConfigError> {
    let mut apis: Vec<&'static Api> = Vec::with_capacity(names.len());
    for name in names {
        let api = catalogue::find(name).map_err(|why| ConfigError::new(field, why))?;
        if apis.contains(&api) {
            return Err(ConfigError::new(field, format!("{api} is listed twice")));
        }
        apis.push(api);
    }
    if apis.is_empty() {
        return Err(ConfigError::new(field, format!("lists no API; the billing APIs are: {}", catalogue::names())));
    }
    Ok(apis)
}

/// A server number goes into a host name and a header: letters and digits only.
fn check_server(field: &str, server: &str) -> Result<String, ConfigError> {
    let server = server.trim();
    if server.is_empty() || !server.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ConfigError::new(field, format!("{server:?} is not a server number such as 0042")));
    }
    Ok(server.to_owned())
}

fn token_from_file(field: &str, path: &Path) -> Result<(Token, String), ConfigError> {
    let token = read_token_file(path).map_err(|why| ConfigError::new(field, why))?;
    Ok((token, format!("file {}", path.display())))
}

/// Reads and checks a token file; the error names the file, never its content.
pub fn read_token_file(path: &Path) -> Result<Token, TokenFileError> {
    let text = crate::storage::read_file::read_regular_text(path, MAX_TOKEN_FILE_BYTES)
        .map_err(|source| TokenFileError::Read { path: path.to_owned(), source })?;
    Token::new(&text).map_err(|reason| TokenFileError::Invalid { path: path.to_owned(), reason })
}

/// A warning when a token file can be read by every user of the machine.
pub fn readable_by_others(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!("the token file {} is readable by every user of this machine (mode {:o}): chmod 0400 it", path.display(), mode & 0o777)
    })
}

fn token_from_env(field: &str, name: &str, value: &str) -> Result<(Token, String), ConfigError> {
    let token = Token::new(value).map_err(|why| ConfigError::new(field, format!("{name}: {why}")))?;
    Ok((token, format!("env {name}")))
}

/// ":PORT" means every interface, as in the Go exporters.
fn listen_address(text: &str) -> Result<String, ConfigError> {
    let address = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_owned() };
    match address.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(_)) => Ok(address),
        _ => Err(ConfigError::new("--web.listen-address", format!("{text:?} is not HOST:PORT or :PORT"))),
    }
}

fn telemetry_path(path: &str) -> Result<String, ConfigError> {
    let plain = path.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c));
    let reserved = matches!(path, "/" | "/-/healthy" | "/-/ready" | "/README.md") || path.starts_with("/docs/");
    if !path.starts_with('/') || !plain || reserved {
        return Err(ConfigError::new(
            "--web.telemetry-path",
            format!(
                "{path:?} must start with /, hold only letters, digits and / - . _ ~, and not be /, /README.md, /-/healthy, /-/ready or under /docs/"
            ),
        ));
    }
    Ok(path.to_owned())
}

/// Where state is kept unless `--storage.path` says otherwise, as in Prometheus and Alertmanager.
pub const DEFAULT_STORAGE_PATH: &str = "data/";

/// `90s`, `5m`, `1h 30m`: for the duration flags and fields.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    humantime::parse_duration(text.trim()).map_err(|source| InvalidDuration { text: text.to_owned(), source })
}

/// `32MiB`, `1GB`, a number of bytes: for `--wolkvox.max-response-bytes`.
pub fn parse_bytes(text: &str) -> Result<u64, InvalidSize> {
    text.trim().parse::<bytesize::ByteSize>().map(|size| size.as_u64()).map_err(|reason| InvalidSize { text: text.to_owned(), reason })
}

/// Targets that share a token must share one lane: grouped by token, in configuration order.
pub fn group_by_token(targets: &[Target]) -> Vec<Vec<usize>> {
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut lane_of: HashMap<&Token, usize> = HashMap::new();
    for (i, target) in targets.iter().enumerate() {
        let lane = *lane_of.entry(&target.token).or_insert_with(|| {
            lanes.push(Vec::new());
            lanes.len() - 1
        });
        lanes[lane].push(i);
    }
    lanes
}
