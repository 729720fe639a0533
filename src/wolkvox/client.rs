//! One request: URL, headers, date window, total timeout and body cap, turned into a [`Report`]
//! (or, for `token_info`, a [`TokenInfo`]) or a classified [`Failure`].

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::model::{self, Decoded};
use super::{Failure, Reason, Report, TokenInfo, token_info, window};
use crate::config::Target;
use crate::token::Token;

/// Shared by every lane; it holds the connection pool and nothing about any token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    /// `ca_file`: a CA to trust besides the system's.
    pub fn new(ca_file: Option<&std::path::Path>) -> Result<Client, String> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("wolkvox_exporter/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the token header to wherever it points: answer 3xx as an error.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = ca_file {
            builder = builder.tls_certs_merge(crate::config::ca_certificates(path)?);
        }
        let http = builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client { http })
    }

    /// Calls `billing.php?api={api}` for the target's current month.
    pub async fn fetch(&self, target: &Target, api: &str, token: &Token) -> Result<Report, Failure> {
        let now = jiff::Timestamp::now().to_zoned(target.timezone.clone());
        let window = window::current_month(&now);
        let query = format!("billing.php?api={api}&date_ini={}&date_end={}", window.date_ini, window.date_end);
        self.call(target, &query, token, model::decode).await
    }

    /// Calls `information.php?api=token_info`: the server's count of the token's calls today.
    pub async fn fetch_token_info(&self, target: &Target, token: &Token) -> Result<TokenInfo, Failure> {
        self.call(target, "information.php?api=token_info", token, token_info::decode).await
    }

    /// One call of `/api/v2/{query}`. The whole call, from connect to the last byte of the body,
    /// is bounded by the target's timeout.
    async fn call<T>(&self, target: &Target, query: &str, token: &Token, decode: Decoder<T>) -> Result<T, Failure> {
        let timeout = target.timeout;
        match tokio::time::timeout(timeout, self.call_unbounded(target, query, token, decode)).await {
            Ok(Ok(answer)) => Ok(answer),
            // An upstream that echoes the token in its message must not get it into our logs; and
            // its message, however long or many-lined, becomes one short line.
            Ok(Err(failure)) => Err(Failure { detail: one_line(&failure.detail.replace(token.expose(), "<redacted>")), ..failure }),
            Err(_) => Err(Failure::new(Reason::Timeout, format!("no complete answer within {}", humantime::format_duration(timeout)))),
        }
    }

    async fn call_unbounded<T>(&self, target: &Target, query: &str, token: &Token, decode: Decoder<T>) -> Result<T, Failure> {
        let url = format!("{}/api/v2/{query}", target.base_url.trim_end_matches('/'));
        let mut response = self
            .http
            .get(url)
            .header("wolkvox-token", token.expose())
            .header("wolkvox_server", &target.server)
            .send()
            .await
            .map_err(|e| Failure::new(Reason::Transport, describe(&e)))?;

        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let max = target.max_response_bytes;
        if let Some(length) = response.content_length().filter(|&length| length > max) {
            return Err(Failure::new(Reason::TooLarge, format!("the body announces {length} bytes, the cap is {max}")));
        }
        // The announced length is the upstream's word: reserve no more than 1 MiB on it.
        let mut body = Vec::with_capacity(response.content_length().unwrap_or(0).min(1 << 20) as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| Failure::new(Reason::Transport, describe(&e)))? {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(Failure::new(Reason::TooLarge, format!("the body passed the cap of {max} bytes")));
            }
            body.extend_from_slice(&chunk);
        }

        let decoded = decode(&body);
        if !(200..300).contains(&status) {
            let text = match &decoded {
                Ok(Decoded::ApiError { text, .. }) => text.clone(),
                _ => String::new(),
            };
            let reason = Reason::classify(status, &text);
            let detail = if text.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {text}") };
            return Err(Failure { reason, detail, status: Some(status), retry_after });
        }
        match decoded {
            Ok(Decoded::Answer(answer)) => Ok(answer),
            Ok(Decoded::ApiError { code, text }) => {
                let code = code.unwrap_or(status);
                let reason = Reason::classify(code, &text);
                Err(Failure { reason, detail: format!("HTTP {status}, code {code}: {text}"), status: Some(code), retry_after })
            }
            Err(why) => Err(Failure { reason: Reason::Decode, detail: why, status: Some(status), retry_after: None }),
        }
    }
}

/// Turns a body into an answer or the error it reports; `Err` says why it is neither.
type Decoder<T> = fn(&[u8]) -> Result<Decoded<T>, String>;

/// At most 300 characters, control characters (newlines included) turned into spaces.
fn one_line(text: &str) -> String {
    const MOST: usize = 300;
    let mut line: String = text.chars().take(MOST).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(MOST).is_some() {
        line.push('…');
    }
    line
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(text).ok()?.timestamp();
    let wait = at.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The error and its causes on one line. reqwest names the URL, which carries no secret: the
/// token travels only in a header.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_one_short_line() {
        assert_eq!(one_line("FORBIDDEN\nPLEASE\tVALIDATE"), "FORBIDDEN PLEASE VALIDATE");
        let long = one_line(&"é".repeat(1000));
        assert_eq!(long.chars().count(), 301);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(90);
        let date = jiff::fmt::rfc2822::to_string(&soon.to_zoned(jiff::tz::TimeZone::UTC)).unwrap();
        headers.insert(RETRY_AFTER, date.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(80) && wait <= Duration::from_secs(90), "{wait:?}");
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
