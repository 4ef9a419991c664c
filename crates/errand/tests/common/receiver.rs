//! A real HTTP webhook receiver on loopback: records every request (headers and body) and
//! answers as the test's behaviour says (status, delay).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status it answered.
    pub answered: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// How to answer request number `n` (0-based): status and delay before answering.
pub type Behaviour = Arc<dyn Fn(usize, &Received) -> (u16, Duration) + Send + Sync>;

#[derive(Clone)]
struct Shared {
    got: Arc<Mutex<Vec<Received>>>,
    behaviour: Behaviour,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    max_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    max_in_flight: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut rec = Received {
        headers,
        body,
        answered: 0,
    };
    use std::sync::atomic::Ordering;
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let n = s.got.lock().unwrap().len();
    let (status, delay) = (s.behaviour)(n, &rec);
    rec.answered = status;
    s.got.lock().unwrap().push(rec);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), behaviour).await
    }

    pub async fn start_on(addr: SocketAddr, behaviour: Behaviour) -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let max_in_flight: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let app = axum::Router::new().fallback(handle).with_state(Shared {
            got: got.clone(),
            behaviour,
            in_flight: Arc::default(),
            max_in_flight: max_in_flight.clone(),
        });
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            got,
            max_in_flight,
            task,
        }
    }

    /// Always answers `status` at once.
    pub async fn answering(status: u16) -> Self {
        Self::start(Arc::new(move |_, _| (status, Duration::ZERO))).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The most requests it was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// Standard Webhooks verification, written independently of errand's own (a receiver's
/// view): any `v1,` entry of `webhook-signature` must be the base64 HMAC-SHA256 of
/// `{id}.{timestamp}.{body}` under the key after `whsec_`.
pub fn verifies(secret: &str, r: &Received) -> bool {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let signed = format!(
        "{}.{}.{}",
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        String::from_utf8_lossy(&r.body)
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    r.header("webhook-signature")
        .split(' ')
        .any(|e| e == format!("v1,{expected}"))
}
