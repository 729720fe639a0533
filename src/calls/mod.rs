//! Calls to Wolkvox: when each may be made ([`admission`], pure rules), what has been called
//! ([`ledger`], a token's ledger in memory and on disk) and the lanes that make them ([`lanes`],
//! one per token).

pub mod admission;
pub mod lanes;
pub(crate) mod ledger;
