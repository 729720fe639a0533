//! `wolkvox_exporter backfill`: months of billing history as OpenMetrics, for `promtool tsdb
//! create-blocks-from openmetrics`. Calls go through the exporter's call driver, so the same
//! admission and ledger (the 5-minute floor per API, one call at a time, the daily budget) and
//! the same failure table hold: a transient failure is tried again after its backoff, the quota's
//! after its pause, and a rejected token stops the token's calls. On a running exporter's state
//! directory the two share the token's ledger and take turns. Past months are kept in the state
//! directory so a second run calls only for what is missing, and the output file appears whole or
//! not at all.
//!
//! Read in the order of a run: [`plan`] (which months), [`calls`] (through the driver, or a dry
//! run), [`fetch`] (one month's answer as dated rows, and the kept months), [`output`] (with
//! [`history`] and [`openmetrics`]); [`progress`] shows the waits.

mod calls;
mod fetch;
pub mod history;
pub mod openmetrics;
mod output;
mod plan;
mod progress;

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::calls::admission;
use crate::clock::Clock;
use crate::config::{self, Config, ConfigError};
use crate::simulator::Simulator;
use crate::storage::{Role, Storage};
use crate::wolkvox::Client;
use crate::wolkvox::model::DatedRow;
use calls::Calls;
use output::Fetched;
use plan::Month;
use progress::Progress;

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
/// Why a backfill stopped; [`BackfillError::exit_code`] maps each to the command's exit status.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// A flag or the range is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state directory cannot be used.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The output could not be written.
    #[error("cannot write {path}: {source}")]
    Output {
        /// `--output`.
        path: String,
        /// Why not.
        source: std::io::Error,
    },
    /// The Wolkvox client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Some months failed; what was fetched is written.
    #[error("{} month(s) failed, run again to fetch only those: {}", .0.len(), .0.join(", "))]
    Failed(Vec<String>),
    /// Wolkvox rejected a token: each entry says which, and what was left uncalled.
    #[error("{}", .0.join("; "))]
    TokenRejected(Vec<String>),
    /// Ctrl-C or SIGTERM before the output was written.
    #[error("interrupted: nothing was written")]
    Interrupted,
    /// `--demo`: the embedded simulator could not listen.
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

/// Runs the backfill; with `--demo`, against the embedded simulator (which keeps past months of
/// gamification).
pub async fn run_with_demo(
    mut config: Config,
    flags: BackfillFlags,
    clock: Clock,
) -> Result<(), BackfillError> {
    let simulator =
        Simulator::for_demo(&mut config, &clock).await.map_err(BackfillError::Simulator)?;
    let result = run(config, flags, clock).await;
    drop(simulator);
    result
}

/// Runs the backfill: plan, dry run or calls, then the output.
pub async fn run(config: Config, flags: BackfillFlags, clock: Clock) -> Result<(), BackfillError> {
    let months = plan::plan(&config.targets, &flags, clock.now())?;
    let storage = match &config.storage_path {
        Some(path) => Some(Arc::new(Storage::open(path, Role::Backfill, clock.clone())?)),
        None => None,
    };
    let kept = |month: &Month| -> Option<Vec<DatedRow>> {
        if month.current || flags.refetch {
            return None;
        }
        fetch::read_kept(storage.as_deref()?, &config.targets, month)
    };
    // Each month's rows, in the order of the months: kept, or fetched below.
    let mut results: Vec<Option<Vec<DatedRow>>> = months.iter().map(kept).collect();
    let lanes = config::group_by_token(&config.targets);
    if flags.dry_run {
        calls::print_plan(&config.targets, &months, &results, &lanes, storage.as_deref(), &clock)
            .await;
        return Ok(());
    }

    let client = Client::new(config.ca_certificates.clone()).map_err(BackfillError::Client)?;
    let spacing = config
        .targets
        .iter()
        .map(|t| {
            if t.allow_fast_poll { t.poll_interval } else { t.poll_interval.max(admission::FLOOR) }
        })
        .max();
    let progress =
        Progress::new(results.iter().filter(|r| r.is_none()).count(), spacing.unwrap_or_default());
    let calls = Calls {
        targets: &config.targets,
        months: &months,
        storage: &storage,
        client: &client,
        clock: &clock,
        progress: &progress,
    };
    let (mut failed, mut rejected) = (Vec::new(), Vec::new());
    for token in calls.fetch_all(&lanes, &results).await? {
        for (m, rows) in token.fetched {
            results[m] = Some(rows);
        }
        failed.extend(token.failed);
        rejected.extend(token.rejected);
    }
    progress.finish();

    let with_rows = months
        .iter()
        .zip(&results)
        .filter_map(|(month, rows)| Some((month, rows.as_deref()?)))
        .collect();
    output::write_output(&Fetched {
        targets: &config.targets,
        months: with_rows,
        prices: &config.contracts.prices,
        flags: &flags,
    })?;
    if !rejected.is_empty() {
        return Err(BackfillError::TokenRejected(rejected));
    }
    if failed.is_empty() { Ok(()) } else { Err(BackfillError::Failed(failed)) }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;

    const TOKEN: &str = "fake-token-for-backfill-tests";

    /// January 2026 of server 0042 from `simulator`, with `state` as the state directory.
    async fn backfill_january(simulator: &Simulator, state: &Path, output: &Path) {
        let args = ["--wolkvox.server", "0042", "--wolkvox.base-url", &simulator.base_url()];
        let args = [
            &args[..],
            &["--wolkvox.poll-interval", "1s", "--wolkvox.allow-fast-poll"],
            &["--storage.path", state.to_str().unwrap()],
        ];
        let flags =
            config::Flags::try_parse_from(std::iter::once("wolkvox_exporter").chain(args.concat()))
                .unwrap();
        let config =
            Config::from_flags(&flags, &|name| (name == "WOLKVOX_TOKEN").then(|| TOKEN.to_owned()))
                .unwrap();
        let flags = BackfillFlags {
            from: "2026-01".into(),
            to: Some("2026-01".into()),
            output: Some(output.to_str().unwrap().into()),
            job: "wolkvox".into(),
            instance: None,
            dry_run: false,
            refetch: false,
            sample_interval: Duration::from_secs(300),
        };
        run(config, flags, Clock::system()).await.unwrap();
    }

    // Multi-threaded: the backfill's storage blocks while the simulator answers on the runtime.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_damaged_kept_month_is_set_aside_and_fetched_again() {
        let simulator = Simulator::start(&[TOKEN]).await.unwrap();
        let dir = std::env::temp_dir().join(format!(
            "wolkvox-backfill-kept-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let (state, output) = (dir.join("data"), dir.join("history.om"));
        backfill_january(&simulator, &state, &output).await;
        let written = std::fs::read_to_string(&output).unwrap();
        assert_eq!(simulator.requests().len(), 1);

        let kept = state.join("backfill").join("0042-gamification-2026-01.json");
        std::fs::write(&kept, "{\"version\":1,\"server\":").unwrap();
        backfill_january(&simulator, &state, &output).await;
        assert_eq!(simulator.requests().len(), 2, "the damaged month was not fetched again");
        assert_eq!(std::fs::read_to_string(&output).unwrap(), written);
        let aside = std::fs::read_dir(state.join("backfill")).unwrap().filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("0042-gamification-2026-01.json.bad-")
        });
        assert_eq!(aside.count(), 1, "the damaged month was not kept for inspection");

        // Kept again, whole: the next run calls for nothing.
        backfill_january(&simulator, &state, &output).await;
        assert_eq!(simulator.requests().len(), 2);
        assert_eq!(std::fs::read_to_string(&output).unwrap(), written);
    }
}
