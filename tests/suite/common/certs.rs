//! Throwaway certificates for the TLS tests: a CA, a server certificate for localhost and
//! 127.0.0.1, and client certificates, written as PEM files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};

pub(crate) struct Authority {
    cert: Certificate,
    key: KeyPair,
}

/// PEM files of one certificate: `cert`, `key`, and the issuing CA's `ca`.
pub(crate) struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl Authority {
    pub(crate) fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Authority { cert, key }
    }

    /// A certificate for `names` (DNS names or IP addresses), written under `dir` as `stem`.pem.
    pub(crate) fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> Issued {
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let issued = Issued {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
            ca: dir.join(format!("{stem}-ca.crt")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        std::fs::write(&issued.ca, self.cert.pem()).unwrap();
        issued
    }

    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }
}
