//! Which calls a backfill makes: the months of each target's APIs between `--from` and `--to`,
//! checked (not in the future, not reversed, a sample interval Prometheus can read), and which of
//! them are still to fetch.

use std::time::Duration;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};

use crate::backfill::BackfillFlags;
use crate::calls::{admission, jobs};
use crate::config::{ConfigError, Target};
use crate::wolkvox::Api;
use crate::wolkvox::model::DatedRow;

/// One call to make (or to read from the state directory): a month of one API of one target.
#[derive(Clone, Debug)]
pub(super) struct Month {
    pub target: usize,
    pub api: &'static Api,
    /// The month's first day.
    pub month: Date,
    /// The days of it to place.
    pub first: Date,
    pub last: Date,
    /// The current month: always fetched fresh, never kept.
    pub current: bool,
}

impl Month {
    pub(super) fn name(&self, targets: &[Target]) -> String {
        format!(
            "{} {} {}",
            targets[self.target].server,
            self.api.name,
            self.month.strftime("%Y-%m")
        )
    }

    pub(super) fn key(&self, targets: &[Target]) -> String {
        jobs::job_key(&targets[self.target], self.api)
    }
}

/// The months of each target's APIs between `--from` and `--to`. Gamification takes any past
/// window; the other APIs document only the current month, so their earlier months are skipped.
pub(super) fn plan(
    targets: &[Target],
    flags: &BackfillFlags,
    now: Timestamp,
) -> Result<Vec<Month>, ConfigError> {
    let mut months = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        let today = now.to_zoned(target.timezone.clone()).date();
        let from = parse_bound("--from", &flags.from, Bound::First)?;
        let to = match &flags.to {
            Some(text) => parse_bound("--to", text, Bound::Last)?,
            None => today.yesterday().map_err(|e| ConfigError::new("--to", e))?,
        };
        if from > today {
            return Err(ConfigError::new(
                "--from",
                format!("{from} is in the future (today is {today} in {})", target.timezone_name),
            ));
        }
        if to > today {
            return Err(ConfigError::new(
                "--to",
                format!("{to} is in the future (today is {today} in {})", target.timezone_name),
            ));
        }
        if from > to {
            return Err(ConfigError::new("--from", format!("{from} is after --to {to}")));
        }
        let current_month = today.first_of_month();
        let mut month = from.first_of_month();
        while month <= to {
            let last_day = month.last_of_month();
            for &api in &target.apis {
                let current = month == current_month;
                if api.name != "gamification" && !current {
                    tracing::warn!(server = %target.server, api = api.name, month = %month.strftime("%Y-%m"), "skipped: Wolkvox documents only the current month for this API");
                    continue;
                }
                months.push(Month {
                    target: index,
                    api,
                    month,
                    first: from.max(month),
                    last: to.min(last_day),
                    current,
                });
            }
            month = month.checked_add(1.month()).map_err(|e| ConfigError::new("--to", e))?;
        }
    }
    if months.is_empty() {
        return Err(ConfigError::new(
            "--from",
            "nothing to backfill in this range (only gamification has past months)",
        ));
    }
    check_sample_interval(flags.sample_interval)?;
    if months.len() > MANY_MONTHS {
        let floor_hours = months.len() as u64 * admission::FLOOR.as_secs() / 3600;
        tracing::warn!(
            months = months.len(),
            "a long backfill: one call per month and API, at least {floor_hours} h at the API's 5-minute floor, each call from the token's daily quota; check --from"
        );
    }
    Ok(months)
}

/// More months than this draw a warning: a typo in `--from` (1926 for 2026) costs days of calls.
const MANY_MONTHS: usize = 36;

/// Samples closer than a minute multiply the output (at 0 s, without end); farther than
/// Prometheus' 5-minute lookback, an instant query between two finds nothing.
fn check_sample_interval(interval: Duration) -> Result<(), ConfigError> {
    if interval < Duration::from_secs(1) {
        return Err(ConfigError::new(
            "--sample-interval",
            "must be at least 1s (5m, the default, suits Prometheus' lookback)",
        ));
    }
    if interval < Duration::from_secs(60) {
        let times = 300 / interval.as_secs();
        tracing::warn!(sample_interval = %humantime::format_duration(interval), "samples under a minute apart: the output is {times} times the size at the default 5m");
    } else if interval > Duration::from_secs(300) {
        tracing::warn!(sample_interval = %humantime::format_duration(interval), "samples more than 5m apart: instant queries between two find nothing (Prometheus looks back 5m)");
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Bound {
    First,
    Last,
}

/// `2026-01` (its first or last day) or `2026-01-15`.
fn parse_bound(flag: &str, text: &str, bound: Bound) -> Result<Date, ConfigError> {
    let text = text.trim();
    if let Ok(day) = text.parse::<Date>() {
        return Ok(day);
    }
    let month = format!("{text}-01").parse::<Date>().map_err(|_| {
        ConfigError::new(
            flag,
            format!("{text:?} is neither a month (2026-01) nor a day (2026-01-15)"),
        )
    })?;
    Ok(match bound {
        Bound::First => month,
        Bound::Last => month.last_of_month(),
    })
}

/// The months of the token of targets `members` that are neither fetched nor kept.
pub(super) fn still_to_fetch(
    months: &[Month],
    results: &[Option<Vec<DatedRow>>],
    members: &[usize],
) -> Vec<usize> {
    (0..months.len())
        .filter(|&m| members.contains(&months[m].target) && results[m].is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_months_or_days() {
        assert_eq!(
            parse_bound("--from", "2026-01", Bound::First).unwrap(),
            "2026-01-01".parse::<Date>().unwrap()
        );
        assert_eq!(
            parse_bound("--to", "2026-02", Bound::Last).unwrap(),
            "2026-02-28".parse::<Date>().unwrap()
        );
        assert_eq!(
            parse_bound("--to", "2026-02-10", Bound::Last).unwrap(),
            "2026-02-10".parse::<Date>().unwrap()
        );
        let error = parse_bound("--from", "January", Bound::First).unwrap_err();
        assert_eq!(error.field, "--from");
    }
}
