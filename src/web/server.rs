//! The accept loop: plain HTTP or TLS (the certificate and client CA of the moment, so that a
//! renewed certificate is served without a restart), a time limit on TLS handshakes and on reading
//! request headers, a cap on concurrent requests, and graceful shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::WebSettings;
use super::auth::{BcryptTurns, Verdict};
use super::config::WebConfigError;

/// How often the web configuration and the files it names are checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Protections against clients that are slow, idle or too many.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// Requests served at once; more get 503 at once, as exporter-toolkit's `--web.max-requests`. 0: no cap.
    pub max_requests: usize,
    /// Connections open at once; past it the next waits to be accepted. 0: no cap.
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_requests: 40,
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// The web settings in force, swapped whole when the file changes.
pub(crate) struct Web {
    settings: ArcSwap<WebSettings>,
    path: Option<PathBuf>,
}

impl Web {
    pub(crate) fn new(path: Option<PathBuf>, settings: Arc<WebSettings>) -> Arc<Web> {
        if let Some(path) = &path
            && settings.unprotected()
        {
            // Allowed (`{}` on purpose), but a file is usually given to protect the port.
            tracing::warn!(file = %path.display(), "web configuration has neither TLS nor basic auth: anyone who reaches the port reads everything");
        }
        Arc::new(Web { settings: ArcSwap::new(settings), path })
    }

    pub(crate) fn current(&self) -> Arc<WebSettings> {
        self.settings.load_full()
    }

    pub(crate) fn has_file(&self) -> bool {
        self.path.is_some()
    }

    /// Reloads when the file or a file it names changes and then stands still for a check; an
    /// invalid or empty file is logged and the last good settings stay, and a valid one that
    /// removes TLS, client certificates or basic auth is applied with a warning. Returns only
    /// without a file.
    pub(crate) async fn watch_forever(self: Arc<Self>) {
        let Some(path) = self.path.clone() else { return };
        let mut seen = fingerprint(&self.current().watched);
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            let now = fingerprint(&self.current().watched);
            if now == seen {
                continue;
            }
            // Read a changed file once it has stood still for a check: a file caught while an
            // editor or a copy writes it may be valid YAML that lacks what comes later (the
            // basic_auth_users after tls_server_config), and would drop that protection.
            tokio::time::sleep(RELOAD_CHECK).await;
            if fingerprint(&self.current().watched) != now {
                continue;
            }
            seen = now;
            let file = path.clone();
            match tokio::task::spawn_blocking(move || WebSettings::load(&file)).await {
                Ok(Ok(settings)) => {
                    let previous = self.current();
                    settings.users.keep_verified_from(&previous.users);
                    let removed = previous.protections_removed_by(&settings);
                    if removed.is_empty() {
                        tracing::info!(file = %path.display(), "web configuration reloaded");
                    } else {
                        // The file says so, so it is applied; but never quietly.
                        let removed = removed.join(", ");
                        tracing::warn!(file = %path.display(), %removed, "web configuration reloaded: new connections get no {removed}");
                    }
                    self.settings.store(Arc::new(settings));
                }
                // An editor mid-write or a full disk, far more likely than a wish to drop TLS and
                // basic auth (which `{}` states): keep serving as before.
                Ok(Err(WebConfigError::Empty)) => {
                    tracing::warn!(file = %path.display(), "web configuration file is empty or only comments; keeping the last good one")
                }
                Ok(Err(error)) => {
                    tracing::error!(file = %path.display(), %error, "web configuration is invalid; keeping the last good one")
                }
                Err(error) => tracing::error!(%error, "reloading the web configuration failed"),
            }
        }
    }
}

/// Modification time and length of each file: a change in any means a reload.
fn fingerprint(paths: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
        .collect()
}

/// What the password check needs beside the settings in force.
struct Gate {
    web: Arc<Web>,
    bcrypt_turns: BcryptTurns,
}

/// Wraps the router in basic auth (but for the probes), security headers and the request cap.
pub(crate) fn protect(router: Router, web: Arc<Web>, limits: &Limits) -> Router {
    let request_slots =
        (limits.max_requests > 0).then(|| Arc::new(Semaphore::new(limits.max_requests)));
    let router = match &request_slots {
        // One count for every route, and past it a 503 at once, as exporter-toolkit.
        Some(slots) => router.layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    (StatusCode::SERVICE_UNAVAILABLE, "Too many concurrent requests\n")
                }))
                .layer(tower::load_shed::LoadShedLayer::new())
                .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(slots.clone())),
        ),
        None => router,
    };
    // Outside the cap, so that requests waiting for their turn at bcrypt hold no slot (a flood of
    // guesses would take them all); a bcrypt check takes a slot of the same cap while it runs.
    let gate = Gate { web, bcrypt_turns: BcryptTurns::new(request_slots) };
    router.layer(middleware::from_fn_with_state(Arc::new(gate), authenticate))
}

/// Served without credentials: they say only "up" and "ready", and a Kubernetes or load-balancer
/// probe has no password to send (a 401 would restart a healthy pod).
pub(crate) const PROBE_PATHS: [&str; 2] = ["/-/healthy", "/-/ready"];

async fn authenticate(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let settings = gate.web.current();
    let needs_credentials =
        settings.users.enabled() && !PROBE_PATHS.contains(&request.uri().path());
    let verdict = if needs_credentials {
        settings.users.check(request.headers(), &gate.bcrypt_turns).await
    } else {
        Verdict::Allowed
    };
    let mut response = match verdict {
        Verdict::Allowed => next.run(request).await,
        Verdict::Refused => {
            let mut refused = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
            refused.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"wolkvox_exporter\""),
            );
            refused
        }
        // Not "wrong password": the password was not checked, and a later try may be.
        Verdict::Busy(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    };
    for (name, value) in &settings.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// Serves until `shutdown` resolves, then lets open requests finish (10 s at most).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    web: Arc<Web>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let service = TowerToHyperService::new(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let connections =
        (limits.max_connections > 0).then(|| Arc::new(Semaphore::new(limits.max_connections)));
    tokio::pin!(shutdown);
    loop {
        // A slot before the next accept: past the cap, connections wait in the kernel's queue
        // (and idle ones end within the header-read timeout), as Go's LimitListener does.
        let slot = match &connections {
            Some(slots) => tokio::select! {
                slot = slots.clone().acquire_owned() => Some(slot.expect("the semaphore is never closed")),
                () = &mut shutdown => break,
            },
            None => None,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, usually: wait instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let tls = web.current().tls.clone();
        let (service, http, watcher, handshake) =
            (service.clone(), http.clone(), graceful.watcher(), limits.tls_handshake_timeout);
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => {
                    let _ =
                        watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await;
                }
                Some(config) => {
                    // One time limit for the first byte and the whole handshake.
                    let accepted = tokio::time::timeout(handshake, async {
                        if sends_plain_http(&stream).await {
                            refuse_plain_http(stream).await;
                            return None;
                        }
                        Some(tokio_rustls::TlsAcceptor::from(config).accept(stream).await)
                    })
                    .await;
                    match accepted {
                        Ok(Some(Ok(tls_stream))) => {
                            let _ = watcher
                                .watch(http.serve_connection(TokioIo::new(tls_stream), service))
                                .await;
                        }
                        Ok(Some(Err(error))) => tracing::debug!(%error, "TLS handshake failed"),
                        Ok(None) => {}
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

/// Descriptors kept for everything but connections: the state directory (whose ledger must always
/// open, or its token makes no call), the calls to Wolkvox, the runtime's own.
const RESERVED_DESCRIPTORS: usize = 64;

/// `wanted` connections, or fewer if the process's descriptor limit (`ulimit -n`) leaves room for
/// fewer: idle connections must never take the descriptors that the rest needs. 0 (no cap) stays.
pub(crate) fn connections_within_descriptors(wanted: usize) -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits.lines().find_map(|l| {
        l.strip_prefix("Max open files")?.split_whitespace().next()?.parse::<usize>().ok()
    });
    let Some(soft) = soft else { return wanted };
    let room = soft.saturating_sub(RESERVED_DESCRIPTORS).max(soft / 2);
    if wanted > room {
        tracing::warn!(
            wanted,
            descriptors = soft,
            connections = room,
            "--web.max-connections is more than the file descriptor limit leaves room for: raise the limit (LimitNOFILE, ulimit -n) to allow more"
        );
        return room;
    }
    wanted
}

/// A TLS connection opens with a handshake record (0x16); an HTTP request with a method name.
async fn sends_plain_http(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_uppercase())
}

/// What Go's servers answer, so a misconfigured scrape says what is wrong.
async fn refuse_plain_http(mut stream: TcpStream) {
    let body = "Client sent an HTTP request to an HTTPS server.\n";
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
