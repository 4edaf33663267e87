//! TLS for the API: a rustls server configuration (the `ring` provider, TLS 1.2 and 1.3,
//! HTTP/1.1 by ALPN) built from a PEM certificate chain and a PEM private key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or the key could not be used. Messages name files, never key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or is not PEM.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("{0}: no PEM certificate in this file")]
    NoCertificate(PathBuf),
    /// The key file holds no private key section.
    #[error("{0}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in this file")]
    NoPrivateKey(PathBuf),
    /// rustls refused the pair (unsupported key type, key that does not match, ...).
    #[error("the TLS certificate and key cannot be used together: {0}")]
    Rejected(String),
}

/// Builds the acceptor for the API from the PEM files `cert` (the chain, leaf first) and `key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain = certificates(cert)?;
    let private_key = private_key(key)?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Rejected(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|error| TlsError::Rejected(error.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let unreadable = |error: tokio_rustls::rustls::pki_types::pem::Error| TlsError::Unreadable {
        path: path.to_path_buf(),
        reason: error.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(chain)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use tokio_rustls::rustls::pki_types::pem::Error;
    PrivateKeyDer::from_pem_file(path).map_err(|error| match error {
        Error::NoItemsFound => TlsError::NoPrivateKey(path.to_path_buf()),
        Error::Io(io) => TlsError::Unreadable {
            path: path.to_path_buf(),
            reason: io.to_string(),
        },
        // Other PEM errors could quote a line of the file: say only that it is not PEM.
        _ => TlsError::Unreadable {
            path: path.to_path_buf(),
            reason: "not a valid PEM file".to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn write_pair(dir: &Path) -> Result<(PathBuf, PathBuf), Box<dyn std::error::Error>> {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, generated.cert.pem())?;
        std::fs::write(&key, generated.signing_key.serialize_pem())?;
        Ok((cert, key))
    }

    #[test]
    fn a_generated_pair_loads() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (cert, key) = write_pair(dir.path())?;
        let acceptor = acceptor(&cert, &key)?;
        assert_eq!(acceptor.config().alpn_protocols, vec![b"http/1.1".to_vec()]);
        Ok(())
    }

    #[test]
    fn missing_or_swapped_files_say_which() -> TestResult {
        let dir = tempfile::tempdir()?;
        let (cert, key) = write_pair(dir.path())?;
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            acceptor(&missing, &key),
            Err(TlsError::Unreadable { path, .. }) if path == missing
        ));
        assert!(matches!(
            acceptor(&key, &key),
            Err(TlsError::NoCertificate(path)) if path == key
        ));
        assert!(matches!(
            acceptor(&cert, &cert),
            Err(TlsError::NoPrivateKey(path)) if path == cert
        ));
        let other = rcgen::generate_simple_self_signed(vec!["other".to_string()])?;
        let other_key = dir.path().join("other-key.pem");
        std::fs::write(&other_key, other.signing_key.serialize_pem())?;
        assert!(matches!(
            acceptor(&cert, &other_key),
            Err(TlsError::Rejected(_))
        ));
        Ok(())
    }
}
