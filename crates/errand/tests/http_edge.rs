//! The HTTP edge against a real server over raw TCP: slow, silent, oversized, too many and
//! malformed clients are cut off or answered in the API's JSON shape, while health checks and
//! long polls keep working.

mod common;

use std::time::Duration;

use errand_testkit::{eventually, ServerProcess};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A server on a fresh data directory with the edge settings `flags`.
async fn edge_server(flags: &[&str]) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start_in(&common::bin(), dir.path(), flags)
        .await
        .expect("start errand serve");
    (server, dir)
}

async fn connect(server: &ServerProcess) -> TcpStream {
    let addr = server.url().trim_start_matches("http://").to_string();
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection; panics if it has not within `within`.
/// Returns what was read and how long it took.
async fn read_until_closed<R: AsyncRead + Unpin>(
    stream: &mut R,
    within: Duration,
) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout_at(start + within, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("the server kept the connection open for {within:?}"));
        match read {
            Ok(0) | Err(_) => return (out, start.elapsed()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// One response: status, lower-cased head, parsed JSON body.
struct Answer {
    status: u16,
    head: String,
    json: Value,
}

/// Reads one response (with a `content-length`) within `within`.
async fn read_answer(stream: &mut TcpStream, within: Duration) -> Answer {
    let deadline = Instant::now() + within;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no content-length in {head}"));
            if data.len() >= end + 4 + length {
                let body = &data[end + 4..end + 4 + length];
                let status = head[9..12].parse().expect("status");
                let json = serde_json::from_slice(body).unwrap_or_else(|_| {
                    panic!("body is not JSON: {}", String::from_utf8_lossy(body))
                });
                return Answer { status, head, json };
            }
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no whole answer within {within:?}"))
            .expect("read");
        assert!(
            n > 0,
            "closed before a whole answer: {}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    }
}

/// Sends `request` on a new connection and reads the answer; the connection stays open.
/// (A write error is ignored: the server may answer and close before taking a too-large
/// head whole.)
async fn ask(server: &ServerProcess, request: &[u8]) -> (TcpStream, Answer) {
    let mut stream = connect(server).await;
    let _ = stream.write_all(request).await;
    let answer = read_answer(&mut stream, Duration::from_secs(5)).await;
    (stream, answer)
}

/// Sends `bytes` one at a time, `every` apart, until the server stops taking them.
fn trickle(mut writer: tokio::net::tcp::OwnedWriteHalf, bytes: Vec<u8>, every: Duration) {
    tokio::spawn(async move {
        for b in bytes {
            if writer.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    });
}

#[tokio::test]
async fn headers_trickled_slowly_are_cut_off_at_the_header_timeout() {
    let (server, _dir) = edge_server(&["--header-timeout", "1s", "--idle-timeout", "30s"]).await;
    let (mut reader, writer) = connect(&server).await.into_split();
    let head = b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-slow: ".to_vec();
    trickle(
        writer,
        head.into_iter()
            .chain(std::iter::repeat_n(b'a', 200))
            .collect(),
        Duration::from_millis(100),
    );
    let (answer, took) = read_until_closed(&mut reader, Duration::from_secs(10)).await;
    assert!(answer.is_empty(), "no answer, only a close");
    assert_cut_off_soon(took);
    // The head's first bytes arrived as the connection opened: not cut off before its
    // deadline either.
    assert!(
        took >= Duration::from_millis(900),
        "cut off too early: {took:?}"
    );
}

/// A connection with a 1 s limit was cut off at about that, not at some later limit.
fn assert_cut_off_soon(took: Duration) {
    assert!(took < Duration::from_secs(4), "cut off after {took:?}");
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout_before_and_between_requests() {
    let (server, _dir) = edge_server(&["--idle-timeout", "1s"]).await;
    let mut silent = connect(&server).await;
    let (_, took) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );

    let (mut used, answer) =
        ask(&server, b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
    assert_eq!(answer.status, 200);
    let (rest, took) = read_until_closed(&mut used, Duration::from_secs(5)).await;
    assert!(rest.is_empty(), "nothing more was sent");
    assert!(
        took >= Duration::from_millis(800),
        "closed too early after the answer: {took:?}"
    );
}

#[tokio::test]
async fn a_chunked_body_that_never_ends_is_cut_off_with_408() {
    let (server, _dir) = edge_server(&["--body-timeout", "1s", "--idle-timeout", "30s"]).await;
    let (mut reader, mut writer) = connect(&server).await.into_split();
    writer
        .write_all(
            b"POST /v1/jobs HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{\r\n",
        )
        .await
        .expect("send head");
    // One more chunk of one byte every 100 ms, forever (until the server closes).
    trickle(
        writer,
        b"1\r\n \r\n".repeat(1000),
        Duration::from_millis(100),
    );
    let (answer, took) = read_until_closed(&mut reader, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "answer: {text}");
    assert!(
        text.contains("\"code\":\"request_timeout\""),
        "answer: {text}"
    );
    assert_cut_off_soon(took);
}

#[tokio::test]
async fn a_body_at_one_byte_a_second_is_cut_off_with_408() {
    let (server, _dir) = edge_server(&["--body-timeout", "1s", "--idle-timeout", "30s"]).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"POST /v1/jobs HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
        .await
        .expect("send head");
    let (mut reader, writer) = stream.into_split();
    trickle(writer, vec![b' '; 99], Duration::from_secs(1));
    let (answer, took) = read_until_closed(&mut reader, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "answer: {text}");
    assert_cut_off_soon(took);
}

#[tokio::test]
async fn a_content_length_over_the_limit_gets_413_before_any_body_is_sent() {
    let (server, _dir) = edge_server(&["--max-request-bytes", "1000"]).await;
    // Headers only: the answer comes without a byte of the body.
    let (_, answer) = ask(&server, b"POST /v1/jobs/batch HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n").await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.json["error"]["code"], "payload_too_large");
    assert!(answer.head.contains("connection: close"));
}

/// Fills `n` ordinary connection slots with idle keep-alive connections: each is kept once
/// it was served as usual (once the readiness probe's own connection has gone).
async fn hold_ordinary_slots(server: &ServerProcess, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while held.len() < n {
        assert!(
            Instant::now() < deadline,
            "{n} connections never held the cap"
        );
        let (stream, answer) = ask(
            server,
            b"GET /v1/queues HTTP/1.1\r\nhost: localhost\r\n\r\n",
        )
        .await;
        if answer.status == 200 && !answer.head.contains("connection: close") {
            held.push(stream);
        }
    }
    held
}

#[tokio::test]
async fn at_the_connection_cap_health_checks_answer_and_other_calls_are_told_to_retry() {
    let (server, _dir) = edge_server(&[
        "--max-connections",
        "3",
        "--reserve-connections",
        "2",
        "--idle-timeout",
        "60s",
    ])
    .await;
    let fillers = hold_ordinary_slots(&server, 3).await;
    let (_, answer) = ask(&server, b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
    assert_eq!(answer.status, 200, "healthz at the cap: {}", answer.json);
    assert!(answer.head.contains("connection: close"), "{}", answer.head);

    let (_, answer) = ask(
        &server,
        b"GET /v1/queues HTTP/1.1\r\nhost: localhost\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.json["error"]["code"], "busy");
    assert!(answer.head.contains("retry-after: 1"), "{}", answer.head);

    // Once the silent clients leave, calls are served as usual again.
    drop(fillers);
    let client = server.client().expect("client");
    eventually(
        "the queue list is served again",
        Duration::from_secs(5),
        || async { client.queues().await.ok() },
    )
    .await;
}

#[tokio::test]
async fn a_closed_connection_frees_its_slot_for_the_next_client() {
    // One ordinary slot, used by one client after another: each must be served as usual,
    // not every other one sent to the reserve (the loop takes a slot before it accepts).
    let (server, _dir) =
        edge_server(&["--max-connections", "1", "--reserve-connections", "2"]).await;
    const ASK: &[u8] = b"GET /v1/queues HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
    // The harness's start-up check may still hold the slot for a moment: wait until a
    // client is served in it.
    let mut served = eventually(
        "a client is served in the one slot",
        Duration::from_secs(5),
        || async {
            let (stream, answer) = ask(&server, ASK).await;
            (answer.status == 200).then_some(stream)
        },
    )
    .await;
    for i in 0..6 {
        read_until_closed(&mut served, Duration::from_secs(5)).await;
        // The server's side of a closed connection ends a moment after the client sees
        // the close; nothing outside can observe it, so give it that moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (stream, answer) = ask(&server, ASK).await;
        assert_eq!(answer.status, 200, "client {i}: {}", answer.json);
        served = stream;
    }
}

#[tokio::test]
async fn past_the_cap_and_its_reserve_the_backlog_holds_new_connections_until_a_slot_frees() {
    let (server, _dir) = edge_server(&[
        "--max-connections",
        "1",
        "--reserve-connections",
        "1",
        "--idle-timeout",
        "60s",
    ])
    .await;
    let _filler = hold_ordinary_slots(&server, 1).await;
    // The one reserve slot: a silent connection, closed after the reserve's 2 s.
    let mut silent = connect(&server).await;
    let start = Instant::now();
    let (_, answer) = ask(&server, b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
    let took = start.elapsed();
    assert_eq!(answer.status, 200);
    assert!(
        took >= Duration::from_millis(1500),
        "answered after {took:?}: it should have waited in the backlog for the reserve slot"
    );
    let (_, closed_after) = read_until_closed(&mut silent, Duration::from_secs(1)).await;
    assert!(closed_after < Duration::from_secs(1));
}

#[tokio::test]
async fn long_polls_outlive_the_idle_and_body_timeouts() {
    let (server, _dir) = edge_server(&[
        "--idle-timeout",
        "1s",
        "--body-timeout",
        "1s",
        "--header-timeout",
        "1s",
    ])
    .await;
    let raw = common::Raw::new(&server);
    let start = Instant::now();
    let (status, body) = raw.post("/v1/queues/q/claim", r#"{"wait_ms":2500}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        start.elapsed() >= Duration::from_millis(2400),
        "the claim waited its whole wait: {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn waiting_calls_past_the_bound_get_503_busy_with_retry_after() {
    let (server, _dir) = edge_server(&["--max-waiting", "2"]).await;
    let base = server.url().to_string();
    let http = common::http_client();
    for _ in 0..2 {
        // A client (and connection pool) of its own for each waiting call; it waits again
        // whenever its call ends (or found no place), until the test ends.
        let (http, base) = (common::http_client(), base.clone());
        tokio::spawn(async move {
            loop {
                let _ = http
                    .post(format!("{base}/v1/queues/q/claim"))
                    .header("content-type", "application/json")
                    .body(r#"{"wait_ms":20000}"#)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    let busy = eventually(
        "a third waiting claim is refused",
        Duration::from_secs(5),
        || {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let resp = http
                    .post(format!("{base}/v1/queues/q/claim"))
                    .header("content-type", "application/json")
                    .body(r#"{"wait_ms":1}"#)
                    .send()
                    .await
                    .ok()?;
                (resp.status() == 503).then_some(resp)
            }
        },
    )
    .await;
    assert_eq!(
        busy.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let json: Value = busy.json().await.expect("json");
    assert_eq!(json["error"]["code"], "busy");

    let raw = common::Raw::new(&server);
    let (status, _) = raw.post("/v1/queues/q/claim", r#"{"wait_ms":0}"#).await;
    assert_eq!(status, 200, "a claim that does not wait is not bounded");
    let (status, body) = raw.post("/v1/jobs", r#"{"kind":"k"}"#).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    let (status, body) = raw.get(&format!("/v1/jobs/{id}?wait=1s")).await;
    assert_eq!(status, 503, "a waiting job read is bounded too: {body}");
    assert_eq!(body["error"]["code"], "busy");
}

/// What hyper answers by itself, before any handler: each in the API's JSON shape.
#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let (server, _dir) = edge_server(&[]).await;
    let many_headers: Vec<u8> = (0..200)
        .flat_map(|i| format!("h{i}: v\r\n").into_bytes())
        .collect();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a NUL byte in a header",
            b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-bad: a\0b\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "a bad request line",
            b"GET\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "an over-long URI",
            [
                b"GET /".to_vec(),
                vec![b'a'; 70_000],
                b" HTTP/1.1\r\n\r\n".to_vec(),
            ]
            .concat(),
            414,
            "uri_too_long",
        ),
        (
            "too many headers",
            [
                b"GET /healthz HTTP/1.1\r\n".to_vec(),
                many_headers,
                b"\r\n".to_vec(),
            ]
            .concat(),
            431,
            "headers_too_large",
        ),
        (
            "an over-long header block",
            [
                b"GET /healthz HTTP/1.1\r\nx: ".to_vec(),
                vec![b'a'; 500_000],
                b"\r\n\r\n".to_vec(),
            ]
            .concat(),
            431,
            "headers_too_large",
        ),
    ];
    for (what, request, status, code) in cases {
        let (_, answer) = ask(&server, &request).await;
        assert_eq!(answer.status, status, "{what}");
        assert_eq!(answer.json["error"]["code"], code, "{what}");
        assert!(
            answer.head.contains("content-type: application/json"),
            "{what}: {}",
            answer.head
        );
    }
}

#[tokio::test]
async fn shutdown_is_not_held_by_idle_connections() {
    let (mut server, _dir) = edge_server(&["--idle-timeout", "60s"]).await;
    let (mut idle, answer) =
        ask(&server, b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
    assert_eq!(answer.status, 200);
    let start = Instant::now();
    assert!(server.terminate().await, "errand serve exits 0 on SIGTERM");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?} on an idle keep-alive connection",
        start.elapsed()
    );
    let (rest, _) = read_until_closed(&mut idle, Duration::from_secs(1)).await;
    assert!(rest.is_empty());
}

/// One read of what the server sends (0 once it has closed, or on a reset); panics if
/// nothing comes within 10 s.
async fn read_within_10s(stream: &mut TcpStream, buf: &mut [u8]) -> usize {
    tokio::time::timeout(Duration::from_secs(10), stream.read(buf))
        .await
        .expect("the server kept sending or closed within 10 s")
        .unwrap_or(0)
}

/// Stores `n` jobs of kind `big` with a payload of about 900 KB each.
async fn store_big_jobs(server: &ServerProcess, n: usize) {
    let raw = common::Raw::new(server);
    let filler = "x".repeat(900_000);
    for _ in 0..n {
        let body = serde_json::json!({"kind": "big", "payload": {"filler": filler}});
        let (status, _) = raw.post("/v1/jobs", &body.to_string()).await;
        assert_eq!(status, 201);
    }
}

#[tokio::test]
async fn a_large_answer_drains_to_a_slow_reader_past_the_idle_timeout() {
    // Eight jobs of ~900 KB: the listing answer is about 7 MB, more than the socket buffers
    // hold, so it drains only as fast as the client reads: about 3 s at this pace.
    let (server, _dir) = edge_server(&["--idle-timeout", "1s"]).await;
    store_big_jobs(&server, 8).await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /v1/jobs?kind=big&limit=8 HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .expect("send request");
    let started = Instant::now();
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = read_within_10s(&mut stream, &mut buf).await;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        // About 2.5 MB a second.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let took = started.elapsed();
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    assert!(
        took > Duration::from_secs(1),
        "the answer drained in {took:?}, within the idle timeout: the test proves nothing"
    );
    assert_eq!(
        data.len() - end - 4,
        length,
        "the whole answer arrived (after {took:?})"
    );
}

/// Stores 1,000 jobs whose `job.enqueued` events are about 8 KiB each (32 long tags), so
/// the event log holds far more than a connection's socket buffers.
async fn fill_event_log(server: &ServerProcess) {
    let raw = common::Raw::new(server);
    let tags: Vec<String> = (0..32)
        .map(|i| format!("{i:02}{}", "t".repeat(250)))
        .collect();
    let jobs: Vec<Value> = (0..1000)
        .map(|_| serde_json::json!({"kind": "loud", "tags": tags}))
        .collect();
    let (status, answer) = raw
        .post(
            "/v1/jobs/batch",
            &serde_json::json!({ "jobs": jobs }).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
}

/// A connection whose receive buffer is as small as the kernel allows, so that what the
/// server sends soon waits on the client's reads.
async fn connect_with_small_window(server: &ServerProcess) -> TcpStream {
    let addr: std::net::SocketAddr = server
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("server address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    socket.connect(addr).await.expect("connect")
}

/// Asks for the whole event log as a stream on a connection whose client reads the answer's
/// head and then nothing, with a receive window small enough that the server's writes soon
/// find no room.
async fn stuck_event_stream(server: &ServerProcess) -> TcpStream {
    let mut stream = connect_with_small_window(server).await;
    stream
        .write_all(b"GET /v1/events?after=0-0 HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("send request");
    let mut head = Vec::new();
    let mut buf = [0u8; 64];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the stream's head within 5 s")
            .expect("read");
        assert!(n > 0, "closed before the stream's head");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

#[tokio::test]
async fn a_stream_whose_client_stops_reading_is_closed_after_the_idle_timeout() {
    let (server, _dir) = edge_server(&["--idle-timeout", "3s", "--max-event-streams", "1"]).await;
    fill_event_log(&server).await;
    let _stuck = stuck_event_stream(&server).await;
    // The stream holds the only stream place while its connection lives; the place comes
    // free only when the server lets the stuck connection go, 3 s after its writes found
    // no room (the stream's own give-up on a full outbox takes 60 s).
    let raw = common::Raw::new(&server);
    let refused = std::sync::atomic::AtomicBool::new(false);
    errand_testkit::eventually(
        "the stuck stream lets go of its place",
        Duration::from_secs(20),
        || async {
            let response = raw
                .http
                .get(format!("{}/v1/events", raw.base))
                .send()
                .await
                .expect("ask for a stream");
            match response.status().as_u16() {
                200 => Some(()),
                503 => {
                    refused.store(true, std::sync::atomic::Ordering::Relaxed);
                    None
                }
                other => panic!("unexpected status {other}"),
            }
        },
    )
    .await;
    assert!(
        refused.into_inner(),
        "the stuck stream never held the place: the test proves nothing"
    );
}

#[tokio::test]
async fn shutdown_is_not_held_by_a_stream_whose_client_stopped_reading() {
    // No drain before the listener closes: the stuck stream is in service when shutdown
    // begins, and its stream ends there (a stream ends at shutdown), yet what it was sent
    // cannot go out.
    let (mut server, _dir) = edge_server(&["--idle-timeout", "1s", "--shutdown-drain", "0s"]).await;
    fill_event_log(&server).await;
    let _stuck = stuck_event_stream(&server).await;
    let start = Instant::now();
    assert!(server.terminate().await, "errand serve exits 0 on SIGTERM");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "shutdown waited {:?} on a stream nobody reads",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_slow_reader_keeps_its_connection_while_it_takes_bytes_and_its_next_request_waits() {
    // Four jobs of ~900 KB: the listing answer is about 3.6 MB. The client's receive window
    // is small and it reads slowly, so the answer drains for seconds, far past both 1 s
    // deadlines. Its next request is sent while the first answer is still going out
    // (pipelined), and waits for it without being held to the header deadline.
    let (server, _dir) = edge_server(&["--header-timeout", "1s", "--idle-timeout", "1s"]).await;
    store_big_jobs(&server, 4).await;
    let mut stream = connect_with_small_window(&server).await;
    stream
        .write_all(b"GET /v1/jobs?kind=big&limit=4 HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("send the first request");
    let started = Instant::now();
    let mut data = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut next_sent = false;
    loop {
        let n = read_within_10s(&mut stream, &mut buf).await;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        if !next_sent && data.len() > 256 * 1024 {
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
                .await
                .expect("send the next request");
            next_sent = true;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let took = started.elapsed();
    assert!(
        took > Duration::from_millis(1500),
        "the answer drained in {took:?}, within the deadlines: the test proves nothing"
    );
    let text = String::from_utf8_lossy(&data);
    assert_eq!(
        text.matches("HTTP/1.1 200").count(),
        2,
        "both answers arrived whole (after {took:?}, {} of about 3.6 MB)",
        data.len()
    );
}
