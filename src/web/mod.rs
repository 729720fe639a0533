//! The HTTP server around the router: the exporter-toolkit web configuration file (TLS, mTLS,
//! basic auth, security headers), reloaded without a restart, and limits that keep slow or idle
//! clients from stopping other scrapes.

pub(crate) mod auth;
pub(crate) mod config;
pub(crate) mod server;

pub(crate) use config::WebSettings;
pub(crate) use server::{Limits, Web};
