//! The date window of a billing request: the first day of the current month at 00:00:00 to now,
//! in the target's time zone, never longer than the API's 31 days. The same window is what an
//! answer's rows are checked against (a row dated outside it is counted, and it settles how
//! `AA/BB/YYYY` dates are read): one type from the request to the decoding.

use jiff::civil::{Date, DateTime};
use jiff::{SignedDuration, Zoned};

/// The API refuses ranges longer than this.
const MAX_SPAN: SignedDuration = SignedDuration::from_hours(31 * 24);

/// The civil date-times asked for, both ends included, in the target's zone: `date_ini` and
/// `date_end` of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub first: DateTime,
    pub last: DateTime,
}

impl Window {
    /// No window known (`token_info`): every valid date is inside.
    pub const ANY: Window = Window { first: DateTime::MIN, last: DateTime::MAX };

    /// Whole days: `first` at 00:00:00 to `last` at 23:59:59.
    #[cfg(any(test, feature = "test-util"))]
    pub fn new(first: Date, last: Date) -> Window {
        Window::between(
            first.to_datetime(jiff::civil::Time::midnight()),
            last.to_datetime(LAST_SECOND),
        )
    }

    /// Any window, as civil times of the target's zone (the backfill's whole past months).
    pub fn between(first: DateTime, last: DateTime) -> Window {
        Window { first, last }
    }

    /// The live window: 00:00:00 on the first of `now`'s month (at most 31 days back) to `now`.
    pub fn current_month(now: &Zoned) -> Window {
        Window::between(clamp_to_max_span(month_start(now), now).datetime(), now.datetime())
    }

    /// The first of `today`'s month to the end of `today`, in whole days.
    #[cfg(any(test, feature = "test-util"))]
    pub fn month_to_date(today: Date) -> Window {
        Window::new(today.first_of_month(), today)
    }

    /// Whether a row dated `date` is inside: only the dates count, not the times of day.
    pub fn contains(&self, date: Date) -> bool {
        self.first.date() <= date && date <= self.last.date()
    }

    /// `date_ini` as the API wants it.
    pub fn date_ini(&self) -> String {
        self.first.strftime(FORMAT).to_string()
    }

    /// `date_end` as the API wants it.
    pub fn date_end(&self) -> String {
        self.last.strftime(FORMAT).to_string()
    }
}

#[cfg(any(test, feature = "test-util"))]
const LAST_SECOND: jiff::civil::Time = jiff::civil::Time::constant(23, 59, 59, 0);

/// 00:00:00 on the first of `now`'s month, in its zone: where the billing month begins.
pub fn month_start(now: &Zoned) -> Zoned {
    now.first_of_month()
        .and_then(|day| day.start_of_day())
        .expect("the first of the current month exists in every zone")
}

/// The first instant of the month after `now`'s, in its zone: where the billing month ends (None
/// past the last month jiff can represent).
pub fn month_end(now: &Zoned) -> Option<Zoned> {
    now.last_of_month().and_then(|last| last.tomorrow()).and_then(|next| next.start_of_day()).ok()
}

fn clamp_to_max_span(start: Zoned, end: &Zoned) -> Zoned {
    let earliest = end.checked_sub(MAX_SPAN).expect("31 days before now is representable");
    if start < earliest { earliest } else { start }
}

/// `YYYYmmddHHiiss`, as the API wants its dates.
const FORMAT: &str = "%Y%m%d%H%M%S";

#[cfg(test)]
mod tests {
    use super::*;

    fn zoned(text: &str) -> Zoned {
        text.parse().unwrap()
    }

    #[test]
    fn the_month_ends_at_midnight_on_the_next_first_in_the_zone() {
        let end = |now: &str| month_end(&zoned(now)).unwrap().timestamp().to_string();
        assert_eq!(end("2026-11-27T09:15:42-05:00[America/Bogota]"), "2026-12-01T05:00:00Z");
        assert_eq!(end("2026-12-31T23:59:59-05:00[America/Bogota]"), "2027-01-01T05:00:00Z");
        assert_eq!(end("2026-02-01T00:00:00-05:00[America/Bogota]"), "2026-03-01T05:00:00Z");
    }

    #[test]
    fn starts_at_midnight_on_the_first_in_the_zone() {
        let w = Window::current_month(&zoned("2026-11-27T09:15:42-05:00[America/Bogota]"));
        assert_eq!(
            (w.date_ini(), w.date_end()),
            ("20261101000000".to_owned(), "20261127091542".to_owned())
        );
    }

    #[test]
    fn the_month_is_the_zones_month_not_utc() {
        // 02:00 UTC on Dec 1 is still Nov 30 in Bogota.
        let now = zoned("2026-12-01T02:00:00+00:00[UTC]").in_tz("America/Bogota").unwrap();
        assert_eq!(Window::current_month(&now).date_ini(), "20261101000000");
        let utc = zoned("2026-12-01T02:00:00+00:00[UTC]");
        assert_eq!(Window::current_month(&utc).date_ini(), "20261201000000");
    }

    #[test]
    fn first_instant_of_the_month_is_an_empty_window() {
        let w = Window::current_month(&zoned("2026-03-01T00:00:00-05:00[America/Bogota]"));
        assert_eq!(w.date_ini(), w.date_end());
    }

    #[test]
    fn never_longer_than_31_days() {
        // The longest month ends 30 days 23:59:59 after it starts; a DST change adds an hour.
        for now in [
            "2026-12-31T23:59:59-05:00[America/Bogota]",
            "2026-10-31T23:59:59+00:00[Europe/London]",
            "2026-03-31T23:59:59+01:00[Europe/London]",
        ] {
            let now = zoned(now);
            let w = Window::current_month(&now);
            let start = w.first.to_zoned(now.time_zone().clone()).unwrap();
            assert!(now.duration_since(&start) <= MAX_SPAN, "{w:?}");
        }
    }

    #[test]
    fn a_longer_span_is_cut_to_31_days() {
        let end = zoned("2026-11-27T09:00:00-05:00[America/Bogota]");
        let clamped = clamp_to_max_span(zoned("2026-10-01T00:00:00-05:00[America/Bogota]"), &end);
        assert_eq!(clamped, zoned("2026-10-27T09:00:00-05:00[America/Bogota]"));
        let inside = zoned("2026-11-01T00:00:00-05:00[America/Bogota]");
        assert_eq!(clamp_to_max_span(inside.clone(), &end), inside);
    }
}
