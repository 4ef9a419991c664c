//! `errand serve` at start: a start that fails fails before it creates anything (no data
//! directory, file or PostgreSQL schema) and says why; a start that works says what it uses
//! (store, config, jobs directory, roles, webhooks); PostgreSQL connection errors name the
//! server and the cause, never the password; `GET /` points to the API; logs written to a
//! pipe carry no colour codes; `PUT /v1/schedules/{name}` takes its name from the path.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{bin, server, server_with, Raw};
use errand_testkit::{postgres_url, PgSchema, ServerProcess};

/// What a `serve` that was expected to stop printed, and how it ended.
struct Ended {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `errand serve ARGS` (with `RUST_BACKTRACE=1`) that must stop by itself in 60 s.
async fn serve_fails(args: &[&str], cwd: &Path) -> Ended {
    let child = tokio::process::Command::new(bin())
        .arg("serve")
        .args(args)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "1")
        .env("ERRAND_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn errand serve");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("errand serve stopped by itself")
        .expect("output");
    let ended = Ended {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !ended.success,
        "errand serve {args:?} should have failed: {}",
        ended.stdout
    );
    assert!(
        !ended.stderr.contains("stack backtrace") && !ended.stderr.contains("Backtrace"),
        "no backtrace without --debug: {}",
        ended.stderr
    );
    ended
}

/// An address with a listener on it, held until dropped.
fn taken_port() -> (std::net::TcpListener, String) {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr").to_string();
    (held, addr)
}

/// A local port nothing listens on.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The test database's URL with a password the server never asks for (trust), so the
/// test can check it is never printed.
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (userinfo, host) = rest.split_once('@').expect("the test URL names a user");
    let user = userinfo.split(':').next().unwrap_or(userinfo);
    format!("{scheme}://{user}:{password}@{host}")
}

/// `host:port` of a PostgreSQL URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    let hp = rest.split(['/', '?']).next().unwrap_or(rest);
    if hp.contains(':') {
        hp.to_string()
    } else {
        format!("{hp}:5432")
    }
}

async fn schema_exists(url: &str, schema: &str) -> bool {
    let client = errand_testkit::pg_connect(url).await.expect("connect");
    let row = client
        .query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .expect("query");
    row.get::<_, i64>(0) > 0
}

#[tokio::test]
async fn a_taken_port_on_sqlite_stops_the_start_before_the_data_directory_exists() {
    let base = tempfile::tempdir().expect("temp");
    let data = base.path().join("data");
    let (_held, addr) = taken_port();
    let ended = serve_fails(
        &["--listen", &addr, "--data-dir", &data.display().to_string()],
        base.path(),
    )
    .await;
    assert!(
        ended
            .stderr
            .contains(&format!("{addr} is in use: is another errand running?")),
        "{}",
        ended.stderr
    );
    assert!(ended.stderr.contains("--listen"), "{}", ended.stderr);
    assert!(!data.exists(), "the data directory was created");
    assert!(ended.stdout.is_empty(), "{}", ended.stdout);
}

#[tokio::test]
async fn a_taken_port_on_postgres_stops_the_start_before_the_schema_exists() {
    let Some(schema) =
        PgSchema::create("a_taken_port_on_postgres_stops_the_start_before_the_schema_exists").await
    else {
        return;
    };
    let base = tempfile::tempdir().expect("temp");
    let (_held, addr) = taken_port();
    let ended = serve_fails(
        &[
            "--listen",
            &addr,
            "--store",
            &schema.url,
            "--pg-schema",
            &schema.name,
        ],
        base.path(),
    )
    .await;
    assert!(ended.stderr.contains("is in use"), "{}", ended.stderr);
    assert!(
        !schema_exists(&schema.url, &schema.name).await,
        "schema {} was created by a start that failed",
        schema.name
    );
}

#[tokio::test]
async fn start_lines_on_sqlite_name_the_store_config_jobs_directory_and_roles() {
    let (s, _dir) = server_with(&[]).await;
    let lines = s.stdout_lines();
    // Other lines may follow later; those printed at start come at once after the first.
    assert!(
        lines[0].starts_with("errand listening on http://"),
        "{lines:?}"
    );
    let text = lines.join("\n");
    for expected in [
        "store: sqlite ",
        "journal_mode=wal synchronous=full, created new and empty)",
        "config: none (flags and ERRAND_* variables only)",
        "jobs directory: ./jobs (absent: no script jobs)",
        "roles: api, worker, scheduler",
        "webhooks: off",
    ] {
        assert!(text.contains(expected), "no {expected:?} in {lines:?}");
    }
    assert!(!text.contains("data directory"), "{lines:?}");

    // A configuration file and a jobs directory with one definition, named as given.
    let jobs = common::jobs_dir::JobsDir::new();
    jobs.add("good", "", "run.sh", "#!/bin/bash\necho fine\n");
    // And one folder with two problems: counted as one folder.
    jobs.add(
        "bad",
        "max_attempts = 0\nconcurrency = 0\n",
        "run.sh",
        "#!/bin/bash\necho never\n",
    );
    let conf = tempfile::tempdir().expect("temp");
    let toml = conf.path().join("errand.toml");
    std::fs::write(&toml, "roles = [\"api\", \"scheduler\"]\n").expect("errand.toml");
    let (s, _dir) = server_with(&[
        "--config",
        &toml.display().to_string(),
        "--jobs-dir",
        &jobs.path_str(),
    ])
    .await;
    let text = s.stdout_lines().join("\n");
    assert!(
        text.contains(&format!("config: {}", toml.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "jobs directory: {} (1 definition, 1 folder that did not load: ",
            jobs.path_str()
        )),
        "{text}"
    );
    assert!(text.contains("roles: api, scheduler"), "{text}");
    let listed = tokio::process::Command::new(common::bin())
        .args(["definitions", "list", "--server", s.url()])
        .output()
        .await
        .expect("errand definitions list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("1 folder did not load:"), "{listed}");
    assert_eq!(listed.matches("  bad: ").count(), 2, "{listed}");
}

#[tokio::test]
async fn start_lines_on_postgres_name_server_database_and_schema_and_no_password() {
    let Some(schema) =
        PgSchema::create("start_lines_on_postgres_name_server_database_and_schema").await
    else {
        return;
    };
    let url = with_password(&schema.url, "sekrit-h3");
    let dir = tempfile::tempdir().expect("temp");
    let s = errand_testkit::ServerProcess::start_in(
        &bin(),
        dir.path(),
        &["--store", &url, "--pg-schema", &schema.name],
    )
    .await
    .expect("start on PostgreSQL");
    let lines = s.stdout_lines();
    let text = lines.join("\n");
    assert!(
        lines[0].starts_with("errand listening on http://"),
        "{lines:?}"
    );
    let store = lines
        .iter()
        .find(|l| l.starts_with("store: postgres "))
        .unwrap_or_else(|| panic!("no store line: {lines:?}"));
    assert!(store.contains(&host_port(&schema.url)), "{store}");
    assert!(
        store.contains(&format!("schema {} (created new and empty)", schema.name)),
        "{store}"
    );
    assert!(store.contains(" database "), "{store}");
    assert!(
        !text.contains("sekrit-h3"),
        "the password was printed: {text}"
    );
    assert!(
        !text.contains("data directory"),
        "PostgreSQL uses no data directory: {text}"
    );
}

#[tokio::test]
async fn an_unreachable_postgres_names_host_port_and_cause_and_no_password() {
    let base = tempfile::tempdir().expect("temp");
    let port = free_port();
    let url = format!("postgres://errand:sekrit-h3@127.0.0.1:{port}/jobsdb");
    let ended = serve_fails(&["--listen", "127.0.0.1:0", "--store", &url], base.path()).await;
    for expected in [
        &format!("127.0.0.1:{port}") as &str,
        "database `jobsdb`",
        "user `errand`",
        "connection refused",
    ] {
        assert!(
            ended.stderr.contains(expected),
            "no {expected:?} in {}",
            ended.stderr
        );
    }
    assert!(!ended.stderr.contains("sekrit-h3"), "{}", ended.stderr);
}

#[tokio::test]
async fn a_missing_database_is_named() {
    let Some(schema) = PgSchema::create("a_missing_database_is_named").await else {
        return;
    };
    let base = tempfile::tempdir().expect("temp");
    let (server_part, _) = schema.url.rsplit_once('/').expect("database in URL");
    let url = format!("{server_part}/errand_no_such_database");
    let ended = serve_fails(&["--listen", "127.0.0.1:0", "--store", &url], base.path()).await;
    assert!(
        ended
            .stderr
            .contains("database `errand_no_such_database` does not exist"),
        "{}",
        ended.stderr
    );
    assert!(
        ended.stderr.contains(&host_port(&schema.url)),
        "{}",
        ended.stderr
    );
}

#[tokio::test]
async fn sslmode_verify_full_without_a_root_certificate_is_refused_with_what_to_do() {
    let base = tempfile::tempdir().expect("temp");
    let url = postgres_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}sslmode=verify-full");
    let ended = serve_fails(&["--listen", "127.0.0.1:0", "--store", &url], base.path()).await;
    for expected in [
        "sslmode=verify-full needs sslrootcert=PATH",
        &host_port(&url) as &str,
    ] {
        assert!(
            ended.stderr.contains(expected),
            "no {expected:?} in {}",
            ended.stderr
        );
    }
}

#[tokio::test]
async fn get_root_answers_a_page_pointing_to_the_openapi_document() {
    let s = server().await;
    let http = common::http_client();
    let page = http
        .get(format!("{}/", s.url()))
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), 200);
    let content_type = page.headers()["content-type"]
        .to_str()
        .expect("type")
        .to_string();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let body = page.text().await.expect("body");
    assert!(body.contains("errand"), "{body}");
    assert!(body.contains("/v1/openapi.json"), "{body}");
    assert!(body.contains("/healthz"), "{body}");

    let json: serde_json::Value = http
        .get(format!("{}/", s.url()))
        .header("accept", "application/json")
        .send()
        .await
        .expect("GET / as JSON")
        .json()
        .await
        .expect("JSON");
    assert_eq!(json["name"], "errand");
    assert_eq!(json["openapi"], "/v1/openapi.json");
    assert!(json["version"].is_string(), "{json}");
}

#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let base = tempfile::tempdir().expect("temp");
    let mut child = tokio::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(base.path().join("data"))
        .current_dir(base.path())
        .env("RUST_BACKTRACE", "1")
        .env("ERRAND_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("address line in time")
        .expect("read")
        .expect("a line");
    assert!(first.starts_with("errand listening on"), "{first}");
    // Everything the start logs is written before the address line.
    child
        .start_kill()
        .expect("kill the server this test started");
    let out = child.wait_with_output().await.expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INFO"), "the start logged: {stderr}");
    assert!(
        !stderr.contains("\x1b["),
        "colour codes in piped logs: {stderr:?}"
    );
}

#[tokio::test]
async fn put_schedule_takes_its_name_from_the_path() {
    let s = server().await;
    let raw = Raw::new(&s);
    let (status, json) = raw
        .send(
            "PUT",
            "/v1/schedules/nightly",
            Some(br#"{"cron":"@daily","job":{"kind":"report"}}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["name"], "nightly", "{json}");

    let (status, json) = raw
        .send(
            "PUT",
            "/v1/schedules/nightly",
            Some(br#"{"name":"nightly","cron":"@hourly","job":{"kind":"report"}}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 200, "the same name in the body is fine: {json}");

    let (status, json) = raw
        .send(
            "PUT",
            "/v1/schedules/nightly",
            Some(br#"{"name":"weekly","cron":"@daily","job":{"kind":"report"}}"#.to_vec()),
        )
        .await;
    assert_eq!(status, 400, "{json}");
    let message = json["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("weekly") && message.contains("nightly") && message.contains("path"),
        "{message}"
    );
}

#[tokio::test]
async fn a_bad_setting_stops_the_start_before_the_data_directory_exists() {
    let base = tempfile::tempdir().expect("temp");
    let data = base.path().join("data");
    let data_arg = data.display().to_string();
    let not_a_dir = base.path().join("jobs-file");
    std::fs::write(&not_a_dir, "").expect("file");
    let not_a_dir = not_a_dir.display().to_string();
    let cases: [(&[&str], &str); 2] = [
        (&["--jobs-dir", &not_a_dir], "is not a directory"),
        (&["--webhook-secret", "not-a-secret"], "webhook_secrets[0]"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["--listen", "127.0.0.1:0", "--data-dir", &data_arg];
        all.extend_from_slice(args);
        let ended = serve_fails(&all, base.path()).await;
        assert!(
            ended.stderr.contains(expected),
            "{args:?}: no {expected:?} in {}",
            ended.stderr
        );
        assert!(!data.exists(), "{args:?}: the data directory was created");
    }
    // A duration in errand.toml without its unit says how to write it, whether a bare
    // number or a quoted one (on a flag a number is milliseconds; in the file it is refused).
    let conf = base.path().join("errand.toml");
    let conf_arg = conf.display().to_string();
    for (line, says) in [
        (
            "idle_timeout = 5\n",
            r#"`5` has no unit: write it as text with one: "5s", "5m""#,
        ),
        (
            "retention = \"7\"\n",
            r#"`"7"` has no unit: write it with one: "7s", "7m", "7h" or "7d""#,
        ),
    ] {
        std::fs::write(&conf, line).expect("errand.toml");
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data_arg,
            "--config",
            &conf_arg,
        ];
        let ended = serve_fails(&args, base.path()).await;
        assert!(ended.stderr.contains(says), "{line}: {}", ended.stderr);
        assert!(!data.exists(), "{line}: the data directory was created");
    }
}

#[tokio::test]
async fn a_node_without_a_webhook_secret_says_which_subscriptions_it_leaves_undelivered() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let dir = tempfile::tempdir().expect("temp dir");
    let mut with =
        ServerProcess::start_in(&common::bin(), dir.path(), &["--webhook-secret", SECRET])
            .await
            .expect("start");
    let resp = common::http_client()
        .post(format!("{}/v1/subscriptions", with.url()))
        .json(&serde_json::json!({"url": "https://example.com/hook", "events": ["job.dead"]}))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(resp.status().as_u16(), 201);
    assert!(with.terminate().await);
    let without = ServerProcess::start_in(&common::bin(), dir.path(), &[])
        .await
        .expect("start");
    let text = without.stdout_lines().join("\n");
    assert!(
        text.contains(
            "webhooks: off (no webhook_secrets): this node delivers none of the 1 subscription in the store"
        ),
        "{text}"
    );
}
