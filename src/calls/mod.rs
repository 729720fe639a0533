//! Calls to Wolkvox. Read [`driver`] first: it is the one loop that makes calls (decide, wait,
//! call, record), for the exporter's lanes, the backfill and its dry run alike. Around it:
//!
//! - [`admission`]: the pure rules of when a token may call (the floor, one call at a time, the
//!   spread, the budget, what each failure means);
//! - [`ledger`]: what a token has done, in memory and on disk, shared by every process on a state
//!   directory;
//! - [`jobs`]: a token's jobs and rules from the configuration, and the job keys of the ledger;
//! - [`lanes`]: the exporter's lanes, one per token, which take each outcome to the store.

pub mod admission;
pub(crate) mod driver;
pub(crate) mod jobs;
pub mod lanes;
pub(crate) mod ledger;
