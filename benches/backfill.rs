//! The backfill's output for SERIES series over DAYS days (defaults: 500 and 365): its size, the
//! time to write it (no API waits: the rows are made here) and the process' peak memory. With
//! PROMTOOL=1 it also times `promtool tsdb create-blocks-from openmetrics` on it, for each block
//! duration of BLOCKS (default `2h,2400h`), with its peak memory when /usr/bin/time is there.
//!   cargo bench --bench backfill            SERIES=500 DAYS=31 PROMTOOL=1 cargo bench --bench backfill
//!   SERIES=500 DAYS=365 PROMTOOL=1 BLOCKS=2400h cargo bench --bench backfill      (a year)

#![allow(missing_docs, reason = "criterion_group! and criterion_main! make undocumented functions")]

use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use wolkvox_exporter::backfill::history::Day;
use wolkvox_exporter::backfill::openmetrics::{self, DailySeries, Value};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `series` series of `days` days from `first`, each day's value a different one.
fn history(series: usize, days: usize, first: Date) -> Vec<Vec<Day>> {
    (0..series)
        .map(|s| {
            let mut date = first;
            (0..days)
                .map(|d| {
                    let day = Day { date, latest: (s * 7 + d) as f64 % 97.0, max: 97.0 };
                    date = date.tomorrow().unwrap();
                    day
                })
                .collect()
        })
        .collect()
}

fn main() {
    let (series, days) = (env("SERIES", 500), env("DAYS", 365));
    let zone = TimeZone::get("America/Bogota").unwrap();
    let first: Date = "2025-12-01".parse().unwrap();
    let history = history(series, days, first);
    let names: Vec<String> = (0..series).map(|s| format!("operation_{s:04}")).collect();
    let path =
        std::env::temp_dir().join(format!("wolkvox-backfill-bench-{}.om", std::process::id()));
    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    let families: Vec<DailySeries<'_>> = history
        .iter()
        .zip(&names)
        .map(|(days, name)| DailySeries {
            labels: vec![
                ("job", "wolkvox"),
                ("server", "0042"),
                ("operation", name),
                ("description", "Gamification"),
            ],
            days,
            zone: &zone,
        })
        .collect();
    let step = Duration::from_secs(300);
    openmetrics::family(
        &mut out,
        "wolkvox_gamification_licenses",
        "Licenses.",
        Value::Latest,
        &families,
        step,
    )
    .unwrap();
    openmetrics::family(
        &mut out,
        "wolkvox_gamification_licenses_max",
        "Peak.",
        Value::Max,
        &families,
        step,
    )
    .unwrap();
    openmetrics::eof(&mut out).unwrap();
    out.flush().unwrap();
    let took = started.elapsed();
    let bytes = std::fs::metadata(&path).unwrap().len();
    let peak = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    println!(
        "{series} series x {days} days: {:.1} MB in {took:.2?} ({:.0} MB/s), peak memory {peak}",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / took.as_secs_f64()
    );
    if std::env::var("PROMTOOL").as_deref() == Ok("1") {
        let blocks = std::env::var("BLOCKS").unwrap_or_else(|_| "2h,2400h".to_owned());
        let timer = std::path::Path::new("/usr/bin/time");
        for block in blocks.split(',') {
            let dir = std::env::temp_dir()
                .join(format!("wolkvox-backfill-bench-tsdb-{}-{block}", std::process::id()));
            let peak_file = dir.with_extension("peak");
            let mut promtool = if timer.exists() {
                let mut timed = std::process::Command::new(timer);
                timed.args(["-f", "%M kB"]).arg("-o").arg(&peak_file).arg("promtool");
                timed
            } else {
                std::process::Command::new("promtool")
            };
            let started = Instant::now();
            let status = promtool
                .args([
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    &format!("--max-block-duration={block}"),
                ])
                .arg(&path)
                .arg(&dir)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            let peak = std::fs::read_to_string(&peak_file)
                .map_or("not measured".to_owned(), |kb| kb.trim().to_owned());
            let _ = std::fs::remove_file(&peak_file);
            let size: u64 = walk(&dir);
            println!(
                "promtool, blocks of at most {block}: {:?} in {:.1?}, {:.1} MB of blocks, peak memory {peak}",
                status.code(),
                started.elapsed(),
                size as f64 / 1e6
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_file(&path);
}

fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .map(|e| {
                if e.path().is_dir() {
                    walk(&e.path())
                } else {
                    e.metadata().map_or(0, |m| m.len())
                }
            })
            .sum()
    })
}
