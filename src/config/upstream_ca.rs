//! The CA certificates the Wolkvox client trusts besides the system's (`--wolkvox.ca-file`).

use std::path::{Path, PathBuf};

/// Why a CA file cannot be used; each message names the file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CaFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    NotPem { path: PathBuf, source: reqwest::Error },
    #[error("{} holds no PEM certificate", path.display())]
    Empty { path: PathBuf },
}

/// Hundreds of certificates; a CA bundle of a whole system is about 200 KiB.
const MAX_CA_FILE_BYTES: u64 = 16 << 20;

/// The certificates of a PEM file.
pub(crate) fn ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, CaFileError> {
    let pem = crate::storage::read_file::read_regular_file(path, MAX_CA_FILE_BYTES)
        .map_err(|source| CaFileError::Read { path: path.to_owned(), source })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|source| CaFileError::NotPem { path: path.to_owned(), source })?;
    if certificates.is_empty() {
        return Err(CaFileError::Empty { path: path.to_owned() });
    }
    Ok(certificates)
}
