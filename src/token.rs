//! The Wolkvox token: a secret that no `Debug`, log line or error message may reveal.

use std::fmt;
use std::sync::Arc;

/// A token as sent in the `wolkvox-token` header. It has no `Display`, and its `Debug` is redacted,
/// so it cannot leak through `{}`/`{:?}` formatting by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(Arc<str>);

impl Token {
    /// Checks that the value can travel in an HTTP header; the error never quotes the value.
    pub fn new(value: &str) -> Result<Token, InvalidToken> {
        let value = value.trim();
        if value.is_empty() {
            return Err(InvalidToken::Empty);
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidToken::NotHeaderSafe);
        }
        Ok(Token(value.into()))
    }

    /// The secret itself, for the one place that needs it: the request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Why a value cannot be a token. It carries nothing of the value, so it can be shown anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    #[error("the token is empty")]
    Empty,
    #[error("the token holds spaces, control or non-ASCII characters, which an HTTP header cannot carry")]
    NotHeaderSafe,
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
        assert_eq!(Token::new("   "), Err(InvalidToken::Empty));
        assert_eq!(Token::new("fake token"), Err(InvalidToken::NotHeaderSafe));
        assert_eq!(Token::new("fake-tökén"), Err(InvalidToken::NotHeaderSafe));
    }
}
