//! The CLI's extras against the real binary: completion scripts and man pages generated
//! from the command definitions, `errand enqueue --file` (a JSON-lines file in batches,
//! checked whole first), and progress bars that never reach a stderr that is not a
//! terminal.

mod common;

use std::path::Path;
use std::process::Output;

use errand_api::{EnqueueRequest, JobListQuery};
use errand_client::Client;

use common::bin;

/// Runs the binary with `RUST_BACKTRACE=1` (as every CLI test does) against `server`.
async fn errand(server: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(bin())
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("ERRAND_SERVER", server)
        .output()
        .await
        .expect("run errand")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn count(client: &Client, queue: &str) -> usize {
    common::all_jobs(
        client,
        JobListQuery {
            queue: Some(queue.into()),
            ..Default::default()
        },
    )
    .await
    .len()
}

#[tokio::test]
async fn completions_name_the_commands_for_every_shell() {
    let out = errand("http://127.0.0.1:9", &["completions", "bash"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = text(&out.stdout);
    assert!(script.contains("complete -F _errand"), "{script}");
    for word in [
        "enqueue",
        "jobs",
        "wait",
        "schedules",
        "completions",
        "--server",
    ] {
        assert!(script.contains(word), "bash completions lack `{word}`");
    }
    assert!(
        !script.contains("__run-limited"),
        "bash offers a hidden command"
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = errand("http://127.0.0.1:9", &["completions", shell]).await;
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("enqueue"), "{shell}");
        assert!(
            !text(&out.stdout).contains("__run-limited"),
            "{shell} offers a hidden command"
        );
    }
    let out = errand("http://127.0.0.1:9", &["completions", "tcsh"]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[tokio::test]
async fn man_writes_a_page_per_command_and_none_for_hidden_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_dir = dir.path().join("man1");
    let out = errand(
        "http://127.0.0.1:9",
        &["man", "--out-dir", out_dir.to_str().expect("utf-8 path")],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = |name: &str| std::fs::read_to_string(out_dir.join(name));
    let top = page("errand.1").expect("errand.1");
    assert!(top.contains(".TH errand"), "{top}");
    let wait = page("errand-jobs-wait.1").expect("errand-jobs-wait.1");
    assert!(wait.contains("timeout"), "{wait}");
    for name in ["errand-enqueue.1", "errand-schedules-add.1", "errand-man.1"] {
        assert!(out_dir.join(name).exists(), "{name} missing");
    }
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("run-limited")),
        "a hidden command got a page: {names:?}"
    );
    // Every page written is listed on stdout.
    assert_eq!(text(&out.stdout).lines().count(), names.len());
}

#[tokio::test]
async fn enqueue_file_sends_every_line_once_and_a_bad_line_sends_nothing() {
    let server = common::server().await;
    let client = server.client().expect("client");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("jobs.jsonl");
    let mut lines = String::new();
    for n in 0..2500 {
        // Every fifth line names its own queue and kind; the rest take KIND and --queue.
        if n % 5 == 0 {
            lines.push_str(&format!(
                "{{\"kind\": \"own\", \"queue\": \"bulk\", \"payload\": {{\"n\": {n}}}, \"idempotency_key\": \"line-{n}\"}}\n"
            ));
        } else {
            lines.push_str(&format!(
                "{{\"payload\": {{\"n\": {n}}}, \"idempotency_key\": \"line-{n}\"}}\n"
            ));
        }
        if n == 1200 {
            lines.push_str("\n   \n");
        }
    }
    std::fs::write(&file, &lines).expect("write jobs");
    let path = file.to_str().expect("utf-8 path");
    let args = [
        "enqueue", "--file", path, "mail", "--queue", "bulk", "--tag", "import",
    ];

    let out = errand(server.url(), &args).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "sent 2500 jobs: 2500 new, 0 already there by idempotency key"
    );
    assert_eq!(count(&client, "bulk").await, 2500);
    let own = common::all_jobs(
        &client,
        JobListQuery {
            kind: Some("own".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(own.len(), 500, "lines keep their own kind");
    let tagged = common::all_jobs(
        &client,
        JobListQuery {
            tag: Some("import".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(tagged.len(), 2500, "--tag fills every line");

    // A re-run: the idempotency keys return the first jobs.
    let out = errand(server.url(), &args).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "sent 2500 jobs: 0 new, 2500 already there by idempotency key"
    );
    assert_eq!(count(&client, "bulk").await, 2500);

    // A bad line near the end: a usage error naming it, and nothing of the file sent.
    let bad = dir.path().join("bad.jsonl");
    let mut text_bad = String::new();
    for n in 0..1500 {
        text_bad.push_str(&format!("{{\"payload\": {{\"n\": {n}}}}}\n"));
    }
    text_bad.push_str("[\"not\", \"an object\"]\n");
    std::fs::write(&bad, &text_bad).expect("write bad");
    let bad_path = bad.to_str().expect("utf-8 path");
    let out = errand(
        server.url(),
        &["enqueue", "--file", bad_path, "mail", "--queue", "refused"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("line 1501"), "{err}");
    assert!(err.contains("not a JSON object"), "{err}");
    assert!(!err.contains("stack backtrace"), "{err}");
    assert_eq!(
        count(&client, "refused").await,
        0,
        "a bad file sends nothing"
    );

    // A field of the wrong type: named, in the API's words, as the server would answer.
    std::fs::write(&bad, "{\"kind\": \"a\", \"priority\": \"high\"}\n").expect("write bad");
    let out = errand(server.url(), &["enqueue", "--file", bad_path]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(r#"line 1: priority: invalid type: string "high", expected an integer"#),
        "{err}"
    );

    // A line without a kind when no KIND is given: the same.
    std::fs::write(&bad, "{\"kind\": \"a\"}\n{\"payload\": 1}\n").expect("write bad");
    let out = errand(
        server.url(),
        &[
            "enqueue", "--file", bad_path, "--queue", "refused", "--json",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err: serde_json::Value =
        serde_json::from_slice(&out.stderr).expect("a JSON error with --json");
    assert_eq!(err["error"]["code"], "usage");
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("line 2") && message.contains("kind"),
        "{message}"
    );
    assert_eq!(count(&client, "refused").await, 0);

    // --json: one object per job, in file order, with its line number.
    std::fs::write(&bad, "{\"kind\": \"a\"}\n\n{\"kind\": \"b\"}\n").expect("write");
    let out = errand(
        server.url(),
        &["enqueue", "--file", bad_path, "--queue", "lines", "--json"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(printed.len(), 2);
    assert_eq!(
        (printed[0]["line"].as_u64(), printed[1]["line"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(printed[1]["inserted"], true);
    assert_eq!(count(&client, "lines").await, 2);
}

/// No bar drawn into a pipe. indicatif draws nothing to a stderr that is not a terminal on
/// its own, so this only catches errand forcing a draw target (or writing `\r` lines itself);
/// it cannot show that a terminal gets a bar.
fn no_escape_codes(what: &str, out: &Output) {
    let err = text(&out.stderr);
    assert!(out.status.success(), "{what}: {err}");
    assert!(
        !err.contains('\u{1b}') && !err.contains('\r'),
        "{what} drew a progress bar into a pipe: {err:?}"
    );
}

#[tokio::test]
async fn export_and_import_draw_no_progress_bar_into_a_pipe() {
    let mut server = common::server().await;
    let client = server.client().expect("client");
    for n in 0..1200 {
        client
            .enqueue(&EnqueueRequest {
                queue: Some("moved".into()),
                payload: Some(serde_json::json!({ "n": n })),
                ..EnqueueRequest::new("move")
            })
            .await
            .expect("enqueue");
    }
    let data_dir = server.data_dir().to_path_buf();
    assert!(server.terminate().await, "the server stops cleanly");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("export.jsonl");
    let unused = "http://127.0.0.1:9";
    let out = errand(
        unused,
        &[
            "export",
            "--data-dir",
            path_str(&data_dir),
            "--file",
            path_str(&file),
        ],
    )
    .await;
    no_escape_codes("export", &out);
    assert!(
        text(&out.stderr).contains("exported 1200 jobs"),
        "{}",
        text(&out.stderr)
    );

    let target = dir.path().join("target");
    let out = errand(
        unused,
        &[
            "import",
            "--data-dir",
            path_str(&target),
            "--file",
            path_str(&file),
        ],
    )
    .await;
    no_escape_codes("import", &out);
    assert!(
        text(&out.stderr).contains(": 1200 of 1200 jobs"),
        "{}",
        text(&out.stderr)
    );

    // No store there: export refuses and creates nothing.
    let nowhere = dir.path().join("nowhere").join("x");
    let out = errand(unused, &["export", "--data-dir", path_str(&nowhere)]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no store at"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(!nowhere.exists(), "export created {}", nowhere.display());
    // A missing file: import fails before it creates a store.
    let fresh = dir.path().join("fresh");
    let missing = dir.path().join("missing.jsonl");
    let out = errand(
        unused,
        &[
            "import",
            "--data-dir",
            path_str(&fresh),
            "--file",
            path_str(&missing),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!fresh.exists(), "import created {}", fresh.display());
    // A file that cannot be read is named.
    let out = errand(
        unused,
        &[
            "import",
            "--data-dir",
            path_str(&target),
            "--file",
            path_str(dir.path()),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(path_str(dir.path())),
        "{}",
        text(&out.stderr)
    );
}

/// Runs `errand ARGS | head -n LINES` in bash with `pipefail`: errand's own exit code
/// unless it is 0, and its stderr.
async fn into_head(server: &str, args: &str, lines: u32) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = dir.path().join("stderr");
    let script = format!(
        "set -o pipefail; \"$ERRAND\" {args} 2>\"{}\" | head -n {lines} >/dev/null",
        err.display()
    );
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new("bash")
            .args(["-c", &script])
            .env("ERRAND", bin())
            .env("RUST_BACKTRACE", "1")
            .env("ERRAND_SERVER", server)
            .current_dir(dir.path())
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("errand {args} | head did not end within a minute"))
    .expect("run bash");
    (
        out.status.code(),
        std::fs::read_to_string(&err).unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_reader_that_stops_early_ends_the_command_quietly() {
    let server = common::server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // More than a pipe holds (64 KiB), so errand is still writing when head has gone.
    let file = dir.path().join("jobs.jsonl");
    let lines: String = (0..1000)
        .map(|n| format!("{{\"payload\": {{\"n\": {n}}}}}\n"))
        .collect();
    std::fs::write(&file, lines).expect("write jobs");
    let file = path_str(&file);
    let out = errand(
        server.url(),
        &["enqueue", "--file", file, "count.up", "--queue", "piped"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    for args in [
        format!("--json enqueue --file {file} count.up --queue piped-too"),
        "--json jobs list --queue piped --limit 1000".to_string(),
        "jobs list --queue piped --limit 1000".to_string(),
        "status --watch 200ms".to_string(),
    ] {
        let (code, err) = into_head(server.url(), &args, 2).await;
        assert_eq!(code, Some(0), "errand {args} | head: {err}");
        assert!(err.is_empty(), "errand {args} | head said: {err}");
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Claims the `logs` queue's next job with a long lease: its id and lease token.
async fn claim_logs_job(raw: &common::Raw) -> (String, String) {
    let (status, claimed) = raw
        .post(
            "/v1/queues/logs/claim",
            r#"{"worker":"w","lease_ms":600000}"#,
        )
        .await;
    assert_eq!(status, 200, "{claimed}");
    let field = |name: &str| {
        claimed["jobs"][0][name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {claimed}"))
            .to_string()
    };
    (field("id"), field("lease_token"))
}

/// Enqueues a job on the `logs` queue and claims it: its id and lease token.
async fn chatty_job(raw: &common::Raw) -> (String, String) {
    let (status, job) = raw
        .post("/v1/jobs", r#"{"kind":"chatty","queue":"logs"}"#)
        .await;
    assert_eq!(status, 201, "{job}");
    claim_logs_job(raw).await
}

/// `errand logs ID --follow` against `server`, its output and errors piped.
fn follow_logs(server: &str, id: &str) -> tokio::process::Child {
    tokio::process::Command::new(bin())
        .args(["logs", id, "--follow"])
        .env("ERRAND_SERVER", server)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start errand logs --follow")
}

/// What an ended `child` wrote to its piped stderr.
async fn stderr_of(child: &mut tokio::process::Child) -> String {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut e, &mut stderr).await;
    }
    stderr
}

/// Ships `lines` as stdout lines of `attempt` of job `id`, as a worker holding `token` does.
async fn post_log_lines(
    raw: &common::Raw,
    id: &str,
    token: &str,
    attempt: u32,
    lines: impl Iterator<Item = String>,
) {
    let lines: Vec<serde_json::Value> = lines
        .map(|line| serde_json::json!({"at": "2026-01-01T00:00:00Z", "stream": "stdout", "line": line}))
        .collect();
    let body = serde_json::json!({"lease_token": token, "attempt": attempt, "lines": lines});
    let (status, answer) = raw
        .post(&format!("/v1/jobs/{id}/logs"), &body.to_string())
        .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_followed_log_cut_while_its_reader_paused_picks_up_where_it_left_off_and_skips_no_attempt(
) {
    // The server lets go of a connection whose writes find no room for its idle timeout; a
    // `logs --follow` whose output nobody reads for a while (a paused pager) is such a
    // connection. It must reconnect after the last line it showed: every line once, in
    // order.
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let server = errand_testkit::ServerProcess::start_logging_in(
        &bin(),
        &dir.path().join("data"),
        &["--idle-timeout", "1s", "--max-log-lines", "100000"],
        &log,
    )
    .await
    .expect("start errand serve");
    let raw = common::Raw::new(&server);
    let (id, token) = chatty_job(&raw).await;
    // Lines of about 2 KB, 8 MB more than this machine lets a client's socket buffer grow
    // to (`tcp_rmem`): more than a pipe, that buffer and the server's unsent bytes hold
    // together.
    let filler = "x".repeat(2000);
    let receive_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem")
        .ok()
        .and_then(|t| t.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(6 << 20);
    let batch_lines = 2_000;
    let batches = (receive_max + (8 << 20)).div_ceil(batch_lines * 2000);
    let total = batches * batch_lines;
    for batch in 0..batches {
        let lines =
            (0..batch_lines).map(|i| format!("line {} {filler}", batch * batch_lines + i + 1));
        post_log_lines(&raw, &id, &token, 1, lines).await;
    }
    let mut follower = follow_logs(server.url(), &id);
    // Nobody reads its output until the server has let its connection go.
    errand_testkit::eventually(
        "the server cut the paused follower",
        std::time::Duration::from_secs(30),
        || async {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("stopped taking its answer")
                .then_some(())
        },
    )
    .await;
    // Meanwhile the attempt fails and the next one runs to its end: the follower, once
    // read again, shows both, none skipped.
    let (status, failed) = raw
        .post(
            &format!("/v1/jobs/{id}/fail"),
            &serde_json::json!({ "lease_token": token, "error": "x", "retry_in_ms": 0 })
                .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{failed}");
    let (_, token) = claim_logs_job(&raw).await;
    post_log_lines(&raw, &id, &token, 2, (1..=3).map(|i| format!("second {i}"))).await;
    let (status, done) = raw
        .post(
            &format!("/v1/jobs/{id}/complete"),
            &serde_json::json!({ "lease_token": token }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let mut stdout = follower.stdout.take().expect("stdout");
    let mut shown = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut shown),
    )
    .await
    .expect("the follower ended within a minute")
    .expect("read its output");
    let status = follower.wait().await.expect("wait for the follower");
    let stderr = stderr_of(&mut follower).await;
    assert!(status.success(), "the follower failed: {stderr}");
    let numbers: Vec<usize> = shown
        .lines()
        .filter_map(|l| l.split("line ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        numbers,
        (1..=total).collect::<Vec<_>>(),
        "every line of the first attempt once, in order"
    );
    let seconds: Vec<&str> = shown
        .lines()
        .filter_map(|l| l.split_once("#2 INFO  ").map(|(_, line)| line))
        .collect();
    assert_eq!(
        seconds,
        ["second 1", "second 2", "second 3"],
        "the attempt that ran while the output sat unread"
    );
}

#[tokio::test]
async fn a_followed_log_whose_server_stays_away_gives_up_after_its_reconnects() {
    // A server gone for good (killed, never back): the follower tries again 1, 2 and 4 s
    // apart, then fails saying why, instead of failing at the first refusal or for ever.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = errand_testkit::ServerProcess::start_in(&bin(), dir.path(), &[])
        .await
        .expect("start errand serve");
    let raw = common::Raw::new(&server);
    let (id, token) = chatty_job(&raw).await;
    post_log_lines(&raw, &id, &token, 1, std::iter::once("first".to_string())).await;
    let mut follower = follow_logs(server.url(), &id);
    let stdout = follower.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("the first line within 30 s")
        .expect("read")
        .expect("a line");
    assert!(first.ends_with("first"), "{first}");
    server.kill9().await;
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), follower.wait())
        .await
        .expect("the follower gave up within a minute")
        .expect("wait for the follower");
    let stderr = stderr_of(&mut follower).await;
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("broke 4 times in a row without a new line"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("going on after the last line shown").count(),
        4,
        "once for the break, once for each refused reconnect before the last: {stderr}"
    );
}
