//! The one error of configuration: the flag or field at fault, and what is wrong with it. Its own
//! module so that `config` and `budget` can both build it without importing each other.

use std::fmt;

/// A configuration problem, shown as `invalid configuration: FIELD: PROBLEM`. The problem never
/// quotes a token.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {field}: {problem}")]
pub struct ConfigError {
    /// The flag (`--wolkvox.server`) or field (`targets[2].timezone`) at fault.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    /// `problem` is any message or typed error; its text is what the user reads after the field.
    pub fn new(field: impl Into<String>, problem: impl fmt::Display) -> ConfigError {
        ConfigError { field: field.into(), problem: problem.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_first() {
        let error =
            ConfigError::new("--wolkvox.timeout", "must be longer than zero and at most 10m");
        assert_eq!(
            error.to_string(),
            "invalid configuration: --wolkvox.timeout: must be longer than zero and at most 10m"
        );
    }
}
