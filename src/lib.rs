//! wolkvox_exporter: a background poller for the Wolkvox billing API and a Prometheus
//! endpoint that serves the cached result.
//!
//! ```text
//! config -> targets -> one lane per token (poller) -> client -> decode -> store
//! store -> renderer (once per poll) -> published bytes <- /metrics (no API call, no lock)
//! ```

pub mod admission;
pub mod app;
pub mod backfill;
mod budget;
pub mod clock;
pub mod config;
mod config_error;
mod exposition;
pub mod gzip;
pub mod history;
pub mod http;
mod landing;
pub mod logging;
pub mod metrics;
pub mod openmetrics;
pub mod poller;
mod read_file;
pub mod simulator;
pub mod snapshot;
pub mod state;
pub mod storage;
mod tls;
mod token;
mod token_ledger;
mod web;
pub mod wolkvox;

pub use app::Exporter;
pub use config::Config;
