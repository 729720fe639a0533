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

    /// `text` (an upstream's message) with every trace of the token replaced by `<redacted>`: the
    /// token in any letter case (Wolkvox writes its messages in capitals), any run of at least
    /// [`SHORTEST_PIECE`] of its characters (a prefix, a truncation), and its base64 forms.
    pub fn redact(&self, text: &str) -> String {
        let token = self.0.as_bytes();
        let shortest = SHORTEST_PIECE.min(token.len());
        let encoded = [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::URL_SAFE,
        ]
        .map(|engine| base64::Engine::encode(engine, token));
        let bytes = text.as_bytes();
        let mut secret = vec![false; bytes.len()];
        for start in 0..bytes.len() {
            // The longest piece of the token, in any case, that starts here.
            let piece = (0..token.len())
                .map(|from| {
                    bytes[start..]
                        .iter()
                        .zip(&token[from..])
                        .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
                        .count()
                })
                .max()
                .unwrap_or(0);
            let piece = if piece >= shortest { piece } else { 0 };
            // Base64 keeps its case: matched as it is, padding or not.
            let base64 = encoded
                .iter()
                .map(|e| e.trim_end_matches('='))
                .find(|e| bytes[start..].starts_with(e.as_bytes()));
            let len = piece.max(base64.map_or(0, str::len));
            secret[start..start + len].iter_mut().for_each(|s| *s = true);
        }
        let mut redacted = String::with_capacity(text.len());
        let mut in_secret = false;
        for (index, c) in text.char_indices() {
            match (secret[index], in_secret) {
                (true, false) => redacted.push_str("<redacted>"),
                (true, true) => {}
                (false, _) => redacted.push(c),
            }
            in_secret = secret[index];
        }
        redacted
    }
}

/// The fewest characters of the token that count as a piece of it in a message: long enough that
/// a word of the message is not taken for one.
const SHORTEST_PIECE: usize = 8;

/// Why a value cannot be a token. It carries nothing of the value, so it can be shown anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    #[error("the token is empty")]
    Empty,
    #[error(
        "the token holds spaces, control or non-ASCII characters, which an HTTP header cannot carry"
    )]
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
    fn redacts_the_token_in_any_case_its_pieces_and_its_base64() {
        let token = Token::new("secret-abc-123456").unwrap();
        let redact = |text: &str| token.redact(text);
        assert_eq!(redact("TOKEN SECRET-ABC-123456 IS INVALID"), "TOKEN <redacted> IS INVALID");
        assert_eq!(redact("token secret-abc-1... is invalid"), "token <redacted>... is invalid");
        assert_eq!(
            redact("header c2VjcmV0LWFiYy0xMjM0NTY= rejected"),
            "header <redacted>= rejected"
        );
        assert_eq!(redact("ñandú secret-abc-123456ñ"), "ñandú <redacted>ñ");
        // Short runs of its characters are words, not the token.
        assert_eq!(redact("the secret is abc-123"), "the secret is abc-123");
    }

    #[test]
    fn trims_and_refuses_what_a_header_cannot_carry() {
        assert_eq!(Token::new("  fake-token\n").unwrap().expose(), "fake-token");
        assert_eq!(Token::new("   "), Err(InvalidToken::Empty));
        assert_eq!(Token::new("fake token"), Err(InvalidToken::NotHeaderSafe));
        assert_eq!(Token::new("fake-tökén"), Err(InvalidToken::NotHeaderSafe));
    }
}
