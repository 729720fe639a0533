//! What the state directory costs (`--storage.path`): the write of a token's last good answers
//! after every successful poll (serialize, temporary file, fsync, rename, fsync of the directory),
//! the write of its ledger (before and after every call), and the read at start-up; for answers
//! decoded from 100, 10,000 and 60,000 rows, over 30 days as the API sends them and with every row
//! its own series (the worst case). The size of each answers file is printed once, before its
//! benches (criterion reports times only).
//!
//! And what a restart does before it can answer a scrape: `lanes::plan` on that state directory
//! (read the files, restore each job, and the store's first render and gzip), and that first render
//! and gzip alone.
//!
//! cargo bench --bench state
//!
//! The files go to a directory under Cargo's target directory (`CARGO_TARGET_TMPDIR`), so that
//! the fsyncs hit the same disk as a real state directory would, not a tmpfs.

#![allow(missing_docs, reason = "criterion_group! and criterion_main! make undocumented functions")]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use wolkvox_exporter::calls::admission::{JobLedger, Ledger};
use wolkvox_exporter::calls::lanes;
use wolkvox_exporter::clock::Clock;
use wolkvox_exporter::config::{Config, Flags};
use wolkvox_exporter::serve::store::Store;
use wolkvox_exporter::storage::{Answer, Role, Storage};

#[path = "common/answers.rs"]
mod answers;
use answers::{decoded, response};

const TOKEN: &str = "bench";
const JOB: &str = "0042/gamification";

/// The answers a lane keeps after one successful poll of one job, at `succeeded_at`.
fn answers(rows: usize, days: usize, succeeded_at: Timestamp) -> BTreeMap<String, Answer> {
    let report = decoded(&response(rows, days));
    let answer = Answer { succeeded_at, report: std::sync::Arc::new(report) };
    BTreeMap::from([(JOB.to_owned(), answer)])
}

/// A ledger as a lane writes it after a call: a few jobs of one token.
fn ledger() -> Ledger {
    let at: Timestamp = "2026-11-15T15:00:00Z".parse().unwrap();
    let job = JobLedger {
        last_start: Some(at),
        last_end: Some(at),
        due: Some(at),
        ..JobLedger::default()
    };
    let jobs = ["gamification", "chat_licenses", "ivr_minutes", "token_info"]
        .map(|api| (format!("0042/{api}"), job.clone()));
    Ledger {
        jobs: BTreeMap::from(jobs),
        last_call_start: Some(at),
        last_call_end: Some(at),
        day: Some(at.to_zoned(jiff::tz::TimeZone::UTC).date()),
        calls_today: 42,
        paused_until: None,
        pause_reason: None,
        open_call_until: None,
    }
}

fn directory(tag: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("state-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("state");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let dir = directory("ledger");
    let storage = Storage::open(&dir, Role::Exporter, Clock::system()).unwrap();
    let ledger = ledger();
    storage.save_ledger(TOKEN, &ledger);
    let bytes = std::fs::metadata(dir.join(format!("token-{TOKEN}.ledger.json"))).unwrap().len();
    eprintln!("state: ledger file of 4 jobs: {bytes} bytes");
    group.bench_function("save_ledger", |b| {
        b.iter(|| storage.save_ledger(TOKEN, black_box(&ledger)))
    });
    assert_eq!(storage.failures().writes, 0);
    drop(storage);
    let _ = std::fs::remove_dir_all(&dir);

    for (name, rows, days) in [
        ("100", 100, 30),
        ("10000", 10_000, 30),
        ("60000", 60_000, 30),
        ("10000-distinct", 10_000, 1),
        ("60000-distinct", 60_000, 1),
    ] {
        let dir = directory(name);
        let storage = Storage::open(&dir, Role::Exporter, Clock::system()).unwrap();
        let answers = answers(rows, days, "2026-11-15T15:00:00Z".parse().unwrap());
        storage.save_ledger(TOKEN, &ledger);
        storage.save_answers(TOKEN, &answers);
        let bytes =
            std::fs::metadata(dir.join(format!("token-{TOKEN}.answers.json"))).unwrap().len();
        eprintln!(
            "state: {name} rows ({} series): answers file {bytes} bytes",
            answers[JOB].report.series.len()
        );
        // What the write costs without the disk: the same map serialized in memory.
        group.bench_with_input(
            BenchmarkId::new("serialize_answers", name),
            &answers,
            |b, answers| b.iter(|| serde_json::to_vec(black_box(answers)).unwrap()),
        );
        group.bench_with_input(BenchmarkId::new("save_answers", name), &answers, |b, answers| {
            b.iter(|| storage.save_answers(TOKEN, black_box(answers)))
        });
        group.bench_function(BenchmarkId::new("load", name), |b| {
            b.iter(|| {
                let restored = storage.load_answers(black_box(TOKEN));
                assert_eq!(restored[JOB].report.series.len(), answers[JOB].report.series.len());
                restored
            })
        });
        assert_eq!(storage.failures().writes, 0);
        drop(storage);
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

/// The configuration of scripts/restart-bench.sh: one server, gamification only.
fn config(dir: &std::path::Path) -> Config {
    let flags = Flags::try_parse_from([
        "wolkvox_exporter",
        "--wolkvox.server",
        "0042",
        "--wolkvox.poll-interval",
        "1h",
        "--storage.path",
        dir.to_str().unwrap(),
    ])
    .unwrap();
    Config::from_flags(&flags, &|name| {
        (name == "WOLKVOX_TOKEN").then(|| "fake-token-for-benchmarks".to_owned())
    })
    .unwrap()
}

fn restarts(c: &mut Criterion) {
    let mut group = c.benchmark_group("restart");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, rows, days) in
        [("100", 100, 30), ("60000", 60_000, 30), ("60000-distinct", 60_000, 1)]
    {
        let dir = directory(&format!("restart-{name}"));
        let config = config(&dir);
        let storage = Arc::new(Storage::open(&dir, Role::Exporter, Clock::system()).unwrap());
        let token_name = &config.targets[0].token_name;
        storage.save_ledger(token_name, &ledger());
        // Answered just now: an answer older than --wolkvox.stale-after is restored but not rendered.
        storage.save_answers(token_name, &answers(rows, days, Timestamp::now()));
        let (_, store) =
            lanes::plan(&config.targets, &config.contracts, Clock::system(), Some(storage.clone()));
        let published = store.published();
        assert!(published.every_server_answered(), "the restored answer was not served");
        eprintln!("restart: {name} rows: first /metrics body {} bytes", published.text.len());
        drop(published);
        group.bench_function(BenchmarkId::new("plan", name), |b| {
            b.iter(|| {
                lanes::plan(
                    black_box(&config.targets),
                    &config.contracts,
                    Clock::system(),
                    Some(storage.clone()),
                )
            })
        });
        let (states, tokens) = (store.states(), store.tokens());
        group.bench_function(BenchmarkId::new("first_render_gzip", name), |b| {
            b.iter(|| {
                Store::from_states(
                    black_box(states.clone()),
                    tokens.clone(),
                    &config.contracts,
                    Clock::system(),
                )
            })
        });
        drop(storage);
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

criterion_group!(state, benches, restarts);
criterion_main!(state);
