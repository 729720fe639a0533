//! The HTTP server around the router: the exporter-toolkit web configuration file (TLS, mTLS,
//! basic auth, security headers), reloaded without a restart, and limits that keep slow or idle
//! clients from stopping other scrapes.

pub mod auth;
pub mod config;
pub mod server;

pub use config::WebSettings;
pub use server::{Limits, Web};
