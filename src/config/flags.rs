//! The command line: every flag of the exporter, each with its environment variable, and the
//! parsers of its durations and sizes. What the flags mean together is checked by
//! [`Config::from_flags`](super::Config::from_flags).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Documented in the README and docs/configuration.md; above 10000 because 9100-9999 of Prometheus' port list is taken.
pub const DEFAULT_LISTEN_ADDRESS: &str = ":10042";
/// Where state is kept unless `--storage.path` says otherwise, as in Prometheus and Alertmanager.
pub const DEFAULT_STORAGE_PATH: &str = "data/";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "wolkvox_exporter",
    version,
    args_override_self = true,
    about = "Prometheus exporter for Wolkvox billing usage. Polls the API in the background and serves the cached values.",
    after_help = "The token comes from --wolkvox.token-file, or from the environment variable WOLKVOX_TOKEN \
                  (never from a flag: command lines are visible to every user through ps)."
)]
#[allow(
    missing_docs,
    reason = "a doc comment would become clap's long about, beside the about above"
)]
pub struct Flags {
    /// Wolkvox server number, e.g. 0042 (required unless --config.file or --demo).
    #[arg(long = "wolkvox.server", env = "WOLKVOX_SERVER", value_name = "NUMBER")]
    pub server: Option<String>,
    /// File holding the token (surrounding whitespace is trimmed).
    #[arg(long = "wolkvox.token-file", env = "WOLKVOX_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Where the API lives; {server} is replaced by the server number.
    #[arg(
        long = "wolkvox.base-url",
        env = "WOLKVOX_BASE_URL",
        default_value = "https://wv{server}.wolkvox.com"
    )]
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
    #[arg(
        long = "wolkvox.apis",
        env = "WOLKVOX_APIS",
        default_value = "gamification",
        value_name = "API,..."
    )]
    pub apis: String,
    /// A name for the token in metrics and logs (default: the token file's name, or the
    /// environment variable's); never the token itself.
    #[arg(long = "wolkvox.token-name", env = "WOLKVOX_TOKEN_NAME", value_name = "NAME")]
    pub token_name: Option<String>,
    /// Calls the token may spend per day (midnight to midnight in the time zone); the schedule is
    /// stretched to stay within it. Default: no budget.
    #[arg(
        long = "wolkvox.daily-call-budget",
        env = "WOLKVOX_DAILY_CALL_BUDGET",
        value_name = "CALLS"
    )]
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
    #[arg(
        long = "web.max-connections",
        env = "WOLKVOX_WEB_MAX_CONNECTIONS",
        default_value_t = 512
    )]
    pub max_connections: usize,
    /// Path under which the metrics are served.
    #[arg(
        long = "web.telemetry-path",
        env = "WOLKVOX_WEB_TELEMETRY_PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,
    /// Async worker threads. An exporter needs few, and tokio's default of one per CPU of the
    /// node multiplies memory on a large machine.
    #[arg(long = "runtime.worker-threads", env = "WOLKVOX_RUNTIME_WORKER_THREADS", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub worker_threads: u16,
    /// Only log lines of this level and above.
    #[arg(long = "log.level", env = "WOLKVOX_LOG_LEVEL", value_enum, default_value = "info")]
    pub log_level: LogLevel,
    /// logfmt, as the Go exporters write, or JSON.
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
pub(crate) struct InvalidSize {
    pub text: String,
    /// bytesize says what is wrong only in words.
    pub reason: String,
}

/// `90s`, `5m`, `1h 30m`: for the duration flags and fields.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    humantime::parse_duration(text.trim())
        .map_err(|source| InvalidDuration { text: text.to_owned(), source })
}

/// `32MiB`, `1GB`, a number of bytes: for `--wolkvox.max-response-bytes`.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, InvalidSize> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|reason| InvalidSize { text: text.to_owned(), reason })
}
