//! The one clock: wall time for everything that has a date (the month window, the budget day, the
//! quota's midnight, timestamps in metrics and on disk) and tokio's monotonic time for sleeping.
//! Production reads the system's wall clock; tests start the wall clock at a date of their choosing
//! and let it run with tokio's clock, paused or not, so they pass at any real time of day.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

/// The wall clock every date comes from, and the tokio time every wait runs on.
#[derive(Clone, Debug)]
pub struct Clock {
    /// None: the system's wall clock. Some: this wall time at this tokio instant, running with it.
    fixed: Option<(Timestamp, Instant)>,
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock { fixed: None }
    }

    /// A wall clock that reads `start` now and advances with tokio's clock.
    pub fn starting_at(start: Timestamp) -> Clock {
        Clock { fixed: Some((start, Instant::now())) }
    }

    /// The wall time.
    pub fn now(&self) -> Timestamp {
        match self.fixed {
            None => Timestamp::now(),
            Some((start, at)) => {
                let elapsed = SignedDuration::try_from(at.elapsed()).unwrap_or(SignedDuration::MAX);
                start.saturating_add(elapsed).unwrap_or(Timestamp::MAX)
            }
        }
    }

    /// The monotonic instant at which the wall clock will read `at` (now, if that has passed).
    pub fn instant_at(&self, at: Timestamp) -> Instant {
        Instant::now() + until(self.now(), at)
    }
}

/// `at` as Unix seconds, as metrics give times: only where a sample is written.
pub fn unix(at: Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}

/// The time from `from` to `to`, zero if `to` is not later.
pub fn until(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_started_clock_runs_with_tokios_clock() {
        let start: Timestamp = "2026-11-30T23:59:52-05:00".parse().unwrap();
        let clock = Clock::starting_at(start);
        assert_eq!(clock.now(), start);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(clock.now(), "2026-12-01T00:00:02-05:00".parse::<Timestamp>().unwrap());
        let later = clock.now() + SignedDuration::from_secs(60);
        assert_eq!(clock.instant_at(later) - Instant::now(), Duration::from_secs(60));
        assert_eq!(until(later, clock.now()), Duration::ZERO, "a time in the past is no wait");
    }
}
