//! The web configuration file, in prometheus/exporter-toolkit's format so that operators can reuse
//! theirs: `tls_server_config`, `http_server_config.headers` and `basic_auth_users`. Relative
//! paths are relative to the file's folder, as in exporter-toolkit. Every error names the field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

use super::auth::{Users, UsersError};

/// A web configuration is a few dozen lines; the bound keeps a wrong path from eating memory.
const MAX_WEB_CONFIG_BYTES: u64 = 1 << 20;
/// A certificate chain, a key or a CA bundle (a whole system's is about 200 KiB).
const MAX_PEM_BYTES: u64 = 16 << 20;

/// Why a web configuration file cannot be used. Each message names the field at fault
/// (`tls_server_config.cert_file: ...`); the flag and the file are named by the caller.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// Nothing but blank lines or comments: a file not written yet, or cut short, rather than a
    /// decision to drop TLS and basic auth, which `{}` states.
    #[error(
        "holds no settings (empty, or only comments); write {{}} to serve without TLS and basic auth on purpose"
    )]
    Empty,
    /// Not YAML, or an unknown or mistyped key: the parser's message names it.
    #[error("{0}")]
    Syntax(#[from] serde_norway::Error),
    #[error(
        "tls_server_config.cert / key: inline certificates are not supported; use cert_file and key_file"
    )]
    InlineCertificate,
    #[error(
        "tls_server_config.client_allowed_sans: not supported; trust only the client CA you mean"
    )]
    ClientAllowedSans,
    /// `cert_file` or `key_file` is missing.
    #[error("tls_server_config.{0}: required")]
    Required(&'static str),
    /// A PEM file named by `field` cannot be read or parsed.
    #[error("tls_server_config.{field}: {}: {source}", path.display())]
    Pem { field: &'static str, path: PathBuf, source: PemError },
    #[error("tls_server_config.cert_file: {} holds no certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error("tls_server_config.client_ca_file: {}: {source}", path.display())]
    ClientCa { path: PathBuf, source: rustls::Error },
    #[error("tls_server_config.client_ca_file: {0}")]
    ClientVerifier(rustls::server::VerifierBuilderError),
    #[error(
        "tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert (use RequireAndVerifyClientCert)"
    )]
    ClientCaWithoutClientAuth,
    #[error("tls_server_config.client_ca_file: required with client_auth_type {0}")]
    ClientCaRequired(String),
    #[error(
        "tls_server_config.client_auth_type: {0:?} is not supported (NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
    )]
    ClientAuthType(String),
    /// `min_version` or `max_version` is not a version name.
    #[error("tls_server_config.{field}: {value:?} is not one of TLS10, TLS11, TLS12, TLS13")]
    UnknownVersion { field: &'static str, value: String },
    #[error("tls_server_config.max_version: below TLS12, which is the lowest version supported")]
    MaxVersionTooLow,
    #[error("tls_server_config: min_version is above max_version")]
    VersionsReversed,
    #[error("tls_server_config: {0}")]
    Versions(rustls::Error),
    #[error("tls_server_config.key_file: does not match the certificate: {0}")]
    KeyMismatch(rustls::Error),
    #[error(
        "http_server_config.headers.{name}: not one of the allowed security headers (Strict-Transport-Security, Content-Security-Policy, X-Frame-Options, X-Content-Type-Options, X-XSS-Protection)"
    )]
    HeaderNotAllowed { name: String },
    #[error("http_server_config.headers.{name}: {value:?} is not an allowed value")]
    HeaderValueNotAllowed { name: String, value: String },
    #[error("http_server_config.headers.{name}: {source}")]
    HeaderName { name: String, source: axum::http::header::InvalidHeaderName },
    #[error("http_server_config.headers.{name}: {source}")]
    HeaderValue { name: String, source: axum::http::header::InvalidHeaderValue },
    #[error(transparent)]
    Users(#[from] UsersError),
}

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

/// How firmly clients must show a certificate, from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClientCertificates {
    NotAsked,
    VerifiedIfGiven,
    Required,
}

/// A loaded, validated web configuration.
pub struct WebSettings {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub client_certificates: ClientCertificates,
    pub users: Arc<Users>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The files whose change means a reload: the configuration itself and those it names.
    pub watched: Vec<PathBuf>,
}

impl WebSettings {
    /// No file: plain HTTP, no authentication, no extra headers.
    pub fn plain() -> WebSettings {
        WebSettings {
            tls: None,
            client_certificates: ClientCertificates::NotAsked,
            users: Arc::new(Users::none()),
            headers: Vec::new(),
            watched: Vec::new(),
        }
    }

    pub fn load(path: &Path) -> Result<WebSettings, WebConfigError> {
        let text = crate::storage::read_file::read_regular_text(path, MAX_WEB_CONFIG_BYTES)
            .map_err(|source| WebConfigError::Read { path: path.to_owned(), source })?;
        let file: WebFile =
            serde_norway::from_str::<Option<WebFile>>(&text)?.ok_or(WebConfigError::Empty)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut watched = vec![path.to_owned()];
        let (tls, client_certificates) = match file.tls_server_config {
            Some(tls) => {
                let (config, client_certificates) = tls_config(tls, dir, &mut watched)?;
                (Some(Arc::new(config)), client_certificates)
            }
            None => (None, ClientCertificates::NotAsked),
        };
        let users = Users::new(file.basic_auth_users.unwrap_or_default())?;
        let headers = headers(file.http_server_config.and_then(|h| h.headers).unwrap_or_default())?;
        Ok(WebSettings { tls, client_certificates, users: Arc::new(users), headers, watched })
    }

    /// Neither TLS nor basic auth: anyone who reaches the port reads everything.
    pub fn unprotected(&self) -> bool {
        self.tls.is_none() && !self.users.enabled()
    }

    /// The protections these settings give that `next` does not, by name.
    pub fn protections_removed_by(&self, next: &WebSettings) -> Vec<&'static str> {
        let mut removed = Vec::new();
        if self.tls.is_some() && next.tls.is_none() {
            removed.push("TLS");
        }
        if next.client_certificates < self.client_certificates {
            removed.push(match next.client_certificates {
                ClientCertificates::VerifiedIfGiven => "required client certificates",
                _ => "client certificates",
            });
        }
        if self.users.enabled() && !next.users.enabled() {
            removed.push("basic auth");
        }
        removed
    }
}

impl fmt::Debug for WebSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSettings")
            .field("tls", &self.tls.is_some())
            .field("client_certificates", &self.client_certificates)
            .field("users", &self.users.names())
            .field(
                "headers",
                &self.headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn tls_config(
    tls: TlsFile,
    dir: &Path,
    watched: &mut Vec<PathBuf>,
) -> Result<(rustls::ServerConfig, ClientCertificates), WebConfigError> {
    if tls.cert.is_some() || tls.key.is_some() {
        return Err(WebConfigError::InlineCertificate);
    }
    if tls.client_allowed_sans.is_some() {
        return Err(WebConfigError::ClientAllowedSans);
    }
    let cert_path = dir.join(tls.cert_file.ok_or(WebConfigError::Required("cert_file"))?);
    let key_path = dir.join(tls.key_file.ok_or(WebConfigError::Required("key_file"))?);
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&pem_file("cert_file", &cert_path)?)
            .collect::<Result<_, _>>()
            .map_err(pem_error("cert_file", &cert_path))?;
    if certs.is_empty() {
        return Err(WebConfigError::NoCertificate { path: cert_path });
    }
    let key = PrivateKeyDer::from_pem_slice(&pem_file("key_file", &key_path)?)
        .map_err(pem_error("key_file", &key_path))?;
    watched.extend([cert_path, key_path]);

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions = versions(tls.min_version.as_deref(), tls.max_version.as_deref())?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(WebConfigError::Versions)?;

    let auth_type = tls.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let client_certificates = match auth_type {
        "RequireAndVerifyClientCert" => ClientCertificates::Required,
        "VerifyClientCertIfGiven" => ClientCertificates::VerifiedIfGiven,
        _ => ClientCertificates::NotAsked,
    };
    let builder = match (auth_type, tls.client_ca_file) {
        ("NoClientCert", None) => builder.with_no_client_auth(),
        ("NoClientCert", Some(_)) => return Err(WebConfigError::ClientCaWithoutClientAuth),
        (kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven"), Some(ca)) => {
            let ca_path = dir.join(ca);
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem_file("client_ca_file", &ca_path)?) {
                let cert = cert.map_err(pem_error("client_ca_file", &ca_path))?;
                roots
                    .add(cert)
                    .map_err(|source| WebConfigError::ClientCa { path: ca_path.clone(), source })?;
            }
            watched.push(ca_path);
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if kind == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier.build().map_err(WebConfigError::ClientVerifier)?,
            )
        }
        ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven", None) => {
            return Err(WebConfigError::ClientCaRequired(auth_type.to_owned()));
        }
        (other, _) => return Err(WebConfigError::ClientAuthType(other.to_owned())),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(WebConfigError::KeyMismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, client_certificates))
}

/// A PEM file the configuration names, read as every file an operator names is (a regular file,
/// without waiting on a FIFO, within a bound): a reload must not hang on it or fill memory.
fn pem_file(field: &'static str, path: &Path) -> Result<Vec<u8>, WebConfigError> {
    crate::storage::read_file::read_regular_file(path, MAX_PEM_BYTES)
        .map_err(|error| pem_error(field, path)(PemError::Io(error)))
}

/// For `map_err` on reading the PEM file `path`, named by `field`.
fn pem_error(field: &'static str, path: &Path) -> impl FnOnce(PemError) -> WebConfigError + use<> {
    let path = path.to_owned();
    move |source| WebConfigError::Pem { field, path, source }
}

/// exporter-toolkit's names; rustls speaks TLS 1.2 and 1.3 only, so a lower minimum means 1.2.
fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, WebConfigError> {
    let rank = |field: &'static str, name: &str| match name {
        "TLS10" | "TLS11" | "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        other => Err(WebConfigError::UnknownVersion { field, value: other.to_owned() }),
    };
    let min = min.map(|v| rank("min_version", v)).transpose()?.unwrap_or(12);
    let max = match max {
        Some("TLS10" | "TLS11") => return Err(WebConfigError::MaxVersionTooLow),
        Some(v) => rank("max_version", v)?,
        None => 13,
    };
    if min > max {
        return Err(WebConfigError::VersionsReversed);
    }
    Ok([(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, p)| p)
        .collect())
}

/// The security headers exporter-toolkit allows, with the values it allows.
fn headers(
    configured: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    configured
        .into_iter()
        .map(|(name, value)| {
            let allowed = match name.to_ascii_lowercase().as_str() {
                "strict-transport-security" | "content-security-policy" | "x-xss-protection" => {
                    true
                }
                "x-frame-options" => {
                    matches!(value.to_ascii_lowercase().as_str(), "deny" | "sameorigin")
                }
                "x-content-type-options" => value.eq_ignore_ascii_case("nosniff"),
                _ => return Err(WebConfigError::HeaderNotAllowed { name }),
            };
            if !allowed {
                return Err(WebConfigError::HeaderValueNotAllowed { name, value });
            }
            let header_name = HeaderName::try_from(name.as_str())
                .map_err(|source| WebConfigError::HeaderName { name: name.clone(), source })?;
            let header_value = HeaderValue::try_from(value.as_str())
                .map_err(|source| WebConfigError::HeaderValue { name, source })?;
            Ok((header_name, header_value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_settings_is_refused_but_an_empty_mapping_is_not() {
        let dir = std::env::temp_dir().join(format!(
            "wolkvox-web-empty-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.yml");
        for text in ["", " \n\n", "# to be written\n", "---\n"] {
            std::fs::write(&path, text).unwrap();
            assert!(matches!(WebSettings::load(&path), Err(WebConfigError::Empty)), "{text:?}");
        }
        std::fs::write(&path, "{}\n").unwrap();
        let settings = WebSettings::load(&path).unwrap();
        assert!(settings.unprotected());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_certificate_or_key_that_is_a_device_or_a_fifo_is_refused_naming_the_field() {
        let dir = std::env::temp_dir().join(format!(
            "wolkvox-web-pem-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(dir.join("key.pem"))
                .status()
                .unwrap()
                .success()
        );
        let path = dir.join("web.yml");
        // /dev/zero would fill memory, and a FIFO nobody writes would hold the reload for ever.
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
        for (cert, field) in [("/dev/zero", "cert_file"), ("cert.pem", "key_file")] {
            std::fs::write(
                &path,
                format!("tls_server_config:\n  cert_file: {cert}\n  key_file: key.pem\n"),
            )
            .unwrap();
            let error = WebSettings::load(&path).expect_err("refused").to_string();
            assert!(error.starts_with(&format!("tls_server_config.{field}:")), "{error}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
