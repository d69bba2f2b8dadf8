//! PEM files named by the config, checked at load so a bad file is a clear config error
//! rather than a failure (or a panic inside a TLS library) at the first connection.

use std::sync::Arc;

/// A region's trusted CA certificates, DER-encoded, each checked to be valid X.509.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificates(pub Vec<Vec<u8>>);

/// What is wrong with a PEM file; every message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("cannot read '{path}': {why}")]
    Read { path: String, why: String },
    #[error("'{path}': unreadable PEM: {why}")]
    Unreadable { path: String, why: String },
    #[error("'{0}': a certificate in it is not valid X.509")]
    NotX509(String),
    #[error("'{0}' holds no PEM certificate")]
    NoCertificate(String),
    #[error("'{0}' holds no PEM private key")]
    NoKey(String),
}

fn read(path: &str) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|e| PemError::Read {
        path: path.into(),
        why: e.to_string(),
    })
}

fn certs(path: &str, pem: &[u8]) -> Result<Vec<Vec<u8>>, PemError> {
    let mut out = Vec::new();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let der = cert.map_err(|e| PemError::Unreadable {
            path: path.into(),
            why: e.to_string(),
        })?;
        if x509_parser::parse_x509_certificate(&der).is_err() {
            return Err(PemError::NotX509(path.into()));
        }
        out.push(der.to_vec());
    }
    if out.is_empty() {
        return Err(PemError::NoCertificate(path.into()));
    }
    Ok(out)
}

/// The CA certificates in a PEM file.
pub fn load_ca(path: &str) -> Result<Arc<CaCertificates>, PemError> {
    let pem = read(path)?;
    Ok(Arc::new(CaCertificates(certs(path, &pem)?)))
}

/// A certificate chain and its private key for a listener.
pub fn check_identity(cert_file: &str, key_file: &str) -> Result<(), PemError> {
    certs(cert_file, &read(cert_file)?)?;
    let key = read(key_file)?;
    match rustls_pemfile::private_key(&mut &key[..]) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(PemError::NoKey(key_file.into())),
        Err(e) => Err(PemError::Unreadable {
            path: key_file.into(),
            why: e.to_string(),
        }),
    }
}
