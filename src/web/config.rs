//! The web configuration file, in prometheus/exporter-toolkit's format so that operators can reuse
//! theirs: `tls_server_config`, `http_server_config.headers` and `basic_auth_users`. Relative
//! paths are relative to the file's folder, as in exporter-toolkit. Every error names the field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

use super::auth::Users;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebFile {
    tls_server_config: Option<TlsFile>,
    http_server_config: Option<HttpFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    // Accepted so that exporter-toolkit files load; rustls picks its own safe suites and groups.
    #[allow(dead_code)]
    cipher_suites: Option<Vec<String>>,
    #[allow(dead_code)]
    curve_preferences: Option<Vec<String>>,
    #[allow(dead_code)]
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    #[allow(dead_code)]
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// A loaded, validated web configuration.
pub struct WebSettings {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub users: Arc<Users>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The files whose change means a reload: the configuration itself and those it names.
    pub watched: Vec<PathBuf>,
}

impl WebSettings {
    /// No file: plain HTTP, no authentication, no extra headers.
    pub fn plain() -> WebSettings {
        WebSettings { tls: None, users: Arc::new(Users::none()), headers: Vec::new(), watched: Vec::new() }
    }

    pub fn load(path: &Path) -> Result<WebSettings, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: WebFile = serde_norway::from_str(&text).map_err(|e| e.to_string())?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut watched = vec![path.to_owned()];
        let tls = match file.tls_server_config {
            Some(tls) => Some(Arc::new(tls_config(tls, dir, &mut watched)?)),
            None => None,
        };
        let users = Users::new(file.basic_auth_users.unwrap_or_default())?;
        let headers = headers(file.http_server_config.and_then(|h| h.headers).unwrap_or_default())?;
        Ok(WebSettings { tls, users: Arc::new(users), headers, watched })
    }
}

impl fmt::Debug for WebSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSettings")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.names())
            .field("headers", &self.headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

fn tls_config(tls: TlsFile, dir: &Path, watched: &mut Vec<PathBuf>) -> Result<rustls::ServerConfig, String> {
    if tls.cert.is_some() || tls.key.is_some() {
        return Err("tls_server_config.cert / key: inline certificates are not supported; use cert_file and key_file".to_owned());
    }
    if tls.client_allowed_sans.is_some() {
        return Err("tls_server_config.client_allowed_sans: not supported; trust only the client CA you mean".to_owned());
    }
    let cert_path = dir.join(tls.cert_file.ok_or("tls_server_config.cert_file: required")?);
    let key_path = dir.join(tls.key_file.ok_or("tls_server_config.key_file: required")?);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("tls_server_config.cert_file: {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("tls_server_config.cert_file: {} holds no certificate", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| format!("tls_server_config.key_file: {}: {e}", key_path.display()))?;
    watched.extend([cert_path, key_path]);

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions = versions(tls.min_version.as_deref(), tls.max_version.as_deref())?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;

    let auth_type = tls.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match (auth_type, tls.client_ca_file) {
        ("NoClientCert", None) => builder.with_no_client_auth(),
        ("NoClientCert", Some(_)) => {
            return Err(
                "tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert (use RequireAndVerifyClientCert)".to_owned()
            );
        }
        (kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven"), Some(ca)) => {
            let ca_path = dir.join(ca);
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&ca_path)
                .map_err(|e| format!("tls_server_config.client_ca_file: {}: {e}", ca_path.display()))?
            {
                let cert = cert.map_err(|e| format!("tls_server_config.client_ca_file: {}: {e}", ca_path.display()))?;
                roots.add(cert).map_err(|e| format!("tls_server_config.client_ca_file: {}: {e}", ca_path.display()))?;
            }
            watched.push(ca_path);
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if kind == "VerifyClientCertIfGiven" { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?)
        }
        ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven", None) => {
            return Err(format!("tls_server_config.client_ca_file: required with client_auth_type {auth_type}"));
        }
        (other, _) => {
            return Err(format!(
                "tls_server_config.client_auth_type: {other:?} is not supported (NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            ));
        }
    };
    let mut config =
        builder.with_single_cert(certs, key).map_err(|e| format!("tls_server_config.key_file: does not match the certificate: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// exporter-toolkit's names; rustls speaks TLS 1.2 and 1.3 only, so a lower minimum means 1.2.
fn versions(min: Option<&str>, max: Option<&str>) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |field: &str, name: &str| match name {
        "TLS10" | "TLS11" | "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        other => Err(format!("tls_server_config.{field}: {other:?} is not one of TLS10, TLS11, TLS12, TLS13")),
    };
    let min = min.map(|v| rank("min_version", v)).transpose()?.unwrap_or(12);
    let max = match max {
        Some("TLS10" | "TLS11") => {
            return Err("tls_server_config.max_version: below TLS12, which is the lowest version supported".to_owned());
        }
        Some(v) => rank("max_version", v)?,
        None => 13,
    };
    if min > max {
        return Err("tls_server_config: min_version is above max_version".to_owned());
    }
    Ok([(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, p)| p)
        .collect())
}

/// The security headers exporter-toolkit allows, with the values it allows.
fn headers(configured: BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    configured
        .into_iter()
        .map(|(name, value)| {
            let field = format!("http_server_config.headers.{name}");
            let allowed = match name.to_ascii_lowercase().as_str() {
                "strict-transport-security" | "content-security-policy" | "x-xss-protection" => true,
                "x-frame-options" => matches!(value.to_ascii_lowercase().as_str(), "deny" | "sameorigin"),
                "x-content-type-options" => value.eq_ignore_ascii_case("nosniff"),
                _ => return Err(format!("{field}: not one of the allowed security headers (Strict-Transport-Security, Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, X-XSS-Protection)")),
            };
            if !allowed {
                return Err(format!("{field}: {value:?} is not an allowed value"));
            }
            let name = HeaderName::try_from(name.as_str()).map_err(|e| format!("{field}: {e}"))?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|e| format!("{field}: {e}"))?;
            Ok((name, value))
        })
        .collect()
}
