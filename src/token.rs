//! The Wolkvox token: a secret that no `Debug`, log line or error message may reveal.

use std::fmt;
use std::sync::Arc;

/// A token as sent in the `wolkvox-token` header. It has no `Display`, and its `Debug` is redacted,
/// so it cannot leak through `{}`/`{:?}` formatting by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(Arc<str>);

impl Token {
    /// Checks that the value can travel in an HTTP header; the error never quotes the value.
    pub fn new(value: &str) -> Result<Token, &'static str> {
        let value = value.trim();
        if value.is_empty() {
            return Err("the token is empty");
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token holds spaces, control or non-ASCII characters, which an HTTP header cannot carry");
        }
        Ok(Token(value.into()))
    }

    /// The secret itself, for the one place that needs it: the request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let token = Token::new("fake-token-123").unwrap();
        assert!(!format!("{token:?}").contains("fake-token-123"));
    }

    #[test]
    fn trims_and_refuses_what_a_header_cannot_carry() {
        assert_eq!(Token::new("  fake-token\n").unwrap().expose(), "fake-token");
        assert!(Token::new("   ").is_err());
        assert!(Token::new("fake token").is_err());
        assert!(Token::new("fake-tökén").is_err());
    }
}
