//! Everything that speaks the Wolkvox billing API: one request, its date window, its tolerant
//! decoding and the classification of its failures.

pub mod catalogue;
pub mod client;
pub(crate) mod dates;
pub mod failure;
pub mod model;
pub(crate) mod token_info;
pub mod window;

pub use catalogue::Api;
pub use client::Client;
pub use failure::{Consequence, Failure, Reason};
pub use model::{Report, SkipReason};
pub use token_info::TokenInfo;
