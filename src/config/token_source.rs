//! Where a target's token comes from, a file or an environment variable, and the checks on the
//! way: every error names the file or variable, never the token. The token file is also read
//! again before every poll (`calls::lanes`), so that a rotated token is used without a restart.

use std::path::{Path, PathBuf};

use crate::config::error::ConfigError;
use crate::config::token::{InvalidToken, Token};

/// A token is a few dozen characters; a token file is never read past this.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

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

/// The token of a file, and its source for `--config.check` ("file PATH"); `field` names the
/// flag or key that gave the path.
pub(super) fn from_file(field: &str, path: &Path) -> Result<(Token, String), ConfigError> {
    let token = read_token_file(path).map_err(|why| ConfigError::new(field, why))?;
    Ok((token, format!("file {}", path.display())))
}

/// The token held by the environment variable `name` (its value `value`), and its source ("env NAME").
pub(super) fn from_env(
    field: &str,
    name: &str,
    value: &str,
) -> Result<(Token, String), ConfigError> {
    let token =
        Token::new(value).map_err(|why| ConfigError::new(field, format!("{name}: {why}")))?;
    Ok((token, format!("env {name}")))
}

/// The token of the variable a config file names (`token_env`), looked up through `env`.
pub(super) fn from_named_env(
    field: &str,
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Token, String), ConfigError> {
    // A pasted token instead of a variable name must not end up quoted in the error.
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(ConfigError::new(
            field,
            "must be the name of an environment variable (letters, digits, _)",
        ));
    }
    let value = env(name).ok_or_else(|| {
        ConfigError::new(field, format!("the environment variable {name} is not set"))
    })?;
    from_env(field, name, &value)
}
