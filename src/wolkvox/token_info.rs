//! `information.php?api=token_info`: the server's own count of a token's calls. Its `data` is one
//! object (or an array holding one) whose numbers may come as strings, like the billing rows.

use serde_json::Value;

use super::model::{Decoded, api_error};

/// What Wolkvox says about the calling token today; a field it leaves out or spells as no number
/// stays `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenInfo {
    /// Calls the token may make per day.
    pub limit: Option<f64>,
    /// Calls this token made today.
    pub used_today: Option<f64>,
    /// Calls all the operation's tokens made today.
    pub all_tokens_used_today: Option<f64>,
}

/// The answer is a few hundred bytes (and capped like any other): a plain JSON tree is fine here.
pub(crate) fn decode(body: &[u8]) -> Result<Decoded<TokenInfo>, String> {
    let envelope: Value =
        serde_json::from_slice(body).map_err(|e| format!("not a token_info response: {e}"))?;
    let Value::Object(envelope) = envelope else {
        return Err("not a token_info response: not a JSON object".to_owned());
    };
    if let Some(refusal) =
        api_error(envelope.get("code"), envelope.get("error"), envelope.get("msg"))
    {
        return Ok(refusal);
    }
    let data = match envelope.get("data") {
        Some(Value::Array(items)) => items.first(),
        other => other,
    };
    let Some(Value::Object(data)) = data else {
        return Err("`data` holds no token_info object".to_owned());
    };
    let number = |key: &str| {
        match data.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|n| n.is_finite())
    };
    let info = TokenInfo {
        limit: number("token_limit"),
        used_today: number("token_use_today"),
        all_tokens_used_today: number("all_token_today"),
    };
    if info == TokenInfo::default() {
        return Err("`data` has none of token_limit, token_use_today, all_token_today as a number"
            .to_owned());
    }
    Ok(Decoded::Answer(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(body: &str) -> TokenInfo {
        match decode(body.as_bytes()) {
            Ok(Decoded::Answer(info)) => info,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn numbers_come_as_strings_or_numbers_in_an_object_or_an_array() {
        let full = TokenInfo {
            limit: Some(5000.0),
            used_today: Some(12.0),
            all_tokens_used_today: Some(40.0),
        };
        let quoted = r#"{"code": 200, "error": null, "msg": "ok", "data": {"token_limit": "5000", "token_use_today": " 12 ", "all_token_today": "40", "available_consumption_options": "billing"}}"#;
        assert_eq!(info(quoted), full);
        let listed = r#"{"code": "200", "data": [{"token_limit": 5000, "token_use_today": 12, "all_token_today": 40}]}"#;
        assert_eq!(info(listed), full);
        let partial = r#"{"code": 200, "data": {"token_limit": "5000", "token_use_today": "", "all_token_today": null}}"#;
        assert_eq!(info(partial), TokenInfo { limit: Some(5000.0), ..TokenInfo::default() });
    }

    #[test]
    fn errors_and_non_answers_are_told_apart() {
        let refused =
            decode(br#"{"code": 403, "error": "FORBIDDEN", "msg": "PLEASE VALIDATE TOKEN"}"#)
                .unwrap();
        assert_eq!(
            refused,
            Decoded::ApiError { code: Some(403), text: "FORBIDDEN PLEASE VALIDATE TOKEN".into() }
        );
        for body in [
            "",
            "[]",
            "{\"code\": 200}",
            "{\"code\": 200, \"data\": {\"other\": 1}}",
            "{\"code\": 200, \"data\": [1]}",
        ] {
            assert!(decode(body.as_bytes()).is_err(), "{body}");
        }
    }
}
