//! Writes history as OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`: one
//! family after the other (never interleaved), each series' samples in time order, timestamps in
//! seconds, `# EOF` last. Samples are written as they are made, so memory stays flat whatever the
//! range: only the daily values are held.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use jiff::tz::TimeZone;

use crate::backfill::history::Day;
use crate::serve::exposition;

/// One series of one history family, day by day (a decoded answer's series is
/// [`crate::wolkvox::model::Series`]): its labels in output order, its daily values, and the zone
/// its days are days of.
pub struct DailySeries<'a> {
    pub labels: Vec<(&'a str, &'a str)>,
    pub days: &'a [Day],
    pub zone: &'a TimeZone,
}

/// Which value of a day a family carries.
#[derive(Clone, Copy)]
pub enum Value {
    Latest,
    Max,
}

/// Writes one gauge family: for each series, a sample every `step` of each of its days, from the
/// day's first instant in its zone to its last before the next day.
pub fn family(
    out: &mut impl Write,
    name: &str,
    help: &str,
    value: Value,
    series: &[DailySeries<'_>],
    step: Duration,
) -> io::Result<()> {
    if series.is_empty() {
        return Ok(());
    }
    let mut help_text = String::new();
    exposition::push_escaped(&mut help_text, help, false);
    writeln!(out, "# HELP {name} {help_text}\n# TYPE {name} gauge")?;
    let step = step.as_secs().max(1) as i64;
    let mut line = String::with_capacity(256);
    for one in series {
        let mut prefix = String::with_capacity(128);
        prefix.push_str(name);
        prefix.push('{');
        for (k, (label, text)) in one.labels.iter().enumerate() {
            if k > 0 {
                prefix.push(',');
            }
            exposition::push_label(&mut prefix, label, text);
        }
        prefix.push_str("} ");
        for day in one.days {
            let (start, end) = day_bounds(day.date, one.zone);
            let sample = match value {
                Value::Latest => day.latest,
                Value::Max => day.max,
            };
            let mut at = start;
            while at < end {
                line.clear();
                line.push_str(&prefix);
                exposition::push_value(&mut line, sample);
                writeln!(line, " {at}").expect("writing to a String cannot fail");
                out.write_all(line.as_bytes())?;
                at += step;
            }
        }
    }
    Ok(())
}

pub fn eof(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"# EOF\n")
}

/// The Unix seconds of the day's first instant in the zone and of the next day's.
fn day_bounds(date: jiff::civil::Date, zone: &TimeZone) -> (i64, i64) {
    let start = |date: jiff::civil::Date| {
        date.to_zoned(zone.clone()).map_or(0, |z| z.timestamp().as_second())
    };
    let next = date.tomorrow().map_or(i64::MAX, start);
    (start(date), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str, latest: f64, max: f64) -> Day {
        Day { date: text.parse().unwrap(), latest, max }
    }

    #[test]
    fn samples_cover_each_day_in_the_zone_every_step_with_escaped_labels() {
        let days = [day("2026-03-01", 5.0, 7.5)];
        let zone = TimeZone::get("America/Bogota").unwrap();
        let series = [DailySeries {
            labels: vec![("job", "wolkvox"), ("operation", "a \"b\"\n")],
            days: &days,
            zone: &zone,
        }];
        let mut out = Vec::new();
        family(
            &mut out,
            "wolkvox_gamification_licenses_max",
            "Highest.\nValue",
            Value::Max,
            &series,
            Duration::from_secs(21600),
        )
        .unwrap();
        eof(&mut out).unwrap();
        // 2026-03-01 00:00 in Bogota is 05:00 UTC: 1772341200.
        let expected = "# HELP wolkvox_gamification_licenses_max Highest.\\nValue\n# TYPE wolkvox_gamification_licenses_max gauge\n\
            wolkvox_gamification_licenses_max{job=\"wolkvox\",operation=\"a \\\"b\\\"\\n\"} 7.5 1772341200\n\
            wolkvox_gamification_licenses_max{job=\"wolkvox\",operation=\"a \\\"b\\\"\\n\"} 7.5 1772362800\n\
            wolkvox_gamification_licenses_max{job=\"wolkvox\",operation=\"a \\\"b\\\"\\n\"} 7.5 1772384400\n\
            wolkvox_gamification_licenses_max{job=\"wolkvox\",operation=\"a \\\"b\\\"\\n\"} 7.5 1772406000\n# EOF\n";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn a_family_without_series_writes_nothing() {
        let mut out = Vec::new();
        family(&mut out, "wolkvox_x", "x", Value::Latest, &[], Duration::from_secs(300)).unwrap();
        assert!(out.is_empty());
    }
}
