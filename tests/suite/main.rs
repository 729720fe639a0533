//! The integration tests: one binary, one module per subject (a binary per file linked the whole
//! dependency tree sixteen times). `cargo test` runs them all; `cargo test --test suite web::` one
//! module. Helpers shared by the modules are in `common`.
//!
//! `wall_clock` holds the tests whose code under test takes the date from the system clock (a real
//! exporter, demo or backfill process): scripts/faketime-tests.sh runs those, and only those, again
//! at 23:59:52 on the last day of a month and of a year. Everything else takes the date from an
//! injected clock (`wolkvox_exporter::clock::Clock`), whatever the real time.

mod admission;
mod alerting;
mod billing;
mod cli;
mod common;
mod config;
mod dashboards;
mod deploy;
mod exporter;
mod hostile;
mod monitoring;
mod properties;
mod restarts;
mod scheduling;
mod secrets;
mod wall_clock;
mod web;
