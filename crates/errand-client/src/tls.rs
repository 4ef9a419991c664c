//! HTTPS to errand: rustls over the `ring` provider, trusting Mozilla's roots (compiled in,
//! the same on every host) and, for a server whose certificate a private CA signed (or a
//! self-signed one), the PEM file that `ERRAND_CA_CERT` names.

use std::sync::Arc;

use tokio_rustls::rustls;

use crate::ClientError;

/// The variable naming a PEM file of extra CA certificates to trust.
pub const CA_CERT_ENV: &str = "ERRAND_CA_CERT";

/// The TLS settings of a client: public roots, plus `ERRAND_CA_CERT`'s when it is set.
///
/// # Errors
/// `CaCert` when the file cannot be read or holds no usable certificate.
pub(crate) fn client_config() -> Result<rustls::ClientConfig, ClientError> {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = std::env::var_os(CA_CERT_ENV).filter(|p| !p.is_empty()) {
        let shown = path.to_string_lossy().into_owned();
        let ca_error = |reason: String| ClientError::CaCert {
            path: shown.clone(),
            reason,
        };
        let pem = std::fs::read(&path).map_err(|e| ca_error(e.to_string()))?;
        let mut found = 0;
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls::pki_types::CertificateDer<'static> =
                cert.map_err(|e| ca_error(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| ca_error(format!("not a usable CA certificate: {e}")))?;
            found += 1;
        }
        if found == 0 {
            return Err(ca_error("holds no PEM certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::CaCert {
            path: String::new(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
