//! HTTPS: `errand serve --tls-cert --tls-key` answers over TLS (ALPN `http/1.1`) with a
//! certificate a test CA signed, refuses plain HTTP on that port, marks the dashboard's
//! session cookie `Secure`, and stops at start on a key file it cannot read, naming it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

mod common;

/// A CA and a server certificate for localhost and 127.0.0.1, written into `dir`: (CA,
/// certificate, key) paths.
fn make_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "errand test CA");
    let ca =
        rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().expect("key"))
            .expect("ca");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("sign");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.crt"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

/// `errand serve` with `args` in `dir`; the child and the address of its start line.
async fn serve(dir: &Path, args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(common::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--jobs-dir")
        .arg(dir.join("jobs"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn errand serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("start line in time")
        .expect("read")
        .expect("a start line");
    let url = line
        .strip_prefix("errand listening on ")
        .unwrap_or_else(|| panic!("start line: {line}"));
    let addr = url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("not https: {line}"))
        .to_string();
    // Keep draining stdout so the server never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// `errand serve` over TLS with a certificate the test CA signed, and `extra` flags: the
/// child, its address and the CA's path.
async fn serve_tls(dir: &Path, extra: &[&str]) -> (tokio::process::Child, String, PathBuf) {
    let (ca, cert, key) = make_pki(dir);
    let mut args = vec![
        "--tls-cert",
        cert.to_str().expect("utf8"),
        "--tls-key",
        key.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    let (child, addr) = serve(dir, &args).await;
    (child, addr, ca)
}

/// One HTTP/1.1 request over TLS trusting `ca`; the raw answer and the ALPN protocol.
async fn https(ca: &Path, addr: &str, request: &str) -> (String, Option<Vec<u8>>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(client_config(ca))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the test CA");
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    tls.write_all(request.as_bytes()).await.expect("send");
    // TLS may hold the end of a write in its buffer until flushed.
    tls.flush().await.expect("send");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    (String::from_utf8_lossy(&answer).into_owned(), alpn)
}

#[tokio::test]
async fn healthz_over_https_and_plain_http_refused() {
    let dir = tempfile::tempdir().expect("temp");
    let (_child, addr, ca) = serve_tls(dir.path(), &[]).await;
    let (answer, alpn) = https(
        &ca,
        &addr,
        &format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));

    let mut plain = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    plain
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
    let mut answer = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed.is_ok(), "the server closes a plain connection");
    assert!(!answer.contains("HTTP/"), "plain HTTP answered: {answer}");

    // errand's own client (the CLI, `errand worker`) speaks HTTPS, trusting the private
    // CA that ERRAND_CA_CERT names, and only then.
    let cli = |ca: Option<&Path>| {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.args(["--server", &format!("https://{addr}"), "queues", "list"])
            .env_remove("ERRAND_CA_CERT");
        if let Some(ca) = ca {
            cmd.env("ERRAND_CA_CERT", ca);
        }
        cmd.output().expect("run errand")
    };
    let trusted = cli(Some(&ca));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let untrusted = cli(None);
    assert!(!untrusted.status.success(), "an unknown CA is not trusted");
    let why = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        why.contains("certificate") || why.contains("UnknownIssuer"),
        "{why}"
    );
    assert!(
        why.contains("ERRAND_CA_CERT"),
        "the hint names the fix: {why}"
    );
}

#[tokio::test]
async fn dashboard_session_cookie_is_secure_over_https() {
    let dir = tempfile::tempdir().expect("temp");
    let (ca, cert, key) = make_pki(dir.path());
    let out = std::process::Command::new(common::bin())
        .args([
            "tokens",
            "create",
            "--name",
            "a",
            "--scopes",
            "admin",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .expect("errand tokens create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string();
    let (_child, addr) = serve(
        dir.path(),
        &[
            "--require-auth",
            "--tls-cert",
            cert.to_str().expect("utf8"),
            "--tls-key",
            key.to_str().expect("utf8"),
        ],
    )
    .await;
    let body = format!("token={token}&next=/");
    let (answer, _) = https(
        &ca,
        &addr,
        &format!(
            "POST /ui/login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    let session = answer
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: errand_session=")
        })
        .unwrap_or_else(|| panic!("no session cookie in {answer}"));
    assert!(session.contains("; Secure"), "{session}");
}

#[tokio::test]
async fn unreadable_key_or_half_a_pair_stops_the_start() {
    let dir = tempfile::tempdir().expect("temp");
    let (_, cert, _) = make_pki(dir.path());
    let missing = dir.path().join("no-such.key");
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&missing)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&*missing.to_string_lossy()), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing created");

    let out = std::process::Command::new(common::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

#[tokio::test]
async fn libpq_tls_variables_are_refused_not_ignored() {
    // errand reads TLS settings from the store URL only: with PGSSLMODE set and no sslmode
    // in the URL it stops, rather than connect with `prefer`. It fails before connecting.
    let out = std::process::Command::new(common::bin())
        .args([
            "tokens",
            "list",
            "--store",
            "postgres://postgres@127.0.0.1:1/none",
        ])
        .env("PGSSLMODE", "verify-full")
        .output()
        .expect("run errand");
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("PGSSLMODE is set"), "{why}");
}

/// The test CA's client configuration, speaking HTTP/1.1.
fn client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("ca file") {
        roots.add(cert.expect("ca pem")).expect("add root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Sends `request` over a new TLS connection (its receive buffer as small as the kernel
/// allows when `small_window`) and reads the answer's head only; the connection stays
/// open, unread past that.
async fn https_head(
    ca: &Path,
    addr: &str,
    request: &[u8],
    small_window: bool,
) -> (
    String,
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    if small_window {
        socket.set_recv_buffer_size(4096).expect("receive buffer");
    }
    let tcp = socket
        .connect(addr.parse().expect("address"))
        .await
        .expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(client_config(ca))
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the test CA");
    tls.write_all(request).await.expect("send");
    // TLS may keep the last of a large request in its own buffer, where the server never
    // sees it, until flushed.
    tls.flush().await.expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(60), tls.read(&mut byte))
            .await
            .expect("an answer's head within 60 s")
            .expect("read");
        assert!(n > 0, "closed before a whole head");
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), tls)
}

#[tokio::test]
async fn a_stream_whose_client_stops_reading_over_tls_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("temp");
    let (_child, addr, ca) = serve_tls(
        dir.path(),
        &["--idle-timeout", "3s", "--max-event-streams", "1"],
    )
    .await;
    // 1,000 jobs whose events are about 8 KiB each: far more than the buffers between
    // the server and a client that reads nothing hold.
    let tags: Vec<String> = (0..32)
        .map(|i| format!("{i:02}{}", "t".repeat(250)))
        .collect();
    let jobs: Vec<serde_json::Value> = (0..1000)
        .map(|_| serde_json::json!({"kind": "loud", "tags": tags}))
        .collect();
    let body = serde_json::json!({ "jobs": jobs }).to_string();
    let request = format!(
        "POST /v1/jobs/batch HTTP/1.1\r\nHost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (head, _) = https_head(&ca, &addr, request.as_bytes(), false).await;
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    let stream_request =
        format!("GET /v1/events?after=0-0 HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
    let (head, _stuck) = https_head(&ca, &addr, &stream_request, true).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The stuck stream holds the only stream place until the server lets its connection
    // go, 3 s after its writes found no room.
    let refused = std::sync::atomic::AtomicBool::new(false);
    errand_testkit::eventually(
        "the stuck stream lets go of its place",
        Duration::from_secs(20),
        || async {
            let (head, _probe) = https_head(&ca, &addr, &stream_request, false).await;
            if head.starts_with("HTTP/1.1 200") {
                return Some(());
            }
            assert!(head.starts_with("HTTP/1.1 503"), "{head}");
            refused.store(true, std::sync::atomic::Ordering::Relaxed);
            None
        },
    )
    .await;
    assert!(
        refused.into_inner(),
        "the stuck stream never held the place: the test proves nothing"
    );
}
