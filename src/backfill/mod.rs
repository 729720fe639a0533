//! `wolkvox_exporter backfill`: months of billing history as OpenMetrics, for `promtool tsdb
//! create-blocks-from openmetrics`. Calls go through the exporter's call driver, so the same
//! admission and ledger (the 5-minute floor per API, one call at a time, the daily budget) and
//! the same failure table hold: a transient failure is tried again after its backoff, the quota's
//! after its pause, and a rejected token stops the token's calls. On a running exporter's state
//! directory the two share the token's ledger and take turns. Past months are
//! kept in the state directory so a second run calls only for what is missing, and the output file
//! appears whole or not at all.

pub mod history;
pub mod openmetrics;

mod progress;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use jiff::civil::{Date, DateTime};
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::calls::admission::{self, Ledger, TokenRules};
use crate::calls::driver::{Hold, Observer, Pace, Quiet, RealTime, SideDriver, SideOutcome, SimulatedTime, Stop, Stopped};
use crate::calls::jobs;
use crate::calls::ledger::TokenLedger;
use crate::clock::{Clock, until};
use crate::config::{self, Config, ConfigError, Target};
use crate::simulator::Simulator;
use crate::storage::{Role, Storage};
use history::{DatedRow, Day};
use progress::Progress;

use crate::wolkvox::client::{Call, Request};
use crate::wolkvox::{Api, Client, Failure, catalogue, dates, window};

/// The backfill's own flags (beside every target flag of the exporter).
#[derive(Args, Clone, Debug)]
pub struct BackfillFlags {
    /// First month (2026-01) or day (2026-01-15).
    #[arg(long = "from", value_name = "MONTH|DAY")]
    pub from: String,
    /// Last month or day, inclusive (default: yesterday in the target's time zone).
    #[arg(long = "to", value_name = "MONTH|DAY")]
    pub to: Option<String>,
    /// The OpenMetrics file to write (-: standard output).
    #[arg(long = "output", value_name = "FILE", required_unless_present = "dry_run")]
    pub output: Option<String>,
    /// The job label of every sample: the job name the bundled alerts and dashboards expect.
    #[arg(long = "job", default_value = "wolkvox")]
    pub job: String,
    /// An instance label for every sample (none by default).
    #[arg(long = "instance")]
    pub instance: Option<String>,
    /// Print the plan (calls per token, earliest finish) and make no call.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Call again for past months already fetched.
    #[arg(long = "refetch")]
    pub refetch: bool,
    /// Time between two samples of a series: at most Prometheus' 5-minute lookback, so that an
    /// instant query at any minute of a backfilled day finds that day's value.
    #[arg(long = "sample-interval", default_value = "5m", value_parser = config::parse_duration)]
    pub sample_interval: Duration,
}

/// Why a backfill did not complete.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("cannot write {path}: {source}")]
    Output { path: String, source: std::io::Error },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("{} month(s) failed, run again to fetch only those: {}", .0.len(), .0.join(", "))]
    Failed(Vec<String>),
    /// Wolkvox rejected a token: each entry says which, and what was left uncalled.
    #[error("{}", .0.join("; "))]
    TokenRejected(Vec<String>),
    #[error("interrupted: nothing was written")]
    Interrupted,
    #[error("cannot start the demo simulator: {0}")]
    Simulator(#[source] std::io::Error),
}

impl BackfillError {
    /// Configuration problems exit 2, like the exporter's.
    pub fn exit_code(&self) -> u8 {
        match self {
            BackfillError::Config(_) | BackfillError::Storage(_) => 2,
            _ => 1,
        }
    }
}

/// One call to make (or to read from the state directory): a month of one API of one target.
#[derive(Clone, Debug)]
struct Month {
    target: usize,
    api: &'static Api,
    /// The month's first day.
    month: Date,
    /// The days of it to place.
    first: Date,
    last: Date,
    /// The current month: always fetched fresh, never kept.
    current: bool,
}

impl Month {
    fn name(&self, targets: &[Target]) -> String {
        format!("{} {} {}", targets[self.target].server, self.api.name, self.month.strftime("%Y-%m"))
    }

    fn key(&self, targets: &[Target]) -> String {
        jobs::job_key(&targets[self.target], self.api)
    }
}

/// A past month's answer as the state directory keeps it: the usable rows, dates read.
#[derive(Serialize, Deserialize)]
struct KeptMonth {
    version: u32,
    server: String,
    api: String,
    month: String,
    rows: Vec<KeptRow>,
}

#[derive(Serialize, Deserialize)]
struct KeptRow {
    operation: String,
    description: String,
    at: DateTime,
    value: f64,
}

/// Runs the backfill; with `--demo`, against the embedded simulator (which keeps past months of
/// gamification).
pub async fn run_with_demo(mut config: Config, flags: BackfillFlags, clock: Clock) -> Result<(), BackfillError> {
    let simulator = Simulator::for_demo(&mut config, &clock).await.map_err(BackfillError::Simulator)?;
    let result = run(config, flags, clock).await;
    drop(simulator);
    result
}

/// Runs the backfill: plan, dry run or calls, then the output.
pub async fn run(config: Config, flags: BackfillFlags, clock: Clock) -> Result<(), BackfillError> {
    let months = plan(&config.targets, &flags, clock.now())?;
    let storage = match &config.storage_path {
        Some(path) => Some(Arc::new(Storage::open(path, Role::Backfill, clock.clone())?)),
        None => None,
    };
    let kept = |month: &Month| -> Option<Vec<DatedRow>> {
        if month.current || flags.refetch {
            return None;
        }
        read_kept(storage.as_deref()?, &config.targets, month)
    };

    // The calls, one lane per token, in the order of the months.
    let mut results: Vec<Option<Vec<DatedRow>>> = months.iter().map(kept).collect();
    let lanes = config::group_by_token(&config.targets);
    if flags.dry_run {
        print_plan(&config.targets, &months, &results, &lanes, storage.as_deref(), &clock).await;
        return Ok(());
    }
    let client = Client::new(config.ca_certificates.clone()).map_err(BackfillError::Client)?;
    let spacing =
        config.targets.iter().map(|t| if t.allow_fast_poll { t.poll_interval } else { t.poll_interval.max(admission::FLOOR) }).max();
    let progress = Progress::new(results.iter().filter(|r| r.is_none()).count(), spacing.unwrap_or_default());
    // The tokens at once, each one call at a time: the API's rules are per token.
    let tokens = lanes.iter().map(|members| {
        let todo = still_to_fetch(&months, &results, members);
        let lane =
            Lane { targets: &config.targets, months: &months, storage: &storage, client: &client, clock: &clock, progress: &progress };
        lane.fetch(members, todo)
    });
    let (mut failed, mut rejected) = (Vec::new(), Vec::new());
    for token in futures_util::future::try_join_all(tokens).await? {
        for (m, rows) in token.fetched {
            results[m] = Some(rows);
        }
        failed.extend(token.failed);
        rejected.extend(token.rejected);
    }
    progress.finish();

    let with_rows = months.iter().zip(&results).filter_map(|(month, rows)| Some((month, rows.as_deref()?))).collect();
    write_output(&Fetched { targets: &config.targets, months: with_rows, flags: &flags })?;
    if !rejected.is_empty() {
        return Err(BackfillError::TokenRejected(rejected));
    }
    if failed.is_empty() { Ok(()) } else { Err(BackfillError::Failed(failed)) }
}

/// What one token's months need: the run's targets, months, state directory, client, clock and
/// progress, shared by the tokens' lanes.
struct Lane<'a> {
    targets: &'a [Target],
    months: &'a [Month],
    storage: &'a Option<Arc<Storage>>,
    client: &'a Client,
    clock: &'a Clock,
    progress: &'a Progress,
}

impl Lane<'_> {
    /// Fetches months `todo` (indices into the months) of the token of targets `members`, one call
    /// at a time, trying a month again as the failure table says; a rejected token stops them.
    async fn fetch(self, members: &[usize], todo: Vec<usize>) -> Result<TokenMonths, BackfillError> {
        let mut done = TokenMonths::default();
        let Some(&first) = members.first() else { return Ok(done) };
        let token_name = &self.targets[first].token_name;
        let ledger = TokenLedger::new(Ledger::default(), token_name, self.storage.clone());
        let mut driver = SideDriver::new(Arc::new(rules_of(self.targets, members)), ledger, self.storage.clone());
        let mut pace = RealTime::new(self.clock.clone(), Stop::Interrupt);
        for (k, &m) in todo.iter().enumerate() {
            let (month, left) = (&self.months[m], todo.len() - k);
            let name = month.name(self.targets);
            let job = job_of(driver.rules(), month, self.targets);
            let mut waiting = Waiting { progress: self.progress, month: &name, left };
            let fetch_month = |_| fetch(self.client, &self.targets[month.target], month, self.clock);
            // Interrupted during a call, the call stays open in the ledger: Wolkvox may still be answering it.
            let outcome = driver.call(job, &mut pace, &mut waiting, fetch_month).await.map_err(|Stopped| BackfillError::Interrupted)?;
            match outcome {
                SideOutcome::Done(rows) => {
                    self.progress.fetched(&name, rows.len(), left - 1);
                    if !month.current
                        && let Some(storage) = self.storage
                    {
                        keep(storage, self.targets, month, &rows);
                    }
                    done.fetched.push((m, rows));
                }
                SideOutcome::Failed(failure) => {
                    self.progress.failed(&name, &failure);
                    done.failed.push(name);
                }
                SideOutcome::TokenRejected(failure) => {
                    self.progress.failed(&name, &failure);
                    done.rejected = Some(format!(
                        "Wolkvox rejected the token {token_name} ({}: {}) when calling for {name}: its {} other month(s) were not called; fix the token and run again",
                        failure.reason,
                        failure.detail,
                        left - 1
                    ));
                    break;
                }
            }
        }
        Ok(done)
    }
}

/// What one token's months came to.
#[derive(Default)]
struct TokenMonths {
    /// The rows of each month fetched, by index into the months.
    fetched: Vec<(usize, Vec<DatedRow>)>,
    /// The names of the months that failed.
    failed: Vec<String>,
    /// Why the token's calls stopped, when Wolkvox rejected it.
    rejected: Option<String>,
}

/// What a backfill shows while a month's call waits.
struct Waiting<'a> {
    progress: &'a Progress,
    month: &'a str,
    /// Months to go, this one included.
    left: usize,
}

impl Observer for Waiting<'_> {
    fn waiting(&mut self, _ledger: &Ledger, now: Timestamp, at: Timestamp, hold: Hold) -> Timestamp {
        let why = match hold {
            Hold::ExportersTurn => "the exporter on this state directory, whose turn it is",
            Hold::Rules | Hold::Unreadable => "the API's rules",
        };
        self.progress.waiting(self.month, now, at, why, self.left)
    }

    fn trying_again(&mut self, failure: &Failure) {
        self.progress.trying_again(self.month, failure);
    }
}

/// The months of each target's APIs between `--from` and `--to`. Gamification takes any past
/// window; the other APIs document only the current month, so their earlier months are skipped.
fn plan(targets: &[Target], flags: &BackfillFlags, now: Timestamp) -> Result<Vec<Month>, ConfigError> {
    let mut months = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        let today = now.to_zoned(target.timezone.clone()).date();
        let from = parse_bound("--from", &flags.from, Bound::First)?;
        let to = match &flags.to {
            Some(text) => parse_bound("--to", text, Bound::Last)?,
            None => today.yesterday().map_err(|e| ConfigError::new("--to", e))?,
        };
        if from > today {
            return Err(ConfigError::new("--from", format!("{from} is in the future (today is {today} in {})", target.timezone_name)));
        }
        if to > today {
            return Err(ConfigError::new("--to", format!("{to} is in the future (today is {today} in {})", target.timezone_name)));
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
                months.push(Month { target: index, api, month, first: from.max(month), last: to.min(last_day), current });
            }
            month = month.checked_add(1.month()).map_err(|e| ConfigError::new("--to", e))?;
        }
    }
    if months.is_empty() {
        return Err(ConfigError::new("--from", "nothing to backfill in this range (only gamification has past months)"));
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
        return Err(ConfigError::new("--sample-interval", "must be at least 1s (5m, the default, suits Prometheus' lookback)"));
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
    let month = format!("{text}-01")
        .parse::<Date>()
        .map_err(|_| ConfigError::new(flag, format!("{text:?} is neither a month (2026-01) nor a day (2026-01-15)")))?;
    Ok(match bound {
        Bound::First => month,
        Bound::Last => month.last_of_month(),
    })
}

/// The token's admission rules: one job per target and billing API, keyed as the exporter keys
/// them, so that the floor and the budget are shared with it through the ledger.
fn rules_of(targets: &[Target], members: &[usize]) -> TokenRules {
    let token: Vec<&Target> = members.iter().map(|&i| &targets[i]).collect();
    jobs::token_rules(&token, &jobs::billing_jobs(&token))
}

/// One month's call: the whole month in the target's zone (the current one up to now).
async fn fetch(client: &Client, target: &Target, month: &Month, clock: &Clock) -> Result<Vec<DatedRow>, Failure> {
    let now = clock.now().to_zoned(target.timezone.clone());
    let first = month.month.to_datetime(jiff::civil::time(0, 0, 0, 0));
    let last = if month.current { now.datetime() } else { month.month.last_of_month().to_datetime(jiff::civil::time(23, 59, 59, 0)) };
    let window = window::between(first, last);
    let request = Request {
        base_url: &target.base_url,
        server: &target.server,
        call: Call::Billing { api: month.api.name, window: &window },
        token: &target.token,
        timeout: target.timeout,
        max_response_bytes: target.max_response_bytes,
        now: now.timestamp(),
    };
    let answer = client.fetch_rows(&request).await?;
    let asked = dates::Window::new(month.month, last.date());
    let (mut outside, mut undated) = (0, 0);
    let mut rows = Vec::with_capacity(answer.rows.len());
    for row in answer.rows {
        let Some(at) = row.at else {
            undated += 1;
            continue;
        };
        if !asked.contains(at.date()) {
            outside += 1;
            continue;
        }
        rows.push(DatedRow { operation: row.operation, description: row.description, at, value: row.value });
    }
    if outside > 0 {
        tracing::warn!(server = %target.server, api = month.api.name, month = %month.month.strftime("%Y-%m"), rows = outside, "rows dated outside the window asked for were not placed (the API ignored the window?)");
    }
    if undated > 0 {
        tracing::warn!(server = %target.server, api = month.api.name, month = %month.month.strftime("%Y-%m"), rows = undated, "rows whose date could not be read were skipped");
    }
    Ok(rows)
}

fn kept_path(storage: &Storage, targets: &[Target], month: &Month) -> PathBuf {
    storage.path().join("backfill").join(format!(
        "{}-{}-{}.json",
        targets[month.target].server,
        month.api.name,
        month.month.strftime("%Y-%m")
    ))
}

fn read_kept(storage: &Storage, targets: &[Target], month: &Month) -> Option<Vec<DatedRow>> {
    let path = kept_path(storage, targets, month);
    match storage.load_json::<KeptMonth>(&path)? {
        kept if kept.version == crate::storage::VERSION => Some(
            kept.rows
                .into_iter()
                .map(|r| DatedRow { operation: r.operation, description: r.description, at: r.at, value: r.value })
                .collect(),
        ),
        _ => {
            tracing::warn!(file = %path.display(), "a kept month has another format version: fetching it again");
            None
        }
    }
}

fn keep(storage: &Storage, targets: &[Target], month: &Month, rows: &[DatedRow]) {
    let kept = KeptMonth {
        version: crate::storage::VERSION,
        server: targets[month.target].server.clone(),
        api: month.api.name.to_owned(),
        month: month.month.strftime("%Y-%m").to_string(),
        rows: rows
            .iter()
            .map(|r| KeptRow { operation: r.operation.clone(), description: r.description.clone(), at: r.at, value: r.value })
            .collect(),
    };
    storage.save_json(&kept_path(storage, targets, month), &kept);
}

/// The months of the token of targets `members` that are neither fetched nor kept.
fn still_to_fetch(months: &[Month], results: &[Option<Vec<DatedRow>>], members: &[usize]) -> Vec<usize> {
    (0..months.len()).filter(|&m| members.contains(&months[m].target) && results[m].is_none()).collect()
}

/// `month`'s job in the token's rules.
fn job_of(rules: &TokenRules, month: &Month, targets: &[Target]) -> usize {
    let key = month.key(targets);
    rules.jobs.iter().position(|job| job.key == key).expect("every month's job is in the rules")
}

/// What a dry run prints: per token the calls to make and when the last can be made at the
/// earliest, from its ledger. A reader that stops early (`| head`) ends the printing, nothing else.
async fn print_plan(
    targets: &[Target],
    months: &[Month],
    results: &[Option<Vec<DatedRow>>],
    lanes: &[Vec<usize>],
    storage: Option<&Storage>,
    clock: &Clock,
) {
    let mut plan = String::new();
    let mut say = |line: String| {
        plan.push_str(&line);
        plan.push('\n');
    };
    say(format!(
        "backfill plan: {} month(s) of API answers, {} already kept",
        months.len(),
        results.iter().filter(|r| r.is_some()).count()
    ));
    for members in lanes {
        let target = &targets[members[0]];
        let ledger = storage.and_then(|s| s.load_ledger(&target.token_name).ok().flatten()).unwrap_or_default();
        // The real calls' driver, on a copy of the ledger and a simulated clock, and calls that
        // reach nobody: each at the earliest the API's rules let it.
        let ledger = TokenLedger::new(ledger, &target.token_name, None);
        let mut driver = SideDriver::new(Arc::new(rules_of(targets, members)), ledger, None);
        let mut time = SimulatedTime::starting_at(clock.now());
        let mut calls = 0;
        for month in still_to_fetch(months, results, members).into_iter().map(|m| &months[m]) {
            let job = job_of(driver.rules(), month, targets);
            let Ok(SideOutcome::Done(())) = driver.call(job, &mut time, &mut Quiet, |_| async { Ok::<(), Failure>(()) }).await else {
                break;
            };
            // A call that reaches nobody takes no time: it started when the clock reads now.
            say(format!("  {} at {}", month.name(targets), time.now().to_zoned(target.timezone.clone()).strftime("%Y-%m-%d %H:%M:%S %Z")));
            calls += 1;
        }
        let wait = humantime::format_duration(Duration::from_secs(until(clock.now(), time.now()).as_secs()));
        say(format!("token {}: {calls} call(s), the last at the earliest in {wait}", target.token_name));
        if storage.is_some_and(Storage::exporter_running) {
            say("  an exporter runs on this state directory: the backfill takes turns with it, and may finish later".to_owned());
        }
    }
    let _ = std::io::stdout().lock().write_all(plan.as_bytes());
}

/// What the output is written from: each month fetched (or kept from an earlier run), with its rows.
struct Fetched<'a> {
    targets: &'a [Target],
    months: Vec<(&'a Month, &'a [DatedRow])>,
    flags: &'a BackfillFlags,
}

/// Every family, whole, into `--output` (a temporary file renamed at the end) or standard output.
fn write_output(fetched: &Fetched<'_>) -> Result<(), BackfillError> {
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
            let why = if found.file_type().is_symlink() { "is a symbolic link" } else { "is not a regular file" };
            return Err(failed(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{why}, which the backfill would replace; name a file, or write to standard output with --output -"),
            )));
        }
    }
    let temporary = path.with_file_name(format!(".{}.partial", path.file_name().and_then(|n| n.to_str()).unwrap_or("backfill")));
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
                series.entry((target.server.clone(), operation, description)).or_default().extend(days);
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
            let rendered: Vec<openmetrics::Series<'_>> = series
                .iter()
                .map(|((server, operation, description), days)| {
                    let labels = labels(
                        fetched.flags,
                        [("server", server.as_str()), ("operation", operation.as_str()), ("description", description.as_str())],
                    );
                    openmetrics::Series { labels, days, zone: &zones[server] }
                })
                .collect();
            openmetrics::family(out, &name, &help, value, &rendered, fetched.flags.sample_interval)?;
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
        let end = month.month.last_of_month().tomorrow().ok().and_then(|next| next.to_zoned(zone.clone()).ok());
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
    let series: Vec<openmetrics::Series<'_>> = covered
        .iter()
        .map(|((target, api), days)| {
            let labels = labels(fetched.flags, [("server", targets[*target].server.as_str()), ("api", *api)]);
            openmetrics::Series { labels, days, zone: &targets[*target].timezone }
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
fn labels<'a, const N: usize>(flags: &'a BackfillFlags, own: [(&'a str, &'a str); N]) -> Vec<(&'a str, &'a str)> {
    let job = [("job", flags.job.as_str())].into_iter();
    job.chain(flags.instance.as_deref().map(|instance| ("instance", instance))).chain(own).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_months_or_days() {
        assert_eq!(parse_bound("--from", "2026-01", Bound::First).unwrap(), "2026-01-01".parse::<Date>().unwrap());
        assert_eq!(parse_bound("--to", "2026-02", Bound::Last).unwrap(), "2026-02-28".parse::<Date>().unwrap());
        assert_eq!(parse_bound("--to", "2026-02-10", Bound::Last).unwrap(), "2026-02-10".parse::<Date>().unwrap());
        let error = parse_bound("--from", "January", Bound::First).unwrap_err();
        assert_eq!(error.field, "--from");
    }
}
