//! Starts the pieces (simulator in demo mode, lanes, renderer, HTTP server) and stops them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::calls::lanes;
use crate::clock::Clock;
use crate::config::Config;
use crate::serve::router;
use crate::serve::store::Store;
use crate::simulator::Simulator;
use crate::storage::{Role, Storage, StorageError};
use crate::web;
use crate::web::{Limits, Web};
use crate::wolkvox::Client;

/// Beyond a call's timeout, for its end to be recorded in the state directory.
const CALL_END_MARGIN: Duration = Duration::from_secs(5);

/// Why the exporter could not start, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// `--demo`: the embedded simulator could not listen.
    #[error("cannot start the demo simulator: {0}")]
    Simulator(#[source] std::io::Error),
    /// `--web.listen-address` could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address as given.
        address: String,
        /// Why not.
        source: std::io::Error,
    },
    /// The bound socket could not say its address.
    #[error("cannot read the listen address: {0}")]
    ListenAddress(#[source] std::io::Error),
    /// The Wolkvox client could not be built (its TLS set-up, the CAs of `--wolkvox.ca-file`).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// An unusable or locked `--storage.path`: a configuration problem (exit code 2).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A lane, the renderer or the server panicked.
    #[error("a background task panicked")]
    BackgroundPanicked,
    /// A lane, the renderer or the server ended, which none of them does on its own.
    #[error("a background task ended")]
    BackgroundEnded,
}

/// A running exporter. Dropping it without [`Exporter::stop`] aborts everything.
pub struct Exporter {
    addr: SocketAddr,
    store: Arc<Store>,
    /// One task per token: asked to stop, each ends its call in flight first.
    lanes: JoinSet<()>,
    stopping: watch::Sender<bool>,
    /// How long a call in flight may still take: the longest call timeout.
    longest_call: Duration,
    background: JoinSet<()>,
    server: JoinHandle<()>,
    shutdown: Option<oneshot::Sender<()>>,
    simulator: Option<Simulator>,
}

impl Exporter {
    /// Binds the listen address and starts polling, on the system's clock. In demo mode the
    /// simulator is started first and the target pointed at it.
    pub async fn start(config: Config) -> Result<Exporter, ExporterError> {
        Exporter::start_with_clock(config, Clock::system()).await
    }

    /// The same on a clock of the caller's (tests start it at a date of their choosing).
    pub async fn start_with_clock(
        mut config: Config,
        clock: Clock,
    ) -> Result<Exporter, ExporterError> {
        let simulator =
            Simulator::for_demo(&mut config, &clock).await.map_err(ExporterError::Simulator)?;
        let listener = TcpListener::bind(&config.listen_address).await.map_err(|source| {
            ExporterError::Listen { address: config.listen_address.clone(), source }
        })?;
        let addr = listener.local_addr().map_err(ExporterError::ListenAddress)?;

        let storage = match &config.storage_path {
            Some(path) => Some(Arc::new(Storage::open(path, Role::Exporter, clock.clone())?)),
            None => None,
        };
        let (lanes, store) =
            lanes::plan(&config.targets, &config.contracts, clock.clone(), storage);
        let client =
            Arc::new(Client::new(config.ca_certificates.clone()).map_err(ExporterError::Client)?);
        let mut background = JoinSet::new();
        background.spawn(store.clone().render_forever());
        let (stopping, stop) = watch::channel(false);
        let longest_call = config.targets.iter().map(|t| t.timeout).max().unwrap_or_default();
        let mut running_lanes = JoinSet::new();
        for lane in lanes {
            running_lanes.spawn(lanes::run_lane(
                client.clone(),
                lane,
                store.clone(),
                clock.clone(),
                stop.clone(),
            ));
        }

        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        let web = Web::new(config.web_config_file.clone(), config.web.clone());
        if web.has_file() {
            background.spawn(web.clone().watch_forever());
        }
        let limits = Limits {
            max_requests: config.max_requests,
            max_connections: web::server::connections_within_descriptors(config.max_connections),
            ..Limits::default()
        };
        let router = web::server::protect(
            router::router(store.clone(), &config.telemetry_path),
            web.clone(),
            &limits,
        );
        let (shutdown, stopped) = oneshot::channel::<()>();
        let tls = web.current().tls.is_some();
        let server = tokio::spawn(web::server::serve(listener, router, web, limits, async {
            let _ = stopped.await;
        }));
        tracing::info!(address = %addr, tls, targets = config.targets.len(), telemetry_path = %config.telemetry_path, "listening");
        if let Some(simulator) = &simulator {
            tracing::info!(simulator = %simulator.base_url(), metrics = %format!("http://{}{}", local_url(addr), config.telemetry_path), "demo mode: polling the embedded simulator");
        }
        Ok(Exporter {
            addr,
            store,
            lanes: running_lanes,
            stopping,
            longest_call,
            background,
            server,
            shutdown: Some(shutdown),
            simulator,
        })
    }

    /// The address it listens on (the port chosen, if 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the lanes recorded and `/metrics` serves.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The embedded simulator, in demo mode.
    pub fn simulator(&self) -> Option<&Simulator> {
        self.simulator.as_ref()
    }

    /// Returns only if a lane or the renderer ended, which only a bug can cause: better to exit
    /// and be restarted than to serve a snapshot that never changes again.
    pub async fn background_ended(&mut self) -> ExporterError {
        let ended = tokio::select! {
            ended = self.background.join_next() => ended,
            ended = self.lanes.join_next() => ended,
        };
        match ended {
            Some(Err(error)) if error.is_panic() => ExporterError::BackgroundPanicked,
            _ => ExporterError::BackgroundEnded,
        }
    }

    /// Stops polling (a call in flight ends and is recorded first, within its timeout), lets
    /// in-flight scrapes finish, and closes the listener.
    pub async fn stop(mut self) {
        let _ = self.stopping.send(true);
        let lanes_done = async { while self.lanes.join_next().await.is_some() {} };
        if tokio::time::timeout(self.longest_call + CALL_END_MARGIN, lanes_done).await.is_err() {
            self.lanes.abort_all();
        }
        self.background.abort_all();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.server).await;
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Runs until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), ExporterError> {
    let mut exporter = Exporter::start(config).await?;
    let result = tokio::select! {
        () = shutdown_signal() => Ok(()),
        why = exporter.background_ended() => Err(why),
    };
    tracing::info!("shutting down");
    exporter.stop().await;
    result
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// A clickable address: 0.0.0.0 becomes localhost.
fn local_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() { format!("localhost:{}", addr.port()) } else { addr.to_string() }
}
