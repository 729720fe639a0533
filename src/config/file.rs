//! The YAML config file (`--config.file`): several targets, each with its own token and any
//! setting of its own, the contracted `budgets:`, the `prices:` and the `cost_limits:`. Values
//! stay text until they are checked, so that an error can name `targets[N].field`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::contracts::FileBudget;
use crate::config::error::ConfigError;
use crate::config::flags::Flags;
use crate::config::prices::{FileCostLimit, FilePrice};
use crate::config::target::{self, Origin, Target};
use crate::config::token::Token;
use crate::config::token_source;

/// Thousands of targets, budgets and prices.
const MAX_CONFIG_FILE_BYTES: u64 = 16 << 20;

/// The config file: `targets:`, and the optional `budgets:`, `prices:` and `cost_limits:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    targets: Vec<FileTarget>,
    #[serde(default)]
    budgets: Vec<FileBudget>,
    #[serde(default)]
    prices: Vec<FilePrice>,
    #[serde(default)]
    cost_limits: Vec<FileCostLimit>,
}

/// The file's budgets, prices and cost limits as written: checked against every target.
#[derive(Default)]
pub(super) struct FileContracts {
    pub budgets: Vec<FileBudget>,
    pub prices: Vec<FilePrice>,
    pub cost_limits: Vec<FileCostLimit>,
}

/// A target as the file writes it. Every setting it leaves out is the flag's; the target of the
/// flags alone is the entry that sets nothing, [`FileTarget::default`].
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTarget {
    pub server: String,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub base_url: Option<String>,
    pub poll_interval: Option<String>,
    pub timeout: Option<String>,
    pub timezone: Option<String>,
    pub apis: Option<Vec<String>>,
    pub token_name: Option<String>,
    pub daily_call_budget: Option<u32>,
    pub token_info: Option<bool>,
}

/// The file's targets, the flags setting what they leave out, and its budgets, prices and cost
/// limits (checked later, against every target).
pub(super) fn targets_from_file(
    path: &Path,
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Vec<Target>, FileContracts), ConfigError> {
    let text =
        crate::storage::read_file::read_regular_text(path, MAX_CONFIG_FILE_BYTES).map_err(|e| {
            ConfigError::new("--config.file", format!("cannot read {}: {e}", path.display()))
        })?;
    let file: TargetsFile = serde_norway::from_str(&text).map_err(|e| {
        ConfigError::new(format!("--config.file {}", path.display()), e.to_string())
    })?;
    if file.targets.is_empty() {
        return Err(ConfigError::new("targets", "lists no target"));
    }
    let mut targets: Vec<Target> = Vec::with_capacity(file.targets.len());
    for (i, entry) in file.targets.iter().enumerate() {
        let server = target::check_server(&format!("targets[{i}].server"), &entry.server)?;
        let (token, token_source) = token_of(entry, i, env)?;
        let built = target::build(flags, entry, Origin::File(i), server, token, token_source)?;
        let target = Target { token_file: entry.token_file.clone(), ..built };
        // The server number is the identity of a target's series: two entries for it would clash.
        if let Some(first) = targets.iter().position(|t| t.server == target.server) {
            return Err(ConfigError::new(
                format!("targets[{i}].server"),
                format!("duplicate of targets[{first}] (server {})", target.server),
            ));
        }
        targets.push(target);
    }
    let contracts =
        FileContracts { budgets: file.budgets, prices: file.prices, cost_limits: file.cost_limits };
    Ok((targets, contracts))
}

/// Entry `i`'s token, from `token_file` or `token_env` (exactly one of them), and its source.
fn token_of(
    entry: &FileTarget,
    i: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Token, String), ConfigError> {
    let field = |key: &str| format!("targets[{i}].{key}");
    match (&entry.token_file, &entry.token_env) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            field("token_file"),
            "set either token_file or token_env, not both",
        )),
        (Some(path), None) => token_source::from_file(&field("token_file"), path),
        (None, Some(name)) => token_source::from_named_env(&field("token_env"), name, env),
        (None, None) => {
            Err(ConfigError::new(field("token_file"), "no token: set token_file or token_env"))
        }
    }
}
