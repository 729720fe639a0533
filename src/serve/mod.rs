//! Serving what the lanes recorded: the store and its published bytes, the `/metrics` render, the
//! landing page and the router. Nothing here can reach the Wolkvox API.

pub(crate) mod exposition;
pub mod gzip;
mod landing;
pub mod metrics;
pub mod router;
pub mod store;
pub mod target_state;
