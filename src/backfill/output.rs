//! A backfill's output: every family whole (the usage, the month's peak, the month's end), one
//! after the other, into `--output` (a temporary file renamed at the end, never through a link) or
//! standard output. [`history`](super::history) makes the daily values, and
//! [`openmetrics`](super::openmetrics) writes them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::backfill::history::{self, Day};
use crate::backfill::plan::Month;
use crate::backfill::{BackfillError, BackfillFlags, openmetrics};
use crate::config::Target;
use crate::wolkvox::model::DatedRow;
use crate::wolkvox::{catalogue, window};

/// What the output is written from: each month fetched (or kept from an earlier run), with its rows.
pub(super) struct Fetched<'a> {
    pub targets: &'a [Target],
    pub months: Vec<(&'a Month, &'a [DatedRow])>,
    pub flags: &'a BackfillFlags,
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
    openmetrics::eof(out)
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

/// `job`, `instance` when given, then the series' own labels.
fn labels<'a, const N: usize>(
    flags: &'a BackfillFlags,
    own: [(&'a str, &'a str); N],
) -> Vec<(&'a str, &'a str)> {
    let job = [("job", flags.job.as_str())].into_iter();
    job.chain(flags.instance.as_deref().map(|instance| ("instance", instance))).chain(own).collect()
}
