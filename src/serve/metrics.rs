//! Target state -> Prometheus exposition text, written by [`Exposition`] straight into one buffer.
//! The families are a table, [`FAMILIES`]: a new metric is a new row (name, type, help, and where
//! its samples come from), and the order of the rows is the order of the text.

use jiff::Timestamp;
use jiff::civil::DateTime;
use prometheus::{Encoder, Registry, TextEncoder};

use crate::clock::unix;
use crate::config::contracts::{Budget, Contracts};
use crate::config::prices::{CostLimit, Price};
use crate::serve::exposition::{Exposition, Kind, Samples};
use crate::serve::target_state::{TargetState, TokenState};
use crate::storage::StorageFailures;
use crate::wolkvox::model::Series;
use crate::wolkvox::{Api, Reason, Report, SkipReason, catalogue};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const CACHED: &str = "Cached from the last successful background poll of the Wolkvox billing API; scrapes never call the API.";

/// Renders every target; usage series of a target whose last success is too old are left out.
/// Renders at wall time `now` (staleness, the month's end). `storage_failures` is None without a
/// state directory.
pub fn render(
    targets: &[TargetState],
    tokens: &[TokenState],
    contracts: &Contracts,
    now: Timestamp,
    storage_failures: Option<StorageFailures>,
) -> String {
    let view = View::new(targets, tokens, contracts, now, storage_failures);
    let mut text = Exposition::with_capacity(
        8192 + view.fresh.iter().map(|(t, report)| usage_bytes(t, report)).sum::<usize>(),
    );
    usage_families(&mut text, &view);
    for family in FAMILIES {
        text.family(family.name, family.help, family.kind, |samples| {
            family.samples.write(&view, samples)
        });
    }
    text.finish()
}

/// What the families are written from: the state [`render`] is given, and what several families
/// need, worked out once.
struct View<'a> {
    targets: &'a [TargetState],
    tokens: &'a [TokenState],
    budgets: &'a [Budget],
    cost_limits: &'a [CostLimit],
    /// Wall time of the render: staleness, the month's end, a pause's end.
    now: Timestamp,
    /// None without a state directory.
    storage_failures: Option<StorageFailures>,
    /// The targets whose usage is served, with their last good answer.
    fresh: Vec<(&'a TargetState, &'a Report)>,
    /// The newest row of each of `fresh`'s answers.
    newest: Vec<Option<DateTime>>,
    /// The series of `fresh` that have a price, in their order, each with its price.
    priced: Vec<Priced<'a>>,
}

/// A served series and the price that applies to it.
struct Priced<'a> {
    target: &'a TargetState,
    series: &'a Series,
    price: &'a Price,
}

impl<'a> View<'a> {
    fn new(
        targets: &'a [TargetState],
        tokens: &'a [TokenState],
        contracts: &'a Contracts,
        now: Timestamp,
        storage_failures: Option<StorageFailures>,
    ) -> View<'a> {
        let fresh: Vec<(&TargetState, &Report)> =
            targets.iter().filter_map(|t| Some((t, t.fresh_report(now)?))).collect();
        let newest = fresh
            .iter()
            .map(|(_, report)| report.series.iter().filter_map(|s| s.latest_at).max())
            .collect();
        // The prices were indexed when the configuration was read: two lookups per series here.
        let mut priced = Vec::new();
        for (target, report) in fresh.iter().copied() {
            let Some(prices) = contracts.prices.for_api(&target.server, target.api) else {
                continue;
            };
            for series in &report.series {
                if let Some(price) = prices.of(&series.operation, &series.description) {
                    priced.push(Priced { target, series, price });
                }
            }
        }
        View {
            targets,
            tokens,
            budgets: &contracts.budgets,
            cost_limits: &contracts.cost_limits,
            now,
            storage_failures,
            fresh,
            newest,
            priced,
        }
    }
}

/// One metric family: a row of [`FAMILIES`].
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    samples: Source,
}

/// Where a family's samples come from.
enum Source {
    /// One sample per target, labelled `server` and `api`; None leaves the target out.
    PerTarget(fn(&TargetState) -> Option<f64>),
    /// One sample per token, labelled `token_name`; None leaves the token out.
    PerToken(fn(&TokenState) -> Option<f64>),
    /// One unlabelled counter, served with a state directory only.
    Storage(fn(&StorageFailures) -> u64),
    /// Any other shape: the function writes the samples itself.
    Written(fn(&View<'_>, &mut Samples<'_>)),
}

impl Source {
    fn write(&self, view: &View<'_>, samples: &mut Samples<'_>) {
        match *self {
            Source::PerTarget(value) => {
                for target in view.targets {
                    if let Some(value) = value(target) {
                        samples.add(&[("server", &target.server), ("api", target.api.name)], value);
                    }
                }
            }
            Source::PerToken(value) => {
                for token in view.tokens {
                    if let Some(value) = value(token) {
                        samples.add(&[("token_name", &token.name)], value);
                    }
                }
            }
            Source::Storage(count) => {
                if let Some(failures) = &view.storage_failures {
                    samples.add(&[], count(failures) as f64);
                }
            }
            Source::Written(write) => write(view, samples),
        }
    }
}

const fn gauge(name: &'static str, help: &'static str, samples: Source) -> Family {
    Family { name, kind: Kind::Gauge, help, samples }
}

const fn counter(name: &'static str, help: &'static str, samples: Source) -> Family {
    Family { name, kind: Kind::Counter, help, samples }
}

use Source::{PerTarget, PerToken, Storage, Written};

/// Every family after the usage ones ([`usage_families`]), in the order of the text.
const FAMILIES: &[Family] = &[
    // How old the usage is: the answer's newest row per target, and each series left behind by a
    // day or more (an operation that stopped appearing keeps its last value). Only those: a date
    // for every series grew the text by two thirds at 60,000 series, for what the first says.
    gauge(
        "wolkvox_usage_newest_row_timestamp_seconds",
        "Unix time of the newest date among the rows of the last good answer (read in the target's time zone): the day the API's figures are as of.",
        Written(newest_row),
    ),
    gauge(
        "wolkvox_usage_latest_row_timestamp_seconds",
        "Unix time of a usage series' latest row, served only for a series whose rows end a day or more before the answer's newest: an operation that stopped appearing keeps its last value, and this says how old it is.",
        Written(series_left_behind),
    ),
    // The health of each target's polls.
    gauge(
        "wolkvox_up",
        "1 if the last background poll of this target succeeded, 0 if it failed or none finished yet.",
        PerTarget(|t| {
            Some(if t.last_poll.as_ref().is_some_and(|poll| poll.failure.is_none()) {
                1.0
            } else {
                0.0
            })
        }),
    ),
    gauge(
        "wolkvox_last_success_timestamp_seconds",
        "Unix time of the last successful background poll.",
        PerTarget(|t| t.last_success.as_ref().map(|success| unix(success.at))),
    ),
    gauge(
        "wolkvox_last_poll_duration_seconds",
        "How long the last background poll took, successful or not.",
        PerTarget(|t| t.last_poll.as_ref().map(|poll| poll.duration.as_secs_f64())),
    ),
    gauge(
        "wolkvox_poll_interval_seconds",
        "Configured time between polls of this target (retries after failures may come sooner).",
        PerTarget(|t| Some(t.poll_interval.as_secs_f64())),
    ),
    gauge(
        "wolkvox_consecutive_failures",
        "Polls of this target that failed in a row since its last success (0 after a success and before the first poll).",
        PerTarget(|t| Some(f64::from(t.consecutive_failures))),
    ),
    gauge(
        "wolkvox_failure_streak",
        "While the target's polls fail: how many in a row, labelled with the reason of the last one (absent after a success). Restored with the state directory.",
        Written(failure_streak),
    ),
    gauge(
        "wolkvox_month_end_timestamp_seconds",
        "Unix time at which the current billing month ends in the target's time zone (the first instant of the next month there).",
        Written(month_end),
    ),
    counter(
        "wolkvox_api_requests_total",
        "Calls made to the Wolkvox API (each one costs a call of the daily quota).",
        PerTarget(|t| Some(t.requests as f64)),
    ),
    counter(
        "wolkvox_api_request_failures_total",
        "Failed calls to the Wolkvox API, by reason.",
        Written(request_failures),
    ),
    gauge(
        "wolkvox_rows",
        "Rows in the last successful response.",
        PerTarget(|t| t.last_success.as_ref().map(|s| s.report.rows as f64)),
    ),
    counter(
        "wolkvox_rows_skipped_total",
        "Rows skipped because they carried no usable number, by reason.",
        Written(rows_skipped),
    ),
    gauge(
        "wolkvox_target_info",
        "Always 1: the name of the token each target polls with (never the token), to join a token's targets.",
        Written(target_info),
    ),
    // Contracts.
    gauge(
        "wolkvox_billing_budget",
        "Contracted quantity of a billing API for an operation and product, from the config file's budgets.",
        Written(billing_budget),
    ),
    gauge(
        "wolkvox_billing_budget_used",
        "This month's highest value of a budgeted series (the API's own _max metric), labelled like wolkvox_billing_budget so the two compare directly.",
        Written(billing_budget_used),
    ),
    // Costs: estimates from the configured prices, not the invoice.
    gauge(
        "wolkvox_estimated_cost",
        "Estimated cost of a priced series in the current month so far: its unit price from the config file's prices times the month's highest value (charge peak) or the latest value (charge latest). An estimate: taxes, discounts, minimums and currency conversion are not included.",
        Written(estimated_cost),
    ),
    gauge(
        "wolkvox_unit_price",
        "Unit price from the config file's prices that applies to a series (the entry naming its operation, else its product's), labelled with the value it charges: the month's peak or the latest. Estimated costs use it; taxes, discounts and minimums are not included.",
        Written(unit_price),
    ),
    gauge(
        "wolkvox_cost_limit",
        "Monthly cost limit of a server in a currency, from the config file's cost_limits, for comparing with the estimated cost of the month (which leaves out taxes, discounts and minimums).",
        Written(cost_limit),
    ),
    // Each token: its calls, its budget, its pause, and Wolkvox's own count.
    gauge(
        "wolkvox_token_calls_today",
        "Calls this exporter made with the token since midnight in the target's time zone (each one costs a call of the daily quota).",
        PerToken(|t| Some(f64::from(t.calls_today))),
    ),
    gauge(
        "wolkvox_token_state_saved",
        "1 while the state directory (--storage.path) holds all that the token did; 0 while its ledger cannot be written or read: the API's rules hold from memory, but a restart now may call early or forget a pause.",
        PerToken(|t| t.state_saved.map(|saved| f64::from(u8::from(saved)))),
    ),
    gauge(
        "wolkvox_token_paused_until_timestamp_seconds",
        "While the token makes no call for a reason of its own: until when (Unix time), and why (quota: Wolkvox's daily quota is spent; budget: the daily call budget is; timeout_rest: a call timed out and may still run at Wolkvox). Restored with the state directory.",
        Written(token_pause),
    ),
    gauge(
        "wolkvox_token_daily_call_budget",
        "The configured daily call budget of the token.",
        PerToken(|t| t.daily_call_budget.map(f64::from)),
    ),
    gauge(
        "wolkvox_token_call_spacing_seconds",
        "Least time between two calls of the token that its daily budget imposes now, so the calls last the day (0 without a budget).",
        PerToken(|t| Some(t.call_spacing.as_secs_f64())),
    ),
    gauge(
        "wolkvox_token_budget_stretched",
        "1 if the daily call budget delayed the token's last call past its schedule, else 0.",
        PerToken(|t| Some(if t.stretched { 1.0 } else { 0.0 })),
    ),
    gauge(
        "wolkvox_token_info_limit",
        "Daily call limit of the token, as Wolkvox's token_info reports it.",
        PerToken(|t| t.info.as_ref()?.limit),
    ),
    gauge(
        "wolkvox_token_info_used_today",
        "Calls of the token today, as Wolkvox's token_info reports it (other users of the token included).",
        PerToken(|t| t.info.as_ref()?.used_today),
    ),
    gauge(
        "wolkvox_token_info_all_tokens_used_today",
        "Calls of all the operation's tokens today, as Wolkvox's token_info reports it.",
        PerToken(|t| t.info.as_ref()?.all_tokens_used_today),
    ),
    // The state directory, when there is one.
    counter(
        "wolkvox_storage_write_failures_total",
        "Writes to the state directory (--storage.path) that failed since start-up; the API's rules hold from memory, but a restart while they fail may call Wolkvox early.",
        Storage(|failures| failures.writes),
    ),
    counter(
        "wolkvox_storage_read_failures_total",
        "Reads and locks of the state directory (--storage.path) that failed since start-up; the file is kept, and its token makes no call until it can be read.",
        Storage(|failures| failures.reads),
    ),
    gauge(
        "wolkvox_exporter_build_info",
        "Version of the exporter; the value is always 1.",
        Written(build_info),
    ),
];

/// One pair of families per billing API polled, in the catalogue's order: the latest value of each
/// series, and the month's highest.
fn usage_families(text: &mut Exposition, view: &View<'_>) {
    for api in catalogue::APIS.iter().filter(|api| view.targets.iter().any(|t| t.api == *api)) {
        let help = format!("{} (latest row per operation and product). {CACHED}", api.counts);
        text.family(api.metric, &help, Kind::Gauge, |samples| {
            usage(samples, view, api, |series| series.latest)
        });
        let help =
            format!("{}: the highest value in the current month's window. {CACHED}", api.counts);
        text.family(&format!("{}_max", api.metric), &help, Kind::Gauge, |samples| {
            usage(samples, view, api, |series| series.max)
        });
    }
}

fn usage(samples: &mut Samples<'_>, view: &View<'_>, api: &Api, value: fn(&Series) -> f64) {
    for (target, report) in view.fresh.iter().filter(|(t, _)| t.api == api) {
        for series in &report.series {
            let labels = [
                ("server", target.server.as_str()),
                ("operation", &series.operation),
                ("description", &series.description),
            ];
            samples.add(&labels, value(series));
        }
    }
}

/// A row's date as Unix time, read in the target's zone.
fn unix_of(target: &TargetState, at: DateTime) -> Option<f64> {
    at.to_zoned(target.timezone.clone()).ok().map(|z| z.timestamp().as_second() as f64)
}

fn newest_row(view: &View<'_>, samples: &mut Samples<'_>) {
    for ((target, _), newest) in view.fresh.iter().zip(&view.newest) {
        if let Some(at) = newest.and_then(|at| unix_of(target, at)) {
            samples.add(&[("server", target.server.as_str()), ("api", target.api.name)], at);
        }
    }
}

fn series_left_behind(view: &View<'_>, samples: &mut Samples<'_>) {
    for ((target, report), newest) in view.fresh.iter().zip(&view.newest) {
        let Some(newest) = newest.map(|at| at.date()) else { continue };
        for series in &report.series {
            let Some(at) = series.latest_at.filter(|at| at.date() < newest) else { continue };
            let Some(at) = unix_of(target, at) else { continue };
            let labels = [
                ("server", target.server.as_str()),
                ("api", target.api.name),
                ("operation", &series.operation),
                ("description", &series.description),
            ];
            samples.add(&labels, at);
        }
    }
}

fn failure_streak(view: &View<'_>, samples: &mut Samples<'_>) {
    for target in view.targets {
        let last_failure = target.last_poll.as_ref().and_then(|poll| poll.failure.as_ref());
        if let Some(failure) = last_failure.filter(|_| target.consecutive_failures > 0) {
            let labels = [
                ("server", target.server.as_str()),
                ("api", target.api.name),
                ("reason", failure.reason.as_str()),
            ];
            samples.add(&labels, f64::from(target.consecutive_failures));
        }
    }
}

fn month_end(view: &View<'_>, samples: &mut Samples<'_>) {
    for target in view.targets {
        if let Some(end) = target.month_end(view.now) {
            samples.add(&[("server", &target.server), ("api", target.api.name)], unix(end));
        }
    }
}

fn request_failures(view: &View<'_>, samples: &mut Samples<'_>) {
    by_reason(samples, view.targets, &Reason::ALL.map(Reason::as_str), |t| &t.failures);
}

fn rows_skipped(view: &View<'_>, samples: &mut Samples<'_>) {
    by_reason(samples, view.targets, &SkipReason::ALL.map(SkipReason::as_str), |t| &t.skipped);
}

/// One sample per target and reason, every reason included (at 0 too), in `reasons`' order.
fn by_reason(
    samples: &mut Samples<'_>,
    targets: &[TargetState],
    reasons: &[&str],
    counts: fn(&TargetState) -> &[u64],
) {
    for target in targets {
        for (reason, count) in reasons.iter().zip(counts(target)) {
            samples.add(
                &[("server", &target.server), ("api", target.api.name), ("reason", reason)],
                *count as f64,
            );
        }
    }
}

fn target_info(view: &View<'_>, samples: &mut Samples<'_>) {
    for target in view.targets {
        samples.add(
            &[
                ("server", &target.server),
                ("api", target.api.name),
                ("token_name", &target.token_name),
            ],
            1.0,
        );
    }
}

fn billing_budget(view: &View<'_>, samples: &mut Samples<'_>) {
    for budget in view.budgets {
        samples.add(&budget_labels(budget), budget.quantity);
    }
}

fn billing_budget_used(view: &View<'_>, samples: &mut Samples<'_>) {
    for budget in view.budgets {
        let report = view
            .fresh
            .iter()
            .find(|(t, _)| t.api == budget.api && t.server == budget.server)
            .map(|(_, report)| report);
        let series = report.and_then(|r| {
            r.series
                .iter()
                .find(|s| s.operation == budget.operation && s.description == budget.description)
        });
        if let Some(series) = series {
            samples.add(&budget_labels(budget), series.max);
        }
    }
}

fn budget_labels(b: &Budget) -> [(&str, &str); 4] {
    [
        ("api", b.api.name),
        ("server", &b.server),
        ("operation", &b.operation),
        ("description", &b.description),
    ]
}

fn estimated_cost(view: &View<'_>, samples: &mut Samples<'_>) {
    for Priced { target, series, price } in &view.priced {
        let labels = [
            ("server", target.server.as_str()),
            ("api", target.api.name),
            ("operation", &series.operation),
            ("description", &series.description),
            ("currency", &price.currency),
        ];
        samples.add(&labels, price.cost(series.latest, series.max));
    }
}

fn unit_price(view: &View<'_>, samples: &mut Samples<'_>) {
    for Priced { target, series, price } in &view.priced {
        let labels = [
            ("server", target.server.as_str()),
            ("api", target.api.name),
            ("operation", &series.operation),
            ("description", &series.description),
            ("currency", &price.currency),
            ("charge", price.charge.as_str()),
        ];
        samples.add(&labels, price.unit_price);
    }
}

fn cost_limit(view: &View<'_>, samples: &mut Samples<'_>) {
    for limit in view.cost_limits {
        samples.add(&[("server", &limit.server), ("currency", &limit.currency)], limit.monthly);
    }
}

fn token_pause(view: &View<'_>, samples: &mut Samples<'_>) {
    for token in view.tokens {
        if let Some((until, reason)) = token.pause.filter(|&(until, _)| until > view.now) {
            samples.add(&[("token_name", &token.name), ("reason", reason.as_str())], unix(until));
        }
    }
}

fn build_info(_: &View<'_>, samples: &mut Samples<'_>) {
    let labels = [
        ("version", env!("CARGO_PKG_VERSION")),
        ("revision", env!("WOLKVOX_REVISION")),
        ("rustc_version", env!("WOLKVOX_RUSTC_VERSION")),
    ];
    samples.add(&labels, 1.0);
}

/// About what a target's usage series take in the text (two families), so the buffer is sized once.
fn usage_bytes(target: &TargetState, report: &Report) -> usize {
    let labels: usize = report.series.iter().map(|s| s.operation.len() + s.description.len()).sum();
    2 * (labels + report.series.len() * (80 + target.server.len()))
}

/// The standard `process_*` metrics, read from /proc when `/metrics` asks (at most once a second).
pub struct ProcessMetrics {
    registry: Registry,
}

impl ProcessMetrics {
    pub fn new() -> ProcessMetrics {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("the process collector registers once into a fresh registry");
        ProcessMetrics { registry }
    }

    pub fn render(&self) -> Vec<u8> {
        let mut buffer = Vec::with_capacity(2048);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to a Vec cannot fail");
        buffer
    }
}

impl Default for ProcessMetrics {
    fn default() -> Self {
        ProcessMetrics::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::serve::target_state::Success;
    use crate::wolkvox::Report;
    use crate::wolkvox::model::Series;

    /// Unix time 1.5e9: 2017-07-14 02:40 UTC, 2017-07-13 21:40 in Bogota.
    fn at_1_5e9() -> Timestamp {
        Timestamp::from_second(1_500_000_000).unwrap()
    }

    fn secs(seconds: i64) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(seconds)
    }

    fn none() -> Contracts {
        Contracts::default()
    }

    fn state(operation: &str, at: Timestamp, stale_after: Duration) -> TargetState {
        let report = Report {
            rows: 1,
            series: vec![Series {
                operation: operation.to_owned(),
                description: "Gamification".to_owned(),
                latest: 3.0,
                max: 4.5,
                latest_at: Some(jiff::civil::date(2017, 7, 13).at(8, 0, 0, 0)),
            }],
            skipped: vec![],
        };
        TargetState {
            stale_after,
            last_success: Some(Success { report: Arc::new(report), at }),
            ..TargetState::after_one_success(Report::default(), at)
        }
    }

    #[test]
    fn the_failure_streak_and_the_tokens_pause_are_served_while_they_last() {
        let now = at_1_5e9();
        let mut failing = state("ventas", now - secs(600), Duration::from_secs(3600));
        failing.consecutive_failures = 2;
        let failure = Some(crate::wolkvox::Failure::new(Reason::Auth, "401"));
        failing.last_poll = Some(crate::serve::target_state::LastPoll {
            finished_at: now,
            duration: Duration::ZERO,
            failure,
        });
        let token = |pause| TokenState { pause, ..TokenState::new_named("main") };
        let quota = Some((now + secs(60), crate::calls::admission::PauseReason::Quota));
        let text = render(&[failing.clone()], &[token(quota)], &none(), now, None);
        assert!(
            text.contains(
                "wolkvox_failure_streak{server=\"0042\",api=\"gamification\",reason=\"auth\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("wolkvox_token_paused_until_timestamp_seconds{token_name=\"main\",reason=\"quota\"} 1500000060\n"), "{text}");
        // A success ends the streak; a pause ends at its time.
        let text = render(
            &[state("ventas", now, Duration::from_secs(3600))],
            &[token(quota)],
            &none(),
            now + secs(60),
            None,
        );
        assert!(!text.contains("wolkvox_failure_streak{"), "{text}");
        assert!(!text.contains("wolkvox_token_paused_until_timestamp_seconds{"), "{text}");
    }

    /// Times are kept to the nanosecond and written to the millisecond, as they always were.
    #[test]
    fn a_time_is_written_to_the_millisecond() {
        let success = at_1_5e9() + jiff::SignedDuration::from_nanos(123_456_789);
        let text = render(
            &[state("ventas", success, Duration::from_secs(60))],
            &[],
            &none(),
            success,
            None,
        );
        assert!(text.contains("wolkvox_last_success_timestamp_seconds{server=\"0042\",api=\"gamification\"} 1500000000.123\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped_whatever_they_hold() {
        let now = at_1_5e9();
        let text = render(
            &[state(
                "a \"quoted\" back\\slash\nnew line ñ 😀 \t tab",
                now,
                Duration::from_secs(60),
            )],
            &[],
            &none(),
            now,
            None,
        );
        assert!(
            text.contains(
                "wolkvox_gamification_licenses{server=\"0042\",operation=\"a \\\"quoted\\\" back\\\\slash\\nnew line ñ 😀 \t tab\",description=\"Gamification\"} 3\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "wolkvox_gamification_licenses_max{server=\"0042\",operation=\"a \\\"quoted"
        ));
        assert!(text.contains("} 4.5\n"));
    }

    #[test]
    fn how_old_the_usage_is_is_served_for_the_answer_and_for_series_left_behind() {
        let now = at_1_5e9();
        // The answer's newest row, 08:00 in Bogota on July 13th 2017; a series left a day behind
        // says how old it is, the others do not.
        let mut target = state("ventas", now, Duration::from_secs(60));
        let mut report = (*target.last_success.as_ref().unwrap().report).clone();
        let behind = Series {
            operation: "soporte".into(),
            latest_at: Some(jiff::civil::date(2017, 7, 11).at(23, 0, 0, 0)),
            ..report.series[0].clone()
        };
        report.series.push(behind);
        target.last_success = Some(Success { report: Arc::new(report), at: now });
        let text = render(&[target], &[], &none(), now, None);
        assert!(text.contains("wolkvox_usage_newest_row_timestamp_seconds{server=\"0042\",api=\"gamification\"} 1499950800\n"), "{text}");
        let behind = "wolkvox_usage_latest_row_timestamp_seconds{server=\"0042\",api=\"gamification\",operation=\"soporte\",description=\"Gamification\"} 1499832000\n";
        assert!(text.contains(behind), "{text}");
        assert!(
            !text.contains("wolkvox_usage_latest_row_timestamp_seconds{server=\"0042\",api=\"gamification\",operation=\"ventas\""),
            "{text}"
        );
    }

    #[test]
    fn stale_usage_is_left_out_but_health_stays() {
        let now = at_1_5e9();
        let old = state("ventas", now, Duration::from_secs(60));
        let text = render(
            &[old],
            &[],
            &none(),
            now + secs(61),
            Some(StorageFailures { writes: 2, reads: 3 }),
        );
        assert!(!text.contains("wolkvox_gamification_licenses"), "{text}");
        assert!(text.contains("wolkvox_up{server=\"0042\",api=\"gamification\"} 1\n"));
        assert!(text.contains("wolkvox_last_success_timestamp_seconds{server=\"0042\",api=\"gamification\"} 1500000000\n"));
        assert!(
            text.contains("wolkvox_consecutive_failures{server=\"0042\",api=\"gamification\"} 0\n")
        );
        assert!(text.contains("wolkvox_target_info{server=\"0042\",api=\"gamification\",token_name=\"WOLKVOX_TOKEN\"} 1\n"));
        let month_end: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "wolkvox_month_end_timestamp_seconds{server=\"0042\",api=\"gamification\"} ",
                )
            })
            .expect("the month's end is exported")
            .parse()
            .unwrap();
        // 1.5e9 is 2017-07-14 02:40 UTC, 2017-07-13 21:40 in Bogota: the month ends on August 1, 05:00 UTC.
        assert_eq!(month_end, 1_501_563_600.0);
        assert!(text.contains("wolkvox_storage_write_failures_total 2\n"), "{text}");
        assert!(text.contains("wolkvox_storage_read_failures_total 3\n"), "{text}");
        let fresh = render(
            &[state("ventas", now, Duration::from_secs(60))],
            &[],
            &none(),
            now + secs(60),
            None,
        );
        assert!(
            fresh.contains("wolkvox_gamification_licenses{"),
            "fresh until stale_after has passed"
        );
        assert!(
            !fresh.contains("wolkvox_storage_write_failures_total "),
            "no state directory, no counter"
        );
    }

    #[test]
    fn the_cost_of_a_series_goes_with_it_and_the_cost_limit_stays() {
        use crate::config::prices::Prices;
        use crate::wolkvox::catalogue::Charge;

        let now = at_1_5e9();
        let contracts = Contracts {
            prices: Prices::new(vec![Price {
                api: catalogue::gamification(),
                server: "0042".to_owned(),
                operation: None,
                description: "Gamification".to_owned(),
                unit_price: 2.0,
                currency: "EUR".to_owned(),
                charge: Charge::Peak,
            }]),
            cost_limits: vec![CostLimit {
                server: "0042".to_owned(),
                currency: "EUR".to_owned(),
                monthly: 100.0,
            }],
            ..none()
        };
        let target = || state("ventas", now, Duration::from_secs(60));
        let cost = "wolkvox_estimated_cost{server=\"0042\",api=\"gamification\",operation=\"ventas\",description=\"Gamification\",currency=\"EUR\"} 9\n";
        let limit = "wolkvox_cost_limit{server=\"0042\",currency=\"EUR\"} 100\n";
        let fresh = render(&[target()], &[], &contracts, now, None);
        assert!(fresh.contains(cost) && fresh.contains(limit), "{fresh}");
        let stale = render(&[target()], &[], &contracts, now + secs(61), None);
        assert!(!stale.contains("wolkvox_estimated_cost") && !stale.contains("wolkvox_unit_price"));
        assert!(stale.contains(limit), "{stale}");
    }

    #[test]
    fn help_says_the_values_are_cached_and_no_sample_has_a_timestamp() {
        let now = at_1_5e9();
        let text =
            render(&[state("ventas", now, Duration::from_secs(60))], &[], &none(), now, None);
        assert!(text.contains("# HELP wolkvox_gamification_licenses Active gamification licenses"));
        assert!(
            text.lines()
                .find(|l| l.starts_with("# HELP wolkvox_gamification_licenses "))
                .unwrap()
                .contains("Cached from the last successful background poll")
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            // After the labels comes the value alone: a timestamp would be a second field.
            let after_labels = line.rsplit_once('}').map_or(line, |(_, rest)| rest);
            assert_eq!(after_labels.split_whitespace().count(), 1, "{line}");
        }
    }

    /// Every family with samples, a token's pause, a series left behind, a budget used and one
    /// not, a price for a product and one for an operation, a cost limit: the exposition byte for
    /// byte, so that how `render` is written may change but not what it writes. The build's own version, revision and compiler fill in the build_info line.
    #[test]
    fn every_family_is_written_byte_for_byte() {
        use crate::calls::admission::PauseReason;
        use crate::config::prices::Prices;
        use crate::serve::target_state::LastPoll;
        use crate::wolkvox::catalogue::Charge;
        use crate::wolkvox::{Failure, TokenInfo};

        let now = at_1_5e9();
        let mut usage = state("ventas", now - secs(600), Duration::from_secs(3600));
        let mut report = (*usage.last_success.as_ref().unwrap().report).clone();
        let behind = Series {
            operation: "soporte".into(),
            latest: 2.0,
            max: 7.25,
            latest_at: Some(jiff::civil::date(2017, 7, 11).at(23, 0, 0, 0)),
            ..report.series[0].clone()
        };
        report.series.push(behind);
        report.rows = 40;
        usage.last_success = Some(Success { report: Arc::new(report), at: now - secs(600) });
        usage.requests = 7;
        usage.failures[1] = 2;
        usage.skipped[2] = 3;
        usage.consecutive_failures = 2;
        let failure = Some(Failure::new(Reason::Timeout, "slow"));
        usage.last_poll =
            Some(LastPoll { finished_at: now, duration: Duration::from_millis(1500), failure });
        // Another server and API that has not answered yet: health and no usage.
        let idle = TargetState {
            server: "0099".to_owned(),
            api: catalogue::find("chat_licenses").unwrap(),
            token_name: "other".to_owned(),
            requests: 0,
            last_poll: None,
            last_success: None,
            ..TargetState::after_one_success(Report::default(), now)
        };
        let main = TokenState {
            daily_call_budget: Some(500),
            calls_today: 12,
            call_spacing: Duration::from_secs(90),
            stretched: true,
            info: Some(TokenInfo {
                limit: Some(1000.0),
                used_today: Some(15.0),
                all_tokens_used_today: Some(40.0),
            }),
            state_saved: Some(false),
            pause: Some((now + secs(60), PauseReason::Budget)),
            ..TokenState::new_named("main")
        };
        let budget = |operation: &str, quantity| Budget {
            api: catalogue::gamification(),
            server: "0042".to_owned(),
            operation: operation.to_owned(),
            description: "Gamification".to_owned(),
            quantity,
        };
        // Soporte at the product's price on its peak, ventas at its own on its latest value; the
        // idle target's price has no series to apply to.
        let price = |server: &str, api, operation: Option<&str>, unit_price, charge| Price {
            api: catalogue::find(api).unwrap(),
            server: server.to_owned(),
            operation: operation.map(str::to_owned),
            description: "Gamification".to_owned(),
            unit_price,
            currency: "USD".to_owned(),
            charge,
        };
        let contracts = Contracts {
            budgets: vec![budget("ventas", 10.0), budget("nadie", 5.0)],
            prices: Prices::new(vec![
                price("0042", "gamification", None, 2.5, Charge::Peak),
                price("0042", "gamification", Some("ventas"), 3.0, Charge::Latest),
                price("0099", "chat_licenses", None, 9.0, Charge::Peak),
            ]),
            cost_limits: vec![CostLimit {
                server: "0042".to_owned(),
                currency: "USD".to_owned(),
                monthly: 5000.0,
            }],
        };
        let failures = Some(StorageFailures { writes: 1, reads: 2 });
        let text = render(
            &[usage, idle],
            &[main, TokenState::new_named("other")],
            &contracts,
            now,
            failures,
        );
        let expected = include_str!("testdata/every_family.prom")
            .replace("{version}", env!("CARGO_PKG_VERSION"))
            .replace("{revision}", env!("WOLKVOX_REVISION"))
            .replace("{rustc_version}", env!("WOLKVOX_RUSTC_VERSION"));
        assert_eq!(text, expected);
    }
}
