//! wolkvox_exporter: a background poller for the Wolkvox billing API and a Prometheus endpoint
//! that serves the cached result. `docs/architecture.md` walks the data path:
//!
//! ```text
//! config -> calls (one lane per token: the call driver, admission, ledger) -> wolkvox (client,
//! decode) -> serve::store -> serve::metrics (once per poll) -> published bytes <- web (/metrics)
//! storage: what a restart must not forget; backfill: history for promtool; simulator: --demo
//! ```
//!
//! The public API is what the binary needs: start an [`Exporter`] (or [`run`] one until a
//! signal) from a [`Config`] built from [`Flags`], or run a [`backfill`]. The stages are
//! crate-private. With the `test-util` feature, which the crate's own dev-dependency turns on for
//! the integration tests and benches, the stages' modules are public too, and `unreachable_pub`,
//! judged in that build, keeps every other item `pub(crate)`.

// In a build without test-util the stages are private, and every `pub` in them is unreachable by
// design: the lint is judged in the test-util build, where `pub` is what the tests may use.
#![cfg_attr(not(feature = "test-util"), allow(unreachable_pub))]
// The stages' items are documented for the reader, not as an API: only the API must be.
#![cfg_attr(feature = "test-util", allow(missing_docs))]

// The stages: private, or public with `test-util`. Written out rather than made by a macro, so
// that rustfmt (which does not expand macros) finds their files.
#[cfg(feature = "test-util")]
pub mod app;
#[cfg(not(feature = "test-util"))]
mod app;
#[cfg(feature = "test-util")]
pub mod backfill;
#[cfg(not(feature = "test-util"))]
mod backfill;
#[cfg(feature = "test-util")]
pub mod calls;
#[cfg(not(feature = "test-util"))]
mod calls;
pub mod clock;
#[cfg(feature = "test-util")]
pub mod config;
#[cfg(not(feature = "test-util"))]
mod config;
mod logging;
#[cfg(feature = "test-util")]
pub mod serve;
#[cfg(not(feature = "test-util"))]
mod serve;
#[cfg(feature = "test-util")]
pub mod simulator;
#[cfg(not(feature = "test-util"))]
mod simulator;
#[cfg(feature = "test-util")]
pub mod storage;
#[cfg(not(feature = "test-util"))]
mod storage;
mod web;
#[cfg(feature = "test-util")]
pub mod wolkvox;
#[cfg(not(feature = "test-util"))]
mod wolkvox;

pub use app::{Exporter, ExporterError, run};
pub use backfill::{BackfillError, BackfillFlags, run_with_demo as backfill};
pub use clock::Clock;
pub use config::{Config, ConfigError, Flags};
pub use logging::init as init_logging;
