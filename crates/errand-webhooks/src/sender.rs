//! One webhook POST. The host is resolved here and every address the policy refuses is
//! dropped before connecting; the connection goes to an address that was checked (no
//! library resolves the name again), so DNS answers that change between a check and a
//! connect cannot smuggle a private address in. TLS is rustls with Mozilla's roots; HTTP is
//! HTTP/1.1 through hyper's connection API. No redirect is followed, the whole attempt is
//! bounded by the configured timeout, and at most 64 KiB of the answer is read (its first
//! 1 KiB kept).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use errand_core::{DeliveryAttempt, DeliveryId};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;

use crate::address_policy::AddressPolicy;
use crate::signature::{self, SigningKey};

/// Most of an answer read: a receiver cannot make errand read without end.
pub const MAX_RESPONSE_READ: usize = 64 * 1024;
/// How much of an answer is kept with the attempt.
pub const RESPONSE_KEPT: usize = 1024;

/// How the sender signs, where it may connect, and how long it waits.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Signing keys, newest first.
    pub keys: Vec<SigningKey>,
    /// Which addresses may be connected to.
    pub policy: AddressPolicy,
    /// Bound on one attempt, from resolving the host to the end of the answer read.
    pub timeout: Duration,
}

/// Sends webhooks. Share it (`Arc`); it holds the TLS configuration.
pub struct Sender {
    config: SenderConfig,
    tls: TlsConnector,
    user_agent: String,
}

/// What a request outcome needs to become an attempt record.
struct Answer {
    status: u16,
    head: String,
    location: Option<String>,
}

impl Sender {
    /// A sender with `config`.
    pub fn new(config: SenderConfig) -> Self {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = match rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
            // The ring provider supports the default versions; this is unreachable in
            // practice, and the fallback still verifies against the same roots.
            Err(_) => rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::from_iter(
                    webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
                ))
                .with_no_client_auth(),
        };
        Self {
            config,
            tls: TlsConnector::from(Arc::new(tls)),
            user_agent: format!("errand/{}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// POSTs `body` to `url` as delivery `id`, attempt number `attempt`, and says how it
    /// went: `status` when the receiver answered, `error` unless it answered 2xx.
    pub async fn send(
        &self,
        id: DeliveryId,
        url: &str,
        body: &str,
        attempt: u32,
    ) -> DeliveryAttempt {
        let at = jiff::Timestamp::now();
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.config.timeout, self.post(id, url, body, at)).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut record = DeliveryAttempt {
            attempt,
            at,
            duration_ms,
            status: None,
            error: None,
            response: None,
        };
        match outcome {
            Err(_) => {
                record.error = Some(format!(
                    "timed out after {} (delivery_timeout)",
                    humanize(self.config.timeout)
                ));
            }
            Ok(Err(e)) => record.error = Some(e),
            Ok(Ok(answer)) => {
                record.status = Some(answer.status);
                record.response = (!answer.head.is_empty()).then_some(answer.head);
                if (300..400).contains(&answer.status) {
                    record.error = Some(match answer.location {
                        Some(to) => {
                            format!("redirect not followed (HTTP {} to {to})", answer.status)
                        }
                        None => format!("redirect not followed (HTTP {})", answer.status),
                    });
                } else if !(200..300).contains(&answer.status) {
                    record.error = Some(format!("HTTP {}", answer.status));
                }
            }
        }
        record
    }

    async fn post(
        &self,
        id: DeliveryId,
        url: &str,
        body: &str,
        at: jiff::Timestamp,
    ) -> Result<Answer, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("unsupported scheme `{other}`")),
        };
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| "the URL has no port".to_string())?;
        let host = parsed
            .host()
            .ok_or_else(|| "the URL has no host".to_string())?;
        let (candidates, server_name) = match host {
            url::Host::Ipv4(ip) => (vec![SocketAddr::new(IpAddr::V4(ip), port)], None),
            url::Host::Ipv6(ip) => (vec![SocketAddr::new(IpAddr::V6(ip), port)], None),
            url::Host::Domain(name) => {
                let found: Vec<SocketAddr> = tokio::net::lookup_host((name, port))
                    .await
                    .map_err(|e| format!("cannot resolve {name}: {e}"))?
                    .collect();
                (found, Some(name.to_string()))
            }
        };
        let host_text = parsed.host_str().unwrap_or_default().to_string();
        let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = candidates
            .into_iter()
            .partition(|a| self.config.policy.allows(a.ip()));
        if allowed.is_empty() {
            let named = refused
                .iter()
                .map(|a| {
                    let why = self.config.policy.refusal(a.ip()).unwrap_or("refused");
                    format!("{} ({why})", a.ip())
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(if named.is_empty() {
                format!("{host_text} resolves to no address")
            } else {
                format!(
                    "address refused: {host_text} resolves only to addresses the policy refuses: {named}; allow them with allow_private_callbacks or callback_allow_cidrs"
                )
            });
        }
        let mut last_error = String::new();
        let mut stream = None;
        for addr in &allowed {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_error = format!("cannot connect to {addr}: {e}"),
            }
        }
        let stream = stream.ok_or(last_error)?;
        let _ = stream.set_nodelay(true);
        let authority = match parsed.port() {
            Some(p) => format!("{host_text}:{p}"),
            None => host_text.clone(),
        };
        let mut target = parsed.path().to_string();
        if let Some(q) = parsed.query() {
            target.push('?');
            target.push_str(q);
        }
        let timestamp = at.as_second();
        let signature = signature::signature_header(
            &self.config.keys,
            &id.to_string(),
            timestamp,
            body.as_bytes(),
        );
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(target)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, &self.user_agent)
            .header(signature::WEBHOOK_ID, id.to_string())
            .header(signature::WEBHOOK_TIMESTAMP, timestamp.to_string())
            .header(signature::WEBHOOK_SIGNATURE, signature)
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        if https {
            let name = match server_name {
                Some(n) => rustls::pki_types::ServerName::try_from(n)
                    .map_err(|e| format!("bad TLS server name: {e}"))?,
                None => {
                    let ip = allowed.first().map(SocketAddr::ip).ok_or("no address")?;
                    rustls::pki_types::ServerName::IpAddress(ip.into())
                }
            };
            let tls = self
                .tls
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS handshake with {host_text} failed: {e}"))?;
            exchange(tls, request).await
        } else {
            exchange(stream, request).await
        }
    }
}

/// Sends `request` over `io` with HTTP/1.1 and reads at most [`MAX_RESPONSE_READ`] of the
/// answer.
async fn exchange<S>(io: S, request: http::Request<Full<Bytes>>) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // The connection is driven by a task that ends with this attempt (dropped: aborted).
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let response = send
        .send_request(request)
        .await
        .map_err(|e| format!("the request failed: {e}"))?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    let mut body = response.into_body();
    let mut kept: Vec<u8> = Vec::new();
    let mut read = 0usize;
    while read < MAX_RESPONSE_READ {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read += data.len();
                    let room = RESPONSE_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            // A body cut short still leaves a status to judge by.
            Some(Err(_)) | None => break,
        }
    }
    drop(driver);
    Ok(Answer {
        status,
        head: String::from_utf8_lossy(&kept).into_owned(),
        location,
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
