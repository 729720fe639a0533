//! What the live exporter would have served on each past day, from the dated rows of a month's
//! answer: for each series and day, the latest row dated on or before that day (the usage gauge) and
//! the highest value of the month's rows up to that day (`_max`).

use std::collections::BTreeMap;

use jiff::civil::Date;

use crate::wolkvox::model::DatedRow;

/// A series' values on one day.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Day {
    pub date: Date,
    pub latest: f64,
    pub max: f64,
}

/// (operation, description) -> its days, in date order.
pub type Days = BTreeMap<(String, String), Vec<Day>>;

/// The days `first..=last` of one month's rows. A series has no value on a day before its first
/// row, as the live exporter serves none before the answer holds one. Rows of the same time keep
/// the answer's order: the later one is the latest, as in the live decoder.
pub fn days(rows: &[DatedRow], first: Date, last: Date) -> Days {
    let mut by_series: BTreeMap<(String, String), Vec<&DatedRow>> = BTreeMap::new();
    for row in rows {
        by_series.entry((row.operation.clone(), row.description.clone())).or_default().push(row);
    }
    let mut days = Days::new();
    for (key, mut rows) in by_series {
        // Stable: equal times keep the answer's order.
        rows.sort_by_key(|row| row.at);
        let mut next = 0;
        let (mut latest, mut max) = (None, f64::NEG_INFINITY);
        let mut series = Vec::new();
        let mut date = first;
        while date <= last {
            while next < rows.len() && rows[next].at.date() <= date {
                latest = Some(rows[next].value);
                max = max.max(rows[next].value);
                next += 1;
            }
            if let Some(latest) = latest {
                series.push(Day { date, latest, max });
            }
            match date.tomorrow() {
                Ok(tomorrow) => date = tomorrow,
                Err(_) => break,
            }
        }
        if !series.is_empty() {
            days.insert(key, series);
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(operation: &str, at: &str, value: f64) -> DatedRow {
        DatedRow {
            operation: operation.to_owned(),
            description: "Gamification".to_owned(),
            at: at.parse().unwrap(),
            value,
        }
    }

    fn date(text: &str) -> Date {
        text.parse().unwrap()
    }

    #[test]
    fn each_day_takes_the_latest_row_so_far_and_the_months_highest_so_far() {
        let rows = [
            row("ventas", "2026-03-03T23:59:59", 12.0),
            row("ventas", "2026-03-02T23:59:59", 20.0),
            row("ventas", "2026-03-05T10:00:00", 9.0),
            row("soporte", "2026-03-04T08:00:00", 4.0),
        ];
        let days = days(&rows, date("2026-03-01"), date("2026-03-06"));
        let ventas: Vec<(i8, f64, f64)> = days[&("ventas".into(), "Gamification".into())]
            .iter()
            .map(|d| (d.date.day(), d.latest, d.max))
            .collect();
        assert_eq!(
            ventas,
            [(2, 20.0, 20.0), (3, 12.0, 20.0), (4, 12.0, 20.0), (5, 9.0, 20.0), (6, 9.0, 20.0)]
        );
        let soporte: Vec<i8> =
            days[&("soporte".into(), "Gamification".into())].iter().map(|d| d.date.day()).collect();
        assert_eq!(soporte, [4, 5, 6], "no value before the first row");
    }

    #[test]
    fn rows_of_the_same_time_keep_the_answers_order() {
        let rows =
            [row("ventas", "2026-03-02T10:00:00", 5.0), row("ventas", "2026-03-02T10:00:00", 7.0)];
        let days = days(&rows, date("2026-03-02"), date("2026-03-02"));
        assert_eq!(days[&("ventas".into(), "Gamification".into())][0].latest, 7.0);
    }

    #[test]
    fn a_range_inside_the_month_still_counts_the_months_earlier_rows() {
        let rows = [
            row("ventas", "2026-03-01T10:00:00", 30.0),
            row("ventas", "2026-03-10T10:00:00", 10.0),
        ];
        let days = days(&rows, date("2026-03-10"), date("2026-03-10"));
        assert_eq!(
            days[&("ventas".into(), "Gamification".into())],
            [Day { date: date("2026-03-10"), latest: 10.0, max: 30.0 }]
        );
    }
}
