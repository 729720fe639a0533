//! Target state -> Prometheus exposition text. The prometheus crate's encoder does the escaping
//! of label values (quotes, backslashes, newlines; any Unicode passes through).

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::time::Instant;

use crate::snapshot::TargetState;
use crate::wolkvox::{Reason, SkipReason};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const CACHED: &str = "Cached from the last successful background poll of the Wolkvox billing API; scrapes never call the API.";

/// Renders every target; usage series of a target whose last success is too old are left out.
pub fn render(targets: &[TargetState], now: Instant) -> String {
    let mut licenses = Family::gauge(
        "wolkvox_gamification_licenses",
        &format!("Active gamification licenses (latest row per operation and product). {CACHED}"),
    );
    let mut licenses_max = Family::gauge(
        "wolkvox_gamification_licenses_max",
        &format!("Highest gamification license count in the current month's window. {CACHED}"),
    );
    let mut up =
        Family::gauge("wolkvox_up", "1 if the last background poll of this target succeeded, 0 if it failed or none finished yet.");
    let mut last_success = Family::gauge("wolkvox_last_success_timestamp_seconds", "Unix time of the last successful background poll.");
    let mut duration = Family::gauge("wolkvox_last_poll_duration_seconds", "How long the last background poll took, successful or not.");
    let mut interval = Family::gauge(
        "wolkvox_poll_interval_seconds",
        "Configured time between polls of this target (retries after failures may come sooner).",
    );
    let mut requests =
        Family::counter("wolkvox_api_requests_total", "Calls made to the Wolkvox API (each one costs a call of the daily quota).");
    let mut failures = Family::counter("wolkvox_api_request_failures_total", "Failed calls to the Wolkvox API, by reason.");
    let mut rows = Family::gauge("wolkvox_rows", "Rows in the last successful response.");
    let mut skipped = Family::counter("wolkvox_rows_skipped_total", "Rows skipped because they carried no usable number, by reason.");

    for target in targets {
        let server = target.server.as_str();
        let target_labels = [("server", server), ("api", target.api)];
        if let Some(report) = target.fresh_report(now) {
            for series in &report.series {
                let labels = [("server", server), ("operation", series.operation.as_str()), ("description", series.description.as_str())];
                licenses.push(&labels, series.latest);
                licenses_max.push(&labels, series.max);
            }
        }
        let succeeded = target.last_poll.as_ref().is_some_and(|poll| poll.failure.is_none());
        up.push(&target_labels, if succeeded { 1.0 } else { 0.0 });
        if let Some(success) = &target.last_success {
            last_success.push(&target_labels, success.unix);
            rows.push(&target_labels, success.report.rows as f64);
        }
        if let Some(poll) = &target.last_poll {
            duration.push(&target_labels, poll.duration.as_secs_f64());
        }
        interval.push(&target_labels, target.poll_interval.as_secs_f64());
        requests.push(&target_labels, target.requests as f64);
        for reason in Reason::ALL {
            failures.push(&[("server", server), ("api", target.api), ("reason", reason.as_str())], target.failures[reason as usize] as f64);
        }
        for reason in SkipReason::ALL {
            skipped.push(&[("server", server), ("api", target.api), ("reason", reason.as_str())], target.skipped[reason as usize] as f64);
        }
    }

    let mut build_info = Family::gauge("wolkvox_exporter_build_info", "Version of the exporter; the value is always 1.");
    build_info.push(
        &[("version", env!("CARGO_PKG_VERSION")), ("revision", env!("WOLKVOX_REVISION")), ("rustc_version", env!("WOLKVOX_RUSTC_VERSION"))],
        1.0,
    );

    let families: Vec<MetricFamily> =
        [licenses, licenses_max, up, last_success, duration, interval, requests, failures, rows, skipped, build_info]
            .into_iter()
            .filter_map(Family::finish)
            .collect();
    TextEncoder::new().encode_to_string(&families).expect("families are named and non-empty")
}

/// A metric family being filled; families without samples are left out of the output.
struct Family {
    family: MetricFamily,
}

impl Family {
    fn gauge(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::GAUGE)
    }

    fn counter(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::COUNTER)
    }

    fn new(name: &str, help: &str, kind: MetricType) -> Family {
        let mut family = MetricFamily::default();
        family.set_name(name.to_owned());
        family.set_help(help.to_owned());
        family.set_field_type(kind);
        Family { family }
    }

    fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        let labels = labels
            .iter()
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name((*name).to_owned());
                pair.set_value((*value).to_owned());
                pair
            })
            .collect();
        let mut metric = Metric::from_label(labels);
        if self.family.get_field_type() == MetricType::COUNTER {
            let mut counter = Counter::default();
            counter.set_value(value);
            metric.set_counter(counter);
        } else {
            let mut gauge = Gauge::default();
            gauge.set_value(value);
            metric.set_gauge(gauge);
        }
        self.family.mut_metric().push(metric);
    }

    fn finish(self) -> Option<MetricFamily> {
        (!self.family.get_metric().is_empty()).then_some(self.family)
    }
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
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer).expect("encoding to a Vec cannot fail");
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
    use crate::snapshot::Success;
    use crate::wolkvox::Report;
    use crate::wolkvox::model::Series;

    fn state(operation: &str, at: Instant, stale_after: Duration) -> TargetState {
        let report = Report {
            rows: 1,
            series: vec![Series { operation: operation.to_owned(), description: "Gamification".to_owned(), latest: 3.0, max: 4.5 }],
            skipped: vec![],
        };
        TargetState {
            stale_after,
            last_success: Some(Success { report: Arc::new(report), at, unix: 1.5e9 }),
            ..TargetState::after_one_success(Report::default())
        }
    }

    #[test]
    fn label_values_are_escaped_whatever_they_hold() {
        let now = Instant::now();
        let text = render(&[state("a \"quoted\" back\\slash\nnew line ñ 😀 \t tab", now, Duration::from_secs(60))], now);
        assert!(
            text.contains(
                "wolkvox_gamification_licenses{server=\"0042\",operation=\"a \\\"quoted\\\" back\\\\slash\\nnew line ñ 😀 \t tab\",description=\"Gamification\"} 3\n"
            ),
            "{text}"
        );
        assert!(text.contains("wolkvox_gamification_licenses_max{server=\"0042\",operation=\"a \\\"quoted"));
        assert!(text.contains("} 4.5\n"));
    }

    #[test]
    fn stale_usage_is_left_out_but_health_stays() {
        let now = Instant::now();
        let old = state("ventas", now, Duration::from_secs(60));
        let text = render(&[old], now + Duration::from_secs(61));
        assert!(!text.contains("wolkvox_gamification_licenses"), "{text}");
        assert!(text.contains("wolkvox_up{server=\"0042\",api=\"gamification\"} 1\n"));
        assert!(text.contains("wolkvox_last_success_timestamp_seconds{server=\"0042\",api=\"gamification\"} 1500000000\n"));
    }

    #[test]
    fn help_says_the_values_are_cached_and_no_sample_has_a_timestamp() {
        let now = Instant::now();
        let text = render(&[state("ventas", now, Duration::from_secs(60))], now);
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
}
