//! SIGTERM drains before it stops: `/readyz` turns 503 ("shutting down") while the node
//! still serves, so a load balancer takes it out of rotation before its listener closes.

mod common;

use std::time::Duration;

use errand_testkit::{eventually, ServerProcess};

use common::{bin, Raw};

#[tokio::test]
async fn on_sigterm_readiness_fails_while_the_node_still_serves() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A drain far longer than the test: everything below happens inside it.
    let mut server = ServerProcess::start_in(&bin(), dir.path(), &["--shutdown-drain", "60s"])
        .await
        .expect("start errand serve");
    let raw = Raw::new(&server);
    assert_eq!(raw.get("/readyz").await.0, 200);

    let pid = server.pid().expect("running");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());

    let body = eventually("/readyz answers 503", Duration::from_secs(10), || async {
        let (status, body) = raw.get("/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["status"], "not_ready", "{body}");
    assert_eq!(body["checks"]["shutdown"], "shutting down", "{body}");
    assert_eq!(body["checks"]["store"], "ok", "{body}");
    // Still serving: alive, and the API answers.
    assert_eq!(raw.get("/healthz").await.0, 200);
    assert_eq!(raw.get("/v1/queues").await.0, 200);

    // A second SIGTERM cuts the drain short: the node stops well before its 60 s.
    let start = std::time::Instant::now();
    assert!(server.terminate().await, "errand serve exits 0");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the second signal did not end the drain: {:?}",
        start.elapsed()
    );
}
