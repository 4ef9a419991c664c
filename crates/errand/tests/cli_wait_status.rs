//! `errand jobs wait` (its timeout, its progress lines, what a job waits for), schedule
//! times in their zone, and `errand status` (once, `--json`, `--watch`): the real binary
//! against a real server, `RUST_BACKTRACE=1` in every child's environment.

mod common;

use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bin, server, Raw};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The CLI against `url`, with `RUST_BACKTRACE=1` as many users' shells have it.
fn cli(url: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.env("RUST_BACKTRACE", "1")
        .env_remove("NO_COLOR")
        .arg("--server")
        .arg(url)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn run(url: &str, args: &[&str]) -> Output {
    cli(url, args).output().await.expect("run errand")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs and expects success; returns stdout.
async fn ok(url: &str, args: &[&str]) -> String {
    let out = run(url, args).await;
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

async fn ok_json(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ok(url, &all).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// Collects a child's output lines as they come.
fn collect(stream: impl AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().expect("lines").push(line);
        }
    });
    lines
}

/// Waits (up to `limit`) until `lines` satisfy `cond`; panics with them otherwise.
async fn until(
    lines: &Arc<Mutex<Vec<String>>>,
    limit: Duration,
    what: &str,
    cond: impl Fn(&[String]) -> bool,
) {
    let end = Instant::now() + limit;
    loop {
        if cond(&lines.lock().expect("lines")) {
            return;
        }
        assert!(
            Instant::now() < end,
            "{what}: not seen within {limit:?}; lines so far: {:#?}",
            lines.lock().expect("lines")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn enqueue(url: &str, args: &[&str]) -> String {
    let mut all = vec!["enqueue"];
    all.extend_from_slice(args);
    let job = ok_json(url, &all).await;
    job["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn wait_timeout_holds_to_the_second_and_names_what_the_job_waits_for() {
    let s = server().await;
    let url = s.url();
    let id = enqueue(url, &["mail.send", "--queue", "mail"]).await;

    let started = Instant::now();
    let out = run(url, &["jobs", "wait", &id, "--timeout", "2s"]).await;
    let took = started.elapsed();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "timed out exits 6: {stderr}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "--timeout 2s took {took:?}"
    );
    assert!(
        stderr.contains("is still available after 2s"),
        "the error says the state and the wait: {stderr}"
    );
    assert!(
        stderr.contains("queue `mail`") && stderr.contains("no worker"),
        "the error says what the job waits for: {stderr}"
    );
    assert!(!stderr.contains("stack backtrace"), "{stderr}");

    // A job that waits for another says which, in `jobs show` and while waited for.
    let child = enqueue(url, &["report.send", "--queue", "mail", "--after", &id]).await;
    let shown = ok(url, &["jobs", "show", &child]).await;
    assert!(shown.contains(&format!("after  {id}")), "{shown}");
    assert!(
        shown.contains("blocked  waiting for 1 of its 1 parent job(s) to succeed"),
        "{shown}"
    );
    let out = run(url, &["jobs", "wait", &child, "--timeout", "1s"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!("waiting for job {id} (available)")),
        "a blocked job names its parent: {stderr}"
    );

    // `--json`: no status lines, one error object.
    let out = run(url, &["--json", "jobs", "wait", &id, "--timeout", "1s"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let err: Value = serde_json::from_str(stderr.trim()).expect("one JSON error");
    assert_eq!(err["error"]["code"], "timed_out");
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .contains("no worker"),
        "{err}"
    );
}

#[tokio::test]
async fn wait_shows_each_progress_change_as_it_comes_then_exits_0() {
    let s = server().await;
    let url = s.url();
    let raw = Raw::new(&s);
    let id = enqueue(url, &["video.encode", "--queue", "media"]).await;

    let mut waiting = cli(url, &["jobs", "wait", &id, "--timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jobs wait");
    let stderr = collect(waiting.stderr.take().expect("stderr"));
    let stdout = collect(waiting.stdout.take().expect("stdout"));
    until(&stderr, Duration::from_secs(10), "the waiting line", |l| {
        l.iter()
            .any(|l| l.contains("available") && l.contains("media"))
    })
    .await;

    let (status, claimed) = raw
        .post(
            "/v1/queues/media/claim",
            r#"{"worker": "test-worker", "wait_ms": 5000}"#,
        )
        .await;
    assert_eq!(status, 200, "{claimed}");
    let token = claimed["jobs"][0]["lease_token"].clone();
    assert_eq!(claimed["jobs"][0]["id"], id.as_str());
    for (pct, msg) in [(25.0, "first quarter"), (75.0, "almost there")] {
        let body = serde_json::json!({
            "lease_token": token,
            "progress": {"percent": pct, "message": msg},
        });
        let (status, answer) = raw
            .post(&format!("/v1/jobs/{id}/heartbeat"), &body.to_string())
            .await;
        assert_eq!(status, 200, "{answer}");
        // Shown while the job still runs, from the event: sooner than the 2 s re-poll
        // that stands in when no event stream is open.
        until(&stderr, Duration::from_millis(1500), msg, |l| {
            l.iter()
                .any(|l| l.contains(&format!("running {pct:.1}% {msg}")))
        })
        .await;
    }
    let body = serde_json::json!({"lease_token": token, "result": {"ok": true}});
    let (status, answer) = raw
        .post(&format!("/v1/jobs/{id}/complete"), &body.to_string())
        .await;
    assert_eq!(status, 200, "{answer}");
    let exit = tokio::time::timeout(Duration::from_secs(10), waiting.wait())
        .await
        .expect("jobs wait ends when the job does")
        .expect("exit status");
    assert_eq!(exit.code(), Some(0), "{:?}", stderr.lock().expect("lines"));
    until(&stdout, Duration::from_secs(5), "the job printed", |l| {
        l.iter().any(|l| l.contains("succeeded"))
    })
    .await;
    // Piped: a plain line per change, each once.
    let lines = stderr.lock().expect("lines").clone();
    for msg in ["first quarter", "almost there"] {
        assert_eq!(
            lines.iter().filter(|l| l.contains(msg)).count(),
            1,
            "{msg} once: {lines:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .all(|l| !l.contains('\r') && !l.contains('\x1b')),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn schedule_times_show_in_their_zone_and_in_utc_with_json() {
    let s = server().await;
    let url = s.url();
    ok(
        url,
        &[
            "schedules",
            "add",
            "nightly",
            "--kind",
            "report.build",
            "--cron",
            "0 3 * * *",
            "--timezone",
            "Europe/Paris",
        ],
    )
    .await;
    let shown = ok_json(url, &["schedules", "show", "nightly"]).await;
    assert!(shown.is_object(), "one schedule is an object: {shown}");
    assert_eq!(shown["name"], "nightly");
    let next_utc = shown["next_fire_at"].as_str().expect("next_fire_at");
    assert!(next_utc.ends_with('Z'), "UTC in --json: {next_utc}");
    // The same instant in Paris: 03:00 with the offset of that day (+01:00 or +02:00).
    let t: jiff::Timestamp = next_utc.parse().expect("time");
    let paris = t
        .to_zoned(jiff::tz::TimeZone::get("Europe/Paris").expect("zone"))
        .strftime("%Y-%m-%d %H:%M:%S %:z")
        .to_string();
    assert!(paris.contains(" 03:00:00 +0"), "{paris}");

    let listed = ok(url, &["schedules", "list"]).await;
    assert!(listed.contains(&paris), "list: {listed}");
    assert!(listed.contains("(Europe/Paris)"), "list: {listed}");
    let detail = ok(url, &["schedules", "show", "nightly"]).await;
    assert!(
        detail.contains(&format!("{paris} (Europe/Paris")),
        "show: {detail}"
    );
    let next = ok(url, &["schedules", "next", "nightly", "--count", "2"]).await;
    assert_eq!(next.lines().count(), 2, "{next}");
    assert!(
        next.lines().next().expect("line") == format!("{paris} (Europe/Paris)"),
        "next: {next}"
    );
    let next_json = ok_json(url, &["schedules", "next", "nightly", "--count", "2"]).await;
    for t in next_json["next"].as_array().expect("next") {
        assert!(t.as_str().expect("time").ends_with('Z'), "{next_json}");
    }
    let list_json = ok_json(url, &["schedules", "list"]).await;
    assert!(
        list_json[0]["next_fire_at"]
            .as_str()
            .expect("time")
            .ends_with('Z'),
        "{list_json}"
    );
}

#[tokio::test]
async fn status_shows_the_server_store_nodes_queues_and_schedules_due() {
    let s = server().await;
    let url = s.url();
    for _ in 0..2 {
        enqueue(url, &["mail.send", "--queue", "mail"]).await;
    }
    ok(
        url,
        &[
            "schedules",
            "add",
            "tick",
            "--kind",
            "ping",
            "--every",
            "1h",
        ],
    )
    .await;

    let screen = ok(url, &["status"]).await;
    assert!(screen.contains(url), "{screen}");
    assert!(screen.contains("store  sqlite "), "{screen}");
    let queue_row = screen
        .lines()
        .find(|l| l.starts_with("mail "))
        .unwrap_or_else(|| panic!("a row for queue mail: {screen}"));
    let cells: Vec<&str> = queue_row.split_whitespace().collect();
    assert_eq!(cells[1], "2", "2 ready: {queue_row}");
    assert_eq!(cells[2], "0", "0 running: {queue_row}");
    assert!(
        screen
            .lines()
            .any(|l| l.starts_with("tick ") && l.contains("(UTC)")),
        "the schedule with its zone: {screen}"
    );
    assert!(screen.contains("alive"), "{screen}");

    let json = ok_json(url, &["status"]).await;
    for section in ["server", "store", "nodes", "queues", "schedules"] {
        assert!(!json[section].is_null(), "{section} in {json}");
    }
    assert_eq!(json["store"]["kind"], "sqlite");
    assert_eq!(json["server"]["ready"], true);
    assert_eq!(json["queues"][0]["name"], "mail");
    assert_eq!(json["schedules"][0]["name"], "tick");
    assert!(json["schedules"][0]["next_fire_at"]
        .as_str()
        .expect("time")
        .ends_with('Z'));
}

/// The lines that start a frame of `errand status`.
fn frames(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.trim_start().starts_with("server  "))
        .count()
}

/// Sends SIGINT (as Ctrl-C does) to one process, by its id.
fn interrupt(pid: u32) {
    let sent = std::process::Command::new("kill")
        .arg("-INT")
        .arg(pid.to_string())
        .status()
        .expect("kill -INT");
    assert!(sent.success());
}

#[tokio::test]
async fn status_watch_redraws_until_interrupted_and_exits_0() {
    let s = server().await;
    let url = s.url();
    enqueue(url, &["mail.send", "--queue", "mail"]).await;
    let mut watching = cli(url, &["status", "--watch", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn status --watch");
    let stdout = collect(watching.stdout.take().expect("stdout"));
    until(&stdout, Duration::from_secs(20), "two frames", |l| {
        frames(l) >= 2
    })
    .await;
    let lines = stdout.lock().expect("lines").clone();
    assert!(
        lines.iter().all(|l| !l.contains('\x1b')),
        "no screen clearing when piped: {lines:#?}"
    );
    interrupt(watching.id().expect("pid"));
    let exit = tokio::time::timeout(Duration::from_secs(10), watching.wait())
        .await
        .expect("status --watch stops on Ctrl-C")
        .expect("exit status");
    assert_eq!(exit.code(), Some(0), "Ctrl-C ends a watch with 0");
}

#[tokio::test]
async fn status_watch_keeps_trying_a_server_that_does_not_answer() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut watching = cli(&url, &["status", "--watch", "200ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn status --watch");
    let stdout = collect(watching.stdout.take().expect("stdout"));
    until(&stdout, Duration::from_secs(20), "two error lines", |l| {
        l.iter().filter(|l| l.contains("error:")).count() >= 2
    })
    .await;
    assert!(
        watching.try_wait().expect("try_wait").is_none(),
        "still watching"
    );
    interrupt(watching.id().expect("pid"));
    let exit = tokio::time::timeout(Duration::from_secs(10), watching.wait())
        .await
        .expect("stops on Ctrl-C")
        .expect("exit status");
    assert_eq!(exit.code(), Some(0));
    // Without --watch, the same server is unreachable: exit 3.
    let once = run(&url, &["status"]).await;
    assert_eq!(once.status.code(), Some(3), "{}", text(&once.stderr));
}
