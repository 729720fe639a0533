//! One target: a Wolkvox server, the token that pays for it, and its settings, each the target's
//! own (from the config file) or else the flag's, checked. Errors name the file's key or the flag.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;

use crate::calls::admission::FLOOR;
use crate::config::error::ConfigError;
use crate::config::file::FileTarget;
use crate::config::flags::{Flags, parse_duration};
use crate::config::token::Token;
use crate::config::token_source;
use crate::wolkvox::{Api, catalogue};

/// Even with fast polling allowed, a lane must breathe between calls.
const MIN_FAST_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Upper bounds keep every deadline computable; nothing sensible lies beyond them.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(24 * 3600);
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_STALE_AFTER: Duration = Duration::from_secs(31 * 24 * 3600);
/// The API caps a result at 256 MB; more than 1 GiB cannot be a billing answer.
const MAX_RESPONSE_BYTES: u64 = 1 << 30;
/// `--demo` polls the embedded simulator this often.
pub(crate) const DEMO_POLL_INTERVAL: Duration = Duration::from_secs(15);
/// The token `--demo` hands the simulator: a public placeholder, not a secret.
pub const DEMO_TOKEN: &str = "demo-token-not-a-secret";
pub(crate) const DEMO_SERVER: &str = "0042";

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

/// Where a target's settings were given, so that an error names the flag or the file's key.
#[derive(Clone, Copy, Debug)]
pub(super) enum Origin {
    /// No config file: the flags alone.
    Flags,
    /// Entry N of the config file's `targets:`.
    File(usize),
}

impl Origin {
    /// How an error names a setting: the flag, or the file's key (`targets[2].timeout`).
    pub(super) fn name(self, key: &str, flag: &str) -> String {
        match self {
            Origin::Flags => flag.to_owned(),
            Origin::File(i) => format!("targets[{i}].{key}"),
        }
    }
}

/// The one target of the flags (no config file): `--wolkvox.server` and its token.
pub(super) fn from_flags(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, ConfigError> {
    let server = flags.server.clone().ok_or_else(|| {
        ConfigError::new(
            "--wolkvox.server",
            "required (or use --config.file, or --demo to try the exporter without an account)",
        )
    })?;
    let server = check_server("--wolkvox.server", &server)?;
    let (token, token_source) = match (&flags.token_file, env("WOLKVOX_TOKEN")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "--wolkvox.token-file",
                "set either the token file or WOLKVOX_TOKEN, not both",
            ));
        }
        (Some(path), None) => token_source::from_file("--wolkvox.token-file", path)?,
        (None, Some(value)) => token_source::from_env("WOLKVOX_TOKEN", "WOLKVOX_TOKEN", &value)?,
        (None, None) => {
            return Err(ConfigError::new(
                "--wolkvox.token-file",
                "no token: set --wolkvox.token-file or the environment variable WOLKVOX_TOKEN",
            ));
        }
    };
    let built = build(flags, &FileTarget::default(), Origin::Flags, server, token, token_source)?;
    Ok(Target { token_file: flags.token_file.clone(), ..built })
}

/// The target of `--demo`: the embedded simulator, polled every [`DEMO_POLL_INTERVAL`].
pub(super) fn demo(flags: &Flags) -> Result<Target, ConfigError> {
    let demo_flags =
        Flags { poll_interval: DEMO_POLL_INTERVAL, allow_fast_poll: true, ..flags.clone() };
    let token = Token::new(DEMO_TOKEN).expect("the demo token is valid");
    build(
        &demo_flags,
        &FileTarget::default(),
        Origin::Flags,
        DEMO_SERVER.to_owned(),
        token,
        "demo".to_owned(),
    )
}

/// A target of `server` and `token`: each setting `entry`'s, or else the flag's, checked in turn.
pub(super) fn build(
    flags: &Flags,
    entry: &FileTarget,
    origin: Origin,
    server: String,
    token: Token,
    token_source: String,
) -> Result<Target, ConfigError> {
    let poll_interval = poll_interval(flags, entry, origin)?;
    let timeout = duration(origin, "timeout", "--wolkvox.timeout", &entry.timeout, flags.timeout)?;
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(ConfigError::new(
            origin.name("timeout", "--wolkvox.timeout"),
            "must be longer than zero and at most 10m",
        ));
    }
    check_stale_after(flags, entry, origin, poll_interval)?;
    let timezone_name = entry.timezone.clone().unwrap_or_else(|| flags.timezone.clone());
    let timezone = TimeZone::get(&timezone_name).map_err(|_| {
        ConfigError::new(
            origin.name("timezone", "--wolkvox.timezone"),
            format!("unknown IANA time zone {timezone_name:?}"),
        )
    })?;
    let base_url = base_url(flags, entry, origin, &server)?;
    if flags.max_response_bytes == 0 || flags.max_response_bytes > MAX_RESPONSE_BYTES {
        return Err(ConfigError::new(
            "--wolkvox.max-response-bytes",
            "must be larger than zero and at most 1GiB",
        ));
    }
    let apis = match &entry.apis {
        Some(names) => apis(&origin.name("apis", "--wolkvox.apis"), names)?,
        None => {
            apis("--wolkvox.apis", &flags.apis.split(',').map(str::to_owned).collect::<Vec<_>>())?
        }
    };
    let given = entry.token_name.as_ref().or(flags.token_name.as_ref());
    let token_name = token_name(origin, given, &token, &token_source)?;
    Ok(Target {
        apis,
        token_name,
        token_name_is_default: given.is_none(),
        daily_call_budget: entry.daily_call_budget.or(flags.daily_call_budget),
        token_info: entry.token_info.unwrap_or(flags.token_info),
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

/// A duration setting: the entry's text, parsed, or else the flag's value.
fn duration(
    origin: Origin,
    key: &str,
    flag: &str,
    value: &Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|e| ConfigError::new(origin.name(key, flag), e)),
    }
}

/// Within bounds, and no faster than the API's floor unless fast polling is allowed.
fn poll_interval(
    flags: &Flags,
    entry: &FileTarget,
    origin: Origin,
) -> Result<Duration, ConfigError> {
    let poll_interval = duration(
        origin,
        "poll_interval",
        "--wolkvox.poll-interval",
        &entry.poll_interval,
        flags.poll_interval,
    )?;
    let field = origin.name("poll_interval", "--wolkvox.poll-interval");
    if poll_interval < MIN_FAST_POLL_INTERVAL || poll_interval > MAX_POLL_INTERVAL {
        return Err(ConfigError::new(field, "must be between 100ms and 24h"));
    }
    // The floor is the admission's rule; here it only refuses a schedule that would always wait on it.
    if poll_interval < FLOOR && !flags.allow_fast_poll {
        return Err(ConfigError::new(
            field,
            format!(
                "{} is under the API's limit of one call every {} (--wolkvox.allow-fast-poll overrides it, for simulators only)",
                humantime::format_duration(poll_interval),
                humantime::format_duration(FLOOR)
            ),
        ));
    }
    Ok(poll_interval)
}

/// Series must outlive the time between two polls, or they would vanish between them.
fn check_stale_after(
    flags: &Flags,
    entry: &FileTarget,
    origin: Origin,
    poll_interval: Duration,
) -> Result<(), ConfigError> {
    if flags.stale_after > MAX_STALE_AFTER {
        return Err(ConfigError::new("--wolkvox.stale-after", "must be at most 31d"));
    }
    if flags.stale_after < poll_interval {
        // Name the target's own interval when it is the one that conflicts.
        let field = if entry.poll_interval.is_some() {
            origin.name("poll_interval", "--wolkvox.poll-interval")
        } else {
            "--wolkvox.stale-after".to_owned()
        };
        return Err(ConfigError::new(
            field,
            format!(
                "{} is shorter than the poll interval {}: series would vanish between polls",
                humantime::format_duration(flags.stale_after),
                humantime::format_duration(poll_interval)
            ),
        ));
    }
    Ok(())
}

/// The base URL with the server number in it: http(s) only.
fn base_url(
    flags: &Flags,
    entry: &FileTarget,
    origin: Origin,
    server: &str,
) -> Result<String, ConfigError> {
    let base_url = entry.base_url.as_deref().unwrap_or(&flags.base_url).replace("{server}", server);
    if !(base_url.starts_with("https://") || base_url.starts_with("http://"))
        || base_url.parse::<reqwest::Url>().is_err()
    {
        return Err(ConfigError::new(
            origin.name("base_url", "--wolkvox.base-url"),
            format!("{base_url:?} is not an http(s) URL"),
        ));
    }
    Ok(base_url)
}

/// The name given (trimmed), or one made from the token's source; a label value, never the token.
fn token_name(
    origin: Origin,
    given: Option<&String>,
    token: &Token,
    token_source: &str,
) -> Result<String, ConfigError> {
    let field = origin.name("token_name", "--wolkvox.token-name");
    let token_name =
        given.map_or_else(|| default_token_name(token_source), |name| name.trim().to_owned());
    if token_name.is_empty()
        || !token_name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ConfigError::new(
            field,
            "must be letters, digits, - _ . (it is a metric label)",
        ));
    }
    if token_name == token.expose() {
        return Err(ConfigError::new(
            field,
            "is the token itself: choose a name that is not a secret",
        ));
    }
    Ok(token_name)
}

/// "file /etc/wolkvox/token-0042" -> "token-0042", "env WOLKVOX_TOKEN" -> "WOLKVOX_TOKEN"; what a
/// label value should not hold becomes `_`.
fn default_token_name(token_source: &str) -> String {
    let name = token_source.split_once(' ').map_or(token_source, |(_, rest)| rest);
    let name = Path::new(name).file_name().map_or(name.into(), |file| file.to_string_lossy());
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
        .collect()
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
        return Err(ConfigError::new(
            field,
            format!("lists no API; the billing APIs are: {}", catalogue::names()),
        ));
    }
    Ok(apis)
}

/// A server number goes into a host name and a header: letters and digits only.
pub(super) fn check_server(field: &str, server: &str) -> Result<String, ConfigError> {
    let server = server.trim();
    if server.is_empty() || !server.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ConfigError::new(
            field,
            format!("{server:?} is not a server number such as 0042"),
        ));
    }
    Ok(server.to_owned())
}
