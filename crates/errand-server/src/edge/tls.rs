//! HTTPS: the server's certificate chain and key from PEM files, as rustls (over `ring`)
//! wants them, offering only `http/1.1` by ALPN.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or key cannot be used; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The file cannot be read.
    #[error("TLS {what} {}: {source}", path.display())]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The file holds nothing usable of its kind.
    #[error("TLS {what} {}: {reason}", path.display())]
    Content {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, an unsupported
    /// key type).
    #[error("TLS certificate {} and key {}: {reason}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's words.
        reason: String,
    },
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The TLS acceptor for `cert` (PEM: the server's certificate first, then any
/// intermediates) and `key` (PEM: PKCS#8, RSA or SEC1).
///
/// # Errors
/// [`TlsConfigError`] naming the file that is missing, unreadable or unusable.
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsConfigError> {
    let content = |what, path: &Path, reason: String| TlsConfigError::Content {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let pem = read("certificate", cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content("certificate", cert, format!("not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(content(
            "certificate",
            cert,
            "no certificate in it (expected PEM `-----BEGIN CERTIFICATE-----` blocks)".into(),
        ));
    }
    let pem = read("key", key)?;
    let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        content(
            "key",
            key,
            format!("no private key in it (expected PEM PKCS#8, RSA or EC): {e}"),
        )
    })?;
    let pair = |reason: String| TlsConfigError::Pair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| pair(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(|e| pair(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
