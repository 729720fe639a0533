//! Command-line flags, environment and the YAML targets file, turned into one validated
//! [`Config`]. Every error names the flag or field at fault and never quotes a token.
//!
//! - `flags`: the command line, each flag with its environment variable;
//! - `file`: the YAML file of targets, budgets and prices (`--config.file`);
//! - `target`: one target's settings, its own or else the flags', checked;
//! - `token_source`: a token read from a file or the environment;
//! - `shared_tokens`: what the targets of one token must agree on, its daily budget included;
//! - `contracts`, `prices`: the contracted budgets, the prices and the monthly cost limits;
//! - `upstream_ca`: the CAs to trust besides the system's;
//! - `token`: the secret itself; `error`: the one error type.

pub(crate) mod contracts;
pub(crate) mod error;
pub(crate) mod file;
pub(crate) mod flags;
pub(crate) mod prices;
pub(crate) mod shared_tokens;
pub(crate) mod target;
pub(crate) mod token;
pub(crate) mod token_source;
pub(crate) mod upstream_ca;

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::config::contracts::Contracts;
pub use crate::config::error::ConfigError;
#[cfg(feature = "test-util")]
pub use crate::config::flags::DEFAULT_LISTEN_ADDRESS;
pub use crate::config::flags::{DEFAULT_STORAGE_PATH, Flags, LogFormat, LogLevel, parse_duration};
pub use crate::config::shared_tokens::group_by_token;
pub use crate::config::target::{DEMO_TOKEN, Target};
pub use crate::config::token_source::{read_token_file, readable_by_others};
use crate::web::WebSettings;
use contracts::Polled;
use file::FileContracts;

/// Everything the exporter needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// One per server and token: what the lanes poll.
    pub targets: Vec<Target>,
    /// `--web.listen-address`, as `host:port`.
    pub listen_address: String,
    /// `--web.telemetry-path`.
    pub telemetry_path: String,
    /// `--log.level`.
    pub log_level: LogLevel,
    /// `--log.format`.
    pub log_format: LogFormat,
    /// The single target points at the embedded simulator, whose address is known only once it runs.
    pub demo: bool,
    /// The CAs of `--wolkvox.ca-file`, to trust besides the system's.
    pub ca_certificates: Vec<reqwest::Certificate>,
    /// `--web.config.file`, watched for changes.
    pub web_config_file: Option<PathBuf>,
    /// The web configuration as first read (TLS, basic auth, headers).
    pub web: Arc<WebSettings>,
    /// `--web.max-requests`: concurrent requests served.
    pub max_requests: usize,
    /// `--web.max-connections`: connections held open.
    pub max_connections: usize,
    /// Things worth a warning once logging runs (a token file others can read).
    pub warnings: Vec<String>,
    /// Contracted quantities, prices and cost limits, from the config file.
    pub contracts: Contracts,
    /// The state directory; None: nothing survives a restart.
    pub storage_path: Option<PathBuf>,
}

impl Config {
    /// What `--config.check` prints: a line for the whole, one per target, price and cost limit;
    /// never a token.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let contracts = &self.contracts;
        let mut text = format!(
            "configuration is valid: {} target(s), {} budget(s), {} price(s), {} cost limit(s)\n",
            self.targets.len(),
            contracts.budgets.len(),
            contracts.prices.entries().len(),
            contracts.cost_limits.len(),
        );
        for target in &self.targets {
            let _ = writeln!(
                text,
                "server={} apis={} base_url={} token={} token_name={} daily_call_budget={} token_info={} poll_interval={} timeout={} timezone={}",
                target.server,
                target.apis.iter().map(|api| api.name).collect::<Vec<_>>().join(","),
                target.base_url,
                target.token_source,
                target.token_name,
                target.daily_call_budget.map_or("none".to_owned(), |budget| budget.to_string()),
                target.token_info,
                humantime::format_duration(target.poll_interval),
                humantime::format_duration(target.timeout),
                target.timezone_name,
            );
        }
        for price in contracts.prices.entries() {
            let _ = writeln!(
                text,
                "price server={} api={} operation={} description={:?} unit_price={} currency={} charge={}",
                price.server,
                price.api,
                price.operation.as_deref().map_or("(every)".to_owned(), |op| format!("{op:?}")),
                price.description,
                price.unit_price,
                price.currency,
                price.charge.as_str(),
            );
        }
        for limit in &contracts.cost_limits {
            let _ = writeln!(
                text,
                "cost_limit server={} currency={} monthly={}",
                limit.server, limit.currency, limit.monthly
            );
        }
        text
    }

    /// Builds the configuration from parsed flags; `env` looks up environment variables (the
    /// token ones), so tests can pass their own.
    pub fn from_flags(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let listen_address = listen_address(&flags.listen_address)?;
        let telemetry_path = telemetry_path(&flags.telemetry_path)?;
        let (mut targets, file_contracts) = targets(flags, env)?;
        let field_of = |i: usize, key: &str| match (&flags.config_file, key) {
            (Some(_), key) => format!("targets[{i}].{key}"),
            (None, "token_name") => "--wolkvox.token-name".to_owned(),
            (None, _) => "--wolkvox.daily-call-budget".to_owned(),
        };
        shared_tokens::check_tokens(&mut targets, &field_of)?;
        let polled: Vec<Polled<'_>> =
            targets.iter().map(|t| Polled { server: &t.server, apis: &t.apis }).collect();
        let budgets = contracts::check(file_contracts.budgets, &polled)?;
        let (prices, cost_limits) =
            prices::check(file_contracts.prices, file_contracts.cost_limits, &polled)?;
        let contracts = Contracts { budgets, prices, cost_limits };
        // Read once here, where an error names the flag, and handed to the client as read.
        let ca_certificates = match &flags.ca_file {
            Some(path) => upstream_ca::ca_certificates(path)
                .map_err(|why| ConfigError::new("--wolkvox.ca-file", why))?,
            None => Vec::new(),
        };
        let web = match &flags.web_config_file {
            Some(path) => WebSettings::load(path).map_err(|why| {
                ConfigError::new(format!("--web.config.file {}", path.display()), why)
            })?,
            None => WebSettings::plain(),
        };
        let mut warnings: Vec<String> = targets
            .iter()
            .filter_map(|t| t.token_file.as_deref())
            .filter_map(readable_by_others)
            .collect();
        let storage_path = storage_path(flags, &mut warnings);
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
            contracts,
            storage_path,
        })
    }
}

/// The targets of `--demo`, of the config file (with its budgets and prices), or of the flags: one
/// of them.
fn targets(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<Target>, FileContracts), ConfigError> {
    if flags.demo {
        if flags.config_file.is_some() || flags.server.is_some() {
            return Err(ConfigError::new(
                "--demo",
                "polls only the embedded simulator: drop --config.file and --wolkvox.server",
            ));
        }
        Ok((vec![target::demo(flags)?], FileContracts::default()))
    } else if let Some(path) = &flags.config_file {
        if flags.server.is_some() || flags.token_file.is_some() {
            return Err(ConfigError::new(
                "--config.file",
                "the file lists the targets: drop --wolkvox.server and --wolkvox.token-file (WOLKVOX_SERVER, WOLKVOX_TOKEN_FILE)",
            ));
        }
        file::targets_from_file(path, flags, env)
    } else {
        Ok((vec![target::from_flags(flags, env)?], FileContracts::default()))
    }
}

/// `--storage.path`: `data/` by default, none with `--demo`, and none (with a warning) when empty.
fn storage_path(flags: &Flags, warnings: &mut Vec<String>) -> Option<PathBuf> {
    match flags.storage_path.as_deref().map(str::trim) {
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
    }
}

/// ":PORT" means every interface, as in the Go exporters.
fn listen_address(text: &str) -> Result<String, ConfigError> {
    let address = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_owned() };
    match address.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(_)) => Ok(address),
        _ => Err(ConfigError::new(
            "--web.listen-address",
            format!("{text:?} is not HOST:PORT or :PORT"),
        )),
    }
}

fn telemetry_path(path: &str) -> Result<String, ConfigError> {
    let plain = path.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c));
    if !path.starts_with('/') || !plain || crate::serve::router::is_reserved(path) {
        return Err(ConfigError::new(
            "--web.telemetry-path",
            format!(
                "{path:?} must start with /, hold only letters, digits and / - . _ ~, and not be /, /README.md, /-/healthy, /-/ready or under /docs/"
            ),
        ));
    }
    Ok(path.to_owned())
}
