//! How the CLI fails (docs/cli.md): one exit code per outcome, messages that name flags and
//! URLs, no backtrace unless `--debug`, and the `--json` error object on stderr. Every run
//! has `RUST_BACKTRACE=1` in its environment, as many Rust users' shells do.

mod common;

use std::process::Output;
use std::time::Duration;

use errand_api::{ClaimRequest, CompleteRequest, EnqueueRequest, FailRequest};
use errand_client::Client;
use serde_json::Value;

use common::{bin, server, server_with};

/// A job id no server has.
const UNKNOWN_JOB: &str = "0190d4d5-0000-7000-8000-000000000000";

/// The command for `errand --server URL ARGS` with `RUST_BACKTRACE=1`.
fn command(url: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(bin());
    cmd.env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("ERRAND_SERVER")
        .arg("--server")
        .arg(url)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `errand --server URL ARGS` to its end (a minute at most).
async fn errand(url: &str, args: &[&str]) -> Output {
    finish(command(url, args), args).await
}

async fn finish(mut cmd: tokio::process::Command, args: &[&str]) -> Output {
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("errand {args:?} did not end within a minute"))
        .expect("run errand")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the exit code, showing what the command printed when it differs.
fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(out)
    );
}

fn assert_no_backtrace(out: &Output) {
    let text = stderr(out).to_lowercase();
    // The heading (Rust's or errand's), or frames printed without one.
    assert!(
        !text.contains("stack backtrace")
            && !text.contains("backtrace:")
            && !text.contains("anyhow::")
            && !text.contains("errand::"),
        "a backtrace without --debug: {}",
        stderr(out)
    );
}

/// The `--json` error object a failed command wrote on stderr (its only line).
fn json_error(out: &Output) -> Value {
    assert!(out.stdout.is_empty(), "nothing on stdout: {out:?}");
    let text = stderr(out);
    assert_eq!(text.trim().lines().count(), 1, "one line: {text}");
    let value: Value = serde_json::from_str(text.trim()).expect("a JSON object on stderr");
    value["error"].clone()
}

/// A port on which nothing listens (bound, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A test worker over HTTP: claims the next job of `queue` (waiting for one to come) and
/// completes it, or fails it when `fail`.
async fn work_one(client: &Client, queue: &str, fail: bool) -> errand_core::JobId {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let claimed = client
            .claim(
                queue,
                &ClaimRequest {
                    wait_ms: Some(1000),
                    ..ClaimRequest::default()
                },
            )
            .await
            .expect("claim");
        if let Some(job) = claimed.jobs.into_iter().next() {
            if fail {
                client
                    .fail(
                        job.id,
                        &FailRequest {
                            lease_token: job.lease_token,
                            error: Some("boom".into()),
                            retry_in_ms: None,
                            dead: false,
                            report: None,
                        },
                    )
                    .await
                    .expect("fail");
            } else {
                client
                    .complete(
                        job.id,
                        &CompleteRequest {
                            lease_token: job.lease_token,
                            result: None,
                            report: None,
                            session_state: None,
                        },
                    )
                    .await
                    .expect("complete");
            }
            return job.id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no job came to queue {queue}"
        );
    }
}

#[tokio::test]
async fn an_api_error_is_its_message_and_exit_1_without_a_backtrace() {
    let s = server().await;
    let out = errand(s.url(), &["jobs", "show", UNKNOWN_JOB]).await;
    assert_exit(&out, 1, "a job that does not exist");
    let text = stderr(&out);
    assert!(
        text.contains(&format!("job {UNKNOWN_JOB} not found (404 not_found)")),
        "{text}"
    );
    assert_no_backtrace(&out);
}

#[tokio::test]
async fn debug_prints_a_backtrace_even_when_library_backtraces_are_off() {
    let s = server().await;
    // RUST_LIB_BACKTRACE=0 turns anyhow's capture off; `--debug` turns it on again.
    let mut cmd = command(s.url(), &["--debug", "jobs", "show", UNKNOWN_JOB]);
    cmd.env("RUST_LIB_BACKTRACE", "0");
    let out = finish(cmd, &["--debug"]).await;
    assert_exit(&out, 1, "--debug keeps the exit code");
    let text = stderr(&out);
    assert!(text.contains("not found (404 not_found)"), "{text}");
    assert!(text.contains("stack backtrace:"), "{text}");
    assert!(text.contains("errand::"), "frames of errand itself: {text}");
}

#[tokio::test]
async fn an_unreachable_server_names_the_url_the_cause_and_what_to_do() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = errand(&url, &["jobs", "list"]).await;
    assert_exit(&out, 3, "nothing listens there");
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "cannot reach errand at {url}/v1/jobs: connection refused"
        )),
        "{text}"
    );
    assert!(
        text.contains("is `errand serve` running there?")
            && text.contains("--server or ERRAND_SERVER"),
        "{text}"
    );
    assert!(!text.contains("error sending request"), "{text}");
    assert_no_backtrace(&out);

    // The same through ERRAND_SERVER, for a command that waits.
    let mut cmd = tokio::process::Command::new(bin());
    cmd.env("RUST_BACKTRACE", "1")
        .env("ERRAND_SERVER", &url)
        .args(["jobs", "wait", UNKNOWN_JOB])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = finish(cmd, &["jobs", "wait"]).await;
    assert_exit(&out, 3, "ERRAND_SERVER names the unreachable server");
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
}

#[tokio::test]
async fn a_waited_job_exits_by_how_it_ended() {
    let s = server().await;
    let url = s.url().to_string();
    let client = s.client().expect("client");

    // 0: succeeded (completed by a worker over HTTP).
    let waiting = tokio::spawn(errand_owned(
        url.clone(),
        &["enqueue", "report.build", "--queue", "ok", "--wait"],
    ));
    work_one(&client, "ok", false).await;
    let out = waiting.await.expect("join");
    assert_exit(&out, 0, "enqueue --wait of a job that succeeded");
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"));

    // 4: dead (one attempt, failed).
    let waiting = tokio::spawn(errand_owned(
        url.clone(),
        &[
            "enqueue",
            "report.build",
            "--queue",
            "bad",
            "--max-attempts",
            "1",
            "--wait",
        ],
    ));
    let dead_id = work_one(&client, "bad", true).await.to_string();
    let out = waiting.await.expect("join");
    assert_exit(&out, 4, "enqueue --wait of a job that died");
    assert!(stderr(&out).contains("ended dead"), "{}", stderr(&out));
    assert_no_backtrace(&out);

    // 5: cancelled while `jobs wait` waits.
    let job = client
        .enqueue(&EnqueueRequest {
            queue: Some("idle".into()),
            ..EnqueueRequest::new("report.build")
        })
        .await
        .expect("enqueue");
    let id = job.id.to_string();
    // Cancelled only once the wait has said the job's state (its first status line), so
    // the wait sees the cancel happen rather than a job already ended.
    let mut child = command(&url, &["jobs", "wait", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn errand jobs wait");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
        child.stderr.take().expect("stderr"),
    ));
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a status line within 30 s")
        .expect("read stderr")
        .expect("a status line");
    assert!(
        first.contains(&id) && first.contains("available"),
        "{first}"
    );
    client.cancel(job.id).await.expect("cancel");
    let mut rest = String::new();
    while let Some(line) = lines.next_line().await.expect("read stderr") {
        rest.push_str(&line);
        rest.push('\n');
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the wait ends within 30 s of the cancel")
        .expect("wait");
    assert_eq!(
        status.code(),
        Some(5),
        "jobs wait of a cancelled job: {rest}"
    );
    assert!(rest.contains("ended cancelled"), "{rest}");

    // 6: the timeout passes on a job nobody works.
    let job = client
        .enqueue(&EnqueueRequest {
            queue: Some("nobody".into()),
            ..EnqueueRequest::new("report.build")
        })
        .await
        .expect("enqueue");
    let id = job.id.to_string();
    let out = errand(&url, &["jobs", "wait", &id, "--timeout", "1s"]).await;
    assert_exit(&out, 6, "jobs wait --timeout on an unworked job");
    assert!(stderr(&out).contains("still available"), "{}", stderr(&out));
    assert_no_backtrace(&out);
    // A timeout too short to ask in time still says what the job waits for (its queue).
    let out = errand(&url, &["jobs", "wait", &id, "--timeout", "1ms"]).await;
    assert_exit(&out, 6, "jobs wait --timeout 1ms");
    assert!(stderr(&out).contains("`nobody`"), "{}", stderr(&out));

    // --json: a wait for a job that ended dead prints that job on stdout, then exits 4.
    let out = errand(&url, &["--json", "jobs", "wait", &dead_id]).await;
    assert_exit(&out, 4, "--json jobs wait of a dead job");
    let job: Value = serde_json::from_slice(&out.stdout).expect("the job as JSON on stdout");
    assert_eq!(job["state"], "dead", "{job}");
    assert_eq!(job["id"], dead_id.as_str(), "{job}");
}

/// [`errand`] for a spawned task (owned arguments).
fn errand_owned(
    url: String,
    args: &[&str],
) -> impl std::future::Future<Output = Output> + Send + 'static {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        errand(&url, &refs).await
    }
}

#[tokio::test]
async fn flag_mistakes_exit_2_and_speak_flags() {
    let s = server().await;
    let url = s.url();
    for verb in ["requeue", "purge"] {
        let out = errand(url, &["dead", verb]).await;
        assert_exit(&out, 2, "dead with no selection");
        let text = stderr(&out);
        assert!(
            text.contains("--queue") && text.contains("--id") && text.contains("--all"),
            "{text}"
        );
        assert!(!text.contains(r#""all""#), "no JSON words: {text}");
    }
    let no_trigger = errand(url, &["schedules", "add", "nightly", "--kind", "k"]).await;
    assert_exit(&no_trigger, 2, "schedules add without --cron or --every");
    let text = stderr(&no_trigger);
    assert!(
        text.contains("--cron") && text.contains("--every"),
        "{text}"
    );
    let both = errand(
        url,
        &[
            "schedules",
            "add",
            "n",
            "--kind",
            "k",
            "--cron",
            "@daily",
            "--every",
            "5m",
        ],
    )
    .await;
    assert_exit(&both, 2, "--cron and --every together");
    for args in [
        &["jobs", "list"][..],
        &["worker", "--queue", "q", "--", "true"],
    ] {
        let bad_url = errand("localhost:7878", args).await;
        assert_exit(&bad_url, 2, "a --server without http://");
        assert!(
            stderr(&bad_url).contains("given by --server or ERRAND_SERVER"),
            "{args:?}: {}",
            stderr(&bad_url)
        );
    }
    let logs = errand(url, &["logs", "--follow", "nope"]).await;
    assert_exit(&logs, 2, "logs of a bad id");
    assert_eq!(
        stderr(&logs).matches("not a job id").count(),
        1,
        "{}",
        stderr(&logs)
    );
    for (args, named) in [
        (vec!["jobs", "show", "nope"], "nope"),
        (vec!["enqueue", "k", "--delay", "soon"], "--delay"),
        (vec!["enqueue", "k", "--payload", "{not json"], "--payload"),
        (
            vec!["jobs", "wait", UNKNOWN_JOB, "--timeout", "a while"],
            "--timeout",
        ),
        (vec!["dead", "requeue", "--id", "x"], "--id"),
        (
            vec!["schedules", "add", "n", "--kind", "k", "--every", "often"],
            "--every",
        ),
        // A bare number is not read as milliseconds: the unit is asked for.
        (vec!["jobs", "wait", UNKNOWN_JOB, "--timeout", "30"], "30s"),
        (vec!["status", "--watch", "2"], "--watch"),
        // An unreadable input file or program named on the command line.
        (
            vec!["enqueue", "--file", "/nonexistent/jobs.jsonl", "k"],
            "--file",
        ),
        (vec!["worker", "--", "wc", "-c"], "--queue"),
        (
            vec!["worker", "--queue", "q", "--", "errand-no-such-program"],
            "errand-no-such-program",
        ),
    ] {
        let out = errand(url, &args).await;
        assert_exit(&out, 2, &format!("{args:?}"));
        assert!(stderr(&out).contains(named), "{args:?}: {}", stderr(&out));
        assert_no_backtrace(&out);
    }
}

#[tokio::test]
async fn an_unknown_time_zone_is_refused_for_every_schedule() {
    let s = server().await;
    for trigger in [["--every", "5m"], ["--cron", "0 3 * * *"]] {
        let mut args = vec!["schedules", "add", "a", "--kind", "k"];
        args.extend(trigger);
        args.extend(["--timezone", "Mars/Olympus"]);
        let out = errand(s.url(), &args).await;
        assert_exit(&out, 1, &format!("{args:?}"));
        let text = stderr(&out);
        assert!(
            text.contains("Mars/Olympus") && text.contains("400"),
            "{args:?}: {text}"
        );
    }
}

#[tokio::test]
async fn a_duplicate_schedule_says_so_and_what_to_do() {
    let s = server().await;
    let url = s.url();
    let add = [
        "schedules",
        "add",
        "nightly",
        "--kind",
        "k",
        "--every",
        "1h",
    ];
    assert_exit(&errand(url, &add).await, 0, "first add");
    let again = errand(url, &add).await;
    assert_exit(&again, 1, "the server refuses a second");
    let text = stderr(&again);
    assert!(
        text.contains("schedule `nightly` already exists")
            && text.contains("errand schedules rm nightly")
            && text.contains("(409 already_exists)"),
        "{text}"
    );
    assert!(!text.contains("conflict: conflict"), "{text}");
}

#[tokio::test]
async fn json_errors_are_one_object_on_stderr() {
    let s = server().await;
    // The server refused.
    let out = errand(s.url(), &["--json", "jobs", "show", UNKNOWN_JOB]).await;
    assert_exit(&out, 1, "api error");
    let error = json_error(&out);
    assert_eq!(error["code"], "failure", "{error}");
    assert_eq!(error["exit_code"], 1, "{error}");
    assert_eq!(error["status"], 404, "{error}");
    assert_eq!(error["server_code"], "not_found", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("not found")),
        "{error}"
    );
    assert!(error["causes"].is_array(), "{error}");

    // No answer.
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = errand(&url, &["jobs", "list", "--json"]).await;
    assert_exit(&out, 3, "unreachable");
    let error = json_error(&out);
    assert_eq!(error["code"], "unreachable", "{error}");
    assert_eq!(error["exit_code"], 3, "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains(&url) && m.contains("connection refused")),
        "{error}"
    );

    // A usage mistake found by the command, ones found by the parser, and a missing
    // subcommand (whose help is not JSON and names no hidden command).
    for args in [
        vec!["--json", "dead", "requeue"],
        vec!["--json", "schedules", "add", "n", "--kind", "k"],
        vec!["--json", "jobs"],
        vec!["--json"],
    ] {
        let out = errand(s.url(), &args).await;
        assert_exit(&out, 2, &format!("{args:?}"));
        let error = json_error(&out);
        assert_eq!(error["code"], "usage", "{args:?}: {error}");
        assert_eq!(error["exit_code"], 2, "{args:?}: {error}");
        assert!(!stderr(&out).contains("__run-limited"), "{args:?}: {error}");
    }
    // A missing subcommand prints the command's help, also with ERRAND_SERVER set (which
    // clap counts as given, so it would not print the help by itself), or in JSON names
    // the command and its subcommands.
    let mut with_env = tokio::process::Command::new(bin());
    with_env.env("ERRAND_SERVER", s.url()).arg("jobs");
    let out = finish(with_env, &["jobs"]).await;
    assert_exit(&out, 2, "jobs");
    assert!(
        stderr(&out).contains("Usage: errand jobs") && stderr(&out).contains("explain"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("__run-limited"), "{}", stderr(&out));
    let out = errand(s.url(), &["--json", "jobs"]).await;
    let error = json_error(&out);
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("`errand jobs` needs a subcommand: list, show")),
        "{error}"
    );
}

#[tokio::test]
async fn store_commands_hide_client_flags_and_still_accept_them() {
    for name in ["serve", "export", "import"] {
        let out = errand("http://127.0.0.1:1", &[name, "--help"]).await;
        assert_exit(&out, 0, &format!("{name} --help"));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            !help.contains("--server") && !help.contains("--json"),
            "{name} --help shows a client flag: {help}"
        );
        assert!(help.contains("--data-dir"), "{name}: {help}");
    }
    let out = errand("http://127.0.0.1:1", &["jobs", "list", "--help"]).await;
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--server") && help.contains("--json"),
        "{help}"
    );
    // An ERRAND_SERVER (or --server) meant for client commands does not stop a server.
    let (s, _dir) = server_with(&["--server", "http://127.0.0.1:9"]).await;
    assert_exit(&errand(s.url(), &["jobs", "list"]).await, 0, "it serves");
}
