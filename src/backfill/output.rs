//! A backfill's output: every family whole (the usage, the month's peak, the month's end, and with
//! prices the estimated cost and the unit price), one after the other, into `--output` (a
//! temporary file renamed at the end, never through a link) or standard output.
//! [`history`](super::history) makes the daily values, and [`openmetrics`](super::openmetrics)
//! writes them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::backfill::history::{self, Day};
use crate::backfill::plan::Month;
use crate::backfill::{BackfillError, BackfillFlags, openmetrics};
use crate::config::Target;
use crate::config::prices::{Price, Prices};
use crate::wolkvox::model::DatedRow;
use crate::wolkvox::{catalogue, window};

/// What the output is written from: each month fetched (or kept from an earlier run), with its rows.
pub(super) struct Fetched<'a> {
    pub targets: &'a [Target],
    pub months: Vec<(&'a Month, &'a [DatedRow])>,
    pub prices: &'a Prices,
    pub flags: &'a BackfillFlags,
}

/// A backfilled series with a price: its labels, and its days' cost and price.
struct Priced<'a> {
    server: String,
    api: &'static str,
    operation: String,
    description: String,
    price: &'a Price,
    zone: jiff::tz::TimeZone,
    /// Each day's cost of the month so far: the price times that day's month-to-date peak or
    /// latest value, as the price charges.
    cost: Vec<Day>,
    unit_price: Vec<Day>,
}

/// Every family, whole, into `--output` (a temporary file renamed at the end) or standard output.
pub(super) fn write_output(fetched: &Fetched<'_>) -> Result<(), BackfillError> {
    let Some(output) = fetched.flags.output.as_deref() else { return Ok(()) };
    let failed = |source| BackfillError::Output { path: output.to_owned(), source };
    if output == "-" {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        write_families(&mut out, fetched).and_then(|()| out.flush()).map_err(failed)?;
        return Ok(());
    }
    let path = Path::new(output);
    // A device or a pipe (/dev/null, a FIFO, /dev/stdout) is written into as it is; a link to
    // anything else, a directory or a socket would be followed or replaced by a file: refused.
    if let Ok(found) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        let target = std::fs::metadata(path).map(|m| m.file_type()).ok();
        if target.is_some_and(|kind| kind.is_char_device() || kind.is_fifo()) {
            let device = std::fs::OpenOptions::new().write(true).open(path).map_err(failed)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, device);
            return write_families(&mut out, fetched).and_then(|()| out.flush()).map_err(failed);
        }
        if !found.is_file() {
            let why = if found.file_type().is_symlink() {
                "is a symbolic link"
            } else {
                "is not a regular file"
            };
            return Err(failed(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{why}, which the backfill would replace; name a file, or write to standard output with --output -"
                ),
            )));
        }
    }
    let temporary = path.with_file_name(format!(
        ".{}.partial",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("backfill")
    ));
    let written = crate::storage::files::create_anew(&temporary, 0o644).and_then(|file| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        write_families(&mut out, fetched)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(failed(error))
        }
    }
}

fn write_families(out: &mut impl Write, fetched: &Fetched<'_>) -> std::io::Result<()> {
    let mut priced: Vec<Priced<'_>> = Vec::new();
    for api in catalogue::APIS.iter() {
        // (server, operation, description) -> days, across the months, and the zone of each server.
        let mut series: BTreeMap<(String, String, String), Vec<Day>> = BTreeMap::new();
        let mut zones = BTreeMap::new();
        for (month, rows) in fetched.months.iter().filter(|(m, _)| std::ptr::eq(m.api, api)) {
            let target = &fetched.targets[month.target];
            zones.insert(target.server.clone(), target.timezone.clone());
            for ((operation, description), days) in history::days(rows, month.first, month.last) {
                series
                    .entry((target.server.clone(), operation, description))
                    .or_default()
                    .extend(days);
            }
        }
        if series.is_empty() {
            continue;
        }
        for ((server, operation, description), days) in &series {
            let price =
                fetched.prices.for_api(server, api).and_then(|p| p.of(operation, description));
            let Some(price) = price else { continue };
            let each_day = |value: &dyn Fn(&Day) -> f64| -> Vec<Day> {
                days.iter()
                    .map(|day| Day { date: day.date, latest: value(day), max: value(day) })
                    .collect()
            };
            priced.push(Priced {
                server: server.clone(),
                api: api.name,
                operation: operation.clone(),
                description: description.clone(),
                price,
                zone: zones[server].clone(),
                cost: each_day(&|day| price.cost(day.latest, day.max)),
                unit_price: each_day(&|_| price.unit_price),
            });
        }
        for (value, name, help) in [
            (
                openmetrics::Value::Latest,
                api.metric.to_owned(),
                format!("{} (latest row per operation and product), backfilled.", api.counts),
            ),
            (
                openmetrics::Value::Max,
                format!("{}_max", api.metric),
                format!("{}: the highest value in the month so far, backfilled.", api.counts),
            ),
        ] {
            let rendered: Vec<openmetrics::DailySeries<'_>> = series
                .iter()
                .map(|((server, operation, description), days)| {
                    let labels = labels(
                        fetched.flags,
                        [
                            ("server", server.as_str()),
                            ("operation", operation.as_str()),
                            ("description", description.as_str()),
                        ],
                    );
                    openmetrics::DailySeries { labels, days, zone: &zones[server] }
                })
                .collect();
            openmetrics::family(
                out,
                &name,
                &help,
                value,
                &rendered,
                fetched.flags.sample_interval,
            )?;
        }
    }
    write_month_ends(out, fetched)?;
    write_costs(out, fetched, &priced)?;
    openmetrics::eof(out)
}

/// `wolkvox_estimated_cost` and `wolkvox_unit_price` of every priced series, as the live exporter
/// serves them: the cost of each day is that of its month so far. Nothing without prices.
fn write_costs(
    out: &mut impl Write,
    fetched: &Fetched<'_>,
    priced: &[Priced<'_>],
) -> std::io::Result<()> {
    let step = fetched.flags.sample_interval;
    openmetrics::family(
        out,
        "wolkvox_estimated_cost",
        concat!(
            "Estimated cost of a priced series in its month so far (unit price times the month's ",
            "peak or latest value, as the price charges), backfilled. Taxes, discounts, minimums ",
            "and currency conversion are not included."
        ),
        openmetrics::Value::Latest,
        &cost_series(fetched.flags, priced, false),
        step,
    )?;
    openmetrics::family(
        out,
        "wolkvox_unit_price",
        concat!(
            "Unit price from the config file's prices that applies to a series, and the value it ",
            "charges, backfilled."
        ),
        openmetrics::Value::Latest,
        &cost_series(fetched.flags, priced, true),
        step,
    )
}

/// `wolkvox_month_end_timestamp_seconds` for every backfilled day of every server and API, as the
/// live exporter serves it: the queries that find a month's end in the target's zone (the finance
/// tables, the projection alert) then work on history too.
fn write_month_ends(out: &mut impl Write, fetched: &Fetched<'_>) -> std::io::Result<()> {
    let mut covered: BTreeMap<(usize, &str), Vec<Day>> = BTreeMap::new();
    let targets = fetched.targets;
    for (month, _) in &fetched.months {
        let zone = &targets[month.target].timezone;
        let end =
            month.month.to_zoned(zone.clone()).ok().and_then(|first| window::month_end(&first));
        let Some(end) = end.map(|end| end.timestamp().as_second() as f64) else { continue };
        let days = covered.entry((month.target, month.api.name)).or_default();
        let mut date = month.first;
        while date <= month.last {
            days.push(Day { date, latest: end, max: end });
            date = match date.tomorrow() {
                Ok(next) => next,
                Err(_) => break,
            };
        }
    }
    let series: Vec<openmetrics::DailySeries<'_>> = covered
        .iter()
        .map(|((target, api), days)| {
            let labels = labels(
                fetched.flags,
                [("server", targets[*target].server.as_str()), ("api", *api)],
            );
            openmetrics::DailySeries { labels, days, zone: &targets[*target].timezone }
        })
        .collect();
    let help = "Unix time at which the billing month ends in the target's time zone, backfilled.";
    openmetrics::family(
        out,
        "wolkvox_month_end_timestamp_seconds",
        help,
        openmetrics::Value::Latest,
        &series,
        fetched.flags.sample_interval,
    )
}

/// The series of the estimated cost, or with `unit_price` those of the price and its charge.
fn cost_series<'a>(
    flags: &'a BackfillFlags,
    priced: &'a [Priced<'a>],
    unit_price: bool,
) -> Vec<openmetrics::DailySeries<'a>> {
    priced
        .iter()
        .map(|p| {
            let mut labels = labels(
                flags,
                [
                    ("server", p.server.as_str()),
                    ("api", p.api),
                    ("operation", p.operation.as_str()),
                    ("description", p.description.as_str()),
                    ("currency", p.price.currency.as_str()),
                ],
            );
            let days = if unit_price {
                labels.push(("charge", p.price.charge.as_str()));
                &p.unit_price
            } else {
                &p.cost
            };
            openmetrics::DailySeries { labels, days, zone: &p.zone }
        })
        .collect()
}

/// `job`, `instance` when given, then the series' own labels.
fn labels<'a, const N: usize>(
    flags: &'a BackfillFlags,
    own: [(&'a str, &'a str); N],
) -> Vec<(&'a str, &'a str)> {
    let job = [("job", flags.job.as_str())].into_iter();
    job.chain(flags.instance.as_deref().map(|instance| ("instance", instance))).chain(own).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;
    use jiff::civil::{Date, date};

    use super::*;
    use crate::config::{Config, Flags};
    use crate::wolkvox::catalogue::Charge;

    fn row(operation: &str, day: Date, value: f64) -> DatedRow {
        DatedRow {
            operation: operation.to_owned(),
            description: "Gamification".to_owned(),
            at: day.at(10, 0, 0, 0),
            value,
        }
    }

    fn month(first: Date, last: Date) -> Month {
        let gamification = catalogue::gamification();
        Month { target: 0, api: gamification, month: first, first, last, current: false }
    }

    fn price(operation: Option<&str>, unit_price: f64, charge: Charge) -> Price {
        Price {
            api: catalogue::gamification(),
            server: "0042".to_owned(),
            operation: operation.map(str::to_owned),
            description: "Gamification".to_owned(),
            unit_price,
            currency: "USD".to_owned(),
            charge,
        }
    }

    /// February and March 2026 of server 0042's gamification, with these prices, sampled every 6h.
    fn output(prices: &Prices) -> String {
        let flags =
            Flags::try_parse_from(["wolkvox_exporter", "--wolkvox.server", "0042"]).unwrap();
        let config = Config::from_flags(&flags, &|name| {
            (name == "WOLKVOX_TOKEN").then(|| "fake-token-for-output-tests".to_owned())
        })
        .unwrap();
        let february = month(date(2026, 2, 1), date(2026, 2, 28));
        let march = month(date(2026, 3, 1), date(2026, 3, 3));
        let february_rows = [
            row("ventas", date(2026, 2, 3), 12.0),
            row("ventas", date(2026, 2, 10), 20.0),
            row("ventas", date(2026, 2, 20), 8.0),
            row("soporte", date(2026, 2, 5), 4.0),
            row("soporte", date(2026, 2, 25), 3.0),
        ];
        let march_rows = [row("ventas", date(2026, 3, 2), 5.0)];
        let backfill = BackfillFlags {
            from: "2026-02".into(),
            to: Some("2026-03-03".into()),
            output: None,
            job: "wolkvox".into(),
            instance: None,
            dry_run: false,
            refetch: false,
            sample_interval: Duration::from_secs(6 * 3600),
        };
        let fetched = Fetched {
            targets: &config.targets,
            months: vec![(&february, &february_rows[..]), (&march, &march_rows[..])],
            prices,
            flags: &backfill,
        };
        let mut out = Vec::new();
        write_families(&mut out, &fetched).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The value of the sample of `series` at Unix time `at`.
    fn value_at(text: &str, series: &str, at: i64) -> Option<f64> {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
            let (value, time) = rest.split_once(' ')?;
            (time.parse::<i64>().ok()? == at).then(|| value.parse().unwrap())
        })
    }

    #[test]
    fn each_months_cost_is_its_price_times_its_peak_or_latest_so_far() {
        let prices = Prices::new(vec![
            price(None, 2.5, Charge::Peak),
            price(Some("soporte"), 10.0, Charge::Latest),
        ]);
        let text = output(&prices);
        let cost = |operation: &str| {
            format!(
                "wolkvox_estimated_cost{{job=\"wolkvox\",server=\"0042\",api=\"gamification\",operation=\"{operation}\",description=\"Gamification\",currency=\"USD\"}}"
            )
        };
        // February's last sample, 18:00 on the 28th in Bogota (23:00 UTC): ventas peaked at 20
        // and ended at 8, soporte peaked at 4 and ended at 3.
        let last_of_february = 1_772_319_600;
        assert_eq!(value_at(&text, &cost("ventas"), last_of_february), Some(50.0), "{text}");
        assert_eq!(value_at(&text, &cost("soporte"), last_of_february), Some(30.0));
        // March starts again: ventas' peak so far on the 2nd is its 5.
        let march_2nd = 1_772_427_600;
        assert_eq!(value_at(&text, &cost("ventas"), march_2nd), Some(12.5));
        assert_eq!(value_at(&text, &cost("soporte"), march_2nd), None, "no row in March");
        let unit = "wolkvox_unit_price{job=\"wolkvox\",server=\"0042\",api=\"gamification\",operation=\"soporte\",description=\"Gamification\",currency=\"USD\",charge=\"latest\"}";
        assert_eq!(value_at(&text, unit, last_of_february), Some(10.0));

        // Without prices the output is the same but for the two families.
        let unpriced = output(&Prices::default());
        assert!(!unpriced.contains("wolkvox_estimated_cost"));
        let without_costs: String = text
            .lines()
            .filter(|l| !l.contains("wolkvox_estimated_cost") && !l.contains("wolkvox_unit_price"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(unpriced, without_costs);
    }
}
