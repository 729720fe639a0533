//! The page an operator opens first (`/`): what each target and API did last, when it polls next,
//! the calls of each token against its budget, the version, and links to everything else. Built
//! from the published snapshot per request; it never holds the token. Plain HTML that reads the
//! same without its small stylesheet, in the manner of exporter-toolkit's landing page.

use std::fmt::Write;
use std::time::Duration;

use jiff::Timestamp;

use crate::clock::until;
use crate::serve::store::Published;
use crate::serve::target_state::{TargetState, TokenState};

const STYLE: &str = "body{font-family:-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#222}\
header{background:#e6522c;color:#fff;padding:.6em 1em}header h1{margin:0;font-size:1.4em}\
main{padding:0 1em 1em}table{border-collapse:collapse;margin:.5em 0}\
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f4f4f4}\
.ok{color:#1a7f37}.failing{color:#b42318;font-weight:bold}.waiting{color:#6e6e6e}small{color:#555}";

/// The whole page at `now`.
pub(super) fn page(published: &Published, telemetry_path: &str, now: Timestamp) -> String {
    let mut html = String::with_capacity(4096 + 512 * published.targets.len());
    let path = escape(telemetry_path);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>Wolkvox Exporter</title><style>{STYLE}</style></head>\n<body>\n<header><h1>Wolkvox Exporter</h1></header>\n<main>\n\
         <p>Polls the Wolkvox billing API in the background, within the API's rules, and serves the cached usage to Prometheus. \
         Scrapes never call the API.</p>\n\
         <p>Version {version} (revision {revision}, built with {rustc})</p>\n\
         <ul>\n<li><a href=\"{path}\">Metrics</a></li>\n<li><a href=\"/-/healthy\">Health</a></li>\n\
         <li><a href=\"/-/ready\">Readiness</a>: {ready}</li>\n<li><a href=\"/README.md\">README</a>: what it is, how to run it, and every doc</li>\n\
         <li><a href=\"/docs/runbook.md\">Runbook</a>: what to do when an alert fires</li>\n\
         <li><a href=\"/docs/configuration.md\">Configuration</a>: flags, the config file, budgets, endpoints</li>\n\
         <li><a href=\"/docs/metrics.md\">Metrics reference</a>: every series, the billing catalogue, failure reasons</li>\n</ul>\n",
        version = env!("CARGO_PKG_VERSION"),
        revision = escape(env!("WOLKVOX_REVISION")),
        rustc = escape(env!("WOLKVOX_RUSTC_VERSION")),
        ready = if published.every_server_answered() {
            "ready; every server has answered"
        } else {
            "ready; waiting for a first successful poll of some server (see its status below)"
        },
    );

    html.push_str(
        "<h2>Targets</h2>\n<table>\n<thead><tr><th>Server</th><th>API</th><th>Status</th><th>Last success</th><th>Next poll</th>\
         <th>Last failure</th><th>Token</th><th>Calls today</th></tr></thead>\n<tbody>\n",
    );
    for target in &published.targets {
        let token = published.tokens.iter().find(|t| t.name == target.token_name);
        target_row(&mut html, target, token, now);
    }
    html.push_str("</tbody>\n</table>\n<p><small>Times are UTC. Calls today count this exporter's calls since midnight in the target's time zone.</small></p>\n</main>\n</body>\n</html>\n");
    html
}

fn target_row(html: &mut String, target: &TargetState, token: Option<&TokenState>, now: Timestamp) {
    let status = match &target.last_poll {
        None => "<span class=\"waiting\">waiting for the first poll</span>".to_owned(),
        Some(poll) if poll.failure.is_none() => {
            let series = target.last_success.as_ref().map_or(0, |s| s.report.series.len());
            format!("<span class=\"ok\">ok</span> ({series} series)")
        }
        Some(_) => format!(
            "<span class=\"failing\">failing</span> ({} in a row)",
            target.consecutive_failures
        ),
    };
    let last_success = target
        .last_success
        .as_ref()
        .map_or("never".to_owned(), |s| format!("{} ({} ago)", utc(s.at), age(s.at, now)));
    let next_poll = match target.next_poll_at {
        Some(at) if at > now => format!("{} (in {})", utc(at), age(now, at)),
        Some(_) => "now".to_owned(),
        None => "not planned".to_owned(),
    };
    let last_failure = target.last_failure.as_ref().map_or("none".to_owned(), |(at, failure)| {
        format!(
            "{} ({} ago): <b>{}</b> {}",
            utc(*at),
            age(*at, now),
            failure.reason,
            escape(&failure.detail)
        )
    });
    let calls = token.map_or(String::new(), |t| match t.daily_call_budget {
        Some(budget) => format!("{} of {budget}", t.calls_today),
        None => format!("{} (no budget)", t.calls_today),
    });
    let _ = writeln!(
        html,
        "<tr><td>{}</td><td>{}</td><td>{status}</td><td>{last_success}</td><td>{next_poll}</td><td>{last_failure}</td><td>{}</td><td>{calls}</td></tr>",
        escape(&target.server),
        target.api.name,
        escape(&target.token_name),
    );
}

/// To the second, without a fraction.
fn utc(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// The time from `from` to `to` in whole seconds, as "3m 12s" (zero if `to` is not later).
fn age(from: Timestamp, to: Timestamp) -> String {
    humantime::format_duration(Duration::from_secs(until(from, to).as_secs())).to_string()
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::serve::store::Store;
    use crate::wolkvox::{Failure, Reason, Report};
    use jiff::SignedDuration;

    #[test]
    fn a_target_shows_its_last_success_next_poll_failure_and_budget() {
        let mut target = TargetState::after_one_success(Report::default(), Clock::system().now());
        let success = target.last_success.as_ref().unwrap().at;
        target.last_failure = Some((
            success - SignedDuration::from_secs(600),
            Failure::new(Reason::Http, "HTTP 502 <Bad Gateway>"),
        ));
        target.next_poll_at = Some(success + SignedDuration::from_secs(300));
        let token = TokenState {
            name: "WOLKVOX_TOKEN".to_owned(),
            daily_call_budget: Some(288),
            calls_today: 17,
            call_spacing: Duration::ZERO,
            stretched: false,
            info: None,
            state_saved: Some(true),
            pause: None,
        };
        let store = Store::from_states(
            vec![target],
            vec![token],
            &crate::config::Contracts::default(),
            Clock::system(),
        );
        let html = page(&store.published(), "/metrics", success + SignedDuration::from_secs(75));
        for expected in [
            "<td>0042</td><td>gamification</td>",
            "<span class=\"ok\">ok</span> (0 series)",
            "(1m 15s ago)",
            "(in 3m 45s)",
            "(11m 15s ago): <b>http</b> HTTP 502 &lt;Bad Gateway&gt;",
            "<td>WOLKVOX_TOKEN</td><td>17 of 288</td>",
            "href=\"/metrics\"",
            "href=\"/README.md\"",
            "href=\"/docs/runbook.md\"",
            "href=\"/docs/configuration.md\"",
            "href=\"/docs/metrics.md\"",
            concat!("Version ", env!("CARGO_PKG_VERSION")),
        ] {
            assert!(html.contains(expected), "missing {expected:?} in\n{html}");
        }
    }
}
