//! PEM files named by the config, checked at load so a bad file is a clear config error
//! rather than a failure (or a panic inside a TLS library) at the first connection.

use pingora::protocols::tls::CaType;
use pingora::utils::tls::{parse_x509, WrappedX509};
use std::sync::Arc;

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read '{path}': {e}"))
}

fn certs(path: &str, pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let der = cert.map_err(|e| format!("'{path}': unreadable PEM: {e}"))?;
        if x509_parser::parse_x509_certificate(&der).is_err() {
            return Err(format!("'{path}': a certificate in it is not valid X.509"));
        }
        out.push(der.to_vec());
    }
    if out.is_empty() {
        return Err(format!("'{path}' holds no PEM certificate"));
    }
    Ok(out)
}

/// The CA certificates in a PEM file.
pub fn load_ca(path: &str) -> Result<Arc<CaType>, String> {
    let pem = read(path)?;
    let list: Vec<WrappedX509> = certs(path, &pem)?
        .into_iter()
        .map(|der| WrappedX509::new(der, parse_x509))
        .collect();
    Ok(Arc::from(list))
}

/// A certificate chain and its private key for a listener.
pub fn check_identity(cert_file: &str, key_file: &str) -> Result<(), String> {
    certs(cert_file, &read(cert_file)?)?;
    let key = read(key_file)?;
    match rustls_pemfile::private_key(&mut &key[..]) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("'{key_file}' holds no PEM private key")),
        Err(e) => Err(format!("'{key_file}': unreadable PEM: {e}")),
    }
}
