//! The date window of a billing request: the first day of the current month at 00:00:00 to now,
//! in the target's time zone, never longer than the API's 31 days.

use jiff::{SignedDuration, Zoned};

/// The API refuses ranges longer than this.
const MAX_SPAN: SignedDuration = SignedDuration::from_hours(31 * 24);

/// `date_ini` and `date_end` as the API wants them: `YYYYmmddHHiiss`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub date_ini: String,
    pub date_end: String,
}

pub fn current_month(now: &Zoned) -> Window {
    let start = clamp_to_max_span(month_start(now), now);
    Window { date_ini: format(&start), date_end: format(now) }
}

/// 00:00:00 on the first of `now`'s month, in its zone: where the billing month begins.
pub fn month_start(now: &Zoned) -> Zoned {
    now.first_of_month().and_then(|day| day.start_of_day()).expect("the first of the current month exists in every zone")
}

/// The first instant of the month after `now`'s, in its zone: where the billing month ends (None
/// past the last month jiff can represent).
pub fn month_end(now: &Zoned) -> Option<Zoned> {
    now.last_of_month().and_then(|last| last.tomorrow()).and_then(|next| next.start_of_day()).ok()
}

/// Any window, as civil times of the target's zone (the backfill's whole past months).
pub fn between(first: jiff::civil::DateTime, last: jiff::civil::DateTime) -> Window {
    Window { date_ini: first.strftime(FORMAT).to_string(), date_end: last.strftime(FORMAT).to_string() }
}

fn clamp_to_max_span(start: Zoned, end: &Zoned) -> Zoned {
    let earliest = end.checked_sub(MAX_SPAN).expect("31 days before now is representable");
    if start < earliest { earliest } else { start }
}

/// `YYYYmmddHHiiss`, as the API wants its dates.
const FORMAT: &str = "%Y%m%d%H%M%S";

fn format(at: &Zoned) -> String {
    at.strftime(FORMAT).to_string()
}

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
        let w = current_month(&zoned("2026-11-27T09:15:42-05:00[America/Bogota]"));
        assert_eq!(w, Window { date_ini: "20261101000000".into(), date_end: "20261127091542".into() });
    }

    #[test]
    fn the_month_is_the_zones_month_not_utc() {
        // 02:00 UTC on Dec 1 is still Nov 30 in Bogota.
        let now = zoned("2026-12-01T02:00:00+00:00[UTC]").in_tz("America/Bogota").unwrap();
        assert_eq!(current_month(&now).date_ini, "20261101000000");
        let utc = zoned("2026-12-01T02:00:00+00:00[UTC]");
        assert_eq!(current_month(&utc).date_ini, "20261201000000");
    }

    #[test]
    fn first_instant_of_the_month_is_an_empty_window() {
        let w = current_month(&zoned("2026-03-01T00:00:00-05:00[America/Bogota]"));
        assert_eq!(w.date_ini, w.date_end);
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
            let w = current_month(&now);
            let start = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", &w.date_ini).unwrap().to_zoned(now.time_zone().clone()).unwrap();
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
