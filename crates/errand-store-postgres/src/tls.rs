//! TLS to PostgreSQL with rustls (the `ring` provider): libpq's `sslmode` and
//! `sslrootcert`, read from the store URL before the driver sees it (tokio-postgres knows
//! only `disable`, `prefer` and `require`, and refuses `sslrootcert`).
//!
//! | `sslmode` | encrypts | checks the certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `prefer` (the default) | when the server offers TLS | no |
//! | `require` | always (else the connection fails) | no; as `verify-ca` when `sslrootcert` is given (as libpq) |
//! | `verify-ca` | always | signed by a CA of `sslrootcert` |
//! | `verify-full` | always | signed by a CA of `sslrootcert` and naming the host of the URL |
//!
//! Every connection errand opens (the pool, the `LISTEN` connection, `errand export` and
//! `import`, the test kit) goes through [`pg_config`], so all of them honour the same URL.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::Config;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    verify_tls12_signature, verify_tls13_signature, CryptoProvider,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::connect_error::{self, ConnectError, PgTarget};

/// How a connection uses TLS: libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS always, without checking the certificate.
    Require,
    /// TLS always; the certificate must chain to a CA of `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    /// The name as a URL writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// The TLS parameters of a URL (or `key=value` connection string) and the rest of it.
struct Split {
    rest: String,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of `url` (the last one of each wins, as libpq).
fn split(url: &str) -> Split {
    let mut sslmode = None;
    let mut sslrootcert = None;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Split {
                rest: url.to_string(),
                sslmode,
                sslrootcert,
            };
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", v)) => sslmode = Some(percent_decode(v)),
                Some(("sslrootcert", v)) => sslrootcert = Some(percent_decode(v)),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Split {
            rest,
            sslmode,
            sslrootcert,
        };
    }
    // `host=... sslmode=require`: unquoted values only (errand's docs use URLs).
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", v)) => sslmode = Some(v.to_string()),
            Some(("sslrootcert", v)) => sslrootcert = Some(v.to_string()),
            _ => kept.push(word),
        }
    }
    Split {
        rest: kept.join(" "),
        sslmode,
        sslrootcert,
    }
}

/// `%2F` and friends decoded; a malformed escape is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The driver's settings for `url` and the TLS connector its `sslmode` asks for: the one
/// way errand connects to PostgreSQL.
///
/// # Errors
/// [`ConnectError::BadUrl`] for a URL the driver refuses; [`ConnectError::Tls`] for an
/// unknown `sslmode`, `verify-ca`/`verify-full` without `sslrootcert`, or a root
/// certificate file that cannot be read or holds no certificate.
pub fn pg_config(url: &str) -> Result<(Config, MakeRustls), ConnectError> {
    let parts = split(url);
    let mut config = parts
        .rest
        .parse::<Config>()
        .map_err(|e| ConnectError::BadUrl(connect_error::chain(&e)))?;
    let target = PgTarget::of(&config);
    let tls_error = |reason: String| ConnectError::Tls {
        target: target.clone(),
        reason,
    };
    if parts.sslmode.is_none() && config.get_ssl_mode() != DriverSslMode::Prefer {
        // The driver read an `sslmode` written in a way `split` did not take out (an
        // escaped name, spaces around `=`): refuse rather than connect with `prefer`.
        return Err(tls_error(
            "write sslmode as `sslmode=VALUE` (no escapes in its name, no spaces around `=`)"
                .into(),
        ));
    }
    for (var, given) in [
        ("PGSSLMODE", parts.sslmode.is_some()),
        ("PGSSLROOTCERT", parts.sslrootcert.is_some()),
    ] {
        if !given && std::env::var_os(var).is_some_and(|x| !x.is_empty()) {
            // libpq would obey it; errand does not read it, and connecting with `prefer`
            // instead could be less than the operator asked for.
            return Err(tls_error(format!(
                "{var} is set, but errand reads TLS settings only from the store URL: \
                 put sslmode (and sslrootcert) in the URL, or unset {var}"
            )));
        }
    }
    let mut mode = match &parts.sslmode {
        None => SslMode::Prefer,
        Some(name) => SslMode::parse(name).ok_or_else(|| {
            tls_error(format!(
                "sslmode={name} is not a mode: use disable, prefer, require, verify-ca or verify-full"
            ))
        })?,
    };
    let roots = match &parts.sslrootcert {
        Some(path) => Some(read_roots(Path::new(path)).map_err(tls_error)?),
        None => None,
    };
    if mode == SslMode::Require && roots.is_some() {
        // libpq: a root certificate given makes `require` check the chain.
        mode = SslMode::VerifyCa;
    }
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(tls_error(format!(
                "sslmode={} needs sslrootcert=PATH: a PEM file of the CA certificates that \
                 signed the server's certificate (errand reads neither ~/.postgresql/root.crt \
                 nor the system's store)",
                mode.as_str()
            )))
        }
        (SslMode::VerifyFull, Some(roots)) => {
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| tls_error(format!("sslrootcert: {e}")))?
        }
        (SslMode::VerifyCa, Some(roots)) => Arc::new(LibpqVerifier {
            roots: Some(Arc::new(roots)),
            provider: provider(),
        }),
        _ => Arc::new(LibpqVerifier {
            roots: None,
            provider: provider(),
        }),
    };
    // libpq ignores sslmode on a Unix socket (the server offers no TLS there): so does
    // errand, rather than fail a `require` the socket cannot meet.
    let socket_only = !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| !matches!(h, tokio_postgres::config::Host::Tcp(_)));
    config.ssl_mode(match mode {
        _ if socket_only => DriverSslMode::Disable,
        SslMode::Disable => DriverSslMode::Disable,
        SslMode::Prefer => DriverSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
    });
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((
        config,
        MakeRustls {
            config: Arc::new(client),
            mode,
            root: parts.sslrootcert.map(PathBuf::from),
        },
    ))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file, as trust anchors; the message names the file.
fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("sslrootcert {shown}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("sslrootcert {shown}: not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {shown}: a certificate errand cannot use: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert {shown}: no certificate in it (expected PEM `-----BEGIN CERTIFICATE-----` blocks)"
        ));
    }
    Ok(roots)
}

/// `require` and `prefer` (`roots: None`): any certificate, as libpq; `verify-ca`
/// (`roots: Some`): the chain must reach a root of `sslrootcert`, the name is not checked.
/// Either way the handshake's signatures are checked against the certificate.
/// (`verify-full` uses rustls's own verifier, which also checks the name.)
#[derive(Debug)]
struct LibpqVerifier {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// tokio-postgres's TLS connector over rustls, as [`pg_config`] makes it.
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<rustls::ClientConfig>,
    mode: SslMode,
    root: Option<PathBuf>,
}

impl std::fmt::Debug for MakeRustls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeRustls")
            .field("mode", &self.mode)
            .field("root", &self.root)
            .finish()
    }
}

impl MakeRustls {
    /// The `sslmode` in force (`require` with `sslrootcert` reads as `verify-ca`).
    pub fn mode(&self) -> SslMode {
        self.mode
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, io::Error> {
        // A Unix socket or a `hostaddr` alone gives no host name: the driver then offers
        // TLS only when asked (`prefer` stays plain on a socket), and nothing but
        // `verify-full` needs a name to check.
        let name = ServerName::try_from(domain.to_string()).ok();
        if name.is_none() && self.mode == SslMode::VerifyFull {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "sslmode=verify-full needs a host name to check the certificate against; \
                     `{domain}` is none (use verify-ca, or name the host)"
                ),
            ));
        }
        Ok(RustlsConnect {
            config: self.config.clone(),
            name,
        })
    }
}

/// One connection's TLS handshake.
pub struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    /// The host name the server's certificate is checked against (`verify-full`); `None`
    /// when the connection names no host (a Unix socket), where the driver makes no
    /// handshake.
    name: Option<ServerName<'static>>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move {
            // The driver never starts a handshake without a host name; should it, refuse.
            let name = self.name.ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "TLS needs a host name")
            })?;
            let tls = connector.connect(name, stream).await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

/// A TLS connection to PostgreSQL.
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S> tokio_postgres::tls::TlsStream for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// None: SCRAM then runs without channel binding (tokio-postgres's default
    /// `channel_binding=prefer` accepts that).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let s = split(
            "postgres://u@h/d?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
        );
        assert_eq!(s.rest, "postgres://u@h/d?application_name=x");
        assert_eq!(s.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/tmp/ca.pem"));
        let s = split("host=h user=u sslmode=require sslrootcert=/ca.pem");
        assert_eq!(s.rest, "host=h user=u");
        assert_eq!(s.sslmode.as_deref(), Some("require"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/ca.pem"));
    }

    #[test]
    fn verify_modes_need_a_root_and_name_it() {
        for mode in ["verify-ca", "verify-full"] {
            let err = pg_config(&format!("postgres://u:pw@h:5433/d?sslmode={mode}"))
                .expect_err(mode)
                .to_string();
            assert!(err.contains("sslrootcert"), "{err}");
            assert!(err.contains("h:5433"), "{err}");
            assert!(!err.contains("pw"), "{err}");
        }
        let err = pg_config("postgres://u@h/d?sslmode=verify-full&sslrootcert=/no/such/ca.pem")
            .expect_err("missing file")
            .to_string();
        assert!(err.contains("/no/such/ca.pem"), "{err}");
        let err = pg_config("postgres://u@h/d?sslmode=sometimes")
            .expect_err("bad mode")
            .to_string();
        assert!(err.contains("sslmode=sometimes"), "{err}");
    }

    #[test]
    fn an_sslmode_the_split_misses_is_refused_not_downgraded() {
        for url in [
            "host=h user=u sslmode = require",
            "postgres://u@h/d?ssl%6Dode=require",
        ] {
            let err = pg_config(url).expect_err(url).to_string();
            assert!(err.contains("sslmode=VALUE"), "{url}: {err}");
        }
    }

    #[test]
    fn modes_map_to_the_driver() {
        for (url, driver, mode) in [
            ("postgres://u@h/d", DriverSslMode::Prefer, SslMode::Prefer),
            (
                "postgres://u@h/d?sslmode=disable",
                DriverSslMode::Disable,
                SslMode::Disable,
            ),
            (
                "postgres://u@h/d?sslmode=require",
                DriverSslMode::Require,
                SslMode::Require,
            ),
        ] {
            let (config, tls) = pg_config(url).expect(url);
            assert_eq!(config.get_ssl_mode(), driver, "{url}");
            assert_eq!(tls.mode(), mode, "{url}");
        }
    }
}
