//! Why a poll failed, in the fixed vocabulary of `wolkvox_api_request_failures_total{reason}`, and
//! what each reason means for the next call: the one table the scheduler reads.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// 401, or 403 PLEASE VALIDATE TOKEN: someone must fix the token.
    Auth,
    /// 403 TOKEN LIMIT EXCEEDED: the daily call quota is used up.
    Quota,
    /// 403 EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN.
    Concurrency,
    /// Any other 403, e.g. a maintenance window.
    Forbidden,
    BadRequest,
    RateLimited,
    /// Any other non-2xx status.
    Http,
    Timeout,
    Transport,
    Decode,
    TooLarge,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::Auth,
        Reason::Quota,
        Reason::Concurrency,
        Reason::Forbidden,
        Reason::BadRequest,
        Reason::RateLimited,
        Reason::Http,
        Reason::Timeout,
        Reason::Transport,
        Reason::Decode,
        Reason::TooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Auth => "auth",
            Reason::Quota => "quota",
            Reason::Concurrency => "concurrency",
            Reason::Forbidden => "forbidden",
            Reason::BadRequest => "bad_request",
            Reason::RateLimited => "rate_limited",
            Reason::Http => "http",
            Reason::Timeout => "timeout",
            Reason::Transport => "transport",
            Reason::Decode => "decode",
            Reason::TooLarge => "too_large",
        }
    }

    /// Classifies an error answer from its status (HTTP, or the body's `code` when HTTP said 200)
    /// and the body's `error` and `msg`, which name the 403 cases apart.
    pub fn classify(status: u16, error_and_msg: &str) -> Reason {
        let text = error_and_msg.to_ascii_uppercase();
        if text.contains("TOKEN LIMIT EXCEEDED") {
            Reason::Quota
        } else if text.contains("SIMULTANEOUS") {
            Reason::Concurrency
        } else if status == 401
            || text.contains("VALIDATE TOKEN")
            || text.contains("ENTER THE WOLKVOX-TOKEN")
        {
            Reason::Auth
        } else {
            match status {
                403 => Reason::Forbidden,
                400 => Reason::BadRequest,
                429 => Reason::RateLimited,
                _ => Reason::Http,
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed poll: the reason, a one-line detail for the log (the API's `msg` where there is one;
/// never the token), and what the scheduler needs to decide when to try again.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub reason: Reason,
    pub detail: String,
    pub status: Option<u16>,
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Failure {
        Failure { reason, detail: detail.into(), status: None, retry_after: None }
    }

    /// What this failure means for the next call. `Retry-After`, when sent, is obeyed on top.
    pub fn consequence(&self) -> Consequence {
        match self.reason {
            Reason::Quota => Consequence::PauseTokenUntilMidnight,
            Reason::Timeout => Consequence::BackoffAndRestToken,
            Reason::Transport | Reason::RateLimited => Consequence::Backoff,
            Reason::Http if self.status.is_some_and(|s| s >= 500) => Consequence::Backoff,
            Reason::Auth
            | Reason::Concurrency
            | Reason::Forbidden
            | Reason::BadRequest
            | Reason::Http
            | Reason::Decode
            | Reason::TooLarge => Consequence::Interval,
        }
    }

    /// Transient failures are retried sooner than the interval (with backoff).
    pub fn is_transient(&self) -> bool {
        matches!(self.consequence(), Consequence::Backoff | Consequence::BackoffAndRestToken)
    }

    /// Wolkvox refused the token (wrong, expired, not tied to the account): no call with it can
    /// succeed until someone fixes it. The exporter keeps polling at its interval (a rotated token
    /// file is read before each poll); a side command such as the backfill stops calling with it.
    pub fn rejects_token(&self) -> bool {
        self.reason == Reason::Auth
    }
}

/// When the next call may come after a failure (see `admission` for the numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consequence {
    /// Nothing to gain from trying sooner: the normal interval.
    Interval,
    /// Likely to pass soon: retry with a doubling wait, up to the interval.
    Backoff,
    /// A dropped call may still run on Wolkvox: backoff, and the whole token waits until the API
    /// would have given up on it.
    BackoffAndRestToken,
    /// The daily quota is spent: every job of the token waits until midnight in its zone.
    PauseTokenUntilMidnight,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_error_is_classified() {
        let cases = [
            (400, "BAD REQUEST THE API YOU WANT TO CONSULT DOES NOT EXIST", Reason::BadRequest),
            (400, "BAD REQUEST SOME PARAMETERS ARE REQUIRED", Reason::BadRequest),
            (401, "UNAUTHORIZED PLEASE ENTER THE WOLKVOX-TOKEN", Reason::Auth),
            (403, "FORBIDDEN TOKEN LIMIT EXCEEDED", Reason::Quota),
            (
                403,
                "FORBIDDEN EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS PER TOKEN (2)",
                Reason::Concurrency,
            ),
            (403, "FORBIDDEN PLEASE VALIDATE TOKEN", Reason::Auth),
            (403, "", Reason::Forbidden),
            (429, "", Reason::RateLimited),
            (404, "", Reason::Http),
            (503, "", Reason::Http),
            // The body names the case even when the HTTP status does not match it.
            (200, "forbidden token limit exceeded", Reason::Quota),
            (500, "PLEASE VALIDATE TOKEN", Reason::Auth),
        ];
        for (status, text, want) in cases {
            assert_eq!(Reason::classify(status, text), want, "{status} {text:?}");
        }
    }

    #[test]
    fn only_transport_timeouts_429_and_5xx_are_transient() {
        let with_status =
            |reason, status| Failure { status: Some(status), ..Failure::new(reason, "") };
        assert!(Failure::new(Reason::Timeout, "").is_transient());
        assert!(Failure::new(Reason::Transport, "").is_transient());
        assert!(with_status(Reason::RateLimited, 429).is_transient());
        assert!(with_status(Reason::Http, 502).is_transient());
        assert!(!with_status(Reason::Http, 404).is_transient());
        assert!(!with_status(Reason::Quota, 403).is_transient());
        assert!(!Failure::new(Reason::Decode, "").is_transient());
    }

    #[test]
    fn only_auth_failures_reject_the_token() {
        assert!(Failure::new(Reason::Auth, "PLEASE VALIDATE TOKEN").rejects_token());
        for reason in Reason::ALL.into_iter().filter(|&reason| reason != Reason::Auth) {
            assert!(!Failure::new(reason, "").rejects_token(), "{reason}");
        }
    }
}
