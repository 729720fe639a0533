//! wolkvox_exporter: a background poller for the Wolkvox billing API and a Prometheus
//! endpoint that serves the cached result.
//!
//! ```text
//! config -> calls (one lane per token: admission, ledger) -> wolkvox (client, decode) -> serve::store
//! serve::store -> serve::metrics (once per poll) -> published bytes <- web + serve::router (/metrics)
//! storage: the ledgers and last answers a restart must not forget; backfill: history for promtool
//! ```

pub mod app;
pub mod backfill;
pub mod calls;
pub mod clock;
pub mod config;
pub mod logging;
pub mod serve;
pub mod simulator;
pub mod storage;
mod web;
pub mod wolkvox;

pub use app::Exporter;
pub use config::Config;
