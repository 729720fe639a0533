//! One request: URL, headers, date window, total timeout and body cap, turned into a [`Report`]
//! (or, for `token_info`, a [`TokenInfo`]) or a classified [`Failure`].

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::model::{self, Decoded, RowsAnswer};
use super::window::Window;
use super::{Failure, Reason, Report, TokenInfo, token_info};
use crate::config::token::Token;

/// One call, built by the caller: where, for which server, what, with which token, and how much
/// time and body it may take. The client knows nothing of the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `https://wv0042.wolkvox.com`, or the simulator's address.
    pub base_url: &'a str,
    pub server: &'a str,
    pub call: Call<'a>,
    pub token: &'a Token,
    /// The whole call, connect to last byte.
    pub timeout: Duration,
    pub max_response_bytes: u64,
    /// The wall time of the call, from the caller's clock: a `Retry-After` date is read against it.
    pub now: jiff::Timestamp,
}

#[derive(Clone, Copy, Debug)]
pub enum Call<'a> {
    /// `billing.php?api={api}` over the window.
    Billing { api: &'a str, window: &'a Window },
    /// `information.php?api=token_info`.
    TokenInfo,
}

impl Request<'_> {
    /// The dates asked for, which settle how the answer's dates are read.
    fn dates(&self) -> Window {
        match self.call {
            Call::Billing { window, .. } => *window,
            Call::TokenInfo => Window::ANY,
        }
    }

    fn path_and_query(&self) -> String {
        match self.call {
            Call::Billing { api, window } => format!(
                "billing.php?api={api}&date_ini={}&date_end={}",
                window.date_ini(),
                window.date_end()
            ),
            Call::TokenInfo => "information.php?api=token_info".to_owned(),
        }
    }
}

/// Shared by every lane; it holds the connection pool and nothing about any token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    /// `ca_certificates`: CAs to trust besides the system's.
    pub fn new(ca_certificates: Vec<reqwest::Certificate>) -> Result<Client, reqwest::Error> {
        let builder = reqwest::Client::builder()
            .user_agent(concat!("wolkvox_exporter/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the token header to wherever it points: answer 3xx as an error.
            .redirect(reqwest::redirect::Policy::none());
        let builder = if ca_certificates.is_empty() {
            builder
        } else {
            builder.tls_certs_merge(ca_certificates)
        };
        Ok(Client { http: builder.build()? })
    }

    /// A billing request (`Call::Billing`), decoded into a report.
    pub async fn fetch(&self, request: &Request<'_>) -> Result<Report, Failure> {
        let window = request.dates();
        self.call(request, |body| model::decode_in(body, &window)).await
    }

    /// A billing request whose rows are kept one by one (history), not folded into series.
    pub async fn fetch_rows(&self, request: &Request<'_>) -> Result<RowsAnswer, Failure> {
        let window = request.dates();
        self.call(request, |body| model::decode_rows(body, &window)).await
    }

    /// A `token_info` request: the server's count of the token's calls today.
    pub async fn fetch_token_info(&self, request: &Request<'_>) -> Result<TokenInfo, Failure> {
        self.call(request, token_info::decode).await
    }

    /// One call of `/api/v2/...`. The whole call, from connect to the last byte of the body, is
    /// bounded by the request's timeout.
    async fn call<T>(
        &self,
        request: &Request<'_>,
        decode: impl Fn(&[u8]) -> Result<Decoded<T>, String>,
    ) -> Result<T, Failure> {
        let timeout = request.timeout;
        match tokio::time::timeout(timeout, self.call_unbounded(request, decode)).await {
            Ok(Ok(answer)) => Ok(answer),
            // An upstream that echoes the token in its message must not get it into our logs; and
            // its message, however long or many-lined, becomes one short line.
            Ok(Err(failure)) => {
                Err(Failure { detail: shown(&failure.detail, request.token), ..failure })
            }
            Err(_) => Err(Failure::new(
                Reason::Timeout,
                format!("no complete answer within {}", humantime::format_duration(timeout)),
            )),
        }
    }

    async fn call_unbounded<T>(
        &self,
        request: &Request<'_>,
        decode: impl Fn(&[u8]) -> Result<Decoded<T>, String>,
    ) -> Result<T, Failure> {
        let url = format!(
            "{}/api/v2/{}",
            request.base_url.trim_end_matches('/'),
            request.path_and_query()
        );
        let mut response = self
            .http
            .get(url)
            .header("wolkvox-token", request.token.expose())
            .header("wolkvox_server", request.server)
            .send()
            .await
            .map_err(|e| Failure::new(Reason::Transport, describe(&e)))?;

        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers(), request.now);
        let max = request.max_response_bytes;
        if let Some(length) = response.content_length().filter(|&length| length > max) {
            return Err(Failure::new(
                Reason::TooLarge,
                format!("the body announces {length} bytes, the cap is {max}"),
            ));
        }
        // The announced length is the upstream's word: reserve no more than 1 MiB on it.
        let mut body =
            Vec::with_capacity(response.content_length().unwrap_or(0).min(1 << 20) as usize);
        while let Some(chunk) =
            response.chunk().await.map_err(|e| Failure::new(Reason::Transport, describe(&e)))?
        {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(Failure::new(
                    Reason::TooLarge,
                    format!("the body passed the cap of {max} bytes"),
                ));
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
            let detail = if text.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {text}")
            };
            return Err(Failure { reason, detail, status: Some(status), retry_after });
        }
        match decoded {
            Ok(Decoded::Answer(answer)) => Ok(answer),
            Ok(Decoded::ApiError { code, text }) => {
                let code = code.unwrap_or(status);
                let reason = Reason::classify(code, &text);
                Err(Failure {
                    reason,
                    detail: format!("HTTP {status}, code {code}: {text}"),
                    status: Some(code),
                    retry_after,
                })
            }
            Err(why) => Err(Failure {
                reason: Reason::Decode,
                detail: why,
                status: Some(status),
                retry_after: None,
            }),
        }
    }
}

/// At most 300 characters, control characters (newlines included) turned into spaces.
fn one_line(text: &str) -> String {
    let mut line: String =
        text.chars().take(ONE_LINE).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.chars().nth(ONE_LINE).is_some() {
        line.push('…');
    }
    line
}

/// The most characters of an upstream's message that the logs and the landing page show.
const ONE_LINE: usize = 300;

/// An upstream's message as the logs and the landing page show it: one short line, without the
/// token. Cut before it is redacted, since redaction looks at every character and an upstream may
/// send megabytes of message; the cut leaves room for a token that straddles the shown part.
fn shown(detail: &str, token: &Token) -> String {
    let head: String = detail.chars().take(ONE_LINE + token.expose().len()).collect();
    let mut line = one_line(&token.redact(&head));
    if !line.ends_with('…') && detail.chars().nth(ONE_LINE).is_some() {
        line.push('…');
    }
    line
}

/// `Retry-After` in seconds, or as an HTTP date read against `now`.
fn retry_after(headers: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(text).ok()?.timestamp();
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The error and its causes on one line. reqwest names the URL, which carries no secret: the
/// token travels only in a header.
fn describe(error: &reqwest::Error) -> String {
    std::iter::successors(Some(error as &dyn std::error::Error), |e| e.source())
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
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
    fn a_huge_message_is_cut_before_it_is_redacted_and_a_token_across_the_cut_is_still_hidden() {
        let token = Token::new("fake-token-for-tests-0001").unwrap();
        // The token starts 7 characters before the cut: cut there and then redacted, those 7 would
        // show, too short a piece to be known for the token's.
        let message =
            format!("{}{}{}", "x".repeat(ONE_LINE - 7), token.expose(), "y".repeat(5 << 20));
        let line = shown(&message, &token);
        assert!(!line.contains("fake-to"), "{line}");
        assert!(line.ends_with('…') && line.chars().count() <= ONE_LINE + 1, "{line}");
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "120".parse().unwrap());
        let now: jiff::Timestamp = "2026-11-30T23:59:52-05:00".parse().unwrap();
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        let soon = now + jiff::SignedDuration::from_secs(90);
        let date = jiff::fmt::rfc2822::to_string(&soon.to_zoned(jiff::tz::TimeZone::UTC)).unwrap();
        headers.insert(RETRY_AFTER, date.parse().unwrap());
        let wait = retry_after(&headers, now).unwrap();
        assert!(wait > Duration::from_secs(80) && wait <= Duration::from_secs(90), "{wait:?}");
        assert_eq!(
            retry_after(&headers, soon + jiff::SignedDuration::from_secs(5)),
            Some(Duration::ZERO),
            "a date in the past is no wait"
        );
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
    }
}
