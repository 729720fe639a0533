//! The HTTP face: `/metrics` (or `--web.telemetry-path`), `/`, `/README.md`, `/docs/*.md`, `/-/healthy`, `/-/ready`.
//! Handlers only read the published snapshot; none of them can reach the Wolkvox API.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

use crate::serve::landing;
use crate::serve::metrics::{CONTENT_TYPE, ProcessMetrics};
use crate::serve::store::{Published, Store};

pub const README_PATH: &str = "/README.md";
const HEALTHY_PATH: &str = "/-/healthy";
const READY_PATH: &str = "/-/ready";
/// Where the docs are served; nothing else may live under it.
const DOCS_PREFIX: &str = "/docs/";

/// Whether the router serves `path` itself, so that `--web.telemetry-path` may not take it.
pub(crate) fn is_reserved(path: &str) -> bool {
    matches!(path, "/" | HEALTHY_PATH | READY_PATH | README_PATH) || path.starts_with(DOCS_PREFIX)
}

/// The docs the binary was built with, each at `/docs/<name>.md` beside the README that links
/// them: a fixed table, so nothing is read from the file system at run time. The landing page
/// links the runbook (every alert's `runbook_url` names a section of it), the configuration and
/// the metrics.
pub const DOCS: [(&str, &str); 10] = [
    ("/docs/architecture.md", include_str!("../../docs/architecture.md")),
    ("/docs/configuration.md", include_str!("../../docs/configuration.md")),
    ("/docs/dashboards-and-alerts.md", include_str!("../../docs/dashboards-and-alerts.md")),
    ("/docs/deployment.md", include_str!("../../docs/deployment.md")),
    ("/docs/development.md", include_str!("../../docs/development.md")),
    ("/docs/metrics.md", include_str!("../../docs/metrics.md")),
    ("/docs/performance.md", include_str!("../../docs/performance.md")),
    ("/docs/runbook.md", include_str!("../../docs/runbook.md")),
    ("/docs/security.md", include_str!("../../docs/security.md")),
    ("/docs/state-and-backfill.md", include_str!("../../docs/state-and-backfill.md")),
];

#[derive(Clone)]
struct AppState {
    store: Arc<Store>,
    process: Arc<ProcessMetrics>,
    tail: Arc<ArcSwapOption<Tail>>,
    telemetry_path: Arc<str>,
}

/// The process metrics that end every body, plain and as the end of the snapshot's gzip stream.
/// Rebuilt at most once a second (and for each new snapshot): reading /proc and compressing on
/// every scrape would cost more than all the rest of a scrape.
struct Tail {
    built: Instant,
    snapshot: Arc<Published>,
    plain: Bytes,
    /// The whole gzip body in one buffer: it is small, and one buffer is written faster than two.
    gzip_body: Bytes,
}

const TAIL_LIFETIME: Duration = Duration::from_secs(1);

impl AppState {
    fn tail(&self, snapshot: &Arc<Published>) -> Arc<Tail> {
        if let Some(tail) = self.tail.load_full()
            && tail.built.elapsed() < TAIL_LIFETIME
            && Arc::ptr_eq(&tail.snapshot, snapshot)
        {
            return tail;
        }
        let plain = Bytes::from(self.process.render());
        let gzip_body = [snapshot.gzip.bytes(), snapshot.gzip.finish(&plain)].concat().into();
        let tail =
            Arc::new(Tail { built: Instant::now(), snapshot: snapshot.clone(), plain, gzip_body });
        self.tail.store(Some(tail.clone()));
        tail
    }
}

pub fn router(store: Arc<Store>, telemetry_path: &str) -> Router {
    let state = AppState {
        store,
        process: Arc::new(ProcessMetrics::new()),
        tail: Arc::default(),
        telemetry_path: telemetry_path.into(),
    };
    let mut router = Router::new()
        .route(telemetry_path, get(metrics))
        .route("/", get(landing))
        .route(README_PATH, get(|| async { markdown(include_str!("../../README.md")) }))
        .route(HEALTHY_PATH, get(|| async { "Healthy\n" }))
        .route(READY_PATH, get(ready));
    for (path, text) in DOCS {
        debug_assert!(path.starts_with(DOCS_PREFIX));
        router = router.route(path, get(move || async move { markdown(text) }));
    }
    router.fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") }).with_state(state)
}

/// The snapshot's text (compressed once per poll for gzip) and the process-metrics tail: two
/// shared buffers, no rendering, no compression, no copy.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let published = state.store.published();
    let tail = state.tail(&published);
    let gzip = accepts_gzip(&headers);
    let (body, length) = if gzip {
        (Body::from(tail.gzip_body.clone()), tail.gzip_body.len())
    } else {
        // The text can be megabytes: sent as two shared buffers rather than copied into one.
        let (text, process) = (published.text.clone(), tail.plain.clone());
        let length = text.len() + process.len();
        (
            Body::from_stream(futures_util::stream::iter([Ok::<_, Infallible>(text), Ok(process)])),
            length,
        )
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// True when `Accept-Encoding` accepts gzip with a non-zero quality: named, or through `*` when
/// gzip itself is not named (`gzip;q=0, *` refuses it).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut named = None;
    let mut any = false;
    for item in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        if coding.eq_ignore_ascii_case("gzip") {
            named = Some(named.unwrap_or(false) || !refused);
        } else if coding == "*" {
            any |= !refused;
        }
    }
    named.unwrap_or(any)
}

/// Ready as soon as it serves: the configuration is valid, the state directory's last good values
/// are restored, and `/metrics` says what is known, a failing poll included (`wolkvox_up` 0).
/// Whether Wolkvox answers is data for the alerts, not a reason to hold a rollout: a pod made to
/// wait for its first successful poll failed every rollout during a Wolkvox maintenance window
/// (Argo CD and Flux: Degraded) and dropped out of its Service, its alerts with it.
async fn ready() -> impl IntoResponse {
    (StatusCode::OK, "Ready\n")
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    Html(landing::page(&state.store.published(), &state.telemetry_path, state.store.clock().now()))
}

/// The README or a doc as built into the binary: the landing page links them, so the flags, the
/// metrics and the alerts' runbook are at hand wherever the exporter runs, without naming any web
/// host.
fn markdown(text: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
        headers
    }

    #[test]
    fn gzip_is_chosen_only_when_acceptable() {
        assert!(accepts_gzip(&headers("gzip")));
        assert!(accepts_gzip(&headers("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("gzip;q=0, *")), "a refused gzip stays refused under *");
        assert!(!accepts_gzip(&headers("*;q=0")));
        assert!(!accepts_gzip(&headers("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
