//! What the exporter knows about each target (one billing API of one server) and each token, as
//! far as the metrics and the landing page need it. Plain data; the store keeps it.

use crate::calls::admission::PauseReason;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::clock::until;
use crate::config::Target;
use crate::wolkvox::{Api, Failure, Reason, Report, SkipReason, TokenInfo, catalogue};

/// The history of one billing API of one target, as far as the metrics need it.
#[derive(Clone, Debug)]
pub struct TargetState {
    pub server: String,
    pub api: &'static Api,
    pub stale_after: Duration,
    pub poll_interval: Duration,
    /// The token's name, to find its [`TokenState`].
    pub token_name: String,
    /// The zone of the month window, whose end the metrics and alerts need.
    pub timezone: jiff::tz::TimeZone,
    pub requests: u64,
    pub failures: [u64; Reason::ALL.len()],
    /// Polls that failed since the last success (any reason).
    pub consecutive_failures: u32,
    pub skipped: [u64; SkipReason::ALL.len()],
    pub last_poll: Option<LastPoll>,
    pub last_success: Option<Success>,
    /// The most recent failure and when it happened, kept after later successes.
    pub last_failure: Option<(Timestamp, Failure)>,
    /// When the lane plans to poll this target next, for the landing page.
    pub next_poll_at: Option<Timestamp>,
}

#[derive(Clone, Debug)]
pub struct LastPoll {
    pub finished_at: Timestamp,
    pub duration: Duration,
    pub failure: Option<Failure>,
}

#[derive(Clone, Debug)]
pub struct Success {
    pub report: Arc<Report>,
    /// When it ended: the timestamp metric, and staleness.
    pub at: Timestamp,
}

impl TargetState {
    pub fn new(target: &Target, api: &'static Api) -> TargetState {
        TargetState {
            server: target.server.clone(),
            api,
            stale_after: target.stale_after,
            poll_interval: target.poll_interval,
            token_name: target.token_name.clone(),
            timezone: target.timezone.clone(),
            requests: 0,
            failures: [0; Reason::ALL.len()],
            consecutive_failures: 0,
            skipped: [0; SkipReason::ALL.len()],
            last_poll: None,
            last_success: None,
            last_failure: None,
            next_poll_at: None,
        }
    }

    /// Server 0042 just after one successful poll at `now` that returned `report` (for benchmarks
    /// and tests of the rendering).
    pub fn after_one_success(report: Report, now: Timestamp) -> TargetState {
        TargetState {
            server: "0042".to_owned(),
            api: catalogue::gamification(),
            stale_after: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(300),
            token_name: "WOLKVOX_TOKEN".to_owned(),
            timezone: jiff::tz::TimeZone::get("America/Bogota")
                .expect("the bundled zone database knows Bogota"),
            requests: 1,
            failures: [0; Reason::ALL.len()],
            consecutive_failures: 0,
            skipped: [0; SkipReason::ALL.len()],
            last_poll: Some(LastPoll {
                finished_at: now,
                duration: Duration::from_millis(800),
                failure: None,
            }),
            last_success: Some(Success { report: Arc::new(report), at: now }),
            last_failure: None,
            next_poll_at: Some(now + SignedDuration::from_secs(300)),
        }
    }

    /// The usage series to serve at `now`: none once the last success is older than
    /// `stale_after` (a success restored from disk counts from when it happened), nor once the
    /// month it counted has ended in the target's zone: last month's usage and peak say nothing of
    /// this month's, and an alert on them would fire on a month that is over.
    pub fn fresh_report(&self, now: Timestamp) -> Option<&Report> {
        let success = self.last_success.as_ref()?;
        let this_month = success.at >= self.month_start(now).timestamp();
        (until(success.at, now) <= self.stale_after && this_month).then_some(&*success.report)
    }

    /// When the current billing month ends in the target's zone: the first instant of the next
    /// month there.
    pub fn month_end(&self, now: Timestamp) -> Option<Timestamp> {
        Some(crate::wolkvox::window::month_end(&self.zoned(now))?.timestamp())
    }

    /// The first instant of the current billing month in the target's zone.
    fn month_start(&self, now: Timestamp) -> jiff::Zoned {
        crate::wolkvox::window::month_start(&self.zoned(now))
    }

    /// `now` in the target's zone.
    fn zoned(&self, now: Timestamp) -> jiff::Zoned {
        now.to_zoned(self.timezone.clone())
    }

    /// When the usage series will go stale (just after the last instant they are fresh), if they
    /// are still being served. None past the last time jiff can represent: never.
    pub fn stale_deadline(&self, now: Timestamp) -> Option<Timestamp> {
        let deadline = self.last_success.as_ref()?.at.checked_add(self.stale_after).ok()?;
        (deadline >= now)
            .then(|| deadline.saturating_add(SignedDuration::from_millis(1)).unwrap_or(deadline))
    }
}

/// What the metrics say about one token, that is one lane.
#[derive(Clone, Debug)]
pub struct TokenState {
    pub name: String,
    pub daily_call_budget: Option<u32>,
    /// Calls made since midnight in the lane's time zone.
    pub calls_today: u32,
    /// The least time between two calls that the daily budget imposes now (zero without one).
    pub call_spacing: Duration,
    /// The last call came later than its schedule because of the budget.
    pub stretched: bool,
    /// Wolkvox's own count, from the last successful `token_info` poll.
    pub info: Option<TokenInfo>,
    /// Whether the state directory holds all that the token did (None without one).
    pub state_saved: Option<bool>,
    /// The pause that holds the token: until when, and why.
    pub pause: Option<(Timestamp, PauseReason)>,
}

impl TokenState {
    pub fn new(target: &Target) -> TokenState {
        TokenState {
            daily_call_budget: target.daily_call_budget,
            ..TokenState::new_named(&target.token_name)
        }
    }

    /// A token of that name, with no budget, that has made no call.
    pub fn new_named(name: &str) -> TokenState {
        TokenState {
            name: name.to_owned(),
            daily_call_budget: None,
            calls_today: 0,
            call_spacing: Duration::ZERO,
            stretched: false,
            info: None,
            state_saved: None,
            pause: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse::<Timestamp>().unwrap()
    }

    #[test]
    fn last_months_usage_is_not_served_once_the_month_has_ended_in_the_targets_zone() {
        // A success at 23:58 on November 30 in Bogota, 04:58 UTC on December 1.
        let november =
            TargetState::after_one_success(Report::default(), at("2026-12-01T04:58:00Z"));
        assert!(
            november.fresh_report(at("2026-12-01T04:59:59Z")).is_some(),
            "still November in Bogota"
        );
        assert!(
            november.fresh_report(at("2026-12-01T05:00:00Z")).is_none(),
            "December has begun in Bogota"
        );
        assert_eq!(
            november.stale_deadline(at("2026-12-01T04:59:00Z")),
            Some(at("2026-12-01T05:58:00Z") + SignedDuration::from_millis(1))
        );
        let december =
            TargetState::after_one_success(Report::default(), at("2026-12-01T05:00:00Z"));
        assert!(december.fresh_report(at("2026-12-01T05:30:00Z")).is_some());
    }

    #[test]
    fn the_month_ends_at_midnight_in_the_targets_zone_not_utc() {
        let target = TargetState::after_one_success(Report::default(), at("2026-11-15T15:00:00Z"));
        // 02:00 UTC on December 1 is still November 30 in Bogota (UTC-5).
        assert_eq!(target.month_end(at("2026-12-01T02:00:00Z")), Some(at("2026-12-01T05:00:00Z")));
        assert_eq!(target.month_end(at("2026-12-01T05:00:00Z")), Some(at("2027-01-01T05:00:00Z")));
        assert_eq!(target.month_end(at("2026-12-31T23:59:59Z")), Some(at("2027-01-01T05:00:00Z")));
        let utc = TargetState { timezone: jiff::tz::TimeZone::UTC, ..target };
        assert_eq!(utc.month_end(at("2026-12-01T02:00:00Z")), Some(at("2027-01-01T00:00:00Z")));
    }
}
