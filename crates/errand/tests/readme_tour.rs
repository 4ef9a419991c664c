//! The README works as written: the ```sh blocks of its "Five-minute tour", extracted in
//! order, run for real with bash against the binary under test. The test breaks when the
//! README and the binary disagree.
//!
//! How the tour is run (the rules; keep exceptions few):
//! - The tour is the README from `## Five-minute tour` to the next `## ` heading. Every
//!   ```` ```sh ```` block in it runs, in order, in ONE bash process (so shell variables carry
//!   from block to block, as in the reader's second terminal) with `set -euo pipefail`, in
//!   an empty directory holding a copy of the repository's `examples/`. A block tagged
//!   ```` ```sh no-test ```` does not run (`cargo install`). A failing command fails the test
//!   naming its README line. A README line that expects a failure says so itself
//!   (`|| echo "exit $?"`) and its comment names the code (`# exit 6: timed out`): the test
//!   fails when the command exits with any other code (0 included).
//! - A line whose comment says `run it twice` (`errand enqueue --file`) runs twice, and the
//!   second run must report that every job was already there.
//! - Each README line keeps its line number in the script, so bash's `$LINENO` is the
//!   README's line number.
//! - `errand` is the binary under test: a temporary directory with an `errand` symlink comes
//!   first on `PATH`. `curl` fails on an HTTP error status (`--fail-with-body`), so a
//!   refused request in the README fails the test too.
//! - A command starting `errand serve` or `errand worker` is one the reader runs in a
//!   terminal of its own: the test starts it in the background (a server: then waits until
//!   its `/readyz` answers).
//! - A comment line starting `# stop the` (e.g. `# stop the server (Ctrl-C in its
//!   terminal), then:`) is the reader pressing Ctrl-C: the test sends SIGINT to every
//!   process it started in the background and waits for each to exit.
//! - A command whose comment ends `Ctrl-C to stop` follows forever: the test runs it for 2
//!   seconds, then interrupts it; it must not fail before (`curl` with `--fail-with-body`
//!   there too).
//! - Text rewritten before running: port `7878` and `7879` become free ports, the
//!   PostgreSQL URL the test's (`ERRAND_TEST_POSTGRES_URL`), the schema `errand_tour` a fresh
//!   schema dropped afterwards. `ERRAND_LISTEN` and `ERRAND_SERVER` point the defaults at
//!   the first free port.
//! - Without PostgreSQL the tour runs up to the first block naming `postgres://` and the
//!   rest is skipped loudly (unless `ERRAND_REQUIRE_POSTGRES=1`, which fails instead).
//!
//! `README_TOUR_KEEP=1` keeps the tour's directory (its `.logs/` and the script run).

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use errand_testkit::PgSchema;

/// The whole tour must finish in this time.
const TOUR_LIMIT: Duration = Duration::from_secs(180);

/// The tour's ```sh blocks: (README line of the block's first line, its lines).
fn tour_blocks(readme: &str) -> Vec<(usize, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut in_tour = false;
    let mut block: Option<(usize, Vec<String>, bool)> = None;
    for (i, line) in readme.lines().enumerate() {
        let n = i + 1;
        if let Some((start, lines, run)) = block.as_mut() {
            if line.trim_start().starts_with("```") {
                if *run {
                    blocks.push((*start, std::mem::take(lines)));
                }
                block = None;
            } else {
                lines.push(line.to_string());
            }
            continue;
        }
        if line.starts_with("## ") {
            if in_tour {
                break;
            }
            in_tour = line.trim() == "## Five-minute tour";
            continue;
        }
        if let Some(info) = line.trim_start().strip_prefix("```") {
            let mut words = info.split_whitespace();
            let sh = words.next() == Some("sh");
            let no_test = words.any(|w| w == "no-test");
            block = Some((n + 1, Vec::new(), in_tour && sh && !no_test));
        }
    }
    assert!(
        !blocks.is_empty(),
        "README.md has no ```sh blocks under `## Five-minute tour`"
    );
    blocks
}

/// Where a shell comment starts in `line` (a `#` at a word's start outside quotes).
fn comment_start(line: &str) -> Option<usize> {
    let (mut single, mut double, mut prev) = (false, false, ' ');
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && prev != '\\' => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return Some(i),
            _ => {}
        }
        prev = c;
    }
    None
}

/// How a README line says it expects a failure; its comment then names the code (`exit 6`).
const EXPECT_FAILURE: &str = "|| echo \"exit $?\"";

/// The exit code a README comment promises: the number after `exit `.
fn expected_exit(comment: &str) -> Option<u8> {
    let at = comment.find("exit ")? + "exit ".len();
    let digits: String = comment[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What the test runs for one README line (see the module's rules).
fn transform(line: &str, n: usize) -> String {
    let trimmed = line.trim_start();
    if trimmed.to_lowercase().starts_with("# stop the") {
        return "__stop_all".to_string();
    }
    let (command, comment) = match comment_start(line) {
        Some(i) => (line[..i].trim_end(), &line[i..]),
        None => (line.trim_end(), ""),
    };
    if let Some(cmd) = command.strip_suffix(EXPECT_FAILURE) {
        let code = expected_exit(comment).unwrap_or_else(|| {
            panic!("README.md line {n}: `{EXPECT_FAILURE}` without `exit N` in its comment")
        });
        return format!(
            "__rc=0; {} || __rc=$?; echo \"exit $__rc\"; __expect_exit {n} {code} \"$__rc\"",
            cmd.trim_end()
        );
    }
    if comment.contains("run it twice") {
        return format!(
            "{command}; __out=$({command}); echo \"$__out\"; __expect_none_added {n} \"$__out\""
        );
    }
    let words: Vec<&str> = command.split_whitespace().collect();
    if words.len() >= 2 && words[0] == "errand" && words[1] == "serve" {
        let port = words
            .iter()
            .position(|w| *w == "--listen")
            .and_then(|i| words.get(i + 1))
            .and_then(|addr| addr.rsplit(':').next())
            .unwrap_or("\"$__port\"");
        return format!("__serve {n} {port} {command}");
    }
    if words.len() >= 2 && words[0] == "errand" && words[1] == "worker" {
        return format!("__background {n} {command}");
    }
    if comment.trim_end().ends_with("Ctrl-C to stop") {
        return format!("__for_a_while {n} {command}");
    }
    line.to_string()
}

/// The functions the tour's lines call, and the shell's settings.
const PRELUDE: &str = r#"
set -euo pipefail
__pids=()
__lines=()
__failed() { echo "README.md line $1 failed (exit $2): $3" >&2; }
trap '__failed $LINENO $? "$BASH_COMMAND"' ERR
trap 'echo "$LINENO" >"$__logs/running"' DEBUG
curl() { command curl --fail-with-body "$@"; }
__background() {
  local n=$1; shift
  "$@" >"$__logs/line-$n.log" 2>&1 &
  __pids+=($!); __lines+=("$n")
  # Started once it has said so (its first line), or failed if it exits first.
  local deadline=$((SECONDS + 60))
  until [[ -s "$__logs/line-$n.log" ]]; do
    __alive "$n" $! || return 1
    if ((SECONDS > deadline)); then
      echo "README.md line $n: printed nothing within 60 s" >&2; return 1
    fi
    sleep 0.1
  done
  if grep -q '^error' "$__logs/line-$n.log"; then
    echo "README.md line $n: $(head -n 3 "$__logs/line-$n.log")" >&2; return 1
  fi
  __alive "$n" $!
}
__alive() {
  if ! kill -0 "$2" 2>/dev/null; then
    echo "README.md line $1: exited early: $(tail -n 5 "$__logs/line-$1.log")" >&2; return 1
  fi
}
__serve() {
  local n=$1 port=$2; shift 2
  __background "$n" "$@"
  local pid=${__pids[-1]} deadline=$((SECONDS + 60))
  until command curl -sf -o /dev/null "http://127.0.0.1:$port/readyz"; do
    __alive "$n" "$pid" || return 1
    if ((SECONDS > deadline)); then
      echo "README.md line $n: the server was not ready within 60 s" >&2; return 1
    fi
    sleep 0.1
  done
}
__stop_all() {
  local i pid n ok=0
  for i in "${!__pids[@]}"; do
    __alive "${__lines[$i]}" "${__pids[$i]}" || ok=1
    kill -INT "${__pids[$i]}" 2>/dev/null || true
  done
  for i in "${!__pids[@]}"; do
    pid=${__pids[$i]} n=${__lines[$i]}
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS <= deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "README.md line $n: still running 20 s after Ctrl-C" >&2
      kill -KILL "$pid" 2>/dev/null || true
      ok=1
    fi
    wait "$pid" 2>/dev/null || true
  done
  __pids=(); __lines=()
  return $ok
}
__expect_exit() {
  if [[ "$3" != "$2" ]]; then
    echo "README.md line $1: exit $3, but the README says exit $2" >&2; return 1
  fi
}
__expect_none_added() {
  if ! [[ "$2" =~ sent\ ([0-9]+)\ jobs:\ 0\ new,\ ([0-9]+)\ already\ there ]] \
    || [[ "${BASH_REMATCH[1]}" != "${BASH_REMATCH[2]}" ]]; then
    echo "README.md line $1: the second run added jobs: $2" >&2; return 1
  fi
}
__for_a_while() {
  local n=$1; shift
  local rc=0
  # timeout runs a program, not the curl() function: give curl its flag here.
  if [[ "$1" == curl ]]; then set -- curl --fail-with-body "${@:2}"; fi
  timeout -s INT 2 "$@" || rc=$?
  if ((rc != 0 && rc != 124)); then
    echo "README.md line $n failed (exit $rc) before it was interrupted: $*" >&2; return 1
  fi
}
trap '__rc=$?; __stop_all || __rc=1; exit $__rc' EXIT
"#;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// The bash process of the tour, its process group killed however the test ends.
struct Tour(Child);

impl Drop for Tour {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test]
async fn the_readme_tour_runs_as_written() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let mut blocks = tour_blocks(&readme);

    let schema = PgSchema::create("the_readme_tour_runs_as_written").await;
    if schema.is_none() {
        if let Some(i) = blocks
            .iter()
            .position(|(_, lines)| lines.iter().any(|l| l.contains("postgres://")))
        {
            eprintln!(
                "*** README tour: PostgreSQL is unreachable; running it only up to README.md line {} ***",
                blocks[i].0
            );
            blocks.truncate(i);
        }
    }

    let (port, port2) = (free_port(), free_port());
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path();
    copy_dir(&root.join("examples"), &dir.join("examples"));
    let bin_dir = dir.join(".bin");
    let logs = dir.join(".logs");
    std::fs::create_dir_all(&bin_dir).expect("bin dir");
    std::fs::create_dir_all(&logs).expect("logs dir");
    std::os::unix::fs::symlink(common::bin(), bin_dir.join("errand")).expect("symlink errand");

    let mut script: Vec<String> = vec![String::new(); readme.lines().count() + 1];
    script[0] = "source \"$__prelude\"".into();
    for (start, lines) in &blocks {
        for (i, line) in lines.iter().enumerate() {
            let n = start + i;
            let mut text = line
                .replace("7878", &port.to_string())
                .replace("7879", &port2.to_string());
            if let Some(pg) = &schema {
                text = text
                    .replace("postgres://postgres@127.0.0.1:5432/test", &pg.url)
                    .replace("errand_tour", &pg.name);
            }
            script[n - 1] = transform(&text, n);
        }
    }
    let script_path = dir.join(".tour.sh");
    std::fs::write(&script_path, script.join("\n")).expect("write script");
    std::fs::write(dir.join(".prelude.sh"), PRELUDE).expect("write prelude");

    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let stdout = std::fs::File::create(logs.join("stdout.log")).expect("stdout log");
    let stderr = std::fs::File::create(logs.join("stderr.log")).expect("stderr log");
    let child = std::os::unix::process::CommandExt::process_group(
        Command::new("bash")
            .arg(&script_path)
            .current_dir(dir)
            .env("PATH", path)
            .env("RUST_BACKTRACE", "1")
            .env("NO_COLOR", "1")
            .env("ERRAND_LISTEN", format!("127.0.0.1:{port}"))
            .env("ERRAND_SERVER", format!("http://127.0.0.1:{port}"))
            .env("__prelude", dir.join(".prelude.sh"))
            .env("__port", port.to_string())
            .env("__logs", &logs)
            .env_remove("ERRAND_PG_SCHEMA")
            .env_remove("ERRAND_STORE")
            .env_remove("ERRAND_DATA_DIR")
            .env_remove("ERRAND_CONFIG")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr),
        0,
    )
    .spawn()
    .expect("start bash");
    let mut tour = Tour(child);

    let started = Instant::now();
    let status = loop {
        if let Some(status) = tour.0.try_wait().expect("wait for bash") {
            break Some(status);
        }
        if started.elapsed() > TOUR_LIMIT {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut report = String::new();
    let _ = writeln!(
        report,
        "--- stderr (last 40 lines) ---\n{}\n--- stdout (last 40 lines) ---\n{}",
        tail(&logs.join("stderr.log"), 40),
        tail(&logs.join("stdout.log"), 40),
    );
    let mut background: Vec<PathBuf> = std::fs::read_dir(&logs)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    background.retain(|p| {
        p.file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("line-"))
    });
    background.sort();
    for log in background {
        let _ = writeln!(
            report,
            "--- {} (last 15 lines) ---\n{}",
            log.display(),
            tail(&log, 15)
        );
    }
    match status {
        None => panic!(
            "the README tour did not finish within {TOUR_LIMIT:?}: README.md line {} was running\n{report}",
            std::fs::read_to_string(logs.join("running")).unwrap_or_default().trim()
        ),
        Some(s) if !s.success() => panic!("the README tour failed ({s})\n{report}"),
        Some(_) => eprintln!("README tour ran {} blocks\n{report}", blocks.len()),
    }
    drop(tour);
    if std::env::var_os("README_TOUR_KEEP").is_some() {
        eprintln!("README tour directory kept: {}", work.keep().display());
    }
    drop(schema);
}
